//! What the store trusts (see README, "Trust model of the state
//! directory"): a state directory owned by us and writable by nobody else,
//! state files never followed through links, never blocked on or read
//! unbounded, directories 0700 and files 0600/0644 whatever the umask; and
//! one damaged or hostile file never stops `network ls`, `ps`, `inspect`,
//! `rm` of another network or `restore`.
//!
//! Each hostile case plants the file or directory an attacker (or a
//! confused admin) would, points links at a victim file outside the state
//! directory, and checks the refusal, its message, and that the victim and
//! the state directory are byte for byte what they were.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{endpoint, network, TempDir};
use ipvlan::driver::{Config, Manager};
use ipvlan::ipam::Request;
use ipvlan::store::{append_line, remove_lines, NetworkRecord, ParentOrigin, StateDir};

const BIN: &str = env!("CARGO_BIN_EXE_ipvlan");
/// The uid of `nobody`: a user that is not us.
const NOBODY: u32 = 65534;
/// Longer than any of these commands takes on a loaded machine, far
/// shorter than a hang.
const PROMPTLY: Duration = Duration::from_secs(30);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Every path under `dir` with its kind, mode, owner and content, to show
/// a refusal changed nothing.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, u32, Vec<u8>)> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, (u32, u32, Vec<u8>)>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let content = if meta.file_type().is_symlink() {
                fs::read_link(&path)
                    .unwrap()
                    .into_os_string()
                    .into_encoded_bytes()
            } else if meta.is_file() {
                common::state_bytes(&path)
            } else {
                Vec::new()
            };
            out.insert(path.clone(), (meta.mode(), meta.uid(), content));
            if meta.is_dir() {
                walk(&path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, &mut out);
    out
}

/// A file outside the state directory that a planted link points at.
struct Victim {
    path: PathBuf,
    content: Vec<u8>,
}

impl Victim {
    fn new(dir: &Path, content: &str) -> Victim {
        let path = dir.join("victim");
        fs::write(&path, content).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        Victim {
            path,
            content: content.as_bytes().to_vec(),
        }
    }

    fn assert_untouched(&self) {
        assert_eq!(
            fs::read(&self.path).unwrap(),
            self.content,
            "the victim's content changed"
        );
        let mode = fs::metadata(&self.path).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o644, "the victim's mode changed");
    }
}

fn mode(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn chown(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), Some(uid)).unwrap();
}

/// A network whose parent is `lo`, an existing link: `rm` and `restore`
/// of it touch no kernel object.
fn plain_network(name: &str) -> NetworkRecord {
    NetworkRecord {
        parent: "lo".into(),
        parent_origin: ParentOrigin::Existing,
        parent_index: None,
        ..network(name, &["10.0.0.0/24"])
    }
}

fn network_file(root: &Path, net: &NetworkRecord) -> PathBuf {
    root.join("networks").join(format!("{}.json", net.id))
}

// ---------------------------------------------------------------------------
// Directories: owner, write bits, links.
// ---------------------------------------------------------------------------

/// A directory given as the state directory by mistake (`--state-dir
/// /var/lib`): one that holds other things and no store is refused, and
/// nothing is made in it; and in a store, `restore`'s cleanup removes no
/// temporary but the store's own. Before, the layout was made in any
/// directory, and the cleanup then removed every `.tmp-*` file of the
/// tree: Docker's writes in progress under `/var/lib/docker` among them.
#[test]
fn a_directory_that_holds_no_store_is_not_made_one_nor_cleaned() {
    common::privilege::require_root();
    let tmp = TempDir::new("trust-foreign");
    let root = tmp.path().join("lib");
    fs::create_dir_all(root.join("docker")).unwrap();
    chmod(&root, 0o700);
    fs::write(root.join("docker").join(".tmp-daemon.json"), "{}").unwrap();
    let before = snapshot(tmp.path());
    let err = StateDir::open(&root).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "refusing {}: it holds docker and no ipvlan state (no lock file); give an empty or new directory",
            root.display()
        )
    );
    assert_eq!(
        snapshot(tmp.path()),
        before,
        "the refusal changed something"
    );

    // A disk's mount point (its `lost+found`) is no foreign directory.
    let mount_point = tmp.path().join("disk");
    fs::create_dir_all(mount_point.join("lost+found")).unwrap();
    chmod(&mount_point, 0o700);
    StateDir::open(&mount_point).unwrap();
    assert!(mount_point.join("lock").exists());

    // A store's root: what is not the store's stays, temporaries included.
    let root = tmp.path().join("state");
    let state = StateDir::open(&root).unwrap();
    fs::create_dir(root.join("docker")).unwrap();
    chmod(&root.join("docker"), 0o700);
    let foreign = [
        root.join("docker").join(".tmp-daemon.json"),
        root.join(".tmp-notes"),
    ];
    for path in &foreign {
        fs::write(path, "{}").unwrap();
    }
    let ours = root.join(".tmp-host-id");
    fs::write(&ours, "x").unwrap();
    let locked = state.lock().unwrap();
    assert_eq!(locked.clean_temporaries().unwrap(), 1);
    assert!(!ours.exists(), "the store's own temporary stays");
    for path in &foreign {
        assert!(path.exists(), "{} went", path.display());
    }
    // A root the layout was made in before a crash took the lock: taken.
    drop(locked);
    fs::remove_file(root.join("lock")).unwrap();
    for path in foreign.iter().chain([&root.join("docker")]) {
        let _ = fs::remove_file(path);
        let _ = fs::remove_dir(path);
    }
    StateDir::open(&root).unwrap();
}

#[test]
fn a_state_directory_owned_by_another_user_is_refused_and_left_alone() {
    common::privilege::require_root();
    let tmp = TempDir::new("trust-owner");
    let root = tmp.path().join("state");
    fs::create_dir(&root).unwrap();
    chmod(&root, 0o700);
    chown(&root, NOBODY);
    let before = snapshot(tmp.path());
    let err = StateDir::open(&root).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "refusing {}: is owned by uid {NOBODY}, not by uid 0 that runs ipvlan",
            root.display()
        )
    );
    assert_eq!(
        snapshot(tmp.path()),
        before,
        "the refusal changed something"
    );

    // A subdirectory the same: nothing else is made before the refusal.
    chown(&root, 0);
    fs::create_dir(root.join("networks")).unwrap();
    chmod(&root.join("networks"), 0o700);
    chown(&root.join("networks"), NOBODY);
    let before = snapshot(tmp.path());
    let err = StateDir::open(&root).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "refusing {}/networks: is owned by uid {NOBODY}",
            root.display()
        )),
        "{err}"
    );
    assert_eq!(
        snapshot(tmp.path()),
        before,
        "the refusal changed something"
    );

    // The command line says the same and exits 1.
    let output = ipvlan(&root, &["network", "ls"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(
        text(&output.stderr),
        format!(
            "ipvlan: opening state directory {}: state directory: refusing {}/networks: is owned by uid {NOBODY}, not by uid 0 that runs ipvlan\n",
            root.display(),
            root.display()
        )
    );
    assert!(output.stdout.is_empty());
    assert_eq!(snapshot(tmp.path()), before, "ls changed something");
}

#[test]
fn directories_others_may_write_in_are_refused_and_left_alone() {
    common::privilege::require_root();
    let tmp = TempDir::new("trust-mode");
    let root = tmp.path().join("state");
    let net = network("n1", &["10.0.0.0/24"]);
    {
        let state = StateDir::open(&root).unwrap();
        let locked = state.lock().unwrap();
        locked.put_network(&net).unwrap();
        locked
            .allocate(&net, Request::Exact(ip("10.0.0.5")), "e1")
            .unwrap();
        locked
            .put_endpoint(&endpoint(&net, "e1", Some("10.0.0.5/24"), None))
            .unwrap();
    }
    let endpoints = root.join("endpoints").join(&net.id);
    let subnet = root.join("ipam").join(&net.id).join("10.0.0.0-24");
    // The root is checked by `open`; a subdirectory of a store whose
    // layout is made (it has its lock) where it is first used: here, the
    // network records listed, a union marker's directory looked into.
    let first_use = |dir: &Path| -> Result<(), ipvlan::store::StoreError> {
        let state = StateDir::open(&root)?;
        if dir == root.join("networks") {
            state.networks().map(drop)
        } else if dir != root {
            state.check_dir(&dir.join(&net.id)).map(drop)
        } else {
            Ok(())
        }
    };
    let refused = |dir: &Path, bad: u32, who: &str| {
        chmod(dir, bad);
        let before = snapshot(tmp.path());
        let err = first_use(dir).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "refusing {}: is writable by {who}; only its owner may write in it (chmod go-w)",
                dir.display()
            )
        );
        assert_eq!(snapshot(tmp.path()), before, "{}", dir.display());
        chmod(dir, 0o700);
    };
    refused(&root, 0o777, "group and others (mode 0777)");
    refused(&root, 0o770, "its group (mode 0770)");

    // Under a root that lets others in (a package's 0755, a group's
    // 0750), each subdirectory is checked the same way.
    for root_mode in [0o755, 0o750] {
        chmod(&root, root_mode);
        refused(&root.join("networks"), 0o707, "others (mode 0707)");
        refused(
            &root.join("hosts/unions"),
            0o777,
            "group and others (mode 0777)",
        );

        // Deeper directories are checked where they are used: an endpoint
        // directory before it is listed, an address directory before an
        // address is taken in it.
        let state = StateDir::open(&root).unwrap();
        chmod(&endpoints, 0o777);
        let err = state.endpoints_of(&net.id).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("refusing {}: is writable by", endpoints.display())),
            "{err}"
        );
        let err = state.endpoint(&net.id, "e1").unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("refusing {}: is writable by", endpoints.display())),
            "{err}"
        );
        chmod(&endpoints, 0o700);
        chmod(&subnet, 0o777);
        let before = snapshot(tmp.path());
        let locked = state.lock().unwrap();
        let err = locked
            .allocate(&net, Request::Exact(ip("10.0.0.6")), "e2")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("refusing {}: is writable by", subnet.display())),
            "{err}"
        );
        let err = locked
            .release(&net, ip("10.0.0.5"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!("refusing {}: is writable by", subnet.display())),
            "{err}"
        );
        drop(locked);
        assert_eq!(
            snapshot(tmp.path()),
            before,
            "a refused allocation changed something"
        );
        chmod(&subnet, 0o700);
    }

    // Under a private root (0700: group and others cannot even pass
    // through it) nobody else can reach a subdirectory, so its modes do
    // not matter to the commands, which use it as it is; a link or a
    // non-directory where one belongs is still refused where it is opened
    // (files below it are reached by their path from the root: only the
    // owner or root could have planted a link on the way).
    chmod(&root, 0o700);
    chmod(&root.join("networks"), 0o777);
    chmod(&endpoints, 0o777);
    chmod(&subnet, 0o777);
    let state = StateDir::open(&root).unwrap();
    assert_eq!(state.networks().unwrap().len(), 1);
    assert_eq!(state.endpoints_of(&net.id).unwrap().len(), 1);
    let locked = state.lock().unwrap();
    locked
        .allocate(&net, Request::Exact(ip("10.0.0.6")), "e2")
        .unwrap();
    assert!(locked.release(&net, ip("10.0.0.6")).unwrap());
    drop(locked);
    let unions = root.join("hosts/unions");
    fs::rename(&unions, tmp.path().join("unions")).unwrap();
    symlink(tmp.path().join("unions"), &unions).unwrap();
    let err = StateDir::open(&root)
        .unwrap()
        .check_dir(&unions)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "refusing {}: is a symbolic link; the state directory and its subdirectories must be real directories",
            unions.display()
        )
    );
    fs::remove_file(&unions).unwrap();
    fs::rename(tmp.path().join("unions"), &unions).unwrap();
    // A file where an address directory belongs: named, nothing taken.
    let moved = tmp.path().join("subnet");
    fs::rename(&subnet, &moved).unwrap();
    fs::write(&subnet, "").unwrap();
    let before = snapshot(tmp.path());
    let locked = state.lock().unwrap();
    let err = locked
        .allocate(&net, Request::Exact(ip("10.0.0.6")), "e2")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "refusing {}: is a regular file, not a directory",
            subnet.display()
        )
    );
    drop(locked);
    assert_eq!(snapshot(tmp.path()), before, "a refusal changed something");
    fs::remove_file(&subnet).unwrap();
    fs::rename(&moved, &subnet).unwrap();
    // `restore` still checks every directory of the tree, and names the
    // odd one.
    chmod(&root.join("networks"), 0o700);
    chmod(&endpoints, 0o700);
    let output = isolated(&root, tmp.path(), &["restore"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert_eq!(
        text(&output.stderr),
        format!(
            "ipvlan: restore: refusing {}: is writable by group and others (mode 0777); only its owner may write in it (chmod go-w)\n",
            subnet.display()
        ),
        "{output:?}"
    );
}

#[test]
fn a_symlinked_state_directory_is_refused_but_a_link_above_it_is_fine() {
    common::privilege::require_root();
    let tmp = TempDir::new("trust-link");
    let real = tmp.path().join("real");
    fs::create_dir(&real).unwrap();
    chmod(&real, 0o700);
    let link = tmp.path().join("state");
    symlink(&real, &link).unwrap();
    let before = snapshot(tmp.path());
    for given in [link.clone(), link.join("")] {
        let err = StateDir::open(&given).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "refusing {}: is a symbolic link; the state directory and its subdirectories must be real directories",
                link.display()
            ),
            "{}",
            given.display()
        );
    }
    assert_eq!(snapshot(tmp.path()), before);

    // A link higher up (a moved /var/lib) is not ours to judge.
    let above = tmp.path().join("lib");
    symlink(&real, &above).unwrap();
    let state = StateDir::open(above.join("ipvlan")).unwrap();
    state
        .lock()
        .unwrap()
        .put_network(&network("n1", &["10.0.0.0/24"]))
        .unwrap();
    assert!(real.join("ipvlan/networks").is_dir());

    // A subdirectory that is a link is refused like the root.
    let elsewhere = tmp.path().join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    chmod(&elsewhere, 0o700);
    let records = real.join("ipvlan/records/containers");
    fs::remove_dir(&records).unwrap();
    symlink(&elsewhere, &records).unwrap();
    // Refused where it is first used (the layout is trusted to be there,
    // not to be sound): here, the containers listed.
    let state = StateDir::open(above.join("ipvlan")).unwrap();
    let err = state.containers().unwrap_err().to_string();
    assert!(
        err.ends_with("records/containers: is a symbolic link; the state directory and its subdirectories must be real directories"),
        "{err}"
    );
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
}

// ---------------------------------------------------------------------------
// Files: never followed, never written through.
// ---------------------------------------------------------------------------

#[test]
fn a_symlinked_lock_is_refused_and_its_target_untouched() {
    let tmp = TempDir::new("trust-lock");
    let root = tmp.path().join("state");
    let state = StateDir::open(&root).unwrap();
    let victim = Victim::new(tmp.path(), "root:x:0:0:root:/root:/bin/sh\n");
    // `open` made the lock file with the layout; the link takes its place.
    fs::remove_file(root.join("lock")).unwrap();
    symlink(&victim.path, root.join("lock")).unwrap();
    let err = state.lock().unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "refusing {}/lock: is a symbolic link; state files are never followed",
            root.display()
        )
    );
    victim.assert_untouched();
    // A dangling one would have been created at its target.
    fs::remove_file(root.join("lock")).unwrap();
    let target = tmp.path().join("created-through-the-lock");
    symlink(&target, root.join("lock")).unwrap();
    assert!(state.lock().is_err());
    assert!(!target.exists(), "the lock was created through a link");
}

/// Address files and name hints are symbolic links whose target is an id,
/// read by `readlinkat` and never followed: a link whose target is a path
/// (planted to make us read through it) is damage, refused by name where
/// an owner must be known, ignored where a hint is only a hint, and what
/// it points to is neither read nor changed. Removing the address takes
/// the link away, not its target.
#[test]
fn a_linked_address_file_or_hint_naming_no_id_is_refused_not_followed() {
    let tmp = TempDir::new("trust-address-link");
    let root = tmp.path().join("state");
    let state = StateDir::open(&root).unwrap();
    let net = network("n1", &["10.0.0.0/24"]);
    {
        let locked = state.lock().unwrap();
        locked.put_network(&net).unwrap();
        locked
            .allocate(&net, Request::Exact(ip("10.0.0.5")), "e1")
            .unwrap();
        locked
            .put_endpoint(&endpoint(&net, "e1", Some("10.0.0.5/24"), None))
            .unwrap();
    }
    // Each victim holds what following the link would take for ours: an
    // owner id, the network's id.
    let owner_victim = Victim::new(tmp.path(), "e1\n");
    let other = tmp.path().join("other");
    fs::create_dir(&other).unwrap();
    let id_victim = Victim::new(&other, &format!("{}\n", net.id));

    let planted = root.join(format!("ipam/{}/10.0.0.0-24/10.0.0.9", net.id));
    symlink(&owner_victim.path, &planted).unwrap();
    let refused = format!(
        "refusing {}: is a symbolic link whose target is no endpoint id; state files are never followed",
        planted.display()
    );
    let err = state
        .address_owner(&net.id, &net.subnets[0], ip("10.0.0.9"))
        .unwrap_err();
    assert_eq!(err.to_string(), refused);
    // Like an empty address file: taken by no owner anyone can read, so
    // not listed, and freed as an orphan (by unlinking the link, never
    // its target), so damage from outside does not pin the network's
    // repairs.
    assert_eq!(
        state.addresses(&net).unwrap(),
        vec![(ip("10.0.0.5"), "e1".to_string())]
    );
    {
        let locked = state.lock().unwrap();
        assert!(locked
            .allocate(&net, Request::Exact(ip("10.0.0.9")), "e2")
            .is_err());
        assert_eq!(locked.release_orphans(&net).unwrap(), 1);
    }
    assert!(fs::symlink_metadata(&planted).is_err(), "the link went");
    owner_victim.assert_untouched();
    // A target longer than any id reads the same.
    let long = "x".repeat(300);
    symlink(&long, &planted).unwrap();
    assert_eq!(
        state
            .address_owner(&net.id, &net.subnets[0], ip("10.0.0.9"))
            .unwrap_err()
            .to_string(),
        refused
    );
    assert_eq!(state.lock().unwrap().release_orphans(&net).unwrap(), 1);
    assert!(
        fs::symlink_metadata(&planted).is_err(),
        "the long link went"
    );

    let hint = root.join("names/n1");
    assert_eq!(
        state.network_id_hint("n1").as_deref(),
        Some(net.id.as_str())
    );
    fs::remove_file(&hint).unwrap();
    symlink(&id_victim.path, &hint).unwrap();
    assert_eq!(state.network_id_hint("n1"), None);
    assert_eq!(state.network_by_name("n1"), None);
    id_victim.assert_untouched();
    // Writing the network puts the hint back as a link naming the id.
    state.lock().unwrap().put_network(&net).unwrap();
    assert_eq!(
        fs::read_link(&hint).unwrap().to_str(),
        Some(net.id.as_str())
    );
    id_victim.assert_untouched();
}

#[test]
fn a_symlinked_record_is_refused_not_read_and_replaced_not_followed() {
    let tmp = TempDir::new("trust-record");
    let root = tmp.path().join("state");
    let state = StateDir::open(&root).unwrap();
    let net = network("n1", &["10.0.0.0/24"]);
    // The victim holds a valid record: following the link would read it
    // as ours.
    let victim = Victim::new(
        tmp.path(),
        &format!("{}\n", net.to_json().to_pretty().unwrap()),
    );
    let path = network_file(&root, &net);
    symlink(&victim.path, &path).unwrap();
    let err = state.network(&net.id).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "refusing {}: is a symbolic link; state files are never followed",
            path.display()
        )
    );
    // Writing the record replaces the link itself.
    state.lock().unwrap().put_network(&net).unwrap();
    assert!(fs::symlink_metadata(&path).unwrap().is_file());
    victim.assert_untouched();
}

#[test]
fn symlinked_hosts_files_are_refused_and_their_targets_untouched() {
    let tmp = TempDir::new("trust-hosts");
    let root = tmp.path().join("state");
    let state = StateDir::open(&root).unwrap();
    let victim = Victim::new(tmp.path(), "127.0.0.1\tlocalhost\n10.0.0.2\tc1\n");
    let hosts = state.hosts_path(&"a".repeat(64));
    symlink(&victim.path, &hosts).unwrap();
    let expected = format!(
        "refusing {}: is a symbolic link; state files are never followed",
        hosts.display()
    );
    let err = append_line(&hosts, "10.0.0.3\tc2", 0o644).unwrap_err();
    assert_eq!(
        format!("refusing {}: {err}", hosts.display()),
        expected,
        "append"
    );
    let err = remove_lines(&hosts, |line| line.contains("c1")).unwrap_err();
    assert_eq!(
        format!("refusing {}: {err}", hosts.display()),
        expected,
        "remove"
    );
    victim.assert_untouched();
}

#[test]
fn a_symlinked_host_id_is_refused_not_read() {
    let tmp = TempDir::new("trust-hostid");
    let root = tmp.path().join("state");
    let state = StateDir::open(&root).unwrap();
    let victim = Victim::new(tmp.path(), "0123456789abcdef0123456789abcdef\n");
    symlink(&victim.path, root.join("host-id")).unwrap();
    let err = state
        .lock()
        .unwrap()
        .host_id(&tmp.path().join("no-machine-id"))
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("host-id: is a symbolic link; state files are never followed"),
        "{err}"
    );
    victim.assert_untouched();
}

/// `run -d` appends the command's output to `logs/<name>.log`: never to
/// what a link there names.
#[test]
fn a_symlinked_log_file_is_refused_and_its_target_untouched() {
    let scratch = Scratch::new("trust-log");
    let victim = Victim::new(scratch.dir(), "# /etc/crontab\n");
    scratch.in_fresh_netns(|config| {
        let manager = Manager::open(config.clone()).unwrap();
        manager.create_container(Some("c1")).unwrap();
        let log = manager.log_path("c1");
        fs::create_dir_all(log.parent().unwrap()).unwrap();
        symlink(&victim.path, &log).unwrap();
        let argv: Vec<std::ffi::OsString> = ["sh", "-c", "echo '* * * * * root evil'"]
            .iter()
            .map(Into::into)
            .collect();
        let result = manager.spawn_detached("c1", &argv);
        // Time for a command that did start to write.
        std::thread::sleep(Duration::from_millis(300));
        let err = result.unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "state directory: refusing {}: is a symbolic link; state files are never followed",
                log.display()
            )
        );
        victim.assert_untouched();
        manager.remove_container("c1", true).unwrap();
    });
    victim.assert_untouched();
}

// ---------------------------------------------------------------------------
// Modes whatever the umask.
// ---------------------------------------------------------------------------

/// Every directory 0700, logs and records 0600, hosts files 0644, under
/// umask 000 (nothing taken away) and 077 (everything but the owner's).
#[test]
fn modes_do_not_depend_on_the_umask() {
    const TEST: &str = "modes_do_not_depend_on_the_umask";
    const CHILD_ENV: &str = "IPVLAN_TEST_UMASK_SCRATCH";
    if let Ok(dir) = std::env::var(CHILD_ENV) {
        let scratch = Scratch::at(PathBuf::from(dir));
        scratch.in_fresh_netns(|config| {
            let manager = Manager::open(config.clone()).unwrap();
            manager.create_container(Some("c1")).unwrap();
            let argv = vec!["true".into()];
            manager.spawn_detached("c1", &argv).unwrap();
            let state = StateDir::open(&config.state_dir).unwrap();
            let net = network("n1", &["10.0.0.0/24"]);
            let locked = state.lock().unwrap();
            locked.put_network(&net).unwrap();
            locked
                .allocate(&net, Request::Exact(ip("10.0.0.2")), "c1")
                .unwrap();
            locked
                .put_endpoint(&endpoint(&net, "c1", Some("10.0.0.2/24"), None))
                .unwrap();
            append_line(&state.hosts_path(&net.id), "10.0.0.2\tc1", 0o644).unwrap();
            drop(locked);
            // Keep the container: its namespace goes with the scratch.
        });
        std::mem::forget(scratch);
        return;
    }
    common::privilege::require_root();
    for umask in ["000", "077"] {
        let scratch = Scratch::new(&format!("umask-{umask}"));
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "umask {umask} && exec \"$0\" --exact {TEST} --test-threads=1"
            ))
            .arg(std::env::current_exe().unwrap())
            .env(CHILD_ENV, scratch.dir())
            .output()
            .unwrap();
        assert!(out.status.success(), "umask {umask}: {out:?}");
        let root = scratch.config.state_dir.clone();
        let net = network("n1", &["10.0.0.0/24"]);
        let mut seen = 0;
        for (path, (mode, _, _)) in snapshot(&root) {
            let rel = path
                .strip_prefix(&root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let kind = fs::symlink_metadata(&path).unwrap().file_type();
            let expected = if kind.is_dir() {
                0o700
            } else if kind.is_symlink() {
                // Address files and name hints: links, whose mode Linux
                // fixes at 0777 and never checks (nothing reads through
                // them); their 0700 directory is what guards them.
                0o777
            } else if rel == format!("hosts/{}", net.id) {
                0o644
            } else {
                0o600
            };
            assert_eq!(mode & 0o7777, expected, "umask {umask}: {rel}");
            seen += 1;
        }
        assert_eq!(mode(&root), 0o700, "umask {umask}: the root");
        assert_eq!(mode(&root.join("logs/c1.log")), 0o600, "umask {umask}");
        assert!(seen > 15, "umask {umask}: only {seen} paths");
    }
}

// ---------------------------------------------------------------------------
// Damaged and hostile records in listings (items 2 and 11), through the CLI.
// ---------------------------------------------------------------------------

/// `network ls`, `ps` and `inspect` list what they can read and warn once
/// per damaged file (exit 0); `rm` of a good network works; nothing
/// damaged is changed.
#[test]
fn one_damaged_record_does_not_hide_the_others_from_ls_ps_inspect_and_rm() {
    common::privilege::require_root();
    let tmp = TempDir::new("damage-cli");
    let root = tmp.path().join("state");
    let good = plain_network("good");
    let spare = plain_network("spare");
    let bad = plain_network("bad");
    {
        let state = StateDir::open(&root).unwrap();
        let locked = state.lock().unwrap();
        for net in [&good, &spare, &bad] {
            locked.put_network(net).unwrap();
        }
        locked.put_container("c1").unwrap();
        locked.put_container("broken").unwrap();
        locked
            .allocate(&good, Request::Exact(ip("10.0.0.2")), "c1")
            .unwrap();
        let mut ep = endpoint(&good, "c1", Some("10.0.0.2/24"), None);
        ep.container = Some("c1".into());
        // Filed in the container's index, as an attach files it.
        let index = format!(
            "{{\"version\": 1, \"container\": \"c1\", \"endpoints\": {{\"{}\": \"c1\"}}}}",
            good.id
        );
        locked
            .put_record(
                "container-endpoints",
                "c1",
                &ipvlan::json::parse(&index).unwrap(),
            )
            .unwrap();
        locked.put_endpoint(&ep).unwrap();
        // An endpoint whose record will be damaged keeps its address.
        locked
            .allocate(&good, Request::Exact(ip("10.0.0.9")), "lost")
            .unwrap();
        locked
            .put_endpoint(&endpoint(&good, "lost", Some("10.0.0.9/24"), None))
            .unwrap();
    }
    let bad_network = network_file(&root, &bad);
    let bad_endpoint = root.join(format!("endpoints/{}/lost.json", good.id));
    let bad_container = root.join("records/containers/broken.json");
    fs::write(&bad_network, "{\"version\": 1, \"id\": ").unwrap();
    fs::write(&bad_endpoint, "not json\n").unwrap();
    fs::write(&bad_container, b"\xff\xfe").unwrap();
    let damaged = [&bad_network, &bad_endpoint, &bad_container];
    let evidence: Vec<Vec<u8>> = damaged.iter().map(|p| fs::read(p).unwrap()).collect();
    let warning = |path: &Path| {
        format!(
            "ipvlan: warning: damaged state file left as it is: {}: ",
            path.display()
        )
    };

    let output = ipvlan(&root, &["network", "ls"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(" good ") && stdout.contains(" spare "),
        "{stdout}"
    );
    assert!(!stdout.contains(" bad "), "{stdout}");
    // `ls` reads network records only: the damaged endpoint record is
    // named by `inspect` and `restore`, not here.
    let stderr = text(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&warning(&bad_network)), "{stderr}");
    assert!(!stderr.contains(&warning(&bad_endpoint)), "{stderr}");

    let output = ipvlan(&root, &["network", "ls", "-q"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(text(&output.stdout).lines().count(), 2);

    let output = ipvlan(&root, &["ps"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let stdout = text(&output.stdout);
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("c1 ") && l.contains("good") && l.contains("10.0.0.2")),
        "{stdout}"
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("{}not UTF-8 text\n", warning(&bad_container))),
        "{stderr}"
    );
    assert!(stderr.contains(&warning(&bad_network)), "{stderr}");

    let output = ipvlan(&root, &["network", "inspect", "good"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(text(&output.stdout).contains("\"Name\": \"good\""));

    // rm of another good network works; of the one holding the damaged
    // endpoint record it is refused, naming it (removing the network
    // would delete the record).
    let output = isolated(&root, tmp.path(), &["network", "rm", "spare"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(text(&output.stdout), "spare\n");
    assert!(!network_file(&root, &spare).exists());
    let output = isolated(&root, tmp.path(), &["network", "rm", "good"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("network good has active endpoints (c1)"),
        "{stderr}"
    );

    for (path, content) in damaged.iter().zip(&evidence) {
        assert_eq!(&fs::read(path).unwrap(), content, "{}", path.display());
    }
    assert!(
        common::present(&root.join(format!("ipam/{}/10.0.0.0-24/10.0.0.9", good.id))),
        "the damaged endpoint's address stays taken"
    );
}

/// The listing commands take no lock: with a writer holding the store's
/// lock (here, this test), `network ls`, `network inspect` and `ps`
/// answer at once instead of queueing behind it (and, when commands run
/// back to back, holding up the writers after them).
#[test]
fn listing_commands_do_not_wait_for_a_writer_holding_the_lock() {
    common::privilege::require_root();
    let tmp = TempDir::new("reader-lock");
    let root = tmp.path().join("state");
    let state = StateDir::open(&root).unwrap();
    let locked = state.lock().unwrap();
    let net = plain_network("good");
    locked.put_network(&net).unwrap();
    locked.put_container("c1").unwrap();
    // `locked` stays alive: the lock is held until the end of the test.
    for args in [
        &["network", "ls"][..],
        &["network", "inspect", "good"],
        &["ps"],
    ] {
        let mut child = Command::new(BIN)
            .args(args)
            .env("IPVLAN_STATE_DIR", &root)
            .env("IPVLAN_NETNS_DIR", tmp.path().join("netns"))
            .env("IPVLAN_ETC_NETNS_DIR", tmp.path().join("etc-netns"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let waited = child.try_wait().unwrap().is_none();
        if waited {
            let _ = child.kill();
        }
        let output = child.wait_with_output().unwrap();
        assert!(
            !waited,
            "ipvlan {} waited for the lock a writer holds: {output:?}",
            args.join(" ")
        );
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        assert!(text(&output.stdout).contains(match args[0] {
            "ps" => "c1",
            _ => "good",
        }));
    }
    drop(locked);
}

/// `restore` repairs what it can read, lists every damaged file in its
/// errors (exit 1), and leaves them and what they hold alone.
#[test]
fn restore_repairs_everything_else_and_lists_the_damaged_files() {
    common::privilege::require_root();
    let tmp = TempDir::new("damage-restore");
    let root = tmp.path().join("state");
    let good = plain_network("good");
    let bad = plain_network("bad");
    let creating = NetworkRecord {
        state: ipvlan::store::NetworkState::Creating,
        ..plain_network("half")
    };
    {
        let state = StateDir::open(&root).unwrap();
        let locked = state.lock().unwrap();
        for net in [&good, &bad, &creating] {
            locked.put_network(net).unwrap();
        }
        // Attached in a namespace that is gone (as after a reboot): to be
        // released, address and all.
        locked
            .allocate(&good, Request::Exact(ip("10.0.0.2")), "gone")
            .unwrap();
        let mut ep = endpoint(&good, "gone", Some("10.0.0.2/24"), None);
        ep.netns = tmp.path().join("netns/gone").display().to_string();
        ep.container = None;
        locked.put_endpoint(&ep).unwrap();
        locked
            .allocate(&good, Request::Exact(ip("10.0.0.9")), "lost")
            .unwrap();
        locked
            .put_endpoint(&endpoint(&good, "lost", Some("10.0.0.9/24"), None))
            .unwrap();
        locked
            .allocate(&bad, Request::Exact(ip("10.0.0.7")), "x")
            .unwrap();
        locked.put_container("gone").unwrap();
        locked.put_container("broken").unwrap();
    }
    let bad_network = network_file(&root, &bad);
    let bad_endpoint = root.join(format!("endpoints/{}/lost.json", good.id));
    let bad_container = root.join("records/containers/broken.json");
    fs::write(&bad_network, "{").unwrap();
    fs::write(&bad_endpoint, "[]").unwrap();
    fs::write(&bad_container, "{\"version\": 1, \"na").unwrap();
    let damaged = [&bad_network, &bad_endpoint, &bad_container];
    let evidence: Vec<Vec<u8>> = damaged.iter().map(|p| fs::read(p).unwrap()).collect();

    let output = isolated(&root, tmp.path(), &["restore"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stdout = text(&output.stdout);
    assert!(stdout.contains("1 endpoint released"), "{output:?}");
    assert!(
        stdout.contains("1 interrupted operation repaired"),
        "{stdout}"
    );
    let stderr = text(&output.stderr);
    for path in damaged {
        assert!(
            stderr.contains(&format!(
                "ipvlan: restore: damaged state file left as it is: {}: ",
                path.display()
            )),
            "{}: {stderr}",
            path.display()
        );
    }
    assert_eq!(stderr.lines().count(), 3, "{stderr}");

    // The rest was repaired.
    assert!(
        !network_file(&root, &creating).exists(),
        "interrupted create rolled back"
    );
    assert!(
        !root.join("records/containers/gone.json").exists(),
        "gone container forgotten"
    );
    assert!(!root
        .join(format!("endpoints/{}/gone.json", good.id))
        .exists());
    assert!(!common::present(
        &root.join(format!("ipam/{}/10.0.0.0-24/10.0.0.2", good.id))
    ));
    // The damaged files and what they hold are untouched.
    for (path, content) in damaged.iter().zip(&evidence) {
        assert_eq!(&fs::read(path).unwrap(), content, "{}", path.display());
    }
    assert!(common::present(
        &root.join(format!("ipam/{}/10.0.0.0-24/10.0.0.9", good.id))
    ));
    assert!(common::present(
        &root.join(format!("ipam/{}/10.0.0.0-24/10.0.0.7", bad.id))
    ));
}

/// A FIFO, a link to `/dev/zero` and a 2 MiB file where records belong:
/// `network ls` and `ps` return at once and report each, under an
/// address-space limit (an unbounded read would fail it, not the machine).
#[test]
fn fifos_device_links_and_oversized_records_are_damage_not_a_hang() {
    common::privilege::require_root();
    let tmp = TempDir::new("damage-hostile");
    let root = tmp.path().join("state");
    let good = plain_network("good");
    {
        let state = StateDir::open(&root).unwrap();
        let locked = state.lock().unwrap();
        locked.put_network(&good).unwrap();
        locked.put_container("c1").unwrap();
    }
    let networks = root.join("networks");
    let fifo = networks.join("a-fifo.json");
    let zero = networks.join("b-zero.json");
    let big = networks.join("c-big.json");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    symlink("/dev/zero", &zero).unwrap();
    let mut file = fs::File::create(&big).unwrap();
    file.write_all(b"{\"version\": 1, \"pad\": \"").unwrap();
    file.write_all(&vec![b'x'; 2 << 20]).unwrap();
    file.write_all(b"\"}").unwrap();
    drop(file);
    let container_fifo = root.join("records/containers/d-fifo.json");
    let status = Command::new("mkfifo")
        .arg(&container_fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let before = snapshot(&root);

    let output = ipvlan(&root, &["network", "ls"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(text(&output.stdout).contains(" good "));
    let stderr = text(&output.stderr);
    let warning = |path: &Path, reason: &str| {
        format!(
            "ipvlan: warning: damaged state file left as it is: {}: {reason}\n",
            path.display()
        )
    };
    assert_eq!(
        stderr,
        [
            warning(&fifo, "is a FIFO, not a regular file"),
            warning(&zero, "is a symbolic link; state files are never followed"),
            warning(
                &big,
                "is larger than 1048576 bytes, more than any state file"
            ),
        ]
        .concat()
    );
    let output = ipvlan(&root, &["ps"]);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(text(&output.stdout).lines().any(|l| l.starts_with("c1 ")));
    assert!(
        text(&output.stderr).contains(&warning(&container_fifo, "is a FIFO, not a regular file")),
        "{output:?}"
    );
    assert_eq!(
        snapshot(&root),
        before,
        "listing changed the state directory"
    );
}

// ---------------------------------------------------------------------------
// Helpers: the binary with a deadline, and scratch namespaces.
// ---------------------------------------------------------------------------

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Waits for `child` at most [`PROMPTLY`]; kills it and fails past that.
fn finish(mut child: Child, what: &str) -> Output {
    let deadline = Instant::now() + PROMPTLY;
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!("{what} did not finish within {PROMPTLY:?} and was killed: {output:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The binary on `state` (nothing else of the host: netns and /etc/netns
/// directories are beside it), at most 1 GiB of address space.
fn ipvlan(state: &Path, args: &[&str]) -> Output {
    let child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 1048576 && exec \"$0\" \"$@\"")
        .arg(BIN)
        .args(args)
        .env("IPVLAN_STATE_DIR", state)
        .env("IPVLAN_NETNS_DIR", state.with_file_name("netns"))
        .env("IPVLAN_ETC_NETNS_DIR", state.with_file_name("etc-netns"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child, &format!("ipvlan {}", args.join(" ")))
}

/// [`ipvlan`] in a private network and mount namespace, for the commands
/// that open netlink (`rm`, `restore`).
fn isolated(state: &Path, scratch: &Path, args: &[&str]) -> Output {
    let child = Command::new("unshare")
        .args(["-m", "-n", "--propagation", "private", "sh", "-c"])
        .arg("ulimit -v 1048576 && exec \"$0\" \"$@\"")
        .arg(BIN)
        .args(args)
        .env("IPVLAN_STATE_DIR", state)
        .env("IPVLAN_NETNS_DIR", scratch.join("netns"))
        .env("IPVLAN_ETC_NETNS_DIR", scratch.join("etc-netns"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("unshare (util-linux) is needed");
    finish(child, &format!("ipvlan {}", args.join(" ")))
}

/// A scratch directory with state, netns and /etc/netns directories, for
/// tests that make containers; removed (namespaces first) on drop.
struct Scratch {
    dir: PathBuf,
    config: Config,
    _tmp: Option<TempDir>,
}

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let tmp = TempDir::new(tag);
        let mut scratch = Scratch::at(tmp.path().to_path_buf());
        scratch._tmp = Some(tmp);
        scratch
    }

    fn at(dir: PathBuf) -> Scratch {
        Scratch {
            config: Config {
                state_dir: dir.join("state"),
                netns_dir: dir.join("netns"),
                etc_netns_dir: dir.join("etc-netns"),
            },
            dir,
            _tmp: None,
        }
    }

    fn dir(&self) -> &Path {
        &self.dir
    }

    fn in_fresh_netns(&self, f: impl FnOnce(&Config) + Send) {
        common::privilege::require_root();
        fs::create_dir_all(&self.config.netns_dir).unwrap();
        let config = self.config.clone();
        ipvlan::netns::run_in_new(|| f(&config)).expect("creating a network namespace");
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self._tmp.is_none() {
            return;
        }
        let run_dir = &self.config.netns_dir;
        for name in ipvlan::netns::list_named(run_dir).unwrap_or_default() {
            let _ = ipvlan::netns::delete_named(run_dir, &name);
        }
        if run_dir.exists() {
            let _ = ipvlan::netns::release_run_dir(run_dir);
        }
    }
}
