# requires-shared: models/stories260K/stories260K.gguf
# stdout: n_pre = 8 of 13 reference tokens
# stdout: greedy generation: n_pre = 8 (agrees)
# The model's greedy continuation is "named Lily. She loved to play outside in the park.";
# the reference departs from it at "in" (token 9), so n_pre = 8.
"$MEMSKEW" score --model "$SHARED/models/stories260K/stories260K.gguf" \
  --prompt "Once upon a time, there was a little girl" \
  --reference "named Lily. She loved to play in the sun." --verify
