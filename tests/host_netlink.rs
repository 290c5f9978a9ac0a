//! rtnetlink against the running kernel (veth, macvlan; root required).
//!
//! Every test runs in its own fresh network namespace on a scratch thread
//! (`netns::run_in_new`), so nothing touches the host's interfaces and tests
//! can run in parallel. Kernel state is read back with our own dumps and
//! cross-checked against iproute2's JSON output where practical.

mod common;

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ipnet::IpNet;
use ipvlan::netlink::ErrorKind;
use ipvlan::netns::{self, Netns};
use ipvlan::rtnl::{
    AddrFlags, Handle, IpFamily, IpvlanFlag, IpvlanMode, LinkData, LinkSpec, MacvlanMode,
    ProbeKind, RouteSpec, Step,
};

/// Runs `test` in a new, empty network namespace.
fn in_fresh_netns(test: impl FnOnce() + Send) {
    common::privilege::require_root();
    netns::run_in_new(test).expect("unshare(CLONE_NEWNET)");
}

/// `ip -j ARGS`, run in the calling thread's netns (a child process inherits
/// the namespaces of the thread that forks it).
fn ip_json(args: &[&str]) -> String {
    let out = Command::new("ip")
        .arg("-j")
        .args(args)
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("ip prints UTF-8")
}

fn net(text: &str) -> IpNet {
    text.parse().unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn veth(h: &Handle, a: &str, b: &str) -> (u32, u32) {
    h.link_add(&LinkSpec::veth(a, b)).unwrap();
    (h.link_index(a).unwrap(), h.link_index(b).unwrap())
}

#[test]
fn fresh_netns_has_only_loopback() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        let links = h.links().unwrap();
        assert_eq!(links.len(), 1, "{links:?}");
        assert_eq!(links[0].name, "lo");
        assert_eq!(links[0].index, 1);
        assert_eq!(h.link_index("lo").unwrap(), 1);
        assert!(h.link_by_name("nope0").unwrap().is_none());
        assert!(h.link_by_index(999).unwrap().is_none());
        // No route was ever added: the kernel has no main table yet (ENOENT
        // under strict checking), which reads as empty.
        assert!(h.routes(IpFamily::V4).unwrap().is_empty());
        assert!(h.routes(IpFamily::V6).unwrap().is_empty());
        assert!(h.routes_in_table(IpFamily::V4, 1234).unwrap().is_empty());
        assert!(
            h.addrs().unwrap().is_empty(),
            "lo is down: no 127.0.0.1 yet"
        );
    });
}

#[test]
fn veth_create_dump_and_cross_check_with_iproute2() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        let (a, b) = veth(&h, "va0", "vb0");
        let links = h.links().unwrap();
        let va = links.iter().find(|l| l.name == "va0").unwrap();
        assert_eq!(va.index, a);
        assert_eq!(va.kind.as_deref(), Some("veth"));
        assert_eq!(va.parent, Some(b));
        assert_eq!(va.mtu, Some(1500));
        assert_eq!(va.mac.as_ref().map(Vec::len), Some(6));
        assert!(!va.is_up());
        let json = ip_json(&["-d", "link", "show", "dev", "va0"]);
        assert!(json.contains("\"ifname\":\"va0\""), "{json}");
        assert!(json.contains("\"info_kind\":\"veth\""), "{json}");
        assert!(json.contains(&format!("\"ifindex\":{a}")), "{json}");
        let mac: Vec<String> = va
            .mac
            .as_ref()
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(
            json.contains(&format!("\"address\":\"{}\"", mac.join(":"))),
            "{json}"
        );
    });
}

#[test]
fn macvlan_create_on_veth_parent() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        let (parent, _) = veth(&h, "p0", "p1");
        h.link_add(&LinkSpec::macvlan("mv0", parent, MacvlanMode::Bridge).mtu(1400))
            .unwrap();
        let mv = h.link_by_name("mv0").unwrap().unwrap();
        assert_eq!(mv.kind.as_deref(), Some("macvlan"));
        assert_eq!(mv.parent, Some(parent));
        assert_eq!(mv.mtu, Some(1400));
        assert_eq!(mv.data, LinkData::Macvlan { mode: 4 });
        let json = ip_json(&["-d", "link", "show", "dev", "mv0"]);
        assert!(json.contains("\"mode\":\"bridge\""), "{json}");
        assert!(json.contains("\"link\":\"p0\""), "{json}");
    });
}

#[test]
fn up_down_rename_mtu() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        let (a, _) = veth(&h, "va0", "vb0");
        h.link_set_up(a).unwrap();
        assert!(h.link_by_index(a).unwrap().unwrap().is_up());
        assert!(ip_json(&["link", "show", "dev", "va0"]).contains("\"UP\""));
        h.link_set_down(a).unwrap();
        assert!(!h.link_by_index(a).unwrap().unwrap().is_up());
        h.link_rename(a, "renamed0").unwrap();
        assert_eq!(h.link_by_index(a).unwrap().unwrap().name, "renamed0");
        assert!(h.link_by_name("va0").unwrap().is_none());
        h.link_set_mtu(a, 1280).unwrap();
        assert_eq!(h.link_by_name("renamed0").unwrap().unwrap().mtu, Some(1280));
        assert!(ip_json(&["link", "show", "dev", "renamed0"]).contains("\"mtu\":1280"));
    });
}

#[test]
fn delete_and_batched_delete() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        let (a, _) = veth(&h, "va0", "vb0");
        h.link_del(a).unwrap();
        assert!(h.link_by_name("vb0").unwrap().is_none(), "peer goes too");
        let (x, _) = veth(&h, "x0", "x1");
        let (y, _) = veth(&h, "y0", "y1");
        let results = h.link_del_many(&[x, 999, y]).unwrap();
        assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
        assert_eq!(results[1].as_ref().unwrap_err().errno(), Some(libc::ENODEV));
        assert_eq!(h.links().unwrap().len(), 1);
        let err = h.link_del(a).unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert_eq!(err.operation(), "delete link");
    });
}

#[test]
fn move_to_netns_and_create_in_netns() {
    in_fresh_netns(|| {
        let own_netns = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        let h = Handle::new().unwrap();
        let (a, _) = veth(&h, "va0", "vb0");
        let target = netns::create_anonymous().unwrap();
        h.link_set_netns(a, &target).unwrap();
        assert!(h.link_by_name("va0").unwrap().is_none());
        let inside = Handle::in_netns(&target).unwrap();
        let moved = inside.link_by_name("va0").unwrap().expect("va0 arrived");
        assert_eq!(moved.kind.as_deref(), Some("veth"));

        let parent = h.link_index("vb0").unwrap();
        let spec = LinkSpec::macvlan("eth0", parent, MacvlanMode::Bridge).in_netns(&target);
        h.link_add(&spec).unwrap();
        assert!(h.link_by_name("eth0").unwrap().is_none());
        let born = inside.link_by_name("eth0").unwrap().expect("born inside");
        assert_eq!(born.kind.as_deref(), Some("macvlan"));
        assert!(born.link_netnsid.is_some(), "parent is in another netns");
        // The calling thread never left its netns.
        assert!(h.link_by_name("vb0").unwrap().is_some());
        assert_eq!(
            std::fs::read_link("/proc/thread-self/ns/net").unwrap(),
            own_netns
        );
        let target_id = netns::run_in(&target, || std::fs::read_link("/proc/thread-self/ns/net"));
        assert_ne!(target_id.unwrap().unwrap(), own_netns);
    });
}

/// The namespace cookie, which the kernel here (5.14+) must have.
fn cookie_of(h: &Handle) -> u64 {
    h.socket()
        .netns_cookie()
        .unwrap()
        .expect("SO_NETNS_COOKIE (Linux 5.14+)")
}

#[test]
fn netns_cookie_tells_namespaces_apart() {
    in_fresh_netns(|| {
        let here = cookie_of(&Handle::new().unwrap());
        // The same namespace reached another way: same cookie.
        let current = Netns::current().unwrap();
        assert_eq!(cookie_of(&Handle::in_netns(&current).unwrap()), here);

        let other = netns::create_anonymous().unwrap();
        let there = cookie_of(&Handle::in_netns(&other).unwrap());
        assert_ne!(there, here);
        // Opened twice (a second descriptor, a second socket): same cookie.
        let again = Netns::open_path(format!("/proc/self/fd/{}", other.fd().as_raw_fd())).unwrap();
        assert_eq!(cookie_of(&Handle::in_netns(&again).unwrap()), there);
    });
}

/// A visit opened beside a socket of the calling thread's namespace goes
/// back there, not to the process's (the main thread's): here a scratch
/// thread in a fresh namespace. The namespace the socket tells is the one
/// taken for the thread's own: the thread's, so opened, is no visit, and
/// another one, told by a socket made in it, is taken for it.
#[test]
fn a_visit_opened_beside_a_socket_goes_back_to_where_the_socket_was_made() {
    in_fresh_netns(|| {
        let home = cookie_of(&Handle::new().unwrap());
        let socket = UnixDatagram::unbound().unwrap();
        let other = netns::create_anonymous().unwrap();
        let there = cookie_of(&Handle::in_netns(&other).unwrap());
        let path = format!("/proc/self/fd/{}", other.fd().as_raw_fd());
        let path = Path::new(&path);
        let (ns, entry) = netns::Visit::open_beside(path, socket.as_fd()).unwrap();
        assert!(!ns.is_openers_own());
        let visit = entry.expect("another namespace").enter(&ns, path).unwrap();
        assert_eq!(cookie_of(&Handle::new().unwrap()), there);
        drop(visit);
        assert_eq!(cookie_of(&Handle::new().unwrap()), home, "back home");

        let own = Path::new("/proc/thread-self/ns/net");
        let (ns, entry) = netns::Visit::open_beside(own, socket.as_fd()).unwrap();
        assert!(ns.is_openers_own() && entry.is_none());

        let made_there = netns::run_in(&other, || UnixDatagram::unbound().unwrap()).unwrap();
        let (ns, entry) = netns::Visit::open_beside(path, made_there.as_fd()).unwrap();
        assert!(ns.is_openers_own() && entry.is_none(), "told by the socket");
    });
}

fn gettid() -> i32 {
    std::fs::read_link("/proc/thread-self")
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn addresses_v4_v6_add_dump_delete() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        let (a, _) = veth(&h, "va0", "vb0");
        h.addr_add(a, net("10.1.2.3/24"), AddrFlags::empty())
            .unwrap();
        h.addr_add(a, net("2001:db8::5/64"), AddrFlags::NODAD)
            .unwrap();
        let addrs = h.addrs_of(a).unwrap();
        let v4 = addrs.iter().find(|x| x.net == net("10.1.2.3/24")).unwrap();
        assert_eq!(v4.broadcast, Some("10.1.2.255".parse().unwrap()));
        assert_eq!(v4.label.as_deref(), Some("va0"));
        let v6 = addrs
            .iter()
            .find(|x| x.net == net("2001:db8::5/64"))
            .unwrap();
        assert!(v6.flags.contains(AddrFlags::NODAD));
        assert!(!v6.flags.contains(AddrFlags::TENTATIVE));
        let json = ip_json(&["addr", "show", "dev", "va0"]);
        assert!(
            json.contains("\"local\":\"10.1.2.3\",\"prefixlen\":24"),
            "{json}"
        );
        assert!(json.contains("\"broadcast\":\"10.1.2.255\""), "{json}");
        assert!(
            json.contains("\"local\":\"2001:db8::5\",\"prefixlen\":64"),
            "{json}"
        );
        assert!(json.contains("\"nodad\":true"), "{json}");

        let dup = h
            .addr_add(a, net("10.1.2.3/24"), AddrFlags::empty())
            .unwrap_err();
        assert!(dup.is_exists(), "{dup}");
        h.addr_del(a, net("10.1.2.3/24")).unwrap();
        h.addr_del(a, net("2001:db8::5/64")).unwrap();
        let left = h.addrs_of(a).unwrap();
        assert!(
            left.iter().all(|x| !matches!(x.net, IpNet::V4(_))),
            "{left:?}"
        );
        assert!(!left.iter().any(|x| x.net == net("2001:db8::5/64")));
    });
}

#[test]
fn routes_default_via_and_default_dev_v4_v6() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        let (a, _) = veth(&h, "va0", "vb0");
        h.link_set_up(a).unwrap();
        h.addr_add(a, net("10.1.2.3/24"), AddrFlags::empty())
            .unwrap();
        h.addr_add(a, net("2001:db8::5/64"), AddrFlags::NODAD)
            .unwrap();

        h.route_add(&RouteSpec::default_via(ip("10.1.2.1")))
            .unwrap();
        h.route_add(&RouteSpec::default_via(ip("2001:db8::1")))
            .unwrap();
        let v4 = h.routes(IpFamily::V4).unwrap();
        let def4 = v4.iter().find(|r| r.is_default()).expect("v4 default");
        assert_eq!(def4.gateway, Some(ip("10.1.2.1")));
        assert_eq!(def4.oif, Some(a));
        let v6 = h.routes(IpFamily::V6).unwrap();
        let def6 = v6.iter().find(|r| r.is_default()).expect("v6 default");
        assert_eq!(def6.gateway, Some(ip("2001:db8::1")));
        let json = ip_json(&["route", "show", "default"]);
        assert!(json.contains("\"gateway\":\"10.1.2.1\""), "{json}");
        let again = h
            .route_add(&RouteSpec::default_via(ip("10.1.2.1")))
            .unwrap_err();
        assert!(again.is_exists(), "{again}");

        h.route_del(&RouteSpec::default_via(ip("10.1.2.1")))
            .unwrap();
        h.route_del(&RouteSpec::default_via(ip("2001:db8::1")))
            .unwrap();
        h.route_add(&RouteSpec::default_dev(IpFamily::V4, a))
            .unwrap();
        h.route_add(&RouteSpec::default_dev(IpFamily::V6, a))
            .unwrap();
        let def4 = h
            .routes(IpFamily::V4)
            .unwrap()
            .into_iter()
            .find(|r| r.is_default())
            .unwrap();
        assert_eq!((def4.gateway, def4.oif, def4.scope), (None, Some(a), 253));
        let def6 = h
            .routes(IpFamily::V6)
            .unwrap()
            .into_iter()
            .find(|r| r.is_default())
            .unwrap();
        assert_eq!((def6.gateway, def6.oif), (None, Some(a)));
        let json = ip_json(&["route", "show", "default"]);
        assert!(
            json.contains("\"dev\":\"va0\",\"scope\":\"link\""),
            "{json}"
        );
        let json6 = ip_json(&["-6", "route", "show", "default"]);
        assert!(
            json6.contains("\"dst\":\"default\",\"dev\":\"va0\""),
            "{json6}"
        );
    });
}

/// An appended route of the same destination and metric: IPv4 keeps two
/// routes (the first one taken), IPv6 makes one route with two next hops,
/// read through `Route::hops` (before `RTA_MULTIPATH` was read, that route
/// had no gateway and no device, and a CNI CHECK of it failed).
#[test]
fn an_appended_route_sits_beside_the_first_and_ipv6_makes_it_multipath() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        let (a, _) = veth(&h, "va0", "vb0");
        let (b, _) = veth(&h, "va1", "vb1");
        for (index, v4, v6) in [
            (a, "10.1.2.3/24", "2001:db8:1::5/64"),
            (b, "10.1.3.3/24", "2001:db8:2::5/64"),
        ] {
            h.link_set_up(index).unwrap();
            h.addr_add(index, net(v4), AddrFlags::empty()).unwrap();
            h.addr_add(index, net(v6), AddrFlags::NODAD).unwrap();
        }
        for (gateway, index) in [("10.1.2.1", a), ("2001:db8:1::1", a)] {
            h.route_add(&RouteSpec::default_via(ip(gateway)).dev(index))
                .unwrap();
        }
        for (gateway, index) in [("10.1.3.1", b), ("2001:db8:2::1", b)] {
            let spec = RouteSpec::default_via(ip(gateway)).dev(index);
            assert!(h.route_add(&spec).unwrap_err().is_exists(), "{gateway}");
            h.socket().request(&spec.append_request().unwrap()).unwrap();
        }
        let hops = |family| -> Vec<(Option<IpAddr>, Option<u32>)> {
            h.routes(family)
                .unwrap()
                .iter()
                .filter(|r| r.is_default())
                .flat_map(|r| r.hops())
                .map(|hop| (hop.gateway, hop.oif))
                .collect()
        };
        let expected = |first: &str, second: &str| {
            vec![(Some(ip(first)), Some(a)), (Some(ip(second)), Some(b))]
        };
        assert_eq!(hops(IpFamily::V4), expected("10.1.2.1", "10.1.3.1"));
        assert_eq!(
            hops(IpFamily::V6),
            expected("2001:db8:1::1", "2001:db8:2::1")
        );
        let v6: Vec<_> = h
            .routes(IpFamily::V6)
            .unwrap()
            .into_iter()
            .filter(|r| r.is_default())
            .collect();
        assert_eq!(v6.len(), 1, "one IPv6 route with two next hops: {v6:?}");
        let json = ip_json(&["-6", "route", "show", "default"]);
        assert!(json.contains("\"nexthops\""), "{json}");
    });
}

#[test]
fn onlink_route_to_prefix() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        let (a, _) = veth(&h, "va0", "vb0");
        h.link_set_up(a).unwrap();
        // Gateway checks look at the local table, which needs lo up.
        h.link_set_up(1).unwrap();
        let spec = RouteSpec::to(net("10.9.0.0/16"))
            .via(ip("192.0.2.1"))
            .dev(a)
            .onlink();
        h.route_add(&spec).unwrap();
        let route = h
            .routes(IpFamily::V4)
            .unwrap()
            .into_iter()
            .find(|r| r.dst == net("10.9.0.0/16"))
            .unwrap();
        assert_eq!(route.gateway, Some(ip("192.0.2.1")));
        assert_eq!(route.flags & 4, 4, "RTNH_F_ONLINK");
        let json = ip_json(&["route", "show", "10.9.0.0/16"]);
        assert!(json.contains("\"onlink\""), "{json}");
        // Without onlink the gateway is unreachable: the kernel explains why.
        let err = h
            .route_add(&RouteSpec::to(net("10.8.0.0/16")).via(ip("192.0.2.1")))
            .unwrap_err();
        assert_eq!(err.errno(), Some(libc::ENETUNREACH), "{err}");
        assert_eq!(err.ext_ack(), Some("Nexthop has invalid gateway"));
    });
}

#[test]
fn errors_carry_errno_ext_ack_and_context() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        veth(&h, "va0", "vb0");
        let dup = h.link_add(&LinkSpec::veth("va0", "other0")).unwrap_err();
        assert!(dup.is_exists(), "{dup}");
        assert!(
            dup.to_string().starts_with("create link va0: File exists"),
            "{dup}"
        );

        let orphan = h
            .link_add(&LinkSpec::macvlan("mv0", 4242, MacvlanMode::Bridge))
            .unwrap_err();
        assert_eq!(orphan.errno(), Some(libc::ENODEV), "{orphan}");

        // A kind the kernel lacks is named with its option and module (the
        // development and CI hosts lack all three); one it has is made
        // (Debian's stock kernel loads the module on the first create).
        let made_or_named =
            |name: &str, made: Result<(), ipvlan::netlink::Error>, says: &str| match made {
                Ok(()) => h.link_del(h.link_index(name).unwrap()).unwrap(),
                Err(err) => {
                    assert!(matches!(err.kind(), ErrorKind::Unsupported { .. }), "{err}");
                    assert!(err.to_string().contains(says), "{err}");
                }
            };
        let iv = h.link_add(&LinkSpec::ipvlan(
            "iv0",
            2,
            IpvlanMode::L2,
            IpvlanFlag::Bridge,
        ));
        if let Err(err) = &iv {
            assert!(
                matches!(err.kind(), ErrorKind::Unsupported { feature, .. } if feature == "ipvlan"),
                "{err}"
            );
            assert_eq!(
                err.to_string(),
                "create link iv0: this kernel has no ipvlan support (CONFIG_IPVLAN); \
                 try `modprobe ipvlan`"
            );
        }
        made_or_named("iv0", iv, "CONFIG_IPVLAN");
        made_or_named("d0", h.link_add(&LinkSpec::dummy("d0")), "CONFIG_DUMMY");
        made_or_named(
            "va0.5",
            h.link_add(&LinkSpec::vlan("va0.5", 2, 5)),
            "modprobe 8021q",
        );

        let bad = h
            .link_add(&LinkSpec::veth("much-too-long-name", "x"))
            .unwrap_err();
        assert!(
            matches!(bad.kind(), ErrorKind::InvalidInput { .. }),
            "{bad}"
        );
        assert!(h.link_by_name("much-too-long-n").unwrap().is_none());
    });
}

#[test]
fn probe_kind_agrees_with_a_real_create_and_creates_nothing() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        let probed = ProbeKind::ALL.map(|kind| h.probe_kind(kind).unwrap());
        let names: Vec<String> = h.links().unwrap().into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["lo"], "a probe leaves nothing behind");
        let (parent, _) = veth(&h, "va0", "vb0");
        for (kind, known) in ProbeKind::ALL.into_iter().zip(probed) {
            let spec = match kind {
                ProbeKind::Ipvlan => {
                    LinkSpec::ipvlan("x0", parent, IpvlanMode::L2, IpvlanFlag::Bridge)
                }
                ProbeKind::Dummy => LinkSpec::dummy("x0"),
                ProbeKind::Vlan => LinkSpec::vlan("x0", parent, 5),
            };
            let created = h.link_add(&spec);
            assert_eq!(created.is_ok(), known, "{}: {created:?}", kind.name());
            if created.is_ok() {
                h.link_del(h.link_index("x0").unwrap()).unwrap();
            }
        }
    });
}

#[test]
fn create_with_index_here_and_in_another_netns() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        h.link_add(&LinkSpec::veth("va0", "vb0").index(4242))
            .unwrap();
        assert_eq!(h.link_index("va0").unwrap(), 4242);
        // "eth0" exists here; with an index the kernel looks up only the
        // index here, so the name is created in the target directly.
        let (parent, _) = veth(&h, "eth0", "peer0");
        let target = netns::create_anonymous().unwrap();
        let inside = Handle::in_netns(&target).unwrap();
        let spec = |name: &str, index| {
            LinkSpec::macvlan(name, parent, MacvlanMode::Bridge)
                .in_netns(&target)
                .mtu(1400)
                .index(index)
        };
        h.link_add(&spec("eth0", 77)).unwrap();
        let eth0 = inside.link_by_name("eth0").unwrap().expect("eth0 inside");
        assert_eq!((eth0.index, eth0.mtu), (77, Some(1400)));
        // The index taken in the target: EBUSY from register_netdevice
        // (6.1), or EEXIST where the kernel looks it up there first (6.18).
        let busy = h.link_add(&spec("eth1", 77)).unwrap_err();
        assert!(
            matches!(busy.errno(), Some(libc::EBUSY | libc::EEXIST)),
            "{busy}"
        );
        assert!(inside.link_by_name("eth1").unwrap().is_none());
        // Taken only here: 6.1 looks the index up here (EEXIST), 6.18 only
        // in the target, where it is free.
        match h.link_add(&spec("eth1", 4242)) {
            Ok(()) => assert_eq!(inside.link_index("eth1").unwrap(), 4242),
            Err(err) => assert_eq!(err.errno(), Some(libc::EEXIST), "{err}"),
        }
    });
}

#[test]
fn nsid_of_matches_link_netnsid() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        let here = Netns::current().unwrap();
        let target = netns::create_anonymous().unwrap();
        let inside = Handle::in_netns(&target).unwrap();
        assert_eq!(inside.nsid_of(here.fd()).unwrap(), None, "no id yet");
        let (a, _) = veth(&h, "va0", "vb0");
        h.link_set_netns(a, &target).unwrap();
        let va0 = inside.link_by_name("va0").unwrap().expect("va0 moved");
        let id = inside.nsid_of(here.fd()).unwrap();
        assert!(id.is_some(), "the peer's namespace has an id now");
        assert_eq!(id, va0.link_netnsid);
        // The target's id here is what vb0 reports for its peer.
        let vb0 = h.link_by_name("vb0").unwrap().unwrap();
        assert_eq!(h.nsid_of(target.fd()).unwrap(), vb0.link_netnsid);
    });
}

#[test]
fn handle_in_named_netns_reports_its_name() {
    let run_dir = TempRunDir::new("handle");
    let ns = netns::create_named(&run_dir.path, "t1").unwrap();
    let h = Handle::in_netns(&ns).unwrap();
    assert_eq!(h.netns_label(), Some("t1"));
    let err = h.link_del(777).unwrap_err();
    assert_eq!(err.netns_name(), Some("t1"));
    assert!(err.to_string().contains("in netns t1"), "{err}");
    assert_eq!(h.links().unwrap().len(), 1);
    drop(h);
    drop(ns);
    netns::delete_named(&run_dir.path, "t1").unwrap();
}

#[test]
fn named_netns_create_list_open_delete() {
    let run_dir = TempRunDir::new("named");
    assert!(netns::list_named(&run_dir.path).unwrap().is_empty());
    let a = netns::create_named(&run_dir.path, "a").unwrap();
    netns::create_named(&run_dir.path, "b").unwrap();
    assert_eq!(netns::list_named(&run_dir.path).unwrap(), vec!["a", "b"]);
    let dup = netns::create_named(&run_dir.path, "a").unwrap_err();
    assert_eq!(dup.kind(), std::io::ErrorKind::AlreadyExists);
    assert!(netns::create_named(&run_dir.path, "../x").is_err());

    // Something created through one handle is visible through the other.
    let reopened = Netns::open_named(&run_dir.path, "a").unwrap();
    Handle::in_netns(&a)
        .unwrap()
        .link_add(&LinkSpec::veth("in-a0", "in-a1"))
        .unwrap();
    assert!(Handle::in_netns(&reopened)
        .unwrap()
        .link_by_name("in-a0")
        .unwrap()
        .is_some());
    // ... and not in b, nor in ours.
    let b = Netns::open_named(&run_dir.path, "b").unwrap();
    assert!(Handle::in_netns(&b)
        .unwrap()
        .link_by_name("in-a0")
        .unwrap()
        .is_none());

    netns::set_disable_ipv6(&a, "in-a0", true).unwrap();
    assert!(netns::disable_ipv6(&a, "in-a0").unwrap());
    netns::set_disable_ipv6(&a, "in-a0", false).unwrap();
    assert!(!netns::disable_ipv6(&a, "in-a0").unwrap());
    // A name that climbs out of its link's directory is refused as a
    // name, before any path is tried: `../conf/all` resolves to a real
    // file, whose value stays.
    let all = netns::disable_ipv6(&a, "all").unwrap();
    let climbing = netns::set_disable_ipv6(&a, "../conf/all", !all).unwrap_err();
    assert_eq!(
        climbing.kind(),
        std::io::ErrorKind::InvalidInput,
        "{climbing}"
    );
    assert_eq!(netns::disable_ipv6(&a, "all").unwrap(), all);

    netns::delete_named(&run_dir.path, "a").unwrap();
    netns::delete_named(&run_dir.path, "b").unwrap();
    assert!(netns::list_named(&run_dir.path).unwrap().is_empty());
    let gone = netns::delete_named(&run_dir.path, "a").unwrap_err();
    assert_eq!(gone.kind(), std::io::ErrorKind::NotFound, "{gone}");
    let mounted = || std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(mounted().contains(run_dir.path.to_str().unwrap()));
    netns::release_run_dir(&run_dir.path).unwrap();
    assert!(!mounted().contains(run_dir.path.to_str().unwrap()));
    netns::release_run_dir(&run_dir.path).unwrap();
}

/// A batch opens each link's settings through a procfs instance of its
/// own, made anew every `SysctlFiles::LOOKUPS` namespaces: every write
/// lands in the namespace visited, across the instances, and none in the
/// visiting thread's own (a lookup made from there would find its `lo`).
#[test]
fn a_batchs_sysctl_writes_land_in_each_namespace_visited() {
    let run_dir = TempRunDir::new("sysctls");
    let home = netns::create_named(&run_dir.path, "home").unwrap();
    let count = 2 * netns::SysctlFiles::LOOKUPS + 3;
    let visited: Vec<Netns> = (0..count)
        .map(|i| netns::create_named(&run_dir.path, &format!("s{i}")).unwrap())
        .collect();
    // On a thread living in `home`, as a batch's thread lives in its own.
    netns::run_in(&home, || {
        let files = netns::SysctlFiles::default();
        for (i, ns) in visited.iter().enumerate() {
            let key = [("ipv6", "disable_ipv6", true)];
            let set = netns::set_link_sysctls_from(&home, ns, "lo", &key, &files).unwrap();
            assert!(matches!(set.as_slice(), [Ok(())]), "s{i}: {set:?}");
        }
    })
    .unwrap();
    for (i, ns) in visited.iter().enumerate() {
        assert!(netns::disable_ipv6(ns, "lo").unwrap(), "s{i}");
    }
    assert!(
        !netns::disable_ipv6(&home, "lo").unwrap(),
        "the visitor's own"
    );
    drop(visited);
    drop(home);
    for i in 0..count {
        netns::delete_named(&run_dir.path, &format!("s{i}")).unwrap();
    }
    netns::delete_named(&run_dir.path, "home").unwrap();
}

/// A private run dir for named namespaces; unmounted and removed on drop.
struct TempRunDir {
    path: std::path::PathBuf,
}

impl TempRunDir {
    fn new(tag: &str) -> TempRunDir {
        common::privilege::require_root();
        let path =
            std::env::temp_dir().join(format!("ipvlan-test-netns-{tag}-{}", std::process::id()));
        TempRunDir { path }
    }
}

impl Drop for TempRunDir {
    fn drop(&mut self) {
        for name in netns::list_named(&self.path).unwrap_or_default() {
            let _ = netns::delete_named(&self.path, &name);
        }
        // create_named made the run dir a (shared) bind mount of itself.
        netns::release_run_dir(&self.path).unwrap();
        let _ = std::fs::remove_dir(&self.path);
    }
}

#[test]
fn transport_reports_ext_ack_offset_of_the_bad_attribute() {
    in_fresh_netns(|| {
        use ipvlan::netlink::consts::{IFLA_IFNAME, IFLA_INFO_KIND, IFLA_LINKINFO, RTM_NEWLINK};
        use ipvlan::netlink::MessageBuilder;
        let h = Handle::new().unwrap();
        // A 16-byte name (one too many) straight through the socket, past
        // our own name check: the kernel's policy rejects the attribute.
        let mut msg = MessageBuilder::new(RTM_NEWLINK, 0x600);
        msg.family_header(&[0; 16])
            .put_str(IFLA_IFNAME, "sixteen-bytes-xx")
            .nested(IFLA_LINKINFO, |m| {
                m.put(IFLA_INFO_KIND, b"veth");
            });
        let err = h.socket().request(&msg).unwrap_err();
        assert_eq!(err.errno(), Some(libc::ERANGE), "{err}");
        assert_eq!(err.ext_ack(), Some("Attribute failed policy validation"));
        match err.kind() {
            ErrorKind::Kernel { offset, .. } => assert_eq!(*offset, Some(32), "16 + 16"),
            other => panic!("{other:?}"),
        }
        // The socket stays usable after an error.
        assert_eq!(h.links().unwrap().len(), 1);
    });
}

#[test]
fn dump_spanning_many_datagrams_is_complete() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        // ~1.1 KiB per link message: 300 links need about ten 32 KiB datagrams.
        for i in 0..150 {
            h.link_add(&LinkSpec::veth(&format!("a{i}"), &format!("b{i}")))
                .unwrap();
        }
        let links = h.links().unwrap();
        assert_eq!(links.len(), 301);
        let mut indices: Vec<u32> = links.iter().map(|l| l.index).collect();
        indices.dedup();
        assert_eq!(indices.len(), 301, "no link twice");
        let json = ip_json(&["link", "show"]);
        assert_eq!(json.matches("\"ifindex\"").count(), 301);
        // Two handles in one netns have distinct port ids and do not mix replies.
        let other = Handle::new().unwrap();
        assert_ne!(
            other.socket().port_id().unwrap(),
            h.socket().port_id().unwrap()
        );
        assert_eq!(other.links().unwrap(), links);
    });
}

#[test]
fn handle_by_pid_and_path_see_the_same_netns() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        veth(&h, "va0", "vb0");
        let tid = gettid() as u32;
        // /proc/PID/ns/net of a thread id is that thread's netns.
        let by_pid = Handle::in_netns_of_pid(tid).unwrap();
        assert!(by_pid.link_by_name("va0").unwrap().is_some());
        let by_path = Handle::in_netns_path(format!("/proc/self/task/{tid}/ns/net")).unwrap();
        assert!(by_path.link_by_name("vb0").unwrap().is_some());
        let missing = Handle::in_named_netns("/nonexistent-run-dir", "x").unwrap_err();
        assert_eq!(missing.errno(), Some(libc::ENOENT), "{missing}");
        assert!(
            missing.to_string().starts_with("open netns x: "),
            "{missing}"
        );
    });
}

/// Runs `test` on a thread with its own mount and network namespaces and a
/// private tmpfs on /run, so named namespaces can live in the standard
/// /run/netns (where iproute2 looks) without touching the host's.
fn in_private_run_dir(test: impl FnOnce() + Send) {
    common::privilege::require_root();
    netns::run_in_new_with_private_dir("/run", test).expect("private /run (are we root?)");
}

fn ip_ok(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn named_netns_interoperates_with_iproute2() {
    in_private_run_dir(|| {
        let run_dir = netns::DEFAULT_RUN_DIR;
        // Ours, used by iproute2.
        let ours = netns::create_named(run_dir, "ours").unwrap();
        Handle::in_netns(&ours)
            .unwrap()
            .link_add(&LinkSpec::veth("o0", "o1"))
            .unwrap();
        assert!(ip_ok(&["netns", "list"]).contains("ours"));
        let json = ip_json(&["-n", "ours", "link", "show", "dev", "o0"]);
        assert!(json.contains("\"ifname\":\"o0\""), "{json}");
        let inside = ip_ok(&["netns", "exec", "ours", "ip", "-br", "link"]);
        assert!(inside.contains("o1@o0"), "{inside}");

        // iproute2's, used by us.
        ip_ok(&["netns", "add", "theirs"]);
        assert_eq!(netns::list_named(run_dir).unwrap(), vec!["ours", "theirs"]);
        let theirs = Handle::in_named_netns(run_dir, "theirs").unwrap();
        assert_eq!(theirs.links().unwrap().len(), 1);
        theirs.link_add(&LinkSpec::veth("t0", "t1")).unwrap();
        assert!(ip_ok(&["-n", "theirs", "link", "show", "dev", "t0"]).contains("t0@t1"));

        // Deletes, each seen by the other.
        drop(ours);
        netns::delete_named(run_dir, "ours").unwrap();
        assert!(!ip_ok(&["netns", "list"]).contains("ours"));
        ip_ok(&["netns", "del", "theirs"]);
        assert!(netns::list_named(run_dir).unwrap().is_empty());
        // The handle keeps its netns alive after the name is gone.
        assert!(theirs.link_by_name("t0").unwrap().is_some());
    });
}

#[test]
fn group_delete_removes_all_members_in_one_request() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        for i in 0..20 {
            h.link_add(&LinkSpec::veth(&format!("g{i}"), &format!("p{i}")).group(42))
                .unwrap();
        }
        let (a, _) = veth(&h, "keep0", "keep1");
        h.link_set_group(a, 7).unwrap();
        let links = h.links().unwrap();
        assert_eq!(
            links.iter().filter(|l| l.group == Some(42)).count(),
            20,
            "peers stay in 0"
        );
        assert_eq!(h.link_by_index(a).unwrap().unwrap().group, Some(7));
        assert!(ip_json(&["link", "show", "dev", "g3"]).contains("\"group\":\"42\""));
        h.link_del_group(42).unwrap();
        let mut names: Vec<String> = h.links().unwrap().into_iter().map(|l| l.name).collect();
        names.sort();
        assert_eq!(names, ["keep0", "keep1", "lo"]);
        assert!(h.link_del_group(0).is_err(), "never the default group");
        let err = h.link_del_group(42).unwrap_err();
        assert_eq!(err.errno(), Some(libc::ENODEV), "{err}");
    });
}

#[test]
fn routes_in_tables_beyond_255() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        let (a, _) = veth(&h, "va0", "vb0");
        h.link_set_up(a).unwrap();
        let spec = RouteSpec::default_dev(IpFamily::V4, a)
            .table(1000)
            .metric(7);
        h.route_add(&spec).unwrap();
        let routes = h.routes_in_table(IpFamily::V4, 1000).unwrap();
        assert_eq!(routes.len(), 1, "{routes:?}");
        assert_eq!(
            (routes[0].table, routes[0].metric, routes[0].oif),
            (1000, Some(7), Some(a))
        );
        assert!(h
            .routes(IpFamily::V4)
            .unwrap()
            .iter()
            .all(|r| !r.is_default()));
        assert!(ip_json(&["route", "show", "table", "1000"]).contains("\"metric\":7"));
        h.route_del(&spec).unwrap();
        assert!(h.routes_in_table(IpFamily::V4, 1000).unwrap().is_empty());
        let gone = h.route_del(&spec).unwrap_err();
        assert_eq!(gone.errno(), Some(libc::ESRCH), "{gone}");
    });
}

/// Set in the child process of `visits_ended_out_of_order_abort_the_process`.
const VISIT_ORDER_ENV: &str = "IPVLAN_TEST_VISIT_ORDER";

/// Each visit returns the thread to where the one before it left it, so
/// ending an earlier visit before a later one would leave the thread, at
/// the later one's end, in the earlier visit's namespace, going on there
/// unnoticed. Visits ended in order are fine; out of order, the process
/// aborts at the first wrong drop. Runs in a child process, which is the
/// one that aborts.
#[test]
fn visits_ended_out_of_order_abort_the_process() {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::process::ExitStatusExt;
    const TEST: &str = "visits_ended_out_of_order_abort_the_process";
    common::privilege::require_root();
    if std::env::var_os(VISIT_ORDER_ENV).is_some() {
        let own = || std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino();
        let home = own();
        let (first, second) = (
            netns::create_anonymous().unwrap(),
            netns::create_anonymous().unwrap(),
        );
        let outer = netns::Visit::enter(&first).unwrap();
        let inner = netns::Visit::enter(&second).unwrap();
        assert_eq!(own(), second.file_id().1);
        drop(inner);
        assert_eq!(own(), first.file_id().1);
        drop(outer);
        assert_eq!(own(), home);
        println!("@@in-order-ok");
        let outer = netns::Visit::enter(&first).unwrap();
        let inner = netns::Visit::enter(&second).unwrap();
        drop(outer);
        drop(inner);
        println!("@@went-on-in {} (home {home})", own());
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(VISIT_ORDER_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("@@in-order-ok")
            && !stdout.contains("@@went-on-in")
            && out.status.signal() == Some(libc::SIGABRT)
            && stderr.contains(
                "ipvlan: a network namespace visit was ended before a later one; aborting"
            ),
        "child: {}\n{stdout}\n{stderr}",
        out.status
    );
}

/// Set in the child process of `thread_refusal_is_an_error_not_a_panic`:
/// the pids cgroup directory (v1 or v2) it must confine itself to.
const PIDS_CGROUP_ENV: &str = "IPVLAN_TEST_PIDS_CGROUP";

/// When the OS refuses a thread (here: a pids cgroup at its limit), entering
/// a namespace on a scratch thread fails with that error instead of
/// panicking (the release build aborts on panic), while a handle in a
/// namespace, which needs no thread, is still made. Runs in a child
/// process, which is the one confined. RLIMIT_NPROC would not do: it does
/// not bind root.
#[test]
fn thread_refusal_is_an_error_not_a_panic() {
    const TEST: &str = "thread_refusal_is_an_error_not_a_panic";
    common::privilege::require_root();
    if let Ok(cgroup) = std::env::var(PIDS_CGROUP_ENV) {
        let cgroup = std::path::Path::new(&cgroup);
        std::fs::write(cgroup.join("cgroup.procs"), std::process::id().to_string()).unwrap();
        let current = std::fs::read_to_string(cgroup.join("pids.current")).unwrap();
        std::fs::write(cgroup.join("pids.max"), current.trim()).unwrap();
        let here = Netns::current().unwrap();
        let err = netns::run_in(&here, || ()).expect_err("no thread can start");
        assert_eq!(err.raw_os_error(), Some(libc::EAGAIN), "{err}");
        let handle = Handle::in_netns(&here).expect("a handle needs no thread");
        assert_eq!(handle.link_index("lo").unwrap(), 1);
        println!("@@confined-ok");
        return;
    }
    let cgroup = PidsCgroup::create();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(PIDS_CGROUP_ENV, &cgroup.path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("@@confined-ok"),
        "child (confined by {}): {}\n{stdout}\n{}",
        cgroup.path.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new, empty cgroup with the pids controller, removed on drop.
struct PidsCgroup {
    path: std::path::PathBuf,
}

impl PidsCgroup {
    /// Under the cgroup v2 hierarchy if it offers `pids`, else under a
    /// cgroup v1 `pids` hierarchy (hybrid setups bind the controller to
    /// one of them). Panics, saying what it found, if neither is usable.
    fn create() -> PidsCgroup {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mut v2 = Vec::new();
        let mut v1 = Vec::new();
        for line in mountinfo.lines() {
            let Some((mount, fs)) = line.split_once(" - ") else {
                continue;
            };
            let mount_point = mount.split(' ').nth(4);
            let mut fs = fs.split(' ');
            let (fs_type, options) = (fs.next(), fs.nth(1).unwrap_or(""));
            match (mount_point, fs_type) {
                (Some(dir), Some("cgroup2")) => v2.push(std::path::PathBuf::from(dir)),
                (Some(dir), Some("cgroup")) if options.split(',').any(|o| o == "pids") => {
                    v1.push(std::path::PathBuf::from(dir))
                }
                _ => {}
            }
        }
        let name = format!("ipvlan-test-{}", std::process::id());
        let mut tried = Vec::new();
        for root in &v2 {
            match Self::enable_v2_pids(root) {
                Ok(()) => match Self::make(root.join(&name)) {
                    Ok(cgroup) => return cgroup,
                    Err(why) => tried.push(format!("cgroup v2 at {}: {why}", root.display())),
                },
                Err(why) => tried.push(format!("cgroup v2 at {}: {why}", root.display())),
            }
        }
        for root in &v1 {
            match Self::make(root.join(&name)) {
                Ok(cgroup) => return cgroup,
                Err(why) => tried.push(format!("cgroup v1 pids at {}: {why}", root.display())),
            }
        }
        if v2.is_empty() {
            tried.push("no cgroup v2 mount".into());
        }
        if v1.is_empty() {
            tried.push("no cgroup v1 pids mount".into());
        }
        panic!(
            "this test needs a pids cgroup controller, in cgroup v2 (mount -t cgroup2) \
             or v1 (mount -t cgroup -o pids), to make thread creation fail:\n  {}",
            tried.join("\n  ")
        );
    }

    /// Makes `pids` available to the children of the v2 cgroup `root`.
    fn enable_v2_pids(root: &std::path::Path) -> Result<(), String> {
        let has_pids = |file: &str| {
            std::fs::read_to_string(root.join(file))
                .map(|list| list.split_whitespace().any(|c| c == "pids"))
                .map_err(|e| format!("{file}: {e}"))
        };
        if !has_pids("cgroup.controllers")? {
            return Err("no pids controller (bound to cgroup v1, or disabled)".into());
        }
        if !has_pids("cgroup.subtree_control")? {
            std::fs::write(root.join("cgroup.subtree_control"), "+pids")
                .map_err(|e| format!("enabling pids in cgroup.subtree_control: {e}"))?;
        }
        Ok(())
    }

    fn make(path: std::path::PathBuf) -> Result<PidsCgroup, String> {
        std::fs::create_dir(&path).map_err(|e| format!("mkdir {}: {e}", path.display()))?;
        let cgroup = PidsCgroup { path };
        if !cgroup.path.join("pids.max").exists() {
            return Err("the new cgroup has no pids.max".into());
        }
        Ok(cgroup)
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        // The confined child has been reaped, but the kernel may take a
        // moment to see the cgroup empty.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.path).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// Linux lets an interface name hold any byte but '/', ':', whitespace and
/// NUL. One such link must not break the dumps of its namespace.
#[test]
fn link_with_non_utf8_name_does_not_break_dumps() {
    use std::os::unix::ffi::OsStrExt;
    in_fresh_netns(|| {
        let odd = std::ffi::OsStr::from_bytes(b"\xffx");
        let out = Command::new("ip")
            .args(["link", "add"])
            .arg(odd)
            .args(["type", "veth", "peer", "name", "plain0"])
            .output()
            .expect("run ip");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let h = Handle::new().unwrap();
        let plain = h.link_index("plain0").unwrap();
        h.addr_add(plain, net("10.1.0.1/24"), AddrFlags::empty())
            .unwrap();
        let links = h.links().expect("the dump survives the odd name");
        let odd_link = links
            .iter()
            .find(|l| l.name_bytes() == b"\xffx")
            .unwrap_or_else(|| panic!("odd link listed: {links:?}"));
        assert_eq!(odd_link.name, "\u{fffd}x");
        assert_eq!(odd_link.kind.as_deref(), Some("veth"));
        assert_eq!(odd_link.parent, Some(plain), "veth peer index");
        let by_index = h.link_by_index(odd_link.index).unwrap().unwrap();
        assert_eq!(by_index.raw_name.as_deref(), Some(&b"\xffx"[..]));
        assert!(links.iter().any(|l| l.name == "plain0"));
        let addrs = h.addrs().expect("address dump");
        assert!(addrs.iter().any(|a| a.index == plain));
        h.link_del(odd_link.index).unwrap();
        assert!(h.link_by_index(plain).unwrap().is_none(), "pair deleted");
    });
}

/// A request the kernel never answers (no `NLM_F_ACK`, and a set request
/// sends nothing back) ends with a timeout error, not a hang; the socket
/// stays usable.
#[test]
fn missing_reply_times_out_with_context() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        h.socket()
            .set_recv_timeout(std::time::Duration::from_millis(200))
            .unwrap();
        let silent = ipvlan::rtnl::link::set_up_request(1, true);
        let err = h
            .socket()
            .request_reply(&silent, |_| Ok(()))
            .expect_err("no reply ever comes");
        assert!(matches!(err.kind(), ErrorKind::Timeout { .. }), "{err:?}");
        assert_eq!(err.errno(), Some(libc::ETIMEDOUT));
        assert!(
            err.to_string().contains("no answer from the kernel"),
            "{err}"
        );
        assert!(
            h.link_by_index(1).unwrap().unwrap().is_up(),
            "lo was set up"
        );
        assert_eq!(h.links().unwrap().len(), 1);
    });
}

/// More deletes than one datagram can carry (the doubled 32 KiB send
/// buffer holds ~2000): sent in chunks, one result each, in order.
#[test]
fn batched_delete_larger_than_the_send_buffer() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        let (a, _) = veth(&h, "va", "vb");
        let (c, _) = veth(&h, "vc", "vd");
        let mut indices: Vec<u32> = (100_000..103_000).collect();
        indices[10] = a;
        indices[2_999] = c;
        let results = h.link_del_many(&indices).expect("batch sent");
        assert_eq!(results.len(), indices.len());
        for (i, result) in results.iter().enumerate() {
            match i {
                10 | 2_999 => assert!(result.is_ok(), "{i}: {result:?}"),
                _ => assert_eq!(result.as_ref().unwrap_err().errno(), Some(libc::ENODEV)),
            }
        }
        assert_eq!(h.links().unwrap().len(), 1, "only lo is left");
    });
}

/// The sysctl helpers take interface names, with the kernel's rule for
/// them: what `ip link` would refuse is refused before any path is built.
#[test]
fn sysctl_helpers_refuse_what_is_not_an_interface_name() {
    in_fresh_netns(|| {
        let here = Netns::current().unwrap();
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "a\tb",
            "sixteen_bytes_xx",
        ] {
            let err = netns::disable_ipv6(&here, bad).expect_err(bad);
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{bad:?}");
            let err = netns::set_disable_ipv6(&here, bad, true).expect_err(bad);
            assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{bad:?}");
        }
        assert!(!netns::disable_ipv6(&here, "lo").unwrap());
    });
}

/// Without root, each test that needs it fails with the same one line.
#[test]
fn without_root_every_privileged_test_fails_with_one_reason() {
    common::privilege::assert_unprivileged_run_fails_with_one_reason(
        "without_root_every_privileged_test_fails_with_one_reason",
    );
}

/// A pipeline sends its steps together; the kernel carries out every one,
/// and a failure is reported as the step's own call would report it (its
/// operation, its link), whichever step it was.
#[test]
fn a_pipeline_reports_the_step_that_failed() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        h.link_add(&LinkSpec::veth("pa", "pb")).unwrap();
        let pa = h.link_index("pa").unwrap();
        let net: IpNet = "10.9.0.2/24".parse().unwrap();
        let unreachable = RouteSpec::to("10.8.0.0/16".parse().unwrap())
            .via("192.0.2.1".parse().unwrap())
            .dev(pa);
        let err = h
            .pipeline(&[
                Step::AddrAdd {
                    index: pa,
                    net,
                    flags: AddrFlags::NODAD,
                },
                Step::LinkUp { index: pa },
                Step::RouteAdd(unreachable.clone()),
            ])
            .unwrap_err();
        assert_eq!(err.operation(), "add route", "{err}");
        assert_eq!(err.errno(), Some(libc::ENETUNREACH), "{err}");
        // Which route, as the call of its own names it (before, none).
        let route = format!("10.8.0.0/16 via 192.0.2.1 on ifindex {pa}");
        assert_eq!(err.subject_name(), Some(route.as_str()), "{err}");
        let alone = h.route_add(&unreachable).unwrap_err();
        assert_eq!(alone.subject_name(), Some(route.as_str()), "{alone}");
        assert!(
            alone.to_string().starts_with(&format!("add route {route}")),
            "{alone}"
        );
        // The steps before it took effect.
        assert!(h.link_by_index(pa).unwrap().unwrap().is_up());
        let addrs = h.addrs().unwrap();
        assert!(
            addrs.iter().any(|a| a.index == pa && a.net == net),
            "{addrs:?}"
        );

        // The first step fails: its error, though later ones succeed.
        let err = h
            .pipeline(&[
                Step::AddrAdd {
                    index: 999_999,
                    net,
                    flags: AddrFlags::empty(),
                },
                Step::LinkUp { index: pa },
            ])
            .unwrap_err();
        assert_eq!(err.operation(), "add address", "{err}");
        assert_eq!(err.subject_name(), Some("ifindex 999999"), "{err}");
        assert_eq!(err.errno(), Some(libc::ENODEV), "{err}");
        h.pipeline(&[]).unwrap();
    });
}

/// `arp_notify` set by netlink in a pipeline (before the up, as the kernel
/// announces a link whose setting is on when it comes up) is the setting
/// `/proc/sys` shows; each step's result comes apart (`pipeline_each`),
/// a failed one beside those that took effect.
#[test]
fn a_pipeline_sets_arp_notify_as_its_sysctl_reads() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        let (pa, _) = veth(&h, "pa", "pb");
        let setting = || {
            let text = std::fs::read_to_string("/proc/sys/net/ipv4/conf/pa/arp_notify").unwrap();
            text.trim().to_string()
        };
        assert_eq!(setting(), "0");
        h.pipeline(&[
            Step::ArpNotify {
                index: pa,
                on: true,
            },
            Step::LinkUp { index: pa },
        ])
        .unwrap();
        assert_eq!(setting(), "1");
        assert!(h.link_by_index(pa).unwrap().unwrap().is_up());

        let results = h
            .pipeline_each(&[
                Step::ArpNotify {
                    index: 999_999,
                    on: false,
                },
                Step::ArpNotify {
                    index: pa,
                    on: false,
                },
            ])
            .unwrap();
        assert_eq!(results.len(), 2);
        let err = results[0].as_ref().unwrap_err();
        assert_eq!(err.operation(), "set arp_notify", "{err}");
        assert_eq!(err.subject_name(), Some("ifindex 999999"), "{err}");
        assert_eq!(err.errno(), Some(libc::ENODEV), "{err}");
        assert!(results[1].is_ok(), "{results:?}");
        assert_eq!(setting(), "0");
    });
}

/// ARP packets from `address` that `peer` receives while `steps` run on
/// the other end of its veth pair: a packet socket bound to `peer`, read
/// until nothing more comes for `quiet`.
fn arp_from(h: &Handle, peer: u32, address: [u8; 4], steps: &[Step], quiet: Duration) -> usize {
    let protocol = (libc::ETH_P_ARP as u16).to_be();
    // SAFETY: plain socket(2) with constant arguments; the descriptor is
    // owned at once.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(protocol)) };
    assert!(fd >= 0, "{}", std::io::Error::last_os_error());
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter
    // are set below.
    let mut at: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    at.sll_family = libc::AF_PACKET as u16;
    at.sll_protocol = protocol;
    at.sll_ifindex = peer as i32;
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `at` is a sockaddr_ll of `len` bytes, alive for the call.
    let bound = unsafe { libc::bind(fd, (&raw const at).cast(), len) };
    assert_eq!(bound, 0, "{}", std::io::Error::last_os_error());
    h.pipeline(steps).unwrap();
    let mut seen = 0;
    let mut frame = [0u8; 128];
    loop {
        let mut ready = libc::pollfd {
            fd: socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let wait = i32::try_from(quiet.as_millis()).unwrap();
        // SAFETY: one pollfd, alive for the call.
        if unsafe { libc::poll(&mut ready, 1, wait) } <= 0 {
            return seen;
        }
        // SAFETY: `frame` is writable for its length during the call.
        let got = unsafe { libc::recv(fd, frame.as_mut_ptr().cast(), frame.len(), 0) };
        // Ethernet header (14 bytes), then the ARP packet, whose sender's
        // IPv4 address is at its bytes 14..18.
        if got >= 32 && frame[28..32] == address {
            seen += 1;
        }
    }
}

/// Why a CNI ADD's `arp_notify` goes in a request before the link's up,
/// not after it nor in the up's own request (where the kernel applies it
/// after the flags): the kernel announces a link's addresses (gratuitous
/// ARP) when it comes up, only if the setting is on by then.
#[test]
fn the_kernel_announces_a_link_only_when_arp_notify_is_on_before_the_up() {
    for before in [true, false] {
        in_fresh_netns(|| {
            let h = Handle::new().unwrap();
            let (pa, pb) = veth(&h, "pa", "pb");
            // No IPv6 traffic to wait behind; the peer up to receive.
            netns::set_disable_ipv6(&Netns::current().unwrap(), "pa", true).unwrap();
            h.link_set_up(pb).unwrap();
            let arp = Step::ArpNotify {
                index: pa,
                on: true,
            };
            let address = Step::AddrAdd {
                index: pa,
                net: net("10.9.0.2/24"),
                flags: AddrFlags::empty(),
            };
            let up = Step::LinkUp { index: pa };
            let steps = match before {
                true => [arp, address, up],
                false => [address, up, arp],
            };
            let quiet = Duration::from_millis(300);
            let seen = arp_from(&h, pb, [10, 9, 0, 2], &steps, quiet);
            match before {
                true => assert!(seen >= 1, "no announcement: {steps:?}"),
                false => assert_eq!(seen, 0, "announced: {steps:?}"),
            }
        });
    }
}

/// `Visit::open_and_enter` refuses what `Netns::open_path` refuses, with
/// the same errors (another kind of namespace is found by the `setns`
/// refusing it), does not enter the caller's own namespace, and keeps the
/// thread in another one until the visit is dropped; other threads never
/// move.
#[test]
fn open_and_enter_refuses_like_open_path_and_returns_home() {
    use std::os::unix::fs::MetadataExt;
    in_fresh_netns(|| {
        let own = || std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino();
        let home = own();
        for path in [
            "/proc/self/ns/mnt",
            "/proc/self/ns/user",
            "/dev/null",
            "/proc/self/status",
        ] {
            let opened = Netns::open_path(path).unwrap_err();
            let entered = netns::Visit::open_and_enter(path).unwrap_err();
            assert_eq!(entered.to_string(), opened.to_string(), "{path}");
            assert_eq!(
                netns::not_a_namespace(&entered),
                netns::not_a_namespace(&opened),
                "{path}"
            );
            assert_eq!(own(), home, "{path}");
        }
        let (ns, visit) = netns::Visit::open_and_enter("/proc/thread-self/ns/net").unwrap();
        assert!(ns.is_openers_own() && visit.is_none());
        assert_eq!(own(), home);

        let other = netns::create_anonymous().unwrap();
        let path = format!("/proc/self/fd/{}", other.fd().as_raw_fd());
        let (ask, asked) = std::sync::mpsc::channel::<()>();
        let (tell, told) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            // Started before the visit: it stays where it is.
            scope.spawn(move || {
                while asked.recv().is_ok() {
                    tell.send(own()).unwrap();
                }
            });
            let (ns, visit) = netns::Visit::open_and_enter(&path).unwrap();
            assert_eq!(ns.file_id(), other.file_id());
            assert!(!ns.is_openers_own());
            assert_eq!(own(), other.file_id().1, "inside while the visit lasts");
            ask.send(()).unwrap();
            assert_eq!(told.recv().unwrap(), home, "another thread stays home");
            drop(visit);
            assert_eq!(own(), home);
            drop(ask);
        });
    });
}

/// The calling thread (only) sandboxed by Landlock so that it may write
/// files only beneath `/` of its mount tree: `/proc/sys` writes stay
/// allowed, as they would for a program that confines itself so.
fn landlock_writes_beneath_root_only() {
    #[repr(C)]
    struct RulesetAttr {
        handled_access_fs: u64,
    }
    #[repr(C, packed)]
    struct PathBeneath {
        allowed_access: u64,
        parent_fd: i32,
    }
    const WRITE_FILE: u64 = 1 << 1;
    let attr = RulesetAttr {
        handled_access_fs: WRITE_FILE,
    };
    let ruleset = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            std::mem::size_of::<RulesetAttr>(),
            0u32,
        )
    };
    assert!(
        ruleset >= 0,
        "landlock: {}",
        std::io::Error::last_os_error()
    );
    let root = std::fs::File::open("/").unwrap();
    let rule = PathBeneath {
        allowed_access: WRITE_FILE,
        parent_fd: root.as_raw_fd(),
    };
    let added = unsafe {
        libc::syscall(
            libc::SYS_landlock_add_rule,
            ruleset as i32,
            1u32, // LANDLOCK_RULE_PATH_BENEATH
            &rule as *const PathBeneath,
            0u32,
        )
    };
    assert_eq!(added, 0, "{}", std::io::Error::last_os_error());
    let restricted =
        unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset as i32, 0u32) };
    assert_eq!(restricted, 0, "{}", std::io::Error::last_os_error());
    unsafe { libc::close(ruleset as i32) };
}

/// `disable_ipv6` of `visited`'s `lo` set the single attach's way and the
/// batch's, each with its result written out, by a thread of its own that
/// first calls `confine`.
fn both_ways_from_a_thread(visited: &Netns, confine: impl FnOnce() + Send) -> (String, String) {
    let key = [("ipv6", "disable_ipv6", true)];
    std::thread::scope(|s| {
        s.spawn(|| {
            confine();
            let home = Netns::current().unwrap();
            let through_proc = netns::set_link_sysctls(visited, "lo", &key).unwrap();
            let files = netns::SysctlFiles::default();
            let through_batch =
                netns::set_link_sysctls_from(&home, visited, "lo", &key, &files).unwrap();
            (format!("{through_proc:?}"), format!("{through_batch:?}"))
        })
        .join()
        .unwrap()
    })
}

/// A thread confined so that `/proc/sys/net` writes through `/proc` work
/// (a single connect sets `disable_ipv6`), but whose confinement cannot
/// name a mount attached nowhere (Landlock here; AppArmor without
/// `attach_disconnected`, TOMOYO likewise): the batch's procfs instance
/// is made (no LSM hook stops `fsopen`/`fsmount`), every open through it
/// is refused, and the batch goes through `/proc` as a single connect.
/// Before, the batch failed (`EACCES`).
#[test]
fn a_batchs_sysctl_writes_work_where_procs_do() {
    common::privilege::require_root();
    let run_dir = TempRunDir::new("sysctl-ll");
    let visited = netns::create_named(&run_dir.path, "v").unwrap();
    let (through_proc, through_batch) =
        both_ways_from_a_thread(&visited, landlock_writes_beneath_root_only);
    drop(visited);
    netns::delete_named(&run_dir.path, "v").unwrap();
    assert_eq!(through_proc, "[Ok(())]", "a single connect's way");
    assert_eq!(through_batch, through_proc, "the batch's way");
}

/// `/proc/sys` read-only in this thread's mount namespace (systemd's
/// `ProtectKernelTunables=yes`, a container's read-only `/proc/sys`): a
/// single connect's write is refused (`EROFS`), and so is the batch's.
/// Before, the batch's went through its own procfs instance and landed.
#[test]
fn a_batch_honours_a_read_only_proc_sys_as_a_single_connect_does() {
    common::privilege::require_root();
    let run_dir = TempRunDir::new("sysctl-ro");
    let visited = netns::create_named(&run_dir.path, "v").unwrap();
    let (through_proc, through_batch) = both_ways_from_a_thread(&visited, || {
        use std::ptr::null;
        unsafe {
            assert_eq!(libc::unshare(libc::CLONE_NEWNS | libc::CLONE_FS), 0);
            assert_eq!(
                libc::mount(
                    null(),
                    c"/".as_ptr(),
                    null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    null()
                ),
                0
            );
            assert_eq!(
                libc::mount(
                    c"/proc/sys".as_ptr(),
                    c"/proc/sys".as_ptr(),
                    null(),
                    libc::MS_BIND,
                    null()
                ),
                0
            );
            assert_eq!(
                libc::mount(
                    null(),
                    c"/proc/sys".as_ptr(),
                    null(),
                    libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                    null()
                ),
                0,
                "{}",
                std::io::Error::last_os_error()
            );
        }
    });
    let landed = netns::disable_ipv6(&visited, "lo").unwrap();
    drop(visited);
    netns::delete_named(&run_dir.path, "v").unwrap();
    assert_eq!(
        (through_batch.as_str(), landed),
        (through_proc.as_str(), false),
        "the batch's way, and whether it wrote"
    );
}
