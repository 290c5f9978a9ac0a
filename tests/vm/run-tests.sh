#!/bin/sh
# Runs every test binary in /usr/lib/ipvlan-test/bin, one at a time and one test
# at a time, streaming the output, and closes with "N passed, N failed" summed
# from libtest's "test result:" lines. A binary that crashes or cannot start
# counts as one failed test. Arguments go to every binary (libtest filters).
# Each binary runs in its own network and mount namespaces (isolate.sh).

# Each binary starts from a pristine guest (see isolate.sh).
isolate=${0%/*}/isolate.sh
passed=0
failed=0
for bin in "${IPVLAN_TEST_BIN_DIR:-/usr/lib/ipvlan-test/bin}"/*; do
    [ -e "$bin" ] || continue  # the unexpanded pattern when the directory is empty
    name=${bin##*/}
    echo "ipvlan-vm: running $name"
    rm -f /tmp/test-status
    dmesg -c > /dev/null 2>&1
    { unshare -m -n --propagation private /bin/sh "$isolate" "$bin" --test-threads=1 "$@"
      echo $? > /tmp/test-status; } 2>&1 | tee /tmp/test-output
    status=$(cat /tmp/test-status 2>/dev/null || echo 127)
    counts=$(awk '/^test result:/ {
            for (i = 2; i <= NF; i++) {
                if ($i == "passed;") p += $(i - 1)
                if ($i == "failed;") f += $(i - 1)
            }
        }
        END { print p + 0, f + 0 }' /tmp/test-output)
    binary_passed=${counts% *}
    binary_failed=${counts#* }
    if [ "$status" -ne 0 ] && [ "$binary_failed" -eq 0 ]; then
        echo "ipvlan-vm: $name exited with status $status: counted as 1 failed"
        binary_failed=1
    fi
    if [ "$binary_failed" -ne 0 ]; then
        echo "ipvlan-vm: kernel log while $name ran:"
        dmesg 2>/dev/null | tail -n 50
    fi
    passed=$((passed + binary_passed))
    failed=$((failed + binary_failed))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
