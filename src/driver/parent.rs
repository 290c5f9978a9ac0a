//! A network's parent link in the host namespace: what `-o parent=` names
//! (an existing link, a `NAME.VLANID` to create, or a dummy for a network
//! without one), its creation and deletion when it is ours, its
//! re-creation by `restore`, and the guard that keeps every ipvlan link on
//! one parent in one mode and flag (the kernel keeps one per parent).

use std::path::Path;

use super::kernel_support::require_kind;
use super::netns_identity::OpenNetns;
use super::options::{self, NetworkOptions};
use super::report::RestoreReport;
use super::Error;
use crate::netns::Netns;
use crate::rtnl::{Handle, Link, LinkSpec, ProbeKind};
use crate::store::{NetworkRecord, ParentOrigin};

/// `ARPHRD_ETHER`: the only device type ipvlan and 802.1Q sit on.
const ARPHRD_ETHER: u16 = 1;

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

    /// The parent's name and who made it. A parent another network of
    /// ours created stays ours: whichever network goes last deletes it.
    pub(crate) fn origin(&self, networks: &[NetworkRecord]) -> (String, ParentOrigin) {
        match self {
            ParentPlan::Existing(link) => (
                link.name.clone(),
                networks
                    .iter()
                    .find(|n| n.parent == link.name)
                    .map_or(ParentOrigin::Existing, |n| n.parent_origin.clone()),
            ),
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
            ),
            ParentPlan::Dummy(name) => (name.clone(), ParentOrigin::DummyCreated),
        }
    }

    /// Creates the parent when it is ours to make (`mtu` for a dummy, so a
    /// network may use an MTU above 1500).
    pub(crate) fn create(&self, host: &Handle, mtu: Option<u32>) -> Result<(), Error> {
        match self {
            ParentPlan::Existing(_) => Ok(()),
            ParentPlan::Vlan {
                name,
                base,
                vlan_id,
            } => create_vlan(host, name, base.index, *vlan_id).map(drop),
            ParentPlan::Dummy(name) => create_dummy(host, name, mtu).map(drop),
        }
    }
}

/// Creates the dummy `name` (with `mtu`) and sets it up.
fn create_dummy(host: &Handle, name: &str, mtu: Option<u32>) -> Result<Link, Error> {
    let spec = LinkSpec::dummy(name);
    let spec = match mtu {
        Some(mtu) => spec.mtu(mtu),
        None => spec,
    };
    create_and_up(host, &spec, "dummy")
}

/// Creates the 802.1Q link `name` on `base_index` and sets it up.
fn create_vlan(host: &Handle, name: &str, base_index: u32, vlan_id: u16) -> Result<Link, Error> {
    create_and_up(host, &LinkSpec::vlan(name, base_index, vlan_id), "vlan")
}

fn create_and_up(host: &Handle, spec: &LinkSpec, kind: &str) -> Result<Link, Error> {
    if let Err(error) = host.link_add(spec) {
        if super::endpoint_link::outcome_unknown(&error) {
            undo_create(host, &spec.name, kind);
        }
        return Err(error.into());
    }
    // The link exists from here on: any failure deletes it.
    let finish = || -> Result<Link, Error> {
        let vanished = || Error::failed(format!("link {} vanished after creation", spec.name));
        let created = host.link_by_name(&spec.name)?.ok_or_else(vanished)?;
        host.link_set_up(created.index)?;
        host.link_by_index(created.index)?.ok_or_else(vanished)
    };
    let finished = finish();
    if finished.is_err() {
        undo_create(host, &spec.name, kind);
    }
    finished
}

/// Deletes the host link `name` if it has `kind`: the undo of a create
/// whose later steps failed.
fn undo_create(host: &Handle, name: &str, kind: &str) {
    if let Ok(Some(link)) = host.link_by_name(name) {
        if link.kind.as_deref() == Some(kind) {
            let _ = host.link_del(link.index);
        }
    }
}

/// Deletes the parent of `record` when we created it and none of `others`
/// uses it. Failures are ignored: the network goes anyway, as with Docker.
pub(crate) fn delete_if_ours(host: &Handle, record: &NetworkRecord, others: &[NetworkRecord]) {
    if record.parent_origin == ParentOrigin::Existing
        || others.iter().any(|n| n.parent == record.parent)
    {
        return;
    }
    if let Ok(Some(link)) = host.link_by_name(&record.parent) {
        let kind_matches = match &record.parent_origin {
            ParentOrigin::DummyCreated => link.kind.as_deref() == Some("dummy"),
            ParentOrigin::VlanCreated { vlan_id, .. } => {
                link.kind.as_deref() == Some("vlan") && link.vlan_id() == Some(*vlan_id)
            }
            ParentOrigin::Existing => false,
        };
        if kind_matches {
            let _ = host.link_del(link.index);
        }
    }
}

/// The network's parent, re-created when it is ours and missing (for
/// `restore`, which reports what it did).
pub(crate) fn restore(
    host: &Handle,
    network: &NetworkRecord,
    report: &mut RestoreReport,
) -> Result<Option<Link>, Error> {
    if let Some(link) = host.link_by_name(&network.parent)? {
        return Ok(Some(link));
    }
    let label = format!("{}: {}", network.name, network.parent);
    let created = match &network.parent_origin {
        ParentOrigin::DummyCreated => create_dummy(host, &network.parent, network.mtu),
        ParentOrigin::VlanCreated { link, vlan_id } => match host.link_by_name(link)? {
            Some(base) => create_vlan(host, &network.parent, base.index, *vlan_id),
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
    let created = created?;
    report.parents_recreated.push(label);
    Ok(Some(created))
}

/// Refuses a parent whose ipvlan port already runs another mode or flag:
/// networks of ours on it, and ipvlan links made by anyone in the host
/// namespace and in every named namespace under `netns_dir`.
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
        ParentPlan::Vlan { name, .. } => return check_recorded_networks(name, opts, networks),
        ParentPlan::Dummy(_) => return Ok(()),
    };
    // A parent that is itself an ipvlan link shares its master's port.
    let port = match (link.ipvlan(), link.parent) {
        (Some(_), Some(master)) if link.link_netnsid.is_none() => {
            host.link_by_index(master)?.unwrap_or_else(|| link.clone())
        }
        _ => link.clone(),
    };
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
    // ipvlan links made outside this tool, in the host namespace and in
    // every named namespace. An ifindex counts in one namespace: a host
    // link's parent is a host link only without IFLA_LINK_NETNSID, and a
    // link elsewhere sits on a host link only when its IFLA_LINK_NETNSID is
    // the id that namespace gives the host (else its parent lives in its
    // own or a third namespace, where the same index is another link).
    let mut foreign = Vec::new();
    for host_link in host.links()? {
        if host_link.link_netnsid.is_none() {
            foreign.push((host_link, "the host namespace".to_string()));
        }
    }
    let here = Netns::current().map_err(|e| Error::io("opening the host namespace", &e))?;
    for (name, ns) in named_namespaces(netns_dir) {
        let Ok(inside) = OpenNetns::with_handle(ns) else {
            continue;
        };
        // Without an answer, any link with a peer namespace counts.
        let host_id = inside.host_nsid(&here);
        if let Ok(links) = inside.handle.links() {
            foreign.extend(
                links
                    .into_iter()
                    .filter(|l| match &host_id {
                        Ok(id) => l.link_netnsid.is_some() && l.link_netnsid == *id,
                        Err(_) => l.link_netnsid.is_some(),
                    })
                    .map(|l| (l, format!("namespace {name}"))),
            );
        }
    }
    for (other, place) in foreign {
        let Some((mode, flag)) = other.ipvlan() else {
            continue;
        };
        // A value the kernel reports that we do not know differs from any
        // we would configure.
        if other.parent == Some(port.index)
            && other.index != link.index
            && !(mode.is(opts.mode) && flag.is(opts.flag))
        {
            return Err(Error::in_use(format!(
                "parent interface {} carries ipvlan link {} in {place} with mode {} and flag {}; a network on the same parent must use the same mode and flag",
                port.name,
                other.name,
                mode,
                flag
            )));
        }
    }
    Ok(())
}

/// Every namespace under `netns_dir` that opens, by name.
fn named_namespaces(netns_dir: &Path) -> Vec<(String, Netns)> {
    let Ok(entries) = std::fs::read_dir(netns_dir) else {
        return Vec::new();
    };
    let mut found: Vec<(String, Netns)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            Netns::open_path(entry.path()).ok().map(|ns| (name, ns))
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
