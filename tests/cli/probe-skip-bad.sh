# --skip-bad skips the malformed line, counts it, and probes the rest.
# stdout: probed 2 samples
# stdout: 1 bad records skipped
source "$(dirname "$0")/lib/tiny-model.sh"
printf '{"question": "What is A?", "answer": "A is a letter."}\n{"question": "broken", \n{"question": "What is C?", "answer": "C is a letter."}\n' > "$TMP/bad.jsonl"
"$MEMSKEW" probe -m "$TINY" -d "$TMP/bad.jsonl" -o "$TMP/run.db" -q --skip-bad
