//! File primitives every state write goes through: atomic replace,
//! exclusive create with content, append, in-place line removal.
//!
//! A write is never visible half done: contents go to a temporary file in
//! the same directory (`.tmp-<name>`, one per target, so a crash leaves at
//! most one stale file per target and the next write removes it), are
//! synced, then renamed (replace) or hard-linked (exclusive create, see
//! the address files) into place. Directory syncs are left to the caller so a transaction touching
//! several files in one directory syncs it once.
//!
//! Nothing here follows a symbolic link to a state file or blocks on one
//! that is not a regular file: an existing file is opened through
//! [`open_regular`] (`O_NOFOLLOW | O_NONBLOCK`, then checked to be a
//! regular file) and read through [`read_capped`] (a size limit), and a
//! new one is made with `O_EXCL`, which never follows a link. Whoever
//! planted a link to `/etc/shadow`, a FIFO or `/dev/zero` where a state
//! file belongs gets a refusal naming it, and the target stays untouched.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of every state file but the hosts files.
pub const FILE_MODE: u32 = 0o600;
/// Mode of the state directory and its subdirectories.
pub const DIR_MODE: u32 = 0o700;
/// The largest record, address file, cursor or host id read: ours are a
/// few KiB, so anything bigger is damage, not data, and must not be read
/// into memory whole.
pub const RECORD_MAX: u64 = 1 << 20;
/// The largest hosts file read: one line per container address, so a
/// limit far above any real network's file.
pub const HOSTS_MAX: u64 = 64 << 20;

/// Why a path was refused without being opened or followed: a symbolic
/// link, something that is not a regular file, a file over its size
/// limit. Carried inside an [`io::Error`]; see [`refusal`].
#[derive(Debug)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

fn refuse(reason: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, Refused(reason.into()))
}

/// The reason when `error` is a refusal of [`open_regular`],
/// [`read_capped`] or the checks of the state directory.
pub fn refusal(error: &io::Error) -> Option<&str> {
    error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Refused>())
        .map(|refused| refused.0.as_str())
}

/// What a file type is, for messages.
pub fn describe(kind: fs::FileType) -> &'static str {
    if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else if kind.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

fn not_regular(kind: fs::FileType) -> io::Error {
    if kind.is_symlink() {
        refuse("is a symbolic link; state files are never followed")
    } else {
        refuse(format!("is {}, not a regular file", describe(kind)))
    }
}

/// Opens an existing (or, with `create`, possibly new) state file with
/// `options` plus `O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC`, and only if it is
/// a regular file: a symbolic link, FIFO, device or socket is refused
/// (see [`refusal`]) before it is opened, so no open blocks or has a
/// device's side effects, and checked again on the descriptor.
pub fn open_regular(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    match fs::symlink_metadata(path) {
        Ok(meta) if !meta.file_type().is_file() => return Err(not_regular(meta.file_type())),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let file = options
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| {
            // Replaced by a link since the check above.
            if e.raw_os_error() == Some(libc::ELOOP) {
                refuse("is a symbolic link; state files are never followed")
            } else {
                e
            }
        })?;
    let kind = file.metadata()?.file_type();
    if !kind.is_file() {
        return Err(not_regular(kind));
    }
    Ok(file)
}

/// Whether `dir` exists (`Ok(false)` when not) as a directory we may
/// trust: a real directory (not a symbolic link to one), owned by `euid`,
/// writable by nobody else (no group or other write bit), since whoever
/// can write in it can plant links or FIFOs where our files belong.
/// Anything else is refused (see [`refusal`]) with what is wrong.
pub fn check_dir(dir: &Path, euid: u32) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let meta = match fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err(refuse(
            "is a symbolic link; the state directory and its subdirectories must be real directories",
        ));
    }
    if !kind.is_dir() {
        return Err(refuse(format!("is {}, not a directory", describe(kind))));
    }
    if meta.uid() != euid {
        return Err(refuse(format!(
            "is owned by uid {}, not by uid {euid} that runs ipvlan",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
            (true, true) => "group and others",
            (true, false) => "its group",
            _ => "others",
        };
        return Err(refuse(format!(
            "is writable by {who} (mode {mode:04o}); only its owner may write in it (chmod go-w)"
        )));
    }
    Ok(true)
}

/// Reads all of `file`, refusing (see [`refusal`]) one over `max` bytes
/// without reading more than `max + 1`.
pub fn read_capped(file: &mut File, max: u64) -> io::Result<Vec<u8>> {
    let too_big = || {
        refuse(format!(
            "is larger than {max} bytes, more than any state file"
        ))
    };
    let len = file.metadata()?.len();
    if len > max {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(too_big());
    }
    Ok(bytes)
}

fn temp_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    target.with_file_name(format!(".tmp-{name}"))
}

/// Whether a directory entry is a leftover temporary file.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(".tmp-")
}

fn write_temp(target: &Path, contents: &[u8], mode: u32) -> io::Result<PathBuf> {
    let temp = temp_path(target);
    write_synced_new(&temp, contents, mode)?;
    Ok(temp)
}

/// Replaces `target` atomically as far as other processes can tell (temp,
/// rename) but without fsync: for hints whose loss or truncation by a
/// power cut is harmless (the allocation cursor).
pub fn replace_unsynced(target: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let temp = temp_path(target);
    crate::fault::point("store: before write");
    remove_stale(&temp)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)?;
    crate::fault::after("store: after write", file.write_all(contents))?;
    rename(&temp, target)
}

/// Removes a stale temporary, part of the write it precedes: no kill
/// points of its own, the write's bracket it.
fn remove_stale(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// `rename(2)` of a temporary just written: the write's "after write"
/// point is the moment before it, so it has only a point after.
fn rename(from: &Path, to: &Path) -> io::Result<()> {
    crate::fault::after("store: after rename", fs::rename(from, to))
}

/// Writes a fresh file at `path` (removing any old one first) and syncs
/// its data: the first half of an atomic write, for callers that publish
/// the file themselves.
pub fn write_synced_new(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    // A stale temporary may be a hard link to a live file (crash between
    // link and unlink); truncating it would corrupt that file, so unlink.
    crate::fault::point("store: before write");
    remove_stale(path)?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    file.write_all(contents)?;
    crate::fault::after("store: after write", file.sync_data())
}

/// Replaces `target` with `contents` atomically (temp, fsync, rename).
/// The caller syncs the directory.
pub fn replace(target: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let temp = write_temp(target, contents, mode)?;
    rename(&temp, target)
}

/// Hard-links `source` to `target`; `Ok(false)` when `target` exists.
/// Its one kill point is after: `source` was just written (or a link
/// attempt just failed), and that left the moment before.
pub fn link_new(source: &Path, target: &Path) -> io::Result<bool> {
    match crate::fault::after("store: after link", fs::hard_link(source, target)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes a file; `Ok(false)` when there was none.
pub fn remove_if_exists(path: &Path) -> io::Result<bool> {
    crate::fault::point("store: before unlink");
    match crate::fault::after("store: after unlink", fs::remove_file(path)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Reads a state file of at most [`RECORD_MAX`] bytes; `Ok(None)` when
/// there is none. See [`read_text_capped`].
pub fn read_if_exists(path: &Path) -> io::Result<Option<String>> {
    read_text_capped(path, RECORD_MAX)
}

/// Reads a state file through [`open_regular`] and [`read_capped`];
/// `Ok(None)` when there is none. Bytes that are not UTF-8 are an
/// [`io::ErrorKind::InvalidData`] error that is no refusal.
pub fn read_text_capped(path: &Path, max: u64) -> io::Result<Option<String>> {
    let mut file = match open_regular(path, OpenOptions::new().read(true)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    String::from_utf8(read_capped(&mut file, max)?)
        .map(Some)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Makes sure a finished rename, link or unlink in `dir` survives a power cut.
/// Called right after that change, whose "after" kill point is the moment
/// before the fsync, so this has only a point after.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    crate::fault::after("store: after fsync", File::open(dir)?.sync_all())
}

/// Creates `dir` and missing parents with mode 0700 whatever the umask
/// (which could only take bits away, never add them), durably: after each
/// `mkdir` its parent is synced, since a new directory's entry lives in
/// the parent and a power cut could otherwise lose the directory with
/// every synced file in it. Directories that exist cost one `stat`.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut next = Some(dir);
    while let Some(path) = next.filter(|p| !p.as_os_str().is_empty()) {
        match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => break,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a directory", path.display()),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(path),
            Err(e) => return Err(e),
        }
        next = path.parent();
    }
    for path in missing.into_iter().rev() {
        crate::fault::point("store: before mkdir");
        let made = fs::DirBuilder::new().mode(DIR_MODE).create(path);
        match crate::fault::after("store: after mkdir", made) {
            // Someone else made it meanwhile; syncing again is harmless.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            // A umask such as 0277 would leave even us without access.
            Ok(()) => fs::set_permissions(path, fs::Permissions::from_mode(DIR_MODE))?,
            Err(e) => return Err(e),
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        sync_dir(parent)?;
    }
    Ok(())
}

/// Appends one line (a `\n` is added) with a single `write`, creating the
/// file with exactly `mode` (whatever the umask) if needed. Appends never rewrite what is there, so a
/// reader never sees a torn file. No fsync: this serves hosts files, which
/// describe containers that a power cut ends as well.
pub fn append_line(path: &Path, line: &str, mode: u32) -> io::Result<()> {
    let mut file = match OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(mode)
        .open(path)
    {
        Ok(file) => {
            // The umask may have taken bits `mode` grants on purpose (hosts
            // files must be readable by whoever runs in a container).
            file.set_permissions(fs::Permissions::from_mode(mode))?;
            file
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            open_regular(path, OpenOptions::new().append(true))?
        }
        Err(e) => return Err(e),
    };
    let mut buf = String::with_capacity(line.len() + 1);
    buf.push_str(line.trim_end_matches('\n'));
    buf.push('\n');
    file.write_all(buf.as_bytes())
}

/// Removes, in place (same inode: bind mounts of the file stay valid), the
/// lines for which `remove` is true, and returns how many went.
///
/// Each removed line is overwritten with spaces, one small write each, so
/// the file stays well formed at every instant. When blank lines make up
/// more than half of a file over 4 KiB it is compacted: the kept lines
/// padded with newlines to the old length in one write, then truncated.
/// No fsync, as for [`append_line`].
pub fn remove_lines(path: &Path, remove: impl FnMut(&str) -> bool) -> io::Result<usize> {
    let mut file = match open_regular(path, OpenOptions::new().read(true).write(true)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let text = String::from_utf8(read_capped(&mut file, HOSTS_MAX)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))?;
    blank_lines(&mut file, &text, remove)
}

/// Overwrites each non-blank line of `file` (whose content is `text`) for
/// which `remove` is true with as many spaces, one small write each, so a
/// reader sees every line whole, old or blank, never a stale tail of a
/// shorter rewrite. When blank lines make up more than half of a file over
/// 4 KiB it is compacted: kept lines padded with newlines to the old length
/// in one write, then truncated. Returns how many lines were removed.
pub fn blank_lines(
    file: &mut File,
    text: &str,
    mut remove: impl FnMut(&str) -> bool,
) -> io::Result<usize> {
    let mut removed = 0;
    let mut blank = 0;
    let mut offset = 0u64;
    let mut kept = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let content = line.trim_end_matches('\n');
        if !content.trim().is_empty() && remove(content) {
            file.seek(SeekFrom::Start(offset))?;
            file.write_all(" ".repeat(content.len()).as_bytes())?;
            removed += 1;
            blank += line.len();
        } else if content.trim().is_empty() {
            blank += line.len();
        } else {
            kept.push_str(line);
        }
        offset += line.len() as u64;
    }
    if text.len() > 4096 && blank * 2 > text.len() {
        if !kept.is_empty() && !kept.ends_with('\n') {
            kept.push('\n');
        }
        let new_len = kept.len();
        kept.extend(std::iter::repeat('\n').take(text.len().saturating_sub(new_len)));
        file.seek(SeekFrom::Start(0))?;
        file.write_all(kept.as_bytes())?;
        file.set_len(new_len as u64)?;
    }
    Ok(removed)
}
