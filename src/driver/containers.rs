//! Containers: named network namespaces, the commands run inside them,
//! and their removal.

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::endpoints::locate;
use super::hosts;
use super::netns_identity::OpenNetns;
use super::options::check_container_name;
use super::{random_hex, ContainerInfo, EndpointInfo, Error, ExecOptions, ExitStatusCode, Manager};
use crate::netns::{self, Netns};
use crate::rtnl::Handle;

impl Manager {
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
        let state = self.store.lock()?;
        let name = match name {
            Some(name) => {
                check_container_name(name)?;
                name.to_string()
            }
            None => loop {
                let candidate = format!("c{}", &random_hex(6)?[..11]);
                if !self.config.netns_dir.join(&candidate).exists() {
                    break candidate;
                }
            },
        };
        let path = self.config.netns_dir.join(&name);
        if path.exists() {
            return Err(Error::already_exists(format!(
                "container name {name} is already in use (namespace {} exists)",
                path.display()
            )));
        }
        // Record first: a crash between the two leaves a record restore
        // can reconcile, never an unknown namespace.
        state.put_container(&name)?;
        let ns = match netns::create_named(&self.config.netns_dir, &name) {
            Ok(ns) => ns,
            Err(error) => {
                let _ = state.remove_container(&name);
                return Err(Error::io(format!("creating namespace {name}"), &error));
            }
        };
        if let Err(error) = set_loopback_up(ns) {
            let _ = netns::delete_named(&self.config.netns_dir, &name);
            let _ = state.remove_container(&name);
            return Err(error);
        }
        Ok(ContainerInfo {
            name,
            netns_path: path,
            endpoints: Vec::new(),
        })
    }

    /// Detaches a container from every network and deletes its namespace;
    /// returns what was left alone, and why. Refused while processes
    /// remain inside unless `force`, which kills them.
    ///
    /// ```no_run
    /// # let manager = ipvlan::driver::Manager::open(ipvlan::driver::Config::from_env())?;
    /// match manager.remove_container("web", false) {
    ///     Err(error) if error.kind() == ipvlan::driver::ErrorKind::InUse => {
    ///         manager.remove_container("web", true)?; // kills what still runs
    ///     }
    ///     other => drop(other?),
    /// }
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn remove_container(&self, name: &str, force: bool) -> Result<Vec<String>, Error> {
        check_container_name(name)?;
        let state = self.store.lock()?;
        let path = self.config.netns_dir.join(name);
        let ours = state.has_container(name)?;
        if !path.exists() && !ours {
            return Err(Error::not_found(format!("No such container: {name}")));
        }
        let pids = if path.exists() {
            processes_in(&path)
        } else {
            Vec::new()
        };
        if !pids.is_empty() && !force {
            let list: Vec<String> = pids.iter().map(u32::to_string).collect();
            return Err(Error::in_use(format!(
                "container {name} still has processes running (pids {}); stop them or use rm -f",
                list.join(" ")
            )));
        }
        let networks = state.networks()?;
        let host = Handle::new()?;
        let mut notes = Vec::new();
        for (at, endpoint) in self.container_endpoints(&state, &networks, name)? {
            let network = &networks[at];
            let at = locate(&endpoint)?;
            notes.extend(self.detach(&host, &state, &networks, network, endpoint, &at)?);
        }
        for pid in &pids {
            kill(*pid);
        }
        if path.exists() {
            netns::delete_named(&self.config.netns_dir, name)
                .map_err(|e| Error::io(format!("deleting namespace {name}"), &e))?;
        }
        let _ = hosts::unlink(&self.config.etc_netns_dir, name);
        let _ = fs::remove_file(self.log_path(name));
        state.remove_container(name)?;
        Ok(notes)
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
        let state = self.store.lock()?;
        let networks = state.networks()?;
        let mut containers = Vec::new();
        for name in state.containers()? {
            let endpoints = self
                .container_endpoints(&state, &networks, &name)?
                .into_iter()
                .map(|(at, endpoint)| EndpointInfo::from_record(&networks[at], &endpoint))
                .collect();
            containers.push(ContainerInfo {
                netns_path: self.config.netns_dir.join(&name),
                name,
                endpoints,
            });
        }
        Ok(containers)
    }

    fn container_namespace(&self, container: &str) -> Result<(Netns, Option<PathBuf>), Error> {
        check_container_name(container)?;
        let path = self.config.netns_dir.join(container);
        let ns = Netns::open_path(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::not_found(format!("No such container: {container}"))
            } else {
                Error::io(format!("opening namespace {container}"), &e)
            }
        })?;
        Ok((ns, hosts::resolve(&self.config.etc_netns_dir, container)))
    }

    /// Runs `argv` inside the container's namespace in the foreground, with
    /// the container's hosts file as `/etc/hosts`; returns its exit status.
    /// A command that cannot be started is an error of kind
    /// [`ErrorKind::CommandNotFound`](super::ErrorKind::CommandNotFound) or
    /// [`ErrorKind::CommandNotExecutable`](super::ErrorKind::CommandNotExecutable).
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
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| Error::invalid("no command given"))?;
        let (ns, hosts_file) = self.container_namespace(container)?;
        let spawned = netns::run_in(&ns, || {
            enter_hosts_view(hosts_file.as_deref())?;
            let mut command = Command::new(program);
            command.args(args);
            if !opts.interactive {
                command.stdin(Stdio::null());
            }
            // A Ctrl-C or Ctrl-\ meant for the command reaches us too (same
            // process group): we must outlive the command to report its
            // status and, for `run --rm`, to remove the container.
            let shield = SignalShield::raise();
            crate::sys::default_signals_in_child(&mut command, &shield.0);
            Ok::<_, Error>(command.status())
        })
        .map_err(|e| Error::io(format!("entering container {container}"), &e))??;
        match spawned {
            Ok(status) => Ok(status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))),
            Err(error) => Err(Error::spawn(program, &error)),
        }
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
        let (program, args) = argv
            .split_first()
            .ok_or_else(|| Error::invalid("no command given"))?;
        let (ns, hosts_file) = self.container_namespace(container)?;
        let log = self.log_path(container);
        if let Some(dir) = log.parent() {
            fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("creating {}", dir.display()), &e))?;
        }
        let open_log = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)
                .map_err(|e| Error::io(format!("opening {}", log.display()), &e))
        };
        let stdout = open_log()?;
        let stderr = open_log()?;
        let child = netns::run_in(&ns, || {
            enter_hosts_view(hosts_file.as_deref())?;
            Command::new(program)
                .args(args)
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                // Its own process group: a Ctrl-C meant for the caller
                // must not reach it.
                .process_group(0)
                .spawn()
                .map_err(|e| Error::spawn(program, &e))
        })
        .map_err(|e| Error::io(format!("entering container {container}"), &e))??;
        Ok(child.id())
    }
}

/// SIGINT and SIGQUIT ignored by this process while it waits for a
/// foreground command (which gets the default dispositions back).
/// Restored when dropped.
struct SignalShield(Vec<crate::sys::SavedSignal>);

impl SignalShield {
    fn raise() -> SignalShield {
        SignalShield(
            [libc::SIGINT, libc::SIGQUIT]
                .into_iter()
                .filter_map(|signal| crate::sys::ignore_signal(signal).ok())
                .collect(),
        )
    }
}

impl Drop for SignalShield {
    fn drop(&mut self) {
        for saved in &self.0 {
            let _ = crate::sys::restore_signal(saved);
        }
    }
}

/// On the current (scratch) thread: a private mount namespace with the
/// container's hosts file over `/etc/hosts`, as `ip netns exec` does.
fn enter_hosts_view(hosts_file: Option<&Path>) -> Result<(), Error> {
    let Some(hosts_file) = hosts_file else {
        return Ok(());
    };
    let cstr = |text: &str| CString::new(text).unwrap_or_default();
    crate::sys::unshare(libc::CLONE_NEWNS)
        .map_err(|e| Error::io("creating a mount namespace", &e))?;
    // Keep our bind mount from propagating back to the host.
    crate::sys::mount(
        &cstr("none"),
        &cstr("/"),
        &cstr(""),
        (libc::MS_SLAVE | libc::MS_REC) as libc::c_ulong,
    )
    .map_err(|e| Error::io("making / a slave mount", &e))?;
    let source = CString::new(hosts_file.as_os_str().as_encoded_bytes()).unwrap_or_default();
    crate::sys::mount(
        &source,
        &cstr("/etc/hosts"),
        &cstr("none"),
        libc::MS_BIND as libc::c_ulong,
    )
    .map_err(|e| {
        Error::io(
            format!("mounting {} on /etc/hosts", hosts_file.display()),
            &e,
        )
    })
}

/// Sets `lo` up in a new container's namespace, as in a Docker container
/// (a process may talk to its own addresses).
fn set_loopback_up(ns: Netns) -> Result<(), Error> {
    let inside = OpenNetns::with_handle(ns)?;
    let lo = inside.handle.link_index("lo")?;
    inside.handle.link_set_up(lo)?;
    Ok(())
}

/// Processes whose network namespace is the one at `path`.
pub(crate) fn processes_in(path: &Path) -> Vec<u32> {
    let Ok(meta) = fs::metadata(path) else {
        return Vec::new();
    };
    let wanted = format!("net:[{}]", meta.ino());
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            fs::read_link(format!("/proc/{pid}/ns/net"))
                .is_ok_and(|link| link.as_os_str() == wanted.as_str())
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// Sends SIGKILL to `pid`; one that is already gone is fine.
fn kill(pid: u32) {
    let _ = crate::sys::kill(pid, libc::SIGKILL);
}
