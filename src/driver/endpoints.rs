//! `network connect|disconnect`: an endpoint's addresses, its intent
//! record, its link (see `endpoint_link`) and its names (see `hosts`), in
//! that order, undone in reverse on failure.

use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use super::endpoint_link::{self, BuiltEndpoint, EndpointPlan, LinkRemoval};
use super::hosts::Names;
use super::listed::Listed;
use super::netns_identity::{
    self, absolute, endpoint_at, endpoint_of_namespace, legacy_path_ids, normalise, ContainerIndex,
    NsAt, OpenNetns,
};
use super::networks::{find_network_to_join, joinable, lookup_network_id_to_lock};
use super::options::{attached_by_cni, check_container_name};
use super::report::endpoint_label;
use super::{AttachRequest, EndpointInfo, Error, Manager, Target};
use crate::ipam::{IpFamily, Request};
use crate::netns;
use crate::rtnl::{Handle, Link};
use crate::store::records::NetnsId;
use crate::store::{
    EndpointRecord, EndpointState, Locked, NetworkRecord, NetworkState, StateDir, Timestamp,
};

/// How many addresses held by links the network does not know (see
/// [`Error::is_address_held_on_port`]) one attach passes over before it
/// gives up: each costs a link made and deleted.
const HELD_ADDRESSES_PASSED_OVER: usize = 16;

/// The owner of an address found held while an attach passes it over
/// ([`Manager::attach`]): no endpoint's id, so one a kill leaves is an
/// orphan, freed by `restore`.
const HELD_STAND_IN: &str = "held-by-another-link";

/// Runs `release` (addresses given back) and keeps the allocation cursors
/// as they were before it: past an address the kernel refused as another
/// ipvlan link's, which a release in a full subnet of several would put
/// the next walk back before.
pub(crate) fn keeping_cursors<T>(
    state: &Locked<'_>,
    network: &NetworkRecord,
    release: impl FnOnce() -> T,
) -> T {
    let past = state.cursors(network);
    let released = release();
    if let Ok(past) = past {
        let _ = state.put_cursors(network, &past);
    }
    released
}

/// A resolved attach target: its namespace opened and identified.
#[derive(Debug)]
pub(crate) struct ResolvedTarget {
    /// Endpoint id: [`NetnsId::endpoint_id`] of the namespace.
    id: String,
    /// Container name when it is a named namespace.
    container: Option<String>,
    /// The namespace file, absolute and normal.
    path: PathBuf,
    /// The path as typed, when the target was given by one: the ids
    /// older versions filed it under come from it ([`legacy_path_ids`]),
    /// looked up only in a store such a version made.
    typed_path: Option<PathBuf>,
    pub(crate) inside: OpenNetns,
    identity: NetnsId,
    /// The container's index as [`Manager::check_attach`] read it under
    /// the lock, taken by the [`Manager::reserve`] that follows (same
    /// lock, nothing written in between), so one attach reads it once.
    index: RefCell<Option<ContainerIndex>>,
    /// Whether [`Manager::check_attach`] found nothing at the container's
    /// `/etc/netns/NAME` (see [`Names::expect_missing_view`]).
    view_missing: Cell<bool>,
    /// Opened after this command took the store's lock (a batch's
    /// targets): no `rm` of ours can have run since, so its path is not
    /// looked at again before the attach.
    opened_under_lock: bool,
}

impl ResolvedTarget {
    /// Whether `other` is the same namespace (given by another path or name).
    pub(crate) fn same_namespace(&self, other: &ResolvedTarget) -> bool {
        self.identity.same_namespace(&other.identity)
    }

    /// Whether it is a container's (a named namespace's).
    pub(crate) fn is_container(&self) -> bool {
        self.container.is_some()
    }

    /// Whether [`Manager::check_attach`] found nothing at the container's
    /// `/etc/netns/NAME`.
    pub(crate) fn view_missing(&self) -> bool {
        self.view_missing.get()
    }

    /// Lets go of the path as typed, once [`Manager::check_attach`] has
    /// looked for the ids older versions gave it: nothing else reads it,
    /// and a batch holds a thousand targets.
    pub(crate) fn forget_typed_path(&mut self) {
        self.typed_path = None;
    }

    /// What a batch keeps of it once its endpoint is reserved: the
    /// namespace and the socket in it (the intent record holds the rest).
    pub(crate) fn into_inside(self) -> OpenNetns {
        self.inside
    }

    /// How messages name it: the container, else the path.
    pub(crate) fn label(&self) -> String {
        self.container
            .clone()
            .unwrap_or_else(|| self.path.display().to_string())
    }
}

/// Refuses to connect `target` when it is a container whose record says
/// a `run` left it half made or an `rm` half removed: `restore` takes such
/// a container apart, the connect's endpoint with it (`run --name` and
/// `exec` refuse it alike). A command at work holds the lock the caller
/// holds, so the record is a killed command's. `listed`: a batch's
/// listings, which spare the lookup of a record they show missing.
pub(crate) fn refuse_half_done_container(
    state: &Locked<'_>,
    target: &ResolvedTarget,
    listed: Option<&Listed>,
) -> Result<(), Error> {
    let Some(name) = &target.container else {
        return Ok(());
    };
    if listed.is_some_and(|listed| !listed.may_have_record(name)) {
        return Ok(());
    }
    let half = state.container(name)?.map(|record| record.state);
    match half.and_then(|half| super::error::left_half_done(name, half)) {
        Some(said) => Err(Error::failed(format!("{said}; nothing was done"))),
        None => Ok(()),
    }
}

/// The ids older versions may have filed an endpoint attached by the
/// path `typed` under (normal form `normal`), to be looked up: none for a
/// target given by name, and none in a store only a version that files
/// endpoints by identity has written ([`StateDir::by_identity_only`]),
/// where no such record can be (spelling them out cost a tenth of a batch
/// target's instructions).
fn legacy_ids(state: &StateDir, typed: Option<&Path>, normal: &Path) -> Vec<String> {
    match typed {
        Some(typed) if !state.by_identity_only() => legacy_path_ids(typed, normal),
        _ => Vec::new(),
    }
}

impl Manager {
    /// Attaches a namespace to a network: ipvlan link `ethN` created in the
    /// namespace, addresses, routes, name resolution.
    ///
    /// The target is a container (`/run/netns/NAME`) or any namespace file,
    /// a relative path taken from the current directory. A namespace is
    /// attached to a network once, whatever path or name it is given by;
    /// the caller's own namespace, and anything that is not a network
    /// namespace, are refused before the state is locked.
    ///
    /// ```no_run
    /// # use ipvlan::driver::{AttachRequest, Config, Manager, Target};
    /// # let manager = Manager::open(Config::from_env())?;
    /// let request = AttachRequest { ipv4: Some("192.168.1.10".parse().unwrap()), ipv6: None };
    /// let endpoint = manager.connect("db_net", &Target::from_arg("/proc/1234/ns/net"), &request)?;
    /// assert_eq!(endpoint.ifname, "eth0");
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn connect(
        &self,
        network: &str,
        target: &Target,
        req: &AttachRequest,
    ) -> Result<EndpointInfo, Error> {
        // Without waiting for the lock, so a network that does not exist
        // is named first, as before the target was checked; its record
        // is read once, under the lock.
        let found = lookup_network_id_to_lock(&self.store, network)?;
        // The host's socket before the thread goes into the target, where
        // it stays until the link's settings are written (one visit); it
        // also tells the way back (the namespace it was made in).
        let host = Handle::new()?;
        // Opened before the lock: a target that blocks or is refused must
        // not hold every other command up. Entered under it: a connect
        // waiting for the lock inside a container would be one of the
        // container's processes to a concurrent `rm`.
        let opened = self.open_target_for_entry(target, &host)?;
        let state = self.store.lock()?;
        let target = self.enter_opened(opened)?;
        let network = locked_network(&state, network, &found)?;
        refuse_half_done_container(&state, &target, None)?;
        let endpoint = self.attach(&host, &state, &network, &target, req)?;
        // The final state durable before the command reports it.
        state.commit()?;
        // Back home before anything is let go (the link's settings ended
        // the visit already).
        drop(target.inside.take_visit());
        self.release((host, target));
        Ok(endpoint)
    }

    /// Detaches a namespace: deletes the link, releases its addresses,
    /// updates name resolution. Returns what was left alone, and why (a
    /// link at the recorded place that is not ours).
    ///
    /// The endpoint is found by the container's name, or by the identity
    /// of the namespace at the path, with a constant number of reads; only
    /// when neither finds it (the namespace is gone, or another one took
    /// its place) are this network's endpoints read for the recorded path
    /// or name.
    ///
    /// ```no_run
    /// # use ipvlan::driver::{Config, Manager, Target};
    /// # let manager = Manager::open(Config::from_env())?;
    /// for note in manager.disconnect("db_net", &Target::Container("web".into()))? {
    ///     println!("warning: {note}");
    /// }
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn disconnect(&self, network: &str, target: &Target) -> Result<Vec<String>, Error> {
        let found = lookup_network_id_to_lock(&self.store, network)?;
        // The host's socket first: it tells the way back from the target.
        let host = Handle::new()?;
        // Like connect: what is at the path now opened before the lock (a
        // target that blocks or is refused holds no other command up),
        // entered and identified under it (see `Placed::entered`).
        let placed = self.place_for_detach(target, &host)?;
        let state = self.store.lock()?;
        let network = locked_network(&state, network, &found)?;
        let (endpoint, at) = self.endpoint_to_detach(&state, &network, target, placed)?;
        let notes = self.detach(&host, &state, &network, endpoint, &at)?;
        state.commit()?;
        self.release((host, at));
        Ok(notes)
    }

    /// Where a detach's target is, and what is there now (opened before
    /// the lock is taken, entered under it); `host`, the caller's socket
    /// of its namespace, tells the way back.
    pub(crate) fn place_for_detach(
        &self,
        target: &Target,
        host: &Handle,
    ) -> Result<DetachPlace, Error> {
        self.place_opened_by(target, &mut |path| {
            let (ns, entry) = netns::Visit::open_at_once_told(path, Some(host.socket().fd()))?;
            Ok(match entry {
                Some(entry) => Ok(Placed::Unentered(ns, entry)),
                // The caller's own: nothing to enter.
                None => OpenNetns::with_handle(ns).and_then(Placed::ready),
            })
        })
    }

    /// [`Manager::place_for_detach`] for one of many targets, opened from
    /// the caller's namespace `home` (see [`OpenNetns::open_path_from`]).
    pub(crate) fn place_for_detach_from(
        &self,
        target: &Target,
        home: &crate::netns::Netns,
    ) -> Result<DetachPlace, Error> {
        self.place_opened_by(target, &mut |path| {
            Ok(OpenNetns::open_path_from(path, home)?.and_then(Placed::ready))
        })
    }

    /// [`Manager::place_for_detach`] with the namespace opened by `open`.
    fn place_opened_by(
        &self,
        target: &Target,
        open: &mut dyn FnMut(&Path) -> std::io::Result<Result<Placed, Error>>,
    ) -> Result<DetachPlace, Error> {
        let (path, container) = self.target_place(target)?;
        let mut refusal = None;
        let opened = match open(&path) {
            Ok(placed) => Some(placed?),
            Err(error) if matches!(error.raw_os_error(), Some(libc::ENOENT | libc::ESRCH)) => None,
            Err(error) => match netns::not_a_namespace(&error) {
                // An unmounted namespace file: its endpoint may be recorded.
                Some(found) if found.found.may_have_held_a_namespace() => {
                    refusal = Some(Error::invalid(found.to_string()));
                    None
                }
                Some(found) => return Err(Error::invalid(found.to_string())),
                None => {
                    return Err(Error::io(
                        format_args!("opening namespace {}", path.display()),
                        &error,
                    ))
                }
            },
        };
        Ok(DetachPlace {
            path,
            container,
            opened,
            refusal,
        })
    }

    /// Under the held lock: the endpoint of `network` that `target`
    /// (found at `placed`) names, and the namespace its link is in.
    pub(crate) fn endpoint_to_detach(
        &self,
        state: &Locked<'_>,
        network: &NetworkRecord,
        target: &Target,
        placed: DetachPlace,
    ) -> Result<(EndpointRecord, NsAt), Error> {
        let DetachPlace {
            path,
            container,
            opened,
            refusal,
        } = placed;
        let opened = opened.map(|placed| placed.entered(&path)).transpose()?;
        let identity = opened.as_ref().map(|(_, identity)| *identity);
        let found = self.find_endpoint(state, network, target, &path, container, identity)?;
        let Some(mut endpoint) = found else {
            return Err(refusal.unwrap_or_else(|| {
                Error::not_found(format!(
                    "container {} is not connected to network {}",
                    target.label(),
                    network.name
                ))
            }));
        };
        if attached_by_cni(&endpoint) {
            // Its runtime still counts on it (its lease, its link, an ADD
            // that may still be running): its DEL takes it out.
            return Err(Error::invalid(format!(
                "{} is attached to network {} by a CNI runtime (interface {}): its runtime's DEL removes it, not `network disconnect`; nothing was detached",
                target.label(),
                network.name,
                endpoint.ifname
            )));
        }
        if !Path::new(&endpoint.netns).is_absolute() {
            // Recorded as typed by an older version: the caller named it
            // again, from where it resolves.
            endpoint.netns = path.display().to_string();
        }
        let at = match opened {
            // Still open since before the lock, and the very namespace
            // attached (no two namespaces share a cookie), wherever its
            // path leads now: its link is there, nothing to open again.
            Some((open, identity))
                if endpoint
                    .netns_id
                    .is_some_and(|r| r.same_namespace(&identity))
                    && (endpoint.ifindex.is_some() || !endpoint.ifname.is_empty()) =>
            {
                NsAt::Present(open, identity)
            }
            _ => locate(&endpoint)?,
        };
        Ok((endpoint, at))
    }

    /// The endpoint of `network` that `target` names: by the container's
    /// index, by the identity of the namespace at `path`, by the ids older
    /// versions gave a path; failing those, by the recorded name or path
    /// among the network's endpoints.
    pub(crate) fn find_endpoint(
        &self,
        state: &Locked<'_>,
        network: &NetworkRecord,
        target: &Target,
        path: &Path,
        container: Option<String>,
        identity: Option<NetnsId>,
    ) -> Result<Option<EndpointRecord>, Error> {
        if let Some(name) = &container {
            let index = ContainerIndex::read(state, name)?;
            if let Some(endpoint) = index.endpoint(state, &network.id)? {
                return Ok(Some(endpoint));
            }
        }
        if let Some(identity) = &identity {
            if let Some(endpoint) = endpoint_of_namespace(state, &network.id, identity)? {
                return Ok(Some(endpoint));
            }
        }
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        let same_path =
            |endpoint: &EndpointRecord| normalise(&cwd, Path::new(&endpoint.netns)) == path;
        // Older versions filed it under the text of the path as typed;
        // `/tmp/a b` and `/tmp/a_b` had one id, so the path decides.
        for id in legacy_ids(state, target.typed_path(), path) {
            if let Some(endpoint) = endpoint_at(state, &network.id, &id, same_path)? {
                return Ok(Some(endpoint));
            }
        }
        let mut endpoints = state.endpoints_of(&network.id)?.items;
        let named = |endpoint: &EndpointRecord| match &container {
            Some(name) => endpoint.container.as_deref() == Some(name.as_str()),
            None => endpoint.container.is_none() && same_path(endpoint),
        };
        // One of ours before a CNI runtime's attachment at the same path
        // (which a detach refuses).
        let found = endpoints
            .iter()
            .position(|endpoint| named(endpoint) && !attached_by_cni(endpoint))
            .or_else(|| endpoints.iter().position(named));
        Ok(found.map(|at| endpoints.swap_remove(at)))
    }

    /// Where `target`'s namespace file is (absolute, normal) and the
    /// container it is, if any: a path into the netns directory names
    /// that container.
    pub(crate) fn target_place(&self, target: &Target) -> Result<(PathBuf, Option<String>), Error> {
        let netns_dir = absolute(&self.config.netns_dir)?;
        match target {
            Target::Container(name) => {
                check_container_name(name)?;
                Ok((netns_dir.join(name), Some(name.clone())))
            }
            Target::Path(path) => {
                let path = absolute(path)?;
                let container = path
                    .file_name()
                    .and_then(|name| name.to_str())
                    .filter(|name| check_container_name(name).is_ok())
                    .filter(|_| path.parent() == Some(netns_dir.as_path()))
                    .map(str::to_string);
                Ok((path, container))
            }
        }
    }

    /// A target given by a path that is a named namespace's file: that
    /// container, at its place under the netns directory (see
    /// [`netns_identity::names_of`]); any other target as it is. Two
    /// names of the one namespace leave it to the caller to choose.
    fn named_place(
        &self,
        target: &Target,
        place: (PathBuf, Option<String>),
        ns: &crate::netns::Netns,
    ) -> Result<(PathBuf, Option<String>), Error> {
        let (Target::Path(given), (_, None)) = (target, &place) else {
            return Ok(place);
        };
        let netns_dir = absolute(&self.config.netns_dir)?;
        match netns_identity::names_of(&netns_dir, ns.file_id()).as_slice() {
            [] => Ok(place),
            [name] => Ok((netns_dir.join(name), Some(name.clone()))),
            several => Err(Error::invalid(format!(
                "{} is the namespace named {} in {}: give one of those names",
                given.display(),
                several.join(" and "),
                netns_dir.display()
            ))),
        }
    }

    /// Opens and identifies the target's namespace; nothing is locked or
    /// changed yet.
    pub(crate) fn resolve_target(&self, target: &Target) -> Result<ResolvedTarget, Error> {
        let (path, container) = self.target_place(target)?;
        let missing = target_missing(target, &container);
        let ns = netns_identity::open_target(&path, missing)?;
        let (path, container) = self.named_place(target, (path, container), &ns)?;
        let inside = OpenNetns::with_handle(ns)?;
        self.resolved(target, path, container, inside, false)
    }

    /// [`Manager::resolve_target`] for one of many targets opened from the
    /// caller's namespace `home` (see [`netns_identity::open_target_from`]),
    /// under the store's lock the caller holds.
    pub(crate) fn resolve_target_from(
        &self,
        target: &Target,
        home: &crate::netns::Netns,
    ) -> Result<ResolvedTarget, Error> {
        let (path, container) = self.target_place(target)?;
        let missing = target_missing(target, &container);
        let inside = netns_identity::open_target_from(&path, home, missing)?;
        let (path, container) = self.named_place(target, (path, container), &inside.ns)?;
        self.resolved(target, path, container, inside, true)
    }

    /// [`Manager::resolve_target`] for a single attach, first half: the
    /// target opened and checked, not entered yet ([`Manager::enter_opened`]
    /// then keeps the calling thread in it until its link's settings are
    /// written, see [`OpenNetns::with_handle_staying`]).
    fn open_target_for_entry(&self, target: &Target, host: &Handle) -> Result<OpenedTarget, Error> {
        let (path, container) = self.target_place(target)?;
        let missing = target_missing(target, &container);
        let (ns, entry) =
            netns_identity::open_target_for_entry(&path, host.socket().fd(), missing)?;
        let (path, container) = self.named_place(target, (path, container), &ns)?;
        Ok(OpenedTarget {
            target: target.clone(),
            path,
            container,
            ns,
            entry,
        })
    }

    /// The second half: the thread enters the opened target and stays
    /// there, its handle opened inside, and the target identified.
    fn enter_opened(&self, opened: OpenedTarget) -> Result<ResolvedTarget, Error> {
        let OpenedTarget {
            target,
            path,
            container,
            ns,
            entry,
        } = opened;
        let missing = target_missing(&target, &container);
        let visit = netns_identity::enter_target(&ns, entry, &path, missing)?;
        let inside = OpenNetns::with_handle_staying(ns, visit)?;
        self.resolved(&target, path, container, inside, false)
    }

    /// The target at `path` (of `container`), open with its handle:
    /// identified.
    fn resolved(
        &self,
        target: &Target,
        path: PathBuf,
        container: Option<String>,
        inside: OpenNetns,
        opened_under_lock: bool,
    ) -> Result<ResolvedTarget, Error> {
        let identity = inside.identity()?;
        Ok(ResolvedTarget {
            id: identity.endpoint_id(),
            container,
            path,
            typed_path: target.typed_path().map(Path::to_path_buf),
            inside,
            identity,
            index: RefCell::new(None),
            view_missing: Cell::new(false),
            opened_under_lock,
        })
    }

    /// The target of container `name` whose namespace this command made
    /// and named itself: `inside` (open, with its handle) and `identity`
    /// taken as they are, not opened and identified again by the name.
    pub(crate) fn made_target(
        &self,
        name: &str,
        inside: OpenNetns,
        identity: NetnsId,
    ) -> Result<ResolvedTarget, Error> {
        let (path, container) = self.target_place(&Target::Container(name.to_string()))?;
        Ok(ResolvedTarget {
            id: identity.endpoint_id(),
            container,
            path,
            typed_path: None,
            inside,
            identity,
            index: RefCell::new(None),
            view_missing: Cell::new(false),
            opened_under_lock: false,
        })
    }

    /// Refuses a second endpoint of the target's namespace on `network`
    /// (whatever path or name it was attached by), and a second one of
    /// its container: constant reads, whatever the number of endpoints.
    fn check_not_attached(
        &self,
        state: &Locked<'_>,
        network: &NetworkRecord,
        target: &ResolvedTarget,
        listed: Option<&Listed>,
    ) -> Result<(), Error> {
        let already = |existing: &EndpointRecord| {
            // An endpoint a killed connect or disconnect left (`attaching`,
            // `detaching`) is named as what it is, as `network rm` names
            // it: "already connected" sent users looking for a link the
            // killed command may never have made.
            let mut message = if existing.state.is_attached() {
                format!(
                    "container {} is already connected to network {}",
                    target.label(),
                    network.name
                )
            } else {
                format!(
                    "container {} has an endpoint on network {} left {} by an interrupted command",
                    target.label(),
                    network.name,
                    existing.state
                )
            };
            let theirs = endpoint_label(existing);
            if theirs != target.label() {
                message.push_str(&format!(" (it is the namespace of {theirs})"));
            }
            if !existing.state.is_attached() {
                message.push_str("; run `ipvlan restore` to finish it");
                if super::options::made_by_cni(network) {
                    message.push_str(
                        " (or wait: on a CNI network, an ADD waiting for its delegated IPAM plugin is `attaching` too)",
                    );
                }
            }
            Error::already_exists(message)
        };
        let same = |existing: &EndpointRecord| {
            existing
                .netns_id
                .map_or(true, |id| id.same_namespace(&target.identity))
        };
        let recorded = match listed {
            Some(listed) if !listed.may_have_endpoint(&target.id) => None,
            _ => state.endpoint(&network.id, &target.id)?,
        };
        if let Some(existing) = recorded {
            if same(&existing) {
                return Err(already(&existing));
            }
            // The id comes from the cookie, which no two namespaces share:
            // a record of another one here was edited. Not overwritten.
            return Err(Error::failed(format!(
                "state directory: endpoint record {} of network {} names another namespace; run `ipvlan restore`",
                target.id, network.name
            )));
        }
        for id in legacy_ids(state, target.typed_path.as_deref(), &target.path) {
            // In the endpoint records' listing too, as the target's own id.
            if listed.is_some_and(|listed| !listed.may_have_endpoint(&id)) {
                continue;
            }
            if let Some(existing) = endpoint_at(state, &network.id, &id, same)? {
                return Err(already(&existing));
            }
        }
        if let Some(name) = &target.container {
            let index = match listed {
                Some(listed) if !listed.may_have_index(name) => ContainerIndex::missing(name),
                _ => ContainerIndex::read(state, name)?,
            };
            let existing = index.endpoint(state, &network.id)?;
            *target.index.borrow_mut() = Some(index);
            if let Some(existing) = existing {
                if same(&existing) {
                    return Err(already(&existing));
                }
                // One name, one endpoint per network: its hosts entries
                // and its `inspect` key are the name's.
                return Err(Error::in_use(format!(
                    "container {name} is still connected to network {} with a namespace that is no longer at {}; run `ipvlan network disconnect {} {name}` or `ipvlan restore` first",
                    network.name,
                    target.path.display(),
                    network.name
                )));
            }
        }
        Ok(())
    }

    /// Attaches `target` to `network` under the held lock.
    pub(crate) fn attach(
        &self,
        host: &Handle,
        state: &Locked<'_>,
        network: &NetworkRecord,
        target: &ResolvedTarget,
        req: &AttachRequest,
    ) -> Result<EndpointInfo, Error> {
        // A parent of ours that is missing is made again, but only once
        // the refusals are behind: a refused attach changes nothing.
        let parent = parent_link_unless_ours_missing(host, network)?;
        super::networks::refuse_while_intent_pending(state, network)?;
        self.check_attach(state, network, target, req, None)?;
        check_hosts_dir(state, network)?;
        let parent = self.parent_remade(host, state, network, parent)?;
        // As found, put back with the rest should the attach fail later:
        // a refused attach leaves even that hint as it was, as a batch
        // does. Read once: the allocation reuses what this read.
        let cursors = state.cursors(network)?;
        // An address the allocation chose that another ipvlan link on the
        // parent holds (a host's own, another tool's: no record says so)
        // is passed over: the attach, undone whole, is made again with the
        // next. Not an address asked for, which stays the caller's.
        // Only after an attempt given back whole: one whose link the
        // kernel would not delete is left for `restore`, under this very
        // endpoint id. The address stays taken by a stand-in owner until
        // the end, as the allocator would otherwise be led back to it (a
        // release in a full subnet of several puts the walk before it).
        let chosen = req.ipv4.is_none() && req.ipv6.is_none();
        let mut held = Vec::new();
        let attached = loop {
            let mut given_back = false;
            let attached =
                self.attach_checked(host, state, network, &parent, target, req, &mut given_back);
            let address = match &attached {
                Err(error) if chosen && given_back => error.held_address(),
                _ => None,
            };
            let Some(address) = address else {
                break attached;
            };
            if held.len() == HELD_ADDRESSES_PASSED_OVER
                || state
                    .allocate(network, Request::Exact(address), HELD_STAND_IN)
                    .is_err()
            {
                break attached.map_err(|error| match held.len() {
                    0 => error,
                    tried => error.and_left(format_args!(
                        "so were the {tried} tried before it; give --ip/--ip6 (or a network whose --ip-range leaves those links' addresses out)"
                    )),
                });
            }
            held.push(address);
        };
        // The cursors stay past addresses found held, so that the next
        // attach does not try them first again.
        if !held.is_empty() {
            keeping_cursors(state, network, || {
                for address in &held {
                    let _ = state.release(network, *address);
                }
            });
        } else if attached.is_err() {
            let _ = state.put_cursors(network, &cursors);
        }
        attached
    }

    /// [`Manager::attach`] once its checks passed: a free `ethN` in the
    /// target, the addresses, the container's index entry and the intent
    /// record (in that order), then the kernel's part and the final
    /// record; on failure what was taken is given back.
    /// `given_back`: set when a failure of the kernel's part gave back
    /// everything the attempt took (see [`Pending::undo_unbuilt`]).
    #[allow(clippy::too_many_arguments)]
    fn attach_checked(
        &self,
        host: &Handle,
        state: &Locked<'_>,
        network: &NetworkRecord,
        parent: &Link,
        target: &ResolvedTarget,
        req: &AttachRequest,
        given_back: &mut bool,
    ) -> Result<EndpointInfo, Error> {
        let index = endpoint_link::chosen_index()?;
        let mut pending =
            self.reserve(state, network, target, req, true, index, Intent::OwnRecord)?;
        let built = match pending.build(state, host, network, parent, &target.inside) {
            Ok(built) => built,
            Err(error) => {
                *given_back = pending.undo_unbuilt(state, network, parent, &target.inside);
                return Err(error.context(format!(
                    "attaching {} to network {}",
                    target.label(),
                    network.name
                )));
            }
        };
        let mut names = self.names(state);
        if target.view_missing.get() {
            names.expect_missing_view(target.container.clone());
        }
        if let Err(error) = pending.finish(state, &names, network, &built) {
            pending.undo_built(state, &names, network, parent, &target.inside);
            return Err(error);
        }
        Ok(EndpointInfo::from_record(network, &pending.record))
    }

    /// The name views under the held lock.
    pub(crate) fn names<'a>(&'a self, state: &'a Locked<'a>) -> Names<'a> {
        Names::new(state, &self.config.etc_netns_dir)
    }

    /// What refuses an attach before anything is taken: the target's path
    /// leads elsewhere now, it is attached already, an address family the
    /// network lacks, a name view that is not ours. The network's hosts
    /// directory is the caller's to check ([`check_hosts_dir`]), once for
    /// all its targets. `listed`: a batch's listings, which spare each
    /// target the lookups of names they show missing (`listed.rs`).
    pub(crate) fn check_attach(
        &self,
        state: &Locked<'_>,
        network: &NetworkRecord,
        target: &ResolvedTarget,
        req: &AttachRequest,
        listed: Option<&Listed>,
    ) -> Result<(), Error> {
        // Opened before the lock was ours: the path must still name that
        // namespace (a `rm` may have run meanwhile), or the record would
        // name a path that leads elsewhere. A target opened under the lock
        // (a batch's) has had no `rm` of ours since.
        let still_there = target.opened_under_lock
            || std::fs::metadata(&target.path).is_ok_and(|meta| {
                (meta.dev(), meta.ino()) == (target.identity.dev, target.identity.ino)
            });
        if !still_there {
            return Err(Error::failed(format!(
                "{} no longer leads to the namespace it named when connect began (removed or replaced meanwhile); nothing was done",
                target.path.display()
            )));
        }
        self.check_not_attached(state, network, target, listed)?;
        if req.ipv6.is_some() && !network.ipv6 {
            return Err(no_ipv6_subnet(network));
        }
        if let Some(container) = &target.container {
            let missing = match listed {
                Some(listed) if !listed.may_have_view(container) => true,
                _ => super::hosts::check_view_is_ours(
                    &self.config.etc_netns_dir,
                    container,
                    state.root(),
                )?,
            };
            target.view_missing.set(missing);
        }
        Ok(())
    }

    /// The state of an attach that passed [`Manager::check_attach`]: a
    /// free `ethN`, the addresses, the index entry, the intent record.
    /// `guess`: a container that our records show on no network gets
    /// `eth0` without asking the kernel first (see [`Pending::name_guessed`]).
    /// `index`: the ifindex the link's first create will ask for
    /// ([`endpoint_link::chosen_index`]), named in the intent so that
    /// restore undoes that link and no other. `intent`: where the intent
    /// record goes (a batch writes all of its own together).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn reserve(
        &self,
        state: &Locked<'_>,
        network: &NetworkRecord,
        target: &ResolvedTarget,
        req: &AttachRequest,
        guess: bool,
        index: u32,
        intent: Intent,
    ) -> Result<Pending, Error> {
        // Named before the kernel sees it, so restore knows what to delete
        // if this attach is interrupted; and before any address is taken,
        // so a failure here has nothing to give back. A container with no
        // endpoint of ours has nothing of ours named `ethN`: its `eth0` is
        // only taken if another tool made it, which the create finds out.
        let name_guessed = guess
            && target.container.is_some()
            && target
                .index
                .borrow()
                .as_ref()
                .is_some_and(ContainerIndex::is_empty);
        let ifname = if name_guessed {
            endpoint_link::FIRST_IFNAME.to_string()
        } else {
            endpoint_link::free_ifname(&target.inside)?
        };

        // Addresses first (cheap to give back), then the intent record,
        // then the kernel.
        let (ipv4, ipv6) = allocate(state, network, req, &target.id)?;
        let mut pending = Pending {
            record: EndpointRecord {
                id: target.id.clone(),
                network_id: network.id.clone(),
                container: target.container.clone(),
                netns: target.path.display().to_string(),
                ifname,
                mac: None,
                ipv4: Some(ipv4),
                ipv6,
                state: EndpointState::Attaching,
                created: Timestamp::now(),
                netns_id: Some(target.identity),
                // Before the kernel is asked: the link, if made, has it.
                ifindex: Some(index),
            },
            index: None,
            indexed: false,
            indexed_alone: false,
            name_guessed,
            intent,
        };
        // The container's index entry before its record: an entry without
        // a record counts for nothing, a record is always found.
        if let Some(name) = &target.container {
            let read = match target.index.take() {
                Some(index) => Ok(index),
                None => ContainerIndex::read(state, name),
            };
            let added = read.and_then(|mut index| {
                index.add(state, &network.id, &target.id)?;
                Ok(index)
            });
            match added {
                Ok(added) => pending.index = Some(Box::new(added)),
                Err(error) => {
                    pending.abandon(state, network);
                    return Err(error);
                }
            }
        }
        if intent != Intent::OwnRecord {
            return Ok(pending);
        }
        // Read as missing by check_attach, under this lock.
        match state.put_intent(&pending.record) {
            Ok(in_log) => {
                if in_log {
                    pending.intent = Intent::InLog;
                }
                Ok(pending)
            }
            Err(error) => {
                pending.abandon(state, network);
                Err(error.into())
            }
        }
    }

    /// Detaches one endpoint under the held lock: link deleted first, then
    /// names, addresses and the record; returns what was left alone. The
    /// link is touched only in the very namespace that was attached (`at`,
    /// see [`locate`]) and only when it is ours; addresses are freed only
    /// while this endpoint still holds them.
    ///
    /// An interrupted attach's intent names the index its create asked
    /// for: the link there, if any, is the one it made. An intent of an
    /// older version names no index, only the name, which another tool
    /// may have taken since (the kill may have come before our create, or
    /// our create been refused because their link had it): no link is
    /// deleted for it, one of that name is reported and left in place.
    /// Nor is one for a re-make by `restore` (`relinking`) that names no
    /// index; for both, links of ours under a temporary name go, since a
    /// create under one is what such a record can be left by.
    pub(crate) fn detach(
        &self,
        host: &Handle,
        state: &Locked<'_>,
        network: &NetworkRecord,
        endpoint: EndpointRecord,
        at: &NsAt,
    ) -> Result<Vec<String>, Error> {
        self.detach_as(host, state, network, endpoint, at)
    }

    /// [`Manager::detach`], its arguments taken apart.
    fn detach_as(
        &self,
        host: &Handle,
        state: &Locked<'_>,
        network: &NetworkRecord,
        mut endpoint: EndpointRecord,
        at: &NsAt,
    ) -> Result<Vec<String>, Error> {
        check_hosts_dir(state, network)?;
        // The parent is looked up before the intent is written, as a batch
        // does: a lookup that fails leaves the endpoint as it was. After
        // it, the failure left the record `detaching` with nothing done,
        // which `restore` then finished, removing what the user was told
        // stayed. A CNI network without a host master names none.
        let parent = match (at.open(), network.parent.as_str()) {
            (None, _) | (_, "") => None,
            (Some(_), name) => {
                crate::fault::io_refused("detach: parent lookup lost")
                    .map_err(|e| Error::io(format_args!("looking up parent {name}"), &e))?;
                host.link_by_name(name)?
            }
        };
        let how = LinkToRemove::of(&endpoint);
        endpoint.state = EndpointState::Detaching;
        if how.unproven {
            endpoint.ifname.clear();
        }
        under_detach_intent(state, &endpoint, || {
            let mut notes = Vec::new();
            if let Some(inside) = at.open() {
                let master = endpoint_link::Master::of(network, parent.as_ref());
                notes.extend(how.remove(inside, master)?);
            }
            let names = self.names(state);
            names.remove(network, &endpoint)?;
            notes.extend(names.take_notes());
            self.forget_detached(state, network, &endpoint)?;
            Ok(notes)
        })
    }

    /// What a detach does once the endpoint's link is gone (or was never
    /// there), its names aside: its addresses, its record, its place in
    /// its container's index.
    pub(crate) fn forget_detached(
        &self,
        state: &Locked<'_>,
        network: &NetworkRecord,
        endpoint: &EndpointRecord,
    ) -> Result<(), Error> {
        for address in endpoint.ipv4.iter().chain(endpoint.ipv6.iter()) {
            state.release_if_owner(network, address.addr(), &endpoint.id)?;
        }
        state.remove_endpoint(&endpoint.network_id, &endpoint.id)?;
        if let Some(name) = &endpoint.container {
            // After the record: an entry left by a failure here counts for
            // nothing, and restore prunes it.
            let _ = ContainerIndex::read(state, name)
                .and_then(|mut index| index.remove(state, &endpoint.network_id, &endpoint.id));
        }
        Ok(())
    }

    /// The endpoints of container `name`, with the index of their network
    /// in `networks`: one read per network, as many as it has.
    pub(crate) fn container_endpoints(
        &self,
        state: &StateDir,
        networks: &[NetworkRecord],
        name: &str,
    ) -> Result<Vec<(usize, EndpointRecord)>, Error> {
        self.container_endpoints_listed(state, networks, name, None)
    }

    /// [`Manager::container_endpoints`] with each network's endpoint ids
    /// listed beforehand (`listed[i]` for `networks[i]`), for a caller
    /// going through many containers: see
    /// [`ContainerIndex::endpoint_listed`].
    pub(crate) fn container_endpoints_listed(
        &self,
        state: &StateDir,
        networks: &[NetworkRecord],
        name: &str,
        listed: Option<&[Vec<String>]>,
    ) -> Result<Vec<(usize, EndpointRecord)>, Error> {
        let index = ContainerIndex::read(state, name)?;
        let mut found = Vec::new();
        for (at, network) in networks.iter().enumerate() {
            let ids = listed.and_then(|all| all.get(at)).map(Vec::as_slice);
            if let Some(endpoint) = index.endpoint_listed(state, &network.id, ids)? {
                found.push((at, endpoint));
            }
        }
        Ok(found)
    }
}

/// How an endpoint's link is found for its removal: read from its record
/// before the record is marked `detaching`.
#[derive(Debug)]
pub(crate) struct LinkToRemove {
    was: EndpointState,
    /// Recorded without an index by an attach or a re-make that may have
    /// run its create: the link can only be under a temporary name. The
    /// detach's intent then records no name either ([`LinkToRemove::is_unproven`]),
    /// so that its retry (restore's, a later disconnect's) never takes a
    /// link by the name another tool's may have.
    unproven: bool,
    ifindex: Option<u32>,
    ifname: String,
    mac: Option<String>,
}

impl LinkToRemove {
    pub(crate) fn of(endpoint: &EndpointRecord) -> LinkToRemove {
        LinkToRemove::found_by(
            endpoint.state,
            endpoint.ifindex,
            endpoint.ifname.clone(),
            endpoint.mac.clone(),
        )
    }

    /// [`LinkToRemove::of`] an endpoint whose record was in state `was`
    /// (it is its intent now), with the link's name and MAC address moved
    /// out of it (a batch holds a thousand) until they are given back
    /// ([`LinkToRemove::give_back`]).
    pub(crate) fn take_from(endpoint: &mut EndpointRecord, was: EndpointState) -> LinkToRemove {
        let ifname = std::mem::take(&mut endpoint.ifname);
        LinkToRemove::found_by(was, endpoint.ifindex, ifname, endpoint.mac.take())
    }

    /// Whether the link of an endpoint recorded so, in state `was`, is
    /// unproven: an attach's or re-make's record without an index, or the
    /// intent of a detach of one, which names no link.
    pub(crate) fn is_unproven(was: EndpointState, ifindex: Option<u32>, ifname: &str) -> bool {
        ifindex.is_none()
            && match was {
                EndpointState::Attaching | EndpointState::Relinking => true,
                EndpointState::Detaching => ifname.is_empty(),
                _ => false,
            }
    }

    fn found_by(
        was: EndpointState,
        ifindex: Option<u32>,
        ifname: String,
        mac: Option<String>,
    ) -> LinkToRemove {
        LinkToRemove {
            was,
            unproven: LinkToRemove::is_unproven(was, ifindex, &ifname),
            ifindex,
            ifname,
            mac,
        }
    }

    /// Puts back into `endpoint` (its detach's intent) what
    /// [`LinkToRemove::take_from`] took: the name only of a proven link.
    pub(crate) fn give_back(self, endpoint: &mut EndpointRecord) {
        if !self.unproven {
            endpoint.ifname = self.ifname;
        }
        endpoint.mac = self.mac;
    }

    /// Deletes the endpoint's link in `inside`, the namespace attached,
    /// when it is ours (on `master`); returns why a link found there was
    /// left in place.
    /// Requests on `inside`'s socket only: no file is touched, so a batch
    /// runs it on a thread of its own while it writes the files of the
    /// endpoint before.
    pub(crate) fn remove(
        &self,
        inside: &OpenNetns,
        master: endpoint_link::Master<'_>,
    ) -> Result<Option<String>, Error> {
        let removal = if self.unproven {
            // Recorded without an index, the link can only be under a
            // temporary name, which no other tool makes (an intent of an
            // older version never made one: nothing is found).
            endpoint_link::delete_temporary_links(inside, master)?;
            let found = match self.ifname.as_str() {
                "" => None,
                name => inside.handle.link_by_name(name)?,
            };
            let why = match self.was {
                EndpointState::Relinking => "the interrupted re-make by restore recorded no index (its link was under a temporary name)",
                _ => "the interrupted attach recorded no index (a record of an older version)",
            };
            match found.filter(|l| l.kind.as_deref() == Some("ipvlan")) {
                Some(link) => LinkRemoval::NotOurs(format!(
                    "link {} (index {}) in namespace {} left in place: {why}, so nothing shows the link is the one it made rather than another tool's",
                    link.name,
                    link.index,
                    inside.label()
                )),
                None => LinkRemoval::Missing,
            }
        } else {
            endpoint_link::delete_checked(
                inside,
                self.ifindex,
                &self.ifname,
                master,
                self.mac.as_deref(),
            )?
        };
        Ok(match removal {
            LinkRemoval::NotOurs(why) => Some(why),
            LinkRemoval::Deleted | LinkRemoval::Missing => None,
        })
    }
}

/// Runs `detach`, the work of a detach that ends with the removal of
/// `endpoint`'s record, once `endpoint` (state `detaching`) is written as
/// its intent ([`Locked::put_detach_intent`]: into the commit log's page
/// when it can be). An intent in the page leaves it when `detach` is done
/// (the record is gone: left there, it would be passed over), or, when
/// `detach` fails, is first written over the record, as a detach without
/// the page leaves it.
pub(crate) fn under_detach_intent<T>(
    state: &Locked<'_>,
    endpoint: &EndpointRecord,
    detach: impl FnOnce() -> Result<T, Error>,
) -> Result<T, Error> {
    let in_page = state.put_detach_intent(endpoint)?;
    let detached = detach();
    if in_page {
        let _ = match &detached {
            Ok(_) => state.clear_single_intent(),
            Err(_) => state.keep_detach_intent(endpoint),
        };
    }
    detached
}

/// The network `name_or_id` as it is under the lock: the record of `found`
/// (what [`lookup_network_id`](super::networks::lookup_network_id) gave
/// without it, read again by id: the state may have changed meanwhile)
/// when it still answers to that name,
/// else the lookup among every network again. Reading every record under
/// the lock cost a read per network on every connect. A network left
/// half-removed takes no endpoint ([`joinable`]).
fn locked_network(
    state: &Locked<'_>,
    name_or_id: &str,
    found: &str,
) -> Result<NetworkRecord, Error> {
    if let Some(network) = state.network(found)?.filter(|network| {
        network.state != NetworkState::Creating
            && (network.name == name_or_id || network.id == name_or_id)
    }) {
        joinable(&network)?;
        return Ok(network);
    }
    find_network_to_join(&state.networks()?, name_or_id).cloned()
}

/// Checks the store's `hosts/` directory, which the names are written in
/// after the kernel changed: a refused one must stop the command before
/// anything changes. The check opens it for that later write, so it costs
/// nothing.
pub(crate) fn check_hosts_dir(state: &Locked<'_>, network: &NetworkRecord) -> Result<(), Error> {
    if let Some(dir) = state.hosts_path(&network.id).parent() {
        state.check_dir(dir)?;
    }
    Ok(())
}

/// The namespace an endpoint's link is in, when it is the one attached;
/// [`NsAt::Gone`] when the record names no link (killed before one was
/// named), so nothing is opened for it.
///
/// Without cookies, another namespace may have our inode number since:
/// only the link's own checks ([`LinkToRemove::remove`]: its index, kind,
/// parent and MAC address) keep what is there, which no create of ours
/// changes. `restore`, which makes links, asks more.
pub(crate) fn locate(endpoint: &EndpointRecord) -> Result<NsAt, Error> {
    if endpoint.ifindex.is_none() && endpoint.ifname.is_empty() {
        return Ok(NsAt::Gone);
    }
    netns_identity::open_endpoint_netns(endpoint)
}

fn no_ipv6_subnet(network: &NetworkRecord) -> Error {
    Error::invalid(format!(
        "network {} has no IPv6 subnet: --ip6 cannot be used (create it with --ipv6)",
        network.name
    ))
}

/// The addresses `req` asks for, refused as the attach refuses them (a
/// family the network lacks, an address in none of its subnets or outside
/// its CNI ranges, reserved, taken) without taking any: for `run`, which
/// must refuse them before it makes its namespace. The attach checks them
/// again, under the same lock.
pub(crate) fn check_requested_addresses(
    state: &Locked<'_>,
    network: &NetworkRecord,
    req: &AttachRequest,
) -> Result<(), Error> {
    if req.ipv6.is_some() && !network.ipv6 {
        return Err(no_ipv6_subnet(network));
    }
    let bounds = super::bounds::record_bounds(network);
    let asked = [req.ipv4.map(IpAddr::V4), req.ipv6.map(IpAddr::V6)];
    for address in asked.into_iter().flatten() {
        if let Some(error) = super::bounds::outside_bounds(&bounds, address) {
            return Err(error);
        }
        let spec = crate::ipam::exact_spec(&network.subnets, address)?;
        if state.address_taken(&network.id, spec, address)? {
            return Err(crate::ipam::IpamError::AddressInUse { address }.into());
        }
    }
    Ok(())
}

/// Takes the endpoint's addresses: the ones asked for first (they move no
/// cursor, so a refused one leaves the address state exactly as it was),
/// then automatic ones. On failure nothing stays taken.
fn allocate(
    state: &Locked<'_>,
    network: &NetworkRecord,
    req: &AttachRequest,
    owner: &str,
) -> Result<(IpNet, Option<IpNet>), Error> {
    let mut requests = vec![req.ipv4.map_or(Request::Any(IpFamily::V4), |a| {
        Request::Exact(IpAddr::V4(a))
    })];
    if network.ipv6 {
        requests.push(req.ipv6.map_or(Request::Any(IpFamily::V6), |a| {
            Request::Exact(IpAddr::V6(a))
        }));
    }
    crate::order::sort_by(&mut requests, |a, b| {
        let exact = |r: &Request| matches!(r, Request::Exact(_));
        exact(b).cmp(&exact(a))
    });
    let mut taken: Vec<IpNet> = Vec::new();
    let give_back = |taken: &[IpNet]| {
        for address in taken {
            let _ = state.release(network, address.addr());
        }
    };
    // A network CNI made keeps its ADDs' `rangeStart`-`rangeEnd` for us
    // too (several hosts may share its subnet, each with its range).
    let bounds = super::bounds::record_bounds(network);
    for request in requests {
        let got = match request {
            Request::Exact(address) => match super::bounds::outside_bounds(&bounds, address) {
                Some(error) => Err(error),
                None => state.allocate(network, request, owner).map_err(Error::from),
            },
            Request::Any(family) if !bounds.is_empty() => {
                super::bounds::allocate_within(state, network, family, owner, &bounds)
            }
            Request::Any(_) => state.allocate(network, request, owner).map_err(Error::from),
        };
        match got {
            Ok(address) => taken.push(address),
            Err(error) => {
                give_back(&taken);
                return Err(error);
            }
        }
    }
    let ipv4 = taken.iter().copied().find(|a| matches!(a, IpNet::V4(_)));
    let ipv6 = taken.iter().copied().find(|a| matches!(a, IpNet::V6(_)));
    match ipv4 {
        Some(ipv4) => Ok((ipv4, ipv6)),
        None => {
            give_back(&taken);
            Err(Error::failed("no IPv4 address allocated"))
        }
    }
}

/// A detach's target before the lock: its path, its container, the
/// namespace there now (if any) and why it cannot be detached by that path
/// (if so).
pub(crate) struct DetachPlace {
    path: PathBuf,
    container: Option<String>,
    opened: Option<Placed>,
    refusal: Option<Error>,
}

/// The namespace found at a detach's target.
pub(crate) enum Placed {
    /// Opened, with its handle, and identified.
    Ready(OpenNetns, NetnsId),
    /// Opened before the lock, entered under it ([`Placed::entered`]).
    Unentered(crate::netns::Netns, netns::Entry),
}

impl Placed {
    /// `open`, identified.
    fn ready(open: OpenNetns) -> Result<Placed, Error> {
        let identity = open.identity()?;
        Ok(Placed::Ready(open, identity))
    }

    /// Under the lock: the namespace (found at `path`) opened before it
    /// entered, its handle opened inside, and it identified. An `rm -f` of
    /// its container finds the processes to kill under the lock: a thread
    /// visiting before it was one of them to it (the whole program killed).
    fn entered(self, path: &Path) -> Result<(OpenNetns, NetnsId), Error> {
        let (ns, entry) = match self {
            Placed::Ready(open, identity) => return Ok((open, identity)),
            Placed::Unentered(ns, entry) => (ns, entry),
        };
        // Only another kind of namespace is the outer error (refused as
        // opening it refuses it); entering otherwise failed is the inner.
        let open = OpenNetns::enter_opened(ns, entry, path, false).map_err(|error| {
            let found = netns::not_a_namespace(&error);
            found.map_or_else(
                || Error::io("entering a namespace", &error),
                |found| Error::invalid(found.to_string()),
            )
        })??;
        let identity = open.identity()?;
        Ok((open, identity))
    }
}

/// Where [`Manager::reserve`] puts an endpoint's intent record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intent {
    /// A record of its own, made in place, before `reserve` returns; or,
    /// when the store has a commit log, in its volatile page
    /// ([`Locked::put_single_intent`]), which `reserve` then says
    /// ([`Intent::InLog`]).
    OwnRecord,
    /// In the commit log's volatile page: the final record is made in
    /// place, and an attach given up takes the intent out of the page
    /// before its records go.
    InLog,
    /// None yet: the batch writes the intents of all its endpoints in
    /// one file ([`Locked::put_batch_intents`]) before its first create.
    InBatch,
}

/// An attach between [`Manager::reserve`] and its end: what it holds, so
/// that a failure anywhere gives all of it back.
pub(crate) struct Pending {
    /// The intent record (`attaching`), the endpoint's record once built.
    pub(crate) record: EndpointRecord,
    /// The container's index, with this endpoint's entry added.
    /// Boxed: a batch holds a thousand pending endpoints, which have let
    /// it go (48 bytes each inline).
    index: Option<Box<ContainerIndex>>,
    /// Whether the index was let go ([`Pending::shed_index`]) after its
    /// entry was added: it is read again where it is needed.
    indexed: bool,
    /// Whether that index, when let go, filed this endpoint only (the
    /// container was on no other network): it is then made again from
    /// the record where it is needed, not read.
    indexed_alone: bool,
    /// Whether the record's `ifname` was chosen without asking the kernel
    /// (see [`Manager::reserve`]): should the create find it taken, a free
    /// one is asked for and recorded before the next create.
    name_guessed: bool,
    /// Where its intent was written.
    intent: Intent,
}

impl Pending {
    /// Lets the container's index go, to be read again when the names are
    /// added or the entry taken out: a batch holds a thousand pending
    /// endpoints, and an index is about 200 bytes of them.
    pub(crate) fn shed_index(&mut self) {
        if let Some(index) = self.index.take() {
            self.indexed = true;
            self.indexed_alone = index.len() == 1;
        }
    }

    /// Whether the record's `ifname` was chosen without asking the kernel
    /// (see [`Manager::reserve`]).
    pub(crate) fn name_guessed(&self) -> bool {
        self.name_guessed
    }

    /// What the kernel is asked to build, made when it is asked: a batch
    /// holds a thousand of these to its end, and the plan is not needed
    /// past the create.
    pub(crate) fn plan(&self, network: &NetworkRecord, parent: &Link) -> EndpointPlan {
        let ipv4 = self.record.ipv4.expect("reserve takes an IPv4 address");
        EndpointPlan::new(network, parent, ipv4, self.record.ipv6)
    }

    /// Creates the endpoint's link in `inside` under the recorded name,
    /// asking for the recorded index; a guessed name found taken is
    /// replaced by a free one, and any index refused by another, each
    /// recorded before the create that asks for it, so restore always
    /// reads the index of the link that may exist. On failure nothing of
    /// it is in the kernel.
    pub(crate) fn build(
        &mut self,
        state: &Locked<'_>,
        host: &Handle,
        network: &NetworkRecord,
        parent: &Link,
        inside: &OpenNetns,
    ) -> Result<BuiltEndpoint, Error> {
        let plan = self.plan(network, parent);
        let mut index = self
            .record
            .ifindex
            .expect("reserve names the index of the first create");
        let mut ifname = self.record.ifname.clone();
        if self.name_guessed {
            let record = &mut self.record;
            let mut rerecord = |index: Option<u32>| -> Result<(), Error> {
                record.ifindex = index;
                Ok(state.put_endpoint(record)?)
            };
            if let Some(built) =
                endpoint_link::create_guessed(host, inside, &plan, &ifname, index, &mut rerecord)?
            {
                return Ok(built);
            }
            ifname = endpoint_link::free_ifname(inside)?;
            // A fresh index too: the refused one may be another link's.
            index = endpoint_link::chosen_index()?;
            self.record.ifname = ifname.clone();
            self.record.ifindex = Some(index);
            state.put_endpoint(&self.record)?;
        }
        let record = &mut self.record;
        let mut rerecord = |index: Option<u32>| -> Result<(), Error> {
            record.ifindex = index;
            Ok(state.put_endpoint(record)?)
        };
        endpoint_link::create(host, inside, &plan, &ifname, index, &mut rerecord)
    }

    /// Records the built link (state `attached`) and adds the endpoint's
    /// names. On failure the caller calls [`Pending::undo_built`].
    pub(crate) fn finish(
        &mut self,
        state: &Locked<'_>,
        names: &Names<'_>,
        network: &NetworkRecord,
        built: &BuiltEndpoint,
    ) -> Result<(), Error> {
        self.record_built(state, built, self.intent)?;
        names.add(network, &self.record, self.index.as_deref())
    }

    /// The first half of [`Pending::finish`], for a batch, which adds the
    /// names of all its endpoints together ([`Names::append`], then
    /// [`Pending::add_view`] for each): the built link recorded (state
    /// `attached`).
    /// `intent`: where its intent was written; a batch's endpoint has no
    /// record yet (unless a retried create gave it one), so its final
    /// record is made in place ([`Locked::put_new_endpoint`], which
    /// replaces one found there after all).
    pub(crate) fn record_built(
        &mut self,
        state: &Locked<'_>,
        built: &BuiltEndpoint,
        intent: Intent,
    ) -> Result<(), Error> {
        self.record.ifname = built.ifname.clone();
        self.record.mac = Some(built.mac.clone());
        self.record.ifindex = Some(built.index);
        self.record.state = EndpointState::Attached;
        match intent {
            Intent::InBatch => state.put_new_endpoint(&self.record)?,
            _ => state.put_attached_endpoint(&self.record, intent == Intent::InLog)?,
        }
        Ok(())
    }

    /// The endpoint's container's name view ([`Names::add_view`]), once
    /// its names are in its network's file; the index let go by
    /// [`Pending::shed_index`] made again without a read when it filed
    /// this endpoint only.
    pub(crate) fn add_view(&self, names: &Names<'_>, network: &NetworkRecord) -> Result<(), Error> {
        let made;
        let index = match (self.index.as_deref(), &self.record.container) {
            (None, Some(container)) if self.indexed_alone => {
                made = ContainerIndex::of_one(container, &network.id, &self.record.id);
                Some(&made)
            }
            (index, _) => index,
        };
        names.add_view(&self.record, index)
    }

    /// Undoes an attach whose link was built: the link (when it is still
    /// ours), the names, then all [`Pending::abandon`] gives back. A link
    /// the kernel would not delete keeps its `detaching` record and its
    /// addresses, for `restore` to finish: given back, they would leave a
    /// link no record names and its address to the next container.
    pub(crate) fn undo_built(
        mut self,
        state: &Locked<'_>,
        names: &Names<'_>,
        network: &NetworkRecord,
        parent: &Link,
        inside: &OpenNetns,
    ) {
        if self.undo_from_the_kernel(state, names, network, parent, inside) {
            self.abandon(state, network);
        } else if self.intent == Intent::InLog {
            // The `detaching` record stands for it now.
            let _ = state.clear_single_intent();
        }
    }

    /// The first half of [`Pending::undo_built`]: the endpoint's record
    /// `detaching`, its link (when it is still ours) and its names, not
    /// yet what [`Pending::abandon`] gives back. A batch undoes every
    /// endpoint this far, removes its `batch-intents`, and only then
    /// gives back: each endpoint keeps a record of its own (the
    /// `detaching` one) for as long as that file may bring back its
    /// intent, whose index may be one a retried create found another
    /// link's. Returns whether the link is out of the kernel (deleted,
    /// gone, or another's at its place): when not, the endpoint must keep
    /// its record and addresses.
    pub(crate) fn undo_from_the_kernel(
        &mut self,
        state: &Locked<'_>,
        names: &Names<'_>,
        network: &NetworkRecord,
        parent: &Link,
        inside: &OpenNetns,
    ) -> bool {
        // Leaving, on disk before the kernel is touched, as a disconnect
        // does: killed from here on, restore finishes the undo rather than
        // re-making the link of an `attached` record. Its names are then
        // worked out without it (as `attached`, a view made for it would
        // be made again rather than taken away).
        self.record.state = EndpointState::Detaching;
        let recorded = state.put_endpoint(&self.record).is_ok();
        let deleted = endpoint_link::delete_checked(
            inside,
            self.record.ifindex,
            &self.record.ifname,
            endpoint_link::Master::Host(Some(parent)),
            self.record.mac.as_deref(),
        )
        .is_ok();
        let _ = names.remove(network, &self.record);
        // Not deleted and not recorded `detaching`: given back all the
        // same, as nothing could keep it for `restore`.
        deleted || !recorded
    }

    /// Undoes an attach whose build failed: what [`Pending::abandon`]
    /// gives back, unless its link still stands at the index its intent
    /// names (made, then not configured, and the kernel refused its
    /// delete): then the endpoint keeps a `detaching` record and its
    /// addresses for `restore`. One lookup, on this failure path only.
    pub(crate) fn undo_unbuilt(
        mut self,
        state: &Locked<'_>,
        network: &NetworkRecord,
        parent: &Link,
        inside: &OpenNetns,
    ) -> bool {
        let stays = self.record.ifindex.is_some_and(|index| {
            endpoint_link::left_standing(inside, index, &self.record.ifname, parent, false)
        });
        let in_log = self.intent == Intent::InLog;
        if stays && keep_for_restore(state, &mut self.record, in_log) {
            return false;
        }
        self.abandon(state, network)
    }

    /// Gives back what [`Manager::reserve`] took: the intent record, the
    /// index entry, the addresses. Nothing of it is in the kernel.
    pub(crate) fn abandon(mut self, state: &Locked<'_>, network: &NetworkRecord) -> bool {
        // The intent in the log's page first: brought back after its
        // record went, it would name an index a retried create may have
        // found another link's. Not taken out (the page could not be
        // written), everything is left for `restore`.
        if self.intent == Intent::InLog && state.clear_single_intent().is_err() {
            return false;
        }
        let removed = state.remove_endpoint(&self.record.network_id, &self.record.id);
        if let Some(index) = self.index.as_deref_mut() {
            let _ = index.remove(state, &network.id, &self.record.id);
        } else if let (true, Some(name)) = (self.indexed, &self.record.container) {
            let _ = ContainerIndex::read(state, name)
                .and_then(|mut index| index.remove(state, &network.id, &self.record.id));
        }
        for address in self.record.ipv4.iter().chain(self.record.ipv6.iter()) {
            let _ = state.release(network, address.addr());
        }
        removed.is_ok()
    }
}

/// Keeps an endpoint whose link the kernel would not delete for `restore`
/// to finish: its record `detaching`, its addresses still its; with
/// `in_log`, its intent taken out of the commit log's page (the record
/// stands for it). Whether the record was written: when not, nothing can
/// keep it, and the caller gives it back all the same.
pub(crate) fn keep_for_restore(
    state: &Locked<'_>,
    record: &mut EndpointRecord,
    in_log: bool,
) -> bool {
    record.state = EndpointState::Detaching;
    let kept = state.put_endpoint(record).is_ok();
    if kept && in_log {
        let _ = state.clear_single_intent();
    }
    kept
}

/// The network's parent link in the host, which must exist, for an attach
/// of ours (`network connect`, `run`, the library's): a CNI network takes
/// one only when its master is in the host and its addresses come from
/// our allocator.
fn parent_link(host: &Handle, network: &NetworkRecord) -> Result<Link, Error> {
    if super::options::made_by_cni(network) && network.subnets.is_empty() {
        return Err(Error::invalid(format!(
            "network {} takes its addresses from its CNI config's IPAM plugin (or a chained plugin's result), not from ipvlan: only its CNI plugin attaches to it",
            network.name
        )));
    }
    if network.parent.is_empty() {
        return Err(Error::invalid(format!(
            "network {} has no master in the host (a CNI network that serves leases only, or whose links sit on a master in each container): only its CNI plugin attaches to it",
            network.name
        )));
    }
    host.link_by_name(&network.parent)?.ok_or_else(|| {
        // Ours missing is made again by the caller (and by `restore`);
        // one we did not make, `restore` only reports.
        let remedy = match network.parent_origin {
            crate::store::ParentOrigin::Existing => {
                "ipvlan did not make it (it was there when the network was created): make it again as it was made (ip link add, the host's network configuration), or remove the network"
            }
            _ => "`ipvlan restore` makes it again",
        };
        Error::not_found(format!(
            "parent interface {} of network {} does not exist; {remedy}",
            network.parent, network.name
        ))
    })
}

/// [`parent_link`]'s link; `None` where the parent is a dummy or a
/// `NAME.VLANID` we made and it is missing, for
/// [`Manager::parent_remade`] to make again once the attach's refusals
/// are behind it.
pub(crate) fn parent_link_unless_ours_missing(
    host: &Handle,
    network: &NetworkRecord,
) -> Result<Option<Link>, Error> {
    match parent_link(host, network) {
        Err(error)
            if error.kind() == super::ErrorKind::NotFound
                && matches!(
                    network.parent_origin,
                    crate::store::ParentOrigin::DummyCreated
                        | crate::store::ParentOrigin::VlanCreated { .. }
                ) =>
        {
            Ok(None)
        }
        found => found.map(Some),
    }
}

impl Manager {
    /// The parent [`parent_link_unless_ours_missing`] found, or, where it
    /// found ours missing, that parent made again, as `restore` makes it:
    /// after a reboot whose `restore` ran before the VLAN's base came up
    /// (or did not run), an attach makes it rather than fail until
    /// someone runs `restore`.
    pub(crate) fn parent_remade(
        &self,
        host: &Handle,
        state: &Locked<'_>,
        network: &NetworkRecord,
        found: Option<Link>,
    ) -> Result<Link, Error> {
        if let Some(link) = found {
            return Ok(link);
        }
        let mut report = super::report::RestoreReport::default();
        let netns_dir = &self.config.netns_dir;
        match super::parent::restore(host, netns_dir, state, network, &mut report)? {
            Some(link) => Ok(link),
            None => Err(Error::not_found(format!(
                "parent interface {} of network {} does not exist, and cannot be made again: {}",
                network.parent,
                network.name,
                report.parents_missing.join("; ")
            ))),
        }
    }
}

/// A target opened and checked before the lock, entered under it
/// ([`Manager::open_target_for_entry`], [`Manager::enter_opened`]).
struct OpenedTarget {
    target: Target,
    path: PathBuf,
    container: Option<String>,
    ns: crate::netns::Netns,
    entry: crate::netns::Entry,
}

/// The message for a target that is gone: by its container's name, else
/// by what was given.
fn target_missing<'a>(
    target: &'a Target,
    container: &'a Option<String>,
) -> impl FnOnce() -> String + 'a {
    move || match container {
        Some(name) => format!("container {name} not found"),
        None => format!("network namespace {} not found", target.label()),
    }
}
