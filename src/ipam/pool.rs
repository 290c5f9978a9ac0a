//! Default subnets for networks created without `--subnet`: Docker's local
//! pools for IPv4, a ULA /64 derived from the host id for IPv6.
//!
//! The host's on-link routes and nameservers are inputs: the caller reads
//! them (netlink, `/etc/resolv.conf`), which keeps this module pure.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::subnet::overlaps;
use super::{IpFamily, IpamError};

/// What a default subnet must not overlap.
#[derive(Debug, Clone, Copy, Default)]
pub struct Avoid<'a> {
    /// Subnets of every network we manage.
    pub networks: &'a [IpNet],
    /// The host's on-link routes (default routes are ignored).
    pub host_routes: &'a [IpNet],
    /// Nameservers from resolv.conf.
    pub nameservers: &'a [IpAddr],
}

impl Avoid<'_> {
    fn clashes(&self, candidate: &IpNet) -> bool {
        self.networks.iter().any(|n| overlaps(n, candidate))
            || self
                .host_routes
                .iter()
                .filter(|r| r.prefix_len() != 0)
                .any(|r| overlaps(r, candidate))
            || self.nameservers.iter().any(|ns| candidate.contains(ns))
    }
}

/// Docker's local IPv4 pools in order: the /16s of 172.17.0.0-172.31.255.255,
/// then the /20s of 192.168.0.0/16.
pub fn default_ipv4_candidates() -> impl Iterator<Item = Ipv4Net> {
    // Constant prefix lengths below 32: `new_assert` keeps no error path.
    let sixteens = (17u8..=31).map(|b| Ipv4Net::new_assert(Ipv4Addr::new(172, b, 0, 0), 16));
    let twenties = (0u8..16).map(|i| Ipv4Net::new_assert(Ipv4Addr::new(192, 168, i * 16, 0), 20));
    sixteens.chain(twenties)
}

/// The first default IPv4 pool that clashes with nothing in `avoid`.
pub fn default_ipv4_subnet(avoid: Avoid<'_>) -> Result<IpNet, IpamError> {
    default_ipv4_candidates()
        .map(IpNet::V4)
        .find(|c| !avoid.clashes(c))
        .ok_or(IpamError::DefaultPoolsExhausted {
            family: IpFamily::V4,
        })
}

/// The host's ULA /48: `fd` followed by 40 bits of a hash of the host id
/// (RFC 4193's global ID).
pub fn ula_prefix(host_id: &[u8]) -> Ipv6Net {
    let global_id = stable_hash(host_id) & ((1u64 << 40) - 1);
    let high = (0xfd_u128 << 120) | (u128::from(global_id) << 80);
    Ipv6Net::new_assert(Ipv6Addr::from(high), 48)
}

/// The first /64 of the host's ULA /48 that clashes with nothing in `avoid`.
pub fn default_ipv6_subnet(host_id: &[u8], avoid: Avoid<'_>) -> Result<IpNet, IpamError> {
    let base = u128::from(ula_prefix(host_id).network());
    (0u128..1 << 16)
        .map(|i| {
            let addr = Ipv6Addr::from(base | (i << 64));
            IpNet::V6(Ipv6Net::new_assert(addr, 64))
        })
        .find(|c| !avoid.clashes(c))
        .ok_or(IpamError::DefaultPoolsExhausted {
            family: IpFamily::V6,
        })
}

/// The host's resolver configuration.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Where systemd-resolved lists the nameservers its stub forwards to.
pub const RESOLVED_UPSTREAM_CONF: &str = "/run/systemd/resolve/resolv.conf";

/// The host's nameservers, as Docker finds them to keep its default pools
/// off them: those of [`RESOLV_CONF`], or, where its only one is
/// systemd-resolved's stub (127.0.0.53, the default on Ubuntu and Fedora),
/// those of [`RESOLVED_UPSTREAM_CONF`], which the stub forwards to and
/// containers then reach. `read` gives a file's text (none when it cannot
/// be read, which lists no nameserver).
pub fn host_nameservers(read: impl Fn(&str) -> Option<String>) -> Vec<IpAddr> {
    let found = read(RESOLV_CONF).map_or(Vec::new(), |text| parse_resolv_conf(&text));
    if found == [IpAddr::from([127, 0, 0, 53])] {
        if let Some(text) = read(RESOLVED_UPSTREAM_CONF) {
            return parse_resolv_conf(&text);
        }
    }
    found
}

/// The `nameserver` addresses of resolv.conf text (zone suffixes such as
/// `%eth0` dropped; lines that do not parse ignored, as the resolver does).
pub fn parse_resolv_conf(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            match (words.next(), words.next()) {
                (Some("nameserver"), Some(value)) => {
                    value.split('%').next().and_then(|v| v.parse().ok())
                }
                _ => None,
            }
        })
        .collect()
}

/// FNV-1a with a splitmix64 finish: stable across Rust versions and
/// platforms (the ULA prefix must never change for a host), well mixed.
fn stable_hash(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash ^= hash >> 30;
    hash = hash.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash ^= hash >> 27;
    hash = hash.wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}
