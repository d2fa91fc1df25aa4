# exit: 4
# stderr: duplicate
"$MEMSKEW" demo --out "$TMP/d" > /dev/null
printf '{"id": "x1", "question": "What is A?", "answer": "A."}\n{"id": "x1", "question": "What is B?", "answer": "B."}\n' > "$TMP/d.jsonl"
"$MEMSKEW" probe -m "$TMP/d/tiny-llama.gguf" -d "$TMP/d.jsonl" -o "$TMP/run.db" -q
