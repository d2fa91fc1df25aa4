# requires-shared: models/stories260K/stories260K.gguf
# The published greedy sample (tests/fixtures/README.md), 256 tokens from BOS.
"$MEMSKEW" generate --model "$SHARED/models/stories260K/stories260K.gguf" --max-new-tokens 256
