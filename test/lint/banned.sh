#!/usr/bin/env bash
# Banned APIs and forbidden include edges (STYLE.md §H). Each rule says why. Run from meson
# with the source root as $1; exits 1 listing every violation.
set -uo pipefail
root=${1:-$(dirname "$0")/../..}
cd "$root" || exit 2
fail=0

# rule NAME 'ERE pattern' 'paths...' -- 'why' [exclude-ERE]
rule() {
  local name=$1 pattern=$2 paths=$3 why=$4 exclude=${5:-'^$'}
  local hits
  # shellcheck disable=SC2086
  hits=$(grep -rnE --include='*.cpp' --include='*.h' "$pattern" $paths 2>/dev/null | grep -vE "$exclude" || true)
  if [ -n "$hits" ]; then
    printf 'banned: %s — %s\n%s\n\n' "$name" "$why" "$hits"
    fail=1
  fi
}

rule "uv_close outside core/loop" '\buv_close\(' "core plane cli examples" \
  "handles are closed only by core/loop wrappers, which free them in the close callback" \
  '^core/loop/'
rule "getenv/setenv outside cli" '\b(std::)?(getenv|setenv|putenv)\(' "core plane" \
  "configuration comes from flags and config files, read once in cli/"
rule "blocking or locking calls in the data plane" \
  '\b(std::mutex|std::thread|std::this_thread::sleep|usleep\(|sleep\(|getaddrinfo\(|gethostbyname)' \
  "plane/data" "a worker never blocks and never takes a lock on the request path" \
  '^plane/data/shared_cluster\.(h|cpp):'
# (shared_cluster.* is the one exception: a cluster's circuit breakers are atomics, and its
# mutex is taken only when a snapshot is applied or an endpoint is ejected, never per request.)
rule "plane/data includes plane/control" '#include "plane/control/' "plane/data" \
  "data and control meet only in plane/snapshot.h and config types"
rule "plane/control includes plane/data" '#include "plane/data/' "plane/control" \
  "data and control meet only in plane/snapshot.h and config types"
rule "core includes plane or cli" '#include "(plane|cli)/' "core" \
  "dependencies point one way: cli -> plane -> core"
rule "throw in meshbox code" '(^|[^_[:alnum:]])throw[[:space:](;]' "core plane cli" \
  "meshbox code does not throw: Status/Result carry errors"
rule "printf-family into fixed buffers" '\bs?printf\(|\bsprintf\(|\bvsprintf\(' "core plane cli" \
  "use fmt or snprintf with a size" '\bsnprintf\(|fmt::|std::fprintf\(stderr'

if [ "$fail" = 0 ]; then echo "lint: no banned API found"; fi
exit "$fail"
