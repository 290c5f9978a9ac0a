//! Links (`RTM_*LINK`, family header `ifinfomsg`): typed creation specs,
//! request builders and the parser of link messages.
//!
//! Requests are laid out byte for byte like iproute2's for the same command
//! (checked against recorded captures in `tests/fixtures/netlink`).

use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::str::FromStr;

use super::error::{unknown_kind_to_unsupported, LinkRef};
use super::Handle;
use crate::netlink::consts::*;
use crate::netlink::{
    attr, AttrTable, Error, ErrorKind, FdRequest, MessageBuilder, MessageView, Result,
};
use crate::netns::Netns;

pub use crate::netns::{is_valid_ifname, IFNAME_MAX};

const ADD_FLAGS: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
const SET_FLAGS: u16 = NLM_F_REQUEST | NLM_F_ACK;
/// What lookups and dumps ask for: no statistics (a third of every link
/// message) and, unlike iproute2, no VF information, which nothing here
/// reads: on an SR-IOV parent it grows each answer by every VF's.
const GET_EXT_MASK: u32 = RTEXT_FILTER_SKIP_STATS;

/// `struct ifinfomsg` (16 bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfInfoMsg {
    /// `AF_UNSPEC` for requests.
    pub family: u8,
    /// `ARPHRD_*` device type.
    pub link_type: u16,
    /// Interface index; 0 = none / let the kernel choose.
    pub index: u32,
    /// `IFF_*` flags.
    pub flags: u32,
    /// Which `flags` bits a request changes.
    pub change: u32,
}

impl IfInfoMsg {
    /// Size on the wire.
    pub const LEN: usize = 16;

    /// A request header naming link `index`.
    pub fn for_index(index: u32) -> IfInfoMsg {
        IfInfoMsg {
            index,
            ..IfInfoMsg::default()
        }
    }

    /// Serialises the header.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let mut b = [0; Self::LEN];
        b[0] = self.family;
        b[2..4].copy_from_slice(&self.link_type.to_ne_bytes());
        b[4..8].copy_from_slice(&self.index.to_ne_bytes());
        b[8..12].copy_from_slice(&self.flags.to_ne_bytes());
        b[12..16].copy_from_slice(&self.change.to_ne_bytes());
        b
    }

    /// Reads the header from the start of `b`.
    pub fn parse(b: &[u8]) -> Result<IfInfoMsg> {
        let b: &[u8; Self::LEN] = b
            .get(..Self::LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| Error::malformed("truncated ifinfomsg"))?;
        let u32_at = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Ok(IfInfoMsg {
            family: b[0],
            link_type: u16::from_ne_bytes([b[2], b[3]]),
            index: u32_at(4),
            flags: u32_at(8),
            change: u32_at(12),
        })
    }
}

/// ipvlan mode (`IFLA_IPVLAN_MODE`, u16), only the kernel's valid values.
/// A property of the parent: the last create on a parent sets it for all
/// its slaves.
///
/// The default is `l2`, Docker's; the kernel's own default for a request
/// without a mode is l3, which is why [`LinkSpec::request`] always sends it.
/// A value the kernel reports that is none of these is a
/// [`Reported::Unknown`], never one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IpvlanMode {
    /// Layer 2: slaves answer ARP/ND; multicast and broadcast work.
    #[default]
    L2,
    /// Layer 3: the parent routes; no ARP (`NOARP`), no multicast.
    L3,
    /// Layer 3 with netfilter (conntrack) on the slave path.
    L3s,
}

impl IpvlanMode {
    /// Every mode, in wire order.
    pub const ALL: [IpvlanMode; 3] = [IpvlanMode::L2, IpvlanMode::L3, IpvlanMode::L3s];

    /// The name used by `ip link` and Docker's `ipvlan_mode`: `l2`, `l3`, `l3s`.
    pub fn as_str(self) -> &'static str {
        match self {
            IpvlanMode::L2 => "l2",
            IpvlanMode::L3 => "l3",
            IpvlanMode::L3s => "l3s",
        }
    }

    /// The wire value (`IPVLAN_MODE_*`).
    pub fn to_raw(self) -> u16 {
        match self {
            IpvlanMode::L2 => IPVLAN_MODE_L2,
            IpvlanMode::L3 => IPVLAN_MODE_L3,
            IpvlanMode::L3s => IPVLAN_MODE_L3S,
        }
    }

    /// The mode of a wire value; `None` for any value the kernel does not
    /// define (it refuses them on create: `mode >= IPVLAN_MODE_MAX`).
    pub fn from_raw(raw: u16) -> Option<IpvlanMode> {
        IpvlanMode::ALL
            .into_iter()
            .find(|mode| mode.to_raw() == raw)
    }
}

impl fmt::Display for IpvlanMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IpvlanMode {
    type Err = UnknownName;

    /// Exactly `l2`, `l3` or `l3s` (as in `ip link` and Docker's
    /// `ipvlan_mode`); no other spelling.
    fn from_str(text: &str) -> std::result::Result<IpvlanMode, UnknownName> {
        IpvlanMode::ALL
            .into_iter()
            .find(|mode| mode.as_str() == text)
            .ok_or_else(|| UnknownName::new("ipvlan mode", "l2, l3 or l3s", text))
    }
}

/// ipvlan flag (`IFLA_IPVLAN_FLAGS`, u16): one of the three settings the
/// kernel accepts. The attribute is a bit set, but the kernel refuses
/// `PRIVATE | VEPA` and every other bit, so exactly one of these holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IpvlanFlag {
    /// No bit set: slaves of one parent reach each other directly.
    #[default]
    Bridge,
    /// `IPVLAN_F_PRIVATE`: slaves of one parent cannot talk to each other.
    Private,
    /// `IPVLAN_F_VEPA`: traffic between slaves goes out to the switch
    /// (reflective relay).
    Vepa,
}

impl IpvlanFlag {
    /// Every flag setting.
    pub const ALL: [IpvlanFlag; 3] = [IpvlanFlag::Bridge, IpvlanFlag::Private, IpvlanFlag::Vepa];

    /// The name used by `ip link` and Docker's `ipvlan_flag`: `bridge`,
    /// `private`, `vepa`.
    pub fn as_str(self) -> &'static str {
        match self {
            IpvlanFlag::Bridge => "bridge",
            IpvlanFlag::Private => "private",
            IpvlanFlag::Vepa => "vepa",
        }
    }

    /// The wire value: 0, `IPVLAN_F_PRIVATE` or `IPVLAN_F_VEPA`.
    pub fn to_raw(self) -> u16 {
        match self {
            IpvlanFlag::Bridge => 0,
            IpvlanFlag::Private => IPVLAN_F_PRIVATE,
            IpvlanFlag::Vepa => IPVLAN_F_VEPA,
        }
    }

    /// The flag of a wire value; `None` for `PRIVATE | VEPA` (3) and any
    /// other bit, which the kernel refuses on create.
    pub fn from_raw(raw: u16) -> Option<IpvlanFlag> {
        IpvlanFlag::ALL
            .into_iter()
            .find(|flag| flag.to_raw() == raw)
    }
}

impl fmt::Display for IpvlanFlag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IpvlanFlag {
    type Err = UnknownName;

    /// Exactly `bridge`, `private` or `vepa`; no other spelling.
    fn from_str(text: &str) -> std::result::Result<IpvlanFlag, UnknownName> {
        IpvlanFlag::ALL
            .into_iter()
            .find(|flag| flag.as_str() == text)
            .ok_or_else(|| UnknownName::new("ipvlan flag", "bridge, private or vepa", text))
    }
}

/// A text that is not the name of an ipvlan mode or flag (the error of
/// their `FromStr`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    what: &'static str,
    expected: &'static str,
    text: String,
}

impl UnknownName {
    fn new(what: &'static str, expected: &'static str, text: &str) -> UnknownName {
        UnknownName {
            what,
            expected,
            text: text.to_owned(),
        }
    }

    /// The text that was not a name.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} {:?} (expected {})",
            self.what, self.text, self.expected
        )
    }
}

impl std::error::Error for UnknownName {}

/// A value as the kernel reports it: one we know, or the raw number of one
/// we do not (a newer kernel, or a link someone else set up). An unknown
/// value is kept as it is and never taken for a known one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reported<T> {
    /// A value we know.
    Known(T),
    /// A raw value we do not know.
    Unknown(u16),
}

impl<T: Copy> Reported<T> {
    /// The known value, `None` for an unknown one.
    pub fn known(self) -> Option<T> {
        match self {
            Reported::Known(value) => Some(value),
            Reported::Unknown(_) => None,
        }
    }
}

impl<T: Copy + PartialEq> Reported<T> {
    /// Whether the kernel reported exactly `value` (an unknown value is
    /// never equal to a known one).
    pub fn is(self, value: T) -> bool {
        self.known() == Some(value)
    }
}

impl<T: fmt::Display> fmt::Display for Reported<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reported::Known(value) => value.fmt(f),
            Reported::Unknown(raw) => write!(f, "unknown({raw})"),
        }
    }
}

/// `raw` as `from_raw` knows it, or unknown.
fn reported<T>(raw: u16, from_raw: fn(u16) -> Option<T>) -> Reported<T> {
    from_raw(raw).map_or(Reported::Unknown(raw), Reported::Known)
}

/// Macvlan mode (`IFLA_MACVLAN_MODE`, u32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MacvlanMode {
    /// No traffic between slaves.
    Private,
    /// Traffic between slaves via the switch.
    Vepa,
    /// Slaves reach each other directly.
    Bridge,
    /// One slave takes over the parent.
    Passthru,
}

impl MacvlanMode {
    /// The wire value.
    pub fn to_u32(self) -> u32 {
        match self {
            MacvlanMode::Private => MACVLAN_MODE_PRIVATE,
            MacvlanMode::Vepa => MACVLAN_MODE_VEPA,
            MacvlanMode::Bridge => MACVLAN_MODE_BRIDGE,
            MacvlanMode::Passthru => MACVLAN_MODE_PASSTHRU,
        }
    }
}

/// The type-specific part of a link to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKind {
    /// IPvlan slave of the parent; mode and flag are always sent.
    Ipvlan {
        /// l2, l3, l3s.
        mode: IpvlanMode,
        /// bridge, private, vepa.
        flag: IpvlanFlag,
    },
    /// 802.1Q VLAN sub-interface of the parent.
    Vlan {
        /// VLAN id (the kernel accepts 0..=4094).
        id: u16,
    },
    /// A dummy interface (no parent).
    Dummy,
    /// A veth pair; `peer` is the name of the other end.
    Veth {
        /// Name of the peer interface.
        peer: String,
    },
    /// A macvlan slave of the parent.
    Macvlan {
        /// Macvlan mode.
        mode: MacvlanMode,
    },
}

impl LinkKind {
    /// The `IFLA_INFO_KIND` string.
    pub fn name(&self) -> &'static str {
        match self {
            LinkKind::Ipvlan { .. } => "ipvlan",
            LinkKind::Vlan { .. } => "vlan",
            LinkKind::Dummy => "dummy",
            LinkKind::Veth { .. } => "veth",
            LinkKind::Macvlan { .. } => "macvlan",
        }
    }
}

/// A link to create, for [`Handle::link_add`].
///
/// `'fd` is the life of the namespace descriptor of
/// [`LinkSpec::in_netns`]: the type system keeps the namespace open for as
/// long as the spec (and so its request) can be sent.
///
/// ```no_run
/// # use ipvlan::rtnl::{Handle, LinkSpec, IpvlanMode, IpvlanFlag};
/// # fn main() -> ipvlan::netlink::Result<()> {
/// let host = Handle::new()?;
/// let parent = host.link_by_name("eth0")?.expect("eth0 exists").index;
/// host.link_add(&LinkSpec::ipvlan("iv0", parent, IpvlanMode::L2, IpvlanFlag::Bridge))?;
/// # Ok(()) }
/// ```
///
/// A spec cannot outlive the namespace it creates the link in:
///
/// ```compile_fail
/// # use ipvlan::netns::Netns;
/// # use ipvlan::rtnl::LinkSpec;
/// let spec = {
///     let ns = Netns::current().unwrap();
///     LinkSpec::dummy("d0").in_netns(&ns)
/// }; // error: `ns` does not live long enough (its descriptor closes here)
/// let _ = spec.request();
/// ```
#[derive(Debug, Clone)]
pub struct LinkSpec<'fd> {
    /// Interface name (at most 15 bytes).
    pub name: String,
    /// Link type and its settings.
    pub kind: LinkKind,
    /// Parent ifindex (`IFLA_LINK`), resolved in the handle's netns.
    pub parent: Option<u32>,
    /// The new link's ifindex (`ifi_index` of the header); `None` lets the
    /// kernel choose. See [`LinkSpec::index`].
    pub index: Option<u32>,
    /// Create the link directly in this netns (`IFLA_NET_NS_FD`).
    pub netns_fd: Option<BorrowedFd<'fd>>,
    /// MTU (`IFLA_MTU`).
    pub mtu: Option<u32>,
    /// Link group (`IFLA_GROUP`), for deleting many links in one kernel
    /// transaction ([`Handle::link_del_group`]).
    pub group: Option<u32>,
}

impl LinkSpec<'static> {
    fn new(name: &str, kind: LinkKind, parent: Option<u32>) -> LinkSpec<'static> {
        LinkSpec {
            name: name.to_owned(),
            kind,
            parent,
            index: None,
            netns_fd: None,
            mtu: None,
            group: None,
        }
    }

    /// An IPvlan slave of `parent`.
    pub fn ipvlan(
        name: &str,
        parent: u32,
        mode: IpvlanMode,
        flag: IpvlanFlag,
    ) -> LinkSpec<'static> {
        Self::new(name, LinkKind::Ipvlan { mode, flag }, Some(parent))
    }

    /// An 802.1Q sub-interface of `parent` with VLAN `id`.
    pub fn vlan(name: &str, parent: u32, id: u16) -> LinkSpec<'static> {
        Self::new(name, LinkKind::Vlan { id }, Some(parent))
    }

    /// A dummy interface.
    pub fn dummy(name: &str) -> LinkSpec<'static> {
        Self::new(name, LinkKind::Dummy, None)
    }

    /// A veth pair `name` / `peer`; the peer is created in the handle's
    /// netns even when [`LinkSpec::in_netns`] sends `name` elsewhere.
    pub fn veth(name: &str, peer: &str) -> LinkSpec<'static> {
        let peer = peer.to_owned();
        Self::new(name, LinkKind::Veth { peer }, None)
    }

    /// A macvlan slave of `parent`.
    pub fn macvlan(name: &str, parent: u32, mode: MacvlanMode) -> LinkSpec<'static> {
        Self::new(name, LinkKind::Macvlan { mode }, Some(parent))
    }
}

impl<'fd> LinkSpec<'fd> {
    /// Creates the link directly inside `netns`: one request instead of
    /// create + move, which costs an RCU grace period. Linux 6.1 also
    /// checks the name against the creating netns and answers `EEXIST` if a
    /// link there has it; then ask for an ifindex ([`LinkSpec::index`]) or
    /// create under a temporary name and rename inside.
    pub fn in_netns<'n>(self, netns: &'n Netns) -> LinkSpec<'n>
    where
        'fd: 'n,
    {
        self.in_netns_fd(netns.fd())
    }

    /// Like [`LinkSpec::in_netns`] with any descriptor of a network
    /// namespace (`/proc/PID/ns/net`, a bind mount...).
    pub fn in_netns_fd<'n>(self, fd: BorrowedFd<'n>) -> LinkSpec<'n>
    where
        'fd: 'n,
    {
        LinkSpec {
            netns_fd: Some(fd),
            ..self
        }
    }

    /// Asks for ifindex `index` (1 to `i32::MAX`) instead of letting the
    /// kernel choose. The kernel then looks the existing link up by that
    /// index instead of by name, so with [`LinkSpec::in_netns`] a name the
    /// creating netns has is created in the target directly. A taken index
    /// is refused before anything is allocated: Linux 6.1 answers `EEXIST`
    /// when the creating netns has it and `EBUSY` when the target has it;
    /// 6.18 looks in the target only and answers `EEXIST`.
    pub fn index(mut self, index: u32) -> LinkSpec<'fd> {
        self.index = Some(index);
        self
    }

    /// Sets the MTU.
    pub fn mtu(mut self, mtu: u32) -> LinkSpec<'fd> {
        self.mtu = Some(mtu);
        self
    }

    /// Puts the link in link group `group`.
    pub fn group(mut self, group: u32) -> LinkSpec<'fd> {
        self.group = Some(group);
        self
    }

    /// The `RTM_NEWLINK` request (`NLM_F_CREATE | NLM_F_EXCL`), attributes
    /// in iproute2's order.
    pub fn request(&self) -> Result<MessageBuilder> {
        check_ifname(&self.name)?;
        let index = match self.index {
            // ifi_index is a C int; 0 would mean "no index" and a negative
            // one is refused by the kernel.
            Some(index) if index == 0 || index > i32::MAX as u32 => {
                return Err(Error::invalid(format!(
                    "invalid ifindex {index} (1 to {})",
                    i32::MAX
                )))
            }
            Some(index) => index,
            None => 0,
        };
        let mut msg = link_message(RTM_NEWLINK, ADD_FLAGS, IfInfoMsg::for_index(index));
        if let Some(fd) = self.netns_fd {
            // The descriptor number, read by the kernel in the sender's
            // file table while it handles the request.
            msg.put_u32(IFLA_NET_NS_FD, fd.as_raw_fd() as u32);
        }
        if let Some(mtu) = self.mtu {
            msg.put_u32(IFLA_MTU, mtu);
        }
        if let Some(group) = self.group {
            msg.put_u32(IFLA_GROUP, group);
        }
        if let Some(parent) = self.parent {
            msg.put_u32(IFLA_LINK, parent);
        }
        msg.put_str(IFLA_IFNAME, &self.name);
        if let LinkKind::Veth { peer } = &self.kind {
            check_ifname(peer)?;
        }
        msg.nested(IFLA_LINKINFO, |m| {
            // iproute2 sends the kind without its NUL; the kernel accepts both.
            m.put(IFLA_INFO_KIND, self.kind.name().as_bytes());
            match &self.kind {
                LinkKind::Ipvlan { mode, flag } => {
                    m.nested(IFLA_INFO_DATA, |m| {
                        m.put_u16(IFLA_IPVLAN_MODE, mode.to_raw());
                        m.put_u16(IFLA_IPVLAN_FLAGS, flag.to_raw());
                    });
                }
                LinkKind::Vlan { id } => {
                    m.nested(IFLA_INFO_DATA, |m| {
                        m.put_u16(IFLA_VLAN_ID, *id);
                    });
                }
                LinkKind::Macvlan { mode } => {
                    m.nested(IFLA_INFO_DATA, |m| {
                        m.put_u32(IFLA_MACVLAN_MODE, mode.to_u32());
                    });
                }
                LinkKind::Veth { peer } => {
                    m.nested(IFLA_INFO_DATA, |m| {
                        m.nested(VETH_INFO_PEER, |m| {
                            m.family_header(&IfInfoMsg::default().to_bytes());
                            m.put_str(IFLA_IFNAME, peer);
                        });
                    });
                }
                LinkKind::Dummy => {}
            }
        });
        Ok(msg)
    }
}

/// Rejects names the kernel would refuse ([`is_valid_ifname`]).
pub fn check_ifname(name: &str) -> Result<()> {
    if !is_valid_ifname(name) {
        return Err(Error::invalid(format!(
            "invalid interface name {name:?} (1 to {IFNAME_MAX} bytes, no '/', ':', '%' or spaces)"
        )));
    }
    Ok(())
}

/// A link request with family header `header`.
fn link_message(kind: u16, flags: u16, header: IfInfoMsg) -> MessageBuilder {
    let mut msg = MessageBuilder::new(kind, flags);
    msg.family_header(&header.to_bytes());
    msg
}

/// `ip link set` style: `RTM_NEWLINK` on an existing index, no create flags.
fn modify(index: u32) -> MessageBuilder {
    link_message(RTM_NEWLINK, SET_FLAGS, IfInfoMsg::for_index(index))
}

/// `RTM_DELLINK` for `index`.
pub fn del_request(index: u32) -> MessageBuilder {
    link_message(RTM_DELLINK, SET_FLAGS, IfInfoMsg::for_index(index))
}

/// Sets `IFF_UP` on (`up`) or off, like `ip link set dev X up|down`.
pub fn set_up_request(index: u32, up: bool) -> MessageBuilder {
    let header = IfInfoMsg {
        flags: if up { IFF_UP } else { 0 },
        change: IFF_UP,
        ..IfInfoMsg::for_index(index)
    };
    link_message(RTM_NEWLINK, SET_FLAGS, header)
}

/// Sets `arp_notify` of link `index` on (`on`) or off: the setting
/// `net.ipv4.conf.IFNAME.arp_notify` holds, as `IPV4_DEVCONF_ARP_NOTIFY`
/// in `IFLA_AF_SPEC` / `AF_INET` / `IFLA_INET_CONF`. The kernel applies it
/// after a flag change of the same request, so a link to announce itself
/// when it comes up takes it in a request of its own before the up. By
/// index: no lookup of `/proc/sys/net` in the link's namespace, whose
/// first one costs more the more namespaces were looked up before.
pub fn set_arp_notify_request(index: u32, on: bool) -> MessageBuilder {
    let mut msg = modify(index);
    msg.nested(IFLA_AF_SPEC, |m| {
        m.nested(u16::from(AF_INET), |m| {
            m.nested(IFLA_INET_CONF, |m| {
                m.put_u32(IPV4_DEVCONF_ARP_NOTIFY, u32::from(on));
            });
        });
    });
    msg
}

/// Renames link `index` to `name`.
pub fn rename_request(index: u32, name: &str) -> Result<MessageBuilder> {
    check_ifname(name)?;
    let mut msg = modify(index);
    msg.put_str(IFLA_IFNAME, name);
    Ok(msg)
}

/// Sets the MTU of link `index`.
pub fn set_mtu_request(index: u32, mtu: u32) -> MessageBuilder {
    let mut msg = modify(index);
    msg.put_u32(IFLA_MTU, mtu);
    msg
}

/// Puts link `index` in link group `group`.
pub fn set_group_request(index: u32, group: u32) -> MessageBuilder {
    let mut msg = modify(index);
    msg.put_u32(IFLA_GROUP, group);
    msg
}

/// Deletes every link of group `group` in one kernel transaction (one RCU
/// grace period for all of them, instead of one each).
pub fn del_group_request(group: u32) -> MessageBuilder {
    let mut msg = link_message(RTM_DELLINK, SET_FLAGS, IfInfoMsg::default());
    msg.put_u32(IFLA_GROUP, group);
    msg
}

/// Moves link `index` into the netns `netns_fd` refers to (the request
/// borrows the descriptor: see [`FdRequest`]).
pub fn set_netns_request(index: u32, netns_fd: BorrowedFd<'_>) -> FdRequest<'_> {
    let mut msg = modify(index);
    msg.put_u32(IFLA_NET_NS_FD, netns_fd.as_raw_fd() as u32);
    FdRequest::new(msg, netns_fd)
}

/// Non-dump `RTM_GETLINK` by name.
pub fn get_by_name_request(name: &str) -> Result<MessageBuilder> {
    check_ifname(name)?;
    let mut msg = link_message(RTM_GETLINK, NLM_F_REQUEST, IfInfoMsg::default());
    msg.put_u32(IFLA_EXT_MASK, GET_EXT_MASK);
    msg.put_str(IFLA_IFNAME, name);
    Ok(msg)
}

/// Non-dump `RTM_GETLINK` by index.
pub fn get_by_index_request(index: u32) -> MessageBuilder {
    let mut msg = link_message(RTM_GETLINK, NLM_F_REQUEST, IfInfoMsg::for_index(index));
    msg.put_u32(IFLA_EXT_MASK, GET_EXT_MASK);
    msg
}

/// Dump of all links (statistics skipped: a third smaller).
pub fn dump_request() -> MessageBuilder {
    let header = IfInfoMsg {
        family: libc::AF_PACKET as u8,
        ..IfInfoMsg::default()
    };
    let mut msg = link_message(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, header);
    msg.put_u32(IFLA_EXT_MASK, GET_EXT_MASK);
    msg
}

/// A link kind [`Handle::probe_kind`] can ask the kernel about without
/// creating anything: one whose validation refuses a request we can build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// `ipvlan` (`CONFIG_IPVLAN`).
    Ipvlan,
    /// `dummy` (`CONFIG_DUMMY`).
    Dummy,
    /// `vlan` (802.1Q, `CONFIG_VLAN_8021Q`).
    Vlan,
}

impl ProbeKind {
    /// Every kind that can be probed.
    pub const ALL: [ProbeKind; 3] = [ProbeKind::Ipvlan, ProbeKind::Dummy, ProbeKind::Vlan];

    /// The `IFLA_INFO_KIND` string.
    pub fn name(self) -> &'static str {
        match self {
            ProbeKind::Ipvlan => "ipvlan",
            ProbeKind::Dummy => "dummy",
            ProbeKind::Vlan => "vlan",
        }
    }

    /// The operation named in errors.
    fn op(self) -> &'static str {
        match self {
            ProbeKind::Ipvlan => "probe link kind ipvlan",
            ProbeKind::Dummy => "probe link kind dummy",
            ProbeKind::Vlan => "probe link kind vlan",
        }
    }
}

/// A create request for `kind` that the kernel refuses whatever it knows:
/// `EOPNOTSUPP` when it has no such kind (checked first, after trying to
/// load the module), else `EINVAL` from the kind's own validation, which
/// runs before anything is allocated. Without a name or index it could
/// never meet an existing link.
pub fn probe_kind_request(kind: ProbeKind) -> MessageBuilder {
    let mut msg = link_message(RTM_NEWLINK, ADD_FLAGS, IfInfoMsg::default());
    if kind == ProbeKind::Dummy {
        // dummy_validate: an address that is not ETH_ALEN (6) bytes long.
        msg.put(IFLA_ADDRESS, &[0]);
    }
    msg.nested(IFLA_LINKINFO, |m| {
        m.put(IFLA_INFO_KIND, kind.name().as_bytes());
        if kind == ProbeKind::Ipvlan {
            // ipvlan_nl_validate: a mode past the last (>= IPVLAN_MODE_MAX).
            m.nested(IFLA_INFO_DATA, |m| {
                m.put_u16(IFLA_IPVLAN_MODE, u16::MAX);
            });
        }
        // vlan_validate refuses a request without IFLA_INFO_DATA.
    });
    msg
}

/// Type-specific data decoded from `IFLA_INFO_DATA`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkData {
    /// IPvlan mode and flag, as reported (unknown values kept raw).
    Ipvlan {
        /// Mode of the parent port.
        mode: Reported<IpvlanMode>,
        /// Flag of the parent port.
        flag: Reported<IpvlanFlag>,
    },
    /// 802.1Q id and protocol (0x8100 or 0x88a8).
    Vlan {
        /// VLAN id.
        id: u16,
        /// Ethertype, host order.
        protocol: Option<u16>,
    },
    /// Macvlan mode (raw `MACVLAN_MODE_*`).
    Macvlan {
        /// Raw mode value.
        mode: u32,
    },
    /// Nothing decoded (no data, or a kind we do not decode).
    None,
}

/// A link as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name (empty only if the message lacked `IFLA_IFNAME`,
    /// which the kernel always sends). Linux allows any byte but '/', ':',
    /// whitespace and NUL; a name that is not UTF-8 appears here with
    /// U+FFFD in place of the odd bytes, and exactly in `raw_name`.
    pub name: String,
    /// The name's exact bytes, only when they are not UTF-8 (then `name`
    /// cannot be used to look the link up; use its index).
    pub raw_name: Option<Vec<u8>>,
    /// `IFF_*` flags (see [`Link::is_up`]).
    pub flags: u32,
    /// `ARPHRD_*` device type.
    pub link_type: u16,
    /// MTU.
    pub mtu: Option<u32>,
    /// Hardware address.
    pub mac: Option<Vec<u8>>,
    /// Parent ifindex (`IFLA_LINK`; for veth, the peer's index). If
    /// `link_netnsid` is set, the index is in that other netns.
    pub parent: Option<u32>,
    /// The netns id of the parent's netns, when it is not this one.
    pub link_netnsid: Option<i32>,
    /// Master (bridge/bond) ifindex.
    pub master: Option<u32>,
    /// Link group (0 = default).
    pub group: Option<u32>,
    /// RFC 2863 operational state (`IF_OPER_*`: 2 down, 6 up...).
    pub operstate: Option<u8>,
    /// `IFLA_INFO_KIND` ("ipvlan", "vlan", "veth"...).
    pub kind: Option<String>,
    /// Decoded `IFLA_INFO_DATA`.
    pub data: LinkData,
}

impl Link {
    /// `IFF_UP` is set (administratively up).
    pub fn is_up(&self) -> bool {
        self.flags & IFF_UP != 0
    }

    /// `IFF_NOARP` is set (e.g. ipvlan in l3/l3s mode).
    pub fn is_noarp(&self) -> bool {
        self.flags & IFF_NOARP != 0
    }

    /// Mode and flag, for an ipvlan link, as the kernel reports them.
    pub fn ipvlan(&self) -> Option<(Reported<IpvlanMode>, Reported<IpvlanFlag>)> {
        match self.data {
            LinkData::Ipvlan { mode, flag } => Some((mode, flag)),
            _ => None,
        }
    }

    /// The hardware address as `aa:bb:cc:dd:ee:ff` (lower case, any
    /// length); the empty string when the link has none.
    pub fn mac_text(&self) -> String {
        let mac = self.mac.as_deref().unwrap_or_default();
        let mut text = String::with_capacity(mac.len() * 3);
        for (at, byte) in mac.iter().enumerate() {
            if at > 0 {
                text.push(':');
            }
            crate::digits::push_hex(&mut text, std::slice::from_ref(byte));
        }
        text
    }

    /// The VLAN id, for an 802.1Q link.
    pub fn vlan_id(&self) -> Option<u16> {
        match self.data {
            LinkData::Vlan { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The name's exact bytes (see [`Link::raw_name`]).
    pub fn name_bytes(&self) -> &[u8] {
        self.raw_name.as_deref().unwrap_or(self.name.as_bytes())
    }

    /// Parses an `RTM_NEWLINK` message.
    pub fn parse(msg: &MessageView<'_>) -> Result<Link> {
        let header = IfInfoMsg::parse(msg.payload())?;
        let tb = AttrTable::<{ IFLA_MAX as usize + 1 }>::parse(msg.attr_area(IfInfoMsg::LEN)?)?;
        let (name, raw_name) = match tb.get(IFLA_IFNAME) {
            Some(attr) => match attr.str() {
                Ok(name) => (name.to_owned(), None),
                Err(_) => (attr.str_lossy().into_owned(), Some(attr.c_bytes().to_vec())),
            },
            None => (String::new(), None),
        };
        let mut link = Link {
            index: header.index,
            name,
            raw_name,
            flags: header.flags,
            link_type: header.link_type,
            mtu: tb.get(IFLA_MTU).map(|a| a.u32()).transpose()?,
            mac: tb.get(IFLA_ADDRESS).map(|a| a.payload().to_vec()),
            parent: tb.get(IFLA_LINK).map(|a| a.u32()).transpose()?,
            link_netnsid: tb.get(IFLA_LINK_NETNSID).map(|a| a.i32()).transpose()?,
            master: tb.get(IFLA_MASTER).map(|a| a.u32()).transpose()?,
            group: tb.get(IFLA_GROUP).map(|a| a.u32()).transpose()?,
            operstate: tb.get(IFLA_OPERSTATE).map(|a| a.u8()).transpose()?,
            kind: None,
            data: LinkData::None,
        };
        if let Some(info) = tb.get(IFLA_LINKINFO) {
            let info = AttrTable::<{ IFLA_INFO_MAX as usize + 1 }>::parse(info.payload())?;
            let kind = info.get(IFLA_INFO_KIND).map(|a| a.str_lossy());
            if let (Some(kind), Some(data)) = (&kind, info.get(IFLA_INFO_DATA)) {
                link.data = parse_link_data(kind, data.payload())?;
            }
            link.kind = kind.map(|k| k.into_owned());
        }
        Ok(link)
    }
}

fn parse_link_data(kind: &str, area: &[u8]) -> Result<LinkData> {
    // One table serves the `IFLA_INFO_DATA` of every kind decoded below.
    const MAXES: &[u16] = &[IFLA_IPVLAN_MAX, IFLA_VLAN_MAX, IFLA_MACVLAN_MAX];
    let tb = AttrTable::<{ attr::slots(MAXES) }>::parse(area)?;
    Ok(match kind {
        // The kernel always reports the mode. It reports the flags since
        // 4.15, which introduced them: before, every port was a bridge.
        // An `ipvtap` link is an ipvlan link with a tap queue: the same
        // attributes, the same port, whose mode every new link sets.
        "ipvlan" | "ipvtap" => match tb.get(IFLA_IPVLAN_MODE) {
            Some(mode) => LinkData::Ipvlan {
                mode: reported(mode.u16()?, IpvlanMode::from_raw),
                flag: reported(
                    tb.get(IFLA_IPVLAN_FLAGS)
                        .map(|a| a.u16())
                        .transpose()?
                        .unwrap_or(0),
                    IpvlanFlag::from_raw,
                ),
            },
            None => LinkData::None,
        },
        "vlan" => match tb.get(IFLA_VLAN_ID) {
            Some(id) => LinkData::Vlan {
                id: id.u16()?,
                protocol: tb.get(IFLA_VLAN_PROTOCOL).map(|a| a.be16()).transpose()?,
            },
            None => LinkData::None,
        },
        "macvlan" => match tb.get(IFLA_MACVLAN_MODE) {
            Some(mode) => LinkData::Macvlan { mode: mode.u32()? },
            None => LinkData::None,
        },
        _ => LinkData::None,
    })
}

impl Handle {
    /// Creates a link. Fails with `EEXIST` if the name is taken, `ENODEV` if
    /// the parent does not exist, and [`ErrorKind::Unsupported`] if the
    /// kernel lacks the link type.
    pub fn link_add(&self, spec: &LinkSpec) -> Result<()> {
        let context = |e: Error| self.context(e, "create link", LinkRef::Name(spec.name.clone()));
        let msg = spec.request().map_err(context)?;
        self.socket()
            .request(&msg)
            .map_err(|e| context(unknown_kind_to_unsupported(e, spec.kind.name())))
    }

    /// Creates several links with few `sendmsg` calls (as many requests in
    /// each as the socket buffers take); one result per spec, in order, so
    /// the caller sees which were refused and why. Each create is still its
    /// own kernel transaction.
    pub fn link_add_many(&self, specs: &[LinkSpec]) -> Result<Vec<Result<()>>> {
        let mut msgs = Vec::with_capacity(specs.len());
        for spec in specs {
            let context =
                |e: Error| self.context(e, "create link", LinkRef::Name(spec.name.clone()));
            msgs.push(spec.request().map_err(context)?);
        }
        let results = self
            .socket()
            .request_batch(&msgs)
            .map_err(|e| self.context_op(e, "create links"))?;
        Ok(results
            .into_iter()
            .zip(specs)
            .map(|(result, spec)| {
                result.map_err(|e| {
                    let e = unknown_kind_to_unsupported(e, spec.kind.name());
                    self.context(e, "create link", LinkRef::Name(spec.name.clone()))
                })
            })
            .collect())
    }

    /// Deletes link `index` (and, for a parent, all its ipvlan/macvlan/vlan slaves).
    pub fn link_del(&self, index: u32) -> Result<()> {
        self.ack(&del_request(index), "delete link", LinkRef::Index(index))
    }

    /// Deletes all links of group `group` (see [`LinkSpec::group`]) in one
    /// kernel transaction: ~0.2 ms a link instead of ~16 ms. `ENODEV` if the
    /// group is empty. Group 0 (the default group) is refused.
    pub fn link_del_group(&self, group: u32) -> Result<()> {
        let context = |e: Error| self.context_op(e, "delete link group");
        if group == 0 {
            return Err(context(Error::invalid("group 0 holds every link")));
        }
        self.socket()
            .request(&del_group_request(group))
            .map_err(context)
    }

    /// Puts link `index` in link group `group`.
    pub fn link_set_group(&self, index: u32, group: u32) -> Result<()> {
        let msg = set_group_request(index, group);
        self.ack(&msg, "set link group", LinkRef::Index(index))
    }

    /// Deletes several links with few `sendmsg` calls (as many requests in
    /// each as the socket buffers take); one result per index, in order.
    /// Saves syscalls only: each delete is still its own kernel
    /// transaction with its own RCU grace period (see [`Handle::link_del_group`]).
    pub fn link_del_many(&self, indices: &[u32]) -> Result<Vec<Result<()>>> {
        let msgs: Vec<_> = indices.iter().map(|&i| del_request(i)).collect();
        let results = self
            .socket()
            .request_batch(&msgs)
            .map_err(|e| self.context_op(e, "delete links"))?;
        Ok(results
            .into_iter()
            .zip(indices)
            .map(|(r, &i)| r.map_err(|e| self.context(e, "delete link", LinkRef::Index(i))))
            .collect())
    }

    /// Brings link `index` up.
    pub fn link_set_up(&self, index: u32) -> Result<()> {
        self.ack(
            &set_up_request(index, true),
            "set link up",
            LinkRef::Index(index),
        )
    }

    /// Brings link `index` down.
    pub fn link_set_down(&self, index: u32) -> Result<()> {
        self.ack(
            &set_up_request(index, false),
            "set link down",
            LinkRef::Index(index),
        )
    }

    /// Renames link `index` (before kernel 6.2 the link must be down).
    pub fn link_rename(&self, index: u32, new_name: &str) -> Result<()> {
        let context = |e: Error| self.context(e, "rename link", LinkRef::Index(index));
        let msg = rename_request(index, new_name).map_err(context)?;
        self.socket().request(&msg).map_err(context)
    }

    /// Sets the MTU of link `index`.
    pub fn link_set_mtu(&self, index: u32, mtu: u32) -> Result<()> {
        self.ack(
            &set_mtu_request(index, mtu),
            "set link mtu",
            LinkRef::Index(index),
        )
    }

    /// Moves link `index` into `netns`. The link arrives down, without
    /// addresses or routes. Costs an RCU grace period; prefer creating the
    /// link directly in its netns ([`LinkSpec::in_netns`]).
    pub fn link_set_netns(&self, index: u32, netns: &Netns) -> Result<()> {
        let msg = set_netns_request(index, netns.fd());
        self.ack(&msg, "move link", LinkRef::Index(index))
    }

    /// Whether the kernel knows link kind `kind` ([`probe_kind_request`]):
    /// `Ok(true)` known, `Ok(false)` unknown. Nothing is created; the
    /// kernel may load the kind's module on the way.
    pub fn probe_kind(&self, kind: ProbeKind) -> Result<bool> {
        match self.socket().request(&probe_kind_request(kind)) {
            Err(err) if err.errno() == Some(libc::EOPNOTSUPP) => Ok(false),
            Err(err) if err.errno() == Some(libc::EINVAL) => Ok(true),
            Err(err) => Err(self.context_op(err, kind.op())),
            Ok(()) => Err(self.context_op(
                Error::malformed("the kernel accepted a link its validation must refuse"),
                kind.op(),
            )),
        }
    }

    /// Looks a link up by name (one non-dump request); `None` if absent.
    pub fn link_by_name(&self, name: &str) -> Result<Option<Link>> {
        let context = |e: Error| self.context(e, "get link", LinkRef::Name(name.to_owned()));
        let msg = get_by_name_request(name).map_err(context)?;
        self.get_link(&msg).map_err(context)
    }

    /// Looks a link up by index; `None` if absent.
    pub fn link_by_index(&self, index: u32) -> Result<Option<Link>> {
        self.get_link(&get_by_index_request(index))
            .map_err(|e| self.context(e, "get link", LinkRef::Index(index)))
    }

    /// Index of the link called `name`, or [`ErrorKind::NotFound`].
    pub fn link_index(&self, name: &str) -> Result<u32> {
        match self.link_by_name(name)? {
            Some(link) => Ok(link.index),
            None => Err(self.context(
                Error::new(ErrorKind::NotFound { what: "link" }),
                "get link",
                LinkRef::Name(name.to_owned()),
            )),
        }
    }

    fn get_link(&self, msg: &MessageBuilder) -> Result<Option<Link>> {
        match self.socket().request_reply(msg, Link::parse) {
            Ok(link) => Ok(Some(link)),
            Err(err) if err.errno() == Some(libc::ENODEV) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// All links of the handle's netns. A link message that does not decode
    /// is left out (see [`from_dump`]); only a broken dump fails the call.
    pub fn links(&self) -> Result<Vec<Link>> {
        self.socket()
            .dump(&dump_request(), |msg| Ok(from_dump(msg)))
            .map_err(|e| self.context_op(e, "list links"))
    }
}

/// The link in one message of a link dump, or `None` for other messages
/// and for a link message that does not decode. One odd link (a kernel
/// newer than us, a driver with unusual attributes) must not hide every
/// other link of its namespace; broken framing still fails the dump.
pub fn from_dump(msg: &MessageView<'_>) -> Option<Link> {
    if msg.header.kind != RTM_NEWLINK {
        return None;
    }
    Link::parse(msg).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_flags_round_trip_and_refuse_the_rest() {
        for mode in IpvlanMode::ALL {
            assert_eq!(IpvlanMode::from_raw(mode.to_raw()), Some(mode));
            assert_eq!(mode.as_str().parse(), Ok(mode));
            assert_eq!(mode.to_string(), mode.as_str());
        }
        for flag in IpvlanFlag::ALL {
            assert_eq!(IpvlanFlag::from_raw(flag.to_raw()), Some(flag));
            assert_eq!(flag.as_str().parse(), Ok(flag));
            assert_eq!(flag.to_string(), flag.as_str());
        }
        let raw_modes = IpvlanMode::ALL.map(IpvlanMode::to_raw);
        assert_eq!(raw_modes, [IPVLAN_MODE_L2, IPVLAN_MODE_L3, IPVLAN_MODE_L3S]);
        let raw_flags = IpvlanFlag::ALL.map(IpvlanFlag::to_raw);
        assert_eq!(raw_flags, [0, IPVLAN_F_PRIVATE, IPVLAN_F_VEPA]);
        assert_eq!(IpvlanMode::from_raw(3), None);
        assert_eq!(IpvlanMode::from_raw(u16::MAX), None);
        assert_eq!(IpvlanFlag::from_raw(IPVLAN_F_PRIVATE | IPVLAN_F_VEPA), None);
        assert_eq!(IpvlanFlag::from_raw(4), None);
        assert_eq!(IpvlanMode::default(), IpvlanMode::L2);
        assert_eq!(IpvlanFlag::default(), IpvlanFlag::Bridge);
    }

    /// An `ipvtap` link reports its mode and flag as an ipvlan link does
    /// (the kernel registers both kinds with the same attributes): decoded
    /// alike, so the links on a port are all seen. Before, an ipvtap
    /// link's were dropped, and a network of another mode on its port was
    /// allowed, whose first attach switched the ipvtap link's mode.
    #[test]
    fn ipvtap_data_is_ipvlan_data() {
        let mut area = Vec::new();
        for (kind, value) in [
            (IFLA_IPVLAN_MODE, IPVLAN_MODE_L3),
            (IFLA_IPVLAN_FLAGS, IPVLAN_F_VEPA),
        ] {
            area.extend_from_slice(&6u16.to_ne_bytes());
            area.extend_from_slice(&kind.to_ne_bytes());
            area.extend_from_slice(&value.to_ne_bytes());
            area.extend_from_slice(&[0, 0]);
        }
        let wanted = LinkData::Ipvlan {
            mode: Reported::Known(IpvlanMode::L3),
            flag: Reported::Known(IpvlanFlag::Vepa),
        };
        for kind in ["ipvlan", "ipvtap"] {
            assert_eq!(parse_link_data(kind, &area).unwrap(), wanted, "{kind}");
        }
        assert_eq!(parse_link_data("dummy", &area).unwrap(), LinkData::None);
    }

    #[test]
    fn names_are_exact() {
        for text in ["L2", "l2 ", "", "l4", "layer2"] {
            let err = text.parse::<IpvlanMode>().unwrap_err();
            assert_eq!(err.text(), text);
            assert_eq!(
                err.to_string(),
                format!("invalid ipvlan mode {text:?} (expected l2, l3 or l3s)")
            );
        }
        let err = "Bridge".parse::<IpvlanFlag>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid ipvlan flag \"Bridge\" (expected bridge, private or vepa)"
        );
    }

    #[test]
    fn reported_values() {
        let known = Reported::Known(IpvlanMode::L3);
        assert_eq!(known.known(), Some(IpvlanMode::L3));
        assert!(known.is(IpvlanMode::L3) && !known.is(IpvlanMode::L2));
        assert_eq!(known.to_string(), "l3");
        let unknown: Reported<IpvlanFlag> = reported(3, IpvlanFlag::from_raw);
        assert_eq!(unknown, Reported::Unknown(3));
        assert_eq!(unknown.known(), None);
        assert!(IpvlanFlag::ALL.iter().all(|&flag| !unknown.is(flag)));
        assert_eq!(unknown.to_string(), "unknown(3)");
        assert_eq!(
            reported(2, IpvlanFlag::from_raw),
            Reported::Known(IpvlanFlag::Vepa)
        );
    }

    fn link_with_mac(mac: Option<Vec<u8>>) -> Link {
        Link {
            index: 1,
            name: "x".to_owned(),
            raw_name: None,
            flags: 0,
            link_type: 1,
            mtu: None,
            mac,
            parent: None,
            link_netnsid: None,
            master: None,
            group: None,
            operstate: None,
            kind: None,
            data: LinkData::None,
        }
    }

    #[test]
    fn mac_text() {
        let mac = vec![0x02, 0xfc, 0, 0x0a, 0xbb, 0xff];
        assert_eq!(link_with_mac(Some(mac)).mac_text(), "02:fc:00:0a:bb:ff");
        assert_eq!(link_with_mac(None).mac_text(), "");
        assert_eq!(link_with_mac(Some(vec![])).mac_text(), "");
    }
}
