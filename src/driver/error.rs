//! The driver's error type: a kind for the front ends to branch on and the
//! text to show the user.

use std::borrow::Cow;
use std::fmt;

use crate::store::ContainerState;
use crate::text::escape_controls;

/// What kind of failure an [`Error`] is; the CLI maps kinds to exit codes
/// and hints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A value given by the caller is invalid (option, name, address).
    InvalidValue,
    /// A network, container or endpoint does not exist.
    NotFound,
    /// The name or address is already taken.
    AlreadyExists,
    /// The object is in use (containers attached, processes running,
    /// a parent held by another network).
    InUse,
    /// The kernel lacks a feature (ipvlan, a mode, dummy, 802.1Q).
    Unsupported,
    /// The caller lacks privileges (CAP_NET_ADMIN, write access to the state).
    PermissionDenied,
    /// A kernel or file operation failed.
    OperationFailed,
    /// The command to run in a container does not exist (`docker run`'s 127).
    CommandNotFound,
    /// The command to run exists but cannot be executed: not executable,
    /// a directory, not a program (`docker run`'s 126).
    CommandNotExecutable,
    /// The command started, but how it ended is unknown: the process
    /// keeping its status was killed (it may still run).
    StatusLost,
    /// A signal to pass on to the command (this one) came before the
    /// command started: it was not started (`docker run` exits 128 + the
    /// signal's number).
    StoppedBeforeStart(i32),
}

/// A driver error: its kind, the message shown to the user and the
/// errno behind it when there is one. The message is one line: control
/// characters in it (from names, paths, values the caller gave) are
/// escaped ([`escape_controls`]).
///
/// ```
/// use ipvlan::driver::{Error, ErrorKind};
/// let error = Error::invalid("bad value");
/// assert_eq!(error.kind(), ErrorKind::InvalidValue);
/// assert_eq!(error.to_string(), "bad value");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Error(Box<Details>);

/// Behind a box so that an `Error` is one pointer: a `Result` of it is
/// passed in registers and every `?` moves a word, not five; that is kilobytes
/// of the release binary over the driver's and front ends' `?`s.
#[derive(Clone, PartialEq, Eq)]
struct Details {
    kind: ErrorKind,
    message: String,
    errno: Option<i32>,
    /// The address of [`Error::address_held_on_port`].
    held: Option<std::net::IpAddr>,
}

impl fmt::Debug for Error {
    // As `#[derive(Debug)]` printed the struct before its fields were boxed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.0.kind)
            .field("message", &self.0.message)
            .field("errno", &self.0.errno)
            .finish()
    }
}

impl Error {
    /// An error of the given kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error(Box::new(Details {
            kind,
            message: one_line(message.into()),
            errno: None,
            held: None,
        }))
    }

    /// An invalid value given by the caller.
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InvalidValue, message)
    }

    /// Something named does not exist.
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::NotFound, message)
    }

    /// A name or address already taken.
    pub fn already_exists(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::AlreadyExists, message)
    }

    /// The kernel refused `address` on a new link of ours (`kernel`, its
    /// error): another ipvlan link on the same parent holds it (`EADDRINUSE`
    /// since Linux 4.16), one that is no endpoint of the network (a host's
    /// own ipvlan link, another tool's container, or one of a namespace
    /// still being torn down). [`Error::is_address_held_on_port`] tells it.
    pub fn address_held_on_port(address: std::net::IpAddr, kernel: &Error) -> Error {
        let mut error = Error::already_exists(format!(
            "{address} is held by another ipvlan link on the network's parent, not one of the network's ({})",
            kernel.message()
        ));
        error.0.errno = Some(libc::EADDRINUSE);
        error.0.held = Some(address);
        error
    }

    /// Whether this is [`Error::address_held_on_port`]'s refusal (whatever
    /// context was added since).
    pub fn is_address_held_on_port(&self) -> bool {
        self.0.held.is_some()
    }

    /// The address of [`Error::address_held_on_port`]'s refusal.
    pub fn held_address(&self) -> Option<std::net::IpAddr> {
        self.0.held
    }

    /// [`Error::address_held_on_port`]'s refusal as a plain failure (any
    /// other error as it is): for an address the caller gave or a plugin
    /// chose, which a retry would meet again.
    pub(crate) fn not_passed_over(mut self) -> Error {
        if self.0.held.take().is_some() {
            self.0.kind = ErrorKind::OperationFailed;
        }
        self
    }

    /// An object still in use.
    pub fn in_use(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::InUse, message)
    }

    /// A missing kernel feature.
    pub fn unsupported(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::Unsupported, message)
    }

    /// A failed operation.
    pub fn failed(message: impl Into<String>) -> Error {
        Error::new(ErrorKind::OperationFailed, message)
    }

    /// A failure that another try may not meet (others' commands kept
    /// changing what this one needed): `EAGAIN`, which a CNI runtime is
    /// told as code 11, "try again later".
    pub fn try_again(message: impl Into<String>) -> Error {
        let mut error = Error::failed(message);
        error.0.errno = Some(libc::EAGAIN);
        error
    }

    /// A failed system call or kernel request, keeping its errno; EPERM and
    /// EACCES become [`ErrorKind::PermissionDenied`].
    pub fn os(message: impl Into<String>, errno: i32) -> Error {
        let kind = if errno == libc::EPERM || errno == libc::EACCES {
            ErrorKind::PermissionDenied
        } else {
            ErrorKind::OperationFailed
        };
        Error(Box::new(Details {
            kind,
            message: one_line(message.into()),
            errno: Some(errno),
            held: None,
        }))
    }

    /// A failed file operation, with what was being done.
    pub fn io(what: impl fmt::Display, error: &std::io::Error) -> Error {
        Error::io_dyn(&what, error)
    }

    /// [`Error::io`]'s body, kept once for every kind of `what`.
    #[cold]
    #[inline(never)]
    fn io_dyn(what: &dyn fmt::Display, error: &std::io::Error) -> Error {
        match error.raw_os_error() {
            Some(errno) => Error::os(format!("{what}: {error}"), errno),
            None => Error::failed(format!("{what}: {error}")),
        }
    }

    /// The command `program` was not started: `signal`, one to pass on
    /// to it, came first ([`ErrorKind::StoppedBeforeStart`]).
    pub fn stopped_before_start(program: &str, signal: i32) -> Error {
        Error::new(
            ErrorKind::StoppedBeforeStart(signal),
            format!("{program} was not started: stopped by signal {signal}"),
        )
    }

    /// The command `program` started, and its status was lost (`error`,
    /// the wait's): [`ErrorKind::StatusLost`].
    pub fn status_lost(program: &str, error: &std::io::Error) -> Error {
        Error::new(
            ErrorKind::StatusLost,
            format!("{program} was started, but {error}"),
        )
    }

    /// A command that could not be started: not found (ENOENT, ENOTDIR) and
    /// cannot be executed (EACCES, ENOEXEC, ...) get their own kinds, never
    /// [`ErrorKind::PermissionDenied`] (an EACCES from execve says nothing
    /// about our privileges); anything else (EAGAIN, ENOMEM) is ours.
    ///
    /// ```
    /// use ipvlan::driver::{Error, ErrorKind};
    /// let denied = std::io::Error::from_raw_os_error(libc::EACCES);
    /// let error = Error::spawn("/etc/hosts", &denied);
    /// assert_eq!(error.kind(), ErrorKind::CommandNotExecutable);
    /// assert_eq!(error.to_string(), "/etc/hosts: Permission denied");
    /// ```
    pub fn spawn(program: &str, error: &std::io::Error) -> Error {
        let errno = error.raw_os_error();
        let kind = match errno {
            Some(libc::ENOENT | libc::ENOTDIR) => ErrorKind::CommandNotFound,
            Some(
                libc::EACCES
                | libc::EPERM
                | libc::ENOEXEC
                | libc::EISDIR
                | libc::ETXTBSY
                | libc::ELOOP
                | libc::ENAMETOOLONG
                | libc::ELIBBAD,
            ) => ErrorKind::CommandNotExecutable,
            _ => return Error::io(format_args!("starting {program}"), error),
        };
        let why = if kind == ErrorKind::CommandNotFound {
            "executable file not found".to_string()
        } else {
            // The system's text without std's " (os error N)" suffix.
            let text = error.to_string();
            text.split(" (os error ")
                .next()
                .unwrap_or_default()
                .to_string()
        };
        Error(Box::new(Details {
            kind,
            message: one_line(format!("{program}: {why}")),
            errno,
            held: None,
        }))
    }

    /// The kind, for the caller to branch on.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The errno of the failed system call or kernel request, if any.
    pub fn errno(&self) -> Option<i32> {
        self.0.errno
    }

    /// The message without any hint.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// Whether the failure comes from missing privileges: the message then
    /// says the command needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN), or,
    /// where the process has both, that a security policy refused it.
    ///
    /// ```
    /// let error = ipvlan::driver::Error::os("creating link", libc::EPERM);
    /// assert!(error.needs_root());
    /// ```
    pub fn needs_root(&self) -> bool {
        self.0.kind == ErrorKind::PermissionDenied
    }

    /// Prefixes the message with context (`creating eth0.20: ...`).
    pub fn context(mut self, what: impl fmt::Display) -> Error {
        self.0.message = one_line(format!("{what}: {}", self.0.message));
        self
    }

    /// Adds what the failure left, and what to do, after the message
    /// (`...; left for restore`).
    pub(crate) fn and_left(mut self, what: impl fmt::Display) -> Error {
        self.0.message = one_line(format!("{}; {what}", self.0.message));
        self
    }
}

/// `message` with its control characters escaped: every message may carry
/// text the caller gave, and a front end prints it as one line.
fn one_line(message: String) -> String {
    match escape_controls(&message) {
        Cow::Borrowed(_) => message,
        Cow::Owned(escaped) => escaped,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)?;
        // A message that names the capability it lacks says so already.
        if self.needs_root() && !self.0.message.contains("CAP_") {
            f.write_str(privilege_hint(super::privileges::own_capabilities()))?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {}

/// What a refusal of the kernel (EPERM, EACCES it did not explain) is
/// likely to be, by this process's effective capabilities `caps`: root's
/// missing, or, when it holds what the commands need, a security policy
/// (a seccomp filter, AppArmor, SELinux: a container's, a service's),
/// which no `sudo` mends.
fn privilege_hint(caps: Option<u64>) -> &'static str {
    let both = (1 << super::privileges::CAP_NET_ADMIN) | (1 << super::privileges::CAP_SYS_ADMIN);
    match caps {
        Some(caps) if caps & both == both => {
            " (refused although this process has CAP_NET_ADMIN and CAP_SYS_ADMIN: a security policy forbids it, such as a seccomp filter, AppArmor or SELinux, or a user namespace)"
        }
        _ => " (this needs root: CAP_NET_ADMIN and CAP_SYS_ADMIN)",
    }
}

/// A netlink failure: the layer's text (operation, object, namespace, the
/// kernel's own words) and its errno; a link kind the kernel does not know
/// becomes [`ErrorKind::Unsupported`] with what to load.
impl From<crate::netlink::Error> for Error {
    fn from(error: crate::netlink::Error) -> Error {
        if let crate::netlink::ErrorKind::Unsupported { feature, .. } = error.kind() {
            return Error::unsupported(missing_kind_message(feature));
        }
        match error.errno() {
            // A refusal the kernel explained (`EACCES`, "IPv6 is disabled
            // on nexthop device") is no missing privilege: privileges fail
            // with `EPERM` before any netlink check.
            Some(libc::EACCES) if error.ext_ack().is_some() => {
                let mut failed = Error::failed(error.to_string());
                failed.0.errno = Some(libc::EACCES);
                failed
            }
            Some(errno) => Error::os(error.to_string(), errno),
            None => Error::failed(error.to_string()),
        }
    }
}

/// A state-directory failure; address-management refusals inside it keep
/// their texts (see `From<IpamError>`).
impl From<crate::store::StoreError> for Error {
    fn from(error: crate::store::StoreError) -> Error {
        if let Some(refusal) = error.ipam() {
            return Error::from(refusal.clone());
        }
        let text = format!("state directory: {error}");
        // The system's errno where there is one (ENOSPC, EROFS and EIO
        // call for different things of an embedder).
        let errno = match &error {
            crate::store::StoreError::Io(failure) => failure.source.raw_os_error(),
            _ => None,
        };
        if error.is_permission_denied() {
            Error::os(text, errno.unwrap_or(libc::EACCES))
        } else {
            let mut failed = Error::failed(text);
            failed.0.errno = errno;
            failed
        }
    }
}

/// An address-management refusal, with its text: a taken address is
/// [`ErrorKind::AlreadyExists`], an overlapping pool [`ErrorKind::InUse`],
/// exhaustion a failed operation, anything else an invalid value.
impl From<crate::ipam::IpamError> for Error {
    fn from(error: crate::ipam::IpamError) -> Error {
        use crate::ipam::IpamError;
        match error {
            IpamError::AddressInUse { .. } => Error::already_exists(error.to_string()),
            IpamError::PoolOverlap { .. } => Error::in_use(error.to_string()),
            IpamError::NoAvailableAddresses { .. } | IpamError::DefaultPoolsExhausted { .. } => {
                Error::failed(error.to_string())
            }
            _ => Error::invalid(error.to_string()),
        }
    }
}

/// The message for a kernel without a link kind we need: rtnl's config
/// option and module, and what the driver needs the kind for.
pub(crate) fn missing_kind_message(kind: &str) -> String {
    let (what, needed_for) = match kind {
        "dummy" => ("dummy link", ", needed for a network without parent"),
        "vlan" => ("802.1Q VLAN", ", needed for a NAME.VLANID parent"),
        other => (other, ""),
    };
    match crate::rtnl::kind_support(kind) {
        Some(support) => format!(
            "this kernel has no {what} support ({}){needed_for}; try `modprobe {}`",
            support.config, support.module
        ),
        None => format!("this kernel has no {what} link support{needed_for}"),
    }
}

/// What is said of container `name` whose record a killed `run` left
/// `creating` or a killed `rm` left `removing`, and what finishes it;
/// `None` for a whole one.
pub(crate) fn left_half_done(name: &str, state: ContainerState) -> Option<String> {
    match state {
        ContainerState::Creating => Some(format!(
            "container {name} was left half made by an interrupted run (`ipvlan restore` rolls it back)"
        )),
        ContainerState::Removing => Some(format!(
            "container {name} was left half removed by an interrupted rm (`ipvlan restore` finishes it)"
        )),
        ContainerState::Created => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(errno: i32, message: Option<&str>) -> Error {
        Error::from(crate::netlink::Error::new(
            crate::netlink::ErrorKind::Kernel {
                errno,
                message: message.map(str::to_owned),
                offset: None,
            },
        ))
    }

    /// A refusal the kernel explained with `EACCES` is not said to need
    /// root (the kernel's words say why); a bare `EPERM` or `EACCES` is.
    /// Before, "IPv6 is disabled on nexthop device" came with "this needs
    /// root: CAP_NET_ADMIN".
    #[test]
    fn only_an_unexplained_refusal_needs_root() {
        let explained = kernel(libc::EACCES, Some("IPv6 is disabled on nexthop device"));
        assert!(!explained.needs_root(), "{explained}");
        assert_eq!(explained.errno(), Some(libc::EACCES));
        assert!(
            !explained.to_string().contains("CAP_NET_ADMIN"),
            "{explained}"
        );
        for errno in [libc::EPERM, libc::EACCES] {
            let bare = kernel(errno, None);
            assert!(bare.needs_root(), "{bare}");
            let hint = privilege_hint(super::super::privileges::own_capabilities());
            assert!(bare.to_string().ends_with(hint), "{bare}");
        }
    }

    /// A process that has the capabilities is told of a policy, not of
    /// root: `sudo` would not mend it. Before, every refusal said "this
    /// needs root: CAP_NET_ADMIN", even to root in a container whose
    /// AppArmor profile refused a mount.
    #[test]
    fn a_refusal_names_a_policy_where_the_capabilities_are_held() {
        let net_admin = 1 << super::super::privileges::CAP_NET_ADMIN;
        let sys_admin = 1 << super::super::privileges::CAP_SYS_ADMIN;
        let root = " (this needs root: CAP_NET_ADMIN and CAP_SYS_ADMIN)";
        assert_eq!(privilege_hint(Some(0)), root);
        assert_eq!(privilege_hint(Some(net_admin)), root);
        assert_eq!(privilege_hint(Some(sys_admin)), root);
        assert_eq!(privilege_hint(None), root);
        let policy = privilege_hint(Some(net_admin | sys_admin | 1));
        assert!(policy.starts_with(
            " (refused although this process has CAP_NET_ADMIN and CAP_SYS_ADMIN: a security policy"
        ));
    }
}
