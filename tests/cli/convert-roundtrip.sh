# requires-shared: models/stories260K/stories260K.gguf
# GGUF -> Hugging Face folder -> GGUF keeps the model exactly: greedy text from
# BOS on the folder and on the final GGUF is the published sample
# (tests/fixtures/stories260K-greedy.txt, 256 tokens).
set -e
"$MEMSKEW" convert --model "$SHARED/models/stories260K/stories260K.gguf" --to hf --out "$TMP/hf" >/dev/null
"$MEMSKEW" convert --model "$TMP/hf" --to gguf --out "$TMP/back.gguf" --dtype f32 >/dev/null
"$MEMSKEW" generate --model "$TMP/hf" --max-new-tokens 256 >"$TMP/hf.txt"
"$MEMSKEW" generate --model "$TMP/back.gguf" --max-new-tokens 256
cmp -s "$TMP/hf.txt" "$(dirname "$0")/../fixtures/stories260K-greedy.txt" || { echo "HF folder text differs" >&2; exit 1; }
