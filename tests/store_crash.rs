//! The store under SIGKILL and under concurrent invocations. Children are
//! this test binary re-executed with `IPVLAN_TEST_CHILD` set, running the
//! same test function in child mode.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use common::{address_files, check_every_file_parses, network, TempDir};
use ipvlan::ipam::{IpFamily, Request};
use ipvlan::store::{EndpointState, Locked, NetworkRecord, StateDir, Timestamp};

const CHILD_ENV: &str = "IPVLAN_TEST_CHILD";

/// xorshift64*: enough randomness for kill delays and choices.
struct Rng(u64);

impl Rng {
    fn seeded() -> Rng {
        let t = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng(t ^ u64::from(std::process::id()) << 32 | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn spawn_child(test: &str, mode: &str, dir: &Path) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{mode}:{}", dir.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The `@@` lines a child printed, without the marker.
fn reports(text: &str) -> Vec<Vec<String>> {
    text.lines()
        .filter_map(|l| l.find("@@").map(|i| &l[i + 2..]))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
        .collect()
}

fn crash_network() -> NetworkRecord {
    // Small, so the cursor wraps many times and reuse is exercised.
    network("crashnet", &["10.77.0.0/26"])
}

/// What `restore` does for the store: finish or undo every pending endpoint.
fn repair(locked: &Locked<'_>, net: &NetworkRecord) {
    for ep in locked.endpoints_of(&net.id).unwrap() {
        match ep.state {
            EndpointState::Attached => {}
            EndpointState::Attaching | EndpointState::Detaching => {
                locked.release_owner(net, &ep.id).unwrap();
                locked.remove_endpoint(&net.id, &ep.id).unwrap();
            }
        }
    }
    // An allocation whose endpoint record never got written.
    let known: BTreeSet<String> = locked
        .endpoints_of(&net.id)
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    for (_, owner) in locked.addresses(net).unwrap() {
        if !known.contains(&owner) {
            locked.release_owner(net, &owner).unwrap();
        }
    }
    locked.clean_temporaries().unwrap();
}

/// Child: allocate and release forever, printing each step once it is done.
fn crash_child(dir: &Path) {
    let state = StateDir::open(dir).unwrap();
    let net = crash_network();
    let mut rng = Rng::seeded();
    let pid = std::process::id();
    for n in 0.. {
        let locked = state.lock().unwrap();
        let attached: Vec<_> = locked
            .endpoints_of(&net.id)
            .unwrap()
            .into_iter()
            .filter(|e| e.state == EndpointState::Attached)
            .collect();
        if attached.len() > 40 || (!attached.is_empty() && rng.below(2) == 0) {
            let mut ep = attached[rng.below(attached.len() as u64) as usize].clone();
            let addr = ep.ipv4.unwrap().addr();
            // Announced before the intent is written: a kill in between
            // leaves the endpoint attached, which the parent accepts.
            println!("@@r {addr} {}", ep.id);
            ep.state = EndpointState::Detaching;
            locked.put_endpoint(&ep).unwrap();
            locked.release(&net, addr).unwrap();
            locked.remove_endpoint(&net.id, &ep.id).unwrap();
            println!("@@R {addr} {}", ep.id);
        } else {
            let mut ep = common::endpoint(&net, &format!("p{pid}-{n}"), None, None);
            ep.state = EndpointState::Attaching;
            ep.created = Timestamp::now();
            locked.put_endpoint(&ep).unwrap();
            let addr = locked
                .allocate(&net, Request::Any(IpFamily::V4), &ep.id)
                .unwrap();
            println!("@@A {} {}", addr.addr(), ep.id);
            ep.ipv4 = Some(addr);
            ep.state = EndpointState::Attached;
            locked.put_endpoint(&ep).unwrap();
            println!("@@E {} {}", addr.addr(), ep.id);
        }
    }
}

/// Checks what must hold right after a kill, before any repair.
fn check_after_kill(dir: &Path, net: &NetworkRecord, committed: &BTreeMap<IpAddr, String>) {
    check_every_file_parses(dir);
    let state = StateDir::open(dir).unwrap();
    let on_disk: BTreeMap<IpAddr, String> = address_files(dir).into_iter().collect();
    for (addr, owner) in committed {
        assert_eq!(
            on_disk.get(addr),
            Some(owner),
            "committed {addr} of {owner} lost"
        );
        let ep = state
            .endpoint(&net.id, owner)
            .unwrap()
            .expect("committed record lost");
        assert_eq!(ep.ipv4.map(|a| a.addr()), Some(*addr));
    }
    // No address claimed by two endpoint records.
    let mut claimed = BTreeMap::new();
    for ep in state.endpoints_of(&net.id).unwrap() {
        if let Some(a) = ep.ipv4 {
            if let Some(other) = claimed.insert(a.addr(), ep.id.clone()) {
                panic!("{} held by {other} and {}", a.addr(), ep.id);
            }
            if ep.state == EndpointState::Attached {
                assert_eq!(
                    on_disk.get(&a.addr()),
                    Some(&ep.id),
                    "record without its address file"
                );
            }
        }
    }
}

#[test]
fn sigkill_at_random_points_never_corrupts_or_double_allocates() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        if let Some(dir) = spec.strip_prefix("crash:") {
            crash_child(Path::new(dir));
        }
        return;
    }
    let tmp = TempDir::new("crash");
    let net = crash_network();
    StateDir::open(tmp.path())
        .unwrap()
        .lock()
        .unwrap()
        .put_network(&net)
        .unwrap();
    let mut rng = Rng::seeded();
    let mut committed: BTreeMap<IpAddr, String> = BTreeMap::new();
    let mut allocations = 0;
    // Kills that land after the child did some work; the delay grows while
    // children die before their first step (slow disk, busy machine).
    let wanted = 300;
    let mut productive = 0;
    let mut rounds = 0;
    let mut max_delay_us = 60_000;
    while productive < wanted {
        rounds += 1;
        assert!(rounds < 5 * wanted, "children make no progress");
        let mut child = spawn_child(
            "sigkill_at_random_points_never_corrupts_or_double_allocates",
            "crash",
            tmp.path(),
        );
        std::thread::sleep(Duration::from_micros(3_000 + rng.below(max_delay_us)));
        child.kill().unwrap();
        child.wait().unwrap();
        let mut last_allocated = None;
        let mut last_released = None;
        let mut finished_release = false;
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        for report in reports(&out) {
            let addr: IpAddr = report[1].parse().unwrap();
            let owner = report[2].clone();
            match report[0].as_str() {
                "A" => {
                    if let Some(holder) = committed.get(&addr) {
                        panic!("{addr} handed to {owner} while {holder} holds it");
                    }
                    allocations += 1;
                    last_allocated = Some((addr, owner));
                }
                "E" => {
                    committed.insert(addr, owner);
                }
                "r" => {
                    assert_eq!(
                        committed.remove(&addr),
                        Some(owner.clone()),
                        "released what was not held"
                    );
                    last_released = Some((addr, owner));
                    finished_release = false;
                }
                "R" => finished_release = true,
                other => panic!("unexpected report {other}"),
            }
        }
        if last_allocated.is_some() || last_released.is_some() {
            productive += 1;
            max_delay_us = (max_delay_us * 2 / 3).max(20_000);
        } else {
            max_delay_us = (max_delay_us * 3 / 2).min(2_000_000);
        }
        check_after_kill(tmp.path(), &net, &committed);
        let state = StateDir::open(tmp.path()).unwrap();
        let locked = state.lock().unwrap();
        repair(&locked, &net);
        drop(locked);
        // After repair, address files and attached records agree exactly.
        let on_disk: BTreeMap<IpAddr, String> = address_files(tmp.path()).into_iter().collect();
        let records: BTreeMap<IpAddr, String> = state
            .endpoints_of(&net.id)
            .unwrap()
            .into_iter()
            .map(|e| (e.ipv4.unwrap().addr(), e.id))
            .collect();
        assert_eq!(on_disk, records);
        // Killed between writing the record and reporting it: committed
        // all the same, but only ever the last allocation; or killed
        // between announcing a release and writing its intent.
        for (addr, owner) in &on_disk {
            if committed.get(addr) != Some(owner) {
                let entry = Some((*addr, owner.clone()));
                let unwritten_release = !finished_release && last_released == entry;
                assert!(
                    last_allocated == entry || unwritten_release,
                    "{addr} of {owner} appeared"
                );
                committed.insert(*addr, owner.clone());
            }
        }
        assert_eq!(on_disk, committed);
    }
    eprintln!("{rounds} kills ({productive} after some work), {allocations} allocations");
}

#[test]
fn sixteen_processes_get_sixteen_distinct_addresses() {
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        if let Some(dir) = spec.strip_prefix("concurrent:") {
            let state = StateDir::open(dir).unwrap();
            let net = network("busy", &["192.168.50.0/24"]);
            let owner = format!("p{}", std::process::id());
            let locked = state.lock().unwrap();
            let addr = locked
                .allocate(&net, Request::Any(IpFamily::V4), &owner)
                .unwrap();
            locked
                .put_endpoint(&common::endpoint(
                    &net,
                    &owner,
                    Some(&addr.to_string()),
                    None,
                ))
                .unwrap();
            println!("@@A {} {owner}", addr.addr());
        }
        return;
    }
    let tmp = TempDir::new("concurrent");
    let net = network("busy", &["192.168.50.0/24"]);
    StateDir::open(tmp.path())
        .unwrap()
        .lock()
        .unwrap()
        .put_network(&net)
        .unwrap();
    let children: Vec<_> = (0..16)
        .map(|_| {
            spawn_child(
                "sixteen_processes_get_sixteen_distinct_addresses",
                "concurrent",
                tmp.path(),
            )
        })
        .collect();
    let mut addresses = BTreeSet::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        for report in reports(&String::from_utf8_lossy(&out.stdout)) {
            addresses.insert(report[1].parse::<IpAddr>().unwrap());
        }
    }
    assert_eq!(addresses.len(), 16, "{addresses:?}");
    let state = StateDir::open(tmp.path()).unwrap();
    let records = state.endpoints_of(&net.id).unwrap();
    assert_eq!(records.len(), 16);
    let recorded: BTreeSet<IpAddr> = records.iter().map(|e| e.ipv4.unwrap().addr()).collect();
    assert_eq!(recorded, addresses);
    let expected: BTreeSet<IpAddr> = (2..18)
        .map(|i| format!("192.168.50.{i}").parse().unwrap())
        .collect();
    assert_eq!(addresses, expected, "the lock serialises the cursor too");
    check_every_file_parses(tmp.path());
}
