# requires-shared: models/stories260K/stories260K.gguf
# Facts from ../shared/models/README.md: dim 64, 5 layers, 8 heads, 4 KV heads, FFN 172, vocab 512.
# stdout: "hidden_size": 64
# stdout: "layers": 5
# stdout: "heads": 8
# stdout: "kv_heads": 4
# stdout: "ffn_size": 172
# stdout: "vocab_size": 512
"$MEMSKEW" info --model "$SHARED/models/stories260K/stories260K.gguf" --json
