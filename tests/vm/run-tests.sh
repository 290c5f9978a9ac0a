#!/bin/sh
# Runs every test binary in /usr/lib/ipvlan-test/bin, one test at a time each,
# and closes with "N passed, N failed" summed from libtest's "test result:"
# lines. Arguments go to every binary (libtest filters and flags). Each binary
# runs in its own network and mount namespaces (isolate.sh). The longest
# binary (cli_vm_faults, some 40% of the run) runs beside the others, on the
# guest's second CPU, its output shown when it ends; the others run one at a
# time, streaming their output; cli_vm_syscalls, whose budgets count a scan of
# every process, runs alone after all of them.
#
# A run passes only if tests ran and none failed. Each of these counts as one
# failed test: a binary that crashes, cannot start or exits non-zero without
# a failed test; one that prints no libtest result; one that runs no test when
# no argument could have filtered its tests out. No binary at all, or no test
# run by any binary (a filter that matches nothing), fails the run; so does a
# kernel warning, BUG or oops logged while the binaries ran (the kernel carries
# on after a WARN, and a test reading back its state may still pass).

# Each binary starts from a pristine guest (see isolate.sh).
isolate=${0%/*}/isolate.sh
bin_dir=${IPVLAN_TEST_BIN_DIR:-/usr/lib/ipvlan-test/bin}

# Whether the arguments may leave a binary with nothing to run: a filter (a
# word not starting with '-', other than the value of a libtest option that
# takes one), --skip or --ignored.
filtered=false
option_value=false
for arg in "$@"; do
    if [ "$option_value" = true ]; then
        option_value=false
        continue
    fi
    case $arg in
        --skip | --skip=* | --ignored) filtered=true ;;
        --format | --color | --test-threads | --logfile | --shuffle-seed | -Z) option_value=true ;;
        -*) ;;
        *) filtered=true ;;
    esac
done

work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT

# What the kernel logs when something went wrong inside it: a WARN or BUG
# (both open with "cut here"), a BUG: report without one (sleeping in atomic
# context, a bad page), an oops, a general protection fault.
kernel_trouble='-\[ cut here \]-|BUG: |kernel BUG at|Oops|general protection fault'
dmesg 2>/dev/null | wc -l > "$work/run.log-start"

binaries=0
passed=0
failed=0

# Runs one binary; its output goes to $work/NAME.output (and, with `show`,
# to the console as it comes), its exit status to $work/NAME.status.
run_binary() {
    bin=$1 show=$2
    shift 2
    name=${bin##*/}
    rm -f "$work/$name.status"
    # Where the kernel log stands: a failure shows what came after (not
    # cleared, which would empty it under the binary running beside).
    dmesg 2>/dev/null | wc -l > "$work/$name.log-start"
    { unshare -m -n --propagation private /bin/sh "$isolate" "$bin" --test-threads=1 "$@"
      echo $? > "$work/$name.status"; } 2>&1 |
        if [ "$show" = show ]; then tee "$work/$name.output"; else cat > "$work/$name.output"; fi
}

# Counts what the binary NAME's run left in $work.
count_binary() {
    name=$1
    status=$(cat "$work/$name.status" 2>/dev/null || echo 127)
    counts=$(awk '/^test result:/ {
            results++
            for (i = 2; i <= NF; i++) {
                if ($i == "passed;") p += $(i - 1)
                if ($i == "failed;") f += $(i - 1)
            }
        }
        END { print results + 0, p + 0, f + 0 }' "$work/$name.output")
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
        start=$(cat "$work/$name.log-start" 2>/dev/null || echo 0)
        dmesg 2>/dev/null | tail -n +$((start + 1)) | tail -n 50
    fi
    passed=$((passed + binary_passed))
    failed=$((failed + binary_failed))
}

# The longest binary runs beside the others on the guest's second CPU; a
# binary whose figures other processes would move (system calls of a scan
# of every process) runs alone, last.
beside=cli_vm_faults
alone=cli_vm_syscalls
beside_pid=
if [ -e "$bin_dir/$beside" ]; then
    binaries=$((binaries + 1))
    echo "ipvlan-vm: running $beside (beside the others; its output comes when it ends)"
    run_binary "$bin_dir/$beside" quiet "$@" &
    beside_pid=$!
fi
for bin in "$bin_dir"/*; do
    [ -e "$bin" ] || continue  # the unexpanded pattern when the directory is empty
    name=${bin##*/}
    case $name in "$beside" | "$alone") continue ;; esac
    binaries=$((binaries + 1))
    echo "ipvlan-vm: running $name"
    run_binary "$bin" show "$@"
    count_binary "$name"
done
if [ -n "$beside_pid" ]; then
    wait "$beside_pid"
    echo "ipvlan-vm: output of $beside"
    cat "$work/$beside.output"
    count_binary "$beside"
fi
if [ -e "$bin_dir/$alone" ]; then
    binaries=$((binaries + 1))
    echo "ipvlan-vm: running $alone (alone)"
    run_binary "$bin_dir/$alone" show "$@"
    count_binary "$alone"
fi
start=$(cat "$work/run.log-start" 2>/dev/null || echo 0)
if dmesg 2>/dev/null | tail -n +$((start + 1)) | grep -E -q -e "$kernel_trouble"; then
    echo "ipvlan-vm: the kernel logged a warning, BUG or oops while the tests ran: counted as 1 failed"
    dmesg 2>/dev/null | tail -n +$((start + 1)) | grep -E -A 30 -e "$kernel_trouble" | head -n 120
    failed=$((failed + 1))
fi
if [ "$binaries" -eq 0 ]; then
    echo "ipvlan-vm: no test binary in $bin_dir: counted as 1 failed"
    failed=1
elif [ $((passed + failed)) -eq 0 ]; then
    echo "ipvlan-vm: no test ran (does the filter match any test?): counted as 1 failed"
    failed=1
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] || exit 1
