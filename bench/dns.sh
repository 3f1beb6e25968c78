#!/usr/bin/env bash
# Authoritative DNS benchmark: Debian's dnsperf against
#   (a) tme's `dns` role, serving BENCH_DOMAINS hosted domains made from its directory, and
#   (b) NSD serving the same zones, transferred from tme by AXFR (NSD is tme's secondary, so
#       both hold the very same records and serials),
# with the same query file, over UDP and then TCP, one after the other, in one run. Response
# rate limiting is off in both (tme: dns.responses_per_second_max = 0; NSD: rrl-ratelimit: 0),
# since every query comes from 127.0.0.1. Both are private instances on free loopback ports
# in a temporary folder; NSD gets one server process per core (server-count), tme its
# default threads.
#
#   apt-get install dnsperf nsd          # the peers (and python3, which makes the query file)
#   cargo build --release -p tme         # this script builds nothing: it runs
#                                        # $CARGO_TARGET_DIR/release/tme (or target/release/tme)
#   bench/dns.sh
#
# The domains (bench-0001.test ...) are added with one `tme domain add --file`, which makes
# every domain's DKIM keys (an RSA-2048 and an Ed25519 key each) on every core: with 1,000
# domains that setup takes minutes, done once for all runs. The query file has
# BENCH_QUERIES lines, each a name and type drawn (fixed seed) over every domain: the apex's
# SOA, NS, MX, TXT (SPF), AAAA (NODATA); DKIM, DMARC, MTA-STS and TLS-RPT TXT; the client
# set-up SRVs; the autoconfig/autodiscover/mta-sts CNAMEs; names that do not exist
# (NXDOMAIN, about 10%); a zone not hosted (REFUSED, 1%). dnsperf sends them with EDNS0
# (BENCH_EDNS=1, the default; 0 sends plain queries) for BENCH_SECONDS seconds, from
# BENCH_CLIENTS clients (sockets or TCP connections) with up to BENCH_OUTSTANDING queries in
# flight, on BENCH_THREADS threads.
#
# Prints one line per system, transport and run (queries/s, completed, lost, average and
# maximum latency, response codes), then the ratios tme / NSD. Runs BENCH_RUNS times (3).
# Temporary folders live in BENCH_TMPDIR (or TMPDIR, or /tmp). BENCH_SAVE_DATA_DIR=DIR keeps
# a copy of tme's data directory with its domains; BENCH_DATA_DIR=DIR starts from a copy of
# such a directory instead of adding the domains again (its domains, whatever BENCH_DOMAINS).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
source bench/lib.sh

domains="${BENCH_DOMAINS:-1000}"
queries="${BENCH_QUERIES:-100000}"
seconds="${BENCH_SECONDS:-15}"
clients="${BENCH_CLIENTS:-20}"
outstanding="${BENCH_OUTSTANDING:-200}"
threads="${BENCH_THREADS:-1}"
edns="${BENCH_EDNS:-1}"
runs="${BENCH_RUNS:-3}"

for program in dnsperf nsd python3; do
  if ! command -v "$program" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$program" ]; then
    echo "$program is missing: apt-get install dnsperf nsd python3" >&2
    exit 1
  fi
done
nsd_program=$(command -v nsd || echo /usr/sbin/nsd)
target_dir="${CARGO_TARGET_DIR:-target}"
if [ ! -x "$target_dir/release/tme" ]; then
  echo "no release build at $target_dir/release/tme: run cargo build --release -p tme" >&2
  exit 1
fi
tme="$(realpath "$target_dir/release/tme")"

free_ports() { # COUNT distinct ports, each free for both UDP and TCP on 127.0.0.1
  python3 - "$1" <<'EOF'
import socket, sys
held = []
while len(held) < int(sys.argv[1]):
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        udp.bind(("127.0.0.1", tcp.getsockname()[1]))
    except OSError:
        continue
    held.append((tcp, udp))
print(" ".join(str(tcp.getsockname()[1]) for tcp, _ in held))
EOF
}

# Waits until the server on PORT answers the SOA of every domain in FILE with SERIALS (a file
# of "domain serial" lines; empty: any serial), over UDP. Prints "domain serial" lines.
wait_for_zones() { # PORT DOMAIN_FILE SERIALS_FILE_OR_EMPTY TIMEOUT_SECONDS SERVER_PID
  python3 - "$@" <<'EOF'
import os, random, socket, struct, sys, time
port, domain_file, serial_file, timeout = int(sys.argv[1]), sys.argv[2], sys.argv[3], float(sys.argv[4])
server_pid = int(sys.argv[5])
domains = [line.strip() for line in open(domain_file) if line.strip()]
wanted = {}
if serial_file:
    wanted = dict(line.split() for line in open(serial_file) if line.strip())
def soa_serial(sock, domain):
    ident = random.randrange(65536)
    question = b"".join(bytes([len(label)]) + label.encode() for label in domain.split(".")) + b"\0"
    sock.sendto(struct.pack(">HHHHHH", ident, 0, 1, 0, 0, 0) + question + struct.pack(">HH", 6, 1), ("127.0.0.1", port))
    while True:
        data = sock.recv(4096)
        if struct.unpack(">H", data[:2])[0] != ident:
            continue
        if data[3] & 0x0f != 0 or struct.unpack(">H", data[6:8])[0] < 1:
            return None
        # The first answer: owner, type, class, TTL, length, then MNAME and RNAME and the
        # serial.
        at = skip_name(data, 12) + 4
        at = skip_name(data, at) + 10
        at = skip_name(data, skip_name(data, at))
        return str(struct.unpack(">I", data[at:at + 4])[0])
def skip_name(data, at):
    while True:
        length = data[at]
        if length >= 0xc0:
            return at + 2
        if length == 0:
            return at + 1
        at += 1 + length
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(0.2)
deadline = time.monotonic() + timeout
pending = list(domains)
found = {}
while pending:
    still = []
    for domain in pending:
        if time.monotonic() > deadline:
            sys.exit(f"zones not served as expected on port {port} in {timeout:.0f} s, e.g. {domain}")
        try:
            os.kill(server_pid, 0)
        except OSError:
            sys.exit(f"the server on port {port} stopped (see its log)")
        try:
            serial = soa_serial(sock, domain)
        except OSError:
            serial = None
        if serial is not None and (not wanted or wanted.get(domain) == serial):
            found[domain] = serial
        else:
            still.append(domain)
    pending = still
    if pending:
        if time.monotonic() > deadline:
            sys.exit(f"{len(pending)} of {len(domains)} zones not served as expected on port {port}, e.g. {pending[0]}")
        time.sleep(0.5)
for domain in domains:
    print(domain, found[domain])
EOF
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
    rm -rf "$work"
    work=""
  fi
}
trap cleanup EXIT

work=$(mktemp -d "${BENCH_TMPDIR:-${TMPDIR:-/tmp}}/tme-bench-dns.XXXXXX")
chmod 755 "$work"
data="$work/tme"

# (a) tme, with the domains; every other listener on a free port.
setup_start=$(date +%s.%N)
if [ -n "${BENCH_DATA_DIR:-}" ]; then
  cp -a "$BENCH_DATA_DIR" "$data"
  setup="copied from $BENCH_DATA_DIR"
else
  seq -f "bench-%04g.test" 1 "$domains" >"$work/domains"
  "$tme" --data-dir "$data" init --hostname mail.bench.test >/dev/null 2>&1
  "$tme" --data-dir "$data" partner add Bench >/dev/null
  "$tme" --data-dir "$data" domain add --file "$work/domains" --partner Bench | tail -1
  setup="domain add with DKIM keys"
fi
setup_end=$(date +%s.%N)
"$tme" --data-dir "$data" domain list --json | python3 -c 'import json, sys; print("\n".join(d["domain"] for d in json.load(sys.stdin)))' >"$work/domains"
domains=$(wc -l <"$work/domains")
if [ -n "${BENCH_SAVE_DATA_DIR:-}" ]; then
  cp -a "$data" "$BENCH_SAVE_DATA_DIR"
fi
first_domain=$(head -1 "$work/domains")
selector_day=$("$tme" --data-dir "$data" domain show "$first_domain" | sed -n 's/^ *rsa-\([0-9]*\)\._domainkey.*/\1/p' | head -1)
read -r tme_port nsd_port other_ports <<<"$(free_ports 10)"
environment=()
for role in smtp submission submissions imap imaps pop3 pop3s http; do
  port=${other_ports%% *}
  other_ports=${other_ports#* }
  environment+=("TME_LISTEN__${role^^}=127.0.0.1:$port")
done
env "${environment[@]}" TME_LISTEN__DNS="127.0.0.1:$tme_port" TME_DNS__RESPONSES_PER_SECOND_MAX=0 \
  TME_DNS__TRANSFER_ALLOW='["127.0.0.1"]' TME_LOG=warn "$tme" --data-dir "$data" serve >"$work/tme.log" 2>&1 &
tme_pid=$!
wait_for_zones "$tme_port" "$work/domains" "" 120 "$tme_pid" >"$work/serials" || { tail -5 "$work/tme.log" >&2; exit 1; }

# (b) NSD, a secondary of tme for every zone; rate limiting off; one server per core.
mkdir -p "$work/nsd"
{
  cat <<CONFIG
server:
  ip-address: 127.0.0.1@$nsd_port
  username: ""
  chroot: ""
  database: ""
  zonesdir: "$work/nsd"
  zonelistfile: "$work/nsd/zone.list"
  xfrdfile: "$work/nsd/xfrd.state"
  xfrdir: "$work/nsd"
  pidfile: "$work/nsd/nsd.pid"
  logfile: "$work/nsd/nsd.log"
  server-count: $(nproc)
  verbosity: 1
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
remote-control:
  control-enable: no
pattern:
  name: "from-tme"
  request-xfr: AXFR 127.0.0.1@$tme_port NOKEY
  allow-notify: 127.0.0.1 NOKEY
CONFIG
  while read -r domain; do
    printf 'zone:\n  name: "%s"\n  include-pattern: "from-tme"\n' "$domain"
  done <"$work/domains"
} >"$work/nsd/nsd.conf"
"$nsd_program" -d -c "$work/nsd/nsd.conf" >>"$work/nsd/nsd.log" 2>&1 &
nsd_pid=$!
wait_for_zones "$nsd_port" "$work/domains" "$work/serials" 300 "$nsd_pid" >/dev/null || { tail -5 "$work/nsd/nsd.log" >&2; exit 1; }

# The query file.
python3 - "$work/domains" "$selector_day" "$queries" >"$work/queries" <<'EOF'
import random, sys
domains = [line.strip() for line in open(sys.argv[1]) if line.strip()]
day, count = sys.argv[2], int(sys.argv[3])
random.seed(20261128)
# (weight, name pattern, type): what resolvers ask a mail domain's servers, roughly.
kinds = [
    (12, "{d}", "MX"), (6, "{d}", "TXT"), (4, "{d}", "SOA"), (4, "{d}", "NS"),
    (6, "{d}", "A"), (4, "{d}", "AAAA"),
    (8, "rsa-" + day + "._domainkey.{d}", "TXT"), (6, "ed25519-" + day + "._domainkey.{d}", "TXT"),
    (8, "_dmarc.{d}", "TXT"), (5, "_mta-sts.{d}", "TXT"), (3, "_smtp._tls.{d}", "TXT"),
    (3, "_imaps._tcp.{d}", "SRV"), (3, "_submissions._tcp.{d}", "SRV"), (2, "_pop3s._tcp.{d}", "SRV"),
    (2, "_jmap._tcp.{d}", "SRV"), (2, "_autodiscover._tcp.{d}", "SRV"),
    (3, "autoconfig.{d}", "A"), (2, "autodiscover.{d}", "AAAA"), (3, "mta-sts.{d}", "A"),
    (6, "www.{d}", "A"), (4, "nothing-{n}.{d}", "TXT"),
    (1, "example-{n}.org", "A"),
]
weights = [kind[0] for kind in kinds]
for _ in range(count):
    _, pattern, record_type = random.choices(kinds, weights)[0]
    name = pattern.format(d=random.choice(domains), n=random.randrange(100000))
    print(name, record_type)
EOF

# One dnsperf run; prints its summary as "key=value" fields.
perf() { # PORT MODE
  local options=(-s 127.0.0.1 -p "$1" -m "$2" -d "$work/queries" -l "$seconds" -c "$clients"
    -q "$outstanding" -T "$threads")
  [ "$edns" = 1 ] && options+=(-e)
  dnsperf "${options[@]}" >"$work/dnsperf.out" 2>&1 || { cat "$work/dnsperf.out" >&2; return 1; }
  python3 - "$work/dnsperf.out" <<'EOF'
import re, sys
text = open(sys.argv[1]).read()
def number(pattern):
    match = re.search(pattern, text)
    return match.group(1) if match else "?"
latency = re.search(r"Average Latency \(s\):\s*([0-9.]+) \(min ([0-9.]+), max ([0-9.]+)\)", text)
qps = float(number(r"Queries per second:\s*([0-9.]+)"))
completed = number(r"Queries completed:\s*([0-9]+)")
lost = number(r"Queries lost:\s*([0-9]+)")
codes = number(r"Response codes:\s*(.*)")
average_ms = float(latency.group(1)) * 1000
maximum_ms = float(latency.group(3)) * 1000
print(f"qps={qps:.0f} completed={completed} lost={lost} avg_ms={average_ms:.3f} max_ms={maximum_ms:.1f} codes=[{codes}]")
EOF
}

echo "dns: $domains domains, $queries queries in the file, $seconds s per measurement, dnsperf -c $clients -q $outstanding -T $threads$([ "$edns" = 1 ] && echo " -e"), $runs runs"
echo "zones: tme answered every SOA, NSD transferred all $domains zones with the same serials; setup ($setup) $(awk -v s="$setup_start" -v e="$setup_end" 'BEGIN { printf "%.0f", e - s }') s"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo); load before: $(uptime | sed 's/.*load average: //')"
echo "$("$tme" --version); $("$nsd_program" -v 2>&1 | head -1); $(dnsperf -h 2>&1 | grep -m1 Version)"
for run in $(seq "$runs"); do
  for mode in udp tcp; do
    tme_line=$(perf "$tme_port" "$mode")
    nsd_line=$(perf "$nsd_port" "$mode")
    echo "run $run $mode: tme: $tme_line"
    echo "run $run $mode: nsd: $nsd_line"
    awk -v a="$(field qps "$tme_line")" -v b="$(field qps "$nsd_line")" \
      -v c="$(field avg_ms "$tme_line")" -v d="$(field avg_ms "$nsd_line")" -v run="$run" -v mode="$mode" 'BEGIN {
      printf "run %d %s: ratio tme / nsd: queries/s %.2f, average latency %.2f\n", run, mode, a / b, c / d
    }'
  done
done
echo "load after: $(uptime | sed 's/.*load average: //')"
