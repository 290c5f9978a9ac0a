//! The intent records of a batch (attach or detach), held in one file.
//!
//! A single attach writes its endpoint's intent record (`attaching`) as a
//! file of its own and later renames the final record over it. A batch of
//! N endpoints doing the same pays N file creates and N renames over an
//! existing file, each of which, on ext4, starts the new file's writeback
//! at once: the larger part of a batch's own work per endpoint. A batch
//! instead writes every intent as one line of `batch-intents` (in the
//! root), before its first create, and each final record in place, as a
//! new file ([`Locked::put_new_endpoint`]). A batch detach writes every
//! endpoint's record marked `detaching` as a line before its first link
//! goes, where it used to write each one into the commit log's page and
//! take it out again (two writes of a page an endpoint).
//!
//! A single attach's intent, and a single detach's, goes into the commit
//! log's page instead when it can (`commit.rs`); one a killed command left
//! there is read by the same [`Locked::expand_line`] as a line of this
//! file.
//!
//! The file is removed by the batch before it releases the lock; one found
//! by the next holder was left by a batch that died (or by a holder that
//! could not expand it since). Taking the lock
//! turns it back into what single attaches and detaches leave
//! ([`Locked::expand_batch_intents`]): each attach intent whose endpoint
//! has no record (missing, or empty: its in-place create was cut short)
//! becomes that endpoint's intent record, one whose endpoint the batch
//! finished has that final record marked `detaching` (a batch is all or
//! nothing: the file goes only once every endpoint is finished), each
//! detach intent is written over its endpoint's record if that is still
//! there, then the file goes.
//! From there on `restore`, and every other command, sees the intents one
//! by one, as it would after interrupted single commands.
//!
//! Like any intent, the file is never synced: it only has to outlive the
//! process (a power cut resets the kernel whose links it names). Its
//! removal is committed with the batch's records, so a power cut cannot
//! bring back the intents of a batch that returned.

use std::io::{Read, Write};

use super::{intent_line, Locked, StoreError, BATCH_INTENTS};
use crate::json;
use crate::store::fsutil::{self, FILE_MODE};
use crate::store::records::{EndpointRecord, EndpointState};

/// How much of the file is built before one `write`: 30 endpoints' lines
/// or so, so that a batch of a thousand writes some 30 times and never
/// holds more than a few pages of its lines (its peak memory is bounded).
const WRITE_CHUNK: usize = 16 << 10;

/// What the commit log's accounting adds to a change's path and contents
/// (its kind, the lengths: `Shared::note_change`).
const CHANGE_OVERHEAD: usize = 7;

/// How much longer an endpoint's final record is than its intent's line,
/// at least: the record is written indented, a field a line (97 bytes more
/// for a record with an IPv4 address), and with its link's MAC address (15
/// more).
const FINAL_TEXT_OVER_LINE: usize = 100;

/// How much of it is read at once when it is expanded.
const READ_CHUNK: usize = 16 << 10;

/// The longest line taken for an intent: a record is under 32 KiB (its
/// longest part a namespace path, under 4 KiB, six bytes a character once
/// escaped when each is a control character). A longer line is none of
/// ours, and is passed over without being held.
const LINE_MAX: usize = 64 << 10;

/// Whose intent [`Locked::expand_line`] turns into records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expanding {
    /// A single attach's or detach's, from the commit log's page.
    SingleCommand,
    /// A line of the `batch-intents` file of a batch that died.
    DeadBatch,
}

impl Locked<'_> {
    /// Writes the intent records (state `attaching`, or `detaching` for a
    /// batch detach) of a batch's endpoints, one compact JSON line each, in
    /// one new `batch-intents` file, unsynced: in place of one intent each
    /// ([`Locked::put_new_endpoint`]), before the kernel is asked for
    /// anything. An endpoint that needs its intent changed later (a create
    /// retried under another index) gets a record of its own, which
    /// shadows its line for as long as that record exists: the caller
    /// removes the file ([`Locked::remove_batch_intents`]) once every
    /// final record is written, or, on failure, once nothing of the batch
    /// is left in the kernel and before any endpoint's own record goes (a
    /// line brought back would name the index another link refused), and
    /// before its commit.
    pub fn put_batch_intents(
        &self,
        records: &mut dyn Iterator<Item = &EndpointRecord>,
    ) -> Result<(), StoreError> {
        let path = self.root.join(BATCH_INTENTS);
        let root = self.handles.ensure(&self.root)?;
        let name = fsutil::c_name(BATCH_INTENTS).map_err(StoreError::io("writing", &path))?;
        // Announced before it exists, so that the next lock looks for it.
        self.note_batch_intents(true)?;
        let create = || {
            crate::fault::point("store: before write");
            fsutil::open_new_at(root.fd(), &name, FILE_MODE)
                .map_err(StoreError::io("writing", &path))
        };
        // One here now was left by a batch that died, and taking this lock
        // could not turn it into records (a full disk, say): that is done
        // now, or this batch is refused with the reason, never thrown away.
        let mut file = match create()? {
            Some(file) => file,
            None => {
                self.expand_batch_intents()?;
                // Its removal took the announcement away: made again.
                self.note_batch_intents(true)?;
                create()?.ok_or_else(|| {
                    StoreError::io("writing", &path)(std::io::ErrorKind::AlreadyExists.into())
                })?
            }
        };
        // What is built so far, written whole and let go.
        let write = |file: &mut std::fs::File, chunk: &mut String| {
            let written =
                crate::fault::after("store: after write", file.write_all(chunk.as_bytes()));
            chunk.clear();
            written.map_err(StoreError::io("writing", &path))
        };
        let mut chunk = String::with_capacity(WRITE_CHUNK);
        // What the commit will hold of the batch at least, as its log
        // entry counts it: each endpoint's record path and, for an attach,
        // the record's final text; and the removal of this file.
        let (mut changes, mut bytes) = (1, 0);
        let written = || -> Result<(), StoreError> {
            for record in records {
                let line = intent_line(record)?;
                changes += 1;
                bytes += CHANGE_OVERHEAD
                    + self
                        .endpoint_path(&record.network_id, &record.id)
                        .as_os_str()
                        .len();
                if record.state != EndpointState::Detaching {
                    bytes += line.len() + FINAL_TEXT_OVER_LINE;
                }
                chunk.push_str(&line);
                chunk.push('\n');
                if chunk.len() >= WRITE_CHUNK {
                    write(&mut file, &mut chunk)?;
                }
            }
            if !chunk.is_empty() {
                write(&mut file, &mut chunk)?;
            }
            Ok(())
        };
        if let Err(error) = written() {
            // Made by this call and not written whole (a full disk, a
            // record the writer refuses): its whole lines must not outlive
            // the refusal, or the next lock would act on them for a batch
            // that never touched the kernel (a batch detach's would detach
            // endpoints its caller was told stayed).
            drop(file);
            let _ = self.remove_batch_intents();
            return Err(error);
        }
        self.handles.let_go(file);
        self.handles.expect_changes(changes, bytes);
        Ok(())
    }

    /// The line of a batch detach's `record` written over its record now,
    /// as the next lock would write it were the batch to die (see
    /// `Locked::expand_line`): for an endpoint whose link went, or may
    /// have gone, before the batch stopped short, ahead of the removal of
    /// `batch-intents` that drops the lines of the endpoints it never
    /// reached.
    pub fn keep_batch_detach_intent(&self, record: &EndpointRecord) -> Result<(), StoreError> {
        debug_assert_eq!(record.state, EndpointState::Detaching);
        self.expand_detach_intent(record)
    }

    /// Removes `batch-intents`, noting the root for the commit;
    /// `Ok(false)` when there was none.
    pub fn remove_batch_intents(&self) -> Result<bool, StoreError> {
        let path = self.root.join(BATCH_INTENTS);
        crate::fault::io_refused("store: batch intents stay")
            .map_err(StoreError::io("removing", &path))?;
        let removed = self.remove_file(&path)?;
        self.note_batch_intents(false)?;
        Ok(removed)
    }

    /// Turns a `batch-intents` file that a dead batch left into intent
    /// records of their own (see the module), removes it and makes that
    /// removal durable; nothing when there is none, which costs one failed
    /// `openat`. Called when the lock is taken, before anything reads the
    /// endpoints (an error there stops no command: the file stays), and by
    /// `restore`, which reports one.
    ///
    /// A line that does not read as an `attaching` or `detaching` endpoint
    /// record is passed over: the last one may have been cut short by the kill (the
    /// batch had not sent a create for it yet), and the file is ours, made
    /// in the root that only we may write. So is the intent of an endpoint
    /// whose network has no record (gone since, or never ours): nothing
    /// would ever read it. An endpoint whose record exists keeps it,
    /// damaged or refused (a link, say) or not.
    pub fn expand_batch_intents(&self) -> Result<(), StoreError> {
        let path = self.root.join(BATCH_INTENTS);
        let Some(root) = self.handles.dir(&self.root)? else {
            return Ok(());
        };
        let name = fsutil::c_name(BATCH_INTENTS).map_err(StoreError::io("opening", &path))?;
        let mut file = match fsutil::open_regular_at(root.fd(), &name, libc::O_RDONLY, 0) {
            Ok((file, _)) => file,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return self.note_batch_intents(false);
            }
            Err(error) => return Err(StoreError::io("opening", &path)(error)),
        };
        // Read a chunk at a time; each whole line expanded as it comes.
        let mut held: Vec<u8> = Vec::new();
        // Within a line longer than any record: dropped up to its end.
        let mut overlong = false;
        // The network last asked about, and whether it has a record (a
        // batch is one network's).
        let mut known: Option<(String, bool)> = None;
        loop {
            let filled = held.len();
            held.resize(filled + READ_CHUNK, 0);
            let read = file
                .read(&mut held[filled..])
                .map_err(StoreError::io("reading", &path))?;
            held.truncate(filled + read);
            let mut done = 0;
            while let Some(end) = held[done..].iter().position(|&b| b == b'\n') {
                if !std::mem::take(&mut overlong) {
                    self.expand_line(&held[done..done + end], &mut known, Expanding::DeadBatch)?;
                }
                done += end + 1;
            }
            held.copy_within(done.., 0);
            held.truncate(held.len() - done);
            if read == 0 {
                // What is left has no end: cut short, its batch died
                // writing it (before any create for it).
                break;
            }
            if held.len() > LINE_MAX {
                held.clear();
                overlong = true;
            }
        }
        self.remove_batch_intents()?;
        // At once: a file brought back by a power cut would bring back
        // intents whose endpoints may be long gone.
        self.commit()
    }

    /// One line of `batch-intents`, or the intent a single attach or
    /// detach left in the commit log's page: an attach's (`attaching`)
    /// becomes the record of an endpoint that has none; a detach's
    /// (`detaching`) is written over the record it was made from, still
    /// there (the detach had not removed it yet). A dead batch's attach
    /// whose endpoint has its final record already is undone too
    /// ([`Locked::expand_batch_attach_intent`]): a batch is all or
    /// nothing. Any other line is passed over, and so is the intent of a
    /// namespace seen in another boot: the kernel it spoke of is gone (a
    /// file a power cut kept while the log's page lost its announcement,
    /// found by a later batch).
    pub(super) fn expand_line(
        &self,
        line: &[u8],
        known: &mut Option<(String, bool)>,
        expanding: Expanding,
    ) -> Result<(), StoreError> {
        let Some(intent) = intent_record(line).filter(|record| {
            matches!(
                record.state,
                EndpointState::Attaching | EndpointState::Detaching
            )
        }) else {
            return Ok(());
        };
        if let Some(seen) = intent.netns_id.and_then(|id| id.boot) {
            let this = self.state.boot_id(&mut self.handles.log())?;
            if seen != crate::store::records::boot_mark(&this) {
                return Ok(());
            }
        }
        let recorded = match known {
            Some((id, recorded)) if *id == intent.network_id => *recorded,
            _ => {
                let recorded = match self.network(&intent.network_id) {
                    Ok(found) => found.is_some(),
                    Err(StoreError::Corrupt(_) | StoreError::Refused(_)) => true,
                    Err(error) => return Err(error),
                };
                *known = Some((intent.network_id.clone(), recorded));
                recorded
            }
        };
        if !recorded {
            return Ok(());
        }
        if intent.state == EndpointState::Detaching {
            return self.expand_detach_intent(&intent);
        }
        if expanding == Expanding::DeadBatch {
            return self.expand_batch_attach_intent(&intent);
        }
        // A damaged or refused record is kept, as everywhere.
        match self.has_endpoint_record(&intent.network_id, &intent.id)? {
            true => Ok(()),
            false => self.put_attach_intent(&intent),
        }
    }

    /// An attach intent made the endpoint's record.
    fn put_attach_intent(&self, intent: &EndpointRecord) -> Result<(), StoreError> {
        // Test builds: the disk refusing this write, so that what holds
        // an intent it could not make a record is seen.
        self.put_endpoint_unless_refused("store: attach intent not written", intent)
    }

    /// [`Locked::put_endpoint`] of `record`, or, in test builds asked for
    /// it ([`crate::fault::io_refused`] of `point`), the disk refusing
    /// that write.
    fn put_endpoint_unless_refused(
        &self,
        point: &'static str,
        record: &EndpointRecord,
    ) -> Result<(), StoreError> {
        crate::fault::io_refused(point).map_err(|e| {
            let path = self.endpoint_path(&record.network_id, &record.id);
            StoreError::io("writing", &path)(e)
        })?;
        self.put_endpoint(record)
    }

    /// An attach line of a batch that died: the endpoint's intent record
    /// when it has no record, as for a single attach; and when the batch
    /// had written its final record already (the same endpoint: made at
    /// the same time, of the same namespace, `attached`), that record
    /// written again marked `detaching`, with its own index and MAC (a
    /// retried create's index, not the line's), so that `restore` detaches
    /// it as it undoes the endpoints the batch did not finish. The batch
    /// removes its file only once every final record is written, so a
    /// dead batch is undone whole, and one that got that far is kept
    /// whole: never some of its targets attached. A record in any other
    /// state (an intent of its own, written for a retried create), damaged
    /// or refused is kept, as everywhere.
    fn expand_batch_attach_intent(&self, intent: &EndpointRecord) -> Result<(), StoreError> {
        match self.endpoint(&intent.network_id, &intent.id) {
            Ok(Some(record))
                if record.state == EndpointState::Attached
                    && record.created == intent.created
                    && record.netns_id == intent.netns_id =>
            {
                let undone = EndpointRecord {
                    state: EndpointState::Detaching,
                    ..record
                };
                self.put_endpoint_unless_refused("store: batch undo not written", &undone)
            }
            Ok(Some(_)) | Err(StoreError::Corrupt { .. } | StoreError::Refused { .. }) => Ok(()),
            Ok(None) | Err(StoreError::InvalidName { .. }) => self.put_attach_intent(intent),
            Err(error) => Err(error),
        }
    }

    /// A detach's intent, made from the endpoint's record: written over
    /// that record when it is still there, as the same endpoint (made at
    /// the same time, on the same index) and not marked `detaching`
    /// already. A record that is gone was removed by the detach, which had
    /// done its kernel work; a damaged or refused one is kept, as
    /// everywhere.
    pub(super) fn expand_detach_intent(&self, intent: &EndpointRecord) -> Result<(), StoreError> {
        match self.endpoint(&intent.network_id, &intent.id) {
            Ok(Some(record))
                if record.state != EndpointState::Detaching
                    && record.created == intent.created
                    && record.ifindex == intent.ifindex =>
            {
                // Test builds: the disk refusing this one write while later
                // ones go through, so that what `restore` does with an
                // intent it holds but could not write is seen on its own.
                self.put_endpoint_unless_refused("store: detach intent not written", intent)
            }
            Ok(_) | Err(StoreError::Corrupt { .. } | StoreError::Refused { .. }) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// The endpoint record a line of `batch-intents` or the commit log's page
/// holds; `None` when it holds none (cut short, or none of ours).
pub(super) fn intent_record(line: &[u8]) -> Option<EndpointRecord> {
    let value = json::parse(std::str::from_utf8(line).ok()?).ok()?;
    EndpointRecord::from_json(&value).ok()
}
