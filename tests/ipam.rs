//! IPAM behaviour: the docs' addressing, defaults, every refusal and its text.

use std::net::IpAddr;

use ipnet::IpNet;
use ipvlan::ipam::{
    allocate, check_overlaps, default_ipv4_subnet, default_ipv6_subnet, fill_default_gateways,
    host_nameservers, match_subnets, parse_aux, parse_ip_range, parse_resolv_conf, parse_subnet,
    release, ula_prefix, Avoid, IpFamily, IpamError, MemoryBook, NetworkName, Request, Reserved,
    SubnetSpec, RESOLVED_UPSTREAM_CONF, RESOLV_CONF,
};

const NET: NetworkName<'static> = NetworkName {
    name: "testnet",
    id: "0123456789ab",
};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn specs(subnets: &[&str], gateways: &[&str], ranges: &[&str]) -> Vec<SubnetSpec> {
    let subnets: Vec<IpNet> = subnets.iter().map(|s| net(s)).collect();
    let gateways: Vec<IpAddr> = gateways.iter().map(|s| ip(s)).collect();
    let ranges: Vec<IpNet> = ranges.iter().map(|s| net(s)).collect();
    let mut specs = match_subnets(&subnets, &gateways, &ranges, &[]).unwrap();
    fill_default_gateways(&mut specs);
    specs
}

fn auto(book: &mut MemoryBook, specs: &[SubnetSpec], family: IpFamily, owner: &str) -> String {
    allocate(book, specs, Request::Any(family), owner, NET)
        .unwrap()
        .to_string()
}

fn exact(book: &mut MemoryBook, specs: &[SubnetSpec], addr: &str) -> Result<String, String> {
    allocate(book, specs, Request::Exact(ip(addr)), "x", NET)
        .map(|a| a.to_string())
        .map_err(|e| e.to_string())
}

#[test]
fn first_containers_of_a_24_get_2_then_3() {
    let specs = specs(&["192.168.1.0/24"], &["192.168.1.1"], &[]);
    let mut book = MemoryBook::default();
    assert_eq!(auto(&mut book, &specs, IpFamily::V4, "a"), "192.168.1.2/24");
    assert_eq!(auto(&mut book, &specs, IpFamily::V4, "b"), "192.168.1.3/24");
}

#[test]
fn default_gateway_is_first_usable() {
    let specs = specs(&["192.168.1.0/24", "2001:db8:abc6::/64"], &[], &[]);
    assert_eq!(specs[0].gateway, Some(ip("192.168.1.1")));
    assert_eq!(specs[1].gateway, Some(ip("2001:db8:abc6::1")));
    let mut book = MemoryBook::default();
    assert_eq!(auto(&mut book, &specs, IpFamily::V4, "a"), "192.168.1.2/24");
    assert_eq!(
        auto(&mut book, &specs, IpFamily::V6, "a"),
        "2001:db8:abc6::2/64"
    );
}

#[test]
fn default_gateway_with_an_ip_range_is_the_ranges_first_usable() {
    let specs = specs(
        &["192.168.1.0/24", "10.5.0.0/24", "2001:db8:abcd::/64"],
        &[],
        &["192.168.1.64/26", "10.5.0.0/25", "2001:db8:abcd::100/120"],
    );
    assert_eq!(specs[0].gateway, Some(ip("192.168.1.64")));
    // A range starting at the network address: the network address is skipped.
    assert_eq!(specs[1].gateway, Some(ip("10.5.0.1")));
    assert_eq!(specs[2].gateway, Some(ip("2001:db8:abcd::100")));
    let mut book = MemoryBook::default();
    assert_eq!(
        auto(&mut book, &specs, IpFamily::V4, "a"),
        "192.168.1.65/24"
    );
    assert_eq!(
        auto(&mut book, &specs, IpFamily::V6, "a"),
        "2001:db8:abcd::101/64"
    );
}

/// Docker takes the default gateway (the first address) before the aux
/// addresses, so an aux address there is refused in its words. Before, the
/// gateway moved past it to `.2`, an address nobody has, silently: l2
/// containers routed through it. With the gateway given, or an aux address
/// elsewhere, the network is made.
#[test]
fn an_aux_address_on_the_default_gateway_is_refused() {
    let subnets = [net("10.9.0.0/24")];
    let aux = vec![parse_aux("router=10.9.0.1").unwrap()];
    assert_eq!(
        match_subnets(&subnets, &[], &[], &aux)
            .unwrap_err()
            .to_string(),
        "failed to allocate secondary ip address (router:10.9.0.1): Address already in use"
    );
    let mut given = match_subnets(&subnets, &[ip("10.9.0.254")], &[], &aux).unwrap();
    fill_default_gateways(&mut given);
    assert_eq!(given[0].gateway, Some(ip("10.9.0.254")));
    // In an ip-range, the range's first address is the gateway.
    let ranged = [parse_ip_range("10.9.0.128/25").unwrap()];
    let aux = vec![parse_aux("r=10.9.0.128").unwrap()];
    assert!(match_subnets(&subnets, &[], &ranged, &aux).is_err());
    let aux = vec![parse_aux("r=10.9.0.1").unwrap()];
    let mut specs = match_subnets(&subnets, &[], &ranged, &aux).unwrap();
    fill_default_gateways(&mut specs);
    assert_eq!(specs[0].gateway, Some(ip("10.9.0.128")));
}

#[test]
fn released_address_comes_back_only_after_wrap() {
    let specs = specs(&["10.0.0.0/29"], &[], &[]);
    let mut book = MemoryBook::default();
    // .1 gateway, .2-.6 usable, .7 broadcast.
    let got: Vec<String> = ["a", "b", "c"]
        .iter()
        .map(|o| auto(&mut book, &specs, IpFamily::V4, o))
        .collect();
    assert_eq!(got, ["10.0.0.2/29", "10.0.0.3/29", "10.0.0.4/29"]);
    assert!(release(&mut book, &specs, ip("10.0.0.2")).unwrap());
    assert_eq!(auto(&mut book, &specs, IpFamily::V4, "d"), "10.0.0.5/29");
    assert_eq!(auto(&mut book, &specs, IpFamily::V4, "e"), "10.0.0.6/29");
    // Wrap: network .0 and gateway .1 skipped, .2 free again.
    assert_eq!(auto(&mut book, &specs, IpFamily::V4, "f"), "10.0.0.2/29");
    let err = allocate(&mut book, &specs, Request::Any(IpFamily::V4), "g", NET).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no available IPv4 addresses on this network's address pools: testnet (0123456789ab)"
    );
}

#[test]
fn walkthrough_multi_subnet_l2() {
    // Step 5: two subnets with .254 gateways, explicit .10 in each.
    let specs = specs(
        &["192.168.114.0/24", "192.168.116.0/24"],
        &["192.168.114.254", "192.168.116.254"],
        &[],
    );
    assert_eq!(specs[0].gateway, Some(ip("192.168.114.254")));
    assert_eq!(specs[1].gateway, Some(ip("192.168.116.254")));
    let mut book = MemoryBook::default();
    assert_eq!(
        exact(&mut book, &specs, "192.168.114.10").unwrap(),
        "192.168.114.10/24"
    );
    assert_eq!(
        exact(&mut book, &specs, "192.168.116.10").unwrap(),
        "192.168.116.10/24"
    );
    // Automatic allocation fills the first subnet from its start.
    assert_eq!(
        auto(&mut book, &specs, IpFamily::V4, "a"),
        "192.168.114.1/24"
    );
}

#[test]
fn walkthrough_dual_stack_l2() {
    // Step 8.
    let specs = specs(
        &["192.168.140.0/24", "192.168.142.0/24", "2001:db8:abc9::/64"],
        &["192.168.140.1", "192.168.142.1", "2001:db8:abc9::22"],
        &[],
    );
    assert_eq!(specs[2].gateway, Some(ip("2001:db8:abc9::22")));
    let mut book = MemoryBook::default();
    assert_eq!(
        auto(&mut book, &specs, IpFamily::V4, "a"),
        "192.168.140.2/24"
    );
    assert_eq!(
        auto(&mut book, &specs, IpFamily::V6, "a"),
        "2001:db8:abc9::1/64"
    );
    assert_eq!(
        exact(&mut book, &specs, "2001:db8:abc2::51").unwrap_err(),
        "no configured subnet contains IP address 2001:db8:abc2::51"
    );
    assert_eq!(
        exact(&mut book, &specs, "2001:db8:abc9::51").unwrap(),
        "2001:db8:abc9::51/64"
    );
    assert_eq!(
        exact(&mut book, &specs, "192.168.140.10").unwrap(),
        "192.168.140.10/24"
    );
}

#[test]
fn walkthrough_dual_stack_l3() {
    // Step 9: no gateways given.
    let specs = specs(
        &["192.168.110.0/24", "192.168.112.0/24", "2001:db8:abc6::/64"],
        &[],
        &[],
    );
    let gateways: Vec<_> = specs
        .iter()
        .map(|s| s.gateway.unwrap().to_string())
        .collect();
    assert_eq!(
        gateways,
        ["192.168.110.1", "192.168.112.1", "2001:db8:abc6::1"]
    );
    let mut book = MemoryBook::default();
    assert_eq!(
        auto(&mut book, &specs, IpFamily::V4, "a"),
        "192.168.110.2/24"
    );
    assert_eq!(
        auto(&mut book, &specs, IpFamily::V6, "a"),
        "2001:db8:abc6::2/64"
    );
    assert_eq!(
        exact(&mut book, &specs, "2001:db8:abc6::10").unwrap(),
        "2001:db8:abc6::10/64"
    );
    assert_eq!(
        exact(&mut book, &specs, "192.168.112.30").unwrap(),
        "192.168.112.30/24"
    );
    assert_eq!(
        exact(&mut book, &specs, "2001:db8:abc6::50").unwrap(),
        "2001:db8:abc6::50/64"
    );
    assert_eq!(
        exact(&mut book, &specs, "192.168.112.50").unwrap(),
        "192.168.112.50/24"
    );
    // Step 10: release and take again, repeatedly.
    for _ in 0..100 {
        assert!(release(&mut book, &specs, ip("2001:db8:abc6::50")).unwrap());
        assert_eq!(
            exact(&mut book, &specs, "2001:db8:abc6::50").unwrap(),
            "2001:db8:abc6::50/64"
        );
    }
}

#[test]
fn ip_range_limits_automatic_allocation_only() {
    let specs = specs(&["192.168.1.0/24"], &[], &["192.168.1.128/25"]);
    // The default gateway is the range's first address, as Docker did.
    assert_eq!(specs[0].gateway, Some(ip("192.168.1.128")));
    assert_eq!(specs[0].ip_range, Some(net("192.168.1.128/25")));
    let mut book = MemoryBook::default();
    assert_eq!(
        auto(&mut book, &specs, IpFamily::V4, "a"),
        "192.168.1.129/24"
    );
    assert_eq!(
        auto(&mut book, &specs, IpFamily::V4, "b"),
        "192.168.1.130/24"
    );
    assert_eq!(
        exact(&mut book, &specs, "192.168.1.20").unwrap(),
        "192.168.1.20/24"
    );
    // The range's first address is the gateway, its last the subnet's
    // broadcast: both skipped.
    let small = specs_with_range("10.0.0.0/24", "10.0.0.252/30");
    let mut book = MemoryBook::default();
    let got: Vec<String> = (0..2)
        .map(|i| auto(&mut book, &small, IpFamily::V4, &i.to_string()))
        .collect();
    assert_eq!(got, ["10.0.0.253/24", "10.0.0.254/24"]);
    assert!(allocate(&mut book, &small, Request::Any(IpFamily::V4), "x", NET).is_err());
}

fn specs_with_range(subnet: &str, range: &str) -> Vec<SubnetSpec> {
    specs(&[subnet], &[], &[range])
}

#[test]
fn reserved_addresses() {
    let v4 = SubnetSpec {
        gateway: Some(ip("10.0.0.1")),
        aux: vec![("router".into(), ip("10.0.0.5"))],
        ..SubnetSpec::new(net("10.0.0.0/24"))
    };
    for a in ["10.0.0.0", "10.0.0.255", "10.0.0.1", "10.0.0.5"] {
        assert!(v4.is_reserved(ip(a)), "{a}");
    }
    assert!(!v4.is_reserved(ip("10.0.0.2")));
    let p31 = SubnetSpec::new(net("10.0.0.0/31"));
    assert!(!p31.is_reserved(ip("10.0.0.0")) && !p31.is_reserved(ip("10.0.0.1")));
    assert_eq!(p31.first_usable(), Some(ip("10.0.0.0")));
    let p32 = SubnetSpec::new(net("10.0.0.7/32"));
    assert!(!p32.is_reserved(ip("10.0.0.7")));
    let v6 = SubnetSpec::new(net("2001:db8::/64"));
    assert!(v6.is_reserved(ip("2001:db8::")));
    assert!(!v6.is_reserved(ip("2001:db8::ffff:ffff:ffff:ffff")));
    let mut book = MemoryBook::default();
    let v6 = SubnetSpec {
        gateway: Some(ip("2001:db8::1")),
        ..v6
    };
    let specs = vec![v4, v6];
    // Each names what the address is, not "Address already in use": no
    // container holds it, and none ever will.
    for (a, text) in [
        (
            "10.0.0.0",
            "10.0.0.0 is the network address of subnet 10.0.0.0/24",
        ),
        (
            "10.0.0.255",
            "10.0.0.255 is the broadcast address of subnet 10.0.0.0/24",
        ),
        ("10.0.0.1", "10.0.0.1 is the gateway of subnet 10.0.0.0/24"),
        (
            "10.0.0.5",
            "10.0.0.5 is reserved as aux-address router of subnet 10.0.0.0/24",
        ),
        (
            "2001:db8::",
            "2001:db8:: is the subnet-router anycast address of subnet 2001:db8::/64",
        ),
        (
            "2001:db8::1",
            "2001:db8::1 is the gateway of subnet 2001:db8::/64",
        ),
    ] {
        let error = allocate(&mut book, &specs, Request::Exact(ip(a)), "x", NET).unwrap_err();
        assert_eq!(error.to_string(), text);
        assert!(
            matches!(error, IpamError::ReservedAddress { .. }),
            "{error:?}"
        );
    }
    assert!(
        book.taken.values().all(|taken| taken.is_empty()),
        "{book:?}"
    );
    assert_eq!(
        IpamError::ReservedAddress {
            address: ip("10.0.0.5"),
            subnet: net("10.0.0.0/24"),
            reason: Reserved::Aux("r\n\u{1b}".into()),
        }
        .to_string(),
        "10.0.0.5 is reserved as aux-address r\\n\\u{1b} of subnet 10.0.0.0/24"
    );
}

#[test]
fn aux_addresses_are_skipped() {
    let subnets = [net("10.9.0.0/24")];
    let aux = vec![
        parse_aux("a=10.9.0.2").unwrap(),
        parse_aux("b=10.9.0.3").unwrap(),
    ];
    let mut specs = match_subnets(&subnets, &[], &[], &aux).unwrap();
    fill_default_gateways(&mut specs);
    let mut book = MemoryBook::default();
    assert_eq!(auto(&mut book, &specs, IpFamily::V4, "a"), "10.9.0.4/24");
}

#[test]
fn the_hosts_own_addresses_are_never_handed_out() {
    // The walkthrough's host: 192.168.1.250 on eth0, the network's parent.
    // Before, nothing reserved it: the cursor reached it after some 250
    // containers, and `--ip=192.168.1.250` was taken.
    let mut specs = specs(&["192.168.1.0/24"], &[], &[]);
    specs[0].host = vec![ip("192.168.1.250")];
    let mut book = MemoryBook::default();
    assert_eq!(
        exact(&mut book, &specs, "192.168.1.250").unwrap_err(),
        "192.168.1.250 is the host's own address on the network's parent (subnet 192.168.1.0/24)"
    );
    let handed: Vec<String> = (0..252)
        .map(|n| auto(&mut book, &specs, IpFamily::V4, &format!("c{n}")))
        .collect();
    assert!(
        !handed.contains(&"192.168.1.250/24".to_string()),
        "{handed:?}"
    );
    assert_eq!(handed.last().unwrap(), "192.168.1.254/24");
    assert!(allocate(&mut book, &specs, Request::Any(IpFamily::V4), "x", NET).is_err());
}

#[test]
fn a_subnet_whose_addresses_are_all_reserved_has_no_room() {
    for (subnet, room) in [
        ("10.9.9.7/32", false),
        ("2001:db8::7/128", false),
        ("2001:db8::6/127", false),
        ("10.9.9.6/31", true),
        ("10.9.9.4/30", true),
        ("10.9.9.0/24", true),
    ] {
        let specs = specs(&[subnet], &[], &[]);
        assert_eq!(specs[0].has_room(), room, "{subnet}");
    }
    // Aux addresses fill the rest of a /30.
    let mut full = specs(&["10.9.9.4/30"], &[], &[]);
    full[0].aux = vec![("a".into(), ip("10.9.9.6"))];
    assert!(!full[0].has_room());
    // An ip-range is where automatic allocation looks: one holding only
    // the network address, or only the gateway, leaves every `run` without
    // `--ip` to fail (before, the subnet's room was enough).
    for (subnet, range, room) in [
        ("10.9.0.0/24", "10.9.0.0/32", false),
        ("10.9.0.0/24", "10.9.0.1/32", false),
        ("10.9.0.0/24", "10.9.0.2/32", true),
        ("10.9.0.0/24", "10.9.0.0/30", true),
        ("2001:db8::/64", "2001:db8::/128", false),
        ("2001:db8::/64", "2001:db8::/127", false),
        ("2001:db8::/64", "2001:db8::/126", true),
    ] {
        let mut spec = specs(&[subnet], &[], &[]).remove(0);
        spec.ip_range = Some(range.parse().unwrap());
        assert_eq!(spec.has_room(), room, "{subnet} range {range}");
    }
}

#[test]
fn multicast_and_loopback_subnets_are_refused() {
    // Before, accepted: the network was made, and each container's
    // address was one no interface can take as its own.
    for (subnet, block, what) in [
        ("224.1.0.0/16", "224.0.0.0/4", "multicast"),
        ("192.0.0.0/2", "224.0.0.0/4", "multicast"),
        ("127.0.0.0/24", "127.0.0.0/8", "loopback"),
        ("126.0.0.0/7", "127.0.0.0/8", "loopback"),
        ("ff02::/64", "ff00::/8", "multicast"),
        ("::/64", "::1/128", "loopback"),
        ("::ffff:224.0.0.0/100", "::ffff:0.0.0.0/96", "IPv4-mapped"),
        // A /31 at either end of the IPv4 space: one handed out
        // 255.255.255.255, the other made 0.0.0.0 its gateway.
        (
            "255.255.255.254/31",
            "255.255.255.255/32",
            "limited broadcast",
        ),
        ("0.0.0.0/31", "0.0.0.0/32", "unspecified"),
        ("0.0.0.0/8", "0.0.0.0/32", "unspecified"),
    ] {
        let refused = match_subnets(&[net(subnet)], &[], &[], &[]).unwrap_err();
        assert_eq!(
            refused,
            IpamError::NotUnicast {
                subnet: net(subnet),
                block: net(block),
                what,
            }
        );
        assert_eq!(
            refused.to_string(),
            format!("invalid subnet {subnet}: it overlaps the {what} block {block}, which holds no addresses of hosts on a network")
        );
    }
    // Their neighbours are fine.
    for subnet in [
        "223.255.0.0/16",
        "128.0.0.0/24",
        "240.0.0.0/31",
        "255.255.255.252/31",
        "1.0.0.0/31",
        "fe80::/64",
        "2001:db8::/64",
    ] {
        assert!(
            match_subnets(&[net(subnet)], &[], &[], &[]).is_ok(),
            "{subnet}"
        );
    }
}

#[test]
fn explicit_address_taken_twice() {
    let specs = specs(&["192.168.1.0/24"], &[], &[]);
    let mut book = MemoryBook::default();
    exact(&mut book, &specs, "192.168.1.9").unwrap();
    assert_eq!(
        exact(&mut book, &specs, "192.168.1.9").unwrap_err(),
        "Address already in use"
    );
}

#[test]
fn default_ipv4_pool_skips_on_link_route() {
    let routes = [net("172.17.0.0/16"), net("0.0.0.0/0")];
    let got = default_ipv4_subnet(Avoid {
        host_routes: &routes,
        ..Avoid::default()
    })
    .unwrap();
    assert_eq!(got, net("172.18.0.0/16"));
    assert_eq!(
        default_ipv4_subnet(Avoid::default()).unwrap(),
        net("172.17.0.0/16")
    );
}

#[test]
fn default_ipv4_pool_skips_networks_and_nameservers_then_uses_192_168() {
    let ours: Vec<IpNet> = (17..=30).map(|b| net(&format!("172.{b}.0.0/16"))).collect();
    let ns =
        parse_resolv_conf("# comment\nnameserver 172.31.0.53\nnameserver fe80::1%eth0\nsearch x\n");
    assert_eq!(ns, [ip("172.31.0.53"), ip("fe80::1")]);
    let avoid = Avoid {
        networks: &ours,
        nameservers: &ns,
        host_routes: &[net("192.168.0.0/24")],
    };
    assert_eq!(default_ipv4_subnet(avoid).unwrap(), net("192.168.16.0/20"));
    let all: Vec<IpNet> = vec![net("172.16.0.0/12"), net("192.168.0.0/16")];
    let err = default_ipv4_subnet(Avoid {
        networks: &all,
        ..Avoid::default()
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network"
    );
}

/// On a host whose resolv.conf names only systemd-resolved's stub, the
/// nameservers the stub forwards to are the ones kept off, as Docker keeps
/// them: before, only 127.0.0.53 was, and a default network could take
/// the subnet of the upstream server its containers query.
#[test]
fn the_nameservers_behind_systemd_resolveds_stub_are_avoided() {
    let files = |etc: &'static str, run: Option<&'static str>| {
        move |path: &str| match path {
            RESOLV_CONF => Some(etc.to_string()),
            RESOLVED_UPSTREAM_CONF => run.map(str::to_string),
            _ => None,
        }
    };
    let stub = "nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n";
    let upstream = Some("nameserver 172.18.0.10\nnameserver fd00::53\n");
    let found = host_nameservers(files(stub, upstream));
    assert_eq!(found, [ip("172.18.0.10"), ip("fd00::53")]);
    let avoid = Avoid {
        nameservers: &found,
        host_routes: &[net("172.17.0.0/16")],
        ..Avoid::default()
    };
    assert_eq!(default_ipv4_subnet(avoid).unwrap(), net("172.19.0.0/16"));
    // The stub's file alone when the upstream list cannot be read; any
    // other list as it is, the stub among others included.
    assert_eq!(host_nameservers(files(stub, None)), [ip("127.0.0.53")]);
    let mixed = "nameserver 127.0.0.53\nnameserver 172.20.0.1\n";
    assert_eq!(
        host_nameservers(files(mixed, upstream)),
        [ip("127.0.0.53"), ip("172.20.0.1")]
    );
    assert_eq!(host_nameservers(|_: &str| None), Vec::<IpAddr>::new());
}

#[test]
fn ula_subnet_from_host_id() {
    let a = ula_prefix(b"0123456789abcdef0123456789abcdef");
    let b = ula_prefix(b"fedcba9876543210fedcba9876543210");
    assert_ne!(a, b);
    assert_eq!(a.prefix_len(), 48);
    assert_eq!(a.network().octets()[0], 0xfd);
    let first = default_ipv6_subnet(b"0123456789abcdef0123456789abcdef", Avoid::default()).unwrap();
    assert_eq!(
        first,
        IpNet::V6(ipnet::Ipv6Net::new(a.network(), 64).unwrap())
    );
    let taken = [first];
    let second = default_ipv6_subnet(
        b"0123456789abcdef0123456789abcdef",
        Avoid {
            networks: &taken,
            ..Avoid::default()
        },
    )
    .unwrap();
    assert_ne!(first, second);
    assert!(IpNet::V6(a).contains(&second));
}

fn err_of(subnets: &[&str], gateways: &[&str], ranges: &[&str], aux: &[&str]) -> String {
    let subnets: Vec<IpNet> = subnets.iter().map(|s| net(s)).collect();
    let gateways: Vec<IpAddr> = gateways.iter().map(|s| ip(s)).collect();
    let ranges: Vec<IpNet> = ranges.iter().map(|s| net(s)).collect();
    let aux: Vec<(String, IpAddr)> = aux.iter().map(|s| parse_aux(s).unwrap()).collect();
    match_subnets(&subnets, &gateways, &ranges, &aux)
        .unwrap_err()
        .to_string()
}

#[test]
fn configuration_errors_name_the_value() {
    assert_eq!(
        parse_subnet("192.168.1.5/24").unwrap_err().to_string(),
        "invalid subnet 192.168.1.5/24: it should be 192.168.1.0/24"
    );
    assert_eq!(
        parse_subnet("2001:db8::1/64").unwrap_err().to_string(),
        "invalid subnet 2001:db8::1/64: it should be 2001:db8::/64"
    );
    assert_eq!(
        parse_subnet("10.0.0.0/33").unwrap_err().to_string(),
        "invalid CIDR address: 10.0.0.0/33"
    );
    assert_eq!(
        parse_ip_range("10.0.0.1/25").unwrap_err().to_string(),
        "invalid ip-range 10.0.0.1/25: it should be 10.0.0.0/25"
    );
    assert_eq!(
        err_of(&["192.168.1.5/24"], &[], &[], &[]),
        "invalid subnet 192.168.1.5/24: it should be 192.168.1.0/24"
    );
    assert_eq!(
        err_of(&["10.0.0.0/24"], &["10.1.0.1"], &[], &[]),
        "no matching subnet for gateway 10.1.0.1"
    );
    assert_eq!(
        err_of(&["10.0.0.0/24"], &[], &["10.1.0.0/25"], &[]),
        "no matching subnet for range 10.1.0.0/25"
    );
    assert_eq!(
        err_of(&["10.0.0.0/24"], &[], &[], &["r=10.1.0.9"]),
        "no matching subnet for aux-address 10.1.0.9 (r)"
    );
    assert_eq!(
        err_of(&["10.0.0.0/24"], &["10.0.0.1", "10.0.0.2"], &[], &[]),
        "cannot configure multiple gateways (10.0.0.2, 10.0.0.1) for the same subnet (10.0.0.0/24)"
    );
    assert_eq!(
        err_of(&["10.0.0.0/24"], &[], &["10.0.0.0/25", "10.0.0.128/25"], &[]),
        "cannot configure multiple ranges (10.0.0.128/25, 10.0.0.0/25) on the same subnet (10.0.0.0/24)"
    );
    assert_eq!(
        err_of(&["10.0.0.0/16", "10.0.1.0/24"], &[], &[], &[]),
        "multiple overlapping subnet configuration is not supported (10.0.0.0/16, 10.0.1.0/24)"
    );
    assert_eq!(
        err_of(&["10.0.0.0/24"], &["10.0.0.255"], &[], &[]),
        "invalid gateway 10.0.0.255: it is not a host address of subnet 10.0.0.0/24"
    );
    assert_eq!(
        err_of(&["10.0.0.0/24"], &[], &[], &["a=10.0.0.3", "a=10.0.0.4"]),
        "aux-address a given twice"
    );
}

#[test]
fn overlap_with_other_networks() {
    let mine = specs(&["192.168.1.0/24"], &[], &[]);
    let others = [("db_net", net("192.168.0.0/16"))];
    let err = check_overlaps(&mine, others).unwrap_err();
    assert!(matches!(err, IpamError::PoolOverlap { .. }));
    assert_eq!(
        err.to_string(),
        "Pool overlaps with other one on this address space: 192.168.1.0/24 overlaps 192.168.0.0/16 of network db_net"
    );
    assert!(check_overlaps(&mine, [("x", net("192.168.2.0/24"))]).is_ok());
}

#[test]
fn no_subnet_of_family() {
    let specs = specs(&["10.0.0.0/24"], &[], &[]);
    let mut book = MemoryBook::default();
    let err = allocate(&mut book, &specs, Request::Any(IpFamily::V6), "a", NET).unwrap_err();
    assert_eq!(err.to_string(), "network testnet has no IPv6 subnet");
}

/// Counts the taken-checks an allocation makes, over a bitmap.
struct CountingBook {
    base: u128,
    taken: Vec<bool>,
    cursor: Option<IpAddr>,
    checks: u64,
}

impl ipvlan::ipam::AddressBook for CountingBook {
    type Error = IpamError;

    fn cursor(&mut self, _: &SubnetSpec) -> Result<Option<IpAddr>, IpamError> {
        Ok(self.cursor)
    }

    fn set_cursor(&mut self, _: &SubnetSpec, addr: IpAddr) -> Result<(), IpamError> {
        self.cursor = Some(addr);
        Ok(())
    }

    fn take(&mut self, _: &SubnetSpec, addr: IpAddr, _: &str) -> Result<bool, IpamError> {
        self.checks += 1;
        let slot = &mut self.taken[(ipvlan::ipam::to_u128(addr) - self.base) as usize];
        Ok(!std::mem::replace(slot, true))
    }

    fn release(&mut self, _: &SubnetSpec, addr: IpAddr) -> Result<bool, IpamError> {
        let slot = &mut self.taken[(ipvlan::ipam::to_u128(addr) - self.base) as usize];
        Ok(std::mem::replace(slot, false))
    }
}

/// Mean taken-checks per allocation over 20,000 allocate+release cycles
/// in `subnet` pre-filled to `occupancy` at random positions.
fn checks_per_allocation(subnet: &str, occupancy: f64) -> f64 {
    let specs = specs(&[subnet], &[], &[]);
    let spec = &specs[0];
    let (first, last) = spec.allocation_bounds();
    let mut book = CountingBook {
        base: first,
        taken: vec![false; (last - first + 1) as usize],
        cursor: None,
        checks: 0,
    };
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for (i, slot) in book.taken.iter_mut().enumerate() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let addr = ipvlan::ipam::from_u128(IpFamily::V4, first + i as u128);
        *slot = !spec.is_reserved(addr) && (seed % 10_000) as f64 / 10_000.0 < occupancy;
    }
    let cycles = 20_000;
    for _ in 0..cycles {
        let got = allocate(&mut book, &specs, Request::Any(IpFamily::V4), "o", NET).unwrap();
        release(&mut book, &specs, got.addr()).unwrap();
    }
    book.checks as f64 / cycles as f64
}

#[test]
fn allocation_work_depends_on_occupancy_not_on_size() {
    let sparse_small = checks_per_allocation("10.0.0.0/20", 0.01);
    let sparse_large = checks_per_allocation("10.0.0.0/12", 0.01);
    let dense_small = checks_per_allocation("10.0.0.0/20", 0.90);
    let dense_large = checks_per_allocation("10.0.0.0/12", 0.90);
    // 1% taken: about one check; 90% taken: about 1 / (1 - 0.9) = 10,
    // whatever the size of the subnet.
    assert!(
        sparse_small < 1.1 && sparse_large < 1.1,
        "{sparse_small} {sparse_large}"
    );
    assert!((8.0..12.0).contains(&dense_small), "{dense_small}");
    assert!((8.0..12.0).contains(&dense_large), "{dense_large}");
}

/// A [`MemoryBook`] that counts its `take` calls: what an allocation costs.
#[derive(Default)]
struct TakeCountingBook {
    book: MemoryBook,
    takes: usize,
    /// Reading a cursor fails (a descriptor limit, an I/O error).
    cursor_unreadable: bool,
}

impl ipvlan::ipam::AddressBook for TakeCountingBook {
    type Error = IpamError;

    fn cursor(&mut self, subnet: &SubnetSpec) -> Result<Option<IpAddr>, IpamError> {
        if self.cursor_unreadable {
            return Err(IpamError::InvalidAddress {
                text: "the cursor could not be read".into(),
            });
        }
        self.book.cursor(subnet)
    }

    fn set_cursor(&mut self, subnet: &SubnetSpec, addr: IpAddr) -> Result<(), IpamError> {
        self.book.set_cursor(subnet, addr)
    }

    fn freed(&mut self, subnet: &SubnetSpec) -> Result<u32, IpamError> {
        self.book.freed(subnet)
    }

    fn set_cursor_counting(
        &mut self,
        subnet: &SubnetSpec,
        addr: IpAddr,
        freed: u32,
    ) -> Result<(), IpamError> {
        self.book.set_cursor_counting(subnet, addr, freed)
    }

    fn take(&mut self, subnet: &SubnetSpec, addr: IpAddr, owner: &str) -> Result<bool, IpamError> {
        self.takes += 1;
        self.book.take(subnet, addr, owner)
    }

    fn release(&mut self, subnet: &SubnetSpec, addr: IpAddr) -> Result<bool, IpamError> {
        self.book.release(subnet, addr)
    }
}

#[test]
fn a_full_first_subnet_is_walked_once_not_at_every_allocation() {
    // Before, once the first subnet was full every allocation walked it
    // whole (a `symlinkat` per address on disk, under the store's lock)
    // before moving to the second: 4,093 takes here, 65,533 for a /16.
    use ipvlan::ipam::AddressBook;
    let specs = specs(&["10.0.0.0/20", "10.1.0.0/24"], &[], &[]);
    let mut book = TakeCountingBook::default();
    let any = Request::Any(IpFamily::V4);
    for n in 0..4093 {
        let got = allocate(&mut book, &specs, any, &format!("c{n}"), NET).unwrap();
        assert!(specs[0].subnet.contains(&got.addr()), "{got}");
    }
    // The walk that finds the first subnet full, once.
    let got = allocate(&mut book, &specs, any, "first", NET).unwrap();
    assert_eq!(got.to_string(), "10.1.0.2/24");
    for n in 3..10 {
        book.takes = 0;
        let got = allocate(&mut book, &specs, any, &format!("d{n}"), NET).unwrap();
        assert_eq!(got.to_string(), format!("10.1.0.{n}/24"));
        assert!(book.takes <= 2, "{} takes for one allocation", book.takes);
    }
    // An address freed in the first subnet is the next one handed out,
    // as Docker uses its pools in order, in one take; then the first is
    // full again, and the second serves.
    assert!(release(&mut book, &specs, ip("10.0.3.7")).unwrap());
    book.takes = 0;
    let got = allocate(&mut book, &specs, any, "again", NET).unwrap();
    assert_eq!(got.addr(), ip("10.0.3.7"));
    assert!(book.takes <= 2, "{} takes", book.takes);
    // The first is full again without a walk of it (it took 4,092 takes:
    // every "free one, take two" walked it whole).
    book.takes = 0;
    let got = allocate(&mut book, &specs, any, "next", NET).unwrap();
    assert_eq!(got.to_string(), "10.1.0.10/24");
    assert!(book.takes <= 2, "{} takes", book.takes);
    // So it stays, freed a few at a time, in any order: the allocations
    // walk from the first address freed to the last, not the subnet.
    for freed in [&[700u32][..], &[900, 3], &[4000, 17, 2500, 18], &[5]] {
        for &n in freed {
            let addr = ip(&format!("10.0.{}.{}", n / 256, n % 256));
            assert!(release(&mut book, &specs, addr).unwrap(), "{addr}");
        }
        let mut expected: Vec<u32> = freed.to_vec();
        expected.sort();
        book.takes = 0;
        for &n in &expected {
            let got = allocate(&mut book, &specs, any, "churn", NET).unwrap();
            assert_eq!(got.addr(), ip(&format!("10.0.{}.{}", n / 256, n % 256)));
        }
        let span = (expected[expected.len() - 1] - expected[0]) as usize + 1;
        assert!(book.takes <= span, "{freed:?}: {} takes", book.takes);
        book.takes = 0;
        let got = allocate(&mut book, &specs, any, "second", NET).unwrap();
        assert!(specs[1].subnet.contains(&got.addr()), "{got}");
        assert!(book.takes <= 2, "{freed:?}: {} takes", book.takes);
    }
    // The first address handed out, freed: found in one walk step.
    assert!(release(&mut book, &specs, ip("10.0.0.2")).unwrap());
    let got = allocate(&mut book, &specs, any, "first", NET).unwrap();
    assert_eq!(got.addr(), ip("10.0.0.2"));
    while allocate(&mut book, &specs, any, "fill", NET).is_ok() {}
    // What older versions read: a cursor they take for one before the range.
    assert_eq!(book.cursor(&specs[0]).unwrap(), Some(ip("10.0.0.0")));
    assert_eq!(book.cursor(&specs[1]).unwrap(), Some(ip("10.1.0.0")));
}

/// An address outside the ip-range (an `--ip` inside the subnet) freed in
/// a subnet found full is not counted as room: allocations never hand it
/// out. Before, it cleared the full mark and the next allocation walked
/// the whole range again (125 takes here, some 32,000 for a /17 range).
#[test]
fn an_address_outside_the_range_freed_is_no_room_for_allocations() {
    let specs = specs(&["10.0.0.0/24", "10.1.0.0/24"], &[], &["10.0.0.0/25"]);
    let mut book = TakeCountingBook::default();
    let any = Request::Any(IpFamily::V4);
    while allocate(&mut book, &specs, any, "fill", NET)
        .unwrap()
        .addr()
        .to_string()
        .starts_with("10.0.0.")
    {}
    let outside = ip("10.0.0.200");
    allocate(&mut book, &specs, Request::Exact(outside), "asked", NET).unwrap();
    assert!(release(&mut book, &specs, outside).unwrap());
    book.takes = 0;
    let got = allocate(&mut book, &specs, any, "next", NET).unwrap();
    assert!(specs[1].subnet.contains(&got.addr()), "{got}");
    assert!(book.takes <= 2, "{} takes for one allocation", book.takes);
}

/// A release frees the address, then notes it as room in a subnet marked
/// full (a hint for the next walk): a failure to read that hint is no
/// failure of the release. Before, it returned the error with the address
/// already free, and a detach stopped there with its record still naming
/// an address the next attach could take.
#[test]
fn a_release_whose_hint_cannot_be_read_still_releases() {
    let specs = specs(&["10.0.0.0/29", "10.1.0.0/24"], &[], &[]);
    let mut book = TakeCountingBook::default();
    let any = Request::Any(IpFamily::V4);
    // 10.0.0.2-6 (the gateway .1, the broadcast .7), then the walk that
    // finds the first subnet full.
    for n in 0..6 {
        allocate(&mut book, &specs, any, &format!("c{n}"), NET).unwrap();
    }
    book.cursor_unreadable = true;
    assert_eq!(release(&mut book, &specs, ip("10.0.0.4")), Ok(true));
    assert!(!book.book.taken[&net("10.0.0.0/29")].contains_key(&ip("10.0.0.4")));
    // Released again, it was free already.
    assert_eq!(release(&mut book, &specs, ip("10.0.0.4")), Ok(false));
}
