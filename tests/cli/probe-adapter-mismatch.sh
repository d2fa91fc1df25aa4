# An adapter for another base model (here: a layer the model lacks) is refused
# with the tensor and module named; a missing adapter folder is an I/O error.
# exit: 4
# stderr: names module 'model.layers.7.self_attn.q_proj' that the model does not have
# stderr: is this adapter for another base model?
source "$(dirname "$0")/lib/tiny-model.sh"
printf '{"question": "What is A?", "answer": "A."}\n' > "$TMP/qa.jsonl"
"$MEMSKEW" probe -m "$TINY" -d "$TMP/qa.jsonl" -o "$TMP/run.db" -q --adapter "$TMP/missing" 2> "$TMP/err"
[ $? = 5 ] && grep -q "cannot open adapter" "$TMP/err" || { cat "$TMP/err" >&2; exit 9; }
mkdir -p "$TMP/a"
hdr='{"base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight":{"dtype":"F32","shape":[1,64],"data_offsets":[0,256]},"base_model.model.model.layers.7.self_attn.q_proj.lora_B.weight":{"dtype":"F32","shape":[64,1],"data_offsets":[256,512]}}'
n=${#hdr}
{ printf "$(printf '\\x%02x\\x%02x\\x00\\x00\\x00\\x00\\x00\\x00' $((n & 255)) $((n >> 8)))"; printf '%s' "$hdr"; head -c 512 /dev/zero; } > "$TMP/a/adapter_model.safetensors"
printf '{"peft_type": "LORA", "r": 1, "lora_alpha": 1, "target_modules": ["q_proj"]}\n' > "$TMP/a/adapter_config.json"
"$MEMSKEW" probe -m "$TINY" -d "$TMP/qa.jsonl" -o "$TMP/run.db" -q --adapter "$TMP/a"
