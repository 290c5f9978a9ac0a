//! The guest side of `cargo xtask soak`: hundreds of containers attached and
//! removed in a loop for a fixed time while other threads read the state
//! continuously, then proof that nothing was left behind.
//!
//! It runs in the QEMU guest (it needs ipvlan), as root, in the fresh network
//! and mount namespaces `tests/vm/isolate.sh` gives it, so the namespace it
//! inspects as "the host" holds nothing but what this run made. It is an
//! example, not a test target: `cargo xtask vm-test` and `cargo xtask test`
//! run every test target with the `vm` feature, and a soak of many minutes
//! must never be part of that. Its unit tests (the output checks and the
//! end-state comparison) run on the host with `cargo test`.
//!
//! ```text
//! soak --seconds S [--containers C] [--plant-leak]
//! ```
//!
//! Setup: a foreign dummy link, a foreign namespace (`ip netns add`) and a
//! foreign `/etc/netns` entry, as other tools on the host would leave them;
//! one network with its own dummy parent; a warm-up container attached and
//! removed, so lazily created state files exist; then the baseline.
//!
//! Each cycle runs `ipvlan run -d --net=soaknet --name=cNNN sleep ...` for C
//! containers (the foreign namespace connected by path at the start and
//! again every [`FOREIGN_EVERY`] containers), then, with all of them
//! attached, one reader round with exact counts and a look at every `sleep`,
//! which must hold only its three standard descriptors; then it disconnects
//! the foreign namespace and removes every container with `ipvlan rm -f`.
//! Throughout, one thread runs `ipvlan ps`, `network inspect` and `network
//! ls` back to back and checks that each exits 0, writes nothing to stderr
//! and parses; another, a long-lived library user, calls `containers()`,
//! `network()` and `networks()` on one `Manager`. No attach starts after the
//! deadline; what is attached then is removed (within [`TEARDOWN_LIMIT`]).
//!
//! Every command runs under a watchdog ([`COMMAND_TIMEOUT`]) and is reaped
//! with `wait4`, whose rusage gives that one process's peak RSS.
//!
//! At the end the links and addresses, `/run/netns`, `/etc/netns`, the state
//! directory's entries, the processes and their descriptors, the network
//! namespaces anything holds, and this process's descriptors must be as they
//! were at the baseline; the peak RSS of the last [`RSS_GROUP`] commands of
//! each kind must be within [`RSS_TOLERANCE_PERCENT`] of the first ones';
//! then `network rm` must remove the network and its parent.
//! `--plant-leak` leaves the last container and one descriptor behind, to
//! show that the end checks catch them.
//!
//! The figures are printed as Markdown between [`RESULTS_BEGIN`] and
//! [`RESULTS_END`] (xtask copies them into `benches/RESULTS.md`); the exit
//! status is 0 only if every command and every check passed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use ipvlan::driver::{Config, Manager};
use ipvlan::json::{self, Value};

const NETWORK: &str = "soaknet";
/// Room for far more than the default 500 containers.
const SUBNET: &str = "10.77.0.0/16";
const SUBNET_PREFIX: [u8; 2] = [10, 77];
const STATE_DIR: &str = "/var/lib/ipvlan-soak";
const NETNS_DIR: &str = "/run/netns";
const ETC_NETNS_DIR: &str = "/etc/netns";
/// Made with `ip netns add`; connected and disconnected by path each cycle.
const FOREIGN_NS: &str = "soak-foreign";
/// Another tool's link in the host namespace.
const FOREIGN_LINK: &str = "foreign0";
/// Another tool's `/etc/netns` entry (no namespace of that name).
const FOREIGN_ETC: &str = "soak-other";
/// What every container runs: long enough to outlive any soak.
const SLEEP_SECONDS: &str = "100000";
const DEFAULT_CONTAINERS: usize = 500;
/// The foreign namespace is attached again after this many containers.
const FOREIGN_EVERY: usize = 50;
/// How many of the first and of the last commands of a kind are compared.
const RSS_GROUP: usize = 10;

/// A command still running after this is killed and counted as failed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// The most the removal after the deadline may take (xtask's VM timeout
/// allows for it).
pub const TEARDOWN_LIMIT: Duration = Duration::from_secs(300);
/// How far the last full cycle's peak RSS of a command may be from the
/// first full cycle's.
pub const RSS_TOLERANCE_PERCENT: u64 = 10;
/// How long the end state may take to settle: the kernel frees a deleted
/// namespace from a work queue, and PID 1 reaps killed orphans.
const SETTLE: Duration = Duration::from_secs(15);
/// Pause between two rounds of the library reader: it only needs to keep
/// one `Manager` busy, not to crowd the writer off two emulated CPUs.
const LIBRARY_PAUSE: Duration = Duration::from_millis(250);
/// Failures printed in full; the rest are counted.
const FAILURES_SHOWN: usize = 20;

/// The line before the Markdown figures.
pub const RESULTS_BEGIN: &str = "SOAK-RESULTS-BEGIN";
/// The line after them.
pub const RESULTS_END: &str = "SOAK-RESULTS-END";

fn main() -> ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("soak: {error}\nusage: soak --seconds S [--containers C] [--plant-leak]");
            return ExitCode::from(2);
        }
    };
    match soak(&options) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("soak: {error}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, PartialEq)]
struct Options {
    duration: Duration,
    containers: usize,
    /// Leave a container and a descriptor behind (checks the checks).
    plant_leak: bool,
}

impl Options {
    fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
        let mut seconds = None;
        let mut containers = DEFAULT_CONTAINERS;
        let mut plant_leak = false;
        while let Some(arg) = args.next() {
            let mut value = |flag: &str| {
                args.next()
                    .and_then(|v| v.parse::<u64>().ok())
                    .filter(|v| *v > 0)
                    .ok_or_else(|| format!("{flag} needs a positive number"))
            };
            match arg.as_str() {
                "--seconds" => seconds = Some(value("--seconds")?),
                "--containers" => containers = value("--containers")? as usize,
                "--plant-leak" => plant_leak = true,
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(Options {
            duration: Duration::from_secs(seconds.ok_or("--seconds is required")?),
            containers,
            plant_leak,
        })
    }
}

/// The kinds of command measured.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    Run,
    Rm,
    Connect,
    Disconnect,
    Ps,
    Inspect,
    Ls,
}

impl Kind {
    const ALL: [Kind; 7] = [
        Kind::Run,
        Kind::Rm,
        Kind::Connect,
        Kind::Disconnect,
        Kind::Ps,
        Kind::Inspect,
        Kind::Ls,
    ];

    fn label(self) -> &'static str {
        match self {
            Kind::Run => "run -d",
            Kind::Rm => "rm -f",
            Kind::Connect => "network connect (path)",
            Kind::Disconnect => "network disconnect (path)",
            Kind::Ps => "ps",
            Kind::Inspect => "network inspect",
            Kind::Ls => "network ls",
        }
    }
}

/// One finished command.
struct Sample {
    kind: Kind,
    /// The cycle running when it started; 0 is the warm-up.
    cycle: usize,
    millis: f64,
    max_rss_kib: u64,
}

/// One cycle of attaching and removing.
struct CycleRecord {
    number: usize,
    attached: usize,
    full: bool,
    attach: Duration,
    detach: Duration,
}

/// A request for one reader round with every container of the cycle
/// attached.
#[derive(Default)]
struct FullRound {
    /// `Some((containers, endpoints on the network))` while requested.
    requested: Option<(usize, usize)>,
    done: bool,
}

/// What the threads share.
struct Shared {
    ipvlan: String,
    samples: Mutex<Vec<Sample>>,
    failures: Mutex<Vec<String>>,
    commands: AtomicUsize,
    cycle: AtomicUsize,
    stop_cli: AtomicBool,
    stop_library: AtomicBool,
    stop_watchdog: AtomicBool,
    /// Commands running: pid -> (started, what), for the watchdog.
    running: Mutex<HashMap<u32, (Instant, String)>>,
    /// Pids the watchdog killed.
    killed: Mutex<BTreeSet<u32>>,
    full_round: Mutex<FullRound>,
    full_round_changed: Condvar,
}

impl Shared {
    fn fail(&self, message: String) {
        eprintln!("soak: FAILURE: {message}");
        self.failures.lock().unwrap().push(message);
    }

    fn failure_count(&self) -> usize {
        self.failures.lock().unwrap().len()
    }
}

/// What a finished command returned.
struct Finished {
    stdout: String,
    stderr: String,
    status: i32,
}

impl Finished {
    /// `None` when the command exited 0 with nothing on stderr.
    fn problem(&self) -> Option<String> {
        if self.status == 0 && self.stderr.is_empty() {
            None
        } else {
            Some(format!(
                "exit status {}, stderr {:?}",
                self.status,
                self.stderr.trim_end()
            ))
        }
    }
}

/// Runs `ipvlan ARGS`, measuring it; `None` (and a failure recorded) when
/// it could not be run or was killed by the watchdog.
fn ipvlan(shared: &Shared, kind: Kind, args: &[&str]) -> Option<Finished> {
    let what = format!("ipvlan {}", args.join(" "));
    let cycle = shared.cycle.load(Ordering::Relaxed);
    let number = shared.commands.fetch_add(1, Ordering::Relaxed);
    // `wait4`'s ru_maxrss would also count the copy of this (growing)
    // program the child was before `exec`; ipvlan's own peak (`VmHWM`, or
    // its resident pages at exit if more) comes back through the guest
    // build's test hook instead.
    let peak_file = format!("/tmp/soak-peak-rss-{number}");
    let mut command = Command::new(&shared.ipvlan);
    command
        .args(args)
        .env("IPVLAN_STATE_DIR", STATE_DIR)
        .env("IPVLAN_NETNS_DIR", NETNS_DIR)
        .env("IPVLAN_ETC_NETNS_DIR", ETC_NETNS_DIR)
        .env(ipvlan::fault::PEAK_RSS_ENV, &peak_file);
    let measured = measure(shared, &what, &mut command).and_then(|(finished, millis, _)| {
        let text = fs::read_to_string(&peak_file)
            .map_err(|e| format!("no peak RSS from the command ({peak_file}: {e})"))?;
        let _ = fs::remove_file(&peak_file);
        let kib = text
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("peak RSS file said {text:?}"))?;
        Ok((finished, millis, kib))
    });
    match measured {
        Ok((finished, millis, max_rss_kib)) => {
            shared.samples.lock().unwrap().push(Sample {
                kind,
                cycle,
                millis,
                max_rss_kib,
            });
            Some(finished)
        }
        Err(error) => {
            shared.fail(format!("{what}: {error}"));
            None
        }
    }
}

/// Spawns `command`, collects its output, and reaps it with `wait4` for
/// its own rusage: (output, milliseconds, peak RSS in KiB).
fn measure(
    shared: &Shared,
    what: &str,
    command: &mut Command,
) -> Result<(Finished, f64, u64), String> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = command.spawn().map_err(|e| format!("cannot start: {e}"))?;
    let pid = child.id();
    shared
        .running
        .lock()
        .unwrap()
        .insert(pid, (started, what.to_string()));
    let mut stderr = child.stderr.take().expect("stderr piped");
    let stderr_reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stderr.read_to_end(&mut text);
        text
    });
    let mut stdout = Vec::new();
    if let Some(mut pipe) = child.stdout.take() {
        let _ = pipe.read_to_end(&mut stdout);
    }
    let stderr = stderr_reader.join().unwrap_or_default();
    // The pid stays ours until reaped, so the watchdog can kill by pid
    // without hitting a reused one: wait without reaping, forget it, reap.
    wait_exited(pid).map_err(|e| format!("waiting: {e}"))?;
    shared.running.lock().unwrap().remove(&pid);
    let (status, usage) = reap(pid).map_err(|e| format!("reaping: {e}"))?;
    let millis = started.elapsed().as_secs_f64() * 1000.0;
    // Reaped by wait4; std's handle must not wait again (dropping it does not).
    drop(child);
    if shared.killed.lock().unwrap().remove(&pid) {
        return Err(format!(
            "still running after {} s: killed",
            COMMAND_TIMEOUT.as_secs()
        ));
    }
    let status = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    };
    let finished = Finished {
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        status,
    };
    // ru_maxrss is in KiB on Linux.
    Ok((finished, millis, usage.ru_maxrss.max(0) as u64))
}

/// Blocks until `pid` has exited, leaving it unreaped.
fn wait_exited(pid: u32) -> std::io::Result<()> {
    loop {
        // SAFETY: a zeroed siginfo_t is a valid out-parameter for waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid writes only to `info`.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Reaps `pid`: its wait status and its own resource usage.
fn reap(pid: u32) -> std::io::Result<(i32, libc::rusage)> {
    loop {
        let mut status = 0;
        // SAFETY: a zeroed rusage is a valid out-parameter for wait4.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 writes only to `status` and `usage`.
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if r == pid as libc::pid_t {
            return Ok((status, usage));
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Kills commands that run longer than [`COMMAND_TIMEOUT`], so one hung
/// command fails the soak instead of stalling it.
fn watchdog(shared: &Shared) {
    while !shared.stop_watchdog.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(250));
        let running = shared.running.lock().unwrap();
        for (pid, (started, _)) in running.iter() {
            if started.elapsed() > COMMAND_TIMEOUT && shared.killed.lock().unwrap().insert(*pid) {
                // SAFETY: kill has no memory effects; the pid is an
                // unreaped child of ours (see `measure`).
                unsafe { libc::kill(*pid as libc::pid_t, libc::SIGKILL) };
            }
        }
    }
}

/// Runs a setup or check command that is not measured; fails unless it
/// exits 0.
fn plain(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .env("IPVLAN_STATE_DIR", STATE_DIR)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program} {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "{program} {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ip_path() -> String {
    std::env::var("IPVLAN_IP").unwrap_or_else(|_| "/usr/sbin/ip".to_string())
}

fn ip_json(args: &[&str]) -> Result<Value, String> {
    let mut full = vec!["-j"];
    full.extend_from_slice(args);
    let text = plain(&ip_path(), &full)?;
    let text = if text.trim().is_empty() { "[]" } else { &text };
    json::parse(text).map_err(|e| format!("ip -j {}: {e}", args.join(" ")))
}

fn container_name(index: usize) -> String {
    format!("c{index:03}")
}

fn is_container_name(name: &str) -> bool {
    name.len() > 1 && name.starts_with('c') && name[1..].bytes().all(|b| b.is_ascii_digit())
}

/// `10.77.x.y/16` (or without the prefix length) inside the soak's subnet.
fn subnet_address(text: &str) -> Result<Ipv4Addr, String> {
    let address = text.split('/').next().unwrap_or_default();
    let parsed: Ipv4Addr = address
        .parse()
        .map_err(|_| format!("{text:?} is not an IPv4 address"))?;
    if parsed.octets()[..2] != SUBNET_PREFIX {
        return Err(format!("{text} is outside {SUBNET}"));
    }
    Ok(parsed)
}

/// Checks `ipvlan ps`: the header, one line per container (ours only),
/// each on the soak network with an address of its subnet or still
/// attaching (`-`), no address twice; with `expect`, exactly that many
/// containers, all attached. Returns the count.
fn check_ps(stdout: &str, expect: Option<usize>) -> Result<usize, String> {
    let mut lines = stdout.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    if header != ["NAME", "NETWORKS", "ADDRESSES"] {
        return Err(format!("unexpected header {header:?}"));
    }
    let mut names = BTreeSet::new();
    let mut addresses = BTreeSet::new();
    for line in lines {
        let cells: Vec<&str> = line.split_whitespace().collect();
        let [name, networks, address] = cells[..] else {
            return Err(format!("line {line:?} has {} columns, not 3", cells.len()));
        };
        if !is_container_name(name) || !names.insert(name) {
            return Err(format!("unexpected or repeated container {name:?}"));
        }
        match (networks, address) {
            ("-", "-") if expect.is_none() => {}
            (NETWORK, address) => {
                if !addresses.insert(subnet_address(address)?) {
                    return Err(format!("address {address} listed twice"));
                }
            }
            _ => return Err(format!("line {line:?}: not attached to {NETWORK}")),
        }
    }
    match expect {
        Some(count) if names.len() != count => Err(format!(
            "{} containers listed, {count} attached",
            names.len()
        )),
        _ => Ok(names.len()),
    }
}

/// Checks `ipvlan network inspect soaknet`: one network of that name
/// whose containers have distinct addresses of its subnet; with `expect`,
/// exactly that many. Returns the count.
fn check_inspect(stdout: &str, expect: Option<usize>) -> Result<usize, String> {
    let value = json::parse(stdout).map_err(|e| format!("not JSON: {e}"))?;
    let networks = value.as_array().ok_or("not a JSON array")?;
    let [network] = networks else {
        return Err(format!("{} networks, not 1", networks.len()));
    };
    if network.get("Name").and_then(Value::as_str) != Some(NETWORK) {
        return Err("Name is not the soak network".into());
    }
    let containers = network
        .get("Containers")
        .and_then(Value::as_object)
        .ok_or("no Containers object")?;
    let mut addresses = BTreeSet::new();
    for (key, endpoint) in containers {
        let address = endpoint
            .get("IPv4Address")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{key}: no IPv4Address"))?;
        if !addresses.insert(subnet_address(address)?) {
            return Err(format!("address {address} given twice"));
        }
    }
    match expect {
        Some(count) if containers.len() != count => Err(format!(
            "{} endpoints listed, {count} attached",
            containers.len()
        )),
        _ => Ok(containers.len()),
    }
}

/// Checks `ipvlan network ls`: the header and the soak network, alone.
fn check_ls(stdout: &str) -> Result<usize, String> {
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    match &rows[..] {
        [header, row]
            if header[..] == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
                && row.len() == 4
                && row[1..] == [NETWORK, "ipvlan", "local"] =>
        {
            Ok(1)
        }
        _ => Err(format!("unexpected listing {stdout:?}")),
    }
}

/// Runs one reader command and checks it; with `expect` (containers,
/// endpoints), every container of the cycle is attached and nothing moves.
fn read_once(shared: &Shared, kind: Kind, expect: Option<(usize, usize)>) {
    let args: &[&str] = match kind {
        Kind::Ps => &["ps"],
        Kind::Inspect => &["network", "inspect", NETWORK],
        Kind::Ls => &["network", "ls"],
        _ => unreachable!("not a reader"),
    };
    let Some(finished) = ipvlan(shared, kind, args) else {
        return;
    };
    let checked = match finished.problem() {
        Some(problem) => Err(problem),
        None => match kind {
            Kind::Ps => check_ps(&finished.stdout, expect.map(|(containers, _)| containers)),
            Kind::Inspect => {
                check_inspect(&finished.stdout, expect.map(|(_, endpoints)| endpoints))
            }
            _ => check_ls(&finished.stdout),
        },
    };
    if let Err(error) = checked {
        let when = if expect.is_some() {
            " (all attached)"
        } else {
            ""
        };
        shared.fail(format!("ipvlan {}{when}: {error}", args.join(" ")));
    }
}

/// `ps`, `network inspect`, `network ls` back to back until told to stop;
/// a requested full round goes first.
fn cli_reader(shared: &Shared) {
    const KINDS: [Kind; 3] = [Kind::Ps, Kind::Inspect, Kind::Ls];
    let mut next = 0;
    while !shared.stop_cli.load(Ordering::Relaxed) {
        let requested = shared.full_round.lock().unwrap().requested.take();
        if let Some(counts) = requested {
            for kind in KINDS {
                read_once(shared, kind, Some(counts));
            }
            shared.full_round.lock().unwrap().done = true;
            shared.full_round_changed.notify_all();
            continue;
        }
        read_once(shared, KINDS[next % KINDS.len()], None);
        next += 1;
    }
}

/// What the library reader hands back.
struct LibraryReport {
    rounds: usize,
    fds_before: BTreeMap<String, String>,
    fds_after: BTreeMap<String, String>,
}

/// A long-lived library user: one `Manager`, read calls until told to
/// stop. Counts this process's descriptors after its first round (sent on
/// `ready`, while nothing else runs) and after its last (once the other
/// threads are done), so a descriptor the library leaks shows.
fn library_reader(
    shared: &Shared,
    ready: mpsc::Sender<Result<(), String>>,
) -> Result<LibraryReport, String> {
    let manager = Manager::open(Config::new(STATE_DIR)).map_err(|e| e.to_string());
    let manager = match manager {
        Ok(manager) => manager,
        Err(error) => {
            let _ = ready.send(Err(error.clone()));
            return Err(error);
        }
    };
    let round = || -> Result<(), String> {
        let containers = manager
            .containers()
            .map_err(|e| format!("containers(): {e}"))?;
        if !containers.damaged.is_empty() {
            return Err(format!("containers(): damaged {:?}", containers.damaged));
        }
        let network = manager
            .network(NETWORK)
            .map_err(|e| format!("network(): {e}"))?;
        if network.name != NETWORK {
            return Err(format!("network(): named {}", network.name));
        }
        let networks = manager.networks().map_err(|e| format!("networks(): {e}"))?;
        if !networks.damaged.is_empty() || networks.items.len() != 1 {
            return Err(format!(
                "networks(): {} networks, damaged {:?}",
                networks.items.len(),
                networks.damaged
            ));
        }
        Ok(())
    };
    if let Err(error) = round() {
        let _ = ready.send(Err(error.clone()));
        return Err(error);
    }
    let fds_before = open_fds();
    let _ = ready.send(Ok(()));
    let mut rounds = 1;
    while !shared.stop_library.load(Ordering::Relaxed) {
        std::thread::sleep(LIBRARY_PAUSE);
        if let Err(error) = round() {
            shared.fail(format!("library reader: {error}"));
        }
        rounds += 1;
    }
    Ok(LibraryReport {
        rounds,
        fds_before,
        fds_after: open_fds(),
    })
}

/// This process's open descriptors: number -> what it points at.
fn open_fds() -> BTreeMap<String, String> {
    let mut fds = BTreeMap::new();
    if let Ok(entries) = fs::read_dir("/proc/self/fd") {
        for entry in entries.flatten() {
            let target = fs::read_link(entry.path())
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            fds.insert(entry.file_name().to_string_lossy().into_owned(), target);
        }
    }
    // The directory read itself held one descriptor: not ours to count.
    let listed_dir = fds
        .iter()
        .find(|(_, target)| target.starts_with("/proc/") && target.ends_with("/fd"))
        .map(|(fd, _)| fd.clone());
    if let Some(fd) = listed_dir {
        fds.remove(&fd);
    }
    fds
}

/// What the host looks like, for the comparison at the end.
#[derive(Clone, PartialEq)]
struct Snapshot {
    /// `ifindex name kind` of every link in this (the soak's host) namespace.
    links: BTreeSet<String>,
    /// `ifname address/prefix` of every address here.
    addresses: BTreeSet<String>,
    /// Links inside the foreign namespace.
    foreign_links: BTreeSet<String>,
    netns: BTreeSet<String>,
    /// Every entry under /etc/netns with its content or link target.
    etc_netns: BTreeMap<String, String>,
    /// Every entry of the state directory: `dir`, a file's size, or for
    /// hosts files their names (removed lines are blanked in place and
    /// compacted later, so their size varies); an allocator cursor's size
    /// varies with the address it names.
    state: BTreeMap<String, String>,
    /// The largest hosts file under the state directory, in bytes.
    largest_hosts_file: u64,
    /// User-space processes other than this one: pid -> `state cmdline
    /// (N fds)`.
    processes: BTreeMap<u32, String>,
    /// Network namespaces something keeps alive: `net:[inode]` of every
    /// process (and its descriptors) and of every nsfs mount here.
    held_netns: BTreeSet<String>,
}

fn snapshot() -> Result<Snapshot, String> {
    let links = link_set(&[])?;
    let mut addresses = BTreeSet::new();
    for link in ip_json(&["addr", "show"])?.as_array().unwrap_or_default() {
        let name = link.get("ifname").and_then(Value::as_str).unwrap_or("?");
        for info in link
            .get("addr_info")
            .and_then(Value::as_array)
            .unwrap_or_default()
        {
            let local = info.get("local").and_then(Value::as_str).unwrap_or("?");
            let prefix = info.get("prefixlen").and_then(Value::as_u64).unwrap_or(0);
            addresses.insert(format!("{name} {local}/{prefix}"));
        }
    }
    let netns = fs::read_dir(NETNS_DIR)
        .map_err(|e| format!("{NETNS_DIR}: {e}"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut etc_netns = BTreeMap::new();
    walk(
        Path::new(ETC_NETNS_DIR),
        Path::new(""),
        &mut |rel, path, meta| {
            let what = if meta.file_type().is_symlink() {
                format!("-> {}", fs::read_link(path).unwrap_or_default().display())
            } else if meta.is_file() {
                fs::read_to_string(path).unwrap_or_default()
            } else {
                "dir".to_string()
            };
            etc_netns.insert(rel.to_string(), what);
        },
    )?;
    let mut state = BTreeMap::new();
    let mut largest_hosts_file = 0;
    walk(
        Path::new(STATE_DIR),
        Path::new(""),
        &mut |rel, path, meta| {
            let what = if meta.is_dir() {
                "dir".to_string()
            } else if rel.ends_with("/cursor") {
                "cursor".to_string()
            } else if rel.starts_with("hosts/") {
                largest_hosts_file = largest_hosts_file.max(meta.len());
                let text = fs::read_to_string(path).unwrap_or_default();
                let names: Vec<&str> = text.lines().filter(|l| !is_blanked(l)).collect();
                names.join("; ")
            } else {
                meta.len().to_string()
            };
            state.insert(rel.to_string(), what);
        },
    )?;
    Ok(Snapshot {
        links,
        addresses,
        foreign_links: link_set(&["-n", FOREIGN_NS])?,
        netns,
        etc_netns,
        state,
        largest_hosts_file,
        processes: processes(),
        held_netns: held_netns(),
    })
}

fn link_set(prefix: &[&str]) -> Result<BTreeSet<String>, String> {
    let mut args = prefix.to_vec();
    args.extend(["-d", "link", "show"]);
    Ok(ip_json(&args)?
        .as_array()
        .unwrap_or_default()
        .iter()
        .map(|link| {
            let index = link.get("ifindex").and_then(Value::as_u64).unwrap_or(0);
            let name = link.get("ifname").and_then(Value::as_str).unwrap_or("?");
            let kind = link
                .get("linkinfo")
                .and_then(|info| info.get("info_kind"))
                .and_then(Value::as_str)
                .unwrap_or("-");
            format!("{index} {name} {kind}")
        })
        .collect())
}

/// Whether a hosts file's line holds no name: empty, or blanked in place
/// by a removal (a `#`, then spaces).
fn is_blanked(line: &str) -> bool {
    line.strip_prefix('#').unwrap_or(line).trim().is_empty()
}

/// Calls `visit(relative path, path, metadata)` for everything below `dir`
/// (symlinks not followed); a missing `dir` has nothing below it.
fn walk(
    dir: &Path,
    rel: &Path,
    visit: &mut dyn FnMut(&str, &Path, &fs::Metadata),
) -> Result<(), String> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    };
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = entry.path();
        let rel = rel.join(entry.file_name());
        let meta = fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        visit(&rel.to_string_lossy(), &path, &meta);
        if meta.is_dir() {
            walk(&path, &rel, visit)?;
        }
    }
    Ok(())
}

/// pid -> `state cmdline` of every process but this one and kernel threads
/// (children of kthreadd, pid 2), which come and go on their own.
fn processes() -> BTreeMap<u32, String> {
    let me = std::process::id();
    let mut found = BTreeMap::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me || pid == 2 {
            continue;
        }
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = after.split_whitespace().collect();
        let (state, ppid) = (fields.first().copied().unwrap_or("?"), fields.get(1));
        if ppid == Some(&"2") {
            continue;
        }
        let comm = stat
            .split_once('(')
            .and_then(|(_, rest)| rest.rsplit_once(')'))
            .map(|(comm, _)| comm)
            .unwrap_or("?");
        let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
            .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
            .unwrap_or_default();
        let cmdline = cmdline.trim();
        let shown = if cmdline.is_empty() { comm } else { cmdline };
        let fds = fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
        found.insert(pid, format!("{state} {shown} ({fds} fds)"));
    }
    found
}

/// The network namespaces user space keeps alive: those of processes,
/// those open as descriptors, and nsfs mounts in this mount namespace (where
/// ipvlan's commands mount theirs). The kernel's own counts (slab objects,
/// file-nr) are per-CPU approximations and cannot tell one leak.
fn held_netns() -> BTreeSet<String> {
    let mut held = BTreeSet::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let dir = entry.path();
        if let Ok(ns) = fs::read_link(dir.join("ns/net")) {
            held.insert(ns.display().to_string());
        }
        for fd in fs::read_dir(dir.join("fd")).into_iter().flatten().flatten() {
            if let Ok(target) = fs::read_link(fd.path()) {
                let target = target.display().to_string();
                if target.starts_with("net:[") {
                    held.insert(target);
                }
            }
        }
    }
    for line in fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
    {
        // `id parent major:minor root mountpoint ... - fstype source options`
        let fields: Vec<&str> = line.split_whitespace().collect();
        let fstype = line
            .split_once(" - ")
            .and_then(|(_, rest)| rest.split_whitespace().next());
        if let (Some("nsfs"), Some(root), Some(at)) = (fstype, fields.get(3), fields.get(4)) {
            if root.starts_with("net:[") {
                held.insert(format!("{root} mounted at {at}"));
            }
        }
    }
    held
}

/// The pids of the containers' `sleep` commands, with the descriptors
/// each holds beyond stdin, stdout and stderr.
fn sleepers() -> BTreeMap<u32, Vec<String>> {
    let mut found = BTreeMap::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline != format!("sleep\0{SLEEP_SECONDS}\0").as_bytes() {
            continue;
        }
        let mut extra = Vec::new();
        for fd in fs::read_dir(format!("/proc/{pid}/fd"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = fd.file_name().to_string_lossy().into_owned();
            if !["0", "1", "2"].contains(&name.as_str()) {
                let target = fs::read_link(fd.path()).unwrap_or_default();
                extra.push(format!("{name} -> {}", target.display()));
            }
        }
        found.insert(pid, extra);
    }
    found
}

/// Differences between two sets, as `+added -removed` text.
fn set_diff<T: Ord + std::fmt::Display>(before: &BTreeSet<T>, after: &BTreeSet<T>) -> String {
    let added: Vec<String> = after.difference(before).map(|x| format!("+{x}")).collect();
    let removed: Vec<String> = before.difference(after).map(|x| format!("-{x}")).collect();
    let mut all = added;
    all.extend(removed);
    if all.len() > 12 {
        let more = all.len() - 12;
        all.truncate(12);
        all.push(format!("... {more} more"));
    }
    all.join(", ")
}

fn map_diff<K: Ord + std::fmt::Display, V: PartialEq + std::fmt::Debug>(
    before: &BTreeMap<K, V>,
    after: &BTreeMap<K, V>,
) -> String {
    let keys: BTreeSet<&K> = before.keys().chain(after.keys()).collect();
    let mut all = Vec::new();
    for key in keys {
        match (before.get(key), after.get(key)) {
            (Some(a), Some(b)) if a == b => {}
            (a, b) => all.push(format!("{key}: {a:?} -> {b:?}")),
        }
    }
    if all.len() > 12 {
        let more = all.len() - 12;
        all.truncate(12);
        all.push(format!("... {more} more"));
    }
    all.join(", ")
}

/// One line of the end-state table.
struct Check {
    what: String,
    ok: bool,
    detail: String,
}

fn check(what: &str, ok: bool, detail: String) -> Check {
    Check {
        what: what.to_string(),
        ok,
        detail,
    }
}

/// Past this size a hosts file whose lines are mostly blank is compacted
/// (`store::blank_lines`), so once every container is gone no hosts file
/// may be larger.
const HOSTS_COMPACT_BYTES: u64 = 4096;

fn compare(base: &Snapshot, end: &Snapshot) -> Vec<Check> {
    let state_files = |snapshot: &Snapshot, under: &str| {
        snapshot
            .state
            .iter()
            .filter(|(path, what)| {
                path.starts_with(under) && what.as_str() != "dir" && what.as_str() != "cursor"
            })
            .count()
    };
    vec![
        check(
            "host links (no ipvlan/dummy link left; the foreign one kept)",
            base.links == end.links,
            set_diff(&base.links, &end.links),
        ),
        check(
            "host addresses",
            base.addresses == end.addresses,
            set_diff(&base.addresses, &end.addresses),
        ),
        check(
            "links in the foreign namespace",
            base.foreign_links == end.foreign_links,
            set_diff(&base.foreign_links, &end.foreign_links),
        ),
        check(
            "/run/netns (only the foreign namespace)",
            base.netns == end.netns,
            set_diff(&base.netns, &end.netns),
        ),
        check(
            "/etc/netns (the foreign entry untouched)",
            base.etc_netns == end.etc_netns,
            map_diff(&base.etc_netns, &end.etc_netns),
        ),
        check(
            "address files under ipam/",
            state_files(end, "ipam/") == 0,
            format!("{}", state_files(end, "ipam/")),
        ),
        check(
            "endpoint records",
            state_files(end, "endpoints/") == 0,
            format!("{}", state_files(end, "endpoints/")),
        ),
        check(
            "container records",
            state_files(end, "records/") == 0,
            format!("{}", state_files(end, "records/")),
        ),
        check(
            "state directory entries",
            base.state == end.state,
            format!(
                "{} -> {} {}",
                base.state.len(),
                end.state.len(),
                map_diff(&base.state, &end.state)
            ),
        ),
        check(
            "hosts files: removed names blanked, compacted",
            end.largest_hosts_file <= HOSTS_COMPACT_BYTES,
            format!(
                "largest {} -> {} bytes",
                base.largest_hosts_file, end.largest_hosts_file
            ),
        ),
        check(
            "processes and their descriptors (no stray sleep, ipvlan or zombie)",
            base.processes == end.processes,
            map_diff(&base.processes, &end.processes),
        ),
        check(
            "network namespaces held by processes, descriptors or mounts",
            base.held_netns == end.held_netns,
            format!(
                "{} -> {} {}",
                base.held_netns.len(),
                end.held_netns.len(),
                set_diff(&base.held_netns, &end.held_netns)
            ),
        ),
    ]
}

fn setup(shared: &Shared) -> Result<(), String> {
    let ip = ip_path();
    plain(&ip, &["link", "add", FOREIGN_LINK, "type", "dummy"])?;
    plain(&ip, &["netns", "add", FOREIGN_NS])?;
    let other = Path::new(ETC_NETNS_DIR).join(FOREIGN_ETC);
    fs::create_dir_all(&other).map_err(|e| format!("{}: {e}", other.display()))?;
    fs::write(other.join("resolv.conf"), "nameserver 192.0.2.53\n")
        .map_err(|e| format!("{}: {e}", other.display()))?;
    plain(
        &shared.ipvlan,
        &[
            "network", "create", "-d", "ipvlan", "--subnet", SUBNET, NETWORK,
        ],
    )?;
    // The warm-up creates what is made once and kept (the allocator's
    // cursor, the directories of records and logs), so the baseline holds it.
    shared.cycle.store(0, Ordering::Relaxed);
    attach(shared, "warmup")?;
    if !(foreign(shared, "connect") && foreign(shared, "disconnect")) {
        return Err("the warm-up could not attach the foreign namespace".into());
    }
    detach(shared, "warmup")?;
    Ok(())
}

/// Connects or disconnects the foreign namespace by path; whether it worked
/// (a failure is recorded).
fn foreign(shared: &Shared, verb: &str) -> bool {
    let kind = if verb == "connect" {
        Kind::Connect
    } else {
        Kind::Disconnect
    };
    let path = format!("{NETNS_DIR}/{FOREIGN_NS}");
    match expect_ok(shared, kind, &["network", verb, NETWORK, &path]) {
        Ok(_) => true,
        Err(error) => {
            shared.fail(error);
            false
        }
    }
}

/// Runs a command that must exit 0 with nothing on stderr; returns stdout.
fn expect_ok(shared: &Shared, kind: Kind, args: &[&str]) -> Result<String, String> {
    let finished = ipvlan(shared, kind, args)
        .ok_or_else(|| format!("ipvlan {}: did not finish", args.join(" ")))?;
    match finished.problem() {
        None => Ok(finished.stdout),
        Some(problem) => Err(format!("ipvlan {}: {problem}", args.join(" "))),
    }
}

fn attach(shared: &Shared, name: &str) -> Result<(), String> {
    let args = [
        "run",
        "-d",
        "--net",
        NETWORK,
        "--name",
        name,
        "sleep",
        SLEEP_SECONDS,
    ];
    let stdout = expect_ok(shared, Kind::Run, &args)?;
    if stdout != format!("{name}\n") {
        return Err(format!("ipvlan {}: printed {stdout:?}", args.join(" ")));
    }
    Ok(())
}

fn detach(shared: &Shared, name: &str) -> Result<(), String> {
    let stdout = expect_ok(shared, Kind::Rm, &["rm", "-f", name])?;
    if stdout != format!("{name}\n") {
        return Err(format!("ipvlan rm -f {name}: printed {stdout:?}"));
    }
    Ok(())
}

/// With every container of the cycle attached (all C, or as many as the
/// deadline let in): one reader round with exact counts, the namespaces
/// all there, and no `sleep` holding more than its three standard
/// descriptors (a descriptor of ipvlan's leaking into commands).
fn attached_checks(shared: &Shared, containers: usize, endpoints: usize, base_netns: usize) {
    {
        let mut round = shared.full_round.lock().unwrap();
        *round = FullRound {
            requested: Some((containers, endpoints)),
            done: false,
        };
    }
    let netns = fs::read_dir(NETNS_DIR).map(|d| d.count()).unwrap_or(0);
    if netns != base_netns + containers {
        shared.fail(format!(
            "{netns} namespaces in {NETNS_DIR} with {containers} containers attached (baseline {base_netns})"
        ));
    }
    let sleepers = sleepers();
    if sleepers.len() != containers {
        shared.fail(format!(
            "{} container commands running, {containers} started",
            sleepers.len()
        ));
    }
    for (pid, extra) in sleepers
        .iter()
        .filter(|(_, extra)| !extra.is_empty())
        .take(3)
    {
        shared.fail(format!(
            "sleep (pid {pid}) holds extra descriptors: {extra:?}"
        ));
    }
    // The reader finishes the command it is in, then runs the round.
    let limit = COMMAND_TIMEOUT * 4;
    let round = shared.full_round.lock().unwrap();
    let (round, timeout) = shared
        .full_round_changed
        .wait_timeout_while(round, limit, |round| !round.done)
        .unwrap();
    if timeout.timed_out() && !round.done {
        shared.fail(format!(
            "the readers did not finish a round with all attached within {} s",
            limit.as_secs()
        ));
    }
}

fn median(values: &mut [f64]) -> f64 {
    percentile(values, 50)
}

fn percentile(values: &mut [f64], p: usize) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let rank = (values.len() - 1) * p / 100;
    values[rank]
}

fn soak(options: &Options) -> Result<bool, String> {
    let shared = Arc::new(Shared {
        ipvlan: std::env::var("IPVLAN_BIN").unwrap_or_else(|_| "/usr/bin/ipvlan".to_string()),
        samples: Mutex::default(),
        failures: Mutex::default(),
        commands: AtomicUsize::new(0),
        cycle: AtomicUsize::new(0),
        stop_cli: AtomicBool::new(false),
        stop_library: AtomicBool::new(false),
        stop_watchdog: AtomicBool::new(false),
        running: Mutex::default(),
        killed: Mutex::default(),
        full_round: Mutex::default(),
        full_round_changed: Condvar::new(),
    });
    let watchdog_thread = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || watchdog(&shared))
    };
    println!(
        "soak: {} s, {} containers per cycle, kernel {}",
        options.duration.as_secs(),
        options.containers,
        fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    setup(&shared)?;
    let (ready_tx, ready_rx) = mpsc::channel();
    let library_thread = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || library_reader(&shared, ready_tx))
    };
    ready_rx
        .recv()
        .map_err(|_| "the library reader ended before its first round".to_string())??;
    let base = snapshot()?;
    let cli_thread = {
        let shared = Arc::clone(&shared);
        std::thread::spawn(move || cli_reader(&shared))
    };

    let start = Instant::now();
    let deadline = start + options.duration;
    let mut cycles = Vec::new();
    let mut teardown_over = false;
    while Instant::now() < deadline && !teardown_over {
        let number = cycles.len() + 1;
        shared.cycle.store(number, Ordering::Relaxed);
        let attach_start = Instant::now();
        let mut attached = Vec::new();
        // The foreign namespace joins first and is attached again every
        // FOREIGN_EVERY containers, so attaches by path are measured from
        // the first to the last minute too.
        let mut foreign_on = foreign(&shared, "connect");
        for index in 0..options.containers {
            if Instant::now() >= deadline {
                break;
            }
            if index > 0 && index % FOREIGN_EVERY == 0 {
                if foreign_on && foreign(&shared, "disconnect") {
                    foreign_on = false;
                }
                if !foreign_on {
                    foreign_on = foreign(&shared, "connect");
                }
            }
            let name = container_name(index);
            match attach(&shared, &name) {
                Ok(()) => attached.push(name),
                Err(error) => shared.fail(error),
            }
        }
        let full = attached.len() == options.containers;
        attached_checks(
            &shared,
            attached.len(),
            attached.len() + usize::from(foreign_on),
            base.netns.len(),
        );
        if foreign_on {
            foreign(&shared, "disconnect");
        }
        let attach_time = attach_start.elapsed();
        let detach_start = Instant::now();
        for (done, name) in attached.iter().enumerate() {
            if Instant::now() > deadline + TEARDOWN_LIMIT {
                shared.fail(format!(
                    "teardown over {} s: {} containers not removed",
                    TEARDOWN_LIMIT.as_secs(),
                    attached.len() - done
                ));
                teardown_over = true;
                break;
            }
            let last_of_run = done + 1 == attached.len() && Instant::now() >= deadline;
            if options.plant_leak && last_of_run {
                println!("soak: --plant-leak: {name} left attached");
                continue;
            }
            if let Err(error) = detach(&shared, name) {
                shared.fail(error);
            }
        }
        let record = CycleRecord {
            number,
            attached: attached.len(),
            full,
            attach: attach_time,
            detach: detach_start.elapsed(),
        };
        println!(
            "soak: cycle {number}: {} attached in {:.1} s, removed in {:.1} s, {} commands, {} failures",
            record.attached,
            record.attach.as_secs_f64(),
            record.detach.as_secs_f64(),
            shared.commands.load(Ordering::Relaxed),
            shared.failure_count()
        );
        cycles.push(record);
    }
    let loop_time = start.elapsed();

    // The library reader counts descriptors when it stops: nothing else
    // may be running then.
    shared.stop_cli.store(true, Ordering::Relaxed);
    let _ = cli_thread.join();
    if options.plant_leak {
        let leaked = fs::File::open("/proc/self/stat").map(std::os::fd::IntoRawFd::into_raw_fd);
        println!("soak: --plant-leak: descriptor {leaked:?} left open");
    }
    shared.stop_library.store(true, Ordering::Relaxed);
    let library = library_thread
        .join()
        .map_err(|_| "the library reader panicked".to_string())??;
    shared.stop_watchdog.store(true, Ordering::Relaxed);
    let _ = watchdog_thread.join();

    // The kernel frees namespaces and PID 1 reaps the killed sleeps a
    // little later: compare until equal or settled.
    let settle_start = Instant::now();
    let (end, checks) = loop {
        let end = snapshot()?;
        let checks = compare(&base, &end);
        if checks.iter().all(|c| c.ok) || settle_start.elapsed() > SETTLE {
            break (end, checks);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let mut checks = checks;
    let fds_same = library.fds_before == library.fds_after;
    checks.push(check(
        "descriptors of this process (a long-lived library user)",
        fds_same,
        format!(
            "{} -> {} {}",
            library.fds_before.len(),
            library.fds_after.len(),
            map_diff(&library.fds_before, &library.fds_after)
        ),
    ));
    checks.extend(rss_checks(&shared));
    // Last: the network and its parent go, so nothing of the run remains.
    let removed = plain(&shared.ipvlan, &["network", "rm", NETWORK]);
    let links_after_rm = link_set(&[])?;
    let parent_gone: BTreeSet<String> = end
        .links
        .iter()
        .filter(|l| !l.ends_with(" dummy") || l.contains(&format!(" {FOREIGN_LINK} ")))
        .cloned()
        .collect();
    checks.push(check(
        "network rm after the soak (its dummy parent deleted)",
        removed.is_ok() && links_after_rm == parent_gone,
        match removed {
            Ok(_) => set_diff(&parent_gone, &links_after_rm),
            Err(error) => error,
        },
    ));

    let report = report(options, &shared, &cycles, loop_time, &library, &checks);
    println!("{RESULTS_BEGIN}\n{report}{RESULTS_END}");
    let failures = shared.failure_count();
    let passed = failures == 0 && checks.iter().all(|c| c.ok);
    println!("soak: {}", if passed { "PASSED" } else { "FAILED" });
    Ok(passed)
}

/// Peak RSS of the first and of the last [`RSS_GROUP`] commands of `kind`
/// (fewer when it ran less than twice that; the warm-up left out) and the
/// size of each group; `None` below two runs.
fn first_last_peaks(samples: &[Sample], kind: Kind) -> Option<(u64, u64, usize)> {
    let rss: Vec<u64> = samples
        .iter()
        .filter(|s| s.kind == kind && s.cycle > 0)
        .map(|s| s.max_rss_kib)
        .collect();
    if rss.len() < 2 {
        return None;
    }
    let group = RSS_GROUP.min(rss.len() / 2);
    let first = rss[..group].iter().copied().max().unwrap_or(0);
    let last = rss[rss.len() - group..].iter().copied().max().unwrap_or(0);
    Some((first, last, group))
}

/// Peak RSS per kind of command: the last commands against the first. The
/// readers' first and last run with (almost) no container attached; an
/// attach or a removal costs the same whatever the number of containers.
fn rss_checks(shared: &Shared) -> Vec<Check> {
    let samples = shared.samples.lock().unwrap();
    Kind::ALL
        .iter()
        .map(|&kind| match first_last_peaks(&samples, kind) {
            Some((first, last, group)) => check(
                &format!(
                    "peak RSS of `{}`: last {group} within {RSS_TOLERANCE_PERCENT}% of first {group}",
                    kind.label()
                ),
                last.abs_diff(first) * 100 <= first * RSS_TOLERANCE_PERCENT,
                format!("{first} -> {last} KiB"),
            ),
            None => check(
                &format!("peak RSS of `{}`", kind.label()),
                false,
                "fewer than two runs: nothing to compare; give more time".to_string(),
            ),
        })
        .collect()
}

fn report(
    options: &Options,
    shared: &Shared,
    cycles: &[CycleRecord],
    loop_time: Duration,
    library: &LibraryReport,
    checks: &[Check],
) -> String {
    let samples = shared.samples.lock().unwrap();
    let failures = shared.failures.lock().unwrap();
    let full = cycles.iter().filter(|c| c.full).count();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "| | |\n|---|---|\n| kernel | {} |",
        fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    let _ = writeln!(
        out,
        "| time budget | {} s (loop ran {:.0} s, teardown included) |",
        options.duration.as_secs(),
        loop_time.as_secs_f64()
    );
    let _ = writeln!(out, "| containers per cycle | {} |", options.containers);
    let _ = writeln!(
        out,
        "| cycles | {} ({full} with every container) |",
        cycles.len()
    );
    let _ = writeln!(
        out,
        "| ipvlan commands run | {} (warm-up included) |",
        shared.commands.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "| library reader rounds | {} (`containers()`, `network()`, `networks()` each) |",
        library.rounds
    );
    let _ = writeln!(out, "| failures | {} |", failures.len());
    out.push('\n');
    let _ = writeln!(
        out,
        "| command | runs | median ms | p90 ms | max ms | peak RSS KiB, first {RSS_GROUP} | peak RSS KiB, last {RSS_GROUP} |"
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    for kind in Kind::ALL {
        let mut millis: Vec<f64> = samples
            .iter()
            .filter(|s| s.kind == kind && s.cycle > 0)
            .map(|s| s.millis)
            .collect();
        let (first, last) = match first_last_peaks(&samples, kind) {
            Some((first, last, _)) => (first.to_string(), last.to_string()),
            None => ("-".to_string(), "-".to_string()),
        };
        let runs = millis.len();
        let max = millis.iter().copied().fold(0.0, f64::max);
        let _ = writeln!(
            out,
            "| `{}` | {runs} | {:.0} | {:.0} | {:.0} | {} | {} |",
            kind.label(),
            median(&mut millis),
            percentile(&mut millis, 90),
            max,
            first,
            last,
        );
    }
    out.push('\n');
    out.push_str("| cycle | attached | attach phase s | remove phase s |\n|---:|---:|---:|---:|\n");
    for cycle in cycles {
        let _ = writeln!(
            out,
            "| {}{} | {} | {:.1} | {:.1} |",
            cycle.number,
            if cycle.full {
                ""
            } else {
                " (cut by the deadline)"
            },
            cycle.attached,
            cycle.attach.as_secs_f64(),
            cycle.detach.as_secs_f64()
        );
    }
    out.push('\n');
    out.push_str("| end-state check | result | detail |\n|---|---|---|\n");
    for check in checks {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            check.what,
            if check.ok { "ok" } else { "FAILED" },
            check.detail.replace('|', "\\|")
        );
    }
    if !failures.is_empty() {
        out.push_str("\nFailures:\n\n");
        for failure in failures.iter().take(FAILURES_SHOWN) {
            let _ = writeln!(out, "- {}", failure.replace('\n', " "));
        }
        if failures.len() > FAILURES_SHOWN {
            let _ = writeln!(out, "- ... {} more", failures.len() - FAILURES_SHOWN);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> impl Iterator<Item = String> {
        list.iter()
            .map(|w| w.to_string())
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// A name's line blanked by a removal (`#`, then spaces) holds no
    /// name, as an empty one; a comment with words, or a name, does.
    #[test]
    fn blanked_lines_hold_no_name() {
        for blank in ["", "   ", "#", "#             ", "\t"] {
            assert!(is_blanked(blank), "{blank:?}");
        }
        for line in ["10.0.0.2\tc1", "# a comment", "#10.0.0.2\tc1"] {
            assert!(!is_blanked(line), "{line:?}");
        }
    }

    #[test]
    fn options() {
        let options = Options::parse(words(&["--seconds", "180"])).unwrap();
        assert_eq!(
            options,
            Options {
                duration: Duration::from_secs(180),
                containers: DEFAULT_CONTAINERS,
                plant_leak: false,
            }
        );
        let options = Options::parse(words(&[
            "--containers",
            "7",
            "--seconds",
            "1",
            "--plant-leak",
        ]))
        .unwrap();
        assert_eq!((options.containers, options.plant_leak), (7, true));
        for bad in [
            &[][..],
            &["--seconds"][..],
            &["--seconds", "0"][..],
            &["--seconds", "5", "--containers", "-1"][..],
            &["--seconds", "5", "--minutes", "1"][..],
        ] {
            assert!(Options::parse(words(bad)).is_err(), "{bad:?}");
        }
    }

    const PS: &str = "NAME      NETWORKS   ADDRESSES\n\
                      c000      soaknet    10.77.0.3/16\n\
                      c001      soaknet    10.77.0.4/16\n";

    #[test]
    fn ps_output() {
        assert_eq!(check_ps(PS, None), Ok(2));
        assert_eq!(check_ps(PS, Some(2)), Ok(2));
        assert_eq!(
            check_ps(PS, Some(3)),
            Err("2 containers listed, 3 attached".to_string())
        );
        // A container between its creation and its attach, or between its
        // detach and its removal.
        let moving = format!("{PS}c002      -          -\n");
        assert_eq!(check_ps(&moving, None), Ok(3));
        assert!(check_ps(&moving, Some(3)).is_err(), "all must be attached");
        let twice = PS.replace("10.77.0.4", "10.77.0.3");
        assert_eq!(
            check_ps(&twice, None),
            Err("address 10.77.0.3/16 listed twice".to_string())
        );
        for bad in [
            "",
            "NAME NETWORKS\n",
            &PS.replace("c001", "other"),
            &PS.replace("c001", "c000"),
            &PS.replace("10.77.0.4/16", "10.78.0.4/16"),
            &PS.replace("soaknet    10.77.0.4/16", "soaknet"),
            &format!("{PS}c002   othernet   10.1.0.2/16\n"),
        ] {
            assert!(check_ps(bad, None).is_err(), "{bad:?}");
        }
        assert_eq!(check_ps("NAME  NETWORKS  ADDRESSES\n", Some(0)), Ok(0));
    }

    fn inspect(addresses: &[&str]) -> String {
        let containers: Vec<String> = addresses
            .iter()
            .enumerate()
            .map(|(i, a)| {
                format!("\"c{i:03}\": {{\"Name\": \"c{i:03}\", \"IPv4Address\": \"{a}\"}}")
            })
            .collect();
        format!(
            "[{{\"Name\": \"soaknet\", \"Containers\": {{{}}}}}]",
            containers.join(", ")
        )
    }

    #[test]
    fn inspect_output() {
        let two = inspect(&["10.77.0.3/16", "10.77.0.4/16"]);
        assert_eq!(check_inspect(&two, None), Ok(2));
        assert_eq!(check_inspect(&two, Some(2)), Ok(2));
        assert_eq!(
            check_inspect(&two, Some(1)),
            Err("2 endpoints listed, 1 attached".to_string())
        );
        assert_eq!(check_inspect(&inspect(&[]), Some(0)), Ok(0));
        assert_eq!(
            check_inspect(&inspect(&["10.77.0.3/16", "10.77.0.3/16"]), None),
            Err("address 10.77.0.3/16 given twice".to_string())
        );
        for bad in [
            "not json".to_string(),
            "[]".to_string(),
            format!("[{two}, {two}]")
                .replace("[[", "[")
                .replace("]]", "]"),
            two.replace("soaknet", "other"),
            two.replace("\"Containers\"", "\"Endpoints\""),
            inspect(&["10.77.0.3/16", ""]),
            inspect(&["192.168.0.3/24"]),
        ] {
            assert!(check_inspect(&bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn ls_output() {
        let ls =
            "NETWORK ID     NAME      DRIVER    SCOPE\n0123456789ab   soaknet   ipvlan    local\n";
        assert_eq!(check_ls(ls), Ok(1));
        for bad in [
            "",
            "NETWORK ID   NAME      DRIVER    SCOPE\n",
            &format!("{ls}0123456789ac   other   ipvlan    local\n"),
            &ls.replace("soaknet", "other"),
            &ls.replace("ipvlan ", "macvlan"),
        ] {
            assert!(check_ls(bad).is_err(), "{bad:?}");
        }
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn map(items: &[(&str, &str)]) -> BTreeMap<String, String> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn baseline() -> Snapshot {
        Snapshot {
            links: set(&["1 lo -", "2 foreign0 dummy", "3 dm-0123 dummy"]),
            addresses: set(&["lo 127.0.0.1/8"]),
            foreign_links: set(&["1 lo -"]),
            netns: set(&[FOREIGN_NS]),
            etc_netns: map(&[
                ("soak-other", "dir"),
                ("soak-other/resolv.conf", "nameserver 192.0.2.53\n"),
            ]),
            state: map(&[
                ("lock", "0"),
                ("networks", "dir"),
                ("networks/0123.json", "612"),
                ("ipam/0123/10.77.0.0_16/cursor", "cursor"),
                ("records/containers", "dir"),
                ("hosts/0123", "127.0.0.1\tlocalhost"),
            ]),
            largest_hosts_file: 101,
            processes: [(1, "S /bin/sh /init (3 fds)".to_string())].into(),
            held_netns: set(&[
                "net:[1]",
                "net:[2]",
                "net:[3] mounted at /run/netns/soak-foreign",
            ]),
        }
    }

    fn failed(checks: &[Check]) -> Vec<&str> {
        checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.what.as_str())
            .collect()
    }

    #[test]
    fn an_unchanged_host_passes_every_check() {
        let base = baseline();
        let mut end = baseline();
        // Blank lines and a new cursor position are no leak.
        end.largest_hosts_file = 4096;
        let checks = compare(&base, &end);
        assert_eq!(failed(&checks), Vec::<&str>::new());
        assert_eq!(checks.len(), 12);
    }

    #[test]
    fn a_container_left_behind_fails_the_checks_that_see_it() {
        let base = baseline();
        let mut end = baseline();
        end.netns.insert("c007".into());
        end.state
            .insert("records/containers/c007.json".into(), "88".into());
        end.state
            .insert("ipam/0123/10.77.0.0_16/10.77.0.9".into(), "64".into());
        end.state
            .insert("endpoints/0123/ab.json".into(), "300".into());
        end.state.insert(
            "hosts/0123".into(),
            "127.0.0.1\tlocalhost; 10.77.0.9\tc007".into(),
        );
        end.processes.insert(4242, "S sleep 100000 (3 fds)".into());
        end.held_netns.insert("net:[9]".into());
        end.held_netns
            .insert("net:[9] mounted at /run/netns/c007".into());
        let checks = compare(&base, &end);
        assert_eq!(
            failed(&checks),
            [
                "/run/netns (only the foreign namespace)",
                "address files under ipam/",
                "endpoint records",
                "container records",
                "state directory entries",
                "processes and their descriptors (no stray sleep, ipvlan or zombie)",
                "network namespaces held by processes, descriptors or mounts",
            ]
        );
        let netns = checks
            .iter()
            .find(|c| c.what.starts_with("/run/netns"))
            .unwrap();
        assert_eq!(netns.detail, "+c007");
    }

    #[test]
    fn foreign_objects_touched_and_kernel_leftovers_fail() {
        let base = baseline();
        let mut end = baseline();
        end.links.remove("2 foreign0 dummy");
        end.links.insert("9 ipvl9 ipvlan".into());
        end.addresses.insert("dm-0123 10.77.0.1/16".into());
        end.foreign_links.insert("5 eth0 ipvlan".into());
        end.etc_netns.insert(
            "soak-other/resolv.conf".into(),
            "nameserver 10.77.0.1\n".into(),
        );
        end.largest_hosts_file = 4097;
        end.processes
            .insert(1, "S /bin/sh /init (4 fds)".to_string());
        let checks = compare(&base, &end);
        assert_eq!(
            failed(&checks),
            [
                "host links (no ipvlan/dummy link left; the foreign one kept)",
                "host addresses",
                "links in the foreign namespace",
                "/etc/netns (the foreign entry untouched)",
                "hosts files: removed names blanked, compacted",
                "processes and their descriptors (no stray sleep, ipvlan or zombie)",
            ]
        );
        let links = checks
            .iter()
            .find(|c| c.what.starts_with("host links"))
            .unwrap();
        assert_eq!(links.detail, "+9 ipvl9 ipvlan, -2 foreign0 dummy");
    }

    fn sample(kind: Kind, cycle: usize, max_rss_kib: u64) -> Sample {
        Sample {
            kind,
            cycle,
            millis: 1.0,
            max_rss_kib,
        }
    }

    #[test]
    fn rss_groups_are_the_first_and_last_runs_after_the_warm_up() {
        let mut samples = vec![sample(Kind::Run, 0, 9000)];
        samples.extend((0..30).map(|i| sample(Kind::Run, 1 + i / 20, 2000 + i as u64)));
        samples.push(sample(Kind::Ps, 1, 5000));
        assert_eq!(
            first_last_peaks(&samples, Kind::Run),
            Some((2009, 2029, 10))
        );
        assert_eq!(first_last_peaks(&samples, Kind::Ps), None);
        samples.push(sample(Kind::Ps, 2, 5600));
        assert_eq!(first_last_peaks(&samples, Kind::Ps), Some((5000, 5600, 1)));
        assert_eq!(first_last_peaks(&samples, Kind::Ls), None);
    }

    #[test]
    fn subnet_addresses() {
        assert_eq!(
            subnet_address("10.77.1.2/16"),
            Ok(Ipv4Addr::new(10, 77, 1, 2))
        );
        assert_eq!(subnet_address("10.77.0.9"), Ok(Ipv4Addr::new(10, 77, 0, 9)));
        assert!(subnet_address("10.78.0.1/16").is_err());
        assert!(subnet_address("fd00::1/64").is_err());
        assert!(subnet_address("").is_err());
    }
}
