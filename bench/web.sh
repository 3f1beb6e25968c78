#!/usr/bin/env bash
# Webmail benchmark: server time to render the message list of a folder of BENCH_MESSAGES
# (50,000) messages and to open a message, p50/p99, and the pages' weight in bytes.
#
#   bench/web.sh
#
# The folder: the ../shared/corpus messages (real-world mail of every shape), repeated until
# there are BENCH_MESSAGES, each copy made distinct by an `X-Bench-Copy` field on top (import
# skips a message it holds already), imported into one INBOX with `tme import`. tme runs on
# the embedded store (release build), its http listener on loopback; bench/web-load.py logs
# in and times each page kind from one keep-alive client (request written to the last byte
# read): the first, a middle and the last page of the list by arrival, the first page by date
# and by size, the first and last page of the conversation view, a message opened the first
# time (which marks it read: a durable write; its conversation is listed below it) and
# again, and the style sheet for scale. BENCH_RUNS runs of BENCH_ROUNDS requests per kind.
# There is no peer: Roundcube needs PHP, a web server and an IMAP server; the goal is the
# issue's (p99 under 50 ms). Temporary folders live in BENCH_TMPDIR (or TMPDIR, or /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

corpus="${BENCH_CORPUS:-../shared/corpus}"
messages="${BENCH_MESSAGES:-50000}"
rounds="${BENCH_ROUNDS:-300}"
runs="${BENCH_RUNS:-2}"
user="bench@bench.test"
password="bench password"
[ -d "$corpus" ] || { echo "no corpus at $corpus" >&2; exit 1; }

cargo build --release --locked -q -p tme
target_dir="${CARGO_TARGET_DIR:-target}"
tme="$(realpath "$target_dir/release/tme")"

work=""
tme_pid=""
cleanup() {
  if [ -n "$tme_pid" ]; then
    kill "$tme_pid" 2>/dev/null || true
    wait "$tme_pid" 2>/dev/null || true
  fi
  [ -z "$work" ] || rm -rf "$work"
}
trap cleanup EXIT
work="$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/tme-bench-web.XXXXXX")"

echo "== making $messages messages from $corpus"
python3 - "$corpus" "$work/mail" "$messages" <<'PYTHON'
import os, sys
corpus, folder, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(folder)
paths = sorted(os.path.join(root, name) for root, _, names in os.walk(corpus)
               for name in names if name.endswith(".eml"))
for number in range(count):
    with open(paths[number % len(paths)], "rb") as source:
        raw = source.read()
    with open(os.path.join(folder, f"{number:06d}.eml"), "wb") as target:
        target.write(b"X-Bench-Copy: %d\r\n" % number + raw)
PYTHON

data="$work/tme"
"$tme" --data-dir "$data" init --hostname mail.bench.test >/dev/null 2>&1
"$tme" --data-dir "$data" partner add Bench >/dev/null 2>&1
"$tme" --data-dir "$data" domain add bench.test --partner Bench >/dev/null 2>&1
echo "$password" | "$tme" --data-dir "$data" account add "$user" --password-stdin >/dev/null 2>&1
started=$(date +%s)
"$tme" --data-dir "$data" import "$user" "$work/mail" >/dev/null
echo "== imported in $(( $(date +%s) - started )) s"
rm -rf "$work/mail"

environment=()
for role in smtp submission submissions imap imaps pop3 pop3s dns; do
  environment+=("TME_LISTEN__${role^^}=127.0.0.1:$(free_port)")
done
http_port=$(free_port)
env "${environment[@]}" TME_LISTEN__HTTP="127.0.0.1:$http_port" TME_LOG=warn \
  "$tme" --data-dir "$data" serve >"$work/tme.log" 2>&1 &
tme_pid=$!
wait_for_port "$http_port"

for run in $(seq 1 "$runs"); do
  echo "== run $run: tme $(git rev-parse --short HEAD), $rounds requests per kind"
  python3 bench/web-load.py "$http_port" "$user" "$password" "$rounds" $(( (run - 1) * (rounds + 10) ))
done
echo "== tme RSS after the runs: $(awk '/^VmRSS:/ { print $2 }' "/proc/$tme_pid/status") KiB"
