//! `cargo xtask bench`: one boot of the VM that measures attach and detach
//! side by side (`benches/attach.rs`: a raw-netlink floor, the same with the
//! durable write of one record, our CLI, bulk API and CNI mode, iproute2,
//! the reference CNI plugin), with the state directory on ext4 on
//! a virtual disk, and what one durable write of a record costs by kind on
//! that disk (a new file, an overwrite of a preallocated block, an append),
//! and records the tables in `benches/RESULTS.md`. Not part
//! of `cargo xtask test`: it takes many minutes under emulation.

use crate::builds::{build_release, target_dir};
use crate::kernel::Series;
use crate::soak::{commit, figures_between, host_cpu, splice_between, today};
use crate::util::{shell_quote, workspace_root};
use crate::{disk, tools, vm, Result};
use std::fs;
use std::path::PathBuf;
use std::time::Duration;

const USAGE: &str = "usage: cargo xtask bench [--kernel K] [--containers N | --quick] \
     [--profile [--symbols] | --instructions] [--timeout SECS] [--no-record]";

/// The guest program prints its Markdown between these lines
/// (`RESULTS_BEGIN`, `RESULTS_END` in benches/attach.rs).
const RESULTS_BEGIN: &str = "BENCH-RESULTS-BEGIN";
const RESULTS_END: &str = "BENCH-RESULTS-END";

const RESULTS_FILE: &str = "benches/RESULTS.md";
const SECTION_BEGIN: &str = "<!-- bench:begin (written by `cargo xtask bench`) -->";
const SECTION_END: &str = "<!-- bench:end -->";
/// `--profile` records its own section.
const PROFILE_BEGIN: &str =
    "<!-- bench-profile:begin (written by `cargo xtask bench --profile`) -->";
const PROFILE_END: &str = "<!-- bench-profile:end -->";
/// So does `--instructions`.
const INSTRUCTIONS_BEGIN: &str =
    "<!-- bench-instructions:begin (written by `cargo xtask bench --instructions`) -->";
const INSTRUCTIONS_END: &str = "<!-- bench-instructions:end -->";

/// Where the guest finds what the bench runs.
const GUEST_DIR: &str = "/usr/lib/ipvlan-bench";
/// Where the guest mounts the disk (state directory, CNI data).
const GUEST_DISK: &str = "/mnt/bench";
/// The disk image's size: the state of 1,000 endpoints is a few MiB.
const DISK_MIB: u64 = 256;

/// Containers of the rows every kind runs (iproute2 and the reference CNI
/// plugin run only these).
const SMALL: u64 = 100;
/// Containers of the long rows (ours and the floor).
const LARGE: u64 = 1000;
/// `--quick`: two short sizes, every row and every figure (the long rows'
/// first and last tenths, the bulk API's ten batches) at a size that says
/// nothing but runs every path.
const QUICK: u64 = 10;
const QUICK_LARGE: u64 = 20;

struct Options {
    kernel: Series,
    small: u64,
    large: u64,
    timeout: Option<Duration>,
    record: bool,
    /// Where the CPU goes instead of the rows (`perf` in the guest).
    profile: bool,
    /// With `profile`: our binary keeps its symbol table, so the profile
    /// also names the user-space functions the samples fell in.
    symbols: bool,
    /// Instructions each command executes (callgrind in the guest) instead
    /// of the rows.
    instructions: bool,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        kernel: Series::from_env()?,
        small: SMALL,
        large: LARGE,
        timeout: None,
        record: true,
        profile: false,
        symbols: false,
        instructions: false,
    };
    let mut iter = args.iter();
    let positive = |flag: &str, value: Option<&String>| -> Result<u64> {
        value
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|v| *v > 0)
            .ok_or_else(|| format!("{flag} needs a positive whole number\n{USAGE}").into())
    };
    let mut sized = false;
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--kernel" => {
                let value = iter.next().ok_or("--kernel needs a value")?;
                options.kernel = Series::parse(value)?;
            }
            "--containers" | "--quick" if sized => {
                return Err(format!("--containers and --quick go alone\n{USAGE}").into())
            }
            "--containers" => {
                // N is the long rows' size; the short rows keep 100 (or N if smaller).
                options.large = positive(arg, iter.next())?;
                options.small = options.small.min(options.large);
                sized = true;
            }
            "--quick" => {
                (options.small, options.large) = (QUICK, QUICK_LARGE);
                sized = true;
            }
            "--timeout" => options.timeout = Some(Duration::from_secs(positive(arg, iter.next())?)),
            "--no-record" => options.record = false,
            "--profile" => options.profile = true,
            "--symbols" => options.symbols = true,
            "--instructions" => options.instructions = true,
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }
    if options.symbols && !options.profile {
        return Err(format!("--symbols goes with --profile\n{USAGE}").into());
    }
    if options.instructions && options.profile {
        return Err(format!("--instructions and --profile go alone\n{USAGE}").into());
    }
    Ok(options)
}

/// VM time for a run: boot, setup, and a generous 0.5 s per container and
/// row under emulation (the slowest rows, iproute2 and the reference
/// plugin, cost about 0.2 s per container per attach; the long size also
/// runs the bulk API's batches with the floor's), and 0.3 s a container
/// for the ten pairs of batches of all (ours beside the floor's; about
/// 70 ms a container a pair at N = 1,000, 0.7 s for the ten, which the
/// other allowances have covered: the full run at N = 1,000 took 21
/// minutes of its 70).
/// Guest memory of the bench's boot: at N = 1,000 the six interleaved rows
/// hold 6,000 namespaces at once, about 200 KiB of kernel memory each (1.2
/// GB), with the one-process floor's 1,000 still being freed; the default 1 GiB
/// guest runs out of namespaces (`user.max_net_namespaces` follows memory)
/// before that.
const BENCH_MEMORY_MIB: u32 = 3072;

fn default_timeout(options: &Options) -> Duration {
    let pairs = (options.small + options.large) * 3 / 10;
    // The bulk API's growth: five rounds of ten batches at the long size,
    // each round some 0.1 s a container.
    let growth_rounds = options.large / 2;
    Duration::from_secs(600 + (options.small * 6 + options.large * 5) / 2 + pairs + growth_rounds)
}

pub fn run(args: &[String]) -> Result {
    let options = parse(args)?;
    let plugins = tools::ensure_cni_plugins()?;
    let (cni_ipvlan, cni_host_local) = (
        tools::reference_plugin(&plugins, "ipvlan")?,
        tools::reference_plugin(&plugins, "host-local")?,
    );
    let perf = if options.profile {
        Some(tools::ensure_perf()?)
    } else {
        None
    };
    let callgrind = if options.instructions {
        Some(tools::ensure_callgrind()?)
    } else {
        None
    };
    let (ipvlan, program) = build_release("attach", options.symbols)?;
    // The tree the binaries were built from: it may change while the guest runs.
    let built_from = commit();
    let data = fs::read(&ipvlan).map_err(|e| format!("{}: {e}", ipvlan.display()))?;
    let facts = crate::elf::inspect(&data)?;
    if facts.has_interpreter || facts.has_symtab != options.symbols {
        return Err(format!(
            "{} is not a static {} binary as this run needs it",
            ipvlan.display(),
            if options.symbols {
                "unstripped"
            } else {
                "stripped"
            }
        )
        .into());
    }
    let cache = target_dir()?.join("vm");
    fs::create_dir_all(&cache)?;
    let image = cache.join("bench-disk.img");
    disk::create(&image, DISK_MIB)?;
    let cni_dir = cni_ipvlan
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let guest_ipvlan = format!("{GUEST_DIR}/ipvlan");
    let guest_program = format!("{GUEST_DIR}/attach");
    let mut words = vec![
        guest_program.clone(),
        "run".to_string(),
        "--ipvlan".to_string(),
        guest_ipvlan.clone(),
        "--disk".to_string(),
        GUEST_DISK.to_string(),
        "--cni".to_string(),
        cni_dir,
        "--small".to_string(),
        options.small.to_string(),
        "--large".to_string(),
        options.large.to_string(),
    ];
    let mut executables = vec![cni_ipvlan, cni_host_local];
    let mut files = vec![(guest_ipvlan, ipvlan), (guest_program, program)];
    if let Some(perf) = perf {
        // At its host path in the guest, with its libraries.
        words.extend(["--perf".to_string(), perf.to_string_lossy().into_owned()]);
        executables.push(perf);
    }
    if let Some(callgrind) = callgrind {
        // The launcher at its host path with its libraries; the tool where
        // the launcher looks for it, its host path too.
        let launcher = callgrind.launcher.to_string_lossy().into_owned();
        words.extend(["--valgrind".to_string(), launcher]);
        executables.push(callgrind.launcher);
        for file in callgrind.files {
            files.push((file.to_string_lossy().into_owned(), file));
        }
    }
    words = words.iter().map(|w| shell_quote(w)).collect();
    let script = format!(
        "set -e\nmkdir -p {GUEST_DISK}\nmount -t ext4 /dev/vda {GUEST_DISK}\n\
         export IPVLAN_STATE_DIR={GUEST_DISK}/state\n{}\n",
        words.join(" ")
    );
    let timeout = options.timeout.unwrap_or_else(|| default_timeout(&options));
    let outcome = vm::run(vm::Options {
        job: vm::Job::ScriptWithFiles {
            script,
            files,
            executables,
        },
        timeout,
        kernel: options.kernel,
        disk: Some(image),
        memory_mib: Some(BENCH_MEMORY_MIB),
        kernel_args: &[],
    })?;
    let log = crate::vm::console_log(options.kernel)?;
    let console = fs::read_to_string(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let figures = figures_between(&console, RESULTS_BEGIN, RESULTS_END);
    let (true, Some(figures)) = (outcome.success(), figures) else {
        return Err(format!(
            "the bench {} without its figures (see {})",
            outcome.describe(),
            log.display()
        )
        .into());
    };
    let kernel = outcome
        .booted_kernel
        .clone()
        .unwrap_or_else(|| "unknown".to_string());
    let section = section(&options, &kernel, &figures, &built_from);
    let kept: PathBuf = cache.join("bench.md");
    fs::write(&kept, &section)?;
    println!("\n{section}");
    if options.record {
        let path = workspace_root().join(RESULTS_FILE);
        let old = fs::read_to_string(&path).unwrap_or_default();
        let (begin, end) = if options.profile {
            (PROFILE_BEGIN, PROFILE_END)
        } else if options.instructions {
            (INSTRUCTIONS_BEGIN, INSTRUCTIONS_END)
        } else {
            (SECTION_BEGIN, SECTION_END)
        };
        fs::write(
            &path,
            splice_between(&old, begin, end, "# Results\n\n", &section),
        )?;
        println!("bench: figures recorded in {RESULTS_FILE}");
    } else {
        println!(
            "bench: figures in {} (--no-record: {RESULTS_FILE} not updated)",
            kept.display()
        );
    }
    Ok(())
}

/// `built_from`: [`commit`] when the binaries were built.
fn section(options: &Options, kernel: &str, figures: &str, built_from: &str) -> String {
    let mut command = "cargo xtask bench".to_string();
    if (options.small, options.large) == (QUICK, QUICK_LARGE) {
        command.push_str(" --quick");
    } else if options.large != LARGE {
        command.push_str(&format!(" --containers {}", options.large));
    }
    if options.profile {
        command.push_str(" --profile");
    }
    if options.symbols {
        command.push_str(" --symbols");
    }
    if options.instructions {
        command.push_str(" --instructions");
    }
    command.push_str(&format!(" --kernel {}", options.kernel.name()));
    format!(
        "### `{command}`, {date}\n\n\
         - commit {commit}\n\
         - guest kernel {kernel}, in the QEMU guest of `cargo xtask vm-test` (software \
         emulation, no KVM, `-cpu {guest_cpu}`) on a host {cpu}; state directory and CNI data on ext4 on the \
         guest's virtual disk (`cache=none`)\n\
         - `ipvlan` and the floor: release musl builds (profile `release`, static)\n\n\
         {figures}",
        date = today(),
        commit = built_from,
        cpu = host_cpu(),
        guest_cpu = crate::qemu::CPU,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn options() {
        let default = parse(&[]).unwrap();
        assert_eq!((default.small, default.large), (SMALL, LARGE));
        assert!(default.record);
        let quick = parse(&args(&["--quick", "--no-record", "--kernel", "6.12"])).unwrap();
        assert_eq!((quick.small, quick.large), (QUICK, QUICK_LARGE));
        assert!(!quick.record);
        assert_eq!(quick.kernel, Series::V6_12);
        assert!(!default.profile);
        assert!(parse(&args(&["--profile"])).unwrap().profile);
        assert!(parse(&args(&["--profile", "--symbols"])).unwrap().symbols);
        assert!(
            parse(&args(&["--symbols"])).is_err(),
            "--symbols is for a profile"
        );
        assert!(parse(&args(&["--instructions"])).unwrap().instructions);
        assert!(parse(&args(&["--instructions", "--profile"])).is_err());
        let sized = parse(&args(&["--containers", "50"])).unwrap();
        assert_eq!((sized.small, sized.large), (50, 50));
        for bad in [
            &["--containers"][..],
            &["--containers", "0"][..],
            &["--quick", "--containers", "5"][..],
            &["extra"][..],
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn markers_agree_with_the_guest_program() {
        let source = fs::read_to_string(workspace_root().join("benches/attach.rs")).unwrap();
        for (name, value) in [
            ("RESULTS_BEGIN", RESULTS_BEGIN),
            ("RESULTS_END", RESULTS_END),
        ] {
            let line = format!("pub const {name}: &str = \"{value}\";");
            assert!(source.contains(&line), "benches/attach.rs lacks {line}");
        }
    }

    #[test]
    fn a_run_replaces_only_its_own_section() {
        let old = format!("# R\n\n## Soak\nkept\n\n{SECTION_BEGIN}\nold\n{SECTION_END}\n");
        let new = splice_between(&old, SECTION_BEGIN, SECTION_END, "", "new\n");
        assert_eq!(
            new,
            format!("# R\n\n## Soak\nkept\n\n{SECTION_BEGIN}\nnew\n{SECTION_END}\n")
        );
    }
}
