#!/usr/bin/env bash
# Runs every test of the workspace, after installing what the tests need.
# This is the README's test command and what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use as real peers. Installed only when missing, so a developer's
# second run is quick. swaks and python3 (smtplib; its sqlite3 module holds the store's lock in
# crates/tme/tests/spool.rs) are the SMTP peers of crates/tme/tests/smtp.rs; postfix relays to
# tme in crates/tme/tests/postfix_relay.rs, which runs its own private instance (the package's
# system instance stays unconfigured: "No configuration" below, so nothing listens on port 25);
# rspamd is the spam filter of tests/rspamd.rs (tme-testkit runs a private one on a free
# loopback port, so a system rspamd started by the package, on its fixed ports, is in no test's
# way); nsd is the local authoritative DNS every test node's resolver asks (tme-testkit starts a
# private one); python3-dkim (dkimpy, with python3-authres for ARC) and openssl sign the DKIM
# and ARC test messages; python3-nacl and python3-dnspython let dkimpy verify our Ed25519 and
# RSA signatures against our own DNS; dnsutils (dig) and knot-dnsutils (kdig) query the `dns`
# role in crates/tme/tests/dns.rs, where nsd also runs as its secondary; isync (mbsync) syncs a
# mailbox with the IMAP server in crates/tme/tests/imap.rs, where Dovecot (dovecot-imapd: its
# `imap` binary, run by the test over a pipe, no daemon) answers the same FETCH commands for
# the differential test; fetchmail fetches over POP3 in crates/tme/tests/pop3.rs (its package
# starts no daemon unless configured); offlineimap3 and mutt sync and read a mailbox over IMAPS
# in crates/tme/tests/imap.rs; ldnsutils (ldns-keygen, ldns-signzone, ldns-key2ds) signs
# the DNSSEC zones of crates/tme/tests/dane.rs (tme-testkit's dnssec); chromium and
# chromium-driver (its WebDriver server, chromedriver) are the headless browser of the webmail
# tests in crates/tme/tests/web.rs, where curl (OpenSSL's TLS) also fetches the webmail over
# the `https` listener.
APT_PACKAGES=(util-linux procps python3 swaks postfix rspamd nsd python3-dkim python3-authres python3-nacl python3-dnspython openssl ca-certificates dnsutils knot-dnsutils isync dovecot-imapd fetchmail offlineimap3 mutt ldnsutils chromium chromium-driver curl)
missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
    # Debian's nsd package enables and starts a system NSD on port 53 (unless policy-rc.d
    # forbids it); the tests run their own, so the system one is stopped and disabled.
    if [[ " ${missing[*]} " == *" nsd "* ]]; then
      if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        systemctl disable --now nsd.service || true
      elif [ -x /etc/init.d/nsd ]; then
        /etc/init.d/nsd stop || true
      fi
    fi
    # Debian's dovecot package starts a system Dovecot on 143 and 993 in the same way; the
    # tests run Dovecot's imap binary themselves, so the system one is stopped and disabled.
    if [[ " ${missing[*]} " == *" dovecot-imapd "* ]]; then
      if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        systemctl disable --now dovecot.service || true
      elif [ -x /etc/init.d/dovecot ]; then
        /etc/init.d/dovecot stop || true
      fi
    fi
  else
    echo "missing packages: ${missing[*]} (install them as root)" >&2
    exit 1
  fi
fi

# Python packages from PyPI, for the python3 the tests run (Debian has no imapclient):
# imapclient speaks IMAP in crates/tme/tests/imap.rs, and pexpect runs mutt there under a
# pseudo-terminal; selenium drives Debian's chromium over WebDriver in
# crates/tme/tests/web.rs (PyPI's follows WebDriver's changes; bookworm's python3-selenium
# stays at 4.8). Installed only when missing.
PIP_PACKAGES=(imapclient pexpect selenium)
for package in "${PIP_PACKAGES[@]}"; do
  python3 -c "import $package" 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check "$package"
done

echo "== format"
cargo fmt --all --check
echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests"
cargo test --workspace --locked
