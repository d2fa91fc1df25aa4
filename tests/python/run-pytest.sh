#!/usr/bin/env bash
# Runs the Python module's tests: run-pytest.sh PYTHON TESTS_DIR. Exit 77 (skip)
# when pytest or numpy is not installed for PYTHON.
set -u
py=$1
dir=$2
if ! "$py" -c "import pytest, numpy" 2>/dev/null; then
  echo "SKIP python-module: pytest and numpy are needed (Debian: python3-pytest python3-numpy)"
  exit 77
fi
exec "$py" -m pytest -q -p no:cacheprovider "$dir"
