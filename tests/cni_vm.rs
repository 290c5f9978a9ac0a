//! The binary as a CNI plugin against a kernel with ipvlan (QEMU guest,
//! `cargo xtask vm-test --test cni_vm`), driven as a runtime drives it:
//! the `CNI_*` environment, the config on stdin, the answer compared as
//! JSON; the namespace read back with iproute2 (`ip -d -j`), the state
//! through the library.
//!
//! Each test has its own state directory, its own dummy master and its
//! own namespaces (`ip netns add`, in the guest's `/run/netns`).

mod common;
mod vm_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ipvlan::json::{self, Value};
use ipvlan::store::StateDir;
use vm_support::{addresses, ip, ip_json, ip_ok, link, link_kind};

fn binary() -> String {
    std::env::var("IPVLAN_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ipvlan").to_string())
}

/// One test's state directory, master and namespaces, removed on drop.
struct Cni {
    state: PathBuf,
    masters: Vec<String>,
    namespaces: Vec<String>,
}

/// What one plugin run printed and how it ended.
struct Answer {
    exit: Option<i32>,
    /// The signal that ended the process, if one did.
    signal: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Answer {
    fn json(&self) -> Value {
        json::parse(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}): {:?} (stderr {:?})",
                self.stdout, self.stderr
            )
        })
    }

    fn ok(&self) -> &Answer {
        assert_eq!(
            self.exit,
            Some(0),
            "stdout {} stderr {}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// An error object with `code`; returns its `msg`.
    fn error(&self, code: u64) -> String {
        let value = self.json();
        assert_eq!(self.exit, Some(1), "{}", self.stdout);
        assert_eq!(
            value.get("code").and_then(Value::as_u64),
            Some(code),
            "{}",
            self.stdout
        );
        value
            .get("msg")
            .and_then(Value::as_str)
            .unwrap()
            .to_string()
    }
}

impl Cni {
    fn new(tag: &str) -> Cni {
        let state = PathBuf::from(format!("/tmp/ipvlan-cni-vm-{tag}"));
        let _ = std::fs::remove_dir_all(&state);
        Cni {
            state,
            masters: Vec::new(),
            namespaces: Vec::new(),
        }
    }

    /// A dummy link `name` in the host, up, to serve as a master.
    fn master(&mut self, name: &str) {
        let _ = ip_ok(&["link", "del", name]);
        ip(&["link", "add", name, "type", "dummy"]);
        ip(&["link", "set", name, "up"]);
        self.masters.push(name.to_string());
    }

    /// A fresh named namespace; its path.
    fn netns(&mut self, name: &str) -> PathBuf {
        let _ = ip_ok(&["netns", "del", name]);
        ip(&["netns", "add", name]);
        self.namespaces.push(name.to_string());
        Path::new("/run/netns").join(name)
    }

    fn command(&self, verb: &str, container: &str, netns: &Path, ifname: &str) -> Command {
        let mut command = Command::new(binary());
        command
            .env_clear()
            .env("CNI_COMMAND", verb)
            .env("CNI_CONTAINERID", container)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", ifname)
            .env("CNI_PATH", "/nonexistent/cni/bin")
            .env("IPVLAN_STATE_DIR", &self.state)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    fn spawn(&self, verb: &str, container: &str, netns: &Path, conf: &str) -> Child {
        let mut child = self
            .command(verb, container, netns, "eth0")
            .spawn()
            .expect("runs the plugin");
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(conf.as_bytes());
        drop(stdin);
        child
    }

    fn plugin(&self, verb: &str, container: &str, netns: &Path, conf: &str) -> Answer {
        let output = self
            .spawn(verb, container, netns, conf)
            .wait_with_output()
            .unwrap();
        Answer {
            exit: output.status.code(),
            signal: std::os::unix::process::ExitStatusExt::signal(&output.status),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }

    /// [`Cni::plugin`] with Debian's plugins (`/usr/lib/cni`) in `CNI_PATH`,
    /// for a delegated IPAM plugin.
    fn with_debians(&self, verb: &str, container: &str, netns: &Path, conf: &str) -> Answer {
        let mut command = self.command(verb, container, netns, "eth0");
        command.env("CNI_PATH", "/usr/lib/cni");
        run_with(command, conf)
    }

    fn cli(&self, args: &[&str]) -> (Option<i32>, String) {
        self.cli_in(args, None)
    }

    /// [`Cni::cli`] with our netns directory at `netns_dir`, when given:
    /// a path under `/run/netns` is then a path to the CLI, as CRI-O's
    /// `/var/run/netns/...` are, not the name of a container of ours.
    fn cli_in(&self, args: &[&str], netns_dir: Option<&Path>) -> (Option<i32>, String) {
        let mut command = Command::new(binary());
        if let Some(dir) = netns_dir {
            command.env("IPVLAN_NETNS_DIR", dir);
        }
        let output = command
            .args(args)
            .env("IPVLAN_STATE_DIR", &self.state)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        (output.status.code(), text)
    }

    /// The network's endpoint records and address leases (owner ids).
    fn records(&self, network: &str) -> (Vec<String>, Vec<(String, String)>) {
        let store = StateDir::open(&self.state).unwrap();
        let Some(record) = store.network_named(network).unwrap() else {
            common::assert_no_network_directory_without_its_record(&self.state);
            return (Vec::new(), Vec::new());
        };
        let endpoints = store
            .endpoints_of(&record.id)
            .unwrap()
            .items
            .into_iter()
            .map(|e| e.id)
            .collect();
        let leases = store
            .addresses(&record)
            .unwrap()
            .into_iter()
            .map(|(a, owner)| (a.to_string(), owner))
            .collect();
        (endpoints, leases)
    }

    fn network_names(&self) -> Vec<String> {
        let store = StateDir::open(&self.state).unwrap();
        store
            .networks()
            .unwrap()
            .items
            .into_iter()
            .map(|n| n.name)
            .collect()
    }
}

impl Drop for Cni {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = ip_ok(&["netns", "del", ns]);
        }
        for master in &self.masters {
            let _ = ip_ok(&["link", "del", master]);
        }
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

fn conf(name: &str, master: &str, extra: &str) -> String {
    format!(
        r#"{{"cniVersion": "1.0.0", "name": "{name}", "type": "ipvlan", "master": "{master}"{extra},
            "ipam": {{"type": "ipvlan", "subnet": "10.77.0.0/16",
                      "routes": [{{"dst": "0.0.0.0/0"}}, {{"dst": "192.0.2.0/24", "gw": "10.77.0.254"}}]}}}}"#
    )
}

/// `conf` with `prevResult` set to `result` (what a runtime sends on CHECK
/// and DEL).
fn with_prev(conf: &str, result: &Value) -> String {
    let mut doc = json::parse(conf).unwrap();
    if let Value::Object(fields) = &mut doc {
        fields.push(("prevResult".to_string(), result.clone()));
    }
    doc.to_pretty().unwrap()
}

/// `value` with every object's keys sorted: JSON compared as JSON.
fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(fields) => {
            let mut fields: Vec<(String, Value)> =
                fields.iter().map(|(k, v)| (k.clone(), sorted(v))).collect();
            fields.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(fields)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// The routes of `dev` in `ns`: `dst [via gw]`.
fn routes(ns: &str, dev: &str) -> Vec<String> {
    let v = ip_json(&["-n", ns, "-4", "route", "show", "dev", dev]);
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or(&[])
        .iter()
        .map(|r| {
            let dst = r.get("dst").and_then(Value::as_str).unwrap_or("");
            match r.get("gateway").and_then(Value::as_str) {
                Some(gw) => format!("{dst} via {gw}"),
                None => dst.to_string(),
            }
        })
        .collect();
    out.sort();
    out
}

fn mac_of(ns: Option<&str>, dev: &str) -> String {
    link(ns, dev)
        .and_then(|l| l.get("address").and_then(Value::as_str).map(str::to_string))
        .unwrap()
}

/// A config's routes are added as the reference plugin adds them: one
/// that repeats a route there already (another network's default route,
/// as under Multus; the kernel's own route to the subnet) goes in beside
/// it. Before, the kernel refused it (`EEXIST`) and the ADD failed.
#[test]
fn routes_that_repeat_one_there_are_added_beside_it() {
    let mut cni = Cni::new("rep");
    cni.master("cnim9");
    let ns = cni.netns("cni-rep");
    for args in [
        &["-n", "cni-rep", "link", "add", "d0", "type", "dummy"][..],
        &["-n", "cni-rep", "link", "set", "d0", "up"],
        &["-n", "cni-rep", "addr", "add", "10.98.0.2/24", "dev", "d0"],
        &[
            "-n",
            "cni-rep",
            "route",
            "add",
            "default",
            "via",
            "10.98.0.1",
        ],
    ] {
        assert!(ip_ok(args), "ip {args:?}");
    }
    let conf = r#"{"cniVersion": "1.0.0", "name": "rep", "type": "ipvlan", "master": "cnim9",
        "ipam": {"type": "ipvlan", "subnet": "10.76.0.0/16",
                 "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.76.0.0/16"}]}}"#;
    cni.plugin("ADD", "ctr-rep", &ns, conf).ok();
    assert_eq!(
        routes("cni-rep", "eth0"),
        // A route without `gw` goes through the subnet's gateway, as the
        // reference plugin's do.
        [
            "10.76.0.0/16",
            "10.76.0.0/16 via 10.76.0.1",
            "default via 10.76.0.1"
        ]
    );
    assert_eq!(
        routes("cni-rep", "d0"),
        ["10.98.0.0/24", "default via 10.98.0.1"],
        "the route there first stays"
    );
    cni.plugin("DEL", "ctr-rep", &ns, conf).ok();
    assert_eq!(
        routes("cni-rep", "d0"),
        ["10.98.0.0/24", "default via 10.98.0.1"]
    );
}

/// CNI 1.1.0's route keys `table`, `priority` and `scope` are applied as
/// the reference plugins apply them (`mtu` and `advmss` left, as theirs
/// leave them), and our IPAM hands them on in its result as host-local
/// does; CHECK looks for a route in its table. Before, every route went to
/// the main table with the kernel's metric, the keys dropped from our
/// IPAM's result (and kept in a delegated one's, which then named routes
/// that were not there).
#[test]
fn route_table_priority_and_scope_are_applied() {
    let mut cni = Cni::new("rtab");
    cni.master("cnim70");
    let ns = cni.netns("cni-rtab");
    let conf = r#"{"cniVersion": "1.1.0", "name": "rtab", "type": "ipvlan", "master": "cnim70",
        "ipam": {"type": "ipvlan", "subnet": "10.68.0.0/24",
                 "routes": [{"dst": "0.0.0.0/0", "table": 100, "priority": 200},
                            {"dst": "192.0.2.0/24", "priority": 7, "mtu": 1400, "table": 0},
                            {"dst": "198.51.100.0/24", "scope": 200, "table": 1000}]}}"#;
    let added = cni.plugin("ADD", "ctr-rtab", &ns, conf);
    let result = added.ok().json();
    assert_eq!(
        result.get("routes").map(sorted),
        json::parse(
            r#"[{"dst": "0.0.0.0/0", "table": 100, "priority": 200},
                {"dst": "192.0.2.0/24", "priority": 7, "mtu": 1400, "table": 0},
                {"dst": "198.51.100.0/24", "scope": 200, "table": 1000}]"#
        )
        .ok()
        .as_ref()
        .map(sorted),
        "the keys handed on"
    );
    let shown = |table: &str| {
        let v = ip_json(&[
            "-n", "cni-rtab", "-4", "route", "show", "table", table, "dev", "eth0",
        ]);
        let mut out: Vec<String> = v
            .as_array()
            .unwrap_or(&[])
            .iter()
            .map(|r| {
                let field = |key: &str| match r.get(key) {
                    Some(Value::String(text)) => text.clone(),
                    Some(number @ Value::Number(_)) => number.as_u64().unwrap().to_string(),
                    _ => "-".to_string(),
                };
                format!(
                    "{} via {} metric {} scope {}",
                    field("dst"),
                    field("gateway"),
                    field("metric"),
                    field("scope")
                )
            })
            .collect();
        out.sort();
        out
    };
    assert_eq!(
        shown("100"),
        ["default via 10.68.0.1 metric 200 scope -"],
        "table 100"
    );
    assert_eq!(
        shown("1000"),
        ["198.51.100.0/24 via 10.68.0.1 metric - scope site"],
        "table 1000 (past rtm_table's byte)"
    );
    assert!(
        shown("main").contains(&"192.0.2.0/24 via 10.68.0.1 metric 7 scope -".to_string()),
        "main: {:?}",
        shown("main")
    );
    assert!(
        !shown("main").iter().any(|r| r.starts_with("default")),
        "no default route in main"
    );

    // CHECK finds each route in its table (table 0 is main, as the kernel
    // files it); one that is not in the table its result names fails.
    let check = with_prev(conf, &result);
    cni.plugin("CHECK", "ctr-rtab", &ns, &check).ok();
    let elsewhere = check.replace(r#""table": 100"#, r#""table": 101"#);
    let msg = cni.plugin("CHECK", "ctr-rtab", &ns, &elsewhere).error(999);
    assert!(msg.contains("lacks route 0.0.0.0/0 in table 101"), "{msg}");
    cni.plugin("DEL", "ctr-rtab", &ns, &check).ok();
    for table in ["100", "1000"] {
        let left = ip_json(&["-n", "cni-rtab", "-4", "route", "show", "table", table]);
        assert!(
            left.as_array().is_none_or(|routes| routes.is_empty()),
            "table {table} after DEL: {left:?}"
        );
    }

    // The same routes asked for by a 1.0.0 config: the result keeps their
    // keys, as the reference plugins write them in every version, so the
    // CHECK of the cached result looks in their tables (before, the keys
    // went below 1.1.0 and CHECK looked for the default route in main).
    let conf = conf.replace(r#""cniVersion": "1.1.0""#, r#""cniVersion": "1.0.0""#);
    let result = cni.plugin("ADD", "ctr-rtab", &ns, &conf).ok().json();
    let routes = result.get("routes").and_then(Value::as_array).unwrap();
    assert!(
        routes
            .iter()
            .any(|r| r.get("table").and_then(Value::as_u64) == Some(100)),
        "{result:?}"
    );
    let check = with_prev(&conf, &result);
    cni.plugin("CHECK", "ctr-rtab", &ns, &check).ok();
    cni.plugin("DEL", "ctr-rtab", &ns, &check).ok();
}

/// An ADD whose link was made but not configured (a config route the
/// kernel refuses: its gateway is off-link) and which the kernel would not
/// let delete keeps the attachment's record, `detaching`, and its lease,
/// for `restore` to take away; before, both went and the link stayed,
/// named by nothing. The runtime's DEL then finds nothing left.
#[test]
fn an_add_whose_link_stays_keeps_its_record_for_restore() {
    let mut cni = Cni::new("stays");
    cni.master("cnim61");
    let ns = cni.netns("cni-stays");
    let conf = r#"{"cniVersion": "1.0.0", "name": "stays", "type": "ipvlan", "master": "cnim61",
        "ipam": {"type": "ipvlan", "subnet": "10.73.0.0/24",
                 "routes": [{"dst": "10.99.0.0/16", "gw": "172.31.0.1"}]}}"#;
    add_failing_to_delete(&cni, "ctr-stays", "cni-stays", "stays", conf);
    let (code, text) = cni.cli(&["restore"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        link(Some("cni-stays"), "eth0").is_none(),
        "restore deleted it"
    );
    assert_eq!(cni.records("stays"), (Vec::new(), Vec::new()));
    cni.plugin("DEL", "ctr-stays", &ns, conf).ok();

    // The same with the master in the namespace (`linkInContainer`).
    let ns = cni.netns("cni-stays2");
    ip(&["-n", "cni-stays2", "link", "add", "eth1", "type", "dummy"]);
    ip(&["-n", "cni-stays2", "link", "set", "eth1", "up"]);
    let inside = r#"{"cniVersion": "1.0.0", "name": "stays2", "type": "ipvlan", "master": "eth1",
        "linkInContainer": true,
        "ipam": {"type": "ipvlan", "subnet": "10.74.0.0/24",
                 "routes": [{"dst": "10.99.0.0/16", "gw": "172.31.0.1"}]}}"#;
    add_failing_to_delete(&cni, "ctr-stays2", "cni-stays2", "stays2", inside);
    cni.plugin("DEL", "ctr-stays2", &ns, inside).ok();
    assert!(link(Some("cni-stays2"), "eth0").is_none(), "DEL deleted it");
    assert_eq!(cni.records("stays2"), (Vec::new(), Vec::new()));
}

/// ADD of `conf` for `container` in the namespace `ns` (under
/// `/run/netns`), with the kernel refusing every delete of the link: the
/// ADD fails, the link stays, and the attachment keeps its record and its
/// lease on network `network`.
fn add_failing_to_delete(cni: &Cni, container: &str, ns: &str, network: &str, conf: &str) {
    let mut add = cni.command("ADD", container, &Path::new("/run/netns").join(ns), "eth0");
    add.env("IPVLAN_FAULT_FORCE", "endpoint: delete refused");
    let answer = run_with(add, conf);
    assert_eq!(answer.exit, Some(1), "{}", answer.stdout);
    assert!(link(Some(ns), "eth0").is_some(), "the link stays");
    let (endpoints, leases) = cni.records(network);
    assert_eq!(endpoints.len(), 1, "its record kept: {}", answer.stdout);
    assert_eq!(leases.len(), 1, "its lease kept");
}

#[test]
fn add_check_del_with_our_ipam() {
    let mut cni = Cni::new("acd");
    cni.master("cnim1");
    let ns = cni.netns("cni-acd");
    let conf = conf("acd", "cnim1", "");
    let answer = cni.plugin("ADD", "ctr-acd", &ns, &conf);
    answer.ok();
    let result = answer.json();
    let expected = json::parse(&format!(
        r#"{{"cniVersion": "1.0.0",
            "interfaces": [{{"name": "eth0", "mac": "{mac}", "sandbox": "{ns}"}}],
            "ips": [{{"address": "10.77.0.2/16", "gateway": "10.77.0.1", "interface": 0}}],
            "routes": [{{"dst": "0.0.0.0/0"}}, {{"dst": "192.0.2.0/24", "gw": "10.77.0.254"}}]}}"#,
        mac = mac_of(None, "cnim1"),
        ns = ns.display()
    ))
    .unwrap();
    assert_eq!(sorted(&result), sorted(&expected), "{}", answer.stdout);

    // The kernel holds what the result says.
    let l = link(Some("cni-acd"), "eth0").expect("eth0 in the namespace");
    assert_eq!(link_kind(&l).as_deref(), Some("ipvlan"));
    let data = l.get("linkinfo").and_then(|i| i.get("info_data")).unwrap();
    assert_eq!(data.get("mode").and_then(Value::as_str), Some("l2"));
    assert_eq!(addresses("cni-acd", "eth0"), vec!["10.77.0.2/16"]);
    assert_eq!(
        routes("cni-acd", "eth0"),
        [
            "10.77.0.0/16",
            "192.0.2.0/24 via 10.77.0.254",
            "default via 10.77.0.1"
        ]
    );
    // Seen by the CLI as an ordinary network, marked; not removable while
    // attached.
    let (endpoints, leases) = cni.records("acd");
    assert_eq!(
        endpoints,
        vec![ipvlan::driver::attachment_id("ctr-acd", "eth0")]
    );
    assert_eq!(
        leases,
        vec![("10.77.0.2".to_string(), endpoints[0].clone())]
    );
    let (code, text) = cni.cli(&["network", "rm", "acd"]);
    assert_ne!(code, Some(0), "{text}");

    // CHECK against the result: fine; against another MAC, or after the
    // address is taken away, 999 saying what differs.
    let prev = with_prev(&conf, &result);
    cni.plugin("CHECK", "ctr-acd", &ns, &prev).ok();
    let mac = mac_of(None, "cnim1");
    let other_mac = with_prev(
        &conf,
        &json::parse(&answer.stdout.replace(&mac, "02:00:00:00:00:01")).unwrap(),
    );
    let msg = cni.plugin("CHECK", "ctr-acd", &ns, &other_mac).error(999);
    assert_eq!(
        msg,
        format!(
            "eth0 in {} has MAC {mac}, the result says 02:00:00:00:00:01",
            ns.display()
        )
    );
    // A result that lists our interface in another namespace, or not at
    // all, is not this attachment's: refused, as the reference refuses it.
    // Before, CHECK compared nothing of it but the link's kind and mode.
    let sandbox = format!("\"sandbox\": \"{}\"", ns.display());
    for elsewhere in [
        answer
            .stdout
            .replace(&sandbox, "\"sandbox\": \"/run/netns/other\""),
        answer
            .stdout
            .replace("\"name\": \"eth0\"", "\"name\": \"eth9\""),
    ] {
        assert_ne!(elsewhere, answer.stdout, "the result is changed");
        let elsewhere = with_prev(&conf, &json::parse(&elsewhere).unwrap());
        let msg = cni.plugin("CHECK", "ctr-acd", &ns, &elsewhere).error(999);
        assert_eq!(
            msg,
            format!(
                "prevResult lists no interface eth0 in {}: it is not this attachment's result",
                ns.display()
            )
        );
    }
    ip(&[
        "-n",
        "cni-acd",
        "addr",
        "del",
        "10.77.0.2/16",
        "dev",
        "eth0",
    ]);
    let msg = cni.plugin("CHECK", "ctr-acd", &ns, &prev).error(999);
    assert_eq!(
        msg,
        format!(
            "eth0 in {} lacks address 10.77.0.2/16 of the result (it has none)",
            ns.display()
        )
    );

    // DEL: link, lease and record gone; DEL again: success.
    cni.plugin("DEL", "ctr-acd", &ns, &prev).ok();
    assert!(link(Some("cni-acd"), "eth0").is_none());
    assert_eq!(cni.records("acd"), (Vec::new(), Vec::new()));
    let again = cni.plugin("DEL", "ctr-acd", &ns, &prev);
    again.ok();
    assert_eq!(again.stdout, "");
    // The idle network goes with the CLI.
    let (code, text) = cni.cli(&["network", "rm", "acd"]);
    assert_eq!(code, Some(0), "{text}");
}

#[test]
fn results_are_written_in_the_requests_version() {
    let mut cni = Cni::new("ver");
    cni.master("cnim2");
    let ns = cni.netns("cni-ver");
    let conf = conf("ver", "cnim2", "").replace("1.0.0", "0.3.1");
    let answer = cni.plugin("ADD", "ctr-ver", &ns, &conf);
    answer.ok();
    let result = answer.json();
    assert_eq!(
        result.get("cniVersion").and_then(Value::as_str),
        Some("0.3.1")
    );
    let ip0 = &result.get("ips").and_then(Value::as_array).unwrap()[0];
    assert_eq!(ip0.get("version").and_then(Value::as_str), Some("4"));
    cni.plugin("DEL", "ctr-ver", &ns, &conf).ok();
}

#[test]
fn del_after_the_namespace_is_gone_leaves_nothing() {
    let mut cni = Cni::new("gone");
    cni.master("cnim3");
    let ns = cni.netns("cni-gone");
    let conf = conf("gone", "cnim3", "");
    cni.plugin("ADD", "ctr-gone", &ns, &conf).ok();
    ip(&["netns", "del", "cni-gone"]);
    let answer = cni.plugin("DEL", "ctr-gone", &ns, &conf);
    answer.ok();
    assert_eq!(cni.records("gone"), (Vec::new(), Vec::new()));
    // An unknown container: success too.
    cni.plugin("DEL", "never-added", &ns, &conf).ok();
}

/// A namespace that is there but cannot be entered (a policy refusing
/// `setns`) is no namespace gone: DEL fails and keeps the link, its
/// record and its address (given out again, it would be a duplicate on
/// the wire), until a DEL that can enter removes them.
#[test]
fn del_that_cannot_enter_a_live_namespace_fails_and_keeps_everything() {
    let mut cni = Cni::new("noenter");
    cni.master("cnim9");
    let ns = cni.netns("cni-noenter");
    let conf = conf("noenter", "cnim9", "");
    cni.plugin("ADD", "ctr-noenter", &ns, &conf).ok();
    let before = cni.records("noenter");
    assert_eq!(before.0.len(), 1, "{before:?}");
    let mut command = cni.command("DEL", "ctr-noenter", &ns, "eth0");
    command.env("IPVLAN_FAULT_FORCE", "netns: entering refused");
    let answer = run_with(command, &conf);
    assert_eq!(answer.exit, Some(1), "{} {}", answer.stdout, answer.stderr);
    assert!(
        answer.stdout.contains("entering network namespace"),
        "{}",
        answer.stdout
    );
    assert!(link(Some("cni-noenter"), "eth0").is_some(), "the link went");
    assert_eq!(cni.records("noenter"), before);
    cni.plugin("DEL", "ctr-noenter", &ns, &conf).ok();
    assert!(link(Some("cni-noenter"), "eth0").is_none());
    assert_eq!(cni.records("noenter"), (Vec::new(), Vec::new()));
}

#[test]
fn an_existing_ifname_is_refused_before_anything_is_made() {
    let mut cni = Cni::new("taken");
    cni.master("cnim4");
    let ns = cni.netns("cni-taken");
    ip(&["-n", "cni-taken", "link", "add", "eth0", "type", "dummy"]);
    let conf = conf("taken", "cnim4", "");
    let msg = cni.plugin("ADD", "ctr-taken", &ns, &conf).error(999);
    assert_eq!(
        msg,
        format!(
            "interface eth0 already exists in {}; nothing was done",
            ns.display()
        )
    );
    // Not even the network record; their link untouched, and DEL leaves a
    // link that is not ipvlan alone.
    assert_eq!(cni.network_names(), Vec::<String>::new());
    cni.plugin("DEL", "ctr-taken", &ns, &conf).ok();
    let l = link(Some("cni-taken"), "eth0").expect("their dummy stays");
    assert_eq!(link_kind(&l).as_deref(), Some("dummy"));
}

#[test]
fn another_config_for_a_live_network_is_code_7() {
    let mut cni = Cni::new("conflict");
    cni.master("cnim5");
    let a = cni.netns("cni-conf-a");
    let b = cni.netns("cni-conf-b");
    let l2 = conf("conflict", "cnim5", "");
    let l3 = conf("conflict", "cnim5", r#", "mode": "l3""#);
    cni.plugin("ADD", "ctr-a", &a, &l2).ok();
    let msg = cni.plugin("ADD", "ctr-b", &b, &l3).error(7);
    assert!(
        msg.starts_with("network conflict has 1 attachment(s) made with another config"),
        "{msg}"
    );
    assert!(link(Some("cni-conf-b"), "eth0").is_none());
    // Once idle, the new config takes the name.
    cni.plugin("DEL", "ctr-a", &a, &l2).ok();
    cni.plugin("ADD", "ctr-b", &b, &l3).ok();
    let l = link(Some("cni-conf-b"), "eth0").unwrap();
    let data = l.get("linkinfo").and_then(|i| i.get("info_data")).unwrap();
    assert_eq!(data.get("mode").and_then(Value::as_str), Some("l3"));
    // A CLI network's name is not taken over, and the CLI's shared-parent
    // guard holds across both: one mode and flag per master.
    let c = cni.netns("cni-conf-c");
    cni.master("cnim5b");
    let (code, text) = cni.cli(&["network", "create", "-o", "parent=cnim5b", "clinet"]);
    assert_eq!(code, Some(0), "{text}");
    let msg = cni
        .plugin("ADD", "ctr-c", &c, &conf("clinet", "cnim5b", ""))
        .error(7);
    assert!(msg.contains("was not made by CNI"), "{msg}");
    // The overlap check too, while "conflict" holds 10.77.0.0/16 for ctr-b.
    let other = conf("other", "cnim5b", "");
    let msg = cni.plugin("ADD", "ctr-c", &c, &other).error(7);
    assert_eq!(
        msg,
        "Pool overlaps with other one on this address space: 10.77.0.0/16 overlaps 10.77.0.0/16 of network conflict"
    );
    let moved = other.replace("10.77.0.0/16", "10.79.0.0/16").replace(
        r#""master": "cnim5b""#,
        r#""master": "cnim5b", "mode": "l3""#,
    );
    let msg = cni.plugin("ADD", "ctr-c", &c, &moved).error(7);
    assert_eq!(
        msg,
        "network clinet is already using parent interface cnim5b with ipvlan mode l2 and flag bridge; a network on the same parent must use the same mode and flag"
    );
    assert!(!cni.network_names().contains(&"other".to_string()));
    assert!(link(Some("cni-conf-c"), "eth0").is_none());
    // Once "conflict" holds nothing, a network on its subnet takes its
    // place: the idle one goes (a conflist renamed).
    cni.plugin("DEL", "ctr-b", &b, &l3).ok();
    cni.plugin("ADD", "ctr-c", &c, &other).ok();
    let names = cni.network_names();
    assert!(
        names.contains(&"other".to_string()) && !names.contains(&"conflict".to_string()),
        "{names:?}"
    );
    cni.plugin("DEL", "ctr-c", &c, &other).ok();
    cni.cli(&["network", "rm", "clinet"]);
}

#[test]
fn a_vlan_master_is_made_on_first_use_and_goes_with_the_last_attachment() {
    let mut cni = Cni::new("vlan");
    cni.master("cnim6");
    let ns = cni.netns("cni-vlan");
    let conf = conf("vlan", "cnim6.42", "");
    cni.plugin("ADD", "ctr-vlan", &ns, &conf).ok();
    let vlan = link(None, "cnim6.42").expect("the VLAN master");
    assert_eq!(link_kind(&vlan).as_deref(), Some("vlan"));
    cni.plugin("DEL", "ctr-vlan", &ns, &conf).ok();
    assert!(link(None, "cnim6.42").is_none(), "the VLAN master stayed");
    // Made again by the next ADD, gone again with its DEL.
    cni.plugin("ADD", "ctr-vlan", &ns, &conf).ok();
    assert!(link(None, "cnim6.42").is_some());
    cni.plugin("DEL", "ctr-vlan", &ns, &conf).ok();
    assert!(link(None, "cnim6.42").is_none());
    // `restore` does not make it again for an idle network...
    let (code, text) = cni.cli(&["restore"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        link(None, "cnim6.42").is_none(),
        "restore re-made the idle VLAN master: {text}"
    );
    // ...and deletes it with the last attachment when that goes because
    // its namespace vanished.
    cni.plugin("ADD", "ctr-vlan", &ns, &conf).ok();
    ip(&["netns", "del", "cni-vlan"]);
    let (code, text) = cni.cli(&["restore"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(cni.records("vlan"), (Vec::new(), Vec::new()), "{text}");
    assert!(
        link(None, "cnim6.42").is_none(),
        "the VLAN master outlived its last attachment: {text}"
    );
}

/// Two CNI networks on one `NAME.VLANID` master we made: the master goes
/// with the last attachment of either, whichever made it. CNI network
/// records stay when idle, and each used to keep the master for the other
/// for good.
#[test]
fn a_vlan_master_shared_by_two_cni_networks_goes_with_the_last_attachment() {
    let mut cni = Cni::new("shared");
    cni.master("cnim43");
    let ns1 = cni.netns("cni-shared1");
    let ns2 = cni.netns("cni-shared2");
    let one = conf("shared1", "cnim43.46", "");
    let two = conf("shared2", "cnim43.46", "").replace("10.77.", "10.78.");
    for (first, second) in [
        (("ctr-s1", &ns1, &one), ("ctr-s2", &ns2, &two)),
        (("ctr-s2", &ns2, &two), ("ctr-s1", &ns1, &one)),
    ] {
        cni.plugin("ADD", first.0, first.1, first.2).ok();
        cni.plugin("ADD", second.0, second.1, second.2).ok();
        cni.plugin("DEL", first.0, first.1, first.2).ok();
        assert!(
            link(None, "cnim43.46").is_some(),
            "the master went while {} is attached",
            second.0
        );
        cni.plugin("DEL", second.0, second.1, second.2).ok();
        assert!(
            link(None, "cnim43.46").is_none(),
            "the master stayed after the last attachment ({}) went",
            second.0
        );
    }
}

#[test]
fn parallel_adds_get_distinct_addresses_and_dels_leave_nothing() {
    const N: usize = 32;
    let mut cni = Cni::new("par");
    cni.master("cnim7");
    let namespaces: Vec<PathBuf> = (0..N).map(|i| cni.netns(&format!("cni-par{i}"))).collect();
    let conf = conf("par", "cnim7", "");
    let children: Vec<Child> = namespaces
        .iter()
        .enumerate()
        .map(|(i, ns)| cni.spawn("ADD", &format!("ctr-par{i}"), ns, &conf))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for child in children {
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{stdout} {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let result = json::parse(&stdout).unwrap();
        let address = result.get("ips").and_then(Value::as_array).unwrap()[0]
            .get("address")
            .and_then(Value::as_str)
            .unwrap()
            .to_string();
        assert!(seen.insert(address.clone()), "{address} handed out twice");
    }
    assert_eq!(seen.len(), N);
    for i in 0..N {
        assert_eq!(addresses(&format!("cni-par{i}"), "eth0").len(), 1);
    }
    let (endpoints, leases) = cni.records("par");
    assert_eq!((endpoints.len(), leases.len()), (N, N));
    let children: Vec<Child> = namespaces
        .iter()
        .enumerate()
        .map(|(i, ns)| cni.spawn("DEL", &format!("ctr-par{i}"), ns, &conf))
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&output.stdout)
        );
    }
    for i in 0..N {
        assert!(link(Some(&format!("cni-par{i}")), "eth0").is_none());
    }
    assert_eq!(cni.records("par"), (Vec::new(), Vec::new()));
}

/// An ADD killed at each of its kill points (not after a sleep, which may
/// land before the ADD began or after it ended), then the runtime's DEL:
/// nothing is left, and the namespace takes the attachment again.
#[test]
fn sigkill_during_add_then_del_leaves_nothing() {
    let mut cni = Cni::new("kill");
    cni.master("cnim8");
    let ns = cni.netns("cni-kill");
    let conf = conf("kill", "cnim8", "");
    // The network first, so the kills land in the attach itself.
    cni.plugin("ADD", "warmup", &ns, &conf).ok();
    cni.plugin("DEL", "warmup", &ns, &conf).ok();
    at_each_kill_point_of_an_add(&cni, "ctr-kill", &ns, &conf, |kill_at, hits| {
        assert!(
            link(Some("cni-kill"), "eth0").is_none(),
            "hit {kill_at} of {hits}: eth0 left"
        );
        assert_eq!(
            cni.records("kill"),
            (Vec::new(), Vec::new()),
            "hit {kill_at} of {hits}"
        );
        // And the namespace takes the attachment again.
        cni.plugin("ADD", "ctr-kill", &ns, &conf).ok();
        cni.plugin("DEL", "ctr-kill", &ns, &conf).ok();
    });
}

#[test]
fn gc_removes_what_the_runtime_no_longer_lists() {
    let mut cni = Cni::new("gc");
    cni.master("cnim9");
    let keep = cni.netns("cni-gc-keep");
    let drop = cni.netns("cni-gc-drop");
    let conf = conf("gc", "cnim9", "").replace("1.0.0", "1.1.0");
    cni.plugin("ADD", "ctr-keep", &keep, &conf).ok();
    cni.plugin("ADD", "ctr-drop", &drop, &conf).ok();
    let gc = conf.replacen(
        '{',
        r#"{"cni.dev/valid-attachments": [{"containerID": "ctr-keep", "ifname": "eth0"}], "#,
        1,
    );
    let mut command = cni.command("GC", "unused", &keep, "eth0");
    for var in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
        command.env_remove(var);
    }
    run_with(command, &gc).ok();
    assert!(link(Some("cni-gc-drop"), "eth0").is_none());
    assert!(link(Some("cni-gc-keep"), "eth0").is_some());
    let (endpoints, leases) = cni.records("gc");
    let kept = ipvlan::driver::attachment_id("ctr-keep", "eth0");
    assert_eq!(endpoints, vec![kept.clone()]);
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].1, kept);
    cni.plugin("DEL", "ctr-keep", &keep, &conf).ok();
}

/// A config whose addresses come from Debian's host-local, with its
/// leases under `data_dir`.
fn host_local_conf(name: &str, master: &str, data_dir: &Path) -> String {
    format!(
        r#"{{"cniVersion": "1.0.0", "name": "{name}", "type": "ipvlan", "master": "{master}",
            "ipam": {{"type": "host-local", "subnet": "10.78.0.0/24", "dataDir": "{}",
                      "routes": [{{"dst": "0.0.0.0/0"}}]}}}}"#,
        data_dir.display()
    )
}

/// host-local's lease files (address-named) for network `name`.
fn host_local_leases(data_dir: &Path, name: &str) -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir(data_dir.join(name))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.parse::<std::net::IpAddr>().is_ok())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// A reboot (the namespace gone), `ipvlan restore` at boot as the README
/// asks, then the runtime's ADD of the same container and interface (as
/// Podman starts its containers again): restore keeps an attachment
/// whose addresses came from a delegated IPAM plugin, which only the
/// runtime can run (its `CNI_PATH`), so the ADD releases it first, the
/// delegated DEL included, and host-local hands its address out again.
/// Before, restore dropped our record and left host-local's lease, and
/// every such ADD failed on host-local's "duplicate allocation".
#[test]
fn a_delegated_attachment_restore_keeps_is_added_again_after_a_reboot() {
    let mut cni = Cni::new("hlboot");
    cni.master("cnim14");
    let ns = cni.netns("cni-hlboot");
    let data = cni.state.with_extension("host-local");
    let _ = std::fs::remove_dir_all(&data);
    let conf = host_local_conf("hlboot", "cnim14", &data);
    cni.with_debians("ADD", "ctr-hlboot", &ns, &conf).ok();
    assert_eq!(host_local_leases(&data, "hlboot"), vec!["10.78.0.2"]);
    // The reboot: the namespace goes, host-local's lease file stays.
    ip(&["netns", "del", "cni-hlboot"]);
    let (code, text) = cni.cli(&["restore"]);
    assert_eq!(code, Some(0), "{text}");
    let ns = cni.netns("cni-hlboot");
    let again = cni.with_debians("ADD", "ctr-hlboot", &ns, &conf);
    again.ok();
    // The old lease given back, one for the new link (host-local walks on
    // from the address it handed out last).
    let leased = host_local_leases(&data, "hlboot");
    assert_eq!(leased.len(), 1, "{leased:?}");
    assert_eq!(
        addresses("cni-hlboot", "eth0"),
        vec![format!("{}/24", leased[0])]
    );
    assert!(
        text.contains("link missing, left to its CNI runtime: hlboot: "),
        "{text}"
    );
    cni.with_debians("DEL", "ctr-hlboot", &ns, &conf).ok();
    assert_eq!(host_local_leases(&data, "hlboot"), Vec::<String>::new());
    assert_eq!(cni.records("hlboot"), (Vec::new(), Vec::new()));
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn delegated_host_local_add_check_del() {
    let mut cni = Cni::new("hl");
    cni.master("cnim10");
    let ns = cni.netns("cni-hl");
    let data = cni.state.with_extension("host-local");
    let _ = std::fs::remove_dir_all(&data);
    let conf = host_local_conf("hl", "cnim10", &data);
    let mut add = cni.command("ADD", "ctr-hl", &ns, "eth0");
    add.env("CNI_PATH", "/usr/lib/cni");
    let answer = run_with(add, &conf);
    answer.ok();
    let result = answer.json();
    let ip0 = &result.get("ips").and_then(Value::as_array).unwrap()[0];
    assert_eq!(
        ip0.get("address").and_then(Value::as_str),
        Some("10.78.0.2/24")
    );
    assert_eq!(addresses("cni-hl", "eth0"), vec!["10.78.0.2/24"]);
    assert_eq!(host_local_leases(&data, "hl"), vec!["10.78.0.2"]);
    // Recorded, not leased by us.
    let (endpoints, leases) = cni.records("hl");
    assert_eq!(endpoints.len(), 1);
    assert_eq!(leases, Vec::new());

    let prev = with_prev(&conf, &result);
    let mut check = cni.command("CHECK", "ctr-hl", &ns, "eth0");
    check.env("CNI_PATH", "/usr/lib/cni");
    run_with(check, &prev).ok();
    // host-local's address is none of our IPAM's to file: restore keeps
    // the attachment as it is (before: "address 10.78.0.2 lies in no
    // subnet of the network", exit 1).
    restore_twice_changes_nothing(&cni, "host-local");
    assert_eq!(addresses("cni-hl", "eth0"), vec!["10.78.0.2/24"]);
    assert_eq!(cni.records("hl"), (endpoints, Vec::new()));

    let mut del = cni.command("DEL", "ctr-hl", &ns, "eth0");
    del.env("CNI_PATH", "/usr/lib/cni");
    run_with(del, &prev).ok();
    assert!(link(Some("cni-hl"), "eth0").is_none());
    assert_eq!(host_local_leases(&data, "hl"), Vec::<String>::new());
    assert_eq!(cni.records("hl"), (Vec::new(), Vec::new()));
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn an_existing_ifname_is_refused_before_a_delegated_plugin_allocates() {
    let mut cni = Cni::new("hltaken");
    cni.master("cnim12");
    let ns = cni.netns("cni-hltaken");
    ip(&["-n", "cni-hltaken", "link", "add", "eth0", "type", "dummy"]);
    let data = cni.state.with_extension("host-local");
    let _ = std::fs::remove_dir_all(&data);
    let conf = host_local_conf("hltaken", "cnim12", &data);
    let mut add = cni.command("ADD", "ctr-hltaken", &ns, "eth0");
    add.env("CNI_PATH", "/usr/lib/cni");
    let msg = run_with(add, &conf).error(999);
    assert_eq!(
        msg,
        format!(
            "interface eth0 already exists in {}; nothing was done",
            ns.display()
        )
    );
    // host-local never ran: it leaves its cursor file behind even when
    // its lease is released.
    let files: Vec<String> = std::fs::read_dir(data.join("hltaken"))
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(files, Vec::<String>::new(), "host-local ran");
    assert_eq!(cni.network_names(), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn del_by_us_cleans_up_after_the_reference_plugin() {
    let mut cni = Cni::new("ref");
    cni.master("cnim11");
    let ns = cni.netns("cni-ref");
    let data = cni.state.with_extension("host-local");
    let _ = std::fs::remove_dir_all(&data);
    let conf = host_local_conf("refnet", "cnim11", &data);
    // ADD by Debian's reference ipvlan plugin.
    let mut add = cni.command("ADD", "ctr-ref", &ns, "eth0");
    add.env("CNI_PATH", "/usr/lib/cni");
    let mut reference = Command::new("/usr/lib/cni/ipvlan");
    reference.envs(add.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
    reference
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let answer = run_with(reference, &conf);
    answer.ok();
    assert_eq!(
        link_kind(&link(Some("cni-ref"), "eth0").unwrap()).as_deref(),
        Some("ipvlan")
    );
    assert_eq!(host_local_leases(&data, "refnet").len(), 1);
    // DEL by us: its link (ipvlan, whoever made it) and its lease go.
    let mut del = cni.command("DEL", "ctr-ref", &ns, "eth0");
    del.env("CNI_PATH", "/usr/lib/cni");
    run_with(del, &with_prev(&conf, &answer.json())).ok();
    assert!(link(Some("cni-ref"), "eth0").is_none());
    assert_eq!(link_names("cni-ref"), ["lo"]);
    assert_eq!(host_local_leases(&data, "refnet"), Vec::<String>::new());
    assert_eq!(cni.records("refnet"), (Vec::new(), Vec::new()));
    let _ = std::fs::remove_dir_all(&data);
}

/// Runs a prepared plugin command with `stdin`.
/// STATUS of a config that names no master checks the master its network
/// was made on (ADD keeps to it) rather than the host's default route:
/// with that master gone, code 50, though a default route is there. Before,
/// only the default route was looked at: ready, while every ADD failed.
/// The plugin runs in a namespace of its own, standing for the host, whose
/// default route moves from `up0` to `up1`.
#[test]
fn status_without_a_master_checks_the_one_its_network_was_made_on() {
    let mut cni = Cni::new("status-made-on");
    let host = "cni-st-host";
    let _ = ip_ok(&["netns", "del", host]);
    ip(&["netns", "add", host]);
    cni.namespaces.push(host.to_string());
    let container = cni.netns("cni-st-c");
    let uplink = |name: &str| {
        ip(&["-n", host, "link", "add", name, "type", "dummy"]);
        ip(&["-n", host, "link", "set", name, "up"]);
        ip(&["-n", host, "route", "add", "default", "dev", name]);
    };
    uplink("up0");
    let conf = r#"{"cniVersion": "1.1.0", "name": "st", "type": "ipvlan",
        "ipam": {"type": "ipvlan", "subnet": "10.85.0.0/24"}}"#;
    let in_host_with = |verb: &str, conf: &str| {
        let plain = cni.command(verb, "ctr-st", &container, "eth0");
        let mut wrapped = Command::new(vm_support::ip_path());
        wrapped.args(["netns", "exec", host, &binary()]).env_clear();
        for (key, value) in plain.get_envs() {
            if let Some(value) = value {
                wrapped.env(key, value);
            }
        }
        run_with(wrapped, conf)
    };
    let in_host = |verb: &str| in_host_with(verb, conf);
    in_host("ADD").ok();
    in_host("STATUS").ok();
    ip(&["-n", host, "link", "del", "up0"]);
    uplink("up1");
    let msg = in_host("STATUS").error(50);
    assert!(msg.contains("master up0 does not exist"), "{msg}");
    in_host("DEL").ok();

    // Made on an admin's VLAN link, which goes while its base stays: ADD
    // does not make an admin's link again, so neither does STATUS count
    // the base (it does for a `NAME.VLANID` the config names, or one the
    // network made).
    // A fresh store: the idle network of up0 would be taken up again.
    std::fs::remove_dir_all(&cni.state).unwrap();
    ip(&["-n", host, "route", "del", "default"]);
    ip(&[
        "-n", host, "link", "add", "link", "up1", "name", "up1.100", "type", "vlan", "id", "100",
    ]);
    ip(&["-n", host, "link", "set", "up1.100", "up"]);
    ip(&["-n", host, "route", "add", "default", "dev", "up1.100"]);
    in_host("ADD").ok();
    ip(&["-n", host, "link", "del", "up1.100"]);
    uplink("up2");
    let msg = in_host("STATUS").error(50);
    assert!(msg.contains("master up1.100 does not exist"), "{msg}");
    in_host("DEL").ok();

    // The same admin's link named by the config: as ADD, once the network
    // is made on it, STATUS does not count its base.
    std::fs::remove_dir_all(&cni.state).unwrap();
    ip(&[
        "-n", host, "link", "add", "link", "up2", "name", "up2.200", "type", "vlan", "id", "200",
    ]);
    ip(&["-n", host, "link", "set", "up2.200", "up"]);
    let named = r#"{"cniVersion": "1.1.0", "name": "st", "type": "ipvlan", "master": "up2.200",
        "ipam": {"type": "ipvlan", "subnet": "10.85.0.0/24"}}"#;
    let named_in_host = |verb: &str| in_host_with(verb, named);
    named_in_host("ADD").ok();
    ip(&["-n", host, "link", "del", "up2.200"]);
    let msg = named_in_host("STATUS").error(50);
    assert!(msg.contains("master up2.200 does not exist"), "{msg}");
    named_in_host("DEL").ok();

    // Ranges from the runtime (`ipRanges`), which STATUS is not given: the
    // network is still the one ADD made. Before, its config's text (ranges
    // included) told it from the ADD's, and STATUS checked the default
    // route: ready while every ADD failed.
    std::fs::remove_dir_all(&cni.state).unwrap();
    ip(&["-n", host, "route", "del", "default"]);
    uplink("up3");
    let ranged = r#"{"cniVersion": "1.1.0", "name": "st", "type": "ipvlan",
        "capabilities": {"ipRanges": true}, "ipam": {"type": "ipvlan"}}"#;
    let with_ranges = r#"{"cniVersion": "1.1.0", "name": "st", "type": "ipvlan",
        "capabilities": {"ipRanges": true}, "ipam": {"type": "ipvlan"},
        "runtimeConfig": {"ipRanges": [[{"subnet": "10.85.0.0/24"}]]}}"#;
    in_host_with("ADD", with_ranges).ok();
    in_host_with("STATUS", ranged).ok();
    ip(&["-n", host, "link", "del", "up3"]);
    uplink("up4");
    let msg = in_host_with("STATUS", ranged).error(50);
    assert!(msg.contains("master up3 does not exist"), "{msg}");
    in_host_with("DEL", with_ranges).ok();
}

/// An ADD of a `linkInContainer` network killed at each of its kill
/// points, then `restore` (no DEL): the link it made goes with its
/// addresses, as DEL removes it. Before, restore looked for the link on a
/// host master such a network has none of, left it ("the network's parent
/// is missing") and freed its addresses, which the next ADD was handed
/// while the link still held them.
#[test]
fn restore_undoes_a_killed_link_in_container_add_link_and_all() {
    let mut cni = Cni::new("licr");
    let ns = cni.netns("cni-licr");
    ip(&["-n", "cni-licr", "link", "add", "eth1", "type", "dummy"]);
    ip(&["-n", "cni-licr", "link", "set", "eth1", "up"]);
    let conf = r#"{"cniVersion": "1.0.0", "name": "licr", "type": "ipvlan", "master": "eth1",
        "linkInContainer": true, "ipam": {"type": "ipvlan", "subnet": "10.86.0.0/24"}}"#;
    // The network made first: the ADDs killed below find it.
    cni.plugin("ADD", "ctr-licr", &ns, conf).ok();
    cni.plugin("DEL", "ctr-licr", &ns, conf).ok();
    let hits = hits_of_a_whole_add(&cni, "ctr-licr", &ns, conf);
    assert!(hits > 4, "{hits} hits");
    let mut undone = 0;
    for kill_at in 1..=hits {
        kill_an_add_at(&cni, "ctr-licr", &ns, conf, kill_at);
        let made = link_names("cni-licr") != ["eth1", "lo"];
        let (code, text) = cni.cli(&["restore"]);
        assert_eq!(code, Some(0), "hit {kill_at}: {text}");
        let (endpoints, leases) = cni.records("licr");
        if endpoints.is_empty() {
            // Interrupted: undone whole.
            assert_eq!(
                link_names("cni-licr"),
                ["eth1", "lo"],
                "hit {kill_at}: {text}"
            );
            assert_eq!(leases, [], "hit {kill_at}: {text}");
            undone += usize::from(made);
        } else {
            // Killed once its record was committed: the attachment stands,
            // its address on its link, for the runtime's DEL.
            assert!(text.contains(" 1 endpoint kept"), "hit {kill_at}: {text}");
            let held: Vec<String> = leases.iter().map(|(a, _)| format!("{a}/24")).collect();
            assert_eq!(addresses("cni-licr", "eth0"), held, "hit {kill_at}");
            cni.plugin("DEL", "ctr-licr", &ns, conf).ok();
        }
    }
    assert!(undone > 0, "no kill point came after the link was made");
}

/// Counts the kill points of one whole ADD of `container` (its network
/// made before), then, for each, kills an ADD there, runs the runtime's
/// DEL and calls `check` with the hit and their count.
fn at_each_kill_point_of_an_add(
    cni: &Cni,
    container: &str,
    ns: &Path,
    conf: &str,
    mut check: impl FnMut(usize, usize),
) {
    let hits = hits_of_a_whole_add(cni, container, ns, conf);
    assert!(hits > 4, "{hits} hits");
    for kill_at in 1..=hits {
        kill_an_add_at(cni, container, ns, conf, kill_at);
        cni.plugin("DEL", container, ns, conf).ok();
        check(kill_at, hits);
    }
}

/// How many kill points one whole ADD of `container` passes (its network
/// made before), then the runtime's DEL of it.
fn hits_of_a_whole_add(cni: &Cni, container: &str, ns: &Path, conf: &str) -> usize {
    let count = cni.state.with_extension("hits");
    let _ = std::fs::remove_file(&count);
    let mut command = cni.command("ADD", container, ns, "eth0");
    command.env("IPVLAN_FAULT_COUNT", &count);
    run_with(command, conf).ok();
    cni.plugin("DEL", container, ns, conf).ok();
    let hits = std::fs::read_to_string(&count).unwrap().lines().count();
    let _ = std::fs::remove_file(&count);
    hits
}

/// An ADD killed by the hook (SIGKILL) at its hit `kill_at`: not a
/// panic's abort, nor a death before it. The points it passed need not be
/// the counted ADD's: that one came first, and made what later ADDs find
/// made (the hits of a store's first writes differ).
fn kill_an_add_at(cni: &Cni, container: &str, ns: &Path, conf: &str, kill_at: usize) {
    let count = cni.state.with_extension("killed-hits");
    let _ = std::fs::remove_file(&count);
    let mut command = cni.command("ADD", container, ns, "eth0");
    command
        .env("IPVLAN_FAULT_KILL_AT", kill_at.to_string())
        .env("IPVLAN_FAULT_COUNT", &count);
    let killed = run_with(command, conf);
    assert_eq!(
        killed.signal,
        Some(libc::SIGKILL),
        "hit {kill_at}: not killed there (exit {:?}): {}",
        killed.exit,
        killed.stderr
    );
    let passed = std::fs::read_to_string(&count).unwrap_or_default();
    let _ = std::fs::remove_file(&count);
    assert_eq!(
        passed.lines().count(),
        kill_at,
        "hit {kill_at}: not killed at that hit: {passed}"
    );
}

fn run_with(mut command: Command, stdin: &str) -> Answer {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs the plugin");
    let mut input = child.stdin.take().unwrap();
    let _ = input.write_all(stdin.as_bytes());
    drop(input);
    let output = child.wait_with_output().unwrap();
    Answer {
        exit: output.status.code(),
        signal: std::os::unix::process::ExitStatusExt::signal(&output.status),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// A `CNI_PATH` directory of its own holding our binary under the name
/// `ipvlan`, for the reference plugins to run as their IPAM plugin (the
/// reference ipvlan plugin shares the name, so it is run from its own
/// directory by path).
fn our_ipam_dir(cni: &Cni) -> PathBuf {
    let dir = cni.state.with_extension("ipam-bin");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink(binary(), dir.join("ipvlan")).unwrap();
    dir
}

/// Runs Debian's reference `plugin` as a runtime does, with `cni_path`.
fn reference(
    cni: &Cni,
    plugin: &str,
    verb: &str,
    container: &str,
    netns: &Path,
    cni_path: &Path,
    conf: &str,
) -> Answer {
    let mut ours = cni.command(verb, container, netns, "eth0");
    ours.env("CNI_PATH", cni_path);
    let mut command = Command::new(Path::new("/usr/lib/cni").join(plugin));
    command
        .env_clear()
        .envs(ours.get_envs().filter_map(|(k, v)| v.map(|v| (k, v))));
    run_with(command, conf)
}

/// A DEL whose `CNI_NETNS` leads to another namespace than the one its
/// attachment was added in (a `/proc/PID/ns/net` whose pid is another
/// container's process now) leaves that namespace's link of the name
/// alone, says so, and still releases the attachment's record and
/// address. Before, it deleted whatever ipvlan link had the name there:
/// the other container's `eth0`.
#[test]
fn a_del_whose_netns_leads_elsewhere_leaves_that_namespaces_link() {
    let mut cni = Cni::new("elsewhere");
    cni.master("cnim15");
    let first = cni.netns("cni-first");
    let second = cni.netns("cni-second");
    let conf = conf("elsewhere", "cnim15", "");
    cni.plugin("ADD", "ctr-first", &first, &conf).ok();
    cni.plugin("ADD", "ctr-second", &second, &conf).ok();
    let second_link = link(Some("cni-second"), "eth0").expect("ctr-second's eth0");
    let (endpoints, leases) = cni.records("elsewhere");
    assert_eq!(
        (endpoints.len(), leases.len()),
        (2, 2),
        "{endpoints:?} {leases:?}"
    );
    let answer = cni.plugin("DEL", "ctr-first", &second, &conf);
    answer.ok();
    assert!(
        answer.stderr.contains(
            "leads to another network namespace than the one eth0 of ctr-first was added in"
        ),
        "{}",
        answer.stderr
    );
    assert_eq!(link(Some("cni-second"), "eth0"), Some(second_link));
    let (endpoints, leases) = cni.records("elsewhere");
    assert_eq!(
        (endpoints.len(), leases.len()),
        (1, 1),
        "{endpoints:?} {leases:?}"
    );
    // Its own DEL takes it.
    cni.plugin("DEL", "ctr-second", &second, &conf).ok();
    assert!(link(Some("cni-second"), "eth0").is_none());
    assert_eq!(cni.records("elsewhere"), (Vec::new(), Vec::new()));
}

/// A DEL that cannot read the attachment's record (a damaged file) takes
/// the attachment down all the same: the ipvlan link of `CNI_IFNAME` by
/// its name, as with no record, the leases whose files name it, and the
/// record; it says so, and answers success. It failed before, on every
/// retry: a runtime could never take the pod down, and the lease stayed.
/// (After 0426172 read the record before the link, such a DEL left the
/// link too.)
#[test]
fn a_del_that_cannot_read_its_record_still_takes_the_attachment_down() {
    let mut cni = Cni::new("damaged");
    cni.master("cnim16");
    let ns = cni.netns("cni-damaged");
    let conf = conf("damaged", "cnim16", "");
    cni.plugin("ADD", "ctr-damaged", &ns, &conf).ok();
    assert!(link(Some("cni-damaged"), "eth0").is_some());
    let store = StateDir::open(&cni.state).unwrap();
    let network = store.network_named("damaged").unwrap().unwrap();
    let (endpoints, leases) = cni.records("damaged");
    assert_eq!((endpoints.len(), leases.len()), (1, 1), "{endpoints:?}");
    let record = cni
        .state
        .join("endpoints")
        .join(&network.id)
        .join(format!("{}.json", endpoints[0]));
    std::fs::write(&record, "{ not json").unwrap();
    let answer = cni.plugin("DEL", "ctr-damaged", &ns, &conf);
    assert_eq!(answer.exit, Some(0), "{} {}", answer.stdout, answer.stderr);
    assert!(
        common::says_damaged_attachment_taken_down(&answer.stderr, 1),
        "{}",
        answer.stderr
    );
    assert!(
        link(Some("cni-damaged"), "eth0").is_none(),
        "the link stayed"
    );
    assert!(!record.exists(), "the record stayed");
    assert_eq!(cni.records("damaged"), (Vec::new(), Vec::new()));
    cni.plugin("DEL", "ctr-damaged", &ns, &conf).ok();
}

/// The same DEL, its CNI_NETNS leading to another container's namespace,
/// when the network's record cannot be read under the lock (damaged): it
/// fails, and the record read without the lock still keeps it from that
/// namespace's link. Before, the fallback to the link's name took it.
#[test]
fn a_del_that_cannot_read_its_network_still_leaves_another_namespaces_link() {
    let mut cni = Cni::new("elsewhere-damaged");
    cni.master("cnim17");
    let first = cni.netns("cni-first-d");
    let second = cni.netns("cni-second-d");
    let conf = conf("elsewhere-damaged", "cnim17", "");
    cni.plugin("ADD", "ctr-first", &first, &conf).ok();
    cni.plugin("ADD", "ctr-second", &second, &conf).ok();
    let second_link = link(Some("cni-second-d"), "eth0").expect("ctr-second's eth0");
    let store = StateDir::open(&cni.state).unwrap();
    let network = store.network_named("elsewhere-damaged").unwrap().unwrap();
    let record = cni
        .state
        .join("networks")
        .join(format!("{}.json", network.id));
    let intact = std::fs::read(&record).unwrap();
    std::fs::write(&record, "{ not json").unwrap();
    let answer = cni.plugin("DEL", "ctr-first", &second, &conf);
    assert_ne!(answer.exit, Some(0), "{} {}", answer.stdout, answer.stderr);
    assert_eq!(link(Some("cni-second-d"), "eth0"), Some(second_link));
    std::fs::write(&record, intact).unwrap();
    cni.plugin("DEL", "ctr-second", &second, &conf).ok();
    cni.plugin("DEL", "ctr-first", &first, &conf).ok();
    assert_eq!(cni.records("elsewhere-damaged"), (Vec::new(), Vec::new()));
}

/// The names of the links in namespace `ns`.
fn link_names(ns: &str) -> Vec<String> {
    let mut names: Vec<String> = ip_json(&["-n", ns, "link", "show"])
        .as_array()
        .unwrap_or(&[])
        .iter()
        .filter_map(|l| l.get("ifname").and_then(Value::as_str).map(str::to_string))
        .collect();
    names.sort();
    names
}

#[test]
fn the_reference_ipvlan_and_macvlan_plugins_use_ours_as_ipam_beside_ours() {
    // Before: 999 from our binary as macvlan's IPAM, and code 2 for
    // rangeStart/rangeEnd under our IPAM.
    let mut cni = Cni::new("asipam");
    cni.master("cnim20");
    // A master takes ipvlan or macvlan ports, not both.
    cni.master("cnim21");
    let ipam_dir = our_ipam_dir(&cni);
    let ipam = r#""ipam": {"type": "ipvlan", "subnet": "10.79.0.0/24",
        "rangeStart": "10.79.0.100", "rangeEnd": "10.79.0.107", "routes": [{"dst": "0.0.0.0/0"}]}"#;
    let ours = format!(
        r#"{{"cniVersion": "1.0.0", "name": "shared", "type": "ipvlan", "master": "cnim20", {ipam}}}"#
    );
    let macvlan = format!(
        r#"{{"cniVersion": "1.0.0", "name": "shared", "type": "macvlan", "master": "cnim21",
            "mode": "bridge", {ipam}}}"#
    );
    // macvlan's lease first makes a network with no master; our ADD then
    // gives it ours, keeping the lease.
    let plugins = ["macvlan", "ours", "ipvlan"];
    let namespaces: Vec<(String, PathBuf)> = (0..6)
        .map(|i| {
            let name = format!("cni-asipam{i}");
            let ns = cni.netns(&name);
            (name, ns)
        })
        .collect();
    let run = |who: &str, verb: &str, container: &str, ns: &Path, prev: Option<&Value>| {
        let conf = if who == "macvlan" { &macvlan } else { &ours };
        let conf = match prev {
            Some(result) => with_prev(conf, result),
            None => conf.clone(),
        };
        match who {
            "ours" => cni.plugin(verb, container, ns, &conf),
            plugin => reference(&cni, plugin, verb, container, ns, &ipam_dir, &conf),
        }
    };
    let mut added = Vec::new();
    for (i, (name, ns)) in namespaces.into_iter().enumerate() {
        let who = plugins[i % 3];
        let container = format!("ctr-asipam{i}");
        let answer = run(who, "ADD", &container, &ns, None);
        answer.ok();
        added.push((who, name, ns, container, answer.json()));
    }
    let mut seen = Vec::new();
    for (who, name, _, _, result) in &added {
        let l = link(Some(name), "eth0").expect("eth0 in the namespace");
        let kind = if *who == "macvlan" {
            "macvlan"
        } else {
            "ipvlan"
        };
        assert_eq!(link_kind(&l).as_deref(), Some(kind), "{who}");
        let there = addresses(name, "eth0");
        let ip0 = &result.get("ips").and_then(Value::as_array).unwrap()[0];
        assert_eq!(
            there,
            vec![ip0.get("address").and_then(Value::as_str).unwrap()],
            "{who}"
        );
        assert_eq!(
            ip0.get("gateway").and_then(Value::as_str),
            Some("10.79.0.1"),
            "{who}"
        );
        seen.extend(there);
    }
    let store = StateDir::open(&cni.state).unwrap();
    let record = store.network_by_name("shared").unwrap();
    assert_eq!(record.parent, "cnim20");
    // Six distinct addresses, all within rangeStart-rangeEnd.
    let mut distinct = seen.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 6, "{seen:?}");
    for address in &seen {
        let host: u8 = address
            .strip_prefix("10.79.0.")
            .and_then(|a| a.strip_suffix("/24"))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("{address}"));
        assert!((100..=107).contains(&host), "{address}");
    }
    // Two attachments, four leases, on one network, each address leased
    // once.
    let (endpoints, leases) = cni.records("shared");
    let mut expected: Vec<String> = added
        .iter()
        .map(|(who, _, _, container, _)| match *who {
            "ours" => ipvlan::driver::attachment_id(container, "eth0"),
            _ => ipvlan::driver::lease_id(container, "eth0"),
        })
        .collect();
    let mut endpoints = endpoints;
    endpoints.sort();
    expected.sort();
    assert_eq!(endpoints, expected);
    assert_eq!(leases.len(), 6, "{leases:?}");
    // The CLI's overlap check covers it; restore keeps the leases and
    // makes no link for them.
    let (code, text) = cni.cli(&[
        "network",
        "create",
        "--subnet",
        "10.79.0.0/25",
        "-o",
        "parent=cnim20",
        "overlapping",
    ]);
    assert_ne!(code, Some(0), "{text}");
    assert!(text.contains("overlaps"), "{text}");
    let before = cni.records("shared");
    let (code, text) = cni.cli(&["restore"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(cni.records("shared"), before, "{text}");
    for (who, name, _, _, _) in &added {
        assert_eq!(link_names(name), ["eth0", "lo"], "{who}: {text}");
    }

    // CHECK through each plugin; then DEL through each: nothing left.
    for (who, _, ns, container, result) in &added {
        run(who, "CHECK", container, ns, Some(result)).ok();
    }
    for (who, name, ns, container, result) in &added {
        run(who, "DEL", container, ns, Some(result)).ok();
        assert_eq!(link_names(name), ["lo"], "{who}");
    }
    assert_eq!(cni.records("shared"), (Vec::new(), Vec::new()));
    let _ = std::fs::remove_dir_all(&ipam_dir);
}

#[test]
fn add_by_us_and_del_by_the_reference_plugin_on_one_host_local_data_dir() {
    let mut cni = Cni::new("refdel");
    cni.master("cnim13");
    let ns = cni.netns("cni-refdel");
    let data = cni.state.with_extension("host-local");
    let _ = std::fs::remove_dir_all(&data);
    let conf = host_local_conf("refdel", "cnim13", &data);
    let mut add = cni.command("ADD", "ctr-refdel", &ns, "eth0");
    add.env("CNI_PATH", "/usr/lib/cni");
    let answer = run_with(add, &conf);
    answer.ok();
    assert_eq!(link_names("cni-refdel"), ["eth0", "lo"]);
    assert_eq!(host_local_leases(&data, "refdel"), ["10.78.0.2"]);
    let prev = with_prev(&conf, &answer.json());
    let path = Path::new("/usr/lib/cni");
    reference(&cni, "ipvlan", "DEL", "ctr-refdel", &ns, path, &prev).ok();
    assert_eq!(link_names("cni-refdel"), ["lo"]);
    assert_eq!(host_local_leases(&data, "refdel"), Vec::<String>::new());
    // Our record of the attachment is the runtime's next DEL's (or GC's).
    run_with(
        {
            let mut del = cni.command("DEL", "ctr-refdel", &ns, "eth0");
            del.env("CNI_PATH", "/usr/lib/cni");
            del
        },
        &prev,
    )
    .ok();
    assert_eq!(cni.records("refdel"), (Vec::new(), Vec::new()));
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn restore_leaves_a_missing_cni_link_to_its_runtime() {
    let mut cni = Cni::new("rst");
    cni.master("cnim22");
    let ns = cni.netns("cni-rst");
    let conf = conf("rst", "cnim22", "");
    let answer = cni.plugin("ADD", "ctr-rst", &ns, &conf);
    answer.ok();
    let prev = with_prev(&conf, &answer.json());
    // The link in place: kept as it is.
    let (code, text) = cni.cli(&["restore"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(link_names("cni-rst"), ["eth0", "lo"], "{text}");
    // Gone: not made again (it would follow the CLI's route rules, not
    // the result's), record and lease kept for the runtime's CHECK and
    // DEL.
    ip(&["-n", "cni-rst", "link", "del", "eth0"]);
    let before = cni.records("rst");
    let (code, text) = cni.cli(&["restore"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("  link missing, left to its CNI runtime: rst: "),
        "{text}"
    );
    assert_eq!(link_names("cni-rst"), ["lo"], "{text}");
    assert_eq!(cni.records("rst"), before);
    let msg = cni.plugin("CHECK", "ctr-rst", &ns, &prev).error(999);
    assert_eq!(msg, format!("no link eth0 in {}", ns.display()));
    cni.plugin("DEL", "ctr-rst", &ns, &prev).ok();
    assert_eq!(cni.records("rst"), (Vec::new(), Vec::new()));
}

#[test]
fn link_in_container_finds_the_master_in_the_namespace() {
    // Before: code 2, "linkInContainer is not yet supported by this build".
    let mut cni = Cni::new("lic");
    cni.master("cnim23");
    let named = cni.netns("cni-lic1");
    let routed = cni.netns("cni-lic2");
    for ns in ["cni-lic1", "cni-lic2"] {
        ip(&["-n", ns, "link", "add", "eth1", "type", "dummy"]);
        ip(&["-n", ns, "link", "set", "eth1", "up"]);
    }
    ip(&[
        "-n",
        "cni-lic2",
        "addr",
        "add",
        "10.82.0.5/24",
        "dev",
        "eth1",
    ]);
    ip(&[
        "-n",
        "cni-lic2",
        "route",
        "add",
        "default",
        "via",
        "10.82.0.1",
    ]);
    let ipam = r#""ipam": {"type": "ipvlan", "subnet": "10.81.0.0/24"}"#;
    let with_master = format!(
        r#"{{"cniVersion": "1.0.0", "name": "lic", "type": "ipvlan", "master": "eth1",
            "linkInContainer": true, {ipam}}}"#
    );
    let answer = cni.plugin("ADD", "ctr-lic1", &named, &with_master);
    answer.ok();
    let result = answer.json();
    let l = link(Some("cni-lic1"), "eth0").expect("eth0 in the namespace");
    assert_eq!(link_kind(&l).as_deref(), Some("ipvlan"));
    // Its master is the namespace's eth1 (same namespace: no link-netnsid).
    assert_eq!(l.get("link").and_then(Value::as_str), Some("eth1"), "{l:?}");
    assert!(l.get("link_netnsid").is_none(), "{l:?}");
    assert_eq!(
        result.get("interfaces").and_then(Value::as_array).unwrap()[0]
            .get("mac")
            .and_then(Value::as_str),
        Some(mac_of(Some("cni-lic1"), "eth1").as_str())
    );
    assert_eq!(addresses("cni-lic1", "eth0"), vec!["10.81.0.2/24"]);
    // The default route's interface, in the namespace, when no master is
    // named (config keys differ: another network).
    let by_route = r#"{"cniVersion": "1.0.0", "name": "lic2", "type": "ipvlan", "linkInContainer": true,
            "ipam": {"type": "ipvlan", "subnet": "10.83.0.0/24"}}"#;
    let second = cni.plugin("ADD", "ctr-lic2", &routed, by_route);
    second.ok();
    let l = link(Some("cni-lic2"), "eth0").expect("eth0 in the namespace");
    assert_eq!(l.get("link").and_then(Value::as_str), Some("eth1"), "{l:?}");
    // A master the namespace lacks: code 7, nothing made.
    let empty = cni.netns("cni-lic3");
    let msg = cni.plugin("ADD", "ctr-lic3", &empty, &with_master).error(7);
    assert_eq!(
        msg,
        "linkInContainer: master eth1 does not exist in namespace /run/netns/cni-lic3"
    );
    assert_eq!(link_names("cni-lic3"), ["lo"]);

    // CHECK passes; restore keeps the links (none re-made, no error); the
    // CLI still creates networks beside these master-less records.
    cni.plugin(
        "CHECK",
        "ctr-lic1",
        &named,
        &with_prev(&with_master, &result),
    )
    .ok();
    let (code, text) = cni.cli(&["restore"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(" 2 endpoints kept"), "{text}");
    assert_eq!(link_names("cni-lic1"), ["eth0", "eth1", "lo"]);
    let (code, text) = cni.cli(&[
        "network",
        "create",
        "--subnet",
        "10.84.0.0/24",
        "-o",
        "parent=cnim23",
        "licbeside",
    ]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = cni.cli(&["network", "rm", "licbeside"]);
    assert_eq!(code, Some(0), "{text}");

    // GC removes the unlisted one's link in its namespace; DEL the other.
    let gc = by_route.replace("1.0.0", "1.1.0").replace(
        r#""linkInContainer": true,"#,
        r#""linkInContainer": true, "cni.dev/valid-attachments": [],"#,
    );
    cni.plugin("GC", "ctr-lic2", &routed, &gc).ok();
    assert_eq!(link_names("cni-lic2"), ["eth1", "lo"]);
    assert_eq!(cni.records("lic2"), (Vec::new(), Vec::new()));
    cni.plugin("DEL", "ctr-lic1", &named, &with_master).ok();
    assert_eq!(link_names("cni-lic1"), ["eth1", "lo"]);
    assert_eq!(cni.records("lic"), (Vec::new(), Vec::new()));
}

/// Every file under the state directory with its content (a symbolic
/// link's, an address's or a name's, with its target: the owner it
/// names): what a command that must change nothing leaves as it was.
fn state_files(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(metadata) = std::fs::symlink_metadata(&path) else {
                continue; // gone meanwhile
            };
            if metadata.is_dir() {
                out.push((path.clone(), Vec::new()));
                walk(&path, out);
            } else {
                let mut bytes = common::entry_bytes(&path).unwrap_or_default();
                // The store's lock: its format mark, then its commit log,
                // which records commits (a refused command commits the
                // undoing of its own writes), not state.
                if path.file_name().is_some_and(|name| name == "lock") {
                    bytes.truncate(4096);
                }
                out.push((path.clone(), bytes));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, &mut out);
    out.sort();
    out
}

/// The host's links, `NAME INDEX`, sorted: a link deleted and made again
/// under its name is not the same.
fn host_links() -> Vec<String> {
    let mut names: Vec<String> = ip_json(&["link", "show"])
        .as_array()
        .unwrap_or(&[])
        .iter()
        .filter_map(|l| {
            let name = l.get("ifname").and_then(Value::as_str)?;
            let index = l.get("ifindex").and_then(Value::as_u64)?;
            Some(format!("{name} {index}"))
        })
        .collect();
    names.sort();
    names
}

/// `restore`, twice: both succeed, and the second changes neither the
/// host's links nor the state directory.
fn restore_twice_changes_nothing(cni: &Cni, why: &str) {
    let (code, text) = cni.cli(&["restore"]);
    assert_eq!(code, Some(0), "{why}: {text}");
    let (links, files) = (host_links(), state_files(&cni.state));
    let (code, text) = cni.cli(&["restore"]);
    assert_eq!(code, Some(0), "{why}: {text}");
    assert_eq!(host_links(), links, "{why}: the second restore: {text}");
    assert_eq!(state_files(&cni.state), files, "{why}: the second restore");
}

/// `restore` on a host where every attachment is whole changes nothing
/// and reports nothing, whatever made the attachment: our IPAM on a host
/// master and on a `NAME.VLANID` one, a delegated IPAM plugin (Debian's
/// host-local), a chained `prevResult`, `linkInContainer`, our IPAM
/// serving the reference plugin (a lease-only record), a CLI network's
/// `network connect`.
#[test]
fn restore_on_whole_attachments_of_every_kind_changes_nothing() {
    // Before: "hy-hl: /run/netns/cni-hy-hl: address 10.78.0.2 lies in no
    // subnet of the network" (and the chained one's), exit 1.
    let mut cni = Cni::new("healthy");
    for master in ["cnim80", "cnim81", "cnim82", "cnim83", "cnim84", "cnim85"] {
        cni.master(master);
    }
    let data = cni.state.with_extension("host-local");
    let _ = std::fs::remove_dir_all(&data);
    let ipam_dir = our_ipam_dir(&cni);
    let lic = cni.netns("cni-hy-lic");
    ip(&["-n", "cni-hy-lic", "link", "add", "eth1", "type", "dummy"]);
    ip(&["-n", "cni-hy-lic", "link", "set", "eth1", "up"]);
    let chained_prev = json::parse(
        r#"{"cniVersion": "1.0.0", "ips": [{"address": "10.63.0.5/24", "gateway": "10.63.0.1"}],
            "routes": [{"dst": "0.0.0.0/0"}]}"#,
    )
    .unwrap();
    let kinds: Vec<(&str, String, Option<Value>)> = vec![
        ("ours", conf_on("hy-ours", "cnim80", "10.60.0.0/24"), None),
        ("vlan", conf_on("hy-vlan", "cnim81.7", "10.61.0.0/24"), None),
        ("hl", host_local_conf("hy-hl", "cnim82", &data), None),
        (
            "chain",
            r#"{"cniVersion": "1.0.0", "name": "hy-chain", "type": "ipvlan", "master": "cnim83"}"#
                .to_string(),
            Some(chained_prev),
        ),
        (
            "lic",
            r#"{"cniVersion": "1.0.0", "name": "hy-lic", "type": "ipvlan", "master": "eth1",
                "linkInContainer": true, "ipam": {"type": "ipvlan", "subnet": "10.64.0.0/24"}}"#
                .to_string(),
            None,
        ),
        (
            "ref",
            r#"{"cniVersion": "1.0.0", "name": "hy-ref", "type": "ipvlan", "master": "cnim84",
                "ipam": {"type": "ipvlan", "subnet": "10.65.0.0/24"}}"#
                .to_string(),
            None,
        ),
    ];
    let mut added = Vec::new();
    for (kind, conf, prev) in &kinds {
        let name = format!("cni-hy-{kind}");
        let ns = if *kind == "lic" {
            lic.clone()
        } else {
            cni.netns(&name)
        };
        let container = format!("ctr-hy-{kind}");
        let asked = match prev {
            Some(result) => with_prev(conf, result),
            None => conf.clone(),
        };
        let answer = match *kind {
            "ref" => reference(&cni, "ipvlan", "ADD", &container, &ns, &ipam_dir, &asked),
            _ => {
                let mut add = cni.command("ADD", &container, &ns, "eth0");
                add.env("CNI_PATH", "/usr/lib/cni");
                run_with(add, &asked)
            }
        };
        answer.ok();
        added.push((*kind, name, ns, container, conf.clone(), answer.json()));
    }
    // A CLI network and a namespace connected by path.
    cli_network(&cni, "hy-cli", "10.66.0.0/24", "cnim85");
    let cli_ns = cni.netns("cni-hy-cli");
    let (code, text) = cni.cli(&[
        "network",
        "connect",
        "hy-cli",
        &cli_ns.display().to_string(),
    ]);
    assert_eq!(code, Some(0), "{text}");

    // The CLI neither attaches to a network whose addresses another IPAM
    // gives, nor detaches a runtime's attachment: each refusal changes
    // nothing. (Paths given outside our netns directory, as CRI-O's are,
    // which a detach reads as paths, not as names of our containers.)
    let snapshot = (host_links(), state_files(&cni.state));
    let elsewhere = cni.state.with_extension("netns");
    let cli_elsewhere = |args: &[&str]| cni.cli_in(args, Some(&elsewhere));
    for (kind, _, ns, ..) in &added {
        let network = format!("hy-{kind}");
        let path = ns.display().to_string();
        let (code, text) = cli_elsewhere(&["network", "disconnect", &network, &path]);
        assert_eq!(code, Some(1), "disconnect {kind}: {text}");
        assert!(
            text.ends_with(&format!(
                ": {path} is attached to network {network} by a CNI runtime (interface eth0): its runtime's DEL removes it, not `network disconnect`; nothing was detached\n"
            )),
            "disconnect {kind}: {text}"
        );
    }
    let cli_path = cli_ns.display().to_string();
    for network in ["hy-hl", "hy-chain"] {
        let (code, text) = cli_elsewhere(&["network", "connect", network, &cli_path]);
        assert_eq!(code, Some(1), "connect {network}: {text}");
        assert!(
            text.ends_with(&format!(
                "network {network} takes its addresses from its CNI config's IPAM plugin (or a chained plugin's result), not from ipvlan: only its CNI plugin attaches to it\n"
            )),
            "connect {network}: {text}"
        );
    }
    assert_eq!((host_links(), state_files(&cni.state)), snapshot);

    let addresses_now = || -> Vec<(String, Vec<String>)> {
        let mut all: Vec<(String, Vec<String>)> = added
            .iter()
            .map(|(_, name, ..)| (name.clone(), addresses(name, "eth0")))
            .collect();
        all.push(("cni-hy-cli".into(), addresses("cni-hy-cli", "eth0")));
        all
    };
    let before = (host_links(), state_files(&cni.state), addresses_now());
    for (_, name, ..) in &added {
        assert_eq!(addresses(name, "eth0").len(), 1, "{name}");
    }
    for round in ["first", "second"] {
        let (code, text) = cni.cli(&["restore"]);
        assert_eq!(code, Some(0), "the {round} restore: {text}");
        assert!(
            text.starts_with("restore: 0 parents re-created, 0 parents missing, 0 links re-created, 7 endpoints kept, 0 endpoints released, 0 interrupted operations repaired\n"),
            "the {round} restore: {text}"
        );
        assert_eq!(text.lines().count(), 1, "the {round} restore: {text}");
        let after = (host_links(), state_files(&cni.state), addresses_now());
        assert_eq!(after.0, before.0, "the {round} restore: host links");
        assert_eq!(after.1, before.1, "the {round} restore: the store");
        assert_eq!(after.2, before.2, "the {round} restore: addresses");
    }

    // A GC that lists every attachment of its network changes nothing
    // (the reference plugin speaks no GC: its lease network is left out;
    // Debian's host-local neither, and its refusal is the answer, as the
    // reference plugin passes it on); the listings read everything
    // without a word on stderr.
    for (kind, _, ns, container, conf, _) in added.iter().filter(|a| a.0 != "ref") {
        let gc = conf.replacen("1.0.0", "1.1.0", 1).replacen(
            r#""type": "ipvlan","#,
            &format!(
                r#""type": "ipvlan", "cni.dev/valid-attachments": [{{"containerID": "{container}", "ifname": "eth0"}}],"#
            ),
            1,
        );
        let mut command = cni.command("GC", container, ns, "eth0");
        command.env("CNI_PATH", "/usr/lib/cni");
        let answer = run_with(command, &gc);
        match *kind {
            "hl" => assert_eq!(answer.error(4), "unknown CNI_COMMAND: GC"),
            _ => {
                answer.ok();
            }
        }
        assert_eq!(host_links(), before.0, "GC {kind}: host links");
        assert_eq!(state_files(&cni.state), before.1, "GC {kind}: the store");
        assert_eq!(addresses_now(), before.2, "GC {kind}: addresses");
    }
    let networks = [
        "hy-ours", "hy-vlan", "hy-hl", "hy-chain", "hy-lic", "hy-ref", "hy-cli",
    ];
    let mut inspect = vec!["network", "inspect"];
    inspect.extend(networks);
    for args in [&["ps"][..], &["network", "ls"], &inspect] {
        let output = Command::new(binary())
            .args(args)
            .env("IPVLAN_STATE_DIR", &cni.state)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{args:?}: {output:?}");
        assert!(output.stderr.is_empty(), "{args:?}: {output:?}");
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if args[1..].first() == Some(&"inspect") {
            let doc = json::parse(&text).unwrap();
            assert_eq!(
                doc.as_array().map(<[Value]>::len),
                Some(networks.len()),
                "{text}"
            );
        } else if args == ["network", "ls"] {
            for network in networks {
                assert!(text.contains(network), "{network}: {text}");
            }
        }
    }

    // Each still checks, and goes whole.
    for (kind, name, ns, container, conf, result) in &added {
        let prev = with_prev(conf, result);
        let answer = |verb: &str| match *kind {
            "ref" => reference(&cni, "ipvlan", verb, container, ns, &ipam_dir, &prev),
            _ => {
                let mut command = cni.command(verb, container, ns, "eth0");
                command.env("CNI_PATH", "/usr/lib/cni");
                run_with(command, &prev)
            }
        };
        answer("CHECK").ok();
        answer("DEL").ok();
        assert!(link(Some(name), "eth0").is_none(), "{kind}");
    }
    let (code, text) = cni.cli(&[
        "network",
        "disconnect",
        "hy-cli",
        &cli_ns.display().to_string(),
    ]);
    assert_eq!(code, Some(0), "{text}");
    for network in [
        "hy-ours", "hy-vlan", "hy-hl", "hy-chain", "hy-lic", "hy-ref",
    ] {
        assert_eq!(cni.records(network), (Vec::new(), Vec::new()), "{network}");
    }
    assert_eq!(host_local_leases(&data, "hy-hl"), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&data);
    let _ = std::fs::remove_dir_all(&ipam_dir);
}

/// An ADD of `conf` whose allocation finds no address left (forced: a
/// config whose bounds leave none is refused before anything is made, and
/// a network found full by its leases has a link on its master already).
fn add_finding_no_address(cni: &Cni, container: &str, ns: &Path, conf: &str) -> Answer {
    let mut command = cni.command("ADD", container, ns, "eth0");
    command.env("IPVLAN_FAULT_FORCE", "ipam: no address left");
    run_with(command, conf)
}

#[test]
fn a_first_add_asking_for_the_masters_own_address_makes_no_network() {
    // Before: the network record was written, then the allocator refused
    // the host's address; the failed ADD left a network (listed, its
    // name and subnet taken) until a `network rm`.
    let mut cni = Cni::new("hostaddr");
    cni.master("cnim100");
    ip(&["addr", "add", "10.77.0.250/16", "dev", "cnim100"]);
    let ns = cni.netns("cni-hostaddr");
    let asking = conf(
        "hostaddr",
        "cnim100",
        r#", "runtimeConfig": {"ips": ["10.77.0.250"]}"#,
    );
    let msg = cni.plugin("ADD", "ctr-h", &ns, &asking).error(999);
    assert!(msg.starts_with("10.77.0.250 is"), "{msg}");
    assert!(msg.contains("host"), "{msg}");
    assert_eq!(cni.network_names(), Vec::<String>::new());
    assert!(link(Some("cni-hostaddr"), "eth0").is_none());
    // Any other address: the network is made, the attachment works.
    let good = conf("hostaddr", "cnim100", "");
    cni.plugin("ADD", "ctr-h", &ns, &good).ok();
    assert_eq!(cni.network_names(), vec!["hostaddr".to_string()]);
    cni.plugin("DEL", "ctr-h", &ns, &good).ok();

    // A VLAN master we made, given an address since (kept by the last
    // DEL for it), then an ADD of a changed config (its network retired
    // for the new one) asking for that address: refused before the old
    // network goes or the new one is made. Before, the old one was
    // retired and the new one written, then the allocator refused.
    cni.master("cnim101");
    let vlan = |extra: &str| conf("hostvlan", "cnim101.5", extra);
    cni.plugin("ADD", "ctr-v", &ns, &vlan("")).ok();
    ip(&["addr", "add", "10.77.0.251/16", "dev", "cnim101.5"]);
    cni.plugin("DEL", "ctr-v", &ns, &vlan("")).ok();
    assert!(
        link(None, "cnim101.5").is_some(),
        "the master with an address"
    );
    let id = || {
        StateDir::open(&cni.state)
            .unwrap()
            .network_named("hostvlan")
            .unwrap()
            .map(|network| network.id)
    };
    let before = id().expect("the idle network");
    let changed = vlan(r#", "mtu": 1400, "runtimeConfig": {"ips": ["10.77.0.251"]}"#);
    let msg = cni.plugin("ADD", "ctr-v", &ns, &changed).error(999);
    assert!(
        msg.starts_with("10.77.0.251 is the host's own address"),
        "{msg}"
    );
    assert_eq!(id(), Some(before), "the idle network was retired");
    assert!(link(Some("cni-hostaddr"), "eth0").is_none());
    ip(&["link", "del", "cnim101.5"]);
}

#[test]
fn a_failed_add_leaves_no_vlan_master_and_never_removes_anothers() {
    // Before: the VLAN master of a failed ADD stayed ("the VLAN master
    // of a failed first ADD stayed"), until the next boot's restore.
    let mut cni = Cni::new("failmaster");
    cni.master("cnim40");
    let ns = cni.netns("cni-failmaster");
    let asking = |ip: &str| {
        conf(
            "failed",
            "cnim40.42",
            &format!(r#", "runtimeConfig": {{"ips": ["{ip}"]}}"#),
        )
    };

    // First use, an address the config's ranges cannot give: refused
    // before anything is made, not even the network record.
    let msg = cni
        .plugin("ADD", "ctr-f", &ns, &asking("10.78.0.5"))
        .error(999);
    assert_eq!(msg, "no configured subnet contains IP address 10.78.0.5");
    let msg = cni
        .plugin("ADD", "ctr-f", &ns, &asking("10.77.0.1"))
        .error(999);
    assert!(msg.starts_with("10.77.0.1 is"), "{msg}");
    assert!(
        link(None, "cnim40.42").is_none(),
        "the VLAN master of a refused ADD"
    );
    assert_eq!(cni.network_names(), Vec::<String>::new());
    assert!(link(Some("cni-failmaster"), "eth0").is_none());

    // First use, failing once the master is made (no address left): the
    // master goes with the failure.
    let exhausted = conf_on("full", "cnim40.43", "10.79.0.0/24");
    let msg = add_finding_no_address(&cni, "ctr-f", &ns, &exhausted).error(999);
    assert!(msg.contains("no available"), "{msg}");
    assert!(
        link(None, "cnim40.43").is_none(),
        "the VLAN master of a failed first ADD stayed"
    );
    assert_eq!(cni.records("full"), (Vec::new(), Vec::new()));
    restore_twice_changes_nothing(&cni, "after a failed first ADD");
    assert!(link(None, "cnim40.43").is_none(), "restore made the master");
    // Again on the idle network: cni_parent makes the master again, the
    // failure takes it away again.
    add_finding_no_address(&cni, "ctr-f", &ns, &exhausted).error(999);
    assert!(
        link(None, "cnim40.43").is_none(),
        "the VLAN master of a failed ADD on an idle network stayed"
    );

    // After an ADD and its DEL (the network idle, its master gone), the
    // refused addresses (outside, the gateway, the broadcast address) make
    // no master either.
    let good = conf("failed", "cnim40.42", "");
    let answer = cni.plugin("ADD", "ctr-ok", &ns, &good);
    answer.ok();
    assert!(link(None, "cnim40.42").is_some());
    cni.plugin("DEL", "ctr-ok", &ns, &good).ok();
    assert!(link(None, "cnim40.42").is_none());
    for ip in ["10.78.0.5", "10.77.0.1", "10.77.255.255"] {
        cni.plugin("ADD", "ctr-f", &ns, &asking(ip)).error(999);
        assert!(link(None, "cnim40.42").is_none(), "{ip}: the master stayed");
        assert_eq!(cni.records("failed"), (Vec::new(), Vec::new()), "{ip}");
    }
    restore_twice_changes_nothing(&cni, "after failed ADDs on an idle network");
    assert!(link(None, "cnim40.42").is_none(), "restore made the master");
    // A DEL of what was never added is no reason to make or keep it.
    cni.plugin("DEL", "ctr-f", &ns, &good).ok();
    assert!(link(None, "cnim40.42").is_none());

    // A master someone else made: never removed, by a failure, a DEL or
    // restore.
    ip(&[
        "link",
        "add",
        "link",
        "cnim40",
        "name",
        "cnim40.44",
        "type",
        "vlan",
        "id",
        "44",
    ]);
    let theirs = conf_on("theirs", "cnim40.44", "10.80.0.0/24");
    add_finding_no_address(&cni, "ctr-f", &ns, &theirs).error(999);
    assert!(
        link(None, "cnim40.44").is_some(),
        "their VLAN went with a failed ADD"
    );
    cni.plugin("DEL", "ctr-f", &ns, &theirs).ok();
    restore_twice_changes_nothing(&cni, "with their VLAN master");
    let vlan = link(None, "cnim40.44").expect("their VLAN stays");
    assert_eq!(link_kind(&vlan).as_deref(), Some("vlan"));
    ip(&["link", "del", "cnim40.44"]);
}

/// An ADD refused after its addresses were leased changes nothing in the
/// state directory, its allocation cursors included: one whose second
/// family has no address to give (the first family's lease given back),
/// and one whose link the kernel refuses (its master deleted while the
/// ADD waits before the create). Before, each moved the cursor of the
/// address it had leased and given back.
#[test]
fn an_add_refused_after_its_leases_leaves_the_state_as_it_was() {
    let mut cni = Cni::new("refusedadd");
    cni.master("cnim60");
    let ns = cni.netns("cni-refusedadd");
    // One IPv6 address to hand out, which the first ADD takes.
    let no_ipv6 = r#"{"cniVersion": "1.0.0", "name": "nov6", "type": "ipvlan", "master": "cnim60",
        "ipam": {"type": "ipvlan", "ranges": [[{"subnet": "10.71.0.0/24"}],
                 [{"subnet": "2001:db8:71::/64", "rangeStart": "2001:db8:71::1",
                   "rangeEnd": "2001:db8:71::2"}]]}}"#;
    cni.plugin("ADD", "ctr-a", &ns, no_ipv6).ok();
    let full = cni.netns("cni-refusedadd-full");
    let before = state_files(&cni.state);
    let msg = cni.plugin("ADD", "ctr-b", &full, no_ipv6).error(999);
    assert!(msg.contains("no available IPv6"), "{msg}");
    assert_eq!(state_files(&cni.state), before, "an ADD refused at IPv6");
    assert!(link(Some("cni-refusedadd-full"), "eth0").is_none());
    cni.plugin("DEL", "ctr-a", &ns, no_ipv6).ok();

    let good = conf_on("refused", "cnim60", "10.72.0.0/24");
    cni.plugin("ADD", "ctr-a", &ns, &good).ok();
    let other = cni.netns("cni-refusedadd2");
    let before = state_files(&cni.state);
    let pause = cni.state.with_extension("pause");
    let _ = std::fs::remove_file(&pause);
    let mut add = cni.command("ADD", "ctr-b", &other, "eth0");
    add.env("IPVLAN_FAULT_PAUSE_AT", "netlink: before request#1")
        .env("IPVLAN_FAULT_PAUSE_FILE", &pause);
    let mut child = add.spawn().expect("runs the plugin");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(good.as_bytes()).unwrap();
    drop(stdin);
    let paused = (0..1500).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        pause.exists()
    });
    let deleted = paused && ip_ok(&["link", "del", "cnim60"]);
    let _ = std::fs::remove_file(&pause);
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(paused, "the ADD never reached its pause: {stdout}");
    assert!(deleted, "the master deleted during the pause");
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert_eq!(state_files(&cni.state), before, "an ADD the kernel refused");
}

/// A config refused for what the kernel or the host's links hold (no
/// such master, no base for a `NAME.VLANID` master, its VLAN id carried
/// by another link, an MTU over the master's, another mode on the
/// master's port, a subnet or range the host's own addresses on the
/// master fill) changes nothing: the idle network its subnet or its name
/// would have made give way stays, and so does every state file. Before,
/// the idle network was removed first and the config refused after.
#[test]
fn a_config_the_kernel_refuses_removes_no_idle_network() {
    let mut cni = Cni::new("kernelrefused");
    cni.master("cnim61");
    let ns = cni.netns("cni-kernelrefused");
    let old = conf_on("kold", "cnim61", "10.73.0.0/24");
    cni.plugin("ADD", "ctr-a", &ns, &old).ok();
    cni.plugin("DEL", "ctr-a", &ns, &old).ok();
    // A network on the same master that stays whatever the config (not
    // CNI's), in the mode the idle one has.
    let (code, text) = cni.cli(&[
        "network",
        "create",
        "-o",
        "parent=cnim61",
        "--subnet",
        "10.75.0.0/24",
        "kstay",
    ]);
    assert_eq!(code, Some(0), "{text}");
    // Another tool's VLAN with the id of a `NAME.VLANID` master to make.
    ip(&[
        "link", "add", "link", "cnim61", "name", "their61", "type", "vlan", "id", "61",
    ]);
    let before = state_files(&cni.state);
    for (master, extra, refusal) in [
        // In the config's words, as STATUS says them (before, the CLI's:
        // "-o parent interface was not found on the host").
        ("nosuch61", "", "master nosuch61 does not exist"),
        (
            "nosuch61.5",
            "",
            "master nosuch61.5 does not exist, nor nosuch61 to make it on",
        ),
        (
            "cnim61",
            r#", "mtu": 9000"#,
            "mtu 9000 is larger than the MTU 1500 of parent cnim61",
        ),
        (
            "cnim61",
            r#", "mode": "l3""#,
            "network kstay is already using parent interface cnim61 with ipvlan mode l2",
        ),
        (
            "cnim61.61",
            "",
            "vlan id 61 is already in use on cnim61 by link their61",
        ),
    ] {
        // Another name on its subnet, then its own name.
        for name in ["knew", "kold"] {
            let conf = conf(name, master, extra)
                .replace("10.77.0.0/16", "10.73.0.0/24")
                .replace("10.77.0.254", "10.73.0.254");
            let answer = cni.plugin("ADD", "ctr-b", &ns, &conf);
            assert_eq!(answer.exit, Some(1), "{}", answer.stdout);
            let msg = answer
                .json()
                .get("msg")
                .and_then(Value::as_str)
                .map(str::to_string);
            assert!(
                msg.as_deref().is_some_and(|m| m.contains(refusal)),
                "{name} on {master}{extra}: {msg:?}"
            );
            assert_eq!(
                state_files(&cni.state),
                before,
                "{name} on {master}{extra} refused"
            );
        }
    }
    // Subnets and ranges the host's own addresses on the master fill: no
    // ADD could get an address (before, refused after the retiring, by
    // the create or on allocating).
    ip(&["addr", "add", "10.73.0.5/24", "dev", "cnim61"]);
    ip(&["addr", "add", "10.73.0.2/24", "dev", "cnim61"]);
    for (ipam, refusal) in [
        (
            r#""subnet": "10.73.0.0/24", "rangeStart": "10.73.0.5", "rangeEnd": "10.73.0.5""#,
            "range 10.73.0.5-10.73.0.5 of subnet 10.73.0.0/24 has no address a container could get: the network, broadcast, anycast and gateway addresses and the host's own on the master take them all",
        ),
        (
            r#""subnet": "10.73.0.0/30""#,
            "subnet 10.73.0.0/30 has no address a container could get: the network, broadcast, anycast and gateway addresses and the host's own on the master take them all",
        ),
    ] {
        for name in ["knew", "kold"] {
            let conf = format!(
                r#"{{"cniVersion": "1.0.0", "name": "{name}", "type": "ipvlan", "master": "cnim61",
                    "ipam": {{"type": "ipvlan", {ipam}}}}}"#
            );
            let answer = cni.plugin("ADD", "ctr-b", &ns, &conf);
            assert_eq!(
                state_files(&cni.state),
                before,
                "{name} with {ipam} refused"
            );
            assert_eq!(answer.error(7), refusal, "{name} with {ipam}");
        }
    }
    // A range set whose one subnet the host's addresses fill serves from
    // its next (before, refused as that subnet alone).
    ip(&["addr", "add", "10.82.0.2/24", "dev", "cnim61"]);
    let both = r#"{"cniVersion": "1.0.0", "name": "kboth", "type": "ipvlan", "master": "cnim61",
        "ipam": {"type": "ipvlan", "ranges": [[{"subnet": "10.82.0.0/30"}, {"subnet": "10.83.0.0/24"}]]}}"#;
    cni.plugin("ADD", "ctr-c", &ns, both).ok();
    let (_, leases) = cni.records("kboth");
    assert!(
        leases.len() == 1 && leases[0].0.starts_with("10.83.0."),
        "{leases:?}"
    );
    cni.plugin("DEL", "ctr-c", &ns, both).ok();
}

/// An ADD killed after it made the VLAN master and before it recorded
/// the attachment leaves no record: the runtime's DEL then finds none, and
/// must still take the master it made away.
#[test]
fn del_after_an_add_killed_at_any_point_leaves_no_vlan_master() {
    let mut cni = Cni::new("killmaster");
    cni.master("cnim41");
    let ns = cni.netns("cni-killmaster");
    let conf = conf("killm", "cnim41.42", "");
    // The hits of a whole ADD on an idle network (the master made again
    // by it), then one kill at each.
    cni.plugin("ADD", "warmup", &ns, &conf).ok();
    cni.plugin("DEL", "warmup", &ns, &conf).ok();
    at_each_kill_point_of_an_add(&cni, "ctr-k", &ns, &conf, |kill_at, hits| {
        assert!(
            link(None, "cnim41.42").is_none(),
            "hit {kill_at} of {hits}: the VLAN master outlived the DEL"
        );
        assert!(
            link(Some("cni-killmaster"), "eth0").is_none(),
            "hit {kill_at}"
        );
        assert_eq!(
            cni.records("killm"),
            (Vec::new(), Vec::new()),
            "hit {kill_at}"
        );
    });
}

/// `CNI_NETNS` is a path; a relative one is opened from the plugin's
/// working directory (as the reference plugin does) and recorded
/// absolute, so `restore`, run from anywhere, reads it back.
#[test]
fn a_relative_cni_netns_is_recorded_absolute() {
    // Before: recorded as given ("cni-relns"); every restore after it
    // exited 1 on the record.
    let mut cni = Cni::new("relns");
    cni.master("cnim42");
    let ns = cni.netns("cni-relns");
    let conf = conf("relns", "cnim42", "");
    let mut command = cni.command("ADD", "ctr-rel", Path::new("cni-relns"), "eth0");
    command.current_dir("/run/netns");
    let answer = run_with(command, &conf);
    answer.ok();
    assert!(link(Some("cni-relns"), "eth0").is_some());
    let store = StateDir::open(&cni.state).unwrap();
    let network = store.network_by_name("relns").unwrap();
    let recorded: Vec<String> = store
        .endpoints_of(&network.id)
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.netns)
        .collect();
    assert_eq!(recorded, [ns.display().to_string()]);
    let (code, text) = cni.cli(&["restore"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(link(Some("cni-relns"), "eth0").is_some(), "{text}");
    // Gone, it is collected as any attachment whose namespace vanished.
    ip(&["netns", "del", "cni-relns"]);
    let (code, text) = cni.cli(&["restore"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(cni.records("relns"), (Vec::new(), Vec::new()), "{text}");
}

/// The VLAN master of a CNI network is deleted only while it is the very
/// link we made: one another tool makes under its name once ours went
/// with the last DEL is used by the next ADD, and never removed, by that
/// attachment's DEL or by restore.
#[test]
fn a_vlan_master_another_tool_remade_is_never_removed() {
    let mut cni = Cni::new("remade");
    cni.master("cnim42");
    let ns = cni.netns("cni-remade");
    let conf = conf("remade", "cnim42.45", "");
    cni.plugin("ADD", "ctr-r", &ns, &conf).ok();
    let ours = link(None, "cnim42.45").expect("our VLAN master");
    cni.plugin("DEL", "ctr-r", &ns, &conf).ok();
    assert!(link(None, "cnim42.45").is_none(), "our VLAN master stayed");

    let vlan = [
        "link",
        "add",
        "link",
        "cnim42",
        "name",
        "cnim42.45",
        "type",
        "vlan",
        "id",
        "45",
    ];
    ip(&vlan);
    let ifindex = |l: &Value| l.get("ifindex").and_then(Value::as_u64);
    let theirs = ifindex(&link(None, "cnim42.45").unwrap());
    assert_ne!(theirs, ifindex(&ours));
    cni.plugin("ADD", "ctr-r", &ns, &conf).ok();
    cni.plugin("DEL", "ctr-r", &ns, &conf).ok();
    assert_eq!(
        link(None, "cnim42.45").as_ref().and_then(ifindex),
        theirs,
        "the last DEL removed the VLAN master another tool made"
    );
    cni.plugin("ADD", "ctr-r", &ns, &conf).ok();
    ip(&["netns", "del", "cni-remade"]);
    // The namespace gone, restore releases the attachment and drops the
    // masters left idle: ours only.
    restore_twice_changes_nothing(&cni, "with their VLAN master");
    assert_eq!(cni.records("remade"), (Vec::new(), Vec::new()));
    assert_eq!(
        link(None, "cnim42.45").as_ref().and_then(ifindex),
        theirs,
        "restore removed the VLAN master another tool made"
    );
    ip(&["link", "del", "cnim42.45"]);
}

/// The file named `name` anywhere under `dir`.
fn find_named(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.file_name().is_some_and(|n| n == name) {
            return Some(path);
        }
        if path.is_dir() {
            if let Some(found) = find_named(&path, name) {
                return Some(found);
            }
        }
    }
    None
}

/// A CLI network sharing a VLAN parent with an idle CNI network, the CLI
/// network's record damaged: `restore` leaves the parent (a damaged record
/// may be a network on it). It used to drop it as the idle CNI network's
/// master, and the damaged network's container lost its link.
#[test]
fn restore_keeps_a_master_a_damaged_network_record_may_use() {
    let mut cni = Cni::new("dmgm");
    cni.master("cnim90");
    let ns = cni.netns("cni-dmgm1");
    let pod_ns = cni.netns("cni-dmgm2");
    cli_network(&cni, "webd", "10.91.0.0/24", "cnim90.50");
    let (code, text) = cni.cli(&["network", "connect", "webd", ns.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{text}");
    let pod = conf("dmgpod", "cnim90.50", "");
    cni.plugin("ADD", "ctr-d1", &pod_ns, &pod).ok();
    cni.plugin("DEL", "ctr-d1", &pod_ns, &pod).ok();
    assert!(link(None, "cnim90.50").is_some(), "webd uses the master");
    let store = StateDir::open(&cni.state).unwrap();
    let web = store.network_by_name("webd").unwrap();
    drop(store);
    let path = find_named(&cni.state, &format!("{}.json", web.id)).unwrap();
    std::fs::write(&path, "{").unwrap();
    let (_, text) = cni.cli(&["restore"]);
    assert!(
        link(None, "cnim90.50").is_some(),
        "restore deleted the master a damaged network record may use: {text}"
    );
    assert!(
        link(Some("cni-dmgm1"), "eth0").is_some(),
        "the damaged network's endpoint link went with it: {text}"
    );
}

/// Two networks on one VLAN parent we made, their records naming different
/// indexes (as an earlier release's restore or CNI ADD left them: the
/// network that re-made the link got its index, the other kept the old
/// one): `restore` makes them agree on the live link's, so the link goes
/// with the last network, whichever it is.
#[test]
fn a_shared_parent_whose_records_disagree_goes_with_the_last_network() {
    let mut cni = Cni::new("stale");
    cni.master("cnim91");
    let nets = [("sa", "10.92.0.0/24"), ("sb", "10.93.0.0/24")];
    networks_disagreeing_on(&cni, "cnim91.60", &nets, "sb");
    let (_, text) = cni.cli(&["restore"]);
    // Every network removed, the one whose record kept the old index last.
    for name in ["sa", "sb"] {
        let (code, t) = cni.cli(&["network", "rm", name]);
        assert_eq!(code, Some(0), "{t}");
    }
    assert!(
        link(None, "cnim91.60").is_none(),
        "the parent we made outlived every network on it (restore: {text})"
    );
}

/// The last CLI network on a VLAN parent it made goes while only an idle
/// CNI network names that parent: the parent goes with it (an idle CNI
/// network holds a master no more than the network itself does).
#[test]
fn network_rm_of_the_last_cli_network_beside_an_idle_cni_network_drops_the_master() {
    let mut cni = Cni::new("idlerm");
    cni.master("cnim92");
    let pod_ns = cni.netns("cni-idlerm1");
    cli_network(&cni, "webr", "10.95.0.0/24", "cnim92.70");
    let pod = conf("idlepod", "cnim92.70", "");
    cni.plugin("ADD", "ctr-i1", &pod_ns, &pod).ok();
    cni.plugin("DEL", "ctr-i1", &pod_ns, &pod).ok();
    assert!(link(None, "cnim92.70").is_some());
    let (code, text) = cni.cli(&["network", "rm", "webr"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        link(None, "cnim92.70").is_none(),
        "the master stayed for an idle CNI network: {text}"
    );
}

/// Records on one parent that disagree (left by an earlier release): a
/// `network create` on the parent takes the index of the network that
/// proves the link ours, not of the first listed, since it passes that
/// index on to every network on the parent: a stale one would leave no
/// record naming the live link.
#[test]
fn a_network_created_on_a_parent_whose_records_disagree_keeps_the_live_index() {
    let mut cni = Cni::new("poison");
    cni.master("cnim93");
    // The stale record is the first listed (the oldest).
    let nets = [("pa", "10.96.0.0/24"), ("pb", "10.97.0.0/24")];
    let live = networks_disagreeing_on(&cni, "cnim93.80", &nets, "pa");
    cli_network(&cni, "pc", "10.98.0.0/24", "cnim93.80");
    let store = StateDir::open(&cni.state).unwrap();
    let indexes: Vec<(String, Option<u32>)> = store
        .networks()
        .unwrap()
        .items
        .into_iter()
        .map(|n| (n.name, n.parent_index))
        .collect();
    drop(store);
    assert!(
        indexes.iter().any(|(_, i)| *i == Some(live)),
        "no record names the live parent (index {live}) any more: {indexes:?}"
    );
}

/// Networks `nets` (name, subnet) made on the VLAN parent `parent`, then
/// the record of `stale` rewritten to name another index than the link's,
/// as an earlier release could leave it; returns the link's index.
fn networks_disagreeing_on(cni: &Cni, parent: &str, nets: &[(&str, &str)], stale: &str) -> u32 {
    for (name, subnet) in nets {
        cli_network(cni, name, subnet, parent);
    }
    let store = StateDir::open(&cni.state).unwrap();
    let record = store.network_by_name(stale).unwrap();
    drop(store);
    let live = record.parent_index.unwrap();
    let path = find_named(&cni.state, &format!("{}.json", record.id)).unwrap();
    let doc = json::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let Value::Object(fields) = doc else {
        panic!("{} is not an object", path.display())
    };
    let fields: Vec<(String, Value)> = fields
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            "parent_index" => (k, Value::from(u64::from(live ^ 1))),
            _ => (k, v),
        })
        .collect();
    std::fs::write(&path, Value::object(fields).to_compact().unwrap()).unwrap();
    live
}

/// `ipvlan network create` of `name` on `subnet` with parent `parent`,
/// which must succeed.
fn cli_network(cni: &Cni, name: &str, subnet: &str, parent: &str) {
    let option = format!("parent={parent}");
    let (code, text) = cni.cli(&[
        "network", "create", "-d", "ipvlan", "--subnet", subnet, "-o", &option, name,
    ]);
    assert_eq!(code, Some(0), "network create {name}: {text}");
}

/// DEL finds its network whether or not the name's hint (`names/NAME`,
/// which is not part of the commit) survived, and leaves a CLI network of
/// the config's name alone.
#[test]
fn del_finds_its_network_without_the_name_hint_and_leaves_a_cli_network_alone() {
    // Before: without the hint DEL deleted the link, kept the record and
    // the lease and answered success; the next ADD of that container was
    // refused for good ("already has eth0 ... DEL it first"). And a DEL
    // naming a CLI network (after its ADD was refused with code 7, as a
    // runtime sends it) deleted that network's VLAN parent.
    let mut cni = Cni::new("nohint");
    cni.master("cnim50");
    let ns = cni.netns("cni-nohint");
    let conf = conf("nohint", "cnim50", "");
    cni.plugin("ADD", "ctr-nohint", &ns, &conf).ok();
    std::fs::remove_file(cni.state.join("names/nohint")).unwrap();
    cni.plugin("DEL", "ctr-nohint", &ns, &conf).ok();
    assert!(link(Some("cni-nohint"), "eth0").is_none());
    assert_eq!(cni.records("nohint"), (Vec::new(), Vec::new()));
    // Its record and lease gone, the same attachment is made again (the
    // allocation cursor has moved on to the next address).
    cni.plugin("ADD", "ctr-nohint", &ns, &conf).ok();
    assert_eq!(addresses("cni-nohint", "eth0"), vec!["10.77.0.3/16"]);
    cni.plugin("DEL", "ctr-nohint", &ns, &conf).ok();

    cli_network(&cni, "clivlan", "10.86.0.0/24", "cnim50.31");
    let cli_conf = conf_on("clivlan", "cnim50.31", "10.86.0.0/24");
    let msg = cni.plugin("ADD", "ctr-nohint", &ns, &cli_conf).error(7);
    assert!(msg.contains("was not made by CNI"), "{msg}");
    cni.plugin("DEL", "ctr-nohint", &ns, &cli_conf).ok();
    assert!(
        link(None, "cnim50.31").is_some(),
        "a CNI DEL deleted the CLI network's VLAN parent"
    );
    assert!(cni.network_names().contains(&"clivlan".to_string()));
    let (code, text) = cni.cli(&["network", "rm", "clivlan"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(link(None, "cnim50.31").is_none());
}

/// `conf` on its own subnet, a /24 (`A.B.C.0/24`): its extra route's
/// gateway is the subnet's `.254`.
fn conf_on(name: &str, master: &str, subnet: &str) -> String {
    let prefix = subnet.strip_suffix("0/24").expect("a /24");
    conf(name, master, "")
        .replace("10.77.0.0/16", subnet)
        .replace("10.77.0.254", &format!("{prefix}254"))
}

/// With `linkInContainer`, the master is looked up in the container's
/// namespace whatever the IPAM: before, with a delegated one the host was
/// asked first, and a master only the namespace has failed the ADD.
#[test]
fn link_in_container_with_a_delegated_ipam_finds_the_master_in_the_namespace() {
    let mut cni = Cni::new("lichl");
    let ns = cni.netns("cni-lichl");
    ip(&["-n", "cni-lichl", "link", "add", "eth7", "type", "dummy"]);
    ip(&["-n", "cni-lichl", "link", "set", "eth7", "up"]);
    let data = cni.state.with_extension("host-local");
    let _ = std::fs::remove_dir_all(&data);
    let conf = host_local_conf("lichl", "eth7", &data).replacen(
        r#""type": "ipvlan","#,
        r#""type": "ipvlan", "linkInContainer": true,"#,
        1,
    );
    assert!(link(None, "eth7").is_none());
    let mut add = cni.command("ADD", "ctr-lichl", &ns, "eth0");
    add.env("CNI_PATH", "/usr/lib/cni");
    run_with(add, &conf).ok();
    let l = link(Some("cni-lichl"), "eth0").expect("eth0 in the namespace");
    assert_eq!(l.get("link").and_then(Value::as_str), Some("eth7"), "{l:?}");
    assert_eq!(addresses("cni-lichl", "eth0"), vec!["10.78.0.2/24"]);
    let mut del = cni.command("DEL", "ctr-lichl", &ns, "eth0");
    del.env("CNI_PATH", "/usr/lib/cni");
    run_with(del, &conf).ok();
    assert_eq!(link_names("cni-lichl"), ["eth7", "lo"]);
    assert_eq!(host_local_leases(&data, "lichl"), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&data);
}

/// Our IPAM answers with `resolvConf`'s DNS when it is the plugin's own,
/// as when it is another plugin's (and as the README says).
#[test]
fn our_ipam_answers_with_the_dns_of_its_resolv_conf() {
    let mut cni = Cni::new("resolv");
    cni.master("cnim51");
    let ns = cni.netns("cni-resolv");
    let resolv = cni.state.with_extension("resolv.conf");
    std::fs::write(&resolv, "nameserver 192.0.2.53\nsearch example.test\n").unwrap();
    let conf = conf_on("resolv", "cnim51", "10.87.0.0/24").replacen(
        r#""subnet": "10.87.0.0/24","#,
        &format!(
            r#""subnet": "10.87.0.0/24", "resolvConf": "{}","#,
            resolv.display()
        ),
        1,
    );
    let answer = cni.plugin("ADD", "ctr-resolv", &ns, &conf);
    answer.ok();
    let dns = answer.json().get("dns").cloned();
    assert_eq!(
        dns.map(|d| sorted(&d)),
        Some(sorted(
            &json::parse(r#"{"nameservers": ["192.0.2.53"], "search": ["example.test"]}"#).unwrap()
        )),
        "{}",
        answer.stdout
    );
    cni.plugin("DEL", "ctr-resolv", &ns, &conf).ok();
    // A resolvConf that cannot be read fails the ADD before anything is
    // taken.
    std::fs::remove_file(&resolv).unwrap();
    cni.plugin("ADD", "ctr-resolv", &ns, &conf).error(999);
    assert!(link(Some("cni-resolv"), "eth0").is_none());
    assert_eq!(cni.records("resolv"), (Vec::new(), Vec::new()));
}

/// GC collects what it can when one attachment cannot be collected, then
/// reports the error (the spec's GC: remove as much as possible).
#[test]
fn gc_goes_on_past_an_attachment_it_cannot_collect() {
    // Before: GC stopped at the first attachment that failed, and the
    // stale ones after it stayed.
    let mut cni = Cni::new("gcerr");
    cni.master("cnim52");
    let conf = conf_on("gcerr", "cnim52", "10.88.0.0/24").replace("1.0.0", "1.1.0");
    let mut ids: Vec<(String, &str, &str)> = [
        ("ctr-gcerr-a", "cni-gcerr-a"),
        ("ctr-gcerr-b", "cni-gcerr-b"),
    ]
    .into_iter()
    .map(|(ctr, ns)| (ipvlan::driver::attachment_id(ctr, "eth0"), ctr, ns))
    .collect();
    // Listed (and collected) in the order of their ids.
    ids.sort();
    let [(_, first, first_ns), (second_id, second, second_ns)] = [ids[0].clone(), ids[1].clone()];
    for (ctr, ns) in [(first, first_ns), (second, second_ns)] {
        let path = cni.netns(ns);
        cni.plugin("ADD", ctr, &path, &conf).ok();
    }
    // The second's namespace is gone: collected without entering it. The
    // first's is live, and entering it is refused.
    ip(&["netns", "del", second_ns]);
    let gc = conf.replacen('{', r#"{"cni.dev/valid-attachments": [], "#, 1);
    let mut command = cni.command("GC", "unused", Path::new("/nonexistent"), "eth0");
    for var in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
        command.env_remove(var);
    }
    command.env("IPVLAN_FAULT_FORCE", "netns: entering refused");
    let answer = run_with(command, &gc);
    assert_eq!(answer.exit, Some(1), "{} {}", answer.stdout, answer.stderr);
    assert!(
        answer.stdout.contains("entering network namespace"),
        "{}",
        answer.stdout
    );
    let (endpoints, leases) = cni.records("gcerr");
    assert_eq!(endpoints.len(), 1, "{endpoints:?}");
    assert!(!endpoints.contains(&second_id), "{endpoints:?}");
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert!(link(Some(first_ns), "eth0").is_some());
    // Once it can be entered, the next GC takes it.
    let mut command = cni.command("GC", "unused", Path::new("/nonexistent"), "eth0");
    for var in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
        command.env_remove(var);
    }
    run_with(command, &gc).ok();
    assert_eq!(cni.records("gcerr"), (Vec::new(), Vec::new()));
    assert!(link(Some(first_ns), "eth0").is_none());
}

/// Every address an IPAM plugin gives goes on the link, several of a
/// family too (host-local hands out one per range set), as the reference
/// configures them; the result lists what the link has, and CHECK agrees.
#[test]
fn every_address_of_a_delegated_ipam_goes_on_the_link() {
    // Before: only the first address of each family was configured, while
    // the result listed all of them; CHECK then failed ("lacks address").
    let mut cni = Cni::new("hl2");
    cni.master("cnim53");
    let ns = cni.netns("cni-hl2");
    let data = cni.state.with_extension("host-local");
    let _ = std::fs::remove_dir_all(&data);
    let conf = format!(
        r#"{{"cniVersion": "1.0.0", "name": "hl2", "type": "ipvlan", "master": "cnim53",
            "ipam": {{"type": "host-local", "dataDir": "{}",
                      "ranges": [[{{"subnet": "10.89.0.0/24"}}], [{{"subnet": "10.90.0.0/24"}}]]}}}}"#,
        data.display()
    );
    let mut add = cni.command("ADD", "ctr-hl2", &ns, "eth0");
    add.env("CNI_PATH", "/usr/lib/cni");
    let answer = run_with(add, &conf);
    answer.ok();
    let result = answer.json();
    let listed = common::result_addresses(&result);
    assert_eq!(listed, ["10.89.0.2/24", "10.90.0.2/24"]);
    assert_eq!(
        addresses("cni-hl2", "eth0"),
        vec!["10.89.0.2/24", "10.90.0.2/24"]
    );
    let prev = with_prev(&conf, &result);
    let mut check = cni.command("CHECK", "ctr-hl2", &ns, "eth0");
    check.env("CNI_PATH", "/usr/lib/cni");
    run_with(check, &prev).ok();
    let mut del = cni.command("DEL", "ctr-hl2", &ns, "eth0");
    del.env("CNI_PATH", "/usr/lib/cni");
    run_with(del, &prev).ok();
    assert!(link(Some("cni-hl2"), "eth0").is_none());
    assert_eq!(host_local_leases(&data, "hl2"), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&data);
}

/// A test's directory for fake plugins and what they leave, made afresh.
fn fake_dir(cni: &Cni) -> PathBuf {
    let dir = cni.state.with_extension("fake-ipam");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fake IPAM plugin `name` in `dir`: a shell script that reads its
/// config and then runs `body` (a `case "$CNI_COMMAND"`), exiting 0
/// unless `body` exits.
fn fake_ipam(dir: &Path, name: &str, body: &str) {
    common::fake_plugin(
        dir,
        name,
        &format!("PATH=/usr/sbin:/usr/bin:/sbin:/bin\ncat > /dev/null\n{body}\nexit 0"),
    );
}

/// ADD of `container` in `ns` started as a runtime starts it, with `conf`
/// on stdin and the plugins of `cni_path`.
fn spawn_add(cni: &Cni, container: &str, ns: &Path, conf: &str, cni_path: &Path) -> Child {
    let mut add = cni.command("ADD", container, ns, "eth0");
    add.env("CNI_PATH", cni_path);
    let mut child = add.spawn().expect("runs the plugin");
    let mut input = child.stdin.take().unwrap();
    input.write_all(conf.as_bytes()).unwrap();
    drop(input);
    child
}

/// The text of the file a fake plugin writes at `path` once it has, within
/// 30 s.
fn wait_for_file(path: &Path, what: &str) -> String {
    let started = std::time::Instant::now();
    loop {
        if let Some(text) = std::fs::read_to_string(path).ok().filter(|t| !t.is_empty()) {
            return text;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fake IPAM plugin `name` in `dir` whose ADD writes its `running`
/// file, waits (a minute at most) for a `go` file, then gives `address`;
/// its DEL appends `DEL <container id>` to its `dels` file. Returns the
/// three paths: `running`, `go`, `dels`.
fn gated_ipam(dir: &Path, name: &str, address: &str) -> (PathBuf, PathBuf, PathBuf) {
    let (running, go, dels) = (dir.join("running"), dir.join("go"), dir.join("dels"));
    fake_ipam(
        dir,
        name,
        &format!(
            r#"case "$CNI_COMMAND" in
ADD)
    echo running > {running}
    n=0
    while [ ! -e {go} ] && [ $n -lt 600 ]; do sleep 0.1; n=$((n + 1)); done
    echo '{{"cniVersion": "1.0.0", "ips": [{{"address": "{address}"}}]}}'
    ;;
DEL) echo "DEL $CNI_CONTAINERID" >> {dels} ;;
esac"#,
            running = running.display(),
            go = go.display(),
            dels = dels.display()
        ),
    );
    (running, go, dels)
}

/// Lets a [`gated_ipam`] plugin go on (its `go` file) and waits for the
/// ADD that runs it.
fn finish_gated(child: Child, go: &Path) -> Answer {
    std::fs::write(go, "").unwrap();
    let output = child.wait_with_output().unwrap();
    Answer {
        exit: output.status.code(),
        signal: std::os::unix::process::ExitStatusExt::signal(&output.status),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// A delegated IPAM plugin runs once our link exists in the namespace,
/// under its final name, down and without addresses, as the reference
/// plugin runs it (`dhcp`'s daemon takes its lease on that link), and from
/// the runtime's namespace, not the container's; what it gives then goes
/// on the link. When it fails, its error is the answer, the link is gone
/// and no record is left; its DEL is the runtime's to call, as with the
/// reference. Before, the plugin ran before the link was made: it found
/// no link (this fake plugin, the way `dhcp`'s daemon does).
#[test]
fn a_delegated_ipam_plugin_runs_once_the_link_exists() {
    let mut cni = Cni::new("late-ipam");
    cni.master("cnim94");
    let ns = cni.netns("cni-late-ipam");
    let failing_ns = cni.netns("cni-late-ipam2");
    let dir = fake_dir(&cni);
    let (seen, fail, dels) = (dir.join("seen"), dir.join("fail"), dir.join("dels"));
    fake_ipam(
        &dir,
        "fake-ipam",
        &format!(
            r#"case "$CNI_COMMAND" in
ADD)
    {{ {ip} -n "$(basename "$CNI_NETNS")" -o link show "$CNI_IFNAME" || echo "no link"
      readlink /proc/self/ns/net; }} > {seen} 2>&1
    if [ -e {fail} ]; then
        echo '{{"cniVersion": "1.0.0", "code": 11, "msg": "no lease for you"}}'
        exit 1
    fi
    echo '{{"cniVersion": "1.0.0", "ips": [{{"address": "10.77.0.9/24", "gateway": "10.77.0.1"}}], "routes": [{{"dst": "0.0.0.0/0"}}]}}'
    ;;
DEL) echo "DEL $CNI_CONTAINERID" >> {dels} ;;
esac"#,
            ip = vm_support::ip_path(),
            seen = seen.display(),
            fail = fail.display(),
            dels = dels.display()
        ),
    );
    let conf = r#"{"cniVersion": "1.0.0", "name": "late-ipam", "type": "ipvlan", "master": "cnim94",
        "ipam": {"type": "fake-ipam"}}"#;
    let ours = std::fs::read_link("/proc/self/ns/net").unwrap();

    let mut add = cni.command("ADD", "ctr-late", &ns, "eth0");
    add.env("CNI_PATH", &dir);
    let answer = run_with(add, conf);
    answer.ok();
    let seen_text = std::fs::read_to_string(&seen).unwrap();
    let mut lines = seen_text.lines();
    let link_line = lines.next().unwrap_or("");
    assert!(
        link_line.contains(": eth0@"),
        "the plugin found no eth0 in the namespace: {seen_text:?}"
    );
    let flags = link_line
        .split('<')
        .nth(1)
        .and_then(|f| f.split('>').next());
    assert!(
        flags.is_some_and(|f| !f.split(',').any(|flag| flag == "UP")),
        "the link was up when the plugin ran: {seen_text:?}"
    );
    assert_eq!(
        lines.next().map(Path::new),
        Some(ours.as_path()),
        "the plugin ran outside the runtime's namespace: {seen_text:?}"
    );
    assert_eq!(addresses("cni-late-ipam", "eth0"), vec!["10.77.0.9/24"]);
    assert_eq!(
        routes("cni-late-ipam", "eth0"),
        ["10.77.0.0/24", "default via 10.77.0.1"]
    );
    let up = link(Some("cni-late-ipam"), "eth0").unwrap();
    assert!(
        up.get("flags")
            .and_then(Value::as_array)
            .is_some_and(|flags| flags.iter().any(|f| f.as_str() == Some("UP"))),
        "{up:?}"
    );
    let result = answer.json();
    let ips = result.get("ips").and_then(Value::as_array).unwrap();
    assert_eq!(
        ips[0].get("address").and_then(Value::as_str),
        Some("10.77.0.9/24")
    );
    assert_eq!(cni.records("late-ipam").0.len(), 1);

    // The plugin refuses: its answer is ours, nothing of ours is left.
    std::fs::write(&fail, "").unwrap();
    let mut add = cni.command("ADD", "ctr-late2", &failing_ns, "eth0");
    add.env("CNI_PATH", &dir);
    let msg = run_with(add, conf).error(11);
    assert_eq!(msg, "no lease for you");
    assert!(
        std::fs::read_to_string(&seen).unwrap().contains(": eth0@"),
        "the failing plugin found no link either"
    );
    assert!(link(Some("cni-late-ipam2"), "eth0").is_none());
    assert_eq!(cni.records("late-ipam").0.len(), 1);
    assert!(
        !dels.exists(),
        "a DEL ran: {:?}",
        std::fs::read_to_string(&dels)
    );

    let prev = with_prev(conf, &result);
    let mut del = cni.command("DEL", "ctr-late", &ns, "eth0");
    del.env("CNI_PATH", &dir);
    run_with(del, &prev).ok();
    assert_eq!(std::fs::read_to_string(&dels).unwrap(), "DEL ctr-late\n");
    assert!(link(Some("cni-late-ipam"), "eth0").is_none());
    assert_eq!(cni.records("late-ipam"), (Vec::new(), Vec::new()));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Processes a test started, killed and reaped when it ends.
struct Daemons(Vec<Child>);

impl Drop for Daemons {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Debian's `dhcp` IPAM plugin, a real client of the order above: its
/// daemon (started here, as a host runs it) enters the namespace, takes
/// the link `CNI_IFNAME` up and asks for a lease on it; busybox's `udhcpd`
/// serves it from another namespace, on an ipvlan link of the same master
/// (l2, bridge: the two links reach each other, and the server's answers
/// are broadcast, as a client without an address gets them). The leased
/// address goes on our link; DEL releases it at the server. Before, our
/// ADD ran the plugin before the link existed and the daemon failed to
/// find it; and our DEL deleted the link before the plugin's DEL ran, so
/// the daemon could not send its release and the server kept the lease.
#[test]
fn the_dhcp_ipam_plugin_leases_an_address_on_our_link() {
    let mut cni = Cni::new("dhcp");
    cni.master("cnim95");
    let ns = cni.netns("cni-dhcp");
    cni.netns("cni-dhcp-server");
    let dir = cni.state.with_extension("dhcp");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    ip(&[
        "link", "add", "dhcpsrv0", "link", "cnim95", "type", "ipvlan", "mode", "l2",
    ]);
    ip(&["link", "set", "dhcpsrv0", "netns", "cni-dhcp-server"]);
    ip(&[
        "-n",
        "cni-dhcp-server",
        "addr",
        "add",
        "10.79.0.2/24",
        "dev",
        "dhcpsrv0",
    ]);
    ip(&["-n", "cni-dhcp-server", "link", "set", "dhcpsrv0", "up"]);
    let config = dir.join("udhcpd.conf");
    std::fs::write(
        &config,
        format!(
            "start 10.79.0.10\nend 10.79.0.20\ninterface dhcpsrv0\n\
             option subnet 255.255.255.0\noption router 10.79.0.1\noption lease 600\n\
             lease_file {}\npidfile {}\n",
            dir.join("leases").display(),
            dir.join("udhcpd.pid").display()
        ),
    )
    .unwrap();
    std::fs::write(dir.join("leases"), "").unwrap();
    let socket = Path::new("/run/cni/dhcp.sock");
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(socket);
    let spawn = |program: &str, args: &[&str], log: &str| {
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join(log)).unwrap())
            .stderr(std::fs::File::create(dir.join(format!("{log}.err"))).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e}"))
    };
    let daemons = Daemons(vec![
        spawn(
            "nsenter",
            &[
                "--net=/run/netns/cni-dhcp-server",
                "busybox",
                "udhcpd",
                "-f",
                config.to_str().unwrap(),
            ],
            "udhcpd",
        ),
        spawn("/usr/lib/cni/dhcp", &["daemon"], "dhcp-daemon"),
    ]);
    let started = std::time::Instant::now();
    while !socket.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the dhcp daemon made no socket: {:?}",
            std::fs::read_to_string(dir.join("dhcp-daemon.err"))
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let conf = r#"{"cniVersion": "1.0.0", "name": "dhcpnet", "type": "ipvlan", "master": "cnim95",
        "ipam": {"type": "dhcp"}}"#;
    let mut add = cni.command("ADD", "ctr-dhcp", &ns, "eth0");
    add.env("CNI_PATH", "/usr/lib/cni");
    let answer = run_with(add, conf);
    let logs = || {
        ["dhcp-daemon", "dhcp-daemon.err", "udhcpd", "udhcpd.err"]
            .map(|log| std::fs::read_to_string(dir.join(log)).unwrap_or_default())
            .join("\n")
    };
    assert_eq!(
        answer.exit,
        Some(0),
        "{} {}\n{}",
        answer.stdout,
        answer.stderr,
        logs()
    );
    let result = answer.json();
    let leased = result.get("ips").and_then(Value::as_array).unwrap()[0]
        .get("address")
        .and_then(Value::as_str)
        .unwrap()
        .to_string();
    let (address, len) = leased.split_once('/').unwrap();
    let last: u8 = address.strip_prefix("10.79.0.").unwrap().parse().unwrap();
    assert!((10..=20).contains(&last) && len == "24", "leased {leased}");
    assert_eq!(addresses("cni-dhcp", "eth0"), vec![leased.clone()]);
    assert_eq!(cni.records("dhcpnet").0.len(), 1);

    // udhcpd's view of the lease, written out on SIGUSR1: its line of
    // `dumpleases` once it says "expired" or not, as `expired` asks.
    let server = std::fs::read_to_string(dir.join("udhcpd.pid")).unwrap();
    let server = server.trim();
    let lease_line = |expired: bool| {
        let started = std::time::Instant::now();
        loop {
            let _ = Command::new("kill").args(["-USR1", server]).status();
            std::thread::sleep(Duration::from_millis(100));
            let dump = Command::new("busybox")
                .args(["dumpleases", "-f"])
                .arg(dir.join("leases"))
                .output()
                .unwrap();
            let dump = String::from_utf8_lossy(&dump.stdout).into_owned();
            let line = dump.lines().find(|l| l.contains(&format!(" {address} ")));
            if line.is_some_and(|l| l.contains("expired") == expired) {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "udhcpd's leases, expired {expired} wanted: {dump}\n{}",
                logs()
            );
        }
    };
    lease_line(false);

    let prev = with_prev(conf, &result);
    let mut del = cni.command("DEL", "ctr-dhcp", &ns, "eth0");
    del.env("CNI_PATH", "/usr/lib/cni");
    run_with(del, &prev).ok();
    assert!(link(Some("cni-dhcp"), "eth0").is_none());
    assert_eq!(cni.records("dhcpnet"), (Vec::new(), Vec::new()));
    // Released through the link, which DEL deleted after the plugin's DEL.
    lease_line(true);
    drop(daemons);
    let _ = std::fs::remove_file(socket);
    let _ = std::fs::remove_dir_all(&dir);
}

/// An ADD killed while its delegated IPAM plugin runs (the link made, down,
/// no address; the intent written) leaves what a killed attach leaves:
/// `restore` deletes the link and the intent, twice changing nothing more,
/// and the runtime's DEL then succeeds and runs the plugin's DEL; or the
/// DEL alone does all of it.
#[test]
fn an_add_killed_while_its_delegated_plugin_runs_leaves_nothing_after_restore_or_del() {
    let mut cni = Cni::new("late-kill");
    cni.master("cnim96");
    let ns = cni.netns("cni-late-kill");
    let dir = fake_dir(&cni);
    let (running, dels) = (dir.join("running"), dir.join("dels"));
    fake_ipam(
        &dir,
        "slow-ipam",
        &format!(
            r#"case "$CNI_COMMAND" in
ADD)
    echo $$ > {running}
    sleep 60
    echo '{{"cniVersion": "1.0.0", "ips": [{{"address": "10.76.0.9/24"}}]}}'
    ;;
DEL) echo "DEL $CNI_CONTAINERID" >> {dels} ;;
esac"#,
            running = running.display(),
            dels = dels.display()
        ),
    );
    let conf = r#"{"cniVersion": "1.0.0", "name": "late-kill", "type": "ipvlan", "master": "cnim96",
        "ipam": {"type": "slow-ipam"}}"#;
    for restore_first in [true, false] {
        let why = if restore_first { "restore, DEL" } else { "DEL" };
        let _ = std::fs::remove_file(&running);
        let _ = std::fs::remove_file(&dels);
        let mut child = spawn_add(&cni, "ctr-late-kill", &ns, conf, &dir);
        let pid = wait_for_file(&running, &format!("{why}: the plugin never ran"));
        // The link exists while the plugin runs.
        assert!(
            link(Some("cni-late-kill"), "eth0").is_some(),
            "{why}: no link while the plugin ran"
        );
        let _ = child.kill();
        let _ = child.wait();
        // The plugin outlives our process: its own pid, as it wrote it.
        // Killed after `restore`, which must not take a descriptor the
        // plugin inherited for our ADD still running.
        let kill_plugin = || {
            let _ = Command::new("kill").args(["-9", pid.trim()]).status();
        };
        if !restore_first {
            kill_plugin();
        }
        if restore_first {
            restore_twice_changes_nothing(&cni, why);
            kill_plugin();
            assert!(
                link(Some("cni-late-kill"), "eth0").is_none(),
                "{why}: eth0 left by restore"
            );
            assert_eq!(cni.records("late-kill").0, Vec::<String>::new(), "{why}");
        }
        let mut del = cni.command("DEL", "ctr-late-kill", &ns, "eth0");
        del.env("CNI_PATH", &dir);
        run_with(del, conf).ok();
        assert!(
            link(Some("cni-late-kill"), "eth0").is_none(),
            "{why}: eth0 left"
        );
        assert_eq!(cni.records("late-kill"), (Vec::new(), Vec::new()), "{why}");
        assert_eq!(
            std::fs::read_to_string(&dels).unwrap_or_default(),
            "DEL ctr-late-kill\n",
            "{why}: the plugin's DEL"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `restore` run while a delegated IPAM plugin waits leaves the ADD to
/// finish (its intent held), as it must still undo a killed ADD's (the
/// test above); nor does `network disconnect` undo it. Before: restore
/// took the live ADD's intent for one a dead command left and undid it
/// ("the attachment was undone while its IPAM plugin ran").
#[test]
fn restore_while_a_delegated_plugin_runs_leaves_the_add_to_finish() {
    let mut cni = Cni::new("livegate");
    cni.master("cnim99");
    let ns = cni.netns("cni-livegate");
    let dir = fake_dir(&cni);
    let (running, go, dels) = gated_ipam(&dir, "waiting-ipam", "10.73.0.9/24");
    let conf = r#"{"cniVersion": "1.0.0", "name": "livegate", "type": "ipvlan", "master": "cnim99",
        "ipam": {"type": "waiting-ipam"}}"#;
    let child = spawn_add(&cni, "ctr-livegate", &ns, conf, &dir);
    wait_for_file(&running, "the plugin never ran");
    let (links, files) = (host_links(), state_files(&cni.state));
    let made = link(Some("cni-livegate"), "eth0").expect("the link while the plugin runs");

    let (code, text) = cni.cli(&["restore"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("attach in progress, left to it: livegate: "),
        "{text}"
    );
    assert_eq!(
        host_links(),
        links,
        "restore changed the host's links: {text}"
    );
    assert_eq!(
        state_files(&cni.state),
        files,
        "restore changed the store: {text}"
    );
    let kept = link(Some("cni-livegate"), "eth0").expect("restore deleted the ADD's link");
    assert_eq!(kept.get("ifindex"), made.get("ifindex"));
    assert_eq!(cni.records("livegate").0.len(), 1, "{text}");
    // Nor does `network disconnect` undo it (by a path outside our netns
    // directory, which a detach reads as a path). Before: exit 0, link and
    // intent gone, and the ADD failed "undone by a DEL or a GC".
    let path = ns.display().to_string();
    let elsewhere = cni.state.with_extension("netns");
    let (code, text) = cni.cli_in(
        &["network", "disconnect", "livegate", &path],
        Some(&elsewhere),
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.ends_with(
            ": its runtime's DEL removes it, not `network disconnect`; nothing was detached\n"
        ),
        "{text}"
    );
    assert_eq!(
        state_files(&cni.state),
        files,
        "disconnect changed the store"
    );
    assert!(
        link(Some("cni-livegate"), "eth0").is_some(),
        "disconnect deleted the link"
    );

    let answer = finish_gated(child, &go);
    answer.ok();
    assert_eq!(addresses("cni-livegate", "eth0"), vec!["10.73.0.9/24"]);
    // Once the ADD is done, restore keeps the attachment as any other.
    restore_twice_changes_nothing(&cni, "after the ADD");
    assert_eq!(addresses("cni-livegate", "eth0"), vec!["10.73.0.9/24"]);
    assert!(!dels.exists(), "the plugin's DEL ran");

    let mut del = cni.command("DEL", "ctr-livegate", &ns, "eth0");
    del.env("CNI_PATH", &dir);
    run_with(del, &with_prev(conf, &answer.json())).ok();
    assert!(link(Some("cni-livegate"), "eth0").is_none());
    assert_eq!(cni.records("livegate"), (Vec::new(), Vec::new()));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A delegated IPAM plugin runs without our lock: while it waits (a DHCP
/// server may take seconds, or never answer), another ADD of ours goes
/// through. Before, the lock was held across the plugin's run and the
/// other ADD waited for it. An attachment undone meanwhile (here a DEL
/// the runtime sent while the ADD hung) fails the ADD, which then leaves
/// nothing: no link, no record, the plugin's DEL run.
#[test]
fn a_delegated_plugin_runs_without_our_lock_and_an_undo_meanwhile_fails_the_add() {
    let mut cni = Cni::new("gate");
    cni.master("cnim97");
    cni.master("cnim98");
    let ns = cni.netns("cni-gate");
    let other_ns = cni.netns("cni-gate-other");
    let dir = fake_dir(&cni);
    let (running, go, dels) = gated_ipam(&dir, "gated-ipam", "10.75.0.9/24");
    let conf = r#"{"cniVersion": "1.0.0", "name": "gate", "type": "ipvlan", "master": "cnim97",
        "ipam": {"type": "gated-ipam"}}"#;
    let start_gated_add = || {
        for file in [&running, &go, &dels] {
            let _ = std::fs::remove_file(file);
        }
        let child = spawn_add(&cni, "ctr-gate", &ns, conf, &dir);
        wait_for_file(&running, "the plugin never ran");
        child
    };
    let finish = |child: Child| finish_gated(child, &go);

    // Another ADD, with our own IPAM, while the plugin waits.
    let gated = start_gated_add();
    let other_conf = conf_on("gate-other", "cnim98", "10.74.0.0/24");
    let mut other = cni.spawn("ADD", "ctr-gate-other", &other_ns, &other_conf);
    let started = std::time::Instant::now();
    let other_status = loop {
        if let Some(status) = other.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > Duration::from_secs(20) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let answer = finish(gated);
    let _ = other.wait();
    assert!(
        other_status.is_some_and(|status| status.success()),
        "the other ADD waited for the plugin ({other_status:?})"
    );
    answer.ok();
    assert_eq!(addresses("cni-gate", "eth0"), vec!["10.75.0.9/24"]);
    assert_eq!(addresses("cni-gate-other", "eth0"), vec!["10.74.0.2/24"]);
    let result = answer.json();
    let mut del = cni.command("DEL", "ctr-gate", &ns, "eth0");
    del.env("CNI_PATH", &dir);
    run_with(del, &with_prev(conf, &result)).ok();
    assert!(link(Some("cni-gate"), "eth0").is_none());

    // The runtime gives up on the ADD and sends DEL while the plugin waits.
    let gated = start_gated_add();
    assert!(link(Some("cni-gate"), "eth0").is_some());
    let mut del = cni.command("DEL", "ctr-gate", &ns, "eth0");
    del.env("CNI_PATH", &dir);
    run_with(del, conf).ok();
    assert!(link(Some("cni-gate"), "eth0").is_none());
    let msg = finish(gated).error(999);
    assert!(
        msg.contains("the attachment was undone while its IPAM plugin ran"),
        "{msg}"
    );
    assert!(link(Some("cni-gate"), "eth0").is_none());
    assert_eq!(cni.records("gate"), (Vec::new(), Vec::new()));
    // The runtime's DEL ran it once, our undo of the ADD once more.
    assert_eq!(
        std::fs::read_to_string(&dels).unwrap(),
        "DEL ctr-gate\nDEL ctr-gate\n"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// An attachment whose namespace is gone (a reboot; a runtime that died
/// before its DEL) gives way to a new ADD of its container id and
/// interface, released first as a DEL releases it (a delegated plugin's
/// lease by its DEL): Podman reuses both when it starts a container again
/// after a reboot. Before, every such ADD was refused ("already has eth0
/// ... DEL it first") until a DEL or a `restore`. One whose namespace
/// lives is still refused, and changes nothing.
#[test]
fn an_attachment_whose_namespace_is_gone_gives_way_to_the_same_one() {
    let mut cni = Cni::new("stale");
    cni.master("cnim62");
    let conf = conf("stale", "cnim62", "");
    let first = cni.netns("cni-stale-a");
    cni.plugin("ADD", "ctr-stale", &first, &conf).ok();
    let held = cni.records("stale");
    let msg = cni.plugin("ADD", "ctr-stale", &first, &conf).error(999);
    assert!(msg.contains("interface eth0 already exists"), "{msg}");
    assert_eq!(cni.records("stale"), held);
    ip(&["netns", "del", "cni-stale-a"]);
    let second = cni.netns("cni-stale-b");
    cni.plugin("ADD", "ctr-stale", &second, &conf).ok();
    let (endpoints, leases) = cni.records("stale");
    assert_eq!(endpoints, held.0, "the same attachment, once");
    assert_eq!(leases.len(), 1, "{leases:?}");
    assert_eq!(addresses("cni-stale-b", "eth0").len(), 1);
    cni.plugin("DEL", "ctr-stale", &second, &conf).ok();
    assert_eq!(cni.records("stale"), (Vec::new(), Vec::new()));

    // With Debian's host-local: its lease of the old attachment goes by
    // its DEL (it would refuse a second lease of the container's id).
    let data = cni.state.with_extension("host-local");
    let _ = std::fs::remove_dir_all(&data);
    let conf = host_local_conf("stalehl", "cnim62", &data);
    let third = cni.netns("cni-stale-c");
    cni.with_debians("ADD", "ctr-stalehl", &third, &conf).ok();
    assert_eq!(host_local_leases(&data, "stalehl"), vec!["10.78.0.2"]);
    ip(&["netns", "del", "cni-stale-c"]);
    let fourth = cni.netns("cni-stale-d");
    cni.with_debians("ADD", "ctr-stalehl", &fourth, &conf).ok();
    assert_eq!(addresses("cni-stale-d", "eth0"), vec!["10.78.0.3/24"]);
    assert_eq!(host_local_leases(&data, "stalehl"), vec!["10.78.0.3"]);
    assert_eq!(cni.records("stalehl").0.len(), 1);
    cni.with_debians("DEL", "ctr-stalehl", &fourth, &conf).ok();
    assert_eq!(host_local_leases(&data, "stalehl"), Vec::<String>::new());
    let _ = std::fs::remove_dir_all(&data);
}

/// Two of our plugin's networks on one master split one subnet by
/// disjoint `rangeStart`-`rangeEnd` ranges (the networks of two tenants
/// on one VLAN), each with a container; ranges that meet another's are
/// refused. Before, the second was refused ("Pool overlaps with other one
/// on this address space") when its record was made, under the lock,
/// though the config's own check had let it through.
#[test]
fn two_networks_on_one_master_split_a_subnet_by_disjoint_ranges() {
    let mut cni = Cni::new("split");
    cni.master("cnim63");
    let tenant = |name: &str, start: &str, end: &str| {
        format!(
            r#"{{"cniVersion": "1.0.0", "name": "{name}", "type": "ipvlan", "master": "cnim63",
                "ipam": {{"type": "ipvlan", "ranges": [[{{"subnet": "10.79.6.0/24",
                          "rangeStart": "10.79.6.{start}", "rangeEnd": "10.79.6.{end}"}}]]}}}}"#
        )
    };
    let a = tenant("split-a", "10", "99");
    let b = tenant("split-b", "100", "199");
    let in_a = cni.netns("cni-split-a");
    let in_b = cni.netns("cni-split-b");
    cni.plugin("ADD", "ctr-split-a", &in_a, &a).ok();
    cni.plugin("ADD", "ctr-split-b", &in_b, &b).ok();
    assert_eq!(addresses("cni-split-a", "eth0"), vec!["10.79.6.10/24"]);
    assert_eq!(addresses("cni-split-b", "eth0"), vec!["10.79.6.100/24"]);
    let in_c = cni.netns("cni-split-c");
    let c = tenant("split-c", "90", "110");
    let msg = cni.plugin("ADD", "ctr-split-c", &in_c, &c).error(7);
    assert!(msg.starts_with("Pool overlaps with other one"), "{msg}");
    assert!(link(Some("cni-split-c"), "eth0").is_none());
    cni.plugin("DEL", "ctr-split-a", &in_a, &a).ok();
    cni.plugin("DEL", "ctr-split-b", &in_b, &b).ok();
}

/// An ADD's intent that no command holds any more (its process killed,
/// with its runtime) and whose namespace is gone gives way to a new ADD
/// of the attachment, as one left attached does; before, it was refused
/// until a DEL or a `restore`.
#[test]
fn a_dead_adds_intent_whose_namespace_is_gone_gives_way() {
    let mut cni = Cni::new("deadintent");
    cni.master("cnim64");
    let conf = conf("deadintent", "cnim64", "");
    let first = cni.netns("cni-dead-a");
    cni.plugin("ADD", "ctr-dead", &first, &conf).ok();
    let (endpoints, _) = cni.records("deadintent");
    // What a killed ADD leaves: its record still `attaching`.
    let path = find_named(&cni.state, &format!("{}.json", endpoints[0])).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"attached\""), "{text}");
    std::fs::write(&path, text.replace("\"attached\"", "\"attaching\"")).unwrap();
    ip(&["netns", "del", "cni-dead-a"]);
    let second = cni.netns("cni-dead-b");
    cni.plugin("ADD", "ctr-dead", &second, &conf).ok();
    let (after, leases) = cni.records("deadintent");
    assert_eq!(after, endpoints, "the same attachment, once");
    assert_eq!(leases.len(), 1, "{leases:?}");
    cni.plugin("DEL", "ctr-dead", &second, &conf).ok();
    assert_eq!(cni.records("deadintent"), (Vec::new(), Vec::new()));
}

#[test]
fn an_add_refused_an_address_another_ipvlan_link_holds_gets_the_next_when_retried() {
    // A host's own ipvlan link on the master holding the address the
    // allocation gives first: the kernel refuses it to any other link of
    // the port. Before, the refused ADD put the allocation cursor back,
    // and every retry of the runtime's failed the same way.
    let mut cni = Cni::new("held");
    cni.master("cnim30");
    ip(&[
        "link", "add", "cshim", "link", "cnim30", "type", "ipvlan", "mode", "l2",
    ]);
    ip(&["addr", "add", "10.77.0.2/16", "dev", "cshim"]);
    ip(&["link", "set", "cshim", "up"]);
    let ns = cni.netns("cni-held");
    let conf = conf("held", "cnim30", "");
    // Code 11, "try again later": the retry is given the next address.
    let msg = cni.plugin("ADD", "ctr-held", &ns, &conf).error(11);
    assert!(
        msg.contains("10.77.0.2 is held by another ipvlan link on the network's parent"),
        "{msg}"
    );
    // Nothing of it left: no link, no record, no lease.
    assert_eq!(link_names("cni-held"), ["lo"]);
    assert_eq!(cni.records("held"), (Vec::new(), Vec::new()));
    // Asked for by name, it is no transient condition: 999.
    let mut asked = cni.command("ADD", "ctr-held", &ns, "eth0");
    asked.env("CNI_ARGS", "IgnoreUnknown=1;IP=10.77.0.2");
    let msg = run_with(asked, &conf).error(999);
    assert!(
        msg.contains("Address already assigned to an ipvlan device"),
        "{msg}"
    );
    assert_eq!(link_names("cni-held"), ["lo"]);
    // The runtime's retry is given the next address.
    let answer = cni.plugin("ADD", "ctr-held", &ns, &conf);
    answer.ok();
    assert_eq!(addresses("cni-held", "eth0"), ["10.77.0.3/16"]);
    cni.plugin("DEL", "ctr-held", &ns, &with_prev(&conf, &answer.json()))
        .ok();
    // The other link's address stays its own.
    let shim = ip_json(&["-4", "addr", "show", "dev", "cshim"]);
    assert!(
        shim.to_pretty().unwrap().contains("\"10.77.0.2\""),
        "{shim:?}"
    );
    ip(&["link", "del", "cshim"]);
}

/// An ADD of a changed config that found its network idle (leases only)
/// decides without the lock to take it over; an ADD of the network's own
/// config may attach to it meanwhile. Before, the first rewrote the
/// network under the lock all the same (its record unchanged), a host
/// master's network over the second's in-container link, which GC then
/// judged by the wrong master and `restore` reported on every run.
#[test]
fn an_idle_network_attached_meanwhile_by_its_own_config_is_not_taken_over() {
    let mut cni = Cni::new("takeover");
    cni.master("cnim31");
    let a = cni.netns("cni-take-a");
    let b = cni.netns("cni-take-b");
    ip(&["-n", "cni-take-b", "link", "add", "eth1", "type", "dummy"]);
    ip(&["-n", "cni-take-b", "link", "set", "eth1", "up"]);
    let own = r#"{"cniVersion": "1.0.0", "name": "take", "type": "ipvlan", "master": "eth1",
        "linkInContainer": true, "ipam": {"type": "ipvlan", "subnet": "10.89.0.0/24"}}"#;
    let changed = r#"{"cniVersion": "1.0.0", "name": "take", "type": "ipvlan", "master": "cnim31",
        "ipam": {"type": "ipvlan", "subnet": "10.89.0.0/24"}}"#;
    cni.plugin("ADD", "ctr-b", &b, own).ok();
    cni.plugin("DEL", "ctr-b", &b, own).ok();

    let pause = cni.state.with_extension("pause");
    let _ = std::fs::remove_file(&pause);
    let mut add = cni.command("ADD", "ctr-a", &a, "eth0");
    add.env(
        "IPVLAN_FAULT_PAUSE_AT",
        "cni add: before taking over an idle network#1",
    )
    .env("IPVLAN_FAULT_PAUSE_FILE", &pause);
    let mut child = add.spawn().expect("runs the plugin");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(changed.as_bytes()).unwrap();
    drop(stdin);
    let paused = (0..1500).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        pause.exists()
    });
    let meanwhile = paused.then(|| cni.plugin("ADD", "ctr-b", &b, own));
    let _ = std::fs::remove_file(&pause);
    let output = child.wait_with_output().unwrap();
    let refused = Answer {
        exit: output.status.code(),
        signal: std::os::unix::process::ExitStatusExt::signal(&output.status),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    assert!(
        paused,
        "the ADD never reached its pause: {}",
        refused.stdout
    );
    meanwhile.unwrap().ok();
    let msg = refused.error(7);
    assert!(
        msg.starts_with("network take has 1 attachment(s) made with another config"),
        "{msg}"
    );
    assert!(link(Some("cni-take-a"), "eth0").is_none());
    // The network is still its own config's, with its attachment.
    let store = StateDir::open(&cni.state).unwrap();
    let network = store.network_named("take").unwrap().unwrap();
    assert_eq!(network.parent, "", "{network:?}");
    assert_eq!(
        cni.records("take").0,
        [ipvlan::driver::attachment_id("ctr-b", "eth0")]
    );
    cni.plugin("DEL", "ctr-b", &b, own).ok();
    assert_eq!(link_names("cni-take-b"), ["eth1", "lo"]);
}
