//! The guest's root file system, assembled in memory and written as a cpio archive.
//!
//! Paths follow Debian's merged-/usr layout: `bin`, `sbin`, `lib` and `lib64` are
//! symlinks into `usr/`, so a host path such as `/lib/x86_64-linux-gnu/libc.so.6`
//! (as `ldd` prints it) lands in the same place inside the guest.

pub mod cpio;

use crate::Result;
use cpio::{CpioWriter, EntryKind};
use std::collections::BTreeMap;
use std::fs;
use std::io::BufWriter;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Clone)]
enum Node {
    Directory,
    HostFile { source: PathBuf, perm: u32 },
    Bytes { data: Vec<u8>, perm: u32 },
    Symlink(String),
    CharDevice { major: u32, minor: u32 },
}

#[derive(Clone)]
pub struct Tree {
    nodes: BTreeMap<String, Node>,
}

/// Top-level names that are symlinks into `/usr` in the guest.
const MERGED_USR: [(&str, &str); 4] = [
    ("bin", "usr/bin"),
    ("sbin", "usr/sbin"),
    ("lib", "usr/lib"),
    ("lib64", "usr/lib64"),
];

impl Tree {
    pub fn new() -> Self {
        let mut tree = Tree {
            nodes: BTreeMap::new(),
        };
        for (link, target) in MERGED_USR {
            tree.dir(target);
            tree.nodes
                .insert(link.to_string(), Node::Symlink(target.to_string()));
        }
        for dir in [
            "proc", "sys", "dev", "run", "tmp", "root", "etc", "var", "mnt",
        ] {
            tree.dir(dir);
        }
        tree.nodes
            .insert("var/run".into(), Node::Symlink("../run".into()));
        tree.nodes.insert(
            "dev/console".into(),
            Node::CharDevice { major: 5, minor: 1 },
        );
        tree.nodes
            .insert("dev/null".into(), Node::CharDevice { major: 1, minor: 3 });
        tree
    }

    /// Maps an absolute or relative guest path to its archive name, resolving the
    /// merged-/usr symlinks so no entry is ever placed below a symlink.
    fn canonical(path: &str) -> String {
        let relative = path.trim_start_matches('/');
        for (link, target) in MERGED_USR {
            if let Some(rest) = relative
                .strip_prefix(link)
                .and_then(|r| r.strip_prefix('/'))
            {
                return format!("{target}/{rest}");
            }
        }
        relative.to_string()
    }

    fn insert(&mut self, path: &str, node: Node) -> String {
        let name = Self::canonical(path);
        let mut parent = Path::new(&name).parent();
        while let Some(dir) = parent.filter(|p| !p.as_os_str().is_empty()) {
            let dir_name = dir.to_string_lossy().into_owned();
            self.nodes.entry(dir_name).or_insert(Node::Directory);
            parent = dir.parent();
        }
        self.nodes.insert(name.clone(), node);
        name
    }

    pub fn contains(&self, path: &str) -> bool {
        self.nodes.contains_key(&Self::canonical(path))
    }

    pub fn dir(&mut self, path: &str) {
        if !self.contains(path) {
            self.insert(path, Node::Directory);
        }
    }

    pub fn bytes(&mut self, path: &str, perm: u32, data: impl Into<Vec<u8>>) {
        self.insert(
            path,
            Node::Bytes {
                data: data.into(),
                perm,
            },
        );
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        self.insert(path, Node::Symlink(target.to_string()));
    }

    /// Copies a host file (following symlinks) to `guest_path`, keeping its mode.
    pub fn host_file(&mut self, guest_path: &str, source: &Path) -> Result {
        let meta = fs::metadata(source).map_err(|e| format!("{}: {e}", source.display()))?;
        if !meta.is_file() {
            return Err(format!("{}: not a regular file", source.display()).into());
        }
        let perm = meta.permissions().mode() & 0o7777;
        self.insert(
            guest_path,
            Node::HostFile {
                source: source.to_path_buf(),
                perm,
            },
        );
        Ok(())
    }

    /// Copies every regular file below the host directory `source` to `guest_dir`.
    pub fn host_dir(&mut self, guest_dir: &str, source: &Path) -> Result {
        let mut entries: Vec<_> = fs::read_dir(source)?.collect::<std::io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let guest = format!(
                "{}/{}",
                guest_dir.trim_end_matches('/'),
                entry.file_name().to_string_lossy()
            );
            let path = entry.path();
            if path.is_dir() {
                self.host_dir(&guest, &path)?;
            } else if path.is_file() {
                self.host_file(&guest, &path)?;
            }
        }
        Ok(())
    }

    /// Copies a dynamically linked host executable to the same path in the guest,
    /// with every shared library `ldd` lists and the dynamic loader.
    pub fn dynamic_executable(&mut self, path: &Path) -> Result {
        self.host_file(&path.to_string_lossy(), path)?;
        for library in shared_libraries(path)? {
            if !self.contains(&library.to_string_lossy()) {
                self.host_file(&library.to_string_lossy(), &library)?;
            }
        }
        Ok(())
    }

    /// Installs a static busybox as `/usr/bin/busybox` and links its applets, except
    /// where a real program already sits and except `ip`: busybox's `ip` lacks
    /// `type ipvlan`, so `ip` must always mean iproute2.
    pub fn busybox(&mut self, busybox: &Path) -> Result {
        self.host_file("/usr/bin/busybox", busybox)?;
        let out = Command::new(busybox).arg("--list-full").output()?;
        if !out.status.success() {
            return Err(format!("{} --list-full failed", busybox.display()).into());
        }
        for applet in String::from_utf8_lossy(&out.stdout).lines() {
            let applet = applet.trim();
            if applet.is_empty()
                || applet.ends_with("/ip")
                || applet.ends_with("/busybox")
                || self.contains(applet)
            {
                continue;
            }
            self.symlink(applet, "/usr/bin/busybox");
        }
        Ok(())
    }

    /// Adds every entry of `other`, replacing entries of the same path
    /// (a job's files over the harness's).
    pub fn merge(&mut self, other: &Tree) {
        for (name, node) in &other.nodes {
            self.insert(name, node.clone());
        }
    }

    /// Writes the archive; returns its size in bytes.
    pub fn write(&self, out: &Path) -> Result<u64> {
        // Per-process name: a concurrent run must not write into our half-done file.
        let tmp = out.with_extension(format!("tmp{}", std::process::id()));
        let file = fs::File::create(&tmp)?;
        let mut writer = CpioWriter::new(BufWriter::new(file));
        for (name, node) in &self.nodes {
            match node {
                Node::Directory => writer.entry(name, 0o755, EntryKind::Directory)?,
                Node::Symlink(target) => writer.entry(name, 0o777, EntryKind::Symlink(target))?,
                Node::CharDevice { major, minor } => writer.entry(
                    name,
                    0o600,
                    EntryKind::CharDevice {
                        major: *major,
                        minor: *minor,
                    },
                )?,
                Node::Bytes { data, perm } => writer.entry(name, *perm, EntryKind::File(data))?,
                Node::HostFile { source, perm } => {
                    let data =
                        fs::read(source).map_err(|e| format!("{}: {e}", source.display()))?;
                    writer.entry(name, *perm, EntryKind::File(&data))?
                }
            }
        }
        let (_, size) = writer.finish()?;
        fs::rename(&tmp, out)?;
        Ok(size)
    }
}

/// The absolute paths of the shared libraries and loader an executable needs.
fn shared_libraries(executable: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd")
        .arg(executable)
        .output()
        .map_err(|e| format!("running ldd: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ldd {} failed: {}",
            executable.display(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(parse_ldd(&String::from_utf8_lossy(&out.stdout)))
}

/// Reads `ldd` output: `libc.so.6 => /lib/.../libc.so.6 (0x...)` and the loader's
/// `/lib64/ld-linux-x86-64.so.2 (0x...)`; the kernel-provided vDSO has no path.
fn parse_ldd(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let path = match line.split_once("=>") {
                Some((_, rest)) => rest.trim(),
                None => line,
            };
            let path = path.split_whitespace().next()?;
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ldd_output_gives_libraries_and_loader() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibmnl.so.0 => /lib/x86_64-linux-gnu/libmnl.so.0 (0x7f)\n\t/lib64/ld-linux-x86-64.so.2 (0x7f)\n";
        assert_eq!(
            parse_ldd(text),
            vec![
                PathBuf::from("/lib/x86_64-linux-gnu/libmnl.so.0"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2")
            ]
        );
    }

    #[test]
    fn merge_lays_the_other_tree_over() {
        let mut base = Tree::new();
        base.bytes("/etc/containers/storage.conf", 0o644, "host");
        base.bytes("/etc/hosts", 0o644, "base");
        let mut extra = Tree::new();
        extra.bytes("/etc/containers/storage.conf", 0o644, "ours");
        extra.symlink("/srv/rootfs/bin/sh", "busybox");
        base.merge(&extra);
        let bytes = |tree: &Tree, path: &str| match tree.nodes.get(&Tree::canonical(path)) {
            Some(Node::Bytes { data, .. }) => String::from_utf8(data.clone()).unwrap(),
            _ => panic!("{path}: not bytes"),
        };
        assert_eq!(bytes(&base, "/etc/containers/storage.conf"), "ours");
        assert_eq!(bytes(&base, "/etc/hosts"), "base");
        assert!(base.contains("/srv/rootfs/bin/sh"));
        assert!(base.contains("/srv/rootfs"));
    }

    #[test]
    fn merged_usr_paths_are_canonical() {
        assert_eq!(Tree::canonical("/lib/modules/x"), "usr/lib/modules/x");
        assert_eq!(Tree::canonical("/sbin/ip"), "usr/sbin/ip");
        assert_eq!(Tree::canonical("libexec/x"), "libexec/x");
        let mut tree = Tree::new();
        tree.bytes("/bin/hello", 0o755, "x");
        assert!(tree.contains("/usr/bin/hello"));
        assert!(tree.contains("usr/bin"));
    }
}
