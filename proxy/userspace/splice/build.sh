#!/usr/bin/env bash
# Builds the userspace proxy's splice relay (splice.c -> splice.node) when it
# is missing or older than its source. Node-API is a stable C ABI, so the
# headers of any Node >= 12 on the machine will do (Debian's nodejs has them).
# Without a compiler or headers it says so and exits 0: the proxy then copies
# bytes in JS (and logs that it does).
set -euo pipefail
dir=$(cd "$(dirname "$0")" && pwd)
src=$dir/splice.c out=$dir/splice.node
[[ -e $out && $out -nt $src ]] && exit 0
inc=
for d in /usr/include/node /usr/local/include/node; do
  [[ -e $d/node_api.h ]] && { inc=$d; break; }
done
if [[ -z $inc ]] || ! command -v cc >/dev/null; then
  echo "[deps] splice relay not built (no C compiler or node_api.h): the userspace proxy will copy bytes in JS" >&2
  exit 0
fi
tmp=$out.tmp.$$
cc -O2 -Wall -Wextra -Werror -shared -fPIC -I"$inc" -o "$tmp" "$src" -lpthread
mv -f "$tmp" "$out"
echo "[deps] built $(basename "$out") (Node-API headers from $inc)"
