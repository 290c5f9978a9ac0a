//! The mount table as this process sees it (`/proc/self/mountinfo`):
//! how `/proc` hides processes (see `processes.rs`), and the network
//! namespaces bind-mounted in it. `ip netns add` mounts its own under
//! `/run/netns`; `unshare --net=FILE` and runtimes that pin a container's
//! namespace in a directory of their own mount them anywhere, and such a
//! namespace may have no process in it at all.
//!
//! The table is bytes, not text: the kernel escapes only space, tab,
//! newline and backslash in a path (`\040`), so a mount at a path that is
//! not UTF-8 puts its bytes in as they are, and must not make the whole
//! table unreadable.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// Where `/proc` shows this process's mount table.
pub(crate) const MOUNTINFO: &str = "/proc/self/mountinfo";

/// This process's mount table, as bytes.
pub(crate) fn read_mountinfo() -> std::io::Result<Vec<u8>> {
    std::fs::read(MOUNTINFO)
}

/// The fields of one line of the mount table that are read here.
pub(crate) struct MountLine<'a> {
    /// The path within the file system that is mounted (for a namespace
    /// file, `net:[INODE]`).
    pub(crate) root: &'a [u8],
    /// Where it is mounted, escaped.
    pub(crate) mount_point: &'a [u8],
    pub(crate) fstype: &'a [u8],
    pub(crate) super_options: &'a [u8],
}

/// Each line of `mountinfo` that parses, in order. A line is (proc(5)):
///
/// ```text
/// ID PARENT MAJOR:MINOR ROOT MOUNT-POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER-OPTIONS
/// ```
pub(crate) fn mount_lines(mountinfo: &[u8]) -> impl DoubleEndedIterator<Item = MountLine<'_>> {
    mountinfo.split(|&b| b == b'\n').filter_map(mount_line)
}

fn mount_line(line: &[u8]) -> Option<MountLine<'_>> {
    let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    // The optional fields end at the first lone "-" after the sixth.
    let separator = 6 + fields.get(6..)?.iter().position(|field| *field == b"-")?;
    Some(MountLine {
        root: fields[3],
        mount_point: fields[4],
        fstype: fields.get(separator + 1)?,
        super_options: fields.get(separator + 3).copied().unwrap_or_default(),
    })
}

/// A network namespace's bind mounts.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct NamespaceMount {
    /// The namespace's nsfs inode.
    pub(crate) ino: u64,
    /// Its mount points, in the table's order (one may be covered by
    /// another mount, and the next reach it).
    pub(crate) paths: Vec<PathBuf>,
}

/// Each network namespace `mountinfo` has mounted, once, with every
/// mount point it has there.
pub(crate) fn namespace_mounts(mountinfo: &[u8]) -> Vec<NamespaceMount> {
    let mut found: Vec<NamespaceMount> = Vec::new();
    for line in mount_lines(mountinfo) {
        let Some((ino, path)) = namespace_mount(&line) else {
            continue;
        };
        match found.iter_mut().find(|seen| seen.ino == ino) {
            Some(seen) if !seen.paths.contains(&path) => seen.paths.push(path),
            Some(_) => {}
            None => found.push(NamespaceMount {
                ino,
                paths: vec![path],
            }),
        }
    }
    found
}

/// Whether `mountinfo` still mounts the network namespace of nsfs inode
/// `ino` anywhere.
pub(crate) fn mounts_namespace(mountinfo: &[u8], ino: u64) -> bool {
    mount_lines(mountinfo).any(|line| namespace_mount(&line).is_some_and(|(at, _)| at == ino))
}

/// The namespace's inode and mount point, if `line` mounts a network
/// namespace (on `nsfs`, with root `net:[INODE]`).
fn namespace_mount(line: &MountLine<'_>) -> Option<(u64, PathBuf)> {
    if line.fstype != b"nsfs" {
        return None;
    }
    let ino = net_namespace_inode(line.root)?;
    Some((ino, unescape(line.mount_point)?))
}

/// The inode in a network namespace's nsfs name, `net:[INODE]` (a
/// namespace mount's root, a `/proc/PID/ns/net` link's target).
pub(crate) fn net_namespace_inode(name: &[u8]) -> Option<u64> {
    let digits = name.strip_prefix(b"net:[")?.strip_suffix(b"]")?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A mountinfo path with its octal escapes (`\NNN`) turned back into bytes.
fn unescape(field: &[u8]) -> Option<PathBuf> {
    let mut out = Vec::with_capacity(field.len());
    let mut at = 0;
    while at < field.len() {
        if field[at] == b'\\' {
            let digits = field.get(at + 1..at + 4)?;
            if !digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                return None;
            }
            let value = digits
                .iter()
                .fold(0u32, |value, d| value * 8 + u32::from(d - b'0'));
            out.push(u8::try_from(value).ok()?);
            at += 4;
        } else {
            out.push(field[at]);
            at += 1;
        }
    }
    Some(PathBuf::from(OsString::from_vec(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as Linux writes them: the root file system, `/proc`,
    /// iproute2's mounts under `/run/netns` (the directory itself bound
    /// on itself, so each namespace shows twice at one path), a namespace
    /// mounted at a path with a space, a tab and a backslash, the same
    /// namespace mounted again elsewhere, a mount namespace's file, a
    /// path that is not UTF-8, and a line without optional fields.
    const MOUNTINFO_TEXT: &[u8] = b"\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
40 22 0:25 /netns /run/netns rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,mode=755
41 40 0:4 net:[4026532281] /run/netns/c1 rw shared:20 - nsfs nsfs rw
46 22 0:4 net:[4026532281] /run/netns/c1 rw shared:20 - nsfs nsfs rw
42 22 0:4 net:[4026532290] /var/lib/tool/ns\\040one\\011\\134x rw - nsfs nsfs rw
43 22 0:4 net:[4026532290] /tmp/again rw shared:21 master:3 - nsfs nsfs rw
44 22 0:4 mnt:[4026532300] /tmp/mnt-ns rw - nsfs nsfs rw
47 22 0:30 / /mnt/caf\xe9 rw shared:30 - tmpfs tmpfs rw
45 22 0:4 net:[4026532310] /tmp/no-optional-fields rw - nsfs nsfs rw
";

    #[test]
    fn each_network_namespace_mounted_is_found_once_with_every_mount_point() {
        let found = namespace_mounts(MOUNTINFO_TEXT);
        assert_eq!(
            found,
            vec![
                NamespaceMount {
                    ino: 4026532281,
                    paths: vec![PathBuf::from("/run/netns/c1")],
                },
                NamespaceMount {
                    ino: 4026532290,
                    paths: vec![
                        PathBuf::from("/var/lib/tool/ns one\t\\x"),
                        PathBuf::from("/tmp/again")
                    ],
                },
                NamespaceMount {
                    ino: 4026532310,
                    paths: vec![PathBuf::from("/tmp/no-optional-fields")],
                },
            ]
        );
        assert!(mounts_namespace(MOUNTINFO_TEXT, 4026532310));
        assert!(!mounts_namespace(MOUNTINFO_TEXT, 4026532300));
    }

    #[test]
    fn lines_that_do_not_parse_are_passed_over() {
        let text = b"\
1 2 0:4 net:[12] /a rw
1 2 0:4 net:[x] /b rw - nsfs nsfs rw
1 2 0:4 net:[13] /c\\09 rw - nsfs nsfs rw
1 2 0:4 net:[14] /d\\777 rw - nsfs nsfs rw
1 2 0:4 net:[15] /e rw - tmpfs tmpfs rw

1 2 0:4 net:[16] /f rw - nsfs nsfs rw";
        assert_eq!(
            namespace_mounts(text),
            vec![NamespaceMount {
                ino: 16,
                paths: vec![PathBuf::from("/f")]
            }]
        );
    }
}
