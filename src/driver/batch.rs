//! `connect_many` / `disconnect_many`: many namespaces attached to (or
//! detached from) one network in one call, for programs that set up
//! hundreds of namespaces (benchmark harnesses, test rigs).
//!
//! One lock, one read of the network, one host socket and one lookup of the
//! parent for the whole batch; the link creates go to the kernel 16 at a
//! time (a chunk in one datagram, `Handle::link_add_many`, so that what a
//! create needs is held for one chunk only), each namespace then gets its
//! address, link-up and routes in one round trip on its own socket, all on
//! a thread of their own, while the calling thread writes the files of the
//! chunk made before (`create_ahead`); the state is made durable once, at
//! the end (`Locked::commit`). The intents of all its endpoints are
//! written before the kernel is touched, in one file
//! (`Locked::put_batch_intents`), and each final record is made in place
//! (no intent file per endpoint to create and rename over): the next
//! holder of the lock turns the intents of a batch that died into intent
//! records of their own, so an interrupted batch is what `restore` already
//! repairs: each endpoint of it is finished or undone as a single attach
//! would be.
//!
//! A batch is all or nothing: when one target cannot be attached, the
//! endpoints this call made are removed again and the error names the
//! target. Detaching checks every target first and changes nothing unless
//! all are attached.

use std::sync::Mutex;

use super::endpoint_link::{self, BuiltEndpoint, EndpointPlan, NewEndpoint};
use super::endpoints::{
    check_hosts_dir, keep_for_restore, parent_link, DetachPlace, Intent, LinkToRemove, Pending,
    ResolvedTarget,
};
use super::netns_identity::{NsAt, OpenNetns};
use super::networks::{find_network, find_network_to_join, lookup_network_id_to_lock};
use super::report::endpoint_label;
use super::{AttachRequest, EndpointInfo, Error, Manager, Target};
use crate::netns::Netns;
use crate::rtnl::{Handle, Link};
use crate::store::{EndpointRecord, EndpointState};

impl Manager {
    /// Attaches every namespace of `targets` to `network`, each as
    /// [`Manager::connect`] would with automatic addresses, in one call;
    /// the endpoints come back in the order of `targets`.
    ///
    /// All or nothing: if one target is refused (not a namespace, already
    /// attached, given twice, no address left) or the kernel refuses one
    /// link, nothing of this call stays and the error names that target.
    ///
    /// Each target holds two descriptors (its namespace, a netlink socket
    /// in it) until the end: when the process's soft `RLIMIT_NOFILE` is too
    /// low for the batch, it is raised (never above the hard limit; a batch
    /// that does not fit under that is refused before anything is done)
    /// while the call runs, and put back as it was when the last batch
    /// running meanwhile ends.
    ///
    /// ```no_run
    /// # use ipvlan::driver::{Config, Manager, Target};
    /// # let manager = Manager::open(Config::from_env())?;
    /// let targets: Vec<Target> = (0..100).map(|i| Target::Container(format!("bench{i}"))).collect();
    /// let endpoints = manager.connect_many("bench_net", &targets)?;
    /// assert_eq!(endpoints.len(), 100);
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn connect_many(
        &self,
        network: &str,
        targets: &[Target],
    ) -> Result<Vec<EndpointInfo>, Error> {
        lookup_network_id_to_lock(&self.store, network)?;
        // Each namespace opened, with its own socket, and identified: two
        // descriptors a target, held to the end. Under the lock, as
        // connect enters its target: a visit must not overlap an `rm -f`
        // of the container, which takes the processes it finds inside
        // (this thread's, the whole program) for the container's.
        let _room = make_room_for_descriptors(2 * targets.len())?;
        let state = self.store.lock()?;
        // Our own namespace, opened once: each target is entered from it
        // and left for it (for its socket, then for its link's settings)
        // without opening it again.
        let home = std::rc::Rc::new(
            Netns::current()
                .map_err(|e| Error::io("opening this thread's network namespace", &e))?,
        );
        // One vector holds each target from its resolution to the end: a
        // target reserved becomes its endpoint in its own slot, so the
        // targets and the endpoints made of them (about 370 and 430 bytes
        // each) are never held side by side.
        let mut slots: Vec<Slot> = Vec::with_capacity(targets.len());
        for given in targets {
            let target = self.resolve_target_from(given, &home)?;
            let earlier = slots
                .iter()
                .position(|slot| slot.target().is_some_and(|r| r.same_namespace(&target)));
            if let Some(earlier) = earlier {
                // As given: both may name one container.
                return Err(Error::invalid(format!(
                    "{} and {} are the same network namespace: a namespace is attached to a network once",
                    targets[earlier].label(),
                    given.label()
                )));
            }
            slots.push(Slot::Resolved(target));
        }
        let networks = state.networks()?;
        let network = find_network_to_join(&networks, network)?;
        let host = Handle::new()?;
        let parent = parent_link(&host, network)?;
        let request = AttachRequest::default();

        // Every refusal before anything is taken; then, should the
        // addresses run out part-way, the allocation cursors are put back
        // with the rest, so a refused batch leaves even that hint as it was.
        for target in slots.iter_mut().filter_map(Slot::target_mut) {
            self.check_attach(&state, network, target, &request)
                .map_err(|e| e.context(attaching(target, &network.name)))?;
            target.forget_legacy_ids();
        }
        check_hosts_dir(&state, network)
            .map_err(|e| e.context(format_args!("attaching to network {}", network.name)))?;
        let cursors = state.cursors(network)?;
        let put_back_cursors = || {
            let _ = state.put_cursors(network, &cursors);
        };
        // Only once nothing of the batch is left in the kernel, and after
        // `batch-intents` is gone (see `Pending::undo_from_the_kernel`).
        let give_back = |pending: &mut dyn Iterator<Item = Pending>| {
            for prepared in pending {
                prepared.abandon(&state, network);
            }
            put_back_cursors();
        };
        // Each link's ifindex is in its intent before its create is sent,
        // so restore undoes that link and no other. The intents of all go
        // into one file once all are reserved (see `Intent::InBatch`).
        let indexes = endpoint_link::chosen_indexes(slots.len())?;
        let mut refused = None;
        for (slot, &index) in slots.iter_mut().zip(&indexes) {
            let Some(target) = slot.target_mut() else {
                continue;
            };
            // A container on no network of ours gets `eth0` without asking
            // its namespace (two system calls and a round trip each), as a
            // single attach does; should another tool's `eth0` be there, the
            // create finds out and that target goes the single way.
            let reserved = self.reserve(
                &state,
                network,
                target,
                &request,
                true,
                index,
                Intent::InBatch,
            );
            // A thousand sockets' receive buffers would add up (32 KiB
            // each): each is let go once its namespace's work is done.
            target.inside.handle.socket().release_buffer();
            match reserved {
                Ok(mut prepared) => {
                    prepared.shed_index();
                    slot.reserve(prepared);
                }
                Err(error) => {
                    refused = Some(error.context(attaching(target, &network.name)));
                    break;
                }
            }
        }
        drop(indexes);
        if let Some(error) = refused {
            give_back(
                &mut slots
                    .into_iter()
                    .filter_map(Slot::into_reserved)
                    .map(|r| r.pending),
            );
            return Err(error);
        }
        // What is left of each target is its namespace and the socket in
        // it (the rest is in its intent record now), in the room the
        // targets had.
        let mut reserved: Vec<Reserved> =
            slots.into_iter().filter_map(Slot::into_reserved).collect();
        if let Err(error) = state.put_batch_intents(&mut reserved.iter().map(|r| &r.pending.record))
        {
            // Nothing was asked of the kernel, and no intent of this batch
            // stays (a file it made is removed with the refusal; one still
            // there is a dead batch's, kept for the next lock).
            give_back(&mut reserved.into_iter().map(|r| r.pending));
            return Err(
                Error::from(error).context(format!("attaching to network {}", network.name))
            );
        }

        // The links are made on a thread of their own, a chunk at a time,
        // while this one writes the files of each chunk made before it:
        // each endpoint finished in place, its record and then its
        // container's view, as a single attach does. An endpoint's files
        // go only once its link is made. The names of all go into the
        // network's hosts file at the end, in one write (a derived file:
        // restore takes out the lines of endpoints a kill leaves
        // unattached), so a batch refused before leaves it as it was; then
        // the network's union views are refreshed, once. (On a network's
        // first attach the views point at that file before it exists.)
        let mut names = self.names(&state);
        let attaching_to = || format!("attaching to network {}", network.name);
        let finish = |chunk: &mut [Reserved], made: ChunkMade| -> Result<(), Error> {
            let outcomes = made.map_err(|error| error.context(attaching_to()))?;
            let mut failure = None;
            for (r, outcome) in chunk.iter_mut().zip(outcomes) {
                let link = match outcome {
                    // Nothing made, and the batch is given up already.
                    Ok(None) if failure.is_some() => continue,
                    // Refused as taken, nothing made: the single way, its
                    // name or index replaced by a free one, each recorded
                    // before the create that asks for it.
                    Ok(None) => {
                        let inside = r.inside.as_ref().expect(BACK_FROM_THE_THREAD);
                        r.pending.build(&state, &host, network, &parent, inside)
                    }
                    Ok(Some(link)) => Ok(link),
                    Err(error) => Err(error),
                };
                match link {
                    Ok(link) => r.pending.record_link(link),
                    Err(error) => {
                        r.build_failed = true;
                        failure.get_or_insert_with(|| {
                            error.context(attaching_reserved(&r.pending.record, &network.name))
                        });
                    }
                }
            }
            if let Some(error) = failure {
                return Err(error);
            }
            let mut finished = Ok(());
            for r in chunk.iter_mut() {
                let (prepared, missing) = (&mut r.pending, r.view_missing);
                let link = BuiltEndpoint {
                    ifname: std::mem::take(&mut prepared.record.ifname),
                    mac: prepared.record.mac.take().unwrap_or_default(),
                    index: prepared.record.ifindex.unwrap_or_default(),
                };
                names.expect_missing_view(prepared.record.container.clone().filter(|_| missing));
                finished = prepared
                    .record_built(&state, &link, Intent::InBatch)
                    .and_then(|()| prepared.add_view(&names, network))
                    .map_err(|error| {
                        error.context(attaching_reserved(&prepared.record, &network.name))
                    });
                if finished.is_err() {
                    break;
                }
            }
            names.expect_missing_view(None);
            finished
        };
        let plan = |r: &Reserved| r.pending.plan(network, &parent);
        let mut failure = match link_maker() {
            Ok(make) => create_ahead(&mut reserved, plan, make, finish),
            // Nothing was asked of the kernel.
            Err(error) => Some(error),
        };
        if failure.is_none() {
            let records: Vec<&EndpointRecord> =
                reserved.iter().map(|r| &r.pending.record).collect();
            let named = names
                .append(network, &records)
                .and_then(|()| names.refresh_network(network));
            if let Err(error) = named {
                failure = Some(error.context(attaching_to()));
            }
        }
        if let Some(error) = failure {
            // Each endpoint taken back out of the kernel as far as it got
            // (see `Reserved::undo`); one whose link the kernel would not
            // delete keeps its record and addresses for `restore`. Then
            // `batch-intents` goes, and only then is the rest given back,
            // the cursors as found, as for a batch refused before its
            // creates.
            let gone: Vec<bool> = reserved
                .iter_mut()
                .map(|r| r.undo(&state, &names, network, &parent))
                .collect();
            let _ = state.remove_batch_intents();
            give_back(
                &mut reserved
                    .into_iter()
                    .zip(gone)
                    .filter(|(_, gone)| *gone)
                    .map(|(r, _)| r.pending),
            );
            return Err(error);
        }
        // Collected in place of the endpoints, each one's descriptors and
        // strings freed as its own are made.
        let endpoints: Vec<EndpointInfo> = reserved
            .into_iter()
            .map(|r| EndpointInfo::from_record(network, &r.pending.record))
            .collect();
        // Every endpoint has its final record: the intents go (should the
        // removal fail, the next lock finds every intent with its record
        // and removes the file then), and with the records the whole batch
        // is made durable at once, before it is reported.
        let _ = state.remove_batch_intents();
        state.commit()?;
        Ok(endpoints)
    }

    /// Detaches every namespace of `targets` from `network`, each as
    /// [`Manager::disconnect`] would, under one lock and with one commit;
    /// returns what was left alone, and why.
    ///
    /// Every target is looked up first: if one is not attached, nothing
    /// is changed. A failure part-way (the kernel refusing a delete) stops
    /// there; the error says how many were detached before it. Its
    /// descriptors and the limit on them are as [`Manager::connect_many`]'s.
    pub fn disconnect_many(&self, network: &str, targets: &[Target]) -> Result<Vec<String>, Error> {
        lookup_network_id_to_lock(&self.store, network)?;
        // What is at each path now, opened and entered under the lock (as
        // disconnect enters its one; see connect_many): two descriptors a
        // target, and the limit on them, as for connect_many.
        let _room = make_room_for_descriptors(2 * targets.len())?;
        let state = self.store.lock()?;
        // Entered from our own namespace, opened once, as connect_many's.
        let home = Netns::current()
            .map_err(|e| Error::io("opening this thread's network namespace", &e))?;
        // One vector holds each target from its place to its endpoint
        // (found in its own slot), as in connect_many: the places and the
        // endpoints (about 260 and 440 bytes each) are never held side by
        // side.
        // Made at its size: grown as it is filled, it held its old and new
        // rooms side by side (a third of a thousand slots' peak again).
        let mut slots = Vec::with_capacity(targets.len());
        for target in targets {
            slots.push(DetachSlot::Placed(
                self.place_for_detach_from(target, &home)?,
            ));
        }
        drop(home);
        let networks = state.networks()?;
        let network = find_network(&networks, network)?;
        for at in 0..slots.len() {
            let DetachSlot::Placed(placed) = std::mem::replace(&mut slots[at], DetachSlot::Moving)
            else {
                continue;
            };
            let target = &targets[at];
            let (endpoint, ns) = self.endpoint_to_detach(&state, network, target, placed)?;
            if slots[..at]
                .iter()
                .any(|slot| slot.endpoint_id() == Some(&endpoint.id))
            {
                return Err(Error::invalid(format!(
                    "{} names an endpoint given before it; nothing was detached",
                    target.label()
                )));
            }
            slots[at] = DetachSlot::Found(endpoint, ns);
        }
        let host = Handle::new()?;
        // Looked up once for all (a CNI network without a host master
        // names none).
        let parent = match network.parent.as_str() {
            "" => None,
            name => host.link_by_name(name)?,
        };
        drop(host);
        check_hosts_dir(&state, network)?;
        // Each endpoint's record becomes its intent (`detaching`), in its
        // slot; every intent is written in one file before the first link
        // goes: a batch killed anywhere is finished by the next lock and
        // `restore`, an endpoint at a time.
        let mut was = Vec::with_capacity(slots.len());
        for slot in &mut slots {
            let DetachSlot::Found(endpoint, _) = slot else {
                return Err(Error::failed("a target of the batch was not looked up"));
            };
            was.push(endpoint.state);
            endpoint.state = EndpointState::Detaching;
        }
        state.put_batch_intents(&mut slots.iter().filter_map(DetachSlot::endpoint))?;
        // Then what each link's removal needs: its place, taken from the
        // record until the removal is done, and the namespace and its
        // socket taken apart, to go to the thread that deletes the links.
        for (slot, was) in slots.iter_mut().zip(was) {
            let DetachSlot::Found(mut endpoint, at) = std::mem::replace(slot, DetachSlot::Moving)
            else {
                continue;
            };
            let how = LinkToRemove::take_from(&mut endpoint, was);
            let inside = match at {
                NsAt::Present(open, _) => match open.into_parts() {
                    Ok(parts) => Some(parts),
                    Err(error) => {
                        // Nothing was asked of the kernel: no intent stays.
                        let _ = state.remove_batch_intents();
                        return Err(error);
                    }
                },
                NsAt::Gone | NsAt::NotANamespace => None,
            };
            *slot = DetachSlot::Detaching(endpoint, Some(Unlink { how, inside }));
        }
        let names = self.names(&state);
        // The names of the containers detached, taken out of the network's
        // hosts file together at the end (one pass over it), and its union
        // views refreshed once: derived files, which restore rebuilds
        // should the batch be killed before.
        let mut gone: Vec<String> = Vec::new();
        let mut notes = Vec::new();
        let (unfinished, failure) =
            unlink_ahead(&mut slots, parent.as_ref(), |endpoint, removal| {
                notes.extend(removal?);
                names.remove_view(endpoint)?;
                self.forget_detached(&state, network, endpoint)?;
                gone.extend(endpoint.container.clone());
                Ok(())
            });
        let failure = failure.map(|(at, error)| {
            let label = slots
                .get(at)
                .and_then(DetachSlot::detaching)
                .map(endpoint_label);
            error.context(format!(
                "detaching {} from network {} ({at} detached before it)",
                label.unwrap_or_default(),
                network.name
            ))
        });
        // An endpoint whose link went, or may have gone, without the rest
        // of its detach keeps its intent as its record, for restore to
        // finish; the lines of those never reached then go with the file.
        // Should a keep fail (the store's disk refusing writes), the file
        // stays for the next lock, which finishes every line's detach
        // rather than leave an endpoint recorded attached without its link.
        let mut kept = Ok(());
        for endpoint in unfinished.iter().filter_map(|&at| slots[at].detaching()) {
            kept = kept.and(state.keep_batch_detach_intent(endpoint));
        }
        let settled = kept.and_then(|()| state.remove_batch_intents().map(drop));
        let names_taken_out = names
            .remove_lines(network, &gone)
            .and_then(|()| names.refresh_network(network));
        if let Some(error) = failure {
            let _ = state.commit();
            return Err(error);
        }
        settled?;
        names_taken_out?;
        state.commit()?;
        Ok(notes)
    }
}

/// What the removal of one endpoint's link needs, sent to the thread that
/// deletes a batch's links.
struct Unlink {
    how: LinkToRemove,
    /// The namespace attached and the socket in it; `None` when it is
    /// gone (nothing to delete).
    inside: Option<(Netns, Handle)>,
}

/// A link's removal done, with the link's place it took from the record.
type Removal = (Result<Option<String>, Error>, Option<LinkToRemove>);

/// How many links the thread deleting them may be given ahead of the
/// endpoint whose files are being written: one in its hands, one waiting.
const UNLINK_AHEAD: usize = 2;

/// How much stack a thread making or deleting a batch's links gets: its
/// requests' buffers are on the heap.
const LINK_THREAD_STACK: usize = 256 << 10;

/// Deletes the links of a batch's endpoints (`slots`, each
/// [`DetachSlot::Detaching`]) in order on a thread of its own, while
/// `forget` writes, on the calling thread, the files of each endpoint
/// whose removal is done, in the same order. A link's removal is mostly
/// the kernel waiting for the other CPUs to let go of it (RCU grace
/// periods: some 15 ms a link in the test VM); each endpoint's files are
/// written meanwhile, instead of after it. The thread is handed one
/// endpoint at a time, at most [`UNLINK_AHEAD`] ahead, so what it holds
/// does not grow with the batch.
///
/// Returns the endpoints whose removal ran (or may have) but whose files
/// were not all written, and the first failure (a removal's, `forget`'s,
/// or the thread's start: then nothing ran) with the endpoint's place;
/// after a failure no other removal starts.
fn unlink_ahead(
    slots: &mut [DetachSlot],
    parent: Option<&Link>,
    mut forget: impl FnMut(&EndpointRecord, Result<Option<String>, Error>) -> Result<(), Error>,
) -> (Vec<usize>, Option<(usize, Error)>) {
    use crate::handoff::{CloseOnDrop, Handoff};
    use std::sync::atomic::{AtomicBool, Ordering};
    if slots.is_empty() {
        return (Vec::new(), None);
    }
    let stop = AtomicBool::new(false);
    let jobs: Handoff<Option<Unlink>> = Handoff::new(UNLINK_AHEAD);
    let removals: Handoff<Removal> = Handoff::new(UNLINK_AHEAD);
    std::thread::scope(|scope| {
        let (stop, jobs, removals) = (&stop, &jobs, &removals);
        let unlinker = std::thread::Builder::new()
            .stack_size(LINK_THREAD_STACK)
            .spawn_scoped(scope, move || {
                // However it ends, neither side waits for it any more.
                let _closed = (CloseOnDrop(jobs), CloseOnDrop(removals));
                while let Some(job) = jobs.pop() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let (how, inside) = match job {
                        Some(Unlink { how, inside }) => (Some(how), inside),
                        None => (None, None),
                    };
                    let removal = match (&how, inside) {
                        (Some(how), Some((ns, handle))) => {
                            how.remove(&OpenNetns::from_parts(ns, handle), parent)
                        }
                        _ => Ok(None),
                    };
                    let failed = removal.is_err();
                    if removals.push((removal, how)).is_err() || failed {
                        break;
                    }
                }
            });
        let unlinker = match unlinker {
            Ok(unlinker) => unlinker,
            // No removal ran.
            Err(error) => {
                let error = Error::io("starting the thread that deletes the links", &error);
                return (Vec::new(), Some((0, error)));
            }
        };
        // However this side ends (a panic in `forget` too), the thread's
        // wait for another link ends, so the scope's join does.
        let _closed = CloseOnDrop(jobs);
        let mut given = 0;
        let mut unfinished = Vec::new();
        let mut failure = None;
        for at in 0..slots.len() {
            while given < slots.len() && given <= at + UNLINK_AHEAD {
                let job = slots[given].unlink_job();
                given += 1;
                if jobs.push(job).is_err() {
                    // It stopped: its last removal failed, and that is
                    // what comes next.
                    break;
                }
            }
            let Some((removal, how)) = removals.pop() else {
                // It died, maybe after this removal.
                unfinished.push(at);
                failure = Some((at, Error::failed("the thread deleting the links stopped")));
                break;
            };
            slots[at].give_back(how);
            let forgotten = match slots[at].detaching() {
                Some(endpoint) => forget(endpoint, removal),
                None => removal.map(drop),
            };
            if let Err(error) = forgotten {
                unfinished.push(at);
                failure = Some((at, error));
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        jobs.close();
        // Removals that ran past the failure, each with its endpoint.
        let mut at = failure.as_ref().map_or(slots.len(), |(at, _)| at + 1);
        while let Some((_, how)) = removals.pop() {
            slots[at].give_back(how);
            unfinished.push(at);
            at += 1;
        }
        let _ = unlinker.join();
        (unfinished, failure)
    })
}

/// A target of `connect_many` in the one vector that holds it from its
/// resolution to its create: a batch of a thousand held the resolved
/// targets and the endpoints reserved for them in two vectors side by side
/// at its peak.
enum Slot {
    Resolved(ResolvedTarget),
    Reserved(Reserved),
    /// Only while a resolved target becomes its endpoint.
    Moving,
}

/// What a batch keeps of a target once its endpoint is reserved: the
/// endpoint, its namespace and the socket in it.
struct Reserved {
    pending: Pending,
    /// `None` while the thread making the links holds it, and for good
    /// if that thread died holding it.
    inside: Option<OpenNetns>,
    /// Whether [`Manager::check_attach`] found nothing at the container's
    /// `/etc/netns/NAME` under the lock: its view is made without looking
    /// again.
    view_missing: bool,
    /// Its create was answered and the rest of its build failed: its link
    /// may stand, if the kernel refused the undo's delete.
    build_failed: bool,
}

impl Slot {
    fn target(&self) -> Option<&ResolvedTarget> {
        match self {
            Slot::Resolved(target) => Some(target),
            _ => None,
        }
    }

    fn target_mut(&mut self) -> Option<&mut ResolvedTarget> {
        match self {
            Slot::Resolved(target) => Some(target),
            _ => None,
        }
    }

    /// The target becomes the endpoint `pending` reserved for it; the
    /// strings and ids it was found by are let go.
    fn reserve(&mut self, pending: Pending) {
        if let Slot::Resolved(target) = std::mem::replace(self, Slot::Moving) {
            *self = Slot::Reserved(Reserved {
                view_missing: target.view_missing(),
                inside: Some(target.into_inside()),
                pending,
                build_failed: false,
            });
        }
    }

    fn into_reserved(self) -> Option<Reserved> {
        match self {
            Slot::Reserved(reserved) => Some(reserved),
            _ => None,
        }
    }
}

impl Reserved {
    /// What a chunk's create made of this endpoint, where its files were
    /// not written (the chunk made past a failure): recorded, for
    /// [`Reserved::undo`].
    fn made(&mut self, outcome: Result<Option<BuiltEndpoint>, Error>) {
        match outcome {
            Ok(Some(link)) => self.pending.record_link(link),
            Ok(None) => {}
            Err(_) => self.build_failed = true,
        }
    }

    /// Takes the endpoint back out of the kernel as far as its attach got,
    /// when the batch failed: a link made (its record has the link's
    /// MAC), with or without its files, as [`Pending::undo_from_the_kernel`];
    /// a build that failed, its link checked for at its index (its own
    /// undo may have been refused); nothing asked of the kernel, nothing.
    /// Returns whether it may be given back: not when its link stands and
    /// its `detaching` record keeps it for `restore`.
    fn undo(
        &mut self,
        state: &crate::store::Locked<'_>,
        names: &super::hosts::Names<'_>,
        network: &crate::store::NetworkRecord,
        parent: &Link,
    ) -> bool {
        let Some(inside) = &self.inside else {
            // Lost with the thread that held it to make its link (a
            // panic): the link may stand, and only `restore` can look.
            return !keep_for_restore(state, &mut self.pending.record, false);
        };
        match (&self.pending.record.mac, self.build_failed) {
            (Some(_), _) => self
                .pending
                .undo_from_the_kernel(state, names, network, parent, inside),
            (None, true) => {
                let stands = self.pending.record.ifindex.is_some_and(|index| {
                    endpoint_link::left_standing(
                        inside,
                        index,
                        &self.pending.record.ifname,
                        parent,
                        false,
                    )
                });
                // Its intent is a line of `batch-intents`, which goes after.
                !(stands && keep_for_restore(state, &mut self.pending.record, false))
            }
            (None, false) => true,
        }
    }
}

/// A target's namespace and socket are back from the thread that made
/// its link before its files are written.
const BACK_FROM_THE_THREAD: &str = "a target's namespace is back from the thread making the links";

/// What the thread making a batch's links made of a chunk: one outcome
/// per endpoint (`None`: refused as taken, nothing made, to go the single
/// way), or the chunk's error when the answers to its creates were lost
/// (each create that may have been made is deleted again).
type ChunkMade = Result<Vec<Result<Option<BuiltEndpoint>, Error>>, Error>;

/// A chunk of endpoints on its way to the thread making the links and
/// back: each one's namespace and socket (moved there and back, in
/// order), and the work.
struct Chunk {
    /// The place of its first endpoint in the batch.
    first: usize,
    insides: Vec<(Netns, Handle)>,
    work: ChunkWork,
}

enum ChunkWork {
    /// Each one's plan, name and index, there.
    ToMake(Vec<(EndpointPlan, String, u32)>),
    /// What was made, back.
    Made(ChunkMade),
}

/// How many chunks the thread making the links may be given ahead of the
/// one whose files are being written: one in its hands, one waiting.
const CREATES_AHEAD: usize = 2;

/// What makes a chunk's links on the thread of [`create_ahead`]:
/// [`endpoint_link::create_many`] from a host socket and this thread's
/// namespace, both opened for that thread (the caller's are not theirs
/// to move), with procfs instances of its own.
fn link_maker() -> Result<impl FnMut(&[NewEndpoint<'_>]) -> ChunkMade + Send, Error> {
    let host = Handle::new()?;
    let home =
        Netns::current().map_err(|e| Error::io("opening this thread's network namespace", &e))?;
    let sysctls = crate::netns::SysctlFiles::default();
    Ok(move |new: &[NewEndpoint<'_>]| endpoint_link::create_many(&host, &home, &sysctls, new))
}

/// Makes the links of `reserved` (`make`, a chunk of [`CREATE_CHUNK`] at
/// a time, each from `plan`) on a thread of its own, while `finish`
/// writes, on the calling thread, the files of each chunk made, in order.
/// Creating a link and setting it up is the kernel's work in the target
/// namespaces; the files are the store's, in other directories: each
/// chunk's files are written while the next chunk's links are made,
/// instead of after all of them.
///
/// Returns the first failure (a chunk's, `finish`'s, or the thread's
/// start); after it no other chunk is started, what the chunk under way
/// made is recorded in its endpoints ([`Reserved::made`]), and every
/// endpoint has its namespace back, for the caller's undo, unless the
/// thread died holding it (a panic): then [`Reserved::undo`] leaves the
/// endpoint to `restore`.
fn create_ahead(
    reserved: &mut [Reserved],
    plan: impl Fn(&Reserved) -> EndpointPlan,
    mut make: impl FnMut(&[NewEndpoint<'_>]) -> ChunkMade + Send,
    mut finish: impl FnMut(&mut [Reserved], ChunkMade) -> Result<(), Error>,
) -> Option<Error> {
    use crate::handoff::{CloseOnDrop, Handoff};
    use std::sync::atomic::{AtomicBool, Ordering};
    if reserved.is_empty() {
        return None;
    }
    let stop = AtomicBool::new(false);
    let (jobs, done) = (Handoff::new(CREATES_AHEAD), Handoff::new(CREATES_AHEAD));
    let chunks = reserved.len().div_ceil(CREATE_CHUNK);
    std::thread::scope(|scope| {
        let (stop, jobs, done): (_, &Handoff<Chunk>, &Handoff<Chunk>) = (&stop, &jobs, &done);
        let maker = std::thread::Builder::new()
            .stack_size(LINK_THREAD_STACK)
            .spawn_scoped(scope, move || {
                // However it ends, neither side waits for it any more.
                let _closed = (CloseOnDrop(jobs), CloseOnDrop(done));
                while let Some(chunk) = jobs.pop() {
                    let ChunkWork::ToMake(specs) = &chunk.work else {
                        break;
                    };
                    if stop.load(Ordering::Relaxed) {
                        // Given back unstarted, its namespaces with it.
                        if done.push(chunk).is_err() {
                            break;
                        }
                        continue;
                    }
                    let insides: Vec<OpenNetns> = chunk
                        .insides
                        .into_iter()
                        .map(|(ns, handle)| OpenNetns::from_parts(ns, handle))
                        .collect();
                    let new: Vec<NewEndpoint<'_>> = insides
                        .iter()
                        .zip(specs)
                        .map(|(inside, (plan, ifname, index))| NewEndpoint {
                            inside,
                            plan,
                            ifname,
                            index: *index,
                        })
                        .collect();
                    let made = make(&new);
                    drop(new);
                    let failed = match &made {
                        Ok(outcomes) => outcomes.iter().any(Result::is_err),
                        Err(_) => true,
                    };
                    let back = Chunk {
                        first: chunk.first,
                        insides: insides
                            .into_iter()
                            .map(OpenNetns::into_unheld_parts)
                            .collect(),
                        work: ChunkWork::Made(made),
                    };
                    if done.push(back).is_err() || failed {
                        break;
                    }
                }
            });
        let maker = match maker {
            Ok(maker) => maker,
            // Nothing was asked of the kernel.
            Err(error) => {
                return Some(Error::io(
                    "starting the thread that makes the links",
                    &error,
                ))
            }
        };
        // However this side ends (a panic in `finish` too), the thread's
        // wait for another chunk ends, so the scope's join does.
        let _closed = CloseOnDrop(jobs);
        // A chunk back in its place: its namespaces, and what was made
        // (nothing, for one given back unstarted).
        let put_back = |reserved: &mut [Reserved], back: Chunk| {
            let at = back.first..back.first + back.insides.len();
            for (r, (ns, handle)) in reserved[at.clone()].iter_mut().zip(back.insides) {
                r.inside = Some(OpenNetns::from_parts(ns, handle));
            }
            match back.work {
                ChunkWork::Made(made) => (at, made),
                ChunkWork::ToMake(_) => (at, Ok(Vec::new())),
            }
        };
        let mut given = 0;
        let mut failure = None;
        for at in 0..chunks {
            while given < chunks && given < at + CREATES_AHEAD {
                let first = given * CREATE_CHUNK;
                let end = (first + CREATE_CHUNK).min(reserved.len());
                let mut insides = Vec::with_capacity(end - first);
                let mut specs = Vec::with_capacity(end - first);
                for r in &mut reserved[first..end] {
                    let Some(inside) = r.inside.take() else {
                        continue;
                    };
                    insides.push(inside.into_unheld_parts());
                    let index = r
                        .pending
                        .record
                        .ifindex
                        .expect("reserve names the index of the first create");
                    specs.push((plan(r), r.pending.record.ifname.clone(), index));
                }
                given += 1;
                let chunk = Chunk {
                    first,
                    insides,
                    work: ChunkWork::ToMake(specs),
                };
                // Refused: the thread stopped after a failure, which comes
                // next.
                if let Err(chunk) = jobs.push(chunk) {
                    let _unstarted = put_back(reserved, chunk);
                    break;
                }
            }
            let Some(back) = done.pop() else {
                failure = Some(Error::failed("the thread making the links stopped"));
                break;
            };
            let (at, made) = put_back(reserved, back);
            if let Err(error) = finish(&mut reserved[at], made) {
                failure = Some(error);
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        jobs.close();
        // The chunk made past the failure (its links stand, its files were
        // not written), and those given back unstarted.
        while let Some(back) = done.pop() {
            let (at, made) = put_back(reserved, back);
            if let Ok(outcomes) = made {
                for (r, outcome) in reserved[at].iter_mut().zip(outcomes) {
                    r.made(outcome);
                }
            }
        }
        let _ = maker.join();
        // Given and never taken: the thread stopped at a failure of its own.
        while let Some(unstarted) = jobs.pop() {
            let _unstarted = put_back(reserved, unstarted);
        }
        failure
    })
}

/// A target of `disconnect_many` in the one vector that holds it from
/// its place (found before the lock) to its endpoint (found under it).
enum DetachSlot {
    Placed(DetachPlace),
    Found(EndpointRecord, NsAt),
    /// The endpoint's intent, with its link's removal until that is handed
    /// to the thread that deletes the links.
    Detaching(EndpointRecord, Option<Unlink>),
    /// Only while a place becomes its endpoint, or an endpoint its intent.
    Moving,
}

impl DetachSlot {
    fn endpoint_id(&self) -> Option<&String> {
        match self {
            DetachSlot::Found(endpoint, _) => Some(&endpoint.id),
            _ => None,
        }
    }

    fn endpoint(&self) -> Option<&EndpointRecord> {
        match self {
            DetachSlot::Found(endpoint, _) | DetachSlot::Detaching(endpoint, _) => Some(endpoint),
            _ => None,
        }
    }

    /// Puts back into the endpoint's record the place of its link, which
    /// went to the thread that deleted it.
    fn give_back(&mut self, how: Option<LinkToRemove>) {
        if let (DetachSlot::Detaching(endpoint, _), Some(how)) = (self, how) {
            how.give_back(endpoint);
        }
    }

    fn detaching(&self) -> Option<&EndpointRecord> {
        match self {
            DetachSlot::Detaching(endpoint, _) => Some(endpoint),
            _ => None,
        }
    }

    /// The removal of this endpoint's link, for the thread that deletes
    /// links; once only (then nothing is left to remove).
    fn unlink_job(&mut self) -> Option<Unlink> {
        match self {
            DetachSlot::Detaching(_, unlink) => unlink.take(),
            _ => None,
        }
    }
}

/// Endpoints whose creates are sent together (see `connect_many`, in one
/// datagram: the host socket's holds about 64), and whose files are then
/// written while the next chunk's links are made: the first chunk's
/// creates and the last one's files are all that is not done side by side,
/// each chunk costs one more `sendmsg` and a hand-over between the two
/// threads.
const CREATE_CHUNK: usize = 16;

/// Descriptors a command uses besides those of its targets (standard
/// streams, the state directory's, the host socket, a few files at once).
const DESCRIPTORS_BESIDES_TARGETS: usize = 64;

/// The soft limit on open descriptors as it was before a batch raised
/// it, and how many batches run while it is raised: the last of them to
/// end puts it back (a host program's children inherit the limit, and
/// `select(2)` cannot take descriptors above 1,023).
static RAISED_LIMIT: Mutex<Option<RaisedLimit>> = Mutex::new(None);

struct RaisedLimit {
    batches: usize,
    soft_before: u64,
    /// What the batches set it to last: a limit the host program has
    /// changed since is its own, and stays.
    raised_to: u64,
}

/// The room a batch's descriptors have ([`make_room_for_descriptors`]),
/// until it drops.
struct DescriptorRoom {
    /// Counted in [`RAISED_LIMIT`].
    counted: bool,
}

impl Drop for DescriptorRoom {
    fn drop(&mut self) {
        if !self.counted {
            return;
        }
        let mut raised = RAISED_LIMIT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(limit) = raised.as_mut() {
            limit.batches -= 1;
            if limit.batches == 0 {
                let ours =
                    crate::sys::open_files_limit().is_ok_and(|(soft, _)| soft == limit.raised_to);
                if ours {
                    let _ = crate::sys::set_open_files_soft_limit(limit.soft_before);
                }
                *raised = None;
            }
        }
    }
}

/// Raises the soft limit on open descriptors (up to the hard limit, which
/// only a privileged process could raise) when `for_targets` more would
/// not fit under it beside those the process has open, until the returned
/// room drops; a batch too big for the hard limit is refused before
/// anything is opened.
fn make_room_for_descriptors(for_targets: usize) -> Result<DescriptorRoom, Error> {
    let mut raised = RAISED_LIMIT.lock().unwrap_or_else(|e| e.into_inner());
    let (soft, hard) = crate::sys::open_files_limit()
        .map_err(|e| Error::io("reading the limit on open files", &e))?;
    let open = match crate::sys::open_descriptor_count() {
        Ok(open) => open,
        // Not one more: the table is full.
        Err(e) if e.raw_os_error() == Some(libc::EMFILE) => soft,
        // Without `/proc`, as if none were (the margin is for a few).
        Err(_) => 0,
    };
    let more = (for_targets + DESCRIPTORS_BESIDES_TARGETS) as u64;
    // A batch running meanwhile may not have opened all of its own yet:
    // this one's go on top of the room that one made.
    let others = raised.as_ref().map_or(0, |limit| limit.raised_to);
    let needed = (open + more).max(others + for_targets as u64);
    if needed <= soft {
        // Room enough, maybe another batch's: this one keeps it too.
        let counted = raised.as_mut().map(|limit| limit.batches += 1).is_some();
        return Ok(DescriptorRoom { counted });
    }
    if needed > hard {
        return Err(Error::invalid(format!(
            "a batch of {} namespaces needs about {needed} open files (this process has {open} open), above its limit of {hard} (RLIMIT_NOFILE): attach them in smaller batches",
            for_targets / 2
        )));
    }
    crate::sys::set_open_files_soft_limit(needed)
        .map_err(|e| Error::io("raising the limit on open files", &e))?;
    match raised.as_mut() {
        Some(limit) => {
            limit.batches += 1;
            limit.raised_to = needed;
        }
        None => {
            *raised = Some(RaisedLimit {
                batches: 1,
                soft_before: soft,
                raised_to: needed,
            })
        }
    }
    Ok(DescriptorRoom { counted: true })
}

/// The context of an attach error of `target`.
fn attaching(target: &ResolvedTarget, network: &str) -> String {
    format!("attaching {} to network {network}", target.label())
}

/// The context of an attach error of the endpoint `reserved` is for,
/// named as [`ResolvedTarget::label`] names its target.
fn attaching_reserved(reserved: &EndpointRecord, network: &str) -> String {
    format!(
        "attaching {} to network {network}",
        endpoint_label(reserved)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Timestamp;

    /// A batch's slot whose endpoint `n` is being detached, its namespace
    /// gone (so the thread's removal asks nothing of the kernel).
    fn detaching(n: usize) -> DetachSlot {
        let mut endpoint = EndpointRecord {
            id: format!("e{n}"),
            network_id: "net".into(),
            container: Some(format!("c{n}")),
            netns: format!("/run/netns/c{n}"),
            ifname: "eth0".into(),
            mac: Some(format!("02:00:00:00:00:{n:02x}")),
            ipv4: None,
            ipv6: None,
            state: EndpointState::Detaching,
            created: Timestamp::now(),
            netns_id: None,
            ifindex: Some(10 + n as u32),
        };
        let how = LinkToRemove::take_from(&mut endpoint, EndpointState::Attached);
        DetachSlot::Detaching(endpoint, Some(Unlink { how, inside: None }))
    }

    /// A target of `connect_many` reserved as endpoint `n`: its namespace
    /// this thread's, with a socket in it; nothing asked of the kernel.
    fn reserved(n: usize) -> Reserved {
        let record = EndpointRecord {
            id: format!("e{n}"),
            network_id: "net".into(),
            container: Some(format!("c{n}")),
            netns: format!("/run/netns/c{n}"),
            ifname: "eth0".into(),
            mac: None,
            ipv4: None,
            ipv6: None,
            state: EndpointState::Attaching,
            created: Timestamp::now(),
            netns_id: None,
            ifindex: Some(10 + n as u32),
        };
        let ns = Netns::current().unwrap();
        let handle = Handle::new().unwrap();
        Reserved {
            pending: Pending::in_batch(record),
            inside: Some(OpenNetns::from_parts(ns, handle)),
            view_missing: false,
            build_failed: false,
        }
    }

    fn plan(r: &Reserved) -> EndpointPlan {
        EndpointPlan {
            parent_index: 2,
            parent_mac: format!("02:00:00:00:01:{:02x}", r.pending.record.ifindex.unwrap()),
            mode: Default::default(),
            flag: Default::default(),
            mtu: None,
            ipv4: None,
            ipv6: None,
            route4: endpoint_link::DefaultRoute::None,
            route6: endpoint_link::DefaultRoute::None,
            routes: Vec::new(),
            extra_addresses: Vec::new(),
            arp_notify: false,
        }
    }

    /// Where a batch of links made ahead of their files fails.
    #[derive(Clone, Copy, Debug)]
    enum Fails {
        Nowhere,
        /// One endpoint's create (the thread's side).
        Create(usize),
        /// A whole chunk's creates, their answers lost.
        Chunk(usize),
        /// The files of a chunk (the calling thread's side).
        Files(usize),
    }

    /// The links of a batch are made a chunk at a time on their own
    /// thread, ahead of the files, which are written chunk by chunk in
    /// order and only for chunks made; a failure on either side stops the
    /// batch with at most one chunk made past it, whose links are recorded
    /// for the undo, and every endpoint has its namespace back.
    #[test]
    fn links_are_made_ahead_of_the_files_and_a_failure_leaves_every_namespace_back() {
        let count = 3 * CREATE_CHUNK + 5;
        let chunk_of = |n: usize| n / CREATE_CHUNK;
        for fails in [
            Fails::Nowhere,
            Fails::Create(0),
            Fails::Create(CREATE_CHUNK + 3),
            Fails::Chunk(2),
            Fails::Files(0),
            Fails::Files(1),
            Fails::Files(3),
        ] {
            let mut batch: Vec<Reserved> = (0..count).map(reserved).collect();
            let made_chunks = std::sync::Mutex::new(Vec::new());
            let make = |new: &[NewEndpoint<'_>]| -> ChunkMade {
                let first = new[0].index as usize - 10;
                made_chunks.lock().unwrap().push(chunk_of(first));
                if matches!(fails, Fails::Chunk(c) if c == chunk_of(first)) {
                    return Err(Error::failed("answers lost"));
                }
                Ok(new
                    .iter()
                    .map(|e| {
                        let n = e.index as usize - 10;
                        if matches!(fails, Fails::Create(at) if at == n) {
                            return Err(Error::failed("refused"));
                        }
                        Ok(Some(BuiltEndpoint {
                            ifname: e.ifname.to_string(),
                            mac: e.plan.parent_mac.clone(),
                            index: e.index,
                        }))
                    })
                    .collect())
            };
            let mut finished = Vec::new();
            let failure = create_ahead(&mut batch, plan, make, |chunk, made| {
                let first: usize = chunk[0].pending.record.id[1..].parse().unwrap();
                let outcomes = made?;
                assert_eq!(outcomes.len(), chunk.len());
                for (r, outcome) in chunk.iter_mut().zip(outcomes) {
                    r.made(outcome);
                }
                if chunk.iter().any(|r| r.build_failed) {
                    return Err(Error::failed("a create failed"));
                }
                if matches!(fails, Fails::Files(c) if c == chunk_of(first)) {
                    return Err(Error::failed("files refused"));
                }
                finished.push(chunk_of(first));
                Ok(())
            });
            let made = made_chunks.into_inner().unwrap();
            let last = chunk_of(count - 1);
            let failed_at = match fails {
                Fails::Nowhere => None,
                Fails::Create(n) => Some(chunk_of(n)),
                Fails::Chunk(c) | Fails::Files(c) => Some(c),
            };
            assert_eq!(failure.is_some(), failed_at.is_some(), "{fails:?}");
            let finished_to = failed_at.unwrap_or(last + 1);
            assert_eq!(finished, (0..finished_to).collect::<Vec<_>>(), "{fails:?}");
            // In order, and at most one chunk past the failure, and none past
            // a failure of the thread's own.
            assert!(
                made.windows(2).all(|w| w[1] == w[0] + 1),
                "{fails:?}: {made:?}"
            );
            let made_to = made.last().map_or(0, |c| c + 1);
            let past = match fails {
                Fails::Files(_) => CREATES_AHEAD - 1,
                _ => 0,
            };
            assert!(
                made_to <= finished_to.min(last) + 1 + past,
                "{fails:?}: {made:?}"
            );
            for (n, r) in batch.iter().enumerate() {
                assert!(r.inside.is_some(), "{fails:?}: e{n}'s namespace is back");
                let was_made = made.contains(&chunk_of(n))
                    && !matches!(fails, Fails::Chunk(c) if c == chunk_of(n))
                    && !matches!(fails, Fails::Create(at) if at == n);
                // Recorded as made: finished, or made past the failure.
                assert_eq!(r.pending.record.mac.is_some(), was_made, "{fails:?}: e{n}");
            }
        }
    }

    /// A panic on the calling side (in the writing of a chunk's files)
    /// ends the thread making the links too, so it reaches the caller (a
    /// library's, which unwinds) instead of a scope waiting for ever with
    /// the store's lock held.
    #[test]
    fn a_panic_writing_the_files_is_not_a_hang() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut batch: Vec<Reserved> = (0..2 * CREATE_CHUNK).map(reserved).collect();
            let make = |new: &[NewEndpoint<'_>]| -> ChunkMade {
                Ok(new.iter().map(|_| Ok(None)).collect())
            };
            let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                create_ahead(&mut batch, plan, make, |_, _| panic!("files"))
            }));
            let _ = tx.send(unwound.is_err());
        });
        let panicked = rx.recv_timeout(std::time::Duration::from_secs(30));
        assert_eq!(panicked, Ok(true), "the panic came back, not a hang");
        // The same of a batch detach's files.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut slots: Vec<DetachSlot> = (0..10).map(detaching).collect();
            let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                unlink_ahead(&mut slots, None, |_, _| panic!("files"))
            }));
            let _ = tx.send(unwound.is_err());
        });
        let panicked = rx.recv_timeout(std::time::Duration::from_secs(30));
        assert_eq!(panicked, Ok(true), "a detach's panic came back, not a hang");
    }

    /// Every endpoint's files are written in order, each after its link's
    /// removal, with the link's place given back; a failure stops the
    /// batch there and names every endpoint whose removal ran past it
    /// (at most [`UNLINK_AHEAD`]), each with its place given back too.
    #[test]
    fn links_go_ahead_of_the_files_and_a_failure_names_what_ran_past_it() {
        for fail_at in [None, Some(0), Some(3), Some(9)] {
            let mut slots: Vec<DetachSlot> = (0..10).map(detaching).collect();
            let mut forgotten = Vec::new();
            let (unfinished, failure) = unlink_ahead(&mut slots, None, |endpoint, removal| {
                assert_eq!(removal.unwrap(), None);
                assert_eq!(endpoint.ifname, "eth0", "{}'s name given back", endpoint.id);
                assert!(endpoint.mac.is_some(), "{}'s MAC given back", endpoint.id);
                let n: usize = endpoint.id[1..].parse().unwrap();
                if Some(n) == fail_at {
                    return Err(Error::failed("refused"));
                }
                forgotten.push(n);
                Ok(())
            });
            match fail_at {
                None => {
                    assert_eq!(forgotten, (0..10).collect::<Vec<_>>());
                    assert!(unfinished.is_empty() && failure.is_none());
                }
                Some(at) => {
                    assert_eq!(forgotten, (0..at).collect::<Vec<_>>());
                    assert_eq!(failure.map(|(n, _)| n), Some(at));
                    assert_eq!(unfinished.first(), Some(&at), "{unfinished:?}");
                    assert!(
                        unfinished.windows(2).all(|w| w[1] == w[0] + 1)
                            && unfinished.len() <= 1 + UNLINK_AHEAD,
                        "{unfinished:?}"
                    );
                    for &n in &unfinished {
                        let endpoint = slots[n].detaching().unwrap();
                        assert_eq!(endpoint.ifname, "eth0", "e{n}'s name given back");
                    }
                }
            }
        }
    }
}
