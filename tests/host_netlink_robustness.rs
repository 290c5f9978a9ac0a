//! Parsers against hostile bytes: random, truncated and bit-flipped buffers
//! must give errors, never panics. Deterministic (xorshift PRNG, fixed seed).

use std::os::fd::AsFd;

use ipvlan::netlink::consts::IFLA_MAX;
use ipvlan::netlink::socket::{parse_done, parse_error};
use ipvlan::netlink::{AttrTable, Attrs, MessageBuilder, Messages};
use ipvlan::rtnl::link::{self, IfInfoMsg};
use ipvlan::rtnl::{
    addr, decode_all, AddrFlags, Address, IpFamily, IpvlanFlag, IpvlanMode, Link, LinkSpec,
    MacvlanMode, Route, RouteSpec,
};

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Valid messages of every kind the decoders handle, as a kernel would send
/// them (request layouts are the same as the kernel's replies).
fn corpus() -> Vec<Vec<u8>> {
    let as_reply = |mut msg: MessageBuilder, kind: u16| {
        msg.set_flags(2);
        let mut bytes = msg.to_bytes(7, 42).unwrap();
        bytes[4..6].copy_from_slice(&kind.to_ne_bytes());
        bytes
    };
    let mut out = Vec::new();
    // Any open descriptor stands for a namespace: only its number is sent.
    let netns = std::fs::File::open("/dev/null").unwrap();
    for spec in [
        LinkSpec::ipvlan("iv0", 3, IpvlanMode::L3s, IpvlanFlag::Private),
        LinkSpec::vlan("eth0.10", 3, 10).mtu(1400),
        LinkSpec::veth("va", "vb"),
        LinkSpec::macvlan("mv0", 2, MacvlanMode::Bridge).in_netns_fd(netns.as_fd()),
        LinkSpec::dummy("d0"),
    ] {
        out.push(as_reply(spec.request().unwrap(), 16));
    }
    out.push(as_reply(
        addr::add_request(3, "10.0.0.2/24".parse().unwrap(), AddrFlags::empty()),
        20,
    ));
    out.push(as_reply(
        addr::add_request(3, "fd00::2/64".parse().unwrap(), AddrFlags::NODAD),
        20,
    ));
    for spec in [
        RouteSpec::default_via("10.0.0.1".parse().unwrap()),
        RouteSpec::default_dev(IpFamily::V6, 3).metric(10),
        RouteSpec::to("10.9.0.0/16".parse().unwrap())
            .via("10.0.0.1".parse().unwrap())
            .dev(3)
            .onlink(),
    ] {
        out.push(as_reply(spec.add_request().unwrap(), 24));
    }
    // NLMSG_ERROR, capped, with an extended-ack message; an ACK; NLMSG_DONE.
    let mut err = MessageBuilder::new(2, 0x300);
    let mut payload = (-95i32).to_ne_bytes().to_vec();
    payload.extend(MessageBuilder::new(16, 0x605).to_bytes(7, 42).unwrap());
    err.family_header(&payload)
        .put(1, b"Unknown device type\0")
        .put_u32(2, 32);
    out.push(err.to_bytes(7, 42).unwrap());
    let mut ack = MessageBuilder::new(2, 0x100);
    let mut payload = 0i32.to_ne_bytes().to_vec();
    payload.extend(MessageBuilder::new(16, 5).to_bytes(7, 42).unwrap());
    ack.family_header(&payload);
    out.push(ack.to_bytes(7, 42).unwrap());
    let mut done = MessageBuilder::new(3, 2);
    done.family_header(&0i32.to_ne_bytes());
    out.push(done.to_bytes(7, 42).unwrap());
    out.extend(kernel_replies());
    out
}

/// Every message of the recorded kernel reply streams, one by one.
fn kernel_replies() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/netlink");
    let mut out = Vec::new();
    for name in [
        "kernel_reply_link_dump",
        "kernel_reply_addr_dump",
        "kernel_reply_route_dump_v4_all_tables",
        "kernel_reply_route_dump_v6",
    ] {
        let text = std::fs::read_to_string(dir.join(format!("{name}.hex"))).unwrap();
        let stream: Vec<u8> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .flat_map(|l| {
                l.split_whitespace()
                    .map(|h| u8::from_str_radix(h, 16).unwrap())
            })
            .collect();
        let mut rest = &stream[..];
        while rest.len() >= 16 {
            let len = u32::from_ne_bytes(rest[..4].try_into().unwrap()) as usize;
            out.push(rest[..len].to_vec());
            rest = &rest[(len + 3) & !3..];
        }
    }
    out
}

fn every_parser(buf: &[u8]) {
    decode_all(buf);
    for msg in Messages::new(buf).flatten() {
        let _ = Link::parse(&msg);
        let _ = Address::parse(&msg);
        let _ = Route::parse(&msg);
        let _ = parse_error(&msg);
        let _ = parse_done(&msg);
        for area in [msg.payload(), msg.attr_area(16).unwrap_or(&[])] {
            for attr in Attrs::new(area).flatten() {
                let _ = (
                    attr.u8(),
                    attr.u16(),
                    attr.u32(),
                    attr.i32(),
                    attr.str(),
                    attr.str_lossy(),
                    attr.ip(),
                );
                let _ = attr.nested().count();
            }
            let _ = AttrTable::<{ IFLA_MAX as usize + 1 }>::parse(area);
        }
    }
}

#[test]
fn corpus_decodes_fully() {
    let corpus = corpus();
    for (i, msg) in corpus.iter().enumerate() {
        assert_eq!(decode_all(msg), 1, "corpus entry {i} does not decode");
    }
    let all: Vec<u8> = corpus.concat();
    assert_eq!(decode_all(&all), corpus.len());
}

#[test]
fn random_buffers_never_panic() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let len = rng.below(256);
        let mut buf: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Make about half of them start with a plausible header.
        if len >= 16 && rng.below(2) == 0 {
            let claimed = rng.below(len + 8) as u32;
            buf[..4].copy_from_slice(&claimed.to_ne_bytes());
            let kind = [2u16, 3, 16, 20, 24][rng.below(5)];
            buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        }
        every_parser(&buf);
    }
}

#[test]
fn truncated_buffers_never_panic_and_fail_cleanly() {
    for msg in corpus() {
        for cut in 0..msg.len() {
            every_parser(&msg[..cut]);
            assert_eq!(decode_all(&msg[..cut]), 0, "a cut message never decodes");
        }
    }
}

#[test]
fn bit_flipped_buffers_never_panic() {
    let corpus = corpus();
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    let mut decoded = 0;
    for _ in 0..30_000 {
        let mut buf = corpus[rng.below(corpus.len())].clone();
        for _ in 0..1 + rng.below(4) {
            let bit = rng.below(buf.len() * 8);
            buf[bit / 8] ^= 1 << (bit % 8);
        }
        every_parser(&buf);
        decoded += decode_all(&buf);
    }
    // Most single flips land in payload bytes and still decode; the point
    // is that the others are rejected without a panic.
    assert!(decoded > 0 && decoded < 30_000, "{decoded}");
}

/// A reply as the kernel frames it inside a dump (`NLM_F_MULTI`).
fn dump_part(mut msg: MessageBuilder, kind: u16) -> Vec<u8> {
    msg.set_flags(2);
    let mut bytes = msg.to_bytes(7, 42).unwrap();
    bytes[4..6].copy_from_slice(&kind.to_ne_bytes());
    bytes
}

#[test]
fn address_dump_skips_families_it_does_not_handle() {
    // `linux/socket.h`: AF_MCTP addresses are one byte (an endpoint id).
    const AF_MCTP: u8 = 45;
    let mut mctp = MessageBuilder::new(20, 0);
    mctp.family_header(
        &addr::IfAddrMsg {
            family: AF_MCTP,
            index: 4,
            ..Default::default()
        }
        .to_bytes(),
    )
    .put_u8(2, 8); // IFA_LOCAL, 1 byte
    let datagram = [
        dump_part(
            addr::add_request(3, "10.0.0.2/24".parse().unwrap(), AddrFlags::empty()),
            20,
        ),
        dump_part(mctp, 20),
        dump_part(
            addr::add_request(3, "fd00::2/64".parse().unwrap(), AddrFlags::NODAD),
            20,
        ),
    ]
    .concat();
    let parts: Vec<_> = Messages::new(&datagram).collect::<Result<_, _>>().unwrap();
    assert_eq!(parts.len(), 3, "the framing is sound");
    assert!(Address::parse(&parts[1]).is_err(), "not an IP address");
    let addrs: Vec<_> = parts.iter().filter_map(addr::from_dump).collect();
    let nets: Vec<String> = addrs.iter().map(|a| a.net.to_string()).collect();
    assert_eq!(nets, ["10.0.0.2/24", "fd00::2/64"]);
}

#[test]
fn link_dump_keeps_odd_names_and_skips_undecodable_links() {
    let odd_name = {
        let mut msg = MessageBuilder::new(16, 0);
        msg.family_header(&IfInfoMsg::for_index(5).to_bytes())
            .put(3, b"\xffx\0"); // IFLA_IFNAME, not UTF-8
        dump_part(msg, 16)
    };
    let bad_mtu = {
        let mut msg = MessageBuilder::new(16, 0);
        msg.family_header(&IfInfoMsg::for_index(6).to_bytes())
            .put_str(3, "bad0")
            .put_u16(4, 1500); // IFLA_MTU must be a u32
        dump_part(msg, 16)
    };
    let good = dump_part(LinkSpec::dummy("d0").request().unwrap(), 16);
    let datagram = [odd_name, bad_mtu, good].concat();
    let parts: Vec<_> = Messages::new(&datagram).collect::<Result<_, _>>().unwrap();
    let links: Vec<_> = parts.iter().filter_map(link::from_dump).collect();
    assert_eq!(links.len(), 2, "{links:?}");
    assert_eq!(links[0].index, 5);
    assert_eq!(links[0].name, "\u{fffd}x");
    assert_eq!(links[0].name_bytes(), b"\xffx");
    assert_eq!(links[1].name, "d0");
    assert_eq!(links[1].raw_name, None);
    assert_eq!(links[1].name_bytes(), b"d0");
}
