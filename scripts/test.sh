#!/usr/bin/env bash
# The whole test suite: installs the tools the tests check output with,
# then runs every test. This is the command .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo test --locked --all-targets "$@"
