# requires-shared: models/stories260K/stories260K.gguf
# The continuation is the start of the published greedy sample after "Once upon a time,"
# (tests/fixtures/stories260K-greedy.txt); 12 tokens end inside "lo|ved".
# stdout: "stop": "length"
# stdout: "n_tokens": 12
# stdout: "text": " there was a little girl named Lily. She lo"
"$MEMSKEW" generate --model "$SHARED/models/stories260K/stories260K.gguf" --prompt "Once upon a time," -n 12 --json
