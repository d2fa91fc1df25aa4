# The tiny model's context is 256 tokens (bytes): a 300-byte answer is cut to fit, and counted.
# stdout: probed 2 samples
# stdout: 1 references truncated to the context
source "$(dirname "$0")/lib/tiny-model.sh"
long=$(printf 'a%.0s' $(seq 1 300))
printf '{"question": "What is A?", "answer": "A."}\n{"question": "Long?", "answer": "%s"}\n' "$long" > "$TMP/d.jsonl"
"$MEMSKEW" probe -m "$TINY" -d "$TMP/d.jsonl" -o "$TMP/run.db" -q
