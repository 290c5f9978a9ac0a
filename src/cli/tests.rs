//! Error texts and exit codes of the command line, without running anything.

use super::*;
use crate::driver;

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| arg.to_string()).collect()
}

fn parse_failure(args: &[&str]) -> Failure {
    Failure::from(command::parse(&strings(args)).expect_err("refused"))
}

#[test]
fn usage_errors_exit_2_and_point_at_the_help() {
    let failure = parse_failure(&["network", "create", "--bogus", "n1"]);
    assert_eq!(failure.exit_code(), EXIT_USAGE);
    assert_eq!(
        failure.to_string(),
        "ipvlan: network create: unknown flag: --bogus\nSee 'ipvlan network create --help'."
    );
    let failure = parse_failure(&["frobnicate"]);
    assert_eq!(failure.exit_code(), EXIT_USAGE);
    assert_eq!(
        failure.to_string(),
        "ipvlan: 'frobnicate' is not an ipvlan command\nSee 'ipvlan --help'."
    );
}

/// `ipvlan help [COMMAND [SUBCOMMAND]]`, as `docker help network create`,
/// is that command's help; it was "'help' is not an ipvlan command".
#[test]
fn help_names_the_command_whose_help_it_prints() {
    let parse = |args: &[&str]| command::parse(&strings(args)).map(|i| i.command);
    for (args, topic) in [
        (&["help"][..], Topic::Root),
        (&["help", "network"][..], Topic::Network),
        (&["help", "network", "ls"][..], Topic::NetworkList),
        (&["help", "run"][..], Topic::Run),
    ] {
        assert!(
            matches!(parse(args), Ok(Command::Help(t)) if t == topic),
            "{args:?}"
        );
    }
    let failure = parse_failure(&["help", "network", "frob"]);
    assert_eq!(failure.exit_code(), EXIT_USAGE);
    assert_eq!(
        failure.to_string(),
        "ipvlan: network: unknown help topic: frob\nSee 'ipvlan network --help'."
    );
    assert!(parse(&["help", "run", "x"]).is_err());
}

#[test]
fn invalid_values_exit_1_without_the_help_hint() {
    let failure = parse_failure(&["network", "create", "--subnet", "10.0.0.0/40", "n1"]);
    assert_eq!(failure.exit_code(), EXIT_FAILED);
    assert_eq!(
        failure.to_string(),
        "ipvlan: network create: invalid value \"10.0.0.0/40\" for --subnet: invalid CIDR address"
    );
}

/// `--subnet`, `--gateway` and `--ip-range` take comma-separated lists,
/// as Docker's CLI does (its `strings` flags): each part as if given with
/// the flag again. They were refused whole ("invalid CIDR address").
#[test]
fn subnets_gateways_and_ranges_may_be_comma_separated() {
    let parsed = command::parse(&strings(&[
        "network",
        "create",
        "--subnet",
        "192.168.1.0/24,2001:db8::/64",
        "--subnet=10.1.0.0/16",
        "--gateway",
        "192.168.1.254,2001:db8::fe",
        "--ip-range",
        "192.168.1.128/25,2001:db8::/80",
        "n1",
    ]))
    .unwrap();
    let command::Command::NetworkCreate(create) = parsed.command else {
        panic!("not a network create: {parsed:?}");
    };
    fn joined<T: ToString>(items: &[T]) -> String {
        let texts: Vec<String> = items.iter().map(ToString::to_string).collect();
        texts.join(" ")
    }
    assert_eq!(
        joined(&create.subnets),
        "192.168.1.0/24 2001:db8::/64 10.1.0.0/16"
    );
    assert_eq!(joined(&create.gateways), "192.168.1.254 2001:db8::fe");
    assert_eq!(joined(&create.ip_ranges), "192.168.1.128/25 2001:db8::/80");
    // A bad part is named alone; an empty one is a bad value.
    for (args, message) in [
        (
            &["--subnet", "192.168.1.0/24,10.0.0.0/40"][..],
            "invalid value \"10.0.0.0/40\" for --subnet: invalid CIDR address",
        ),
        (
            &["--subnet", "192.168.1.0/24,"][..],
            "invalid value \"\" for --subnet: invalid CIDR address",
        ),
        (
            &["--gateway", "192.168.1.1,nope"][..],
            "invalid value \"nope\" for --gateway: invalid IP address",
        ),
    ] {
        let mut argv = vec!["network", "create"];
        argv.extend_from_slice(args);
        argv.push("n1");
        assert_eq!(
            parse_failure(&argv).to_string(),
            format!("ipvlan: network create: {message}")
        );
    }
}

#[test]
fn run_and_exec_report_their_own_failures_as_125() {
    for args in [
        &["run", "--bogus"][..],
        &["run", "ls"][..],
        &["run", "--net=n", "--ip=nope"][..],
        &["run", "--net=n", "-d", "--rm", "sleep", "1"][..],
        &["exec", "c1"][..],
    ] {
        assert_eq!(parse_failure(args).exit_code(), EXIT_RUN_FAILED, "{args:?}");
    }
    let failed = Failure::failed("run", "boom");
    assert_eq!(failed.exit_code_for(Topic::Run), EXIT_RUN_FAILED);
    assert_eq!(failed.exit_code_for(Topic::NetworkCreate), EXIT_FAILED);
    assert_eq!(failed.to_string(), "ipvlan: run: boom");
}

#[test]
fn driver_errors_keep_their_text() {
    let error = driver::Error::unsupported(
        "this kernel has no ipvlan support (CONFIG_IPVLAN); try `modprobe ipvlan`",
    );
    assert_eq!(
        Failure::driver("network create n1", &error).to_string(),
        "ipvlan: network create n1: this kernel has no ipvlan support (CONFIG_IPVLAN); \
         try `modprobe ipvlan`"
    );
}

#[test]
fn only_commands_that_change_things_need_root() {
    let needing: Vec<bool> = [
        &["network", "create", "n"][..],
        &["network", "rm", "n"][..],
        &["network", "connect", "n", "c"][..],
        &["network", "disconnect", "n", "c"][..],
        &["run", "--net=n"][..],
        &["exec", "c", "ls"][..],
        &["rm", "c"][..],
        &["restore"][..],
    ]
    .iter()
    .map(|args| needs_root(&command::parse(&strings(args)).unwrap().command))
    .collect();
    assert!(needing.iter().all(|needs| *needs));
    for args in [
        &["network", "ls"][..],
        &["network", "inspect", "n"][..],
        &["ps"][..],
        &["doctor"][..],
        &["version"][..],
        &["--version"][..],
        &["network", "create", "--help"][..],
        &["run", "--help"][..],
    ] {
        let command = command::parse(&strings(args)).unwrap().command;
        assert!(!needs_root(&command), "{args:?}");
    }
}

/// Docker's scripts' `rm -fv` (a container here has no volumes) and
/// `network disconnect -f` (a disconnect never waits) parse as their
/// plain forms. They were refused ("unknown shorthand flag").
#[test]
fn docker_scripts_rm_volumes_and_forced_disconnect_are_accepted() {
    let parse = |args: &[&str]| command::parse(&strings(args)).unwrap().command;
    match parse(&["rm", "-fv", "a", "b"]) {
        Command::Remove { force, names } => {
            assert!(force);
            assert_eq!(names, ["a", "b"]);
        }
        other => panic!("{other:?}"),
    }
    match parse(&["rm", "--volumes", "a"]) {
        Command::Remove { force, names } => assert!(!force && names == ["a"]),
        other => panic!("{other:?}"),
    }
    match parse(&["network", "disconnect", "-f", "n", "c"]) {
        Command::NetworkDisconnect { network, targets } => {
            assert_eq!(network, "n");
            assert_eq!(targets.len(), 1);
        }
        other => panic!("{other:?}"),
    }
}

/// `-o KEY` without `=` is the key with an empty value, as Docker's
/// `--opt` takes it: `-o parent` asks for an isolated network, as `-o
/// parent=` does. It was refused ("expected KEY=VALUE").
#[test]
fn an_option_without_a_value_is_the_empty_value() {
    let parsed = command::parse(&strings(&[
        "network",
        "create",
        "-d",
        "ipvlan",
        "-o",
        "parent",
        "--opt=ipvlan_mode",
        "n1",
    ]))
    .unwrap();
    let command::Command::NetworkCreate(create) = parsed.command else {
        panic!("not a network create: {parsed:?}");
    };
    assert_eq!(
        create.options,
        [("parent", ""), ("ipvlan_mode", "")].map(|(k, v)| (k.to_string(), v.to_string()))
    );
}
