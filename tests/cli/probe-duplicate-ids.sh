# exit: 4
# stderr: duplicate
source "$(dirname "$0")/lib/tiny-model.sh"
printf '{"id": "x1", "question": "What is A?", "answer": "A."}\n{"id": "x1", "question": "What is B?", "answer": "B."}\n' > "$TMP/d.jsonl"
"$MEMSKEW" probe -m "$TINY" -d "$TMP/d.jsonl" -o "$TMP/run.db" -q
