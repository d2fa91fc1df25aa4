# exit: 4
# stderr: not a memskew results store
"$MEMSKEW" demo --out "$TMP/d" > /dev/null
printf '{"question": "What is A?", "answer": "A."}\n' > "$TMP/a.jsonl"
sqlite3 "$TMP/other.db" "create table t(x); insert into t values (1);"
"$MEMSKEW" probe -m "$TMP/d/tiny-llama.gguf" -d "$TMP/a.jsonl" -o "$TMP/other.db" -q
