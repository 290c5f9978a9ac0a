//! The one error type of the netlink and rtnetlink layers.
//!
//! An [`Error`] is an [`ErrorKind`] (what went wrong, matchable: errno,
//! unsupported feature, lost answers, malformed reply...) plus the context a
//! person needs to act on it: the operation, what it was about and the
//! network namespace. This layer only carries that context; the layers above
//! word it (`crate::rtnl` names links, and explains missing link types).

use std::fmt;
use std::io;
use std::time::Duration;

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
    /// The running kernel lacks something the request needs (a module not
    /// loaded, or not built). Made by the layer that knows what the request
    /// was for, from the kernel's `EOPNOTSUPP`.
    Unsupported {
        /// What is missing, as that layer names it (for `crate::rtnl`, the
        /// link type, e.g. `"ipvlan"`).
        feature: String,
        /// The sentence for a person: what is missing and how to get it.
        explanation: String,
    },
    /// The request asked for something that does not exist.
    NotFound {
        /// What kind of object was missing, e.g. `"link"`.
        what: &'static str,
    },
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
    /// Our receive queue overflowed (`ENOBUFS`): the kernel dropped answers,
    /// so whether the requests in `unknown` took effect is not known.
    Overrun {
        /// Positions, among the `total` requests handed over in one call, of
        /// those whose answer was lost (0 for a single request or a dump).
        /// Every other request sent was answered, but those answers (an
        /// error among them too) are not returned: a caller takes the call
        /// as failed.
        unknown: Vec<usize>,
        /// How many requests the call was given.
        total: usize,
        /// How many were sent, the first ones: in a batch, those after the
        /// datagram that overran were not.
        sent: usize,
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

/// A netlink or rtnetlink failure, with context. One pointer wide: every
/// `?` of the layers above moves it (and the binary carries one copy of
/// that move per call site).
pub struct Error(Box<Fields>);

#[derive(Debug)]
struct Fields {
    kind: ErrorKind,
    op: &'static str,
    subject: Option<String>,
    netns: Option<String>,
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.0.kind)
            .field("op", &self.0.op)
            .field("subject", &self.0.subject)
            .field("netns", &self.0.netns)
            .finish()
    }
}

/// Result alias of the netlink layers.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A bare error; context is added with [`Error::op`], [`Error::subject`], [`Error::netns`].
    pub fn new(kind: ErrorKind) -> Error {
        Error(Box::new(Fields {
            kind,
            op: "",
            subject: None,
            netns: None,
        }))
    }

    pub(crate) fn malformed(what: &'static str) -> Error {
        Error::new(ErrorKind::Malformed { what })
    }

    pub(crate) fn invalid(what: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidInput { what: what.into() })
    }

    /// Sets the operation ("create link", "add address"...), keeping an existing one.
    pub fn op(mut self, op: &'static str) -> Error {
        if self.0.op.is_empty() {
            self.0.op = op;
        }
        self
    }

    /// Sets what the operation was about, as the layer above words it
    /// (e.g. `"eth0"` or `"ifindex 3"` after "create link"), keeping an
    /// existing one.
    pub fn subject(mut self, subject: impl Into<String>) -> Error {
        if self.0.subject.is_none() {
            self.0.subject = Some(subject.into());
        }
        self
    }

    /// Sets the network namespace (name or path), keeping an existing one.
    pub fn netns(mut self, netns: Option<&str>) -> Error {
        if self.0.netns.is_none() {
            self.0.netns = netns.map(str::to_owned);
        }
        self
    }

    /// Replaces what went wrong and keeps the context: for a layer above
    /// that knows more about the request than the kernel's errno said.
    pub fn with_kind(self, kind: ErrorKind) -> Error {
        Error(Box::new(Fields { kind, ..*self.0 }))
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }

    /// The operation that failed, e.g. "create link"; empty if unknown.
    pub fn operation(&self) -> &str {
        self.0.op
    }

    /// What the failed operation was about (see [`Error::subject`]).
    pub fn subject_name(&self) -> Option<&str> {
        self.0.subject.as_deref()
    }

    /// The network namespace the failed operation ran in (None: the caller's).
    pub fn netns_name(&self) -> Option<&str> {
        self.0.netns.as_deref()
    }

    /// The errno, for kernel refusals and failed system calls.
    ///
    /// `Unsupported` reports `EOPNOTSUPP` and `NotFound` `ENODEV`, what the
    /// kernel said before the error was made more specific; `Timeout`
    /// reports `ETIMEDOUT` and `Overrun` `ENOBUFS`.
    pub fn errno(&self) -> Option<i32> {
        match &self.0.kind {
            ErrorKind::Kernel { errno, .. } => Some(*errno),
            ErrorKind::Unsupported { .. } => Some(libc::EOPNOTSUPP),
            ErrorKind::NotFound { .. } => Some(libc::ENODEV),
            ErrorKind::Timeout { .. } => Some(libc::ETIMEDOUT),
            ErrorKind::Overrun { .. } => Some(libc::ENOBUFS),
            ErrorKind::Io(err) => err.raw_os_error(),
            _ => None,
        }
    }

    /// The kernel's extended-ack text, if it sent one.
    pub fn ext_ack(&self) -> Option<&str> {
        match &self.0.kind {
            ErrorKind::Kernel { message, .. } => message.as_deref(),
            _ => None,
        }
    }

    /// `EEXIST`: the object (link name, address, route) already exists.
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// The object (or the parent it names) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self.0.kind, ErrorKind::NotFound { .. }) || self.errno() == Some(libc::ENODEV)
    }
}

impl From<io::Error> for Error {
    fn from(err: io::Error) -> Error {
        Error::new(ErrorKind::Io(err))
    }
}

/// "requests 1, 4 and 5".
fn write_positions(f: &mut fmt::Formatter<'_>, positions: &[usize]) -> fmt::Result {
    let noun = if positions.len() == 1 {
        "request"
    } else {
        "requests"
    };
    write!(f, "{noun} ")?;
    for (i, position) in positions.iter().enumerate() {
        let separator = match i {
            0 => "",
            i if i + 1 == positions.len() => " and ",
            _ => ", ",
        };
        write!(f, "{separator}{position}")?;
    }
    Ok(())
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
            ErrorKind::Unsupported {
                feature,
                explanation,
            } => {
                if explanation.is_empty() {
                    write!(f, "not supported by this kernel: {feature}")
                } else {
                    write!(f, "{explanation}")
                }
            }
            ErrorKind::NotFound { what } => write!(f, "no such {what}"),
            ErrorKind::DumpInterrupted { attempts } => write!(
                f,
                "dump interrupted by concurrent changes {attempts} times in a row"
            ),
            ErrorKind::Timeout { after } => {
                let after = crate::digits::duration_text(*after);
                write!(f, "no answer from the kernel within {after}")
            }
            ErrorKind::Overrun {
                unknown,
                total,
                sent,
            } => {
                write!(
                    f,
                    "netlink receive queue overrun (ENOBUFS): the kernel dropped answers; "
                )?;
                if *total == 1 {
                    return write!(f, "the outcome of the request is unknown");
                }
                write!(f, "the outcome of ")?;
                write_positions(f, unknown)?;
                write!(f, " (counting from 0) of {total} is unknown")?;
                match total - sent {
                    0 => Ok(()),
                    1 => write!(f, ", and the last was not sent"),
                    _ => write!(f, ", and those from {sent} on were not sent"),
                }
            }
            ErrorKind::Malformed { what } => write!(f, "malformed netlink reply: {what}"),
            ErrorKind::InvalidInput { what } => write!(f, "invalid input: {what}"),
            ErrorKind::Io(err) => write!(f, "{err}"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.0.op.is_empty() {
            write!(f, "{}", self.0.op)?;
            if let Some(subject) = &self.0.subject {
                write!(f, " {subject}")?;
            }
            match &self.0.netns {
                // "open netns c1", not "open netns in netns c1".
                Some(netns) if self.0.subject.is_none() && self.0.op.ends_with("netns") => {
                    write!(f, " {netns}")?
                }
                Some(netns) => write!(f, " in netns {netns}")?,
                None => {}
            }
            write!(f, ": ")?;
        }
        write!(f, "{}", self.0.kind)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.0.kind {
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
            .subject("eth0.4095")
            .netns(Some("c1"));
        assert_eq!(
            err.to_string(),
            "create link eth0.4095 in netns c1: Invalid argument (os error 22); \
             kernel says: 8021q: Invalid VLAN id"
        );
        assert_eq!(err.errno(), Some(libc::EINVAL));
        assert_eq!(err.ext_ack(), Some("8021q: Invalid VLAN id"));
        assert_eq!(err.subject_name(), Some("eth0.4095"));
    }

    #[test]
    fn a_refined_kind_keeps_the_context() {
        let err = kernel(libc::EOPNOTSUPP, None)
            .op("create link")
            .subject("iv0")
            .with_kind(ErrorKind::Unsupported {
                feature: "ipvlan".into(),
                explanation: "no ipvlan here".into(),
            });
        assert_eq!(err.to_string(), "create link iv0: no ipvlan here");
        assert_eq!(err.errno(), Some(libc::EOPNOTSUPP));
        let err = Error::new(ErrorKind::NotFound { what: "link" })
            .op("get link")
            .subject("eth9");
        assert_eq!(err.to_string(), "get link eth9: no such link");
        assert!(err.is_not_found());
    }

    #[test]
    fn netns_operations_name_the_netns_once() {
        let err = Error::from(io::Error::from_raw_os_error(libc::ENOENT))
            .op("open netns")
            .netns(Some("c1"));
        assert_eq!(
            err.to_string(),
            "open netns c1: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn overrun_says_which_outcomes_are_unknown() {
        let single = Error::new(ErrorKind::Overrun {
            unknown: vec![0],
            total: 1,
            sent: 1,
        })
        .op("delete link")
        .subject("ifindex 7");
        assert_eq!(
            single.to_string(),
            "delete link ifindex 7: netlink receive queue overrun (ENOBUFS): \
             the kernel dropped answers; the outcome of the request is unknown"
        );
        assert_eq!(single.errno(), Some(libc::ENOBUFS));
        let batch = Error::new(ErrorKind::Overrun {
            unknown: vec![3, 4, 9],
            total: 12,
            sent: 12,
        });
        assert_eq!(
            batch.kind().to_string(),
            "netlink receive queue overrun (ENOBUFS): the kernel dropped answers; \
             the outcome of requests 3, 4 and 9 (counting from 0) of 12 is unknown"
        );
        let cut_short = ErrorKind::Overrun {
            unknown: vec![3, 4, 9],
            total: 300,
            sent: 10,
        };
        assert!(cut_short
            .to_string()
            .ends_with("of 300 is unknown, and those from 10 on were not sent"));
        let one_of_many = ErrorKind::Overrun {
            unknown: vec![5],
            total: 6,
            sent: 6,
        };
        assert!(one_of_many
            .to_string()
            .contains("outcome of request 5 (counting"));
    }

    #[test]
    fn error_can_cross_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<Error>();
    }

    #[test]
    fn first_context_wins() {
        let err = kernel(libc::EEXIST, None)
            .op("inner")
            .op("outer")
            .subject("a")
            .subject("b");
        assert_eq!(err.operation(), "inner");
        assert_eq!(err.subject_name(), Some("a"));
        assert!(err.is_exists());
    }
}
