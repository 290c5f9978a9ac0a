//! The Docker docs' ipvlan walkthrough, step by step, on
//! the VM's topology: what each step must show, and what must not work.
//! Runs in the QEMU guest (`cargo xtask vm-test`).

mod vm_support;

use ipvlan::driver::{AttachRequest, ErrorKind, ExecOptions, Manager, Target};
use vm_support::*;

fn step(n: u32, what: &str) {
    println!("--- step {n}: {what}");
}

fn rm(manager: &Manager, name: &str) {
    manager
        .remove_container(name, true)
        .unwrap_or_else(|e| panic!("removing container {name}: {e}"));
}

#[test]
fn walkthrough() {
    topology_up();
    let config = config("walkthrough");
    let manager = Manager::open(config.clone()).unwrap();

    step(1, "L2 on the host's network");
    manager
        .create_network(&net(
            "db_net",
            &["192.168.1.0/24"],
            &["192.168.1.1"],
            &[("ipvlan_mode", "l2"), ("parent", "eth0")],
        ))
        .unwrap();
    // No link is created until a container attaches (lazily, as Docker).
    assert!(all_ipvlan_links().is_empty());
    let ep = start(&manager, "db_net", "s1", None, None);
    assert_eq!(ep.ifname, "eth0");
    assert_eq!(addresses("s1", "eth0"), vec!["192.168.1.2/24"]);
    assert_eq!(
        default_routes("s1", "-4"),
        vec![(Some("192.168.1.1".to_string()), "eth0".to_string())]
    );
    let host_mac = link(None, "eth0").unwrap().get("address").cloned();
    let eth0 = link(Some("s1"), "eth0").unwrap();
    assert_eq!(link_kind(&eth0).as_deref(), Some("ipvlan"));
    assert_eq!(
        eth0.get("address").cloned(),
        host_mac,
        "MAC is the parent's"
    );
    assert!(ping_eventually("s1", "192.168.1.1"));
    assert!(
        !ping("s1", "192.168.1.250"),
        "the host's own address must be unreachable"
    );
    // Nothing routed in the host namespace.
    let host_routes = ip(&["-4", "route", "show"]);
    assert!(
        !host_routes
            .lines()
            .any(|l| l.starts_with("192.168.1.2 ") || l.contains("via 192.168.1.2 ")),
        "{host_routes}"
    );
    rm(&manager, "s1");
    assert!(all_ipvlan_links().is_empty());

    step(2, "defaults and name resolution");
    manager.remove_network("db_net").unwrap();
    assert!(
        link(None, "eth0").is_some(),
        "an existing parent is never deleted"
    );
    let info = manager
        .create_network(&net(
            "db_net_ipv",
            &["192.168.1.0/24"],
            &[],
            &[("parent", "eth0")],
        ))
        .unwrap();
    assert_eq!(info.mode.as_str(), "l2");
    assert_eq!(
        info.subnets[0].gateway,
        Some("192.168.1.1".parse().unwrap()),
        "gateway .1 by default"
    );
    start(&manager, "db_net_ipv", "ipv1", None, None);
    manager
        .spawn_detached("ipv1", &["sleep".into(), "1000".into()])
        .unwrap();
    start(&manager, "db_net_ipv", "ipv2", None, None);
    let (ok, out) = in_container("ipv2", &["ping", "-c", "4", "-W", "2", "ipv1"]);
    assert!(ok, "ping by name: {out}");
    assert!(out.contains("4 packets received"), "{out}");
    rm(&manager, "ipv2");
    // A name that joins after a process started is seen too (hosts file
    // updated in place, same inode).
    start(&manager, "db_net_ipv", "ipv3", None, None);
    let (ok, out) = in_container("ipv1", &["ping", "-c", "1", "-W", "2", "ipv3"]);
    assert!(ok, "late joiner by name: {out}");
    rm(&manager, "ipv3");

    step(3, "isolated networks");
    let iso1 = manager
        .create_network(&net("isolated1", &["192.168.10.0/24"], &[], &[]))
        .unwrap();
    let dummy = format!("di-{}", &iso1.id[..12]);
    assert_eq!(iso1.parent, dummy);
    assert!(iso1.internal);
    let d = link(None, &dummy).expect("dummy parent created");
    assert_eq!(link_kind(&d).as_deref(), Some("dummy"));
    assert!(link_flags(&d).contains(&"UP".to_string()));
    let mut req = net("isolated2", &["192.168.11.0/24"], &[], &[]);
    req.internal = true;
    let iso2 = manager.create_network(&req).unwrap();
    assert!(iso2.internal);
    assert!(link(None, &iso2.parent).is_some());
    let iso3 = manager
        .create_network(&net("isolated3", &[], &[], &[]))
        .unwrap();
    let v4 = iso3.subnets[0].subnet.to_string();
    assert!(v4.starts_with("172.") && v4.ends_with(".0.0/16"), "{v4}");
    let cid1 = start(&manager, "isolated1", "cid1", None, None);
    // Internal networks too reserve their gateway (.1, as the docs show
    // it): the first container gets .2, and no default route.
    assert_eq!(
        iso1.subnets[0].gateway,
        Some("192.168.10.1".parse().unwrap())
    );
    assert_eq!(cid1.ipv4.unwrap().to_string(), "192.168.10.2/24");
    assert!(default_routes("cid1", "-4").is_empty());
    let cid2 = start(&manager, "isolated1", "cid2", None, None);
    start(&manager, "isolated3", "cid3", None, None);
    let status = manager
        .exec(
            "cid1",
            &["/bin/sh".into(), "-c".into(), "exit 0".into()],
            &ExecOptions::default(),
        )
        .unwrap();
    assert_eq!(status, 0);
    for c in ["cid1", "cid2", "cid3"] {
        assert!(
            default_routes(c, "-4").is_empty(),
            "{c} has a default route"
        );
    }
    assert!(ping_eventually(
        "cid1",
        &cid2.ipv4.unwrap().addr().to_string()
    ));
    assert!(ping_eventually("cid2", "cid1"));

    step(4, "802.1Q trunk, L2");
    manager
        .create_network(&net(
            "ipvlan20",
            &["192.168.20.0/24"],
            &["192.168.20.1"],
            &[("parent", "eth0.20")],
        ))
        .unwrap();
    let v20 = link(None, "eth0.20").expect("eth0.20 created");
    assert_eq!(link_kind(&v20).as_deref(), Some("vlan"));
    assert_eq!(
        v20.get("linkinfo")
            .and_then(|l| l.get("info_data"))
            .and_then(|d| d.get("id"))
            .and_then(|i| i.as_u64()),
        Some(20)
    );
    assert!(link_flags(&v20).contains(&"UP".to_string()));
    start(&manager, "ipvlan20", "ivlan_test1", None, None);
    start(&manager, "ipvlan20", "ivlan_test2", None, None);
    assert!(ping_eventually("ivlan_test1", "192.168.20.1"));
    assert!(ping_eventually("ivlan_test1", "ivlan_test2"));
    manager
        .create_network(&net(
            "ipvlan30",
            &["192.168.30.0/24"],
            &["192.168.30.1"],
            &[("parent", "eth0.30"), ("ipvlan_mode", "l2")],
        ))
        .unwrap();
    start(&manager, "ipvlan30", "ivlan_test3", None, None);
    start(&manager, "ipvlan30", "ivlan_test4", None, None);
    assert_eq!(
        default_routes("ivlan_test3", "-4"),
        vec![(Some("192.168.30.1".to_string()), "eth0".to_string())]
    );
    assert!(ping_eventually("ivlan_test3", "ivlan_test4"));
    // Across VLANs only through the router.
    ip(&[
        "netns",
        "exec",
        "router",
        "sysctl",
        "-q",
        "-w",
        "net.ipv4.ip_forward=0",
    ]);
    assert!(
        !ping("ivlan_test1", "192.168.30.2"),
        "cross-VLAN without routing"
    );
    ip(&[
        "netns",
        "exec",
        "router",
        "sysctl",
        "-q",
        "-w",
        "net.ipv4.ip_forward=1",
    ]);
    assert!(ping_eventually("ivlan_test1", "192.168.30.2"));
    let err = manager.remove_network("ipvlan20").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InUse);
    assert_eq!(
        err.to_string(),
        "network ipvlan20 has active endpoints (ivlan_test1, ivlan_test2); disconnect or remove them first"
    );
    for c in ["ivlan_test1", "ivlan_test2", "ivlan_test3", "ivlan_test4"] {
        rm(&manager, c);
    }
    manager.remove_network("ipvlan20").unwrap();
    manager.remove_network("ipvlan30").unwrap();
    assert!(link(None, "eth0.20").is_none(), "eth0.20 deleted");
    assert!(link(None, "eth0.30").is_none(), "eth0.30 deleted");

    step(5, "multi-subnet L2");
    manager
        .create_network(&net(
            "ipvlan114",
            &["192.168.114.0/24", "192.168.116.0/24"],
            &["192.168.114.254", "192.168.116.254"],
            &[("parent", "eth0.114"), ("ipvlan_mode", "l2")],
        ))
        .unwrap();
    start(&manager, "ipvlan114", "m114", Some("192.168.114.10"), None);
    start(&manager, "ipvlan114", "m116", Some("192.168.116.10"), None);
    assert_eq!(
        default_routes("m114", "-4"),
        vec![(Some("192.168.114.254".to_string()), "eth0".to_string())]
    );
    assert_eq!(
        default_routes("m116", "-4"),
        vec![(Some("192.168.116.254".to_string()), "eth0".to_string())]
    );
    assert!(!ping("m114", "192.168.116.10"), "no router yet");
    assert!(!ping("m116", "192.168.114.10"), "no router yet");
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
    assert!(ping_eventually("m114", "192.168.116.10"));
    assert!(ping_eventually("m116", "192.168.114.10"));

    step(6, "L3, no parent, two subnets");
    manager
        .create_network(&net(
            "ipnet210",
            &["192.168.214.0/24", "10.1.214.0/24"],
            &[],
            &[("ipvlan_mode", "l3")],
        ))
        .unwrap();
    start(&manager, "ipnet210", "l3a", Some("192.168.214.10"), None);
    start(&manager, "ipnet210", "l3b", Some("10.1.214.10"), None);
    start(&manager, "ipnet210", "l3c", Some("192.168.214.9"), None);
    start(&manager, "ipnet210", "l3d", Some("10.1.214.9"), None);
    assert!(ping_eventually("l3c", "10.1.214.10"));
    assert!(ping_eventually("l3d", "192.168.214.10"));
    for c in ["l3a", "l3b", "l3c", "l3d"] {
        assert_eq!(
            default_routes(c, "-4"),
            vec![(None, "eth0".to_string())],
            "{c}"
        );
        assert!(link_flags(&link(Some(c), "eth0").unwrap()).contains(&"NOARP".to_string()));
    }

    step(7, "IPv6 L2 on VLAN 139");
    let mut req = net(
        "v6ipvlan139",
        &["2001:db8:abc2::/64"],
        &["2001:db8:abc2::22"],
        &[("parent", "eth0.139")],
    );
    req.ipv6 = true;
    let v6net = manager.create_network(&req).unwrap();
    assert!(v6net.subnets[0].subnet.to_string().starts_with("172."));
    let a = start(&manager, "v6ipvlan139", "v6a", None, None);
    let b = start(&manager, "v6ipvlan139", "v6b", None, None);
    let a6 = a.ipv6.expect("v6 address").addr().to_string();
    assert!(a.ipv4.unwrap().addr().to_string().starts_with("172."));
    assert!(a6.starts_with("2001:db8:abc2::"));
    assert_eq!(a.ipv6.unwrap().prefix_len(), 64);
    assert!(address_has_nodad("v6a", "eth0", &a6));
    assert_eq!(
        default_routes("v6a", "-6"),
        vec![(Some("2001:db8:abc2::22".to_string()), "eth0".to_string())]
    );
    assert!(ping_eventually("v6b", &a6));
    assert!(ping_eventually("v6a", "2001:db8:abc2::22"));
    assert!(ping_eventually("v6b", "2001:db8:abc2::22"));
    let _ = b;

    step(8, "dual stack L2 on VLAN 140");
    manager
        .create_network(&net(
            "ipvlan140",
            &["192.168.140.0/24", "192.168.142.0/24", "2001:db8:abc9::/64"],
            &["192.168.140.1", "192.168.142.1", "2001:db8:abc9::22"],
            &[("parent", "eth0.140"), ("ipvlan_mode", "l2")],
        ))
        .unwrap();
    let first = start(&manager, "ipvlan140", "d1", None, None);
    assert_eq!(first.ipv4.unwrap().to_string(), "192.168.140.2/24");
    assert!(first
        .ipv6
        .unwrap()
        .addr()
        .to_string()
        .starts_with("2001:db8:abc9::"));
    assert_eq!(
        default_routes("d1", "-4"),
        vec![(Some("192.168.140.1".to_string()), "eth0".to_string())]
    );
    assert_eq!(
        default_routes("d1", "-6"),
        vec![(Some("2001:db8:abc9::22".to_string()), "eth0".to_string())]
    );
    manager.create_container(Some("d2")).unwrap();
    let links_before = all_ipvlan_links();
    let err = manager
        .connect(
            "ipvlan140",
            &Target::Container("d2".into()),
            &AttachRequest {
                ipv4: None,
                ipv6: Some("2001:db8:abc2::51".parse().unwrap()),
            },
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no configured subnet contains IP address 2001:db8:abc2::51"
    );
    assert_eq!(all_ipvlan_links(), links_before, "nothing created");
    let d2 = manager
        .connect(
            "ipvlan140",
            &Target::Container("d2".into()),
            &AttachRequest {
                ipv4: None,
                ipv6: Some("2001:db8:abc9::51".parse().unwrap()),
            },
        )
        .unwrap();
    assert_eq!(d2.ipv6.unwrap().to_string(), "2001:db8:abc9::51/64");
    start(&manager, "ipvlan140", "d3", Some("192.168.140.10"), None);
    assert_eq!(addresses("d3", "eth0")[0], "192.168.140.10/24");
    assert!(ping_eventually("d3", "192.168.140.1"));
    assert!(ping_eventually("d2", "2001:db8:abc9::22"));

    step(9, "dual stack L3 on the host's parent");
    // Its `sleep 1000` ends with it: a namespace a process kept alive
    // after its name went would hold its link where no listing looks.
    let ipv1 = vm_support::namespace_inode(&config.netns_dir.join("ipv1"));
    assert!(!vm_support::processes_in_namespace(ipv1).is_empty());
    rm(&manager, "ipv1");
    let left = vm_support::left_in_namespace(ipv1, 50);
    assert!(left.is_empty(), "left running in ipv1: {left:?}");
    manager.remove_network("db_net_ipv").unwrap();
    manager
        .create_network(&net(
            "ipnet110",
            &["192.168.110.0/24", "192.168.112.0/24", "2001:db8:abc6::/64"],
            &[],
            &[("parent", "eth0"), ("ipvlan_mode", "l3")],
        ))
        .unwrap();
    let t1 = start(&manager, "ipnet110", "t1", None, None);
    // l3 reserves the gateway too (the docs show an automatic `.2` here),
    // but routes by device only.
    assert_eq!(t1.ipv4.unwrap().to_string(), "192.168.110.2/24");
    assert_eq!(t1.ipv6.unwrap().to_string(), "2001:db8:abc6::2/64");
    start(&manager, "ipnet110", "t2", None, Some("2001:db8:abc6::10"));
    start(&manager, "ipnet110", "t3", Some("192.168.112.30"), None);
    let t4 = start(
        &manager,
        "ipnet110",
        "t4",
        Some("192.168.112.50"),
        Some("2001:db8:abc6::50"),
    );
    assert_eq!(t4.ipv4.unwrap().to_string(), "192.168.112.50/24");
    for c in ["t1", "t2", "t3", "t4"] {
        assert_eq!(
            default_routes(c, "-4"),
            vec![(None, "eth0".to_string())],
            "{c}"
        );
        assert_eq!(
            default_routes(c, "-6"),
            vec![(None, "eth0".to_string())],
            "{c}"
        );
        assert!(link_flags(&link(Some(c), "eth0").unwrap()).contains(&"NOARP".to_string()));
    }

    step(10, "the reuse bug");
    for round in 0..100 {
        rm(&manager, "t4");
        let again = start(&manager, "ipnet110", "t4", None, Some("2001:db8:abc6::50"));
        assert_eq!(
            again.ipv6.unwrap().to_string(),
            "2001:db8:abc6::50/64",
            "round {round}"
        );
    }
    for round in 0..100 {
        rm(&manager, "t3");
        let again = start(&manager, "ipnet110", "t3", Some("192.168.112.30"), None);
        assert_eq!(
            again.ipv4.unwrap().to_string(),
            "192.168.112.30/24",
            "round {round}"
        );
    }

    step(11, "links made by hand");
    ip(&[
        "link", "add", "link", "eth0", "name", "eth0.40", "type", "vlan", "id", "40",
    ]);
    ip(&["link", "set", "eth0.40", "up"]);
    manager
        .create_network(&net(
            "ipvlan40",
            &["192.168.40.0/24"],
            &["192.168.40.1"],
            &[("parent", "eth0.40")],
        ))
        .unwrap();
    start(&manager, "ipvlan40", "ivlan_test5", None, None);
    start(&manager, "ipvlan40", "ivlan_test6", None, None);
    assert!(ping_eventually("ivlan_test5", "ivlan_test6"));
    assert!(ping_eventually("ivlan_test6", "192.168.40.1"));
    rm(&manager, "ivlan_test5");
    rm(&manager, "ivlan_test6");
    manager.remove_network("ipvlan40").unwrap();
    assert!(
        link(None, "eth0.40").is_some(),
        "a parent made by hand stays"
    );
    ip(&["link", "del", "eth0.40"]);
    ip(&[
        "link", "add", "link", "eth0", "name", "foo", "type", "vlan", "id", "40",
    ]);
    ip(&["link", "set", "foo", "up"]);
    manager
        .create_network(&net(
            "ipvlan40",
            &["192.168.40.0/24"],
            &["192.168.40.1"],
            &[("parent", "foo")],
        ))
        .unwrap();
    start(&manager, "ipvlan40", "ivlan_test5", None, None);
    assert!(ping_eventually("ivlan_test5", "192.168.40.1"));
    rm(&manager, "ivlan_test5");
    manager.remove_network("ipvlan40").unwrap();
    assert!(link(None, "foo").is_some(), "foo stays");
    ip(&["link", "del", "foo"]);

    step(12, "restart and restore");
    let names_before: Vec<String> = manager
        .networks()
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    drop(manager);
    let manager = Manager::open(config.clone()).unwrap();
    let names_after: Vec<String> = manager
        .networks()
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names_after, names_before);
    let iso1_dummy = manager.network("isolated1").unwrap().parent;
    let l3_dummy = manager.network("ipnet210").unwrap().parent;
    for parent in ["eth0.139", "eth0.140", "eth0.114", &iso1_dummy, &l3_dummy] {
        ip(&["link", "del", parent]);
    }
    // One container's namespace goes behind our back too.
    ip(&["netns", "del", "d3"]);
    assert!(
        link(Some("v6a"), "eth0").is_none(),
        "link went with its parent"
    );
    let report = manager.restore().unwrap();
    println!("{report:?}");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.parents_recreated.len(), 5, "{report:?}");
    assert_eq!(report.endpoints_released, vec!["ipvlan140: d3".to_string()]);
    for parent in ["eth0.139", "eth0.140", "eth0.114", &iso1_dummy, &l3_dummy] {
        assert!(link(None, parent).is_some(), "{parent} re-created");
    }
    assert_eq!(addresses("v6a", "eth0"), addresses_of(&a));
    assert_eq!(addresses("cid1", "eth0"), vec!["192.168.10.2/24"]);
    assert_eq!(addresses("l3a", "eth0"), vec!["192.168.214.10/24"]);
    assert!(ping_eventually("cid2", "cid1"));
    assert_eq!(
        default_routes("d1", "-4"),
        vec![(Some("192.168.140.1".to_string()), "eth0".to_string())]
    );
    assert!(ping_eventually("l3c", "10.1.214.10"));
    assert!(ping_eventually("v6b", &a6));
    assert!(ping_eventually("d1", "192.168.140.1"));
    // The released address is free again.
    let again = start(&manager, "ipvlan140", "d3", Some("192.168.140.10"), None);
    assert_eq!(again.ipv4.unwrap().to_string(), "192.168.140.10/24");
    // A second restore finds nothing to do.
    let second = manager.restore().unwrap();
    assert!(
        second.parents_recreated.is_empty() && second.links_recreated.is_empty(),
        "{second:?}"
    );

    // Clean up everything: containers, then networks; no link remains,
    // nor a process in any container's namespace.
    let containers = manager.containers().unwrap();
    let namespaces: Vec<(String, u64)> = containers
        .iter()
        .map(|c| {
            let path = config.netns_dir.join(&c.name);
            (c.name.clone(), vm_support::namespace_inode(&path))
        })
        .collect();
    for c in &containers {
        rm(&manager, &c.name);
    }
    for (name, inode) in namespaces {
        let left = vm_support::left_in_namespace(inode, 50);
        assert!(
            left.is_empty(),
            "left running in container {name}: {left:?}"
        );
    }
    for n in manager.networks().unwrap() {
        manager.remove_network(&n.name).unwrap();
    }
    assert!(all_ipvlan_links().is_empty());
    assert!(link(None, &iso1_dummy).is_none());
    assert!(link(None, "eth0.139").is_none());
}

fn addresses_of(ep: &ipvlan::driver::EndpointInfo) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(v4) = ep.ipv4 {
        out.push(v4.to_string());
    }
    if let Some(v6) = ep.ipv6 {
        out.push(v6.to_string());
    }
    out
}
