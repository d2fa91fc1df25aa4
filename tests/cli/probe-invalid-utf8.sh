# exit: 4
# stderr: UTF-8
"$MEMSKEW" demo --out "$TMP/d" > /dev/null
printf '{"question": "What is A?", "answer": "A \xff\xfe."}\n' > "$TMP/d.jsonl"
"$MEMSKEW" probe -m "$TMP/d/tiny-llama.gguf" -d "$TMP/d.jsonl" -o "$TMP/run.db" -q
