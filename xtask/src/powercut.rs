//! `cargo xtask powercut`: the state directory on a virtual disk
//! (`cache=none`), QEMU killed with SIGKILL at a random moment while the
//! guest runs `network connect`, `run -d`, `disconnect`, `rm` and network
//! create/rm back to back, then a second boot from the same disk that runs
//! `restore` and checks the invariants written down in
//! `tests/powercut/guest.rs` (the guest program).
//!
//! One image serves every round, made once per run: boot k checks round
//! k-1 (the disk as the cut left it) and then loads round k, so N rounds
//! take N + 1 boots instead of 2N, and each round starts from a filesystem
//! that already went through cuts, journal replays and `restore`, as a
//! real host's disk does. The check ends with `network rm` of every
//! network, so each round starts from an empty state directory.
//!
//! The host passes the previous boot's `PC-CMD` lines (what started, what
//! returned and how) to the next boot; the cut delay and the guest's seed
//! come from `--seed`, printed so a failing round can be run again (the
//! emulated guest's speed varies, so the same delay lands near, not exactly
//! at, the same command).

use crate::builds::{build_vm_example, target_dir};
use crate::kernel::Series;
use crate::qemu::Cut;
use crate::util::seconds;
use crate::vm;
use crate::Result;
use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const USAGE: &str = "usage: cargo xtask powercut [--kernel K] [--rounds N] [--seed S] \
     [--window-ms MS] [--timeout SECS] [--plant torn|lost|unsynced] [--keep-going]";

/// Rounds when no `--rounds` is given; also what `cargo xtask test` runs.
pub const CI_ROUNDS: u64 = 4;
/// The cut comes this long at most after the loop started: long enough for
/// dozens of commands under emulation, short enough for CI.
const DEFAULT_WINDOW_MS: u64 = 4000;
/// A boot that hangs fails the run after this (a boot takes about 10 s).
const BOOT_TIMEOUT: Duration = Duration::from_secs(240);
const DISK_MIB: u64 = 64;
/// What the guest prints (see tests/powercut/guest.rs).
const LOOP_MARKER: &str = "PC-LOOP";
const CMD_PREFIX: &str = "PC-CMD ";
const CHECK_PASS: &str = "PC-CHECK-PASS";
/// The guest's line for each check that failed; a run's error quotes them.
pub const CHECK_FAIL: &str = "PC-CHECK-FAIL";
const LOAD_FAIL: &str = "PC-LOAD-FAIL";
const PLANTED: &str = "PC-PLANTED";

pub struct Options {
    pub kernel: Series,
    pub rounds: u64,
    pub seed: u64,
    pub window: Duration,
    pub timeout: Duration,
    /// Damage the first round's network record (see the guest's
    /// `--plant`): the run must fail.
    pub plant: Option<String>,
    /// Go on after a round fails its checks; report every failure at the end.
    pub keep_going: bool,
}

impl Options {
    /// `rounds` rounds with a seed from the clock.
    pub fn new(kernel: Series, rounds: u64) -> Options {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Options {
            kernel,
            rounds,
            seed,
            window: Duration::from_millis(DEFAULT_WINDOW_MS),
            timeout: BOOT_TIMEOUT,
            plant: None,
            keep_going: false,
        }
    }
}

fn parse(args: &[String]) -> Result<Options> {
    let mut options = Options::new(Series::from_env()?, CI_ROUNDS);
    let mut iter = args.iter();
    let number = |flag: &str, value: Option<&String>| -> Result<u64> {
        value
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|v| *v > 0)
            .ok_or_else(|| format!("{flag} needs a positive whole number\n{USAGE}").into())
    };
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--kernel" => {
                options.kernel = Series::parse(iter.next().ok_or("--kernel needs a value")?)?
            }
            "--rounds" => options.rounds = number(arg, iter.next())?,
            "--seed" => options.seed = number(arg, iter.next())?,
            "--window-ms" => options.window = Duration::from_millis(number(arg, iter.next())?),
            "--keep-going" => options.keep_going = true,
            "--timeout" => options.timeout = Duration::from_secs(number(arg, iter.next())?),
            "--plant" => match iter.next().map(String::as_str) {
                Some(plant @ ("torn" | "lost" | "unsynced")) => {
                    options.plant = Some(plant.to_string())
                }
                _ => return Err(format!("--plant needs torn, lost or unsynced\n{USAGE}").into()),
            },
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }
    Ok(options)
}

pub fn run(args: &[String]) -> Result {
    let options = parse(args)?;
    run_rounds(&options).map(drop)
}

/// splitmix64: the host's delays and the guests' seeds from `--seed`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// Where the cut landed, from the last `PC-CMD` line the guest printed.
#[derive(Debug, PartialEq)]
enum Landing {
    /// Inside this command (it started, it had not returned).
    Inside(String),
    /// After a command returned, before the next started.
    Between,
}

/// The guest's `PC-CMD` lines. A last line without its newline was cut
/// off by the power cut; the guest sends a `START` line whole before the
/// command starts (tcdrain), so that command had not started, and a cut
/// `END` line is one the host did not see.
fn command_lines(console: &str) -> Vec<String> {
    console
        .split_inclusive('\n')
        .filter(|line| line.ends_with('\n'))
        .filter_map(|line| {
            line.find(CMD_PREFIX)
                .map(|at| line[at..].trim().to_string())
        })
        .collect()
}

fn landing(commands: &[String]) -> Landing {
    match commands.last() {
        Some(line) if line.split_whitespace().nth(2) == Some("START") => {
            let argv: Vec<&str> = line.split_whitespace().skip(3).collect();
            let kind = match argv.as_slice() {
                ["network", verb, ..] => format!("network {verb}"),
                [verb, ..] => verb.to_string(),
                [] => "?".to_string(),
            };
            Landing::Inside(kind)
        }
        _ => Landing::Between,
    }
}

/// How many times `--rounds` may run while no cut lands inside a
/// command. Between commands the guest writes two console lines (drained
/// through the slow serial port) and runs `ip netns add`/`del`, so some
/// two cuts in three land there: with twice the rounds, 4 asked for
/// (`cargo xtask test`'s), 8 all between came about once in thirty runs
/// and failed a sound build; with four times, once in a thousand.
const MORE_ROUNDS_AT_MOST: u64 = 4;

/// Lines of `console` that contain `marker`.
fn marked<'a>(console: &'a str, marker: &str) -> Vec<&'a str> {
    console.lines().filter(|l| l.contains(marker)).collect()
}

/// Runs the rounds; how many ran: `options.rounds`, and more (up to
/// [`MORE_ROUNDS_AT_MOST`] times as many in all) while none cut a command
/// part way, since a round cut between commands, or after its loop ended,
/// proves nothing of a command's durability.
pub fn run_rounds(options: &Options) -> Result<u64> {
    let start = Instant::now();
    let built = build_vm_example("powercut")?;
    let cache = target_dir()?.join("vm");
    fs::create_dir_all(&cache)?;
    // A copy: a build during the run (minutes long) must not change the
    // program between one boot and the next.
    let program = cache.join("powercut");
    fs::copy(&built, &program).map_err(|e| format!("{}: {e}", built.display()))?;
    let image = cache.join("powercut.img");
    crate::disk::create(&image, DISK_MIB)?;
    let log = crate::vm::console_log(options.kernel)?;
    println!(
        "powercut: {} rounds, --seed {}, cut within {} ms of the loop's start, kernel {}",
        options.rounds,
        options.seed,
        options.window.as_millis(),
        options.kernel.name()
    );
    let mut rng = Rng(options.seed);
    let mut previous: Vec<String> = Vec::new();
    let mut inside: BTreeMap<String, u64> = BTreeMap::new();
    let mut between = 0;
    let mut returned_total = 0;
    let mut failed_rounds: Vec<String> = Vec::new();
    let mut rounds = options.rounds;
    let mut boot = 0;
    while boot <= rounds {
        let mut args = Vec::new();
        for line in &previous {
            args.extend(["--log".to_string(), line.clone()]);
        }
        let loading = boot < rounds;
        let (delay, guest_seed) = (rng.next(), rng.next());
        let delay = Duration::from_millis(delay % (options.window.as_millis() as u64 + 1));
        let vlan = (guest_seed % 4094 + 1) as u16;
        if options.keep_going {
            args.push("--keep-going".to_string());
        }
        if loading {
            args.extend([
                "--load".to_string(),
                boot.to_string(),
                "--seed".to_string(),
                guest_seed.to_string(),
            ]);
            // Every other round a VLAN parent on a dummy, else our own dummy.
            if boot % 2 == 1 {
                args.extend(["--vlan".to_string(), vlan.to_string()]);
            } else {
                args.push("--internal".to_string());
            }
            if let (Some(plant), 0) = (&options.plant, boot) {
                args.extend(["--plant".to_string(), plant.clone()]);
            }
        }
        let what = match (boot > 0, loading) {
            (true, true) => format!("check round {} and load round {boot}", boot - 1),
            (false, _) => format!("load round {boot}"),
            (true, false) => format!("check round {}", boot - 1),
        };
        println!(
            "powercut: boot {} of {}: {what}{}",
            boot + 1,
            rounds + 1,
            if loading {
                format!(
                    " (guest seed {guest_seed}, cut {} ms after {LOOP_MARKER})",
                    delay.as_millis()
                )
            } else {
                String::new()
            }
        );
        let cut = loading.then(|| Cut {
            after: LOOP_MARKER.to_string(),
            delay,
        });
        // A boot that never reaches /init is booted again by
        // `vm::run_with_cut`: the disk was never mounted, so it is the
        // same round.
        let (outcome, cut_done) = vm::run_with_cut(
            vm::Options {
                job: vm::Job::Program {
                    program: program.clone(),
                    args: args.clone(),
                },
                timeout: options.timeout,
                kernel: options.kernel,
                disk: Some(image.clone()),
                memory_mib: None,
                kernel_args: &[],
            },
            cut.clone(),
        )?;
        let console = fs::read_to_string(&log).map_err(|e| format!("{}: {e}", log.display()))?;
        let repro = format!(
            "reproduce with: cargo xtask powercut --kernel {} --rounds {} --seed {}{} (console: {})",
            options.kernel.name(),
            rounds,
            options.seed,
            options
                .plant
                .as_ref()
                .map(|p| format!(" --plant {p}"))
                .unwrap_or_default(),
            log.display()
        );
        if boot > 0 {
            let failures = marked(&console, CHECK_FAIL);
            if !failures.is_empty() || marked(&console, CHECK_PASS).is_empty() {
                let report = format!(
                    "round {} (its last line before the cut: {}): the checks after the reboot failed:\n{}\n{repro}",
                    boot - 1,
                    previous.last().map(String::as_str).unwrap_or("?"),
                    if failures.is_empty() {
                        format!("no {CHECK_PASS} line; the guest {}", outcome.describe())
                    } else {
                        failures.join("\n")
                    }
                );
                if !options.keep_going || failures.is_empty() {
                    return Err(report.into());
                }
                println!("powercut: {report}");
                failed_rounds.push(report);
            } else {
                println!("powercut: round {} passed its checks", boot - 1);
            }
        }
        if loading {
            let load_failures = marked(&console, LOAD_FAIL);
            if !load_failures.is_empty() {
                return Err(format!(
                    "round {boot}: the load failed before the cut:\n{}\n{repro}",
                    load_failures.join("\n")
                )
                .into());
            }
            if marked(&console, LOOP_MARKER).is_empty() {
                return Err(format!(
                    "round {boot}: the guest never reached {LOOP_MARKER} ({})\n{repro}",
                    outcome.describe()
                )
                .into());
            }
            previous = command_lines(&console);
            let returned = previous.iter().filter(|l| l.contains(" END 0")).count();
            returned_total += returned;
            match (cut_done, landing(&previous)) {
                (false, _) => {
                    // Not cut: the guest's loop must have ended as planned.
                    if !outcome.success() {
                        return Err(format!(
                            "round {boot}: the loop ended before the cut, and the guest {}\n{repro}",
                            outcome.describe()
                        )
                        .into());
                    }
                    between += 1;
                    println!("powercut: round {boot}: the loop ended before the cut");
                }
                (true, Landing::Inside(kind)) => {
                    println!(
                        "powercut: round {boot}: cut inside `{kind}` after {returned} commands returned 0"
                    );
                    *inside.entry(kind).or_default() += 1;
                }
                (true, Landing::Between) => {
                    println!(
                        "powercut: round {boot}: cut between commands after {returned} returned 0"
                    );
                    between += 1;
                }
            }
            if options.plant.is_some() && boot == 0 && marked(&console, PLANTED).is_empty() {
                return Err("--plant: the guest did not plant its fault".into());
            }
            // The last round loaded and no cut yet inside a command: one
            // more, up to the bound.
            if boot + 1 == rounds
                && inside.is_empty()
                && options.plant.is_none()
                && rounds < MORE_ROUNDS_AT_MOST * options.rounds
            {
                rounds += 1;
                println!("powercut: no cut has landed inside a command yet: one more round");
            }
        }
        boot += 1;
    }
    let inside_total: u64 = inside.values().sum();
    let kinds: Vec<String> = inside.iter().map(|(k, n)| format!("{k} {n}")).collect();
    println!(
        "powercut: {} of {} rounds passed (kernel {}, --seed {}) in {}: cut inside a command {inside_total} ({}), between commands {between}; {returned_total} commands had returned 0 before their cut",
        rounds - failed_rounds.len() as u64,
        rounds,
        options.kernel.name(),
        options.seed,
        seconds(start.elapsed()),
        kinds.join(", ")
    );
    if !failed_rounds.is_empty() {
        return Err(format!(
            "{} rounds failed their checks:\n{}",
            failed_rounds.len(),
            failed_rounds.join("\n")
        )
        .into());
    }
    if options.plant.is_some() {
        return Err("--plant: the checks passed with a planted fault".into());
    }
    if inside_total == 0 {
        return Err(format!(
            "no cut landed inside a command in {rounds} rounds: nothing of a command's durability was checked"
        )
        .into());
    }
    Ok(rounds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn where_the_cut_landed() {
        let console = "junk\nPC-CMD 1 START network create --internal pc0\n\
                       PC-CMD 1 END 0\nPC-LOOP round 0\n\
                       PC-CMD 2 START network connect pc0 c0\n";
        let lines = command_lines(console);
        assert_eq!(lines.len(), 3);
        assert_eq!(landing(&lines), Landing::Inside("network connect".into()));
        let lines = command_lines("PC-CMD 2 START run -d --net pc0\nPC-CMD 2 END 0\n");
        assert_eq!(landing(&lines), Landing::Between);
        let lines = command_lines("PC-CMD 3 START run -d --net pc0 --name d3 sleep 1\n");
        assert_eq!(landing(&lines), Landing::Inside("run".into()));
        let lines = command_lines("PC-CMD 3 START run -d\nPC-CMD 3 EN");
        assert_eq!(lines, ["PC-CMD 3 START run -d"], "a line the cut truncated");
    }

    #[test]
    fn options() {
        let args: Vec<String> = ["--rounds", "40", "--seed", "7", "--plant", "torn"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let parsed = parse(&args).unwrap();
        assert_eq!((parsed.rounds, parsed.seed), (40, 7));
        assert_eq!(parsed.plant.as_deref(), Some("torn"));
        assert!(parse(&["--plant".to_string(), "x".to_string()]).is_err());
        assert!(parse(&["--rounds".to_string(), "0".to_string()]).is_err());
    }
}
