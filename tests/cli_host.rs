//! Commands that work on any kernel, run inside a private mount and network
//! namespace (`unshare -m -n`) with scratch state, netns and /etc/netns
//! directories, so the host is never touched: exec's exit codes, run's
//! rollback, not-found errors, where the state lives, namespaces that are
//! not ours, and hosts without `/etc/hosts`.

mod common;
use common::{TempDir, HIDE_ETC_HOSTS};

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ipvlan::driver::{Config, Manager};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_ipvlan");

/// A scratch directory, removed when the test ends, pass or fail. Made
/// only once the privilege check passed: an unprivileged run leaves
/// nothing behind.
fn scratch_dir(tag: &str) -> TempDir {
    common::privilege::require_root();
    TempDir::new(&format!("host-{tag}"))
}

/// Runs `script` (with `$BIN` and `$T`, a scratch directory) in a private
/// mount and network namespace, ipvlan's directories all under `$T`.
fn isolated(script: &str, scratch: &Path) -> Output {
    isolated_in(script, scratch, &scratch.join("netns"))
}

/// [`isolated`] with `IPVLAN_NETNS_DIR` set to `netns_dir`.
fn isolated_in(script: &str, scratch: &Path, netns_dir: &Path) -> Output {
    isolated_command(script, scratch, netns_dir)
        .output()
        .expect("unshare (util-linux) is needed")
}

/// The command [`isolated_in`] runs.
fn isolated_command(script: &str, scratch: &Path, netns_dir: &Path) -> Command {
    use std::os::unix::process::CommandExt;
    common::privilege::require_root();
    let mut command = Command::new("unshare");
    // Every signal at its default, whatever the test runner was started
    // with (`nohup` ignores SIGHUP, a shell's background job SIGINT and
    // SIGQUIT): a shell cannot trap a signal ignored when it started, and
    // ipvlan rightly passes on no signal it was started ignoring, so the
    // signal tests would measure their runner instead.
    // SAFETY: signal(2) is async-signal-safe; nothing else runs between
    // fork and exec. Signals that cannot be set (SIGKILL, SIGSTOP, the C
    // library's own) are left as they are.
    unsafe {
        command.pre_exec(|| {
            for signal in 1..=libc::SIGRTMAX() {
                libc::signal(signal, libc::SIG_DFL);
            }
            Ok(())
        });
    }
    command
        .args(["-m", "-n", "--propagation", "private", "sh", "-c", script])
        .env("BIN", BIN)
        .env("T", scratch)
        .env("IPVLAN_STATE_DIR", scratch.join("state"))
        .env("IPVLAN_NETNS_DIR", netns_dir)
        .env("IPVLAN_ETC_NETNS_DIR", scratch.join("etc-netns"));
    command
}

/// Runs `script` as [`isolated`] does, with `/run` a private tmpfs (so
/// `ip netns add` leaves nothing on the host), `IPVLAN_NETNS_DIR` at
/// `/run/netns` where `ip netns` looks, and the containers `ours` made
/// first as `ipvlan run` makes them (namespace and record; this kernel
/// cannot attach them to an ipvlan network). Their mounts go with the
/// scratch thread's mount namespace.
fn with_containers(ours: &[&str], script: &str, scratch: &Path) -> Output {
    with_containers_stdin(ours, script, scratch, Stdio::null())
}

/// [`with_containers`], the script's stdin `stdin`.
fn with_containers_stdin(
    ours: &[&str],
    script: &str,
    scratch: &Path,
    stdin: impl Into<Stdio> + Send,
) -> Output {
    common::privilege::require_root();
    let netns_dir = Path::new("/run/netns");
    ipvlan::netns::run_in_new_with_private_dir("/run", || {
        let manager = Manager::open(Config {
            state_dir: scratch.join("state"),
            netns_dir: netns_dir.to_path_buf(),
            etc_netns_dir: scratch.join("etc-netns"),
        })
        .unwrap();
        for name in ours {
            manager.create_container(Some(name)).unwrap();
        }
        isolated_command(script, scratch, netns_dir)
            .stdin(stdin)
            .output()
            .expect("unshare (util-linux) is needed")
    })
    .expect("a private /run")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn exec_exits_with_the_commands_status_or_docker_codes() {
    let scratch = scratch_dir("exec");
    let output = with_containers(
        &["c1"],
        "set -e\n\
         echo 'echo not run' > \"$T/plain\"\n\
         chmod 0644 \"$T/plain\"\n\
         set +e\n\
         for cmd in \"sh -c 'exit 3'\" no-such-command \"$T/plain\" \"sh -c 'kill -TERM \\$\\$'\" true; do\n\
           eval \"\\\"\\$BIN\\\" exec c1 $cmd\"; echo \"rc=$?\"\n\
         done\n\
         \"$BIN\" exec c1 sh -c 'readlink /proc/self/ns/net' > \"$T/inside\"\n\
         readlink /proc/self/ns/net > \"$T/outside\"\n\
         \"$BIN\" exec -i c1 cat < /dev/null; echo \"rc=$?\"\n\
         \"$BIN\" exec nope true; echo \"rc=$?\"\n\
         \"$BIN\" rm c1; echo \"rc=$?\"\n\
         echo \"left: $(ls /run/netns | grep -x c1)\"",
        &scratch,
    );
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    let codes: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("rc="))
        .collect();
    assert_eq!(
        codes,
        ["rc=3", "rc=127", "rc=126", "rc=143", "rc=0", "rc=0", "rc=125", "rc=0"],
        "{stdout}{stderr}"
    );
    assert!(
        stderr.contains("ipvlan: exec no-such-command: executable file not found"),
        "{stderr}"
    );
    // EACCES from execve is about the file, not about our privileges.
    let plain = scratch.join("plain");
    assert!(
        stderr.contains(&format!(
            "ipvlan: exec {}: Permission denied\n",
            plain.display()
        )) && !stderr.contains("CAP_NET_ADMIN"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ipvlan: exec nope: No such container: nope"),
        "{stderr}"
    );
    assert!(
        stdout.lines().any(|line| line == "c1"),
        "rm prints the name: {stdout}"
    );
    assert!(
        stdout.ends_with("rc=0\nleft: \n"),
        "rm left the namespace: {stdout}"
    );
    let inside = std::fs::read_to_string(scratch.join("inside")).unwrap();
    let outside = std::fs::read_to_string(scratch.join("outside")).unwrap();
    assert!(
        inside.starts_with("net:[") && inside != outside,
        "{inside} vs {outside}"
    );
}

/// A command started without a `PATH` gets Docker's (an init system often
/// starts us without one): before, it had none, and was looked up in the
/// C library's default, which has no `sbin` (no `ip`, under musl).
#[test]
fn a_command_started_without_a_path_gets_dockers() {
    let scratch = scratch_dir("exec-path");
    let output = with_containers(
        &["c1"],
        "env -u PATH \"$BIN\" exec c1 /usr/bin/env; echo \"rc=$?\"\n\
         PATH=/opt/x:/bin \"$BIN\" exec c1 /usr/bin/env; echo \"rc=$?\"",
        &scratch,
    );
    let stdout = text(&output.stdout);
    let paths: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("PATH=") || line.starts_with("rc="))
        .collect();
    assert_eq!(
        paths,
        [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "rc=0",
            "PATH=/opt/x:/bin",
            "rc=0"
        ],
        "{stdout}{}",
        text(&output.stderr)
    );
}

/// A command starts with every signal at its default, as a container's
/// processes do, whatever its caller ignored (`trap '' HUP USR2`, as
/// `nohup` or a shell's `&` ignore signals). Before, an ignored signal
/// stayed ignored in the command (an ignored disposition survives exec).
#[test]
fn a_command_starts_with_no_signal_ignored() {
    let scratch = scratch_dir("exec-sigign");
    let output = with_containers(
        &["c1"],
        "trap '' HUP USR2
         \"$BIN\" exec c1 grep SigIgn /proc/self/status; echo \"rc=$?\"",
        &scratch,
    );
    let stdout = text(&output.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        ["SigIgn:\t0000000000000000", "rc=0"],
        "{stdout}{}",
        text(&output.stderr)
    );
}

/// A signal the command sends its parent (`kill -USR1 $PPID`, a daemon
/// saying it is ready) is not passed back to it: before, it came back and
/// ended the command (SIGUSR1, 138). One another process sends still is:
/// the command, which traps it, ends with its own status (7), where an
/// `exec` ended by the signal itself would say 138 and leave the command.
#[test]
fn a_signal_the_command_sends_its_parent_is_not_passed_back_to_it() {
    let scratch = scratch_dir("exec-echo");
    let output = with_containers(
        &["c1"],
        "\"$BIN\" exec c1 sh -c 'kill -USR1 $PPID; kill -TERM $PPID; sleep 0.5; exit 5'; echo \"rc=$?\"\n\
         \"$BIN\" exec c1 sh -c 'sleep 5 & s=$!; trap \"kill $s; exit 7\" USR1; : > \"$0\"; wait $s; exit 5' \"$T/ready\" &\n\
         exec=$!\n\
         while [ ! -e \"$T/ready\" ]; do kill -0 $exec || break; sleep 0.05; done\n\
         kill -USR1 $exec; wait $exec; echo \"rc=$?\"",
        &scratch,
    );
    let stdout = text(&output.stdout);
    let codes: Vec<&str> = stdout.lines().filter(|l| l.starts_with("rc=")).collect();
    assert_eq!(codes, ["rc=5", "rc=7"], "{stdout}{}", text(&output.stderr));
}

/// An `exec` killed (SIGKILL) while its command is stopped leaves the
/// command as its own end would have, had it been the command's parent:
/// the command's process group, orphaned, gets `SIGHUP` and `SIGCONT` from
/// the kernel, and the command ends. `setsid` makes `exec` lead its own
/// session and group. Its command is the child of a keeper process: when
/// the keeper outlived `exec`, the group had a parent in the session still
/// (the keeper) and the command stayed stopped for good.
#[test]
fn a_command_stopped_when_exec_is_killed_is_woken_up_as_an_orphan() {
    let scratch = scratch_dir("orphan");
    let output = with_containers(
        &["orphan"],
        "setsid \"$BIN\" exec orphan sh -c 'echo $$ > \"$T/command\"; kill -STOP $$; sleep 1000' &\n\
         exec_pid=$!\n\
         state() { awk '{print $3}' \"/proc/$1/stat\" 2>/dev/null; }\n\
         i=0\n\
         until [ -s \"$T/command\" ] && [ \"$(state \"$(cat \"$T/command\")\")\" = T ]; do\n\
           i=$((i + 1)); [ $i -gt 500 ] && { echo never stopped; exit 1; }; sleep 0.01\n\
         done\n\
         command=$(cat \"$T/command\")\n\
         kill -KILL $exec_pid\n\
         i=0\n\
         while [ \"$(state $command)\" = T ] || [ \"$(state $command)\" = S ]; do\n\
           i=$((i + 1)); [ $i -gt 500 ] && break; sleep 0.01\n\
         done\n\
         echo \"command: $(state $command)\"\n\
         \"$BIN\" rm -f orphan > /dev/null; echo \"rm=$?\"",
        &scratch,
    );
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert!(
        stdout == "command: \nrm=0\n" || stdout == "command: Z\nrm=0\n",
        "the command ended once exec was killed: {stdout}{stderr}"
    );
}

#[test]
fn exec_passes_on_the_signals_a_process_sends_it_and_reports_the_commands_status() {
    let scratch = scratch_dir("signals");
    // A process the command starts (a subshell: not the command, whose
    // own signals to its parent are not passed back) sends ipvlan (its
    // parent's keeper) SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1 and
    // SIGUSR2, as a supervisor would, and the command counts
    // those that reach it through its traps; it exits 7 once all six have,
    // 10 + the count if they have not after about 5 s. It also records
    // which signals it starts with ignored (SigIgn). Repeated: a signal
    // still pending when ipvlan puts its mask back would kill it only now
    // and then. Before, ipvlan ignored SIGINT and SIGQUIT and died of the
    // others, leaving the command running.
    let output = with_containers(
        &["sig"],
        "set -e\n\
         c=sig\n\
         set +e\n\
         grep SigIgn /proc/self/status > \"$T/outer\"\n\
         for i in $(seq 20); do\n\
           \"$BIN\" exec $c sh -c 'grep SigIgn /proc/self/status > \"$T/inner\"\n\
             n=0\n\
             trap \"n=\\$((n + 1))\" HUP INT QUIT TERM USR1 USR2\n\
             for s in HUP INT QUIT TERM USR1 USR2; do (kill -$s $PPID); done\n\
             i=0\n\
             while [ $n -lt 6 ] && [ $i -lt 500 ]; do sleep 0.01; i=$((i + 1)); done\n\
             [ $n -eq 6 ] && exit 7\n\
             exit $((10 + n))'\n\
           echo \"rc=$?\"\n\
         done | sort | uniq -c | tr -s ' '\n\
         \"$BIN\" rm $c > /dev/null; echo \"rm=$?\"",
        &scratch,
    );
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert_eq!(stdout, " 20 rc=7\nrm=0\n", "{stderr}");
    let ignored = |file: &str| {
        let line = std::fs::read_to_string(scratch.join(file)).unwrap();
        let hex = line.trim().trim_start_matches("SigIgn:").trim();
        u64::from_str_radix(hex, 16).unwrap()
    };
    let int_and_quit = (1 << (libc::SIGINT - 1)) | (1 << (libc::SIGQUIT - 1));
    assert_eq!(ignored("outer") & int_and_quit, 0, "precondition");
    assert_eq!(
        ignored("inner") & int_and_quit,
        0,
        "the command must get the default dispositions"
    );
}

#[test]
fn exec_stopped_by_a_supervisor_stops_its_command_and_exits_with_its_status() {
    let scratch = scratch_dir("sigterm");
    // SIGTERM to ipvlan alone, as a supervisor stopping a service sends
    // it. The command must get it (its default action ends it: 143) and
    // ipvlan exit with that status once it has, leaving no command behind.
    // Before, ipvlan died of the signal at once and the command kept
    // running in the container ("left-running").
    let output = with_containers(
        &["stop"],
        "\"$BIN\" exec stop sh -c 'echo $$ > \"$T/pid\"; exec sleep 1000' > /dev/null 2>&1 &\n\
         p=$!\n\
         while [ ! -s \"$T/pid\" ]; do sleep 0.01; done\n\
         kill -TERM $p\n\
         wait $p; echo \"rc=$?\"\n\
         kill $(cat \"$T/pid\") 2> /dev/null && echo left-running\n\
         \"$BIN\" rm stop > /dev/null; echo \"rm=$?\"",
        &scratch,
    );
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert_eq!(stdout, "rc=143\nrm=0\n", "{stderr}");
}

/// Runs `script` as [`with_containers_stdin`] does, with the container
/// `name` and the slave of a new pty as its stdin; once the script has made
/// `$T/ready` (20 s at most), hands the pty's master to `act`, and keeps
/// what `act` returns until the script has ended.
fn on_a_pty_once_ready<T>(
    name: &str,
    script: &str,
    scratch: &Path,
    act: impl FnOnce(std::fs::File) -> T,
) -> Output {
    let (master, slave) = common::pty::open();
    let ready = scratch.join("ready");
    std::thread::scope(|scope| {
        let run = scope.spawn(|| with_containers_stdin(&[name], script, scratch, slave));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !ready.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(ready.exists(), "the command never started");
        let kept = act(std::fs::File::from(master));
        let output = run.join().unwrap();
        drop(kept);
        output
    })
}

#[test]
fn exec_leading_its_session_passes_a_hang_up_on_and_ends() {
    let scratch = scratch_dir("hangup");
    // ipvlan leads a session whose terminal is a pty (`setsid -c`, as
    // `ssh -t host ipvlan exec ...` or a getty makes it); the pty's master
    // is closed, a hang-up. The kernel then sends SIGHUP and SIGCONT to the
    // session's leader alone. Before, ipvlan took that SIGHUP for one the
    // command had too and waited on, the command running for ever.
    // (A command run with `&` gets /dev/null as stdin unless it is given
    // one: the pty is kept at 3 for it.)
    let script = "exec 3<&0\n\
         setsid -c -w \"$BIN\" exec hup sh -c 'echo $$ > \"$T/pid\"; exec sleep 1000' <&3 3<&- > /dev/null 2> \"$T/err\" &\n\
         p=$!\n\
         i=0\n\
         while [ ! -s \"$T/pid\" ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i + 1)); done\n\
         [ -s \"$T/pid\" ] && echo started\n\
         : > \"$T/ready\"\n\
         i=0\n\
         while kill -0 $p 2> /dev/null && [ $i -lt 500 ]; do sleep 0.01; i=$((i + 1)); done\n\
         kill -0 $p 2> /dev/null && echo ipvlan-running\n\
         kill -0 $(cat \"$T/pid\") 2> /dev/null && echo command-running\n\
         kill -9 $p $(cat \"$T/pid\") 2> /dev/null\n\
         \"$BIN\" rm -f hup > /dev/null; echo \"rm=$?\"";
    // The hang-up: the master closed at once.
    let output = on_a_pty_once_ready("hup", script, &scratch, drop);
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    let err = std::fs::read_to_string(scratch.join("err")).unwrap_or_default();
    assert_eq!(stdout, "started\nrm=0\n", "{stderr} {err}");
}

#[test]
fn exec_passes_a_ctrl_c_on_to_a_command_in_a_process_group_of_its_own() {
    let scratch = scratch_dir("ctrl-c");
    // ipvlan in the foreground of a pty (its session's leader, `setsid
    // -c`); its command is `timeout`, which moves to a process group of
    // its own, so a Ctrl-C typed on the pty reaches ipvlan alone. Before,
    // ipvlan took it for one the command had too and dropped it: the
    // command ran on until its timeout (124), where `docker run` passes it
    // on (the trap's 5, through `timeout`).
    let script = "exec 3<&0\n\
         setsid -c -w \"$BIN\" exec intr timeout 20 sh -c 'trap \"exit 5\" INT; echo $$ > \"$T/pid\"; while :; do sleep 0.05; done' <&3 3<&- > /dev/null 2> \"$T/err\" &\n\
         p=$!\n\
         i=0\n\
         while [ ! -s \"$T/pid\" ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i + 1)); done\n\
         [ -s \"$T/pid\" ] && echo started\n\
         : > \"$T/ready\"\n\
         wait $p; echo \"rc=$?\"\n\
         \"$BIN\" rm -f intr > /dev/null; echo \"rm=$?\"";
    let output = on_a_pty_once_ready("intr", script, &scratch, |mut master| {
        // Ctrl-C, as the terminal's line discipline reads it (ISIG); the
        // master kept open (closed, it would hang the session up).
        std::io::Write::write_all(&mut master, b"\x03").unwrap();
        master
    });
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    let err = std::fs::read_to_string(scratch.join("err")).unwrap_or_default();
    assert_eq!(stdout, "started\nrc=5\nrm=0\n", "{stderr} {err}");
}

#[test]
fn exec_shows_the_containers_own_links_under_sys() {
    let scratch = scratch_dir("sysfs");
    // A command in a container sees a sysfs of the container's network
    // namespace, as under `ip netns exec` (and Docker): its links under
    // /sys/class/net. Before, it saw the host's (its eth0's MTU, state and
    // index were the host eth0's), also with no network attached.
    let output = with_containers(
        &["sysv"],
        "ip -n sysv link add v0 type veth peer name v1\n\
         \"$BIN\" exec sysv ls /sys/class/net\n\
         \"$BIN\" exec sysv cat /sys/class/net/v0/ifindex\n\
         ip -n sysv -o link show v0 | cut -d: -f1\n\
         \"$BIN\" rm sysv > /dev/null; echo \"rm=$?\"",
        &scratch,
    );
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 6, "{stdout} {stderr}");
    assert_eq!(lines[..3], ["lo", "v0", "v1"], "{stderr}");
    assert_eq!(lines[3], lines[4], "v0's index, by sysfs and by netlink");
    assert_eq!(lines[5], "rm=0", "{stderr}");
}

#[test]
fn exec_reports_the_commands_status_to_a_caller_that_ignores_sigchld() {
    let scratch = scratch_dir("sigchld");
    // ipvlan starts with SIGCHLD ignored (`env --ignore-signal`, a
    // disposition that survives `execve`), as a child of a careless
    // supervisor might. The kernel would then reap the command itself, and
    // `waitpid` fail with ECHILD: before, ipvlan reported an error for a
    // command that exited 7.
    let output = with_containers(
        &["chld"],
        "env --ignore-signal=CHLD grep SigIgn /proc/self/status > \"$T/ignored\"\n\
         exec env --ignore-signal=CHLD \"$BIN\" exec chld sh -c 'exit 7'",
        &scratch,
    );
    let line = std::fs::read_to_string(scratch.join("ignored")).unwrap();
    let ignored =
        u64::from_str_radix(line.trim().trim_start_matches("SigIgn:").trim(), 16).unwrap();
    assert_ne!(
        ignored & (1 << (libc::SIGCHLD - 1)),
        0,
        "precondition: {line}"
    );
    assert_eq!(output.status.code(), Some(7), "{}", text(&output.stderr));
}

#[test]
fn rm_and_exec_refuse_a_namespace_that_is_not_our_container() {
    let scratch = scratch_dir("foreign");
    std::fs::write(scratch.join("admin-hosts"), "10.9.9.9\tgateway\n").unwrap();
    // An admin's namespace with a process inside and an /etc/netns entry,
    // none of it made by ipvlan: `rm` (even -f) and `exec` say what
    // `docker rm` says and leave all of it as it was; `rm -f`, as `docker
    // rm -f`, without failing (there is no container to remove).
    let output = with_containers(
        &[],
        "set -e\n\
         ip netns add vpn\n\
         mkdir \"$IPVLAN_ETC_NETNS_DIR\" \"$IPVLAN_ETC_NETNS_DIR/vpn\"\n\
         ln -s \"$T/admin-hosts\" \"$IPVLAN_ETC_NETNS_DIR/vpn/hosts\"\n\
         ip netns exec vpn sleep 1000 &\n\
         holder=$!\n\
         until [ -n \"$(ip netns pids vpn)\" ]; do sleep 0.05; done\n\
         set +e\n\
         \"$BIN\" rm -f vpn; echo \"rc=$?\"\n\
         \"$BIN\" rm vpn; echo \"rc=$?\"\n\
         \"$BIN\" exec vpn true; echo \"rc=$?\"\n\
         echo \"ps: $(\"$BIN\" ps -q)\"\n\
         kill -0 $holder && echo \"alive: $(ip netns pids vpn)\" | sed \"s/$holder/holder/\"\n\
         echo \"namespaces: $(ls /run/netns)\"\n\
         echo \"view: $(ls -A \"$IPVLAN_ETC_NETNS_DIR/vpn\") -> $(readlink \"$IPVLAN_ETC_NETNS_DIR/vpn/hosts\")\"\n\
         kill $holder",
        &scratch,
    );
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    assert_eq!(
        stdout,
        format!(
            "rc=0\nrc=1\nrc=125\nps: \nalive: holder\nnamespaces: vpn\nview: hosts -> {}\n",
            scratch.join("admin-hosts").display()
        ),
        "{stderr}"
    );
    assert_eq!(
        stderr,
        "ipvlan: rm vpn: No such container: vpn\n\
         ipvlan: rm vpn: No such container: vpn\n\
         ipvlan: exec vpn: No such container: vpn\n"
    );
    assert_eq!(
        std::fs::read_to_string(scratch.join("admin-hosts")).unwrap(),
        "10.9.9.9\tgateway\n"
    );
}

#[test]
fn exec_shows_the_containers_names_on_a_host_without_etc_hosts() {
    let scratch = scratch_dir("nohosts");
    std::fs::write(
        scratch.join("view"),
        "127.0.0.1\tlocalhost\n10.1.2.3\tpeer\n",
    )
    .unwrap();
    // The container's /etc/netns view as `ip netns exec` sees it; a host
    // without /etc/hosts (missing, then a dangling symlink).
    let output = with_containers(
        &["c1"],
        &format!(
            "set -e\n\
             mkdir -p \"$IPVLAN_ETC_NETNS_DIR/c1\"\n\
             ln -s \"$T/view\" \"$IPVLAN_ETC_NETNS_DIR/c1/hosts\"\n\
             {HIDE_ETC_HOSTS}\
             [ ! -e /etc/hosts ]\n\
             ls -A /etc > \"$T/outside\"\n\
             set +e\n\
             \"$BIN\" exec c1 getent hosts peer; echo \"rc=$?\"\n\
             \"$BIN\" exec c1 ls -A /etc > \"$T/inside\"; echo \"rc=$?\"\n\
             \"$BIN\" exec c1 test -r /etc/passwd; echo \"passwd=$?\"\n\
             \"$BIN\" exec c1 sh -c 'touch /etc/made-inside 2> /dev/null || echo read-only'\n\
             ln -s /nonexistent/hosts /etc/hosts\n\
             \"$BIN\" exec c1 getent hosts peer; echo \"rc=$?\"\n\
             echo \"hosts: $(readlink /etc/hosts)\"\n\
             ls -A /etc > \"$T/after\""
        ),
        &scratch,
    );
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    let lines: Vec<String> = stdout
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        lines,
        [
            "10.1.2.3 peer",
            "rc=0",
            "rc=0",
            "passwd=0",
            "read-only",
            "10.1.2.3 peer",
            "rc=0",
            "hosts: /nonexistent/hosts"
        ],
        "{stdout}{stderr}"
    );
    assert_eq!(stderr, "");
    // Inside: the host's /etc, every entry, plus the view as /etc/hosts.
    let listing = |file: &str| -> Vec<String> {
        let text = std::fs::read_to_string(scratch.join(file)).unwrap();
        let mut names: Vec<String> = text.lines().map(str::to_string).collect();
        names.sort();
        names
    };
    let mut expected = listing("outside");
    assert!(expected.len() > 3 && !expected.iter().any(|n| n == "hosts"));
    expected.push("hosts".to_string());
    expected.sort();
    assert_eq!(listing("inside"), expected);
    // Nothing was created in the host's /etc but the test's own symlink.
    assert_eq!(listing("after"), expected);
}

#[test]
fn run_whose_attach_fails_exits_125_and_leaves_no_container() {
    let scratch = scratch_dir("run");
    let output = isolated(
        "\"$BIN\" run --net=missing --name=c1 true; echo \"rc=$?\"\n\
         \"$BIN\" run --net=missing -d sleep 100; echo \"rc=$?\"\n\
         ls -A \"$T/netns\" | wc -l\n\
         \"$BIN\" ps -q | wc -l",
        &scratch,
    );
    let stdout = text(&output.stdout);
    let stderr = text(&output.stderr);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, ["rc=125", "rc=125", "0", "0"], "{stdout}{stderr}");
    assert!(
        stderr.starts_with("ipvlan: run: connecting c1: network missing not found\n"),
        "{stderr}"
    );
}

#[test]
fn unknown_names_are_errors_with_exit_1() {
    let scratch = scratch_dir("unknown");
    let cases: &[(&str, &str, &str)] = &[
        (
            "network inspect nope",
            "[]\n",
            "ipvlan: network inspect: network nope not found\n",
        ),
        (
            "network rm nope",
            "",
            "ipvlan: network rm nope: network nope not found\n",
        ),
        ("rm nope", "", "ipvlan: rm nope: No such container: nope\n"),
        ("network disconnect nope c1", "", ""),
        ("network connect nope /proc/1/ns/net", "", ""),
    ];
    for (args, expected_stdout, expected_stderr) in cases {
        let output = isolated(&format!("exec \"$BIN\" {args}"), &scratch);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args}: {stderr}");
        assert_eq!(text(&output.stdout), *expected_stdout, "{args}");
        if expected_stderr.is_empty() {
            assert!(
                stderr.starts_with(&format!(
                    "ipvlan: {} ",
                    &args[..args.find(" nope").unwrap()]
                )) && stderr.contains("nope"),
                "{args}: {stderr}"
            );
        } else {
            assert_eq!(stderr, *expected_stderr, "{args}");
        }
    }
}

#[test]
fn empty_lists_print_only_their_headers() {
    let scratch = scratch_dir("lists");
    let output = isolated(
        "\"$BIN\" network ls && \"$BIN\" network ls -q && \"$BIN\" ps && \"$BIN\" ps -q",
        &scratch,
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert_eq!(
        text(&output.stdout),
        "NETWORK ID   NAME      DRIVER    SCOPE\nNAME      NETWORKS   ADDRESSES\n"
    );
}

#[test]
fn state_dir_flag_overrides_the_environment() {
    let scratch = scratch_dir("statedir");
    let from_env = scratch.join("from-env");
    let from_flag = scratch.join("from-flag");
    let run = |args: &[&str]| {
        let output = Command::new(BIN)
            .args(args)
            .env("IPVLAN_STATE_DIR", &from_env)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    };
    // A store in each, a network of its own in each.
    for (dir, network) in [(&from_flag, "in-flag"), (&from_env, "in-env")] {
        let store = ipvlan::store::StateDir::open(dir).unwrap();
        let state = store.lock().unwrap();
        state
            .put_network(&common::network(network, &["10.1.0.0/24"]))
            .unwrap();
        state.commit().unwrap();
    }
    let flag = ["--state-dir", from_flag.to_str().unwrap()];
    run(&[&flag[..], &["network", "inspect", "in-flag"]].concat());
    run(&["network", "inspect", "in-env"]);
    let mode = std::fs::metadata(&from_env).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn invalid_network_requests_exit_1_with_the_specified_texts_and_record_nothing() {
    let scratch = scratch_dir("invalid");
    let cases: &[(&str, &str)] = &[
        (
            "-o ipvlan_mode=L2 n1",
            "ipvlan: network create n1: requested ipvlan mode 'L2' is not valid, \
             'l2' mode is the ipvlan driver default\n",
        ),
        (
            "-o ipvlan_flag=Bridge n1",
            "ipvlan: network create n1: requested ipvlan flag 'Bridge' is not valid, \
             'bridge' is the ipvlan driver default\n",
        ),
        (
            "-o parent=lo n1",
            "ipvlan: network create n1: loopback interface is not a valid ipvlan parent link\n",
        ),
        (
            "-o foo=bar n1",
            "ipvlan: network create n1: unknown option 'foo': ",
        ),
        ("-o parent=v0.4095 n1", "ipvlan: network create n1: "),
        (
            "bad/name",
            "ipvlan: network create bad/name: invalid network name",
        ),
        (
            "--subnet 10.0.0.1/24 n1",
            "ipvlan: network create n1: invalid subnet 10.0.0.1/24",
        ),
        (
            "--subnet 10.0.0.0/24 --gateway 10.1.0.1 n1",
            "ipvlan: network create n1: ",
        ),
        // Before, made: every run on it then failed.
        (
            "--subnet 10.9.9.7/32 -o ipvlan_mode=l3 n1",
            "ipvlan: network create n1: subnet 10.9.9.7/32 has no address a container could get: \
             its network, broadcast, anycast, gateway, aux addresses and the host's own take them all\n",
        ),
        // Before, made: every run without --ip on it then failed.
        (
            "--subnet 10.9.0.0/24 --ip-range 10.9.0.1/32 n1",
            "ipvlan: network create n1: ip range 10.9.0.1/32 of subnet 10.9.0.0/24 has no address \
             a container could get: its network, broadcast, anycast, gateway, aux addresses and the \
             host's own take them all\n",
        ),
        // Before, made: no container could take an address of it.
        (
            "--subnet 239.1.0.0/16 n1",
            "ipvlan: network create n1: invalid subnet 239.1.0.0/16: it overlaps the multicast \
             block 224.0.0.0/4, which holds no addresses of hosts on a network\n",
        ),
    ];
    for (args, expected) in cases {
        let output = isolated(
            &format!(
                "ip link add v0 type veth peer name v1\n\
                 \"$BIN\" network create {args}\n\
                 rc=$?\n\
                 \"$BIN\" network ls -q\n\
                 exit $rc"
            ),
            &scratch,
        );
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args}: {stderr}");
        assert!(stderr.starts_with(expected), "{args}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args}: {stderr}");
        assert_eq!(
            text(&output.stdout),
            "",
            "{args}: printed an ID or a network was recorded"
        );
    }
}

/// Without root, each test that needs it fails with the same one line.
#[test]
fn without_root_every_privileged_test_fails_with_one_reason() {
    common::privilege::assert_unprivileged_run_fails_with_one_reason(
        "without_root_every_privileged_test_fails_with_one_reason",
    );
}

/// `ipvlan doctor` searches `CNI_PATH` as a runtime would pass it, and
/// tells a link to this program from another program named `ipvlan`. An
/// empty entry is no directory (before, it was the working directory).
#[test]
fn doctor_finds_the_cni_plugin_in_cni_path() {
    let scratch = scratch_dir("doctor-cni");
    let output = isolated(
        "mkdir -p \"$T/ours\" \"$T/theirs\" && ln -s \"$BIN\" \"$T/ours/ipvlan\" \
         && printf '#!/bin/sh\\n' > \"$T/theirs/ipvlan\" && chmod 755 \"$T/theirs/ipvlan\" \
         && cd \"$T/ours\" && CNI_PATH=\"$T/theirs::$T/ours\" exec \"$BIN\" doctor",
        &scratch,
    );
    let stdout = text(&output.stdout);
    let expected = format!(
        "ok   cni plugin: {t}/theirs/ipvlan: another program (the reference plugin?); \
         {t}/ours/ipvlan: this program (a runtime searching in this order runs the other one first)\n",
        t = scratch.display()
    );
    assert!(stdout.contains(&expected), "{stdout}");
}

/// A `run` waiting for the store's lock (another command holds it) is
/// still ended at once by a supervisor's `SIGTERM`: nothing of the
/// container is made yet, and its signals are held only once it has the
/// lock. Before, they were held from the start: the `SIGTERM` waited until
/// the lock was let go (an `ipvlan` stopped with Ctrl-Z held it for good).
#[test]
fn a_run_waiting_for_the_lock_is_ended_by_a_signal_at_once() {
    let scratch = scratch_dir("runlockwait");
    let output = isolated(
        "mkdir -p \"$IPVLAN_STATE_DIR\"\n\
         \"$BIN\" network ls > /dev/null\n\
         flock \"$IPVLAN_STATE_DIR/lock\" sh -c ': > \"$1\"; i=0; while [ ! -e \"$0\" ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done' \"$T/release\" \"$T/held\" &\n\
         holder=$!\n\
         until [ -e \"$T/held\" ]; do kill -0 $holder || break; sleep 0.05; done\n\
         \"$BIN\" run --net=n1 --name=w1 true &\n\
         run=$!\n\
         until grep -q '^73 ' /proc/$run/syscall 2>/dev/null; do kill -0 $run || break; sleep 0.05; done\n\
         kill -TERM $run\n\
         wait $run; echo \"rc=$?\"\n\
         kill -0 $holder && echo holder=waiting\n\
         [ -e \"$IPVLAN_NETNS_DIR/w1\" ] && echo namespace=made\n\
         : > \"$T/release\"\n\
         wait\n\
         \"$BIN\" ps -q",
        &scratch,
    );
    let stdout = text(&output.stdout);
    // Ended by the signal while the lock was still held (its holder
    // still waiting to be let go: it gives up by itself after some 20 s,
    // so a run that waits for the lock ends too, only later); nothing of
    // the container made.
    assert_eq!(
        stdout,
        "rc=143\nholder=waiting\n",
        "{}",
        text(&output.stderr)
    );
}

/// A store an older version wrote may hold a network named after
/// another's id (no version makes one now): `network inspect` (the name's
/// hint first) and `network rm` take the same network for it, the one of
/// that name. Before, `rm` took the first network whose name or id
/// matched: the other one.
#[test]
fn inspect_and_rm_take_the_same_network_for_a_name_that_is_an_id() {
    common::privilege::require_root();
    let dir = TempDir::new("cli-id-lookup");
    let state = dir.path().join("state");
    let (older, newer) = ("aa".repeat(32), "bb".repeat(32));
    let store = ipvlan::store::StateDir::open(&state).unwrap();
    {
        let locked = store.lock().unwrap();
        locked
            .put_network(&common::network_on_lo(&older, "first", "10.71.0.0/24"))
            .unwrap();
        locked
            .put_network(&common::network_on_lo(&newer, &older, "10.72.0.0/24"))
            .unwrap();
        locked.commit().unwrap();
    }
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .env("IPVLAN_STATE_DIR", &state)
            .output()
            .unwrap()
    };
    let inspected = run(&["network", "inspect", &older]);
    let inspected = ipvlan::json::parse(&String::from_utf8_lossy(&inspected.stdout)).unwrap();
    let id = inspected.as_array().unwrap()[0].get("Id").cloned();
    assert_eq!(
        id.as_ref().and_then(ipvlan::json::Value::as_str),
        Some(newer.as_str()),
        "inspect: the network of that name"
    );
    let removed = run(&["network", "rm", &older]);
    assert_eq!(removed.status.code(), Some(0), "{removed:?}");
    let left: Vec<String> = ipvlan::store::StateDir::open(&state)
        .unwrap()
        .networks()
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(left, [older], "rm: the network of that name too");
}

/// `ps` does not list a container an interrupted `run` left half made or
/// an interrupted `rm` half removed, but says so on stderr (their names
/// are taken), as `network ls` does of a half-created network. Before,
/// they were left out without a word.
#[test]
fn ps_warns_of_half_made_and_half_removed_containers() {
    let scratch = scratch_dir("ps-half");
    let output = with_containers(
        &["made", "gone", "whole"],
        r#"
        cd "$T/state/records/containers"
        sed -i 's/"state": "created"/"state": "creating"/' made.json
        sed -i 's/"state": "created"/"state": "removing"/' gone.json
        "$BIN" ps -q
        "#,
        scratch.path(),
    );
    assert!(output.status.success(), "{output:?}");
    assert_eq!(text(&output.stdout), "whole\n");
    assert_eq!(
        text(&output.stderr),
        "ipvlan: warning: container made is half made: its `run` was interrupted (`ipvlan restore` rolls it back)\n\
         ipvlan: warning: container gone is half removed: its `rm` was interrupted (`ipvlan restore` finishes it)\n"
    );
}

/// On a machine without a store (a fresh host; an init that runs
/// `ipvlan restore` at every boot whether ipvlan was used or not; a
/// runtime's CNI DEL on a node that never had an ADD), a command that only
/// reads, or that is refused for naming nothing of ours, makes nothing,
/// and works where the state directory cannot be made (its parent
/// read-only). Before, each made the store's layout first (eleven
/// entries), and with a read-only parent failed with "Read-only file
/// system". So with a state directory made ahead and empty (a unit's
/// `StateDirectory=`). A command that writes makes the store (a `run`
/// naming a network makes none either: no network can be found in no
/// store), and so does a CNI STATUS of our IPAM, which fails (code 50)
/// where it cannot be made rather than answer that an ADD would work.
#[test]
fn commands_that_find_no_store_make_none() {
    let scratch = scratch_dir("no-store");
    let output = isolated(
        r#"
        mkdir "$T/ro" "$T/ahead" && mount -o bind,ro "$T/ro" "$T/ro" || exit 1
        mkdir -m 0700 "$T/ahead/state"
        for state in "$T/state" "$T/ro/state" "$T/ahead/state"; do
            export IPVLAN_STATE_DIR="$state"
            echo "in ${state#$T/}"
            for c in "network ls -q" "ps -q" "network inspect n1" "network rm n1" \
                "rm c1" "rm -f c1" "exec c1 true" "network connect n1 c1" \
                "network disconnect n1 c1" "run --net n1 true" "restore"; do
                "$BIN" $c > "$T/out" 2> "$T/err"
                echo "$c: $? $(cat "$T/out" "$T/err" | tr '\n' ' ')"
            done
            echo '{"cniVersion":"1.1.0","name":"n1","type":"ipvlan","master":"eth0"}' |
                CNI_COMMAND=DEL CNI_CONTAINERID=abc CNI_NETNS=/nonexistent CNI_IFNAME=eth0 \
                CNI_PATH=/nonexistent "$BIN" > "$T/out" 2>&1
            echo "CNI DEL: $? $(cat "$T/out")"
            [ -e "$state/lock" ] && echo "store made" || echo "no store"
        done
        ls -A "$T/ahead/state"
        # Not even the empty directory of a fresh store.
        [ -e "$T/state" ] && echo "the fresh state directory was made"
        # STATUS of our IPAM makes the store, as the first ADD would, and
        # says so where it cannot be made.
        for state in "$T/state" "$T/ro/state"; do
            echo '{"cniVersion":"1.1.0","name":"n1","type":"ipvlan","master":"eth0","linkInContainer":true,"ipam":{"type":"ipvlan","subnet":"10.9.0.0/24"}}' |
                IPVLAN_STATE_DIR="$state" CNI_COMMAND=STATUS CNI_PATH=/nonexistent \
                "$BIN" > "$T/out" 2>&1
            echo "CNI STATUS: $? $(grep -o '"code": [0-9]*' "$T/out")"
            [ -e "$state/lock" ] && echo "store made" || echo "no store"
        done
        "#,
        &scratch,
    );
    let stdout = text(&output.stdout);
    let expected = |state: &str| {
        format!(
            "in {state}\n\
             network ls -q: 0 \n\
             ps -q: 0 \n\
             network inspect n1: 1 [] ipvlan: network inspect: network n1 not found \n\
             network rm n1: 1 ipvlan: network rm n1: network n1 not found \n\
             rm c1: 1 ipvlan: rm c1: No such container: c1 \n\
             rm -f c1: 0 ipvlan: rm c1: No such container: c1 \n\
             exec c1 true: 125 ipvlan: exec c1: No such container: c1 \n\
             network connect n1 c1: 1 ipvlan: network connect n1 c1: network n1 not found \n\
             network disconnect n1 c1: 1 ipvlan: network disconnect n1 c1: network n1 not found \n\
             run --net n1 true: 125 ipvlan: run: network n1 not found \n\
             restore: 0 restore: 0 parents re-created, 0 parents missing, 0 links re-created, 0 endpoints kept, 0 endpoints released, 0 interrupted operations repaired \n\
             CNI DEL: 0 \n\
             no store\n"
        )
    };
    assert_eq!(
        stdout,
        format!(
            "{}{}{}CNI STATUS: 0 \nstore made\nCNI STATUS: 1 \"code\": 50\nno store\n",
            expected("state"),
            expected("ro/state"),
            expected("ahead/state")
        ),
        "{}",
        text(&output.stderr)
    );
}
