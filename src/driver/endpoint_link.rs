//! The endpoint's kernel link: an ipvlan link created straight inside the
//! container's namespace, its addresses and default routes, and the checks
//! that make us delete only a link that is ours.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::netns_identity::OpenNetns;
use super::{random_hex, Error, IpvlanFlag, IpvlanMode};
use crate::rtnl::{AddrFlags, Handle, IpFamily, Link, LinkSpec, RouteSpec};
use crate::store::NetworkRecord;

/// The route an endpoint gets, per family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DefaultRoute {
    /// No default route (internal l2).
    None,
    /// `default via GW dev ethN` (l2).
    Via(IpAddr),
    /// `default dev ethN` (l3, l3s).
    Device,
}

/// Everything needed to build an endpoint inside a namespace.
#[derive(Debug, Clone)]
pub(crate) struct EndpointPlan {
    pub parent_index: u32,
    pub mode: IpvlanMode,
    pub flag: IpvlanFlag,
    pub mtu: Option<u32>,
    pub ipv4: Option<Ipv4Net>,
    pub ipv6: Option<Ipv6Net>,
    pub route4: DefaultRoute,
    pub route6: DefaultRoute,
}

impl EndpointPlan {
    /// The plan for an endpoint of `network` on the parent `parent_index`
    /// with these addresses: l2 routes to its subnet's gateway (none when
    /// internal), l3/l3s through the device.
    pub(crate) fn new(
        network: &NetworkRecord,
        parent_index: u32,
        ipv4: IpNet,
        ipv6: Option<IpNet>,
    ) -> EndpointPlan {
        let route_for = |address: IpAddr| match network.mode {
            IpvlanMode::L3 | IpvlanMode::L3s => DefaultRoute::Device,
            IpvlanMode::L2 if network.internal => DefaultRoute::None,
            IpvlanMode::L2 => network
                .subnets
                .iter()
                .find(|s| s.subnet.contains(&address))
                .and_then(|s| s.gateway)
                .map_or(DefaultRoute::None, DefaultRoute::Via),
        };
        EndpointPlan {
            parent_index,
            mode: network.mode,
            flag: network.flag,
            mtu: network.mtu,
            ipv4: match ipv4 {
                IpNet::V4(net) => Some(net),
                IpNet::V6(_) => None,
            },
            ipv6: match ipv6 {
                Some(IpNet::V6(net)) => Some(net),
                _ => None,
            },
            route4: route_for(ipv4.addr()),
            route6: ipv6.map_or(DefaultRoute::None, |a| route_for(a.addr())),
        }
    }
}

impl EndpointPlan {
    /// The create request of the link `name` inside `inside`.
    fn spec<'n>(&self, name: &str, inside: &'n OpenNetns) -> LinkSpec<'n> {
        let spec =
            LinkSpec::ipvlan(name, self.parent_index, self.mode, self.flag).in_netns(&inside.ns);
        match self.mtu {
            Some(mtu) => spec.mtu(mtu),
            None => spec,
        }
    }
}

/// What was built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuiltEndpoint {
    pub ifname: String,
    pub mac: String,
    /// Its ifindex inside the namespace.
    pub index: u32,
}

/// A free interface name in a namespace, and where its ifindexes end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FreeName {
    /// The lowest `ethN` not taken.
    pub ifname: String,
    /// One past the highest ifindex seen: a good first guess for an index
    /// free in the namespace.
    pub next_index: u32,
}

/// The lowest `ethN` not taken in `inside`.
pub(crate) fn free_ifname(inside: &OpenNetns) -> Result<FreeName, Error> {
    let links = inside.handle.links()?;
    let next_index = links.iter().map(|l| l.index).max().unwrap_or(1) + 1;
    let taken: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
    let ifname = (0..)
        .map(|n| format!("eth{n}"))
        .find(|name| !taken.contains(&name.as_str()))
        .unwrap_or_default();
    Ok(FreeName { ifname, next_index })
}

/// Prefix of the temporary names of links created before a rename.
const TEMPORARY_PREFIX: &str = "ipv";

/// Whether `name` is one of our temporary link names (`ipv` + 9 hex).
pub(crate) fn is_temporary_name(name: &str) -> bool {
    name.strip_prefix(TEMPORARY_PREFIX)
        .is_some_and(|rest| rest.len() == 9 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether a request may have been carried out although its answer was
/// lost (anything but the kernel's own refusal).
pub(crate) fn outcome_unknown(error: &crate::netlink::Error) -> bool {
    !matches!(error.kind(), crate::netlink::ErrorKind::Kernel { .. })
}

/// Errnos of a create with an ifindex that only say the index is taken:
/// on 6.1, EEXIST in the host (the socket's namespace) and EBUSY in the
/// target; later kernels look in the target only and answer EEXIST.
fn index_taken(error: &crate::netlink::Error) -> bool {
    matches!(error.errno(), Some(libc::EEXIST | libc::EBUSY))
}

/// Builds the endpoint `ifname` in `inside` from `host` (the namespace of
/// the parent); on failure nothing is left behind.
///
/// The kernel looks a new link's name up in the namespace of the socket
/// (the host's) before creating it in the target, so "eth0" collides with a
/// host eth0. Asking for an ifindex instead makes it look up only that
/// index: the final name is created directly, without the rename that
/// costs several times the create. `next_index` (see [`FreeName`]) is
/// tried first, then a few random high indexes; should every one be taken,
/// a temporary name and a rename inside. Any other refusal is returned as
/// it is.
pub(crate) fn create(
    host: &Handle,
    inside: &OpenNetns,
    plan: &EndpointPlan,
    ifname: &str,
    next_index: Option<u32>,
) -> Result<BuiltEndpoint, Error> {
    let spec_named = |name: &str| plan.spec(name, inside);
    let created = match create_with_index(host, inside, plan, ifname, next_index) {
        Ok(true) => Ok(None),
        Ok(false) => match host.link_add(&spec_named(ifname)) {
            Ok(()) => Ok(None),
            Err(error) if error.is_exists() => {
                let temporary = format!("{TEMPORARY_PREFIX}{}", &random_hex(5)?[..9]);
                match host.link_add(&spec_named(&temporary)) {
                    Ok(()) => Ok(Some(temporary)),
                    Err(error) => Err((error, Some(temporary))),
                }
            }
            Err(error) => Err((error, None)),
        },
        Err(error) => Err((error, None)),
    };
    let temporary = match created {
        Ok(temporary) => temporary,
        Err((error, temporary)) => {
            // A lost answer may hide a link that was made.
            if outcome_unknown(&error) {
                undo_create(inside, temporary.as_deref().unwrap_or(ifname), plan);
            }
            return Err(error.into());
        }
    };
    let created_name = temporary.as_deref().unwrap_or(ifname);
    let index = match inside.handle.link_by_name(created_name) {
        Ok(Some(link)) => link.index,
        Ok(None) => {
            return Err(Error::failed(format!(
                "ipvlan link {created_name} vanished from namespace {} after creation",
                inside.label()
            )))
        }
        Err(error) => {
            undo_create(inside, created_name, plan);
            return Err(error.into());
        }
    };
    match configure(inside, index, temporary.is_some(), ifname, plan) {
        Ok(mac) => Ok(BuiltEndpoint {
            ifname: ifname.to_string(),
            mac,
            index,
        }),
        Err(error) => {
            let _ = inside.handle.link_del(index);
            Err(error)
        }
    }
}

/// Creates the link with an ifindex free in both namespaces, without
/// asking which are: a taken index costs one refused request. `Ok(false)`:
/// every index tried was taken.
fn create_with_index(
    host: &Handle,
    inside: &OpenNetns,
    plan: &EndpointPlan,
    ifname: &str,
    next_index: Option<u32>,
) -> Result<bool, crate::netlink::Error> {
    let mut candidates: Vec<u32> = next_index.into_iter().collect();
    for _ in 0..3 {
        let random = random_hex(4)
            .ok()
            .and_then(|hex| u32::from_str_radix(&hex, 16).ok())
            .unwrap_or(0);
        // Above what hosts reach, below the kernel's INT_MAX.
        candidates.push((1 << 20) + random % (1 << 30));
    }
    for index in candidates {
        match host.link_add(&plan.spec(ifname, inside).index(index)) {
            Ok(()) => return Ok(true),
            Err(error) if index_taken(&error) => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(false)
}

/// Deletes the ipvlan link `name` on the plan's parent inside, if it is
/// there: the undo of a create whose outcome is unknown.
fn undo_create(inside: &OpenNetns, name: &str, plan: &EndpointPlan) {
    if let Ok(Some(link)) = inside.handle.link_by_name(name) {
        if link.kind.as_deref() == Some("ipvlan") && link.parent == Some(plan.parent_index) {
            let _ = inside.handle.link_del(link.index);
        }
    }
}

/// Renames (when created under a temporary name), sets `disable_ipv6`,
/// adds the addresses, sets the link up and adds the default routes;
/// returns the link's MAC.
fn configure(
    inside: &OpenNetns,
    index: u32,
    rename: bool,
    ifname: &str,
    plan: &EndpointPlan,
) -> Result<String, Error> {
    let handle = &inside.handle;
    if rename {
        handle.link_rename(index, ifname)?;
    }
    let disable = plan.ipv6.is_none();
    if let Err(error) = crate::netns::set_disable_ipv6(&inside.ns, ifname, disable) {
        // A kernel without IPv6 has nothing to disable.
        if !disable || error.kind() != std::io::ErrorKind::NotFound {
            return Err(Error::io(
                format!("setting disable_ipv6 on {ifname} in {}", inside.label()),
                &error,
            ));
        }
    }
    if let Some(v4) = plan.ipv4 {
        handle.addr_add(index, IpNet::V4(v4), AddrFlags::empty())?;
    }
    if let Some(v6) = plan.ipv6 {
        handle.addr_add(index, IpNet::V6(v6), AddrFlags::NODAD)?;
    }
    handle.link_set_up(index)?;
    for (route, family) in [(plan.route4, IpFamily::V4), (plan.route6, IpFamily::V6)] {
        let spec = match route {
            DefaultRoute::None => continue,
            DefaultRoute::Via(gateway) => RouteSpec::default_via(gateway).dev(index),
            DefaultRoute::Device => RouteSpec::default_dev(family, index),
        };
        if family == IpFamily::V6 && plan.ipv6.is_none() {
            continue;
        }
        handle.route_add(&spec)?;
    }
    let link = handle
        .link_by_index(index)?
        .ok_or_else(|| Error::failed(format!("link {ifname} vanished")))?;
    Ok(link.mac_text())
}

/// Why a link is not an endpoint link of ours, or `None` when it is: an
/// ipvlan link whose lower link is `parent` in the host namespace (index
/// counted in another namespace: `IFLA_LINK_NETNSID` set) and whose MAC is
/// the parent's (or the one recorded at attach).
pub(crate) fn not_ours(link: &Link, parent: Option<&Link>, mac: Option<&str>) -> Option<String> {
    if link.kind.as_deref() != Some("ipvlan") {
        return Some(format!(
            "link {} (index {}) is not an ipvlan link",
            link.name, link.index
        ));
    }
    let Some(parent) = parent else {
        return Some(format!(
            "link {} (index {}): the network's parent is missing, so it cannot sit on it",
            link.name, link.index
        ));
    };
    if link.parent != Some(parent.index) || link.link_netnsid.is_none() {
        return Some(format!(
            "link {} (index {}) does not sit on parent {} of the host",
            link.name, link.index, parent.name
        ));
    }
    let text = link.mac_text();
    if text != parent.mac_text() && !mac.is_some_and(|m| m.eq_ignore_ascii_case(&text)) {
        return Some(format!(
            "link {} (index {}) has MAC {text}, not the parent's",
            link.name, link.index
        ));
    }
    None
}

/// The endpoint link recorded as `ifindex` (or, in records made before the
/// index was known, named `ifname`) in `inside`, if any; whether it is
/// ours is for [`not_ours`] to say.
pub(crate) fn recorded_link(
    inside: &OpenNetns,
    ifindex: Option<u32>,
    ifname: &str,
) -> Result<Option<Link>, Error> {
    let link = match ifindex {
        Some(index) => inside.handle.link_by_index(index),
        None if ifname.is_empty() => return Ok(None),
        None => inside.handle.link_by_name(ifname),
    };
    Ok(link?)
}

/// What became of an endpoint's link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinkRemoval {
    Deleted,
    /// No link at the recorded index (or name).
    Missing,
    /// A link is there but is not ours: left alone, with why.
    NotOurs(String),
}

/// Deletes an endpoint's link in `inside` after checking it is ours (see
/// [`not_ours`]), by index: a link that only has the recorded name is
/// never deleted.
pub(crate) fn delete_checked(
    inside: &OpenNetns,
    ifindex: Option<u32>,
    ifname: &str,
    parent: Option<&Link>,
    mac: Option<&str>,
) -> Result<LinkRemoval, Error> {
    let Some(link) = recorded_link(inside, ifindex, ifname)? else {
        return Ok(LinkRemoval::Missing);
    };
    if let Some(why) = not_ours(&link, parent, mac) {
        return Ok(LinkRemoval::NotOurs(format!(
            "{why} in namespace {}; left in place",
            inside.label()
        )));
    }
    match inside.handle.link_del(link.index) {
        Ok(()) => Ok(LinkRemoval::Deleted),
        Err(error) if error.is_not_found() => Ok(LinkRemoval::Missing),
        Err(error) => Err(error.into()),
    }
}

/// Deletes ipvlan links on `parent` left under a temporary name in
/// `inside` (an attach interrupted between create and rename); returns
/// how many.
pub(crate) fn delete_temporary_links(
    inside: &OpenNetns,
    parent: Option<&Link>,
) -> Result<usize, Error> {
    let mut deleted = 0;
    for link in inside.handle.links()? {
        if !is_temporary_name(&link.name) || not_ours(&link, parent, None).is_some() {
            continue;
        }
        match inside.handle.link_del(link.index) {
            Ok(()) => deleted += 1,
            Err(error) if error.is_not_found() => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(deleted)
}
