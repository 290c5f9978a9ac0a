//! A network's subnets: parsing, matching gateways, ip-ranges and aux
//! addresses to their subnet by containment (as Docker's CLI does), the
//! addresses a subnet reserves, and overlap checks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::{IpFamily, IpamError, Reserved};

/// One subnet of a network with what belongs to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubnetSpec {
    /// The subnet, host bits clear.
    pub subnet: IpNet,
    /// The gateway; reserved, never handed to a container.
    pub gateway: Option<IpAddr>,
    /// Where automatic allocation draws from; explicit requests may lie
    /// anywhere in the subnet.
    pub ip_range: Option<IpNet>,
    /// Named reserved addresses, in the order given.
    pub aux: Vec<(String, IpAddr)>,
    /// The host's own addresses in the subnet, on the parent, when the
    /// network was made: never handed to a container (the kernel checks
    /// an ipvlan address against the other ipvlan links only, and the
    /// parent's traffic for it would go to the container).
    pub host: Vec<IpAddr>,
}

impl SubnetSpec {
    /// A subnet without gateway, range or aux addresses.
    pub fn new(subnet: IpNet) -> Self {
        SubnetSpec {
            subnet,
            gateway: None,
            ip_range: None,
            aux: Vec::new(),
            host: Vec::new(),
        }
    }

    /// IPv4 or IPv6.
    pub fn family(&self) -> IpFamily {
        IpFamily::of_net(&self.subnet)
    }

    /// Whether `addr` lies in the subnet.
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.subnet.contains(&addr)
    }

    /// The cursor that says a walk found the subnet full: its network
    /// address, which is never handed out. Older versions read it as a
    /// cursor before the range and walk from the range's start. None for
    /// an IPv4 /31 or /32, whose walk is two addresses at most.
    pub fn full_mark(&self) -> Option<IpAddr> {
        let network = self.subnet.network();
        self.is_reserved(network).then_some(network)
    }

    /// Whether `addr` can never go to a container automatically or on
    /// request: network address (IPv4 except /31 and /32), IPv4 broadcast
    /// (except /31 and /32), IPv6 subnet-router anycast, gateway, aux.
    pub fn is_reserved(&self, addr: IpAddr) -> bool {
        self.reservation(addr).is_some()
    }

    /// What `addr` is reserved as, if it is (see [`SubnetSpec::is_reserved`]).
    ///
    /// ```
    /// use ipvlan::ipam::{Reserved, SubnetSpec};
    /// let spec = SubnetSpec::new("192.168.1.0/24".parse().unwrap());
    /// assert_eq!(spec.reservation("192.168.1.255".parse().unwrap()), Some(Reserved::Broadcast));
    /// assert_eq!(spec.reservation("192.168.1.2".parse().unwrap()), None);
    /// ```
    pub fn reservation(&self, addr: IpAddr) -> Option<Reserved> {
        if self.is_structural(addr) {
            return Some(match self.subnet {
                IpNet::V4(net) if addr == IpAddr::V4(net.network()) => Reserved::Network,
                IpNet::V4(_) => Reserved::Broadcast,
                IpNet::V6(_) => Reserved::SubnetRouterAnycast,
            });
        }
        if self.gateway == Some(addr) {
            return Some(Reserved::Gateway);
        }
        if self.host.contains(&addr) {
            return Some(Reserved::Host);
        }
        self.aux
            .iter()
            .find(|(_, a)| *a == addr)
            .map(|(name, _)| Reserved::Aux(name.clone()))
    }

    /// Network, broadcast and anycast addresses: never hosts.
    fn is_structural(&self, addr: IpAddr) -> bool {
        match self.subnet {
            IpNet::V4(net) => {
                net.prefix_len() < 31
                    && (addr == IpAddr::V4(net.network()) || addr == IpAddr::V4(net.broadcast()))
            }
            IpNet::V6(net) => addr == IpAddr::V6(net.network()),
        }
    }

    /// The lowest address a host may have (`.1`, `prefix::1`; the network
    /// address itself for IPv4 /31 and /32). `None` for an IPv6 /128.
    pub fn first_usable(&self) -> Option<IpAddr> {
        let base = to_u128(self.subnet.network());
        let (first, last) = (base, to_u128(self.subnet.broadcast()));
        (first..=last)
            .take(2)
            .map(|v| from_u128(self.family(), v))
            .find(|a| !self.is_structural(*a))
    }

    /// The gateway Docker (up to v27) picks when none is given: the first
    /// address of the ip-range (or of the subnet) that is not structural:
    /// `.1`, `prefix::1` without a range. `None` when the range holds no
    /// such address. Docker takes it before the aux addresses, so an aux
    /// address there is refused ([`match_subnets`]), not skipped.
    pub fn default_gateway(&self) -> Option<IpAddr> {
        let (first, last) = self.allocation_bounds();
        // Only the network address (and an IPv6 anycast) can come first.
        (first..=last)
            .take(3)
            .map(|v| from_u128(self.family(), v))
            .find(|a| !self.is_structural(*a))
    }

    /// Whether automatic allocation has an address to give a container:
    /// one of the ip-range (or of the subnet) that is not reserved, nor the
    /// gateway it gets when none is set. A /32 whose one address is its
    /// gateway has none, nor a /128 (its one address is the subnet-router
    /// anycast) or a /127 with a gateway, nor an ip-range that holds only
    /// such addresses (every `run` without `--ip` would fail).
    pub fn has_room(&self) -> bool {
        let (first, last) = self.allocation_bounds();
        self.has_room_between(first, last)
    }

    /// [`SubnetSpec::has_room`] for the addresses `first..=last` (as
    /// integers) of the subnet: whether one of them is neither reserved nor
    /// the gateway (a CNI config's `rangeStart`-`rangeEnd`, which need not
    /// be a CIDR block).
    pub fn has_room_between(&self, first: u128, last: u128) -> bool {
        let gateway = self.gateway_or_default();
        // At most 3 structural and gateway addresses, and the aux and host
        // ones, can come before a free one.
        let tries = self.aux.len() + self.host.len() + 4;
        (first..=last)
            .take(tries)
            .map(|v| from_u128(self.family(), v))
            .any(|a| !self.is_reserved(a) && Some(a) != gateway)
    }

    /// The gateway, or the default one when none is set.
    pub fn gateway_or_default(&self) -> Option<IpAddr> {
        self.gateway.or_else(|| self.default_gateway())
    }

    /// Inclusive bounds, as integers, of automatic allocation: the
    /// ip-range if set, else the whole subnet.
    pub fn allocation_bounds(&self) -> (u128, u128) {
        let net = self.ip_range.unwrap_or(self.subnet);
        (to_u128(net.network()), to_u128(net.broadcast()))
    }

    /// A file-name-safe key naming the subnet: `192.168.1.0-24`,
    /// `2001:db8::-64`.
    pub fn key(&self) -> String {
        // Digit by digit (see `digits`): every allocation and release
        // names the subnet's directory.
        let mut key = crate::digits::ip_text(self.subnet.addr());
        key.push('-');
        crate::digits::push_decimal(&mut key, u64::from(self.subnet.prefix_len()));
        key
    }
}

/// Parses a `--subnet` CIDR; host bits set is an error naming the expected form.
pub fn parse_subnet(text: &str) -> Result<IpNet, IpamError> {
    let net = crate::digits::parse_cidr(text.trim()).ok_or_else(|| IpamError::InvalidCidr {
        text: text.to_string(),
    })?;
    check_host_bits(net)?;
    Ok(net)
}

/// Parses an `--ip-range` CIDR; host bits set is an error.
pub fn parse_ip_range(text: &str) -> Result<IpNet, IpamError> {
    let net = crate::digits::parse_cidr(text.trim()).ok_or_else(|| IpamError::InvalidCidr {
        text: text.to_string(),
    })?;
    if net.trunc() != net {
        return Err(IpamError::RangeHostBitsSet {
            range: net,
            expected: net.trunc(),
        });
    }
    Ok(net)
}

/// Parses an IP address (`--gateway`, `--ip`, `--ip6`, aux values).
pub fn parse_address(text: &str) -> Result<IpAddr, IpamError> {
    text.trim().parse().map_err(|_| IpamError::InvalidAddress {
        text: text.to_string(),
    })
}

/// Parses `--aux-address name=IP`.
pub fn parse_aux(text: &str) -> Result<(String, IpAddr), IpamError> {
    match text.split_once('=') {
        Some((name, ip)) if !name.is_empty() => Ok((name.to_string(), parse_address(ip)?)),
        _ => Err(IpamError::InvalidAddress {
            text: text.to_string(),
        }),
    }
}

fn check_host_bits(net: IpNet) -> Result<(), IpamError> {
    if net.trunc() != net {
        return Err(IpamError::HostBitsSet {
            subnet: net,
            expected: net.trunc(),
        });
    }
    Ok(())
}

/// Refuses a subnet overlapping a block that holds no addresses of hosts
/// on a network: multicast (`224.0.0.0/4`, `ff00::/8`), loopback
/// (`127.0.0.0/8`, `::1`; so also any `::/N`, which holds it),
/// IPv4-mapped IPv6 (`::ffff:0:0/96`, which holds the IPv4 blocks
/// again), and the two IPv4 addresses a /31 or /32 would otherwise hand
/// out or make its gateway: the limited broadcast `255.255.255.255` and
/// the unspecified `0.0.0.0`. The kernel would refuse each container's
/// address, or take it for another thing than a host on the network.
fn check_unicast(net: IpNet) -> Result<(), IpamError> {
    const BLOCKS: [(&str, &str); 7] = [
        ("224.0.0.0/4", "multicast"),
        ("127.0.0.0/8", "loopback"),
        ("255.255.255.255/32", "limited broadcast"),
        ("0.0.0.0/32", "unspecified"),
        ("ff00::/8", "multicast"),
        ("::1/128", "loopback"),
        ("::ffff:0:0/96", "IPv4-mapped"),
    ];
    for (block, what) in BLOCKS {
        let block = crate::digits::parse_cidr(block).expect("a CIDR");
        if block.addr().is_ipv4() == net.addr().is_ipv4() && overlaps(&block, &net) {
            return Err(IpamError::NotUnicast {
                subnet: net,
                block,
                what,
            });
        }
    }
    Ok(())
}

/// Builds a network's subnets from the flags as given, matching each
/// gateway, ip-range and aux address to the subnet that contains it.
///
/// Refuses: host bits set, multicast and loopback subnets, subnets
/// overlapping each other, a gateway,
/// range or aux address in no subnet, two gateways or two ranges in one
/// subnet, a gateway that is the network/broadcast/anycast address.
pub fn match_subnets(
    subnets: &[IpNet],
    gateways: &[IpAddr],
    ip_ranges: &[IpNet],
    aux: &[(String, IpAddr)],
) -> Result<Vec<SubnetSpec>, IpamError> {
    let mut specs: Vec<SubnetSpec> = Vec::with_capacity(subnets.len());
    for &net in subnets {
        check_host_bits(net)?;
        check_unicast(net)?;
        if let Some(other) = specs.iter().find(|s| overlaps(&s.subnet, &net)) {
            return Err(IpamError::OverlappingSubnets {
                first: other.subnet,
                second: net,
            });
        }
        specs.push(SubnetSpec::new(net));
    }
    for &range in ip_ranges {
        if range.trunc() != range {
            return Err(IpamError::RangeHostBitsSet {
                range,
                expected: range.trunc(),
            });
        }
        let spec = specs
            .iter_mut()
            .find(|s| s.subnet.contains(&range))
            .ok_or(IpamError::RangeOutsideSubnets { range })?;
        if let Some(first) = spec.ip_range {
            return Err(IpamError::MultipleRanges {
                subnet: spec.subnet,
                first,
                second: range,
            });
        }
        spec.ip_range = Some(range);
    }
    for &gateway in gateways {
        let spec = specs
            .iter_mut()
            .find(|s| s.contains(gateway))
            .ok_or(IpamError::GatewayOutsideSubnets { gateway })?;
        if let Some(first) = spec.gateway {
            return Err(IpamError::MultipleGateways {
                subnet: spec.subnet,
                first,
                second: gateway,
            });
        }
        if spec.is_structural(gateway) {
            return Err(IpamError::GatewayNotHost {
                gateway,
                subnet: spec.subnet,
            });
        }
        spec.gateway = Some(gateway);
    }
    for (index, (name, address)) in aux.iter().enumerate() {
        if aux[..index].iter().any(|(n, _)| n == name) {
            return Err(IpamError::DuplicateAuxName { name: name.clone() });
        }
        let spec = specs
            .iter_mut()
            .find(|s| s.contains(*address))
            .ok_or_else(|| IpamError::AuxOutsideSubnets {
                name: name.clone(),
                address: *address,
            })?;
        // Reserved already: the subnet's own addresses, its gateway (the
        // default one too: Docker takes it before the aux addresses; moved
        // past one, it would be an address nobody has, and l2 containers
        // would route through it), an aux address of another name
        // (Docker's IPAM refuses the second reservation of an address).
        if spec.is_structural(*address)
            || spec.gateway.or_else(|| spec.default_gateway()) == Some(*address)
            || spec.aux.iter().any(|(_, taken)| taken == address)
        {
            return Err(IpamError::AuxInUse {
                name: name.clone(),
                address: *address,
            });
        }
        spec.aux.push((name.clone(), *address));
    }
    Ok(specs)
}

/// Gives every subnet without a gateway its default one
/// ([`SubnetSpec::default_gateway`]); [`match_subnets`] refused an aux
/// address there.
pub fn fill_default_gateways(specs: &mut [SubnetSpec]) {
    for spec in specs {
        if spec.gateway.is_none() {
            spec.gateway = spec.default_gateway();
        }
    }
}

/// Whether two networks share at least one address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Refuses a new network's subnets when one overlaps a subnet of another
/// network (`existing` yields the other network's name and a subnet).
pub fn check_overlaps<'a>(
    specs: &[SubnetSpec],
    existing: impl IntoIterator<Item = (&'a str, IpNet)>,
) -> Result<(), IpamError> {
    for (network, other) in existing {
        if let Some(spec) = specs.iter().find(|s| overlaps(&s.subnet, &other)) {
            return Err(IpamError::PoolOverlap {
                subnet: spec.subnet,
                other,
                network: network.to_string(),
            });
        }
    }
    Ok(())
}

/// An address as an integer (IPv4 in the low 32 bits).
pub fn to_u128(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address of `family` whose integer value is `value` (IPv4 takes the low 32 bits).
pub fn from_u128(family: IpFamily, value: u128) -> IpAddr {
    match family {
        IpFamily::V4 => IpAddr::V4(Ipv4Addr::from(value as u32)),
        IpFamily::V6 => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subnets_key_is_its_address_and_prefix() {
        for (text, key) in [
            ("192.168.1.0/24", "192.168.1.0-24"),
            ("10.0.0.0/8", "10.0.0.0-8"),
            ("0.0.0.0/0", "0.0.0.0-0"),
            ("2001:db8::/64", "2001:db8::-64"),
            ("fd00:1:2:3::/120", "fd00:1:2:3::-120"),
        ] {
            let subnet: IpNet = text.parse().unwrap();
            let spec = SubnetSpec::new(subnet);
            assert_eq!(spec.key(), key);
            assert_eq!(key, format!("{}-{}", subnet.addr(), subnet.prefix_len()));
        }
    }
}
