# requires-shared: models/stories260K/stories260K.gguf
# stdout: "stop": "length"
# stdout: "n_tokens": 12
# stdout: "text": " there was a little girl named Lily. She loved to play"
"$MEMSKEW" generate --model "$SHARED/models/stories260K/stories260K.gguf" --prompt "Once upon a time," -n 12 --json
