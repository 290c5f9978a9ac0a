//! Containers: named network namespaces, the commands run inside them,
//! and their removal.

use std::ffi::{CString, OsString};
use std::fs::{self, OpenOptions};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::endpoint_link;
use super::endpoints::locate;
use super::hosts;
use super::netns_identity::{self, ContainerNetns, Made, OpenNetns};
use super::networks::find_network_to_join;
use super::options::check_container_name;
use super::processes::{kill_everything_inside, processes_in, ProcessLook, Unseen, KILL_ROUNDS};
use super::{
    random_hex, ContainerInfo, ContainerList, EndpointInfo, Error, ExecOptions, ExitStatusCode,
    Manager,
};
use super::{AttachRequest, RunRequest, Target};
use crate::netns::{self, Netns};
use crate::rtnl::Handle;
use crate::store::records::NetnsId;
use crate::store::{
    ContainerRecord, ContainerState, Damaged, EndpointState, Listing, Locked, NetworkRecord,
    Timestamp,
};
use crate::sys::{ChildIo, SignalBlock, Spawn};

impl Manager {
    /// Creates a container (a named namespace under the netns directory)
    /// on no network; a random name when `None`. The same sequence as
    /// [`Manager::run_container`] without networks.
    ///
    /// ```no_run
    /// # let manager = ipvlan::driver::Manager::open(ipvlan::driver::Config::from_env())?;
    /// let named = manager.create_container(Some("web"))?;
    /// let random = manager.create_container(None)?;
    /// assert_ne!(named.name, random.name);
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn create_container(&self, name: Option<&str>) -> Result<ContainerInfo, Error> {
        let request = RunRequest {
            name: name.map(str::to_string),
            networks: Vec::new(),
        };
        self.make_run(&request, &mut || {})
            .map_err(|(_, error)| error)
    }

    /// What `run` does before its command starts, as one change: creates
    /// the container and attaches it to every network asked for, under one
    /// hold of the lock. Either all of it is done, or, on failure, nothing
    /// of it stays; a process killed meanwhile leaves a record in state
    /// `creating` that [`Manager::restore`] rolls back whole (namespace,
    /// links, addresses, records, `/etc/netns` entry). Only a container
    /// whose every network is attached is marked `created`, and only those
    /// are listed by [`Manager::containers`].
    ///
    /// Every network is looked up before anything is made. An error says
    /// which step failed: `creating the container: ...` or `connecting
    /// NAME to network NETWORK: ...`.
    ///
    /// ```no_run
    /// use ipvlan::driver::{AttachRequest, Config, Manager, RunRequest};
    /// # let manager = Manager::open(Config::from_env())?;
    /// let container = manager.run_container(&RunRequest {
    ///     name: Some("web".into()),
    ///     networks: vec![("db_net".into(), AttachRequest::default())],
    /// })?;
    /// assert_eq!(container.endpoints[0].network, "db_net");
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn run_container(&self, request: &RunRequest) -> Result<ContainerInfo, Error> {
        self.run_container_once_locked(request, &mut || {})
    }

    /// [`Manager::run_container`], calling `once_locked` as soon as the
    /// store's lock is held, before anything is made: a caller that must
    /// not be ended half-way through (`ipvlan run` blocks its signals
    /// there) can still be ended while it waits for the lock.
    pub fn run_container_once_locked(
        &self,
        request: &RunRequest,
        once_locked: &mut dyn FnMut(),
    ) -> Result<ContainerInfo, Error> {
        self.make_run(request, once_locked)
            .map_err(|(step, error)| match step {
                Step::Container => error.context("creating the container"),
                Step::Network | Step::Durable => error,
            })
    }

    /// [`Manager::run_container`]; an error comes with the step it ended.
    fn make_run(
        &self,
        request: &RunRequest,
        once_locked: &mut dyn FnMut(),
    ) -> Result<ContainerInfo, (Step, Error)> {
        let container = |error: Error| (Step::Container, error);
        // Refused before the lock, which makes the store where there is none.
        if let Some(name) = &request.name {
            check_container_name(name).map_err(container)?;
        }
        // No store was ever made: no network to join, and no store made
        // for the refusal (a run without a network makes one).
        if let Some((wanted, _)) = request.networks.first() {
            if self.store.never_made().map_err(|e| container(e.into()))? {
                let error = Error::not_found(super::networks::not_found_message(wanted));
                return Err((
                    Step::Network,
                    joining(error, request.name.as_deref(), wanted),
                ));
            }
        }
        let state = self.store.lock().map_err(|e| container(e.into()))?;
        once_locked();
        let name = self
            .free_container_name(&state, request.name.as_deref())
            .map_err(container)?;
        let networks = state.networks().map_err(|e| container(e.into()))?;
        let mut joins: Vec<(&NetworkRecord, &AttachRequest)> = Vec::new();
        // A name the run drew names no container the user knows of, and
        // none is made before these refusals: not said.
        let said = Some(name.as_str()).filter(|name| request.name.as_deref() == Some(name));
        for (wanted, attach) in &request.networks {
            let network = find_network_to_join(&networks, wanted)
                .map_err(|e| (Step::Network, joining(e, said, wanted)))?;
            if joins.iter().any(|(joined, _)| joined.id == network.id) {
                let twice = format!(
                    "{}: the network is given twice",
                    connecting_to(said, wanted)
                );
                return Err((Step::Network, Error::invalid(twice)));
            }
            // Before the namespace: a refused address makes nothing. Said
            // as the attach would say it, of the network by its name.
            super::endpoints::check_requested_addresses(&state, network, attach)
                .map_err(|e| (Step::Network, joining(e, said, &network.name)))?;
            joins.push((network, attach));
        }
        // The allocation cursors as found: a run that fails puts them back
        // once its container is taken apart (an attach that succeeded
        // moved its network's).
        let mut cursors = Vec::new();
        for (network, _) in &joins {
            let found = state.cursors(network).map_err(|e| container(e.into()))?;
            cursors.push((*network, found));
        }

        // The namespace is made anonymous and its identity written down
        // before it gets its name: restore then deletes the namespace at
        // that path only if it is this one, never one another tool put
        // there after a crash.
        // The host's socket first: the thread then stays in the new
        // namespace from its making (its socket opened, its name bound)
        // until its first endpoint's link settings are written, one visit
        // (see `OpenNetns::with_handle_staying` for what it may do inside).
        let host = match joins.is_empty() {
            true => None,
            false => Some(Handle::new().map_err(|e| container(e.into()))?),
        };
        let (ns, visit) = netns::create_anonymous_staying()
            .map_err(|e| container(Error::io(format_args!("creating namespace {name}"), &e)))?;
        // Every message about it by the path it is about to be bound at.
        let ns = ns.labelled(self.config.netns_dir.join(&name).display().to_string());
        let inside = OpenNetns::with_handle_inside(ns, &visit).map_err(container)?;
        let mut record = ContainerRecord {
            name: name.clone(),
            created: Some(Timestamp::now()),
            state: ContainerState::Creating,
            networks: joins.iter().map(|(n, _)| n.id.clone()).collect(),
            netns_id: Some(inside.identity().map_err(container)?),
            // Its inode held by `inside` until the mount holds it too.
            netns_inode_time: inside.inode_time(),
            keep_processes: false,
            processes_looked_at: false,
        };
        state
            .put_container_record(&record)
            .map_err(|e| container(e.into()))?;
        if let Err(error) = self.name_namespace(&visit, &name) {
            // Nothing at the name is ours: only the record to take back.
            let _ = state.remove_container(&name);
            return Err(container(error));
        }
        match host {
            Some(_) => inside.keep_visit(visit),
            None => drop(visit),
        }
        let identity = record.netns_id;
        let made = self
            .attach_all(host, &state, &joins, inside, identity, &name)
            .and_then(|endpoints| {
                record.state = ContainerState::Created;
                state
                    .put_container_record(&record)
                    .map_err(|e| container(e.into()))?;
                Ok(endpoints)
            });
        match made {
            Ok(endpoints) => {
                // The final state durable before the command reports it;
                // should the disk refuse, the container exists all the
                // same (its command is not run), as the error says.
                state.commit().map_err(|e| {
                    let error = Error::from(e).context(format_args!(
                        "container {name} was made, but its state may not survive a power cut (`ipvlan rm -f {name}` removes it)"
                    ));
                    (Step::Durable, error)
                })?;
                Ok(ContainerInfo {
                    netns_path: self.config.netns_dir.join(&name),
                    name,
                    endpoints,
                    netns_id: record.netns_id,
                    netns_inode_time: record.netns_inode_time,
                })
            }
            Err((step, error)) => {
                // What this cannot undo, the record (still `creating`)
                // leaves to `restore`, and the error says so: else the
                // next `run --name` of it, and `ps`, would call it an
                // interrupted run, with nothing said of why.
                let undone = Handle::new()
                    .map_err(Error::from)
                    .and_then(|host| self.dismantle_container(&host, &state, &networks, &record));
                for (network, found) in &cursors {
                    let _ = state.put_cursors(network, found);
                }
                // Taken down, its record gone, with notes (a process that
                // outlived the kills, another tool's namespace at the
                // name): said as they are, as `restore` has nothing left
                // to finish. Not taken down: its record stays for it.
                let error = match undone {
                    Ok(dismantled) if dismantled.notes.is_empty() => error,
                    Ok(dismantled) => error.and_left(format_args!(
                        "container {name} was taken down, but: {}",
                        dismantled.notes.join("; ")
                    )),
                    Err(undo) => error.and_left(format_args!(
                        "container {name} was not taken down whole ({undo}): `ipvlan restore` finishes it"
                    )),
                };
                Err((step, error))
            }
        }
    }

    /// The name for a new container: `wanted` if it is valid and free, else
    /// a random free one.
    fn free_container_name(
        &self,
        state: &Locked<'_>,
        wanted: Option<&str>,
    ) -> Result<String, Error> {
        let Some(name) = wanted else {
            return loop {
                let candidate = format!("c{}", &random_hex(6)?[..11]);
                if fs::symlink_metadata(self.config.netns_dir.join(&candidate)).is_err()
                    && state.container(&candidate)?.is_none()
                {
                    break Ok(candidate);
                }
            };
        };
        // Its spelling checked before the lock (`make_run`).
        let path = self.config.netns_dir.join(name);
        // The record first: an interrupted run or rm has made or kept the
        // namespace too, and is what to tell.
        let recorded = state.container(name)?.map(|record| record.state);
        match recorded {
            Some(ContainerState::Creating) => {
                return Err(Error::already_exists(format!(
                    "container name {name} is held by an interrupted run; `ipvlan restore` rolls it back"
                )))
            }
            Some(ContainerState::Removing) => {
                return Err(Error::already_exists(format!(
                    "container name {name} is held by an interrupted rm; `ipvlan restore` finishes it"
                )))
            }
            _ => {}
        }
        // Anything at the name, a dangling link included, is in the way.
        if fs::symlink_metadata(&path).is_ok() {
            return Err(Error::already_exists(format!(
                "container name {name} is already in use (namespace {} exists)",
                path.display()
            )));
        }
        match recorded {
            None => Ok(name.to_string()),
            // Its name deleted (`ip netns del`): gone, or held by a process
            // in it, which `restore` keeps; `rm -f` ends either.
            _ => Err(Error::already_exists(format!(
                "container name {name} is already in use (its namespace's name is gone; `ipvlan rm -f {name}` removes it)"
            ))),
        }
    }

    /// Gives the namespace made for a new container its name, from inside
    /// it (`visit`).
    fn name_namespace(&self, visit: &netns::Visit, name: &str) -> Result<(), Error> {
        let path = self.config.netns_dir.join(name);
        netns::create_named_from_here(&self.config.netns_dir, name, visit).map_err(|e| {
            // Another tool took the name since it was checked.
            if fs::symlink_metadata(&path).is_ok() {
                Error::already_exists(format!(
                    "container name {name} is already in use (namespace {} exists)",
                    path.display()
                ))
            } else {
                Error::io(format_args!("creating namespace {name}"), &e)
            }
        })
    }

    /// Sets `lo` up in the named namespace and attaches every network;
    /// returns the endpoints. Undoing is the caller's.
    fn attach_all(
        &self,
        mut host: Option<Handle>,
        state: &Locked<'_>,
        joins: &[(&NetworkRecord, &AttachRequest)],
        inside: OpenNetns,
        identity: Option<NetnsId>,
        name: &str,
    ) -> Result<Vec<EndpointInfo>, (Step, Error)> {
        set_loopback_up(&inside).map_err(|e| (Step::Container, e))?;
        // The namespace just made and named, still open: not opened again
        // by its name (check_attach makes sure the name still leads to it).
        let target = match identity {
            Some(identity) => self.made_target(name, inside, identity),
            None => {
                // Opened again from home: inside, it would be our own.
                drop(inside);
                self.resolve_target(&Target::Container(name.to_string()))
            }
        }
        .map_err(|e| (Step::Container, e))?;
        let mut endpoints = Vec::new();
        for (network, attach) in joins {
            let host = match &mut host {
                Some(host) => host,
                None => host.insert(Handle::new().map_err(|e| (Step::Network, e.into()))?),
            };
            let endpoint = self
                .attach(host, state, network, &target, attach)
                .map_err(|e| (Step::Network, joining(e, Some(name), &network.name)))?;
            endpoints.push(endpoint);
        }
        self.release((host, target));
        Ok(endpoints)
    }

    /// Takes apart a container that is not whole (record `creating`: an
    /// interrupted run; `removing`: an interrupted rm): every endpoint of it
    /// detached; when its namespace is the one made for it, the processes
    /// inside killed (an rm was asked for, or no command was started) and
    /// the namespace deleted; its `/etc/netns` entry, log and record
    /// removed. What an `rm` without force was interrupted in is finished,
    /// or undone, as that `rm` would have done (see
    /// [`ContainerRecord::processes_looked_at`]): nothing killed.
    pub(crate) fn dismantle_container(
        &self,
        host: &Handle,
        state: &Locked<'_>,
        networks: &[NetworkRecord],
        record: &ContainerRecord,
    ) -> Result<Dismantled, Error> {
        let name = &record.name;
        let mut notes = Vec::new();
        let mut left_running = None;
        let path = self.config.netns_dir.join(name);
        let unforced = record.state == ContainerState::Removing && record.keep_processes;
        if unforced && !record.processes_looked_at {
            // Killed before its second look, which would have refused a
            // process found inside: undone, as it would have been, before
            // anything is detached (it had detached nothing).
            if let ContainerNetns::Present(inside) | ContainerNetns::Unnamed(inside, _) =
                netns_identity::container_netns(&path, Made::of(record))?
            {
                if let Some(pids) = look_text(&processes_in(&inside.ns)) {
                    let mut undone = record.clone();
                    undone.state = ContainerState::Created;
                    undone.keep_processes = false;
                    state.put_container_record(&undone)?;
                    return Ok(Dismantled {
                        notes,
                        left_running: Some(format!(
                            "{pids}; the rm is undone, as it refuses a container with processes"
                        )),
                    });
                }
            }
        }
        for (at, endpoint) in self.container_endpoints(state, networks, name)? {
            let network = &networks[at];
            let at = locate(&endpoint)?;
            if endpoint.state != EndpointState::Attached {
                // An attach killed between making its link under a
                // temporary name and renaming it.
                if let Some(inside) = at.open() {
                    let parent = match network.parent.as_str() {
                        "" => None,
                        name => host.link_by_name(name)?,
                    };
                    let master = endpoint_link::Master::of(network, parent.as_ref());
                    endpoint_link::delete_temporary_links(inside, master)?;
                }
            }
            notes.extend(self.detach(host, state, network, endpoint, &at)?);
        }
        // An rm without force kills nothing: what another tool started
        // inside after its look runs on, its namespace unnamed, as that rm
        // itself leaves what starts after its last look.
        let mut end_processes = |inside: &Netns| -> Result<(), Error> {
            if unforced {
                left_running = look_text(&processes_in(inside))
                    .map(|pids| format!("{pids}; the container is removed, its namespace unnamed"));
            } else {
                // What it could not see goes unsaid here: `restore` reports
                // these notes as failures, and a "perhaps" is none (`rm -f`
                // itself warns of it).
                notes.extend(outlived(name, &kill_everything_inside(inside).pids));
            }
            Ok(())
        };
        match netns_identity::container_netns(&path, Made::of(record))? {
            ContainerNetns::Present(inside) => {
                end_processes(&inside.ns)?;
                self.delete_netns_if_same(name, inside.ns.file_id(), &mut notes)?;
            }
            // Its name deleted: it ends with its last process.
            ContainerNetns::Unnamed(inside, leftover) => {
                end_processes(&inside.ns)?;
                if let Some(file) = leftover {
                    self.delete_netns_if_same(name, file, &mut notes)?;
                }
            }
            // One another tool put at the name after a crash is not ours.
            ContainerNetns::Replaced => notes.push(replaced(&path, name)),
            // The mount point of a run killed before its bind mount.
            ContainerNetns::Leftover(_) => {
                crate::fault::point("netns: before unlink");
                crate::fault::after("netns: after unlink", fs::remove_file(&path))
                    .map_err(|e| Error::io(format_args!("removing {}", path.display()), &e))?
            }
            ContainerNetns::Missing => {}
        }
        // Test builds: the view's removal refused (a read-only `/etc`).
        crate::fault::io_refused("container: view removal refused")
            .map_err(|e| Error::io(format_args!("removing the view of container {name}"), &e))?;
        hosts::unlink(&self.config.etc_netns_dir, name, state.root())?;
        let _ = fs::remove_file(self.log_path(name));
        state.remove_container(name)?;
        Ok(Dismantled {
            notes,
            left_running,
        })
    }

    /// Detaches a container from every network and deletes its namespace;
    /// returns what was left alone, and why. Refused while processes
    /// remain inside unless `force`, which kills them
    /// ([`ErrorKind::InUse`](super::ErrorKind::InUse)). Refused too where
    /// `/proc` may hide some from this process (`hidepid=`, without
    /// CAP_SYS_PTRACE: [`ErrorKind::PermissionDenied`](super::ErrorKind::PermissionDenied)),
    /// which `force` would leave running, and says so. Only containers we
    /// created are ours to remove: any other name, even of a namespace
    /// under the netns directory (`ip netns add`, another runtime), is
    /// [`ErrorKind::NotFound`](super::ErrorKind::NotFound) and nothing is
    /// touched, as `docker rm` knows only its own containers. So is what
    /// another tool put at one of our container's names (a link, FIFO,
    /// directory, another kind of namespace, the caller's own namespace):
    /// refused before anything changes.
    ///
    /// ```no_run
    /// # let manager = ipvlan::driver::Manager::open(ipvlan::driver::Config::from_env())?;
    /// match manager.remove_container("web", false) {
    ///     Err(error) if error.kind() == ipvlan::driver::ErrorKind::InUse => {
    ///         manager.remove_container("web", true)?; // kills what still runs
    ///     }
    ///     other => drop(other?),
    /// }
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn remove_container(&self, name: &str, force: bool) -> Result<Vec<String>, Error> {
        self.remove_container_if(name, force, None)
    }

    /// [`Manager::remove_container`] of a container this process made
    /// ([`Manager::run_container`]), only while its name is still that
    /// container's: another process may have removed it and given its
    /// name to a new one meanwhile (`run --rm` removing its container
    /// once its command ended). A container that is gone, or is another
    /// one now, is left alone, and said so in the notes.
    pub fn remove_made_container(
        &self,
        container: &ContainerInfo,
        force: bool,
    ) -> Result<Vec<String>, Error> {
        crate::fault::point("container: before removal");
        match Made::of_info(container) {
            Some(made) => self.remove_container_if(&container.name, force, Some(made)),
            // Made by a version that recorded no identity: by its name.
            None => self.remove_container(&container.name, force),
        }
    }

    /// [`Manager::remove_container`]; with `made`, only the container
    /// whose namespace that was.
    fn remove_container_if(
        &self,
        name: &str,
        force: bool,
        made: Option<Made>,
    ) -> Result<Vec<String>, Error> {
        // A name no container can have is none of ours: said as any other
        // (`rm -f` then no failure, as Docker's), nothing looked up by it.
        // Likewise in no store (and none made for it).
        if check_container_name(name).is_err() || self.store.never_made()? {
            return Err(no_such_container(name));
        }
        let state = self.store.lock()?;
        let record = state.container(name)?;
        let recorded = record.as_ref().and_then(Made::of);
        if let Some(made) = made {
            if !recorded.is_some_and(|recorded| {
                (recorded.id).same_mounted_namespace(recorded.inode_time, &made.id, made.inode_time)
            }) {
                return Ok(vec![format!(
                    "container {name} was removed meanwhile: left alone what has its name now"
                )]);
            }
        }
        if record.is_none() {
            return Err(no_such_container(name));
        }
        let path = self.config.netns_dir.join(name);
        let made = recorded;
        // Checked before anything changes: what another tool put there is
        // neither unmounted, deleted, nor a reason to kill anything.
        let at = netns_identity::container_netns(&path, made)?;
        // Without `force`, refused while anything runs inside. With it,
        // what runs is looked for once the record says `removing` (an
        // `exec` that starts a command later kills it itself) and the
        // networks are detached, and killed then.
        let look = match &at {
            ContainerNetns::Present(inside) | ContainerNetns::Unnamed(inside, _) if !force => {
                processes_in(&inside.ns)
            }
            _ => ProcessLook::default(),
        };
        if let Some(refusal) = still_running(name, &look) {
            return Err(refusal);
        }
        // The store's directories its names and log are removed from,
        // last, checked before anything changes (a refusal there would
        // otherwise come with the container half removed).
        for file in [state.hosts_path(name), self.log_path(name)] {
            if let Some(dir) = file.parent() {
                state.check_dir(dir)?;
            }
        }
        hosts::check_view_removable(&self.config.etc_netns_dir, name)?;
        // A network record that cannot be read hides the container's
        // endpoint on it, which would stay, named by no container: refused
        // here, before anything changes, when the container's index or
        // record names that network; else said.
        let networks = state.networks()?;
        let unreadable = unreadable_networks_of(&state, &networks.damaged, name, record.as_ref())?;
        if let Some(refusal) = unreadable.refusal {
            return Err(refusal);
        }
        // From here `ps` no longer lists it, and a kill leaves restore to
        // finish the removal.
        let before = state.container(name)?;
        let mut removing = before.clone().map(|record| {
            // `restore` may undo only what changed nothing yet: a whole
            // container, or one a plain rm killed before its second look
            // left. A killed run's, or an rm past its look (a forced one
            // may have detached), is finished whatever comes in.
            let untouched = record.state == ContainerState::Created
                || (record.state == ContainerState::Removing
                    && record.keep_processes
                    && !record.processes_looked_at);
            ContainerRecord {
                state: ContainerState::Removing,
                keep_processes: !force,
                processes_looked_at: !untouched,
                ..record
            }
        });
        if let Some(removing) = &removing {
            state.put_container_record(removing)?;
        }
        // Without `force`, looked at again once the record says
        // `removing`: an `exec` that started its command between the look
        // above and the mark read the record before it (a later one reads
        // the mark and kills its command itself). Anything there now, and
        // the record is put back as it was.
        if let ContainerNetns::Present(inside) | ContainerNetns::Unnamed(inside, _) = &at {
            if !force {
                if let Some(refusal) = still_running(name, &processes_in(&inside.ns)) {
                    if let Some(record) = &before {
                        state.put_container_record(record)?;
                    }
                    return Err(refusal);
                }
                // Past the look: killed from here, `restore` finishes the
                // removal rather than undoing it.
                if let Some(looked) = &mut removing {
                    looked.processes_looked_at = true;
                    state.put_container_record(looked)?;
                }
            }
        }
        let host = Handle::new()?;
        let mut notes = unreadable.notes;
        for (at, endpoint) in self.container_endpoints(&state, &networks, name)? {
            let network = &networks[at];
            let at = locate(&endpoint)?;
            notes.extend(self.detach(&host, &state, network, endpoint, &at)?);
        }
        if let ContainerNetns::Present(inside) | ContainerNetns::Unnamed(inside, _) = &at {
            if force {
                let left = kill_everything_inside(&inside.ns);
                notes.extend(outlived(name, &left.pids));
                notes.extend(left.unseen.map(|unseen| not_ended(name, &unseen)));
            }
        }
        // As seen before the detaches, which take a while: a namespace
        // another tool put at the name meanwhile is left alone.
        match at {
            ContainerNetns::Present(inside) => {
                self.delete_netns_if_same(name, inside.ns.file_id(), &mut notes)?;
            }
            ContainerNetns::Leftover(file) | ContainerNetns::Unnamed(_, Some(file)) => {
                self.delete_netns_if_same(name, file, &mut notes)?;
            }
            ContainerNetns::Replaced => notes.push(replaced(&path, name)),
            // Its name deleted: it ends with its last process, killed above.
            ContainerNetns::Unnamed(_, None) | ContainerNetns::Missing => {}
        }
        // A view of ours left behind with no record would never be taken
        // out: the record stays (removing) for `restore` or another `rm`.
        hosts::unlink(&self.config.etc_netns_dir, name, state.root())?;
        let _ = fs::remove_file(self.log_path(name));
        state.remove_container(name)?;
        state.commit()?;
        Ok(notes)
    }

    /// Every container we created that can be read, with its endpoints,
    /// and the state files that cannot (container, network and endpoint
    /// records), which are left as they are. Not listed: those an
    /// interrupted [`Manager::run_container`] left half made or an
    /// interrupted [`Manager::remove_container`] half removed.
    ///
    /// ```no_run
    /// # let manager = ipvlan::driver::Manager::open(ipvlan::driver::Config::from_env())?;
    /// let containers = manager.containers()?;
    /// for container in &containers {
    ///     let networks: Vec<&str> = container.endpoints.iter().map(|e| e.network.as_str()).collect();
    ///     println!("{} {}", container.name, networks.join(","));
    /// }
    /// for damaged in &containers.damaged {
    ///     eprintln!("warning: damaged state file {damaged}");
    /// }
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn containers(&self) -> Result<Listing<ContainerInfo>, Error> {
        Ok(self.list_containers()?.containers)
    }

    /// [`Manager::containers`], and the names of those an interrupted
    /// [`Manager::run_container`] left half made or an interrupted
    /// [`Manager::remove_container`] half removed: not containers until
    /// `restore` undoes or finishes them, but their names are taken. Read
    /// without the lock; only a record found half done takes it, without
    /// waiting, to tell a killed command's from one at work (named only
    /// when the lock is free and the record still half done under it).
    pub fn container_list(&self) -> Result<ContainerList, Error> {
        let mut list = self.list_containers()?;
        self.keep_interrupted(&mut list)?;
        Ok(list)
    }

    /// [`Manager::container_list`] with every half-done record named, at
    /// work or not.
    fn list_containers(&self) -> Result<ContainerList, Error> {
        self.store.refresh();
        // Without the lock: `ps` never waits for a writer, and holds the
        // lock (taken without waiting) only for the few reads that tell a
        // half-done record's command at work from an interrupted one.
        let state = &self.store;
        let networks = state.networks()?;
        let records = state.container_records()?;
        let mut containers = Listing {
            items: Vec::new(),
            damaged: networks.damaged.clone(),
        };
        containers.damaged.extend(records.damaged);
        // Half made by an interrupted run, or half removed by an rm: not a
        // container until restore finishes undoing or removing it.
        let mut list = ContainerList::default();
        for record in &records.items {
            match record.state {
                ContainerState::Creating => list.half_made.push(record.name.clone()),
                ContainerState::Removing => list.half_removed.push(record.name.clone()),
                ContainerState::Created => {}
            }
        }
        let whole = records
            .items
            .into_iter()
            .filter(|record| record.state == ContainerState::Created);
        let whole: Vec<(String, Option<NetnsId>, _)> = whole
            .map(|record| (record.name, record.netns_id, record.netns_inode_time))
            .collect();
        // Older-format endpoint records are filed under the container's
        // name: one listing per network finds them for every container,
        // where a probe per container and network made `ps` quadratic.
        // Not worth it for one container (a probe per network is cheaper
        // than a listing per network).
        // A directory that cannot be listed: probed container by
        // container, which reports the damage per container as before.
        let listed = if whole.len() > 1 && !state.by_identity_only() {
            networks
                .iter()
                .map(|network| state.endpoint_ids(&network.id))
                .collect::<Result<Vec<_>, _>>()
                .ok()
        } else {
            None
        };
        for (name, netns_id, netns_inode_time) in whole {
            let endpoints =
                match self.container_endpoints_listed(state, &networks, &name, listed.as_deref()) {
                    // Attached ones only, as `inspect` lists them: an
                    // intent a killed connect or disconnect left (or one at
                    // work) names no link, until `restore` or the command
                    // ends it.
                    Ok(found) => found
                        .into_iter()
                        .filter(|(_, endpoint)| endpoint.state.is_attached())
                        .map(|(at, endpoint)| EndpointInfo::from_record(&networks[at], &endpoint))
                        .collect(),
                    // One container's unreadable endpoint files never hide the
                    // other containers; the message names the file.
                    Err(error) => {
                        containers.damaged.push(Damaged {
                            path: self.config.state_dir.clone(),
                            reason: format!("container {name}: {error}"),
                        });
                        Vec::new()
                    }
                };
            containers.items.push(ContainerInfo {
                netns_path: self.config.netns_dir.join(&name),
                name,
                endpoints,
                netns_id,
                netns_inode_time,
            });
        }
        list.containers = containers;
        Ok(list)
    }

    /// Whether container `name`, whose record read `half` without the
    /// lock, was left so by a killed command: still so under the lock,
    /// taken without waiting (`false` while another command holds it).
    fn interrupted(&self, name: &str, half: ContainerState) -> bool {
        match self.store.try_lock() {
            Ok(Some(state)) => still_half(&state, name, half),
            Ok(None) => false,
            // No command at work holds it.
            Err(_) => true,
        }
    }

    /// Of the containers `list` found half made or half removed without
    /// the lock, those a killed command left: still so under the lock,
    /// taken without waiting. While another command holds it, none is
    /// named: the record may be a `run` or an `rm` at work (which hold
    /// the lock until the record is whole again, or gone), and sending
    /// the operator to `restore` then is wrong.
    fn keep_interrupted(&self, list: &mut ContainerList) -> Result<(), Error> {
        if list.half_made.is_empty() && list.half_removed.is_empty() {
            return Ok(());
        }
        let state = match self.store.try_lock() {
            Ok(Some(state)) => state,
            Ok(None) => {
                list.half_made.clear();
                list.half_removed.clear();
                return Ok(());
            }
            // A lock that cannot be taken (a read-only store, a log that
            // cannot be taken up) is no command at work: each named as
            // found, the listing kept.
            Err(_) => return Ok(()),
        };
        for (names, half) in [
            (&mut list.half_made, ContainerState::Creating),
            (&mut list.half_removed, ContainerState::Removing),
        ] {
            names.retain(|name| still_half(&state, name, half));
        }
        Ok(())
    }

    /// The namespace of one of our containers and the hosts file to show
    /// in it. Another tool's namespace is no container of ours (`ip netns
    /// exec` is there for those): commands are run only where we know
    /// what we are entering.
    /// `made`: the namespace the container must be (a run's own, see
    /// [`Manager::exec_in_made_container`]); the identity returned is the
    /// one its record names, for [`Manager::start_unless_removed`].
    /// Looked up on a thread of its own ([`netns::apart`]): the lookup
    /// visits namespaces without the store's lock.
    fn container_namespace_apart(
        &self,
        container: &str,
        made: Option<Made>,
    ) -> Result<ContainerEntry, Error> {
        netns::apart(|| self.container_namespace(container, made))
            .map_err(|e| Error::io(format_args!("looking up container {container}"), &e))?
    }

    /// The container's namespace, looked up without the store's lock.
    /// Call it through [`Manager::container_namespace_apart`]: it visits
    /// namespaces.
    fn container_namespace(
        &self,
        container: &str,
        made: Option<Made>,
    ) -> Result<ContainerEntry, Error> {
        crate::fault::point("container: before entering");
        check_container_name(container)?;
        // A lock-free read: a command may run for as long as it likes and
        // must not hold up other invocations.
        if !self.store.has_container(container)? {
            return Err(no_such_container(container));
        }
        let path = self.config.netns_dir.join(container);
        let record = self.store.container(container)?;
        // A process started in a container `rm` is taking apart could
        // outlive it: `rm -f` kills what it finds inside.
        if let Some(half) = record.as_ref().map(|record| record.state) {
            if let Some(said) = super::error::left_half_done(container, half) {
                return Err(Error::failed(match self.interrupted(container, half) {
                    true => said,
                    false if half == ContainerState::Removing => {
                        format!("container {container} is being removed")
                    }
                    false => format!("container {container} is not made yet: a run is making it"),
                }));
            }
        }
        let made_here = record.as_ref().and_then(Made::of);
        let recorded = made_here.map(|made| made.id);
        // Without cookies (Linux before 5.14) a namespace made since at the
        // name may have the inode number of ours: the times tell them apart.
        if let Some(made) = made {
            if !made_here.is_some_and(|here| {
                (here.id).same_mounted_namespace(here.inode_time, &made.id, made.inode_time)
            }) {
                return Err(replaced_meanwhile(container));
            }
        }
        let ns = match netns_identity::container_netns(&path, made_here)? {
            // Its name deleted, it still runs: entered through a process
            // in it.
            ContainerNetns::Present(inside) | ContainerNetns::Unnamed(inside, _) => inside.ns,
            ContainerNetns::Missing => return Err(no_such_container(container)),
            ContainerNetns::Replaced => {
                return Err(Error::failed(format!(
                    "{}; `ipvlan rm {container}` forgets the container",
                    replaced(&path, container)
                )))
            }
            ContainerNetns::Leftover(_) => {
                return Err(Error::failed(format!(
                    "opening namespace {container}: {} is not a network namespace: it is a regular file",
                    path.display()
                )))
            }
        };
        Ok(ContainerEntry {
            ns,
            hosts_file: hosts::resolve(&self.config.etc_netns_dir, container),
            recorded,
        })
    }

    /// Runs `argv` inside the container's namespace in the foreground, with
    /// the container's hosts file as `/etc/hosts` and a sysfs of its
    /// namespace on `/sys` (without what the host mounts under `/sys`, as
    /// under `ip netns exec`), in a mount namespace of its own; returns
    /// its exit status.
    /// The container must be one we created (else
    /// [`ErrorKind::NotFound`](super::ErrorKind::NotFound), `No such
    /// container`). On a host without `/etc/hosts` the command sees the
    /// host's `/etc` on a read-only tmpfs with the hosts file added (see
    /// the README); nothing is created on the host.
    /// The command has our environment, and is looked up in our `PATH`;
    /// with none, Docker's default is given to it (ours stays as it is).
    /// A command that cannot be started is an error of kind
    /// [`ErrorKind::CommandNotFound`](super::ErrorKind::CommandNotFound) or
    /// [`ErrorKind::CommandNotExecutable`](super::ErrorKind::CommandNotExecutable).
    ///
    /// ```no_run
    /// # use ipvlan::driver::{Config, ExecOptions, Manager};
    /// # let manager = Manager::open(Config::from_env())?;
    /// let argv = ["ping".into(), "-c".into(), "1".into(), "ipv1".into()];
    /// let status = manager.exec("ipv2", &argv, &ExecOptions::default())?;
    /// println!("exit status {status}");
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn exec(
        &self,
        container: &str,
        argv: &[OsString],
        opts: &ExecOptions,
    ) -> Result<ExitStatusCode, Error> {
        self.exec_checked(container, None, argv, opts)
    }

    /// [`Manager::exec`] in a container this process made
    /// ([`Manager::run_container`]), only while its name is still that
    /// container's: another process may have removed it and given its name
    /// to a new one since (`run` starting its command). A container that
    /// is another one now is an error, and nothing is started.
    pub fn exec_in_made_container(
        &self,
        container: &ContainerInfo,
        argv: &[OsString],
        opts: &ExecOptions,
    ) -> Result<ExitStatusCode, Error> {
        self.exec_checked(&container.name, Made::of_info(container), argv, opts)
    }

    /// [`Manager::exec`]; with `made`, only in the container whose
    /// namespace that is.
    fn exec_checked(
        &self,
        container: &str,
        made: Option<Made>,
        argv: &[OsString],
        opts: &ExecOptions,
    ) -> Result<ExitStatusCode, Error> {
        let (program, args) = split_command(argv)?;
        let env = command_environment();
        let entry = self.container_namespace_apart(container, made)?;
        // Blocked here, before the scratch thread starts (it inherits the
        // mask), so that no thread of ours takes a signal meant for the
        // command; ended after the wait.
        let forwarding = match opts.forward_signals {
            true => Some(
                SignalBlock::for_forwarding()
                    .map_err(|e| Error::io("blocking the signals to forward", &e))?,
            ),
            false => None,
        };
        // Where the command's keeper goes back to once the command is
        // made (see `sys::spawn_kept`): this thread's namespace.
        let home = Netns::current()
            .map_err(|e| Error::io("opening this thread's network namespace", &e))?;
        // A Ctrl-C or Ctrl-\ meant for the command reaches us too (same
        // process group): we must outlive the command to report its
        // status and, for `run --rm`, to remove the container. When
        // forwarding, they are blocked and taken by the wait instead.
        let _shield = (!opts.forward_signals).then(SignalShield::raise);
        let spawned = netns::run_in(&entry.ns, || {
            enter_container_view(entry.hosts_file.as_deref(), || {
                hosts::resolve(&self.config.etc_netns_dir, container)
            })?;
            let stdin = if opts.interactive {
                ChildIo::Inherit
            } else {
                ChildIo::Null
            };
            crate::fault::point("container: before spawn");
            // A signal to pass on that came while the container was made
            // ready (blocked, so still pending): the command, not made yet,
            // did not get it, though a terminal's (a Ctrl-C, a hang-up)
            // looks sent to it too once it runs. It stops the command
            // before it starts, said as such: `run` then removes the
            // container it made for it, as for a command that cannot
            // start. Before, a Ctrl-C then was dropped and the command ran
            // on; later, it read as the command's own death by the
            // signal, and `run` left the container.
            if opts.forward_signals {
                if let Ok(Some(signal)) = crate::sys::take_pending(&crate::sys::forwarded_signals())
                {
                    let program = program.to_string_lossy();
                    return Ok(Some(Err(Error::stopped_before_start(&program, signal))));
                }
            }
            let held = crate::sys::spawn_kept(
                &Spawn {
                    program,
                    args,
                    env: env.as_deref(),
                    stdio: [stdin, ChildIo::Inherit, ChildIo::Inherit],
                    own_session: false,
                },
                Some(home.as_fd()),
            );
            let started = match held {
                Ok(held) => match self.start_unless_removed(container, entry.recorded, held) {
                    Some(started) => started,
                    None => return Ok::<_, Error>(None),
                },
                Err(error) => Err(error),
            };
            Ok(Some(started.map_err(|error| {
                Error::spawn(&program.to_string_lossy(), &error)
            })))
        })
        .map_err(|e| Error::io(format_args!("entering container {container}"), &e));
        // Waited for here, back in this thread's namespace: a scratch
        // thread waiting inside the container's would be a thread of ours
        // there for as long as the command runs, which an `rm -f` looking
        // for what runs inside takes for a process to kill (the embedding
        // program, when its main thread has ended).
        let status = match spawned.and_then(|started| started) {
            Ok(Some(Ok(running))) => Some(
                // Started: a failed wait is a status lost (the keeper
                // killed), not a command that never ran.
                running
                    .wait(opts.forward_signals)
                    .map_err(|error| Error::status_lost(&program.to_string_lossy(), &error)),
            ),
            Ok(Some(Err(error))) | Err(error) => Some(Err(error)),
            Ok(None) => None,
        };
        // Ended (not dropped) whatever came of it: on an error too, so that
        // a signal that came meanwhile does not end the process before it
        // says why the command did not run.
        if let Some(block) = forwarding {
            block.end();
        }
        match status {
            None => Err(removed_meanwhile(container)),
            Some(status) => status.map(|status| status.code()),
        }
    }

    /// Lets `held`, a child just made in `container`, run its program,
    /// unless the container's record now says it is being removed, is
    /// gone, or is another container's (not the namespace `recorded`, read
    /// before the child was made): then the child ends without having run
    /// anything, and `None` is returned. An `rm -f` that marked the record
    /// since the first read may have made its last look for processes
    /// before the child was there; either this read sees the mark, or the
    /// mark came after the child was in the namespace, where `rm -f` finds
    /// it and whatever it starts. Held until this read, the program cannot
    /// have started a process that `rm -f` missed.
    fn start_unless_removed(
        &self,
        container: &str,
        recorded: Option<NetnsId>,
        held: crate::sys::HeldChild,
    ) -> Option<std::io::Result<crate::sys::Running>> {
        crate::fault::point("container: after spawn");
        let removed = || match self.store.container(container) {
            Ok(Some(record)) => {
                record.state == ContainerState::Removing
                    || (recorded.is_some() && record.netns_id != recorded)
            }
            Ok(None) => true,
            Err(_) => false,
        };
        if removed() {
            held.stop();
            return None;
        }
        match held.release() {
            // Killed while held, after the read: an `rm -f` that marked
            // the record since found it in the namespace.
            Err(error) if error.raw_os_error() == Some(libc::EPIPE) && removed() => None,
            started => Some(started),
        }
    }

    /// Starts `argv` in the background inside the container's namespace
    /// (stdin `/dev/null`, output to a log file in the state directory, a
    /// session of its own without a terminal, `SIGCHLD` at its default);
    /// returns its pid. Names and refusals as for [`Manager::exec`]. The
    /// process is the caller's child: a caller that lives on waits for it
    /// (`waitpid`), as for a `std::process::Child`, or it stays a zombie
    /// once it ends; `ipvlan run -d` exits and leaves it to init.
    ///
    /// ```no_run
    /// # let manager = ipvlan::driver::Manager::open(ipvlan::driver::Config::from_env())?;
    /// let pid = manager.spawn_detached("web", &["sleep".into(), "1000".into()])?;
    /// println!("started {pid}, output in {}", manager.log_path("web").display());
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn spawn_detached(&self, container: &str, argv: &[OsString]) -> Result<u32, Error> {
        self.spawn_detached_checked(container, None, argv)
    }

    /// [`Manager::spawn_detached`] in a container this process made, only
    /// while its name is still that container's (see
    /// [`Manager::exec_in_made_container`]).
    pub fn spawn_detached_in_made_container(
        &self,
        container: &ContainerInfo,
        argv: &[OsString],
    ) -> Result<u32, Error> {
        self.spawn_detached_checked(&container.name, Made::of_info(container), argv)
    }

    /// [`Manager::spawn_detached`]; with `made`, only in the container
    /// whose namespace that is.
    fn spawn_detached_checked(
        &self,
        container: &str,
        made: Option<Made>,
        argv: &[OsString],
    ) -> Result<u32, Error> {
        let (program, args) = split_command(argv)?;
        let env = command_environment();
        let entry = self.container_namespace_apart(container, made)?;
        // 0600 in a checked directory, never through a link: root would
        // append the command's output to whatever a planted link names.
        let open_log = || self.store.open_log(container).map_err(Error::from);
        crate::fault::point("container: before log");
        let stdout = open_log()?;
        let stderr = open_log()?;
        let held = netns::run_in(&entry.ns, || {
            enter_container_view(entry.hosts_file.as_deref(), || {
                hosts::resolve(&self.config.etc_netns_dir, container)
            })?;
            crate::fault::point("container: before spawn");
            crate::sys::spawn_held(&Spawn {
                program,
                args,
                env: env.as_deref(),
                stdio: [
                    ChildIo::Null,
                    ChildIo::Fd(stdout.as_fd()),
                    ChildIo::Fd(stderr.as_fd()),
                ],
                // Its own session, as a container's processes have under
                // Docker: the caller's terminal (its Ctrl-C, its hang-up)
                // is not its.
                own_session: true,
            })
            .map_err(|e| Error::spawn(&program.to_string_lossy(), &e))
        })
        .map_err(|e| Error::io(format_args!("entering container {container}"), &e))??;
        match self.start_unless_removed(container, entry.recorded, held) {
            None => {
                self.drop_orphan_log(container, &stdout);
                Err(removed_meanwhile(container))
            }
            Some(started) => started
                .map(|running| running.pid())
                .map_err(|e| Error::spawn(&program.to_string_lossy(), &e)),
        }
    }

    /// The log a start opened (`log`) for a container removed meanwhile:
    /// an `rm` that ended before the log was made could not take it away,
    /// and a later container of the name would append to it. Taken out,
    /// under the lock, when no container has the name now and the name
    /// still leads to this file; else left (another container's now).
    fn drop_orphan_log(&self, container: &str, log: &fs::File) {
        let Ok(state) = self.store.lock() else {
            return;
        };
        if !matches!(state.container(container), Ok(None)) {
            return;
        }
        let path = self.log_path(container);
        let (Ok(ours), Ok(there)) = (log.metadata(), fs::symlink_metadata(&path)) else {
            return;
        };
        if ours.dev() == there.dev() && ours.ino() == there.ino() {
            let _ = fs::remove_file(&path);
        }
    }
}

/// What [`Manager::container_namespace`] finds: the namespace, the hosts
/// file to show in it, and the identity its record names.
struct ContainerEntry {
    ns: Netns,
    hosts_file: Option<PathBuf>,
    recorded: Option<NetnsId>,
}

/// A container asked for by what this process made of it, whose name is
/// another container's now.
fn replaced_meanwhile(container: &str) -> Error {
    Error::failed(format!(
        "container {container} was removed meanwhile (its name is another container's now): nothing was started"
    ))
}

/// A command about to start in a container whose removal began meanwhile:
/// its process ended before it ran anything.
fn removed_meanwhile(container: &str) -> Error {
    Error::failed(format!(
        "container {container} is being removed: the command was not started"
    ))
}

/// `argv` as the program and its arguments, refused before anything is
/// done (a container's log file made for a command that cannot start)
/// when empty or when an argument holds a NUL byte, which no `execve`
/// can pass.
fn split_command(argv: &[OsString]) -> Result<(&OsString, &[OsString]), Error> {
    use std::os::unix::ffi::OsStrExt;
    if let Some(at) = argv.iter().position(|arg| arg.as_bytes().contains(&0)) {
        return Err(Error::invalid(format!(
            "argument {at} of the command ({:?}) holds a NUL byte, which no program can be given",
            argv[at]
        )));
    }
    argv.split_first()
        .ok_or_else(|| Error::invalid("no command given"))
}

/// Docker's `PATH` for a container's process whose environment names
/// none (`/sbin` and `/usr/sbin` among them: the C library's own default,
/// musl's `/usr/local/bin:/bin:/usr/bin`, finds no `ip`). An init system
/// often starts us without one.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The environment a container's command starts with: ours (`None`), or,
/// when ours has no `PATH`, ours and [`DEFAULT_PATH`], which the command
/// is looked up in too. Given to the command alone: ours is the calling
/// program's, which its other threads may be reading.
fn command_environment() -> Option<Vec<(OsString, OsString)>> {
    if std::env::var_os("PATH").is_some() {
        return None;
    }
    let mut vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    vars.push(("PATH".into(), DEFAULT_PATH.into()));
    Some(vars)
}

/// What a run's refusal of `network` is said in: of the container `name`
/// when the user named it.
fn connecting_to(name: Option<&str>, network: &str) -> String {
    match name {
        Some(name) => format!("connecting {name} to network {network}"),
        None => format!("connecting to network {network}"),
    }
}

/// `error`, met joining `network`, said with what the run was doing
/// ([`connecting_to`]); when the error names the network first itself
/// (`network n1 not found`, `network n1 has no IPv6 subnet: ...`), only
/// with the container, if the user named it, so that the network is not
/// named twice in one line.
fn joining(error: Error, name: Option<&str>, network: &str) -> Error {
    if !error
        .to_string()
        .starts_with(&format!("network {network} "))
    {
        return error.context(connecting_to(name, network));
    }
    match name {
        Some(name) => error.context(format!("connecting {name}")),
        None => error,
    }
}

/// Which step of a run an error ended: making the container, attaching
/// it to a network (whose errors name it themselves), or making durable
/// what was made (the container exists).
enum Step {
    Container,
    Network,
    Durable,
}

/// While this process waits for a foreground command without passing
/// signals on (raised only then): `SIGINT` and `SIGQUIT` at their default
/// action do nothing to it, as `system(3)` has it (one the program
/// handles or ignores is left so), but caught by a handler that does nothing
/// rather than ignored (`sys::swallow_signal`): an ignored disposition survives `execve`, so
/// every program another thread of an embedding process started meanwhile
/// would have ignored them for good; a caught one is back at its default
/// there, in our command too. `SIGCHLD` is left as it is: the command is
/// its keeper's child (see `sys::spawn_kept`). Dispositions are the
/// process's: the waits in progress (threads of a program embedding the
/// library) share one change, made by the first and undone by the last
/// ([`SHIELDS`]).
struct SignalShield(());

/// What the shields of the waits in progress changed.
struct Shields {
    waits: usize,
    /// `SIGINT` and `SIGQUIT` as they were before the first wait that
    /// swallows them.
    interrupts: Vec<crate::sys::SavedSignal>,
}

static SHIELDS: std::sync::Mutex<Shields> = std::sync::Mutex::new(Shields {
    waits: 0,
    interrupts: Vec::new(),
});

fn shields() -> std::sync::MutexGuard<'static, Shields> {
    SHIELDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SignalShield {
    fn raise() -> SignalShield {
        let mut shields = shields();
        if shields.waits == 0 {
            shields.interrupts = [libc::SIGINT, libc::SIGQUIT]
                .iter()
                .filter_map(|&signal| crate::sys::swallow_signal(signal).ok())
                .collect();
        }
        shields.waits += 1;
        SignalShield(())
    }
}

impl Drop for SignalShield {
    fn drop(&mut self) {
        let mut shields = shields();
        shields.waits -= 1;
        if shields.waits == 0 {
            for saved in std::mem::take(&mut shields.interrupts) {
                let _ = crate::sys::restore_signal(&saved);
            }
        }
    }
}

/// On the current (scratch) thread, inside the container's network
/// namespace: a private mount namespace in which `/sys` is a sysfs of that
/// network namespace (its links under `/sys/class/net`, not the host's)
/// and the container's hosts file is over `/etc/hosts`, as `ip netns
/// exec` does. `resolve_again`: the file the container's view names now,
/// asked when the one resolved before is gone.
fn enter_container_view(
    hosts_file: Option<&Path>,
    resolve_again: impl FnOnce() -> Option<PathBuf>,
) -> Result<(), Error> {
    crate::sys::unshare(libc::CLONE_NEWNS)
        .map_err(|e| Error::io("creating a mount namespace", &e))?;
    // Keep our mounts from propagating back to the host.
    crate::sys::mount(
        &cstr("none"),
        &cstr("/"),
        &cstr(""),
        (libc::MS_SLAVE | libc::MS_REC) as libc::c_ulong,
    )
    .map_err(|e| Error::io("making / a slave mount", &e))?;
    netns_sysfs()
        .map_err(|e| Error::io("mounting a sysfs of the container's namespace on /sys", &e))?;
    let Some(mut hosts_file) = hosts_file.map(Path::to_path_buf) else {
        return Ok(());
    };
    let etc_hosts = Path::new("/etc/hosts");
    let mut bound = bind_read_only(&hosts_file, etc_hosts);
    if bound
        .as_ref()
        .is_err_and(|e| e.raw_os_error() == Some(libc::ENOENT))
        && !hosts_file.exists()
    {
        // Resolved without the lock, then removed by a detach (the union
        // file of a container that left one of two networks): the view
        // names another file now, or none (no names, as on no network).
        match resolve_again() {
            Some(now) => {
                hosts_file = now;
                bound = bind_read_only(&hosts_file, etc_hosts);
            }
            None => return Ok(()),
        }
    }
    let mounting = |e: &std::io::Error| {
        Error::io(
            format_args!("mounting {} on /etc/hosts", hosts_file.display()),
            e,
        )
    };
    match bound {
        // No /etc/hosts (or a dangling symlink) to mount on: an
        // initramfs, a minimal busybox system.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && !etc_hosts.exists() => {
            etc_with_hosts(&hosts_file).map_err(|e| mounting(&e))
        }
        other => other.map_err(|e| mounting(&e)),
    }
}

/// A sysfs mounted on `/sys` here shows the network namespace of the
/// thread that mounts it. The one there (the host's) is detached first,
/// with what is mounted under it, as `ip netns exec` does; one that cannot
/// be detached is covered, read-only when it is. No `/sys` at all (a
/// minimal initramfs): nothing to show it on, nothing done.
fn netns_sysfs() -> std::io::Result<()> {
    let sys = cstr("/sys");
    let mut flags: libc::c_ulong = 0;
    if crate::sys::umount2(&sys, libc::MNT_DETACH).is_err() {
        match crate::sys::is_read_only_mount(&sys) {
            Ok(true) => flags = libc::MS_RDONLY,
            Ok(false) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    crate::sys::mount(&cstr("sysfs"), &sys, &cstr("sysfs"), flags)
}

/// Replaces `/etc`, in this private mount namespace only, by a tmpfs that
/// holds every entry of the host's `/etc` (directories and files
/// bind-mounted, so reads and writes reach the host's; symlinks copied)
/// plus `hosts`, the container's file; then makes that tmpfs read-only,
/// so a command that creates a file directly in `/etc` fails instead of
/// writing where nobody will see it. Creating `/etc/hosts` on the host
/// instead would change the host (and fail on a read-only root).
fn etc_with_hosts(hosts_file: &Path) -> std::io::Result<()> {
    let etc = Path::new("/etc");
    // Opened inside this mount namespace, so that its entries can be
    // bind-mounted from `/proc/self/fd/N` once the tmpfs hides them.
    let host_etc = fs::File::open(etc)?;
    let meta = host_etc.metadata()?;
    let mut entries = crate::sys::list_dir_typed(etc)?;
    entries.retain(|entry| entry.name != b"hosts");
    crate::fault::point("containers: /etc listed");
    let hidden = PathBuf::from(format!("/proc/self/fd/{}", host_etc.as_raw_fd()));
    crate::sys::mount(&cstr("tmpfs"), &path_cstr(etc), &cstr("tmpfs"), 0)?;
    fs::set_permissions(etc, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    std::os::unix::fs::chown(etc, Some(meta.uid()), Some(meta.gid()))?;
    for entry in entries {
        let name = entry.file_name();
        let target = etc.join(name);
        match view_entry(&hidden.join(name), &target, entry.kind) {
            // Gone since `/etc` was listed (a temporary removed, a file
            // renamed over): not in the view, as if listed a moment later.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let _ = fs::remove_file(&target).or_else(|_| fs::remove_dir(&target));
            }
            other => other?,
        }
    }
    let etc_hosts = etc.join("hosts");
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&etc_hosts)?;
    bind_read_only(hosts_file, &etc_hosts)?;
    crate::sys::mount(
        &cstr("none"),
        &path_cstr(etc),
        &cstr(""),
        (libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY) as libc::c_ulong,
    )
}

/// Puts the host's `/etc` entry `source` (of `DT_*` type `kind`) at
/// `target` in the view: a symlink copied, anything else bind-mounted
/// over an empty file or directory made for it.
fn view_entry(source: &Path, target: &Path, kind: u8) -> std::io::Result<()> {
    if kind == libc::DT_LNK {
        return std::os::unix::fs::symlink(fs::read_link(source)?, target);
    }
    if kind == libc::DT_DIR {
        crate::sys::mkdir(target, 0o777)?;
    } else {
        fs::File::create(target)?;
    }
    bind(source, target, libc::MS_REC).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("binding {} into the view of /etc: {e}", target.display()),
        )
    })
}

/// Bind-mounts the hosts file `source` on `target`, read-only: the file is
/// the network's (or the container's union view), shared with every other
/// container on it, so a command writing `/etc/hosts` must not change
/// what they resolve (Docker gives each container a file of its own).
fn bind_read_only(source: &Path, target: &Path) -> std::io::Result<()> {
    bind(source, target, 0)?;
    crate::sys::mount(
        &cstr("none"),
        &path_cstr(target),
        &cstr(""),
        (libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY) as libc::c_ulong,
    )
}

/// Bind-mounts `source` on `target` (`extra`: more mount flags).
fn bind(source: &Path, target: &Path, extra: libc::c_ulong) -> std::io::Result<()> {
    crate::sys::mount(
        &path_cstr(source),
        &path_cstr(target),
        &cstr("none"),
        libc::MS_BIND as libc::c_ulong | extra,
    )
}

fn cstr(text: &str) -> CString {
    CString::new(text).unwrap_or_default()
}

fn path_cstr(path: &Path) -> CString {
    CString::new(path.as_os_str().as_encoded_bytes()).unwrap_or_default()
}

/// Whether container `name`'s record says `half` under the lock `state`:
/// one that cannot be read now counts (nothing says it was finished).
fn still_half(state: &Locked<'_>, name: &str, half: ContainerState) -> bool {
    state
        .container(name)
        .map_or(true, |record| record.is_some_and(|r| r.state == half))
}

/// What `docker` says of a name that is not one of its containers.
fn no_such_container(name: &str) -> Error {
    Error::not_found(format!("No such container: {name}"))
}

/// Whether `error` says that `name` is no container of ours (nothing was
/// done): what `docker rm -f` reports without failing, as `rm -f` does a
/// missing file, so that a cleanup can run again.
pub fn is_no_such_container(error: &Error, name: &str) -> bool {
    *error == no_such_container(name)
}

/// Sets `lo` up in a new container's namespace, as in a Docker container
/// (a process may talk to its own addresses).
fn set_loopback_up(inside: &OpenNetns) -> Result<(), Error> {
    let lo = inside.handle.link_index("lo")?;
    inside.handle.link_set_up(lo)?;
    Ok(())
}

/// What an `rm` of `name` does about the network records it cannot read
/// (`damaged`): a refusal when the container's index or record names
/// one of those networks (its endpoint there would stay, named by no
/// container), notes for the others (an endpoint there, if any, stays).
struct Unreadable {
    refusal: Option<Error>,
    notes: Vec<String>,
}

fn unreadable_networks_of(
    state: &Locked<'_>,
    damaged: &[crate::store::Damaged],
    name: &str,
    record: Option<&ContainerRecord>,
) -> Result<Unreadable, Error> {
    let mut unreadable = Unreadable {
        refusal: None,
        notes: Vec::new(),
    };
    if damaged.is_empty() {
        return Ok(unreadable);
    }
    let index = super::netns_identity::ContainerIndex::read(state, name)?;
    for file in damaged {
        let id = file
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".json"))
            .unwrap_or_default();
        let named = !id.is_empty()
            && (index.names_network(id)
                || record.is_some_and(|r| r.networks.iter().any(|n| n == id)));
        if named {
            unreadable.refusal = Some(Error::failed(format!(
                "container {name} has an endpoint on network {id}, whose record cannot be read ({file}); rm would leave it, named by no container: repair or move that file, then rm again"
            )));
            return Ok(unreadable);
        }
        unreadable.notes.push(format!(
            "network record {file} cannot be read: an endpoint of {name} on that network, if it has one, stays"
        ));
    }
    Ok(unreadable)
}

/// The refusal of an `rm` without force, unless `look` found the
/// container surely empty: processes seen inside, or processes the look
/// could not see, which may be inside.
fn still_running(name: &str, look: &ProcessLook) -> Option<Error> {
    if !look.pids.is_empty() {
        return Some(Error::in_use(format!(
            "container {name} still has processes running (pids {}); stop them or use rm -f",
            pid_list(&look.pids)
        )));
    }
    let unseen = look.unseen.as_ref()?;
    Some(Error::new(
        unseen.kind(),
        format!(
            "cannot tell whether container {name} still has processes running: {unseen}; rm -f removes it anyway, ending only the processes it can see"
        ),
    ))
}

/// What is said of processes [`kill_everything_inside`] could not end.
fn outlived(name: &str, left: &[u32]) -> Option<String> {
    (!left.is_empty()).then(|| {
        format!(
            "processes {} of container {name} outlived {KILL_ROUNDS} kills and are left running",
            pid_list(left)
        )
    })
}

/// What `rm -f` says of processes it could not see, and so not end.
fn not_ended(name: &str, unseen: &Unseen) -> String {
    format!(
        "processes of container {name} that ipvlan cannot see were not ended ({unseen}): any such runs on, in its namespace unnamed"
    )
}

/// What [`Manager::dismantle_container`] left alone, and why.
pub(crate) struct Dismantled {
    /// What it could not do as asked.
    pub(crate) notes: Vec<String>,
    /// The processes (`pids 1 2; ...`) an interrupted `rm` without force
    /// found inside, left running, and what became of the container
    /// (removed, or the `rm` undone): what that `rm` would have done, not
    /// a failure.
    pub(crate) left_running: Option<String>,
}

/// `pids 1 2` for processes seen, what kept others from sight, or
/// nothing when the look found the container surely empty.
fn look_text(look: &ProcessLook) -> Option<String> {
    match (&look.pids[..], &look.unseen) {
        ([], None) => None,
        ([], Some(unseen)) => Some(format!("perhaps processes it cannot see ({unseen})")),
        (pids, None) => Some(format!("pids {}", pid_list(pids))),
        (pids, Some(unseen)) => Some(format!(
            "pids {}, perhaps others it cannot see ({unseen})",
            pid_list(pids)
        )),
    }
}

/// `1 2`: process ids as the messages list them.
fn pid_list(pids: &[u32]) -> String {
    let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
    pids.join(" ")
}

impl Manager {
    /// Deletes container `name`'s namespace while the name still holds
    /// `seen` (the file looked at before the work in between); else notes
    /// that another tool's is there now, and leaves it.
    fn delete_netns_if_same(
        &self,
        name: &str,
        seen: (u64, u64),
        notes: &mut Vec<String>,
    ) -> Result<(), Error> {
        let deleted = netns::delete_named_if(&self.config.netns_dir, name, seen)
            .map_err(|e| Error::io(format_args!("deleting namespace {name}"), &e))?;
        if !deleted {
            notes.push(replaced(&self.config.netns_dir.join(name), name));
        }
        Ok(())
    }
}

/// What is said of another tool's namespace found at our container's name.
fn replaced(path: &Path, name: &str) -> String {
    format!(
        "{} is not the namespace made for container {name} (another tool's, put there since); left alone",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a host without `/etc/hosts`, an entry of `/etc` gone between the
    /// listing and its bind (a temporary renamed over `passwd`, removed)
    /// is left out of the view; before, its bind failed the whole `exec`
    /// (125), and `run` took its container apart.
    #[test]
    fn an_etc_entry_gone_after_the_listing_is_left_out_of_the_view() {
        let dir = std::env::temp_dir().join(format!("ipvlan-etc-gone-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (etc, hosts) = (dir.join("etc"), dir.join("hosts"));
        std::fs::create_dir_all(etc.join("conf.d")).unwrap();
        for name in ["passwd", "passwd+", "group"] {
            std::fs::write(etc.join(name), name).unwrap();
        }
        std::os::unix::fs::symlink("passwd", etc.join("link")).unwrap();
        std::os::unix::fs::symlink("group", etc.join("link+")).unwrap();
        std::fs::write(&hosts, "10.0.0.2\tc1\n").unwrap();
        let (etc_in, hosts_in) = (etc.clone(), hosts.clone());
        let seen = std::thread::spawn(move || {
            // This thread's own mount namespace, with the scratch `etc`
            // as its `/etc`.
            crate::sys::unshare(libc::CLONE_NEWNS)?;
            let (none, root) = (cstr("none"), cstr("/"));
            let slave = (libc::MS_SLAVE | libc::MS_REC) as libc::c_ulong;
            crate::sys::mount(&none, &root, &cstr(""), slave)?;
            bind(&etc_in, Path::new("/etc"), 0)?;
            let gone = etc_in.clone();
            crate::fault::unwind::then("containers: /etc listed", move || {
                std::fs::remove_file(gone.join("passwd+")).unwrap();
                std::fs::remove_file(gone.join("link+")).unwrap();
            });
            etc_with_hosts(&hosts_in)?;
            let mut names: Vec<String> = std::fs::read_dir("/etc")?
                .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
                .collect::<Result<_, _>>()?;
            names.sort();
            Ok::<_, std::io::Error>((names, std::fs::read_to_string("/etc/hosts")?))
        })
        .join()
        .unwrap()
        .unwrap();
        assert_eq!(
            seen,
            (
                ["conf.d", "group", "hosts", "link", "passwd"]
                    .map(String::from)
                    .to_vec(),
                "10.0.0.2\tc1\n".to_string()
            )
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A hosts file resolved before a detach removed it (the union file
    /// of a container that left one of its two networks, between `exec`
    /// resolving its view and mounting it) is resolved again: the command
    /// gets the file named now, or no names when none is (it failed with
    /// "mounting ... on /etc/hosts: No such file", exit 125).
    #[test]
    fn a_view_removed_after_it_was_resolved_is_resolved_again() {
        let dir = std::env::temp_dir().join(format!("ipvlan-view-again-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let gone = dir.join("union");
        let now = dir.join("network");
        std::fs::write(&now, "127.0.0.1\tlocalhost\n10.0.0.2\tc1\n").unwrap();
        let host = std::fs::read_to_string("/etc/hosts").ok();
        let seen = |again: Option<PathBuf>| {
            let gone = gone.clone();
            std::thread::spawn(move || {
                enter_container_view(Some(&gone), || again)?;
                Ok::<_, Error>(std::fs::read_to_string("/etc/hosts").ok())
            })
            .join()
            .unwrap()
        };
        let named = seen(Some(now.clone())).unwrap();
        assert_eq!(
            named.as_deref(),
            Some("127.0.0.1\tlocalhost\n10.0.0.2\tc1\n")
        );
        let none = seen(None).unwrap();
        assert_eq!(none, host, "no view left: the host's /etc/hosts, unmounted");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
