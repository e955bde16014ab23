#!/usr/bin/env bash
# Installs what weir's build and tests need on a fresh machine; safe to run again.
# Rust (cargo) must already be there; system packages come from Debian's apt.
set -euo pipefail

# Debian packages the build or the tests need. libclang-dev: bindgen generates RocksDB's Rust
# bindings with it when librocksdb-sys builds (cmake and the clang binary are not needed).
# chromium and a font for its screenshots: the web UI test (nodes/tests/browser.rs).
# etcd-server: the etcd high-availability test starts its own etcd (nodes/tests/ha_etcd.rs).
APT_PACKAGES=(libclang-dev chromium fonts-dejavu-core etcd-server)

missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust first (https://rustup.rs)" >&2; exit 1; }
