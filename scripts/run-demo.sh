#!/usr/bin/env bash
# Sets up a fresh machine, builds memskew and runs its demo, which needs no
# files from elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
./build/memskew demo --out "${1:-out/demo}"
