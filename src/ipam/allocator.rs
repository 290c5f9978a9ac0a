//! The bump allocator: per subnet a cursor that moves forward from the last
//! address handed out, wraps at the end and skips taken addresses, so a
//! released address comes back only after a full lap (fewer stale ARP and
//! neighbour entries) and the common case costs one lookup whatever the
//! occupancy. Not every case: in a range nearly full and churning (one
//! container removed, one run), the free address lies behind the cursor
//! and a walk passes every taken one on its way there, a lookup each,
//! which a map of the range's free addresses would spare. A subnet a
//! walk found full, of a family with several, is passed over until a
//! release counts room in it ([`release`]), so its allocations cost no
//! such walk.
//!
//! Where "taken" is recorded is the [`AddressBook`]'s business: the state
//! store keeps one file per address, [`MemoryBook`] a map.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::subnet::{from_u128, to_u128, SubnetSpec};
use super::{IpFamily, IpamError};

/// Records which addresses of a subnet are taken, and the cursor.
pub trait AddressBook {
    /// Errors of the backing store; IPAM refusals convert into it.
    type Error: From<IpamError>;

    /// The last address handed out automatically in `subnet`, if any.
    fn cursor(&mut self, subnet: &SubnetSpec) -> Result<Option<IpAddr>, Self::Error>;

    /// Remembers `addr` as the last address handed out in `subnet` (and
    /// no address counted as freed, see [`AddressBook::freed`]).
    fn set_cursor(&mut self, subnet: &SubnetSpec, addr: IpAddr) -> Result<(), Self::Error>;

    /// How many addresses [`release`] counted as freed in `subnet` since a
    /// walk found it full: the walks that take them back end with the
    /// last one, which marks the subnet full again without a walk of it
    /// whole. A book that keeps no count returns 0 (the default), so a
    /// subnet freed this way is walked whole once it is full again.
    fn freed(&mut self, subnet: &SubnetSpec) -> Result<u32, Self::Error> {
        let _ = subnet;
        Ok(0)
    }

    /// [`AddressBook::set_cursor`] with `freed` addresses counted; a book
    /// that keeps no count ignores it (the default).
    fn set_cursor_counting(
        &mut self,
        subnet: &SubnetSpec,
        addr: IpAddr,
        freed: u32,
    ) -> Result<(), Self::Error> {
        let _ = freed;
        self.set_cursor(subnet, addr)
    }

    /// Takes `addr` for `owner`. `Ok(false)` when it is already taken;
    /// must be a single check-and-set (one lookup).
    fn take(&mut self, subnet: &SubnetSpec, addr: IpAddr, owner: &str)
        -> Result<bool, Self::Error>;

    /// Frees `addr`; `Ok(false)` when it was not taken.
    fn release(&mut self, subnet: &SubnetSpec, addr: IpAddr) -> Result<bool, Self::Error>;
}

/// What to allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// The next free address of this family.
    Any(IpFamily),
    /// Exactly this address (`--ip`, `--ip6`).
    Exact(IpAddr),
}

/// Names the network in "pool exhausted" errors.
#[derive(Debug, Clone, Copy)]
pub struct NetworkName<'a> {
    /// The network's name.
    pub name: &'a str,
    /// The network's ID.
    pub id: &'a str,
}

/// Allocates one address from `subnets` (all of one network) for `owner`
/// and returns it with its subnet's prefix length.
///
/// Automatic requests try the subnets of the family in order and move to
/// the next one only when a subnet is full; a subnet found full is marked
/// so (its cursor) and passed over, so an allocation never walks a full
/// subnet whole again. [`release`] counts what it frees in a marked subnet
/// (where a family has several): the allocations that take those back
/// walk from the first of them, and the last marks the subnet full again
/// (an explicit request that took one of them leaves the count one too
/// high: the walk for it finds the subnet full, once, and marks it).
/// Explicit requests must lie in a subnet (`no configured subnet contains
/// IP address X`), not be reserved (`X is the gateway of subnet S`, ...)
/// and be free (`Address already in use`); they may lie outside the
/// ip-range and do not move the cursor.
pub fn allocate<B: AddressBook>(
    book: &mut B,
    subnets: &[SubnetSpec],
    request: Request,
    owner: &str,
    network: NetworkName<'_>,
) -> Result<IpNet, B::Error> {
    match request {
        Request::Exact(address) => {
            let spec = exact_spec(subnets, address)?;
            if !book.take(spec, address, owner)? {
                return Err(IpamError::AddressInUse { address }.into());
            }
            Ok(with_prefix(spec, address))
        }
        Request::Any(family) => {
            let mut any_subnet = false;
            // Subnets a walk found full before: skipped, so that the next
            // subnet's allocation does not walk them whole again.
            let mut found_full = Vec::new();
            for spec in subnets.iter().filter(|s| s.family() == family) {
                any_subnet = true;
                let cursor = book.cursor(spec)?;
                let mark = spec.full_mark();
                if cursor.is_some() && cursor == mark {
                    found_full.push(spec);
                    continue;
                }
                let freed = book.freed(spec)?;
                if let Some(address) = next_free(book, spec, cursor, owner)? {
                    match (freed, mark) {
                        (2.., _) => book.set_cursor_counting(spec, address, freed - 1)?,
                        // The last address counted as freed: full again.
                        (1, Some(mark)) => book.set_cursor(spec, mark)?,
                        _ => {}
                    }
                    return Ok(with_prefix(spec, address));
                }
                if let Some(mark) = mark {
                    book.set_cursor(spec, mark)?;
                }
            }
            // Every other subnet is full: those skipped are walked again
            // (an address may have been released in them since).
            for spec in found_full {
                if let Some(address) = next_free(book, spec, None, owner)? {
                    return Ok(with_prefix(spec, address));
                }
            }
            if !any_subnet {
                return Err(IpamError::NoSubnetOfFamily {
                    family,
                    network: network.name.to_string(),
                }
                .into());
            }
            Err(IpamError::NoAvailableAddresses {
                family,
                network: network.name.to_string(),
                id: network.id.to_string(),
            }
            .into())
        }
    }
}

/// The subnet of `subnets` an explicit request for `address` is served
/// from, or the refusal of an address in none of them or reserved in its
/// own ([`allocate`]'s checks before it asks the book).
pub fn exact_spec(subnets: &[SubnetSpec], address: IpAddr) -> Result<&SubnetSpec, IpamError> {
    let spec = subnets
        .iter()
        .find(|s| s.contains(address))
        .ok_or(IpamError::NotInAnySubnet { address })?;
    if let Some(reason) = spec.reservation(address) {
        return Err(IpamError::ReservedAddress {
            address,
            subnet: spec.subnet,
            reason,
        });
    }
    Ok(spec)
}

/// Frees `address` in whichever subnet holds it. Returns whether it was
/// taken; an address in no subnet or already free is not an error, so a
/// release can always be repeated.
pub fn release<B: AddressBook>(
    book: &mut B,
    subnets: &[SubnetSpec],
    address: IpAddr,
) -> Result<bool, B::Error> {
    let Some(spec) = subnets.iter().find(|s| s.contains(address)) else {
        return Ok(false);
    };
    let released = book.release(spec, address)?;
    // A subnet marked full has room again, and is the one the next
    // allocation takes (subnets are used in order, as Docker's pools):
    // its walk starts at the first address freed since it was found full,
    // and the addresses freed are counted, so that the allocation taking
    // the last of them marks it full again rather than a walk of it whole.
    // Looked at only where a family has several subnets, the only ones
    // marked and passed over.
    // An address outside the ip-range (an `--ip` inside the subnet) is
    // no room for allocations, which never hand it out.
    let (family, mark) = (spec.family(), spec.full_mark());
    let several = subnets.iter().filter(|s| s.family() == family).count() > 1;
    let (first, last) = spec.allocation_bounds();
    let in_range = (first..=last).contains(&to_u128(address));
    if !(released && several && mark.is_some() && in_range) {
        return Ok(released);
    }
    // The address is free: what follows is a hint for the next walk, and
    // its failure no failure of the release (the caller would stop with
    // its record still naming the address, which the next attach could
    // take). Lost, the subnet stays passed over until a walk finds it.
    let _ = note_room(book, spec, address, mark);
    Ok(released)
}

/// [`release`]'s note that `address`, just freed in `spec` (a subnet of a
/// family with several, where `mark` says full), is room again.
fn note_room<B: AddressBook>(
    book: &mut B,
    spec: &SubnetSpec,
    address: IpAddr,
    mark: Option<IpAddr>,
) -> Result<(), B::Error> {
    let family = spec.family();
    let (first, last) = spec.allocation_bounds();
    let cursor = book.cursor(spec)?;
    let full = cursor == mark;
    let freed = if full { 0 } else { book.freed(spec)? };
    if !full && freed == 0 {
        // Walked as usual: the walk finds the address.
        return Ok(());
    }
    // Where the next walk starts (the cursor's next address), the address
    // freed if that comes first.
    let start = match cursor.map(to_u128) {
        _ if full => to_u128(address),
        Some(at) if at >= first && at < last => (at + 1).min(to_u128(address)),
        _ => first,
    };
    let before = start.saturating_sub(1);
    let cursor = match start > first && Some(from_u128(family, before)) != mark {
        true => before,
        false => last,
    };
    book.set_cursor_counting(spec, from_u128(family, cursor), freed.saturating_add(1))
}

fn with_prefix(spec: &SubnetSpec, address: IpAddr) -> IpNet {
    IpNet::new(address, spec.subnet.prefix_len()).expect("prefix length comes from a valid subnet")
}

/// Walks from `cursor` to the end of the range, then from its start back
/// to the cursor, taking the first address that is neither reserved nor taken.
fn next_free<B: AddressBook>(
    book: &mut B,
    spec: &SubnetSpec,
    cursor: Option<IpAddr>,
    owner: &str,
) -> Result<Option<IpAddr>, B::Error> {
    let family = spec.family();
    let (first, last) = spec.allocation_bounds();
    let start = match cursor.map(to_u128) {
        Some(cursor) if cursor >= first && cursor < last => cursor + 1,
        _ => first,
    };
    let mut candidate = start;
    loop {
        let address = from_u128(family, candidate);
        if !spec.is_reserved(address) && book.take(spec, address, owner)? {
            book.set_cursor(spec, address)?;
            return Ok(Some(address));
        }
        candidate = if candidate == last {
            first
        } else {
            candidate + 1
        };
        if candidate == start {
            return Ok(None);
        }
    }
}

/// An in-memory [`AddressBook`], for tests and for callers that keep
/// state elsewhere.
#[derive(Debug, Default, Clone)]
pub struct MemoryBook {
    /// Taken addresses and their owners, per subnet.
    pub taken: BTreeMap<IpNet, BTreeMap<IpAddr, String>>,
    /// The cursor per subnet.
    pub cursors: BTreeMap<IpNet, IpAddr>,
    /// The addresses counted as freed per subnet (see [`AddressBook::freed`]).
    pub freed: BTreeMap<IpNet, u32>,
}

impl AddressBook for MemoryBook {
    type Error = IpamError;

    fn cursor(&mut self, subnet: &SubnetSpec) -> Result<Option<IpAddr>, IpamError> {
        Ok(self.cursors.get(&subnet.subnet).copied())
    }

    fn set_cursor(&mut self, subnet: &SubnetSpec, addr: IpAddr) -> Result<(), IpamError> {
        self.set_cursor_counting(subnet, addr, 0)
    }

    fn freed(&mut self, subnet: &SubnetSpec) -> Result<u32, IpamError> {
        Ok(self.freed.get(&subnet.subnet).copied().unwrap_or(0))
    }

    fn set_cursor_counting(
        &mut self,
        subnet: &SubnetSpec,
        addr: IpAddr,
        freed: u32,
    ) -> Result<(), IpamError> {
        self.cursors.insert(subnet.subnet, addr);
        self.freed.insert(subnet.subnet, freed);
        Ok(())
    }

    fn take(&mut self, subnet: &SubnetSpec, addr: IpAddr, owner: &str) -> Result<bool, IpamError> {
        let map = self.taken.entry(subnet.subnet).or_default();
        if map.contains_key(&addr) {
            return Ok(false);
        }
        map.insert(addr, owner.to_string());
        Ok(true)
    }

    fn release(&mut self, subnet: &SubnetSpec, addr: IpAddr) -> Result<bool, IpamError> {
        Ok(self
            .taken
            .get_mut(&subnet.subnet)
            .is_some_and(|m| m.remove(&addr).is_some()))
    }
}
