//! Which namespace an endpoint lives in: a namespace opened for one
//! operation together with the one netlink handle used in it, its identity
//! (the nsfs file id and the cookie, which no later namespace ever gets),
//! what sits at a recorded path now, and which endpoint record belongs to
//! a namespace or a container name.
//!
//! An endpoint's record is filed under an id made from the identity of the
//! namespace attached ([`NetnsId::endpoint_id`]), never from a path or a
//! name: one namespace maps to one record file per network, whatever path
//! or name it was given by, so a second attach of it is found with one
//! read. Container names, the handle users type, map to those ids through
//! a small index per container ([`ContainerIndex`]), which also keeps a
//! name on one network to one endpoint. Records written before (ids that
//! are container names, or `path_` and the path's text) are still found
//! under those ids.

use std::num::NonZeroU64;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use super::Error;
use crate::json::Value;
use crate::netns::{self, Netns};
use crate::rtnl::Handle;
use crate::store::records::{network_key, NetnsId, NETWORK_KEY_LEN};
use crate::store::{
    is_valid_name, ContainerRecord, EndpointRecord, Locked, StateDir, StoreError, StoredEntry,
    DERIVED_LINK_MAX, RECORD_VERSION,
};

/// A namespace opened for one operation, with its netlink handle: every
/// request of that operation inside the namespace goes through it.
#[derive(Debug)]
pub(crate) struct OpenNetns {
    pub ns: Netns,
    pub handle: Handle,
    /// The calling thread, kept inside since the handle's socket was
    /// opened, until the link's settings are written (see
    /// [`OpenNetns::with_handle_staying`]); dropped with it at the latest.
    visit: std::cell::RefCell<Option<netns::Visit>>,
}

impl OpenNetns {
    /// A handle inside `ns`.
    pub(crate) fn with_handle(ns: Netns) -> Result<OpenNetns, Error> {
        let handle = Handle::in_netns(&ns)?;
        Ok(OpenNetns {
            ns,
            handle,
            visit: std::cell::RefCell::new(None),
        })
    }

    /// A handle inside `ns`, which the calling thread entered (`visit`)
    /// and stays in until the endpoint's link settings are written
    /// ([`OpenNetns::take_visit`]) or this is dropped: one visit of the
    /// namespace per attach instead of two. Meanwhile the thread must open
    /// no socket and read nothing of `/proc/net` or `/proc/sys/net` (they
    /// would be the target's): the host's handle is opened before, the
    /// store and `/etc/netns` are paths and descriptors the network
    /// namespace does not change.
    pub(crate) fn with_handle_staying(ns: Netns, visit: netns::Visit) -> Result<OpenNetns, Error> {
        let handle = Handle::inside(&ns, &visit)?;
        Ok(OpenNetns {
            ns,
            handle,
            visit: std::cell::RefCell::new(Some(visit)),
        })
    }

    /// A handle inside `ns`, opened by a thread that is there already
    /// (`visit`), without another visit.
    pub(crate) fn with_handle_inside(ns: Netns, visit: &netns::Visit) -> Result<OpenNetns, Error> {
        let handle = Handle::inside(&ns, visit)?;
        Ok(OpenNetns {
            ns,
            handle,
            visit: std::cell::RefCell::new(None),
        })
    }

    /// The namespace at `path`, opened as [`Netns::open_path`] opens it
    /// (the same refusals and errors: the outer result), with its handle
    /// (the inner one) opened in the same visit: one system call fewer
    /// than [`Netns::open_path`] and [`OpenNetns::with_handle`] (see
    /// [`netns::Visit::open_and_enter`]).
    pub(crate) fn open_path(path: &Path) -> std::io::Result<Result<OpenNetns, Error>> {
        OpenNetns::open_path_and_stay(path, false, None)
    }

    /// [`OpenNetns::open_path`], the thread staying inside as
    /// [`OpenNetns::with_handle_staying`] has it (`stay`), with the same
    /// rules until the visit ends: two visits made one. `host`, when
    /// given, a socket of the calling thread's namespace, tells that
    /// namespace (the way back).
    pub(crate) fn open_path_and_stay(
        path: &Path,
        stay: bool,
        host: Option<BorrowedFd<'_>>,
    ) -> std::io::Result<Result<OpenNetns, Error>> {
        let (ns, entry) = netns::Visit::open_at_once_told(path, host)?;
        match entry {
            Some(entry) => OpenNetns::enter_opened(ns, entry, path, stay),
            // The caller's own: nothing to enter.
            None => Ok(OpenNetns::with_handle(ns)),
        }
    }

    /// The second half of [`OpenNetns::open_path_and_stay`]: `ns`, opened
    /// from `path` with `entry` ([`netns::Visit::open_at_once_told`]),
    /// entered and its handle opened inside, with the same errors; the
    /// two halves apart let a caller wait (for a lock) between them.
    pub(crate) fn enter_opened(
        ns: Netns,
        entry: netns::Entry,
        path: &Path,
        stay: bool,
    ) -> std::io::Result<Result<OpenNetns, Error>> {
        // Entering is work in the namespace, as the socket is: its failure
        // (a policy refusing setns, say) is the inner error, never taken
        // for a namespace that is gone.
        let visit = match entry.enter(&ns, path) {
            Ok(visit) => visit,
            // Another kind of namespace: refused as opening refuses it.
            Err(error) if netns::not_a_namespace(&error).is_some() => return Err(error),
            Err(error) => {
                return Ok(Err(Error::io(
                    format_args!("entering network namespace {}", path.display()),
                    &error,
                )))
            }
        };
        Ok(Handle::inside(&ns, &visit)
            .map_err(Error::from)
            .map(|handle| OpenNetns {
                ns,
                handle,
                visit: std::cell::RefCell::new(stay.then_some(visit)),
            }))
    }

    /// [`OpenNetns::open_path`] for a caller opening many namespaces from
    /// its own, `home` ([`Netns::current`], opened once): the same
    /// refusals and errors, three system calls fewer each (see
    /// [`open_target_from`]).
    pub(crate) fn open_path_from(
        path: &Path,
        home: &Netns,
    ) -> std::io::Result<Result<OpenNetns, Error>> {
        let ns = Netns::open_path_from(path, home)?;
        if ns.is_openers_own() {
            return Ok(OpenNetns::with_handle(ns));
        }
        let handle = match Handle::in_netns_from(home, &ns) {
            Ok(handle) => handle.map_err(Error::from),
            // Another kind of namespace: refused as opening refuses it.
            Err(error) if netns::not_a_namespace(&error).is_some() => return Err(error),
            Err(error) => Err(Error::io(
                format_args!("entering network namespace {}", path.display()),
                &error,
            )),
        };
        Ok(handle.map(|handle| OpenNetns {
            ns,
            handle,
            visit: std::cell::RefCell::new(None),
        }))
    }

    /// Keeps `visit` (of this namespace, which the calling thread is in)
    /// going until the endpoint's link settings are written, as
    /// [`OpenNetns::with_handle_staying`] does.
    pub(crate) fn keep_visit(&self, visit: netns::Visit) {
        *self.visit.borrow_mut() = Some(visit);
    }

    /// The visit [`OpenNetns::with_handle_staying`] began, if it goes on:
    /// the caller ends it (by dropping it) once its inside work is done.
    pub(crate) fn take_visit(&self) -> Option<netns::Visit> {
        self.visit.borrow_mut().take()
    }

    /// The namespace and its handle, to be used on another thread
    /// ([`OpenNetns::from_parts`] there); refused while the calling thread
    /// is held inside ([`OpenNetns::with_handle_staying`]): that visit can
    /// only end on this thread.
    pub(crate) fn into_parts(self) -> Result<(Netns, Handle), Error> {
        if self.visit.borrow().is_some() {
            return Err(Error::failed(format!(
                "namespace {} is held by this thread",
                self.label()
            )));
        }
        Ok((self.ns, self.handle))
    }

    /// A namespace and its handle taken apart by [`OpenNetns::into_parts`].
    pub(crate) fn from_parts(ns: Netns, handle: Handle) -> OpenNetns {
        OpenNetns {
            ns,
            handle,
            visit: std::cell::RefCell::new(None),
        }
    }

    /// The namespace's name or path, for messages.
    pub(crate) fn label(&self) -> &str {
        self.ns.label()
    }

    /// Its identity: nsfs file id, cookie, and the boot.
    pub(crate) fn identity(&self) -> Result<NetnsId, Error> {
        let (dev, ino) = nsfs_file_id(&self.ns)?;
        // Cookies count from 1: none is 0.
        let cookie = self.cookie()?.and_then(std::num::NonZeroU64::new);
        Ok(NetnsId {
            dev,
            ino,
            cookie,
            boot: Some(this_boot_mark()?),
        })
    }

    /// When its nsfs inode was made ([`Netns::inode_time`]); `None` when
    /// its `fstat` fails (the identity is then told as without the time).
    pub(crate) fn inode_time(&self) -> Option<NonZeroU64> {
        self.ns.inode_time().ok().and_then(NonZeroU64::new)
    }

    fn cookie(&self) -> Result<Option<u64>, Error> {
        self.handle.socket().netns_cookie().map_err(|e| {
            Error::io(
                format_args!("reading the cookie of namespace {}", self.label()),
                &e,
            )
        })
    }

    /// The id this namespace gives the caller's own (the host's), if it
    /// gave it one: a link here whose `IFLA_LINK_NETNSID` is this id has
    /// its lower link in the host.
    pub(crate) fn host_nsid(&self, host: &Netns) -> Result<Option<i32>, Error> {
        Ok(self.handle.nsid_of(host.fd())?)
    }
}

/// The namespace `run` made for a container, as its record names it: its
/// identity and when its nsfs inode was made, which the mount at the
/// container's name keeps (see [`ContainerRecord::netns_inode_time`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Made {
    pub id: NetnsId,
    pub inode_time: Option<NonZeroU64>,
}

impl Made {
    /// What `record` says was made; `None` in records older than that.
    pub(crate) fn of(record: &ContainerRecord) -> Option<Made> {
        record.netns_id.map(|id| Made {
            id,
            inode_time: record.netns_inode_time,
        })
    }

    /// What the container `info` describes was made as (see [`Made::of`]).
    pub(crate) fn of_info(info: &super::ContainerInfo) -> Option<Made> {
        info.netns_id.map(|id| Made {
            id,
            inode_time: info.netns_inode_time,
        })
    }

    /// Whether `found`, opened at the container's name, is the namespace
    /// made. Its inode's time is read (an `fstat`) only where no cookie
    /// decides.
    pub(crate) fn is(&self, found: &OpenNetns) -> Result<bool, Error> {
        let identity = found.identity()?;
        let time = match (self.inode_time, self.id.cookie.zip(identity.cookie)) {
            (Some(_), None) => found.inode_time(),
            _ => None,
        };
        Ok(self
            .id
            .same_mounted_namespace(self.inode_time, &identity, time))
    }
}

/// Opens the namespace a caller named at `path` (absolute and normal, see
/// [`absolute`]). Refuses, before anything is entered: a path that is not
/// a network namespace (a FIFO, device or directory is not even opened, so
/// nothing blocks), and the caller's own namespace, where the networks'
/// parents live. `missing` is the message when nothing is there.
pub(crate) fn open_target(path: &Path, missing: impl FnOnce() -> String) -> Result<Netns, Error> {
    let ns = Netns::open_path(path).map_err(|error| opening_target(path, error, missing))?;
    refuse_own(path, &ns)?;
    Ok(ns)
}

/// [`open_target`] with its handle, for a caller opening many namespaces
/// from its own, `home` ([`Netns::current`], opened once): the same
/// refusals with the same messages, four system calls fewer per namespace
/// (no look at the caller's namespace, no question of the type, which
/// the move into it answers, no opening and closing of the way home).
pub(crate) fn open_target_from(
    path: &Path,
    home: &Netns,
    missing: impl FnOnce() -> String,
) -> Result<OpenNetns, Error> {
    let ns = match Netns::open_path_from(path, home) {
        Ok(ns) => ns,
        Err(error) => return Err(opening_target(path, error, missing)),
    };
    refuse_own(path, &ns)?;
    let handle = match Handle::in_netns_from(home, &ns) {
        Ok(handle) => handle?,
        Err(error) => return Err(opening_target(path, error, missing)),
    };
    Ok(OpenNetns {
        ns,
        handle,
        visit: std::cell::RefCell::new(None),
    })
}

/// [`open_target`], with the way in kept for [`enter_target`]: the same
/// refusals, with the same messages, and the visit's way home opened with
/// the checks. The thread stays in its own namespace until it enters.
/// `host`: a socket of the calling thread's namespace, which tells it.
pub(crate) fn open_target_for_entry(
    path: &Path,
    host: BorrowedFd<'_>,
    missing: impl FnOnce() -> String,
) -> Result<(Netns, netns::Entry), Error> {
    let (ns, entry) = netns::Visit::open_beside(path, host)
        .map_err(|error| opening_target(path, error, missing))?;
    refuse_own(path, &ns)?;
    match entry {
        Some(entry) => Ok((ns, entry)),
        None => Err(Error::failed(format!("{} was not entered", path.display()))),
    }
}

/// Moves the calling thread into `ns`, opened by [`open_target_for_entry`]
/// from `path`, until the visit is dropped (see
/// [`OpenNetns::with_handle_staying`]).
pub(crate) fn enter_target(
    ns: &Netns,
    entry: netns::Entry,
    path: &Path,
    missing: impl FnOnce() -> String,
) -> Result<netns::Visit, Error> {
    entry
        .enter(ns, path)
        .map_err(|error| opening_target(path, error, missing))
}

fn opening_target(path: &Path, error: std::io::Error, missing: impl FnOnce() -> String) -> Error {
    if let Some(refusal) = netns::not_a_namespace(&error) {
        Error::invalid(refusal.to_string())
    } else if is_gone(&error) {
        Error::not_found(missing())
    } else {
        Error::io(format_args!("opening namespace {}", path.display()), &error)
    }
}

/// Refuses the caller's own namespace, where the networks' parents live.
fn refuse_own(path: &Path, ns: &Netns) -> Result<(), Error> {
    if ns.is_openers_own() {
        return Err(Error::invalid(format!(
            "{} is the network namespace ipvlan itself runs in, where the networks' parent interfaces are; only another namespace can be attached",
            path.display()
        )));
    }
    Ok(())
}

/// What sits at the namespace file of one of our containers
/// (`<netns dir>/<name>`), see [`container_netns`].
#[derive(Debug)]
pub(crate) enum ContainerNetns {
    /// Nothing.
    Missing,
    /// An empty plain file: the mount point a create or delete was
    /// interrupted at, with no namespace bound to it; its `(st_dev,
    /// st_ino)`.
    Leftover((u64, u64)),
    /// The network namespace made for the container (or, for a record
    /// older than the namespace's identity, the one there, taken on
    /// trust), opened with a socket in it.
    Present(OpenNetns),
    /// Another network namespace at the container's name: ours was
    /// deleted and another tool put its own there (`ip netns del`, then
    /// `ip netns add` of the same name). Ours is gone; that one is theirs,
    /// never run in, killed in, unmounted or deleted.
    Replaced,
    /// The namespace made for the container, its name gone (`ip netns
    /// del` while a process in it still runs, perhaps another tool's
    /// namespace at the name since) but alive: found through a process in
    /// it ([`held_by_a_process`]), opened. Nothing of ours is at the name
    /// to unmount, but perhaps the empty mount point an unmount left at
    /// the name (`umount`, or `ip netns del` whose unlink failed): its
    /// `(st_dev, st_ino)`, removed with the container as a
    /// [`ContainerNetns::Leftover`] is.
    Unnamed(OpenNetns, Option<(u64, u64)>),
}

/// This boot as identities name it ([`crate::store::records::boot_mark`]).
fn this_boot_mark() -> Result<u32, Error> {
    let boot = crate::store::this_boot()
        .map_err(|e| Error::io("reading /proc/sys/kernel/random/boot_id", &e))?;
    Ok(crate::store::records::boot_mark(&boot))
}

/// Whether `made` was seen in another boot than this one.
fn made_in_another_boot(made: Option<NetnsId>) -> Result<bool, Error> {
    match made.and_then(|id| id.boot) {
        Some(boot) => Ok(boot != this_boot_mark()?),
        None => Ok(false),
    }
}

/// Looks at the namespace file of one of our containers before anything
/// is run in it, killed in it, unmounted or deleted. We only ever put a
/// plain file there with a network namespace bound to it; anything else
/// (a symbolic link, which `umount2` and `open` would follow elsewhere, a
/// FIFO, a directory, another kind of namespace, or the caller's own
/// namespace, whose processes are the host's) was put there by another
/// tool and is refused. So is a plain file with data in it (our mount
/// points, as iproute2's, are made empty). A namespace other than `made`
/// (the identity recorded for the container) is [`ContainerNetns::Replaced`].
pub(crate) fn container_netns(path: &Path, made: Option<Made>) -> Result<ContainerNetns, Error> {
    let made_id = made.map(|made| made.id);
    let not_ours = |what: String| {
        Error::failed(format!(
            "{what}; ipvlan did not make it and leaves it alone"
        ))
    };
    let opening = |error: &std::io::Error| {
        Error::io(format_args!("opening namespace {}", path.display()), error)
    };
    let seen = match std::fs::symlink_metadata(path) {
        Err(error) if is_gone(&error) => return missing_or_held(made_id),
        Err(error) => return Err(opening(&error)),
        // Made in another boot: ours went with it (no namespace outlives
        // a boot), so whatever is at the name now is another tool's, a
        // link or a FIFO as much as a namespace, and nothing is opened.
        Ok(_) if made_in_another_boot(made_id)? => return Ok(ContainerNetns::Replaced),
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(not_ours(format!("{} is a symbolic link", path.display())))
        }
        Ok(meta) => (meta.dev(), meta.ino(), meta.len()),
    };
    let ns = match Netns::open_path(path) {
        Ok(ns) => ns,
        Err(error) if is_gone(&error) => return missing_or_held(made_id),
        Err(error) => {
            return match netns::not_a_namespace(&error) {
                Some(refusal) if refusal.found == netns::FileKind::Regular => {
                    if seen.2 == 0 {
                        // Unmounted, not removed: the namespace may still
                        // run, held by a process, as with its name gone.
                        Ok(match held_by_a_process(made_id)? {
                            Some((open, _)) => {
                                ContainerNetns::Unnamed(open, Some((seen.0, seen.1)))
                            }
                            None => ContainerNetns::Leftover((seen.0, seen.1)),
                        })
                    } else {
                        Err(not_ours(format!(
                            "{} is a regular file with data in it, not the empty mount point of a namespace",
                            path.display()
                        )))
                    }
                }
                Some(refusal) => Err(not_ours(refusal.to_string())),
                None => Err(opening(&error)),
            };
        }
    };
    let opened = nsfs_file_id(&ns)?;
    // The open follows links: a link put there since the look is refused.
    if opened != (seen.0, seen.1) {
        return Err(not_ours(format!(
            "{} was replaced while ipvlan looked at it",
            path.display()
        )));
    }
    if ns.is_openers_own() {
        return Err(not_ours(format!(
            "{} is the network namespace ipvlan itself runs in, not a container's",
            path.display()
        )));
    }
    let open = OpenNetns::with_handle(ns)?;
    match made {
        // Another tool's at the name; ours may live on, held by a process.
        Some(made) if !made.is(&open)? => match held_by_a_process(Some(made.id))? {
            Some((ours, _)) => Ok(ContainerNetns::Unnamed(ours, None)),
            None => Ok(ContainerNetns::Replaced),
        },
        _ => Ok(ContainerNetns::Present(open)),
    }
}

/// [`ContainerNetns::Missing`], unless a process still holds the
/// namespace made for the container ([`ContainerNetns::Unnamed`]).
fn missing_or_held(made: Option<NetnsId>) -> Result<ContainerNetns, Error> {
    Ok(match held_by_a_process(made)? {
        Some((open, _)) => ContainerNetns::Unnamed(open, None),
        None => ContainerNetns::Missing,
    })
}

/// [`NsAt::Gone`], unless a process still holds the namespace `recorded`
/// names, which is then opened through it.
fn gone_or_held(recorded: Option<NetnsId>) -> Result<NsAt, Error> {
    Ok(match held_by_a_process(recorded)? {
        Some((open, identity)) => NsAt::Present(open, identity),
        None => NsAt::Gone,
    })
}

/// The namespace `recorded` names, alive though its path is gone or
/// leads elsewhere, because a process is in it: `ip netns del NAME` of a
/// container whose command still runs, the `/proc/PID/ns/net` of a
/// process that exited while its children run on. Its link still holds
/// its addresses on the parent, so it is not gone: taken for gone, its
/// addresses would be handed out again, and the kernel would refuse them
/// to the next container ("Address already assigned to an ipvlan
/// device"). Found by the nsfs inode its processes' `/proc/PID/ns/net`
/// names, then checked whole. Looked for only when `recorded` carries a
/// cookie (Linux 5.14): inodes are handed out again at once, and without
/// the path to anchor it an inode alone could lead to another
/// namespace, whose processes `rm -f` would kill; and only when it was
/// seen in this boot (none outlives one, so a restore at boot reads no
/// process). Only through processes in this one's PID namespace whose
/// `/proc/PID/ns/net` it may read, and their main threads: one held by a
/// descriptor, a bind mount elsewhere, a thread alone, or a process this
/// one may not trace (without CAP_SYS_PTRACE, under `hidepid=`: see
/// [`super::processes`]) is not found, and counts as gone. Unlike a
/// container's look for its processes (its namespace open, which places
/// every process by `/proc/PID/net`), this look has nothing to place those
/// by; refusing for them would refuse for good on a host whose init root
/// may not read (some sandboxes'). What that leaves: the addresses of a
/// namespace taken for gone are handed out again, and an attach given one
/// its link still holds passes over it (the kernel refuses it).
pub(crate) fn held_by_a_process(
    recorded: Option<NetnsId>,
) -> Result<Option<(OpenNetns, NetnsId)>, Error> {
    let Some(recorded) = recorded.filter(|r| r.cookie.is_some()) else {
        return Ok(None);
    };
    match recorded.boot {
        Some(boot) if boot == this_boot_mark()? => {}
        _ => return Ok(None),
    }
    for pid in super::processes::readable_processes_inside(recorded.ino) {
        let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
        // Exited meanwhile, or not ours to open: the next one.
        let Ok(Ok(open)) = OpenNetns::open_path(&path) else {
            continue;
        };
        let Ok(found) = open.identity() else {
            continue;
        };
        if found.cookie.is_some() && recorded.same_namespace(&found) && !open.ns.is_openers_own() {
            return Ok(Some((open, found)));
        }
    }
    Ok(None)
}

/// Whether an open failed because nothing is there (the name was
/// deleted, the process exited).
fn is_gone(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::ENOENT | libc::ESRCH))
}

/// What sits at an endpoint's recorded namespace path now.
#[derive(Debug)]
pub(crate) enum NsAt {
    /// The namespace attached, opened, with its identity.
    Present(OpenNetns, NetnsId),
    /// Nothing (ENOENT: the process exited, the name was deleted), or
    /// another namespace than the one attached (a reused PID, a name
    /// deleted and added again): ours is gone either way.
    Gone,
    /// A plain file or another kind of namespace, e.g. the empty mount
    /// point of `/run/netns/NAME` left by a process killed before its
    /// bind mount.
    NotANamespace,
}

/// Opens the namespace at `path` and tells whether it is the one recorded
/// (`recorded`: its identity at attach; `None` in records older than that,
/// taken on trust). Only a missing file (or process), a different
/// namespace and a plain file count as gone; any other failure is an
/// error, so a live namespace we cannot open now is never given up. A
/// FIFO, device or directory at the path is an error too, found without
/// opening it (no namespace was ever bound there, and opening a FIFO
/// would block).
pub(crate) fn open_recorded(path: &str, recorded: Option<NetnsId>) -> Result<NsAt, Error> {
    let open = match OpenNetns::open_path(Path::new(path)) {
        Ok(open) => open?,
        Err(error) if is_gone(&error) => return gone_or_held(recorded),
        Err(error) => {
            return match netns::not_a_namespace(&error) {
                // The empty mount point an unmount left (`umount`, or `ip
                // netns del` whose unlink failed): the namespace that was
                // bound there may still be held by a process.
                Some(refusal) if refusal.found.may_have_held_a_namespace() => {
                    Ok(match gone_or_held(recorded)? {
                        NsAt::Gone => NsAt::NotANamespace,
                        held => held,
                    })
                }
                Some(refusal) => Err(Error::invalid(refusal.to_string())),
                None => Err(Error::io(format_args!("opening namespace {path}"), &error)),
            };
        }
    };
    let identity = open.identity()?;
    match recorded {
        Some(recorded) if !recorded.same_namespace(&identity) => gone_or_held(Some(recorded)),
        // Taken on trust (a record older than identities), but never the
        // namespace ipvlan runs in: none is ever attached there (see
        // `refuse_own`), so the path leads elsewhere now (a reused pid's
        // `/proc/PID/ns/net`), and restore must not make the link there.
        None if open.ns.is_openers_own() => Ok(NsAt::Gone),
        _ => Ok(NsAt::Present(open, identity)),
    }
}

/// [`open_recorded`] for an endpoint's record. A relative path (only
/// records of older versions hold one, as it was typed) is an error, not
/// a namespace gone: what it names depends on the directory this runs in.
pub(crate) fn open_endpoint_netns(endpoint: &EndpointRecord) -> Result<NsAt, Error> {
    if !Path::new(&endpoint.netns).is_absolute() {
        return Err(Error::failed(format!(
            "the recorded namespace path {} is relative; disconnect it from the directory it was connected from",
            endpoint.netns
        )));
    }
    open_recorded(&endpoint.netns, endpoint.netns_id)
}

/// The names under `netns_dir` (sorted) of the namespace whose nsfs file
/// is `file_id` ([`Netns::file_id`]): a namespace reached by another path
/// (`/proc/PID/ns/net`, `/var/run/netns/NAME` through the `/var/run` link,
/// a bind mount elsewhere, a spelling with `..`) is still the container
/// of its name. One `lstat` a name: a name's file is a bind mount of the
/// namespace's (`lstat` looks through a mount, never a symbolic link), and
/// a plain file left there is not it.
pub(crate) fn names_of(netns_dir: &Path, file_id: (u64, u64)) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = crate::sys::list_dir(netns_dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .into_iter()
        .filter_map(|entry| {
            let meta = std::fs::symlink_metadata(netns_dir.join(entry.file_name())).ok()?;
            let name = String::from_utf8(entry.name).ok()?;
            (is_valid_name(&name) && (meta.dev(), meta.ino()) == file_id).then_some(name)
        })
        .collect();
    crate::order::sort(&mut names);
    names
}

/// `st_dev` and `st_ino` of an open namespace's nsfs file, stable for the
/// namespace's whole life and never shared by two living ones.
pub(crate) fn nsfs_file_id(ns: &Netns) -> Result<(u64, u64), Error> {
    // Read by the fstat that checked the file when it was opened.
    Ok(ns.file_id())
}

impl NsAt {
    /// The namespace, when it is the one attached.
    pub(crate) fn open(&self) -> Option<&OpenNetns> {
        match self {
            NsAt::Present(open, _) => Some(open),
            NsAt::Gone | NsAt::NotANamespace => None,
        }
    }
}

/// `path` made absolute against the current directory (see
/// [`normalise`]): what is recorded must name the same file whatever
/// directory a later command runs in. Refuses a path that
/// is not UTF-8, which a record could not hold as it is.
pub(crate) fn absolute(path: &Path) -> Result<PathBuf, Error> {
    if path.to_str().is_none() {
        return Err(Error::invalid(format!(
            "namespace path {} is not valid UTF-8",
            path.display()
        )));
    }
    let cwd = if path.is_absolute() {
        PathBuf::from("/")
    } else {
        std::env::current_dir().map_err(|e| Error::io("reading the current directory", &e))?
    };
    Ok(normalise(&cwd, path))
}

/// `path` joined to `cwd` (when relative): the file the kernel finds
/// from `cwd`, spelled without asking the file system. `.` and empty
/// components go; a `..` takes away a component of `cwd` (the kernel's
/// own spelling of the working directory, which holds no symbolic link)
/// and is nothing at the root, but after a component of `path` it stays:
/// that component may be a symbolic link, and `link/..` is the parent of
/// the link's target, not the directory holding the link. So
/// `/proc/self/...` stays as the caller wrote it too.
pub(crate) fn normalise(cwd: &Path, path: &Path) -> PathBuf {
    // Most paths come so already (`/run/netns/NAME`): taken as they are,
    // where walking their components cost some 2,500 instructions a path.
    match is_normal_absolute(path) {
        true => path.to_path_buf(),
        false => normalise_by_components(cwd, path),
    }
}

/// [`normalise`], component by component.
fn normalise_by_components(cwd: &Path, path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    // How many of `out`'s components are `cwd`'s, which a `..` may take,
    // and whether a component `path` gave follows them (then none may).
    let (mut of_cwd, mut written) = (0usize, false);
    let cwd_then_path =
        (cwd.components().map(|c| (c, false))).chain(path.components().map(|c| (c, true)));
    for (component, given) in cwd_then_path {
        match component {
            Component::RootDir => (out, of_cwd, written) = (PathBuf::from("/"), 0, false),
            Component::ParentDir if written => out.push(".."),
            Component::ParentDir if of_cwd > 0 => {
                out.pop();
                of_cwd -= 1;
            }
            Component::Normal(part) => {
                out.push(part);
                match given {
                    true => written = true,
                    false => of_cwd += 1,
                }
            }
            _ => {}
        }
    }
    out
}

/// Whether `path` is absolute and spelled as [`normalise`] spells it:
/// `/` alone, or `/` and components none of which is empty, `.` or `..`.
fn is_normal_absolute(path: &Path) -> bool {
    match path.as_os_str().as_encoded_bytes() {
        b"/" => true,
        [b'/', rest @ ..] => rest
            .split(|&byte| byte == b'/')
            .all(|part| !matches!(part, b"" | b"." | b"..")),
        _ => false,
    }
}

/// The ids older versions may have given an endpoint attached by the path
/// `typed`, whose normal form is `normal`: the typed text's, then the
/// normal form's when it differs. Each is one file looked up; a path typed
/// in its normal form (`/run/netns/c1`, the usual case) has one.
pub(crate) fn legacy_path_ids(typed: &Path, normal: &Path) -> Vec<String> {
    let mut ids = vec![legacy_path_id(typed)];
    let normal = legacy_path_id(normal);
    if normal != ids[0] {
        ids.push(normal);
    }
    ids
}

/// The id older versions gave an endpoint attached by path: its
/// characters kept where a file name allows them (so `/tmp/a b` and
/// `/tmp/a_b` shared one). Only looked up, never written.
pub(crate) fn legacy_path_id(path: &Path) -> String {
    let text = path.display().to_string();
    let cleaned: String = text
        .trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("path_{cleaned}")
}

/// The endpoint of network `network_id` recorded under `id`, if there is
/// one and `wanted` accepts it. An id that cannot be a record's (a legacy
/// id of a long path) has none.
pub(crate) fn endpoint_at(
    state: &StateDir,
    network_id: &str,
    id: &str,
    wanted: impl Fn(&EndpointRecord) -> bool,
) -> Result<Option<EndpointRecord>, Error> {
    endpoint_at_dyn(state, network_id, id, &wanted)
}

/// [`endpoint_at`] with `wanted` behind a `dyn`, so that one copy of the
/// read serves every caller.
#[inline(never)]
fn endpoint_at_dyn(
    state: &StateDir,
    network_id: &str,
    id: &str,
    wanted: &dyn Fn(&EndpointRecord) -> bool,
) -> Result<Option<EndpointRecord>, Error> {
    if !is_valid_name(id) {
        return Ok(None);
    }
    Ok(state.endpoint(network_id, id)?.filter(wanted))
}

/// The endpoint of network `network_id` attached to the namespace
/// `identity`, found by its id: one read.
pub(crate) fn endpoint_of_namespace(
    state: &StateDir,
    network_id: &str,
    identity: &NetnsId,
) -> Result<Option<EndpointRecord>, Error> {
    endpoint_at(state, network_id, &identity.endpoint_id(), |record| {
        record
            .netns_id
            .is_some_and(|recorded| recorded.same_namespace(identity))
    })
}

/// Where a container's endpoints are filed, network by network
/// (`records/container-endpoints/<name>.json`). Written before an
/// endpoint record and cleared after it goes, so an entry whose record
/// is missing is an interrupted attach or detach and counts for nothing.
/// Derived from the endpoint records, so never synced: `restore` rebuilds
/// it after a power cut ([`ContainerIndex::rebuild_all`]).
///
/// On disk a symbolic link whose target lists the entries,
/// `NETWORK:ENDPOINT` joined by `,` (ids never hold either), `NETWORK` the
/// first [`NETWORK_KEY_LEN`] digits of the network's id (its key), made
/// by one `symlinkat` and read by one `readlinkat`, never followed. An
/// attach's index was a new file, created, written and closed: on ext4
/// a link whose target is under 60 bytes (a container's usual one entry,
/// some 35) is held in its inode and costs less than half that, a longer
/// one a block of its own and nearly a file's cost. An index too long for
/// a link ([`DERIVED_LINK_MAX`]), or whose entries a link cannot name (a
/// network id without a key of hex digits, two networks of one key: stores
/// made by hand), is the JSON record older versions wrote with whole
/// network ids, read as before. So an entry's network is a key or a whole
/// id, and the two are compared by key ([`same_network`]).
#[derive(Debug, Default)]
pub(crate) struct ContainerIndex {
    container: String,
    /// `(network key or id, endpoint id)`.
    entries: Vec<(String, String)>,
    /// Read as missing under the lock and not written since: the first
    /// write makes it in place (one `symlinkat`, see
    /// [`Locked::put_derived_link`]).
    absent: bool,
}

/// The generic record kind of [`ContainerIndex`].
pub(crate) const CONTAINER_ENDPOINTS: &str = "container-endpoints";
/// Whether two networks named by id or by key are one.
pub(crate) fn same_network(a: &str, b: &str) -> bool {
    network_key(a) == network_key(b)
}

/// Whether an index link can name the entry of network key `key` and
/// endpoint `id`: a key of [`NETWORK_KEY_LEN`] hex digits, an id that is
/// a name (neither holds [`LINK_PAIR`] or [`LINK_ENTRY`]).
fn is_link_entry(key: &str, id: &str) -> bool {
    key.len() == NETWORK_KEY_LEN && key.bytes().all(|b| b.is_ascii_hexdigit()) && is_valid_name(id)
}

/// Joins an entry's network key to its endpoint id in an index link.
const LINK_PAIR: char = ':';
/// Joins the entries of an index link.
const LINK_ENTRY: char = ',';

impl ContainerIndex {
    /// Whether it names no endpoint (on any network).
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether it files an endpoint on network `network_id`.
    pub(crate) fn names_network(&self, network_id: &str) -> bool {
        self.entries
            .iter()
            .any(|(network, _)| same_network(network, network_id))
    }

    /// How many networks it files an endpoint on.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The index of `container`: empty when it has none, or one that
    /// cannot be read. The index is derived from the endpoint records and
    /// not synced (see the store's durability rules), so after a power cut
    /// it may be missing, empty or stale until `restore` rebuilds it
    /// ([`ContainerIndex::rebuild_all`]); meanwhile the container's
    /// endpoints it no longer names are not found by the container's name
    /// (a namespace path still finds them). A file the store refuses (a
    /// FIFO, a directory) is still an error: something else put it there;
    /// a link naming no entries this version writes is an unreadable index.
    pub(crate) fn read(state: &StateDir, container: &str) -> Result<ContainerIndex, Error> {
        let mut index = ContainerIndex {
            container: container.to_string(),
            entries: Vec::new(),
            absent: false,
        };
        let stored = match state.derived_entry(CONTAINER_ENDPOINTS, container) {
            Ok(Some(stored)) => stored,
            Ok(None) => {
                index.absent = true;
                return Ok(index);
            }
            Err(StoreError::Corrupt { .. }) => return Ok(index),
            Err(error) => return Err(error.into()),
        };
        index.entries = ContainerIndex::parse(&stored).unwrap_or_default();
        Ok(index)
    }

    /// What [`ContainerIndex::read`] returns for a container with no
    /// index file, for a caller whose listing showed none (a batch's, see
    /// `listed.rs`): nothing read.
    pub(crate) fn missing(container: &str) -> ContainerIndex {
        ContainerIndex {
            container: container.to_string(),
            entries: Vec::new(),
            absent: true,
        }
    }

    /// The index of `container` that files endpoint `id` on network
    /// `network_id` and nothing else, as written when its first endpoint
    /// was added: for a caller that let it go meanwhile (a batch), made
    /// again without a read.
    pub(crate) fn of_one(container: &str, network_id: &str, id: &str) -> ContainerIndex {
        ContainerIndex {
            container: container.to_string(),
            entries: vec![(network_id.to_string(), id.to_string())],
            absent: false,
        }
    }

    /// The `(network key or id, endpoint id)` entries of an index as stored (a
    /// link's target, or a record's text); `None` when it is not one this
    /// version writes.
    fn parse(stored: &StoredEntry) -> Option<Vec<(String, String)>> {
        match stored {
            StoredEntry::Link(target) => ContainerIndex::parse_link(target),
            StoredEntry::Text(text) => {
                ContainerIndex::parse_record(&crate::json::parse(text).ok()?)
            }
        }
    }

    /// The entries of an index link's target (see [`ContainerIndex`]):
    /// every id valid, no network twice, at least one entry.
    fn parse_link(target: &[u8]) -> Option<Vec<(String, String)>> {
        let mut entries: Vec<(String, String)> = Vec::new();
        for pair in std::str::from_utf8(target).ok()?.split(LINK_ENTRY) {
            let (network, id) = pair.split_once(LINK_PAIR)?;
            if !is_link_entry(network, id) || entries.iter().any(|(n, _)| n == network) {
                return None;
            }
            entries.push((network.to_string(), id.to_string()));
        }
        Some(entries)
    }

    /// The target of the index's link: its entries, in order; `None` when
    /// [`ContainerIndex::parse_link`] would not read it back whole (a
    /// network whose id has no key of hex digits, two of one key, an id
    /// that is no name: stores made or edited by hand) or it is too long
    /// for a link. The record holds those.
    fn link_target(&self) -> Option<String> {
        let mut target = String::with_capacity(self.entries.len() * 40);
        for (n, (network, id)) in self.entries.iter().enumerate() {
            let key = network_key(network);
            let taken = self.entries[..n]
                .iter()
                .any(|(other, _)| network_key(other) == key);
            if !is_link_entry(key, id) || taken {
                return None;
            }
            if !target.is_empty() {
                target.push(LINK_ENTRY);
            }
            target.push_str(key);
            target.push(LINK_PAIR);
            target.push_str(id);
        }
        (target.len() < DERIVED_LINK_MAX).then_some(target)
    }

    /// The entries of an index record of an older version (or one too
    /// long for a link); `None` when it is not one this version reads.
    fn parse_record(value: &Value) -> Option<Vec<(String, String)>> {
        if value.get("version").and_then(Value::as_u64) != Some(RECORD_VERSION) {
            return None;
        }
        let entries = value.get("endpoints")?.as_object()?.iter();
        // An entry whose ids are no names leads nowhere: dropped, so that
        // the next write does not carry it on.
        Some(
            entries
                .filter_map(|(network, id)| Some((network.clone(), id.as_str()?.to_string())))
                .filter(|(network, id)| is_valid_name(network) && is_valid_name(id))
                .collect(),
        )
    }

    /// The container's endpoint on network `network_id`: the one its
    /// index names, else one filed under the container's name (older
    /// versions). Either must still be the container's.
    pub(crate) fn endpoint(
        &self,
        state: &StateDir,
        network_id: &str,
    ) -> Result<Option<EndpointRecord>, Error> {
        self.endpoint_listed(state, network_id, None)
    }

    /// [`ContainerIndex::endpoint`], with the ids filed in the network
    /// when the caller listed them (`listed`): an older-format record is
    /// then read only when the listing holds the container's name, so a
    /// caller going through every container on every network (`ps`) makes
    /// one listing per network instead of one probe per pair.
    pub(crate) fn endpoint_listed(
        &self,
        state: &StateDir,
        network_id: &str,
        // Sorted, as [`StateDir::endpoint_ids`] returns them.
        listed: Option<&[String]>,
    ) -> Result<Option<EndpointRecord>, Error> {
        let ours = |record: &EndpointRecord| record.container.as_deref() == Some(&self.container);
        if let Some((_, id)) = self
            .entries
            .iter()
            .find(|(n, _)| same_network(n, network_id))
        {
            if let Some(record) = endpoint_at(state, network_id, id, ours)? {
                return Ok(Some(record));
            }
        }
        if state.by_identity_only()
            || listed.is_some_and(|ids| ids.binary_search(&self.container).is_err())
        {
            return Ok(None);
        }
        endpoint_at(state, network_id, &self.container, ours)
    }

    /// Files the container's endpoint `id` on network `network_id`.
    pub(crate) fn add(
        &mut self,
        state: &Locked<'_>,
        network_id: &str,
        id: &str,
    ) -> Result<(), Error> {
        self.entries.retain(|(n, _)| !same_network(n, network_id));
        self.entries.push((network_id.to_string(), id.to_string()));
        // A batch holds one index per target to its end: a first push
        // reserves room for four entries (192 bytes), a container has one
        // or two.
        self.entries.shrink_to_fit();
        self.write(state)?;
        self.absent = false;
        Ok(())
    }

    /// Takes out the entry of network `network_id` while it names `id`.
    pub(crate) fn remove(
        &mut self,
        state: &Locked<'_>,
        network_id: &str,
        id: &str,
    ) -> Result<(), Error> {
        let before = self.entries.len();
        self.entries
            .retain(|(n, i)| !(same_network(n, network_id) && i == id));
        if self.entries.len() == before {
            return Ok(());
        }
        self.write(state)
    }

    /// Names of the containers with an index, readable or not (one
    /// listing, none read).
    fn containers(state: &StateDir) -> Result<Vec<String>, Error> {
        let mut names = state.record_names(CONTAINER_ENDPOINTS)?;
        names.retain(|name| is_valid_name(name));
        Ok(names)
    }

    /// For `restore`: makes every container's index name exactly its
    /// endpoints that have a record (`endpoints`: every readable endpoint
    /// record), one per network, as a power cut may have lost, emptied or
    /// left behind index files (they are not synced) and a killed command
    /// may have left an entry without its record. An entry whose record
    /// exists but cannot be read is kept. Writes only an index that
    /// differs, so a second run changes nothing. Returns how many index
    /// files were rewritten or removed, and what failed, by container.
    pub(crate) fn rebuild_all(
        state: &Locked<'_>,
        endpoints: &[EndpointRecord],
    ) -> (usize, Vec<String>) {
        let mut errors = Vec::new();
        let mut names = match ContainerIndex::containers(state) {
            Ok(names) => names,
            Err(error) => {
                errors.push(error.to_string());
                Vec::new()
            }
        };
        names.extend(
            endpoints
                .iter()
                .filter_map(|e| e.container.clone())
                .filter(|name| is_valid_name(name)),
        );
        crate::order::sort(&mut names);
        names.dedup();
        // In the order they were made, as attaches add entries.
        let mut endpoints: Vec<&EndpointRecord> = endpoints.iter().collect();
        crate::order::sort_by(&mut endpoints, |a, b| {
            (a.created, &a.id).cmp(&(b.created, &b.id))
        });
        // An entry's key leads to these (whose records may be damaged).
        // Unlisted, no entry of a damaged record is kept.
        let network_ids = state.network_ids().unwrap_or_else(|error| {
            errors.push(error.to_string());
            Vec::new()
        });
        let mut rebuilt = 0;
        for name in names {
            match ContainerIndex::rebuild(state, &name, &endpoints, &network_ids) {
                Ok(true) => rebuilt += 1,
                Ok(false) => {}
                Err(error) => errors.push(format!("container {name}: {error}")),
            }
        }
        (rebuilt, errors)
    }

    /// [`ContainerIndex::rebuild_all`] for one container; whether its
    /// index file changed.
    fn rebuild(
        state: &Locked<'_>,
        container: &str,
        endpoints: &[&EndpointRecord],
        network_ids: &[String],
    ) -> Result<bool, Error> {
        // `None`: missing; `Some(None)`: there but not a well-formed index.
        let on_disk = match state.derived_entry(CONTAINER_ENDPOINTS, container) {
            Ok(None) => None,
            Ok(Some(stored)) => Some(ContainerIndex::parse(&stored)),
            Err(StoreError::Corrupt { .. }) => Some(None),
            Err(error) => return Err(error.into()),
        };
        // Compared by key: a record of an older version names whole ids.
        let by_key = |entries: &[(String, String)]| -> Vec<(String, String)> {
            entries
                .iter()
                .map(|(n, id)| (network_key(n).to_string(), id.clone()))
                .collect()
        };
        let named = by_key(&on_disk.clone().flatten().unwrap_or_default());
        let mut wanted: Vec<(String, String)> = Vec::new();
        // Oldest first: of two records of one network, the one the index
        // names stays, else the later one.
        for endpoint in endpoints
            .iter()
            .filter(|e| e.container.as_deref() == Some(container))
        {
            let key = network_key(&endpoint.network_id);
            let entry = (key.to_string(), endpoint.id.clone());
            match wanted.iter_mut().find(|(n, _)| n == key) {
                None => wanted.push(entry),
                Some(kept) if !named.contains(kept) => *kept = entry,
                Some(_) => {}
            }
        }
        for (key, id) in &named {
            let damaged = network_ids
                .iter()
                .filter(|n| same_network(n, key))
                .any(|n| {
                    matches!(
                        state.endpoint(n, id),
                        Err(StoreError::Corrupt { .. } | StoreError::Refused { .. })
                    )
                });
            if damaged && !wanted.iter().any(|(n, _)| n == key) {
                wanted.push((key.clone(), id.clone()));
            }
        }
        let unchanged = match &on_disk {
            None => wanted.is_empty(),
            Some(None) => false,
            Some(Some(_)) => {
                let mut have = named.clone();
                crate::order::sort(&mut have);
                let mut want = wanted.clone();
                crate::order::sort(&mut want);
                have == want
            }
        };
        if unchanged {
            return Ok(false);
        }
        let index = ContainerIndex {
            container: container.to_string(),
            entries: wanted,
            absent: false,
        };
        index.write(state)?;
        Ok(true)
    }

    /// The ids of the networks the index files an endpoint on, sorted:
    /// an entry's key resolved to one of `known` (ids the caller holds),
    /// else to the store's networks, listed once when first needed (an
    /// entry read from a link names its network by key; one added by this
    /// command, or read from a record, by its whole id).
    pub(crate) fn network_ids(
        &self,
        state: &StateDir,
        known: &[&str],
    ) -> Result<Vec<String>, Error> {
        let mut listed: Option<Vec<String>> = None;
        let mut ids: Vec<String> = Vec::with_capacity(self.entries.len());
        for (network, _) in &self.entries {
            if let Some(id) = known.iter().find(|id| same_network(network, id)) {
                ids.push(id.to_string());
                continue;
            }
            if network.len() > NETWORK_KEY_LEN {
                ids.push(network.clone());
                continue;
            }
            let listed = match &mut listed {
                Some(listed) => listed,
                None => listed.insert(state.network_ids()?),
            };
            ids.extend(
                listed
                    .iter()
                    .filter(|id| same_network(network, id))
                    .cloned(),
            );
        }
        crate::order::sort(&mut ids);
        ids.dedup();
        Ok(ids)
    }

    fn write(&self, state: &Locked<'_>) -> Result<(), Error> {
        if self.entries.is_empty() {
            state.remove_derived_record(CONTAINER_ENDPOINTS, &self.container)?;
            return Ok(());
        }
        if let Some(target) = self.link_target() {
            state.put_derived_link(CONTAINER_ENDPOINTS, &self.container, &target, self.absent)?;
            return Ok(());
        }
        // Not for a link (too many networks, or ids a link cannot name):
        // the record. Written as text: a value tree built, encoded and
        // held cost a batch's target more than any other of its records.
        let mut object = crate::json::ObjectWriter::new(true);
        object
            .u64("version", RECORD_VERSION)
            .str("container", &self.container)
            .str_map(
                "endpoints",
                self.entries
                    .iter()
                    .map(|(network, id)| (network.as_str(), id.as_str())),
            );
        state.put_derived_text(
            CONTAINER_ENDPOINTS,
            &self.container,
            object.finish(),
            self.absent,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_without_identity_never_leads_to_our_own_namespace() {
        // A record of an older release (no identity) whose path now leads
        // to the namespace ipvlan runs in: before, it was taken for the
        // attached one, and restore made the container's link and default
        // route in the host.
        let at = open_recorded("/proc/self/ns/net", None).unwrap();
        assert!(matches!(at, NsAt::Gone), "{at:?}");
        let elsewhere = crate::netns::create_anonymous().unwrap();
        let path = format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&elsewhere.fd())
        );
        let at = open_recorded(&path, None).unwrap();
        assert!(matches!(at, NsAt::Present(..)), "{at:?}");
    }

    #[test]
    fn a_namespace_whose_path_is_gone_is_found_while_a_process_holds_it() {
        // As after `ip netns del NAME` of a container whose command still
        // runs: before, its path gone, it was taken for gone, and its
        // addresses handed out again while its link held them.
        let mut holder = std::process::Command::new("unshare")
            .args(["--net", "sleep", "100"])
            .spawn()
            .expect("unshare (util-linux)");
        let held_path = PathBuf::from(format!("/proc/{}/ns/net", holder.id()));
        // Until `unshare` has made the namespace and become `sleep`.
        let own = std::fs::read_link("/proc/self/ns/net").unwrap();
        for _ in 0..200 {
            if std::fs::read_link(&held_path).is_ok_and(|link| link != own) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let recorded = OpenNetns::open_path(&held_path)
            .unwrap()
            .unwrap()
            .identity()
            .unwrap();
        let gone_path = "/run/ipvlan-test-no-such-namespace";
        match open_recorded(gone_path, Some(recorded)).unwrap() {
            NsAt::Present(_, found) => assert!(found.same_namespace(&recorded)),
            other => panic!("the held namespace was not found: {other:?}"),
        }
        // Unmounted and not removed: an empty plain file at the path. The
        // namespace still runs; before, it was taken for gone (its
        // addresses released while its link held them, its container
        // record dropped while its command ran).
        let leftover = std::env::temp_dir().join(format!("ipvlan-leftover-{}", std::process::id()));
        std::fs::write(&leftover, b"").unwrap();
        let at = open_recorded(leftover.to_str().unwrap(), Some(recorded));
        let container = container_netns(
            &leftover,
            Some(Made {
                id: recorded,
                inode_time: None,
            }),
        );
        match at.unwrap() {
            NsAt::Present(_, found) => assert!(found.same_namespace(&recorded)),
            other => panic!("the held namespace behind a leftover: {other:?}"),
        }
        assert!(
            matches!(container.unwrap(), ContainerNetns::Unnamed(_, Some(_))),
            "a container whose namespace still runs"
        );
        // Without a cookie (before Linux 5.14), an inode alone could lead
        // to another namespace: never looked for.
        let no_cookie = NetnsId {
            cookie: None,
            ..recorded
        };
        assert!(matches!(
            open_recorded(gone_path, Some(no_cookie)).unwrap(),
            NsAt::Gone
        ));
        // Of another boot, it is never looked for (none outlives a boot).
        let other_boot = NetnsId {
            boot: recorded.boot.map(|mark| mark ^ 1),
            ..recorded
        };
        assert!(matches!(
            open_recorded(gone_path, Some(other_boot)).unwrap(),
            NsAt::Gone
        ));
        holder.kill().unwrap();
        holder.wait().unwrap();
        // With its last process gone, so is the namespace.
        assert!(matches!(
            open_recorded(gone_path, Some(recorded)).unwrap(),
            NsAt::Gone
        ));
        assert!(matches!(
            open_recorded(leftover.to_str().unwrap(), Some(recorded)).unwrap(),
            NsAt::NotANamespace
        ));
        assert!(matches!(
            container_netns(
                &leftover,
                Some(Made {
                    id: recorded,
                    inode_time: None
                })
            )
            .unwrap(),
            ContainerNetns::Leftover(_)
        ));
        std::fs::remove_file(&leftover).unwrap();
    }

    #[test]
    fn paths_are_made_absolute_as_the_kernel_resolves_them_without_the_file_system() {
        let cwd = Path::new("/tmp/work");
        for (path, expected) in [
            ("ns/x", "/tmp/work/ns/x"),
            ("./ns//x/", "/tmp/work/ns/x"),
            ("../ns/./x", "/tmp/ns/x"),
            ("/proc/self/../self/ns/net", "/proc/self/../self/ns/net"),
            ("//run///netns/web", "/run/netns/web"),
            ("/../../run/netns/web", "/run/netns/web"),
            ("../../../..", "/"),
            ("/run/netns/a b", "/run/netns/a b"),
            // A component given may be a symbolic link: `..` after it stays.
            ("link/../ns", "/tmp/work/link/../ns"),
            ("../x/../../y", "/tmp/x/../../y"),
            ("/a/..", "/a/.."),
        ] {
            assert_eq!(
                normalise(cwd, Path::new(path)),
                PathBuf::from(expected),
                "{path}"
            );
        }
        assert_eq!(
            absolute(Path::new("/var/run/netns/../netns/x")).unwrap(),
            PathBuf::from("/var/run/netns/../netns/x")
        );
    }

    /// What is taken as already normal is what the walk of its components
    /// makes of it, and nothing else is taken so.
    #[test]
    fn a_path_taken_as_normal_is_what_its_walk_makes() {
        let cwd = Path::new("/tmp/work");
        for path in [
            "/",
            "/run",
            "/run/netns/web",
            "/run/netns/a b",
            "/r.n/..x/.y/x..",
        ] {
            assert!(is_normal_absolute(Path::new(path)), "{path}");
            assert_eq!(
                normalise_by_components(cwd, Path::new(path)),
                Path::new(path)
            );
        }
        for path in [
            "",
            "run",
            "./x",
            "//",
            "/run/",
            "/run//netns",
            "/./run",
            "/run/.",
            "/..",
            "/a/../b",
            "/a/..",
        ] {
            assert!(!is_normal_absolute(Path::new(path)), "{path}");
        }
    }

    #[test]
    fn a_path_that_is_not_utf8_is_refused() {
        use std::os::unix::ffi::OsStrExt;
        let path = Path::new(std::ffi::OsStr::from_bytes(b"/tmp/\xff"));
        let error = absolute(path).unwrap_err();
        assert_eq!(error.kind(), super::super::ErrorKind::InvalidValue);
        assert_eq!(
            error.to_string(),
            "namespace path /tmp/\u{fffd} is not valid UTF-8"
        );
    }

    #[test]
    fn legacy_path_ids_are_what_older_versions_wrote() {
        assert_eq!(
            legacy_path_id(Path::new("/proc/42/ns/net")),
            "path_proc_42_ns_net"
        );
        assert_eq!(legacy_path_id(Path::new("/tmp/a b")), "path_tmp_a_b");
    }

    /// A path typed in its normal form is looked up under one id, not
    /// twice under the same; a path typed otherwise under both forms'.
    #[test]
    fn a_normal_path_has_one_legacy_id() {
        let normal = Path::new("/run/netns/c1");
        assert_eq!(legacy_path_ids(normal, normal), ["path_run_netns_c1"]);
        assert_eq!(
            legacy_path_ids(Path::new("/run/netns/../netns/c1"), normal),
            ["path_run_netns_.._netns_c1", "path_run_netns_c1"]
        );
    }

    /// The index is one link whose target lists its entries in order,
    /// read back whole; an index too long for a link is the record older
    /// versions wrote (the same bytes as its value tree), which is read
    /// as before.
    #[test]
    fn the_index_is_a_link_or_the_record_an_older_version_wrote() {
        let root = std::env::temp_dir().join(format!("ipvlan-index-{}", std::process::id()));
        let state = StateDir::open(&root).unwrap();
        let locked = state.lock().unwrap();
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let file = root.join("records/container-endpoints/web.1.json");
        let linked = ContainerIndex {
            container: "web.1".into(),
            entries: vec![
                (b.clone(), "_netns_cookie_7".into()),
                (a.clone(), "e1".into()),
            ],
            absent: true,
        };
        linked.write(&locked).unwrap();
        // Networks by key: one entry is some 35 bytes, held in the inode.
        assert_eq!(
            std::fs::read_link(&file).unwrap(),
            PathBuf::from(format!("{}:_netns_cookie_7,{}:e1", &b[..16], &a[..16]))
        );
        let read = ContainerIndex::read(&locked, "web.1").unwrap();
        assert_eq!(
            read.entries,
            [(&b[..16], "_netns_cookie_7"), (&a[..16], "e1")]
                .map(|(n, id)| (n.to_string(), id.to_string()))
        );
        assert!(!read.absent);
        assert!(read.names_network(&a) && read.names_network(&a[..16]));
        assert!(!read.names_network(&"c".repeat(64)));
        assert_eq!(
            read.endpoint_listed(&locked, &a, Some(&[])).unwrap(),
            None,
            "no record behind the entry"
        );

        // Forty networks: past a link's room.
        let networks: Vec<String> = (1..=40)
            .map(|n| format!("{n:016x}{}", "f".repeat(48)))
            .collect();
        let index = ContainerIndex {
            container: "web.1".into(),
            entries: networks
                .iter()
                .map(|n| (n.clone(), "_netns_cookie_7".into()))
                .collect(),
            absent: false,
        };
        index.write(&locked).unwrap();
        let value = Value::object([
            ("version", Value::from(RECORD_VERSION)),
            ("container", Value::from("web.1")),
            (
                "endpoints",
                Value::object(
                    networks
                        .iter()
                        .map(|n| (n.as_str(), Value::from("_netns_cookie_7"))),
                ),
            ),
        ]);
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            format!("{}\n", value.to_pretty().unwrap())
        );
        let read = ContainerIndex::read(&locked, "web.1").unwrap();
        assert_eq!(read.entries, index.entries);
        assert!(!read.absent);
        // Networks a link cannot name (an id of no hex key, two of one
        // key): the record, read back whole, its ids as they were.
        for entries in [
            vec![("net-1".to_string(), "e1".to_string())],
            vec![
                (a.clone(), "e1".to_string()),
                (format!("{}{}", &a[..16], "b".repeat(48)), "e2".to_string()),
            ],
        ] {
            let index = ContainerIndex {
                container: "web.1".into(),
                entries,
                absent: false,
            };
            index.write(&locked).unwrap();
            assert!(std::fs::symlink_metadata(&file).unwrap().is_file());
            let read = ContainerIndex::read(&locked, "web.1").unwrap();
            assert_eq!(read.entries, index.entries);
        }
        // A record's entry whose ids are no names is dropped, the rest kept.
        std::fs::remove_file(&file).unwrap();
        std::fs::write(
            &file,
            format!("{{\"version\": 1, \"container\": \"web.1\", \"endpoints\": {{\"{a}\": \"e1\", \"../x\": \"e2\", \"{b}\": \"/e3\"}}}}\n"),
        )
        .unwrap();
        assert_eq!(
            ContainerIndex::read(&locked, "web.1").unwrap().entries,
            [(a.clone(), "e1".to_string())]
        );

        // A link again in place of the record, then removed when empty.
        let one = ContainerIndex::of_one("web.1", &a, "e2");
        one.write(&locked).unwrap();
        assert_eq!(
            std::fs::read_link(&file).unwrap(),
            PathBuf::from(format!("{}:e2", &a[..16]))
        );
        assert_eq!(
            ContainerIndex::read(&locked, "web.1").unwrap().entries,
            [(a[..16].to_string(), "e2".to_string())]
        );
        let empty = ContainerIndex {
            container: "web.1".into(),
            ..ContainerIndex::default()
        };
        empty.write(&locked).unwrap();
        assert!(std::fs::symlink_metadata(&file).is_err());
        assert!(ContainerIndex::read(&locked, "web.1").unwrap().absent);
        drop(locked);
        let _ = std::fs::remove_dir_all(&root);
    }

    /// A link that is not one the index writes names nothing (an
    /// unreadable index, as a damaged record is), so a planted target
    /// never leads a reader out of the store.
    #[test]
    fn an_index_link_of_anything_else_names_nothing() {
        let a = "a".repeat(16);
        let good = format!("{a}:e1,{}:e2", "b".repeat(16));
        assert_eq!(
            ContainerIndex::parse_link(good.as_bytes()).map(|e| e.len()),
            Some(2)
        );
        for bad in [
            String::new(),
            a.clone(),
            format!("{a}:"),
            ":e1".to_string(),
            format!("{a}:e1,"),
            format!("{a}:e1,{a}:e2"),
            format!("{a}:../e1"),
            format!("../{a}:e1"),
            format!("{a}:e1:e2"),
            format!("{a}:.e1"),
            format!("{}:e1", "a".repeat(64)),
            format!("{}:e1", "a".repeat(15)),
            format!("{}:e1", "g".repeat(16)),
        ] {
            assert_eq!(ContainerIndex::parse_link(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(ContainerIndex::parse_link(b"\xff:e1"), None);
    }
}
