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
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use super::bounds::{allocate_within, outside_bounds, refuse_bounds_without_room};
use super::endpoint_link::{self, BuiltEndpoint, DefaultRoute, EndpointPlan, ResultRoute};
use super::endpoints::{keep_for_restore, keeping_cursors, under_detach_intent};
use super::kernel_support::refuse_what_the_kernel_lacks;
use super::netns_identity::{self, NsAt, OpenNetns};
use super::options::{cni_config, CNI_ID_PREFIX as ID_PREFIX, CNI_LEASE_PREFIX as LEASE_PREFIX};
use super::report::RestoreReport;
use super::{parent, subnets, Error, ErrorKind, IpvlanFlag, IpvlanMode, Manager, NetworkCreate};
use crate::ipam::{IpFamily, Request, SubnetSpec};
use crate::netns::Netns;
use crate::rtnl::{Handle, Link, LinkData};
use crate::store::{
    EndpointHold, EndpointRecord, EndpointState, Listing, Locked, NetworkRecord, NetworkState,
    ParentOrigin, StoreError, Timestamp,
};

/// The record option that marks a network as made by CNI ADD; its value
/// is the config's [`CniNetwork::config`].
pub const CNI_MARK: &str = super::options::CNI_MARK;

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
    /// `linkInContainer`: the master (named, or the default route's
    /// interface) is looked up in the container's namespace and the link
    /// made from there; the network record then has no master.
    pub link_in_container: bool,
    /// Our IPAM's ranges: subnet and gateway (none for a delegated IPAM).
    pub subnets: Vec<(IpNet, Option<IpAddr>)>,
    /// host-local's `rangeStart` and `rangeEnd` of a subnet of `subnets`
    /// (inclusive): addresses handed out automatically stay within them,
    /// asked-for ones must lie within them.
    pub bounds: Vec<(IpNet, IpAddr, IpAddr)>,
    /// The keys a second config of the same name must repeat, as one text
    /// (compared whole; shown by `network inspect` as the mark's value).
    pub config: String,
    /// The end of `config` that names the IPAM type and ranges: what a
    /// lease-only user (our binary as another plugin's IPAM) must repeat
    /// to share the network's addresses.
    pub ipam_config: String,
}

/// One ADD of our binary as another plugin's IPAM: addresses leased to
/// (`container_id`, `ifname`), no link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniLease<'a> {
    /// `CNI_CONTAINERID`.
    pub container_id: &'a str,
    /// `CNI_IFNAME`.
    pub ifname: &'a str,
    /// `CNI_NETNS`, recorded so that `restore` collects the lease once the
    /// namespace is gone.
    pub netns: Option<&'a Path>,
    /// Addresses asked for (`runtimeConfig.ips`, `CNI_ARGS` `IP=`).
    pub wanted: Vec<IpAddr>,
}

/// Where an attachment's addresses come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CniAddresses {
    /// Our allocator: one address per family of the network's subnets,
    /// these exact ones first (`runtimeConfig.ips`, `CNI_ARGS` `IP=`).
    Allocate(Vec<IpAddr>),
    /// Given by a chained `prevResult`: recorded, not leased.
    Given(Vec<IpNet>),
    /// Asked of a delegated IPAM plugin once the link exists (its `dhcp`
    /// daemon takes its lease on the link), through the callback of
    /// [`Manager::cni_add_delegated`]: recorded, not leased. `routes` of
    /// the [`CniAttach`] are then the callback's.
    Delegated,
}

/// What a delegated IPAM plugin gave: the addresses and the routes to add
/// through the link (a next hop of `None`: the gateway of the address of
/// its family, when there is one).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CniDelegated {
    /// Every address, in the plugin's order.
    pub addresses: Vec<IpNet>,
    /// The routes.
    pub routes: Vec<ResultRoute>,
}

/// The callbacks of [`Manager::cni_add_delegated`]: `ask` runs the
/// delegated IPAM plugin's ADD (its error fails the ADD as
/// [`CniAddError::Delegate`], the link deleted again); `undo` its DEL, for
/// an ADD that fails once the plugin gave its addresses, run while the
/// link still stands (`dhcp`'s daemon releases its lease through it), and
/// for an earlier attachment of the same container id and interface whose
/// namespace is gone, released before the ADD goes on. `ask` runs without
/// the state directory's lock; `undo` runs while this process holds it,
/// so it must not call back into a [`Manager`] of the same state
/// directory (its lock would wait for good).
pub struct Delegate<'a> {
    /// The plugin's ADD.
    pub ask: &'a mut dyn FnMut() -> Result<CniDelegated, Error>,
    /// The plugin's DEL.
    pub undo: &'a mut dyn FnMut(),
}

/// What [`Manager::cni_add_locked`] made.
enum Added {
    Attached(CniAttached),
    /// The link, down and without addresses, for a delegated IPAM plugin.
    LinkDown(Box<LinkDown>),
}

/// An ADD's link made down for a delegated IPAM plugin, its intent a
/// record of its own (naming its index).
struct LinkDown {
    inside: OpenNetns,
    parent: Link,
    plan: EndpointPlan,
    record: EndpointRecord,
    /// The link's, in `inside` (the record's `ifindex`).
    index: u32,
    /// The intent record's, until the ADD ends.
    _hold: EndpointHold,
}

/// What a create made.
enum Made {
    Configured(BuiltEndpoint),
    Down(u32),
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
    /// Routes through the link (a next hop of `None`: the gateway of the
    /// address of its family, when there is one).
    pub routes: Vec<ResultRoute>,
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
    /// Its addresses, of any scope: a result's may be link-local (a
    /// range in `fe80::/64`, whose addresses the kernel scopes to the
    /// link whatever was asked), and CHECK looks for each.
    pub addresses: Vec<IpNet>,
    /// The routes through it, in the main table and those asked for:
    /// destination, next hop and table.
    pub routes: Vec<(IpNet, Option<IpAddr>, u32)>,
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
    format!("{ID_PREFIX}{}", key_hash(container_id, ifname))
}

/// The endpoint id of the lease-only record of (`container_id`,
/// `ifname`): the key of [`attachment_id`] under another prefix, so that
/// `restore` and GC tell a lease from a link attachment by its id.
///
/// ```
/// let id = ipvlan::driver::lease_id("abc", "eth0");
/// assert!(id.starts_with("cnl-") && id.len() == 36);
/// assert_eq!(id[4..], ipvlan::driver::attachment_id("abc", "eth0")[4..]);
/// ```
pub fn lease_id(container_id: &str, ifname: &str) -> String {
    format!("{LEASE_PREFIX}{}", key_hash(container_id, ifname))
}

fn key_hash(container_id: &str, ifname: &str) -> String {
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
        "{:016x}{:016x}",
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
    /// The delegated IPAM plugin of [`Manager::cni_add_delegated`] failed
    /// (its callback's error); the link is gone again, and the plugin's
    /// own answer is the ADD's.
    Delegate(Error),
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
            CniAddError::Config(error)
            | CniAddError::Failed(error)
            | CniAddError::Delegate(error) => error.fmt(f),
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

/// Whether CNI ADD made the network.
pub(crate) fn is_cni(network: &NetworkRecord) -> bool {
    super::options::made_by_cni(network)
}

/// The link keys of a CNI network's config text (master, mode, flag,
/// MTU), its IPAM part (`ipam=TYPE ranges=...`) left out.
fn cni_link_keys(config: &str) -> &str {
    config.split_once(" ipam=").map_or(config, |(keys, _)| keys)
}

/// Whether the CNI network has no master in the host (see
/// [`super::options::is_masterless`]).
pub(crate) fn is_masterless(network: &NetworkRecord) -> bool {
    super::options::is_masterless(network)
}

pub(crate) use super::options::is_cni_lease as is_lease;

/// Whether a GC of the kind `leases` (see [`Manager::cni_gc`]) collects
/// `endpoint`, whose runtime listed the attachments `keep` (their key
/// hashes): one a CNI ADD made, of that kind, and not listed. Never a
/// container's endpoint, whatever its id (older versions filed one under
/// the container's name, which may start as a CNI id does).
fn collected_by_gc(endpoint: &EndpointRecord, leases: bool, keep: &[String]) -> bool {
    let prefix = if leases { LEASE_PREFIX } else { ID_PREFIX };
    match endpoint.id.strip_prefix(prefix) {
        Some(key) if super::options::attached_by_cni(endpoint) => !keep.iter().any(|k| k == key),
        _ => false,
    }
}

/// Whether a network made from `config` serves leases of IPAM config
/// `ipam`: the IPAM type and ranges are the same, whatever made the link.
fn same_ipam(config: &str, ipam: &str) -> bool {
    config
        .strip_suffix(ipam)
        .is_some_and(|rest| rest.is_empty() || rest.ends_with(' '))
}

/// Deletes the `NAME.VLANID` masters we made for CNI networks left
/// without attachments (by `restore`, after their namespaces vanished).
pub(crate) fn drop_idle_parents(
    host: &Handle,
    netns_dir: &Path,
    state: &Locked<'_>,
    networks: &[NetworkRecord],
) {
    for network in networks.iter().filter(|n| is_cni(n)) {
        if !matches!(network.parent_origin, ParentOrigin::VlanCreated { .. }) {
            continue;
        }
        // As recorded now: restore may have re-made the master, with
        // another ifindex, since `networks` was read.
        let Ok(Some(network)) = state.network(&network.id) else {
            continue;
        };
        let network = &network;
        if parent::is_idle(state, network) {
            let others = parent::users_of_parent(state, networks, network);
            parent::delete_if_ours(host, netns_dir, network, &others);
        }
    }
}

/// A config's `master` missing from the host (and `base`, the link a
/// `NAME.VLANID` master would be made on, where ADD would make it).
fn master_missing(master: &str, base: Option<String>) -> Error {
    Error::not_found(match base {
        Some(base) => format!("master {master} does not exist, nor {base} to make it on"),
        None => format!("master {master} does not exist"),
    })
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

/// The `network create` request of `net`'s name, subnets and gateways.
fn subnets_request(net: &CniNetwork) -> NetworkCreate {
    let mut req = NetworkCreate::new(net.name.clone());
    for (subnet, gateway) in &net.subnets {
        req.subnets.push(*subnet);
        req.gateways.extend(gateway);
    }
    req
}

/// Whether the lease `endpoint` (of our binary as another plugin's IPAM)
/// is left by what no longer runs: one its ADD did not finish (an ADD
/// takes its lease in one go, under the lock), or one whose recorded
/// namespace is gone. One recorded without a namespace never is.
fn lease_gone(endpoint: &EndpointRecord) -> Result<bool, Error> {
    if !endpoint.state.is_attached() {
        return Ok(true);
    }
    if endpoint.netns.is_empty() {
        return Ok(false);
    }
    let at = netns_identity::open_endpoint_netns(endpoint)?;
    Ok(matches!(at, NsAt::Gone | NsAt::NotANamespace))
}

/// A lease released and its record removed, under a detach intent.
fn release_lease(
    state: &Locked<'_>,
    network: &NetworkRecord,
    mut endpoint: EndpointRecord,
) -> Result<(), Error> {
    endpoint.state = EndpointState::Detaching;
    under_detach_intent(state, &endpoint, || {
        state.release_owner(network, &endpoint.id)?;
        state.remove_endpoint(&network.id, &endpoint.id)?;
        Ok(())
    })
}

/// Whether `record` is another CNI network that could hand out an address
/// of `net`'s ([`shares_addresses`]): one that gives way to it when idle
/// ([`Manager::retire_idle_overlaps`]).
fn gives_way(record: &NetworkRecord, net: &CniNetwork) -> bool {
    is_cni(record) && record.name != net.name && shares_addresses(record, net)
}

/// Whether the network `record` and the config `net` could hand out one
/// address twice ([`super::bounds::hand_out_one_address`]).
fn shares_addresses(record: &NetworkRecord, net: &CniNetwork) -> bool {
    let ours: Vec<IpNet> = net.subnets.iter().map(|(subnet, _)| *subnet).collect();
    super::bounds::hand_out_one_address(record, &ours, &net.bounds)
}

/// What of `net` can be refused without the kernel, checked before an
/// idle network is removed for it (a config refused after would have
/// removed it for nothing): its subnets and gateways as `network create`
/// checks them, room for an address in each subnet, the MTU of an IPv6 network, a name that is
/// another network's id, and an overlap with a network that stays
/// (`staying`: all but those the config would retire), and a
/// `rangeStart`-`rangeEnd` with an address to hand out. Those that need
/// the kernel (the host's own addresses on the master among them) are
/// [`Manager::check_before_retiring`]'s. The subnets, as checked.
fn check_config(
    net: &CniNetwork,
    networks: &Listing<NetworkRecord>,
    staying: &[NetworkRecord],
) -> Result<Vec<SubnetSpec>, Error> {
    let config = |error: Error| config_error(error.to_string());
    let specs = super::networks::checked_subnets(&subnets_request(net), net.mtu).map_err(config)?;
    refuse_bounds_without_room(&specs, &net.bounds).map_err(config)?;
    super::networks::refuse_name_of_an_id(networks, &net.name)?;
    super::bounds::check_overlaps_of_config(&specs, staying, &net.config).map_err(config)?;
    Ok(specs)
}

impl Manager {
    /// The network `net` is to get, as `network create` is asked for it
    /// (its subnets, its master, the default route's link when it names
    /// none, and link keys), checked against what the kernel lacks and by
    /// [`Manager::check_before_retiring`]
    /// with its master (none with the link in the container); made into
    /// `slot` once (finding the default route is a dump).
    fn checked_request<'a>(
        &self,
        net: &CniNetwork,
        wanted: &[IpAddr],
        slot: &'a mut Option<NetworkCreate>,
    ) -> Result<&'a NetworkCreate, Error> {
        if let Some(req) = slot {
            return Ok(req);
        }
        // What the kernel lacks for the links, whatever the master (one in
        // the container too): before a network, and a master it made, is
        // retired for this one. A lease-only network makes no link.
        let ipv6 = net.subnets.iter().any(|(s, _)| s.addr().is_ipv6());
        refuse_what_the_kernel_lacks(&Handle::new()?, net.mode, net.flag, ipv6)?;
        let mut req = subnets_request(net);
        if let Some(master) = &net.master {
            req.options.push(("parent".into(), master.clone()));
        } else if !net.link_in_container {
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
        self.check_before_retiring(net, Some(&req).filter(|_| !net.link_in_container), wanted)?;
        Ok(slot.insert(req))
    }

    /// [`check_config`] against the networks as they are: those `net`
    /// would retire (its name's, and idle CNI networks on its subnets,
    /// see [`Manager::retire_idle_overlaps`]) do not count as staying;
    /// with `creating`, the network to be made, what the kernel and the
    /// host's links refuse of it too (see [`super::networks::plan_parent`]
    /// and [`super::parent::check_shared`]), and an address of `wanted`
    /// that is one of the host's own on the master.
    fn check_before_retiring(
        &self,
        net: &CniNetwork,
        creating: Option<&NetworkCreate>,
        wanted: &[IpAddr],
    ) -> Result<(), Error> {
        let networks = self.store.networks()?;
        let mut staying = Vec::new();
        for record in networks.iter() {
            let retired = record.name == net.name
                || (gives_way(record, net) && {
                    let held = self.store.endpoints_of(&record.id)?;
                    held.is_empty() && held.damaged.is_empty()
                });
            if !retired {
                staying.push(record.clone());
            }
        }
        let mut specs = check_config(net, &networks, &staying)?;
        // Then what the kernel and the host's links refuse, as `network
        // create` checks it: the master missing, no ipvlan, the MTU over
        // the master's, another mode on the master's port (the networks
        // retired for this one aside), subnets and ranges the host's own
        // addresses on the master fill.
        let Some(req) = creating else {
            return Ok(());
        };
        let opts = super::options::parse_options(&req.options)?;
        // A master that a network given way to made (a `NAME.VLANID`) goes
        // with it, unless one that stays uses it too, and this network
        // makes it again on its base: planned as that, after the retiring,
        // not as the link it is now (whose MTU is not the base's).
        let master = opts.parent.as_deref().unwrap_or_default();
        let made_it = |network: &NetworkRecord| {
            network.parent == master && network.parent_origin != ParentOrigin::Existing
        };
        if networks.iter().any(made_it) && !staying.iter().any(|n| n.parent == master) {
            // The retiring keeps the master where it carries an address
            // given it since (as `network rm` tells one), and this network
            // then takes it as it is, with its addresses the host's; else
            // it is made again without them.
            if !wanted.is_empty() {
                let host = Handle::new()?;
                if let Some(link) = host.link_by_name(master)? {
                    if super::parent::given_address(&host, link.index)?.is_some() {
                        super::networks::reserve_host_addresses(&host, &link, &mut specs)?;
                        refuse_hosts_own(&specs, wanted)?;
                    }
                }
            }
            return Ok(());
        }
        let ipv6 = req.ipv6 || req.subnets.iter().any(|s| s.addr().is_ipv6());
        let host = Handle::new()?;
        let plan = super::networks::plan_parent(&host, &opts, ipv6, "", &mut Vec::new()).map_err(
            |error| match error.kind() {
                // In the config's words, as STATUS says it: `master`, not
                // the CLI's `-o parent`.
                ErrorKind::NotFound => master_missing(
                    master,
                    super::options::parse_vlan_parent(master)
                        .ok()
                        .map(|(base, _)| base),
                ),
                _ => error,
            },
        )?;
        super::parent::check_shared(&host, &self.config.netns_dir, &plan, &opts, &staying)?;
        if let parent::ParentPlan::Existing(link) = &plan {
            super::networks::reserve_host_addresses(&host, link, &mut specs)?;
            refuse_bounds_without_room(&specs, &net.bounds)
                .map_err(|error| config_error(error.to_string()))?;
            refuse_hosts_own(&specs, wanted)?;
        }
        Ok(())
    }

    /// The network record of `net`: made when missing (as `network create`
    /// makes one, with its checks: overlaps, the shared-parent guard, the
    /// MTU against the master; a `NAME.VLANID` master created and recorded
    /// as ours), made again when its config changed and no attachment is
    /// live. Refused ([`ErrorKind::InvalidValue`], CNI code 7) when a CLI
    /// network has the name or the config differs while attachments live.
    pub fn cni_network(&self, net: &CniNetwork) -> Result<(), Error> {
        self.cni_network_id(net, &[]).map(drop)
    }

    /// [`Manager::cni_network`]; the id of the record it found as it is
    /// (`None` when it made one), for the caller to read again under the
    /// lock without reading every network. A network it makes is refused,
    /// before anything changes, when an address of `wanted` (the ADD's
    /// asked-for ones) is one of the host's own on the master.
    fn cni_network_id(&self, net: &CniNetwork, wanted: &[IpAddr]) -> Result<Option<String>, Error> {
        // Made (and checked) where a network is to be made, once.
        let mut request = None;
        // Two first ADDs at once: one creates, the other finds it.
        for _ in 0..3 {
            let existing = self.store.network_named(&net.name)?;
            let mut over = None;
            if let Some(record) = existing {
                match cni_config(&record) {
                    None => {
                        return Err(config_error(format!(
                            "network {} exists and was not made by CNI (a `network create` network); choose another name",
                            net.name
                        )))
                    }
                    Some(config) if config == net.config => return Ok(Some(record.id)),
                    Some(config) => {
                        let live = self.store.endpoints_of(&record.id)?;
                        // Leases served to other plugins first, our own ADD
                        // second: the network takes our link keys, its
                        // leases stay (one allocator for both).
                        let joinable = is_masterless(&record)
                            && !net.link_in_container
                            && same_ipam(config, &net.ipam_config)
                            && live.damaged.is_empty()
                            && live.iter().all(is_lease);
                        if joinable {
                            over = Some(record);
                        } else if !live.is_empty() {
                            return Err(config_error(format!(
                                "network {} has {} attachment(s) made with another config ({config}); this one has {}: DEL them first or use another name",
                                net.name,
                                live.len(),
                                net.config
                            )));
                        } else {
                            self.checked_request(net, wanted, &mut request)?;
                            match self.remove_network(&record.id) {
                                Ok(_) => {}
                                Err(error) if error.kind() == ErrorKind::NotFound => {}
                                Err(error) => return Err(error),
                            }
                        }
                    }
                }
            }
            self.checked_request(net, wanted, &mut request)?;
            self.retire_idle_overlaps(net)?;
            let req = self.checked_request(net, wanted, &mut request)?;
            let made = if net.link_in_container {
                let state = self.store.lock()?;
                let networks = state.networks()?;
                self.masterless_record(&state, &networks, net).map(drop)
            } else {
                if over.is_some() {
                    crate::fault::point("cni add: before taking over an idle network");
                }
                self.create_network_over(req, Some((CNI_MARK, &net.config)), over.as_ref())
                    .map(drop)
            };
            match made {
                Ok(()) => return Ok(None),
                Err(error) if error.kind() == ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(error),
            }
        }
        Err(Error::try_again(format!(
            "network {} was created and removed meanwhile, again and again; try again",
            net.name
        )))
    }

    /// ADD: the ipvlan link `attach.ifname` in `attach.netns` on the
    /// network of `net` (made or checked by [`Manager::cni_network`] once
    /// the namespace is known good, so a bad `CNI_NETNS` makes nothing),
    /// its addresses and routes. Refused before anything is made when the
    /// namespace has a link of that name, or an asked-for address lies
    /// outside the config's ranges or is reserved in them; refused when the
    /// attachment exists. Any later failure undoes all of it (link, leases,
    /// record, and a `NAME.VLANID` master nothing of ours uses any more).
    /// A relative `CNI_NETNS` is recorded joined to the working directory,
    /// where it was opened.
    pub fn cni_add(
        &self,
        net: &CniNetwork,
        attach: &CniAttach<'_>,
    ) -> Result<CniAttached, CniAddError> {
        self.add_attachment(net, attach, None)
    }

    /// [`Manager::cni_add`] with addresses [`CniAddresses::Delegated`]:
    /// `ask` runs the delegated IPAM plugin once the link exists in the
    /// namespace, still down and without addresses, as the reference
    /// plugin's order has it (the `dhcp` plugin's daemon takes its lease
    /// on the link), from the caller's own namespace and without the
    /// store's lock (its intent a record of its own meanwhile); then, under
    /// the lock again, what it gave goes on the link. Should the plugin
    /// fail, the link is deleted again and its error returned. The ADD
    /// holds its intent meanwhile ([`Locked::hold_endpoint`]): `restore`
    /// leaves it alone; should a DEL or a GC have undone the attachment,
    /// the ADD fails and the link goes if it is still there. The plugin's
    /// DEL (`undo`) runs for an ADD that fails after the plugin gave its
    /// addresses, before the link goes; not when another ADD of the same
    /// attachment holds it by then (the plugin's lease is that one's).
    pub fn cni_add_delegated(
        &self,
        net: &CniNetwork,
        attach: &CniAttach<'_>,
        delegate: Delegate<'_>,
    ) -> Result<CniAttached, CniAddError> {
        self.add_attachment(net, attach, Some(delegate))
    }

    fn add_attachment(
        &self,
        net: &CniNetwork,
        attach: &CniAttach<'_>,
        mut delegate: Option<Delegate<'_>>,
    ) -> Result<CniAttached, CniAddError> {
        if matches!(attach.addresses, CniAddresses::Delegated) != delegate.is_some() {
            return Err(Error::invalid(
                "the addresses of a CNI ADD are delegated exactly when a delegated IPAM plugin is given",
            )
            .into());
        }
        let netns = absolute_netns(attach.netns)?;
        // The host's socket first: the thread then stays in the target
        // from its socket to the link's settings (one visit, not two),
        // where it opens no socket and reads nothing of `/proc/sys/net`.
        let host = Handle::new()?;
        let inside = OpenNetns::open_path_and_stay(&netns, true, Some(host.socket().fd()))
            .map_err(|e| {
                Error::io(
                    format_args!("opening network namespace {}", attach.netns.display()),
                    &e,
                )
            })??;
        let identity = inside.identity()?;
        // Here so that nothing, not even the network record, is made for
        // a namespace that cannot take the link; under the lock the create
        // finds a link made since (`create_guessed`).
        if inside.handle.link_by_name(attach.ifname)?.is_some() {
            return Err(ifname_taken(attach).into());
        }
        if net.link_in_container {
            // Its master is the container's, which no check of the network
            // looks at: refused here, before a network gives way to it or
            // its record is written (under the lock it is looked up again).
            in_container_master(&inside, net)?;
        }
        if let CniAddresses::Allocate(wanted) = &attach.addresses {
            refuse_unservable(net, wanted)?;
        }
        // The network as this config made it, through its name's hint,
        // read once, under the lock. Else (none yet, another config, not
        // CNI's, no hint) `cni_network` makes or refuses it, without the
        // lock, which it takes itself.
        let usable = |record: &NetworkRecord| {
            record.name == net.name
                && record.state != NetworkState::Creating
                && cni_config(record) == Some(net.config.as_str())
        };
        let hinted = match self.store.network_id_hint(&net.name) {
            Some(hint) => {
                let state = self.lock_outside(&inside)?;
                let record = state.network(&hint)?.filter(usable);
                record.map(|record| (state, record))
            }
            None => None,
        };
        let (state, network) = match hinted {
            Some(found) => found,
            None => {
                // Back home for the host's links and sockets it may make.
                drop(inside.take_visit());
                let wanted = match &attach.addresses {
                    CniAddresses::Allocate(wanted) => wanted.as_slice(),
                    _ => &[],
                };
                let found = self.cni_network_id(net, wanted).map_err(network_error)?;
                let state = self.store.lock()?;
                match cni_network_locked(&state, net, found) {
                    Ok(network) => (state, network),
                    Err(error) => {
                        self.drop_idle_master_locked(&state, &net.name);
                        return Err(error);
                    }
                }
            }
        };
        // From here on the network's master may have been made, by
        // `cni_network_id` or by `cni_parent`: every failure leaves through
        // the one guard that drops it again when nothing of ours uses it.
        let added = self.cni_add_locked(
            &state,
            &host,
            net,
            attach,
            &netns,
            inside,
            identity,
            &network,
            delegate.as_mut().map(|delegate| &mut *delegate.undo),
        );
        let (state, added) = match (added, delegate) {
            (Ok(Added::Attached(attached)), _) => (Some(state), Ok(attached)),
            (Ok(Added::LinkDown(down)), Some(delegate)) => {
                // The plugin runs from our own namespace, as a runtime runs
                // it, and without the lock: a DHCP exchange may take
                // seconds, and no other command of ours waits for it.
                drop(down.inside.take_visit());
                drop(state);
                let given = (delegate.ask)();
                match self.store.lock() {
                    Ok(state) => {
                        let added = self.cni_add_given(
                            &state,
                            &host,
                            net,
                            attach,
                            &network,
                            *down,
                            given,
                            delegate.undo,
                        );
                        (Some(state), added)
                    }
                    // The link and its intent stay for `restore`; the
                    // plugin's lease goes while the link stands.
                    Err(error) => {
                        if given.is_ok() {
                            (delegate.undo)();
                        }
                        (None, Err(Error::from(error).into()))
                    }
                }
            }
            // `cni_add_locked` makes a link down only when asked to.
            (Ok(Added::LinkDown(down)), None) => {
                let _ = endpoint_link::delete_link(&down.inside, down.index);
                let _ = state.remove_endpoint(&network.id, &down.record.id);
                let made =
                    Error::failed("a link made down for a delegated IPAM plugin without one");
                (Some(state), Err(made.into()))
            }
            (Err(error), _) => (Some(state), Err(error)),
        };
        if let (Err(_), Some(state)) = (&added, &state) {
            self.drop_idle_master_locked(state, &net.name);
        }
        added
    }

    /// The store's lock, waited for outside the target namespace `inside`
    /// when another command holds it: a thread of ours waiting there would
    /// be one of its processes to anything that looks (an `rm` of a
    /// container of ours given to CNI, a runtime). Taken at once, as
    /// nearly always, the thread stays in.
    fn lock_outside(&self, inside: &OpenNetns) -> Result<Locked<'_>, Error> {
        let mut left = false;
        let state = self.store.lock_or(&mut || {
            left = true;
            drop(inside.take_visit());
        })?;
        if left {
            self.visit_again(inside)?;
        }
        Ok(state)
    }

    /// Back into the target namespace `inside`, left for a while.
    fn visit_again(&self, inside: &OpenNetns) -> Result<(), Error> {
        let visit = crate::netns::Visit::enter(&inside.ns).map_err(|e| {
            Error::io(
                format_args!("entering network namespace {}", inside.label()),
                &e,
            )
        })?;
        inside.keep_visit(visit);
        Ok(())
    }

    /// [`Manager::cni_add`] under the lock, once the network is made or
    /// checked; any failure undoes the link, the leases and the record,
    /// the caller the master. `delegate_undo`: the delegated IPAM
    /// plugin's DEL, when the addresses are its.
    #[allow(clippy::too_many_arguments)]
    fn cni_add_locked(
        &self,
        state: &Locked<'_>,
        host: &Handle,
        net: &CniNetwork,
        attach: &CniAttach<'_>,
        netns: &Path,
        inside: OpenNetns,
        identity: crate::store::records::NetnsId,
        network: &NetworkRecord,
        delegate_undo: Option<&mut (dyn FnMut() + '_)>,
    ) -> Result<Added, CniAddError> {
        let delegated = delegate_undo.is_some();
        super::networks::refuse_while_intent_pending(state, network)?;
        let id = attachment_id(attach.container_id, attach.ifname);
        if let Some(existing) = state.endpoint(&network.id, &id)? {
            let live = || {
                Error::already_exists(format!(
                    "container {} already has {} on network {}; DEL it first",
                    attach.container_id, attach.ifname, network.name
                ))
            };
            // An intent a live command holds: its ADD is in progress.
            if !existing.state.is_attached() && state.endpoint_held(&network.id, &existing.id)? {
                return Err(live().into());
            }
            match netns_identity::open_endpoint_netns(&existing)? {
                NsAt::Present(..) => return Err(live().into()),
                // Its namespace is gone (a reboot, a runtime that died
                // before its DEL, or during its ADD): what a runtime
                // reusing the container's id (Podman, after a reboot)
                // gets back is a new attachment, the old one released
                // first, as a DEL would (or `restore`, a dead intent).
                at @ (NsAt::Gone | NsAt::NotANamespace) => {
                    if let Some(undo) = delegate_undo {
                        // From our own namespace, as a runtime runs it.
                        drop(inside.take_visit());
                        undo();
                        self.visit_again(&inside)?;
                    }
                    self.detach(host, state, network, existing, &at)?;
                }
            }
        }
        let (parent, creator) = if net.link_in_container {
            (in_container_master(&inside, net)?, &inside.handle)
        } else {
            (self.cni_parent(host, state, network)?, host)
        };

        let (addresses, leases) = match &attach.addresses {
            CniAddresses::Allocate(wanted) => {
                let leases = allocate(state, network, wanted, &id, &net.bounds)?;
                (leases.addresses.clone(), Some(leases))
            }
            CniAddresses::Given(given) => (given.clone(), None),
            // The plugin's, once the link exists.
            CniAddresses::Delegated => (Vec::new(), None),
        };
        // Set when the kernel refused a leased address as another ipvlan
        // link's on the master (no record of ours says so): the leases go,
        // the cursors stay past it, so that the runtime's retry of the ADD
        // is given the next address rather than the same refusal.
        let held = std::cell::Cell::new(false);
        let give_back = |state: &Locked<'_>| {
            if let Some(leases) = &leases {
                match held.get() {
                    true => keeping_cursors(state, network, || {
                        let _ = state.release_owner(network, &id);
                    }),
                    false => leases.give_back(state, network, &id),
                }
            }
        };
        let mut plan = EndpointPlan::new(network, &parent, IpNet::V4(Default::default()), None);
        plan.arp_notify = true;
        plan_addresses(&mut plan, network, &addresses, &attach.routes);
        let (ipv4, ipv6) = (plan.ipv4.map(IpNet::V4), plan.ipv6.map(IpNet::V6));
        // Named in the intent before the kernel is asked: restore undoes
        // the link at this index, never one by the runtime's name.
        let index = match endpoint_link::chosen_index() {
            Ok(index) => index,
            Err(error) => {
                give_back(state);
                return Err(error.into());
            }
        };
        let mut record = EndpointRecord {
            id: id.clone(),
            network_id: network.id.clone(),
            container: None,
            netns: netns.display().to_string(),
            ifname: attach.ifname.to_string(),
            mac: None,
            ipv4,
            ipv6,
            state: EndpointState::Attaching,
            created: Timestamp::now(),
            netns_id: Some(identity),
            ifindex: Some(index),
        };
        // Read as missing above, under this lock. With a delegated plugin,
        // which runs without the lock, a record of its own: an intent in
        // the commit log's page would be taken by the next lock for one a
        // killed command left.
        let intent = match delegated {
            true => state.put_new_endpoint(&record).map(|()| false),
            false => state.put_intent(&record),
        };
        let in_log = match intent {
            Ok(in_log) => in_log,
            Err(error) => {
                give_back(state);
                return Err(Error::from(error).into());
            }
        };
        // Given up with nothing in the kernel: the intent out of the page
        // before the record goes (brought back after it, it would name an
        // index a retried create may have found another link's); not taken
        // out, everything is left for `restore`.
        let forget = |state: &Locked<'_>| {
            if in_log && state.clear_single_intent().is_err() {
                return;
            }
            let _ = state.remove_endpoint(&network.id, &id);
            give_back(state);
        };
        // With `linkInContainer` the create is sent from inside, where the
        // master's index means the master.
        let mut rerecord = |index: Option<u32>| -> Result<(), Error> {
            record.ifindex = index;
            Ok(state.put_endpoint(&record)?)
        };
        // The name was free before the lock: the first create is sent at
        // once, and only a refusal as taken looks it up.
        let created = match delegated {
            false => endpoint_link::create_guessed(
                creator,
                &inside,
                &plan,
                attach.ifname,
                index,
                &mut rerecord,
            )
            .map(|built| built.map(Made::Configured)),
            true => endpoint_link::create_guessed_unconfigured(
                creator,
                &inside,
                &plan,
                attach.ifname,
                index,
                &mut rerecord,
            )
            .map(|index| index.map(Made::Down)),
        };
        // A link the kernel would not delete keeps its record, `detaching`,
        // and its leases, for `restore` (see `Pending::undo_unbuilt`).
        let leave = |record: &mut EndpointRecord| {
            let stands = record.ifindex.is_some_and(|index| {
                endpoint_link::left_standing(
                    &inside,
                    index,
                    attach.ifname,
                    &parent,
                    net.link_in_container,
                )
            });
            if !(stands && keep_for_restore(state, record, in_log)) {
                forget(state);
            }
        };
        let built = match created {
            Ok(Some(Made::Configured(built))) => built,
            Ok(Some(Made::Down(index))) => {
                record.ifindex = Some(index);
                // Held while the plugin runs without the lock, so that
                // `restore` tells this live ADD's intent from a dead one's.
                let hold = match state.hold_endpoint(&network.id, &id) {
                    Ok(hold) => hold,
                    Err(error) => {
                        // As a failed create's.
                        let _ = endpoint_link::delete_link(&inside, index);
                        leave(&mut record);
                        return Err(Error::from(error).into());
                    }
                };
                return Ok(Added::LinkDown(Box::new(LinkDown {
                    inside,
                    parent,
                    plan,
                    record,
                    index,
                    _hold: hold,
                })));
            }
            failed => {
                // Passed over only where our allocator chose the address:
                // one asked for or a chained plugin's is met again by a
                // retry.
                let chosen = leases.is_some()
                    && matches!(&attach.addresses, CniAddresses::Allocate(wanted) if wanted.is_empty());
                let failed = match failed {
                    Err(error) if error.is_address_held_on_port() && !chosen => {
                        Err(error.not_passed_over())
                    }
                    failed => failed,
                };
                held.set(matches!(&failed, Err(error) if error.is_address_held_on_port()));
                leave(&mut record);
                return Err(match failed {
                    Err(error) => error
                        .context(format!(
                            "attaching {} to network {}",
                            attach.netns.display(),
                            network.name
                        ))
                        .into(),
                    _ => ifname_taken(attach).into(),
                });
            }
        };
        self.record_attached(
            state,
            host,
            inside,
            network,
            record,
            built,
            &addresses,
            in_log,
            &forget,
            &mut || {},
        )
        .map(Added::Attached)
    }

    /// The end of an ADD: the endpoint's final record, committed, over its
    /// intent (in the commit log's page when `in_log`); should that fail,
    /// the link goes (after `before_delete`: a delegated plugin's DEL, run
    /// while the link stands), and the intent (`forget`) unless the kernel
    /// keeps the link, when the record stays for `restore`.
    #[allow(clippy::too_many_arguments)]
    fn record_attached(
        &self,
        state: &Locked<'_>,
        host: &Handle,
        inside: OpenNetns,
        network: &NetworkRecord,
        mut record: EndpointRecord,
        built: BuiltEndpoint,
        addresses: &[IpNet],
        in_log: bool,
        forget: &dyn Fn(&Locked<'_>),
        before_delete: &mut dyn FnMut(),
    ) -> Result<CniAttached, CniAddError> {
        record.ipv4 = addresses.iter().copied().find(|a| a.addr().is_ipv4());
        record.ipv6 = addresses.iter().copied().find(|a| a.addr().is_ipv6());
        record.mac = Some(built.mac.clone());
        record.ifindex = Some(built.index);
        record.state = EndpointState::Attached;
        let recorded = state.put_attached_endpoint(&record, in_log);
        if let Err(error) = recorded.and_then(|()| state.commit()) {
            before_delete();
            let stands = endpoint_link::stays_after_delete(&inside, built.index);
            if !(stands && keep_for_restore(state, &mut record, in_log)) {
                forget(state);
            }
            return Err(Error::from(error).into());
        }
        self.release((host, inside));
        Ok(CniAttached {
            ifname: built.ifname,
            mac: built.mac,
            addresses: addresses
                .iter()
                .map(|a| (*a, network.gateway_for(a.addr())))
                .collect(),
        })
    }

    /// The rest of an ADD whose link [`Manager::cni_add_locked`] made
    /// down for a delegated IPAM plugin, which ran since, without the lock
    /// (`given`, its answer), under the lock taken again: the intent must
    /// still be the one written (a DEL or a GC may have undone the
    /// attachment meanwhile: the ADD fails, the link goes if it is still
    /// there); the plugin's addresses and routes go on the link, and
    /// the final record. A failed plugin, or a failure here, deletes the
    /// link and the intent, as a failed create does.
    #[allow(clippy::too_many_arguments)]
    fn cni_add_given(
        &self,
        state: &Locked<'_>,
        host: &Handle,
        net: &CniNetwork,
        attach: &CniAttach<'_>,
        network: &NetworkRecord,
        down: LinkDown,
        given: Result<CniDelegated, Error>,
        undo: &mut dyn FnMut(),
    ) -> Result<CniAttached, CniAddError> {
        let LinkDown {
            inside,
            parent,
            mut plan,
            mut record,
            index,
            _hold,
        } = down;
        let attaching = format!(
            "attaching {} to network {}",
            attach.netns.display(),
            network.name
        );
        let stands = || {
            endpoint_link::left_standing(
                &inside,
                index,
                attach.ifname,
                &parent,
                net.link_in_container,
            )
        };
        // The same intent: the same link (index), the same namespace.
        let same = |found: &EndpointRecord| {
            found.state == EndpointState::Attaching
                && found.ifindex == record.ifindex
                && found.netns_id == record.netns_id
                && found.netns == record.netns
        };
        match state.endpoint(&network.id, &record.id) {
            Ok(Some(found)) if same(&found) => {}
            Ok(None) => {
                // Undone: a DEL or GC ran the plugin's DEL, `restore`
                // cannot; ours runs while a link of ours may stand.
                if given.is_ok() {
                    undo();
                }
                if stands() {
                    let _ = endpoint_link::delete_link(&inside, index);
                }
                return Err(Error::failed(format!(
                    "{attaching}: the attachment was undone while its IPAM plugin ran (by a DEL or a GC); nothing of it is left"
                ))
                .into());
            }
            Ok(Some(found)) => {
                // Another ADD of the attachment's: the plugin's lease under
                // its key is that one's now, and so is a link at its index.
                if found.ifindex != Some(index) && stands() {
                    let _ = endpoint_link::delete_link(&inside, index);
                }
                return Err(Error::failed(format!(
                    "{attaching}: the attachment was undone while its IPAM plugin ran, and another ADD of it holds it now"
                ))
                .into());
            }
            // Unreadable: everything stays for `restore`, and the
            // runtime's DEL.
            Err(error) => return Err(Error::from(error).into()),
        }
        let id = record.id.clone();
        let forget = |state: &Locked<'_>| {
            let _ = state.remove_endpoint(&network.id, &id);
        };
        let failed = |state: &Locked<'_>, record: &mut EndpointRecord| {
            let _ = endpoint_link::delete_link(&inside, index);
            if !(stands() && keep_for_restore(state, record, false)) {
                forget(state);
            }
        };
        let given = match given {
            Ok(given) => given,
            Err(error) => {
                failed(state, &mut record);
                return Err(CniAddError::Delegate(error));
            }
        };
        plan_addresses(&mut plan, network, &given.addresses, &given.routes);
        let built = match endpoint_link::configure_made(&inside, &plan, attach.ifname, index) {
            Ok(built) => built,
            Err(error) => {
                undo();
                failed(state, &mut record);
                // The plugin's address: its retry may hand out the same.
                return Err(error.not_passed_over().context(attaching).into());
            }
        };
        self.record_attached(
            state,
            host,
            inside,
            network,
            record,
            built,
            &given.addresses,
            false,
            &forget,
            undo,
        )
    }

    /// Whether ADD could write its state (STATUS asks): the state
    /// directory, made here where there is none yet, as the first ADD
    /// would make it, so that one that cannot be made (a read-only `/var`)
    /// is said now rather than by every ADD.
    pub fn cni_store_ready(&self) -> Result<(), Error> {
        if self.store.never_made()? {
            drop(self.store.lock()?);
        }
        Ok(())
    }

    /// Whether ADD would find `master` (STATUS asks this too): it exists,
    /// or, for a `NAME.VLANID` one, the link to make it on (unless network
    /// `name`, made with `config`, found it an admin's link); or, when none
    /// is named, the master that network was made on (ADD keeps to it),
    /// else a default route of the host.
    pub fn cni_master_ready(
        &self,
        master: Option<&str>,
        name: &str,
        config: &str,
    ) -> Result<(), Error> {
        let host = Handle::new()?;
        // The network as ADD finds it, which keeps to its master: its link
        // keys the same. Not its ranges, which a runtime may give ADD
        // (`runtimeConfig.ipRanges`) and never gives STATUS.
        let recorded = self.store.network_named(name)?.filter(|record| {
            record.state != NetworkState::Creating
                && cni_config(record).map(cni_link_keys) == Some(cni_link_keys(config))
        });
        match master.or(recorded.as_ref().map(|record| record.parent.as_str())) {
            None => {
                default_route_link(&host)?;
            }
            Some(master) => {
                // ADD makes a `NAME.VLANID` on its base for a network it
                // makes, or again for one that made it; not an admin's.
                let made_again = recorded.as_ref().map_or(true, |record| {
                    matches!(record.parent_origin, ParentOrigin::VlanCreated { .. })
                });
                if host.link_by_name(master)?.is_none() {
                    let base = super::options::parse_vlan_parent(master)
                        .ok()
                        .filter(|_| made_again)
                        .map(|(base, _)| base);
                    let base_there = match &base {
                        Some(base) => host.link_by_name(base)?.is_some(),
                        None => false,
                    };
                    if !base_there {
                        return Err(master_missing(master, base));
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
        // The link before the record, never the master: DEL never needs
        // it, and a link made by the reference plugin goes too.
        // A name no link can have (a '%', which older versions let an ADD
        // ask for: the kernel named the link from it) has no link to look
        // up; the record and leases still go.
        let netns = netns.filter(|_| crate::netns::is_valid_ifname(ifname));
        let mut opened = None;
        let mut inside = None;
        if let Some(path) = netns {
            if let Ok(open) = OpenNetns::open_path(path) {
                inside = Some((&*opened.insert(open?), path));
            }
        }
        // No store was ever made here: nothing recorded to release, and
        // none made for it (a DEL on a node that never had an ADD).
        if self.store.never_made()? {
            if let Some((inside, path)) = inside {
                delete_ipvlan_named(inside, path, ifname, &mut notes)?;
            }
            return Ok(notes);
        }
        let id = attachment_id(container_id, ifname);
        let looked_up = self.cni_del_lookup(network, &id);
        let (state, network, recorded) = match looked_up {
            Ok((state, network, Err(error))) => {
                if let Some((inside, path)) = inside {
                    delete_ipvlan_named(inside, path, ifname, &mut notes)?;
                }
                if let Some(network) = network {
                    notes.push(forget_damaged_record(&state, &network, &id, &error)?);
                    self.drop_made_master_if_idle(&state, &network)?;
                }
                return Ok(notes);
            }
            Ok((state, network, Ok(recorded))) => (state, network, recorded),
            Err(error) => {
                // Not read under the lock (the lock refused, a damaged
                // network record, an attachment's file the store refuses
                // to open): the link still goes by its name, as with no
                // record, unless the record read without the lock names
                // another namespace; the DEL fails for the rest.
                if let Some((inside, path)) = inside {
                    let unlocked = self
                        .store
                        .network_id_hint(network)
                        .and_then(|network_id| self.store.endpoint(&network_id, &id).ok())
                        .flatten();
                    if !recorded_elsewhere(unlocked.as_ref(), inside) {
                        let _ = delete_ipvlan_named(inside, path, ifname, &mut notes);
                    }
                }
                return Err(error);
            }
        };
        if let Some((inside, path)) = inside {
            // Not in a namespace other than the one the record says the
            // attachment was added in: a `CNI_NETNS` that leads elsewhere
            // now (a `/proc/PID/ns/net` whose pid is another process's
            // since) must not take the link of that name there. No
            // record, none with an identity (an older version's), or a
            // namespace whose identity cannot be read: by its name, as
            // the reference plugin does.
            match recorded_elsewhere(recorded.as_ref(), inside) {
                // The paths may be the same: a reused pid's.
                true => notes.push(format!(
                    "{} leads to another network namespace than the one {ifname} of {container_id} was added in; the {ifname} there left in place",
                    path.display()
                )),
                false => delete_ipvlan_named(inside, path, ifname, &mut notes)?,
            }
        }
        let Some(network) = network else {
            return Ok(notes);
        };
        if let Some(mut endpoint) = recorded {
            endpoint.state = EndpointState::Detaching;
            under_detach_intent(&state, &endpoint, || {
                for address in endpoint.ipv4.iter().chain(endpoint.ipv6.iter()) {
                    state.release_if_owner(&network, address.addr(), &id)?;
                }
                state.remove_endpoint(&network.id, &id)?;
                Ok(())
            })?;
            self.drop_made_master_if_idle(&state, &network)?;
            state.commit()?;
            self.release(opened);
        } else {
            if !state.release_owner(&network, &id)?.is_empty() {
                // An ADD killed between its leases and its record: the
                // leases name the attachment, nothing else does.
                state.commit()?;
            }
            // An ADD that failed (or was killed) after making the master
            // leaves no record for this DEL to find; the master goes here
            // when nothing of ours uses it.
            self.drop_made_master_if_idle(&state, &network)?;
        }
        Ok(notes)
    }

    /// A DEL's end for the master of `network`: deleted if we made it and
    /// nothing uses it now ([`Manager::drop_parent_if_idle`]); a socket in
    /// the host is opened only for a master we made.
    fn drop_made_master_if_idle(
        &self,
        state: &Locked<'_>,
        network: &NetworkRecord,
    ) -> Result<(), Error> {
        if matches!(network.parent_origin, ParentOrigin::VlanCreated { .. }) {
            let host = Handle::new()?;
            self.drop_parent_if_idle(&host, state, network);
            self.release(host);
        }
        Ok(())
    }

    /// The lock, and under it the CNI network named `network` and its
    /// attachment `id`'s record, for a DEL. Through the name's hint, else
    /// among every record: the hint is not part of the commit (a power
    /// cut may lose it, an older store may lack one), and a DEL that
    /// missed the record would leave the leases and the record behind
    /// while telling the runtime it is done. A network of the CLI under
    /// the config's name is not CNI's: its ADD was refused (code 7), and
    /// its DEL leaves it alone.
    fn cni_del_lookup(&self, network: &str, id: &str) -> Result<DelLookup<'_>, Error> {
        let hint = self.store.network_id_hint(network);
        let state = self.store.lock()?;
        let hinted = match &hint {
            Some(network_id) => state
                .network(network_id)?
                .filter(|record| record.name == network),
            None => None,
        };
        let found = match hinted {
            Some(record) => Some(record),
            None => state
                .networks()?
                .items
                .into_iter()
                .find(|n| n.name == network),
        };
        let network = found.filter(is_cni);
        let recorded = match &network {
            Some(network) => match state.endpoint(&network.id, id) {
                // Its own file, whose text cannot be read (a hand edit, a
                // disk fault), is given back as such: a DEL that failed on
                // it would fail on every retry, and the runtime could
                // never take the pod down.
                Err(error) if !matches!(error, StoreError::Corrupt(_)) => return Err(error.into()),
                read => read,
            },
            None => Ok(None),
        };
        Ok((state, network, recorded))
    }

    /// CHECK: the attachment is recorded (with `leased_here`: our IPAM
    /// holds its addresses; a delegated IPAM plugin checks its own leases,
    /// a chain's `prevResult` gave them, and the attachment may be another
    /// plugin's, made before ours was installed in its place), and what
    /// the namespace holds under
    /// `ifname` (the front end compares it with the cached result).
    pub fn cni_check(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
        netns: &Path,
        tables: &[u32],
        leased_here: bool,
    ) -> Result<CniLinkState, Error> {
        if leased_here {
            let record = self
                .store
                .network_named_settled(network)?
                .ok_or_else(|| Error::not_found(format!("network {network} does not exist")))?;
            let id = attachment_id(container_id, ifname);
            if self.store.endpoint(&record.id, &id)?.is_none() {
                return Err(Error::not_found(format!(
                    "container {container_id} has no attachment {ifname} on network {network}"
                )));
            }
        }
        let inside = OpenNetns::open_path(netns).map_err(|e| {
            Error::io(
                format_args!("opening network namespace {}", netns.display()),
                &e,
            )
        })??;
        let link = inside
            .handle
            .link_by_name(ifname)?
            .ok_or_else(|| Error::not_found(format!("no link {ifname} in {}", netns.display())))?;
        let addresses = inside
            .handle
            .addrs_of(link.index)?
            .into_iter()
            .map(|a| a.net)
            .collect();
        let mut routes = Vec::new();
        let mut tables = tables.to_vec();
        tables.push(crate::rtnl::route::MAIN_TABLE);
        crate::order::sort(&mut tables);
        tables.dedup();
        for family in [IpFamily::V4, IpFamily::V6] {
            for &table in &tables {
                for route in inside.handle.routes_in_table(family, table)? {
                    // Each next hop through the link (an IPv6 route appended
                    // to one of the same destination is multipath).
                    for hop in route.hops() {
                        if hop.oif == Some(link.index) {
                            routes.push((route.dst, hop.gateway, table));
                        }
                    }
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

    /// ADD of our binary as another plugin's IPAM: addresses of the
    /// network of `net` leased to (`container_id`, `ifname`) on a
    /// lease-only record, from the same allocator as our own ADD. The
    /// network is the one our own ADD made for the name when its IPAM
    /// type and ranges are the same (so the two never hand out one address
    /// twice), else a lease-only network (no master) made here with the
    /// CLI's overlap check. Returns each address with its subnet's gateway.
    pub fn cni_lease_add(
        &self,
        net: &CniNetwork,
        lease: &CniLease<'_>,
    ) -> Result<Vec<(IpNet, Option<IpAddr>)>, CniAddError> {
        // The namespace's identity, when it opens: `restore` collects the
        // lease once that namespace is gone.
        let netns = lease.netns.map(absolute_netns).transpose()?;
        let identity = match netns.as_deref().map(Netns::open_path) {
            Some(Ok(ns)) => Some(OpenNetns::with_handle(ns)?.identity()?),
            _ => None,
        };
        let id = lease_id(lease.container_id, lease.ifname);
        // Only where a network is retired for the config (its name's, or
        // others on its subnets): an ADD onto its network reads no more.
        let check = || {
            self.check_before_retiring(net, None, &[])
                .map_err(|error| match error.kind() {
                    ErrorKind::InvalidValue => CniAddError::Config(error),
                    _ => CniAddError::Failed(error),
                })
        };
        if self.store.network_named(&net.name)?.is_none() {
            check()?;
            self.retire_idle_overlaps(net)?;
        }
        for _ in 0..3 {
            let state = self.store.lock()?;
            let networks = state.networks()?;
            let network = match networks.iter().find(|n| n.name == net.name) {
                None => self
                    .masterless_record(&state, &networks, net)
                    .map_err(|error| match error.kind() {
                        ErrorKind::InvalidValue => CniAddError::Config(error),
                        _ => CniAddError::Failed(error),
                    })?,
                Some(record) => match cni_config(record) {
                    None => {
                        return Err(CniAddError::Config(config_error(format!(
                            "network {} exists and was not made by CNI (a `network create` network); choose another name",
                            net.name
                        ))))
                    }
                    Some(config) if same_ipam(config, &net.ipam_config) => record.clone(),
                    Some(config) => {
                        let live = state.endpoints_of(&record.id)?;
                        if !live.is_empty() {
                            return Err(CniAddError::Config(config_error(format!(
                                "network {} has {} attachment(s) made with another IPAM config ({config}); this one has {}: DEL them first or use another name",
                                net.name,
                                live.len(),
                                net.ipam_config
                            ))));
                        }
                        let record = record.clone();
                        drop(state);
                        check()?;
                        match self.remove_network(&record.id) {
                            Ok(_) => continue,
                            Err(error) if error.kind() == ErrorKind::NotFound => continue,
                            Err(error) => return Err(error.into()),
                        }
                    }
                },
            };
            if let Some(existing) = state.endpoint(&network.id, &id)? {
                if !lease_gone(&existing)? {
                    return Err(Error::already_exists(format!(
                        "container {} already has addresses for {} on network {}; DEL it first",
                        lease.container_id, lease.ifname, network.name
                    ))
                    .into());
                }
                // Its namespace gone (a reboot, a runtime that died before
                // its DEL): released as a DEL would, then leased anew.
                release_lease(&state, &network, existing)?;
            }
            let leases = allocate(&state, &network, &lease.wanted, &id, &net.bounds)?;
            let addresses = &leases.addresses;
            let record = EndpointRecord {
                id: id.clone(),
                network_id: network.id.clone(),
                container: None,
                netns: netns
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                ifname: lease.ifname.to_string(),
                mac: None,
                ipv4: addresses.iter().copied().find(|a| a.addr().is_ipv4()),
                ipv6: addresses.iter().copied().find(|a| a.addr().is_ipv6()),
                state: EndpointState::Attached,
                created: Timestamp::now(),
                netns_id: identity,
                ifindex: None,
            };
            if let Err(error) = state.put_endpoint(&record).and_then(|()| state.commit()) {
                let _ = state.remove_endpoint(&network.id, &id);
                leases.give_back(&state, &network, &id);
                return Err(Error::from(error).into());
            }
            return Ok(addresses
                .iter()
                .map(|a| (*a, network.gateway_for(a.addr())))
                .collect());
        }
        Err(Error::try_again(format!(
            "network {} was created and removed meanwhile, again and again; try again",
            net.name
        ))
        .into())
    }

    /// Removes the networks CNI made for other configs that overlap `net`'s
    /// subnets and hold nothing (no link, no lease): a conflist renamed, or
    /// a network removed from the runtime and made again under another
    /// name, is not refused for a network no one uses any more (the
    /// reference `host-local` checks no overlap at all). One in use stays,
    /// as its removal is refused under the lock, and the create then
    /// refuses the overlap as `network create` does; so does one the CLI
    /// made.
    fn retire_idle_overlaps(&self, net: &CniNetwork) -> Result<(), Error> {
        let networks = self.store.networks()?;
        for record in networks.iter().filter(|record| gives_way(record, net)) {
            match self.remove_network(&record.id) {
                Ok(_) => {}
                Err(error) if matches!(error.kind(), ErrorKind::NotFound | ErrorKind::InUse) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(())
    }

    /// A network for `net` with no master in the host (lease-only, or
    /// `linkInContainer`), marked as CNI's, with the CLI's overlap check
    /// against every other network. [`ErrorKind::InvalidValue`] when the
    /// config cannot be served, [`ErrorKind::AlreadyExists`] when the
    /// name is taken.
    fn masterless_record(
        &self,
        state: &Locked<'_>,
        networks: &Listing<NetworkRecord>,
        net: &CniNetwork,
    ) -> Result<NetworkRecord, Error> {
        if let Some(damaged) = networks.damaged.first() {
            return Err(Error::failed(format!(
                "damaged state file {damaged}; a new network could clash with the one it records: repair it or move it out of the state directory first"
            )));
        }
        if networks.iter().any(|n| n.name == net.name) {
            return Err(Error::already_exists(format!(
                "network with name {} already exists",
                net.name
            )));
        }
        super::networks::refuse_name_of_an_id(networks, &net.name)?;
        let config = |error: Error| config_error(error.to_string());
        let mut specs = subnets::from_request(&subnets_request(net)).map_err(config)?;
        super::bounds::check_overlaps_of_config(&specs, networks, &net.config).map_err(config)?;
        crate::ipam::fill_default_gateways(&mut specs);
        let record = NetworkRecord {
            id: super::networks::new_network_id(networks)?,
            name: net.name.clone(),
            driver: "ipvlan".into(),
            mode: net.mode,
            flag: net.flag,
            parent: String::new(),
            parent_origin: ParentOrigin::Existing,
            parent_index: None,
            internal: true,
            ipv6: specs.iter().any(|s| s.subnet.addr().is_ipv6()),
            mtu: net.mtu,
            subnets: specs,
            created: Timestamp::now(),
            options: vec![(CNI_MARK.to_string(), net.config.clone())],
            state: NetworkState::Created,
        };
        state.put_network(&record)?;
        state.commit()?;
        Ok(record)
    }

    /// DEL of our binary as another plugin's IPAM: the lease of
    /// (`container_id`, `ifname`) released, its record removed; no link is
    /// touched. Gone is success.
    pub fn cni_lease_del(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<Vec<String>, Error> {
        let Some(record) = self.store.network_named_settled(network)? else {
            return Ok(Vec::new());
        };
        let id = lease_id(container_id, ifname);
        let state = self.store.lock()?;
        let Some(network) = state.network(&record.id)? else {
            return Ok(Vec::new());
        };
        match state.endpoint(&network.id, &id) {
            Ok(Some(endpoint)) => {
                release_lease(&state, &network, endpoint)?;
                state.commit()?;
            }
            Ok(None) => {
                if !state.release_owner(&network, &id)?.is_empty() {
                    state.commit()?;
                }
            }
            // See `cni_del_lookup`.
            Err(damage @ StoreError::Corrupt(_)) => {
                return Ok(vec![forget_damaged_record(&state, &network, &id, &damage)?]);
            }
            Err(error) => return Err(error.into()),
        }
        Ok(Vec::new())
    }

    /// CHECK of our binary as another plugin's IPAM: the lease of
    /// (`container_id`, `ifname`) exists; its addresses.
    pub fn cni_lease_check(
        &self,
        network: &str,
        container_id: &str,
        ifname: &str,
    ) -> Result<Vec<IpNet>, Error> {
        let missing = || {
            Error::not_found(format!(
                "container {container_id} holds no address for {ifname} on network {network}"
            ))
        };
        let record = self
            .store
            .network_named_settled(network)?
            .ok_or_else(missing)?;
        let endpoint = self
            .store
            .endpoint(&record.id, &lease_id(container_id, ifname))?
            .ok_or_else(missing)?;
        Ok(endpoint.ipv4.into_iter().chain(endpoint.ipv6).collect())
    }

    /// `restore` of a lease-only record: no link to repair. The lease
    /// stays while its namespace does (or when none was recorded: the
    /// runtime's DEL or GC releases it), and goes with an interrupted ADD
    /// or DEL, or once its namespace is certainly gone.
    pub(crate) fn restore_lease(
        &self,
        state: &Locked<'_>,
        network: &NetworkRecord,
        endpoint: EndpointRecord,
        report: &mut RestoreReport,
        who: &str,
    ) -> Result<(), Error> {
        if !lease_gone(&endpoint)? {
            report.endpoints_kept += 1;
            return Ok(());
        }
        state.release_owner(network, &endpoint.id)?;
        state.remove_endpoint(&network.id, &endpoint.id)?;
        report.endpoints_released.push(who.to_string());
        Ok(())
    }

    /// GC: every attachment of CNI network `network` not in `valid`
    /// (container id, ifname) goes as by [`Manager::cni_del`], its
    /// namespace as recorded; of the kind the GC is of (`leases`: those
    /// made as another plugin's IPAM, whose addresses go without touching a
    /// link; else those made as the plugin). The two kinds share a network
    /// when configs of our plugin and of another with our IPAM share its
    /// name (one allocator), each config's runtime listing only its own:
    /// one's GC took the other's live leases (their addresses then handed
    /// out again) or links. Returns what was left alone. One attachment
    /// that cannot be collected does not keep the others: the spec asks GC
    /// to remove what it can and then report the errors, so the first
    /// error comes back after every attachment was tried.
    pub fn cni_gc(
        &self,
        network: &str,
        valid: &[(String, String)],
        leases: bool,
    ) -> Result<Vec<String>, Error> {
        // A network the CLI made under the config's name is none of the
        // plugin's: nothing of it is collected.
        let found = self.store.network_named_settled(network)?;
        let Some(record) = found.filter(is_cni) else {
            return Ok(Vec::new());
        };
        let keep: Vec<String> = valid.iter().map(|(c, i)| key_hash(c, i)).collect();
        let mut notes = Vec::new();
        let mut failed: Option<Error> = None;
        let mut failures = 0;
        for endpoint in self.store.endpoints_of(&record.id)?.items {
            if !collected_by_gc(&endpoint, leases, &keep) {
                continue;
            }
            match self.cni_gc_one(&record, &endpoint) {
                Ok(left) => notes.extend(left),
                Err(error) => {
                    failures += 1;
                    failed.get_or_insert(error.context(format!(
                        "collecting attachment {} of network {}",
                        endpoint.id, record.name
                    )));
                }
            }
        }
        match failed {
            None => Ok(notes),
            Some(error) if failures == 1 => Err(error),
            Some(error) => Err(error.context(format!(
                "{failures} attachments could not be collected (the others were); the first"
            ))),
        }
    }

    fn cni_gc_one(
        &self,
        network: &NetworkRecord,
        endpoint: &EndpointRecord,
    ) -> Result<Vec<String>, Error> {
        let mut notes = Vec::new();
        // The record as listed may be gone by now, its attachment DEL'd and
        // ADDed again under the same id: link, leases and record go only
        // while the record is still the one the listing saw, all under one
        // lock, so no DEL or ADD of the id comes between.
        let state = self.store.lock()?;
        if state.endpoint(&network.id, &endpoint.id)?.as_ref() != Some(endpoint) {
            return Ok(notes);
        }
        // A lease's link is its plugin's: only the addresses go.
        let link = if is_lease(endpoint) {
            None
        } else {
            OpenNetns::open_path(Path::new(&endpoint.netns)).ok()
        };
        if let Some(inside) = link {
            let inside = inside?;
            if endpoint
                .netns_id
                .is_some_and(|id| inside.identity().is_ok_and(|now| id.same_namespace(&now)))
            {
                // A `linkInContainer` master is the container's: the link
                // is ours to remove when it is an ipvlan link, as for DEL.
                let parent = match is_masterless(network) {
                    true => None,
                    false => Handle::new()?.link_by_name(&network.parent)?,
                };
                let removal = endpoint_link::delete_checked(
                    &inside,
                    endpoint.ifindex,
                    &endpoint.ifname,
                    endpoint_link::Master::of(network, parent.as_ref()),
                    endpoint.mac.as_deref(),
                )?;
                if let endpoint_link::LinkRemoval::NotOurs(why) = removal {
                    notes.push(why);
                }
            }
        }
        state.release_owner(network, &endpoint.id)?;
        state.remove_endpoint(&network.id, &endpoint.id)?;
        self.drop_parent_if_idle(&Handle::new()?, &state, network);
        state.commit()?;
        Ok(notes)
    }

    /// The network's master, re-made when it is a `NAME.VLANID` of ours
    /// that its last DEL removed.
    fn cni_parent(
        &self,
        host: &Handle,
        state: &Locked<'_>,
        network: &NetworkRecord,
    ) -> Result<Link, Error> {
        if let Some(link) = host.link_by_name(&network.parent)? {
            parent::adopt_live_index(state, network, &link)?;
            return Ok(link);
        }
        if matches!(network.parent_origin, ParentOrigin::VlanCreated { .. }) {
            let mut report = RestoreReport::default();
            let netns_dir = &self.config.netns_dir;
            if let Some(link) = parent::restore(host, netns_dir, state, network, &mut report)? {
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
        // A damaged record may be an attachment, or a network on the same
        // master: the master stays until it is repaired.
        if !parent::is_idle(state, network) {
            return;
        }
        let Ok(Ok(networks)) = state.networks().map(Listing::complete) else {
            return;
        };
        let others = parent::users_of_parent(state, &networks, network);
        parent::delete_if_ours(host, &self.config.netns_dir, network, &others);
    }

    /// The guard of a failed ADD: the `NAME.VLANID` master of CNI network
    /// `name`, as recorded now, deleted when it is ours and idle.
    fn drop_idle_master_locked(&self, state: &Locked<'_>, name: &str) {
        let Ok(networks) = state.networks() else {
            return;
        };
        let Some(network) = networks.iter().find(|n| n.name == name && is_cni(n)) else {
            return;
        };
        if !matches!(network.parent_origin, ParentOrigin::VlanCreated { .. }) {
            return;
        }
        if let Ok(host) = Handle::new() {
            self.drop_parent_if_idle(&host, state, network);
        }
    }
}

/// The network `cni_network` made or checked for `net` (its id `found`),
/// read again under the lock while it still has this name, else looked up
/// by name among every network; refused when another config made it since,
/// or it is not CNI's.
fn cni_network_locked(
    state: &Locked<'_>,
    net: &CniNetwork,
    found: Option<String>,
) -> Result<NetworkRecord, CniAddError> {
    let again = match &found {
        Some(found) => state.network(found)?,
        None => None,
    };
    let network = match again
        .filter(|record| record.name == net.name && record.state != NetworkState::Creating)
    {
        Some(record) => record,
        // By its name only, as DEL and GC look it up: a network whose id
        // starts with the name (this one removed meanwhile) is another's,
        // whose DEL and GC would never find this attachment.
        None => state
            .networks()?
            .iter()
            .find(|n| n.name == net.name && n.state != NetworkState::Creating)
            .cloned()
            .ok_or_else(|| {
                Error::not_found(format!("network {} was removed meanwhile", net.name))
            })?,
    };
    match cni_config(&network) {
        None => Err(CniAddError::Config(config_error(format!(
            "network {} was not made by CNI",
            network.name
        )))),
        // Made again for another config since `cni_network` looked.
        Some(config) if config != net.config => Err(CniAddError::Config(config_error(format!(
            "network {} was made again meanwhile with another config ({config}); this one has {}",
            network.name, net.config
        )))),
        Some(_) => Ok(network),
    }
}

/// `CNI_NETNS` as every later reader must take it: a relative path (the
/// spec's is a path, which the reference plugin opens from its working
/// directory) joined to the working directory it is opened from, for
/// `restore`, GC and the CLI read recorded paths from anywhere.
fn absolute_netns(path: &Path) -> Result<PathBuf, Error> {
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(|e| {
        Error::io(
            format_args!(
                "network namespace {}: reading the working directory it is relative to",
                path.display()
            ),
            &e,
        )
    })?;
    Ok(cwd.join(path))
}

/// Refuses an asked-for address of `wanted` that `specs` (their host
/// addresses filled in) hold as the host's own: the allocator refuses it
/// too, once the network is made, too late to leave nothing behind. Not
/// a config's fault (code 7): reported as the allocator's refusal is (999).
fn refuse_hosts_own(specs: &[SubnetSpec], wanted: &[IpAddr]) -> Result<(), Error> {
    for &address in wanted {
        crate::ipam::exact_spec(specs, address)
            .map_err(|error| Error::failed(error.to_string()))?;
    }
    Ok(())
}

/// Refuses, before anything is made, an asked-for address no network of
/// `net` could lease: outside its subnets, outside `rangeStart`-`rangeEnd`,
/// or reserved (a gateway, a subnet's first or last address), with the
/// allocator's own words. What depends on the leases (taken, exhausted)
/// is the allocator's to say under the lock.
fn refuse_unservable(net: &CniNetwork, wanted: &[IpAddr]) -> Result<(), Error> {
    if wanted.is_empty() {
        return Ok(());
    }
    one_per_family(wanted)?;
    let mut req = NetworkCreate::new(net.name.clone());
    for (subnet, gateway) in &net.subnets {
        req.subnets.push(*subnet);
        req.gateways.extend(gateway);
    }
    // Ranges the network cannot take are the network's checks to refuse.
    let Ok(mut specs) = subnets::from_request(&req) else {
        return Ok(());
    };
    crate::ipam::fill_default_gateways(&mut specs);
    for (at, &address) in wanted.iter().enumerate() {
        if let Some(error) = outside_bounds(&net.bounds, address) {
            return Err(error);
        }
        crate::ipam::exact_spec(&specs, address)?;
        // Asked for twice: the second is taken, as the allocator says.
        if wanted[..at].contains(&address) {
            return Err(crate::ipam::IpamError::AddressInUse { address }.into());
        }
    }
    Ok(())
}

/// Puts an attachment's addresses and routes in `plan`: every address on
/// the link, as the reference configures them (the first of each family
/// is the record's, the others come with the link and go with it), the
/// routes a CNI result names (a next hop of `None`: the gateway of the
/// network's subnet holding the address of the route's family) and no
/// other, none being implied.
fn plan_addresses(
    plan: &mut EndpointPlan,
    network: &NetworkRecord,
    addresses: &[IpNet],
    routes: &[ResultRoute],
) {
    plan.ipv4 = addresses.iter().find_map(|a| match a {
        IpNet::V4(net) => Some(*net),
        IpNet::V6(_) => None,
    });
    plan.ipv6 = addresses.iter().find_map(|a| match a {
        IpNet::V6(net) => Some(*net),
        IpNet::V4(_) => None,
    });
    let (ipv4, ipv6) = (plan.ipv4.map(IpNet::V4), plan.ipv6.map(IpNet::V6));
    plan.extra_addresses = addresses
        .iter()
        .copied()
        .filter(|a| Some(*a) != ipv4 && Some(*a) != ipv6)
        .collect();
    plan.route4 = DefaultRoute::None;
    plan.route6 = DefaultRoute::None;
    plan.routes = routes
        .iter()
        .map(|route| {
            let family_gw = addresses
                .iter()
                .filter(|a| a.addr().is_ipv4() == route.dst.addr().is_ipv4())
                .find_map(|a| network.gateway_for(a.addr()));
            ResultRoute {
                gw: route.gw.or(family_gw),
                ..route.clone()
            }
        })
        .collect();
}

/// The master of a `linkInContainer` ADD, in the container's namespace:
/// the named one, or the interface of the namespace's default route; its
/// MTU checked against the config's.
fn in_container_master(inside: &OpenNetns, net: &CniNetwork) -> Result<Link, CniAddError> {
    let name = match &net.master {
        Some(name) => name.clone(),
        None => default_route_link(&inside.handle).map_err(|error| {
            CniAddError::Config(config_error(format!(
                "linkInContainer: in namespace {}: {error}",
                inside.label()
            )))
        })?,
    };
    let master = inside.handle.link_by_name(&name)?.ok_or_else(|| {
        CniAddError::Config(config_error(format!(
            "linkInContainer: master {name} does not exist in namespace {}",
            inside.label()
        )))
    })?;
    if let (Some(mtu), Some(master_mtu)) = (net.mtu, master.mtu) {
        if mtu > master_mtu {
            return Err(CniAddError::Config(config_error(format!(
                "mtu {mtu} is larger than the MTU {master_mtu} of master {name} in namespace {}",
                inside.label()
            ))));
        }
    }
    Ok(master)
}

/// The interface of the IPv4 default route of `host` (the reference
/// plugin's choice when `master` is not set): the host's, or with
/// `linkInContainer` the container's.
fn default_route_link(host: &Handle) -> Result<String, Error> {
    // IPv4's first, then IPv6's, as the reference looks through both
    // families: an IPv6-only host has a master too.
    let mut index = None;
    for family in [IpFamily::V4, IpFamily::V6] {
        index = host
            .routes(family)?
            .into_iter()
            .filter(|r| r.is_default() && r.is_unicast())
            // An ECMP default route's first next hop.
            .find_map(|r| r.hops().into_iter().find_map(|hop| hop.oif));
        if index.is_some() {
            break;
        }
    }
    // Not the config's fault: the host lacks the route (the reference's
    // 999 too).
    let index = index.ok_or_else(|| {
        Error::not_found(
            "no master given and the host has no default route (IPv4 or IPv6) to take it from"
                .to_string(),
        )
    })?;
    let link = host.link_by_index(index)?.ok_or_else(|| {
        Error::failed(format!(
            "the default route's interface (index {index}) vanished"
        ))
    })?;
    Ok(link.name)
}

/// Addresses leased by [`allocate`], and the allocation cursors as they
/// were before: [`Leases::give_back`] undoes both.
struct Leases {
    addresses: Vec<IpNet>,
    cursors: Vec<crate::store::SavedCursor>,
}

impl Leases {
    /// Releases what `owner` holds on `network` and puts the cursors back:
    /// an ADD refused after its allocation leaves even that hint as it was.
    fn give_back(&self, state: &Locked<'_>, network: &NetworkRecord, owner: &str) {
        give_back(state, network, owner, &self.cursors);
    }
}

fn give_back(
    state: &Locked<'_>,
    network: &NetworkRecord,
    owner: &str,
    cursors: &[crate::store::SavedCursor],
) {
    let _ = state.release_owner(network, owner);
    let _ = state.put_cursors(network, cursors);
}

/// Leases one address per family of the network's subnets to `owner`:
/// the `wanted` ones first, then the next free, within `bounds` (host-local's
/// `rangeStart`/`rangeEnd` per subnet). On failure none stays, and the
/// cursors are as found.
fn allocate(
    state: &Locked<'_>,
    network: &NetworkRecord,
    wanted: &[IpAddr],
    owner: &str,
    bounds: &[(IpNet, IpAddr, IpAddr)],
) -> Result<Leases, Error> {
    one_per_family(wanted)?;
    let cursors = state.cursors(network)?;
    let mut families: Vec<IpFamily> = Vec::new();
    for subnet in &network.subnets {
        let family = IpFamily::of(subnet.subnet.addr());
        if !families.contains(&family) {
            families.push(family);
        }
    }
    let mut requests: Vec<Request> = wanted.iter().map(|a| Request::Exact(*a)).collect();
    for &family in &families {
        if !wanted.iter().any(|a| IpFamily::of(*a) == family) {
            requests.push(Request::Any(family));
        }
    }
    let mut taken = Vec::new();
    for request in requests {
        let got = match request {
            Request::Exact(address) => match outside_bounds(bounds, address) {
                Some(error) => Err(error),
                None => state.allocate(network, request, owner).map_err(Error::from),
            },
            Request::Any(family) => allocate_within(state, network, family, owner, bounds),
        };
        match got {
            Ok(address) => taken.push(address),
            Err(error) => {
                give_back(state, network, owner, &cursors);
                return Err(error);
            }
        }
    }
    // In the order of the range sets, as host-local answers, whichever was
    // asked for: a runtime takes the first for the pod's primary address.
    // One a family (`one_per_family`): two at most, swapped if need be.
    let rank = |address: &IpNet| {
        families
            .iter()
            .position(|family| *family == IpFamily::of(address.addr()))
    };
    if let [first, second] = taken.as_mut_slice() {
        if rank(second) < rank(first) {
            std::mem::swap(first, second);
        }
    }
    Ok(Leases {
        addresses: taken,
        cursors,
    })
}

/// Refuses a second asked-for address of a family: a network has one
/// range set a family, and host-local leases one address a range set,
/// refusing the others with these words. (Leased, the second went on the
/// link but not into the record, and DEL, which releases what the record
/// names, left it leased.)
fn one_per_family(wanted: &[IpAddr]) -> Result<(), Error> {
    // One asked for twice is refused as taken, where it is leased.
    let extra: Vec<String> = wanted
        .iter()
        .enumerate()
        .filter(|&(at, address)| {
            let before = &wanted[..at];
            !before.contains(address)
                && before
                    .iter()
                    .any(|other| IpFamily::of(*other) == IpFamily::of(*address))
        })
        .map(|(_, address)| address)
        .map(ToString::to_string)
        .collect();
    match extra.is_empty() {
        true => Ok(()),
        false => Err(Error::failed(format!(
            "failed to allocate all requested IPs: {}",
            extra.join(" ")
        ))),
    }
}

/// A DEL's record `id` of `network` that cannot be read (see
/// [`DelLookup`]): the addresses whose files name it released,
/// the record removed, committed; the note that says so.
fn forget_damaged_record(
    state: &Locked<'_>,
    network: &NetworkRecord,
    id: &str,
    damage: &StoreError,
) -> Result<String, Error> {
    let freed = state.release_owner(network, id)?;
    state.remove_endpoint(&network.id, id)?;
    state.commit()?;
    Ok(format!(
        "the attachment's record could not be read ({damage}): removed, with the {} address(es) leased to it",
        freed.len()
    ))
}

/// What a DEL finds under the lock: the lock, the CNI network of the
/// config's name, and its attachment's record, or the damage of a file
/// there whose text cannot be read ([`StoreError::Corrupt`]).
type DelLookup<'a> = (
    Locked<'a>,
    Option<NetworkRecord>,
    Result<Option<EndpointRecord>, StoreError>,
);

/// Whether an attachment's record (`recorded`) names a namespace that is
/// not `inside`: told by the identities, so never for a record without
/// one (an older version's) or a namespace whose identity cannot be read.
fn recorded_elsewhere(recorded: Option<&EndpointRecord>, inside: &OpenNetns) -> bool {
    recorded
        .and_then(|endpoint| endpoint.netns_id)
        .is_some_and(|recorded| {
            inside
                .identity()
                .is_ok_and(|now| !recorded.same_namespace(&now))
        })
}

/// DEL's deletion of the link named `ifname` in `inside` (the namespace at
/// `path`): only an ipvlan link, whoever made it; anything else is left,
/// with a note.
fn delete_ipvlan_named(
    inside: &OpenNetns,
    path: &Path,
    ifname: &str,
    notes: &mut Vec<String>,
) -> Result<(), Error> {
    let Some(link) = inside.handle.link_by_name(ifname)? else {
        return Ok(());
    };
    if link.kind.as_deref() != Some("ipvlan") {
        notes.push(format!(
            "{ifname} in {} is not an ipvlan link ({}); left in place",
            path.display(),
            link.kind.as_deref().unwrap_or("no kind")
        ));
        return Ok(());
    }
    match inside.handle.link_del(link.index) {
        Ok(()) => Ok(()),
        Err(error) if error.is_not_found() => Ok(()),
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lease-only network (our binary as another plugin's IPAM) on `subnet`.
    fn lease_only_network(name: &str, subnet: &str) -> CniNetwork {
        let ipam = format!("ipam=ipvlan ranges={subnet}");
        CniNetwork {
            name: name.into(),
            master: None,
            mode: IpvlanMode::L2,
            flag: IpvlanFlag::Bridge,
            mtu: None,
            link_in_container: false,
            subnets: vec![(subnet.parse().unwrap(), None)],
            bounds: Vec::new(),
            config: format!("lease-only {ipam}"),
            ipam_config: ipam,
        }
    }

    /// A lease of container `c1`'s `eth0`, its address the next free.
    const C1_LEASE: CniLease<'static> = CniLease {
        container_id: "c1",
        ifname: "eth0",
        netns: None,
        wanted: Vec::new(),
    };

    /// GC lists records without the lock; a DEL and a new ADD of the same
    /// attachment may come before it takes the lock. Its step for the
    /// record it listed must then leave the new record and its leases be.
    #[test]
    fn gc_removes_only_the_record_it_listed_not_a_newer_one_of_the_same_id() {
        let dir = std::env::temp_dir().join(format!("ipvlan-cni-gc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let manager = Manager::open(super::super::Config::new(&dir)).unwrap();
        let net = lease_only_network("gcrace", "10.66.0.0/24");
        let lease = C1_LEASE;
        manager.cni_lease_add(&net, &lease).unwrap();
        let network = manager.store.network_by_name("gcrace").unwrap();
        let listed = manager.store.endpoints_of(&network.id).unwrap().items;
        assert_eq!(listed.len(), 1);
        manager.cni_lease_del("gcrace", "c1", "eth0").unwrap();
        let again = manager.cni_lease_add(&net, &lease).unwrap();
        manager.cni_gc_one(&network, &listed[0]).unwrap();
        let id = lease_id("c1", "eth0");
        let kept: Vec<String> = manager
            .store
            .endpoints_of(&network.id)
            .unwrap()
            .items
            .into_iter()
            .map(|e| e.id)
            .collect();
        let leases: Vec<(String, String)> = manager
            .store
            .addresses(&network)
            .unwrap()
            .into_iter()
            .map(|(a, owner)| (a.to_string(), owner))
            .collect();
        assert_eq!(kept, [id.as_str()], "GC of the old record took the new one");
        assert_eq!(leases, [(again[0].0.addr().to_string(), id)]);
        // The record as it is now is GC's to remove.
        let now = manager.store.endpoints_of(&network.id).unwrap().items;
        manager.cni_gc_one(&network, &now[0]).unwrap();
        assert!(manager.store.endpoints_of(&network.id).unwrap().is_empty());
        assert!(manager.store.addresses(&network).unwrap().is_empty());
        drop(manager);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An ADD whose network was removed between its look and its lock
    /// looks it up again by name only: a network whose id starts with the
    /// name, made by the same config (a delegated IPAM's has neither name
    /// nor subnets), was taken for it, and the attachment filed where its
    /// own DEL and GC never look.
    #[test]
    fn an_add_never_takes_a_network_whose_id_starts_with_its_name() {
        let dir = std::env::temp_dir().join(format!("ipvlan-cni-prefix-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let manager = Manager::open(super::super::Config::new(&dir)).unwrap();
        let mut net = lease_only_network("other", "10.67.0.0/24");
        let lease = C1_LEASE;
        manager.cni_lease_add(&net, &lease).unwrap();
        let other = manager.store.network_by_name("other").unwrap();
        net.name = other.id[..12].to_string();
        let state = manager.store.lock().unwrap();
        let found = cni_network_locked(&state, &net, None);
        assert!(
            matches!(&found, Err(CniAddError::Failed(e)) if e.kind() == ErrorKind::NotFound),
            "{:?}",
            found.map(|n| n.name)
        );
        drop(state);
        drop(manager);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A container's endpoint an older version filed under the
    /// container's name (`cni-web`, `cnl-db`) is neither collected by a
    /// GC nor taken for a lease (whose link `restore` leaves alone): GC
    /// took it by its id's prefix alone, its link deleted and its address
    /// released.
    #[test]
    fn gc_and_leases_never_take_a_containers_endpoint_for_a_cni_one() {
        let record = |id: &str, container: Option<&str>| EndpointRecord {
            id: id.to_string(),
            network_id: "n".repeat(64),
            container: container.map(str::to_string),
            netns: "/run/netns/x".into(),
            ifname: "eth0".into(),
            mac: None,
            ipv4: Some("10.0.0.2/24".parse().unwrap()),
            ipv6: None,
            state: EndpointState::Attached,
            created: crate::store::Timestamp { secs: 0, nanos: 0 },
            netns_id: None,
            ifindex: None,
        };
        let ours = record(&attachment_id("c1", "eth0"), None);
        let lease = record(&lease_id("c2", "eth0"), None);
        let web = record("cni-web", Some("cni-web"));
        let db = record("cnl-db", Some("cnl-db"));
        let none_listed: &[String] = &[];
        assert!(collected_by_gc(&ours, false, none_listed));
        assert!(!collected_by_gc(&ours, false, &[key_hash("c1", "eth0")]));
        assert!(!collected_by_gc(&ours, true, none_listed));
        assert!(collected_by_gc(&lease, true, none_listed));
        assert!(!collected_by_gc(&lease, false, none_listed));
        for container in [&web, &db] {
            assert!(
                !collected_by_gc(container, false, none_listed),
                "{}",
                container.id
            );
            assert!(
                !collected_by_gc(container, true, none_listed),
                "{}",
                container.id
            );
        }
        assert!(is_lease(&lease));
        assert!(!is_lease(&ours) && !is_lease(&db));
    }

    #[test]
    fn a_lease_shares_a_network_whose_ipam_part_is_the_same() {
        let ipam = "ipam=ipvlan ranges=10.0.0.0/24";
        assert!(same_ipam(&format!("master=eth0 mode=l2 {ipam}"), ipam));
        assert!(same_ipam(&format!("lease-only {ipam}"), ipam));
        assert!(same_ipam(ipam, ipam));
        assert!(!same_ipam(
            "master=eth0 ipam=ipvlan ranges=10.0.0.0/25",
            ipam
        ));
        // A longer text that merely ends the same way is another config.
        assert!(!same_ipam(&format!("x{ipam}"), ipam));
        assert_eq!(lease_id("c", "eth0")[4..], attachment_id("c", "eth0")[4..]);
        assert_ne!(lease_id("c", "eth0"), attachment_id("c", "eth0"));
    }
}
