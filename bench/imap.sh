#!/usr/bin/env bash
# IMAP benchmark: the same command mix against
#   (a) tme on the embedded store, and
#   (b) Debian's Dovecot (dovecot-imapd; Maildir, its default mail_fsync = optimized,
#       passwd-file user),
# both holding the same BENCH_MESSAGES corpus messages in INBOX (the first ones of
# ../shared/corpus by path), both over implicit TLS (imaps) with the same ECDSA P-256
# certificate, private instances on loopback ports in a temporary folder.
#
#   bench/imap.sh
#
# Per run and system:
# - throughput: bench/imap-load (Rust, tokio) runs BENCH_SESSIONS sessions for BENCH_SECONDS
#   after a warm-up of BENCH_WARMUP_SECONDS; each logs in once, selects INBOX, then loops
#   over SELECT / FETCH of 3 whole messages with FLAGS and ENVELOPE / STORE of \Flagged /
#   SEARCH (UNSEEN, FLAGGED, SUBJECT) / APPEND of a 2 KB message to another mailbox / NOOP
#   (weights 1/4/2/2/1/2). Prints commands/s and p50/p99 per command kind and in all.
# - memory (after the runs): BENCH_IDLE connections to tme, each logged in with INBOX
#   selected and in IDLE; resident memory per connection = (tme's RSS with them all idle -
#   its RSS with the first tenth of them) / the other nine tenths. Dovecot gets
#   BENCH_DOVECOT_IDLE connections (an `imap` and an `imap-login` process each, its default);
#   per connection = the RSS (and PSS, which shares library pages fairly) of all those
#   processes / connections.
# Needs root (Dovecot's master). Temporary folders live in BENCH_TMPDIR (or TMPDIR, or /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

corpus="${BENCH_CORPUS:-../shared/corpus}"
messages="${BENCH_MESSAGES:-2000}"
sessions="${BENCH_SESSIONS:-16}"
seconds="${BENCH_SECONDS:-30}"
warmup_seconds="${BENCH_WARMUP_SECONDS:-5}"
runs="${BENCH_RUNS:-2}"
idle_count="${BENCH_IDLE:-10000}"
dovecot_idle_count="${BENCH_DOVECOT_IDLE:-300}"
user="bench@bench.test"
password="bench password"

if [ "$(id -u)" -ne 0 ]; then
  echo "run as root: Dovecot's master process needs it" >&2
  exit 1
fi
install_missing dovecot-core dovecot-imapd python3
[ -d "$corpus" ] || { echo "no corpus at $corpus" >&2; exit 1; }

cargo build --release --locked -q -p tme -p imap-load
target_dir="${CARGO_TARGET_DIR:-target}"
tme="$(realpath "$target_dir/release/tme")"
load="$(realpath "$target_dir/release/imap-load")"

# 10,000 idle connections: a descriptor each in tme and in the load generator. As many as
# the hard limit allows (raising it needs CAP_SYS_RESOURCE, which a container may lack).
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((idle_count + 1000)) ]; then
  echo "open files limited to $(ulimit -n): too few for $idle_count idle connections" >&2
  exit 1
fi

rss_kib() { # PID
  awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

work=""
tme_pid=""
load_pid=""
cleanup() {
  if [ -n "$load_pid" ]; then
    kill "$load_pid" 2>/dev/null || true
    wait "$load_pid" 2>/dev/null || true
    load_pid=""
  fi
  if [ -n "$tme_pid" ]; then
    kill "$tme_pid" 2>/dev/null || true
    wait "$tme_pid" 2>/dev/null || true
    tme_pid=""
  fi
  if [ -n "$work" ]; then
    if [ -f "$work/dovecot/run/master.pid" ]; then
      kill "$(cat "$work/dovecot/run/master.pid")" 2>/dev/null || true
      sleep 1
    fi
    rm -rf "$work"
    work=""
  fi
}
trap cleanup EXIT

# The messages both systems hold: the first $messages .eml files of the corpus by path.
pick_corpus() {
  mkdir -p "$work/corpus"
  local number=0 file
  while IFS= read -r file; do
    number=$((number + 1))
    ln -s "$(realpath "$file")" "$work/corpus/$(printf '%06d' "$number").eml"
  done < <(find "$corpus" -name '*.eml' -type f | sort | head -n "$messages")
}

# (a) tme: sets tme_port.
start_tme() {
  local data="$work/tme"
  "$tme" --data-dir "$data" init --hostname mail.bench.test >/dev/null 2>&1
  "$tme" --data-dir "$data" partner add Bench >/dev/null 2>&1
  "$tme" --data-dir "$data" domain add bench.test --partner Bench >/dev/null 2>&1
  echo "$password" | "$tme" --data-dir "$data" account add "$user" --password-stdin >/dev/null 2>&1
  "$tme" --data-dir "$data" import "$user" "$work/corpus" >/dev/null
  local role environment=()
  for role in smtp submission submissions imap pop3 pop3s http dns; do
    environment+=("TME_LISTEN__${role^^}=127.0.0.1:$(free_port)")
  done
  tme_port=$(free_port)
  # Connection limits out of the way of the idle phase (every client is on 127.0.0.x).
  env "${environment[@]}" TME_LISTEN__IMAPS="127.0.0.1:$tme_port" \
    TME_IMAP__CONNECTIONS_MAX=$((idle_count + 1000)) TME_IMAP__CONNECTIONS_PER_IP_MAX=$((idle_count + 1000)) \
    TME_LOGIN__FAILURES_BEFORE_DELAY=1000 TME_LOG=warn "$tme" --data-dir "$data" serve >"$work/tme.log" 2>&1 &
  tme_pid=$!
  wait_for_port "$tme_port"
}

# (b) Dovecot: sets dovecot_port.
start_dovecot() {
  local directory="$work/dovecot" maildir="$work/mail/bench/Maildir" number=0 file
  mkdir -p "$directory" "$maildir/cur" "$maildir/new" "$maildir/tmp"
  # The same messages, as Maildir files (Dovecot indexes them on the first SELECT, in the
  # warm-up).
  for file in "$work/corpus"/*.eml; do
    number=$((number + 1))
    cp "$file" "$maildir/cur/$number.bench.mail.bench.test:2,"
  done
  chown -R nobody:nogroup "$work/mail"
  dovecot_port=$(free_port)
  echo "$user:{PLAIN}$password:65534:65534::$work/mail/bench" >"$directory/users"
  cat >"$directory/dovecot.conf" <<EOF
base_dir = $directory/run
state_dir = $directory/state
log_path = $directory/dovecot.log
instance_name = tme-bench-imap
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <$work/tme/tls/certificate.pem
ssl_key = <$work/tme/tls/private-key.pem
mail_location = maildir:~/Maildir
mail_fsync = optimized
first_valid_uid = 100
# Every session and idle connection is the same user from 127.0.0.x (default 10).
mail_max_userip_connections = $((idle_count + 1000))
passdb {
  driver = passwd-file
  args = $directory/users
}
userdb {
  driver = passwd-file
  args = $directory/users
}
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $dovecot_port
  }
  # With TLS, each connection keeps its imap-login process, which proxies the TLS session
  # (Dovecot's default high-security mode); both services default to 100 processes.
  process_limit = $((dovecot_idle_count + 100))
}
service imap {
  process_limit = $((dovecot_idle_count + 100))
}
default_client_limit = $((dovecot_idle_count * 2 + 1000))
EOF
  dovecot -c "$directory/dovecot.conf"
  wait_for_port "$dovecot_port"
}

# The mix against PORT; prints the load generator's lines.
run_mix() { # PORT
  "$load" --address "127.0.0.1:$1" --user "$user" --password "$password" mix --sessions "$sessions" --seconds "$warmup_seconds" >/dev/null
  "$load" --address "127.0.0.1:$1" --user "$user" --password "$password" mix --sessions "$sessions" --seconds "$seconds"
}

# Starts COUNT idle connections to PORT and waits until they are all idling.
start_idle() { # PORT COUNT
  local output
  output="$work/idle.$(date +%s%N).out"
  "$load" --address "127.0.0.1:$1" --user "$user" --password "$password" idle --count "$2" --source-addresses 8 \
    >"$output" 2>&1 &
  load_pid=$!
  for _ in $(seq 3600); do
    grep -q '^ready' "$output" && return 0
    kill -0 "$load_pid" 2>/dev/null || { cat "$output" >&2; return 1; }
    sleep 0.5
  done
  echo "the idle connections were not all up after 30 minutes" >&2
  return 1
}

stop_idle() {
  kill "$load_pid" 2>/dev/null || true
  wait "$load_pid" 2>/dev/null || true
  load_pid=""
}

echo "imap: $messages corpus messages in INBOX, $sessions sessions, ${seconds} s per system after ${warmup_seconds} s of warm-up, $runs runs; idle: $idle_count connections to tme, $dovecot_idle_count to Dovecot"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); load before: $(uptime | sed 's/.*load average: //')"
echo "$("$tme" --version); Dovecot $(dovecot --version)"
work=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/tme-bench-imap.XXXXXX")
chmod 755 "$work"
pick_corpus
start_tme
start_dovecot
for run in $(seq "$runs"); do
  tme_result=$(run_mix "$tme_port")
  dovecot_result=$(run_mix "$dovecot_port")
  echo "run $run: tme:"
  sed 's/^/  /' <<<"$tme_result"
  echo "run $run: dovecot:"
  sed 's/^/  /' <<<"$dovecot_result"
  tme_total=$(grep '^total' <<<"$tme_result")
  dovecot_total=$(grep '^total' <<<"$dovecot_result")
  awk -v a="$(field commands_per_second "$tme_total")" -v b="$(field commands_per_second "$dovecot_total")" \
    -v c="$(field p99_ms "$tme_total")" -v d="$(field p99_ms "$dovecot_total")" -v run="$run" 'BEGIN {
    printf "run %d: ratio tme / dovecot: commands/s %.2f, p99 latency %.2f\n", run, a / b, c / d
  }'
done

# Memory with idle connections, in two batches: the first tenth warms the allocator (each
# login is an argon2id verification of 19 MiB, whose freed memory glibc's arenas keep), and
# per connection = the RSS the other nine tenths added / their number.
first_batch=$((idle_count / 10))
start_idle "$tme_port" "$first_batch"
first_load_pid=$load_pid
sleep 5
before=$(rss_kib "$tme_pid")
start_idle "$tme_port" $((idle_count - first_batch))
sleep 5
during=$(rss_kib "$tme_pid")
stop_idle
load_pid=$first_load_pid
stop_idle
awk -v b="$before" -v d="$during" -v n="$((idle_count - first_batch))" -v t="$idle_count" 'BEGIN {
  printf "tme idle: %d connections; RSS %.1f MiB with the first tenth idle, %.1f MiB with all: %.1f KiB per connection\n", t, b / 1024, d / 1024, (d - b) / n
}'

start_idle "$dovecot_port" "$dovecot_idle_count"
sleep 5
imap_pids="$(pgrep -x imap -P "$(cat "$work/dovecot/run/master.pid")" || true) $(pgrep -x imap-login -P "$(cat "$work/dovecot/run/master.pid")" || true)"
processes=$(wc -w <<<"$imap_pids")
rss_total=0
pss_total=0
for pid in $imap_pids; do
  rss_total=$((rss_total + $(rss_kib "$pid")))
  pss_total=$((pss_total + $(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup")))
done
stop_idle
awk -v r="$rss_total" -v p="$pss_total" -v n="$dovecot_idle_count" -v k="$processes" 'BEGIN {
  printf "dovecot idle: %d connections, %d imap and imap-login processes: RSS %.1f KiB per connection, PSS %.1f KiB per connection\n", n, k, r / n, p / n
}'
echo "load after: $(uptime | sed 's/.*load average: //')"
