#!/usr/bin/env bash
# Runs one CLI golden test (zstd tests/cli-tests style).
#   run-case.sh CASE.sh
# A case is a shell script run with $MEMSKEW (the binary), $SHARED (the shared
# assets folder) and $TMP (a fresh temp folder) set. Header lines declare:
#   # exit: N                 expected exit code (default 0)
#   # stderr: TEXT            stderr must contain TEXT (repeatable)
#   # stdout: TEXT            stdout must contain TEXT (repeatable)
#   # requires-shared: PATH   skip (exit 77) when $SHARED/PATH is missing
# If CASE.expected exists, stdout must equal it exactly.
set -u
case_file=$1
name=$(basename "$case_file" .sh)
dir=$(dirname "$case_file")
: "${MEMSKEW:?MEMSKEW must name the memskew binary}"
SHARED=${MEMSKEW_SHARED_DIR:-${SHARED:-}}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export MEMSKEW SHARED TMP

while IFS= read -r req; do
  if [ -z "$SHARED" ] || [ ! -e "$SHARED/$req" ]; then
    echo "SKIP $name: shared asset '$req' not found (set MEMSKEW_SHARED_DIR)"
    exit 77
  fi
done < <(sed -n 's/^# requires-shared: //p' "$case_file")

expected_exit=$(sed -n 's/^# exit: //p' "$case_file" | head -1)
expected_exit=${expected_exit:-0}

bash "$case_file" >"$TMP/stdout" 2>"$TMP/stderr"
code=$?
fail=0
if [ "$code" != "$expected_exit" ]; then
  echo "FAIL $name: exit code $code, expected $expected_exit"
  fail=1
fi
while IFS= read -r want; do
  grep -qF -- "$want" "$TMP/stderr" || { echo "FAIL $name: stderr lacks '$want'"; fail=1; }
done < <(sed -n 's/^# stderr: //p' "$case_file")
while IFS= read -r want; do
  grep -qF -- "$want" "$TMP/stdout" || { echo "FAIL $name: stdout lacks '$want'"; fail=1; }
done < <(sed -n 's/^# stdout: //p' "$case_file")
if [ -f "$dir/$name.expected" ] && ! diff -u "$dir/$name.expected" "$TMP/stdout" >"$TMP/diff"; then
  echo "FAIL $name: stdout differs from $name.expected"
  head -40 "$TMP/diff"
  fail=1
fi
if [ $fail -ne 0 ]; then
  echo "--- stdout"; head -40 "$TMP/stdout"; echo "--- stderr"; head -20 "$TMP/stderr"
  exit 1
fi
echo "PASS $name"
