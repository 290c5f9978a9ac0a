//! How a command's writes are made durable: through the commit log in the
//! lock file (`store/commit_log.rs`) when the store has one, else file by
//! file; and how the log a power cut left is taken up when the lock is.
//!
//! A commit through the log writes one entry holding every durable file's
//! bytes and every removal (or, longer than one entry holds, several in a
//! row), then the volatile page, then one `fdatasync` of the lock file,
//! however many files it names (their descriptors are let go past
//! `SYNCFS_ABOVE`: none is synced). A commit that does not go through it
//! (more changes than a commit holds for it, see `handles.rs`, or more
//! than the log has room for) is one `syncfs` of the file system, which
//! makes every earlier write durable too, and then the log is emptied (a
//! new generation, synced): so no entry is ever older than a synced file
//! it names.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Component, Path};

use super::batch_intents::{intent_record, Expanding};
use super::{intent_line, Locked, StateDir, StoreError, LOCK_FILE, SETTLE_OWED};
use crate::store::commit_log::{self, BootId, Change, Head, Volatile};
use crate::store::fsutil::{self, FILE_MODE};
use crate::store::handles::{LogHold, Noted};
use crate::store::records::{EndpointRecord, EndpointState};

impl StateDir {
    /// Makes what was written and removed under the lock `lock` since the
    /// last commit durable (see the module).
    pub(super) fn commit_under(&self, lock: &File) -> Result<(), StoreError> {
        let pending = self.handles.take_pending();
        if pending.is_empty() {
            return self.said_unchanged(lock);
        }
        let committed = self.commit_taken(lock, pending);
        if committed.is_err() {
            // The changes taken are not pending any more, whatever part of
            // them is durable: the log is marked full (when there is one),
            // so the next commit syncs the file system and empties it
            // rather than append after entries older than those changes
            // (a failure before the log was touched, say its read, left
            // the page as it was, and the lock's release then said the
            // command changed nothing: the next lock settled no dead
            // change, and a power cut after the next commit wrote an
            // older entry back over it).
            self.poison_log(lock);
        }
        committed
    }

    /// [`StateDir::commit_under`] of the changes `pending`, taken.
    fn commit_taken(
        &self,
        lock: &File,
        pending: crate::store::handles::Pending,
    ) -> Result<(), StoreError> {
        let mut hold = self.handles.log();
        let Some(mut head) = hold.head else {
            return self.handles.sync_pending(pending, false);
        };
        // A store made by this version has its log made by its first
        // commit; an older store's lock keeps its meaning (empty).
        if head.generation.is_none() && self.by_identity_only() {
            if let Some(made) = self.make_log(lock, &mut hold)? {
                head = made;
            }
        }
        let Some(generation) = head.generation else {
            return self.handles.sync_pending(pending, false);
        };
        let tail = head.volatile.map_or(commit_log::SLOTS, |v| v.tail);
        let payloads = match pending.overflowed() {
            true => None,
            false => self.log_payloads(&pending.changes),
        };
        let slots: u32 = payloads
            .iter()
            .flatten()
            .map(|payload| commit_log::slots_for(payload.len()))
            .sum();
        let fits = tail + slots <= commit_log::SLOTS;
        let (true, Some(payloads)) = (fits, payloads) else {
            // Everything durable at once, then the log emptied if it holds
            // entries, those past its page's tail included: a commit
            // killed between its entry and the page left one there, valid,
            // and older than what this sync made durable.
            let holds = self.log_holds_entries(lock, &head, generation)?;
            if let (true, Some(volatile)) = (holds, head.volatile) {
                // Marked full before the sync (which makes the mark durable
                // too): killed between the sync and the emptying, this
                // command leaves a log whose next commit syncs and empties
                // it, rather than one appended to after entries older than
                // what the sync made durable, which a power cut would then
                // write back over them.
                self.mark_log_full(lock, volatile)
                    .map_err(StoreError::io("writing", self.root.join(LOCK_FILE)))?;
            }
            if let Err(error) = self.handles.sync_pending(pending, true) {
                // Left to the next commit to make durable (with an empty
                // log, nothing above marked it full).
                self.poison_log(lock);
                return Err(error);
            }
            return match holds {
                true => self
                    .settle_logged_files(lock, generation)
                    .and_then(|()| self.empty_log(lock, generation)),
                // The page's tail stays; its mark of a change goes (kept,
                // should the page's write fail, it costs the next commit
                // a sync, not this one its success).
                false => {
                    let _ = self.said_unchanged(lock);
                    Ok(())
                }
            };
        };
        let boot = self.boot_id(&mut hold)?;
        // Everything changed so far is in the log now.
        let next = Volatile {
            generation,
            tail: tail + slots,
            batch_intents: hold.batch_intents,
            changing: false,
            boot,
        };
        let path = self.root.join(LOCK_FILE);
        let intent = self.handles.single_intent();
        let mut result = commit_log::append(lock, generation, tail, &payloads, &next, &intent)
            .map_err(StoreError::io("writing", &path));
        if result.is_ok() {
            self.handles.page_written(!intent.is_empty());
            result = crate::fault::io_refused("store: flush fails")
                .and_then(|()| crate::sys::fsync(std::os::fd::AsFd::as_fd(lock), true))
                .map_err(StoreError::io("syncing", &path));
            result = crate::fault::after("store: after fsync", result);
        }
        hold.head = Some(Head::of(next));
        self.handles.set_log(hold);
        self.handles.let_go_pending(pending);
        if result.is_err() {
            // The failed pages may never reach the disk, the page cache
            // taking them for written: an entry appended after them would
            // be cut off from the log by the hole.
            self.poison_log(lock);
        }
        result
    }

    /// A commit of nothing, or one that synced the file system while the
    /// log held no entry: a change is said before it is made (see
    /// [`Locked::mark_changing`]) and one that failed made none, so a page
    /// that still says a change is under way (an attach's intent put and
    /// taken back, the attach given up) is written without it; else the
    /// next lock would take this command for one that died, and the next
    /// commit would sync the whole file system.
    /// Not while the thread unwinds (a panic of the embedding program's,
    /// between a change and its note, would have it said unchanged).
    fn said_unchanged(&self, lock: &File) -> Result<(), StoreError> {
        if std::thread::panicking() {
            return Ok(());
        }
        let hold = self.handles.log();
        let Some(volatile) = hold.head.and_then(|head| head.volatile) else {
            return Ok(());
        };
        if !volatile.changing {
            return Ok(());
        }
        let next = Volatile {
            changing: false,
            batch_intents: hold.batch_intents,
            ..volatile
        };
        self.put_page(lock, hold, next)
    }

    /// Writes the volatile page `next` (unsynced, see
    /// [`StateDir::write_page`]) and holds it, with `hold`, as the log's
    /// head.
    fn put_page(&self, lock: &File, mut hold: LogHold, next: Volatile) -> Result<(), StoreError> {
        self.write_page(lock, &next)
            .map_err(StoreError::io("writing", self.root.join(LOCK_FILE)))?;
        hold.head = Some(Head::of(next));
        self.handles.set_log(hold);
        Ok(())
    }

    /// Before the log of `generation` is emptied after a `syncfs`: the
    /// writeback of each file its entries last wrote is asked whether it
    /// failed, and such a file is written again, with what it holds now,
    /// and synced. A `syncfs` cannot be trusted with a writeback that failed
    /// after the command that wrote the file returned: before Linux 5.8 it
    /// reports none, since then only once, to whoever syncs first (another
    /// program too), while the kernel keeps the new bytes in its cache,
    /// marked clean, over the old ones on the disk. Emptied then, the log
    /// would take the only durable copy with it. A file's own descriptor
    /// reports an error of its writeback that nobody has seen (none of ours
    /// syncs a logged file; `sys::wait_for_writeback`). What the file holds now is written again,
    /// never the log's bytes: a later change the log does not hold (this
    /// commit's, a killed command's) stands. (A page the kernel let go
    /// after its writeback failed reads back old from the disk; nothing
    /// tells it from such a change, and it stays lost.) A failure seen is
    /// taken with it (a second look finds none): the store's root first
    /// gets [`SETTLE_OWED`], synced, so that until a settling succeeds,
    /// every one writes every logged file again without asking; failing,
    /// the log stays, and the next emptying tries again.
    fn settle_logged_files(&self, lock: &File, generation: u64) -> Result<(), StoreError> {
        let lock_path = self.root.join(LOCK_FILE);
        let owed_path = self.root.join(SETTLE_OWED);
        let mut owed = std::fs::symlink_metadata(&owed_path).is_ok();
        // Path by path as the log is read, one entry held at a time (a
        // batch's commit may come here holding all its endpoints). A path
        // written twice is asked twice; one removed since fails to open.
        let mut failed = Ok(());
        commit_log::each_written_path(lock, generation, &mut |relative| {
            if failed.is_ok() {
                failed = self.settle_logged_file(relative, &mut owed);
            }
        })
        .map_err(StoreError::io("reading", &lock_path))?;
        failed?;
        if owed {
            // Not synced: back after a power cut, it costs one settling
            // more.
            let _ = std::fs::remove_file(&owed_path);
        }
        Ok(())
    }

    /// [`StateDir::settle_logged_files`] for the file at `relative`: asked
    /// of its writeback unless a settling is `owed`, which a failure seen
    /// here makes it.
    fn settle_logged_file(&self, relative: &str, owed: &mut bool) -> Result<(), StoreError> {
        use std::os::unix::ffi::OsStrExt;
        let Some(relative) = plain_relative(relative) else {
            return Ok(());
        };
        let path = self.root.join(relative);
        let io = || StoreError::io("writing", &path);
        let name =
            std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| io()(e.into()))?;
        // `O_NONBLOCK`: a FIFO put in a file's place does not hold the
        // open up. Gone (removed since: a change the log does not hold),
        // or refused (damage, reported where it is read): nothing to do.
        let flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK;
        let Ok(fd) = crate::sys::openat(None, &name, flags, 0) else {
            return Ok(());
        };
        let mut file = File::from(fd);
        if !file.metadata().map_err(io())?.is_file() {
            return Ok(());
        }
        // Asked of its writeback, not by an `fdatasync`, which would flush
        // the device's cache for each file, written or not.
        if !*owed {
            let asked = crate::fault::io_refused("store: logged file sync fails")
                .and_then(|()| crate::sys::wait_for_writeback(file.as_fd()));
            if asked.is_ok() {
                return Ok(());
            }
            self.owe_settling()?;
            *owed = true;
        }
        let held = fsutil::read_capped(&mut file, fsutil::RECORD_MAX).map_err(io())?;
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return Ok(());
        };
        self.check_dir(dir)?;
        let dir = self.handles.ensure(dir)?;
        fsutil::replace_at(dir.fd(), &name.to_string_lossy(), &held, FILE_MODE)
            .and_then(|file| crate::sys::fsync(file.as_fd(), true))
            .and_then(|()| crate::sys::fsync(dir.fd(), false))
            .map_err(io())
    }

    /// Makes [`SETTLE_OWED`] in the store's root, synced.
    fn owe_settling(&self) -> Result<(), StoreError> {
        let path = self.root.join(SETTLE_OWED);
        let root = self.handles.ensure(&self.root)?;
        let name = fsutil::c_name(SETTLE_OWED).map_err(StoreError::io("writing", &path))?;
        // `None`, there already: as good.
        fsutil::open_new_at(root.fd(), &name, FILE_MODE)
            .map_err(StoreError::io("writing", &path))?;
        crate::sys::fsync(root.fd(), false).map_err(StoreError::io("syncing", &self.root))
    }

    /// Whether the log (`head`, of `generation`) may hold entries a power
    /// cut would bring back: its page says so ([`Head::may_hold_entries`]),
    /// or an entry begins at the page's tail (one read of the lock).
    fn log_holds_entries(
        &self,
        lock: &File,
        head: &Head,
        generation: u64,
    ) -> Result<bool, StoreError> {
        if head.may_hold_entries() {
            return Ok(true);
        }
        let tail = head.volatile.map_or(0, |v| v.tail);
        crate::fault::io_refused("store: log read fails")
            .and_then(|()| commit_log::entry_begins_at(lock, generation, tail))
            .map_err(StoreError::io("reading", self.root.join(LOCK_FILE)))
    }

    /// Makes the log in the lock file (see `commit_log::prepare`), synced
    /// with the lock's name; `None` when it could not be (a full disk):
    /// the lock is then cut back to its length, so the zeros take no
    /// space the records need, and commits go file by file.
    fn make_log(&self, lock: &File, hold: &mut LogHold) -> Result<Option<Head>, StoreError> {
        let volatile = Volatile {
            generation: 0,
            tail: 0,
            batch_intents: hold.batch_intents,
            changing: false,
            boot: self.boot_id(hold)?,
        };
        let root = self.handles.dir(&self.root)?;
        let before = lock
            .metadata()
            .map_err(StoreError::io("reading", self.root.join(LOCK_FILE)))?
            .len();
        // The lock's name too, if the power cut came right after `open`.
        let made = commit_log::prepare(lock, &volatile)
            .and_then(|()| crate::sys::fsync(std::os::fd::AsFd::as_fd(lock), false))
            .and_then(|()| match &root {
                Some(root) => crate::sys::fsync(root.fd(), false),
                None => Ok(()),
            });
        if made.is_err() {
            let _ = lock.set_len(before);
            return Ok(None);
        }
        let head = Head::of(volatile);
        hold.head = Some(head);
        self.handles.set_log(*hold);
        Ok(Some(head))
    }

    /// The payloads of the entries for `changes` (paths made relative to
    /// the root), in order, each as many changes as one entry holds (most
    /// commits: one entry); `None` when a path is not below the root or a
    /// change alone is more than an entry holds.
    fn log_payloads(&self, changes: &[(std::path::PathBuf, Noted)]) -> Option<Vec<Vec<u8>>> {
        let mut payloads: Vec<Vec<u8>> = Vec::new();
        for (path, contents) in changes {
            let relative = path.strip_prefix(&self.root).ok()?.to_str()?.to_string();
            let change = match contents {
                Noted::Written(bytes) => Change::Written(relative, bytes.clone()),
                Noted::Removed => Change::Removed(relative),
                Noted::RemovedTree => Change::RemovedTree(relative),
            };
            // A payload is its changes' encodings one after the other.
            let encoded = commit_log::encode_changes(std::slice::from_ref(&change))?;
            if encoded.len() > commit_log::PAYLOAD_MAX {
                return None;
            }
            match payloads.last_mut() {
                Some(last) if last.len() + encoded.len() <= commit_log::PAYLOAD_MAX => {
                    last.extend_from_slice(&encoded)
                }
                _ => payloads.push(encoded),
            }
        }
        if payloads.is_empty() {
            // Still one entry: the commit is one, if of nothing.
            payloads.push(Vec::new());
        }
        Some(payloads)
    }

    /// This boot's id, read once per command.
    pub(super) fn boot_id(&self, hold: &mut LogHold) -> Result<BootId, StoreError> {
        // A test's stand-in for a `/proc` that is not mounted, or no
        // descriptor left.
        crate::fault::io_refused("store: boot id unreadable").map_err(StoreError::io(
            "reading",
            Path::new(&*commit_log::BOOT_ID_PATH.to_string_lossy()),
        ))?;
        if let Some(boot) = hold.boot {
            return Ok(boot);
        }
        let boot = commit_log::this_boot().map_err(StoreError::io(
            "reading",
            Path::new(&*commit_log::BOOT_ID_PATH.to_string_lossy()),
        ))?;
        hold.boot = Some(boot);
        self.handles.set_log(*hold);
        Ok(boot)
    }

    /// Starts the log's next generation, synced: every entry of the
    /// current one is passed over from now on. The caller made what they
    /// name durable first (so the page's `changing` goes too).
    ///
    /// The generation is synced before the volatile page is written: the
    /// two are pages apart, and one `fdatasync` of both orders nothing, so
    /// a power cut during it could keep the new page and lose the new
    /// generation, a page that then reads as lost (its generation is not
    /// the log's), and the next lock would write the old generation's
    /// entries back over what the caller's sync had made durable.
    fn empty_log(&self, lock: &File, generation: u64) -> Result<(), StoreError> {
        let mut hold = self.handles.log();
        let boot = self.boot_id(&mut hold)?;
        let next = Volatile {
            generation: generation + 1,
            tail: 0,
            batch_intents: hold.batch_intents,
            changing: false,
            boot,
        };
        let path = self.root.join(LOCK_FILE);
        let generation_written = crate::fault::io_refused("store: log write fails")
            .and_then(|()| commit_log::write_generation(lock, next.generation))
            .and_then(|()| crate::fault::io_refused("store: generation sync fails"))
            .and_then(|()| crate::sys::fsync(std::os::fd::AsFd::as_fd(lock), true));
        crate::fault::point("store: after generation sync");
        if generation_written.is_ok() {
            hold.head = Some(Head::of(next));
            self.handles.set_log(hold);
        }
        if let Err(error) = generation_written.and_then(|()| self.write_page(lock, &next)) {
            // As a failed sync: the log is marked full (under whichever
            // generation is on the page now), so that the next commit
            // syncs the file system and empties it rather than appending
            // after entries a replay would bring back.
            self.poison_log(lock);
            return Err(StoreError::io("writing", &path)(error));
        }
        let synced = crate::sys::fsync(std::os::fd::AsFd::as_fd(lock), true)
            .map_err(StoreError::io("syncing", &path));
        if synced.is_err() {
            // The new generation may not be on the disk: entries appended
            // under it could be passed over after a power cut.
            self.poison_log(lock);
        }
        synced
    }

    /// After a write or sync of the log failed: its volatile page says the
    /// log is full, so that the next commit (of any process) syncs the file
    /// system and empties the log, writing every page of it again, rather
    /// than appending after pages that may never reach the disk.
    fn poison_log(&self, lock: &File) {
        let _ = self.mark_held_log_full(lock);
    }

    /// [`StateDir::mark_log_full`] of the page held as the log's head;
    /// nothing when none is held (no log, or one lost).
    fn mark_held_log_full(&self, lock: &File) -> std::io::Result<()> {
        match self.handles.log().head.and_then(|head| head.volatile) {
            Some(volatile) => self.mark_log_full(lock, volatile),
            None => Ok(()),
        }
    }

    /// Writes the volatile page `volatile` says full (unsynced), and holds
    /// it so: the next commit (of any process) syncs the file system and
    /// empties the log rather than appending after its entries.
    fn mark_log_full(&self, lock: &File, volatile: Volatile) -> std::io::Result<()> {
        let full = Volatile {
            tail: commit_log::SLOTS,
            ..volatile
        };
        let written = self.write_page(lock, &full);
        let mut hold = self.handles.log();
        hold.head = Some(Head::of(full));
        self.handles.set_log(hold);
        written
    }

    /// Writes the volatile page `volatile` (unsynced) with the intent this
    /// command holds, if any, and notes whether the page holds one now.
    fn write_page(&self, lock: &File, volatile: &Volatile) -> std::io::Result<()> {
        let intent = self.handles.single_intent();
        commit_log::write_volatile_with(lock, volatile, &intent)?;
        self.handles.page_written(!intent.is_empty());
        Ok(())
    }

    /// Writes the volatile page as this command holds it now (unsynced),
    /// with its single attach's intent, if any (see
    /// [`Locked::put_single_intent`]): so a batch's intents file is
    /// announced before it is made, and an intent before the kernel is
    /// asked for anything. `changing`: the command is about to change
    /// durable files (see [`Volatile::changing`]), said in the page from
    /// now until its commit; said already, it stays.
    fn write_volatile_now(&self, lock: &File, changing: bool) -> Result<(), StoreError> {
        let mut hold = self.handles.log();
        let Some(volatile) = hold.head.and_then(|head| head.volatile) else {
            return Ok(());
        };
        let changing = volatile.changing || changing;
        // An intent, and a change under way, are taken up only by a lock
        // of the boot the page names: the page carries this boot's (an
        // emptied log's page may still name the boot before).
        let boot = match self.handles.single_intent().is_empty() && !changing {
            true => volatile.boot,
            false => self.boot_id(&mut hold)?,
        };
        let next = Volatile {
            batch_intents: hold.batch_intents,
            changing,
            boot,
            ..volatile
        };
        self.put_page(lock, hold, next)
    }

    /// How many changes the last lock taken wrote again from a commit log
    /// written in another boot (see `Locked::take_up_log`), and why it
    /// passed over those it could not (the store refused their paths),
    /// once.
    pub fn take_log_replayed(&self) -> (usize, Vec<String>) {
        self.handles.take_replayed()
    }

    /// Why the intent a killed single attach or detach left in the commit
    /// log could not be made a record when the lock was last taken, if it
    /// could not:
    /// it is kept, for the next lock (see [`Locked::put_single_intent`]).
    pub fn single_intent_left(&self) -> Option<String> {
        self.handles.intent_left()
    }

    /// Whether what a dead command left may not be records yet: a single
    /// attach's or detach's intent kept in the log's page, or a dead
    /// batch's intents file the lock could not expand. Read from what the
    /// lock holds: no system call.
    pub fn intents_unresolved(&self) -> bool {
        self.handles.intent_left().is_some() || self.handles.log().batch_intents
    }

    /// The endpoint (network id, endpoint id) whose intent
    /// [`StateDir::single_intent_left`] reports: `restore` leaves it as it
    /// is, since its record may not say what its command was doing (a
    /// detach's intent left there names a record still `attached`, whose
    /// link the detach may have deleted).
    pub fn single_intent_left_endpoint(&self) -> Option<(String, String)> {
        self.handles.intent_left()?;
        let record = intent_record(&self.handles.single_intent())?;
        Some((record.network_id, record.id))
    }
}

impl Locked<'_> {
    /// Reads the commit log's head, once the lock is held, and writes
    /// again what a log written in another boot holds (a power cut may
    /// have taken the files it made durable): each change in order, then
    /// synced file by file, then the log emptied. Only a log that may hold
    /// entries costs this boot's id (two system calls). Returns whether a
    /// batch's intents file may exist (look for it).
    pub(super) fn take_up_log(&self) -> Result<bool, StoreError> {
        let taken = self.take_up_log_once();
        if taken.is_err() {
            // Not taken up (the boot's id unreadable, a sync refused): the
            // lock's drop must not write a page this lock has not read
            // through (the held intent was set aside first); left as it
            // was found, for the next lock.
            let mut hold = self.handles.log();
            hold.head = None;
            self.handles.set_log(hold);
        }
        taken
    }

    fn take_up_log_once(&self) -> Result<bool, StoreError> {
        let path = self.root.join(LOCK_FILE);
        let (head, intent) = Head::read(&self._lock).map_err(StoreError::io("reading", &path))?;
        self.handles.set_single_intent(Vec::new());
        self.handles.page_written(false);
        self.handles.set_intent_left(None);
        let mut hold = self.handles.log();
        hold.head = Some(head);
        hold.batch_intents = head.volatile.map_or(true, |v| v.batch_intents);
        self.handles.set_log(hold);
        let Some(generation) = head.generation else {
            return Ok(true);
        };
        let changing = head.volatile.is_some_and(|v| v.changing);
        let nothing_to_take_up = !head.may_hold_entries() && intent.is_empty();
        if nothing_to_take_up && !changing {
            return Ok(hold.batch_intents);
        }
        let boot = self.state.boot_id(&mut hold)?;
        if head.volatile.is_some_and(|v| v.boot == boot) {
            // A single attach or detach of this boot died after writing
            // its intent: held from here until it is a record, so that
            // every write of the page meanwhile (the settling's, the mark
            // of the record's own write) keeps it; killed before, this
            // lock leaves it for the next.
            self.handles.set_single_intent(intent.clone());
            if changing {
                // A command of this boot died before its commit: settled
                // first, so that no commit (the intent's below) goes into
                // the log before it is marked full.
                self.settle_dead_changes()?;
            }
            if !intent.is_empty() {
                self.expand_single_intent(&intent);
            }
            return Ok(hold.batch_intents);
        }
        if nothing_to_take_up {
            // Another boot's mark of a change, beside an empty log: there
            // is nothing to write again, and the kernel it spoke of is gone.
            // The mark goes (one `pwrite`, not synced): left, it would read
            // as this boot's first change said already, which would then
            // never mark the page with this boot's id, and a command of
            // this boot dying before its commit would go unseen.
            if let Some(volatile) = head.volatile {
                let next = Volatile {
                    changing: false,
                    boot,
                    ..volatile
                };
                self.state.put_page(&self._lock, hold, next)?;
            }
            return Ok(hold.batch_intents);
        }
        // Another boot: the kernel the log's intent spoke of is gone with
        // it (the emptied log holds none).
        let changes = commit_log::read_entries(&self._lock, generation)
            .map_err(StoreError::io("reading", &path))?;
        // Written as any command's writes, but synced file by file: the
        // log must not be written while it is read.
        hold.head = None;
        self.handles.set_log(hold);
        let replayed = self.write_again(&changes);
        let replayed = replayed.and_then(|n| self.commit().map(|()| n));
        // Failed, the log stays as it is, unused by this process (its
        // writes are synced file by file), for the next lock to take up.
        let replayed = replayed?;
        // Past 24 files that commit was one `syncfs`, which reports no
        // writeback error before Linux 5.8: every file the log holds is
        // looked at before the log, its only other durable copy, goes (as
        // every other emptying does).
        self.state.settle_logged_files(&self._lock, generation)?;
        let mut hold = self.handles.log();
        hold.head = Some(head);
        hold.batch_intents = true;
        self.handles.set_log(hold);
        self.state.empty_log(&self._lock, generation)?;
        let mut hold = self.handles.log();
        hold.replayed += replayed;
        self.handles.set_log(hold);
        Ok(true)
    }

    /// Writes `changes` again, in order; returns how many. A directory
    /// missing for a file written is made (its `mkdir` may not have been
    /// durable; one removed since is removed again by a later change). A
    /// path that is not a plain relative one is passed over, and one the
    /// store or the kernel refuses now (another owner, a link, a directory
    /// where the file goes) is passed over and reported (see
    /// [`StateDir::take_log_replayed`]): only a failure of the file system
    /// stops it ([`refused_by_the_place`]).
    fn write_again(&self, changes: &[Change]) -> Result<usize, StoreError> {
        let mut done = 0;
        for change in changes {
            let (Change::Written(relative, _)
            | Change::Removed(relative)
            | Change::RemovedTree(relative)) = change;
            let Some(relative) = plain_relative(relative) else {
                continue;
            };
            let path = self.root.join(relative);
            let Some(dir) = path.parent() else {
                continue;
            };
            let result = match change {
                Change::Written(_, bytes) => self
                    .ensure_dir(dir)
                    .and_then(|()| self.replace_file(&path, bytes)),
                Change::Removed(_) => self.remove_file(&path).map(drop),
                // The tree's parent is noted for the commit's `fsync` by
                // the removal itself (the replay's commit syncs file by
                // file, and a tree's removal is no file's).
                Change::RemovedTree(_) => match self.present(&path) {
                    Ok(true) => self
                        .check_tree_below(&path)
                        .and_then(|()| self.remove_tree(&path)),
                    other => other.map(drop),
                },
            };
            match result {
                Ok(()) => done += 1,
                Err(error) if !refused_by_the_place(&error) => return Err(error),
                Err(refused) => self.handles.replay_refused(refused.to_string()),
            }
        }
        Ok(done)
    }

    /// Makes everything durable (one `syncfs`) and empties the commit log,
    /// if it holds entries: what `restore` leaves, so that a version that
    /// does not read the log can take over. Nothing when it holds none;
    /// an entry past the page's tail counts (a commit killed between its
    /// entry and the page left it, and a power cut would bring it back
    /// over what this sync made durable).
    pub fn empty_commit_log(&self) -> Result<(), StoreError> {
        self.commit()?;
        let Some(head) = self.handles.log().head else {
            return Ok(());
        };
        let Some(generation) = head.generation else {
            return Ok(());
        };
        if !self
            .state
            .log_holds_entries(&self._lock, &head, generation)?
        {
            return Ok(());
        }
        self.handles
            .sync_pending(crate::store::handles::Pending::default(), true)?;
        self.state.settle_logged_files(&self._lock, generation)?;
        self.state.empty_log(&self._lock, generation)
    }

    /// Notes whether a batch's intents file may exist; announced in the
    /// log's volatile page at once when it may (before it is made), so
    /// that the next lock looks for it.
    pub(super) fn note_batch_intents(&self, may_exist: bool) -> Result<(), StoreError> {
        let mut hold = self.handles.log();
        let changed = hold.batch_intents != may_exist;
        hold.batch_intents = may_exist;
        self.handles.set_log(hold);
        match may_exist && changed {
            true => self.state.write_volatile_now(&self._lock, true),
            false => Ok(()),
        }
    }

    /// Writes the intent record (`attaching`) of a single attach, or a
    /// detach's (`detaching`, see [`Locked::put_detach_intent`]), into the
    /// commit log's volatile page, unsynced, in place of a record of its
    /// own: one `pwrite` where a record is a file made, later replaced by
    /// a rename (on ext4 a rename over a file starts its writeback at
    /// once). An attach's final record is then made in place
    /// ([`Locked::put_new_endpoint`]) and the commit's rewrite of the page
    /// takes the intent away. A record written for the endpoint meanwhile
    /// (a create retried under another index) shadows it, as a record
    /// shadows a batch's line. Killed with the intent in the page, the
    /// next lock taken in this boot turns it into a record of its own if
    /// the endpoint has none (a detach's: writes it over the record it was
    /// made from, if that is still there; in another boot it is dropped:
    /// the kernel it spoke of is gone). `false` when the page is in use
    /// (an intent held), the store has no log, or the record is longer
    /// than the page holds: the caller writes a record.
    pub fn put_single_intent(&self, record: &EndpointRecord) -> Result<bool, StoreError> {
        let hold = self.handles.log();
        let usable = hold
            .head
            .is_some_and(|h| h.generation.is_some() && h.volatile.is_some());
        // One a killed attach left, which this lock could not make a record
        // (see `take_up_log`), stays in the page: this one goes in a file.
        if !usable || !self.handles.single_intent().is_empty() {
            return Ok(false);
        }
        let line = intent_line(record)?;
        if line.len() > commit_log::INTENT_MAX {
            return Ok(false);
        }
        self.handles.set_single_intent(line.into_bytes());
        crate::fault::point("store: before write");
        // The attach's record follows: said changing with its intent.
        let written = self.state.write_volatile_now(&self._lock, true);
        if written.is_err() {
            // Not in the page: no later write of it may put it there.
            self.handles.set_single_intent(Vec::new());
        }
        crate::fault::after("store: after write", written)?;
        Ok(true)
    }

    /// The intent record of a single attach whose endpoint the caller read
    /// as missing under this lock: in the commit log's page when it can be
    /// ([`Locked::put_single_intent`]), else a record of its own made in
    /// place ([`Locked::put_new_endpoint`]). Returns whether it went into
    /// the page.
    pub fn put_intent(&self, record: &EndpointRecord) -> Result<bool, StoreError> {
        if self.put_single_intent(record)? {
            return Ok(true);
        }
        self.put_new_endpoint(record).map(|()| false)
    }

    /// The intent record (`detaching`) of a detach, made from the
    /// endpoint's record, which exists: in the commit log's page when it
    /// can be ([`Locked::put_single_intent`]), where a record of its own
    /// would be a temporary file renamed over the record; else written
    /// over the record. Returns whether it went into the page: if so, the
    /// caller takes it out ([`Locked::clear_single_intent`]) once the
    /// record is removed, or, when the detach stops short, writes it over
    /// the record first ([`Locked::keep_detach_intent`]). Killed
    /// meanwhile, the next lock taken in this boot writes it over the
    /// record if that is still there (`Locked::expand_line`).
    pub fn put_detach_intent(&self, record: &EndpointRecord) -> Result<bool, StoreError> {
        debug_assert_eq!(record.state, EndpointState::Detaching);
        if self.put_single_intent(record)? {
            return Ok(true);
        }
        self.put_endpoint(record).map(|()| false)
    }

    /// A detach whose intent is in the page ([`Locked::put_detach_intent`])
    /// stopped short: the intent is written over the record, as a detach
    /// without the page leaves it, when the record is still there (as the
    /// next lock would), then leaves the page. Kept in the page when the
    /// record cannot be written (the next lock makes it the record).
    pub fn keep_detach_intent(&self, record: &EndpointRecord) -> Result<(), StoreError> {
        self.expand_detach_intent(record)?;
        self.clear_single_intent()
    }

    /// The final record of a single attach whose intent
    /// [`Locked::put_intent`] wrote (`in_log`: into the page): made in place
    /// and the intent settled, or put over the intent record.
    pub fn put_attached_endpoint(
        &self,
        record: &EndpointRecord,
        in_log: bool,
    ) -> Result<(), StoreError> {
        if !in_log {
            return self.put_endpoint(record);
        }
        self.put_new_endpoint(record)?;
        self.settle_single_intent();
        Ok(())
    }

    /// The single attach's final record is made: its intent leaves the
    /// volatile page with the next write of the page (the commit's), not
    /// at once (a kill in between leaves it beside the record that
    /// shadows it).
    pub fn settle_single_intent(&self) {
        self.handles.set_single_intent(Vec::new());
    }

    /// Takes the single attach's intent out of the volatile page
    /// (unsynced): for an attach given up, once nothing of it is in the
    /// kernel and before its records go (see [`Locked::put_single_intent`]);
    /// for a detach's, once its record is gone ([`Locked::put_detach_intent`]).
    pub fn clear_single_intent(&self) -> Result<(), StoreError> {
        let held = self.handles.single_intent();
        self.handles.set_single_intent(Vec::new());
        crate::fault::point("store: before write");
        let cleared = self.state.write_volatile_now(&self._lock, false);
        if cleared.is_err() {
            // Still in the page: kept, so that every later write of the
            // page keeps it too, beside the records the caller then keeps.
            self.handles.set_single_intent(held);
        }
        crate::fault::after("store: after write", cleared)
    }

    /// The intent a single attach of this boot left in the volatile page
    /// when it died: a record of its own when the endpoint has none (and
    /// its network has one), then taken out of the page, then committed.
    /// A detach's is written over the endpoint's record if that is still
    /// there ([`Locked::expand_line`]).
    /// Not made (a full disk, a directory the store refuses), it is kept:
    /// held by this command, so that every write of the page keeps it, and
    /// a single attach of this command writes its own intent in a file;
    /// `restore` reports it ([`StateDir::single_intent_left`]). One that is
    /// no endpoint record of ours (a name the store cannot file) is dropped.
    fn expand_single_intent(&self, intent: &[u8]) {
        match self.expand_line(intent, &mut None, Expanding::SingleCommand) {
            Ok(()) | Err(StoreError::InvalidName(_)) => {
                self.handles.set_intent_left(None);
                // Taken out of the page by this commit (the record's), or
                // by the write here when there was none to make.
                if self.clear_single_intent().is_ok() {
                    let _ = self.commit();
                }
            }
            Err(error) => {
                self.handles.set_single_intent(intent.to_vec());
                self.handles.page_written(true);
                self.handles.set_intent_left(Some(error.to_string()));
            }
        }
    }

    /// Takes a settled intent out of the page before a record goes (see
    /// [`Locked::settle_single_intent`]): brought back after it, the intent
    /// would name an index a retried create may have found another link's.
    pub(super) fn drop_settled_intent(&self) -> Result<(), StoreError> {
        match self.handles.page_holds_settled_intent() {
            true => self.state.write_volatile_now(&self._lock, false),
            false => Ok(()),
        }
    }

    /// Said in the volatile page, before the first change of a durable
    /// file since the last commit (see [`Volatile::changing`]): one
    /// `pwrite`, none when the page says so already (an attach's intent
    /// says it). Said with an empty log too: what a command that dies
    /// leaves is durable only once a sync covers it, and a later command's
    /// entry in the log covers its own changes alone. Nothing without a
    /// log (an older store, or while a log is written again).
    ///
    /// Two threads of one lock may call this at once (a batch attach's
    /// finishing beside its creates): the page is read, changed and
    /// written back without one lock over the three, which is sound only
    /// because such a batch says `changing` before its first create, so
    /// that neither writes the page here. Whatever writes the page while
    /// a second thread may change files must hold the handles' lock over
    /// the read and the write.
    pub(super) fn mark_changing(&self) -> Result<(), StoreError> {
        let said = self
            .handles
            .log()
            .head
            .and_then(|head| head.volatile)
            .map_or(true, |volatile| volatile.changing);
        if said {
            return Ok(());
        }
        self.state.write_volatile_now(&self._lock, true)
    }

    /// What a lock of this boot does when the volatile page says a command
    /// was changing durable files (see [`Volatile::changing`]): that
    /// command died before its commit, and the log may hold older
    /// versions of what it changed, which a replay after a reboot would
    /// write back over it and over what later commands build on it (a
    /// network it removed, back beside one made since with its name and
    /// subnet). The log is marked full (unsynced), as after a failed write
    /// of it: the next commit, this command's or a later one's, makes
    /// everything durable with one `syncfs` and empties the log before
    /// any entry goes after the older ones. Until then only commands that
    /// have not returned (the dead one, this one) have changes a reboot
    /// may undo. No sync here: a disk that refuses it fails the commit,
    /// as it would have, not the lock.
    fn settle_dead_changes(&self) -> Result<(), StoreError> {
        let held = self.handles.log().head.and_then(|head| head.volatile);
        if held.is_some_and(|volatile| volatile.tail == commit_log::SLOTS) {
            return Ok(());
        }
        self.state
            .mark_held_log_full(&self._lock)
            .map_err(StoreError::io("writing", self.root.join(LOCK_FILE)))
    }
}

/// Whether a replayed change failed because of what is at its place (the
/// store's refusal, or the kernel's: a directory where the file goes, a
/// file where a directory goes, a link), not because the file system
/// failed: such a change is passed over and reported, never retried; a
/// failure of the file system (`EIO`, `ENOSPC`, `EROFS`) stops the replay
/// with the log kept.
fn refused_by_the_place(error: &StoreError) -> bool {
    match error {
        StoreError::Io(failure) => matches!(
            failure.source.raw_os_error(),
            Some(libc::EISDIR | libc::ENOTDIR | libc::ELOOP | libc::ENOTEMPTY)
        ),
        _ => true,
    }
}

/// A path the log names, when it is a plain relative one (no `..`, no
/// root, not empty): any other is none of the store's, and passed over.
fn plain_relative(relative: &str) -> Option<&Path> {
    let relative = Path::new(relative);
    let plain = !relative.as_os_str().is_empty()
        && relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    plain.then_some(relative)
}

#[cfg(test)]
mod tests {
    use crate::ipam::{fill_default_gateways, match_subnets};
    use crate::store::records::fixtures;
    use crate::store::{EndpointRecord, NetworkRecord, StateDir};
    use std::os::unix::fs::FileExt;

    fn network() -> NetworkRecord {
        let mut subnets = match_subnets(&["10.0.0.0/16".parse().unwrap()], &[], &[], &[]).unwrap();
        fill_default_gateways(&mut subnets);
        fixtures::network("n1", 'a', subnets)
    }

    fn endpoint(net: &NetworkRecord, id: &str, address: &str) -> EndpointRecord {
        fixtures::endpoint(net, id, &format!("c-{id}"), address)
    }

    /// The write that undoes a dead batch's finished endpoint, refused
    /// (the disk), stops that lock's expansion with the file kept and no
    /// endpoint changed past it; the next lock finishes the undo of every
    /// finished endpoint and removes the file.
    #[test]
    fn a_dead_batch_whose_undo_is_refused_is_undone_by_the_next_lock() {
        use crate::store::records::EndpointState;
        let root = std::env::temp_dir().join(format!("ipvlan-batch-undo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let state = StateDir::open(&root).unwrap();
        let net = network();
        let finished: Vec<EndpointRecord> = (1..=2)
            .map(|i| EndpointRecord {
                mac: Some("aa:bb:cc:dd:ee:ff".into()),
                ..endpoint(&net, &format!("e{i}"), &format!("10.0.0.{i}/16"))
            })
            .collect();
        let intents: Vec<EndpointRecord> = finished
            .iter()
            .map(|e| EndpointRecord {
                state: EndpointState::Attaching,
                mac: None,
                ..e.clone()
            })
            .collect();
        {
            let locked = state.lock().unwrap();
            locked.put_network(&net).unwrap();
            locked.commit().unwrap();
            locked.put_batch_intents(&mut intents.iter()).unwrap();
            for e in &finished {
                locked.put_new_endpoint(e).unwrap();
            }
            // Dies here, its file left.
        }
        let states = |locked: &crate::store::Locked<'_>| -> Vec<EndpointState> {
            ["e1", "e2"]
                .iter()
                .map(|id| locked.endpoint(&net.id, id).unwrap().unwrap().state)
                .collect()
        };
        let file = root.join("batch-intents");
        crate::fault::unwind::refuse("store: batch undo not written");
        {
            let locked = state.lock().expect("a lock despite the refusal");
            assert!(file.exists(), "the file went with an endpoint not undone");
            assert_eq!(states(&locked), [EndpointState::Attached; 2]);
        }
        let locked = state.lock().unwrap();
        assert!(!file.exists());
        assert_eq!(states(&locked), [EndpointState::Detaching; 2]);
        drop(locked);
        let _ = std::fs::remove_dir_all(&root);
    }

    /// A batch whose changes cannot all go into one entry of the commit
    /// log gives the log up when its intents are written, before it holds
    /// any record's text or path; one whose changes fit keeps the log to
    /// its commit. Before, a batch of 1,000 held some two hundred records'
    /// texts and paths until the entry was full, and a detach of 256 held
    /// 256 paths (the removal of its intents file was the change too many).
    #[test]
    fn a_batch_too_large_for_the_log_gives_it_up_before_its_records() {
        use crate::store::records::EndpointState;
        // (targets, a detach, too large for one entry)
        for (n, detach, too_large) in [
            (60, false, false),
            (240, false, true),
            (300, false, true),
            (255, true, false),
            (256, true, true),
        ] {
            let what = format!("{} of {n}", if detach { "detach" } else { "attach" });
            let root = std::env::temp_dir().join(format!(
                "ipvlan-batch-log-{}-{n}-{detach}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&root);
            let state = StateDir::open(&root).unwrap();
            let net = network();
            let endpoints: Vec<EndpointRecord> = (0..n)
                .map(|i| {
                    endpoint(
                        &net,
                        &format!("e{i}"),
                        &format!("10.0.{}.{}/16", 1 + i / 200, 2 + i % 200),
                    )
                })
                .collect();
            {
                let locked = state.lock().unwrap();
                locked.put_network(&net).unwrap();
                if detach {
                    for e in &endpoints {
                        locked.put_endpoint(e).unwrap();
                    }
                }
                locked.commit().unwrap();
            }
            let locked = state.lock().unwrap();
            let intents: Vec<EndpointRecord> = endpoints
                .iter()
                .cloned()
                .map(|mut e| {
                    e.state = match detach {
                        true => EndpointState::Detaching,
                        false => EndpointState::Attaching,
                    };
                    e
                })
                .collect();
            locked.put_batch_intents(&mut intents.iter()).unwrap();
            assert_eq!(
                locked.handles.log_given_up(),
                too_large,
                "{what}: its intents written"
            );
            for e in &endpoints {
                match detach {
                    true => drop(locked.remove_endpoint(&net.id, &e.id).unwrap()),
                    false => {
                        let mut e = e.clone();
                        e.mac = Some("aa:bb:cc:dd:ee:ff".into());
                        locked.put_new_endpoint(&e).unwrap();
                    }
                }
            }
            locked.remove_batch_intents().unwrap();
            assert_eq!(
                locked.handles.log_given_up(),
                too_large,
                "{what}: at its commit"
            );
            locked.commit().unwrap();
            drop(locked);
            std::fs::remove_dir_all(&root).unwrap();
        }
    }

    /// A fresh store in a scratch directory named after `tag`, holding the
    /// network and, with `e1`, its endpoint e1 at 10.0.0.2, committed.
    fn store_with(tag: &str, e1: bool) -> (std::path::PathBuf, StateDir, NetworkRecord) {
        let root = std::env::temp_dir().join(format!("ipvlan-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let state = StateDir::open(&root).unwrap();
        let net = network();
        {
            let locked = state.lock().unwrap();
            locked.put_network(&net).unwrap();
            if e1 {
                locked
                    .put_endpoint(&endpoint(&net, "e1", "10.0.0.2/16"))
                    .unwrap();
            }
            locked.commit().unwrap();
        }
        (root, state, net)
    }

    /// Removes e1 in one commit with 300 new records (more than the log
    /// takes: the commit syncs the file system, then empties the log),
    /// unwound at the point `at` of that commit.
    fn remove_e1_in_a_commit_too_large_for_the_log(
        state: &StateDir,
        net: &NetworkRecord,
        at: &'static str,
    ) {
        let locked = e1_removed_beside_300_records(state, net);
        crate::fault::unwind::at(at);
        let _ = locked.commit();
    }

    /// e1 removed and 300 records written under a lock, not committed.
    fn e1_removed_beside_300_records<'a>(
        state: &'a StateDir,
        net: &NetworkRecord,
    ) -> super::Locked<'a> {
        let locked = three_hundred_records(state, net, 'x');
        assert!(locked.remove_endpoint(&net.id, "e1").unwrap());
        locked
    }

    /// A command after a kill: finds e1 gone, and gives its address to a
    /// new endpoint `id`, committed through the log; returns its record.
    fn e1s_address_to(state: &StateDir, net: &NetworkRecord, id: &str) -> EndpointRecord {
        let taker = endpoint(net, id, "10.0.0.2/16");
        let locked = state.lock().unwrap();
        assert_eq!(locked.endpoint(&net.id, "e1").unwrap(), None, "{id}");
        locked.put_endpoint(&taker).unwrap();
        locked.commit().unwrap();
        taker
    }

    /// The volatile page as the lock file holds it now.
    fn page_of(root: &std::path::Path) -> crate::store::commit_log::Volatile {
        let lock = std::fs::File::open(root.join("lock")).unwrap();
        let (head, _) = crate::store::commit_log::Head::read(&lock).unwrap();
        head.volatile.unwrap()
    }

    /// What the next lock finds, the store opened again (after a power
    /// cut that took the volatile page, with `page_lost`): e1 removed, and
    /// `kept` as it was committed; then the scratch directory goes.
    fn e1_stays_removed(
        root: &std::path::Path,
        net: &NetworkRecord,
        kept: Option<EndpointRecord>,
        page_lost: bool,
        what: &str,
    ) {
        if page_lost {
            lose_the_volatile_page(root);
        }
        let state = StateDir::open(root).unwrap();
        let locked = state.lock().unwrap();
        if let Some(kept) = kept {
            assert_eq!(
                locked.endpoint(&net.id, &kept.id).unwrap(),
                Some(kept),
                "{what}"
            );
        }
        assert_eq!(
            locked.endpoint(&net.id, "e1").unwrap(),
            None,
            "{what}: e1 written back"
        );
        drop(locked);
        std::fs::remove_dir_all(root).unwrap();
    }

    /// Page 3 of the lock file zeroed: the volatile page lost, as a power
    /// cut may leave it, so the next lock replays what the log holds (a
    /// reboot that kept the page does the same: it names another boot).
    fn lose_the_volatile_page(root: &std::path::Path) {
        let lock = std::fs::OpenOptions::new()
            .write(true)
            .open(root.join("lock"))
            .unwrap();
        lock.write_all_at(&[0u8; 4096], 3 * 4096).unwrap();
    }

    /// A command killed after it changed a durable file and before its
    /// commit counted the change (here after its entry, before the page
    /// that counts it; or before any of it, past the file's removal) left
    /// a change the log does not hold, beside an older version of the same
    /// file that it does. Later commands of the boot build on the change;
    /// a reboot must not write the older version back. Before, the
    /// network the dead command removed came back after the reboot,
    /// beside the one made since in its place, and a removed endpoint came
    /// back holding the address handed out since.
    #[test]
    fn a_command_killed_before_its_commit_leaves_no_older_version_to_replay() {
        for at in ["store: after log entry", "store: after unlink"] {
            let (root, state, net) = store_with(&format!("dead-change-{}", at.len()), true);
            let killed = std::panic::catch_unwind(|| {
                let locked = state.lock().unwrap();
                crate::fault::unwind::at(at);
                assert!(locked.remove_endpoint(&net.id, "e1").unwrap());
                let _ = locked.commit();
            });
            crate::fault::unwind::assert_unwound_at(killed, at);
            let e2 = e1s_address_to(&state, &net, "e2");
            e1_stays_removed(&root, &net, Some(e2), true, at);
        }
    }

    /// A command that changes nothing after its commit leaves the page
    /// saying nothing is under way, and one that commits unsaid changes
    /// says them first: the flag is in the page exactly between a change
    /// and its commit.
    #[test]
    fn the_page_says_a_change_is_under_way_from_the_first_change_to_the_commit() {
        let (root, state, net) = store_with("changing", false);
        let changing = |root: &std::path::Path| page_of(root).changing;
        assert!(!changing(&root), "committed");
        let locked = state.lock().unwrap();
        assert!(!changing(&root), "locked, nothing changed");
        locked
            .put_endpoint(&endpoint(&net, "e1", "10.0.0.2/16"))
            .unwrap();
        assert!(changing(&root), "a record written");
        locked.commit().unwrap();
        assert!(!changing(&root), "committed again");
        drop(locked);
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// An attach given up after its intent went into the page (a commit of
    /// nothing) leaves the page saying no change is under way: before,
    /// it kept saying so, the next lock took the command for dead and
    /// marked the log full, and the next commit synced the file system.
    #[test]
    fn a_commit_of_nothing_says_no_change_is_under_way() {
        let (root, state, net) = store_with("unchanged", false);
        let head = page_of;
        let before = head(&root);
        {
            let locked = state.lock().unwrap();
            let mut e1 = endpoint(&net, "e1", "10.0.0.2/16");
            e1.state = crate::store::records::EndpointState::Attaching;
            assert!(locked.put_single_intent(&e1).unwrap());
            assert!(head(&root).changing, "said with the intent");
            locked.clear_single_intent().unwrap();
            locked.commit().unwrap();
            assert!(!head(&root).changing, "a commit of nothing");
        }
        drop(state.lock().unwrap());
        let after = head(&root);
        assert_eq!(
            (after.generation, after.tail),
            (before.generation, before.tail)
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// A lock that follows a dead command with a single attach's intent
    /// in the page marks the log full before the intent's record is
    /// committed: killed between the two, it leaves no entry after the
    /// older ones that the next commit would append to. Before, the
    /// intent's commit came first, and rewrote the page without the mark.
    #[test]
    fn a_dead_change_is_settled_before_the_intent_beside_it_is_committed() {
        let (root, state, net) = store_with("settle-first", true);
        // A: its intent in the page, e1 removed, killed.
        e2s_attach_killed_after_its_intent(&state, &net);
        // B: killed right after the intent's commit.
        let killed = std::panic::catch_unwind(|| {
            crate::fault::unwind::at("store: after fsync");
            drop(state.lock().unwrap());
        });
        crate::fault::unwind::assert_unwound_at(killed, "store: after fsync");
        // C: e1's address to e3, through the log.
        let e3 = e1s_address_to(&state, &net, "e3");
        e1_stays_removed(&root, &net, Some(e3), true, "e3");
    }

    /// A lock that follows a dead attach keeps the attach's intent in the
    /// page it writes to mark the log full: killed before the intent is a
    /// record, it leaves the intent for the next lock, which makes it one.
    /// Before, the mark's page was written without it, and the attach's
    /// link and address were left to nobody.
    #[test]
    fn a_dead_attachs_intent_outlives_a_lock_killed_while_taking_it_up() {
        let (root, state, net) = store_with("intent-kept", true);
        e2s_attach_killed_after_its_intent(&state, &net);
        // B: killed as it writes the intent's record.
        lock_killed_writing_the_record(&state);
        e2s_intent_is_its_record(&root, &state, &net);
    }

    /// The same, the intent's record refused once by the disk (the lock
    /// keeps the intent and goes on, its commit takes the page's mark of
    /// a change off), then the next lock killed as it writes the record.
    /// Before, that lock's mark of its change rewrote the page without the
    /// intent.
    #[test]
    fn a_dead_attachs_intent_outlives_a_retry_killed_while_making_it_a_record() {
        let (root, state, net) = store_with("intent-retried", true);
        e2s_attach_killed_after_its_intent(&state, &net);
        // B: the record refused.
        crate::fault::unwind::refuse("store: attach intent not written");
        let locked = state.lock().unwrap();
        assert!(locked.single_intent_left().is_some(), "the record made");
        drop(locked);
        // C: killed as it writes the record.
        lock_killed_writing_the_record(&state);
        e2s_intent_is_its_record(&root, &state, &net);
    }

    /// A lock that cannot read this boot's id (no `/proc`, no descriptor
    /// left) fails and leaves the page as it found it: the next lock makes
    /// a dead attach's intent its record. Before, the failed lock's drop
    /// committed, and its page had the intent (set aside before the boot's
    /// id was read) and the mark of the dead change taken off.
    #[test]
    fn a_lock_that_cannot_read_the_boot_id_leaves_a_dead_attachs_intent() {
        let (root, state, net) = store_with("intent-no-boot-id", true);
        e2s_attach_killed_after_its_intent(&state, &net);
        crate::fault::unwind::refuse("store: boot id unreadable");
        assert!(state.lock().is_err(), "the boot's id refused");
        assert!(page_of(&root).changing, "the dead change's mark taken off");
        e2s_intent_is_its_record(&root, &state, &net);
    }

    /// A single attach of e2 that put its intent in the page, removed e1
    /// and was killed before its commit.
    fn e2s_attach_killed_after_its_intent(state: &StateDir, net: &NetworkRecord) {
        let killed = std::panic::catch_unwind(|| {
            let locked = state.lock().unwrap();
            let mut e2 = endpoint(net, "e2", "10.0.0.3/16");
            e2.state = crate::store::records::EndpointState::Attaching;
            assert!(locked.put_single_intent(&e2).unwrap());
            crate::fault::unwind::at("store: after unlink");
            let _ = locked.remove_endpoint(&net.id, "e1");
        });
        crate::fault::unwind::assert_unwound_at(killed, "store: after unlink");
    }

    /// A lock killed as it writes the record of the intent it found.
    fn lock_killed_writing_the_record(state: &StateDir) {
        let killed = std::panic::catch_unwind(|| {
            crate::fault::unwind::at("store: before write");
            drop(state.lock().unwrap());
        });
        crate::fault::unwind::assert_unwound_at(killed, "store: before write");
    }

    /// The next lock finds e2's intent and makes it e2's record; then the
    /// scratch directory goes.
    fn e2s_intent_is_its_record(root: &std::path::Path, state: &StateDir, net: &NetworkRecord) {
        let locked = state.lock().unwrap();
        let e2 = locked.endpoint(&net.id, "e2").unwrap();
        assert_eq!(
            e2.map(|e| e.state),
            Some(crate::store::records::EndpointState::Attaching),
            "the intent lost"
        );
        drop(locked);
        std::fs::remove_dir_all(root).unwrap();
    }

    /// A command that dies uncommitted while the log is empty (just
    /// emptied by a sync) is settled as any other: the next commit syncs
    /// the file system, which makes what the dead command left durable
    /// before anything built on it is. Before, the empty log took no mark
    /// and the next commit went into the log: a power cut could undo the
    /// dead command's removal of e1 and keep e1's address given to e3.
    #[test]
    fn a_command_dead_beside_an_empty_log_is_settled_too() {
        let (root, state, net) = store_with("dead-empty-log", true);
        let emptied = log_emptied_by_300_records(&state, &net, 'f');
        let killed = std::panic::catch_unwind(|| {
            let locked = state.lock().unwrap();
            crate::fault::unwind::at("store: after unlink");
            let _ = locked.remove_endpoint(&net.id, "e1");
        });
        crate::fault::unwind::assert_unwound_at(killed, "store: after unlink");
        assert!(page_of(&root).changing, "the dead removal not said");
        e1s_address_to(&state, &net, "e3");
        let after = page_of(&root);
        assert!(
            after.generation > emptied.generation && after.tail == 0 && !after.changing,
            "the commit after the dead one did not sync: {after:?}"
        );
        // A commit too large for the empty log syncs, and says the change
        // done: else, killed before it lets the lock go, it would be taken
        // for dead by the next lock, whose commit would sync again.
        let locked = three_hundred_records(&state, &net, 'g');
        locked.commit().unwrap();
        let page = page_of(&root);
        assert!(
            page.tail == 0 && !page.changing,
            "a synced commit left {page:?}"
        );
        drop(locked);
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// A commit too large for an empty log whose sync fails marks the log
    /// full: the next commit syncs again. Before, nothing marked it (only a
    /// log holding entries was marked before the sync), the failed
    /// command's commit of nothing took the mark of its change off, and
    /// the next commit went into the log.
    #[test]
    fn a_failed_sync_beside_an_empty_log_is_left_to_the_next_commit() {
        let (root, state, net) = store_with("failed-sync-empty-log", true);
        log_emptied_by_300_records(&state, &net, 'f');
        let locked = three_hundred_records(&state, &net, 'g');
        crate::fault::unwind::refuse("store: flush fails");
        assert!(locked.commit().is_err());
        drop(locked);
        let page = page_of(&root);
        assert_eq!(page.tail, crate::store::commit_log::SLOTS, "{page:?}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// A commit that fails before it touches the log (its look past the
    /// tail of an emptied log refused) marks the log full: the next commit
    /// syncs and empties it. Before, the changes it had taken were dropped
    /// and the lock's release, finding nothing pending, took the mark of a
    /// change under way off the page: the next lock settled no dead
    /// change, and the next commit went into the log.
    #[test]
    fn a_commit_failing_before_the_log_leaves_it_marked() {
        let (root, state, net) = store_with("failed-log-read", true);
        log_emptied_by_300_records(&state, &net, 'f');
        let locked = three_hundred_records(&state, &net, 'g');
        crate::fault::unwind::refuse("store: log read fails");
        assert!(locked.commit().is_err());
        drop(locked);
        let page = page_of(&root);
        assert_eq!(page.tail, crate::store::commit_log::SLOTS, "{page:?}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// Another boot's page saying a change was under way beside an empty
    /// log: the lock has nothing to write again and leaves the log as it
    /// is. Before, it took the log up as one holding entries (written
    /// again, nothing; then emptied, two syncs), and a disk refusing
    /// flushes failed every lock.
    #[test]
    fn another_boots_mark_beside_an_empty_log_costs_the_lock_nothing() {
        let (root, state, net) = store_with("other-boot-mark", true);
        let emptied = log_emptied_by_300_records(&state, &net, 'f');
        mark_of_another_boot(&root, emptied);
        crate::fault::unwind::refuse("store: flush fails");
        drop(state.lock().unwrap());
        assert_eq!(page_of(&root).generation, emptied.generation);
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// The same after a reboot, with the page still saying a command of
    /// the boot before was changing files beside the emptied log: the
    /// first lock of this boot takes that mark off, so that the command
    /// dying uncommitted marks the page with this boot's id and the next
    /// commit syncs. Before, the old mark was left, read as the dead
    /// command's own, and the next lock (finding another boot's page)
    /// let its commit go into the log.
    #[test]
    fn a_command_dead_after_another_boots_mark_is_settled_too() {
        let (root, state, net) = store_with("dead-after-boot-mark", true);
        let emptied = log_emptied_by_300_records(&state, &net, 'f');
        let before_reboot = mark_of_another_boot(&root, emptied);
        let killed = std::panic::catch_unwind(|| {
            let locked = state.lock().unwrap();
            crate::fault::unwind::at("store: after unlink");
            let _ = locked.remove_endpoint(&net.id, "e1");
        });
        crate::fault::unwind::assert_unwound_at(killed, "store: after unlink");
        let dead = page_of(&root);
        assert!(
            dead.changing && dead.boot != before_reboot.boot,
            "the dead removal not said in this boot's name: {dead:?}"
        );
        e1s_address_to(&state, &net, "e3");
        let after = page_of(&root);
        assert!(
            after.generation > emptied.generation && after.tail == 0 && !after.changing,
            "the commit after the dead one did not sync: {after:?}"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// The page `emptied` written again as another boot leaves it after a
    /// command that was changing files beside the emptied log; returned.
    fn mark_of_another_boot(
        root: &std::path::Path,
        emptied: crate::store::commit_log::Volatile,
    ) -> crate::store::commit_log::Volatile {
        let lock = std::fs::OpenOptions::new()
            .write(true)
            .open(root.join("lock"))
            .unwrap();
        let before_reboot = crate::store::commit_log::Volatile {
            changing: true,
            boot: [b'0'; crate::store::commit_log::BOOT_ID_LEN],
            ..emptied
        };
        crate::store::commit_log::write_volatile_with(&lock, &before_reboot, &[]).unwrap();
        before_reboot
    }

    /// 300 records written under a lock, not committed (more than the log
    /// takes), named `prefix` and a number.
    fn three_hundred_records<'a>(
        state: &'a StateDir,
        net: &NetworkRecord,
        prefix: char,
    ) -> super::Locked<'a> {
        let locked = state.lock().unwrap();
        let third = 10 + 2 * (prefix as u32 - 'a' as u32);
        for i in 0..300u32 {
            let address = format!("10.0.{}.{}/16", third + i / 200, i % 200 + 1);
            locked
                .put_endpoint(&endpoint(net, &format!("{prefix}{i}"), &address))
                .unwrap();
        }
        locked
    }

    /// Endpoints `PREFIX0`.. `PREFIX{n-1}` put under a new lock, not
    /// committed.
    fn records_put<'a>(
        state: &'a StateDir,
        net: &NetworkRecord,
        prefix: char,
        n: u32,
    ) -> super::Locked<'a> {
        let locked = state.lock().unwrap();
        let third = 100 + (prefix as u32 - 'a' as u32);
        for i in 0..n {
            let address = format!("10.0.{third}.{}/16", i + 1);
            locked
                .put_endpoint(&endpoint(net, &format!("{prefix}{i}"), &address))
                .unwrap();
        }
        locked
    }

    /// Before the log is emptied after a `syncfs` (a commit it has no room
    /// for, one too large for it, restore's), the writeback of each file
    /// its entries last wrote is asked whether it failed, and one whose did
    /// (forced here) is written again with what it holds and synced: a
    /// change since (one behind the log's back here, the commit's own)
    /// stands. Before, the log was
    /// emptied on the `syncfs`'s word, which cannot report a writeback that
    /// failed after the command that wrote the file returned (before Linux
    /// 5.8 never; since, once, to whoever syncs first): the only durable
    /// copy of what that command wrote went with the log.
    #[test]
    fn a_log_is_emptied_only_once_the_files_it_holds_are_on_the_disk() {
        use std::os::unix::fs::MetadataExt;
        let (root, state, net) = store_with("settle-log", true);
        // Three commits through the log, 120 records each.
        records_put(&state, &net, 'a', 120).commit().unwrap();
        records_put(&state, &net, 'b', 120).commit().unwrap();
        records_put(&state, &net, 'c', 120).commit().unwrap();
        assert!(page_of(&root).tail > 0, "they went through the log");
        let e1 = state.endpoint_path(&net.id, "e1");
        std::fs::write(&e1, b"{}").unwrap();
        // The network's record, the first file the log holds.
        let network = root.join("networks").join(format!("{}.json", net.id));
        let network_inode = std::fs::metadata(&network).unwrap().ino();
        let network_bytes = std::fs::read(&network).unwrap();
        // A fourth has no room left: the file system synced, the log
        // emptied. It changes b0 too.
        let locked = records_put(&state, &net, 'd', 120);
        let b0 = endpoint(&net, "b0", "10.0.200.1/16");
        locked.put_endpoint(&b0).unwrap();
        let b0_now = std::fs::read(state.endpoint_path(&net.id, "b0")).unwrap();
        crate::fault::unwind::refuse("store: logged file sync fails");
        locked.commit().unwrap();
        drop(locked);
        assert_eq!(page_of(&root).tail, 0, "the log was not emptied");
        assert_ne!(
            std::fs::metadata(&network).unwrap().ino(),
            network_inode,
            "the network's record, whose sync failed, not written again"
        );
        assert_eq!(std::fs::read(&network).unwrap(), network_bytes);
        assert_eq!(std::fs::read(&e1).unwrap(), b"{}", "e1 taken back");
        assert_eq!(
            std::fs::read(state.endpoint_path(&net.id, "b0")).unwrap(),
            b0_now,
            "b0 written back as the log had it, over the commit's change"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// A log of another boot written again (past 24 files: one `syncfs`,
    /// which before Linux 5.8 reports no writeback error) is emptied only
    /// once each file it holds was asked of its writeback, as every other
    /// emptying does. Before, the replay emptied it on the `syncfs`'s word.
    #[test]
    fn a_replayed_log_is_emptied_only_once_its_files_are_on_the_disk() {
        let (root, state, net) = store_with("settle-replay", true);
        records_put(&state, &net, 'a', 30).commit().unwrap();
        let page = page_of(&root);
        assert!(page.tail > 0, "the records went through the log");
        mark_of_another_boot(&root, page);
        crate::fault::unwind::refuse("store: logged file sync fails");
        drop(state.lock().unwrap());
        // The refusal taken: the writeback was asked.
        assert!(
            !crate::fault::unwind::refused("store: logged file sync fails"),
            "the replayed files' writeback was not asked"
        );
        assert_eq!(page_of(&root).tail, 0, "the log was not emptied");
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// A writeback failure seen while the file cannot be written again
    /// (its temporary's name taken here) leaves `settle-owed` and the log
    /// full:
    /// the next emptying writes every file the log holds again, without
    /// asking (a second look would find the failure taken and nothing
    /// wrong), then takes the mark away. Before, that second look emptied
    /// the log on its word.
    #[test]
    fn a_settling_that_fails_is_owed_to_the_next() {
        use std::os::unix::fs::MetadataExt;
        let ino = |path: &std::path::Path| std::fs::metadata(path).unwrap().ino();
        let (root, state, net) = store_with("settle-owed", true);
        for prefix in ['a', 'b', 'c'] {
            records_put(&state, &net, prefix, 120).commit().unwrap();
        }
        let a0 = state.endpoint_path(&net.id, "a0");
        let a0_inode = ino(&a0);
        // The network's record, the first file the log holds, cannot be
        // written again: a directory holds its temporary's name.
        let temporary = root.join("networks").join(format!(".tmp-{}.json", net.id));
        std::fs::create_dir_all(temporary.join("x")).unwrap();
        let locked = records_put(&state, &net, 'd', 120);
        crate::fault::unwind::refuse("store: logged file sync fails");
        let failed = locked.commit();
        drop(locked);
        std::fs::remove_dir_all(&temporary).unwrap();
        assert!(failed.is_err());
        assert!(root.join(super::SETTLE_OWED).exists(), "no settling owed");
        assert_eq!(page_of(&root).tail, crate::store::commit_log::SLOTS);
        assert_eq!(ino(&a0), a0_inode);
        // The next commit has no room in the log either.
        records_put(&state, &net, 'e', 1).commit().unwrap();
        assert_eq!(page_of(&root).tail, 0, "the log was not emptied");
        assert_ne!(ino(&a0), a0_inode, "a0 not written again");
        assert!(!root.join(super::SETTLE_OWED).exists());
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// The log emptied by a commit of 300 records: its page then.
    fn log_emptied_by_300_records(
        state: &StateDir,
        net: &NetworkRecord,
        prefix: char,
    ) -> crate::store::commit_log::Volatile {
        let locked = three_hundred_records(state, net, prefix);
        locked.commit().unwrap();
        let emptied = page_of(&state.root);
        assert_eq!(emptied.tail, 0, "the large commit emptied the log");
        emptied
    }

    /// A change that failed may have made part of itself (a tree half
    /// removed), which no entry of the log would hold: the commit syncs
    /// the file system and empties the log, and the page says no change
    /// is under way. Before, a commit of nothing took the failure for no
    /// change, and the log's older versions of the tree's records stayed
    /// there to be written back after a power cut.
    #[test]
    fn a_change_that_failed_is_made_durable_by_a_sync() {
        let (root, state, net) = store_with("failed-change", true);
        let before = page_of(&root);
        let locked = state.lock().unwrap();
        crate::fault::unwind::refuse("store: rmdir fails");
        assert!(locked.remove_network(&net.id).is_err());
        locked.commit().unwrap();
        let after = page_of(&root);
        drop(locked);
        assert!(
            after.generation > before.generation && after.tail == 0 && !after.changing,
            "a failed change not synced: {after:?}"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    /// The log emptied after a sync (a commit too large for it) makes its
    /// new generation durable before it writes the volatile page of that
    /// generation: a generation whose sync the disk refuses gets no page
    /// (the old one stays, marked full), and a power cut after the sync
    /// leaves the new generation and the old page, which names no entry of
    /// it. Before, one `fdatasync` covered both, and a cut that kept only
    /// the page left the old generation's entries to be written back over
    /// the sync.
    #[test]
    fn an_emptied_log_has_its_generation_durable_before_its_page() {
        let (root, state, net) = store_with("gen-order", true);
        let before = page_of(&root);
        let locked = e1_removed_beside_300_records(&state, &net);
        crate::fault::unwind::refuse("store: generation sync fails");
        let refused = locked.commit();
        let lock = std::fs::File::open(root.join("lock")).unwrap();
        let (head, _) = crate::store::commit_log::Head::read(&lock).unwrap();
        drop(locked);
        assert!(refused.is_err(), "the generation's sync was not asked for");
        assert!(
            head.generation > Some(before.generation)
                && head
                    .volatile
                    .map_or(true, |v| v.generation == before.generation),
            "a page for a generation not durable: {head:?}"
        );
        let (root, state, net) = store_with("gen-order", true);
        let cut = std::panic::catch_unwind(|| {
            remove_e1_in_a_commit_too_large_for_the_log(
                &state,
                &net,
                "store: after generation sync",
            );
        });
        // Not unwound there: the log was emptied without a generation sync.
        crate::fault::unwind::assert_unwound_at(cut, "store: after generation sync");
        // What the disk holds at that moment: the new generation, synced,
        // and the volatile page as it was (the page's write comes after).
        e1_stays_removed(&root, &net, None, false, "the new generation");
    }

    /// A commit too large for the log (one `syncfs`), killed between its
    /// sync and the log's emptying, while the log held an older entry: the
    /// next small commit must not append after that entry, which a power
    /// cut would then write back over what the sync made durable (e1's
    /// removal undone, its address handed to e2 meanwhile). Before, it
    /// did: the page's tail was left where it was.
    #[test]
    fn a_large_commit_killed_after_its_sync_leaves_no_entry_to_replay_over_it() {
        let (root, state, net) = store_with("syncfs-kill", true);
        let killed = std::panic::catch_unwind(|| {
            remove_e1_in_a_commit_too_large_for_the_log(&state, &net, "store: after fsync");
        });
        crate::fault::unwind::assert_unwound_at(killed, "store: after fsync");
        let e2 = e1s_address_to(&state, &net, "e2");
        // A power cut: the next lock replays what the log holds over the
        // files as they were synced.
        e1_stays_removed(&root, &net, Some(e2), true, "after the sync");
    }
}
