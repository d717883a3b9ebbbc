#!/usr/bin/env bash
# Smoke test of the cluster brought up by tests/slurm/slurm_local.sh up STATE_DIR:
#  1. a 4-task array job, each task writing a file named after $SLURM_ARRAY_TASK_ID, then a job
#     with --dependency=afterok on the array that concatenates the files;
#  2. a 2-task array job whose task 1 hangs: scancel of that one element, then a resubmission of
#     index 1 alone completes.
# Polls `scontrol show job` (no accounting, so no sacct). Usage: tests/slurm/smoke.sh STATE_DIR
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 STATE_DIR" >&2; exit 2; }
STATE_DIR="$(cd "$1" && pwd)"
export SLURM_CONF="$STATE_DIR/slurm.conf"
[ -f "$SLURM_CONF" ] || { echo "smoke: no $SLURM_CONF (run slurm_local.sh up first)" >&2; exit 1; }
TIMEOUT="${SMOKE_TIMEOUT:-120}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/slurm-smoke.XXXXXX")"
chmod 0755 "$WORK"  # jobs run as the submitting user, but be safe if that differs
trap 'rm -rf "$WORK"' EXIT

fail() {
    echo "smoke: FAIL: $*" >&2
    squeue >&2 || true
    for f in "$WORK"/*.out; do [ -f "$f" ] && { echo "---- $f" >&2; cat "$f" >&2; }; done
    exit 1
}

# The JobState of every record of job $1 (one line each; an array gives one per task).
states() { scontrol -o show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2; }

# Waits until no record of job $1 is pending or running; prints the final states.
wait_done() {
    local id="$1" deadline=$((SECONDS + TIMEOUT)) s
    while [ "$SECONDS" -lt "$deadline" ]; do
        s="$(states "$id")"
        [ -n "$s" ] || fail "job $id unknown to slurmctld"
        if ! grep -qE 'PENDING|RUNNING|CONFIGURING|COMPLETING|SUSPENDED|REQUEUE|RESIZING' <<<"$s"; then
            echo "$s"
            return
        fi
        sleep 0.5
    done
    fail "job $id not finished after $TIMEOUT s: ${s//$'\n'/ }"
}

# Fails unless every record of job $1 ended COMPLETED.
expect_completed() {
    local s
    s="$(wait_done "$1")"
    if grep -qv '^COMPLETED$' <<<"$s"; then fail "job $1 ended as: ${s//$'\n'/ }"; fi
}

# 1. Array of 4 tasks, then a dependent job that concatenates their files.
mkdir -p "$WORK/parts"
array_id="$(sbatch --parsable --array=0-3 --output="$WORK/array_%a.out" \
    --wrap="echo \$SLURM_ARRAY_TASK_ID > $WORK/parts/\$SLURM_ARRAY_TASK_ID")"
cat_id="$(sbatch --parsable --dependency=afterok:"$array_id" --output="$WORK/cat.out" \
    --wrap="cat $WORK/parts/0 $WORK/parts/1 $WORK/parts/2 $WORK/parts/3 > $WORK/all")"
echo "smoke: array job $array_id, dependent job $cat_id"
expect_completed "$array_id"
expect_completed "$cat_id"
[ "$(cat "$WORK/all" 2>/dev/null)" = "$(printf '0\n1\n2\n3')" ] \
    || fail "concatenation is '$(cat "$WORK/all" 2>/dev/null)', want 0..3 on four lines"
echo "smoke: array + afterok dependency OK"

# 2. Cancel one hanging element of an array, then resubmit that index alone.
script="$WORK/task.sh"
cat > "$script" <<EOF
#!/bin/bash
if [ "\$SLURM_ARRAY_TASK_ID" = 1 ] && [ ! -e $WORK/fixed ]; then sleep 600; fi
echo done > $WORK/task_\$SLURM_ARRAY_TASK_ID
EOF
chmod +x "$script"
kill_id="$(sbatch --parsable --array=0-1 --output="$WORK/kill_%a.out" "$script")"
deadline=$((SECONDS + TIMEOUT))
until [ "$(states "${kill_id}_1")" = RUNNING ]; do
    [ "$SECONDS" -lt "$deadline" ] || fail "task ${kill_id}_1 never started"
    sleep 0.5
done
scancel "${kill_id}_1"
s1="$(wait_done "${kill_id}_1")"
[ "$s1" = CANCELLED ] || fail "task ${kill_id}_1 ended as '$s1', want CANCELLED"
expect_completed "${kill_id}_0"
[ ! -e "$WORK/task_1" ] || fail "cancelled task 1 wrote its output"
touch "$WORK/fixed"
retry_id="$(sbatch --parsable --array=1 --output="$WORK/retry_%a.out" "$script")"
expect_completed "$retry_id"
[ "$(cat "$WORK/task_1" 2>/dev/null)" = "done" ] || fail "resubmitted task 1 wrote no output"
echo "smoke: cancel of ${kill_id}_1 + resubmission $retry_id OK"
echo "smoke: PASS"
