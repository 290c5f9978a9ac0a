//! What callers ask the driver for: a new network, an attach target, the
//! addresses wanted, how to run a command.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;

/// What `network create` asks for, as given on the command line.
///
/// ```
/// let mut request = ipvlan::driver::NetworkCreate::new("isolated1");
/// request.subnets.push("192.168.10.0/24".parse().unwrap());
/// assert_eq!(request.driver, "ipvlan");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkCreate {
    /// Network name (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most 64 bytes).
    pub name: String,
    /// `-d|--driver`; anything but `ipvlan` is refused.
    pub driver: String,
    /// `--subnet`, in the order given.
    pub subnets: Vec<IpNet>,
    /// `--gateway`; each belongs to the subnet containing it.
    pub gateways: Vec<IpAddr>,
    /// `--ip-range`; each belongs to the subnet containing it.
    pub ip_ranges: Vec<IpNet>,
    /// `--aux-address name=IP`.
    pub aux_addresses: Vec<(String, IpAddr)>,
    /// `--ipv6`.
    pub ipv6: bool,
    /// `--internal`.
    pub internal: bool,
    /// `-o KEY=VALUE`: `parent`, `ipvlan_mode`, `ipvlan_flag`, `mtu`.
    pub options: Vec<(String, String)>,
}

impl NetworkCreate {
    /// A request with the given name, driver `ipvlan` and nothing else.
    pub fn new(name: impl Into<String>) -> NetworkCreate {
        NetworkCreate {
            name: name.into(),
            driver: "ipvlan".into(),
            subnets: Vec::new(),
            gateways: Vec::new(),
            ip_ranges: Vec::new(),
            aux_addresses: Vec::new(),
            ipv6: false,
            internal: false,
            options: Vec::new(),
        }
    }
}

/// The namespace to attach or detach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A container (named namespace) created by us or by `ip netns add`.
    Container(String),
    /// Any namespace file, e.g. `/proc/PID/ns/net`; a relative path is
    /// taken from the current directory.
    Path(PathBuf),
}

impl Target {
    /// Interprets a command-line argument: a path when it contains `/`,
    /// else a container name.
    ///
    /// ```
    /// use ipvlan::driver::Target;
    /// assert_eq!(Target::from_arg("web"), Target::Container("web".into()));
    /// assert!(matches!(Target::from_arg("/proc/1/ns/net"), Target::Path(_)));
    /// ```
    pub fn from_arg(arg: &str) -> Target {
        if arg.contains('/') {
            Target::Path(PathBuf::from(arg))
        } else {
            Target::Container(arg.to_string())
        }
    }

    /// The path as typed, for a target given by one.
    pub(crate) fn typed_path(&self) -> Option<&Path> {
        match self {
            Target::Path(path) => Some(path),
            Target::Container(_) => None,
        }
    }

    /// How messages name it: the container name or the path.
    pub(crate) fn label(&self) -> String {
        match self {
            Target::Container(name) => name.clone(),
            Target::Path(path) => path.display().to_string(),
        }
    }
}

/// Addresses requested for an attach (`--ip`, `--ip6`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttachRequest {
    /// `--ip`.
    pub ipv4: Option<Ipv4Addr>,
    /// `--ip6`.
    pub ipv6: Option<Ipv6Addr>,
}

/// What `run` asks for before its command starts: a container and the
/// networks it joins, made as one change (see
/// [`Manager::run_container`](super::Manager::run_container)).
///
/// ```
/// use ipvlan::driver::{AttachRequest, RunRequest};
/// let request = RunRequest {
///     name: Some("web".into()),
///     networks: vec![("db_net".into(), AttachRequest::default())],
/// };
/// assert_eq!(request.networks.len(), 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunRequest {
    /// `--name`; `None`: a generated one.
    pub name: Option<String>,
    /// The networks (name or ID) in the order they are attached, each with
    /// the addresses asked for on it.
    pub networks: Vec<(String, AttachRequest)>,
}

/// How [`Manager::exec`](super::Manager::exec) runs a command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// `-i`: keep stdin attached (otherwise stdin is `/dev/null`).
    pub interactive: bool,
    /// `-t`: accepted for Docker compatibility; the terminal is inherited.
    pub tty: bool,
    /// Pass on to the command each signal of `forwarded_signals` that
    /// another process sends this one, as `docker run` does (its sig-proxy): a
    /// supervisor that stops us with `SIGTERM` stops the command, and
    /// we outlive it to report its status. The signals are blocked in the
    /// calling thread while the command runs and taken by the thread
    /// that waits for it; in a process with other threads they must be
    /// blocked in those too, or one of them takes them instead. Off: the
    /// command gets only what is sent to it (or to its process group),
    /// and Ctrl-C and Ctrl-\ do nothing to this process meanwhile, as
    /// `system(3)` has it: `SIGINT` and `SIGQUIT` are caught by a handler
    /// that does nothing (`SA_RESTART`), not ignored, so programs other
    /// threads start meanwhile get them at their default; a call of
    /// another thread that `SA_RESTART` does not restart (`poll`,
    /// `nanosleep`) may return `EINTR` when one comes. Only a signal at
    /// its default action (which would end this process) is caught so: a
    /// handler of the program's own, and an ignored signal, are left as
    /// they are, and get what comes (an init's Ctrl-Alt-Del `SIGINT`, a
    /// runtime's shutdown on `SIGINT`).
    pub forward_signals: bool,
}
