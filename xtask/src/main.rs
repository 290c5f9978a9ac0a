//! Project automation, std only: `cargo xtask <command>`.

mod bench;
mod builds;
mod disk;
mod elf;
mod initramfs;
// The library's JSON module is std-only, so the build tool shares it as source.
#[path = "../../src/json.rs"]
#[allow(dead_code)] // the build tool reads JSON only
mod json;
mod kernel;
mod layers;
mod pipeline;
mod podman;
mod powercut;
mod qemu;
mod soak;
mod tools;
mod util;
mod vm;

use kernel::Series;
use std::process::ExitCode;
use std::time::Duration;

pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  vm-test [--kernel K] [--ipv6-off] [--test TARGET]... [--timeout SECS] [FILTER]... [-- LIBTEST-ARGS]
        Boot the Debian cloud kernel in QEMU once and run the VM test targets
        (tests with required-features = [\"vm\"]) inside it. FILTER and
        LIBTEST-ARGS go to every test binary. Ends with `N passed, N failed`.
        --ipv6-off boots with ipv6.disable=1 and runs the targets that
        run only there (vm_ipv6_off), which a standard boot never runs.
  vm-run [--kernel K] [--ipv6-off] [--topology | --callgrind | --perf] [--file GUEST=HOST]... [--disk IMAGE] [--memory MIB] [--timeout SECS] (SCRIPT-FILE | -c COMMANDS)
        Boot the VM and run a shell script in it (after building the
        walkthrough topology with --topology). --disk attaches IMAGE as
        /dev/vda (cache=none), first made an empty 256 MiB ext4 image if
        it does not exist; the script mounts it. --memory: guest memory
        (default 1024 MiB; the bench's boot has 3072). --callgrind puts
        Debian's valgrind with its callgrind tool in the guest, the
        launcher's path in $VALGRIND (`$VALGRIND --tool=callgrind ...`).
        --perf puts Debian's perf (linux-perf) in the guest with its
        libraries, its path in $PERF (`$PERF record -a -g ...`).
        --file copies a static file or program of the host into the guest
        (two builds side by side, say).
  vm-shell [--kernel K] [--topology]
        Boot the VM with an interactive shell on this terminal.
  demo [--kernel K] [--timeout SECS]
        Boot the VM, build the walkthrough topology, run tests/vm/demo.sh.
  test [--kernel K]
        Everything CI checks: fmt, clippy (also with --features vm), the
        documentation (rustdoc warnings denied), layers, size, host tests,
        a bounded fuzz run, then the VM tests, the Podman test and a few
        power-cut rounds on K (default 6.1), and beside them, in a second
        VM, the VM tests on the other kernel series (6.12, or 6.1 with
        --kernel 6.12; its output is printed once the steps before it
        pass, and a step that fails stops it, its output so far kept in
        target/vm/vm-test-SERIES.out); then, on each kernel, the VM tests
        of a boot with IPv6 off (vm-test --ipv6-off).
  layers
        Check that no files under src/ use each other in a circle and no file
        uses a higher layer than its own (the `# Layers` list in src/lib.rs).
  soak --minutes N [--kernel K] [--containers C] [--timeout SECS] [--no-record] [--plant-leak]
        Boot the VM and attach and remove C (default 500) containers in a loop
        for N minutes while ps/inspect/ls run; then check nothing leaked and
        record the figures in benches/RESULTS.md. Not part of `test`.
        --plant-leak leaves a container and a descriptor behind (must fail).
  powercut [--kernel K] [--rounds N] [--seed S] [--window-ms MS] [--timeout SECS] [--plant torn|lost|unsynced]
           [--keep-going]
        State on a virtual disk (cache=none); QEMU killed (SIGKILL) at a
        random moment inside connect/run/disconnect/rm; the next boot from
        the same disk runs `restore` and checks the invariants of
        tests/powercut/guest.rs. N rounds (default 4, what `test` runs)
        take N + 1 boots; while no cut has landed inside a command, more
        rounds run (up to 4N), and none landing there fails the run.
        --plant damages a record, or (unsynced) writes files without fsync
        until the cut: the run must fail (`test` runs one unsynced round as
        a control). --keep-going goes on after a failed round and lists
        every failure at the end.
  podman-test [--kernel K] [--timeout SECS] [--plant-leak]
        Boot the VM with Debian's Podman (CNI backend, installed when
        missing) and our binary as its `ipvlan` plugin in
        /usr/local/libexec/cni: two containers on a hand-written conflist
        ping each other and the gateway, one is stopped and started again,
        one run with --ip, the other's network reloaded,
        then `podman rm -f` and `podman network rm` must leave nothing; then
        one container with Debian's host-local as the IPAM plugin, one on a
        dual-stack network, one on two networks (tests/podman/guest.rs).
        Part of `test`.
        --plant-leak leaves an ipvlan link behind (must fail).
  size  Build the release musl binary, check it is static non-PIE and carries
        no fault-injection hook, print its size; fail above 1 MiB stripped.
  bench [--kernel K] [--containers N | --quick] [--profile [--symbols] | --instructions] [--timeout SECS] [--no-record]
        Boot the VM once and measure attach and detach per container side by
        side (benches/attach.rs): a raw-netlink floor (one process for all,
        one per container, and one per container that also writes one
        record-sized file durably: the durable floor, or that also does the
        cheapest way what the behaviour asks of a connect: the behaviour
        floor, or that also turns arp_notify on before the up, the gratuitous
        ARP a CNI ADD sends: the announcing floor), `ipvlan network
        connect/disconnect` with the state directory on ext4 on a virtual
        disk, our CNI mode (ADD/DEL with ipam ipvlan; with host-local at 100
        only), iproute2 and the reference CNI plugin (at 100 only); ours and
        the floors also at N (default 1000).
        --quick: 10 and 20 containers. Records the table in benches/RESULTS.md
        (not with --no-record). Release musl builds. Not part of `test`.
        --profile: instead of the rows, where the CPU goes: our connect, our
        CNI ADD, the durable, behaviour and per-process floors in turn, and
        batches of 10 through our bulk API and the one-process floor, under
        `perf record` (Debian's linux-perf, installed when missing), CPU ms
        per container by category (system call, page faults, user space),
        side by side; N (--containers) defaults to 100. --symbols: our
        binary unstripped (same code), and the user-space functions our
        samples fell in, by CPU time. --instructions: instead of the rows,
        the instructions each command executes (Debian's valgrind,
        callgrind in the guest): a single connect, disconnect, CNI ADD and
        DEL, and one more target of a batch, against the floor's; the same
        on any host, so a small change shows.
  criterion [ARGS]...
        Run the criterion benchmarks (`cargo bench`).
  fuzz [--secs N] [TARGET]...
        Run every fuzz target (or the named ones) for N seconds each (default 20).

--kernel K picks the guest kernel, Debian bookworm's cloud kernel of series
  6.1   linux-image-cloud-amd64 (default)
  6.12  linux-image-6.12-cloud-amd64
Each is downloaded once and kept in target/vm/kernel-K.

environment:
  IPVLAN_VM_TIMEOUT   seconds before the VM is killed (default 1800)
  IPVLAN_VM_KERNEL    the kernel when no --kernel is given (default 6.1)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match command.as_str() {
        "vm-test" => vm_test(rest),
        "vm-run" => vm_run(rest),
        "demo" => demo(rest),
        "vm-shell" => vm_shell(rest),
        "test" => test(rest),
        "layers" => layers::run(rest),
        "soak" => soak::run(rest),
        "powercut" => powercut::run(rest),
        "podman-test" => podman::run(rest),
        "size" => pipeline::size(),
        "bench" => bench::run(rest),
        "criterion" => pipeline::criterion(rest),
        "fuzz" => fuzz(rest),
        "help" | "-h" | "--help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n\n{USAGE}").into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("xtask {command}: error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Takes the value following a flag.
fn flag_value<'a>(args: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<&'a String> {
    args.next()
        .ok_or_else(|| format!("{flag} needs a value").into())
}

/// Reads the value of `--kernel`.
fn kernel_value<'a>(args: &mut impl Iterator<Item = &'a String>) -> Result<Series> {
    Ok(Series::parse(flag_value(args, "--kernel")?)?)
}

fn test(args: &[String]) -> Result {
    let mut kernel = Series::from_env()?;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--kernel" => kernel = kernel_value(&mut iter)?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    pipeline::test(kernel)
}

fn vm_test(args: &[String]) -> Result {
    let mut targets = Vec::new();
    let mut test_args = Vec::new();
    let mut timeout = vm::default_timeout()?;
    let mut kernel = Series::from_env()?;
    let mut boot = vm::TestBoot::Standard;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--kernel" => kernel = kernel_value(&mut iter)?,
            "--ipv6-off" => boot = vm::TestBoot::Ipv6Off,
            "--test" => targets.push(flag_value(&mut iter, arg)?.clone()),
            "--timeout" => timeout = vm::parse_secs(flag_value(&mut iter, arg)?)?,
            "--" => test_args.extend(iter.by_ref().cloned()),
            flag if flag.starts_with("--") => {
                return Err(format!("unknown option {flag} (libtest flags go after --)").into())
            }
            filter => test_args.push(filter.to_string()),
        }
    }
    run_vm_tests(targets, test_args, timeout, kernel, boot).map(|_| ())
}

/// Runs the VM tests of `boot` (`targets` among them; all when empty);
/// returns the guest's summary line.
pub fn run_vm_tests(
    targets: Vec<String>,
    test_args: Vec<String>,
    timeout: Duration,
    kernel: Series,
    boot: vm::TestBoot,
) -> Result<String> {
    let targets = boot.targets(targets)?;
    let outcome = vm::run(vm::Options {
        job: vm::Job::Tests { targets, test_args },
        timeout,
        kernel,
        disk: None,
        memory_mib: None,
        kernel_args: boot.kernel_args(),
    })?;
    vm_tests_verdict(&outcome)
}

/// The guest's summary line if its test run passed; prints the summary.
/// Passing needs the job's zero status and a summary of tests that ran and
/// none failed: a guest that printed no summary (or `0 passed, 0 failed`)
/// tested nothing, whatever its status.
fn vm_tests_verdict(outcome: &vm::Outcome) -> Result<String> {
    let counts = outcome.summary.as_deref().and_then(summary_counts);
    let summary = outcome
        .summary
        .clone()
        .unwrap_or_else(|| "0 passed, 1 failed".to_string());
    println!("{summary}");
    if !outcome.success() {
        // Whatever the guest counted, a missing marker or a timeout is a failure.
        return Err(format!("VM tests failed: the guest {}", outcome.describe()).into());
    }
    match counts {
        None => Err("VM tests failed: the guest printed no `N passed, N failed` summary".into()),
        Some((0, 0)) => Err("VM tests failed: no test ran".into()),
        Some((_, failed)) if failed > 0 => {
            Err(format!("VM tests failed: the guest exited 0 but counted {failed} failed").into())
        }
        Some(_) => Ok(summary),
    }
}

/// `3 passed, 1 failed` -> (3, 1).
pub fn summary_counts(line: &str) -> Option<(u64, u64)> {
    match line.split_whitespace().collect::<Vec<_>>().as_slice() {
        [passed, "passed,", failed, "failed"] => Some((passed.parse().ok()?, failed.parse().ok()?)),
        _ => None,
    }
}

fn vm_run(args: &[String]) -> Result {
    let mut topology = false;
    let mut timeout = vm::default_timeout()?;
    let mut script = None;
    let mut kernel = Series::from_env()?;
    let mut disk = None;
    let mut memory_mib = None;
    let mut callgrind = false;
    let mut perf = false;
    let mut kernel_args: &[&str] = &[];
    let mut files: Vec<(String, std::path::PathBuf)> = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--kernel" => kernel = kernel_value(&mut iter)?,
            "--topology" => topology = true,
            "--callgrind" => callgrind = true,
            "--perf" => perf = true,
            "--ipv6-off" => kernel_args = vm::IPV6_OFF,
            "--file" => {
                let value = flag_value(&mut iter, arg)?;
                let (guest, host) = value
                    .split_once('=')
                    .filter(|(guest, host)| guest.starts_with('/') && !host.is_empty())
                    .ok_or_else(|| {
                        format!("--file needs GUEST=HOST, GUEST absolute, got {value:?}")
                    })?;
                files.push((guest.to_string(), std::path::PathBuf::from(host)));
            }
            "--disk" => disk = Some(std::path::PathBuf::from(flag_value(&mut iter, arg)?)),
            "--memory" => {
                let value = flag_value(&mut iter, arg)?;
                memory_mib = Some(
                    value
                        .parse::<u32>()
                        .ok()
                        .filter(|mib| *mib >= 256)
                        .ok_or_else(|| format!("--memory needs MiB, 256 or more, got {value:?}"))?,
                );
            }
            "--timeout" => timeout = vm::parse_secs(flag_value(&mut iter, arg)?)?,
            "-c" => script = Some(flag_value(&mut iter, arg)?.clone()),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}").into()),
            file => {
                script = Some(std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?)
            }
        }
    }
    let script = script.ok_or("vm-run needs a script file or -c COMMANDS")?;
    if let Some(disk) = &disk {
        if !disk.exists() {
            disk::create(disk, 256)?;
        }
    }
    let job = if callgrind || perf || !files.is_empty() {
        if topology {
            return Err("vm-run: --topology goes without --callgrind, --perf and --file".into());
        }
        let mut script = script;
        let mut executables = Vec::new();
        if callgrind {
            // The launcher and the tool at their host paths, where the
            // launcher looks for the tool.
            let tools = tools::ensure_callgrind()?;
            let launcher = tools.launcher.to_string_lossy().into_owned();
            script = format!("export VALGRIND={launcher}\n{script}");
            files.extend(
                tools
                    .files
                    .into_iter()
                    .map(|file| (file.to_string_lossy().into_owned(), file)),
            );
            executables.push(tools.launcher);
        }
        if perf {
            // At its host path in the guest, with its libraries.
            let perf = tools::ensure_perf()?;
            script = format!("export PERF={}\n{script}", perf.display());
            executables.push(perf);
        }
        vm::Job::ScriptWithFiles {
            script,
            files,
            executables,
        }
    } else {
        vm::Job::Script { script, topology }
    };
    run_script(job, timeout, kernel, disk, memory_mib, kernel_args)
}

fn vm_shell(args: &[String]) -> Result {
    let mut topology = false;
    let mut kernel = Series::from_env()?;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--kernel" => kernel = kernel_value(&mut iter)?,
            "--topology" => topology = true,
            _ => return Err("usage: cargo xtask vm-shell [--kernel K] [--topology]".into()),
        }
    }
    let job = vm::Job::Shell { topology };
    vm::run(vm::Options {
        job,
        timeout: vm::default_timeout()?,
        kernel,
        disk: None,
        memory_mib: None,
        kernel_args: &[],
    })
    .map(|_| ())
}

fn demo(args: &[String]) -> Result {
    let mut timeout = vm::default_timeout()?;
    let mut kernel = Series::from_env()?;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--kernel" => kernel = kernel_value(&mut iter)?,
            "--timeout" => timeout = vm::parse_secs(flag_value(&mut iter, arg)?)?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    run_script(
        vm::Job::Script {
            script: "/bin/sh /usr/share/ipvlan-test/demo.sh".into(),
            topology: true,
        },
        timeout,
        kernel,
        None,
        None,
        &[],
    )
}

fn run_script(
    job: vm::Job,
    timeout: Duration,
    kernel: Series,
    disk: Option<std::path::PathBuf>,
    memory_mib: Option<u32>,
    kernel_args: &'static [&'static str],
) -> Result {
    let outcome = vm::run(vm::Options {
        job,
        timeout,
        kernel,
        disk,
        memory_mib,
        kernel_args,
    })?;
    if outcome.success() {
        Ok(())
    } else {
        Err(format!("the guest script {}", outcome.describe()).into())
    }
}

fn fuzz(args: &[String]) -> Result {
    let mut secs = 20;
    let mut targets = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--secs" => secs = vm::parse_secs(flag_value(&mut iter, arg)?)?.as_secs(),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}").into()),
            target => targets.push(target.to_string()),
        }
    }
    pipeline::fuzz(secs, &targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: Option<i32>, summary: Option<&str>) -> vm::Outcome {
        vm::Outcome {
            status,
            summary: summary.map(str::to_string),
            timed_out: false,
            booted_kernel: None,
            kernel_crash: None,
            hung_before_init: false,
        }
    }

    #[test]
    fn vm_tests_pass_only_with_a_summary_of_tests_that_ran_and_passed() {
        let verdict = |status, summary| vm_tests_verdict(&outcome(status, summary));
        assert_eq!(
            verdict(Some(0), Some("12 passed, 0 failed")).unwrap(),
            "12 passed, 0 failed"
        );
        for (status, summary, why) in [
            (Some(0), None, "no summary line"),
            (Some(0), Some("0 passed, 0 failed"), "no test ran"),
            (
                Some(0),
                Some("3 passed, 2 failed"),
                "failures under a zero status",
            ),
            (Some(1), Some("3 passed, 1 failed"), "a failed job"),
            (None, Some("3 passed, 0 failed"), "no result marker"),
        ] {
            assert!(verdict(status, summary).is_err(), "{why}: must fail");
        }
        let timed_out = vm::Outcome {
            timed_out: true,
            ..outcome(Some(0), Some("1 passed, 0 failed"))
        };
        assert!(vm_tests_verdict(&timed_out).is_err(), "a timeout must fail");
    }
}
