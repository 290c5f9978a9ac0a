//! `test` (what CI runs), `size`, `criterion` and `fuzz`.

use crate::kernel::Series;
use crate::tools::{ensure_musl_target, MUSL_TARGET};
use crate::util::{banner, cargo, describe, run, seconds, Timings};
use crate::Result;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Instant;

/// Seconds of fuzzing in `cargo xtask test`, shared evenly by the targets
/// (9 s each for five), so adding a target does not lengthen CI.
const CI_FUZZ_TOTAL_SECS: u64 = 45;

/// What `cargo xtask test` may take on CI's two cores: its summary says
/// how near a run came, step by step, so a step that grows shows before
/// the budget is gone.
const CI_BUDGET_SECS: u64 = 20 * 60;

/// Whether `cargo xtask test` runs `cargo xtask layers` after clippy: on, so
/// no cycle or upward use can come back.
const LAYERS_IN_TEST: bool = true;

/// fmt, clippy, doc, layers, size, host tests, fuzz, VM tests, the Podman
/// test and a few power-cut rounds (on `kernel`), and beside those the VM
/// tests on the other kernel series Debian offers (users run both; the code
/// has paths only one of them takes); stops at the first failure.
pub fn test(kernel: Series) -> Result {
    let start = Instant::now();
    let mut timings = Timings::default();
    let step = |title: &str, cmd: &mut Command| -> Result {
        banner(title);
        run(cmd)
    };
    // Install first: a missing tool should stop the run before minutes of building.
    banner("tools");
    timings.time("tools", || {
        crate::tools::ensure_lint_components()?;
        crate::tools::ensure_vm_tools()?;
        crate::tools::ensure_podman()
    })?;
    let lint_start = Instant::now();
    step("fmt", cargo().args(["fmt", "--all", "--check"]))?;
    step(
        "clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    step(
        "clippy (features vm)",
        cargo().args([
            "clippy",
            "-p",
            "ipvlan",
            "--all-targets",
            "--features",
            "vm",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    // The documentation, private items included (most of the design is
    // written there): no link that leads nowhere, nor from a public item
    // to a private one.
    step(
        "doc",
        cargo()
            .args([
                "doc",
                "-p",
                "ipvlan",
                "--no-deps",
                "--document-private-items",
            ])
            .env("RUSTDOCFLAGS", "-D warnings"),
    )?;
    if LAYERS_IN_TEST {
        banner("layers");
        crate::layers::run(&[])?;
    }
    timings.record("lint", lint_start.elapsed());
    // The other series' VM suite runs beside the steps below, in a process
    // of its own: one guest keeps about 1.2 of the 2 cores CI has busy, and
    // the host tests and the fuzzing (a fixed minute on one core) leave
    // some of them idle. It is the longer of the two chains (its suite
    // took 720-820 s, against the 6.1 suite and the boots after it), so it
    // starts as early as it can: once the lints passed and its kernel and
    // the guest's programs are made (first, so that the two runs neither
    // download nor build at once, the fuzzer's build with them).
    let other = other_series(kernel);
    banner(&format!(
        "VM tests (kernel {}): started beside the steps below",
        other.name()
    ));
    let cache = crate::builds::target_dir()?.join("vm");
    std::fs::create_dir_all(&cache)?;
    timings.time("kernels, VM and fuzzer builds", || {
        for series in [kernel, other] {
            crate::kernel::ensure(&cache, series)?;
        }
        crate::builds::build_vm_tests(&[])?;
        crate::builds::build_ipvlan()?;
        // The fuzzer's build too, which would otherwise share the cores
        // with the guest beside.
        run(cargo().args(["build", "-p", "ipvlan-fuzz", "--profile", "fuzz"]))
    })?;
    let beside_start = Instant::now();
    let beside = Beside::start(other, &cache)?;
    // Cheap (one release build) and early: a binary grown past its limit
    // should stop CI before minutes of tests.
    banner("size");
    timings.time("size", size)?;
    banner("host tests");
    let (host_passed, host_failed) = timings.time("host tests", || {
        cargo_test_counting(cargo().args(["test", "--workspace"]))
    })?;
    banner("fuzz");
    timings.time("fuzz", || {
        run_fuzzer(&["--total-secs".to_string(), CI_FUZZ_TOTAL_SECS.to_string()])
    })?;
    banner("VM tests");
    let vm_summary = timings.time(&format!("VM {}", kernel.name()), || {
        crate::run_vm_tests(
            Vec::new(),
            Vec::new(),
            crate::vm::default_timeout()?,
            kernel,
            crate::vm::TestBoot::Standard,
        )
    })?;
    banner("Podman");
    let podman_time = timings.time("Podman and its control", || {
        let time = crate::podman::run_test(kernel, crate::podman::TIMEOUT, false)?;
        crate::podman::control(kernel)?;
        Ok(time)
    })?;
    banner("power cut");
    let powercut_start = Instant::now();
    let powercut_rounds = crate::powercut::run_rounds(&crate::powercut::Options::new(
        kernel,
        crate::powercut::CI_ROUNDS,
    ))?;
    let powercut_time = powercut_start.elapsed();
    banner("power cut control (unsynced writes planted: must fail)");
    powercut_control(kernel)?;
    timings.record("power cut and its control", powercut_start.elapsed());
    // Short (one boot, a few tests, on each kernel): hosts booted
    // without IPv6 are common, and every kernel path meets its absence.
    // The other series' boot waits for that series' suite beside, whose
    // initramfs and console log have the same paths.
    let mut ipv6_off_summaries = vec![(
        kernel,
        timings.time(&format!("IPv6 off {}", kernel.name()), || {
            ipv6_off_tests(kernel)
        })?,
    )];
    banner(&format!(
        "VM tests (kernel {}), run beside the steps above",
        other.name()
    ));
    let other_summary = timings.time(&format!("waiting for VM {}", other.name()), || {
        beside.finish()
    })?;
    let beside_time = beside_start.elapsed();
    ipv6_off_summaries.push((
        other,
        timings.time(&format!("IPv6 off {}", other.name()), || {
            ipv6_off_tests(other)
        })?,
    ));
    banner("summary");
    let total = start.elapsed();
    println!("xtask test: every step passed in {}", seconds(total));
    println!(
        "steps: {} ({:.0}% of the {} min CI budget)",
        timings.summary(),
        100.0 * total.as_secs_f64() / CI_BUDGET_SECS as f64,
        CI_BUDGET_SECS / 60
    );
    println!("host: {host_passed} passed, {host_failed} failed");
    println!("vm (kernel {}): {vm_summary}", kernel.name());
    println!(
        "podman (kernel {}): passed in {}",
        kernel.name(),
        seconds(podman_time)
    );
    println!(
        "power cut (kernel {}): {} rounds passed in {}",
        kernel.name(),
        powercut_rounds,
        seconds(powercut_time)
    );
    println!(
        "vm (kernel {}): {other_summary} (beside the steps, in {})",
        other.name(),
        seconds(beside_time)
    );
    for (series, summary) in ipv6_off_summaries {
        println!("vm with IPv6 off (kernel {}): {summary}", series.name());
    }
    Ok(())
}

/// The VM tests of a boot with IPv6 off on `series`; their summary.
fn ipv6_off_tests(series: Series) -> Result<String> {
    banner(&format!(
        "VM tests with IPv6 off (kernel {}, {})",
        series.name(),
        crate::vm::IPV6_OFF.join(" ")
    ));
    crate::run_vm_tests(
        Vec::new(),
        Vec::new(),
        crate::vm::default_timeout()?,
        series,
        crate::vm::TestBoot::Ipv6Off,
    )
}

/// One power-cut round whose guest writes files without syncing them
/// until the cut (`--plant unsynced`): its checks must find them lost.
/// Passing, the cut would not be losing what a power cut loses, and the
/// rounds before would prove nothing.
fn powercut_control(kernel: Series) -> Result {
    let mut control = crate::powercut::Options::new(kernel, 1);
    control.plant = Some("unsynced".to_string());
    match crate::powercut::run_rounds(&control) {
        Ok(_) => Err("power cut control: the planted unsynced writes all survived the cut".into()),
        // Failed by the guest's checks, which the error quotes (not by a
        // crash or a boot that never came), and by those of the planted
        // writes alone: another check failing instead would say nothing
        // of what the cut loses.
        Err(error) if planted_writes_alone_lost(&error.to_string()) => {
            println!("power cut control: the cut lost the unsynced writes, as it must");
            Ok(())
        }
        Err(error) => {
            Err(format!("power cut control: failed otherwise than by its checks: {error}").into())
        }
    }
}

/// Whether the checks that failed (`report`'s lines marked as such) are
/// each one of a planted unsynced write found lost, and there is one.
fn planted_writes_alone_lost(report: &str) -> bool {
    let failures: Vec<&str> = report
        .lines()
        .filter(|line| line.contains(crate::powercut::CHECK_FAIL))
        .collect();
    !failures.is_empty()
        && failures
            .iter()
            .all(|line| line.contains("/unsynced/") && line.contains("written before the cut, but"))
}

/// `cargo xtask vm-test --kernel SERIES` run in the background, its output
/// kept in a file (two guests' consoles interleaved would be unreadable)
/// and printed whole when it is waited for.
struct Beside {
    child: Option<std::process::Child>,
    output: std::path::PathBuf,
}

impl Beside {
    fn start(series: Series, cache: &std::path::Path) -> Result<Beside> {
        let output = cache.join(format!("vm-test-{}.out", series.name()));
        let file = std::fs::File::create(&output)?;
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["vm-test", "--kernel", series.name()])
            .stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        println!("$ {} > {}", describe(&cmd), output.display());
        let child = cmd
            .spawn()
            .map_err(|e| format!("{}: {e}", describe(&cmd)))?;
        Ok(Beside {
            child: Some(child),
            output,
        })
    }

    /// Waits for the run, prints its output, and returns the guest's
    /// summary line if it passed.
    fn finish(mut self) -> Result<String> {
        let mut child = self
            .child
            .take()
            .ok_or("the background VM run was already waited for")?;
        let status = child.wait()?;
        let text = std::fs::read_to_string(&self.output)?;
        print!("{text}");
        // `vm-test` prints the guest's summary last when it passed.
        let summary = text
            .lines()
            .rev()
            .find(|line| crate::summary_counts(line).is_some())
            .map(str::to_string);
        match (status.success(), summary) {
            (true, Some(summary)) => Ok(summary),
            (_, summary) => Err(format!(
                "VM tests beside failed ({status}; summary {summary:?}); output in {}",
                self.output.display()
            )
            .into()),
        }
    }
}

impl Drop for Beside {
    /// A step of the foreground failed: the background run, its QEMU
    /// included, is killed, not left to run on for minutes.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let mut pids = descendants(child.id());
            pids.push(child.id());
            let _ = Command::new("sh")
                .args(["-c", "kill -KILL \"$@\" 2>/dev/null", "kill"])
                .args(pids.iter().map(u32::to_string))
                .status();
            let _ = child.wait();
            println!(
                "the VM tests beside were stopped; their output so far: {}",
                self.output.display()
            );
        }
    }
}

/// Every process whose chain of parents leads to `root`, read from
/// `/proc/PID/stat` (its fourth field, after the command's closing
/// parenthesis, which the command itself may contain).
fn descendants(root: u32) -> Vec<u32> {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            if let Some(ppid) = parent_in_stat(&stat) {
                parents.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut next = 0;
    while next < found.len() {
        let parent = found[next];
        found.extend(
            parents
                .iter()
                .filter(|(_, ppid)| *ppid == parent)
                .map(|(pid, _)| *pid),
        );
        next += 1;
    }
    found.remove(0);
    found
}

/// The parent's pid in a `/proc/PID/stat` line.
fn parent_in_stat(stat: &str) -> Option<u32> {
    after_command(stat)?.nth(1)?.parse().ok()
}

/// The fields of a `/proc/PID/stat` line after the command's closing
/// parenthesis (the command may hold one too): the state, the parent, ...
fn after_command(stat: &str) -> Option<std::str::SplitWhitespace<'_>> {
    Some(stat.rsplit_once(')')?.1.split_whitespace())
}

/// The kernel series `test` runs the VM tests on beside `kernel`'s.
fn other_series(kernel: Series) -> Series {
    Series::ALL
        .into_iter()
        .find(|series| *series != kernel)
        .unwrap_or(kernel)
}

/// Runs `cargo test`, echoing its output, and sums libtest's result lines.
fn cargo_test_counting(cmd: &mut Command) -> Result<(u64, u64)> {
    println!("$ {}", describe(cmd));
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let (mut passed, mut failed) = (0, 0);
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            println!("{line}");
            if let Some((p, f)) = libtest_counts(&line) {
                passed += p;
                failed += f;
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        println!("host: {passed} passed, {failed} failed");
        return Err(format!("`{}` failed ({status})", describe(cmd)).into());
    }
    Ok((passed, failed))
}

/// `test result: ok. 3 passed; 1 failed; ...` -> (3, 1).
fn libtest_counts(line: &str) -> Option<(u64, u64)> {
    let rest = line.trim().strip_prefix("test result:")?;
    let words: Vec<&str> = rest.split_whitespace().collect();
    let count = |label: &str| {
        words
            .windows(2)
            .find(|w| w[1].trim_end_matches(';') == label)
            .and_then(|w| w[0].parse::<u64>().ok())
    };
    Some((count("passed")?, count("failed")?))
}

/// What every build with the fault-injection hook contains (the prefix of
/// its environment variables, see src/fault.rs).
const FAULT_HOOK_MARKER: &str = "IPVLAN_FAULT_";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What the stripped release binary may weigh at most, CNI mode
/// included: 1 MiB. `cargo xtask size`, and so `cargo xtask test`, fails
/// above it. Wiring the CNI verbs once took it to 1,069,264 bytes; a spawn
/// without `std::process::Command` and a start without the Rust
/// runtime's brought it back under.
const SIZE_LIMIT: u64 = 1024 * 1024;

/// The verdict on a stripped size: `Err` names the figure and the limit.
fn check_size(stripped_len: u64) -> Result {
    if stripped_len > SIZE_LIMIT {
        return Err(format!(
            "ipvlan size (stripped): {stripped_len} bytes is over the limit of \
             {SIZE_LIMIT} bytes (1 MiB) by {} bytes",
            stripped_len - SIZE_LIMIT
        )
        .into());
    }
    Ok(())
}

/// How the size stands against [`SIZE_LIMIT`], for the report.
fn against_limit(stripped_len: u64) -> String {
    format!(
        "ipvlan size: within the 1 MiB limit ({} bytes to spare)",
        SIZE_LIMIT.saturating_sub(stripped_len)
    )
}

/// Release musl build; checks it is static non-PIE, carries no
/// fault-injection hook and is at most [`SIZE_LIMIT`] bytes stripped, and
/// prints its size.
pub fn size() -> Result {
    ensure_musl_target()?;
    run(&mut crate::builds::release_build())?;
    let target_dir = crate::builds::target_dir()?;
    let binary = target_dir.join(MUSL_TARGET).join("release").join("ipvlan");
    let data = std::fs::read(&binary).map_err(|e| format!("{}: {e}", binary.display()))?;
    let facts = crate::elf::inspect(&data)?;
    if facts.has_interpreter {
        return Err(format!("{} is dynamically linked (has PT_INTERP)", binary.display()).into());
    }
    // Non-PIE is set in .cargo/config.toml; a RUSTFLAGS in the environment
    // silently replaces it, and the binary would start slower and weigh more.
    if facts.is_pie {
        return Err(format!(
            "{} is position-independent (static-pie), not static non-PIE: \
             is RUSTFLAGS set, replacing .cargo/config.toml's rustflags?",
            binary.display()
        )
        .into());
    }
    let stripped_len = if facts.has_symtab {
        // The release profile strips; if someone turned that off, measure a stripped copy.
        let copy = binary.with_extension("stripped");
        run(Command::new("strip").arg("-o").arg(&copy).arg(&binary))?;
        std::fs::metadata(&copy)?.len()
    } else {
        data.len() as u64
    };
    // The kill points of crash tests (feature `fault-injection`) must
    // compile to nothing here: their environment variables' names would be
    // the first thing a build with the hook carries.
    if contains(&data, FAULT_HOOK_MARKER.as_bytes()) {
        return Err(format!(
            "{} carries the fault-injection hook ({FAULT_HOOK_MARKER:?} found)",
            binary.display()
        )
        .into());
    }
    println!("{}: static non-PIE", binary.display());
    println!("{}: no fault-injection hook", binary.display());
    println!(
        "ipvlan size (stripped): {stripped_len} bytes ({:.1} KiB)",
        stripped_len as f64 / 1024.0
    );
    check_size(stripped_len)?;
    println!("{}", against_limit(stripped_len));
    Ok(())
}

/// Runs the criterion bench targets (not the unit tests in bench mode).
pub fn criterion(args: &[String]) -> Result {
    let benches = crate::builds::bench_targets()?;
    if benches.is_empty() {
        return Err("no bench targets: declare [[bench]] (harness = false) in Cargo.toml".into());
    }
    run(cargo()
        .args(["bench", "-p", "ipvlan", "--benches"])
        .args(args))
}

/// Runs `targets` (every one when empty) for `secs` seconds each.
pub fn fuzz(secs: u64, targets: &[String]) -> Result {
    let mut args = vec!["--secs".to_string(), secs.to_string()];
    args.extend_from_slice(targets);
    run_fuzzer(&args)
}

/// Runs the ipvlan-fuzz crate (profile `fuzz`: optimised, with overflow checks
/// and unwinding so panics are caught and saved).
fn run_fuzzer(args: &[String]) -> Result {
    run(cargo()
        .args(["run", "-p", "ipvlan-fuzz", "--profile", "fuzz", "--"])
        .args(args))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parent_is_read_after_the_commands_last_parenthesis() {
        assert_eq!(parent_in_stat("42 (qemu) S 7 42 42 0"), Some(7));
        assert_eq!(parent_in_stat("42 (a) b (c) S 9 42"), Some(9));
        assert_eq!(parent_in_stat("42 (cut"), None);
    }

    /// A background run dropped (a foreground step failed) takes its
    /// whole tree with it: a QEMU its `vm-test` started must not run on.
    #[test]
    fn a_background_run_dropped_kills_its_descendants_too() {
        let output = std::env::temp_dir().join(format!("xtask-beside-{}", std::process::id()));
        let child = Command::new("sh")
            .args(["-c", "sleep 100 & sleep 100 & wait"])
            .spawn()
            .unwrap();
        let shell = child.id();
        let mut sleepers = Vec::new();
        for _ in 0..200 {
            sleepers = descendants(shell);
            if sleepers.len() == 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(sleepers.len(), 2, "the shell's two sleeps: {sleepers:?}");
        drop(Beside {
            child: Some(child),
            output,
        });
        // Gone, or a zombie waiting for whoever adopted it.
        let ended = |pid: u32| {
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| after_command(&stat)?.next().map(str::to_string));
            state.as_deref().is_none_or(|s| s == "Z")
        };
        for _ in 0..200 {
            if sleepers.iter().all(|pid| ended(*pid)) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        for pid in sleepers {
            assert!(ended(pid), "sleep {pid} still runs");
        }
    }

    #[test]
    fn test_runs_the_vm_tests_on_the_other_series_too() {
        assert_eq!(other_series(Series::V6_1), Series::V6_12);
        assert_eq!(other_series(Series::V6_12), Series::V6_1);
    }

    #[test]
    fn finds_the_hook_marker() {
        assert!(contains(
            b"..IPVLAN_FAULT_COUNT..",
            FAULT_HOOK_MARKER.as_bytes()
        ));
        assert!(!contains(b"IPVLAN_STATE_DIR", FAULT_HOOK_MARKER.as_bytes()));
    }

    #[test]
    fn the_size_limit_is_1_mib_inclusive() {
        assert!(check_size(0).is_ok());
        assert!(check_size(1_048_576).is_ok());
        assert_eq!(
            check_size(1_048_577).unwrap_err().to_string(),
            "ipvlan size (stripped): 1048577 bytes is over the limit of 1048576 bytes (1 MiB) by 1 bytes"
        );
        assert_eq!(
            against_limit(1_048_570),
            "ipvlan size: within the 1 MiB limit (6 bytes to spare)"
        );
    }

    #[test]
    fn reads_libtest_result_lines() {
        assert_eq!(
            libtest_counts("test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s"),
            Some((12, 0))
        );
        assert_eq!(
            libtest_counts("test result: FAILED. 1 passed; 2 failed; 0 ignored"),
            Some((1, 2))
        );
        assert_eq!(libtest_counts("running 3 tests"), None);
    }

    /// The control passes on the planted writes' checks alone: not on no
    /// failure, nor on another check failing beside or instead of them.
    #[test]
    fn the_control_counts_only_the_planted_writes_lost() {
        let planted =
            "PC-CHECK-FAIL: /mnt/powercut/unsynced/2: written before the cut, but missing";
        let other = "PC-CHECK-FAIL: restore exited 1 with stderr \"x\"";
        let report = |lines: &[&str]| {
            format!(
                "round 0 (its last line before the cut: x):\n{}\nreproduce with: ...",
                lines.join("\n")
            )
        };
        assert!(planted_writes_alone_lost(&report(&[planted, planted])));
        assert!(!planted_writes_alone_lost(&report(&[])));
        assert!(!planted_writes_alone_lost(&report(&[other])));
        assert!(!planted_writes_alone_lost(&report(&[planted, other])));
    }
}
