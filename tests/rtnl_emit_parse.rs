//! Emit -> parse properties of every rtnetlink request the crate builds:
//! random specs (links of each kind, renames, up/down, MTU, groups, netns
//! moves, addresses, routes, lookups, dumps) are emitted, and the bytes are
//! read back with the crate's own views (`Messages`, `Attrs`, `Link::parse`,
//! `Address::parse`, `Route::parse`). Every field put in must come back,
//! nothing else may be there, and every message, attribute and nest must be
//! framed right: lengths that cover exactly their contents, 4-byte alignment,
//! zero padding. Specs the builders must refuse are refused.
//!
//! Deterministic: a fixed seed, or `IPVLAN_RTNL_SEED=N` to explore others
//! (`IPVLAN_RTNL_CASES=N` cases per property); a failure prints the seed
//! that reproduces it.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd};
use std::panic::{self, AssertUnwindSafe};

use ipnet::IpNet;
use ipvlan::netlink::consts::*;
use ipvlan::netlink::{Attr, Attrs, Header, MessageBuilder, MessageView, Messages};
use ipvlan::rtnl::addr::{self, IfAddrMsg};
use ipvlan::rtnl::link::{self, IfInfoMsg};
use ipvlan::rtnl::route::{self, RtMsg};
use ipvlan::rtnl::{
    AddrFlags, Address, IpFamily, IpvlanFlag, IpvlanMode, Link, LinkData, LinkKind, LinkSpec,
    MacvlanMode, Reported, Route, RouteSpec,
};

const SEED_ENV: &str = "IPVLAN_RTNL_SEED";
const CASES_ENV: &str = "IPVLAN_RTNL_CASES";
const DEFAULT_SEED: u64 = 0x1970_0101_1e57_5eed;
const DEFAULT_CASES: u64 = 3000;

/// SplitMix64: small, fast, and good enough to pick test cases.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True one time in `n`.
    fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }

    fn u32(&mut self) -> u32 {
        self.next() as u32
    }

    fn u16(&mut self) -> u16 {
        self.next() as u16
    }

    fn u8(&mut self) -> u8 {
        self.next() as u8
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// A u32 that is often a boundary value.
    fn edgy_u32(&mut self) -> u32 {
        match self.below(4) {
            0 => self.pick(&[0, 1, 255, 256, 65_535, 65_536, u32::MAX - 1, u32::MAX]),
            1 => self.below(300) as u32,
            _ => self.u32(),
        }
    }

    fn ipv4(&mut self) -> Ipv4Addr {
        Ipv4Addr::from(self.u32())
    }

    fn ipv6(&mut self) -> Ipv6Addr {
        Ipv6Addr::from((u128::from(self.next()) << 64) | u128::from(self.next()))
    }

    fn ip(&mut self, family: IpFamily) -> IpAddr {
        match family {
            IpFamily::V4 => IpAddr::V4(self.ipv4()),
            IpFamily::V6 => IpAddr::V6(self.ipv6()),
        }
    }

    fn family(&mut self) -> IpFamily {
        self.pick(&[IpFamily::V4, IpFamily::V6])
    }

    /// An address with a prefix length valid for its family.
    fn net(&mut self, family: IpFamily) -> IpNet {
        let addr = self.ip(family);
        let max = match family {
            IpFamily::V4 => 32,
            IpFamily::V6 => 128,
        };
        IpNet::new(addr, self.below(max + 1) as u8).unwrap()
    }

    /// A name the kernel takes as it is: 1 to 15 bytes, any UTF-8 but '/',
    /// ':', '%' (a template the kernel fills in), NUL and the bytes its
    /// `isspace` calls spaces (0x0B and 0xA0 among them: no 'à'), not "."
    /// or "..".
    fn ifname(&mut self) -> String {
        const PIECES: &[&str] = &[
            "a",
            "z",
            "e",
            "t",
            "h",
            "0",
            "9",
            ".",
            "-",
            "_",
            "@",
            "é",
            "€",
            "\u{1f600}",
            "~",
        ];
        loop {
            let target = 1 + self.below(15) as usize;
            let mut name = String::new();
            while name.len() < target {
                let piece = self.pick(PIECES);
                if name.len() + piece.len() > link::IFNAME_MAX {
                    break;
                }
                name.push_str(piece);
            }
            if !name.is_empty() && name != "." && name != ".." {
                return name;
            }
        }
    }

    /// A name the kernel refuses.
    fn bad_ifname(&mut self) -> String {
        match self.below(6) {
            0 => String::new(),
            1 => self.pick(&[".", ".."]).to_string(),
            2 => "sixteen-bytes-xx".to_string(),
            _ => {
                let mut name = self.ifname();
                if name.len() == link::IFNAME_MAX {
                    name.pop();
                }
                let at = (0..=name.len())
                    .filter(|&i| name.is_char_boundary(i))
                    .nth(self.below(name.chars().count() as u64 + 1) as usize)
                    .unwrap_or(0);
                name.insert(
                    at,
                    self.pick(&['/', ':', '%', ' ', '\t', '\n', '\u{b}', '\0', '\u{a0}']),
                );
                name
            }
        }
    }

    fn addr_flags(&mut self) -> AddrFlags {
        match self.below(3) {
            0 => AddrFlags::empty(),
            1 => AddrFlags::from_bits_truncate(self.u32()),
            _ => AddrFlags::from_bits_retain(self.u32()),
        }
    }
}

/// Runs `check` on `IPVLAN_RTNL_CASES` generated cases; a failing case is
/// reported with the seed that reproduces it.
fn property(name: &str, check: impl Fn(&mut Rng)) {
    let seed = std::env::var(SEED_ENV)
        .ok()
        .map(|s| {
            let s = s.trim();
            match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            }
            .unwrap_or_else(|_| panic!("{SEED_ENV}={s}: not a number"))
        })
        .unwrap_or(DEFAULT_SEED);
    let cases = std::env::var(CASES_ENV)
        .ok()
        .map(|s| s.trim().parse().expect("IPVLAN_RTNL_CASES: not a number"))
        .unwrap_or(DEFAULT_CASES);
    // Each property draws its own stream, so adding one changes no other.
    let stream = name.bytes().fold(seed, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut rng = Rng(stream);
    for case in 0..cases {
        if let Err(panic) = panic::catch_unwind(AssertUnwindSafe(|| check(&mut rng))) {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("panic");
            panic!(
                "{name}: case {case} of {cases} failed: {why}\n\
                 reproduce with {SEED_ENV}={seed:#x} {CASES_ENV}={} cargo test --test rtnl_emit_parse {name}",
                case + 1
            );
        }
    }
}

/// One attribute as found on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RawAttr {
    kind: u16,
    /// Offset of its header in the message.
    offset: usize,
    payload: Vec<u8>,
}

/// Walks `msg[start..end]` by hand, independently of the crate's
/// iterator, and checks its framing: every attribute at a 4-byte aligned
/// offset, its length at least a header and within the area, zero padding
/// after it, and the area filled exactly (no slack, no overrun).
fn raw_attrs(msg: &[u8], start: usize, end: usize) -> Vec<RawAttr> {
    assert_eq!(start % 4, 0, "attribute area starts unaligned at {start}");
    assert_eq!(end % 4, 0, "attribute area ends unaligned at {end}");
    let mut out = Vec::new();
    let mut offset = start;
    while offset < end {
        assert!(offset + 4 <= end, "truncated attribute header at {offset}");
        let len = usize::from(u16::from_ne_bytes([msg[offset], msg[offset + 1]]));
        let kind = u16::from_ne_bytes([msg[offset + 2], msg[offset + 3]]);
        assert!(len >= 4, "attribute {kind} at {offset}: length {len}");
        let padded = (len + 3) & !3;
        assert!(
            offset + padded <= end,
            "attribute {kind} at {offset}: length {len} runs past its area ({end})"
        );
        assert!(
            msg[offset + len..offset + padded].iter().all(|&b| b == 0),
            "attribute {kind} at {offset}: padding is not zero"
        );
        assert_eq!(
            kind & (NLA_F_NESTED | NLA_F_NET_BYTEORDER),
            0,
            "attribute {kind:#x} at {offset}: flag bits set"
        );
        out.push(RawAttr {
            kind,
            offset,
            payload: msg[offset + 4..offset + len].to_vec(),
        });
        offset += padded;
    }
    assert_eq!(offset, end, "attributes overrun their area");
    out
}

/// The crate's view of the same area must yield the same attributes.
fn same_as_crate_view(raw: &[RawAttr], area: &[u8]) {
    let ours: Vec<(u16, Vec<u8>)> = Attrs::new(area)
        .map(|a| {
            let a = a.expect("the crate's attribute walk fails");
            (a.kind(), a.payload().to_vec())
        })
        .collect();
    let theirs: Vec<(u16, Vec<u8>)> = raw.iter().map(|a| (a.kind, a.payload.clone())).collect();
    assert_eq!(ours, theirs, "Attrs disagrees with the raw walk");
}

/// Attributes by type, each type at most once.
fn by_kind(raw: &[RawAttr]) -> BTreeMap<u16, RawAttr> {
    let mut map = BTreeMap::new();
    for attr in raw {
        assert!(
            map.insert(attr.kind, attr.clone()).is_none(),
            "attribute {} sent twice",
            attr.kind
        );
    }
    map
}

/// A checked request: its bytes, family header and top-level attributes.
struct Parsed {
    bytes: Vec<u8>,
    family: Vec<u8>,
    attrs: BTreeMap<u16, RawAttr>,
}

impl Parsed {
    fn view(&self) -> MessageView<'_> {
        Messages::new(&self.bytes).next().unwrap().unwrap()
    }

    fn kinds(&self) -> Vec<u16> {
        self.attrs.keys().copied().collect()
    }

    fn u32(&self, kind: u16) -> Option<u32> {
        self.attrs.get(&kind).map(|a| {
            u32::from_ne_bytes(a.payload.as_slice().try_into().unwrap_or_else(|_| {
                panic!("attribute {kind}: {} bytes, not a u32", a.payload.len())
            }))
        })
    }

    /// A string attribute's payload: the bytes, then one NUL.
    fn c_string(&self, kind: u16) -> Option<String> {
        self.attrs.get(&kind).map(|a| c_string(&a.payload))
    }
}

fn c_string(payload: &[u8]) -> String {
    let (last, text) = payload.split_last().expect("empty string attribute");
    assert_eq!(*last, 0, "string attribute without its NUL: {payload:?}");
    assert!(!text.contains(&0), "NUL inside a string attribute");
    String::from_utf8(text.to_vec()).expect("string attribute is not UTF-8")
}

/// Emits `msg` with random seq and pid and checks the framing of the whole
/// message, top-level attributes included.
fn emit(rng: &mut Rng, msg: &MessageBuilder, kind: u16, flags: u16, family_len: usize) -> Parsed {
    let (seq, pid) = (rng.u32(), rng.u32());
    let bytes = msg
        .to_bytes(seq, pid)
        .expect("request fits its length fields");
    let unsent = msg.as_bytes();
    assert_eq!(bytes.len(), unsent.len());
    assert_eq!((&bytes[..8], &bytes[16..]), (&unsent[..8], &unsent[16..]));
    assert_eq!(bytes.len() % 4, 0, "message length not aligned");
    let mut messages = Messages::new(&bytes);
    let view = messages.next().expect("one message").expect("it parses");
    assert!(messages.next().is_none(), "exactly one message");
    let header: Header = view.header;
    assert_eq!(
        header.len as usize,
        bytes.len(),
        "nlmsg_len covers the message"
    );
    assert_eq!((header.kind, header.flags), (kind, flags), "type and flags");
    assert_eq!((header.seq, header.pid), (seq, pid), "seq and pid");
    assert_eq!((msg.kind(), msg.flags()), (kind, flags));
    let family = view
        .family_header(family_len)
        .expect("family header")
        .to_vec();
    let start = 16 + family_len;
    let raw = raw_attrs(&bytes, start, bytes.len());
    same_as_crate_view(&raw, view.attr_area(family_len).unwrap());
    Parsed {
        attrs: by_kind(&raw),
        bytes,
        family,
    }
}

const ADD_FLAGS: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
const SET_FLAGS: u16 = NLM_F_REQUEST | NLM_F_ACK;
const APPEND_FLAGS: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_APPEND;
const GET_EXT_MASK: u32 = RTEXT_FILTER_SKIP_STATS;

/// Open files whose descriptors a request may carry (a `LinkSpec` borrows
/// the namespace file it names, so the numbers must be real).
fn some_files() -> Vec<File> {
    (0..4)
        .map(|_| File::open("/dev/null").expect("/dev/null opens"))
        .collect()
}

fn random_link_spec<'f>(rng: &mut Rng, files: &'f [File]) -> LinkSpec<'f> {
    let name = rng.ifname();
    let parent = rng.edgy_u32();
    let mut spec = match rng.below(5) {
        0 => {
            let mode = rng.pick(&IpvlanMode::ALL);
            let flag = rng.pick(&IpvlanFlag::ALL);
            LinkSpec::ipvlan(&name, parent, mode, flag)
        }
        1 => LinkSpec::vlan(&name, parent, rng.u16()),
        2 => LinkSpec::dummy(&name),
        3 => LinkSpec::veth(&name, &rng.ifname()),
        _ => {
            let mode = rng.pick(&[
                MacvlanMode::Private,
                MacvlanMode::Vepa,
                MacvlanMode::Bridge,
                MacvlanMode::Passthru,
            ]);
            LinkSpec::macvlan(&name, parent, mode)
        }
    };
    if rng.one_in(2) {
        spec = spec.mtu(rng.edgy_u32());
    }
    if rng.one_in(2) {
        let at = rng.below(files.len() as u64) as usize;
        spec = spec.in_netns_fd(files[at].as_fd());
    }
    if rng.one_in(3) {
        spec = spec.group(rng.edgy_u32());
    }
    spec
}

#[test]
fn link_create_round_trips() {
    property("link_create_round_trips", |rng| {
        let files = some_files();
        let spec = random_link_spec(rng, &files);
        let msg = spec.request().expect("a valid spec builds");
        let p = emit(rng, &msg, RTM_NEWLINK, ADD_FLAGS, IfInfoMsg::LEN);
        let ctx = format!("{spec:?}\n{:02x?}", p.bytes);
        assert_eq!(
            IfInfoMsg::parse(&p.family).unwrap(),
            IfInfoMsg::default(),
            "{ctx}"
        );

        let mut want = vec![IFLA_IFNAME, IFLA_LINKINFO];
        want.extend(spec.netns_fd.map(|_| IFLA_NET_NS_FD));
        want.extend(spec.mtu.map(|_| IFLA_MTU));
        want.extend(spec.group.map(|_| IFLA_GROUP));
        want.extend(spec.parent.map(|_| IFLA_LINK));
        want.sort();
        assert_eq!(p.kinds(), want, "{ctx}");
        assert_eq!(
            p.c_string(IFLA_IFNAME).as_deref(),
            Some(&*spec.name),
            "{ctx}"
        );
        assert_eq!(
            p.u32(IFLA_NET_NS_FD),
            spec.netns_fd.map(|fd| fd.as_raw_fd() as u32),
            "{ctx}"
        );

        // The crate's own parser reads the request as it reads a reply.
        let link = Link::parse(&p.view()).unwrap_or_else(|e| panic!("{e}\n{ctx}"));
        let want_data = match &spec.kind {
            LinkKind::Ipvlan { mode, flag } => LinkData::Ipvlan {
                mode: Reported::Known(*mode),
                flag: Reported::Known(*flag),
            },
            LinkKind::Vlan { id } => LinkData::Vlan {
                id: *id,
                protocol: None,
            },
            LinkKind::Macvlan { mode } => LinkData::Macvlan {
                mode: mode.to_u32(),
            },
            LinkKind::Dummy | LinkKind::Veth { .. } => LinkData::None,
        };
        let expected = Link {
            index: 0,
            name: spec.name.clone(),
            raw_name: None,
            flags: 0,
            link_type: 0,
            mtu: spec.mtu,
            mac: None,
            parent: spec.parent,
            link_netnsid: None,
            master: None,
            group: spec.group,
            operstate: None,
            kind: Some(spec.kind.name().to_string()),
            data: want_data,
        };
        assert_eq!(link, expected, "{ctx}");

        // IFLA_LINKINFO: the kind without NUL, then the kind's data nest.
        let info = &p.attrs[&IFLA_LINKINFO];
        let info_start = info.offset + 4;
        let inner = raw_attrs(&p.bytes, info_start, info_start + info.payload.len());
        same_as_crate_view(&inner, &info.payload);
        let inner = by_kind(&inner);
        assert_eq!(
            inner[&IFLA_INFO_KIND].payload,
            spec.kind.name().as_bytes(),
            "{ctx}"
        );
        let data = inner.get(&IFLA_INFO_DATA);
        assert_eq!(
            data.is_some(),
            !matches!(spec.kind, LinkKind::Dummy),
            "{ctx}"
        );
        let Some(data) = data else {
            assert_eq!(inner.len(), 1, "{ctx}");
            return;
        };
        assert_eq!(inner.len(), 2, "{ctx}");
        let data_start = data.offset + 4;
        let fields = raw_attrs(&p.bytes, data_start, data_start + data.payload.len());
        same_as_crate_view(&fields, &data.payload);
        let fields = by_kind(&fields);
        let u16_of = |a: &RawAttr| u16::from_ne_bytes(a.payload.as_slice().try_into().unwrap());
        let u32_of = |a: &RawAttr| u32::from_ne_bytes(a.payload.as_slice().try_into().unwrap());
        match &spec.kind {
            LinkKind::Ipvlan { mode, flag } => {
                assert_eq!(fields.len(), 2, "{ctx}");
                assert_eq!(u16_of(&fields[&IFLA_IPVLAN_MODE]), mode.to_raw(), "{ctx}");
                assert_eq!(u16_of(&fields[&IFLA_IPVLAN_FLAGS]), flag.to_raw(), "{ctx}");
            }
            LinkKind::Vlan { id } => {
                assert_eq!(fields.len(), 1, "{ctx}");
                assert_eq!(u16_of(&fields[&IFLA_VLAN_ID]), *id, "{ctx}");
            }
            LinkKind::Macvlan { mode } => {
                assert_eq!(fields.len(), 1, "{ctx}");
                assert_eq!(u32_of(&fields[&IFLA_MACVLAN_MODE]), mode.to_u32(), "{ctx}");
            }
            LinkKind::Veth { peer } => {
                // VETH_INFO_PEER: an ifinfomsg, then the peer's attributes.
                assert_eq!(fields.len(), 1, "{ctx}");
                let nest = &fields[&VETH_INFO_PEER];
                assert!(nest.payload.len() >= IfInfoMsg::LEN, "{ctx}");
                assert_eq!(
                    IfInfoMsg::parse(&nest.payload).unwrap(),
                    IfInfoMsg::default(),
                    "{ctx}"
                );
                let peer_start = nest.offset + 4 + IfInfoMsg::LEN;
                let peer_attrs =
                    raw_attrs(&p.bytes, peer_start, nest.offset + 4 + nest.payload.len());
                same_as_crate_view(&peer_attrs, &nest.payload[IfInfoMsg::LEN..]);
                let peer_attrs = by_kind(&peer_attrs);
                assert_eq!(peer_attrs.len(), 1, "{ctx}");
                assert_eq!(c_string(&peer_attrs[&IFLA_IFNAME].payload), *peer, "{ctx}");
                // The crate's reader finds the peer's name through its views.
                let peer_name = peer_name_via_views(&p.view());
                assert_eq!(peer_name.as_deref(), Some(peer.as_str()), "{ctx}");
            }
            LinkKind::Dummy => unreachable!(),
        }
    });
}

/// A veth request's peer name, read only through the crate's views.
fn peer_name_via_views(view: &MessageView<'_>) -> Option<String> {
    fn find(attrs: Attrs<'_>, kind: u16) -> Option<Attr<'_>> {
        attrs.filter_map(Result::ok).find(|a| a.kind() == kind)
    }
    let info = find(view.attrs(IfInfoMsg::LEN).ok()?, IFLA_LINKINFO)?;
    let data = find(info.nested(), IFLA_INFO_DATA)?;
    let peer = find(data.nested(), VETH_INFO_PEER)?;
    let area = peer.payload().get(IfInfoMsg::LEN..)?;
    let name = find(Attrs::new(area), IFLA_IFNAME)?;
    name.str().ok().map(str::to_string)
}

#[test]
fn link_create_refuses_names_the_kernel_refuses() {
    property("link_create_refuses_names_the_kernel_refuses", |rng| {
        let bad = rng.bad_ifname();
        let good = rng.ifname();
        let spec = match rng.below(3) {
            0 => LinkSpec::dummy(&bad),
            1 => LinkSpec::veth(&bad, &good),
            _ => LinkSpec::veth(&good, &bad),
        };
        assert!(spec.request().is_err(), "{spec:?} was accepted");
        assert!(link::rename_request(1, &bad).is_err(), "rename to {bad:?}");
        assert!(link::get_by_name_request(&bad).is_err(), "get {bad:?}");
    });
}

#[test]
fn link_changes_round_trip() {
    property("link_changes_round_trip", |rng| {
        let index = rng.edgy_u32();
        let header_of = |p: &Parsed| IfInfoMsg::parse(&p.family).unwrap();
        let for_index = IfInfoMsg::for_index(index);
        match rng.below(8) {
            0 => {
                let name = rng.ifname();
                let msg = link::rename_request(index, &name).unwrap();
                let p = emit(rng, &msg, RTM_NEWLINK, SET_FLAGS, IfInfoMsg::LEN);
                assert_eq!(header_of(&p), for_index);
                assert_eq!(p.kinds(), [IFLA_IFNAME]);
                assert_eq!(p.c_string(IFLA_IFNAME), Some(name.clone()));
                let link = Link::parse(&p.view()).unwrap();
                assert_eq!((link.index, link.name), (index, name));
            }
            1 => {
                let up = rng.one_in(2);
                let msg = link::set_up_request(index, up);
                let p = emit(rng, &msg, RTM_NEWLINK, SET_FLAGS, IfInfoMsg::LEN);
                let want = IfInfoMsg {
                    flags: if up { IFF_UP } else { 0 },
                    change: IFF_UP,
                    ..for_index
                };
                assert_eq!(header_of(&p), want);
                assert!(p.attrs.is_empty());
                assert_eq!(Link::parse(&p.view()).unwrap().is_up(), up);
            }
            2 => {
                let mtu = rng.edgy_u32();
                let p = emit(
                    rng,
                    &link::set_mtu_request(index, mtu),
                    RTM_NEWLINK,
                    SET_FLAGS,
                    IfInfoMsg::LEN,
                );
                assert_eq!(header_of(&p), for_index);
                assert_eq!(p.kinds(), [IFLA_MTU]);
                assert_eq!(Link::parse(&p.view()).unwrap().mtu, Some(mtu));
            }
            3 => {
                let group = rng.edgy_u32();
                let p = emit(
                    rng,
                    &link::set_group_request(index, group),
                    RTM_NEWLINK,
                    SET_FLAGS,
                    IfInfoMsg::LEN,
                );
                assert_eq!(header_of(&p), for_index);
                assert_eq!(p.kinds(), [IFLA_GROUP]);
                assert_eq!(Link::parse(&p.view()).unwrap().group, Some(group));
            }
            4 => {
                let group = rng.edgy_u32();
                let p = emit(
                    rng,
                    &link::del_group_request(group),
                    RTM_DELLINK,
                    SET_FLAGS,
                    IfInfoMsg::LEN,
                );
                assert_eq!(header_of(&p), IfInfoMsg::default());
                assert_eq!(p.kinds(), [IFLA_GROUP]);
                assert_eq!(p.u32(IFLA_GROUP), Some(group));
            }
            5 => {
                let files = some_files();
                let file = &files[rng.below(files.len() as u64) as usize];
                let fd = file.as_raw_fd();
                let p = emit(
                    rng,
                    &link::set_netns_request(index, file.as_fd()),
                    RTM_NEWLINK,
                    SET_FLAGS,
                    IfInfoMsg::LEN,
                );
                assert_eq!(header_of(&p), for_index);
                assert_eq!(p.kinds(), [IFLA_NET_NS_FD]);
                assert_eq!(p.u32(IFLA_NET_NS_FD), Some(fd as u32));
            }
            6 => {
                let p = emit(
                    rng,
                    &link::del_request(index),
                    RTM_DELLINK,
                    SET_FLAGS,
                    IfInfoMsg::LEN,
                );
                assert_eq!(header_of(&p), for_index);
                assert!(p.attrs.is_empty());
            }
            _ => {
                let p = emit(
                    rng,
                    &link::get_by_index_request(index),
                    RTM_GETLINK,
                    NLM_F_REQUEST,
                    IfInfoMsg::LEN,
                );
                assert_eq!(header_of(&p), for_index);
                assert_eq!(p.kinds(), [IFLA_EXT_MASK]);
                assert_eq!(p.u32(IFLA_EXT_MASK), Some(GET_EXT_MASK));
            }
        }
    });
}

#[test]
fn link_lookups_and_dump_round_trip() {
    property("link_lookups_and_dump_round_trip", |rng| {
        let name = rng.ifname();
        let msg = link::get_by_name_request(&name).unwrap();
        let p = emit(rng, &msg, RTM_GETLINK, NLM_F_REQUEST, IfInfoMsg::LEN);
        assert_eq!(IfInfoMsg::parse(&p.family).unwrap(), IfInfoMsg::default());
        assert_eq!(p.kinds(), [IFLA_IFNAME, IFLA_EXT_MASK]);
        assert_eq!(p.c_string(IFLA_IFNAME), Some(name));
        assert_eq!(p.u32(IFLA_EXT_MASK), Some(GET_EXT_MASK));

        let p = emit(
            rng,
            &link::dump_request(),
            RTM_GETLINK,
            NLM_F_REQUEST | NLM_F_DUMP,
            IfInfoMsg::LEN,
        );
        let want = IfInfoMsg {
            family: libc::AF_PACKET as u8,
            ..IfInfoMsg::default()
        };
        assert_eq!(IfInfoMsg::parse(&p.family).unwrap(), want);
        assert_eq!(p.kinds(), [IFLA_EXT_MASK]);
        assert_eq!(p.u32(IFLA_EXT_MASK), Some(GET_EXT_MASK));
    });
}

fn family_byte(net: &IpNet) -> u8 {
    match net {
        IpNet::V4(_) => AF_INET,
        IpNet::V6(_) => AF_INET6,
    }
}

#[test]
fn addresses_round_trip() {
    property("addresses_round_trip", |rng| {
        let index = rng.edgy_u32();
        let family = rng.family();
        let net = rng.net(family);
        let add = rng.one_in(2);
        let flags = if add {
            rng.addr_flags()
        } else {
            AddrFlags::empty()
        };
        let (msg, kind, nl_flags) = if add {
            (addr::add_request(index, net, flags), RTM_NEWADDR, ADD_FLAGS)
        } else {
            (addr::del_request(index, net), RTM_DELADDR, SET_FLAGS)
        };
        let p = emit(rng, &msg, kind, nl_flags, IfAddrMsg::LEN);
        let ctx = format!("add {add} {index} {net} {flags:?}\n{:02x?}", p.bytes);
        let header = IfAddrMsg::parse(&p.family).unwrap();
        let want_header = IfAddrMsg {
            family: family_byte(&net),
            prefix_len: net.prefix_len(),
            flags: flags.bits() as u8,
            scope: 0,
            index,
        };
        assert_eq!(header, want_header, "{ctx}");
        let broadcast = match net {
            IpNet::V4(v4) if add && v4.prefix_len() <= 30 => Some(v4.broadcast()),
            _ => None,
        };
        let mut want = vec![IFA_ADDRESS, IFA_LOCAL];
        want.extend(broadcast.map(|_| IFA_BROADCAST));
        if !flags.is_empty() {
            want.push(IFA_FLAGS);
        }
        assert_eq!(p.kinds(), want, "{ctx}");
        let octets = |ip: IpAddr| match ip {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        assert_eq!(p.attrs[&IFA_LOCAL].payload, octets(net.addr()), "{ctx}");
        assert_eq!(p.attrs[&IFA_ADDRESS].payload, octets(net.addr()), "{ctx}");
        let parsed = Address::parse(&p.view()).unwrap_or_else(|e| panic!("{e}\n{ctx}"));
        let expected = Address {
            index,
            net,
            flags,
            scope: 0,
            broadcast,
            label: None,
            proto: None,
        };
        assert_eq!(parsed, expected, "{ctx}");
    });
}

#[test]
fn address_dump_round_trips() {
    property("address_dump_round_trips", |rng| {
        let any = rng.u8();
        let family = rng.pick(&[AF_UNSPEC, AF_INET, AF_INET6, any]);
        let p = emit(
            rng,
            &addr::dump_request(family),
            RTM_GETADDR,
            NLM_F_REQUEST | NLM_F_DUMP,
            IfAddrMsg::LEN,
        );
        let want = IfAddrMsg {
            family,
            ..IfAddrMsg::default()
        };
        assert_eq!(IfAddrMsg::parse(&p.family).unwrap(), want);
        assert!(p.attrs.is_empty());
    });
}

fn random_route(rng: &mut Rng) -> RouteSpec {
    let family = rng.family();
    let mut spec = match rng.below(4) {
        0 => RouteSpec::default_via(rng.ip(family)),
        1 => RouteSpec::default_dev(family, rng.edgy_u32()),
        2 => RouteSpec::default_route(family),
        _ => RouteSpec::to(rng.net(family)),
    };
    if spec.gateway.is_none() && rng.one_in(2) {
        spec = spec.via(rng.ip(family));
    }
    if spec.oif.is_none() && rng.one_in(2) {
        spec = spec.dev(rng.edgy_u32());
    }
    if spec.oif.is_some() && rng.one_in(3) {
        spec = spec.onlink();
    }
    if rng.one_in(2) {
        spec = spec.table(rng.edgy_u32());
    }
    if rng.one_in(2) {
        spec = spec.metric(rng.edgy_u32());
    }
    spec
}

#[test]
fn routes_round_trip() {
    property("routes_round_trip", |rng| {
        let spec = random_route(rng);
        let add = rng.one_in(2);
        let (msg, kind, nl_flags) = match (add, rng.one_in(2)) {
            (true, false) => (spec.add_request(), RTM_NEWROUTE, ADD_FLAGS),
            // Beside a route of the same key (a CNI config's routes).
            (true, true) => (spec.append_request(), RTM_NEWROUTE, APPEND_FLAGS),
            (false, _) => (spec.del_request(), RTM_DELROUTE, SET_FLAGS),
        };
        let msg = msg.unwrap_or_else(|e| panic!("{spec:?}: {e}"));
        let p = emit(rng, &msg, kind, nl_flags, RtMsg::LEN);
        let ctx = format!("add {add} {spec:?}\n{:02x?}", p.bytes);
        let family = IpFamily::of(spec.dst.addr());
        let (protocol, scope, route_kind) = match (add, family, spec.gateway) {
            (true, IpFamily::V4, None) => (RTPROT_BOOT, RT_SCOPE_LINK, RTN_UNICAST),
            (true, _, _) => (RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST),
            // iproute2's deletes: RT_SCOPE_NOWHERE (any scope) for IPv4;
            // IPv6 routes all have universe scope.
            (false, IpFamily::V6, _) => (0, RT_SCOPE_UNIVERSE, 0),
            (false, _, _) => (0, 255, 0),
        };
        let want_header = RtMsg {
            family: family.af(),
            dst_len: spec.dst.prefix_len(),
            src_len: 0,
            tos: 0,
            table: u8::try_from(spec.table).unwrap_or(RT_TABLE_UNSPEC),
            protocol,
            scope,
            kind: route_kind,
            flags: if spec.onlink { RTNH_F_ONLINK } else { 0 },
        };
        assert_eq!(RtMsg::parse(&p.family).unwrap(), want_header, "{ctx}");
        let mut want = Vec::new();
        if spec.dst.prefix_len() > 0 {
            want.push(RTA_DST);
        }
        want.extend(spec.gateway.map(|_| RTA_GATEWAY));
        want.extend(spec.oif.map(|_| RTA_OIF));
        want.extend(spec.metric.map(|_| RTA_PRIORITY));
        if spec.table > 255 {
            want.push(RTA_TABLE);
        }
        want.sort();
        assert_eq!(p.kinds(), want, "{ctx}");
        let route = Route::parse(&p.view()).unwrap_or_else(|e| panic!("{e}\n{ctx}"));
        let expected = Route {
            dst: spec.dst,
            gateway: spec.gateway,
            oif: spec.oif,
            prefsrc: None,
            table: spec.table,
            protocol,
            scope,
            kind: route_kind,
            flags: want_header.flags,
            metric: spec.metric,
            multipath: Vec::new(),
        };
        assert_eq!(route, expected, "{ctx}");
    });
}

#[test]
fn routes_the_kernel_would_refuse_are_refused() {
    property("routes_the_kernel_would_refuse_are_refused", |rng| {
        let mut spec = random_route(rng);
        let other = match IpFamily::of(spec.dst.addr()) {
            IpFamily::V4 => IpFamily::V6,
            IpFamily::V6 => IpFamily::V4,
        };
        if rng.one_in(2) {
            spec.gateway = Some(rng.ip(other));
        } else {
            spec.oif = None;
            spec.onlink = true;
        }
        assert!(spec.add_request().is_err(), "{spec:?}");
        assert!(spec.del_request().is_err(), "{spec:?}");
    });
}

#[test]
fn route_dump_round_trips() {
    property("route_dump_round_trips", |rng| {
        let family = rng.family();
        let table = rng.edgy_u32();
        let p = emit(
            rng,
            &route::dump_request(family, table),
            RTM_GETROUTE,
            NLM_F_REQUEST | NLM_F_DUMP,
            RtMsg::LEN,
        );
        let want = RtMsg {
            family: family.af(),
            ..RtMsg::default()
        };
        assert_eq!(RtMsg::parse(&p.family).unwrap(), want);
        assert_eq!(p.kinds(), [RTA_TABLE]);
        assert_eq!(p.u32(RTA_TABLE), Some(table));
    });
}

/// The checker itself must catch bad framing, or the properties above
/// prove nothing.
#[test]
fn the_framing_check_catches_bad_lengths_and_padding() {
    let mut msg = MessageBuilder::new(RTM_NEWLINK, SET_FLAGS);
    msg.family_header(&[0; 16]).put_u8(1, 7).put_str(3, "ab");
    let good = msg.to_bytes(1, 2).unwrap();
    assert_eq!(raw_attrs(&good, 32, good.len()).len(), 2);
    let caught =
        |bytes: Vec<u8>| panic::catch_unwind(|| raw_attrs(&bytes, 32, bytes.len())).is_err();
    let mut long = good.clone();
    long[32] = 9; // first attribute claims a byte of the next one
    assert!(caught(long));
    let mut short = good.clone();
    short[32] = 3; // shorter than its header
    assert!(caught(short));
    let mut dirty = good.clone();
    dirty[37] = 1; // padding after the u8
    assert!(caught(dirty));
    let mut slack = good.clone();
    slack.extend_from_slice(&[0; 4]); // an area with room after its last attribute
    assert!(caught(slack));
}
