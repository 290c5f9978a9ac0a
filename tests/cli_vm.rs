//! The command line against a kernel with ipvlan (QEMU guest, `cargo xtask
//! vm-test`): what `run`, `exec`, `rm`, `ps`, `network ls|inspect|connect|
//! disconnect|rm` print and exit with once containers really attach.
//!
//! Each test has its own state directory and a network without parent (its
//! own dummy), and its own netns and /etc/netns directories unless it works
//! with iproute2's (the guest's `/run/netns` and `/etc/netns`, private to
//! this binary), so tests do not see one another.

mod common;
use common::HIDE_ETC_HOSTS;
mod vm_support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
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
    netns_dir: PathBuf,
    etc_netns_dir: PathBuf,
    networks: Vec<String>,
}

impl Env {
    fn new(tag: &str) -> Env {
        let mut env = Env::with_iproute2_dirs(tag);
        env.netns_dir = env.root.join("netns");
        env.etc_netns_dir = env.root.join("etc-netns");
        env
    }

    /// An environment whose containers live where iproute2 looks for
    /// them (`/run/netns`, `/etc/netns`).
    fn with_iproute2_dirs(tag: &str) -> Env {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let root = std::env::temp_dir().join(format!(
            "ipvlan-cli-vm-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&root).unwrap();
        Env {
            root,
            netns_dir: PathBuf::from("/run/netns"),
            etc_netns_dir: PathBuf::from("/etc/netns"),
            networks: Vec::new(),
        }
    }

    fn netns_dir(&self) -> PathBuf {
        self.netns_dir.clone()
    }

    fn state_dir(&self) -> PathBuf {
        self.root.join("state")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(binary());
        command.args(args).stdin(Stdio::null());
        self.environment(&mut command);
        command
    }

    fn environment(&self, command: &mut Command) {
        command
            .env("IPVLAN_STATE_DIR", self.state_dir())
            .env("IPVLAN_NETNS_DIR", self.netns_dir())
            .env("IPVLAN_ETC_NETNS_DIR", &self.etc_netns_dir);
    }

    /// Runs `script` (with `$BIN` and `$T`, the test's root) in a private
    /// mount namespace, with this environment's directories.
    fn shell(&self, script: &str) -> Output {
        let mut command = Command::new("unshare");
        command
            .args(["-m", "--propagation", "private", "sh", "-c", script])
            .env("BIN", binary())
            .env("T", &self.root)
            .stdin(Stdio::null());
        self.environment(&mut command);
        command.output().expect("runs unshare")
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

    /// Asserts that `ps` lists a container as `line` has it: name,
    /// networks, addresses.
    fn assert_listed(&self, line: [&str; 3]) {
        let ps = self.ok(&["ps"]);
        assert!(
            ps.lines()
                .any(|l| l.split_whitespace().eq(line.iter().copied())),
            "{line:?} not in {ps}"
        );
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

/// The names of the links in the named namespace `ns` (`ip -n NS -d -j link`).
/// The names of the links in namespace `ns`: `lo` first, then the rest by
/// name. The kernel lists them in the order of its index hash (the index
/// modulo 256), and our links get random indexes, so one lands before
/// `lo` (index 1) once in 256.
fn links_in(ns: &str) -> Vec<String> {
    let links = vm_support::ip_json(&["-n", ns, "-d", "link", "show"]);
    let mut names: Vec<String> = links
        .as_array()
        .expect("array")
        .iter()
        .map(|link| field(link, &["ifname"]).as_str().unwrap().to_string())
        .collect();
    names.sort_by(|a, b| (a != "lo", a).cmp(&(b != "lo", b)));
    names
}

fn mode(path: &Path) -> Option<u32> {
    std::fs::metadata(path)
        .ok()
        .map(|meta| meta.permissions().mode() & 0o7777)
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
        // SIGINT and SIGQUIT sent to ipvlan (by subshells of the command:
        // what the command sends itself is not passed back to it): it
        // passes them on to the command (whose traps count them; it exits
        // 7 once both came, 10 + the count after about 5 s), survives,
        // reports the command's status and still removes.
        (
            &[
                "sh",
                "-c",
                "n=0; trap 'n=$((n + 1))' INT QUIT; (kill -INT $PPID); (kill -QUIT $PPID); \
                 i=0; while [ $n -lt 2 ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i + 1)); done; \
                 [ $n -eq 2 ] && exit 7; exit $((10 + n))",
            ],
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
fn run_rm_stopped_by_a_supervisor_stops_its_command_and_removes_the_container() {
    // SIGTERM to ipvlan alone, as a supervisor (systemd, a runtime)
    // stopping a service sends it. Before, ipvlan died of it at once: the
    // command kept running and --rm left the container, its namespace and
    // its address. Now the command gets it, ends (143), and ipvlan removes
    // the container, then exits with the command's status.
    let mut env = Env::new("stop");
    env.network("n1", "192.168.75.0/24");
    let pid_file = env.root.join("pid");
    // A file, not a pipe: a command left running (before) would hold a
    // pipe open and the read never end.
    let stderr_file = env.root.join("stderr");
    let script = format!("echo $$ > {}; exec sleep 1000", pid_file.display());
    let mut run = env
        .command(&[
            "run",
            "--net=n1",
            "--rm",
            "--name=stopme",
            "--ip=192.168.75.9",
            "sh",
            "-c",
            &script,
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_file).unwrap())
        .spawn()
        .expect("runs ipvlan");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let command_pid = loop {
        if let Ok(pid) = std::fs::read_to_string(&pid_file) {
            if pid.ends_with('\n') {
                break pid.trim().to_string();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the command never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(env.containers(), ["stopme"]);
    // SAFETY: kill(2) of our own child, which we have not waited for yet.
    assert_eq!(
        unsafe { libc::kill(run.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let status = run.wait().unwrap();
    let stderr = std::fs::read_to_string(&stderr_file).unwrap();
    let command_left = Path::new("/proc").join(&command_pid).exists();
    if command_left {
        // SAFETY: kill(2) of the command this test started, still running.
        unsafe { libc::kill(command_pid.parse().unwrap(), libc::SIGKILL) };
    }
    assert_eq!(
        status.code(),
        Some(143),
        "ipvlan must exit with the command's status, not die of the signal ({status:?}): {stderr}"
    );
    assert!(!command_left, "the command still runs");
    assert!(env.containers().is_empty(), "--rm left the container");
    assert_eq!(env.namespaces(), 0, "--rm left its namespace");
    // Its address is free again.
    env.ok(&["run", "--net=n1", "--rm", "--ip=192.168.75.9", "true"]);
}

#[test]
fn run_passes_on_every_signal_a_process_can_catch() {
    // Before, only HUP, INT, QUIT, TERM, USR1 and USR2 were passed on: a
    // SIGALRM (or SIGXCPU, a real-time signal) sent to ipvlan killed it,
    // the command ran on and --rm left the container. Now each one the
    // command traps reaches it, ipvlan among them stays, and the command's
    // own exit ends the run.
    let mut env = Env::new("sigs");
    env.network("n1", "192.168.79.0/24");
    let log = env.root.join("caught");
    let ready = env.root.join("ready");
    // The real-time signal the C library gives programs third (musl's
    // SIGRTMIN is 35, glibc's 34; either way a number above both).
    let realtime = libc::SIGRTMIN() + 3;
    let caught = [
        ("ALRM", libc::SIGALRM),
        ("XCPU", libc::SIGXCPU),
        ("VTALRM", libc::SIGVTALRM),
        ("PWR", libc::SIGPWR),
        ("WINCH", libc::SIGWINCH),
        ("CONT", libc::SIGCONT),
    ];
    let mut script = String::new();
    for (name, _) in &caught {
        script.push_str(&format!("trap 'echo {name} >> {}' {name}; ", log.display()));
    }
    script.push_str(&format!(
        "trap 'echo RT >> {log}' {realtime}; trap 'exit 7' TERM; touch {ready}; \
         while :; do sleep 0.05; done",
        log = log.display(),
        ready = ready.display()
    ));
    let stderr_file = env.root.join("stderr");
    let mut run = env
        .command(&[
            "run",
            "--net=n1",
            "--rm",
            "--name=sigs",
            "sh",
            "-c",
            &script,
        ])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr_file).unwrap())
        .spawn()
        .expect("runs ipvlan");
    let wait_for = |what: &mut dyn FnMut() -> bool, about: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !what() {
            assert!(std::time::Instant::now() < deadline, "{about}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    wait_for(&mut || ready.exists(), "the command never started");
    let lines = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let signals = caught
        .iter()
        .copied()
        .chain([("RT", realtime)])
        .collect::<Vec<_>>();
    for (count, (name, signal)) in signals.iter().enumerate() {
        // SAFETY: kill(2) of our own child, which we have not waited for yet.
        assert_eq!(unsafe { libc::kill(run.id() as libc::pid_t, *signal) }, 0);
        wait_for(
            &mut || lines().len() > count || run.try_wait().unwrap().is_some(),
            &format!("SIG{name} never reached the command"),
        );
        let stderr = std::fs::read_to_string(&stderr_file).unwrap();
        assert!(
            run.try_wait().unwrap().is_none(),
            "SIG{name} ended ipvlan: {stderr}"
        );
        assert_eq!(lines().last().map(String::as_str), Some(*name), "{stderr}");
    }
    // SAFETY: as above.
    assert_eq!(
        unsafe { libc::kill(run.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let status = run.wait().unwrap();
    let stderr = std::fs::read_to_string(&stderr_file).unwrap();
    assert_eq!(status.code(), Some(7), "{status:?}: {stderr}");
    assert!(env.containers().is_empty(), "--rm left the container");
}

/// A command's arguments are bytes, as `docker run` passes them: `run`
/// and `exec` hand the command what they were given, UTF-8 or not.
/// Before, any argument that was not UTF-8 was refused (exit 2).
#[test]
fn run_and_exec_pass_arguments_that_are_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let mut env = Env::new("bytes");
    env.network("n1", "192.168.91.0/24");
    let bytes = std::ffi::OsStr::from_bytes(b"caf\xe9\xff");
    let output = env
        .command(&["run", "--net=n1", "--rm", "printf", "%s"])
        .arg(bytes)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(output.stdout, bytes.as_bytes());
    env.ok(&["run", "--net=n1", "--name=b1", "-d"]);
    let output = env
        .command(&["exec", "b1", "printf", "%s"])
        .arg(bytes)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(output.stdout, bytes.as_bytes());
}

/// A Ctrl-C at the terminal while `run` makes its container ready, before
/// the command exists: the run stops with 130 and the command never runs.
/// Before, the signal waited, blocked, until the command ran; then, as the
/// terminal's, it was taken for one the command had got too, and dropped:
/// the command ran on. The terminal is a pty whose `TIOCSIG` sends the
/// signal to its foreground group as a Ctrl-C does (from the kernel); the
/// run waits at its pause point before the command's spawn meanwhile.
#[test]
fn a_ctrl_c_before_the_command_starts_stops_the_run() {
    use std::os::unix::process::CommandExt;
    let mut env = Env::new("earlyint");
    env.network("n1", "192.168.97.0/24");
    // SAFETY: plain libc calls on a descriptor this test owns.
    let (master, slave) = unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(master >= 0, "posix_openpt");
        assert_eq!(libc::grantpt(master), 0);
        assert_eq!(libc::unlockpt(master), 0);
        let name = std::ffi::CStr::from_ptr(libc::ptsname(master)).to_owned();
        (master, name)
    };
    let ran = env.root.join("ran");
    let pause = env.root.join("pause");
    let _ = std::fs::remove_file(&pause);
    let touch = format!("touch {}", ran.display());
    let mut command = env.command(&["run", "--net=n1", "--name=ei", "sh", "-c", &touch]);
    command
        .env(ipvlan::fault::PAUSE_AT_ENV, "container: before spawn#1")
        .env(ipvlan::fault::PAUSE_FILE_ENV, &pause);
    // SAFETY: setsid, open and ioctl are async-signal-safe; nothing else
    // runs between fork and exec.
    unsafe {
        command.pre_exec(move || {
            libc::setsid();
            let tty = libc::open(slave.as_ptr(), libc::O_RDWR);
            if tty < 0 || libc::ioctl(tty, libc::TIOCSCTTY, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let paused = (0..1500).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        pause.exists()
    });
    // SAFETY: an ioctl on the pty master this test owns.
    let sent = paused && unsafe { libc::ioctl(master, libc::TIOCSIG, libc::SIGINT) } == 0;
    let _ = std::fs::remove_file(&pause);
    let output = child.wait_with_output().unwrap();
    // SAFETY: closing the descriptor this test owns.
    unsafe { libc::close(master) };
    let stderr = text(&output.stderr);
    let left = env.containers();
    // `ps` lists no half-removed container: the record and the namespace
    // are read back too.
    let record_left = env.state_dir().join("records/containers/ei.json").exists();
    let namespace_left = env.netns_dir().join("ei").exists();
    let _ = env.run(&["rm", "-f", "ei"]);
    assert!(paused, "the run never reached its pause: {stderr}");
    assert!(!record_left, "ei's record stayed: {stderr}");
    assert!(!namespace_left, "ei's namespace stayed: {stderr}");
    assert!(!stderr.contains("run: removing ei"), "{stderr}");
    assert!(sent, "TIOCSIG failed");
    assert_eq!(output.status.code(), Some(128 + libc::SIGINT), "{stderr}");
    assert!(!ran.exists(), "the command ran after the Ctrl-C");
    // The container made for it goes, as for a signal a moment earlier:
    // the run read the signal as the command's own end and left it.
    assert_eq!(left, Vec::<String>::new(), "{stderr}");
    assert!(
        stderr.contains("run: stopped by signal 2 before its command started; ei was removed"),
        "{stderr}"
    );
}

/// A signal the kernel sends ipvlan alone (an `alarm` set by whoever ran
/// it, inherited across `exec`: a wrapper's timeout) is passed on too: the
/// command ends of it and `--rm` removes the container. Before, such a
/// signal was taken for the terminal's, which the command gets by itself,
/// and dropped: the run went on to its end.
#[test]
fn run_passes_on_an_alarm_it_inherited() {
    use std::os::unix::process::CommandExt;
    let mut env = Env::new("alarm");
    env.network("n1", "192.168.96.0/24");
    let mut command = env.command(&["run", "--net=n1", "--rm", "--name=al", "sleep", "60"]);
    // SAFETY: alarm(2) is async-signal-safe; nothing else runs between
    // fork and exec.
    unsafe {
        command.pre_exec(|| {
            libc::alarm(2);
            Ok(())
        });
    }
    let started = std::time::Instant::now();
    let output = command.output().unwrap();
    let stderr = text(&output.stderr);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(50),
        "the run went on to its end: {stderr}"
    );
    assert_eq!(output.status.code(), Some(128 + libc::SIGALRM), "{stderr}");
    assert!(env.containers().is_empty(), "--rm left the container");
}

#[test]
fn the_hosts_own_address_on_the_parent_is_never_a_containers() {
    // The walkthrough's layout: the host has an address of the network's
    // subnet on the parent. Before, nothing reserved it: the first
    // container here got it (the cursor reaches it on a /24 after some
    // 250 containers), and `--ip` of it was taken, so the parent's traffic
    // for the host's address went to the container.
    let mut env = Env::new("hostaddr");
    assert!(vm_support::ip_ok(&["link", "add", "hp0", "type", "dummy"]));
    assert!(vm_support::ip_ok(&["link", "set", "hp0", "up"]));
    assert!(vm_support::ip_ok(&[
        "addr",
        "add",
        "192.168.76.2/24",
        "dev",
        "hp0"
    ]));
    // A range the host's address fills is refused like one the gateway
    // fills (before, every run without --ip failed on it).
    let output = env.run(&[
        "network",
        "create",
        "-o",
        "parent=hp0",
        "--subnet",
        "192.168.76.0/24",
        "--ip-range",
        "192.168.76.2/32",
        "full",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("ip range 192.168.76.2/32 of subnet 192.168.76.0/24 has no address a container could get"),
        "{}",
        text(&output.stderr)
    );
    env.ok(&[
        "network",
        "create",
        "-o",
        "parent=hp0",
        "--subnet",
        "192.168.76.0/24",
        "hn",
    ]);
    env.networks.push("hn".into());
    let output = env.run(&["run", "--net=hn", "--ip=192.168.76.2", "true"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("192.168.76.2 is the host's own address on the network's parent"),
        "{stderr}"
    );
    assert!(
        env.containers().is_empty(),
        "the refused run left a container"
    );
    env.ok(&["run", "--net=hn", "--name=first", "-d"]);
    let network = env.inspect("hn");
    let first = &field(&network, &["Containers"])
        .as_object()
        .expect("Containers")[0]
        .1;
    assert_eq!(
        field(first, &["IPv4Address"]).as_str(),
        Some("192.168.76.3/24"),
        "{network:?}"
    );
    // Docker's layout: the reservation is ours, not an aux address.
    let config = &field(&network, &["IPAM", "Config"]).as_array().unwrap()[0];
    assert!(config.get("AuxiliaryAddresses").is_none(), "{config:?}");
    env.ok(&["rm", "-f", "first"]);
    env.ok(&["network", "rm", "hn"]);
    env.networks.clear();
    assert!(vm_support::ip_ok(&["link", "del", "hp0"]));
}

#[test]
fn an_address_held_in_a_full_subnet_of_several_is_passed_over_to_the_next_subnet() {
    // A family with several subnets: the first found full is passed over,
    // and an address freed in it is where the next walk starts. Held by
    // another ipvlan link, it was given back by each failed attempt, which
    // put the walk before it again: every attempt took the same address.
    let mut env = Env::new("heldfull");
    assert!(vm_support::ip_ok(&["link", "add", "hp3", "type", "dummy"]));
    assert!(vm_support::ip_ok(&["link", "set", "hp3", "up"]));
    assert!(vm_support::ip_ok(&[
        "link", "add", "shim3", "link", "hp3", "type", "ipvlan", "mode", "l2"
    ]));
    assert!(vm_support::ip_ok(&["link", "set", "shim3", "up"]));
    env.ok(&[
        "network",
        "create",
        "-o",
        "parent=hp3",
        "--subnet",
        "192.168.85.0/29",
        "--subnet",
        "192.168.86.0/24",
        "full",
    ]);
    env.networks.push("full".into());
    // .2 to .6: the first subnet full.
    for i in 2..=6 {
        env.ok(&["run", "--net=full", &format!("--name=f{i}"), "-d"]);
    }
    env.ok(&["rm", "-f", "f4"]);
    assert!(vm_support::ip_ok(&[
        "addr",
        "add",
        "192.168.85.4/29",
        "dev",
        "shim3"
    ]));
    env.ok(&["run", "--net=full", "--name=g", "-d"]);
    assert_eq!(
        inspected_address(&env, "full", "g").as_deref(),
        Some("192.168.86.2/24")
    );
    // And the next attach does not try it first again.
    env.ok(&["run", "--net=full", "--name=h", "-d"]);
    assert_eq!(
        inspected_address(&env, "full", "h").as_deref(),
        Some("192.168.86.3/24")
    );
    for name in ["f2", "f3", "f5", "f6", "g", "h"] {
        env.ok(&["rm", "-f", name]);
    }
    env.ok(&["network", "rm", "full"]);
    env.networks.clear();
    assert!(vm_support::ip_ok(&["link", "del", "shim3"]));
    assert!(vm_support::ip_ok(&["link", "del", "hp3"]));
}

#[test]
fn the_hosts_address_on_an_ipvlan_parents_master_is_never_a_containers() {
    // A parent that is itself an ipvlan link: our links join its master's
    // port (the kernel parents them there), where the master's own address
    // is the host's. Before, only the ipvlan parent's addresses were
    // reserved: `--ip` of the master's was taken, and the port's traffic
    // for it went to the container.
    let mut env = Env::new("ipvparent");
    assert!(vm_support::ip_ok(&["link", "add", "hp2", "type", "dummy"]));
    assert!(vm_support::ip_ok(&["link", "set", "hp2", "up"]));
    assert!(vm_support::ip_ok(&[
        "addr",
        "add",
        "192.168.84.250/24",
        "dev",
        "hp2"
    ]));
    assert!(vm_support::ip_ok(&[
        "link", "add", "ipv2", "link", "hp2", "type", "ipvlan", "mode", "l2"
    ]));
    assert!(vm_support::ip_ok(&["link", "set", "ipv2", "up"]));
    env.ok(&[
        "network",
        "create",
        "-o",
        "parent=ipv2",
        "--subnet",
        "192.168.84.0/24",
        "ipvp",
    ]);
    env.networks.push("ipvp".into());
    let output = env.run(&["run", "--net=ipvp", "--ip=192.168.84.250", "true"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("192.168.84.250 is the host's own address on the network's parent"),
        "{stderr}"
    );
    assert!(env.containers().is_empty());
    env.ok(&["network", "rm", "ipvp"]);
    env.networks.clear();
    assert!(vm_support::ip_ok(&["link", "del", "ipv2"]));
    assert!(vm_support::ip_ok(&["link", "del", "hp2"]));
}

/// The global IPv4 addresses of `dev` in this (the test's) namespace.
fn host_addresses(dev: &str) -> Vec<String> {
    let shown = vm_support::ip_json(&["-4", "addr", "show", "dev", dev]);
    shown.as_array().unwrap_or(&[])[0]
        .get("addr_info")
        .and_then(Value::as_array)
        .unwrap_or(&[])
        .iter()
        .filter_map(|a| a.get("local").and_then(Value::as_str).map(str::to_string))
        .collect()
}

/// The IPv4 address (`ADDR/LEN`) `inspect` gives container `name` on `network`.
fn inspected_address(env: &Env, network: &str, name: &str) -> Option<String> {
    let inspected = env.inspect(network);
    let containers = field(&inspected, &["Containers"])
        .as_object()
        .expect("Containers");
    containers
        .iter()
        .map(|(_, c)| c)
        .find(|c| c.get("Name").and_then(Value::as_str) == Some(name))
        .and_then(|c| {
            c.get("IPv4Address")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
}

#[test]
fn an_address_another_ipvlan_link_on_the_parent_holds_is_passed_over() {
    // A host's own ipvlan link on the parent (how a host reaches its
    // ipvlan containers) with addresses of the network's subnet: the
    // kernel refuses them to every other link of the port ("Address
    // already assigned to an ipvlan device"), and no record of ours says
    // so. Before, the attach the allocation gave one failed, put the
    // cursor back, and so did every attach after it without --ip.
    let mut env = Env::new("held");
    assert!(vm_support::ip_ok(&["link", "add", "hp1", "type", "dummy"]));
    assert!(vm_support::ip_ok(&["link", "set", "hp1", "up"]));
    assert!(vm_support::ip_ok(&[
        "link", "add", "shim", "link", "hp1", "type", "ipvlan", "mode", "l2"
    ]));
    for held in ["192.168.81.2/24", "192.168.81.3/24", "192.168.81.6/24"] {
        assert!(vm_support::ip_ok(&["addr", "add", held, "dev", "shim"]));
    }
    assert!(vm_support::ip_ok(&["link", "set", "shim", "up"]));
    env.ok(&[
        "network",
        "create",
        "-o",
        "parent=hp1",
        "--subnet",
        "192.168.81.0/24",
        "held",
    ]);
    env.networks.push("held".into());
    env.network("side", "192.168.82.0/24");

    // .2 and .3 passed over, within the one command.
    env.ok(&["run", "--net=held", "--name=a", "-d"]);
    assert_eq!(
        inspected_address(&env, "held", "a").as_deref(),
        Some("192.168.81.4/24")
    );
    let a = env.netns_dir().join("a");
    assert_eq!(links_at(&a), ["eth0", "lo"]);
    // Asked for: refused in the kernel's words and the address named,
    // nothing left of the container.
    let output = env.run(&["run", "--net=held", "--name=b", "--ip=192.168.81.2", "true"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("192.168.81.2 is held by another ipvlan link on the network's parent")
            && stderr.contains("Address already assigned to an ipvlan device"),
        "{stderr}"
    );
    assert_eq!(env.containers(), ["a"]);

    // A batch meets .6 (after .5): all or nothing, so it is undone, but
    // the cursors stay past the address, and the same command succeeds.
    env.ok(&["run", "--net=side", "--name=c1", "-d"]);
    env.ok(&["run", "--net=side", "--name=c2", "-d"]);
    let output = env.run(&["network", "connect", "held", "c1", "c2"]);
    let stderr = text(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("192.168.81.6 is held by another ipvlan link")
            && stderr.contains("the same command passes over that address"),
        "{stderr}"
    );
    for name in ["c1", "c2"] {
        assert_eq!(
            links_at(&env.netns_dir().join(name)),
            ["eth0", "lo"],
            "{name}"
        );
        assert_eq!(inspected_address(&env, "held", name), None, "{name}");
    }
    env.ok(&["network", "connect", "held", "c1", "c2"]);
    assert_eq!(
        inspected_address(&env, "held", "c1").as_deref(),
        Some("192.168.81.7/24")
    );
    assert_eq!(
        inspected_address(&env, "held", "c2").as_deref(),
        Some("192.168.81.8/24")
    );
    assert_eq!(
        links_at(&env.netns_dir().join("c1")),
        ["eth0", "eth1", "lo"]
    );
    // The other link's addresses stay its own.
    let mut held = host_addresses("shim");
    held.sort();
    assert_eq!(held, ["192.168.81.2", "192.168.81.3", "192.168.81.6"]);

    // An attempt whose link the kernel would not delete is left for
    // `restore`, its record `detaching`: no attempt after it (which would
    // write its own record over that one, and leave the link unnamed).
    assert!(vm_support::ip_ok(&[
        "addr",
        "add",
        "192.168.81.9/24",
        "dev",
        "shim"
    ]));
    env.ok(&["run", "--net=side", "--name=c3", "-d"]);
    let c3 = env.netns_dir().join("c3");
    let output = env
        .command(&["network", "connect", "held", "c3"])
        .env("IPVLAN_FAULT_FORCE", "endpoint: delete refused")
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("192.168.81.9 is held by another ipvlan link"),
        "{stderr}"
    );
    assert_eq!(links_at(&c3), ["eth0", "eth1", "lo"], "{stderr}");
    let id = field(&env.inspect("held"), &["Id"])
        .as_str()
        .unwrap()
        .to_string();
    let records = endpoint_records(&env, &id);
    let kept: Vec<&String> = records
        .iter()
        .filter(|r| r.contains("\"detaching\""))
        .collect();
    assert_eq!(kept.len(), 1, "{records:?}");
    env.ok(&["restore"]);
    assert_eq!(links_at(&c3), ["eth0", "lo"], "restore deleted it");
    assert_eq!(endpoint_records(&env, &id).len(), 3, "a, c1 and c2's");

    for name in ["a", "c1", "c2", "c3"] {
        env.ok(&["rm", "-f", name]);
    }
    env.ok(&["network", "rm", "held", "side"]);
    env.networks.clear();
    assert!(vm_support::ip_ok(&["link", "del", "shim"]));
    assert!(vm_support::ip_ok(&["link", "del", "hp1"]));
}

#[test]
fn a_container_whose_namespace_name_was_deleted_is_kept_then_removed_whole() {
    // `ip netns del` of a running container: its name goes, its command
    // keeps the namespace, and its link the address, alive. Before,
    // `restore` and `rm -f` took the namespace for gone: they forgot the
    // container and released its address, left its command running, and
    // the next container given the address failed in the kernel
    // ("Address already assigned to an ipvlan device").
    let mut env = Env::new("unnamed");
    env.network("un", "192.168.79.0/24");
    env.ok(&[
        "run",
        "--net=un",
        "--name=web",
        "--ip=192.168.79.9",
        "-d",
        "sleep",
        "1000",
    ]);
    let path = env.netns_dir().join("web");
    let inode = vm_support::namespace_inode(&path);
    let inside = || vm_support::processes_in_namespace(inode);
    assert_eq!(inside().len(), 1, "the sleep runs in the container");
    // What `ip netns del web` does.
    let unmounted = Command::new("umount").arg(&path).status().unwrap();
    assert!(unmounted.success());
    std::fs::remove_file(&path).unwrap();

    env.ok(&["restore"]);
    assert_eq!(
        env.containers(),
        ["web"],
        "restore kept the running container"
    );
    let output = env.run(&["run", "--net=un", "--ip=192.168.79.9", "true"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("Address already in use") && !stderr.contains("already assigned"),
        "refused by the allocation, not by the kernel: {stderr}"
    );
    // exec still enters it.
    let output = env.run(&["exec", "web", "true"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));

    env.ok(&["rm", "-f", "web"]);
    let left = vm_support::left_in_namespace(inode, 100);
    assert!(left.is_empty(), "rm -f killed the command: {left:?}");
    assert!(env.containers().is_empty());
    env.ok(&["run", "--net=un", "--name=web2", "--ip=192.168.79.9", "-d"]);
    env.ok(&["rm", "-f", "web2"]);
}

/// Waits (30 s at most) for the file a paused command makes (the
/// fault-injection build's `IPVLAN_FAULT_PAUSE_FILE`).
/// `args` started with its output piped, once it has paused at `point`
/// (making the file `pause`, and waiting until it is removed).
fn spawn_paused(env: &Env, args: &[&str], point: &str, pause: &Path) -> std::process::Child {
    spawn_command_paused(env.command(args), args[0], point, pause)
}

/// [`spawn_paused`] of a command built by the caller (with variables of
/// its own, a forced failure), named `what` while it is waited for.
fn spawn_command_paused(
    mut command: Command,
    what: &str,
    point: &str,
    pause: &Path,
) -> std::process::Child {
    let child = command
        .env("IPVLAN_FAULT_PAUSE_AT", point)
        .env("IPVLAN_FAULT_PAUSE_FILE", pause)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_pause(pause, what);
    child
}

fn wait_for_pause(pause: &Path, command: &str) {
    vm_support::wait_until(&format!("{command} reaching its pause"), || pause.exists());
}

/// Kills a command [`spawn_paused`] left waiting at its pause, as a
/// `kill -9` would, and takes the pause file away for the next one.
fn kill_paused(mut child: std::process::Child, pause: &Path) {
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_file(pause);
}

/// The children of process `pid`, from `/proc/*/stat`.
fn children_of(pid: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `PID (COMM) STATE PPID ...`: the fields after the last ')'.
        let after = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest)
            .unwrap_or_default();
        if after
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok())
            == Some(pid)
        {
            children.push(child);
        }
    }
    children
}

/// A `run` whose keeper (the process that holds the command's status) is
/// killed while the command runs (the OOM killer, a stray `kill -9`)
/// cannot tell how the command ended: it says so and exits 125, and the
/// container stays with its command running, as Docker keeps a container
/// whose client went away. Before, `run` took the lost status for a
/// command that never started and removed the container, killing it.
#[test]
fn a_run_whose_keeper_is_killed_leaves_the_container() {
    let mut env = Env::new("keeperkilled");
    env.network("n1", "192.168.78.0/24");
    // Not pipes: the command holds run's streams, and would hold a
    // reader of them until it ends.
    let said = env.root.join("said");
    let mut run = env
        .command(&["run", "--net=n1", "--name=w", "sleep", "300"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&said).unwrap())
        .spawn()
        .unwrap();
    // The keeper: run's child, once it has a child of its own (sleep).
    let mut keeper = None;
    vm_support::wait_until("the command under its keeper", || {
        keeper = children_of(run.id())
            .into_iter()
            .find(|&k| !children_of(k).is_empty());
        keeper.is_some()
    });
    let keeper = keeper.unwrap();
    let command = children_of(keeper)[0];
    // SAFETY: kill(2) of a process of this test's.
    assert_eq!(unsafe { libc::kill(keeper as i32, libc::SIGKILL) }, 0);
    let status = run.wait().unwrap();
    let said = std::fs::read_to_string(&said).unwrap();
    assert_eq!(status.code(), Some(125), "{said}");
    assert!(
        said.contains("status is unknown") && said.contains("w stays"),
        "{said}"
    );
    assert_eq!(env.containers(), ["w"]);
    assert!(
        std::path::Path::new(&format!("/proc/{command}")).exists(),
        "the command was killed"
    );
    env.ok(&["rm", "-f", "w"]);
    assert!(env.containers().is_empty());
}

/// A foreground `run` whose command cannot be started leaves no
/// container behind, as a `-d` one does (before, the container stayed,
/// its name and address taken until an `rm`).
#[test]
fn a_foreground_run_whose_command_cannot_start_leaves_no_container() {
    let mut env = Env::new("runnostart");
    env.network("n1", "192.168.151.0/24");
    for (command, code) in [("no-such-command", 127), ("/etc/hosts", 126)] {
        let output = env.run(&["run", "--net=n1", "--name=ns1", command]);
        assert_eq!(output.status.code(), Some(code), "{}", text(&output.stderr));
        assert_nothing_left_and_the_name_free(&env, "ns1", command);
    }
}

/// A `run -d` whose command cannot be started, sent a `SIGTERM` while
/// it starts it, still says why and exits 127 (the signal's command is
/// gone): before, the signal, blocked until then, ended ipvlan as it
/// returned (143, no message).
#[test]
fn a_detached_run_that_cannot_start_says_why_despite_a_signal() {
    let mut env = Env::new("rundsig");
    env.network("n1", "192.168.153.0/24");
    let pause = env.root.join("pause");
    let run = spawn_paused(
        &env,
        &["run", "-d", "--net=n1", "--name=ds1", "no-such-command"],
        "container: before spawn#1",
        &pause,
    );
    // SAFETY: kill(2) of our own child, not yet waited for.
    assert_eq!(
        unsafe { libc::kill(run.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    std::fs::remove_file(&pause).unwrap();
    let output = run.wait_with_output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(127),
        "{:?}: {stderr}",
        output.status
    );
    assert!(stderr.contains("no-such-command"), "{stderr}");
    assert_nothing_left_and_the_name_free(&env, "ds1", "run -d");
}

/// A `run -d` whose container an `rm -f` removed whole between the run's
/// look at it and its log's opening leaves no log behind: a later
/// container of the name would append to it. Before, `logs/NAME.log`
/// stayed, named by no container.
#[test]
fn a_detached_run_whose_container_was_removed_leaves_no_log() {
    let mut env = Env::new("runlog");
    env.network("n1", "192.168.154.0/24");
    let pause = env.root.join("pause");
    let run = spawn_paused(
        &env,
        &["run", "-d", "--net=n1", "--name=lg1", "sleep", "300"],
        "container: before log#1",
        &pause,
    );
    env.ok(&["rm", "-f", "lg1"]);
    std::fs::remove_file(&pause).unwrap();
    let output = run.wait_with_output().unwrap();
    let stderr = text(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("being removed"), "{stderr}");
    let log = env.state_dir().join("logs/lg1.log");
    assert!(!log.exists(), "{} stayed", log.display());
    assert_nothing_left_and_the_name_free(&env, "lg1", "run -d");
}

/// No container or namespace is left, and a `run` of `name` on `n1`
/// succeeds (then removed).
fn assert_nothing_left_and_the_name_free(env: &Env, name: &str, what: &str) {
    assert!(env.containers().is_empty(), "{what}: its container stayed");
    assert_eq!(env.namespaces(), 0, "{what}: its namespace stayed");
    let again = env.run(&["run", "--net=n1", &format!("--name={name}"), "true"]);
    assert_eq!(
        again.status.code(),
        Some(0),
        "{what}: {}",
        text(&again.stderr)
    );
    env.ok(&["rm", name]);
}

/// A supervisor's `SIGTERM` that comes while `run` makes its container
/// (paused right after the namespace's mount) neither kills it half-way
/// nor starts the command: the run stops once the container is whole,
/// takes it out again and exits 143, and the name is free at once.
/// Before, the signal killed it there: a `creating` record, the named
/// namespace and its links stayed, and `run` of the name was refused
/// until `restore`.
#[test]
fn a_signal_while_run_makes_its_container_stops_it_whole() {
    let mut env = Env::new("runsig");
    env.network("n1", "192.168.152.0/24");
    let pause = env.root.join("pause");
    for detach in [false, true] {
        let mut args = vec!["run", "--net=n1", "--name=sg1"];
        if detach {
            args.push("-d");
        }
        args.extend(["sh", "-c", "echo started > /dev/stderr"]);
        let run = spawn_paused(&env, &args, "netns: after mount#1", &pause);
        // SAFETY: kill with the pid of our own child, not yet reaped.
        assert_eq!(
            unsafe { libc::kill(run.id() as libc::pid_t, libc::SIGTERM) },
            0
        );
        std::fs::remove_file(&pause).unwrap();
        let output = run.wait_with_output().unwrap();
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(143), "-d {detach}: {stderr}");
        assert!(
            stderr.contains("stopped by signal 15 before its command started")
                && !stderr.contains("started\n"),
            "-d {detach}: {stderr}"
        );
        assert_nothing_left_and_the_name_free(&env, "sg1", &format!("-d {detach}"));
    }
}

/// `rm` without `-f` looks for processes again once its record says
/// `removing`: one that came in between (an `exec` that read the record
/// before the mark, and so does not stop its command) makes it refuse, the
/// record put back. Before, it looked once, before the mark, and removed a
/// container with a command running in it: the namespace left with no
/// name and no record, the command running on. A pause right after the
/// mark's write puts the process there at that moment.
#[test]
fn rm_looks_again_after_its_mark_and_refuses_a_process_that_came_meanwhile() {
    let mut env = Env::new("rmrace");
    env.network("n1", "192.168.84.0/24");
    assert_eq!(env.ok(&["run", "--net=n1", "--name=rr", "-d"]), "rr\n");
    let ns = env.netns_dir().join("rr");
    let inode = vm_support::namespace_inode(&ns);
    let pause = env.root.join("pause");
    let rm = spawn_paused(&env, &["rm", "rr"], "store: after rename#1", &pause);
    let record = env.state_dir().join("records/containers/rr.json");
    let marked = std::fs::read_to_string(&record).unwrap();
    assert!(
        marked.contains("removing"),
        "paused after the mark: {marked}"
    );
    let mut sleeper = Command::new("nsenter")
        .arg(format!("--net={}", ns.display()))
        .args(["sleep", "1000"])
        .spawn()
        .unwrap();
    let pid = sleeper.id().to_string();
    for _ in 0..500 {
        if vm_support::processes_in_namespace(inode).contains(&pid) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        vm_support::processes_in_namespace(inode).contains(&pid),
        "the sleep entered"
    );
    std::fs::remove_file(&pause).unwrap();
    let output = rm.wait_with_output().unwrap();
    let stderr = text(&output.stderr);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("container rr still has processes running"),
        "{stderr}"
    );
    assert!(
        !std::fs::read_to_string(&record)
            .unwrap()
            .contains("removing"),
        "the record is put back"
    );
    assert_eq!(env.containers(), ["rr"]);
    env.ok(&["rm", "-f", "rr"]);
}

/// An `rm` killed once its record says `removing`, a process another tool
/// starts in the container then (`nsenter`, as `ip netns exec`), and
/// `restore`: it does what that `rm` would have done with the process.
/// Without `-f`, killed before its second look (which refuses a process
/// that came in): the removal undone, container and process kept; killed
/// after it: the removal finished and the process left running, its
/// namespace unnamed. With `-f`: the process killed. Both said. Before,
/// `restore` killed it in all three: the record did not say which `rm` it
/// was. A plain `rm` of a container a killed `run` left half made is
/// finished, never undone, whenever it is killed: undone, the half-made
/// container would pass for a whole one.
#[test]
fn restore_finishing_an_rm_does_what_that_rm_would_have() {
    let mut env = Env::new("rmkeep");
    env.network("n1", "192.168.107.0/24");
    // (args, pause, what restore does: "undone", "removed" or "killed",
    // the container left half made by a killed run)
    let rounds: [(&[&str], &str, &str, bool); 4] = [
        (&["rm", "rk"], "store: after rename#1", "undone", false),
        (&["rm", "rk"], "store: after rename#2", "removed", false),
        (
            &["rm", "-f", "rk"],
            "store: after rename#1",
            "killed",
            false,
        ),
        (&["rm", "rk"], "store: after rename#1", "removed", true),
    ];
    let pause = env.root.join("pause");
    for (args, pause_at, outcome, half_made) in rounds {
        let run = ["run", "--net=n1", "--name=rk", "-d"];
        if half_made {
            // Its record written `creating`, its namespace named.
            kill_paused(
                spawn_paused(&env, &run, "netns: after mount#1", &pause),
                &pause,
            );
        } else {
            assert_eq!(env.ok(&run), "rk\n");
        }
        let ns = env.netns_dir().join("rk");
        let inode = vm_support::namespace_inode(&ns);
        let rm = spawn_paused(&env, args, pause_at, &pause);
        let record = env.state_dir().join("records/containers/rk.json");
        let marked = std::fs::read_to_string(&record).unwrap();
        assert!(marked.contains("removing"), "{outcome}: {marked}");
        // Killed however the test ends: a sleep left running would hold
        // the guest's output open for its whole length.
        struct Sleeper(std::process::Child);
        impl Drop for Sleeper {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let sleeper = Sleeper(
            Command::new("nsenter")
                .arg(format!("--net={}", ns.display()))
                .args(["sleep", "1000"])
                .spawn()
                .unwrap(),
        );
        let pid = sleeper.0.id().to_string();
        vm_support::wait_until("the sleep entering", || {
            vm_support::processes_in_namespace(inode).contains(&pid)
        });
        kill_paused(rm, &pause);
        let output = env.command(&["restore"]).output().unwrap();
        let stdout = text(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        let said = |what: &str| {
            format!("  processes left running (rm without -f): rk: pids {pid}; {what}\n")
        };
        let left = vm_support::left_in_namespace(inode, 100);
        match outcome {
            "undone" => {
                assert!(
                    stdout.contains(&said(
                        "the rm is undone, as it refuses a container with processes"
                    )),
                    "{stdout}"
                );
                assert_eq!(env.containers(), ["rk"]);
                assert_eq!(vm_support::namespace_inode(&ns), inode);
                assert_eq!(left, vec![pid.clone()]);
                let listed = env.ok(&["network", "inspect", "n1"]);
                assert!(listed.contains("\"rk\""), "{listed}");
                drop(sleeper);
                env.ok(&["rm", "rk"]);
                continue;
            }
            "removed" => {
                assert!(
                    stdout.contains(&said("the container is removed, its namespace unnamed")),
                    "{stdout}"
                );
                assert_eq!(left, vec![pid.clone()]);
            }
            _ => {
                assert_eq!(left, Vec::<String>::new(), "{stdout}");
                assert!(!stdout.contains("processes left running"), "{stdout}");
            }
        }
        assert_eq!(env.containers(), Vec::<String>::new(), "{outcome}");
        assert!(!ns.exists(), "{outcome}: the name stays");
        // `ps` lists no half-removed container: its record is read back.
        assert!(!record.exists(), "{outcome}: the record stays");
        drop(sleeper);
    }
}

/// `ps`, `network ls` and `network inspect` read without the lock, so they
/// see the records of a `run`, an `rm` or a `network create` at work half
/// done. They name one as a killed command's, and send the operator to
/// `restore`, only when it is one: the lock free and the record still
/// half done under it. Before, `ps` beside a `run` at work warned on
/// stderr that its container was half made, `network ls` beside a create
/// that its network was half-created, and `inspect` refused the network
/// as an interrupted create's (the soak's readers, which must print
/// nothing on stderr, caught the first). Each command is paused after its
/// record says it is at work, then killed there, as a crash leaves it.
#[test]
fn readers_tell_a_command_at_work_from_one_interrupted() {
    let mut env = Env::new("atwork");
    env.network("n1", "192.168.85.0/24");
    let pause = env.root.join("pause");
    let quiet = |env: &Env, args: &[&str], at_work: &str| {
        let output = env.run(args);
        assert_eq!(output.status.code(), Some(0), "{args:?} beside {at_work}");
        assert_eq!(text(&output.stderr), "", "{args:?} beside {at_work}");
    };
    let warns = |env: &Env, args: &[&str], warning: &str| {
        let output = env.run(args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.contains(warning), "{args:?}: {stderr}");
    };
    let killed = |child: std::process::Child| kill_paused(child, &pause);

    let run = spawn_paused(
        &env,
        &["run", "--net=n1", "--name=hm", "-d"],
        "netns: before mount#1",
        &pause,
    );
    let record = env.state_dir().join("records/containers/hm.json");
    assert!(std::fs::read_to_string(&record)
        .unwrap()
        .contains("creating"));
    quiet(&env, &["ps"], "a run at work");
    killed(run);
    warns(&env, &["ps"], "container hm is half made");
    env.ok(&["restore"]);
    quiet(&env, &["ps"], "nothing");

    env.ok(&["run", "--net=n1", "--name=hr", "-d"]);
    let rm = spawn_paused(&env, &["rm", "hr"], "store: after rename#1", &pause);
    let record = env.state_dir().join("records/containers/hr.json");
    assert!(std::fs::read_to_string(&record)
        .unwrap()
        .contains("removing"));
    quiet(&env, &["ps"], "an rm at work");
    killed(rm);
    warns(&env, &["ps"], "container hr is half removed");
    env.ok(&["restore"]);
    assert_eq!(env.containers(), Vec::<String>::new());

    let create = spawn_paused(
        &env,
        &["network", "create", "--subnet", "192.168.86.0/24", "n2"],
        "parent: before up#1",
        &pause,
    );
    quiet(&env, &["network", "ls"], "a create at work");
    let inspect = env.run(&["network", "inspect", "n2"]);
    assert_ne!(inspect.status.code(), Some(0));
    assert!(
        text(&inspect.stderr)
            .contains("network n2 is being created by another command, or was left half-created"),
        "{}",
        text(&inspect.stderr)
    );
    killed(create);
    warns(&env, &["network", "ls"], "network n2 was left half-created");
    let inspect = env.run(&["network", "inspect", "n2"]);
    let stderr = text(&inspect.stderr);
    assert!(
        stderr.contains("network n2 was left half-created by an interrupted `network create`")
            && !stderr.contains("being created"),
        "{stderr}"
    );
    env.ok(&["restore"]);
    quiet(&env, &["network", "ls"], "nothing");
}

/// `ps` lists a container's attached endpoints only, as `network inspect`
/// does: the intent a killed `network connect` left (an `attaching`
/// record once a later command takes the lock) is no attachment (its link
/// made, not configured), and `ps` listed the network and its address
/// until `restore` ran.
#[test]
fn ps_lists_only_attached_endpoints() {
    let mut env = Env::new("psatt");
    env.network("n1", "192.168.87.0/24");
    env.network("n2", "192.168.88.0/24");
    env.ok(&["run", "--net=n1", "--name=pa", "-d"]);
    let pause = env.root.join("pause");
    let connect = spawn_paused(
        &env,
        &["network", "connect", "n2", "pa"],
        "netlink: after acks#1",
        &pause,
    );
    let at_work = env.ok(&["ps"]);
    kill_paused(connect, &pause);
    // A command that takes the lock makes the intent a record of its own.
    env.network("n3", "192.168.89.0/24");
    let records = env.state_dir().join("endpoints");
    let attaching = std::fs::read_dir(&records)
        .unwrap()
        .flatten()
        .flat_map(|dir| std::fs::read_dir(dir.path()).unwrap().flatten())
        .filter(|file| {
            std::fs::read_to_string(file.path()).is_ok_and(|t| t.contains("\"attaching\""))
        })
        .count();
    assert_eq!(attaching, 1, "the killed connect's intent is a record");
    let after = env.ok(&["ps"]);
    for ps in [&at_work, &after] {
        let line = ps
            .lines()
            .find(|l| l.starts_with("pa "))
            .unwrap_or_default();
        assert!(line.contains("n1") && !line.contains("n2"), "{ps}");
    }
    env.ok(&["restore"]);
    let ps = env.ok(&["ps"]);
    assert!(!ps.contains("n2"), "{ps}");
}

/// `network connect` refuses a container a killed `run` left half made or
/// a killed `rm` half removed, single or in a batch, and changes nothing:
/// it attached it, and the next `restore`, taking the container apart,
/// took that endpoint with it (`run --name` and `exec` refuse such a
/// container already).
#[test]
fn connect_refuses_a_container_left_half_done() {
    let mut env = Env::new("halfconn");
    env.network("n1", "192.168.90.0/24");
    env.network("n2", "192.168.92.0/24");
    env.ok(&["run", "--net=n1", "--name=hok", "-d"]);
    let pause = env.root.join("pause");
    let kill = |child: std::process::Child| kill_paused(child, &pause);
    kill(spawn_paused(
        &env,
        &["run", "--net=n1", "--name=hmk", "-d"],
        "netns: after mount#1",
        &pause,
    ));
    env.ok(&["run", "--net=n1", "--name=hrm", "-d"]);
    kill(spawn_paused(
        &env,
        &["rm", "hrm"],
        "store: after rename#1",
        &pause,
    ));
    let before = env.inspect("n2");
    // The kernel read back too: a refusal after a link was made, before
    // anything was recorded, would leave it.
    let links = |env: &Env| -> Vec<Vec<String>> {
        ["hok", "hmk", "hrm"]
            .iter()
            .map(|name| links_at(&env.netns_dir().join(name)))
            .collect()
    };
    let links_before = links(&env);
    assert!(
        links_before[0].contains(&"eth0".to_string()),
        "hok's eth0 read back: {links_before:?}"
    );
    for (args, says) in [
        (
            &["network", "connect", "n2", "hmk"][..],
            "container hmk was left half made by an interrupted run",
        ),
        (
            &["network", "connect", "n2", "hrm"][..],
            "container hrm was left half removed by an interrupted rm",
        ),
        (
            &["network", "connect", "n2", "hok", "hmk"][..],
            "container hmk was left half made by an interrupted run",
        ),
    ] {
        let output = env.run(args);
        let stderr = text(&output.stderr);
        assert_ne!(output.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert_eq!(env.inspect("n2"), before, "{args:?} changed n2");
        assert_eq!(links(&env), links_before, "{args:?} changed a link");
    }
    env.ok(&["restore"]);
    env.ok(&["network", "connect", "n2", "hok"]);
}

/// `exec` reads the container's record again once its command's process
/// exists, and ends it when the container's removal began meanwhile: it
/// would run on in a namespace `rm -f` already took out (no name, no
/// record). A pause right before the start puts a whole `rm -f` there.
#[test]
fn exec_stops_its_command_when_the_container_was_removed_meanwhile() {
    exec_while_removed(
        "execrace",
        "192.168.85.0/24",
        "container: before spawn#1",
        "sleep 1000",
    );
}

/// The command's process is made, then held until `exec` has read the
/// container's record again: when its removal began in between, the
/// process ends before the command runs anything. Before, the command ran
/// until that read, time enough to start processes of its own that an
/// `rm -f` whose last look came before them never saw (they ran on in a
/// namespace with no name and no record). A pause between the start and
/// the read puts a whole `rm -f` there.
#[test]
fn a_command_whose_container_is_being_removed_runs_nothing() {
    exec_while_removed(
        "execheld",
        "192.168.86.0/24",
        "container: after spawn#1",
        "echo ran > \"$1\"; sleep 1000 & exec sleep 1000",
    );
}

/// `exec c1 sh -c SCRIPT RAN` (RAN: a file of the test's) paused at
/// `pause_at` while `rm -f c1` runs whole: `exec` must end with 125 ("is
/// being removed"), RAN never made, nothing left in the namespace. `tag`
/// and `subnet`: the test's own.
fn exec_while_removed(tag: &str, subnet: &str, pause_at: &str, script: &str) {
    let mut env = Env::new(tag);
    env.network("n1", subnet);
    assert_eq!(env.ok(&["run", "--net=n1", "--name=c1", "-d"]), "c1\n");
    let inode = vm_support::namespace_inode(&env.netns_dir().join("c1"));
    let pause = env.root.join("pause");
    let ran = env.root.join("ran");
    // Its error to a file, not a pipe: a command left running would hold
    // a pipe open, and reading it to its end would wait for the command.
    let errors = env.root.join("exec.err");
    let ran_arg = ran.display().to_string();
    let mut exec = env
        .command(&["exec", "c1", "sh", "-c", script, "sh", &ran_arg])
        .env("IPVLAN_FAULT_PAUSE_AT", pause_at)
        .env("IPVLAN_FAULT_PAUSE_FILE", &pause)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&errors).unwrap())
        .spawn()
        .unwrap();
    wait_for_pause(&pause, "exec");
    env.ok(&["rm", "-f", "c1"]);
    std::fs::remove_file(&pause).unwrap();
    let ended = (0..1500).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(20));
        exec.try_wait().unwrap().is_some()
    });
    if !ended {
        let _ = exec.kill();
    }
    let status = exec.wait().unwrap();
    let left = vm_support::left_in_namespace(inode, 100);
    let stderr = std::fs::read_to_string(&errors).unwrap();
    assert!(ended, "exec ran its command on: {stderr}; left: {left:?}");
    assert_eq!(status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains("container c1 is being removed: the command was not started"),
        "{stderr}"
    );
    assert!(
        !ran.exists(),
        "the command ran in a container being removed"
    );
    assert_eq!(left, Vec::<String>::new());
}

/// `run` starts its command in the container it made, not in one another
/// process gave that name since (an `rm -f` and a `run --name` of the
/// same name between the making and the start): that one is refused
/// (125) and left as it is. Before, the command ran in the new container,
/// with its networks and names, and `--rm` then left it alone.
#[test]
fn run_starts_its_command_in_its_own_container_not_a_new_one_of_its_name() {
    let mut env = Env::new("runname");
    env.network("n1", "192.168.87.0/24");
    let ran = env.root.join("ran");
    let script = format!("echo ran > {}", ran.display());
    for detach in [false, true] {
        let mut args = vec!["run", "--net=n1", "--name=same"];
        args.push(if detach { "-d" } else { "--rm" });
        args.extend(["sh", "-c", &script]);
        let (output, inode) = replaced_while_paused(&env, &args, "container: before entering#1");
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(125), "detach {detach}: {stderr}");
        assert!(
            stderr.contains("container same was removed meanwhile (its name is another container's now): nothing was started"),
            "{stderr}"
        );
        assert!(!ran.exists(), "detach {detach}: ran in the new container");
        assert_eq!(env.containers(), ["same"], "{stderr}");
        assert_eq!(
            vm_support::namespace_inode(&env.netns_dir().join("same")),
            inode
        );
        env.ok(&["rm", "-f", "same"]);
    }
}

/// Runs `args` (a `run --name=same` on `n1`) paused at `pause_at`, where
/// container `same` is removed and another made under its name; returns
/// the command's output once released, and the new container's namespace
/// inode.
fn replaced_while_paused(env: &Env, args: &[&str], pause_at: &str) -> (Output, u64) {
    let pause = env.root.join("pause");
    let _ = std::fs::remove_file(&pause);
    let run = env
        .command(args)
        .env("IPVLAN_FAULT_PAUSE_AT", pause_at)
        .env("IPVLAN_FAULT_PAUSE_FILE", &pause)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_pause(&pause, "run");
    env.ok(&["rm", "-f", "same"]);
    assert_eq!(env.ok(&["run", "--net=n1", "--name=same", "-d"]), "same\n");
    let inode = vm_support::namespace_inode(&env.netns_dir().join("same"));
    std::fs::remove_file(&pause).unwrap();
    (run.wait_with_output().unwrap(), inode)
}

/// `network create -d ipvlan --subnet SUBNET -o PARENT NAME` (`PARENT`:
/// `parent=LINK`).
fn create_on<'a>(parent: &'a str, name: &'a str, subnet: &'a str) -> [&'a str; 9] {
    [
        "network", "create", "-d", "ipvlan", "--subnet", subnet, "-o", parent, name,
    ]
}

/// A create that fails at its last step (its record's final write), on a
/// parent another network made (a VLAN sub-interface both share), leaves
/// that parent: it is the other network's. Before, the failed create
/// deleted it (it looked for no other user), and the first network lost
/// its parent and every link on it.
#[test]
fn a_failed_create_leaves_the_parent_another_network_made() {
    let mut env = Env::new("sharedparent");
    assert!(vm_support::ip_ok(&["link", "add", "sp0", "type", "dummy"]));
    assert!(vm_support::ip_ok(&["link", "set", "sp0", "up"]));
    let create =
        |name: &'static str, subnet: &'static str| create_on("parent=sp0.53", name, subnet);
    env.ok(&create("a", "192.168.90.0/24"));
    env.networks.push("a".to_string());
    let index = |name: &str| {
        vm_support::link(None, name).and_then(|l| l.get("ifindex").and_then(Value::as_u64))
    };
    let made = index("sp0.53");
    assert!(made.is_some(), "network a made sp0.53");
    let output = env
        .command(&create("sb", "192.168.91.0/24"))
        .env("IPVLAN_FAULT_FORCE", "network: final record refused")
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    // The forced failure, not an earlier refusal that would leave the
    // parent alone whatever the undo does.
    assert!(
        stderr.contains("No space left on device"),
        "refused at its final record: {stderr}"
    );
    assert_eq!(index("sp0.53"), made, "network a's parent: {stderr}");
    // Not a name that is also a hex prefix ("b"): one in sixteen
    // times network a's ID starts with it, and inspect finds a.
    let inspect = env.run(&["network", "inspect", "sb"]);
    assert_eq!(
        text(&inspect.stderr),
        "ipvlan: network inspect: network sb not found\n"
    );
    assert_eq!(env.ok(&["run", "--net=a", "--name=sp1", "-d"]), "sp1\n");
    env.ok(&["rm", "-f", "sp1"]);
    env.ok(&["network", "rm", "a"]);
    env.networks.clear();
    assert_eq!(index("sp0.53"), None, "network a's parent goes with it");
    assert!(vm_support::ip_ok(&["link", "del", "sp0"]));
}

/// A create whose final record is refused, and whose undo cannot remove
/// the record it began with either (the disk refusing the removal of the
/// network's directories), says that the half-made record stays and that
/// `restore` rolls it back; the parent it made goes all the same, and
/// once `restore` ran the same create works. Before, the undo's failure
/// was dropped: the next create of the name was the first to tell.
#[test]
fn a_failed_create_whose_undo_fails_says_what_it_left() {
    let mut env = Env::new("halfmade");
    assert!(vm_support::ip_ok(&["link", "add", "hm0", "type", "dummy"]));
    assert!(vm_support::ip_ok(&["link", "set", "hm0", "up"]));
    let create = create_on("parent=hm0.55", "hm", "192.168.93.0/24");
    let output = env
        .command(&create)
        .env(
            "IPVLAN_FAULT_FORCE",
            "network: final record refused,store: rmdir fails",
        )
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "No space left on device (os error 28); network hm's half-made record stays (removing "
        ) && stderr.ends_with("): `ipvlan restore` rolls it back\n"),
        "{stderr}"
    );
    assert!(
        vm_support::link(None, "hm0.55").is_none(),
        "the parent it made is deleted"
    );
    let again = env.run(&create);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("left half-created by an interrupted `network create`"),
        "{}",
        text(&again.stderr)
    );
    env.ok(&["restore"]);
    env.ok(&create);
    env.networks.push("hm".to_string());
    assert!(vm_support::link(None, "hm0.55").is_some());
    env.ok(&["network", "rm", "hm"]);
    env.networks.clear();
    assert!(vm_support::ip_ok(&["link", "del", "hm0"]));
}

/// A create whose final record is refused deletes the parent it made,
/// unless another tool put a link on that parent meanwhile (here a
/// macvlan, added while the create waits before its final record): then
/// the parent and the other tool's link stay, the error names the parent
/// kept and why, and the store is as before the create, so the same
/// create works once the other link is gone. Before, the kept parent went
/// unsaid.
#[test]
fn a_failed_create_keeps_a_parent_it_made_that_another_tool_uses() {
    let env = Env::new("keptparent");
    assert!(vm_support::ip_ok(&["link", "add", "kp0", "type", "dummy"]));
    assert!(vm_support::ip_ok(&["link", "set", "kp0", "up"]));
    // A first network, so that the store exists before the create.
    env.ok(&create_on("parent=kp0", "kpa", "192.168.90.0/24"));
    let before = tree_of(&env.state_dir());
    let create = create_on("parent=kp0.57", "kp", "192.168.91.0/24");
    let pause = env.root.join("pause");
    let mut command = env.command(&create);
    command.env("IPVLAN_FAULT_FORCE", "network: final record refused");
    let child = spawn_command_paused(
        command,
        "network create",
        "network: before final record#1",
        &pause,
    );
    assert!(
        vm_support::link(None, "kp0.57").is_some(),
        "the create made its parent before its final record"
    );
    assert!(vm_support::ip_ok(&[
        "link", "add", "link", "kp0.57", "name", "kpm0", "type", "macvlan"
    ]));
    std::fs::remove_file(&pause).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("No space left on device (os error 28)")
            && stderr.contains(
                "parent kp0.57 kept: macvlan link kpm0 in the host namespace sits on it, and would go with it; delete it with `ip link del kp0.57` once nothing uses it"
            ),
        "{stderr}"
    );
    assert!(vm_support::link(None, "kp0.57").is_some(), "{stderr}");
    assert!(vm_support::link(None, "kpm0").is_some(), "{stderr}");
    assert_eq!(tree_of(&env.state_dir()), before, "{stderr}");
    assert!(vm_support::ip_ok(&["link", "del", "kpm0"]));
    assert!(vm_support::ip_ok(&["link", "del", "kp0.57"]));
    env.ok(&create);
    env.ok(&["network", "rm", "kp", "kpa"]);
    assert!(
        vm_support::link(None, "kp0.57").is_none(),
        "kp's parent goes with it"
    );
    assert!(vm_support::ip_ok(&["link", "del", "kp0"]));
}

/// A parent we made is kept, and says why, when a namespace that may
/// hold a link on it could not be looked into (its dump refused here, as a
/// security policy may keep us out of a namespace): the kernel would take
/// such a link with it. Here a process in a namespace without a name
/// (as a runtime's container) holds one. Before, a namespace that could
/// not be entered or listed counted as holding no link.
#[test]
fn a_parent_is_kept_when_a_namespace_beside_it_could_not_be_looked_into() {
    let env = Env::new("unlooked");
    assert!(vm_support::ip_ok(&["link", "add", "kq0", "type", "dummy"]));
    assert!(vm_support::ip_ok(&["link", "set", "kq0", "up"]));
    let holder = vm_support::NamelessNamespace::start();
    env.ok(&create_on("parent=kq0.58", "kq", "192.168.93.0/24"));
    let output = env
        .command(&["network", "rm", "kq"])
        .env(
            "IPVLAN_FAULT_FORCE",
            "parent: dump of a namespace beside refused",
        )
        .output()
        .unwrap();
    drop(holder);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "parent kq0.58 kept: links that may sit on it could not be looked for: the namespace of process "
        ) && stderr.contains(": I/O error (os error 5)"),
        "{stderr}"
    );
    assert!(vm_support::link(None, "kq0.58").is_some(), "{stderr}");
    assert!(env.ok(&["network", "ls", "-q"]).trim().is_empty());
    // Looked into, nothing on it: it goes with the network, as before.
    env.ok(&create_on("parent=kq0.59", "kq", "192.168.93.0/24"));
    let output = env.command(&["network", "rm", "kq"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(output.stderr.is_empty(), "{output:?}");
    assert!(vm_support::link(None, "kq0.59").is_none());
    assert!(vm_support::ip_ok(&["link", "del", "kq0.58"]));
    assert!(vm_support::ip_ok(&["link", "del", "kq0"]));
}

/// Where `/proc` hides the processes `ipvlan` may not trace (`hidepid=`
/// without CAP_SYS_PTRACE or the mount's group), the namespaces they are
/// in could not be looked into for other tools' links on a parent of
/// ours: `network rm` keeps it and says why. Before, the walk counted
/// only the processes it saw and could not read, none here, and deleted
/// the parent.
#[test]
fn a_parent_is_kept_where_proc_hides_processes() {
    let env = Env::new("hidden");
    assert!(vm_support::ip_ok(&["link", "add", "hq0", "type", "dummy"]));
    assert!(vm_support::ip_ok(&["link", "set", "hq0", "up"]));
    env.ok(&create_on("parent=hq0.57", "hq", "192.168.94.0/24"));
    let mut command = Command::new("unshare");
    command
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg(
            "mount -t proc -o hidepid=invisible,gid=4242 proc /proc || exit 99
             \"$BIN\" network rm hq; echo \"rc=$?\"",
        )
        .env("BIN", binary())
        .stdin(Stdio::null());
    env.environment(&mut command);
    without_cap_sys_ptrace(&mut command);
    let out = command.output().expect("runs unshare");
    assert_eq!(
        (text(&out.stdout), text(&out.stderr)),
        (
            "hq\nrc=0\n".to_string(),
            "ipvlan: warning: parent hq0.57 kept: links that may sit on it could not be looked for: /proc is mounted with hidepid=invisible, which hides the processes this one may not trace, and it lacks CAP_SYS_PTRACE; delete it with `ip link del hq0.57` once nothing uses it\n".to_string()
        )
    );
    assert!(vm_support::link(None, "hq0.57").is_some());
    assert!(env.ok(&["network", "ls", "-q"]).trim().is_empty());
    assert!(vm_support::ip_ok(&["link", "del", "hq0.57"]));
    assert!(vm_support::ip_ok(&["link", "del", "hq0"]));
}

/// A network that used another tool's `NAME.VLANID` (gone since), and a
/// second network for which we made a link under that name: the link is
/// ours, and goes with whichever of them goes last. Before, the first
/// kept recording it as another tool's, so removing the second and then
/// the first left the link we made, named by no record.
#[test]
fn a_parent_made_under_the_name_of_one_gone_goes_with_the_last_network() {
    let env = Env::new("adopted");
    assert!(vm_support::ip_ok(&["link", "add", "ap0", "type", "dummy"]));
    assert!(vm_support::ip_ok(&["link", "set", "ap0", "up"]));
    assert!(vm_support::ip_ok(&[
        "link", "add", "link", "ap0", "name", "ap0.54", "type", "vlan", "id", "54"
    ]));
    let create =
        |name: &'static str, subnet: &'static str| create_on("parent=ap0.54", name, subnet);
    env.ok(&create("a", "192.168.92.0/24"));
    assert!(vm_support::ip_ok(&["link", "del", "ap0.54"]));
    env.ok(&create("b", "192.168.93.0/24"));
    assert!(vm_support::link(None, "ap0.54").is_some(), "b made ap0.54");
    env.ok(&["network", "rm", "b"]);
    assert!(
        vm_support::link(None, "ap0.54").is_some(),
        "a still uses it"
    );
    env.ok(&["network", "rm", "a"]);
    let left = vm_support::link(None, "ap0.54");
    let _ = vm_support::ip_ok(&["link", "del", "ap0"]);
    assert!(left.is_none(), "the ap0.54 we made was left: {left:?}");
}

/// The same when `restore` makes the link again: a network made on our
/// `NAME.VLANID`, a second one on an admin's link of that name made in
/// its place, then gone; `restore` makes it again for the first, and the
/// second takes it over, so the last to go deletes it. Before, the
/// second kept recording it as another tool's: removing the first (kept,
/// the second uses it) and then the second left the link we made, named
/// by no record.
#[test]
fn a_parent_restore_makes_again_goes_with_the_last_network() {
    let mut env = Env::new("readopted");
    assert!(vm_support::ip_ok(&["link", "add", "rp0", "type", "dummy"]));
    assert!(vm_support::ip_ok(&["link", "set", "rp0", "up"]));
    let create =
        |name: &'static str, subnet: &'static str| create_on("parent=rp0.59", name, subnet);
    env.ok(&create("a", "192.168.94.0/24"));
    assert!(vm_support::link(None, "rp0.59").is_some(), "a made rp0.59");
    let admins = || {
        assert!(vm_support::ip_ok(&[
            "link", "add", "link", "rp0", "name", "rp0.59", "type", "vlan", "id", "59"
        ]))
    };
    assert!(vm_support::ip_ok(&["link", "del", "rp0.59"]));
    admins();
    env.ok(&create("b", "192.168.95.0/24"));
    assert!(vm_support::ip_ok(&["link", "del", "rp0.59"]));
    env.ok(&["restore"]);
    assert!(
        vm_support::link(None, "rp0.59").is_some(),
        "restore made it again"
    );
    env.ok(&["network", "rm", "a"]);
    assert!(
        vm_support::link(None, "rp0.59").is_some(),
        "b still uses it"
    );
    env.ok(&["network", "rm", "b"]);
    env.networks.clear();
    let left = vm_support::link(None, "rp0.59");
    let _ = vm_support::ip_ok(&["link", "del", "rp0"]);
    assert!(left.is_none(), "the rp0.59 restore made was left: {left:?}");
}

/// `restore` makes again, under a free name, the link of an endpoint whose
/// recorded name a later attach took once that link was gone (its VLAN
/// parent deleted by hand, which takes the links on it): it kept the
/// endpoint without a link and reported the name taken, at every restore.
/// The free name passes over another endpoint's on record whose link is
/// gone too (made again under its own name), and a name another tool's
/// link holds is still reported, the endpoint kept.
#[test]
fn restore_remakes_a_link_whose_name_a_later_attach_took() {
    let mut env = Env::new("nametaken");
    assert!(vm_support::ip_ok(&["link", "add", "np0", "type", "dummy"]));
    assert!(vm_support::ip_ok(&["link", "set", "np0", "up"]));
    let on_vlan = |env: &mut Env, name: &str, id: u32, subnet: &str| {
        let parent = format!("parent=np0.{id}");
        env.ok(&create_on(&parent, name, subnet));
        env.networks.push(name.to_string());
    };
    on_vlan(&mut env, "v", 61, "192.168.96.0/24");
    env.network("w", "192.168.97.0/24");
    on_vlan(&mut env, "p", 62, "192.168.99.0/24");
    on_vlan(&mut env, "q", 63, "192.168.100.0/24");
    on_vlan(&mut env, "r", 64, "192.168.101.0/24");
    on_vlan(&mut env, "y", 65, "192.168.102.0/24");
    // Networks made in this order, which restore follows: a1 before a2
    // (the later attach's network), b2 (the later attach's) before b1.
    on_vlan(&mut env, "a1", 66, "192.168.103.0/24");
    on_vlan(&mut env, "a2", 67, "192.168.104.0/24");
    on_vlan(&mut env, "b2", 68, "192.168.105.0/24");
    on_vlan(&mut env, "b1", 69, "192.168.106.0/24");
    env.network("x", "192.168.98.0/24");
    env.ok(&["run", "--net=v", "--net=w", "--name=nt", "-d"]);
    env.ok(&["run", "--net=p", "--net=q", "--name=nu", "-d"]);
    env.ok(&["run", "--net=r", "--name=nf", "-d"]);
    env.ok(&["run", "--net=a1", "--name=na", "-d"]);
    env.ok(&["run", "--net=b1", "--name=nb", "-d"]);
    let links = |env: &Env, container: &str| {
        let text = env.ok(&["exec", container, "/usr/sbin/ip", "-o", "link", "show"]);
        let mut names: Vec<String> = text
            .lines()
            .filter_map(|line| line.split(": ").nth(1))
            .map(|name| name.split('@').next().unwrap().to_string())
            .filter(|name| name != "lo")
            .collect();
        names.sort();
        names
    };
    let address_on = |env: &Env, network: &str, container: &str, link: &str| {
        let inspect = env.inspect(network);
        let address = field(&inspect, &["Containers", container, "IPv4Address"])
            .as_str()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let shown = env.ok(&[
            "exec",
            container,
            "/usr/sbin/ip",
            "-o",
            "-4",
            "addr",
            "show",
            link,
        ]);
        assert!(
            shown.contains(&address),
            "{network} on {container}'s {link}: {shown}"
        );
    };
    assert_eq!(links(&env, "nt"), ["eth0", "eth1"]);
    // nt: its link on v goes with the parent; x takes the free eth0.
    // nu: both links go; x takes eth0, the name of p's.
    for vlan in ["np0.61", "np0.62", "np0.63", "np0.64"] {
        assert!(vm_support::ip_ok(&["link", "del", vlan]));
    }
    assert_eq!(links(&env, "nt"), ["eth1"]);
    assert_eq!(links(&env, "nu"), Vec::<String>::new());
    env.ok(&["network", "connect", "x", "nt"]);
    env.ok(&["network", "connect", "x", "nu"]);
    // nf: r's link goes, y takes eth0, y's link goes, another tool makes
    // an eth0 there.
    env.ok(&["network", "connect", "y", "nf"]);
    assert!(vm_support::ip_ok(&["link", "del", "np0.65"]));
    env.ok(&[
        "exec",
        "nf",
        "/usr/sbin/ip",
        "link",
        "add",
        "eth0",
        "type",
        "dummy",
    ]);
    // na, nb: the first link goes, a later attach takes eth0, its link goes
    // too; the later attach keeps eth0 whichever restore makes first.
    for (container, first, later) in [("na", "66", "a2"), ("nb", "69", "b2")] {
        assert!(vm_support::ip_ok(&["link", "del", &format!("np0.{first}")]));
        env.ok(&["network", "connect", later, container]);
    }
    for vlan in ["np0.67", "np0.68"] {
        assert!(vm_support::ip_ok(&["link", "del", vlan]));
    }
    assert_eq!(links(&env, "na"), Vec::<String>::new());
    assert_eq!(links(&env, "nb"), Vec::<String>::new());

    let restored = env.run(&["restore"]);
    let said = format!("{}{}", text(&restored.stdout), text(&restored.stderr));
    assert_eq!(
        restored.status.code(),
        Some(1),
        "nf's two are reported: {said}"
    );
    assert!(
        said.contains("v: nt (as eth2: eth0 is another endpoint's"),
        "{said}"
    );
    assert!(
        said.contains("p: nu (as eth2: eth0 is another endpoint's"),
        "{said}"
    );
    for network in ["r", "y"] {
        assert!(
            said.contains(&format!("{network}: nf: name eth0 taken by another link")),
            "{said}"
        );
    }
    assert_eq!(links(&env, "nt"), ["eth0", "eth1", "eth2"]);
    address_on(&env, "v", "nt", "eth2");
    address_on(&env, "x", "nt", "eth0");
    assert_eq!(links(&env, "nu"), ["eth0", "eth1", "eth2"]);
    address_on(&env, "p", "nu", "eth2");
    address_on(&env, "q", "nu", "eth1");
    address_on(&env, "x", "nu", "eth0");
    assert_eq!(links(&env, "nf"), ["eth0"], "the other tool's eth0 alone");
    assert!(
        said.contains("a1: na (as eth1: eth0 is a later endpoint's)"),
        "{said}"
    );
    assert!(
        said.contains("b1: nb (as eth1: eth0 is another endpoint's"),
        "{said}"
    );
    for (container, first, later) in [("na", "a1", "a2"), ("nb", "b1", "b2")] {
        assert_eq!(links(&env, container), ["eth0", "eth1"]);
        address_on(&env, later, container, "eth0");
        address_on(&env, first, container, "eth1");
    }
    // nt and nu whole: a second restore makes nothing of theirs.
    let again = env.run(&["restore"]);
    let said = format!("{}{}", text(&again.stdout), text(&again.stderr));
    assert!(said.contains(", 0 links re-created,"), "{said}");
    assert_eq!(again.status.code(), Some(1), "nf's two stay: {said}");
    let stderr = text(&again.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("ipvlan: restore:"))
        .collect();
    assert_eq!(errors.len(), 2, "only nf's two are left: {said}");
    for network in ["r", "y"] {
        assert!(
            errors
                .iter()
                .any(|l| l.contains(&format!("{network}: nf: name eth0 taken by another link"))),
            "{said}"
        );
    }
    for container in ["nt", "nu", "nf", "na", "nb"] {
        env.ok(&["rm", "-f", container]);
    }
    for network in ["x", "w", "v", "p", "q", "r", "y", "a1", "a2", "b2", "b1"] {
        env.ok(&["network", "rm", network]);
    }
    env.networks.clear();
    let _ = vm_support::ip_ok(&["link", "del", "np0"]);
}

/// A `NAME.VLANID` parent whose id another link already carries on the
/// base (another tool's `their55` for id 55, `their57` moved into a named
/// namespace, where it stays on the base, or `their58` in a namespace
/// without a name, seen through the process in it) is refused with what
/// to do, and nothing is made; the same id under 802.1ad is no conflict. Before,
/// the kernel's `EEXIST` came back from the create (after two more tries
/// at other ifindexes).
#[test]
fn a_vlan_id_another_link_carries_on_the_base_is_refused_before_anything_is_made() {
    let env = Env::with_iproute2_dirs("vlantaken");
    assert!(vm_support::ip_ok(&["link", "add", "vt0", "type", "dummy"]));
    assert!(vm_support::ip_ok(&["link", "set", "vt0", "up"]));
    // Another tool's 802.1Q link `name` with `id` on vt0, moved into the
    // namespace `ns` (made anew) when one is given.
    let their_vlan = |name: &str, id: &str, ns: Option<&str>| {
        assert!(vm_support::ip_ok(&[
            "link", "add", "link", "vt0", "name", name, "type", "vlan", "id", id
        ]));
        if let Some(ns) = ns {
            let _ = vm_support::ip_ok(&["netns", "del", ns]);
            assert!(vm_support::ip_ok(&["netns", "add", ns]));
            assert!(vm_support::ip_ok(&["link", "set", name, "netns", ns]));
        }
    };
    their_vlan("their55", "55", None);
    assert!(vm_support::ip_ok(&[
        "link", "add", "link", "vt0", "name", "their56", "type", "vlan", "proto", "802.1ad", "id",
        "56"
    ]));
    let create = |name: &'static str, subnet: &'static str, parent: &'static str| {
        [
            "network", "create", "-d", "ipvlan", "--subnet", subnet, "-o", parent, name,
        ]
    };
    let out = env.run(&create("v55", "192.168.95.0/24", "parent=vt0.55"));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "ipvlan: network create v55: vlan id 55 is already in use on vt0 by link their55 in the host namespace: the kernel allows one 802.1Q link per id on a device; use -o parent=their55 or another id\n"
    );
    their_vlan("their57", "57", Some("vtns57"));
    let out = env.run(&create("v57", "192.168.97.0/24", "parent=vt0.57"));
    let moved = vm_support::link(Some("vtns57"), "their57");
    assert!(vm_support::ip_ok(&["netns", "del", "vtns57"]));
    assert_eq!(
        text(&out.stderr),
        "ipvlan: network create v57: vlan id 57 is already in use on vt0 by link their57 in namespace vtns57: the kernel allows one 802.1Q link per id on a device; use another id, or delete that link\n"
    );
    assert!(moved.is_some(), "their VLAN stays where it was");
    assert!(vm_support::link(None, "vt0.57").is_none());
    // Moved into a namespace without a name (a process's own), it is seen
    // through that process. Before, only the create saw it (its `EEXIST`,
    // said as "a link in a namespace without a name").
    their_vlan("their58", "58", Some("vtns58"));
    let mut holder = Command::new(vm_support::ip_path())
        .args(["netns", "exec", "vtns58", "sleep", "60"])
        .spawn()
        .unwrap();
    vm_support::wait_in_netns(holder.id(), "/run/netns/vtns58");
    assert!(vm_support::ip_ok(&["netns", "del", "vtns58"]));
    let out = env.run(&create("v58", "192.168.98.0/24", "parent=vt0.58"));
    let _ = holder.kill();
    let _ = holder.wait();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        format!("ipvlan: network create v58: vlan id 58 is already in use on vt0 by link their58 in the namespace of process {} (sleep): the kernel allows one 802.1Q link per id on a device; use another id, or delete that link\n", holder.id())
    );
    assert!(vm_support::link(None, "vt0.58").is_none());
    assert_eq!(env.ok(&["network", "ls", "-q"]), "");
    assert!(vm_support::link(None, "vt0.55").is_none());
    let theirs = vm_support::link(None, "their55").expect("their VLAN stays");
    assert_eq!(vm_support::link_kind(&theirs).as_deref(), Some("vlan"));
    // Their 802.1ad link with id 56 leaves 802.1Q id 56 free.
    env.ok(&create("v56", "192.168.96.0/24", "parent=vt0.56"));
    let made = vm_support::link(None, "vt0.56").expect("vt0.56 made");
    assert_eq!(vm_support::link_kind(&made).as_deref(), Some("vlan"));
    env.ok(&["network", "rm", "v56"]);
    assert!(vm_support::link(None, "vt0.56").is_none());
    assert!(vm_support::ip_ok(&["link", "del", "vt0"]));
}

/// A host parent renamed while containers sit on it (udev, `ip link set
/// eth1 name lan0`), or whose name another link took, still carries their
/// links: `disconnect` deletes them (by the index and MAC recorded at
/// attach) before their addresses go. Before, judged by the parent's name
/// alone, the link looked another tool's and was left in place, holding
/// the addresses handed back for the next container.
#[test]
fn a_disconnect_deletes_its_link_from_a_renamed_parent() {
    let mut env = Env::with_iproute2_dirs("renamedparent");
    assert!(vm_support::ip_ok(&["link", "add", "rn0", "type", "dummy"]));
    assert!(vm_support::ip_ok(&["link", "set", "rn0", "up"]));
    env.ok(&[
        "network",
        "create",
        "-d",
        "ipvlan",
        "--subnet",
        "192.168.94.0/24",
        "-o",
        "parent=rn0",
        "rn",
    ]);
    env.networks.push("rn".to_string());
    for name in ["rn1", "rn2"] {
        env.ok(&["run", "--net=rn", &format!("--name={name}"), "-d"]);
    }
    // A link is renamed only while it is down.
    for step in [
        &["link", "set", "rn0", "down"][..],
        &["link", "set", "rn0", "name", "rn0x"],
        &["link", "set", "rn0x", "up"],
    ] {
        assert!(vm_support::ip_ok(step), "ip {step:?}");
    }
    let disconnect = |container: &str| {
        let output = env.run(&["network", "disconnect", "rn", container]);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        assert_eq!(text(&output.stderr), "", "disconnect {container}");
    };
    disconnect("rn1");
    assert_eq!(links_in("rn1"), ["lo"], "the link on the renamed rn0");
    // Another link under the parent's old name.
    assert!(vm_support::ip_ok(&["link", "add", "rn0", "type", "dummy"]));
    disconnect("rn2");
    assert_eq!(links_in("rn2"), ["lo"], "the link on rn0x, not rn0");
    env.ok(&["rm", "-f", "rn1", "rn2"]);
    env.ok(&["network", "rm", "rn"]);
    env.networks.clear();
    assert!(vm_support::ip_ok(&["link", "del", "rn0"]));
    assert!(vm_support::ip_ok(&["link", "del", "rn0x"]));
}

/// Every file, directory and link under `root`, with what a file holds or
/// a link names (a hosts file: its lines that are not blank); the store's
/// lock (its commit log) left out.
fn tree_of(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, into: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            let kind = std::fs::symlink_metadata(&path).unwrap().file_type();
            if kind.is_symlink() {
                let target = std::fs::read_link(&path).unwrap();
                into.insert(name, format!("-> {}", target.display()));
            } else if kind.is_dir() {
                into.insert(name, "(directory)".to_string());
                walk(root, &path, into);
            } else if name.starts_with("hosts/") {
                // A removed line is blanked in place (a `#`, then spaces),
                // not taken out: the names a hosts file holds are what
                // counts.
                let content = text(&std::fs::read(&path).unwrap());
                let lines = content
                    .lines()
                    .filter(|line| !line.trim().is_empty() && !line.starts_with('#'));
                into.insert(name, lines.collect::<Vec<_>>().join("\n"));
            } else if name != "lock" {
                into.insert(name, text(&std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut tree = BTreeMap::new();
    walk(root, root, &mut tree);
    tree
}

/// A connect the kernel refuses after the address was handed out (its
/// parent deleted meanwhile: the link's create fails) gives everything
/// back: the state directory and the name views are as before, file for
/// file; so does a run refused at its second network. Before, the
/// allocation cursor stayed moved (a batch put it back, a single connect
/// and a run did not).
#[test]
fn a_connect_the_kernel_refuses_leaves_the_state_as_it_was() {
    let mut env = Env::new("refused");
    assert!(vm_support::ip_ok(&["link", "add", "kr0", "type", "dummy"]));
    assert!(vm_support::ip_ok(&["link", "set", "kr0", "up"]));
    env.ok(&[
        "network",
        "create",
        "-d",
        "ipvlan",
        "--subnet",
        "192.168.87.0/24",
        "-o",
        "parent=kr0",
        "n1",
    ]);
    env.networks.push("n1".to_string());
    env.network("n2", "192.168.88.0/24");
    env.ok(&["run", "--net=n1", "--name=a", "-d"]);
    env.ok(&["run", "--net=n2", "--name=b", "-d"]);
    let before = (tree_of(&env.state_dir()), tree_of(&env.etc_netns_dir));
    let output = refused_at_a_create(&env, &["network", "connect", "n1", "b"], 1);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("attaching b to network n1"), "{stderr}");
    unchanged_since(&env, before);

    // A run whose second network's create is refused: the first network's
    // attach, which succeeded, is undone with it, its cursor included.
    assert!(vm_support::ip_ok(&["link", "add", "kr0", "type", "dummy"]));
    assert!(vm_support::ip_ok(&["link", "set", "kr0", "up"]));
    let before = (tree_of(&env.state_dir()), tree_of(&env.etc_netns_dir));
    // The first request sets `lo` up; then each network's create and the
    // settings of its link.
    let run = ["run", "--net=n2", "--net=n1", "--name=c", "-d"];
    let output = refused_at_a_create(&env, &run, 4);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(125), "{stderr}");
    assert!(stderr.contains("connecting c to network n1"), "{stderr}");
    assert_eq!(env.containers(), ["a", "b"]);
    unchanged_since(&env, before);
}

/// Runs `args`, paused before its netlink request number `request` (a
/// create) while the parent `kr0` is deleted: the create is refused.
fn refused_at_a_create(env: &Env, args: &[&str], request: usize) -> Output {
    let pause = env.root.join("pause");
    let command = env
        .command(args)
        .env(
            "IPVLAN_FAULT_PAUSE_AT",
            format!("netlink: before request#{request}"),
        )
        .env("IPVLAN_FAULT_PAUSE_FILE", &pause)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_pause(&pause, args[0]);
    let deleted = vm_support::ip_ok(&["link", "del", "kr0"]);
    std::fs::remove_file(&pause).unwrap();
    let output = command.wait_with_output().unwrap();
    assert!(deleted, "the parent deleted during the pause");
    output
}

/// A batch undone whole: the state directory and the name views as
/// `before` (see [`unchanged_since`]), and no link but `lo` in any of the
/// namespaces `names`; `what` says which run, in a failure.
fn left_nothing(
    env: &Env,
    before: (BTreeMap<String, String>, BTreeMap<String, String>),
    names: &[String],
    what: &str,
) {
    unchanged_since(env, before);
    for name in names {
        assert_eq!(
            links_at(&env.netns_dir().join(name)),
            ["lo"],
            "{name}, {what}"
        );
    }
}

/// The state directory and the name views are as `before` says (see
/// [`tree_of`]), file for file.
fn unchanged_since(env: &Env, before: (BTreeMap<String, String>, BTreeMap<String, String>)) {
    let after = (tree_of(&env.state_dir()), tree_of(&env.etc_netns_dir));
    let changed = |was: &BTreeMap<String, String>, is: &BTreeMap<String, String>| {
        was.keys()
            .chain(is.keys())
            .filter(|name| was.get(*name) != is.get(*name))
            .map(|name| format!("{name}: {:?} -> {:?}", was.get(name), is.get(name)))
            .collect::<std::collections::BTreeSet<_>>()
    };
    assert_eq!(
        changed(&before.0, &after.0),
        Default::default(),
        "the state directory changed"
    );
    assert_eq!(
        changed(&before.1, &after.1),
        Default::default(),
        "the name views changed"
    );
}

/// `run --rm` removes the container it made, not one given its name
/// meanwhile: a supervisor's `rm -f` and a new `run --name` of the same
/// name between the command's end and the removal. Before, the removal
/// went by name and took the new container. A pause right before the
/// removal puts both there.
#[test]
fn run_rm_removes_its_own_container_not_a_new_one_of_its_name() {
    let mut env = Env::new("rmname");
    env.network("n1", "192.168.89.0/24");
    let (output, inode) = replaced_while_paused(
        &env,
        &["run", "--net=n1", "--rm", "--name=same", "true"],
        "container: before removal#1",
    );
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("container same was removed meanwhile"),
        "{stderr}"
    );
    assert_eq!(env.containers(), ["same"], "{stderr}");
    assert_eq!(
        vm_support::namespace_inode(&env.netns_dir().join("same")),
        inode,
        "the new container's namespace"
    );
    let inspect = env.inspect("n1");
    let containers = inspect.get("Containers").and_then(Value::as_object);
    assert_eq!(containers.map(<[_]>::len), Some(1), "{inspect:?}");
}

/// What the endpoint records of network `id` hold (none when its
/// directory is missing).
fn endpoint_records(env: &Env, id: &str) -> Vec<String> {
    std::fs::read_dir(env.state_dir().join("endpoints").join(id))
        .map(|dir| {
            dir.map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
                .collect()
        })
        .unwrap_or_default()
}

/// `network connect n1 CONTAINER...` (`n1` of id `id`), failing with the
/// kernel refusing every delete of an endpoint's link: each link must
/// stay in its container's namespace (`namespaces`, in order), beside its
/// `eth0`, and each endpoint be recorded `detaching`.
fn connect_failing_to_delete(env: &Env, containers: &[&str], namespaces: &[&Path], id: &str) {
    connect_failing_to_delete_as(env, containers, namespaces, id, "");
}

/// [`connect_failing_to_delete`] with the forced paths `also` as well.
fn connect_failing_to_delete_as(
    env: &Env,
    containers: &[&str],
    namespaces: &[&Path],
    id: &str,
    also: &str,
) {
    let mut args = vec!["network", "connect", "n1"];
    args.extend_from_slice(containers);
    let output = env
        .command(&args)
        .env(
            "IPVLAN_FAULT_FORCE",
            format!("endpoint: delete refused{also}"),
        )
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    for ns in namespaces {
        assert_eq!(
            links_at(ns),
            ["eth0", "eth1", "lo"],
            "the link stays: {stderr}"
        );
    }
    let records = endpoint_records(env, id);
    assert_eq!(records.len(), containers.len(), "{records:?}: {stderr}");
    assert!(
        records.iter().all(|r| r.contains("\"detaching\"")),
        "{records:?}"
    );
}

/// The links in the namespace at `path` (`ip -br link`, names only, sorted).
fn links_at(path: &Path) -> Vec<String> {
    let ip = std::env::var("IPVLAN_IP").unwrap_or_else(|_| "/usr/sbin/ip".to_string());
    let output = Command::new("nsenter")
        .arg(format!("--net={}", path.display()))
        .args([ip.as_str(), "-br", "link"])
        .output()
        .unwrap();
    // A namespace that cannot be entered has no links to compare: an empty
    // list would equal another empty list.
    assert!(
        output.status.success(),
        "listing the links of {}: {}",
        path.display(),
        text(&output.stderr)
    );
    text(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(|name| name.split('@').next().unwrap_or(name).to_string())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// An attach undone after its link was made (its network's hosts file
/// cannot be written) whose link the kernel would not delete keeps its
/// record, `detaching`, and its address, for `restore` to finish; then
/// `restore` takes the link, the record and the address away; a batch's
/// likewise. Before, the record and the address went and the link stayed,
/// named by nothing, its address free for the next container.
#[test]
fn an_undone_attach_whose_link_stays_keeps_its_record_for_restore() {
    let mut env = Env::new("undo");
    let id = env.network("n1", "192.168.92.0/24");
    env.network("n2", "192.168.93.0/24");
    env.ok(&["run", "--net=n2", "--name=k1", "-d"]);
    let ns = env.netns_dir().join("k1");
    let hosts = env.state_dir().join("hosts").join(&id);
    let _ = std::fs::remove_file(&hosts);
    std::fs::create_dir(&hosts).unwrap();
    connect_failing_to_delete(&env, &["k1"], &[&ns], &id);
    let taken = env
        .state_dir()
        .join("ipam")
        .join(&id)
        .join("192.168.92.0-24")
        .join("192.168.92.2");
    assert!(
        taken.symlink_metadata().is_ok(),
        "its address is still held"
    );

    std::fs::remove_dir(&hosts).unwrap();
    env.ok(&["restore"]);
    assert_eq!(links_at(&ns), ["eth0", "lo"], "restore deleted it");
    assert_eq!(
        std::fs::read_dir(env.state_dir().join("endpoints").join(&id)).map_or(0, |dir| dir.count()),
        0
    );
    assert!(taken.symlink_metadata().is_err(), "its address is free");

    // A batch, undone the same way after its links were made: each link
    // kept keeps its record. (A batch whose hosts file cannot be written
    // is refused before its creates: its names go in first. Here the view
    // k2 has of both networks cannot be written, which is after them.)
    env.ok(&["run", "--net=n2", "--name=k2", "-d"]);
    let ns2 = env.netns_dir().join("k2");
    let union = env.state_dir().join("hosts/containers/k2");
    let _ = std::fs::remove_file(&union);
    std::fs::create_dir_all(&union).unwrap();
    connect_failing_to_delete(&env, &["k1", "k2"], &[&ns, &ns2], &id);
    std::fs::remove_dir(&union).unwrap();
    env.ok(&["restore"]);
    for at in [&ns, &ns2] {
        assert_eq!(links_at(at), ["eth0", "lo"]);
    }

    // A batch whose creates' answers were lost (the kernel made the links)
    // and whose undo by index the kernel refused: each link kept keeps its
    // record likewise. Before, those records and addresses went.
    connect_failing_to_delete_as(
        &env,
        &["k1", "k2"],
        &[&ns, &ns2],
        &id,
        ",endpoint: batch answers lost",
    );
    env.ok(&["restore"]);
    for at in [&ns, &ns2] {
        assert_eq!(links_at(at), ["eth0", "lo"]);
    }
    env.ok(&["network", "connect", "n1", "k1", "k2"]);
}

/// The same for an attach whose link was made but not configured (a
/// default route of another tool's where the link's would go): the link
/// the kernel would not delete keeps a `detaching` record and its
/// address, and `restore` takes them away. Before, the record and the
/// address went.
#[test]
fn a_link_left_by_a_failed_configure_keeps_its_record_for_restore() {
    let mut env = Env::new("undo2");
    assert!(vm_support::ip_ok(&["link", "add", "kr1", "type", "dummy"]));
    assert!(vm_support::ip_ok(&["link", "set", "kr1", "up"]));
    let id = env
        .ok(&[
            "network",
            "create",
            "--subnet",
            "192.168.94.0/24",
            "-o",
            "parent=kr1",
            "n1",
        ])
        .trim()
        .to_string();
    env.networks.push("n1".to_string());
    env.network("n2", "192.168.95.0/24");
    env.ok(&["run", "--net=n2", "--name=k3", "-d"]);
    let ns = env.netns_dir().join("k3");
    let ip = std::env::var("IPVLAN_IP").unwrap_or_else(|_| "/usr/sbin/ip".to_string());
    let in_k3 = |args: &[&str]| {
        let status = Command::new("nsenter")
            .arg(format!("--net={}", ns.display()))
            .arg(&ip)
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "{args:?}");
    };
    // Another tool's default routes where eth1's goes (metric 1) and at
    // each of the 16 metrics after it that an attach tries when its own
    // is taken: eth1's is refused with EEXIST at every one.
    let planted = |verb: &str| {
        for metric in 1..=17 {
            let metric = metric.to_string();
            in_k3(&[
                "route",
                verb,
                "default",
                "via",
                "192.168.95.1",
                "dev",
                "eth0",
                "metric",
                &metric,
            ])
        }
    };
    planted("add");
    connect_failing_to_delete(&env, &["k3"], &[&ns], &id);
    planted("del");
    env.ok(&["restore"]);
    assert_eq!(links_at(&ns), ["eth0", "lo"], "restore deleted it");

    // A batch: k3's configure fails, k4's link was made; neither can be
    // deleted, and both keep their records.
    env.ok(&["run", "--net=n2", "--name=k4", "-d"]);
    let ns4 = env.netns_dir().join("k4");
    planted("add");
    connect_failing_to_delete(&env, &["k4", "k3"], &[&ns4, &ns], &id);
    planted("del");
    env.ok(&["restore"]);
    for at in [&ns, &ns4] {
        assert_eq!(links_at(at), ["eth0", "lo"], "restore deleted it");
    }
    env.ok(&["network", "connect", "n1", "k3", "k4"]);
    assert_eq!(links_at(&ns), ["eth0", "eth1", "lo"]);
    env.ok(&["rm", "-f", "k3", "k4"]);
    assert!(vm_support::ip_ok(&["link", "del", "kr1"]));
}

#[test]
fn rm_f_kills_what_the_container_forks_while_it_is_removed() {
    // A command that keeps forking. Before, `rm -f` killed the processes
    // it had listed before its detaches, which take a while: those forked
    // meanwhile lived on in the namespace, which lost its name and links.
    let mut env = Env::new("forker");
    env.network("fk", "192.168.81.0/24");
    env.ok(&[
        "run",
        "--net=fk",
        "--name=forker",
        "-d",
        "sh",
        "-c",
        "while :; do sleep 1000 & sleep 0.005; done",
    ]);
    let path = env.netns_dir().join("forker");
    let inode = vm_support::namespace_inode(&path);
    let mut forked = 0;
    for _ in 0..500 {
        forked = vm_support::processes_in_namespace(inode).len();
        if forked > 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // Without them, there is no race to lose: an empty list after the rm
    // would prove nothing.
    assert!(
        forked > 3,
        "the command forked in the container: {forked} processes"
    );
    env.ok(&["rm", "-f", "forker"]);
    // Signals land at once; exits follow.
    let left = vm_support::left_in_namespace(inode, 50);
    for pid in &left {
        let _ = Command::new("kill").args(["-9", pid]).status();
    }
    assert!(left.is_empty(), "left running in the container: {left:?}");
    assert!(env.containers().is_empty());
}

#[test]
fn restore_never_switches_another_tools_ipvlan_links_to_our_mode() {
    // Another tool's ipvlan link, in another mode, on our network's parent
    // since the network was made; our container's link went meanwhile.
    // The kernel keeps one mode per parent, set by every new link: before,
    // restore made our link again and switched theirs to l2.
    let mut env = Env::new("othermode");
    assert!(vm_support::ip_ok(&["link", "add", "om0", "type", "dummy"]));
    assert!(vm_support::ip_ok(&["link", "set", "om0", "up"]));
    env.ok(&[
        "network",
        "create",
        "-o",
        "parent=om0",
        "--subnet",
        "192.168.82.0/24",
        "omn",
    ]);
    env.networks.push("omn".into());
    env.ok(&["run", "--net=omn", "--name=web", "-d"]);
    env.ok(&["exec", "web", "/usr/sbin/ip", "link", "del", "eth0"]);
    assert!(vm_support::ip_ok(&[
        "link", "add", "their0", "link", "om0", "type", "ipvlan", "mode", "l3"
    ]));
    let output = env.run(&["restore"]);
    let said = format!("{}{}", text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(1), "{said}");
    assert!(
        said.contains("not made again: parent interface om0 carries ipvlan link their0 in the host namespace with mode l3"),
        "{said}"
    );
    let theirs = vm_support::ip_json(&["-d", "link", "show", "their0"]);
    let mode = theirs.as_array().unwrap()[0]
        .get("linkinfo")
        .and_then(|l| l.get("info_data"))
        .and_then(|d| d.get("mode"))
        .and_then(|m| m.as_str())
        .map(str::to_string);
    assert!(vm_support::ip_ok(&["link", "del", "their0"]));
    assert_eq!(mode.as_deref(), Some("l3"), "their link's mode");
    // Kept, for a restore once the parent is ours alone again.
    assert_eq!(env.containers(), ["web"]);
    env.ok(&["restore"]);
    env.ok(&["exec", "web", "/usr/sbin/ip", "link", "show", "eth0"]);
    env.ok(&["rm", "-f", "web"]);
    env.ok(&["network", "rm", "omn"]);
    env.networks.clear();
    assert!(vm_support::ip_ok(&["link", "del", "om0"]));
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
        (
            &["--ip=192.168.73.1"],
            "192.168.73.1 is the gateway of subnet 192.168.73.0/24",
        ),
        (&["--name=first"], "first"),
    ];
    let hits = env.root.join("hits");
    for (options, message) in cases {
        let mut args = vec!["run", "--net=n1"];
        args.extend_from_slice(options);
        args.push("true");
        let _ = std::fs::remove_file(&hits);
        let output = env
            .command(&args)
            .env("IPVLAN_FAULT_COUNT", &hits)
            .output()
            .unwrap();
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(125), "{options:?}: {stderr}");
        assert!(
            stderr.starts_with("ipvlan: run: ") && stderr.contains(message),
            "{options:?}: {stderr}"
        );
        assert_eq!(env.containers(), ["first"], "{options:?}");
        assert_eq!(env.namespaces(), 1, "{options:?}");
        // Refused before anything is made: no namespace, no record, no
        // request (before, the namespace was made, named and taken apart).
        let hits = std::fs::read_to_string(&hits).unwrap_or_default();
        assert_eq!(hits, "", "{options:?} made something first");
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
    // The hosts file is the network's, shared by every container on it:
    // read-only inside. Before, `: > /etc/hosts` in one container emptied
    // the names of all of them.
    let output = env.run(&["exec", "bg", "sh", "-c", ": > /etc/hosts"]);
    assert_ne!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let output = env.run(&["exec", "idle", "grep", "-w", "bg", "/etc/hosts"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));

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

/// A container's namespace reached by another path (a bind mount of its
/// file elsewhere; `..` after a symbolic link) is that container: `ps` and
/// `inspect` name it, and `rm -f` detaches that endpoint too and frees its
/// address. Before, it was an endpoint of no container, which `rm -f` left
/// recorded with its address held (`network rm` then refused). And
/// `link/../ns` is where the kernel goes (the link target's parent), not
/// `ns` beside the link, which was attached instead.
#[test]
fn a_named_namespace_given_by_another_path_is_that_container() {
    let mut env = Env::new("alias");
    env.network("n1", "192.168.79.0/24");
    env.network("n2", "192.168.78.0/24");
    let output = env.shell(
        r#"set -e
cd "$T"
for c in al1 al2 al3; do "$BIN" run --net=n1 --name=$c -d >/dev/null; done
touch alias
mount --bind "$IPVLAN_NETNS_DIR/al1" alias
mkdir -p x/d/sub
ln -s d/sub x/l
touch x/d/ns x/ns
mount --bind "$IPVLAN_NETNS_DIR/al2" x/d/ns
mount --bind "$IPVLAN_NETNS_DIR/al3" x/ns
"$BIN" network connect n2 "$T/alias"
(cd x && "$BIN" network connect n2 l/../ns)
"$BIN" network inspect n2 > attached.json
"$BIN" ps > ps.txt
"$BIN" rm -f al1 al2 al3
"$BIN" network inspect n2 > removed.json
"$BIN" network rm n2
"#,
    );
    let read = |name: &str| std::fs::read_to_string(env.root.join(name)).unwrap_or_default();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}{}\nattached: {}\nremoved: {}",
        text(&output.stdout),
        text(&output.stderr),
        read("attached.json"),
        read("removed.json")
    );
    let attached = json::parse(&read("attached.json")).unwrap();
    let names: Vec<&str> = field(&attached.as_array().unwrap()[0], &["Containers"])
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(names, ["al1", "al2"], "{attached}");
    let ps = read("ps.txt");
    for (name, networks) in [("al1", "n1,n2"), ("al2", "n1,n2"), ("al3", "n1 ")] {
        assert!(
            ps.lines()
                .any(|line| line.starts_with(&format!("{name} ")) && line.contains(networks)),
            "{name} on {networks}:\n{ps}"
        );
    }
    let removed = json::parse(&read("removed.json")).unwrap();
    assert_eq!(
        field(&removed.as_array().unwrap()[0], &["Containers"])
            .as_object()
            .map(<[_]>::len),
        Some(0),
        "{removed}"
    );
    env.networks.retain(|name| name != "n2");
}

/// `run` with `--network` given twice attaches both, in order (Docker
/// 25); before, the last one alone, the other dropped without a word.
#[test]
fn run_attaches_every_network_given() {
    let mut env = Env::new("multi");
    env.network("n1", "192.168.82.0/24");
    env.network("n2", "192.168.83.0/24");
    assert_eq!(
        env.ok(&["run", "--net=n1", "--net=n2", "--name=mn", "-d"]),
        "mn\n"
    );
    let ps = env.ok(&["ps"]);
    assert!(
        ps.lines()
            .any(|line| line.starts_with("mn ") && line.contains("n1,n2")),
        "{ps}"
    );
    for network in ["n1", "n2"] {
        let inspected = env.inspect(network);
        assert!(
            !field(&inspected, &["Containers", "mn"]).is_null(),
            "{network}: {inspected}"
        );
    }
}

#[test]
fn connect_and_disconnect_any_namespace_by_path() {
    let mut env = Env::new("connect");
    env.network("n1", "192.168.75.0/24");
    let mut holder: Child = Command::new("unshare")
        .args(["-n", "sleep", "1000"])
        .spawn()
        .expect("unshare");
    // Once the child runs in its own namespace.
    let path = vm_support::own_netns_of(holder.id());
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

#[test]
fn connect_never_replaces_an_etc_netns_entry_that_is_not_ours() {
    let mut env = Env::with_iproute2_dirs("foreign");
    env.network("n1", "192.168.76.0/24");
    let ip = vm_support::ip;
    // Namespaces made by iproute2, not by `ipvlan run`.
    ip(&["netns", "add", "vpn"]);
    ip(&["netns", "add", "vpn2"]);
    let view = Path::new("/etc/netns/vpn");
    let hosts = view.join("hosts");
    std::fs::create_dir_all(view).unwrap();
    std::fs::set_permissions(view, std::fs::Permissions::from_mode(0o700)).unwrap();
    let admin_hosts = env.root.join("admin-hosts");
    std::fs::write(&admin_hosts, "10.9.9.9\tgateway\n").unwrap();
    let state_before = common::snapshot(&env.state_dir());

    // An admin's hosts file, then an admin's symlink: refused before
    // anything changes (no address, no record, no link, no chmod).
    let plain = || std::fs::write(&hosts, "10.8.8.8\tadmin\n").unwrap();
    let symlink = || std::os::unix::fs::symlink(&admin_hosts, &hosts).unwrap();
    for make in [&plain as &dyn Fn(), &symlink] {
        make();
        let before = (
            std::fs::read_link(&hosts).ok(),
            std::fs::read(&hosts).unwrap(),
        );
        let output = env.run(&["network", "connect", "n1", "vpn"]);
        assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
        assert_eq!(
            text(&output.stderr),
            "ipvlan: network connect n1 vpn: /etc/netns/vpn/hosts exists and is not ours; \
             ipvlan does not replace it\n"
        );
        assert_eq!(common::snapshot(&env.state_dir()), state_before);
        assert_eq!(links_in("vpn"), ["lo"]);
        let after = (
            std::fs::read_link(&hosts).ok(),
            std::fs::read(&hosts).unwrap(),
        );
        assert_eq!(after, before);
        assert_eq!(mode(view), Some(0o700));
        std::fs::remove_file(&hosts).unwrap();
    }

    // The admin's empty directory without hosts: the symlink goes in, the
    // directory keeps its mode, iproute2 sees the names.
    assert_eq!(env.ok(&["network", "connect", "n1", "vpn"]), "");
    assert_eq!(links_in("vpn"), ["lo", "eth0"]);
    let target = std::fs::read_link(&hosts).unwrap();
    assert!(
        target.starts_with(env.state_dir().join("hosts")),
        "{}",
        target.display()
    );
    assert_eq!(mode(view), Some(0o700));
    let seen = vm_support::run(
        &vm_support::ip_path(),
        &["netns", "exec", "vpn", "cat", "/etc/hosts"],
    );
    let address = field(&env.inspect("n1"), &["Containers", "vpn", "IPv4Address"])
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    assert!(
        text(&seen.stdout).contains(&format!("{address}\tvpn\n")),
        "{}{}",
        text(&seen.stdout),
        text(&seen.stderr)
    );
    // Not our container: `rm -f` says so (without failing, as `docker rm
    // -f`) and it stays connected.
    let output = env.run(&["rm", "-f", "vpn"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        text(&output.stderr),
        "ipvlan: rm vpn: No such container: vpn\n"
    );
    assert_eq!(links_in("vpn"), ["lo", "eth0"]);
    // Disconnect takes our symlink only: the admin's directory stays.
    assert_eq!(env.ok(&["network", "disconnect", "n1", "vpn"]), "");
    assert_eq!(mode(view), Some(0o700));
    assert_eq!(std::fs::read_dir(view).unwrap().count(), 0);
    assert_eq!(links_in("vpn"), ["lo"]);

    // Nothing there: ipvlan makes the directory (0755) and removes it.
    let view2 = Path::new("/etc/netns/vpn2");
    assert!(!view2.exists());
    assert_eq!(env.ok(&["network", "connect", "n1", "vpn2"]), "");
    assert_eq!(mode(view2), Some(0o755));
    assert!(std::fs::read_link(view2.join("hosts"))
        .unwrap()
        .starts_with(env.state_dir().join("hosts")));
    assert_eq!(env.ok(&["network", "disconnect", "n1", "vpn2"]), "");
    assert!(!view2.exists());

    ip(&["netns", "del", "vpn"]);
    ip(&["netns", "del", "vpn2"]);
    std::fs::remove_dir(view).unwrap();
}

#[test]
fn run_and_exec_resolve_names_on_a_host_without_etc_hosts() {
    let mut env = Env::new("nohosts");
    env.network("n1", "192.168.77.0/24");
    let output = env.shell(&format!(
        "set -e\n\
         {HIDE_ETC_HOSTS}\
         [ ! -e /etc/hosts ]\n\
         ls -A /etc > \"$T/outside\"\n\
         set +e\n\
         ping() {{ for i in 1 2 3; do \"$BIN\" \"$@\" ping -c 1 -W 2 $to > /dev/null && return 0; done; return 1; }}\n\
         \"$BIN\" run --net=n1 --name=a -d sleep 1000; echo \"rc=$?\"\n\
         \"$BIN\" run --net=n1 --name=b -d sleep 1000; echo \"rc=$?\"\n\
         to=b ping exec a; echo \"a->b=$?\"\n\
         to=a ping run --net=n1 --rm; echo \"run->a=$?\"\n\
         \"$BIN\" exec a ls -A /etc > \"$T/inside\"; echo \"rc=$?\"\n\
         \"$BIN\" rm -f a b; echo \"rc=$?\"\n\
         ls -A /etc > \"$T/after\""
    ));
    assert_eq!(
        text(&output.stdout),
        "a\nrc=0\nb\nrc=0\na->b=0\nrun->a=0\nrc=0\na\nb\nrc=0\n",
        "{}",
        text(&output.stderr)
    );
    assert_eq!(text(&output.stderr), "");
    let listing = |file: &str| -> Vec<String> {
        let text = std::fs::read_to_string(env.root.join(file)).unwrap();
        let mut names: Vec<String> = text.lines().map(str::to_string).collect();
        names.sort();
        names
    };
    // Inside: the guest's /etc plus the view; outside, nothing new.
    let outside = listing("outside");
    assert!(!outside.iter().any(|name| name == "hosts"), "{outside:?}");
    let mut expected = outside.clone();
    expected.push("hosts".to_string());
    expected.sort();
    assert_eq!(listing("inside"), expected);
    assert_eq!(listing("after"), outside);
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
    let path = vm_support::own_netns_of(holder.id());
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
            "ipvlan: network connect n1 {path}: {path} is the network namespace ipvlan itself runs in, where the networks' parent interfaces are; only another namespace can be attached\n"
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

/// `(fsync, fdatasync)` calls of `ipvlan args` in `env`, counted by the
/// guest's strace (a missing strace fails the test).
fn syncs_of(env: &Env, args: &[&str]) -> (usize, usize, usize) {
    let trace = env.root.join("syncs.trace");
    let mut command = Command::new("strace");
    command
        .args(["-f", "-qq", "-e", "trace=fsync,fdatasync,syncfs", "-o"])
        .arg(&trace)
        .arg(binary())
        .args(args)
        .stdin(Stdio::null());
    env.environment(&mut command);
    let output = command.output().expect("runs strace");
    assert_eq!(output.status.code(), Some(0), "{args:?}: {output:?}");
    let trace = std::fs::read_to_string(&trace).unwrap();
    let calls = |name: &str| {
        trace
            .lines()
            .filter(|line| {
                line.split_whitespace()
                    .any(|word| word.starts_with(&format!("{name}(")))
            })
            .count()
    };
    (calls("fsync"), calls("fdatasync"), calls("syncfs"))
}

/// One durable commit per command (README, "What survives a power cut"):
/// a connect writes its endpoint record twice (intent, then final), the
/// container's index and an address file, and makes only the endpoint
/// record durable (the others are derived, rebuilt by `restore`), once,
/// at the end, by an entry of the commit log and one `fdatasync` of the
/// lock; a disconnect makes the record's removal durable the same way.
/// Before, every write was synced where it was made (9 fsync and 4
/// fdatasync for this connect); then each file written once (3 fsync and
/// 3 fdatasync; a disconnect 3 and 1); then the endpoint record and its
/// directory (1 and 1; a disconnect the directory).
#[test]
fn connect_and_disconnect_make_their_final_state_durable_once() {
    let mut env = Env::new("durable");
    env.network("n1", "192.168.76.0/24");
    env.network("n2", "192.168.77.0/24");
    // Every directory the connect uses exists (those of n2, the union
    // markers of both networks): a new directory is synced into its
    // parent when it is made, a cost of a network's first attach only.
    env.ok(&["run", "-d", "--name", "c0", "--network", "n2"]);
    env.ok(&["network", "connect", "n1", "c0"]);
    env.ok(&["run", "-d", "--name", "c1", "--network", "n1"]);
    assert_eq!(
        syncs_of(&env, &["network", "connect", "n2", "c1"]),
        (0, 1, 0),
        "(fsync, fdatasync, syncfs) of a connect"
    );
    let network = env.inspect("n2");
    assert_eq!(
        field(&network, &["Containers"]).as_object().map(<[_]>::len),
        Some(2)
    );
    assert_eq!(
        syncs_of(&env, &["network", "disconnect", "n2", "c1"]),
        (0, 1, 0),
        "(fsync, fdatasync, syncfs) of a disconnect"
    );
    // A batch of many (24 endpoint records and their directory, more than
    // a store without a commit log syncs one by one): still one entry of
    // the log and one `fdatasync`, however many files it names. It used
    // to be one `syncfs`, which flushed every derived file the batch had
    // written too, then the log emptied.
    let batch: Vec<String> = (2..26).map(|i| format!("c{i}")).collect();
    for name in &batch {
        env.ok(&["run", "-d", "--name", name.as_str(), "--network", "n1"]);
    }
    let mut connect = vec!["network", "connect", "n2"];
    connect.extend(batch.iter().map(String::as_str));
    assert_eq!(
        syncs_of(&env, &connect),
        (0, 1, 0),
        "(fsync, fdatasync, syncfs) of a batch of 24"
    );
    assert_eq!(
        field(&env.inspect("n2"), &["Containers"])
            .as_object()
            .map(<[_]>::len),
        Some(25),
        "c0 and the batch"
    );
    // Listings write nothing and sync nothing.
    for args in [
        &["network", "ls"][..],
        &["ps"],
        &["network", "inspect", "n2"],
    ] {
        assert_eq!(syncs_of(&env, args), (0, 0, 0), "{args:?}");
    }
}

/// A batch whose records one entry of the commit log does not hold (32
/// KiB, some fifty records): several entries in a row, still one
/// `fdatasync` of the lock and no other sync. (One of more changes than a
/// commit holds for the log is one `syncfs`, then the log emptied:
/// `tests/store.rs`.) Namespaces made by `ip netns add`, as a harness
/// would, all in one `ip -batch`.
#[test]
fn a_batch_longer_than_one_log_entry_is_made_durable_by_one_fdatasync() {
    let (env, names) = namespaces_for_a_batch("syncs-large", "10.65.0.0/24", "sl", 70);
    let mut connect = vec!["network", "connect", "n1"];
    connect.extend(names.iter().map(String::as_str));
    assert_eq!(
        syncs_of(&env, &connect),
        (0, 1, 0),
        "(fsync, fdatasync, syncfs) of a batch of {}",
        names.len()
    );
    assert_eq!(
        field(&env.inspect("n1"), &["Containers"])
            .as_object()
            .map(<[_]>::len),
        Some(names.len())
    );
    connect[1] = "disconnect";
    env.ok(&connect);
    ip_batch(&netns_each("del", &names));
}

/// An env whose network `n1` is on `subnet`, and `count` namespaces
/// `PREFIX1`.. made by `ip netns add`, as a harness would, all in one `ip
/// -batch`. Every directory a batch uses is made first, by an attach and
/// a detach of the first (a new one is synced into its parent when made,
/// a network's first attach only).
fn namespaces_for_a_batch(
    tag: &str,
    subnet: &str,
    prefix: &str,
    count: usize,
) -> (Env, Vec<String>) {
    let mut env = Env::with_iproute2_dirs(tag);
    env.network("n1", subnet);
    let names: Vec<String> = (1..=count).map(|i| format!("{prefix}{i}")).collect();
    ip_batch(&netns_each("add", &names));
    env.ok(&["network", "connect", "n1", &names[0]]);
    env.ok(&["network", "disconnect", "n1", &names[0]]);
    (env, names)
}

/// `ip -batch` lines that `verb` (add, del) each of `names`.
fn netns_each(verb: &str, names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("netns {verb} {n}\n"))
        .collect()
}

/// A batch longer than one chunk of creates has each chunk finished (its
/// names, records and views) on a thread of its own while the kernel
/// builds the next, or, when no thread can be started, on the calling
/// thread after the last create. When the finishing fails part-way (a
/// view's directory refused, as a full disk would: the 20th, in the second
/// chunk of 16), the creates stop (or are all made, without the thread)
/// and every endpoint goes again, those finished, those handed to the
/// finishing but never finished and those only built: the store and the
/// views file for file as before, no link left in any target, each way;
/// and the same batch run again attaches all, without the thread too.
/// Which chunks the finishing was handed before its failure depends on
/// timing when nothing holds it; one round holds it at the 20th view until
/// the last chunk is built and handed over, so that chunk is one it never
/// finishes.
#[test]
fn a_batch_whose_finishing_fails_part_way_leaves_nothing() {
    let (env, names) = namespaces_for_a_batch("finishing", "10.66.0.0/24", "fin", 40);
    let mut connect = vec!["network", "connect", "n1"];
    connect.extend(names.iter().map(String::as_str));
    const NO_THREAD: &str = "batch: no finishing thread";
    let last = names.last().unwrap();
    let pause = env.root.join("pause");
    for (no_thread, held) in [(false, false), (true, false), (false, true)] {
        let before = (tree_of(&env.state_dir()), tree_of(&env.etc_netns_dir));
        let forced = match no_thread {
            false => "etc netns: mkdir refused#20".to_string(),
            true => format!("etc netns: mkdir refused#20,{NO_THREAD}"),
        };
        let mut command = env.command(&connect);
        command.env("IPVLAN_FAULT_FORCE", &forced);
        let output = match held {
            false => command.output().unwrap(),
            true => {
                let child = spawn_command_paused(
                    command,
                    "network connect",
                    "etc netns: before mkdir#20",
                    &pause,
                );
                // The last target's link up is its last request (the network
                // has no gateway, so no route); its chunk is handed over
                // once its answers are read, at once.
                vm_support::wait_until(&format!("{last}'s link up"), || {
                    vm_support::link(Some(last), "eth0")
                        .is_some_and(|link| vm_support::link_flags(&link).iter().any(|f| f == "UP"))
                });
                std::thread::sleep(std::time::Duration::from_secs(1));
                std::fs::remove_file(&pause).unwrap();
                child.wait_with_output().unwrap()
            }
        };
        let stderr = text(&output.stderr);
        let forced = format!("{forced} (held: {held})");
        assert_eq!(output.status.code(), Some(1), "{forced}: {stderr}");
        // The forced refusal, not another failure that would stop the batch
        // before its creates.
        assert!(
            stderr.starts_with("ipvlan: network connect n1 fin1 fin2 ")
                && stderr.contains(
                    " fin40: attaching fin20 to network n1: creating /etc/netns/fin20: I/O error"
                ),
            "{forced}: {stderr}"
        );
        left_nothing(&env, before, &names, &format!("{forced}: {stderr}"));
    }
    let output = env
        .command(&connect)
        .env("IPVLAN_FAULT_FORCE", NO_THREAD)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(
        field(&env.inspect("n1"), &["Containers"])
            .as_object()
            .map(<[_]>::len),
        Some(names.len())
    );
    for name in [&names[0], &names[19], &names[39]] {
        assert_eq!(links_at(&env.netns_dir().join(name)), ["eth0", "lo"]);
        assert!(
            env.etc_netns_dir.join(name).join("hosts").exists(),
            "{name}"
        );
        let view = std::fs::read_to_string(env.etc_netns_dir.join(name).join("hosts")).unwrap();
        assert!(
            view.contains("\tfin1\n") && view.contains("\tfin40\n"),
            "{name}'s view names the whole batch:\n{view}"
        );
    }
    connect[1] = "disconnect";
    env.ok(&connect);
    ip_batch(&netns_each("del", &names));
}

/// When a chunk's creates fail while the finishing of the chunk before
/// is under way, and that finishing then fails too (a view refused), the
/// creates' failure is the batch's error: it is the one that may say
/// more (an address another link holds, which the same command then
/// passes over), where the finishing's says only what stopped it. The
/// finishing is held at its 5th view (the first chunk) until the second
/// chunk's creates have failed and the calling thread waits for it
/// (in `futex`, joining it), then refused there. Before, the finishing's
/// failure was reported. Both ways the batch is undone whole.
#[test]
fn a_create_failure_is_the_batchs_error_when_the_finishing_fails_after_it() {
    let (env, names) = namespaces_for_a_batch("both", "10.67.0.0/24", "bf", 40);
    let mut connect = vec!["network", "connect", "n1"];
    connect.extend(names.iter().map(String::as_str));
    let pause = env.root.join("pause");
    let before = (tree_of(&env.state_dir()), tree_of(&env.etc_netns_dir));
    let forced = "etc netns: mkdir refused#5,endpoint: batch answers lost#2";
    let mut command = env.command(&connect);
    command.env("IPVLAN_FAULT_FORCE", forced);
    let child = spawn_command_paused(
        command,
        "network connect",
        "etc netns: before mkdir#5",
        &pause,
    );
    let main_thread = format!("/proc/{0}/task/{0}/syscall", child.id());
    vm_support::wait_until("the calling thread waiting for the finishing", || {
        std::fs::read_to_string(&main_thread)
            .is_ok_and(|call| call.starts_with(&format!("{} ", libc::SYS_futex)))
    });
    std::fs::remove_file(&pause).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("ipvlan: network connect n1 bf1 bf2 ")
            && stderr.ends_with(" bf40: attaching to network n1: I/O error (os error 5)\n"),
        "the creates' failure, not the finishing's: {stderr}"
    );
    left_nothing(&env, before, &names, &stderr);
    env.ok(&connect);
    connect[1] = "disconnect";
    env.ok(&connect);
    ip_batch(&netns_each("del", &names));
}

/// The state files `ipvlan args` opened for reading, by the directory
/// they are in (`networks`, `endpoints`, ...), counted by the guest's
/// strace (`-y` names the directory a descriptor stands for).
fn records_read_by(env: &Env, args: &[&str]) -> std::collections::BTreeMap<String, usize> {
    let trace = env.root.join("opens.trace");
    let mut command = Command::new("strace");
    command
        .args(["-f", "-qq", "-y", "-e", "trace=open,openat", "-o"])
        .arg(&trace)
        .arg(binary())
        .args(args)
        .stdin(Stdio::null());
    env.environment(&mut command);
    let output = command.output().expect("runs strace");
    assert_eq!(output.status.code(), Some(0), "{args:?}: {output:?}");
    let state = env.state_dir().display().to_string();
    let mut read = std::collections::BTreeMap::new();
    for line in std::fs::read_to_string(&trace).unwrap().lines() {
        if !line.contains(".json\"") || line.contains("O_WRONLY") || line.contains("= -1") {
            continue;
        }
        let Some(at) = line.find(&format!("{state}/")) else {
            continue;
        };
        let kind = line[at + state.len() + 1..]
            .split(['/', '>', '"'])
            .next()
            .unwrap_or_default()
            .to_string();
        *read.entry(kind).or_default() += 1;
    }
    read
}

/// `network ls` reads the network records only; `network inspect NAME`
/// that network's record (found through its name's hint) and its
/// endpoints', whatever the number of networks. Before, `ls` read every
/// endpoint record too and `inspect` every network record.
#[test]
fn listings_read_only_what_they_print() {
    let mut env = Env::new("reads");
    for n in 0..6 {
        env.network(&format!("n{n}"), &format!("192.168.{}.0/24", 80 + n));
    }
    env.ok(&["run", "-d", "--name", "c1", "--network", "n1"]);
    env.ok(&["run", "-d", "--name", "c2", "--network", "n2"]);
    let count = |read: &std::collections::BTreeMap<String, usize>, kind: &str| {
        read.get(kind).copied().unwrap_or(0)
    };
    let read = records_read_by(&env, &["network", "ls"]);
    assert_eq!(count(&read, "networks"), 6, "{read:?}");
    assert_eq!(count(&read, "endpoints"), 0, "{read:?}");
    let read = records_read_by(&env, &["network", "inspect", "n1"]);
    assert_eq!(count(&read, "networks"), 1, "{read:?}");
    assert_eq!(count(&read, "endpoints"), 1, "{read:?}");
    assert!(env.ok(&["network", "inspect", "n1"]).contains("\"c1\""));
}

/// A batch holds two descriptors per namespace to its end: under a low
/// soft `RLIMIT_NOFILE` it raises the soft limit (within the hard one) and
/// works; above the hard limit it is refused before anything is done.
#[test]
fn a_batch_fits_itself_under_the_open_files_limit() {
    let mut env = Env::new("nofile");
    env.network("n1", "192.168.78.0/24");
    let names: Vec<String> = (0..40).map(|i| format!("f{i}")).collect();
    for name in &names {
        env.ok(&["run", "-d", "--name", name.as_str(), "--network", "n1"]);
    }
    env.network("n2", "192.168.79.0/24");
    let list = names.join(" ");
    // 40 targets: about 80 descriptors plus the rest, above a soft 64.
    let raised = env.shell(&format!(
        "ulimit -Sn 64 && ulimit -Hn 1024 && $BIN network connect n2 {list}"
    ));
    assert_eq!(raised.status.code(), Some(0), "{raised:?}");
    assert_eq!(
        field(&env.inspect("n2"), &["Containers"])
            .as_object()
            .map(<[_]>::len),
        Some(40)
    );
    env.ok(&[
        &["network", "disconnect", "n2"][..],
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
    ]
    .concat());
    // Above the hard limit: refused, nothing attached.
    let refused = env.shell(&format!(
        "ulimit -Sn 50 && ulimit -Hn 100 && $BIN network connect n2 {list}"
    ));
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    // 144 and the descriptors the command has open then (its standard
    // streams and the state directory's).
    let message = text(&refused.stderr);
    let needed = message
        .split_once("a batch of 40 namespaces needs about ")
        .and_then(|(_, rest)| rest.split_once(" open files (this process has "))
        .and_then(|(needed, rest)| Some((needed, rest.split_once(" open), ")?)))
        .and_then(|(needed, (open, rest))| {
            let (needed, open) = (needed.parse::<u64>().ok()?, open.parse::<u64>().ok()?);
            (rest == "above its limit of 100 (RLIMIT_NOFILE): attach them in smaller batches\n"
                && open >= 3
                && needed == 144 + open)
                .then_some(needed)
        });
    assert!(needed.is_some(), "{message}");
    assert_eq!(
        field(&env.inspect("n2"), &["Containers"])
            .as_object()
            .map(<[_]>::len),
        Some(0)
    );
    // A batch disconnect is refused so too, in its own words, and
    // detaches nothing.
    let all = [
        &["network", "connect", "n2"][..],
        &names.iter().map(String::as_str).collect::<Vec<_>>(),
    ]
    .concat();
    env.ok(&all);
    let refused = env.shell(&format!(
        "ulimit -Sn 50 && ulimit -Hn 100 && $BIN network disconnect n2 {list}"
    ));
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let message = text(&refused.stderr);
    assert!(
        message
            .ends_with("above its limit of 100 (RLIMIT_NOFILE): detach them in smaller batches\n"),
        "{message}"
    );
    assert_eq!(
        field(&env.inspect("n2"), &["Containers"])
            .as_object()
            .map(<[_]>::len),
        Some(40)
    );
    for name in &names {
        env.ok(&["rm", "-f", name.as_str()]);
    }
}

/// `ip -batch -` of `commands`, insisting on success.
fn ip_batch(commands: &str) {
    use std::io::Write;
    let mut child = Command::new(vm_support::ip_path())
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("runs ip");
    child
        .stdin
        .take()
        .expect("ip's stdin")
        .write_all(commands.as_bytes())
        .expect("writes ip's batch");
    assert!(child.wait().expect("ip ends").success(), "ip -batch failed");
}

/// Peak RSS in KiB of `ipvlan args`, and its heap's peak in bytes: its
/// own `VmHWM` and allocator's count, which the guest build writes at exit
/// (`IPVLAN_PEAK_RSS_FILE`, `IPVLAN_PEAK_HEAP_FILE`; `wait4`'s figure would
/// count the forking test's address space too).
fn peaks(env: &Env, args: &[&str]) -> (u64, u64) {
    let rss = env.root.join("peak-rss");
    let heap = env.root.join("peak-heap");
    let _ = std::fs::remove_file(&rss);
    let _ = std::fs::remove_file(&heap);
    let output = env
        .command(args)
        .env(ipvlan::fault::PEAK_RSS_ENV, &rss)
        .env(ipvlan::fault::PEAK_HEAP_ENV, &heap)
        .output()
        .expect("runs ipvlan");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let read = |file: &Path| -> u64 {
        let written = std::fs::read_to_string(file).expect("a peak file");
        written.trim().parse().expect("a number")
    };
    (read(&rss), read(&heap))
}

/// A batch holds little per target to its end, attaching and detaching.
/// The issue's bound for any command is 2 MiB, which the release build's
/// batch of 1,000 is to meet (the bench's peak RSS); this guest build (less
/// optimised, with test hooks) starts higher, so what is held is the
/// growth from 100 targets to 1,000, per target.
///
/// Held to a bound: the heap's peak, which is the same in every run (the
/// resident count of Linux 6.1 is brought up to date every 64 page faults
/// only, and its peak taken when memory is unmapped and at exit, so a peak
/// RSS can read up to 63 pages low: about 280 bytes a target here; one
/// build read 1,265 and then 1,201 bytes a target). The
/// peak RSS is held only to the bound it had before. Before each target
/// was held in one slot from its resolution to its endpoint (a vector of
/// the resolved targets and one of the endpoints made of them were held
/// side by side, as were disconnect's places and endpoints) and the command
/// line's operands once (three copies), the heap grew by 1,383 bytes a
/// target in a connect and 1,138 in a disconnect (786 and 892 after).
/// Before the creates went a chunk at a time and each target was cut to
/// its namespace once reserved, a connect's peak RSS grew by about 2 KiB a
/// target.
#[test]
fn a_batch_holds_little_per_target() {
    let mut env = Env::with_iproute2_dirs("rss");
    env.network("n1", "10.64.0.0/20");
    let names: Vec<String> = (1..=1000).map(|i| format!("rss{i}")).collect();
    ip_batch(
        &names
            .iter()
            .map(|n| format!("netns add {n}\n"))
            .collect::<String>(),
    );
    // (targets, connect's (RSS KiB, heap bytes), disconnect's)
    let mut figures = Vec::new();
    for size in [100, 1000] {
        let mut args = vec!["network", "connect", "n1"];
        args.extend(names[..size].iter().map(String::as_str));
        let connect = peaks(&env, &args);
        args[1] = "disconnect";
        let disconnect = peaks(&env, &args);
        figures.push((size, connect, disconnect));
    }
    ip_batch(
        &names
            .iter()
            .map(|n| format!("netns del {n}\n"))
            .collect::<String>(),
    );
    eprintln!("peaks of a batch (targets, connect (RSS KiB, heap bytes), disconnect): {figures:?}");
    let [(small, small_connect, small_disconnect), (large, large_connect, large_disconnect)] =
        figures[..]
    else {
        unreachable!("two sizes")
    };
    let per_target = |from: u64, to: u64| to.saturating_sub(from) / (large - small) as u64;
    for (what, (small_rss, small_heap), (large_rss, large_heap), bound) in [
        (
            "connect",
            small_connect,
            large_connect,
            HEAP_CONNECT_PER_TARGET,
        ),
        (
            "disconnect",
            small_disconnect,
            large_disconnect,
            HEAP_DISCONNECT_PER_TARGET,
        ),
    ] {
        let heap = per_target(small_heap, large_heap);
        let rss = per_target(small_rss * 1024, large_rss * 1024);
        eprintln!("a batch {what} holds per target: heap {heap} bytes, peak RSS {rss} bytes");
        assert!(
            heap <= bound,
            "a batch {what} held {heap} bytes of heap a target (bound {bound}): {figures:?}"
        );
        assert!(
            rss <= RSS_PER_TARGET,
            "a batch {what} held {rss} bytes of peak RSS a target (bound {RSS_PER_TARGET}): {figures:?}"
        );
    }
}

/// Heap bytes a batch connect may hold per target (see
/// `a_batch_holds_little_per_target`): what it held, 529, and a tenth. It
/// held 832 while the commit kept some two hundred records' texts and
/// paths for the commit log, whose entry could never hold the batch's
/// thousand, and while a hosts file's lines were copied three times on
/// their way to it.
const HEAP_CONNECT_PER_TARGET: u64 = 582;
/// The same for a batch disconnect: 703 and a tenth. It held 927 while the
/// commit kept the paths of 256 removals, and while the vector of its
/// targets was grown as it was filled (the old and new rooms side by
/// side); 742-767 while it kept the label of every endpoint detached for
/// an error that names eight. Since its links are deleted on a thread of
/// their own, each target's slot holds its link's removal until the
/// thread takes it.
const HEAP_DISCONNECT_PER_TARGET: u64 = 773;
/// Peak RSS a batch may hold per target: 1,400 KiB over 900 targets, the
/// bound the test had before the heap's.
const RSS_PER_TARGET: u64 = 1400 * 1024 / 900;

/// A connect waits for the store's lock in its own namespace: waiting
/// inside the target, it would be one of the container's processes to a
/// concurrent `rm` (refused as still running, or killed by `rm -f`) and
/// to `ip netns pids`.
#[test]
fn a_connect_waiting_for_the_lock_waits_outside_its_target() {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let mut env = Env::with_iproute2_dirs("lockwait");
    env.network("lw0", "192.168.77.0/24");
    env.network("lw1", "192.168.78.0/24");
    env.ok(&["run", "-d", "--name", "lwc", "--network", "lw0"]);
    let container_ns = format!(
        "net:[{}]",
        std::fs::metadata(env.netns_dir().join("lwc"))
            .unwrap()
            .ino()
    );
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(env.state_dir().join("lock"))
        .unwrap();
    // SAFETY: a live descriptor, a plain flag.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let child = env
        .command(&["network", "connect", "lw1", "lwc"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Until it blocks in flock(2) (73 on x86_64).
    let syscall = format!("/proc/{}/syscall", child.id());
    let blocked = (0..500).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::read_to_string(&syscall).is_ok_and(|s| s.starts_with("73 "))
    });
    let waiting_in = std::fs::read_link(format!("/proc/{}/ns/net", child.id()));
    // SAFETY: as above.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_UN) }, 0);
    let output = child.wait_with_output().unwrap();
    assert!(blocked, "the connect never waited for the lock");
    let waiting_in = waiting_in.unwrap().to_string_lossy().into_owned();
    assert_ne!(
        waiting_in, container_ns,
        "the connect waited for the lock inside its target"
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(links_in("lwc").len(), 3, "{:?}", links_in("lwc"));
}

/// A connect sends `eth0` without asking first when our records show the
/// container on no network; if another tool's ipvlan `eth0` on the same
/// parent is there and the answer to the lookup that follows the refusal
/// is lost, the failed connect must not take that link for one it may
/// have made: it is left alone, and nothing of ours stays.
#[test]
fn a_lost_answer_after_a_guessed_name_leaves_another_tools_eth0_alone() {
    let mut env = Env::with_iproute2_dirs("guess");
    let ip = vm_support::ip;
    ip(&["link", "add", "lkp0", "type", "dummy"]);
    ip(&["link", "set", "lkp0", "up"]);
    env.ok(&[
        "network",
        "create",
        "-o",
        "parent=lkp0",
        "--subnet",
        "192.168.79.0/24",
        "lk",
    ]);
    env.networks.push("lk".to_string());
    ip(&["netns", "add", "lk1"]);
    ip(&[
        "link", "add", "theirs", "link", "lkp0", "type", "ipvlan", "mode", "l2",
    ]);
    ip(&["link", "set", "theirs", "netns", "lk1"]);
    ip(&["-n", "lk1", "link", "set", "theirs", "name", "eth0"]);
    let index_of = || -> Option<u64> {
        let links = vm_support::ip_json(&["-n", "lk1", "link", "show", "eth0"]);
        links.as_array()?.first()?.get("ifindex")?.as_u64()
    };
    let theirs = index_of().expect("their eth0");
    let output = env
        .command(&["network", "connect", "lk", "lk1"])
        .env("IPVLAN_FAULT_FORCE", "endpoint: name lookup lost")
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    // The lookup's answer lost, not a refusal before it.
    assert!(
        stderr.contains("no answer from the kernel within"),
        "{stderr}"
    );
    assert_eq!(index_of(), Some(theirs), "their eth0 was deleted");
    assert_eq!(links_in("lk1"), ["lo", "eth0"]);
    let network = env.inspect("lk");
    assert_eq!(
        field(&network, &["Containers"]).as_object().map(<[_]>::len),
        Some(0)
    );
    ip(&["netns", "del", "lk1"]);
    drop(env);
    ip(&["link", "del", "lkp0"]);
}

/// The commit log's volatile page in the state's lock file: its
/// generation and its tail (the next free slot; 64: full).
fn log_page(env: &Env) -> (u64, u32) {
    use std::os::unix::fs::FileExt;
    let lock = std::fs::File::open(env.state_dir().join("lock")).unwrap();
    let mut page = [0u8; 24];
    lock.read_exact_at(&mut page, 3 * 4096).unwrap();
    assert_eq!(&page[..8], b"ipvlvol1");
    (
        u64::from_le_bytes(page[8..16].try_into().unwrap()),
        u32::from_le_bytes(page[16..20].try_into().unwrap()),
    )
}

/// Emptying the commit log (a new generation, after everything was made
/// durable) that fails to write marks the log full, as a failed write of
/// an entry does: the next commit then syncs the file system and empties
/// it, rather than appending after entries a replay after a power cut
/// would bring back over what the failed command made durable.
#[test]
fn a_log_that_could_not_be_emptied_is_marked_full() {
    // Before: the error was returned and the log kept its entries and
    // its tail, for the next command to append after.
    let mut env = Env::new("logfull");
    env.network("lf", "192.168.79.0/24");
    env.ok(&["run", "-d", "--net=lf", "--name=lf1", "sleep", "1000"]);
    let (generation, tail) = log_page(&env);
    assert!(tail > 0 && tail < 64, "{tail}");
    let output = env
        .command(&["restore"])
        .env("IPVLAN_FAULT_FORCE", "store: log write fails")
        .output()
        .unwrap();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("(os error 5)"), "{stderr}");
    assert_eq!(log_page(&env), (generation, 64));
    // The next commit syncs and empties it.
    env.ok(&["restore"]);
    assert_eq!(log_page(&env), (generation + 1, 0));
    env.ok(&["rm", "-f", "lf1"]);
}

/// A disk that refuses the flush (EIO from `fdatasync`/`fsync`) fails
/// every command that changed the state, whatever the command: what it
/// wrote may not survive a power cut, so it must not report success.
/// `run`, `rm` and `restore` used to leave their flush to the lock's
/// release, which has no caller to give the error to, and exited 0; a
/// `run` whose container was made said it failed creating it.
#[test]
fn a_flush_the_disk_refuses_fails_every_command_that_changed_the_state() {
    let mut env = Env::new("flush");
    env.network("fl", "192.168.78.0/24");
    env.networks.push("fl2".to_string());
    let refused = |args: &[&str], code: i32| {
        let output = env
            .command(args)
            .env("IPVLAN_FAULT_FORCE", "store: flush fails")
            .output()
            .unwrap();
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(
            stderr.contains("syncing") && stderr.contains("(os error 5)"),
            "{args:?}: {stderr}"
        );
        stderr
    };
    refused(
        &["network", "create", "--subnet", "192.168.77.0/24", "fl2"],
        1,
    );
    // The container exists all the same, and the error says so.
    let said = refused(
        &["run", "-d", "--net=fl", "--name=fl1", "sleep", "1000"],
        125,
    );
    assert!(
        said.contains("container fl1 was made, but its state may not survive a power cut (`ipvlan rm -f fl1` removes it)"),
        "{said}"
    );
    refused(&["network", "disconnect", "fl", "fl1"], 1);
    refused(&["rm", "-f", "fl1"], 1);
    // Something for restore to repair: a container record whose namespace
    // is gone.
    env.ok(&["run", "-d", "--net=fl", "--name=fl3", "true"]);
    let fl3 = env.netns_dir().join("fl3");
    assert!(Command::new("umount").arg(&fl3).status().unwrap().success());
    std::fs::remove_file(&fl3).unwrap();
    assert!(refused(&["restore"], 1).contains("making the repairs durable"));
    env.ok(&["restore"]);
    assert!(env.containers().is_empty());
}

/// A container on two networks whose record on one of them is damaged
/// (cut short, as by a hand edit or a disk fault) stops no other
/// container's `run`, `network connect` or `network disconnect` on its
/// other network: each refreshes the union views of that network's
/// containers, and the damaged one's is left as it was, with a warning
/// from the disconnect, save the names of the container that leaves
/// (its address goes back to the pool). Before, each of them failed on
/// the record, the disconnect after its link was gone, leaving its
/// endpoint for a `restore` that failed the same way.
#[test]
fn a_damaged_record_of_a_container_on_two_networks_stops_no_other_container() {
    let mut env = Env::new("damaged2");
    env.network("n1", "192.168.86.0/24");
    let n2 = env.network("n2", "192.168.87.0/24");
    env.ok(&["run", "--net=n1", "--net=n2", "--name=y", "-d"]);
    let records: Vec<PathBuf> = std::fs::read_dir(env.state_dir().join("endpoints").join(&n2))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    let [record] = records.as_slice() else {
        panic!("y's record on n2 alone: {records:?}");
    };
    let whole = std::fs::read(record).unwrap();
    let y_names = |name: &str| {
        std::fs::read_to_string(env.etc_netns_dir.join("y/hosts"))
            .unwrap()
            .lines()
            .any(|line| line.split_whitespace().skip(1).any(|field| field == name))
    };
    env.ok(&["run", "--net=n1", "--name=x", "-d"]);
    assert!(y_names("x"), "y's view names x");
    std::fs::write(record, "{\"version\": 1").unwrap();

    env.ok(&["run", "--net=n1", "--name=z", "-d"]);
    let output = env.run(&["network", "disconnect", "n1", "x"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("the names view of container y was not brought up to date")
            && stderr.contains(&record.display().to_string()),
        "{stderr}"
    );
    assert_eq!(links_at(&env.netns_dir().join("x")), ["lo"]);
    let network = env.inspect("n1");
    let containers = field(&network, &["Containers"]);
    assert!(
        containers.get("x").is_none() && containers.get("y").is_some(),
        "{network}"
    );
    // x's address goes back to the pool: y's view no longer names it.
    assert!(!y_names("x") && y_names("y"), "y's view still names x");
    env.ok(&["network", "connect", "n1", "x"]);
    env.ok(&["network", "disconnect", "n1", "x"]);
    // Mended, for the cleanup to take y apart.
    std::fs::write(record, whole).unwrap();
}

/// After a reboot whose `restore` ran before the VLAN's base was there
/// (or did not run), the parents we made are missing: an attach makes its
/// network's again, as `restore` would, rather than fail until someone
/// runs `restore`; a refused attach makes nothing, and a parent that
/// cannot be made (its base gone) is said so.
#[test]
fn an_attach_makes_a_missing_parent_of_ours_again() {
    let mut env = Env::new("remade");
    assert!(vm_support::ip_ok(&["link", "add", "rb0", "type", "dummy"]));
    assert!(vm_support::ip_ok(&["link", "set", "rb0", "up"]));
    for (name, subnet, parent) in [
        ("rvlan", "192.168.71.0/24", Some("parent=rb0.71")),
        ("rdummy", "192.168.72.0/24", None),
    ] {
        let mut args = vec!["network", "create", "--subnet", subnet];
        if let Some(parent) = parent {
            args.extend(["-o", parent]);
        }
        args.push(name);
        env.ok(&args);
        env.networks.push(name.to_string());
    }
    let dummy = env.inspect("rdummy");
    let dummy = dummy
        .get("Options")
        .and_then(|o| o.get("parent"))
        .and_then(Value::as_str)
        .expect("the dummy parent's name")
        .to_string();
    let drop_parents = || {
        for parent in ["rb0.71", dummy.as_str()] {
            assert!(vm_support::ip_ok(&["link", "del", parent]), "{parent}");
        }
    };
    drop_parents();

    // Refused (an address outside the subnet): nothing made.
    let out = env.run(&[
        "run", "-d", "--net", "rvlan", "--ip", "10.0.0.9", "--name", "rc0",
    ]);
    assert_eq!(out.status.code(), Some(125), "{}", text(&out.stderr));
    assert!(
        vm_support::link(None, "rb0.71").is_none(),
        "a refused attach made the parent"
    );

    // Single attaches, then a batch, each after the parents went again.
    env.ok(&["run", "-d", "--net", "rvlan", "--name", "rc1"]);
    env.ok(&["run", "-d", "--net", "rdummy", "--name", "rc2"]);
    let vlan = vm_support::link(None, "rb0.71").expect("the VLAN parent made again");
    assert_eq!(vm_support::link_kind(&vlan).as_deref(), Some("vlan"));
    assert_eq!(
        vlan.get("linkinfo")
            .and_then(|i| i.get("info_data"))
            .and_then(|d| d.get("id"))
            .and_then(Value::as_u64),
        Some(71),
        "{vlan:?}"
    );
    let made = vm_support::link(None, &dummy).expect("the dummy parent made again");
    assert_eq!(vm_support::link_kind(&made).as_deref(), Some("dummy"));
    env.assert_listed(["rc1", "rvlan", "192.168.71.2/24"]);
    env.assert_listed(["rc2", "rdummy", "192.168.72.2/24"]);
    env.ok(&["rm", "-f", "rc1", "rc2"]);
    drop_parents();
    for name in ["rb1", "rb2"] {
        assert!(vm_support::ip_ok(&["netns", "add", name]));
    }
    env.ok(&[
        "network",
        "connect",
        "rvlan",
        "/run/netns/rb1",
        "/run/netns/rb2",
    ]);
    assert!(
        vm_support::link(None, "rb0.71").is_some(),
        "the batch made it again"
    );
    assert_eq!(vm_support::addresses("rb1", "eth0").len(), 1);
    env.ok(&[
        "network",
        "disconnect",
        "rvlan",
        "/run/netns/rb1",
        "/run/netns/rb2",
    ]);
    for name in ["rb1", "rb2"] {
        assert!(vm_support::ip_ok(&["netns", "del", name]));
    }

    // The VLAN's base gone too: said, nothing made.
    assert!(vm_support::ip_ok(&["link", "del", "rb0.71"]));
    assert!(vm_support::ip_ok(&["link", "del", "rb0"]));
    let out = env.run(&["run", "-d", "--net", "rvlan", "--name", "rc3"]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        text(&out.stderr),
        "ipvlan: run: connecting rc3 to network rvlan: parent interface rb0.71 of network rvlan does not exist, and cannot be made again: rvlan: rb0.71 (its link rb0 is missing too)\n"
    );
    assert!(env.containers().is_empty());
}

/// Where `/proc/sys` is read-only (systemd's `ProtectKernelTunables=`, a
/// container's), an attach cannot set its link's `disable_ipv6`: it says
/// where that comes from, and leaves nothing (the link deleted, the
/// address given back, `run`'s container taken apart).
#[test]
fn a_read_only_proc_sys_is_named_and_the_attach_leaves_nothing() {
    let mut env = Env::new("rosys");
    env.network("rosys", "192.168.73.0/24");
    env.network("rosys2", "192.168.74.0/24");
    env.ok(&["run", "-d", "--net", "rosys", "--name", "ro0"]);
    // rosys2's address directories made by a first attach, which a
    // refused one makes too (they stay, empty, as after any detach).
    env.ok(&["run", "-d", "--net", "rosys2", "--name", "ro1"]);
    env.ok(&["rm", "-f", "ro1"]);
    let ro0 = env.netns_dir().join("ro0");
    let links_before = links_at(&ro0);
    assert_eq!(links_before, ["eth0", "lo"]);
    let before = (tree_of(&env.state_dir()), tree_of(&env.etc_netns_dir));
    let out = env.shell(
        "mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys || exit 99
         \"$BIN\" network connect rosys2 ro0 2>&1; echo \"rc=$?\"
         \"$BIN\" run -d --net rosys --name ro2 2>&1; echo \"rc=$?\"",
    );
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}{}", text(&out.stderr));
    let cause = "/proc/sys is read-only here (systemd's ProtectKernelTunables=, a container's read-only /proc/sys), and ipvlan sets each link's disable_ipv6 there: Read-only file system (os error 30)";
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(lines.len(), 4, "{said}");
    assert!(
        lines[0].starts_with("ipvlan: network connect rosys2 ro0: ") && lines[0].ends_with(cause),
        "{said}"
    );
    assert_eq!(lines[1], "rc=1");
    assert!(
        lines[2].starts_with("ipvlan: run: ") && lines[2].ends_with(cause),
        "{said}"
    );
    // The container's namespace by the path it was about to be bound at,
    // not "(anonymous)".
    let ro2 = env.netns_dir().join("ro2");
    assert!(
        lines[2].contains(&format!(
            "setting disable_ipv6 on eth0 in {}:",
            ro2.display()
        )),
        "{said}"
    );
    assert_eq!(lines[3], "rc=125");
    // Nothing left: the link the refused connect made in ro0 deleted (its
    // disable_ipv6 is set after the create), the store and the views file
    // for file as before, ro0 alone, on its one network; the next attach
    // gets the address the refused `run` gave back.
    assert_eq!(links_at(&ro0), links_before);
    unchanged_since(&env, before);
    assert_eq!(env.containers(), ["ro0"]);
    env.assert_listed(["ro0", "rosys", "192.168.73.2/24"]);
    env.ok(&["run", "-d", "--net", "rosys", "--name", "ro3"]);
    env.assert_listed(["ro3", "rosys", "192.168.73.3/24"]);
}

/// A container whose `/etc/netns` view sits on a read-only file system
/// (systemd's `ProtectSystem=`, a read-only `/etc`) is not removed: `rm`
/// says why before it changes anything. Before, it detached, killed and
/// deleted the namespace, then stopped at the view with the record left
/// `removing`, which `restore` met again at every boot (and before that,
/// `rm -f` said nothing, exited 0 and dropped the record: the view stayed
/// for good, and another tool's namespace of the same name later got our
/// network's hosts file).
#[test]
fn rm_refuses_a_view_on_a_read_only_file_system_before_changing_anything() {
    let mut env = Env::new("roetc");
    env.network("roetc", "192.168.75.0/24");
    env.ok(&["run", "-d", "--net", "roetc", "--name", "re0"]);
    let out = env.shell(
        "D=\"$IPVLAN_ETC_NETNS_DIR\"
         mount --bind \"$D\" \"$D\" && mount -o remount,bind,ro \"$D\" || exit 99
         \"$BIN\" rm -f re0 2>&1; echo \"rc=$?\"",
    );
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}{}", text(&out.stderr));
    let view = env.etc_netns_dir.join("re0");
    assert_eq!(
        said,
        format!(
            "ipvlan: rm re0: its view {} cannot be taken out: it is on a read-only file system here (systemd's ProtectSystem=, a read-only /etc); make {} writable (ReadWritePaths=) and remove it again\nrc=1\n",
            view.display(),
            env.etc_netns_dir.display()
        )
    );
    // As it was: listed, attached, its namespace there.
    assert_eq!(env.containers(), ["re0"]);
    assert!(env.netns_dir().join("re0").exists());
    env.assert_listed(["re0", "roetc", "192.168.75.2/24"]);
    env.ok(&["rm", "-f", "re0"]);
    assert!(!view.exists());
    assert!(env.containers().is_empty());
}

/// Makes `command` run under a seccomp filter that kills the process at
/// `fsopen`, as systemd's `SystemCallFilter=@system-service` does by
/// default (`fsopen` is in `@mount`, which that set leaves out).
fn killed_at_fsopen(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    fn install() -> std::io::Result<()> {
        let statement = |code: u32, k: u32| libc::sock_filter {
            code: code as u16,
            jt: 0,
            jf: 0,
            k,
        };
        let filter = [
            // The call's number: `seccomp_data.nr`, at offset 0.
            statement(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
            libc::sock_filter {
                code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
                jt: 0,
                jf: 1,
                k: libc::SYS_fsopen as u32,
            },
            statement(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_KILL_PROCESS),
            statement(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
        ];
        let program = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr().cast_mut(),
        };
        // SAFETY: prctl with integer arguments, then with a pointer to a
        // program that lives until the call returns (the kernel copies it).
        let installed = unsafe {
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
                && libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &program as *const libc::sock_fprog,
                ) == 0
        };
        match installed {
            true => Ok(()),
            false => Err(std::io::Error::last_os_error()),
        }
    }
    // SAFETY: `install` only makes system calls (no allocation, no lock)
    // in the child between fork and exec.
    unsafe { command.pre_exec(install) };
}

/// A batch `network connect` under a seccomp filter that kills at
/// `fsopen` (a service's `SystemCallFilter=`) writes its links' settings
/// through `/proc`, as where the procfs instance is refused. Before, the
/// filter killed it (SIGSYS) after its first links were made, leaving
/// them to `restore`.
#[test]
fn a_batch_under_a_seccomp_filter_makes_no_procfs_instance_of_its_own() {
    let mut env = Env::new("seccomp");
    env.network("secc", "192.168.76.0/24");
    let namespaces = ["sc1", "sc2", "sc3"];
    for name in namespaces {
        let _ = vm_support::ip_ok(&["netns", "del", name]);
        assert!(vm_support::ip_ok(&["netns", "add", name]));
    }
    let paths: Vec<String> = namespaces
        .iter()
        .map(|n| format!("/run/netns/{n}"))
        .collect();
    let mut args = vec!["network", "connect", "secc"];
    args.extend(paths.iter().map(String::as_str));
    let mut command = env.command(&args);
    killed_at_fsopen(&mut command);
    let out = command.output().expect("runs ipvlan");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        (out.status.code(), out.status.signal()),
        (Some(0), None),
        "{}",
        text(&out.stderr)
    );
    for name in namespaces {
        assert_eq!(vm_support::addresses(name, "eth0").len(), 1, "{name}");
    }
    let mut args = vec!["network", "disconnect", "secc"];
    args.extend(paths.iter().map(String::as_str));
    env.ok(&args);
    for name in namespaces {
        assert!(vm_support::ip_ok(&["netns", "del", name]));
    }
}

/// An IPv6 network without `--subnet` on a host without `/etc/machine-id`
/// takes its ULA prefix from a host id the store draws once. Where no
/// `/dev` is mounted either (a minimal root early in boot), it is drawn
/// by `getrandom`. Before, it read `/dev/urandom` and the create failed.
#[test]
fn a_host_id_is_drawn_without_dev() {
    let mut env = Env::new("nodev");
    assert!(
        !std::path::Path::new("/etc/machine-id").exists(),
        "the guest has a machine id: this test needs the store's own host id"
    );
    let out = env.shell(
        "mount -t tmpfs none /dev || exit 99
         \"$BIN\" network create --ipv6 --internal nodev6 2>&1; echo \"rc=$?\"",
    );
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}{}", text(&out.stderr));
    env.networks.push("nodev6".to_string());
    assert!(said.ends_with("rc=0\n"), "{said}");
    let host_id = std::fs::read_to_string(env.state_dir().join("host-id")).unwrap();
    assert_eq!(host_id.trim().len(), 32, "{host_id:?}");
    let inspected = env.inspect("nodev6");
    let subnets: Vec<String> = inspected
        .get("IPAM")
        .and_then(|i| i.get("Config"))
        .and_then(Value::as_array)
        .unwrap()
        .iter()
        .filter_map(|c| c.get("Subnet").and_then(Value::as_str).map(str::to_string))
        .collect();
    assert!(
        subnets.iter().any(|s| s.starts_with("fd")),
        "no ULA subnet: {subnets:?}"
    );
}

/// Makes `command` run without CAP_SYS_PTRACE, as under a unit's
/// `CapabilityBoundingSet=~CAP_SYS_PTRACE`: dropped from the bounding set
/// before the exec, which leaves root every other capability.
fn without_cap_sys_ptrace(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    fn drop_it() -> std::io::Result<()> {
        const CAP_SYS_PTRACE: libc::c_ulong = 19;
        // SAFETY: prctl with integer arguments.
        match unsafe { libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_PTRACE, 0, 0, 0) } {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        }
    }
    // SAFETY: `drop_it` only makes a system call between fork and exec.
    unsafe { command.pre_exec(drop_it) };
}

/// A `sleep` of user `nobody` in the namespace at `path`: a container's
/// command run as another user (`setpriv --reuid`, `nsenter -S`), whose
/// `/proc/PID/ns/net` root may read only with CAP_SYS_PTRACE.
fn nobody_inside(path: &Path) -> Holder {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let ns = std::fs::File::open(path).expect("the container's namespace");
    let fd = ns.as_raw_fd();
    let mut command = Command::new("sleep");
    command
        .arg("1000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let enter = move || -> std::io::Result<()> {
        let check = |result: libc::c_int| match result {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        };
        const NOBODY: libc::uid_t = 65534;
        // SAFETY: system calls with integer arguments (and a null list
        // of no groups) between fork and exec; `fd` is open until the
        // spawn returns.
        unsafe {
            check(libc::setns(fd, libc::CLONE_NEWNET))?;
            check(libc::setgroups(0, std::ptr::null()))?;
            check(libc::setresgid(NOBODY, NOBODY, NOBODY))?;
            check(libc::setresuid(NOBODY, NOBODY, NOBODY))
        }
    };
    // SAFETY: see `enter`.
    unsafe { command.pre_exec(enter) };
    // Inside once `spawn` returns: the exec follows the calls above.
    Holder(command.spawn().expect("sleep"))
}

/// How a process the test started ended: the signal that killed it.
fn killed_by(holder: &mut Holder) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    holder.0.wait().expect("waits").signal()
}

/// Without CAP_SYS_PTRACE, root may not read `/proc/PID/ns/net` of
/// another user's process, so a look at a container's processes passed
/// over a command that runs as another user: a plain `rm` removed the
/// container while it ran, and `rm -f` did not end it. It is found by its
/// `/proc/PID/net` now, which needs no such right.
#[test]
fn rm_without_cap_sys_ptrace_still_sees_another_users_process() {
    let mut env = Env::new("ptrace");
    env.network("ptrace", "10.201.0.0/24");
    env.ok(&["run", "-d", "--net", "ptrace", "--name", "pt0"]);
    let mut nobody = nobody_inside(&env.netns_dir().join("pt0"));
    let run = |args: &[&str]| {
        let mut command = env.command(args);
        without_cap_sys_ptrace(&mut command);
        command.output().expect("runs ipvlan")
    };
    let out = run(&["rm", "pt0"]);
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (
            Some(1),
            format!(
                "ipvlan: rm pt0: container pt0 still has processes running (pids {}); stop them or use rm -f\n",
                nobody.id()
            )
        )
    );
    env.assert_listed(["pt0", "ptrace", "10.201.0.2/24"]);
    let out = run(&["rm", "-f", "pt0"]);
    assert_eq!(
        (out.status.code(), text(&out.stderr)),
        (Some(0), String::new())
    );
    assert_eq!(killed_by(&mut nobody), Some(libc::SIGKILL));
    assert!(env.containers().is_empty());
}

/// Where `ipvlan` cannot see every process, it cannot tell a container
/// empty: under `hidepid=invisible,gid=N` without CAP_SYS_PTRACE or that
/// group, another user's process is not even listed, and a plain `rm`
/// removed the container it ran in. Refused now, saying why, and nothing
/// changes; `rm -f` removes it, and says that what it could not see was
/// not ended.
#[test]
fn what_ipvlan_cannot_see_is_not_taken_for_nothing() {
    let mut env = Env::new("hidepid");
    env.network("hidepid", "10.202.0.0/24");
    env.ok(&["run", "-d", "--net", "hidepid", "--name", "hp0"]);
    let mut nobody = nobody_inside(&env.netns_dir().join("hp0"));
    let hidden = |rm: &str| {
        let mut command = Command::new("unshare");
        command
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount -t proc -o hidepid=invisible,gid=4242 proc /proc || exit 99
                 \"$BIN\" {rm} hp0; echo \"rc=$?\""
            ))
            .env("BIN", binary())
            .stdin(Stdio::null());
        env.environment(&mut command);
        without_cap_sys_ptrace(&mut command);
        let out = command.output().expect("runs unshare");
        (text(&out.stdout), text(&out.stderr))
    };
    let why = "/proc is mounted with hidepid=invisible, which hides the processes this one may not trace, and it lacks CAP_SYS_PTRACE";
    assert_eq!(
        hidden("rm"),
        (
            "rc=1\n".to_string(),
            format!("ipvlan: rm hp0: cannot tell whether container hp0 still has processes running: {why}; rm -f removes it anyway, ending only the processes it can see\n")
        )
    );
    env.assert_listed(["hp0", "hidepid", "10.202.0.2/24"]);
    assert_eq!(nobody.0.try_wait().expect("waits"), None);
    assert_eq!(
        hidden("rm -f"),
        (
            "hp0\nrc=0\n".to_string(),
            format!("ipvlan: warning: processes of container hp0 that ipvlan cannot see were not ended ({why}): any such runs on, in its namespace unnamed\n")
        )
    );
    assert!(env.containers().is_empty());
    // As said: it runs on.
    assert_eq!(nobody.0.try_wait().expect("waits"), None);
    nobody.0.kill().expect("kills");
    assert_eq!(killed_by(&mut nobody), Some(libc::SIGKILL));
}

/// A namespace another tool made and routes itself (`ip netns add`, a
/// veth, `ip route add default`), attached by path to a routed network:
/// the kernel refused our default route as a duplicate of theirs (metric
/// 0 for IPv4, 1024 for IPv6, both) and the connect failed ("File
/// exists"). Ours sits at the next free metric now, theirs stays the
/// route taken, and ours goes with its link on disconnect.
#[test]
fn a_namespace_routed_by_another_tool_keeps_its_default_route() {
    let mut env = Env::new("theirs");
    env.ok(&[
        "network",
        "create",
        "-o",
        "ipvlan_mode=l3",
        "--subnet",
        "10.204.0.0/24",
        "--ipv6",
        "--subnet",
        "fd00:204::/64",
        "theirs",
    ]);
    env.networks.push("theirs".to_string());
    let ns = "theirs0";
    let _ = vm_support::ip_ok(&["netns", "del", ns]);
    for args in [
        &["netns", "add", ns][..],
        &[
            "link", "add", "th0", "type", "veth", "peer", "name", "th1", "netns", ns,
        ],
        &["-n", ns, "addr", "add", "10.99.0.2/24", "dev", "th1"],
        &[
            "-n",
            ns,
            "addr",
            "add",
            "fd00:99::2/64",
            "dev",
            "th1",
            "nodad",
        ],
        &["-n", ns, "link", "set", "th1", "up"],
        &["-n", ns, "route", "add", "default", "via", "10.99.0.1"],
        &[
            "-n",
            ns,
            "-6",
            "route",
            "add",
            "default",
            "via",
            "fd00:99::1",
        ],
    ] {
        assert!(vm_support::ip_ok(args), "ip {args:?}");
    }
    // (dev, metric) of each default route, in the kernel's order.
    let defaults = |family: &str| -> Vec<(String, u64)> {
        let routes = vm_support::ip_json(&["-n", ns, family, "route", "show", "default"]);
        routes
            .as_array()
            .unwrap_or(&[])
            .iter()
            .map(|route| {
                let dev = route.get("dev").and_then(Value::as_str).unwrap_or("");
                let metric = route.get("metric").and_then(Value::as_u64).unwrap_or(0);
                (dev.to_string(), metric)
            })
            .collect()
    };
    let theirs = |metric: u64| ("th1".to_string(), metric);
    let ours = |metric: u64| ("eth0".to_string(), metric);
    env.ok(&["network", "connect", "theirs", "/run/netns/theirs0"]);
    assert_eq!(defaults("-4"), [theirs(0), ours(1)]);
    assert_eq!(defaults("-6"), [theirs(1024), ours(1025)]);
    let taken = vm_support::ip(&["-n", ns, "route", "get", "192.0.2.1"]);
    assert!(taken.contains("dev th1"), "{taken}");
    env.ok(&["network", "disconnect", "theirs", "/run/netns/theirs0"]);
    assert_eq!(defaults("-4"), [theirs(0)]);
    assert_eq!(defaults("-6"), [theirs(1024)]);
    assert!(vm_support::ip_ok(&["netns", "del", ns]));
}

/// An `l2` network whose gateway (given, or the subnet's first address)
/// is the host's own address on the parent, the host routing for the LAN
/// it shares: its containers cannot reach the host's addresses on their
/// parent, so their default route leads nowhere. Made, with a warning
/// saying so; before, silently. Not where the gateway is another address,
/// nor for `l3`, which routes through the link itself.
#[test]
fn a_gateway_that_is_the_hosts_own_address_is_warned_of() {
    let env = Env::new("hostgw");
    let _ = vm_support::ip_ok(&["link", "del", "kg1"]);
    for args in [
        &["link", "add", "kg1", "type", "dummy"][..],
        &["addr", "add", "10.205.0.1/24", "dev", "kg1"],
        &["link", "set", "kg1", "up"],
    ] {
        assert!(vm_support::ip_ok(args), "ip {args:?}");
    }
    let create = |name: &str, extra: &[&str]| {
        let mut args = vec![
            "network",
            "create",
            "--subnet",
            "10.205.0.0/24",
            "-o",
            "parent=kg1",
        ];
        args.extend_from_slice(extra);
        args.push(name);
        let out = env.run(&args);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stderr)
    };
    assert_eq!(
        create("hg1", &[]),
        "ipvlan: warning: gateway 10.205.0.1 of subnet 10.205.0.0/24 is the host's own address on kg1: containers of an l2 network cannot reach the host's addresses on their parent, so their default route through it leads nowhere; give --gateway the LAN's router\n"
    );
    env.ok(&["network", "rm", "hg1"]);
    assert_eq!(create("hg2", &["--gateway", "10.205.0.254"]), "");
    env.ok(&["network", "rm", "hg2"]);
    assert_eq!(create("hg3", &["-o", "ipvlan_mode=l3"]), "");
    env.ok(&["network", "rm", "hg3"]);
    assert!(vm_support::ip_ok(&["link", "del", "kg1"]));
}

/// A parent ipvlan did not make (an admin's dummy), gone since the network
/// was created: an attach says so, and does not send the user to
/// `restore`, which only reports such a parent missing. Before, the
/// message said "run `ipvlan restore` to re-create parents we own".
#[test]
fn a_missing_parent_we_did_not_make_is_not_sent_to_restore() {
    let mut env = Env::new("theirparent");
    assert!(vm_support::ip_ok(&["link", "add", "tp0", "type", "dummy"]));
    assert!(vm_support::ip_ok(&["link", "set", "tp0", "up"]));
    env.ok(&create_on("parent=tp0", "tpn", "192.168.93.0/24"));
    env.networks.push("tpn".to_string());
    assert!(vm_support::ip_ok(&["link", "del", "tp0"]));
    let output = env.run(&["run", "-d", "--net", "tpn", "--name", "tp1"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(125), "{stderr}");
    assert!(
        stderr.contains(
            "parent interface tp0 of network tpn does not exist; ipvlan did not make it (it was there when the network was created)"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("restore"), "{stderr}");
    assert!(env.containers().is_empty());
    // `restore` indeed leaves it missing.
    let restore = env.run(&["restore"]);
    assert!(
        vm_support::link(None, "tp0").is_none(),
        "{}",
        text(&restore.stdout)
    );
}

/// A `run` that fails, and whose undoing fails too (here its view's
/// removal, forced), says what it left and that `restore` finishes it;
/// `restore` then does. Before, the undo's failure was dropped: the
/// record stayed `creating`, and `ps` and the next `run --name` of it
/// called it an interrupted run, with nothing said of why.
#[test]
fn a_run_whose_undoing_fails_says_what_it_left_for_restore() {
    let mut env = Env::new("undofail");
    env.network("undofail", "192.168.61.0/24");
    // Its attach refused (a read-only /proc/sys), then its undoing.
    let out = env.shell(
        "mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys || exit 99
         IPVLAN_FAULT_FORCE='container: view removal refused' \
           \"$BIN\" run -d --net undofail --name uf1 2>&1; echo \"rc=$?\"",
    );
    let said = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{said}{}", text(&out.stderr));
    assert!(said.ends_with("\nrc=125\n"), "{said}");
    assert!(
        said.contains("/proc/sys is read-only here"),
        "the run's own failure first: {said}"
    );
    // (The errno's text is the C library's: musl's, in the guest.)
    assert!(
        said.contains(
            "; container uf1 was not taken down whole (removing the view of container uf1: "
        ) && said.contains("(os error 5)): `ipvlan restore` finishes it\n"),
        "{said}"
    );
    // Left as said: its record, which holds the name until restore.
    assert!(common::present(&common::container_record(
        &env.state_dir(),
        "uf1"
    )));
    let again = env.run(&["run", "-d", "--net", "undofail", "--name", "uf1"]);
    assert_eq!(again.status.code(), Some(125));
    env.ok(&["restore"]);
    assert!(env.containers().is_empty());
    assert!(!env.netns_dir().join("uf1").exists());
    assert!(!env.etc_netns_dir.join("uf1").exists());
    env.ok(&["run", "-d", "--net", "undofail", "--name", "uf1"]);
    env.assert_listed(["uf1", "undofail", "192.168.61.2/24"]);
}
