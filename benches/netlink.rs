//! What the netlink layer itself costs, next to what the kernel costs.
//!
//! - `encode/*`: building the requests an attach sends (ipvlan create in a
//!   netns, address, default route), in user space only.
//! - `decode/link_dump`: parsing a recorded kernel reply to `ip -d link show`
//!   (tests/fixtures/netlink/kernel_reply_link_dump.hex), every message.
//! - `kernel/*` (root only, in a scratch network namespace): a link lookup by
//!   name, an address add+delete and a veth create+delete round trip. These
//!   show the syscall and kernel work the encode/decode figures sit beside:
//!   user-space cost should be a small fraction of any kernel round trip.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;

use std::hint::black_box;

use criterion::Criterion;
use ipnet::IpNet;
use ipvlan::netns;
use ipvlan::rtnl::{self, AddrFlags, Handle, IpvlanFlag, IpvlanMode, LinkSpec, RouteSpec};

fn fixture_bytes(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/netlink/{name}.hex",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .flat_map(str::split_whitespace)
        .map(|byte| u8::from_str_radix(byte, 16).expect("hex fixture"))
        .collect()
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    // Any open descriptor stands for a namespace: only its number is sent.
    let netns = std::fs::File::open("/dev/null").expect("open /dev/null");
    group.bench_function("ipvlan_create_in_netns", |b| {
        b.iter(|| {
            let spec = LinkSpec::ipvlan(black_box("eth0"), 7, IpvlanMode::L2, IpvlanFlag::Bridge)
                .in_netns_fd(black_box(netns.as_fd()));
            spec.request().and_then(|m| m.to_bytes(1, 0)).unwrap()
        })
    });
    let net: IpNet = "192.168.1.2/24".parse().unwrap();
    group.bench_function("addr_add_v4", |b| {
        b.iter(|| {
            rtnl::addr::add_request(black_box(3), black_box(net), AddrFlags::NODAD)
                .to_bytes(1, 0)
                .unwrap()
        })
    });
    let gateway = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1));
    group.bench_function("route_default_via_v4", |b| {
        b.iter(|| {
            RouteSpec::default_via(black_box(gateway))
                .dev(3)
                .add_request()
                .and_then(|m| m.to_bytes(1, 0))
                .unwrap()
        })
    });
    group.finish();
}

fn decode(c: &mut Criterion) {
    let dump = fixture_bytes("kernel_reply_link_dump");
    let expected = rtnl::decode_all(&dump);
    assert!(expected > 0, "the fixture decodes");
    c.bench_function("decode/link_dump", |b| {
        b.iter(|| assert_eq!(rtnl::decode_all(black_box(&dump)), expected))
    });
}

fn kernel(c: &mut Criterion) {
    if !is_root() {
        eprintln!("kernel/*: skipped, needs root (CAP_NET_ADMIN) for a scratch netns");
        return;
    }
    // A socket opened for a namespace stays bound to it: the benchmark thread
    // itself never leaves the host's namespace.
    let scratch = netns::create_anonymous().expect("scratch netns");
    {
        let handle = Handle::in_netns(&scratch).expect("netlink socket");
        let lo = handle.link_index("lo").expect("lo exists");
        handle.link_set_up(lo).expect("lo up");
        let mut group = c.benchmark_group("kernel");
        group.bench_function("link_by_name", |b| {
            b.iter(|| handle.link_by_name(black_box("lo")).unwrap().unwrap())
        });
        let net: IpNet = "10.9.8.7/24".parse().unwrap();
        group.bench_function("addr_add_del_v4", |b| {
            b.iter(|| {
                handle.addr_add(lo, net, AddrFlags::empty()).unwrap();
                handle.addr_del(lo, net).unwrap();
            })
        });
        group.sample_size(10);
        group.bench_function("veth_create_delete", |b| {
            b.iter(|| {
                handle.link_add(&LinkSpec::veth("bv0", "bv1")).unwrap();
                let index = handle.link_index("bv0").unwrap();
                handle.link_del(index).unwrap();
            })
        });
        group.finish();
    }
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:").map(|v| v.trim().to_owned()))
        })
        .and_then(|hex| u64::from_str_radix(&hex, 16).ok())
        .is_some_and(|caps| caps & (1 << 12) != 0)
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    encode(&mut c);
    decode(&mut c);
    kernel(&mut c);
    c.final_summary();
}
