//! The guest side of `cargo xtask powercut`: state on a virtual disk, QEMU
//! killed (SIGKILL, the power cut) at a random moment while `network
//! connect` and `run` work on it, the next boot from the same disk runs
//! `restore`, and the invariants below must hold.
//!
//! It runs in the QEMU guest as root, in the fresh network and mount
//! namespaces `tests/vm/isolate.sh` gives it. It is an example, not a test
//! target: it needs a disk image and a host that kills QEMU, which no VM test
//! run has; its unit tests (reading the command log, deriving what must be
//! durable) run on the host with `cargo test`.
//!
//! ```text
//! powercut [--log LINE]... [--load ROUND --seed S (--vlan VID | --internal)]
//!          [--plant torn|lost|unsynced] [--keep-going]
//! ```
//!
//! Every boot mounts `/dev/vda` (ext4; mounting replays its journal) and
//! keeps the state directory on it. With `--log` lines (the `PC-CMD` lines
//! the previous boot printed before QEMU was killed, handed over by the
//! host), it first checks the previous round; with `--load`, it then
//! starts the next one: a network, then [`LOOP_MARKER`], then `ipvlan
//! network connect` (one namespace, or a batch of three, or, one batch in
//! four when there is room, of sixty: more records than one entry of the
//! commit log holds), `ipvlan run -d`,
//! `network disconnect`, `rm -f` and a
//! second network's `create` / `rm` back to back until QEMU dies. Each
//! command is printed as `PC-CMD <n> START <argv>` before it starts and
//! `PC-CMD <n> END <status>` after it returned, so the host knows which
//! commands returned before the cut.
//!
//! # Invariants after the cut, the reboot and `restore`
//!
//! 1. `restore` exits 0 with nothing on stderr: it found no damaged record
//!    (the store writes every record atomically, so no file the cut left
//!    half-written may be read as a record) and nothing it could not
//!    repair. Every record the store lists then parses (networks,
//!    endpoints, containers, generic records) and no temporary file is left.
//! 2. Every network whose `network create` returned 0 (and whose `rm` had not
//!    started) exists, in state `created`, with its parent link present: the
//!    dummy or 802.1Q parent we created is re-created by `restore`. Every
//!    network whose `network rm` returned 0 is gone. No network is left in
//!    `creating` or `removing`.
//! 3. `/run/netns` is a tmpfs, so every namespace is gone after the reboot,
//!    and `restore` releases every endpoint whose namespace is gone
//!    (`restore.rs`): every endpoint whose `connect` or `run -d` returned 0
//!    (and whose `disconnect` or `rm` had not started) must be named on a
//!    `endpoint released` line (its record was durable), every released one
//!    must belong to a command that started, and afterwards no endpoint, no
//!    container record and no leased address is left.
//! 4. No address is leased twice and every leased address belongs to a
//!    recorded endpoint of its network; every address an endpoint record
//!    names has its address file naming that endpoint, and no address file
//!    is left that names no owner (address files are not synced: `restore`
//!    rebuilds them from the records) (checked after each step below).
//! 5. A second `restore` changes nothing: its summary is all zeros, it
//!    exits 0, and the state directory (every path and content) and the
//!    links are as the first left them.
//! 6. No hosts file names a container that is gone, and no `/etc/netns`
//!    view is marked ours (`/etc` is the initramfs's, so every view is
//!    gone; a marker kept would make an admin's directory of that name
//!    ours).
//! 7. A new `connect` works and gets an address of the subnet that no one
//!    else leases; it is disconnected again.
//! 8. `network rm` of every network exits 0 and leaves no record, no
//!    endpoint or address directory, no hosts file and no parent link we
//!    created, and keeps the link a VLAN parent sat on (not ours).
//!
//! `--plant torn` (after the round's network is created, its record is cut
//! to half its length, as a writer without the atomic rename would leave
//! it) and `--plant lost` (the record of a create that returned vanishes,
//! as an unsynced write would) must make the next boot's checks fail.
//! `--plant unsynced` writes files of its own on the disk without fsync,
//! each logged as a command that returned, until the cut: the next boot
//! must find the last ones lost, or the cut is no power cut.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use ipvlan::json::{self, Value};
use ipvlan::store::{NetworkState, ParentOrigin, StateDir};

/// Where `/dev/vda` is mounted.
const MOUNT: &str = "/mnt/powercut";
/// The state directory, on the disk.
const STATE_DIR: &str = "/mnt/powercut/state";
const NETNS_DIR: &str = "/run/netns";
/// The host starts its random delay when it sees this line.
const LOOP_MARKER: &str = "PC-LOOP";
/// Printed when boot 1 could not do what the round needs (before or
/// without a cut): the round fails.
const LOAD_FAIL: &str = "PC-LOAD-FAIL";
/// Printed when every check of the previous round passed.
const CHECK_PASS: &str = "PC-CHECK-PASS";
const CHECK_FAIL: &str = "PC-CHECK-FAIL";
/// Commands of one round stop here if QEMU was not killed by then.
const MAX_COMMANDS: usize = 400;
/// Containers alive at once at most (the subnets are /24).
const MAX_LIVE: usize = 120;
/// Namespaces a batch connect attaches at once.
const BATCH: usize = 3;
/// Namespaces a large batch attaches (one batch in four, when there is
/// room): more records than one entry of the commit log holds, so its
/// commit is several entries in a row.
const LARGE_BATCH: usize = 60;
/// The namespace of invariant 7.
const PROBE: &str = "pcprobe";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match Options::parse(&args) {
        Ok(options) => options,
        Err(error) => {
            eprintln!("powercut: {error}");
            return ExitCode::from(2);
        }
    };
    if let Err(error) = mount() {
        println!("{LOAD_FAIL}: {error}");
        return ExitCode::FAILURE;
    }
    if !options.log.is_empty() {
        let failures = check(&options.log);
        if failures.is_empty() {
            println!("{CHECK_PASS}");
        } else {
            for failure in &failures {
                println!("{CHECK_FAIL}: {failure}");
            }
            if !options.keep_going {
                return ExitCode::FAILURE;
            }
        }
    }
    if let Some(load) = &options.load {
        if let Err(error) = run_load(load, options.plant.as_deref()) {
            println!("{LOAD_FAIL}: {error}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

struct Load {
    round: u64,
    seed: u64,
    /// `Some(vid)`: the parent is `pcphR.VID` on a dummy made here;
    /// `None`: `--internal`, a dummy parent made by ipvlan.
    vlan: Option<u16>,
}

struct Options {
    log: Vec<String>,
    load: Option<Load>,
    plant: Option<String>,
    /// Load the next round even when the checks failed (they went on to
    /// `network rm`, so the state directory is empty either way).
    keep_going: bool,
}

impl Options {
    fn parse(args: &[String]) -> Result<Options, String> {
        let mut options = Options {
            log: Vec::new(),
            load: None,
            plant: None,
            keep_going: false,
        };
        let (mut round, mut seed, mut vlan, mut internal) = (None, None, None, false);
        let mut iter = args.iter();
        let number = |flag: &str, value: Option<&String>| -> Result<u64, String> {
            value
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{flag} needs a number"))
        };
        while let Some(arg) = iter.next() {
            match arg.as_str() {
                "--log" => options
                    .log
                    .push(iter.next().ok_or("--log needs a line")?.clone()),
                "--load" => round = Some(number(arg, iter.next())?),
                "--seed" => seed = Some(number(arg, iter.next())?),
                "--vlan" => {
                    vlan = Some(
                        u16::try_from(number(arg, iter.next())?).map_err(|_| "--vlan: too big")?,
                    )
                }
                "--internal" => internal = true,
                "--keep-going" => options.keep_going = true,
                "--plant" => {
                    let plant = iter.next().ok_or("--plant needs torn, lost or unsynced")?;
                    if !["torn", "lost", "unsynced"].contains(&plant.as_str()) {
                        return Err(format!("unknown plant {plant:?}"));
                    }
                    options.plant = Some(plant.clone());
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        if let Some(round) = round {
            if vlan.is_some() == internal {
                return Err("--load needs one of --vlan VID and --internal".into());
            }
            options.load = Some(Load {
                round,
                seed: seed.ok_or("--load needs --seed")?,
                vlan,
            });
        }
        Ok(options)
    }
}

// ---------------------------------------------------------------- helpers

fn ipvlan_bin() -> String {
    std::env::var("IPVLAN_BIN").unwrap_or_else(|_| "/usr/bin/ipvlan".to_string())
}

fn ip_bin() -> String {
    std::env::var("IPVLAN_IP").unwrap_or_else(|_| "/usr/sbin/ip".to_string())
}

/// What a finished command gave back.
struct Finished {
    code: i32,
    stdout: String,
    stderr: String,
}

fn exec(program: &str, args: &[&str]) -> Result<Finished, String> {
    let out = Command::new(program)
        .args(args)
        .env("IPVLAN_STATE_DIR", STATE_DIR)
        .env("IPVLAN_NETNS_DIR", NETNS_DIR)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program} {}: {e}", args.join(" ")))?;
    Ok(Finished {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs a command that must succeed; its stdout.
fn must(program: &str, args: &[&str]) -> Result<String, String> {
    let done = exec(program, args)?;
    if done.code != 0 {
        return Err(format!(
            "{program} {} exited {}: {}",
            args.join(" "),
            done.code,
            done.stderr.trim()
        ));
    }
    Ok(done.stdout)
}

fn ip(args: &[&str]) -> Result<String, String> {
    must(&ip_bin(), args)
}

fn ip_json(args: &[&str]) -> Result<Value, String> {
    let mut full = vec!["-j", "-d"];
    full.extend_from_slice(args);
    let text = ip(&full)?;
    let text = if text.trim().is_empty() { "[]" } else { &text };
    json::parse(text).map_err(|e| format!("ip -j {}: {e}", args.join(" ")))
}

fn mount() -> Result<(), String> {
    fs::create_dir_all(MOUNT).map_err(|e| format!("{MOUNT}: {e}"))?;
    // Mounting replays the journal of a filesystem the cut left dirty.
    must("mount", &["-t", "ext4", "/dev/vda", MOUNT])?;
    println!("PC-MOUNTED /dev/vda on {MOUNT}");
    Ok(())
}

/// A small, seeded generator (splitmix64): the same seed, the same round.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

// ---------------------------------------------------------------- boot 1

/// Prints a log line and waits until the serial port has sent it: the
/// host must have the whole `START` line of every command that started
/// (the port is slow, and the cut may come while a command runs), and a
/// line the cut truncates is one whose command had not started yet.
fn console(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
    // SAFETY: tcdrain only reads the descriptor number; on a pipe or file
    // (a run outside the VM) it fails with ENOTTY, which changes nothing.
    #[allow(unsafe_code)]
    unsafe {
        libc::tcdrain(1);
    }
}

/// Runs `ipvlan ARGS` with its start and end on the console; the status.
fn logged(seq: &mut u64, args: &[&str]) -> Result<i32, String> {
    *seq += 1;
    console(&format!("PC-CMD {} START {}", seq, args.join(" ")));
    let done = exec(&ipvlan_bin(), args)?;
    console(&format!("PC-CMD {} END {}", seq, done.code));
    if done.code != 0 {
        println!(
            "PC-OUT {}: {}",
            seq,
            done.stderr.trim().replace('\n', " | ")
        );
    }
    Ok(done.code)
}

fn logged_ok(seq: &mut u64, args: &[&str]) -> Result<(), String> {
    match logged(seq, args)? {
        0 => Ok(()),
        code => Err(format!("ipvlan {} exited {code}", args.join(" "))),
    }
}

fn network_name(round: u64) -> String {
    format!("pc{round}")
}

fn run_load(load: &Load, plant: Option<&str>) -> Result<(), String> {
    let mut rng = Rng(load.seed);
    let mut seq = 0;
    let net = network_name(load.round);
    let side = format!("{net}x");
    let octet = load.round % 250;
    let subnet = format!("10.88.{octet}.0/24");
    let side_subnet = format!("10.89.{octet}.0/24");
    let mut create = vec!["network", "create", "--subnet", &subnet];
    let parent;
    match load.vlan {
        Some(vid) => {
            let master = format!("pcph{}", load.round);
            // The "physical" parent: another tool's link, as a NIC would be.
            ip(&["link", "add", &master, "type", "dummy"])?;
            ip(&["link", "set", &master, "up"])?;
            parent = format!("parent={master}.{vid}");
            create.extend(["-o", &parent]);
        }
        None => create.push("--internal"),
    }
    create.push(&net);
    logged_ok(&mut seq, &create)?;
    if plant == Some("unsynced") {
        return unsynced_writes(load, &mut seq);
    }
    if let Some(plant) = plant {
        plant_fault(plant, &net)?;
        // Commands on the damaged network would fail here; what matters is
        // that the next boot's checks see the damage, so wait for the cut.
        println!(
            "{LOOP_MARKER} round {} seed {} (planted)",
            load.round, load.seed
        );
        loop {
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
    }
    println!("{LOOP_MARKER} round {} seed {}", load.round, load.seed);
    let mut connected: Vec<String> = Vec::new();
    let mut running: Vec<String> = Vec::new();
    let mut side_exists = false;
    for index in 0..MAX_COMMANDS {
        let live = connected.len() + running.len();
        let roll = rng.below(100);
        if roll < 28 && live < MAX_LIVE {
            let name = format!("c{index}");
            ip(&["netns", "add", &name])?;
            logged_ok(&mut seq, &["network", "connect", &net, &name])?;
            connected.push(name);
        } else if roll < 40 && live + BATCH <= MAX_LIVE {
            // A batch (`connect_many`): its intents are one file, its
            // records made in place, one commit for all.
            let size = match rng.below(4) == 0 && live + LARGE_BATCH <= MAX_LIVE {
                true => LARGE_BATCH,
                false => BATCH,
            };
            let names: Vec<String> = (0..size).map(|i| format!("c{index}b{i}")).collect();
            for name in &names {
                ip(&["netns", "add", name])?;
            }
            let mut argv = vec!["network", "connect", net.as_str()];
            argv.extend(names.iter().map(String::as_str));
            logged_ok(&mut seq, &argv)?;
            connected.extend(names);
        } else if roll < 70 && live < MAX_LIVE {
            let name = format!("d{index}");
            logged_ok(
                &mut seq,
                &[
                    "run", "-d", "--net", &net, "--name", &name, "sleep", "100000",
                ],
            )?;
            running.push(name);
        } else if roll < 82 && !connected.is_empty() {
            let name = connected.swap_remove(rng.below(connected.len() as u64) as usize);
            logged_ok(&mut seq, &["network", "disconnect", &net, &name])?;
            ip(&["netns", "del", &name])?;
        } else if roll < 94 && !running.is_empty() {
            let name = running.swap_remove(rng.below(running.len() as u64) as usize);
            logged_ok(&mut seq, &["rm", "-f", &name])?;
        } else if side_exists {
            logged_ok(&mut seq, &["network", "rm", &side])?;
            side_exists = false;
        } else {
            logged_ok(
                &mut seq,
                &[
                    "network",
                    "create",
                    "--subnet",
                    &side_subnet,
                    "--internal",
                    &side,
                ],
            )?;
            side_exists = true;
        }
    }
    println!("PC-LOOP-END after {MAX_COMMANDS} commands");
    Ok(())
}

/// Where `--plant unsynced` writes: the test's own files, on the disk
/// but outside the state directory.
const UNSYNCED_DIR: &str = "/mnt/powercut/unsynced";

/// What `--plant unsynced` writes into file `seq`: 16 KiB that say which
/// file they belong to.
fn unsynced_contents(seq: u64) -> Vec<u8> {
    format!("{seq:>15}\n").repeat(1024).into_bytes()
}

/// `--plant unsynced`: files written the way a store without fsync would
/// write its records, each logged as a command that returned, until the
/// cut. The next boot finds the last ones missing or empty: proof that
/// the cut loses what was not synced (were QEMU to flush on the way out,
/// or the disk to keep a cache, this test could not see a missing fsync).
fn unsynced_writes(load: &Load, seq: &mut u64) -> Result<(), String> {
    fs::create_dir_all(UNSYNCED_DIR).map_err(|e| format!("{UNSYNCED_DIR}: {e}"))?;
    must("sync", &[])?;
    println!("PC-PLANTED unsynced writes to {UNSYNCED_DIR}");
    println!(
        "{LOOP_MARKER} round {} seed {} (planted)",
        load.round, load.seed
    );
    loop {
        *seq += 1;
        let name = seq.to_string();
        console(&format!("PC-CMD {seq} START plant-write {name}"));
        let path = Path::new(UNSYNCED_DIR).join(&name);
        fs::write(&path, unsynced_contents(*seq))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        console(&format!("PC-CMD {seq} END 0"));
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Damages the round's network record the way a store without atomic,
/// synced writes could leave it after a power cut, and makes that durable.
fn plant_fault(plant: &str, net: &str) -> Result<(), String> {
    let state = StateDir::open(STATE_DIR).map_err(|e| e.to_string())?;
    let networks = state.networks().map_err(|e| e.to_string())?;
    let record = networks
        .iter()
        .find(|n| n.name == net)
        .ok_or_else(|| format!("plant: no network {net}"))?;
    let path = Path::new(STATE_DIR)
        .join("networks")
        .join(format!("{}.json", record.id));
    match plant {
        "torn" => {
            let text = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            fs::write(&path, &text[..text.len() / 2])
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        _ => fs::remove_file(&path).map_err(|e| format!("{}: {e}", path.display()))?,
    }
    must("sync", &[])?;
    println!("PC-PLANTED {plant} {}", path.display());
    Ok(())
}

// ---------------------------------------------------------------- boot 2

/// One command of the previous boot's log.
#[derive(Debug, Clone, PartialEq)]
struct Logged {
    seq: u64,
    argv: Vec<String>,
    /// `None`: it had not returned when the power went.
    status: Option<i32>,
}

/// Reads `PC-CMD <n> START <argv>` / `PC-CMD <n> END <status>` lines.
fn parse_log(lines: &[String]) -> Result<Vec<Logged>, String> {
    let mut commands: Vec<Logged> = Vec::new();
    for line in lines {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["PC-CMD", seq, "START", argv @ ..] => {
                let seq = seq.parse().map_err(|_| format!("bad log line {line:?}"))?;
                commands.push(Logged {
                    seq,
                    argv: argv.iter().map(|w| w.to_string()).collect(),
                    status: None,
                });
            }
            ["PC-CMD", seq, "END", status] => {
                let seq: u64 = seq.parse().map_err(|_| format!("bad log line {line:?}"))?;
                let command = commands
                    .iter_mut()
                    .find(|c| c.seq == seq)
                    .ok_or_else(|| format!("END without START: {line:?}"))?;
                command.status = Some(
                    status
                        .parse()
                        .map_err(|_| format!("bad log line {line:?}"))?,
                );
            }
            _ => return Err(format!("bad log line {line:?}")),
        }
    }
    Ok(commands)
}

/// What the log says must hold after the reboot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Must {
    /// Its last command returned success leaving it there.
    Exist,
    /// Its last command returned success removing it.
    BeGone,
    /// Its last command was cut: either is right.
    Either,
}

#[derive(Debug, Default, PartialEq)]
struct Expectations {
    /// Network name -> what must hold.
    networks: BTreeMap<String, Must>,
    /// (network, namespace or container name) -> what held at the cut.
    endpoints: BTreeMap<(String, String), Must>,
    /// The foreign dummies VLAN parents sit on: the boot scripts of a real
    /// host would bring its NICs up before `restore`.
    masters: BTreeSet<String>,
}

fn outcome(status: Option<i32>, done: Must) -> Option<Must> {
    match status {
        Some(0) => Some(done),
        // A command that failed changed nothing.
        Some(_) => None,
        None => Some(Must::Either),
    }
}

fn expectations(commands: &[Logged]) -> Expectations {
    let mut out = Expectations::default();
    for command in commands {
        let argv: Vec<&str> = command.argv.iter().map(String::as_str).collect();
        match argv.as_slice() {
            ["network", "create", .., name] => {
                for pair in argv.windows(2) {
                    if let ["-o", option] = pair {
                        if let Some(parent) = option.strip_prefix("parent=") {
                            if let Some((master, _)) = parent.split_once('.') {
                                out.masters.insert(master.to_string());
                            }
                        }
                    }
                }
                if let Some(must) = outcome(command.status, Must::Exist) {
                    out.networks.insert(name.to_string(), must);
                }
            }
            ["network", "rm", name] => {
                if let Some(must) = outcome(command.status, Must::BeGone) {
                    out.networks.insert(name.to_string(), must);
                }
            }
            ["run", "-d", "--net", net, "--name", name, ..] => {
                if let Some(must) = outcome(command.status, Must::Exist) {
                    out.endpoints
                        .insert((net.to_string(), name.to_string()), must);
                }
            }
            // One target, or a batch of several.
            ["network", "connect", net, names @ ..] => {
                if let Some(must) = outcome(command.status, Must::Exist) {
                    for name in names {
                        out.endpoints
                            .insert((net.to_string(), name.to_string()), must);
                    }
                }
            }
            ["network", "disconnect", net, name] => {
                if let Some(must) = outcome(command.status, Must::BeGone) {
                    out.endpoints
                        .insert((net.to_string(), name.to_string()), must);
                }
            }
            ["rm", "-f", name] => {
                let key = out
                    .endpoints
                    .keys()
                    .find(|(_, n)| n == name)
                    .cloned()
                    .unwrap_or_default();
                if let Some(must) = outcome(command.status, Must::BeGone) {
                    out.endpoints.insert(key, must);
                }
            }
            _ => {}
        }
    }
    out
}

/// `  endpoint released: NET: LABEL` lines -> (NET, name); LABEL is the
/// container's name or the namespace's path.
fn released(summary: &str) -> BTreeSet<(String, String)> {
    summary
        .lines()
        .filter_map(|line| line.trim().strip_prefix("endpoint released: "))
        .filter_map(|rest| rest.split_once(": "))
        .map(|(net, label)| {
            let name = label.rsplit('/').next().unwrap_or(label);
            (net.to_string(), name.to_string())
        })
        .collect()
}

/// Every path under `root` with its contents (directories as `<dir>`).
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => {
                    out.insert(path.clone(), b"<dir>".to_vec());
                    stack.push(path);
                }
                // Address files and name hints: links naming an id.
                Ok(kind) if kind.is_symlink() => {
                    let target = fs::read_link(&path).unwrap_or_default();
                    let mut contents = b"-> ".to_vec();
                    contents.extend(target.into_os_string().into_encoded_bytes());
                    out.insert(path, contents);
                }
                _ => {
                    let contents = fs::read(&path).unwrap_or_else(|e| e.to_string().into_bytes());
                    out.insert(path, contents);
                }
            }
        }
    }
    out
}

/// The names in directory `dir`; none when it cannot be listed.
fn entry_names(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn link_names() -> Result<BTreeSet<String>, String> {
    let links = ip_json(&["link", "show"])?;
    Ok(links
        .as_array()
        .unwrap_or_default()
        .iter()
        .filter_map(|l| l.get("ifname").and_then(Value::as_str))
        .map(str::to_string)
        .collect())
}

/// Collects failed checks instead of stopping at the first.
#[derive(Default)]
struct Checks {
    failures: Vec<String>,
}

impl Checks {
    fn expect(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(what());
        }
    }
}

const ZERO_SUMMARY: &str = "restore: 0 parents re-created, 0 parents missing, 0 links re-created, \
     0 endpoints kept, 0 endpoints released, 0 interrupted operations repaired";

fn check(lines: &[String]) -> Vec<String> {
    match check_round(lines) {
        Ok(checks) => checks.failures,
        Err(error) => vec![error],
    }
}

fn check_round(lines: &[String]) -> Result<Checks, String> {
    let mut checks = Checks::default();
    let commands = parse_log(lines)?;
    let expect = expectations(&commands);
    for master in &expect.masters {
        ip(&["link", "add", master, "type", "dummy"])?;
        ip(&["link", "set", master, "up"])?;
    }
    let root = Path::new(STATE_DIR);
    for command in &commands {
        if let (["plant-write", name], Some(0)) = (
            command
                .argv
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .as_slice(),
            command.status,
        ) {
            let path = Path::new(UNSYNCED_DIR).join(name);
            let found = fs::read(&path).ok();
            checks.expect(found == Some(unsynced_contents(command.seq)), || {
                format!(
                    "{}: written before the cut, but {}",
                    path.display(),
                    match found {
                        None => "missing".to_string(),
                        Some(bytes) => format!("{} bytes, not the 16 KiB written", bytes.len()),
                    }
                )
            });
        }
    }
    let _ = fs::remove_dir_all(UNSYNCED_DIR);

    // 0. the records as the first command after the boot finds them, before
    // restore releases every endpoint (their namespaces did not survive)
    // and with them what a check of leases could find.
    records_before_restore(root, &mut checks)?;

    // 1. restore.
    let first = exec(&ipvlan_bin(), &["restore"])?;
    println!("PC-RESTORE exit {}: {}", first.code, first.stdout.trim());
    checks.expect(first.code == 0 && first.stderr.is_empty(), || {
        format!(
            "restore exited {} with stderr {:?}",
            first.code,
            first.stderr.trim()
        )
    });
    let state = StateDir::open(root).map_err(|e| e.to_string())?;
    let networks = state.networks().map_err(|e| e.to_string())?;
    for damaged in &networks.damaged {
        checks
            .failures
            .push(format!("damaged network record: {damaged}"));
    }
    let endpoints = state.endpoints().map_err(|e| e.to_string())?;
    for damaged in &endpoints.damaged {
        checks
            .failures
            .push(format!("damaged endpoint record: {damaged}"));
    }
    let containers = state.container_records().map_err(|e| e.to_string())?;
    for damaged in &containers.damaged {
        checks
            .failures
            .push(format!("damaged container record: {damaged}"));
    }
    if let Ok(kinds) = fs::read_dir(root.join("records")) {
        for kind in kinds.flatten() {
            let kind = kind.file_name().to_string_lossy().into_owned();
            // A container's index is a link (the JSON record when long):
            // read each one as the driver does.
            if kind == "container-endpoints" {
                match state.record_names(&kind) {
                    Ok(names) => {
                        for name in names {
                            if let Err(error) = state.derived_entry(&kind, &name) {
                                checks
                                    .failures
                                    .push(format!("damaged {kind} record {name}: {error}"));
                            }
                        }
                    }
                    Err(error) => checks.failures.push(format!("records/{kind}: {error}")),
                }
                continue;
            }
            match state.records(&kind) {
                Ok(listing) => {
                    for damaged in &listing.damaged {
                        checks
                            .failures
                            .push(format!("damaged {kind} record: {damaged}"));
                    }
                }
                Err(error) => checks.failures.push(format!("records/{kind}: {error}")),
            }
        }
    }
    // Each short name of a hosts file (`hosts/k/<key>`) leads to the file
    // of a network there is: restore took out those of networks gone.
    let ids = state.network_ids().map_err(|e| e.to_string())?;
    for name in entry_names(&root.join("hosts/k")) {
        let target = fs::read_link(root.join("hosts/k").join(&name)).ok();
        let names_one = target
            .as_ref()
            .and_then(|t| t.to_str()?.strip_prefix("../"))
            .is_some_and(|id| id.starts_with(name.as_str()) && ids.iter().any(|n| n == id));
        checks.expect(names_one, || {
            format!("hosts/k/{name} -> {target:?} names no network after restore")
        });
    }
    for path in snapshot(root).keys() {
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        checks.expect(!name.starts_with(".tmp"), || {
            format!("temporary file left after restore: {}", path.display())
        });
    }

    // 2. networks.
    let links = ip_json(&["link", "show"])?;
    let link = |name: &str| {
        links
            .as_array()
            .unwrap_or_default()
            .iter()
            .find(|l| l.get("ifname").and_then(Value::as_str) == Some(name))
            .cloned()
    };
    for (name, must) in &expect.networks {
        let found = networks.iter().find(|n| &n.name == name);
        match must {
            Must::Exist => checks.expect(found.is_some(), || {
                format!("network {name}: its create returned 0 before the cut, but it is gone")
            }),
            Must::BeGone => checks.expect(found.is_none(), || {
                format!("network {name}: its rm returned 0 before the cut, but it is back")
            }),
            Must::Either => {}
        }
    }
    for network in &networks {
        checks.expect(network.state == NetworkState::Created, || {
            format!(
                "network {} left in state {:?} by restore",
                network.name, network.state
            )
        });
        match (link(&network.parent), &network.parent_origin) {
            (None, _) => checks.failures.push(format!(
                "network {}: parent {} missing after restore",
                network.name, network.parent
            )),
            (Some(found), ParentOrigin::VlanCreated { link: _, vlan_id }) => {
                let info = found.get("linkinfo");
                let kind = info
                    .and_then(|i| i.get("info_kind"))
                    .and_then(Value::as_str);
                let id = info
                    .and_then(|i| i.get("info_data"))
                    .and_then(|d| d.get("id"))
                    .and_then(Value::as_u64);
                checks.expect(
                    kind == Some("vlan") && id == Some(u64::from(*vlan_id)),
                    || {
                        format!(
                            "network {}: parent {} is {kind:?} id {id:?}, not vlan {vlan_id}",
                            network.name, network.parent
                        )
                    },
                );
            }
            (Some(_), _) => {}
        }
    }

    // 3. endpoints of namespaces that did not survive the reboot.
    let gone = released(&first.stdout);
    for ((net, name), must) in &expect.endpoints {
        let live_network = expect.networks.get(net) != Some(&Must::BeGone);
        if *must == Must::Exist && live_network {
            checks.expect(gone.contains(&(net.clone(), name.clone())), || {
                format!(
                    "{net}: {name}: its attach returned 0 before the cut and nothing detached \
                     it, but restore did not release it (its record was not durable)"
                )
            });
        }
    }
    for (net, name) in &gone {
        let started = expect.endpoints.get(&(net.clone(), name.clone()));
        checks.expect(matches!(started, Some(Must::Exist | Must::Either)), || {
            format!("restore released {net}: {name}, which no command left attached ({started:?})")
        });
    }
    checks.expect(endpoints.is_empty(), || {
        format!("{} endpoint records left after restore", endpoints.len())
    });
    checks.expect(containers.is_empty(), || {
        format!("{} container records left after restore", containers.len())
    });

    // 4. leases.
    lease_checks(&state, &mut checks)?;

    // 6. hosts files name no container that is gone.
    for network in &networks {
        let path = state.hosts_path(&network.id);
        let text = fs::read_to_string(&path).unwrap_or_default();
        for line in text.lines() {
            // Container lines hold an address of the network's subnets;
            // `localhost` and the like are the file's fixed header.
            let address = line
                .split_whitespace()
                .next()
                .and_then(|word| word.parse::<std::net::IpAddr>().ok());
            let container_line =
                address.is_some_and(|a| network.subnets.iter().any(|s| s.subnet.contains(&a)));
            checks.expect(!container_line, || {
                format!(
                    "{}: hosts file {} still lists {line:?} after restore released every endpoint",
                    network.name,
                    path.display()
                )
            });
        }
    }

    let markers = entry_names(&root.join("hosts/etc-netns"));
    checks.expect(markers.is_empty(), || {
        format!("/etc/netns views still marked ours after restore: {markers:?}")
    });

    // 5. a second restore changes nothing.
    let before = snapshot(root);
    let links_before = link_names()?;
    let second = exec(&ipvlan_bin(), &["restore"])?;
    checks.expect(
        second.code == 0 && second.stdout.trim() == ZERO_SUMMARY && second.stderr.is_empty(),
        || {
            format!(
                "second restore: exit {}, stdout {:?}, stderr {:?}",
                second.code,
                second.stdout.trim(),
                second.stderr.trim()
            )
        },
    );
    let after = snapshot(root);
    checks.expect(before == after, || {
        let changed: Vec<String> = before
            .keys()
            .chain(after.keys())
            .filter(|p| before.get(*p) != after.get(*p))
            .map(|p| p.display().to_string())
            .collect();
        format!("second restore changed the state directory: {changed:?}")
    });
    checks.expect(links_before == link_names()?, || {
        "second restore changed the links".to_string()
    });

    // 7. a new connect works, with an address no one else has.
    for network in &networks {
        ip(&["netns", "add", PROBE])?;
        let done = exec(&ipvlan_bin(), &["network", "connect", &network.name, PROBE])?;
        checks.expect(done.code == 0, || {
            format!(
                "connect to {} after restore exited {}: {}",
                network.name,
                done.code,
                done.stderr.trim()
            )
        });
        if done.code == 0 {
            let addrs = ip_json(&["-n", PROBE, "addr", "show"])?;
            let mine: Vec<String> = addrs
                .as_array()
                .unwrap_or_default()
                .iter()
                .flat_map(|l| {
                    l.get("addr_info")
                        .and_then(Value::as_array)
                        .unwrap_or_default()
                })
                .filter(|a| a.get("family").and_then(Value::as_str) == Some("inet"))
                .filter_map(|a| a.get("local").and_then(Value::as_str))
                .filter(|a| !a.starts_with("127."))
                .map(str::to_string)
                .collect();
            let leases = state.addresses(network).map_err(|e| e.to_string())?;
            let in_subnet = network.subnets.iter().any(|s| {
                mine.first()
                    .and_then(|a| a.parse::<std::net::IpAddr>().ok())
                    .is_some_and(|a| s.subnet.contains(&a))
            });
            checks.expect(mine.len() == 1 && in_subnet && leases.len() == 1, || {
                format!(
                    "connect to {} after restore: addresses {mine:?}, leases {leases:?}",
                    network.name
                )
            });
            lease_checks(&state, &mut checks)?;
            let done = exec(
                &ipvlan_bin(),
                &["network", "disconnect", &network.name, PROBE],
            )?;
            checks.expect(done.code == 0, || {
                format!("disconnect from {}: {}", network.name, done.stderr.trim())
            });
        }
        ip(&["netns", "del", PROBE])?;
    }

    // 8. network rm removes everything we created.
    for network in &networks {
        let done = exec(&ipvlan_bin(), &["network", "rm", &network.name])?;
        checks.expect(done.code == 0, || {
            format!("network rm {}: {}", network.name, done.stderr.trim())
        });
        let ours = network.parent_origin != ParentOrigin::Existing;
        checks.expect(!ours || !link_names()?.contains(&network.parent), || {
            format!(
                "network rm {} left its parent {}",
                network.name, network.parent
            )
        });
        if let ParentOrigin::VlanCreated { link, .. } = &network.parent_origin {
            // Never touch what we did not create: the link under the VLAN.
            checks.expect(link_names()?.contains(link), || {
                format!("network rm {} removed {link}, not ours", network.name)
            });
        }
        let hosts = state.hosts_path(&network.id);
        checks.expect(!hosts.exists(), || {
            format!(
                "network rm {} left its hosts file {}",
                network.name,
                hosts.display()
            )
        });
    }
    let left = state.networks().map_err(|e| e.to_string())?;
    checks.expect(left.is_empty() && left.damaged.is_empty(), || {
        format!(
            "after network rm: {} network records left, {} damaged",
            left.len(),
            left.damaged.len()
        )
    });
    for dir in ["endpoints", "ipam", "hosts/k"] {
        let entries = entry_names(&root.join(dir));
        checks.expect(entries.is_empty(), || {
            format!("{dir}/ holds {entries:?} after every network was removed")
        });
    }
    for master in &expect.masters {
        ip(&["link", "del", master])?;
    }
    // Nothing of ours left in the host: a parent restore made again for
    // a network it then rolled back would be named by no record.
    let links = link_names()?;
    checks.expect(links.iter().all(|name| name == "lo"), || {
        format!("links left after every network and master went: {links:?}")
    });
    Ok(checks)
}

/// Invariant 0: as the first lock after the boot leaves them (it writes
/// again what the commit log holds), no address is recorded for two
/// endpoints of a network. Read in a copy of the state directory, so that
/// `restore` still meets the store as the boot left it.
fn records_before_restore(root: &Path, checks: &mut Checks) -> Result<(), String> {
    let copy = root.with_file_name("state-before-restore");
    let _ = fs::remove_dir_all(&copy);
    let copied = Command::new("cp")
        .arg("-a")
        .arg(root)
        .arg(&copy)
        .status()
        .map_err(|e| format!("cp -a {}: {e}", root.display()))?;
    if !copied.success() {
        return Err(format!(
            "cp -a {} {}: {copied}",
            root.display(),
            copy.display()
        ));
    }
    let state = StateDir::open(&copy).map_err(|e| e.to_string())?;
    drop(
        state
            .lock()
            .map_err(|e| format!("the first lock after the boot: {e}"))?,
    );
    let networks = state.networks().map_err(|e| e.to_string())?;
    let mut recorded = 0;
    for network in &networks {
        let endpoints = state.endpoints_of(&network.id).map_err(|e| e.to_string())?;
        let mut holders: BTreeMap<std::net::IpAddr, &str> = BTreeMap::new();
        for endpoint in &endpoints {
            for address in endpoint.ipv4.iter().chain(endpoint.ipv6.iter()) {
                recorded += 1;
                if let Some(other) = holders.insert(address.addr(), &endpoint.id) {
                    checks.failures.push(format!(
                        "{}: {} is recorded for two endpoints, {other} and {}, as the boot left them",
                        network.name,
                        address.addr(),
                        endpoint.id
                    ));
                }
            }
        }
    }
    println!("PC-RECORDS before restore: {recorded} addresses recorded");
    let _ = fs::remove_dir_all(&copy);
    Ok(())
}

/// Invariant 4: no address leased twice, every lease owned by a recorded
/// endpoint of its network whose record names that address.
fn lease_checks(state: &StateDir, checks: &mut Checks) -> Result<(), String> {
    let networks = state.networks().map_err(|e| e.to_string())?;
    let mut owners_seen: BTreeMap<String, usize> = BTreeMap::new();
    for network in &networks {
        let leases = state.addresses(network).map_err(|e| e.to_string())?;
        let endpoints = state.endpoints_of(&network.id).map_err(|e| e.to_string())?;
        for (addr, owner) in &leases {
            let endpoint = endpoints.iter().find(|e| &e.id == owner);
            let named = endpoint.is_some_and(|e| {
                e.ipv4.map(|n| n.addr()) == Some(*addr) || e.ipv6.map(|n| n.addr()) == Some(*addr)
            });
            checks.expect(named, || {
                format!(
                    "{}: {addr} is leased to {owner}, not a recorded endpoint with that address",
                    network.name
                )
            });
            if addr.is_ipv4() {
                *owners_seen.entry(owner.clone()).or_default() += 1;
            }
        }
        let mut addresses = BTreeSet::new();
        for endpoint in &endpoints {
            if let Some(v4) = endpoint.ipv4 {
                checks.expect(addresses.insert(v4.addr()), || {
                    format!("{}: {} is recorded twice", network.name, v4.addr())
                });
            }
            // Address files are derived from the records (not synced,
            // rebuilt by restore): each recorded address has its file.
            for addr in endpoint.ipv4.iter().chain(endpoint.ipv6.iter()) {
                let leased = leases
                    .iter()
                    .any(|(a, owner)| *a == addr.addr() && *owner == endpoint.id);
                checks.expect(leased, || {
                    format!(
                        "{}: {} of endpoint {} has no address file naming it",
                        network.name,
                        addr.addr(),
                        endpoint.id
                    )
                });
            }
        }
        // `addresses` lists only files that name an owner: an empty or
        // unreadable one (what a power cut leaves of an unsynced file)
        // must be gone too.
        let files = address_file_count(state.root(), network);
        checks.expect(files == leases.len(), || {
            format!(
                "{}: {files} address files, {} of them naming an owner",
                network.name,
                leases.len()
            )
        });
    }
    for (owner, count) in owners_seen {
        checks.expect(count == 1, || {
            format!("endpoint {owner} leases {count} IPv4 addresses")
        });
    }
    Ok(())
}

/// Address files of `network` (every file in its subnet directories but
/// the cursor and temporaries), read or not.
fn address_file_count(root: &Path, network: &ipvlan::store::NetworkRecord) -> usize {
    let dir = root.join("ipam").join(&network.id);
    fs::read_dir(&dir)
        .map(|subnets| {
            subnets
                .flatten()
                .flat_map(|subnet| fs::read_dir(subnet.path()).into_iter().flatten())
                .flatten()
                .filter(|file| {
                    let name = file.file_name().to_string_lossy().into_owned();
                    name != "cursor" && !name.starts_with('.')
                })
                .count()
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn what_returned_must_be_durable() {
        let log = lines(
            "PC-CMD 1 START network create --subnet 10.88.1.0/24 -o parent=pcph1.7 pc1\n\
             PC-CMD 1 END 0\n\
             PC-CMD 2 START network connect pc1 c0\n\
             PC-CMD 2 END 0\n\
             PC-CMD 3 START run -d --net pc1 --name d1 sleep 100000\n\
             PC-CMD 3 END 0\n\
             PC-CMD 4 START rm -f d1\n\
             PC-CMD 4 END 0\n\
             PC-CMD 5 START network create --subnet 10.89.1.0/24 --internal pc1x\n\
             PC-CMD 5 END 0\n\
             PC-CMD 6 START network rm pc1x\n\
             PC-CMD 6 END 0\n\
             PC-CMD 7 START network disconnect pc1 c0\n\
             PC-CMD 7 END 1\n\
             PC-CMD 8 START network connect pc1 c8",
        );
        let expect = expectations(&parse_log(&log).unwrap());
        let pair = |n: &str, c: &str| (n.to_string(), c.to_string());
        assert_eq!(expect.networks["pc1"], Must::Exist);
        assert_eq!(expect.networks["pc1x"], Must::BeGone);
        assert_eq!(expect.endpoints[&pair("pc1", "c0")], Must::Exist);
        assert_eq!(expect.endpoints[&pair("pc1", "d1")], Must::BeGone);
        assert_eq!(expect.endpoints[&pair("pc1", "c8")], Must::Either);
        assert_eq!(
            expect.masters,
            BTreeSet::from(["pcph1".to_string()]),
            "the VLAN's master is brought up before restore"
        );
    }

    #[test]
    fn bad_log_lines_are_refused() {
        assert!(parse_log(&lines("PC-CMD 3 END 0")).is_err());
        assert!(parse_log(&lines("PC-CMD x START network ls")).is_err());
        assert!(parse_log(&lines("garbage")).is_err());
    }

    #[test]
    fn reads_released_endpoints() {
        let summary = "restore: 0 parents re-created, ...\n  \
                       endpoint released: pc1: /run/netns/c0\n  \
                       endpoint released: pc1: d3\n  link re-created: pc1: c9\n";
        assert_eq!(
            released(summary),
            BTreeSet::from([
                ("pc1".to_string(), "c0".to_string()),
                ("pc1".to_string(), "d3".to_string())
            ])
        );
    }

    #[test]
    fn options() {
        let args: Vec<String> = ["--load", "3", "--seed", "9", "--vlan", "12"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let parsed = Options::parse(&args).unwrap();
        let load = parsed.load.unwrap();
        assert_eq!((load.round, load.seed, load.vlan), (3, 9, Some(12)));
        assert!(Options::parse(&args[..4]).is_err(), "no parent kind");
    }
}
