//! The binary on a kernel without IPv6, as hosts booted with
//! `ipv6.disable=1` are: IPv4 networks work as anywhere (through the CLI
//! and as a CNI plugin), an IPv6 network is refused when it is made,
//! saying why and changing nothing, and an attach that would need IPv6 is
//! refused the same way and undone whole.
//!
//! Runs only in a boot with IPv6 off (`cargo xtask vm-test --ipv6-off`,
//! a step of `cargo xtask test`); on a kernel with IPv6 every test fails
//! at its first line, as the tests of IPv6 fail without it.

mod vm_support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ipvlan::json::{self, Value};
use vm_support::{addresses, default_routes, in_container, ip, ip_json, ip_ok, link, link_kind};

/// What the driver says of a kernel without IPv6.
const NO_IPV6: &str = "this kernel has no IPv6 (booted with ipv6.disable=1, or built without IPv6)";

fn binary() -> String {
    std::env::var("IPVLAN_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ipvlan").to_string())
}

/// Fails unless the kernel has no IPv6: these tests prove nothing on one
/// that has it, and must not pass there as if they did.
fn require_no_ipv6() {
    assert!(
        !Path::new("/proc/sys/net/ipv6").exists(),
        "this kernel has IPv6: these tests run in a boot with ipv6.disable=1 (cargo xtask vm-test --ipv6-off)"
    );
}

/// A test's state directory (absent at first), dummy parents and
/// namespaces, removed on drop.
struct Host {
    state: PathBuf,
    parents: Vec<String>,
    namespaces: Vec<String>,
}

impl Host {
    fn new(tag: &str) -> Host {
        require_no_ipv6();
        let state = PathBuf::from(format!("/tmp/ipvlan-ipv6-off-{tag}"));
        let _ = std::fs::remove_dir_all(&state);
        Host {
            state,
            parents: Vec::new(),
            namespaces: Vec::new(),
        }
    }

    /// A dummy link `name` in the host, up, holding `address` when given
    /// (the host's own address on the LAN the network shares).
    fn parent(&mut self, name: &str, address: Option<&str>) {
        let _ = ip_ok(&["link", "del", name]);
        ip(&["link", "add", name, "type", "dummy"]);
        ip(&["link", "set", name, "up"]);
        if let Some(address) = address {
            ip(&["addr", "add", address, "dev", name]);
        }
        self.parents.push(name.to_string());
    }

    /// A fresh named namespace; its path.
    fn netns(&mut self, name: &str) -> PathBuf {
        let _ = ip_ok(&["netns", "del", name]);
        ip(&["netns", "add", name]);
        self.namespaces.push(name.to_string());
        Path::new("/run/netns").join(name)
    }

    /// `ipvlan ARGS`: exit code, stdout, stderr.
    fn cli(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let output = Command::new(binary())
            .args(args)
            .env("IPVLAN_STATE_DIR", &self.state)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// `ipvlan ARGS`, which must succeed; its stdout.
    fn cli_ok(&self, args: &[&str]) -> String {
        let (code, stdout, stderr) = self.cli(args);
        assert_eq!(code, Some(0), "ipvlan {}: {stdout}{stderr}", args.join(" "));
        stdout
    }

    /// The plugin run as a runtime runs it: exit code and its answer.
    fn cni(&self, verb: &str, container: &str, netns: &Path, conf: &str) -> (Option<i32>, Value) {
        let mut child = Command::new(binary())
            .env_clear()
            .env("CNI_COMMAND", verb)
            .env("CNI_CONTAINERID", container)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", "/nonexistent/cni/bin")
            .env("IPVLAN_STATE_DIR", &self.state)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(conf.as_bytes()).unwrap();
        drop(stdin);
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let answer = match stdout.trim() {
            "" => Value::Null,
            text => json::parse(text).unwrap_or_else(|e| panic!("{verb}: {e}: {text}")),
        };
        (output.status.code(), answer)
    }

    /// Every file and directory under the state directory, but the lock
    /// and the commit log's pages (written in place by every command).
    fn stored(&self) -> Vec<String> {
        fn walk(dir: &Path, root: &Path, out: &mut Vec<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let relative = path.strip_prefix(root).unwrap().display().to_string();
                if relative == "lock" || relative.starts_with("logs/") {
                    continue;
                }
                out.push(relative);
                if path.is_dir() && !path.is_symlink() {
                    walk(&path, root, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.state, &self.state, &mut out);
        out.sort();
        out
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        for name in &self.namespaces {
            let _ = ip_ok(&["netns", "del", name]);
        }
        for name in &self.parents {
            let _ = ip_ok(&["link", "del", name]);
        }
        let _ = std::fs::remove_dir_all(&self.state);
    }
}

/// Asserts a CNI ADD's answer (`code`, `answer`) refusing its IPv6
/// network when it is to be made.
fn assert_ipv6_network_refused(code: Option<i32>, answer: &Value) {
    assert_eq!(code, Some(1), "{answer:?}");
    assert_eq!(
        answer.get("msg").and_then(Value::as_str),
        Some(format!("an IPv6 network cannot be made: {NO_IPV6}").as_str()),
        "{answer:?}"
    );
}

/// The names of the links in namespace `ns`, or in the host's.
fn link_names(ns: Option<&str>) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    args.extend(["link", "show"]);
    let mut names: Vec<String> = ip_json(&args)
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l.get("ifname").and_then(Value::as_str).map(str::to_string))
        .collect();
    names.sort();
    names
}

fn host_links() -> Vec<String> {
    link_names(None)
}

fn links_in(ns: &str) -> Vec<String> {
    link_names(Some(ns))
}

#[test]
fn doctor_says_ipv6_is_off_and_passes() {
    let host = Host::new("doctor");
    let stdout = host.cli_ok(&["doctor"]);
    let expected = format!("ok   ipv6: {NO_IPV6}: IPv4 networks only, an IPv6 network is refused");
    assert!(stdout.lines().any(|l| l == expected), "{stdout}");
}

#[test]
fn the_cli_serves_ipv4_networks_as_on_any_kernel() {
    let mut host = Host::new("cli");
    host.parent("p4", Some("192.168.40.250/24"));
    host.cli_ok(&[
        "network",
        "create",
        "-d",
        "ipvlan",
        "--subnet",
        "192.168.40.0/24",
        "-o",
        "parent=p4",
        "n4",
    ]);
    host.cli_ok(&["network", "create", "-d", "ipvlan", "--internal", "n4int"]);
    host.cli_ok(&["run", "-d", "--net", "n4", "--name", "c1"]);
    host.cli_ok(&["run", "-d", "--net", "n4", "--name", "c2"]);
    host.namespaces.extend(["c1".to_string(), "c2".to_string()]);

    // Read back from the kernel: the address (the host's .250 passed
    // over), the default route by the gateway, and no IPv6 anywhere.
    assert_eq!(addresses("c1", "eth0"), ["192.168.40.2/24"]);
    assert_eq!(addresses("c2", "eth0"), ["192.168.40.3/24"]);
    assert_eq!(
        default_routes("c1", "-4"),
        [(Some("192.168.40.1".to_string()), "eth0".to_string())]
    );
    let eth0 = link(Some("c1"), "eth0").expect("c1 has eth0");
    assert_eq!(link_kind(&eth0).as_deref(), Some("ipvlan"), "{eth0:?}");
    // By name, through the network's hosts view, as a container resolves.
    let (pinged, output) = in_container("c2", &["ping", "-c", "1", "-W", "2", "c1"]);
    assert!(pinged, "c2 cannot reach c1 by name: {output}");

    host.cli_ok(&["network", "connect", "n4int", "c1"]);
    assert_eq!(links_in("c1"), ["eth0", "eth1", "lo"]);
    assert_eq!(addresses("c1", "eth1").len(), 1);
    let (_, ps, _) = host.cli(&["ps"]);
    assert!(
        ps.lines()
            .any(|l| l.starts_with("c1 ") && l.contains("n4,n4int")),
        "{ps}"
    );
    host.cli_ok(&["network", "disconnect", "n4int", "c1"]);
    assert_eq!(links_in("c1"), ["eth0", "lo"]);

    host.cli_ok(&["rm", "-f", "c1", "c2"]);
    assert!(!Path::new("/run/netns/c1").exists());
    assert!(!Path::new("/run/netns/c2").exists());
    let dummies_before_rm = host_links();
    assert!(
        dummies_before_rm.iter().any(|l| l.starts_with("di-")),
        "{dummies_before_rm:?}"
    );
    host.cli_ok(&["network", "rm", "n4", "n4int"]);
    let after = host_links();
    assert!(after.iter().all(|l| !l.starts_with("di-")), "{after:?}");
    assert!(after.contains(&"p4".to_string()), "{after:?}");
    let restored = host.cli_ok(&["restore"]);
    assert_eq!(
        restored.trim(),
        "restore: 0 parents re-created, 0 parents missing, 0 links re-created, 0 endpoints kept, 0 endpoints released, 0 interrupted operations repaired"
    );
}

#[test]
fn an_ipv6_network_is_refused_when_made_and_nothing_is_made() {
    let mut host = Host::new("refused");
    host.parent("p6", None);
    let refused = |host: &Host, args: &[&str], name: &str| {
        let links = host_links();
        let stored = host.stored();
        let (code, stdout, stderr) = host.cli(args);
        assert_eq!(code, Some(1), "{}: {stdout}{stderr}", args.join(" "));
        assert_eq!(
            stderr,
            format!("ipvlan: network create {name}: an IPv6 network cannot be made: {NO_IPV6}\n")
        );
        assert_eq!(stdout, "");
        assert_eq!(host_links(), links, "{}: links changed", args.join(" "));
        assert_eq!(
            host.stored(),
            stored,
            "{}: the store changed",
            args.join(" ")
        );
    };
    let creates: [(&[&str], &str); 3] = [
        (
            &[
                "network",
                "create",
                "--ipv6",
                "--subnet",
                "192.168.41.0/24",
                "-o",
                "parent=p6",
                "n6",
            ],
            "n6",
        ),
        (
            &[
                "network",
                "create",
                "--subnet",
                "2001:db8:41::/64",
                "-o",
                "parent=p6",
                "n6only",
            ],
            "n6only",
        ),
        (
            &["network", "create", "--internal", "--ipv6", "n6int"],
            "n6int",
        ),
    ];
    // On a host without a store: none is made.
    for (args, name) in creates {
        refused(&host, args, name);
        assert!(!host.state.exists(), "{}: a store was made", args.join(" "));
    }
    // Beside an IPv4 network: it is the only one recorded.
    host.cli_ok(&[
        "network",
        "create",
        "--subnet",
        "192.168.42.0/24",
        "-o",
        "parent=p6",
        "n4",
    ]);
    for (args, name) in creates {
        refused(&host, args, name);
    }
    let listed = host.cli_ok(&["network", "ls", "-q"]);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    host.cli_ok(&["network", "rm", "n4"]);
}

#[test]
fn cni_adds_ipv4_and_refuses_what_needs_ipv6_leaving_nothing() {
    let mut host = Host::new("cni");
    host.parent("m4", None);
    let conf = |name: &str, subnet: &str, routes: &str| {
        format!(
            r#"{{"cniVersion": "1.0.0", "name": "{name}", "type": "ipvlan", "master": "m4",
                "ipam": {{"type": "ipvlan", "subnet": "{subnet}", "routes": [{routes}]}}}}"#
        )
    };

    // IPv4: added, read back, deleted.
    let v4 = conf("cni4", "10.43.0.0/24", r#"{"dst": "0.0.0.0/0"}"#);
    let ns = host.netns("cni-v4");
    let (code, answer) = host.cni("ADD", "ctr-v4", &ns, &v4);
    assert_eq!(code, Some(0), "{answer:?}");
    let address = answer
        .get("ips")
        .and_then(Value::as_array)
        .and_then(|ips| ips.first())
        .and_then(|ip| ip.get("address"))
        .and_then(Value::as_str);
    assert_eq!(address, Some("10.43.0.2/24"), "{answer:?}");
    assert_eq!(addresses("cni-v4", "eth0"), ["10.43.0.2/24"]);
    let (code, answer) = host.cni("DEL", "ctr-v4", &ns, &v4);
    assert_eq!(code, Some(0), "{answer:?}");
    assert_eq!(links_in("cni-v4"), ["lo"]);

    // What needs IPv6, refused with why; nothing added, nothing leased.
    let cases = [
        (
            conf("cni6", "2001:db8:43::/64", ""),
            format!("an IPv6 network cannot be made: {NO_IPV6}"),
        ),
        // IPv4 addresses with an IPv6 default route: the link needs IPv6.
        (
            conf(
                "cni4",
                "10.43.0.0/24",
                r#"{"dst": "0.0.0.0/0"}, {"dst": "::/0"}"#,
            ),
            format!("eth0 in /run/netns/cni-v6 needs IPv6: {NO_IPV6}"),
        ),
    ];
    let ns = host.netns("cni-v6");
    for (conf, message) in cases {
        let stored = host.stored();
        let links = host_links();
        let (code, answer) = host.cni("ADD", "ctr-v6", &ns, &conf);
        assert_eq!(code, Some(1), "{answer:?}");
        assert_eq!(
            answer.get("code").and_then(Value::as_u64),
            Some(999),
            "{answer:?}"
        );
        let msg = answer
            .get("msg")
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert!(msg.contains(&message), "{msg:?} does not say {message:?}");
        assert_eq!(links_in("cni-v6"), ["lo"], "{conf}");
        assert_eq!(host_links(), links, "{conf}");
        assert_eq!(host.stored(), stored, "{conf}: the store changed");
    }
}

/// Where the master is looked up in the container (`linkInContainer`),
/// an IPv6 range is refused all the same, before a record is made.
#[test]
fn cni_refuses_an_ipv6_range_with_the_link_in_the_container() {
    let mut host = Host::new("inside");
    let ns = host.netns("cni-inside");
    ip(&["-n", "cni-inside", "link", "add", "eth1", "type", "dummy"]);
    ip(&["-n", "cni-inside", "link", "set", "eth1", "up"]);
    let conf = r#"{"cniVersion": "1.0.0", "name": "inside6", "type": "ipvlan", "master": "eth1",
        "linkInContainer": true,
        "ipam": {"type": "ipvlan", "ranges": [[{"subnet": "10.45.0.0/24"}],
                                               [{"subnet": "2001:db8:45::/64"}]]}}"#;
    let (code, answer) = host.cni("ADD", "ctr-inside", &ns, conf);
    assert_ipv6_network_refused(code, &answer);
    assert_eq!(links_in("cni-inside"), ["eth1", "lo"]);
    assert!(
        !host.state.exists(),
        "a store was made: {:?}",
        host.stored()
    );
}

/// A changed config that asks for IPv6 is refused before the network it
/// would replace goes (with the VLAN master its ADDs make): that network
/// stays, and its config still works.
#[test]
fn cni_refuses_a_config_changed_to_ipv6_before_retiring_the_old_network() {
    let mut host = Host::new("changed");
    host.parent("m5", None);
    let v4 = r#"{"cniVersion": "1.0.0", "name": "vlan5", "type": "ipvlan", "master": "m5.50",
        "ipam": {"type": "ipvlan", "subnet": "10.46.0.0/24"}}"#;
    let ns = host.netns("cni-changed");
    let (code, answer) = host.cni("ADD", "ctr-changed", &ns, v4);
    assert_eq!(code, Some(0), "{answer:?}");
    let (code, answer) = host.cni("DEL", "ctr-changed", &ns, v4);
    assert_eq!(code, Some(0), "{answer:?}");
    // Idle: its record stays, the VLAN master goes with the last DEL
    // (and comes back with the next ADD).
    assert!(
        link(None, "m5.50").is_none(),
        "the DEL kept the VLAN master"
    );
    let listed = host.cli_ok(&["network", "ls", "-q"]);
    assert_eq!(listed.lines().count(), 1, "{listed}");

    let dual = r#"{"cniVersion": "1.0.0", "name": "vlan5", "type": "ipvlan", "master": "m5.50",
        "ipam": {"type": "ipvlan", "ranges": [[{"subnet": "10.46.0.0/24"}],
                                               [{"subnet": "2001:db8:46::/64"}]]}}"#;
    let stored = host.stored();
    let (code, answer) = host.cni("ADD", "ctr-changed", &ns, dual);
    assert_ipv6_network_refused(code, &answer);
    assert_eq!(host.stored(), stored, "the store changed");
    assert_eq!(links_in("cni-changed"), ["lo"]);
    // The old config still works.
    let (code, answer) = host.cni("ADD", "ctr-changed", &ns, v4);
    assert_eq!(code, Some(0), "{answer:?}");
    let (code, answer) = host.cni("DEL", "ctr-changed", &ns, v4);
    assert_eq!(code, Some(0), "{answer:?}");
    host.cli_ok(&["network", "rm", "vlan5"]);
}
