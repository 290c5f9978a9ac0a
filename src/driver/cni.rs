//! What the CNI front end asks of the driver: the network record of a CNI
//! config, and ADD, DEL, CHECK and GC of one attachment. The front end
//! builds no netlink message and no store path; the state model is in
//! `crate::cni`'s docs.
//!
//! A CNI network is an ordinary network record with one more option,
//! [`CNI_MARK`], holding the config keys that must not change while
//! attachments are live. Its endpoints are ordinary endpoint records
//! whose id is [`attachment_id`] of (container id, ifname), so DEL finds
//! one without its namespace; their addresses are leased to that id.

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

use super::endpoint_link::{self, DefaultRoute, EndpointPlan};
use super::netns_identity::OpenNetns;
use super::networks::find_network;
use super::report::RestoreReport;
use super::{parent, Error, ErrorKind, IpvlanFlag, IpvlanMode, Manager, NetworkCreate};
use crate::ipam::{IpFamily, Request};
use crate::netns::Netns;
use crate::rtnl::{Handle, Link, LinkData};
use crate::store::{EndpointRecord, EndpointState, Locked, NetworkRecord, ParentOrigin, Timestamp};

/// The record option that marks a network as made by CNI ADD; its value
/// is the config's [`CniNetwork::config`].
pub const CNI_MARK: &str = "cni.config";

/// Prefix of the endpoint ids of CNI attachments.
const ID_PREFIX: &str = "cni-";

/// A CNI network as its config describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniNetwork {
    /// The config's `name`: the network record's name.
    pub name: String,
    /// `master`; `None`: the interface of the host's default route.
    pub master: Option<String>,
    /// `mode`.
    pub mode: IpvlanMode,
    /// `flag`.
    pub flag: IpvlanFlag,
    /// `mtu`, checked against the master.
    pub mtu: Option<u32>,
    /// Our IPAM's ranges: subnet and gateway (none for a delegated IPAM).
    pub subnets: Vec<(IpNet, Option<IpAddr>)>,
    /// The keys a second config of the same name must repeat, as one text
    /// (compared whole; shown by `network inspect` as the mark's value).
    pub config: String,
}

/// Where an attachment's addresses come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CniAddresses {
    /// Our allocator: one address per family of the network's subnets,
    /// these exact ones first (`runtimeConfig.ips`, `CNI_ARGS` `IP=`).
    Allocate(Vec<IpAddr>),
    /// Given by a delegated IPAM plugin: recorded, not leased.
    Given(Vec<IpNet>),
}

/// One ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniAttach<'a> {
    /// `CNI_CONTAINERID`.
    pub container_id: &'a str,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// `CNI_NETNS`.
    pub netns: &'a Path,
    /// The addresses.
    pub addresses: CniAddresses,
    /// Routes through the link: destination and next hop (`None`: the
    /// gateway of the address of its family, when there is one).
    pub routes: Vec<(IpNet, Option<IpAddr>)>,
}

/// What ADD built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniAttached {
    /// The link's name in the namespace.
    pub ifname: String,
    /// Its MAC (the master's).
    pub mac: String,
    /// Its addresses, each with its subnet's gateway.
    pub addresses: Vec<(IpNet, Option<IpAddr>)>,
}

/// What CHECK found in the namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniLinkState {
    /// The link's kind (`ipvlan` when it is one).
    pub kind: Option<String>,
    /// Its MAC.
    pub mac: String,
    /// Its ipvlan mode and flag as the kernel reports them (`l2`,
    /// `bridge`, ...); `None` when it is not an ipvlan link.
    pub ipvlan: Option<(String, String)>,
    /// Its global addresses.
    pub addresses: Vec<IpNet>,
    /// The routes through it: destination and next hop.
    pub routes: Vec<(IpNet, Option<IpAddr>)>,
}

/// The endpoint id of the attachment (`container_id`, `ifname`): the key
/// runtimes use, hashed to a fixed-length file name (container ids may be
/// long, interface names may hold characters file names here may not).
///
/// ```
/// let id = ipvlan::driver::attachment_id("abc", "eth0");
/// assert!(id.starts_with("cni-") && id.len() == 36);
/// assert_ne!(id, ipvlan::driver::attachment_id("abc", "eth1"));
/// ```
pub fn attachment_id(container_id: &str, ifname: &str) -> String {
    // FNV-1a twice, with different offsets: 128 bits, no dependency.
    let hash = |offset: u64| {
        let mut h = offset;
        for b in container_id.bytes().chain([0]).chain(ifname.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    };
    format!(
        "{ID_PREFIX}{:016x}{:016x}",
        hash(0xcbf2_9ce4_8422_2325),
        hash(0x6c62_272e_07bb_0142)
    )
}

/// Why [`Manager::cni_add`] failed: the config (CNI code 7), or anything
/// else (the reference's 999).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CniAddError {
    /// The config cannot be served: another config of the name has live
    /// attachments, a CLI network has the name, a value the network
    /// cannot take.
    Config(Error),
    /// Anything else.
    Failed(Error),
}

impl From<Error> for CniAddError {
    fn from(error: Error) -> CniAddError {
        CniAddError::Failed(error)
    }
}

impl From<crate::store::StoreError> for CniAddError {
    fn from(error: crate::store::StoreError) -> CniAddError {
        CniAddError::Failed(error.into())
    }
}

impl From<crate::netlink::Error> for CniAddError {
    fn from(error: crate::netlink::Error) -> CniAddError {
        CniAddError::Failed(error.into())
    }
}

impl std::fmt::Display for CniAddError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CniAddError::Config(error) | CniAddError::Failed(error) => error.fmt(f),
        }
    }
}

fn ifname_taken(attach: &CniAttach<'_>) -> Error {
    Error::already_exists(format!(
        "interface {} already exists in {}; nothing was done",
        attach.ifname,
        attach.netns.display()
    ))
}

/// The config a network was made from by CNI ADD, if it was.
fn cni_config(network: &NetworkRecord) -> Option<&str> {
    network
        .options
        .iter()
        .find(|(key, _)| key == CNI_MARK)
        .map(|(_, value)| value.as_str())
}

/// Whether CNI ADD made the network.
pub(crate) fn is_cni(network: &NetworkRecord) -> bool {
    cni_config(network).is_some()
}

/// Deletes the `NAME.VLANID` masters we made for CNI networks left
/// without attachments (by `restore`, after their namespaces vanished).
pub(crate) fn drop_idle_parents(host: &Handle, state: &Locked<'_>, networks: &[NetworkRecord]) {
    for network in networks.iter().filter(|n| is_cni(n)) {
        if !matches!(network.parent_origin, ParentOrigin::VlanCreated { .. }) {
            continue;
        }
        if state
            .endpoints_of(&network.id)
            .is_ok_and(|e| e.is_empty() && e.damaged.is_empty())
        {
            let others: Vec<NetworkRecord> = networks
                .iter()
                .filter(|n| n.id != network.id)
                .cloned()
                .collect();
            parent::delete_if_ours(host, network, &others);
        }
    }
}

/// A failure of [`Manager::cni_network`]: the config's fault (code 7) when
/// the network cannot take it, else a runtime failure.
fn network_error(error: Error) -> CniAddError {
    match error.kind() {
        ErrorKind::InvalidValue | ErrorKind::AlreadyExists | ErrorKind::InUse => {
            CniAddError::Config(error)
        }
        _ => CniAddError::Failed(error),
    }
}

/// An error the front end reports as an invalid config (CNI code 7).
fn config_error(message: String) -> Error {
    Error::new(ErrorKind::InvalidValue, message)
}

impl Manager {
    /// The network record of `net`: made when missing (as `network create`
    /// makes one, with its checks: overlaps, the shared-parent guard, the
    /// MTU against the master; a `NAME.VLANID` master created and recorded
    /// as ours), made again when its config changed and no attachment is
    /// live. Refused ([`ErrorKind::InvalidValue`], CNI code 7) when a CLI
    /// network has the name or the config differs while attachments live.
    pub fn cni_network(&self, net: &CniNetwork) -> Result<(), Error> {
        // Two first ADDs at once: one creates, the other finds it.
        for _ in 0..3 {
            let existing = self.store.network_by_name(&net.name);
            if let Some(record) = existing {
                match cni_config(&record) {
                    None => {
                        return Err(config_error(format!(
                            "network {} exists and was not made by CNI (a `network create` network); choose another name",
                            net.name
                        )))
                    }
                    Some(config) if config == net.config => return Ok(()),
                    Some(config) => {
                        let live = self.store.endpoints_of(&record.id)?;
                        if !live.is_empty() {
                            return Err(config_error(format!(
                                "network {} has {} attachment(s) made with another config ({config}); this one has {}: DEL them first or use another name",
                                net.name,
                                live.len(),
                                net.config
                            )));
                        }
                        match self.remove_network(&record.id) {
                            Ok(_) => {}
                            Err(error) if error.kind() == ErrorKind::NotFound => {}
                            Err(error) => return Err(error),
                        }
                    }
                }
            }
            let mut req = NetworkCreate::new(net.name.clone());
            for (subnet, gateway) in &net.subnets {
                req.subnets.push(*subnet);
                req.gateways.extend(gateway);
            }
            if let Some(master) = &net.master {
                req.options.push(("parent".into(), master.clone()));
            } else {
                req.options
                    .push(("parent".into(), default_route_link(&Handle::new()?)?));
            }
            req.options
                .push(("ipvlan_mode".into(), net.mode.as_str().into()));
            req.options
                .push(("ipvlan_flag".into(), net.flag.as_str().into()));
            if let Some(mtu) = net.mtu {
                req.options.push(("mtu".into(), mtu.to_string()));
            }
            match self.create_network_marked(&req, Some((CNI_MARK, &net.config))) {
                Ok(_) => return Ok(()),
                Err(error) if error.kind() == ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(error),
            }
        }
        Err(Error::failed(format!(
            "network {} was created and removed meanwhile, again and again; try again",
            net.name
        )))
    }

    /// ADD: the ipvlan link `attach.ifname` in `attach.netns` on the
    /// network of `net` (made or checked by [`Manager::cni_network`] once
    /// the namespace is known good, so a bad `CNI_NETNS` makes nothing),
    /// its addresses and routes. Refused before anything is made when the
    /// namespace has a link of that name or the attachment exists; any
    /// later failure undoes all of it (link, leases, record).
    pub fn cni_add(
        &self,
        net: &CniNetwork,
        attach: &CniAttach<'_>,
    ) -> Result<CniAttached, CniAddError> {
        let ns = Netns::open_path(attach.netns).map_err(|e| {
            Error::io(
                format!("opening network namespace {}", attach.netns.display()),
                &e,
            )
        })?;
        let inside = OpenNetns::with_handle(ns)?;
        let identity = inside.identity()?;
        // Asked again under the lock; here so that nothing, not even the
        // network record, is made for a namespace that cannot take it.
        if inside.handle.link_by_name(attach.ifname)?.is_some() {
            return Err(ifname_taken(attach).into());
        }
        self.cni_network(net).map_err(network_error)?;
        let network = net.name.as_str();
        let id = attachment_id(attach.container_id, attach.ifname);
        let state = self.store.lock()?;
        let networks = state.networks()?;
        let network = find_network(&networks, network)?.clone();
        match cni_config(&network) {
            None => {
                return Err(CniAddError::Config(config_error(format!(
                    "network {} was not made by CNI",
                    network.name
                ))))
            }
            // Made again for another config since `cni_network` looked.
            Some(config) if config != net.config => {
                return Err(CniAddError::Config(config_error(format!(
                    "network {} was made again meanwhile with another config ({config}); this one has {}",
                    network.name, net.config
                ))))
            }
            Some(_) => {}
        }
        if state.endpoint(&network.id, &id)?.is_some() {
            return Err(Error::already_exists(format!(
                "container {} already has {} on network {}; DEL it first",
                attach.container_id, attach.ifname, network.name
            ))
            .into());
        }
        if inside.handle.link_by_name(attach.ifname)?.is_some() {
            return Err(ifname_taken(attach).into());
        }
        let host = Handle::new()?;
        let parent = self.cni_parent(&host, &network)?;

        let addresses = match &attach.addresses {
            CniAddresses::Allocate(wanted) => allocate(&state, &network, wanted, &id)?,
            CniAddresses::Given(given) => given.clone(),
        };
        let leased = matches!(attach.addresses, CniAddresses::Allocate(_));
        let give_back = |state: &Locked<'_>| {
            if leased {
                let _ = state.release_owner(&network, &id);
            }
        };
        let ipv4 = addresses.iter().copied().find(|a| a.addr().is_ipv4());
        let ipv6 = addresses.iter().copied().find(|a| a.addr().is_ipv6());
        let gateway = |address: &IpNet| {
            network
                .subnets
                .iter()
                .find(|s| s.subnet.contains(&address.addr()))
                .and_then(|s| s.gateway)
        };
        let mut plan = EndpointPlan::new(
            &network,
            &parent,
            ipv4.or(ipv6).unwrap_or(IpNet::V4(Default::default())),
            ipv6,
        );
        plan.ipv4 = match ipv4 {
            Some(IpNet::V4(net)) => Some(net),
            _ => None,
        };
        plan.ipv6 = match ipv6 {
            Some(IpNet::V6(net)) => Some(net),
            _ => None,
        };
        plan.arp_notify = true;
        // A CNI result names every route; none is implied.
        plan.route4 = DefaultRoute::None;
        plan.route6 = DefaultRoute::None;
        plan.routes = attach
            .routes
            .iter()
            .map(|&(dst, gw)| {
                let family_gw = addresses
                    .iter()
                    .filter(|a| a.addr().is_ipv4() == dst.addr().is_ipv4())
                    .find_map(&gateway);
                (dst, gw.or(family_gw))
            })
            .collect();
        let mut record = EndpointRecord {
            id: id.clone(),
            network_id: network.id.clone(),
            container: None,
            netns: attach.netns.display().to_string(),
            ifname: attach.ifname.to_string(),
            mac: None,
            ipv4,
            ipv6,
            state: EndpointState::Attaching,
            created: Timestamp::now(),
            netns_id: Some(identity),
            ifindex: None,
        };
        if let Err(error) = state.put_endpoint(&record) {
            give_back(&state);
            return Err(Error::from(error).into());
        }
        let built = match endpoint_link::create(&host, &inside, &plan, attach.ifname) {
            Ok(built) => built,
            Err(error) => {
                let _ = state.remove_endpoint(&network.id, &id);
                give_back(&state);
                self.drop_parent_if_idle(&host, &state, &network);
                return Err(error
                    .context(format!(
                        "attaching {} to network {}",
                        attach.netns.display(),
                        network.name
                    ))
                    .into());
            }
        };
        record.mac = Some(built.mac.clone());
        record.ifindex = Some(built.index);
        record.state = EndpointState::Attached;
        let done = state.put_endpoint(&record).and_then(|()| state.commit());
        if let Err(error) = done {
            let _ = inside.handle.link_del(built.index);
            let _ = state.remove_endpoint(&network.id, &id);
            give_back(&state);
            return Err(Error::from(error).into());
        }
        Ok(CniAttached {
            ifname: built.ifname,
            mac: built.mac,
            addresses: addresses.iter().map(|a| (*a, gateway(a))).collect(),
        })
    }

    /// Refuses, before a delegated IPAM plugin allocates anything, what
    /// would make the ADD fail after it: a namespace that cannot be
    /// opened or holds a link named `ifname` already, a master that does
    /// not exist (nor, for a `NAME.VLANID` one, the link to make it on),
    /// no default route when `net` names no master, a config the network
    /// cannot take (made or checked as [`Manager::cni_network`] does: the
    /// MTU against the master, another config with live attachments, the
    /// shared-parent guard). Bad input thus costs the plugin nothing, not
    /// even its cursor; the reference plugin looks its master up before
    /// its IPAM runs too. [`Manager::cni_add`] asks again. Should the
    /// plugin then fail, [`Manager::cni_drop_idle_master`] removes a
    /// `NAME.VLANID` master made here.
    pub fn cni_check_target(
        &self,
        net: &CniNetwork,
        netns: &Path,
        ifname: &str,
    ) -> Result<(), CniAddError> {
        let ns = Netns::open_path(netns)
            .map_err(|e| Error::io(format!("opening network namespace {}", netns.display()), &e))?;
        let inside = OpenNetns::with_handle(ns)?;
        if inside.handle.link_by_name(ifname)?.is_some() {
            return Err(Error::already_exists(format!(
                "interface {ifname} already exists in {}; nothing was done",
                netns.display()
            ))
            .into());
        }
        self.cni_master_ready(net.master.as_deref())?;
        self.cni_network(net).map_err(network_error)
    }

    /// Deletes the `NAME.VLANID` master made for CNI network `network` if
    /// no attachment uses it (after a delegated IPAM plugin failed the ADD
    /// that made it). Best effort, as a master left is re-used.
    pub fn cni_drop_idle_master(&self, network: &str) {
        let (Ok(state), Ok(host)) = (self.store.lock(), Handle::new()) else {
            return;
        };
        let Ok(networks) = state.networks() else {
            return;
        };
        if let Some(record) = networks.iter().find(|n| n.name == network) {
            self.drop_parent_if_idle(&host, &state, record);
        }
    }

    /// Whether ADD would find `master` (STATUS asks this too): it exists,
    /// or, for a `NAME.VLANID` one, the link to make it on; or, when none
    /// is named, the host has a default route.
    pub fn cni_master_ready(&self, master: Option<&str>) -> Result<(), Error> {
        let host = Handle::new()?;
        match master {
            None => {
                default_route_link(&host)?;
            }
            Some(master) => {
                if host.link_by_name(master)?.is_none() {
                    let base = super::options::parse_vlan_parent(master)
                        .ok()
                        .map(|(base, _)| base);
                    let base_there = match &base {
                        Some(base) => host.link_by_name(base)?.is_some(),
                        None => false,
                    };
                    if !base_there {
                        return Err(Error::not_found(match base {
                            Some(base) => {
                                format!("master {master} does not exist, nor {base} to make it on")
                            }
                            None => format!("master {master} does not exist"),
                        }));
                    }
                }
            }
        }
        Ok(())
    }

    /// DEL: idempotent. Deletes the link named `ifname` in `netns` (when
    /// given and still there) only if it is an ipvlan link, whoever made
    /// it; releases the attachment's leases and record; deletes a
    /// `NAME.VLANID` master we made with its last attachment. A network,
    /// namespace or attachment that is gone is success. Returns what was
    /// left alone, and why.
    pub fn cni_del(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
        netns: Option<&Path>,
    ) -> Result<Vec<String>, Error> {
        let mut notes = Vec::new();
        // The link first, without the lock or the master: DEL never needs
        // the master, and a link made by the reference plugin goes too.
        if let Some(path) = netns {
            if let Ok(ns) = Netns::open_path(path) {
                let inside = OpenNetns::with_handle(ns)?;
                if let Some(link) = inside.handle.link_by_name(ifname)? {
                    if link.kind.as_deref() == Some("ipvlan") {
                        match inside.handle.link_del(link.index) {
                            Ok(()) => {}
                            Err(error) if error.is_not_found() => {}
                            Err(error) => return Err(error.into()),
                        }
                    } else {
                        notes.push(format!(
                            "{ifname} in {} is not an ipvlan link ({}); left in place",
                            path.display(),
                            link.kind.as_deref().unwrap_or("no kind")
                        ));
                    }
                }
            }
        }
        let Some(record) = self.store.network_by_name(network) else {
            return Ok(notes);
        };
        let id = attachment_id(container_id, ifname);
        let state = self.store.lock()?;
        let Some(network) = state.network(&record.id)? else {
            return Ok(notes);
        };
        if let Some(mut endpoint) = state.endpoint(&network.id, &id)? {
            endpoint.state = EndpointState::Detaching;
            state.put_endpoint(&endpoint)?;
            for address in endpoint.ipv4.iter().chain(endpoint.ipv6.iter()) {
                state.release_if_owner(&network, address.addr(), &id)?;
            }
            state.remove_endpoint(&network.id, &id)?;
            self.drop_parent_if_idle(&Handle::new()?, &state, &network);
            state.commit()?;
        } else if !state.release_owner(&network, &id)?.is_empty() {
            // An ADD killed between its leases and its record: the leases
            // name the attachment, nothing else does.
            state.commit()?;
        }
        Ok(notes)
    }

    /// CHECK: the attachment is recorded, and what the namespace holds
    /// under `ifname` (the front end compares it with the cached result).
    pub fn cni_check(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
        netns: &Path,
    ) -> Result<CniLinkState, Error> {
        let record = self
            .store
            .network_by_name(network)
            .ok_or_else(|| Error::not_found(format!("network {network} does not exist")))?;
        let id = attachment_id(container_id, ifname);
        if self.store.endpoint(&record.id, &id)?.is_none() {
            return Err(Error::not_found(format!(
                "container {container_id} has no attachment {ifname} on network {network}"
            )));
        }
        let ns = Netns::open_path(netns)
            .map_err(|e| Error::io(format!("opening network namespace {}", netns.display()), &e))?;
        let inside = OpenNetns::with_handle(ns)?;
        let link = inside
            .handle
            .link_by_name(ifname)?
            .ok_or_else(|| Error::not_found(format!("no link {ifname} in {}", netns.display())))?;
        let addresses = inside
            .handle
            .addrs_of(link.index)?
            .into_iter()
            .filter(|a| a.scope == 0)
            .map(|a| a.net)
            .collect();
        let mut routes = Vec::new();
        for family in [IpFamily::V4, IpFamily::V6] {
            for route in inside.handle.routes(family)? {
                if route.oif == Some(link.index) {
                    routes.push((route.dst, route.gateway));
                }
            }
        }
        let ipvlan = match &link.data {
            LinkData::Ipvlan { mode, flag } => Some((mode.to_string(), flag.to_string())),
            _ => None,
        };
        Ok(CniLinkState {
            kind: link.kind.clone(),
            mac: link.mac_text(),
            ipvlan,
            addresses,
            routes,
        })
    }

    /// GC: every attachment of CNI network `network` not in `valid`
    /// (container id, ifname) goes as by [`Manager::cni_del`], its
    /// namespace as recorded. Returns what was left alone.
    pub fn cni_gc(&self, network: &str, valid: &[(String, String)]) -> Result<Vec<String>, Error> {
        let Some(record) = self.store.network_by_name(network) else {
            return Ok(Vec::new());
        };
        let keep: Vec<String> = valid.iter().map(|(c, i)| attachment_id(c, i)).collect();
        let mut notes = Vec::new();
        for endpoint in self.store.endpoints_of(&record.id)?.items {
            if !endpoint.id.starts_with(ID_PREFIX) || keep.contains(&endpoint.id) {
                continue;
            }
            notes.extend(self.cni_gc_one(&record, &endpoint)?);
        }
        Ok(notes)
    }

    fn cni_gc_one(
        &self,
        network: &NetworkRecord,
        endpoint: &EndpointRecord,
    ) -> Result<Vec<String>, Error> {
        let mut notes = Vec::new();
        if let Ok(ns) = Netns::open_path(Path::new(&endpoint.netns)) {
            let inside = OpenNetns::with_handle(ns)?;
            if endpoint
                .netns_id
                .is_some_and(|id| inside.identity().is_ok_and(|now| id.same_namespace(&now)))
            {
                let parent = Handle::new()?.link_by_name(&network.parent)?;
                let removal = endpoint_link::delete_checked(
                    &inside,
                    endpoint.ifindex,
                    &endpoint.ifname,
                    parent.as_ref(),
                    endpoint.mac.as_deref(),
                )?;
                if let endpoint_link::LinkRemoval::NotOurs(why) = removal {
                    notes.push(why);
                }
            }
        }
        let state = self.store.lock()?;
        state.release_owner(network, &endpoint.id)?;
        state.remove_endpoint(&network.id, &endpoint.id)?;
        self.drop_parent_if_idle(&Handle::new()?, &state, network);
        state.commit()?;
        Ok(notes)
    }

    /// The network's master, re-made when it is a `NAME.VLANID` of ours
    /// that its last DEL removed.
    fn cni_parent(&self, host: &Handle, network: &NetworkRecord) -> Result<Link, Error> {
        if let Some(link) = host.link_by_name(&network.parent)? {
            return Ok(link);
        }
        if matches!(network.parent_origin, ParentOrigin::VlanCreated { .. }) {
            let mut report = RestoreReport::default();
            if let Some(link) = parent::restore(host, network, &mut report)? {
                return Ok(link);
            }
        }
        Err(Error::not_found(format!(
            "master {} of network {} does not exist",
            network.parent, network.name
        )))
    }

    /// Deletes the `NAME.VLANID` master we made for a CNI network once no
    /// attachment and no other network uses it (best effort: a master
    /// left over is re-used by the next ADD).
    fn drop_parent_if_idle(&self, host: &Handle, state: &Locked<'_>, network: &NetworkRecord) {
        if !matches!(network.parent_origin, ParentOrigin::VlanCreated { .. }) {
            return;
        }
        let idle = state.endpoints_of(&network.id).is_ok_and(|e| e.is_empty());
        let Ok(networks) = state.networks() else {
            return;
        };
        let others: Vec<NetworkRecord> = networks
            .items
            .into_iter()
            .filter(|n| n.id != network.id)
            .collect();
        if idle {
            parent::delete_if_ours(host, network, &others);
        }
    }
}

/// The interface of the host's IPv4 default route (the reference plugin's
/// choice when `master` is not set).
fn default_route_link(host: &Handle) -> Result<String, Error> {
    let route = host
        .routes(IpFamily::V4)?
        .into_iter()
        .find(|r| r.is_default() && r.oif.is_some());
    // Not the config's fault: the host lacks the route (the reference's
    // 999 too).
    let index = route.and_then(|r| r.oif).ok_or_else(|| {
        Error::not_found(
            "no master given and the host has no IPv4 default route to take it from".to_string(),
        )
    })?;
    let link = host.link_by_index(index)?.ok_or_else(|| {
        Error::failed(format!(
            "the default route's interface (index {index}) vanished"
        ))
    })?;
    Ok(link.name)
}

/// Leases one address per family of the network's subnets to `owner`:
/// the `wanted` ones first, then the next free. On failure none stays.
fn allocate(
    state: &Locked<'_>,
    network: &NetworkRecord,
    wanted: &[IpAddr],
    owner: &str,
) -> Result<Vec<IpNet>, Error> {
    let mut families: Vec<IpFamily> = Vec::new();
    for subnet in &network.subnets {
        let family = IpFamily::of(subnet.subnet.addr());
        if !families.contains(&family) {
            families.push(family);
        }
    }
    let mut requests: Vec<Request> = wanted.iter().map(|a| Request::Exact(*a)).collect();
    for family in families {
        if !wanted.iter().any(|a| IpFamily::of(*a) == family) {
            requests.push(Request::Any(family));
        }
    }
    let mut taken = Vec::new();
    for request in requests {
        match state.allocate(network, request, owner) {
            Ok(address) => taken.push(address),
            Err(error) => {
                let _ = state.release_owner(network, owner);
                return Err(error.into());
            }
        }
    }
    Ok(taken)
}
