# exit: 3
# stderr: GGUF output supports the llama architecture, not 'gpt2'
# A GPT-2 folder cannot become a GGUF file; the error says so and why.
set -e
mkdir -p "$TMP/gpt2"
cat >"$TMP/gpt2/config.json" <<'JSON'
{"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": 4, "n_embd": 8, "n_layer": 1,
 "n_head": 2, "n_positions": 4}
JSON
"$MEMSKEW" convert --model "$TMP/gpt2" --to gguf --out "$TMP/x.gguf"
