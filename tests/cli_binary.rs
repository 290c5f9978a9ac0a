//! The built `ipvlan` binary: help, the error catalogue with exit codes, and
//! refusal without CAP_NET_ADMIN. Nothing here needs a kernel with ipvlan.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const BIN: &str = env!("CARGO_BIN_EXE_ipvlan");

/// A directory path unique to this test run, not created.
fn scratch_path(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    std::env::temp_dir().join(format!(
        "ipvlan-cli-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

fn ipvlan(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("IPVLAN_STATE_DIR")
        .output()
        .expect("runs the binary")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn has_net_admin() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let mask = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .expect("CapEff line");
    u64::from_str_radix(mask.trim(), 16).expect("hex mask") & (1 << 12) != 0
}

/// Runs the binary with no capabilities at all: through `setpriv` (util-linux)
/// when this process has them, directly when it has none to drop.
fn ipvlan_without_caps(args: &[&str], state_dir: &Path) -> Output {
    let mut command = if has_net_admin() {
        let mut command = Command::new("setpriv");
        command.args(["--inh-caps=-all", "--bounding-set=-all", "--", BIN]);
        command
    } else {
        Command::new(BIN)
    };
    command
        .env("IPVLAN_STATE_DIR", state_dir)
        .args(args)
        .output()
        .expect("setpriv (util-linux) is needed to drop CAP_NET_ADMIN")
}

#[test]
fn help_on_every_command_exits_0_and_lists_its_options() {
    let cases: &[(&[&str], &str, &[&str])] = &[
        (
            &[],
            "ipvlan [OPTIONS] COMMAND",
            &[
                "--state-dir",
                "--version",
                "network",
                "run",
                "exec",
                "ps",
                "rm",
                "restore",
                "doctor",
                "version",
            ],
        ),
        (
            &["network"],
            "ipvlan network COMMAND",
            &["create", "rm", "ls", "inspect", "connect", "disconnect"],
        ),
        (
            &["network", "create"],
            "ipvlan network create [OPTIONS] NETWORK",
            &[
                "--aux-address",
                "-d, --driver",
                "--gateway",
                "--internal",
                "--ip-range",
                "--ipv6",
                "-o, --opt",
                "--subnet",
            ],
        ),
        (
            &["network", "rm"],
            "ipvlan network rm [OPTIONS] NETWORK",
            &["-f, --force"],
        ),
        (
            &["network", "remove"],
            "ipvlan network rm [OPTIONS] NETWORK",
            &["-f, --force"],
        ),
        (
            &["network", "ls"],
            "ipvlan network ls [OPTIONS]",
            &["-q, --quiet", "--no-trunc"],
        ),
        (
            &["network", "list"],
            "ipvlan network ls [OPTIONS]",
            &["-q, --quiet"],
        ),
        (
            &["network", "inspect"],
            "ipvlan network inspect NETWORK",
            &[],
        ),
        (
            &["network", "connect"],
            "ipvlan network connect [OPTIONS] NETWORK CONTAINER|NETNS-PATH",
            &["--ip ", "--ip6"],
        ),
        (
            &["network", "disconnect"],
            "ipvlan network disconnect [OPTIONS] NETWORK CONTAINER|NETNS-PATH",
            &["-f, --force"],
        ),
        (
            &["run"],
            "ipvlan run [OPTIONS]",
            &[
                "--net|--network",
                "--name",
                "--ip ",
                "--ip6",
                "-d, --detach",
                "-i, --interactive",
                "-t, --tty",
                "--rm",
            ],
        ),
        (
            &["exec"],
            "ipvlan exec [OPTIONS] CONTAINER COMMAND",
            &["-i, --interactive", "-t, --tty"],
        ),
        (&["rm"], "ipvlan rm [OPTIONS] CONTAINER", &["-f, --force"]),
        (
            &["ps"],
            "ipvlan ps [OPTIONS]",
            &["-a, --all", "-q, --quiet"],
        ),
        (&["restore"], "ipvlan restore", &[]),
        (&["doctor"], "ipvlan doctor", &[]),
        (&["version"], "ipvlan version", &[]),
    ];
    for (words, synopsis, options) in cases {
        // `run -h` is Docker's `--hostname` (refused below).
        let helps: &[&str] = match words {
            ["run"] => &["--help"],
            _ => &["--help", "-h"],
        };
        for &help in helps {
            let mut args = words.to_vec();
            args.push(help);
            let output = ipvlan(&args);
            let text = stdout(&output);
            assert_eq!(
                output.status.code(),
                Some(0),
                "{args:?}: {}",
                stderr(&output)
            );
            assert!(stderr(&output).is_empty(), "{args:?}");
            assert!(
                text.contains(&format!("Usage:  {synopsis}")),
                "{args:?}:\n{text}"
            );
            let help_row = match words {
                ["run"] => "    --help",
                _ => "-h, --help",
            };
            assert!(text.contains(help_row), "{args:?}:\n{text}");
            for option in *options {
                assert!(text.contains(option), "{args:?} lacks {option}:\n{text}");
            }
            // Every command that takes an option besides --help says so in
            // its usage line, whatever the cases above list.
            let table = text.split("\nOptions:\n").nth(1).unwrap_or("");
            let takes_options = table
                .lines()
                .take_while(|line| !line.is_empty())
                .any(|line| !line.contains("--help"));
            let usage = text
                .lines()
                .find(|line| line.starts_with("Usage:"))
                .unwrap();
            assert_eq!(
                usage.contains("[OPTIONS]"),
                takes_options,
                "{args:?}: the usage line and the options table disagree:\n{text}"
            );
        }
    }
}

#[test]
fn help_wins_over_missing_arguments() {
    for args in [
        &["run", "--help"][..],
        &["exec", "-h"][..],
        &["network", "connect", "-h"][..],
    ] {
        assert_eq!(ipvlan(args).status.code(), Some(0), "{args:?}");
    }
}

#[test]
fn no_command_prints_the_usage() {
    let output = ipvlan(&[]);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).contains("Usage:  ipvlan [OPTIONS] COMMAND"));
}

#[test]
fn usage_errors_exit_2_with_their_texts() {
    let cases: &[(&[&str], &str)] = &[
        (&["frobnicate"], "ipvlan: 'frobnicate' is not an ipvlan command\nSee 'ipvlan --help'.\n"),
        (&["--bogus", "ps"], "ipvlan: unknown flag: --bogus\nSee 'ipvlan --help'.\n"),
        (&["--state-dir"], "ipvlan: flag needs an argument: --state-dir\nSee 'ipvlan --help'.\n"),
        (&["network", "frob"], "ipvlan: network: 'frob' is not an ipvlan network command\nSee 'ipvlan network --help'.\n"),
        (&["network", "--bogus"], "ipvlan: network: unknown flag: --bogus\nSee 'ipvlan network --help'.\n"),
        (&["network", "create"], "ipvlan: network create: \"ipvlan network create\" requires exactly 1 argument\nSee 'ipvlan network create --help'.\n"),
        (&["network", "create", "a", "b"], "ipvlan: network create: \"ipvlan network create\" requires exactly 1 argument\nSee 'ipvlan network create --help'.\n"),
        (&["network", "create", "--subnet"], "ipvlan: network create: flag needs an argument: --subnet\nSee 'ipvlan network create --help'.\n"),
        (&["network", "create", "-o"], "ipvlan: network create: flag needs an argument: -o\nSee 'ipvlan network create --help'.\n"),
        (&["network", "create", "--bogus", "n1"], "ipvlan: network create: unknown flag: --bogus\nSee 'ipvlan network create --help'.\n"),
        (&["network", "create", "-x", "n1"], "ipvlan: network create: unknown shorthand flag: 'x' in -x\nSee 'ipvlan network create --help'.\n"),
        (&["network", "rm"], "ipvlan: network rm: \"ipvlan network rm\" requires at least 1 argument\nSee 'ipvlan network rm --help'.\n"),
        (&["network", "ls", "extra"], "ipvlan: network ls: \"ipvlan network ls\" accepts no arguments\nSee 'ipvlan network ls --help'.\n"),
        (&["network", "inspect"], "ipvlan: network inspect: \"ipvlan network inspect\" requires at least 1 argument\nSee 'ipvlan network inspect --help'.\n"),
        (&["network", "connect", "n1"], "ipvlan: network connect: \"ipvlan network connect\" requires at least 2 arguments\nSee 'ipvlan network connect --help'.\n"),
        (&["network", "disconnect", "n1"], "ipvlan: network disconnect: \"ipvlan network disconnect\" requires at least 2 arguments\nSee 'ipvlan network disconnect --help'.\n"),
        (&["rm"], "ipvlan: rm: \"ipvlan rm\" requires at least 1 argument\nSee 'ipvlan rm --help'.\n"),
        (&["ps", "-s"], "ipvlan: ps: unknown shorthand flag: 's' in -s\nSee 'ipvlan ps --help'.\n"),
        (&["restore", "now"], "ipvlan: restore: \"ipvlan restore\" accepts no arguments\nSee 'ipvlan restore --help'.\n"),
        (&["version", "--short"], "ipvlan: version: unknown flag: --short\nSee 'ipvlan version --help'.\n"),
    ];
    for (args, expected) in cases {
        let output = ipvlan(args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert_eq!(stderr(&output), *expected, "{args:?}");
        assert!(stdout(&output).is_empty(), "{args:?}");
    }
}

#[test]
fn run_and_exec_usage_errors_exit_125() {
    let cases: &[(&[&str], &str)] = &[
        (&["run", "ls"], "ipvlan: run: --network is required\nSee 'ipvlan run --help'.\n"),
        (&["run", "--net="], "ipvlan: run: --network is required\nSee 'ipvlan run --help'.\n"),
        (&["run", "--net=n1", "-d", "--rm", "sleep", "9"], "ipvlan: run: conflicting options: --rm and -d (--detach) cannot be combined\nSee 'ipvlan run --help'.\n"),
        (&["run", "--net=n1", "-itdx"], "ipvlan: run: unknown shorthand flag: 'x' in -itdx\nSee 'ipvlan run --help'.\n"),
        (&["run", "--net"], "ipvlan: run: flag needs an argument: --net\nSee 'ipvlan run --help'.\n"),
        (&["exec", "c1"], "ipvlan: exec: \"ipvlan exec\" requires at least 2 arguments\nSee 'ipvlan exec --help'.\n"),
        (&["exec", "--bogus", "c1", "ls"], "ipvlan: exec: unknown flag: --bogus\nSee 'ipvlan exec --help'.\n"),
    ];
    for (args, expected) in cases {
        let output = ipvlan(args);
        assert_eq!(
            output.status.code(),
            Some(125),
            "{args:?}: {}",
            stderr(&output)
        );
        assert_eq!(stderr(&output), *expected, "{args:?}");
    }
}

#[test]
fn invalid_values_exit_1_name_flag_and_value_and_change_nothing() {
    let state_dir = scratch_path("values");
    let dir = state_dir.to_str().unwrap();
    let cases: &[(&[&str], i32, &str)] = &[
        (&["network", "create", "--subnet=192.168.1.0/33", "n1"], 1, "ipvlan: network create: invalid value \"192.168.1.0/33\" for --subnet: invalid CIDR address\n"),
        (&["network", "create", "--subnet", "192.168.1.0", "n1"], 1, "ipvlan: network create: invalid value \"192.168.1.0\" for --subnet: invalid CIDR address\n"),
        (&["network", "create", "--ip-range=10.0.0.0/", "n1"], 1, "ipvlan: network create: invalid value \"10.0.0.0/\" for --ip-range: invalid CIDR address\n"),
        (&["network", "create", "--gateway=192.168.1.300", "n1"], 1, "ipvlan: network create: invalid value \"192.168.1.300\" for --gateway: invalid IP address\n"),
        (&["network", "create", "--aux-address=router", "n1"], 1, "ipvlan: network create: invalid value \"router\" for --aux-address: expected name=IP\n"),
        (&["network", "create", "--aux-address", "r=x", "n1"], 1, "ipvlan: network create: invalid value \"r=x\" for --aux-address: invalid IP address \"x\"\n"),
        (&["network", "create", "-o", "=eth0", "n1"], 1, "ipvlan: network create: invalid value \"=eth0\" for --opt: expected KEY=VALUE\n"),
        (&["network", "create", "-d", "bridge", "n1"], 1, "ipvlan: network create: invalid value \"bridge\" for --driver: only the ipvlan driver is supported\n"),
        (&["network", "create", "--ipv6=maybe", "n1"], 1, "ipvlan: network create: invalid value \"maybe\" for --ipv6: expected true or false\n"),
        (&["network", "connect", "--ip=2001:db8::1", "n1", "c1"], 1, "ipvlan: network connect: invalid value \"2001:db8::1\" for --ip: not an IPv4 address (use --ip6)\n"),
        (&["network", "connect", "--ip6=10.0.0.1", "n1", "c1"], 1, "ipvlan: network connect: invalid value \"10.0.0.1\" for --ip6: not an IPv6 address (use --ip)\n"),
        (&["rm", "--force=yes", "c1"], 1, "ipvlan: rm: invalid value \"yes\" for --force: expected true or false\n"),
        (&["run", "--net=n1", "--ip=10.0.0.300"], 125, "ipvlan: run: invalid value \"10.0.0.300\" for --ip: invalid IP address\n"),
        (&["run", "--net=n1", "--ip6=10.0.0.3"], 125, "ipvlan: run: invalid value \"10.0.0.3\" for --ip6: not an IPv6 address (use --ip)\n"),
    ];
    for (args, code, expected) in cases {
        let mut full = vec!["--state-dir", dir];
        full.extend_from_slice(args);
        let output = ipvlan(&full);
        assert_eq!(
            output.status.code(),
            Some(*code),
            "{args:?}: {}",
            stderr(&output)
        );
        assert_eq!(stderr(&output), *expected, "{args:?}");
        assert!(stdout(&output).is_empty(), "{args:?}");
    }
    assert!(
        !state_dir.exists(),
        "a refused command created the state directory"
    );
}

/// The commands that change the kernel or the state, with the exit code of a
/// failure of each.
const CHANGING_COMMANDS: &[(&[&str], i32, &str)] = &[
    (
        &[
            "network",
            "create",
            "-d",
            "ipvlan",
            "--subnet",
            "192.168.1.0/24",
            "-o",
            "parent=eth0",
            "n1",
        ],
        1,
        "network create",
    ),
    (&["network", "rm", "n1"], 1, "network rm"),
    (&["network", "connect", "n1", "c1"], 1, "network connect"),
    (
        &["network", "connect", "n1", "/proc/1/ns/net"],
        1,
        "network connect",
    ),
    (
        &["network", "disconnect", "n1", "c1"],
        1,
        "network disconnect",
    ),
    (
        &["run", "--net=n1", "--name=c1", "-itd", "/bin/sh"],
        125,
        "run",
    ),
    (&["run", "--net=n1", "--rm", "true"], 125, "run"),
    (&["exec", "c1", "true"], 125, "exec"),
    (&["rm", "-f", "c1"], 1, "rm"),
    (&["restore"], 1, "restore"),
];

/// Asserts that `args` ended with exit `code`, saying `message` on
/// stderr and nothing on stdout.
fn assert_refused(output: &Output, args: &[&str], code: i32, message: &str) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{args:?}: {}",
        stderr(output)
    );
    assert_eq!(stderr(output), message, "{args:?}");
    assert!(stdout(output).is_empty(), "{args:?}");
}

/// With CAP_NET_ADMIN but not CAP_SYS_ADMIN (a container given
/// `--cap-add NET_ADMIN` alone, a service's narrowed bounding set), the
/// commands that enter namespaces or mount say so at once and touch
/// nothing. Before, they failed at their first `setns` or `unshare`,
/// told they needed CAP_NET_ADMIN, which they had.
#[test]
fn without_cap_sys_admin_namespace_commands_say_so_and_touch_nothing() {
    assert!(
        has_net_admin(),
        "this test drops CAP_SYS_ADMIN alone: run it as root"
    );
    let missing = scratch_path("nosysadmin-missing");
    for (args, code, name) in CHANGING_COMMANDS {
        if args[0] == "network" && matches!(args[1], "create" | "rm") {
            continue;
        }
        let output = Command::new("setpriv")
            .args(["--inh-caps=-all", "--bounding-set=-sys_admin", "--", BIN])
            .env("IPVLAN_STATE_DIR", &missing)
            .args(*args)
            .output()
            .expect("setpriv (util-linux) is needed to drop CAP_SYS_ADMIN");
        assert_refused(&output, args, *code, &format!(
            "ipvlan: {name}: this command needs root (CAP_SYS_ADMIN, beside CAP_NET_ADMIN: it enters network namespaces and mounts)\n"
        ));
    }
    assert!(!missing.exists(), "the state directory was created");
}

#[test]
fn without_cap_net_admin_changing_commands_need_root_and_touch_nothing() {
    let missing = scratch_path("nocap-missing");
    let empty = scratch_path("nocap-empty");
    std::fs::create_dir(&empty).unwrap();
    for state_dir in [&missing, &empty] {
        for (args, code, name) in CHANGING_COMMANDS {
            let output = ipvlan_without_caps(args, state_dir);
            assert_refused(
                &output,
                args,
                *code,
                &format!("ipvlan: {name}: this command needs root (CAP_NET_ADMIN)\n"),
            );
        }
    }
    assert!(!missing.exists(), "the state directory was created");
    assert_eq!(
        std::fs::read_dir(&empty).unwrap().count(),
        0,
        "the state directory changed"
    );
    std::fs::remove_dir(&empty).unwrap();
}

#[test]
fn without_cap_net_admin_help_and_version_still_work() {
    let state_dir = scratch_path("nocap-help");
    for (args, _, _) in CHANGING_COMMANDS {
        let mut with_help = args.to_vec();
        with_help.insert(if args[0] == "network" { 2 } else { 1 }, "--help");
        let output = ipvlan_without_caps(&with_help, &state_dir);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{with_help:?}: {}",
            stderr(&output)
        );
        assert!(stdout(&output).contains("Usage:"), "{with_help:?}");
    }
    for args in [&["version"][..], &["--version"][..], &["-v"][..]] {
        let output = ipvlan_without_caps(args, &state_dir);
        assert_eq!(output.status.code(), Some(0), "{args:?}");
        assert!(
            stdout(&output).starts_with(&format!("ipvlan version {}\n", env!("CARGO_PKG_VERSION"))),
            "{args:?}"
        );
    }
    assert!(!state_dir.exists());
}

/// The binary starts from its own C `main`, without the Rust runtime's
/// start: what that start did for it still holds. Standard descriptors
/// that are closed are reopened on `/dev/null` (nothing later opened
/// takes their place), a reader that went away is no death by SIGPIPE
/// (the output is dropped, the exit status is the command's), and the
/// arguments arrive whole.
#[test]
fn the_process_start_keeps_stdio_sigpipe_and_arguments_right() {
    use std::os::fd::{FromRawFd, OwnedFd};
    use std::os::unix::process::CommandExt;

    let mut closed = Command::new(BIN);
    closed.args(["--help"]);
    // SAFETY: the closure only calls close(2), which is async-signal-safe.
    unsafe {
        closed.pre_exec(|| {
            for fd in 0..3 {
                libc::close(fd);
            }
            Ok(())
        });
    }
    let status = closed.status().expect("runs the binary");
    assert_eq!(status.code(), Some(0), "--help with fds 0-2 closed");

    // A pipe whose reader is gone before the binary writes a byte.
    let mut fds = [0; 2];
    // SAFETY: `fds` is a live array of two ints for pipe2 to fill.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just made by pipe2 and are ours.
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(reader);
    let status = Command::new(BIN)
        .args(["network", "create", "--help"])
        .stdout(writer)
        .status()
        .expect("runs the binary");
    assert_eq!(
        status.code(),
        Some(0),
        "a closed pipe on stdout is no death by SIGPIPE: {status:?}"
    );

    let output = ipvlan(&["no such", "command"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("'no such' is not an ipvlan command"),
        "arguments with spaces arrive whole: {}",
        stderr(&output)
    );
}
