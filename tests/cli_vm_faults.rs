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
//!
//! The kernel is read back with our own dump code after every kill (it runs
//! in this process, where iproute2 would cost a process per namespace), and
//! with iproute2's `ip -d -j` after each command's counting run and after
//! its last kill, where both readings must also match each other.

mod vm_support;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use ipvlan::driver::{Config, Manager};
use ipvlan::fault::{COUNT_ENV, FORCE_ENV, KILL_AT_ENV};
use ipvlan::json::{self, Value};
use ipvlan::rtnl::Handle;
use ipvlan::store::{EndpointRecord, EndpointState, NetworkState, StateDir};
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

/// Straight to the terminal: libtest keeps what `println!` writes of a
/// test that passes, and the table is worth seeing either way.
fn show(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
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

fn str_of<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// One namespace as seen from outside: its links (name, kind; `""` for
/// none) and the global addresses of each link.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Space {
    links: BTreeSet<(String, String)>,
    addresses: BTreeMap<String, BTreeSet<String>>,
}

/// `ns` (`None`: this test's own, where `ipvlan` makes parents) read with
/// iproute2.
fn space_by_ip(ns: Option<&str>) -> Space {
    let query = |rest: &[&str]| -> Vec<Value> {
        let mut full = vec!["-j"];
        if let Some(ns) = ns {
            full.extend(["-n", ns]);
        }
        full.extend_from_slice(rest);
        let out = ip(&full);
        match json::parse(if out.trim().is_empty() { "[]" } else { &out }) {
            Ok(Value::Array(items)) => items,
            other => panic!("ip {}: {other:?}", full.join(" ")),
        }
    };
    let links = query(&["-d", "link", "show"])
        .iter()
        .map(|link| {
            let kind = link
                .get("linkinfo")
                .map(|info| str_of(info, "info_kind").to_string())
                .unwrap_or_default();
            (str_of(link, "ifname").to_string(), kind)
        })
        .collect();
    let mut addresses = BTreeMap::new();
    for link in query(&["addr", "show"]) {
        let global: BTreeSet<String> = link
            .get("addr_info")
            .and_then(Value::as_array)
            .unwrap_or(&[])
            .iter()
            .filter(|a| str_of(a, "scope") == "global")
            .map(|a| {
                let prefix = a.get("prefixlen").and_then(Value::as_u64).unwrap_or(0);
                format!("{}/{prefix}", str_of(a, "local"))
            })
            .collect();
        if !global.is_empty() {
            addresses.insert(str_of(&link, "ifname").to_string(), global);
        }
    }
    Space { links, addresses }
}

/// `ns` read with our own dump code.
fn space_by_dump(ns: Option<&str>) -> Space {
    let handle = match ns {
        None => Handle::new(),
        Some(ns) => Handle::in_named_netns(NETNS_DIR, ns),
    }
    .unwrap_or_else(|e| panic!("netlink in {ns:?}: {e}"));
    let links = handle.links().unwrap();
    let names: BTreeMap<u32, String> = links.iter().map(|l| (l.index, l.name.clone())).collect();
    let mut addresses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for address in handle.addrs().unwrap() {
        if address.scope == 0 {
            let link = names.get(&address.index).cloned().unwrap_or_default();
            addresses
                .entry(link)
                .or_default()
                .insert(address.net.to_string());
        }
    }
    Space {
        links: links
            .into_iter()
            .map(|l| (l.name, l.kind.unwrap_or_default()))
            .collect(),
        addresses,
    }
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

/// `ps`: container name -> its networks.
type Ps = BTreeMap<String, BTreeSet<String>>;

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

    fn config(&self) -> Config {
        Config {
            state_dir: self.root.join("state"),
            netns_dir: PathBuf::from(NETNS_DIR),
            etc_netns_dir: PathBuf::from(ETC_NETNS_DIR),
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.config().state_dir
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
        // A walk over no hits would pass having killed nothing: every
        // command walked here writes the store, past its kill points.
        let hits = self.counted();
        assert!(
            hits.iter().any(|hit| hit.starts_with("store: ")),
            "ipvlan {} passed no kill point of the store: is the guest's ipvlan built with fault injection? {hits:?}",
            args.join(" ")
        );
        hits
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
        self.kill_at_forced(args, n, None)
    }

    /// Runs `args`, killed at its `k`-th hit of `point` (1-based): the same
    /// moment of the command whatever its lock runs first (the intent a
    /// killed attach left in the commit log, turned into a record).
    fn kill_at_point(&self, args: &[String], point: &str, k: usize) -> Vec<String> {
        self.killed_at(args, &format!("{point}#{k}"), None)
    }

    /// [`Lab::kill_at`], forced down `force` when given.
    fn kill_at_forced(&self, args: &[String], n: usize, force: Option<&str>) -> Vec<String> {
        self.killed_at(args, &n.to_string(), force)
    }

    /// Runs `args` with `IPVLAN_FAULT_KILL_AT=at` (forced down `force`),
    /// insisting it was killed; returns the points it passed.
    fn killed_at(&self, args: &[String], at: &str, force: Option<&str>) -> Vec<String> {
        let _ = fs::remove_file(self.count_file());
        let mut command = self.command(args);
        command
            .env(COUNT_ENV, self.count_file())
            .env(KILL_AT_ENV, at);
        if let Some(force) = force {
            command.env(FORCE_ENV, force);
        }
        let out = self.output(&mut command);
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGKILL),
            "ipvlan {} with {KILL_AT_ENV}={at} was not killed ({:?}): {}; it passed {:?}",
            args.join(" "),
            out.status,
            text(&out.stderr),
            self.counted()
        );
        self.counted()
    }

    /// `ipvlan restore`, which must work; what it printed (its report and
    /// its warnings).
    fn restore(&self) -> String {
        let restore = args("restore");
        let out = self.output(&mut self.command(&restore));
        let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "ipvlan restore: {said}");
        said
    }

    /// What `ipvlan ps` prints, read back.
    fn ps(&self) -> Ps {
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

    /// What `ps` lists, from the library call `ps` prints (no process).
    fn listing(&self) -> Ps {
        Manager::open(self.config())
            .unwrap()
            .containers()
            .unwrap()
            .complete()
            .unwrap()
            .into_iter()
            .map(|c| {
                let networks = c.endpoints.into_iter().map(|e| e.network).collect();
                (c.name, networks)
            })
            .collect()
    }

    fn network_names(&self) -> BTreeSet<String> {
        StateDir::open(self.state_dir())
            .unwrap()
            .networks()
            .unwrap()
            .complete()
            .unwrap()
            .into_iter()
            .map(|n| n.name)
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
    if !space_by_dump(None)
        .links
        .iter()
        .any(|(name, _)| name == TRUNK)
    {
        ip(&["link", "add", TRUNK, "type", "dummy"]);
        ip(&["link", "set", TRUNK, "up"]);
    }
}

/// How deeply [`disagreements`] looks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Depth {
    /// `ps` from the library, the kernel from our dump code.
    Quick,
    /// `ipvlan ps` itself, the kernel from iproute2 and from our dump
    /// code, which must read the same.
    Deep,
}

/// Every way kernel and state disagree; empty when they agree. Also
/// returns what `ps` lists.
///
/// - records: every network `created`, every endpoint `attached`, every
///   container record listed by `ps`; no temporary file; no directory of
///   a network that does not exist;
/// - addresses: the address files of each network are exactly its
///   endpoints' addresses, each held by its endpoint;
/// - every listed container has `run_with` and every network its record
///   says it was run with, its own namespace, its `/etc/netns` entry
///   when it has a network, and in its namespace exactly its endpoints'
///   ipvlan links with exactly their addresses, nothing but `lo` beside;
/// - `/run/netns` and `/etc/netns` hold the listed containers and the
///   foreign entry, nothing else; the foreign namespace has only `lo`, its
///   `/etc/netns` file is unchanged;
/// - the host has `lo`, the trunk and the parents of our networks, and
///   nothing else (no VLAN or dummy that nothing owns);
/// - no address is held twice: not by two endpoint records, not on two
///   links.
fn disagreements(lab: &Lab, run_with: &str, depth: Depth) -> (Vec<String>, Ps, BTreeSet<String>) {
    let mut problems = Vec::new();
    let listed = match depth {
        Depth::Quick => lab.listing(),
        Depth::Deep => lab.ps(),
    };
    let read = |ns: Option<&str>, problems: &mut Vec<String>| match depth {
        Depth::Quick => space_by_dump(ns),
        Depth::Deep => {
            let (ours, theirs) = (space_by_dump(ns), space_by_ip(ns));
            if ours != theirs {
                problems.push(format!(
                    "{ns:?}: our dump reads {ours:?}, iproute2 reads {theirs:?}"
                ));
            }
            theirs
        }
    };
    let state = StateDir::open(lab.state_dir()).unwrap();
    let networks = state.networks().unwrap().complete().unwrap();

    // The hosts files' short names (`hosts/k/<key>`): each a link to the
    // file of a network there is.
    for name in dir_names(&lab.state_dir().join("hosts/k")) {
        let target = fs::read_link(lab.state_dir().join("hosts/k").join(&name)).ok();
        let names_one = target
            .as_ref()
            .and_then(|t| t.to_str()?.strip_prefix("../"))
            .is_some_and(|id| id.starts_with(&name) && networks.iter().any(|n| n.id == id));
        if !names_one {
            problems.push(format!("hosts/k/{name} -> {target:?} names no network"));
        }
    }

    // Records.
    let mut temporaries = Vec::new();
    find_temporaries(&lab.state_dir(), &mut temporaries);
    if !temporaries.is_empty() {
        problems.push(format!("temporary files left: {temporaries:?}"));
    }
    let ids: BTreeSet<&str> = networks.iter().map(|n| n.id.as_str()).collect();
    for sub in ["endpoints", "ipam", "hosts"] {
        for name in dir_names(&lab.state_dir().join(sub)) {
            let ours = ids.contains(name.as_str())
                || (sub == "hosts"
                    && ["containers", "unions", "etc-netns", "k"].contains(&name.as_str()));
            if !ours {
                problems.push(format!("{sub}/{name} belongs to no network"));
            }
        }
    }
    let container_records: BTreeSet<String> =
        dir_names(&lab.state_dir().join("records").join("containers"))
            .into_iter()
            .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
            .collect();
    let names: BTreeSet<String> = listed.keys().cloned().collect();
    if container_records != names {
        problems.push(format!(
            "container records {container_records:?}, but ps lists {names:?}"
        ));
    }
    // Each container's endpoint index (records/container-endpoints) is
    // that of a listed container on a network.
    let indexed: BTreeSet<String> =
        dir_names(&lab.state_dir().join("records").join("container-endpoints"))
            .into_iter()
            .filter_map(|n| n.strip_suffix(".json").map(str::to_string))
            .collect();
    let on_a_network: BTreeSet<String> = listed
        .iter()
        .filter(|(_, networks)| !networks.is_empty())
        .map(|(name, _)| name.clone())
        .collect();
    if indexed != on_a_network {
        problems.push(format!(
            "endpoint indexes of {indexed:?}, but ps lists {on_a_network:?} on a network"
        ));
    }

    // Endpoints and addresses, per network.
    let mut by_container: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    let mut holders: BTreeMap<String, String> = BTreeMap::new();
    for network in &networks {
        if network.state != NetworkState::Created {
            problems.push(format!(
                "network {} left in state {}",
                network.name, network.state
            ));
        }
        let mut expected: BTreeMap<String, String> = BTreeMap::new();
        for endpoint in state.endpoints_of(&network.id).unwrap().complete().unwrap() {
            if endpoint.state != EndpointState::Attached {
                problems.push(format!(
                    "endpoint {} of {} left in state {}",
                    endpoint.id, network.name, endpoint.state
                ));
            }
            let addresses: BTreeSet<String> = endpoint
                .ipv4
                .iter()
                .chain(endpoint.ipv6.iter())
                .map(ToString::to_string)
                .collect();
            for address in &addresses {
                let bare = address.split('/').next().unwrap().to_string();
                if let Some(other) = holders.insert(bare.clone(), endpoint.id.clone()) {
                    problems.push(format!("{bare} held by {other} and {}", endpoint.id));
                }
                expected.insert(bare, endpoint.id.clone());
            }
            let Some(name) = &endpoint.container else {
                problems.push(format!("endpoint {} is no container's", endpoint.id));
                continue;
            };
            if !listed.get(name).is_some_and(|n| n.contains(&network.name)) {
                problems.push(format!(
                    "{name} has an endpoint on {} but ps does not show it there",
                    network.name
                ));
            }
            by_container
                .entry(name.clone())
                .or_default()
                .insert(endpoint.ifname.clone(), addresses);
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
    }

    // Containers: networks, namespace, /etc/netns, links and addresses.
    let namespaces = dir_names(Path::new(NETNS_DIR));
    let mut expected_namespaces = names.clone();
    expected_namespaces.insert(FOREIGN_NS.to_string());
    if namespaces != expected_namespaces {
        problems.push(format!(
            "{NETNS_DIR} holds {namespaces:?}, expected {expected_namespaces:?}"
        ));
    }
    let mut expected_etc: BTreeSet<String> = listed
        .iter()
        .filter(|(_, networks)| !networks.is_empty())
        .map(|(name, _)| name.clone())
        .collect();
    expected_etc.insert(FOREIGN_NS.to_string());
    let etc_entries = dir_names(Path::new(ETC_NETNS_DIR));
    if etc_entries != expected_etc {
        problems.push(format!(
            "{ETC_NETNS_DIR} holds {etc_entries:?}, expected {expected_etc:?}"
        ));
    }
    // Each /etc/netns directory we made is marked in the state directory
    // (so that we alone remove it): exactly those of listed containers.
    let mut marked = dir_names(&lab.state_dir().join("hosts").join("etc-netns"));
    marked.insert(FOREIGN_NS.to_string());
    if marked != expected_etc {
        problems.push(format!(
            "{ETC_NETNS_DIR} directories marked ours: {marked:?}, expected {expected_etc:?}"
        ));
    }
    let foreign_hosts = Path::new(ETC_NETNS_DIR).join(FOREIGN_NS).join("hosts");
    if fs::read_to_string(&foreign_hosts).ok().as_deref() != Some(FOREIGN_HOSTS) {
        problems.push(format!("{} was changed", foreign_hosts.display()));
    }
    let mut on_links: Vec<String> = Vec::new();
    for (name, networks) in &listed {
        let mut run_with_all = vec![run_with.to_string()];
        if let Ok(Some(record)) = state.container(name) {
            run_with_all.extend(record.networks.iter().map(|id| {
                let network = networks_by_id(&state, id);
                network.unwrap_or_else(|| format!("(gone: {id})"))
            }));
        }
        for wanted in &run_with_all {
            if !networks.contains(wanted) {
                problems.push(format!(
                    "ps lists {name} without {wanted}, a network it was run with (networks: {networks:?})"
                ));
            }
        }
        if !namespaces.contains(name) {
            continue;
        }
        let space = read(Some(name), &mut problems);
        let recorded = by_container.remove(name).unwrap_or_default();
        let links: BTreeSet<String> = space
            .links
            .iter()
            .filter(|(link, kind)| !(link == "lo" && kind.is_empty()))
            .map(|(link, kind)| {
                if kind != "ipvlan" {
                    problems.push(format!("{name}: {link} is a {kind:?} link, not ours"));
                }
                link.clone()
            })
            .collect();
        let wanted: BTreeSet<String> = recorded.keys().cloned().collect();
        if links != wanted {
            problems.push(format!(
                "{name}: links {links:?}, its endpoints name {wanted:?}"
            ));
        }
        for (link, want) in &recorded {
            let have = space.addresses.get(link).cloned().unwrap_or_default();
            if &have != want {
                problems.push(format!("{name}: {link} has {have:?}, recorded {want:?}"));
            }
        }
        on_links.extend(space.addresses.into_values().flatten());
        if !networks.is_empty() {
            let hosts = Path::new(ETC_NETNS_DIR).join(name).join("hosts");
            // Its network's file (through the file's short name), or its
            // union file on several.
            let expected = match networks.iter().collect::<Vec<_>>().as_slice() {
                [only] => state
                    .network_by_name(only)
                    .map(|network| state.hosts_path(&network.id)),
                _ => Some(state.union_hosts_path(name)),
            };
            let (found, wanted) = (
                fs::canonicalize(&hosts).ok(),
                expected.and_then(|path| fs::canonicalize(path).ok()),
            );
            if found.is_none() || found != wanted {
                problems.push(format!(
                    "{} leads to {found:?}, not {wanted:?}",
                    hosts.display()
                ));
            }
        }
    }
    for (name, endpoints) in by_container {
        problems.push(format!(
            "endpoints {:?} of {name}, which ps does not list",
            endpoints.keys()
        ));
    }
    let foreign = read(Some(FOREIGN_NS), &mut problems);
    let only_lo: BTreeSet<(String, String)> = [("lo".to_string(), String::new())].into();
    if foreign.links != only_lo || !foreign.addresses.is_empty() {
        problems.push(format!("the foreign namespace has {foreign:?}"));
    }

    // The host: lo, the trunk, the parents of our networks.
    let host = read(None, &mut problems);
    let mut allowed: BTreeSet<&str> = ["lo", TRUNK].into();
    allowed.extend(networks.iter().map(|n| n.parent.as_str()));
    for (link, kind) in &host.links {
        if !allowed.contains(link.as_str()) {
            problems.push(format!("host link {link} ({kind}) that nothing owns"));
        }
    }
    for network in &networks {
        if !host.links.iter().any(|(link, _)| link == &network.parent) {
            problems.push(format!(
                "parent {} of {} is missing",
                network.parent, network.name
            ));
        }
    }
    on_links.extend(host.addresses.into_values().flatten());
    let mut seen = BTreeSet::new();
    for address in &on_links {
        if !seen.insert(address) {
            problems.push(format!("address {address} is on two links"));
        }
    }
    let names = networks.iter().map(|n| n.name.clone()).collect();
    (problems, listed, names)
}

fn networks_by_id(state: &StateDir, id: &str) -> Option<String> {
    state.network(id).ok().flatten().map(|n| n.name)
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
/// Returns what `ps` lists and the networks.
fn agree(lab: &Lab, run_with: &str, depth: Depth, after: &str) -> (Ps, BTreeSet<String>) {
    let (problems, listed, networks) = disagreements(lab, run_with, depth);
    assert!(
        problems.is_empty(),
        "after {after}, kernel and state disagree:\n  {}",
        problems.join("\n  ")
    );
    (listed, networks)
}

/// The hit (1-based) of the `nth` (0-based; negative from the end) pass
/// through `point`.
fn hit_of(hits: &[String], point: &str, nth: isize) -> usize {
    let at: Vec<usize> = hits
        .iter()
        .enumerate()
        .filter(|(_, name)| *name == point)
        .map(|(i, _)| i + 1)
        .collect();
    let index = if nth < 0 {
        at.len() as isize + nth
    } else {
        nth
    };
    *at.get(index as usize)
        .unwrap_or_else(|| panic!("no pass {nth} through {point:?} in {hits:?}"))
}

/// Item: an interrupted `run -d --net=N --name=X` never leaves a container
/// that `ps` lists without its network. Killed in the middle (its
/// namespace named, nothing attached; its link made; right before its
/// commit) and restored, nothing of it is left (namespace, `/etc/netns`
/// entry, links, addresses, records) and the same run works; killed right
/// after its commit, it is kept whole.
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
    agree(&lab, "rn", Depth::Deep, "a complete run");
    lab.ok(&args("rm -f r1"));
    let moments = [
        (
            "its namespace named",
            hit_of(&hits, "netns: after mount", 0),
        ),
        ("its link made", hit_of(&hits, "netlink: after acks", -1)),
        // The last write before the commit's log entry: the allocation
        // cursor, a hint, is written after it, when the lock is let go.
        (
            "before its commit",
            hit_of(
                &hits[..hit_of(&hits, "store: after log entry", 0)],
                "store: after write",
                -1,
            ),
        ),
    ];
    for (moment, n) in moments {
        let passed = lab.kill_at(&run, n);
        let after = format!("run killed {moment} (hit {n}, {})", passed[n - 1]);
        lab.restore();
        let (listed, _) = agree(&lab, "rn", Depth::Deep, &after);
        assert!(!listed.contains_key("r1"), "{after}: ps lists {listed:?}");
        assert!(!Path::new(NETNS_DIR).join("r1").exists(), "{after}");
        assert!(!Path::new(ETC_NETNS_DIR).join("r1").exists(), "{after}");
        let state = StateDir::open(lab.state_dir()).unwrap();
        assert_eq!(state.container("r1").unwrap(), None, "{after}");
        let network = &state.networks().unwrap().complete().unwrap()[0];
        let endpoints = state.endpoints_of(&network.id).unwrap().complete().unwrap();
        assert_eq!(endpoints, [], "{after}");
        assert_eq!(state.addresses(network).unwrap(), [], "{after}");
        // Nothing of it is in the way of the same run.
        lab.ok(&run);
        lab.ok(&args("rm -f r1"));
    }
    let n = hit_of(&hits, "store: after rename", -1);
    lab.kill_at(&run, n);
    lab.restore();
    let (listed, _) = agree(&lab, "rn", Depth::Deep, "run killed right after its commit");
    assert_eq!(listed["r1"], BTreeSet::from(["rn".to_string()]));
    lab.ok(&args("rm -f r1"));
    lab.ok(&args("network rm rn"));
}

/// One command of the walk.
struct Walked {
    /// Its column in the table.
    label: &'static str,
    command: Vec<String>,
    /// Whether what is listed (containers, networks) shows it done.
    done: fn(&Ps, &BTreeSet<String>) -> bool,
    /// The points of a complete run, in order.
    hits: Vec<String>,
    /// Hits counted per kill point, and how many of them were walked.
    points: BTreeMap<String, (usize, usize)>,
    /// Kills after which restore kept what the command had done, and
    /// kills after which it undid it (then the command ran again).
    kept: usize,
    undone: usize,
    secs: f64,
}

impl Walked {
    fn new(label: &'static str, command: &str, done: fn(&Ps, &BTreeSet<String>) -> bool) -> Self {
        Walked {
            label,
            command: args(command),
            done,
            hits: Vec::new(),
            points: BTreeMap::new(),
            kept: 0,
            undone: 0,
            secs: 0.0,
        }
    }

    /// Counts the kill points of a complete run (which must work).
    fn count(&mut self, lab: &Lab) {
        self.hits = lab.hits(&self.command);
        for point in &self.hits {
            self.points.entry(point.clone()).or_default().0 += 1;
        }
        agree(
            lab,
            "wn",
            Depth::Deep,
            &format!("{} (complete)", self.label),
        );
    }

    /// Kills the command at hit `n`, restores, checks that kernel and
    /// state agree and the command is done or not begun; when not, it
    /// must work now. Leaves the command done.
    fn kill_and_recover(&mut self, lab: &Lab, n: usize) {
        let started = Instant::now();
        let passed = lab.kill_at(&self.command, n);
        assert_eq!(
            passed,
            self.hits[..n],
            "{}: the run killed at hit {n} passed other points than the counted run",
            self.label
        );
        let after = format!("{} killed at hit {n} ({})", self.label, self.hits[n - 1]);
        let said = lab.restore();
        let (listed, networks) = agree(
            lab,
            "wn",
            Depth::Quick,
            &format!("{after} (restore said: {})", said.trim_end()),
        );
        let done = (self.done)(&listed, &networks);
        // From its commit's log entry on, what the command did is durable
        // and stands: restore finishes it, never undoes it.
        let committed = hit_of(&self.hits, "store: after log entry", -1);
        assert!(
            done || n < committed,
            "{after}: undone by restore, though killed after its commit (hit {committed})"
        );
        if done {
            self.kept += 1;
        } else {
            self.undone += 1;
            // Nothing of the interrupted one is in the way of the next.
            lab.ok(&self.command);
            let (listed, networks) = (lab.listing(), lab.network_names());
            assert!(
                (self.done)(&listed, &networks),
                "{}: not done after {after} and a second run: {listed:?} {networks:?}",
                self.label
            );
        }
        self.points.get_mut(&self.hits[n - 1]).unwrap().1 += 1;
        self.secs += started.elapsed().as_secs_f64();
    }
}

/// Walks a command and the one that undoes it together: at step `n` the
/// first is killed at its hit `n`, recovered and done, then the second
/// killed at its hit `n`, recovered and done, which brings the baseline
/// back (a command with fewer hits simply runs). Each thus starts from
/// what the other leaves, and no step needs a setup of its own.
fn walk_pair(lab: &Lab, forward: &mut Walked, backward: &mut Walked) {
    let baseline = (lab.listing(), lab.network_names());
    // Once through, so directories made on first use exist for every run.
    lab.ok(&forward.command);
    lab.ok(&backward.command);
    forward.count(lab);
    backward.count(lab);
    assert_eq!((lab.listing(), lab.network_names()), baseline);
    // Each step leaves both commands done, the baseline back.
    for n in 1..=forward.hits.len().max(backward.hits.len()) {
        for walked in [&mut *forward, &mut *backward] {
            if n <= walked.hits.len() {
                walked.kill_and_recover(lab, n);
            } else {
                lab.ok(&walked.command);
            }
        }
    }
    assert_eq!(
        (lab.listing(), lab.network_names()),
        baseline,
        "{} and {}: the baseline did not come back",
        forward.label,
        backward.label
    );
    agree(
        lab,
        "wn",
        Depth::Deep,
        &format!("{} (walked)", backward.label),
    );
}

/// Walks `restore` over the state `break_state` leaves, made again before
/// each kill; after the kill, the next restore must repair it all.
fn walk_restore(lab: &Lab, walked: &mut Walked, break_state: impl Fn()) {
    let baseline = (lab.listing(), lab.network_names());
    break_state();
    lab.restore();
    break_state();
    walked.count(lab);
    assert_eq!((lab.listing(), lab.network_names()), baseline);
    for n in 1..=walked.hits.len() {
        break_state();
        // Killed, then finished by the next restore: `done` is the
        // baseline.
        walked.kill_and_recover(lab, n);
    }
    assert_eq!((lab.listing(), lab.network_names()), baseline);
}

/// The table: one line per kill point, one column per command, each cell
/// `walked/counted`.
fn table(rows: &[Walked]) -> String {
    let points: BTreeSet<&String> = rows.iter().flat_map(|r| r.points.keys()).collect();
    let width = points.iter().map(|p| p.len()).max().unwrap_or(0).max(12);
    let mut out = format!("{:width$}", "kill point");
    for row in rows {
        out.push_str(&format!("  {:>16}", row.label));
    }
    out.push('\n');
    let cell = |(counted, walked): (usize, usize)| format!("{walked}/{counted}");
    for point in points {
        out.push_str(&format!("{point:width$}"));
        for row in rows {
            let text = row.points.get(point).map_or("-".into(), |c| cell(*c));
            out.push_str(&format!("  {text:>16}"));
        }
        out.push('\n');
    }
    let total = |row: &Walked| {
        row.points
            .values()
            .fold((0, 0), |(c, w), (pc, pw)| (c + pc, w + pw))
    };
    out.push_str(&format!("{:width$}", "all hits"));
    for row in rows {
        out.push_str(&format!("  {:>16}", cell(total(row))));
    }
    out.push('\n');
    out.push_str(&format!("{:width$}", "kept / undone"));
    for row in rows {
        out.push_str(&format!(
            "  {:>16}",
            format!("{} / {}", row.kept, row.undone)
        ));
    }
    out.push('\n');
    out.push_str(&format!("{:width$}", "seconds"));
    for row in rows {
        out.push_str(&format!("  {:>16.1}", row.secs));
    }
    out.push('\n');
    out
}

/// The walk: each command killed at every one of its kill points in turn,
/// each kill followed by `restore`, then kernel and state must agree (see
/// [`disagreements`]), the command must be either done or not begun, and
/// the same command must then work. Commands are walked in pairs with
/// what undoes them. `restore` itself is walked over a state that needs
/// repair (a `run`, a `network create` and a `network connect` killed
/// midway). One network with one container (`wn`, `c0`) and a second
/// network (`wm`, on a VLAN) stand throughout.
#[test]
fn every_kill_point_of_every_command_then_restore_agrees() {
    foreign_things();
    let lab = Lab::new("walk");
    lab.ok(&args("network create --subnet 10.50.0.0/16 wn"));
    lab.ok(&args(&format!(
        "network create --subnet 10.51.0.0/16 -o parent={TRUNK}.30 wm"
    )));
    lab.ok(&args("run -d --net=wn --name=c0"));
    agree(&lab, "wn", Depth::Deep, "the baseline");
    let started = Instant::now();

    let vlan = format!("network create --subnet 10.60.0.0/24 -o parent={TRUNK}.10 wv");
    let mut pairs = [
        (
            Walked::new("create (vlan)", &vlan, |_, n| n.contains("wv")),
            Walked::new("network rm (vlan)", "network rm wv", |_, n| {
                !n.contains("wv")
            }),
        ),
        (
            Walked::new(
                "create (dummy)",
                "network create --subnet 10.61.0.0/24 wd",
                |_, n| n.contains("wd"),
            ),
            Walked::new("network rm (dummy)", "network rm wd", |_, n| {
                !n.contains("wd")
            }),
        ),
        (
            Walked::new("run", "run -d --net=wn --name=c1", |ps, _| {
                ps.contains_key("c1")
            }),
            Walked::new("rm", "rm -f c1", |ps, _| !ps.contains_key("c1")),
        ),
        (
            Walked::new("connect", "network connect wm c0", |ps, _| {
                ps["c0"].contains("wm")
            }),
            Walked::new("disconnect", "network disconnect wm c0", |ps, _| {
                !ps["c0"].contains("wm")
            }),
        ),
    ];
    for (forward, backward) in &mut pairs {
        walk_pair(&lab, forward, backward);
        for walked in [&*forward, &*backward] {
            show(&format!(
                "walked {}: {} kills in {:.1} s",
                walked.label,
                walked.hits.len(),
                walked.secs
            ));
        }
    }

    // The broken state restore is walked over: a run killed once its link
    // is made, a network create once its parent is made, a connect once
    // its link is made. (Restore after an interrupted rm takes the run's
    // steps, and the rm column walks it at every kill.)
    let [_, _, (run, _), (connect, _)] = &pairs;
    let create_wz = args("network create --subnet 10.53.0.0/24 wz");
    let create_hits = lab.hits(&create_wz);
    lab.ok(&args("network rm wz"));
    // Each killed at its last pass through the point: counted by name, as
    // the lock of each takes up the intent the kill before left in the
    // commit log first.
    let last_of = |hits: &[String]| {
        hits.iter()
            .filter(|name| *name == "netlink: after acks")
            .count()
    };
    let breaks = [
        (&run.command, last_of(&run.hits)),
        (&create_wz, last_of(&create_hits)),
        (&connect.command, last_of(&connect.hits)),
    ];
    let break_state = || {
        for (command, k) in &breaks {
            let passed = lab.kill_at_point(command, "netlink: after acks", *k);
            assert_eq!(
                passed.last().map(String::as_str),
                Some("netlink: after acks")
            );
        }
    };
    let mut restore = Walked::new("restore", "restore", |ps, n| {
        !ps.contains_key("c1") && !ps["c0"].contains("wm") && !n.contains("wz")
    });
    walk_restore(&lab, &mut restore, break_state);
    show(&format!(
        "walked restore: {} kills in {:.1} s",
        restore.hits.len(),
        restore.secs
    ));

    let mut walked: Vec<Walked> = Vec::new();
    for (forward, backward) in pairs {
        walked.push(forward);
        walked.push(backward);
    }
    walked.push(restore);
    show(&format!(
        "every kill point of every command, walked in {:.1} s:\n{}",
        started.elapsed().as_secs_f64(),
        table(&walked)
    ));
    for row in &walked {
        for (point, (counted, done)) in &row.points {
            assert_eq!(
                counted, done,
                "{}: {point} not walked at every hit",
                row.label
            );
        }
    }
    for args in ["rm -f c0", "network rm wm", "network rm wn"] {
        lab.ok(&self::args(args));
    }
}

/// A connect to a container's second network killed at any of its kill
/// points, then `restore`: a container left attached to both sees both
/// networks' names (its `/etc/netns/NAME/hosts` is their union). Killed
/// between the endpoint record and the view, restore once left it the
/// view of its first network: the union is listed by markers that the
/// killed connect had not made yet. Walked for a single connect and a
/// batch.
#[test]
fn restore_gives_a_container_on_two_networks_both_names() {
    let lab = Lab::new("views");
    lab.ok(&args("network create --subnet 10.43.0.0/16 va"));
    lab.ok(&args("network create --subnet 10.44.0.0/16 vb"));
    let members = ["u1", "u2"];
    for name in members {
        lab.ok(&args(&format!("run -d --net=va --name={name}")));
    }
    for given in [&members[..1], &members[..]] {
        let connect = args(&format!("network connect vb {}", given.join(" ")));
        let disconnect = args(&format!("network disconnect vb {}", given.join(" ")));
        // Once through, so directories made on first use exist.
        lab.ok(&connect);
        lab.ok(&disconnect);
        let hits = lab.hits(&connect);
        let committed = hit_of(&hits, "store: after log entry", -1);
        lab.ok(&disconnect);
        for n in 1..=hits.len() {
            let passed = lab.kill_at(&connect, n);
            let after = format!(
                "{} killed at hit {n} ({}), then restore",
                connect.join(" "),
                passed[n - 1]
            );
            lab.restore();
            let listed = lab.ps();
            let on_both: Vec<&str> = given
                .iter()
                .copied()
                .filter(|name| listed[*name].contains("vb"))
                .collect();
            // Killed after its commit, the connect stands whole (so the
            // views below are checked at those kills at least).
            assert!(
                n < committed || on_both == given,
                "{after}: the connect was committed (hit {committed}), but {on_both:?} are on both"
            );
            for name in &on_both {
                let view = Path::new(ETC_NETNS_DIR).join(name).join("hosts");
                let seen = fs::read_to_string(&view).unwrap_or_default();
                for subnet in ["10.43.", "10.44."] {
                    assert!(
                        seen.lines()
                            .any(|l| l.starts_with(subnet) && l.ends_with(&format!("\t{name}"))),
                        "{after}: {name} is on va and vb but {} shows no {subnet}* line of it:\n{seen}",
                        view.display()
                    );
                }
            }
            if !on_both.is_empty() {
                lab.ok(&args(&format!(
                    "network disconnect vb {}",
                    on_both.join(" ")
                )));
            }
        }
    }
    for name in members {
        lab.ok(&args(&format!("rm -f {name}")));
    }
    lab.ok(&args("network rm vb"));
    lab.ok(&args("network rm va"));
}

/// A batch of two chunks of creates (20 targets: the first 16 finished,
/// their names, records and views written, on a thread of their own while
/// the kernel builds the other 4) killed at points spread over the whole
/// command (every thirteenth, and every one from its commit's last log entry
/// on), then `restore`: kernel and state agree and the batch is all or
/// nothing, as a batch of one chunk (the walk below, at every point).
#[test]
fn a_killed_batch_of_two_chunks_is_undone_or_kept_whole() {
    foreign_things();
    let lab = Lab::new("batch2");
    lab.ok(&args("network create --subnet 10.44.0.0/16 pn"));
    lab.ok(&args("network create --subnet 10.45.0.0/16 pm"));
    let members: Vec<String> = (1..=20).map(|i| format!("p{i}")).collect();
    for name in &members {
        lab.ok(&args(&format!("run -d --net=pm --name={name}")));
    }
    let connect = args(&format!("network connect pn {}", members.join(" ")));
    let disconnect = args(&format!("network disconnect pn {}", members.join(" ")));
    // Once through, so directories made on first use exist for every run;
    // the first member's view of both networks names the last member on
    // pn (10.44.0.0/16), finished in another chunk.
    lab.ok(&connect);
    let union = fs::read_to_string(lab.state_dir().join("hosts/containers/p1")).unwrap();
    assert!(
        union
            .lines()
            .any(|line| line.starts_with("10.44.") && line.ends_with("\tp20")),
        "p1's view of pm and pn:\n{union}"
    );
    lab.ok(&disconnect);
    let hits = lab.hits(&connect);
    let committed = hit_of(&hits, "store: after log entry", -1);
    let on_pn = |listed: &Ps| -> usize {
        members
            .iter()
            .filter(|name| listed[name.as_str()].contains("pn"))
            .count()
    };
    let (mut undone, mut kept) = (0, 0);
    for n in (1..=hits.len()).filter(|n| n % 13 == 0 || *n >= committed) {
        let passed = lab.kill_at(&connect, n);
        let after = format!(
            "a batch of two chunks killed at hit {n} ({})",
            passed[n - 1]
        );
        lab.restore();
        let (listed, _) = agree(&lab, "pm", Depth::Quick, &after);
        let attached = on_pn(&listed);
        assert!(
            n < committed || attached == members.len(),
            "{after}: committed at hit {committed}, yet restore kept {attached} of 20"
        );
        if attached == members.len() {
            kept += 1;
        } else {
            assert_eq!(attached, 0, "{after}: a batch is all or nothing");
            undone += 1;
            lab.ok(&connect);
        }
        lab.ok(&disconnect);
        let (listed, _) = agree(&lab, "pm", Depth::Quick, &format!("{after}, and again"));
        assert_eq!(on_pn(&listed), 0, "{after}");
    }
    show(&format!(
        "a batch of two chunks ({} kill points) killed at {}: {kept} kept whole by restore, {undone} undone whole",
        hits.len(),
        kept + undone
    ));
    assert!(kept > 0 && undone > 0, "{kept} kept, {undone} undone");
    agree(
        &lab,
        "pm",
        Depth::Deep,
        "after the walk of a batch of two chunks",
    );
    for name in &members {
        lab.ok(&args(&format!("rm -f {name}")));
    }
    lab.ok(&args("network rm pn"));
    lab.ok(&args("network rm pm"));
}

/// A batch (`network connect NET c1 c2 c3`, the library's `connect_many`)
/// killed at every one of its kill points, then `restore`: kernel and
/// state agree, as after a killed single connect, and the batch is all
/// or nothing: every container attached, or none, so the same command
/// run again succeeds (before, one killed while it wrote its final
/// records came back partly attached, and was refused when run again).
/// A batch disconnect is walked the same way.
#[test]
fn a_killed_batch_is_undone_or_kept_whole() {
    foreign_things();
    let lab = Lab::new("batch");
    lab.ok(&args("network create --subnet 10.41.0.0/16 bn"));
    lab.ok(&args("network create --subnet 10.42.0.0/16 bm"));
    let members = ["b1", "b2", "b3"];
    for name in members {
        lab.ok(&args(&format!("run -d --net=bm --name={name}")));
    }
    let connect = args("network connect bn b1 b2 b3");
    let disconnect = args("network disconnect bn b1 b2 b3");
    // Once through, so directories made on first use exist for every run.
    lab.ok(&connect);
    lab.ok(&disconnect);
    let connect_hits = lab.hits(&connect);
    let disconnect_hits = lab.hits(&disconnect);
    // From these hits on, each command's commit is durable: restore keeps
    // what it did, never undoes it.
    let connect_committed = hit_of(&connect_hits, "store: after log entry", -1);
    let disconnect_committed = hit_of(&disconnect_hits, "store: after log entry", -1);
    agree(
        &lab,
        "bm",
        Depth::Deep,
        "a complete batch connect and disconnect",
    );
    let on_bn = |listed: &Ps| -> Vec<&str> {
        members
            .into_iter()
            .filter(|name| listed[*name].contains("bn"))
            .collect()
    };
    let (mut undone, mut kept) = (0, 0);
    // Every kill point of each command, however their counts differ: past
    // the end of one, that command runs whole while the other is walked on.
    for n in 1..=connect_hits.len().max(disconnect_hits.len()) {
        if n > connect_hits.len() {
            lab.ok(&connect);
            let (listed, _) = agree(&lab, "bm", Depth::Quick, "batch connected whole");
            assert_eq!(on_bn(&listed), members, "batch connected whole");
        } else {
            let passed = lab.kill_at(&connect, n);
            let after = format!("batch connect killed at hit {n} ({})", passed[n - 1]);
            lab.restore();
            let (listed, _) = agree(&lab, "bm", Depth::Quick, &after);
            let attached = on_bn(&listed);
            assert!(
                n < connect_committed || attached.len() == members.len(),
                "{after}: committed at hit {connect_committed}, yet restore kept only {attached:?}"
            );
            if attached.len() == members.len() {
                kept += 1;
            } else {
                // All or nothing: none attached, so the same command,
                // run again, attaches them all.
                assert!(
                    attached.is_empty(),
                    "{after}: a batch is all or nothing, yet {attached:?} stayed attached"
                );
                undone += 1;
                lab.ok(&connect);
            }
            let (listed, _) = agree(&lab, "bm", Depth::Quick, &format!("{after}, completed"));
            assert_eq!(on_bn(&listed), members, "{after}");
        }

        // And back, killed at the same hit when it has one.
        if n <= disconnect_hits.len() {
            let passed = lab.kill_at(&disconnect, n);
            let after = format!("batch disconnect killed at hit {n} ({})", passed[n - 1]);
            // Before restore, the hosts file names no member without a
            // record (any state) on bn: a name whose record went has its
            // address back in the pool, for the next connect.
            let state = StateDir::open(lab.state_dir()).unwrap();
            let bn = state.network_named("bn").unwrap().unwrap();
            let recorded: BTreeSet<String> = state
                .endpoints_of(&bn.id)
                .unwrap()
                .items
                .into_iter()
                .filter_map(|e| e.container)
                .collect();
            let hosts =
                fs::read_to_string(lab.state_dir().join("hosts").join(&bn.id)).unwrap_or_default();
            for line in hosts.lines() {
                if let Some((_, name)) = line.split_once('\t') {
                    assert!(
                        !members.contains(&name) || recorded.contains(name),
                        "{after}: the hosts file names {name}, which has no record:\n{hosts}"
                    );
                }
            }
            // Nor does any member's view of both networks name another by
            // its address on bn (10.41.0.0/16).
            for member in members {
                let union = lab.state_dir().join("hosts/containers").join(member);
                let view = fs::read_to_string(&union).unwrap_or_default();
                for line in view.lines() {
                    if let Some((addr, name)) = line.split_once('\t') {
                        assert!(
                            !addr.starts_with("10.41.")
                                || !members.contains(&name)
                                || recorded.contains(name),
                            "{after}: {member}'s view names {name} at {addr}, which has no record on bn:\n{view}"
                        );
                    }
                }
            }
            lab.restore();
            let (listed, _) = agree(&lab, "bm", Depth::Quick, &after);
            let still: Vec<&str> = on_bn(&listed);
            assert!(
                n < disconnect_committed || still.is_empty(),
                "{after}: committed at hit {disconnect_committed}, yet {still:?} stayed attached"
            );
            if !still.is_empty() {
                lab.ok(&args(&format!("network disconnect bn {}", still.join(" "))));
            }
        } else {
            lab.ok(&disconnect);
        }
        let (listed, _) = agree(&lab, "bm", Depth::Quick, "batch disconnected");
        assert!(on_bn(&listed).is_empty(), "{listed:?}");
    }
    show(&format!(
        "batch connect walked at {} kill points: {kept} kept whole by restore, {undone} undone whole and run again; batch disconnect at {}",
        connect_hits.len(),
        disconnect_hits.len()
    ));
    agree(&lab, "bm", Depth::Deep, "after the batch walk");
    for name in members {
        lab.ok(&args(&format!("rm -f {name}")));
    }
    lab.ok(&args("network rm bn"));
    lab.ok(&args("network rm bm"));
}

/// Item: a connect of a namespace another tool named (`ip netns add`) to
/// its first network, killed at any point around the making of its
/// `/etc/netns` view: after `restore`, it is either attached with its view
/// (a symbolic link into our hosts files) or not attached and without one.
/// Restore used to keep an endpoint killed after its final record without
/// ever making the view its connect had not made yet.
#[test]
fn after_restore_an_attached_named_namespace_has_its_etc_netns_view() {
    let lab = Lab::new("view");
    lab.ok(&args("network create --subnet 10.41.0.0/16 vw"));
    assert!(vm_support::ip_ok(&["netns", "add", "vw1"]));
    let connect = args("network connect vw vw1");
    // Once through, so directories made on first use exist for every
    // connect counted and killed below.
    lab.ok(&connect);
    lab.ok(&args("network disconnect vw vw1"));
    let hits = lab.hits(&connect);
    lab.ok(&args("network disconnect vw vw1"));
    let dir = Path::new(ETC_NETNS_DIR).join("vw1");
    let view = dir.join("hosts");
    assert!(!dir.exists(), "disconnect left {}", dir.display());
    let around_the_view: Vec<usize> = hits
        .iter()
        .enumerate()
        .filter(|(_, point)| point.starts_with("etc netns: "))
        .map(|(at, _)| at + 1)
        .collect();
    assert!(!around_the_view.is_empty(), "{hits:?}");
    for n in around_the_view {
        let passed = lab.kill_at(&connect, n);
        let after = format!("connect killed at hit {n} ({})", passed[n - 1]);
        lab.restore();
        let state = StateDir::open(lab.state_dir()).unwrap();
        let networks = state.networks().unwrap().complete().unwrap();
        let network = networks.iter().find(|n| n.name == "vw").unwrap();
        let attached = state
            .endpoints_of(&network.id)
            .unwrap()
            .complete()
            .unwrap()
            .len();
        let linked = fs::read_link(&view).ok();
        match attached {
            1 => {
                assert!(
                    linked
                        .as_ref()
                        .is_some_and(|target| target.starts_with(lab.state_dir())),
                    "{after}: attached, its view {linked:?}"
                );
                lab.ok(&args("network disconnect vw vw1"));
            }
            0 => assert!(!dir.exists(), "{after}: not attached, its view {linked:?}"),
            more => panic!("{after}: {more} endpoints"),
        }
        assert!(!dir.exists(), "{after}: disconnect left {}", dir.display());
    }
    assert!(vm_support::ip_ok(&["netns", "del", "vw1"]));
    lab.ok(&args("network rm vw"));
}

/// A disconnect killed right after its link went, its `detaching` intent
/// still in the commit log's page, then a `restore` whose lock cannot make
/// that intent the endpoint's record (the disk refusing that one write):
/// the record on disk still says `attached` and the namespace is there,
/// but restore must not make the link again, which would undo the detach;
/// it names the endpoint and leaves it, its address still taken. The next
/// restore, whose write goes through, finishes the detach.
#[test]
fn restore_leaves_an_endpoint_whose_detach_intent_it_cannot_write() {
    let lab = Lab::new("detach-intent");
    lab.ok(&args("network create --subnet 10.43.0.0/16 di"));
    assert!(vm_support::ip_ok(&["netns", "add", "di1"]));
    let disconnect = args("network disconnect di di1");
    lab.ok(&args("network connect di di1"));
    let ours = |ns: &str| -> Vec<String> {
        links_of(ns)
            .into_iter()
            .filter(|(_, (_, kind))| kind == "ipvlan")
            .map(|(name, _)| name)
            .collect()
    };
    assert_eq!(ours("di1"), ["eth0"]);
    let [endpoint] = &records_in(&lab, "di", "di1")[..] else {
        panic!("one endpoint record of di1");
    };
    let address = endpoint.ipv4.expect("an IPv4 address").addr().to_string();
    let address_file = lab
        .state_dir()
        .join("ipam")
        .join(&endpoint.network_id)
        .join("10.43.0.0-16")
        .join(&address);
    // An address file is a symbolic link naming its owner, never followed.
    let held = || fs::symlink_metadata(&address_file).is_ok();
    assert!(held(), "{} holds the address", address_file.display());

    let passed = lab.kill_at_point(&disconnect, "netlink: after acks", 1);
    assert_eq!(
        passed.last().map(String::as_str),
        Some("netlink: after acks"),
        "{passed:?}"
    );
    assert!(
        ours("di1").is_empty(),
        "the killed disconnect deleted the link"
    );
    assert_eq!(
        records_in(&lab, "di", "di1")
            .iter()
            .map(|r| r.state)
            .collect::<Vec<_>>(),
        [EndpointState::Attached],
        "the record on disk is the one before the detach"
    );

    let mut command = lab.command(&args("restore"));
    command.env(FORCE_ENV, "store: detach intent not written");
    let out = lab.output(&mut command);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(
        ours("di1").is_empty(),
        "restore made the link of a detach that had deleted it: {:?}; {said}",
        links_of("di1")
    );
    assert_ne!(
        out.status.code(),
        Some(0),
        "restore reports what it left: {said}"
    );
    assert!(
        said.contains("not repaired: the commit log holds its intent"),
        "restore names the endpoint it leaves: {said}"
    );
    assert_eq!(records_in(&lab, "di", "di1").len(), 1, "the record is left");
    assert!(held(), "the address stays taken while the endpoint is left");

    lab.restore();
    assert!(
        records_in(&lab, "di", "di1").is_empty(),
        "the detach finished"
    );
    assert!(ours("di1").is_empty(), "{:?}", links_of("di1"));
    assert!(!held(), "the finished detach released its address");
    assert!(
        !Path::new(ETC_NETNS_DIR).join("di1").exists(),
        "the finished detach took the view with it"
    );
    lab.ok(&args("network connect di di1"));
    assert_eq!(ours("di1"), ["eth0"], "attached again");
    lab.ok(&disconnect);
    assert!(vm_support::ip_ok(&["netns", "del", "di1"]));
    lab.ok(&args("network rm di"));
}

/// The ifindex and kind of host link `name`, read by iproute2.
fn host_link(name: &str) -> Option<(u64, Option<String>)> {
    vm_support::link(None, name).map(|link| {
        let index = link.get("ifindex").and_then(Value::as_u64).unwrap();
        (index, vm_support::link_kind(&link))
    })
}

/// Item: a parent we make (`NAME.VLANID`, a network's dummy) is deleted
/// only when it is the very link we made. `network create` and `network
/// rm` are killed around each of their netlink requests; wherever the kill
/// leaves the network recorded and no link of its parent's name, another
/// tool makes one (the admin, systemd-networkd), and `restore` rolls the
/// network back without touching it: same name, same ifindex. Where the
/// kill leaves our own parent, restore still deletes it.
#[test]
fn a_parent_another_tool_makes_under_our_name_survives_every_kill_and_restore() {
    foreign_things();
    let lab = Lab::new("parent-theirs");
    let vlan = format!("{TRUNK}.77");
    let cases = [
        (
            format!("network create -o parent={vlan} --subnet 10.42.0.0/16 pv"),
            "network rm pv",
            "pv",
        ),
        (
            "network create --subnet 10.43.0.0/16 pd".to_string(),
            "network rm pd",
            "pd",
        ),
    ];
    let mut theirs_kept = 0;
    for (create, rm, name) in &cases {
        let (create, rm) = (args(create), args(rm));
        // Once through, so directories made on first use exist for every run.
        lab.ok(&create);
        lab.ok(&rm);
        let create_hits = lab.hits(&create);
        let rm_hits = lab.hits(&rm);
        for (command, hits, made_first) in [(&create, &create_hits, false), (&rm, &rm_hits, true)] {
            let around_requests: Vec<usize> = hits
                .iter()
                .enumerate()
                .filter(|(_, point)| point.starts_with("netlink: "))
                .map(|(at, _)| at + 1)
                .collect();
            assert!(!around_requests.is_empty(), "{hits:?}");
            for n in around_requests {
                if made_first {
                    lab.ok(&create);
                }
                let passed = lab.kill_at(command, n);
                let after = format!(
                    "{} killed at hit {n} ({})",
                    command.join(" "),
                    passed[n - 1]
                );
                let recorded = StateDir::open(lab.state_dir())
                    .unwrap()
                    .networks()
                    .unwrap()
                    .complete()
                    .unwrap()
                    .into_iter()
                    .find(|network| network.name == *name);
                let parent = recorded.as_ref().map(|network| network.parent.clone());
                // Another tool makes the parent's name where the kill left none.
                let theirs = match &parent {
                    Some(parent) if host_link(parent).is_none() => {
                        if parent == &vlan {
                            ip(&[
                                "link", "add", "link", TRUNK, "name", parent, "type", "vlan", "id",
                                "77",
                            ]);
                        } else {
                            ip(&["link", "add", parent, "type", "dummy"]);
                        }
                        Some(host_link(parent).unwrap())
                    }
                    _ => None,
                };
                lab.restore();
                let kept = lab.network_names().contains(*name);
                match (&parent, theirs) {
                    (Some(parent), Some(theirs)) => {
                        assert_eq!(
                            host_link(parent),
                            Some(theirs.clone()),
                            "{after}: restore touched {parent}, which another tool made after the kill"
                        );
                        assert!(
                            !kept,
                            "{after}: network {name} kept on a parent it did not make"
                        );
                        ip(&["link", "del", parent]);
                        theirs_kept += 1;
                    }
                    (Some(parent), None) if !kept => assert_eq!(
                        host_link(parent),
                        None,
                        "{after}: restore rolled the network back and left its parent {parent}"
                    ),
                    _ => {}
                }
                if kept {
                    lab.ok(&rm);
                }
                if let Some(parent) = &parent {
                    assert_eq!(host_link(parent), None, "{after}: {parent} left behind");
                }
            }
        }
    }
    // Both commands, both kinds of parent: killed right before the create
    // (and after the delete) the name was free for another tool.
    assert!(
        theirs_kept >= 4,
        "another tool's parent tried only {theirs_kept} times"
    );
}

/// A link of namespace `ns` as `ip -d -j link` reads it: ifindex and kind.
fn link_in(ns: &str, name: &str) -> Option<(u64, String)> {
    let link = vm_support::link(Some(ns), name)?;
    let index = link.get("ifindex")?.as_u64()?;
    Some((index, vm_support::link_kind(&link).unwrap_or_default()))
}

/// Every link of `ns` by `ip -d -j link`: name -> ifindex and kind.
fn links_of(ns: &str) -> BTreeMap<String, (u64, String)> {
    let listed = vm_support::ip_json(&["-n", ns, "-d", "link", "show"]);
    listed
        .as_array()
        .unwrap_or(&[])
        .iter()
        .map(|l| {
            let index = l.get("ifindex").and_then(Value::as_u64).unwrap_or(0);
            let kind = vm_support::link_kind(l).unwrap_or_default();
            (str_of(l, "ifname").to_string(), (index, kind))
        })
        .collect()
}

/// Another tool's ipvlan link `name` on `parent` in `ns`, made as such a
/// tool would (in the host under a name of its own, moved in, renamed
/// there); its ifindex, or `None` when `name` is taken in `ns` (then
/// nothing of it is left).
fn their_ipvlan(ns: &str, parent: &str, name: &str) -> Option<u64> {
    ip(&[
        "link", "add", "theirtmp", "link", parent, "type", "ipvlan", "mode", "l2",
    ]);
    ip(&["link", "set", "theirtmp", "netns", ns]);
    if !vm_support::ip_ok(&["-n", ns, "link", "set", "theirtmp", "name", name]) {
        ip(&["-n", ns, "link", "del", "theirtmp"]);
        return None;
    }
    let (index, kind) = link_in(ns, name).expect("their link");
    assert_eq!(kind, "ipvlan");
    Some(index)
}

/// What another tool did in a namespace while our command lay killed.
#[derive(Default)]
struct Meddled {
    /// Links it made: name, ifindex.
    theirs: Vec<(String, u64)>,
    /// The ifindex of our link, which it renamed (our attach had made it).
    ours_renamed: Option<u64>,
}

/// The endpoint records of `network` whose namespace is `ns`.
fn records_in(lab: &Lab, network: &str, ns: &str) -> Vec<ipvlan::store::EndpointRecord> {
    let state = StateDir::open(lab.state_dir()).unwrap();
    let networks = state.networks().unwrap().complete().unwrap();
    let network = networks.iter().find(|n| n.name == network).unwrap();
    let path = Path::new(NETNS_DIR).join(ns).display().to_string();
    state
        .endpoints_of(&network.id)
        .unwrap()
        .complete()
        .unwrap()
        .into_iter()
        .filter(|e| e.netns == path)
        .collect()
}

fn parent_of(lab: &Lab, network: &str) -> String {
    let state = StateDir::open(lab.state_dir()).unwrap();
    let networks = state.networks().unwrap().complete().unwrap();
    networks
        .into_iter()
        .find(|n| n.name == network)
        .map(|n| n.parent)
        .unwrap()
}

/// Walks every kill point of `command`, which attaches each of `spaces`
/// to `network` (`standing`: links of another tool there from the
/// start, namespace, name, ifindex). After each kill `meddle` plays
/// another tool in each namespace, then `restore` runs, and then: every
/// link of the other tool is there with its ifindex and kind ipvlan, our
/// renamed link (if any) is gone, and each namespace is attached whole
/// (one `attached` record, its link at its index, its address held) or
/// not at all (no record, no address held, no link of ours). Returns how
/// many kills the other tool made a link after, and renamed ours after.
fn walk_beside_another_tool(
    lab: &Lab,
    network: &str,
    command: &[String],
    spaces: &[&str],
    standing: &[(&str, &str, u64)],
    meddle: &dyn Fn(&Lab, &str) -> Meddled,
) -> (usize, usize) {
    let detach = || {
        for ns in spaces {
            lab.ok(&args(&format!("network disconnect {network} {ns}")));
        }
    };
    // Once through first: the first attach of a namespace makes files
    // the later ones find.
    lab.ok(command);
    detach();
    let hits = lab.hits(command);
    detach();
    let (mut made, mut renamed) = (0, 0);
    // Up to the first kill after which restore keeps every namespace
    // attached: from there on the attach is recorded whole, and every later
    // kill is too (walked by every_kill_point_of_every_command_then_restore_agrees).
    for n in 1..=hits.len() {
        let _ = fs::remove_file(lab.count_file());
        let mut killed = lab.command(command);
        killed
            .env(COUNT_ENV, lab.count_file())
            .env(KILL_AT_ENV, n.to_string());
        let out = lab.output(&mut killed);
        let passed = lab.counted();
        // A run with fewer hits than the counted one simply completes.
        let after = match out.status.signal() {
            Some(libc::SIGKILL) => format!(
                "{} killed at hit {n} ({})",
                command.join(" "),
                passed[n - 1]
            ),
            _ => {
                assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
                format!("{} (not killed at hit {n}: fewer hits)", command.join(" "))
            }
        };
        let mut all_attached = true;
        let meddled: Vec<(&str, Meddled)> =
            spaces.iter().map(|ns| (*ns, meddle(lab, ns))).collect();
        lab.restore();
        for (ns, meddled) in &meddled {
            made += usize::from(!meddled.theirs.is_empty());
            renamed += usize::from(meddled.ours_renamed.is_some());
            let theirs: Vec<(String, u64)> = standing
                .iter()
                .filter(|(at, _, _)| at == ns)
                .map(|(_, name, index)| (name.to_string(), *index))
                .chain(meddled.theirs.iter().cloned())
                .collect();
            let links = links_of(ns);
            for (name, index) in &theirs {
                assert_eq!(
                    links.get(name),
                    Some(&(*index, "ipvlan".to_string())),
                    "{after}: another tool's {name} (ifindex {index}) in {ns} was deleted by restore"
                );
            }
            if let Some(index) = meddled.ours_renamed {
                assert!(
                    !links.values().any(|(i, _)| *i == index),
                    "{after}: our link (ifindex {index}, renamed by another tool) left in {ns}: {links:?}"
                );
            }
            let records = records_in(lab, network, ns);
            let mut expected: BTreeSet<String> =
                theirs.iter().map(|(name, _)| name.clone()).collect();
            expected.insert("lo".to_string());
            for other in records_in(lab, "tm", ns) {
                expected.insert(other.ifname);
            }
            match records.as_slice() {
                [] => {}
                [ours] => {
                    assert_eq!(ours.state, EndpointState::Attached, "{after}: {ours:?}");
                    let index = u64::from(ours.ifindex.expect("an attached record's index"));
                    assert_eq!(
                        links.get(&ours.ifname),
                        Some(&(index, "ipvlan".to_string())),
                        "{after}: {links:?}"
                    );
                    expected.insert(ours.ifname.clone());
                }
                more => panic!("{after}: {} records for {ns}: {more:?}", more.len()),
            }
            let names: BTreeSet<String> = links.keys().cloned().collect();
            assert_eq!(names, expected, "{after}: links of {ns}");
            let state = StateDir::open(lab.state_dir()).unwrap();
            let record = state
                .networks()
                .unwrap()
                .complete()
                .unwrap()
                .into_iter()
                .find(|n| n.name == network)
                .unwrap();
            let held: BTreeSet<String> = state
                .addresses(&record)
                .unwrap()
                .into_iter()
                .map(|(address, _)| address.to_string())
                .collect();
            let recorded: BTreeSet<String> = state
                .endpoints_of(&record.id)
                .unwrap()
                .complete()
                .unwrap()
                .iter()
                .filter_map(|e| e.ipv4.map(|a| a.addr().to_string()))
                .collect();
            assert_eq!(held, recorded, "{after}: addresses of {network}");
            all_attached &= !records.is_empty();
            // Back to the start: ours detached, the other tool's new links
            // gone.
            if !records.is_empty() {
                lab.ok(&args(&format!("network disconnect {network} {ns}")));
            }
            for (name, _) in &meddled.theirs {
                ip(&["-n", ns, "link", "del", name]);
            }
        }
        if all_attached {
            break;
        }
    }
    (made, renamed)
}

/// Item: restore never deletes another tool's link by its name. An attach
/// writes its intent before the kernel is touched; killed after that and
/// before its link is recorded, restore undoes only the link at the
/// ifindex the intent names (the one its create asked for). Walked at
/// every kill point: a single connect whose `eth0` is guessed, beside
/// another tool's ipvlan `eth0` on our parent in the same namespace; a
/// single connect whose `eth1` another tool takes while our command lies
/// killed; a batch connect likewise. Their links keep their ifindex and
/// kind, ours is attached whole or not at all.
#[test]
fn restore_after_a_killed_connect_leaves_another_tools_link_of_its_name_alone() {
    foreign_things();
    let lab = Lab::new("theirs");
    lab.ok(&args("network create --subnet 10.43.0.0/16 tn"));
    lab.ok(&args("network create --subnet 10.44.0.0/16 tm"));
    let parent = parent_of(&lab, "tn");
    for ns in ["t1", "t2", "t3"] {
        ip(&["netns", "add", ns]);
    }
    // Once through, so directories made on first use exist for every run.
    lab.ok(&args("network connect tn t3"));
    lab.ok(&args("network disconnect tn t3"));

    // A guessed eth0, beside theirs from the start.
    let theirs = their_ipvlan("t1", &parent, "eth0").unwrap();
    walk_beside_another_tool(
        &lab,
        "tn",
        &args("network connect tn t1"),
        &["t1"],
        &[("t1", "eth0", theirs)],
        &|_, _| Meddled::default(),
    );
    ip(&["-n", "t1", "link", "del", "eth0"]);

    // A name asked for (eth0 is ours, on tm), then taken by another tool
    // while we lie killed: singly, and in a batch.
    for ns in ["t1", "t2"] {
        lab.ok(&args(&format!("network connect tm {ns}")));
    }
    let meddle = |lab: &Lab, ns: &str| {
        let mut meddled = Meddled::default();
        if links_of(ns).contains_key("eth1") {
            return meddled;
        }
        if let Some(index) = their_ipvlan(ns, &parent_of(lab, "tn"), "eth1") {
            meddled.theirs.push(("eth1".to_string(), index));
        }
        meddled
    };
    let (single, _) = walk_beside_another_tool(
        &lab,
        "tn",
        &args("network connect tn t1"),
        &["t1"],
        &[],
        &meddle,
    );
    let (batch, _) = walk_beside_another_tool(
        &lab,
        "tn",
        &args("network connect tn t1 t2"),
        &["t1", "t2"],
        &[],
        &meddle,
    );
    show(&format!(
        "another tool took the name of a killed connect's link {single} times (single), {batch} times (batch)"
    ));
    assert!(single > 0 && batch > 0);
    for ns in ["t1", "t2"] {
        lab.ok(&args(&format!("network disconnect tm {ns}")));
    }
    for ns in ["t1", "t2", "t3"] {
        ip(&["netns", "del", ns]);
    }
    lab.ok(&args("network rm tn"));
    lab.ok(&args("network rm tm"));
}

/// Item: a connect killed after its create (before the record that says
/// so) is undone by the ifindex its intent names, whatever has become of
/// the name: walked at every kill point, with another tool renaming our
/// link wherever the kill left it made and taking its name for an ipvlan
/// link of its own on the same parent. Restore removes exactly ours (by
/// its index) and keeps theirs. (A batch's intents name their indexes as
/// well: the batch walk of the test above finds no link of ours left.)
#[test]
fn restore_after_a_connect_killed_past_its_create_removes_only_its_own_link() {
    foreign_things();
    let lab = Lab::new("ours");
    lab.ok(&args("network create --subnet 10.45.0.0/16 tn"));
    lab.ok(&args("network create --subnet 10.46.0.0/16 tm"));
    for ns in ["u1", "u2"] {
        ip(&["netns", "add", ns]);
    }
    lab.ok(&args("network connect tn u1 u2"));
    lab.ok(&args("network disconnect tn u1 u2"));
    let meddle = |lab: &Lab, ns: &str| {
        let mut meddled = Meddled::default();
        let records = records_in(lab, "tn", ns);
        let name = match records.iter().find(|e| e.state != EndpointState::Attached) {
            Some(intent) => intent.ifname.clone(),
            // A single attach's intent is in the commit log's page, not a
            // file, until its final record: the name it asks for is the
            // one a container on no network gets.
            None if records.is_empty() => "eth0".to_string(),
            None => return meddled,
        };
        // Nothing else of an ipvlan kind was in the namespace: an ipvlan
        // link there is the one the attach made.
        let Some((index, kind)) = link_in(ns, &name) else {
            return meddled;
        };
        assert_eq!(kind, "ipvlan");
        ip(&["-n", ns, "link", "set", &name, "down"]);
        ip(&["-n", ns, "link", "set", &name, "name", "moved0"]);
        meddled.ours_renamed = Some(index);
        let theirs = their_ipvlan(ns, &parent_of(lab, "tn"), &name).expect("the name is free");
        meddled.theirs.push((name, theirs));
        meddled
    };
    let (_, single) = walk_beside_another_tool(
        &lab,
        "tn",
        &args("network connect tn u1"),
        &["u1"],
        &[],
        &meddle,
    );
    show(&format!(
        "a killed connect's link was renamed and its name taken {single} times"
    ));
    assert!(single > 0);
    for ns in ["u1", "u2"] {
        ip(&["netns", "del", ns]);
    }
    lab.ok(&args("network rm tn"));
    lab.ok(&args("network rm tm"));
}

/// Item: an intent record of an older version names no ifindex, only the
/// name its attach guessed or found free. Restore cannot tell a link of
/// that name from another tool's (the kill may have come before our
/// create, or our create been refused because theirs had the name): it
/// releases the endpoint and leaves the link in place, reported (exit 1),
/// here another tool's ipvlan `eth0` on our parent.
#[test]
fn restore_leaves_the_link_an_older_intent_names_in_place() {
    foreign_things();
    let lab = Lab::new("older");
    lab.ok(&args("network create --subnet 10.47.0.0/16 on"));
    let parent = parent_of(&lab, "on");
    ip(&["netns", "add", "o1"]);
    lab.ok(&args("network connect on o1"));
    let [mut intent] = <[_; 1]>::try_from(records_in(&lab, "on", "o1")).unwrap();
    lab.ok(&args("network disconnect on o1"));
    let theirs = their_ipvlan("o1", &parent, "eth0").unwrap();
    // As an older version wrote it before touching the kernel.
    intent.state = EndpointState::Attaching;
    intent.ifindex = None;
    intent.mac = None;
    {
        let state = StateDir::open(lab.state_dir()).unwrap();
        let locked = state.lock().unwrap();
        locked.put_endpoint(&intent).unwrap();
        locked.commit().unwrap();
    }
    let out = lab.output(&mut lab.command(&args("restore")));
    let stderr = text(&out.stderr);
    let links = links_of("o1");
    assert_eq!(
        links.get("eth0"),
        Some(&(theirs, "ipvlan".to_string())),
        "their eth0 after restore: {links:?}"
    );
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("link eth0 (index {theirs}) in namespace"))
            && stderr.contains("left in place"),
        "{stderr}"
    );
    assert_eq!(links.len(), 2, "{links:?}");
    assert_eq!(records_in(&lab, "on", "o1"), []);
    let state = StateDir::open(lab.state_dir()).unwrap();
    let network = state.networks().unwrap().complete().unwrap();
    let network = network.iter().find(|n| n.name == "on").unwrap();
    assert_eq!(state.addresses(network).unwrap(), []);
    // A second restore has nothing left to say.
    lab.restore();
    ip(&["netns", "del", "o1"]);
    lab.ok(&args("network rm on"));
}

/// The ifindex each network of ours on `parent` records, by network name.
fn parent_indexes(lab: &Lab, parent: &str) -> BTreeMap<String, Option<u32>> {
    let state = StateDir::open(lab.state_dir()).unwrap();
    let networks = state.networks().unwrap().complete().unwrap();
    networks
        .into_iter()
        .filter(|n| n.parent == parent)
        .map(|n| (n.name, n.parent_index))
        .collect()
}

/// Item: a VLAN parent shared by networks of ours goes with the last of
/// them, however often it was made again meanwhile. Every network on it
/// records the index of the link there now, whether `restore` re-made it
/// after it went or a `network create` on the same parent did: each used
/// to keep the index of the link it saw made, and the last to go, holding
/// a gone link's index, left the live one behind, owned by nothing.
#[test]
fn a_shared_parent_made_again_goes_with_the_last_network_on_it() {
    foreign_things();
    let lab = Lab::new("shared-parent");
    let vlan = format!("{TRUNK}.57");
    lab.ok(&args(&format!(
        "network create --subnet 10.57.1.0/24 -o parent={vlan} sp1"
    )));
    lab.ok(&args(&format!(
        "network create --subnet 10.57.2.0/24 -o parent={vlan} sp2"
    )));
    let check = |when: &str| {
        let (index, _) = host_link(&vlan).unwrap_or_else(|| panic!("{when}: {vlan} missing"));
        let recorded = parent_indexes(&lab, &vlan);
        assert!(
            recorded.values().all(|i| *i == Some(index as u32)),
            "{when}: {vlan} has ifindex {index}, the networks on it record {recorded:?}"
        );
    };
    check("both created");
    // Gone (a reboot, an admin), then made again by restore.
    ip(&["link", "del", &vlan]);
    lab.ok(&args("restore"));
    check("after restore made it again");
    // Gone again, then made again by a third network's create.
    ip(&["link", "del", &vlan]);
    lab.ok(&args(&format!(
        "network create --subnet 10.57.3.0/24 -o parent={vlan} sp3"
    )));
    check("after a create made it again");
    for name in ["sp3", "sp1"] {
        lab.ok(&args(&format!("network rm {name}")));
        assert!(
            host_link(&vlan).is_some(),
            "{vlan} went with {name}, sp2 is on it"
        );
    }
    lab.ok(&args("network rm sp2"));
    let left = host_link(&vlan);
    if left.is_some() {
        ip(&["link", "del", &vlan]);
    }
    assert!(
        left.is_none(),
        "{vlan} left after its last network went: {left:?}"
    );
}

/// A `restore` killed while it makes a parent again, between the create
/// and the `up` (links are made down): the next `restore` finds the link
/// of ours down and sets it up. Before, it took the link as found, and the
/// network's endpoints were made again on a parent that stayed down.
#[test]
fn a_parent_restore_left_down_is_set_up_by_the_next() {
    foreign_things();
    let lab = Lab::new("parent-down");
    let vlan = format!("{TRUNK}.56");
    lab.ok(&args(&format!(
        "network create --subnet 10.56.1.0/24 -o parent={vlan} pd"
    )));
    let is_up = || {
        let link = vm_support::link(None, &vlan).expect("the parent");
        let flags = link.get("flags").and_then(Value::as_array).unwrap();
        flags.iter().any(|f| f.as_str() == Some("UP"))
    };
    assert!(is_up(), "{vlan} made down");
    // Gone (a reboot), then restore killed as it makes it again.
    ip(&["link", "del", &vlan]);
    lab.kill_at_point(&args("restore"), "parent: before up", 1);
    assert!(!is_up(), "{vlan}: the kill came after its up");
    let summary = lab.ok(&args("restore"));
    assert!(is_up(), "{vlan} left down by the second restore: {summary}");
    assert!(
        summary.contains(&format!("pd: {vlan} (found down: set up)")),
        "{summary}"
    );
    // Up, it is taken as found.
    let summary = lab.ok(&args("restore"));
    assert!(!summary.contains("found down"), "{summary}");
    lab.ok(&args("network rm pd"));
    assert!(host_link(&vlan).is_none(), "{vlan} left after network rm");

    // Down with its base (a NIC not up yet at boot): the kernel refuses it
    // up, and restore says it comes up with its base, which it does.
    let _ = Command::new(ip_path())
        .args(["link", "del", "base56"])
        .status();
    ip(&["link", "add", "base56", "type", "dummy"]);
    ip(&["link", "set", "base56", "up"]);
    lab.ok(&args(
        "network create --subnet 10.56.2.0/24 -o parent=base56.56 pb",
    ));
    ip(&["link", "set", "base56", "down"]);
    let summary = lab.ok(&args("restore"));
    assert!(
        summary.contains("pb: base56.56 (found down: base56 is down, and it comes up with it)"),
        "{summary}"
    );
    ip(&["link", "set", "base56", "up"]);
    let link = vm_support::link(None, "base56.56").expect("the parent");
    let flags = link.get("flags").and_then(Value::as_array).unwrap();
    let up = flags.iter().any(|f| f.as_str() == Some("UP"));
    lab.ok(&args("network rm pb"));
    ip(&["link", "del", "base56"]);
    assert!(up, "base56.56 did not come up with its base: {link:?}");
}

/// A `network rm` killed once its record says `removing`, while another
/// tool's link sits on the parent we made: `restore` finishes the rm,
/// keeps the parent, and says so (as the rm itself would have), since no
/// record names the link from then on. Before, the note was dropped and
/// the summary said only "1 interrupted operation repaired".
#[test]
fn a_finished_rm_says_which_parent_it_kept_and_why() {
    foreign_things();
    let lab = Lab::new("parent-kept");
    let vlan = format!("{TRUNK}.55");
    lab.ok(&args(&format!(
        "network create --subnet 10.55.1.0/24 -o parent={vlan} pk"
    )));
    ip(&["link", "add", "mv55", "link", &vlan, "type", "macvlan"]);
    lab.kill_at_point(&args("network rm pk"), "netns: looked at", 1);
    let summary = lab.ok(&args("restore"));
    let networks = lab.ok(&args("network ls -q"));
    let kept = host_link(&vlan).is_some();
    ip(&["link", "del", "mv55"]);
    if kept {
        ip(&["link", "del", &vlan]);
    }
    assert!(
        summary.contains("1 interrupted operation repaired"),
        "{summary}"
    );
    assert!(
        summary.contains(&format!(
            "  parent kept: pk: parent {vlan} kept: macvlan link mv55 in the host namespace sits on it"
        )),
        "{summary}"
    );
    assert!(kept, "{vlan} deleted with another tool's link on it");
    assert_eq!(networks, "", "the rm was not finished");
}

/// A `NAME.VLANID` of ours gone (a reboot) whose id another link took
/// meanwhile (the host's own setup, under another name): `restore` says
/// which link holds it, as `network create` does. Before: "by a link in a
/// namespace without a name", sending the user to look in containers for a
/// link `ip link` shows.
#[test]
fn a_parent_restore_names_the_link_that_took_its_vlan_id() {
    foreign_things();
    let lab = Lab::new("vlan-taken");
    let vlan = format!("{TRUNK}.54");
    lab.ok(&args(&format!(
        "network create --subnet 10.54.1.0/24 -o parent={vlan} vt"
    )));
    ip(&["link", "del", &vlan]);
    ip(&[
        "link", "add", "link", TRUNK, "name", "vl54", "type", "vlan", "id", "54",
    ]);
    let out = lab.output(&mut lab.command(&args("restore")));
    ip(&["link", "del", "vl54"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "vt: {vlan}: vlan id 54 is already in use on {TRUNK} by link vl54 in the host namespace"
        )),
        "{stderr}"
    );
    assert!(host_link(&vlan).is_none(), "{vlan} made beside vl54");
    // The id free again, the next restore makes it.
    let summary = lab.ok(&args("restore"));
    assert!(
        summary.contains(&format!("parent re-created: vt: {vlan}")),
        "{summary}"
    );
    lab.ok(&args("network rm vt"));
    assert!(host_link(&vlan).is_none(), "{vlan} left after network rm");
}

/// Item: a parent create refused because its chosen ifindex is taken
/// (forced: the loopback's) is tried again with another, recorded first,
/// as `create_recorded` promises: the network is made and records the
/// link's index, which its removal then deletes.
#[test]
fn a_parent_whose_chosen_index_is_taken_is_made_with_another() {
    foreign_things();
    let lab = Lab::new("parent-index");
    let vlan = format!("{TRUNK}.59");
    let mut command = lab.command(&args(&format!(
        "network create --subnet 10.59.1.0/24 -o parent={vlan} pi"
    )));
    command.env(FORCE_ENV, "parent: first index taken");
    let out = lab.output(&mut command);
    assert!(
        out.status.success(),
        "network create with the first index taken: {}",
        text(&out.stderr)
    );
    let (index, kind) = host_link(&vlan).expect("the parent made");
    assert_eq!(kind.as_deref(), Some("vlan"));
    assert_ne!(index, 1);
    assert_eq!(
        parent_indexes(&lab, &vlan).get("pi").copied().flatten(),
        Some(index as u32),
        "the record names the link's index"
    );
    lab.ok(&args("network rm pi"));
    assert!(host_link(&vlan).is_none(), "{vlan} left after network rm");
}

/// A batch disconnect that stops part-way, while its links are deleted on
/// threads of their own ahead of the files it writes (here at s2's view,
/// which it can neither rewrite nor take the leaving names out of:
/// `/etc/netns/s2` and s2's union file read-only): the endpoints
/// finished before it are detached whole (the error names them, where it
/// stopped, and those left to restore), and every endpoint whose link went
/// ahead of the failure keeps its record as its intent (`detaching`) for
/// `restore` to finish; the rest stay attached with their links, and the
/// network's hosts file names exactly those (all names leave it before the
/// first link goes; before, those detached stayed in it, naming addresses
/// given back). After `restore`, kernel and state agree, and every
/// endpoint the batch reached is detached.
#[test]
fn a_batch_disconnect_stopped_part_way_leaves_the_rest_for_restore() {
    foreign_things();
    let lab = Lab::new("batch-stop");
    lab.ok(&args("network create --subnet 10.57.0.0/24 sn"));
    lab.ok(&args("network create --subnet 10.56.0.0/24 sm"));
    let members = ["s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8"];
    for name in members {
        lab.ok(&args(&format!("run -d --net=sm --name={name}")));
    }
    lab.ok(&args(&format!("network connect sn {}", members.join(" "))));
    // Its view, and its union file (a copy of its networks' files, whose
    // lines of the leaving endpoints a detach blanks where the view cannot
    // be brought up to date): neither can be written.
    let view = Path::new(ETC_NETNS_DIR).join("s2");
    let union = lab.state_dir().join("hosts").join("containers").join("s2");
    assert!(union.is_file(), "{}", union.display());
    read_only(&view);
    read_only(&union);
    let out = lab.output(&mut lab.command(&args(&format!(
        "network disconnect sn {}",
        members.join(" ")
    ))));
    for path in [&view, &union] {
        let _ = Command::new("umount").arg(path).status();
    }
    let stderr = text(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(0),
        "the batch was to stop at s2's view"
    );
    // Endpoints are finished as their links go (four at once): which were
    // before s2's failure depends on which went first. The error names
    // them, and those left to restore (s2 among them).
    let said = stderr
        .split_once("detaching s2 from network sn (")
        .and_then(|(_, rest)| rest.split_once("): "))
        .map(|(said, _)| said.to_string())
        .unwrap_or_else(|| panic!("the error names s2 and what it did: {stderr}"));
    let (before, left) = said
        .split_once("; left for `ipvlan restore` to finish: ")
        .unwrap_or_else(|| panic!("no endpoint left to restore: {said}"));
    let detached_names: Vec<&str> = match before {
        "none detached before it" => Vec::new(),
        list => list
            .strip_prefix("detached before it: ")
            .unwrap_or_else(|| panic!("{said}"))
            .split(", ")
            .collect(),
    };
    let left_names: Vec<&str> = left.split(", ").collect();
    assert!(left_names.contains(&"s2"), "{said}");
    let detached_before = detached_names.len();
    let on_sn = |listed: &Ps| -> Vec<&str> {
        members
            .into_iter()
            .filter(|name| listed[*name].contains("sn"))
            .collect()
    };
    // Straight after the failure: as many as the error says are gone from
    // sn, s2 is left to restore, and each endpoint recorded attached
    // still has its link.
    let state = StateDir::open(lab.state_dir()).unwrap();
    let networks = state.networks().unwrap().complete().unwrap();
    let sn = networks.iter().find(|n| n.name == "sn").unwrap();
    let endpoints = state.endpoints_of(&sn.id).unwrap().complete().unwrap();
    let container_of = |endpoint: &EndpointRecord| endpoint.container.clone().unwrap_or_default();
    assert_eq!(
        members.len() - endpoints.len(),
        detached_before,
        "records gone against the error's count: {endpoints:?}"
    );
    // Those detached, or left to restore: none is on sn after it.
    let reached: Vec<&str> = members
        .into_iter()
        .filter(|name| {
            !endpoints
                .iter()
                .any(|e| container_of(e) == *name && e.state != EndpointState::Detaching)
        })
        .collect();
    // Its hosts file names the endpoints recorded attached, and no other:
    // none of those detached (their addresses are free) or left to restore.
    let hosts = fs::read_to_string(lab.state_dir().join("hosts").join(&sn.id)).unwrap();
    let named: BTreeSet<&str> = hosts
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(_, name)| name)
        .filter(|name| members.contains(name))
        .collect();
    let attached: BTreeSet<&str> = members
        .into_iter()
        .filter(|name| {
            endpoints
                .iter()
                .any(|e| container_of(e) == *name && e.state == EndpointState::Attached)
        })
        .collect();
    assert_eq!(
        named, attached,
        "hosts file after the stopped batch:\n{hosts}"
    );
    for name in &detached_names {
        assert!(
            !endpoints.iter().any(|e| container_of(e) == *name),
            "{name} said detached: {endpoints:?}"
        );
    }
    for endpoint in &endpoints {
        let name = container_of(endpoint);
        let link = link_in(&name, &endpoint.ifname);
        match endpoint.state {
            EndpointState::Detaching => {}
            EndpointState::Attached => assert!(
                link.is_some(),
                "{name} is recorded attached without its link"
            ),
            other => panic!("{name}'s record is {other:?} after the stopped batch"),
        }
        if name == "s2" {
            assert_eq!(endpoint.state, EndpointState::Detaching, "s2's record");
        }
    }
    lab.restore();
    let (listed, _) = agree(&lab, "sm", Depth::Deep, "the stopped batch and restore");
    let still = on_sn(&listed);
    assert!(reached.contains(&"s2"), "{reached:?}");
    assert!(
        !still.iter().any(|name| reached.contains(name)),
        "{reached:?} are detached after restore: {listed:?}"
    );
    if !still.is_empty() {
        lab.ok(&args(&format!("network disconnect sn {}", still.join(" "))));
    }
    let (listed, _) = agree(&lab, "sm", Depth::Quick, "the rest disconnected");
    assert!(on_sn(&listed).is_empty(), "{listed:?}");
    for name in members {
        lab.ok(&args(&format!("rm -f {name}")));
    }
    lab.ok(&args("network rm sn"));
    lab.ok(&args("network rm sm"));
}

/// Item: a batch refused after its links were made (here a view it cannot
/// write: `/etc/netns/b2` read-only) leaves everything as it found it, as a
/// batch refused before its creates does. Its links, records and
/// addresses were undone, but the cursor kept the addresses it had handed
/// out (so the next attach skipped them), and the `/etc/netns` view made
/// for b1 was made again rather than taken away: the undo counted b1's
/// endpoint as still attached. Killed at each point of that refusal,
/// `restore` leaves kernel and state agreeing; killed once b1's link was
/// undone, it finishes the undo (the undo now writes b1's record
/// `detaching` first) where it used to make b1's link anew.
#[test]
fn a_batch_refused_after_its_creates_leaves_the_cursor_and_views_as_found() {
    foreign_things();
    let lab = Lab::new("batch-cursor");
    lab.ok(&args("network create --subnet 10.59.0.0/24 rb"));
    for ns in ["b1", "b2"] {
        let _ = vm_support::ip_ok(&["netns", "del", ns]);
        ip(&["netns", "add", ns]);
    }
    // The cursor file exists once an address was handed out.
    lab.ok(&args("network connect rb b1"));
    lab.ok(&args("network disconnect rb b1"));
    let state = StateDir::open(lab.state_dir()).unwrap();
    let networks = state.networks().unwrap().complete().unwrap();
    let id = &networks.iter().find(|n| n.name == "rb").unwrap().id;
    let cursor = lab
        .state_dir()
        .join("ipam")
        .join(id)
        .join("10.59.0.0-24")
        .join("cursor");
    let before = fs::read(&cursor).expect("the subnet's cursor");
    assert!(
        !Path::new(ETC_NETNS_DIR).join("b1").exists(),
        "b1's view after its disconnect"
    );
    let view = Path::new(ETC_NETNS_DIR).join("b2");
    fs::create_dir_all(&view).unwrap();
    read_only(&view);
    let out = lab.output(&mut lab.command(&args("network connect rb b1 b2")));
    let after = fs::read(&cursor).ok();
    let _ = Command::new("umount").arg(&view).status();
    let _ = fs::remove_dir(&view);
    assert_ne!(
        out.status.code(),
        Some(0),
        "the batch was to be refused at b2's view"
    );
    assert!(
        text(&out.stderr).contains("b2"),
        "the refusal names b2: {}",
        text(&out.stderr)
    );
    assert_eq!(
        after.as_deref(),
        Some(&before[..]),
        "the refused batch moved the cursor ({})",
        text(&out.stderr).trim()
    );
    // Nothing else of the batch is left either.
    let b1_view = Path::new(ETC_NETNS_DIR).join("b1");
    assert!(
        !b1_view.exists(),
        "{} left by the refused batch",
        b1_view.display()
    );
    assert!(link_in("b1", "eth0").is_none(), "b1's eth0 left");

    // The same refusal killed at each of its points: after restore b1 is
    // attached with its link or neither, never attached again (its link
    // made anew) after its undo had begun.
    let refused = args("network connect rb b1 b2");
    fs::create_dir_all(&view).unwrap();
    read_only(&view);
    let records = lab.state_dir().join("endpoints").join(id);
    let recorded = || fs::read_dir(&records).map_or(0, |d| d.count());
    let _ = fs::remove_file(lab.count_file());
    let mut counting = lab.command(&refused);
    counting.env(COUNT_ENV, lab.count_file());
    let out = lab.output(&mut counting);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let points = lab.counted().len();
    // Kills that leave b1's record with its link already deleted: the
    // window the undo's on-disk `detaching` is for.
    let mut undone_then_killed = 0;
    let on_rb = || -> BTreeSet<String> {
        let listed = json::parse(&lab.ok(&args("network inspect rb"))).expect("JSON");
        match listed.as_array().expect("array")[0].get("Containers") {
            Some(Value::Object(fields)) => fields.iter().map(|(k, _)| k.clone()).collect(),
            _ => BTreeSet::new(),
        }
    };
    for n in 1..=points {
        if n > 1 {
            read_only(&view);
        }
        let passed = lab.kill_at(&refused, n);
        let after = format!("refused batch killed at hit {n} ({})", passed[n - 1]);
        let made = passed.iter().any(|p| p.as_str() == "netlink: after acks");
        let undoing = made && link_in("b1", "eth0").is_none() && recorded() > 0;
        undone_then_killed += usize::from(undoing);
        // The view writable again, so that restore can finish whatever
        // the kill left attached.
        let _ = Command::new("umount").arg(&view).status();
        lab.restore();
        // Killed before the refusal or during its undo, the batch is
        // undone whole (its intents are still there): nothing attached,
        // and kernel and state agree.
        let attached = on_rb();
        assert!(
            attached.is_empty(),
            "{after}: a batch is all or nothing, yet {attached:?} stayed attached"
        );
        // Its undo begun, the refusal is finished, not b1's link made anew.
        assert!(
            !(undoing && attached.contains("b1")),
            "{after}: killed with b1's link undone, restore attached b1 again"
        );
        for ns in ["b1", "b2"] {
            let linked = link_in(ns, "eth0").is_some();
            assert_eq!(
                linked,
                attached.contains(ns),
                "{after}: {ns} has an eth0: {linked}; attached to rb: {attached:?}"
            );
            if linked {
                lab.ok(&args(&format!("network disconnect rb {ns}")));
            }
        }
    }
    let _ = fs::remove_dir(&view);
    show(&format!(
        "refused batch walked at {points} kill points, {undone_then_killed} with b1's link undone and its record left"
    ));
    assert!(
        undone_then_killed > 0,
        "no kill fell between an undone link and its record's removal"
    );
    lab.ok(&args("network connect rb b1"));
    lab.ok(&args("network disconnect rb b1"));
    for ns in ["b1", "b2"] {
        ip(&["netns", "del", ns]);
    }
    lab.ok(&args("network rm rb"));
}

/// Bind-mounts `dir` on itself read-only (undone by `umount dir`).
fn read_only(dir: &Path) {
    let dir = dir.to_str().unwrap();
    for options in [
        &["--bind", dir, dir][..],
        &["-o", "remount,ro,bind", dir, dir],
    ] {
        assert!(Command::new("mount")
            .args(options)
            .status()
            .unwrap()
            .success());
    }
}

/// A batch disconnect that detached every target but could not take their
/// lines out of the network's hosts file (read-only here) says that every
/// target went, and that restore rebuilds the file; nothing is left
/// attached. Before, it failed with the file's error alone, as if nothing
/// was done, and a retry found none attached.
#[test]
fn a_batch_disconnect_whose_hosts_file_is_read_only_says_every_target_went() {
    let lab = Lab::new("batch-hosts-ro");
    lab.ok(&args("network create --subnet 10.62.0.0/24 hr"));
    for ns in ["h1", "h2"] {
        let _ = vm_support::ip_ok(&["netns", "del", ns]);
        ip(&["netns", "add", ns]);
    }
    lab.ok(&args("network connect hr h1 h2"));
    let state = StateDir::open(lab.state_dir()).unwrap();
    let network = state.network_by_name("hr").unwrap();
    let hosts = state.hosts_path(&network.id);
    read_only(&hosts);
    let out = lab.output(&mut lab.command(&args("network disconnect hr h1 h2")));
    assert!(Command::new("umount")
        .arg(&hosts)
        .status()
        .unwrap()
        .success());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "every target detached from network hr, but its hosts file was not brought up to date"
        ),
        "{stderr}"
    );
    for ns in ["h1", "h2"] {
        assert!(records_in(&lab, "hr", ns).is_empty(), "{ns} still recorded");
        assert_eq!(links_of(ns).len(), 1, "{ns}: {:?}", links_of(ns));
    }
    lab.restore();
    let text_now = fs::read_to_string(&hosts).unwrap();
    assert!(
        !text_now
            .lines()
            .any(|l| l.ends_with("\th1") || l.ends_with("\th2")),
        "{text_now}"
    );
    for ns in ["h1", "h2"] {
        ip(&["netns", "del", ns]);
    }
    lab.ok(&args("network rm hr"));
}

/// Item: a batch whose every create was refused at the index it asked
/// for (forced: each link is then made under a temporary name, its record
/// naming no index) and which is then refused itself (b2's view
/// read-only), killed at any point past its creates: `restore` deletes no
/// link at an index a create of it was refused, here another tool's
/// ipvlan link made there (on the same parent, in the same namespace)
/// while the batch lay killed. A failed batch used to give its endpoints'
/// own records back before it removed `batch-intents`: killed between,
/// the next lock brought back their intents from the file's lines, which
/// name the first index asked for, and restore deleted the link there;
/// and when the file's removal failed, it gave them back all the same.
#[test]
fn a_refused_batch_killed_anywhere_never_deletes_a_link_at_an_index_it_was_refused() {
    const FORCE: &str = "endpoint: every index taken";
    foreign_things();
    let lab = Lab::new("batch-refused-index");
    lab.ok(&args("network create --subnet 10.61.0.0/24 ri"));
    let parent = parent_of(&lab, "ri");
    for ns in ["b1", "b2"] {
        let _ = vm_support::ip_ok(&["netns", "del", ns]);
        ip(&["netns", "add", ns]);
    }
    let view = Path::new(ETC_NETNS_DIR).join("b2");
    fs::create_dir_all(&view).unwrap();
    let refused = args("network connect ri b1 b2");
    // The network's allocation cursor, made by its first allocation, as
    // every run after a kill finds it: a refused batch puts the cursor
    // back as it found it, and takes away one it found missing.
    lab.ok(&args("network connect ri b1"));
    lab.ok(&args("network disconnect ri b1"));
    read_only(&view);
    // Once before counting, so that directories made on first use exist
    // for every run.
    let mut warm_up = lab.command(&refused);
    warm_up.env(FORCE_ENV, FORCE);
    assert_ne!(lab.output(&mut warm_up).status.code(), Some(0));
    let _ = fs::remove_file(lab.count_file());
    let mut counting = lab.command(&refused);
    counting
        .env(COUNT_ENV, lab.count_file())
        .env(FORCE_ENV, FORCE);
    let out = lab.output(&mut counting);
    assert_ne!(out.status.code(), Some(0), "the batch was to be refused");
    assert!(text(&out.stderr).contains("b2"), "{}", text(&out.stderr));
    let points = lab.counted().len();
    let intents_file = lab.state_dir().join("batch-intents");
    let mut planted_in_all = 0;
    // Another tool's link planted at each index a line of the file names
    // (past the creates, each was refused: another's may stand there),
    // then restore, which must leave them; how many were planted.
    let plant_then_restore = |after: &str, past_creates: bool| -> usize {
        let lines = fs::read_to_string(&intents_file).unwrap_or_default();
        let mut planted = Vec::new();
        for line in lines.lines().filter(|_| past_creates) {
            let Ok(intent) = json::parse(line) else {
                continue;
            };
            let (Some(index), Some(path)) = (
                intent.get("ifindex").and_then(Value::as_u64),
                intent.get("netns").and_then(Value::as_str),
            ) else {
                continue;
            };
            let ns = path.rsplit('/').next().unwrap().to_string();
            if links_of(&ns).values().any(|(at, _)| *at == index) {
                continue;
            }
            let name = format!("their{}", planted.len());
            let index_text = index.to_string();
            ip(&[
                "link",
                "add",
                "link",
                &parent,
                "name",
                &name,
                "index",
                &index_text,
                "type",
                "ipvlan",
                "mode",
                "l2",
            ]);
            ip(&["link", "set", &name, "netns", &ns]);
            if link_in(&ns, &name).map(|(at, _)| at) == Some(index) {
                planted.push((ns, name, index));
            } else {
                ip(&["-n", &ns, "link", "del", &name]);
            }
        }
        let _ = Command::new("umount").arg(&view).status();
        lab.restore();
        for (ns, name, index) in &planted {
            assert_eq!(
                link_in(ns, name),
                Some((*index, "ipvlan".to_string())),
                "{after}: restore deleted another tool's link {name} in {ns}, at index {index}, which the batch's create was refused"
            );
            ip(&["-n", ns, "link", "del", name]);
        }
        for ns in ["b1", "b2"] {
            if !records_in(&lab, "ri", ns).is_empty() {
                lab.ok(&args(&format!("network disconnect ri {ns}")));
            }
        }
        planted.len()
    };
    for n in 1..=points {
        if n > 1 {
            read_only(&view);
        }
        let passed = lab.kill_at_forced(&refused, n, Some(FORCE));
        let after = format!("refused batch killed at hit {n} ({})", passed[n - 1]);
        let past_creates = passed.iter().any(|p| p.starts_with("etc netns"));
        planted_in_all += plant_then_restore(&after, past_creates);
    }
    // Not killed, but the file's removal refused (a disk refusing writes):
    // its endpoints stay with it, for restore, rather than give back the
    // records that shadow its lines.
    read_only(&view);
    let mut stays = lab.command(&refused);
    stays.env(FORCE_ENV, format!("{FORCE},store: batch intents stay"));
    let out = lab.output(&mut stays);
    assert_ne!(out.status.code(), Some(0), "the batch was to be refused");
    assert!(
        intents_file.exists(),
        "batch-intents removed, though refused"
    );
    assert!(
        text(&out.stderr).contains("for `ipvlan restore` to undo"),
        "{}",
        text(&out.stderr)
    );
    let planted = plant_then_restore("refused batch whose batch-intents stayed", true);
    assert!(
        planted > 0,
        "no link planted at an index batch-intents named"
    );
    let _ = fs::remove_dir(&view);
    show(&format!(
        "refused batch (every index taken) walked at {points} kill points; another tool's link planted {planted_in_all} times at an index a line named"
    ));
    assert!(
        planted_in_all > 0,
        "no kill past the creates left batch-intents behind"
    );
    for ns in ["b1", "b2"] {
        ip(&["netns", "del", ns]);
    }
    lab.ok(&args("network rm ri"));
}

/// The ways `restore` re-makes an attached endpoint's missing link: with
/// an ifindex of its choosing, and (forced) under a temporary name, as
/// when every index it tried was taken.
const REMAKES: [Option<&str>; 2] = [None, Some("endpoint: every index taken")];

/// `restore`, counted, forced down `force` and killed at hit `kill` when
/// given: its output and the points it passed.
fn restore_run(lab: &Lab, force: Option<&str>, kill: Option<usize>) -> (Output, Vec<String>) {
    let _ = fs::remove_file(lab.count_file());
    let mut command = lab.command(&args("restore"));
    command.env(COUNT_ENV, lab.count_file());
    if let Some(force) = force {
        command.env(FORCE_ENV, force);
    }
    if let Some(n) = kill {
        command.env(KILL_AT_ENV, n.to_string());
    }
    let out = lab.output(&mut command);
    (out, lab.counted())
}

/// `eth0` of `ns` as iproute2 reads it: its ifindex, then what makes it
/// usable (its global addresses, whether it is up, its IPv4 default
/// routes).
type Seen = (u64, (Vec<String>, bool, Vec<(Option<String>, String)>));

fn eth0_of(ns: &str) -> Option<Seen> {
    let link = vm_support::link(Some(ns), "eth0")?;
    let index = link.get("ifindex")?.as_u64()?;
    let up = vm_support::link_flags(&link).iter().any(|f| f == "UP");
    let usable = (
        vm_support::addresses(ns, "eth0"),
        up,
        vm_support::default_routes(ns, "-4"),
    );
    Some((index, usable))
}

/// Item: `restore` re-making the missing link of an attached endpoint,
/// killed at any point, leaves the endpoint attached (`network inspect`
/// and the namespace's hosts view keep it) and a record that says the
/// link is being made again (`relinking`), never an `attached` one: the
/// next `restore` deletes the half-made link (by the index recorded, or
/// its temporary name) and makes it whole (address, up, default route),
/// and a `network disconnect` deletes no link by name alone. Walked at
/// every kill point of restore: with another tool's ipvlan `eth0` on our
/// parent in place of ours from the start (restore makes nothing, and
/// says the name is taken); with the name free and every index taken
/// (forced: the link is made under a temporary name), another tool then
/// taking the name while restore lies killed, before a disconnect or a
/// restore; with no other tool, both ways of making the link, before a
/// second restore. A disconnect of the record left without an index,
/// killed once its intent is written, is finished by restore without
/// taking their link by its name. Their link keeps its ifindex, none of
/// ours is left under a temporary name.
#[test]
fn restore_killed_while_remaking_a_link_keeps_the_endpoint_and_never_takes_another_tools() {
    foreign_things();
    let lab = Lab::new("relink");
    // A parent of its own (not an internal network's): its endpoints get
    // a default route, which a whole link has.
    lab.ok(&args(&format!(
        "network create --subnet 10.58.0.0/16 -o parent={TRUNK}.58 rl"
    )));
    let parent = parent_of(&lab, "rl");
    ip(&["netns", "add", "r1"]);
    let connect = args("network connect rl r1");
    let disconnect = args("network disconnect rl r1");
    let inspect = args("network inspect rl");
    let view = Path::new(ETC_NETNS_DIR).join("r1").join("hosts");
    lab.ok(&connect);
    let mut problems: Vec<String> = Vec::new();
    let only = |theirs: Option<u64>| {
        let mut links = BTreeMap::from([("lo".to_string(), (1, String::new()))]);
        if let Some(index) = theirs {
            links.insert("eth0".to_string(), (index, "ipvlan".to_string()));
        }
        links
    };
    // The address our endpoint holds, in the notation `inspect` and the
    // hosts view use.
    let attached = |lab: &Lab| -> Option<(String, String)> {
        let [record] = <[_; 1]>::try_from(records_in(lab, "rl", "r1")).ok()?;
        let address = record.ipv4?;
        Some((address.to_string(), address.addr().to_string()))
    };
    let held = |lab: &Lab| {
        let state = StateDir::open(lab.state_dir()).unwrap();
        let networks = state.networks().unwrap().complete().unwrap();
        let network = networks.iter().find(|n| n.name == "rl").unwrap();
        state.addresses(network).unwrap()
    };
    // What must be true of an endpoint a killed restore left: attached,
    // and listed as such.
    let still_attached = |lab: &Lab, after: &str, problems: &mut Vec<String>| {
        let records = records_in(lab, "rl", "r1");
        let Some((net, addr)) = attached(lab) else {
            problems.push(format!("{after}: records {records:?}"));
            return;
        };
        // By its text, which records hold.
        if !["attached", "relinking"].contains(&records[0].state.as_str()) {
            problems.push(format!("{after}: record {:?}", records[0].state));
        }
        if !lab.ok(&inspect).contains(&net) {
            problems.push(format!("{after}: inspect does not list {net}"));
        }
        let hosts = fs::read_to_string(&view).unwrap_or_default();
        if !hosts.lines().any(|line| line == format!("{addr}\tr1")) {
            problems.push(format!("{after}: hosts view {hosts:?}"));
        }
    };
    // What a disconnect must do, whatever the record a killed restore
    // left: release the endpoint, leave their link, and none of ours.
    let disconnected = |lab: &Lab, after: &str, theirs: Option<u64>, problems: &mut Vec<String>| {
        let out = lab.output(&mut lab.command(&disconnect));
        let links = links_of("r1");
        if out.status.code() != Some(0) || links != only(theirs) {
            problems.push(format!(
                "{after}, then disconnect (exit {:?}: {}): links {links:?}, their eth0 {theirs:?}",
                out.status.code(),
                text(&out.stderr).trim()
            ));
        }
        if !records_in(lab, "rl", "r1").is_empty() || !held(lab).is_empty() {
            problems.push(format!("{after}, then disconnect: record or address left"));
        }
    };
    // Every run from the same state passes the same points: one that
    // ends before hit `n` found another state (a problem of its own).
    let killed =
        |out: &Output, n: usize, passed: &[String], what: &str, problems: &mut Vec<String>| {
            match passed.get(n - 1) {
                Some(point) if out.status.signal() == Some(libc::SIGKILL) => {
                    format!("{what} killed at hit {n} ({point})")
                }
                // Every run from the same state passes the same points.
                _ => {
                    let after = format!(
                        "{what} not killed at hit {n}: it passed only {} ({:?}: {})",
                        passed.len(),
                        out.status.code(),
                        text(&out.stderr).trim()
                    );
                    problems.push(after.clone());
                    after
                }
            }
        };

    // Another tool's eth0 on our parent in place of ours: nothing made.
    let replace = || {
        ip(&["-n", "r1", "link", "del", "eth0"]);
        their_ipvlan("r1", &parent, "eth0").expect("eth0 is free")
    };
    let mut theirs = replace();
    let (out, hits) = restore_run(&lab, None, None);
    let stderr = text(&out.stderr);
    let said = format!("r1: name eth0 taken by another link (index {theirs}) in namespace /run/netns/r1; endpoint kept");
    if out.status.code() != Some(1)
        || !stderr.contains(&said)
        || links_of("r1") != only(Some(theirs))
    {
        problems.push(format!(
            "restore beside their eth0 (exit {:?}): {stderr}; links {:?}",
            out.status.code(),
            links_of("r1")
        ));
    }
    still_attached(&lab, "restore beside their eth0", &mut problems);
    // Each walked restore starts where the counted one did: after a
    // connect, whose entry is in the commit log (which the counted restore
    // emptied, a step of its own).
    let _ = lab.output(&mut lab.command(&disconnect));
    vm_support::ip_ok(&["-n", "r1", "link", "del", "eth0"]);
    lab.ok(&connect);
    theirs = replace();
    for n in 1..=hits.len() {
        let (out, passed) = restore_run(&lab, None, Some(n));
        let after = killed(&out, n, &passed, "restore beside their eth0", &mut problems);
        disconnected(&lab, &after, Some(theirs), &mut problems);
        // Theirs, unless the disconnect took it (counted above).
        vm_support::ip_ok(&["-n", "r1", "link", "del", "eth0"]);
        lab.ok(&connect);
        theirs = replace();
    }
    disconnected(
        &lab,
        "restore beside their eth0",
        Some(theirs),
        &mut problems,
    );
    ip(&["-n", "r1", "link", "del", "eth0"]);
    lab.ok(&connect);

    // The name free, every index taken; another tool takes the name
    // while restore lies killed, if ours does not hold it yet.
    let force = REMAKES[1];
    ip(&["-n", "r1", "link", "del", "eth0"]);
    let (out, hits) = restore_run(&lab, force, None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Kills that left a record naming no index (the link under its
    // temporary name) when another tool took the name.
    let mut unproven = 0;
    let mut killed_disconnects = 0;
    for n in 1..=hits.len() {
        for then_restore in [false, true] {
            ip(&["-n", "r1", "link", "del", "eth0"]);
            let (out, passed) = restore_run(&lab, force, Some(n));
            let after = killed(
                &out,
                n,
                &passed,
                "restore under a temporary name",
                &mut problems,
            );
            still_attached(&lab, &after, &mut problems);
            let record: Vec<_> = records_in(&lab, "rl", "r1")
                .into_iter()
                .map(|r| (r.state.as_str(), r.ifindex, r.ifname))
                .collect();
            let ours = link_in("r1", "eth0");
            let theirs = match ours {
                None => their_ipvlan("r1", &parent, "eth0"),
                Some(_) => None,
            };
            let after = format!("{after}, their eth0 made after it: {theirs:?}; record {record:?}");
            let unproven_here =
                theirs.is_some() && matches!(record.as_slice(), [("relinking", None, _)]);
            if unproven_here {
                unproven += 1;
            }
            if unproven_here && !then_restore {
                // A disconnect killed once its intent is written (its
                // first write): restore finishes it by the intent, which
                // must name no link it could take by name. In turn a
                // single disconnect and a batch's (with a second target,
                // whose link goes), whose intents are a file of their own.
                killed_disconnects += 1;
                let batch = killed_disconnects % 2 == 0;
                let command = match batch {
                    true => {
                        ip(&["netns", "add", "r2"]);
                        lab.ok(&args("network connect rl r2"));
                        args("network disconnect rl r1 r2")
                    }
                    false => disconnect.clone(),
                };
                let passed = lab.kill_at_point(&command, "store: after write", 1);
                let out = lab.output(&mut lab.command(&args("restore")));
                let links = links_of("r1");
                let second_left = batch
                    && (links_of("r2").len() != 1 || !records_in(&lab, "rl", "r2").is_empty());
                if batch {
                    ip(&["netns", "del", "r2"]);
                }
                if links != only(theirs)
                    || second_left
                    || !records_in(&lab, "rl", "r1").is_empty()
                    || !held(&lab).is_empty()
                {
                    problems.push(format!(
                        "{after}, then a disconnect (batch: {batch}, its second target left: {second_left}) killed after {passed:?} and restore (exit {:?}: {}): links {links:?}, records {:?}",
                        out.status.code(),
                        text(&out.stderr).trim(),
                        records_in(&lab, "rl", "r1").len()
                    ));
                }
                vm_support::ip_ok(&["-n", "r1", "link", "del", "eth0"]);
                lab.ok(&connect);
                continue;
            }
            if then_restore {
                let out = lab.output(&mut lab.command(&args("restore")));
                let stderr = text(&out.stderr);
                let after = format!(
                    "{after}, then restore (exit {:?}: {stderr})",
                    out.status.code()
                );
                let links = links_of("r1");
                match theirs {
                    Some(theirs) => {
                        let said = format!("name eth0 taken by another link (index {theirs})");
                        if out.status.code() != Some(1)
                            || !stderr.contains(&said)
                            || links != only(Some(theirs))
                        {
                            problems.push(format!("{after}: links {links:?}"));
                        }
                    }
                    None => {
                        if out.status.code() != Some(0) || links.len() != 2 {
                            problems.push(format!("{after}: links {links:?}"));
                        }
                    }
                }
                still_attached(&lab, &after, &mut problems);
            }
            disconnected(&lab, &after, theirs, &mut problems);
            if theirs.is_some() {
                vm_support::ip_ok(&["-n", "r1", "link", "del", "eth0"]);
            }
            lab.ok(&connect);
        }
    }

    // No other tool, both ways: a second restore makes the link whole.
    let whole = eth0_of("r1").expect("connect made eth0").1;
    assert!(
        whole.0.len() == 1 && whole.1 && whole.2.len() == 1,
        "{whole:?}"
    );
    // Kills that left a link of ours at the index a `relinking` record
    // names: made, not yet whole or not yet recorded so.
    let mut half_made = 0;
    for force in REMAKES {
        ip(&["-n", "r1", "link", "del", "eth0"]);
        let (out, hits) = restore_run(&lab, force, None);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        for n in 1..=hits.len() {
            // Ours, unless the last restore did not make it (counted).
            vm_support::ip_ok(&["-n", "r1", "link", "del", "eth0"]);
            let (out, passed) = restore_run(&lab, force, Some(n));
            let after = killed(
                &out,
                n,
                &passed,
                &format!("restore ({force:?})"),
                &mut problems,
            );
            still_attached(&lab, &after, &mut problems);
            if let [record] = records_in(&lab, "rl", "r1").as_slice() {
                let made = record.ifindex.map(u64::from);
                if record.state.as_str() == "relinking"
                    && links_of("r1")
                        .values()
                        .any(|(index, _)| Some(*index) == made)
                {
                    half_made += 1;
                }
            }
            let out = lab.output(&mut lab.command(&args("restore")));
            let seen = eth0_of("r1");
            let record: Vec<_> = records_in(&lab, "rl", "r1")
                .into_iter()
                .map(|r| (r.state.as_str(), r.ifindex, r.ifname))
                .collect();
            let recorded = record
                .first()
                .filter(|r| r.0 == "attached")
                .and_then(|r| r.1)
                .map(u64::from);
            if out.status.code() != Some(0)
                || seen.as_ref().map(|(_, usable)| usable) != Some(&whole)
                || seen.as_ref().map(|(index, _)| *index) != recorded
                || links_of("r1").len() != 2
            {
                problems.push(format!(
                    "{after}, then restore ({:?}: {}): eth0 {seen:?}, not {whole:?}; record {record:?}; links {:?}",
                    out.status.code(),
                    text(&out.stdout).trim(),
                    links_of("r1")
                ));
            }
        }
    }
    show(&format!(
        "restore re-making a link: killed {unproven} times with no index recorded before another tool took the name, {half_made} times with the link made"
    ));
    for problem in &problems {
        show(problem);
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    // Neither walk missed what it is for.
    assert!(
        unproven > 0 && half_made > 0 && killed_disconnects > 1,
        "{unproven} {half_made} {killed_disconnects}"
    );
    lab.ok(&disconnect);
    ip(&["netns", "del", "r1"]);
    lab.ok(&args("network rm rl"));
}

/// A connect killed after its create leaves its intent in the commit log;
/// should the next lock fail to make it a record, `network rm` sees no
/// endpoint record. It must not remove the network: on a parent of
/// another tool's, the link the connect made would be left to nobody.
#[test]
fn network_rm_keeps_a_network_whose_attach_intent_is_not_yet_a_record() {
    // Before: `network rm` removed the network, and the next lock dropped
    // the intent (its network had no record); the link stayed in ai1.
    let lab = Lab::new("attach-intent");
    let _ = vm_support::ip_ok(&["link", "del", "aip0"]);
    ip(&["link", "add", "aip0", "type", "dummy"]);
    ip(&["link", "set", "aip0", "up"]);
    lab.ok(&args(
        "network create --subnet 10.44.0.0/16 -o parent=aip0 ai",
    ));
    assert!(vm_support::ip_ok(&["netns", "add", "ai1"]));
    let ours = || -> Vec<String> {
        links_of("ai1")
            .into_iter()
            .filter(|(_, (_, kind))| kind == "ipvlan")
            .map(|(name, _)| name)
            .collect()
    };
    let passed = lab.kill_at_point(&args("network connect ai ai1"), "netlink: after acks", 1);
    assert_eq!(
        passed.last().map(String::as_str),
        Some("netlink: after acks"),
        "{passed:?}"
    );
    assert_eq!(ours().len(), 1, "the killed connect made its link");

    let mut command = lab.command(&args("network rm ai"));
    command.env(FORCE_ENV, "store: attach intent not written");
    let out = lab.output(&mut command);
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("may have an endpoint no record names yet"),
        "{said}"
    );
    assert!(lab.network_names().contains("ai"), "{said}");
    assert_eq!(ours().len(), 1);

    // Once the intent is a record, restore undoes the attach.
    lab.restore();
    assert!(ours().is_empty(), "{:?}", links_of("ai1"));
    lab.ok(&args("network rm ai"));
    assert!(vm_support::ip_ok(&["netns", "del", "ai1"]));
    ip(&["link", "del", "aip0"]);
}

/// A connect again after a killed connect or disconnect names the endpoint
/// the kill left (`attaching`, `detaching`) and what repairs it, singly and
/// in a batch, as `network rm` does; once `restore` ran, the connect works.
#[test]
fn a_connect_after_a_killed_one_names_the_interrupted_endpoint() {
    // Before: "container ki1 is already connected to network ki", of a
    // container whose link the killed command may never have made.
    let lab = Lab::new("interrupted-again");
    lab.ok(&args("network create --subnet 10.47.0.0/16 ki"));
    for ns in ["ki1", "ki2"] {
        ip(&["netns", "add", ns]);
    }
    let connect = args("network connect ki ki1");
    let disconnect = args("network disconnect ki ki1");
    let refused = |command: &[String], state: &str| {
        let out = lab.output(&mut lab.command(command));
        let said = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{said}");
        let wanted = format!(
            "container ki1 has an endpoint on network ki left {state} by an interrupted command; run `ipvlan restore` to finish it"
        );
        assert!(said.contains(&wanted), "{said}");
        assert!(!said.contains("already connected"), "{said}");
    };
    for (killed, state) in [(&connect, "attaching"), (&disconnect, "detaching")] {
        if state == "detaching" {
            lab.ok(&connect);
        }
        let passed = lab.kill_at_point(killed, "netlink: after acks", 1);
        assert_eq!(
            passed.last().map(String::as_str),
            Some("netlink: after acks"),
            "{passed:?}"
        );
        refused(&connect, state);
        refused(&args("network connect ki ki2 ki1"), state);
        assert!(
            links_of("ki2").values().all(|(_, kind)| kind != "ipvlan"),
            "the refused batch attached ki2: {:?}",
            links_of("ki2")
        );
        lab.restore();
        lab.ok(&connect);
        lab.ok(&disconnect);
    }
    for ns in ["ki1", "ki2"] {
        ip(&["netns", "del", ns]);
    }
    lab.ok(&args("network rm ki"));
}

/// A disconnect whose look at the parent fails changes nothing: the
/// endpoint stays attached (a connect again says so), and `restore`
/// keeps it. Before, the look came after the intent was written: the
/// record was left `detaching` with nothing done, and `restore` finished
/// the detach the user was told had failed.
#[test]
fn a_disconnect_whose_parent_lookup_fails_leaves_the_endpoint_attached() {
    let lab = Lab::new("detach-lookup");
    lab.ok(&args("network create --subnet 10.48.0.0/16 dl"));
    ip(&["netns", "add", "dl1"]);
    lab.ok(&args("network connect dl dl1"));
    let mut command = lab.command(&args("network disconnect dl dl1"));
    command.env(FORCE_ENV, "detach: parent lookup lost");
    let out = lab.output(&mut command);
    let said = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("looking up parent"), "{said}");
    let connected = |lab: &Lab| {
        let out = lab.output(&mut lab.command(&args("network connect dl dl1")));
        let said = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(
            said.contains("container dl1 is already connected to network dl"),
            "{said}"
        );
    };
    connected(&lab);
    lab.restore();
    connected(&lab);
    assert!(
        links_of("dl1").values().any(|(_, kind)| kind == "ipvlan"),
        "{:?}",
        links_of("dl1")
    );
    lab.ok(&args("network disconnect dl dl1"));
    ip(&["netns", "del", "dl1"]);
    lab.ok(&args("network rm dl"));
}

/// A batch disconnect that detached every target, whose file of intents
/// the disk then refused to remove, succeeds: the next command's lock
/// passes over its lines (no record names them) and removes it. Before,
/// the batch reported the file's error, and a retry said "not connected".
#[test]
fn a_batch_detach_whose_intents_file_stays_reports_success() {
    let lab = Lab::new("detach-intents");
    lab.ok(&args("network create --subnet 10.49.0.0/16 di"));
    for ns in ["di1", "di2"] {
        ip(&["netns", "add", ns]);
    }
    lab.ok(&args("network connect di di1 di2"));
    let mut command = lab.command(&args("network disconnect di di1 di2"));
    command.env(FORCE_ENV, "store: batch intents stay");
    let out = lab.output(&mut command);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for ns in ["di1", "di2"] {
        assert!(
            links_of(ns).values().all(|(_, kind)| kind != "ipvlan"),
            "{:?}",
            links_of(ns)
        );
    }
    // The next command (its lock) takes the file away, and can attach.
    lab.ok(&args("network connect di di1 di2"));
    assert!(!lab.state_dir().join("batch-intents").exists());
    lab.ok(&args("network disconnect di di1 di2"));
    for ns in ["di1", "di2"] {
        ip(&["netns", "del", ns]);
    }
    lab.ok(&args("network rm di"));
}

/// A batch connect whose file of intents the disk refuses to remove once
/// every endpoint is finished is refused and undone whole: its links
/// deleted, nothing left attached, and after `restore` the same command
/// succeeds. Before, it reported success with its file left behind, whose
/// lines the next lock, which undoes a dead batch whole, would have taken
/// for a batch that died.
#[test]
fn a_batch_connect_whose_intents_file_stays_is_undone_whole() {
    batch_connect_whose_intents_file_is_refused("ci", "10.50.0.0/16", "store: batch intents stay");
}

/// A batch connect whose file of intents the disk refuses to remove once,
/// then lets go (the undo's own removal goes through), is refused and
/// gives everything back there and then: no link, no record, no intents
/// file, and the same command succeeds with no `restore` between.
#[test]
fn a_batch_connect_whose_intents_file_goes_at_the_second_try_gives_all_back() {
    batch_connect_whose_intents_file_is_refused(
        "co",
        "10.51.0.0/16",
        "store: batch intents stay#1",
    );
}

/// A batch connect of two namespaces on network `net` (of `subnet`), its
/// intents file's removal refused as `force` says: every time (its
/// endpoints then stay with the file, for `restore`, and the error says
/// so) or once (everything is given back there and then). Either way the
/// batch is refused with no link left; after `restore` where it was
/// needed, the same command succeeds.
fn batch_connect_whose_intents_file_is_refused(net: &str, subnet: &str, force: &str) {
    let left_for_restore = !force.contains('#');
    let lab = Lab::new(&format!("connect-intents-{net}"));
    lab.ok(&args(&format!("network create --subnet {subnet} {net}")));
    let members = [format!("{net}1"), format!("{net}2")];
    for ns in &members {
        ip(&["netns", "add", ns]);
    }
    let connect = args(&format!("network connect {net} {}", members.join(" ")));
    let mut command = lab.command(&connect);
    command.env(FORCE_ENV, force);
    let out = lab.output(&mut command);
    let stderr = text(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(0),
        "reported attached with its intents left: {stderr}"
    );
    let intents_file = lab.state_dir().join("batch-intents");
    if left_for_restore {
        assert!(
            stderr.contains("left with its intents for `ipvlan restore` to undo"),
            "the refusal does not say what to do: {stderr}"
        );
    } else {
        assert!(
            !stderr.contains("ipvlan restore"),
            "all was given back: {stderr}"
        );
        assert!(!intents_file.exists());
    }
    for ns in &members {
        assert!(
            links_of(ns).values().all(|(_, kind)| kind != "ipvlan"),
            "{ns} kept a link of the refused batch: {:?}",
            links_of(ns)
        );
        if !left_for_restore {
            assert!(records_in(&lab, net, ns).is_empty(), "{ns} kept a record");
        }
    }
    if left_for_restore {
        lab.restore();
        assert!(!intents_file.exists());
    }
    lab.ok(&connect);
    for ns in &members {
        assert_eq!(records_in(&lab, net, ns).len(), 1, "{ns}");
        assert!(
            links_of(ns).values().any(|(_, kind)| kind == "ipvlan"),
            "{ns}: {:?}",
            links_of(ns)
        );
    }
    lab.ok(&args(&format!(
        "network disconnect {net} {}",
        members.join(" ")
    )));
    for ns in &members {
        ip(&["netns", "del", ns]);
    }
    lab.ok(&args(&format!("network rm {net}")));
}

/// A thread's way back to its own network namespace refused for want of
/// memory (pretended; since Linux 5.15 the kernel charges the move to the
/// memory cgroup) is tried again: refused once, the connect goes on and
/// succeeds; refused every time, the command aborts after its tries,
/// saying why, rather than going on in another namespace, and `restore`
/// repairs what it left. Before, the first refusal aborted.
#[test]
fn a_way_home_refused_for_memory_is_tried_again() {
    let lab = Lab::new("wayhome");
    lab.ok(&args("network create --subnet 10.52.0.0/16 wh"));
    for ns in ["wh1", "wh2"] {
        ip(&["netns", "add", ns]);
    }
    let mut once = lab.command(&args("network connect wh wh1"));
    once.env(FORCE_ENV, "netns: way home refused#1");
    let out = lab.output(&mut once);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(records_in(&lab, "wh", "wh1").len(), 1);
    // The work after the retried move was done at home: the link is in
    // wh1, and no ipvlan link is in the host's namespace.
    let ipvlans = |listed: BTreeMap<String, (u64, String)>| -> Vec<String> {
        listed
            .into_iter()
            .filter(|(_, (_, kind))| kind == "ipvlan")
            .map(|(name, _)| name)
            .collect()
    };
    assert_eq!(ipvlans(links_of("wh1")), ["eth0"]);
    let host = vm_support::ip_json(&["-d", "link", "show"]);
    let in_host: Vec<&Value> = host
        .as_array()
        .unwrap_or(&[])
        .iter()
        .filter(|l| vm_support::link_kind(l).as_deref() == Some("ipvlan"))
        .collect();
    assert!(in_host.is_empty(), "ipvlan links in the host: {in_host:?}");
    let mut always = lab.command(&args("network connect wh wh2"));
    always.env(FORCE_ENV, "netns: way home refused");
    let out = lab.output(&mut always);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{stderr}");
    assert!(
        stderr.contains("aborting rather than going on in another namespace")
            && stderr.contains("os error 12"),
        "{stderr}"
    );
    lab.restore();
    // What the abort left is repaired: wh2 attached whole or not at all.
    assert_eq!(
        records_in(&lab, "wh", "wh2").len(),
        ipvlans(links_of("wh2")).len(),
        "wh2 after restore: {:?}",
        links_of("wh2")
    );
    for ns in ["wh1", "wh2"] {
        if !records_in(&lab, "wh", ns).is_empty() {
            lab.ok(&args(&format!("network disconnect wh {ns}")));
        }
        ip(&["netns", "del", ns]);
    }
    lab.ok(&args("network rm wh"));
}

/// A disconnect killed between taking our `hosts` link out of the
/// container's `/etc/netns/NAME` and removing that directory leaves the
/// directory ours: a connect to another network before any `restore`
/// keeps it marked, and the container's removal takes it away. The link's
/// removal changed the directory's inode time, and the connect took the
/// directory for one made apart from our marker (another's), dropped the
/// marker, and the empty directory stayed after `rm`. One that holds an
/// admin's file is not ours, whatever the times say.
#[test]
fn a_view_a_killed_disconnect_left_stays_ours() {
    let lab = Lab::new("viewkept");
    lab.ok(&args("network create --subnet 10.47.0.0/16 vk"));
    lab.ok(&args("network create --subnet 10.48.0.0/16 vk2"));
    lab.ok(&args("run --net=vk --name=vk1 -d"));
    let view = Path::new(ETC_NETNS_DIR).join("vk1");
    assert!(view.join("hosts").exists(), "run made vk1's view");
    // Made a while before the disconnect, as a view in use is.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let passed = lab.kill_at_point(
        &args("network disconnect vk vk1"),
        "etc netns: before rmdir",
        1,
    );
    assert_eq!(
        passed.last().map(String::as_str),
        Some("etc netns: before rmdir"),
        "{passed:?}"
    );
    assert!(
        view.is_dir() && fs::symlink_metadata(view.join("hosts")).is_err(),
        "the killed disconnect took our link out and left the directory"
    );
    lab.ok(&args("network connect vk2 vk1"));
    lab.restore();
    lab.ok(&args("rm -f vk1"));
    assert!(
        fs::symlink_metadata(&view).is_err(),
        "rm left {}: {:?}",
        view.display(),
        dir_names(&view)
    );

    // One an admin put a file in is theirs from then on: the disconnect
    // cannot remove it, is killed before it drops the marker, and the
    // connect that finds it (its time and the touched marker's together)
    // drops the marker for the file; emptied later, `rm` leaves it.
    lab.ok(&args("run --net=vk --name=vk3 -d"));
    let theirs = Path::new(ETC_NETNS_DIR).join("vk3");
    fs::write(theirs.join("resolv.conf"), "nameserver 10.47.0.53\n").unwrap();
    lab.kill_at_point(
        &args("network disconnect vk vk3"),
        "etc netns: before unmark",
        1,
    );
    lab.ok(&args("network connect vk2 vk3"));
    lab.restore();
    fs::remove_file(theirs.join("resolv.conf")).unwrap();
    lab.ok(&args("rm -f vk3"));
    assert!(
        theirs.is_dir(),
        "rm took the directory an admin had put a file in"
    );
    fs::remove_dir(&theirs).unwrap();
    lab.ok(&args("network rm vk vk2"));
}
