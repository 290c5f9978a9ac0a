//! A network's parent link in the host namespace: what `-o parent=` names
//! (an existing link, a `NAME.VLANID` to create, or a dummy for a network
//! without one), its creation and deletion when it is ours, its
//! re-creation by `restore`, and the guard that keeps every ipvlan link on
//! one parent in one mode and flag (the kernel keeps one per parent).

use std::path::{Path, PathBuf};

use super::endpoint_link::{chosen_index, INDEX_ATTEMPTS};
use super::kernel_support::require_kind;
use super::netns_identity::OpenNetns;
use super::options::{self, NetworkOptions};
use super::report::RestoreReport;
use super::{Error, IpvlanFlag, IpvlanMode};
use crate::netns::Netns;
use crate::rtnl::{Handle, Link, LinkSpec, ProbeKind};
use crate::store::{Locked, NetworkRecord, ParentOrigin};

/// `ARPHRD_ETHER`: the only device type ipvlan and 802.1Q sit on.
const ARPHRD_ETHER: u16 = 1;

/// `ETH_P_8021Q`: the protocol of the VLAN links we make (the kernel's
/// default for `IFLA_VLAN_PROTOCOL`).
const ETH_P_8021Q: u16 = 0x8100;

/// `ETH_MAX_MTU`: the largest MTU of an ipvlan link.
pub(crate) const ETH_MAX_MTU: u32 = 65535;

/// Where the parent of a new network comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParentPlan {
    /// An existing link, used as is.
    Existing(Link),
    /// `NAME.VLANID` to create on `base`.
    Vlan {
        name: String,
        base: Link,
        vlan_id: u16,
    },
    /// `di-<short id>` to create.
    Dummy(String),
}

impl ParentPlan {
    /// Whether the create makes the link (it does not exist yet).
    pub(crate) fn makes_link(&self) -> bool {
        !matches!(self, ParentPlan::Existing(_))
    }

    /// What `-o parent=` names (`None`: a dummy named after the network's
    /// short id), checked against the host's links; a parent or VLAN base
    /// that is down adds a warning.
    pub(crate) fn new(
        host: &Handle,
        parent: Option<&str>,
        short_id: &str,
        warnings: &mut Vec<String>,
    ) -> Result<ParentPlan, Error> {
        let Some(parent) = parent else {
            require_kind(host, ProbeKind::Dummy)?;
            return Ok(ParentPlan::Dummy(format!("di-{short_id}")));
        };
        if let Some(link) = host.link_by_name(parent)? {
            if link.link_type != ARPHRD_ETHER {
                return Err(Error::invalid(format!(
                    "interface {parent} is not an Ethernet device and cannot be an ipvlan parent link"
                )));
            }
            if !link.is_up() {
                warnings.push(format!(
                    "parent interface {parent} is down; containers on this network have no connectivity until it is up"
                ));
            }
            return Ok(ParentPlan::Existing(link));
        }
        let (base_name, id_text) = options::parse_vlan_parent(parent)?;
        let Some(base) = host.link_by_name(&base_name)? else {
            return Err(Error::not_found(format!(
                "-o parent interface was not found on the host: {base_name}"
            )));
        };
        let vlan = options::check_vlan_id(parent, base_name, id_text)?;
        if base.link_type != ARPHRD_ETHER {
            return Err(Error::invalid(format!(
                "interface {} is not an Ethernet device and cannot carry VLAN {}",
                base.name, vlan.vlan_id
            )));
        }
        require_kind(host, ProbeKind::Vlan)?;
        if !base.is_up() {
            warnings.push(format!(
                "interface {} under parent {parent} is down; containers on this network have no connectivity until it is up",
                base.name
            ));
        }
        Ok(ParentPlan::Vlan {
            name: parent.to_string(),
            base,
            vlan_id: vlan.vlan_id,
        })
    }

    /// The parent's name, who made it and the ifindex it has when we make
    /// it (chosen here, to be recorded before the create). A parent
    /// another network of ours created stays ours: whichever network goes
    /// last deletes it.
    pub(crate) fn origin(
        &self,
        networks: &[NetworkRecord],
    ) -> Result<(String, ParentOrigin, Option<u32>), Error> {
        Ok(match self {
            ParentPlan::Existing(link) => {
                // The network that proves the link ours, if one does: a
                // record naming another index (a link gone since, an
                // admin's of the same name in its place) would pass that
                // index on to every network on the parent, and its origin
                // would make the admin's link ours to make again and to
                // delete. A record of an earlier release, which holds no
                // index, passes its origin on (it proves nothing either
                // way, and its parent is never deleted).
                let (origin, index) = networks
                    .iter()
                    .find(|n| is_ours(link, n))
                    .or_else(|| {
                        networks
                            .iter()
                            .find(|n| n.parent == link.name && n.parent_index.is_none())
                    })
                    .map_or((ParentOrigin::Existing, None), |n| {
                        (n.parent_origin.clone(), n.parent_index)
                    });
                (link.name.clone(), origin, index)
            }
            ParentPlan::Vlan {
                name,
                base,
                vlan_id,
            } => (
                name.clone(),
                ParentOrigin::VlanCreated {
                    link: base.name.clone(),
                    vlan_id: *vlan_id,
                },
                Some(chosen_index()?),
            ),
            ParentPlan::Dummy(name) => (
                name.clone(),
                ParentOrigin::DummyCreated,
                Some(chosen_index()?),
            ),
        })
    }

    /// Creates the parent when it is ours to make, with the ifindex
    /// `record` holds (already durable: see [`create_recorded`]); the
    /// record's MTU for a dummy, so a network may use one above 1500.
    pub(crate) fn create(
        &self,
        host: &Handle,
        record: &mut NetworkRecord,
        record_again: impl FnMut(&NetworkRecord) -> Result<(), Error>,
    ) -> Result<(), Error> {
        match self {
            ParentPlan::Existing(_) => Ok(()),
            ParentPlan::Vlan { base, vlan_id, .. } => {
                create_vlan(host, record, base.index, *vlan_id, record_again).map(drop)
            }
            ParentPlan::Dummy(_) => create_dummy(host, record, record_again).map(drop),
        }
    }
}

/// Creates the dummy `record.parent` (with the record's MTU) and sets it up.
fn create_dummy(
    host: &Handle,
    record: &mut NetworkRecord,
    mut record_again: impl FnMut(&NetworkRecord) -> Result<(), Error>,
) -> Result<Link, Error> {
    let name = record.parent.clone();
    let mtu = record.mtu;
    let spec = move |index: u32| {
        let spec = LinkSpec::dummy(&name).index(index);
        match mtu {
            Some(mtu) => spec.mtu(mtu),
            None => spec,
        }
    };
    create_recorded(host, record, &spec, &mut record_again)
}

/// Creates the 802.1Q link `record.parent` on `base_index` and sets it up.
fn create_vlan(
    host: &Handle,
    record: &mut NetworkRecord,
    base_index: u32,
    vlan_id: u16,
    mut record_again: impl FnMut(&NetworkRecord) -> Result<(), Error>,
) -> Result<Link, Error> {
    let name = record.parent.clone();
    let spec = move |index: u32| LinkSpec::vlan(&name, base_index, vlan_id).index(index);
    create_recorded(host, record, &spec, &mut record_again)
}

/// Creates the parent `spec(index)` makes with the ifindex `record` holds,
/// which the caller has made durable first: from the moment the link can
/// exist, the state can tell it from one another tool makes under the same
/// name (see [`is_ours`]). An index found taken is replaced by another,
/// recorded by `record_again` before the next try. Sets the link up; on
/// failure nothing of ours is left.
///
/// One body for every caller (the specs and the ways to record are
/// passed as trait objects): it runs once per parent made, and each copy
/// of it cost the binary some 2 KiB.
fn create_recorded(
    host: &Handle,
    record: &mut NetworkRecord,
    spec: &dyn Fn(u32) -> LinkSpec<'static>,
    record_again: &mut dyn FnMut(&NetworkRecord) -> Result<(), Error>,
) -> Result<Link, Error> {
    let mut attempt = 0;
    let index = loop {
        attempt += 1;
        if attempt == 1 && crate::fault::forced("parent: first index taken") {
            // Test builds: the loopback's index, taken in every namespace.
            record.parent_index = Some(1);
            record_again(record)?;
        }
        let Some(index) = record.parent_index else {
            return Err(Error::failed(format!(
                "parent {} of network {} has no ifindex on record",
                record.parent, record.name
            )));
        };
        let error = match host.link_add(&spec(index)) {
            Ok(()) => break index,
            Err(error) => error,
        };
        if !super::endpoint_link::outcome_unknown(&error)
            && !super::endpoint_link::index_taken(&error)
        {
            return Err(error.into());
        }
        // EEXIST (EBUSY): the name or the index is taken, or an answer
        // lost and the request sent again found the link it made.
        let at_index = host.link_by_index(index)?;
        if at_index.as_ref().is_some_and(|l| is_ours(l, record)) {
            break index;
        }
        if host.link_by_name(&record.parent)?.is_some() || attempt == INDEX_ATTEMPTS {
            return Err(error.into());
        }
        // Neither taken: for a VLAN, its id is, by a link the checks before
        // could not see (one moved into a namespace without a name); no
        // other index would do.
        if at_index.is_none() && super::endpoint_link::index_taken(&error) {
            if let ParentOrigin::VlanCreated { link, vlan_id } = &record.parent_origin {
                return Err(Error::invalid(format!(
                    "vlan id {vlan_id} is already in use on {link} by a link in a namespace without a name ({error})"
                )));
            }
        }
        record.parent_index = Some(chosen_index()?);
        record_again(record)?;
    };
    // The link exists from here on: any failure deletes it.
    let finish = || -> Result<Link, Error> {
        crate::fault::point("parent: before up");
        set_up_made(host, index)?;
        host.link_by_index(index)?
            .ok_or_else(|| Error::failed(format!("link {} vanished after creation", record.parent)))
    };
    let finished = finish();
    if finished.is_err() {
        delete_ours(host, record);
    }
    finished
}

/// Writes `record` and gives every other network of ours on the same
/// parent, made by us the same way, the ifindex `record` names: the one of
/// them that goes last deletes the link by the index it holds (see
/// [`delete_if_ours`]), so none may keep the index of a link made before
/// this one, which `restore` or a `network create` is about to replace.
pub(crate) fn put_naming_parent(state: &Locked<'_>, record: &NetworkRecord) -> Result<(), Error> {
    if record.parent_origin == ParentOrigin::Existing {
        return Ok(state.put_network(record)?);
    }
    put_naming_parent_among(state, record, state.networks()?.items)
}

/// [`put_naming_parent`], `networks` being every network as read under
/// the held lock.
fn put_naming_parent_among(
    state: &Locked<'_>,
    record: &NetworkRecord,
    networks: Vec<NetworkRecord>,
) -> Result<(), Error> {
    state.put_network(record)?;
    for mut sibling in networks {
        if sibling.id != record.id
            && sibling.parent == record.parent
            && sibling.parent_origin == record.parent_origin
            && sibling.parent_index != record.parent_index
        {
            sibling.parent_index = record.parent_index;
            state.put_network(&sibling)?;
        }
    }
    Ok(())
}

/// Gives every other network on `record`'s parent that records it as
/// another tool's the origin and index `record` holds: this create made
/// the link under that name (the one they used is gone), and whichever of
/// them goes last must delete it. Else, gone last, such a network would
/// leave the link we made, named by no record.
pub(crate) fn adopt_made_parent(
    state: &Locked<'_>,
    networks: &[NetworkRecord],
    record: &NetworkRecord,
) -> Result<(), Error> {
    for sibling in networks {
        if takes_over(sibling, record) {
            let mut sibling = sibling.clone();
            sibling.parent_origin = record.parent_origin.clone();
            sibling.parent_index = record.parent_index;
            state.put_network(&sibling)?;
        }
    }
    Ok(())
}

/// For `restore` rolling back `record`'s create: when the parent it made is
/// there and ours (see [`is_ours`]) and networks of `networks` on the same
/// name record it as another tool's, they take it over (records and
/// `networks` alike, as [`adopt_made_parent`] hands it over), so that the
/// last of them to go deletes it.
pub(crate) fn adopt_kept_parent(
    host: &Handle,
    state: &Locked<'_>,
    networks: &mut [NetworkRecord],
    record: &NetworkRecord,
) -> Result<(), Error> {
    if record.parent_origin == ParentOrigin::Existing
        || !networks.iter().any(|n| takes_over(n, record))
        || ours_there(host, record).is_none()
    {
        return Ok(());
    }
    for network in networks.iter_mut().filter(|n| takes_over(n, record)) {
        network.parent_origin = record.parent_origin.clone();
        network.parent_index = record.parent_index;
        state.put_network(network)?;
    }
    Ok(())
}

/// Whether `sibling` takes over the parent `record` made: another network
/// on the same parent name that records it as another tool's.
fn takes_over(sibling: &NetworkRecord, record: &NetworkRecord) -> bool {
    sibling.id != record.id
        && sibling.parent == record.parent
        && sibling.parent_origin == ParentOrigin::Existing
}

/// Makes every network of ours on `network`'s parent record the index of
/// `link`, the parent there now, when `network` records another and some
/// network of ours proves `link` ours (see [`is_ours`]): records an older
/// release left disagreeing (it recorded a re-made parent's index in the
/// network that re-made it only) agree again, so whichever goes last
/// deletes the link. Costs nothing when `network` already agrees.
pub(crate) fn adopt_live_index(
    state: &Locked<'_>,
    network: &NetworkRecord,
    link: &Link,
) -> Result<(), Error> {
    if network.parent_origin == ParentOrigin::Existing || network.parent_index == Some(link.index) {
        return Ok(());
    }
    let networks = state.networks()?.items;
    if !made_by_us(&networks, network, link) {
        return Ok(());
    }
    let Some(mut record) = networks.iter().find(|n| n.id == network.id).cloned() else {
        return Ok(());
    };
    record.parent_index = Some(link.index);
    put_naming_parent_among(state, &record, networks)
}

/// Whether `network` has no attachment: no endpoint record, and no damaged
/// one (which may be an attachment) either.
pub(crate) fn is_idle(state: &Locked<'_>, network: &NetworkRecord) -> bool {
    state
        .endpoints_of(&network.id)
        .is_ok_and(|e| e.is_empty() && e.damaged.is_empty())
}

/// The networks of `networks` other than `network` that keep its parent
/// in use: any CLI network on it, and each CNI network on it with an
/// attachment. An idle CNI network holds it no more than `network` does
/// (its next ADD makes it again), or two networks on one parent, one of
/// them an idle CNI network, would keep it for each other for good.
pub(crate) fn users_of_parent(
    state: &Locked<'_>,
    networks: &[NetworkRecord],
    network: &NetworkRecord,
) -> Vec<NetworkRecord> {
    networks
        .iter()
        .filter(|n| n.id != network.id && n.parent == network.parent)
        .filter(|n| !options::made_by_cni(n) || !is_idle(state, n))
        .cloned()
        .collect()
}

/// Whether `link` is the parent `record` says we made: the ifindex we
/// chose and recorded before the create (which nobody else picks), under
/// the recorded name, of the recorded kind (and VLAN id). A link of the
/// parent's name with any other index is another tool's, made after ours
/// went or before ours was made.
fn is_ours(link: &Link, record: &NetworkRecord) -> bool {
    let kind = match &record.parent_origin {
        ParentOrigin::DummyCreated => link.kind.as_deref() == Some("dummy"),
        ParentOrigin::VlanCreated { vlan_id, .. } => {
            link.kind.as_deref() == Some("vlan") && link.vlan_id() == Some(*vlan_id)
        }
        ParentOrigin::Existing => false,
    };
    kind && Some(link.index) == record.parent_index && link.name == record.parent
}

/// Whether `link`, the parent of `network`, is the link we made, as one of
/// `networks` of the same origin records it (see [`is_ours`]).
fn made_by_us(networks: &[NetworkRecord], network: &NetworkRecord, link: &Link) -> bool {
    networks
        .iter()
        .any(|n| n.parent_origin == network.parent_origin && is_ours(link, n))
}

/// The index of the parent `record` says we made, if it is there and is
/// ours (see [`is_ours`]).
fn ours_there(host: &Handle, record: &NetworkRecord) -> Option<u32> {
    let index = record.parent_index?;
    let link = host.link_by_index(index).ok()??;
    is_ours(&link, record).then_some(index)
}

/// Deletes the parent `record` says we made, if it is there and is ours.
fn delete_ours(host: &Handle, record: &NetworkRecord) {
    if let Some(index) = ours_there(host, record) {
        let _ = host.link_del(index);
    }
}

/// Deletes the parent of `record` when we created it, it is the very link
/// we made (see [`is_ours`]) and none of `others` uses it. Failures are
/// ignored: the network goes anyway, as with Docker. A record of an
/// earlier release holds no ifindex: its parent is left alone (nothing
/// proves the link of that name is still ours), and the note saying so
/// returned when a link of that name is there. So is a parent another
/// tool stacked a link on (a macvlan, an ipvlan, a VLAN), in the host
/// namespace, a named one under `netns_dir`, one a process or a thread is
/// in or one bind-mounted elsewhere (see [`links_beside_the_host`]): deleting ours
/// would take theirs with it.
pub(crate) fn delete_if_ours(
    host: &Handle,
    netns_dir: &Path,
    record: &NetworkRecord,
    others: &[NetworkRecord],
) -> Option<String> {
    if record.parent_origin == ParentOrigin::Existing
        || others.iter().any(|n| n.parent == record.parent)
    {
        return None;
    }
    if record.parent_index.is_none() {
        return host.link_by_name(&record.parent).ok().flatten().map(|_| {
            format!(
                "parent {} kept: network {} was recorded by an earlier release without the ifindex that proves the link ours; delete it with `ip link del {}` if nothing else uses it",
                record.parent, record.name, record.parent
            )
        });
    }
    let index = ours_there(host, record)?;
    // Another tool's link on it, or a master it was made a port of (a
    // bridge, a bond: the admin's uplink) since the network was made.
    let in_use = links_beside_the_host(host, netns_dir).map(|beside| {
        let links = &beside.links;
        let ours = in_host(links, Some(index));
        if let Some(master) = in_host(links, ours.and_then(|ours| ours.master)) {
            let kind = master.kind.as_deref().unwrap_or("link");
            return Some(format!("it is a port of {kind} {}", master.name));
        }
        let stacked = links
            .iter()
            .find(|(other, place)| {
                other.parent == Some(index) && !(place.is_host() && other.index == index)
            })
            .map(|(other, place)| {
                format!(
                    "{} link {} in {place} sits on it, and would go with it",
                    other.kind.as_deref().unwrap_or("a"),
                    other.name
                )
            });
        // A namespace not looked into may hold a link on it.
        stacked.or_else(|| {
            let (first, more) = beside.unseen.split_first()?;
            let more = match more.len() {
                0 => String::new(),
                n => format!(" (and {n} more)"),
            };
            Some(format!(
                "links that may sit on it could not be looked for: {first}{more}"
            ))
        })
    });
    let keep = match in_use {
        Ok(None) => match given_address(host, index) {
            Ok(address) => address.map(|address| {
                format!("it carries address {address}, which ipvlan did not give it")
            }),
            Err(error) => Some(format!("its addresses could not be listed ({error})")),
        },
        Ok(why) => why,
        Err(error) => Some(format!("the links on it could not be listed ({error})")),
    };
    if let Some(why) = keep {
        return Some(format!(
            "parent {} kept: {why}; delete it with `ip link del {}` once nothing uses it",
            record.parent, record.parent
        ));
    }
    let _ = host.link_del(index);
    None
}

/// An address someone gave the parent at `index` since we made it (the
/// host's own way onto the VLAN, say), which deleting the link would take
/// with it (`given_among`). Whether the kernel marks the addresses it
/// makes is the kernel's, not the link's: a link whose link-local address
/// user space made (NetworkManager's `addrgenmode none`) has none marked
/// on a kernel that marks, so `lo`'s `::1` is asked then, where the
/// answer matters.
pub(super) fn given_address(host: &Handle, index: u32) -> Result<Option<ipnet::IpNet>, Error> {
    let addresses = host.addrs_of(index)?;
    let undecided = given_among(&addresses, false) != given_among(&addresses, true);
    let kernel_marks = addresses.iter().any(|address| by_the_kernel(address.proto))
        || (undecided && {
            let loopback = host.addrs_of(LOOPBACK_IFINDEX)?;
            loopback.iter().any(|address| by_the_kernel(address.proto))
        });
    Ok(given_among(&addresses, kernel_marks))
}

/// `lo`'s index: the first link of every network namespace.
const LOOPBACK_IFINDEX: u32 = 1;

/// Whether an `IFA_PROTO` is one the kernel gives the addresses it makes
/// (its link-local and loopback ones, those from router advertisements).
fn by_the_kernel(proto: Option<u8>) -> bool {
    use crate::netlink::consts::{IFAPROT_KERNEL_LL, IFAPROT_KERNEL_LO, IFAPROT_KERNEL_RA};
    matches!(
        proto,
        Some(IFAPROT_KERNEL_LO | IFAPROT_KERNEL_RA | IFAPROT_KERNEL_LL)
    )
}

/// Of one link's addresses, one ipvlan did not give and the kernel did
/// not make: an IPv4 one but a link-local one, or an IPv6 one beyond the
/// link's own scope that user space added. We give a parent none; the
/// kernel gives it its link-local address and, from router
/// advertisements, addresses of a limited lifetime, which go with it.
/// Where the kernel marks the addresses it makes (`kernel_marks`: it puts
/// `IFA_PROTO` on them), an IPv6 address without its mark is user
/// space's, configured or leased (a DHCPv6 client's has a limited
/// lifetime too); where it marks none, only a configured (permanent) one
/// is told.
fn given_among(addresses: &[crate::rtnl::Address], kernel_marks: bool) -> Option<ipnet::IpNet> {
    use crate::netlink::consts::RT_SCOPE_LINK;
    use crate::rtnl::AddrFlags;
    addresses
        .iter()
        .find(|address| match address.net {
            // But a link-local one (a daemon's, dhcpcd's or avahi's, on
            // every link it sees).
            ipnet::IpNet::V4(net) => !net.addr().is_link_local(),
            ipnet::IpNet::V6(_) if address.scope == RT_SCOPE_LINK => false,
            // A privacy address the kernel derived from an advertised
            // one (`IFA_F_TEMPORARY`, the bit IPv4 calls secondary, which
            // user space cannot set): the kernel leaves it unmarked.
            ipnet::IpNet::V6(_) if address.flags.contains(AddrFlags::SECONDARY) => false,
            ipnet::IpNet::V6(_) if kernel_marks => !by_the_kernel(address.proto),
            ipnet::IpNet::V6(_) => address.flags.contains(AddrFlags::PERMANENT),
        })
        .map(|address| address.net)
}

/// Sets up a parent we just made (links are made down).
fn set_up_made(host: &Handle, index: u32) -> Result<(), Error> {
    match host.link_set_up(index) {
        Ok(()) => Ok(()),
        // A VLAN whose base is down (a NIC not up yet at boot, when
        // `restore` runs): the kernel refuses it up, and brings it up
        // itself when its base comes up (a VLAN without loose binding).
        // Left down meanwhile, as `create` warned.
        Err(error) if error.errno() == Some(libc::ENETDOWN) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// The network's parent, re-created when it is ours and missing (for
/// `restore`, which reports what it did). The new link's ifindex is
/// recorded (in `state`) before the create, as `network create` does.
/// One of ours found down is set up: a re-make (or a CNI network's
/// replacing) killed between its create and its `up` leaves it so, and
/// nothing else would bring it up. A `NAME.VLANID` whose id another link
/// took meanwhile (in the host or another namespace: [`links_beside_the_host`]) is
/// refused naming that link, as `network create` names it.
pub(crate) fn restore(
    host: &Handle,
    netns_dir: &Path,
    state: &Locked<'_>,
    network: &NetworkRecord,
    report: &mut RestoreReport,
) -> Result<Option<Link>, Error> {
    let label = format!("{}: {}", network.name, network.parent);
    if let Some(link) = host.link_by_name(&network.parent)? {
        adopt_live_index(state, network, &link)?;
        // Ours as a network records it (its own record's index may be
        // the one `adopt_live_index` just replaced).
        let ours = || -> Result<bool, Error> {
            Ok(network.parent_origin != ParentOrigin::Existing
                && made_by_us(&state.networks()?.items, network, &link))
        };
        if link.is_up() || !ours()? {
            return Ok(Some(link));
        }
        set_up_made(host, link.index)?;
        let link = host.link_by_index(link.index)?.unwrap_or(link);
        // A VLAN whose base is down stays down: the kernel brings it up
        // with its base.
        let what = match (&network.parent_origin, link.is_up()) {
            (_, true) => "set up".to_string(),
            (ParentOrigin::VlanCreated { link: base, .. }, false) => {
                format!("{base} is down, and it comes up with it")
            }
            (_, false) => "it would not come up".to_string(),
        };
        report
            .parents_recreated
            .push(format!("{label} (found down: {what})"));
        return Ok(Some(link));
    }
    let base = match &network.parent_origin {
        ParentOrigin::DummyCreated => None,
        ParentOrigin::VlanCreated { link, vlan_id } => match host.link_by_name(link)? {
            Some(base) => Some((base, *vlan_id)),
            None => {
                report
                    .parents_missing
                    .push(format!("{label} (its link {link} is missing too)"));
                return Ok(None);
            }
        },
        ParentOrigin::Existing => {
            report.parents_missing.push(label);
            return Ok(None);
        }
    };
    let mut record = network.clone();
    record.parent_index = Some(chosen_index()?);
    let put = |r: &NetworkRecord| put_naming_parent(state, r);
    put(&record)?;
    let created = match &base {
        None => create_dummy(host, &mut record, put),
        Some((base, vlan_id)) => create_vlan(host, &mut record, base.index, *vlan_id, put),
    };
    let created = match created {
        Ok(link) => link,
        Err(error) => {
            // The id taken by another link (the host's own setup at boot,
            // say): that link named, as `network create` names it, where
            // the kernel's refusal names nothing. Looked for only on a
            // failure, as it costs a look into every other namespace.
            let error = match &base {
                Some((base, vlan_id)) => refuse_vlan_id_in_use(host, netns_dir, base, *vlan_id)
                    .err()
                    .unwrap_or(error),
                None => error,
            };
            // Nothing made (no link at the index last recorded): the
            // records name the index they named before, so that a
            // `restore` failing here again and again changes nothing.
            let made = match record.parent_index {
                Some(index) => !matches!(host.link_by_index(index), Ok(None)),
                None => false,
            };
            if !made {
                let _ = put(network);
            }
            return Err(error);
        }
    };
    // Networks that record the name as another tool's (theirs, gone,
    // was there when they were made) take the link over, as after a
    // `network create` that makes it: else the last of them to go would
    // leave the link we made, named by no record.
    let adopted = state
        .networks()
        .map_err(Error::from)
        .and_then(|all| adopt_made_parent(state, &all.items, &record));
    if let Err(error) = adopted {
        report.errors.push(format!(
            "{label}: made again, but the networks recording it as another tool's were not told: {error}"
        ));
    }
    report.parents_recreated.push(label);
    Ok(Some(created))
}

/// Refuses a parent whose ipvlan port already runs another mode or flag:
/// networks of ours on it, and ipvlan links made by anyone in the host
/// namespace and in every other one [`links_beside_the_host`] sees.
pub(crate) fn check_shared(
    host: &Handle,
    netns_dir: &Path,
    plan: &ParentPlan,
    opts: &NetworkOptions,
    networks: &[NetworkRecord],
) -> Result<(), Error> {
    let link = match plan {
        ParentPlan::Existing(link) => link,
        // A new VLAN link or dummy carries no port yet; a network of ours
        // recorded on the same VLAN name is checked by name.
        ParentPlan::Vlan {
            name,
            base,
            vlan_id,
        } => {
            refuse_vlan_id_in_use(host, netns_dir, base, *vlan_id)?;
            return check_recorded_networks(name, opts, networks);
        }
        ParentPlan::Dummy(_) => return Ok(()),
    };
    // A parent that is itself an ipvlan link shares its master's port.
    let port = port_of(host, link)?;
    let beside = links_beside_the_host(host, netns_dir)?.links;
    if let Some(why) = port_taken(&port, &beside) {
        return Err(Error::in_use(why));
    }
    // A CNI network without a host master (lease-only, linkInContainer)
    // shares no port here.
    for network in networks.iter().filter(|n| !n.parent.is_empty()) {
        let same_port = network.parent == port.name
            || network.parent == link.name
            || host
                .link_by_name(&network.parent)?
                .filter(|l| l.link_netnsid.is_none() && l.ipvlan().is_some())
                .and_then(|l| l.parent)
                == Some(port.index);
        if same_port && (network.mode != opts.mode || network.flag != opts.flag) {
            return Err(Error::in_use(format!(
                "network {} is already using parent interface {} with ipvlan mode {} and flag {}; a network on the same parent must use the same mode and flag",
                network.name,
                port.name,
                network.mode.as_str(),
                network.flag.as_str()
            )));
        }
    }
    // ipvlan links made outside this tool.
    match other_mode_on_port(&beside, &port, opts.mode, opts.flag) {
        Some(why) => Err(Error::in_use(format!(
            "{why}; a network on the same parent must use the same mode and flag"
        ))),
        None => Ok(()),
    }
}

/// Refuses a VLAN `vlan_id` to make on `base` when another link already
/// carries that 802.1Q id on it, in the host or moved to another namespace
/// (it stays on `base` there): the kernel allows one per id and protocol
/// (`EEXIST`). Found only at the create, that came after a CNI config had
/// retired an idle network for nothing. A link of the name asked for is
/// not looked for: one in the host is the parent as it is.
fn refuse_vlan_id_in_use(
    host: &Handle,
    netns_dir: &Path,
    base: &Link,
    vlan_id: u16,
) -> Result<(), Error> {
    let taken = links_beside_the_host(host, netns_dir)?
        .links
        .into_iter()
        .find(|(link, _)| {
            link.parent == Some(base.index)
                && link.vlan_id() == Some(vlan_id)
                && matches!(
                    link.data,
                    crate::rtnl::LinkData::Vlan {
                        protocol: None | Some(ETH_P_8021Q),
                        ..
                    }
                )
        });
    let Some((link, place)) = taken else {
        return Ok(());
    };
    let what_to_do = match place {
        Place::Host => format!("use -o parent={} or another id", link.name),
        Place::Named(_) | Place::Mounted(_) | Place::Process { .. } => {
            "use another id, or delete that link".to_string()
        }
    };
    Err(Error::invalid(format!(
        "vlan id {vlan_id} is already in use on {} by link {} in {place}: the kernel allows one 802.1Q link per id on a device; {what_to_do}",
        base.name, link.name
    )))
}

/// An ipvlan link on `link`'s port (`port`: `link`, or its master when
/// `link` is itself an ipvlan link) in the host namespace or another one
/// (see [`links_beside_the_host`]) whose mode or flag is not `mode` and `flag`, said in
/// words: every new ipvlan link sets the port's mode and flag for every
/// link on it (`ipvlan_set_port_mode`), so one made with ours would
/// switch that link's.
fn other_mode_on_port(
    beside: &[(Link, Place)],
    port: &Link,
    mode: IpvlanMode,
    flag: IpvlanFlag,
) -> Option<String> {
    for (other, place) in beside {
        let Some((other_mode, other_flag)) = other.ipvlan() else {
            continue;
        };
        // A value the kernel reports that we do not know differs from any
        // we would configure. The parent itself counts when it is an
        // ipvlan link: ours go on its master's port, whose mode they set.
        if other.parent == Some(port.index) && !(other_mode.is(mode) && other_flag.is(flag)) {
            return Some(format!(
                "parent interface {} carries ipvlan link {} in {place} with mode {other_mode} and flag {other_flag}",
                port.name, other.name
            ));
        }
    }
    None
}

/// The host's link at `index` among `links`.
#[inline(never)]
fn in_host(links: &[(Link, Place)], index: Option<u32>) -> Option<&Link> {
    let index = index?;
    links
        .iter()
        .find(|(link, place)| place.is_host() && link.index == index)
        .map(|(link, _)| link)
}

/// Why the kernel would refuse `port` an ipvlan port, if it would: it
/// hands the link's frames to another driver already (a bridge, bond,
/// team or Open vSwitch port; a link carrying macvlan links), which
/// answers every attach's create with `EBUSY`. Refused when the network
/// is made, rather than at each attach.
fn port_taken(port: &Link, beside: &[(Link, Place)]) -> Option<String> {
    // The master is in the host, listed there.
    if let Some(master) = in_host(beside, port.master) {
        let handler = |k: &&str| matches!(*k, "bridge" | "bond" | "team" | "openvswitch");
        if let Some(kind) = master.kind.as_deref().filter(handler) {
            let (port, master) = (&port.name, &master.name);
            return Some(format!(
                "parent interface {port} is a port of {kind} {master}, which takes its frames (take it out, or choose another parent)"
            ));
        }
    }
    beside.iter().find_map(|(other, place)| {
        let kind = other.kind.as_deref()?;
        (matches!(kind, "macvlan" | "macvtap") && other.parent == Some(port.index)).then(|| {
            format!(
                "parent interface {} carries {kind} link {} in {place}; ipvlan links cannot share it",
                port.name, other.name
            )
        })
    })
}

/// [`other_mode_on_port`] for a link of `network` about to be made again
/// on `parent` (`restore`): another tool may have put links of another
/// mode on the port since the network was made.
pub(crate) fn other_mode_for(
    host: &Handle,
    netns_dir: &Path,
    network: &NetworkRecord,
    parent: &Link,
) -> Result<Option<String>, Error> {
    let port = port_of(host, parent)?;
    let beside = links_beside_the_host(host, netns_dir)?.links;
    Ok(other_mode_on_port(
        &beside,
        &port,
        network.mode,
        network.flag,
    ))
}

/// The link whose ipvlan port `link` is on: its master when `link` is
/// itself an ipvlan link of the host, else `link`.
pub(crate) fn port_of(host: &Handle, link: &Link) -> Result<Link, Error> {
    Ok(match (link.ipvlan(), link.parent) {
        (Some(_), Some(master)) if link.link_netnsid.is_none() => {
            host.link_by_index(master)?.unwrap_or_else(|| link.clone())
        }
        _ => link.clone(),
    })
}

/// Where a link of [`links_beside_the_host`] was found.
#[derive(Clone)]
pub(crate) enum Place {
    Host,
    Named(String),
    /// A namespace without a name bind-mounted outside the netns
    /// directory, by its first mount point.
    Mounted(PathBuf),
    /// A namespace without a name, by the lowest process in it (or, when
    /// only other threads are, the first of them) and that process's
    /// command name.
    Process {
        pid: u32,
        /// The thread, when it is not the process's main one.
        tid: Option<u32>,
        command: String,
    },
}

impl Place {
    fn is_host(&self) -> bool {
        matches!(self, Place::Host)
    }
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Host => f.write_str("the host namespace"),
            Place::Named(name) => write!(f, "namespace {name}"),
            Place::Mounted(path) => write!(
                f,
                "the namespace mounted at {}",
                crate::text::Shown(&path.to_string_lossy())
            ),
            Place::Process { pid, tid, command } => {
                f.write_str("the namespace of ")?;
                if let Some(tid) = tid {
                    write!(f, "thread {tid} of ")?;
                }
                write!(f, "process {pid}")?;
                if !command.is_empty() {
                    write!(f, " ({command})")?;
                }
                Ok(())
            }
        }
    }
}

/// The links whose lower link (`parent`) may be a host link: every link
/// of the host namespace, and in every named namespace under `netns_dir`
/// the links whose lower link is in the host. An ifindex counts in one
/// namespace: a host link's parent is a host link only without
/// IFLA_LINK_NETNSID, and a link elsewhere sits on a host link only when
/// its IFLA_LINK_NETNSID is the id that namespace gives the host (else its
/// parent lives in its own or a third namespace, where the same index is
/// another link). Namespaces without a name are seen through the
/// processes in them (a runtime's containers: Docker keeps its own
/// elsewhere, and another tool's ipvlan links there are switched to our
/// mode, or deleted with our parent, as much as a named one's), through
/// the threads in them (a thread may enter or make one of its own) and
/// through their bind mounts elsewhere (see [`super::mounts`]); one that
/// only a descriptor holds, or a mount in another mount namespace, is not
/// (see [`super::processes::processes_by_namespace`]).
/// What could not be looked into is said in [`Beside::unseen`].
fn links_beside_the_host(host: &Handle, netns_dir: &Path) -> Result<Beside, Error> {
    let mut beside = Beside::default();
    for host_link in host.links()? {
        if host_link.link_netnsid.is_none() {
            beside.links.push((host_link, Place::Host));
        }
    }
    let here = Netns::current().map_err(|e| Error::io("opening the host namespace", &e))?;
    let mut known = vec![here.file_id().1];
    for (name, ns) in named_namespaces(netns_dir) {
        known.push(ns.file_id().1);
        beside.look_into(&here, ns, Place::Named(name));
    }
    let by_namespace = super::processes::processes_by_namespace(&known);
    beside
        .unseen
        .extend(by_namespace.unseen.map(|unseen| unseen.to_string()));
    for (ino, holders) in by_namespace.found {
        // Through the first of its processes (or threads) that is still
        // there and still in it (a pid may have gone to another process
        // since).
        for holder in holders {
            let (pid, tid) = (holder.pid, holder.tid);
            let place = || Place::Process {
                pid,
                tid,
                command: super::processes::command_of(pid),
            };
            let ns = match Netns::open_of_task(pid, tid, &here) {
                Ok(ns) if ns.file_id().1 == ino => ns,
                Ok(_) => continue,
                Err(error) if holder.has_gone(&error) => continue,
                Err(error) => {
                    beside.missed.push((ino, format!("{}: {error}", place())));
                    break;
                }
            };
            known.push(ino);
            beside.look_into(&here, ns, place());
            break;
        }
    }
    beside.look_into_mounted(&here, &known);
    let missed = std::mem::take(&mut beside.missed);
    beside
        .unseen
        .extend(missed.into_iter().map(|(_, missed)| missed));
    Ok(beside)
}

/// What [`links_beside_the_host`] found.
#[derive(Default)]
pub(crate) struct Beside {
    /// The links whose lower link may be a host link, and where.
    links: Vec<(Link, Place)>,
    /// Why the links of some namespaces may be missing from `links`: each
    /// namespace that could not be entered or listed, the processes whose
    /// namespace could not be read, a namespace none of whose processes
    /// or mount points opened, a mount table that could not be read. A
    /// parent is deleted only where this is empty; the checks of a port's
    /// mode pass over it, as a refusal for a namespace nobody can read
    /// would refuse for good.
    unseen: Vec<String>,
    /// While the walk runs: the namespaces (by nsfs inode) one way to
    /// which failed, and why; dropped when another way reaches one (a
    /// process refused, a mount point that opens), else added to
    /// `unseen` at the end.
    missed: Vec<(u64, String)>,
}

impl Beside {
    /// The links of namespace `ns` whose lower link is in the host
    /// (`here`), found at `place`.
    fn look_into(&mut self, here: &Netns, ns: Netns, place: Place) {
        let inside = match OpenNetns::with_handle(ns) {
            Ok(inside) => inside,
            Err(error) => return self.unseen.push(format!("{place}: {error}")),
        };
        // A test's stand-in for a namespace a security policy keeps us out of.
        let links = match crate::fault::io_refused("parent: dump of a namespace beside refused") {
            Ok(()) => inside.handle.links().map_err(|error| error.to_string()),
            Err(error) => Err(error.to_string()),
        };
        let links = match links {
            Ok(links) => links,
            Err(error) => return self.unseen.push(format!("{place}: {error}")),
        };
        // Asked after the dump, which gives the host an id there if it had
        // none and a link sits on a host link: none then means none does
        // (a link there may sit on a third namespace's). Without an
        // answer, any link with a peer namespace counts.
        let host_id = inside.host_nsid(here);
        for link in links {
            let on_host = match &host_id {
                Ok(id) => id.is_some() && link.link_netnsid == *id,
                Err(_) => link.link_netnsid.is_some(),
            };
            if on_host {
                self.links.push((link, place.clone()));
            }
        }
    }

    /// The namespaces mounted in this mount namespace that `known` (the
    /// host's, the named ones, those looked into through a process) does
    /// not hold, each through the first of its mount points that opens
    /// to it. One reached at none is still counted as missed while the
    /// table, read again, mounts it (another mount covers it, or opening
    /// was refused: it may hold links); one unmounted since is not held
    /// there any longer.
    fn look_into_mounted(&mut self, here: &Netns, known: &[u64]) {
        use super::mounts::{mounts_namespace, namespace_mounts, read_mountinfo, MOUNTINFO};
        let table = match read_mountinfo() {
            Ok(table) => table,
            Err(error) => {
                return self
                    .unseen
                    .push(format!("the namespaces mounted ({MOUNTINFO}): {error}"))
            }
        };
        let mut read_again: Option<Option<Vec<u8>>> = None;
        for mount in namespace_mounts(&table) {
            if known.contains(&mount.ino) {
                continue;
            }
            let mut failed: Option<(PathBuf, String)> = None;
            let mut reached = None;
            for path in mount.paths {
                match Netns::open_mounted(&path, here) {
                    Ok(ns) if ns.file_id().1 == mount.ino => {
                        reached = Some((ns, path));
                        break;
                    }
                    Ok(_) => {
                        let why = "another namespace is mounted over it".to_string();
                        failed.get_or_insert((path, why));
                    }
                    Err(error) => {
                        failed.get_or_insert((path, error.to_string()));
                    }
                }
            }
            if let Some((ns, path)) = reached {
                self.missed.retain(|(ino, _)| *ino != mount.ino);
                self.look_into(here, ns, Place::Mounted(path));
                continue;
            }
            let Some((path, why)) = failed else {
                continue;
            };
            let again = read_again.get_or_insert_with(|| read_mountinfo().ok());
            if again
                .as_ref()
                .is_some_and(|table| !mounts_namespace(table, mount.ino))
            {
                continue;
            }
            let place = Place::Mounted(path);
            self.missed.push((mount.ino, format!("{place}: {why}")));
        }
    }
}

/// Every namespace under `netns_dir` that opens, by name.
fn named_namespaces(netns_dir: &Path) -> Vec<(String, Netns)> {
    let Ok(entries) = crate::sys::list_dir(netns_dir) else {
        return Vec::new();
    };
    let mut found: Vec<(String, Netns)> = entries
        .iter()
        .filter_map(|entry| {
            let ns = Netns::open_path(netns_dir.join(entry.file_name())).ok()?;
            Some((entry.file_name().to_string_lossy().into_owned(), ns))
        })
        .collect();
    crate::order::sort_by(&mut found, |a, b| a.0.cmp(&b.0));
    found
}

fn check_recorded_networks(
    parent: &str,
    opts: &NetworkOptions,
    networks: &[NetworkRecord],
) -> Result<(), Error> {
    match networks
        .iter()
        .find(|n| n.parent == parent && (n.mode != opts.mode || n.flag != opts.flag))
    {
        Some(network) => Err(Error::in_use(format!(
            "network {} is already using parent interface {parent} with ipvlan mode {} and flag {}; a network on the same parent must use the same mode and flag",
            network.name,
            network.mode.as_str(),
            network.flag.as_str()
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtnl::LinkData;
    use crate::store::records::fixtures;

    fn address(net: &str, scope: u8, permanent: bool, proto: Option<u8>) -> crate::rtnl::Address {
        crate::rtnl::Address {
            index: 7,
            net: net.parse().unwrap(),
            flags: if permanent {
                crate::rtnl::AddrFlags::PERMANENT
            } else {
                crate::rtnl::AddrFlags::empty()
            },
            scope,
            broadcast: None,
            label: None,
            proto,
        }
    }

    #[test]
    fn a_parent_s_given_address_is_one_neither_the_kernel_nor_a_link_local_daemon_made() {
        use crate::netlink::consts::{IFAPROT_KERNEL_LL, IFAPROT_KERNEL_RA, RT_SCOPE_LINK};
        let given = |addresses: &[crate::rtnl::Address], kernel_marks: bool| {
            given_among(addresses, kernel_marks).map(|net| net.to_string())
        };
        // A kernel that marks its own.
        let marked_link_local = address("fe80::1/64", RT_SCOPE_LINK, true, Some(IFAPROT_KERNEL_LL));
        let advertised = address("2001:db8::aa/64", 0, false, Some(IFAPROT_KERNEL_RA));
        let lease = address("2001:db8::5/64", 0, false, None);
        let mut privacy = address("2001:db8::7e:1/64", 0, false, None);
        privacy.flags |= crate::rtnl::AddrFlags::SECONDARY;
        let kernels = [marked_link_local.clone(), advertised.clone(), privacy];
        assert_eq!(given(&kernels, true), None);
        assert_eq!(
            given(
                &[marked_link_local.clone(), advertised.clone(), lease.clone()],
                true
            )
            .as_deref(),
            Some("2001:db8::5/64"),
            "a DHCPv6 lease: limited lifetime, no kernel mark"
        );
        // A link-local address user space made (`addrgenmode none`): the
        // lease is told by the kernel's marking, not the link's.
        let own_link_local = address("fe80::2/64", RT_SCOPE_LINK, true, None);
        assert_eq!(
            given(&[own_link_local.clone(), lease.clone()], true).as_deref(),
            Some("2001:db8::5/64")
        );
        // A DHCP client that names itself in IFA_PROTO is user space too.
        let named = address("2001:db8::6/64", 0, false, Some(42));
        assert_eq!(given(&[named], true).as_deref(), Some("2001:db8::6/64"));
        // A kernel that marks nothing: only a permanent one is told.
        let unmarked_advertised = address("2001:db8::aa/64", 0, false, None);
        assert_eq!(
            given(
                &[own_link_local.clone(), unmarked_advertised.clone()],
                false
            ),
            None
        );
        let configured = address("2001:db8::7/64", 0, true, None);
        assert_eq!(
            given(&[own_link_local, unmarked_advertised, configured], false).as_deref(),
            Some("2001:db8::7/64")
        );
        // IPv4: any but a link-local one.
        for marks in [false, true] {
            assert_eq!(
                given(&[address("169.254.3.4/16", 0, true, None)], marks),
                None
            );
            assert_eq!(
                given(&[address("192.0.2.9/24", 0, true, None)], marks).as_deref(),
                Some("192.0.2.9/24")
            );
        }
    }

    fn vlan_link(index: u32) -> Link {
        Link {
            index,
            name: "eth0.40".into(),
            raw_name: None,
            flags: 0,
            link_type: ARPHRD_ETHER,
            mtu: Some(1500),
            mac: None,
            parent: Some(2),
            link_netnsid: None,
            master: None,
            group: None,
            operstate: None,
            kind: Some("vlan".into()),
            data: LinkData::Vlan {
                id: 40,
                protocol: None,
            },
        }
    }

    fn ipvlan_link(index: u32, name: &str, parent: u32, kind: &str, mode: IpvlanMode) -> Link {
        Link {
            name: name.into(),
            parent: Some(parent),
            kind: Some(kind.into()),
            data: LinkData::Ipvlan {
                mode: crate::rtnl::Reported::Known(mode),
                flag: crate::rtnl::Reported::Known(IpvlanFlag::Bridge),
            },
            ..vlan_link(index)
        }
    }

    /// Every ipvlan link on the port is compared with the mode asked for,
    /// the parent itself included when it is one (ours would go on its
    /// master's port and switch it), ipvtap links as well. Before, the
    /// parent was skipped, and an ipvtap link never decoded as ipvlan.
    #[test]
    fn every_link_on_the_port_is_compared_the_parent_included() {
        let eth0 = Link {
            name: "eth0".into(),
            parent: None,
            kind: None,
            data: LinkData::None,
            ..vlan_link(2)
        };
        let parent = ipvlan_link(7, "ipvl0", 2, "ipvlan", IpvlanMode::L3);
        let beside = vec![(eth0.clone(), Place::Host), (parent, Place::Host)];
        let why = other_mode_on_port(&beside, &eth0, IpvlanMode::L2, IpvlanFlag::Bridge);
        assert!(
            why.as_deref().is_some_and(|w| w.contains("ipvl0")),
            "{why:?}"
        );
        assert_eq!(
            other_mode_on_port(&beside, &eth0, IpvlanMode::L3, IpvlanFlag::Bridge),
            None
        );
        let tap = ipvlan_link(8, "ivt0", 2, "ipvtap", IpvlanMode::L3);
        let beside = vec![
            (eth0.clone(), Place::Named("x".into())),
            (tap, Place::Named("x".into())),
        ];
        let why = other_mode_on_port(&beside, &eth0, IpvlanMode::L2, IpvlanFlag::Bridge);
        assert!(
            why.as_deref().is_some_and(|w| w.contains("ivt0")),
            "{why:?}"
        );
    }

    /// A network whose record says we made `eth0.40` with an index the
    /// link of that name does not have (an admin deleted ours and made
    /// their own): a new network on it records the link as existing, as
    /// Docker does. Before, it took the record's origin and index, so
    /// `restore` made the admin's link again after they removed it, and
    /// the new network's `rm` deleted what it made.
    #[test]
    fn a_link_no_record_proves_ours_is_an_existing_parent() {
        let mut ours = fixtures::network("a", 'a', Vec::new());
        ours.parent = "eth0.40".into();
        ours.parent_origin = ParentOrigin::VlanCreated {
            link: "eth0".into(),
            vlan_id: 40,
        };
        ours.parent_index = Some(1 << 21);
        let admins = ParentPlan::Existing(vlan_link(9));
        let (name, origin, index) = admins.origin(std::slice::from_ref(&ours)).unwrap();
        assert_eq!(name, "eth0.40");
        assert_eq!((origin, index), (ParentOrigin::Existing, None));
        // The very link we made: still ours, for every network on it.
        let made = ParentPlan::Existing(vlan_link(1 << 21));
        let (_, origin, index) = made.origin(std::slice::from_ref(&ours)).unwrap();
        assert_eq!((origin, index), (ours.parent_origin.clone(), Some(1 << 21)));
        // A record of an earlier release (no index): its origin, unproven,
        // as before (its parent is never deleted).
        ours.parent_index = None;
        let (_, origin, index) = admins.origin(std::slice::from_ref(&ours)).unwrap();
        assert_eq!((origin, index), (ours.parent_origin.clone(), None));
    }
}
