# exit: 4
# stderr: empty
source "$(dirname "$0")/lib/tiny-model.sh"
printf '{"question": "What is A?", "answer": "A."}\n{"question": "What is B?", "answer": ""}\n' > "$TMP/d.jsonl"
"$MEMSKEW" probe -m "$TINY" -d "$TMP/d.jsonl" -o "$TMP/run.db" -q
