#!/usr/bin/env bash
# Submission benchmark: the same messages, submitted the same way, into
#   (a) tme's `submission` role (587 with STARTTLS), and
#   (b) Postfix as a submission server (STARTTLS required, SASL through Dovecot's auth
#       service, DKIM by OpenDKIM milters),
# both relaying to the SAME Postfix smtp-sink (one process for the whole invocation) on
# another loopback address, which plays the remote MX. Private instances on loopback ports
# in a temporary folder, from this machine's packages.
#
#   bench/submission.sh
#
# How it is kept fair:
# - One client for both: bench/submission-load.py, a mail client's session (EHLO, STARTTLS,
#   EHLO, AUTH PLAIN, then MAIL/RCPT/DATA one command at a time, no pipelining).
#   Postfix's smtp-source speaks neither STARTTLS nor AUTH, so it cannot submit.
# - TLS: both present the same certificate and key (tme init's self-signed ECDSA P-256);
#   the client negotiates what each offers (TLS 1.3 with both).
# - AUTH: both check the same argon2id hash (tme's own, m=19456 KiB, t=2, p=1, copied into
#   Dovecot's passwd-file with the {ARGON2ID} scheme); AUTH only after STARTTLS in both
#   (tme always; Postfix smtpd_tls_auth_only). One check per session: the sessions carry many
#   messages each, as a mail program or an application sending through its provider does.
#   The connection-per-message phase pays a handshake and a check per message.
# - Sender: both refuse an envelope sender that is not the user's (tme: its directory;
#   Postfix: smtpd_sender_login_maps + reject_sender_login_mismatch). tme also checks the
#   From field and fixes up Date/Message-ID/Bcc (Postfix's cleanup adds a missing Date and
#   Message-ID; both are present here).
# - DKIM: both sign every message, relaxed/relaxed, with an RSA-2048 key and an Ed25519 key
#   (two signatures per message: tme with the domain's keys from `domain add`; Postfix
#   through two OpenDKIM milters in a row, one per key, made by openssl). The sink's copies
#   are checked to carry two DKIM-Signature fields each.
# - Durability: both answer 250 only once the signed message is durably queued: tme fsyncs
#   the blob and its folder and commits queue.sqlite (synchronous=FULL); Postfix's cleanup
#   fsyncs the queue file (its default). Neither runs with fsync off.
# - Routing: both send everything to the sink as a relay host given as an IP address
#   (tme: queue.relay_host = "ADDRESS:PORT"; Postfix: relayhost = [ADDRESS]:PORT), so no
#   DNS is involved on either side. Plain SMTP to the sink (smtp-sink offers no STARTTLS).
#   Concurrency towards the sink at each one's defaults: tme up to 4 connections per
#   destination, 100 messages each (queue.connections_per_domain_max,
#   messages_per_connection_max); Postfix up to 20 (default_destination_concurrency_limit),
#   connections reused when the destination is backlogged (smtp_connection_cache_on_demand).
# - One system at a time: tme runs (and is stopped) before Postfix starts, in each run.
#
# Each run, for each system, three phases (messages of BENCH_SIZE body bytes, BENCH_SESSIONS
# parallel sessions or clients; a phase of 0 messages is skipped):
# - burst: BENCH_MESSAGES messages, each session sending as fast as it is answered;
# - paced: BENCH_LATENCY_MESSAGES at BENCH_LATENCY_RATE messages/s in all, a load both
#   systems take, for the end-to-end latency of a server that is not saturated;
# - connection per message: BENCH_CONNECTION_MESSAGES, a new connection (TLS, AUTH) each.
# Messages/s = messages the sink received / time from the first connection until the sink had
# the last one (its dump file's modification time); the sink's own counter (smtp-sink -c)
# says when all came. End-to-end latency per message: from the submission's 250 (client's
# clock) to the sink's copy (the dump file's time, kept at the kernel's clock tick: a few
# milliseconds). The sink dumps every message to a tmpfs folder (BENCH_SINK_DIR, /dev/shm by
# default) so that it never waits for a disk. Every message must reach the sink, and the
# first three of each phase must carry two DKIM signatures that verify (dkimpy).
#
# Prints one line per system, phase and run, then the ratios. Runs BENCH_RUNS times (3).
# Needs root: Postfix's and Dovecot's masters do. Installs the Debian packages it needs.
# Temporary folders live in BENCH_TMPDIR (or TMPDIR, or /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

messages="${BENCH_MESSAGES:-5000}"
sessions="${BENCH_SESSIONS:-16}"
size="${BENCH_SIZE:-5000}"
latency_messages="${BENCH_LATENCY_MESSAGES:-1000}"
latency_rate="${BENCH_LATENCY_RATE:-40}"
connection_messages="${BENCH_CONNECTION_MESSAGES:-600}"
runs="${BENCH_RUNS:-3}"
sink_address="${BENCH_SINK_ADDRESS:-127.0.0.9}"
user="sender@bench.test"
password="bench password"
recipient="friend@remote.test"

if [ "$(id -u)" -ne 0 ]; then
  echo "run as root: Postfix's and Dovecot's master processes need it" >&2
  exit 1
fi
install_missing postfix dovecot-core opendkim opendkim-tools python3 python3-dkim python3-nacl openssl

cargo build --release --locked -q -p tme
target_dir="${CARGO_TARGET_DIR:-target}"
tme="$(realpath "$target_dir/release/tme")"
load="$(realpath bench/submission-load.py)"
# Debian's Python, which has the python3-dkim and python3-nacl packages.
python=/usr/bin/python3

work=""
sink=""
sink_pid=""
tme_pid=""
opendkim_pids=()
stop_run() { # whatever the current run started
  if [ -n "$tme_pid" ]; then
    kill "$tme_pid" 2>/dev/null || true
    wait "$tme_pid" 2>/dev/null || true
    tme_pid=""
  fi
  if [ -n "$work" ] && [ -d "$work/run" ]; then
    [ -f "$work/run/postfix/config/main.cf" ] && postfix -c "$work/run/postfix/config" stop >/dev/null 2>&1 || true
    if [ -f "$work/run/dovecot/run/master.pid" ]; then
      kill "$(cat "$work/run/dovecot/run/master.pid")" 2>/dev/null || true
    fi
  fi
  local pid
  for pid in "${opendkim_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  opendkim_pids=()
  if [ -n "$work" ] && [ -d "$work/run" ]; then
    sleep 1
    rm -rf "$work/run"
  fi
}
cleanup() {
  stop_run
  if [ -n "$sink_pid" ]; then
    kill "$sink_pid" 2>/dev/null || true
    wait "$sink_pid" 2>/dev/null || true
    sink_pid=""
  fi
  [ -n "$sink" ] && rm -rf "$sink"
  [ -n "$work" ] && rm -rf "$work"
  sink=""
  work=""
}
trap cleanup EXIT

work=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/tme-bench-submission.XXXXXX")
chmod 755 "$work"
sink=$(mktemp -d "${BENCH_SINK_DIR:-/dev/shm}/tme-bench-sink.XXXXXX")
# smtp-sink drops to nobody and makes its dump folders itself.
chmod 777 "$sink"

# The remote MX: one smtp-sink for every system and run. -c prints its counters (sessions,
# QUITs, messages) after every message; -d dumps each message to its own file.
sink_port=$(free_port "$sink_address")
smtp-sink -u nobody -c -d "$sink/incoming/%H%M%S." "$sink_address:$sink_port" 256 >"$sink/counters" 2>&1 &
sink_pid=$!
wait_for_greeting "$sink_port" "$sink_address"

sink_count() { # messages the sink has received so far
  local last
  last=$(tail -c 200 "$sink/counters" | tr '\r' '\n' | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1)
  echo "${last:-0}"
}

# Submits COUNT messages to PORT and waits until the sink has them all; prints the load
# generator's line and the sink's report, separated by " | ". MODE: burst, paced or
# per-message.
measure() { # NAME PORT COUNT MODE
  local name="$1" port="$2" count="$3" mode="$4" before sent start received extra=()
  case "$mode" in
    paced) extra=(--rate "$latency_rate") ;;
    per-message) extra=(--connection-per-message) ;;
  esac
  before=$(sink_count)
  sent=$(SUBMISSION_PASSWORD="$password" "$python" "$load" send "127.0.0.1:$port" --sessions "$sessions" \
    --messages "$count" --size "$size" --user "$user" --recipient "$recipient" --tag "$name-$mode" \
    --accepted "$work/accepted" "${extra[@]}") || return 1
  local waited=0 seen=-1 now_count
  while now_count=$(sink_count); [ "$now_count" -lt $((before + count)) ]; do
    if [ "$now_count" -ne "$seen" ]; then
      seen=$now_count
      waited=0
    fi
    waited=$((waited + 1))
    if [ "$waited" -gt 6000 ]; then # 2 minutes without a new message
      echo "$name: the sink has $((now_count - before)) of $count messages and gets no more" >&2
      return 1
    fi
    sleep 0.02
  done
  # Every transaction is over: the folder can move away whole.
  mv "$sink/incoming" "$sink/done" || return 1
  start=$(sed -n 's/.*start_unix=\([0-9.]*\).*/\1/p' <<<"$sent")
  received=$("$python" "$load" report --dumps "$sink/done" --accepted "$work/accepted" --start "$start" \
    --keys "$work/run/keys") || return 1
  echo "$sent | $received"
  rm -rf "$sink/done"
}

phases=(burst paced per-message)
declare -A phase_messages=([burst]="$messages" [paced]="$latency_messages" [per-message]="$connection_messages")
declare -A phase_names=([burst]="burst, $sessions sessions" [paced]="paced at $latency_rate/s"
  [per-message]="connection per message")
declare -A results

# Every phase against one system; measure's lines go to results["SYSTEM PHASE"].
measure_phases() { # SYSTEM PORT
  local phase
  for phase in "${phases[@]}"; do
    [ "${phase_messages[$phase]}" -gt 0 ] || continue
    results["$1 $phase"]=$(measure "$1" "$2" "${phase_messages[$phase]}" "$phase") || return 1
  done
}

# (a) tme. Sets results and tme_hash.
run_tme() {
  local data="$work/run/tme" port role environment=()
  mkdir -p "$work/run"
  "$tme" --data-dir "$data" init --hostname tme.bench.test >/dev/null 2>&1
  "$tme" --data-dir "$data" partner add Bench >/dev/null 2>&1
  "$tme" --data-dir "$data" domain add bench.test --partner Bench >/dev/null 2>&1
  echo "$password" | "$tme" --data-dir "$data" account add "$user" --password-stdin >/dev/null 2>&1
  # The public keys, to verify the signatures the sink receives.
  "$tme" --data-dir "$data" domain show bench.test | "$python" -c '
import re, sys
for line in sys.stdin:
    if "._domainkey." in line and " TXT " in line:
        print(line.split()[0], "".join(re.findall(r"\"([^\"]*)\"", line.split(" TXT ", 1)[1])))
' >"$work/run/keys"
  port=$(free_port)
  # Every other listener on a free port; the per-address connection limit out of the way
  # (every session comes from 127.0.0.1).
  for role in smtp submissions imap imaps pop3 pop3s http dns; do
    environment+=("TME_LISTEN__${role^^}=127.0.0.1:$(free_port)")
  done
  env "${environment[@]}" TME_LISTEN__SUBMISSION="127.0.0.1:$port" TME_SMTP__CONNECTIONS_PER_IP_MAX=1000 \
    TME_QUEUE__RELAY_HOST="$sink_address:$sink_port" TME_LOG=warn \
    "$tme" --data-dir "$data" serve >"$work/tme.log" 2>&1 &
  tme_pid=$!
  wait_for_greeting "$port"
  measure_phases tme "$port" || { tail -n 5 "$work/tme.log" >&2; exit 1; }
  # The same hash for Dovecot, and the same certificate for Postfix, below.
  tme_hash=$("$python" -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT password_hash FROM accounts WHERE address = ?", (sys.argv[2],)).fetchone()[0])' \
    "$data/directory.sqlite" "$user")
  mkdir -p "$work/run/tls"
  cp "$data/tls/certificate.pem" "$data/tls/private-key.pem" "$work/run/tls/"
  kill "$tme_pid"
  wait "$tme_pid" || true
  tme_pid=""
}

postfix_failed() {
  tail -n 5 "$work/run/postfix/postfix.log" "$work/run/opendkim/"*.log "$work/run/dovecot/dovecot.log" >&2 || true
  exit 1
}

# An OpenDKIM milter signing mail from bench.test with a new key of its own (made by
# `openssl genpkey` with OPENSSL_OPTIONS...). Appends its PID to opendkim_pids.
start_opendkim() { # NAME ALGORITHM PORT OPENSSL_OPTIONS...
  local name="$1" algorithm="$2" port="$3" directory="$work/run/opendkim"
  shift 3
  mkdir -p "$directory"
  openssl genpkey "$@" -out "$directory/$name.pem" 2>/dev/null
  echo "$name._domainkey.bench.test bench.test:$name:$directory/$name.pem" >"$directory/$name.keys"
  # The public key as its DNS record would give it (RFC 6376 §3.6.1; RFC 8463 §4: the raw
  # 32-byte Ed25519 key), to verify the signatures the sink receives.
  local public
  if [ "$name" = ed25519 ]; then
    public=$(openssl pkey -in "$directory/$name.pem" -pubout -outform DER | tail -c 32 | base64 -w0)
  else
    public=$(openssl pkey -in "$directory/$name.pem" -pubout -outform DER | base64 -w0)
  fi
  echo "$name._domainkey.bench.test v=DKIM1; k=$name; p=$public" >>"$work/run/keys"
  echo "*@bench.test $name._domainkey.bench.test" >"$directory/$name.signing"
  cat >"$directory/$name.conf" <<EOF
Syslog no
Mode s
Canonicalization relaxed/relaxed
SignatureAlgorithm $algorithm
KeyTable file:$directory/$name.keys
SigningTable refile:$directory/$name.signing
OversignHeaders From
RequireSafeKeys no
Socket inet:$port@127.0.0.1
PidFile $directory/$name.pid
UserID opendkim
EOF
  chown -R opendkim "$directory"
  opendkim -f -x "$directory/$name.conf" >"$directory/$name.log" 2>&1 &
  opendkim_pids+=("$!")
  wait_for_port "$port"
}

# (b) Postfix + Dovecot's auth + OpenDKIM. Sets results.
run_postfix() {
  local run="$work/run" smtpd_port auth_port rsa_milter_port ed25519_milter_port
  smtpd_port=$(free_port)
  auth_port=$(free_port)
  rsa_milter_port=$(free_port)
  ed25519_milter_port=$(free_port)
  mkdir -p "$run/dovecot" "$run/postfix/config" "$run/postfix/queue"

  # Dovecot: only its auth service, on a loopback TCP port for Postfix (smtpd_sasl_type
  # dovecot), with tme's own argon2id hash of the same password.
  echo "$user:{ARGON2ID}$tme_hash" >"$run/dovecot/users"
  cat >"$run/dovecot/dovecot.conf" <<EOF
base_dir = $run/dovecot/run
state_dir = $run/dovecot/state
log_path = $run/dovecot/dovecot.log
instance_name = tme-bench-submission
protocols =
listen = 127.0.0.1
ssl = no
auth_mechanisms = plain login
disable_plaintext_auth = no
passdb {
  driver = passwd-file
  args = $run/dovecot/users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}
service auth {
  inet_listener {
    address = 127.0.0.1
    port = $auth_port
  }
}
EOF
  dovecot -c "$run/dovecot/dovecot.conf"
  wait_for_port "$auth_port"

  # OpenDKIM: two milters, one per key, relaxed/relaxed. Debian's OpenDKIM 2.11.0~beta2
  # signs with one algorithm per instance (SignatureAlgorithm; a key table choosing the
  # algorithm per key came later), so the RSA and the Ed25519 signature come from two
  # instances in a row, as a site signing with both would run it.
  : >"$run/keys"
  start_opendkim rsa rsa-sha256 "$rsa_milter_port" -algorithm RSA -pkeyopt rsa_keygen_bits:2048
  start_opendkim ed25519 ed25519-sha256 "$ed25519_milter_port" -algorithm ed25519

  # Postfix: Debian's defaults, except what a private submission server on loopback needs.
  cp "$run/tls/certificate.pem" "$run/tls/private-key.pem" "$run/postfix/config/"
  chmod 600 "$run/postfix/config/private-key.pem"
  cat >"$run/postfix/config/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $run/postfix/queue
data_directory = $run/postfix/data
maillog_file = $run/postfix/postfix.log
maillog_file_prefixes = $work
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix.bench.test
mydomain = bench.test
myorigin = bench.test
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.1/32
relayhost = [$sink_address]:$sink_port
disable_dns_lookups = yes
smtp_host_lookup = native
smtpd_tls_chain_files = $run/postfix/config/private-key.pem, $run/postfix/config/certificate.pem
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:$auth_port
smtpd_sasl_auth_enable = yes
smtpd_tls_auth_only = yes
smtpd_sender_login_maps = inline:{ $user=$user }
smtpd_client_restrictions = permit_sasl_authenticated, reject
smtpd_sender_restrictions = reject_sender_login_mismatch
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_milters = inet:127.0.0.1:$rsa_milter_port, inet:127.0.0.1:$ed25519_milter_port
milter_default_action = tempfail
EOF
  cat >"$run/postfix/config/master.cf" <<EOF
127.0.0.1:$smtpd_port inet n - n - - smtpd -o smtpd_tls_security_level=encrypt
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
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
EOF
  postfix -c "$run/postfix/config" check
  postfix -c "$run/postfix/config" start >/dev/null 2>&1
  wait_for_greeting "$smtpd_port"
  measure_phases postfix "$smtpd_port" || postfix_failed
}

show() { # RUN SYSTEM VARIANT LINE
  local line="$4"
  echo "run $1: $2, $3: submitted $(field messages "$line") ($(field not_250 "$line") refused) over $(field connections "$line") connections at $(field submit_messages_per_second "$line")/s;" \
    "sink got $(field received "$line") ($(sed -n 's/.*dkim_signatures=\([0-9.]*\).*/\1/p' <<<"$line") DKIM signatures each, $(sed -n 's/.*dkim_verified=\([0-9/]*\).*/\1/p' <<<"$line") verified) in $(field seconds "$line") s = $(field messages_per_second "$line") messages/s;" \
    "end-to-end ms p50 $(field e2e_p50_ms "$line"), p90 $(field e2e_p90_ms "$line"), p99 $(field e2e_p99_ms "$line"), max $(field e2e_max_ms "$line")"
}

ratio() { # RUN PHASE TME_LINE POSTFIX_LINE
  awk -v a="$(field messages_per_second "$3")" -v b="$(field messages_per_second "$4")" \
    -v c="$(field e2e_p50_ms "$3")" -v d="$(field e2e_p50_ms "$4")" \
    -v e="$(field e2e_p99_ms "$3")" -v f="$(field e2e_p99_ms "$4")" -v run="$1" -v phase="$2" 'BEGIN {
    if (phase ~ /^paced/)
      printf "run %d: %s: end-to-end p50 tme %d ms, postfix %d ms; p99 tme %d ms, postfix %d ms\n", run, phase, c, d, e, f
    else
      printf "run %d: ratio tme / postfix, %s: throughput %.2f (end-to-end p99: tme %d ms, postfix %d ms)\n", run, phase, a / b, e, f
  }'
}

check_counts() { # LINE COUNT
  local received signatures verified
  received=$(field received "$1")
  signatures=$(sed -n 's/.*dkim_signatures=\([0-9.]*\).*/\1/p' <<<"$1")
  verified=$(sed -n 's/.*dkim_verified=\([0-9/]*\).*/\1/p' <<<"$1")
  if [ "$received" -ne "$2" ] || [ "$(field matched "$1")" -ne "$2" ] || [ "$signatures" != "2..2" ] ||
    [ "${verified%/*}" != "${verified#*/}" ] || [ "${verified#*/}" -eq 0 ]; then
    echo "expected $2 messages at the sink, each matched, with two DKIM signatures that verify: $1" >&2
    exit 1
  fi
}

echo "submission: messages of $size body bytes, $sessions sessions; burst of $messages, $latency_messages paced at $latency_rate/s, $connection_messages with a connection each; $runs runs"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); load before: $(uptime | sed 's/.*load average: //')"
echo "$("$tme" --version); Postfix $(postconf -d -h mail_version 2>/dev/null); Dovecot $(dovecot --version); $(opendkim -V 2>&1 | head -1)"
for run in $(seq "$runs"); do
  results=()
  run_tme
  run_postfix
  stop_run
  for phase in "${phases[@]}"; do
    [ "${phase_messages[$phase]}" -gt 0 ] || continue
    for system in tme postfix; do
      show "$run" "$system" "${phase_names[$phase]}" "${results["$system $phase"]}"
      check_counts "${results["$system $phase"]}" "${phase_messages[$phase]}"
    done
  done
  for phase in "${phases[@]}"; do
    [ "${phase_messages[$phase]}" -gt 0 ] || continue
    ratio "$run" "${phase_names[$phase]}" "${results["tme $phase"]}" "${results["postfix $phase"]}"
  done
done
echo "load after: $(uptime | sed 's/.*load average: //')"
