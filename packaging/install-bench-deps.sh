#!/usr/bin/env bash
# Installs what bench/run compares Cordon against and what it measures and
# plots with, from the distribution's own packages. Debian 12 and Ubuntu
# 24.04; run as root, after install-deps.sh. The tests and CI never need it.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-bench-deps.sh: run as root (it calls apt-get)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Wait for another apt or dpkg (an unattended upgrade) rather than fail at once.
apt_get() { apt-get -o DPkg::Lock::Timeout=600 "$@"; }

bench=(
  hyperfine            # whole-process timings
  libbenchmark-dev     # in-process loops (Google Benchmark)
  bubblewrap firejail  # the sandboxes compared against
  tinyproxy            # the HTTP-proxy egress allowlist compared against
  python3-matplotlib   # plots
  time                 # /usr/bin/time for peak memory
)

missing=()
for p in "${bench[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  apt_get update -qq
  apt_get install -y -qq --no-install-recommends "${missing[@]}"
fi
# tinyproxy's package starts a system-wide service; bench/run runs its own.
if command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now tinyproxy >/dev/null 2>&1 || true
fi
echo "install-bench-deps.sh: done"
