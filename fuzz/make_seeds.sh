#!/bin/sh
# Regenerates the committed seeds that cannot be copied from tests/data: the image target's tiny
# PNG/JPEG/TIFF files (written by OpenCV) and the report_sqlite target's results database
# (written by radprobe's results library, then VACUUMed). Needs a configured build in build/
# (for libradprobe_results.a and friends).
#   fuzz/make_seeds.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=$root/build/fuzz/seedgen
mkdir -p "$out"
nice flock /tmp/radprobe-build.lock clang++ -std=c++20 -O1 -isystem /usr/include/opencv4 \
    "$here/image/make_seeds.cpp" -lopencv_imgcodecs -lopencv_imgproc -lopencv_core \
    -o "$out/make_image_seeds"
"$out/make_image_seeds" "$here/image/corpus"
lib=$root/build/src
nice flock /tmp/radprobe-build.lock clang++ -std=c++20 -O1 -I"$root/src/results/include" \
    -I"$root/src/eval/include" -I"$root/src/core/include" "$here/report_sqlite/make_seed.cpp" \
    "$lib/results/libradprobe_results.a" "$lib/eval/libradprobe_eval.a" \
    "$lib/core/libradprobe_core.a" -lsqlite3 -llapack -lblas -lpthread -o "$out/make_report_seed"
rm -f "$here/report_sqlite/corpus/results.sqlite"
"$out/make_report_seed" "$here/report_sqlite/corpus/results.sqlite"
