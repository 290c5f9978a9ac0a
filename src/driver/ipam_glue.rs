//! The driver's use of [`crate::ipam`]: subnets from the request, default
//! pools, overlap checks.

use std::net::IpAddr;

use ipnet::IpNet;

use super::state::{Locked, NetworkRecord};
use super::{net, Error, NetworkCreate, SubnetInfo};
use crate::ipam::{self, Avoid, IpamError, SubnetSpec};

/// An address-management refusal as a driver error, with its text.
pub(crate) fn from_ipam(error: IpamError) -> Error {
    match error {
        IpamError::AddressInUse { .. } => Error::already_exists(error.to_string()),
        IpamError::PoolOverlap { .. } => Error::in_use(error.to_string()),
        IpamError::NoAvailableAddresses { .. } | IpamError::DefaultPoolsExhausted { .. } => {
            Error::failed(error.to_string())
        }
        _ => Error::invalid(error.to_string()),
    }
}

/// The request's subnets with their gateways, ranges and aux addresses.
pub(crate) fn match_subnets(req: &NetworkCreate) -> Result<Vec<SubnetInfo>, Error> {
    ipam::match_subnets(
        &req.subnets,
        &req.gateways,
        &req.ip_ranges,
        &req.aux_addresses,
    )
    .map_err(from_ipam)
}

/// Refuses subnets overlapping another network's.
pub(crate) fn check_overlaps(
    subnets: &[SubnetInfo],
    networks: &[NetworkRecord],
) -> Result<(), Error> {
    let existing = networks
        .iter()
        .flat_map(|n| n.subnets.iter().map(move |s| (n.name.as_str(), s.subnet)));
    ipam::check_overlaps(subnets, existing).map_err(from_ipam)
}

/// The nameservers of /etc/resolv.conf (none when it cannot be read).
fn nameservers() -> Vec<IpAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .map(|text| ipam::parse_resolv_conf(&text))
        .unwrap_or_default()
}

/// Adds the default IPv4 subnet when none is given, and the default IPv6
/// one when IPv6 is on without a v6 subnet.
pub(crate) fn add_defaults(
    subnets: &mut Vec<SubnetInfo>,
    ipv6: bool,
    networks: &[NetworkRecord],
    state: &Locked<'_>,
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
    let host_routes = net::onlink_routes()?;
    let nameservers = nameservers();
    let avoid = Avoid {
        networks: &taken,
        host_routes: &host_routes,
        nameservers: &nameservers,
    };
    if !has_v4 {
        let subnet = ipam::default_ipv4_subnet(avoid).map_err(from_ipam)?;
        subnets.insert(0, SubnetSpec::new(subnet));
    }
    if ipv6 && !has_v6 {
        let host_id = state.host_id()?;
        let subnet = ipam::default_ipv6_subnet(&host_id, avoid).map_err(from_ipam)?;
        subnets.push(SubnetSpec::new(subnet));
    }
    Ok(())
}
