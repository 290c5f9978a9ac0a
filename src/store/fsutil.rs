//! File primitives every state write goes through: atomic replace,
//! exclusive create with content, append, in-place line removal.
//!
//! A write is never visible half done: contents go to a temporary file in
//! the same directory (`.tmp-<name>`, one per target, so a crash leaves at
//! most one stale file per target and the next write removes it), are
//! synced, then renamed into place. An entry that only names an id (an
//! address file, a name hint) is a symbolic link instead, made by one
//! `symlinkat` (exclusive) and read by `readlinkat`, never followed. Directory syncs are left to the caller so a transaction touching
//! several files in one directory syncs it once.
//!
//! Nothing here follows a symbolic link to a state file or blocks on one
//! that is not a regular file: an existing file is opened through
//! [`open_regular`] (`O_NOFOLLOW | O_NONBLOCK`, then checked to be a
//! regular file) and read through [`read_capped`] (a size limit), and a
//! new one is made with `O_EXCL`, which never follows a link. Whoever
//! planted a link to `/etc/shadow`, a FIFO or `/dev/zero` where a state
//! file belongs gets a refusal naming it, and the target stays untouched.

use std::ffi::{CStr, CString};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::BorrowedFd;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

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

/// Whether `a` and `b` are the same path, byte for byte. The store's
/// lookups among what a command holds (open directories, pending files,
/// held records and changes) compare this way: every path they hold is
/// built from the root by the same joins (the root normalised when the
/// store is opened, a directory a caller names normalised by
/// `StateDir::check_dir` and `ensure_dir`), so one file never has two
/// spellings there, and `Path`'s own equality, which parses both paths
/// into components whenever their bytes differ, was a fifth of a batch's
/// instructions.
///
/// Compared from the end: the paths held share the root and most of their
/// directories, and differ in their last name (an id), while musl's
/// `memcmp` goes a byte at a time from the front.
pub fn same_path(a: &Path, b: &Path) -> bool {
    let (a, b) = (
        a.as_os_str().as_encoded_bytes(),
        b.as_os_str().as_encoded_bytes(),
    );
    a.len() == b.len() && a.iter().rev().eq(b.iter().rev())
}

/// `dir/names[0]/names[1]/...` followed by `suffix` (`.json`), in one
/// allocation of its length: byte for byte what `join`ing each name in
/// turn and then adding the suffix to the last gives, for names that are
/// each one component (the store's: checked names, and its own directory
/// names). A `join` checks and grows the path at every call, about 400
/// instructions each, and a batch target's files took some 35 of them.
pub fn under(dir: &Path, names: &[&str], suffix: &str) -> std::path::PathBuf {
    // The store's root is a path it opened: UTF-8 whenever it was typed
    // as text; any other root goes the long way.
    let Some(dir_text) = dir.to_str() else {
        let mut joined = names
            .iter()
            .fold(dir.to_path_buf(), |path, name| path.join(name));
        joined.as_mut_os_string().push(suffix);
        return joined;
    };
    let len = dir_text.len() + names.iter().map(|name| name.len() + 1).sum::<usize>();
    let mut path = String::with_capacity(len + suffix.len());
    path.push_str(dir_text);
    for name in names {
        // As `PathBuf::push`: a separator unless the path is empty or
        // already ends with one.
        if !path.is_empty() && !path.ends_with('/') {
            path.push('/');
        }
        path.push_str(name);
    }
    path.push_str(suffix);
    std::path::PathBuf::from(path)
}

/// `path` spelled as the store spells the paths it builds (see
/// [`same_path`]): without a trailing `/`, a `.` or an empty component
/// after the first. Borrowed when it is spelled so already, as every path
/// the store builds is (a scan, not a parse into components).
pub fn plain_spelling(path: &Path) -> std::borrow::Cow<'_, Path> {
    let bytes = path.as_os_str().as_encoded_bytes();
    let mut names = bytes.split(|b| *b == b'/').skip(1);
    let plain = !bytes.ends_with(b"/") && names.all(|name| !name.is_empty() && name != b".");
    if plain {
        std::borrow::Cow::Borrowed(path)
    } else {
        std::borrow::Cow::Owned(path.components().collect())
    }
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
    let meta = match fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    check_dir_meta(&meta, euid)?;
    Ok(true)
}

/// The checks of [`check_dir`] on what `lstat` or `fstat` said.
fn check_dir_meta(meta: &fs::Metadata, euid: u32) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    check_dir_mode(meta.mode(), meta.uid(), euid)
}

/// The checks of [`check_dir`] on an `st_mode` and `st_uid`.
pub fn check_dir_mode(st_mode: u32, uid: u32, euid: u32) -> io::Result<()> {
    match st_mode & libc::S_IFMT {
        libc::S_IFDIR => {}
        libc::S_IFLNK => {
            return Err(refuse(
                "is a symbolic link; the state directory and its subdirectories must be real directories",
            ))
        }
        _ => {
            return Err(refuse(format!(
                "is {}, not a directory",
                describe_mode(st_mode)
            )))
        }
    }
    if uid != euid {
        return Err(refuse(format!(
            "is owned by uid {uid}, not by uid {euid} that runs ipvlan"
        )));
    }
    let mode = st_mode & 0o7777;
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
    Ok(())
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
    let bytes = read_regular(file, len, max)?;
    if bytes.len() as u64 > max {
        return Err(too_big());
    }
    Ok(bytes)
}

/// Reads the regular file `file` of `len` bytes (its `fstat` length,
/// at most `max`), never more than `max + 1` bytes. One `read(2)` of
/// `len + 1` bytes: a regular file's read comes back short only at its
/// end, so a short one is the whole file without the read that returns
/// 0; a full one means the file grew meanwhile, and the rest is read to
/// its end (still capped).
fn read_regular(file: &mut File, len: u64, max: u64) -> io::Result<Vec<u8>> {
    let mut bytes = vec![0u8; len as usize + 1];
    let n = loop {
        match file.read(&mut bytes) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => break other?,
        }
    };
    bytes.truncate(n);
    if n as u64 > len {
        // Through `dyn Read`, as the plugin's capped reads: one copy of the
        // standard library's loop for all of them.
        (file as &mut dyn Read)
            .take(max + 1 - n as u64)
            .read_to_end(&mut bytes)?;
    }
    Ok(bytes)
}

/// Whether a directory entry is a leftover temporary file.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with(".tmp-")
}

/// Reads a state file through [`open_regular`] and [`read_capped`];
/// `Ok(None)` when there is none. Bytes that are not UTF-8 are an
/// [`io::ErrorKind::InvalidData`] error that is no refusal.
pub fn read_text_capped(path: &Path, max: u64) -> io::Result<Option<String>> {
    read_bytes_capped(path, max)?
        .map(|bytes| {
            String::from_utf8(bytes)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
        })
        .transpose()
}

/// [`read_text_capped`] of a file whose bytes need not be text (a hosts
/// file a container may have written to).
pub fn read_bytes_capped(path: &Path, max: u64) -> io::Result<Option<Vec<u8>>> {
    let mut file = match open_regular(path, OpenOptions::new().read(true)) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    read_capped(&mut file, max).map(Some)
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
/// every synced file in it. Directories that exist cost one `stat`. A
/// failure takes away the directories this call made (a path such as
/// `new/../file/state` makes `new` before it finds that `file` is not a
/// directory): a refused path changes nothing.
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
    let mut made = Vec::new();
    let result = missing.into_iter().rev().try_for_each(|path| {
        crate::fault::point("store: before mkdir");
        let created = crate::sys::mkdir(path, DIR_MODE);
        match crate::fault::after("store: after mkdir", created) {
            // Someone else made it meanwhile; syncing again is harmless.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Ok(()) => {
                made.push(path);
                // A umask such as 0277 would leave even us without access.
                fs::set_permissions(path, fs::Permissions::from_mode(DIR_MODE))?;
            }
            Err(e) => return Err(e),
        }
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        sync_dir(parent)
    });
    if result.is_err() {
        // Empty, as just made (`rmdir` leaves a directory someone filled).
        for path in made.into_iter().rev() {
            let _ = fs::remove_dir(path);
        }
    }
    result
}

/// Appends `lines` (a `\n` added when missing) with [`append_lines`],
/// creating the file with exactly `mode` (whatever the umask) if needed.
/// Appends never rewrite a line that is there, so a reader never sees a
/// torn one. No fsync: this serves hosts files, which describe containers
/// that a power cut ends as well.
pub fn append_line(path: &Path, lines: &str, mode: u32) -> io::Result<()> {
    let file = match OpenOptions::new()
        .read(true)
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
            open_regular(path, OpenOptions::new().read(true).append(true))?
        }
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let mut text = String::with_capacity(lines.len() + 1);
    text.push_str(lines.trim_end_matches('\n'));
    text.push('\n');
    append_lines(&file, len, "", &text)
}

/// Appends the whole lines `head` and then `text` (a file's header when
/// it is made, and the lines asked for) to `file` (opened readable, with
/// `O_APPEND`: a write by anyone else, a process that was given the file
/// as its `/etc/hosts` by `ip netns exec`, is never written over), which
/// held `len` bytes when the caller looked, by one `write`. A kill stops a
/// write at a page's end, and a reader may find the file cut there while
/// it is written; so the lines are laid out by page (`lay_out_by_page`:
/// none crosses a page's end), and a last line a kill cut short before
/// (no newline ends the file) is blanked first: cut within a name it
/// would give another container's name (the name's start) this one's
/// address.
pub fn append_lines(file: &File, len: u64, head: &str, text: &str) -> io::Result<()> {
    // Laid out in one buffer, in place: a batch's thousand lines (and the
    // header before them) are not copied, nor listed, on the way.
    let mut out = Vec::with_capacity(1 + head.len() + text.len() + LAYOUT_SLACK);
    if blank_cut_line(file, len)? {
        out.push(b'\n');
    }
    let blanked = out.len();
    let lines = lines_of(head.as_bytes()).chain(lines_of(text.as_bytes()));
    if !lay_out_by_page(&mut out, lines, len as usize) {
        // A line longer than a page: none of ours; written as it is.
        out.truncate(blanked);
        for part in [head, text] {
            out.extend_from_slice(part.as_bytes());
        }
        if out.last() != Some(&b'\n') {
            out.push(b'\n');
        }
    }
    if out.is_empty() {
        return Ok(());
    }
    let mut writer = file;
    writer.write_all(&out)
}

/// Room for the filler [`lay_out_by_page`] adds at the pages' ends, made
/// with the buffer: a line's length at most for each page a batch's lines
/// cross (the buffer grows for more).
const LAYOUT_SLACK: usize = 512;

/// Blanks (in place, spaces) the last line of `file`, `len` bytes, when
/// no newline ends it: a write a kill cut short (or one of an older
/// version), whose name may be cut. Whether it did. `file` may have
/// `O_APPEND`, which is lifted for the one `pwrite` (Linux appends
/// whatever the offset while it is set) and set again.
fn blank_cut_line(file: &File, len: u64) -> io::Result<bool> {
    if len == 0 {
        return Ok(false);
    }
    let tail = cut_line_start(file, len)?;
    if tail == len {
        return Ok(false);
    }
    let fd = std::os::fd::AsFd::as_fd(file);
    crate::sys::set_append(fd, false)?;
    let blanked = file.write_all_at(" ".repeat((len - tail) as usize).as_bytes(), tail);
    crate::sys::set_append(fd, true)?;
    blanked?;
    Ok(true)
}

/// Where the last line of `file` (`len` bytes) starts when no newline
/// ends it (a write cut short), else `len`. Looked for in the file's last
/// [`LINE_LOOKBACK`] bytes: a longer line is no host line of ours, and is
/// blanked from there on.
fn cut_line_start(file: &File, len: u64) -> io::Result<u64> {
    let from = len.saturating_sub(LINE_LOOKBACK);
    let mut tail = vec![0u8; (len - from) as usize];
    file.read_exact_at(&mut tail, from)?;
    if tail.last() == Some(&b'\n') {
        return Ok(len);
    }
    Ok(match tail.iter().rposition(|&b| b == b'\n') {
        Some(at) => from + at as u64 + 1,
        None => from,
    })
}

/// How far back [`cut_line_start`] looks for the start of a cut line.
const LINE_LOOKBACK: u64 = 2 * PAGE as u64;

/// Removes, in place (same inode: bind mounts of the file stay valid), the
/// lines for which `remove` is true, and returns how many went.
///
/// Each removed line is overwritten with spaces, one small write each, so
/// the file stays well formed at every instant. When blank lines make up
/// more than half of a file over 4 KiB it is compacted: the kept lines
/// laid out so that no line crosses a page's end (see `compacted`) and
/// padded with newlines to the old length, in one write, then truncated.
/// No fsync, as for [`append_line`].
pub fn remove_lines(path: &Path, remove: impl FnMut(&str) -> bool) -> io::Result<usize> {
    let mut file = match open_regular(path, OpenOptions::new().read(true).write(true)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let text = read_capped(&mut file, HOSTS_MAX)?;
    blank_lines(&mut file, &text, remove)
}

/// The lines of `text`, each with its newline (a last one may have none).
pub fn lines_of(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split_inclusive(|&byte| byte == b'\n')
}

/// The whole lines of `text` that are UTF-8, without their newlines: a
/// last line no newline ends (cut by a kill) is left out, and so is a
/// line of other bytes (a process given the file as its `/etc/hosts` may
/// write anything), which names none of ours.
pub fn whole_text_lines(text: &[u8]) -> impl Iterator<Item = &str> {
    lines_of(text).filter_map(|line| std::str::from_utf8(line.strip_suffix(b"\n")?).ok())
}

/// Overwrites each non-blank line of `file` (whose content is `text`) for
/// which `remove` is true, and a last line no newline ends (cut short by
/// a kill: `remove` is not asked, nor is it counted), with as many
/// spaces, one small write each; a line that is not UTF-8 is not asked
/// about and stays (someone else's: a process in a container may write
/// its `/etc/hosts`). So a
/// reader sees every line whole, old or blank, never a stale tail of a
/// shorter rewrite. When blank lines make up more than half of a file over
/// 4 KiB it is compacted, as [`remove_lines`] says. Returns how many lines
/// were removed.
pub fn blank_lines(
    file: &mut File,
    text: &[u8],
    mut remove: impl FnMut(&str) -> bool,
) -> io::Result<usize> {
    blank_lines_dyn(file, text, &mut remove)
}

/// [`blank_lines`] with `remove` behind a `dyn`, so that its code is kept
/// once rather than once per caller's closure.
#[inline(never)]
fn blank_lines_dyn(
    file: &mut File,
    text: &[u8],
    remove: &mut dyn FnMut(&str) -> bool,
) -> io::Result<usize> {
    // Where each removed line starts, for a compaction's second pass
    // (`remove` is asked once per line: it may keep count).
    let mut removed_at = Vec::new();
    let mut cut_short = 0;
    let mut blank = 0;
    let mut offset = 0;
    for line in lines_of(text) {
        let content = line.strip_suffix(b"\n").unwrap_or(line);
        let is_blank = is_blank_line(content);
        // A last line no newline ends was cut by a kill (within a name,
        // it would name another container): blanked, never taken for a
        // line that is there.
        let cut = !is_blank && line.last() != Some(&b'\n');
        cut_short += usize::from(cut);
        let removed = !is_blank && (cut || std::str::from_utf8(content).is_ok_and(&mut *remove));
        if removed {
            // A `#` first, one byte, which no reader sees half written: the
            // line is a comment from then on. Then the rest, spaces. A
            // reader racing one write that blanked the line whole could
            // copy part of it (a read of a cached page takes no lock):
            // " 0.0.0.5\tweb" would give `web` another address for that
            // lookup. Two pwrite(2)s (the file is never opened to append).
            file.write_all_at(b"#", offset as u64)?;
            file.write_all_at(&vec![b' '; content.len() - 1], offset as u64 + 1)?;
            removed_at.push(offset);
        }
        if is_blank || removed {
            blank += line.len();
        }
        offset += line.len();
    }
    if text.len() > PAGE && blank * 2 > text.len() {
        let mut offset = 0;
        let mut kept = Vec::new();
        for line in lines_of(text) {
            if !is_blank_line(line) && removed_at.binary_search(&offset).is_err() {
                kept.push(line);
            }
            offset += line.len();
        }
        if let Some((laid_out, new_len)) = compacted(&kept, text.len()) {
            file.write_all_at(&laid_out, 0)?;
            file.set_len(new_len as u64)?;
        }
    }
    Ok(removed_at.len() - cut_short)
}

/// The unit a `write` is copied into the page cache in, and cut at by a
/// kill (or seen in part by a reader): the kernel copies a page at a
/// time, raising the file's size after each, and stops between pages for
/// a fatal signal. 4 KiB is the smallest page Linux has.
const PAGE: usize = 4096;

/// `lines` (a newline added to one that lacks it) laid out after `out`,
/// which is to be written at file offset `start`, so that a write cut at
/// any page's end (by a kill, or as a reader finds it while it is
/// written) leaves whole lines only: no line crosses a page's end; a page
/// the lines go on past ends with `#` and spaces, a comment the next
/// page's first byte (a newline) closes. `false` when a line does not fit
/// in a page (`out` then holds part of the lines).
fn lay_out_by_page<'a>(
    out: &mut Vec<u8>,
    lines: impl Iterator<Item = &'a [u8]>,
    start: usize,
) -> bool {
    let at = |out: &Vec<u8>| (start + out.len()) % PAGE;
    for line in lines {
        let ended = line.last() == Some(&b'\n');
        let line_len = line.len() + usize::from(!ended);
        // The line, then at least the comment's `#`, before the page's end.
        if line_len + 2 > PAGE {
            return false;
        }
        if at(out) + line_len + 1 > PAGE {
            out.push(b'#');
            while at(out) != 0 {
                out.push(b' ');
            }
            out.push(b'\n');
        }
        out.extend_from_slice(line);
        if !ended {
            out.push(b'\n');
        }
    }
    true
}

/// Whether a hosts line holds no name: blank, or a comment (the filler
/// [`compacted`] ends its pages with; our hosts files hold no other).
fn is_blank_line(content: &[u8]) -> bool {
    matches!(
        content.iter().find(|byte| !byte.is_ascii_whitespace()),
        None | Some(b'#')
    )
}

/// The `kept` lines laid out for a compaction written over a file of
/// `old_len` bytes in one `write` from offset 0, and the length to cut the
/// file to then: [`lay_out_by_page`], whose comments at the pages' ends
/// also take in the cut old line a torn write leaves at the next page's
/// start, instead of a glued line naming a wrong address. The rest, up to
/// `old_len`, is newlines (each page ending with `#` too), cut off by the
/// truncation. `None` (no compaction) when a line does not fit in a page
/// or the file would not shrink.
fn compacted(kept: &[&[u8]], old_len: usize) -> Option<(Vec<u8>, usize)> {
    let mut out = Vec::with_capacity(old_len);
    if !lay_out_by_page(&mut out, kept.iter().copied(), 0) {
        return None;
    }
    let new_len = out.len();
    if new_len >= old_len {
        return None;
    }
    while out.len() < old_len {
        if out.len() % PAGE == PAGE - 1 {
            out.push(b'#');
        } else {
            out.push(b'\n');
        }
    }
    Some((out, new_len))
}

// ---- The same primitives relative to a checked directory's descriptor ----
//
// The store reaches its files through descriptors of directories it has
// checked (see `dir.rs`), so a record access is an `openat` and a
// `fstat`, not a walk from `/` with an `lstat` per component.

/// A file name in the store as a C string; a NUL byte (which no valid
/// name holds) is an invalid-input error.
pub fn c_name(name: &str) -> io::Result<CString> {
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a name"))
}

/// [`describe`] for a `st_mode`.
fn describe_mode(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFLNK => "a symbolic link",
        libc::S_IFDIR => "a directory",
        libc::S_IFIFO => "a FIFO",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        libc::S_IFSOCK => "a socket",
        libc::S_IFREG => "a regular file",
        _ => "not a regular file",
    }
}

fn not_regular_mode(mode: u32) -> io::Error {
    if mode & libc::S_IFMT == libc::S_IFLNK {
        refuse("is a symbolic link; state files are never followed")
    } else {
        refuse(format!("is {}, not a regular file", describe_mode(mode)))
    }
}

/// [`open_regular`] of `name` in `dir`, a directory of the store checked
/// on its descriptor (ours, writable by nobody else): opened
/// `O_NOFOLLOW | O_NONBLOCK | O_NOCTTY` and checked on the descriptor;
/// returns the file and its length. A link is refused by the open itself
/// (`ELOOP`, also with `O_CREAT`: nothing is created through it).
///
/// Unlike [`open_regular`] there is no `lstat` before the open: in a
/// directory only its owner can write in, only that owner (the uid
/// ipvlan runs as, which never makes one) can have put a FIFO or a device
/// where a state file belongs, and what such an open can do is bounded:
/// `O_NONBLOCK` keeps a FIFO's open from waiting (a read-only one opens,
/// a write-only one fails with `ENXIO`), `O_NOCTTY` keeps a terminal
/// from becoming ours, and nothing is read from or written to what the
/// `fstat` then finds is not a regular file. A failed open is worded by
/// an `lstat` then (a FIFO, a link), so the refusals read as before.
pub fn open_regular_at(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: i32,
    mode: u32,
) -> io::Result<(File, u64)> {
    let file = open_at_refusing(dir, name, flags, mode)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(not_regular(meta.file_type()));
    }
    Ok((file, meta.len()))
}

/// [`open_regular_at`] without the `fstat` after the open: for a file an
/// `lstat` of this same command found regular, in a directory nobody else
/// can reach (a private root's lock, see `StateDir::open`). A link is
/// still refused by the open itself, and a failed open worded the same.
pub fn open_seen_regular_at(
    dir: BorrowedFd<'_>,
    name: &CStr,
    flags: i32,
    mode: u32,
) -> io::Result<File> {
    open_at_refusing(dir, name, flags, mode)
}

/// The open of [`open_regular_at`]: never through a link, never waiting,
/// a failure worded by an `lstat` (a FIFO, a link).
fn open_at_refusing(dir: BorrowedFd<'_>, name: &CStr, flags: i32, mode: u32) -> io::Result<File> {
    let flags = flags | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY;
    let fd = crate::sys::openat(Some(dir), name, flags, mode).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            return e;
        }
        match crate::sys::lstat_at(dir, name) {
            Ok(st) if st.st_mode & libc::S_IFMT != libc::S_IFREG => not_regular_mode(st.st_mode),
            _ if e.raw_os_error() == Some(libc::ELOOP) => {
                refuse("is a symbolic link; state files are never followed")
            }
            _ => e,
        }
    })?;
    Ok(File::from(fd))
}

/// Reads `name` in `dir` as text of at most `max` bytes through
/// [`open_regular_at`]; `Ok(None)` when there is none. See
/// [`read_text_capped`] for the errors.
pub fn read_text_at(dir: BorrowedFd<'_>, name: &str, max: u64) -> io::Result<Option<String>> {
    let name = c_name(name)?;
    let (mut file, len) = match open_regular_at(dir, &name, libc::O_RDONLY, 0) {
        Ok(found) => found,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let text = read_text_opened(&mut file, len, max).map(Some);
    crate::sys::done_with(file);
    text
}

/// Reads the regular file `file` of `len` bytes (as [`open_regular_at`]
/// returned them) as text of at most `max` bytes.
pub(crate) fn read_text_opened(file: &mut File, len: u64, max: u64) -> io::Result<String> {
    String::from_utf8(read_bytes_opened(file, len, max)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// [`read_text_opened`] of a file whose bytes need not be text (a hosts
/// file a container may have written to).
pub(crate) fn read_bytes_opened(file: &mut File, len: u64, max: u64) -> io::Result<Vec<u8>> {
    let too_big = || {
        refuse(format!(
            "is larger than {max} bytes, more than any state file"
        ))
    };
    if len > max {
        return Err(too_big());
    }
    let bytes = read_regular(file, len, max)?;
    if bytes.len() as u64 > max {
        return Err(too_big());
    }
    Ok(bytes)
}

/// Creates `name` in `dir` with `contents`, replacing a leftover of that
/// name (a stale temporary may be a hard link to a live file, so it is
/// unlinked, never truncated). Not synced: see [`super::dir`]'s commit.
/// The file is returned open, for that commit's `fdatasync`.
pub fn write_new_at(
    dir: BorrowedFd<'_>,
    name: &CStr,
    contents: &[u8],
    mode: u32,
) -> io::Result<File> {
    crate::fault::point("store: before write");
    let mut file = match open_new_at(dir, name, mode)? {
        Some(file) => file,
        None => {
            crate::sys::unlink_at(dir, name, 0)?;
            open_new_at(dir, name, mode)?
                .ok_or_else(|| io::Error::from(io::ErrorKind::AlreadyExists))?
        }
    };
    crate::fault::after("store: after write", file.write_all(contents))?;
    Ok(file)
}

/// `name` in `dir` created for writing, never through a link; `None` when
/// something is there already.
pub fn open_new_at(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<Option<File>> {
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
    match crate::sys::openat(Some(dir), name, flags, mode) {
        Ok(fd) => Ok(Some(File::from(fd))),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates `name` in `dir` with `contents` in place, for a file known to
/// be absent (no temporary, no rename: one call fewer than
/// [`replace_at`]). A reader sees no file, an empty one or all of it: the
/// one `write` of a small file lands in the page cache before the file's
/// size is raised. A kill between the create and the write leaves it
/// empty, which every state file reader takes for none, as it was.
/// Contents longer than [`WHOLE_WRITE`] are written under the temporary
/// name first (see [`create_new_by_link_at`]).
/// Returns the new file, open and unsynced (a durable one is synced by
/// the commit); `Ok(None)`, nothing written, when `name` exists after all.
pub fn create_new_file_at(
    dir: BorrowedFd<'_>,
    name: &str,
    contents: &[u8],
    mode: u32,
) -> io::Result<Option<File>> {
    if contents.len() > WHOLE_WRITE {
        return create_new_by_link_at(dir, name, contents, mode);
    }
    let name = c_name(name)?;
    crate::fault::point("store: before write");
    let Some(mut file) = open_new_at(dir, &name, mode)? else {
        return Ok(None);
    };
    crate::fault::after("store: after write", file.write_all(contents))?;
    Ok(Some(file))
}

/// The most bytes a file made in place may hold: one [`PAGE`], as a
/// longer one can be read, or left by a kill, cut at a page's end (a
/// record naming a long namespace path, a container on many networks).
pub const WHOLE_WRITE: usize = PAGE;

/// [`create_new_file_at`] for contents longer than [`WHOLE_WRITE`]:
/// written whole under the temporary name, then linked at `name`
/// (`linkat`, which never replaces: `Ok(None)` when `name` exists), the
/// temporary unlinked. A kill leaves `name` missing or whole, and at most
/// a temporary, which the next write of the name replaces.
fn create_new_by_link_at(
    dir: BorrowedFd<'_>,
    name: &str,
    contents: &[u8],
    mode: u32,
) -> io::Result<Option<File>> {
    let temp = c_name(&temp_name(name))?;
    let file = write_new_at(dir, &temp, contents, mode)?;
    let target = c_name(name)?;
    let linked = crate::fault::after(
        "store: after rename",
        crate::sys::link_at(dir, &temp, &target),
    );
    // Left (a refusal), it is a stale temporary as a kill leaves one.
    let _ = crate::sys::unlink_at(dir, &temp, 0);
    match linked {
        Ok(()) => Ok(Some(file)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(e),
    }
}

/// The temporary that stands for `name` while it is written (in its
/// directory, when `name` is a path through some).
pub fn temp_name(name: &str) -> String {
    match name.rsplit_once('/') {
        Some((dir, file)) => format!("{dir}/.tmp-{file}"),
        None => format!(".tmp-{name}"),
    }
}

/// Replaces `name` in `dir` atomically as far as other processes can tell
/// (temporary, `renameat`); returns the new file, open, unsynced.
pub fn replace_at(dir: BorrowedFd<'_>, name: &str, contents: &[u8], mode: u32) -> io::Result<File> {
    let temp = c_name(&temp_name(name))?;
    let file = write_new_at(dir, &temp, contents, mode)?;
    let target = c_name(name)?;
    let renamed = crate::fault::after(
        "store: after rename",
        crate::sys::rename_at(dir, &temp, &target),
    );
    if let Err(error) = renamed {
        // Refused (a directory where the file goes): no temporary left.
        let _ = crate::sys::unlink_at(dir, &temp, 0);
        return Err(error);
    }
    Ok(file)
}

/// Makes `name` in `dir` a symbolic link to `target` (one `symlinkat`,
/// atomic: the entry appears whole or not at all, never empty or torn);
/// `Ok(false)` when `name` exists, whatever it is.
pub fn symlink_new_at(dir: BorrowedFd<'_>, target: &str, name: &CStr) -> io::Result<bool> {
    let target = c_name(target)?;
    crate::fault::point("store: before link");
    match crate::fault::after(
        "store: after link",
        crate::sys::symlink_at(&target, dir, name),
    ) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// Replaces `name` in `dir` with a symbolic link to `target`, atomically
/// as other processes see it (a link at the temporary name, then
/// `renameat`, which replaces a regular file or a link alike and never
/// follows either).
pub fn replace_with_symlink_at(dir: BorrowedFd<'_>, name: &str, target: &str) -> io::Result<()> {
    let temp = c_name(&temp_name(name))?;
    if !symlink_new_at(dir, target, &temp)? {
        // A killed invocation's leftover: ours to replace.
        crate::sys::unlink_at(dir, &temp, 0)?;
        if !symlink_new_at(dir, target, &temp)? {
            return Err(io::Error::from(io::ErrorKind::AlreadyExists));
        }
    }
    let target = c_name(name)?;
    crate::fault::after(
        "store: after rename",
        crate::sys::rename_at(dir, &temp, &target),
    )
}

/// What a small state entry that may be a symbolic link holds (see the
/// address files, name hints and container indexes): the target of a link, read with one
/// `readlinkat` and never followed, or the content of a regular file of
/// an older version, read under the store's trust rules (`read_text_at`).
/// `Ok(None)` when there is none.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    /// A symbolic link's target, as bytes.
    Link(Vec<u8>),
    /// A regular file's text.
    Text(String),
}

/// Bytes a link's target holding one id is read up to: more than any id.
pub const ID_LINK_MAX: usize = 256;

/// Reads `name` in `dir` as an [`Entry`]: `readlinkat` first (one call
/// for the link this version writes), the file only when it is no link
/// (`EINVAL`). A link's target of `link_max` bytes or more is read as an
/// empty one (it names nothing its readers make); a file is read up to
/// `max` bytes.
pub fn read_entry_at(
    dir: BorrowedFd<'_>,
    name: &str,
    link_max: usize,
    max: u64,
) -> io::Result<Option<Entry>> {
    let c = c_name(name)?;
    match crate::sys::readlink_at(dir, &c, link_max) {
        Ok(target) => Ok(Some(Entry::Link(target))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        // Longer than the caller reads (any id, an index's entries): a
        // link naming none, as one with any other target it cannot read.
        Err(e) if e.raw_os_error() == Some(libc::ENAMETOOLONG) => Ok(Some(Entry::Link(Vec::new()))),
        // An older version's file replaced by a link (restore, put_network)
        // between the two calls: the link, as a lock-free reader must see
        // the old entry or the new one, never a refusal.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => match read_text_at(dir, name, max) {
            Err(e) if refusal(&e).is_some() => match crate::sys::readlink_at(dir, &c, link_max) {
                Ok(target) => Ok(Some(Entry::Link(target))),
                Err(_) => Err(e),
            },
            other => Ok(other?.map(Entry::Text)),
        },
        Err(e) => Err(e),
    }
}

/// Removes `name` from `dir`; `Ok(false)` when there was none.
pub fn remove_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<bool> {
    crate::fault::point("store: before unlink");
    match crate::fault::after("store: after unlink", crate::sys::unlink_at(dir, name, 0)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Checks the directory open at `dir` as [`check_dir`] does (owner,
/// write bits; that it is a directory the `O_DIRECTORY | O_NOFOLLOW`
/// open has already made sure); returns its permission bits.
pub fn check_dir_fd(dir: &File, euid: u32) -> io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    let meta = dir.metadata()?;
    check_dir_meta(&meta, euid)?;
    Ok(meta.mode() & 0o7777)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::path::PathBuf;

    #[test]
    fn a_path_built_under_a_directory_is_the_joined_path() {
        let names: [&[&str]; 5] = [
            &[],
            &["hosts"],
            &["endpoints", "ab12", "_netns_cookie_4097"],
            &["records", "container-endpoints", "web"],
            &["ipam", "", "x"],
        ];
        for dir in [
            "",
            "/",
            "state",
            "state/",
            "/var/lib/ipvlan",
            "./s",
            "/a//b/",
        ] {
            for names in names {
                for suffix in ["", ".json"] {
                    let mut joined = names
                        .iter()
                        .fold(PathBuf::from(dir), |path, name| path.join(name));
                    joined.as_mut_os_string().push(suffix);
                    let built = under(Path::new(dir), names, suffix);
                    assert_eq!(
                        built.as_os_str(),
                        joined.as_os_str(),
                        "{dir:?} {names:?} {suffix:?}"
                    );
                    assert!(same_path(&built, &joined));
                }
            }
        }
    }

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("ipvlan-fsutil-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The lines of `text` that name a host (not blank, not a comment).
    fn host_lines(text: &str) -> Vec<String> {
        text.lines()
            .filter(|line| !is_blank_line(line.as_bytes()))
            .map(str::to_string)
            .collect()
    }

    /// Every host line of `text` (a file as a cut left it) is one of
    /// `whole`, the lines the file was written with.
    fn assert_only_whole_lines(text: &str, whole: &std::collections::HashSet<&str>, context: &str) {
        for line in host_lines(text) {
            assert!(
                whole.contains(line.as_str()),
                "{context}: {line:?} is no line of the file"
            );
        }
    }

    /// A compaction is one `write` of many pages, which a kill (or a
    /// reader) can find cut at any page's end, the old content after it:
    /// every line such a cut leaves must be a whole line of the old file
    /// (or a comment). Before, the kept lines were packed across page
    /// ends, and a cut glued the start of a new line to the rest of an old
    /// one (`10.1.118.161\tname48200`, an address of one name with another).
    #[test]
    fn a_compaction_cut_at_any_page_leaves_only_whole_lines() {
        let dir = scratch("compact-cut");
        let path = dir.join("hosts");
        // Lines of many lengths, so that they cross page ends.
        let old: String = (0..5000u32)
            .map(|i| {
                let name = "n".repeat(1 + (i as usize * 7) % 40);
                format!(
                    "10.{}.{}.{}\t{name}{i}\n",
                    i / 65536,
                    (i / 256) % 256,
                    i % 256
                )
            })
            .collect();
        fs::write(&path, &old).unwrap();
        let gone = |line: &str| !line.ends_with('0') && !line.ends_with('5');
        let removed = remove_lines(&path, gone).unwrap();
        assert!(removed * 2 > 5000, "{removed}: compacted");
        let new = fs::read_to_string(&path).unwrap();
        assert!(
            new.len() * 2 < old.len(),
            "{} of {} bytes",
            new.len(),
            old.len()
        );
        // What the write found on the disk: the removed lines blanked.
        let blanked: String = old
            .split_inclusive('\n')
            .map(|line| match gone(line.trim_end()) {
                true => format!("#{}\n", " ".repeat(line.len() - 2)),
                false => line.to_string(),
            })
            .collect();
        let whole: std::collections::HashSet<&str> = old.lines().collect();
        let kept: Vec<&str> = old.lines().filter(|line| !gone(line)).collect();
        assert_eq!(host_lines(&new), kept, "the kept lines, in order");
        for cut in (PAGE..new.len()).step_by(PAGE) {
            let torn = format!("{}{}", &new[..cut], &blanked[cut..]);
            assert_only_whole_lines(&torn, &whole, &format!("cut at {cut}"));
        }
        let _ = fs::remove_dir_all(&dir);
    }

    /// An append of many lines is cut by a kill at a page's end, and a
    /// reader may find the file ending there while it is written: every
    /// line up to any page's end is whole (or a comment). Before, the
    /// lines ran across the pages' ends, and a cut within a name named
    /// another container (`web-1` of `web-12`).
    #[test]
    fn an_append_cut_at_any_page_leaves_only_whole_lines() {
        let dir = scratch("append-cut");
        let path = dir.join("hosts");
        let before = "127.0.0.1\tlocalhost\n10.0.0.1\tgw\n";
        fs::write(&path, before).unwrap();
        let lines: String = (0..3000u32)
            .map(|i| format!("10.0.{}.{}\tweb-{i}\n", i / 250, i % 250))
            .collect();
        for (round, text) in [&lines, &lines].into_iter().enumerate() {
            let file = File::options().read(true).append(true).open(&path).unwrap();
            let len = file.metadata().unwrap().len();
            append_lines(&file, len, "", text).unwrap();
            let after = fs::read_to_string(&path).unwrap();
            let whole: std::collections::HashSet<&str> =
                before.lines().chain(lines.lines()).collect();
            let mut expected = host_lines(before);
            for _ in 0..=round {
                expected.extend(host_lines(&lines));
            }
            assert_eq!(
                host_lines(&after),
                expected,
                "round {round}: every line, in order"
            );
            let first_cut = (len as usize / PAGE + 1) * PAGE;
            for cut in (first_cut..after.len()).step_by(PAGE) {
                let context = format!("round {round}, cut at {cut}");
                assert_only_whole_lines(&after[..cut], &whole, &context);
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }

    /// An append goes at the file's end as it is when written, not as the
    /// caller last saw it: a line another process appended meanwhile (one
    /// given the file as its `/etc/hosts` by `ip netns exec`) stays. The
    /// append written at the length seen wrote over it.
    #[test]
    fn an_append_never_writes_over_a_line_appended_meanwhile() {
        let dir = scratch("append-race");
        let path = dir.join("hosts");
        fs::write(&path, "10.0.0.1\ta\n").unwrap();
        let ours = File::options().read(true).append(true).open(&path).unwrap();
        let seen = ours.metadata().unwrap().len();
        let mut theirs = File::options().append(true).open(&path).unwrap();
        theirs.write_all(b"10.0.0.2\tb\n").unwrap();
        append_lines(&ours, seen, "", "10.0.0.3\tc\n").unwrap();
        assert_eq!(
            fs::read_to_string(&path).unwrap(),
            "10.0.0.1\ta\n10.0.0.2\tb\n10.0.0.3\tc\n"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_made_in_place_is_whole_and_never_replaces_one_there() {
        let dir = scratch("in-place");
        let open = File::open(&dir).unwrap();
        let fd = std::os::fd::AsFd::as_fd(&open);
        for len in [0, 10, WHOLE_WRITE, WHOLE_WRITE + 1, 5 * WHOLE_WRITE + 3] {
            let name = format!("f{len}");
            let contents: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let made = create_new_file_at(fd, &name, &contents, 0o600).unwrap();
            assert!(made.is_some(), "{len}");
            assert_eq!(fs::read(dir.join(&name)).unwrap(), contents, "{len}");
            let meta = fs::metadata(dir.join(&name)).unwrap();
            assert_eq!((meta.nlink(), meta.mode() & 0o777), (1, 0o600), "{len}");
            // Taken: left as it is, nothing written.
            assert!(create_new_file_at(fd, &name, b"other", 0o600)
                .unwrap()
                .is_none());
            assert!(
                create_new_file_at(fd, &name, &[b'x'; 3 * WHOLE_WRITE], 0o600)
                    .unwrap()
                    .is_none()
            );
            assert_eq!(fs::read(dir.join(&name)).unwrap(), contents, "{len}");
        }
        let mut left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| is_temp_name(name))
            .collect();
        left.sort();
        assert_eq!(left, Vec::<String>::new(), "no temporary left");
        let _ = fs::remove_dir_all(&dir);
    }

    /// Set in the process [`a_killed_write_leaves_no_file_cut_short`]
    /// starts: the file it writes, then waits to be killed.
    const KILLED_WRITER_ENV: &str = "IPVLAN_TEST_KILLED_WRITER";

    /// Bytes the killed writer writes: long enough that the kill lands
    /// while the kernel copies them.
    const KILLED_WRITE_LEN: usize = 64 << 20;

    /// A process killed while it makes a long file leaves the file
    /// missing, empty or whole. Made in place with one `write`, as every
    /// file was, it was left cut at a page's end, a torn record `restore`
    /// reports as damage.
    #[test]
    fn a_killed_write_leaves_no_file_cut_short() {
        if let Some(path) = std::env::var_os(KILLED_WRITER_ENV) {
            let path = PathBuf::from(path);
            let dir = File::open(path.parent().unwrap()).unwrap();
            let name = path.file_name().unwrap().to_str().unwrap();
            let contents = vec![b'x'; KILLED_WRITE_LEN];
            let fd = std::os::fd::AsFd::as_fd(&dir);
            create_new_file_at(fd, name, &contents, 0o600).unwrap();
            std::thread::sleep(std::time::Duration::from_secs(60));
            return;
        }
        let dir = scratch("killed-write");
        for round in 0..4 {
            let path = dir.join(format!("record{round}"));
            let mut writer = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "store::fsutil::tests::a_killed_write_leaves_no_file_cut_short",
                    "--test-threads=1",
                ])
                .env(KILLED_WRITER_ENV, &path)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            // Killed as soon as the name is there (or a little after the
            // temporary is: the name may come only once it is written).
            let temp = dir.join(temp_name(&format!("record{round}")));
            let start = std::time::Instant::now();
            while !path.exists() && !temp.exists() {
                assert!(start.elapsed().as_secs() < 30, "the writer made nothing");
            }
            writer.kill().unwrap();
            writer.wait().unwrap();
            let len = fs::metadata(&path).map_or(0, |meta| meta.len() as usize);
            assert!(
                len == 0 || len == KILLED_WRITE_LEN,
                "round {round}: a file of {len} bytes, cut short"
            );
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_plainly_spelled_path_is_borrowed_and_any_other_normalised() {
        use std::borrow::Cow;
        for text in [
            "/var/lib/ipvlan",
            "",
            "s/x",
            "./s/x",
            "/a/b.json",
            "/a/.hidden",
        ] {
            let path = Path::new(text);
            let spelled = plain_spelling(path);
            assert!(matches!(spelled, Cow::Borrowed(_)), "{text:?}");
            assert_eq!(
                spelled.as_os_str(),
                path.components().collect::<PathBuf>().as_os_str()
            );
        }
        for (text, plain) in [
            ("/var/lib/ipvlan/", "/var/lib/ipvlan"),
            ("/var/lib/ipvlan/.", "/var/lib/ipvlan"),
            ("/var//lib/./ipvlan", "/var/lib/ipvlan"),
            ("s/x/", "s/x"),
            ("/", "/"),
        ] {
            let spelled = plain_spelling(Path::new(text));
            assert!(matches!(spelled, Cow::Owned(_)), "{text:?}");
            assert_eq!(spelled, Path::new(plain));
            assert!(same_path(&spelled, Path::new(plain)), "{text:?}");
        }
    }

    /// Lines are blanked in place, to their length; `remove` is asked once
    /// for each whole line that is not blank, and a last line no newline
    /// ends (cut by a kill) is blanked unasked and uncounted; past 4 KiB,
    /// a file more than half blank is compacted to its kept lines, on the
    /// same inode.
    #[test]
    fn lines_are_blanked_in_place_and_a_mostly_blank_file_compacted() {
        let dir = scratch("blank");
        let path = dir.join("hosts");
        fs::write(&path, "a 1\n\nb 2\n   \nc 3").unwrap();
        let inode = fs::metadata(&path).unwrap().ino();
        let mut asked = Vec::new();
        let removed = remove_lines(&path, |line| {
            asked.push(line.to_string());
            line.starts_with('b')
        })
        .unwrap();
        assert_eq!((removed, asked), (1, vec!["a 1".into(), "b 2".into()]));
        assert_eq!(fs::read_to_string(&path).unwrap(), "a 1\n\n#  \n   \n#  ");

        // 300 lines, 5,700 bytes: blanking seven in ten leaves the file mostly blank.
        let text: String = (0..300)
            .map(|i| format!("10.0.{:03}.{:03}\tx{i:03}\n", i / 256, i % 256))
            .collect();
        assert!(text.len() > 4096);
        fs::write(&path, &text).unwrap();
        let removed = remove_lines(&path, |line| {
            !line.ends_with('7') && !line.ends_with('3') && !line.ends_with('5')
        })
        .unwrap();
        let kept: String = text
            .lines()
            .filter(|line| line.ends_with('7') || line.ends_with('3') || line.ends_with('5'))
            .map(|line| format!("{line}\n"))
            .collect();
        assert_eq!(removed, 300 - kept.lines().count());
        assert!(removed * 2 > 300, "more than half blanked: {removed}");
        assert_eq!(fs::read_to_string(&path).unwrap(), kept, "compacted");
        assert_eq!(fs::metadata(&path).unwrap().ino(), inode, "in place");
        fs::remove_dir_all(&dir).unwrap();
    }
}
