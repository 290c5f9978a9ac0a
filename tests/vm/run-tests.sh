#!/bin/sh
# Runs every test binary in /usr/lib/ipvlan-test/bin, one at a time and one test
# at a time, streaming the output, and closes with "N passed, N failed" summed
# from libtest's "test result:" lines. Arguments go to every binary (libtest
# filters and flags). Each binary runs in its own network and mount namespaces
# (isolate.sh).
#
# A run passes only if tests ran and none failed. Each of these counts as one
# failed test: a binary that crashes, cannot start or exits non-zero without
# a failed test; one that prints no libtest result; one that runs no test when
# no argument could have filtered its tests out. No binary at all, or no test
# run by any binary (a filter that matches nothing), fails the run.

# Each binary starts from a pristine guest (see isolate.sh).
isolate=${0%/*}/isolate.sh
bin_dir=${IPVLAN_TEST_BIN_DIR:-/usr/lib/ipvlan-test/bin}

# Whether the arguments may leave a binary with nothing to run: a filter (a
# word not starting with '-'), --skip or --ignored.
filtered=false
for arg in "$@"; do
    case $arg in
        --skip | --skip=* | --ignored) filtered=true ;;
        -*) ;;
        *) filtered=true ;;
    esac
done

work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT

binaries=0
passed=0
failed=0
for bin in "$bin_dir"/*; do
    [ -e "$bin" ] || continue  # the unexpanded pattern when the directory is empty
    binaries=$((binaries + 1))
    name=${bin##*/}
    echo "ipvlan-vm: running $name"
    rm -f "$work/status"
    dmesg -c > /dev/null 2>&1
    { unshare -m -n --propagation private /bin/sh "$isolate" "$bin" --test-threads=1 "$@"
      echo $? > "$work/status"; } 2>&1 | tee "$work/output"
    status=$(cat "$work/status" 2>/dev/null || echo 127)
    counts=$(awk '/^test result:/ {
            results++
            for (i = 2; i <= NF; i++) {
                if ($i == "passed;") p += $(i - 1)
                if ($i == "failed;") f += $(i - 1)
            }
        }
        END { print results + 0, p + 0, f + 0 }' "$work/output")
    results=${counts%% *}
    counts=${counts#* }
    binary_passed=${counts% *}
    binary_failed=${counts#* }
    if [ "$status" -ne 0 ] && [ "$binary_failed" -eq 0 ]; then
        echo "ipvlan-vm: $name exited with status $status: counted as 1 failed"
        binary_failed=1
    elif [ "$results" -eq 0 ]; then
        echo "ipvlan-vm: $name printed no libtest result: counted as 1 failed"
        binary_failed=1
    elif [ "$filtered" = false ] && [ $((binary_passed + binary_failed)) -eq 0 ]; then
        echo "ipvlan-vm: $name ran no test: counted as 1 failed"
        binary_failed=1
    fi
    if [ "$binary_failed" -ne 0 ]; then
        echo "ipvlan-vm: kernel log while $name ran:"
        dmesg 2>/dev/null | tail -n 50
    fi
    passed=$((passed + binary_passed))
    failed=$((failed + binary_failed))
done
if [ "$binaries" -eq 0 ]; then
    echo "ipvlan-vm: no test binary in $bin_dir: counted as 1 failed"
    failed=1
elif [ $((passed + failed)) -eq 0 ]; then
    echo "ipvlan-vm: no test ran (does the filter match any test?): counted as 1 failed"
    failed=1
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] || exit 1
