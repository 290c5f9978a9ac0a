//! `network create|rm|ls|inspect`: validation, the network records, and
//! the order of a create (intent record, parent, final record).

use super::kernel_support::refuse_what_the_kernel_lacks;
use super::netns_identity::same_network;
use super::options;
use super::parent::{self, ParentPlan, ETH_MAX_MTU};
use super::report::endpoint_label;
use super::{random_hex, subnets, Error, IpvlanMode, Manager, NetworkCreate, NetworkInfo};
use crate::rtnl::{Handle, Link};
use crate::store::{
    Damaged, EndpointRecord, Listing, Locked, NetworkRecord, NetworkState, ParentOrigin, StateDir,
    Timestamp,
};

impl Manager {
    /// Validates the request, checks kernel support, creates the parent if
    /// needed (dummy or `NAME.VLANID`) and records the network.
    ///
    /// ```no_run
    /// # use ipvlan::driver::{Config, Manager, NetworkCreate};
    /// # let manager = Manager::open(Config::from_env())?;
    /// let mut req = NetworkCreate::new("ipvlan20");
    /// req.subnets.push("192.168.20.0/24".parse().unwrap());
    /// req.options.push(("parent".into(), "eth0.20".into()));
    /// let info = manager.create_network(&req)?;
    /// for warning in &info.warnings {
    ///     println!("warning: {warning}");
    /// }
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn create_network(&self, req: &NetworkCreate) -> Result<NetworkInfo, Error> {
        self.create_network_marked(req, None)
    }

    /// [`Manager::create_network`] with `mark` (an option the user cannot
    /// give, e.g. the CNI config a network was made from) added to the
    /// record's options. A marked network gets no default subnets: its
    /// config names every range, or its addresses come from elsewhere (a
    /// delegated IPAM plugin).
    pub(crate) fn create_network_marked(
        &self,
        req: &NetworkCreate,
        mark: Option<(&str, &str)>,
    ) -> Result<NetworkInfo, Error> {
        self.create_network_over(req, mark, None)
    }

    /// [`Manager::create_network_marked`], made over the record `replacing`
    /// (a CNI network with no master, holding leases) when given: same id,
    /// so its leases stay its own, and no intent record, since rolling one
    /// back would take the leases with it. The final record is written
    /// before the parent is made and put back as it was when making fails;
    /// a crash in between leaves a record whose parent `restore` or the
    /// next ADD makes. [`super::ErrorKind::AlreadyExists`] when `replacing`
    /// is no longer the network of the name, as it was.
    pub(crate) fn create_network_over(
        &self,
        req: &NetworkCreate,
        mark: Option<(&str, &str)>,
        replacing: Option<&NetworkRecord>,
    ) -> Result<NetworkInfo, Error> {
        options::check_driver(&req.driver)?;
        options::check_network_name(&req.name)?;
        if mark.is_none() {
            options::refuse_predefined_network_name(&req.name)?;
        }
        let opts = options::parse_options(&req.options)?;
        if req.internal {
            if let Some(parent) = &opts.parent {
                return Err(Error::invalid(format!(
                    "--internal cannot be combined with -o parent={parent}: an internal network gets its own dummy parent and no external connectivity; drop one of the two"
                )));
            }
        }
        let internal = req.internal || opts.parent.is_none();
        let mut subnets = checked_subnets(req, opts.mtu)?;
        let ipv6 = req.ipv6 || subnets.iter().any(|s| s.subnet.addr().is_ipv6());
        if self.store.never_made()? && beside_a_directory(self.store.root()) {
            // The lock makes the store: a first create the host refuses
            // (no ipvlan, no such parent, no IPv6) leaves none behind. A
            // root whose directory is not there is the lock's to make, or
            // to refuse first (`x/../file/state`).
            refuse_on_the_host_alone(&opts, ipv6, &subnets, mark.is_none(), &self.config)?;
        }

        let state = self.store.lock()?;
        let mut networks = state.networks()?;
        refuse_when_damaged(&networks.damaged)?;
        if let Some(old) = replacing {
            // Taken over only as the caller found it without the lock:
            // the same record, holding leases alone. An attachment its own
            // config made since stays that config's (the caller, told
            // `AlreadyExists`, looks again and refuses).
            let changed =
                || Error::already_exists(format!("network {} changed meanwhile", req.name));
            if !networks.iter().any(|n| n == old) {
                return Err(changed());
            }
            let live = state.endpoints_of(&old.id)?;
            if !live.damaged.is_empty() || !live.iter().all(super::options::is_cni_lease) {
                return Err(changed());
            }
            networks.items.retain(|n| n.id != old.id);
        }
        refuse_name_of_an_id(&networks, &req.name)?;
        if let Some(existing) = networks.iter().find(|n| n.name == req.name) {
            let mut message = format!("network with name {} already exists", req.name);
            if existing.state == NetworkState::Creating {
                message.push_str(": it was left half-created by an interrupted `network create`; run `ipvlan restore` to roll it back");
            }
            return Err(Error::already_exists(message));
        }
        match mark {
            // A CNI network: another that shares no address with it may
            // share its subnet (see `bounds::hand_out_one_address`).
            Some((super::options::CNI_MARK, config)) => {
                super::bounds::check_overlaps_of_config(&subnets, &networks, config)?
            }
            _ => subnets::check_overlaps(&subnets, &networks)?,
        }

        let host = Handle::new()?;
        let id = new_network_id(&networks)?;
        let mut warnings = Vec::new();
        let plan = plan_parent(&host, &opts, ipv6, &id[..12], &mut warnings)?;
        parent::check_shared(&host, &self.config.netns_dir, &plan, &opts, &networks)?;

        // Default subnets: IPv4 always, IPv6 when asked for.
        if mark.is_none() {
            subnets::add_defaults(&host, &state, &mut subnets, ipv6, &networks)?;
        }
        // Every subnet has a gateway, as in the docs (Docker up to v27): in
        // l3/l3s and internal networks it is reserved but never routed to.
        crate::ipam::fill_default_gateways(&mut subnets);
        // The host's own addresses on the parent it already has (eth0 on
        // the LAN the network shares): a container given one would take
        // the host's traffic for it.
        if let ParentPlan::Existing(link) = &plan {
            reserve_host_addresses(&host, link, &mut subnets)?;
            // Again with them: a range the host's addresses fill leaves
            // every `run` without `--ip` to fail. A CNI config's were
            // judged by family before (its range sets are served subnet
            // after subnet, as host-local's).
            if mark.is_none() {
                refuse_subnets_without_room(&subnets)?;
                if opts.mode == IpvlanMode::L2 {
                    warnings.extend(gateways_of_the_host(&subnets, &link.name));
                }
            }
        }

        let (parent_name, parent_origin, parent_index) = plan.origin(&networks)?;
        let mut record = NetworkRecord {
            id: replacing.map_or(id, |old| old.id.clone()),
            name: req.name.clone(),
            driver: "ipvlan".into(),
            mode: opts.mode,
            flag: opts.flag,
            parent: parent_name,
            parent_origin,
            parent_index,
            internal,
            ipv6,
            mtu: opts.mtu,
            subnets,
            options: req
                .options
                .iter()
                .cloned()
                .chain(mark.map(|(k, v)| (k.to_string(), v.to_string())))
                .collect(),
            state: NetworkState::Creating,
            created: replacing.map_or_else(Timestamp::now, |old| old.created),
        };
        if let Some(old) = replacing {
            record.state = NetworkState::Created;
            parent::put_naming_parent(&state, &record)?;
            let put = |r: &NetworkRecord| parent::put_naming_parent(&state, r);
            if let Err(error) = plan.create(&host, &mut record, put) {
                let _ = state.put_network(old);
                let _ = state.commit();
                return Err(error);
            }
            if plan.makes_link() {
                parent::adopt_made_parent(&state, &networks, &record)?;
            }
            state.commit()?;
            let mut info = NetworkInfo::from_record(&record, &[]);
            info.warnings = warnings;
            return Ok(info);
        }
        // Intent first, with the ifindex the parent will have: a crash from
        // here on leaves a record that restore rolls back, deleting the
        // parent only if it is the link we made.
        parent::put_naming_parent(&state, &record)?;
        let put = |r: &NetworkRecord| parent::put_naming_parent(&state, r);
        if let Err(error) = plan.create(&host, &mut record, put) {
            return Err(half_made_record_removed(&state, &record, error));
        }
        record.state = NetworkState::Created;
        crate::fault::point("network: before final record");
        let written = match crate::fault::forced("network: final record refused") {
            true => Err(crate::store::StoreError::io("writing", &record.id)(
                std::io::Error::from_raw_os_error(libc::ENOSPC),
            )
            .into()),
            false => match plan.makes_link() {
                true => parent::adopt_made_parent(&state, &networks, &record),
                false => Ok(()),
            }
            .and_then(|()| Ok(state.put_network(&record)?)),
        };
        if let Err(mut error) = written {
            // The parent goes only if this create made it: one another
            // network made (and this one shares) stays theirs.
            let others = parent::users_of_parent(&state, &networks, &record);
            if let Some(kept) =
                parent::delete_if_ours(&host, &self.config.netns_dir, &record, &others)
            {
                error = error.and_left(kept);
            }
            return Err(half_made_record_removed(&state, &record, error));
        }
        // The final state durable before the command reports it.
        state.commit()?;
        let mut info = NetworkInfo::from_record(&record, &[]);
        info.warnings = warnings;
        Ok(info)
    }

    /// Removes a network (by name, ID or ID prefix); refused while containers
    /// are attached or one of its endpoint records cannot be read. Deletes
    /// the parent if we created it and no other network uses it; returns
    /// what was left alone, and why (a parent kept because a damaged
    /// network record might use it).
    ///
    /// ```no_run
    /// # let manager = ipvlan::driver::Manager::open(ipvlan::driver::Config::from_env())?;
    /// for note in manager.remove_network("ipvlan20")? {
    ///     println!("warning: {note}");
    /// }
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn remove_network(&self, name_or_id: &str) -> Result<Vec<String>, Error> {
        if self.store.never_made()? {
            // Found in no store, and none made for it.
            return Err(Error::not_found(not_found_message(name_or_id)));
        }
        let state = self.store.lock()?;
        let networks = state.networks()?;
        let mut record = find_network(&networks, name_or_id)?.clone();
        // Before the records are listed: a dead batch's intents made
        // records here are listed with them.
        refuse_while_intent_pending(&state, &record)?;
        let endpoints = state.endpoints_of(&record.id)?;
        if !endpoints.is_empty() {
            return Err(endpoints_in_the_way(&record, &endpoints));
        }
        if !endpoints.damaged.is_empty() {
            // Removing the network would delete them with their directory.
            let list: Vec<String> = endpoints.damaged.iter().map(Damaged::to_string).collect();
            return Err(Error::in_use(format!(
                "network {} has endpoint records that cannot be read ({}); repair them or move them out of the state directory first",
                record.name,
                list.join("; ")
            )));
        }
        record.state = NetworkState::Removing;
        state.put_network(&record)?;
        let mut notes = Vec::new();
        let unreadable = networks.damaged.clone();
        let others = parent::users_of_parent(&state, &networks, &record);
        if unreadable.is_empty() || record.parent_origin == ParentOrigin::Existing {
            notes.extend(parent::delete_if_ours(
                &Handle::new()?,
                &self.config.netns_dir,
                &record,
                &others,
            ));
        } else {
            let paths: Vec<String> = unreadable
                .iter()
                .map(|d| d.path.display().to_string())
                .collect();
            notes.push(format!(
                "parent {} kept: a damaged network record may use it ({})",
                record.parent,
                paths.join(", ")
            ));
        }
        state.remove_network(&record.id)?;
        state.commit()?;
        Ok(notes)
    }

    /// Whether the network `id` has an endpoint record, in any state (one
    /// listing of its directory, no record read); one whose directory
    /// cannot be listed counts as in use, which `network ls -f
    /// dangling=true` (the list a prune removes) then leaves out.
    pub fn network_in_use(&self, id: &str) -> bool {
        self.store
            .endpoint_ids(id)
            .map_or(true, |ids| !ids.is_empty())
    }

    /// Every network that can be read, in creation order, and the state
    /// files that cannot (network and endpoint records), which are left
    /// as they are: one damaged file never hides the others. Not those a
    /// killed `network create` left half-created
    /// ([`Manager::half_created_networks`]), which no other call accepts
    /// either.
    ///
    /// ```no_run
    /// # let manager = ipvlan::driver::Manager::open(ipvlan::driver::Config::from_env())?;
    /// let networks = manager.networks()?;
    /// for network in &networks {
    ///     println!("{} {} {}", network.short_id(), network.name, network.driver);
    /// }
    /// for damaged in &networks.damaged {
    ///     eprintln!("warning: damaged state file {damaged}");
    /// }
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn networks(&self) -> Result<Listing<NetworkInfo>, Error> {
        self.store.refresh();
        // Lock-free, like every listing: a reader must never hold up a
        // writer (see `StateDir` for what an unlocked read guarantees).
        let state = &self.store;
        let records = state.networks()?;
        let mut infos = Listing {
            items: Vec::new(),
            damaged: records.damaged,
        };
        for record in records.items {
            if record.state == NetworkState::Creating {
                continue;
            }
            match state.endpoints_of(&record.id) {
                Ok(endpoints) => {
                    infos.damaged.extend(endpoints.damaged.iter().cloned());
                    infos
                        .items
                        .push(NetworkInfo::from_record(&record, &endpoints));
                }
                Err(error) => {
                    infos.note(error)?;
                    infos.items.push(NetworkInfo::from_record(&record, &[]));
                }
            }
        }
        Ok(infos)
    }

    /// What `network ls` prints: the network records only (no endpoint
    /// record is read, so a damaged one does not show here; `inspect` and
    /// `restore` name it), read once without the lock. The networks a
    /// killed `network create` left half-created are apart in
    /// [`NetworkList::half_created`] (a record found half-created takes
    /// the lock, without waiting, to tell a killed create from one at
    /// work).
    ///
    /// ```no_run
    /// # let manager = ipvlan::driver::Manager::open(ipvlan::driver::Config::from_env())?;
    /// let list = manager.network_list()?;
    /// for network in &list.networks {
    ///     println!("{} {}", network.short_id(), network.name);
    /// }
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn network_list(&self) -> Result<NetworkList, Error> {
        self.store.refresh();
        let records = self.store.networks()?;
        let mut list = NetworkList {
            networks: Listing {
                items: Vec::new(),
                damaged: records.damaged,
            },
            half_created: Vec::new(),
        };
        let mut half_created = Vec::new();
        for record in records.items {
            if record.state == NetworkState::Creating {
                half_created.push(record);
            } else {
                list.networks
                    .items
                    .push(NetworkInfo::from_record(&record, &[]));
            }
        }
        list.half_created = self.interrupted_creates(half_created)?;
        Ok(list)
    }

    /// Of the networks found half-created without the lock, the names of
    /// those a killed `network create` left: still half-created under the
    /// lock, taken without waiting. None while another command holds it:
    /// the record may be a `network create` at work (which holds the lock
    /// until its record is whole, or gone), and sending the operator to
    /// `restore` then is wrong.
    fn interrupted_creates(&self, found: Vec<NetworkRecord>) -> Result<Vec<String>, Error> {
        if found.is_empty() {
            return Ok(Vec::new());
        }
        let state = match self.store.try_lock() {
            Ok(Some(state)) => state,
            Ok(None) => return Ok(Vec::new()),
            // A lock that cannot be taken (a read-only store, a log that
            // cannot be taken up) is no command at work: each named.
            Err(_) => return Ok(found.into_iter().map(|record| record.name).collect()),
        };
        Ok(found
            .into_iter()
            .filter(|record| {
                // A record that cannot be read now is still named:
                // nothing says it was finished.
                state.network(&record.id).map_or(true, |now| {
                    now.is_some_and(|now| now.state == NetworkState::Creating)
                })
            })
            .map(|record| record.name)
            .collect())
    }

    /// Names of the networks a killed `network create` left half-created:
    /// unusable, and in the way of a new network of the same name, until
    /// [`Manager::restore`] rolls them back. None while another command
    /// holds the store's lock: it may be a `network create` at work.
    ///
    /// ```no_run
    /// # let manager = ipvlan::driver::Manager::open(ipvlan::driver::Config::from_env())?;
    /// for name in manager.half_created_networks()? {
    ///     eprintln!("network {name} is half-created; run `ipvlan restore`");
    /// }
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn half_created_networks(&self) -> Result<Vec<String>, Error> {
        self.store.refresh();
        let found = self
            .store
            .networks()?
            .into_iter()
            .filter(|n| n.state == NetworkState::Creating)
            .collect();
        self.interrupted_creates(found)
    }

    /// One network by name, ID or unique ID prefix; its endpoint records
    /// that cannot be read are named in its `warnings`.
    ///
    /// ```no_run
    /// # let manager = ipvlan::driver::Manager::open(ipvlan::driver::Config::from_env())?;
    /// let network = manager.network("db_net")?;
    /// for endpoint in &network.endpoints {
    ///     println!("{} {:?} {}", endpoint.container, endpoint.ipv4, endpoint.mac);
    /// }
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn network(&self, name_or_id: &str) -> Result<NetworkInfo, Error> {
        self.store.refresh();
        let state = &self.store;
        // By name: that network's records only.
        let record = lookup_network(state, name_or_id)?;
        let endpoints = state.endpoints_of(&record.id)?;
        let mut info = NetworkInfo::from_record(&record, &endpoints);
        // An endpoint record that cannot be read is not shown, so it is named.
        info.warnings = endpoints
            .damaged
            .iter()
            .map(|damaged| format!("damaged state file left as it is: {damaged}"))
            .collect();
        Ok(info)
    }
}

/// The answer of [`Manager::network_list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkList {
    /// The usable networks, in creation order, without their endpoints,
    /// and the network records that could not be read.
    pub networks: Listing<NetworkInfo>,
    /// Names of the networks a killed `network create` left half-created
    /// (none while another command holds the store's lock: it may be a
    /// `network create` at work).
    pub half_created: Vec<String>,
}

/// A new network's id: 64 random hex digits whose key (the first
/// [`crate::store::records::NETWORK_KEY_LEN`]) is no other network's of `networks` (every
/// network of the store: containers' indexes and views name networks by
/// key).
pub(super) fn new_network_id(networks: &Listing<NetworkRecord>) -> Result<String, Error> {
    loop {
        let id = random_hex(32)?;
        if !networks.iter().any(|n| same_network(&n.id, &id)) {
            return Ok(id);
        }
    }
}

/// Refuses `name` when it is another network's id: commands that take a
/// name or an id would find one network by it, others the other.
pub(super) fn refuse_name_of_an_id(
    networks: &Listing<NetworkRecord>,
    name: &str,
) -> Result<(), Error> {
    match networks.iter().find(|n| n.id == name) {
        Some(other) => Err(Error::invalid(format!(
            "invalid network name {name}: it is the id of network {}",
            other.name
        ))),
        None => Ok(()),
    }
}

/// The refusals of a network create that the host alone decides, with no
/// network recorded: [`plan_parent`], the parent's sharing with other
/// tools' links and the room its own addresses leave in the subnets (the
/// default subnets, which need the store, aside). Made again under the
/// lock, which decides: this is only so that a create refused on a host
/// without a store makes none.
fn refuse_on_the_host_alone(
    opts: &options::NetworkOptions,
    ipv6: bool,
    subnets: &[crate::ipam::SubnetSpec],
    room_checked: bool,
    config: &super::Config,
) -> Result<(), Error> {
    let host = Handle::new()?;
    let plan = plan_parent(&host, opts, ipv6, "", &mut Vec::new())?;
    parent::check_shared(&host, &config.netns_dir, &plan, opts, &[])?;
    if let ParentPlan::Existing(link) = &plan {
        let mut subnets = subnets.to_vec();
        reserve_host_addresses(&host, link, &mut subnets)?;
        if room_checked {
            refuse_subnets_without_room(&subnets)?;
        }
    }
    Ok(())
}

/// `error`, the failure of a `network create` that wrote `record`
/// (`creating`), once that record is removed again; when its removal
/// fails too, the error says what stays, for `restore` to roll back
/// (which a `network create` of the name also points to).
fn half_made_record_removed(state: &Locked<'_>, record: &NetworkRecord, error: Error) -> Error {
    match state.remove_network(&record.id) {
        Ok(_) => error,
        Err(left) => error.and_left(format_args!(
            "network {}'s half-made record stays ({left}): `ipvlan restore` rolls it back",
            record.name
        )),
    }
}

/// Whether the directory `path` is in (or would be made in) is there.
fn beside_a_directory(path: &std::path::Path) -> bool {
    let parent = match path.parent() {
        // `state`: in the working directory.
        Some(parent) if parent.as_os_str().is_empty() => std::path::Path::new("."),
        Some(parent) => parent,
        None => return false,
    };
    std::fs::metadata(parent).is_ok_and(|m| m.is_dir())
}

/// What a network of `opts` asks of this kernel and the host's links,
/// none of it under the lock: ipvlan support for its mode and flag, its
/// parent (a link there, or a `NAME.VLANID` whose base is; `short_id`
/// names a dummy parent) and its MTU against that parent's. The plan for
/// the parent; a parent that is down adds a warning. `network create`
/// checks it before it decides anything, and a CNI config before an idle
/// network is removed for it.
pub(super) fn plan_parent(
    host: &Handle,
    opts: &options::NetworkOptions,
    ipv6: bool,
    short_id: &str,
    warnings: &mut Vec<String>,
) -> Result<ParentPlan, Error> {
    // Kernel support before anything is decided about parents.
    refuse_what_the_kernel_lacks(host, opts.mode, opts.flag, ipv6)?;
    let plan = ParentPlan::new(host, opts.parent.as_deref(), short_id, warnings)?;
    // The dummy we make takes the network's MTU (1500 unless told); a VLAN
    // link made on the fly takes its base's.
    let parent_mtu = match &plan {
        ParentPlan::Existing(link) => link.mtu,
        ParentPlan::Vlan { base, .. } => base.mtu,
        ParentPlan::Dummy(_) => None,
    };
    let parent_name = opts.parent.as_deref().unwrap_or_default();
    match (opts.mtu, parent_mtu) {
        // An ipvlan link takes at most ETH_MAX_MTU.
        (Some(mtu), None) if mtu > ETH_MAX_MTU => Err(Error::invalid(format!(
            "mtu {mtu} is larger than {ETH_MAX_MTU}, the largest MTU of an ipvlan link"
        ))),
        (Some(mtu), Some(parent_mtu)) if mtu > parent_mtu => Err(Error::invalid(format!(
            "mtu {mtu} is larger than the MTU {parent_mtu} of parent {parent_name}"
        ))),
        // Without `-o mtu` the links take the parent's, on which the kernel
        // turns IPv6 off below its minimum: every attach would fail at its
        // first IPv6 address.
        (None, Some(parent_mtu)) if ipv6 && parent_mtu < options::IPV6_MIN_MTU => {
            Err(Error::invalid(format!(
                "the MTU {parent_mtu} of parent {parent_name} is too small for an IPv6 network: IPv6 needs at least {} (RFC 8200)",
                options::IPV6_MIN_MTU
            )))
        }
        _ => Ok(plan),
    }
}

/// The subnets of `req` as a new network gets them, with the refusals
/// that need neither the kernel nor the state: each subnet as `--subnet`
/// and its flags check it, room for an address in each, and `mtu` for an
/// IPv6 network.
pub(super) fn checked_subnets(
    req: &NetworkCreate,
    mtu: Option<u32>,
) -> Result<Vec<crate::ipam::SubnetSpec>, Error> {
    let subnets = subnets::from_request(req)?;
    refuse_subnets_without_room(&subnets)?;
    let ipv6 = req.ipv6 || subnets.iter().any(|s| s.subnet.addr().is_ipv6());
    options::check_mtu_for_ipv6(mtu, ipv6)?;
    Ok(subnets)
}

/// Refuses a subnet no container could get an address of: every attach
/// would fail.
fn refuse_subnets_without_room(subnets: &[crate::ipam::SubnetSpec]) -> Result<(), Error> {
    match subnets.iter().find(|spec| !spec.has_room()) {
        Some(spec) => {
            let place = match spec.ip_range {
                Some(range) => format!("ip range {range} of subnet {}", spec.subnet),
                None => format!("subnet {}", spec.subnet),
            };
            Err(Error::invalid(format!(
                "{place} has no address a container could get: its network, broadcast, anycast, gateway, aux addresses and the host's own take them all"
            )))
        }
        None => Ok(()),
    }
}

/// Puts the addresses `link` has in the host into the subnets that hold
/// them, as addresses no container gets.
pub(super) fn reserve_host_addresses(
    host: &Handle,
    link: &Link,
    subnets: &mut [crate::ipam::SubnetSpec],
) -> Result<(), Error> {
    // Links made on an ipvlan link join its master's port (the kernel
    // parents them there), where the master's own addresses are the
    // host's too.
    let mut links = vec![link.index];
    let port = parent::port_of(host, link)?;
    if port.index != link.index {
        links.push(port.index);
    }
    for index in links {
        for address in host.addrs_of(index)? {
            let address = address.net.addr();
            for spec in subnets.iter_mut().filter(|s| s.contains(address)) {
                if !spec.host.contains(&address) {
                    spec.host.push(address);
                }
            }
        }
    }
    Ok(())
}

/// A warning for each subnet whose gateway is the host's own address on
/// `parent` (the host routing for the LAN it shares with the network):
/// an `l2` container cannot reach the host's addresses on its parent
/// (ipvlan passes nothing between its links and their master), so a
/// default route through it leads nowhere. Not refused: the gateway may be
/// meant for a time the host gives that address up (a router's failover).
fn gateways_of_the_host(subnets: &[crate::ipam::SubnetSpec], parent: &str) -> Vec<String> {
    subnets
        .iter()
        .filter_map(|spec| {
            let gateway = spec.gateway?;
            spec.host.contains(&gateway).then(|| {
                format!(
                    "gateway {gateway} of subnet {} is the host's own address on {parent}: containers of an l2 network cannot reach the host's addresses on their parent, so their default route through it leads nowhere; give --gateway the LAN's router",
                    spec.subnet
                )
            })
        })
        .collect()
}

/// Refuses a decision that needs every network record (is the name free?
/// does a subnet overlap?) while one cannot be read.
fn refuse_when_damaged(damaged: &[Damaged]) -> Result<(), Error> {
    match damaged.first() {
        None => Ok(()),
        Some(damaged) => Err(Error::failed(format!(
            "damaged state file {damaged}; a new network could clash with the one it records (name, subnets, parent): repair it or move it out of the state directory first"
        ))),
    }
}

/// Why `network rm` cannot remove `network` yet: its endpoints, those a
/// killed command left half-done first, since `ipvlan restore` is what
/// clears them, not another disconnect.
fn endpoints_in_the_way(network: &NetworkRecord, endpoints: &[EndpointRecord]) -> Error {
    let (active, unfinished): (Vec<&EndpointRecord>, Vec<&EndpointRecord>) =
        endpoints.iter().partition(|e| e.state.is_attached());
    let active_clause = |names: &[&EndpointRecord]| {
        let names: Vec<String> = names.iter().map(|e| endpoint_label(e)).collect();
        format!(
            "active endpoints ({}); disconnect or remove them first",
            names.join(", ")
        )
    };
    if unfinished.is_empty() {
        return Error::in_use(format!(
            "network {} has {}",
            network.name,
            active_clause(&active)
        ));
    }
    let names: Vec<String> = unfinished
        .iter()
        .map(|e| format!("{}: {}", endpoint_label(e), e.state))
        .collect();
    let mut message = format!(
        "network {} has endpoints left by interrupted commands ({}); run `ipvlan restore` to finish them",
        network.name,
        names.join(", ")
    );
    if super::options::made_by_cni(network) {
        message.push_str(
            " (or wait: on a CNI network, an ADD waiting for its delegated IPAM plugin is `attaching` too, and `restore` leaves it to finish)",
        );
    }
    if !active.is_empty() {
        message.push_str("; it also has ");
        message.push_str(&active_clause(&active));
    }
    Error::in_use(message)
}

/// What an operation on a network that a killed `network create` left
/// behind is told.
/// Why network `network_id` may have an endpoint that no record names
/// yet, whose link removing the network would leave behind: the intent of
/// a single attach or detach that died, kept in the commit log because the
/// lock could not make it a record, or a dead batch's intents file not yet
/// made records (which may be any network's).
fn intent_pending(state: &Locked<'_>, network_id: &str) -> Option<String> {
    if let Some((network, endpoint)) = state.single_intent_left_endpoint() {
        if network == network_id {
            return Some(format!(
                "the intent of endpoint {endpoint}, left by an attach or detach that died, could not be made a record"
            ));
        }
    }
    state.expand_batch_intents().err().map(|error| {
        format!("the intents a batch that died left could not be made records ({error})")
    })
}

/// Refuses a change of `network` while [`intent_pending`] says it may have
/// an endpoint no record names: removing the network would leave that
/// endpoint's link, an attach would not see it (and hand its address, or
/// its namespace's place on the network, to another). Asked only when the
/// lock says such an intent may be left (no system call otherwise).
pub(crate) fn refuse_while_intent_pending(
    state: &Locked<'_>,
    network: &NetworkRecord,
) -> Result<(), Error> {
    if !state.intents_unresolved() {
        return Ok(());
    }
    match intent_pending(state, &network.id) {
        Some(why) => Err(Error::in_use(format!(
            "network {} may have an endpoint no record names yet: {why}; run `ipvlan restore` first",
            network.name
        ))),
        None => Ok(()),
    }
}

/// [`find_network`], for an attach: a network an interrupted `network rm`
/// left half-removed takes no new endpoint (its parent may be gone
/// already, and `restore` finishes the removal only once it has none).
pub(crate) fn find_network_to_join<'a>(
    networks: &'a Listing<NetworkRecord>,
    name_or_id: &str,
) -> Result<&'a NetworkRecord, Error> {
    let network = find_network(networks, name_or_id)?;
    joinable(network)?;
    Ok(network)
}

/// Refuses a network left half-removed (see [`find_network_to_join`]).
pub(crate) fn joinable(network: &NetworkRecord) -> Result<(), Error> {
    if network.state == NetworkState::Removing {
        return Err(Error::in_use(format!(
            "network {} was left half-removed by an interrupted `network rm`; run `ipvlan restore` or `ipvlan network rm {}` to finish it",
            network.name, network.name
        )));
    }
    Ok(())
}

fn half_created(network: &NetworkRecord) -> Error {
    Error::in_use(format!(
        "network {} was left half-created by an interrupted `network create`; run `ipvlan restore` to roll it back",
        network.name
    ))
}

/// [`find_network`] without reading every network record when the name's
/// hint in the store leads to it (see [`StateDir::network_by_name`]); else
/// through all of them, as `find_network` does.
/// The id of network `name_or_id` without reading its record when its
/// name's hint gives it (one read): for a command that reads the record
/// under the lock anyway (see `endpoints::locked_network`), where a stale
/// hint is found out. A name without a hint goes through
/// [`lookup_network`], so a network that does not exist is still named
/// before the lock.
pub(crate) fn lookup_network_id(store: &StateDir, name_or_id: &str) -> Result<String, Error> {
    if let Some(id) = store.network_id_hint(name_or_id) {
        return Ok(id);
    }
    lookup_network(store, name_or_id).map(|network| network.id)
}

/// [`lookup_network_id`] for a command that takes the store's lock next
/// and reads the record again under it: a network not found is looked up
/// once more after [`StateDir::settle_log`] (which writes again what the
/// commit log of another boot holds, without waiting for the lock), so a
/// network whose file a power cut took is found, as under the lock,
/// rather than named missing by the command that would have brought it
/// back (before `restore` ran at boot).
pub(crate) fn lookup_network_id_to_lock(
    store: &StateDir,
    name_or_id: &str,
) -> Result<String, Error> {
    match lookup_network_id(store, name_or_id) {
        Err(error) if error.kind() == super::ErrorKind::NotFound => match store.settle_log(false) {
            Ok(()) => lookup_network_id(store, name_or_id),
            Err(_) => Err(error),
        },
        found => found,
    }
}

pub(crate) fn lookup_network(store: &StateDir, name_or_id: &str) -> Result<NetworkRecord, Error> {
    if let Some(network) = store
        .network_by_name(name_or_id)
        .filter(|n| n.state != NetworkState::Creating)
    {
        return Ok(network);
    }
    let networks = store.networks()?;
    let half_created = networks.iter().find(|n| {
        n.state == NetworkState::Creating && (n.name == name_or_id || n.id == name_or_id)
    });
    let Some(half_created) = half_created else {
        return find_network(&networks, name_or_id).cloned();
    };
    // Read without the lock, the record may be a `network create` at
    // work, which holds the lock until it is whole (or gone): only under
    // the lock is a half-created record an interrupted create's.
    match store.try_lock() {
        Ok(Some(state)) => find_network(&state.networks()?, name_or_id).cloned(),
        // Another command holds the lock: the create itself, or another
        // beside a create it interrupted.
        Ok(None) => Err(Error::in_use(format!(
            "network {} is being created by another command, or was left half-created by an interrupted `network create` (`ipvlan restore` rolls it back)",
            half_created.name
        ))),
        Err(_) => find_network(&networks, name_or_id).cloned(),
    }
}

/// What a lookup says of a network it did not find.
pub(crate) fn not_found_message(name_or_id: &str) -> String {
    format!("network {name_or_id} not found")
}

/// By exact name, exact ID, or unique ID prefix. A network a killed create
/// left half-created is found by none of them, but named as such rather
/// than "not found": restore is what it needs. A network not found may be
/// one whose record cannot be read: the damaged files are named.
pub(crate) fn find_network<'a>(
    networks: &'a Listing<NetworkRecord>,
    name_or_id: &str,
) -> Result<&'a NetworkRecord, Error> {
    let usable = || {
        networks
            .iter()
            .filter(|n| n.state != NetworkState::Creating)
    };
    // A name first, then an id, as the name hint finds it: a store of an
    // older version may hold a name that is another network's id.
    if let Some(network) = usable()
        .find(|n| n.name == name_or_id)
        .or_else(|| usable().find(|n| n.id == name_or_id))
    {
        return Ok(network);
    }
    // A name is never taken for another network's ID prefix while it may
    // be the exact name of one we cannot use: half-created, or in a record
    // that cannot be read (whose name nobody knows). `network rm db` would
    // otherwise remove whichever network's ID starts with "db".
    if let Some(half) = networks
        .iter()
        .find(|n| n.name == name_or_id || n.id == name_or_id)
    {
        return Err(half_created(half));
    }
    let mut by_prefix = usable().filter(|n| !name_or_id.is_empty() && n.id.starts_with(name_or_id));
    match (by_prefix.next(), by_prefix.next()) {
        (Some(_), None) if !networks.damaged.is_empty() => {
            let damaged: Vec<String> = networks.damaged.iter().map(Damaged::to_string).collect();
            Err(Error::failed(format!(
                "network {name_or_id} may be the one in a damaged state file, so it is not taken for an ID prefix: {}",
                damaged.join("; ")
            )))
        }
        (Some(network), None) => Ok(network),
        (Some(_), Some(_)) => Err(Error::invalid(format!(
            "network {name_or_id} is ambiguous: several network IDs start with it"
        ))),
        _ => {
            let half = networks.iter().find(|n| {
                n.state == NetworkState::Creating
                    && (n.name == name_or_id
                        || (!name_or_id.is_empty() && n.id.starts_with(name_or_id)))
            });
            let mut message = not_found_message(name_or_id);
            if !networks.damaged.is_empty() {
                let damaged: Vec<String> =
                    networks.damaged.iter().map(Damaged::to_string).collect();
                message.push_str("; a damaged state file may hold it: ");
                message.push_str(&damaged.join("; "));
            }
            Err(match half {
                Some(network) => half_created(network),
                None => Error::not_found(message),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::beside_a_directory;
    use std::path::Path;

    #[test]
    fn a_store_root_is_beside_a_directory_where_its_own_would_be_made() {
        // In the working directory (a library caller's relative root).
        assert!(beside_a_directory(Path::new("state")));
        assert!(beside_a_directory(Path::new("/state")));
        assert!(beside_a_directory(&std::env::temp_dir().join("state")));
        // The lock's to make, or to refuse first.
        assert!(!beside_a_directory(Path::new("/nonexistent-dir/state")));
        assert!(!beside_a_directory(Path::new("/")));
        assert!(!beside_a_directory(Path::new("/etc/hostname/state")));
    }
}
