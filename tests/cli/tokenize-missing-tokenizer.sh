# exit: 5
# stderr: memskew: error: cannot open tokenizer '/nonexistent/tokenizer.json': no such file or folder
# stderr: hint: pass a tokenizer.json, a GGUF file, or a model folder holding tokenizer.json
"$MEMSKEW" tokenize --tokenizer /nonexistent/tokenizer.json --text "Hello world"
