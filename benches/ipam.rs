//! Allocation and attach cost through the on-disk store, as the CLI pays
//! it: every operation opens the state directory, takes the lock, reads
//! the network record, changes what it must and unlocks.
//!
//! - `alloc_release/<subnet>/<occupancy>`: allocate one address, write the
//!   endpoint record, then release both, in a /24, /16, /8 and an IPv6 /64
//!   pre-filled to 1% and 90% (address files created at random positions).
//!   Subnets larger than 65,536 addresses are filled over a window of that
//!   size where the cursor runs; the cursor is put back to the window's
//!   start (untimed) before it leaves it.
//! - `attach/<n>`: the record writes of attach number 1 and number 1,000 of
//!   one network (endpoint intent, allocation, endpoint record, hosts line,
//!   container record); each is detached again untimed.
//!
//! After criterion's report a summary prints the mean of each case and the
//! ratios the project's targets are about (90% vs 1%: at most 2x; attach
//! 1,000 vs 1: at most 1.2x).

use std::collections::BTreeMap;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use ipnet::IpNet;
use ipvlan::ipam::{fill_default_gateways, from_u128, match_subnets, to_u128, Family, Request};
use ipvlan::json::Value;
use ipvlan::store::{
    EndpointRecord, EndpointState, Flag, Mode, NetworkRecord, NetworkState, ParentOrigin, StateDir,
    Timestamp,
};

/// Mean time per iteration of every case, filled while criterion runs.
static TOTALS: Mutex<BTreeMap<String, (Duration, u64)>> = Mutex::new(BTreeMap::new());

fn record(case: &str, elapsed: Duration, iters: u64) {
    let mut totals = TOTALS.lock().unwrap();
    let entry = totals.entry(case.to_string()).or_default();
    entry.0 += elapsed;
    entry.1 += iters;
}

fn mean(case: &str) -> Option<Duration> {
    let totals = TOTALS.lock().unwrap();
    totals
        .get(case)
        .filter(|(_, n)| *n > 0)
        .map(|(d, n)| *d / (*n as u32).max(1))
}

const WINDOW: u128 = 65_536;

struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ipvlan-bench-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn network(name: &str, subnet: &str) -> NetworkRecord {
    let net: IpNet = subnet.parse().unwrap();
    let mut subnets = match_subnets(&[net], &[], &[], &[]).unwrap();
    fill_default_gateways(&mut subnets);
    NetworkRecord {
        id: "b".repeat(64),
        name: name.to_string(),
        driver: "ipvlan".into(),
        mode: Mode::L2,
        flag: Flag::Bridge,
        parent: "eth0".into(),
        parent_origin: ParentOrigin::Existing,
        internal: false,
        ipv6: net.addr().is_ipv6(),
        mtu: None,
        subnets,
        created: Timestamp::now(),
        options: vec![("parent".into(), "eth0".into())],
        state: NetworkState::Created,
    }
}

fn endpoint(net: &NetworkRecord, id: &str) -> EndpointRecord {
    EndpointRecord {
        id: id.to_string(),
        network_id: net.id.clone(),
        container: Some(id.to_string()),
        netns: format!("/run/netns/{id}"),
        ifname: "eth0".into(),
        mac: Some("02:00:00:00:00:01".into()),
        ipv4: None,
        ipv6: None,
        state: EndpointState::Attached,
        created: Timestamp::now(),
    }
}

/// A state directory holding one network whose subnet is pre-filled.
struct Filled {
    root: PathBuf,
    net: NetworkRecord,
    family: Family,
    window_start: u128,
    window_end: u128,
    subnet_dir: PathBuf,
}

impl Filled {
    fn new(tag: &str, subnet: &str, occupancy: f64) -> Filled {
        let root = scratch_dir(tag);
        let state = StateDir::open(&root).unwrap();
        let net = network(tag, subnet);
        state.lock().unwrap().put_network(&net).unwrap();
        let spec = &net.subnets[0];
        let family = spec.family();
        let (first, last) = spec.allocation_bounds();
        let window_start = first + 1;
        let window_end = last.min(window_start + WINDOW - 1);
        let subnet_dir = root.join("ipam").join(&net.id).join(spec.key());
        fs::create_dir_all(&subnet_dir).unwrap();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for value in window_start..=window_end {
            let addr = from_u128(family, value);
            if !spec.is_reserved(addr) && rng.next_f64() < occupancy {
                fs::write(subnet_dir.join(addr.to_string()), "prefill\n").unwrap();
            }
        }
        let filled = Filled {
            root,
            net,
            family,
            window_start,
            window_end,
            subnet_dir,
        };
        filled.reset_cursor();
        filled
    }

    fn reset_cursor(&self) {
        let start = from_u128(self.family, self.window_start);
        fs::write(self.subnet_dir.join("cursor"), format!("{start}\n")).unwrap();
    }

    /// One allocate-and-release cycle as two CLI invocations would do it.
    fn cycle(&self, owner: &str) -> IpAddr {
        let addr = {
            let state = StateDir::open(&self.root).unwrap();
            let mut locked = state.lock().unwrap();
            let net = locked.network(&self.net.id).unwrap().unwrap();
            let addr = locked
                .allocate(&net, Request::Any(self.family), owner)
                .unwrap();
            let mut ep = endpoint(&net, owner);
            ep.ipv4 = Some(addr);
            locked.put_endpoint(&ep).unwrap();
            addr.addr()
        };
        let state = StateDir::open(&self.root).unwrap();
        let mut locked = state.lock().unwrap();
        let net = locked.network(&self.net.id).unwrap().unwrap();
        let ep = locked.endpoint(&net.id, owner).unwrap().unwrap();
        locked.release(&net, ep.ipv4.unwrap().addr()).unwrap();
        locked.remove_endpoint(&net.id, owner).unwrap();
        addr
    }
}

impl Drop for Filled {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

fn bench_alloc_release(c: &mut Criterion) {
    let mut group = c.benchmark_group("alloc_release");
    group.sample_size(20);
    let subnets = [
        ("v4_24", "10.1.0.0/24"),
        ("v4_16", "10.2.0.0/16"),
        ("v4_8", "10.0.0.0/8"),
        ("v6_64", "fd00:1:2:3::/64"),
    ];
    for (name, subnet) in subnets {
        for (label, occupancy) in [("1pct", 0.01), ("90pct", 0.90)] {
            let filled = Filled::new(&format!("{name}-{label}"), subnet, occupancy);
            let case = format!("{name}/{label}");
            group.bench_with_input(BenchmarkId::new(name, label), &filled, |b, filled| {
                b.iter_custom(|iters| {
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        let addr = filled.cycle("bench-ep");
                        elapsed += start.elapsed();
                        if to_u128(addr) + 256 > filled.window_end {
                            filled.reset_cursor();
                        }
                    }
                    record(&case, elapsed, iters);
                    elapsed
                })
            });
        }
    }
    group.finish();
}

/// The state writes of one attach.
fn attach(root: &Path, network_id: &str, id: &str) {
    let state = StateDir::open(root).unwrap();
    let mut locked = state.lock().unwrap();
    let net = locked.network(network_id).unwrap().unwrap();
    let mut ep = endpoint(&net, id);
    ep.state = EndpointState::Attaching;
    locked.put_endpoint(&ep).unwrap();
    let addr = locked.allocate(&net, Request::Any(Family::V4), id).unwrap();
    ep.ipv4 = Some(addr);
    ep.state = EndpointState::Attached;
    locked.put_endpoint(&ep).unwrap();
    locked
        .hosts_append(network_id, &format!("{}\t{id}", addr.addr()))
        .unwrap();
    let container = Value::object([
        ("version", Value::from(1u64)),
        ("name", Value::from(id)),
        ("networks", Value::from(vec![Value::from(network_id)])),
    ]);
    locked.put_record("containers", id, &container).unwrap();
}

fn detach(root: &Path, network_id: &str, id: &str) {
    let state = StateDir::open(root).unwrap();
    let mut locked = state.lock().unwrap();
    let net = locked.network(network_id).unwrap().unwrap();
    let ep = locked.endpoint(network_id, id).unwrap().unwrap();
    locked.remove_record("containers", id).unwrap();
    let suffix = format!("\t{id}");
    locked
        .hosts_remove(network_id, |l| l.ends_with(&suffix))
        .unwrap();
    locked.release(&net, ep.ipv4.unwrap().addr()).unwrap();
    locked.remove_endpoint(network_id, id).unwrap();
}

fn bench_attach(c: &mut Criterion) {
    let mut group = c.benchmark_group("attach");
    group.sample_size(20);
    for before in [0usize, 999] {
        let root = scratch_dir(&format!("attach-{before}"));
        let state = StateDir::open(&root).unwrap();
        let net = network("attachnet", "10.200.0.0/16");
        state.lock().unwrap().put_network(&net).unwrap();
        for i in 0..before {
            attach(&root, &net.id, &format!("c{i}"));
        }
        let nth = before + 1;
        let case = format!("attach/{nth}");
        group.bench_with_input(BenchmarkId::from_parameter(nth), &root, |b, root| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    attach(root, &net.id, "measured");
                    elapsed += start.elapsed();
                    detach(root, &net.id, "measured");
                }
                record(&case, elapsed, iters);
                elapsed
            })
        });
        let _ = fs::remove_dir_all(&root);
    }
    group.finish();
}

fn summary() {
    println!("\nsummary (mean per iteration, warm-up included)");
    for (case, (total, n)) in TOTALS.lock().unwrap().iter() {
        println!(
            "  {case:<22} {:>10.1} us  ({n} iterations)",
            total.as_secs_f64() * 1e6 / *n as f64
        );
    }
    for name in ["v4_24", "v4_16", "v4_8", "v6_64"] {
        if let (Some(low), Some(high)) = (
            mean(&format!("{name}/1pct")),
            mean(&format!("{name}/90pct")),
        ) {
            let ratio = high.as_secs_f64() / low.as_secs_f64();
            let verdict = if ratio <= 2.0 { "ok" } else { "OVER TARGET" };
            println!("  {name}: 90% / 1% = {ratio:.2} (target <= 2.0) {verdict}");
        }
    }
    if let (Some(first), Some(thousandth)) = (mean("attach/1"), mean("attach/1000")) {
        let ratio = thousandth.as_secs_f64() / first.as_secs_f64();
        let verdict = if ratio <= 1.2 { "ok" } else { "OVER TARGET" };
        println!("  attach #1000 / #1 = {ratio:.2} (target <= 1.2) {verdict}");
    }
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench_alloc_release(&mut criterion);
    bench_attach(&mut criterion);
    criterion.final_summary();
    summary();
}
