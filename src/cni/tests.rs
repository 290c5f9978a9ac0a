//! Unit tests of the config reader and the plugin path search.

use std::path::PathBuf;

use super::config::{decode, HostLocal, Ipam, NetConf, VlanMaster};
use super::delegate::find_in_path;
use super::env::{Attachment, Command};
use super::error::{CniError, ErrorCode};
use crate::driver::{IpvlanFlag, IpvlanMode};

fn read(text: &str, command: Command) -> Result<NetConf, CniError> {
    NetConf::read(&decode(text.as_bytes())?, command)
}

fn add(text: &str) -> Result<NetConf, CniError> {
    read(text, Command::Add)
}

fn fails(text: &str, command: Command) -> (ErrorCode, String) {
    let mut error = read(text, command).unwrap_err();
    (error.code, std::mem::take(&mut error.msg))
}

const HOST_LOCAL: &str = r#""ipam": {"type": "host-local", "subnet": "10.1.2.0/24"}"#;

fn conf(extra: &str) -> String {
    format!(r#"{{"cniVersion": "1.0.0", "name": "net1", "type": "ipvlan", {HOST_LOCAL}{extra}}}"#)
}

/// A `dns` section that does not read refuses an ADD (code 7) but not the
/// DEL or GC a runtime then replays with the same config, which read no
/// `dns`: before, that DEL failed for good, and the runtime retried it.
#[test]
fn a_bad_dns_section_refuses_an_add_not_its_del() {
    for dns in [
        r#", "dns": {"nameservers": "10.0.0.1"}"#,
        r#", "dns": ["10.0.0.1"]"#,
        r#", "dns": {"domain": 7}"#,
    ] {
        assert_eq!(
            fails(&conf(dns), Command::Add).0,
            ErrorCode::InvalidConfig,
            "{dns}"
        );
        // GC needs 1.1.0.
        let text = conf(dns).replace("1.0.0", "1.1.0");
        for command in [Command::Del, Command::Gc] {
            let read = read(&text, command).unwrap_or_else(|e| panic!("{dns}: {e:?}"));
            assert_eq!(read.dns, Default::default(), "{dns}");
        }
    }
}

#[test]
fn the_reference_example_config_is_read() {
    let conf = add(r#"{
        "cniVersion": "1.0.0", "name": "mynet", "type": "ipvlan", "master": "eth0",
        "mode": "l3s", "mtu": 1400, "linkInContainer": true, "unknownKey": {"x": 1},
        "dns": {"nameservers": ["10.1.2.1"], "domain": "example.org"},
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.1.2.0/24"}]]}
    }"#)
    .unwrap();
    assert_eq!(conf.name, "mynet");
    assert_eq!(conf.plugin_type, "ipvlan");
    let link = conf.link.unwrap();
    assert_eq!(link.master.unwrap().name, "eth0");
    assert_eq!(link.mode, IpvlanMode::L3s);
    assert_eq!(link.flag, IpvlanFlag::Bridge);
    assert_eq!(link.mtu, Some(1400));
    assert!(link.link_in_container);
    assert_eq!(conf.dns.domain.as_deref(), Some("example.org"));
    // A delegated plugin's section is its own business: not read by us.
    assert_eq!(
        conf.ipam,
        Some(Ipam::Delegated {
            plugin: "host-local".into()
        })
    );
}

/// Keys are matched whatever their case, the last one winning, as Go
/// decodes the reference plugins' configs: before, `"Master"` and `"MTU"`
/// were passed over, and the link went to the default route's interface
/// with the master's MTU.
#[test]
fn keys_are_matched_whatever_their_case_as_go_reads_them() {
    let conf = add(r#"{
        "cniVersion": "1.0.0", "Name": "mynet", "TYPE": "ipvlan", "Master": "eth1",
        "mode": "l2", "Mode": "l3", "MTU": 1400,
        "IPAM": {"Type": "host-local", "subnet": "10.1.2.0/24"}
    }"#)
    .unwrap();
    assert_eq!(conf.name, "mynet");
    let link = conf.link.unwrap();
    assert_eq!(link.master.unwrap().name, "eth1");
    assert_eq!(link.mode, IpvlanMode::L3);
    assert_eq!(link.mtu, Some(1400));
    assert_eq!(
        conf.ipam,
        Some(Ipam::Delegated {
            plugin: "host-local".into()
        })
    );
}

#[test]
fn defaults_are_the_references() {
    let link = add(&conf("")).unwrap().link.unwrap();
    assert_eq!(link.master, None);
    assert_eq!(link.mode, IpvlanMode::L2);
    assert_eq!(link.flag, IpvlanFlag::Bridge);
    assert_eq!(link.mtu, None);
    assert!(!link.link_in_container);
    let empty = add(&conf(r#", "mode": "", "mtu": 0, "master": "", "flag": """#)).unwrap();
    assert_eq!(empty.link.unwrap(), link);
}

#[test]
fn our_flag_and_vlan_masters_are_read() {
    let link = add(&conf(r#", "flag": "private", "master": "eth0.10""#))
        .unwrap()
        .link
        .unwrap();
    assert_eq!(link.flag, IpvlanFlag::Private);
    let master = link.master.unwrap();
    assert_eq!(master.name, "eth0.10");
    assert_eq!(
        master.vlan,
        Some(VlanMaster {
            base: "eth0".into(),
            id: 10
        })
    );
    // Not of the form: a plain name, used only if it exists.
    for name in ["eth0.0", "eth0.4095", "eth0.1.2", ".10", "eth0.", "eth0.x"] {
        let link = add(&conf(&format!(r#", "master": "{name}""#)))
            .unwrap()
            .link
            .unwrap();
        assert_eq!(link.master.unwrap().vlan, None, "{name}");
    }
}

#[test]
fn bad_link_keys_are_code_7_with_a_specific_message() {
    for (extra, msg) in [
        (
            r#", "mode": "l4""#,
            r#"unknown ipvlan mode: "l4" (use l2, l3 or l3s)"#,
        ),
        (
            r#", "mode": "L2""#,
            r#"unknown ipvlan mode: "L2" (use l2, l3 or l3s)"#,
        ),
        (
            r#", "flag": "passthru""#,
            r#"unknown ipvlan flag: "passthru" (use bridge, private or vepa)"#,
        ),
        (
            r#", "mtu": 67"#,
            "mtu 67 is out of range: use 0 (the master's MTU) or 68 to 65535",
        ),
        (
            r#", "mtu": 65536"#,
            "mtu 65536 is out of range: use 0 (the master's MTU) or 68 to 65535",
        ),
        (
            r#", "mtu": -1"#,
            "mtu must be a whole number from 0 to 4294967295, not -1",
        ),
        (
            r#", "mtu": 1500.5"#,
            "mtu must be a whole number from 0 to 4294967295, not 1500.5",
        ),
        (r#", "mtu": "1500""#, "mtu must be a number, not a string"),
        (
            r#", "master": "a very long name!""#,
            r#"master "a very long name!" is not a valid interface name: 1 to 15 bytes, no '/', ':', '%' or whitespace"#,
        ),
        (r#", "master": 5"#, "master must be a string, not a number"),
        (
            r#", "linkInContainer": "yes""#,
            "linkInContainer must be a boolean, not a string",
        ),
        (r#", "dns": []"#, "dns must be an object, not an array"),
        (
            r#", "dns": {"search": "a"}"#,
            "dns.search must be an array, not a string",
        ),
    ] {
        assert_eq!(
            fails(&conf(extra), Command::Add),
            (ErrorCode::InvalidConfig, msg.to_string()),
            "{extra}"
        );
    }
}

#[test]
fn del_ignores_the_link_keys_but_not_the_name_or_version() {
    let conf_text =
        conf(r#", "mode": "l4", "master": "no such/master", "mtu": 5, "prevResult": {"ips": 3}"#);
    let del = read(&conf_text, Command::Del).unwrap();
    assert_eq!(del.link, None);
    assert_eq!(del.prev_result, None);
    assert_eq!(
        fails(&conf_text, Command::Check).0,
        ErrorCode::InvalidConfig
    );
    let nameless = r#"{"cniVersion": "1.0.0", "type": "ipvlan"}"#;
    assert_eq!(
        fails(nameless, Command::Del),
        (ErrorCode::InvalidConfig, "missing network name".into())
    );
    let future = r#"{"cniVersion": "9.9.9", "name": "n"}"#;
    assert_eq!(
        fails(future, Command::Del).0,
        ErrorCode::IncompatibleVersion
    );
}

#[test]
fn the_checks_come_in_the_reference_order() {
    // JSON, then name, then version.
    assert_eq!(
        read("{", Command::Add).unwrap_err().code,
        ErrorCode::DecodingFailure
    );
    assert_eq!(
        read("", Command::Add).unwrap_err().msg,
        "no network configuration on stdin"
    );
    assert_eq!(
        read("[1]", Command::Add).unwrap_err().code,
        ErrorCode::DecodingFailure
    );
    assert_eq!(
        fails(r#"{"cniVersion": "9.9.9", "name": "a/b"}"#, Command::Add),
        (
            ErrorCode::InvalidConfig,
            "invalid characters found in network name".into()
        )
    );
    assert_eq!(
        fails(
            r#"{"cniVersion": "9.9.9", "name": "n", "mode": "l4"}"#,
            Command::Add
        )
        .0,
        ErrorCode::IncompatibleVersion
    );
    // A missing cniVersion means 0.1.0, which we do not speak.
    let missing = read(r#"{"name": "n"}"#, Command::Add).unwrap_err();
    assert_eq!(missing.code, ErrorCode::IncompatibleVersion);
    assert!(
        missing.details.starts_with(r#"config is "0.1.0""#),
        "{missing}"
    );
    assert_eq!(
        fails(r#"{"cniVersion": 1, "name": "n"}"#, Command::Add).0,
        ErrorCode::DecodingFailure
    );
    let long = "n".repeat(65);
    assert_eq!(
        fails(
            &format!(r#"{{"cniVersion": "1.0.0", "name": "{long}"}}"#),
            Command::Add
        ),
        (
            ErrorCode::InvalidConfig,
            "network name is 65 bytes long: at most 64 are allowed (it names the network's record)"
                .into()
        )
    );
}

#[test]
fn verbs_need_their_versions() {
    let at = |v: &str, command| {
        read(
            &format!(r#"{{"cniVersion": "{v}", "name": "n", {HOST_LOCAL}}}"#),
            command,
        )
    };
    for (command, too_old, ok) in [
        (Command::Check, "0.3.1", "0.4.0"),
        (Command::Status, "1.0.0", "1.1.0"),
        (Command::Gc, "1.0.0", "1.1.0"),
    ] {
        let error = at(too_old, command).unwrap_err();
        assert_eq!(error.code, ErrorCode::IncompatibleVersion);
        assert_eq!(
            error.msg,
            format!("config version does not allow {}", command.as_str())
        );
        assert!(at(ok, command).is_ok(), "{command:?} at {ok}");
    }
    assert!(at("0.3.0", Command::Add).is_ok());
    assert!(at("0.3.0", Command::Del).is_ok());
}

fn ours(ipam: &str) -> Result<HostLocal, CniError> {
    let conf = add(&format!(
        r#"{{"cniVersion": "1.1.0", "name": "n", "type": "ipvlan", "ipam": {ipam}}}"#
    ))?;
    match conf.ipam {
        Some(Ipam::Ours(host_local)) => Ok(host_local),
        other => panic!("{other:?}"),
    }
}

#[test]
fn our_ipam_reads_host_locals_keys() {
    let legacy = ours(
        r#"{"type": "ipvlan", "subnet": "10.1.2.0/24", "rangeStart": "10.1.2.10",
        "rangeEnd": "10.1.2.20", "gateway": "10.1.2.254", "dataDir": "/var/lib/cni/networks",
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.1.2.1"}]}"#,
    )
    .unwrap();
    assert_eq!(legacy.range_sets.len(), 1);
    let range = &legacy.range_sets[0].0[0];
    assert_eq!(range.subnet.to_string(), "10.1.2.0/24");
    assert_eq!(range.range_start, Some("10.1.2.10".parse().unwrap()));
    assert_eq!(range.range_end, Some("10.1.2.20".parse().unwrap()));
    assert_eq!(range.gateway, Some("10.1.2.254".parse().unwrap()));
    assert_eq!(legacy.routes.len(), 2);
    assert_eq!(
        legacy.data_dir,
        Some(PathBuf::from("/var/lib/cni/networks"))
    );
    let dual = ours(
        r#"{"type": "ipvlan", "ranges": [[{"subnet": "10.1.2.0/24"}, {"subnet": "10.1.3.0/24"}],
        [{"subnet": "2001:db8:1::/64"}]]}"#,
    )
    .unwrap();
    assert_eq!(dual.range_sets.len(), 2);
    assert_eq!(dual.range_sets[0].0.len(), 2);
}

/// An IPv4-mapped IPv6 address (`::ffff:10.1.2.10`) is the IPv4 address,
/// as host-local canonicalises it, wherever an address is read: a range's
/// start, end and gateway, and the addresses asked for. Before, each was
/// kept as IPv6: not in the range's subnet (code 7), or in no subnet.
#[test]
fn ipv4_mapped_addresses_are_read_as_ipv4() {
    let ipam = ours(
        r#"{"type": "ipvlan", "subnet": "10.1.2.0/24", "rangeStart": "::ffff:10.1.2.10",
        "rangeEnd": "::ffff:10.1.2.20", "gateway": "::ffff:10.1.2.254"}"#,
    )
    .unwrap();
    let range = &ipam.range_sets[0].0[0];
    assert_eq!(range.range_start, Some("10.1.2.10".parse().unwrap()));
    assert_eq!(range.range_end, Some("10.1.2.20".parse().unwrap()));
    assert_eq!(range.gateway, Some("10.1.2.254".parse().unwrap()));
    let conf = add(r#"{"cniVersion": "1.1.0", "name": "n", "type": "ipvlan",
        "ipam": {"type": "ipvlan", "subnet": "10.1.2.0/24"},
        "runtimeConfig": {"ips": ["::ffff:10.1.2.5/24"]},
        "args": {"cni": {"ips": ["::ffff:10.1.2.6"]}}}"#)
    .unwrap();
    let wanted: Vec<std::net::IpAddr> = ["10.1.2.5", "10.1.2.6"]
        .map(|a| a.parse().unwrap())
        .to_vec();
    assert_eq!(conf.requested_ips, wanted);
}

#[test]
fn bad_ipam_sections_are_code_7_naming_the_key() {
    for (ipam, msg) in [
        (r#"{"type": "../../bin/sh"}"#, r#"ipam.type "../../bin/sh" must be a plugin name, not a path"#),
        (r#"{"type": "ipvlan"}"#, "ipam: no IP ranges specified (set ipam.ranges or ipam.subnet, or pass runtimeConfig.ipRanges)"),
        (r#"{"type": "ipvlan", "rangeStart": "10.0.0.1"}"#, "ipam.rangeStart is set but ipam.subnet is not"),
        (r#"{"type": "ipvlan", "subnet": "10.1.2.5/24"}"#, "ipam.subnet 10.1.2.5/24 has host bits set (the subnet is 10.1.2.0/24)"),
        (r#"{"type": "ipvlan", "subnet": "10.1.2.0/31"}"#, "ipam.subnet 10.1.2.0/31 is too small: at most /30"),
        (r#"{"type": "ipvlan", "subnet": "2001:db8::/127"}"#, "ipam.subnet 2001:db8::/127 is too small: at most /126"),
        (r#"{"type": "ipvlan", "subnet": "10.1.2.0"}"#, r#"ipam.subnet "10.1.2.0" is not an address with a prefix length (like 10.1.2.0/24)"#),
        (r#"{"type": "ipvlan", "subnet": "10.1.2.0/24", "gateway": "10.1.3.1"}"#, "ipam.gateway 10.1.3.1 is not in the subnet 10.1.2.0/24"),
        (r#"{"type": "ipvlan", "subnet": "10.1.2.0/24", "rangeStart": "10.1.2.9", "rangeEnd": "10.1.2.8"}"#, "ipam.rangeStart 10.1.2.9 is after ipam.rangeEnd 10.1.2.8"),
        (r#"{"type": "ipvlan", "ranges": [[]]}"#, "ipam.ranges[0] is an empty range set"),
        (r#"{"type": "ipvlan", "ranges": [{"subnet": "10.1.2.0/24"}]}"#, "ipam.ranges[0] must be an array of ranges, not an object"),
        (r#"{"type": "ipvlan", "ranges": [[{"subnet": "10.1.2.0/24"}, {"subnet": "2001:db8::/64"}]]}"#, "ipam.ranges[0] mixes IPv4 and IPv6 ranges: each range set yields one address of one family"),
        (r#"{"type": "ipvlan", "ranges": [[{"subnet": "10.1.0.0/16"}], [{"subnet": "10.1.2.0/24"}]]}"#, "ipam.ranges: subnet 10.1.2.0/24 of range set 1 overlaps subnet 10.1.0.0/16 of range set 0"),
        (r#"{"type": "ipvlan", "ranges": [[{"rangeStart": "10.1.2.9"}]]}"#, "ipam.ranges[0][0].subnet is missing"),
        (r#"{"type": "ipvlan", "subnet": "10.1.2.0/24", "routes": [{"gw": "10.1.2.1"}]}"#, "ipam.routes[0].dst is missing"),
        (r#"{"type": "ipvlan", "subnet": "10.1.2.0/24", "routes": [{"dst": "0.0.0.0/0", "gw": "x"}]}"#, r#"ipam.routes[0].gw "x" is not an IP address"#),
    ] {
        let error = ours(ipam).unwrap_err();
        assert_eq!((error.code, error.msg.as_str()), (ErrorCode::InvalidConfig, msg), "{ipam}");
    }
}

/// An `ipam` section without a type names no IPAM plugin, as Go reads it
/// for the reference plugins: an ADD takes its addresses from `prevResult`
/// (chained), a DEL has nothing to release. Before, `"ipam": {}` was code 7
/// on both, so a runtime's DEL could never succeed.
#[test]
fn an_ipam_section_without_a_type_is_none() {
    for ipam in [r#"{}"#, r#"{"type": ""}"#, r#"{"routes": []}"#] {
        let text = format!(
            r#"{{"cniVersion": "1.0.0", "name": "n", "type": "ipvlan", "master": "eth0", "ipam": {ipam},
                "prevResult": {{"ips": [{{"address": "10.1.2.7/24"}}]}}}}"#
        );
        let doc = crate::json::parse(&text).unwrap();
        for command in [Command::Add, Command::Del] {
            let conf = NetConf::read(&doc, command)
                .unwrap_or_else(|e| panic!("{ipam} {command:?}: {}", e.msg));
            assert!(conf.ipam.is_none(), "{ipam} {command:?}: {:?}", conf.ipam);
        }
        let conf = NetConf::read(&doc, Command::Add).unwrap();
        assert!(matches!(
            crate::cni::attach::address_source(&conf),
            Ok(crate::cni::attach::AddressSource::PrevResult(_))
        ));
    }
}

#[test]
fn requested_addresses_are_read_only_for_our_ipam() {
    let text = |ipam: &str| {
        format!(
            r#"{{"cniVersion": "1.0.0", "name": "n", "type": "ipvlan", "ipam": {ipam},
                "runtimeConfig": {{"ips": ["10.1.2.7/24"], "ipRanges": [[{{"subnet": "10.9.0.0/16"}}]], "mac": "x"}},
                "args": {{"cni": {{"ips": ["10.1.2.8"], "labels": []}}}}}}"#
        )
    };
    let conf = add(&text(r#"{"type": "ipvlan", "subnet": "10.1.2.0/24"}"#)).unwrap();
    assert_eq!(
        conf.requested_ips,
        vec![
            "10.1.2.7".parse::<std::net::IpAddr>().unwrap(),
            "10.1.2.8".parse().unwrap()
        ]
    );
    assert_eq!(conf.runtime_ranges.len(), 1);
    let delegated = add(&text(r#"{"type": "host-local"}"#)).unwrap();
    assert!(delegated.requested_ips.is_empty() && delegated.runtime_ranges.is_empty());
    let bad =
        add(&text(r#"{"type": "ipvlan", "subnet": "10.1.2.0/24"}"#).replace("10.1.2.8", "ten"))
            .unwrap_err();
    assert_eq!(bad.msg, r#"args.cni.ips holds "ten", not an IP address"#);
}

#[test]
fn gc_reads_the_valid_attachments_under_either_name() {
    let gc = |key: &str, list: &str| {
        read(
            &format!(r#"{{"cniVersion": "1.1.0", "name": "n", {HOST_LOCAL}, "{key}": {list}}}"#),
            Command::Gc,
        )
    };
    let expected = Some(vec![Attachment {
        container_id: "c1".into(),
        ifname: "eth0".into(),
    }]);
    for key in ["cni.dev/valid-attachments", "cni.dev/attachments"] {
        assert_eq!(
            gc(key, r#"[{"containerID": "c1", "ifname": "eth0"}]"#)
                .unwrap()
                .valid_attachments,
            expected
        );
    }
    assert_eq!(gc("other", "[]").unwrap().valid_attachments, None);
    // libcni's list of none, as Go marshals a nil slice: nothing is valid.
    for key in ["cni.dev/valid-attachments", "cni.dev/attachments"] {
        assert_eq!(gc(key, "null").unwrap().valid_attachments, Some(Vec::new()));
    }
    let bad = gc(
        "cni.dev/valid-attachments",
        r#"[{"containerID": "c 1", "ifname": "eth0"}]"#,
    )
    .unwrap_err();
    assert_eq!(
        bad.msg,
        r#"cni.dev/valid-attachments[0].containerID "c 1" is not a valid container id"#
    );
    let no_ifname = gc("cni.dev/valid-attachments", r#"[{"containerID": "c1"}]"#).unwrap_err();
    assert_eq!(
        no_ifname.msg,
        "cni.dev/valid-attachments[0].ifname is missing"
    );
}

#[test]
fn prev_results_are_read_in_any_version() {
    for (version, ip) in [
        (
            "0.3.0",
            r#"{"version": "4", "address": "10.1.2.2/24", "interface": 0}"#,
        ),
        (
            "0.4.0",
            r#"{"version": "4", "address": "10.1.2.2/24", "interface": 0}"#,
        ),
        ("1.0.0", r#"{"address": "10.1.2.2/24", "interface": 0}"#),
        ("1.1.0", r#"{"address": "10.1.2.2/24", "interface": 0}"#),
    ] {
        let conf = add(&format!(
            r#"{{"cniVersion": "{version}", "name": "n", "type": "ipvlan",
                "prevResult": {{"cniVersion": "{version}", "interfaces": [{{"name": "eth0"}}], "ips": [{ip}]}}}}"#
        ))
        .unwrap();
        let prev = conf.prev_result.unwrap();
        assert_eq!(prev.ips[0].address.to_string(), "10.1.2.2/24", "{version}");
        assert_eq!(conf.ipam, None, "chained mode");
    }
}

#[test]
fn plugins_are_found_in_path_order_as_regular_files() {
    let base = std::env::temp_dir().join(format!("ipvlan-cni-path-{}", std::process::id()));
    let (a, b, c) = (base.join("a"), base.join("b"), base.join("c"));
    for dir in [&a, &b, &c] {
        std::fs::create_dir_all(dir).unwrap();
    }
    // A directory of the plugin's name is no plugin: the search goes on.
    std::fs::create_dir_all(a.join("host-local")).unwrap();
    std::fs::write(b.join("host-local"), "").unwrap();
    std::fs::write(c.join("host-local"), "").unwrap();
    std::os::unix::fs::symlink(b.join("host-local"), a.join("linked")).unwrap();
    let dirs = vec![base.join("missing"), a.clone(), b.clone(), c.clone()];
    assert_eq!(
        find_in_path("host-local", &dirs).unwrap(),
        b.join("host-local")
    );
    assert_eq!(find_in_path("linked", &dirs).unwrap(), a.join("linked"));
    let missing = find_in_path("dhcp", &dirs).unwrap_err();
    assert_eq!(missing.code, ErrorCode::Internal);
    assert_eq!(
        missing.msg,
        format!(
            "failed to find plugin \"dhcp\" in path [{} {} {} {}]",
            base.join("missing").display(),
            a.display(),
            b.display(),
            c.display()
        )
    );
    assert_eq!(
        find_in_path("../b/host-local", &dirs).unwrap_err().msg,
        "invalid plugin name: ../b/host-local"
    );
    assert_eq!(
        find_in_path("", &dirs).unwrap_err().msg,
        "no plugin name provided"
    );
    assert!(find_in_path("host-local", &[]).is_err());
    std::fs::remove_dir_all(&base).unwrap();
}

/// host-local takes its ranges from `runtimeConfig.ipRanges` alone (the
/// `ipRanges` capability a runtime fills with the node's pod CIDR); so
/// does our IPAM. Before, it was code 7 "no IP ranges specified". Without
/// either it still is.
#[test]
fn ranges_from_runtime_config_alone_are_enough() {
    let text = |runtime: &str| {
        format!(
            r#"{{"cniVersion": "1.0.0", "name": "n", "type": "macvlan",
                "ipam": {{"type": "ipvlan"}}{runtime}}}"#
        )
    };
    let conf = add(&text(
        r#", "runtimeConfig": {"ipRanges": [[{"subnet": "10.8.0.0/24"}]]}"#,
    ))
    .unwrap_or_else(|e| panic!("{}", e.msg));
    assert_eq!(conf.runtime_ranges.len(), 1);
    // Beside configured ranges, as host-local has them: the runtime's
    // first, and none overlapping another (before, the runtime's range
    // took the configured one's place, gateway and bounds, unsaid).
    let both = |runtime_subnet: &str| {
        format!(
            r#"{{"cniVersion": "1.0.0", "name": "n", "type": "macvlan",
                "ipam": {{"type": "ipvlan", "ranges": [[{{"subnet": "10.1.0.0/24",
                    "gateway": "10.1.0.254", "rangeStart": "10.1.0.100"}}]]}},
                "runtimeConfig": {{"ipRanges": [[{{"subnet": "{runtime_subnet}"}}]]}}}}"#
        )
    };
    assert!(add(&both("10.8.0.0/24")).is_ok());
    for overlapping in ["10.1.0.0/24", "10.1.0.0/16", "10.1.0.128/25"] {
        let (code, msg) = fails(&both(overlapping), Command::Add);
        assert_eq!(code, ErrorCode::InvalidConfig, "{overlapping}");
        assert_eq!(
            msg,
            format!(
                "runtimeConfig.ipRanges, then ipam.ranges: subnet 10.1.0.0/24 of range set 1 \
                 overlaps subnet {overlapping} of range set 0"
            )
        );
    }
    for runtime in ["", r#", "runtimeConfig": {"ipRanges": []}"#] {
        let (code, msg) = fails(&text(runtime), Command::Add);
        assert_eq!(code, ErrorCode::InvalidConfig, "{runtime}");
        assert!(
            msg.starts_with("ipam: no IP ranges specified"),
            "{runtime}: {msg}"
        );
    }
    // A release needs no ranges.
    assert!(read(&text(""), Command::Del).is_ok());
}

/// An empty string where an address may be is no address, as Go's
/// `net.IP` reads it for the reference plugins: `"gateway": ""` of a
/// range, `"gw": ""` of a route. Before, code 7 "is not an IP address".
#[test]
fn an_empty_address_is_none_as_go_reads_it() {
    let host_local = ours(
        r#"{"type": "ipvlan", "ranges": [[{"subnet": "10.5.0.0/24", "gateway": ""}]],
            "routes": [{"dst": "0.0.0.0/0", "gw": ""}]}"#,
    )
    .unwrap_or_else(|e| panic!("{}", e.msg));
    assert_eq!(host_local.range_sets[0].0[0].gateway, None);
    assert_eq!(host_local.routes[0].gw, None);
    let error = ours(r#"{"type": "ipvlan", "subnet": "10.5.0.0/24", "gateway": " "}"#).unwrap_err();
    assert_eq!(error.msg, r#"ipam.gateway " " is not an IP address"#);
}

/// `ipam.routes` keeps CNI 1.1.0's keys (`table`, `priority`, `scope`,
/// `mtu`, `advmss`), which host-local hands on in its result; before, our
/// IPAM dropped them.
#[test]
fn ipam_routes_keep_their_1_1_keys() {
    let host_local = ours(
        r#"{"type": "ipvlan", "subnet": "10.7.0.0/24", "routes": [{"dst": "0.0.0.0/0",
            "priority": 200, "table": 100, "scope": 0, "mtu": 1400, "advmss": 1360}]}"#,
    )
    .unwrap_or_else(|e| panic!("{}", e.msg));
    let route = &host_local.routes[0];
    assert_eq!(
        (
            route.priority,
            route.table,
            route.scope,
            route.mtu,
            route.advmss
        ),
        (Some(200), Some(100), Some(0), Some(1400), Some(1360))
    );
    let error = ours(
        r#"{"type": "ipvlan", "subnet": "10.7.0.0/24", "routes": [{"dst": "0.0.0.0/0", "scope": 256}]}"#,
    )
    .unwrap_err();
    assert_eq!(
        error.msg,
        "ipam.routes[0].scope must be at most 255, not 256"
    );
}

/// An error is written in the version the request ran as: `cniVersion`
/// found whatever its case, the last one winning, as the config's reading
/// (and Go) finds it. Before, an exact `cniVersion` only: `CNIVersion`
/// 0.4.0 ran as 0.4.0 and its errors said 1.1.0.
#[test]
fn an_error_is_written_in_the_version_the_request_ran_as() {
    use super::config::requested_version;
    use super::version::Version;
    let version_of = |text: &str| requested_version(&decode(text.as_bytes()).unwrap());
    assert_eq!(
        version_of(r#"{"CNIVersion": "0.4.0"}"#),
        Some(Version::V0_4_0)
    );
    assert_eq!(
        version_of(r#"{"cniVersion": "1.0.0", "CNIVERSION": "0.4.0"}"#),
        Some(Version::V0_4_0)
    );
    assert_eq!(version_of(r#"["cniVersion"]"#), None);
    let doc = decode(br#"{"CNIVersion": "0.4.0", "name": "n", "type": "ipvlan"}"#).unwrap();
    let conf = NetConf::read(&doc, Command::Del).unwrap();
    assert_eq!(Some(conf.cni_version), requested_version(&doc));
}
