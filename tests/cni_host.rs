//! The built binary as a CNI plugin, driven as a runtime drives it: the
//! `CNI_*` environment, the config on stdin, the answer read from stdout
//! and compared as JSON. Nothing here touches the kernel: the verbs that
//! do are VM tests. A tiny shell script in a scratch `CNI_PATH` stands in
//! for a delegated IPAM plugin.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{fake_plugin, TempDir};
use ipvlan::cni::delegate;
use ipvlan::cni::env::Command as Verb;
use ipvlan::cni::error::ErrorCode;
use ipvlan::cni::version::Version;
use ipvlan::json::{self, Value};

const BIN: &str = env!("CARGO_BIN_EXE_ipvlan");

/// What one run printed and how it ended.
struct Answer {
    exit: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Answer {
    fn json(&self) -> Value {
        json::parse(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }

    /// Asserts a spec error object: exit 1, `code`, `msg`, and the
    /// `cniVersion` it is written in.
    fn assert_error(&self, code: u64, msg: &str, version: &str) -> Value {
        let value = self.json();
        assert_eq!(self.exit, Some(1), "{}", self.stdout);
        assert_eq!(
            value.get("code").and_then(Value::as_u64),
            Some(code),
            "{}",
            self.stdout
        );
        assert_eq!(
            value.get("msg").and_then(Value::as_str),
            Some(msg),
            "{}",
            self.stdout
        );
        assert_eq!(
            value.get("cniVersion").and_then(Value::as_str),
            Some(version),
            "{}",
            self.stdout
        );
        value
    }
}

/// The environment of an ADD, as containerd sets it.
fn add_env() -> Vec<(String, String)> {
    [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c0ffee"),
        ("CNI_NETNS", "/run/netns/cni-host-test"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/nonexistent/cni/bin"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn set(env: &[(String, String)], changes: &[(&str, Option<&str>)]) -> Vec<(String, String)> {
    let mut env = env.to_vec();
    for (key, value) in changes {
        env.retain(|(k, _)| k != key);
        if let Some(value) = value {
            env.push((key.to_string(), value.to_string()));
        }
    }
    env
}

/// Runs the binary with exactly `env` (nothing inherited) and `stdin`.
fn plugin(env: &[(String, String)], stdin: &str) -> Answer {
    plugin_at(Path::new(BIN), env, stdin)
}

/// [`plugin`], the binary run as `program` (a link to it, say).
fn plugin_at(program: &Path, env: &[(String, String)], stdin: &str) -> Answer {
    let mut child = Command::new(program)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs the binary");
    let mut input = child.stdin.take().unwrap();
    // A plugin that exits without reading all of stdin breaks the pipe.
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    let output = child.wait_with_output().unwrap();
    Answer {
        exit: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

const CONF: &str = r#"{"cniVersion": "1.0.0", "name": "hostnet", "type": "ipvlan", "master": "eth0",
    "ipam": {"type": "host-local", "subnet": "10.1.2.0/24"}}"#;

#[test]
fn version_lists_what_we_speak_without_reading_stdin() {
    let mut child = Command::new(BIN)
        .env_clear()
        .env("CNI_COMMAND", "VERSION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // stdin stays open: a plugin that waited for it would never finish.
    let _open = child.stdin.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("VERSION waited for stdin");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    assert!(status.success());
    let expected = json::parse(
        r#"{"cniVersion": "1.1.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]}"#,
    )
    .unwrap();
    assert_eq!(json::parse(&stdout).unwrap(), expected);
}

#[test]
fn without_cni_command_the_command_line_answers() {
    for env in [vec![], vec![("CNI_COMMAND".to_string(), String::new())]] {
        let answer = plugin(&env, "");
        assert_eq!(answer.exit, Some(0), "{}", answer.stderr);
        assert!(
            answer.stdout.contains("Usage:  ipvlan [OPTIONS] COMMAND"),
            "{:?}",
            answer.stdout
        );
    }
    // With it, argv is not looked at.
    let answer = Command::new(BIN)
        .arg("--help")
        .env_clear()
        .env("CNI_COMMAND", "VERSION")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&answer.stdout).contains("supportedVersions"));
}

#[test]
fn environment_errors_are_code_4_in_our_newest_version() {
    plugin(&set(&add_env(), &[("CNI_COMMAND", Some("FROB"))]), CONF).assert_error(
        4,
        "unknown CNI_COMMAND: FROB",
        "1.1.0",
    );
    plugin(&set(&add_env(), &[("CNI_NETNS", None)]), CONF).assert_error(
        4,
        "required env variables [CNI_NETNS] missing",
        "1.1.0",
    );
    plugin(
        &set(
            &add_env(),
            &[("CNI_CONTAINERID", None), ("CNI_IFNAME", None)],
        ),
        CONF,
    )
    .assert_error(
        4,
        "required env variables [CNI_CONTAINERID,CNI_IFNAME] missing",
        "1.1.0",
    );
    plugin(
        &set(&add_env(), &[("CNI_IFNAME", Some("abcdefghijklmnop"))]),
        CONF,
    )
    .assert_error(4, "interface name is too long: at most 15 bytes", "1.1.0");
    plugin(&set(&add_env(), &[("CNI_CONTAINERID", Some("c 1"))]), CONF).assert_error(
        4,
        "invalid characters in containerID",
        "1.1.0",
    );
    plugin(&set(&add_env(), &[("CNI_PATH", None)]), CONF).assert_error(
        4,
        "required env variables [CNI_PATH] missing",
        "1.1.0",
    );
}

#[test]
fn malformed_or_empty_stdin_is_code_6_for_add_and_del() {
    for command in ["ADD", "DEL"] {
        let env = set(&add_env(), &[("CNI_COMMAND", Some(command))]);
        let broken = plugin(&env, r#"{"cniVersion":"1.0.0","#).assert_error(
            6,
            "the network configuration is not valid JSON",
            "1.1.0",
        );
        assert!(broken.get("details").is_some());
        plugin(&env, "").assert_error(6, "no network configuration on stdin", "1.1.0");
    }
}

#[test]
fn versions_we_do_not_speak_are_code_1() {
    for command in ["ADD", "DEL"] {
        let env = set(&add_env(), &[("CNI_COMMAND", Some(command))]);
        let error = plugin(&env, &CONF.replace("1.0.0", "9.9.9")).assert_error(
            1,
            "incompatible CNI versions",
            "1.1.0",
        );
        assert_eq!(
            error.get("details").and_then(Value::as_str),
            Some(r#"config is "9.9.9", plugin supports ["0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]"#)
        );
        let missing = CONF.replace(r#""cniVersion": "1.0.0", "#, "");
        plugin(&env, &missing).assert_error(1, "incompatible CNI versions", "1.1.0");
    }
    let check = set(&add_env(), &[("CNI_COMMAND", Some("CHECK"))]);
    plugin(&check, &CONF.replace("1.0.0", "0.3.1")).assert_error(
        1,
        "config version does not allow CHECK",
        "0.3.1",
    );
    let status = set(&add_env(), &[("CNI_COMMAND", Some("STATUS"))]);
    plugin(&status, CONF).assert_error(1, "config version does not allow STATUS", "1.0.0");
}

#[test]
fn config_errors_are_code_7_in_the_requests_version() {
    plugin(&add_env(), &CONF.replace(r#""name": "hostnet", "#, "")).assert_error(
        7,
        "missing network name",
        "1.0.0",
    );
    plugin(&add_env(), &CONF.replace("hostnet", "host/net")).assert_error(
        7,
        "invalid characters found in network name",
        "1.0.0",
    );
    let mode = CONF.replace(r#""master": "eth0""#, r#""master": "eth0", "mode": "l4""#);
    plugin(&add_env(), &mode.replace("1.0.0", "0.4.0")).assert_error(
        7,
        r#"unknown ipvlan mode: "l4" (use l2, l3 or l3s)"#,
        "0.4.0",
    );
    // DEL does not need the link keys: a misspelt mode is no reason to
    // keep an attachment. With a store of its own, it succeeds: nothing
    // was added (before, this read the default store and passed on any
    // failure but code 7).
    let dir = TempDir::new("cni-del-mode");
    let del_env = set(
        &add_env(),
        &[
            ("CNI_COMMAND", Some("DEL")),
            (
                "IPVLAN_STATE_DIR",
                Some(dir.path().join("state").to_str().unwrap()),
            ),
        ],
    );
    // Our IPAM: host-local's DEL would be run, and CNI_PATH has none.
    let del = plugin(&del_env, &mode.replace("host-local", "ipvlan"));
    assert_eq!(del.exit, Some(0), "{}{}", del.stdout, del.stderr);
    // A name longer than a record's: ADD refuses it (code 7), so nothing
    // was ever added under it, and its DEL succeeds (it was code 7 too,
    // for good).
    let dir = TempDir::new("cni-long-name");
    let state = dir.path().join("state");
    let long = format!(
        r#"{{"cniVersion": "1.0.0", "name": "{}", "type": "ipvlan", "master": "eth0",
            "ipam": {{"type": "ipvlan", "subnet": "10.1.2.0/24"}}}}"#,
        "n".repeat(70)
    );
    let env = |command: &str| {
        set(
            &add_env(),
            &[
                ("CNI_COMMAND", Some(command)),
                ("IPVLAN_STATE_DIR", Some(state.to_str().unwrap())),
            ],
        )
    };
    plugin(&env("ADD"), &long).assert_error(
        7,
        "network name is 70 bytes long: at most 64 are allowed (it names the network's record)",
        "1.0.0",
    );
    let answer = plugin(&env("DEL"), &long);
    assert_eq!(answer.exit, Some(0), "{}{}", answer.stdout, answer.stderr);
    // A subnet with a leading zero (`010` is 8 to `inet_aton`, 10 to
    // others), a requested address whose prefix is not one: refused, as
    // the reference's readers refuse them; before, taken (10.9.0.0/24; the
    // prefix dropped unread).
    let ipam = |ipam: &str| {
        format!(
            r#"{{"cniVersion": "1.0.0", "name": "zeros", "type": "ipvlan", "master": "eth0",
                "ipam": {{"type": "ipvlan", {ipam}}}}}"#
        )
    };
    plugin(&env("ADD"), &ipam(r#""subnet": "010.9.0.0/24""#)).assert_error(
        7,
        r#"ipam.subnet "010.9.0.0/24" is not an address with a prefix length (like 10.1.2.0/24)"#,
        "1.0.0",
    );
    for wanted in ["10.9.0.9/garbage", "10.9.0.9/", "10.9.0.9/024"] {
        let conf = ipam(r#""subnet": "10.9.0.0/24""#).replace(
            r#""type": "ipvlan", "master""#,
            &format!(r#""type": "ipvlan", "runtimeConfig": {{"ips": ["{wanted}"]}}, "master""#),
        );
        plugin(&env("ADD"), &conf).assert_error(
            7,
            &format!(r#"runtimeConfig.ips holds "{wanted}", not an IP address"#),
            "1.0.0",
        );
    }
    assert!(
        ipvlan::store::StateDir::open(&state)
            .unwrap()
            .networks()
            .unwrap()
            .is_empty(),
        "nothing made"
    );
}

#[test]
fn verbs_reach_the_driver_and_a_bad_namespace_makes_nothing() {
    // The kernel work is the VM's (tests/cni_vm.rs); here what happens
    // before and without it, on a scratch state directory.
    let dir = TempDir::new("cni-verbs");
    let state = dir.path().join("state");
    let gone = dir.path().join("no-such-netns");
    let env = set(
        &add_env(),
        &[
            ("IPVLAN_STATE_DIR", Some(state.to_str().unwrap())),
            ("CNI_NETNS", Some(gone.to_str().unwrap())),
        ],
    );
    let ours = CONF.replace("host-local", "ipvlan");
    let error = plugin(&env, &ours).json();
    assert_eq!(
        error.get("code").and_then(Value::as_u64),
        Some(999),
        "{error:?}"
    );
    let msg = error.get("msg").and_then(Value::as_str).unwrap();
    assert!(
        msg.starts_with(&format!("opening network namespace {}", gone.display())),
        "{msg}"
    );
    // Not even the network record: the namespace is opened first.
    let records = |dir: &str| -> Vec<String> {
        match std::fs::read_dir(state.join(dir)) {
            Ok(entries) => entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect(),
            Err(_) => Vec::new(),
        }
    };
    assert_eq!(records("networks"), Vec::<String>::new());
    assert_eq!(records("names"), Vec::<String>::new());

    // DEL of what never was, with its namespace gone: success, silent,
    // twice.
    let del = set(&env, &[("CNI_COMMAND", Some("DEL"))]);
    for _ in 0..2 {
        let answer = plugin(&del, &ours);
        assert_eq!(
            (answer.exit, answer.stdout.as_str()),
            (Some(0), ""),
            "{}",
            answer.stderr
        );
    }
    // CHECK of what never was: 999, saying so.
    let prev = r#", "prevResult": {"interfaces": [{"name": "eth0"}], "ips": [{"address": "10.1.2.2/24", "interface": 0}]}}"#;
    let check = set(&env, &[("CNI_COMMAND", Some("CHECK"))]);
    let with_prev = format!("{}{prev}", ours.trim_end().strip_suffix('}').unwrap());
    plugin(&check, &with_prev).assert_error(999, "network hostnet does not exist", "1.0.0");
    // GC with no attachment recorded, and STATUS of our IPAM: success.
    let v110 = ours.replace("1.0.0", "1.1.0");
    for command in ["GC", "STATUS"] {
        let vars = vec![
            ("CNI_COMMAND".to_string(), command.to_string()),
            ("CNI_PATH".to_string(), "/nonexistent".to_string()),
            ("IPVLAN_STATE_DIR".to_string(), state.display().to_string()),
        ];
        let answer = plugin(&vars, &v110);
        assert_eq!(
            (answer.exit, answer.stdout.as_str()),
            (Some(0), ""),
            "{command}: {}",
            answer.stderr
        );
    }
}

/// A named network namespace (`ip netns add cni-host-TAG-PID`), deleted
/// when dropped.
struct Ns(String);

impl Ns {
    fn add(tag: &str) -> Ns {
        let ns = Ns(format!("cni-host-{tag}-{}", std::process::id()));
        let made = Command::new("ip")
            .args(["netns", "add", &ns.0])
            .status()
            .unwrap();
        assert!(made.success());
        ns
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

/// The names of the networks in the state directory `state`.
fn network_names(state: &Path) -> Vec<String> {
    let store = ipvlan::store::StateDir::open(state).unwrap();
    store
        .networks()
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect()
}

/// [`add_env`] for `command` of `container`, on the state directory `state`.
fn env_in(state: &Path, command: &str, container: &str) -> Vec<(String, String)> {
    set(
        &add_env(),
        &[
            ("CNI_COMMAND", Some(command)),
            ("CNI_CONTAINERID", Some(container)),
            ("IPVLAN_STATE_DIR", Some(state.to_str().unwrap())),
        ],
    )
}

/// The config the reference `macvlan` plugin gets, with our binary as
/// its IPAM: `mode` is macvlan's, not an ipvlan mode.
fn macvlan_conf(name: &str, ipam: &str) -> String {
    format!(
        r#"{{"cniVersion": "1.0.0", "name": "{name}", "type": "macvlan", "master": "eth9",
            "mode": "bridge", "ipam": {{"type": "ipvlan", {ipam}}}}}"#
    )
}

#[test]
fn a_resolv_conf_is_read_through_its_link_as_go_reads_it_and_never_from_a_fifo() {
    let dir = TempDir::new("cni-resolv");
    let state = dir.path().join("state");
    let env = |container: &str| {
        set(
            &add_env(),
            &[
                ("CNI_CONTAINERID", Some(container)),
                ("CNI_NETNS", Some("/run/netns/no-such-namespace")),
                ("IPVLAN_STATE_DIR", Some(state.to_str().unwrap())),
            ],
        )
    };
    let conf_with = |path: &Path| {
        macvlan_conf(
            "resolv",
            &format!(
                r#""subnet": "10.9.0.0/24", "resolvConf": "{}""#,
                path.display()
            ),
        )
    };
    // A resolver's file is usually a link; a byte that is not UTF-8 (a
    // Latin-1 comment, a search domain) is read as Go writes it.
    let real = dir.path().join("stub-resolv.conf");
    std::fs::write(
        &real,
        b"# caf\xe9\nnameserver 10.9.0.53\nsearch ex\xe9.org\n".as_slice(),
    )
    .unwrap();
    let link = dir.path().join("resolv.conf");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let answer = plugin(&env("c1"), &conf_with(&link));
    assert_eq!(answer.exit, Some(0), "{} {}", answer.stdout, answer.stderr);
    assert_eq!(
        answer.json().get("dns").unwrap(),
        &json::parse(r#"{"nameservers": ["10.9.0.53"], "search": ["ex\ufffd.org"]}"#).unwrap()
    );
    // A FIFO in its place is refused at once, and nothing is leased; a
    // writer opens it after a while should the plugin wait for one (it
    // then reads nothing and the ADD passes, which the test refuses).
    let fifo = dir.path().join("fifo");
    let c_fifo = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) }, 0);
    let unblock = fifo.clone();
    let (done, finished) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if finished
            .recv_timeout(std::time::Duration::from_secs(20))
            .is_err()
        {
            let _ = std::fs::OpenOptions::new().write(true).open(&unblock);
        }
    });
    let (_, leases_before) = lease_records(&state, "resolv");
    let answer = plugin(&env("c2"), &conf_with(&fifo));
    let _ = done.send(());
    watchdog.join().unwrap();
    assert_ne!(answer.exit, Some(0), "{}", answer.stdout);
    assert!(
        answer.stdout.contains("not a regular file"),
        "{}",
        answer.stdout
    );
    assert_eq!(lease_records(&state, "resolv").1, leases_before);
}

/// The lease-only records of network `name` in `state`: (endpoint id,
/// netns), and the leases (address, owner), sorted.
fn lease_records(state: &Path, name: &str) -> (Vec<String>, Vec<(String, String)>) {
    let store = ipvlan::store::StateDir::open(state).unwrap();
    let Some(network) = store.network_by_name(name) else {
        common::assert_no_network_directory_without_its_record(state);
        return (Vec::new(), Vec::new());
    };
    let mut ids: Vec<String> = store
        .endpoints_of(&network.id)
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.id)
        .collect();
    ids.sort();
    let mut leases: Vec<(String, String)> = store
        .addresses(&network)
        .unwrap()
        .into_iter()
        .map(|(a, o)| (a.to_string(), o))
        .collect();
    leases.sort();
    (ids, leases)
}

#[test]
fn as_another_plugins_ipam_it_leases_from_our_store_within_the_range_bounds() {
    // Before this build: 999 ("serving as the IPAM plugin of the
    // "macvlan" plugin is not yet implemented"), and code 2 for
    // rangeStart/rangeEnd.
    let dir = TempDir::new("cni-lease");
    let state = dir.path().join("state");
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(
        &resolv,
        "# ours\nnameserver 10.9.0.53\nsearch example.org corp.example\noptions ndots:2\n",
    )
    .unwrap();
    let conf = macvlan_conf(
        "leases",
        &format!(
            r#""subnet": "10.9.0.0/24", "rangeStart": "10.9.0.10", "rangeEnd": "10.9.0.13",
               "routes": [{{"dst": "0.0.0.0/0"}}], "resolvConf": "{}""#,
            resolv.display()
        ),
    );
    // The namespace the plugin made its link in: this process's, which
    // lives as long as the test (meant: `CNI_NETNS_OVERRIDE`).
    let live = format!("/proc/{}/ns/net", std::process::id());
    let env_of = |verb: &str, container: &str, netns: &str| {
        set(
            &add_env(),
            &[
                ("CNI_COMMAND", Some(verb)),
                ("CNI_CONTAINERID", Some(container)),
                ("CNI_NETNS", Some(netns)),
                ("CNI_NETNS_OVERRIDE", Some("1")),
                ("IPVLAN_STATE_DIR", Some(state.to_str().unwrap())),
            ],
        )
    };
    let add = |container: &str, netns: &str| plugin(&env_of("ADD", container, netns), &conf);

    // An IPAM result: addresses with their gateway, the routes, the DNS of
    // resolvConf; no interface.
    let first = add("c1", &live);
    assert_eq!(first.exit, Some(0), "{} {}", first.stdout, first.stderr);
    assert_eq!(
        first.json(),
        json::parse(
            r#"{"cniVersion": "1.0.0",
                "ips": [{"address": "10.9.0.10/24", "gateway": "10.9.0.1"}],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dns": {"nameservers": ["10.9.0.53"], "search": ["example.org", "corp.example"],
                        "options": ["ndots:2"]}}"#
        )
        .unwrap()
    );
    // In the request's version.
    let old = plugin(&env_of("ADD", "c2", &live), &conf.replace("1.0.0", "0.3.1"));
    assert_eq!(old.exit, Some(0), "{}", old.stdout);
    assert_eq!(
        old.json().get("cniVersion").and_then(Value::as_str),
        Some("0.3.1")
    );
    assert_eq!(
        old.json().get("ips").and_then(Value::as_array).unwrap()[0],
        json::parse(r#"{"version": "4", "address": "10.9.0.11/24", "gateway": "10.9.0.1"}"#)
            .unwrap()
    );
    // A ring within the bounds: .11 released, the next is .12, then .13,
    // and .11 again only after the lap; never outside rangeStart-rangeEnd.
    plugin(&env_of("DEL", "c2", &live), &conf);
    let mut got = Vec::new();
    for container in ["c3", "c4", "c5"] {
        let answer = add(container, "/run/netns/no-such-namespace");
        assert_eq!(answer.exit, Some(0), "{}", answer.stdout);
        let ips = answer
            .json()
            .get("ips")
            .and_then(Value::as_array)
            .unwrap()
            .to_vec();
        got.push(
            ips[0]
                .get("address")
                .and_then(Value::as_str)
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(got, ["10.9.0.12/24", "10.9.0.13/24", "10.9.0.11/24"]);
    let full = add("c6", &live).json();
    assert_eq!(full.get("code").and_then(Value::as_u64), Some(999));
    let msg = full.get("msg").and_then(Value::as_str).unwrap();
    assert!(
        msg.starts_with("no available IPv4 addresses on this network's address pools: leases ("),
        "{msg}"
    );
    // An asked-for address outside the bounds is refused, and takes
    // nothing.
    let asked = conf.replace(
        r#""ipam":"#,
        r#""runtimeConfig": {"ips": ["10.9.0.50"]}, "ipam":"#,
    );
    let refused = plugin(&env_of("ADD", "c7", &live), &asked);
    let msg = refused
        .json()
        .get("msg")
        .and_then(Value::as_str)
        .unwrap()
        .to_string();
    assert!(
        msg.ends_with(
            "address 10.9.0.50 is outside the range 10.9.0.10-10.9.0.13 of subnet 10.9.0.0/24"
        ),
        "{msg}"
    );
    let lease = ipvlan::driver::lease_id;
    let mut ids = vec![
        lease("c1", "eth0"),
        lease("c3", "eth0"),
        lease("c4", "eth0"),
        lease("c5", "eth0"),
    ];
    ids.sort();
    let (records, leases) = lease_records(&state, "leases");
    assert_eq!(records, ids);
    assert_eq!(leases.len(), 4, "{leases:?}");
    assert!(leases.contains(&("10.9.0.10".to_string(), lease("c1", "eth0"))));

    // CHECK: the lease exists; of an unknown container, 999.
    let check = |container: &str| plugin(&env_of("CHECK", container, &live), &conf);
    let ok = check("c1");
    assert_eq!(
        (ok.exit, ok.stdout.as_str()),
        (Some(0), ""),
        "{}",
        ok.stderr
    );
    check("c2").assert_error(
        999,
        "container c2 holds no address for eth0 on network leases",
        "1.0.0",
    );

    // Visible to the CLI, with no master.
    let ls = Command::new(BIN)
        .args(["network", "ls"])
        .env("IPVLAN_STATE_DIR", &state)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&ls.stdout).contains("leases"),
        "{ls:?}"
    );

    // restore: a lease whose namespace is gone goes; one whose namespace
    // lives stays, with no link made for it.
    let restore = Command::new(BIN)
        .arg("restore")
        .env("IPVLAN_STATE_DIR", &state)
        .output()
        .unwrap();
    assert_eq!(restore.status.code(), Some(0), "{restore:?}");
    let (records, leases) = lease_records(&state, "leases");
    assert_eq!(records, vec![lease("c1", "eth0")], "{restore:?}");
    assert_eq!(leases, vec![("10.9.0.10".to_string(), lease("c1", "eth0"))]);

    // GC keeps what the runtime lists; DEL releases, twice.
    for container in ["c8", "c9"] {
        let answer = add(container, &live);
        assert_eq!(answer.exit, Some(0), "{}", answer.stdout);
    }
    let gc = conf.replace("1.0.0", "1.1.0").replace(
        r#""ipam":"#,
        r#""cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"},
            {"containerID": "c9", "ifname": "eth0"}], "ipam":"#,
    );
    let answer = plugin(&env_of("GC", "c1", &live), &gc);
    assert_eq!(answer.exit, Some(0), "{}", answer.stdout);
    let status = plugin(&env_of("STATUS", "c1", &live), &gc);
    assert_eq!((status.exit, status.stdout.as_str()), (Some(0), ""));
    let (records, _) = lease_records(&state, "leases");
    let mut kept = vec![lease("c1", "eth0"), lease("c9", "eth0")];
    kept.sort();
    assert_eq!(records, kept);
    for container in ["c1", "c9", "c9"] {
        let answer = plugin(&env_of("DEL", container, &live), &conf);
        assert_eq!((answer.exit, answer.stdout.as_str()), (Some(0), ""));
    }
    assert_eq!(lease_records(&state, "leases"), (Vec::new(), Vec::new()));
}

/// Configs of our plugin and of another plugin with our IPAM share a
/// network when they share its name (one allocator, as the README says),
/// each config's runtime listing only its own attachments: a GC as the
/// plugin leaves the leases made as another's IPAM, and a GC as the IPAM
/// takes only those. Before, the plugin's GC took the other config's live
/// leases, whose addresses were then handed out again.
#[test]
fn a_gc_takes_only_the_attachments_of_its_kind() {
    let dir = TempDir::new("cni-gc-kinds");
    let state = dir.path().join("state");
    let env = |command: &str, container: &str| {
        set(
            &add_env(),
            &[
                ("CNI_COMMAND", Some(command)),
                ("CNI_CONTAINERID", Some(container)),
                ("IPVLAN_STATE_DIR", Some(state.to_str().unwrap())),
            ],
        )
    };
    let leased = macvlan_conf("shared", r#""subnet": "10.7.0.0/24""#);
    for container in ["m1", "m2"] {
        let answer = plugin(&env("ADD", container), &leased);
        assert_eq!(answer.exit, Some(0), "{}", answer.stdout);
    }
    let none_listed = r#""cniVersion": "1.1.0", "cni.dev/valid-attachments": [],"#;
    let ours = r#"{"cniVersion": "1.0.0", "name": "shared", "type": "ipvlan", "master": "eth9",
        "ipam": {"type": "ipvlan", "subnet": "10.7.0.0/24"}}"#
        .replace(r#""cniVersion": "1.0.0","#, none_listed);
    let answer = plugin(&env("GC", "m1"), &ours);
    assert_eq!(answer.exit, Some(0), "{} {}", answer.stdout, answer.stderr);
    let lease = ipvlan::driver::lease_id;
    let mut both = vec![lease("m1", "eth0"), lease("m2", "eth0")];
    both.sort();
    assert_eq!(lease_records(&state, "shared").0, both, "the plugin's GC");
    let gc = leased.replace(r#""cniVersion": "1.0.0","#, none_listed);
    let answer = plugin(&env("GC", "m1"), &gc);
    assert_eq!(answer.exit, Some(0), "{} {}", answer.stdout, answer.stderr);
    assert_eq!(
        lease_records(&state, "shared"),
        (Vec::new(), Vec::new()),
        "the IPAM's GC"
    );
}

#[test]
fn a_lease_only_network_keeps_its_ranges_and_the_cli_overlap_rule() {
    let dir = TempDir::new("cni-lease-conf");
    let state = dir.path().join("state");
    let env = |container: &str| {
        set(
            &add_env(),
            &[
                ("CNI_CONTAINERID", Some(container)),
                ("IPVLAN_STATE_DIR", Some(state.to_str().unwrap())),
            ],
        )
    };
    let conf = macvlan_conf("one", r#""subnet": "10.8.0.0/24""#);
    let answer = plugin(&env("a"), &conf);
    assert_eq!(answer.exit, Some(0), "{}", answer.stdout);
    // Other ranges for the name while a lease lives: code 7.
    let other = macvlan_conf("one", r#""subnet": "10.8.1.0/24""#);
    let msg = plugin(&env("b"), &other).json();
    assert_eq!(msg.get("code").and_then(Value::as_u64), Some(7), "{msg:?}");
    // Another name on an overlapping subnet: code 7, nothing made.
    let overlapping = macvlan_conf("two", r#""subnet": "10.8.0.128/25""#);
    let answer = plugin(&env("c"), &overlapping);
    answer.assert_error(
        7,
        "Pool overlaps with other one on this address space: 10.8.0.128/25 overlaps 10.8.0.0/24 of network one",
        "1.0.0",
    );
    assert_eq!(lease_records(&state, "two"), (Vec::new(), Vec::new()));
    // Not even its network record (which the lease records, found by
    // the name's hint, would not show).
    assert_eq!(network_names(&state), ["one"]);
    // The CLI cannot attach to a network with no master in the host.
    let ns = Ns::add("lease");
    let connect = Command::new(BIN)
        .args(["network", "connect", "one"])
        .arg(Path::new("/run/netns").join(&ns.0))
        .env("IPVLAN_STATE_DIR", &state)
        .output()
        .unwrap();
    assert_eq!(connect.status.code(), Some(1), "{connect:?}");
    assert!(
        String::from_utf8_lossy(&connect.stderr).ends_with(
            "network one has no master in the host (a CNI network that serves leases only, or whose links sit on a master in each container): only its CNI plugin attaches to it\n"
        ),
        "{connect:?}"
    );
    // Nor detach a lease by its namespace's path (one outside our netns
    // directory, as CRI-O's `/var/run/netns/...`): macvlan's link keeps
    // using the address, which our allocator would hand out again.
    // Before: exit 0, the lease and its record gone.
    let pod = Path::new("/run/netns").join(&ns.0);
    let leased = set(&env("e"), &[("CNI_NETNS", Some(pod.to_str().unwrap()))]);
    let answer = plugin(&leased, &conf);
    assert_eq!(answer.exit, Some(0), "{}", answer.stdout);
    let before = lease_records(&state, "one");
    let disconnect = Command::new(BIN)
        .args(["network", "disconnect", "one"])
        .arg(&pod)
        .env("IPVLAN_STATE_DIR", &state)
        .env("IPVLAN_NETNS_DIR", dir.path().join("netns"))
        .output()
        .unwrap();
    assert_eq!(disconnect.status.code(), Some(1), "{disconnect:?}");
    assert!(
        String::from_utf8_lossy(&disconnect.stderr).ends_with(&format!(
            ": {} is attached to network one by a CNI runtime (interface eth0): its runtime's DEL removes it, not `network disconnect`; nothing was detached\n",
            pod.display()
        )),
        "{disconnect:?}"
    );
    assert_eq!(lease_records(&state, "one"), before);
    let answer = plugin(&set(&leased, &[("CNI_COMMAND", Some("DEL"))]), &conf);
    assert_eq!(answer.exit, Some(0), "{}", answer.stdout);
    // A bad macvlan config is macvlan's to judge; a bad IPAM one is ours.
    let bad = macvlan_conf(
        "one",
        r#""subnet": "10.8.0.0/24", "rangeStart": "10.9.0.1""#,
    );
    let answer = plugin(&env("d"), &bad);
    let value = answer.json();
    assert_eq!(
        value.get("code").and_then(Value::as_u64),
        Some(7),
        "{value:?}"
    );
}

/// Two addresses of one family asked for: host-local leases one a range
/// set and refuses the rest, and so do we (one range set a family).
/// Before, both were leased; as an ipvlan ADD's, the second went on the
/// link but not into the record, and DEL left it leased.
#[test]
fn a_second_address_of_a_family_asked_for_is_refused_and_nothing_leased() {
    let dir = TempDir::new("cni-two-of-a-family");
    let state = dir.path().join("state");
    let conf = macvlan_conf("pair", r#""subnet": "10.7.0.0/24""#);
    for ips in ["10.7.0.5,10.7.0.6", "10.7.0.5,fd00::6,10.7.0.6"] {
        let env = set(
            &add_env(),
            &[
                ("CNI_ARGS", Some(&format!("IP={ips}"))),
                ("IPVLAN_STATE_DIR", Some(state.to_str().unwrap())),
            ],
        );
        plugin(&env, &conf).assert_error(
            999,
            "failed to allocate all requested IPs: 10.7.0.6",
            "1.0.0",
        );
        assert_eq!(lease_records(&state, "pair").1, Vec::new(), "{ips}");
    }
    // One of each family, and one asked for twice, as before.
    let dual = macvlan_conf(
        "dual",
        r#""ranges": [[{"subnet": "10.6.0.0/24"}], [{"subnet": "fd00:6::/64"}]]"#,
    );
    let env = |ips: &str| {
        set(
            &add_env(),
            &[
                ("CNI_ARGS", Some(&format!("IP={ips}"))),
                ("IPVLAN_STATE_DIR", Some(state.to_str().unwrap())),
            ],
        )
    };
    let answer = plugin(&env("10.6.0.5,fd00:6::5"), &dual);
    assert_eq!(answer.exit, Some(0), "{} {}", answer.stdout, answer.stderr);
    assert_eq!(lease_records(&state, "dual").1.len(), 2);
}

/// The result's addresses come in the order of the range sets, as
/// host-local's, whichever was asked for: a runtime takes the first for
/// the pod's primary address. Before, an asked-for address came first
/// (`fd00:20::5`, then `10.20.0.2`).
#[test]
fn result_addresses_follow_the_order_of_the_range_sets() {
    let dir = TempDir::new("cni-result-order");
    let state = dir.path().join("state");
    let dual = macvlan_conf(
        "order",
        r#""ranges": [[{"subnet": "10.20.0.0/24"}], [{"subnet": "fd00:20::/64"}]]"#,
    );
    for (container, ips, expected) in [
        ("a", "fd00:20::5", ["10.20.0.2/24", "fd00:20::5/64"]),
        ("b", "", ["10.20.0.3/24", "fd00:20::2/64"]),
        ("c", "10.20.0.9/24", ["10.20.0.9/24", "fd00:20::3/64"]),
    ] {
        let env = set(
            &add_env(),
            &[
                ("CNI_CONTAINERID", Some(container)),
                ("CNI_ARGS", Some(&format!("IgnoreUnknown=1;IP={ips}"))),
                ("IPVLAN_STATE_DIR", Some(state.to_str().unwrap())),
            ],
        );
        let answer = plugin(&env, &dual);
        assert_eq!(answer.exit, Some(0), "{} {}", answer.stdout, answer.stderr);
        let result = answer.json();
        let got = common::result_addresses(&result);
        assert_eq!(got, expected, "{container}: IP={ips}");
    }
}

/// An address asked for in `runtimeConfig.ips`, `args.cni.ips` and
/// `CNI_ARGS` at once (or twice in one) is one request, as host-local
/// takes it. Before, the copies were requests of their own, and the ADD
/// failed with "Address already in use" for an address that was free.
#[test]
fn an_address_asked_for_in_several_places_is_leased_once() {
    let dir = TempDir::new("cni-same-address");
    let state = dir.path().join("state");
    let conf = r#"{"cniVersion": "1.0.0", "name": "same", "type": "macvlan", "master": "eth9",
        "mode": "bridge", "ipam": {"type": "ipvlan", "subnet": "10.7.0.0/24"},
        "runtimeConfig": {"ips": ["10.7.0.5/24", "10.7.0.5"]},
        "args": {"cni": {"ips": ["10.7.0.5"]}}}"#;
    let env = set(
        &add_env(),
        &[
            ("CNI_ARGS", Some("IP=10.7.0.5")),
            ("IPVLAN_STATE_DIR", Some(state.to_str().unwrap())),
        ],
    );
    let answer = plugin(&env, conf);
    assert_eq!(answer.exit, Some(0), "{} {}", answer.stdout, answer.stderr);
    assert!(
        answer.stdout.contains("\"10.7.0.5/24\""),
        "{}",
        answer.stdout
    );
    let leases = lease_records(&state, "same").1;
    let addresses: Vec<&str> = leases.iter().map(|(address, _)| address.as_str()).collect();
    assert_eq!(addresses, ["10.7.0.5"]);
}

/// A DEL (and a GC) that finds no network of its name reports success: so
/// one whose record a power cut took from its file, which only the commit
/// log holds until a lock writes it again, must be looked for again after
/// that. Before, a DEL before `restore` at boot answered success and left
/// the lease for ever (the next lock brought the network back with it).
#[test]
fn a_del_after_a_power_cut_finds_the_network_the_commit_log_holds() {
    use std::os::unix::fs::FileExt;
    let dir = TempDir::new("cni-del-after-cut");
    let state = dir.path().join("state");
    let conf = macvlan_conf("cut", r#""subnet": "10.7.9.0/24""#);
    let env = |verb: &str| {
        set(
            &add_env(),
            &[
                ("CNI_COMMAND", Some(verb)),
                ("IPVLAN_STATE_DIR", Some(state.to_str().unwrap())),
            ],
        )
    };
    let answer = plugin(&env("ADD"), &conf);
    assert_eq!(answer.exit, Some(0), "{} {}", answer.stdout, answer.stderr);
    let id = ipvlan::store::StateDir::open(&state)
        .unwrap()
        .network_named("cut")
        .unwrap()
        .unwrap()
        .id;
    // The cut: the network's file and name hint lost, the log's page too.
    std::fs::remove_file(state.join("networks").join(format!("{id}.json"))).unwrap();
    std::fs::remove_file(state.join("names").join("cut")).unwrap();
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(state.join("lock"))
        .unwrap();
    lock.write_all_at(&[0u8; 4096], 3 * 4096).unwrap();
    let answer = plugin(&env("DEL"), &conf);
    assert_eq!(answer.exit, Some(0), "{} {}", answer.stdout, answer.stderr);
    let store = ipvlan::store::StateDir::open(&state).unwrap();
    drop(store.lock().unwrap());
    let network = store.network(&id).unwrap().expect("written again");
    assert_eq!(store.endpoints_of(&id).unwrap().items, Vec::new());
    assert_eq!(
        store.addresses(&network).unwrap(),
        Vec::new(),
        "the lease left"
    );
}

/// A DEL whose attachment's record cannot be read (cut short by a hand
/// edit or a disk fault) still takes the attachment down: its link by
/// name, its leases (whose files name it), its record; and says so. It
/// failed, on every retry: a runtime could never take the pod down, and
/// the leases stayed.
#[test]
fn a_del_of_an_attachment_whose_record_is_damaged_takes_it_down() {
    let dir = TempDir::new("cni-del-damaged");
    let state = dir.path().join("state");
    let conf = macvlan_conf("damaged", r#""subnet": "10.7.8.0/24""#);
    let env = |verb: &str, container: &str| {
        set(
            &add_env(),
            &[
                ("CNI_COMMAND", Some(verb)),
                ("CNI_CONTAINERID", Some(container)),
                ("IPVLAN_STATE_DIR", Some(state.to_str().unwrap())),
            ],
        )
    };
    let answer = plugin(&env("ADD", "other"), &conf);
    assert_eq!(answer.exit, Some(0), "{} {}", answer.stdout, answer.stderr);
    let store = ipvlan::store::StateDir::open(&state).unwrap();
    let network = store.network_named("damaged").unwrap().unwrap();
    let endpoints = state.join("endpoints").join(&network.id);
    let records = || -> Vec<_> {
        std::fs::read_dir(&endpoints)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect()
    };
    let others = records();
    let answer = plugin(&env("ADD", "c0ffee"), &conf);
    assert_eq!(answer.exit, Some(0), "{} {}", answer.stdout, answer.stderr);
    let leases = store.addresses(&network).unwrap();
    assert_eq!(leases.len(), 2, "{leases:?}");
    let mine: Vec<_> = records()
        .into_iter()
        .filter(|r| !others.contains(r))
        .collect();
    let [record] = mine.as_slice() else {
        panic!("one attachment of c0ffee: {mine:?}");
    };
    std::fs::write(record, "{\"version\": 1").unwrap();
    let answer = plugin(&env("DEL", "c0ffee"), &conf);
    assert_eq!(answer.exit, Some(0), "{} {}", answer.stdout, answer.stderr);
    assert!(
        common::says_damaged_attachment_taken_down(&answer.stderr, 1),
        "{}",
        answer.stderr
    );
    assert!(!record.exists(), "the damaged record stayed");
    // The other attachment's lease and record stay.
    let left = store.addresses(&network).unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(leases.contains(&left[0]) && !left[0].1.is_empty());
    assert_eq!(records(), others);
    let answer = plugin(&env("DEL", "c0ffee"), &conf);
    assert_eq!(answer.exit, Some(0), "{} {}", answer.stdout, answer.stderr);
    assert_eq!(store.addresses(&network).unwrap(), left);
}

/// A DEL or GC of a network that does not exist is done, also where the
/// commit log cannot be settled first (a read-only state directory):
/// the second look is given up, not the answer. It failed ("Read-only
/// file system"), and a runtime retries a failing DEL for ever.
#[test]
fn a_del_of_no_network_succeeds_on_a_read_only_state_directory() {
    let dir = TempDir::new("cni-del-read-only");
    let state = dir.path().join("state");
    ipvlan::store::StateDir::open(&state).unwrap();
    let conf = macvlan_conf("nosuch", r#""subnet": "10.7.10.0/24""#);
    for verb in ["DEL", "GC"] {
        let env = set(
            &add_env(),
            &[
                ("CNI_COMMAND", Some(verb)),
                ("IPVLAN_STATE_DIR", Some(state.to_str().unwrap())),
            ],
        );
        // The binary under a read-only bind mount of the state directory,
        // in a mount namespace of its own.
        let script = format!(
            "mount --bind -o ro {s} {s} && exec {BIN}",
            s = state.display()
        );
        let mut child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runs unshare");
        let mut input = child.stdin.take().unwrap();
        // GC is of CNI 1.1.
        let conf = match verb {
            "GC" => conf.replace("\"1.0.0\"", "\"1.1.0\""),
            _ => conf.clone(),
        };
        let _ = input.write_all(conf.as_bytes());
        drop(input);
        let output = child.wait_with_output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{verb}: {} {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A network CNI made that holds nothing any more gives way to another
/// config's network on an overlapping subnet (a conflist renamed): it is
/// removed. Before, it refused every such network until someone ran
/// `ipvlan network rm`. One that still holds a lease refuses (code 7).
#[test]
fn an_idle_cni_network_gives_way_to_an_overlapping_one() {
    let dir = TempDir::new("cni-idle-overlap");
    let state = dir.path().join("state");
    let env = |command: &str, container: &str| env_in(&state, command, container);
    let one = macvlan_conf("one", r#""subnet": "10.7.0.0/24""#);
    let two = macvlan_conf("two", r#""subnet": "10.7.0.0/25""#);
    let answer = plugin(&env("ADD", "a"), &one);
    assert_eq!(answer.exit, Some(0), "{}{}", answer.stdout, answer.stderr);
    plugin(&env("ADD", "b"), &two).assert_error(
        7,
        "Pool overlaps with other one on this address space: 10.7.0.0/25 overlaps 10.7.0.0/24 of network one",
        "1.0.0",
    );
    let answer = plugin(&env("DEL", "a"), &one);
    assert_eq!(answer.exit, Some(0), "{}{}", answer.stdout, answer.stderr);
    let answer = plugin(&env("ADD", "b"), &two);
    assert_eq!(answer.exit, Some(0), "{}{}", answer.stdout, answer.stderr);
    let store = ipvlan::store::StateDir::open(&state).unwrap();
    assert!(
        store.network_by_name("one").is_none(),
        "the idle network stays"
    );
    let (ids, leases) = lease_records(&state, "two");
    assert_eq!((ids.len(), leases.len()), (1, 1), "{ids:?} {leases:?}");
}

/// A config refused for what it holds (a gateway on its subnet's
/// broadcast address; a `rangeStart`-`rangeEnd` of reserved addresses
/// only, where no ADD could get an address) changes nothing: the idle
/// network that an overlapping subnet or the same name would have made
/// give way stays, the same record. Before, it was removed first and the
/// config refused after (the range's refusal came on allocating, after a
/// new network of the name was made).
#[test]
fn a_refused_config_removes_no_idle_network() {
    let dir = TempDir::new("cni-refused-idle");
    let state = dir.path().join("state");
    let env = |command: &str, container: &str| env_in(&state, command, container);
    let old = macvlan_conf("old", r#""subnet": "10.61.0.0/24""#);
    for command in ["ADD", "DEL"] {
        let answer = plugin(&env(command, "a"), &old);
        assert_eq!(answer.exit, Some(0), "{}{}", answer.stdout, answer.stderr);
    }
    let old_id = |state: &Path| {
        ipvlan::store::StateDir::open(state)
            .unwrap()
            .network_by_name("old")
            .map(|network| network.id)
    };
    let id = old_id(&state);
    for (bad, refusal) in [
        (
            r#""subnet": "10.61.0.0/24", "gateway": "10.61.0.255""#,
            "invalid gateway 10.61.0.255: it is not a host address of subnet 10.61.0.0/24",
        ),
        (
            r#""subnet": "10.61.0.0/24", "rangeStart": "10.61.0.1", "rangeEnd": "10.61.0.1""#,
            "range 10.61.0.1-10.61.0.1 of subnet 10.61.0.0/24 has no address a container could get: the network, broadcast, anycast and gateway addresses take them all",
        ),
        (
            r#""subnet": "10.61.0.0/24", "rangeStart": "10.61.0.255""#,
            "range 10.61.0.255-10.61.0.254 of subnet 10.61.0.0/24 (empty: rangeStart after rangeEnd or its default) has no address a container could get: the network, broadcast, anycast and gateway addresses take them all",
        ),
        (
            r#""subnet": "10.61.0.0/24", "gateway": "10.61.0.254", "rangeStart": "10.61.0.254", "rangeEnd": "10.61.0.255""#,
            "range 10.61.0.254-10.61.0.255 of subnet 10.61.0.0/24 has no address a container could get: the network, broadcast, anycast and gateway addresses take them all",
        ),
    ] {
        // Another name on an overlapping subnet; then the same name.
        for name in ["new", "old"] {
            let answer = plugin(&env("ADD", "b"), &macvlan_conf(name, bad));
            assert_eq!(
                network_names(&state),
                ["old"],
                "after the config refused for {name}: {bad}"
            );
            assert_eq!(old_id(&state), id, "after {name}: {bad}");
            answer.assert_error(7, refusal, "1.0.0");
        }
    }
    assert_eq!(lease_records(&state, "old"), (Vec::new(), Vec::new()));
}

/// A range set whose first range holds nothing to hand out (only its
/// gateway) still serves from its second subnet, as the allocator (and
/// host-local) go through a set's ranges in turn; with no room in either,
/// the config is refused naming both. (A first refusal of such ranges
/// refused the set as soon as one range was full.)
#[test]
fn a_range_set_with_one_full_range_serves_from_the_next() {
    let dir = TempDir::new("cni-one-full-range");
    let state = dir.path().join("state");
    let env = |command: &str, container: &str| env_in(&state, command, container);
    let conf = macvlan_conf(
        "two",
        r#""ranges": [[{"subnet": "10.71.0.0/24", "rangeStart": "10.71.0.1", "rangeEnd": "10.71.0.1"}, {"subnet": "10.72.0.0/24"}]]"#,
    );
    let answer = plugin(&env("ADD", "a"), &conf);
    assert_eq!(answer.exit, Some(0), "{}{}", answer.stdout, answer.stderr);
    let (_, leases) = lease_records(&state, "two");
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert!(leases[0].0.starts_with("10.72.0."), "{leases:?}");
    // So does a one-sided range past its other end's default (empty).
    let past = macvlan_conf(
        "past",
        r#""ranges": [[{"subnet": "10.75.0.0/24", "rangeStart": "10.75.0.255"}, {"subnet": "10.76.0.0/24"}]]"#,
    );
    let answer = plugin(&env("ADD", "c"), &past);
    assert_eq!(answer.exit, Some(0), "{}{}", answer.stdout, answer.stderr);
    let (_, leases) = lease_records(&state, "past");
    assert!(leases[0].0.starts_with("10.76.0."), "{leases:?}");
    let full = macvlan_conf(
        "full",
        r#""ranges": [[{"subnet": "10.73.0.0/24", "rangeStart": "10.73.0.1", "rangeEnd": "10.73.0.1"}, {"subnet": "10.74.0.0/24", "rangeStart": "10.74.0.0", "rangeEnd": "10.74.0.1"}]]"#,
    );
    plugin(&env("ADD", "b"), &full).assert_error(
        7,
        "range 10.73.0.1-10.73.0.1 of subnet 10.73.0.0/24, range 10.74.0.0-10.74.0.1 of subnet 10.74.0.0/24 have no address a container could get: the network, broadcast, anycast and gateway addresses take them all",
        "1.0.0",
    );
    assert_eq!(sorted_network_names(&state), ["past", "two"]);
}

/// ADD and DEL in the plugin's own network namespace (by any path) are
/// refused with the reference library's code 8 and message, before
/// anything is read or made, unless `CNI_NETNS_OVERRIDE` says they are
/// meant. Before, an ADD went on (a link there would have been the
/// host's) and a DEL deleted an ipvlan link of the name in the host.
#[test]
fn add_and_del_in_the_plugins_own_namespace_are_refused() {
    let dir = TempDir::new("cni-own-netns");
    let state = dir.path().join("state");
    let conf = r#"{"cniVersion": "1.0.0", "name": "own", "type": "ipvlan",
        "master": "ipvl-no-such0", "ipam": {"type": "ipvlan", "subnet": "10.62.0.0/24"}}"#;
    let by_pid = format!("/proc/{}/ns/net", std::process::id());
    // Any other override than `1` or `true` (in any case) is none.
    let overrides = [None, Some("yes"), Some("0"), Some("truer"), Some("tru")];
    for (command, override_value) in ["ADD", "DEL"]
        .into_iter()
        .flat_map(|command| overrides.iter().map(move |value| (command, value)))
    {
        for netns in ["/proc/self/ns/net", by_pid.as_str()] {
            let env = set(
                &env_in(&state, command, "a"),
                &[
                    ("CNI_NETNS", Some(netns)),
                    ("CNI_IFNAME", Some("ipvl-own0")),
                    ("CNI_NETNS_OVERRIDE", *override_value),
                ],
            );
            let answer = plugin(&env, conf);
            assert_eq!(
                answer.exit,
                Some(1),
                "{command} {netns} {override_value:?}: {}",
                answer.stdout
            );
            let error = answer.json();
            assert_eq!(
                error.get("code").and_then(Value::as_u64),
                Some(8),
                "{}",
                answer.stdout
            );
            assert_eq!(
                error.get("msg").and_then(Value::as_str),
                Some("plugin's netns and netns from CNI_NETNS should not be the same")
            );
            assert!(!state.exists(), "{command} {netns}: the state was made");
        }
    }
    // Meant (`true` in any case, as the reference library reads it): the
    // ADD goes on, to the master no host has.
    let env = set(
        &env_in(&state, "ADD", "a"),
        &[
            ("CNI_NETNS", Some("/proc/self/ns/net")),
            ("CNI_IFNAME", Some("ipvl-own0")),
            ("CNI_NETNS_OVERRIDE", Some("True")),
        ],
    );
    let answer = plugin(&env, conf);
    assert_eq!(answer.exit, Some(1), "{}", answer.stdout);
    assert_ne!(
        answer.json().get("code").and_then(Value::as_u64),
        Some(8),
        "{}",
        answer.stdout
    );
}

/// A config refused for what the kernel or the host's links hold (here
/// a master no host has; on a kernel without ipvlan, that first) changes
/// nothing either: the idle network its subnet or its name would have
/// made give way stays. Before, it was removed first and the config
/// refused after. (The VM tests check each such refusal by its message.)
#[test]
fn a_config_the_kernel_refuses_removes_no_idle_network() {
    common::privilege::require_root();
    let dir = TempDir::new("cni-kernel-refused-idle");
    let state = dir.path().join("state");
    idle_network_old(&state, "10.63.0.0/24");
    // The namespace passes, the master does not.
    let env = add_here(&state);
    for name in ["new", "old"] {
        let conf = format!(
            r#"{{"cniVersion": "1.0.0", "name": "{name}", "type": "ipvlan",
                "master": "ipvl-no-such0", "ipam": {{"type": "ipvlan", "subnet": "10.63.0.0/24"}}}}"#
        );
        let answer = plugin(&env, &conf);
        assert_eq!(answer.exit, Some(1), "{}{}", answer.stdout, answer.stderr);
        assert_eq!(
            network_names(&state),
            ["old"],
            "after the config refused for {name}: {}",
            answer.stdout
        );
    }
}

/// An idle lease-only network "old" on `subnet` (an ADD and its DEL).
fn idle_network_old(state: &Path, subnet: &str) {
    let old = macvlan_conf("old", &format!(r#""subnet": "{subnet}""#));
    for command in ["ADD", "DEL"] {
        let answer = plugin(&env_in(state, command, "a"), &old);
        assert_eq!(answer.exit, Some(0), "{}{}", answer.stdout, answer.stderr);
    }
}

/// An ADD of container `b` in this process's own namespace (meant:
/// `CNI_NETNS_OVERRIDE`), under an interface name no link has.
fn add_here(state: &Path) -> Vec<(String, String)> {
    set(
        &env_in(state, "ADD", "b"),
        &[
            ("CNI_NETNS", Some("/proc/self/ns/net")),
            ("CNI_NETNS_OVERRIDE", Some("1")),
            ("CNI_IFNAME", Some("ipvl-t-none")),
        ],
    )
}

/// A `linkInContainer` config whose master the container's namespace
/// lacks is refused (code 7) before anything changes: the idle network
/// it would make give way (on its subnet, or of its own name) stays, and
/// no record is written for it. Before, the master was looked up only
/// after that network was retired and the new record written.
#[test]
fn a_link_in_container_config_without_its_master_changes_nothing() {
    common::privilege::require_root();
    let dir = TempDir::new("cni-in-container-no-master");
    let state = dir.path().join("state");
    idle_network_old(&state, "10.66.0.0/24");
    let id = ipvlan::store::StateDir::open(&state)
        .unwrap()
        .network_by_name("old")
        .map(|network| network.id);
    // This process's namespace stands for the container's; no link there
    // has the master's name.
    let env = add_here(&state);
    for name in ["new", "old"] {
        let conf = format!(
            r#"{{"cniVersion": "1.0.0", "name": "{name}", "type": "ipvlan", "linkInContainer": true,
                "master": "ipvl-no-such0", "ipam": {{"type": "ipvlan", "subnet": "10.66.0.0/24"}}}}"#
        );
        let answer = plugin(&env, &conf);
        assert_eq!(answer.exit, Some(1), "{}{}", answer.stdout, answer.stderr);
        assert!(
            answer.stdout.contains(r#""code": 7"#)
                && answer
                    .stdout
                    .contains("linkInContainer: master ipvl-no-such0 does not exist in namespace"),
            "{name}: {}",
            answer.stdout
        );
        assert_eq!(
            network_names(&state),
            ["old"],
            "after {name}: {}",
            answer.stdout
        );
        let now = ipvlan::store::StateDir::open(&state)
            .unwrap()
            .network_by_name("old")
            .map(|network| network.id);
        assert_eq!(now, id, "after {name}: the idle network made again");
    }
}

/// A network is never named after another network's id, through CNI or
/// `network create`: `inspect` (which looks the name up first) and `rm`
/// (the first network whose name or id matches) would take different
/// networks for it. Before, such a name was taken.
#[test]
fn a_network_is_never_named_after_another_networks_id() {
    let dir = TempDir::new("cni-id-name");
    let state = dir.path().join("state");
    let env = |command: &str, container: &str| env_in(&state, command, container);
    let first = macvlan_conf("first", r#""subnet": "10.61.0.0/24""#);
    let answer = plugin(&env("ADD", "a"), &first);
    assert_eq!(answer.exit, Some(0), "{}{}", answer.stdout, answer.stderr);
    let id = ipvlan::store::StateDir::open(&state)
        .unwrap()
        .network_by_name("first")
        .unwrap()
        .id;
    let refusal = format!("invalid network name {id}: it is the id of network first");
    plugin(
        &env("ADD", "b"),
        &macvlan_conf(&id, r#""subnet": "10.62.0.0/24""#),
    )
    .assert_error(7, &refusal, "1.0.0");
    let created = Command::new(BIN)
        .args(["network", "create", "--subnet", "10.62.0.0/24", &id])
        .env("IPVLAN_STATE_DIR", &state)
        .output()
        .unwrap();
    assert_eq!(created.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&created.stderr),
        format!("ipvlan: network create {id}: {refusal}\n")
    );
    assert_eq!(network_names(&state), ["first"]);
}

/// A CNI network our own plugin made with `ipam.type: ipvlan` and
/// `rangeStart`/`rangeEnd` keeps those bounds for `network connect` and
/// `run` too (the README lets them join a CNI network whose master is in
/// the host; several hosts may share its subnet, each with its range): an
/// `--ip` outside the range is refused as the ADD refuses it. Before, the
/// CLI allocated from the whole subnet (`--ip` outside taken, automatic
/// addresses from .2, inside another host's range).
///
/// The record is written as `Manager::cni_network` writes it for
/// `{"master": "lo", "ipam": {"type": "ipvlan", "subnet": "10.9.0.0/24",
/// "rangeStart": "10.9.0.10", "rangeEnd": "10.9.0.13"}}` (our ADD needs
/// the kernel's ipvlan to make it); on the host the refusal must come
/// before the kernel is asked.
#[test]
fn a_cli_connect_onto_a_cni_network_keeps_to_its_range_start_and_end() {
    common::privilege::require_root();
    let base = TempDir::new("cni-cli-bounds");
    let root = base.path().to_path_buf();
    let result = ipvlan::netns::run_in_new_with_private_dir(&root, || {
        let state = root.join("state");
        let netns_dir = root.join("netns");
        std::fs::create_dir_all(&netns_dir).unwrap();
        let mut record = common::network_on_lo(&"cb".repeat(32), "pods", "10.9.0.0/24");
        record.options.extend([
            ("ipvlan_mode".into(), "l2".into()),
            ("ipvlan_flag".into(), "bridge".into()),
            (
                "cni.config".into(),
                "master=lo mode=l2 flag=bridge mtu=(master's) ipam=ipvlan ranges=10.9.0.0/24[10.9.0.10-10.9.0.13]".into(),
            ),
        ]);
        let store = ipvlan::store::StateDir::open(&state).unwrap();
        {
            let locked = store.lock().unwrap();
            locked.put_network(&record).unwrap();
            locked.commit().unwrap();
        }
        drop(ipvlan::netns::create_named(&netns_dir, "pod").unwrap());
        let pod = netns_dir.join("pod");
        let output = Command::new(BIN)
            .args(["network", "connect", "--ip=10.9.0.50", "pods", pod.to_str().unwrap()])
            .env("IPVLAN_STATE_DIR", &state)
            .env("IPVLAN_NETNS_DIR", &netns_dir)
            .env("IPVLAN_ETC_NETNS_DIR", root.join("etc-netns"))
            .output()
            .unwrap();
        let out = (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        );
        let _ = ipvlan::netns::delete_named(&netns_dir, "pod");
        let _ = ipvlan::netns::release_run_dir(&netns_dir);
        out
    })
    .expect("a private mount and network namespace");
    let (exit, stderr) = result;
    assert_eq!(exit, Some(1), "{stderr}");
    assert!(
        stderr.contains("10.9.0.50 is outside the range 10.9.0.10-10.9.0.13 of subnet 10.9.0.0/24"),
        "an --ip outside the CNI network's rangeStart-rangeEnd was taken (it reached: {stderr:?})"
    );
}

/// An idle network ("idle", 10.64.1.0/24) and one in use ("held",
/// 10.64.2.0/24, a live lease), both lease-only, in a scratch state.
fn idle_and_held(state: &Path) {
    let env = |command: &str, container: &str| env_in(state, command, container);
    let held = macvlan_conf("held", r#""subnet": "10.64.2.0/24""#);
    let answer = plugin(&env("ADD", "h"), &held);
    assert_eq!(answer.exit, Some(0), "{}{}", answer.stdout, answer.stderr);
    let idle = macvlan_conf("idle", r#""subnet": "10.64.1.0/24""#);
    for command in ["ADD", "DEL"] {
        let answer = plugin(&env(command, "a"), &idle);
        assert_eq!(answer.exit, Some(0), "{}{}", answer.stdout, answer.stderr);
    }
}

fn sorted_network_names(state: &Path) -> Vec<String> {
    let mut names = network_names(state);
    names.sort();
    names
}

/// A config refused for overlapping a network in use (a refusal that needs
/// only the state) leaves the idle network it also overlaps, under another
/// name or the idle network's own (its IPAM config changed). Before, that
/// one was retired first.
#[test]
fn an_overlap_refusal_removes_no_idle_network() {
    for name in ["wide", "idle"] {
        let dir = TempDir::new(&format!("cni-retire-overlap-{name}"));
        let state = dir.path().join("state");
        idle_and_held(&state);
        let wide = macvlan_conf(name, r#""subnet": "10.64.0.0/16""#);
        let answer = plugin(&env_in(&state, "ADD", "b"), &wide);
        assert_eq!(answer.exit, Some(1), "{}{}", answer.stdout, answer.stderr);
        assert!(answer.stdout.contains("overlaps"), "{}", answer.stdout);
        assert_eq!(
            sorted_network_names(&state),
            ["held", "idle"],
            "{name}: {}",
            answer.stdout
        );
    }
}

/// A config named after another network's id is refused before the idle
/// network it overlaps is retired. Before, after.
#[test]
fn a_name_of_an_id_refusal_removes_no_idle_network() {
    let dir = TempDir::new("cni-retire-id-name");
    let state = dir.path().join("state");
    idle_and_held(&state);
    let id = ipvlan::store::StateDir::open(&state)
        .unwrap()
        .network_by_name("held")
        .unwrap()
        .id;
    let conf = macvlan_conf(&id, r#""subnet": "10.64.1.0/25""#);
    let answer = plugin(&env_in(&state, "ADD", "b"), &conf);
    assert_eq!(answer.exit, Some(1), "{}{}", answer.stdout, answer.stderr);
    assert!(
        answer.stdout.contains("it is the id of network held"),
        "{}",
        answer.stdout
    );
    assert_eq!(
        sorted_network_names(&state),
        ["held", "idle"],
        "{}",
        answer.stdout
    );
}

/// `CNI_NETNS` is a path, opened from the plugin's working directory
/// when relative (as the reference plugin opens it): a lease records it
/// joined to that directory, so `restore`, run from anywhere, collects the
/// lease once its namespace is gone.
#[test]
fn a_lease_records_a_relative_cni_netns_absolute() {
    // Before: recorded as no namespace at all (""), the lease kept by
    // every restore after its namespace was gone.
    let dir = TempDir::new("cni-lease-relns");
    let state = dir.path().join("state");
    let ns = Ns::add("relns");
    let env = set(
        &add_env(),
        &[
            ("CNI_NETNS", Some(&ns.0)),
            ("IPVLAN_STATE_DIR", Some(state.to_str().unwrap())),
        ],
    );
    let mut child = Command::new(BIN)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir("/run/netns")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let conf = macvlan_conf("relns", r#""subnet": "10.7.0.0/24""#);
    let _ = child.stdin.take().unwrap().write_all(conf.as_bytes());
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let store = ipvlan::store::StateDir::open(&state).unwrap();
    let network = store.network_by_name("relns").unwrap();
    let recorded: Vec<String> = store
        .endpoints_of(&network.id)
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.netns)
        .collect();
    assert_eq!(recorded, [format!("/run/netns/{}", ns.0)]);
    let restore = || {
        Command::new(BIN)
            .arg("restore")
            .env("IPVLAN_STATE_DIR", &state)
            .output()
            .unwrap()
    };
    let kept = restore();
    assert_eq!(kept.status.code(), Some(0), "{kept:?}");
    assert_eq!(lease_records(&state, "relns").0.len(), 1, "{kept:?}");
    drop(ns);
    let gone = restore();
    assert_eq!(gone.status.code(), Some(0), "{gone:?}");
    assert_eq!(
        lease_records(&state, "relns"),
        (Vec::new(), Vec::new()),
        "{gone:?}"
    );
}

/// DEL runs the delegated IPAM plugin's DEL even when its own part fails
/// (the spec: DEL executes its delegated plugins and cleans up as far as
/// it can), and answers with its own error. Before, a state directory our
/// DEL could not open (or a damaged record) kept host-local's lease
/// through every retry of the runtime.
#[test]
fn del_runs_the_ipam_plugins_del_when_its_own_part_fails() {
    let dir = TempDir::new("cni-del-delegates");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let seen = dir.path().join("seen");
    fake_plugin(
        &bin,
        "fake-ipam",
        &format!("echo \"$CNI_COMMAND\" >> {}\nexit 0", seen.display()),
    );
    // A file where the state directory goes: our DEL cannot start.
    let not_a_dir = dir.path().join("state");
    std::fs::write(&not_a_dir, "").unwrap();
    let conf = CONF.replace("host-local", "fake-ipam");
    let env = set(
        &add_env(),
        &[
            ("CNI_COMMAND", Some("DEL")),
            ("CNI_NETNS", None),
            ("CNI_PATH", Some(bin.to_str().unwrap())),
            ("IPVLAN_STATE_DIR", Some(not_a_dir.to_str().unwrap())),
        ],
    );
    let answer = plugin(&env, &conf);
    let value = answer.json();
    assert_eq!(answer.exit, Some(1), "{}", answer.stdout);
    assert_eq!(value.get("code").and_then(Value::as_u64), Some(999));
    assert!(
        value
            .get("msg")
            .and_then(Value::as_str)
            .is_some_and(|msg| msg.contains("state directory")),
        "{value:?}"
    );
    assert_eq!(std::fs::read_to_string(&seen).unwrap_or_default(), "DEL\n");
}

#[test]
fn status_is_forwarded_to_the_ipam_plugin_with_our_stdin_and_environment() {
    let dir = TempDir::new("cni-status");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let seen = dir.path().join("seen");
    fake_plugin(
        &bin,
        "fake-ipam",
        &format!(
            "cat > {seen}.stdin\nenv > {seen}.env\necho 'note from the IPAM plugin' >&2\nexit 0",
            seen = seen.display()
        ),
    );
    let conf = CONF
        .replace("1.0.0", "1.1.0")
        .replace("host-local", "fake-ipam");
    let env = vec![
        ("CNI_COMMAND".to_string(), "STATUS".to_string()),
        (
            "CNI_PATH".to_string(),
            format!("/nonexistent:{}", bin.display()),
        ),
        ("KEEP_ME".to_string(), "passed on".to_string()),
    ];
    let answer = plugin(&env, &conf);
    assert_eq!(
        (answer.exit, answer.stdout.as_str()),
        (Some(0), ""),
        "{}",
        answer.stdout
    );
    // Its stderr reaches the runtime's log through ours.
    assert_eq!(answer.stderr, "note from the IPAM plugin\n");
    assert_eq!(
        std::fs::read_to_string(seen.with_extension("stdin")).unwrap(),
        conf
    );
    let seen_env = std::fs::read_to_string(seen.with_extension("env")).unwrap();
    for line in ["CNI_COMMAND=STATUS", "KEEP_ME=passed on"] {
        assert!(
            seen_env.lines().any(|l| l == line),
            "{line} not in {seen_env}"
        );
    }

    // The plugin's own error is the answer, its code kept.
    fake_plugin(
        &bin,
        "fake-ipam",
        r#"cat > /dev/null; echo '{"cniVersion": "1.1.0", "code": 11, "msg": "busy", "details": "lease db locked"}'; exit 1"#,
    );
    let busy = plugin(&env, &conf).assert_error(11, "busy", "1.1.0");
    assert_eq!(
        busy.get("details").and_then(Value::as_str),
        Some("lease db locked")
    );

    // No such plugin: we are not available.
    let gone = plugin(&env, &conf.replace("fake-ipam", "no-such-ipam")).assert_error(
        50,
        &format!(
            "failed to find plugin \"no-such-ipam\" in path [/nonexistent {}]",
            bin.display()
        ),
        "1.1.0",
    );
    assert!(gone.get("details").is_none());
}

#[test]
fn a_delegate_is_run_with_a_time_bound_and_its_failures_are_quoted() {
    let dir = TempDir::new("cni-delegate");
    let vars: Vec<(std::ffi::OsString, std::ffi::OsString)> = vec![
        ("CNI_COMMAND".into(), "ADD".into()),
        ("CNI_ARGS".into(), "IgnoreUnknown=1".into()),
    ];

    // A result is read back, in the request's version or its own.
    let good = fake_plugin(
        dir.path(),
        "good",
        r#"cat > /dev/null; echo "{\"cniVersion\": \"0.4.0\", \"ips\": [{\"version\": \"4\", \"address\": \"10.1.2.2/24\", \"gateway\": \"10.1.2.1\"}], \"dns\": {}}""#,
    );
    let output = delegate::run(&good, Verb::Add, &vars, b"{}", Duration::from_secs(20)).unwrap();
    let result = delegate::read_result("good", &output, Version::V1_0_0).unwrap();
    assert_eq!(result.ips[0].address.to_string(), "10.1.2.2/24");
    assert_eq!(
        result.to_json(Version::V1_0_0),
        json::parse(
            r#"{"cniVersion": "1.0.0", "ips": [{"address": "10.1.2.2/24", "gateway": "10.1.2.1"}]}"#
        )
        .unwrap()
    );

    // A plugin that never reads a large stdin and exits: no deadlock.
    let deaf = fake_plugin(dir.path(), "deaf", "exit 0");
    let big = vec![b' '; 1 << 20];
    assert!(delegate::run(&deaf, Verb::Del, &vars, &big, Duration::from_secs(20)).is_ok());

    // One that hangs is killed at the bound.
    let hangs = fake_plugin(dir.path(), "hangs", "exec sleep 30");
    let started = Instant::now();
    let error =
        delegate::run(&hangs, Verb::Add, &vars, b"{}", Duration::from_millis(300)).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(error.code, ErrorCode::Internal);
    assert_eq!(
        error.msg,
        "IPAM plugin hangs did not finish ADD within 300ms: killed"
    );

    // One that fails without an error object is quoted.
    let text = fake_plugin(dir.path(), "text", "echo 'panic: something broke'; exit 3");
    let error =
        delegate::run(&text, Verb::Check, &vars, b"{}", Duration::from_secs(20)).unwrap_err();
    assert_eq!(error.code, ErrorCode::Internal);
    assert_eq!(error.msg, "IPAM plugin text failed CHECK (exit status: 3)");
    assert_eq!(error.details, "panic: something broke");

    // A result without addresses is an error, as the reference reports it.
    let empty = fake_plugin(dir.path(), "empty", r#"echo '{"cniVersion": "1.0.0"}'"#);
    let output = delegate::run(&empty, Verb::Add, &vars, b"{}", Duration::from_secs(20)).unwrap();
    assert_eq!(
        delegate::read_result("empty", &output, Version::V1_0_0)
            .unwrap_err()
            .msg,
        "IPAM plugin empty returned missing IP config"
    );
    let garbage = fake_plugin(
        dir.path(),
        "garbage",
        r#"echo '{"cniVersion": "7.0.0", "ips": []}'"#,
    );
    let output = delegate::run(&garbage, Verb::Add, &vars, b"{}", Duration::from_secs(20)).unwrap();
    assert_eq!(
        delegate::read_result("garbage", &output, Version::V1_0_0).unwrap_err().msg,
        "IPAM plugin garbage returned a result that cannot be read: cniVersion \"7.0.0\" is not one we speak (the request's is 1.0.0)"
    );
}

#[test]
fn ipam_add_and_its_undo_run_the_plugin_found_in_cni_path() {
    use ipvlan::cni::attach;
    use ipvlan::cni::config::{decode, NetConf};
    use ipvlan::cni::env::Env;

    let dir = TempDir::new("cni-ipam-add");
    let log = dir.path().join("log");
    // Logs each call; answers an ADD with `result`.
    let logging_plugin = |name: &str, result: &str| {
        fake_plugin(
            dir.path(),
            name,
            &format!(
                "echo \"$CNI_COMMAND $CNI_CONTAINERID $CNI_IFNAME\" >> {log}\n\
                 cat > /dev/null\n\
                 [ \"$CNI_COMMAND\" = ADD ] && echo '{result}'\n\
                 exit 0",
                log = log.display()
            ),
        )
    };
    logging_plugin(
        "fake-local",
        r#"{"cniVersion": "1.0.0", "ips": [{"address": "10.1.2.9/24", "gateway": "10.1.2.1"}], "dns": {"nameservers": ["10.1.2.53"]}}"#,
    );
    let env = Env::parse(
        set(
            &add_env(),
            &[("CNI_PATH", Some(dir.path().to_str().unwrap()))],
        )
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect(),
    )
    .unwrap();
    let input = CONF.replace("host-local", "fake-local");
    let conf = NetConf::read(&decode(input.as_bytes()).unwrap(), Verb::Add).unwrap();
    let result = attach::ipam_add(&env, &conf, "fake-local", input.as_bytes()).unwrap();
    let link = ipvlan::cni::result::Interface {
        name: "eth0".into(),
        sandbox: Some("/run/netns/cni-host-test".into()),
        ..Default::default()
    };
    assert_eq!(
        attach::add_result(&conf, &result, link).to_json(conf.cni_version),
        json::parse(
            r#"{"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/run/netns/cni-host-test"}],
                "ips": [{"address": "10.1.2.9/24", "gateway": "10.1.2.1", "interface": 0}],
                "dns": {"nameservers": ["10.1.2.53"]}}"#
        )
        .unwrap()
    );
    attach::ipam_undo(&env, "fake-local", input.as_bytes());
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "ADD c0ffee eth0\nDEL c0ffee eth0\n"
    );
    // A result we cannot use (an address naming an interface the result
    // does not list): the plugin's DEL gives back what it gave. Before, the
    // lease stayed until the runtime's DEL.
    logging_plugin(
        "odd-local",
        r#"{"cniVersion": "1.0.0", "ips": [{"address": "10.1.2.9/24", "interface": 0}]}"#,
    );
    std::fs::remove_file(&log).unwrap();
    let odd = attach::ipam_add(&env, &conf, "odd-local", input.as_bytes()).unwrap_err();
    assert!(odd.msg.contains("cannot be read"), "{odd}");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "ADD c0ffee eth0\nDEL c0ffee eth0\n"
    );
    let missing = attach::ipam_add(&env, &conf, "host-local", input.as_bytes()).unwrap_err();
    assert_eq!(missing.code, ErrorCode::Internal);
    assert!(
        missing
            .msg
            .starts_with("failed to find plugin \"host-local\" in path ["),
        "{missing}"
    );
}

/// As another plugin's IPAM with no ranges of its own, the ranges of
/// `runtimeConfig.ipRanges` (a runtime's `ipRanges` capability, the
/// node's pod CIDR) are leased from, as host-local does; before, every
/// ADD was code 7 "no IP ranges specified". A DEL releases the lease.
#[test]
fn ranges_from_runtime_config_alone_are_leased_from() {
    let dir = TempDir::new("cni-runtime-ranges");
    let state = dir.path().join("state");
    let conf = r#"{"cniVersion": "1.0.0", "name": "podcidr", "type": "macvlan", "master": "eth9",
        "ipam": {"type": "ipvlan"},
        "runtimeConfig": {"ipRanges": [[{"subnet": "10.8.0.0/24"}]]}}"#;
    let live = format!("/proc/{}/ns/net", std::process::id());
    let env_of = |verb: &str| {
        set(
            &add_env(),
            &[
                ("CNI_COMMAND", Some(verb)),
                ("CNI_CONTAINERID", Some("c1")),
                ("CNI_NETNS", Some(&live)),
                ("CNI_NETNS_OVERRIDE", Some("1")),
                ("IPVLAN_STATE_DIR", Some(state.to_str().unwrap())),
            ],
        )
    };
    let added = plugin(&env_of("ADD"), conf);
    assert_eq!(added.exit, Some(0), "{} {}", added.stdout, added.stderr);
    assert_eq!(
        added.json().get("ips"),
        json::parse(r#"[{"address": "10.8.0.2/24", "gateway": "10.8.0.1"}]"#)
            .ok()
            .as_ref()
    );
    assert_eq!(lease_records(&state, "podcidr").1.len(), 1);
    let deleted = plugin(&env_of("DEL"), conf);
    assert_eq!(
        deleted.exit,
        Some(0),
        "{} {}",
        deleted.stdout,
        deleted.stderr
    );
    assert!(lease_records(&state, "podcidr").1.is_empty());
}

/// STATUS in a network namespace with no default route: a config with
/// neither a master nor `ipam` is chained (its ADD takes both from
/// `prevResult`), so it is ready (before, code 50 for the missing
/// default route, and a runtime's STATUS of the conflist said not
/// ready); one with `ipam` and no master makes its link on the default
/// route's link, and is not ready without one.
#[test]
fn status_of_a_chained_config_asks_for_no_default_route() {
    common::privilege::require_root();
    let dir = TempDir::new("cni-status-chained");
    let state = dir.path().join("state");
    let status = |conf: &str| {
        let mut child = Command::new("unshare")
            .args(["--net", BIN])
            .env_clear()
            .env("CNI_COMMAND", "STATUS")
            .env("CNI_PATH", "/nonexistent/cni/bin")
            .env("IPVLAN_STATE_DIR", &state)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let _ = child.stdin.take().unwrap().write_all(conf.as_bytes());
        child.wait_with_output().unwrap()
    };
    let chained = status(r#"{"cniVersion": "1.1.0", "name": "d2", "type": "ipvlan"}"#);
    assert_eq!(
        chained.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&chained.stdout)
    );
    // Ranges from `runtimeConfig.ipRanges` alone (which STATUS is never
    // given): ready all the same.
    let runtime_ranged = status(
        r#"{"cniVersion": "1.1.0", "name": "d4", "type": "ipvlan", "master": "lo",
            "ipam": {"type": "ipvlan"}}"#,
    );
    assert_eq!(
        runtime_ranged.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&runtime_ranged.stdout)
    );
    let standalone = status(
        r#"{"cniVersion": "1.1.0", "name": "d3", "type": "ipvlan",
            "ipam": {"type": "ipvlan", "subnet": "10.1.2.0/24"}}"#,
    );
    let answer = String::from_utf8_lossy(&standalone.stdout);
    assert_eq!(standalone.status.code(), Some(1), "{answer}");
    assert!(answer.contains(r#""code": 50"#), "{answer}");
}

/// A lease whose namespace is gone (a reboot, a runtime that died before
/// its DEL) does not refuse the next ADD of its container id and
/// interface: Podman reuses both when it starts a container again after a
/// reboot, and before, every such ADD was refused ("already has addresses
/// ... DEL it first") until a DEL or a `restore`. A lease whose namespace
/// lives still refuses a second ADD, as host-local refuses it.
#[test]
fn a_lease_whose_namespace_is_gone_gives_way_to_the_same_attachment() {
    common::privilege::require_root();
    let dir = TempDir::new("cni-lease-stale");
    let state = dir.path().join("state");
    let netns = |tag: &str| Ns::add(&format!("stale-{tag}"));
    let env = |ns: &Ns| {
        let path = Path::new("/run/netns").join(&ns.0);
        set(
            &env_in(&state, "ADD", "podman-ctr"),
            &[("CNI_NETNS", Some(path.to_str().unwrap()))],
        )
    };
    let conf = macvlan_conf("stale", r#""subnet": "10.8.7.0/24""#);
    let first = netns("a");
    let answer = plugin(&env(&first), &conf);
    assert_eq!(answer.exit, Some(0), "{}", answer.stdout);
    let leased = lease_records(&state, "stale");
    // Its namespace alive: refused, nothing changed.
    let again = plugin(&env(&first), &conf);
    assert_eq!(again.exit, Some(1), "{}", again.stdout);
    assert!(
        again.stdout.contains("already has addresses for eth0"),
        "{}",
        again.stdout
    );
    assert_eq!(lease_records(&state, "stale"), leased);
    drop(first);
    let second = netns("b");
    let answer = plugin(&env(&second), &conf);
    assert_eq!(answer.exit, Some(0), "{} {}", answer.stdout, answer.stderr);
    let (ids, leases) = lease_records(&state, "stale");
    assert_eq!(ids, leased.0, "one lease record, of the same attachment");
    assert_eq!(leases.len(), 1, "{leases:?}");
    let store = ipvlan::store::StateDir::open(&state).unwrap();
    let network = store.network_by_name("stale").unwrap();
    let records = store.endpoints_of(&network.id).unwrap().items;
    assert_eq!(
        records[0].netns,
        Path::new("/run/netns")
            .join(&second.0)
            .display()
            .to_string()
    );
    let del = plugin(&set(&env(&second), &[("CNI_COMMAND", Some("DEL"))]), &conf);
    assert_eq!(del.exit, Some(0), "{}", del.stdout);
    assert_eq!(lease_records(&state, "stale"), (Vec::new(), Vec::new()));
}

/// Two CNI networks may split one subnet by disjoint `rangeStart`-`rangeEnd`
/// ranges (the networks of two tenants on one VLAN, as host-local's
/// networks may: no address can be handed out twice), and neither gives
/// way to the other, idle or not; ranges that meet are still refused as
/// overlapping. Before, the
/// second network was refused ("Pool overlaps with other one"), or the
/// first removed for it while idle.
#[test]
fn cni_networks_may_split_a_subnet_by_disjoint_ranges() {
    let dir = TempDir::new("cni-split");
    let state = dir.path().join("state");
    let range = |name: &str, start: &str, end: &str| {
        macvlan_conf(
            name,
            &format!(
                r#""ranges": [[{{"subnet": "10.8.6.0/24", "rangeStart": "10.8.6.{start}", "rangeEnd": "10.8.6.{end}"}}]]"#
            ),
        )
    };
    let a = range("tenant-a", "10", "99");
    let b = range("tenant-b", "100", "199");
    let answer = plugin(&env_in(&state, "ADD", "a1"), &a);
    assert_eq!(answer.exit, Some(0), "{}", answer.stdout);
    let answer = plugin(&env_in(&state, "ADD", "b1"), &b);
    assert_eq!(answer.exit, Some(0), "{}", answer.stdout);
    let address = |answer: &Answer| {
        answer.json().get("ips").and_then(Value::as_array).unwrap()[0]
            .get("address")
            .and_then(Value::as_str)
            .unwrap()
            .to_string()
    };
    assert_eq!(address(&answer), "10.8.6.100/24");
    assert_eq!(lease_records(&state, "tenant-a").1.len(), 1);
    // Ranges that meet another's: refused, nothing made.
    let c = range("tenant-c", "50", "150");
    plugin(&env_in(&state, "ADD", "c1"), &c).assert_error(
        7,
        "Pool overlaps with other one on this address space: 10.8.6.0/24 overlaps 10.8.6.0/24 of network tenant-a",
        "1.0.0",
    );
    assert_eq!(lease_records(&state, "tenant-c"), (Vec::new(), Vec::new()));
    assert!(
        !network_names(&state).iter().any(|n| n == "tenant-c"),
        "{:?}",
        network_names(&state)
    );
    // Idle, a network that shares no address is not removed for another.
    for (who, conf) in [("a1", &a), ("b1", &b)] {
        let del = plugin(&env_in(&state, "DEL", who), conf);
        assert_eq!(del.exit, Some(0), "{}", del.stdout);
    }
    let d = range("tenant-d", "200", "250");
    let answer = plugin(&env_in(&state, "ADD", "d1"), &d);
    assert_eq!(answer.exit, Some(0), "{}", answer.stdout);
    let mut names = network_names(&state);
    names.sort();
    assert_eq!(names, ["tenant-a", "tenant-b", "tenant-d"]);
}

/// Runs the binary through a link named `name` (as a runtime runs the file
/// it finds under a config's `type` in `CNI_PATH`) with exactly `env` and
/// `stdin`.
fn plugin_named(dir: &Path, name: &str, env: &[(String, String)], stdin: &str) -> Answer {
    let path = dir.join(name);
    if !path.exists() {
        std::os::unix::fs::symlink(BIN, &path).unwrap();
    }
    plugin_at(&path, env, stdin)
}

#[test]
fn installed_by_another_name_its_type_is_that_name_and_its_ipam_ours_in_process() {
    // Before this build, a binary installed as `ipvlan-ng` (beside the
    // reference `ipvlan`) took a config of `"type": "ipvlan-ng"` with
    // `ipam.type: ipvlan` for another plugin's IPAM call: exit 0, an
    // address and no interface, no link made.
    let dir = TempDir::new("cni-renamed");
    let state = dir.path().join("state");
    let live = format!("/proc/{}/ns/net", std::process::id());
    let env = set(
        &add_env(),
        &[
            ("CNI_NETNS", Some(&live)),
            ("CNI_NETNS_OVERRIDE", Some("1")),
            ("CNI_IFNAME", Some("ng0")),
            ("IPVLAN_STATE_DIR", Some(state.to_str().unwrap())),
        ],
    );
    let main = r#"{"cniVersion": "1.0.0", "name": "renamed", "type": "ipvlan-ng",
        "master": "nosuch9", "ipam": {"type": "ipvlan", "subnet": "10.9.3.0/24"}}"#;
    let answer = plugin_named(dir.path(), "ipvlan-ng", &env, main);
    // The main plugin: it looks for the kernel's ipvlan support and its
    // master (either missing on a host), and leases nothing.
    let error = answer.json();
    assert_eq!(answer.exit, Some(1), "{}", answer.stdout);
    let msg = error.get("msg").and_then(Value::as_str).unwrap_or_default();
    assert!(
        msg.contains("nosuch9") || msg.contains("no ipvlan support"),
        "{}",
        answer.stdout
    );
    assert!(error.get("ips").is_none(), "{}", answer.stdout);
    assert_eq!(lease_records(&state, "renamed").1, Vec::new());

    // Another plugin's IPAM by that name: a lease, no interface.
    let theirs = r#"{"cniVersion": "1.0.0", "name": "leased", "type": "macvlan",
        "master": "eth9", "mode": "bridge", "ipam": {"type": "ipvlan-ng", "subnet": "10.9.4.0/24"}}"#;
    let answer = plugin_named(dir.path(), "ipvlan-ng", &env, theirs);
    assert_eq!(answer.exit, Some(0), "{} {}", answer.stdout, answer.stderr);
    let result = answer.json();
    assert!(result.get("interfaces").is_none(), "{}", answer.stdout);
    assert_eq!(
        result
            .get("ips")
            .and_then(Value::as_array)
            .and_then(|ips| ips.first())
            .and_then(|ip| ip.get("address"))
            .and_then(Value::as_str),
        Some("10.9.4.2/24"),
        "{}",
        answer.stdout
    );
    let del = set(&env, &[("CNI_COMMAND", Some("DEL"))]);
    let answer = plugin_named(dir.path(), "ipvlan-ng", &del, theirs);
    assert_eq!(answer.exit, Some(0), "{} {}", answer.stdout, answer.stderr);
    assert_eq!(lease_records(&state, "leased").1, Vec::new());
}

/// A delegated IPAM plugin's input and output go through scratch files
/// in the temporary directory; where there is none (a minimal root, a
/// `TMPDIR` that names nothing), the error names it. Before, it said
/// only "running IPAM plugin fake-ipam: No such file or directory".
#[test]
fn a_missing_temporary_directory_is_named() {
    let dir = TempDir::new("cni-tmpdir");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    fake_plugin(&bin, "fake-ipam", "exit 0");
    let conf = CONF
        .replace("1.0.0", "1.1.0")
        .replace("host-local", "fake-ipam");
    let missing = dir.path().join("no-tmp");
    let env = vec![
        ("CNI_COMMAND".to_string(), "STATUS".to_string()),
        ("CNI_PATH".to_string(), bin.display().to_string()),
        ("TMPDIR".to_string(), missing.display().to_string()),
    ];
    let answer = plugin(&env, &conf);
    answer.assert_error(
        999,
        &format!(
            "running IPAM plugin fake-ipam: a scratch file for its input and output in {} (TMPDIR, else /tmp): No such file or directory (os error 2)",
            missing.display()
        ),
        "1.1.0",
    );
}

/// A state directory variable set but empty is the environment's fault:
/// CNI code 4 ("invalid environment variables"), not 7 (the config's),
/// for an ADD and a DEL alike. Before, it was 7.
#[test]
fn an_empty_state_dir_variable_is_code_4() {
    for command in ["ADD", "DEL"] {
        let env = set(
            &add_env(),
            &[
                ("CNI_COMMAND", Some(command)),
                ("IPVLAN_STATE_DIR", Some("")),
            ],
        );
        let answer = plugin(&env, CONF);
        let value = answer.json();
        assert_eq!(answer.exit, Some(1), "{command}: {}", answer.stdout);
        assert_eq!(
            value.get("code").and_then(Value::as_u64),
            Some(4),
            "{command}: {}",
            answer.stdout
        );
        let msg = value.get("msg").and_then(Value::as_str).unwrap_or("");
        assert!(msg.contains("IPVLAN_STATE_DIR"), "{command}: {msg}");
    }
}
