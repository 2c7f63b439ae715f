#!/usr/bin/env bash
# `twinloop process` on a 30-minute 512x512 acquisition (54,000 frames at 30 Hz, ~28 GB in 30
# files) within a memory budget: peak RSS and time per frame (BENCHMARKS.md, "Long movies").
#
# The series is one simulated 60 s file (`twinloop sim-movie`) hard-linked 30 times, so the
# disk holds 0.94 GB while process reads 28 GB of pages; the content repeats every minute and
# the pages come from the page cache, not the disk. What this measures is memory (process never
# holds the movie) and per-frame time, not disk throughput.
#
#   bash scripts/bench_long_movie.sh [work dir] [before-binary]
# Environment: BIN (default target/release/twinloop), FILES (30), MEMORY_GB (4).
# With a second argument, that binary (one that reads the whole movie into memory) and this one
# are run on the single 60 s file, for the memory comparison.
set -euo pipefail
BIN=${BIN:-target/release/twinloop}
DIR=${1:-/tmp/twinloop-long-movie}
BEFORE=${2:-}
FILES=${FILES:-30}
MEMORY_GB=${MEMORY_GB:-4}
mkdir -p "$DIR/series"
if [ ! -f "$DIR/base/acq_00001_00001.tif" ]; then
  "$BIN" sim-movie --out "$DIR/base" --frames 1800 --frames-per-file 1800 --size 512
fi
rm -f "$DIR"/series/*.tif
for i in $(seq 1 "$FILES"); do
  ln "$DIR/base/acq_00001_00001.tif" "$DIR/series/acq_00001_$(printf %05d "$i").tif"
done
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), load: $(cut -d' ' -f1-3 /proc/loadavg)"
size=$(stat -c %s "$DIR/base/acq_00001_00001.tif")
echo "series: $FILES files, $((FILES * size / 1000000000)) GB as read"
run() { # label, binary, files...
  local label=$1 bin=$2; shift 2
  rm -rf "$DIR/out-$label"
  /usr/bin/time -v "$bin" process "$@" --out "$DIR/out-$label" 2> "$DIR/time-$label.txt" >"$DIR/stdout-$label.txt" || {
    echo "$label: process failed"; tail -5 "$DIR/time-$label.txt"; return 1; }
  local rss wall
  rss=$(awk -F: '/Maximum resident/ {print $2}' "$DIR/time-$label.txt")
  wall=$(awk '/Elapsed \(wall/ {print $NF}' "$DIR/time-$label.txt")
  echo "$label: peak RSS $((rss / 1024)) MiB, wall $wall"
  grep -h "ms/frame" "$DIR/stdout-$label.txt"
}
run stream "$BIN" "$DIR"/series/acq_*.tif --memory-gb "$MEMORY_GB"
if [ -n "$BEFORE" ]; then
  # The same 60 s file alone, through this binary and through one that reads the whole movie
  # into memory first (it cannot take the 28 GB series: this machine has 24 GiB).
  run one-file "$BIN" "$DIR/base/acq_00001_00001.tif" --memory-gb "$MEMORY_GB"
  run one-file-before "$BEFORE" "$DIR/base/acq_00001_00001.tif"
fi
