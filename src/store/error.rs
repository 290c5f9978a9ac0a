//! Errors of the state store, each naming the file concerned.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::ipam::IpamError;

/// A state-store error.
///
/// Each variant holds one box, so that a `Result<(), StoreError>` is two
/// words, returned in registers, and every `?` on a store result moves
/// two words rather than seven (kilobytes of the release binary over the
/// crate's store calls). Match a variant as `StoreError::Corrupt { .. }`.
pub enum StoreError {
    /// A file operation failed.
    Io(Box<IoFailure>),
    /// A state file does not hold what it must.
    Corrupt(Box<FileFault>),
    /// A path of the state directory that is not what the store may
    /// trust: a directory owned by another user or writable by others, a
    /// symbolic link, a FIFO or device where a file belongs, a file over
    /// its size limit. Nothing was written, followed or read through it.
    Refused(Box<FileFault>),
    /// A name that cannot be used as a file name in the store.
    InvalidName(Box<BadName>),
    /// Address management refused (boxed: every `?` on a store result
    /// moves the error).
    Ipam(Box<IpamError>),
}

/// What [`StoreError::Io`] holds.
#[derive(Debug)]
pub struct IoFailure {
    /// What was being done (`"writing"`, `"locking"`, ...).
    pub action: &'static str,
    /// The file or directory.
    pub path: PathBuf,
    /// The system's error.
    pub source: io::Error,
}

/// What [`StoreError::Corrupt`] and [`StoreError::Refused`] hold.
#[derive(Debug)]
pub struct FileFault {
    /// The file or directory.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
}

/// What [`StoreError::InvalidName`] holds.
#[derive(Debug)]
pub struct BadName {
    /// What the name is for (`"endpoint id"`, ...).
    pub what: &'static str,
    /// The name.
    pub name: String,
}

impl fmt::Debug for StoreError {
    // As `#[derive(Debug)]` printed it when the variants held the fields.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io(e) => f
                .debug_struct("Io")
                .field("action", &e.action)
                .field("path", &e.path)
                .field("source", &e.source)
                .finish(),
            StoreError::Corrupt(e) => f
                .debug_struct("Corrupt")
                .field("path", &e.path)
                .field("reason", &e.reason)
                .finish(),
            StoreError::Refused(e) => f
                .debug_struct("Refused")
                .field("path", &e.path)
                .field("reason", &e.reason)
                .finish(),
            StoreError::InvalidName(e) => f
                .debug_struct("InvalidName")
                .field("what", &e.what)
                .field("name", &e.name)
                .finish(),
            StoreError::Ipam(e) => f.debug_tuple("Ipam").field(e).finish(),
        }
    }
}

impl StoreError {
    /// The error of `action` on `path`; a refusal of the file primitives
    /// (a link, a FIFO, an oversized file, an untrusted directory) becomes
    /// [`StoreError::Refused`].
    pub(crate) fn io(
        action: &'static str,
        path: impl AsRef<Path>,
    ) -> impl FnOnce(io::Error) -> StoreError {
        // The path is copied only when the error happens: the closure is
        // inlined at every call site, and most never fail.
        move |source| StoreError::from_io(action, path.as_ref(), source)
    }

    /// [`StoreError::io`]'s error. Out of line: the closure is inlined at
    /// every call site, this body is kept once.
    #[cold]
    #[inline(never)]
    fn from_io(action: &'static str, path: &Path, source: io::Error) -> StoreError {
        let path = path.to_path_buf();
        match super::fsutil::refusal(&source) {
            Some(reason) => StoreError::refused(path, reason.to_string()),
            None => StoreError::Io(Box::new(IoFailure {
                action,
                path,
                source,
            })),
        }
    }

    /// A [`StoreError::Corrupt`] of `path`.
    #[cold]
    #[inline(never)]
    pub(crate) fn corrupt(path: PathBuf, reason: String) -> StoreError {
        StoreError::Corrupt(Box::new(FileFault { path, reason }))
    }

    /// A [`StoreError::Refused`] of `path`.
    #[cold]
    #[inline(never)]
    pub(crate) fn refused(path: PathBuf, reason: String) -> StoreError {
        StoreError::Refused(Box::new(FileFault { path, reason }))
    }

    /// A [`StoreError::InvalidName`].
    #[cold]
    #[inline(never)]
    pub(crate) fn invalid_name(what: &'static str, name: &str) -> StoreError {
        StoreError::InvalidName(Box::new(BadName {
            what,
            name: name.to_string(),
        }))
    }

    /// The state file this error is about, if it is about one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            StoreError::Io(e) => Some(&e.path),
            StoreError::Corrupt(e) | StoreError::Refused(e) => Some(&e.path),
            StoreError::InvalidName { .. } | StoreError::Ipam(_) => None,
        }
    }

    /// The IPAM refusal inside, if that is what this is.
    pub fn ipam(&self) -> Option<&IpamError> {
        match self {
            StoreError::Ipam(e) => Some(e),
            _ => None,
        }
    }

    /// Whether this is a permission error (the caller needs root).
    pub fn is_permission_denied(&self) -> bool {
        matches!(self, StoreError::Io(e) if e.source.kind() == io::ErrorKind::PermissionDenied)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io(e) => write!(f, "{} {}: {}", e.action, e.path.display(), e.source),
            StoreError::Corrupt(e) => {
                write!(f, "corrupt state file {}: {}", e.path.display(), e.reason)
            }
            StoreError::Refused(e) => write!(f, "refusing {}: {}", e.path.display(), e.reason),
            StoreError::InvalidName(e) => write!(
                f,
                "invalid {} {:?}: use letters, digits, '_', '.' and '-', not starting with '.'",
                e.what, e.name
            ),
            StoreError::Ipam(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io(e) => Some(&e.source),
            StoreError::Ipam(e) => Some(e),
            _ => None,
        }
    }
}

impl From<IpamError> for StoreError {
    fn from(e: IpamError) -> Self {
        StoreError::Ipam(Box::new(e))
    }
}
