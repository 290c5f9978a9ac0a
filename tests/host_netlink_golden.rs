//! Our request builders against reference bytes, and our parsers against
//! real kernel replies. No kernel access needed.
//!
//! Request fixture format (`tests/fixtures/netlink/*.hex`): `#` comment
//! lines, then the reference message as hex bytes (seq and pid zero). The
//! reference is what iproute2 sends for the same command (recorded once with
//! strace, the command in the first comment) or, where iproute2 cannot send
//! the request, bytes written by hand from the uapi headers (first comment
//! "Written by hand", a comment before every line naming its fields); never
//! bytes produced by our own builder. Where our request differs on purpose,
//! the comments say why and a `# ours` line introduces our expected bytes.
//! `kernel_reply_*` fixtures hold whole recorded reply streams.
//!
//! A request that carries a file descriptor (`IFLA_NET_NS_FD`, `NETNSA_FD`)
//! is built with one of ours; the reference's recorded number is replaced by
//! ours before comparing, and every other byte must match.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::Path;

use ipvlan::netlink::{MessageBuilder, MessageView, Messages};
use ipvlan::rtnl::{addr, decode_all, link, nsid, route};
use ipvlan::rtnl::{
    AddrFlags, Address, IpFamily, IpvlanFlag, IpvlanMode, Link, LinkData, LinkSpec, MacvlanMode,
    ProbeKind, Reported, Route, RouteSpec,
};

struct Fixture {
    reference: Vec<u8>,
    ours: Option<Vec<u8>>,
    comments: Vec<String>,
}

fn fixture(name: &str) -> Fixture {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/netlink")
        .join(format!("{name}.hex"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let by_hand = text.starts_with("# Written by hand");
    let mut reference = Vec::new();
    let mut ours: Option<Vec<u8>> = None;
    let mut comments = Vec::new();
    let mut commented = false;
    for line in text.lines() {
        if line.trim() == "# ours" {
            ours = Some(Vec::new());
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            comments.push(comment.trim().to_owned());
            commented = true;
            continue;
        }
        assert!(
            !by_hand || commented,
            "{name}: a hand-written line without a comment naming its fields: {line}"
        );
        commented = false;
        let bytes = line
            .split_whitespace()
            .map(|h| u8::from_str_radix(h, 16).unwrap_or_else(|_| panic!("{name}: bad hex {h}")));
        match &mut ours {
            Some(ours) => ours.extend(bytes),
            None => reference.extend(bytes),
        }
    }
    Fixture {
        reference,
        ours,
        comments,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|c| {
            c.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A descriptor in a request: the 8-byte attribute `attr` (u32 payload)
/// holds `recorded` in the reference and `ours` in our request.
#[derive(Clone, Copy)]
struct FdAttr<'a> {
    attr: u16,
    recorded: u32,
    ours: BorrowedFd<'a>,
}

/// `bytes` with the one `fd.attr` attribute holding `fd.recorded` changed
/// to hold our descriptor.
fn with_our_fd(name: &str, bytes: &[u8], fd: FdAttr<'_>) -> Vec<u8> {
    let mut recorded = vec![8, 0];
    recorded.extend(fd.attr.to_ne_bytes());
    recorded.extend(fd.recorded.to_ne_bytes());
    let at: Vec<usize> = (0..bytes.len().saturating_sub(7))
        .filter(|&i| bytes[i..i + 8] == recorded[..])
        .collect();
    assert_eq!(at.len(), 1, "{name}: descriptor attribute {recorded:02x?}");
    let mut bytes = bytes.to_vec();
    let ours = fd.ours.as_raw_fd() as u32;
    bytes[at[0] + 4..at[0] + 8].copy_from_slice(&ours.to_ne_bytes());
    bytes
}

/// Our request with seq 0 and pid 0 must equal the fixture's bytes.
fn assert_golden(name: &str, msg: &MessageBuilder) {
    assert_golden_with(name, msg, None);
}

/// [`assert_golden`] for a request that carries our descriptor `fd`.
fn assert_golden_with(name: &str, msg: &MessageBuilder, fd: Option<FdAttr<'_>>) {
    let fixture = fixture(name);
    let adjust = |bytes: &[u8]| match fd {
        Some(fd) => with_our_fd(name, bytes, fd),
        None => bytes.to_vec(),
    };
    let ours = msg.to_bytes(0, 0).unwrap();
    match &fixture.ours {
        None => assert_eq!(
            hex(&ours),
            hex(&adjust(&fixture.reference)),
            "{name}: our bytes (left) differ from the reference (right)"
        ),
        Some(expected) => {
            assert!(
                fixture
                    .comments
                    .iter()
                    .any(|c| c.starts_with("Differs on purpose:")),
                "{name}: an `ours` section needs a reason"
            );
            assert_eq!(
                hex(&ours),
                hex(&adjust(expected)),
                "{name}: ours differs from `ours`"
            );
            // The documented difference must not hide a different request.
            assert_eq!(ours[4..8], fixture.reference[4..8], "{name}: type/flags");
            assert_ne!(
                ours,
                adjust(&fixture.reference),
                "{name}: `ours` is stale, drop it"
            );
        }
    }
}

/// An open descriptor to stand for a namespace: requests carry only its
/// number, which the kernel resolves when it handles them.
fn scratch_fd() -> File {
    File::open("/dev/null").unwrap()
}

const VP0: u32 = 3;
const VP1: u32 = 2;

fn net(text: &str) -> ipnet::IpNet {
    text.parse().unwrap()
}

#[test]
fn link_create_requests() {
    assert_golden(
        "link_add_veth",
        &LinkSpec::veth("va", "vb").request().unwrap(),
    );
    assert_golden(
        "link_add_macvlan",
        &LinkSpec::macvlan("mv5", VP0, MacvlanMode::Bridge)
            .request()
            .unwrap(),
    );
    assert_golden(
        "link_add_ipvlan_l2_bridge",
        &LinkSpec::ipvlan("iv0", VP0, IpvlanMode::L2, IpvlanFlag::Bridge)
            .request()
            .unwrap(),
    );
    assert_golden(
        "link_add_ipvlan_l3_vepa",
        &LinkSpec::ipvlan("iv0", VP0, IpvlanMode::L3, IpvlanFlag::Vepa)
            .request()
            .unwrap(),
    );
    assert_golden(
        "link_add_ipvlan_l3s_private",
        &LinkSpec::ipvlan("iv1", VP0, IpvlanMode::L3s, IpvlanFlag::Private)
            .request()
            .unwrap(),
    );
    assert_golden(
        "link_add_vlan",
        &LinkSpec::vlan("vp0.10", VP0, 10).request().unwrap(),
    );
    assert_golden("link_add_dummy", &LinkSpec::dummy("d0").request().unwrap());
    assert_golden(
        "link_add_dummy_mtu",
        &LinkSpec::dummy("d0").mtu(9000).request().unwrap(),
    );
    assert_golden(
        "link_add_dummy_group",
        &LinkSpec::dummy("d0").group(5).request().unwrap(),
    );
}

#[test]
fn link_create_requests_in_netns() {
    let netns = scratch_fd();
    // iproute2 opened /run/netns/target as descriptor 4.
    let fd = Some(FdAttr {
        attr: 28, // IFLA_NET_NS_FD
        recorded: 4,
        ours: netns.as_fd(),
    });
    assert_golden_with(
        "link_add_macvlan_in_netns",
        &LinkSpec::macvlan("mv6", VP0, MacvlanMode::Bridge)
            .in_netns_fd(netns.as_fd())
            .request()
            .unwrap(),
        fd,
    );
    let ipvlan = LinkSpec::ipvlan("eth0", VP0, IpvlanMode::L3, IpvlanFlag::Bridge)
        .in_netns_fd(netns.as_fd())
        .mtu(1400);
    assert_golden_with("link_add_ipvlan_netns_mtu", &ipvlan.request().unwrap(), fd);
    // One builder for both: the index only fills the header's ifi_index.
    assert_golden_with(
        "link_add_ipvlan_index_netns",
        &ipvlan.clone().index(4242).request().unwrap(),
        fd,
    );
    assert_golden_with(
        "link_set_netns_fd",
        &link::set_netns_request(VP1, netns.as_fd()),
        fd,
    );
}

#[test]
fn link_index_out_of_the_kernels_range_is_refused() {
    let spec = |index| LinkSpec::dummy("d0").index(index).request();
    assert!(spec(0).is_err(), "0 means no index");
    assert!(spec(1 << 31).is_err(), "ifi_index is a C int");
    assert!(spec(i32::MAX as u32).is_ok());
}

#[test]
fn link_modify_requests() {
    assert_golden("link_del", &link::del_request(6));
    assert_golden("link_set_up", &link::set_up_request(VP0, true));
    assert_golden("link_set_down", &link::set_up_request(VP0, false));
    assert_golden("link_rename", &link::rename_request(4, "mv1").unwrap());
    assert_golden("link_set_mtu", &link::set_mtu_request(VP1, 1400));
    assert_golden("link_set_group", &link::set_group_request(VP0, 5));
    assert_golden(
        "link_set_arp_notify",
        &link::set_arp_notify_request(VP0, true),
    );
    assert_golden("link_del_group", &link::del_group_request(5));
    assert_golden(
        "link_get_by_name",
        &link::get_by_name_request("vp0").unwrap(),
    );
    assert_golden("link_get_by_index", &link::get_by_index_request(VP0));
    assert_golden("dump_link", &link::dump_request());
}

#[test]
fn link_kind_probes() {
    for (name, kind) in [
        ("link_probe_ipvlan", ProbeKind::Ipvlan),
        ("link_probe_dummy", ProbeKind::Dummy),
        ("link_probe_vlan", ProbeKind::Vlan),
    ] {
        assert_golden(name, &link::probe_kind_request(kind));
    }
    let names = ProbeKind::ALL.map(ProbeKind::name);
    assert_eq!(names, ["ipvlan", "dummy", "vlan"]);
}

#[test]
fn address_requests() {
    assert_golden(
        "addr_add_v4",
        &addr::add_request(VP0, net("10.1.2.4/24"), AddrFlags::empty()),
    );
    assert_golden(
        "addr_add_v6_nodad",
        &addr::add_request(VP0, net("2001:db8::6/64"), AddrFlags::NODAD),
    );
    assert_golden(
        "addr_add_v4_32",
        &addr::add_request(VP0, net("10.1.2.4/32"), AddrFlags::empty()),
    );
    assert_golden("addr_del_v4", &addr::del_request(VP0, net("10.1.2.4/24")));
    assert_golden(
        "addr_del_v6",
        &addr::del_request(VP0, net("2001:db8::6/64")),
    );
    assert_golden("dump_addr", &addr::dump_request(libc::AF_INET as u8));
    assert_golden("dump_addr_all", &addr::dump_request(libc::AF_UNSPEC as u8));
}

#[test]
fn route_requests() {
    let via4 = RouteSpec::default_via("10.1.2.1".parse().unwrap());
    assert_golden("route_add_default_via_v4", &via4.add_request().unwrap());
    let via6 = RouteSpec::default_via("2001:db8::1".parse().unwrap());
    assert_golden("route_add_default_via_v6", &via6.add_request().unwrap());
    assert_golden(
        "route_add_default_via_dev_v4",
        &via4.dev(VP0).add_request().unwrap(),
    );
    assert_golden(
        "route_add_default_via_dev_v6",
        &via6.dev(VP0).add_request().unwrap(),
    );
    let dev4 = RouteSpec::default_dev(IpFamily::V4, VP0);
    assert_golden("route_add_default_dev_v4", &dev4.add_request().unwrap());
    assert_golden("route_del_default_dev_v4", &dev4.del_request().unwrap());
    let dev6 = RouteSpec::default_dev(IpFamily::V6, VP0);
    assert_golden("route_add_default_dev_v6", &dev6.add_request().unwrap());
    assert_golden("route_del_default_dev_v6", &dev6.del_request().unwrap());
    assert_golden(
        "route_add_dev_metric_table",
        &dev4.metric(10).table(1000).add_request().unwrap(),
    );
    let onlink = RouteSpec::to(net("10.9.0.0/16"))
        .via("10.1.2.1".parse().unwrap())
        .dev(VP0)
        .onlink();
    assert_golden("route_add_onlink", &onlink.add_request().unwrap());
    // A CNI result's route with its table, metric and scope (1.1.0).
    let scoped = RouteSpec::to(net("198.51.100.0/24"))
        .via("10.1.2.1".parse().unwrap())
        .dev(VP0)
        .metric(7)
        .table(100)
        .scope(libc::RT_SCOPE_LINK);
    assert_golden(
        "route_append_via_dev_metric_table_scope",
        &scoped.append_request().unwrap(),
    );
    // Beside a route of the same key (a CNI config's routes).
    let beside = RouteSpec::to(net("192.0.2.0/24"))
        .via("10.1.2.1".parse().unwrap())
        .dev(VP0);
    assert_golden("route_append_via_dev", &beside.append_request().unwrap());
    assert_golden("dump_route_v4", &route::dump_request(IpFamily::V4, 254));
    assert_golden("dump_route_v6", &route::dump_request(IpFamily::V6, 254));
    assert_golden(
        "dump_route_v4_table_1000",
        &route::dump_request(IpFamily::V4, 1000),
    );
}

#[test]
fn nsid_request() {
    let netns = scratch_fd();
    // iproute2 opened /run/netns/target as descriptor 6.
    let fd = FdAttr {
        attr: nsid::NETNSA_FD,
        recorded: 6,
        ours: netns.as_fd(),
    };
    assert_golden_with("nsid_get_fd", &nsid::get_request(netns.as_fd()), Some(fd));
}

#[test]
fn every_fixture_is_checked() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/netlink");
    let source = include_str!("host_netlink_golden.rs");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let stem = name.strip_suffix(".hex").expect("only .hex fixtures");
        assert!(
            source.contains(&format!("\"{stem}\"")),
            "fixture {stem} is not used by any test"
        );
    }
}

/// Every public request builder of `src/rtnl` (a `pub fn` whose name ends
/// in `request`) is called by a golden test of this file.
#[test]
fn every_request_builder_has_a_golden() {
    let modules = [
        ("addr", include_str!("../src/rtnl/addr.rs")),
        ("link", include_str!("../src/rtnl/link.rs")),
        ("nsid", include_str!("../src/rtnl/nsid.rs")),
        ("route", include_str!("../src/rtnl/route.rs")),
    ];
    let source = include_str!("host_netlink_golden.rs");
    let mut builders = 0;
    for (module, text) in modules {
        for line in text.lines() {
            let Some(rest) = line.trim_start().strip_prefix("pub fn ") else {
                continue;
            };
            let name = &rest[..rest.find(['(', '<']).unwrap()];
            if !name.ends_with("request") {
                continue;
            }
            builders += 1;
            // A free function is called as `module::name(`; a method of a
            // spec (LinkSpec::request, RouteSpec::add_request) as `.name(`.
            let free = format!("{module}::{name}(");
            let method = format!(".{name}()");
            assert!(
                source.contains(&free) || source.contains(&method),
                "{module}::{name} has no golden test"
            );
        }
    }
    assert_eq!(builders, 21, "builders found in src/rtnl");
}

/// An `RTM_NEWLINK` payload captured from a kernel with nlmon (published with
/// netlink-packet-route's tests): ifinfomsg {type ARPHRD_ETHER, index 18,
/// flags BROADCAST|MULTICAST}, IFLA_LINKINFO {KIND "ipvlan", DATA {MODE l2,
/// FLAGS vepa}}; the nests carry no NLA_F_NESTED bit.
const KERNEL_IPVLAN_LINK: [u8; 52] = [
    0x00, 0x00, 0x01, 0x00, 0x12, 0x00, 0x00, 0x00, 0x02, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x24, 0x00, 0x12, 0x00, 0x0b, 0x00, 0x01, 0x00, 0x69, 0x70, 0x76, 0x6c, 0x61, 0x6e, 0x00, 0x00,
    0x14, 0x00, 0x02, 0x00, 0x06, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x06, 0x00, 0x02, 0x00,
    0x02, 0x00, 0x00, 0x00,
];

fn with_header(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut msg = MessageBuilder::new(kind, 0);
    msg.family_header(payload);
    msg.to_bytes(0, 0).unwrap()
}

#[test]
fn kernel_ipvlan_dump_vector_parses() {
    let bytes = with_header(16, &KERNEL_IPVLAN_LINK);
    let view: MessageView<'_> = Messages::new(&bytes).next().unwrap().unwrap();
    let link = Link::parse(&view).unwrap();
    assert_eq!(link.index, 18);
    assert_eq!(link.link_type, 1);
    assert_eq!(link.flags, 0x1002);
    assert_eq!(link.kind.as_deref(), Some("ipvlan"));
    let (l2, vepa) = (
        Reported::Known(IpvlanMode::L2),
        Reported::Known(IpvlanFlag::Vepa),
    );
    assert_eq!(
        link.data,
        LinkData::Ipvlan {
            mode: l2,
            flag: vepa
        }
    );
    assert_eq!(link.ipvlan(), Some((l2, vepa)));
    assert!(!link.is_up());
    assert_eq!(link.mac_text(), "", "no IFLA_ADDRESS in the vector");

    // The bridge variant differs only in the flags value.
    let mut bridge = KERNEL_IPVLAN_LINK;
    bridge[48] = 0;
    let link = parse_link(&bridge);
    assert_eq!(
        link.ipvlan(),
        Some((l2, Reported::Known(IpvlanFlag::Bridge)))
    );
}

fn parse_link(payload: &[u8]) -> Link {
    let bytes = with_header(16, payload);
    Link::parse(&Messages::new(&bytes).next().unwrap().unwrap()).unwrap()
}

#[test]
fn ipvlan_values_we_do_not_know_stay_raw() {
    // The vector with mode 3 (past l3s) and flags PRIVATE|VEPA (3).
    let mut odd = KERNEL_IPVLAN_LINK;
    odd[40] = 3;
    odd[48] = 3;
    let (mode, flag) = parse_link(&odd).ipvlan().expect("an ipvlan link");
    assert_eq!(mode, Reported::Unknown(3));
    assert_eq!(flag, Reported::Unknown(3));
    assert_eq!((mode.known(), flag.known()), (None, None));
    // Never equal to a configured value, whichever.
    assert!(IpvlanMode::ALL.iter().all(|&m| !mode.is(m)));
    assert!(IpvlanFlag::ALL.iter().all(|&f| !flag.is(f)));
    assert_eq!(format!("{mode} {flag}"), "unknown(3) unknown(3)");

    // Flags with a bit the kernel never sets, mode l3s.
    odd[40] = 2;
    odd[48] = 4;
    let (mode, flag) = parse_link(&odd).ipvlan().unwrap();
    assert!(mode.is(IpvlanMode::L3s));
    assert_eq!(flag, Reported::Unknown(4));
}

#[test]
fn our_ipvlan_request_has_the_kernel_dump_shape() {
    // Our create request = the kernel's dump shape plus IFLA_LINK and IFLA_IFNAME,
    // except that we send the kind without its NUL, like iproute2.
    let msg = LinkSpec::ipvlan("iv0", 18, IpvlanMode::L2, IpvlanFlag::Vepa)
        .request()
        .unwrap();
    let bytes = msg.to_bytes(0, 0).unwrap();
    assert_eq!(
        &bytes[4..8],
        &[16, 0, 0x05, 0x06],
        "RTM_NEWLINK, REQUEST|ACK|EXCL|CREATE"
    );
    let linkinfo = &bytes[48..];
    assert_eq!(&linkinfo[..4], &[0x24, 0, 0x12, 0]);
    assert_eq!(&linkinfo[4..8], &[0x0a, 0, 1, 0], "kind without NUL");
    assert_eq!(linkinfo[16..], KERNEL_IPVLAN_LINK[32..]);
}

/// An `RTM_NEWNSID` reply written by hand from the uapi headers
/// (`linux/rtnetlink.h`, `linux/net_namespace.h`), with attributes after
/// the family header.
fn nsid_reply(attrs: &[u8]) -> Vec<u8> {
    let mut bytes = vec![
        0, 0, 0, 0, // nlmsg_len, set below
        88, 0, // nlmsg_type RTM_NEWNSID
        0, 0, // nlmsg_flags 0
        9, 0, 0, 0, // nlmsg_seq 9
        0x2a, 0, 0, 0, // nlmsg_pid 42 (the receiver)
        0, 0, 0, 0, // struct rtgenmsg: rtgen_family AF_UNSPEC, 3 bytes of padding
    ];
    bytes.extend_from_slice(attrs);
    let len = bytes.len() as u32;
    bytes[..4].copy_from_slice(&len.to_ne_bytes());
    bytes
}

fn parse_nsid(bytes: &[u8]) -> ipvlan::netlink::Result<Option<i32>> {
    nsid::parse_reply(&Messages::new(bytes).next().unwrap().unwrap())
}

#[test]
fn kernel_nsid_replies_decode() {
    let seven = kernel_reply("kernel_reply_nsid");
    assert_eq!(decode_all(&seven), 1);
    assert_eq!(parse_nsid(&seven).unwrap(), Some(7));
    let none = kernel_reply("kernel_reply_nsid_not_assigned");
    assert_eq!(decode_all(&none), 1);
    assert_eq!(parse_nsid(&none).unwrap(), None, "NETNSA_NSID_NOT_ASSIGNED");
}

#[test]
fn hand_written_nsid_replies() {
    // NETNSA_NSID (1), nla_len 8: s32 0, the first id a namespace gives;
    // then NETNSA_CURRENT_NSID (5), nla_len 8: s32 3 (sent for a request
    // with NETNSA_TARGET_NSID), which does not matter here.
    let zero = nsid_reply(&[8, 0, 1, 0, 0, 0, 0, 0, 8, 0, 5, 0, 3, 0, 0, 0]);
    assert_eq!(parse_nsid(&zero).unwrap(), Some(0));
    // NETNSA_NSID, s32 0x7fffffff: the largest id.
    let max = nsid_reply(&[8, 0, 1, 0, 0xff, 0xff, 0xff, 0x7f]);
    assert_eq!(parse_nsid(&max).unwrap(), Some(i32::MAX));

    // Refused: no NETNSA_NSID (only NETNSA_CURRENT_NSID)...
    assert!(parse_nsid(&nsid_reply(&[8, 0, 5, 0, 3, 0, 0, 0])).is_err());
    // ... a negative id other than NETNSA_NSID_NOT_ASSIGNED (-2) ...
    assert!(parse_nsid(&nsid_reply(&[8, 0, 1, 0, 0xfe, 0xff, 0xff, 0xff])).is_err());
    // ... an id of 2 bytes (nla_len 6, 2 bytes of padding) ...
    assert!(parse_nsid(&nsid_reply(&[6, 0, 1, 0, 7, 0, 0, 0])).is_err());
    // ... and another message type (RTM_NEWLINK 16) with the same payload.
    let mut newlink = nsid_reply(&[8, 0, 1, 0, 7, 0, 0, 0]);
    newlink[4] = 16;
    assert!(parse_nsid(&newlink).is_err());
}

/// All messages of a recorded kernel reply stream.
fn kernel_reply(name: &str) -> Vec<u8> {
    let fixture = fixture(name);
    assert!(fixture.ours.is_none());
    fixture.reference
}

fn parsed<T>(
    bytes: &[u8],
    kind: u16,
    parse: fn(&MessageView<'_>) -> ipvlan::netlink::Result<T>,
) -> Vec<T> {
    Messages::new(bytes)
        .map(|m| m.expect("well-formed stream"))
        .filter(|m| m.header.kind == kind)
        .map(|m| parse(&m).expect("parses"))
        .collect()
}

#[test]
fn kernel_link_dump_decodes() {
    let bytes = kernel_reply("kernel_reply_link_dump");
    assert_eq!(decode_all(&bytes), Messages::new(&bytes).count());
    let links = parsed(&bytes, 16, Link::parse);
    let names: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["lo", "vp1", "vp0", "mv0", "br0"]);
    let by_name = |n: &str| links.iter().find(|l| l.name == n).unwrap();
    let (vp0, vp1, mv0, br0) = (
        by_name("vp0"),
        by_name("vp1"),
        by_name("mv0"),
        by_name("br0"),
    );
    assert_eq!(by_name("lo").link_type, 772, "ARPHRD_LOOPBACK");
    assert!(by_name("lo").is_up());
    assert_eq!(vp0.kind.as_deref(), Some("veth"));
    assert_eq!(
        vp0.parent,
        Some(vp1.index),
        "a veth's IFLA_LINK is its peer"
    );
    assert_eq!(mv0.kind.as_deref(), Some("macvlan"));
    assert_eq!(mv0.parent, Some(vp0.index));
    assert_eq!(mv0.data, LinkData::Macvlan { mode: 4 });
    assert_eq!(mv0.mtu, Some(1400));
    assert!(mv0.is_up());
    assert_eq!(mv0.mac.as_ref().map(Vec::len), Some(6));
    assert_eq!(vp1.master, Some(br0.index));
    assert_eq!(br0.kind.as_deref(), Some("bridge"));
    assert_eq!(br0.operstate, Some(2), "IF_OPER_DOWN");
}

#[test]
fn kernel_addr_dump_decodes() {
    let bytes = kernel_reply("kernel_reply_addr_dump");
    assert_eq!(decode_all(&bytes), Messages::new(&bytes).count());
    let addrs = parsed(&bytes, 20, Address::parse);
    let find = |n: &str| {
        addrs
            .iter()
            .find(|a| a.net == net(n))
            .unwrap_or_else(|| panic!("{n}"))
    };
    let v4 = find("10.1.2.3/24");
    assert_eq!(v4.broadcast, Some("10.1.2.255".parse().unwrap()));
    assert_eq!(v4.label.as_deref(), Some("vp0"));
    assert!(v4.flags.contains(AddrFlags::PERMANENT));
    let v6 = find("2001:db8::5/64");
    assert!(v6.flags.contains(AddrFlags::NODAD | AddrFlags::PERMANENT));
    assert_eq!(find("192.0.2.7/28").broadcast, None, "no brd asked");
    assert_eq!(find("127.0.0.1/8").scope, 254, "host scope");
    // The kernel that made the fixture marks its own addresses (6.3+);
    // the ones `ip addr add` gave carry no protocol.
    assert_eq!(find("::1/128").proto, Some(1), "IFAPROT_KERNEL_LO");
    assert_eq!(v6.proto, None);
    assert_eq!(v4.proto, None);
}

#[test]
fn kernel_route_dumps_decode() {
    let v4 = kernel_reply("kernel_reply_route_dump_v4_all_tables");
    assert_eq!(decode_all(&v4), Messages::new(&v4).count());
    let routes = parsed(&v4, 24, Route::parse);
    let main: Vec<_> = routes.iter().filter(|r| r.table == 254).collect();
    let default = main.iter().find(|r| r.is_default()).unwrap();
    assert_eq!(default.gateway, Some("10.1.2.1".parse().unwrap()));
    assert_eq!((default.protocol, default.scope, default.kind), (3, 0, 1));
    let onlink = main.iter().find(|r| r.dst == net("10.9.0.0/16")).unwrap();
    assert_eq!(onlink.flags & 4, 4, "RTNH_F_ONLINK");
    let connected = main.iter().find(|r| r.dst == net("10.1.2.0/24")).unwrap();
    assert_eq!(
        (connected.protocol, connected.scope),
        (2, 253),
        "kernel, link"
    );
    assert_eq!(connected.prefsrc, Some("10.1.2.3".parse().unwrap()));
    let onlink_v4: Vec<_> = main
        .iter()
        .filter(|r| r.is_onlink())
        .map(|r| r.dst)
        .collect();
    assert_eq!(onlink_v4, [net("10.1.2.0/24"), net("192.0.2.0/28")]);
    assert!(
        routes.iter().any(|r| r.table == 255 && r.kind == 2),
        "local table"
    );

    let v6 = kernel_reply("kernel_reply_route_dump_v6");
    assert_eq!(decode_all(&v6), Messages::new(&v6).count());
    let routes = parsed(&v6, 24, Route::parse);
    let onlink_v6: Vec<_> = routes
        .iter()
        .filter(|r| r.is_onlink())
        .map(|r| r.dst)
        .collect();
    assert_eq!(onlink_v6, [net("2001:db8::/64")]);
    let default = routes.iter().find(|r| r.is_default()).unwrap();
    assert_eq!(default.gateway, Some("2001:db8::1".parse().unwrap()));
    assert_eq!(default.metric, Some(1024));
    assert_eq!(
        default.oif,
        routes
            .iter()
            .find(|r| r.dst == net("2001:db8::/64"))
            .unwrap()
            .oif
    );
}
