//! Damaged records through the library: the store's listings return the
//! good records and a [`Damaged`] entry per file they could not read, the
//! driver's listings and removals work around them, and nothing damaged
//! is ever deleted, rewritten or has its addresses freed. (The command
//! line over the same cases is in `store_trust.rs`.)

mod common;

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use common::{address_files, endpoint, network, TempDir};
use ipvlan::driver::{Config, ErrorKind, Manager, NetworkCreate};
use ipvlan::ipam::Request;
use ipvlan::store::{Damaged, NetworkRecord, ParentOrigin, StateDir, StoreError};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn damaged(path: &Path, reason: &str) -> Damaged {
    Damaged {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

fn network_file(root: &Path, net: &NetworkRecord) -> PathBuf {
    root.join("networks").join(format!("{}.json", net.id))
}

/// Every file under `root` with its content.
fn contents(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    common::all_files(root)
        .into_iter()
        .map(|p| {
            let bytes = common::entry_bytes(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

#[test]
fn store_listings_return_the_good_records_and_each_damaged_file() {
    let tmp = TempDir::new("damage-store");
    let state = StateDir::open(tmp.path()).unwrap();
    let good = network("good", &["10.0.0.0/24"]);
    let bad = network("bad", &["10.1.0.0/24"]);
    let ep = endpoint(&good, "e1", Some("10.0.0.2/24"), None);
    {
        let locked = state.lock().unwrap();
        locked.put_network(&good).unwrap();
        locked.put_network(&bad).unwrap();
        locked.put_endpoint(&ep).unwrap();
        locked
            .put_endpoint(&endpoint(&good, "e2", Some("10.0.0.3/24"), None))
            .unwrap();
        locked.put_container("c1").unwrap();
        locked.put_container("c2").unwrap();
    }
    let bad_network = network_file(tmp.path(), &bad);
    let text = fs::read_to_string(&bad_network).unwrap();
    fs::write(
        &bad_network,
        text.replace("\"version\": 1", "\"version\": 7"),
    )
    .unwrap();
    let bad_endpoint = tmp.path().join(format!("endpoints/{}/e2.json", good.id));
    fs::write(&bad_endpoint, "{").unwrap();
    let bad_container = tmp.path().join("records/containers/c2.json");
    fs::write(&bad_container, b"\xff").unwrap();
    let before = contents(tmp.path());

    let networks = state.networks().unwrap();
    assert_eq!(networks.items, vec![good.clone()]);
    assert_eq!(
        networks.damaged,
        vec![damaged(
            &bad_network,
            "network record has version 7, this program reads version 1"
        )]
    );
    let err = networks.complete().unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert_eq!(err.path(), Some(bad_network.as_path()));

    let endpoints = state.endpoints_of(&good.id).unwrap();
    assert_eq!(endpoints.items, vec![ep.clone()]);
    assert_eq!(endpoints.damaged.len(), 1);
    assert_eq!(endpoints.damaged[0].path, bad_endpoint);
    assert_eq!(state.endpoints().unwrap(), endpoints);
    // A stray directory among the networks' endpoint directories is one
    // more damaged path, not the end of the listing.
    let stray = tmp.path().join("endpoints/not a network id");
    fs::create_dir(&stray).unwrap();
    let all = state.endpoints().unwrap();
    assert_eq!(all.items, endpoints.items);
    assert_eq!(
        all.damaged.last(),
        Some(&damaged(&stray, "is not named after a network id"))
    );
    fs::remove_dir(&stray).unwrap();

    let containers = state.containers().unwrap();
    assert_eq!(containers.items, vec!["c1".to_string()]);
    assert_eq!(
        containers.damaged,
        vec![damaged(&bad_container, "not UTF-8 text")]
    );
    assert_eq!(
        state.records("containers").unwrap().damaged,
        containers.damaged
    );

    // A single read of a damaged record is still an error.
    assert!(state.network(&bad.id).is_err());
    assert!(state.endpoint(&good.id, "e2").is_err());
    assert_eq!(contents(tmp.path()), before, "reading changed the state");
}

#[test]
fn a_damaged_endpoint_record_keeps_its_addresses() {
    let tmp = TempDir::new("damage-orphans");
    let state = StateDir::open(tmp.path()).unwrap();
    let net = network("n1", &["10.0.0.0/24"]);
    let locked = state.lock().unwrap();
    locked.put_network(&net).unwrap();
    for (id, addr) in [
        ("kept", "10.0.0.2"),
        ("damaged", "10.0.0.3"),
        ("orphan", "10.0.0.4"),
    ] {
        locked.allocate(&net, Request::Exact(ip(addr)), id).unwrap();
        if id != "orphan" {
            locked
                .put_endpoint(&endpoint(&net, id, Some(&format!("{addr}/24")), None))
                .unwrap();
        }
    }
    let path = tmp
        .path()
        .join(format!("endpoints/{}/damaged.json", net.id));
    fs::write(&path, "garbage").unwrap();
    assert_eq!(locked.release_orphans(&net).unwrap(), 1);
    let mut left = address_files(tmp.path());
    left.sort();
    assert_eq!(
        left,
        vec![
            (ip("10.0.0.2"), "kept".to_string()),
            (ip("10.0.0.3"), "damaged".to_string())
        ]
    );
    assert_eq!(fs::read_to_string(&path).unwrap(), "garbage");
}

/// A fresh network namespace and scratch directories.
fn in_fresh_netns(tag: &str, f: impl FnOnce(&Config) + Send) {
    common::privilege::require_root();
    let tmp = TempDir::new(tag);
    let config = Config {
        state_dir: tmp.path().join("state"),
        netns_dir: tmp.path().join("netns"),
        etc_netns_dir: tmp.path().join("etc-netns"),
    };
    ipvlan::netns::run_in_new(|| f(&config)).expect("creating a network namespace");
}

/// A network on `lo`, a parent it did not make: `lo` exists in every
/// namespace, so restore finds the parent there.
fn lo_network(name: &str, subnet: &str) -> NetworkRecord {
    NetworkRecord {
        parent: "lo".into(),
        parent_origin: ParentOrigin::Existing,
        parent_index: None,
        ..network(name, &[subnet])
    }
}

fn dummy_network(name: &str, subnet: &str) -> NetworkRecord {
    let mut net = network(name, &[subnet]);
    net.parent = format!("di-{}", &net.id[..12]);
    net.parent_origin = ParentOrigin::DummyCreated;
    net.options.clear();
    net
}

#[test]
fn the_driver_lists_inspects_and_removes_around_damaged_records() {
    in_fresh_netns("damage-driver", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        let root = &config.state_dir;
        let good = lo_network("good", "10.0.0.0/24");
        let spare = dummy_network("spare", "10.2.0.0/24");
        let bad = dummy_network("bad", "10.1.0.0/24");
        {
            let state = StateDir::open(root).unwrap();
            let locked = state.lock().unwrap();
            for net in [&good, &spare, &bad] {
                locked.put_network(net).unwrap();
            }
            locked
                .allocate(&good, Request::Exact(ip("10.0.0.5")), "lost")
                .unwrap();
            locked
                .put_endpoint(&endpoint(&good, "lost", Some("10.0.0.5/24"), None))
                .unwrap();
            locked.put_container("c1").unwrap();
        }
        let bad_network = network_file(root, &bad);
        // Truncated, as a crash can leave a record written in parts.
        fs::write(&bad_network, "{\"version\": 1, \"id").unwrap();
        let bad_endpoint = root.join(format!("endpoints/{}/lost.json", good.id));
        fs::write(&bad_endpoint, "null").unwrap();

        let networks = manager.networks().unwrap();
        let names: Vec<&str> = networks.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["good", "spare"]);
        let paths: Vec<&Path> = networks.damaged.iter().map(|d| d.path.as_path()).collect();
        assert_eq!(paths, [bad_network.as_path(), bad_endpoint.as_path()]);
        assert_eq!(manager.network("good").unwrap().name, "good");
        let containers = manager.containers().unwrap();
        assert_eq!(containers.len(), 1);
        assert_eq!(containers.damaged.len(), 1, "{containers:?}");

        // The network holding the damaged endpoint record: removing it
        // would delete the record with its directory.
        let before = contents(root);
        let err = manager.remove_network("good").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InUse);
        assert_eq!(
            err.to_string(),
            format!(
                "network good has endpoint records that cannot be read ({}: endpoint record is not a JSON object); repair them or move them out of the state directory first",
                bad_endpoint.display()
            )
        );
        assert_eq!(contents(root), before, "the refused rm changed something");

        // Another network goes, but not its dummy parent, which the
        // damaged network might share.
        let notes = manager.remove_network("spare").unwrap();
        assert_eq!(
            notes,
            [format!(
                "parent {} kept: a damaged network record may use it ({})",
                spare.parent,
                bad_network.display()
            )]
        );
        assert!(!network_file(root, &spare).exists());

        // A new network could clash with the unreadable one: refused, and
        // nothing is recorded.
        let before = contents(root);
        let mut request = NetworkCreate::new("new");
        request.subnets.push("10.9.0.0/24".parse().unwrap());
        let err = manager.create_network(&request).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "damaged state file {}: {}; a new network could clash with the one it records (name, subnets, parent): repair it or move it out of the state directory first",
                bad_network.display(),
                ipvlan::json::parse("{\"version\": 1, \"id").unwrap_err()
            )
        );
        assert_eq!(
            contents(root),
            before,
            "the refused create changed something"
        );

        // restore: errors name both files, which stay as they are.
        let report = manager.restore().unwrap();
        let expected: Vec<String> = networks
            .damaged
            .iter()
            .map(|d| format!("damaged state file left as it is: {d}"))
            .collect();
        assert_eq!(report.errors, expected);
        assert_eq!(fs::read(&bad_network).unwrap(), b"{\"version\": 1, \"id");
        assert_eq!(fs::read(&bad_endpoint).unwrap(), b"null");
        assert!(common::present(
            &root.join(format!("ipam/{}/10.0.0.0-24/10.0.0.5", good.id))
        ));

        // Once the damaged network record is gone, a removal deletes its
        // parent again (there is none here, so no note either).
        fs::remove_file(&bad_network).unwrap();
        fs::remove_file(&bad_endpoint).unwrap();
        assert!(manager.remove_network("good").unwrap().is_empty());
    });
}

/// An empty record is what a power cut leaves of a new file whose data
/// never reached the disk (every command commits before it returns, so
/// only an unfinished one wrote it): it reads as missing, is not reported
/// as damage, and `restore` removes it, so nothing is left in its way.
#[test]
fn an_empty_record_counts_as_never_written_and_restore_removes_it() {
    in_fresh_netns("damage-empty", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        let root = &config.state_dir;
        let good = lo_network("good", "10.0.0.0/24");
        {
            let state = StateDir::open(root).unwrap();
            let locked = state.lock().unwrap();
            locked.put_network(&good).unwrap();
        }
        let empty_endpoint = root.join(format!("endpoints/{}/cut.json", good.id));
        fs::create_dir_all(empty_endpoint.parent().unwrap()).unwrap();
        fs::write(&empty_endpoint, "").unwrap();
        let empty_index = root.join("records/container-endpoints/c25.json");
        fs::create_dir_all(empty_index.parent().unwrap()).unwrap();
        fs::write(&empty_index, "").unwrap();

        let networks = manager.networks().unwrap();
        assert!(networks.damaged.is_empty(), "{:?}", networks.damaged);
        assert!(manager.network("good").unwrap().endpoints.is_empty());
        let report = manager.restore().unwrap();
        assert_eq!(report.errors, Vec::<String>::new());
        assert!(!empty_endpoint.exists(), "restore removed the empty record");
        assert!(!empty_index.exists(), "restore removed the empty index");
        assert!(manager.remove_network("good").unwrap().is_empty());
    });
}

/// A network's hosts file's short name (`hosts/k/<key>`, a link to
/// `../<id>`) that a `network rm` killed between the file and its short
/// name left behind (or a power cut brought back) is taken out by
/// `restore`, as is anything else found there; a network's own stays.
#[test]
fn restore_takes_out_short_names_of_hosts_files_of_no_network() {
    in_fresh_netns("damage-alias", |config| {
        let manager = Manager::open(config.clone()).unwrap();
        let root = &config.state_dir;
        let good = lo_network("good", "10.0.0.0/24");
        let k = root.join("hosts/k");
        {
            let state = StateDir::open(root).unwrap();
            let locked = state.lock().unwrap();
            locked.put_network(&good).unwrap();
            locked.hosts_alias(&good.id).unwrap();
        }
        let gone = "e".repeat(64);
        std::os::unix::fs::symlink(format!("../{gone}"), k.join(&gone[..16])).unwrap();
        fs::write(k.join("0123456789abcdef"), "").unwrap();

        let report = manager.restore().unwrap();
        assert_eq!(report.errors, Vec::<String>::new());
        assert_eq!(report.derived_rebuilt, 2, "{report:?}");
        let left: Vec<String> = fs::read_dir(&k)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(left, vec![good.id[..16].to_string()]);
        assert!(manager.remove_network("good").unwrap().is_empty());
        assert!(
            fs::read_dir(&k).unwrap().next().is_none(),
            "gone with its network"
        );
    });
}
