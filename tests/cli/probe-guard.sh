# The decoding guard in a probe: refused without --generate; with it, the
# guarded outputs' figures are printed and stored, and analyze says what was applied.
# stdout: decoding guard: max n_pre
# stdout: M12 applied: decoding guard n = 4 (probe)
# stdout: M12 greedy outputs:
source "$(dirname "$0")/lib/tiny-model.sh"
printf '{"id": "q1", "question": "What is A?", "answer": "A is the first letter."}\n{"id": "q2", "question": "What is B?", "answer": "B comes after A."}\n' > "$TMP/a.jsonl"
"$MEMSKEW" probe -m "$TINY" -d "$TMP/a.jsonl" -o "$TMP/x.db" -q --guard "$TMP/a.jsonl" 2> "$TMP/err"
[ $? = 3 ] && grep -q "needs generation" "$TMP/err" || { cat "$TMP/err" >&2; exit 9; }
"$MEMSKEW" probe -m "$TINY" -d "$TMP/a.jsonl" -o "$TMP/run.db" -q --generate --guard "$TMP/a.jsonl" --guard-n 4 || exit 9
"$MEMSKEW" analyze "$TMP/run.db" | grep "M12" || exit 9
# n below 2 is refused with the option named.
"$MEMSKEW" probe -m "$TINY" -d "$TMP/a.jsonl" -o "$TMP/y.db" -q --generate --guard "$TMP/a.jsonl" --guard-n 1 2> "$TMP/err2"
[ $? = 3 ] && grep -q "guard-n must be at least 2" "$TMP/err2" || { cat "$TMP/err2" >&2; exit 9; }
