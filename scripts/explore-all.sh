#!/usr/bin/env bash
# Issue 8's acceptance run: every scenario through `weir sim explore --seeds N` (2000 by
# default), then `weir sim run --check-determinism` on seeds 1 to 5. Prints one line per
# scenario and exits non-zero if any seed failed or any run diverged.
#
#   scripts/explore-all.sh                 # all of scenarios/*.toml, 2000 seeds, every core
#   SEEDS=200 JOBS=1 scripts/explore-all.sh scenarios/tm-crash.toml
set -uo pipefail
cd "$(dirname "$0")/.."
SEEDS=${SEEDS:-2000}
JOBS=${JOBS:-$(nproc)}
WEIR=${WEIR:-}
if [ -z "$WEIR" ]; then
    cargo build --release -q -p weir-nodes --bin weir || exit 1
    WEIR=target/release/weir
fi
[ $# -gt 0 ] || set -- scenarios/*.toml
failed=0
started=$(date +%s)
for scenario in "$@"; do
    name=$(basename "$scenario" .toml)
    summary=$("$WEIR" sim explore "$scenario" --seeds "$SEEDS" --jobs "$JOBS" 2>/dev/null | grep '^explored')
    explore=$?
    diverged=""
    for seed in 1 2 3 4 5; do
        "$WEIR" sim run "$scenario" --seed "$seed" --check-determinism > /dev/null 2>&1 || diverged="$diverged $seed"
    done
    determinism=ok
    [ -z "$diverged" ] || determinism="failed on seeds$diverged"
    if [ "$explore" -ne 0 ] || [ -n "$diverged" ]; then
        failed=1
    fi
    echo "$name: ${summary:-explore failed}; determinism: $determinism"
done
echo "all scenarios in $(( $(date +%s) - started )) s"
exit $failed
