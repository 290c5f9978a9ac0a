//! Every way address management can refuse, with Docker's wording where
//! Docker has one (users search for these texts).

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::IpFamily;
use crate::text::Shown;

/// What an address that can never be a container's is: why an explicit
/// request for it is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserved {
    /// The IPv4 subnet's own address (not in a /31 or /32).
    Network,
    /// The IPv4 subnet's broadcast address (not in a /31 or /32).
    Broadcast,
    /// The IPv6 subnet's first address, which routers answer.
    SubnetRouterAnycast,
    /// The subnet's gateway.
    Gateway,
    /// An `--aux-address`, with its name.
    Aux(String),
    /// An address the host has on the network's parent.
    Host,
}

/// An address-management error. `Display` gives the user-facing text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpamError {
    /// Text that is not a CIDR (`--subnet`, `--ip-range`).
    InvalidCidr {
        /// The text as given.
        text: String,
    },
    /// Text that is not an IP address (`--gateway`, `--ip`, `--aux-address`).
    InvalidAddress {
        /// The text as given.
        text: String,
    },
    /// A `--subnet` with host bits set; `expected` is its network form.
    HostBitsSet {
        /// The subnet as given.
        subnet: IpNet,
        /// The same prefix with the host bits cleared, to suggest to the user.
        expected: IpNet,
    },
    /// An `--ip-range` with host bits set.
    RangeHostBitsSet {
        /// The range as given.
        range: IpNet,
        /// The same prefix with the host bits cleared, to suggest to the user.
        expected: IpNet,
    },
    /// A `--subnet` of addresses no interface can take as its own: it
    /// overlaps the multicast or loopback block `block`.
    NotUnicast {
        /// The subnet as given.
        subnet: IpNet,
        /// The block it overlaps.
        block: IpNet,
        /// What `block` is ("multicast", "loopback", "IPv4-mapped").
        what: &'static str,
    },
    /// Two `--subnet`s of one network overlap.
    OverlappingSubnets {
        /// The earlier of the two subnets.
        first: IpNet,
        /// The later subnet, overlapping `first`.
        second: IpNet,
    },
    /// A subnet overlaps one of another network.
    PoolOverlap {
        /// The requested subnet.
        subnet: IpNet,
        /// The existing subnet it overlaps.
        other: IpNet,
        /// Name of the network that owns `other`.
        network: String,
    },
    /// A `--gateway` that lies in no `--subnet`.
    GatewayOutsideSubnets {
        /// The gateway as given.
        gateway: IpAddr,
    },
    /// An `--ip-range` that lies in no `--subnet`.
    RangeOutsideSubnets {
        /// The range as given.
        range: IpNet,
    },
    /// An `--aux-address` that lies in no `--subnet`.
    AuxOutsideSubnets {
        /// The name part of `name=IP`.
        name: String,
        /// The address part of `name=IP`.
        address: IpAddr,
    },
    /// Two gateways fall into one subnet.
    MultipleGateways {
        /// The subnet both gateways lie in.
        subnet: IpNet,
        /// The gateway given first.
        first: IpAddr,
        /// The gateway given second.
        second: IpAddr,
    },
    /// Two ip-ranges fall into one subnet.
    MultipleRanges {
        /// The subnet both ranges lie in.
        subnet: IpNet,
        /// The range given first.
        first: IpNet,
        /// The range given second.
        second: IpNet,
    },
    /// A gateway equal to an address that can never be a host (network,
    /// broadcast, subnet-router anycast).
    GatewayNotHost {
        /// The gateway as given.
        gateway: IpAddr,
        /// The subnet it lies in.
        subnet: IpNet,
    },
    /// An aux-address name given twice.
    DuplicateAuxName {
        /// The repeated name.
        name: String,
    },
    /// An aux-address already reserved: the subnet's network, broadcast
    /// or anycast address, its gateway, another name's aux address.
    AuxInUse {
        /// The aux-address's name.
        name: String,
        /// Its address.
        address: IpAddr,
    },
    /// Every default pool overlaps something.
    DefaultPoolsExhausted {
        /// The family a subnet was needed for.
        family: IpFamily,
    },
    /// An explicit `--ip`/`--ip6` outside every subnet of the network.
    NotInAnySubnet {
        /// The requested address.
        address: IpAddr,
    },
    /// An explicit address that another endpoint holds.
    AddressInUse {
        /// The requested address.
        address: IpAddr,
    },
    /// An explicit address that no container can have: the subnet's
    /// network, broadcast or anycast address, its gateway, an aux-address.
    ReservedAddress {
        /// The requested address.
        address: IpAddr,
        /// The subnet it lies in.
        subnet: IpNet,
        /// What the address is.
        reason: Reserved,
    },
    /// The network has no free address left in this family.
    NoAvailableAddresses {
        /// The family that ran out.
        family: IpFamily,
        /// The network's name.
        network: String,
        /// The network's ID.
        id: String,
    },
    /// The network has no subnet of this family at all.
    NoSubnetOfFamily {
        /// The family an address was asked for.
        family: IpFamily,
        /// The network's name.
        network: String,
    },
}

impl fmt::Display for IpamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidCidr { text } => write!(f, "invalid CIDR address: {}", Shown(text)),
            Self::InvalidAddress { text } => write!(f, "invalid IP address: {}", Shown(text)),
            Self::HostBitsSet { subnet, expected } => {
                write!(f, "invalid subnet {subnet}: it should be {expected}")
            }
            Self::NotUnicast {
                subnet,
                block,
                what,
            } => write!(
                f,
                "invalid subnet {subnet}: it overlaps the {what} block {block}, which holds no addresses of hosts on a network"
            ),
            Self::RangeHostBitsSet { range, expected } => {
                write!(f, "invalid ip-range {range}: it should be {expected}")
            }
            Self::OverlappingSubnets { first, second } => write!(
                f,
                "multiple overlapping subnet configuration is not supported ({first}, {second})"
            ),
            Self::PoolOverlap {
                subnet,
                other,
                network,
            } => write!(
                f,
                "Pool overlaps with other one on this address space: {subnet} overlaps {other} of network {}",
                Shown(network)
            ),
            Self::GatewayOutsideSubnets { gateway } => {
                write!(f, "no matching subnet for gateway {gateway}")
            }
            Self::RangeOutsideSubnets { range } => write!(f, "no matching subnet for range {range}"),
            Self::AuxOutsideSubnets { name, address } => {
                write!(f, "no matching subnet for aux-address {address} ({})", Shown(name))
            }
            Self::MultipleGateways {
                subnet,
                first,
                second,
            } => write!(
                f,
                "cannot configure multiple gateways ({second}, {first}) for the same subnet ({subnet})"
            ),
            Self::MultipleRanges {
                subnet,
                first,
                second,
            } => write!(
                f,
                "cannot configure multiple ranges ({second}, {first}) on the same subnet ({subnet})"
            ),
            Self::GatewayNotHost { gateway, subnet } => write!(
                f,
                "invalid gateway {gateway}: it is not a host address of subnet {subnet}"
            ),
            Self::DuplicateAuxName { name } => write!(f, "aux-address {} given twice", Shown(name)),
            Self::AuxInUse { name, address } => write!(
                f,
                "failed to allocate secondary ip address ({}:{address}): Address already in use",
                Shown(name)
            ),
            Self::DefaultPoolsExhausted { family } => write!(
                f,
                "could not find an available, non-overlapping {family} address pool among the defaults to assign to the network"
            ),
            Self::NotInAnySubnet { address } => {
                write!(f, "no configured subnet contains IP address {address}")
            }
            Self::AddressInUse { .. } => f.write_str("Address already in use"),
            Self::ReservedAddress {
                address,
                subnet,
                reason,
            } => match reason {
                Reserved::Network => write!(f, "{address} is the network address of subnet {subnet}"),
                Reserved::Broadcast => {
                    write!(f, "{address} is the broadcast address of subnet {subnet}")
                }
                Reserved::SubnetRouterAnycast => write!(
                    f,
                    "{address} is the subnet-router anycast address of subnet {subnet}"
                ),
                Reserved::Gateway => write!(f, "{address} is the gateway of subnet {subnet}"),
                Reserved::Aux(name) => write!(
                    f,
                    "{address} is reserved as aux-address {} of subnet {subnet}",
                    Shown(name)
                ),
                Reserved::Host => write!(
                    f,
                    "{address} is the host's own address on the network's parent (subnet {subnet})"
                ),
            },
            Self::NoAvailableAddresses {
                family,
                network,
                id,
            } => write!(
                f,
                "no available {family} addresses on this network's address pools: {} ({id})",
                Shown(network)
            ),
            Self::NoSubnetOfFamily { family, network } => {
                write!(f, "network {} has no {family} subnet", Shown(network))
            }
        }
    }
}

impl std::error::Error for IpamError {}
