//! Addresses (`RTM_*ADDR`, family header `ifaddrmsg`).

use std::net::{IpAddr, Ipv4Addr};

use bitflags::bitflags;
use ipnet::IpNet;

use super::error::LinkRef;
use super::Handle;
use crate::netlink::consts::*;
use crate::netlink::{AttrTable, Error, MessageBuilder, MessageView, Result};

bitflags! {
    /// `IFA_F_*` address flags.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    pub struct AddrFlags: u32 {
        /// A secondary address of its subnet.
        const SECONDARY = 0x01;
        /// No duplicate address detection (IPv6): usable at once.
        const NODAD = IFA_F_NODAD;
        /// Optimistic DAD (IPv6).
        const OPTIMISTIC = 0x04;
        /// DAD failed (IPv6).
        const DADFAILED = 0x08;
        /// Home address (mobile IPv6).
        const HOMEADDRESS = 0x10;
        /// Deprecated (IPv6).
        const DEPRECATED = 0x20;
        /// DAD still running (IPv6).
        const TENTATIVE = 0x40;
        /// Configured, not learnt.
        const PERMANENT = 0x80;
        /// Privacy extensions temporary address management.
        const MANAGETEMPADDR = 0x100;
        /// Do not add the prefix route.
        const NOPREFIXROUTE = 0x200;
        /// Join the multicast group of the address.
        const MCAUTOJOIN = 0x400;
        /// Stable privacy address.
        const STABLE_PRIVACY = 0x800;
    }
}

/// `struct ifaddrmsg` (8 bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IfAddrMsg {
    /// `AF_INET` or `AF_INET6`.
    pub family: u8,
    /// Prefix length.
    pub prefix_len: u8,
    /// Low 8 bits of the flags (the `IFA_FLAGS` attribute overrides them).
    pub flags: u8,
    /// `RT_SCOPE_*`.
    pub scope: u8,
    /// Interface index.
    pub index: u32,
}

impl IfAddrMsg {
    /// Size on the wire.
    pub const LEN: usize = 8;

    /// Serialises the header.
    pub fn to_bytes(&self) -> [u8; Self::LEN] {
        let i = self.index.to_ne_bytes();
        [
            self.family,
            self.prefix_len,
            self.flags,
            self.scope,
            i[0],
            i[1],
            i[2],
            i[3],
        ]
    }

    /// Reads the header from the start of `b`.
    pub fn parse(b: &[u8]) -> Result<IfAddrMsg> {
        let b = b
            .get(..Self::LEN)
            .ok_or_else(|| Error::malformed("truncated ifaddrmsg"))?;
        Ok(IfAddrMsg {
            family: b[0],
            prefix_len: b[1],
            flags: b[2],
            scope: b[3],
            index: u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        })
    }
}

fn family_of(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => AF_INET,
        IpAddr::V6(_) => AF_INET6,
    }
}

fn addr_message(
    kind: u16,
    flags: u16,
    index: u32,
    net: IpNet,
    addr_flags: AddrFlags,
) -> MessageBuilder {
    let mut msg = MessageBuilder::new(kind, flags);
    let header = IfAddrMsg {
        family: family_of(net.addr()),
        prefix_len: net.prefix_len(),
        flags: (addr_flags.bits() & 0xff) as u8,
        scope: 0,
        index,
    };
    msg.family_header(&header.to_bytes());
    msg.put_ip(IFA_LOCAL, net.addr())
        .put_ip(IFA_ADDRESS, net.addr());
    msg
}

/// `RTM_NEWADDR` (`CREATE | EXCL`) for `net` on link `index`. IPv4 gets a
/// broadcast address for prefixes up to /30, like `ip addr add … brd +` and
/// Docker; `flags`, when not empty, go both in `ifa_flags` and `IFA_FLAGS`.
pub fn add_request(index: u32, net: IpNet, flags: AddrFlags) -> MessageBuilder {
    let mut msg = addr_message(
        RTM_NEWADDR,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        index,
        net,
        flags,
    );
    if let IpNet::V4(v4) = net {
        if v4.prefix_len() <= 30 {
            msg.put_ip(IFA_BROADCAST, IpAddr::V4(v4.broadcast()));
        }
    }
    if !flags.is_empty() {
        msg.put_u32(IFA_FLAGS, flags.bits());
    }
    msg
}

/// `RTM_DELADDR` for `net` on link `index`.
pub fn del_request(index: u32, net: IpNet) -> MessageBuilder {
    addr_message(
        RTM_DELADDR,
        NLM_F_REQUEST | NLM_F_ACK,
        index,
        net,
        AddrFlags::empty(),
    )
}

/// Dump of the addresses of `family` (`AF_UNSPEC` for all).
pub fn dump_request(family: u8) -> MessageBuilder {
    let mut msg = MessageBuilder::new(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP);
    let header = IfAddrMsg {
        family,
        ..IfAddrMsg::default()
    };
    msg.family_header(&header.to_bytes());
    msg
}

/// An address as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// Interface index.
    pub index: u32,
    /// Address and prefix length.
    pub net: IpNet,
    /// Flags (from `IFA_FLAGS` when present).
    pub flags: AddrFlags,
    /// `RT_SCOPE_*` (0 global, 253 link, 254 host).
    pub scope: u8,
    /// IPv4 broadcast address.
    pub broadcast: Option<Ipv4Addr>,
    /// IPv4 label (`eth0`, `eth0:1`).
    pub label: Option<String>,
    /// Who made it (`IFA_PROTO`, `IFAPROT_*`): absent from kernels before
    /// 5.18, and from addresses added without one.
    pub proto: Option<u8>,
}

impl Address {
    /// Parses an `RTM_NEWADDR` message.
    pub fn parse(msg: &MessageView<'_>) -> Result<Address> {
        let header = IfAddrMsg::parse(msg.payload())?;
        if header.family != AF_INET && header.family != AF_INET6 {
            return Err(Error::malformed("address of an unknown address family"));
        }
        let tb = AttrTable::<{ IFA_MAX as usize + 1 }>::parse(msg.attr_area(IfAddrMsg::LEN)?)?;
        // IFA_LOCAL is the address itself; IFA_ADDRESS is the peer on p2p
        // links, and the only one IPv6 sends.
        let addr = tb
            .get(IFA_LOCAL)
            .or_else(|| tb.get(IFA_ADDRESS))
            .ok_or_else(|| Error::malformed("address message without an address"))?
            .ip()?;
        let net = IpNet::new(addr, header.prefix_len)
            .map_err(|_| Error::malformed("prefix length too long for the address"))?;
        let flags = match tb.get(IFA_FLAGS) {
            Some(attr) => attr.u32()?,
            None => u32::from(header.flags),
        };
        let broadcast = match tb.get(IFA_BROADCAST).map(|a| a.ip()).transpose()? {
            Some(IpAddr::V4(v4)) => Some(v4),
            _ => None,
        };
        Ok(Address {
            index: header.index,
            net,
            flags: AddrFlags::from_bits_retain(flags),
            scope: header.scope,
            broadcast,
            // A label is an interface name (plus ":alias"): any bytes.
            label: tb.get(IFA_LABEL).map(|a| a.str_lossy().into_owned()),
            proto: tb.get(IFA_PROTO).map(|a| a.u8()).transpose()?,
        })
    }
}

/// The IPv4 or IPv6 address in one message of an `AF_UNSPEC` address
/// dump, or `None` for other messages. The dump holds every family the
/// kernel has (`AF_MCTP` with 1-byte addresses, ...): those are skipped,
/// and so is a message that does not decode, so that one odd address never
/// hides the others; broken framing still fails the dump.
pub fn from_dump(msg: &MessageView<'_>) -> Option<Address> {
    if msg.header.kind != RTM_NEWADDR {
        return None;
    }
    let family = IfAddrMsg::parse(msg.payload()).ok()?.family;
    if family != AF_INET && family != AF_INET6 {
        return None;
    }
    Address::parse(msg).ok()
}

impl Handle {
    /// Adds `net` (address/prefix) to link `index`. Use
    /// [`AddrFlags::NODAD`] for IPv6 addresses that must work at once.
    pub fn addr_add(&self, index: u32, net: IpNet, flags: AddrFlags) -> Result<()> {
        self.ack(
            &add_request(index, net, flags),
            "add address",
            LinkRef::Index(index),
        )
    }

    /// Removes `net` from link `index`.
    pub fn addr_del(&self, index: u32, net: IpNet) -> Result<()> {
        self.ack(
            &del_request(index, net),
            "delete address",
            LinkRef::Index(index),
        )
    }

    /// All addresses (IPv4 and IPv6) of the handle's netns. Addresses of
    /// other families, and messages that do not decode, are left out (see
    /// [`from_dump`]); only a broken dump fails the call.
    pub fn addrs(&self) -> Result<Vec<Address>> {
        self.socket()
            .dump(&dump_request(AF_UNSPEC), |msg| Ok(from_dump(msg)))
            .map_err(|e| self.context_op(e, "list addresses"))
    }

    /// The addresses of link `index`.
    pub fn addrs_of(&self, index: u32) -> Result<Vec<Address>> {
        let mut addrs = self.addrs()?;
        addrs.retain(|a| a.index == index);
        Ok(addrs)
    }
}
