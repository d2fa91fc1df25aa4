# stdout: teacher-forced n_pre of its own continuation: 24 of 24
# stdout: teacher-forced n_pre with token 10 changed:   9 of 24
# stdout: greedy generation agrees: n_pre = 9
"$MEMSKEW" demo --out "$TMP/demo"
