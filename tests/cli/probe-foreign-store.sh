# exit: 4
# stderr: not a memskew results store
source "$(dirname "$0")/lib/tiny-model.sh"
printf '{"question": "What is A?", "answer": "A."}\n' > "$TMP/a.jsonl"
sqlite3 "$TMP/other.db" "create table t(x); insert into t values (1);"
"$MEMSKEW" probe -m "$TINY" -d "$TMP/a.jsonl" -o "$TMP/other.db" -q
