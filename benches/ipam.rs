//! Allocation cost through the on-disk store, as the CLI pays
//! it: every operation opens the state directory, takes the lock, reads
//! the network record, changes what it must and unlocks.
//!
//! - `alloc_release/<subnet>/<occupancy>`: allocate one address, write the
//!   endpoint record, then release both, in a /24, /16, /8 and an IPv6 /64
//!   pre-filled to 1% and 90% (address files created at random positions).
//!   Subnets larger than 65,536 addresses are filled over a window of that
//!   size where the cursor runs; the cursor is put back to the window's
//!   start (untimed) before it leaves it.
//!
//! (Whole attaches, kernel work included, are measured in the VM by the
//! benchmark harness: they need a kernel with ipvlan.)
//!
//! After each pair of cases criterion measured, the two are run again
//! interleaved (A, B, A, B, ...) and their medians compared, so load from
//! other processes and disk flush spikes hit both alike; the summary at the
//! end prints those medians and the ratios the targets are about (90% vs
//! 1%: at most 2x).
//!
//! The state directory is made under `$IPVLAN_BENCH_DIR` (default: the
//! system temp dir). On a disk, fsync dominates every figure; on tmpfs
//! (`IPVLAN_BENCH_DIR=/dev/shm`) the figures show the file-system work alone.

use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use ipnet::IpNet;
use ipvlan::ipam::{fill_default_gateways, from_u128, match_subnets, to_u128, IpFamily, Request};
use ipvlan::rtnl::{IpvlanFlag, IpvlanMode};
use ipvlan::store::{
    EndpointRecord, EndpointState, NetworkRecord, NetworkState, ParentOrigin, StateDir, Timestamp,
};

/// Summary lines, filled as the pairs are measured.
static SUMMARY: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Rounds of the interleaved comparison.
const PAIRED_ROUNDS: usize = 150;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Runs `a` and `b` alternately and returns their median times.
fn paired(mut a: impl FnMut(), mut b: impl FnMut()) -> (Duration, Duration) {
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..PAIRED_ROUNDS {
        let start = Instant::now();
        a();
        ta.push(start.elapsed());
        let start = Instant::now();
        b();
        tb.push(start.elapsed());
    }
    (median(ta), median(tb))
}

fn report(what: &str, low_name: &str, low: Duration, high_name: &str, high: Duration, target: f64) {
    let ratio = high.as_secs_f64() / low.as_secs_f64();
    let verdict = if ratio <= target { "ok" } else { "OVER TARGET" };
    SUMMARY.lock().unwrap().push(format!(
        "{what:<8} {low_name} {:>9.1} us   {high_name} {:>9.1} us   ratio {ratio:.2} (target <= {target}) {verdict}",
        low.as_secs_f64() * 1e6,
        high.as_secs_f64() * 1e6,
    ));
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
    let base = std::env::var_os("IPVLAN_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!("ipvlan-bench-{tag}-{}", std::process::id()));
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
        mode: IpvlanMode::L2,
        flag: IpvlanFlag::Bridge,
        parent: "eth0".into(),
        parent_origin: ParentOrigin::Existing,
        parent_index: None,
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
        netns_id: None,
        ifindex: None,
    }
}

/// A state directory holding one network whose subnet is pre-filled.
struct Filled {
    root: PathBuf,
    net: NetworkRecord,
    family: IpFamily,
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
                // As the store makes them: a link naming the owner.
                std::os::unix::fs::symlink("prefill", subnet_dir.join(addr.to_string())).unwrap();
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
            let locked = state.lock().unwrap();
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
        let locked = state.lock().unwrap();
        let net = locked.network(&self.net.id).unwrap().unwrap();
        let ep = locked.endpoint(&net.id, owner).unwrap().unwrap();
        locked.release(&net, ep.ipv4.unwrap().addr()).unwrap();
        locked.remove_endpoint(&net.id, owner).unwrap();
        addr
    }
}

impl Filled {
    /// One cycle, keeping the cursor inside the filled window (untimed
    /// by criterion's standards: a stat-free write of a few bytes).
    fn step(&self) {
        let addr = self.cycle("bench-ep");
        if to_u128(addr) + 256 > self.window_end {
            self.reset_cursor();
        }
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
        let fills = [("1pct", 0.01), ("90pct", 0.90)].map(|(label, occupancy)| {
            (
                label,
                Filled::new(&format!("{name}-{label}"), subnet, occupancy),
            )
        });
        for (label, filled) in &fills {
            group.bench_with_input(BenchmarkId::new(name, label), filled, |b, filled| {
                b.iter_custom(|iters| {
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        filled.step();
                        elapsed += start.elapsed();
                    }
                    elapsed
                })
            });
        }
        let [(_, low), (_, high)] = &fills;
        let (tl, th) = paired(|| low.step(), || high.step());
        report(name, "1%", tl, "90%", th, 2.0);
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    bench_alloc_release(&mut criterion);
    criterion.final_summary();
    println!("\nInterleaved medians ({PAIRED_ROUNDS} rounds each):");
    for line in SUMMARY.lock().unwrap().iter() {
        println!("  {line}");
    }
}
