# Resuming into a store made from another dataset is refused, and the store keeps its results.
# exit: 3
# stderr: dataset_hash
source "$(dirname "$0")/lib/tiny-model.sh"
printf '{"question": "What is A?", "answer": "A."}\n' > "$TMP/a.jsonl"
printf '{"question": "What is B?", "answer": "B."}\n' > "$TMP/b.jsonl"
"$MEMSKEW" probe -m "$TINY" -d "$TMP/a.jsonl" -o "$TMP/run.db" -q > /dev/null || exit 9
"$MEMSKEW" probe -m "$TINY" -d "$TMP/b.jsonl" -o "$TMP/run.db" -q --resume
code=$?
"$MEMSKEW" export "$TMP/run.db" | grep -q "," || { echo "the store lost its results" >&2; exit 9; }
exit $code
