#!/bin/sh
# The fuzzing campaign: builds every libFuzzer target (fuzz/build.sh) and runs them one after the
# other, each for SECONDS (and at most RUNS inputs with --runs), with a 10 s timeout per input,
# seeded from its committed corpus (fuzz/<target>/corpus), its regression cases
# (fuzz/<target>/regressions) and the matching test data; then prints, per target, the
# executions, exec/s and findings (crashes, timeouts, out-of-memory, leaks, sanitizer reports).
#   fuzz/run_all.sh [--runs N] SECONDS [TARGET...]
# Exit status: 0 when no target found anything. Inputs that triggered a finding are left in
# build/fuzz/<target>/artifacts/, the full logs in build/fuzz/<target>/fuzz.log; the corpus a
# run grows is kept in build/fuzz/<target>/corpus for the next run.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=${RADPROBE_FUZZ_BUILD:-$root/build/fuzz}
runs=""
if [ "${1:-}" = "--runs" ]; then
    runs=$2
    shift 2
fi
[ $# -ge 1 ] || { echo "usage: fuzz/run_all.sh [--runs N] SECONDS [TARGET...]" >&2; exit 2; }
seconds=$1
shift
targets=${*:-"dicom image manifest config npy report_sqlite safetensors torch_pickle"}

# RADPROBE_FUZZ_NO_BUILD=1: run the binaries as they are (e.g. while the build lock is busy).
if [ -z "${RADPROBE_FUZZ_NO_BUILD:-}" ]; then
    # shellcheck disable=SC2086
    "$here/build.sh" $targets
fi

# Copies the test data that seeds a target into $2 (a folder the run only reads).
seed_from_tests() {
    d=$root/tests/data
    case $1 in
        dicom) find "$d/dicom" -type f ! -name '*.md' ! -name '*.csv' -size -600k ;;
        image) find "$d/nih-mini/valid/0_normal" -name '*.png' | sort | head -n 8 ;;
        manifest) echo "$d/dicom/manifest.csv" ;;
        config) find "$root/configs" -name '*.yaml' ;;
        npy) find "$d" -name '*.npy' -size -64k ;;
        safetensors) find "$d/encoders" -name '*.safetensors' -size -256k ;;
        torch_pickle) find "$d/pickles" -type f \( -name '*.pt' -o -name '*.bin' \) ;;
        *) : ;;
    esac | while read -r f; do
        cp "$f" "$2/$(echo "${f#"$root"/}" | tr / _)"
    done
}

max_len_of() {
    case $1 in
        dicom|report_sqlite) echo 131072 ;;
        image|safetensors) echo 65536 ;;
        *) echo 16384 ;;
    esac
}

# Reads "stat::NAME: VALUE" from a libFuzzer log (the last one: -print_final_stats=1).
stat_of() {
    sed -n "s/^stat::$2: *//p" "$1" | tail -n 1
}

count_files() {
    find "$1" -maxdepth 1 -type f -name "$2*" | wc -l | tr -d ' '
}

table=$out/campaign.txt
mkdir -p "$out"
printf '%-14s %12s %8s %8s %9s %6s %6s %10s\n' target executions exec/s crashes timeouts ooms leaks sanitizer \
    >"$table"
found=0
for t in $targets; do
    work=$out/$t
    rm -rf "$work/seeds" "$work/artifacts"
    mkdir -p "$work/corpus" "$work/seeds" "$work/artifacts"
    seed_from_tests "$t" "$work/seeds"
    dirs="$work/corpus $work/seeds"
    for d in "$here/$t/corpus" "$here/$t/regressions"; do
        [ -d "$d" ] && dirs="$dirs $d"
    done
    dict=$(find "$here/$t" -maxdepth 1 -name '*.dict' | head -n 1)
    log=$work/fuzz.log
    # Sanitizer reports also go to files: the decoders silence stderr while a codec runs
    # (imaging/quiet_stderr.hpp), which would swallow a report printed there.
    rm -f "$work"/sanitizer.*
    echo "run_all.sh: $t (${seconds}s${runs:+, at most $runs inputs})" >&2
    # Memory (libFuzzer's default limit, 2 GB resident). ASan keeps freed memory in a 256 MB
    # quarantine by default, which with the fragmentation it causes put the dicom target at
    # 823 MB after replaying its corpus alone; 64 MB still catches a use after free within the
    # next 64 MB of allocations, and freed pages go back to the system. (The dicom target's
    # earlier climb to the limit was a thread leak in GDCM, now refused before GDCM sees the
    # file: see src/imaging/j2k_header.cpp.)
    asan_defaults="quarantine_size_mb=64:allocator_release_to_os_interval_ms=500"
    # shellcheck disable=SC2086
    (cd "$work" && ASAN_OPTIONS="log_path=$work/sanitizer:$asan_defaults:${ASAN_OPTIONS:-}" \
        UBSAN_OPTIONS="log_path=$work/sanitizer:print_stacktrace=1:${UBSAN_OPTIONS:-}" \
        LSAN_OPTIONS="suppressions=$here/lsan.supp:${LSAN_OPTIONS:-}" \
        nice ./fuzz_"$t" -timeout=10 -max_total_time="$seconds" ${runs:+-runs=$runs} \
        -max_len="$(max_len_of "$t")" -rss_limit_mb=2048 ${dict:+-dict=$dict} \
        -print_final_stats=1 -artifact_prefix="$work/artifacts/" $dirs) >"$log" 2>&1 || true
    execs=$(stat_of "$log" number_of_executed_units)
    rate=$(stat_of "$log" average_exec_per_sec)
    crashes=$(count_files "$work/artifacts" crash-)
    timeouts=$(count_files "$work/artifacts" timeout-)
    ooms=$(count_files "$work/artifacts" oom-)
    leaks=$(count_files "$work/artifacts" leak-)
    sanitizer=$(cat "$log" "$work"/sanitizer.* 2>/dev/null |
        grep -c -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' || true)
    if [ -z "$execs" ]; then  # died with stderr silenced: no statistics, the last progress line
        execs=$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
        rate=""
        if [ $((crashes + timeouts + ooms + leaks)) -eq 0 ]; then
            crashes=1
        fi
    fi
    printf '%-14s %12s %8s %8s %9s %6s %6s %10s\n' "$t" "${execs:-0}" "${rate:-0}" "$crashes" "$timeouts" \
        "$ooms" "$leaks" "$sanitizer" >>"$table"
    if [ $((crashes + timeouts + ooms + leaks + sanitizer)) -ne 0 ]; then
        found=1
        echo "run_all.sh: $t: findings in $work/artifacts (log: $log)" >&2
    fi
done
echo "fuzz/run_all.sh ${runs:+--runs $runs }$seconds ($(date -u +%Y-%m-%d), $(clang++ --version | head -n 1))"
cat "$table"
exit $found
