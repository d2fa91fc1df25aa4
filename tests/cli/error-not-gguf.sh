# exit: 4
# stderr: not a GGUF file
printf 'hello, this is not a model\n' > "$TMP/fake.gguf"
"$MEMSKEW" info --model "$TMP/fake.gguf"
