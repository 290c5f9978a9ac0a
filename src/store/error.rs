//! Errors of the state store, each naming the file concerned.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::ipam::IpamError;

/// A state-store error.
#[derive(Debug)]
pub enum StoreError {
    /// A file operation failed.
    Io {
        /// What was being done (`"writing"`, `"locking"`, ...).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The system's error.
        source: io::Error,
    },
    /// A state file does not hold what it must.
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A path of the state directory that is not what the store may
    /// trust: a directory owned by another user or writable by others, a
    /// symbolic link, a FIFO or device where a file belongs, a file over
    /// its size limit. Nothing was written, followed or read through it.
    Refused {
        /// The file or directory.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A name that cannot be used as a file name in the store.
    InvalidName {
        /// What the name is for (`"endpoint id"`, ...).
        what: &'static str,
        /// The name.
        name: String,
    },
    /// Address management refused (boxed: every `?` on a store result
    /// moves the error, and this is its largest variant).
    Ipam(Box<IpamError>),
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
            Some(reason) => StoreError::Refused {
                reason: reason.to_string(),
                path,
            },
            None => StoreError::Io {
                action,
                path,
                source,
            },
        }
    }

    /// The state file this error is about, if it is about one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            StoreError::Io { path, .. }
            | StoreError::Corrupt { path, .. }
            | StoreError::Refused { path, .. } => Some(path),
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
        matches!(self, StoreError::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied)
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Io {
                action,
                path,
                source,
            } => write!(f, "{action} {}: {source}", path.display()),
            StoreError::Corrupt { path, reason } => {
                write!(f, "corrupt state file {}: {reason}", path.display())
            }
            StoreError::Refused { path, reason } => {
                write!(f, "refusing {}: {reason}", path.display())
            }
            StoreError::InvalidName { what, name } => write!(
                f,
                "invalid {what} {name:?}: use letters, digits, '_', '.' and '-', not starting with '.'"
            ),
            StoreError::Ipam(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StoreError::Io { source, .. } => Some(source),
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
