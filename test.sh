#!/usr/bin/env bash
# The README's test command: installs the programs the tests run when they
# are missing, then runs the whole suite with the locked dependencies.
#
#   ./test.sh                          # everything
#   ./test.sh --test integration acme  # any `cargo test` arguments
#
# The programs are Debian packages: `pebble` (Let's Encrypt's test CA, for the
# ACME tests), `chromium` (the dashboard's browser test; or set CHROMIUM to a
# Chromium binary), `procps` (`kill`, to signal the proxy under test),
# `apache2-utils` (`htpasswd`) and `etcd-server` (a real etcd cluster for the
# fleet-mode tests; the tests start their own members on free ports).
# Root installs them with apt-get, anyone else through `sudo -n` (never a
# password prompt); when neither works, one line says what to install and the
# script exits 1. With the programs present it is exactly `cargo test --locked`.
set -euo pipefail
cd "$(dirname "$0")"

say() { printf 'test.sh: %s\n' "$*" >&2; }

# The Debian packages whose programs are not on PATH.
missing() {
  local need=()
  { command -v pebble && command -v pebble-challtestsrv; } >/dev/null 2>&1 || need+=(pebble)
  if [ -z "${CHROMIUM:-}" ]; then
    command -v chromium >/dev/null 2>&1 || need+=(chromium)
  fi
  type -P kill >/dev/null 2>&1 || need+=(procps)
  command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)  # tests/access.rs
  command -v etcd >/dev/null 2>&1 || need+=(etcd-server)        # tests/cluster.rs
  if [ ${#need[@]} -gt 0 ]; then printf '%s\n' "${need[@]}"; fi
}

command -v cargo >/dev/null 2>&1 || { say "cargo not found: install Rust first (https://rustup.rs)"; exit 1; }
if [ -n "${CHROMIUM:-}" ] && [ ! -x "$CHROMIUM" ]; then
  say "CHROMIUM=$CHROMIUM is not an executable file: unset it to use Debian's chromium"
  exit 1
fi

mapfile -t need < <(missing)
if [ ${#need[@]} -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    say "the tests need ${need[*]} on PATH (Debian package names); install them with this system's package manager"
    exit 1
  fi
  if [ "$(id -u)" = 0 ]; then
    as_root=()
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    say "the tests need ${need[*]}: run 'sudo apt-get install ${need[*]}' once (or ./test.sh as root), then ./test.sh again"
    exit 1
  fi
  say "installing ${need[*]} with apt-get (once)"
  if ! { "${as_root[@]}" apt-get update -qq \
      && "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }; then
    say "apt-get could not install ${need[*]} (its error is above)"
    exit 1
  fi
  mapfile -t still < <(missing)
  if [ ${#still[@]} -gt 0 ]; then
    say "${still[*]} installed, but its programs are still not on PATH ($PATH)"
    exit 1
  fi
fi

exec cargo test --locked "$@"
