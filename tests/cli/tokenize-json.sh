# requires-shared: tokenizers/hf/gpt-2/tokenizer.json
# --tokenizer takes a Hugging Face tokenizer.json. Expected ids from
# ../shared/tokenizers/vectors/gpt-2.out for the input "Hello world"
# (Hugging Face's encoding of that text).
"$MEMSKEW" tokenize --tokenizer "$SHARED/tokenizers/hf/gpt-2/tokenizer.json" --text "Hello world"
