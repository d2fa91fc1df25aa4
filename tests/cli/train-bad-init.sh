# `memskew train --init` with a shape that does not fit (4 heads do not divide
# a hidden size of 30) is refused before anything is written.
# exit: 3
# stderr: hidden size 30 is not divisible by 4 heads
printf '{"question": "What is A?", "answer": "A is a letter."}\n' > "$TMP/qa.jsonl"
"$MEMSKEW" train --init dim=30,layers=1,heads=4,ffn=32,ctx=64 -d "$TMP/qa.jsonl" -o "$TMP/out" -q
code=$?
[ ! -e "$TMP/out" ] || { echo "wrote $TMP/out" >&2; exit 9; }
exit $code
