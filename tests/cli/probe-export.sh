# A probe, then its per-sample table as CSV and JSONL with pandas-friendly columns.
# stdout: run_id,checkpoint_step,checkpoint_epoch,sample_id,sample_index,prompt_tokens,reference_tokens,n_pre,length,exact
# stdout: "sample_id":"q2"
source "$(dirname "$0")/lib/tiny-model.sh"
printf '{"id": "q1", "question": "What is A?", "answer": "A."}\n{"id": "q2", "question": "What is B?", "answer": "B."}\n' > "$TMP/a.jsonl"
"$MEMSKEW" probe -m "$TINY" -d "$TMP/a.jsonl" -o "$TMP/run.db" -q > /dev/null || exit 9
"$MEMSKEW" export "$TMP/run.db" --format csv
"$MEMSKEW" export "$TMP/run.db" --format jsonl
