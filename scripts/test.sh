#!/usr/bin/env bash
# Passes every test weir has: unit, property, golden, tidy, CLI and simulation tests.
# Long explorations are separate commands (see docs/simulation.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --locked

# The real daemons' code under madsim's deterministic simulation (nodes/tests/madsim.rs): a
# JobManager and three TaskManagers, two of them killed mid-job, over 10 seeds. A separate target
# directory, because `--cfg madsim` rebuilds every crate.
RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/madsim MADSIM_TEST_SEED=1 MADSIM_TEST_NUM=10 \
  cargo test -p weir-nodes --test madsim --locked
