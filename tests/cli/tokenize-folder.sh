# requires-shared: tokenizers/hf/gpt-2/tokenizer.json
# --tokenizer takes a folder holding tokenizer.json. Expected ids from
# ../shared/tokenizers/vectors/gpt-2.out for "Hello world" and " Hello world"
# (Hugging Face's encodings of those texts).
"$MEMSKEW" tokenize --tokenizer "$SHARED/tokenizers/hf/gpt-2" --text "Hello world" --pieces
"$MEMSKEW" tokenize --tokenizer "$SHARED/tokenizers/hf/gpt-2/" --text " Hello world"
