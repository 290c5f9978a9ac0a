//! The commit log: a command's durable writes made durable by one
//! `fdatasync` of blocks that are already allocated and synced, instead of
//! a journal commit of the file system per new file.
//!
//! On ext4 the `fdatasync` of a new file (or of a file renamed into place)
//! commits the file system's journal and flushes the disk twice; a
//! `pwrite` into a block allocated and synced earlier, then `fdatasync`,
//! writes one block and flushes once (about 0.6 ms against 2 ms in the
//! project's VM). So a command writes its records as before (a reader sees
//! them at once, whole), leaves them unsynced, and makes them durable by
//! copying what it wrote into the log, in the store's lock file, synced
//! once. After a power cut the next command to take the lock (or
//! `restore`) finds the log written in another boot and writes every
//! record it holds again, in order, then syncs them and empties the log.
//!
//! # Layout (pages of 4,096 bytes of the lock file)
//!
//! ```text
//! page 0         the store's format mark (see `dir.rs`), never written here
//! pages 1 and 2  the log's generation, two copies written in turn, each
//!                only when the log is emptied, then synced: a torn one
//!                leaves the other
//! page 3         the volatile page: the generation it belongs to, the next
//!                free slot, the boot that wrote it last, whether a batch's
//!                intents file may exist, and the intent record of a single
//!                attach under way (its boot is then always this one's);
//!                rewritten by every commit, never relied on after a power
//!                cut
//! pages 4..      SLOTS slots; an entry starts at a slot and takes as many
//!                whole slots as it needs, so a page holding a committed
//!                entry is never written again while it counts
//! ```
//!
//! An entry holds its generation and its first slot, so one left from an
//! earlier generation (or torn) ends the log; the entries of the current
//! generation are the slots from 0 up to the first that is not one. All
//! integers are little-endian; every part carries a CRC-32 (IEEE) of its
//! bytes.
//!
//! # What makes it sound
//!
//! - The log only ever holds the newest durable version of what it names:
//!   every commit that does not go through it (one of more changes than
//!   a commit holds for it, longer than the log has room for, a change
//!   longer than an entry, a log that is full or was marked so) first
//!   makes everything durable with one `syncfs` and
//!   then empties the log, so an entry is never older than a synced file
//!   it would overwrite.
//! - Within one boot the page cache holds every file as the log says (the
//!   log was written after them), so the log is only read back in another
//!   boot, which a new boot id tells: after any reboot (a power cut or a
//!   crash of the kernel may have taken pages; after a clean one, writing
//!   them again changes nothing). The boot id
//!   (`/proc/sys/kernel/random/boot_id`) is read by a command whose lock
//!   finds entries (or an intent) in the log, or that commits.
//! - A failed write or sync of the log leaves it marked full, so the next
//!   commit syncs everything and empties it: pages the kernel took for
//!   written may never have reached the disk, and an entry after such a
//!   hole would be passed over.
//! - A command killed or cut between its writes and its entry did not
//!   return: its files may be old or new, as without the log. A commit
//!   longer than one entry is several in a row: cut among them, the
//!   entries before the cut keep some of its files new (a `syncfs` cut
//!   short keeps any of them). Each entry after a commit's first carries
//!   the CRC-32 of the entry before it, so the later entries of a commit
//!   killed before its volatile page, which the next commits write over
//!   from its first slot on, are never read as the log's next entries.

use std::io;
use std::os::unix::fs::FileExt;

/// Bytes of a page, a slot and the unit of every write of the log.
pub(super) const PAGE: usize = 4096;
/// The page of the first generation copy (the second follows).
const GENERATION_PAGE: u64 = 1;
/// The volatile page.
const VOLATILE_PAGE: u64 = 3;
/// The page of slot 0.
const FIRST_SLOT_PAGE: u64 = 4;
/// Slots in the log: a log fills after this many one-slot commits, and
/// the commit that finds it full syncs the file system and empties it.
pub(super) const SLOTS: u32 = 64;
/// The most slots one entry takes; a commit needing more is several
/// entries in a row.
pub(super) const ENTRY_SLOTS_MAX: u32 = 8;
/// The most bytes of changes one entry holds.
pub(super) const PAYLOAD_MAX: usize = ENTRY_SLOTS_MAX as usize * PAGE - ENTRY_HEADER;
/// The most bytes of changes one commit's entries hold, half the log's
/// (some two hundred endpoint records): past it a commit syncs the file
/// system. The changes are held in memory until the commit, so a batch of
/// a thousand holds no more than this before it gives them up; and a
/// commit that took the whole log would leave the next one to find it
/// full.
pub(super) const COMMIT_PAYLOAD_MAX: usize = (SLOTS / ENTRY_SLOTS_MAX / 2) as usize * PAYLOAD_MAX;
/// The lock file's length once the log is prepared.
pub(super) const PREPARED_LEN: u64 = (FIRST_SLOT_PAGE + SLOTS as u64) * PAGE as u64;

const GENERATION_MAGIC: &[u8; 8] = b"ipvlgen1";
const VOLATILE_MAGIC: &[u8; 8] = b"ipvlvol1";
const ENTRY_MAGIC: &[u8; 8] = b"ipvlent1";
/// Bytes of an entry's header: magic, generation, slot, payload length,
/// CRC-32, link: zero in the first (or only) entry of a commit, in each
/// later one the CRC-32 of the entry before it (see [`read_entries`]).
const ENTRY_HEADER: usize = 32;
/// Bytes of a boot id as the kernel prints it (without the newline).
pub(super) const BOOT_ID_LEN: usize = 36;

/// What the kernel calls this boot (`/proc/sys/kernel/random/boot_id`).
pub(super) use super::records::BootId;

/// Where the kernel says which boot this is.
pub(super) const BOOT_ID_PATH: &std::ffi::CStr = c"/proc/sys/kernel/random/boot_id";

/// CRC-32 (IEEE 802.3, reflected, as zlib's `crc32`) of `parts` in turn.
///
/// Eight bytes a step through eight tables ("slicing by 8"): a byte a step
/// through one table cost six instructions a byte, some 5% of a batch
/// connect's (its commit holds every target's record); this costs about
/// two, for 7 KiB more of tables.
fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for part in parts {
        let mut words = part.chunks_exact(8);
        for word in &mut words {
            let low = crc ^ u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            let high = u32::from_le_bytes([word[4], word[5], word[6], word[7]]);
            crc = CRC_TABLES[7][(low & 0xff) as usize]
                ^ CRC_TABLES[6][((low >> 8) & 0xff) as usize]
                ^ CRC_TABLES[5][((low >> 16) & 0xff) as usize]
                ^ CRC_TABLES[4][(low >> 24) as usize]
                ^ CRC_TABLES[3][(high & 0xff) as usize]
                ^ CRC_TABLES[2][((high >> 8) & 0xff) as usize]
                ^ CRC_TABLES[1][((high >> 16) & 0xff) as usize]
                ^ CRC_TABLES[0][(high >> 24) as usize];
        }
        for &byte in words.remainder() {
            crc = CRC_TABLES[0][((crc ^ byte as u32) & 0xff) as usize] ^ (crc >> 8);
        }
    }
    !crc
}

/// `CRC_TABLES[0]` is the byte-at-a-time table of the reflected polynomial
/// 0xEDB88320; `CRC_TABLES[k][i]` is the CRC of byte `i` followed by `k`
/// zero bytes, so that eight table lookups advance the CRC eight bytes.
const CRC_TABLES: [[u32; 256]; 8] = {
    let mut tables = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        tables[0][i] = c;
        i += 1;
    }
    let mut t = 1;
    while t < 8 {
        let mut i = 0;
        while i < 256 {
            let previous = tables[t - 1][i];
            tables[t][i] = tables[0][(previous & 0xff) as usize] ^ (previous >> 8);
            i += 1;
        }
        t += 1;
    }
    tables
};

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight bytes"))
}

/// A generation copy: magic, generation, CRC-32 of the 16 bytes before.
fn encode_generation(generation: u64) -> [u8; 20] {
    let mut out = [0u8; 20];
    out[..8].copy_from_slice(GENERATION_MAGIC);
    out[8..16].copy_from_slice(&generation.to_le_bytes());
    let crc = crc32(&[&out[..16]]);
    out[16..].copy_from_slice(&crc.to_le_bytes());
    out
}

fn parse_generation(page: &[u8]) -> Option<u64> {
    let bytes = page.get(..20)?;
    (&bytes[..8] == GENERATION_MAGIC && crc32(&[&bytes[..16]]) == u32_at(bytes, 16))
        .then(|| u64_at(bytes, 8))
}

/// The volatile page: what the last commit of this boot left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Volatile {
    /// The generation its slots belong to.
    pub generation: u64,
    /// The next free slot (the number of entries of the generation).
    pub tail: u32,
    /// A batch may have left its intents file (`batch-intents`).
    pub batch_intents: bool,
    /// A command of the page's boot is changing durable files its last
    /// commit did not make durable: written (with this boot's id) before
    /// the first such change after a commit, and gone with the commit's
    /// rewrite of the page. A lock that finds it (in its own boot) follows
    /// a command that died uncommitted: what it left is durable only once
    /// a sync covers it (a later command's entry covers that command's
    /// changes alone), and may be newer than the log's version of the
    /// same file, which a replay after a reboot would write back over it
    /// and over what later commands built on it; that lock makes
    /// everything durable and empties the log first (`dir/commit.rs`).
    /// Older versions read only the flags' first bit.
    pub changing: bool,
    /// The boot that wrote the page.
    pub boot: BootId,
}

/// Bytes of the volatile page's fixed part: magic, generation, tail,
/// flags, boot id, the length of the single attach's or detach's intent.
const VOLATILE_FIXED: usize = 8 + 8 + 4 + 4 + BOOT_ID_LEN + 4;
/// The longest intent record the volatile page holds (its fixed part and
/// CRC-32 take the rest).
pub(super) const INTENT_MAX: usize = PAGE - VOLATILE_FIXED - 4;

impl Volatile {
    /// The page's bytes, with `intent` (the intent record of a single
    /// attach under way, compact JSON; empty: none), then a CRC-32 of all,
    /// then zeros to the page's end (nothing of an earlier intent is left).
    fn encode(&self, intent: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; PAGE.max(VOLATILE_FIXED + intent.len() + 4)];
        out[..8].copy_from_slice(VOLATILE_MAGIC);
        out[8..16].copy_from_slice(&self.generation.to_le_bytes());
        out[16..20].copy_from_slice(&self.tail.to_le_bytes());
        let flags = u32::from(self.batch_intents) | u32::from(self.changing) << 1;
        out[20..24].copy_from_slice(&flags.to_le_bytes());
        out[24..24 + BOOT_ID_LEN].copy_from_slice(&self.boot);
        out[VOLATILE_FIXED - 4..VOLATILE_FIXED]
            .copy_from_slice(&(intent.len() as u32).to_le_bytes());
        out[VOLATILE_FIXED..VOLATILE_FIXED + intent.len()].copy_from_slice(intent);
        let end = VOLATILE_FIXED + intent.len();
        let crc = crc32(&[&out[..end]]);
        out[end..end + 4].copy_from_slice(&crc.to_le_bytes());
        out
    }

    /// The page's fields and its intent (empty: none); `None` when it is
    /// not a whole volatile page.
    fn parse(page: &[u8]) -> Option<(Volatile, &[u8])> {
        let fixed = page.get(..VOLATILE_FIXED)?;
        if &fixed[..8] != VOLATILE_MAGIC {
            return None;
        }
        let len = u32_at(fixed, VOLATILE_FIXED - 4) as usize;
        if len > INTENT_MAX {
            return None;
        }
        let end = VOLATILE_FIXED + len;
        if crc32(&[page.get(..end)?]) != u32_at(page.get(end..end + 4)?, 0) {
            return None;
        }
        let tail = u32_at(fixed, 16);
        (tail <= SLOTS).then(|| {
            let volatile = Volatile {
                generation: u64_at(fixed, 8),
                tail,
                batch_intents: u32_at(fixed, 20) & 1 != 0,
                changing: u32_at(fixed, 20) & 2 != 0,
                boot: fixed[24..24 + BOOT_ID_LEN].try_into().expect("boot id"),
            };
            (volatile, &page[VOLATILE_FIXED..end])
        })
    }
}

/// The log as the lock file holds it when the lock is taken (one `pread`
/// of its pages 1 to 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Head {
    /// The current generation; `None`: no log (an older store, or one not
    /// prepared yet).
    pub generation: Option<u64>,
    /// The volatile page, when whole and of the current generation.
    pub volatile: Option<Volatile>,
}

impl Head {
    /// The head of a log whose volatile page, just written, is `volatile`.
    pub fn of(volatile: Volatile) -> Head {
        Head {
            generation: Some(volatile.generation),
            volatile: Some(volatile),
        }
    }

    /// Reads pages 1 to 3 of the lock file: the head, and the intent
    /// record of a single attach or detach its volatile page holds
    /// (empty: none).
    pub fn read(lock: &std::fs::File) -> io::Result<(Head, Vec<u8>)> {
        let mut pages = [0u8; 3 * PAGE];
        let mut got = 0;
        while got < pages.len() {
            match lock.read_at(
                &mut pages[got..],
                GENERATION_PAGE * PAGE as u64 + got as u64,
            ) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if got < pages.len() {
            let none = Head {
                generation: None,
                volatile: None,
            };
            return Ok((none, Vec::new()));
        }
        let (head, intent) = Head::parse(&pages);
        Ok((head, intent.to_vec()))
    }

    fn parse(pages: &[u8]) -> (Head, &[u8]) {
        let first = parse_generation(&pages[..PAGE]);
        let second = parse_generation(&pages[PAGE..2 * PAGE]);
        let generation = match (first, second) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let (volatile, intent) = match Volatile::parse(&pages[2 * PAGE..]) {
            Some((volatile, intent)) if Some(volatile.generation) == generation => {
                (Some(volatile), intent)
            }
            _ => (None, &[][..]),
        };
        let head = Head {
            generation,
            volatile,
        };
        (head, intent)
    }

    /// Whether the log may hold entries a power cut left to write again:
    /// its volatile page is lost or torn, or names entries.
    pub fn may_hold_entries(&self) -> bool {
        self.generation.is_some() && self.volatile.map_or(true, |v| v.tail > 0)
    }
}

/// One change an entry makes durable, by path relative to the store's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Change {
    /// The file at the path holds these bytes.
    Written(String, Vec<u8>),
    /// The file at the path is gone.
    Removed(String),
    /// The directory at the path is gone, with everything in it.
    RemovedTree(String),
}

const WRITTEN: u8 = b'W';
const REMOVED: u8 = b'R';
const REMOVED_TREE: u8 = b'T';

/// An entry's payload: its changes in order. `None` when a path is longer
/// than 65,535 bytes (the caller commits otherwise).
pub(super) fn encode_changes(changes: &[Change]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for change in changes {
        let (kind, path) = match change {
            Change::Written(path, _) => (WRITTEN, path),
            Change::Removed(path) => (REMOVED, path),
            Change::RemovedTree(path) => (REMOVED_TREE, path),
        };
        out.push(kind);
        out.extend_from_slice(&u16::try_from(path.len()).ok()?.to_le_bytes());
        out.extend_from_slice(path.as_bytes());
        if let Change::Written(_, contents) = change {
            out.extend_from_slice(&u32::try_from(contents.len()).ok()?.to_le_bytes());
            out.extend_from_slice(contents);
        }
    }
    Some(out)
}

/// The changes of a payload; `None` when it does not parse to its end.
pub(super) fn parse_changes(payload: &[u8]) -> Option<Vec<Change>> {
    let mut changes = Vec::new();
    each_change(payload, &mut |kind, path, contents| {
        let path = path.to_string();
        changes.push(match kind {
            WRITTEN => Change::Written(path, contents.to_vec()),
            REMOVED => Change::Removed(path),
            _ => Change::RemovedTree(path),
        });
    })?;
    Some(changes)
}

/// Hands each change of a payload to `each` (its kind, path and, for a
/// file written, contents) without copying them; `None` when the payload
/// does not parse to its end (the changes before were handed on).
fn each_change(mut payload: &[u8], each: &mut dyn FnMut(u8, &str, &[u8])) -> Option<()> {
    fn take<'a>(bytes: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (bytes.get(..n)?, bytes.get(n..)?);
        *bytes = rest;
        Some(head)
    }
    while let Some((&kind, rest)) = payload.split_first() {
        payload = rest;
        let len = u16::from_le_bytes(take(&mut payload, 2)?.try_into().ok()?) as usize;
        let path = std::str::from_utf8(take(&mut payload, len)?).ok()?;
        match kind {
            WRITTEN => {
                let len = u32::from_le_bytes(take(&mut payload, 4)?.try_into().ok()?) as usize;
                each(kind, path, take(&mut payload, len)?);
            }
            REMOVED | REMOVED_TREE => each(kind, path, &[]),
            _ => return None,
        }
    }
    Some(())
}

/// Slots an entry with `payload_len` bytes of payload takes.
pub(super) fn slots_for(payload_len: usize) -> u32 {
    (ENTRY_HEADER + payload_len).div_ceil(PAGE) as u32
}

/// The entry of `payload` as written at `slot`: header (`link` as
/// [`ENTRY_HEADER`] says) and payload, padded to whole slots with zeros.
fn encode_entry(generation: u64, slot: u32, payload: &[u8], link: u32) -> Vec<u8> {
    let len = slots_for(payload.len()) as usize * PAGE;
    let mut out = vec![0u8; len];
    out[..8].copy_from_slice(ENTRY_MAGIC);
    out[8..16].copy_from_slice(&generation.to_le_bytes());
    out[16..20].copy_from_slice(&slot.to_le_bytes());
    out[20..24].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    out[28..32].copy_from_slice(&link.to_le_bytes());
    let crc = entry_crc(&out, payload);
    out[24..28].copy_from_slice(&crc.to_le_bytes());
    out[ENTRY_HEADER..ENTRY_HEADER + payload.len()].copy_from_slice(payload);
    out
}

/// The CRC-32 an entry carries: of its header's first 24 bytes, its link
/// when it has one, and its payload. (Entries of a commit of one entry,
/// the only ones of earlier versions, have no link, and their CRC covers
/// what it always did.)
fn entry_crc(entry: &[u8], payload: &[u8]) -> u32 {
    let link = &entry[28..32];
    match u32_at(link, 0) {
        0 => crc32(&[&entry[..24], payload]),
        _ => crc32(&[&entry[..24], link, payload]),
    }
}

/// The payload length of the entry whose header is `header`, if it is one
/// of `generation` starting at `slot`.
fn entry_len(header: &[u8], generation: u64, slot: u32) -> Option<usize> {
    let header = header.get(..ENTRY_HEADER)?;
    (&header[..8] == ENTRY_MAGIC && u64_at(header, 8) == generation && u32_at(header, 16) == slot)
        .then(|| u32_at(header, 20) as usize)
        // Bounded before any sum with it: a damaged length near `u32::MAX`
        // must not wrap a 32-bit `usize`.
        .filter(|&len| len <= PAYLOAD_MAX)
}

fn slot_offset(slot: u32) -> u64 {
    (FIRST_SLOT_PAGE + slot as u64) * PAGE as u64
}

fn write_all_at(lock: &std::fs::File, bytes: &[u8], offset: u64) -> io::Result<()> {
    lock.write_all_at(bytes, offset)
}

/// Writes the entries of `payloads` in turn from `slot` on, then the
/// volatile page naming the slot after the last as the next free one, with
/// `intent` (see [`write_volatile_with`]; not synced: the caller's
/// `fdatasync` of the lock file makes them durable). A commit too long for
/// one entry is several, each after the first linked to the one before
/// it: a power cut that keeps only the first of them keeps some of the
/// command's changes, as a cut during the command itself may (the command
/// had not returned).
pub(super) fn append(
    lock: &std::fs::File,
    generation: u64,
    mut slot: u32,
    payloads: &[Vec<u8>],
    volatile: &Volatile,
    intent: &[u8],
) -> io::Result<()> {
    let mut link = 0;
    for payload in payloads {
        let entry = encode_entry(generation, slot, payload, link);
        write_all_at(lock, &entry, slot_offset(slot))?;
        crate::fault::point("store: after log entry");
        link = u32_at(&entry, 24);
        slot += slots_for(payload.len());
    }
    write_volatile_with(lock, volatile, intent)
}

/// Writes the volatile page (unsynced) holding no intent.
pub(super) fn write_volatile(lock: &std::fs::File, volatile: &Volatile) -> io::Result<()> {
    write_volatile_with(lock, volatile, &[])
}

/// Writes the volatile page (unsynced) holding `intent`, the intent record
/// of a single attach or detach under way (at most [`INTENT_MAX`] bytes): one
/// `pwrite` of less than a page, which a kill cannot cut short.
pub(super) fn write_volatile_with(
    lock: &std::fs::File,
    volatile: &Volatile,
    intent: &[u8],
) -> io::Result<()> {
    write_all_at(lock, &volatile.encode(intent), VOLATILE_PAGE * PAGE as u64)
}

/// Writes `generation` into the copy it owns (by its parity), unsynced.
pub(super) fn write_generation(lock: &std::fs::File, generation: u64) -> io::Result<()> {
    let page = GENERATION_PAGE + generation % 2;
    write_all_at(lock, &encode_generation(generation), page * PAGE as u64)
}

/// Grows the lock file to the log's length with written zeros (blocks
/// that an entry's `pwrite` later overwrites without allocating), with
/// generation `generation` and an empty volatile page; the caller syncs.
pub(super) fn prepare(lock: &std::fs::File, volatile: &Volatile) -> io::Result<()> {
    let zeros = vec![0u8; (PREPARED_LEN - GENERATION_PAGE * PAGE as u64) as usize];
    write_all_at(lock, &zeros, GENERATION_PAGE * PAGE as u64)?;
    write_generation(lock, volatile.generation)?;
    write_volatile(lock, volatile)
}

/// The changes of every entry of `generation`, in order, read slot by
/// slot from slot 0 up to the first that is not one of its entries whole.
pub(super) fn read_entries(lock: &std::fs::File, generation: u64) -> io::Result<Vec<Change>> {
    read_entries_from(lock, generation, 0)
}

/// Whether an entry of `generation` that a replay would read begins at
/// `slot`, the volatile page's tail: what a commit killed between its
/// entries and the page left there.
pub(super) fn entry_begins_at(
    lock: &std::fs::File,
    generation: u64,
    slot: u32,
) -> io::Result<bool> {
    // Up to the first change of an entry whole and parsed: nothing held.
    let mut begins = false;
    walk_entries(lock, generation, slot, &mut |payload| {
        let mut changes = 0;
        each_change(payload, &mut |_, _, _| changes += 1)?;
        begins = changes > 0;
        (!begins).then_some(())
    })?;
    Ok(begins)
}

/// Hands the path of each file the entries of `generation` write to
/// `each`, in order, as [`read_entries`] reads them, without holding
/// their contents or the changes: one entry at a time.
pub(super) fn each_written_path(
    lock: &std::fs::File,
    generation: u64,
    each: &mut dyn FnMut(&str),
) -> io::Result<()> {
    walk_entries(lock, generation, 0, &mut |payload| {
        // Parsed in full first: an entry that does not parse is where the
        // log ends, as for `read_entries`.
        each_change(payload, &mut |_, _, _| {})?;
        each_change(payload, &mut |kind, path, _| {
            if kind == WRITTEN {
                each(path)
            }
        })
    })
}

/// [`read_entries`] from `slot` on (an entry there the first of its
/// commit).
fn read_entries_from(lock: &std::fs::File, generation: u64, slot: u32) -> io::Result<Vec<Change>> {
    let mut changes = Vec::new();
    walk_entries(lock, generation, slot, &mut |payload| {
        changes.append(&mut parse_changes(payload)?);
        Some(())
    })?;
    Ok(changes)
}

/// Hands the payload of each entry of `generation` from `slot` on to
/// `each`, up to the first that is not one of its entries whole, or that
/// `each` refuses (`None`: it does not parse).
fn walk_entries(
    lock: &std::fs::File,
    generation: u64,
    mut slot: u32,
    each: &mut dyn FnMut(&[u8]) -> Option<()>,
) -> io::Result<()> {
    let mut page = vec![0u8; PAGE];
    let mut previous_crc = None;
    while slot < SLOTS {
        if lock.read_at(&mut page, slot_offset(slot))? < ENTRY_HEADER {
            break;
        }
        let Some(len) = entry_len(&page, generation, slot) else {
            break;
        };
        let taken = slots_for(len);
        if taken > ENTRY_SLOTS_MAX || slot + taken > SLOTS {
            break;
        }
        let mut entry = vec![0u8; taken as usize * PAGE];
        if lock.read_at(&mut entry, slot_offset(slot))? < ENTRY_HEADER + len {
            break;
        }
        let payload = &entry[ENTRY_HEADER..ENTRY_HEADER + len];
        if entry_crc(&entry, payload) != u32_at(&entry, 24) {
            break;
        }
        // A later entry of a commit follows the entry it was written
        // after, or it is what a killed commit left past the tail, whose
        // first entries later commits wrote over: passed over, with all
        // after it.
        let link = u32_at(&entry, 28);
        if link != 0 && Some(link) != previous_crc {
            break;
        }
        previous_crc = Some(u32_at(&entry, 24));
        if each(payload).is_none() {
            break;
        }
        slot += taken;
    }
    Ok(())
}

/// This boot's id, read once per process (a process lives in one boot):
/// the commit log's entries and the namespace identities of records both
/// name it. Its file is closed, or left to a command's exit
/// (`sys::done_with`), never kept: a program that goes on (an
/// init that unmounts `/proc` next) must not find it open.
pub fn this_boot() -> io::Result<BootId> {
    static THIS_BOOT: std::sync::OnceLock<BootId> = std::sync::OnceLock::new();
    if let Some(boot) = THIS_BOOT.get() {
        return Ok(*boot);
    }
    let (boot, file) = read_boot_id(BOOT_ID_PATH)?;
    crate::sys::done_with(file);
    Ok(*THIS_BOOT.get_or_init(|| boot))
}

/// This boot's id, read from `path` (one `openat`, one `read`; the
/// descriptor is returned for the caller to close or leave).
pub(super) fn read_boot_id(path: &std::ffi::CStr) -> io::Result<(BootId, std::fs::File)> {
    let fd = crate::sys::openat(None, path, libc::O_RDONLY | libc::O_NOCTTY, 0)?;
    let file = std::fs::File::from(fd);
    let mut bytes = [0u8; BOOT_ID_LEN + 1];
    let got = file.read_at(&mut bytes, 0)?;
    if got < BOOT_ID_LEN || !bytes[..BOOT_ID_LEN].iter().all(|b| b.is_ascii_graphic()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the boot id is not 36 printable characters",
        ));
    }
    Ok((bytes[..BOOT_ID_LEN].try_into().expect("boot id"), file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_zlibs() {
        assert_eq!(crc32(&[b"123456789"]), 0xCBF4_3926);
        assert_eq!(crc32(&[b"1234", b"56789"]), 0xCBF4_3926);
        assert_eq!(crc32(&[]), 0);
        assert_eq!(
            crc32(&[b"The quick brown fox jumps over the lazy dog"]),
            0x414F_A339
        );
    }

    /// Eight bytes a step agree with a bit at a time, over every length
    /// and split around the step's edges.
    #[test]
    fn crc32_by_eight_bytes_is_the_bitwise_crc() {
        fn bitwise(bytes: &[u8]) -> u32 {
            let mut crc = !0u32;
            for &byte in bytes {
                crc ^= byte as u32;
                for _ in 0..8 {
                    crc = if crc & 1 != 0 {
                        0xEDB8_8320 ^ (crc >> 1)
                    } else {
                        crc >> 1
                    };
                }
            }
            !crc
        }
        let data: Vec<u8> = (0..300u32).map(|i| (i * 131 + 7) as u8).collect();
        for len in 0..data.len() {
            let bytes = &data[..len];
            assert_eq!(crc32(&[bytes]), bitwise(bytes), "length {len}");
            let cut = len / 3;
            assert_eq!(
                crc32(&[&bytes[..cut], &bytes[cut..]]),
                bitwise(bytes),
                "length {len} cut at {cut}"
            );
        }
    }

    #[test]
    fn changes_round_trip_and_a_cut_payload_does_not_parse() {
        let changes = vec![
            Change::Written("endpoints/n/e.json".into(), b"{}\n".to_vec()),
            Change::Removed("records/containers/c.json".into()),
            Change::RemovedTree("endpoints/n".into()),
            Change::Written("networks/n.json".into(), Vec::new()),
        ];
        let payload = encode_changes(&changes).unwrap();
        assert_eq!(parse_changes(&payload), Some(changes));
        for cut in 1..payload.len() {
            let parsed = parse_changes(&payload[..cut]);
            assert!(
                parsed.as_ref().map_or(true, |p| p.len() < 4),
                "cut at {cut} parsed as {parsed:?}"
            );
        }
        assert_eq!(parse_changes(b"X\x01\x00a"), None);
    }

    fn pages(generations: [Option<u64>; 2], volatile: Option<Volatile>) -> Vec<u8> {
        let mut pages = vec![0u8; 3 * PAGE];
        for (i, generation) in generations.into_iter().enumerate() {
            if let Some(g) = generation {
                pages[i * PAGE..i * PAGE + 20].copy_from_slice(&encode_generation(g));
            }
        }
        if let Some(v) = volatile {
            let page = v.encode(b"");
            pages[2 * PAGE..2 * PAGE + page.len()].copy_from_slice(&page);
        }
        pages
    }

    #[test]
    fn an_entry_longer_than_any_written_is_no_entry() {
        let entry = encode_entry(7, 3, b"{}", 0);
        assert_eq!(entry_len(&entry, 7, 3), Some(2));
        assert_eq!(entry_len(&entry, 8, 3), None);
        let mut damaged = entry.clone();
        for len in [PAYLOAD_MAX as u32 + 1, u32::MAX - 16, u32::MAX] {
            damaged[20..24].copy_from_slice(&len.to_le_bytes());
            assert_eq!(entry_len(&damaged, 7, 3), None, "{len}");
        }
        damaged[20..24].copy_from_slice(&(PAYLOAD_MAX as u32).to_le_bytes());
        assert_eq!(entry_len(&damaged, 7, 3), Some(PAYLOAD_MAX));
    }

    #[test]
    fn the_head_takes_the_newest_whole_generation_and_only_its_volatile_page() {
        let volatile = |generation, tail| Volatile {
            generation,
            tail,
            batch_intents: true,
            changing: tail == 3,
            boot: [b'a'; BOOT_ID_LEN],
        };
        let head = Head::parse(&pages([Some(4), Some(5)], Some(volatile(5, 3)))).0;
        assert_eq!(head.generation, Some(5));
        assert_eq!(head.volatile, Some(volatile(5, 3)));
        assert!(head.may_hold_entries());
        // A volatile page of an older generation says nothing.
        let head = Head::parse(&pages([Some(6), Some(5)], Some(volatile(5, 0)))).0;
        assert_eq!((head.generation, head.volatile), (Some(6), None));
        assert!(head.may_hold_entries());
        // A torn copy leaves the other.
        let mut torn = pages([Some(6), Some(7)], Some(volatile(6, 0)));
        torn[PAGE + 9] ^= 1;
        let head = Head::parse(&torn).0;
        assert_eq!(head.generation, Some(6));
        assert!(!head.may_hold_entries());
        // No copy: no log.
        let head = Head::parse(&pages([None, None], Some(volatile(0, 1)))).0;
        assert_eq!(
            head,
            Head {
                generation: None,
                volatile: None
            }
        );
        assert!(!head.may_hold_entries());
        // A tail past the slots is no volatile page.
        assert_eq!(Volatile::parse(&volatile(1, SLOTS + 1).encode(b"")), None);
        // The intent of a single attach is kept whole, or the page is none.
        let v = volatile(2, 1);
        let mut page = v.encode(b"{\"id\":\"e1\"}");
        assert_eq!(page.len(), PAGE);
        assert_eq!(Volatile::parse(&page), Some((v, &b"{\"id\":\"e1\"}"[..])));
        page[VOLATILE_FIXED + 3] ^= 1;
        assert_eq!(Volatile::parse(&page), None);
        assert_eq!(v.encode(&[b'x'; INTENT_MAX]).len(), PAGE);
    }

    #[test]
    fn an_entry_is_found_only_at_its_slot_in_its_generation_and_whole() {
        let payload = encode_changes(&[Change::Removed("x".into())]).unwrap();
        let entry = encode_entry(9, 2, &payload, 0);
        assert_eq!(entry.len(), PAGE);
        assert_eq!(entry_len(&entry, 9, 2), Some(payload.len()));
        assert_eq!(entry_len(&entry, 8, 2), None);
        assert_eq!(entry_len(&entry, 9, 3), None);
        assert_eq!(slots_for(PAGE - ENTRY_HEADER), 1);
        assert_eq!(slots_for(PAGE - ENTRY_HEADER + 1), 2);
    }

    /// A commit of three entries read back whole; cut at a torn second
    /// entry, the first alone; and killed before its volatile page, its
    /// first entry then written over by a later commit of exactly its
    /// length: the later commit's entry alone, never the killed one's
    /// second and third, which a scan from slot 0 would otherwise take for
    /// the log's next entries.
    #[test]
    fn the_entries_of_a_commit_are_read_only_in_the_chain_they_were_written_in() {
        let path = std::env::temp_dir().join(format!("ipvlan-log-chain-{}", std::process::id()));
        let lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let _ = std::fs::remove_file(&path);
        let generation = 7;
        let volatile = |tail| Volatile {
            generation,
            tail,
            batch_intents: false,
            changing: false,
            boot: [b'a'; BOOT_ID_LEN],
        };
        prepare(&lock, &volatile(0)).unwrap();
        // A payload of one change of `name`, filling `slots` slots.
        let payload = |name: &str, slots: usize| {
            let size = slots * PAGE - ENTRY_HEADER - (1 + 2 + name.len() + 4);
            encode_changes(&[Change::Written(name.into(), vec![b'x'; size])]).unwrap()
        };
        let names = |changes: Vec<Change>| -> Vec<String> {
            changes
                .into_iter()
                .map(|change| match change {
                    Change::Written(name, _)
                    | Change::Removed(name)
                    | Change::RemovedTree(name) => name,
                })
                .collect()
        };
        let killed = [payload("k1", 8), payload("k2", 8), payload("k3", 1)];
        append(&lock, generation, 0, &killed, &volatile(17), &[]).unwrap();
        assert_eq!(
            names(read_entries(&lock, generation).unwrap()),
            ["k1", "k2", "k3"]
        );

        let mut torn = [0u8; 1];
        lock.read_exact_at(&mut torn, slot_offset(8) + 100).unwrap();
        lock.write_all_at(&[torn[0] ^ 1], slot_offset(8) + 100)
            .unwrap();
        assert_eq!(names(read_entries(&lock, generation).unwrap()), ["k1"]);
        lock.write_all_at(&torn, slot_offset(8) + 100).unwrap();

        // Killed before its page: the tail stayed 0, where the next
        // commit writes.
        append(
            &lock,
            generation,
            0,
            &[payload("later", 8)],
            &volatile(8),
            &[],
        )
        .unwrap();
        assert_eq!(names(read_entries(&lock, generation).unwrap()), ["later"]);
    }
}
