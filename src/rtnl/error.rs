//! What rtnetlink errors are about, in words: the link a request named, and
//! the link types a kernel may lack. [`crate::netlink::Error`] only carries
//! these; it knows nothing of links.

use std::fmt;

use crate::netlink::{Error, ErrorKind};

/// The link an operation was about, by name or by index; becomes the
/// error's subject ([`Error::subject`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinkRef {
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

/// Where a kernel gets a link type from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KindSupport {
    /// The kernel config option, e.g. `CONFIG_IPVLAN`.
    pub config: &'static str,
    /// The module that provides it, e.g. `ipvlan`.
    pub module: &'static str,
}

/// The config option and module behind link type `kind` (`IFLA_INFO_KIND`),
/// for the types this crate creates.
pub fn kind_support(kind: &str) -> Option<KindSupport> {
    let (config, module) = match kind {
        "ipvlan" => ("CONFIG_IPVLAN", "ipvlan"),
        "dummy" => ("CONFIG_DUMMY", "dummy"),
        "vlan" => ("CONFIG_VLAN_8021Q", "8021q"),
        "macvlan" => ("CONFIG_MACVLAN", "macvlan"),
        "veth" => ("CONFIG_VETH", "veth"),
        _ => return None,
    };
    Some(KindSupport { config, module })
}

/// The sentence for a kernel without link type `kind`, with what to load.
pub fn missing_kind_explanation(kind: &str) -> String {
    match kind_support(kind) {
        Some(KindSupport { config, module }) => {
            format!("this kernel has no {kind} support ({config}); try `modprobe {module}`")
        }
        None => format!("this kernel has no {kind} support"),
    }
}

/// Turns the kernel's answer to creating a link of type `kind` into
/// [`ErrorKind::Unsupported`] when it means the type is unknown:
/// `EOPNOTSUPP`, with "Unknown device type" or no text at all. Any other
/// error is returned as is.
pub(crate) fn unknown_kind_to_unsupported(err: Error, kind: &str) -> Error {
    let unknown_type = match err.kind() {
        ErrorKind::Kernel { errno, message, .. } => {
            *errno == libc::EOPNOTSUPP
                && message
                    .as_deref()
                    .map_or(true, |m| m.contains("Unknown device type"))
        }
        _ => false,
    };
    if !unknown_type {
        return err;
    }
    err.with_kind(ErrorKind::Unsupported {
        feature: kind.to_owned(),
        explanation: missing_kind_explanation(kind),
    })
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
    fn unknown_device_type_becomes_unsupported_with_hint() {
        let err = unknown_kind_to_unsupported(
            kernel(libc::EOPNOTSUPP, Some("Unknown device type")),
            "ipvlan",
        )
        .op("create link")
        .subject(LinkRef::Name("iv0".into()).to_string());
        assert!(matches!(
            err.kind(),
            ErrorKind::Unsupported { feature, .. } if feature == "ipvlan"
        ));
        assert_eq!(
            err.to_string(),
            "create link iv0: this kernel has no ipvlan support (CONFIG_IPVLAN); \
             try `modprobe ipvlan`"
        );
        assert_eq!(err.errno(), Some(libc::EOPNOTSUPP));
        let other = kernel(libc::EOPNOTSUPP, Some("something else"));
        assert!(matches!(
            unknown_kind_to_unsupported(other, "vlan").kind(),
            ErrorKind::Kernel { .. }
        ));
        let silent = unknown_kind_to_unsupported(kernel(libc::EOPNOTSUPP, None), "foo");
        assert_eq!(silent.to_string(), "this kernel has no foo support");
    }

    #[test]
    fn links_are_named_by_name_or_index() {
        assert_eq!(LinkRef::Name("eth0".into()).to_string(), "eth0");
        assert_eq!(LinkRef::Index(7).to_string(), "ifindex 7");
        assert_eq!(kind_support("vlan").unwrap().module, "8021q");
        assert!(kind_support("bridge").is_none());
    }
}
