//! `restore`: make kernel and state agree again, at boot or after a crash.
//!
//! One bad network or endpoint never blocks the others: each failure is
//! written to the report's `errors` and the rest carries on. A namespace
//! is given up only when it is certainly gone (nothing at its path, or
//! another namespace or a plain file there); a namespace that cannot be
//! opened for another reason keeps its endpoint and addresses.
//!
//! A record that cannot be read (see [`crate::store::Damaged`]) is listed
//! in `errors` and left exactly as it is, with everything filed under it:
//! its addresses stay taken, and a parent it might share is not deleted.

use super::endpoint_link::{self, EndpointPlan};
use super::netns_identity::{self, ContainerIndex, ContainerNetns, Made, NsAt, OpenNetns};
use super::report::endpoint_label;
use super::{hosts, parent, Error, Manager, RestoreReport};
use crate::rtnl::{Handle, Link};
use crate::store::{
    AddressRepair, ContainerRecord, ContainerState, Damaged, EndpointRecord, EndpointState, Locked,
    NetworkRecord, NetworkState, ParentOrigin,
};

/// How `restore` reports a record it left alone because it cannot read it.
fn damaged_error(damaged: &Damaged) -> String {
    format!("damaged state file left as it is: {damaged}")
}

impl Manager {
    /// Makes kernel and state agree again (at boot, after a crash).
    ///
    /// ```no_run
    /// # let manager = ipvlan::driver::Manager::open(ipvlan::driver::Config::from_env())?;
    /// let report = manager.restore()?;
    /// for parent in &report.parents_recreated {
    ///     println!("re-created {parent}");
    /// }
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn restore(&self) -> Result<RestoreReport, Error> {
        // Nothing was ever made here (a boot script's restore on a host
        // that never used us): nothing to repair, and no store made.
        if self.store.never_made()? {
            return Ok(RestoreReport::default());
        }
        let state = self.store.lock()?;
        let host = Handle::new()?;
        // Taking the lock wrote again what the commit log held, if it was
        // written in another boot (a power cut may have taken it).
        let (records_written_again, passed_over) = state.take_log_replayed();
        let mut report = RestoreReport {
            records_written_again,
            ..RestoreReport::default()
        };
        for why in passed_over {
            report
                .errors
                .push(format!("commit log: a change not written again: {why}"));
        }
        let intent_left = state.single_intent_left();
        if let Some(why) = &intent_left {
            report.errors.push(format!(
                "commit log: the intent of an attach or detach that died could not be made a record: {why}; it is kept, and that endpoint is not repaired until it can be"
            ));
        }
        let left_endpoint = state.single_intent_left_endpoint();
        // Taking the lock turned what a dead batch left into intent
        // records; should that have failed, the file is still there and
        // said so here (attaches and `network rm` refuse meanwhile). The
        // endpoints it names have no record yet: their addresses are not
        // orphans, and none is freed until it is read; nor is any endpoint
        // repaired (any may be one it names), and a CNI network's master
        // is left to its next ADD.
        let batch_left = match state.expand_batch_intents() {
            Ok(()) => false,
            Err(error) => {
                report.errors.push(format!(
                    "batch-intents (left by a batch that died) not turned into intent records: {error}; no endpoint is repaired, and no address without a record is freed, until it is"
                ));
                true
            }
        };
        // Half-written files of killed invocations first: nothing reads them.
        if let Err(error) = state.clean_temporaries() {
            report.errors.push(error.to_string());
        }
        let all = state.networks()?;
        report.errors.extend(all.damaged.iter().map(damaged_error));
        let unreadable_networks = !all.damaged.is_empty();

        // Interrupted creates are rolled back, interrupted removals finished.
        let mut rolled_back: Vec<&str> = Vec::new();
        // Interrupted removals of networks with nothing attached, left
        // `removing` (not taken back, their parent not made again) while a
        // batch's intents file cannot be read, or their endpoints listed:
        // the next `restore` finishes them once it can.
        let mut held: Vec<&str> = Vec::new();
        for network in &all {
            let unfinished = match network.state {
                NetworkState::Creating => true,
                NetworkState::Removing => match state.endpoints_of(&network.id) {
                    // A damaged endpoint record still counts: finishing the
                    // removal would delete it; so does an intent not yet
                    // a record (its link would be left to nobody).
                    Ok(endpoints) => {
                        let empty = endpoints.is_empty()
                            && endpoints.damaged.is_empty()
                            && (left_endpoint.as_ref().map(|(n, _)| n) != Some(&network.id));
                        if empty && batch_left {
                            held.push(&network.id);
                            report.errors.push(format!(
                                "{}: its removal is left for a later restore: a batch's intents file cannot be read",
                                network.name
                            ));
                        }
                        empty && !batch_left
                    }
                    // Not known to be empty: left `removing` for a later
                    // restore, not taken back.
                    Err(error) => {
                        held.push(&network.id);
                        report.errors.push(format!("{}: {error}", network.name));
                        false
                    }
                },
                NetworkState::Created => false,
            };
            if unfinished {
                rolled_back.push(&network.id);
            }
        }
        // Every network that stays, whatever its position in the list, may
        // share the parent of one rolled back.
        let mut networks: Vec<NetworkRecord> = all
            .iter()
            .filter(|n| !rolled_back.contains(&n.id.as_str()))
            .cloned()
            .collect();
        for network in all.iter().filter(|n| rolled_back.contains(&n.id.as_str())) {
            if unreadable_networks && network.parent_origin != ParentOrigin::Existing {
                report.errors.push(format!(
                    "{}: parent {} kept: a damaged network record may use it",
                    network.name, network.parent
                ));
            } else {
                // The link this create made, kept below for a network that
                // records the name as another tool's (the link it used was
                // gone): that network takes it over, as a create that
                // finishes hands it over, or nothing would ever delete it.
                if let Err(error) = parent::adopt_kept_parent(&host, &state, &mut networks, network)
                {
                    report.errors.push(format!("{}: {error}", network.name));
                }
                // A parent kept (see `delete_if_ours`) is not a failure of
                // the restore, but said, as `network rm` says it: no record
                // names it from here on.
                let users = parent::users_of_parent(&state, &networks, network);
                if let Some(note) =
                    parent::delete_if_ours(&host, &self.config.netns_dir, network, &users)
                {
                    report
                        .parents_kept
                        .push(format!("{}: {note}", network.name));
                }
            }
            match state.remove_network(&network.id) {
                Ok(_) => report.intents_repaired += 1,
                Err(error) => report.errors.push(format!("{}: {error}", network.name)),
            }
        }
        for network in &mut networks {
            if network.state == NetworkState::Removing && !held.contains(&network.id.as_str()) {
                network.state = NetworkState::Created;
                if let Err(error) = state.put_network(network) {
                    report.errors.push(format!("{}: {error}", network.name));
                }
            }
        }

        // Containers an interrupted run left half made are undone whole,
        // those an interrupted rm left half removed are removed, before their
        // endpoints could be kept or re-created below.
        let containers = state.container_records()?;
        report
            .errors
            .extend(containers.damaged.iter().map(damaged_error));
        let (whole, broken): (Vec<ContainerRecord>, Vec<ContainerRecord>) = containers
            .items
            .into_iter()
            .partition(|record| record.state == ContainerState::Created);
        for record in &broken {
            let name = &record.name;
            match self.dismantle_container(&host, &state, &networks, record) {
                Ok(dismantled) => {
                    report.errors.extend(
                        dismantled
                            .notes
                            .into_iter()
                            .map(|note| format!("container {name}: {note}")),
                    );
                    if let Some(pids) = dismantled.left_running {
                        report
                            .processes_left_running
                            .push(format!("{name}: {pids}"));
                    }
                    report.intents_repaired += 1;
                }
                Err(error) => report.errors.push(container_error(name, &error)),
            }
        }

        // Every endpoint first, so an interrupted attach can tell whether
        // the name it recorded now belongs to a later attach.
        let mut endpoints: Vec<(usize, Vec<EndpointRecord>)> = Vec::new();
        for (at, network) in networks.iter().enumerate() {
            match state.endpoints_of(&network.id) {
                Ok(list) => {
                    report.errors.extend(list.damaged.iter().map(damaged_error));
                    // While a dead batch's file is unread, any endpoint may
                    // be one it names, its record older than what the batch
                    // did (a detach's link gone): none is repaired.
                    let items = if batch_left { Vec::new() } else { list.items };
                    endpoints.push((at, items));
                }
                Err(error) => report.errors.push(format!("{}: {error}", network.name)),
            }
        }
        let claimed: Vec<&EndpointRecord> = endpoints
            .iter()
            .flat_map(|(_, list)| list)
            .filter(|e| e.state.is_attached() && !e.ifname.is_empty())
            .collect();
        // The names and indexes the other attached endpoints of the same
        // namespace have on record, whatever path or name each was
        // attached by (an attach guesses `eth0` for a container with no
        // endpoint on record, which a path's endpoint may hold).
        let neighbours = |endpoint: &EndpointRecord| -> Vec<Neighbour> {
            claimed
                .iter()
                .filter(|other| {
                    (other.network_id != endpoint.network_id || other.id != endpoint.id)
                        && (other.netns == endpoint.netns
                            || other
                                .netns_id
                                .zip(endpoint.netns_id)
                                .is_some_and(|(a, b)| a.same_namespace(&b)))
                })
                .map(|other| Neighbour {
                    network_id: other.network_id.clone(),
                    id: other.id.clone(),
                    ifname: other.ifname.clone(),
                    ifindex: other.ifindex,
                    created: other.created,
                })
                .collect()
        };
        // The links this restore makes again, by endpoint: a neighbour's
        // link made here has an index its record (read above) lacks.
        let mut remade: Vec<Remade> = Vec::new();
        let neighbours: Vec<Vec<Vec<Neighbour>>> = endpoints
            .iter()
            .map(|(_, list)| list.iter().map(neighbours).collect())
            .collect();

        for ((at, list), neighbours) in endpoints.into_iter().zip(neighbours) {
            let network = &networks[at];
            // An idle CNI network's `NAME.VLANID` master went with its last
            // attachment: not made again until the next ADD; nor the parent
            // of a removal left for later.
            if list.is_empty()
                && (super::cni::is_cni(network) || held.contains(&network.id.as_str()))
            {
                continue;
            }
            // A lease-only network has no master to find or make.
            let parent = if super::cni::is_masterless(network) {
                None
            } else {
                let netns_dir = &self.config.netns_dir;
                match parent::restore(&host, netns_dir, &state, network, &mut report) {
                    Ok(parent) => parent,
                    Err(error) => {
                        report
                            .errors
                            .push(format!("{}: {}: {error}", network.name, network.parent));
                        None
                    }
                }
            };
            // Another tool's ipvlan links of another mode on the parent's
            // port, looked for once a network (a look into every other
            // namespace), at its first link to make again: the links this
            // restore makes are of the network's mode.
            let mut other_mode = None;
            for (mut endpoint, neighbours) in list.into_iter().zip(neighbours) {
                let who = format!("{}: {}", network.name, endpoint_label(&endpoint));
                if left_endpoint
                    .as_ref()
                    .is_some_and(|(net, id)| *net == endpoint.network_id && *id == endpoint.id)
                {
                    // Its record may say `attached` while the detach that
                    // died had deleted its link: re-made, the detach would
                    // be undone. Left until the intent can be written.
                    report.errors.push(format!(
                        "{who}: not repaired: the commit log holds its intent, not yet made its record"
                    ));
                    continue;
                }
                if endpoint.state == EndpointState::Attaching {
                    // A live ADD's intent, its IPAM plugin running: the ADD
                    // finishes it or undoes it.
                    match state.endpoint_held(&endpoint.network_id, &endpoint.id) {
                        Ok(false) => {}
                        Ok(true) => {
                            report.attaches_in_progress.push(who);
                            continue;
                        }
                        Err(error) => {
                            report.errors.push(format!("{who}: not repaired: {error}"));
                            continue;
                        }
                    }
                }
                let claimed = neighbours.iter().any(|n| n.ifname == endpoint.ifname);
                if !endpoint.state.is_attached() && endpoint.ifindex.is_none() && claimed {
                    // An older intent (no index): killed before making its
                    // link; the name went to a later attach that must keep
                    // it. (One that names its index is undone by that.)
                    endpoint.ifname.clear();
                }
                let made = Manager::made_for(&endpoint, &whole);
                let restored = self.restore_endpoint(
                    &host,
                    &state,
                    network,
                    parent.as_ref(),
                    endpoint,
                    made,
                    (&neighbours, &mut remade, &mut other_mode),
                    &who,
                    &mut report,
                );
                if let Err(error) = restored {
                    report.errors.push(format!("{who}: {error}"));
                }
            }
        }

        // A damaged network record may be one on the same master: none is
        // dropped until it is repaired.
        if !unreadable_networks {
            super::cni::drop_idle_parents(&host, &self.config.netns_dir, &state, &networks);
        }
        // Address files and container indexes are derived from the
        // endpoint records and not synced: a power cut may have lost,
        // emptied or brought them back. Made to agree with the records.
        for network in &networks {
            // The name's hint: a lookup by name without it reads every
            // network record.
            match state.put_name_hint(network) {
                Ok(written) => report.derived_rebuilt += usize::from(written),
                Err(error) => report.errors.push(format!("{}: {error}", network.name)),
            }
            // An endpoint named only by an intent not yet made a record
            // (a batch's file, the commit log's page) may hold addresses.
            let freed = match batch_left || intent_left.is_some() {
                true => Ok(0),
                false => state.release_orphans(network),
            };
            match freed {
                Ok(freed) => report.intents_repaired += freed,
                Err(error) => report.errors.push(format!("{}: {error}", network.name)),
            }
            match state.endpoints_of(&network.id) {
                Ok(list) => {
                    for endpoint in &list.items {
                        restore_addresses(&state, network, endpoint, &mut report);
                    }
                }
                Err(error) => report.errors.push(format!("{}: {error}", network.name)),
            }
        }

        // The indexes (which also lose the entries of attaches and
        // detaches killed between index and record) before the hosts
        // files, whose union views follow them; from every endpoint
        // record, those of a network whose record cannot be read included
        // (their damage is reported above).
        let (rebuilt, errors) = match state.endpoints() {
            Ok(all) => ContainerIndex::rebuild_all(&state, &all.items),
            Err(error) => (0, vec![error.to_string()]),
        };
        report.derived_rebuilt += rebuilt;
        report.errors.extend(errors);

        // Short names of hosts files a `network rm` killed before their
        // removal (or a power cut) left to networks that are gone.
        match state.remove_stale_hosts_aliases() {
            Ok((removed, failed)) => {
                report.derived_rebuilt += removed;
                report.errors.extend(failed.iter().map(ToString::to_string));
            }
            Err(error) => report.errors.push(error.to_string()),
        }

        // Hosts files are edited without fsync: after a power cut a removed
        // container's line may be back, an added one missing. The endpoint
        // records are durable; the files are made to agree with them.
        let names = self.names(&state);
        for network in &networks {
            if let Err(error) = names.rebuild(network) {
                report
                    .errors
                    .push(format!("{}: hosts file: {error}", network.name));
            }
            // Each container's view apart: one that cannot be brought up
            // to date keeps no other from it.
            report.errors.extend(
                names
                    .take_refresh_failures()
                    .into_iter()
                    .map(|note| format!("{}: {note}", network.name)),
            );
        }

        // Container records whose namespace went away, or never came: an
        // empty mount point left by a process killed before its bind mount
        // goes with its record.
        for record in whole {
            let made = Made::of(&record);
            let name = record.name;
            let path = self.config.netns_dir.join(&name);
            let gone = match netns_identity::container_netns(&path, made) {
                Ok(ContainerNetns::Missing) => true,
                Ok(ContainerNetns::Leftover(_)) => {
                    crate::fault::point("netns: before unlink");
                    match crate::fault::after("netns: after unlink", std::fs::remove_file(&path)) {
                        Ok(()) => true,
                        Err(error) => {
                            report
                                .errors
                                .push(format!("removing {}: {error}", path.display()));
                            false
                        }
                    }
                }
                // Its name deleted while a process in it runs: it still
                // holds its links and addresses.
                Ok(ContainerNetns::Present(_) | ContainerNetns::Unnamed(..)) => false,
                // Ours was deleted and another tool's put at its name: our
                // container is gone, theirs is left as it is.
                Ok(ContainerNetns::Replaced) => true,
                Err(error) => {
                    report.errors.push(container_error(&name, &error));
                    false
                }
            };
            if gone {
                // The record is kept while our view stays: without it,
                // nothing would ever take the view out.
                let removed = hosts::unlink(&self.config.etc_netns_dir, &name, state.root())
                    .and_then(|()| state.remove_container(&name).map_err(Error::from));
                match removed {
                    // Its `run -d` output goes with it, as with `rm`: a
                    // new container of its name would append to it.
                    Ok(_) => {
                        let _ = std::fs::remove_file(self.log_path(&name));
                    }
                    Err(error) => report.errors.push(container_error(&name, &error)),
                };
            }
        }
        // An intent not yet a record (a dead batch's file, the commit log's
        // page) may be what explains a view.
        if !batch_left && intent_left.is_none() {
            self.take_out_stale_views(&state, &mut report);
        }
        // What was repaired durable before it is reported, and the commit
        // log emptied (everything it names synced first): an older version,
        // which does not read it, can take over from here.
        if let Err(error) = state.empty_commit_log() {
            report
                .errors
                .push(format!("making the repairs durable: {error}"));
        }
        Ok(report)
    }

    /// Takes out the `/etc/netns` views we made (by their markers) of
    /// containers no record names any more. A power cut after an `rm` or
    /// a detach that had made the record's removal durable can bring back
    /// a view's link, directory and marker, which are never synced, and no
    /// other repair would look at them again (`ip netns exec` of a later
    /// namespace of that name would mount our network's hosts file).
    /// Nothing is taken out while a record cannot be read: it may name
    /// the container.
    fn take_out_stale_views(&self, state: &Locked<'_>, report: &mut RestoreReport) {
        let (Ok(containers), Ok(endpoints)) = (state.container_records(), state.endpoints()) else {
            return;
        };
        if !(containers.damaged.is_empty() && endpoints.damaged.is_empty()) {
            return;
        }
        let marked = match hosts::marked_views(state) {
            Ok(marked) => marked,
            Err(error) => {
                report.errors.push(format!("/etc/netns views: {error}"));
                return;
            }
        };
        for name in marked {
            // An endpoint of an older version is filed under its
            // container's name.
            let named = containers.items.iter().any(|c| c.name == name)
                || endpoints
                    .items
                    .iter()
                    .any(|e| e.container.as_deref() == Some(&name) || e.id == name);
            if named {
                continue;
            }
            match hosts::take_out_stale_view(&self.config.etc_netns_dir, &name, state.root()) {
                Ok(()) => report.derived_rebuilt += 1,
                Err(error) => report.errors.push(container_error(&name, &error)),
            }
        }
    }

    /// The namespace `run` made for `endpoint`'s container (among the
    /// `whole` ones: an interrupted run's or rm's were dismantled), when only it tells the namespace at the endpoint's
    /// path from another that got its inode number since: the endpoint's
    /// own identity has no cookie (a kernel before 5.14, or a record older
    /// than identities). An endpoint of a container is recorded at the
    /// container's place (`Manager::target_place`, `named_place`), where
    /// the container's mount keeps the inode whose time its record holds
    /// ([`ContainerRecord::netns_inode_time`]).
    fn made_for(endpoint: &EndpointRecord, whole: &[ContainerRecord]) -> Option<Made> {
        let name = endpoint.container.as_deref()?;
        if endpoint.netns_id.is_some_and(|id| id.cookie.is_some()) {
            return None;
        }
        let record = whole.iter().find(|record| record.name == name)?;
        let made = Made::of(record)?;
        made.inode_time.map(|_| made)
    }

    #[allow(clippy::too_many_arguments)]
    fn restore_endpoint(
        &self,
        host: &Handle,
        state: &Locked<'_>,
        network: &NetworkRecord,
        parent: Option<&Link>,
        endpoint: EndpointRecord,
        made: Option<Made>,
        (neighbours, remade, other_mode): (
            &[Neighbour],
            &mut Vec<Remade>,
            &mut Option<Option<String>>,
        ),
        who: &str,
        report: &mut RestoreReport,
    ) -> Result<(), Error> {
        if super::cni::is_lease(&endpoint) {
            // Addresses only: the link is another plugin's.
            return self.restore_lease(state, network, endpoint, report, who);
        }
        // A `linkInContainer` link sits on a master in its own namespace,
        // which the host cannot name: an ipvlan link is taken as ours.
        let master = endpoint_link::Master::of(network, parent);
        let mut at = netns_identity::open_endpoint_netns(&endpoint)?;
        if let (NsAt::Present(open, _), Some(made)) = (&at, made) {
            // Without cookies, the namespace at the container's name may
            // have our inode number since (`made_for`): it is another, and
            // ours gone, when it is not the one `run` made and was made
            // after this endpoint was attached (one made before is the one
            // a later connect attached it to). No process can hold ours in
            // sight (that takes a cookie).
            let attached = (endpoint.created.secs)
                .saturating_mul(1_000_000_000)
                .saturating_add(u64::from(endpoint.created.nanos));
            if !made.is(open)? && open.inode_time().is_some_and(|t| t.get() > attached) {
                at = NsAt::Gone;
            }
        }
        if !endpoint.state.is_attached() {
            // The interrupted attach or detach is undone or finished the
            // same way: no link, no addresses, no record.
            if let Some(inside) = at.open() {
                endpoint_link::delete_temporary_links(inside, master)?;
            }
            let notes = self.detach(host, state, network, endpoint, &at)?;
            report
                .errors
                .extend(notes.into_iter().map(|note| format!("{who}: {note}")));
            report.intents_repaired += 1;
            return Ok(());
        }
        let (inside, identity) = match &at {
            NsAt::Present(inside, identity) => (inside, *identity),
            NsAt::Gone | NsAt::NotANamespace if super::options::delegates_ipam(network) => {
                // Its addresses are a delegated IPAM plugin's lease, which
                // only that plugin's DEL gives back, and only the runtime
                // can run it (it holds the `CNI_PATH`): kept for its DEL,
                // GC or next ADD of the attachment, which release the lease
                // with it. Dropped here, the lease stayed, and the ADD of
                // a runtime starting the container again after a reboot
                // failed on it ("duplicate allocation").
                report.links_left_to_runtime.push(who.to_string());
                return Ok(());
            }
            NsAt::Gone | NsAt::NotANamespace => {
                let notes = self.detach(host, state, network, endpoint, &at)?;
                report
                    .errors
                    .extend(notes.into_iter().map(|note| format!("{who}: {note}")));
                report.endpoints_released.push(who.to_string());
                return Ok(());
            }
        };
        let found = if endpoint.state == EndpointState::Relinking {
            // A re-make killed part way: its link may lack its addresses,
            // routes or final name, so it goes and is made again whole.
            undo_relink(inside, parent, &endpoint)?;
            None
        } else {
            endpoint_link::recorded_link(inside, endpoint.ifindex, &endpoint.ifname)?
        };
        if let Some(link) = &found {
            if master.not_ours(link, endpoint.mac.as_deref()).is_none() {
                // Records older than the identity fields (or the cookie)
                // get them now.
                if endpoint.netns_id != Some(identity) || endpoint.ifindex != Some(link.index) {
                    let mut updated = endpoint.clone();
                    updated.netns_id = Some(identity);
                    updated.ifindex = Some(link.index);
                    state.put_endpoint(&updated)?;
                }
                report.endpoints_kept += 1;
                return Ok(());
            }
        }
        if super::cni::is_cni(network) && !found.as_ref().is_some_and(|l| l.name == endpoint.ifname)
        {
            // Not re-made: the runtime owns a CNI link's life and holds the
            // result (routes, DNS) it was made with; a link made here would
            // follow the CLI's rules instead. CHECK reports it missing, DEL
            // or GC releases the record.
            report.links_left_to_runtime.push(who.to_string());
            return Ok(());
        }
        let Some(parent) = parent else {
            report.errors.push(format!(
                "{who}: link missing and parent {} unavailable; endpoint kept for a later restore",
                network.parent
            ));
            return Ok(());
        };
        if let Some(link) = found.filter(|l| l.name == endpoint.ifname) {
            let why = endpoint_link::not_ours(&link, Some(parent), endpoint.mac.as_deref())
                .unwrap_or_default();
            report.errors.push(format!(
                "{who}: {why} in namespace {}, where the endpoint's link should be; endpoint kept",
                inside.label()
            ));
            return Ok(());
        }
        let Some(ipv4) = endpoint.ipv4 else {
            report
                .errors
                .push(format!("{who}: record has no IPv4 address"));
            return Ok(());
        };
        // Another tool may have put ipvlan links of another mode on the
        // parent since the network was made: a link made here would switch
        // theirs (the kernel keeps one mode per parent).
        let why = match other_mode {
            Some(why) => why.clone(),
            None => other_mode
                .insert(parent::other_mode_for(
                    host,
                    &self.config.netns_dir,
                    network,
                    parent,
                )?)
                .clone(),
        };
        if let Some(why) = why {
            report.errors.push(format!(
                "{who}: link missing, not made again: {why}, and a link in mode {} and flag {} would switch it; endpoint kept",
                network.mode.as_str(),
                network.flag.as_str()
            ));
            return Ok(());
        }
        let plan = EndpointPlan::new(network, parent, ipv4, endpoint.ipv6);
        // A free name passes over those the namespace's other endpoints
        // have on record: one whose link is gone too is made again under
        // its own name, later in this restore.
        let kept: Vec<&str> = neighbours.iter().map(|n| n.ifname.as_str()).collect();
        // A neighbour's link, by its name and the index on its record or
        // the one this restore made it with.
        let neighbours_link = |link: &Link| {
            neighbours.iter().any(|n| {
                n.ifname == link.name
                    && (n.ifindex == Some(link.index)
                        || remade.iter().any(|r| {
                            (r.network_id.as_str(), r.id.as_str(), r.ifindex)
                                == (n.network_id.as_str(), n.id.as_str(), link.index)
                        }))
            })
        };
        // A later attach took the name once this link was gone (its
        // parent deleted by hand, say), and keeps it, whichever of the two
        // this restore makes first.
        let later_has_it = neighbours
            .iter()
            .any(|n| n.ifname == endpoint.ifname && n.created > endpoint.created);
        // Why this link takes a free name rather than its own: another
        // endpoint of ours in this namespace holds the name, or will (its
        // link made again later in this restore). Before, it was kept
        // without a link, at every restore. Another tool's link under the
        // name is reported. Looked for by index above: such a link would
        // make the create fail late (after a fallback to a temporary name,
        // at the rename).
        let gives_way = match endpoint.ifname.as_str() {
            "" => None,
            name => match inside.handle.link_by_name(name)? {
                Some(link) if neighbours_link(&link) => Some(format!(
                    "{} is another endpoint's (index {})",
                    link.name, link.index
                )),
                Some(link) => {
                    report.errors.push(format!(
                        "{who}: name {} taken by another link (index {}) in namespace {}; endpoint kept",
                        link.name,
                        link.index,
                        inside.label()
                    ));
                    return Ok(());
                }
                None if later_has_it => Some(format!("{name} is a later endpoint's")),
                None => None,
            },
        };
        let mut renamed = None;
        let ifname = match (endpoint.ifname.is_empty(), gives_way) {
            (false, None) => endpoint.ifname.clone(),
            (_, why) => {
                let free = endpoint_link::free_ifname_but(inside, &kept)?;
                renamed = why.map(|why| format!("as {free}: {why}"));
                free
            }
        };
        // The index this create asks for is recorded first, in a record
        // that says the link is being made again (not `attached`, which
        // would have the next restore keep a link killed before it was
        // configured, and a detach look it up by name when a fallback to
        // a temporary name names no index): should restore be killed, the
        // next one deletes what it made and makes it again.
        let index = endpoint_link::chosen_index()?;
        let mut intent = endpoint.clone();
        intent.state = EndpointState::Relinking;
        intent.ifname = ifname.clone();
        intent.ifindex = Some(index);
        state.put_endpoint(&intent)?;
        let mut rerecord = |index: Option<u32>| -> Result<(), Error> {
            intent.ifindex = index;
            Ok(state.put_endpoint(&intent)?)
        };
        let built = endpoint_link::create(host, inside, &plan, &ifname, index, &mut rerecord)?;
        remade.push(Remade {
            network_id: endpoint.network_id.clone(),
            id: endpoint.id.clone(),
            ifindex: built.index,
        });
        let mut updated = endpoint;
        updated.state = EndpointState::Attached;
        updated.ifname = built.ifname;
        updated.mac = Some(built.mac);
        updated.ifindex = Some(built.index);
        updated.netns_id = Some(identity);
        state.put_endpoint(&updated)?;
        report.links_recreated.push(match renamed {
            Some(renamed) => format!("{who} ({renamed})"),
            None => who.to_string(),
        });
        Ok(())
    }
}

/// Another attached endpoint of the same namespace, as its record names
/// it and its link when `restore` begins.
struct Neighbour {
    network_id: String,
    id: String,
    ifname: String,
    ifindex: Option<u32>,
    created: crate::store::Timestamp,
}

/// An endpoint whose link `restore` made again, and the link's index.
struct Remade {
    network_id: String,
    id: String,
    ifindex: u32,
}

/// Deletes what a re-make of `endpoint`'s link (`relinking`) killed part
/// way may have left in `inside`: the link at the index it recorded, if
/// ours (never one found by name alone), and our links under a temporary
/// name, which its fallback makes before the index is recorded.
fn undo_relink(
    inside: &OpenNetns,
    parent: Option<&Link>,
    endpoint: &EndpointRecord,
) -> Result<(), Error> {
    if endpoint.ifindex.is_some() {
        // Not ours (or no parent to tell): left, and the name check
        // before the create reports it should it hold the name.
        endpoint_link::delete_checked(
            inside,
            endpoint.ifindex,
            "",
            endpoint_link::Master::Host(parent),
            endpoint.mac.as_deref(),
        )?;
    }
    endpoint_link::delete_temporary_links(inside, endpoint_link::Master::Host(parent))?;
    Ok(())
}

/// Makes the address files of `endpoint` (a record `restore` keeps) exist
/// and name it.
fn restore_addresses(
    state: &Locked<'_>,
    network: &NetworkRecord,
    endpoint: &EndpointRecord,
    report: &mut RestoreReport,
) {
    // Served by another IPAM (a delegated plugin, a chained `prevResult`):
    // the addresses are that one's, with no file of ours.
    if network.subnets.is_empty() {
        return;
    }
    for address in endpoint.ipv4.iter().chain(endpoint.ipv6.iter()) {
        let who = || format!("{}: {}", network.name, endpoint_label(endpoint));
        match state.restore_address(network, address.addr(), &endpoint.id) {
            Ok(AddressRepair::Kept) => {}
            Ok(AddressRepair::Remade) => report.derived_rebuilt += 1,
            Ok(AddressRepair::HeldBy(other)) => report.errors.push(format!(
                "{}: address {} is also held by endpoint {other}; left as it is",
                who(),
                address.addr()
            )),
            Ok(AddressRepair::OutsideSubnets) => report.errors.push(format!(
                "{}: address {} lies in no subnet of the network",
                who(),
                address.addr()
            )),
            Err(error) => report.errors.push(format!("{}: {error}", who())),
        }
    }
}

/// A repair of container `name` that failed, as the report says it.
#[inline(never)]
fn container_error(name: &str, error: &Error) -> String {
    format!("container {name}: {error}")
}
