# exit: 5
# stderr: memskew: error: no tokenizer.json in folder '
# stderr: /not-a-model'
# stderr: hint: pass a tokenizer.json, a GGUF file, or a model folder holding tokenizer.json
mkdir -p "$TMP/not-a-model"
echo '{}' > "$TMP/not-a-model/config.json"
"$MEMSKEW" tokenize --tokenizer "$TMP/not-a-model" --text "Hello world"
