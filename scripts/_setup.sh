# Sourced by scripts/demo and scripts/test: install what is missing, idempotently.
# Debian packages: ip/ss (iproute2), iptables (both backends), ping, unshare/nsenter (util-linux), mount,
# sysctl (procps), tcpdump (captures), nft (nftables), stress (load for the live tests), dot for
# netnskit graph's SVG (graphviz), python3 with its venv module (python3-venv: Debian's python3 lacks
# ensurepip), ssh/ssh-keygen (openssh-client) and sshd (openssh-server) for the cluster's live tests.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
need_pkgs=()
command -v ip >/dev/null || need_pkgs+=(iproute2)
command -v iptables >/dev/null || need_pkgs+=(iptables)
command -v iptables-legacy >/dev/null || need_pkgs+=(iptables)
command -v ping >/dev/null || need_pkgs+=(iputils-ping)
command -v unshare >/dev/null || need_pkgs+=(util-linux)
command -v mount >/dev/null || need_pkgs+=(mount)
command -v sysctl >/dev/null || need_pkgs+=(procps)
command -v tcpdump >/dev/null || need_pkgs+=(tcpdump)
command -v dot >/dev/null || need_pkgs+=(graphviz)
PATH="$PATH:/usr/sbin:/sbin" command -v nft >/dev/null || need_pkgs+=(nftables)
command -v stress >/dev/null || need_pkgs+=(stress)
command -v python3 >/dev/null || need_pkgs+=(python3)
command -v ssh >/dev/null || need_pkgs+=(openssh-client)
command -v ssh-keygen >/dev/null || need_pkgs+=(openssh-client)
PATH="$PATH:/usr/sbin:/sbin" command -v sshd >/dev/null || need_pkgs+=(openssh-server)
[ -x "$root/.venv/bin/python" ] || python3 -c 'import ensurepip, venv' 2>/dev/null || need_pkgs+=(python3-venv)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${need_pkgs[*]}; run as root or install them" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # openssh-server must not start sshd on this machine: policy-rc.d exit 101 (only if absent, removed after)
  policy=/usr/sbin/policy-rc.d
  made_policy=false
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 0755 "$policy"
    made_policy=true
  fi
  installed=true
  apt-get update -qq && apt-get install -y -qq --no-install-recommends \
    iproute2 iptables iputils-ping util-linux mount procps kmod python3 python3-venv \
    graphviz tcpdump nftables stress openssh-server openssh-client \
    >/dev/null || installed=false
  if [ "$made_policy" = true ]; then
    rm -f "$policy"
  fi
  "$installed" || { echo "installing the Debian packages failed" >&2; exit 1; }
fi
venv="$root/.venv"
# Reinstall when pyproject.toml changed since the last install (new dependency, entry point, extra).
stamp="$venv/.pyproject.sha256"
want="$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)"
imports_ok() { "$venv/bin/python" -c 'import netnskit, pytest, pytest_subprocess, mypy, ruff, sh, hypothesis' 2>/dev/null; }
# A working venv made before the stamp existed is taken as current (no reinstall, no network needed).
if [ -x "$venv/bin/python" ] && [ ! -e "$stamp" ] && imports_ok; then
  echo "$want" >"$stamp"
fi
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! imports_ok; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$venv/bin/python" -m pip install -q -e "$root[test]"
  echo "$want" >"$stamp"
fi
export PATH="$venv/bin:$PATH"
cd "$root"
