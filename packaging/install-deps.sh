#!/usr/bin/env bash
# Installs what Cordon needs to build, run its demo and run its tests, from the
# distribution's own packages. Debian 12 and Ubuntu 24.04; run as root.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: run as root (it calls apt-get)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
# Wait for another apt or dpkg (an unattended upgrade) rather than fail at once.
apt_get() { apt-get -o DPkg::Lock::Timeout=600 "$@"; }

build=(
  build-essential cmake pkg-config git
  clang llvm libbpf-dev libelf-dev zlib1g-dev
  libseccomp-dev libcurl4-openssl-dev libssl-dev
  nlohmann-json3-dev libspdlog-dev libfmt-dev
  libcli11-dev libhowardhinnant-date-dev uuid-dev libldns-dev
  linux-libc-dev
)
runtime_and_tests=(
  libgtest-dev googletest liburing-dev
  python3 python3-jsonschema nodejs
  curl iproute2 procps ca-certificates dnsmasq-base openssl
)
# The packaging tests: systemd-analyze verifies the unit, CPack's rpm
# generator needs rpmbuild, lintian checks the .deb.
packaging=(systemd rpm lintian file)

apt_get update -qq
apt_get install -y -qq --no-install-recommends "${build[@]}" "${runtime_and_tests[@]}" "${packaging[@]}"

# bpftool generates the BPF skeleton. Debian ships it as its own package;
# Ubuntu ships it in linux-tools, where /usr/sbin/bpftool is a wrapper (from
# linux-tools-common) that fails unless the tools of the running kernel are
# installed: so ask bpftool to run, never just whether the command exists.
# linux-tools-generic brings the generic kernel's bpftool, which the wrapper
# does not run on another kernel but the build finds and uses directly.
bpftool_works() {
  bpftool version >/dev/null 2>&1 && return 0
  local tool
  for tool in /usr/lib/linux-tools/*/bpftool; do
    [ -x "$tool" ] && "$tool" version >/dev/null 2>&1 && return 0
  done
  return 1
}
if ! bpftool_works; then
  if apt-cache show bpftool >/dev/null 2>&1; then
    apt_get install -y -qq --no-install-recommends bpftool
  fi
  if ! bpftool_works; then
    apt_get install -y -qq --no-install-recommends "linux-tools-$(uname -r)" ||
      apt_get install -y -qq --no-install-recommends linux-tools-common linux-tools-generic ||
      true
  fi
  if ! bpftool_works; then
    echo "install-deps.sh: bpftool does not run ('bpftool version' failed)." >&2
    echo "install-deps.sh: install the bpftool of your distribution, or linux-tools for" \
      "kernel $(uname -r), then run this script again" >&2
    exit 1
  fi
fi

# The OAuth authorization server the credential tests start (oidc-provider),
# at the versions package-lock.json pins, into tests/oauth/node_modules.
# Debian's nodejs comes without npm; NodeSource's has it built in and
# conflicts with Debian's npm package, so install that only when missing.
if ! command -v npm >/dev/null; then
  apt_get install -y -qq --no-install-recommends npm
fi
here=$(cd "$(dirname "$0")/.." && pwd)
(cd "$here/tests/oauth" && npm ci --no-audit --no-fund --loglevel=error)

# The unprivileged account agents run as when root launches them and the
# profile names no session.user.
if ! getent passwd cordon-agent >/dev/null; then
  useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
    --comment "Cordon agents" cordon-agent
fi
# Approvers of the example profiles, as the packages make it (empty).
getent group cordon-admin >/dev/null || groupadd --system cordon-admin
echo "install-deps.sh: done"
