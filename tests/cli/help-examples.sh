# `memskew <cmd> --help` of every command ends with one example invocation,
# "Example: memskew <cmd> ...", whose options are options of that command
# (each -x / --long-option of the example line is listed in the help). The
# commands are those the top-level --help lists, so a new command without an
# example fails here too.
# stdout: checked 14 commands
expected="info tokenize generate score probe export merge filter train report analyze convert study demo"
listed=$("$MEMSKEW" --help | awk '/^Subcommands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }' | tr '\n' ' ' | sed 's/ $//')
[ "$listed" = "$expected" ] || { echo "memskew --help lists: '$listed'; expected: '$expected'" >&2; exit 1; }
fail=0
n=0
for cmd in $expected; do
  help=$("$MEMSKEW" "$cmd" --help) || { echo "$cmd --help: exit code $?" >&2; fail=1; continue; }
  line=$(printf '%s\n' "$help" | grep -m1 "^Example: memskew $cmd ")
  if [ -z "$line" ]; then
    echo "$cmd --help has no 'Example: memskew $cmd ...' line" >&2
    fail=1
    continue
  fi
  # The example's options (quoted values left out) against the help's option list.
  opts=$(printf '%s\n' "$line" | sed 's/"[^"]*"//g' | grep -oE '(^| )--?[a-z][a-z0-9-]*' | tr -d ' ')
  for opt in $opts; do
    printf '%s\n' "$help" | grep -qE "^ +(-[a-zA-Z],)?([^ ]*,)?$opt([ ,{]|$)" ||
      { echo "$cmd: the example's option $opt is not an option of '$cmd'" >&2; fail=1; }
  done
  n=$((n + 1))
done
echo "checked $n commands"
exit $fail
