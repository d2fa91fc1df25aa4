# A malformed JSONL line stops the probe with file:line, and nothing is stored.
# exit: 4
# stderr: bad.jsonl:2
source "$(dirname "$0")/lib/tiny-model.sh"
printf '{"question": "What is A?", "answer": "A is a letter."}\n{"question": "broken", \n{"question": "What is C?", "answer": "C is a letter."}\n' > "$TMP/bad.jsonl"
"$MEMSKEW" probe -m "$TINY" -d "$TMP/bad.jsonl" -o "$TMP/run.db" -q
code=$?
[ ! -e "$TMP/run.db" ] || { echo "a store was created despite the error" >&2; exit 9; }
exit $code
