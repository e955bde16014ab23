#!/usr/bin/env bash
# Passes every test weir has: unit, property, golden, tidy, CLI and simulation tests.
# Long explorations are separate commands (see docs/simulation.md).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --locked
