#!/usr/bin/env bash
# Inbound SMTP benchmark: the same messages at the same concurrency into
#   (a) tme on the embedded store (250 only once the message is durably in the Inbox), and
#   (b) Postfix relaying over LMTP into Dovecot (Postfix's 250 once its queue file is fsynced;
#       stored once Dovecot has delivered to the Maildir),
# both from this machine's packages, private instances on loopback ports in a temporary folder,
# fsync on in both (tme always; Postfix's queue by default; Dovecot's default
# mail_fsync = optimized).
#
#   bench/smtp-inbound.sh
#
# Two phases per system, one after the other:
# - throughput: Postfix's smtp-source sends BENCH_MESSAGES messages of BENCH_SIZE body bytes
#   over BENCH_SESSIONS parallel sessions (a new connection per message, as MX traffic
#   comes); messages/s = messages stored / wall time from the first connection until the last
#   is stored (for tme: until smtp-source exits, every 250 being a stored message; for
#   Postfix + Dovecot: until the Maildir holds them all, polled every 20 ms);
# - latency: bench/smtp-latency.py sends BENCH_LATENCY_MESSAGES messages of the same size
#   over as many sessions, timing each from the final "." to the reply.
# Prints one line per system and run, then the ratios. Runs BENCH_RUNS times (3). Needs
# root: Postfix's and Dovecot's masters do. Temporary folders live in BENCH_TMPDIR (or
# TMPDIR, or /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

messages="${BENCH_MESSAGES:-5000}"
sessions="${BENCH_SESSIONS:-16}"
size="${BENCH_SIZE:-5000}"
latency_messages="${BENCH_LATENCY_MESSAGES:-2000}"
runs="${BENCH_RUNS:-3}"
sender="sender@sender.test"
recipient="bench@bench.test"

if [ "$(id -u)" -ne 0 ]; then
  echo "run as root: Postfix's and Dovecot's master processes need it" >&2
  exit 1
fi
install_missing postfix dovecot-core dovecot-lmtpd python3 nsd

cargo build --release --locked -q -p tme
target_dir="${CARGO_TARGET_DIR:-target}"
tme="$(realpath "$target_dir/release/tme")"
latency_client="$(realpath bench/smtp-latency.py)"

now() { date +%s.%N; }

# tme's resolver asks a private NSD serving an empty root zone: every SPF, DKIM and DMARC
# lookup gets a real DNS answer (NXDOMAIN) over loopback, as a node beside a local resolver
# would, and the machine's own resolver (which may drop queries offline) is out of the way.
# Sets nsd_port and nsd_pid.
start_nsd() {
  local directory="$work/nsd"
  mkdir -p "$directory"
  nsd_port=$(free_port)
  cat >"$directory/root.zone" <<ZONE
\$ORIGIN .
\$TTL 3600
@ IN SOA ns.bench.test. hostmaster.bench.test. 1 3600 600 86400 60
@ IN NS ns.bench.test.
ZONE
  cat >"$directory/nsd.conf" <<CONFIG
server:
  ip-address: 127.0.0.1@$nsd_port
  username: ""
  chroot: ""
  zonesdir: "$directory"
  database: ""
  zonelistfile: "$directory/zone.list"
  xfrdfile: "$directory/xfrd.state"
  pidfile: "$directory/nsd.pid"
  logfile: "$directory/nsd.log"
  server-count: 1
remote-control:
  control-enable: no
zone:
  name: "."
  zonefile: "$directory/root.zone"
CONFIG
  nsd -d -c "$directory/nsd.conf" >>"$directory/nsd.log" 2>&1 &
  nsd_pid=$!
  sleep 1
}

work=""
tme_pid=""
nsd_pid=""
cleanup() {
  if [ -n "$nsd_pid" ]; then
    kill "$nsd_pid" 2>/dev/null || true
    wait "$nsd_pid" 2>/dev/null || true
    nsd_pid=""
  fi
  if [ -n "$tme_pid" ]; then
    kill "$tme_pid" 2>/dev/null || true
    wait "$tme_pid" 2>/dev/null || true
    tme_pid=""
  fi
  if [ -n "$work" ]; then
    [ -f "$work/postfix/config/main.cf" ] && postfix -c "$work/postfix/config" stop >/dev/null 2>&1 || true
    if [ -f "$work/dovecot/run/master.pid" ]; then
      kill "$(cat "$work/dovecot/run/master.pid")" 2>/dev/null || true
      sleep 1
    fi
    rm -rf "$work"
    work=""
  fi
}
trap cleanup EXIT

# (a) tme. Sets tme_stored, tme_seconds, tme_latency.
run_tme() {
  local data="$work/tme" port
  port=$(free_port)
  "$tme" --data-dir "$data" init --hostname mail.bench.test >/dev/null 2>&1
  "$tme" --data-dir "$data" partner add Bench >/dev/null 2>&1
  "$tme" --data-dir "$data" domain add bench.test --partner Bench >/dev/null 2>&1
  echo "bench password" | "$tme" --data-dir "$data" account add "$recipient" --password-stdin >/dev/null 2>&1
  # Every listener on a free port; the per-address connection limit out of the way (every
  # session comes from 127.0.0.1, and a closed connection frees its slot a moment later).
  local role environment=()
  for role in submission submissions imap imaps pop3 pop3s http dns; do
    environment+=("TME_LISTEN__${role^^}=127.0.0.1:$(free_port)")
  done
  [ -n "$nsd_pid" ] || start_nsd
  env "${environment[@]}" TME_LISTEN__SMTP="127.0.0.1:$port" TME_SMTP__CONNECTIONS_PER_IP_MAX=1000 \
    TME_RESOLVER__NAMESERVERS="[\"127.0.0.1:$nsd_port\"]" TME_LOG=warn "$tme" --data-dir "$data" serve >"$work/tme.log" 2>&1 &
  tme_pid=$!
  wait_for_greeting "$port"

  local start end
  start=$(now)
  smtp-source -s "$sessions" -m "$messages" -l "$size" -M client.bench.test -f "$sender" -t "$recipient" "127.0.0.1:$port"
  end=$(now)
  tme_seconds=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }')
  tme_stored=$("$tme" --data-dir "$data" account show "$recipient" --json 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin)["messages"])')
  tme_latency=$(python3 "$latency_client" "127.0.0.1:$port" --sessions "$sessions" --messages "$latency_messages" \
    --size "$size" --sender "$sender" --recipient "$recipient")
  kill "$tme_pid"
  wait "$tme_pid" || true
  tme_pid=""
}

maildir_count() {
  local maildir="$work/mail/bench.test/bench/Maildir"
  local count=0
  [ -d "$maildir/new" ] && count=$(( $(ls -f "$maildir/new" | wc -l) - 2 ))
  [ -d "$maildir/cur" ] && count=$(( count + $(ls -f "$maildir/cur" | wc -l) - 2 ))
  echo "$count"
}

wait_for_maildir() { # COUNT
  for _ in $(seq 30000); do
    [ "$(maildir_count)" -ge "$1" ] && return 0
    sleep 0.02
  done
  echo "Dovecot holds $(maildir_count) of $1 messages after 10 minutes" >&2
  postqueue -c "$work/postfix/config" -p >&2 || true
  tail -20 "$work/postfix/postfix.log" >&2 || true
  return 1
}

# (b) Postfix relaying over LMTP into Dovecot. Sets pd_stored, pd_seconds, pd_accepted_seconds,
# pd_latency.
run_postfix_dovecot() {
  local smtpd_port lmtp_port
  smtpd_port=$(free_port)
  lmtp_port=$(free_port)
  mkdir -p "$work/dovecot" "$work/mail" "$work/postfix/config" "$work/postfix/queue"
  chown nobody:nogroup "$work/mail"
  # Dovecot: LMTP only, every user exists and maps to nobody with a Maildir under $work/mail.
  # mail_fsync is Dovecot's default (optimized): each message file is fsynced before its
  # rename into new/, the index logs fdatasynced.
  cat >"$work/dovecot/dovecot.conf" <<EOF
base_dir = $work/dovecot/run
state_dir = $work/dovecot/state
log_path = $work/dovecot/dovecot.log
instance_name = tme-bench
protocols = lmtp
listen = 127.0.0.1
ssl = no
postmaster_address = postmaster@bench.test
mail_location = maildir:~/Maildir
mail_fsync = optimized
first_valid_uid = 100
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=$work/mail/%d/%n allow_all_users=yes
}
passdb {
  driver = static
  args = nopassword=y
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $lmtp_port
  }
}
EOF
  dovecot -c "$work/dovecot/dovecot.conf"
  wait_for_greeting "$lmtp_port"

  # Postfix: Debian's defaults, except what a private relay on loopback needs.
  cat >"$work/postfix/config/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $work/postfix/queue
data_directory = $work/postfix/data
maillog_file = $work/postfix/postfix.log
maillog_file_prefixes = $work
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = relay.bench.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
relay_domains = bench.test
transport_maps = inline:{ bench.test=lmtp:inet:127.0.0.1:$lmtp_port }
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
disable_dns_lookups = yes
smtp_host_lookup = native
lmtp_host_lookup = native
EOF
  cat >"$work/postfix/config/master.cf" <<EOF
127.0.0.1:$smtpd_port inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
lmtp unix - - n - - lmtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
EOF
  postfix -c "$work/postfix/config" check
  postfix -c "$work/postfix/config" start >/dev/null 2>&1
  wait_for_greeting "$smtpd_port"

  local start accepted end
  start=$(now)
  smtp-source -s "$sessions" -m "$messages" -l "$size" -M client.bench.test -f "$sender" -t "$recipient" "127.0.0.1:$smtpd_port"
  accepted=$(now)
  wait_for_maildir "$messages"
  end=$(now)
  pd_stored=$(maildir_count)
  pd_seconds=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }')
  pd_accepted_seconds=$(awk -v s="$start" -v e="$accepted" 'BEGIN { printf "%.3f", e - s }')
  pd_latency=$(python3 "$latency_client" "127.0.0.1:$smtpd_port" --sessions "$sessions" --messages "$latency_messages" \
    --size "$size" --sender "$sender" --recipient "$recipient")
  wait_for_maildir $((messages + latency_messages))
}

echo "smtp-inbound: $messages messages of $size body bytes over $sessions sessions (throughput), $latency_messages over $sessions sessions (latency), $runs runs"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); load before: $(uptime | sed 's/.*load average: //')"
echo "$("$tme" --version); Postfix $(postconf -d -h mail_version 2>/dev/null); Dovecot $(dovecot --version)"
for run in $(seq "$runs"); do
  work=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/tme-bench-smtp.XXXXXX")
  chmod 755 "$work"
  run_tme
  run_postfix_dovecot
  cleanup
  tme_rate=$(awk -v n="$tme_stored" -v t="$tme_seconds" 'BEGIN { printf "%.0f", n / t }')
  pd_rate=$(awk -v n="$pd_stored" -v t="$pd_seconds" 'BEGIN { printf "%.0f", n / t }')
  pd_accepted_rate=$(awk -v n="$messages" -v t="$pd_accepted_seconds" 'BEGIN { printf "%.0f", n / t }')
  tme_p99=$(field p99_ms "$tme_latency")
  pd_p99=$(field p99_ms "$pd_latency")
  echo "run $run: tme: $tme_stored stored in ${tme_seconds} s = $tme_rate messages/s; latency: $tme_latency"
  echo "run $run: postfix+dovecot: $pd_stored stored in ${pd_seconds} s = $pd_rate messages/s (Postfix accepted all in ${pd_accepted_seconds} s = $pd_accepted_rate messages/s); latency: $pd_latency"
  awk -v a="$tme_rate" -v b="$pd_rate" -v c="$tme_p99" -v d="$pd_p99" -v run="$run" 'BEGIN {
    printf "run %d: ratio tme / postfix+dovecot: throughput %.2f, p99 end-of-DATA to 250 %.2f\n", run, a / b, c / d
  }'
  if [ "$tme_stored" -ne "$messages" ] || [ "$pd_stored" -ne "$messages" ]; then
    echo "run $run: stored counts differ from the $messages sent" >&2
    exit 1
  fi
done
echo "load after: $(uptime | sed 's/.*load average: //')"
