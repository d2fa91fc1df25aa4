# exit: 4
# stderr: UTF-8
source "$(dirname "$0")/lib/tiny-model.sh"
printf '{"question": "What is A?", "answer": "A \xff\xfe."}\n' > "$TMP/d.jsonl"
"$MEMSKEW" probe -m "$TINY" -d "$TMP/d.jsonl" -o "$TMP/run.db" -q
