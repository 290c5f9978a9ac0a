//! What the netlink layer itself costs, next to what the kernel costs.
//!
//! - `encode/*`: building every request src/rtnl can send (each request
//!   builder: the creates of every link kind, link changes and lookups,
//!   addresses, routes, dumps, namespace ids), in user space only; the ones
//!   one attach sends come first (ipvlan create in a netns, address, up,
//!   default route).
//! - `decode/*`: parsing recorded kernel replies, every message: the dumps
//!   of links (`ip -d link show`), addresses and routes (IPv4, all tables;
//!   IPv6), and a namespace-id reply (tests/fixtures/netlink/kernel_reply_*).
//! - `kernel/*` (root only, in a scratch network namespace): a link lookup by
//!   name, an address add+delete and a veth create+delete round trip. These
//!   show the syscall and kernel work the encode/decode figures sit beside:
//!   user-space cost should be a small fraction of any kernel round trip.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;

use std::hint::black_box;

use criterion::Criterion;
use ipnet::IpNet;
use ipvlan::netlink::MessageBuilder;
use ipvlan::netns;
use ipvlan::rtnl::{self, addr, link, nsid, route};
use ipvlan::rtnl::{
    AddrFlags, Handle, IpFamily, IpvlanFlag, IpvlanMode, LinkSpec, MacvlanMode, ProbeKind,
    RouteSpec,
};

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

/// A request builder, run once per iteration.
type Build<'a> = Box<dyn Fn() -> MessageBuilder + 'a>;

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    // Any open descriptor stands for a namespace: only its number is sent.
    let netns = std::fs::File::open("/dev/null").expect("open /dev/null");
    let fd = netns.as_fd();
    let v4: IpNet = "192.168.1.2/24".parse().unwrap();
    let v6: IpNet = "2001:db8::6/64".parse().unwrap();
    let gw4 = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 1));
    let gw6: IpAddr = "2001:db8::1".parse().unwrap();
    let ipvlan = move || {
        LinkSpec::ipvlan(black_box("eth0"), 7, IpvlanMode::L2, IpvlanFlag::Bridge)
            .in_netns_fd(black_box(fd))
    };
    let requests: Vec<(&str, Build)> = vec![
        // One attach.
        (
            "ipvlan_create_in_netns",
            Box::new(move || ipvlan().request().unwrap()),
        ),
        (
            "ipvlan_create_in_netns_with_index",
            Box::new(move || ipvlan().index(black_box(4242)).request().unwrap()),
        ),
        (
            "addr_add_v4",
            Box::new(move || addr::add_request(black_box(3), black_box(v4), AddrFlags::NODAD)),
        ),
        (
            "link_set_arp_notify",
            Box::new(|| link::set_arp_notify_request(black_box(3), true)),
        ),
        (
            "link_set_up",
            Box::new(|| link::set_up_request(black_box(3), true)),
        ),
        (
            "route_default_via_v4",
            Box::new(move || {
                RouteSpec::default_via(black_box(gw4))
                    .dev(3)
                    .add_request()
                    .unwrap()
            }),
        ),
        // Dual stack, detach, networks, lookups, repairs.
        (
            "addr_add_v6_nodad",
            Box::new(move || addr::add_request(black_box(3), black_box(v6), AddrFlags::NODAD)),
        ),
        (
            "route_default_via_v6",
            Box::new(move || {
                RouteSpec::default_via(black_box(gw6))
                    .dev(3)
                    .add_request()
                    .unwrap()
            }),
        ),
        (
            "route_del_default_dev_v4",
            Box::new(|| {
                RouteSpec::default_dev(IpFamily::V4, black_box(3))
                    .del_request()
                    .unwrap()
            }),
        ),
        (
            "addr_del_v4",
            Box::new(move || addr::del_request(black_box(3), black_box(v4))),
        ),
        ("link_del", Box::new(|| link::del_request(black_box(7)))),
        (
            "link_del_group",
            Box::new(|| link::del_group_request(black_box(5))),
        ),
        (
            "link_add_dummy",
            Box::new(|| LinkSpec::dummy(black_box("p0")).request().unwrap()),
        ),
        (
            "link_add_vlan",
            Box::new(|| {
                LinkSpec::vlan(black_box("eth1.10"), 2, 10)
                    .request()
                    .unwrap()
            }),
        ),
        (
            "link_add_macvlan",
            Box::new(|| {
                LinkSpec::macvlan(black_box("mv0"), 2, MacvlanMode::Bridge)
                    .request()
                    .unwrap()
            }),
        ),
        (
            "link_add_veth",
            Box::new(|| LinkSpec::veth(black_box("va"), "vb").request().unwrap()),
        ),
        (
            "link_rename",
            Box::new(|| link::rename_request(black_box(7), "eth0").unwrap()),
        ),
        (
            "link_set_mtu",
            Box::new(|| link::set_mtu_request(black_box(7), 1400)),
        ),
        (
            "link_set_group",
            Box::new(|| link::set_group_request(black_box(7), 5)),
        ),
        (
            "link_set_netns",
            // A request naming a descriptor borrows it; a copy of its
            // message leaves the closure (one small clone more).
            Box::new(move || (*link::set_netns_request(black_box(7), fd)).clone()),
        ),
        (
            "link_get_by_name",
            Box::new(|| link::get_by_name_request(black_box("eth1")).unwrap()),
        ),
        (
            "link_get_by_index",
            Box::new(|| link::get_by_index_request(black_box(7))),
        ),
        (
            "link_probe_ipvlan",
            Box::new(|| link::probe_kind_request(black_box(ProbeKind::Ipvlan))),
        ),
        ("link_dump", Box::new(link::dump_request)),
        (
            "addr_dump",
            Box::new(|| addr::dump_request(black_box(libc::AF_UNSPEC as u8))),
        ),
        (
            "route_dump_v4",
            Box::new(|| route::dump_request(black_box(IpFamily::V4), 254)),
        ),
        (
            "nsid_get",
            Box::new(move || (*nsid::get_request(fd)).clone()),
        ),
    ];
    for (name, build) in &requests {
        group.bench_function(*name, |b| b.iter(|| build().to_bytes(1, 0).unwrap()));
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (name, fixture) in [
        ("link_dump", "kernel_reply_link_dump"),
        ("addr_dump", "kernel_reply_addr_dump"),
        (
            "route_dump_v4_all_tables",
            "kernel_reply_route_dump_v4_all_tables",
        ),
        ("route_dump_v6", "kernel_reply_route_dump_v6"),
        ("nsid", "kernel_reply_nsid"),
    ] {
        let reply = fixture_bytes(fixture);
        let expected = rtnl::decode_all(&reply);
        assert!(expected > 0, "{fixture} decodes");
        group.bench_function(name, |b| {
            b.iter(|| assert_eq!(rtnl::decode_all(black_box(&reply)), expected))
        });
    }
    group.finish();
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
