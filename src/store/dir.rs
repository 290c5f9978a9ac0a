//! The state directory: where each record lives, the lock that serialises
//! invocations, reads (lock-free, see [`StateDir`]) and writes (only
//! through [`Locked`]).
//!
//! # What the store trusts
//!
//! Only what it can tell is its own. The root must be a real directory
//! (its last component not a symbolic link; links higher up, such as a
//! moved `/var/lib`, are fine), owned by the effective uid and writable by
//! nobody else; every subdirectory is checked the same way before it is
//! read, written or listed, from the root down, once per command, on the
//! descriptor it is then used through (`handles.rs`), unless the root is
//! private (no group or other bit at all, as we make it): then nobody
//! else can reach a subdirectory, files are reached by their path from
//! the root, and only the refusal of a link or a non-directory where a
//! directory is opened (and of a non-directory on the way to a file) is
//! left; `restore` and a
//! network's removal still check every directory of the tree they walk.
//! Inside them every state
//! file is opened without following links and read only when it is a
//! regular file under its size limit (see [`super::fsutil`]). Anything else
//! is a [`StoreError::Refused`] naming the path and what is wrong, and
//! a refusal comes before any change. In listings a file that cannot be
//! read is reported as [`Damaged`], never skipped silently, deleted or
//! rewritten.

use std::ffi::{CStr, CString};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::IpAddr;
use std::ops::Deref;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use ipnet::IpNet;

mod batch_intents;
mod commit;

use super::addresses::{subnet_dir, DiskBook, CURSOR_FILE};
use super::fsutil::{self, Entry, FILE_MODE};
use super::handles::{At, Handles};
use super::records::{
    is_valid_name, network_key, ContainerRecord, EndpointRecord, NetworkRecord, RecordError,
};
use super::{Damaged, Listing, StoreError};
use crate::ipam::{self, NetworkName, Request, SubnetSpec};
use crate::json::{self, Value};

/// Default location of the state directory: the crate's one definition
/// (see [`StateDir::default_path`] for the environment override).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/ipvlan";
/// Environment variable overriding [`DEFAULT_STATE_DIR`].
pub const STATE_DIR_ENV: &str = "IPVLAN_STATE_DIR";
/// Where the host id is read from first.
pub const MACHINE_ID_PATH: &str = "/etc/machine-id";

/// Bytes a derived record written as a link ([`Locked::put_derived_link`])
/// holds at most, less one: a longer record is a file.
pub const DERIVED_LINK_MAX: usize = 1024;
const LOCK_FILE: &str = "lock";
/// Under `hosts/`: the networks' hosts files by key ([`StateDir::hosts_alias_path`]).
const HOSTS_BY_KEY: &str = "k";
const HOST_ID_FILE: &str = "host-id";
const NETWORKS: &str = "networks";
const ENDPOINTS: &str = "endpoints";
const IPAM: &str = "ipam";
const HOSTS: &str = "hosts";
const RECORDS: &str = "records";
const LOGS: &str = "logs";
/// `names/<network name>`: the id of the network of that name, a hint
/// (see [`StateDir::network_by_name`]).
const NAMES: &str = "names";
/// A batch's intents file in the root (see `dir/batch_intents.rs`).
const BATCH_INTENTS: &str = "batch-intents";
/// In the root while a writeback failure was seen and not yet made good:
/// the next emptying of the commit log writes every file it holds again
/// (see `dir/commit.rs`, `settle_logged_files`).
const SETTLE_OWED: &str = "settle-owed";
/// What the lock file of a store made by this version holds (see
/// [`StateDir::by_identity_only`]).
const BY_IDENTITY_ONLY: &str = "endpoints filed by namespace identity only\n";
/// Kind of the generic records that list the containers the driver made.
const CONTAINERS: &str = "containers";
/// The directories every state directory has, made by [`StateDir::open`]
/// (checked there, one `fstatat` each, parents first, when the lock file
/// is missing: a new store, or one a command never finished making).
const FIXED_DIRS: [&str; 9] = [
    NETWORKS,
    ENDPOINTS,
    IPAM,
    HOSTS,
    "hosts/containers",
    "hosts/unions",
    RECORDS,
    "records/containers",
    LOGS,
];

/// Every name the store puts in its root (the layout's directories, its
/// files); with their temporaries, nothing else is the store's there.
const ROOT_NAMES: [&str; 11] = [
    LOCK_FILE,
    HOST_ID_FILE,
    NETWORKS,
    ENDPOINTS,
    IPAM,
    HOSTS,
    RECORDS,
    LOGS,
    NAMES,
    BATCH_INTENTS,
    SETTLE_OWED,
];

/// Whether `name`, in the store's root, is one of its names or a
/// temporary of one.
fn is_root_name(name: &str) -> bool {
    let name = name.strip_prefix(".tmp-").unwrap_or(name);
    ROOT_NAMES.contains(&name)
}

fn check_name(what: &'static str, name: &str) -> Result<(), StoreError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(StoreError::invalid_name(what, name))
    }
}

/// Records are found by their file's name and then acted on by their
/// fields: a record whose own name is not its file's (one copied or edited
/// by hand) is damage, never a way to another record, namespace or view.
fn filed_as(file: &str, own: &str, what: &str) -> Result<(), RecordError> {
    if own == file {
        return Ok(());
    }
    Err(RecordError(
        format!("it is the record of {what} {own:?}, filed as {file:?}").into(),
    ))
}

/// A network record read from `networks/<id>.json`.
fn network_filed_as(id: &str, value: &Value) -> Result<NetworkRecord, RecordError> {
    let record = NetworkRecord::from_json(value)?;
    filed_as(id, &record.id, "network")?;
    Ok(record)
}

/// An endpoint record read from `endpoints/<network_id>/<id>.json`.
fn endpoint_filed_as(
    network_id: &str,
    id: &str,
    value: &Value,
) -> Result<EndpointRecord, RecordError> {
    let record = EndpointRecord::from_json(value)?;
    filed_as(id, &record.id, "endpoint")?;
    filed_as(network_id, &record.network_id, "an endpoint of network")?;
    Ok(record)
}

/// A container record read from `records/containers/<name>.json`.
fn container_filed_as(name: &str, value: &Value) -> Result<ContainerRecord, RecordError> {
    let record = ContainerRecord::from_json(value)?;
    filed_as(name, &record.name, "container")?;
    Ok(record)
}

/// `bytes` random bytes from the kernel, as lowercase hex: the store's
/// host id. By `getrandom` (`sys::random_bytes`), as the driver
/// draws its ids, never through `/dev/urandom`: the host id is needed
/// where there is no `/etc/machine-id`, a minimal root that may have no
/// `/dev` mounted either.
pub fn random_hex(bytes: usize) -> io::Result<String> {
    let mut buf = vec![0u8; bytes];
    crate::sys::random_bytes(&mut buf, |_| None)?;
    Ok(crate::digits::hex_text(&buf))
}

/// Generic records as this process last read or wrote them under the
/// lock: `None` for one that is not there. The most recent
/// [`HELD_RECORDS_MAX`], oldest first.
#[derive(Debug)]
struct HeldRecords {
    /// The thread that took the lock. A read on another thread (a
    /// library user's, without the lock) neither uses nor fills them:
    /// it may have read a record just before the holder wrote it, and put
    /// back, the older version would be what the holder reads next.
    holder: usize,
    records: Vec<(PathBuf, Option<Value>)>,
}

impl HeldRecords {
    /// Whether the calling thread took the lock.
    fn by_this_thread(&self) -> bool {
        self.holder == this_thread()
    }

    /// Notes what the record at `path` now is, the oldest let go past
    /// [`HELD_RECORDS_MAX`].
    fn note(&mut self, path: &Path, value: Option<Value>) {
        self.records.retain(|(p, _)| !fsutil::same_path(p, path));
        if self.records.len() >= HELD_RECORDS_MAX {
            self.records.remove(0);
        }
        self.records.push((path.to_path_buf(), value));
    }
}

/// The calling thread, as [`HeldRecords::holder`] names it: the address of
/// a thread-local, distinct for every thread alive. Not
/// `thread::current()`, which a thread's first call makes allocate (system
/// calls in every command).
fn this_thread() -> usize {
    thread_local! {
        static MARK: std::cell::Cell<u8> = const { std::cell::Cell::new(0) };
    }
    MARK.with(|mark| mark.as_ptr() as usize)
}

/// How many records [`HeldRecords`] keeps. A single command touches one
/// or two (a container's index); a batch touches one per target and would
/// otherwise hold all of them to its end (a batch of 1,000 peaked 780 KiB
/// higher). A record let go is read again from the disk, which under the
/// lock holds what this process last wrote.
const HELD_RECORDS_MAX: usize = 8;

/// The state directory. Writes go through [`StateDir::lock`].
///
/// Reads take no lock. Each one is consistent on its own: a record is
/// replaced by `rename(2)`, an address file or name hint made by one
/// `symlinkat(2)` (or renamed into place), the cursor rewritten by one
/// `pwrite` of a padded line (a torn one reads as none), so a reader
/// sees each entirely before or entirely after a write, and a file or directory removed meanwhile reads as absent
/// (listings skip it). Several reads together are no snapshot, though: a
/// decision that depends on more than one file, or on a read staying true
/// until a write (is the name free? which endpoints remain?), must be made
/// through [`Locked`], which derefs to these same reads.
///
/// Every read and write goes through the descriptors of directories
/// checked on their way from the root (see the module's trust rules),
/// each opened and checked once: [`StateDir::open`] checks the root (and
/// the fixed layout while it is being made), every other directory is
/// checked at first use, and
/// the first [`StateDir::lock`] after `open` trusts what `open` checked;
/// every later `lock` or [`StateDir::refresh`] starts over, for programs
/// that keep a `StateDir` for long. A clone shares the checked
/// directories and what waits for the next commit.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
    /// The open directories (and who must own them) and pending writes.
    handles: Handles,
    /// See [`StateDir::by_identity_only`]; shared by the clones, as the
    /// layout a lock makes is.
    by_identity_only: Arc<AtomicBool>,
    /// The generic records read or written while this store is locked
    /// (`None` when it is not), shared by the clones.
    records_held: Arc<Mutex<Option<HeldRecords>>>,
    /// `open` found the lock a regular file in a private root: the first
    /// lock after it opens the lock without checking it again.
    lock_seen_regular: Arc<AtomicBool>,
    /// `open` found no root: the layout is made by the first lock that
    /// waits (a command that writes), so that reading commands, and those
    /// refused before they lock, leave a machine without a store as it
    /// was (and work where the state directory's parent is read-only).
    layout_pending: Arc<AtomicBool>,
}

impl StateDir {
    /// `$IPVLAN_STATE_DIR` if set and not empty, else `/var/lib/ipvlan`.
    pub fn default_path() -> PathBuf {
        match std::env::var_os(STATE_DIR_ENV) {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => PathBuf::from(DEFAULT_STATE_DIR),
        }
    }

    /// Opens the state directory at `root`, creating it and its
    /// subdirectories (0700 whatever the umask) when missing. Refuses,
    /// before creating anything, a root or subdirectory that is a
    /// symbolic link, is owned by another user or is writable by group or
    /// others ([`StoreError::Refused`]).
    pub fn open(root: impl Into<PathBuf>) -> Result<StateDir, StoreError> {
        let state = StateDir::open_unmade(root)?;
        if state.layout_pending.load(Ordering::Relaxed) {
            state.make_pending_layout()?;
        }
        Ok(state)
    }

    /// [`StateDir::open`], but a missing root is not made here: the first
    /// [`StateDir::lock`] makes it (a command that writes), and until then
    /// the store reads as empty ([`StateDir::never_made`]). For a program
    /// whose reading commands, and those refused for naming nothing in the
    /// store, must leave a machine without one as it was, and work where
    /// it cannot be made (a read-only `/var`).
    pub fn open_unmade(root: impl Into<PathBuf>) -> Result<StateDir, StoreError> {
        // Without a trailing slash, which would make lstat(2) follow a
        // link in the last component.
        let root: PathBuf = root.into().components().collect();
        let euid = crate::sys::geteuid();
        let state = StateDir {
            root: root.clone(),
            handles: Handles::new(root.clone(), euid),
            by_identity_only: Arc::default(),
            records_held: Arc::default(),
            lock_seen_regular: Arc::default(),
            layout_pending: Arc::default(),
        };
        match state.lock_len()? {
            Some(len) => state.by_identity_only.store(len > 0, Ordering::Relaxed),
            // No root, or one made ahead of the store and empty (a
            // package's, a unit's `StateDirectory=`).
            None if !state.check_dir(&root)? || state.root_holds_nothing()? => {
                // What this version makes files records so.
                state.by_identity_only.store(true, Ordering::Relaxed);
                state.layout_pending.store(true, Ordering::Relaxed);
            }
            None => {
                let new = state.make_layout()?;
                state.by_identity_only.store(new, Ordering::Relaxed);
            }
        }
        state.handles.set_fresh();
        Ok(state)
    }

    /// Makes the root (when missing) and what of the layout is missing,
    /// then the lock; whether the store is new ([`BY_IDENTITY_ONLY`]
    /// written in its lock). For a root without a lock.
    fn make_layout(&self) -> Result<bool, StoreError> {
        let missing = self.check_fixed()?;
        self.refuse_foreign_root()?;
        if missing.is_empty() {
            return Ok(false);
        }
        // No endpoint directory: no record of an older version.
        let new = missing.contains(&self.root.join(ENDPOINTS));
        for dir in missing {
            self.ensure_dir(&dir)?;
        }
        // The lock with the layout, its mark before any record: a layout
        // without a lock is one a crash stopped here (see
        // `refuse_foreign_root`).
        let mut lock = self.open_lock()?;
        if new && lock.metadata().is_ok_and(|m| m.len() == 0) {
            use std::io::Write;
            lock.write_all(BY_IDENTITY_ONLY.as_bytes())
                .map_err(StoreError::io("writing", self.root.join(LOCK_FILE)))?;
            return Ok(true);
        }
        Ok(false)
    }

    /// Whether [`StateDir::open_unmade`] found no store (no root, or an
    /// empty one) and none was made since (there is still no lock):
    /// nothing was ever written here, so there is nothing to lock against,
    /// settle or read. A command that only acts on what the store holds
    /// answers "not found" then rather than lock (which would make it).
    pub fn never_made(&self) -> Result<bool, StoreError> {
        // Not `lock_len`, which notes the lock as seen for the next lock:
        // a later one must check it again.
        Ok(self.layout_pending.load(Ordering::Relaxed) && self.lock_stat()?.is_none())
    }

    /// Whether the root holds nothing (a file system's `lost+found`
    /// aside): a directory made ahead of the store, not one a store was
    /// begun in.
    fn root_holds_nothing(&self) -> Result<bool, StoreError> {
        let entries =
            crate::sys::list_dir(&self.root).map_err(StoreError::io("listing", &self.root))?;
        Ok(entries.iter().all(|entry| entry.name == b"lost+found"))
    }

    /// Whether every endpoint record of this store is filed under the id
    /// of its namespace's identity, and every container's endpoints are in
    /// its index: the store was made (with no endpoint directory yet) by a
    /// version that files them only so, which says so in its lock file
    /// (see the layout in [`crate::store`]). Then no record of an older
    /// version (filed under a container's name) is looked for: a
    /// container's endpoints are exactly those of its index. A store made
    /// by an older version (its lock empty) keeps being searched for them.
    /// A lock emptied by a power cut right after the store was made only
    /// makes the searches come back.
    pub fn by_identity_only(&self) -> bool {
        self.by_identity_only.load(Ordering::Relaxed)
    }

    /// Makes the layout [`StateDir::open_unmade`] left to the first lock,
    /// and reads the store's format mark again: another program may have
    /// made the store meanwhile (an older version, whose lock is empty).
    fn make_pending_layout(&self) -> Result<(), StoreError> {
        self.make_layout()?;
        self.layout_pending.store(false, Ordering::Relaxed);
        let len = self.lock_len()?;
        self.by_identity_only
            .store(len.is_some_and(|len| len > 0), Ordering::Relaxed);
        Ok(())
    }

    /// Checks the root; the length of the lock file it holds. `open` makes the
    /// lock after the layout, so a root with a lock has its layout: the
    /// fixed directories are then not looked at here (nine `fstatat`s on
    /// every command) but where they are used, each checked on its
    /// descriptor before it is read, listed or written, like every deeper
    /// directory; one that went missing since is made again by the first
    /// write into it, and reads as empty until then.
    /// Its length is the store's format mark ([`StateDir::by_identity_only`]).
    fn lock_len(&self) -> Result<Option<u64>, StoreError> {
        let Some((st, private)) = self.lock_stat()? else {
            return Ok(None);
        };
        let regular = st.st_mode & libc::S_IFMT == libc::S_IFREG;
        self.lock_seen_regular
            .store(regular && private, Ordering::Relaxed);
        Ok(Some(u64::try_from(st.st_size).unwrap_or(0)))
    }

    /// The root's lock as one `fstatat` finds it (never followed), and
    /// whether the root is private; `None` when there is no root or no
    /// lock in it.
    fn lock_stat(&self) -> Result<Option<(libc::stat, bool)>, StoreError> {
        let Some(root) = self.handles.dir(&self.root)? else {
            return Ok(None);
        };
        match crate::sys::lstat_at(root.fd(), c"lock") {
            Ok(st) => Ok(Some((st, root.private))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io("checking", self.root.join(LOCK_FILE))(e)),
        }
    }

    /// For a program that exits once its command is done (the `ipvlan`
    /// binary, a CNI plugin): the state files it writes from now on are
    /// left open for the exit to close, one `close(2)` each saved; they
    /// are written whole, and made durable by the commit, before. The lock is
    /// still closed (that releases it). A program that goes on must not
    /// ask for it: they would stay open.
    pub fn leave_descriptors_to_exit(&self) {
        self.handles.leave_files_to_exit();
    }

    /// The failure of a commit that a lock's release made because its
    /// holder returned without committing (see [`Locked::commit`]), if
    /// one failed since the last call: the state that holder wrote may not
    /// survive a power cut, so a command must not report success. A front
    /// end asks once its command is done.
    pub fn take_lost_commit(&self) -> Option<StoreError> {
        self.handles.take_lost_commit()
    }

    /// Forgets the directories checked so far, so the next access checks
    /// them again from the root: for a program that keeps a `StateDir`
    /// and wants a directory that changed hands meanwhile refused.
    /// [`StateDir::lock`] does it itself (but for the first lock after
    /// [`StateDir::open`]).
    pub fn refresh(&self) {
        self.handles.refresh();
    }

    /// Refuses a root without a lock (no store made it) that holds
    /// anything but the store's own names ([`ROOT_NAMES`]): a directory
    /// given by mistake (`--state-dir /var/lib`) is not made a store,
    /// whose `restore` would remove what looks like its temporaries.
    /// One the layout was made in before a crash took the lock is taken.
    fn refuse_foreign_root(&self) -> Result<(), StoreError> {
        let entries = match crate::sys::list_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(StoreError::io("listing", &self.root)(e)),
        };
        for entry in entries {
            let name = entry.file_name();
            // A file system's own directory: the state directory may be
            // the mount point of a disk of its own.
            if !name
                .to_str()
                .is_some_and(|n| is_root_name(n) || n == "lost+found")
            {
                return Err(StoreError::refused(
                    self.root.clone(),
                    format!(
                        "it holds {} and no ipvlan state (no lock file); give an empty or new directory",
                        Path::new(&name).display()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks the root and [`FIXED_DIRS`]; returns the missing ones.
    fn check_fixed(&self) -> Result<Vec<PathBuf>, StoreError> {
        if !self.check_dir(&self.root)? {
            let all = std::iter::once(self.root.clone());
            return Ok(all
                .chain(FIXED_DIRS.iter().map(|sub| self.root.join(sub)))
                .collect());
        }
        let mut missing = Vec::new();
        for sub in FIXED_DIRS {
            if !self.handles.check_below_root(sub)? {
                missing.push(self.root.join(sub));
            }
        }
        Ok(missing)
    }

    /// Checks every directory from the root down to `dir`, which must lie
    /// inside the state directory; `Ok(false)` when one is missing (and so
    /// everything under it).
    pub fn check_dir(&self, dir: &Path) -> Result<bool, StoreError> {
        // Spelled as the store spells its own paths (no trailing `/`, no
        // `.` or empty component): it compares them byte for byte.
        self.check_plain_dir(&fsutil::plain_spelling(dir))
    }

    /// [`StateDir::check_dir`] of a directory spelled plainly already.
    fn check_plain_dir(&self, dir: &Path) -> Result<bool, StoreError> {
        if !dir.starts_with(&self.root) {
            return Err(StoreError::refused(
                dir.to_path_buf(),
                format!("is not inside the state directory {}", self.root.display()),
            ));
        }
        Ok(self.handles.dir(dir)?.is_some())
    }

    /// Whether something is at `path` (inside the state directory), by one
    /// `fstatat` from the root's descriptor (none when `path` is a
    /// directory already checked). Only a negative answer may be taken
    /// from it as it is: the look may pass through directories not checked
    /// yet, and "nothing there" leads to nothing being read or written,
    /// while whatever is found must be checked from the root down
    /// ([`StateDir::check_dir`]) before it is used. For what is rarely
    /// there: a network's union markers, a container's union view.
    pub fn present(&self, path: &Path) -> Result<bool, StoreError> {
        let relative = path
            .strip_prefix(&self.root)
            .ok()
            .filter(|r| !r.as_os_str().is_empty() && !self.handles.is_open(path));
        let (Some(relative), Some(root)) = (relative, self.handles.dir(&self.root)?) else {
            return Ok(true);
        };
        let name = fsutil::c_name(&relative.to_string_lossy())
            .map_err(StoreError::io("checking", path))?;
        match crate::sys::lstat_at(root.fd(), &name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            _ => Ok(true),
        }
    }

    /// [`StateDir::check_dir`] of `dir` when [`StateDir::present`] finds
    /// something there; `Ok(false)`, nothing opened, when not.
    pub fn check_dir_if_present(&self, dir: &Path) -> Result<bool, StoreError> {
        if !self.present(dir)? {
            return Ok(false);
        }
        self.check_dir(dir)
    }

    /// Checks `dir` from the root down and, when it exists, every
    /// directory below it (before a removal of the whole tree), `dir`
    /// itself included below a private root too.
    fn check_tree_below(&self, dir: &Path) -> Result<(), StoreError> {
        fn below(state: &StateDir, dir: &Path) -> Result<(), StoreError> {
            let entries =
                crate::sys::list_dir_typed(dir).map_err(StoreError::io("listing", dir))?;
            for entry in entries {
                if entry.kind == libc::DT_DIR {
                    let path = dir.join(entry.file_name());
                    state.handles.check_one(&path)?;
                    below(state, &path)?;
                }
            }
            Ok(())
        }
        if self.check_dir(dir)? {
            if self.handles.private()? {
                self.handles.check_one(dir)?;
            }
            below(self, dir)?;
        }
        Ok(())
    }

    /// Checks the address directories of a network that exist (the
    /// address book makes missing ones itself).
    fn check_ipam(&self, network: &NetworkRecord) -> Result<(), StoreError> {
        if self.handles.private()? {
            // Nothing to check, and nothing opened: the address book
            // reaches its files by path from the root.
            return Ok(());
        }
        let dir = self.ipam_dir(&network.id);
        if self.check_dir(&dir)? {
            for spec in &network.subnets {
                self.check_dir(&subnet_dir(&dir, spec))?;
            }
        }
        Ok(())
    }

    /// [`StateDir::check_dir`], then creates what is missing (0700
    /// whatever the umask, each synced into its parent).
    pub fn ensure_dir(&self, dir: &Path) -> Result<(), StoreError> {
        let dir = fsutil::plain_spelling(dir);
        self.check_plain_dir(&dir)?;
        self.handles.ensure(&dir).map(drop)
    }

    /// Appends `text` (whole lines) to the driver's file `path` (under
    /// `hosts/`) in one `write` ([`fsutil::append_lines`]: laid out by
    /// page, a line a kill cut short before blanked), opened relative to
    /// its checked directory (made when missing) like every state file:
    /// never through a link, nothing but a regular file. A missing or
    /// empty file is made with `mode` whatever the umask and gets `header`
    /// first. Not synced (see the durability rules).
    pub fn append_to(
        &self,
        path: &Path,
        header: &str,
        text: &str,
        mode: u32,
    ) -> Result<(), StoreError> {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(StoreError::io("opening", path)(io::Error::from(
                io::ErrorKind::InvalidInput,
            )));
        };
        let name = name.to_string_lossy();
        // Read-write: a last line a kill cut short is blanked in place
        // (see `fsutil::append_lines`).
        let flags = libc::O_RDWR | libc::O_APPEND | libc::O_CREAT;
        let (file, len) = self.handles.write_in(dir, "opening", path, |at| {
            fsutil::open_regular_at(at.fd(), &at.c_entry(&name)?, flags, mode)
        })?;
        let mut head = "";
        if len == 0 {
            // Processes in containers read it whatever our umask was.
            crate::sys::fchmod(std::os::fd::AsFd::as_fd(&file), mode)
                .map_err(StoreError::io("setting the mode of", path))?;
            head = header;
        }
        let appended = fsutil::append_lines(&file, len, head, text)
            .map_err(StoreError::io("appending to", path));
        self.handles.done_with(file);
        appended
    }

    /// Blanks in place (see [`fsutil::blank_lines`]) the lines of the
    /// driver's file `path` (under `hosts/`) for which `remove` is true;
    /// returns how many, 0 when there is no such file. Opened relative to
    /// its checked directory like every state file (never through a link,
    /// nothing but a regular file of at most [`fsutil::HOSTS_MAX`]
    /// bytes): one open where a path-based one walked the chain again. Not
    /// synced (see the durability rules).
    pub fn blank_lines_in(
        &self,
        path: &Path,
        mut remove: impl FnMut(&str) -> bool,
    ) -> Result<usize, StoreError> {
        self.blank_lines_in_dyn(path, &mut remove)
    }

    /// [`StateDir::blank_lines_in`]'s body, kept once for every `remove`.
    #[inline(never)]
    fn blank_lines_in_dyn(
        &self,
        path: &Path,
        remove: &mut dyn FnMut(&str) -> bool,
    ) -> Result<usize, StoreError> {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Ok(0);
        };
        let Some(at) = self.handles.reach(dir)? else {
            return Ok(0);
        };
        let name = at
            .c_entry(&name.to_string_lossy())
            .map_err(StoreError::io("opening", path))?;
        let (mut file, len) = match fsutil::open_regular_at(at.fd(), &name, libc::O_RDWR, 0) {
            Ok(found) => found,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(self.handles.explain(dir, e, "opening", path)),
        };
        let text = fsutil::read_bytes_opened(&mut file, len, fsutil::HOSTS_MAX)
            .map_err(StoreError::io("reading", path))?;
        fsutil::blank_lines(&mut file, &text, remove).map_err(StoreError::io("rewriting", path))
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the store's exclusive lock, waiting for other invocations.
    /// Released when the guard drops (or the process dies).
    ///
    /// Every directory is checked again first, the root now and the others
    /// at their first use under this lock: a [`StateDir`] may live long in
    /// a program that embeds it, and the directory may have changed hands
    /// meanwhile.
    pub fn lock(&self) -> Result<Locked<'_>, StoreError> {
        self.lock_or(&mut || {})
    }

    /// [`StateDir::lock`], calling `before_waiting` first when another
    /// holder keeps it (for a caller that must not wait where it is: one
    /// system call, as `lock`'s, when the lock is free).
    pub fn lock_or(&self, before_waiting: &mut dyn FnMut()) -> Result<Locked<'_>, StoreError> {
        let locked = self.lock_as(Some(before_waiting))?;
        Ok(locked.expect("a lock taken by waiting"))
    }

    /// Writes again what the commit log of another boot holds, as a lock
    /// does, when the lock is free, without waiting: a holder took the
    /// log up when it took the lock (or is taking it up: a lookup that
    /// must not miss waits, with `wait`). For a lookup made without the
    /// lock that found nothing: what a power cut took from the files
    /// (before `restore` ran) is then found by looking again.
    pub fn settle_log(&self, wait: bool) -> Result<(), StoreError> {
        if self.never_made()? {
            return Ok(());
        }
        match wait {
            true => self.lock().map(drop),
            false => self.lock_as(None).map(drop),
        }
    }

    /// The lock if no other holder keeps it, `None` at once if one does
    /// (another command, or this process on another open of the store):
    /// for a reader that read without the lock and must tell work in
    /// progress from work interrupted. A record found half done without
    /// the lock is a killed command's only if it is still half done under
    /// the lock, since every command that writes one holds the lock until
    /// it is whole again; while another holds it, it may be that one's.
    pub fn try_lock(&self) -> Result<Option<Locked<'_>>, StoreError> {
        self.lock_as(None)
    }

    /// [`StateDir::lock_or`]; without `before_waiting`, `None` at once
    /// when another holder keeps the lock.
    fn lock_as(
        &self,
        before_waiting: Option<&mut dyn FnMut()>,
    ) -> Result<Option<Locked<'_>>, StoreError> {
        self.refresh();
        let path = self.root.join(LOCK_FILE);
        if self.layout_pending.load(Ordering::Relaxed) {
            match before_waiting {
                Some(_) => self.make_pending_layout()?,
                // A reader's try makes nothing (not even a lock in a root
                // without its layout): no store, no lock to take.
                None if self.never_made()? => {
                    return Err(StoreError::io("opening", &path)(io::Error::from(
                        io::ErrorKind::NotFound,
                    )))
                }
                None => {}
            }
        }
        let file = self.open_lock()?;
        let fd = std::os::fd::AsFd::as_fd(&file);
        match crate::sys::flock(fd, libc::LOCK_EX | libc::LOCK_NB) {
            Err(error) if error.raw_os_error() == Some(libc::EWOULDBLOCK) => match before_waiting {
                Some(before_waiting) => {
                    before_waiting();
                    crate::sys::flock(fd, libc::LOCK_EX)
                }
                None => return Ok(None),
            },
            taken => taken,
        }
        .map_err(StoreError::io("locking", &path))?;
        *self.records_held() = Some(HeldRecords {
            holder: this_thread(),
            records: Vec::new(),
        });
        let locked = Locked {
            state: self,
            _lock: file,
        };
        // Before anything reads a record: what a power cut took from the
        // records the commit log made durable is written again.
        let batch_intents = locked.take_up_log()?;
        // Then what a dead batch left is read as a dead single attach's
        // would be. A file that cannot be expanded stops no command here:
        // attaches and `network rm` refuse while it stays (the driver asks
        // `Locked::intents_unresolved`), `restore` reports it.
        if batch_intents {
            let _ = locked.expand_batch_intents();
        }
        Ok(Some(locked))
    }

    /// The lock file, opened (made 0600 when missing) through the root's
    /// descriptor, never through a link.
    fn open_lock(&self) -> Result<File, StoreError> {
        let path = self.root.join(LOCK_FILE);
        // Made with the layout (by `open`, or the first lock that waits);
        // gone since, it is not made again here.
        let root = self.handles.dir(&self.root)?.ok_or_else(|| {
            StoreError::io("opening", &path)(io::Error::from(io::ErrorKind::NotFound))
        })?;
        // Seen regular by `open` a moment ago, where only its owner could
        // have changed it since: not checked twice (one `fstat` fewer in
        // every command that writes). Later locks check it again.
        if self.lock_seen_regular.swap(false, Ordering::Relaxed) {
            return fsutil::open_seen_regular_at(root.fd(), c"lock", libc::O_RDWR, 0)
                .map_err(StoreError::io("opening", &path));
        }
        let (file, _) =
            fsutil::open_regular_at(root.fd(), c"lock", libc::O_RDWR | libc::O_CREAT, FILE_MODE)
                .map_err(StoreError::io("opening", &path))?;
        Ok(file)
    }

    // The paths of the store's files, built by `fsutil::under` (one
    // allocation, the same bytes as joins) from checked names.

    fn network_path(&self, id: &str) -> PathBuf {
        fsutil::under(&self.root, &[NETWORKS, id], ".json")
    }

    fn endpoint_dir(&self, network_id: &str) -> PathBuf {
        fsutil::under(&self.root, &[ENDPOINTS, network_id], "")
    }

    fn endpoint_path(&self, network_id: &str, id: &str) -> PathBuf {
        fsutil::under(&self.root, &[ENDPOINTS, network_id, id], ".json")
    }

    fn ipam_dir(&self, network_id: &str) -> PathBuf {
        fsutil::under(&self.root, &[IPAM, network_id], "")
    }

    fn record_path(&self, kind: &str, id: &str) -> PathBuf {
        fsutil::under(&self.root, &[RECORDS, kind, id], ".json")
    }

    /// The hosts file of a network (`hosts/<network id>`); its content is
    /// the driver's.
    pub fn hosts_path(&self, network_id: &str) -> PathBuf {
        fsutil::under(&self.root, &[HOSTS, network_id], "")
    }

    /// The short name of network `network_id`'s hosts file,
    /// `hosts/k/<key>` ([`super::records::network_key`]): a link to
    /// `../<network id>`, which [`Locked::hosts_alias`] makes.
    pub fn hosts_alias_path(&self, network_id: &str) -> PathBuf {
        fsutil::under(
            &self.root,
            &[HOSTS, HOSTS_BY_KEY, network_key(network_id)],
            "",
        )
    }

    /// Where the short names of hosts files are (`hosts/k`).
    fn hosts_aliases_dir(&self) -> PathBuf {
        self.root.join(HOSTS).join(HOSTS_BY_KEY)
    }

    /// The union hosts file of a container on several networks
    /// (`hosts/containers/<name>`); its content is the driver's.
    pub fn union_hosts_path(&self, container: &str) -> PathBuf {
        fsutil::under(&self.root, &[HOSTS, "containers", container], "")
    }

    /// Markers (`hosts/unions/<network id>/<name>`) of the containers of a
    /// network that see a union file, so a change to the network rewrites
    /// only theirs.
    pub fn union_markers_dir(&self, network_id: &str) -> PathBuf {
        fsutil::under(&self.root, &[HOSTS, "unions", network_id], "")
    }

    /// A network by ID.
    pub fn network(&self, id: &str) -> Result<Option<NetworkRecord>, StoreError> {
        check_name("network id", id)?;
        self.read_record(&self.network_path(id), |value| network_filed_as(id, value))
    }

    /// The network named `name`: through its hint
    /// ([`StateDir::network_by_name`]), else by reading every network
    /// record (a hint lost to a power cut, or never written).
    pub fn network_named(&self, name: &str) -> Result<Option<NetworkRecord>, StoreError> {
        if let Some(found) = self.network_by_name(name) {
            return Ok(Some(found));
        }
        Ok(self.networks()?.items.into_iter().find(|n| n.name == name))
    }

    /// [`StateDir::network_named`], looked for again after
    /// [`StateDir::settle_log`] (waiting for the lock) when not found: for
    /// a command that takes "no such network" for done (a CNI DEL, a GC),
    /// which would otherwise report success for a network only the commit
    /// log holds after a power cut, and leave its leases for ever. A log
    /// that cannot be settled (a read-only state directory) leaves the
    /// first answer: the command that could not write it could not have
    /// brought the network back either.
    pub fn network_named_settled(&self, name: &str) -> Result<Option<NetworkRecord>, StoreError> {
        match self.network_named(name)? {
            Some(found) => Ok(Some(found)),
            None if self.settle_log(true).is_err() => Ok(None),
            None => self.network_named(name),
        }
    }

    /// The network named `name`, found through its hint (`names/<name>`,
    /// written with the record, holding its id) with two reads, whatever
    /// the number of networks. `None` when there is no hint, or it is
    /// stale, unreadable or names a network of another name (a crash
    /// between hint and record, a store written by an older version):
    /// the caller then reads every record ([`StateDir::networks`]), so a
    /// hint can make a lookup faster, never wrong.
    pub fn network_by_name(&self, name: &str) -> Option<NetworkRecord> {
        let id = self.network_id_hint(name)?;
        self.network(&id)
            .ok()?
            .filter(|network| network.name == name)
    }

    /// The id the hint of network `name` holds (one `readlinkat`: the
    /// hint is a symbolic link whose target is the id, never followed; a
    /// regular file of an older version holding it is read too),
    /// unchecked: it may be stale or name a network of another name,
    /// which the caller finds when it reads that record (see
    /// [`StateDir::network_by_name`]).
    pub fn network_id_hint(&self, name: &str) -> Option<String> {
        if !is_valid_name(name) {
            return None;
        }
        let at = self.handles.reach(&self.root.join(NAMES)).ok()??;
        let id = match fsutil::read_entry_at(
            at.fd(),
            &at.entry(name),
            fsutil::ID_LINK_MAX,
            fsutil::RECORD_MAX,
        )
        .ok()??
        {
            Entry::Link(target) => String::from_utf8(target).ok()?,
            Entry::Text(text) => text.trim().to_string(),
        };
        is_valid_name(&id).then_some(id)
    }

    /// Every network, oldest first, and the network records that could
    /// not be read.
    pub fn networks(&self) -> Result<Listing<NetworkRecord>, StoreError> {
        let mut all = self.read_all(&self.root.join(NETWORKS), network_filed_as)?;
        crate::order::sort_by(&mut all.items, |a, b| {
            (a.created, &a.name).cmp(&(b.created, &b.name))
        });
        Ok(all)
    }

    /// An endpoint of a network.
    pub fn endpoint(
        &self,
        network_id: &str,
        id: &str,
    ) -> Result<Option<EndpointRecord>, StoreError> {
        check_name("network id", network_id)?;
        check_name("endpoint id", id)?;
        self.read_record(&self.endpoint_path(network_id, id), |value| {
            endpoint_filed_as(network_id, id, value)
        })
    }

    /// The endpoints of one network, oldest first, and the endpoint
    /// records that could not be read.
    pub fn endpoints_of(&self, network_id: &str) -> Result<Listing<EndpointRecord>, StoreError> {
        check_name("network id", network_id)?;
        let mut all = self.read_all(&self.endpoint_dir(network_id), |id, value| {
            endpoint_filed_as(network_id, id, value)
        })?;
        crate::order::sort_by(&mut all.items, |a, b| {
            (a.created, &a.id).cmp(&(b.created, &b.id))
        });
        Ok(all)
    }

    /// The ids of the network records, sorted, from one listing, without
    /// reading them (a damaged record's id included).
    pub fn network_ids(&self) -> Result<Vec<String>, StoreError> {
        let mut ids: Vec<String> = self
            .list_names(&self.root.join(NETWORKS))?
            .into_iter()
            .filter_map(|name| name.strip_suffix(".json").map(str::to_string))
            .collect();
        crate::order::sort(&mut ids);
        Ok(ids)
    }

    /// The ids of the endpoint records of a network, from one listing of
    /// its directory, sorted, without reading them: for a caller that
    /// would otherwise probe for one id per container.
    pub fn endpoint_ids(&self, network_id: &str) -> Result<Vec<String>, StoreError> {
        check_name("network id", network_id)?;
        let mut ids = self.json_stems(&self.endpoint_dir(network_id))?;
        crate::order::sort(&mut ids);
        Ok(ids)
    }

    /// Every endpoint of every network, and what could not be read (a
    /// network's endpoint directory that cannot be listed counts as one
    /// damaged path).
    pub fn endpoints(&self) -> Result<Listing<EndpointRecord>, StoreError> {
        let mut all = Listing::default();
        for network_id in self.list_names(&self.root.join(ENDPOINTS))? {
            if !is_valid_name(&network_id) {
                all.damaged.push(Damaged {
                    path: self.endpoint_dir(&network_id),
                    reason: "is not named after a network id".into(),
                });
                continue;
            }
            match self.endpoints_of(&network_id) {
                Ok(listing) => {
                    all.items.extend(listing.items);
                    all.damaged.extend(listing.damaged);
                }
                Err(error) => all.note(error)?,
            }
        }
        Ok(all)
    }

    /// A generic record of `kind` (e.g. `containers`).
    ///
    /// While the store is locked, a record read or written before under
    /// the lock is not read again by the thread that took it (a command
    /// reads a container's endpoint index at each of its steps): every
    /// writer holds the lock, so the record is as this process last read
    /// or wrote it. Other threads read the file.
    pub fn record(&self, kind: &str, id: &str) -> Result<Option<Value>, StoreError> {
        check_name("record kind", kind)?;
        check_name("record id", id)?;
        let path = self.record_path(kind, id);
        if let Some(held) = self.record_held(&path) {
            return Ok(held);
        }
        let value = self.read_record(&path, |v| Ok(v.clone()))?;
        if let Some(held) = self
            .records_held()
            .as_mut()
            .filter(|held| held.by_this_thread())
        {
            held.note(&path, value.clone());
        }
        Ok(value)
    }

    fn records_held(&self) -> MutexGuard<'_, Option<HeldRecords>> {
        // Entries are replaced whole: a panic leaves none half made.
        self.records_held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What the records held say of `path`; `None` when they hold
    /// nothing of it, or when the calling thread is not the lock's holder.
    fn record_held(&self, path: &Path) -> Option<Option<Value>> {
        let held = self.records_held();
        let found = held
            .as_ref()
            .filter(|held| held.by_this_thread())?
            .records
            .iter()
            .find(|(p, _)| fsutil::same_path(p, path))?;
        Some(found.1.clone())
    }

    /// Notes what the record at `path` now is, while the store is locked.
    fn hold_record(&self, path: &Path, value: Option<Value>) {
        if let Some(held) = self.records_held().as_mut() {
            held.note(path, value);
        }
    }

    /// Every record of `kind` with its ID, sorted by ID, and the records
    /// that could not be read. A derived record written as a link
    /// ([`Locked::put_derived_link`]) is refused here like any link: its
    /// kind is read by [`StateDir::derived_entry`].
    pub fn records(&self, kind: &str) -> Result<Listing<(String, Value)>, StoreError> {
        check_name("record kind", kind)?;
        let dir = self.root.join(RECORDS).join(kind);
        let mut out = Listing::default();
        for name in self.list_names(&dir)? {
            if let Some(id) = name.strip_suffix(".json") {
                match self.read_record(&dir.join(&name), |v| Ok(v.clone())) {
                    Ok(Some(v)) => out.items.push((id.to_string(), v)),
                    Ok(None) => {}
                    Err(error) => out.note(error)?,
                }
            }
        }
        Ok(out)
    }

    /// A generic record of `kind` that may be a symbolic link
    /// ([`Locked::put_derived_link`]): the link's target, read with one
    /// `readlinkat` and never followed (cut off past [`DERIVED_LINK_MAX`]
    /// bytes: an empty target), or the text of a regular file (a record
    /// too long for a link, or one of an older version), read under the
    /// usual rules. `None` when there is none, or an empty file. Not UTF-8
    /// is [`StoreError::Corrupt`]; nothing is held for the lock's holder.
    pub fn derived_entry(&self, kind: &str, id: &str) -> Result<Option<Entry>, StoreError> {
        check_name("record kind", kind)?;
        check_name("record id", id)?;
        match self.read_small_entry(&self.record_path(kind, id), DERIVED_LINK_MAX)? {
            Some(Entry::Text(text)) if text.is_empty() => Ok(None),
            other => Ok(other),
        }
    }

    /// The names of the generic records of `kind` (their file names,
    /// `.json` off), from one listing, none read.
    pub fn record_names(&self, kind: &str) -> Result<Vec<String>, StoreError> {
        check_name("record kind", kind)?;
        self.json_stems(&self.root.join(RECORDS).join(kind))
    }

    /// Names of the containers the driver created, sorted, and the
    /// container records that could not be read.
    pub fn containers(&self) -> Result<Listing<String>, StoreError> {
        Ok(self.records(CONTAINERS)?.map(|(id, _)| id))
    }

    /// The log file of a command started in the background in
    /// `container` (`logs/<name>.log`).
    pub fn log_path(&self, container: &str) -> PathBuf {
        self.root.join(LOGS).join(format!("{container}.log"))
    }

    /// Opens (creating it 0600 if needed) the log file of `container` for
    /// appending, never through a link; its directory is checked (or made)
    /// first. A log made by an older version with another mode gets 0600.
    pub fn open_log(&self, container: &str) -> Result<File, StoreError> {
        check_name("container name", container)?;
        let path = self.log_path(container);
        self.ensure_dir(&self.root.join(LOGS))?;
        let file = fsutil::open_regular(
            &path,
            OpenOptions::new().create(true).append(true).mode(FILE_MODE),
        )
        .map_err(StoreError::io("opening", &path))?;
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(FILE_MODE))
            .map_err(StoreError::io("setting the mode of", &path))?;
        Ok(file)
    }

    /// The names of the container records (`ipvlan run`'s containers,
    /// whatever their state), unsorted: one listing.
    pub fn container_record_names(&self) -> Result<Vec<String>, StoreError> {
        self.record_names(CONTAINERS)
    }

    /// Whether `name` is a container the driver created (one read).
    pub fn has_container(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self.record(CONTAINERS, name)?.is_some())
    }

    /// The record of container `name`, if there is one (one read; none
    /// when this locked command read or wrote it before, see
    /// [`StateDir::record`]).
    pub fn container(&self, name: &str) -> Result<Option<ContainerRecord>, StoreError> {
        check_name("record id", name)?;
        let Some(value) = self.record(CONTAINERS, name)? else {
            return Ok(None);
        };
        container_filed_as(name, &value)
            .map(Some)
            .map_err(|e| StoreError::corrupt(self.record_path(CONTAINERS, name), e.0.into()))
    }

    /// Every container record, sorted by name, and those that could not
    /// be read.
    pub fn container_records(&self) -> Result<Listing<ContainerRecord>, StoreError> {
        let dir = self.root.join(RECORDS).join(CONTAINERS);
        let mut out = Listing::default();
        for name in self.list_names(&dir)? {
            if let Some(stem) = name.strip_suffix(".json") {
                let filed_as = |value: &Value| container_filed_as(stem, value);
                match self.read_record(&dir.join(&name), filed_as) {
                    Ok(Some(record)) => out.items.push(record),
                    Ok(None) => {}
                    Err(error) => out.note(error)?,
                }
            }
        }
        Ok(out)
    }

    /// Who holds `addr` in a subnet of a network, if anyone (one read).
    pub fn address_owner(
        &self,
        network_id: &str,
        subnet: &SubnetSpec,
        addr: IpAddr,
    ) -> Result<Option<String>, StoreError> {
        let Some(path) = self.address_path(network_id, subnet, addr)? else {
            return Ok(None);
        };
        match self.read_address_entry(&path)? {
            None => Ok(None),
            Some(Entry::Link(target)) => link_owner(&path, target).map(Some),
            // An empty file reads as missing, as every state file does.
            Some(Entry::Text(text)) if text.is_empty() => Ok(None),
            Some(Entry::Text(text)) => parse_owner(&path, &text).map(Some),
        }
    }

    /// The path of `addr`'s file in `subnet` of network `network_id`;
    /// `None` where the subnet's directory is not there (no address of it
    /// was ever taken).
    fn address_path(
        &self,
        network_id: &str,
        subnet: &SubnetSpec,
        addr: IpAddr,
    ) -> Result<Option<PathBuf>, StoreError> {
        check_name("network id", network_id)?;
        let dir = subnet_dir(&self.ipam_dir(network_id), subnet);
        if !self.handles.private()? && !self.check_dir(&dir)? {
            return Ok(None);
        }
        Ok(Some(dir.join(crate::digits::ip_text(addr))))
    }

    /// Whether `addr` of `subnet` is taken as an allocation's `take` would
    /// find it: an entry at its name, whatever it holds (an empty file a
    /// power cut left, an owner that cannot be read, something that is
    /// not ours). For a check before anything is made; the allocation
    /// decides.
    pub fn address_taken(
        &self,
        network_id: &str,
        subnet: &SubnetSpec,
        addr: IpAddr,
    ) -> Result<bool, StoreError> {
        let Some(path) = self.address_path(network_id, subnet, addr)? else {
            return Ok(false);
        };
        match self.read_address_entry(&path) {
            Ok(entry) => Ok(entry.is_some()),
            // The entry itself, not what leads to it (a subnet directory
            // that is no directory is said as such).
            Err(StoreError::Corrupt(fault) | StoreError::Refused(fault)) if fault.path == path => {
                Ok(true)
            }
            Err(error) => Err(error),
        }
    }

    /// Every taken address of a network with its owner (reads them all:
    /// for `restore` and consistency checks, not for allocation). An
    /// address file that names no owner it can read (empty, or not text: a
    /// power cut's leftover, see [`Locked::release_orphans`]) is taken by
    /// an unknown owner and not listed.
    pub fn addresses(&self, network: &NetworkRecord) -> Result<Vec<(IpAddr, String)>, StoreError> {
        Ok(self
            .address_files(network)?
            .into_iter()
            .filter_map(|(addr, owner)| owner.map(|owner| (addr, owner)))
            .collect())
    }

    /// Every address file of a network with the owner it names, `None`
    /// when it names none that can be read (empty, blank, not UTF-8). A
    /// file the store refuses (a link, a FIFO, too big) or a name that is
    /// no address is an error.
    fn address_files(
        &self,
        network: &NetworkRecord,
    ) -> Result<Vec<(IpAddr, Option<String>)>, StoreError> {
        check_name("network id", &network.id)?;
        let mut out = Vec::new();
        for spec in &network.subnets {
            let dir = subnet_dir(&self.ipam_dir(&network.id), spec);
            for name in self.list_names(&dir)? {
                if name == CURSOR_FILE {
                    continue;
                }
                let path = dir.join(&name);
                let addr: IpAddr = name.parse().map_err(|_| {
                    StoreError::corrupt(path.clone(), "file name is not an IP address".into())
                })?;
                if let Some(owner) = self.read_owner(&path)? {
                    out.push((addr, owner));
                }
            }
        }
        Ok(out)
    }

    /// The owner an address file names: `None` when there is no file,
    /// `Some(None)` when it names none that can be read (a regular file of
    /// an older version, empty, blank or not UTF-8, or a link whose target
    /// is no endpoint id: never followed, and freed or remade like an
    /// empty file, so damage from outside cannot pin a network's
    /// repairs).
    fn read_owner(&self, path: &Path) -> Result<Option<Option<String>>, StoreError> {
        match self.read_address_entry(path) {
            Ok(None) => Ok(None),
            // Unreadable like an empty file: it holds its address, and
            // `release_orphans` or `restore_address` replace it (neither
            // follows it); `address_owner` still names it as damage.
            Ok(Some(Entry::Link(target))) => Ok(Some(link_owner(path, target).ok())),
            Ok(Some(Entry::Text(text))) => Ok(Some(parse_owner(path, &text).ok())),
            Err(StoreError::Corrupt { .. }) => Ok(Some(None)),
            Err(e) => Err(e),
        }
    }

    /// An address file as it is on disk (see `addresses.rs`): one
    /// `readlinkat` for the link this version makes, the regular file of
    /// an older version read under the usual rules. Not UTF-8 is
    /// [`StoreError::Corrupt`].
    fn read_address_entry(&self, path: &Path) -> Result<Option<Entry>, StoreError> {
        self.read_small_entry(path, fsutil::ID_LINK_MAX)
    }

    /// [`fsutil::read_entry_at`] of the file at `path`, a link's target cut
    /// off past `link_max` bytes (see [`fsutil::read_entry_at`]). Not UTF-8
    /// text is [`StoreError::Corrupt`].
    fn read_small_entry(&self, path: &Path, link_max: usize) -> Result<Option<Entry>, StoreError> {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Ok(None);
        };
        let Some(at) = self.handles.reach(dir)? else {
            return Ok(None);
        };
        match fsutil::read_entry_at(
            at.fd(),
            &at.entry(&name.to_string_lossy()),
            link_max,
            fsutil::RECORD_MAX,
        ) {
            Err(e) if e.kind() == io::ErrorKind::InvalidData && fsutil::refusal(&e).is_none() => {
                Err(corrupt(path, "not UTF-8 text".into()))
            }
            other => other.map_err(|e| self.handles.explain(dir, e, "reading", path)),
        }
    }

    /// The host id for the ULA prefix: `machine_id`'s content (normally
    /// [`MACHINE_ID_PATH`]) if it has any, else `None` when the state
    /// directory's own `host-id` is needed (see [`Locked::host_id`]).
    fn machine_id(machine_id: &Path) -> Option<String> {
        fs::read_to_string(machine_id)
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    }
}

/// What [`Locked::restore_address`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressRepair {
    /// The address file already named the owner.
    Kept,
    /// It was missing, named no owner that can be read or one without a
    /// record, and now names the owner.
    Remade,
    /// Another endpoint, whose record exists (readable or not), holds it.
    HeldBy(String),
    /// The address lies in no subnet of the network.
    OutsideSubnets,
}

/// Whether a write or removal is part of the commit (a durable record) or
/// left out of it (a file `restore` rebuilds from the durable ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Durability {
    Committed,
    Derived,
}

/// A record's text. Refused before any file is touched: a record the
/// reader refuses would stop every later command.
fn encode(path: &Path, value: &Value) -> Result<String, StoreError> {
    let text = value.to_pretty().map_err(|error| {
        StoreError::io("encoding", path)(io::Error::new(io::ErrorKind::InvalidData, error))
    })?;
    record_text(path, text)
}

/// A record's text from its object's (a `\n` ended), refused as
/// [`encode`] refuses one.
fn record_text(path: &Path, mut text: String) -> Result<String, StoreError> {
    text.push('\n');
    // The reader stops at `RECORD_MAX`: a longer record (a network given
    // thousands of subnets or aux-addresses, a `run` of huge arguments)
    // would be written, then refused by every later read.
    if text.len() as u64 > fsutil::RECORD_MAX {
        return Err(StoreError::refused(
            path.to_path_buf(),
            format!(
                "would be {} bytes, more than the {} a record may hold; nothing was written",
                text.len(),
                fsutil::RECORD_MAX
            ),
        ));
    }
    Ok(text)
}

/// The network id the short name `name` of a hosts file in `at` (`hosts/k`,
/// see [`Locked::hosts_alias`]) names by its target `../<id>`, read with one
/// `readlinkat`, never followed; `None` when it is missing, no link, or
/// names no id.
fn alias_names(at: &At, name: &str) -> Option<String> {
    let target = crate::sys::readlink_at(at.fd(), &at.c_entry(name).ok()?, fsutil::ID_LINK_MAX);
    let id = String::from_utf8(target.ok()?)
        .ok()?
        .strip_prefix("../")?
        .to_string();
    is_valid_name(&id).then_some(id)
}

/// An endpoint's intent as one compact JSON line (without its newline),
/// for a file or page that holds intents by value (`batch-intents`, the
/// commit log's volatile page); its ids checked as a record's file name
/// would be.
fn intent_line(record: &EndpointRecord) -> Result<String, StoreError> {
    check_name("network id", &record.network_id)?;
    check_name("endpoint id", &record.id)?;
    Ok(record.to_text(false))
}

/// An endpoint record's text, as [`encode`] writes its value: a flat
/// object of fixed keys, which is always what the reader accepts.
fn endpoint_text(record: &EndpointRecord) -> String {
    let mut text = record.to_text(true);
    text.push('\n');
    text
}

/// The error of a record at `path` that cannot be read for `reason`.
#[inline(never)]
fn corrupt(path: &Path, reason: String) -> StoreError {
    StoreError::corrupt(path.to_path_buf(), reason)
}

/// The owner a link at `path` names: its target, which must be an
/// endpoint id (a valid name: no `/`, never a path); anything else is
/// refused, as damage, and never followed.
fn link_owner(path: &Path, target: Vec<u8>) -> Result<String, StoreError> {
    match String::from_utf8(target) {
        Ok(owner) if is_valid_name(&owner) => Ok(owner),
        _ => Err(StoreError::refused(
            path.to_path_buf(),
            "is a symbolic link whose target is no endpoint id; state files are never followed"
                .into(),
        )),
    }
}

fn parse_owner(path: &Path, text: &str) -> Result<String, StoreError> {
    let owner = text.trim();
    if owner.is_empty() {
        return Err(StoreError::corrupt(
            path.to_path_buf(),
            "address file names no owner".into(),
        ));
    }
    Ok(owner.to_string())
}

impl StateDir {
    /// A state file's text; `None` when it (or its directory) does not
    /// exist. Bytes that are not UTF-8 mean a damaged file:
    /// [`StoreError::Corrupt`], not an I/O error; a link, FIFO or
    /// oversized file is [`StoreError::Refused`]. An empty file reads as
    /// missing: it is what a power cut leaves of a new file whose data
    /// never reached the disk, which only a command that had not returned
    /// can have written (every command commits before it returns), so it
    /// counts as never written; `restore` removes it
    /// ([`Locked::clean_temporaries`]). A truncated file (not empty)
    /// fails to parse: damage, reported, never deleted.
    fn read_text(&self, path: &Path) -> Result<Option<String>, StoreError> {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Ok(None);
        };
        let Some(at) = self.handles.reach(dir)? else {
            return Ok(None);
        };
        match fsutil::read_text_at(
            at.fd(),
            &at.entry(&name.to_string_lossy()),
            fsutil::RECORD_MAX,
        ) {
            Err(e) if e.kind() == io::ErrorKind::InvalidData && fsutil::refusal(&e).is_none() => {
                Err(StoreError::corrupt(
                    path.to_path_buf(),
                    "not UTF-8 text".into(),
                ))
            }
            Ok(Some(text)) if text.is_empty() => Ok(None),
            other => other.map_err(|e| self.handles.explain(dir, e, "reading", path)),
        }
    }

    /// The names of `dir`'s records (`NAME.json`), `.json` off, in the
    /// order of [`StateDir::list_names`] (by file name).
    fn json_stems(&self, dir: &Path) -> Result<Vec<String>, StoreError> {
        Ok(self
            .list_names(dir)?
            .into_iter()
            .filter_map(|name| name.strip_suffix(".json").map(str::to_string))
            .collect())
    }

    /// Entry names of a directory (checked from the root down), without
    /// dot-files (temporaries), sorted; empty when the directory does not
    /// exist.
    fn list_names(&self, dir: &Path) -> Result<Vec<String>, StoreError> {
        let Some(open) = self.handles.dir(dir)? else {
            return Ok(Vec::new());
        };
        let raw = match crate::sys::dir_names(open.fd()) {
            Ok(raw) => raw,
            // Removed since it was opened: empty, as a missing one.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::io("listing", dir)(e)),
        };
        let mut names: Vec<String> = raw
            .into_iter()
            .filter_map(|entry| String::from_utf8(entry.name).ok())
            .filter(|name| !name.starts_with('.'))
            .collect();
        crate::order::sort(&mut names);
        Ok(names)
    }

    /// One record; `None` when it (or its directory) does not exist.
    fn read_record<T>(
        &self,
        path: &Path,
        from_json: impl Fn(&Value) -> Result<T, RecordError>,
    ) -> Result<Option<T>, StoreError> {
        let mut out = None;
        self.read_record_with(path, &mut |value| {
            out = Some(from_json(value)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// [`StateDir::read_record`]'s body, behind a `dyn`: kept once for
    /// every record type. `parse` is not called when the file is missing.
    #[inline(never)]
    fn read_record_with(
        &self,
        path: &Path,
        parse: &mut dyn FnMut(&Value) -> Result<(), RecordError>,
    ) -> Result<(), StoreError> {
        let Some(value) = self.read_json(path)? else {
            return Ok(());
        };
        parse(&value).map_err(|e| corrupt(path, e.0.into()))
    }

    /// The JSON value of the file at `path`, `None` when it is missing:
    /// [`StateDir::read_record`]'s part that does not depend on the record
    /// type, kept once rather than in each type's copy.
    #[inline(never)]
    fn read_json(&self, path: &Path) -> Result<Option<Value>, StoreError> {
        let Some(text) = self.read_text(path)? else {
            return Ok(None);
        };
        json::parse(&text)
            .map(Some)
            .map_err(|e| corrupt(path, e.to_string()))
    }

    /// Every `*.json` record of a directory; one that cannot be read is
    /// reported, the others still read.
    fn read_all<T>(
        &self,
        dir: &Path,
        from_json: impl Fn(&str, &Value) -> Result<T, RecordError>,
    ) -> Result<Listing<T>, StoreError> {
        let mut out = Listing::default();
        self.each_record(dir, &mut |path, file| {
            match self.read_record(path, |value| from_json(file, value)) {
                Ok(Some(record)) => out.items.push(record),
                Ok(None) => {}
                Err(error) => out.note(error)?,
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Hands the path of every `*.json` file of `dir`, and its name without
    /// `.json`, to `each`: [`StateDir::read_all`]'s walk, kept once for every
    /// record type.
    #[inline(never)]
    fn each_record(
        &self,
        dir: &Path,
        each: &mut dyn FnMut(&Path, &str) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for name in self.list_names(dir)? {
            if let Some(file) = name.strip_suffix(".json") {
                each(&dir.join(&name), file)?;
            }
        }
        Ok(())
    }
}

/// The store under its exclusive lock: the only way to write. Reads of
/// [`StateDir`] are available through `Deref`.
///
/// Writes are not synced one by one: [`Locked::commit`] makes all of them
/// durable at once, and dropping the guard commits what is left before
/// the lock is released (see the store's durability rules).
#[derive(Debug)]
pub struct Locked<'a> {
    state: &'a StateDir,
    _lock: File,
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // Before `_lock` closes: the next holder of the lock sees durable
        // state. An error here has no caller to go to; a command that
        // reports success calls `commit` itself first, and one that forgot
        // is caught by its front end (`StateDir::take_lost_commit`).
        if let Err(error) = self.state.commit_under(&self._lock) {
            self.state.handles.lose_commit(error);
        }
        *self.state.records_held() = None;
        self.state.handles.forget_cursors();
        // Unlocked, not only closed: a `flock` belongs to the open file,
        // which a process forked meanwhile by another thread of the
        // program (a runtime embedding the library spawns one) shares
        // until it execs or ends, keeping the lock from every command.
        let _ = crate::sys::flock(std::os::fd::AsFd::as_fd(&self._lock), libc::LOCK_UN);
    }
}

/// An endpoint's record held by [`Locked::hold_endpoint`] until dropped.
#[derive(Debug)]
pub struct EndpointHold(File);

impl Drop for EndpointHold {
    fn drop(&mut self) {
        // Unlocked, not only closed: a process forked meanwhile by another
        // thread shares the open file until it execs (see `Locked`'s drop).
        let _ = crate::sys::flock(std::os::fd::AsFd::as_fd(&self.0), libc::LOCK_UN);
    }
}

impl Deref for Locked<'_> {
    type Target = StateDir;
    fn deref(&self) -> &StateDir {
        self.state
    }
}

impl Locked<'_> {
    /// Replaces `path` (its directory made when missing) with `contents`
    /// by a temporary and `renameat`, unsynced: the file and its directory
    /// wait for [`Locked::commit`].
    fn replace_file(&self, path: &Path, contents: &[u8]) -> Result<(), StoreError> {
        self.replace_file_as(path, contents, Durability::Committed, false)
    }

    /// [`Locked::replace_file`]; a [`Durability::Derived`] file is not
    /// noted for the commit at all, and one known to be `absent` (under the
    /// lock) is made in place ([`fsutil::create_new_file_at`]).
    fn replace_file_as(
        &self,
        path: &Path,
        contents: &[u8],
        durability: Durability,
        absent: bool,
    ) -> Result<(), StoreError> {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Err(StoreError::io("writing", path)(io::Error::from(
                io::ErrorKind::InvalidInput,
            )));
        };
        let name = name.to_string_lossy();
        if durability == Durability::Derived {
            // No descriptor of the directory is needed (no sync).
            let entry = |at: &super::handles::At| at.entry(&name);
            let made = match absent {
                true => self.handles.write_in(dir, "writing", path, |at| {
                    fsutil::create_new_file_at(at.fd(), &entry(at), contents, FILE_MODE)
                })?,
                false => None,
            };
            if let Some(file) = made {
                self.handles.let_go(file);
            } else {
                self.handles.write_in(dir, "writing", path, |at| {
                    fsutil::replace_at(at.fd(), &entry(at), contents, FILE_MODE)
                })?;
            }
            return Ok(());
        }
        self.check_dir(dir)?;
        let dir = self.handles.ensure(dir)?;
        self.mark_changing()?;
        let file = fsutil::replace_at(dir.fd(), &name, contents, FILE_MODE)
            .map_err(StoreError::io("writing", path))?;
        self.handles.written(path, file, &dir, contents);
        Ok(())
    }

    /// Makes everything written or removed under this lock so far durable
    /// (one entry of the commit log and one `fdatasync` of the lock; see
    /// the store's durability rules). A command calls it once, when its final state
    /// is written; records of intent written before need not survive a
    /// power cut (it resets the kernel they describe), only the death of
    /// the process, which the page cache survives.
    pub fn commit(&self) -> Result<(), StoreError> {
        self.state.commit_under(&self._lock)
    }

    fn remove_file(&self, path: &Path) -> Result<bool, StoreError> {
        self.remove_file_as(path, Durability::Committed)
    }

    fn remove_file_as(&self, path: &Path, durability: Durability) -> Result<bool, StoreError> {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Ok(false);
        };
        let name = name.to_string_lossy();
        if durability == Durability::Derived {
            // No descriptor of the directory is needed (no sync).
            let Some(at) = self.handles.reach(dir)? else {
                return Ok(false);
            };
            let entry = at
                .c_entry(&name)
                .map_err(StoreError::io("removing", path))?;
            return fsutil::remove_at(at.fd(), &entry)
                .map_err(|e| self.handles.explain(dir, e, "removing", path));
        }
        let Some(open) = self.handles.dir(dir)? else {
            return Ok(false);
        };
        let entry = fsutil::c_name(&name).map_err(StoreError::io("removing", path))?;
        self.mark_changing()?;
        let removed =
            fsutil::remove_at(open.fd(), &entry).map_err(StoreError::io("removing", path))?;
        if removed {
            self.handles.removed(path, &open);
        }
        Ok(removed)
    }

    /// Writes (creates or replaces) a network record.
    pub fn put_network(&self, network: &NetworkRecord) -> Result<(), StoreError> {
        check_name("network id", &network.id)?;
        let path = self.network_path(&network.id);
        let text = encode(&path, &network.to_json())?;
        // The name's hint before the record. Not part of the commit: a
        // hint lost to a power cut costs one scan of the network records.
        // One that cannot be written stops the write before the record
        // changes only if a hint naming another id stays readable, which
        // would send a lookup elsewhere; where none can be read either (a
        // file where the `names` directory belongs, a directory in the
        // hint's place) lookups read the records, and refusing would stop
        // every `network create` and `network rm` for a derived file.
        if is_valid_name(&network.name) {
            if let Err(error) = self.write_name_hint(network) {
                if self
                    .network_id_hint(&network.name)
                    .is_some_and(|id| id != network.id)
                {
                    return Err(error);
                }
            }
        }
        self.replace_file(&path, text.as_bytes())
    }

    /// Writes the name's hint of `network` when it is missing or names
    /// another id (lost to a power cut: it is not part of the commit);
    /// whether it wrote one.
    pub fn put_name_hint(&self, network: &NetworkRecord) -> Result<bool, StoreError> {
        if !is_valid_name(&network.name)
            || self.network_id_hint(&network.name).as_deref() == Some(network.id.as_str())
        {
            return Ok(false);
        }
        check_name("network id", &network.id)?;
        self.write_name_hint(network)?;
        Ok(true)
    }

    /// `names/<name>`: a link whose target is the id, read back by one
    /// `readlinkat`.
    fn write_name_hint(&self, network: &NetworkRecord) -> Result<(), StoreError> {
        let names = self.root.join(NAMES);
        let hint = names.join(&network.name);
        self.handles.write_in(&names, "writing", &hint, |at| {
            fsutil::replace_with_symlink_at(at.fd(), &at.entry(&network.name), &network.id)
        })
    }

    /// Removes a network with everything filed under it: its endpoint
    /// records, address files and hosts file. Refusing while endpoints
    /// remain is the caller's decision.
    pub fn remove_network(&self, id: &str) -> Result<bool, StoreError> {
        check_name("network id", id)?;
        let dirs = [
            self.endpoint_dir(id),
            self.ipam_dir(id),
            self.union_markers_dir(id),
        ];
        // All checked before the first removal: a refusal changes nothing.
        for dir in &dirs {
            self.check_tree_below(dir)?;
        }
        self.check_dir(&self.root.join(HOSTS))?;
        self.check_dir_if_present(&self.hosts_aliases_dir())?;
        for dir in dirs {
            self.remove_tree(&dir)?;
        }
        self.remove_file(&self.hosts_path(id))?;
        // Its hosts file's short name, while it names this network.
        if let Some(at) = self.handles.reach(&self.hosts_aliases_dir())? {
            if alias_names(&at, network_key(id)).as_deref() == Some(id) {
                self.remove_file_as(&self.hosts_alias_path(id), Durability::Derived)?;
            }
        }
        // The name's hint, while it names this network. Derived, as its
        // write is: a removal made durable (and written again after a
        // reboot) would take the hint of a network made since under the
        // same name.
        if let Ok(Some(network)) = self.network(id) {
            let hint = self.root.join(NAMES).join(&network.name);
            if self.network_id_hint(&network.name).as_deref() == Some(id) {
                self.remove_file_as(&hint, Durability::Derived)?;
            }
        }
        self.remove_file(&self.network_path(id))
    }

    /// Removes the directory `dir` with everything in it (checked by the
    /// caller), noted for the commit log: a record written into it before
    /// is not written again after a reboot.
    ///
    /// One that fails may have removed part of the tree, which no entry of
    /// the log would hold: the commit then syncs the file system, as for a
    /// change too large for the log, rather than take the failure for no
    /// change (a file's write or removal is made whole or not at all).
    fn remove_tree(&self, dir: &Path) -> Result<(), StoreError> {
        self.mark_changing()?;
        crate::fault::point("store: before rmdir");
        // Reached as every file is, from the checked directory above it.
        let at = match (dir.parent(), dir.file_name()) {
            (Some(parent), Some(name)) => self.handles.reach(parent)?.map(|at| (at, name)),
            _ => None,
        };
        let removed = crate::fault::io_refused("store: rmdir fails").and_then(|()| match &at {
            Some((at, name)) => remove_tree_at(at.fd(), &at.c_entry(&name.to_string_lossy())?),
            None => Ok(()),
        });
        match crate::fault::after("store: after rmdir", removed) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                self.handles.give_up_log();
                return Err(StoreError::io("removing", dir)(e));
            }
            _ => {}
        }
        // Its parent noted for a commit without the log: best effort (the
        // tree is gone; a parent that cannot be opened now leaves the
        // removal to the next sync).
        let parent = dir
            .parent()
            .and_then(|parent| self.handles.dir(parent).ok().flatten());
        self.handles.removed_tree(dir, parent);
        Ok(())
    }

    /// Records `name` as a complete container the driver created, on no
    /// network.
    pub fn put_container(&self, name: &str) -> Result<(), StoreError> {
        self.put_container_record(&ContainerRecord::created(name))
    }

    /// Writes (creates or replaces) a container record.
    pub fn put_container_record(&self, container: &ContainerRecord) -> Result<(), StoreError> {
        self.put_record(CONTAINERS, &container.name, &container.to_json())
    }

    /// Forgets the container `name`; `Ok(false)` when it was not recorded.
    pub fn remove_container(&self, name: &str) -> Result<bool, StoreError> {
        self.remove_record(CONTAINERS, name)
    }

    /// Writes (creates or replaces) an endpoint record.
    pub fn put_endpoint(&self, endpoint: &EndpointRecord) -> Result<(), StoreError> {
        check_name("network id", &endpoint.network_id)?;
        check_name("endpoint id", &endpoint.id)?;
        let path = self.endpoint_path(&endpoint.network_id, &endpoint.id);
        self.replace_file(&path, endpoint_text(endpoint).as_bytes())
    }

    /// Writes the first record (of intent) of an endpoint whose record
    /// the caller read as missing under this lock, as
    /// [`Locked::put_endpoint`] would, but made in place: no temporary and
    /// no rename, one call and one change of the directory fewer (see
    /// `fsutil::create_new_file_at` for what a reader or a kill sees: an empty
    /// record reads as missing, and `restore` removes it). One found there
    /// after all is replaced. Made durable by the commit as any.
    pub fn put_new_endpoint(&self, endpoint: &EndpointRecord) -> Result<(), StoreError> {
        check_name("network id", &endpoint.network_id)?;
        check_name("endpoint id", &endpoint.id)?;
        let path = self.endpoint_path(&endpoint.network_id, &endpoint.id);
        let text = endpoint_text(endpoint);
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return self.replace_file(&path, text.as_bytes());
        };
        let name = name.to_string_lossy();
        let logged = self
            .handles
            .log()
            .head
            .is_some_and(|head| head.generation.is_some());
        self.mark_changing()?;
        if logged {
            // The commit log's entry makes it durable, not a sync of its
            // directory: reached as any file (below a private root, by
            // its path from the root, the directory not opened).
            let made = self.handles.write_in(dir, "writing", &path, |at| {
                fsutil::create_new_file_at(at.fd(), &at.entry(&name), text.as_bytes(), FILE_MODE)
            })?;
            return match made {
                Some(file) => {
                    self.handles.written_logged(&path, file, text.as_bytes());
                    Ok(())
                }
                None => self.replace_file(&path, text.as_bytes()),
            };
        }
        self.check_dir(dir)?;
        let open = self.handles.ensure(dir)?;
        let made = fsutil::create_new_file_at(open.fd(), &name, text.as_bytes(), FILE_MODE)
            .map_err(StoreError::io("writing", &path))?;
        match made {
            Some(file) => {
                self.handles.written(&path, file, &open, text.as_bytes());
                Ok(())
            }
            None => self.replace_file(&path, text.as_bytes()),
        }
    }

    /// Holds the endpoint's record as it stands for as long as the hold
    /// lives: a command that lets the lock go while its intent is on record
    /// (a CNI ADD whose IPAM plugin runs) takes one first, so that
    /// [`Locked::endpoint_held`] tells its intent from one a dead command
    /// left. A `flock(2)` on the record's file, which the kernel lets go
    /// when the process ends, however it ends (unless a child it forked
    /// without exec still holds the open file: the descriptor is
    /// close-on-exec, and dropped, the hold is let go first); a record
    /// written again afterwards (a new file) is no longer held.
    pub fn hold_endpoint(&self, network_id: &str, id: &str) -> Result<EndpointHold, StoreError> {
        let path = self.endpoint_path(network_id, id);
        let Some(file) = self.open_endpoint_file(network_id, id, &path)? else {
            return Err(StoreError::io("holding", &path)(
                io::ErrorKind::NotFound.into(),
            ));
        };
        // Nobody else takes it: every other taker only tries, under the
        // store's lock, which this command holds.
        crate::sys::flock(
            std::os::fd::AsFd::as_fd(&file),
            libc::LOCK_EX | libc::LOCK_NB,
        )
        .map_err(StoreError::io("holding", &path))?;
        Ok(EndpointHold(file))
    }

    /// Whether a live command holds the endpoint's record
    /// ([`Locked::hold_endpoint`], this process included); `false` when
    /// there is no record.
    pub fn endpoint_held(&self, network_id: &str, id: &str) -> Result<bool, StoreError> {
        let path = self.endpoint_path(network_id, id);
        let Some(file) = self.open_endpoint_file(network_id, id, &path)? else {
            return Ok(false);
        };
        let fd = std::os::fd::AsFd::as_fd(&file);
        match crate::sys::flock(fd, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(()) => {
                // Unlocked, not only closed: see `Locked`'s drop.
                let _ = crate::sys::flock(fd, libc::LOCK_UN);
                Ok(false)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(true),
            Err(e) => Err(StoreError::io("reading", &path)(e)),
        }
    }

    /// The endpoint record's file at `path`, opened to read; `None` when
    /// it (or its directory) does not exist.
    fn open_endpoint_file(
        &self,
        network_id: &str,
        id: &str,
        path: &Path,
    ) -> Result<Option<File>, StoreError> {
        check_name("network id", network_id)?;
        check_name("endpoint id", id)?;
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Ok(None);
        };
        let Some(at) = self.handles.reach(dir)? else {
            return Ok(None);
        };
        let entry = fsutil::c_name(&at.entry(&name.to_string_lossy()))
            .map_err(StoreError::io("reading", path))?;
        match fsutil::open_regular_at(at.fd(), &entry, libc::O_RDONLY, 0) {
            Ok((file, _)) => Ok(Some(file)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.handles.explain(dir, e, "reading", path)),
        }
    }

    /// Removes an endpoint record; `Ok(false)` when there was none. A
    /// single attach's intent still in the commit log's page, settled, is
    /// taken out of it first.
    pub fn remove_endpoint(&self, network_id: &str, id: &str) -> Result<bool, StoreError> {
        check_name("network id", network_id)?;
        check_name("endpoint id", id)?;
        self.drop_settled_intent()?;
        self.remove_file(&self.endpoint_path(network_id, id))
    }

    /// Writes a generic record of `kind` (e.g. `containers`) under `id`.
    pub fn put_record(&self, kind: &str, id: &str, value: &Value) -> Result<(), StoreError> {
        self.put_record_as(kind, id, value, Durability::Committed)
    }

    /// Removes a generic record; `Ok(false)` when there was none.
    pub fn remove_record(&self, kind: &str, id: &str) -> Result<bool, StoreError> {
        self.remove_record_as(kind, id, Durability::Committed)
    }

    /// Writes a generic record that is derived from the durable records
    /// (e.g. the driver's container index): atomic like every record, but
    /// left out of the commit, file and directory alike, since `restore`
    /// rebuilds it after a power cut (see the store's durability rules).
    pub fn put_derived_record(
        &self,
        kind: &str,
        id: &str,
        value: &Value,
    ) -> Result<(), StoreError> {
        self.put_record_as(kind, id, value, Durability::Derived)
    }

    /// [`Locked::put_derived_record`] of a record's text as the caller
    /// wrote it (one JSON object, as [`crate::json::ObjectWriter`] writes
    /// it): no value built, encoded and held; the next read parses the
    /// file. `read_absent`: the caller read it as missing under this lock
    /// (but no longer holds it as read): made in place, without a
    /// temporary and a rename (see `fsutil::create_new_file_at`); one found
    /// there after all (an empty file reads as missing) is replaced as
    /// `put_derived_record` replaces it.
    pub fn put_derived_text(
        &self,
        kind: &str,
        id: &str,
        text: String,
        read_absent: bool,
    ) -> Result<(), StoreError> {
        self.write_record(kind, id, Durability::Derived, read_absent, |path| {
            record_text(path, text)
        })
        .map(drop)
    }

    /// [`StateDir::hosts_alias_path`] of network `network_id`, made a link
    /// to the network's hosts file (`../<id>`) when it is not one already
    /// (one `readlinkat` when it is). A container's view (one per
    /// container) links to it rather than to the file: the file's own path
    /// (the root, `hosts/` and 64 digits) is too long for a link's target
    /// to be held in its inode, and such a link costs nearly twice one that
    /// is (`records::NETWORK_KEY_LEN`). Derived, as the hosts files are:
    /// never synced, made again when missing.
    pub fn hosts_alias(&self, network_id: &str) -> Result<PathBuf, StoreError> {
        check_name("network id", network_id)?;
        let path = self.hosts_alias_path(network_id);
        let Some(dir) = path.parent() else {
            unreachable!("an alias's path has its directory");
        };
        let key = network_key(network_id);
        let target = format!("../{network_id}");
        self.handles.write_in(dir, "writing", &path, |at| {
            match alias_names(at, key) {
                Some(named) if named == network_id => return Ok(()),
                // Another network's of the same key that is still there
                // (stores made by hand: `network create` keeps keys
                // unique): its views lead through it, so it stays.
                Some(other) if self.present(&self.network_path(&other)).unwrap_or(true) => {
                    return Err(io::Error::from(io::ErrorKind::AlreadyExists))
                }
                // Missing: one `symlinkat` (a directory missing is its
                // ENOENT, which makes it).
                None if fsutil::symlink_new_at(at.fd(), &target, &at.c_entry(key)?)? => {
                    return Ok(())
                }
                // Another network's of that key since removed, anything
                // else: replaced.
                _ => {}
            }
            fsutil::replace_with_symlink_at(at.fd(), &at.entry(key), &target)
        })?;
        Ok(path)
    }

    /// Removes the entries of `hosts/k` ([`Locked::hosts_alias`]) that are
    /// not the short name of a network the store holds (by its record's
    /// file, readable or not): links to a network since removed, and
    /// files found there (never followed). Returns how many, and the
    /// entries it could not remove (a directory is left, reported).
    pub fn remove_stale_hosts_aliases(&self) -> Result<(usize, Vec<StoreError>), StoreError> {
        let dir = self.hosts_aliases_dir();
        if !self.check_dir_if_present(&dir)? {
            return Ok((0, Vec::new()));
        }
        let ids = self.network_ids()?;
        let Some(at) = self.handles.reach(&dir)? else {
            return Ok((0, Vec::new()));
        };
        let (mut removed, mut failed) = (0, Vec::new());
        for name in self.list_names(&dir)? {
            let path = dir.join(&name);
            let names_one = alias_names(&at, &name)
                .is_some_and(|id| network_key(&id) == name && ids.contains(&id));
            if names_one {
                continue;
            }
            match self.remove_file_as(&path, Durability::Derived) {
                Ok(true) => removed += 1,
                Ok(false) => {}
                Err(error) => failed.push(error),
            }
        }
        Ok((removed, failed))
    }

    /// Writes a derived record (as [`Locked::put_derived_record`]) as a
    /// symbolic link whose target is `target` (at most
    /// [`DERIVED_LINK_MAX`] bytes, read back by
    /// [`StateDir::derived_entry`]): one `symlinkat` when the caller read
    /// it as missing under this lock (`read_absent`), else a link at a
    /// temporary name renamed over what is there (a link, or a regular
    /// file of an older version). A new inode costs what it costs, but a
    /// link's is the whole write: no descriptor, no data written apart,
    /// half a created file's cost (and one `readlinkat` to read it).
    pub fn put_derived_link(
        &self,
        kind: &str,
        id: &str,
        target: &str,
        read_absent: bool,
    ) -> Result<(), StoreError> {
        check_name("record kind", kind)?;
        check_name("record id", id)?;
        let path = self.record_path(kind, id);
        if target.is_empty() || target.len() >= DERIVED_LINK_MAX || target.contains('\0') {
            return Err(StoreError::refused(
                path,
                format!(
                    "a link's target of {} bytes is not 1 to {} bytes without NUL; nothing was written",
                    target.len(),
                    DERIVED_LINK_MAX - 1
                ),
            ));
        }
        let Some(dir) = path.parent() else {
            unreachable!("a record's path has its kind's directory");
        };
        let name = format!("{id}.json");
        let absent = read_absent || self.record_held(&path) == Some(None);
        let written = self.handles.write_in(dir, "writing", &path, |at| {
            if absent && fsutil::symlink_new_at(at.fd(), target, &at.c_entry(&name)?)? {
                return Ok(());
            }
            fsutil::replace_with_symlink_at(at.fd(), &at.entry(&name), target)
        });
        // A failed write may have replaced it or not: read again.
        self.forget_record(&path);
        written
    }

    /// Removes a derived record ([`Locked::put_derived_record`]) without
    /// syncing its directory; `Ok(false)` when there was none.
    pub fn remove_derived_record(&self, kind: &str, id: &str) -> Result<bool, StoreError> {
        self.remove_record_as(kind, id, Durability::Derived)
    }

    fn put_record_as(
        &self,
        kind: &str,
        id: &str,
        value: &Value,
        durability: Durability,
    ) -> Result<(), StoreError> {
        let path = self.write_record(kind, id, durability, false, |path| encode(path, value))?;
        self.hold_record(&path, Some(value.clone()));
        Ok(())
    }

    /// Writes the record `id` of `kind` whose text `text` makes for its
    /// path (refused before any file is touched) and returns that path;
    /// what this lock held of the record is forgotten. `read_absent`: the
    /// caller read it as missing under this lock.
    fn write_record(
        &self,
        kind: &str,
        id: &str,
        durability: Durability,
        read_absent: bool,
        text: impl FnOnce(&Path) -> Result<String, StoreError>,
    ) -> Result<PathBuf, StoreError> {
        check_name("record kind", kind)?;
        check_name("record id", id)?;
        let path = self.record_path(kind, id);
        // Read under this lock and found missing: nobody else writes it.
        let absent = read_absent || self.record_held(&path) == Some(None);
        let written = text(&path)
            .and_then(|text| self.replace_file_as(&path, text.as_bytes(), durability, absent));
        // A failed write may have replaced it or not: read again.
        self.forget_record(&path);
        written.map(|()| path)
    }

    fn remove_record_as(
        &self,
        kind: &str,
        id: &str,
        durability: Durability,
    ) -> Result<bool, StoreError> {
        check_name("record kind", kind)?;
        check_name("record id", id)?;
        let path = self.record_path(kind, id);
        let removed = self.remove_file_as(&path, durability);
        self.forget_record(&path);
        let removed = removed?;
        self.hold_record(&path, None);
        Ok(removed)
    }

    /// Forgets the record at `path`, read from disk again when next asked.
    fn forget_record(&self, path: &Path) {
        if let Some(held) = self.records_held().as_mut() {
            held.records.retain(|(p, _)| !fsutil::same_path(p, path));
        }
    }

    /// Allocates an address of `network` for `owner` (an endpoint id) and
    /// returns it with its subnet's prefix length. Reads and writes a
    /// constant number of files in the common case.
    pub fn allocate(
        &self,
        network: &NetworkRecord,
        request: Request,
        owner: &str,
    ) -> Result<IpNet, StoreError> {
        check_name("network id", &network.id)?;
        check_name("address owner", owner)?;
        self.check_ipam(network)?;
        let mut book = DiskBook::new(&self.handles, self.ipam_dir(&network.id));
        let name = NetworkName {
            name: &network.name,
            id: &network.id,
        };
        let result = ipam::allocate(&mut book, &network.subnets, request, owner, name);
        let finished = book.finish();
        let address = result?;
        finished?;
        Ok(address)
    }

    /// Where the allocation cursor of each subnet of `network` stands (in
    /// the order of its subnets), so a caller that undoes many allocations
    /// can put the hint back as it was ([`Locked::put_cursors`]).
    pub fn cursors(&self, network: &NetworkRecord) -> Result<Vec<SavedCursor>, StoreError> {
        use crate::ipam::AddressBook;
        check_name("network id", &network.id)?;
        self.check_ipam(network)?;
        let mut book = DiskBook::new(&self.handles, self.ipam_dir(&network.id));
        let mut cursors = Vec::with_capacity(network.subnets.len());
        for subnet in &network.subnets {
            let last = book.cursor(subnet)?;
            let freed = book.freed(subnet)?;
            cursors.push(SavedCursor { last, freed });
        }
        book.finish()?;
        Ok(cursors)
    }

    /// Puts back cursors read by [`Locked::cursors`]: a subnet that had
    /// none has its cursor file removed; one that has not moved since is
    /// not written.
    pub fn put_cursors(
        &self,
        network: &NetworkRecord,
        saved: &[SavedCursor],
    ) -> Result<(), StoreError> {
        use crate::ipam::AddressBook;
        check_name("network id", &network.id)?;
        self.check_ipam(network)?;
        let mut book = DiskBook::new(&self.handles, self.ipam_dir(&network.id));
        for (subnet, saved) in network.subnets.iter().zip(saved) {
            if book.cursor(subnet)? == saved.last && book.freed(subnet)? == saved.freed {
                continue;
            }
            match saved.last {
                Some(addr) => book.set_cursor_counting(subnet, addr, saved.freed)?,
                None => book.clear_cursor(subnet)?,
            }
        }
        book.finish()
    }

    /// Frees `addr` of `network`. Always succeeds when the address is
    /// already free; returns whether it was taken.
    pub fn release(&self, network: &NetworkRecord, addr: IpAddr) -> Result<bool, StoreError> {
        check_name("network id", &network.id)?;
        self.check_ipam(network)?;
        let mut book = DiskBook::new(&self.handles, self.ipam_dir(&network.id));
        let released = ipam::release(&mut book, &network.subnets, addr)?;
        book.finish()?;
        Ok(released)
    }

    /// Frees `addr` only while the endpoint `owner` holds it (one read): an
    /// address another endpoint took since stays taken. Returns whether it
    /// was freed.
    pub fn release_if_owner(
        &self,
        network: &NetworkRecord,
        addr: IpAddr,
        owner: &str,
    ) -> Result<bool, StoreError> {
        let Some(subnet) = network.subnets.iter().find(|s| s.subnet.contains(&addr)) else {
            return Ok(false);
        };
        let held = match self.address_owner(&network.id, subnet, addr) {
            Ok(held) => held,
            // Names no owner that can be read: left for `restore`.
            Err(StoreError::Corrupt { .. }) => None,
            Err(error) => return Err(error),
        };
        if held.as_deref() != Some(owner) {
            return Ok(false);
        }
        self.release(network, addr)
    }

    /// Frees the addresses of `network` whose owner has no endpoint record
    /// (left by a crash between allocation and record, or brought back by
    /// a power cut after the record went); returns how many. An owner
    /// whose record exists but cannot be read keeps its addresses: the
    /// record is damaged, not absent. An address file that names no owner
    /// it can read (empty or not text: the unsynced file of a command a
    /// power cut ended) is freed too, unless an endpoint record of the
    /// network cannot be read, whose address it may be.
    pub fn release_orphans(&self, network: &NetworkRecord) -> Result<usize, StoreError> {
        let files = self.address_files(network)?;
        let unknown_may_be_damaged = files.iter().any(|(_, owner)| owner.is_none())
            && !self.endpoints_of(&network.id)?.damaged.is_empty();
        let mut freed = 0;
        for (addr, owner) in files {
            let orphan = match owner {
                None => !unknown_may_be_damaged,
                Some(owner) => !self.record_holds(&network.id, &owner, addr)?,
            };
            if orphan && self.release(network, addr)? {
                freed += 1;
            }
        }
        Ok(freed)
    }

    /// Whether endpoint `id` of network `network_id` has a record, readable
    /// or not (a damaged record still holds its addresses); an id that is
    /// no valid name has none.
    fn has_endpoint_record(&self, network_id: &str, id: &str) -> Result<bool, StoreError> {
        match self.endpoint(network_id, id) {
            Ok(record) => Ok(record.is_some()),
            Err(StoreError::Corrupt { .. } | StoreError::Refused { .. }) => Ok(true),
            Err(StoreError::InvalidName { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Whether endpoint `id` of network `network_id` holds `addr` by its
    /// record: a readable record names it (an address file's owner whose
    /// record holds another address is stale: the endpoint detached and
    /// attached again before a power cut took the unsynced file's
    /// change), a damaged record may (it still holds its addresses); an
    /// id that is no valid name, or has no record, holds nothing.
    fn record_holds(&self, network_id: &str, id: &str, addr: IpAddr) -> Result<bool, StoreError> {
        match self.endpoint(network_id, id) {
            Ok(record) => Ok(record.is_some_and(|record| {
                [record.ipv4, record.ipv6]
                    .iter()
                    .flatten()
                    .any(|net| net.addr() == addr)
            })),
            Err(StoreError::Corrupt { .. } | StoreError::Refused { .. }) => Ok(true),
            Err(StoreError::InvalidName { .. }) => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Makes the address file of `addr` name `owner` (an endpoint whose
    /// record holds `addr`), for `restore` after a power cut lost or
    /// emptied it: made when missing, rewritten when it names no owner that
    /// can be read or an owner whose record does not hold `addr`; left
    /// alone when it already names `owner` or another endpoint whose
    /// record holds it (two records cannot both hold one address: the
    /// caller reports it). Not
    /// part of the commit, like every address file.
    pub fn restore_address(
        &self,
        network: &NetworkRecord,
        addr: IpAddr,
        owner: &str,
    ) -> Result<AddressRepair, StoreError> {
        check_name("network id", &network.id)?;
        check_name("address owner", owner)?;
        let Some(spec) = network.subnets.iter().find(|s| s.subnet.contains(&addr)) else {
            return Ok(AddressRepair::OutsideSubnets);
        };
        self.check_ipam(network)?;
        let dir = subnet_dir(&self.ipam_dir(&network.id), spec);
        let path = dir.join(addr.to_string());
        match self.read_owner(&path)? {
            Some(Some(held)) if held == owner => return Ok(AddressRepair::Kept),
            Some(Some(held)) if self.record_holds(&network.id, &held, addr)? => {
                return Ok(AddressRepair::HeldBy(held))
            }
            Some(Some(_)) => {}
            Some(None) | None => {}
        }
        // The link this version makes, over the old file or link alike.
        self.handles.write_in(&dir, "writing", &path, |at| {
            fsutil::replace_with_symlink_at(at.fd(), &at.entry(&addr.to_string()), owner)
        })?;
        Ok(AddressRepair::Remade)
    }

    /// Frees every address `owner` holds in `network` (reads all address
    /// files: for `restore` after a crash between allocation and record).
    pub fn release_owner(
        &self,
        network: &NetworkRecord,
        owner: &str,
    ) -> Result<Vec<IpAddr>, StoreError> {
        let mut freed = Vec::new();
        for (addr, holder) in self.addresses(network)? {
            if holder == owner && self.release(network, addr)? {
                freed.push(addr);
            }
        }
        Ok(freed)
    }

    /// The host id for the ULA prefix: the content of `machine_id`
    /// (normally [`MACHINE_ID_PATH`]), else the state directory's
    /// `host-id`, created once with a random value.
    pub fn host_id(&self, machine_id: &Path) -> Result<String, StoreError> {
        if let Some(id) = StateDir::machine_id(machine_id) {
            return Ok(id);
        }
        let path = self.root.join(HOST_ID_FILE);
        if let Some(id) = self.read_text(&path)? {
            let id = id.trim();
            if !id.is_empty() {
                return Ok(id.to_string());
            }
        }
        let id = random_hex(16).map_err(StoreError::io("drawing random bytes for", &path))?;
        self.write_json_text(&path, &format!("{id}\n"))?;
        Ok(id)
    }

    fn write_json_text(&self, path: &Path, text: &str) -> Result<(), StoreError> {
        self.replace_file(path, text.as_bytes())
    }

    /// Removes temporary files a killed invocation left behind, and empty
    /// records (`*.json` of no bytes under `networks/`, `endpoints/` or
    /// `records/`: a new record whose data a power cut lost, which every
    /// read takes for one never written); returns how many. Walks the
    /// whole directory: for `restore`. A directory that fails the trust
    /// check stops the walk before anything in it is removed.
    pub fn clean_temporaries(&self) -> Result<usize, StoreError> {
        // Where records are: an empty file elsewhere is no record (the
        // `/etc/netns` marker `hosts/etc-netns/NAME` is empty by design,
        // and a container may be named `web.json`).
        const RECORD_DIRS: [&str; 3] = ["networks", "endpoints", "records"];
        fn walk(
            state: &StateDir,
            dir: &Path,
            records: bool,
            count: &mut usize,
        ) -> Result<(), StoreError> {
            if !state.handles.check_one(dir)? {
                return Ok(());
            }
            let entries = match crate::sys::list_dir_typed(dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(StoreError::io("listing", dir)(e)),
            };
            let at_root = dir == state.root.as_path();
            for entry in entries {
                let path = dir.join(entry.file_name());
                // In the root, only the store's own names: anything else
                // there is not the store's to clean.
                if at_root && !entry.file_name().to_str().is_some_and(is_root_name) {
                    continue;
                }
                if entry.kind == libc::DT_DIR {
                    let records = records
                        || (dir == state.root.as_path()
                            && RECORD_DIRS.iter().any(|d| entry.file_name() == *d));
                    walk(state, &path, records, count)?;
                } else if entry.file_name().to_str().is_some_and(|name| {
                    fsutil::is_temp_name(name)
                        || (records
                            && name.ends_with(".json")
                            && entry.kind == libc::DT_REG
                            && fs::symlink_metadata(&path).is_ok_and(|m| m.len() == 0))
                }) {
                    crate::fault::point("store: before unlink");
                    crate::fault::after("store: after unlink", fs::remove_file(&path))
                        .map_err(StoreError::io("removing", &path))?;
                    *count += 1;
                }
            }
            Ok(())
        }
        let mut count = 0;
        walk(self, &self.root, false, &mut count)?;
        Ok(count)
    }
}

/// A subnet's allocation cursor as [`Locked::cursors`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SavedCursor {
    /// The address it holds: none, or one that did not parse.
    pub last: Option<IpAddr>,
    /// The addresses counted as freed since the subnet was found full
    /// (see `crate::ipam::AddressBook::freed`).
    pub freed: u32,
}

/// Removes the directory `name` of `parent` with everything in it, depth
/// first, by descriptor: each level opened `O_NOFOLLOW` below the one
/// above, so no link is followed, at the top (refused) or inside
/// (unlinked), and nothing above is looked up again, which a rename there
/// could change. The standard library's walk does as much with more code
/// than the store's own calls need. What vanished meanwhile is no failure.
fn remove_tree_at(parent: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
    let dir = match crate::sys::openat(Some(parent), name, flags, 0) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        opened => opened?,
    };
    for entry in crate::sys::dir_names(dir.as_fd())? {
        let entry = CString::new(entry.name)?;
        // Linux answers `EISDIR` for a directory: emptied, then removed.
        match crate::sys::unlink_at(dir.as_fd(), &entry, 0) {
            Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
                remove_tree_at(dir.as_fd(), &entry)?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            unlinked => unlinked?,
        }
    }
    match crate::sys::unlink_at(parent, name, libc::AT_REMOVEDIR) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        removed => removed,
    }
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    /// A store opened before there was one, and made by an older version
    /// (its lock empty) before this program's first lock: searched for
    /// the records such a version files under a container's name. Before,
    /// it kept the mark of a store this version makes.
    #[test]
    fn a_store_an_older_version_makes_meanwhile_keeps_its_format() {
        let root =
            std::env::temp_dir().join(format!("ipvlan-older-meanwhile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let state = super::StateDir::open_unmade(&root).unwrap();
        assert!(state.by_identity_only(), "what this version would make");
        drop(super::StateDir::open(&root).unwrap());
        std::fs::write(root.join("lock"), "").unwrap();
        drop(state.lock().unwrap());
        assert!(!state.by_identity_only(), "an older version's store");
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// A network removed from a store without a commit log (an older
    /// version's, or one whose log could not be made) has the directories
    /// its trees went from synced by the commit, which syncs file by file.
    /// Before, only the record's directory was: a power cut could bring
    /// the network's endpoint and address trees back without it.
    #[test]
    fn a_tree_removed_without_a_log_has_its_directory_synced() {
        let root = std::env::temp_dir().join(format!("ipvlan-tree-sync-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        drop(super::StateDir::open(&root).unwrap());
        std::fs::write(root.join("lock"), "").unwrap();
        let state = super::StateDir::open(&root).unwrap();
        let net = crate::store::records::fixtures::network("n1", 'a', Vec::new());
        let endpoint = crate::store::records::fixtures::endpoint(&net, "c1", "c1", "10.0.0.2/24");
        let locked = state.lock().unwrap();
        locked.put_network(&net).unwrap();
        locked.put_endpoint(&endpoint).unwrap();
        locked.commit().unwrap();
        assert!(locked.remove_network(&net.id).unwrap());
        let synced: Vec<std::path::PathBuf> = locked
            .handles
            .take_pending()
            .dirs
            .iter()
            .map(|dir| dir.path.clone())
            .collect();
        assert!(synced.contains(&root.join("endpoints")), "{synced:?}");
        drop(locked);
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// A tree goes whole; a link in it is unlinked, never followed, and a
    /// link in the tree's place is refused: what they name stays.
    #[test]
    fn a_tree_goes_and_no_link_is_followed() {
        let root = std::env::temp_dir().join(format!("ipvlan-rmtree-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (tree, outside) = (root.join("tree"), root.join("outside"));
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(tree.join("a/b/f"), "x").unwrap();
        std::fs::write(tree.join("top"), "x").unwrap();
        std::fs::write(outside.join("kept"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("a/dir-link")).unwrap();
        std::os::unix::fs::symlink(outside.join("kept"), tree.join("file-link")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("link-tree")).unwrap();
        let at = std::fs::File::open(&root).unwrap();
        let refused = super::remove_tree_at(at.as_fd(), c"link-tree").unwrap_err();
        let errno = refused.raw_os_error();
        assert!(
            matches!(errno, Some(libc::ELOOP | libc::ENOTDIR)),
            "{refused}"
        );
        super::remove_tree_at(at.as_fd(), c"tree").unwrap();
        assert!(std::fs::symlink_metadata(&tree).is_err());
        assert_eq!(std::fs::read_to_string(outside.join("kept")).unwrap(), "x");
        // Gone already: nothing to do.
        super::remove_tree_at(at.as_fd(), c"tree").unwrap();
        std::fs::remove_dir_all(&root).unwrap();
    }
}
