# Shell functions the benchmark scripts share (sourced, never run): installing the peers,
# finding free loopback ports, waiting for a server, reading the load generators' output.
# No benchmark logic here: each script says what it measures and how.

# Installs the Debian PACKAGEs that are missing. Postfix, when installed here, stays
# unconfigured (nothing on port 25): the scripts run private instances.
install_missing() { # PACKAGE...
  local package missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
}

free_port() { # [ADDRESS]: a TCP port free on ADDRESS (127.0.0.1 by default)
  python3 -c 'import socket, sys; s = socket.socket(); s.bind((sys.argv[1], 0)); print(s.getsockname()[1])' "${1:-127.0.0.1}"
}

wait_for_port() { # PORT [ADDRESS]: waits up to 60 s for something to listen there
  python3 - "$1" "${2:-127.0.0.1}" <<'PYTHON'
import socket, sys, time
port, address = int(sys.argv[1]), sys.argv[2]
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        socket.create_connection((address, port), timeout=5).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit(f"nothing listens on {address}:{port}")
PYTHON
}

wait_for_greeting() { # PORT [ADDRESS]: waits up to 60 s for an SMTP 220 greeting there
  python3 - "$1" "${2:-127.0.0.1}" <<'PYTHON'
import socket, sys, time
port, address = int(sys.argv[1]), sys.argv[2]
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        with socket.create_connection((address, port), timeout=5) as connection:
            if connection.makefile("rb").readline().startswith(b"220"):
                sys.exit(0)
    except OSError:
        pass
    time.sleep(0.1)
sys.exit(f"nothing greets on {address}:{port}")
PYTHON
}

field() { # NAME LINE: the value of NAME=... in LINE
  sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p" <<<"$2"
}
