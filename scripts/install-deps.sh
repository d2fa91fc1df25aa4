#!/usr/bin/env bash
# Installs the Debian 12 packages memskew builds, tests and benchmarks with.
# Idempotent and non-interactive: packages already present are skipped by apt.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libopenblas0-pthread libopenblas0-openmp libblas-dev
  libsimdjson-dev nlohmann-json3-dev
  libsqlite3-dev sqlite3
  libboost-math-dev
  libre2-dev libicu-dev
  libcli11-dev libfmt-dev libspdlog-dev
  libxxhash-dev libtomlplusplus-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libhnswlib-dev libgloo-dev
  pybind11-dev python3-dev python3-numpy python3-pandas python3-pytest
)
# Optional extras: the browser for report tests. Skipped with MEMSKEW_MINIMAL_DEPS=1.
extras=(chromium)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${MEMSKEW_MINIMAL_DEPS:-0}" != 1 ]; then
  for p in "${extras[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi

sudo_cmd=()
[ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
echo "install-deps: installing ${missing[*]}"
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
