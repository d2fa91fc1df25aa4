# Sourced by CLI cases: makes a tiny random Llama (byte tokenizer, context 256)
# (dim 64, 2 layers, 4 heads, 2 KV heads) as a Hugging Face folder at $TMP/tiny, by one training step from scratch.
printf '{"question": "q", "answer": "a"}\n' > "$TMP/tiny-data.jsonl"
"$MEMSKEW" train --init dim=64,layers=2,heads=4,kv_heads=2,ffn=128,ctx=256 -d "$TMP/tiny-data.jsonl" \
  --epochs 1 -o "$TMP/tiny-train" -q > /dev/null || { echo "could not make the tiny model" >&2; exit 99; }
TINY="$TMP/tiny-train/checkpoint-1"
