//! Helpers shared by the VM tests: iproute2 and ping by full path, reading
//! kernel state back as JSON, running commands inside containers, the
//! walkthrough topology.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

use ipvlan::driver::{AttachRequest, Config, EndpointInfo, Manager, NetworkCreate, Target};
use ipvlan::json::{self, Value};

/// iproute2 (busybox's `ip` cannot create ipvlan or vlan links).
pub fn ip_path() -> String {
    std::env::var("IPVLAN_IP").unwrap_or_else(|_| "/usr/sbin/ip".to_string())
}

pub fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program} {}: {e}", args.join(" ")))
}

/// `ip ARGS`, panicking on failure.
pub fn ip(args: &[&str]) -> String {
    let out = run(&ip_path(), args);
    assert!(
        out.status.success(),
        "`ip {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip ARGS`, whether it worked.
pub fn ip_ok(args: &[&str]) -> bool {
    run(&ip_path(), args).status.success()
}

/// `ip -j ARGS` parsed.
pub fn ip_json(args: &[&str]) -> Value {
    let mut full = vec!["-j"];
    full.extend_from_slice(args);
    let text = ip(&full);
    let text = if text.trim().is_empty() {
        "[]".to_string()
    } else {
        text
    };
    json::parse(&text).unwrap_or_else(|e| panic!("ip -j {}: {e}: {text}", args.join(" ")))
}

/// `ip -d -j link show dev NAME` in the host (or `-n NS`), if it exists.
pub fn link(ns: Option<&str>, name: &str) -> Option<Value> {
    let mut args = Vec::new();
    if let Some(ns) = ns {
        args.extend(["-n", ns]);
    }
    args.extend(["-d", "-j", "link", "show", "dev", name]);
    let out = run(&ip_path(), &args);
    if !out.status.success() {
        // Missing is an answer; any other failure (a namespace that cannot
        // be entered) is not a link gone, and must not pass for one.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("does not exist"),
            "ip {}: {stderr}",
            args.join(" ")
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let parsed =
        json::parse(&text).unwrap_or_else(|e| panic!("ip {}: {e}: {text}", args.join(" ")));
    parsed.as_array()?.first().cloned()
}

/// The `kind` of a link's `linkinfo`.
pub fn link_kind(link: &Value) -> Option<String> {
    link.get("linkinfo")?
        .get("info_kind")?
        .as_str()
        .map(str::to_string)
}

pub fn link_flags(link: &Value) -> Vec<String> {
    link.get("flags")
        .and_then(Value::as_array)
        .unwrap_or(&[])
        .iter()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect()
}

/// `ADDR/PREFIX` of every global address of `dev` in namespace `ns`.
pub fn addresses(ns: &str, dev: &str) -> Vec<String> {
    let v = ip_json(&["-n", ns, "addr", "show", "dev", dev]);
    let mut out = Vec::new();
    for link in v.as_array().unwrap_or(&[]) {
        for a in link
            .get("addr_info")
            .and_then(Value::as_array)
            .unwrap_or(&[])
        {
            if a.get("scope").and_then(Value::as_str) == Some("global") {
                out.push(format!(
                    "{}/{}",
                    a.get("local").and_then(Value::as_str).unwrap_or(""),
                    a.get("prefixlen").and_then(Value::as_u64).unwrap_or(0)
                ));
            }
        }
    }
    out
}

/// Flags of the address `addr` on `dev` (`nodad`...), from `ip -j addr`.
pub fn address_has_nodad(ns: &str, dev: &str, addr: &str) -> bool {
    let v = ip_json(&["-n", ns, "addr", "show", "dev", dev]);
    v.as_array().unwrap_or(&[]).iter().any(|link| {
        link.get("addr_info")
            .and_then(Value::as_array)
            .unwrap_or(&[])
            .iter()
            .any(|a| {
                a.get("local").and_then(Value::as_str) == Some(addr)
                    && a.get("nodad").and_then(Value::as_bool) == Some(true)
            })
    })
}

/// Default routes in `ns` for family `-4`/`-6`: `(gateway, dev)`.
pub fn default_routes(ns: &str, family: &str) -> Vec<(Option<String>, String)> {
    let v = ip_json(&["-n", ns, family, "route", "show", "default"]);
    v.as_array()
        .unwrap_or(&[])
        .iter()
        .map(|r| {
            (
                r.get("gateway").and_then(Value::as_str).map(str::to_string),
                r.get("dev")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

/// Runs `argv` in container `name` with iproute2 (which mounts
/// `/etc/netns/NAME/hosts` over `/etc/hosts`); returns (success, output).
pub fn in_container(name: &str, argv: &[&str]) -> (bool, String) {
    let mut args = vec!["netns", "exec", name];
    args.extend_from_slice(argv);
    let out = run(&ip_path(), &args);
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// One ping (v4 or v6 by address form), from container `from`.
pub fn ping(from: &str, target: &str) -> bool {
    let six = target.contains(':');
    let mut argv = vec!["ping"];
    if six {
        argv.push("-6");
    }
    argv.extend(["-c", "1", "-W", "2", target]);
    in_container(from, &argv).0
}

/// Pings until one reply or `tries` attempts (the first ARP/ND exchange may
/// take a moment under emulation).
pub fn ping_eventually(from: &str, target: &str) -> bool {
    (0..3).any(|_| ping(from, target))
}

/// The walkthrough topology (router namespace, VLANs), built once.
pub fn topology_up() {
    let script = std::env::var("IPVLAN_TOPOLOGY")
        .unwrap_or_else(|_| "/usr/share/ipvlan-test/topology.sh".to_string());
    if link(None, "eth0").is_some() {
        return;
    }
    let out = run("/bin/sh", &[&script, "up"]);
    assert!(
        out.status.success(),
        "topology up: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Settled before any test looks: the veth's carrier comes, the links
    // go from DOWN or UNKNOWN to UP and get their link-local addresses a
    // moment after the script ends, which a test comparing the kernel's
    // state before and after a refusal took for its change.
    wait_until(
        "the test topology's links up, with link-local addresses",
        || {
            let settled = |ns: &[&str]| {
                let brief = |what: &str| {
                    let mut args = ns.to_vec();
                    args.extend(["-br", what]);
                    ip(&args)
                };
                let lines = |text: String| -> Vec<String> {
                    text.lines()
                        .filter(|line| !line.starts_with("lo ") && !line.trim().is_empty())
                        .map(str::to_string)
                        .collect()
                };
                let (links, addrs) = (lines(brief("link")), lines(brief("addr")));
                !links.is_empty()
                    && links
                        .iter()
                        .all(|l| l.split_whitespace().nth(1) == Some("UP"))
                    && addrs.iter().all(|a| a.contains(" fe80::"))
            };
            settled(&["-n", "router"]) && settled(&[])
        },
    );
}

/// A scratch state directory and the system's namespace directories.
pub fn config(tag: &str) -> Config {
    let state_dir = PathBuf::from(format!("/tmp/ipvlan-state-{tag}"));
    let _ = std::fs::remove_dir_all(&state_dir);
    Config {
        state_dir,
        netns_dir: PathBuf::from("/run/netns"),
        etc_netns_dir: PathBuf::from("/etc/netns"),
    }
}

pub fn net(
    name: &str,
    subnets: &[&str],
    gateways: &[&str],
    opts: &[(&str, &str)],
) -> NetworkCreate {
    let mut req = NetworkCreate::new(name);
    req.subnets = subnets.iter().map(|s| s.parse().unwrap()).collect();
    req.gateways = gateways.iter().map(|s| s.parse().unwrap()).collect();
    req.options = opts
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    req
}

/// `ipvlan run --net=NETWORK --name=NAME [--ip] [--ip6]` without a command.
pub fn start(
    manager: &Manager,
    network: &str,
    name: &str,
    ipv4: Option<&str>,
    ipv6: Option<&str>,
) -> EndpointInfo {
    manager
        .create_container(Some(name))
        .unwrap_or_else(|e| panic!("creating container {name}: {e}"));
    let req = AttachRequest {
        ipv4: ipv4.map(|a| a.parse().unwrap()),
        ipv6: ipv6.map(|a| a.parse().unwrap()),
    };
    manager
        .connect(network, &Target::Container(name.into()), &req)
        .unwrap_or_else(|e| panic!("connecting {name} to {network}: {e}"))
}

/// The path of the network namespace process `pid` is in, once that is
/// not ours (`unshare -n` has entered its own), or a panic after 30 s: a
/// fixed sleep before using it was too short now and then under emulation.
pub fn own_netns_of(pid: u32) -> String {
    let own = std::fs::read_link("/proc/self/ns/net").unwrap();
    let path = format!("/proc/{pid}/ns/net");
    wait_until(
        &format!("process {pid} entering a network namespace of its own"),
        || std::fs::read_link(&path).is_ok_and(|ns| ns != own),
    );
    path
}

/// A process in a network namespace of its own, without a name (as a
/// runtime keeps its containers: Docker's are bind mounts outside
/// `/run/netns`), started by `unshare -n sleep`, killed when dropped.
pub struct NamelessNamespace(std::process::Child);

impl NamelessNamespace {
    /// Started, once it is in its own namespace.
    pub fn start() -> NamelessNamespace {
        let child = Command::new("unshare")
            .args(["-n", "sleep", "1000"])
            .spawn()
            .expect("busybox unshare");
        own_netns_of(child.id());
        NamelessNamespace(child)
    }

    /// Its pid, as the commands that take one spell it.
    pub fn pid(&self) -> String {
        self.0.id().to_string()
    }
}

impl Drop for NamelessNamespace {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until process `pid` is in the namespace bound at `bound` (`ip
/// netns exec NAME` has entered `/run/netns/NAME`), or panics after 30 s.
pub fn wait_in_netns(pid: u32, bound: &str) {
    use std::os::unix::fs::MetadataExt;
    let id = |path: &str| std::fs::metadata(path).map(|m| (m.dev(), m.ino())).ok();
    let want = id(bound).unwrap_or_else(|| panic!("{bound} is no namespace"));
    let path = format!("/proc/{pid}/ns/net");
    wait_until(&format!("process {pid} entering {bound}"), || {
        id(&path) == Some(want)
    });
}

/// Polls `done` every 20 ms; panics naming `what` after 30 s.
pub fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1500 {
        if done() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// The pids of the processes whose network namespace is nsfs inode
/// `inode`.
pub fn processes_in_namespace(inode: u64) -> Vec<String> {
    let wanted = format!("net:[{inode}]");
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|link| link.as_os_str() == wanted.as_str())
        })
        .collect()
}

/// The nsfs inode of the namespace bound at `path`.
pub fn namespace_inode(path: &std::path::Path) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(path).unwrap())
}

/// [`processes_in_namespace`] once it is empty, or after `rounds` looks
/// 20 ms apart: killed processes take a moment to exit.
pub fn left_in_namespace(inode: u64, rounds: usize) -> Vec<String> {
    for _ in 0..rounds {
        if processes_in_namespace(inode).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    processes_in_namespace(inode)
}

/// Every ipvlan link in every namespace under /run/netns plus the host.
pub fn all_ipvlan_links() -> Vec<String> {
    let mut found = Vec::new();
    let mut spaces: Vec<Option<String>> = vec![None];
    if let Ok(entries) = std::fs::read_dir("/run/netns") {
        for e in entries.flatten() {
            spaces.push(Some(e.file_name().to_string_lossy().into_owned()));
        }
    }
    for ns in spaces {
        let mut args = Vec::new();
        if let Some(ns) = &ns {
            args.extend(["-n", ns.as_str()]);
        }
        args.extend(["-d", "link", "show", "type", "ipvlan"]);
        let mut full = vec!["-j"];
        full.extend_from_slice(&args);
        // A namespace another test adds or deletes meanwhile may be there
        // half made or already gone: looked at again, and passed over once
        // its name is gone; one that stays unreadable fails the check (a
        // failure read as "no links" would hide a leak).
        let mut attempts = 0;
        let out = loop {
            let out = run(&ip_path(), &full);
            attempts += 1;
            if out.status.success() || attempts == 10 {
                break Some(out);
            }
            if ns
                .as_ref()
                .is_some_and(|ns| !std::path::Path::new("/run/netns").join(ns).exists())
            {
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let Some(out) = out else { continue };
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "ip {}: {}",
            full.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        let v = if text.trim().is_empty() {
            Value::Array(Vec::new())
        } else {
            json::parse(&text).unwrap_or_else(|e| panic!("ip {}: {e}: {text}", full.join(" ")))
        };
        for l in v.as_array().unwrap_or(&[]) {
            found.push(format!(
                "{}:{}",
                ns.clone().unwrap_or_else(|| "host".into()),
                l.get("ifname").and_then(Value::as_str).unwrap_or("")
            ));
        }
    }
    found.sort();
    found
}
