#!/usr/bin/env bash
# Sets up a fresh machine, builds memskew and runs the whole test suite.
# Tests that need the shared assets (../shared: real model, data, tokenizers)
# skip with a message when they are absent; point MEMSKEW_SHARED_DIR elsewhere
# if they live somewhere else.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
cd build
ctest --output-on-failure -j "${MEMSKEW_JOBS:-$(nproc)}" "$@"
