//! Containers: named network namespaces, the commands run inside them,
//! and their removal.

use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::endpoints::locate;
use super::hosts;
use super::netns_identity::{self, ContainerNetns, OpenNetns};
use super::options::check_container_name;
use super::{random_hex, ContainerInfo, EndpointInfo, Error, ExecOptions, ExitStatusCode, Manager};
use crate::netns::{self, Netns};
use crate::rtnl::Handle;
use crate::store::{Damaged, Listing};

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
    /// remain inside unless `force`, which kills them. Only containers we
    /// created are ours to remove: any other name, even of a namespace
    /// under the netns directory (`ip netns add`, another runtime), is
    /// [`ErrorKind::NotFound`](super::ErrorKind::NotFound) and nothing is
    /// touched, as `docker rm` knows only its own containers. So is what
    /// another tool put at one of our container's names (a link, FIFO,
    /// directory, another kind of namespace, the caller's own namespace):
    /// refused before anything changes.
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
        if !state.has_container(name)? {
            return Err(no_such_container(name));
        }
        let path = self.config.netns_dir.join(name);
        // Checked before anything changes: what another tool put there is
        // neither unmounted, deleted, nor a reason to kill anything.
        let at = netns_identity::container_netns(&path)?;
        let pids = match &at {
            ContainerNetns::Present(ns) => processes_in(ns)?,
            ContainerNetns::Missing | ContainerNetns::Leftover => Vec::new(),
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
        if !matches!(at, ContainerNetns::Missing) {
            netns::delete_named(&self.config.netns_dir, name)
                .map_err(|e| Error::io(format!("deleting namespace {name}"), &e))?;
        }
        let _ = hosts::unlink(&self.config.etc_netns_dir, name, state.root());
        let _ = fs::remove_file(self.log_path(name));
        state.remove_container(name)?;
        Ok(notes)
    }

    /// Every container we created that can be read, with its endpoints,
    /// and the state files that cannot (container, network and endpoint
    /// records), which are left as they are.
    ///
    /// ```no_run
    /// # let manager = ipvlan::driver::Manager::open(ipvlan::driver::Config::from_env())?;
    /// let containers = manager.containers()?;
    /// for container in &containers {
    ///     let networks: Vec<&str> = container.endpoints.iter().map(|e| e.network.as_str()).collect();
    ///     println!("{} {}", container.name, networks.join(","));
    /// }
    /// for damaged in &containers.damaged {
    ///     eprintln!("warning: damaged state file {damaged}");
    /// }
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn containers(&self) -> Result<Listing<ContainerInfo>, Error> {
        let state = self.store.lock()?;
        let networks = state.networks()?;
        let names = state.containers()?;
        let mut containers = Listing {
            items: Vec::new(),
            damaged: networks.damaged.clone(),
        };
        containers.damaged.extend(names.damaged);
        for name in names.items {
            let endpoints = match self.container_endpoints(&state, &networks, &name) {
                Ok(found) => found
                    .into_iter()
                    .map(|(at, endpoint)| EndpointInfo::from_record(&networks[at], &endpoint))
                    .collect(),
                // One container's unreadable endpoint files never hide the
                // other containers; the message names the file.
                Err(error) => {
                    containers.damaged.push(Damaged {
                        path: self.config.state_dir.clone(),
                        reason: format!("container {name}: {error}"),
                    });
                    Vec::new()
                }
            };
            containers.items.push(ContainerInfo {
                netns_path: self.config.netns_dir.join(&name),
                name,
                endpoints,
            });
        }
        Ok(containers)
    }

    /// The namespace of one of our containers and the hosts file to show
    /// in it. Another tool's namespace is no container of ours (`ip netns
    /// exec` is there for those): commands are run only where we know
    /// what we are entering.
    fn container_namespace(&self, container: &str) -> Result<(Netns, Option<PathBuf>), Error> {
        check_container_name(container)?;
        // A lock-free read: a command may run for as long as it likes and
        // must not hold up other invocations.
        if !self.store.has_container(container)? {
            return Err(no_such_container(container));
        }
        let path = self.config.netns_dir.join(container);
        let ns = match netns_identity::container_netns(&path)? {
            ContainerNetns::Present(ns) => ns,
            ContainerNetns::Missing => return Err(no_such_container(container)),
            ContainerNetns::Leftover => {
                return Err(Error::failed(format!(
                    "opening namespace {container}: {} is not a network namespace: it is a regular file",
                    path.display()
                )))
            }
        };
        Ok((ns, hosts::resolve(&self.config.etc_netns_dir, container)))
    }

    /// Runs `argv` inside the container's namespace in the foreground, with
    /// the container's hosts file as `/etc/hosts`; returns its exit status.
    /// The container must be one we created (else
    /// [`ErrorKind::NotFound`](super::ErrorKind::NotFound), `No such
    /// container`). On a host without `/etc/hosts` the command sees the
    /// host's `/etc` on a read-only tmpfs with the hosts file added (see
    /// the README); nothing is created on the host.
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
    /// returns its pid. Names and refusals as for [`Manager::exec`].
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
        // 0600 in a checked directory, never through a link: root would
        // append the command's output to whatever a planted link names.
        let open_log = || self.store.open_log(container).map_err(Error::from);
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
    let etc_hosts = Path::new("/etc/hosts");
    let mounting = |e: &std::io::Error| {
        Error::io(
            format!("mounting {} on /etc/hosts", hosts_file.display()),
            e,
        )
    };
    match bind(hosts_file, etc_hosts, 0) {
        // No /etc/hosts (or a dangling symlink) to mount on: an
        // initramfs, a minimal busybox system.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && !etc_hosts.exists() => {
            etc_with_hosts(hosts_file).map_err(|e| mounting(&e))
        }
        other => other.map_err(|e| mounting(&e)),
    }
}

/// Replaces `/etc`, in this private mount namespace only, by a tmpfs that
/// holds every entry of the host's `/etc` (directories and files
/// bind-mounted, so reads and writes reach the host's; symlinks copied)
/// plus `hosts`, the container's file; then makes that tmpfs read-only,
/// so a command that creates a file directly in `/etc` fails instead of
/// writing where nobody will see it. Creating `/etc/hosts` on the host
/// instead would change the host (and fail on a read-only root).
fn etc_with_hosts(hosts_file: &Path) -> std::io::Result<()> {
    let etc = Path::new("/etc");
    // Opened inside this mount namespace, so that its entries can be
    // bind-mounted from `/proc/self/fd/N` once the tmpfs hides them.
    let host_etc = fs::File::open(etc)?;
    let meta = host_etc.metadata()?;
    let mut entries = Vec::new();
    for entry in fs::read_dir(etc)? {
        let entry = entry?;
        if entry.file_name() != "hosts" {
            entries.push((entry.file_name(), entry.file_type()?));
        }
    }
    let hidden = PathBuf::from(format!("/proc/self/fd/{}", host_etc.as_raw_fd()));
    crate::sys::mount(&cstr("tmpfs"), &path_cstr(etc), &cstr("tmpfs"), 0)?;
    fs::set_permissions(etc, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    std::os::unix::fs::chown(etc, Some(meta.uid()), Some(meta.gid()))?;
    for (name, kind) in entries {
        let source = hidden.join(&name);
        let target = etc.join(&name);
        if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&source)?, &target)?;
            continue;
        }
        if kind.is_dir() {
            fs::create_dir(&target)?;
        } else {
            fs::File::create(&target)?;
        }
        bind(&source, &target, libc::MS_REC).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("binding {} into the view of /etc: {e}", target.display()),
            )
        })?;
    }
    let etc_hosts = etc.join("hosts");
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&etc_hosts)?;
    bind(hosts_file, &etc_hosts, 0)?;
    crate::sys::mount(
        &cstr("none"),
        &path_cstr(etc),
        &cstr(""),
        (libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY) as libc::c_ulong,
    )
}

/// Bind-mounts `source` on `target` (`extra`: more mount flags).
fn bind(source: &Path, target: &Path, extra: libc::c_ulong) -> std::io::Result<()> {
    crate::sys::mount(
        &path_cstr(source),
        &path_cstr(target),
        &cstr("none"),
        libc::MS_BIND as libc::c_ulong | extra,
    )
}

fn cstr(text: &str) -> CString {
    CString::new(text).unwrap_or_default()
}

fn path_cstr(path: &Path) -> CString {
    CString::new(path.as_os_str().as_encoded_bytes()).unwrap_or_default()
}

/// What `docker` says of a name that is not one of its containers.
fn no_such_container(name: &str) -> Error {
    Error::not_found(format!("No such container: {name}"))
}

/// Sets `lo` up in a new container's namespace, as in a Docker container
/// (a process may talk to its own addresses).
fn set_loopback_up(ns: Netns) -> Result<(), Error> {
    let inside = OpenNetns::with_handle(ns)?;
    let lo = inside.handle.link_index("lo")?;
    inside.handle.link_set_up(lo)?;
    Ok(())
}

/// Processes whose network namespace is `ns`.
pub(crate) fn processes_in(ns: &Netns) -> Result<Vec<u32>, Error> {
    let (_, ino) = netns_identity::nsfs_file_id(ns)?;
    let wanted = format!("net:[{ino}]");
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Ok(Vec::new());
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
    Ok(pids)
}

/// Sends SIGKILL to `pid`; one that is already gone is fine.
fn kill(pid: u32) {
    let _ = crate::sys::kill(pid, libc::SIGKILL);
}
