//! The built binary as a CNI plugin, driven as a runtime drives it: the
//! `CNI_*` environment, the config on stdin, the answer read from stdout
//! and compared as JSON. Nothing here touches the kernel: the verbs that
//! do are VM tests. A tiny shell script in a scratch `CNI_PATH` stands in
//! for a delegated IPAM plugin.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TempDir;
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
    let mut child = Command::new(BIN)
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
    // keep an attachment.
    let del = plugin(&set(&add_env(), &[("CNI_COMMAND", Some("DEL"))]), &mode).json();
    assert_ne!(del.get("code").and_then(Value::as_u64), Some(7), "{del}");
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

#[test]
fn our_ipam_refuses_range_bounds_it_would_not_honour() {
    let dir = TempDir::new("cni-range");
    let state = dir.path().join("state");
    let env = set(
        &add_env(),
        &[("IPVLAN_STATE_DIR", Some(state.to_str().unwrap()))],
    );
    let conf = CONF.replace(
        r#""type": "host-local", "subnet": "10.1.2.0/24""#,
        r#""type": "ipvlan", "subnet": "10.1.2.0/24", "rangeStart": "10.1.2.100""#,
    );
    assert!(conf.contains("rangeStart"));
    plugin(&env, &conf).assert_error(
        2,
        "rangeStart and rangeEnd (range 10.1.2.0/24) are not yet supported by ipam type ipvlan: give a subnet of its own, or use host-local",
        "1.0.0",
    );
    assert!(!state.join("networks").exists());
}

/// A scratch `CNI_PATH` directory holding a fake IPAM plugin `name`.
fn fake_plugin(dir: &Path, name: &str, script: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
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
    fake_plugin(
        dir.path(),
        "fake-local",
        &format!(
            r#"echo "$CNI_COMMAND $CNI_CONTAINERID $CNI_IFNAME" >> {log}
cat > /dev/null
[ "$CNI_COMMAND" = ADD ] && echo '{{"cniVersion": "1.0.0", "ips": [{{"address": "10.1.2.9/24", "gateway": "10.1.2.1"}}], "dns": {{"nameservers": ["10.1.2.53"]}}}}'
exit 0"#,
            log = log.display()
        ),
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
    let missing = attach::ipam_add(&env, &conf, "host-local", input.as_bytes()).unwrap_err();
    assert_eq!(missing.code, ErrorCode::Internal);
    assert!(
        missing
            .msg
            .starts_with("failed to find plugin \"host-local\" in path ["),
        "{missing}"
    );
}
