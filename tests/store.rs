//! The state store on disk: records, allocation through address files,
//! permissions, intents, hosts files, reuse without leaks.

mod common;

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;

use common::{address_files, check_every_file_parses, endpoint, network, plant, TempDir};
use ipvlan::ipam::{IpFamily, Request};
use ipvlan::json::Value;
use ipvlan::store::{
    append_line, remove_lines, EndpointRecord, EndpointState, NetworkRecord, SavedCursor, StateDir,
    StoreError, Timestamp,
};

/// The names of the files in `dir`, sorted.
fn file_names(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn records_round_trip_through_disk() {
    let tmp = TempDir::new("records");
    let state = StateDir::open(tmp.path()).unwrap();
    let net = network("n1", &["192.168.1.0/24", "2001:db8:abc9::/64"]);
    let ep = endpoint(
        &net,
        "e1",
        Some("192.168.1.2/24"),
        Some("2001:db8:abc9::2/64"),
    );
    {
        let locked = state.lock().unwrap();
        locked.put_network(&net).unwrap();
        locked.put_endpoint(&ep).unwrap();
        let container = Value::object([("name", Value::from("c1"))]);
        locked.put_record("containers", "c1", &container).unwrap();
    }
    assert_eq!(state.network(&net.id).unwrap().as_ref(), Some(&net));
    assert_eq!(
        state.networks().unwrap().complete().unwrap(),
        vec![net.clone()]
    );
    assert_eq!(state.endpoint(&net.id, "e1").unwrap().as_ref(), Some(&ep));
    assert_eq!(
        state.endpoints_of(&net.id).unwrap().complete().unwrap(),
        vec![ep.clone()]
    );
    assert_eq!(
        state.endpoints().unwrap().complete().unwrap(),
        vec![ep.clone()]
    );
    let records = state.records("containers").unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].1.get("name").and_then(Value::as_str), Some("c1"));
    assert!(state.record("containers", "nope").unwrap().is_none());
    check_every_file_parses(tmp.path());

    let locked = state.lock().unwrap();
    assert!(locked.remove_endpoint(&net.id, "e1").unwrap());
    assert!(!locked.remove_endpoint(&net.id, "e1").unwrap());
    assert!(locked.remove_record("containers", "c1").unwrap());
    assert!(locked.remove_network(&net.id).unwrap());
    assert!(state.networks().unwrap().is_empty());
}

#[test]
fn directory_and_file_modes() {
    let tmp = TempDir::new("modes");
    let root = tmp.path().join("state");
    let state = StateDir::open(&root).unwrap();
    let net = network("n1", &["10.0.0.0/24"]);
    let locked = state.lock().unwrap();
    locked.put_network(&net).unwrap();
    locked
        .allocate(&net, Request::Any(IpFamily::V4), "e1")
        .unwrap();
    let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&root.join("networks")), 0o700);
    assert_eq!(mode(&root.join(format!("networks/{}.json", net.id))), 0o600);
    // An address file is a symbolic link naming its owner: a link has no
    // mode of its own (nothing reads through it), its directory's 0700
    // is what guards it.
    let address = root.join(format!("ipam/{}/10.0.0.0-24/10.0.0.2", net.id));
    assert!(fs::symlink_metadata(&address)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(fs::read_link(&address).unwrap().to_str(), Some("e1"));
    assert_eq!(
        mode(&root.join(format!("ipam/{}/10.0.0.0-24/cursor", net.id))),
        0o600
    );
    assert_eq!(mode(&root.join("lock")), 0o600);
}

/// A directory named with a trailing `/`, a `.` or a doubled `/` is the
/// same directory: the store compares the paths it holds byte for byte,
/// and normalises what a caller names.
#[test]
fn a_directory_spelled_otherwise_is_the_same_directory() {
    let tmp = TempDir::new("spelling");
    let root = tmp.path().join("state");
    let state = StateDir::open(&root).unwrap();
    let text = |p: &std::path::Path| p.to_str().unwrap().to_string();
    for spelled in [
        format!("{}/", text(&root)),
        format!("{}/.", text(&root)),
        format!("{}/networks/", text(&root)),
        format!("{}//networks", text(&root)),
        format!("{}/./records", text(&root)),
    ] {
        let dir = std::path::Path::new(&spelled);
        assert_eq!(
            state.check_dir(dir).map_err(|e| e.to_string()),
            Ok(true),
            "{spelled}"
        );
        assert_eq!(
            state.ensure_dir(dir).map_err(|e| e.to_string()),
            Ok(()),
            "{spelled}"
        );
    }
    let made = format!("{}/records/made//", text(&root));
    state.ensure_dir(std::path::Path::new(&made)).unwrap();
    assert!(root.join("records/made").is_dir());
    let outside = format!("{}/../elsewhere", text(&root));
    assert!(state.check_dir(std::path::Path::new(&outside)).is_err());
}

#[test]
fn default_path_honours_environment() {
    std::env::set_var("IPVLAN_STATE_DIR", "/some/where");
    assert_eq!(
        StateDir::default_path(),
        std::path::PathBuf::from("/some/where")
    );
    std::env::remove_var("IPVLAN_STATE_DIR");
    assert_eq!(
        StateDir::default_path(),
        std::path::PathBuf::from("/var/lib/ipvlan")
    );
}

#[test]
fn allocation_on_disk_follows_the_cursor() {
    let tmp = TempDir::new("alloc");
    let state = StateDir::open(tmp.path()).unwrap();
    let net = network("db_net", &["192.168.1.0/24"]);
    let locked = state.lock().unwrap();
    let a = locked
        .allocate(&net, Request::Any(IpFamily::V4), "e1")
        .unwrap();
    let b = locked
        .allocate(&net, Request::Any(IpFamily::V4), "e2")
        .unwrap();
    assert_eq!(
        (a.to_string().as_str(), b.to_string().as_str()),
        ("192.168.1.2/24", "192.168.1.3/24")
    );
    assert_eq!(
        state
            .address_owner(&net.id, &net.subnets[0], ip("192.168.1.2"))
            .unwrap()
            .as_deref(),
        Some("e1")
    );
    assert!(locked.release(&net, ip("192.168.1.2")).unwrap());
    assert!(
        !locked.release(&net, ip("192.168.1.2")).unwrap(),
        "release twice is fine"
    );
    let c = locked
        .allocate(&net, Request::Any(IpFamily::V4), "e3")
        .unwrap();
    assert_eq!(
        c.to_string(),
        "192.168.1.4/24",
        "a released address waits for the wrap"
    );
    let err = locked
        .allocate(&net, Request::Exact(ip("192.168.1.3")), "e4")
        .unwrap_err();
    assert_eq!(err.to_string(), "Address already in use");
    let err = locked
        .allocate(&net, Request::Exact(ip("10.1.1.1")), "e4")
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no configured subnet contains IP address 10.1.1.1"
    );
    assert_eq!(
        state.addresses(&net).unwrap(),
        vec![
            (ip("192.168.1.3"), "e2".to_string()),
            (ip("192.168.1.4"), "e3".to_string())
        ]
    );
    assert_eq!(
        locked.release_owner(&net, "e3").unwrap(),
        vec![ip("192.168.1.4")]
    );
    check_every_file_parses(tmp.path());
}

/// A full subnet churning on disk (IPv4 and IPv6, the cursor file among
/// the entries): the address freed is handed out, wherever it lies, and
/// nothing when none is.
#[test]
fn a_full_subnet_on_disk_hands_out_what_is_freed() {
    let tmp = TempDir::new("full");
    let state = StateDir::open(tmp.path()).unwrap();
    let mut net = network("full", &["192.168.7.0/24", "2001:db8:7::/120"]);
    net.ipv6 = true;
    let locked = state.lock().unwrap();
    for (family, free) in [
        (IpFamily::V4, "192.168.7.200"),
        (IpFamily::V6, "2001:db8:7::c8"),
    ] {
        let any = Request::Any(family);
        let mut n = 0;
        while locked.allocate(&net, any, &format!("e{n}")).is_ok() {
            n += 1;
        }
        assert!(n > 250, "{family:?}: {n} addresses");
        for freed in [free, free, free] {
            assert!(locked.release(&net, ip(freed)).unwrap());
            assert_eq!(
                locked.allocate(&net, any, "again").unwrap().addr(),
                ip(freed)
            );
            let full = locked.allocate(&net, any, "none").unwrap_err();
            assert!(full.to_string().contains("no available"), "{full}");
        }
    }
    check_every_file_parses(tmp.path());
}

/// What `run` checks before it makes anything: an address is taken when
/// anything is at its name (an owner, an empty file a power cut left),
/// as the allocation's `take` finds it; a subnet directory that is no
/// directory is said as such, not taken for a taken address.
#[test]
fn an_address_is_taken_when_anything_is_at_its_name() {
    let tmp = TempDir::new("taken");
    let state = StateDir::open(tmp.path()).unwrap();
    let net = network("taken", &["192.168.8.0/24"]);
    let spec = &net.subnets[0];
    let locked = state.lock().unwrap();
    let got = locked
        .allocate(&net, Request::Any(IpFamily::V4), "e1")
        .unwrap();
    assert!(state.address_taken(&net.id, spec, got.addr()).unwrap());
    let free = ip("192.168.8.9");
    assert!(!state.address_taken(&net.id, spec, free).unwrap());
    let dir = tmp.path().join("ipam").join(&net.id).join(spec.key());
    std::fs::write(dir.join("192.168.8.9"), "").unwrap();
    assert!(
        state.address_taken(&net.id, spec, free).unwrap(),
        "an empty file"
    );
    let err = locked
        .allocate(&net, Request::Exact(free), "e2")
        .unwrap_err();
    assert_eq!(err.to_string(), "Address already in use");
    drop(locked);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, "").unwrap();
    let state = StateDir::open(tmp.path()).unwrap();
    let error = state.address_taken(&net.id, spec, free).unwrap_err();
    assert!(error.to_string().contains(&spec.key()), "{error}");
}

#[test]
fn reuse_explicit_v4_and_v6_ten_thousand_times() {
    let tmp = TempDir::in_memory("reuse");
    let state = StateDir::open(tmp.path()).unwrap();
    let net = network("ipnet110", &["192.168.112.0/24", "2001:db8:abc6::/64"]);
    let locked = state.lock().unwrap();
    locked.put_network(&net).unwrap();
    for i in 0..10_000 {
        let owner = format!("ep{i}");
        let v4 = locked
            .allocate(&net, Request::Exact(ip("192.168.112.50")), &owner)
            .unwrap();
        let v6 = locked
            .allocate(&net, Request::Exact(ip("2001:db8:abc6::50")), &owner)
            .unwrap();
        assert_eq!(v4.to_string(), "192.168.112.50/24");
        assert_eq!(v6.to_string(), "2001:db8:abc6::50/64");
        assert!(locked.release(&net, v4.addr()).unwrap());
        assert!(locked.release(&net, v6.addr()).unwrap());
    }
    assert!(address_files(tmp.path()).is_empty(), "no address leaked");
    assert_eq!(
        locked.clean_temporaries().unwrap(),
        0,
        "no temporary left behind"
    );
}

/// `restore`'s cleanup removes empty records (a new record a power cut
/// emptied) and temporaries, nothing else: the empty marker that says a
/// container's `/etc/netns` directory is ours (`hosts/etc-netns/NAME`) is
/// kept whatever the name, `web.json` included. Before, every empty
/// `*.json` of the tree went, and `/etc/netns/web.json` was then taken for
/// another tool's and left behind at the container's removal.
#[test]
fn restores_cleanup_removes_empty_records_only() {
    let tmp = TempDir::new("cleanup");
    let root = tmp.path();
    let state = StateDir::open(root).unwrap();
    let locked = state.lock().unwrap();
    locked.put_container("web.json").unwrap();
    let markers = root.join("hosts").join("etc-netns");
    fs::create_dir_all(&markers).unwrap();
    fs::set_permissions(root.join("hosts"), fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(&markers, fs::Permissions::from_mode(0o700)).unwrap();
    let marker = markers.join("web.json");
    fs::write(&marker, "").unwrap();
    fs::set_permissions(&marker, fs::Permissions::from_mode(0o600)).unwrap();
    let emptied = root.join("records").join("containers").join("db.json");
    fs::write(&emptied, "").unwrap();
    fs::set_permissions(&emptied, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(locked.clean_temporaries().unwrap(), 1);
    assert!(marker.exists(), "the marker went");
    assert!(!emptied.exists());
    assert_eq!(
        state.containers().unwrap().complete().unwrap(),
        ["web.json"]
    );
}

/// An append to a hosts file whose last line a kill cut short (a write
/// stops at a page boundary when a fatal signal is pending, and a
/// batch's append spans pages) blanks that line first: the next name
/// stays on a line of its own, and the cut one names nothing. Once it was
/// glued to the cut line, and neither resolved until `restore`; then the
/// cut line was ended as it was, and one cut within a name (`web-1` of
/// `web-12`) gave another container's name this one's address.
#[test]
fn an_append_ends_a_line_a_kill_cut_short() {
    let tmp = TempDir::new("hosts-append");
    let root = tmp.path();
    let state = StateDir::open(root).unwrap();
    let locked = state.lock().unwrap();
    let file = root.join("hosts").join("n1");
    locked
        .append_to(&file, "# header\n", "192.168.1.2\ta\n", 0o644)
        .unwrap();
    // A second append killed after its first bytes.
    let mut text = fs::read_to_string(&file).unwrap();
    text.push_str("192.168.1.3\tb");
    fs::write(&file, &text).unwrap();
    locked
        .append_to(&file, "# header\n", "192.168.1.4\tc\n", 0o644)
        .unwrap();
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        "# header\n192.168.1.2\ta\n             \n192.168.1.4\tc\n"
    );
    // A whole file gets no blank line.
    locked
        .append_to(&file, "# header\n", "192.168.1.5\td\n", 0o644)
        .unwrap();
    assert!(fs::read_to_string(&file)
        .unwrap()
        .ends_with("\tc\n192.168.1.5\td\n"));
}

#[test]
fn containers_are_records_of_their_own() {
    let tmp = TempDir::new("containers");
    let state = StateDir::open(tmp.path()).unwrap();
    let locked = state.lock().unwrap();
    locked.put_container("web").unwrap();
    locked.put_container("db").unwrap();
    assert_eq!(
        state.containers().unwrap().complete().unwrap(),
        ["db", "web"]
    );
    assert!(state.has_container("web").unwrap());
    assert!(!state.has_container("nope").unwrap());
    assert!(locked.remove_container("web").unwrap());
    assert!(!locked.remove_container("web").unwrap());
    assert_eq!(state.containers().unwrap().complete().unwrap(), ["db"]);
    check_every_file_parses(tmp.path());
}

#[test]
fn a_derived_record_found_missing_is_made_in_place_or_replaces_an_empty_one() {
    let tmp = TempDir::new("derived");
    let state = StateDir::open(tmp.path()).unwrap();
    let dir = tmp.path().join("records/index");
    let value = |n: u64| {
        Value::Object(vec![
            ("version".into(), Value::from(1u64)),
            ("n".into(), Value::from(n)),
        ])
    };
    let locked = state.lock().unwrap();
    // Found missing under the lock: made where it belongs, no temporary.
    assert_eq!(locked.record("index", "a").unwrap(), None);
    locked.put_derived_record("index", "a", &value(1)).unwrap();
    assert_eq!(locked.record("index", "a").unwrap(), Some(value(1)));
    // An empty file (a kill's leftover) reads as missing too; the write
    // that finds it there replaces it rather than failing or keeping it.
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("b.json"), "").unwrap();
    assert_eq!(locked.record("index", "b").unwrap(), None);
    locked.put_derived_record("index", "b", &value(2)).unwrap();
    drop(locked);
    // Read from the disk by a new store, not from what the lock held.
    let again = StateDir::open(tmp.path()).unwrap();
    assert_eq!(again.record("index", "a").unwrap(), Some(value(1)));
    assert_eq!(again.record("index", "b").unwrap(), Some(value(2)));
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a.json", "b.json"], "no temporary left");
    let mode = fs::metadata(dir.join("a.json"))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o600);
}

#[test]
fn an_endpoint_record_made_under_the_lock_is_replaced_whole_without_a_temporary_left() {
    let tmp = TempDir::new("made-here");
    let state = StateDir::open(tmp.path()).unwrap();
    let net = network("n1", &["192.168.7.0/24"]);
    let mut ep = endpoint(&net, "e1", Some("192.168.7.2/24"), None);
    let dir = tmp.path().join("endpoints").join(&net.id);
    let names = || file_names(&dir);
    {
        let locked = state.lock().unwrap();
        locked.put_network(&net).unwrap();
        // Intent made in place, then replaced twice, as an attach's
        // retries and its final state do.
        locked.put_new_endpoint(&ep).unwrap();
        for ifname in ["eth1", "eth2"] {
            ep.ifname = ifname.to_string();
            locked.put_endpoint(&ep).unwrap();
            assert_eq!(locked.endpoint(&net.id, "e1").unwrap().as_ref(), Some(&ep));
            assert_eq!(names(), ["e1.json"], "no temporary left");
        }
        locked.commit().unwrap();
        ep.ifname = "eth3".to_string();
        locked.put_endpoint(&ep).unwrap();
    }
    let again = StateDir::open(tmp.path()).unwrap();
    assert_eq!(again.endpoint(&net.id, "e1").unwrap().as_ref(), Some(&ep));
    assert_eq!(names(), ["e1.json"], "no temporary left");
    let mode = fs::metadata(dir.join("e1.json"))
        .unwrap()
        .permissions()
        .mode()
        & 0o7777;
    assert_eq!(mode, 0o600);
    check_every_file_parses(tmp.path());
}

/// A batch's intent as long as a record can be (a namespace path of
/// 4,095 control characters, six bytes each once escaped) becomes its
/// record as any other. Before, a line over 16 KiB was passed over, and a
/// link its batch made before dying was left to nobody.
#[test]
fn the_longest_intent_a_dead_batch_left_becomes_its_record() {
    let tmp = TempDir::new("batch-intent-long");
    let state = StateDir::open(tmp.path()).unwrap();
    let net = network("n1", &["192.168.8.0/24"]);
    let long = EndpointRecord {
        state: EndpointState::Attaching,
        mac: None,
        ifindex: Some(1001),
        netns: format!("/{}", "\u{1}".repeat(4094)),
        ..endpoint(&net, "e1", Some("192.168.8.1/24"), None)
    };
    // Others before it, so that it straddles the reader's chunks.
    let before: Vec<EndpointRecord> = (2..=31)
        .map(|i| EndpointRecord {
            id: format!("e{i}"),
            ifindex: Some(1000 + i),
            ..long.clone()
        })
        .map(|e| EndpointRecord {
            netns: format!("/run/netns/c{}", e.id),
            ..e
        })
        .collect();
    {
        let locked = state.lock().unwrap();
        locked.put_network(&net).unwrap();
        locked
            .put_batch_intents(&mut before.iter().chain([&long]))
            .unwrap();
    }
    let text = fs::read_to_string(tmp.path().join("batch-intents")).unwrap();
    let at = text.find("\\u0001").unwrap();
    assert!(
        text.len() - at > 16 << 10 && at % (16 << 10) > 8 << 10,
        "{at} of {} bytes",
        text.len()
    );
    let locked = state.lock().unwrap();
    assert_eq!(locked.endpoint(&net.id, "e1").unwrap(), Some(long));
    assert_eq!(
        locked.endpoint(&net.id, "e31").unwrap(),
        before.last().cloned()
    );
}

#[test]
fn the_intents_a_dead_batch_left_become_records_of_their_own_when_the_lock_is_taken() {
    let tmp = TempDir::new("batch-intents");
    let state = StateDir::open(tmp.path()).unwrap();
    let net = network("n1", &["192.168.8.0/24"]);
    let dir = tmp.path().join("endpoints").join(&net.id);
    let batch_file = tmp.path().join("batch-intents");
    let intents: Vec<EndpointRecord> = (1..=4)
        .map(|i| EndpointRecord {
            state: EndpointState::Attaching,
            mac: None,
            ifindex: Some(1000 + i),
            ..endpoint(
                &net,
                &format!("e{i}"),
                Some(&format!("192.168.8.{i}/24")),
                None,
            )
        })
        .collect();
    let finished = EndpointRecord {
        state: EndpointState::Attached,
        mac: Some("02:42:ac:11:00:09".into()),
        ..intents[0].clone()
    };
    {
        let locked = state.lock().unwrap();
        locked.put_network(&net).unwrap();
        locked.put_batch_intents(&mut intents.iter()).unwrap();
        assert!(batch_file.exists());
        // e1 finished (its final record made in place); e3's final record
        // cut short by the kill (created, not written); e2 and e4 not
        // reached. The batch dies holding the lock: its file stays.
        locked.put_new_endpoint(&finished).unwrap();
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("e3.json"), "").unwrap();
        fs::set_permissions(dir.join("e3.json"), fs::Permissions::from_mode(0o600)).unwrap();
    }
    // The kill came while the last line was written. Before it, a line
    // longer than any record, and the intent of an endpoint of a network
    // that has no record: neither is of any use, and neither must leave
    // a record behind.
    let text = fs::read_to_string(&batch_file).unwrap();
    assert_eq!(text.lines().count(), 4, "one line an intent: {text}");
    let elsewhere = EndpointRecord {
        network_id: "f".repeat(64),
        ..intents[1].clone()
    };
    let foreign = elsewhere.to_json().to_compact().unwrap();
    let (first, rest) = text.split_at(text.find('\n').unwrap() + 1);
    let overlong = format!("{{\"pad\": \"{}\"}}\n", "x".repeat(100_000));
    let planted = format!("{first}{overlong}{foreign}\n{rest}");
    fs::write(&batch_file, &planted[..planted.len() - 20]).unwrap();
    // Lock-free readers see no intents: only the record that was made.
    assert_eq!(state.endpoint_ids(&net.id).unwrap(), ["e1", "e3"]);

    let locked = state.lock().unwrap();
    assert!(!batch_file.exists(), "expanded, then removed");
    assert_eq!(
        locked.endpoint(&net.id, "e1").unwrap(),
        Some(EndpointRecord {
            state: EndpointState::Detaching,
            ..finished
        }),
        "a batch is all or nothing: a finished endpoint is undone too"
    );
    assert_eq!(
        locked.endpoint(&net.id, "e2").unwrap().as_ref(),
        Some(&intents[1])
    );
    assert_eq!(
        locked.endpoint(&net.id, "e3").unwrap().as_ref(),
        Some(&intents[2]),
        "an empty record is one never written: the intent takes its place"
    );
    assert_eq!(
        locked.endpoint(&net.id, "e4").unwrap(),
        None,
        "its line was cut short"
    );
    assert!(
        !tmp.path().join("endpoints").join("f".repeat(64)).exists(),
        "a record made for a network that has none"
    );
    drop(locked);
    check_every_file_parses(tmp.path());

    // One that cannot be read stops no command; its expansion says why.
    fs::create_dir(&batch_file).unwrap();
    let locked = state.lock().expect("a lock despite the file");
    let error = locked.expand_batch_intents().unwrap_err().to_string();
    assert!(error.contains("batch-intents"), "{error}");
}

#[test]
fn release_if_owner_frees_only_what_the_owner_holds() {
    let tmp = TempDir::new("owner");
    let state = StateDir::open(tmp.path()).unwrap();
    let net = network("n1", &["10.0.0.0/24"]);
    let locked = state.lock().unwrap();
    locked.put_network(&net).unwrap();
    let a = locked
        .allocate(&net, Request::Any(IpFamily::V4), "e1")
        .unwrap();
    assert!(!locked.release_if_owner(&net, a.addr(), "e2").unwrap());
    assert_eq!(
        address_files(tmp.path()).len(),
        1,
        "another owner's address stays"
    );
    assert!(locked.release_if_owner(&net, a.addr(), "e1").unwrap());
    assert!(address_files(tmp.path()).is_empty());
    let outside = "10.9.9.9".parse().unwrap();
    assert!(!locked.release_if_owner(&net, outside, "e1").unwrap());
}

#[test]
fn release_orphans_frees_addresses_without_an_endpoint() {
    let tmp = TempDir::new("orphans");
    let state = StateDir::open(tmp.path()).unwrap();
    let net = network("n1", &["10.0.0.0/24"]);
    let locked = state.lock().unwrap();
    locked.put_network(&net).unwrap();
    let kept = locked
        .allocate(&net, Request::Any(IpFamily::V4), "e1")
        .unwrap();
    locked
        .put_endpoint(&endpoint(&net, "e1", Some(&kept.to_string()), None))
        .unwrap();
    locked
        .allocate(&net, Request::Any(IpFamily::V4), "crashed")
        .unwrap();
    assert_eq!(locked.release_orphans(&net).unwrap(), 1);
    assert_eq!(
        state.addresses(&net).unwrap(),
        vec![(kept.addr(), "e1".to_string())]
    );
}

/// Address files are not synced, so a power cut can leave one empty or
/// not text: such a file holds its address (taken by an unknown owner)
/// until `restore` frees it, except in a network with an endpoint record
/// that cannot be read, whose address it may be; and `restore_address`
/// makes an endpoint's lost or emptied file again, leaving one another
/// recorded endpoint holds.
#[test]
fn address_files_a_power_cut_emptied_are_freed_and_made_again() {
    use ipvlan::store::AddressRepair;
    let tmp = TempDir::new("derived-addresses");
    let state = StateDir::open(tmp.path()).unwrap();
    let net = network("n1", &["10.0.0.0/24"]);
    let locked = state.lock().unwrap();
    locked.put_network(&net).unwrap();
    for (id, addr) in [("e1", "10.0.0.2"), ("e2", "10.0.0.3")] {
        locked.allocate(&net, Request::Exact(ip(addr)), id).unwrap();
        locked
            .put_endpoint(&endpoint(&net, id, Some(&format!("{addr}/24")), None))
            .unwrap();
    }
    let dir = tmp.path().join(format!("ipam/{}/10.0.0.0-24", net.id));
    plant(&dir.join("10.0.0.2"), "");
    plant(&dir.join("10.0.0.9"), b"\xff");
    plant(&dir.join("10.0.0.10"), " \n");
    // Taken: an exact request for it is refused, and it is no owner's.
    assert!(locked
        .allocate(&net, Request::Exact(ip("10.0.0.2")), "e3")
        .is_err());
    assert_eq!(
        state.addresses(&net).unwrap(),
        [(ip("10.0.0.3"), "e2".into())]
    );
    assert!(!locked.release_if_owner(&net, ip("10.0.0.9"), "e1").unwrap());

    // A damaged endpoint record might own them: kept.
    let damaged = tmp.path().join(format!("endpoints/{}/e9.json", net.id));
    fs::write(&damaged, "{").unwrap();
    assert_eq!(locked.release_orphans(&net).unwrap(), 0);
    let names = || file_names(&dir);
    assert_eq!(names(), ["10.0.0.10", "10.0.0.2", "10.0.0.3", "10.0.0.9"]);
    fs::remove_file(&damaged).unwrap();
    assert_eq!(locked.release_orphans(&net).unwrap(), 3);
    assert_eq!(address_files(tmp.path()), [(ip("10.0.0.3"), "e2".into())]);

    assert_eq!(
        locked.restore_address(&net, ip("10.0.0.2"), "e1").unwrap(),
        AddressRepair::Remade
    );
    assert_eq!(
        locked.restore_address(&net, ip("10.0.0.2"), "e1").unwrap(),
        AddressRepair::Kept
    );
    assert_eq!(
        locked.restore_address(&net, ip("10.0.0.3"), "e1").unwrap(),
        AddressRepair::HeldBy("e2".into())
    );
    plant(&dir.join("10.0.0.3"), "gone\n");
    assert_eq!(
        locked.restore_address(&net, ip("10.0.0.3"), "e2").unwrap(),
        AddressRepair::Remade
    );
    assert_eq!(
        locked.restore_address(&net, ip("10.9.0.1"), "e1").unwrap(),
        AddressRepair::OutsideSubnets
    );
    let mut files = address_files(tmp.path());
    files.sort();
    assert_eq!(
        files,
        [(ip("10.0.0.2"), "e1".into()), (ip("10.0.0.3"), "e2".into())]
    );
    assert_eq!(
        fs::read_link(dir.join("10.0.0.2")).unwrap().to_str(),
        Some("e1")
    );
    check_every_file_parses(tmp.path());
}

/// An address file whose owner's record holds another address is stale
/// (the owner detached and attached again with another address, and a
/// power cut took the unsynced files' changes): `restore_address` makes
/// it the recorded holder's, and `release_orphans` frees one no record
/// holds. Before, any owner with a record counted: restore reported a
/// clash with an endpoint that did not hold the address, on every run,
/// and the address stayed named after it, so its holder's detach never
/// freed it.
#[test]
fn an_address_file_naming_an_owner_that_holds_another_address_is_stale() {
    use ipvlan::store::AddressRepair;
    let tmp = TempDir::new("stale-owner");
    let state = StateDir::open(tmp.path()).unwrap();
    let net = network("n1", &["10.0.0.0/24"]);
    let locked = state.lock().unwrap();
    locked.put_network(&net).unwrap();
    // Files as the cut left them: .2 and .4 still name e2, whose record
    // holds .3; e1's record holds .2; no record holds .4.
    for addr in ["10.0.0.2", "10.0.0.4"] {
        locked
            .allocate(&net, Request::Exact(ip(addr)), "e2")
            .unwrap();
    }
    locked
        .put_endpoint(&endpoint(&net, "e1", Some("10.0.0.2/24"), None))
        .unwrap();
    locked
        .put_endpoint(&endpoint(&net, "e2", Some("10.0.0.3/24"), None))
        .unwrap();
    assert_eq!(locked.release_orphans(&net).unwrap(), 2, "10.0.0.2 and .4");
    assert_eq!(
        locked.restore_address(&net, ip("10.0.0.2"), "e1").unwrap(),
        AddressRepair::Remade
    );
    assert_eq!(
        locked.restore_address(&net, ip("10.0.0.3"), "e2").unwrap(),
        AddressRepair::Remade
    );
    let mut files = address_files(tmp.path());
    files.sort();
    assert_eq!(
        files,
        [(ip("10.0.0.2"), "e1".into()), (ip("10.0.0.3"), "e2".into())]
    );
    // Without the orphans' pass first, restore_address alone takes .2.
    locked.release(&net, ip("10.0.0.2")).unwrap();
    locked
        .allocate(&net, Request::Exact(ip("10.0.0.2")), "e2")
        .unwrap();
    assert_eq!(
        locked.restore_address(&net, ip("10.0.0.2"), "e1").unwrap(),
        AddressRepair::Remade
    );
    check_every_file_parses(tmp.path());
}

#[test]
fn hosts_file_append_and_remove_in_place() {
    use std::os::unix::fs::MetadataExt;
    let tmp = TempDir::in_memory("hosts");
    let state = StateDir::open(tmp.path()).unwrap();
    let id = "a".repeat(64);
    let path = state.hosts_path(&id);
    append_line(&path, "192.168.1.2\tipv1", 0o644).unwrap();
    append_line(&path, "192.168.1.3\tipv2", 0o644).unwrap();
    let inode = fs::metadata(&path).unwrap().ino();
    assert_eq!(remove_lines(&path, |l| l.ends_with("\tipv1")).unwrap(), 1);
    let text = fs::read_to_string(&path).unwrap();
    // Blanked as a comment, then spaces: a resolver reads no host there.
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(lines, ["192.168.1.3\tipv2"]);
    assert!(
        text.starts_with(&format!("#{}\n", " ".repeat("192.168.1.2\tipv1".len() - 1))),
        "{text:?}"
    );
    assert_eq!(
        fs::metadata(&path).unwrap().ino(),
        inode,
        "same file: bind mounts see it"
    );
    // Many attach/detach cycles keep the file small.
    for i in 0..2000 {
        append_line(&path, &format!("10.0.{}.{}\tc{i}", i / 250, i % 250), 0o644).unwrap();
        remove_lines(&path, |l| l.ends_with(&format!("\tc{i}"))).unwrap();
    }
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.len() < 8192, "compacted: {} bytes", text.len());
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(lines, ["192.168.1.3\tipv2"]);
    assert_eq!(fs::metadata(&path).unwrap().ino(), inode);
}

#[test]
fn host_id_from_machine_id_or_created_once() {
    let tmp = TempDir::new("hostid");
    let state = StateDir::open(tmp.path().join("s")).unwrap();
    let machine_id = tmp.path().join("machine-id");
    fs::write(&machine_id, "0123456789abcdef0123456789abcdef\n").unwrap();
    let locked = state.lock().unwrap();
    assert_eq!(
        locked.host_id(&machine_id).unwrap(),
        "0123456789abcdef0123456789abcdef"
    );
    let missing = tmp.path().join("absent");
    let first = locked.host_id(&missing).unwrap();
    assert_eq!(first.len(), 32);
    assert_eq!(
        locked.host_id(&missing).unwrap(),
        first,
        "created once, then reused"
    );
}

#[test]
fn corrupt_and_foreign_records_are_refused() {
    let tmp = TempDir::new("corrupt");
    let state = StateDir::open(tmp.path()).unwrap();
    let net = network("n1", &["10.0.0.0/24"]);
    state.lock().unwrap().put_network(&net).unwrap();
    let path = tmp.path().join(format!("networks/{}.json", net.id));
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, text.replace("\"version\": 1", "\"version\": 2")).unwrap();
    let err = state.network(&net.id).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }));
    assert!(err.to_string().contains("version 2"), "{err}");
    fs::write(&path, text.replace("\"mode\": \"l2\",", "")).unwrap();
    let err = state.network(&net.id).unwrap_err();
    assert!(err.to_string().contains("missing field \"mode\""), "{err}");
    fs::write(&path, &text[..text.len() / 2]).unwrap();
    assert!(state.network(&net.id).is_err());
    let bad = EndpointRecord {
        id: "../escape".into(),
        ..endpoint(&net, "e", None, None)
    };
    let err = state.lock().unwrap().put_endpoint(&bad).unwrap_err();
    assert!(matches!(err, StoreError::InvalidName { .. }), "{err}");
}

#[test]
fn a_record_the_reader_would_refuse_is_never_written() {
    // Before: a network given ~200 KB of aux-address names (1.2 MB once
    // written as JSON) was written whole, and every later command that
    // read the networks refused it: `network create` of any other network,
    // `network rm` of this one, `restore`.
    let tmp = TempDir::new("oversized");
    let state = StateDir::open(tmp.path()).unwrap();
    let locked = state.lock().unwrap();
    let small = network("small", &["10.0.0.0/24"]);
    locked.put_network(&small).unwrap();
    let room = usize::try_from(ipvlan::store::RECORD_MAX).unwrap();
    let mut big = network("big", &["10.1.0.0/24"]);
    big.options
        .push(("note".into(), "\u{1}".repeat(room / 6 + 1)));
    let err = locked.put_network(&big).unwrap_err();
    assert!(matches!(err, StoreError::Refused { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("a record may hold; nothing was written"),
        "{err}"
    );
    // The same record replacing one that is there: the old text stays.
    let mut grown = small.clone();
    grown.options = big.options.clone();
    assert!(locked.put_network(&grown).is_err());
    let huge = Value::object([("name", Value::from("x".repeat(room)))]);
    assert!(locked.put_record("containers", "huge", &huge).is_err());
    locked.commit().unwrap();
    drop(locked);
    assert_eq!(
        state.networks().unwrap().complete().unwrap(),
        vec![small.clone()]
    );
    assert!(state.network_by_name("big").is_none());
    assert!(state.record("containers", "huge").unwrap().is_none());
    check_every_file_parses(tmp.path());
}

#[test]
fn network_removal_takes_its_files() {
    let tmp = TempDir::new("netrm");
    let state = StateDir::open(tmp.path()).unwrap();
    let net: NetworkRecord = network("n1", &["10.0.0.0/24"]);
    let locked = state.lock().unwrap();
    locked.put_network(&net).unwrap();
    let a = locked
        .allocate(&net, Request::Any(IpFamily::V4), "e1")
        .unwrap();
    locked
        .put_endpoint(&endpoint(&net, "e1", Some(&a.to_string()), None))
        .unwrap();
    append_line(&state.hosts_path(&net.id), "10.0.0.2 c", 0o644).unwrap();
    assert!(locked.remove_network(&net.id).unwrap());
    assert!(address_files(tmp.path()).is_empty());
    assert!(state.endpoints().unwrap().is_empty());
    assert!(!state.hosts_path(&net.id).exists());
}

#[test]
fn timestamps_in_rfc3339() {
    let epoch = Timestamp { secs: 0, nanos: 0 };
    assert_eq!(epoch.to_string(), "1970-01-01T00:00:00.000000000Z");
    let t = Timestamp {
        secs: 1_700_000_000,
        nanos: 123_456_789,
    };
    assert_eq!(t.to_string(), "2023-11-14T22:13:20.123456789Z");
    assert_eq!(
        "2023-11-14T22:13:20.123456789Z"
            .parse::<Timestamp>()
            .unwrap(),
        t
    );
    let leap = "2024-02-29T23:59:59.000000001Z";
    assert_eq!(leap.parse::<Timestamp>().unwrap().to_string(), leap);
    for bad in [
        "2023-11-14T22:13:20Z",
        "2023-13-14T22:13:20.123456789Z",
        "2023-11-14 22:13:20.123456789Z",
        "2023-02-30T22:13:20.123456789Z",
        "2023-11-14T22:13:20.12345678+Z",
    ] {
        assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
    }
}

/// 30 bytes with multi-byte characters where separators belong: an error,
/// never a panic from slicing inside a character.
#[test]
fn non_ascii_timestamps_are_errors() {
    for bad in [
        "2023é11-14T22:13:20.12345678Z",
        "2023-11-14T22:13:20.1234567€Z",
        "ééééééééééééééé",
        "2023-11-14T22:13:20.123456789é",
    ] {
        assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
    }
}

#[test]
fn non_ascii_timestamp_in_a_record_is_a_corrupt_state_file() {
    let tmp = TempDir::new("badtime");
    let state = StateDir::open(tmp.path()).unwrap();
    let net = network("n1", &["10.0.0.0/24"]);
    state.lock().unwrap().put_network(&net).unwrap();
    let path = tmp.path().join(format!("networks/{}.json", net.id));
    let text = fs::read_to_string(&path).unwrap();
    let created = net.created.to_string();
    assert!(text.contains(&created));
    let odd = format!("{}é{}", &created[..4], &created[6..]);
    assert_eq!(odd.len(), 30);
    fs::write(&path, text.replace(&created, &odd)).unwrap();
    let err = state.network(&net.id).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("corrupt state file"), "{err}");
}

#[test]
fn non_utf8_state_files_are_corrupt_or_ignored_hints() {
    let tmp = TempDir::new("nonutf8");
    let state = StateDir::open(tmp.path()).unwrap();
    let net = network("n1", &["10.0.0.0/24"]);
    let locked = state.lock().unwrap();
    locked.put_network(&net).unwrap();
    let a = locked
        .allocate(&net, Request::Any(IpFamily::V4), "e1")
        .unwrap();
    // The cursor is a hint: garbage in it restarts the walk, nothing fails.
    let subnet_dir = tmp.path().join("ipam").join(&net.id).join("10.0.0.0-24");
    fs::write(subnet_dir.join("cursor"), b"\xff\xfe\n").unwrap();
    let b = locked
        .allocate(&net, Request::Any(IpFamily::V4), "e2")
        .unwrap();
    assert_ne!(a, b);
    // An address file or a record that is not text is a damaged file.
    plant(&subnet_dir.join(a.addr().to_string()), b"\xff\n");
    let err = state
        .address_owner(&net.id, &net.subnets[0], a.addr())
        .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    let path = tmp.path().join(format!("networks/{}.json", net.id));
    fs::write(&path, b"{\"id\": \"\xff\"}").unwrap();
    let err = state.network(&net.id).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(err.to_string().contains("not UTF-8"), "{err}");
}

#[test]
fn a_cursor_that_cannot_be_written_fails_no_allocation_and_leaks_no_address() {
    let tmp = TempDir::new("cursor-refused");
    let state = StateDir::open(tmp.path()).unwrap();
    let net = network("n1", &["10.0.0.0/24"]);
    let locked = state.lock().unwrap();
    locked.put_network(&net).unwrap();
    // The subnet's directory made by a first allocation, then its cursor
    // replaced by something no write can go into: read as no cursor, it
    // cannot be made again either.
    let a = locked
        .allocate(&net, Request::Any(IpFamily::V4), "e1")
        .unwrap();
    drop(locked);
    let subnet_dir = tmp.path().join("ipam").join(&net.id).join("10.0.0.0-24");
    fs::remove_file(subnet_dir.join("cursor")).unwrap();
    fs::create_dir(subnet_dir.join("cursor")).unwrap();
    let locked = state.lock().unwrap();
    for owner in ["e2", "e3"] {
        let b = locked
            .allocate(&net, Request::Any(IpFamily::V4), owner)
            .unwrap_or_else(|e| panic!("{owner}: a hint's write failed the allocation: {e}"));
        assert_ne!(a, b);
    }
    drop(locked);
    // Each address taken has its owner, and nothing else is taken.
    let mut taken = address_files(tmp.path());
    taken.sort();
    let owned = |addr: &str, owner: &str| (ip(addr), owner.to_string());
    assert_eq!(
        taken,
        [
            owned("10.0.0.2", "e1"),
            owned("10.0.0.3", "e2"),
            owned("10.0.0.4", "e3")
        ],
        "{taken:?}"
    );
}

#[test]
fn ip_range_outside_its_subnet_is_a_corrupt_record() {
    let tmp = TempDir::new("badrange");
    let state = StateDir::open(tmp.path()).unwrap();
    let mut net = network("n1", &["10.0.0.0/24"]);
    net.subnets[0].ip_range = Some("10.0.0.128/25".parse().unwrap());
    state.lock().unwrap().put_network(&net).unwrap();
    assert_eq!(state.network(&net.id).unwrap().unwrap(), net);
    let path = tmp.path().join(format!("networks/{}.json", net.id));
    let text = fs::read_to_string(&path).unwrap();
    for range in ["fd00::/64", "10.0.1.0/25"] {
        fs::write(&path, text.replace("10.0.0.128/25", range)).unwrap();
        let err = state.network(&net.id).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("not inside subnet"), "{err}");
    }
}

/// A network record whose id is no name (an edit: ids are written as 64
/// hex digits) is damage, listed as such beside the networks that read:
/// before, it was read, and every command that went through the networks'
/// endpoints (inspect, `network rm`, a CNI ADD) failed on its id.
#[test]
fn a_network_id_that_is_no_name_is_a_damaged_record() {
    let tmp = TempDir::new("badnetid");
    let state = StateDir::open(tmp.path()).unwrap();
    let (kept, edited) = (
        network("n1", &["10.0.0.0/24"]),
        network("n2", &["10.0.1.0/24"]),
    );
    let locked = state.lock().unwrap();
    locked.put_network(&kept).unwrap();
    locked.put_network(&edited).unwrap();
    drop(locked);
    let networks = tmp.path().join("networks");
    let text = fs::read_to_string(networks.join(format!("{}.json", edited.id))).unwrap();
    fs::remove_file(networks.join(format!("{}.json", edited.id))).unwrap();
    fs::write(
        networks.join("db net.json"),
        text.replace(&edited.id, "db net"),
    )
    .unwrap();
    let listing = state.networks().unwrap();
    assert_eq!(listing.items, [kept]);
    assert_eq!(listing.damaged.len(), 1, "{:?}", listing.damaged);
    assert!(
        listing.damaged[0].path.ends_with("db net.json"),
        "{:?}",
        listing.damaged
    );
}

/// A subnet with host bits (an edit) is a damaged record: its address
/// names the directory of its address files, so it would allocate from an
/// empty one beside the addresses taken.
#[test]
fn a_subnet_with_host_bits_is_a_corrupt_record() {
    let tmp = TempDir::new("hostbits");
    let state = StateDir::open(tmp.path()).unwrap();
    let net = network("n1", &["10.0.0.0/24", "fd00::/64"]);
    state.lock().unwrap().put_network(&net).unwrap();
    let path = tmp.path().join(format!("networks/{}.json", net.id));
    let text = fs::read_to_string(&path).unwrap();
    for (subnet, edited) in [("10.0.0.0/24", "10.0.0.1/24"), ("fd00::/64", "fd00::1/64")] {
        fs::write(&path, text.replace(subnet, edited)).unwrap();
        let err = state.network(&net.id).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("host bits"), "{err}");
    }
}

/// Hosts files are read by whatever runs in a container: 0644 even when
/// the invoking shell has a strict umask. Runs in a child with umask 077.
#[test]
fn hosts_file_mode_ignores_the_umask() {
    const TEST: &str = "hosts_file_mode_ignores_the_umask";
    const CHILD_ENV: &str = "IPVLAN_TEST_UMASK_STATE";
    if let Ok(root) = std::env::var(CHILD_ENV) {
        let state = StateDir::open(&root).unwrap();
        let net = network("n1", &["10.0.0.0/24"]);
        let locked = state.lock().unwrap();
        append_line(&state.hosts_path(&net.id), "10.0.0.2 c1", 0o644).unwrap();
        locked
            .allocate(&net, Request::Any(IpFamily::V4), "e1")
            .unwrap();
        return;
    }
    let tmp = TempDir::new("umask");
    let root = tmp.path().join("state");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 077 && exec \"$0\" --exact {TEST} --test-threads=1"
        ))
        .arg(std::env::current_exe().unwrap())
        .env(CHILD_ENV, &root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let net = network("n1", &["10.0.0.0/24"]);
    let mode = |p: std::path::PathBuf| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(root.join("hosts").join(&net.id)), 0o644);
    assert_eq!(mode(root.join("ipam").join(&net.id)), 0o700);
    assert_eq!(
        mode(root.join(format!("ipam/{}/10.0.0.0-24", net.id))),
        0o700
    );
    assert_eq!(mode(root.join("lock")), 0o600);
}

/// A record the strict reader would refuse is never written: a network
/// whose options repeat a key, a record nested deeper than the reader
/// goes, fail to write, leave no file (not even a temporary one), and
/// the records already there stay readable.
#[test]
fn records_the_reader_would_refuse_are_not_written() {
    let tmp = TempDir::new("unwritable");
    let state = StateDir::open(tmp.path()).unwrap();
    let good = network("good", &["192.168.1.0/24"]);
    state.lock().unwrap().put_network(&good).unwrap();
    let before = common::all_files(tmp.path());

    let mut twice = network("twice", &["192.168.2.0/24"]);
    twice.options = vec![
        ("parent".into(), "eth0".into()),
        ("mtu".into(), "1400".into()),
        ("mtu".into(), "1400".into()),
    ];
    let error = state.lock().unwrap().put_network(&twice).unwrap_err();
    let text = error.to_string();
    assert!(
        text.contains("duplicate object key \"mtu\" in \"options\""),
        "{text}"
    );

    let mut deep = Value::Null;
    for _ in 0..=ipvlan::json::MAX_DEPTH {
        deep = Value::from(vec![deep]);
    }
    let record = Value::object([("version", Value::from(1u32)), ("deep", deep)]);
    let error = state
        .lock()
        .unwrap()
        .put_record("containers", "deep", &record)
        .unwrap_err();
    assert!(error.to_string().contains("nesting deeper than"), "{error}");

    assert_eq!(common::all_files(tmp.path()), before);
    assert_eq!(state.networks().unwrap().complete().unwrap(), vec![good]);
    check_every_file_parses(tmp.path());
}

/// A network is found by name through its hint (`names/<name>`, two
/// reads whatever the number of networks); a missing hint (a store of an
/// older version), a stale one (naming a removed network, or one renamed
/// by hand) or a damaged one only costs the scan of every record: `network
/// inspect NAME` finds the same network either way.
#[test]
fn a_network_is_found_by_name_with_or_without_its_hint() {
    let tmp = TempDir::new("name-hint");
    let root = tmp.path().join("state");
    let state = StateDir::open(&root).unwrap();
    let first = network("first", &["192.168.1.0/24"]);
    let second = network("second", &["192.168.2.0/24"]);
    {
        let locked = state.lock().unwrap();
        locked.put_network(&first).unwrap();
        locked.put_network(&second).unwrap();
    }
    let hint = root.join("names/first");
    assert_eq!(
        fs::read_link(&hint).unwrap().to_str(),
        Some(first.id.as_str()),
        "the hint is a link naming the id"
    );
    assert_eq!(state.network_by_name("first"), Some(first.clone()));

    let inspect = |name: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_ipvlan"))
            .args(["network", "inspect", name])
            .env("IPVLAN_STATE_DIR", &root)
            .env("IPVLAN_NETNS_DIR", tmp.path().join("netns"))
            .env("IPVLAN_ETC_NETNS_DIR", tmp.path().join("etc-netns"))
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let found = |stdout: &str, network: &ipvlan::store::NetworkRecord| {
        stdout.contains(&format!("\"Id\": \"{}\"", network.id))
    };
    assert!(found(&inspect("first"), &first));

    // Stale: names the other network.
    plant(&hint, format!("{}\n", second.id));
    assert_eq!(state.network_by_name("first"), None);
    assert!(found(&inspect("first"), &first));
    // Damaged, then missing (an older version's store).
    plant(&hint, "not an id\n");
    assert_eq!(state.network_by_name("first"), None);
    assert!(found(&inspect("first"), &first));
    fs::remove_dir_all(root.join("names")).unwrap();
    assert_eq!(state.network_by_name("first"), None);
    assert!(found(&inspect("first"), &first));
    assert!(found(&inspect("second"), &second));

    // Removing a network removes its hint, not another network's.
    let locked = state.lock().unwrap();
    locked.put_network(&first).unwrap();
    locked.put_network(&second).unwrap();
    plant(&root.join("names/second"), format!("{}\n", first.id));
    locked.remove_network(&second.id).unwrap();
    assert!(
        fs::symlink_metadata(root.join("names/second")).is_ok(),
        "a hint naming another network stays"
    );
    locked.remove_network(&first.id).unwrap();
    assert!(fs::symlink_metadata(&hint).is_err());

    // A hint that cannot be written, where none can be read either (a
    // directory in its place, a file where `names` belongs), stops no
    // network's write: the record is written, found by the scan, removed.
    // Before, every `network create` and `network rm` failed on it.
    fs::create_dir(&hint).unwrap();
    locked.put_network(&first).unwrap();
    drop(locked);
    assert_eq!(state.network_by_name("first"), None);
    assert!(found(&inspect("first"), &first));
    let locked = state.lock().unwrap();
    fs::remove_dir_all(root.join("names")).unwrap();
    fs::write(root.join("names"), "").unwrap();
    locked.put_network(&second).unwrap();
    drop(locked);
    assert!(found(&inspect("second"), &second));
    let locked = state.lock().unwrap();
    locked.remove_network(&first.id).unwrap();
    locked.remove_network(&second.id).unwrap();
    assert_eq!(locked.networks().unwrap().items, Vec::new());
}

/// The allocation cursor is a hint nobody syncs: it is overwritten in
/// place (the same inode; a rename over it would start its writeback on
/// ext4 at every allocation), one padded line whatever the address's
/// length, once per lock however many allocations moved it (a batch's
/// wrote it once per target), and still read back right.
#[test]
fn the_cursor_is_rewritten_in_place_as_one_padded_line() {
    use std::os::unix::fs::MetadataExt;
    let tmp = TempDir::new("cursor-in-place");
    let state = StateDir::open(tmp.path()).unwrap();
    let net = network("n1", &["10.0.0.0/24"]);
    let locked = state.lock().unwrap();
    locked.put_network(&net).unwrap();
    let cursor = tmp
        .path()
        .join("ipam")
        .join(&net.id)
        .join("10.0.0.0-24")
        .join("cursor");
    let first = locked
        .allocate(&net, Request::Any(IpFamily::V4), "e1")
        .unwrap();
    let inode = fs::metadata(&cursor).unwrap().ino();
    assert_eq!(
        fs::read_to_string(&cursor).unwrap(),
        format!("{:<50}\n", first.addr())
    );
    let mut last = first;
    for owner in ["e2", "e3", "e4", "e5", "e6", "e7", "e8", "e9", "e10"] {
        last = locked
            .allocate(&net, Request::Any(IpFamily::V4), owner)
            .unwrap();
    }
    // Moved nine times under one lock, written once, when the lock lets
    // it go: until then the file holds the address it was made with.
    assert_eq!(
        fs::read_to_string(&cursor).unwrap(),
        format!("{:<50}\n", first.addr())
    );
    drop(locked);
    assert_eq!(
        fs::metadata(&cursor).unwrap().ino(),
        inode,
        "replaced, not rewritten"
    );
    let text = fs::read_to_string(&cursor).unwrap();
    assert_eq!(text, format!("{:<50}\n", last.addr()));
    assert_eq!(text.len(), 51);
    // Read back: the next automatic address follows the last one.
    let locked = state.lock().unwrap();
    let next = locked
        .allocate(&net, Request::Any(IpFamily::V4), "e11")
        .unwrap();
    assert!(next.addr() > last.addr(), "{next} after {last}");
    assert_eq!(
        locked.cursors(&net).unwrap(),
        vec![SavedCursor {
            last: Some(next.addr()),
            freed: 0
        }],
        "the cursor reads as the address it holds"
    );
}

/// A network whose first subnet is full takes back what is freed there
/// (subnets are used in order) and passes over that subnet again once the
/// last address freed is taken, with no walk of it whole: the count of
/// addresses freed is kept in its cursor, across locks (it was not: each
/// "free one, take two" walked the full subnet, a `symlinkat` an address).
#[test]
fn addresses_freed_in_a_full_first_subnet_are_counted_in_its_cursor() {
    let tmp = TempDir::new("cursor-freed");
    let state = StateDir::open(tmp.path()).unwrap();
    let net = network("n1", &["10.0.0.0/28", "10.0.1.0/24"]);
    let cursor = tmp
        .path()
        .join(format!("ipam/{}/10.0.0.0-28/cursor", net.id));
    let any = Request::Any(IpFamily::V4);
    let line = |text: &str| format!("{text:<50}\n");
    {
        let locked = state.lock().unwrap();
        locked.put_network(&net).unwrap();
        // .2 to .14 (the gateway is .1), then the walk that finds it full.
        for n in 2..=14 {
            let got = locked.allocate(&net, any, &format!("a{n}")).unwrap();
            assert_eq!(got.addr(), ip(&format!("10.0.0.{n}")));
        }
        let got = locked.allocate(&net, any, "b2").unwrap();
        assert_eq!(got.addr(), ip("10.0.1.2"));
    }
    assert_eq!(fs::read_to_string(&cursor).unwrap(), line("10.0.0.0"));
    for (freed, cursor_text) in [
        (&["10.0.0.9"][..], "10.0.0.8 1"),
        (&["10.0.0.9", "10.0.0.5"], "10.0.0.4 2"),
        (&["10.0.0.5", "10.0.0.9", "10.0.0.2"], "10.0.0.1 3"),
    ] {
        // Each release under a lock of its own: the count is read back.
        for addr in freed {
            let locked = state.lock().unwrap();
            assert!(locked.release(&net, ip(addr)).unwrap());
        }
        assert_eq!(fs::read_to_string(&cursor).unwrap(), line(cursor_text));
        let mut sorted: Vec<_> = freed.iter().map(|a| ip(a)).collect();
        sorted.sort();
        for (n, addr) in sorted.iter().enumerate() {
            let locked = state.lock().unwrap();
            let got = locked.allocate(&net, any, &format!("c{n}")).unwrap();
            assert_eq!(got.addr(), *addr, "{freed:?}");
        }
        // The last one taken marked the subnet full again.
        assert_eq!(fs::read_to_string(&cursor).unwrap(), line("10.0.0.0"));
        let locked = state.lock().unwrap();
        let got = locked.allocate(&net, any, "next").unwrap();
        assert!(net.subnets[1].subnet.contains(&got.addr()), "{got}");
        assert!(locked.release(&net, got.addr()).unwrap());
    }
    // An older version's line (40 bytes) written over a longer one of
    // ours (51) leaves that one's count after its newline: the first line
    // alone is the cursor.
    fs::write(&cursor, format!("{:<39}\n{:<10}\n", "10.0.0.0", "12")).unwrap();
    {
        let locked = state.lock().unwrap();
        assert_eq!(
            locked.cursors(&net).unwrap()[0],
            SavedCursor {
                last: Some(ip("10.0.0.0")),
                freed: 0
            }
        );
    }
    // A count that does not parse is a cursor that does not: the walk
    // starts over, nothing fails.
    fs::write(&cursor, "10.0.0.0 x\n").unwrap();
    let locked = state.lock().unwrap();
    assert_eq!(
        locked.cursors(&net).unwrap()[0],
        SavedCursor {
            last: None,
            freed: 0
        }
    );
}

/// Cursors put back (a refused batch's) are what the disk holds once the
/// lock is let go, whatever the batch moved meanwhile: also when a later
/// subnet of the network had no cursor to put back (the cursor moved by
/// the batch, held unwritten until the lock's end, once overwrote the one
/// put back).
#[test]
fn cursors_put_back_are_what_the_lock_leaves() {
    let tmp = TempDir::new("cursors-put-back");
    let state = StateDir::open(tmp.path()).unwrap();
    for subnets in [&["10.0.0.0/24"][..], &["10.0.0.0/24", "10.0.1.0/24"]] {
        let net = network("n1", subnets);
        {
            let locked = state.lock().unwrap();
            locked.put_network(&net).unwrap();
            locked
                .allocate(&net, Request::Any(IpFamily::V4), "e0")
                .unwrap();
        }
        let locked = state.lock().unwrap();
        let saved = locked.cursors(&net).unwrap();
        assert!(saved[0].last.is_some(), "{subnets:?}: {saved:?}");
        for owner in ["e1", "e2", "e3"] {
            locked
                .allocate(&net, Request::Any(IpFamily::V4), owner)
                .unwrap();
        }
        locked.put_cursors(&net, &saved).unwrap();
        drop(locked);
        let locked = state.lock().unwrap();
        assert_eq!(locked.cursors(&net).unwrap(), saved, "{subnets:?}");
        for addr in ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"] {
            locked.release(&net, ip(addr)).unwrap();
        }
        locked.remove_network(&net.id).unwrap();
    }
}

/// Descriptors this process holds open on regular files under `dir` (the
/// store keeps its directories open, and the lock while locked).
fn open_under(dir: &std::path::Path) -> usize {
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir) && !target.ends_with("lock"))
        .filter(|target| fs::symlink_metadata(target).is_ok_and(|m| m.is_file()))
        .count()
}

#[test]
fn files_left_to_the_exit_are_few_whatever_a_command_writes() {
    let tmp = TempDir::new("leave-to-exit");
    let root = tmp.path().join("state");
    let record = |n: u64| Value::Object(vec![("version".into(), Value::from(n))]);
    let state = StateDir::open(&root).unwrap();
    {
        let locked = state.lock().unwrap();
        locked.put_container("a").unwrap();
        locked.commit().unwrap();
    }
    assert_eq!(open_under(&root), 0, "closed once committed");
    // Asked for: what one command writes stays open for its exit, but no
    // more than a few, however many files a batch writes.
    state.leave_descriptors_to_exit();
    {
        let locked = state.lock().unwrap();
        locked.put_container("b").unwrap();
        locked.commit().unwrap();
    }
    assert_eq!(open_under(&root), 1, "one record left to the exit");
    {
        let locked = state.lock().unwrap();
        for n in 0..200 {
            locked
                .put_record("kind", &format!("r{n}"), &record(1))
                .unwrap();
            locked
                .put_record("kind", &format!("r{n}"), &record(1))
                .unwrap();
        }
        locked.commit().unwrap();
    }
    let left = open_under(&root);
    assert!(left <= 8, "{left} state files left open");
    assert_eq!(state.record("kind", "r199").unwrap(), Some(record(1)));
}

/// The intents of `ids` of a dead batch on `net`, as `connect_many` writes
/// them before its first create.
fn batch_intents_of(
    net: &NetworkRecord,
    ids: std::ops::RangeInclusive<u32>,
) -> Vec<EndpointRecord> {
    ids.map(|i| EndpointRecord {
        state: EndpointState::Attaching,
        mac: None,
        ifindex: Some(1000 + i),
        ..endpoint(
            net,
            &format!("e{i}"),
            Some(&format!("192.168.8.{i}/24")),
            None,
        )
    })
    .collect()
}

/// Each of endpoints `ids` of `net` has a record (its intent, expanded).
fn assert_intents_became_records(
    locked: &ipvlan::store::Locked<'_>,
    net: &NetworkRecord,
    ids: std::ops::RangeInclusive<u32>,
) {
    for i in ids {
        assert!(
            locked
                .endpoint(&net.id, &format!("e{i}"))
                .unwrap()
                .is_some(),
            "e{i}'s intent became its record"
        );
    }
}

/// A batch is all or nothing: an endpoint whose final record a dead batch
/// had written already is undone with those it did not reach. Taking the
/// lock writes that record again marked `detaching` (with its own index
/// and MAC: a retried create's, not its line's), for `restore` to detach;
/// the endpoints not reached get their intents, as before. A record of
/// the batch's own for a retried create (`attaching`) and one that is not
/// this endpoint's (made at another time, or of another namespace) are
/// kept. Before, a finished
/// endpoint's record was kept `attached`, and a killed batch came back
/// partly attached, so the same command run again was refused.
#[test]
fn a_dead_batchs_finished_endpoints_are_undone_with_the_rest() {
    let tmp = TempDir::new("batch-undone");
    let state = StateDir::open(tmp.path()).unwrap();
    let net = network("n1", &["192.168.8.0/24"]);
    let intents = batch_intents_of(&net, 1..=5);
    let finished = EndpointRecord {
        state: EndpointState::Attached,
        mac: Some("02:42:ac:11:00:09".into()),
        ifindex: Some(2001),
        ..intents[0].clone()
    };
    let retried = EndpointRecord {
        ifindex: Some(2002),
        ..intents[1].clone()
    };
    let another = EndpointRecord {
        state: EndpointState::Attached,
        created: Timestamp {
            secs: intents[2].created.secs + 60,
            nanos: intents[2].created.nanos,
        },
        ..intents[2].clone()
    };
    let elsewhere = EndpointRecord {
        state: EndpointState::Attached,
        netns_id: Some(ipvlan::store::records::NetnsId {
            dev: 4,
            ino: 4_026_532_999,
            cookie: std::num::NonZeroU64::new(4099),
            boot: None,
        }),
        ..intents[4].clone()
    };
    {
        let locked = state.lock().unwrap();
        locked.put_network(&net).unwrap();
        locked.put_batch_intents(&mut intents.iter()).unwrap();
        locked.put_endpoint(&retried).unwrap();
        locked.put_new_endpoint(&finished).unwrap();
        locked.put_endpoint(&another).unwrap();
        locked.put_endpoint(&elsewhere).unwrap();
        // The batch dies holding the lock: its file stays.
    }
    let locked = state.lock().unwrap();
    assert!(!tmp.path().join("batch-intents").exists());
    assert_eq!(
        locked.endpoint(&net.id, "e1").unwrap(),
        Some(EndpointRecord {
            state: EndpointState::Detaching,
            ..finished
        }),
        "the finished endpoint is detached with the rest"
    );
    assert_eq!(locked.endpoint(&net.id, "e2").unwrap(), Some(retried));
    assert_eq!(locked.endpoint(&net.id, "e3").unwrap(), Some(another));
    assert_eq!(
        locked.endpoint(&net.id, "e5").unwrap(),
        Some(elsewhere),
        "another namespace's record, made at the same time"
    );
    assert_eq!(
        locked.endpoint(&net.id, "e4").unwrap().as_ref(),
        Some(&intents[3])
    );
    drop(locked);
    check_every_file_parses(tmp.path());
}

/// A dead batch's file that taking the lock could not turn into records
/// (here the disk is full) is never thrown away by the next batch: that
/// batch expands it first, or is refused with the reason and leaves it.
/// It used to remove the file unread and write its own, and the dead
/// batch's links were then never undone.
#[test]
fn a_dead_batchs_file_the_lock_could_not_expand_is_expanded_or_kept_by_the_next_batch() {
    use std::process::Command;
    let tmp = TempDir::new("batch-intents-full");
    assert!(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs"])
        .arg(tmp.path())
        .status()
        .unwrap()
        .success());
    struct Unmount<'a>(&'a std::path::Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(tmp.path());
    let batch_file = tmp.path().join("batch-intents");
    let net = network("n1", &["192.168.8.0/24"]);
    {
        let state = StateDir::open(tmp.path()).unwrap();
        let locked = state.lock().unwrap();
        locked.put_network(&net).unwrap();
        locked
            .put_batch_intents(&mut batch_intents_of(&net, 1..=3).iter())
            .unwrap();
        locked.commit().unwrap();
        // The batch dies holding the lock: its file stays.
    }
    let filler = tmp.path().join("filler");
    let _ = fs::write(&filler, vec![0u8; 1 << 20]);
    let state = StateDir::open(tmp.path()).unwrap();
    {
        let locked = state.lock().expect("a lock despite the full disk");
        assert!(batch_file.exists(), "not expanded: the file stays");
        let refused = locked
            .put_batch_intents(&mut batch_intents_of(&net, 5..=6).iter())
            .expect_err("a batch that cannot expand the dead one's file is refused");
        assert!(
            refused.to_string().contains("e1.json"),
            "the reason: {refused}"
        );
        assert!(batch_file.exists(), "the dead batch's file kept");
    }
    fs::remove_file(&filler).unwrap();
    let locked = state.lock().unwrap();
    assert_intents_became_records(&locked, &net, 1..=3);
    assert!(!batch_file.exists());
}

/// A dead batch's file whose lines name namespaces of another boot (a
/// power cut kept the file while the log's page lost its announcement,
/// and a later batch found it) makes no record of them: their kernel is
/// gone, as a single attach's intent of another boot is dropped. Before,
/// each became an `attaching` record holding its addresses until
/// `restore`. Lines of this boot are expanded as ever.
#[test]
fn a_dead_batchs_lines_of_another_boot_make_no_record() {
    use ipvlan::store::records::{boot_mark, NetnsId};
    let tmp = TempDir::new("batch-intents-other-boot");
    let root = tmp.path();
    let state = StateDir::open(root).unwrap();
    let net = network("n1", &["192.168.8.0/24"]);
    commit_in_turn(&state, &[&|locked| locked.put_network(&net).unwrap()]);
    let this = boot_mark(&ipvlan::store::this_boot().unwrap());
    let mut intents = batch_intents_of(&net, 1..=2);
    for (intent, boot) in intents.iter_mut().zip([this.wrapping_add(1), this]) {
        intent.netns_id = Some(NetnsId {
            dev: 4,
            ino: 4026532000 + u64::from(boot % 1000),
            cookie: std::num::NonZeroU64::new(4097),
            boot: Some(boot),
        });
    }
    {
        let locked = state.lock().unwrap();
        locked.put_batch_intents(&mut intents.iter()).unwrap();
        // The batch dies holding the lock: its file stays.
    }
    let locked = state.lock().unwrap();
    assert_eq!(
        locked.endpoint(&net.id, "e1").unwrap(),
        None,
        "another boot's"
    );
    assert!(
        locked.endpoint(&net.id, "e2").unwrap().is_some(),
        "this boot's"
    );
    assert!(!root.join("batch-intents").exists());
}

/// A batch that expands a dead batch's file first (one the lock did not:
/// its expansion failed then) announces its own file again: the
/// expansion's removal of the dead file cleared the mark that tells the
/// next lock to look for one, and a batch killed after its creates then
/// left its file unread by every later command but `restore` (its links
/// never undone by a connect that came first).
#[test]
fn a_batch_that_expands_a_dead_batchs_file_first_still_announces_its_own() {
    let tmp = TempDir::new("batch-intents-announce");
    let root = tmp.path();
    let state = StateDir::open(root).unwrap();
    let net = network("n1", &["192.168.8.0/24"]);
    commit_in_turn(&state, &[&|locked| locked.put_network(&net).unwrap()]);
    {
        let locked = state.lock().unwrap();
        // The dead batch's file, there though this lock did not expand it.
        let mut text = String::new();
        for record in batch_intents_of(&net, 1..=2) {
            text.push_str(&record.to_text(false));
            text.push('\n');
        }
        fs::write(root.join("batch-intents"), text).unwrap();
        fs::set_permissions(
            root.join("batch-intents"),
            fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        locked
            .put_batch_intents(&mut batch_intents_of(&net, 5..=6).iter())
            .unwrap();
        assert_intents_became_records(&locked, &net, 1..=2);
        // This batch dies after its creates: its file stays.
    }
    assert!(root.join("batch-intents").exists());
    let locked = state.lock().unwrap();
    assert_intents_became_records(&locked, &net, 5..=6);
    assert!(
        !root.join("batch-intents").exists(),
        "expanded by the next lock"
    );
}

/// A batch's intents that cannot be written whole (here the last record's
/// id, which the writer refuses, after more than one chunk of lines went
/// to the disk) leave no file: the lines written must not outlive the
/// refusal, or the next lock would act on them for a batch that never
/// touched the kernel. A batch detach's would mark endpoints `detaching`
/// that its caller was told stayed attached.
#[test]
fn intents_not_written_whole_leave_no_file() {
    let tmp = TempDir::new("batch-intents-refused-write");
    let state = StateDir::open(tmp.path()).unwrap();
    let net = network("n1", &["192.168.8.0/24"]);
    let mut attached = batch_intents_of(&net, 1..=60);
    for record in &mut attached {
        record.state = EndpointState::Attached;
    }
    {
        let locked = state.lock().unwrap();
        locked.put_network(&net).unwrap();
        for record in &attached {
            locked.put_endpoint(record).unwrap();
        }
        locked.commit().unwrap();
    }
    let mut detaching = attached.clone();
    for record in &mut detaching {
        record.state = EndpointState::Detaching;
    }
    detaching.last_mut().unwrap().id = "../e60".into();
    {
        let locked = state.lock().unwrap();
        locked
            .put_batch_intents(&mut detaching.iter())
            .expect_err("an id the writer refuses");
        assert!(
            !tmp.path().join("batch-intents").exists(),
            "the lines written before the refusal were left"
        );
        locked.commit().unwrap();
    }
    let locked = state.lock().unwrap();
    for record in &attached {
        let read = locked.endpoint(&net.id, &record.id).unwrap().unwrap();
        assert_eq!(read.state, EndpointState::Attached, "{}", record.id);
    }
}

/// An endpoint record the store refuses (a symbolic link) is kept as it
/// is, as a damaged one is, and the lines after it are still expanded: it
/// used to stop the expansion there, every time.
#[test]
fn a_refused_record_does_not_stop_the_expansion_of_the_lines_after_it() {
    let tmp = TempDir::new("batch-intents-refused");
    let state = StateDir::open(tmp.path()).unwrap();
    let net = network("n1", &["192.168.8.0/24"]);
    let dir = tmp.path().join("endpoints").join(&net.id);
    {
        let locked = state.lock().unwrap();
        locked.put_network(&net).unwrap();
        locked
            .put_batch_intents(&mut batch_intents_of(&net, 1..=3).iter())
            .unwrap();
    }
    fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink("/nonexistent", dir.join("e1.json")).unwrap();
    let locked = state.lock().unwrap();
    assert!(!tmp.path().join("batch-intents").exists(), "expanded");
    assert!(fs::symlink_metadata(dir.join("e1.json"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_intents_became_records(&locked, &net, 2..=3);
}

/// The lock file's length once it holds the commit log: its format mark's
/// page, two generation pages, the volatile page and 64 slots.
const LOG_LOCK_LEN: u64 = (4 + 64) * 4096;

/// Where the commit log's slot `slot` starts in the lock file.
fn log_slot(slot: u64) -> u64 {
    (4 + slot) * 4096
}

/// Page `n` of the store's lock file (the commit log's pages).
fn lock_page(root: &std::path::Path, n: u64) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mut page = vec![0u8; 4096];
    let lock = fs::File::open(root.join("lock")).unwrap();
    lock.read_exact_at(&mut page, n * 4096).unwrap();
    page
}

/// Writes page `n` of the store's lock file back as `bytes`.
fn put_lock_page(root: &std::path::Path, n: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let lock = fs::OpenOptions::new()
        .write(true)
        .open(root.join("lock"))
        .unwrap();
    lock.write_all_at(bytes, n * 4096).unwrap();
}

/// A commit killed between its entry and the log's volatile page leaves
/// the entry past the page's tail; a later commit too large for the log
/// (one `syncfs`) must empty the log all the same, and so must `restore`'s
/// emptying. Before, both went by the page's tail (0), kept the log, and
/// after a power cut the next lock wrote the killed commit's old version
/// of a record over the removal the large commit had made durable.
#[test]
fn an_entry_a_killed_commit_left_is_never_replayed_over_a_later_syncfs_commit() {
    let tmp = TempDir::new("stale-entry");
    let root = tmp.path();
    let state = StateDir::open(root).unwrap();
    let net = network("n1", &["10.0.0.0/16"]);
    let e1 = endpoint(&net, "e1", Some("10.0.0.2/16"), None);
    commit_in_turn(
        &state,
        &[&|locked| {
            locked.put_network(&net).unwrap();
            locked.put_endpoint(&e1).unwrap();
        }],
    );
    state.lock().unwrap().empty_commit_log().unwrap();
    for large_commit_first in [true, false] {
        let page = lock_page(root, 3);
        // A commit rewrites e1, its entry at slot 0, and is killed before
        // the page: the page is as it was (tail 0).
        let killed = EndpointRecord {
            ifname: "eth7".into(),
            ..e1.clone()
        };
        commit_in_turn(&state, &[&|locked| locked.put_endpoint(&killed).unwrap()]);
        put_lock_page(root, 3, &page);
        let locked = state.lock().unwrap();
        if large_commit_first {
            // e1 removed with 300 other records: more than the log takes.
            assert!(locked.remove_endpoint(&net.id, "e1").unwrap());
            for i in 0..300u32 {
                let address = format!("10.0.{}.{}/16", 1 + i / 200, i % 200 + 1);
                let other = endpoint(&net, &format!("x{i}"), Some(&address), None);
                locked.put_endpoint(&other).unwrap();
            }
            locked.commit().unwrap();
        } else {
            // As restore leaves the store; a second emptying of the empty
            // log writes nothing (restore run twice changes nothing).
            assert!(locked.remove_endpoint(&net.id, "e1").unwrap());
            locked.commit().unwrap();
            locked.empty_commit_log().unwrap();
            let emptied = fs::read(root.join("lock")).unwrap();
            locked.empty_commit_log().unwrap();
            assert_eq!(fs::read(root.join("lock")).unwrap(), emptied);
        }
        drop(locked);
        // A power cut: the page lost (the files as the commits left them,
        // synced).
        put_lock_page(root, 3, &[0u8; 4096]);
        let state = StateDir::open(root).unwrap();
        let locked = state.lock().unwrap();
        assert_eq!(
            locked.endpoint(&net.id, "e1").unwrap(),
            None,
            "the removal undone (large commit first: {large_commit_first})"
        );
        locked.put_endpoint(&e1).unwrap();
        locked.commit().unwrap();
        locked.empty_commit_log().unwrap();
    }
}

/// A command that looks its network up before it takes the lock finds one
/// whose file a power cut took but the commit log holds: taking the lock
/// writes it again. Before, `network disconnect` (and `connect`, and their
/// batches) named it missing, before the lock that would have brought it
/// back, until another command or `restore` took the lock.
#[test]
fn a_network_only_the_commit_log_holds_is_found_by_disconnect() {
    let tmp = TempDir::new("log-lookup");
    let root = tmp.path().join("state");
    let state = StateDir::open(&root).unwrap();
    let net = network("n1", &["192.168.8.0/24"]);
    commit_in_turn(&state, &[&|locked| locked.put_network(&net).unwrap()]);
    let file = root.join("networks").join(format!("{}.json", net.id));
    // The name's hint is derived (never synced): lost with the record.
    cut_power(&root, &[&file, &root.join("names").join("n1")], &[]);
    let manager = ipvlan::driver::Manager::open(ipvlan::driver::Config {
        state_dir: root.clone(),
        netns_dir: tmp.path().join("netns"),
        etc_netns_dir: tmp.path().join("etc-netns"),
    })
    .unwrap();
    let target = ipvlan::driver::Target::Container("c1".into());
    let error = manager.disconnect("n1", &target).unwrap_err();
    assert_eq!(
        error.to_string(),
        "container c1 is not connected to network n1"
    );
    assert!(file.exists(), "the network written again from the log");
}

/// A network name that is no network's is named at once, even while
/// another command holds the store's lock (a batch of a thousand): the
/// look again after the commit log does not wait for the lock, whose
/// holder took the log up already.
#[test]
fn a_network_that_does_not_exist_is_named_without_waiting_for_the_lock() {
    let tmp = TempDir::new("lookup-busy");
    let root = tmp.path().join("state");
    let state = StateDir::open(&root).unwrap();
    let held = state.lock().unwrap();
    let config = ipvlan::driver::Config {
        state_dir: root.clone(),
        netns_dir: tmp.path().join("netns"),
        etc_netns_dir: tmp.path().join("etc-netns"),
    };
    let (done, answer) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let manager = ipvlan::driver::Manager::open(config).unwrap();
        let target = ipvlan::driver::Target::Container("c1".into());
        let _ = done.send(
            manager
                .disconnect("nosuch", &target)
                .unwrap_err()
                .to_string(),
        );
    });
    let said = answer.recv_timeout(std::time::Duration::from_secs(20));
    drop(held);
    assert_eq!(said.as_deref(), Ok("network nosuch not found"));
}

/// What a power cut can leave after commits made through the commit log:
/// `lost` files gone, `back` files as they were before (a removal lost),
/// and the log's volatile page never written (it names the boot, so the
/// next lock reads the log again, as it would after a real reboot).
fn cut_power(root: &std::path::Path, lost: &[&std::path::Path], back: &[(&std::path::Path, &str)]) {
    use std::os::unix::fs::FileExt;
    for path in lost {
        fs::remove_file(path).unwrap();
    }
    for (path, text) in back {
        fs::write(path, text).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let lock = fs::OpenOptions::new()
        .write(true)
        .open(root.join("lock"))
        .unwrap();
    lock.write_all_at(&[0u8; 4096], 3 * 4096).unwrap();
}

fn endpoint_file(root: &std::path::Path, net: &NetworkRecord, id: &str) -> std::path::PathBuf {
    root.join("endpoints")
        .join(&net.id)
        .join(format!("{id}.json"))
}

/// A command's records are made durable by one entry of the commit log in
/// the lock file (no `fsync` of their own). After a power cut took them
/// (and brought back a removed one), the next lock writes each again, in
/// order, from the log; once, not again in the same boot.
#[test]
fn records_a_power_cut_took_are_written_again_from_the_commit_log_when_the_lock_is_taken() {
    let tmp = TempDir::new("commit-log");
    let root = tmp.path();
    let state = StateDir::open(root).unwrap();
    let net = network("n1", &["192.168.8.0/24"]);
    let e1 = endpoint(&net, "e1", Some("192.168.8.2/24"), None);
    let e2 = endpoint(&net, "e2", Some("192.168.8.3/24"), None);
    let e2_moved = EndpointRecord {
        ifname: "eth1".into(),
        ..e2.clone()
    };
    let lock_len = || fs::metadata(root.join("lock")).unwrap().len();
    let before = lock_len();
    let steps: [&dyn Fn(&ipvlan::store::Locked<'_>); 3] = [
        &|locked| locked.put_network(&net).unwrap(),
        &|locked| {
            locked.put_endpoint(&e1).unwrap();
            locked.put_endpoint(&e2).unwrap();
        },
        &|locked| {
            assert!(locked.remove_endpoint(&net.id, "e1").unwrap());
            locked.put_endpoint(&e2_moved).unwrap();
        },
    ];
    for step in steps {
        commit_in_turn(&state, &[step]);
        assert_eq!(lock_len(), LOG_LOCK_LEN, "the log made by the first commit");
    }
    assert!(before < 4096, "no log before the first commit: {before}");
    let e1_text = serde_free_text(&e1);
    cut_power(
        root,
        &[
            &root.join("networks").join(format!("{}.json", net.id)),
            &endpoint_file(root, &net, "e2"),
        ],
        &[(&endpoint_file(root, &net, "e1"), &e1_text)],
    );

    let state = StateDir::open(root).unwrap();
    assert_eq!(state.network(&net.id).unwrap(), None, "readers see the cut");
    let locked = state.lock().unwrap();
    assert_eq!(locked.network(&net.id).unwrap(), Some(net.clone()));
    assert_eq!(
        locked.endpoint(&net.id, "e1").unwrap(),
        None,
        "removed again"
    );
    assert_eq!(locked.endpoint(&net.id, "e2").unwrap(), Some(e2_moved));
    assert_eq!(
        state.take_log_replayed(),
        (5, Vec::new()),
        "1 + 2 + 2 changes written again"
    );
    drop(locked);
    check_every_file_parses(root);

    // Taken up, the log is emptied: in this same boot a lock finds
    // nothing to write again.
    fs::remove_file(endpoint_file(root, &net, "e2")).unwrap();
    let locked = state.lock().unwrap();
    assert_eq!(locked.endpoint(&net.id, "e2").unwrap(), None);
    assert_eq!(state.take_log_replayed().0, 0);
}

/// A file of the commit log whose place holds a directory now (another
/// tool, a hand) is passed over and reported, as the replay's doc says,
/// and the lock taken: before, the replay stopped at its `EISDIR`, every
/// later lock (and `restore`) failed the same way, and the temporary it
/// had written stayed beside the directory.
#[test]
fn a_replay_passes_over_a_directory_where_a_record_goes() {
    let tmp = TempDir::new("commit-log-dir");
    let root = tmp.path();
    let state = StateDir::open(root).unwrap();
    let net = network("n1", &["192.168.9.0/24"]);
    let e1 = endpoint(&net, "e1", Some("192.168.9.2/24"), None);
    commit_in_turn(
        &state,
        &[&|locked| locked.put_network(&net).unwrap(), &|locked| {
            locked.put_endpoint(&e1).unwrap()
        }],
    );
    let record = root.join("networks").join(format!("{}.json", net.id));
    cut_power(root, &[&record, &endpoint_file(root, &net, "e1")], &[]);
    fs::create_dir(&record).unwrap();
    fs::set_permissions(&record, fs::Permissions::from_mode(0o700)).unwrap();

    let state = StateDir::open(root).unwrap();
    let locked = state.lock().expect("the lock is taken");
    assert_eq!(locked.endpoint(&net.id, "e1").unwrap(), Some(e1));
    let (replayed, refused) = state.take_log_replayed();
    assert_eq!(replayed, 1, "the endpoint written again");
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].contains(&format!("{}.json", net.id)),
        "{refused:?}"
    );
    drop(locked);
    assert!(record.is_dir(), "left as it is");
    let leftovers: Vec<_> = fs::read_dir(root.join("networks"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .filter(|name| name.to_string_lossy().starts_with(".tmp-"))
        .collect();
    assert_eq!(leftovers, Vec::<std::ffi::OsString>::new());
    state.lock().expect("and again");
}

/// An endpoint record's text as the store writes it.
fn serde_free_text(record: &EndpointRecord) -> String {
    record.to_json().to_pretty().unwrap()
}

/// One commit of more files than a store without a log would sync one by
/// one (a batch of 40 endpoints, above `SYNCFS_ABOVE`): the commit log
/// holds them all, however many descriptors were let go on the way, so a
/// power cut that takes every one has each written again. Such a commit
/// used to sync the whole file system instead, and so to flush every
/// derived file the batch had written too.
#[test]
fn a_commit_of_many_files_goes_through_the_commit_log_whole() {
    let tmp = TempDir::new("commit-log-many");
    let root = tmp.path();
    let (net, ids) = endpoints_committed_at_once(root, 40);
    cut_power_losing_endpoints(root, &net, &ids);
    let state = StateDir::open(root).unwrap();
    let locked = state.lock().unwrap();
    assert_eq!(locked.endpoint_ids(&net.id).unwrap(), ids);
    // And the network's record, committed through the log before.
    assert_eq!(state.take_log_replayed().0, ids.len() + 1);
    drop(locked);
    check_every_file_parses(root);
}

/// A commit whose changes one entry of the log does not hold (a batch of
/// 120 endpoints) is several entries, one after the other, with one
/// `fdatasync`: a power cut that takes every record has each written
/// again; one that tears an entry keeps the changes of the entries before
/// it (here the first records of the batch), never one of a later entry.
#[test]
fn a_commit_longer_than_one_entry_is_several_and_a_torn_one_keeps_those_before_it() {
    let tmp = TempDir::new("commit-log-entries");
    let (net, ids) = endpoints_committed_at_once(tmp.path(), 120);
    cut_power_losing_endpoints(tmp.path(), &net, &ids);
    let state = StateDir::open(tmp.path()).unwrap();
    let locked = state.lock().unwrap();
    assert_eq!(locked.endpoint_ids(&net.id).unwrap(), ids);
    // And the network's record, committed through the log before.
    assert_eq!(state.take_log_replayed().0, ids.len() + 1);
    drop(locked);
    check_every_file_parses(tmp.path());

    // The same, the second entry torn: slot 0 is the network's, the first
    // entry of the batch fills slots 1 to 8.
    let tmp = TempDir::new("commit-log-entries-torn");
    let (net, ids) = endpoints_committed_at_once(tmp.path(), 120);
    cut_power_losing_endpoints(tmp.path(), &net, &ids);
    {
        use std::os::unix::fs::FileExt;
        let lock = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(tmp.path().join("lock"))
            .unwrap();
        let mut byte = [0u8; 1];
        lock.read_exact_at(&mut byte, log_slot(9) + 100).unwrap();
        lock.write_all_at(&[byte[0] ^ 0x40], log_slot(9) + 100)
            .unwrap();
    }
    let state = StateDir::open(tmp.path()).unwrap();
    let locked = state.lock().unwrap();
    let back = locked.endpoint_ids(&net.id).unwrap();
    assert!(
        !back.is_empty() && back.len() < ids.len(),
        "the first entry's records, not the second's: {back:?}"
    );
    assert_eq!(back[..], ids[..back.len()], "a prefix of the command's");
    drop(locked);
    check_every_file_parses(tmp.path());
}

/// A commit of more than the whole log holds (700 endpoint records) is
/// one `syncfs` instead, and the log is emptied: a power cut after it
/// finds nothing to write again, and every record there.
#[test]
fn a_commit_longer_than_the_log_syncs_the_file_system_and_empties_the_log() {
    let tmp = TempDir::new("commit-log-longer");
    let root = tmp.path();
    let (net, ids) = endpoints_committed_at_once(root, 700);
    cut_power(root, &[], &[]);
    let state = StateDir::open(root).unwrap();
    let locked = state.lock().unwrap();
    assert_eq!(locked.endpoint_ids(&net.id).unwrap(), ids);
    assert_eq!(state.take_log_replayed().0, 0, "the log was emptied");
}

/// A full log is emptied by the commit that finds it so (after one
/// `syncfs`): a power cut after that writes again only what was committed
/// through the log since. An entry torn by the cut ends the log there.
#[test]
fn only_the_commit_logs_current_entries_are_written_again_up_to_a_torn_one() {
    use std::os::unix::fs::FileExt;
    let tmp = TempDir::new("commit-log-full");
    let root = tmp.path();
    let (state, net) = store_with_a_network(root);
    let connect = |ids: std::ops::RangeInclusive<u32>| {
        for i in ids {
            let locked = state.lock().unwrap();
            locked
                .put_endpoint(&endpoint(&net, &format!("e{i}"), None, None))
                .unwrap();
            locked.commit().unwrap();
        }
    };
    let cut = |ids: std::ops::RangeInclusive<u32>| {
        let lost: Vec<std::path::PathBuf> = ids
            .map(|i| endpoint_file(root, &net, &format!("e{i}")))
            .collect();
        let lost: Vec<&std::path::Path> = lost.iter().map(|p| p.as_path()).collect();
        cut_power(root, &lost, &[]);
    };
    // Slot 0 the network; e1..e63 fill the log; e64 finds it full: synced
    // with everything before it, and the log emptied; e65..e70 are slots
    // 0..5 of the next generation, slots 6..63 still hold e6..e63's
    // entries of the one before, which must not count.
    connect(1..=70);
    cut(1..=70);
    let state = StateDir::open(root).unwrap();
    let locked = state.lock().unwrap();
    let back = locked.endpoint_ids(&net.id).unwrap();
    assert_eq!(back, ["e65", "e66", "e67", "e68", "e69", "e70"]);
    assert_eq!(state.take_log_replayed().0, 6);
    drop(locked);
    // Emptied by that: e71..e73 are slots 0..2; slot 1 (e72) torn by the
    // cut ends the log there.
    connect(71..=73);
    cut(65..=73);
    let lock = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(root.join("lock"))
        .unwrap();
    let mut byte = [0u8; 1];
    lock.read_exact_at(&mut byte, log_slot(1) + 100).unwrap();
    lock.write_all_at(&[byte[0] ^ 0x40], log_slot(1) + 100)
        .unwrap();
    let state = StateDir::open(root).unwrap();
    let locked = state.lock().unwrap();
    assert_eq!(locked.endpoint_ids(&net.id).unwrap(), ["e71"]);
    assert_eq!(state.take_log_replayed().0, 1);
}

/// A network removed and another made under its name: the name's hint
/// is derived (written unsynced, rebuilt by a scan when lost), so its
/// removal is not in the commit log either, and writing the log again
/// after a reboot leaves the new network's hint. It used to take it,
/// and CNI, which finds networks by name, then lost the network.
#[test]
fn writing_the_commit_log_again_keeps_the_hint_of_a_network_made_since_under_the_same_name() {
    let tmp = TempDir::new("commit-log-hint");
    let root = tmp.path();
    let state = StateDir::open(root).unwrap();
    let first = network("n1", &["192.168.8.0/24"]);
    let second = NetworkRecord {
        id: "7f".repeat(32),
        ..first.clone()
    };
    commit_in_turn(
        &state,
        &[
            &|locked| locked.put_network(&first).unwrap(),
            &|locked| assert!(locked.remove_network(&first.id).unwrap()),
            &|locked| locked.put_network(&second).unwrap(),
        ],
    );
    cut_power(root, &[], &[]);
    let state = StateDir::open(root).unwrap();
    drop(state.lock().unwrap());
    assert_eq!(state.network_by_name("n1"), Some(second.clone()));
    // And a lost hint is no lost network.
    fs::remove_file(root.join("names").join("n1")).unwrap();
    assert_eq!(state.network_named("n1").unwrap(), Some(second));
}

/// A record written into a directory whose `mkdir` a power cut took (a
/// kill had come before the `mkdir` was synced, and the next command
/// found it there) is written again with its directory; a network's
/// directories removed since are removed again, with what was written
/// into them before.
#[test]
fn writing_the_commit_log_again_makes_a_lost_directory_and_removes_a_removed_one() {
    let tmp = TempDir::new("commit-log-dirs");
    let root = tmp.path();
    let state = StateDir::open(root).unwrap();
    let kept = network("n1", &["192.168.8.0/24"]);
    let gone = NetworkRecord {
        id: "7f".repeat(32),
        name: "n2".into(),
        ..kept.clone()
    };
    let e1 = endpoint(&kept, "e1", None, None);
    let e2 = endpoint(&gone, "e2", None, None);
    commit_in_turn(
        &state,
        &[
            &|locked| {
                locked.put_network(&kept).unwrap();
                locked.put_network(&gone).unwrap();
            },
            &|locked| {
                locked.put_endpoint(&e1).unwrap();
                locked.put_endpoint(&e2).unwrap();
            },
            &|locked| assert!(locked.remove_network(&gone.id).unwrap()),
        ],
    );
    // The cut took n1's endpoint directory and brought n2's back.
    let e2_text = e2.to_json().to_pretty().unwrap();
    fs::remove_dir_all(root.join("endpoints").join(&kept.id)).unwrap();
    fs::create_dir(root.join("endpoints").join(&gone.id)).unwrap();
    fs::set_permissions(
        root.join("endpoints").join(&gone.id),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    cut_power(root, &[], &[(&endpoint_file(root, &gone, "e2"), &e2_text)]);
    let state = StateDir::open(root).unwrap();
    let locked = state.lock().unwrap();
    assert_eq!(locked.endpoint(&kept.id, "e1").unwrap(), Some(e1));
    assert!(!root.join("endpoints").join(&gone.id).exists());
    assert_eq!(locked.network(&gone.id).unwrap(), None);
    drop(locked);
    check_every_file_parses(root);
}

/// A store made by an older version (its lock file empty, the mark that
/// its endpoints may be filed by container name) keeps its lock as it is:
/// its commits sync file by file.
#[test]
fn an_older_stores_lock_gets_no_commit_log() {
    let tmp = TempDir::new("commit-log-old");
    let root = tmp.path();
    drop(StateDir::open(root).unwrap());
    fs::write(root.join("lock"), "").unwrap();
    let state = StateDir::open(root).unwrap();
    assert!(!state.by_identity_only());
    let net = network("n1", &["192.168.8.0/24"]);
    let locked = state.lock().unwrap();
    locked.put_network(&net).unwrap();
    locked.commit().unwrap();
    drop(locked);
    assert_eq!(fs::metadata(root.join("lock")).unwrap().len(), 0);
    assert_eq!(state.network(&net.id).unwrap(), Some(net));
}

/// A single attach's intent lives in the commit log's volatile page, not
/// in a file: killed with it there (here the lock is let go without the
/// attach's end), the next lock turns it into the endpoint's intent record
/// when the endpoint has none, and takes it out of the page. Made, the
/// final record shadows it: the next lock passes it over.
#[test]
fn a_single_attachs_intent_in_the_commit_log_becomes_its_record_if_it_died() {
    let tmp = TempDir::new("single-intent");
    let root = tmp.path();
    let state = StateDir::open(root).unwrap();
    let net = network("n1", &["192.168.8.0/24"]);
    let intent = |id: &str| EndpointRecord {
        state: EndpointState::Attaching,
        mac: None,
        ifindex: Some(4242),
        created: Timestamp {
            secs: 1_700_000_000,
            nanos: 0,
        },
        ..endpoint(&net, id, Some("192.168.8.7/24"), None)
    };
    {
        let locked = state.lock().unwrap();
        locked.put_network(&net).unwrap();
        locked.commit().unwrap();
    }
    {
        let locked = state.lock().unwrap();
        assert!(locked.put_single_intent(&intent("e1")).unwrap());
        // Only the page holds it: no file.
        assert!(!endpoint_file(root, &net, "e1").exists());
        assert_eq!(state.endpoint(&net.id, "e1").unwrap(), None);
    }
    let locked = state.lock().unwrap();
    assert_eq!(locked.endpoint(&net.id, "e1").unwrap(), Some(intent("e1")));
    drop(locked);
    // Taken out of the page: the record removed, nothing brings it back.
    {
        let locked = state.lock().unwrap();
        assert!(locked.remove_endpoint(&net.id, "e1").unwrap());
        locked.commit().unwrap();
    }
    let locked = state.lock().unwrap();
    assert_eq!(locked.endpoint(&net.id, "e1").unwrap(), None);
    // A finished attach: its final record made (here by hand, so that the
    // lock let go has nothing to commit and the page keeps the intent, as
    // a kill before the commit leaves it): the record shadows the intent.
    assert!(locked.put_single_intent(&intent("e2")).unwrap());
    let finished = EndpointRecord {
        state: EndpointState::Attached,
        ..intent("e2")
    };
    let e2_file = endpoint_file(root, &net, "e2");
    fs::write(&e2_file, finished.to_json().to_pretty().unwrap()).unwrap();
    fs::set_permissions(&e2_file, fs::Permissions::from_mode(0o600)).unwrap();
    drop(locked);
    assert!(volatile_page(root).windows(9).any(|w| w == br#""id":"e2""#));
    let locked = state.lock().unwrap();
    assert_eq!(locked.endpoint(&net.id, "e2").unwrap(), Some(finished));
    // Given up (nothing in the kernel), the intent leaves the page first.
    assert!(locked.put_single_intent(&intent("e3")).unwrap());
    locked.clear_single_intent().unwrap();
    drop(locked);
    let locked = state.lock().unwrap();
    assert_eq!(locked.endpoint(&net.id, "e3").unwrap(), None);
    check_every_file_parses(root);
}

/// The commit log's volatile page (page 3 of the lock).
fn volatile_page(root: &std::path::Path) -> Vec<u8> {
    fs::read(root.join("lock")).unwrap()[3 * 4096..4 * 4096].to_vec()
}

/// CRC-32 (IEEE, as zlib's), to forge a whole volatile page.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= byte as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                0xEDB8_8320 ^ (crc >> 1)
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// Rewrites the boot id the volatile page names (a page last written in
/// another boot), keeping it whole.
fn forge_page_boot(root: &std::path::Path, boot: &[u8; 36]) {
    use std::os::unix::fs::FileExt;
    let lock = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(root.join("lock"))
        .unwrap();
    let mut page = vec![0u8; 4096];
    lock.read_exact_at(&mut page, 3 * 4096).unwrap();
    assert_eq!(&page[..8], b"ipvlvol1");
    page[24..60].copy_from_slice(boot);
    let len = u32::from_le_bytes(page[60..64].try_into().unwrap()) as usize;
    let crc = crc32(&page[..64 + len]);
    page[64 + len..68 + len].copy_from_slice(&crc.to_le_bytes());
    lock.write_all_at(&page, 3 * 4096).unwrap();
}

/// An intent written into a page whose boot id is that of the boot before
/// (the log emptied then, nothing written to the page since) is stamped
/// with this boot's: killed, its attach is taken up by the next lock. It
/// used to keep the old boot id, and the next lock dropped the intent as
/// another boot's: the link was never undone.
#[test]
fn a_single_attachs_intent_is_taken_up_in_its_boot_whatever_boot_the_page_named_before() {
    let tmp = TempDir::new("single-intent-boot");
    let root = tmp.path();
    let (state, net) = store_with_a_network(root);
    state.lock().unwrap().empty_commit_log().unwrap();
    forge_page_boot(root, &[b'0'; 36]);
    let intent = attaching(&net, "e1");
    {
        let locked = state.lock().unwrap();
        assert!(locked.put_single_intent(&intent).unwrap());
        // Killed: nothing to commit.
    }
    let locked = state.lock().unwrap();
    assert_eq!(locked.endpoint(&net.id, "e1").unwrap(), Some(intent));
}

/// A settled intent (its final record made) still in the page is taken
/// out before that record is removed under the same lock (an attach of a
/// `run` on several networks given up after the first): it used to stay,
/// and a kill before the commit brought it back as a record naming the
/// index of the first create, which may be another link's.
#[test]
fn a_settled_intent_leaves_the_page_before_its_record_goes() {
    let tmp = TempDir::new("single-intent-settled");
    let root = tmp.path();
    let (state, net) = store_with_a_network(root);
    let intent = attaching(&net, "e1");
    let locked = state.lock().unwrap();
    assert!(locked.put_single_intent(&intent).unwrap());
    let has_intent = || volatile_page(root).windows(9).any(|w| w == br#""id":"e1""#);
    assert!(has_intent());
    locked
        .put_new_endpoint(&EndpointRecord {
            state: EndpointState::Attached,
            ifindex: Some(5555),
            ..intent.clone()
        })
        .unwrap();
    locked.settle_single_intent();
    assert!(has_intent(), "settled: left for the commit to take out");
    assert!(locked.remove_endpoint(&net.id, "e1").unwrap());
    assert!(!has_intent(), "taken out before the record went");
}

/// A detach's intent (`detaching`) goes into the commit log's page, not
/// over the endpoint's record by a temporary file and a rename: killed
/// with it there, the next lock writes it over the record that is still
/// there, and passes it over when the record is gone (the detach removed
/// it), was made anew since (another time of creation), or is damaged.
/// A detach that stops short writes it over its record itself.
#[test]
fn a_detachs_intent_in_the_commit_log_marks_its_record_if_it_died() {
    use std::os::unix::fs::MetadataExt;
    let tmp = TempDir::new("detach-intent");
    let root = tmp.path();
    let (state, net) = store_with_a_network(root);
    let attached = |id: &str| EndpointRecord {
        state: EndpointState::Attached,
        mac: Some("02:00:00:00:00:01".into()),
        ..attaching(&net, id)
    };
    let detaching = |record: &EndpointRecord| EndpointRecord {
        state: EndpointState::Detaching,
        ..record.clone()
    };
    let has_intent = |id: &str| {
        let needle = format!(r#""id":"{id}""#);
        volatile_page(root)
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    };
    let records: Vec<EndpointRecord> = ["e1", "e2", "e3", "e4", "e5", "e6", "e7", "e8"]
        .map(attached)
        .to_vec();
    commit_in_turn(
        &state,
        &[&|locked| {
            for record in &records {
                locked.put_endpoint(record).unwrap();
            }
        }],
    );
    let e1_file = endpoint_file(root, &net, "e1");
    let e1_written = fs::metadata(&e1_file).unwrap().ino();

    // Killed after its intent: the record becomes the intent.
    {
        let locked = state.lock().unwrap();
        assert!(locked.put_detach_intent(&detaching(&records[0])).unwrap());
        assert!(has_intent("e1"));
        // Only the page holds it: the record is as it was, the same file.
        assert_eq!(
            state.endpoint(&net.id, "e1").unwrap(),
            Some(records[0].clone())
        );
        assert_eq!(fs::metadata(&e1_file).unwrap().ino(), e1_written);
    }
    let locked = state.lock().unwrap();
    assert_eq!(
        locked.endpoint(&net.id, "e1").unwrap(),
        Some(detaching(&records[0]))
    );
    assert!(
        !has_intent("e1"),
        "taken out of the page once made the record"
    );
    drop(locked);

    // Killed once the record was removed: nothing comes back.
    {
        let locked = state.lock().unwrap();
        assert!(locked.put_detach_intent(&detaching(&records[1])).unwrap());
        assert!(locked.remove_endpoint(&net.id, "e2").unwrap());
    }
    assert_eq!(state.lock().unwrap().endpoint(&net.id, "e2").unwrap(), None);

    // Killed, and the record written since as `since` (by hand here):
    // the next lock keeps that record.
    let killed_then_rewritten = |record: &EndpointRecord, since: &EndpointRecord| {
        {
            let locked = state.lock().unwrap();
            assert!(locked.put_detach_intent(&detaching(record)).unwrap());
            locked.put_endpoint(since).unwrap();
        }
        assert_eq!(
            state.lock().unwrap().endpoint(&net.id, &record.id).unwrap(),
            Some(since.clone())
        );
    };

    // Made anew: another endpoint under the same id.
    killed_then_rewritten(
        &records[2],
        &EndpointRecord {
            created: Timestamp {
                secs: 1_800_000_000,
                nanos: 0,
            },
            ..records[2].clone()
        },
    );

    // Killed with the record damaged meanwhile: it is kept as it is.
    let e4_file = endpoint_file(root, &net, "e4");
    {
        let locked = state.lock().unwrap();
        assert!(locked.put_detach_intent(&detaching(&records[3])).unwrap());
        fs::write(&e4_file, "{ torn").unwrap();
    }
    drop(state.lock().unwrap());
    assert_eq!(fs::read_to_string(&e4_file).unwrap(), "{ torn");
    fs::remove_file(&e4_file).unwrap();

    // Re-made on another index (as restore re-makes a link, keeping the
    // time of creation).
    killed_then_rewritten(
        &records[5],
        &EndpointRecord {
            ifindex: Some(4343),
            ..records[5].clone()
        },
    );

    // Killed with the record `detaching` already (a detach without the
    // page wrote it): left as it is, not written again.
    let e7_file = endpoint_file(root, &net, "e7");
    let e7_detaching = detaching(&records[6]);
    {
        let locked = state.lock().unwrap();
        locked.put_endpoint(&e7_detaching).unwrap();
    }
    let e7_written = fs::metadata(&e7_file).unwrap().ino();
    {
        let locked = state.lock().unwrap();
        assert!(locked.put_detach_intent(&e7_detaching).unwrap());
    }
    assert_eq!(
        state.lock().unwrap().endpoint(&net.id, "e7").unwrap(),
        Some(e7_detaching)
    );
    assert_eq!(fs::metadata(&e7_file).unwrap().ino(), e7_written);

    // Stopped short: the caller keeps the intent as the record.
    let locked = state.lock().unwrap();
    assert!(locked.put_detach_intent(&detaching(&records[4])).unwrap());
    locked.keep_detach_intent(&detaching(&records[4])).unwrap();
    assert!(!has_intent("e5"));
    assert_eq!(
        locked.endpoint(&net.id, "e5").unwrap(),
        Some(detaching(&records[4]))
    );
    // Stopped short once its record was gone: nothing is made again.
    assert!(locked.put_detach_intent(&detaching(&records[7])).unwrap());
    assert!(locked.remove_endpoint(&net.id, "e8").unwrap());
    locked.keep_detach_intent(&detaching(&records[7])).unwrap();
    assert!(!has_intent("e8"));
    assert_eq!(locked.endpoint(&net.id, "e8").unwrap(), None);
    drop(locked);
    check_every_file_parses(root);
}

/// A detach's intent the next lock cannot write over its record (here the
/// temporary's name is taken by a directory) stays in the page, and the
/// store names its endpoint, so that `restore` leaves that endpoint as it
/// is rather than re-make a link the detach may have deleted; once it can
/// be written, it is.
#[test]
fn a_detachs_intent_that_cannot_be_written_is_kept_and_named() {
    let tmp = TempDir::new("detach-intent-left");
    let root = tmp.path();
    let (state, net) = store_with_a_network(root);
    let attached = EndpointRecord {
        state: EndpointState::Attached,
        ..attaching(&net, "e1")
    };
    let detaching = EndpointRecord {
        state: EndpointState::Detaching,
        ..attached.clone()
    };
    commit_in_turn(&state, &[&|locked| locked.put_endpoint(&attached).unwrap()]);
    {
        let locked = state.lock().unwrap();
        assert!(locked.put_detach_intent(&detaching).unwrap());
        // Killed here.
    }
    let blocker = endpoint_file(root, &net, "e1")
        .parent()
        .unwrap()
        .join(".tmp-e1.json");
    fs::create_dir_all(blocker.join("in-the-way")).unwrap();
    {
        let locked = state.lock().unwrap();
        assert!(locked.single_intent_left().is_some());
        assert_eq!(
            locked.single_intent_left_endpoint(),
            Some((net.id.clone(), "e1".to_string()))
        );
        assert_eq!(locked.endpoint(&net.id, "e1").unwrap(), Some(attached));
    }
    fs::remove_dir_all(&blocker).unwrap();
    let locked = state.lock().unwrap();
    assert_eq!(locked.single_intent_left(), None);
    assert_eq!(locked.single_intent_left_endpoint(), None);
    assert_eq!(locked.endpoint(&net.id, "e1").unwrap(), Some(detaching));
    drop(locked);
    check_every_file_parses(root);
}

/// A store at `root` with network `n1` recorded (and its commit log made).
fn store_with_a_network(root: &std::path::Path) -> (StateDir, NetworkRecord) {
    let state = StateDir::open(root).unwrap();
    let net = network("n1", &["192.168.8.0/24"]);
    let locked = state.lock().unwrap();
    locked.put_network(&net).unwrap();
    locked.commit().unwrap();
    drop(locked);
    (state, net)
}

/// A store at `root` with network `n1` (see [`store_with_a_network`]) and
/// `count` endpoint records of it written under one lock and committed
/// at once, as a batch's; their ids, in order.
fn endpoints_committed_at_once(root: &std::path::Path, count: u32) -> (NetworkRecord, Vec<String>) {
    let (state, net) = store_with_a_network(root);
    let ids: Vec<String> = (1..=count).map(|i| format!("e{i:03}")).collect();
    let locked = state.lock().unwrap();
    for id in &ids {
        locked
            .put_endpoint(&endpoint(&net, id, None, None))
            .unwrap();
    }
    locked.commit().unwrap();
    (net, ids)
}

/// [`cut_power`] that takes the records of endpoints `ids` of `net`.
fn cut_power_losing_endpoints(root: &std::path::Path, net: &NetworkRecord, ids: &[String]) {
    let lost: Vec<std::path::PathBuf> = ids.iter().map(|id| endpoint_file(root, net, id)).collect();
    let lost: Vec<&std::path::Path> = lost.iter().map(|p| p.as_path()).collect();
    cut_power(root, &lost, &[]);
}

/// The intent record (`attaching`) of endpoint `id` of `net`, asking for
/// index 4242.
fn attaching(net: &NetworkRecord, id: &str) -> EndpointRecord {
    EndpointRecord {
        state: EndpointState::Attaching,
        mac: None,
        ifindex: Some(4242),
        created: Timestamp {
            secs: 1_700_000_000,
            nanos: 0,
        },
        ..endpoint(net, id, Some("192.168.8.7/24"), None)
    }
}

/// Runs each of `commands` under a lock of its own, then commits it: as
/// many commands one after the other.
fn commit_in_turn(state: &StateDir, commands: &[&dyn Fn(&ipvlan::store::Locked<'_>)]) {
    for command in commands {
        let locked = state.lock().unwrap();
        command(&locked);
        locked.commit().unwrap();
    }
}

/// The lock is free once its holder lets it go, even while a process
/// forked meanwhile (by another thread of a program that embeds the
/// library) still holds a copy of the lock file's descriptor: it is
/// unlocked, not only closed. Before, the copy kept it locked until that
/// process exec'd or ended: every command waited (and a lookup that does
/// not wait named a network only the commit log held missing, as this
/// suite's parallel tests once showed).
#[test]
fn the_lock_is_free_once_let_go_whatever_a_forked_process_holds() {
    let tmp = TempDir::new("lock-fork");
    let root = tmp.path().join("state");
    let first = StateDir::open(&root).unwrap();
    let held = first.lock().unwrap();
    // SAFETY: the child only sleeps and exits (async-signal-safe calls),
    // holding copies of every descriptor, the lock file's among them.
    let child = unsafe { libc::fork() };
    assert!(child >= 0, "fork");
    if child == 0 {
        unsafe {
            libc::usleep(2_000_000);
            libc::_exit(0);
        }
    }
    drop(held);
    let second = StateDir::open(&root).unwrap();
    let started = std::time::Instant::now();
    let taken = second.lock();
    let waited = started.elapsed();
    // SAFETY: kill and reap our own child.
    unsafe {
        libc::kill(child, libc::SIGKILL);
        libc::waitpid(child, std::ptr::null_mut(), 0);
    }
    taken.unwrap();
    assert!(
        waited < std::time::Duration::from_secs(1),
        "the lock waited {waited:?} for the forked process"
    );
}

/// A `StateDir` (and so a `Manager`) is shared by an embedder's threads: a
/// read without the lock on one (as `exec`, `containers()` and
/// `has_container` make) never changes what a command holding the lock on
/// another reads back of its own write. Before, the unlocked read put the
/// version it had read into the holder's records, and the holder read an
/// older version back (16 to 137 times in 20,000 rounds); `run` on two
/// networks then wrote its container's index without the first one.
#[test]
fn reads_without_the_lock_on_other_threads_never_give_the_holder_an_older_record() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = TempDir::in_memory("store-threads");
    let store = StateDir::open(dir.path().join("state")).unwrap();
    let (kind, id) = ("container-endpoints", "x");
    let locked = store.lock().unwrap();
    locked.put_record(kind, id, &Value::from("v0")).unwrap();
    locked.commit().unwrap();
    drop(locked);
    let stop = AtomicBool::new(false);
    let mut stale = 0;
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let _ = store.record(kind, id);
                }
            });
        }
        for round in 1..20_000u32 {
            let locked = store.lock().unwrap();
            let written = Value::from(format!("v{round}"));
            locked.put_record(kind, id, &written).unwrap();
            if locked.record(kind, id).unwrap().as_ref() != Some(&written) {
                stale += 1;
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(
        stale, 0,
        "the holder read an older version back {stale} times"
    );
}

/// A `StateDir` kept by a long-lived program for listings without the
/// lock (a monitor polling `endpoints()`) holds a bounded number of
/// directory descriptors, however many networks come and go. Before, one
/// for every endpoint directory it ever listed, removed networks' too:
/// 50 networks left 50 more descriptors open.
#[test]
fn listings_without_the_lock_hold_a_bounded_number_of_descriptors() {
    let open_fds = || fs::read_dir("/proc/self/fd").unwrap().count();
    let tmp = TempDir::new("bounded-dirs");
    let root = tmp.path();
    let writer = StateDir::open(root).unwrap();
    let reader = StateDir::open(root).unwrap();
    let _ = reader.endpoints().unwrap();
    let before = open_fds();
    for i in 0..100 {
        let net = network(&format!("n{i}"), &["10.0.0.0/16"]);
        {
            let locked = writer.lock().unwrap();
            locked.put_network(&net).unwrap();
            locked
                .put_endpoint(&endpoint(&net, "e1", None, None))
                .unwrap();
            locked.commit().unwrap();
        }
        assert_eq!(reader.endpoints().unwrap().items.len(), 1);
        let locked = writer.lock().unwrap();
        assert!(locked.remove_endpoint(&net.id, "e1").unwrap());
        locked.remove_network(&net.id).unwrap();
        locked.commit().unwrap();
    }
    assert_eq!(reader.endpoints().unwrap().items.len(), 0);
    // Other tests of this binary open and close files meanwhile: a margin.
    let more = open_fds().saturating_sub(before);
    assert!(
        more <= 40,
        "{more} descriptors more after 100 networks came and went"
    );
}

/// A network's hosts file has a short name, `hosts/k/<first 16 digits of
/// its id>`, a link to `../<id>` that views link to (a target short enough
/// to be held in the link's inode): made once, read (not written) when it
/// is right, put right when it names another network (one of that key
/// since removed) or is not a link, and removed with its network only
/// while it names it.
#[test]
fn a_hosts_file_has_a_short_name_made_once_and_removed_with_its_network() {
    let dir = TempDir::in_memory("hosts-alias");
    let store = StateDir::open(dir.path().join("state")).unwrap();
    let net = network("aliased", &["10.0.0.0/24"]);
    let locked = store.lock().unwrap();
    locked.put_network(&net).unwrap();
    let alias = locked.hosts_alias(&net.id).unwrap();
    assert_eq!(alias, dir.path().join("state/hosts/k").join(&net.id[..16]));
    assert_eq!(
        fs::read_link(&alias).unwrap(),
        std::path::Path::new(&format!("../{}", net.id))
    );
    // Right already: the same inode.
    use std::os::unix::fs::MetadataExt;
    let inode = fs::symlink_metadata(&alias).unwrap().ino();
    locked.hosts_alias(&net.id).unwrap();
    assert_eq!(fs::symlink_metadata(&alias).unwrap().ino(), inode);
    // Another network's of the key, or a file: put right.
    for planted_file in [false, true] {
        fs::remove_file(&alias).unwrap();
        if planted_file {
            fs::write(&alias, "x").unwrap();
        } else {
            std::os::unix::fs::symlink(format!("../{}", "f".repeat(64)), &alias).unwrap();
        }
        locked.hosts_alias(&net.id).unwrap();
        assert_eq!(
            fs::read_link(&alias).unwrap(),
            std::path::Path::new(&format!("../{}", net.id))
        );
    }
    // Another network's of the same key that is there (a store made by
    // hand): left to it, and this network's view goes to its file.
    let twin = NetworkRecord {
        id: format!("{}{}", &net.id[..16], "c".repeat(48)),
        name: "twin".into(),
        ..net.clone()
    };
    locked.put_network(&twin).unwrap();
    fs::remove_file(&alias).unwrap();
    std::os::unix::fs::symlink(format!("../{}", twin.id), &alias).unwrap();
    assert!(locked.hosts_alias(&net.id).is_err());
    assert_eq!(
        fs::read_link(&alias).unwrap(),
        std::path::Path::new(&format!("../{}", twin.id))
    );
    locked.remove_network(&twin.id).unwrap();
    locked.hosts_alias(&net.id).unwrap();

    // Removed with its network; one naming another network is kept.
    locked.remove_network(&net.id).unwrap();
    assert!(fs::symlink_metadata(&alias).is_err());
    locked.put_network(&net).unwrap();
    std::os::unix::fs::symlink(format!("../{}", "f".repeat(64)), &alias).unwrap();
    locked.remove_network(&net.id).unwrap();
    assert!(fs::symlink_metadata(&alias).is_ok());

    // restore's sweep: what names no network there is goes, never followed.
    let kept = network("kept", &["10.0.1.0/24"]);
    locked.put_network(&kept).unwrap();
    let kept_alias = locked.hosts_alias(&kept.id).unwrap();
    let k = kept_alias.parent().unwrap();
    let outside = dir.path().join("outside");
    fs::write(&outside, "not ours").unwrap();
    std::os::unix::fs::symlink(&outside, k.join("0123456789abcdef")).unwrap();
    fs::write(k.join("fedcba9876543210"), "x").unwrap();
    fs::create_dir(k.join("0000000000000000")).unwrap();
    let (removed, failed) = locked.remove_stale_hosts_aliases().unwrap();
    assert_eq!((removed, failed.len()), (3, 1), "{failed:?}");
    fs::remove_dir(k.join("0000000000000000")).unwrap();
    assert_eq!(file_names(k), vec![kept.id[..16].to_string()]);
    assert_eq!(fs::read_to_string(&outside).unwrap(), "not ours");
    assert_eq!(locked.remove_stale_hosts_aliases().unwrap().0, 0);
}
