#!/usr/bin/env bash
# Runs every test of the workspace, after installing what the tests need.
# This is the README's test command and what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use as real peers. Installed only when missing, so a developer's
# second run is quick. swaks is the SMTP peer of crates/tme/tests/smtp.rs; python3 runs
# smtplib clients and, with its sqlite3 module, holds the store's lock in
# crates/tme/tests/spool.rs. (Later protocol tests add postfix, dovecot, nsd, chromium...)
APT_PACKAGES=(util-linux procps swaks python3)
missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  else
    echo "missing packages: ${missing[*]} (install them as root)" >&2
    exit 1
  fi
fi

echo "== format"
cargo fmt --all --check
echo "== clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== tests"
cargo test --workspace --locked
