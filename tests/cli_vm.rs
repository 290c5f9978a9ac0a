//! The command line against a kernel with ipvlan (QEMU guest, `cargo xtask
//! vm-test`): what `run`, `exec`, `rm`, `ps`, `network ls|inspect|connect|
//! disconnect|rm` print and exit with once containers really attach.
//!
//! Each test has its own state, netns and /etc/netns directories and a
//! network without parent (its own dummy), so tests do not see one another.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use ipvlan::json::{self, Value};

fn binary() -> String {
    std::env::var("IPVLAN_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ipvlan").to_string())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Scratch directories for one test, removed (after `rm -f` of whatever is
/// left and `network rm` of its networks) on drop.
struct Env {
    root: PathBuf,
    networks: Vec<String>,
}

impl Env {
    fn new(tag: &str) -> Env {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "ipvlan-cli-vm-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&root).unwrap();
        Env {
            root,
            networks: Vec::new(),
        }
    }

    fn netns_dir(&self) -> PathBuf {
        self.root.join("netns")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary());
        command
            .args(args)
            .env("IPVLAN_STATE_DIR", self.root.join("state"))
            .env("IPVLAN_NETNS_DIR", self.netns_dir())
            .env("IPVLAN_ETC_NETNS_DIR", self.root.join("etc-netns"))
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("runs ipvlan")
    }

    /// Runs and insists on exit code 0; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
        text(&output.stdout)
    }

    fn network(&mut self, name: &str, subnet: &str) -> String {
        let id = self.ok(&["network", "create", "--subnet", subnet, name]);
        self.networks.push(name.to_string());
        id.trim().to_string()
    }

    fn containers(&self) -> Vec<String> {
        self.ok(&["ps", "-q"]).lines().map(str::to_string).collect()
    }

    fn namespaces(&self) -> usize {
        std::fs::read_dir(self.netns_dir()).map_or(0, |dir| dir.count())
    }

    fn inspect(&self, network: &str) -> Value {
        let document = json::parse(&self.ok(&["network", "inspect", network])).expect("JSON");
        document.as_array().expect("array")[0].clone()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for name in self.containers() {
            self.run(&["rm", "-f", &name]);
        }
        for network in &self.networks {
            self.run(&["network", "rm", network]);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn field<'a>(value: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(value, |value, key| {
        value
            .get(key)
            .unwrap_or_else(|| panic!("no {key} in {value}"))
    })
}

#[test]
fn network_create_ls_inspect_and_rm_print_like_docker() {
    let mut env = Env::new("net");
    let id = env.network("n1", "192.168.70.0/24");
    assert!(
        id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let table = env.ok(&["network", "ls"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], "NETWORK ID     NAME      DRIVER    SCOPE");
    assert_eq!(
        lines[1],
        format!("{}   n1        ipvlan    local", &id[..12])
    );
    assert_eq!(
        env.ok(&["network", "ls", "-q", "--no-trunc"]),
        format!("{id}\n")
    );

    let network = env.inspect("n1");
    assert_eq!(field(&network, &["Id"]).as_str(), Some(id.as_str()));
    assert_eq!(field(&network, &["Internal"]).as_bool(), Some(true));
    // RFC 3339 with nanoseconds, UTC, as Docker prints it.
    let created = field(&network, &["Created"]).as_str().unwrap();
    assert!(
        created.len() == 30 && created.ends_with('Z') && created.as_bytes()[10] == b'T',
        "{created}"
    );
    let config = field(&network, &["IPAM", "Config"]).as_array().unwrap();
    assert_eq!(
        field(&config[0], &["Subnet"]).as_str(),
        Some("192.168.70.0/24")
    );
    // Internal, yet its gateway is reserved and shown, as the docs show it.
    assert_eq!(
        field(&config[0], &["Gateway"]).as_str(),
        Some("192.168.70.1")
    );
    let parent = field(&network, &["Options", "parent"]).as_str().unwrap();
    assert_eq!(parent, format!("di-{}", &id[..12]));

    let output = env.run(&["network", "create", "--subnet", "192.168.71.0/24", "n1"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).starts_with("ipvlan: network create n1: "));

    assert_eq!(env.ok(&["network", "rm", "n1"]), "n1\n");
    env.networks.clear();
    assert_eq!(env.ok(&["network", "ls", "-q"]), "");
}

#[test]
fn foreground_run_exits_with_the_commands_status_and_rm_removes() {
    let mut env = Env::new("run");
    env.network("n1", "192.168.72.0/24");
    let cases: &[(&[&str], i32)] = &[
        (&["sh", "-c", "exit 7"], 7),
        (&["true"], 0),
        (&["no-such-command"], 127),
        (&["/etc/hosts"], 126),
        (&["sh", "-c", "kill -KILL $$"], 137),
        // Ctrl-C and Ctrl-\ as a terminal sends them to ipvlan too: it
        // survives, reports the command's status and still removes.
        (
            &["sh", "-c", "kill -INT $PPID; kill -QUIT $PPID; exit 7"],
            7,
        ),
    ];
    for (command, code) in cases {
        let mut args = vec!["run", "--net=n1", "--rm"];
        args.extend_from_slice(command);
        let output = env.run(&args);
        assert_eq!(
            output.status.code(),
            Some(*code),
            "{command:?}: {}",
            text(&output.stderr)
        );
        assert!(
            env.containers().is_empty(),
            "{command:?}: --rm left a container"
        );
        assert_eq!(env.namespaces(), 0, "{command:?}: --rm left a namespace");
    }
    // Inside: the address of the network on eth0, and the command's output on our stdout.
    let output = env.run(&[
        "run",
        "--net=n1",
        "--rm",
        "--ip=192.168.72.9",
        "ip",
        "-o",
        "-4",
        "addr",
        "show",
        "eth0",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("inet 192.168.72.9/24"),
        "{}",
        text(&output.stdout)
    );
    // Without --rm the container stays.
    env.ok(&["run", "--net=n1", "--name=kept", "true"]);
    assert_eq!(env.containers(), ["kept"]);
}

#[test]
fn run_failures_exit_125_and_leave_nothing() {
    let mut env = Env::new("fail");
    env.network("n1", "192.168.73.0/24");
    env.ok(&[
        "run",
        "--net=n1",
        "--name=first",
        "--ip=192.168.73.5",
        "true",
    ]);
    let cases: &[(&[&str], &str)] = &[
        (&["--ip=192.168.73.5"], "Address already in use"),
        (
            &["--ip=10.9.9.9"],
            "no configured subnet contains IP address 10.9.9.9",
        ),
        (&["--ip6=2001:db8::5"], "has no IPv6 subnet"),
        (&["--name=first"], "first"),
    ];
    for (options, message) in cases {
        let mut args = vec!["run", "--net=n1"];
        args.extend_from_slice(options);
        args.push("true");
        let output = env.run(&args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(125), "{options:?}: {stderr}");
        assert!(
            stderr.starts_with("ipvlan: run: ") && stderr.contains(message),
            "{options:?}: {stderr}"
        );
        assert_eq!(env.containers(), ["first"], "{options:?}");
        assert_eq!(env.namespaces(), 1, "{options:?}");
    }
}

#[test]
fn detached_run_prints_the_name_and_rm_needs_force_while_it_runs() {
    let mut env = Env::new("detach");
    env.network("n1", "192.168.74.0/24");
    assert_eq!(
        env.ok(&["run", "--net=n1", "--name=bg", "-itd", "sleep", "1000"]),
        "bg\n"
    );
    assert_eq!(env.ok(&["run", "--net=n1", "--name=idle", "-d"]), "idle\n");
    let network = env.inspect("n1");
    let address = |name: &str| {
        field(&network, &["Containers", name, "IPv4Address"])
            .as_str()
            .unwrap()
            .to_string()
    };
    let (bg, idle) = (address("bg"), address("idle"));
    assert_eq!(
        field(&network, &["Containers", "bg", "EndpointID"]).as_str(),
        Some("bg")
    );
    assert!(bg.starts_with("192.168.74.") && bg.ends_with("/24") && bg != idle);
    let ps = env.ok(&["ps"]);
    let lines: Vec<&str> = ps.lines().collect();
    assert_eq!(lines[0], "NAME      NETWORKS   ADDRESSES");
    assert_eq!(lines[1], format!("bg        n1         {bg}"));
    assert_eq!(lines[2], format!("idle      n1         {idle}"));

    // exec sees the other container by name and exits with the command's status.
    let output = env.run(&["exec", "bg", "sh", "-c", "grep -w idle /etc/hosts; exit 4"]);
    assert_eq!(output.status.code(), Some(4));
    let idle_ip = idle.split('/').next().unwrap();
    assert!(
        text(&output.stdout).contains(idle_ip),
        "{}",
        text(&output.stdout)
    );

    let output = env.run(&["rm", "bg"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).starts_with("ipvlan: rm bg: "),
        "{}",
        text(&output.stderr)
    );
    assert_eq!(env.containers(), ["bg", "idle"]);
    assert_eq!(env.ok(&["rm", "-f", "bg", "idle"]), "bg\nidle\n");
    assert!(env.containers().is_empty());
    assert_eq!(env.namespaces(), 0);

    let output = env.run(&["run", "--net=n1", "-d", "no-such-command"]);
    assert_eq!(output.status.code(), Some(127), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stderr),
        "ipvlan: run: no-such-command: executable file not found\n"
    );
    assert!(
        env.containers().is_empty(),
        "a failed -d start left its container"
    );
    // Not executable: 126, and no word about root (EACCES from execve).
    let plain = env.root.join("plain");
    std::fs::write(&plain, "echo not run\n").unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
    let plain = plain.display().to_string();
    let output = env.run(&["run", "--net=n1", "-d", &plain]);
    assert_eq!(output.status.code(), Some(126), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stderr),
        format!("ipvlan: run: {plain}: Permission denied\n")
    );
    assert!(env.containers().is_empty());
}

#[test]
fn connect_and_disconnect_any_namespace_by_path() {
    let mut env = Env::new("connect");
    env.network("n1", "192.168.75.0/24");
    let mut holder: Child = Command::new("unshare")
        .args(["-n", "sleep", "1000"])
        .spawn()
        .expect("unshare");
    // Wait until the child runs in its own namespace.
    let own = std::fs::read_link("/proc/self/ns/net").unwrap();
    let path = format!("/proc/{}/ns/net", holder.id());
    for _ in 0..100 {
        if std::fs::read_link(&path).is_ok_and(|ns| ns != own) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        env.ok(&["network", "connect", "--ip", "192.168.75.20", "n1", &path]),
        ""
    );
    let network = env.inspect("n1");
    let endpoint = field(&network, &["Containers", &path]);
    assert_eq!(
        field(endpoint, &["IPv4Address"]).as_str(),
        Some("192.168.75.20/24")
    );

    let output = env.run(&["network", "rm", "n1"]);
    assert_eq!(
        output.status.code(),
        Some(1),
        "network rm with an endpoint attached"
    );

    assert_eq!(env.ok(&["network", "disconnect", "n1", &path]), "");
    let network = env.inspect("n1");
    assert_eq!(
        field(&network, &["Containers"]).as_object().map(<[_]>::len),
        Some(0)
    );
    holder.kill().ok();
    holder.wait().ok();
}

#[test]
fn sixteen_parallel_detached_runs_get_distinct_reachable_addresses() {
    let mut env = Env::new("parallel");
    env.network("par", "192.168.75.0/24");
    // Sixteen `ipvlan run -d` processes at once, as a container runtime or a
    // shell loop with `&` would start them: the store's lock serialises them.
    let children: Vec<(String, Child)> = (0..16)
        .map(|i| {
            let name = format!("p{i}");
            let child = env
                .command(&["run", "--net=par", "--name", &name, "-d", "sleep", "1000"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("starts ipvlan");
            (name, child)
        })
        .collect();
    for (name, child) in children {
        let output = child.wait_with_output().expect("waits for ipvlan");
        assert_eq!(
            output.status.code(),
            Some(0),
            "{name}: {}",
            text(&output.stderr)
        );
        assert_eq!(text(&output.stdout), format!("{name}\n"));
    }
    let network = env.inspect("par");
    let containers = field(&network, &["Containers"]).as_object().unwrap();
    assert_eq!(containers.len(), 16, "{network}");
    let mut addresses: Vec<String> = containers
        .iter()
        .map(|(_, c)| {
            let cidr = c.get("IPv4Address").and_then(Value::as_str).unwrap();
            cidr.split('/').next().unwrap().to_string()
        })
        .collect();
    addresses.sort();
    addresses.dedup();
    assert_eq!(addresses.len(), 16, "distinct addresses: {addresses:?}");
    let records = std::fs::read_dir(
        env.root
            .join("state")
            .join("endpoints")
            .join(field(&network, &["Id"]).as_str().unwrap()),
    )
    .unwrap()
    .filter(|e| {
        e.as_ref()
            .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "json"))
    })
    .count();
    assert_eq!(records, 16, "one endpoint record each");
    // Every container reaches the next one, by address and by name.
    for i in 0..16 {
        let from = format!("p{i}");
        let to = format!("p{}", (i + 1) % 16);
        let target = field(&network, &["Containers", &to, "IPv4Address"])
            .as_str()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string();
        for destination in [target.as_str(), to.as_str()] {
            let reached = (0..3).any(|_| {
                env.run(&["exec", &from, "ping", "-c", "1", "-W", "2", destination])
                    .status
                    .success()
            });
            assert!(reached, "{from} cannot reach {destination}");
        }
    }
}

/// A process holding a namespace, killed when dropped (also when the test
/// fails: its output is not the test's, so nothing waits for it).
struct Holder(Child);

impl Holder {
    fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// A process in a network namespace of its own (`unshare -n sleep`), and
/// the path of that namespace once the process is in it.
fn namespace_holder() -> (Holder, String) {
    let holder = Command::new("unshare")
        .args(["-n", "sleep", "1000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("unshare");
    let holder = Holder(holder);
    let own = std::fs::read_link("/proc/self/ns/net").unwrap();
    let path = format!("/proc/{}/ns/net", holder.id());
    for _ in 0..100 {
        if std::fs::read_link(&path).is_ok_and(|ns| ns != own) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (holder, path)
}

/// Every file under `dir` with its content.
fn files(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files(&path));
            } else {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                out.push((path.display().to_string(), text));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_relative_namespace_path_is_recorded_absolute_and_outlives_a_restore_elsewhere() {
    let mut env = Env::new("relative");
    env.network("n1", "192.168.76.0/24");
    let (holder, path) = namespace_holder();
    let pid = holder.id();
    let output = env
        .command(&[
            "network",
            "connect",
            "--ip",
            "192.168.76.20",
            "n1",
            "ns/net",
        ])
        .current_dir(format!("/proc/{pid}"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    // A boot script runs restore from wherever it is.
    let output = env.command(&["restore"]).current_dir("/").output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let network = env.inspect("n1");
    let containers = field(&network, &["Containers"]).as_object().unwrap();
    assert_eq!(
        containers.len(),
        1,
        "restore from another directory released a live endpoint: {network}"
    );
    assert_eq!(
        field(&network, &["Containers", &path, "IPv4Address"]).as_str(),
        Some("192.168.76.20/24"),
        "recorded as {path}: {network}"
    );
    let ip = std::env::var("IPVLAN_IP").unwrap_or_else(|_| "/usr/sbin/ip".to_string());
    let link = Command::new("nsenter")
        .args([
            &format!("-t{pid}"),
            "-n",
            &ip,
            "-br",
            "addr",
            "show",
            "eth0",
        ])
        .output()
        .unwrap();
    assert!(
        text(&link.stdout).contains("192.168.76.20/24"),
        "{}{}",
        text(&link.stdout),
        text(&link.stderr)
    );
    // The address is still taken: no second namespace gets it.
    let (other, other_path) = namespace_holder();
    let output = env.run(&[
        "network",
        "connect",
        "--ip",
        "192.168.76.20",
        "n1",
        &other_path,
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stderr),
        format!("ipvlan: network connect n1 {other_path}: Address already in use\n")
    );
    // Disconnected by another spelling of the same path, from elsewhere.
    let output = env
        .command(&[
            "network",
            "disconnect",
            "n1",
            &format!("../..//{pid}/./ns/net"),
        ])
        .current_dir(format!("/proc/{pid}/task"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let network = env.inspect("n1");
    assert_eq!(
        field(&network, &["Containers"]).as_object().map(<[_]>::len),
        Some(0)
    );
    drop((holder, other));
}

#[test]
fn the_namespace_ipvlan_runs_in_is_never_attached() {
    let mut env = Env::new("own");
    env.network("n1", "192.168.77.0/24");
    let state = env.root.join("state");
    let before = (files(&state), ip_links());
    let refusal = |path: &str| {
        format!(
            "ipvlan: network connect n1 {path}: {} is the network namespace ipvlan itself runs in, where the networks' parent interfaces are; only another namespace can be attached\n",
            path.replace("/../self", "")
        )
    };
    for path in [
        "/proc/self/ns/net",
        "/proc/thread-self/ns/net",
        "/proc/self/../self/ns/net",
    ] {
        let output = env.run(&["network", "connect", "n1", path]);
        assert_eq!(
            output.status.code(),
            Some(1),
            "{path}: {}",
            text(&output.stderr)
        );
        assert_eq!(text(&output.stderr), refusal(path));
        assert_eq!(
            (files(&state), ip_links()),
            before,
            "{path} changed something"
        );
    }
    // Run from init's namespace, init's namespace is the host's.
    let output = Command::new("nsenter")
        .args([
            "-t1",
            "-n",
            &binary(),
            "network",
            "connect",
            "n1",
            "/proc/1/ns/net",
        ])
        .env("IPVLAN_STATE_DIR", &state)
        .env("IPVLAN_NETNS_DIR", env.netns_dir())
        .env("IPVLAN_ETC_NETNS_DIR", env.root.join("etc-netns"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert_eq!(text(&output.stderr), refusal("/proc/1/ns/net"));
    assert_eq!(files(&state), before.0);
}

/// The host namespace's links, as iproute2 lists them.
fn ip_links() -> String {
    let ip = std::env::var("IPVLAN_IP").unwrap_or_else(|_| "/usr/sbin/ip".to_string());
    let output = Command::new(ip)
        .args(["-d", "-br", "link"])
        .output()
        .unwrap();
    text(&output.stdout)
}
