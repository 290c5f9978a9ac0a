//! IP address management: subnets and what belongs to them, default
//! pools, and the allocator. Pure: no I/O here; the state store supplies
//! an [`AddressBook`] on disk.

mod allocator;
mod error;
mod pool;
mod subnet;

use std::fmt;

use ipnet::IpNet;

pub use allocator::{allocate, release, AddressBook, MemoryBook, NetworkName, Request};
pub use error::IpamError;
pub use pool::{
    default_ipv4_candidates, default_ipv4_subnet, default_ipv6_subnet, parse_resolv_conf,
    ula_prefix, Avoid,
};
pub use subnet::{
    check_overlaps, fill_default_gateways, from_u128, match_subnets, overlaps, parse_address,
    parse_aux, parse_ip_range, parse_subnet, to_u128, SubnetSpec,
};

/// An address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(addr: &std::net::IpAddr) -> Family {
        if addr.is_ipv4() {
            Family::V4
        } else {
            Family::V6
        }
    }

    /// The family of a subnet.
    pub fn of_net(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}
