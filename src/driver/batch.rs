//! `connect_many` / `disconnect_many`: many namespaces attached to (or
//! detached from) one network in one call, for programs that set up
//! hundreds of namespaces (benchmark harnesses, test rigs).
//!
//! One lock, one read of the network, one host socket and one lookup of the
//! parent for the whole batch; the link creates go to the kernel 16 at a
//! time (a chunk in as few datagrams as the socket takes,
//! `Handle::link_add_many`, so that what a create needs is held for one
//! chunk only), each namespace then gets its address, link-up and routes
//! in one round trip on its own socket; each chunk built is finished
//! (names, records, views: the disk's work) on a thread of its own while
//! the kernel builds the next; the state is made durable once, at the end
//! (`Locked::commit`). The intents of all its endpoints are
//! written before the kernel is touched, in one file
//! (`Locked::put_batch_intents`), and each final record is made in place
//! (no intent file per endpoint to create and rename over): the next
//! holder of the lock turns the intents of a batch that died into intent
//! records of their own, and the final records it had written into
//! `detaching` ones, so an interrupted batch is what `restore` already
//! repairs, undone whole: the batch removes its intents only once every
//! endpoint is finished (records, views, the network's union views), and
//! one that dies after that is kept whole.
//!
//! A batch is all or nothing: when one target cannot be attached, the
//! endpoints this call made are removed again and the error names the
//! target. Detaching checks every target first and changes nothing unless
//! all are attached.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::handoff::Handoff;

use super::endpoint_link::{self, BuiltEndpoint, EndpointPlan, NewEndpoint};
use super::endpoints::{
    check_hosts_dir, keep_for_restore, parent_link_unless_ours_missing, DetachPlace, Intent,
    LinkToRemove, Pending, ResolvedTarget,
};
use super::hosts::Names;
use super::listed::Listed;
use super::netns_identity::{NsAt, OpenNetns};
use super::networks::{find_network, find_network_to_join, lookup_network_id_to_lock};
use super::report::endpoint_label;
use super::{AttachRequest, EndpointInfo, Error, Manager, Target};
use crate::netns::Netns;
use crate::rtnl::Handle;
use crate::store::{EndpointRecord, EndpointState, NetworkRecord};

impl Manager {
    /// Attaches every namespace of `targets` to `network`, each as
    /// [`Manager::connect`] would with automatic addresses, in one call;
    /// the endpoints come back in the order of `targets`.
    ///
    /// All or nothing: if one target is refused (not a namespace, already
    /// attached, given twice, no address left) or the kernel refuses one
    /// link, nothing of this call stays and the error names that target.
    /// So too when the process is killed: the next lock and `restore` undo
    /// every endpoint of a batch that died before it removed its intents
    /// (once every endpoint was finished), those it finished with the
    /// rest, and keep whole one that died after. Until `restore` runs, the
    /// endpoints it had finished are `detaching`: listed nowhere, their
    /// links still up. A commit that fails at the very end (the disk
    /// refusing the flush) is reported as the error it is, with every
    /// endpoint attached.
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
        // Nothing asked, nothing done: not even the lock's page written.
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        // Each namespace opened, with its own socket, and identified: two
        // descriptors a target, held to the end. Under the lock, as
        // connect enters its target: a visit must not overlap an `rm -f`
        // of the container, which takes the processes it finds inside
        // (this thread's, the whole program) for the container's.
        let _room = make_room_for_descriptors(2 * targets.len(), "attach")?;
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
        // Made again where it is ours and missing, once the refusals are
        // behind (see `Manager::parent_remade`).
        let parent = parent_link_unless_ours_missing(&host, network)?;
        let request = AttachRequest::default();

        // Every refusal before anything is taken; then, should the
        // addresses run out part-way, the allocation cursors are put back
        // with the rest, so a refused batch leaves even that hint as it was.
        // The names each target's checks look up are listed first, once:
        // after what a dead command left is records, if it can be.
        super::networks::refuse_while_intent_pending(&state, network)?;
        let containers = slots
            .iter()
            .any(|slot| slot.target().is_some_and(ResolvedTarget::is_container));
        let listed = Listed::read(&state, &network.id, &self.config.etc_netns_dir, containers)
            .map_err(|e| e.context(format_args!("attaching to network {}", network.name)))?;
        for target in slots.iter_mut().filter_map(Slot::target_mut) {
            super::endpoints::refuse_half_done_container(&state, target, Some(&listed))
                .and_then(|()| self.check_attach(&state, network, target, &request, Some(&listed)))
                .map_err(|e| e.context(attaching(target, &network.name)))?;
            target.forget_typed_path();
        }
        drop(listed);
        check_hosts_dir(&state, network)
            .map_err(|e| e.context(format_args!("attaching to network {}", network.name)))?;
        let parent = self.parent_remade(&host, &state, network, parent)?;
        let cursors = state.cursors(network)?;
        let put_back_cursors = || {
            let _ = state.put_cursors(network, &cursors);
        };
        // Only once nothing of the batch is left in the kernel, and after
        // `batch-intents` is gone (see `Pending::undo_from_the_kernel`): a
        // line brought back from it would name the index another link
        // refused, where an endpoint's own record names the one it got.
        // The cursors stay past an address the kernel refused as another
        // ipvlan link's on the parent (no record of ours says so), so that
        // the same batch run again does not try it first again: a single
        // attach passes over such an address, a batch is all or nothing.
        let give_back = |pending: &mut dyn Iterator<Item = Pending>, error: &Error| {
            let abandon = || {
                for prepared in pending {
                    prepared.abandon(&state, network);
                }
            };
            if error.is_address_held_on_port() {
                super::endpoints::keeping_cursors(&state, network, abandon);
            } else {
                abandon();
                put_back_cursors();
            }
        };
        // Once nothing of the batch is left in the kernel: should
        // `batch-intents` stay, every endpoint stays with it, for restore,
        // and the batch's `error` says so.
        let give_back_unless_intents_stay =
            |pending: &mut dyn Iterator<Item = Pending>, error: Error| {
                if state.remove_batch_intents().is_err() {
                    return error.and_left(
                        "the batch's endpoints are left with its intents for `ipvlan restore` to undo",
                    );
                }
                give_back(pending, &error);
                error
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
                &error,
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
            let error =
                Error::from(error).context(format!("attaching to network {}", network.name));
            give_back(&mut reserved.into_iter().map(|r| r.pending), &error);
            return Err(error);
        }

        // The names of all in the network's hosts file first, in one write
        // (a derived file: restore takes out the lines of endpoints a kill
        // leaves unattached): each view then made, a container's view of
        // several networks included, holds every name of the batch.
        let mut finisher = Finisher::new(self.names(&state), network);
        let appended = finisher
            .names
            .append(
                network,
                &reserved
                    .iter()
                    .map(|r| &r.pending.record)
                    .collect::<Vec<_>>(),
            )
            .map_err(|error| error.context(format!("attaching to network {}", network.name)));

        // The creates go to the kernel a chunk at a time: a plan, a request
        // and an answer per endpoint (about 400 bytes) are held for one
        // chunk, not the whole batch, and each chunk is still sent
        // together. What each create made goes into its record at once, so
        // no list of built links is held either. Each chunk built is then
        // finished (see `Finisher`) while the kernel builds the next: on a
        // thread of its own when there is a next chunk, the files being the
        // disk's work and the creates the kernel's.
        let sysctls = crate::netns::SysctlFiles::default();
        let mut chunks = reserved.chunks_mut(CREATE_CHUNK);
        // Room for every chunk, so that no push waits: the finishing never
        // holds the creates back, and a batch of one chunk is finished on
        // this thread once its chunk is queued.
        let to_finish: Handoff<Vec<Finish<'_>>> = Handoff::new(chunks.len());
        // Set by whichever side fails (or panics) first: the creates stop
        // at their next chunk, the finishing passes over the chunks still
        // queued, and the batch is undone.
        let stop = AtomicBool::new(false);
        let mut finish = || {
            let _stop_on_panic = StopOnPanic(&stop);
            while let Some(chunk) = to_finish.pop() {
                if stop.load(Ordering::Relaxed) {
                    // Left as built, undone with the rest.
                    continue;
                }
                if !finisher.chunk(chunk) {
                    stop.store(true, Ordering::Relaxed);
                    to_finish.close();
                }
            }
        };
        let (create_failure, sent, finish_here) = match appended {
            // Nothing asked of the kernel, nothing to finish.
            Err(error) => (Some(error), 0, false),
            Ok(()) => std::thread::scope(|scope| {
                // However this side ends (a panic too), the finishing's wait for
                // another chunk ends, so the scope's join does.
                let _closed = CloseOnDrop(&to_finish);
                let beside = chunks.len() > 1
                    && !crate::fault::forced("batch: no finishing thread")
                    && std::thread::Builder::new()
                        .stack_size(FINISH_STACK)
                        .spawn_scoped(scope, &mut finish as &mut (dyn FnMut() + Send))
                        .is_ok();
                let mut failure = None;
                let mut sent = 0;
                for chunk in chunks.by_ref() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let plans: Vec<EndpointPlan> = chunk
                        .iter()
                        .map(|r| r.pending.plan(network, &parent))
                        .collect();
                    let new: Vec<NewEndpoint<'_>> = chunk
                        .iter()
                        .zip(&plans)
                        .map(|(r, plan)| NewEndpoint {
                            inside: &r.inside,
                            plan,
                            ifname: &r.pending.record.ifname,
                            guessed: r.pending.name_guessed(),
                            index: r
                                .pending
                                .record
                                .ifindex
                                .expect("reserve names the index of the first create"),
                        })
                        .collect();
                    let records: Vec<&EndpointRecord> =
                        chunk.iter().map(|r| &r.pending.record).collect();
                    // The index each intent names now, where a retry changed it: a
                    // target that goes the single way below starts from it, so its
                    // first create asks for the index its intent names.
                    let mut rerecorded: Vec<Option<Option<u32>>> = vec![None; records.len()];
                    let mut rerecord = |at: usize, index: Option<u32>| -> Result<(), Error> {
                        let mut record = records[at].clone();
                        record.ifindex = index;
                        state.put_endpoint(&record)?;
                        rerecorded[at] = Some(index);
                        Ok(())
                    };
                    let built = match endpoint_link::create_many(
                        &host,
                        &home,
                        &sysctls,
                        &new,
                        &mut rerecord,
                    ) {
                        Ok(built) => built,
                        Err(error) => {
                            // The chunk's answers lost: any of its creates may
                            // stand, its undo by index refused; each is looked
                            // at below, as a build that failed.
                            for r in chunk.iter_mut() {
                                r.build_failed = true;
                            }
                            failure = Some(
                                error.context(format!("attaching to network {}", network.name)),
                            );
                            stop.store(true, Ordering::Relaxed);
                            break;
                        }
                    };
                    for (
                        (
                            Reserved {
                                pending: prepared,
                                inside,
                                build_failed,
                                ..
                            },
                            link,
                        ),
                        rerecorded,
                    ) in chunk.iter_mut().zip(built).zip(rerecorded)
                    {
                        if let Some(Some(index)) = rerecorded {
                            prepared.record.ifindex = Some(index);
                        }
                        // Its guessed name taken by another tool, nothing made: a
                        // free one, recorded before its create, as a single attach.
                        let link = match link {
                            // Nothing made, and the batch is given up already.
                            Ok(None) if failure.is_some() => continue,
                            Ok(None) => prepared.build(&state, &host, network, &parent, inside),
                            Ok(Some(link)) => Ok(link),
                            Err(error) => Err(error),
                        };
                        match link {
                            Ok(link) => {
                                prepared.record.ifname = link.ifname;
                                prepared.record.mac = Some(link.mac);
                                prepared.record.ifindex = Some(link.index);
                            }
                            Err(error) => {
                                *build_failed = true;
                                if failure.is_none() {
                                    failure = Some(error.context(attaching_reserved(
                                        &prepared.record,
                                        &network.name,
                                    )));
                                }
                            }
                        }
                    }
                    if failure.is_some() {
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                    let chunk_len = chunk.len();
                    let finished: Vec<Finish<'_>> = chunk
                        .iter_mut()
                        .map(|r| Finish {
                            pending: &mut r.pending,
                            view_missing: r.view_missing,
                        })
                        .collect();
                    if to_finish.push(finished).is_err() {
                        // The finishing failed meanwhile: its failure is the
                        // batch's, this chunk stays as built.
                        break;
                    }
                    sent += chunk_len;
                }
                (failure, sent, !beside)
            }),
        };
        if finish_here {
            // One chunk, or no thread to be had: finished here, after the
            // creates, from the queue.
            finish();
        }
        let Finisher {
            names,
            failure: finish_failure,
            ..
        } = finisher;
        // A failure of the finishing stopped the creates at the next chunk,
        // one of the creates the finishing; one of the creates is told when
        // both failed: an address another link holds keeps the cursors past
        // it (see `give_back`).
        let mut failure = create_failure.or(finish_failure);
        if failure.is_none() {
            if let Err(error) = names.refresh_network(network) {
                failure = Some(error.context(format!("attaching to network {}", network.name)));
            }
        }
        // Every endpoint has its final record and view: the intents go.
        // A batch that dies before this is undone whole by the next lock
        // (`Locked::expand_line`); one that dies after leaves no intents,
        // so it is kept whole. One whose removal fails is undone here,
        // never reported attached with intents left to undo it later.
        if failure.is_none() {
            if let Err(error) = state.remove_batch_intents() {
                failure = Some(
                    Error::from(error).context(format!("attaching to network {}", network.name)),
                );
            }
        }
        if let Some(mut error) = failure {
            if error.is_address_held_on_port() {
                error = error
                    .and_left("nothing was attached; the same command passes over that address");
            }
            // Each endpoint undone as far as it got. One sent to be
            // finished may have its record and view: all undone with its
            // link and names (see `Pending::undo_built`). Of the others,
            // the names go, and the links made (those whose record has
            // their MAC: every record names the index its create asked
            // for) stand in the kernel: taken down again. A link the kernel
            // would not delete keeps a `detaching` record of its own (its
            // line goes with `batch-intents`) and its addresses, for
            // `restore`.
            // Before any view is made again by an undo below: the names
            // of those never finished go first, so no view holds them.
            let unfinished: Vec<String> = reserved[sent..]
                .iter()
                .filter_map(|r| r.pending.record.container.clone())
                .collect();
            let _ = names.remove_lines(network, &unfinished);
            drop(unfinished);
            let given_back: Vec<bool> = reserved
                .iter_mut()
                .enumerate()
                .map(|(at, r)| {
                    if at < sent {
                        return r
                            .pending
                            .undo_from_the_kernel(&state, &names, network, &parent, &r.inside);
                    }
                    let Some(index) = r.pending.record.ifindex else {
                        return true;
                    };
                    let stands = match (&r.pending.record.mac, r.build_failed) {
                        (Some(_), _) => endpoint_link::stays_after_delete(&r.inside, index),
                        // Its build's own undo may have been refused.
                        (None, true) => endpoint_link::left_standing(
                            &r.inside,
                            index,
                            &r.pending.record.ifname,
                            &parent,
                            false,
                        ),
                        (None, false) => false,
                    };
                    // Its intent is a line of `batch-intents`, which goes below.
                    !(stands && keep_for_restore(&state, &mut r.pending.record, false))
                })
                .collect();
            // As a batch refused before its creates: the cursors as found.
            return Err(give_back_unless_intents_stay(
                &mut reserved
                    .into_iter()
                    .zip(given_back)
                    .filter(|(_, given_back)| *given_back)
                    .map(|(r, _)| r.pending),
                error,
            ));
        }
        // Collected in place of the endpoints, each one's descriptors and
        // strings freed as its own are made.
        let endpoints: Vec<EndpointInfo> = reserved
            .into_iter()
            .map(|r| EndpointInfo::from_record(network, &r.pending.record))
            .collect();
        // With the records and the intents' removal, the whole batch is
        // made durable at once, before it is reported.
        state.commit()?;
        Ok(endpoints)
    }

    /// Detaches every namespace of `targets` from `network`, each as
    /// [`Manager::disconnect`] would, under one lock and with one commit;
    /// returns what was left alone, and why.
    ///
    /// Every target is looked up first: if one is not attached, nothing
    /// is changed. A failure part-way (the kernel refusing a delete) stops
    /// there; the error names the targets detached before it and those
    /// left for `restore` to finish. Its descriptors and the limit on them
    /// are as [`Manager::connect_many`]'s. The links are deleted on up to
    /// four threads of its own (started and joined within the call), which
    /// share the kernel's waits.
    pub fn disconnect_many(&self, network: &str, targets: &[Target]) -> Result<Vec<String>, Error> {
        lookup_network_id_to_lock(&self.store, network)?;
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        // What is at each path now, opened and entered under the lock (as
        // disconnect enters its one; see connect_many): two descriptors a
        // target, and the limit on them, as for connect_many.
        let _room = make_room_for_descriptors(2 * targets.len(), "detach")?;
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
        // An unproven link's name stays out of every intent (see
        // `LinkToRemove`), kept aside for the note its removal may give.
        let mut was = Vec::with_capacity(slots.len());
        let mut unproven_names = Vec::new();
        for (at, slot) in slots.iter_mut().enumerate() {
            let DetachSlot::Found(endpoint, _) = slot else {
                return Err(Error::failed("a target of the batch was not looked up"));
            };
            was.push(endpoint.state);
            if LinkToRemove::is_unproven(endpoint.state, endpoint.ifindex, &endpoint.ifname) {
                unproven_names.push((at, std::mem::take(&mut endpoint.ifname)));
            }
            endpoint.state = EndpointState::Detaching;
        }
        state.put_batch_intents(&mut slots.iter().filter_map(DetachSlot::endpoint))?;
        for (at, name) in unproven_names {
            if let DetachSlot::Found(endpoint, _) = &mut slots[at] {
                endpoint.ifname = name;
            }
        }
        // Then what each link's removal needs: its place, taken from the
        // record until the removal is done, and the namespace and its
        // socket taken apart, to go to the threads that delete the links.
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
        // Every target's names out of the network's hosts file in one pass,
        // and the union views of the containers on it made again from it,
        // before the first link goes, as a single detach takes its own out
        // before it gives its addresses back: done at the end, a batch
        // stopped part way (a Ctrl-C) left the names of the endpoints it
        // had detached naming addresses free for the next connect, in the
        // file and in those views, until a `restore`. A batch killed after
        // this is finished whole by the next lock and `restore`; one that
        // fails puts back the names of the endpoints it leaves attached
        // (below). Should the file refuse the edit, the batch goes on and
        // says so at its end, as before.
        let leaving: Vec<&EndpointRecord> =
            slots.iter().filter_map(DetachSlot::detaching).collect();
        let containers: Vec<String> = leaving
            .iter()
            .filter_map(|endpoint| endpoint.container.clone())
            .collect();
        let names_taken_out = names
            .remove_lines(network, &containers)
            .and_then(|()| names.refresh_network_leaving(network, &leaving));
        drop((leaving, containers));
        let mut notes = Vec::new();
        let mut detached = DetachedSoFar::default();
        let master = endpoint_link::Master::of(network, parent.as_ref());
        let (unfinished, failure) = unlink_ahead(&mut slots, master, |endpoint, removal| {
            notes.extend(removal?);
            names.remove_view(endpoint)?;
            self.forget_detached(&state, network, endpoint)?;
            detached.push(endpoint);
            Ok(())
        });
        let failure = failure.map(|(at, error)| {
            let label = slots
                .get(at)
                .and_then(DetachSlot::detaching)
                .map(endpoint_label);
            let left: Vec<String> = unfinished
                .iter()
                .filter_map(|&at| slots[at].detaching())
                .map(endpoint_label)
                .collect();
            let context = match label {
                Some(label) => format!("detaching {label} from network {}", network.name),
                None => format!("detaching from network {}", network.name),
            };
            error.context(format!(
                "{context} ({})",
                stopped_batch_says(&detached, &left, &notes)
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
        if let Some(error) = failure {
            // The names of the endpoints left attached back in the file
            // (made from the records: those left `detaching` stay out).
            let _ = names.rebuild(network);
            let _ = state.commit();
            return Err(error);
        }
        // Every target detached, every record gone: a file of intents the
        // disk refused to remove names none the next lock would expand
        // (it passes over lines without a record, and removes the file),
        // as after a batch attach. Failing here said the batch failed.
        let _ = settled;
        state.commit()?;
        // Every target went: a hosts file is derived, and what kept its
        // edit from being made says so (a retry would find none attached).
        names_taken_out.map_err(|error| {
            error.context(format!(
                "every target detached from network {}, but its hosts file was not brought up to date (`ipvlan restore` rebuilds it)",
                network.name
            ))
        })?;
        notes.extend(names.take_notes());
        Ok(notes)
    }
}

/// What a batch detach that stopped part way says beside its error: the
/// endpoints it detached (finished as their links went, four at a time, so
/// in no set order), those it left recorded `detaching` for `restore` to
/// finish, and the warnings of those detached, which a single disconnect
/// would each have printed. Long lists are cut short.
fn stopped_batch_says(detached: &DetachedSoFar, left: &[String], notes: &[String]) -> String {
    let list = |labels: &[String], count: usize| {
        let mut text = labels[..labels.len().min(SHOWN)].join(", ");
        if count > SHOWN {
            text.push_str(&format!(" and {} more", count - SHOWN));
        }
        text
    };
    let mut says = match detached.count {
        0 => "none detached before it".to_string(),
        count => format!("detached before it: {}", list(&detached.first, count)),
    };
    if !left.is_empty() {
        says.push_str(&format!(
            "; left for `ipvlan restore` to finish: {}",
            list(left, left.len())
        ));
    }
    if !notes.is_empty() {
        says.push_str(&format!("; warnings: {}", notes.join("; ")));
    }
    says
}

/// How many endpoints a stopped batch's error names of each list.
const SHOWN: usize = 8;

/// The endpoints a batch detach has finished, as its error would name
/// them: the first [`SHOWN`] by label, and how many. Only what the error
/// prints is kept: every label, held to the batch's end beside its slots,
/// was some 50 bytes a target of its peak.
#[derive(Default)]
struct DetachedSoFar {
    first: Vec<String>,
    count: usize,
}

impl DetachedSoFar {
    fn push(&mut self, endpoint: &EndpointRecord) {
        if self.first.len() < SHOWN {
            self.first.push(endpoint_label(endpoint));
        }
        self.count += 1;
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

/// How many threads delete a batch's links at once. A link's removal is
/// mostly the kernel waiting for RCU grace periods (after the link is
/// taken out under the RTNL lock: `rcu_barrier` and the wait for its last
/// references), which removals running at once share: in the test VM,
/// 100 links deleted by four processes at once took 0.55x the time of
/// one process deleting them in turn (two at once: 1.03x).
const UNLINKERS: usize = 4;

/// How many links may be given out past the endpoints done (at most one
/// more than this is out at once): one in each unlinker's hands, one or
/// two waiting.
const UNLINK_AHEAD: usize = UNLINKERS + 1;

/// How much stack each unlinker gets: its requests' buffers are on the heap.
const UNLINK_STACK: usize = 256 << 10;

/// How much stack the thread finishing a batch's chunks gets: what it
/// writes is on the heap. Under 2 MiB, the size of a transparent huge
/// page: std's default of 2 MiB may be backed by one at its first touch
/// where the kernel aligns such mappings to it (Linux 6.7 on, with THP
/// `always`, as the test VM's 6.12 has it), 2 MiB of RSS for a few KiB
/// used (a batch of 1,000 read 4,976 KiB there in one run, against some
/// 1,600 without the thread).
const FINISH_STACK: usize = 512 << 10;

/// Deletes the links of a batch's endpoints (`slots`, each
/// [`DetachSlot::Detaching`]) on [`UNLINKERS`] threads of their own,
/// while `forget` writes, on the calling thread, the files of each
/// endpoint whose removal is done, as removals end. Each endpoint's files
/// are written meanwhile, instead of after its link went, and the
/// removals share the kernel's waits (see [`UNLINKERS`]). The threads are
/// handed one endpoint at a time, at most [`UNLINK_AHEAD`] ahead of the
/// endpoints done, so what they hold does not grow with the batch.
///
/// Returns the endpoints whose removal ran (or may have) but whose files
/// were not all written (in no particular order), and the first failure
/// (a removal's, `forget`'s, or the threads' start: then nothing ran)
/// with the endpoint's place (past the slots when none is known); after a
/// failure no other removal starts.
fn unlink_ahead(
    slots: &mut [DetachSlot],
    master: endpoint_link::Master<'_>,
    mut forget: impl FnMut(&EndpointRecord, Result<Option<String>, Error>) -> Result<(), Error>,
) -> (Vec<usize>, Option<(usize, Error)>) {
    use crate::handoff::Handoff;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    if slots.is_empty() {
        return (Vec::new(), None);
    }
    let stop = AtomicBool::new(false);
    // Room for every item out at once, so no push waits for room: at most
    // UNLINK_AHEAD + 1 endpoints are given out past the last one done.
    let jobs: Handoff<(usize, Option<Unlink>)> = Handoff::new(UNLINK_AHEAD + 1);
    let removals: Handoff<(usize, Removal)> = Handoff::new(UNLINK_AHEAD + 1);
    let working = AtomicUsize::new(0);
    /// No removal starts after [`Stop::now`]: the threads find `stop` set
    /// before their next link (a job given out already is not run), and
    /// the jobs close.
    #[derive(Clone, Copy)]
    struct Stop<'a> {
        stop: &'a AtomicBool,
        jobs: &'a Handoff<(usize, Option<Unlink>)>,
    }
    impl Stop<'_> {
        fn now(&self) {
            self.stop.store(true, Ordering::Relaxed);
            self.jobs.close();
        }
    }
    /// [`Stop::now`] however the caller's side ends.
    struct StopOnDrop<'a>(Stop<'a>);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.now();
        }
    }
    /// The last unlinker out closes the removals, which ends the caller's
    /// wait for one that will not come. One that panics (a library built to
    /// unwind) closes both queues at once: the others would wait for jobs
    /// and the caller for its removal, the store's lock held, and the
    /// scope would never pass the panic on.
    struct LastOut<'a> {
        working: &'a AtomicUsize,
        stop: Stop<'a>,
        removals: &'a Handoff<(usize, Removal)>,
    }
    impl Drop for LastOut<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.stop.now();
                self.removals.close();
            }
            if self.working.fetch_sub(1, Ordering::AcqRel) == 1 {
                self.removals.close();
            }
        }
    }
    let (stop, jobs, removals, working) = (&stop, &jobs, &removals, &working);
    let stopper = Stop { stop, jobs };
    let last_out = move || LastOut {
        working,
        stop: stopper,
        removals,
    };
    let unlinker = move || {
        let _last = last_out();
        while let Some((at, job)) = jobs.pop() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let (how, inside) = match job {
                Some(Unlink { how, inside }) => (Some(how), inside),
                None => (None, None),
            };
            #[cfg(test)]
            tests::at_removal(at);
            let removal = match (&how, inside) {
                (Some(how), Some((ns, handle))) => {
                    how.remove(&OpenNetns::from_parts(ns, handle), master)
                }
                _ => Ok(None),
            };
            let failed = removal.is_err();
            if failed {
                // No other removal starts.
                stopper.now();
            }
            if removals.push((at, (removal, how))).is_err() || failed {
                break;
            }
        }
    };
    // Each thread's own copy of the body, lent as `dyn FnMut` (one copy of
    // std's thread start serves every such spawn).
    let mut bodies = [unlinker; UNLINKERS];
    std::thread::scope(|scope| {
        for (started, body) in bodies.iter_mut().take(slots.len()).enumerate() {
            working.fetch_add(1, Ordering::AcqRel);
            let body: &mut (dyn FnMut() + Send) = body;
            let spawned = std::thread::Builder::new()
                .stack_size(UNLINK_STACK)
                .spawn_scoped(scope, body);
            if let Err(error) = spawned {
                // Fewer of them, or none: then no removal ran.
                drop(last_out());
                if started == 0 {
                    jobs.close();
                    let error = Error::io("starting the threads that delete the links", &error);
                    return (Vec::new(), Some((slots.len(), error)));
                }
                break;
            }
        }
        // However this side ends (a panic in `forget` too), no other
        // removal starts and the threads' wait for another link ends, so
        // the scope's join does.
        let stopped = StopOnDrop(stopper);
        let (mut given, mut done) = (0, 0);
        let mut unfinished = Vec::new();
        let mut failure = None;
        while done < slots.len() {
            while given < slots.len() && given <= done + UNLINK_AHEAD {
                let job = slots[given].unlink_job();
                if jobs.push((given, job)).is_err() {
                    // They stopped: a removal failed, and it comes next.
                    break;
                }
                given += 1;
            }
            let Some((at, (removal, how))) = removals.pop() else {
                // They died (a panic, which the scope passes on).
                let error = Error::failed("the threads deleting the links stopped");
                failure = Some((slots.len(), error));
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
            done += 1;
        }
        stopped.0.now();
        // Removals that ran past the failure, each with its endpoint (the
        // queue closes once the last thread is out).
        while let Some((at, (_, how))) = removals.pop() {
            slots[at].give_back(how);
            unfinished.push(at);
        }
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
    inside: OpenNetns,
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
                inside: target.into_inside(),
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

/// A target of `disconnect_many` in the one vector that holds it from
/// its place (found before the lock) to its endpoint (found under it).
enum DetachSlot {
    Placed(DetachPlace),
    Found(EndpointRecord, NsAt),
    /// The endpoint's intent, with its link's removal until that is handed
    /// to the threads that delete the links.
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

    /// The removal of this endpoint's link, for the threads that delete
    /// links; once only (then nothing is left to remove).
    fn unlink_job(&mut self) -> Option<Unlink> {
        match self {
            DetachSlot::Detaching(_, unlink) => unlink.take(),
            _ => None,
        }
    }
}

/// An endpoint of a built chunk, to be finished by a [`Finisher`].
struct Finish<'a> {
    pending: &'a mut Pending,
    /// [`Reserved::view_missing`].
    view_missing: bool,
}

/// Sets its flag when dropped by a panic: a batch's finishing that panics
/// stops the creates (the scope then passes the panic on).
struct StopOnPanic<'a>(&'a AtomicBool);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// Closes a [`Handoff`] when dropped.
struct CloseOnDrop<'a, T>(&'a Handoff<T>);

impl<T> Drop for CloseOnDrop<'_, T> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Finishes a batch's endpoints a built chunk at a time, as a single
/// attach finishes its one, once their names are in the network's hosts
/// file: each endpoint's final record, in place of its intent's line, and
/// its container's view. Once one fails, the chunks after it are left as
/// built: the batch is undone.
struct Finisher<'a> {
    names: Names<'a>,
    network: &'a NetworkRecord,
    failure: Option<Error>,
}

impl<'a> Finisher<'a> {
    fn new(names: Names<'a>, network: &'a NetworkRecord) -> Self {
        Finisher {
            names,
            network,
            failure: None,
        }
    }

    /// Finishes `chunk`; false if it failed. Never called again after
    /// that: the failure stops the batch (see `connect_many`).
    fn chunk(&mut self, chunk: Vec<Finish<'_>>) -> bool {
        let (names, network) = (&mut self.names, self.network);
        for Finish {
            pending: prepared,
            view_missing,
        } in chunk
        {
            let link = BuiltEndpoint {
                ifname: std::mem::take(&mut prepared.record.ifname),
                mac: prepared.record.mac.take().unwrap_or_default(),
                index: prepared.record.ifindex.unwrap_or_default(),
            };
            names.expect_missing_view(prepared.record.container.clone().filter(|_| view_missing));
            let finished = prepared
                .record_built(names.state, &link, Intent::InBatch)
                .and_then(|()| prepared.add_view(&*names, network));
            names.expect_missing_view(None);
            if let Err(error) = finished {
                self.failure =
                    Some(error.context(attaching_reserved(&prepared.record, &network.name)));
                return false;
            }
        }
        true
    }
}

/// Endpoints whose creates are sent together (see `connect_many`), and
/// what the finishing beside the creates is handed at a time. Small, so
/// that the finishing starts early and the last chunk's, which nothing
/// overlaps, is short: batches of 100 in the VM took 0.79x the time of
/// creates and finishing one after the other with chunks of 16, 0.85x
/// with 32, 0.90x with 8 (a hosts file's append and a datagram each).
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
fn make_room_for_descriptors(for_targets: usize, verb: &str) -> Result<DescriptorRoom, Error> {
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
            "a batch of {} namespaces needs about {needed} open files (this process has {open} open), above its limit of {hard} (RLIMIT_NOFILE): {verb} them in smaller batches",
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

    /// A stopped batch detach names the first eight endpoints it finished
    /// and how many more, keeping only those eight labels; the endpoints
    /// left to `restore` likewise.
    #[test]
    fn a_stopped_batch_names_eight_of_each_list_and_counts_the_rest() {
        let mut detached = DetachedSoFar::default();
        assert_eq!(
            stopped_batch_says(&detached, &[], &[]),
            "none detached before it"
        );
        for n in 1..=11 {
            if let DetachSlot::Detaching(endpoint, _) = detaching(n) {
                detached.push(&endpoint);
            }
        }
        assert_eq!(detached.first.len(), SHOWN);
        let left: Vec<String> = (12..=21).map(|n| format!("c{n}")).collect();
        assert_eq!(
            stopped_batch_says(&detached, &left, &["a warning".to_string()]),
            "detached before it: c1, c2, c3, c4, c5, c6, c7, c8 and 3 more; \
             left for `ipvlan restore` to finish: c12, c13, c14, c15, c16, c17, c18, c19 and 2 more; \
             warnings: a warning"
        );
        let mut few = DetachedSoFar::default();
        if let DetachSlot::Detaching(endpoint, _) = detaching(4) {
            few.push(&endpoint);
        }
        assert_eq!(
            stopped_batch_says(&few, &["c5".to_string()], &[]),
            "detached before it: c4; left for `ipvlan restore` to finish: c5"
        );
    }

    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Mutex, MutexGuard};

    /// What the hooks below do is the whole test binary's: the tests of
    /// [`unlink_ahead`] run one at a time.
    fn one_at_a_time() -> MutexGuard<'static, ()> {
        static ONE: Mutex<()> = Mutex::new(());
        ONE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The removal whose index this is panics.
    static PANIC_AT_REMOVAL: AtomicUsize = AtomicUsize::new(usize::MAX);
    /// Removals past this index take a while (as a link's does).
    static SLOW_AFTER: AtomicUsize = AtomicUsize::new(usize::MAX);
    /// Which removals ran, by index.
    static REMOVED: Mutex<Vec<usize>> = Mutex::new(Vec::new());

    /// Where a thread of [`unlink_ahead`] starts a removal.
    pub(super) fn at_removal(at: usize) {
        REMOVED.lock().unwrap().push(at);
        if PANIC_AT_REMOVAL.load(Ordering::Relaxed) == at {
            panic!("removal {at}");
        }
        if at > SLOW_AFTER.load(Ordering::Relaxed) {
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }

    /// A panic while the files of the first endpoint done are written
    /// stops the removals not started: before, only the jobs closed, and
    /// the threads ran each job given out already (up to
    /// [`UNLINK_AHEAD`] + 1), their intents left for `restore`.
    #[test]
    fn a_panic_writing_the_files_starts_no_other_removal() {
        let _alone = one_at_a_time();
        REMOVED.lock().unwrap().clear();
        // The first removal ends at once and its files' writing panics;
        // the others' take 300 ms, long after the panic, so that the jobs
        // past the threads' first ones are taken after it.
        SLOW_AFTER.store(0, Ordering::Relaxed);
        let mut slots: Vec<DetachSlot> = (0..20).map(detaching).collect();
        let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            unlink_ahead(&mut slots, endpoint_link::Master::Host(None), |_, _| {
                panic!("files")
            })
        }));
        SLOW_AFTER.store(usize::MAX, Ordering::Relaxed);
        assert!(unwound.is_err());
        let mut removed = REMOVED.lock().unwrap().clone();
        removed.sort_unstable();
        // Given out before the first removal came back: the jobs up to
        // UNLINK_AHEAD. Taken before the panic: the threads' first ones,
        // and the first thread's next (the 300 ms of the others' keep
        // the last one given out waiting for a thread past the panic).
        assert!(!removed.contains(&UNLINK_AHEAD), "{removed:?}");
        assert!(removed.len() <= UNLINKERS + 1, "{removed:?}");
    }

    /// A panic on a thread deleting the links (a library built to unwind)
    /// reaches the caller: before, the other threads waited for jobs and
    /// the caller for that removal, for ever, the store's lock held.
    #[test]
    fn a_panic_deleting_a_link_is_not_a_hang() {
        const AT: usize = 11;
        let _alone = one_at_a_time();
        PANIC_AT_REMOVAL.store(AT, Ordering::Relaxed);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut slots: Vec<DetachSlot> = (0..AT + 2).map(detaching).collect();
            let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                unlink_ahead(&mut slots, endpoint_link::Master::Host(None), |_, _| Ok(()))
            }));
            let _ = tx.send(unwound.is_err());
        });
        let panicked = rx.recv_timeout(std::time::Duration::from_secs(30));
        PANIC_AT_REMOVAL.store(usize::MAX, Ordering::Relaxed);
        assert_eq!(panicked, Ok(true), "the panic came back, not a hang");
    }

    /// A panic on the calling side (in the writing of an endpoint's files)
    /// ends the threads deleting the links too, so it reaches the caller (a
    /// library's, which unwinds) instead of a scope waiting for ever with
    /// the store's lock held.
    #[test]
    fn a_panic_writing_the_files_is_not_a_hang() {
        let _alone = one_at_a_time();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut slots: Vec<DetachSlot> = (0..10).map(detaching).collect();
            let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                unlink_ahead(&mut slots, endpoint_link::Master::Host(None), |_, _| {
                    panic!("files")
                })
            }));
            let _ = tx.send(unwound.is_err());
        });
        let panicked = rx.recv_timeout(std::time::Duration::from_secs(30));
        assert_eq!(panicked, Ok(true), "the panic came back, not a hang");
    }

    /// Every endpoint's files are written once, each after its link's
    /// removal (in the order removals end), with the link's place given
    /// back; a failure stops the batch there and names every endpoint
    /// whose removal ran past it (at most [`UNLINK_AHEAD`] more), each with
    /// its place given back too, and how many were done before it.
    #[test]
    fn links_go_ahead_of_the_files_and_a_failure_names_what_ran_past_it() {
        let _alone = one_at_a_time();
        for fail_at in [None, Some(0), Some(3), Some(9)] {
            let mut slots: Vec<DetachSlot> = (0..10).map(detaching).collect();
            let mut forgotten = Vec::new();
            let (unfinished, failure) = unlink_ahead(
                &mut slots,
                endpoint_link::Master::Host(None),
                |endpoint, removal| {
                    assert_eq!(removal.unwrap(), None);
                    assert_eq!(endpoint.ifname, "eth0", "{}'s name given back", endpoint.id);
                    assert!(endpoint.mac.is_some(), "{}'s MAC given back", endpoint.id);
                    let n: usize = endpoint.id[1..].parse().unwrap();
                    if Some(n) == fail_at {
                        return Err(Error::failed("refused"));
                    }
                    forgotten.push(n);
                    Ok(())
                },
            );
            forgotten.sort_unstable();
            match fail_at {
                None => {
                    assert_eq!(forgotten, (0..10).collect::<Vec<_>>());
                    assert!(unfinished.is_empty() && failure.is_none());
                }
                Some(at) => {
                    let (n, _) = failure.unwrap();
                    assert_eq!(n, at);
                    assert_eq!(unfinished.first(), Some(&at), "{unfinished:?}");
                    assert!(!forgotten.contains(&at));
                    assert!(
                        unfinished.len() <= 1 + UNLINK_AHEAD
                            && unfinished.iter().all(|n| !forgotten.contains(n)),
                        "{unfinished:?} {forgotten:?}"
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
