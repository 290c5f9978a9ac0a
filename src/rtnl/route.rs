//! Routes (`RTM_*ROUTE`, family header `rtmsg`), main table by default.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv6Net};

use super::Handle;
use crate::netlink::consts::*;
use crate::netlink::{AttrTable, Error, MessageBuilder, MessageView, Result};

/// `RT_SCOPE_NOWHERE`: "any scope" in delete requests.
const RT_SCOPE_NOWHERE: u8 = 255;
/// The main routing table.
pub const MAIN_TABLE: u32 = RT_TABLE_MAIN as u32;

/// `struct rtmsg` (12 bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtMsg {
    /// `AF_INET` or `AF_INET6`.
    pub family: u8,
    /// Destination prefix length.
    pub dst_len: u8,
    /// Source prefix length.
    pub src_len: u8,
    /// Type of service.
    pub tos: u8,
    /// Table id if < 256 (else `RTA_TABLE`).
    pub table: u8,
    /// `RTPROT_*`.
    pub protocol: u8,
    /// `RT_SCOPE_*`.
    pub scope: u8,
    /// `RTN_*` route type.
    pub kind: u8,
    /// `RTNH_F_*` / `RTM_F_*` flags.
    pub flags: u32,
}

impl RtMsg {
    /// Size on the wire.
    pub const LEN: usize = 12;

    /// Serialises the header.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let f = self.flags.to_ne_bytes();
        [
            self.family,
            self.dst_len,
            self.src_len,
            self.tos,
            self.table,
            self.protocol,
            self.scope,
            self.kind,
            f[0],
            f[1],
            f[2],
            f[3],
        ]
    }

    /// Reads the header from the start of `b`.
    pub fn parse(b: &[u8]) -> Result<RtMsg> {
        let b = b
            .get(..Self::LEN)
            .ok_or_else(|| Error::malformed("truncated rtmsg"))?;
        Ok(RtMsg {
            family: b[0],
            dst_len: b[1],
            src_len: b[2],
            tos: b[3],
            table: b[4],
            protocol: b[5],
            scope: b[6],
            kind: b[7],
            flags: u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
        })
    }
}

/// IP version (address family) of an address, a prefix or a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpFamily {
    /// IPv4 (`AF_INET`).
    V4,
    /// IPv6 (`AF_INET6`).
    V6,
}

impl IpFamily {
    /// The `AF_*` value.
    pub fn af(self) -> u8 {
        match self {
            IpFamily::V4 => AF_INET,
            IpFamily::V6 => AF_INET6,
        }
    }

    /// The family of `addr`.
    pub fn of(addr: IpAddr) -> IpFamily {
        match addr {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    /// The family of `net`.
    pub fn of_net(net: &IpNet) -> IpFamily {
        match net {
            IpNet::V4(_) => IpFamily::V4,
            IpNet::V6(_) => IpFamily::V6,
        }
    }

    fn unspecified(self) -> IpAddr {
        match self {
            IpFamily::V4 => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpFamily::V6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        }
    }
}

impl fmt::Display for IpFamily {
    /// `IPv4` or `IPv6`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        })
    }
}

/// A route to add or delete, for [`Handle::route_add`] / [`Handle::route_del`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Destination; prefix length 0 is the default route.
    pub dst: IpNet,
    /// Next hop.
    pub gateway: Option<IpAddr>,
    /// Output interface (`RTA_OIF`).
    pub oif: Option<u32>,
    /// Treat the gateway as directly reachable on `oif` (`RTNH_F_ONLINK`).
    pub onlink: bool,
    /// Routing table; [`MAIN_TABLE`] unless set.
    pub table: u32,
    /// Metric (`RTA_PRIORITY`).
    pub metric: Option<u32>,
    /// Scope (`rtm_scope`) of an added route; unset: iproute2's default
    /// (link for an IPv4 route without gateway, universe otherwise).
    pub scope: Option<u8>,
}

/// As an error names the route: `default via 10.1.0.1 on ifindex 12`,
/// `10.1.0.0/24 on ifindex 12 table 100 metric 5`.
impl std::fmt::Display for RouteSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.dst.prefix_len() == 0 {
            f.write_str("default")?;
        } else {
            write!(f, "{}", self.dst)?;
        }
        if let Some(gateway) = self.gateway {
            write!(f, " via {gateway}")?;
        }
        if let Some(oif) = self.oif {
            write!(f, " on ifindex {oif}")?;
        }
        if self.table != MAIN_TABLE {
            write!(f, " table {}", self.table)?;
        }
        if let Some(metric) = self.metric {
            write!(f, " metric {metric}")?;
        }
        Ok(())
    }
}

impl RouteSpec {
    /// A route to `dst` (add `.via()` and/or `.dev()`).
    pub fn to(dst: IpNet) -> RouteSpec {
        RouteSpec {
            dst: dst.trunc(),
            gateway: None,
            oif: None,
            onlink: false,
            table: MAIN_TABLE,
            metric: None,
            scope: None,
        }
    }

    /// `default via GATEWAY` (IPv4 or IPv6 from the gateway's type).
    pub fn default_via(gateway: IpAddr) -> RouteSpec {
        Self::default_route(IpFamily::of(gateway)).via(gateway)
    }

    /// `default dev INDEX` (Docker's ipvlan l3 recipe; scope link for IPv4).
    pub fn default_dev(family: IpFamily, index: u32) -> RouteSpec {
        Self::default_route(family).dev(index)
    }

    /// The default route of `family`, without next hop yet.
    pub fn default_route(family: IpFamily) -> RouteSpec {
        let any = IpNet::new(family.unspecified(), 0).unwrap_or_default();
        Self::to(any)
    }

    /// Sets the gateway.
    pub fn via(mut self, gateway: IpAddr) -> RouteSpec {
        self.gateway = Some(gateway);
        self
    }

    /// Sets the output interface.
    pub fn dev(mut self, index: u32) -> RouteSpec {
        self.oif = Some(index);
        self
    }

    /// Marks the gateway as on-link (needs `.dev()`).
    pub fn onlink(mut self) -> RouteSpec {
        self.onlink = true;
        self
    }

    /// Uses routing table `table`.
    pub fn table(mut self, table: u32) -> RouteSpec {
        self.table = table;
        self
    }

    /// Sets the metric.
    pub fn metric(mut self, metric: u32) -> RouteSpec {
        self.metric = Some(metric);
        self
    }

    /// Sets the scope an added route gets (`RT_SCOPE_*`).
    pub fn scope(mut self, scope: u8) -> RouteSpec {
        self.scope = Some(scope);
        self
    }

    fn family(&self) -> IpFamily {
        IpFamily::of(self.dst.addr())
    }

    fn check(&self) -> Result<()> {
        if let Some(gateway) = self.gateway {
            if IpFamily::of(gateway) != self.family() {
                return Err(Error::invalid(format!(
                    "gateway {gateway} is not of the family of {}",
                    self.dst
                )));
            }
        }
        if self.onlink && self.oif.is_none() {
            return Err(Error::invalid("an on-link route needs an output device"));
        }
        Ok(())
    }

    fn message(&self, kind: u16, flags: u16, header: RtMsg) -> Result<MessageBuilder> {
        self.check()?;
        let mut header = header;
        header.family = self.family().af();
        header.dst_len = self.dst.prefix_len();
        header.flags = if self.onlink { RTNH_F_ONLINK } else { 0 };
        header.table = u8::try_from(self.table).unwrap_or(RT_TABLE_UNSPEC);
        let mut msg = MessageBuilder::new(kind, flags);
        msg.family_header(&header.to_bytes());
        // iproute2's order: what it adds while parsing (`DST via GW metric
        // M table T`), then the device it resolves at the end.
        // A default route is dst_len 0 without RTA_DST.
        if self.dst.prefix_len() > 0 {
            msg.put_ip(RTA_DST, self.dst.addr());
        }
        if let Some(gateway) = self.gateway {
            msg.put_ip(RTA_GATEWAY, gateway);
        }
        if let Some(metric) = self.metric {
            msg.put_u32(RTA_PRIORITY, metric);
        }
        if self.table > 255 {
            msg.put_u32(RTA_TABLE, self.table);
        }
        if let Some(oif) = self.oif {
            msg.put_u32(RTA_OIF, oif);
        }
        Ok(msg)
    }

    /// The `RTM_NEWROUTE` request (`CREATE | EXCL`), with iproute2's
    /// defaults: protocol boot, unicast, scope link for IPv4 routes without
    /// gateway, universe otherwise.
    pub fn add_request(&self) -> Result<MessageBuilder> {
        self.new_route(NLM_F_EXCL)
    }

    /// [`RouteSpec::add_request`] with `CREATE | APPEND`: a route whose
    /// destination and metric another route already has is added beside
    /// it (IPv4: after it, so the first stays the one taken; IPv6: as a
    /// further next hop), where `EXCL` fails with `EEXIST`. What the
    /// reference CNI plugins do with a config's routes: a container's
    /// second network may repeat a default route, and a route to the
    /// link's own subnet repeats the kernel's prefix route.
    pub fn append_request(&self) -> Result<MessageBuilder> {
        self.new_route(NLM_F_APPEND)
    }

    fn new_route(&self, mode: u16) -> Result<MessageBuilder> {
        let link_scope = self.family() == IpFamily::V4 && self.gateway.is_none();
        let header = RtMsg {
            protocol: RTPROT_BOOT,
            scope: match self.scope {
                Some(scope) => scope,
                None if link_scope => RT_SCOPE_LINK,
                None => RT_SCOPE_UNIVERSE,
            },
            kind: RTN_UNICAST,
            ..RtMsg::default()
        };
        self.message(
            RTM_NEWROUTE,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | mode,
            header,
        )
    }

    /// The `RTM_DELROUTE` request (any protocol and type, as iproute2; any
    /// scope for IPv4, universe for IPv6, which ignores it on delete).
    pub fn del_request(&self) -> Result<MessageBuilder> {
        let header = RtMsg {
            scope: match self.family() {
                IpFamily::V4 => RT_SCOPE_NOWHERE,
                IpFamily::V6 => RT_SCOPE_UNIVERSE,
            },
            ..RtMsg::default()
        };
        self.message(RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, header)
    }
}

/// Dump of the routes of `family` in `table` (filtered by the kernel under
/// strict checking, and again here for older kernels).
pub fn dump_request(family: IpFamily, table: u32) -> MessageBuilder {
    let mut msg = MessageBuilder::new(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP);
    let header = RtMsg {
        family: family.af(),
        ..RtMsg::default()
    };
    msg.family_header(&header.to_bytes());
    msg.put_u32(RTA_TABLE, table);
    msg
}

/// A route as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Destination (prefix length 0: default route).
    pub dst: IpNet,
    /// Next hop: `RTA_GATEWAY`, or `RTA_VIA`, whose address may be of the
    /// other family (an IPv4 route `via inet6`, RFC 5549).
    pub gateway: Option<IpAddr>,
    /// Output interface.
    pub oif: Option<u32>,
    /// Preferred source address.
    pub prefsrc: Option<IpAddr>,
    /// Table id.
    pub table: u32,
    /// `RTPROT_*` (2 kernel, 3 boot, 4 static).
    pub protocol: u8,
    /// `RT_SCOPE_*` (0 universe, 253 link, 254 host).
    pub scope: u8,
    /// `RTN_*` (1 unicast, 2 local...).
    pub kind: u8,
    /// `RTNH_F_*` flags (4 = on-link).
    pub flags: u32,
    /// Metric.
    pub metric: Option<u32>,
    /// The next hops of a multipath route (`RTA_MULTIPATH`), whose
    /// `gateway` and `oif` are then in each hop, not at the top; empty
    /// otherwise. See [`Route::hops`].
    pub multipath: Vec<NextHop>,
}

/// One next hop of a multipath route: a `struct rtnexthop` and its
/// attributes in `RTA_MULTIPATH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    /// Its gateway (`RTA_GATEWAY`, or `RTA_VIA` as for [`Route::gateway`]).
    pub gateway: Option<IpAddr>,
    /// Its output interface (`rtnh_ifindex`; none when 0).
    pub oif: Option<u32>,
}

/// A route's attributes (or a next hop's), by type.
type RouteAttrs<'a> = AttrTable<'a, { RTA_MAX as usize + 1 }>;

/// The address attribute `kind` of a route of `family`, if there is one;
/// one of the other family is malformed.
fn ip_of_family(tb: &RouteAttrs<'_>, kind: u16, family: IpFamily) -> Result<Option<IpAddr>> {
    match tb.get(kind).map(|a| a.ip()).transpose()? {
        Some(ip) if IpFamily::of(ip) != family => {
            Err(Error::malformed("route address of the wrong family"))
        }
        other => Ok(other),
    }
}

/// The gateway of a route or next hop: `RTA_GATEWAY` (of the route's
/// family), else `RTA_VIA` (`struct rtvia`: a `u16` family, then the
/// address; an IPv4 route `via inet6`), whose address is that family's. A
/// `RTA_VIA` of no IP family (MPLS) is no gateway read here.
fn gateway(tb: &RouteAttrs<'_>, family: IpFamily) -> Result<Option<IpAddr>> {
    if let Some(ip) = ip_of_family(tb, RTA_GATEWAY, family)? {
        return Ok(Some(ip));
    }
    let Some(via) = tb.get(RTA_VIA) else {
        return Ok(None);
    };
    let wrong = || Error::malformed("rtvia of a bad length for its family");
    let payload = via.payload();
    let (Some(head), Some(addr)) = (payload.get(..2), payload.get(2..)) else {
        return Err(wrong());
    };
    match u16::from_ne_bytes([head[0], head[1]]) {
        f if f == u16::from(AF_INET) => <[u8; 4]>::try_from(addr).map(IpAddr::from),
        f if f == u16::from(AF_INET6) => <[u8; 16]>::try_from(addr).map(IpAddr::from),
        _ => return Ok(None),
    }
    .map(Some)
    .map_err(|_| wrong())
}

/// `sizeof(struct rtnexthop)`: `rtnh_len` u16, `rtnh_flags` u8,
/// `rtnh_hops` u8, `rtnh_ifindex` int.
const RTNEXTHOP_LEN: usize = 8;

/// The next hops in an `RTA_MULTIPATH` payload, each `RTNH_ALIGN`ed (4),
/// its attributes within its `rtnh_len`; a tail shorter than a next hop
/// is ignored, as the kernel's `rtnh_ok` ignores it.
fn parse_multipath(mut rest: &[u8], family: IpFamily) -> Result<Vec<NextHop>> {
    let mut hops = Vec::new();
    while rest.len() >= RTNEXTHOP_LEN {
        let len = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
        if len < RTNEXTHOP_LEN || len > rest.len() {
            return Err(Error::malformed("multipath next hop of a bad length"));
        }
        let ifindex = u32::from_ne_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let tb = RouteAttrs::parse(&rest[RTNEXTHOP_LEN..len])?;
        hops.push(NextHop {
            gateway: gateway(&tb, family)?,
            oif: (ifindex != 0).then_some(ifindex),
        });
        let aligned = len.saturating_add(3) & !3;
        rest = rest.get(aligned..).unwrap_or(&[]);
    }
    Ok(hops)
}

impl Route {
    /// Where the route sends packets: its one next hop (`gateway`,
    /// `oif`), or each of a multipath route's. An IPv6 route appended to
    /// one of the same destination and metric becomes multipath, and a
    /// host's ECMP default route is one.
    pub fn hops(&self) -> Vec<NextHop> {
        match self.multipath.is_empty() {
            true => vec![NextHop {
                gateway: self.gateway,
                oif: self.oif,
            }],
            false => self.multipath.clone(),
        }
    }

    /// Whether this is a default route.
    pub fn is_default(&self) -> bool {
        self.dst.prefix_len() == 0
    }

    /// Whether packets go out through it (`RTN_UNICAST`), not a route that
    /// drops or refuses them (an IPv6 `unreachable default` sits on `lo`).
    pub fn is_unicast(&self) -> bool {
        self.kind == RTN_UNICAST
    }

    /// Whether this is the route of a prefix directly on a link (a subnet
    /// the host sits on), not a default route nor a route via a gateway.
    /// IPv4 marks those with link scope; IPv6 routes are all of universe
    /// scope, so there it is a unicast route through a device without a
    /// gateway, the link-local `fe80::/64` of every interface aside.
    pub fn is_onlink(&self) -> bool {
        if self.is_default() || self.kind != RTN_UNICAST {
            return false;
        }
        match self.dst {
            IpNet::V4(_) => self.scope == RT_SCOPE_LINK,
            IpNet::V6(dst) => {
                let link_local = Ipv6Net::new(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 64);
                self.oif.is_some() && self.gateway.is_none() && Ok(dst) != link_local
            }
        }
    }

    /// Parses an `RTM_NEWROUTE` message.
    pub fn parse(msg: &MessageView<'_>) -> Result<Route> {
        let header = RtMsg::parse(msg.payload())?;
        let family = match header.family {
            AF_INET => IpFamily::V4,
            AF_INET6 => IpFamily::V6,
            _ => return Err(Error::malformed("route of an unknown address family")),
        };
        let tb = RouteAttrs::parse(msg.attr_area(RtMsg::LEN)?)?;
        let dst_addr = ip_of_family(&tb, RTA_DST, family)?.unwrap_or(family.unspecified());
        let dst = IpNet::new(dst_addr, header.dst_len)
            .map_err(|_| Error::malformed("route prefix length too long"))?;
        let table = match tb.get(RTA_TABLE) {
            Some(attr) => attr.u32()?,
            None => u32::from(header.table),
        };
        Ok(Route {
            dst,
            gateway: gateway(&tb, family)?,
            oif: tb.get(RTA_OIF).map(|a| a.u32()).transpose()?,
            prefsrc: ip_of_family(&tb, RTA_PREFSRC, family)?,
            table,
            protocol: header.protocol,
            scope: header.scope,
            kind: header.kind,
            flags: header.flags,
            metric: tb.get(RTA_PRIORITY).map(|a| a.u32()).transpose()?,
            multipath: match tb.get(RTA_MULTIPATH) {
                Some(attr) => parse_multipath(attr.payload(), family)?,
                None => Vec::new(),
            },
        })
    }
}

impl Handle {
    /// Adds a route (`EEXIST` if the same route exists).
    pub fn route_add(&self, spec: &RouteSpec) -> Result<()> {
        spec.add_request()
            .and_then(|msg| self.socket().request(&msg))
            .map_err(|e| self.context_op(e.subject(spec.to_string()), "add route"))
    }

    /// Deletes a route (`ESRCH` if there is none).
    pub fn route_del(&self, spec: &RouteSpec) -> Result<()> {
        spec.del_request()
            .and_then(|msg| self.socket().request(&msg))
            .map_err(|e| self.context_op(e.subject(spec.to_string()), "delete route"))
    }

    /// The routes of `family` in the main table.
    pub fn routes(&self, family: IpFamily) -> Result<Vec<Route>> {
        self.routes_in_table(family, MAIN_TABLE)
    }

    /// The routes of `family` in `table` (empty if the table does not exist);
    /// messages that do not decode are left out.
    pub fn routes_in_table(&self, family: IpFamily, table: u32) -> Result<Vec<Route>> {
        // As for links and addresses, a route message that does not decode
        // is left out rather than failing the whole listing.
        let result = self.socket().dump(&dump_request(family, table), |msg| {
            if msg.header.kind != RTM_NEWROUTE {
                return Ok(None);
            }
            Ok(Route::parse(msg).ok().filter(|route| route.table == table))
        });
        match result {
            // "ipv4: FIB table does not exist": nothing was ever routed there.
            Err(err) if err.errno() == Some(libc::ENOENT) => Ok(Vec::new()),
            other => other.map_err(|e| self.context_op(e, "list routes")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families() {
        let v4: IpNet = "10.0.0.0/8".parse().unwrap();
        let v6: IpNet = "fd00::/8".parse().unwrap();
        assert_eq!(IpFamily::of_net(&v4), IpFamily::V4);
        assert_eq!(IpFamily::of_net(&v6), IpFamily::V6);
        assert_eq!(IpFamily::of(v6.addr()), IpFamily::V6);
        assert_eq!((IpFamily::V4.af(), IpFamily::V6.af()), (AF_INET, AF_INET6));
        assert_eq!(format!("{} {}", IpFamily::V4, IpFamily::V6), "IPv4 IPv6");
    }

    fn route(dst: &str, gateway: Option<&str>, scope: u8, kind: u8) -> Route {
        Route {
            dst: dst.parse().unwrap(),
            gateway: gateway.map(|g| g.parse().unwrap()),
            oif: Some(2),
            prefsrc: None,
            table: MAIN_TABLE,
            protocol: RTPROT_KERNEL,
            scope,
            kind,
            flags: 0,
            metric: None,
            multipath: Vec::new(),
        }
    }

    /// `ip -6 route append` of a second gateway to a default route makes
    /// one route with two next hops: each is read, with its gateway and
    /// device; a next hop longer than what is left is refused, a tail
    /// shorter than one ignored.
    #[test]
    fn a_multipath_routes_next_hops_are_read() {
        let hop = |gateway: &str, ifindex: u32| {
            let mut bytes = Vec::new();
            let gateway: Ipv6Addr = gateway.parse().unwrap();
            bytes.extend_from_slice(&(8u16 + 20).to_ne_bytes());
            bytes.extend_from_slice(&[0, 0]);
            bytes.extend_from_slice(&ifindex.to_ne_bytes());
            bytes.extend_from_slice(&20u16.to_ne_bytes());
            bytes.extend_from_slice(&RTA_GATEWAY.to_ne_bytes());
            bytes.extend_from_slice(&gateway.octets());
            bytes
        };
        let message = |multipath: &[u8]| {
            let mut msg = MessageBuilder::new(RTM_NEWROUTE, 0);
            let header = RtMsg {
                family: AF_INET6,
                table: RT_TABLE_MAIN,
                protocol: RTPROT_BOOT,
                kind: RTN_UNICAST,
                ..RtMsg::default()
            };
            msg.family_header(&header.to_bytes());
            msg.put_u32(RTA_PRIORITY, 1024);
            msg.put(RTA_MULTIPATH, multipath);
            msg.to_bytes(1, 0).unwrap()
        };
        let parse = |bytes: &[u8]| {
            let view = crate::netlink::Messages::new(bytes)
                .next()
                .unwrap()
                .unwrap();
            Route::parse(&view)
        };
        let two = [hop("2001:db8:1::1", 3), hop("2001:db8:2::1", 4)].concat();
        let ecmp = parse(&message(&two)).unwrap();
        assert_eq!((ecmp.gateway, ecmp.oif), (None, None));
        let hops: Vec<(String, Option<u32>)> = ecmp
            .hops()
            .iter()
            .map(|h| (h.gateway.unwrap().to_string(), h.oif))
            .collect();
        assert_eq!(
            hops,
            [
                ("2001:db8:1::1".into(), Some(3)),
                ("2001:db8:2::1".into(), Some(4))
            ]
        );
        let with_tail = [two.clone(), vec![0; 4]].concat();
        assert_eq!(parse(&message(&with_tail)).unwrap().hops().len(), 2);
        let mut too_long = two;
        too_long[0] = 200;
        assert!(parse(&message(&too_long)).is_err());
        // A plain route's one next hop is its own gateway and device.
        let plain = route(
            "10.1.2.0/24",
            Some("10.1.2.1"),
            RT_SCOPE_UNIVERSE,
            RTN_UNICAST,
        );
        assert_eq!(
            plain.hops(),
            [NextHop {
                gateway: Some("10.1.2.1".parse().unwrap()),
                oif: Some(2)
            }]
        );
    }

    /// An IPv4 route `via inet6` (RFC 5549) carries `RTA_VIA`, not
    /// `RTA_GATEWAY`: its gateway is read, at the top and in a next hop
    /// (it was read as none, a route straight through its device); one of
    /// no IP family (MPLS) is none; a bad length is refused.
    #[test]
    fn a_gateway_via_the_other_family_is_read() {
        let via = |family: u16, addr: &[u8]| [&family.to_ne_bytes()[..], addr].concat();
        let v6: Ipv6Addr = "fd00::9".parse().unwrap();
        let parse = |top: Option<&[u8]>, multipath: Option<&[u8]>| {
            let mut msg = MessageBuilder::new(RTM_NEWROUTE, 0);
            let header = RtMsg {
                family: AF_INET,
                dst_len: 16,
                table: RT_TABLE_MAIN,
                kind: RTN_UNICAST,
                ..RtMsg::default()
            };
            msg.family_header(&header.to_bytes());
            msg.put(RTA_DST, &[10, 50, 0, 0]);
            if let Some(top) = top {
                msg.put(RTA_VIA, top);
            }
            if let Some(hop_via) = multipath {
                let len = 8 + 4 + hop_via.len();
                let mut hop = Vec::new();
                hop.extend_from_slice(&(len as u16).to_ne_bytes());
                hop.extend_from_slice(&[0, 0]);
                hop.extend_from_slice(&3u32.to_ne_bytes());
                hop.extend_from_slice(&((4 + hop_via.len()) as u16).to_ne_bytes());
                hop.extend_from_slice(&RTA_VIA.to_ne_bytes());
                hop.extend_from_slice(hop_via);
                hop.resize(len.next_multiple_of(4), 0);
                msg.put(RTA_MULTIPATH, &hop);
            }
            let bytes = msg.to_bytes(1, 0).unwrap();
            let view = crate::netlink::Messages::new(&bytes)
                .next()
                .unwrap()
                .unwrap();
            Route::parse(&view)
        };
        let inet6 = via(u16::from(AF_INET6), &v6.octets());
        let route = parse(Some(&inet6), None).unwrap();
        assert_eq!(route.gateway, Some(IpAddr::V6(v6)));
        let hops = parse(None, Some(&inet6)).unwrap().hops();
        assert_eq!(hops[0].gateway, Some(IpAddr::V6(v6)));
        let inet = via(u16::from(AF_INET), &[10, 0, 0, 1]);
        assert_eq!(
            parse(Some(&inet), None).unwrap().gateway,
            Some("10.0.0.1".parse().unwrap())
        );
        const AF_MPLS: u16 = 28;
        assert_eq!(
            parse(Some(&via(AF_MPLS, &[0, 1, 0x41, 0])), None)
                .unwrap()
                .gateway,
            None
        );
        assert!(parse(Some(&via(u16::from(AF_INET6), &[10, 0, 0, 1])), None).is_err());
        assert!(parse(Some(&[10]), None).is_err());
    }

    #[test]
    fn onlink_routes() {
        let link = RT_SCOPE_LINK;
        let universe = RT_SCOPE_UNIVERSE;
        assert!(route("10.1.2.0/24", None, link, RTN_UNICAST).is_onlink());
        assert!(!route("10.1.2.0/24", None, link, RTN_LOCAL).is_onlink());
        assert!(!route("10.9.0.0/16", Some("10.1.2.1"), universe, RTN_UNICAST).is_onlink());
        assert!(!route("0.0.0.0/0", None, link, RTN_UNICAST).is_onlink());
        assert!(route("2001:db8::/64", None, universe, RTN_UNICAST).is_onlink());
        assert!(!route("2001:db8::/64", Some("fe80::1"), universe, RTN_UNICAST).is_onlink());
        assert!(!route("fe80::/64", None, universe, RTN_UNICAST).is_onlink());
        assert!(!route("::/0", None, universe, RTN_UNICAST).is_onlink());
        let mut no_device = route("2001:db8::/64", None, universe, RTN_UNICAST);
        no_device.oif = None;
        assert!(!no_device.is_onlink());
    }
}
