//! Networks and endpoints with Docker's ipvlan semantics.
//!
//! A [`Manager`] owns one state directory. Every method is synchronous.
//! Every change takes the state lock for its whole duration, so concurrent
//! invocations (several processes running the CLI at once) are serialised
//! and never hand out an address twice; listings read without the lock
//! (each record is replaced whole, see [`crate::store`]) and never wait for
//! a writer. A change makes its final state durable once, before it
//! returns (`Locked::commit`).
//!
//! Every change follows the same order: validate everything that can be
//! checked without touching anything, write the intent (`creating` /
//! `attaching` / `removing` / `detaching`, or `relinking` for a link
//! `restore` makes again: a record in that state, or, for a single attach
//! or detach in a store with a commit log, a line in the log's page, and
//! for a batch a line each of its intents file), change the kernel,
//! then mark the record done. A failure undoes the steps already taken; a
//! process killed at any point leaves an intent that [`Manager::restore`]
//! rolls back or finishes.
//!
//! The rooms, each a file:
//!
//! ```text
//! networks         network create|rm|ls|inspect: validation, records
//! parent           a network's parent link: plan, create (dummy, VLAN),
//!                  delete, re-create; the shared-parent mode/flag guard
//! subnets          subnets of a new network: given, default pools, overlaps
//! endpoints        network connect|disconnect: addresses, intent, link, names
//! batch            connect_many|disconnect_many: many namespaces, one lock,
//!                  creates sent together, one commit, all or nothing
//! listed           a batch connect's listings: its targets' missing
//!                  records and views found without a lookup each
//! cni              the CNI plugin's calls: a config's network record,
//!                  ADD/DEL/CHECK/GC of attachments keyed by container id
//!                  and ifname
//! bounds           a CNI network's rangeStart-rangeEnd, kept by its ADDs
//!                  and by the attaches of network connect and run
//! endpoint_link    the endpoint's kernel link: create, configure, check, delete
//! netns_identity   which namespace sits at a recorded path, and whether it
//!                  is still the one attached
//! hosts            name resolution: hosts files and /etc/netns views
//! containers       named namespaces and the commands run in them; `run`'s
//!                  create-and-attach as one change (all of it or nothing)
//! restore          make kernel and state agree after a crash or reboot
//! kernel_support   kernel version and link kinds
//! doctor           what this host supports
//! cni_readiness    doctor's CNI lines: where the plugin is installed, the
//!                  configs that name it
//! options, request, report, error, privileges: the API's values
//! ```
//!
//! Every operation opens one netlink handle per namespace it works in and
//! passes it down; nothing is cached between calls.
//!
//! What the driver keeps beside the store's records (see [`crate::store`]):
//!
//! ```text
//! hosts/<network id>            the network's hosts file, updated in place
//! hosts/k/<network key>         its short name (-> ../<network id>), which views link to
//! hosts/containers/<name>       union view of a container on several networks
//! hosts/unions/<network id>/<name>  marks containers of the network with a union view
//! hosts/etc-netns/<name>        marks /etc/netns/<name> as made by us (ours to remove)
//! records/containers/<name>.json    the containers we created (state, networks run with)
//! records/container-endpoints/<name>.json  a container's endpoint id per network
//!                               (a link: network key:endpoint id, joined by `,`)
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

mod batch;
mod bounds;
mod cni;
mod cni_readiness;
mod containers;
mod doctor;
mod endpoint_link;
mod endpoints;
mod error;
mod hosts;
mod kernel_support;
mod listed;
mod mounts;
mod netns_identity;
mod networks;
mod options;
mod parent;
mod privileges;
mod processes;
mod report;
mod request;
mod restore;
mod subnets;

pub use cni::{
    attachment_id, lease_id, CniAddError, CniAddresses, CniAttach, CniAttached, CniDelegated,
    CniLease, CniLinkState, CniNetwork, Delegate, CNI_MARK,
};
pub use cni_readiness::{cni_readiness, CniDirs, DEFAULT_BIN_DIRS, DEFAULT_CONF_DIRS};
pub use containers::is_no_such_container;
pub use doctor::doctor;
pub use endpoint_link::ResultRoute;
pub use error::{Error, ErrorKind};
pub use kernel_support::KernelVersion;
pub use networks::NetworkList;
pub use options::{absolute_path, MAX_NAME_LEN, VALID_OPTION_KEYS};
pub use privileges::{
    effective_capabilities, has_net_admin, held_capabilities, CAP_NET_ADMIN, CAP_SYS_ADMIN,
};
pub use report::{
    ContainerInfo, ContainerList, DoctorCheck, DoctorReport, EndpointInfo, ExitStatusCode,
    NetworkInfo, RestoreReport, SubnetInfo,
};
pub use request::{AttachRequest, ExecOptions, NetworkCreate, RunRequest, Target};

use std::ffi::OsString;
use std::path::PathBuf;

use crate::store::StateDir;
pub use crate::store::{Damaged, Listing, DEFAULT_STATE_DIR, STATE_DIR_ENV};

// The ipvlan mode and flag of a network (`-o ipvlan_mode=`, `-o
// ipvlan_flag=`): rtnl's types, which the records store as they are.
pub use crate::rtnl::{IpvlanFlag, IpvlanMode};

/// Where iproute2 keeps named network namespaces.
pub const DEFAULT_NETNS_DIR: &str = "/run/netns";
/// Where `ip netns exec` looks for per-namespace `/etc` overrides.
pub const DEFAULT_ETC_NETNS_DIR: &str = "/etc/netns";
/// Environment variable overriding [`DEFAULT_NETNS_DIR`].
pub const NETNS_DIR_ENV: &str = "IPVLAN_NETNS_DIR";
/// Environment variable overriding [`DEFAULT_ETC_NETNS_DIR`].
pub const ETC_NETNS_DIR_ENV: &str = "IPVLAN_ETC_NETNS_DIR";

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
            netns_dir: var(NETNS_DIR_ENV, DEFAULT_NETNS_DIR),
            etc_netns_dir: var(ETC_NETNS_DIR_ENV, DEFAULT_ETC_NETNS_DIR),
        }
    }

    /// The configuration from the environment, checked: like
    /// [`Config::from_env`], but a variable that is set and empty is an
    /// error (a script's `IPVLAN_STATE_DIR=$DIR` with `DIR` unset must not
    /// fall back to the system's state), and relative paths are made
    /// absolute ([`absolute_path`]).
    pub fn try_from_env() -> Result<Config, Error> {
        Config::from_vars(|name| std::env::var_os(name))
    }

    /// [`Config::try_from_env`] over `var` instead of the process
    /// environment (which a front end may filter, e.g. ignore
    /// `IPVLAN_STATE_DIR` when a `--state-dir` flag overrides it).
    ///
    /// ```
    /// use ipvlan::driver::Config;
    /// let config = Config::from_vars(|name| match name {
    ///     "IPVLAN_NETNS_DIR" => Some("/tmp/netns".into()),
    ///     _ => None,
    /// })?;
    /// assert_eq!(config.netns_dir, std::path::Path::new("/tmp/netns"));
    /// assert_eq!(config.state_dir, std::path::Path::new("/var/lib/ipvlan"));
    /// let empty = Config::from_vars(|name| (name == "IPVLAN_STATE_DIR").then(Default::default));
    /// assert_eq!(
    ///     empty.unwrap_err().to_string(),
    ///     "IPVLAN_STATE_DIR is set but empty: unset it for /var/lib/ipvlan, or name a directory"
    /// );
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Result<Config, Error> {
        Config::from_vars_dyn(&var)
    }

    /// [`Config::from_vars`]'s body, kept once for every kind of `var`.
    #[inline(never)]
    fn from_vars_dyn(var: &dyn Fn(&str) -> Option<OsString>) -> Result<Config, Error> {
        let path = |name: &str, default: &str| match var(name) {
            None => Ok(PathBuf::from(default)),
            Some(value) if value.is_empty() => Err(Error::invalid(format!(
                "{name} is set but empty: unset it for {default}, or name a directory"
            ))),
            Some(value) => Ok(PathBuf::from(value)),
        };
        Config {
            state_dir: path(STATE_DIR_ENV, DEFAULT_STATE_DIR)?,
            netns_dir: path(NETNS_DIR_ENV, DEFAULT_NETNS_DIR)?,
            etc_netns_dir: path(ETC_NETNS_DIR_ENV, DEFAULT_ETC_NETNS_DIR)?,
        }
        .absolute()
    }

    /// The same configuration with every directory absolute (see
    /// [`absolute_path`]); an empty path is an error.
    ///
    /// ```
    /// let config = ipvlan::driver::Config::new("state").absolute()?;
    /// assert_eq!(config.state_dir, std::env::current_dir().unwrap().join("state"));
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn absolute(&self) -> Result<Config, Error> {
        Ok(Config {
            state_dir: absolute_path("state directory", &self.state_dir)?,
            netns_dir: absolute_path("namespace directory", &self.netns_dir)?,
            etc_netns_dir: absolute_path("/etc/netns directory", &self.etc_netns_dir)?,
        })
    }
}

/// How many descriptors only read, or ways home from a namespace, a
/// program that exits next leaves to its exit at most (see
/// [`Manager::leave_descriptors_to_exit`]): a command reads a few; a
/// listing of thousands closes the rest.
pub const LEFT_TO_EXIT_MAX: usize = 8;

/// The entry point: networks, containers and endpoints over one state
/// directory. Its operations live with the room they belong to
/// (`networks`, `endpoints`, `containers`, `restore`).
#[derive(Debug)]
pub struct Manager {
    config: Config,
    store: StateDir,
    /// See [`Manager::leave_descriptors_to_exit`].
    leaves_to_exit: bool,
}

impl Manager {
    /// Opens the state directory; where there is none, the first command
    /// that takes its lock makes it (mode 0700), and until then it reads
    /// as empty: commands that only read, or are refused for naming
    /// nothing in it, make nothing. Relative paths in `config` are made
    /// absolute first ([`Config::absolute`]): they end up in records and
    /// symlinks read from other directories.
    ///
    /// ```no_run
    /// let manager = ipvlan::driver::Manager::open(ipvlan::driver::Config::from_env())?;
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn open(config: Config) -> Result<Manager, Error> {
        let config = config.absolute()?;
        let store = StateDir::open_unmade(&config.state_dir)?;
        Ok(Manager {
            config,
            store,
            leaves_to_exit: false,
        })
    }

    /// For a program that exits once its command is done (the `ipvlan`
    /// binary, a CNI plugin): the namespaces and netlink sockets a
    /// successful attach or detach opened, the state files written
    /// ([`StateDir::leave_descriptors_to_exit`]), and up to
    /// [`LEFT_TO_EXIT_MAX`] of the files only read (records, sysctls) and
    /// ways home from a namespace (`crate::sys::done_with`) are left
    /// open for the exit to close, as `close(2)` would (nothing in them is
    /// buffered or waits), one `close` each saved. A program that goes on
    /// must not ask for it: they would stay open.
    pub fn leave_descriptors_to_exit(&mut self) {
        self.leaves_to_exit = true;
        self.store.leave_descriptors_to_exit();
        crate::sys::leave_descriptors_to_exit(LEFT_TO_EXIT_MAX);
    }

    /// Whether a change this manager made since the last call may not be
    /// durable: a commit that failed when the store's lock was let go by a
    /// method that had not committed itself
    /// ([`StateDir::take_lost_commit`]). Every method commits before it
    /// reports success; a front end asks this after each command so that
    /// one which does not can never make it exit 0.
    pub fn take_lost_commit(&self) -> Option<Error> {
        self.store.take_lost_commit().map(Error::from)
    }

    /// Lets `held` go without closing what it holds when
    /// [`Manager::leave_descriptors_to_exit`] was asked for, else drops it.
    pub(crate) fn release<T>(&self, held: T) {
        if self.leaves_to_exit {
            std::mem::forget(held);
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Path of the log file of a detached command in `container`.
    pub fn log_path(&self, container: &str) -> PathBuf {
        self.store.log_path(container)
    }
}

/// `bytes` random bytes as lowercase hex (one `getrandom(2)`).
pub(crate) fn random_hex(bytes: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; bytes];
    random_bytes(&mut buf).map_err(|e| Error::io("reading random bytes", &e))?;
    Ok(crate::digits::hex_text(&buf))
}

/// [`crate::sys::random_bytes`]; in test builds, a kernel before 5.6
/// (`GRND_INSECURE` refused) and its pool not initialised yet
/// (`GRND_NONBLOCK` refused: only that flag ever says so) pretended on
/// request, which the test kernels never show.
pub(crate) fn random_bytes(buf: &mut [u8]) -> std::io::Result<()> {
    crate::sys::random_bytes(buf, |flags| match flags == libc::GRND_INSECURE {
        true if crate::fault::forced("random: GRND_INSECURE refused") => Some(libc::EINVAL),
        false if crate::fault::forced("random: pool not initialised") => Some(libc::EAGAIN),
        _ => None,
    })
}
