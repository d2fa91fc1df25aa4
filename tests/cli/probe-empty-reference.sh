# exit: 4
# stderr: empty
"$MEMSKEW" demo --out "$TMP/d" > /dev/null
printf '{"question": "What is A?", "answer": "A."}\n{"question": "What is B?", "answer": ""}\n' > "$TMP/d.jsonl"
"$MEMSKEW" probe -m "$TMP/d/tiny-llama.gguf" -d "$TMP/d.jsonl" -o "$TMP/run.db" -q
