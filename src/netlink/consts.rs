//! Netlink and rtnetlink numbers, named exactly as in the kernel's uapi headers
//! (`linux/netlink.h`, `rtnetlink.h`, `if_link.h`, `if_addr.h`).
//!
//! Everything is defined here with the width it has on the wire, including the
//! numbers `libc` also has; a unit test pins those against `libc` so a typo
//! cannot drift.
//!
//! The `*_MAX` numbers (highest attribute type of an enum) are those of the
//! kernel we target, Linux 6.1. They size [`super::AttrTable`]s only: a
//! newer kernel's higher types are skipped, and we read none of them.

#![allow(missing_docs)]

// linux/netlink.h
pub const NETLINK_ROUTE: i32 = 0;
pub const SOL_NETLINK: i32 = 270;
pub const NETLINK_CAP_ACK: i32 = 10;
pub const NETLINK_EXT_ACK: i32 = 11;
pub const NETLINK_GET_STRICT_CHK: i32 = 12;

// asm-generic/socket.h (x86_64, aarch64 and most others; `libc` does not
// export it yet). Linux 5.14+.
pub const SO_NETNS_COOKIE: i32 = 71;

pub const NLMSG_ALIGNTO: usize = 4;
pub const NLMSG_HDRLEN: usize = 16;
pub const NLA_ALIGNTO: usize = 4;
pub const NLA_HDRLEN: usize = 4;

/// `NLMSG_ALIGN` and `NLA_ALIGN`: rounds `len` up to the netlink alignment
/// (4 bytes, for messages and attributes alike). Lives here, below both the
/// message and the attribute code, so neither has to import the other for it.
pub const fn align(len: usize) -> usize {
    const _: () = assert!(NLMSG_ALIGNTO == NLA_ALIGNTO);
    (len + NLA_ALIGNTO - 1) & !(NLA_ALIGNTO - 1)
}

pub const NLMSG_NOOP: u16 = 1;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLMSG_OVERRUN: u16 = 4;

pub const NLM_F_REQUEST: u16 = 0x01;
pub const NLM_F_MULTI: u16 = 0x02;
pub const NLM_F_ACK: u16 = 0x04;
pub const NLM_F_ECHO: u16 = 0x08;
pub const NLM_F_DUMP_INTR: u16 = 0x10;
pub const NLM_F_ROOT: u16 = 0x100;
pub const NLM_F_MATCH: u16 = 0x200;
pub const NLM_F_DUMP: u16 = NLM_F_ROOT | NLM_F_MATCH;
pub const NLM_F_REPLACE: u16 = 0x100;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_APPEND: u16 = 0x800;
pub const NLM_F_CAPPED: u16 = 0x100;
pub const NLM_F_ACK_TLVS: u16 = 0x200;

pub const NLA_F_NESTED: u16 = 0x8000;
pub const NLA_F_NET_BYTEORDER: u16 = 0x4000;
pub const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);

// enum nlmsgerr_attrs
pub const NLMSGERR_ATTR_MSG: u16 = 1;
pub const NLMSGERR_ATTR_OFFS: u16 = 2;
pub const NLMSGERR_ATTR_MAX: u16 = 6;

// linux/rtnetlink.h: message types
pub const RTM_BASE: u16 = 16;
pub const RTM_NEWLINK: u16 = 16;
pub const RTM_DELLINK: u16 = 17;
pub const RTM_GETLINK: u16 = 18;
pub const RTM_SETLINK: u16 = 19;
pub const RTM_NEWADDR: u16 = 20;
pub const RTM_DELADDR: u16 = 21;
pub const RTM_GETADDR: u16 = 22;
pub const RTM_NEWROUTE: u16 = 24;
pub const RTM_DELROUTE: u16 = 25;
pub const RTM_GETROUTE: u16 = 26;

// rtmsg fields
pub const RT_TABLE_UNSPEC: u8 = 0;
pub const RT_TABLE_MAIN: u8 = 254;
pub const RT_TABLE_LOCAL: u8 = 255;
pub const RTPROT_KERNEL: u8 = 2;
pub const RTPROT_BOOT: u8 = 3;
pub const RTPROT_STATIC: u8 = 4;
pub const RT_SCOPE_UNIVERSE: u8 = 0;
pub const RT_SCOPE_LINK: u8 = 253;
pub const RT_SCOPE_HOST: u8 = 254;
pub const RTN_UNICAST: u8 = 1;
pub const RTN_LOCAL: u8 = 2;
pub const RTNH_F_ONLINK: u32 = 4;

// enum rtattr_type_t
pub const RTA_DST: u16 = 1;
pub const RTA_SRC: u16 = 2;
pub const RTA_IIF: u16 = 3;
pub const RTA_OIF: u16 = 4;
pub const RTA_GATEWAY: u16 = 5;
pub const RTA_PRIORITY: u16 = 6;
pub const RTA_PREFSRC: u16 = 7;
pub const RTA_MULTIPATH: u16 = 9;
pub const RTA_TABLE: u16 = 15;
pub const RTA_VIA: u16 = 18;
pub const RTA_MAX: u16 = 30;

// linux/if_link.h
pub const IFLA_ADDRESS: u16 = 1;
pub const IFLA_BROADCAST: u16 = 2;
pub const IFLA_IFNAME: u16 = 3;
pub const IFLA_MTU: u16 = 4;
pub const IFLA_LINK: u16 = 5;
pub const IFLA_MASTER: u16 = 10;
pub const IFLA_OPERSTATE: u16 = 16;
pub const IFLA_LINKINFO: u16 = 18;
pub const IFLA_NET_NS_PID: u16 = 19;
pub const IFLA_AF_SPEC: u16 = 26;
pub const IFLA_GROUP: u16 = 27;
pub const IFLA_NET_NS_FD: u16 = 28;
pub const IFLA_EXT_MASK: u16 = 29;
pub const IFLA_LINK_NETNSID: u16 = 37;
pub const IFLA_MAX: u16 = 61;

// linux/if_link.h: the nest of `AF_INET` inside `IFLA_AF_SPEC`.
pub const IFLA_INET_CONF: u16 = 1;

// linux/ip.h: `enum { IPV4_DEVCONF_FORWARDING = 1, ... }`, the index of a
// setting in `IFLA_INET_CONF` (`net.ipv4.conf.IFNAME.arp_notify`).
pub const IPV4_DEVCONF_ARP_NOTIFY: u16 = 22;

pub const IFLA_INFO_KIND: u16 = 1;
pub const IFLA_INFO_DATA: u16 = 2;
pub const IFLA_INFO_MAX: u16 = 5;

pub const IFLA_IPVLAN_MODE: u16 = 1;
pub const IFLA_IPVLAN_FLAGS: u16 = 2;
pub const IFLA_IPVLAN_MAX: u16 = 2;
pub const IPVLAN_MODE_L2: u16 = 0;
pub const IPVLAN_MODE_L3: u16 = 1;
pub const IPVLAN_MODE_L3S: u16 = 2;
pub const IPVLAN_F_PRIVATE: u16 = 0x01;
pub const IPVLAN_F_VEPA: u16 = 0x02;

pub const IFLA_VLAN_ID: u16 = 1;
pub const IFLA_VLAN_PROTOCOL: u16 = 5;
pub const IFLA_VLAN_MAX: u16 = 5;

pub const IFLA_MACVLAN_MODE: u16 = 1;
pub const IFLA_MACVLAN_MAX: u16 = 8;
pub const MACVLAN_MODE_PRIVATE: u32 = 1;
pub const MACVLAN_MODE_VEPA: u32 = 2;
pub const MACVLAN_MODE_BRIDGE: u32 = 4;
pub const MACVLAN_MODE_PASSTHRU: u32 = 8;

pub const VETH_INFO_PEER: u16 = 1;

pub const RTEXT_FILTER_VF: u32 = 1;
pub const RTEXT_FILTER_SKIP_STATS: u32 = 8;

// linux/if.h
pub const IFF_UP: u32 = 0x1;
pub const IFF_LOOPBACK: u32 = 0x8;
pub const IFF_NOARP: u32 = 0x80;
pub const IFF_LOWER_UP: u32 = 0x10000;

// linux/if_addr.h
pub const IFA_ADDRESS: u16 = 1;
pub const IFA_LOCAL: u16 = 2;
pub const IFA_LABEL: u16 = 3;
pub const IFA_BROADCAST: u16 = 4;
pub const IFA_FLAGS: u16 = 8;
pub const IFA_PROTO: u16 = 11;
pub const IFA_MAX: u16 = 11;
pub const IFA_F_NODAD: u32 = 0x02;
/// `IFA_PROTO` values the kernel gives the addresses it makes itself
/// (Debian's 6.1 and later mark them; user space's addresses carry none,
/// or their own).
pub const IFAPROT_KERNEL_LO: u8 = 1;
pub const IFAPROT_KERNEL_RA: u8 = 2;
pub const IFAPROT_KERNEL_LL: u8 = 3;

pub const AF_UNSPEC: u8 = 0;
pub const AF_INET: u8 = 2;
pub const AF_INET6: u8 = 10;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_shared_with_libc_match() {
        assert_eq!(NETLINK_ROUTE, libc::NETLINK_ROUTE);
        assert_eq!(SOL_NETLINK, libc::SOL_NETLINK);
        assert_eq!(NETLINK_CAP_ACK, libc::NETLINK_CAP_ACK);
        assert_eq!(NETLINK_EXT_ACK, libc::NETLINK_EXT_ACK);
        assert_eq!(NETLINK_GET_STRICT_CHK, libc::NETLINK_GET_STRICT_CHK);
        assert_eq!(i32::from(NLMSG_ERROR), libc::NLMSG_ERROR);
        assert_eq!(i32::from(NLMSG_DONE), libc::NLMSG_DONE);
        assert_eq!(i32::from(NLM_F_DUMP_INTR), libc::NLM_F_DUMP_INTR);
        assert_eq!(i32::from(NLM_F_DUMP), libc::NLM_F_DUMP);
        assert_eq!(i32::from(NLM_F_CREATE), libc::NLM_F_CREATE);
        assert_eq!(i32::from(NLM_F_EXCL), libc::NLM_F_EXCL);
        assert_eq!(i32::from(NLM_F_APPEND), libc::NLM_F_APPEND);
        assert_eq!(i32::from(NLM_F_CAPPED), libc::NLM_F_CAPPED);
        assert_eq!(i32::from(NLM_F_ACK_TLVS), libc::NLM_F_ACK_TLVS);
        assert_eq!(i32::from(NLA_F_NESTED), libc::NLA_F_NESTED);
        assert_eq!(RTM_NEWLINK, libc::RTM_NEWLINK);
        assert_eq!(RTM_GETROUTE, libc::RTM_GETROUTE);
        assert_eq!(IFLA_IFNAME, libc::IFLA_IFNAME);
        assert_eq!(IFLA_LINKINFO, libc::IFLA_LINKINFO);
        assert_eq!(IFLA_NET_NS_FD, libc::IFLA_NET_NS_FD);
        assert_eq!(IFLA_EXT_MASK, libc::IFLA_EXT_MASK);
        assert_eq!(IFLA_INFO_DATA, libc::IFLA_INFO_DATA);
        assert_eq!(IFA_FLAGS, libc::IFA_FLAGS);
        assert_eq!(IFA_F_NODAD, libc::IFA_F_NODAD);
        assert_eq!(RTA_TABLE, libc::RTA_TABLE);
        assert_eq!(RTA_MULTIPATH, libc::RTA_MULTIPATH);
        assert_eq!(RT_SCOPE_LINK, libc::RT_SCOPE_LINK);
        assert_eq!(
            RTEXT_FILTER_SKIP_STATS,
            libc::RTEXT_FILTER_SKIP_STATS as u32
        );
        assert_eq!(i32::from(AF_INET6), libc::AF_INET6);
    }

    #[test]
    fn align_rounds_up_to_four() {
        assert_eq!(
            [0, 1, 3, 4, 5, 8].map(align),
            [0, 4, 4, 4, 8, 8],
            "NLMSG_ALIGN / NLA_ALIGN"
        );
    }
}
