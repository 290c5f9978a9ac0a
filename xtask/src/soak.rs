//! `cargo xtask soak`: boots the VM once and runs the soak program
//! (`benches/soak.rs`) in it for a given time, then records its figures
//! in `benches/RESULTS.md`. Not part of `cargo xtask test`: it takes minutes
//! by design.

use crate::builds::{build_ipvlan, build_vm_example, target_dir};
use crate::kernel::Series;
use crate::util::{output, workspace_root};
use crate::vm;
use crate::Result;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const USAGE: &str = "usage: cargo xtask soak --minutes N [--kernel K] [--containers C] \
     [--timeout SECS] [--no-record] [--plant-leak]";

/// The guest program prints its Markdown figures between these lines
/// (`RESULTS_BEGIN`, `RESULTS_END` in benches/soak.rs).
const RESULTS_BEGIN: &str = "SOAK-RESULTS-BEGIN";
const RESULTS_END: &str = "SOAK-RESULTS-END";

/// Where the figures of a passing run go, between these markers; the rest
/// of the file is left as it is.
const RESULTS_FILE: &str = "benches/RESULTS.md";
const SECTION_BEGIN: &str = "<!-- soak:begin (written by `cargo xtask soak`) -->";
const SECTION_END: &str = "<!-- soak:end -->";

/// VM time beyond the soak's own: boot under emulation, setup, the removal
/// after the deadline (the program's TEARDOWN_LIMIT, 300 s), the end
/// checks.
const ALLOWANCE: Duration = Duration::from_secs(600);

struct Options {
    minutes: u64,
    containers: Option<u64>,
    kernel: Series,
    timeout: Option<Duration>,
    record: bool,
    /// Have the guest leave a container and a descriptor behind, to see
    /// the end checks fail (never recorded).
    plant_leak: bool,
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options {
        minutes: 0,
        containers: None,
        kernel: Series::from_env()?,
        timeout: None,
        record: true,
        plant_leak: false,
    };
    let mut iter = args.iter();
    let positive = |flag: &str, value: Option<&String>| -> Result<u64> {
        value
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|v| *v > 0)
            .ok_or_else(|| format!("{flag} needs a positive whole number\n{USAGE}").into())
    };
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--minutes" => options.minutes = positive(arg, iter.next())?,
            "--containers" => options.containers = Some(positive(arg, iter.next())?),
            "--timeout" => options.timeout = Some(Duration::from_secs(positive(arg, iter.next())?)),
            "--kernel" => {
                let value = iter.next().ok_or("--kernel needs a value")?;
                options.kernel = Series::parse(value)?;
            }
            "--no-record" => options.record = false,
            "--plant-leak" => {
                options.plant_leak = true;
                options.record = false;
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }
    if options.minutes == 0 {
        return Err(format!("--minutes N is required\n{USAGE}").into());
    }
    Ok(options)
}

pub fn run(args: &[String]) -> Result {
    let options = parse(args)?;
    let program = build_vm_example("soak")?;
    // Built again (a no-op) by vm::run; asked here for its profile only.
    let ipvlan = build_ipvlan()?;
    // The tree the binaries were built from: it may change while the guest runs.
    let built_from = commit();
    let mut guest_args = vec!["--seconds".to_string(), (options.minutes * 60).to_string()];
    if let Some(containers) = options.containers {
        guest_args.extend(["--containers".to_string(), containers.to_string()]);
    }
    if options.plant_leak {
        guest_args.push("--plant-leak".to_string());
    }
    let timeout = options
        .timeout
        .unwrap_or(Duration::from_secs(options.minutes * 60) + ALLOWANCE);
    let outcome = vm::run(vm::Options {
        job: vm::Job::Program {
            program,
            args: guest_args,
        },
        timeout,
        kernel: options.kernel,
        disk: None,
        memory_mib: None,
        kernel_args: &[],
    })?;
    let log = crate::vm::console_log(options.kernel)?;
    let console = fs::read_to_string(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let Some(figures) = figures(&console) else {
        return Err(format!(
            "the soak {} without printing its figures (see {})",
            outcome.describe(),
            log.display()
        )
        .into());
    };
    let kernel = outcome
        .booted_kernel
        .clone()
        .unwrap_or_else(|| "unknown".to_string());
    let section = section(&options, &kernel, &profile(&ipvlan), &figures, &built_from);
    let kept = target_dir()?.join("vm").join("soak.md");
    fs::write(&kept, &section)?;
    println!("soak figures: {}", kept.display());
    if !outcome.success() {
        return Err(format!(
            "the soak failed: the guest {} ({} not updated)",
            outcome.describe(),
            RESULTS_FILE
        )
        .into());
    }
    if options.record {
        let path = workspace_root().join(RESULTS_FILE);
        let old = fs::read_to_string(&path).unwrap_or_default();
        fs::write(&path, splice(&old, &section))?;
        println!("soak: passed; figures recorded in {RESULTS_FILE}");
    } else {
        println!("soak: passed (--no-record: {RESULTS_FILE} not updated)");
    }
    Ok(())
}

/// The Markdown between the guest's markers (the last run of them).
fn figures(console: &str) -> Option<String> {
    figures_between(console, RESULTS_BEGIN, RESULTS_END)
}

/// The text between the last line `open` and the line `close` after it.
/// Shared with `cargo xtask bench`.
pub(crate) fn figures_between(console: &str, open: &str, close: &str) -> Option<String> {
    let begin = console.rfind(&format!("{open}\n"))?;
    let body = &console[begin + open.len() + 1..];
    let end = body
        .find(&format!("\n{close}"))
        .map(|at| at + 1)
        .or_else(|| body.starts_with(close).then_some(0))?;
    Some(body[..end].to_string())
}

/// The build profile's directory of `binary` (`debug`, `release`, ...).
fn profile(binary: &Path) -> String {
    binary
        .parent()
        .and_then(Path::file_name)
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_else(|| "unknown".to_string())
}

/// `built_from`: [`commit`] when the binaries were built.
fn section(
    options: &Options,
    kernel: &str,
    profile: &str,
    figures: &str,
    built_from: &str,
) -> String {
    let mut command = format!("cargo xtask soak --minutes {}", options.minutes);
    if let Some(containers) = options.containers {
        command.push_str(&format!(" --containers {containers}"));
    }
    command.push_str(&format!(" --kernel {}", options.kernel.name()));
    format!(
        "### `{command}`, {date}\n\n\
         - commit {commit}\n\
         - guest kernel {kernel}, in the QEMU guest of `cargo xtask vm-test` (software \
         emulation, no KVM) on a host {cpu}\n\
         - `ipvlan` binary: the VM tests' musl build (profile `{profile}`)\n\n\
         {figures}",
        date = today(),
        commit = built_from,
        cpu = host_cpu(),
    )
}

/// Replaces the soak section of RESULTS.md (appends one if there is none).
fn splice(old: &str, section: &str) -> String {
    splice_between(
        old,
        SECTION_BEGIN,
        SECTION_END,
        "# Results\n\n## Soak\n\n",
        section,
    )
}

/// Replaces what lies between the markers `open` and `close` of RESULTS.md
/// with `section`; appends the marked section when the markers are missing
/// (after `new_file`, a heading, when the file is empty). Shared with `cargo
/// xtask bench`.
pub(crate) fn splice_between(
    old: &str,
    open: &str,
    close: &str,
    new_file: &str,
    section: &str,
) -> String {
    let block = format!("{open}\n{section}{close}\n");
    match (old.find(open), old.find(close)) {
        (Some(begin), Some(end)) if begin < end => {
            let after = &old[end + close.len()..];
            let after = after.strip_prefix('\n').unwrap_or(after);
            format!("{}{block}{after}", &old[..begin])
        }
        _ if old.is_empty() => format!("{new_file}{block}"),
        _ => format!("{}\n\n{block}", old.trim_end_matches('\n')),
    }
}

/// `abc1234`, with a note when the tree had changes.
pub(crate) fn commit() -> String {
    let git = |args: &[&str]| {
        output(Command::new("git").args(args).current_dir(workspace_root())).unwrap_or_default()
    };
    let hash = git(&["rev-parse", "--short=12", "HEAD"]).trim().to_string();
    if hash.is_empty() {
        return "unknown".to_string();
    }
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
        .lines()
        .any(|line| !line.ends_with(RESULTS_FILE));
    if dirty {
        format!("{hash} (with uncommitted changes)")
    } else {
        hash
    }
}

/// The host's CPU model, which the emulated guest's speed follows.
pub(crate) fn host_cpu() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_string())
        })
        .map(|model| format!("`{model}`"))
        .unwrap_or_else(|| "of unknown CPU".to_string())
}

/// Today's date (UTC), `YYYY-MM-DD`.
pub(crate) fn today() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0);
    let (year, month, day) = civil_from_days(days as i64);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar (std has no calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn options() {
        let options = parse(&args(&["--minutes", "3", "--kernel", "6.12"])).unwrap();
        assert_eq!(options.minutes, 3);
        assert_eq!(options.kernel, Series::V6_12);
        assert!(options.record && options.containers.is_none() && !options.plant_leak);
        let planted = parse(&args(&["--minutes", "1", "--plant-leak"])).unwrap();
        assert!(
            planted.plant_leak && !planted.record,
            "a planted leak is never recorded"
        );
        for bad in [
            &[][..],
            &["--minutes"][..],
            &["--minutes", "0"][..],
            &["--minutes", "2.5"][..],
            &["--minutes", "3", "--containers", "x"][..],
            &["--minutes", "3", "extra"][..],
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn figures_are_the_last_block_between_the_markers() {
        let console = "boot\nSOAK-RESULTS-BEGIN\nold\nSOAK-RESULTS-END\n\
                       soak: x\nSOAK-RESULTS-BEGIN\n| a | b |\n\nmore\nSOAK-RESULTS-END\nsoak: PASSED\n";
        assert_eq!(figures(console).as_deref(), Some("| a | b |\n\nmore\n"));
        assert_eq!(
            figures("SOAK-RESULTS-BEGIN\nSOAK-RESULTS-END\n").as_deref(),
            Some("")
        );
        assert_eq!(figures("SOAK-RESULTS-BEGIN\n| cut off"), None);
        assert_eq!(figures("nothing"), None);
    }

    #[test]
    fn splice_replaces_only_the_soak_section() {
        let old = format!(
            "# R\n\nintro\n\n{SECTION_BEGIN}\nold figures\n{SECTION_END}\n\n## Other\nkept\n"
        );
        let new = splice(&old, "new figures\n");
        assert_eq!(
            new,
            format!(
                "# R\n\nintro\n\n{SECTION_BEGIN}\nnew figures\n{SECTION_END}\n\n## Other\nkept\n"
            )
        );
        let appended = splice("# R\n\nintro", "figures\n");
        assert_eq!(
            appended,
            format!("# R\n\nintro\n\n{SECTION_BEGIN}\nfigures\n{SECTION_END}\n")
        );
        assert!(splice("", "f\n").contains(&format!("{SECTION_BEGIN}\nf\n{SECTION_END}\n")));
    }

    #[test]
    fn markers_agree_with_the_guest_program() {
        let source = fs::read_to_string(workspace_root().join("benches/soak.rs")).unwrap();
        for (name, value) in [
            ("RESULTS_BEGIN", RESULTS_BEGIN),
            ("RESULTS_END", RESULTS_END),
        ] {
            let line = format!("pub const {name}: &str = \"{value}\";");
            assert!(source.contains(&line), "benches/soak.rs lacks {line}");
        }
        // The VM timeout leaves room for the program's teardown limit.
        assert!(source.contains("TEARDOWN_LIMIT: Duration = Duration::from_secs(300);"));
        assert!(ALLOWANCE >= Duration::from_secs(300 + 120));
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
        assert_eq!(civil_from_days(20_088), (2024, 12, 31));
    }

    #[test]
    fn profile_of_a_build() {
        assert_eq!(
            profile(Path::new("target/x86_64-unknown-linux-musl/debug/ipvlan")),
            "debug"
        );
    }
}
