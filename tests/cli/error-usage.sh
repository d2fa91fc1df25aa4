# exit: 2
# stderr: --model
"$MEMSKEW" generate --prompt "no model given"
