#!/usr/bin/env bash
# Builds (or finds) the pinned upstream binaries: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl, kubelet, kube-proxy.
# Output: prints the directory that holds all of them on the last line.
# Cache: ${NODELET_CACHE:-/var/cache/nodelet}/upstream/<version>/bin, outside the
# work tree so fresh clones (CI) reuse it. NODELET_UPSTREAM_BIN names a directory
# of prebuilt binaries of the pinned version to use instead.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../versions.env"

cache=${NODELET_CACHE:-/var/cache/nodelet}
out="$cache/upstream/k8s-$K8S_VERSION-etcd-$ETCD_VERSION/bin"
k8s_bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy)

log() { echo "[upstream] $*" >&2; }

# A directory given by the user wins when it holds the right version.
if [[ -n "${NODELET_UPSTREAM_BIN:-}" ]]; then
  if "$NODELET_UPSTREAM_BIN/kube-apiserver" --version 2>/dev/null | grep -q "$K8S_VERSION\$"; then
    echo "$NODELET_UPSTREAM_BIN"; exit 0
  fi
  log "NODELET_UPSTREAM_BIN=$NODELET_UPSTREAM_BIN does not hold kube-apiserver $K8S_VERSION; building"
fi

# Binaries of the pinned version already on PATH (all of them, in one directory) win too.
if on_path=$(command -v kube-apiserver 2>/dev/null) && "$on_path" --version 2>/dev/null | grep -q "$K8S_VERSION\$"; then
  dir=$(dirname "$on_path") ok=1
  for b in etcd "${k8s_bins[@]}"; do [[ -x "$dir/$b" ]] || ok=0; done
  if ((ok)); then echo "$dir"; exit 0; fi
fi

mkdir -p "$out"
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-mod=mod
command -v go >/dev/null || { log "go is required to build the control plane (apt-get install golang-go, or put Go >= 1.26 on PATH)"; exit 1; }

build_date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$build_date"
done

# Builds one binary into the cache, atomically, with a heartbeat so a long
# compile does not look hung.
build() { # dir name pkg ldflags
  local dir=$1 name=$2 pkg=$3 flags=$4
  if [[ -x "$out/$name" ]]; then log "$name: cached"; return; fi
  log "$name: building $pkg (takes minutes on 2 cores)"
  local start=$SECONDS
  ( while sleep 30; do log "$name: still building ($((SECONDS - start)) s)"; done ) &
  local beat=$!
  if ! (cd "$here/$dir" && go build -trimpath -ldflags "-s -w $flags" -o "$out/.$name.tmp" "$pkg"); then
    kill $beat 2>/dev/null; log "$name: build failed"; exit 1
  fi
  kill $beat 2>/dev/null || true
  mv "$out/.$name.tmp" "$out/$name"
  log "$name: built in $((SECONDS - start)) s"
}

build etcd etcd go.etcd.io/etcd/server/v3 "-X go.etcd.io/etcd/api/v3/version.GitSHA=release"
for b in "${k8s_bins[@]}"; do
  build kubernetes "$b" "k8s.io/kubernetes/cmd/$b" "$ldflags"
done
echo "$out"
