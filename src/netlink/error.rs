//! The one error type of the netlink and rtnetlink layers.
//!
//! An [`Error`] is an [`ErrorKind`] (what went wrong, matchable: errno,
//! unsupported link type, malformed reply...) plus the context a person needs
//! to act on it: the operation, the link and the network namespace.

use std::fmt;
use std::io;
use std::time::Duration;

/// The link an operation was about, by name or by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkRef {
    /// An interface name.
    Name(String),
    /// An interface index.
    Index(u32),
}

impl fmt::Display for LinkRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkRef::Name(name) => write!(f, "{name}"),
            LinkRef::Index(index) => write!(f, "ifindex {index}"),
        }
    }
}

/// What went wrong.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The kernel refused the request with `errno`; `message` is its extended
    /// ack text and `offset` the byte offset of the offending attribute in the
    /// request, when the kernel gave them.
    Kernel {
        /// The positive errno value (e.g. `libc::EEXIST`).
        errno: i32,
        /// The extended ack message (`NLMSGERR_ATTR_MSG`), if any.
        message: Option<String>,
        /// Byte offset of the offending attribute in the request
        /// (`NLMSGERR_ATTR_OFFS`), if the kernel pointed at one.
        offset: Option<u32>,
    },
    /// The kernel does not know link type `kind` (module not loaded or not built).
    Unsupported {
        /// The `IFLA_INFO_KIND` requested, e.g. `"ipvlan"`.
        kind: String,
    },
    /// The request asked for something that does not exist (no such link).
    NotFound,
    /// A dump kept being interrupted by concurrent changes (`NLM_F_DUMP_INTR`).
    DumpInterrupted {
        /// How many times the dump was tried before giving up.
        attempts: u32,
    },
    /// The kernel did not answer within `after` (see
    /// [`crate::netlink::socket::RECV_TIMEOUT`]); the request may or may
    /// not have taken effect.
    Timeout {
        /// How long we waited for the reply.
        after: Duration,
    },
    /// A reply violated the netlink format; `what` says where.
    Malformed {
        /// Which part of the reply was wrong.
        what: &'static str,
    },
    /// The caller passed something the kernel could never accept.
    InvalidInput {
        /// What was wrong with the input.
        what: String,
    },
    /// A system call failed outside of netlink error reporting.
    Io(io::Error),
}

/// A netlink or rtnetlink failure, with context.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    op: &'static str,
    link: Option<LinkRef>,
    netns: Option<String>,
}

/// Result alias of the netlink layers.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A bare error; context is added with [`Error::op`], [`Error::link`], [`Error::netns`].
    pub fn new(kind: ErrorKind) -> Error {
        Error {
            kind,
            op: "",
            link: None,
            netns: None,
        }
    }

    pub(crate) fn malformed(what: &'static str) -> Error {
        Error::new(ErrorKind::Malformed { what })
    }

    pub(crate) fn invalid(what: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidInput { what: what.into() })
    }

    /// Sets the operation ("create link", "add address"...), keeping an existing one.
    pub fn op(mut self, op: &'static str) -> Error {
        if self.op.is_empty() {
            self.op = op;
        }
        self
    }

    /// Sets the link the operation was about, keeping an existing one.
    pub fn link(mut self, link: LinkRef) -> Error {
        self.link.get_or_insert(link);
        self
    }

    /// Sets the network namespace (name or path), keeping an existing one.
    pub fn netns(mut self, netns: Option<&str>) -> Error {
        if self.netns.is_none() {
            self.netns = netns.map(str::to_owned);
        }
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The operation that failed, e.g. "create link"; empty if unknown.
    pub fn operation(&self) -> &str {
        self.op
    }

    /// The link the failed operation was about.
    pub fn link_ref(&self) -> Option<&LinkRef> {
        self.link.as_ref()
    }

    /// The network namespace the failed operation ran in (None: the caller's).
    pub fn netns_name(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// The errno, for kernel refusals and failed system calls.
    ///
    /// `Unsupported` reports `EOPNOTSUPP` and `NotFound` `ENODEV`, what the
    /// kernel said before the error was made more specific; `Timeout`
    /// reports `ETIMEDOUT`.
    pub fn errno(&self) -> Option<i32> {
        match &self.kind {
            ErrorKind::Kernel { errno, .. } => Some(*errno),
            ErrorKind::Unsupported { .. } => Some(libc::EOPNOTSUPP),
            ErrorKind::NotFound => Some(libc::ENODEV),
            ErrorKind::Timeout { .. } => Some(libc::ETIMEDOUT),
            ErrorKind::Io(err) => err.raw_os_error(),
            _ => None,
        }
    }

    /// The kernel's extended-ack text, if it sent one.
    pub fn ext_ack(&self) -> Option<&str> {
        match &self.kind {
            ErrorKind::Kernel { message, .. } => message.as_deref(),
            _ => None,
        }
    }

    /// `EEXIST`: the object (link name, address, route) already exists.
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// The link (or the parent it names) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self.kind, ErrorKind::NotFound) || self.errno() == Some(libc::ENODEV)
    }

    /// Replaces a kernel `EOPNOTSUPP` "Unknown device type" by `Unsupported { kind }`.
    pub(crate) fn unknown_kind_to_unsupported(self, kind: &str) -> Error {
        let unknown_type = match &self.kind {
            ErrorKind::Kernel { errno, message, .. } => {
                *errno == libc::EOPNOTSUPP
                    && message
                        .as_deref()
                        .map_or(true, |m| m.contains("Unknown device type"))
            }
            _ => false,
        };
        if unknown_type {
            Error {
                kind: ErrorKind::Unsupported {
                    kind: kind.to_owned(),
                },
                ..self
            }
        } else {
            self
        }
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Error {
        Error::new(ErrorKind::Io(err))
    }
}

/// Kernel config option and module that provide a link type.
fn kind_hint(kind: &str) -> Option<(&'static str, &'static str)> {
    match kind {
        "ipvlan" => Some(("CONFIG_IPVLAN", "ipvlan")),
        "dummy" => Some(("CONFIG_DUMMY", "dummy")),
        "vlan" => Some(("CONFIG_VLAN_8021Q", "8021q")),
        "macvlan" => Some(("CONFIG_MACVLAN", "macvlan")),
        "veth" => Some(("CONFIG_VETH", "veth")),
        _ => None,
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorKind::Kernel {
                errno,
                message,
                offset,
            } => {
                write!(f, "{}", io::Error::from_raw_os_error(*errno))?;
                if let Some(message) = message {
                    write!(f, "; kernel says: {message}")?;
                }
                if let Some(offset) = offset {
                    write!(f, " (attribute at byte {offset})")?;
                }
                Ok(())
            }
            ErrorKind::Unsupported { kind } => match kind_hint(kind) {
                Some((config, module)) => write!(
                    f,
                    "this kernel has no {kind} support ({config}); try `modprobe {module}`"
                ),
                None => write!(f, "this kernel has no {kind} support"),
            },
            ErrorKind::NotFound => write!(f, "no such link"),
            ErrorKind::DumpInterrupted { attempts } => write!(
                f,
                "dump interrupted by concurrent changes {attempts} times in a row"
            ),
            ErrorKind::Timeout { after } => {
                write!(f, "no answer from the kernel within {after:?}")
            }
            ErrorKind::Malformed { what } => write!(f, "malformed netlink reply: {what}"),
            ErrorKind::InvalidInput { what } => write!(f, "invalid input: {what}"),
            ErrorKind::Io(err) => write!(f, "{err}"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.op.is_empty() {
            write!(f, "{}", self.op)?;
            if let Some(link) = &self.link {
                write!(f, " {link}")?;
            }
            match &self.netns {
                // "open netns c1", not "open netns in netns c1".
                Some(netns) if self.link.is_none() && self.op.ends_with("netns") => {
                    write!(f, " {netns}")?
                }
                Some(netns) => write!(f, " in netns {netns}")?,
                None => {}
            }
            write!(f, ": ")?;
        }
        write!(f, "{}", self.kind)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io(err) => Some(err),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(errno: i32, message: Option<&str>) -> Error {
        Error::new(ErrorKind::Kernel {
            errno,
            message: message.map(str::to_owned),
            offset: None,
        })
    }

    #[test]
    fn display_carries_context_errno_and_ext_ack() {
        let err = kernel(libc::EINVAL, Some("8021q: Invalid VLAN id"))
            .op("create link")
            .link(LinkRef::Name("eth0.4095".into()))
            .netns(Some("c1"));
        assert_eq!(
            err.to_string(),
            "create link eth0.4095 in netns c1: Invalid argument (os error 22); \
             kernel says: 8021q: Invalid VLAN id"
        );
        assert_eq!(err.errno(), Some(libc::EINVAL));
        assert_eq!(err.ext_ack(), Some("8021q: Invalid VLAN id"));
    }

    #[test]
    fn unknown_device_type_becomes_unsupported_with_hint() {
        let err = kernel(libc::EOPNOTSUPP, Some("Unknown device type"))
            .unknown_kind_to_unsupported("ipvlan")
            .op("create link")
            .link(LinkRef::Name("iv0".into()));
        assert!(matches!(err.kind(), ErrorKind::Unsupported { kind } if kind == "ipvlan"));
        assert_eq!(
            err.to_string(),
            "create link iv0: this kernel has no ipvlan support (CONFIG_IPVLAN); \
             try `modprobe ipvlan`"
        );
        let other = kernel(libc::EOPNOTSUPP, Some("something else"));
        assert!(matches!(
            other.unknown_kind_to_unsupported("vlan").kind(),
            ErrorKind::Kernel { .. }
        ));
    }

    #[test]
    fn error_can_cross_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<Error>();
    }

    #[test]
    fn first_context_wins() {
        let err = kernel(libc::EEXIST, None).op("inner").op("outer");
        assert_eq!(err.operation(), "inner");
        assert!(err.is_exists());
    }
}
