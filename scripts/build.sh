#!/usr/bin/env bash
# Configures and builds memskew (Release) into ./build, using ccache when present.
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache must not reject the precompiled LibTorch header on timestamps.
# Relative paths in the cache key: another clone of the repository reuses the cache.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
jobs=${MEMSKEW_JOBS:-$(nproc)}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [ ! -f build/CMakeCache.txt ]; then
  cmake -S . -B build "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DMEMSKEW_PYTHON=ON "$@"
elif [ $# -gt 0 ]; then
  cmake -S . -B build "$@"
fi
cmake --build build -j "$jobs"
