# requires-shared: tokenizers/gguf/ggml-vocab-llama-spm.gguf
# exit: 3
# stderr: token id 99999999 is outside the vocabulary
"$MEMSKEW" tokenize --tokenizer "$SHARED/tokenizers/gguf/ggml-vocab-llama-spm.gguf" --text "1 99999999" --decode
