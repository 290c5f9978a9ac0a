//! The walkthrough topology script (tests/vm/topology.sh), which the demo and the
//! walkthrough tests build on: it must give the router its gateways on every
//! VLAN, forward, answer the host, and leave nothing behind on `down`.

use ipvlan::json::{self, Value};
use std::process::Command;

fn topology_script() -> String {
    std::env::var("IPVLAN_TOPOLOGY").unwrap_or_else(|_| "/usr/share/ipvlan-test/topology.sh".into())
}

fn ip_path() -> String {
    std::env::var("IPVLAN_IP").unwrap_or_else(|_| "/usr/sbin/ip".into())
}

fn run(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("running {program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{program} {}` failed ({}): {}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Builds the topology; tears it down on drop.
struct Topology;

impl Topology {
    fn up() -> Self {
        // The script adds and deletes `eth0` in the current namespace: only in the VM.
        assert_eq!(
            std::env::var("IPVLAN_VM").as_deref(),
            Ok("1"),
            "this test runs only inside the QEMU guest (cargo xtask vm-test)"
        );
        run("/bin/sh", &[&topology_script(), "up"]).unwrap_or_else(|e| panic!("{e}"));
        Topology
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let _ = run("/bin/sh", &[&topology_script(), "down"]);
    }
}

/// Addresses (`ADDR/LEN`) per interface from `ip -j [-n NS] addr show`.
fn addresses(netns: Option<&str>) -> Vec<(String, Vec<String>)> {
    let mut args = Vec::new();
    if let Some(ns) = netns {
        args.extend(["-n", ns]);
    }
    args.extend(["-j", "addr", "show"]);
    let text = run(&ip_path(), &args).unwrap_or_else(|e| panic!("{e}"));
    let links = json::parse(&text).unwrap_or_else(|e| panic!("ip -j addr: {e}: {text}"));
    links
        .as_array()
        .unwrap_or_default()
        .iter()
        .map(|link| {
            let name = link
                .get("ifname")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let addrs = link
                .get("addr_info")
                .and_then(Value::as_array)
                .unwrap_or_default()
                .iter()
                .filter(|a| a.get("scope").and_then(Value::as_str) == Some("global"))
                .map(|a| {
                    let local = a.get("local").and_then(Value::as_str).unwrap_or_default();
                    let len = a
                        .get("prefixlen")
                        .and_then(Value::as_u64)
                        .unwrap_or_default();
                    format!("{local}/{len}")
                })
                .collect();
            (name, addrs)
        })
        .collect()
}

fn addresses_of(all: &[(String, Vec<String>)], name: &str) -> Vec<String> {
    all.iter()
        .find(|(n, _)| n == name)
        .map(|(_, a)| a.clone())
        .unwrap_or_else(|| panic!("no interface {name} in {all:?}"))
}

#[test]
fn router_has_every_gateway_and_forwards() {
    let _topology = Topology::up();
    let router = addresses(Some("router"));
    let expected: [(&str, &[&str]); 8] = [
        ("trunk", &["192.168.1.1/24"]),
        ("trunk.20", &["192.168.20.1/24"]),
        ("trunk.30", &["192.168.30.1/24"]),
        ("trunk.40", &["192.168.40.1/24"]),
        ("trunk.114", &[]),
        ("trunk.139", &["2001:db8:abc2::22/64"]),
        (
            "trunk.140",
            &[
                "192.168.140.1/24",
                "192.168.142.1/24",
                "2001:db8:abc9::22/64",
            ],
        ),
        ("lo", &[]),
    ];
    for (name, addrs) in expected {
        let mut have = addresses_of(&router, name);
        have.sort();
        let mut want: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        want.sort();
        assert_eq!(have, want, "addresses of {name} in netns router");
    }
    let vlan = run(
        &ip_path(),
        &[
            "-n",
            "router",
            "-d",
            "-j",
            "link",
            "show",
            "dev",
            "trunk.139",
        ],
    )
    .unwrap();
    let vlan = json::parse(&vlan).unwrap();
    let id = vlan
        .as_array()
        .and_then(|links| links.first())
        .and_then(|link| link.get("linkinfo")?.get("info_data")?.get("id")?.as_u64());
    assert_eq!(id, Some(139), "VLAN id of trunk.139: {vlan}");

    let forwarding = run(
        &ip_path(),
        &[
            "netns",
            "exec",
            "router",
            "cat",
            "/proc/sys/net/ipv4/ip_forward",
        ],
    )
    .unwrap();
    assert_eq!(forwarding.trim(), "1", "IPv4 forwarding in router");
    let forwarding6 = run(
        &ip_path(),
        &[
            "netns",
            "exec",
            "router",
            "cat",
            "/proc/sys/net/ipv6/conf/all/forwarding",
        ],
    )
    .unwrap();
    assert_eq!(forwarding6.trim(), "1", "IPv6 forwarding in router");

    let host = addresses(None);
    assert_eq!(
        addresses_of(&host, "eth0"),
        vec!["192.168.1.250/24".to_string()]
    );
    run("ping", &["-c", "1", "-W", "5", "192.168.1.1"])
        .expect("the host reaches the router on the untagged network");
}

#[test]
fn down_removes_everything_and_up_works_again() {
    drop(Topology::up());
    let netns = run(&ip_path(), &["netns", "list"]).unwrap();
    assert!(
        !netns.contains("router"),
        "router netns left behind: {netns}"
    );
    assert!(
        run(&ip_path(), &["link", "show", "dev", "eth0"]).is_err(),
        "eth0 left behind"
    );
    // A second build must not trip over leftovers of the first.
    let _again = Topology::up();
    assert_eq!(
        addresses_of(&addresses(None), "eth0"),
        vec!["192.168.1.250/24".to_string()]
    );
}
