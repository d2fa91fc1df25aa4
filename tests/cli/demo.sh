# The README's main command: synthetic data, a model trained from scratch, the audit.
# Its report must show a skewed distribution whose tail grows across epochs:
# checked on the analysis JSON below.
# stdout: The tail across training
# stdout: Findings (last checkpoint):
# stdout: Report:
"$MEMSKEW" demo --out "$TMP/demo" || exit 1
test -s "$TMP/demo/report.html" || { echo "no report" >&2; exit 9; }
"$MEMSKEW" analyze "$TMP/demo/memskew.db" --json "$TMP/a.json" > /dev/null || exit 9
# Skew: the max is far above the median; the tail grows: the last checkpoint's max > the first's.
check_skew() {
  local max median first last
  max=$(grep -o '"max": *[0-9.]*' "$TMP/a.json" | head -1 | grep -o '[0-9.]*$')
  median=$(grep -o '"median": *[0-9.]*' "$TMP/a.json" | head -1 | grep -o '[0-9.]*$')
  echo "max $max median $median"
  awk -v m="$max" -v d="$median" 'BEGIN { exit !(m >= 3 * d + 10) }' || { echo "not skewed: max $max median $median" >&2; return 1; }
}
check_skew || exit 9
"$MEMSKEW" analyze "$TMP/demo/memskew.db" | grep -E "max n_pre goes [0-9]+ -> [0-9]+" | awk '{ for (i = 1; i <= NF; i++) if ($i == "goes") { a = $(i+1); b = $(i+3); break } } END { exit !(b + 0 > a + 0) }' || { echo "the tail did not grow across epochs" >&2; exit 9; }
