//! Networks and endpoints with Docker's ipvlan semantics.
//!
//! A [`Manager`] owns one state directory. Every method is synchronous and
//! takes the state lock for its whole duration, so concurrent invocations
//! (several processes running the CLI at once) are serialised and never hand
//! out an address twice.
//!
//! Every change follows the same order: validate everything that can be
//! checked without touching anything, write the intent (a record in state
//! `creating` / `attaching` / `removing` / `detaching`), change the kernel,
//! then mark the record done. A failure undoes the steps already taken; a
//! process killed at any point leaves an intent that [`Manager::restore`]
//! rolls back or finishes.
//!
//! What the driver keeps beside the store's records (see [`crate::store`]):
//!
//! ```text
//! hosts/<network id>            the network's hosts file, updated in place
//! hosts/containers/<name>       union view of a container on several networks
//! hosts/unions/<network id>/<name>  marks containers of the network with a union view
//! records/containers/<name>.json    the containers we created
//! logs/<name>.log               output of `run -d` commands
//! ```
//!
//! and `/etc/netns/<name>/hosts`, a symlink to the file the container sees
//! (mounted over `/etc/hosts` by `ip netns exec` and by [`Manager::exec`]).
//!
//! ```no_run
//! use ipvlan::driver::{AttachRequest, Config, Manager, NetworkCreate, Target};
//!
//! # fn main() -> Result<(), ipvlan::driver::Error> {
//! let manager = Manager::open(Config::from_env())?;
//! let mut request = NetworkCreate::new("db_net");
//! request.subnets.push("192.168.1.0/24".parse().unwrap());
//! request.options.push(("parent".into(), "eth0".into()));
//! let network = manager.create_network(&request)?;
//! let container = manager.create_container(Some("web"))?;
//! let endpoint = manager.connect(
//!     &network.name,
//!     &Target::Container(container.name.clone()),
//!     &AttachRequest::default(),
//! )?;
//! println!("{} has {:?}", container.name, endpoint.ipv4);
//! # Ok(())
//! # }
//! ```

mod container;
mod doctor;
mod endpoint;
mod error;
mod hosts;
mod ipam_glue;
mod kernel;
mod net;
mod network;
mod options;
mod restore;
mod state;

pub use error::{Error, ErrorKind};
pub use kernel::KernelVersion;
pub use options::{MAX_NAME_LEN, VALID_OPTION_KEYS};

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

pub use crate::store::{DEFAULT_STATE_DIR, STATE_DIR_ENV};
/// Where iproute2 keeps named network namespaces.
pub const DEFAULT_NETNS_DIR: &str = "/run/netns";
/// Where `ip netns exec` looks for per-namespace `/etc` overrides.
pub const DEFAULT_ETC_NETNS_DIR: &str = "/etc/netns";

/// Where the manager keeps its state and finds namespaces.
///
/// ```
/// let config = ipvlan::driver::Config::new("/tmp/ipvlan-state");
/// assert_eq!(config.netns_dir, std::path::Path::new("/run/netns"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// State directory (networks, endpoints, addresses, hosts files, lock).
    pub state_dir: PathBuf,
    /// Directory of named network namespaces (`/run/netns`).
    pub netns_dir: PathBuf,
    /// Directory of per-namespace `/etc` overrides (`/etc/netns`).
    pub etc_netns_dir: PathBuf,
}

impl Config {
    /// A configuration with the given state directory and the system's
    /// namespace directories.
    pub fn new(state_dir: impl Into<PathBuf>) -> Config {
        Config {
            state_dir: state_dir.into(),
            netns_dir: PathBuf::from(DEFAULT_NETNS_DIR),
            etc_netns_dir: PathBuf::from(DEFAULT_ETC_NETNS_DIR),
        }
    }

    /// The configuration from the environment: `IPVLAN_STATE_DIR`,
    /// `IPVLAN_NETNS_DIR` and `IPVLAN_ETC_NETNS_DIR` override the defaults
    /// (`/var/lib/ipvlan`, `/run/netns`, `/etc/netns`).
    ///
    /// ```
    /// let config = ipvlan::driver::Config::from_env();
    /// assert!(!config.state_dir.as_os_str().is_empty());
    /// ```
    pub fn from_env() -> Config {
        fn var(name: &str, default: &str) -> PathBuf {
            match std::env::var_os(name) {
                Some(value) if !value.is_empty() => PathBuf::from(value),
                _ => PathBuf::from(default),
            }
        }
        Config {
            state_dir: var(STATE_DIR_ENV, DEFAULT_STATE_DIR),
            netns_dir: var("IPVLAN_NETNS_DIR", DEFAULT_NETNS_DIR),
            etc_netns_dir: var("IPVLAN_ETC_NETNS_DIR", DEFAULT_ETC_NETNS_DIR),
        }
    }
}

// The ipvlan mode and flag of a network (`-o ipvlan_mode=`, `-o
// ipvlan_flag=`) are the stored ones: one type each serves the records and
// the driver.
pub use crate::store::{Flag, Mode};

impl Mode {
    /// Parses an option value, case-sensitively, with Docker's error text.
    ///
    /// ```
    /// use ipvlan::driver::Mode;
    /// assert_eq!(Mode::parse("l3").unwrap(), Mode::L3);
    /// assert_eq!(Mode::L3s.as_str(), "l3s");
    /// assert!(Mode::parse("L2").is_err());
    /// ```
    pub fn parse(value: &str) -> Result<Mode, Error> {
        match value {
            "l2" | "" => Ok(Mode::L2),
            "l3" => Ok(Mode::L3),
            "l3s" => Ok(Mode::L3s),
            other => Err(Error::invalid(format!(
                "requested ipvlan mode '{other}' is not valid, 'l2' mode is the ipvlan driver default"
            ))),
        }
    }
}

/// `l2`, Docker's default.
impl Default for Mode {
    fn default() -> Mode {
        Mode::L2
    }
}

impl Flag {
    /// Parses an option value, case-sensitively, with Docker's error text.
    ///
    /// ```
    /// use ipvlan::driver::Flag;
    /// assert_eq!(Flag::parse("private").unwrap(), Flag::Private);
    /// assert_eq!(Flag::Vepa.as_str(), "vepa");
    /// assert!(Flag::parse("Bridge").is_err());
    /// ```
    pub fn parse(value: &str) -> Result<Flag, Error> {
        match value {
            "bridge" | "" => Ok(Flag::Bridge),
            "private" => Ok(Flag::Private),
            "vepa" => Ok(Flag::Vepa),
            other => Err(Error::invalid(format!(
                "requested ipvlan flag '{other}' is not valid, 'bridge' is the ipvlan driver default"
            ))),
        }
    }
}

/// `bridge`, Docker's default.
impl Default for Flag {
    fn default() -> Flag {
        Flag::Bridge
    }
}

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

/// One subnet of a network with what belongs to it (`IPAM.Config[]`): the
/// address manager's own description, also what is stored. Its gateway is
/// the one given, or the first usable address of its ip-range or subnet
/// (`None` only in records made before every subnet had one, or when the
/// range holds no usable address).
pub type SubnetInfo = crate::ipam::SubnetSpec;

/// A network as stored, with its endpoints (for `network ls|inspect`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    /// 64 lowercase hex digits.
    pub id: String,
    /// The name given at create.
    pub name: String,
    /// When the network was created (`inspect`'s `Created`).
    pub created: crate::store::Timestamp,
    /// Always `ipvlan`.
    pub driver: String,
    /// ipvlan mode.
    pub mode: Mode,
    /// ipvlan flag.
    pub flag: Flag,
    /// Parent link in the host namespace (`di-<short id>` for a dummy).
    pub parent: String,
    /// Whether the parent was created by us (dummy or `NAME.VLANID`).
    pub parent_created: bool,
    /// MTU given with `-o mtu=`, if any.
    pub mtu: Option<u32>,
    /// Internal (no parent or `--internal`): no default route.
    pub internal: bool,
    /// IPv6 enabled.
    pub ipv6: bool,
    /// The `-o` options as given (for `inspect`'s `Options`).
    pub options: Vec<(String, String)>,
    /// Subnets, IPv4 first.
    pub subnets: Vec<SubnetInfo>,
    /// Attached endpoints.
    pub endpoints: Vec<EndpointInfo>,
    /// Things the caller should show the user (e.g. a parent that is down).
    /// Only filled by [`Manager::create_network`].
    pub warnings: Vec<String>,
}

impl NetworkInfo {
    /// The first 12 characters of the ID.
    ///
    /// ```
    /// # let info = ipvlan::driver::NetworkInfo::example();
    /// assert_eq!(info.short_id().len(), 12);
    /// ```
    pub fn short_id(&self) -> &str {
        self.id.get(..12).unwrap_or(&self.id)
    }

    #[doc(hidden)]
    pub fn example() -> NetworkInfo {
        NetworkInfo {
            id: "0123456789abcdef".repeat(4),
            name: "example".into(),
            created: crate::store::Timestamp {
                secs: 1_714_564_800,
                nanos: 123_456_789,
            },
            driver: "ipvlan".into(),
            mode: Mode::L2,
            flag: Flag::Bridge,
            parent: "di-0123456789ab".into(),
            parent_created: true,
            mtu: None,
            internal: true,
            ipv6: false,
            options: Vec::new(),
            subnets: Vec::new(),
            endpoints: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

/// One attachment of a namespace to a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    /// The endpoint's ID, unique within its network (`inspect`'s
    /// `EndpointID`): the container name, or `path_...` for a namespace
    /// given by path.
    pub endpoint_id: String,
    /// Network name.
    pub network: String,
    /// Network ID.
    pub network_id: String,
    /// Container name, or the namespace path for a path target.
    pub container: String,
    /// The namespace file the link lives in.
    pub netns_path: PathBuf,
    /// Interface name inside the namespace (`eth0`, ...).
    pub ifname: String,
    /// IPv4 address with the subnet's prefix.
    pub ipv4: Option<Ipv4Net>,
    /// IPv6 address with the subnet's prefix.
    pub ipv6: Option<Ipv6Net>,
    /// MAC address (the parent's), `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
}

/// A container: a named network namespace managed by us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Namespace name (`/run/netns/NAME`).
    pub name: String,
    /// Namespace file.
    pub netns_path: PathBuf,
    /// Its endpoints, one per network.
    pub endpoints: Vec<EndpointInfo>,
}

/// The namespace to attach or detach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A container (named namespace) created by us or by `ip netns add`.
    Container(String),
    /// Any namespace file, e.g. `/proc/PID/ns/net`.
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
}

/// Addresses requested for an attach (`--ip`, `--ip6`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttachRequest {
    /// `--ip`.
    pub ipv4: Option<Ipv4Addr>,
    /// `--ip6`.
    pub ipv6: Option<Ipv6Addr>,
}

/// How [`Manager::exec`] runs a command.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// `-i`: keep stdin attached (otherwise stdin is `/dev/null`).
    pub interactive: bool,
    /// `-t`: accepted for Docker compatibility; the terminal is inherited.
    pub tty: bool,
}

/// A command's exit status as `docker run` reports it: the command's own
/// code, 128+N for a signal, 126 cannot run, 127 not found.
pub type ExitStatusCode = i32;

/// What [`Manager::restore`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Parents (dummy, VLAN) re-created, as `network: parent`.
    pub parents_recreated: Vec<String>,
    /// Plain parents that are missing (networks kept), as `network: parent`.
    pub parents_missing: Vec<String>,
    /// Endpoints whose link was re-created, as `network: container`.
    pub links_recreated: Vec<String>,
    /// Endpoints kept as they were.
    pub endpoints_kept: usize,
    /// Endpoints released because their namespace is gone, as `network: container`.
    pub endpoints_released: Vec<String>,
    /// Interrupted operations finished or rolled back.
    pub intents_repaired: usize,
    /// Failures that did not stop the restore.
    pub errors: Vec<String>,
}

/// One line of [`doctor`]'s report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoctorCheck {
    /// What was checked.
    pub name: String,
    /// Whether it is usable.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

/// What [`doctor`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DoctorReport {
    /// The checks, in order.
    pub checks: Vec<DoctorCheck>,
}

impl DoctorReport {
    /// Whether every check passed.
    pub fn all_ok(&self) -> bool {
        self.checks.iter().all(|check| check.ok)
    }
}

/// The entry point: networks, containers and endpoints over one state
/// directory.
#[derive(Debug)]
pub struct Manager {
    config: Config,
    state: state::State,
}

impl Manager {
    /// Opens (creating if needed, mode 0700) the state directory.
    ///
    /// ```no_run
    /// let manager = ipvlan::driver::Manager::open(ipvlan::driver::Config::from_env())?;
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn open(config: Config) -> Result<Manager, Error> {
        let state = state::State::open(&config)?;
        Ok(Manager { config, state })
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Validates the request, checks kernel support, creates the parent if
    /// needed (dummy or `NAME.VLANID`) and records the network.
    ///
    /// ```no_run
    /// # use ipvlan::driver::{Config, Manager, NetworkCreate};
    /// # let manager = Manager::open(Config::from_env())?;
    /// let mut req = NetworkCreate::new("ipvlan20");
    /// req.subnets.push("192.168.20.0/24".parse().unwrap());
    /// req.options.push(("parent".into(), "eth0.20".into()));
    /// let info = manager.create_network(&req)?;
    /// for warning in &info.warnings {
    ///     eprintln!("warning: {warning}");
    /// }
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn create_network(&self, req: &NetworkCreate) -> Result<NetworkInfo, Error> {
        self.do_create_network(req)
    }

    /// Removes a network (by name, ID or ID prefix); refused while containers
    /// are attached. Deletes the parent if we created it and no other network
    /// uses it.
    ///
    /// ```no_run
    /// # let manager = ipvlan::driver::Manager::open(ipvlan::driver::Config::from_env())?;
    /// manager.remove_network("ipvlan20")?;
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn remove_network(&self, name_or_id: &str) -> Result<(), Error> {
        self.do_remove_network(name_or_id)
    }

    /// Every network, in creation order.
    ///
    /// ```no_run
    /// # let manager = ipvlan::driver::Manager::open(ipvlan::driver::Config::from_env())?;
    /// for network in manager.networks()? {
    ///     println!("{} {} {}", network.short_id(), network.name, network.driver);
    /// }
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn networks(&self) -> Result<Vec<NetworkInfo>, Error> {
        self.do_networks()
    }

    /// One network by name, ID or unique ID prefix.
    ///
    /// ```no_run
    /// # let manager = ipvlan::driver::Manager::open(ipvlan::driver::Config::from_env())?;
    /// let network = manager.network("db_net")?;
    /// for endpoint in &network.endpoints {
    ///     println!("{} {:?} {}", endpoint.container, endpoint.ipv4, endpoint.mac);
    /// }
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn network(&self, name_or_id: &str) -> Result<NetworkInfo, Error> {
        self.do_network(name_or_id)
    }

    /// Creates a container (a named namespace under the netns directory);
    /// a random name when `None`.
    ///
    /// ```no_run
    /// # let manager = ipvlan::driver::Manager::open(ipvlan::driver::Config::from_env())?;
    /// let named = manager.create_container(Some("web"))?;
    /// let random = manager.create_container(None)?;
    /// assert_ne!(named.name, random.name);
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn create_container(&self, name: Option<&str>) -> Result<ContainerInfo, Error> {
        self.do_create_container(name)
    }

    /// Attaches a namespace to a network: ipvlan link `ethN` created in the
    /// namespace, addresses, routes, name resolution.
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
        self.do_connect(network, target, req)
    }

    /// Detaches a namespace: deletes the link, releases its addresses,
    /// updates name resolution.
    ///
    /// ```no_run
    /// # use ipvlan::driver::{Config, Manager, Target};
    /// # let manager = Manager::open(Config::from_env())?;
    /// manager.disconnect("db_net", &Target::Container("web".into()))?;
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn disconnect(&self, network: &str, target: &Target) -> Result<(), Error> {
        self.do_disconnect(network, target)
    }

    /// Detaches a container from every network and deletes its namespace.
    /// Refused while processes remain inside unless `force`, which kills them.
    ///
    /// ```no_run
    /// # let manager = ipvlan::driver::Manager::open(ipvlan::driver::Config::from_env())?;
    /// match manager.remove_container("web", false) {
    ///     Err(error) if error.kind() == ipvlan::driver::ErrorKind::InUse => {
    ///         manager.remove_container("web", true)?; // kills what still runs
    ///     }
    ///     other => other?,
    /// }
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn remove_container(&self, name: &str, force: bool) -> Result<(), Error> {
        self.do_remove_container(name, force)
    }

    /// Every container we created, with its endpoints.
    ///
    /// ```no_run
    /// # let manager = ipvlan::driver::Manager::open(ipvlan::driver::Config::from_env())?;
    /// for container in manager.containers()? {
    ///     let networks: Vec<&str> = container.endpoints.iter().map(|e| e.network.as_str()).collect();
    ///     println!("{} {}", container.name, networks.join(","));
    /// }
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn containers(&self) -> Result<Vec<ContainerInfo>, Error> {
        self.do_containers()
    }

    /// Runs `argv` inside the container's namespace in the foreground, with
    /// the container's hosts file as `/etc/hosts`; returns its exit status.
    ///
    /// ```no_run
    /// # use ipvlan::driver::{Config, ExecOptions, Manager};
    /// # let manager = Manager::open(Config::from_env())?;
    /// let argv = vec!["ping".to_string(), "-c".into(), "1".into(), "ipv1".into()];
    /// let status = manager.exec("ipv2", &argv, &ExecOptions::default())?;
    /// println!("exit status {status}");
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn exec(
        &self,
        container: &str,
        argv: &[String],
        opts: &ExecOptions,
    ) -> Result<ExitStatusCode, Error> {
        self.do_exec(container, argv, opts)
    }

    /// Starts `argv` in the background inside the container's namespace
    /// (stdin `/dev/null`, output to a log file in the state directory);
    /// returns its pid.
    ///
    /// ```no_run
    /// # let manager = ipvlan::driver::Manager::open(ipvlan::driver::Config::from_env())?;
    /// let pid = manager.spawn_detached("web", &["sleep".into(), "1000".into()])?;
    /// println!("started {pid}, output in {}", manager.log_path("web").display());
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn spawn_detached(&self, container: &str, argv: &[String]) -> Result<u32, Error> {
        self.do_spawn_detached(container, argv)
    }

    /// Makes kernel and state agree again (at boot, after a crash).
    ///
    /// ```no_run
    /// # let manager = ipvlan::driver::Manager::open(ipvlan::driver::Config::from_env())?;
    /// let report = manager.restore()?;
    /// for parent in &report.parents_recreated {
    ///     println!("re-created {parent}");
    /// }
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn restore(&self) -> Result<RestoreReport, Error> {
        self.do_restore()
    }

    /// Path of the log file of a detached command in `container`.
    pub fn log_path(&self, container: &str) -> PathBuf {
        self.config
            .state_dir
            .join("logs")
            .join(format!("{container}.log"))
    }
}

/// Probes what this host supports: kernel version, ipvlan/dummy/8021q in a
/// throwaway namespace, modes and flags, privileges, the state directory.
///
/// ```no_run
/// let report = ipvlan::driver::doctor(&ipvlan::driver::Config::from_env());
/// for check in &report.checks {
///     println!("{} {}: {}", if check.ok { "ok " } else { "BAD" }, check.name, check.detail);
/// }
/// ```
pub fn doctor(config: &Config) -> DoctorReport {
    doctor::run(config)
}

/// `bytes` random bytes as lowercase hex.
pub(crate) fn random_hex(bytes: usize) -> Result<String, Error> {
    crate::store::random_hex(bytes).map_err(|e| Error::io("reading /dev/urandom", &e))
}
