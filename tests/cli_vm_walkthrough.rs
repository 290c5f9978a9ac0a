//! Docker's ipvlan walkthrough through the `ipvlan` binary, every command line as written
//! there, on the walkthrough topology in the QEMU guest (`cargo xtask
//! vm-test`). What each step shows is read back through the CLI itself
//! (`run`/`exec` of `ip` and `ping`, `network inspect`, `ps`) and iproute2.

mod vm_support;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use ipvlan::json::{self, Value};
use vm_support::{default_routes, ip, ip_ok, link, topology_up};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The binary with a scratch state directory and the system's /run/netns and
/// /etc/netns (as the product runs), cleaned up on drop.
struct Cli {
    state_dir: PathBuf,
}

impl Cli {
    fn new() -> Cli {
        let state_dir = PathBuf::from(format!(
            "/tmp/ipvlan-cli-walkthrough-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&state_dir);
        Cli { state_dir }
    }

    /// Runs one command line written as in the docs (`ipvlan ...`).
    fn line(&self, line: &str) -> Output {
        println!("+ {line}");
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(words[0], "ipvlan", "{line}");
        let binary = std::env::var("IPVLAN_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_ipvlan").to_string());
        let output = Command::new(binary)
            .args(&words[1..])
            .env("IPVLAN_STATE_DIR", &self.state_dir)
            .env_remove("IPVLAN_NETNS_DIR")
            .env_remove("IPVLAN_ETC_NETNS_DIR")
            .stdin(Stdio::null())
            .output()
            .expect("runs ipvlan");
        print!("{}{}", text(&output.stdout), text(&output.stderr));
        output
    }

    /// Runs a line that must succeed; returns its stdout.
    fn ok(&self, line: &str) -> String {
        let output = self.line(line);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{line}: {}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
        text(&output.stdout)
    }

    /// One ping from a container, through `ipvlan exec`; retried a few times
    /// because the first ARP/ND exchange may be slow under emulation.
    fn ping(&self, from: &str, target: &str) -> bool {
        let family = if target.contains(':') { "-6 " } else { "" };
        let line = format!("ipvlan exec {from} ping {family}-c 1 -W 2 {target}");
        (0..3).any(|_| self.line(&line).status.success())
    }

    fn inspect(&self, network: &str) -> Value {
        let document = json::parse(&self.ok(&format!("ipvlan network inspect {network}")))
            .expect("inspect prints JSON");
        document.as_array().expect("an array")[0].clone()
    }

    /// A container's address on `network` (`IPv4Address` or `IPv6Address`), without prefix.
    fn address(&self, network: &str, container: &str, field: &str) -> String {
        let network_json = self.inspect(network);
        let value = network_json
            .get("Containers")
            .and_then(|containers| containers.get(container))
            .and_then(|endpoint| endpoint.get(field))
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{container} has no {field} on {network}: {network_json}"));
        value.split('/').next().unwrap().to_string()
    }

    /// The `IPAM.Config[].Gateway` values of `network`, in order.
    fn gateways(&self, network: &str) -> Vec<String> {
        let network_json = self.inspect(network);
        network_json
            .get("IPAM")
            .and_then(|ipam| ipam.get("Config"))
            .and_then(Value::as_array)
            .unwrap_or(&[])
            .iter()
            .map(|config| {
                config
                    .get("Gateway")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let names = self.line("ipvlan ps -q");
        for name in text(&names.stdout).lines() {
            self.line(&format!("ipvlan rm -f {name}"));
        }
        let networks = self.line("ipvlan network ls -q --no-trunc");
        for id in text(&networks.stdout).lines() {
            self.line(&format!("ipvlan network rm {id}"));
        }
        // Step 5 gave the router addresses on VLAN 114; leave the topology as built.
        let _ = ip_ok(&[
            "-n",
            "router",
            "addr",
            "del",
            "192.168.114.254/24",
            "dev",
            "trunk.114",
        ]);
        let _ = ip_ok(&[
            "-n",
            "router",
            "addr",
            "del",
            "192.168.116.254/24",
            "dev",
            "trunk.114",
        ]);
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

fn step(n: u32, what: &str) {
    println!("--- step {n}: {what}");
}

fn has_default_via(container: &str, family: &str, gateway: &str) -> bool {
    default_routes(container, family)
        .iter()
        .any(|(via, dev)| via.as_deref() == Some(gateway) && dev == "eth0")
}

fn has_default_dev_only(container: &str, family: &str) -> bool {
    default_routes(container, family) == [(None, "eth0".to_string())]
}

#[test]
fn walkthrough_through_the_binary() {
    topology_up();
    let cli = Cli::new();

    step(1, "L2 on the host's network");
    cli.ok("ipvlan network create -d ipvlan --subnet=192.168.1.0/24 --gateway=192.168.1.1 -o ipvlan_mode=l2 -o parent=eth0 db_net");
    let addr = cli.ok("ipvlan run --net=db_net --rm ip addr");
    assert!(addr.contains("inet 192.168.1.2/24"), "{addr}");
    let routes = cli.ok("ipvlan run --net=db_net --rm ip route");
    assert!(
        routes.contains("default via 192.168.1.1 dev eth0"),
        "{routes}"
    );
    assert!(cli
        .line("ipvlan run --net=db_net --rm ping -c 2 -W 2 192.168.1.1")
        .status
        .success());
    assert_eq!(
        cli.line("ipvlan run --net=db_net --rm ping -c 1 -W 1 192.168.1.250")
            .status
            .code(),
        Some(1),
        "the host's own address must not answer"
    );

    step(2, "defaults and name resolution");
    assert_eq!(cli.ok("ipvlan network rm db_net"), "db_net\n");
    cli.ok("ipvlan network create -d ipvlan --subnet=192.168.1.0/24 -o parent=eth0 db_net_ipv");
    assert_eq!(
        cli.ok("ipvlan run --net=db_net_ipv --name=ipv1 -itd /bin/sh"),
        "ipv1\n"
    );
    assert!(has_default_via("ipv1", "-4", "192.168.1.1"));
    let pings = cli.ok("ipvlan run --net=db_net_ipv --name=ipv2 --rm ping -c 4 ipv1");
    assert!(pings.contains("4 packets received"), "{pings}");

    step(3, "isolated networks");
    cli.ok("ipvlan network create -d ipvlan --subnet=192.168.10.0/24 isolated1");
    cli.ok("ipvlan network create -d ipvlan --subnet=192.168.11.0/24 --internal isolated2");
    cli.ok("ipvlan network create -d ipvlan isolated3");
    for (network, name) in [
        ("isolated1", "cid1"),
        ("isolated2", "cid2"),
        ("isolated3", "cid3"),
    ] {
        cli.ok(&format!(
            "ipvlan run --net={network} --name={name} -itd /bin/sh"
        ));
        assert!(
            default_routes(name, "-4").is_empty(),
            "{name} has a default route"
        );
    }
    // Internal networks reserve a gateway too, as the docs show: containers
    // start at .2 and get no default route.
    assert_eq!(cli.gateways("isolated1"), vec!["192.168.10.1"]);
    assert_eq!(cli.gateways("isolated2"), vec!["192.168.11.1"]);
    assert_eq!(
        cli.address("isolated1", "cid1", "IPv4Address"),
        "192.168.10.2"
    );
    assert_eq!(
        cli.address("isolated2", "cid2", "IPv4Address"),
        "192.168.11.2"
    );
    let isolated1 = cli.inspect("isolated1");
    let dummy = isolated1
        .get("Options")
        .and_then(|options| options.get("parent"))
        .and_then(Value::as_str)
        .unwrap()
        .to_string();
    assert!(dummy.starts_with("di-"), "{dummy}");
    assert!(cli.line("ipvlan exec -it cid1 /bin/sh").status.success());
    cli.ok("ipvlan run --net=isolated1 --name=cid4 -itd /bin/sh");
    let cid4 = cli.address("isolated1", "cid4", "IPv4Address");
    assert!(cli.ping("cid1", &cid4));

    step(4, "802.1Q trunk, L2");
    cli.ok("ipvlan network create -d ipvlan --subnet=192.168.20.0/24 --gateway=192.168.20.1 -o parent=eth0.20 ipvlan20");
    cli.ok("ipvlan network create -d ipvlan --subnet=192.168.30.0/24 --gateway=192.168.30.1 -o parent=eth0.30 -o ipvlan_mode=l2 ipvlan30");
    assert!(link(None, "eth0.20").is_some() && link(None, "eth0.30").is_some());
    for (network, name) in [
        ("ipvlan20", "ivlan_test1"),
        ("ipvlan20", "ivlan_test2"),
        ("ipvlan30", "ivlan_test3"),
        ("ipvlan30", "ivlan_test4"),
    ] {
        cli.ok(&format!(
            "ipvlan run --net={network} -itd --name {name} /bin/sh"
        ));
    }
    let test2 = cli.address("ipvlan20", "ivlan_test2", "IPv4Address");
    let test4 = cli.address("ipvlan30", "ivlan_test4", "IPv4Address");
    assert!(cli.ping("ivlan_test1", &test2));
    assert!(cli.ping("ivlan_test1", "192.168.20.1"));
    assert!(cli.ping("ivlan_test3", &test4));
    let routes = cli.ok("ipvlan exec ivlan_test3 ip route");
    assert!(
        routes.contains("default via 192.168.30.1 dev eth0"),
        "{routes}"
    );
    assert!(
        cli.ping("ivlan_test1", &test4),
        "VLAN 20 reaches VLAN 30 through the router"
    );
    let refused = cli.line("ipvlan network rm ipvlan20");
    assert_eq!(
        refused.status.code(),
        Some(1),
        "network rm with containers attached"
    );
    assert!(link(None, "eth0.20").is_some());
    cli.ok("ipvlan rm -f ivlan_test1 ivlan_test2 ivlan_test3 ivlan_test4");
    cli.ok("ipvlan network rm ipvlan20 ipvlan30");
    assert!(link(None, "eth0.20").is_none() && link(None, "eth0.30").is_none());

    step(5, "multi-subnet L2");
    cli.ok("ipvlan network create -d ipvlan --subnet=192.168.114.0/24 --subnet=192.168.116.0/24 --gateway=192.168.114.254 --gateway=192.168.116.254 -o parent=eth0.114 -o ipvlan_mode=l2 ipvlan114");
    cli.ok("ipvlan run --net=ipvlan114 --ip=192.168.114.10 --name=v114 -itd /bin/sh");
    cli.ok("ipvlan run --net=ipvlan114 --ip=192.168.116.10 --name=v116 -itd /bin/sh");
    assert!(has_default_via("v114", "-4", "192.168.114.254"));
    assert!(has_default_via("v116", "-4", "192.168.116.254"));
    assert!(
        !cli.ping("v114", "192.168.116.10"),
        "reached without a router"
    );
    ip(&[
        "-n",
        "router",
        "addr",
        "add",
        "192.168.114.254/24",
        "dev",
        "trunk.114",
    ]);
    ip(&[
        "-n",
        "router",
        "addr",
        "add",
        "192.168.116.254/24",
        "dev",
        "trunk.114",
    ]);
    assert!(
        cli.ping("v114", "192.168.116.10"),
        "not reached through the router"
    );

    step(6, "L3, no parent, two subnets");
    cli.ok("ipvlan network create -d ipvlan --subnet=192.168.214.0/24 --subnet=10.1.214.0/24 -o ipvlan_mode=l3 ipnet210");
    cli.ok("ipvlan run --net=ipnet210 --ip=192.168.214.10 -itd /bin/sh");
    cli.ok("ipvlan run --net=ipnet210 --ip=10.1.214.10 -itd /bin/sh");
    cli.ok("ipvlan run --net=ipnet210 --ip=192.168.214.9 -it --rm ping -c 2 10.1.214.10");
    cli.ok("ipvlan run --net=ipnet210 --ip=10.1.214.9 -it --rm ping -c 2 192.168.214.10");
    let routes = cli.ok("ipvlan run --net=ipnet210 --rm ip route show default");
    assert!(
        routes.starts_with("default dev eth0") && routes.lines().count() == 1,
        "{routes}"
    );
    let link_line = cli.ok("ipvlan run --net=ipnet210 --rm ip -o link show eth0");
    assert!(link_line.contains("NOARP"), "{link_line}");

    step(7, "IPv6 L2 on VLAN 139");
    cli.ok("ipvlan network create -d ipvlan --ipv6 --subnet=2001:db8:abc2::/64 --gateway=2001:db8:abc2::22 -o parent=eth0.139 v6ipvlan139");
    cli.ok("ipvlan run --net=v6ipvlan139 --name=v6a -itd /bin/sh");
    cli.ok("ipvlan run --net=v6ipvlan139 --name=v6b -itd /bin/sh");
    let v4 = cli.address("v6ipvlan139", "v6a", "IPv4Address");
    assert!(v4.starts_with("172."), "{v4}");
    let v6a = cli.address("v6ipvlan139", "v6a", "IPv6Address");
    assert!(v6a.starts_with("2001:db8:abc2::"), "{v6a}");
    assert!(has_default_via("v6a", "-6", "2001:db8:abc2::22"));
    assert!(cli.ping("v6b", &v6a));
    assert!(cli.ping("v6a", "2001:db8:abc2::22"));

    step(8, "dual stack L2 on VLAN 140");
    cli.ok("ipvlan network create -d ipvlan --subnet=192.168.140.0/24 --subnet=192.168.142.0/24 --gateway=192.168.140.1 --gateway=192.168.142.1 --subnet=2001:db8:abc9::/64 --gateway=2001:db8:abc9::22 -o parent=eth0.140 -o ipvlan_mode=l2 ipvlan140");
    cli.ok("ipvlan run --net=ipvlan140 --name=ds1 -itd /bin/sh");
    assert_eq!(
        cli.address("ipvlan140", "ds1", "IPv4Address"),
        "192.168.140.2"
    );
    assert!(has_default_via("ds1", "-4", "192.168.140.1"));
    assert!(has_default_via("ds1", "-6", "2001:db8:abc9::22"));
    let refused = cli.line("ipvlan run --net=ipvlan140 --ip6=2001:db8:abc2::51 -it --rm /bin/sh");
    assert_eq!(refused.status.code(), Some(125));
    assert!(text(&refused.stderr)
        .contains("no configured subnet contains IP address 2001:db8:abc2::51"));
    let addr = cli.ok("ipvlan run --net=ipvlan140 --ip6=2001:db8:abc9::51 -it --rm ip -6 addr");
    assert!(addr.contains("2001:db8:abc9::51/64"), "{addr}");
    let addr = cli.ok("ipvlan run --net=ipvlan140 --ip=192.168.140.10 -it --rm ip addr");
    assert!(addr.contains("192.168.140.10/24"), "{addr}");

    step(9, "dual stack L3 on the host's parent");
    cli.ok("ipvlan rm -f ipv1");
    cli.ok("ipvlan network rm db_net_ipv");
    cli.ok("ipvlan network create -d ipvlan --subnet=192.168.110.0/24 --subnet=192.168.112.0/24 --subnet=2001:db8:abc6::/64 -o parent=eth0 -o ipvlan_mode=l3 ipnet110");
    cli.ok("ipvlan run --net=ipnet110 --name=l3a -itd /bin/sh");
    cli.ok("ipvlan run --net=ipnet110 --name=l3b --ip6=2001:db8:abc6::10 -itd /bin/sh");
    cli.ok("ipvlan run --net=ipnet110 --name=l3c --ip=192.168.112.30 -itd /bin/sh");
    cli.ok("ipvlan run --net=ipnet110 --name=l3d --ip6=2001:db8:abc6::50 --ip=192.168.112.50 -itd /bin/sh");
    // l3: every subnet has its (unrouted) gateway; the first automatic
    // address is .2, as in the docs' output.
    assert_eq!(
        cli.gateways("ipnet110"),
        vec!["192.168.110.1", "192.168.112.1", "2001:db8:abc6::1"]
    );
    assert_eq!(
        cli.address("ipnet110", "l3a", "IPv4Address"),
        "192.168.110.2"
    );
    assert_eq!(
        cli.address("ipnet110", "l3a", "IPv6Address"),
        "2001:db8:abc6::2"
    );
    for name in ["l3a", "l3b", "l3c", "l3d"] {
        assert!(has_default_dev_only(name, "-4"), "{name}: v4 default route");
        assert!(has_default_dev_only(name, "-6"), "{name}: v6 default route");
    }

    step(10, "the reuse bug");
    cli.ok("ipvlan rm -f l3d");
    for _ in 0..5 {
        cli.ok(
            "ipvlan run --net=ipnet110 --ip6=2001:db8:abc6::50 --ip=192.168.112.50 -it --rm true",
        );
    }

    step(11, "links made by hand");
    ip(&[
        "link", "add", "link", "eth0", "name", "eth0.40", "type", "vlan", "id", "40",
    ]);
    ip(&["link", "set", "eth0.40", "up"]);
    cli.ok("ipvlan network create -d ipvlan --subnet=192.168.40.0/24 --gateway=192.168.40.1 -o parent=eth0.40 ipvlan40");
    cli.ok("ipvlan run --net=ipvlan40 -itd --name ivlan_test5 /bin/sh");
    cli.ok("ipvlan run --net=ipvlan40 -itd --name ivlan_test6 /bin/sh");
    let test6 = cli.address("ipvlan40", "ivlan_test6", "IPv4Address");
    assert!(cli.ping("ivlan_test5", &test6));
    assert!(cli.ping("ivlan_test5", "192.168.40.1"));
    cli.ok("ipvlan rm -f ivlan_test5 ivlan_test6");
    cli.ok("ipvlan network rm ipvlan40");
    assert!(
        link(None, "eth0.40").is_some(),
        "a hand-made parent was deleted"
    );
    ip(&["link", "del", "eth0.40"]);
    ip(&[
        "link", "add", "link", "eth0", "name", "foo", "type", "vlan", "id", "40",
    ]);
    ip(&["link", "set", "foo", "up"]);
    cli.ok("ipvlan network create -d ipvlan --subnet=192.168.40.0/24 --gateway=192.168.40.1 -o parent=foo ipvlan40");
    cli.ok("ipvlan run --net=ipvlan40 -itd --name ivlan_test5 /bin/sh");
    assert!(cli.ping("ivlan_test5", "192.168.40.1"));
    cli.ok("ipvlan rm -f ivlan_test5");
    cli.ok("ipvlan network rm ipvlan40");
    assert!(link(None, "foo").is_some(), "foo was deleted");
    ip(&["link", "del", "foo"]);

    step(12, "restart");
    let networks = cli.ok("ipvlan network ls");
    for name in [
        "isolated1",
        "ipvlan114",
        "ipnet210",
        "v6ipvlan139",
        "ipvlan140",
        "ipnet110",
    ] {
        assert!(networks.contains(name), "{name} missing from:\n{networks}");
    }
    ip(&["link", "del", "eth0.140"]);
    ip(&["link", "del", &dummy]);
    let summary = cli.ok("ipvlan restore");
    assert!(summary.contains("parent re-created: "), "{summary}");
    assert!(link(None, "eth0.140").is_some() && link(None, &dummy).is_some());
    let addr = cli.ok("ipvlan exec ds1 ip addr show eth0");
    assert!(addr.contains("192.168.140.2/24"), "{addr}");
    let addr = cli.ok("ipvlan exec cid1 ip addr show eth0");
    assert!(addr.contains("192.168.10."), "{addr}");
    assert!(cli.ping("cid1", &cid4));
}
