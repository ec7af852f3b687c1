#!/usr/bin/env bash
# Installs what nodelet's cluster tooling and tests need on a fresh Debian
# machine (root): Debian packages, npm dependencies (Node 24 among them).
# Go >= 1.26 must already be on PATH (it builds the upstream binaries).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
need=()
for pair in dockerd:docker.io iptables:iptables conntrack:conntrack nft:nftables ip:iproute2 \
            busybox:busybox-static openssl:openssl nsenter:util-linux pkill:procps gcc:gcc; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
[[ -e /usr/include/stdio.h ]] || need+=(libc6-dev)
if ((${#need[@]})); then
  echo "[deps] installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v go >/dev/null || { echo "[deps] Go >= 1.26 is required on PATH to build the upstream control plane" >&2; exit 1; }
cd "$root"
if [[ ! -x node_modules/.bin/node ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  echo "[deps] npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi
bash proxy/userspace/splice/build.sh
echo "[deps] ok: $(node_modules/.bin/node --version), $(go version | awk '{print $3}'), $(dockerd --version | cut -d, -f1)"
