#!/bin/sh
# Runs each test program given as an argument, shows its output, and ends
# with the total "N passed, M failed" over all of them. Exits non-zero if any
# test failed or any program crashed before printing its own count.
passed=0
failed=0
crashed=""
for t in "$@"; do
	echo "== $t"
	out=$("$t" 2>&1)
	rc=$?
	printf '%s\n' "$out" | grep -v '^PASS ' | grep -v '^[0-9]* passed, [0-9]* failed'
	line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
	if [ -z "$line" ]; then
		crashed="$crashed $t"
		failed=$((failed + 1))
		echo "   $t exited with status $rc without a summary"
		continue
	fi
	p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
	f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
	echo "   $line"
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		crashed="$crashed $t"
		failed=$((failed + 1))
		echo "   $t exited with status $rc"
	fi
done
[ -n "$crashed" ] && echo "programs that failed to finish:$crashed"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
