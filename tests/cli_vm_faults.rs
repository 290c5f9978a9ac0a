//! Crash safety through the binary, in the QEMU guest (`cargo xtask vm-test
//! --test cli_vm_faults`): commands killed with SIGKILL at their kill points
//! (src/fault.rs; the guest's `ipvlan` is built with `fault-injection`),
//! then `ipvlan restore`, then kernel and state must agree.
//!
//! A command is first run with `IPVLAN_FAULT_COUNT` to list its hits, then
//! once per hit with `IPVLAN_FAULT_KILL_AT`. The guest gives this binary its
//! own `/run/netns`, `/etc/netns` and network namespace (tests/vm/isolate.sh);
//! a namespace, an `/etc/netns` entry and a dummy link that are not ours
//! stand beside ours throughout and must come out untouched.

mod vm_support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use ipvlan::fault::{COUNT_ENV, KILL_AT_ENV};
use ipvlan::json::{self, Value};
use ipvlan::store::{EndpointState, NetworkState, StateDir};
use vm_support::ip_path;

const NETNS_DIR: &str = "/run/netns";
const ETC_NETNS_DIR: &str = "/etc/netns";
/// What another tool made: a namespace with an `/etc/netns` entry, and a
/// host link our VLAN parents sit on.
const FOREIGN_NS: &str = "foreign";
const FOREIGN_HOSTS: &str = "10.0.0.1\tsomething-else\n";
const TRUNK: &str = "trunk0";

fn binary() -> String {
    std::env::var("IPVLAN_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ipvlan").to_string())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn args(line: &str) -> Vec<String> {
    line.split_whitespace().map(str::to_string).collect()
}

/// `ip ARGS`; panics unless it succeeds.
fn ip(args: &[&str]) -> String {
    let out = Command::new(ip_path())
        .args(args)
        .output()
        .expect("runs ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// `ip -j ARGS` (with `-n NS` unless `ns` is `None`), parsed.
fn ip_json(ns: Option<&str>, rest: &[&str]) -> Vec<Value> {
    let mut full = vec!["-j"];
    if let Some(ns) = ns {
        full.extend(["-n", ns]);
    }
    full.extend_from_slice(rest);
    let out = ip(&full);
    if out.trim().is_empty() {
        return Vec::new();
    }
    match json::parse(&out) {
        Ok(Value::Array(items)) => items,
        other => panic!("ip {}: {other:?}", full.join(" ")),
    }
}

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A link as `ip -d -j link` shows it: name and kind (`""` for none).
fn links(ns: Option<&str>) -> Vec<(String, String)> {
    ip_json(ns, &["-d", "link", "show"])
        .iter()
        .map(|link| {
            let kind = link
                .get("linkinfo")
                .map(|info| str_of(info, "info_kind").to_string())
                .unwrap_or_default();
            (str_of(link, "ifname").to_string(), kind)
        })
        .collect()
}

/// Global addresses by link name, as `ip -j addr` shows them.
fn addresses(ns: Option<&str>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for link in ip_json(ns, &["addr", "show"]) {
        let mut set = BTreeSet::new();
        for addr in link
            .get("addr_info")
            .and_then(Value::as_array)
            .unwrap_or(&[])
        {
            if str_of(addr, "scope") == "global" {
                let prefix = addr.get("prefixlen").and_then(Value::as_u64).unwrap_or(0);
                set.insert(format!("{}/{prefix}", str_of(addr, "local")));
            }
        }
        out.insert(str_of(&link, "ifname").to_string(), set);
    }
    out
}

fn dir_names(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// One state directory and the commands run on it.
struct Lab {
    root: PathBuf,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        let root = std::env::temp_dir().join(format!("ipvlan-faults-{tag}"));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(&root).unwrap();
        Lab { root }
    }

    fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    fn count_file(&self) -> PathBuf {
        self.root.join("hits")
    }

    fn command(&self, args: &[String]) -> Command {
        let mut command = Command::new(binary());
        command
            .args(args)
            .env("IPVLAN_STATE_DIR", self.state_dir())
            .env("IPVLAN_NETNS_DIR", NETNS_DIR)
            .env("IPVLAN_ETC_NETNS_DIR", ETC_NETNS_DIR)
            .env_remove(COUNT_ENV)
            .env_remove(KILL_AT_ENV)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    fn output(&self, command: &mut Command) -> Output {
        command.output().expect("runs ipvlan")
    }

    /// Runs and insists on exit status 0; returns stdout.
    fn ok(&self, args: &[String]) -> String {
        let out = self.output(&mut self.command(args));
        assert_eq!(
            out.status.code(),
            Some(0),
            "ipvlan {}: {}{}",
            args.join(" "),
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// The kill points a complete, successful run of `args` passes, in order.
    fn hits(&self, args: &[String]) -> Vec<String> {
        let _ = fs::remove_file(self.count_file());
        let mut command = self.command(args);
        command.env(COUNT_ENV, self.count_file());
        let out = self.output(&mut command);
        assert_eq!(
            out.status.code(),
            Some(0),
            "ipvlan {} (counting): {}",
            args.join(" "),
            text(&out.stderr)
        );
        self.counted()
    }

    fn counted(&self) -> Vec<String> {
        fs::read_to_string(self.count_file())
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Runs `args` killed at hit `n`; the points it passed, the last one
    /// the one it died at.
    fn kill_at(&self, args: &[String], n: usize) -> Vec<String> {
        let _ = fs::remove_file(self.count_file());
        let mut command = self.command(args);
        command
            .env(COUNT_ENV, self.count_file())
            .env(KILL_AT_ENV, n.to_string());
        let out = self.output(&mut command);
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGKILL),
            "ipvlan {} with {KILL_AT_ENV}={n} was not killed ({:?}): {}",
            args.join(" "),
            out.status,
            text(&out.stderr)
        );
        self.counted()
    }

    fn restore(&self) {
        self.ok(&args("restore"));
    }

    /// `ps`: container name -> its networks.
    fn ps(&self) -> BTreeMap<String, BTreeSet<String>> {
        let table = self.ok(&args("ps"));
        let mut lines = table.lines();
        assert_eq!(
            lines
                .next()
                .map(|l| l.split_whitespace().collect::<Vec<_>>()),
            Some(vec!["NAME", "NETWORKS", "ADDRESSES"]),
            "{table}"
        );
        lines
            .map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                assert_eq!(fields.len(), 3, "ps row {line:?}");
                let networks = match fields[1] {
                    "-" => BTreeSet::new(),
                    list => list.split(',').map(str::to_string).collect(),
                };
                (fields[0].to_string(), networks)
            })
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Makes what another tool would have made; idempotent.
fn foreign_things() {
    if !Path::new(NETNS_DIR).join(FOREIGN_NS).exists() {
        ip(&["netns", "add", FOREIGN_NS]);
    }
    let etc = Path::new(ETC_NETNS_DIR).join(FOREIGN_NS);
    fs::create_dir_all(&etc).unwrap();
    fs::write(etc.join("hosts"), FOREIGN_HOSTS).unwrap();
    if !links(None).iter().any(|(name, _)| name == TRUNK) {
        ip(&["link", "add", TRUNK, "type", "dummy"]);
        ip(&["link", "set", TRUNK, "up"]);
    }
}

/// Every way kernel and state may disagree after `restore`; empty when
/// they agree. Also returns `ps` for the caller's own expectations.
///
/// - records: every network `created`, every endpoint `attached`, every
///   container record listed by `ps`; no temporary file; no directory of
///   a network that does not exist;
/// - addresses: the address files of each network are exactly its
///   endpoints' addresses, each held by its endpoint;
/// - every listed container has `must_have` among its networks, its own
///   namespace, its `/etc/netns` entry when it has a network, and in its
///   namespace exactly its endpoints' ipvlan links with exactly their
///   addresses (and nothing but `lo` beside them);
/// - `/run/netns` and `/etc/netns` hold the listed containers and the
///   foreign entry, nothing else; the foreign namespace has only `lo`, its
///   `/etc/netns` file is unchanged;
/// - the host has `lo`, the trunk and the parents we made, nothing else;
/// - no address is on two links.
fn disagreements(lab: &Lab, must_have: &str) -> (Vec<String>, BTreeMap<String, BTreeSet<String>>) {
    let mut problems = Vec::new();
    let ps = lab.ps();
    let state = StateDir::open(lab.state_dir()).unwrap();
    let networks = state.networks().unwrap();

    // Records.
    let mut temporaries = Vec::new();
    find_temporaries(&lab.state_dir(), &mut temporaries);
    if !temporaries.is_empty() {
        problems.push(format!("temporary files left: {temporaries:?}"));
    }
    let ids: BTreeSet<String> = networks.iter().map(|n| n.id.clone()).collect();
    for sub in ["endpoints", "ipam", "hosts"] {
        for name in dir_names(&lab.state_dir().join(sub)) {
            if !ids.contains(&name)
                && !(sub == "hosts" && (name == "containers" || name == "unions"))
            {
                problems.push(format!("{sub}/{name} belongs to no network"));
            }
        }
    }
    let container_records: BTreeSet<String> =
        dir_names(&lab.state_dir().join("records").join("containers"))
            .into_iter()
            .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
            .collect();
    let listed: BTreeSet<String> = ps.keys().cloned().collect();
    if container_records != listed {
        problems.push(format!(
            "container records {container_records:?}, but ps lists {listed:?}"
        ));
    }

    // Endpoints and addresses, per network.
    let mut by_container: BTreeMap<String, Vec<(String, BTreeSet<String>)>> = BTreeMap::new();
    for network in &networks {
        if network.state != NetworkState::Created {
            problems.push(format!(
                "network {} left in state {}",
                network.name, network.state
            ));
        }
        let endpoints = state.endpoints_of(&network.id).unwrap();
        let mut expected: BTreeMap<String, String> = BTreeMap::new();
        for endpoint in &endpoints {
            if endpoint.state != EndpointState::Attached {
                problems.push(format!(
                    "endpoint {} of {} left in state {}",
                    endpoint.id, network.name, endpoint.state
                ));
            }
            let addrs: BTreeSet<String> = endpoint
                .ipv4
                .iter()
                .chain(endpoint.ipv6.iter())
                .map(ToString::to_string)
                .collect();
            for addr in &addrs {
                let bare = addr.split('/').next().unwrap().to_string();
                expected.insert(bare, endpoint.id.clone());
            }
            match &endpoint.container {
                Some(name) => by_container
                    .entry(name.clone())
                    .or_default()
                    .push((endpoint.ifname.clone(), addrs)),
                None => problems.push(format!("endpoint {} is no container's", endpoint.id)),
            }
        }
        let files: BTreeMap<String, String> = state
            .addresses(network)
            .unwrap()
            .into_iter()
            .map(|(addr, owner)| (addr.to_string(), owner))
            .collect();
        if files != expected {
            problems.push(format!(
                "address files of {} are {files:?}, its endpoints hold {expected:?}",
                network.name
            ));
        }
        let network_names: Vec<&str> = endpoints
            .iter()
            .filter_map(|e| e.container.as_deref())
            .collect();
        for name in network_names {
            if !ps.get(name).is_some_and(|n| n.contains(&network.name)) {
                problems.push(format!(
                    "{name} has an endpoint on {} but ps does not show it there",
                    network.name
                ));
            }
        }
    }

    // Containers: networks, namespace, /etc/netns, links and addresses.
    let namespaces = dir_names(Path::new(NETNS_DIR));
    let etc_entries = dir_names(Path::new(ETC_NETNS_DIR));
    let mut expected_namespaces: BTreeSet<String> = listed.clone();
    expected_namespaces.insert(FOREIGN_NS.to_string());
    if namespaces != expected_namespaces {
        problems.push(format!(
            "{NETNS_DIR} holds {namespaces:?}, expected {expected_namespaces:?}"
        ));
    }
    let mut expected_etc: BTreeSet<String> = ps
        .iter()
        .filter(|(_, networks)| !networks.is_empty())
        .map(|(name, _)| name.clone())
        .collect();
    expected_etc.insert(FOREIGN_NS.to_string());
    if etc_entries != expected_etc {
        problems.push(format!(
            "{ETC_NETNS_DIR} holds {etc_entries:?}, expected {expected_etc:?}"
        ));
    }
    let foreign_hosts = Path::new(ETC_NETNS_DIR).join(FOREIGN_NS).join("hosts");
    if fs::read_to_string(&foreign_hosts).ok().as_deref() != Some(FOREIGN_HOSTS) {
        problems.push(format!("{} was changed", foreign_hosts.display()));
    }
    let mut on_links: Vec<String> = Vec::new();
    for (name, networks) in &ps {
        if !networks.contains(must_have) {
            problems.push(format!(
                "ps lists {name} without {must_have}, the network it was run with (networks: {networks:?})"
            ));
        }
        if !namespaces.contains(name) {
            continue;
        }
        let recorded: BTreeMap<String, BTreeSet<String>> = by_container
            .get(name)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let found: BTreeSet<String> = links(Some(name))
            .into_iter()
            .filter(|(link, kind)| !(link == "lo" && kind.is_empty()))
            .map(|(link, kind)| {
                if kind != "ipvlan" {
                    problems.push(format!("{name}: {link} is a {kind:?} link, not ours"));
                }
                link
            })
            .collect();
        let wanted: BTreeSet<String> = recorded.keys().cloned().collect();
        if found != wanted {
            problems.push(format!(
                "{name}: links {found:?}, its endpoints name {wanted:?}"
            ));
        }
        let addrs = addresses(Some(name));
        for (link, want) in &recorded {
            let have = addrs.get(link).cloned().unwrap_or_default();
            if &have != want {
                problems.push(format!("{name}: {link} has {have:?}, recorded {want:?}"));
            }
        }
        on_links.extend(addrs.into_values().flatten());
        if !networks.is_empty() {
            let hosts = Path::new(ETC_NETNS_DIR).join(name).join("hosts");
            if fs::metadata(&hosts).is_err() {
                problems.push(format!("{} does not lead to a hosts file", hosts.display()));
            }
        }
    }
    let foreign_links = links(Some(FOREIGN_NS));
    if foreign_links != [("lo".to_string(), String::new())] {
        problems.push(format!("the foreign namespace has {foreign_links:?}"));
    }

    // The host: lo, the trunk, the parents of our networks.
    let mut allowed: BTreeSet<String> = ["lo", TRUNK].iter().map(|s| s.to_string()).collect();
    allowed.extend(networks.iter().map(|n| n.parent.clone()));
    let host_links = links(None);
    for (link, kind) in &host_links {
        if !allowed.contains(link) {
            problems.push(format!("host link {link} ({kind}) that nothing owns"));
        }
    }
    for network in &networks {
        if !host_links.iter().any(|(link, _)| link == &network.parent) {
            problems.push(format!(
                "parent {} of {} is missing",
                network.parent, network.name
            ));
        }
    }
    on_links.extend(addresses(None).into_values().flatten());
    let mut seen = BTreeSet::new();
    for addr in &on_links {
        if !seen.insert(addr) {
            problems.push(format!("address {addr} is on two links"));
        }
    }
    (problems, ps)
}

fn find_temporaries(dir: &Path, out: &mut Vec<String>) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            find_temporaries(&path, out);
        } else if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            out.push(path.display().to_string());
        }
    }
}

/// Kernel and state agree; panics naming what was interrupted and where.
fn agree(lab: &Lab, must_have: &str, after: &str) -> BTreeMap<String, BTreeSet<String>> {
    let (problems, ps) = disagreements(lab, must_have);
    assert!(
        problems.is_empty(),
        "after {after}, kernel and state disagree:\n  {}",
        problems.join("\n  ")
    );
    ps
}

/// Item: an interrupted `run -d --net=N --name=X` never leaves a container
/// `ps` lists without its network. Killed at each of its kill points in
/// turn, then restored: either the container is listed with its network,
/// link and address, or there is nothing of it at all (namespace,
/// `/etc/netns` entry, links, addresses, records).
#[test]
fn an_interrupted_run_leaves_a_whole_container_or_nothing() {
    foreign_things();
    let lab = Lab::new("run");
    lab.ok(&args("network create --subnet 10.40.0.0/16 rn"));
    let run = args("run -d --net=rn --name=r1");
    // Once through, so directories made on first use exist for every run.
    lab.ok(&run);
    lab.ok(&args("rm -f r1"));
    let hits = lab.hits(&run);
    agree(&lab, "rn", "a complete run");
    lab.ok(&args("rm -f r1"));
    println!("run -d: {} kill points", hits.len());
    let started = Instant::now();
    let (mut kept, mut undone) = (0, 0);
    for n in 1..=hits.len() {
        let passed = lab.kill_at(&run, n);
        let after = format!("run killed at hit {n} ({})", passed.last().unwrap());
        lab.restore();
        let ps = agree(&lab, "rn", &after);
        if ps.contains_key("r1") {
            kept += 1;
            lab.ok(&args("rm -f r1"));
        } else {
            undone += 1;
            // Nothing of it is left in the way of the same run.
            lab.ok(&run);
            lab.ok(&args("rm -f r1"));
        }
    }
    println!(
        "run -d: {} kills, {kept} kept, {undone} rolled back, in {:.1} s",
        hits.len(),
        started.elapsed().as_secs_f64()
    );
    lab.ok(&args("network rm rn"));
}
