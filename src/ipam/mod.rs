//! IP address management: subnets and what belongs to them, default
//! pools, and the allocator. Pure: no I/O here; the state store supplies
//! an [`AddressBook`] on disk.

mod allocator;
mod error;
mod pool;
mod subnet;

pub use allocator::{allocate, exact_spec, release, AddressBook, MemoryBook, NetworkName, Request};
pub use error::{IpamError, Reserved};
pub use pool::{
    default_ipv4_candidates, default_ipv4_subnet, default_ipv6_subnet, host_nameservers,
    parse_resolv_conf, ula_prefix, Avoid, RESOLVED_UPSTREAM_CONF, RESOLV_CONF,
};
pub use subnet::{
    check_overlaps, fill_default_gateways, from_u128, match_subnets, overlaps, parse_address,
    parse_aux, parse_ip_range, parse_subnet, to_u128, SubnetSpec,
};

/// The address family of addresses and subnets: rtnl's, the crate's one.
pub use crate::rtnl::IpFamily;
