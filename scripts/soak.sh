#!/usr/bin/env bash
# Kill-and-resume soak (issue 19; not part of CI): `radprobe extract`, `finetune`, `segment` and
# `run` are each killed with SIGKILL at KILLS random moments (one per trial, uniform over the
# uninterrupted run's wall time, drawn from SEED) and then resumed the way a user would: the same
# command again (`finetune` with --resume once its checkpoint exists). A trial that finishes
# before its kill moment is not counted as a kill; trials go on until KILLS kills (at most 3 ×
# KILLS trials). After each resume the
# outputs must equal those of an uninterrupted run of the same command:
#   extract   every file of the store (npy, index.csv, errors.csv, store.json, COMPLETE, ...)
#             byte for byte;
#   finetune  metrics.json (less its timing) and the predictions, byte for byte;
#   segment   metrics.json (less its timing), predictions.csv and every predicted mask;
#   run       the completed runs' metrics and predictions in results.sqlite (less times and run
#             ids), one completed run per cell, and the study's embedding store byte for byte.
# Prints per command the kills delivered mid-run, the trials that finished before their kill
# moment, and the differences found; exit status 1 if any difference.
#
# Usage: scripts/soak.sh [KILLS=20] [WORK=/tmp/radprobe-soak] [SEED=1]
#        RADPROBE=path/to/radprobe (default build/radprobe)
# Takes about 15-30 minutes on 2 cores.
set -euo pipefail
KILLS="${1:-20}"
WORK="${2:-/tmp/radprobe-soak}"
SEED="${3:-1}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RP="${RADPROBE:-$ROOT/build/radprobe}"
MODEL="$ROOT/tests/data/encoders/dinov2"
PY=/usr/bin/python3
[ -x "$RP" ] || { echo "soak.sh: $RP not found (build first)" >&2; exit 2; }
command -v sqlite3 >/dev/null || { echo "soak.sh: sqlite3 not found" >&2; exit 2; }
rm -rf "$WORK"
mkdir -p "$WORK"
cd "$WORK"
"$RP" synth --out data --n 160 --size 256 --seed 5 >/dev/null
DATA="$WORK/data/manifest.csv"

# --- the commands: each writes everything under its one argument, OUT ----------------------
cmd_extract() {
    "$RP" extract --model "$MODEL" --manifest "$DATA" --out "$1" --pool cls,mean,patches \
        --shard 8 --batch 4 --threads 2
}
cmd_finetune() {
    local resume=()
    [ -f "$1/checkpoint/state.json" ] && resume=(--resume)
    "$RP" finetune --model "$MODEL" --manifest "$DATA" --label cardiomegaly --out "$1" \
        --epochs 4 --size 56 --batch 8 --n-boot 200 --threads 2 "${resume[@]}"
}
cmd_segment() {
    "$RP" segment --decoder linear --model "$MODEL" --manifest "$DATA" --mask heart \
        --resize 64 --epochs 4 --n-boot 200 --threads 2 --out "$1"
}
cmd_run() {
    mkdir -p "$1"
    cat >"$1/study.yaml" <<YAML
data:
  manifest: $DATA
encoders:
  - name: dinov2-tiny
    path: $MODEL
    preprocessing: {size: 56}
tasks:
  classification: [cardiomegaly, nodule]
  segmentation: [heart]
adaptations:
  linear: {c_grid: '0.1,1'}
  knn: {k: 5}
  finetune: {epochs: 2, batch: 8}
  segment: {decoders: [linear], epochs: 2}
pooling: [cls, mean]
seeds: [0, 1]
statistics: {ci: delong, n_boot: 200}
output:
  db: $1/results.sqlite
  store: $1/embeddings
  report: $1/report.html
YAML
    "$RP" run "$1/study.yaml" --threads 2
}

# --- what must come out the same ------------------------------------------------------------
# sha256 of every file under DIR (shards/ left out: the merged files hold what they held), with
# the trial's own folder OUT written as "OUT" in the text files that name it (store.json).
hash_tree() {  # hash_tree DIR OUT
    (cd "$1" && find . -path '*/shards' -prune -o -type f -print | LC_ALL=C sort) |
        while read -r f; do
            case "$f" in
                *.json | *.csv) printf '%s  %s\n' "$(sed "s|$2|OUT|g" "$1/$f" | sha256sum | cut -c1-64)" "$f" ;;
                *) printf '%s  %s\n' "$(sha256sum <"$1/$f" | cut -c1-64)" "$f" ;;
            esac
        done
}

# A text digest of OUT's outputs for COMMAND; two equal digests = the same results.
digest() {  # digest COMMAND OUT
    local cmd="$1" out="$2"
    case "$cmd" in
        extract)
            hash_tree "$out" "$out"
            ;;
        finetune | segment)
            "$PY" - "$out" <<'PY'
import json, sys
out = sys.argv[1]
j = json.load(open(out + "/metrics.json"))
for k in ("seconds", "resumed", "resumed_from_epoch"):
    j.pop(k, None)
print(json.dumps(j, sort_keys=True).replace(out, "OUT"))
PY
            for f in "$out"/predictions*.csv; do
                printf '%s  %s\n' "$(sha256sum <"$f" | cut -c1-64)" "$(basename "$f")"
            done
            [ ! -d "$out/masks" ] || hash_tree "$out/masks" "$out"
            ;;
        run)
            sqlite3 "$out/results.sqlite" "
              SELECT r.encoder, r.task, r.adaptation, r.pooling, r.layers, r.seed, r.config_hash,
                     m.name, m.subgroup, quote(m.value), quote(m.ci_lo), quote(m.ci_hi), m.n
              FROM runs r JOIN metrics m ON m.run = r.id WHERE r.status = 'completed'
              ORDER BY r.config_hash, m.name, m.subgroup;
              SELECT r.config_hash, COUNT(*) FROM runs r WHERE r.status = 'completed'
              GROUP BY r.config_hash HAVING COUNT(*) > 1;
              SELECT r.config_hash, p.image_id, quote(p.label), quote(p.score), quote(p.dice)
              FROM runs r JOIN predictions p ON p.run = r.id WHERE r.status = 'completed'
              ORDER BY r.config_hash, p.image_id;"
            for store in "$out"/embeddings/*/COMPLETE; do
                hash_tree "$(dirname "$store")" "$out"
            done
            ;;
    esac
}

# Runs `cmd_COMMAND OUT` until it exits 0 (a resume that fails is a finding, not retried).
complete() {  # complete COMMAND OUT LOG
    "cmd_$1" "$2" >>"$3" 2>&1
}

printf '%-9s %6s %8s %9s %11s %12s\n' command kills "ran out" "ref (s)" differences leftovers
status=0
for cmd in extract finetune segment run; do
    start=$(date +%s%N)
    complete "$cmd" "$WORK/ref-$cmd" "$WORK/ref-$cmd.log" || {
        echo "$cmd: the uninterrupted run failed (see $WORK/ref-$cmd.log)" >&2
        exit 1
    }
    ref_secs=$(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN {printf "%.2f", (b - a) / 1e9}')
    digest "$cmd" "$WORK/ref-$cmd" >"$WORK/ref-$cmd.digest"
    kills=0 early=0 diffs=0 leftovers=0 trial=0
    while [ "$kills" -lt "$KILLS" ] && [ "$trial" -lt $((3 * KILLS)) ]; do
        trial=$((trial + 1))
        out="$WORK/trial-$cmd"
        log="$WORK/trial-$cmd.log"
        rm -rf "$out" "$log"
        moment=$(awk -v s="$SEED" -v i="$trial" -v c="${#cmd}" -v t="$ref_secs" \
            'BEGIN {srand(s * 1000 + i * 17 + c); printf "%.2f", 0.05 + rand() * t * 0.95}')
        "cmd_$cmd" "$out" >"$log" 2>&1 &
        pid=$!
        sleep "$moment"
        if kill -0 "$pid" 2>/dev/null; then
            # radprobe runs as a child of the backgrounded function's subshell: kill it first
            pkill -KILL -P "$pid" 2>/dev/null || true
            kill -KILL "$pid" 2>/dev/null || true
            wait "$pid" 2>/dev/null || true
            kills=$((kills + 1))
        else
            # Finished before its kill moment (the reference ran slower, e.g. beside other
            # work): counted, not a kill; later moments are drawn within this run's time.
            wait "$pid" || true
            early=$((early + 1))
            ref_secs="$moment"
            continue
        fi
        if ! complete "$cmd" "$out" "$log"; then
            echo "$cmd trial $trial: the resume failed after a kill at ${moment}s:" >&2
            tail -n 3 "$log" >&2
            diffs=$((diffs + 1))
            continue
        fi
        if ! digest "$cmd" "$out" | cmp -s - "$WORK/ref-$cmd.digest"; then
            echo "$cmd trial $trial: outputs differ after a kill at ${moment}s" >&2
            digest "$cmd" "$out" | diff - "$WORK/ref-$cmd.digest" | head -n 5 >&2 || true
            diffs=$((diffs + 1))
        fi
        n=$(find "$out" -name '*.tmp.*' | wc -l)
        leftovers=$((leftovers + n))
    done
    [ "$diffs" -eq 0 ] || status=1
    printf '%-9s %6d %8d %9.1f %11d %12d\n' "$cmd" "$kills" "$early" "$ref_secs" "$diffs" \
        "$leftovers"
done
echo "kills survived: the 'kills' column with 0 differences; 'ran out': trials that finished"
echo "before their kill moment; leftovers: temporary files a kill left (never read back)"
exit "$status"
