//! Every command line of the walkthrough parses to what it means.

use std::ffi::OsString;
use std::net::IpAddr;

use ipvlan::cli::command::{parse, Command, ConnectArgs, ExecArgs, Invocation, RunArgs};
use ipvlan::driver::{AttachRequest, NetworkCreate, Target};

/// Splits a command line the way a shell does for these (unquoted) lines.
fn parse_line(line: &str) -> Command {
    let argv: Vec<String> = line.split_whitespace().map(str::to_string).collect();
    assert_eq!(argv[0], "ipvlan", "{line}");
    match parse(&argv[1..]) {
        Ok(Invocation { command, state_dir }) => {
            assert_eq!(state_dir, None);
            command
        }
        Err(error) => panic!("{line}: {error:?}"),
    }
}

fn cidrs(list: &[&str]) -> Vec<ipnet::IpNet> {
    list.iter().map(|cidr| cidr.parse().unwrap()).collect()
}

fn ips(list: &[&str]) -> Vec<IpAddr> {
    list.iter().map(|ip| ip.parse().unwrap()).collect()
}

fn options(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

fn create(name: &str, subnets: &[&str], gateways: &[&str], opts: &[(&str, &str)]) -> NetworkCreate {
    NetworkCreate {
        subnets: cidrs(subnets),
        gateways: ips(gateways),
        options: options(opts),
        ..NetworkCreate::new(name)
    }
}

fn run(network: &str, command: &[&str]) -> RunArgs {
    RunArgs {
        networks: vec![network.to_string()],
        command: argv(command),
        ..RunArgs::default()
    }
}

fn words(list: &[&str]) -> Vec<String> {
    list.iter().map(|word| word.to_string()).collect()
}

/// A command's arguments, as `run` and `exec` keep them (any bytes).
fn argv(list: &[&str]) -> Vec<OsString> {
    list.iter().map(OsString::from).collect()
}

#[test]
fn walkthrough_network_create_lines() {
    let cases: Vec<(&str, NetworkCreate)> = vec![
        (
            "ipvlan network create -d ipvlan --subnet=192.168.1.0/24 --gateway=192.168.1.1 -o ipvlan_mode=l2 -o parent=eth0 db_net",
            create("db_net", &["192.168.1.0/24"], &["192.168.1.1"], &[("ipvlan_mode", "l2"), ("parent", "eth0")]),
        ),
        (
            "ipvlan network create -d ipvlan --subnet=192.168.1.0/24 -o parent=eth0 db_net_ipv",
            create("db_net_ipv", &["192.168.1.0/24"], &[], &[("parent", "eth0")]),
        ),
        (
            "ipvlan network create -d ipvlan --subnet=192.168.10.0/24 isolated1",
            create("isolated1", &["192.168.10.0/24"], &[], &[]),
        ),
        (
            "ipvlan network create -d ipvlan --subnet=192.168.11.0/24 --internal isolated2",
            NetworkCreate {
                internal: true,
                ..create("isolated2", &["192.168.11.0/24"], &[], &[])
            },
        ),
        ("ipvlan network create -d ipvlan isolated3", create("isolated3", &[], &[], &[])),
        (
            "ipvlan network create -d ipvlan --subnet=192.168.20.0/24 --gateway=192.168.20.1 -o parent=eth0.20 ipvlan20",
            create("ipvlan20", &["192.168.20.0/24"], &["192.168.20.1"], &[("parent", "eth0.20")]),
        ),
        (
            "ipvlan network create -d ipvlan --subnet=192.168.30.0/24 --gateway=192.168.30.1 -o parent=eth0.30 -o ipvlan_mode=l2 ipvlan30",
            create("ipvlan30", &["192.168.30.0/24"], &["192.168.30.1"], &[("parent", "eth0.30"), ("ipvlan_mode", "l2")]),
        ),
        (
            "ipvlan network create -d ipvlan --subnet=192.168.114.0/24 --subnet=192.168.116.0/24 --gateway=192.168.114.254 --gateway=192.168.116.254 -o parent=eth0.114 -o ipvlan_mode=l2 ipvlan114",
            create(
                "ipvlan114",
                &["192.168.114.0/24", "192.168.116.0/24"],
                &["192.168.114.254", "192.168.116.254"],
                &[("parent", "eth0.114"), ("ipvlan_mode", "l2")],
            ),
        ),
        (
            "ipvlan network create -d ipvlan --subnet=192.168.214.0/24 --subnet=10.1.214.0/24 -o ipvlan_mode=l3 ipnet210",
            create("ipnet210", &["192.168.214.0/24", "10.1.214.0/24"], &[], &[("ipvlan_mode", "l3")]),
        ),
        (
            "ipvlan network create -d ipvlan --ipv6 --subnet=2001:db8:abc2::/64 --gateway=2001:db8:abc2::22 -o parent=eth0.139 v6ipvlan139",
            NetworkCreate {
                ipv6: true,
                ..create("v6ipvlan139", &["2001:db8:abc2::/64"], &["2001:db8:abc2::22"], &[("parent", "eth0.139")])
            },
        ),
        (
            "ipvlan network create -d ipvlan --subnet=192.168.140.0/24 --subnet=192.168.142.0/24 --gateway=192.168.140.1 --gateway=192.168.142.1 --subnet=2001:db8:abc9::/64 --gateway=2001:db8:abc9::22 -o parent=eth0.140 -o ipvlan_mode=l2 ipvlan140",
            create(
                "ipvlan140",
                &["192.168.140.0/24", "192.168.142.0/24", "2001:db8:abc9::/64"],
                &["192.168.140.1", "192.168.142.1", "2001:db8:abc9::22"],
                &[("parent", "eth0.140"), ("ipvlan_mode", "l2")],
            ),
        ),
        (
            "ipvlan network create -d ipvlan --subnet=192.168.110.0/24 --subnet=192.168.112.0/24 --subnet=2001:db8:abc6::/64 -o parent=eth0 -o ipvlan_mode=l3 ipnet110",
            create(
                "ipnet110",
                &["192.168.110.0/24", "192.168.112.0/24", "2001:db8:abc6::/64"],
                &[],
                &[("parent", "eth0"), ("ipvlan_mode", "l3")],
            ),
        ),
        (
            "ipvlan network create -d ipvlan --subnet=192.168.40.0/24 --gateway=192.168.40.1 -o parent=eth0.40 ipvlan40",
            create("ipvlan40", &["192.168.40.0/24"], &["192.168.40.1"], &[("parent", "eth0.40")]),
        ),
        (
            "ipvlan network create -d ipvlan --subnet=192.168.40.0/24 --gateway=192.168.40.1 -o parent=foo ipvlan40",
            create("ipvlan40", &["192.168.40.0/24"], &["192.168.40.1"], &[("parent", "foo")]),
        ),
        // The docs' multi-line form: separate values, options after the name.
        (
            "ipvlan network create db_net -d ipvlan --subnet 192.168.1.0/24 --gateway 192.168.1.1 -o ipvlan_mode=l2 --opt parent=eth0 --aux-address router=192.168.1.5 --ip-range 192.168.1.128/25",
            NetworkCreate {
                aux_addresses: vec![("router".to_string(), "192.168.1.5".parse().unwrap())],
                ip_ranges: cidrs(&["192.168.1.128/25"]),
                ..create("db_net", &["192.168.1.0/24"], &["192.168.1.1"], &[("ipvlan_mode", "l2"), ("parent", "eth0")])
            },
        ),
    ];
    for (line, expected) in cases {
        assert_eq!(parse_line(line), Command::NetworkCreate(expected), "{line}");
    }
}

#[test]
fn walkthrough_run_lines() {
    let cases: Vec<(&str, RunArgs)> = vec![
        (
            "ipvlan run --net=db_net --rm ip addr",
            RunArgs { remove: true, ..run("db_net", &["ip", "addr"]) },
        ),
        (
            "ipvlan run --net=db_net -it --rm /bin/sh",
            RunArgs { remove: true, interactive: true, tty: true, ..run("db_net", &["/bin/sh"]) },
        ),
        (
            "ipvlan run --net=db_net_ipv --name=ipv1 -itd /bin/sh",
            RunArgs {
                name: Some("ipv1".into()),
                interactive: true,
                tty: true,
                detach: true,
                ..run("db_net_ipv", &["/bin/sh"])
            },
        ),
        (
            "ipvlan run --net=db_net_ipv --name=ipv2 --rm ping -c 4 ipv1",
            RunArgs { name: Some("ipv2".into()), remove: true, ..run("db_net_ipv", &["ping", "-c", "4", "ipv1"]) },
        ),
        (
            "ipvlan run --net=ipvlan20 -it --name ivlan_test1 --rm /bin/sh",
            RunArgs {
                name: Some("ivlan_test1".into()),
                interactive: true,
                tty: true,
                remove: true,
                ..run("ipvlan20", &["/bin/sh"])
            },
        ),
        (
            "ipvlan run --net=ipvlan114 --ip=192.168.114.10 -it --rm /bin/sh",
            RunArgs {
                ipv4: Some("192.168.114.10".parse().unwrap()),
                interactive: true,
                tty: true,
                remove: true,
                ..run("ipvlan114", &["/bin/sh"])
            },
        ),
        (
            "ipvlan run --net=ipnet210 --ip=10.1.214.9 -it --rm ping -c 2 192.168.214.10",
            RunArgs {
                ipv4: Some("10.1.214.9".parse().unwrap()),
                interactive: true,
                tty: true,
                remove: true,
                ..run("ipnet210", &["ping", "-c", "2", "192.168.214.10"])
            },
        ),
        (
            "ipvlan run --net=ipvlan140 --ip6=2001:db8:abc2::51 -it --rm /bin/sh",
            RunArgs {
                ipv6: Some("2001:db8:abc2::51".parse().unwrap()),
                interactive: true,
                tty: true,
                remove: true,
                ..run("ipvlan140", &["/bin/sh"])
            },
        ),
        (
            "ipvlan run --net=ipnet110 --ip6=2001:db8:abc6::50 --ip=192.168.112.50 -it --rm /bin/sh",
            RunArgs {
                ipv4: Some("192.168.112.50".parse().unwrap()),
                ipv6: Some("2001:db8:abc6::50".parse().unwrap()),
                interactive: true,
                tty: true,
                remove: true,
                ..run("ipnet110", &["/bin/sh"])
            },
        ),
        (
            "ipvlan run --network ipnet110 -d",
            RunArgs { detach: true, ..run("ipnet110", &[]) },
        ),
        // Options after the command belong to the command.
        (
            "ipvlan run --net=n1 -- ls -l --net=x",
            run("n1", &["ls", "-l", "--net=x"]),
        ),
        (
            "ipvlan run --net=n1 sh -c -h",
            run("n1", &["sh", "-c", "-h"]),
        ),
        // An empty address is none, as Docker reads it.
        (
            "ipvlan run --net=n1 --ip= --ip6= ls",
            run("n1", &["ls"]),
        ),
        // Every network given, in order (Docker 25 takes several).
        (
            "ipvlan run --net=n1 --network n2 -d",
            RunArgs {
                networks: words(&["n1", "n2"]),
                detach: true,
                ..run("n1", &[])
            },
        ),
    ];
    for (line, expected) in cases {
        assert_eq!(parse_line(line), Command::Run(expected), "{line}");
    }
}

/// `-p` and `--expose` are taken with Docker's ipvlan warnings (no port is
/// mapped or exposed), as Docker takes them; before, usage errors.
#[test]
fn run_takes_publish_and_expose_with_a_warning() {
    let Command::Run(args) =
        parse_line("ipvlan run --net=n1 -p 8080:80 --publish=443:443 --expose 80 -d sleep 9")
    else {
        panic!("not a run");
    };
    assert_eq!(
        args.warnings,
        [
            "ipvlan driver does not support port mappings",
            "ipvlan driver does not support port exposures"
        ]
    );
    assert_eq!(args.command, argv(&["sleep", "9"]));
    let Command::Run(args) = parse_line("ipvlan run --net=n1 -d sleep 9") else {
        panic!("not a run");
    };
    assert!(args.warnings.is_empty());
}

/// An empty `--hostname`, `--mac-address`, `-p` or `--expose` is none, as
/// Docker reads it (a script's `--hostname "$H"` with `H` unset): before,
/// the first two were refused and the others warned of.
#[test]
fn run_takes_empty_values_of_unsupported_flags_for_none() {
    let Command::Run(args) = parse_line(
        "ipvlan run --net=n1 --hostname= --mac-address= --publish= --expose= -d sleep 9",
    ) else {
        panic!("not a run");
    };
    assert!(args.warnings.is_empty(), "{:?}", args.warnings);
    assert_eq!(args.command, argv(&["sleep", "9"]));
}

#[test]
fn run_without_command_uses_the_default_shell() {
    let Command::Run(args) = parse_line("ipvlan run --net=n1 -it") else {
        panic!("not a run");
    };
    assert!(args.command.is_empty());
    assert_eq!(args.argv(), argv(&["/bin/sh"]));
}

#[test]
fn walkthrough_other_lines() {
    let cases: Vec<(&str, Command)> = vec![
        (
            "ipvlan network rm db_net",
            Command::NetworkRemove {
                names: words(&["db_net"]),
                force: false,
            },
        ),
        (
            "ipvlan network remove ipvlan20 ipvlan30",
            Command::NetworkRemove {
                names: words(&["ipvlan20", "ipvlan30"]),
                force: false,
            },
        ),
        (
            "ipvlan network rm -f gone",
            Command::NetworkRemove {
                names: words(&["gone"]),
                force: true,
            },
        ),
        (
            "ipvlan network ls",
            Command::NetworkList {
                quiet: false,
                no_trunc: false,
                filters: Vec::new(),
            },
        ),
        (
            "ipvlan network list -q --no-trunc",
            Command::NetworkList {
                quiet: true,
                no_trunc: true,
                filters: Vec::new(),
            },
        ),
        (
            "ipvlan network inspect db_net ipnet110",
            Command::NetworkInspect {
                names: words(&["db_net", "ipnet110"]),
            },
        ),
        (
            "ipvlan exec -it cid1 /bin/sh",
            Command::Exec(ExecArgs {
                container: "cid1".into(),
                interactive: true,
                tty: true,
                command: argv(&["/bin/sh"]),
            }),
        ),
        (
            "ipvlan exec ipv2 ping -c 4 ipv1",
            Command::Exec(ExecArgs {
                container: "ipv2".into(),
                interactive: false,
                tty: false,
                command: argv(&["ping", "-c", "4", "ipv1"]),
            }),
        ),
        (
            "ipvlan rm cid1 cid2",
            Command::Remove {
                force: false,
                names: words(&["cid1", "cid2"]),
            },
        ),
        (
            "ipvlan rm -f cid3",
            Command::Remove {
                force: true,
                names: words(&["cid3"]),
            },
        ),
        ("ipvlan ps", Command::Ps { quiet: false }),
        // Docker's `ps -a`/`-aq` (`rm -f $(ps -aq)`): every container is
        // listed already (a usage error, exit 2, before).
        ("ipvlan ps -a", Command::Ps { quiet: false }),
        ("ipvlan ps -aq", Command::Ps { quiet: true }),
        ("ipvlan ps --all --quiet", Command::Ps { quiet: true }),
        ("ipvlan restore", Command::Restore),
        ("ipvlan doctor", Command::Doctor),
        ("ipvlan version", Command::Version { brief: false }),
        ("ipvlan --version", Command::Version { brief: true }),
        (
            "ipvlan network connect --ip 192.168.1.9 --ip6=2001:db8::9 db_net web",
            Command::NetworkConnect(ConnectArgs {
                network: "db_net".into(),
                targets: vec![Target::Container("web".into())],
                request: AttachRequest {
                    ipv4: Some("192.168.1.9".parse().unwrap()),
                    ipv6: Some("2001:db8::9".parse().unwrap()),
                },
            }),
        ),
        (
            "ipvlan network connect db_net /proc/42/ns/net",
            Command::NetworkConnect(ConnectArgs {
                network: "db_net".into(),
                targets: vec![Target::Path("/proc/42/ns/net".into())],
                request: AttachRequest::default(),
            }),
        ),
        (
            "ipvlan network disconnect db_net web",
            Command::NetworkDisconnect {
                network: "db_net".into(),
                targets: vec![Target::Container("web".into())],
            },
        ),
        (
            "ipvlan network connect db_net web /proc/42/ns/net",
            Command::NetworkConnect(ConnectArgs {
                network: "db_net".into(),
                targets: vec![
                    Target::Container("web".into()),
                    Target::Path("/proc/42/ns/net".into()),
                ],
                request: AttachRequest::default(),
            }),
        ),
        (
            "ipvlan network disconnect db_net web db",
            Command::NetworkDisconnect {
                network: "db_net".into(),
                targets: vec![
                    Target::Container("web".into()),
                    Target::Container("db".into()),
                ],
            },
        ),
    ];
    for (line, expected) in cases {
        assert_eq!(parse_line(line), expected, "{line}");
    }
}

#[test]
fn state_dir_is_a_global_option() {
    for args in [
        &["--state-dir", "/tmp/s", "network", "ls"][..],
        &["--state-dir=/tmp/s", "network", "ls"][..],
        &["--state-dir", "/tmp/s", "--", "network", "ls"][..],
    ] {
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        let invocation = parse(&args).unwrap();
        assert_eq!(invocation.state_dir, Some("/tmp/s".into()));
        assert_eq!(
            invocation.command,
            Command::NetworkList {
                quiet: false,
                no_trunc: false,
                filters: Vec::new(),
            }
        );
    }
}

#[test]
fn an_empty_state_dir_is_refused_and_a_given_one_kept_as_typed() {
    use ipvlan::cli::args::ArgError;
    let argv = |line: &[&str]| line.iter().map(|w| w.to_string()).collect::<Vec<_>>();
    let error = parse(&argv(&["--state-dir=", "network", "ls"])).unwrap_err();
    assert_eq!(
        error.error,
        ArgError::Value(
            "invalid value \"\" for --state-dir: empty; give a directory or leave the flag out"
                .into()
        )
    );
    // Made absolute when the command runs, not while parsing.
    let invocation = parse(&argv(&["--state-dir", "rel/dir", "ps"])).unwrap();
    assert_eq!(
        invocation.state_dir,
        Some(std::path::PathBuf::from("rel/dir"))
    );
}

#[test]
fn a_commands_arguments_are_kept_as_bytes_and_text_is_asked_of_the_rest() {
    use ipvlan::cli::args::ArgError;
    use ipvlan::cli::help::Topic;
    use std::os::unix::ffi::OsStringExt;
    let raw = OsString::from_vec(b"caf\xe9".to_vec());
    let line = |words: &[&str]| {
        let mut argv: Vec<OsString> = words.iter().map(OsString::from).collect();
        argv.push(raw.clone());
        argv
    };
    let Command::Run(run) = parse(&line(&["run", "--net=n1", "echo"])).unwrap().command else {
        panic!("not a run");
    };
    assert_eq!(run.command, [OsString::from("echo"), raw.clone()]);
    let Command::Exec(exec) = parse(&line(&["exec", "c1", "echo"])).unwrap().command else {
        panic!("not an exec");
    };
    assert_eq!(exec.command, [OsString::from("echo"), raw.clone()]);
    // Names, values and paths the state keeps as text: refused, by the
    // command's usage (so `run` and `exec` exit 125).
    for (words, topic) in [
        (&["network", "create"][..], Topic::NetworkCreate),
        (&["network", "connect", "n1"][..], Topic::NetworkConnect),
        (&["rm"][..], Topic::Remove),
        (&["run", "--net=n1", "--name"][..], Topic::Run),
    ] {
        let error = parse(&line(words)).unwrap_err();
        assert_eq!(error.topic, topic, "{words:?}");
        assert!(
            matches!(&error.error, ArgError::Value(text) if text.ends_with("not valid UTF-8")),
            "{words:?}: {error:?}"
        );
    }
    let mut argv: Vec<OsString> = vec!["exec".into(), raw, "true".into()];
    let error = parse(&argv).unwrap_err();
    assert_eq!(error.topic, Topic::Exec);
    argv[1] = "c1".into();
    assert!(parse(&argv).is_ok());
}

/// Docker habits read as Docker reads them: a boolean flag's value in any
/// of Go's `ParseBool` spellings; a list flag given empty (a script's
/// `--subnet "$SUBNET"` with it unset) is an empty list; `--name ""` makes a
/// name up. Before, each was refused as an invalid value.
#[test]
fn docker_spellings_of_booleans_and_empty_values_are_read_as_docker_reads_them() {
    for (spelling, on) in [
        ("True", true),
        ("TRUE", true),
        ("t", true),
        ("T", true),
        ("1", true),
        ("False", false),
        ("FALSE", false),
        ("f", false),
        ("F", false),
        ("0", false),
    ] {
        let line = format!("ipvlan network create --ipv6={spelling} --internal={spelling} n1");
        let Command::NetworkCreate(create) = parse_line(&line) else {
            panic!("{line}");
        };
        assert_eq!((create.ipv6, create.internal), (on, on), "{line}");
    }
    let given: Vec<String> = [
        "network",
        "create",
        "--subnet",
        "",
        "--gateway=",
        "--ip-range",
        "",
        "n1",
    ]
    .map(str::to_string)
    .to_vec();
    let Command::NetworkCreate(create) = parse(&given).unwrap().command else {
        panic!("not a create");
    };
    assert!(create.subnets.is_empty() && create.gateways.is_empty() && create.ip_ranges.is_empty());
    let named: Vec<String> = ["run", "--net=n1", "--name", "", "true"]
        .map(str::to_string)
        .to_vec();
    let Command::Run(run) = parse(&named).unwrap().command else {
        panic!("not a run");
    };
    assert_eq!(run.name, None);
}
