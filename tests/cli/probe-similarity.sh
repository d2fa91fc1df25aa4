# The similarity figures end to end: the probe computes them (embeddings kept),
# export writes the embeddings as NumPy files and the table's similarity
# columns, analyze --json has the M10 section, filter writes a cleaner copy
# with its manifest and refuses a store of another dataset.
# stdout: similarity: S_input
# stdout: duplicates: 1 near-duplicate clusters (3 samples, largest 3)
# stdout: "claim":
# stdout: cluster_size,prompt_copies,reference_copies
# stdout: filter: kept 3 of 5 records, removed 2 (2 near_duplicate)
source "$(dirname "$0")/lib/tiny-model.sh"
# q1..q3 are one record repeated (a near-duplicate cluster of 3); q4, q5 differ.
rec='"question": "What is the dosage of drug X for adults?", "answer": "Take two tablets of drug X every eight hours with water."'
{ for i in 1 2 3; do printf '{"id": "q%s", %s}\n' "$i" "$rec"; done
  printf '{"id": "q4", "question": "Where is the pharmacy?", "answer": "Second floor, left."}\n'
  printf '{"id": "q5", "question": "When does the clinic open?", "answer": "At nine."}\n'; } > "$TMP/d.jsonl"
"$MEMSKEW" probe -m "$TINY" -d "$TMP/d.jsonl" -o "$TMP/run.db" -q --keep-embeddings || exit 9
"$MEMSKEW" export "$TMP/run.db" --embeddings "$TMP/emb" 2> /dev/null || exit 9
head -c 6 "$TMP/emb.full.npy" | grep -q NUMPY || { echo "no npy" >&2; exit 9; }
[ "$(wc -l < "$TMP/emb.ids.txt")" = 5 ] || { echo "ids" >&2; exit 9; }
"$MEMSKEW" analyze "$TMP/run.db" --json - | grep -o '"claim": *[^,]*' || exit 9
"$MEMSKEW" export "$TMP/run.db" --format csv | head -1 | grep -o 'cluster_size,prompt_copies,reference_copies' || exit 9
"$MEMSKEW" filter -d "$TMP/d.jsonl" --store "$TMP/run.db" --max-per-cluster 1 -o "$TMP/f.jsonl" || exit 9
[ "$(wc -l < "$TMP/f.jsonl.manifest.jsonl")" = 2 ] || { echo "manifest" >&2; exit 9; }
grep -q '"id":"q2","index":1,"line":2,"reason":"near_duplicate"' "$TMP/f.jsonl.manifest.jsonl" || { cat "$TMP/f.jsonl.manifest.jsonl" >&2; exit 9; }
# Another dataset: refused, naming both files, nothing written.
cp "$TMP/d.jsonl" "$TMP/other.jsonl"; printf '{"id": "q6", "question": "x", "answer": "y"}\n' >> "$TMP/other.jsonl"
"$MEMSKEW" filter -d "$TMP/other.jsonl" --store "$TMP/run.db" --max-per-cluster 1 -o "$TMP/g.jsonl" 2> "$TMP/err"
[ $? = 3 ] && grep -q "other.jsonl has content hash" "$TMP/err" && [ ! -e "$TMP/g.jsonl" ] || { cat "$TMP/err" >&2; exit 9; }
# Without embeddings: analyze says which option adds them.
"$MEMSKEW" probe -m "$TINY" -d "$TMP/d.jsonl" -o "$TMP/noemb.db" -q --no-embeddings > /dev/null || exit 9
"$MEMSKEW" analyze "$TMP/noemb.db" | grep -q "probed with --no-embeddings" || exit 9
# Embeddings from another model (here the same checkpoint, in a pass of its own): recorded in the figures.
"$MEMSKEW" probe -m "$TINY" -d "$TMP/d.jsonl" -o "$TMP/ext.db" -q --embed-model "$TINY" --json > "$TMP/ext.json" || exit 9
grep -q '"embed_model": "checkpoint-1 (dir:' "$TMP/ext.json" || { cat "$TMP/ext.json" >&2; exit 9; }
