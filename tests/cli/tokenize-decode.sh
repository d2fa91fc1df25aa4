# requires-shared: tokenizers/gguf/ggml-vocab-llama-spm.gguf
"$MEMSKEW" tokenize --tokenizer "$SHARED/tokenizers/gguf/ggml-vocab-llama-spm.gguf" --text "15043 3186" --decode
