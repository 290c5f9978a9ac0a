//! rtnetlink against a kernel with ipvlan, dummy and 802.1Q (the QEMU guest
//! of `cargo xtask vm-test`; never skipped: on a kernel without them every
//! test fails with "this kernel has no ... support").
//!
//! Each test runs in its own fresh network namespace on a scratch thread;
//! "containers" are further anonymous namespaces. Links, addresses and
//! routes are set by our code only; iproute2 (by full path, busybox's `ip`
//! cannot do ipvlan) and busybox `ping` are used to read back and to probe.

use std::net::IpAddr;
use std::process::Command;

use ipnet::IpNet;
use ipvlan::json::{self, Value};
use ipvlan::netlink::consts::{
    IFLA_IFNAME, IFLA_INFO_DATA, IFLA_INFO_KIND, IFLA_IPVLAN_FLAGS, IFLA_IPVLAN_MODE, IFLA_LINK,
    IFLA_LINKINFO, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, RTM_NEWLINK,
};
use ipvlan::netlink::MessageBuilder;
use ipvlan::netns::{self, Netns};
use ipvlan::rtnl::{
    AddrFlags, Handle, IpFamily, IpvlanFlag, IpvlanMode, Link, LinkSpec, ProbeKind, Reported,
    RouteSpec,
};

fn in_fresh_netns(test: impl FnOnce() + Send) {
    netns::run_in_new(test).expect("unshare(CLONE_NEWNET)");
}

fn ip_path() -> String {
    std::env::var("IPVLAN_IP").unwrap_or_else(|_| "/usr/sbin/ip".to_owned())
}

/// iproute2's JSON for one link, read in the calling thread's netns.
fn ip_link_json(name: &str) -> Value {
    let out = Command::new(ip_path())
        .args(["-d", "-j", "link", "show", "dev", name])
        .output()
        .expect("run iproute2");
    assert!(
        out.status.success(),
        "ip link show {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let value = json::parse(&text).unwrap_or_else(|e| panic!("ip -j output: {e}: {text}"));
    value
        .as_array()
        .and_then(|links| links.first())
        .cloned()
        .unwrap_or_else(|| panic!("no link in {text}"))
}

/// Kind, mode, flag name and parent name as iproute2 prints them.
fn ip_ipvlan_view(name: &str) -> (String, String, String, String) {
    let link = ip_link_json(name);
    let info = link.get("linkinfo").expect("linkinfo");
    let data = info.get("info_data").expect("info_data");
    let flag = ["bridge", "private", "vepa"]
        .into_iter()
        .find(|f| data.get(f).and_then(Value::as_bool) == Some(true))
        .unwrap_or("none");
    let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("").to_owned();
    (
        text(info.get("info_kind")),
        text(data.get("mode")),
        flag.to_owned(),
        text(link.get("link")),
    )
}

/// What [`Link::ipvlan`] reports for a link created with `mode` and `flag`.
fn known(
    mode: IpvlanMode,
    flag: IpvlanFlag,
) -> Option<(Reported<IpvlanMode>, Reported<IpvlanFlag>)> {
    Some((Reported::Known(mode), Reported::Known(flag)))
}

fn find<'a>(links: &'a [Link], name: &str) -> &'a Link {
    links
        .iter()
        .find(|l| l.name == name)
        .unwrap_or_else(|| panic!("{name} missing from our dump"))
}

#[test]
fn every_mode_and_flag_on_dummy_and_vlan_parents() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        let mut expected = Vec::new();
        // Mode and flags belong to the parent's port: one parent per combination.
        for (i, (mode, flags)) in IpvlanMode::ALL
            .iter()
            .flat_map(|m| IpvlanFlag::ALL.iter().map(move |f| (*m, *f)))
            .enumerate()
        {
            let dummy = format!("d{i}");
            let vlan = format!("d{i}.10");
            h.link_add(&LinkSpec::dummy(&dummy)).unwrap();
            let d = h.link_index(&dummy).unwrap();
            h.link_add(&LinkSpec::vlan(&vlan, d, 10)).unwrap();
            let v = h.link_index(&vlan).unwrap();
            for (slave, parent, parent_name) in [
                (format!("ivd{i}"), d, dummy.clone()),
                (format!("ivv{i}"), v, vlan.clone()),
            ] {
                h.link_add(&LinkSpec::ipvlan(&slave, parent, mode, flags))
                    .unwrap();
                expected.push((slave, mode, flags, parent, parent_name));
            }
        }
        let links = h.links().unwrap();
        assert_eq!(expected.len(), 18);
        for (slave, mode, flags, parent, parent_name) in &expected {
            let link = find(&links, slave);
            assert_eq!(link.kind.as_deref(), Some("ipvlan"), "{slave}");
            assert_eq!(link.ipvlan(), known(*mode, *flags), "{slave}");
            assert_eq!(link.parent, Some(*parent), "{slave}");
            assert_eq!(
                ip_ipvlan_view(slave),
                (
                    "ipvlan".to_owned(),
                    mode.to_string(),
                    flags.as_str().to_owned(),
                    parent_name.clone()
                ),
                "{slave} as iproute2 sees it"
            );
        }
        let vlan = find(&links, "d0.10");
        assert_eq!(vlan.kind.as_deref(), Some("vlan"));
        assert_eq!(vlan.vlan_id(), Some(10));
        assert_eq!(vlan.parent, Some(find(&links, "d0").index));
        let vlan_json = ip_link_json("d0.10");
        let data = vlan_json.get("linkinfo").and_then(|i| i.get("info_data"));
        assert_eq!(
            data.and_then(|d| d.get("id")).and_then(Value::as_u64),
            Some(10)
        );
    });
}

/// A container: an anonymous netns with one ipvlan slave `eth0` created
/// directly inside it, addressed and up.
struct Container {
    ns: Netns,
    handle: Handle,
    eth0: u32,
}

impl Container {
    fn attach(
        host: &Handle,
        parent: u32,
        mode: IpvlanMode,
        flags: IpvlanFlag,
        addrs: &[&str],
    ) -> Container {
        let ns = netns::create_anonymous().unwrap();
        host.link_add(&LinkSpec::ipvlan("eth0", parent, mode, flags).in_netns(&ns))
            .unwrap();
        let handle = Handle::in_netns(&ns).unwrap();
        let eth0 = handle.link_index("eth0").unwrap();
        for addr in addrs {
            let net: IpNet = addr.parse().unwrap();
            handle.addr_add(eth0, net, AddrFlags::NODAD).unwrap();
        }
        handle.link_set_up(1).unwrap();
        handle.link_set_up(eth0).unwrap();
        Container { ns, handle, eth0 }
    }

    /// A busybox ping from inside the container, tried three times: under
    /// emulation the very first packet on a fresh link is sometimes lost.
    fn pings(&self, target: &str) -> bool {
        let addr: IpAddr = target.parse().unwrap();
        let family = if addr.is_ipv4() { "-4" } else { "-6" };
        netns::run_in(&self.ns, || {
            (0..3).any(|_| {
                Command::new("ping")
                    .args([family, "-c", "1", "-W", "2", target])
                    .output()
                    .expect("run ping")
                    .status
                    .success()
            })
        })
        .unwrap()
    }
}

fn dummy_parent(h: &Handle, name: &str) -> u32 {
    h.link_add(&LinkSpec::dummy(name)).unwrap();
    let index = h.link_index(name).unwrap();
    h.link_set_up(index).unwrap();
    index
}

#[test]
fn l2_bridge_pair_pings_v4_and_v6() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        let parent = dummy_parent(&h, "d0");
        let (mode, flags) = (IpvlanMode::L2, IpvlanFlag::Bridge);
        let c1 = Container::attach(&h, parent, mode, flags, &["10.10.0.1/24", "fd00:10::1/64"]);
        let c2 = Container::attach(&h, parent, mode, flags, &["10.10.0.2/24", "fd00:10::2/64"]);
        let eth0 = c1.handle.link_by_index(c1.eth0).unwrap().unwrap();
        assert_eq!(eth0.ipvlan(), known(mode, flags));
        assert!(!eth0.is_noarp(), "l2 answers ARP");
        assert!(eth0.link_netnsid.is_some(), "parent is in the host netns");
        // Routes set by our code: c2 reaches the world through c1.
        c2.handle
            .route_add(&RouteSpec::default_via("10.10.0.1".parse().unwrap()))
            .unwrap();
        c2.handle
            .route_add(&RouteSpec::default_via("fd00:10::1".parse().unwrap()).dev(c2.eth0))
            .unwrap();
        for family in [IpFamily::V4, IpFamily::V6] {
            let routes = c2.handle.routes(family).unwrap();
            let default = routes.iter().find(|r| r.is_default()).expect("default");
            assert_eq!(default.oif, Some(c2.eth0), "{default:?}");
            assert!(default.gateway.is_some(), "{default:?}");
        }
        assert!(c1.pings("10.10.0.2"), "v4 c1 -> c2");
        assert!(c2.pings("10.10.0.1"), "v4 c2 -> c1");
        assert!(c1.pings("fd00:10::2"), "v6 c1 -> c2");
    });
}

#[test]
fn l2_private_and_vepa_pairs_cannot_reach_each_other() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        let parent = dummy_parent(&h, "d0");
        let (mode, flags) = (IpvlanMode::L2, IpvlanFlag::Private);
        let c1 = Container::attach(&h, parent, mode, flags, &["10.11.0.1/24"]);
        let c2 = Container::attach(&h, parent, mode, flags, &["10.11.0.2/24"]);
        assert_eq!(
            c2.handle.link_by_index(c2.eth0).unwrap().unwrap().ipvlan(),
            known(mode, flags)
        );
        assert!(
            !c1.pings("10.11.0.2"),
            "private slaves must not reach each other"
        );
        // vepa sends slave-to-slave traffic out to the switch; a dummy parent
        // has no switch to reflect it, so the pair cannot talk either.
        let vepa_parent = dummy_parent(&h, "d2");
        let vepa = IpvlanFlag::Vepa;
        let v1 = Container::attach(&h, vepa_parent, mode, vepa, &["10.13.0.1/24"]);
        let _v2 = Container::attach(&h, vepa_parent, mode, vepa, &["10.13.0.2/24"]);
        assert!(!v1.pings("10.13.0.2"), "vepa without a reflective relay");
        // The same setup in bridge mode does reach (control experiment).
        let bridge_parent = dummy_parent(&h, "d1");
        let b1 = Container::attach(
            &h,
            bridge_parent,
            mode,
            IpvlanFlag::Bridge,
            &["10.12.0.1/24"],
        );
        let _b2 = Container::attach(
            &h,
            bridge_parent,
            mode,
            IpvlanFlag::Bridge,
            &["10.12.0.2/24"],
        );
        assert!(b1.pings("10.12.0.2"), "bridge slaves reach each other");
    });
}

#[test]
fn l3_is_noarp_and_default_dev_routes_between_subnets() {
    l3_pair(IpvlanMode::L3);
}

#[test]
fn l3s_is_noarp_and_default_dev_routes_between_subnets() {
    l3_pair(IpvlanMode::L3s);
}

fn l3_pair(mode: IpvlanMode) {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        let parent = dummy_parent(&h, "d0");
        let flags = IpvlanFlag::Bridge;
        let c1 = Container::attach(&h, parent, mode, flags, &["10.20.0.1/24", "fd00:20::1/64"]);
        let c2 = Container::attach(&h, parent, mode, flags, &["10.30.0.1/24", "fd00:30::1/64"]);
        for c in [&c1, &c2] {
            let eth0 = c.handle.link_by_index(c.eth0).unwrap().unwrap();
            assert!(eth0.is_noarp(), "l3 slaves do not ARP");
            c.handle
                .route_add(&RouteSpec::default_dev(IpFamily::V4, c.eth0))
                .unwrap();
            c.handle
                .route_add(&RouteSpec::default_dev(IpFamily::V6, c.eth0))
                .unwrap();
            let routes = c.handle.routes(IpFamily::V4).unwrap();
            let default = routes
                .iter()
                .find(|r| r.is_default())
                .expect("default route");
            assert_eq!((default.gateway, default.oif), (None, Some(c.eth0)));
        }
        let flags_json = netns::run_in(&c1.ns, || ip_link_json("eth0")).unwrap();
        let ip_flags = flags_json.get("flags").and_then(Value::as_array).unwrap();
        assert!(
            ip_flags.iter().any(|f| f.as_str() == Some("NOARP")),
            "{ip_flags:?}"
        );
        assert!(c1.pings("10.30.0.1"), "l3 routes between subnets");
        assert!(c2.pings("fd00:20::1"), "l3 routes v6 too");
    });
}

#[test]
fn kernel_refusals_carry_errno_and_ext_ack() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        let parent = dummy_parent(&h, "d0");
        let l2 =
            |name: &str, parent| LinkSpec::ipvlan(name, parent, IpvlanMode::L2, IpvlanFlag::Bridge);
        h.link_add(&l2("iv0", parent)).unwrap();

        let dup = h.link_add(&l2("iv0", parent)).unwrap_err();
        eprintln!("duplicate name: {dup}");
        assert_eq!(dup.errno(), Some(libc::EEXIST), "{dup}");

        let orphan = h.link_add(&l2("iv1", 4242)).unwrap_err();
        eprintln!("missing parent: {orphan}");
        assert_eq!(orphan.errno(), Some(libc::ENODEV), "{orphan}");

        let on_lo = h.link_add(&l2("iv2", 1)).unwrap_err();
        eprintln!("parent lo: {on_lo}");
        assert_eq!(on_lo.errno(), Some(libc::EINVAL), "{on_lo}");

        // Values our types cannot hold, sent by hand: the kernel refuses
        // them too, so a link never has them unless a kernel adds them.
        let parent2 = dummy_parent(&h, "d1");
        let err = h
            .socket()
            .request(&raw_ipvlan_request("iv3", parent2, 3, 0))
            .unwrap_err();
        eprintln!("mode 3: {err}");
        assert_eq!(err.errno(), Some(libc::EINVAL), "{err}");

        let err = h
            .socket()
            .request(&raw_ipvlan_request("iv4", parent2, 0, 3))
            .unwrap_err();
        eprintln!("flags private|vepa: {err}");
        assert_eq!(err.errno(), Some(libc::EINVAL), "{err}");

        let err = h
            .link_add(&LinkSpec::vlan("d0.4095", parent, 4095))
            .unwrap_err();
        eprintln!("vlan 4095: {err}");
        // The id is range-checked: ERANGE, not EINVAL.
        assert_eq!(err.errno(), Some(libc::ERANGE), "{err}");
        assert_eq!(err.ext_ack(), Some("8021q: Invalid VLAN id"), "{err}");
        assert!(
            err.to_string().starts_with("create link d0.4095: "),
            "{err}"
        );

        // Nothing of the refused requests was created.
        let names: Vec<String> = h.links().unwrap().into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["lo", "d0", "iv0", "d1"]);
    });
}

/// An ipvlan create with any raw mode and flags, which `LinkSpec` cannot
/// express: the layout of [`LinkSpec::request`].
fn raw_ipvlan_request(name: &str, parent: u32, mode: u16, flags: u16) -> MessageBuilder {
    let mut msg = MessageBuilder::new(
        RTM_NEWLINK,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
    );
    msg.family_header(&[0; 16]);
    msg.put_u32(IFLA_LINK, parent);
    msg.put_str(IFLA_IFNAME, name);
    msg.nested(IFLA_LINKINFO, |m| {
        m.put(IFLA_INFO_KIND, b"ipvlan");
        m.nested(IFLA_INFO_DATA, |m| {
            m.put_u16(IFLA_IPVLAN_MODE, mode);
            m.put_u16(IFLA_IPVLAN_FLAGS, flags);
        });
    });
    msg
}

#[test]
fn probe_kind_knows_every_kind_and_creates_nothing() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        for kind in ProbeKind::ALL {
            assert!(h.probe_kind(kind).unwrap(), "{}", kind.name());
        }
        let names: Vec<String> = h.links().unwrap().into_iter().map(|l| l.name).collect();
        assert_eq!(names, ["lo"]);
    });
}

#[test]
fn create_with_index_in_netns_when_the_host_has_the_name() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        // The "host" has an eth0 (a dummy), which is also the parent.
        let parent = dummy_parent(&h, "eth0");
        let ns = netns::create_anonymous().unwrap();
        let inside = Handle::in_netns(&ns).unwrap();
        let spec = |name: &str, index| {
            LinkSpec::ipvlan(name, parent, IpvlanMode::L3, IpvlanFlag::Private)
                .in_netns(&ns)
                .mtu(1400)
                .index(index)
        };
        // With an index, the kernel looks up only the index in the host, so
        // the name is created directly whatever the host has.
        h.link_add(&spec("eth0", 4242)).unwrap();
        let eth0 = inside.link_by_name("eth0").unwrap().expect("eth0 inside");
        assert_eq!(eth0.index, 4242);
        assert_eq!(eth0.mtu, Some(1400));
        assert_eq!(eth0.ipvlan(), known(IpvlanMode::L3, IpvlanFlag::Private));
        // The index taken in the target: EBUSY from register_netdevice
        // (6.1), or EEXIST where the kernel looks it up there first (6.18).
        let busy = h.link_add(&spec("eth1", 4242)).unwrap_err();
        assert!(
            matches!(busy.errno(), Some(libc::EBUSY | libc::EEXIST)),
            "{busy}"
        );
        // Taken only in the host: 6.1 looks the index up there (EEXIST),
        // 6.18 only in the target, where it is free.
        match h.link_add(&spec("eth1", parent)) {
            Ok(()) => assert_eq!(inside.link_index("eth1").unwrap(), parent),
            Err(err) => assert_eq!(err.errno(), Some(libc::EEXIST), "{err}"),
        }

        // The id inside for the host namespace is the one eth0 reports
        // for its parent's namespace.
        let host = Netns::current().unwrap();
        let id = inside.nsid_of(host.fd()).unwrap();
        assert!(id.is_some());
        assert_eq!(id, eth0.link_netnsid);
    });
}

#[test]
fn parent_deletion_removes_slaves_in_other_netns() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        let parent = dummy_parent(&h, "d0");
        let c1 = Container::attach(
            &h,
            parent,
            IpvlanMode::L2,
            IpvlanFlag::Bridge,
            &["10.40.0.1/24"],
        );
        assert!(c1.handle.link_by_name("eth0").unwrap().is_some());
        h.link_del(parent).unwrap();
        assert!(c1.handle.link_by_name("eth0").unwrap().is_none());
    });
}

#[test]
fn create_in_netns_when_the_host_has_the_name() {
    in_fresh_netns(|| {
        let h = Handle::new().unwrap();
        // The "host" has an eth0 (a dummy), which is also the parent.
        let parent = dummy_parent(&h, "eth0");
        let ns = netns::create_anonymous().unwrap();
        let inside = Handle::in_netns(&ns).unwrap();
        let spec = |name: &str| {
            LinkSpec::ipvlan(name, parent, IpvlanMode::L2, IpvlanFlag::Bridge).in_netns(&ns)
        };
        match h.link_add(&spec("eth0")) {
            Ok(()) => eprintln!("this kernel checks the new name in the target netns only"),
            Err(err) => {
                // 6.1 checks the name against the creating netns as well.
                eprintln!("direct create: {err}");
                assert!(err.is_exists(), "{err}");
                h.link_add(&spec("tmp1234")).unwrap();
                let index = inside.link_index("tmp1234").unwrap();
                inside.link_rename(index, "eth0").unwrap();
            }
        }
        let eth0 = inside.link_by_name("eth0").unwrap().expect("eth0 inside");
        assert_eq!(eth0.kind.as_deref(), Some("ipvlan"));
        assert!(h.link_by_name("eth0").unwrap().unwrap().kind.as_deref() == Some("dummy"));
    });
}
