#!/usr/bin/env bash
# Renders HTML reports of a small store and checks them in headless Chromium.
#   check-report.sh MAKE_STORE MEMSKEW OUT_DIR
# Checks: the file references nothing outside itself; the redacted report
# holds no sample text; Chromium, with every host name resolving to nothing,
# logs no console messages and its NetLog shows no request from the page; the rendered DOM has every
# chart as a non-empty <svg>. Leaves OUT_DIR/report.png (1280 px wide) to look at.
# Exit 77 (skipped) when chromium is not installed.
set -u
make_store=$1
memskew=$2
out=$3

chromium_bin=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
if [ -z "$chromium_bin" ]; then
  echo "SKIP: chromium not installed (scripts/install-deps.sh installs it)"
  exit 77
fi

fail() { echo "FAIL: $*"; exit 1; }

rm -rf "$out" && mkdir -p "$out" || fail "cannot create $out"
"$make_store" "$out/run.db" >/dev/null || fail "make-report-store failed"
"$memskew" report "$out/run.db" --out "$out/report.html" --bootstrap 200 --permutations 100 \
  || fail "memskew report failed"
"$memskew" report "$out/run.db" --out "$out/report-redacted.html" --redact --bootstrap 200 --permutations 100 \
  || fail "memskew report --redact failed"
[ -f "$out/report.html.tmp" ] && fail "temporary file left behind"

# 1. Self-contained: no URLs, scripts, links or images.
for f in report.html report-redacted.html; do
  if grep -Eiq 'https?://|<script|<link|<img|<iframe|@import' "$out/$f"; then
    grep -Eion '.{0,40}(https?://|<script|<link|<img|<iframe|@import).{0,40}' "$out/$f" | head -5
    fail "$f references something outside itself"
  fi
done

# 2. Sample texts are in the report and nowhere in the redacted one.
grep -q 'PROMPT-MARKER' "$out/report.html" || fail "report.html lacks the prompt texts"
grep -q 'REFMARKER' "$out/report.html" || fail "report.html lacks the reference texts"
grep -q 'GENMARKER' "$out/report.html" || fail "report.html lacks the generated texts"
if grep -Eq 'PROMPT-MARKER|REFMARKER|GENMARKER|What should I do|patient should' "$out/report-redacted.html"; then
  fail "report-redacted.html contains sample text"
fi

# 3. Headless Chromium: DOM, console, network.
run_chromium() {  # run_chromium LOG ARGS...
  local log=$1; shift
  local profile
  profile=$(mktemp -d)
  timeout 120 "$chromium_bin" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --disable-extensions \
    --user-data-dir="$profile" --host-resolver-rules="MAP * ~NOTFOUND" \
    --enable-logging=stderr --v=0 "$@" 2>"$log"
  local rc=$?
  rm -rf "$profile"
  return $rc
}
for f in report.html report-redacted.html; do
  base=${f%.html}
  run_chromium "$out/$base-dom.log" --log-net-log="$out/$base-net.json" --dump-dom "file://$out/$f" \
    >"$out/$base-dom.html" || { tail -20 "$out/$base-dom.log"; fail "chromium --dump-dom failed on $f"; }
  # Every URL request of the session is in the NetLog. Chromium itself still
  # calls a few Google services (clock, updates, accounts) despite the flags;
  # anything else came from the page.
  page_urls=$(grep -o '"url":"[^"]*"' "$out/$base-net.json" | sort -u \
    | grep -Ev '"url":"https?://(clients2\.google\.com/time/|update\.googleapis\.com/service/update2/|accounts\.google\.com/ListAccounts)' \
    | grep -Ev '"url":"(file|data|chrome|about):' || true)
  if [ -n "$page_urls" ]; then
    echo "$page_urls" | head -5
    fail "$f made network requests"
  fi
  # Console messages (errors, CSP violations) and failed loads show up in the log.
  if grep -Eq 'CONSOLE|Uncaught|Refused to|ERR_NAME_NOT_RESOLVED|Failed to load resource|net::ERR_' "$out/$base-dom.log"; then
    grep -E 'CONSOLE|Uncaught|Refused to|ERR_NAME_NOT_RESOLVED|Failed to load resource|net::ERR_' "$out/$base-dom.log" | head -10
    fail "console errors or network requests while loading $f"
  fi
  for id in chart-histogram chart-ccdf chart-hazard chart-scatter-rouge-l chart-scatter-loss chart-scatter-min-k \
            chart-sampling-miss chart-trend-tail chart-trend-loss; do
    svg=$(python3 - "$out/$base-dom.html" "$id" <<'PY'
import re, sys
dom = open(sys.argv[1], encoding="utf-8").read()
m = re.search(r'<svg id="%s".*?</svg>' % re.escape(sys.argv[2]), dom, re.S)
if not m:
    print(0); sys.exit()
s = m.group(0)
print(len(re.findall(r'<(path|circle)\b', s)) + len(re.findall(r'<rect\b', s)) - 2)
PY
)
    [ "${svg:-0}" -gt 0 ] || fail "$f: chart $id missing or empty in the DOM"
  done
  grep -q 'id="table-top"' "$out/$base-dom.html" || fail "$f: top-samples table missing"
done

# 4. Screenshot for a human (and the test's author) to look at.
run_chromium "$out/screenshot.log" --screenshot="$out/report.png" --window-size=1280,4000 \
  --hide-scrollbars "file://$out/report.html" >/dev/null || fail "chromium --screenshot failed"
[ -s "$out/report.png" ] || fail "no screenshot written"
echo "OK: reports and screenshot in $out (report.png)"
