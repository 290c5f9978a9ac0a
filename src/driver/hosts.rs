//! Name resolution: one hosts file per network, updated in place (so a
//! bind mount of it over `/etc/hosts` sees later changes), and
//! `/etc/netns/NAME/hosts` pointing at the file a container should see.
//!
//! A container on one network points straight at that network's file; a
//! container on several points at a union file of its own, regenerated
//! whenever one of its networks changes.

use std::cell::RefCell;
use std::ffi::CString;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::netns_identity::ContainerIndex;
use super::Error;
use crate::store::{EndpointRecord, EndpointState, Locked, NetworkRecord, StateDir};

/// First lines of every hosts file we write.
pub(crate) const HEADER: &str = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";

/// Mode of every hosts file: processes in containers read them, whatever
/// ipvlan's umask was.
const HOSTS_MODE: u32 = 0o644;
/// Mode of the union markers: only we read them.
const MARKER_MODE: u32 = 0o600;

fn io(what: &str, path: &Path, error: std::io::Error) -> Error {
    if let Some(reason) = crate::store::refusal(&error) {
        return Error::failed(format!("refusing {}: {reason}", path.display()));
    }
    Error::io(format_args!("{what} {}", path.display()), &error)
}

/// Creates a network's hosts file with the header if it does not exist.
/// Every open of a hosts file refuses a symbolic link or anything but a
/// regular file: root would otherwise write into, or blank lines of,
/// whatever a planted link names.
pub(crate) fn ensure_file(path: &Path) -> Result<(), Error> {
    if let Some(dir) = path.parent() {
        crate::store::create_dir(dir).map_err(|e| io("creating", dir, e))?;
    }
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(HOSTS_MODE)
        .open(path);
    let mut file = match created {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            // Its mode too: a kill before the `chmod` below left it as the
            // umask made it (0600 under 077), unreadable in containers.
            let file = crate::store::open_regular(path, OpenOptions::new().read(true))
                .map_err(|e| io("opening", path, e))?;
            return file
                .set_permissions(fs::Permissions::from_mode(HOSTS_MODE))
                .map_err(|e| io("setting the mode of", path, e));
        }
        Err(e) => return Err(io("creating", path, e)),
    };
    // Processes in containers read it whatever ipvlan's umask was.
    file.set_permissions(fs::Permissions::from_mode(HOSTS_MODE))
        .map_err(|e| io("setting the mode of", path, e))?;
    file.write_all(HEADER.as_bytes())
        .map_err(|e| io("writing", path, e))
}

/// Appends one `ADDR\tNAME` line per address (one write at its end: see
/// [`crate::store::append_lines`]).
#[cfg(test)]
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
#[cfg(test)]
pub(crate) fn remove(path: &Path, name: &str) -> Result<(), Error> {
    crate::store::remove_lines(path, |line| names_host(line, name))
        .map(drop)
        .map_err(|e| io("rewriting", path, e))
}

/// Makes the network file `path` list exactly `wanted` (`ADDR\tNAME`
/// lines), in place as every edit is: lines of anything else blanked, the
/// missing ones appended. Hosts files are edited without fsync (they
/// describe containers, which a power cut ends), so after one a blanked
/// line may be back or an appended one lost: restore rebuilds them from
/// the endpoint records, which are durable.
pub(crate) fn reconcile(path: &Path, wanted: &[(IpAddr, String)]) -> Result<(), Error> {
    if wanted.is_empty() && fs::symlink_metadata(path).is_err() {
        return Ok(());
    }
    ensure_file(path)?;
    let lines: Vec<String> = wanted
        .iter()
        .map(|(addr, name)| format!("{addr}\t{name}"))
        .collect();
    crate::store::remove_lines(path, |line| {
        is_host_line(line) && !lines.iter().any(|wanted| wanted == line)
    })
    .map_err(|e| io("rewriting", path, e))?;
    let present = crate::store::read_bytes_capped(path, crate::store::HOSTS_MAX)
        .map_err(|e| io("reading", path, e))?
        .unwrap_or_default();
    // The header's lines too: a file a power cut (or a kill before its
    // first write) left empty got host lines only, and every later append
    // found it not empty, so `localhost` never came back.
    let missing: Vec<&str> = HEADER_LINES
        .iter()
        .copied()
        .chain(lines.iter().map(String::as_str))
        .filter(|wanted| {
            !crate::store::lines_of(&present)
                .any(|line| line.strip_suffix(b"\n") == Some(wanted.as_bytes()))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    crate::store::append_line(path, &crate::text::join(&missing, "\n"), HOSTS_MODE)
        .map_err(|e| io("appending to", path, e))
}

/// A line naming a host: not the header's, not blank, not a comment.
fn is_host_line(line: &str) -> bool {
    !is_header_line(line)
        && line
            .split_whitespace()
            .next()
            .is_some_and(|addr| !addr.starts_with('#'))
}

/// The lines of [`HEADER`], compared with a line of a hosts file by
/// [`is_header_line`] without walking the header's text for each.
const HEADER_LINES: [&str; 2] = [
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
];

fn is_header_line(line: &str) -> bool {
    HEADER_LINES.contains(&line)
}

/// Whether `line` is a host line that names `name`. A detach asks it of
/// every line of its network's file: the names are compared first, as
/// nearly every line names another container.
fn names_host(line: &str, name: &str) -> bool {
    names_host_where(line, |field| field == name)
}

/// Whether `line` is a host line that names one of `names` (a batch
/// detach's containers, sorted, asked of each line once).
fn names_any_host(line: &str, names: &[&str]) -> bool {
    names_host_where(line, |field| names.binary_search(&field).is_ok())
}

/// Adds `note` to `notes` unless it is there: an operation may refresh a
/// view more than once (a detach, its network's and its container's).
fn push_once(notes: &RefCell<Vec<String>>, note: String) {
    let mut notes = notes.borrow_mut();
    if !notes.contains(&note) {
        notes.push(note);
    }
}

/// Whether `line` is the line of an address of one of `leaving` naming
/// its container.
fn names_one_leaving(line: &str, leaving: &[&EndpointRecord]) -> bool {
    let Some(address) = line
        .split_whitespace()
        .next()
        .and_then(|field| field.parse::<IpAddr>().ok())
    else {
        return false;
    };
    leaving.iter().any(|endpoint| {
        endpoint
            .ipv4
            .iter()
            .chain(endpoint.ipv6.iter())
            .any(|net| net.addr() == address)
            && endpoint
                .container
                .as_deref()
                .is_some_and(|container| names_host(line, container))
    })
}

fn names_host_where(line: &str, named: impl FnMut(&str) -> bool) -> bool {
    line.split_whitespace().skip(1).any(named) && is_host_line(line)
}

/// Makes `target` the union of the network files `sources` (one header,
/// then every host line), edited in place like a network file: it may be
/// bind-mounted into running processes, which must see later changes.
/// Lines no source has any more are blanked, new ones appended in one
/// write.
pub(crate) fn write_union(target: &Path, sources: &[PathBuf]) -> Result<(), Error> {
    let mut wanted: Vec<String> = Vec::new();
    for source in sources {
        let content = match crate::store::read_bytes_capped(source, crate::store::HOSTS_MAX) {
            Ok(Some(content)) => content,
            Ok(None) => continue,
            Err(e) => return Err(io("reading", source, e)),
        };
        // Whole lines only: a last one no newline ends was cut by a kill
        // (cut within a name, it would name another container).
        wanted.extend(
            crate::store::whole_text_lines(&content)
                .filter(|l| is_host_line(l))
                .map(str::to_string),
        );
    }
    if let Some(dir) = target.parent() {
        crate::store::create_dir(dir).map_err(|e| io("creating", dir, e))?;
    }
    let mut file = crate::store::open_regular(
        target,
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(HOSTS_MODE),
    )
    .map_err(|e| io("opening", target, e))?;
    file.set_permissions(fs::Permissions::from_mode(HOSTS_MODE))
        .map_err(|e| io("setting the mode of", target, e))?;
    let text = crate::store::read_capped(&mut file, crate::store::HOSTS_MAX)
        .map_err(|e| io("reading", target, e))?;
    // Appends go through a descriptor of their own, with `O_APPEND` (see
    // `append_lines`); `file`'s writes are in place.
    let append = |len: u64, lines: &str| {
        let appending =
            crate::store::open_regular(target, OpenOptions::new().read(true).append(true))
                .map_err(|e| io("opening", target, e))?;
        crate::store::append_lines(&appending, len, "", lines)
            .map_err(|e| io("appending to", target, e))
    };
    if text.is_empty() {
        let mut all = String::from(HEADER);
        for line in &wanted {
            all.push_str(line);
            all.push('\n');
        }
        return append(0, &all);
    }
    // Lines present and still wanted are matched off one for one; the
    // header stays; the rest goes.
    let mut missing = wanted;
    crate::store::blank_lines(&mut file, &text, |line| {
        if is_header_line(line) {
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
    let len = file.metadata().map_err(|e| io("reading", target, e))?.len();
    append(len, &appended)
}

/// Name of the temporary symlink that replaces our own `hosts` symlink in
/// one `rename(2)`; a leftover one is ours to remove (see [`is_ours`]).
const TEMPORARY: &str = ".ipvlan-hosts.tmp";

/// Where the files of our views live: the store's `hosts/` tree. A symlink
/// into it is ours; anything else in `/etc/netns` belongs to whoever put
/// it there (an admin, `ip netns`, another runtime).
fn hosts_tree(state_root: &Path) -> PathBuf {
    absolute(state_root).join("hosts")
}

/// Marks `ETC_NETNS/NAME` as a directory we created, and so may remove
/// once it is empty. Kept in the state directory: a file inside the
/// directory would be bind-mounted by `ip netns exec` like any entry.
fn made_dir_marker(state_root: &Path, container: &str) -> PathBuf {
    markers_dir(&hosts_tree(state_root)).join(container)
}

/// Where the [`made_dir_marker`]s are in the store's `hosts` tree.
fn markers_dir(hosts_tree: &Path) -> PathBuf {
    hosts_tree.join("etc-netns")
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        return path.to_path_buf();
    }
    // A relative state directory (`--state-dir s`) would otherwise give a
    // symlink resolved against /etc/netns/NAME.
    std::env::current_dir()
        .map(|cwd| cwd.join(path))
        .unwrap_or_else(|_| path.to_path_buf())
}

/// Whether the symlink at `path` points into our hosts tree. Compared as
/// written: the tree as we spell it (a state directory given with `..` is
/// kept so), then plain names, so that a symlink that merely resolves
/// there through `..` or someone else's links is not ours.
fn is_ours(path: &Path, state_root: &Path) -> bool {
    let Ok(target) = fs::read_link(path) else {
        return false;
    };
    let below = |tree: &Path| {
        target.strip_prefix(tree).is_ok_and(|rest| {
            rest.components()
                .all(|part| matches!(part, std::path::Component::Normal(_)))
        })
    };
    let tree = hosts_tree(state_root);
    target.is_absolute() && (below(&tree) || fs::canonicalize(&tree).is_ok_and(|tree| below(&tree)))
}

/// What sits at `ETC_NETNS/NAME/hosts`.
enum Entry {
    /// Nothing; `dir`: the directory is there.
    Missing { dir: bool },
    /// Our symlink.
    Ours,
    /// Someone else's; the text says what and why we leave it.
    Foreign(String),
}

fn entry(etc_netns_dir: &Path, container: &str, state_root: &Path) -> Result<Entry, Error> {
    let dir = etc_netns_dir.join(container);
    // One look in the usual case (a directory, or nothing); a link is
    // followed, as `ip netns exec` follows it, unless it leads to another
    // entry of `ETC_NETNS`: that entry's view (another container's, ours
    // perhaps) would be edited under this container's name.
    let found = match fs::symlink_metadata(&dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Entry::Missing { dir: false })
        }
        Err(e) => return Err(io("reading", &dir, e)),
    };
    let linked = found.file_type().is_symlink();
    if linked && leads_to_another_entry(etc_netns_dir, &dir) {
        return Ok(Entry::Foreign(format!(
            "{} is a link to another entry of {}; ipvlan does not follow it",
            dir.display(),
            etc_netns_dir.display()
        )));
    }
    let followed = if linked {
        fs::metadata(&dir)
    } else {
        Ok(found)
    };
    match followed {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Ok(Entry::Foreign(format!(
                "{} exists and is not a directory; ipvlan does not replace it",
                dir.display()
            )))
        }
        // Only a followed link can lead nowhere: someone else's entry, whose
        // directory may yet appear; refused now, before anything is taken,
        // rather than by the `mkdir` of the attach.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Entry::Foreign(format!(
                "{} is a symbolic link to a missing directory; ipvlan does not replace it",
                dir.display()
            )))
        }
        // Someone else's link that cannot be followed (a loop, a mount
        // that refuses root): theirs, as any other, so that it stops only
        // the attach of this container, never what refreshes its view
        // (another container's attach, a detach, `restore`).
        Err(e) => {
            return Ok(Entry::Foreign(format!(
                "{} is a symbolic link ipvlan cannot follow ({e}); ipvlan does not replace it",
                dir.display()
            )))
        }
    }
    let hosts = dir.join("hosts");
    match fs::symlink_metadata(&hosts) {
        Ok(meta) if meta.file_type().is_symlink() && is_ours(&hosts, state_root) => Ok(Entry::Ours),
        Ok(_) => Ok(Entry::Foreign(format!(
            "{} exists and is not ours; ipvlan does not replace it",
            hosts.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Entry::Missing { dir: true }),
        Err(e) => Err(io("reading", &hosts, e)),
    }
}

/// Whether the link `link` (an entry of `etc_netns_dir`) resolves to an
/// entry of `etc_netns_dir` itself, by whatever spelling.
fn leads_to_another_entry(etc_netns_dir: &Path, link: &Path) -> bool {
    let (Ok(target), Ok(dir)) = (fs::canonicalize(link), fs::canonicalize(etc_netns_dir)) else {
        return false;
    };
    target.parent() == Some(dir.as_path())
}

/// Refuses a container whose `ETC_NETNS/NAME/hosts` is someone else's (an
/// admin's file or symlink, or a non-directory at `ETC_NETNS/NAME`): the
/// attach would have to replace it. Called before anything is taken, so
/// the refusal changes nothing. Returns whether nothing is at
/// `ETC_NETNS/NAME` (see [`Names::expect_missing_view`]).
pub(crate) fn check_view_is_ours(
    etc_netns_dir: &Path,
    container: &str,
    state_root: &Path,
) -> Result<bool, Error> {
    match entry(etc_netns_dir, container, state_root)? {
        Entry::Missing { dir } => Ok(!dir),
        Entry::Ours => Ok(false),
        Entry::Foreign(why) => Err(Error::already_exists(why)),
    }
}

/// Makes `ETC_NETNS/NAME` (0755, recorded as ours), found missing by the
/// caller; one made meanwhile by someone else stays theirs, mode and
/// owner. Returns whether this call created it.
fn make_dir(etc_netns_dir: &Path, container: &str, state_root: &Path) -> Result<bool, Error> {
    let dir = etc_netns_dir.join(container);
    // Marked before it exists: a crash in between leaves a marker for a
    // missing directory (harmless), never an unmarked directory of ours.
    // Parents are made only when missing, found by the create failing:
    // they exist on every attach but a host's first.
    let marker = made_dir_marker(state_root, container);
    // One mknodat(2), no descriptor to close; like O_EXCL it never
    // follows a link.
    let marker_c = CString::new(marker.as_os_str().as_bytes())
        .map_err(|_| io("writing", &marker, std::io::ErrorKind::InvalidInput.into()))?;
    let mark = || crate::sys::create_empty_file(&marker_c, MARKER_MODE as libc::mode_t);
    crate::fault::point("etc netns: before marker");
    let marked = match mark() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A state directory: 0700 whatever the umask, as every other.
            if let Some(parent) = marker.parent() {
                crate::store::create_dir(parent).map_err(|e| io("creating", parent, e))?;
            }
            mark()
        }
        other => other,
    };
    let marked_before = match marked {
        Ok(_) => false,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => true,
        Err(e) => return Err(io("writing", &marker, e)),
    };
    crate::fault::point("etc netns: before mkdir");
    // Both at most 0755 (a umask only takes bits away), from their first
    // moment: a directory others may write, even until the `chmod` below
    // (or for good, if a kill comes first), lets them plant the files `ip
    // netns exec` mounts over `/etc` as root.
    // A test's stand-in for a disk that refuses it.
    let made = match crate::fault::io_refused("etc netns: mkdir refused")
        .and_then(|()| crate::sys::mkdir(&dir, 0o755))
    {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::sys::mkdir_all(etc_netns_dir, 0o755)
                .map_err(|e| io("creating", etc_netns_dir, e))?;
            crate::sys::mkdir(&dir, 0o755)
        }
        other => other,
    };
    match crate::fault::after("etc netns: after mkdir", made) {
        Ok(()) => {
            // Processes in the container read it whatever our umask was
            // (under 077 it came 0700).
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
                .map_err(|e| io("setting the mode of", &dir, e))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => {
            // Someone else made it just now: theirs.
            if !marked_before {
                let _ = fs::remove_file(&marker);
            }
            Ok(false)
        }
        Err(e) => {
            if !marked_before {
                let _ = fs::remove_file(&marker);
            }
            Err(io("creating", &dir, e))
        }
    }
}

/// Points `ETC_NETNS/NAME/hosts` at `target`: a missing entry is created,
/// our own symlink replaced atomically; anything else is refused and left
/// as it is.
#[cfg(test)]
pub(crate) fn link(
    etc_netns_dir: &Path,
    container: &str,
    target: &Path,
    state_root: &Path,
) -> Result<(), Error> {
    link_after(etc_netns_dir, container, target, state_root, false)
}

/// Makes what this or an earlier command took out of `/etc/netns/NAME`
/// (`dir`: our link, or the directory itself) durable before the marker
/// that calls the directory ours goes (`marker_meta`'s), where `/etc` and
/// the state directory are two file systems (a separate `/var`, say). On
/// one, its journal commits those removals no later than the marker's; on
/// two, a power cut could keep the marker's removal and lose theirs: our
/// link in a directory no marker calls ours, which nothing would take out.
/// `dir_meta`: `dir`'s `lstat`, when the caller made one (it tells the
/// device without a look at `etc_netns_dir`). Best effort: the marker
/// goes whatever becomes of the sync, since one kept would call a
/// directory ours that may be an admin's; a failed sync loses only that
/// order, and only to a power cut.
fn sync_before_unmark(
    etc_netns_dir: &Path,
    dir: &Path,
    dir_meta: Option<&fs::Metadata>,
    marker_meta: &fs::Metadata,
) {
    use std::os::unix::fs::MetadataExt;
    let etc_dev = match dir_meta {
        Some(meta) => meta.dev(),
        None => match fs::symlink_metadata(etc_netns_dir) {
            Ok(meta) => meta.dev(),
            // Nothing there to make durable.
            Err(_) => return,
        },
    };
    if etc_dev == marker_meta.dev() {
        return;
    }
    let changed = match fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => dir,
        _ => etc_netns_dir,
    };
    let synced = fs::File::open(changed).and_then(|dir| dir.sync_all());
    let _ = crate::fault::after("etc netns: after fsync", synced);
}

/// For a directory at `ETC_NETNS/NAME` found without our link in it: the
/// marker that calls it ours goes unless the directory is the one made
/// with the marker. A directory we make gets our link at once, so one
/// without it was made by someone else (after a connect killed between
/// its marker and its `mkdir`, or in place of ours while the container was
/// attached), or is ours from a kill between our `mkdir` and our link.
/// Only that last one was made (its inode changed, `ctime`) within moments
/// of the marker, in the same command, and nothing has been put in it
/// since; kept marked, the others would be removed as ours when the
/// container leaves its last network. Likewise ours: one a disconnect
/// killed between taking our link out and its `rmdir` left, whose marker
/// it touched first ([`unlink`]). Whatever holds anything but our
/// temporary is another's from then on, as [`unlink`] takes one it cannot
/// remove for not empty. No marker, nothing to do.
fn forget_marker_of_another_dir(
    etc_netns_dir: &Path,
    dir: &Path,
    container: &str,
    state_root: &Path,
) {
    use std::os::unix::fs::MetadataExt;
    let marker = made_dir_marker(state_root, container);
    let (Ok(marked), Ok(found)) = (fs::symlink_metadata(&marker), fs::symlink_metadata(dir)) else {
        return;
    };
    let at = |meta: &fs::Metadata| {
        i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec())
    };
    // Inode times come from a coarse clock (a tick, some milliseconds),
    // read separately for each file: a second either way is room enough,
    // and far less than any admin's `mkdir` after a kill.
    let made_with_it = (at(&found) - at(&marked)).abs() <= 1_000_000_000;
    // Listed only when the times say ours (a directory found without our
    // link is rare): an entry of someone else's makes it theirs.
    let holds_theirs = || {
        crate::sys::list_dir(dir).map_or(true, |entries| {
            entries
                .iter()
                .any(|entry| entry.name != TEMPORARY.as_bytes())
        })
    };
    if !made_with_it || holds_theirs() {
        sync_before_unmark(etc_netns_dir, dir, Some(&found), &marked);
        let _ = fs::remove_file(&marker);
    }
}

/// `link` (tests); `missing`: the caller found nothing at `ETC_NETNS/NAME` a
/// moment before, so it is not looked at again. What another tool puts
/// there meanwhile makes the `mkdir` (a directory: theirs, kept) or the
/// `symlink` (anything at `hosts`: refused) fail, as when it is found.
fn link_after(
    etc_netns_dir: &Path,
    container: &str,
    target: &Path,
    state_root: &Path,
    missing: bool,
) -> Result<(), Error> {
    let target = absolute(target);
    let dir = etc_netns_dir.join(container);
    let hosts = dir.join("hosts");
    let mut has_dir = false;
    let seen = if missing {
        Entry::Missing { dir: false }
    } else {
        entry(etc_netns_dir, container, state_root)?
    };
    let ours = match seen {
        Entry::Foreign(why) => return Err(Error::already_exists(why)),
        Entry::Ours if fs::read_link(&hosts).is_ok_and(|current| current == target) => {
            // Right already, but a replace killed before its rename may
            // have left its temporary, which `ip netns exec` would try to
            // mount over `/etc` like any entry.
            // Best effort: the view itself is right.
            let _ = remove_if_ours(&dir.join(TEMPORARY), state_root);
            return Ok(());
        }
        Entry::Ours => true,
        Entry::Missing { dir: present } => {
            if present {
                forget_marker_of_another_dir(etc_netns_dir, &dir, container, state_root);
            }
            has_dir = present;
            false
        }
    };
    let made = !ours && !has_dir && make_dir(etc_netns_dir, container, state_root)?;
    let linked = if ours {
        replace_our_symlink(&dir, &target, state_root)
    } else {
        // symlink(2) fails if anything appeared there meanwhile: that is
        // never replaced.
        crate::fault::point("etc netns: before symlink");
        let linked = std::os::unix::fs::symlink(&target, &hosts);
        crate::fault::after("etc netns: after symlink", linked).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::already_exists(format!(
                    "{} exists and is not ours; ipvlan does not replace it",
                    hosts.display()
                ))
            } else {
                io("linking", &hosts, e)
            }
        })
    };
    if linked.is_err() && made {
        let _ = fs::remove_dir(&dir);
        let _ = fs::remove_file(made_dir_marker(state_root, container));
    }
    linked
}

fn replace_our_symlink(dir: &Path, target: &Path, state_root: &Path) -> Result<(), Error> {
    let temporary = dir.join(TEMPORARY);
    if fs::symlink_metadata(&temporary).is_ok() {
        if !is_ours(&temporary, state_root) {
            return Err(Error::already_exists(format!(
                "{} exists and is not ours; ipvlan does not replace it",
                temporary.display()
            )));
        }
        fs::remove_file(&temporary).map_err(|e| io("removing", &temporary, e))?;
    }
    crate::fault::point("etc netns: before symlink");
    std::os::unix::fs::symlink(target, &temporary).map_err(|e| io("linking", &temporary, e))?;
    let hosts = dir.join("hosts");
    crate::fault::point("etc netns: before rename");
    crate::fault::after("etc netns: after rename", fs::rename(&temporary, &hosts)).map_err(|e| {
        let _ = fs::remove_file(&temporary);
        io("linking", &hosts, e)
    })
}

/// Refuses, before a container's removal changes anything, a view of it
/// in `etc_netns_dir` on a read-only file system: its removal takes the
/// view out last, and would otherwise stop there with the container half
/// removed (and `restore` stop there at every boot).
pub(crate) fn check_view_removable(etc_netns_dir: &Path, container: &str) -> Result<(), Error> {
    let dir = etc_netns_dir.join(container);
    if fs::symlink_metadata(&dir).is_err() {
        return Ok(());
    }
    let Ok(path) = CString::new(dir.as_os_str().as_bytes()) else {
        return Ok(());
    };
    match crate::sys::is_read_only_mount(&path) {
        Ok(true) => Err(Error::failed(format!(
            "its view {} cannot be taken out: it is on a read-only file system here (systemd's ProtectSystem=, a read-only /etc); make {} writable (ReadWritePaths=) and remove it again",
            dir.display(),
            etc_netns_dir.display()
        ))),
        _ => Ok(()),
    }
}

/// Removes `ETC_NETNS/NAME/hosts` if it is our symlink, and the directory
/// if we created it and it is empty; anything else there stays.
/// [`check_view_removable`] says beforehand whether its file system would
/// refuse that.
pub(crate) fn unlink(
    etc_netns_dir: &Path,
    container: &str,
    state_root: &Path,
) -> Result<(), Error> {
    let dir = etc_netns_dir.join(container);
    let dir_meta = fs::symlink_metadata(&dir);
    // A link to another entry leads to that entry's view (another
    // container's): nothing is removed through it, as `entry` refuses to
    // make a view through it.
    if dir_meta.as_ref().is_ok_and(|m| m.file_type().is_symlink())
        && leads_to_another_entry(etc_netns_dir, &dir)
    {
        return Ok(());
    }
    let marker = made_dir_marker(state_root, container);
    let marker_meta = fs::metadata(&marker);
    let mut marked = marker_meta.is_ok();
    let hosts = dir.join("hosts");
    let linked = is_ours(&hosts, state_root);
    if marked && !linked {
        // Our link is not there: the directory is ours only if it was made
        // with the marker (or taken out, killed, at its `rmdir`: the touch
        // below) and holds nothing of another's, the rule of a connect
        // that finds it so. One an admin made after removing ours
        // (`rm -r`, then `mkdir` for files of their own) stays theirs.
        forget_marker_of_another_dir(etc_netns_dir, &dir, container, state_root);
        marked = marker.exists();
    }
    if marked && linked {
        // Its inode time made now, as taking our link out makes the
        // directory's: killed between that and the `rmdir`, the two stay
        // within moments of each other, as a directory made with its
        // marker is (`forget_marker_of_another_dir`). Else the next
        // connect took the directory, empty and ours, for another's and
        // dropped the marker, and the container's removal left it.
        // Best effort: without it, only that kill loses the mark.
        if let Ok(path) = CString::new(marker.as_os_str().as_bytes()) {
            let _ = crate::sys::touch_no_follow(&path);
        }
    }
    if linked {
        remove_our_link(&hosts)?;
    }
    if !marked {
        // Not our directory: only our leftover temporary (a replace
        // killed before its rename) is taken out of it.
        remove_if_ours(&dir.join(TEMPORARY), state_root)?;
        return Ok(());
    }
    // Our directory: removed, and only if that finds it not empty is it
    // searched for our leftover temporary (one look fewer per detach).
    let mut removed = remove_made_dir(&dir);
    if removed.is_err() && remove_if_ours(&dir.join(TEMPORARY), state_root)? {
        removed = remove_made_dir(&dir);
    }
    match removed {
        Ok(()) => {}
        // Not empty: someone put something in it (a `resolv.conf`, say),
        // which makes it theirs from now on: the marker goes, so that no
        // later unlink takes it, nor a directory made in its place after
        // they remove it (which nothing could tell from ours once its
        // inode number is reused).
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY | libc::EEXIST)) => {}
        // Anything else: left as it is, still ours.
        Err(_) => return Ok(()),
    }
    if let Ok(marker_meta) = &marker_meta {
        sync_before_unmark(etc_netns_dir, &dir, dir_meta.as_ref().ok(), marker_meta);
    }
    crate::fault::point("etc netns: before unmark");
    crate::fault::after("etc netns: after unmark", fs::remove_file(&marker))
        .map_err(|e| io("removing", &marker, e))?;
    Ok(())
}

/// The containers whose `/etc/netns/NAME` directory we made, by their
/// markers, the markers' directory checked as every store directory is.
pub(crate) fn marked_views(state: &StateDir) -> Result<Vec<String>, Error> {
    // Under the root as given, as the store checks its directories.
    let markers = markers_dir(&state.root().join("hosts"));
    if !state.check_dir_if_present(&markers)? {
        return Ok(Vec::new());
    }
    let entries = crate::sys::list_dir_typed(&markers).map_err(|e| io("listing", &markers, e))?;
    Ok(entries
        .into_iter()
        .filter(|entry| entry.kind == libc::DT_REG)
        .filter_map(|entry| String::from_utf8(entry.name).ok())
        .collect())
}

/// Takes out the view of `container`, marked ours, which no record names
/// any more ([`unlink`]), where it still holds our link: the marker is
/// not tied to its directory, so one a power cut kept after the directory
/// went may name an admin's made since, which is left. Elsewhere (gone, a
/// link or file in its place, a directory without our link) the marker
/// alone goes.
pub(crate) fn take_out_stale_view(
    etc_netns_dir: &Path,
    container: &str,
    state_root: &Path,
) -> Result<(), Error> {
    let dir = etc_netns_dir.join(container);
    let dir_meta = match fs::symlink_metadata(&dir) {
        Ok(meta) if meta.is_dir() && is_ours(&dir.join("hosts"), state_root) => {
            return unlink(etc_netns_dir, container, state_root)
        }
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io("looking at", &dir, e))
        }
        found => found.ok(),
    };
    let marker = made_dir_marker(state_root, container);
    // The command that took our link or directory out may have been
    // killed before its own sync.
    if let Ok(marker_meta) = fs::metadata(&marker) {
        sync_before_unmark(etc_netns_dir, &dir, dir_meta.as_ref(), &marker_meta);
    }
    fs::remove_file(&marker).map_err(|e| io("removing", &marker, e))
}

/// Removes the symlink at `path` if it is ours (see [`is_ours`], whose
/// `readlink` finds nothing, or no link, as well as a look first would);
/// returns whether it did.
fn remove_if_ours(path: &Path, state_root: &Path) -> Result<bool, Error> {
    if !is_ours(path, state_root) {
        return Ok(false);
    }
    remove_our_link(path)?;
    Ok(true)
}

/// Removes the symlink at `path`, found ours a moment before.
fn remove_our_link(path: &Path) -> Result<(), Error> {
    crate::fault::point("etc netns: before unlink");
    crate::fault::after("etc netns: after unlink", fs::remove_file(path))
        .map_err(|e| io("removing", path, e))
}

/// Removes `ETC_NETNS/NAME`, which we made: gone already counts as done.
fn remove_made_dir(dir: &Path) -> std::io::Result<()> {
    crate::fault::point("etc netns: before rmdir");
    match crate::fault::after("etc netns: after rmdir", fs::remove_dir(dir)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The file `/etc/netns/NAME/hosts` resolves to, for mounting it. Whoever
/// made it, as `ip netns exec` mounts whatever is there: `exec` shows a
/// container the same names iproute2 does.
pub(crate) fn resolve(etc_netns_dir: &Path, container: &str) -> Option<PathBuf> {
    let hosts = etc_netns_dir.join(container).join("hosts");
    fs::canonicalize(hosts).ok()
}

/// The name views of one operation: the state under its lock and where
/// `/etc/netns` is. The networks a container is on are found from the
/// store (their ids listed, never every record read).
pub(crate) struct Names<'a> {
    pub state: &'a Locked<'a>,
    pub etc_netns_dir: &'a Path,
    /// A container the caller found nothing at `ETC_NETNS/NAME` for, under
    /// the lock and before its attach: its view is made without looking
    /// there again, once (see [`Names::expect_missing_view`]).
    missing_view: RefCell<Option<String>>,
    /// Networks whose union markers directory this operation found missing.
    markers_absent: RefCell<Vec<String>>,
    /// Views of containers found not ours while refreshing them, left as
    /// they are: a note each, for the caller to pass on.
    left_alone: RefCell<Vec<String>>,
    /// Views of containers this operation does not attach that it could
    /// not bring up to date (a damaged record of theirs on another
    /// network, a full disk): a note each, as for `left_alone`.
    not_refreshed: RefCell<Vec<String>>,
    /// The short name of a network's hosts file this operation made sure
    /// of last, or found it could not make (a batch links every target's
    /// view to it, or to the file).
    short_name: RefCell<Option<(String, Option<PathBuf>)>>,
}

/// What refreshing a container's view does when another tool's entry (an
/// admin's file, a `sed -i` that replaced our symbolic link) is at its
/// `/etc/netns/NAME/hosts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnForeign {
    /// The attach of that container itself: refused, and undone.
    Refuse,
    /// Anything else (a detach, another container's attach refreshing
    /// the union views of a network, a batch, `restore`): the entry is
    /// left as it is and the operation goes on; a detach passes the note
    /// on among its warnings ([`Names::take_notes`]), the others drop it.
    /// Failing there would strand a detach after its link is gone, and
    /// every later detach or attach on the network, and `restore`, would
    /// fail the same way.
    LeaveAlone,
}

impl<'a> Names<'a> {
    /// The name views of an operation on `state`, `/etc/netns` being
    /// `etc_netns_dir`.
    pub(crate) fn new(state: &'a Locked<'a>, etc_netns_dir: &'a Path) -> Names<'a> {
        Names {
            state,
            etc_netns_dir,
            missing_view: RefCell::new(None),
            markers_absent: RefCell::new(Vec::new()),
            left_alone: RefCell::new(Vec::new()),
            not_refreshed: RefCell::new(Vec::new()),
            short_name: RefCell::new(None),
        }
    }

    /// The notes of the views this operation left alone as not ours (see
    /// [`OnForeign::LeaveAlone`]) or could not bring up to date (see
    /// [`Names::refresh_views_noting`]), each once; taken, they are not
    /// given again.
    pub(crate) fn take_notes(&self) -> Vec<String> {
        let mut notes = std::mem::take(&mut *self.left_alone.borrow_mut());
        notes.append(&mut self.take_refresh_failures());
        notes
    }

    /// The notes of the views this operation could not bring up to date
    /// alone (what `restore`, whose job they were, counts as failures).
    pub(crate) fn take_refresh_failures(&self) -> Vec<String> {
        std::mem::take(&mut *self.not_refreshed.borrow_mut())
    }

    /// The short name of network `network_id`'s hosts file
    /// ([`Locked::hosts_alias`]), which a view on that network alone links
    /// to; `None` when it cannot be made (a directory in its place, a
    /// network of the same key in a store made by hand, a full disk): the
    /// view then links to the file itself, right if slower to make.
    fn short_name(&self, network_id: &str) -> Option<PathBuf> {
        if let Some((id, path)) = &*self.short_name.borrow() {
            if id == network_id {
                return path.clone();
            }
        }
        // A failure is kept too: a batch's other targets would each try
        // again what failed, to the same end.
        let path = self.state.hosts_alias(network_id).ok();
        *self.short_name.borrow_mut() = Some((network_id.to_string(), path.clone()));
        path
    }

    /// Tells the next view made for `container` that nothing was at
    /// `ETC_NETNS/NAME` under this lock (see [`check_view_is_ours`]); the
    /// view made, later refreshes look again.
    pub(crate) fn expect_missing_view(&mut self, container: Option<String>) {
        *self.missing_view.get_mut() = container;
    }

    /// Appends the endpoint's names to its network's hosts file and points
    /// the container's `/etc/netns/NAME/hosts` at what it should see.
    /// `index`: the container's index as the caller just wrote it, so it
    /// is not read again.
    pub(crate) fn add(
        &self,
        network: &NetworkRecord,
        endpoint: &EndpointRecord,
        index: Option<&ContainerIndex>,
    ) -> Result<(), Error> {
        self.append(network, &[endpoint])?;
        self.add_view(endpoint, index)?;
        self.refresh_network(network)
    }

    /// The first step of [`Names::add`] for many endpoints of `network`
    /// at once (a batch's): their names appended to its hosts file in one
    /// write. Then [`Names::add_view`] for each, and
    /// [`Names::refresh_network`] once.
    pub(crate) fn append(
        &self,
        network: &NetworkRecord,
        endpoints: &[&EndpointRecord],
    ) -> Result<(), Error> {
        let file = self.state.hosts_path(&network.id);
        let mut lines = String::new();
        for endpoint in endpoints {
            let Some(container) = &endpoint.container else {
                continue;
            };
            for net in endpoint.ipv4.iter().chain(endpoint.ipv6.iter()) {
                crate::digits::push_ip(&mut lines, net.addr());
                lines.push('\t');
                lines.push_str(container);
                lines.push('\n');
            }
        }
        // One open relative to the store's checked `hosts/` descriptor,
        // making the file with its header when missing: a path-based
        // ensure-then-append walked the chain three times per connect.
        self.state
            .append_to(&file, HEADER, &lines, HOSTS_MODE)
            .map_err(Error::from)
    }

    /// The second step of [`Names::add`]: points the endpoint's container's
    /// `/etc/netns/NAME/hosts` at what it should see (`index` as for
    /// `add`).
    pub(crate) fn add_view(
        &self,
        endpoint: &EndpointRecord,
        index: Option<&ContainerIndex>,
    ) -> Result<(), Error> {
        match &endpoint.container {
            Some(container) => {
                self.refresh_views(container, None, Some(endpoint), index, OnForeign::Refuse)
            }
            None => Ok(()),
        }
    }

    /// Takes the endpoint's names out of its network's file and the views.
    pub(crate) fn remove(
        &self,
        network: &NetworkRecord,
        endpoint: &EndpointRecord,
    ) -> Result<(), Error> {
        if let Some(container) = &endpoint.container {
            let file = self.state.hosts_path(&network.id);
            self.state
                .blank_lines_in(&file, |line| names_host(line, container))?;
        }
        // The endpoint as leaving: its intent may not be on disk yet
        // (the commit log's page holds it), where its record still says
        // `attached`.
        self.refresh_network_knowing(network, Some(endpoint), &[endpoint])?;
        if let Some(container) = &endpoint.container {
            // The container itself may have left its last network.
            self.refresh_views_noting(container, None, Some(endpoint), &[endpoint])?;
        }
        Ok(())
    }

    /// The first step of [`Names::remove`] for many endpoints of
    /// `network` at once (a batch's): the names of `containers` blanked in
    /// its hosts file in one pass. After it, [`Names::remove_view`] for
    /// each, then [`Names::refresh_network`] once.
    pub(crate) fn remove_lines(
        &self,
        network: &NetworkRecord,
        containers: &[String],
    ) -> Result<(), Error> {
        if containers.is_empty() {
            return Ok(());
        }
        let file = self.state.hosts_path(&network.id);
        let mut names: Vec<&str> = containers.iter().map(String::as_str).collect();
        crate::order::sort(&mut names);
        self.state
            .blank_lines_in(&file, |line| names_any_host(line, &names))?;
        Ok(())
    }

    /// The last step of [`Names::remove`], for one endpoint of a batch:
    /// its container's view made what it should be without it.
    pub(crate) fn remove_view(&self, endpoint: &EndpointRecord) -> Result<(), Error> {
        match &endpoint.container {
            Some(container) => {
                self.refresh_views_noting(container, None, Some(endpoint), &[endpoint])
            }
            None => Ok(()),
        }
    }

    /// Rebuilds `network`'s hosts file from its endpoint records (see
    /// [`reconcile`]), then the views of the containers attached to it:
    /// the union views built from it, and each one's `/etc/netns` view,
    /// which a connect killed after its final record had not made yet.
    pub(crate) fn rebuild(&self, network: &NetworkRecord) -> Result<(), Error> {
        let endpoints = self.state.endpoints_of(&network.id)?;
        let mut wanted = Vec::new();
        let mut attached = Vec::new();
        for endpoint in endpoints.iter() {
            let Some(container) = &endpoint.container else {
                continue;
            };
            if !endpoint.state.is_attached() {
                continue;
            }
            for address in endpoint.ipv4.iter().chain(endpoint.ipv6.iter()) {
                wanted.push((address.addr(), container.clone()));
            }
            attached.push(endpoint);
        }
        let file = self.state.hosts_path(&network.id);
        self.check_parent(&file)?;
        reconcile(&file, &wanted)?;
        self.refresh_network(network)?;
        for endpoint in attached {
            let Some(container) = &endpoint.container else {
                continue;
            };
            // A view another tool put there since is theirs: left as it
            // is, and no reason to fail the repair of everything else.
            if let Entry::Foreign(_) = entry(self.etc_netns_dir, container, self.state.root())? {
                continue;
            }
            self.refresh_views_noting(container, None, Some(endpoint), &[])?;
        }
        Ok(())
    }

    /// Checks the store's directory holding `path` (from the root down,
    /// once per command) before `path` is reached by its path name.
    fn check_parent(&self, path: &Path) -> Result<(), Error> {
        if let Some(dir) = path.parent() {
            self.state.check_dir(dir)?;
        }
        Ok(())
    }

    /// Regenerates the union view of every container on `network` that is
    /// on several networks (they are listed as markers, so this costs
    /// nothing for single-network containers).
    pub(crate) fn refresh_network(&self, network: &NetworkRecord) -> Result<(), Error> {
        self.refresh_network_knowing(network, None, &[])
    }

    /// [`Names::refresh_network`] after a batch took the names of
    /// `leaving` (its endpoints) out of the network's file.
    pub(crate) fn refresh_network_leaving(
        &self,
        network: &NetworkRecord,
        leaving: &[&EndpointRecord],
    ) -> Result<(), Error> {
        self.refresh_network_knowing(network, None, leaving)
    }

    /// [`Names::refresh_network`], `known` an endpoint of the network as
    /// the caller holds it (a detach's, leaving), not read again;
    /// `leaving` the endpoints whose addresses the operation gives back
    /// (see [`Names::refresh_views_noting`]).
    fn refresh_network_knowing(
        &self,
        network: &NetworkRecord,
        known: Option<&EndpointRecord>,
        leaving: &[&EndpointRecord],
    ) -> Result<(), Error> {
        // Only there while a container of the network is on several.
        if !self.markers_present(&network.id)? {
            return Ok(());
        }
        let markers = self.state.union_markers_dir(&network.id);
        let Ok(entries) = crate::sys::list_dir(&markers) else {
            return Ok(());
        };
        for entry in entries {
            let container = entry.file_name().to_string_lossy().into_owned();
            // This network named too: the container may have just left it,
            // and only the networks it has a record on are looked at.
            let known_here = known.filter(|known| known.container.as_deref() == Some(&container));
            self.refresh_views_noting(&container, Some(&network.id), known_here, leaving)?;
        }
        Ok(())
    }

    /// [`Names::refresh_views`] of a container this operation does not
    /// attach (another container of the network, one leaving it, one
    /// `restore` goes over): what keeps its view from being brought up to
    /// date (a damaged record of it on another network, a file in the
    /// way) is noted, and the operation goes on. Failing there would stop
    /// every attach and detach on each of its networks, strand a detach
    /// after its link is gone and `restore` with it, for a fault in one
    /// container's files; its view stays as it was, for the next refresh
    /// of a network of its, or `restore`, to bring up to date (once its
    /// files are mended, where they are damaged).
    ///
    /// Save the names of `leaving`: a union view is a copy of its
    /// networks' files, and the addresses of the endpoints an operation
    /// detaches go back to the pool, to be named another container's by a
    /// later attach. Their lines are blanked in the container's union
    /// file; where even that fails, so does this, as before: a detach then
    /// keeps its endpoint's addresses held for `restore`.
    fn refresh_views_noting(
        &self,
        container: &str,
        also: Option<&str>,
        known: Option<&EndpointRecord>,
        leaving: &[&EndpointRecord],
    ) -> Result<(), Error> {
        let Err(error) = self.refresh_views(container, also, known, None, OnForeign::LeaveAlone)
        else {
            return Ok(());
        };
        if !leaving.is_empty() {
            let union = self.state.union_hosts_path(container);
            if self
                .state
                .blank_lines_in(&union, |line| names_one_leaving(line, leaving))
                .is_err()
            {
                return Err(error);
            }
        }
        let note =
            format!("the names view of container {container} was not brought up to date: {error}");
        push_once(&self.not_refreshed, note);
        Ok(())
    }

    /// Points `/etc/netns/NAME/hosts` at what the container should see: its
    /// network's file, or a union file when it is on several. `also` is
    /// a network whose marker of the container must go unless it is still
    /// on it; `known` the container's endpoint record and `known_index`
    /// its index as the caller just wrote them (not read again);
    /// `on_foreign` what a view found not ours means.
    fn refresh_views(
        &self,
        container: &str,
        also: Option<&str>,
        known: Option<&EndpointRecord>,
        known_index: Option<&ContainerIndex>,
        on_foreign: OnForeign,
    ) -> Result<(), Error> {
        let state = self.state;
        // Networks it has a record on (any state: a marker may be left on
        // one it is leaving), and those it is attached to.
        let mut on: Vec<String> = Vec::new();
        let mut attached: Vec<String> = Vec::new();
        let read;
        let index = match known_index {
            Some(index) => index,
            None => {
                read = ContainerIndex::read(state, container)?;
                &read
            }
        };
        // In a store that files endpoints only by identity the index names
        // every network the container is on; otherwise a record of an
        // older version may be on any network.
        let networks = if state.by_identity_only() {
            // Keys resolved by the networks the caller names first.
            let known_ids: Vec<&str> = known
                .map(|known| known.network_id.as_str())
                .into_iter()
                .chain(also)
                .collect();
            index.network_ids(state, &known_ids)?
        } else {
            state.network_ids()?
        };
        for id in networks {
            let endpoint = match known.filter(|known| known.network_id == id) {
                Some(known) => Some(known.clone()),
                None => index.endpoint(state, &id)?,
            };
            if let Some(endpoint) = endpoint {
                if endpoint.state != EndpointState::Detaching {
                    attached.push(id.clone());
                }
                on.push(id);
            }
        }
        if let Some(also) = also.filter(|also| !on.iter().any(|id| id == also)) {
            on.push(also.to_string());
        }
        // Just attached to its only network (the index the caller wrote
        // names no other): it was on none before, so it has no union view
        // or marker to take away (they exist only while a container is on
        // several; one a crash left is found by its network's next refresh
        // or by restore).
        let first = state.by_identity_only()
            && also.is_none()
            && known.is_some()
            && known_index.is_some_and(|index| index.len() == 1);
        for network_id in on.iter().filter(|_| !first) {
            let markers = state.union_markers_dir(network_id);
            let marker = markers.join(container);
            if attached.len() > 1 && attached.iter().any(|id| id == network_id) {
                // A link where the marker belongs is refused, not followed.
                if !fs::symlink_metadata(&marker).is_ok_and(|m| m.is_file()) {
                    state.ensure_dir(&markers)?;
                    self.markers_absent
                        .borrow_mut()
                        .retain(|id| id != network_id);
                    crate::store::open_regular(
                        &marker,
                        OpenOptions::new()
                            .write(true)
                            .create(true)
                            .truncate(false)
                            .mode(MARKER_MODE),
                    )
                    .map_err(|e| io("writing", &marker, e))?;
                }
            } else if self.markers_present(network_id)? {
                let _ = fs::remove_file(&marker);
            }
        }
        // Only the first view made for it: a later refresh of the same
        // operation (its network's, which lists it too) finds that view.
        let fresh = {
            let mut missing = self.missing_view.borrow_mut();
            let fresh = missing.as_deref() == Some(container);
            if fresh {
                *missing = None;
            }
            fresh
        };
        let files: Vec<PathBuf> = attached.iter().map(|id| state.hosts_path(id)).collect();
        let union = state.union_hosts_path(container);
        let union_goes = files.len() < 2 && !first && state.present(&union)?;
        if union_goes || files.len() > 1 {
            self.check_parent(&union)?;
        }
        let linked = match files.as_slice() {
            [] => unlink(self.etc_netns_dir, container, state.root()),
            [file] => {
                let only = self
                    .short_name(&attached[0])
                    .unwrap_or_else(|| file.clone());
                link_after(self.etc_netns_dir, container, &only, state.root(), fresh)
            }
            _ => {
                write_union(&union, &files)?;
                link_after(self.etc_netns_dir, container, &union, state.root(), fresh)
            }
        };
        // Only once the view leads elsewhere (or is gone): a view whose
        // repointing failed still leads to the union, never to nothing
        // (what `ip netns exec` and `exec` would mount).
        if union_goes && linked.is_ok() {
            let _ = fs::remove_file(&union);
        }
        if files.is_empty() {
            return linked;
        }
        match linked {
            // `link_after` says `AlreadyExists` only of another's entry
            // (found there, or appearing under its own create).
            Err(error)
                if on_foreign == OnForeign::LeaveAlone
                    && error.kind() == super::ErrorKind::AlreadyExists =>
            {
                let note = format!(
                    "the names view of container {container} was left as it is: {}",
                    error.message()
                );
                push_once(&self.left_alone, note);
                Ok(())
            }
            other => other,
        }
    }

    /// Whether the network's union markers directory is there (checked),
    /// a directory found missing not looked for again by this operation
    /// (a detach asks for its network's twice) until it makes one.
    fn markers_present(&self, network_id: &str) -> Result<bool, Error> {
        if self
            .markers_absent
            .borrow()
            .iter()
            .any(|id| id == network_id)
        {
            return Ok(false);
        }
        let markers = self.state.union_markers_dir(network_id);
        let present = self.state.check_dir_if_present(&markers)?;
        if !present {
            self.markers_absent
                .borrow_mut()
                .push(network_id.to_string());
        }
        Ok(present)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `line` as a removal leaves it: a `#`, then spaces, its length.
    fn blanked(line: &str) -> String {
        format!("#{}", " ".repeat(line.len() - 1))
    }

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
    fn the_header_lines_are_the_headers() {
        assert_eq!(HEADER.lines().collect::<Vec<_>>(), HEADER_LINES);
    }

    #[test]
    fn a_line_names_a_host_only_after_its_address_and_never_in_the_header() {
        let cases = [
            ("10.0.0.2\tweb", "web", true),
            ("10.0.0.2\tweb alias", "alias", true),
            ("10.0.0.2 \t web  ", "web", true),
            ("10.0.0.2\tweb", "10.0.0.2", false),
            ("10.0.0.2\twebserver", "web", false),
            ("# 10.0.0.2\tweb", "web", false),
            ("#10.0.0.2\tweb", "web", false),
            ("127.0.0.1\tlocalhost", "localhost", false),
            (
                "::1\tlocalhost ip6-localhost ip6-loopback",
                "ip6-localhost",
                false,
            ),
            ("10.0.0.9\tlocalhost", "localhost", true),
            ("", "web", false),
            ("   ", "web", false),
        ];
        for (line, name, named) in cases {
            assert_eq!(names_host(line, name), named, "{line:?} names {name:?}");
            let mut set = [name, "other"];
            set.sort_unstable();
            assert_eq!(
                names_any_host(line, &set),
                named,
                "{line:?} names one of {set:?}"
            );
        }
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
                blanked("192.168.1.2\tipv1")
            )
        );
        assert_eq!(fs::metadata(&file).unwrap().ino(), inode);
        // The header's names are never ours to remove.
        remove(&file, "localhost").unwrap();
        assert!(fs::read_to_string(&file).unwrap().starts_with(HEADER));
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn reconcile_makes_the_file_list_exactly_the_records() {
        use std::os::unix::fs::MetadataExt;
        let dir = scratch("reconcile");
        let file = dir.join("net");
        // As a power cut can leave it: a removed container's line back, an
        // added one missing.
        append(&file, "gone", &["10.0.0.9".parse().unwrap()]).unwrap();
        append(&file, "kept", &["10.0.0.2".parse().unwrap()]).unwrap();
        let inode = fs::metadata(&file).unwrap().ino();
        let wanted = [
            ("10.0.0.2".parse().unwrap(), "kept".to_string()),
            ("10.0.0.3".parse().unwrap(), "lost".to_string()),
        ];
        reconcile(&file, &wanted).unwrap();
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            format!(
                "{HEADER}{}\n10.0.0.2\tkept\n10.0.0.3\tlost\n",
                blanked("10.0.0.9\tgone")
            )
        );
        assert_eq!(fs::metadata(&file).unwrap().ino(), inode, "edited in place");
        // Nothing to change: nothing written.
        let before = fs::read(&file).unwrap();
        reconcile(&file, &wanted).unwrap();
        assert_eq!(fs::read(&file).unwrap(), before);
        // No file and nothing wanted: none made.
        reconcile(&dir.join("none"), &[]).unwrap();
        assert!(!dir.join("none").exists());
        fs::remove_dir_all(dir).unwrap();
    }

    /// A line of bytes that are not UTF-8 in a network file (a process in
    /// a container has it as its `/etc/hosts`, writable, and may write
    /// Latin-1): someone else's line, kept, while our lines are still
    /// blanked, reconciled and copied into union views. Before, every
    /// edit of the file failed ("not UTF-8 text"): each detach after its
    /// link was gone, and `restore`.
    #[test]
    fn a_line_that_is_not_utf8_stops_no_edit_of_the_file() {
        let dir = scratch("latin1");
        let file = dir.join("net");
        append(&file, "web", &["10.0.0.2".parse().unwrap()]).unwrap();
        append(&file, "db", &["10.0.0.3".parse().unwrap()]).unwrap();
        let mut theirs = fs::OpenOptions::new().append(true).open(&file).unwrap();
        theirs.write_all(b"10.0.0.9\tcaf\xe9\n").unwrap();
        remove(&file, "web").unwrap();
        let union = dir.join("union");
        write_union(&union, std::slice::from_ref(&file)).unwrap();
        assert_eq!(
            fs::read_to_string(&union).unwrap(),
            format!("{HEADER}10.0.0.3\tdb\n")
        );
        let wanted = [
            ("10.0.0.3".parse().unwrap(), "db".to_string()),
            ("10.0.0.4".parse().unwrap(), "new".to_string()),
        ];
        reconcile(&file, &wanted).unwrap();
        let blank = blanked("10.0.0.2\tweb");
        let mut expected = format!("{HEADER}{blank}\n10.0.0.3\tdb\n").into_bytes();
        expected.extend_from_slice(b"10.0.0.9\tcaf\xe9\n10.0.0.4\tnew\n");
        assert_eq!(fs::read(&file).unwrap(), expected);
        // And a union view holding such a line itself: kept, ours edited.
        theirs = fs::OpenOptions::new().append(true).open(&union).unwrap();
        theirs.write_all(b"# \xff\n").unwrap();
        write_union(&union, std::slice::from_ref(&file)).unwrap();
        let mut expected = format!("{HEADER}10.0.0.3\tdb\n").into_bytes();
        expected.extend_from_slice(b"# \xff\n10.0.0.4\tnew\n");
        assert_eq!(fs::read(&union).unwrap(), expected);
        fs::remove_dir_all(dir).unwrap();
    }

    /// A network file a power cut left empty (a new file's data not yet
    /// written), or a kill left before its `chmod`: restore's reconcile
    /// gives it its header and its mode back. Before, it appended the host
    /// lines alone, and `localhost` never came back (appends add the
    /// header only to an empty file); a 0600 file stayed unreadable to
    /// the container's other users.
    #[test]
    fn reconcile_gives_an_empty_file_its_header_and_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = scratch("reconcile-empty");
        let file = dir.join("net");
        fs::write(&file, "").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        let wanted = [("10.0.0.2".parse().unwrap(), "web".to_string())];
        reconcile(&file, &wanted).unwrap();
        assert_eq!(
            fs::read_to_string(&file).unwrap(),
            format!("{HEADER}10.0.0.2\tweb\n")
        );
        let mode = fs::metadata(&file).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, HOSTS_MODE);
        fs::remove_dir_all(dir).unwrap();
    }

    /// A last line no newline ends was cut by a kill (or written so by an
    /// older version): restore's reconcile makes it again whole when it
    /// is wanted, and a union view never copies it from its source. Both
    /// took it for a line that is there: reconcile then left it to be
    /// blanked by the next append (the name lost), and a union gave a cut
    /// name (`web-1` of `web-12`) its address.
    #[test]
    fn a_cut_last_line_is_made_again_or_left_out_never_taken() {
        let dir = scratch("cut-line");
        let file = dir.join("net");
        fs::write(&file, format!("{HEADER}10.0.0.5\tweb-1")).unwrap();
        let wanted = [
            ("10.0.0.5".parse().unwrap(), "web-1".to_string()),
            ("10.0.0.6".parse().unwrap(), "web-2".to_string()),
        ];
        reconcile(&file, &wanted).unwrap();
        let text = fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text
            .lines()
            .filter(|line| is_host_line(line) && !line.trim().is_empty())
            .collect();
        assert_eq!(lines, ["10.0.0.5\tweb-1", "10.0.0.6\tweb-2"], "{text:?}");
        assert!(text.ends_with('\n'), "{text:?}");

        let cut = dir.join("cut");
        fs::write(&cut, format!("{HEADER}10.0.0.7\tdb\n10.0.0.12\tweb-1")).unwrap();
        let union = dir.join("union");
        write_union(&union, std::slice::from_ref(&cut)).unwrap();
        assert_eq!(
            fs::read_to_string(&union).unwrap(),
            format!("{HEADER}10.0.0.7\tdb\n")
        );
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
            format!("{HEADER}#         \n10.1.0.2\ty\n10.1.0.3\tz\n")
        );
        assert_eq!(fs::metadata(&union).unwrap().ino(), inode);
        fs::remove_dir_all(dir).unwrap();
    }

    /// A marker left without its directory (a connect killed between the
    /// two), then a directory made by an admin: the view is made in it,
    /// and the container's last detach leaves it, emptied of our link.
    /// Before, the marker called it ours and it was removed. The directory
    /// of a kill between our `mkdir` and our link, made with its marker,
    /// stays ours.
    #[test]
    fn a_directory_made_apart_from_its_marker_is_not_ours() {
        let dir = scratch("marker-apart");
        let root = dir.join("state");
        let a = root.join("hosts").join("a");
        append(&a, "x", &["10.0.0.2".parse().unwrap()]).unwrap();
        let etc = dir.join("etc");
        fs::create_dir_all(&etc).unwrap();
        let marker = made_dir_marker(&root, "c1");
        fs::create_dir_all(marker.parent().unwrap()).unwrap();
        fs::write(&marker, "").unwrap();
        // Inode times tick coarsely: well apart.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        fs::create_dir(etc.join("c1")).unwrap();
        link(&etc, "c1", &a, &root).unwrap();
        assert!(etc.join("c1/hosts").is_symlink(), "the view made in it");
        assert!(!marker.exists(), "the marker of another directory kept");
        unlink(&etc, "c1", &root).unwrap();
        assert!(etc.join("c1").is_dir(), "the admin's directory removed");
        assert!(fs::symlink_metadata(etc.join("c1/hosts")).is_err());

        // Marker and directory made together, our link missing (a kill
        // between the two): ours, removed with the view.
        let marker = made_dir_marker(&root, "c2");
        fs::write(&marker, "").unwrap();
        fs::create_dir(etc.join("c2")).unwrap();
        link(&etc, "c2", &a, &root).unwrap();
        assert!(marker.exists(), "the marker of our own directory dropped");
        unlink(&etc, "c2", &root).unwrap();
        assert!(!etc.join("c2").exists(), "our directory left");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_leftover_temporary_of_ours_is_removed_with_the_view() {
        let dir = scratch("leftover");
        let root = dir.join("state");
        let a = root.join("hosts").join("a");
        append(&a, "x", &["10.0.0.2".parse().unwrap()]).unwrap();
        let etc = dir.join("etc");
        let leftover = |name: &str| {
            let temporary = etc.join(name).join(TEMPORARY);
            std::os::unix::fs::symlink(&a, &temporary).unwrap();
            temporary
        };

        // Our directory, with the temporary a killed replace left: all of
        // it goes, marker included.
        link(&etc, "c1", &a, &root).unwrap();
        leftover("c1");
        unlink(&etc, "c1", &root).unwrap();
        assert!(!etc.join("c1").exists());
        assert!(!made_dir_marker(&root, "c1").exists());

        // Our directory holding someone else's file too: our link and
        // temporary go, their file and the directory stay, theirs now (no
        // marker), even once it is empty.
        link(&etc, "c2", &a, &root).unwrap();
        let temporary = leftover("c2");
        fs::write(etc.join("c2/resolv.conf"), "nameserver 10.0.0.1\n").unwrap();
        unlink(&etc, "c2", &root).unwrap();
        assert!(fs::symlink_metadata(&temporary).is_err());
        assert!(fs::symlink_metadata(etc.join("c2/hosts")).is_err());
        assert!(etc.join("c2/resolv.conf").is_file());
        assert!(!made_dir_marker(&root, "c2").exists());
        fs::remove_file(etc.join("c2/resolv.conf")).unwrap();
        unlink(&etc, "c2", &root).unwrap();
        assert!(etc.join("c2").is_dir());

        // An admin's directory: our temporary goes, the directory stays.
        fs::create_dir_all(etc.join("admin")).unwrap();
        let temporary = leftover("admin");
        unlink(&etc, "admin", &root).unwrap();
        assert!(fs::symlink_metadata(&temporary).is_err());
        assert!(etc.join("admin").is_dir());

        // A view linked again as it is (restore, a third network): the
        // temporary a killed replace left goes too, not only at the view's
        // end (`ip netns exec` mounts every entry over `/etc`).
        link(&etc, "c3", &a, &root).unwrap();
        let temporary = leftover("c3");
        link(&etc, "c3", &a, &root).unwrap();
        assert!(fs::symlink_metadata(&temporary).is_err());
        assert_eq!(fs::read_link(etc.join("c3/hosts")).unwrap(), a);
        fs::remove_dir_all(dir).unwrap();
    }

    /// A state directory given with `..` in it (`/srv/../var/lib/ipvlan`)
    /// is kept as given, and so are the symlinks to its files: they are
    /// ours. Before, every one was taken for someone else's: a second
    /// network's view refused, and a detach left the link and the
    /// directory, which then looked like an admin's.
    #[test]
    fn a_state_directory_spelled_with_dot_dot_knows_its_own_views() {
        let dir = scratch("dotdot");
        fs::create_dir_all(dir.join("x")).unwrap();
        let root = dir.join("x").join("..").join("state");
        let a = root.join("hosts").join("a");
        let union = root.join("hosts").join("containers").join("c1");
        append(&a, "x", &["10.0.0.2".parse().unwrap()]).unwrap();
        write_union(&union, std::slice::from_ref(&a)).unwrap();
        let etc = dir.join("etc");
        link(&etc, "c1", &a, &root).unwrap();
        check_view_is_ours(&etc, "c1", &root).unwrap();
        link(&etc, "c1", &union, &root).unwrap();
        assert_eq!(fs::read_link(etc.join("c1/hosts")).unwrap(), union);
        unlink(&etc, "c1", &root).unwrap();
        assert!(fs::symlink_metadata(etc.join("c1")).is_err());
        // A `..` past the tree still makes a link someone else's.
        let climbing = dir.join("etc").join("c2");
        fs::create_dir_all(&climbing).unwrap();
        let escape = root.join("hosts").join("..").join("..").join("elsewhere");
        std::os::unix::fs::symlink(&escape, climbing.join("hosts")).unwrap();
        assert!(check_view_is_ours(&etc, "c2", &root).is_err());
        unlink(&etc, "c2", &root).unwrap();
        assert_eq!(fs::read_link(climbing.join("hosts")).unwrap(), escape);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn views_replace_only_what_is_ours() {
        let dir = scratch("views");
        let root = dir.join("state");
        let a = root.join("hosts").join("a");
        let union = root.join("hosts").join("containers").join("c1");
        append(&a, "x", &["10.0.0.2".parse().unwrap()]).unwrap();
        write_union(&union, std::slice::from_ref(&a)).unwrap();
        let etc = dir.join("etc");

        // Nothing there: our directory (0755, whatever the umask) and link,
        // switched between our files, then all of it removed.
        link(&etc, "c1", &a, &root).unwrap();
        assert_eq!(resolve(&etc, "c1").unwrap(), fs::canonicalize(&a).unwrap());
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode(&etc.join("c1")), 0o755);
        link(&etc, "c1", &union, &root).unwrap();
        assert_eq!(fs::read_link(etc.join("c1/hosts")).unwrap(), union);
        check_view_is_ours(&etc, "c1", &root).unwrap();
        unlink(&etc, "c1", &root).unwrap();
        assert!(!etc.join("c1").exists());
        assert!(!made_dir_marker(&root, "c1").exists());

        // An admin's directory: our link goes in and out, the directory
        // keeps its mode and stays.
        let admin = etc.join("admin");
        fs::create_dir_all(&admin).unwrap();
        fs::set_permissions(&admin, fs::Permissions::from_mode(0o700)).unwrap();
        link(&etc, "admin", &a, &root).unwrap();
        assert_eq!(mode(&admin), 0o700);
        unlink(&etc, "admin", &root).unwrap();
        assert_eq!(mode(&admin), 0o700);
        assert_eq!(fs::read_dir(&admin).unwrap().count(), 0);

        // An admin's file, an admin's symlink (also one that climbs into
        // our tree by `..`), a file where the directory should be: refused
        // and left as they are, by link and unlink alike.
        let elsewhere = dir.join("elsewhere");
        fs::write(&elsewhere, "10.9.9.9\tgateway\n").unwrap();
        let sneaky = root.join("hosts").join("..").join("..").join("elsewhere");
        let hosts = admin.join("hosts");
        let cases: [&dyn Fn(); 3] = [
            &|| fs::write(&hosts, "10.8.8.8\tadmin\n").unwrap(),
            &|| std::os::unix::fs::symlink(&elsewhere, &hosts).unwrap(),
            &|| std::os::unix::fs::symlink(&sneaky, &hosts).unwrap(),
        ];
        for make in cases {
            make();
            let before = (fs::read_link(&hosts).ok(), fs::read(&hosts).unwrap());
            let why = format!(
                "{} exists and is not ours; ipvlan does not replace it",
                hosts.display()
            );
            assert_eq!(
                check_view_is_ours(&etc, "admin", &root)
                    .unwrap_err()
                    .to_string(),
                why
            );
            assert_eq!(link(&etc, "admin", &a, &root).unwrap_err().to_string(), why);
            unlink(&etc, "admin", &root).unwrap();
            assert_eq!(
                (fs::read_link(&hosts).ok(), fs::read(&hosts).unwrap()),
                before
            );
            fs::remove_file(&hosts).unwrap();
        }
        // An admin's alias of another entry (`x` for `c2`, ours): refused
        // by its name, and c2's view left as it is. Before, it was taken
        // for a directory holding our link, which the attach of `x`
        // switched to x's file and its detach removed.
        let b = root.join("hosts").join("b");
        append(&b, "y", &["10.1.0.2".parse().unwrap()]).unwrap();
        link(&etc, "c2", &a, &root).unwrap();
        std::os::unix::fs::symlink("c2", etc.join("x")).unwrap();
        let why = format!(
            "{} is a link to another entry of {}; ipvlan does not follow it",
            etc.join("x").display(),
            etc.display()
        );
        assert_eq!(
            check_view_is_ours(&etc, "x", &root)
                .unwrap_err()
                .to_string(),
            why
        );
        assert_eq!(link(&etc, "x", &b, &root).unwrap_err().to_string(), why);
        assert_eq!(fs::read_link(etc.join("c2/hosts")).unwrap(), a);
        // A link to a directory elsewhere is followed, as before.
        let elsewhere_dir = dir.join("conf-x");
        fs::create_dir_all(&elsewhere_dir).unwrap();
        fs::remove_file(etc.join("x")).unwrap();
        std::os::unix::fs::symlink(&elsewhere_dir, etc.join("x")).unwrap();
        link(&etc, "x", &b, &root).unwrap();
        assert_eq!(fs::read_link(elsewhere_dir.join("hosts")).unwrap(), b);
        unlink(&etc, "x", &root).unwrap();
        assert!(fs::symlink_metadata(elsewhere_dir.join("hosts")).is_err());
        unlink(&etc, "c2", &root).unwrap();
        fs::write(etc.join("plain"), "").unwrap();
        let err = link(&etc, "plain", &a, &root).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} exists and is not a directory; ipvlan does not replace it",
                etc.join("plain").display()
            )
        );
        unlink(&etc, "plain", &root).unwrap();
        assert!(etc.join("plain").is_file());
        fs::remove_dir_all(dir).unwrap();
    }

    use crate::store::records::fixtures;
    use crate::store::StateDir;

    fn record(name: &str, id: char) -> NetworkRecord {
        fixtures::network(name, id, Vec::new())
    }

    fn attached(network: &NetworkRecord, container: &str, addr: &str) -> EndpointRecord {
        fixtures::endpoint(network, container, container, addr)
    }

    /// `c1` on two networks: a union view, markers, two network files.
    fn two_networks(root: &Path, etc: &Path) -> Result<(), Error> {
        let state = StateDir::open(root)?;
        let locked = state.lock()?;
        let networks = [record("n1", 'a'), record("n2", 'b')];
        let endpoints = [
            attached(&networks[0], "c1", "10.0.0.2/24"),
            attached(&networks[1], "c1", "10.1.0.2/24"),
        ];
        // Filed as an attach files them: the container's index first.
        let mut index = ContainerIndex::read(&locked, "c1")?;
        for endpoint in &endpoints {
            index.add(&locked, &endpoint.network_id, &endpoint.id)?;
            locked.put_endpoint(endpoint)?;
        }
        for network in &networks {
            locked.put_network(network)?;
        }
        let names = Names::new(&locked, etc);
        for (network, endpoint) in networks.iter().zip(&endpoints) {
            names.add(network, endpoint, None)?;
        }
        Ok(())
    }

    /// Leaving its second network, a container's view is pointed at the
    /// network it stays on before its union file goes: where the
    /// repointing fails (here someone else's file where our temporary
    /// link is made), the view still leads to the union. Before, the union
    /// went first, and the view led to nothing.
    #[test]
    fn a_view_is_repointed_before_its_union_file_goes() {
        let dir = scratch("repoint");
        let (root, etc) = (dir.join("state"), dir.join("etc"));
        two_networks(&root, &etc).unwrap();
        let view = etc.join("c1/hosts");
        let union = fs::read_link(&view).unwrap();
        fs::write(etc.join("c1").join(TEMPORARY), "not ours").unwrap();
        let state = StateDir::open(&root).unwrap();
        let locked = state.lock().unwrap();
        let n2 = record("n2", 'b');
        let mut leaving = attached(&n2, "c1", "10.1.0.2/24");
        leaving.state = EndpointState::Detaching;
        let names = Names::new(&locked, &etc);
        names.remove(&n2, &leaving).unwrap();
        assert_eq!(names.take_notes().len(), 1, "the view left as it is, said");
        assert_eq!(fs::read_link(&view).unwrap(), union);
        assert!(
            fs::metadata(&view).is_ok(),
            "{} leads to nothing",
            view.display()
        );
        // Once it can be, the view is repointed, then the union goes.
        fs::remove_file(etc.join("c1").join(TEMPORARY)).unwrap();
        names.remove(&n2, &leaving).unwrap();
        // To the network's file by its short name.
        let a = "a".repeat(64);
        assert_eq!(fs::read_link(&view).unwrap(), locked.hosts_alias_path(&a));
        assert_eq!(
            fs::canonicalize(&view).unwrap(),
            fs::canonicalize(locked.hosts_path(&a)).unwrap()
        );
        assert!(!union.exists(), "{}", union.display());
        drop(locked);
        fs::remove_dir_all(dir).unwrap();
    }

    /// A container on two networks whose `/etc/netns/NAME` someone
    /// replaced with a link that cannot be followed (a loop): another
    /// container's attach to one of them, and the network's rebuild, leave
    /// it alone and go on, as for any other entry not ours. Before, its
    /// `ELOOP` failed both (and `restore`'s repair of the whole network).
    #[test]
    fn a_view_that_cannot_be_followed_stops_only_its_own_attach() {
        let dir = scratch("loop");
        let (root, etc) = (dir.join("state"), dir.join("etc"));
        two_networks(&root, &etc).unwrap();
        fs::remove_dir_all(etc.join("c1")).unwrap();
        std::os::unix::fs::symlink("c1", etc.join("c1")).unwrap();
        let state = StateDir::open(&root).unwrap();
        let locked = state.lock().unwrap();
        let n1 = record("n1", 'a');
        let c2 = attached(&n1, "c2", "10.0.0.3/24");
        attach(&locked, &etc, &n1, &c2).unwrap();
        Names::new(&locked, &etc).rebuild(&n1).unwrap();
        let refused = check_view_is_ours(&etc, "c1", &root).unwrap_err();
        assert_eq!(
            refused.kind(),
            crate::driver::ErrorKind::AlreadyExists,
            "{refused}"
        );
        assert_eq!(fs::read_link(etc.join("c1")).unwrap(), Path::new("c1"));
        assert!(fs::read_link(etc.join("c2/hosts")).is_ok());
        drop(locked);
        fs::remove_dir_all(dir).unwrap();
    }

    /// A container on two networks whose record on one of them is
    /// damaged (a file cut short): another container's attach to the other
    /// network, its detach and the network's rebuild go on, and say which
    /// view they could not bring up to date. Before, each failed on it,
    /// the detach after its link was gone, and `restore` the same way.
    /// The leaving container's names are still taken out of that view (a
    /// copy of its networks' files): its address goes back to the pool.
    /// Where even that cannot be done, the detach fails, as before.
    #[test]
    fn a_damaged_record_of_another_container_stops_no_attach_or_detach() {
        let dir = scratch("damaged-other");
        let (root, etc) = (dir.join("state"), dir.join("etc"));
        two_networks(&root, &etc).unwrap();
        let damaged = root.join(format!(
            "endpoints/{}/{}.json",
            "b".repeat(64),
            attached(&record("n2", 'b'), "c1", "10.1.0.2/24").id
        ));
        assert!(damaged.is_file(), "{}", damaged.display());
        let whole = fs::read(&damaged).unwrap();
        let state = StateDir::open(&root).unwrap();
        let locked = state.lock().unwrap();
        let n1 = record("n1", 'a');
        let c2 = attached(&n1, "c2", "10.0.0.3/24");
        let c3 = attached(&n1, "c3", "10.0.0.4/24");
        attach(&locked, &etc, &n1, &c2).unwrap();
        let c1_view = etc.join("c1/hosts");
        let names_of = |name: &str| {
            fs::read_to_string(&c1_view)
                .unwrap()
                .lines()
                .any(|line| names_host(line, name))
        };
        assert!(names_of("c2"), "c1's union names c2 once attached");
        fs::write(&damaged, "{\"version\": 1").unwrap();
        attach(&locked, &etc, &n1, &c3).unwrap();
        assert!(!names_of("c3"), "c1's view is left as it was");
        let names = Names::new(&locked, &etc);
        let leaving = |endpoint: &EndpointRecord| EndpointRecord {
            state: EndpointState::Detaching,
            ..endpoint.clone()
        };
        names.remove(&n1, &leaving(&c2)).unwrap();
        let notes = names.take_notes();
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(
            notes[0].starts_with("the names view of container c1 was not brought up to date: ")
                && notes[0].contains(&damaged.display().to_string()),
            "{notes:?}"
        );
        // c2's own view went; c1's no longer names it (it named c2's
        // address, which goes back to the pool), and names c1 still.
        assert!(!etc.join("c2").exists());
        assert!(!names_of("c2") && names_of("c1"));
        names.rebuild(&n1).unwrap();
        assert_eq!(names.take_refresh_failures().len(), 1);
        // A union that cannot be edited either (a directory in its
        // place): the detach fails, its addresses held for `restore`.
        let union = locked.union_hosts_path("c1");
        let union_text = fs::read(&union).unwrap();
        fs::remove_file(&union).unwrap();
        fs::create_dir(&union).unwrap();
        names.remove(&n1, &leaving(&c3)).unwrap_err();
        fs::remove_dir(&union).unwrap();
        fs::write(&union, union_text).unwrap();
        // Mended, every view is brought up to date again.
        fs::write(&damaged, whole).unwrap();
        names.rebuild(&n1).unwrap();
        assert_eq!(names.take_refresh_failures(), Vec::<String>::new());
        assert!(names_of("c3"));
        drop(locked);
        fs::remove_dir_all(dir).unwrap();
    }

    /// A link (or FIFO) where a hosts file, union view or marker belongs
    /// is refused; what it names is neither created nor changed.
    #[test]
    fn hosts_files_unions_and_markers_are_never_followed() {
        let dir = scratch("nofollow");
        let victim = dir.join("victim");
        let original = "127.0.0.1\tlocalhost\n10.9.9.9\tkeep\n";
        fs::write(&victim, original).unwrap();
        let absent = dir.join("absent");
        let refused = |path: &Path| {
            format!(
                "refusing {}: is a symbolic link; state files are never followed",
                path.display()
            )
        };

        let network_file = dir.join("net");
        std::os::unix::fs::symlink(&absent, &network_file).unwrap();
        let err = ensure_file(&network_file).unwrap_err();
        assert_eq!(err.to_string(), refused(&network_file));
        assert!(!absent.exists(), "created through a dangling link");
        fs::remove_file(&network_file).unwrap();
        std::os::unix::fs::symlink(&victim, &network_file).unwrap();
        let err = append(&network_file, "c9", &["10.0.0.9".parse().unwrap()]).unwrap_err();
        assert_eq!(err.to_string(), refused(&network_file));

        let union = dir.join("union");
        std::os::unix::fs::symlink(&victim, &union).unwrap();
        let source = dir.join("source");
        append(&source, "x", &["10.0.0.2".parse().unwrap()]).unwrap();
        let err = write_union(&union, std::slice::from_ref(&source)).unwrap_err();
        assert_eq!(err.to_string(), refused(&union));
        fs::remove_file(&union).unwrap();
        let fifo = dir.join("fifo");
        crate::sys::make_fifo(&fifo);
        let err = write_union(&union, std::slice::from_ref(&fifo)).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("refusing {}: is a FIFO, not a regular file", fifo.display())
        );
        assert_eq!(fs::read_to_string(&victim).unwrap(), original);

        // Through the driver's own path: the marker of c1 in n1.
        let root = dir.join("state");
        let etc = dir.join("etc");
        let marker = root.join(format!("hosts/unions/{}/c1", "a".repeat(64)));
        fs::create_dir_all(&root).unwrap();
        StateDir::open(&root).unwrap();
        fs::create_dir_all(marker.parent().unwrap()).unwrap();
        fs::set_permissions(marker.parent().unwrap(), fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(&absent, &marker).unwrap();
        let err = two_networks(&root, &etc).unwrap_err();
        assert_eq!(err.to_string(), refused(&marker));
        assert!(!absent.exists(), "marker created through a dangling link");
        fs::remove_file(&marker).unwrap();
        // And the union view itself.
        let view = root.join("hosts/containers/c1");
        std::os::unix::fs::symlink(&victim, &view).unwrap();
        let err = two_networks(&root, &etc).unwrap_err();
        assert_eq!(err.to_string(), refused(&view));
        assert_eq!(fs::read_to_string(&victim).unwrap(), original);
        fs::remove_dir_all(dir).unwrap();
    }

    /// Runs the unit test `test` again in a child process under `umask`
    /// (the whole process's), with `child_env` naming `dir` for it.
    fn rerun_under_umask(
        test: &str,
        umask: &str,
        child_env: &str,
        dir: &Path,
    ) -> std::process::Output {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "umask {umask} && exec \"$0\" --exact {test} --test-threads=1"
            ))
            .arg(std::env::current_exe().unwrap())
            .env(child_env, dir)
            .output()
            .unwrap()
    }

    /// `/etc/netns/NAME` is never writable by others, not even between its
    /// `mkdir` and its `chmod`: a command killed there under umask 000 left
    /// it 0777 for good (a local user could plant what `ip netns exec`
    /// mounts over `/etc` as root). Runs in a child process, since the
    /// umask is the whole process's.
    #[test]
    fn a_view_directory_is_never_open_to_others_under_umask_000() {
        const TEST: &str =
            "driver::hosts::tests::a_view_directory_is_never_open_to_others_under_umask_000";
        const CHILD_ENV: &str = "IPVLAN_TEST_VIEW_DIR_UMASK";
        use std::os::unix::fs::MetadataExt;
        if let Ok(dir) = std::env::var(CHILD_ENV) {
            let dir = PathBuf::from(dir);
            let (root, etc) = (dir.join("state"), dir.join("etc"));
            let target = root.join("hosts").join("a");
            append(&target, "x", &["10.0.0.2".parse().unwrap()]).unwrap();
            // What a kill right after the `mkdir` leaves, and the first
            // directory's mode seen from a second view's `mkdir` (its
            // parent, `/etc/netns`, made by the first).
            crate::fault::unwind::at("etc netns: after mkdir");
            let killed = std::panic::catch_unwind(|| link(&etc, "c1", &target, &root));
            crate::fault::unwind::assert_unwound_at(killed, "etc netns: after mkdir");
            let seen = std::rc::Rc::new(std::cell::Cell::new(0));
            let in_hook = seen.clone();
            let probe = etc.join("c2");
            crate::fault::unwind::then("etc netns: after mkdir", move || {
                in_hook.set(fs::metadata(&probe).unwrap().mode() & 0o7777);
            });
            link(&etc, "c2", &target, &root).unwrap();
            fs::write(dir.join("seen"), format!("{:o}", seen.get())).unwrap();
            return;
        }
        let dir = scratch("viewumask");
        let out = rerun_under_umask(TEST, "000", CHILD_ENV, &dir);
        assert!(out.status.success(), "{out:?}");
        let mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
        assert_eq!(
            mode(&dir.join("etc/c1")),
            0o755,
            "left by a kill after its mkdir"
        );
        assert_eq!(
            fs::read_to_string(dir.join("seen")).unwrap(),
            "755",
            "before its chmod"
        );
        assert_eq!(mode(&dir.join("etc/c2")), 0o755);
        fs::remove_dir_all(dir).unwrap();
    }

    /// Network files and union views 0644 (read in containers), markers
    /// 0600, their directories 0700, under umask 000 and 077. Runs in a
    /// child process, since the umask is the whole process's.
    #[test]
    fn union_views_and_markers_ignore_the_umask() {
        const TEST: &str = "driver::hosts::tests::union_views_and_markers_ignore_the_umask";
        const CHILD_ENV: &str = "IPVLAN_TEST_UNION_UMASK";
        if let Ok(dir) = std::env::var(CHILD_ENV) {
            let dir = PathBuf::from(dir);
            two_networks(&dir.join("state"), &dir.join("etc")).unwrap();
            return;
        }
        use std::os::unix::fs::MetadataExt;
        for umask in ["000", "077"] {
            let dir = scratch(&format!("umask{umask}"));
            let out = rerun_under_umask(TEST, umask, CHILD_ENV, &dir);
            assert!(out.status.success(), "umask {umask}: {out:?}");
            let root = dir.join("state");
            let mode = |rel: &str| fs::metadata(root.join(rel)).unwrap().mode() & 0o7777;
            let a = "a".repeat(64);
            let b = "b".repeat(64);
            for (rel, expected) in [
                (format!("hosts/{a}"), 0o644),
                (format!("hosts/{b}"), 0o644),
                ("hosts/containers".to_string(), 0o700),
                ("hosts/containers/c1".to_string(), 0o644),
                ("hosts/unions".to_string(), 0o700),
                (format!("hosts/unions/{a}"), 0o700),
                (format!("hosts/unions/{a}/c1"), 0o600),
                (format!("hosts/unions/{b}/c1"), 0o600),
                ("hosts/etc-netns".to_string(), 0o700),
                ("hosts/etc-netns/c1".to_string(), 0o600),
            ] {
                assert_eq!(mode(&rel), expected, "umask {umask}: {rel}");
            }
            // `/etc/netns/NAME` 0755; `/etc/netns`, made by the first
            // attach, never more open than 0755 (others could plant what
            // `ip netns exec` mounts over `/etc`).
            let etc_mode = |p: &Path| fs::metadata(p).unwrap().mode() & 0o7777;
            let narrowed = 0o755 & !u32::from_str_radix(umask, 8).unwrap();
            assert_eq!(etc_mode(&dir.join("etc/c1")), 0o755, "umask {umask}");
            assert_eq!(etc_mode(&dir.join("etc")), narrowed, "umask {umask}");
            // And the walk of `restore` accepts every directory made.
            let state = StateDir::open(&root).unwrap();
            let walked = state.lock().and_then(|locked| locked.clean_temporaries());
            assert!(walked.is_ok(), "umask {umask}: {walked:?}");
            fs::remove_dir_all(dir).unwrap();
        }
    }
    /// Files `endpoint` as an attach does (the container's index, the
    /// record) and adds its names with the view expected missing when the
    /// check before the attach found nothing at `ETC_NETNS/NAME`, as
    /// `Manager::attach_checked` does.
    fn attach(
        locked: &Locked<'_>,
        etc: &Path,
        network: &NetworkRecord,
        endpoint: &EndpointRecord,
    ) -> Result<(), Error> {
        let container = endpoint.container.as_deref().unwrap();
        let missing = check_view_is_ours(etc, container, locked.root())?;
        let mut index = ContainerIndex::read(locked, container)?;
        index.add(locked, &endpoint.network_id, &endpoint.id)?;
        locked.put_endpoint(endpoint)?;
        let mut names = Names::new(locked, etc);
        names.expect_missing_view(Some(container.to_string()).filter(|_| missing));
        names.add(network, endpoint, Some(&index))
    }

    /// A container on one network whose `/etc/netns/NAME` an admin (or a
    /// cleanup script) removed, then attached to a second: the view made
    /// fresh for it is found, not made twice, by its network's refresh
    /// (which failed with "exists and is not ours" and left the view
    /// dangling once undone).
    #[test]
    fn a_second_network_after_the_view_was_removed_makes_the_union_view() {
        let dir = scratch("missing-view");
        let (root, etc) = (dir.join("state"), dir.join("etc"));
        let state = StateDir::open(&root).unwrap();
        let locked = state.lock().unwrap();
        let (n1, n2) = (record("n1", 'a'), record("n2", 'b'));
        locked.put_network(&n1).unwrap();
        locked.put_network(&n2).unwrap();
        attach(&locked, &etc, &n1, &attached(&n1, "c1", "10.0.0.2/24")).unwrap();
        fs::remove_dir_all(etc.join("c1")).unwrap();
        attach(&locked, &etc, &n2, &attached(&n2, "c1", "10.1.0.2/24")).unwrap();
        let view = fs::read_to_string(etc.join("c1/hosts")).unwrap();
        assert!(
            view.contains("10.0.0.2\tc1") && view.contains("10.1.0.2\tc1"),
            "{view}"
        );
        assert_eq!(
            fs::read_link(etc.join("c1/hosts")).unwrap(),
            root.join("hosts/containers/c1")
        );
        fs::remove_dir_all(dir).unwrap();
    }

    /// A symbolic link at `ETC_NETNS/NAME` to a directory that is not
    /// there (yet) is someone else's entry: refused by the check made
    /// before anything is taken, not by the attach's `mkdir` after its
    /// link was made; an unlink leaves it.
    #[test]
    fn a_dangling_link_at_the_entry_is_refused_before_anything_is_taken() {
        let dir = scratch("dangling-entry");
        let (root, etc) = (dir.join("state"), dir.join("etc"));
        fs::create_dir_all(&etc).unwrap();
        let elsewhere = dir.join("not-mounted-yet");
        std::os::unix::fs::symlink(&elsewhere, etc.join("c1")).unwrap();
        let err = check_view_is_ours(&etc, "c1", &root).unwrap_err();
        assert!(
            err.to_string()
                .contains("is a symbolic link to a missing directory"),
            "{err}"
        );
        let a = root.join("hosts").join("a".repeat(64));
        assert!(link(&etc, "c1", &a, &root).is_err());
        unlink(&etc, "c1", &root).unwrap();
        assert_eq!(fs::read_link(etc.join("c1")).unwrap(), elsewhere);
        assert!(!elsewhere.exists());
        fs::remove_dir_all(dir).unwrap();
    }

    /// Our directory removed by the admin (`rm -r`), who later makes one
    /// of their own, empty yet: the container's detach (or `rm`, or a
    /// `restore`) leaves it, and the marker goes. Before, the marker alone
    /// made it ours, and it was removed.
    #[test]
    fn a_directory_made_after_ours_went_is_left_by_the_detach() {
        let dir = scratch("stale-marker-detach");
        let (root, etc) = (dir.join("state"), dir.join("etc"));
        let a = root.join("hosts").join("a".repeat(64));
        link(&etc, "c0", &a, &root).unwrap();
        fs::remove_dir_all(etc.join("c0")).unwrap();
        // Inode times tick coarsely: well apart.
        std::thread::sleep(std::time::Duration::from_millis(1100));
        fs::create_dir(etc.join("c0")).unwrap();
        unlink(&etc, "c0", &root).unwrap();
        assert!(etc.join("c0").is_dir(), "the admin's directory was removed");
        assert!(!made_dir_marker(&root, "c0").exists());
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A detach with `/etc` and the state directory on two file systems
    /// syncs what it, or a detach killed before it, took out of
    /// `/etc/netns` before the marker goes: a power cut there could keep
    /// the marker's removal and lose theirs, leaving our link in a
    /// directory nothing calls ours. On one file system the journal orders
    /// them, and nothing is synced. Before, no detach synced them.
    #[test]
    fn a_detach_syncs_etc_netns_before_its_marker_only_across_file_systems() {
        use std::os::unix::fs::MetadataExt;
        use std::rc::Rc;
        let dir = scratch("two-file-systems");
        let root = dir.join("state");
        let a = root.join("hosts").join("a".repeat(64));
        // A memory file system beside the temporary directory's.
        let here = fs::metadata(&dir).unwrap().dev();
        let suffix = dir.file_name().unwrap().to_string_lossy().to_string() + "-etc";
        let elsewhere = ["/dev/shm", "/run"]
            .iter()
            .map(|base| Path::new(base).join(&suffix))
            .find(|candidate| {
                let _ = fs::remove_dir_all(candidate);
                fs::create_dir_all(candidate).is_ok()
                    && fs::metadata(candidate).is_ok_and(|meta| meta.dev() != here)
            })
            .expect(
                "a writable /dev/shm or /run on another file system than the temporary directory",
            );
        // How each round's view is left before the detach: whole, given an
        // admin's file, or as a detach killed after taking our link out
        // (its marker touched) and after its `rmdir` left it.
        #[derive(Clone, Copy, Debug, PartialEq)]
        enum Before {
            Whole,
            AdminsFile,
            LinkTakenOut,
            Removed,
        }
        let rounds = [
            (dir.join("etc"), Before::Whole, false),
            (elsewhere.clone(), Before::Whole, true),
            (elsewhere.clone(), Before::AdminsFile, true),
            (elsewhere.clone(), Before::LinkTakenOut, true),
            (elsewhere.clone(), Before::Removed, true),
        ];
        for (etc, before, across) in rounds {
            link(&etc, "c0", &a, &root).unwrap();
            let view = etc.join("c0");
            match before {
                Before::Whole => {}
                Before::AdminsFile => {
                    fs::write(view.join("resolv.conf"), "nameserver 10.0.0.1\n").unwrap()
                }
                Before::LinkTakenOut => {
                    fs::write(view.join("resolv.conf"), "nameserver 10.0.0.1\n").unwrap();
                    fs::remove_file(view.join("hosts")).unwrap();
                }
                Before::Removed => fs::remove_dir_all(&view).unwrap(),
            }
            // At the sync: our link or the view gone, the marker there.
            let seen = Rc::new(std::cell::Cell::new(None));
            let at_sync = Rc::clone(&seen);
            let marker = made_dir_marker(&root, "c0");
            let (view_there, marker_there) = (view.clone(), marker.clone());
            crate::fault::unwind::then("etc netns: after fsync", move || {
                let link_gone = fs::symlink_metadata(view_there.join("hosts")).is_err();
                at_sync.set(Some((
                    link_gone,
                    view_there.exists(),
                    marker_there.exists(),
                )));
            });
            unlink(&etc, "c0", &root).unwrap();
            let kept = matches!(before, Before::AdminsFile | Before::LinkTakenOut);
            let expected = across.then_some((true, kept, true));
            assert_eq!(seen.get(), expected, "{before:?}, across: {across}");
            assert!(!marker.exists(), "{before:?}");
            // Disarmed for the next round.
            crate::fault::unwind::then("etc netns: unused", || {});
            let _ = fs::remove_dir_all(&view);
        }
        fs::remove_dir_all(&elsewhere).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Our `ETC_NETNS/NAME` kept by a detach for an admin's file, then
    /// removed by the admin, who later makes a directory of their own at
    /// that name: an attach and detach there leave that directory (the
    /// marker names the directory it marked).
    #[test]
    fn a_marker_outliving_our_directory_never_claims_a_new_one() {
        let dir = scratch("stale-marker");
        let (root, etc) = (dir.join("state"), dir.join("etc"));
        let a = root.join("hosts").join("a".repeat(64));
        link(&etc, "c1", &a, &root).unwrap();
        fs::write(etc.join("c1/resolv.conf"), "nameserver 10.0.0.1\n").unwrap();
        unlink(&etc, "c1", &root).unwrap();
        assert!(etc.join("c1/resolv.conf").exists());
        fs::remove_dir_all(etc.join("c1")).unwrap();
        fs::create_dir(etc.join("c1")).unwrap();
        link(&etc, "c1", &a, &root).unwrap();
        unlink(&etc, "c1", &root).unwrap();
        assert!(etc.join("c1").is_dir(), "the admin's directory was removed");
        assert!(!made_dir_marker(&root, "c1").exists());
        // Ours, given a file, then emptied by whoever put it there: theirs
        // still, left for them to remove.
        link(&etc, "c2", &a, &root).unwrap();
        fs::write(etc.join("c2/resolv.conf"), "nameserver 10.0.0.1\n").unwrap();
        unlink(&etc, "c2", &root).unwrap();
        fs::remove_file(etc.join("c2/resolv.conf")).unwrap();
        link(&etc, "c2", &a, &root).unwrap();
        unlink(&etc, "c2", &root).unwrap();
        assert!(etc.join("c2").is_dir());
        assert!(!made_dir_marker(&root, "c2").exists());
        // Theirs removed: the next attach makes the directory, ours again,
        // removed by the detach.
        link(&etc, "c3", &a, &root).unwrap();
        fs::write(etc.join("c3/resolv.conf"), "nameserver 10.0.0.1\n").unwrap();
        unlink(&etc, "c3", &root).unwrap();
        fs::remove_dir_all(etc.join("c3")).unwrap();
        link(&etc, "c3", &a, &root).unwrap();
        unlink(&etc, "c3", &root).unwrap();
        assert!(!etc.join("c3").exists());
        assert!(!made_dir_marker(&root, "c3").exists());
        fs::remove_dir_all(dir).unwrap();
    }
}
