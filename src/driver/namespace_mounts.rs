//! The network namespaces bind-mounted in this mount namespace, as
//! `/proc/self/mountinfo` lists them: `ip netns add` mounts its own under
//! `/run/netns`, `unshare --net=FILE` and runtimes that pin a container's
//! namespace in a directory of their own mount them anywhere, and such a
//! namespace may have no process in it at all.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// Where `/proc` shows this process's mount table.
pub(crate) const MOUNTINFO: &str = "/proc/self/mountinfo";

/// A network namespace's bind mount.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct NamespaceMount {
    /// The mount point.
    pub(crate) path: PathBuf,
    /// The namespace's nsfs inode.
    pub(crate) ino: u64,
}

/// Each network namespace `mountinfo` (the text of [`MOUNTINFO`]) has
/// mounted, once, at the first of its mount points; lines it cannot parse
/// are passed over (the kernel writes none).
///
/// A line is (proc(5)):
///
/// ```text
/// ID PARENT MAJOR:MINOR ROOT MOUNT-POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER-OPTIONS
/// ```
///
/// A namespace's is on `nsfs` with root `net:[INODE]`, and its mount
/// point has space, tab, newline and backslash written as octal escapes
/// (`\040`).
pub(crate) fn namespace_mounts(mountinfo: &str) -> Vec<NamespaceMount> {
    let mut found: Vec<NamespaceMount> = Vec::new();
    for line in mountinfo.lines() {
        let Some(mount) = namespace_mount(line) else {
            continue;
        };
        if !found.iter().any(|seen| seen.ino == mount.ino) {
            found.push(mount);
        }
    }
    found
}

/// The network namespace mount one line of mountinfo describes, if it is one.
fn namespace_mount(line: &str) -> Option<NamespaceMount> {
    let fields: Vec<&str> = line.split(' ').collect();
    // The optional fields end at the first lone "-" after the sixth.
    let separator = 6 + fields.get(6..)?.iter().position(|field| *field == "-")?;
    if *fields.get(separator + 1)? != "nsfs" {
        return None;
    }
    let ino = fields[3]
        .strip_prefix("net:[")?
        .strip_suffix(']')?
        .parse()
        .ok()?;
    Some(NamespaceMount {
        path: unescape(fields[4])?,
        ino,
    })
}

/// A mountinfo path with its octal escapes (`\NNN`) turned back into bytes.
fn unescape(field: &str) -> Option<PathBuf> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] == b'\\' {
            let digits = bytes.get(at + 1..at + 4)?;
            if !digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                return None;
            }
            let value = digits
                .iter()
                .fold(0u32, |value, d| value * 8 + u32::from(d - b'0'));
            out.push(u8::try_from(value).ok()?);
            at += 4;
        } else {
            out.push(bytes[at]);
            at += 1;
        }
    }
    Some(PathBuf::from(OsString::from_vec(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as Linux 6.1 writes them: the root file system, `/proc`,
    /// iproute2's mounts under `/run/netns` (the directory itself a
    /// tmpfs bind mount), a namespace mounted twice, one whose mount point
    /// has a space, a tab and a backslash, and a mount namespace's file.
    const MOUNTINFO_TEXT: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
40 22 0:25 /netns /run/netns rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,mode=755
41 40 0:4 net:[4026532281] /run/netns/c1 rw shared:20 - nsfs nsfs rw
42 22 0:4 net:[4026532290] /var/lib/tool/ns\\040one\\011\\134x rw - nsfs nsfs rw
43 22 0:4 net:[4026532281] /tmp/again rw master:3 shared:21 - nsfs nsfs rw
44 22 0:4 mnt:[4026532300] /tmp/mnt-ns rw - nsfs nsfs rw
45 22 0:4 net:[4026532310] /tmp/no-optional-fields rw - nsfs nsfs rw
";

    #[test]
    fn each_network_namespace_mounted_is_found_once_at_its_first_mount_point() {
        let found = namespace_mounts(MOUNTINFO_TEXT);
        assert_eq!(
            found,
            vec![
                NamespaceMount {
                    path: PathBuf::from("/run/netns/c1"),
                    ino: 4026532281
                },
                NamespaceMount {
                    path: PathBuf::from("/var/lib/tool/ns one\t\\x"),
                    ino: 4026532290
                },
                NamespaceMount {
                    path: PathBuf::from("/tmp/no-optional-fields"),
                    ino: 4026532310
                },
            ]
        );
    }

    #[test]
    fn lines_that_do_not_parse_are_passed_over() {
        let text = "\
1 2 0:4 net:[12] /a rw
1 2 0:4 net:[x] /b rw - nsfs nsfs rw
1 2 0:4 net:[13] /c\\09 rw - nsfs nsfs rw
1 2 0:4 net:[14] /d\\777 rw - nsfs nsfs rw
1 2 0:4 net:[15] /e rw - tmpfs tmpfs rw

1 2 0:4 net:[16] /f rw - nsfs nsfs rw";
        assert_eq!(
            namespace_mounts(text),
            vec![NamespaceMount {
                path: PathBuf::from("/f"),
                ino: 16
            }]
        );
    }
}
