# requires-shared: tokenizers/gguf/ggml-vocab-llama-spm.gguf
# Expected ids from ../shared/tokenizers/vectors/llama-spm.out for the input "Hello world"
# (Hugging Face's encoding of that text).
"$MEMSKEW" tokenize --tokenizer "$SHARED/tokenizers/gguf/ggml-vocab-llama-spm.gguf" --text "Hello world"
