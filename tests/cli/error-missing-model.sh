# exit: 5
# stderr: memskew: error: cannot open model '/nonexistent.gguf'
# stderr: hint:
"$MEMSKEW" generate --model /nonexistent.gguf
