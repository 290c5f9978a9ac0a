//! Which namespace an endpoint lives in: a namespace opened for one
//! operation together with the one netlink handle used in it, its identity
//! (the nsfs file id and the cookie, which no later namespace ever gets),
//! and what sits at a recorded path now.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::Error;
use crate::netns::Netns;
use crate::rtnl::Handle;
use crate::store::records::NetnsId;

/// A namespace opened for one operation, with its netlink handle: every
/// request of that operation inside the namespace goes through it.
#[derive(Debug)]
pub(crate) struct OpenNetns {
    pub ns: Netns,
    pub handle: Handle,
}

impl OpenNetns {
    /// Opens the namespace file at `path` and a handle inside it.
    pub(crate) fn open(path: &Path) -> Result<OpenNetns, Error> {
        let ns = Netns::open_path(path)
            .map_err(|e| Error::io(format!("opening namespace {}", path.display()), &e))?;
        OpenNetns::with_handle(ns)
    }

    /// A handle inside `ns`.
    pub(crate) fn with_handle(ns: Netns) -> Result<OpenNetns, Error> {
        let handle = Handle::in_netns(&ns)?;
        Ok(OpenNetns { ns, handle })
    }

    /// The namespace's name or path, for messages.
    pub(crate) fn label(&self) -> &str {
        self.ns.label()
    }

    /// Its identity: nsfs file id and cookie.
    pub(crate) fn identity(&self) -> Result<NetnsId, Error> {
        let (dev, ino) = nsfs_file_id(&self.ns)?;
        let cookie = self.cookie()?;
        Ok(NetnsId { dev, ino, cookie })
    }

    fn cookie(&self) -> Result<Option<u64>, Error> {
        self.handle.socket().netns_cookie().map_err(|e| {
            Error::io(
                format!("reading the cookie of namespace {}", self.label()),
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

/// What sits at an endpoint's recorded namespace path now.
#[derive(Debug)]
pub(crate) enum NsAt {
    /// The namespace attached, opened, with its identity.
    Present(OpenNetns, NetnsId),
    /// Nothing (ENOENT: the process exited, the name was deleted), or
    /// another namespace than the one attached (a reused PID, a name
    /// deleted and added again): ours is gone either way.
    Gone,
    /// A file that is not a namespace, e.g. the empty mount point of
    /// `/run/netns/NAME` left by a process killed before its bind mount.
    NotANamespace,
}

/// Opens the namespace at `path` and tells whether it is the one recorded
/// (`recorded`: its identity at attach; `None` in records older than that,
/// taken on trust). Only a missing file (or process) and a different
/// namespace count as gone; any other failure is an error, so a live
/// namespace we cannot open now is never given up.
pub(crate) fn open_recorded(path: &str, recorded: Option<NetnsId>) -> Result<NsAt, Error> {
    let ns = match Netns::open_path(path) {
        Ok(ns) => ns,
        Err(error) if matches!(error.raw_os_error(), Some(libc::ENOENT | libc::ESRCH)) => {
            return Ok(NsAt::Gone)
        }
        Err(error) => return Err(Error::io(format!("opening namespace {path}"), &error)),
    };
    // Checked before a handle is opened inside: entering a file that is not
    // a namespace would fail with a less useful error.
    let (dev, _) = nsfs_file_id(&ns)?;
    let nsfs = nsfs_dev().map_err(|e| Error::io("reading the namespace file system", &e))?;
    if dev != nsfs {
        return Ok(NsAt::NotANamespace);
    }
    let open = OpenNetns::with_handle(ns)?;
    let identity = open.identity()?;
    match recorded {
        Some(recorded) if !recorded.same_namespace(&identity) => Ok(NsAt::Gone),
        _ => Ok(NsAt::Present(open, identity)),
    }
}

/// `st_dev` shared by every nsfs file: what a namespace file is.
fn nsfs_dev() -> std::io::Result<u64> {
    Ok(std::fs::metadata("/proc/thread-self/ns/net")?.dev())
}

/// `st_dev` and `st_ino` of an open namespace's nsfs file, stable for the
/// namespace's whole life and never shared by two living ones.
fn nsfs_file_id(ns: &Netns) -> Result<(u64, u64), Error> {
    let meta = ns
        .fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|file| file.metadata())
        .map_err(|e| {
            Error::io(
                format!("reading the identity of namespace {}", ns.label()),
                &e,
            )
        })?;
    Ok((meta.dev(), meta.ino()))
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
