//! The subnets of a new network: those given with their gateways, ranges
//! and aux addresses, the overlap check against our other networks, and
//! default pools that avoid the host's own on-link routes and nameservers.

use std::net::IpAddr;

use ipnet::IpNet;

use super::{Error, NetworkCreate, SubnetInfo};
use crate::ipam::{self, Avoid, SubnetSpec};
use crate::rtnl::{Handle, IpFamily};
use crate::store::{Locked, NetworkRecord, MACHINE_ID_PATH};

/// The request's subnets with their gateways, ranges and aux addresses.
pub(crate) fn from_request(req: &NetworkCreate) -> Result<Vec<SubnetInfo>, Error> {
    Ok(ipam::match_subnets(
        &req.subnets,
        &req.gateways,
        &req.ip_ranges,
        &req.aux_addresses,
    )?)
}

/// Refuses subnets overlapping another network's.
pub(crate) fn check_overlaps(
    subnets: &[SubnetInfo],
    networks: &[NetworkRecord],
) -> Result<(), Error> {
    let existing = networks
        .iter()
        .flat_map(|n| n.subnets.iter().map(move |s| (n.name.as_str(), s.subnet)));
    Ok(ipam::check_overlaps(subnets, existing)?)
}

/// The host's nameservers ([`ipam::host_nameservers`]).
fn nameservers() -> Vec<IpAddr> {
    ipam::host_nameservers(|path| std::fs::read_to_string(path).ok())
}

/// The host's on-link routes, IPv4 and IPv6: subnets a default pool must
/// not take.
fn onlink_routes(host: &Handle) -> Result<Vec<IpNet>, Error> {
    let mut found = Vec::new();
    for family in [IpFamily::V4, IpFamily::V6] {
        for route in host.routes(family)? {
            if route.is_onlink() {
                found.push(route.dst);
            }
        }
    }
    Ok(found)
}

/// Adds the default IPv4 subnet when none is given, and the default IPv6
/// one when IPv6 is on without a v6 subnet.
pub(crate) fn add_defaults(
    host: &Handle,
    state: &Locked<'_>,
    subnets: &mut Vec<SubnetInfo>,
    ipv6: bool,
    networks: &[NetworkRecord],
) -> Result<(), Error> {
    let has_v4 = subnets.iter().any(|s| s.subnet.addr().is_ipv4());
    let has_v6 = subnets.iter().any(|s| s.subnet.addr().is_ipv6());
    if has_v4 && (has_v6 || !ipv6) {
        return Ok(());
    }
    let taken: Vec<IpNet> = networks
        .iter()
        .flat_map(|n| n.subnets.iter().map(|s| s.subnet))
        .chain(subnets.iter().map(|s| s.subnet))
        .collect();
    let host_routes = onlink_routes(host)?;
    let nameservers = nameservers();
    let avoid = Avoid {
        networks: &taken,
        host_routes: &host_routes,
        nameservers: &nameservers,
    };
    if !has_v4 {
        let subnet = ipam::default_ipv4_subnet(avoid)?;
        subnets.insert(0, SubnetSpec::new(subnet));
    }
    if ipv6 && !has_v6 {
        let host_id = state.host_id(std::path::Path::new(MACHINE_ID_PATH))?;
        let subnet = ipam::default_ipv6_subnet(host_id.as_bytes(), avoid)?;
        subnets.push(SubnetSpec::new(subnet));
    }
    Ok(())
}
