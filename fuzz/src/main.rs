//! A small mutation fuzzer for ipvlan's parsers, std only.
//!
//! Each target is a function over bytes that must never panic. Inputs start from
//! the seed files in `fuzz/seeds/<target>/`, are mutated (bit flips, byte sets,
//! boundary values, truncation, splicing, token insertion), and run under
//! `catch_unwind`; the first panicking input of a target is saved to
//! `fuzz/artifacts/<target>/` and the run fails.
//!
//!     ipvlan-fuzz [--secs N | --total-secs N] [--iterations N] [--seed N] [TARGET]...
//!     ipvlan-fuzz --replay FILE TARGET

mod mutate;

use mutate::{mutate, Rng};
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::{Duration, Instant};

struct Target {
    name: &'static str,
    run: fn(&[u8]),
    /// Tokens worth inserting whole.
    dictionary: &'static [&'static [u8]],
    /// Applied to half of the mutated inputs: repairs the outer framing so the
    /// mutation reaches the inner structure instead of failing the first check.
    repair: Option<fn(&mut [u8])>,
}

/// Makes every netlink header's `nlmsg_len` fit the buffer: a message running
/// past the end is cut to what remains.
#[cfg(any(feature = "netlink", feature = "replies"))]
fn repair_netlink_lengths(data: &mut [u8]) {
    const HEADER_LEN: usize = 16;
    let mut offset = 0;
    while offset + HEADER_LEN <= data.len() {
        let field = offset..offset + 4;
        let declared =
            u32::from_ne_bytes(data[field.clone()].try_into().unwrap_or([0; 4])) as usize;
        let remaining = data.len() - offset;
        if declared < HEADER_LEN || declared > remaining {
            data[field].copy_from_slice(&(remaining as u32).to_ne_bytes());
            return;
        }
        offset += (declared + 3) & !3;
    }
}

#[cfg(feature = "netlink")]
fn netlink(data: &[u8]) {
    // Every outcome is fine except a panic: errors are the expected answer to garbage.
    let _ = ipvlan::rtnl::decode_all(data);
}

/// The readers the socket feeds each received datagram (ACKs of a batch,
/// dump parts, a single reply), fed the input twice, as two datagrams. The
/// port id and sequence number come from the first header, so mutated
/// inputs still reach the paths that match a reply to its request.
#[cfg(feature = "replies")]
fn replies(data: &[u8]) {
    use ipvlan::netlink::reply::{single_reply, AckReader, DumpReader};
    use ipvlan::netlink::{Error, ErrorKind, Header, MessageView};
    let (port, seq) = Header::parse(data).map_or((0, 0), |h| (h.pid, h.seq));
    let seqs: Vec<u32> = (0..3).map(|i| seq.wrapping_add(i)).collect();
    let mut acks = AckReader::new(port, seqs.clone());
    for _ in 0..2 {
        let _ = acks.feed(data);
    }
    let unanswered = acks.unanswered();
    assert!(unanswered.iter().all(|&i| i < seqs.len()), "{unanswered:?}");
    match acks.finish() {
        Some(results) => {
            assert_eq!(results.len(), seqs.len(), "one result per request");
            assert!(
                unanswered.is_empty(),
                "finished with {unanswered:?} unanswered"
            );
        }
        None => assert!(!unanswered.is_empty(), "unfinished, yet all answered"),
    }
    let mut dump = DumpReader::new(port, seq);
    for _ in 0..2 {
        // Like the socket's callers: decode each part; some callers fail.
        let _ = dump.feed(data, &mut |msg| {
            let _ = ipvlan::rtnl::link::from_dump(msg);
            let _ = ipvlan::rtnl::addr::from_dump(msg);
            if msg.payload().first() == Some(&0xee) {
                let what = "a part the caller refuses".into();
                return Err(Error::new(ErrorKind::InvalidInput { what }));
            }
            Ok(())
        });
    }
    let mut parse = |msg: &MessageView<'_>| ipvlan::rtnl::Link::parse(msg);
    let _ = single_reply(data, port, seq, &mut parse);
}

#[cfg(feature = "json")]
fn json(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(value) = ipvlan::json::parse(text) {
            // Whatever parses must print, and that output must parse back to itself.
            let compact = value.to_compact().expect("a parsed value writes");
            let again = ipvlan::json::parse(&compact).expect("compact output parses");
            assert_eq!(
                again.to_compact().expect("a parsed value writes"),
                compact,
                "compact round trip changed the value"
            );
            value.to_pretty().expect("a parsed value writes");
        }
    }
}

#[cfg(feature = "records")]
fn records(data: &[u8]) {
    use ipvlan::store::{EndpointRecord, NetworkRecord, Timestamp};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // What the store reads from disk: a record is refused or read whole, and
    // what is read is written back to JSON that reads as the same record.
    if let Ok(value) = ipvlan::json::parse(text) {
        if let Ok(network) = NetworkRecord::from_json(&value) {
            let _ = network.short_id();
            let again =
                ipvlan::json::parse(&network.to_json().to_pretty().expect("a read record writes"))
                    .expect("a written network record is JSON");
            let again = NetworkRecord::from_json(&again).expect("a written network record reads");
            assert_eq!(again, network, "network record round trip");
        }
        if let Ok(endpoint) = EndpointRecord::from_json(&value) {
            let again = ipvlan::json::parse(
                &endpoint
                    .to_json()
                    .to_compact()
                    .expect("a read record writes"),
            )
            .expect("a written endpoint record is JSON");
            let again = EndpointRecord::from_json(&again).expect("a written endpoint record reads");
            assert_eq!(again, endpoint, "endpoint record round trip");
        }
    }
    // Timestamps are read with byte offsets; a multi-byte character in a
    // damaged record must not split.
    for candidate in [text, text.trim_matches('"')] {
        if let Ok(stamp) = candidate.parse::<Timestamp>() {
            assert_eq!(stamp.to_string(), candidate, "timestamp round trip");
        }
    }
}

/// The arguments after the program name: the input split at NUL bytes (no
/// input: no argument), as the kernel hands them over: any bytes.
#[cfg(feature = "cli")]
fn argv_of(data: &[u8]) -> Vec<std::ffi::OsString> {
    use std::os::unix::ffi::OsStringExt;
    if data.is_empty() {
        return Vec::new();
    }
    data.split(|&b| b == 0)
        .map(|arg| std::ffi::OsString::from_vec(arg.to_vec()))
        .collect()
}

#[cfg(feature = "cli")]
fn cli(data: &[u8]) {
    use ipvlan::cli::command::{self, Command};
    use ipvlan::cli::Failure;
    let argv = argv_of(data);
    // Parsing has no side effects; the refusal is what `run` would print.
    match command::parse(&argv) {
        Ok(invocation) => {
            let _ = format!("{invocation:?}");
            match &invocation.command {
                Command::Help(topic) => {
                    let _ = ipvlan::cli::help::usage(*topic);
                }
                Command::Run(run) => assert!(!run.argv().is_empty(), "run without a command"),
                Command::Exec(exec) => assert!(!exec.command.is_empty(), "exec without a command"),
                _ => {}
            }
            assert_eq!(
                command::parse(&argv).ok(),
                Some(invocation),
                "parsing is deterministic"
            );
        }
        Err(error) => {
            let failure = Failure::from(error);
            let message = failure.to_string();
            assert!(message.starts_with("ipvlan: "), "{message:?}");
            let code = failure.exit_code();
            assert!(
                [
                    ipvlan::cli::EXIT_FAILED,
                    ipvlan::cli::EXIT_USAGE,
                    ipvlan::cli::EXIT_RUN_FAILED
                ]
                .contains(&code),
                "refused command line exits {code}"
            );
        }
    }
}

/// [`cni_config`] of the input, and of a well-formed config edited as the
/// input says ([`edited_config`]): byte mutations keep few inputs valid
/// JSON, so the config readers behind the decoder are reached this way.
#[cfg(feature = "cni")]
fn cni(data: &[u8]) {
    cni_config(data);
    if let Some(text) = edited_config(data) {
        cni_config(text.as_bytes());
    }
}

/// Values an edit puts in a config: the keys' likely kinds, edge values.
#[cfg(feature = "cni")]
const CNI_VALUES: &[&str] = &[
    r#""10.0.0.1""#,
    r#""10.0.0.0""#,
    r#""10.0.0.255""#,
    r#""10.0.0.0/30""#,
    r#""10.0.0.0/8""#,
    r#""10.0.0.0/024""#,
    r#""0.0.0.0/0""#,
    r#""fd00::/126""#,
    r#""fd00::1""#,
    r#""::ffff:10.0.0.1""#,
    r#""::/0""#,
    r#""eth0.4094""#,
    r#""eth0.0""#,
    r#""l3s""#,
    r#""vepa""#,
    r#""1.1.0""#,
    r#""0.3.1""#,
    r#""ipvlan""#,
    r#""host-local""#,
    r#""""#,
    "null",
    "true",
    "0",
    "-1",
    "65536",
    "4294967296",
    "1e308",
    "[]",
    "{}",
    r#"[[{"subnet": "10.1.0.0/24", "rangeStart": "10.1.0.9"}]]"#,
    r#"[{"dst": "0.0.0.0/0", "gw": "10.0.0.1"}]"#,
    r#"[{"containerID": "a", "ifname": "eth0"}]"#,
    r#"{"ips": [{"address": "10.0.0.2/30"}]}"#,
];

/// Keys an edit may add to an object.
#[cfg(feature = "cni")]
const CNI_KEYS: &[&str] = &[
    "subnet",
    "rangeStart",
    "rangeEnd",
    "gateway",
    "ranges",
    "ipRanges",
    "ips",
    "routes",
    "dst",
    "gw",
    "mtu",
    "master",
    "mode",
    "flag",
    "linkInContainer",
    "prevResult",
    "runtimeConfig",
    "dns",
    "ipam",
    "type",
    "cniVersion",
    "name",
    "cni.dev/valid-attachments",
    "interface",
    "address",
];

/// The richest seed with the edits `data` names, three bytes each: which
/// node (in document order), what to do (replace it with a value; in an
/// object, set a key to a value), and which value or key. `None` for no
/// edit.
#[cfg(feature = "cni")]
fn edited_config(data: &[u8]) -> Option<String> {
    use ipvlan::json::{self, Value};
    const BASE: &str = include_str!("../seeds/cni/ours-bounds.json");
    /// Applies `edit` to the `target`-th node below `value` (counting down
    /// `seen`); whether it was reached.
    fn at(value: &mut Value, target: usize, seen: &mut usize, edit: &dyn Fn(&mut Value)) -> bool {
        if *seen == target {
            edit(value);
            return true;
        }
        *seen += 1;
        match value {
            Value::Array(items) => items.iter_mut().any(|v| at(v, target, seen, edit)),
            Value::Object(members) => members.iter_mut().any(|(_, v)| at(v, target, seen, edit)),
            _ => false,
        }
    }
    if data.len() < 3 {
        return None;
    }
    let mut doc = json::parse(BASE).expect("the seed is JSON");
    for edit in data.chunks_exact(3).take(8) {
        let (node, action, pick) = (usize::from(edit[0]), edit[1], usize::from(edit[2]));
        let value = json::parse(CNI_VALUES[pick % CNI_VALUES.len()]).expect("a value is JSON");
        let key = CNI_KEYS[pick % CNI_KEYS.len()];
        at(
            &mut doc,
            node % 96,
            &mut 0,
            &|target: &mut Value| match (action % 2, target) {
                (1, Value::Object(members)) => match members.iter_mut().find(|(k, _)| k == key) {
                    Some((_, v)) => *v = value.clone(),
                    None => members.push((key.to_string(), value.clone())),
                },
                (_, target) => *target = value.clone(),
            },
        );
    }
    doc.to_compact().ok()
}

/// A network configuration as a runtime hands it over on stdin, read for
/// every verb: refused or read whole, a cached result it carries writes
/// and reads back as itself, and the ranges our IPAM would allocate from
/// lie in their subnets. `CNI_ARGS` is the input as text too.
#[cfg(feature = "cni")]
fn cni_config(data: &[u8]) {
    use ipvlan::cni::config::{self, NetConf};
    use ipvlan::cni::env::{CniArgs, Command};
    use ipvlan::cni::error::ErrorCode;
    use ipvlan::cni::result::CniResult;
    use ipvlan::cni::version::Version;
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = CniArgs::parse(text);
    }
    let Ok(doc) = config::decode(data) else {
        return;
    };
    let _ = config::requested_version(&doc);
    for command in [
        Command::Add,
        Command::Del,
        Command::Check,
        Command::Status,
        Command::Gc,
    ] {
        let Ok(conf) = NetConf::read(&doc, command) else {
            continue;
        };
        let _ = conf.serves_as_ipam();
        if let Some(result) = &conf.prev_result {
            let written = result.to_json(Version::NEWEST);
            let again = CniResult::read(&written, "prevResult", ErrorCode::InvalidConfig)
                .expect("a written result reads");
            assert_eq!(again.to_json(Version::NEWEST), written, "result round trip");
        }
        if let Ok(network) = ipvlan::cni::wire::lease_network(&conf) {
            for (subnet, start, end) in &network.bounds {
                assert!(
                    subnet.contains(start) && subnet.contains(end),
                    "bounds {start}-{end} outside {subnet}"
                );
                assert!(
                    network.subnets.iter().any(|(s, _)| s == subnet),
                    "bounds of a subnet not allocated from: {subnet}"
                );
            }
            for (subnet, gateway) in &network.subnets {
                assert!(
                    gateway.is_none_or(|g| subnet.contains(&g)),
                    "gateway {gateway:?} outside {subnet}"
                );
            }
        }
    }
}

/// Every target, with whether it is built in.
fn targets() -> Vec<(&'static str, Option<Target>)> {
    vec![
        (
            "netlink",
            #[cfg(feature = "netlink")]
            Some(Target {
                name: "netlink",
                run: netlink,
                dictionary: &[
                    b"\x10\x00\x00\x00",
                    b"\x14\x00\x00\x00",
                    b"\x00\x00\x00\x00",
                    b"\xff\xff\xff\xff",
                    b"\x04\x00",
                    b"\x08\x00",
                ],
                repair: Some(repair_netlink_lengths),
            }),
            #[cfg(not(feature = "netlink"))]
            None,
        ),
        (
            "replies",
            #[cfg(feature = "replies")]
            Some(Target {
                name: "replies",
                run: replies,
                dictionary: &[
                    b"\x02\x00", // NLMSG_ERROR
                    b"\x03\x00", // NLMSG_DONE
                    b"\x02\x00\x10\x00",
                    b"\x00\x01",         // NLM_F_CAPPED
                    b"\x00\x02",         // NLM_F_ACK_TLVS
                    b"\xea\xff\xff\xff", // -EINVAL
                    b"\x00\x00\x00\x00",
                    b"\x08\x00\x02\x00",
                ],
                repair: Some(repair_netlink_lengths),
            }),
            #[cfg(not(feature = "replies"))]
            None,
        ),
        (
            "json",
            #[cfg(feature = "json")]
            Some(Target {
                name: "json",
                run: json,
                dictionary: &[
                    b"null", b"true", b"false", b"\"", b"\\u", b"\\ud800", b"[", b"]", b"{", b"}",
                    b":", b",", b"1e999", b"-0", b"0.", b"\"\\",
                ],
                repair: None,
            }),
            #[cfg(not(feature = "json"))]
            None,
        ),
        (
            "records",
            #[cfg(feature = "records")]
            Some(Target {
                name: "records",
                run: records,
                dictionary: &[
                    b"\"version\":1",
                    b"null",
                    b"\"l3s\"",
                    b"\"vepa\"",
                    b"\"kind\":\"vlan\"",
                    b"\"vlan_id\":4095",
                    b"\"ip_range\":\"10.0.0.0/8\"",
                    b"\"mtu\":4294967296",
                    b"\"ifindex\":4294967296",
                    b"18446744073709551616",
                    b"-1",
                    b"1.5",
                    b"\"2024-02-30T00:00:00.000000000Z\"",
                    b"\"\xc3\xa9\"",
                    b"\"::ffff:1.2.3.4/128\"",
                ],
                repair: None,
            }),
            #[cfg(not(feature = "records"))]
            None,
        ),
        (
            "cli",
            #[cfg(feature = "cli")]
            Some(Target {
                name: "cli",
                run: cli,
                dictionary: &[
                    b"\0",
                    b"\0network\0",
                    b"\0create\0",
                    b"\0run\0",
                    b"\0exec\0",
                    b"\0rm\0",
                    b"\0--\0",
                    b"\0-o\0",
                    b"parent=eth0.4094",
                    b"ipvlan_mode=l3s",
                    b"ipvlan_flag=private",
                    b"mtu=65536",
                    b"--subnet=",
                    b"--gateway=",
                    b"--ip-range=",
                    b"--aux-address=a=",
                    b"--ip6=",
                    b"--net=",
                    b"--name=",
                    b"--state-dir",
                    b"-itd",
                    b"--help",
                    b"=",
                    b"::",
                    b"/64",
                    b"\xff",
                ],
                repair: None,
            }),
            #[cfg(not(feature = "cli"))]
            None,
        ),
        (
            "cni",
            #[cfg(feature = "cni")]
            Some(Target {
                name: "cni",
                run: cni,
                dictionary: &[
                    b"\"cniVersion\":\"1.1.0\"",
                    b"\"cniVersion\":\"0.3.1\"",
                    b"\"type\":\"ipvlan\"",
                    b"\"type\":\"host-local\"",
                    b"\"subnet\":\"10.0.0.0/30\"",
                    b"\"subnet\":\"fd00::/126\"",
                    b"\"rangeStart\":\"10.0.0.0\"",
                    b"\"rangeEnd\":\"10.0.0.3\"",
                    b"\"gateway\":\"",
                    b"\"ranges\":[[{",
                    b"\"ipRanges\":[[{",
                    b"\"runtimeConfig\":{",
                    b"\"ips\":[\"",
                    b"\"prevResult\":{",
                    b"\"routes\":[{\"dst\":\"",
                    b"\"interface\":",
                    b"\"mtu\":",
                    b"\"linkInContainer\":true",
                    b"\"master\":\"eth0.4094\"",
                    b"\"cni.dev/valid-attachments\":[",
                    b"IP=",
                    b";",
                    b"::ffff:10.0.0.1",
                    b"/024",
                    b"4294967296",
                ],
                repair: None,
            }),
            #[cfg(not(feature = "cni"))]
            None,
        ),
    ]
}

struct Options {
    duration: Duration,
    /// `--total-secs`: shared evenly by the targets run (CI's fixed budget,
    /// whatever the number of targets); overrides `duration`.
    total: Option<Duration>,
    iterations: Option<u64>,
    seed: u64,
    names: Vec<String>,
    replay: Option<PathBuf>,
    /// Where seeds are read (`<dir>/<target>/*`) and crashes saved.
    seeds_dir: PathBuf,
    artifacts_dir: PathBuf,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        duration: Duration::from_secs(10),
        total: None,
        iterations: None,
        seed: 0,
        names: Vec::new(),
        replay: None,
        seeds_dir: fuzz_dir().join("seeds"),
        artifacts_dir: fuzz_dir().join("artifacts"),
    };
    let mut args = std::env::args().skip(1);
    let number = |flag: &str, value: Option<String>| -> Result<u64, String> {
        value
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{flag} needs a number"))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--secs" => options.duration = Duration::from_secs(number("--secs", args.next())?),
            "--total-secs" => {
                options.total = Some(Duration::from_secs(number("--total-secs", args.next())?))
            }
            "--iterations" => options.iterations = Some(number("--iterations", args.next())?),
            "--seed" => options.seed = number("--seed", args.next())?,
            "--replay" => options.replay = Some(args.next().ok_or("--replay needs a file")?.into()),
            flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
            name => options.names.push(name.to_string()),
        }
    }
    Ok(options)
}

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn main() -> ExitCode {
    let mut options = match parse_args() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("ipvlan-fuzz: {error}");
            return ExitCode::from(2);
        }
    };
    let all = targets();
    for name in &options.names {
        if !all.iter().any(|(known, _)| known == name) {
            let known: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
            eprintln!(
                "ipvlan-fuzz: unknown target {name:?} (targets: {})",
                known.join(", ")
            );
            return ExitCode::from(2);
        }
    }
    if let Some(total) = options.total {
        let running = all
            .iter()
            .filter(|(name, target)| {
                target.is_some()
                    && (options.names.is_empty() || options.names.iter().any(|n| n == name))
            })
            .count();
        options.duration = total / running.max(1) as u32;
        println!(
            "ipvlan-fuzz: {} s for {running} targets, {:.1} s each",
            total.as_secs(),
            options.duration.as_secs_f64()
        );
    }
    install_quiet_panic_hook();
    let mut failed = false;
    for (name, target) in all {
        if !options.names.is_empty() && !options.names.iter().any(|n| n == name) {
            continue;
        }
        let Some(target) = target else {
            println!("{name}: not built (its library entry point is not available yet; feature `{name}` is off)");
            continue;
        };
        let result = match &options.replay {
            Some(file) => replay(&target, file),
            None => fuzz(&target, &options),
        };
        if let Err(error) = result {
            println!("{name}: FAILED: {error}");
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The message of the last panic, captured by the hook instead of printed.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

fn install_quiet_panic_hook() {
    panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".into());
        if let Ok(mut slot) = LAST_PANIC.lock() {
            *slot = Some(format!("{message}{location}"));
        }
    }));
}

/// Runs one input; `Err` holds the panic message.
fn execute(target: &Target, input: &[u8]) -> Result<(), String> {
    panic::catch_unwind(AssertUnwindSafe(|| (target.run)(input))).map_err(|_| {
        LAST_PANIC
            .lock()
            .ok()
            .and_then(|mut slot| slot.take())
            .unwrap_or_else(|| "panic".into())
    })
}

fn load_seeds(seeds_dir: &Path, name: &str) -> Vec<Vec<u8>> {
    let dir = seeds_dir.join(name);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    paths.sort();
    let mut seeds: Vec<Vec<u8>> = paths.iter().filter_map(|p| std::fs::read(p).ok()).collect();
    if seeds.is_empty() {
        seeds.push(Vec::new());
    }
    seeds
}

fn fuzz(target: &Target, options: &Options) -> Result<(), String> {
    let seeds = load_seeds(&options.seeds_dir, target.name);
    let crash = |input: &[u8], message: String| {
        save_crash(&options.artifacts_dir, target.name, input, &message)
    };
    for seed in &seeds {
        execute(target, seed).map_err(|message| crash(seed, message))?;
    }
    let start = Instant::now();
    // --seed N replays a run; otherwise each run explores from a new point.
    let rng_seed = if options.seed != 0 {
        options.seed
    } else {
        seed_from_clock()
    };
    let mut rng = Rng::new(rng_seed);
    let mut executions: u64 = 0;
    let mut input = Vec::new();
    loop {
        if options
            .iterations
            .map_or(start.elapsed() >= options.duration, |max| executions >= max)
        {
            break;
        }
        input.clear();
        input.extend_from_slice(&seeds[rng.below(seeds.len())]);
        mutate(&mut rng, &mut input, &seeds, target.dictionary);
        if let Some(repair) = target.repair.filter(|_| rng.chance(2)) {
            repair(&mut input);
        }
        execute(target, &input).map_err(|message| crash(&input, message))?;
        executions += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{}: {executions} inputs in {secs:.1} s ({:.0}/s) from {} seeds (--seed {rng_seed}), no panic",
        target.name,
        executions as f64 / secs.max(1e-9),
        seeds.len()
    );
    Ok(())
}

fn seed_from_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// Writes the crashing input under artifacts/ and returns the error to report.
fn save_crash(artifacts_dir: &Path, name: &str, input: &[u8], message: &str) -> String {
    let dir = artifacts_dir.join(name);
    let path = dir.join(format!("crash-{:016x}", fnv1a(input)));
    let saved = std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&path, input));
    match saved {
        Ok(()) => format!(
            "panic: {message}\n  input ({} bytes) saved to {}\n  reproduce: cargo run -p ipvlan-fuzz --profile fuzz -- --replay {} {name}",
            input.len(),
            path.display(),
            path.display()
        ),
        Err(error) => format!("panic: {message}\n  input {input:02x?} (could not save: {error})"),
    }
}

fn replay(target: &Target, file: &Path) -> Result<(), String> {
    let input = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    execute(target, &input).map_err(|message| format!("panic: {message}"))?;
    println!("{}: {} ran without panic", target.name, file.display());
    Ok(())
}

/// FNV-1a, to name artifacts by content.
fn fnv1a(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "netlink")]
    #[test]
    fn netlink_repair_fits_lengths_to_the_buffer() {
        let mut two = vec![0u8; 40];
        two[..4].copy_from_slice(&16u32.to_ne_bytes());
        two[16..20].copy_from_slice(&999u32.to_ne_bytes());
        repair_netlink_lengths(&mut two);
        assert_eq!(
            u32::from_ne_bytes(two[..4].try_into().unwrap()),
            16,
            "a fitting header stays"
        );
        assert_eq!(
            u32::from_ne_bytes(two[16..20].try_into().unwrap()),
            24,
            "an overrunning one is cut"
        );
        let mut short = vec![0xffu8; 10];
        repair_netlink_lengths(&mut short);
        assert_eq!(short, vec![0xff; 10], "shorter than a header: untouched");
    }

    /// A seed the target rejects at the first check would make the fuzzer
    /// mutate garbage: every records seed reads as a record.
    #[cfg(feature = "records")]
    #[test]
    fn records_seeds_are_records() {
        use ipvlan::store::{EndpointRecord, NetworkRecord};
        let seeds = load_seeds(&fuzz_dir().join("seeds"), "records");
        assert!(seeds.len() >= 4);
        for seed in &seeds {
            let value = ipvlan::json::parse(std::str::from_utf8(seed).unwrap()).unwrap();
            let network = NetworkRecord::from_json(&value).map(drop);
            let endpoint = EndpointRecord::from_json(&value).map(drop);
            assert!(
                network.is_ok() || endpoint.is_ok(),
                "{network:?} {endpoint:?}"
            );
            records(seed);
        }
    }

    /// The edited configs reach the readers: most decode, and a good share
    /// read for ADD (the rest are refusals worth reaching too).
    #[cfg(feature = "cni")]
    #[test]
    fn edited_configs_reach_the_config_readers() {
        use ipvlan::cni::config::{self, NetConf};
        use ipvlan::cni::env::Command;
        let mut rng = mutate::Rng::new(7);
        let (mut decoded, mut read) = (0, 0);
        for _ in 0..2000 {
            let len = 3 * (1 + rng.below(4));
            let data: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
            let text = edited_config(&data).expect("three bytes or more edit");
            if let Ok(doc) = config::decode(text.as_bytes()) {
                decoded += 1;
                read += usize::from(NetConf::read(&doc, Command::Add).is_ok());
            }
        }
        assert_eq!(decoded, 2000);
        assert!(read >= 200, "{read} of 2000 read for ADD");
        eprintln!("edited configs read for ADD: {read} of 2000");
    }

    #[cfg(feature = "cni")]
    #[test]
    fn cni_seeds_are_configs_a_verb_reads() {
        use ipvlan::cni::config::{self, NetConf};
        use ipvlan::cni::env::{CniArgs, Command};
        let seeds = load_seeds(&fuzz_dir().join("seeds"), "cni");
        assert!(seeds.len() >= 5);
        for seed in &seeds {
            match config::decode(seed) {
                Ok(doc) => {
                    let read = [Command::Add, Command::Gc]
                        .into_iter()
                        .map(|command| NetConf::read(&doc, command).map(drop))
                        .collect::<Vec<_>>();
                    assert!(read.iter().any(Result::is_ok), "{read:?}");
                }
                Err(_) => {
                    let args = CniArgs::parse(std::str::from_utf8(seed).unwrap());
                    assert!(args.is_ok_and(|args| args.ips.len() == 2));
                }
            }
            cni(seed);
        }
    }

    #[cfg(feature = "cli")]
    #[test]
    fn cli_seeds_are_command_lines_that_parse() {
        let seeds = load_seeds(&fuzz_dir().join("seeds"), "cli");
        assert!(seeds.len() >= 5);
        for seed in &seeds {
            let argv = argv_of(seed);
            assert!(!argv.is_empty(), "{argv:?}");
            let parsed = ipvlan::cli::command::parse(&argv);
            assert!(parsed.is_ok(), "{argv:?}: {parsed:?}");
            cli(seed);
        }
        assert!(argv_of(b"").is_empty());
        assert_eq!(argv_of(b"a\0\0b"), ["a", "", "b"]);
    }

    #[cfg(feature = "replies")]
    #[test]
    fn replies_target_runs_its_seeds() {
        for seed in load_seeds(&fuzz_dir().join("seeds"), "replies") {
            replies(&seed);
        }
        let acks = std::fs::read(fuzz_dir().join("seeds/replies/ack-batch.bin")).unwrap();
        let mut reader = ipvlan::netlink::reply::AckReader::new(4242, vec![100, 101, 102]);
        assert!(reader.feed(&acks).unwrap(), "the seed answers all three");
        let results = reader.finish().unwrap();
        let refused = results[1].as_ref().unwrap_err();
        assert_eq!(refused.ext_ack(), Some("Link already exists"));
    }

    fn panics_on_long_input(data: &[u8]) {
        assert!(data.len() <= 12, "input longer than 12 bytes");
    }

    #[test]
    fn a_panicking_input_is_found_and_saved() {
        install_quiet_panic_hook();
        let scratch = std::env::temp_dir().join(format!("ipvlan-fuzz-test-{}", std::process::id()));
        let seeds = scratch.join("seeds").join("long");
        std::fs::create_dir_all(&seeds).unwrap();
        std::fs::write(seeds.join("one"), b"0123456789").unwrap();
        let target = Target {
            name: "long",
            run: panics_on_long_input,
            dictionary: &[b"abcd"],
            repair: None,
        };
        let options = Options {
            duration: Duration::from_secs(10),
            total: None,
            iterations: Some(100_000),
            seed: 42,
            names: Vec::new(),
            replay: None,
            seeds_dir: scratch.join("seeds"),
            artifacts_dir: scratch.join("artifacts"),
        };
        let error = fuzz(&target, &options).unwrap_err();
        assert!(error.contains("input longer than 12 bytes"), "{error}");
        let saved: Vec<_> = std::fs::read_dir(scratch.join("artifacts/long"))
            .unwrap()
            .collect();
        assert_eq!(saved.len(), 1);
        let input = std::fs::read(saved[0].as_ref().unwrap().path()).unwrap();
        assert!(input.len() > 12);
        assert!(replay(&target, &saved[0].as_ref().unwrap().path()).is_err());
        std::fs::remove_dir_all(&scratch).unwrap();
    }
}
