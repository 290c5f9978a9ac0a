//! The store's open directories and its commit: every directory the
//! store uses is opened once per command (`O_DIRECTORY | O_NOFOLLOW`,
//! relative to its checked parent) and checked on the descriptor (owner,
//! write bits), and every file is reached relative to those descriptors,
//! so no path is walked from `/` again and nothing checked can be swapped
//! by a rename above it. What a locked command wrote waits here for the
//! one commit that makes it durable (see the store's durability rules).
//!
//! The checks keep other users from planting or swapping state. When
//! the root grants group and others nothing at all (mode `& 0o077 == 0`,
//! as the store makes it whatever the umask; told by the `fstat` the
//! root gets anyway, once per command), nobody else can reach anything
//! below it, and a privileged process no check stops: its subdirectories
//! are then not checked one by one, and a file is reached by its path
//! from the root's descriptor ([`At`]: `readlinkat(root,
//! "names/<name>")`, `renameat` of `endpoints/<net>/.tmp-x`), without
//! opening the directories on the way. A directory is opened only where
//! its descriptor is needed (the commit's `fsync`, a listing, `mkdirat`),
//! in one `openat` of its path from the root, `O_DIRECTORY | O_NOFOLLOW`
//! (a link or a non-directory there is still refused). A missing
//! directory reads as empty and is made by the first write into it, as
//! before; a non-directory on the way is refused by name (the directories
//! are then opened one by one to word it). A link on the way to a file
//! would be followed, like a link above the root: only the owner or a
//! privileged process can have made it. `restore` walks and checks the
//! whole tree, so an odd subdirectory is still named there. Under a root
//! with any group or other bit, every subdirectory is opened and checked
//! from the root down, as above.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use super::fsutil;
use super::StoreError;

/// A directory of the store, open and checked.
#[derive(Debug)]
pub(crate) struct Dir {
    pub(crate) path: PathBuf,
    file: File,
    /// Nobody but the owner (and privileged processes, which no check
    /// stops) can reach it: the root grants group and others nothing, or
    /// this directory lies below such a root.
    pub(super) private: bool,
}

impl Dir {
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

/// A directory of the store as a file in it is reached: by its own
/// descriptor, or, below a private root, by the root's descriptor and
/// the path from it, without opening the directory (see the module's
/// documentation). Either way [`At::fd`] and [`At::entry`] name the file
/// for the `*at` calls.
#[derive(Debug, Clone)]
pub(crate) enum At {
    /// Open (and, unless below a private root, checked).
    Open(Arc<Dir>),
    /// Not opened: `relative` from the private root `root`.
    Below { root: Arc<Dir>, relative: String },
}

impl At {
    pub(super) fn fd(&self) -> BorrowedFd<'_> {
        match self {
            At::Open(dir) => dir.fd(),
            At::Below { root, .. } => root.fd(),
        }
    }

    /// `name` in this directory, as a path from [`At::fd`].
    pub(super) fn entry(&self, name: &str) -> String {
        match self {
            At::Open(_) => name.to_string(),
            At::Below { relative, .. } => {
                let mut entry = String::with_capacity(relative.len() + 1 + name.len());
                entry.push_str(relative);
                entry.push('/');
                entry.push_str(name);
                entry
            }
        }
    }

    /// [`At::entry`] as a C string.
    pub(super) fn c_entry(&self, name: &str) -> io::Result<std::ffi::CString> {
        fsutil::c_name(&self.entry(name))
    }
}

/// What the clones of a [`super::StateDir`] share.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Directories checked since `open` or the last start over.
    dirs: Vec<Arc<Dir>>,
    /// Set by `open`: the next `lock` need not check again.
    fresh: bool,
    /// Files written since the last commit, by path, still open for
    /// their `fdatasync` (a file replaced again keeps only its last
    /// version here).
    files: Vec<(PathBuf, File)>,
    /// Directories whose entries changed since the last commit.
    changed: Vec<Arc<Dir>>,
    /// What the durable writes and removals since the last commit left at
    /// each path, in order, for the commit log (see `commit_log.rs`).
    /// Dropped when the commit is to sync the file system instead
    /// (`overflowed`).
    changes: Vec<(PathBuf, Noted)>,
    /// A hash of each path in `changes` (of its bytes): a batch notes
    /// hundreds, nearly all once, and only a path that may have been
    /// noted before is looked for among them. Kept sorted, not in a
    /// `HashSet`, which asks the kernel for its random keys (`getrandom`)
    /// in every command that opens the store.
    noted: Vec<u64>,
    /// What `changes` would take in an entry of the commit log, at most;
    /// past [`super::commit_log::COMMIT_PAYLOAD_MAX`] the changes are dropped (such a
    /// commit syncs the file system) and `overflowed` is set.
    changes_bytes: usize,
    /// The commit log as the lock held now found it (see
    /// [`Handles::log`]).
    log: LogHold,
    /// The intent record of a single attach or detach under way that the
    /// log's volatile page holds (empty: none), written again with the
    /// page.
    single_intent: Vec<u8>,
    /// Why the last replay of the commit log passed over changes.
    replay_refusals: Vec<String>,
    /// Whether the volatile page, as last written by this command, holds
    /// an intent (that of `single_intent`, or one settled since).
    page_intent: bool,
    /// Why the intent a killed attach or detach left in the page could not
    /// be made a record when the lock was taken (it is then held in
    /// `single_intent`, carried by every write of the page).
    intent_left: Option<String>,
    /// More than [`SYNCFS_ABOVE`] of them since the last commit in a store
    /// without a commit log, or more changes than the log holds
    /// ([`super::commit_log::COMMIT_PAYLOAD_MAX`]): the descriptors were let go (a
    /// batch of a thousand endpoints would hold thousands open), and the
    /// commit syncs the file system.
    overflowed: bool,
    /// More than [`SYNCFS_ABOVE`] of them since the last commit, with the
    /// commit log there: their descriptors were let go, as a commit
    /// through the log syncs none of them, and `changes` kept for it. A
    /// commit that then cannot go through the log syncs the file system.
    files_let_go: bool,
    /// See [`Handles::leave_files_to_exit`].
    leave_to_exit: bool,
    /// How many were left so far (at most [`LEFT_TO_EXIT_MAX`]).
    left_to_exit: usize,
    /// Allocation cursors read or written under the lock held now, open,
    /// with what they hold (see [`Handles::keep_cursor`]).
    cursors: Vec<HeldCursor>,
    /// The failure of a commit made by a lock's release, which has no
    /// caller to return it to (see [`Handles::lose_commit`]).
    lost_commit: Option<StoreError>,
}

/// An allocation cursor kept open under the lock: its subnet directory,
/// its descriptor and the address it holds (`None`: none, or one that did
/// not parse).
#[derive(Debug)]
pub(crate) struct HeldCursor {
    pub(crate) dir: PathBuf,
    pub(crate) file: File,
    pub(crate) value: Option<std::net::IpAddr>,
    /// The addresses counted as freed since its subnet was found full
    /// (`crate::ipam::AddressBook::freed`), written after the address.
    pub(crate) freed: u32,
    /// Whether `value` is newer than the file: an allocation moved the
    /// cursor, which is written once when the lock lets it go (see
    /// [`Handles::forget_cursors`]), not once per allocation of a batch.
    pub(crate) unwritten: bool,
}

/// What a command wrote and removed since its last commit (see
/// [`Handles::take_pending`]).
#[derive(Debug, Default)]
pub(crate) struct Pending {
    files: Vec<(PathBuf, File)>,
    /// The directories whose entries changed, for a commit that syncs
    /// file by file.
    pub(crate) dirs: Vec<Arc<Dir>>,
    overflowed: bool,
    /// See `Shared::files_let_go`.
    files_let_go: bool,
    /// What each path holds now (see `Shared::changes`); empty when
    /// `overflowed`.
    pub(crate) changes: Vec<(PathBuf, Noted)>,
}

/// What a command left at a path, for the commit log.
#[derive(Debug)]
pub(crate) enum Noted {
    /// These bytes, written.
    Written(Vec<u8>),
    /// Nothing: the file removed.
    Removed,
    /// Nothing: the directory removed with everything in it.
    RemovedTree,
}

impl Pending {
    /// Whether nothing is to be made durable (a tree's removal, noted for
    /// the log alone, counts).
    pub(crate) fn is_empty(&self) -> bool {
        self.files.is_empty()
            && self.dirs.is_empty()
            && self.changes.is_empty()
            && !self.overflowed
            && !self.files_let_go
    }

    /// Whether the commit is to sync the file system: more than
    /// [`SYNCFS_ABOVE`] files and directories changed in a store without a
    /// commit log, or more than the log holds.
    pub(crate) fn overflowed(&self) -> bool {
        self.overflowed
    }
}

/// The commit log of the lock held now (`dir/commit.rs`): its head as
/// read when the lock was taken, kept up to date by this command's writes
/// of it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LogHold {
    /// The head read with the lock; `None` before the first lock, or when
    /// the log must not be used (while it is replayed).
    pub(crate) head: Option<super::commit_log::Head>,
    /// This boot's id, once read.
    pub(crate) boot: Option<super::commit_log::BootId>,
    /// Whether a batch's intents file may exist (written into the
    /// volatile page with the next write of it).
    pub(crate) batch_intents: bool,
    /// Changes written again from a log a power cut left, not yet
    /// reported (see `StateDir::take_log_replayed`).
    pub(crate) replayed: usize,
}

/// Directories kept open and checked between two starts over, past which
/// those nobody holds now are let go (see [`Shared::keep_dir`]). A command
/// uses a dozen; a restore's walk more.
const DIRS_KEPT: usize = 32;

impl Shared {
    /// Notes `dir`, an entry of which changed, for a commit that syncs
    /// file by file (once, however many of its entries changed).
    fn dir_changed(&mut self, dir: &Arc<Dir>) {
        if !self.changed.iter().any(|d| Arc::ptr_eq(d, dir)) {
            self.changed.push(dir.clone());
        }
    }

    /// Keeps `dir` open and checked. Past [`DIRS_KEPT`] the directories no
    /// caller holds now go first (opened and checked again when next
    /// used): a program that keeps a `StateDir` for listings without a
    /// lock or a `refresh` holds a bounded number of descriptors, not one
    /// for every directory it ever listed (removed networks' too).
    fn keep_dir(&mut self, dir: Arc<Dir>) {
        if self.dirs.len() >= DIRS_KEPT {
            self.dirs.retain(|kept| Arc::strong_count(kept) > 1);
        }
        self.dirs.push(dir);
    }

    /// Past [`SYNCFS_ABOVE`] pending files and directories, lets their
    /// descriptors go. With the commit log there, the changes stay for
    /// it: it holds their contents, which a power cut's next lock writes
    /// again, so how many files they are in does not matter, only whether
    /// the log has room for them ([`Shared::note_change`], the commit).
    /// Without it, the commit becomes a whole-file-system one.
    fn spill(&mut self) {
        if !self.overflowed && self.files.len() + self.changed.len() <= SYNCFS_ABOVE {
            return;
        }
        let files = std::mem::take(&mut self.files);
        self.let_go(files.into_iter().map(|(_, file)| file));
        self.changed.clear();
        let log_there = self.log.head.is_some_and(|head| head.generation.is_some());
        if log_there && !self.overflowed {
            self.files_let_go = true;
        } else {
            self.overflowed = true;
            self.changes = Vec::new();
            self.noted.clear();
        }
    }

    /// Notes what `path` holds now for the commit log, in place of what an
    /// earlier change of it under this lock left.
    fn note_change(&mut self, path: &Path, noted: Noted) {
        if self.overflowed {
            return;
        }
        let hash = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            path.as_os_str().hash(&mut hasher);
            hasher.finish()
        };
        match self.noted.binary_search(&hash) {
            Ok(_) => self.changes.retain(|(p, _)| !fsutil::same_path(p, path)),
            Err(at) => self.noted.insert(at, hash),
        }
        // Its kind, the path's length and path, the contents' length and
        // contents (an upper bound: the path is made relative later).
        let contents = match &noted {
            Noted::Written(bytes) => 4 + bytes.len(),
            Noted::Removed | Noted::RemovedTree => 0,
        };
        self.changes_bytes += 1 + 2 + path.as_os_str().len() + contents;
        if self.changes_bytes > super::commit_log::COMMIT_PAYLOAD_MAX
            || self.changes.len() >= CHANGES_MAX
        {
            // A batch of many removals from one directory: its commit is
            // one `syncfs` (see `spill`, which the caller calls next), and
            // nothing is held per target.
            self.give_up_log();
            return;
        }
        self.changes.push((path.to_path_buf(), noted));
    }

    /// Drops the changes noted for the commit log: the commit is to sync
    /// the file system instead.
    fn give_up_log(&mut self) {
        self.overflowed = true;
        self.changes = Vec::new();
        self.noted.clear();
    }

    /// Closes `files`, or leaves them to the exit (see
    /// [`Handles::leave_files_to_exit`]).
    fn let_go(&mut self, files: impl IntoIterator<Item = File>) {
        for file in files {
            if self.leave_to_exit && self.left_to_exit < LEFT_TO_EXIT_MAX {
                self.left_to_exit += 1;
                std::mem::forget(file);
            }
        }
    }

    /// Takes `path` out of the files waiting for the commit (it was
    /// replaced or removed since), closing its descriptor or leaving it.
    fn drop_pending(&mut self, path: &Path) {
        if let Some(at) = self
            .files
            .iter()
            .position(|(p, _)| fsutil::same_path(p, path))
        {
            let (_, gone) = self.files.remove(at);
            self.let_go([gone]);
        }
    }
}

/// How many state files a command leaves to its exit at most (see
/// [`Handles::leave_files_to_exit`]): one attach writes three or four; a
/// batch writes thousands, which must not stay open.
const LEFT_TO_EXIT_MAX: usize = 8;

/// How many allocation cursors are kept open under a lock at most.
const HELD_CURSORS_MAX: usize = 4;

/// The most changes a commit holds for the commit log (each a path and
/// what it holds, in memory until the commit); past them, or past
/// [`super::commit_log::COMMIT_PAYLOAD_MAX`] bytes of them, it syncs the
/// file system instead. A batch of many removals holds little per change
/// in the log but a path each in memory.
const CHANGES_MAX: usize = 256;

/// How many files and directories a commit keeps descriptors of, to sync
/// them one by one in a store without a commit log; above, their
/// descriptors are let go and such a commit syncs the file system (one
/// through the log needs none of them).
pub(crate) const SYNCFS_ABOVE: usize = 24;

/// The directories and pending writes of a state directory, shared by
/// the clones of its [`super::StateDir`].
#[derive(Debug, Clone)]
pub(crate) struct Handles {
    root: PathBuf,
    euid: u32,
    shared: Arc<Mutex<Shared>>,
}

impl Handles {
    pub(crate) fn new(root: PathBuf, euid: u32) -> Handles {
        Handles {
            root,
            euid,
            shared: Arc::default(),
        }
    }

    /// See [`super::StateDir::refresh`].
    pub(crate) fn refresh(&self) {
        let mut shared = self.shared();
        if !std::mem::take(&mut shared.fresh) {
            shared.dirs.clear();
        }
    }

    /// Checks the directory `relative` (one or more components, each
    /// checked before by this same call, parents first) under the root
    /// with one `fstatat` on the root's descriptor, without opening it:
    /// for the fixed layout, most of which a command does not use.
    /// `Ok(false)` when it (or the root) is missing.
    pub(crate) fn check_below_root(&self, relative: &str) -> Result<bool, StoreError> {
        let path = self.root.join(relative);
        let Some(root) = self.dir(&self.root)? else {
            return Ok(false);
        };
        let name = fsutil::c_name(relative).map_err(StoreError::io("checking", &path))?;
        match crate::sys::lstat_at(root.fd(), &name) {
            Ok(st) => fsutil::check_dir_mode(st.st_mode, st.st_uid, self.euid)
                .map(|()| true)
                .map_err(StoreError::io("checking", &path)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(StoreError::io("checking", &path)(e)),
        }
    }

    /// Whether the root is private (see the module's documentation), so
    /// that its subdirectories are not checked one by one.
    pub(crate) fn private(&self) -> Result<bool, StoreError> {
        Ok(self.dir(&self.root)?.is_some_and(|root| root.private))
    }

    /// Whether `dir` is open and checked already (since the last start
    /// over).
    pub(crate) fn is_open(&self, dir: &Path) -> bool {
        self.opened(dir).is_some()
    }

    /// `dir`, when it is open and checked already. Out of line: the
    /// lookup begins every way to a directory.
    #[inline(never)]
    fn opened(&self, dir: &Path) -> Option<Arc<Dir>> {
        let shared = self.shared();
        shared
            .dirs
            .iter()
            .find(|d| fsutil::same_path(&d.path, dir))
            .cloned()
    }

    /// Marks what was checked as fresh: the next `refresh` keeps it.
    pub(crate) fn set_fresh(&self) {
        self.shared().fresh = true;
    }

    pub(crate) fn shared(&self) -> MutexGuard<'_, Shared> {
        // A panic while holding it leaves nothing half-updated that a
        // later user could misread: entries are pushed whole.
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The directory `dir` reached as a file in it needs no more (see
    /// [`At`]): open already, or below a private root, by its path from
    /// the root (nothing opened: a missing directory shows as the file's
    /// `ENOENT`, which reads as no file); else opened and checked as
    /// [`Handles::dir`] does. `None` when the root is missing, or `dir`
    /// opened and found missing.
    pub(crate) fn reach(&self, dir: &Path) -> Result<Option<At>, StoreError> {
        if let Some(found) = self.opened(dir) {
            return Ok(Some(At::Open(found)));
        }
        let Some(root) = self.dir(&self.root)? else {
            return Ok(None);
        };
        if root.private && !fsutil::same_path(dir, &self.root) {
            if let Some(relative) = self.relative(dir) {
                return Ok(Some(At::Below { root, relative }));
            }
        }
        Ok(self.dir(dir)?.map(At::Open))
    }

    /// `dir` as a path from the root, when it is one made of plain
    /// components below it.
    fn relative(&self, dir: &Path) -> Option<String> {
        plain_relative(&self.root, dir).map(str::to_string)
    }

    /// The error for `error`, which an `*at` call through `dir` (reached
    /// by [`Handles::reach`]) failed with: when a directory on the way is
    /// no directory (`ENOTDIR`), the refusal that opening it one by one
    /// words.
    pub(crate) fn explain(
        &self,
        dir: &Path,
        error: io::Error,
        what: &'static str,
        path: &Path,
    ) -> StoreError {
        if error.raw_os_error() == Some(libc::ENOTDIR) {
            if let Err(refused) = self.walk(dir) {
                return refused;
            }
        }
        StoreError::io(what, path)(error)
    }

    /// Runs `write` (which makes a file in the directory it is given) in
    /// `dir` reached by [`Handles::reach`]; when `dir` turns out missing
    /// (`ENOENT`), makes it ([`Handles::ensure`]) and runs `write` again.
    pub(crate) fn write_in<T>(
        &self,
        dir: &Path,
        what: &'static str,
        path: &Path,
        write: impl Fn(&At) -> io::Result<T>,
    ) -> Result<T, StoreError> {
        let mut out = None;
        self.write_in_once(dir, what, path, &mut |at| {
            out = Some(write(at)?);
            Ok(())
        })?;
        // `write_in_once` succeeds only after a `write` that succeeded.
        Ok(out.unwrap_or_else(|| unreachable!()))
    }

    /// [`Handles::write_in`]'s body, behind a `dyn`: kept once rather than
    /// in each caller's copy.
    #[inline(never)]
    fn write_in_once(
        &self,
        dir: &Path,
        what: &'static str,
        path: &Path,
        write: &mut dyn FnMut(&At) -> io::Result<()>,
    ) -> Result<(), StoreError> {
        let first = match self.reach(dir)? {
            Some(at) => write(&at),
            None => Err(io::ErrorKind::NotFound.into()),
        };
        match first {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let open = At::Open(self.ensure(dir)?);
                write(&open).map_err(StoreError::io(what, path))
            }
            Err(e) => Err(self.explain(dir, e, what, path)),
            Ok(done) => Ok(done),
        }
    }

    /// The directory `dir` (the root or inside it), open and checked, each
    /// directory from the root down opened relative to its checked parent
    /// with `O_DIRECTORY | O_NOFOLLOW`; `None` when one is missing. Below
    /// a private root, `dir` is opened in one call by its path from the
    /// root (the directories on the way are not opened: nobody else can
    /// reach them), one by one only when that fails otherwise than by
    /// `ENOENT`, to word why.
    pub(crate) fn dir(&self, dir: &Path) -> Result<Option<Arc<Dir>>, StoreError> {
        if let Some(found) = self.opened(dir) {
            return Ok(Some(found));
        }
        if !fsutil::same_path(dir, &self.root) {
            let Some(root) = self.dir(&self.root)? else {
                return Ok(None);
            };
            let relative = self.relative(dir);
            if let (true, Some(relative)) = (root.private, relative) {
                let name = fsutil::c_name(&relative).map_err(StoreError::io("opening", dir))?;
                let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
                match crate::sys::openat(Some(root.fd()), &name, flags, 0) {
                    Ok(fd) => {
                        let found = Arc::new(Dir {
                            path: dir.to_path_buf(),
                            file: File::from(fd),
                            private: true,
                        });
                        self.shared().keep_dir(found.clone());
                        return Ok(Some(found));
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                    Err(_) => {}
                }
            }
        }
        self.walk(dir)
    }

    /// [`Handles::dir`] one directory at a time from the root down.
    fn walk(&self, dir: &Path) -> Result<Option<Arc<Dir>>, StoreError> {
        if let Some(found) = self.opened(dir) {
            return Ok(Some(found));
        }
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW;
        let mut below_private = false;
        let opened = if fsutil::same_path(dir, &self.root) {
            use std::os::unix::ffi::OsStrExt;
            let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(|_| {
                StoreError::io("opening", dir)(io::Error::from(io::ErrorKind::InvalidInput))
            })?;
            crate::sys::openat(None, &path, flags, 0)
        } else {
            let parent_path = dir.parent().filter(|p| p.starts_with(&self.root));
            let (Some(parent_path), Some(Component::Normal(name))) =
                (parent_path, dir.components().next_back())
            else {
                return Err(StoreError::refused(
                    dir.to_path_buf(),
                    format!("is not inside the state directory {}", self.root.display()),
                ));
            };
            let Some(parent) = self.walk(parent_path)? else {
                return Ok(None);
            };
            let name =
                fsutil::c_name(&name.to_string_lossy()).map_err(StoreError::io("opening", dir))?;
            below_private = parent.private;
            crate::sys::openat(Some(parent.fd()), &name, flags, 0)
        };
        let file = match opened {
            Ok(fd) => File::from(fd),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                // A link, or no directory: the path-based check words it
                // (it also answers a race that made the directory since).
                return match self.check_one(dir) {
                    Ok(true) => Err(StoreError::io("opening", dir)(e)),
                    Ok(false) => Ok(None),
                    Err(refused) => Err(refused),
                };
            }
        };
        // Below a private root nobody else can plant or swap anything, so
        // its subdirectories are not checked one by one (the open above
        // still refuses a link or a non-directory); `restore` walks and
        // checks the whole tree.
        let private = if below_private {
            true
        } else {
            let mode =
                fsutil::check_dir_fd(&file, self.euid).map_err(StoreError::io("checking", dir))?;
            fsutil::same_path(dir, &self.root) && mode & 0o077 == 0
        };
        let found = Arc::new(Dir {
            path: dir.to_path_buf(),
            file,
            private,
        });
        self.shared().keep_dir(found.clone());
        Ok(Some(found))
    }

    /// The directory `dir`, checked, made (0700 whatever the umask) with
    /// its missing parents when missing. A new directory is synced into
    /// its parent at once: making one is rare (the first endpoint or
    /// address of a network), and a later commit would have to remember
    /// it.
    pub(crate) fn ensure(&self, dir: &Path) -> Result<Arc<Dir>, StoreError> {
        if let Some(found) = self.dir(dir)? {
            return Ok(found);
        }
        let parent = match dir.parent().filter(|p| p.starts_with(&self.root)) {
            Some(parent) if !fsutil::same_path(dir, &self.root) => self.ensure(parent)?,
            _ => {
                // The root itself: made by path, its parent synced.
                fsutil::create_dir(dir).map_err(StoreError::io("creating", dir))?;
                return self.dir(dir)?.ok_or_else(|| {
                    StoreError::io("opening", dir)(io::Error::from(io::ErrorKind::NotFound))
                });
            }
        };
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let cname = fsutil::c_name(&name).map_err(StoreError::io("creating", dir))?;
        crate::fault::point("store: before mkdir");
        let made = crate::sys::mkdir_at(parent.fd(), &cname, fsutil::DIR_MODE);
        let made = match crate::fault::after("store: after mkdir", made) {
            Ok(()) => true,
            // Someone else made it meanwhile.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(StoreError::io("creating", dir)(e)),
        };
        let found = self.dir(dir)?.ok_or_else(|| {
            StoreError::io("opening", dir)(io::Error::from(io::ErrorKind::NotFound))
        })?;
        if made {
            // A umask such as 0277 would leave even us without access.
            crate::sys::fchmod(found.fd(), fsutil::DIR_MODE)
                .map_err(StoreError::io("setting the mode of", dir))?;
        }
        crate::fault::after("store: after fsync", crate::sys::fsync(parent.fd(), false))
            .map_err(StoreError::io("syncing", &parent.path))?;
        Ok(found)
    }

    pub(crate) fn check_one(&self, dir: &Path) -> Result<bool, StoreError> {
        fsutil::check_dir(dir, self.euid).map_err(StoreError::io("checking", dir))
    }

    /// Notes a file written (or linked into place) in `dir` for the next
    /// commit.
    pub(crate) fn written(&self, path: &Path, file: File, dir: &Arc<Dir>, contents: &[u8]) {
        self.note_written(path, file, Some(dir), contents);
    }

    /// Notes a file written in a store with a commit log for the next
    /// commit, whose entry makes it durable: no directory of it is synced,
    /// so none needs a descriptor.
    pub(crate) fn written_logged(&self, path: &Path, file: File, contents: &[u8]) {
        self.note_written(path, file, None, contents);
    }

    /// [`Handles::written`], its directory (`dir`) noted for the commit's
    /// `fsync` when it has one.
    fn note_written(&self, path: &Path, file: File, dir: Option<&Arc<Dir>>, contents: &[u8]) {
        let mut shared = self.shared();
        shared.drop_pending(path);
        shared.note_change(path, Noted::Written(contents.to_vec()));
        shared.files.push((path.to_path_buf(), file));
        if let Some(dir) = dir {
            shared.dir_changed(dir);
        }
        shared.spill();
    }

    /// Closes `file`, a derived file written and not synced, or leaves
    /// it to the exit (see [`Handles::leave_files_to_exit`]).
    pub(crate) fn let_go(&self, file: File) {
        self.shared().let_go([file]);
    }

    /// Told by a batch, before it writes anything more, that it will make
    /// at least `changes` changes, the paths aside `bytes` of them for a
    /// log entry: when they cannot all go into the next commit's entry,
    /// that commit syncs the file system as it would once they were
    /// noted, and none of them is held meanwhile. A batch of a thousand
    /// endpoints held some two hundred records' texts and paths (140 KiB)
    /// before it found the entry full.
    pub(crate) fn expect_changes(&self, changes: usize, bytes: usize) {
        let mut shared = self.shared();
        let fits = shared.changes.len() + changes <= CHANGES_MAX
            && shared.changes_bytes + bytes <= super::commit_log::COMMIT_PAYLOAD_MAX;
        if !fits && !shared.overflowed {
            shared.give_up_log();
            shared.spill();
        }
    }

    /// Whether the next commit is to sync the file system rather than go
    /// through the log (see [`Handles::expect_changes`]).
    #[cfg(test)]
    pub(crate) fn log_given_up(&self) -> bool {
        self.shared().overflowed
    }

    /// Notes `path` removed from `dir` for the next commit.
    pub(crate) fn removed(&self, path: &Path, dir: &Arc<Dir>) {
        let mut shared = self.shared();
        shared.drop_pending(path);
        shared.note_change(path, Noted::Removed);
        shared.dir_changed(dir);
        shared.spill();
    }

    /// Notes the directory `path` removed with everything in it, for the
    /// commit log (whose replay would otherwise make it again for a record
    /// written into it before), and its `parent`, for a commit that syncs
    /// file by file (a store without a log: its entry in `parent` is what
    /// must be durable; with a log, the log's entry is).
    pub(crate) fn removed_tree(&self, path: &Path, parent: Option<Arc<Dir>>) {
        let mut shared = self.shared();
        shared.note_change(path, Noted::RemovedTree);
        if let Some(parent) = parent {
            shared.dir_changed(&parent);
        }
    }

    /// The next commit is to sync the file system, not to go through the
    /// log: a change failed, perhaps half made (see `Locked::change`).
    pub(crate) fn give_up_log(&self) {
        self.shared().give_up_log();
    }

    /// Takes what was written and removed since the last commit, for the
    /// commit to make durable (`dir/commit.rs`).
    pub(crate) fn take_pending(&self) -> Pending {
        let mut shared = self.shared();
        shared.changes_bytes = 0;
        shared.noted.clear();
        Pending {
            files: std::mem::take(&mut shared.files),
            dirs: std::mem::take(&mut shared.changed),
            overflowed: std::mem::take(&mut shared.overflowed),
            files_let_go: std::mem::take(&mut shared.files_let_go),
            changes: std::mem::take(&mut shared.changes),
        }
    }

    /// Makes `pending` durable without the commit log: `fdatasync` of
    /// each file still in place (its last version), then `fsync` of each
    /// directory whose entries changed, once each; or, for a commit of
    /// more than [`SYNCFS_ABOVE`] files and directories (a batch of many
    /// endpoints, whose descriptors were let go) or when `whole` asks for
    /// it, one `syncfs(2)` of the state directory's file system: it also
    /// flushes other programs'
    /// dirty data there, but one journal commit and one cache flush of the
    /// disk cost less than hundreds of them, and it makes every earlier
    /// write durable too (what the commit log needs before it is emptied).
    pub(crate) fn sync_pending(&self, pending: Pending, whole: bool) -> Result<(), StoreError> {
        let Pending {
            files,
            dirs,
            overflowed,
            files_let_go,
            ..
        } = pending;
        if overflowed || whole || files_let_go {
            self.shared()
                .let_go(files.into_iter().map(|(_, file)| file));
            let root = self.dir(&self.root)?.ok_or_else(|| {
                StoreError::io("syncing", &self.root)(std::io::ErrorKind::NotFound.into())
            })?;
            let result = crate::fault::io_refused("store: flush fails")
                .and_then(|()| crate::sys::syncfs(root.fd()))
                .map_err(StoreError::io("syncing", &self.root));
            return crate::fault::after("store: after fsync", result);
        }
        let mut result = Ok(());
        if !files.is_empty() || !dirs.is_empty() {
            result = crate::fault::io_refused("store: flush fails")
                .map_err(StoreError::io("syncing", &self.root));
        }
        for (path, file) in &files {
            if let Err(e) = crate::sys::fsync(file.as_fd(), true) {
                result = result.and(Err(StoreError::io("syncing", path)(e)));
            }
        }
        for dir in &dirs {
            if let Err(e) = crate::sys::fsync(dir.fd(), false) {
                result = result.and(Err(StoreError::io("syncing", &dir.path)(e)));
            }
        }
        if !files.is_empty() || !dirs.is_empty() {
            result = crate::fault::after("store: after fsync", result);
        }
        self.shared()
            .let_go(files.into_iter().map(|(_, file)| file));
        result
    }

    /// Lets the files of a commit made by the log go: written, not synced
    /// (the log holds what they hold).
    pub(crate) fn let_go_pending(&self, pending: Pending) {
        self.shared()
            .let_go(pending.files.into_iter().map(|(_, file)| file));
    }

    /// The commit log as the lock held now found it, and what this
    /// command learnt of it since.
    pub(crate) fn log(&self) -> LogHold {
        self.shared().log
    }

    /// See [`Handles::log`].
    pub(crate) fn set_log(&self, log: LogHold) {
        self.shared().log = log;
    }

    /// Notes a change of the commit log its replay passed over (see
    /// `StateDir::take_log_replayed`).
    pub(crate) fn replay_refused(&self, why: String) {
        self.shared().replay_refusals.push(why);
    }

    /// The intent the log's volatile page holds for this command (empty:
    /// none).
    pub(crate) fn single_intent(&self) -> Vec<u8> {
        self.shared().single_intent.clone()
    }

    /// See [`Handles::single_intent`].
    pub(crate) fn set_single_intent(&self, intent: Vec<u8>) {
        self.shared().single_intent = intent;
    }

    /// Notes that the volatile page was written, with an intent or none.
    pub(crate) fn page_written(&self, with_intent: bool) {
        self.shared().page_intent = with_intent;
    }

    /// Whether the page holds an intent this command no longer holds (one
    /// settled: its final record made).
    pub(crate) fn page_holds_settled_intent(&self) -> bool {
        let shared = self.shared();
        shared.page_intent && shared.single_intent.is_empty()
    }

    /// See `Shared::intent_left`.
    pub(crate) fn set_intent_left(&self, why: Option<String>) {
        self.shared().intent_left = why;
    }

    /// See `Shared::intent_left`.
    pub(crate) fn intent_left(&self) -> Option<String> {
        self.shared().intent_left.clone()
    }

    /// Takes what the last replay wrote again and passed over, at once
    /// (a clone may ask without the lock, while a commit updates the rest
    /// of the hold).
    pub(crate) fn take_replayed(&self) -> (usize, Vec<String>) {
        let mut shared = self.shared();
        let replayed = std::mem::take(&mut shared.log.replayed);
        (replayed, std::mem::take(&mut shared.replay_refusals))
    }

    /// The cursor of the subnet directory `dir` as the last allocation
    /// under this lock left it, if one did: taken out, to be handed back
    /// by [`Handles::keep_cursor`].
    pub(crate) fn take_cursor(&self, dir: &Path) -> Option<HeldCursor> {
        let mut shared = self.shared();
        let at = shared
            .cursors
            .iter()
            .position(|c| fsutil::same_path(&c.dir, dir))?;
        Some(shared.cursors.swap_remove(at))
    }

    /// Keeps `cursor` open, with what it holds, until the lock is let go
    /// ([`Handles::forget_cursors`]): a batch's allocations then read and
    /// open it once, not once each (four system calls). Only allocations
    /// under the lock read or write a cursor, so what it holds cannot
    /// change meanwhile but by them.
    pub(crate) fn keep_cursor(&self, cursor: HeldCursor) {
        let mut shared = self.shared();
        shared.cursors.retain(|c| c.dir != cursor.dir);
        // A network has a subnet or two per family: a few at most.
        if shared.cursors.len() < HELD_CURSORS_MAX {
            shared.cursors.push(cursor);
        } else {
            drop(shared);
            cursor.write_if_moved();
        }
    }

    /// Lets every held cursor go, when the lock is (another process may
    /// move them next), each written first if an allocation moved it.
    pub(crate) fn forget_cursors(&self) {
        let held = std::mem::take(&mut self.shared().cursors);
        for cursor in &held {
            cursor.write_if_moved();
        }
        self.shared()
            .let_go(held.into_iter().map(|cursor| cursor.file));
    }

    /// For a program that exits once its command is done: the state files
    /// written from now on are left open for the exit to close, as
    /// `close(2)` would (they are written whole and made durable by the
    /// commit already; nothing waits in a descriptor), one `close` each saved, up
    /// to [`LEFT_TO_EXIT_MAX`] (a batch closes the rest). Not the lock,
    /// whose `close` releases it. A program that goes on must not ask for
    /// it.
    /// Keeps the failure of a commit nobody asked for (a lock released
    /// with writes pending) until [`Handles::take_lost_commit`]: the first
    /// one, which the later ones would only repeat.
    pub(crate) fn lose_commit(&self, error: StoreError) {
        self.shared().lost_commit.get_or_insert(error);
    }

    /// See [`Handles::lose_commit`].
    pub(crate) fn take_lost_commit(&self) -> Option<StoreError> {
        self.shared().lost_commit.take()
    }

    pub(crate) fn leave_files_to_exit(&self) {
        self.shared().leave_to_exit = true;
    }

    /// Closes `file` (written and done with), or leaves it to the exit
    /// (see [`Handles::leave_files_to_exit`]).
    pub(crate) fn done_with(&self, file: File) {
        self.shared().let_go([file]);
    }
}

/// `dir` below `root` as the text of a relative path, when `dir` is `root`,
/// a `/` and plain components (no `.`, `..` or empty one, no trailing `/`),
/// all UTF-8: the paths the store builds by joining names to its root. Read
/// byte by byte rather than through `Path::components` (every file the
/// store reaches passes here); anything else is `None`, and is opened one
/// directory at a time instead.
fn plain_relative<'a>(root: &Path, dir: &'a Path) -> Option<&'a str> {
    use std::os::unix::ffi::OsStrExt;
    let root = root.as_os_str().as_bytes();
    let root = match root.strip_suffix(b"/") {
        Some(trimmed) if !trimmed.is_empty() => trimmed,
        _ => root,
    };
    let rest = dir.as_os_str().as_bytes().strip_prefix(root)?;
    let rest = if root == b"/" {
        rest
    } else {
        rest.strip_prefix(b"/")?
    };
    let plain = !rest.is_empty()
        && rest
            .split(|b| *b == b'/')
            .all(|name| !name.is_empty() && name != b"." && name != b"..");
    if !plain {
        return None;
    }
    std::str::from_utf8(rest).ok()
}

#[cfg(test)]
mod tests {
    use super::plain_relative;
    use std::path::Path;

    #[test]
    fn plain_relative_paths_are_the_joined_names_only() {
        let root = Path::new("/var/lib/ipvlan");
        let below = |dir: &'static str| plain_relative(root, Path::new(dir));
        assert_eq!(below("/var/lib/ipvlan/endpoints/n1"), Some("endpoints/n1"));
        assert_eq!(below("/var/lib/ipvlan/lock"), Some("lock"));
        assert_eq!(
            plain_relative(
                Path::new("/var/lib/ipvlan/"),
                Path::new("/var/lib/ipvlan/a")
            ),
            Some("a"),
            "a root given with a trailing slash"
        );
        assert_eq!(
            plain_relative(Path::new("/"), Path::new("/a/b")),
            Some("a/b")
        );
        for refused in [
            "/var/lib/ipvlan",
            "/var/lib/ipvlan/",
            "/var/lib/ipvlanx/a",
            "/var/lib/ipvlan//a",
            "/var/lib/ipvlan/./a",
            "/var/lib/ipvlan/a/../b",
            "/var/lib/ipvlan/a/",
            "/var/lib/other/a",
            "relative/a",
        ] {
            assert_eq!(below(refused), None, "{refused}");
        }
        use std::os::unix::ffi::OsStrExt;
        let not_utf8 = std::ffi::OsStr::from_bytes(b"/var/lib/ipvlan/\xff");
        assert_eq!(plain_relative(root, Path::new(not_utf8)), None);
    }
}
