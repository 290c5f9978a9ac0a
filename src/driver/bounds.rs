//! The `rangeStart`-`rangeEnd` bounds of a network CNI made: read from
//! its record, an asked-for address checked against them, the next free
//! address found within them. Its ADDs keep to them, and so do the
//! `network connect` and `run` attaches onto it.

use std::net::IpAddr;

use ipnet::IpNet;

use super::options::cni_config;
use super::Error;
use crate::ipam::{from_u128, to_u128, IpFamily, IpamError, Request, SubnetSpec};
use crate::store::{Locked, NetworkRecord};

/// The `rangeStart`-`rangeEnd` bounds of a network CNI made, per subnet,
/// as its config's mark names them (`ranges=SUBNET[START-END]@GATEWAY,...`,
/// written by the CNI front end): what a `network connect` or `run` onto
/// it keeps to, as its ADDs do. None for any other network.
pub(super) fn record_bounds(network: &NetworkRecord) -> Vec<(IpNet, IpAddr, IpAddr)> {
    match cni_config(network) {
        Some(config) => config_bounds(config, &network.subnets),
        None => Vec::new(),
    }
}

/// [`record_bounds`] of a CNI network's mark `config`, for its `subnets`.
pub(super) fn config_bounds(config: &str, subnets: &[SubnetSpec]) -> Vec<(IpNet, IpAddr, IpAddr)> {
    let ranges = config
        .split(' ')
        .find_map(|word| word.strip_prefix("ranges="))
        .unwrap_or("");
    ranges
        .split(',')
        .filter_map(|range| {
            let (subnet, rest) = range.split_once('[')?;
            let (start, end) = rest.split_once(']')?.0.split_once('-')?;
            let subnet = crate::digits::parse_cidr(subnet)?;
            subnets.iter().find(|s| s.subnet == subnet)?;
            Some((subnet, start.parse().ok()?, end.parse().ok()?))
        })
        .collect()
}

/// Whether the network `record` and a CNI network of `subnets` bounded by
/// `bounds` could hand out one address twice: a subnet of each overlaps
/// the other's, and the addresses each hands out there (its
/// `rangeStart`-`rangeEnd`, else the whole subnet) meet. Two CNI networks
/// that split a subnet by disjoint ranges (as two networks of
/// host-local's may, each with its own leases: a VLAN's subnet shared by
/// the networks of two tenants) do not.
pub(super) fn hand_out_one_address(
    record: &NetworkRecord,
    subnets: &[IpNet],
    bounds: &[(IpNet, IpAddr, IpAddr)],
) -> bool {
    let theirs = record_bounds(record);
    let handed_out = |bounds: &[(IpNet, IpAddr, IpAddr)], subnet: &IpNet| {
        let (first, last) = bounds
            .iter()
            .find(|(bounded, _, _)| bounded == subnet)
            .map_or(
                (subnet.network(), subnet.broadcast()),
                |&(_, start, end)| (start, end),
            );
        (crate::ipam::to_u128(first), crate::ipam::to_u128(last))
    };
    record.subnets.iter().any(|held| {
        let (their_first, their_last) = handed_out(&theirs, &held.subnet);
        subnets.iter().any(|wanted| {
            crate::ipam::overlaps(&held.subnet, wanted) && {
                let (our_first, our_last) = handed_out(bounds, wanted);
                their_first <= our_last && our_first <= their_last
            }
        })
    })
}

/// Refuses the subnets of a new CNI network (its mark `config`) where
/// they overlap one of `networks` ([`super::subnets::check_overlaps`]),
/// other CNI networks that share no address with it
/// ([`hand_out_one_address`]) left out. One rule for every check of a
/// config: before an idle network is retired for it, and when its record
/// is made, under the lock (by the CNI front end or `network create`).
pub(super) fn check_overlaps_of_config(
    subnets: &[SubnetSpec],
    networks: &[NetworkRecord],
    config: &str,
) -> Result<(), Error> {
    let bounds = config_bounds(config, subnets);
    let ours: Vec<IpNet> = subnets.iter().map(|spec| spec.subnet).collect();
    let rivals: Vec<NetworkRecord> = networks
        .iter()
        .filter(|record| {
            !super::options::made_by_cni(record) || hand_out_one_address(record, &ours, &bounds)
        })
        .cloned()
        .collect();
    super::subnets::check_overlaps(subnets, &rivals)
}

/// Why `address` may not be asked for: it lies in a bounded subnet but
/// outside its `rangeStart`-`rangeEnd` (host-local refuses it too).
pub(super) fn outside_bounds(bounds: &[(IpNet, IpAddr, IpAddr)], address: IpAddr) -> Option<Error> {
    let (subnet, start, end) = bounds.iter().find(|(s, _, _)| s.contains(&address))?;
    if (*start..=*end).contains(&address) {
        return None;
    }
    Some(Error::invalid(format!(
        "address {address} is outside the range {start}-{end} of subnet {subnet}"
    )))
}

/// Refuses a config under which a family has no address to hand out: in
/// every subnet of the family, each address from `rangeStart` to
/// `rangeEnd` (the whole subnet where it has no bounds) is the subnet's
/// network, broadcast or anycast address, its gateway or (in `specs` once
/// the master's are put there) one the host has on the master. The
/// allocator tries a family's subnets in turn, so one full range beside a
/// subnet with room is no refusal. Every ADD without an asked-for address
/// would fail on allocating, so such a config is refused before an idle
/// network is removed for it.
pub(super) fn refuse_bounds_without_room(
    specs: &[SubnetSpec],
    bounds: &[(IpNet, IpAddr, IpAddr)],
) -> Result<(), Error> {
    for family in [IpFamily::V4, IpFamily::V6] {
        let mut full = Vec::new();
        let mut room = false;
        let of_family = || specs.iter().filter(|spec| spec.family() == family);
        for spec in of_family() {
            match bounds.iter().find(|(subnet, _, _)| *subnet == spec.subnet) {
                // A one-sided range whose given end passes the other's
                // default holds nothing at all.
                Some((subnet, start, end)) if start > end => full.push(format!(
                    "range {start}-{end} of subnet {subnet} (empty: rangeStart after rangeEnd or its default)"
                )),
                Some((subnet, start, end)) => {
                    room |= spec.has_room_between(to_u128(*start), to_u128(*end));
                    full.push(format!("range {start}-{end} of subnet {subnet}"));
                }
                None => {
                    room |= spec.has_room();
                    full.push(format!("subnet {}", spec.subnet));
                }
            }
        }
        if !room && !full.is_empty() {
            let host = match of_family().any(|spec| !spec.host.is_empty()) {
                true => " and the host's own on the master",
                false => "",
            };
            let (what, verb) = match full.len() {
                1 => (full.remove(0), "has"),
                _ => (full.join(", "), "have"),
            };
            return Err(Error::invalid(format!(
                "{what} {verb} no address a container could get: the network, broadcast, anycast and gateway addresses{host} take them all"
            )));
        }
    }
    Ok(())
}

/// The next free address of `family`, subnet after subnet, a bounded
/// subnet's from its bounds only. The store's allocator walks CIDR ranges:
/// a bounded subnet is walked as the CIDR blocks that cover its bounds,
/// those after its cursor first, so it still hands out in a ring and a
/// released address comes back only after a full lap.
pub(super) fn allocate_within(
    state: &Locked<'_>,
    network: &NetworkRecord,
    family: IpFamily,
    owner: &str,
    bounds: &[(IpNet, IpAddr, IpAddr)],
) -> Result<IpNet, Error> {
    // A config whose bounds leave no address is refused before anything is
    // made (`refuse_bounds_without_room`): tests reach the undoing of an
    // attach that finds its network full only through leases, or this.
    if crate::fault::forced("ipam: no address left") {
        return Err(no_address_left(network, family));
    }
    if !bounds
        .iter()
        .any(|(s, _, _)| IpFamily::of(s.addr()) == family)
    {
        return Ok(state.allocate(network, Request::Any(family), owner)?);
    }
    // A subnet a walk found full (its cursor the full mark) is passed
    // over, as the allocator passes it over, and walked last, only when no
    // other has room. Handed to the allocator alone (a block of its
    // bounds, or the whole subnet), it was walked whole at every
    // allocation: a `symlinkat` per address of a full range.
    let mut found_full = Vec::new();
    for spec in network.subnets.iter().filter(|s| s.family() == family) {
        // `network` with this subnet only, for the allocator.
        let mut one = NetworkRecord {
            subnets: vec![spec.clone()],
            ..network.clone()
        };
        let cursor = state.cursors(&one)?[0].last;
        if cursor.is_some() && cursor == spec.full_mark() {
            found_full.push(one);
            continue;
        }
        if let Some(address) = allocate_in(state, &mut one, cursor, owner, bounds)? {
            return Ok(address);
        }
    }
    for mut one in found_full {
        if let Some(address) = allocate_in(state, &mut one, None, owner, bounds)? {
            return Ok(address);
        }
    }
    Err(no_address_left(network, family))
}

/// The next free address of `one`'s only subnet after `cursor` (its
/// range, or its bounds when it has some), `None` when it has none.
fn allocate_in(
    state: &Locked<'_>,
    one: &mut NetworkRecord,
    cursor: Option<IpAddr>,
    owner: &str,
    bounds: &[(IpNet, IpAddr, IpAddr)],
) -> Result<Option<IpNet>, Error> {
    let subnet = one.subnets[0].subnet;
    let family = IpFamily::of_net(&subnet);
    let blocks = match bounds.iter().find(|(s, _, _)| *s == subnet) {
        None => vec![None],
        Some(&(_, start, end)) => {
            let (start, end) = (to_u128(start), to_u128(end));
            let cursor = cursor.map(to_u128).filter(|c| (start..=end).contains(c));
            let mut blocks = Vec::new();
            match cursor {
                Some(cursor) if cursor < end => {
                    blocks.extend(cidr_cover(family, cursor + 1, end));
                    blocks.extend(cidr_cover(family, start, cursor));
                }
                _ => blocks.extend(cidr_cover(family, start, end)),
            }
            blocks.into_iter().map(Some).collect()
        }
    };
    for block in blocks {
        one.subnets[0].ip_range = block;
        match state.allocate(one, Request::Any(family), owner) {
            Ok(address) => return Ok(Some(address)),
            Err(error) if matches!(error.ipam(), Some(IpamError::NoAvailableAddresses { .. })) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(None)
}

fn no_address_left(network: &NetworkRecord, family: IpFamily) -> Error {
    IpamError::NoAvailableAddresses {
        family,
        network: network.name.clone(),
        id: network.id.clone(),
    }
    .into()
}

/// The fewest CIDR blocks of `family` that cover `first..=last` exactly.
fn cidr_cover(family: IpFamily, mut first: u128, last: u128) -> Vec<IpNet> {
    let bits = match family {
        IpFamily::V4 => 32,
        IpFamily::V6 => 128,
    };
    let mut blocks = Vec::new();
    while first <= last {
        // The largest block aligned at `first` that ends by `last`.
        let mut size = first.trailing_zeros().min(bits);
        while size > 0 && (size >= 128 || last - first < (1u128 << size) - 1) {
            size -= 1;
        }
        let net = IpNet::new(from_u128(family, first), (bits - size) as u8)
            .expect("the prefix length is at most the family's");
        blocks.push(net);
        match first.checked_add(1u128 << size) {
            Some(next) => first = next,
            None => break,
        }
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[IpNet]) -> Vec<String> {
        list.iter().map(IpNet::to_string).collect()
    }

    #[test]
    fn a_cni_networks_bounds_are_read_from_its_mark_and_no_other_networks() {
        let subnets = ["10.9.0.0/24", "10.10.0.0/24", "2001:db8:9::/64"]
            .iter()
            .map(|s| crate::digits::parse_cidr(s).unwrap())
            .collect::<Vec<_>>();
        let specs = crate::ipam::match_subnets(&subnets, &[], &[], &[]).unwrap();
        let mut network = crate::store::records::fixtures::network("pods", 'c', specs);
        assert!(record_bounds(&network).is_empty(), "no CNI mark");
        network.options.push((
            crate::driver::options::CNI_MARK.to_string(),
            "master=lo mode=l2 flag=bridge mtu=(master's) ipam=ipvlan \
             ranges=10.9.0.0/24[10.9.0.10-10.9.0.13]@10.9.0.1,10.10.0.0/24@10.10.0.1,\
             2001:db8:9::/64[2001:db8:9::10-2001:db8:9::ff]"
                .into(),
        ));
        let read: Vec<String> = record_bounds(&network)
            .iter()
            .map(|(subnet, start, end)| format!("{subnet} {start} {end}"))
            .collect();
        assert_eq!(
            read,
            [
                "10.9.0.0/24 10.9.0.10 10.9.0.13",
                "2001:db8:9::/64 2001:db8:9::10 2001:db8:9::ff"
            ]
        );
    }

    /// A bounded range found full is passed over, as the allocator passes
    /// over a full subnet, until a release counts room in it. Before, each
    /// allocation handed it to the allocator alone and walked it whole (a
    /// `symlinkat` per address: 65,000 for a /16 range), and so also took
    /// an address of it no release had counted (here one whose file was
    /// lost, as a power cut may lose it).
    #[test]
    fn a_full_bounded_range_is_passed_over_until_a_release_counts_room() {
        let dir = std::env::temp_dir().join(format!("ipvlan-bounds-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = crate::store::StateDir::open(&dir).unwrap();
        let locked = state.lock().unwrap();
        let subnets = ["10.50.0.0/24", "10.51.0.0/24"]
            .iter()
            .map(|s| crate::digits::parse_cidr(s).unwrap())
            .collect::<Vec<_>>();
        let specs = crate::ipam::match_subnets(&subnets, &[], &[], &[]).unwrap();
        let mut network = crate::store::records::fixtures::network("pods", 'c', specs);
        network.options.push((
            crate::driver::options::CNI_MARK.to_string(),
            "master=lo mode=l2 flag=bridge mtu=(master's) ipam=ipvlan \
             ranges=10.50.0.0/24[10.50.0.10-10.50.0.13]@10.50.0.1,10.51.0.0/24@10.51.0.1"
                .into(),
        ));
        locked.put_network(&network).unwrap();
        let bounds = record_bounds(&network);
        let next = || {
            allocate_within(&locked, &network, IpFamily::V4, "o", &bounds)
                .unwrap()
                .addr()
                .to_string()
        };
        for n in 10..=13 {
            assert_eq!(next(), format!("10.50.0.{n}"));
        }
        // (No gateway in these specs: the first address goes.)
        assert_eq!(next(), "10.51.0.1");
        let lost = dir.join(format!("ipam/{}/10.50.0.0-24/10.50.0.11", network.id));
        std::fs::remove_file(&lost).unwrap();
        assert_eq!(next(), "10.51.0.2");
        assert_eq!(next(), "10.51.0.3");
        assert!(locked
            .release(&network, "10.50.0.12".parse().unwrap())
            .unwrap());
        assert_eq!(next(), "10.50.0.12");
        // Full again once the address counted is taken.
        assert_eq!(next(), "10.51.0.4");
        drop(locked);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn bounds_are_covered_by_the_fewest_cidr_blocks_exactly() {
        let v4 = |a: &str| to_u128(a.parse().unwrap());
        assert_eq!(
            nets(&cidr_cover(IpFamily::V4, v4("10.0.0.10"), v4("10.0.0.20"))),
            [
                "10.0.0.10/31",
                "10.0.0.12/30",
                "10.0.0.16/30",
                "10.0.0.20/32"
            ]
        );
        assert_eq!(
            nets(&cidr_cover(IpFamily::V4, v4("10.0.0.0"), v4("10.0.0.255"))),
            ["10.0.0.0/24"]
        );
        assert_eq!(
            nets(&cidr_cover(IpFamily::V4, v4("10.0.0.7"), v4("10.0.0.7"))),
            ["10.0.0.7/32"]
        );
        assert_eq!(
            nets(&cidr_cover(IpFamily::V4, 0, u128::from(u32::MAX))),
            ["0.0.0.0/0"]
        );
        // The whole IPv6 space ends the walk without overflowing.
        assert_eq!(
            nets(&cidr_cover(IpFamily::V6, 0, u128::MAX)),
            ["::/1", "8000::/1"]
        );
        let v6 = |a: &str| to_u128(a.parse().unwrap());
        assert_eq!(
            nets(&cidr_cover(
                IpFamily::V6,
                v6("2001:db8::1"),
                v6("2001:db8::4")
            )),
            ["2001:db8::1/128", "2001:db8::2/127", "2001:db8::4/128"]
        );
    }

    #[test]
    fn bounds_of_reserved_addresses_only_are_refused() {
        let spec = |subnet: &str, gateway: &str| {
            let mut spec = SubnetSpec::new(subnet.parse().unwrap());
            spec.gateway = Some(gateway.parse().unwrap());
            spec
        };
        let mut v4 = spec("10.0.0.0/24", "10.0.0.1");
        let v6 = spec("2001:db8::/64", "2001:db8::1");
        let refused = |specs: &[SubnetSpec], subnet: &str, start: &str, end: &str| {
            let bounds = [(
                subnet.parse().unwrap(),
                start.parse().unwrap(),
                end.parse().unwrap(),
            )];
            refuse_bounds_without_room(specs, &bounds)
                .err()
                .map(|error| error.to_string())
        };
        let specs = [v4.clone(), v6.clone()];
        for (subnet, start, end) in [
            ("10.0.0.0/24", "10.0.0.1", "10.0.0.1"),
            ("10.0.0.0/24", "10.0.0.0", "10.0.0.1"),
            ("10.0.0.0/24", "10.0.0.255", "10.0.0.255"),
            ("2001:db8::/64", "2001:db8::", "2001:db8::1"),
        ] {
            assert!(
                refused(&specs, subnet, start, end).is_some(),
                "{start}-{end}"
            );
        }
        assert_eq!(
            refused(&specs, "10.0.0.0/24", "10.0.0.1", "10.0.0.1").unwrap(),
            "range 10.0.0.1-10.0.0.1 of subnet 10.0.0.0/24 has no address a container could get: the network, broadcast, anycast and gateway addresses take them all"
        );
        for (subnet, start, end) in [
            ("10.0.0.0/24", "10.0.0.0", "10.0.0.2"),
            ("10.0.0.0/24", "10.0.0.254", "10.0.0.255"),
            ("2001:db8::/64", "2001:db8::", "2001:db8::2"),
            // Not a subnet of the config's: another check's to refuse.
            ("10.1.0.0/24", "10.1.0.1", "10.1.0.1"),
        ] {
            assert_eq!(refused(&specs, subnet, start, end), None, "{start}-{end}");
        }
        // The host's own address on the master counts once it is known.
        v4.host.push("10.0.0.5".parse().unwrap());
        let specs = [v4, v6];
        assert_eq!(
            refused(&specs, "10.0.0.0/24", "10.0.0.5", "10.0.0.5").unwrap(),
            "range 10.0.0.5-10.0.0.5 of subnet 10.0.0.0/24 has no address a container could get: the network, broadcast, anycast and gateway addresses and the host's own on the master take them all"
        );
        assert_eq!(refused(&specs, "10.0.0.0/24", "10.0.0.5", "10.0.0.6"), None);
        // A family's subnets are tried in turn: one full range beside a
        // subnet with room is none.
        let second = spec("10.1.0.0/24", "10.1.0.1");
        let specs = [specs[0].clone(), second.clone(), specs[1].clone()];
        assert_eq!(refused(&specs, "10.0.0.0/24", "10.0.0.5", "10.0.0.5"), None);
        let both = [
            (
                "10.0.0.0/24".parse().unwrap(),
                "10.0.0.5".parse().unwrap(),
                "10.0.0.5".parse().unwrap(),
            ),
            (
                "10.1.0.0/24".parse().unwrap(),
                "10.1.0.1".parse().unwrap(),
                "10.1.0.1".parse().unwrap(),
            ),
        ];
        assert_eq!(
            refuse_bounds_without_room(&specs, &both)
                .unwrap_err()
                .to_string(),
            "range 10.0.0.5-10.0.0.5 of subnet 10.0.0.0/24, range 10.1.0.1-10.1.0.1 of subnet 10.1.0.0/24 have no address a container could get: the network, broadcast, anycast and gateway addresses and the host's own on the master take them all"
        );
        // A one-sided range past the other end's default is empty: no room
        // by itself, none missed beside a subnet with some.
        let v4 = spec("10.0.0.0/24", "10.0.0.1");
        let empty = refused(
            std::slice::from_ref(&v4),
            "10.0.0.0/24",
            "10.0.0.255",
            "10.0.0.254",
        );
        assert_eq!(
            empty.unwrap(),
            "range 10.0.0.255-10.0.0.254 of subnet 10.0.0.0/24 (empty: rangeStart after rangeEnd or its default) has no address a container could get: the network, broadcast, anycast and gateway addresses take them all"
        );
        assert_eq!(
            refused(
                &[v4.clone(), second],
                "10.0.0.0/24",
                "10.0.0.255",
                "10.0.0.254"
            ),
            None
        );
        // The host's addresses of another family are not named.
        let mut v6 = spec("2001:db8::/64", "2001:db8::1");
        v6.host.push("2001:db8::5".parse().unwrap());
        assert_eq!(
            refused(&[v4, v6], "10.0.0.0/24", "10.0.0.1", "10.0.0.1").unwrap(),
            "range 10.0.0.1-10.0.0.1 of subnet 10.0.0.0/24 has no address a container could get: the network, broadcast, anycast and gateway addresses take them all"
        );
    }

    #[test]
    fn an_asked_for_address_must_lie_within_its_subnets_bounds() {
        let bounds = [(
            "10.0.0.0/24".parse().unwrap(),
            "10.0.0.10".parse().unwrap(),
            "10.0.0.20".parse().unwrap(),
        )];
        assert!(outside_bounds(&bounds, "10.0.0.10".parse().unwrap()).is_none());
        assert!(outside_bounds(&bounds, "10.0.0.20".parse().unwrap()).is_none());
        // Another subnet's address is not this range's to judge.
        assert!(outside_bounds(&bounds, "10.0.1.50".parse().unwrap()).is_none());
        let error = outside_bounds(&bounds, "10.0.0.21".parse().unwrap()).unwrap();
        assert_eq!(
            error.to_string(),
            "address 10.0.0.21 is outside the range 10.0.0.10-10.0.0.20 of subnet 10.0.0.0/24"
        );
    }
}
