# A Trainer output folder with two LoRA checkpoints (PEFT files written here
# byte by byte) probes into one store: one run per checkpoint, by step, with
# step, epoch and training loss from trainer_state.json; --resume skips both.
# The training loss is the mean of the losses logged in the checkpoint's epoch
# (epoch e covers (e - 1, e]): checkpoint-10 (epoch 2.0) logged 4.0 at epoch
# 1.2 and 1.25 at 2.0 (9.0 at 0.4 is epoch 1's), so (4.0 + 1.25) / 2 = 2.625.
# stdout: checkpoint-2, step 2, epoch 1, training loss: mean of the epoch 2.5 (last step 2.5)
# stdout: checkpoint-10, step 10, epoch 2, training loss: mean of the epoch 2.625 (last step 1.25)
source "$(dirname "$0")/lib/tiny-model.sh"
printf '{"question": "What is A?", "answer": "A is the first letter."}\n{"question": "What is B?", "answer": "B."}\n' > "$TMP/qa.jsonl"

# safetensors: u64 little-endian header length, JSON header, data (here every
# float of lora_A is 0.5 and of lora_B 0.25: bytes 00 00 00 3f / 00 00 80 3e).
floats() { local i; for ((i = 0; i < $2; i++)); do printf "$1"; done; }
write_adapter() {  # folder
  local hdr='{"__metadata__":{"format":"pt"}' off=0 l f n
  for l in 0 1; do
    for f in A B; do
      n=512
      if [ $f = A ]; then shape='[2,64]'; else shape='[64,2]'; fi
      hdr+=",\"base_model.model.model.layers.$l.self_attn.q_proj.lora_$f.weight\":{\"dtype\":\"F32\",\"shape\":$shape,\"data_offsets\":[$off,$((off + n))]}"
      off=$((off + n))
    done
  done
  hdr+='}'
  n=${#hdr}
  mkdir -p "$1"
  {
    printf "$(printf '\\x%02x\\x%02x\\x%02x\\x%02x\\x00\\x00\\x00\\x00' $((n & 255)) $(((n >> 8) & 255)) $(((n >> 16) & 255)) $(((n >> 24) & 255)))"
    printf '%s' "$hdr"
    for l in 0 1; do floats '\x00\x00\x00\x3f' 128; floats '\x00\x00\x80\x3e' 128; done
  } > "$1/adapter_model.safetensors"
  printf '{"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"], "task_type": "CAUSAL_LM"}\n' > "$1/adapter_config.json"
}
write_adapter "$TMP/out/checkpoint-2"
write_adapter "$TMP/out/checkpoint-10"
printf '{"global_step": 2, "epoch": 1.0, "log_history": [{"loss": 2.5, "step": 2, "epoch": 1.0}]}\n' > "$TMP/out/checkpoint-2/trainer_state.json"
printf '{"global_step": 10, "epoch": 2.0, "log_history": [{"loss": 9.0, "step": 2, "epoch": 0.4}, {"loss": 4.0, "step": 6, "epoch": 1.2}, {"loss": 1.25, "step": 10, "epoch": 2.0}, {"eval_loss": 3.0, "step": 10, "epoch": 2.0}]}\n' > "$TMP/out/checkpoint-10/trainer_state.json"

"$MEMSKEW" probe -m "$TINY" -d "$TMP/qa.jsonl" -o "$TMP/run.db" -q --adapter "$TMP/out" || exit 9
# Two runs, steps 2 and 10, two samples each.
"$MEMSKEW" export "$TMP/run.db" --format csv > "$TMP/all.csv" || exit 9
steps=$(awk -F, 'NR > 1 { print $2 }' "$TMP/all.csv" | sort -n | uniq -c | awk '{ print $2 "x" $1 }' | tr '\n' ' ')
[ "$steps" = "2x2 10x2 " ] || { echo "unexpected runs: $steps" >&2; exit 9; }
"$MEMSKEW" probe -m "$TINY" -d "$TMP/qa.jsonl" -o "$TMP/run.db" -q --adapter "$TMP/out" --resume --json > "$TMP/resume.json" || exit 9
grep -q '"probed": 0' "$TMP/resume.json" || { echo "resume probed again" >&2; exit 9; }
[ "$(grep -c '"already_done": 2' "$TMP/resume.json")" = 2 ] || { cat "$TMP/resume.json" >&2; exit 9; }
