# LoRA-train the demo model for 2 epochs, resume to 3, then probe every
# checkpoint with --adapter: one run per checkpoint, by step, with the loss
# the trainer logged; the resumed log continues the first.
# stdout: probed checkpoints: 2 4 6
source "$(dirname "$0")/lib/tiny-model.sh"
for i in 0 1 2 3 4 5 6 7; do
  printf '{"id": "%s", "question": "What is item %s?", "answer": "Item %s is blue."}\n' $i $i $i
done > "$TMP/qa.jsonl"
args=(-m "$TINY" -d "$TMP/qa.jsonl" -o "$TMP/out" --batch-size 4 --lr 1e-2 --seed 3 -q)
"$MEMSKEW" train "${args[@]}" --epochs 2 --json > "$TMP/a.json" || exit 9
grep -q '"steps": 4' "$TMP/a.json" || { cat "$TMP/a.json" >&2; exit 9; }
"$MEMSKEW" train "${args[@]}" --epochs 3 --resume --json > "$TMP/b.json" || exit 9
grep -q '"steps": 6' "$TMP/b.json" || { cat "$TMP/b.json" >&2; exit 9; }
for s in 2 4 6; do
  for f in adapter_config.json adapter_model.safetensors trainer_state.json optimizer.pt memskew-train.json; do
    [ -f "$TMP/out/checkpoint-$s/$f" ] || { echo "missing checkpoint-$s/$f" >&2; exit 9; }
  done
done
grep -q '"global_step": 6' "$TMP/out/checkpoint-6/trainer_state.json" || exit 9
"$MEMSKEW" probe -m "$TINY" -d "$TMP/qa.jsonl" -o "$TMP/run.db" -q --adapter "$TMP/out" || exit 9
"$MEMSKEW" export "$TMP/run.db" --format csv > "$TMP/all.csv" || exit 9
echo "probed checkpoints: $(awk -F, 'NR > 1 { print $2 }' "$TMP/all.csv" | sort -n | uniq | tr '\n' ' ' | sed 's/ $//')"
