//! Name resolution: one hosts file per network, updated in place (so a
//! bind mount of it over `/etc/hosts` sees later changes), and
//! `/etc/netns/NAME/hosts` pointing at the file a container should see.
//!
//! A container on one network points straight at that network's file; a
//! container on several points at a union file of its own, regenerated
//! whenever one of its networks changes.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::netns_identity::ContainerIndex;
use super::Error;
use crate::store::{EndpointRecord, EndpointState, Locked, NetworkRecord};

/// First lines of every hosts file we write.
pub(crate) const HEADER: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";

/// Mode of every hosts file: processes in containers read them, whatever
/// ipvlan's umask was.
const HOSTS_MODE: u32 = 0o644;

fn io(what: &str, path: &Path, error: std::io::Error) -> Error {
    Error::io(format!("{what} {}", path.display()), &error)
}

/// Creates a network's hosts file with the header if it does not exist.
pub(crate) fn ensure_file(path: &Path) -> Result<(), Error> {
    if path.exists() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(HOSTS_MODE)
        .open(path)
        .map_err(|e| io("creating", path, e))?;
    // Processes in containers read it whatever ipvlan's umask was.
    file.set_permissions(fs::Permissions::from_mode(HOSTS_MODE))
        .map_err(|e| io("setting the mode of", path, e))?;
    file.write_all(HEADER.as_bytes())
        .map_err(|e| io("writing", path, e))
}

/// Appends one `ADDR\tNAME` line per address (one write, `O_APPEND`).
pub(crate) fn append(path: &Path, name: &str, addresses: &[IpAddr]) -> Result<(), Error> {
    if addresses.is_empty() {
        return Ok(());
    }
    ensure_file(path)?;
    let text: Vec<String> = addresses
        .iter()
        .map(|addr| format!("{addr}\t{name}"))
        .collect();
    crate::store::append_line(path, &text.join("\n"), HOSTS_MODE)
        .map_err(|e| io("appending to", path, e))
}

/// Removes every line naming `name` in place (same inode, so mounts of it
/// stay valid), never exposing a partial line (see
/// [`crate::store::remove_lines`]).
pub(crate) fn remove(path: &Path, name: &str) -> Result<(), Error> {
    crate::store::remove_lines(path, |line| names_host(line, name))
        .map(drop)
        .map_err(|e| io("rewriting", path, e))
}

fn names_host(line: &str, name: &str) -> bool {
    if HEADER.lines().any(|header| header == line) {
        return false;
    }
    let mut fields = line.split_whitespace();
    fields.next().is_some_and(|addr| !addr.starts_with('#')) && fields.any(|field| field == name)
}

/// Makes `target` the union of the network files `sources` (one header,
/// then every host line), edited in place like a network file: it may be
/// bind-mounted into running processes, which must see later changes.
/// Lines no source has any more are blanked, new ones appended in one
/// write.
pub(crate) fn write_union(target: &Path, sources: &[PathBuf]) -> Result<(), Error> {
    let mut wanted: Vec<String> = Vec::new();
    for source in sources {
        let content = match fs::read_to_string(source) {
            Ok(content) => content,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io("reading", source, e)),
        };
        wanted.extend(
            content
                .lines()
                .filter(|l| !l.trim().is_empty() && !HEADER.lines().any(|h| h == *l))
                .map(str::to_string),
        );
    }
    if let Some(dir) = target.parent() {
        fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(HOSTS_MODE)
        .open(target)
        .map_err(|e| io("opening", target, e))?;
    file.set_permissions(fs::Permissions::from_mode(HOSTS_MODE))
        .map_err(|e| io("setting the mode of", target, e))?;
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|e| io("reading", target, e))?;
    if text.is_empty() {
        let mut all = String::from(HEADER);
        for line in &wanted {
            all.push_str(line);
            all.push('\n');
        }
        return file
            .write_all(all.as_bytes())
            .map_err(|e| io("writing", target, e));
    }
    // Lines present and still wanted are matched off one for one; the
    // header stays; the rest goes.
    let mut missing = wanted;
    crate::store::blank_lines(&mut file, &text, |line| {
        if HEADER.lines().any(|h| h == line) {
            return false;
        }
        match missing.iter().position(|w| w == line) {
            Some(at) => {
                missing.remove(at);
                false
            }
            None => true,
        }
    })
    .map_err(|e| io("rewriting", target, e))?;
    if missing.is_empty() {
        return Ok(());
    }
    let appended: String = missing.iter().map(|line| format!("{line}\n")).collect();
    let mut append = OpenOptions::new()
        .append(true)
        .open(target)
        .map_err(|e| io("opening", target, e))?;
    append
        .write_all(appended.as_bytes())
        .map_err(|e| io("appending to", target, e))
}

/// Points `ETC_NETNS/NAME/hosts` at `target` (replaced atomically).
pub(crate) fn link(etc_netns_dir: &Path, container: &str, target: &Path) -> Result<(), Error> {
    let dir = etc_netns_dir.join(container);
    fs::create_dir_all(&dir).map_err(|e| io("creating", &dir, e))?;
    let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o755));
    let hosts = dir.join("hosts");
    if fs::read_link(&hosts).is_ok_and(|current| current == target) {
        return Ok(());
    }
    let temporary = dir.join(".hosts.tmp");
    let _ = fs::remove_file(&temporary);
    std::os::unix::fs::symlink(target, &temporary).map_err(|e| io("linking", &temporary, e))?;
    fs::rename(&temporary, &hosts).map_err(|e| io("linking", &hosts, e))
}

/// Removes `ETC_NETNS/NAME/hosts` (if it is ours: a symlink) and the
/// directory when it is left empty.
pub(crate) fn unlink(etc_netns_dir: &Path, container: &str) -> Result<(), Error> {
    let dir = etc_netns_dir.join(container);
    let hosts = dir.join("hosts");
    match fs::symlink_metadata(&hosts) {
        Ok(meta) if meta.file_type().is_symlink() => {
            fs::remove_file(&hosts).map_err(|e| io("removing", &hosts, e))?;
        }
        _ => {}
    }
    let _ = fs::remove_dir(&dir);
    Ok(())
}

/// The file `/etc/netns/NAME/hosts` resolves to, for mounting it.
pub(crate) fn resolve(etc_netns_dir: &Path, container: &str) -> Option<PathBuf> {
    let hosts = etc_netns_dir.join(container).join("hosts");
    fs::canonicalize(hosts).ok()
}

/// The name views of one operation: the state under its lock, every
/// network, and where `/etc/netns` is.
pub(crate) struct Names<'a> {
    pub state: &'a Locked<'a>,
    pub networks: &'a [NetworkRecord],
    pub etc_netns_dir: &'a Path,
}

impl Names<'_> {
    /// Appends the endpoint's names to its network's hosts file and points
    /// the container's `/etc/netns/NAME/hosts` at what it should see.
    pub(crate) fn add(
        &self,
        network: &NetworkRecord,
        endpoint: &EndpointRecord,
    ) -> Result<(), Error> {
        let file = self.state.hosts_path(&network.id);
        ensure_file(&file)?;
        if let Some(container) = &endpoint.container {
            let addresses: Vec<IpAddr> = endpoint
                .ipv4
                .iter()
                .chain(endpoint.ipv6.iter())
                .map(|net| net.addr())
                .collect();
            append(&file, container, &addresses)?;
            self.refresh_container(container)?;
        }
        self.refresh_network(network)
    }

    /// Takes the endpoint's names out of its network's file and the views.
    pub(crate) fn remove(
        &self,
        network: &NetworkRecord,
        endpoint: &EndpointRecord,
    ) -> Result<(), Error> {
        if let Some(container) = &endpoint.container {
            remove(&self.state.hosts_path(&network.id), container)?;
        }
        self.refresh_network(network)?;
        if let Some(container) = &endpoint.container {
            // The container itself may have left its last network.
            self.refresh_container(container)?;
        }
        Ok(())
    }

    /// Regenerates the union view of every container on `network` that is
    /// on several networks (they are listed as markers, so this costs
    /// nothing for single-network containers).
    fn refresh_network(&self, network: &NetworkRecord) -> Result<(), Error> {
        let markers = self.state.union_markers_dir(&network.id);
        let Ok(entries) = fs::read_dir(&markers) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let container = entry.file_name().to_string_lossy().into_owned();
            self.refresh_container(&container)?;
        }
        Ok(())
    }

    /// Points `/etc/netns/NAME/hosts` at what the container should see: its
    /// network's file, or a union file when it is on several.
    pub(crate) fn refresh_container(&self, container: &str) -> Result<(), Error> {
        let state = self.state;
        let mut attached = Vec::new();
        let index = ContainerIndex::read(state, container)?;
        for network in self.networks {
            if let Some(endpoint) = index.endpoint(state, &network.id)? {
                if endpoint.state != EndpointState::Detaching {
                    attached.push(network);
                }
            }
        }
        for network in self.networks {
            let markers = state.union_markers_dir(&network.id);
            let marker = markers.join(container);
            if attached.len() > 1 && attached.iter().any(|n| n.id == network.id) {
                if !marker.exists() {
                    fs::create_dir_all(&markers)
                        .and_then(|_| fs::write(&marker, b""))
                        .map_err(|e| io("writing", &marker, e))?;
                }
            } else {
                let _ = fs::remove_file(&marker);
            }
        }
        let files: Vec<PathBuf> = attached.iter().map(|n| state.hosts_path(&n.id)).collect();
        let union = state.union_hosts_path(container);
        match files.as_slice() {
            [] => {
                let _ = fs::remove_file(&union);
                unlink(self.etc_netns_dir, container)
            }
            [only] => {
                let _ = fs::remove_file(&union);
                link(self.etc_netns_dir, container, only)
            }
            _ => {
                write_union(&union, &files)?;
                link(self.etc_netns_dir, container, &union)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "ipvlan-hosts-{}-{}-{name}",
            std::process::id(),
            std::thread::current()
                .name()
                .unwrap_or("t")
                .replace(':', "_")
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn append_and_remove_keep_the_inode() {
        use std::os::unix::fs::MetadataExt;
        let dir = scratch("inode");
        let file = dir.join("net");
        append(&file, "ipv1", &["192.168.1.2".parse().unwrap()]).unwrap();
        let inode = fs::metadata(&file).unwrap().ino();
        append(
            &file,
            "ipv2",
            &[
                "192.168.1.3".parse().unwrap(),
                "2001:db8::3".parse().unwrap(),
            ],
        )
        .unwrap();
        remove(&file, "ipv1").unwrap();
        // Blanked in place, never shifted: a reader meanwhile sees whole lines.
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            format!(
                "{HEADER}{}\n192.168.1.3\tipv2\n2001:db8::3\tipv2\n",
                " ".repeat("192.168.1.2\tipv1".len())
            )
        );
        assert_eq!(fs::metadata(&file).unwrap().ino(), inode);
        // The header's names are never ours to remove.
        remove(&file, "localhost").unwrap();
        assert!(fs::read_to_string(&file).unwrap().starts_with(HEADER));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn union_and_links() {
        let dir = scratch("union");
        let a = dir.join("a");
        let b = dir.join("b");
        append(&a, "x", &["10.0.0.2".parse().unwrap()]).unwrap();
        append(&b, "y", &["10.1.0.2".parse().unwrap()]).unwrap();
        let union = dir.join("union");
        write_union(&union, &[a.clone(), b.clone()]).unwrap();
        assert_eq!(
            fs::read_to_string(&union).unwrap(),
            format!("{HEADER}10.0.0.2\tx\n10.1.0.2\ty\n")
        );
        // Later changes edit the union in place: same inode, the gone line
        // blanked to its length, the new one appended.
        use std::os::unix::fs::MetadataExt;
        let inode = fs::metadata(&union).unwrap().ino();
        remove(&a, "x").unwrap();
        append(&b, "z", &["10.1.0.3".parse().unwrap()]).unwrap();
        write_union(&union, &[a.clone(), b.clone()]).unwrap();
        assert_eq!(
            fs::read_to_string(&union).unwrap(),
            format!("{HEADER}          \n10.1.0.2\ty\n10.1.0.3\tz\n")
        );
        assert_eq!(fs::metadata(&union).unwrap().ino(), inode);
        let etc = dir.join("etc");
        link(&etc, "c1", &a).unwrap();
        assert_eq!(resolve(&etc, "c1").unwrap(), fs::canonicalize(&a).unwrap());
        link(&etc, "c1", &union).unwrap();
        assert_eq!(fs::read_link(etc.join("c1/hosts")).unwrap(), union);
        unlink(&etc, "c1").unwrap();
        assert!(!etc.join("c1").exists());
        fs::remove_dir_all(dir).unwrap();
    }
}
