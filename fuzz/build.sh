#!/bin/sh
# Builds libFuzzer targets with clang (libFuzzer + AddressSanitizer + UndefinedBehaviorSanitizer)
# by compiling the radprobe sources each target needs directly (no LibTorch translation unit):
#   fuzz/build.sh [TARGET...]      (default: all; binaries in build/fuzz/<target>/fuzz_<target>)
# Objects are cached in build/fuzz/obj and rebuilt when their source or any header under src/ or
# fuzz/ is newer. Every compile holds /tmp/radprobe-build.lock (one heavy compile at a time on a
# shared machine) and runs under nice.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=${RADPROBE_FUZZ_BUILD:-$root/build/fuzz}
all="dicom image manifest config npy report_sqlite safetensors torch_pickle"
targets=${*:-$all}
command -v clang++ >/dev/null || { echo "build.sh: clang++ not found (needs clang with libFuzzer)" >&2; exit 2; }

san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
cxxflags="-std=c++20 -O1 -g -fno-omit-frame-pointer $san -fsanitize=fuzzer-no-link"
# RADPROBE_HAVE_ANALYSIS: as src/experiment is built when analysis is (its config checks).
cxxflags="$cxxflags -DRADPROBE_FUZZ_DIR=\"$here\" -DRADPROBE_VEGA_DIRS=\"\" -DRADPROBE_HAVE_ANALYSIS=1"
incs=""
for d in "$root"/src/*/include; do incs="$incs -I$d"; done
incs="$incs -isystem /usr/include/gdcm-3.0 -isystem /usr/include/opencv4 -isystem /usr/include/openjpeg-2.5"

imaging="imaging/decode.cpp imaging/dicom_decoder.cpp imaging/dicom_structure.cpp imaging/raster_decoder.cpp imaging/raster_header.cpp imaging/j2k_header.cpp imaging/jpeg_header.cpp imaging/jpegls_stream.cpp"
core="core/files.cpp core/csv.cpp core/progress.cpp core/parallel.cpp core/options.cpp core/npy.cpp core/linalg.cpp"
dataset="dataset/manifest.cpp dataset/masks.cpp dataset/validate.cpp dataset/split.cpp"
gdcm_cv="-lgdcmMSFF -lgdcmDSED -lgdcmCommon -lgdcmjpeg8 -lcharls -lopenjp2 -lopencv_imgcodecs -lopencv_imgproc -lopencv_core"

sources_of() {
    case $1 in
        dicom|image) echo "$imaging $core" ;;
        manifest) echo "$dataset $imaging $core" ;;
        config) echo "experiment/config.cpp experiment/config_reader.cpp experiment/config_sections.cpp
                      experiment/config_encoders.cpp experiment/adaptations.cpp
                      experiment/model_folders.cpp probes/options.cpp probes/logistic.cpp
                      adapt/options.cpp segment/options.cpp analysis/common.cpp
                      encoders/model_dir.cpp encoders/architectures.cpp encoders/vmamba_layout.cpp
                      encoders/sam2_release.cpp
                      encoders/checkpoint_layout.cpp encoders/safetensors.cpp
                      encoders/torch_pickle.cpp encoders/zip_archive.cpp
                      encoders/random_checkpoint.cpp preprocess/preprocess.cpp
                      features/pooling.cpp features/control_regions.cpp probes/probe.cpp
                      probes/knn.cpp eval/classification.cpp eval/bootstrap.cpp eval/delong.cpp
                      eval/distributions.cpp eval/multiple_testing.cpp eval/table_stats.cpp
                      $dataset $imaging $core" ;;
        npy) echo "core/npy.cpp core/files.cpp" ;;
        report_sqlite) echo "report/report.cpp report/report_data.cpp report/charts.cpp
                             report/sections.cpp report/embedding_map.cpp report/pca.cpp
                             results/sqlite.cpp results/results_db.cpp results/leaderboard.cpp
                             results/run_recording.cpp results/shortcut_alarms.cpp
                             eval/classification.cpp eval/bootstrap.cpp eval/delong.cpp
                             eval/distributions.cpp eval/multiple_testing.cpp eval/table_stats.cpp
                             $dataset $imaging $core" ;;
        safetensors) echo "encoders/safetensors.cpp" ;;
        torch_pickle) echo "encoders/torch_pickle.cpp encoders/zip_archive.cpp encoders/safetensors.cpp" ;;
        *) echo "build.sh: unknown target '$1' (targets: $all)" >&2; exit 2 ;;
    esac
}

# core/version.cpp.in as CMake would configure it (the report prints the version).
mkdir -p "$out"
if [ ! -f "$out/version.cpp" ]; then
    sed -e 's/@PROJECT_VERSION@/fuzz/' -e 's/@RADPROBE_GIT_DESCRIBE@/fuzz/' \
        "$root/src/core/version.cpp.in" >"$out/version.cpp"
fi

# Extra sources besides the target itself, and libraries.
extras_of() {
    case $1 in
        config) echo "$here/config/torch_free_stubs.cpp $out/version.cpp" ;;
        report_sqlite) echo "$out/version.cpp" ;;
        *) echo "" ;;
    esac
}
libs_of() {
    case $1 in
        dicom|image|manifest) echo "$gdcm_cv -llapack -lblas" ;;
        config) echo "$gdcm_cv -lyaml-cpp -llapack -lblas" ;;
        report_sqlite) echo "$gdcm_cv -lsqlite3 -llapack -lblas" ;;
        npy) echo "" ;;
        *) echo "" ;;
    esac
}

# Objects built with other flags are stale.
mkdir -p "$out/obj"
if [ "$(cat "$out/obj/flags" 2>/dev/null)" != "$cxxflags $incs" ]; then
    rm -f "$out"/obj/*.o "$out"/*/obj/*.o
    echo "$cxxflags $incs" >"$out/obj/flags"
fi

# Compiles $1 (absolute path) into $2 unless $2 is newer than it and than every header.
compile() {
    if [ -f "$2" ] && [ -z "$(find "$1" "$root/src" "$here" -newer "$2" \( -name '*.hpp' -o -path "$1" \) 2>/dev/null | head -n 1)" ]; then
        return 0
    fi
    echo "build.sh: clang++ $1" >&2
    mkdir -p "$(dirname "$2")"
    # shellcheck disable=SC2086  # word splitting of the flag lists is intended
    nice flock /tmp/radprobe-build.lock clang++ $cxxflags $incs -I"$(dirname "$1")" -c "$1" -o "$2.tmp"
    mv "$2.tmp" "$2"
}

for t in $targets; do
    srcs=$(sources_of "$t")
    objs=""
    for s in $srcs; do
        o="$out/obj/$(echo "$s" | tr / _).o"
        compile "$root/src/$s" "$o"
        objs="$objs $o"
    done
    for s in "$here/$t/fuzz_$t.cpp" $(extras_of "$t"); do
        o="$out/$t/obj/$(basename "$s").o"
        compile "$s" "$o"
        objs="$objs $o"
    done
    bin="$out/$t/fuzz_$t"
    # shellcheck disable=SC2086
    nice flock /tmp/radprobe-build.lock clang++ -fsanitize=fuzzer $san $objs $(libs_of "$t") \
        -lpthread -o "$bin.tmp"
    mv "$bin.tmp" "$bin"
    echo "build.sh: $bin" >&2
done
