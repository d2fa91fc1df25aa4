# A LoRA target that names no module is an InvalidInput naming it (and nothing
# is trained); a dataset without usable samples names the file.
# exit: 3
# stderr: LoRA target_modules entry 'qkv_proj' names no module of the model
source "$(dirname "$0")/lib/tiny-model.sh"
printf '{"question": "What is A?", "answer": "A is a letter."}\n' > "$TMP/qa.jsonl"
long=$(printf 'x%.0s' $(seq 1 400))
printf '{"question": "%s", "answer": "yes"}\n' "$long" > "$TMP/long.jsonl"
"$MEMSKEW" train -m "$TINY" -d "$TMP/long.jsonl" -o "$TMP/o1" -q 2> "$TMP/err"
[ $? = 3 ] && grep -q "long.jsonl: no sample is left to use" "$TMP/err" || { cat "$TMP/err" >&2; exit 9; }
"$MEMSKEW" train -m "$TINY" -d "$TMP/qa.jsonl" -o "$TMP/out" -q --lora-targets q_proj,qkv_proj
