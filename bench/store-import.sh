#!/usr/bin/env bash
# Store benchmark: imports the shared corpus into one account with `tme import` (fsync on, as
# always) and reports messages/s and bytes on disk per byte of mail.
#
#   bench/store-import.sh [CORPUS_DIR]
#
# The data directory lives in a temporary folder on the same filesystem as the work tree
# unless BENCH_TMPDIR says otherwise. Prints one result line per run (3 runs).
set -euo pipefail
cd "$(dirname "$0")/.."
corpus="${1:-../shared/corpus}"
[ -d "$corpus" ] || { echo "no corpus at $corpus" >&2; exit 1; }
cargo build --release --locked -q -p tme
target_dir="${CARGO_TARGET_DIR:-target}"
tme="$target_dir/release/tme"

raw_bytes=$(find "$corpus" -name '*.eml' -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
messages=$(find "$corpus" -name '*.eml' -type f | wc -l)
echo "corpus: $messages messages, $raw_bytes bytes ($(du -sb --apparent-size "$corpus" | cut -f1) apparent with manifests)"

for run in 1 2 3; do
  work=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/tme-bench.XXXXXX")
  "$tme" --data-dir "$work/data" init >/dev/null
  "$tme" --data-dir "$work/data" partner add Bench >/dev/null
  "$tme" --data-dir "$work/data" domain add bench.test --partner Bench >/dev/null
  echo "bench password" | "$tme" --data-dir "$work/data" account add user@bench.test --password-stdin >/dev/null
  # Only the store counts: blobs and the two SQLite files (with their WAL, checkpointed by close).
  before=$(du -sb "$work/data" | cut -f1)
  start=$(date +%s.%N)
  "$tme" --data-dir "$work/data" import user@bench.test "$corpus" >/dev/null
  end=$(date +%s.%N)
  on_disk=$(du -sb "$work/data/blobs" "$work/data"/*.sqlite* | awk '{ s += $1 } END { print s }')
  allocated=$(du -sB1 "$work/data/blobs" "$work/data"/*.sqlite* | awk '{ s += $1 } END { print s }')
  awk -v n="$messages" -v s="$start" -v e="$end" -v d="$on_disk" -v a="$allocated" -v r="$raw_bytes" -v run="$run" 'BEGIN {
    t = e - s
    printf "run %d: %d messages in %.2f s = %.0f messages/s; on disk %.3f x raw (file bytes), %.3f x raw (allocated blocks)\n", run, n, t, n / t, d / r, a / r
  }'
  rm -rf "$work"
done
