//! Helpers shared by the integration tests: scratch directories and
//! records for the store tests, and the root precondition
//! ([`privilege::require_root`]) of the tests that work on the kernel.
#![allow(dead_code)]

pub mod privilege;
pub mod pty;

use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ipnet::IpNet;
use ipvlan::ipam::{fill_default_gateways, match_subnets};
use ipvlan::json;
use ipvlan::rtnl::{IpvlanFlag, IpvlanMode};
use ipvlan::store::{
    EndpointRecord, EndpointState, NetworkRecord, NetworkState, ParentOrigin, Timestamp,
};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        TempDir::under(std::env::temp_dir(), tag)
    }

    /// On tmpfs (`/dev/shm`) when there is one: for tests of logic that
    /// repeat thousands of writes, where fsync on a busy disk would make
    /// them take minutes without testing anything more.
    pub fn in_memory(tag: &str) -> TempDir {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() {
            TempDir::under(shm.to_path_buf(), tag)
        } else {
            TempDir::new(tag)
        }
    }

    fn under(base: PathBuf, tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = base.join(format!("ipvlan-test-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        // The store refuses a state directory others may write in, and
        // some tests open one right here: not up to the tester's umask.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl std::ops::Deref for TempDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A network record with the given subnets and default gateways; the ID
/// is derived from the name so tests are reproducible.
pub fn network(name: &str, subnets: &[&str]) -> NetworkRecord {
    let nets: Vec<IpNet> = subnets.iter().map(|s| s.parse().unwrap()).collect();
    let mut specs = match_subnets(&nets, &[], &[], &[]).unwrap();
    fill_default_gateways(&mut specs);
    let id: String = format!(
        "{:0<64}",
        name.bytes().map(|b| format!("{b:02x}")).collect::<String>()
    )
    .chars()
    .take(64)
    .collect();
    NetworkRecord {
        id,
        name: name.to_string(),
        driver: "ipvlan".into(),
        mode: IpvlanMode::L2,
        flag: IpvlanFlag::Bridge,
        parent: "eth0.20".into(),
        parent_origin: ParentOrigin::VlanCreated {
            link: "eth0".into(),
            vlan_id: 20,
        },
        parent_index: Some(1 << 21),
        internal: false,
        ipv6: subnets.iter().any(|s| s.contains(':')),
        mtu: Some(1500),
        subnets: specs,
        created: Timestamp::now(),
        options: vec![("parent".into(), "eth0.20".into())],
        state: NetworkState::Created,
    }
}

/// [`network`] with the id `id`, on the host's `lo`, a parent it did not
/// make: nothing of the kernel's is asked to remove it.
pub fn network_on_lo(id: &str, name: &str, subnet: &str) -> NetworkRecord {
    NetworkRecord {
        id: id.to_string(),
        parent: "lo".into(),
        parent_origin: ParentOrigin::Existing,
        parent_index: None,
        mtu: None,
        options: vec![("parent".into(), "lo".into())],
        ..network(name, &[subnet])
    }
}

pub fn endpoint(
    net: &NetworkRecord,
    id: &str,
    v4: Option<&str>,
    v6: Option<&str>,
) -> EndpointRecord {
    EndpointRecord {
        id: id.to_string(),
        network_id: net.id.clone(),
        container: Some(format!("c-{id}")),
        netns: format!("/run/netns/c-{id}"),
        ifname: "eth0".into(),
        mac: Some("02:42:ac:11:00:02".into()),
        ipv4: v4.map(|s| s.parse().unwrap()),
        ipv6: v6.map(|s| s.parse().unwrap()),
        state: EndpointState::Attached,
        created: Timestamp::now(),
        netns_id: None,
        ifindex: None,
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Every file under `root`, recursively.
pub fn all_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    walk(root, &mut out);
    out.sort();
    out
}

/// What a state entry names: a file's text, or a symbolic link's target
/// followed by a newline (address files and name hints are links whose
/// target is an id; older versions wrote files holding the id and a
/// newline), never following the link.
pub fn entry_text(path: &Path) -> std::io::Result<String> {
    if fs::symlink_metadata(path)?.file_type().is_symlink() {
        let target = fs::read_link(path)?;
        return Ok(format!("{}\n", target.display()));
    }
    fs::read_to_string(path)
}

/// A state entry's content, never following a link: a file's bytes, or
/// `-> ` and a symbolic link's target (see [`entry_text`]).
pub fn entry_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    if fs::symlink_metadata(path)?.file_type().is_symlink() {
        let mut content = b"-> ".to_vec();
        content.extend(fs::read_link(path)?.into_os_string().into_encoded_bytes());
        return Ok(content);
    }
    fs::read(path)
}

/// Whether `path` names an entry, a link included (`Path::exists`
/// follows links: an address file's link names an id, not a path).
pub fn present(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Puts a regular file holding `contents` at `path`, replacing whatever
/// entry is there without following it: how a store of an older version
/// (address files and name hints were regular files) or a power cut's
/// leftover of one looks.
pub fn plant(path: &Path, contents: impl AsRef<[u8]>) {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => panic!("{}: {e}", path.display()),
        _ => {}
    }
    fs::write(path, contents).unwrap();
}

/// Address files under `root/ipam` as (address, owner).
pub fn address_files(root: &Path) -> Vec<(IpAddr, String)> {
    all_files(&root.join("ipam"))
        .into_iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            let addr: IpAddr = name.parse().ok()?;
            Some((addr, entry_text(&p).unwrap().trim().to_string()))
        })
        .collect()
}

/// Panics unless every state file under `root` (temporaries aside) is
/// complete and well formed.
/// Every network's directory of endpoints and of addresses in the store
/// at `state` belongs to a network that has a record: where a test finds
/// no record by a name and reads "nothing left" from that, what a network
/// gone from the records left behind would go unseen.
pub fn assert_no_network_directory_without_its_record(state: &Path) {
    let networks = state.join("networks");
    for kind in ["endpoints", "ipam"] {
        let Ok(entries) = fs::read_dir(state.join(kind)) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            if !entry.file_type().unwrap().is_dir() {
                continue;
            }
            let id = entry.file_name().to_string_lossy().into_owned();
            assert!(
                present(&networks.join(format!("{id}.json"))),
                "{kind}/{id} is left in the store without its network's record: {:?}",
                all_files(&entry.path())
            );
        }
    }
}

pub fn check_every_file_parses(root: &Path) {
    for path in all_files(root) {
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if name.starts_with(".tmp-") {
            continue;
        }
        let rel = path.strip_prefix(root).unwrap();
        if rel == Path::new("lock") {
            // Its format mark, then the commit log: not text.
            continue;
        }
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_str()
            .unwrap()
            .to_string();
        let text = entry_text(&path).unwrap();
        match top.as_str() {
            "networks" => {
                let v = json::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                NetworkRecord::from_json(&v).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            "endpoints" => {
                let v = json::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                EndpointRecord::from_json(&v).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            "records" => {
                json::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            "ipam" if name == "cursor" => {
                text.trim()
                    .parse::<IpAddr>()
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            }
            "ipam" => {
                name.parse::<IpAddr>()
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                // A link (what this version makes) must name an owner id;
                // an older version's file must hold one whole line.
                let is_link = fs::symlink_metadata(&path)
                    .unwrap()
                    .file_type()
                    .is_symlink();
                let owner = text.trim_end_matches('\n');
                assert!(
                    if is_link {
                        ipvlan::store::is_valid_name(owner)
                    } else {
                        !owner.trim().is_empty() && text.ends_with('\n')
                    },
                    "{}: incomplete owner {text:?}",
                    path.display()
                );
            }
            _ => {}
        }
    }
}

/// The bytes of the state file `path` that say what the state is: all of
/// them, but for the store's lock, whose first page is its format mark and
/// the rest its commit log, which records commits (a refused command
/// commits the undoing of its own writes), not state.
pub fn state_bytes(path: &Path) -> Vec<u8> {
    let mut bytes = fs::read(path).unwrap_or_default();
    if path.file_name().is_some_and(|name| name == "lock") {
        bytes.truncate(4096);
    }
    bytes
}

/// Every file under `dir` with its content (directories with none): what a
/// refusal must leave exactly as it was.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, out: &mut std::collections::BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
                out.insert(path.clone(), entry_bytes(&path).unwrap_or_default());
            } else if path.is_dir() {
                out.insert(path.clone(), Vec::new());
                walk(&path, out);
            } else {
                out.insert(path.clone(), state_bytes(&path));
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, &mut out);
    out
}

/// Shell lines that make `/etc` (in the script's private mount namespace)
/// look like this machine's without `/etc/hosts`, as on an initramfs or a
/// minimal busybox system: a tmpfs (also at `$T/etc-view`) holding every
/// other entry of `/etc`, bind-mounted.
pub const HIDE_ETC_HOSTS: &str = "mkdir \"$T/etc-view\"\n\
     mount -t tmpfs tmpfs \"$T/etc-view\"\n\
     for entry in /etc/* /etc/.[!.]*; do\n\
       name=${entry#/etc/}\n\
       [ \"$name\" = hosts ] && continue\n\
       if [ -L \"$entry\" ]; then ln -s \"$(readlink \"$entry\")\" \"$T/etc-view/$name\"\n\
       elif [ -d \"$entry\" ]; then mkdir \"$T/etc-view/$name\"; mount -o rbind \"$entry\" \"$T/etc-view/$name\"\n\
       elif [ -e \"$entry\" ]; then : > \"$T/etc-view/$name\"; mount -o bind \"$entry\" \"$T/etc-view/$name\"\n\
       fi\n\
     done\n\
     mount -o rbind \"$T/etc-view\" /etc\n";

/// The addresses a CNI result lists (`ips[].address`), in its order.
pub fn result_addresses(result: &json::Value) -> Vec<&str> {
    result
        .get("ips")
        .and_then(json::Value::as_array)
        .expect("a result with ips")
        .iter()
        .filter_map(|ip| ip.get("address").and_then(json::Value::as_str))
        .collect()
}

/// A fake CNI plugin `name` in the `CNI_PATH` directory `dir`: a shell
/// script running `script`; its path.
pub fn fake_plugin(dir: &Path, name: &str, script: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Whether a CNI DEL's stderr says it took down an attachment whose
/// record could not be read, with `leases` addresses released.
pub fn says_damaged_attachment_taken_down(stderr: &str, leases: usize) -> bool {
    stderr.contains("the attachment's record could not be read")
        && stderr.contains(&format!("with the {leases} address(es) leased to it"))
}

/// The record file of container `name` in the state directory `state_dir`.
pub fn container_record(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join(format!("records/containers/{name}.json"))
}

/// Rewrites the container or endpoint record at `path` as a kernel without
/// namespace cookies (before 5.14) writes it: no `netns_cookie`; with
/// `inode`, the namespace's inode recorded as that one (the number such a
/// kernel hands out again to the next namespace).
pub fn as_a_kernel_without_cookies(path: &Path, inode: Option<u64>) {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut record = json::parse(&text).unwrap();
    let json::Value::Object(members) = &mut record else {
        panic!("{}: a record is an object", path.display())
    };
    for (key, value) in members.iter_mut() {
        match (key.as_str(), inode) {
            ("netns_cookie", _) => *value = json::Value::Null,
            ("netns_ino", Some(inode)) => *value = json::Value::from(inode),
            _ => {}
        }
    }
    fs::write(path, record.to_compact().unwrap()).unwrap();
}
