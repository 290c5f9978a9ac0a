//! `network create|rm|ls|inspect`: validation, parents, the shared-parent
//! guard and the records.

use std::net::IpAddr;

use ipnet::IpNet;

use super::kernel::{self, KernelVersion};
use super::net::{self, Link, ARPHRD_ETHER};
use super::options::{self, NetworkOptions};
use super::state::{EndpointRecord, EndpointState, NetworkRecord, NetworkState, ParentOrigin};
use super::{
    ipam_glue, random_hex, EndpointInfo, Error, Manager, NetworkCreate, NetworkInfo, SubnetInfo,
};
use crate::netns::Netns;

/// Where the parent of a new network comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ParentPlan {
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

impl Manager {
    pub(crate) fn do_create_network(&self, req: &NetworkCreate) -> Result<NetworkInfo, Error> {
        options::check_driver(&req.driver)?;
        options::check_network_name(&req.name)?;
        let opts = options::parse_options(&req.options)?;
        if req.internal {
            if let Some(parent) = &opts.parent {
                return Err(Error::invalid(format!(
                    "--internal cannot be combined with -o parent={parent}: an internal network gets its own dummy parent and no external connectivity; drop one of the two"
                )));
            }
        }
        let internal = req.internal || opts.parent.is_none();
        let mut subnets = ipam_glue::match_subnets(req)?;

        let state = self.state.lock()?;
        let networks = state.networks()?;
        if networks.iter().any(|n| n.name == req.name) {
            return Err(Error::already_exists(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        ipam_glue::check_overlaps(&subnets, &networks)?;

        // Kernel support before anything is decided about parents, so an
        // old or stripped kernel fails with the clearest message.
        let version = KernelVersion::running()?;
        kernel::check_version(version, opts.mode, opts.flag)?;
        require_kind("ipvlan")?;

        let id = random_hex(32)?;
        let short_id = &id[..12];
        let mut warnings = Vec::new();
        let plan = match &opts.parent {
            None => {
                require_kind("dummy")?;
                ParentPlan::Dummy(format!("di-{short_id}"))
            }
            Some(parent) => plan_parent(parent, &opts, &mut warnings)?,
        };
        if let Some(mtu) = opts.mtu {
            let parent_mtu = match &plan {
                ParentPlan::Existing(link) => Some(link.mtu),
                ParentPlan::Vlan { base, .. } => Some(base.mtu),
                // The dummy we make takes the network's MTU (see
                // `net::create_dummy`); an ipvlan link takes at most
                // ETH_MAX_MTU.
                ParentPlan::Dummy(_) if mtu > ETH_MAX_MTU => {
                    return Err(Error::invalid(format!(
                        "mtu {mtu} is larger than {ETH_MAX_MTU}, the largest MTU of an ipvlan link"
                    )));
                }
                ParentPlan::Dummy(_) => None,
            };
            if let Some(parent_mtu) = parent_mtu.filter(|p| mtu > *p) {
                return Err(Error::invalid(format!(
                    "mtu {mtu} is larger than the MTU {parent_mtu} of parent {}",
                    opts.parent.as_deref().unwrap_or_default()
                )));
            }
        }
        self.check_shared_parent(&plan, &opts, &networks)?;

        // Default subnets: IPv4 always, IPv6 when asked for.
        let ipv6 = req.ipv6 || subnets.iter().any(|s| s.subnet.addr().is_ipv6());
        ipam_glue::add_defaults(&mut subnets, ipv6, &networks, &state)?;
        // Every subnet has a gateway, as in the docs (Docker up to v27): in
        // l3/l3s and internal networks it is reserved but never routed to.
        crate::ipam::fill_default_gateways(&mut subnets);

        let (parent_name, origin) = match &plan {
            // A parent another network of ours created stays ours: whichever
            // network goes last deletes it.
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
        };
        let mut record = NetworkRecord {
            id: id.clone(),
            name: req.name.clone(),
            driver: "ipvlan".into(),
            mode: opts.mode,
            flag: opts.flag,
            parent: parent_name,
            parent_origin: origin,
            internal,
            ipv6,
            mtu: opts.mtu,
            subnets,
            options: req.options.clone(),
            state: NetworkState::Creating,
            created: crate::store::Timestamp::now(),
        };
        // Intent first: a crash from here on leaves a record that restore
        // rolls back (deleting a parent we made).
        state.put_network(&record)?;
        let created = match &plan {
            ParentPlan::Existing(_) => Ok(()),
            ParentPlan::Vlan {
                name,
                base,
                vlan_id,
            } => net::create_vlan(name, base.index, *vlan_id).map(drop),
            ParentPlan::Dummy(name) => net::create_dummy(name, opts.mtu).map(drop),
        };
        if let Err(error) = created {
            let _ = state.delete_network(&record);
            return Err(error);
        }
        record.state = NetworkState::Created;
        if let Err(error) = state.put_network(&record) {
            self.delete_parent_if_ours(&record, &[]);
            let _ = state.delete_network(&record);
            return Err(error);
        }
        let mut info = network_info(&record, Vec::new());
        info.warnings = warnings;
        Ok(info)
    }

    /// Refuses a parent whose ipvlan port already runs another mode or flag.
    fn check_shared_parent(
        &self,
        plan: &ParentPlan,
        opts: &NetworkOptions,
        networks: &[NetworkRecord],
    ) -> Result<(), Error> {
        let link = match plan {
            ParentPlan::Existing(link) => link,
            // A new VLAN link or dummy carries no port yet; a network of
            // ours recorded on the same VLAN name is checked by name.
            ParentPlan::Vlan { name, .. } => {
                return check_recorded_networks(name, opts, networks);
            }
            ParentPlan::Dummy(_) => return Ok(()),
        };
        // A parent that is itself an ipvlan link shares its master's port.
        let port = match (&link.ipvlan, link.parent_index) {
            (Some(_), Some(master)) if link.link_netnsid.is_none() => {
                net::link_by_index(None, master)?.unwrap_or_else(|| link.clone())
            }
            _ => link.clone(),
        };
        for network in networks {
            let same_port = network.parent == port.name
                || network.parent == link.name
                || net::link_by_name(None, &network.parent)?
                    .filter(|l| l.link_netnsid.is_none())
                    .and_then(|l| l.ipvlan.and(l.parent_index))
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
        // link's parent is a host link only without IFLA_LINK_NETNSID, and
        // a link elsewhere sits on a host link only when its
        // IFLA_LINK_NETNSID is the id that namespace gives the host (else
        // its parent lives in its own or a third namespace, where the same
        // index is another link).
        let mut foreign = Vec::new();
        for host_link in net::links(None)? {
            if host_link.link_netnsid.is_none() {
                foreign.push((host_link, "the host namespace".to_string()));
            }
        }
        for (name, ns) in self.named_namespaces() {
            // Without an answer, any link with a peer namespace counts.
            let host_id = net::host_nsid_in(&ns);
            if let Ok(links) = net::links(Some(&ns)) {
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
            let Some((mode, flag)) = other.ipvlan else {
                continue;
            };
            if other.parent_index == Some(port.index)
                && other.index != link.index
                && (mode != opts.mode || flag != opts.flag)
            {
                return Err(Error::in_use(format!(
                    "parent interface {} carries ipvlan link {} in {place} with mode {} and flag {}; a network on the same parent must use the same mode and flag",
                    port.name,
                    other.name,
                    mode.as_str(),
                    flag.as_str()
                )));
            }
        }
        Ok(())
    }

    /// Every namespace under the netns directory that opens.
    pub(crate) fn named_namespaces(&self) -> Vec<(String, Netns)> {
        let Ok(entries) = std::fs::read_dir(&self.config.netns_dir) else {
            return Vec::new();
        };
        let mut found: Vec<(String, Netns)> = entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                Netns::open_path(entry.path()).ok().map(|ns| (name, ns))
            })
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    pub(crate) fn do_remove_network(&self, name_or_id: &str) -> Result<(), Error> {
        let state = self.state.lock()?;
        let networks = state.networks()?;
        let mut record = find_network(&networks, name_or_id)?.clone();
        let endpoints = state.endpoints(&record.id)?;
        if !endpoints.is_empty() {
            let names: Vec<String> = endpoints.iter().map(endpoint_label).collect();
            return Err(Error::in_use(format!(
                "network {} has active endpoints ({}); disconnect or remove them first",
                record.name,
                names.join(", ")
            )));
        }
        record.state = NetworkState::Removing;
        state.put_network(&record)?;
        let others: Vec<NetworkRecord> =
            networks.into_iter().filter(|n| n.id != record.id).collect();
        self.delete_parent_if_ours(&record, &others);
        let _ = std::fs::remove_file(state.hosts_path(&record.id));
        state.delete_network(&record)
    }

    /// Deletes the parent when we created it and no other network uses it.
    /// Failures are ignored: the network goes anyway, as with Docker.
    pub(crate) fn delete_parent_if_ours(&self, record: &NetworkRecord, others: &[NetworkRecord]) {
        if record.parent_origin == ParentOrigin::Existing
            || others.iter().any(|n| n.parent == record.parent)
        {
            return;
        }
        if let Ok(Some(link)) = net::link_by_name(None, &record.parent) {
            let kind_matches = match &record.parent_origin {
                ParentOrigin::DummyCreated => link.kind.as_deref() == Some("dummy"),
                ParentOrigin::VlanCreated { vlan_id, .. } => {
                    link.kind.as_deref() == Some("vlan") && link.vlan_id == Some(*vlan_id)
                }
                ParentOrigin::Existing => false,
            };
            if kind_matches {
                let _ = net::delete_link(None, link.index);
            }
        }
    }

    pub(crate) fn do_networks(&self) -> Result<Vec<NetworkInfo>, Error> {
        let state = self.state.lock()?;
        let mut infos = Vec::new();
        for record in state.networks()? {
            let endpoints = state.endpoints(&record.id)?;
            infos.push(network_info(&record, endpoints));
        }
        Ok(infos)
    }

    pub(crate) fn do_network(&self, name_or_id: &str) -> Result<NetworkInfo, Error> {
        let state = self.state.lock()?;
        let networks = state.networks()?;
        let record = find_network(&networks, name_or_id)?;
        let endpoints = state.endpoints(&record.id)?;
        Ok(network_info(record, endpoints))
    }
}

/// `ETH_MAX_MTU`: the largest MTU of an ipvlan link.
const ETH_MAX_MTU: u32 = 65535;

fn require_kind(kind: &str) -> Result<(), Error> {
    if net::kind_supported(kind)? {
        Ok(())
    } else {
        Err(Error::unsupported(kernel::missing_kind_message(kind)))
    }
}

fn plan_parent(
    parent: &str,
    opts: &NetworkOptions,
    warnings: &mut Vec<String>,
) -> Result<ParentPlan, Error> {
    let _ = opts;
    if let Some(link) = net::link_by_name(None, parent)? {
        if link.link_type != ARPHRD_ETHER {
            return Err(Error::invalid(format!(
                "interface {parent} is not an Ethernet device and cannot be an ipvlan parent link"
            )));
        }
        if !link.up {
            warnings.push(format!(
                "parent interface {parent} is down; containers on this network have no connectivity until it is up"
            ));
        }
        return Ok(ParentPlan::Existing(link));
    }
    let (base_name, id_text) = options::parse_vlan_parent(parent)?;
    let Some(base) = net::link_by_name(None, &base_name)? else {
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
    require_kind("vlan")?;
    if !base.up {
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

/// By exact name, exact ID, or unique ID prefix.
pub(crate) fn find_network<'a>(
    networks: &'a [NetworkRecord],
    name_or_id: &str,
) -> Result<&'a NetworkRecord, Error> {
    let usable = || {
        networks
            .iter()
            .filter(|n| n.state != NetworkState::Creating)
    };
    if let Some(network) = usable().find(|n| n.name == name_or_id || n.id == name_or_id) {
        return Ok(network);
    }
    let mut by_prefix = usable().filter(|n| !name_or_id.is_empty() && n.id.starts_with(name_or_id));
    match (by_prefix.next(), by_prefix.next()) {
        (Some(network), None) => Ok(network),
        (Some(_), Some(_)) => Err(Error::invalid(format!(
            "network {name_or_id} is ambiguous: several network IDs start with it"
        ))),
        _ => Err(Error::not_found(format!("network {name_or_id} not found"))),
    }
}

pub(crate) fn endpoint_label(endpoint: &EndpointRecord) -> String {
    endpoint
        .container
        .clone()
        .unwrap_or_else(|| endpoint.netns.clone())
}

pub(crate) fn endpoint_info(network: &NetworkRecord, endpoint: &EndpointRecord) -> EndpointInfo {
    EndpointInfo {
        endpoint_id: endpoint.id.clone(),
        network: network.name.clone(),
        network_id: network.id.clone(),
        container: endpoint_label(endpoint),
        netns_path: endpoint.netns.clone().into(),
        ifname: endpoint.ifname.clone(),
        ipv4: match endpoint.ipv4 {
            Some(IpNet::V4(net)) => Some(net),
            _ => None,
        },
        ipv6: match endpoint.ipv6 {
            Some(IpNet::V6(net)) => Some(net),
            _ => None,
        },
        mac: endpoint.mac.clone().unwrap_or_default(),
    }
}

pub(crate) fn network_info(record: &NetworkRecord, endpoints: Vec<EndpointRecord>) -> NetworkInfo {
    let mut subnets: Vec<SubnetInfo> = record.subnets.clone();
    // IPv4 first, as Docker lists them.
    subnets.sort_by_key(|s| matches!(s.subnet.addr(), IpAddr::V6(_)));
    NetworkInfo {
        id: record.id.clone(),
        name: record.name.clone(),
        created: record.created,
        driver: "ipvlan".into(),
        mode: record.mode,
        flag: record.flag,
        parent: record.parent.clone(),
        parent_created: record.parent_origin != ParentOrigin::Existing,
        mtu: record.mtu,
        internal: record.internal,
        ipv6: record.ipv6,
        options: record.options.clone(),
        subnets,
        endpoints: endpoints
            .iter()
            .filter(|e| e.state == EndpointState::Attached)
            .map(|e| endpoint_info(record, e))
            .collect(),
        warnings: Vec::new(),
    }
}
