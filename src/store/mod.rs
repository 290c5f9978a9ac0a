//! The state directory (`/var/lib/ipvlan` unless `--state-dir` or
//! `IPVLAN_STATE_DIR` says otherwise).
//!
//! Layout (directories 0700, files 0600 except hosts files, whatever the
//! umask):
//!
//! ```text
//! lock                                    flock(2)ed by every writer; its first
//!                                         page marks a store made by a version
//!                                         that files endpoints by namespace
//!                                         identity only (StateDir::by_identity_only);
//!                                         the pages after it, the commit log
//!                                         (`commit_log.rs`)
//! host-id                                 random id when /etc/machine-id is missing
//! settle-owed                             while a writeback failure of a file the
//!                                         commit log holds was seen and not made
//!                                         good (`dir/commit.rs`)
//! batch-intents                           the intent records of a batch attach, one
//!                                         JSON line each, while it runs (see
//!                                         `dir/batch_intents.rs`); one found when
//!                                         the lock is taken is turned into intent
//!                                         records of their own
//! networks/<network id>.json              NetworkRecord
//! endpoints/<network id>/<endpoint id>.json   EndpointRecord; an intent one
//!                                         flock(2)ed while its command runs
//!                                         without the lock
//!                                         (Locked::hold_endpoint)
//! names/<network name>                    -> <network id> (symbolic link), a hint
//! ipam/<network id>/<subnet>/<address>    exists = taken; -> <owner endpoint id>
//!                                         (symbolic link; a regular file holding
//!                                         the id in stores of older versions)
//! ipam/<network id>/<subnet>/cursor       last address handed out automatically
//! hosts/<network id>                      the network's hosts file (0644)
//! hosts/k/<network key>                   -> ../<network id> (symbolic link): its
//!                                         short name, which views link to
//!                                         (Locked::hosts_alias); derived
//! hosts/containers/<name>                 a container's union view (0644)
//! hosts/unions/<network id>/<name>        union markers
//! records/<kind>/<id>.json                generic records (e.g. containers); a
//!                                         derived one may be a symbolic link
//!                                         whose target is its text
//!                                         (Locked::put_derived_link: the
//!                                         driver's container index)
//! logs/<name>.log                         output of background commands
//! ```
//!
//! What the store trusts (owner, write bits, no links followed, regular
//! files under a size limit) is described in `dir.rs`; listings return
//! the records they can read and a [`Damaged`] entry per file they cannot
//! ([`Listing`]), and never delete or rewrite such a file (derived files,
//! below, excepted: `restore` rebuilds them).
//!
//! `<subnet>` is `192.168.1.0-24`, `2001:db8::-64`. Every write is atomic
//! as other processes see it (temporary `.tmp-<name>` in the same
//! directory, then `renameat`; or one `symlinkat`, for an address file,
//! a name hint and a container's index: a symbolic link whose target is
//! an id (an index: network keys and endpoint ids), which appears whole
//! or not at all and is only ever read by `readlinkat`, never followed,
//! its target checked) or, for hosts files, a
//! one-`write` append or line blanking, so a killed invocation never
//! leaves a half-written file (a write a kill cuts short at a page
//! boundary, a batch's long append, leaves a last line the next append
//! ends first, and `restore` rebuilds the hosts files). A file read as
//! missing under the lock (an endpoint's first record, a container's
//! first index) is instead made in place, `O_EXCL` and one `write`: a reader sees it missing, empty
//! (which reads as missing) or whole, and `restore` removes one a kill
//! left empty. The one exception is the allocation
//! cursor, a hint rewritten in place as one padded line (a rename over it
//! would start its writeback on ext4 at every allocation), which only
//! allocations read, under the lock; a torn one reads as no cursor. Readers take no lock (see [`StateDir`] for
//! what that guarantees). Records carry `"version": 1`; network, endpoint
//! and container records carry a `state` that is written before kernel
//! changes and updated after, the intent journal `restore` reads. An
//! endpoint's intent (`attaching`, `detaching`) may instead sit in the
//! commit log's page while its command runs (`dir/commit.rs`), or in a
//! batch's `batch-intents`: the next lock turns one a killed command left
//! into the record.
//!
//! # Durability
//!
//! A power cut resets the kernel, so a record of intent only has to
//! survive the death of the process, which the page cache does: no write
//! is synced when it is made. What a command wrote is made durable once,
//! by [`Locked::commit`] (called by the driver when the final state is
//! written, and by the guard's drop for whatever is left, before the lock
//! is released): one entry of the commit log in the lock file holding the
//! last version of each durable file written and each one removed, then
//! one `fdatasync` of the lock (`commit_log.rs`, `dir/commit.rs`); the next
//! lock taken in another boot writes them again, however many files they
//! are (a commit longer than one entry is several in a row). Past 256
//! changes, half the log (32 pages: some two hundred endpoint records) or
//! what it has room for, the commit is one `syncfs(2)` instead, and the
//! log is emptied; nothing else calls it, as it flushes every tenant's
//! dirty data on the file system. A store of an older version (its lock
//! empty) has no log: `fdatasync` of each durable file, then `fsync` of
//! each directory whose durable entries changed, or above 24 of them one
//! `syncfs(2)`. A new directory is synced into its parent when made.
//!
//! Durable, the source of truth: network records, endpoint records and
//! generic records (container records). Derived, never synced, rebuilt by
//! the driver's `restore` from the endpoint records: address files
//! (written and removed outside the commit, see `addresses.rs`), records
//! written with [`Locked::put_derived_record`] or
//! [`Locked::put_derived_text`] or [`Locked::put_derived_link`] (the
//! driver's container index), the allocation cursor, the network name
//! hints, the hosts files and their short names (made again by the next
//! view that needs one). A derived file but the cursor is still replaced atomically, so
//! a killed command leaves it whole.
//!
//! When a command has returned, its durable state survives a power cut (in
//! the files once the next lock has written again what the log holds); a
//! power cut during a command leaves each file old, new, or (if new)
//! missing, empty or truncated. An empty record reads as missing; a
//! truncated one is damage, reported, never deleted. A derived file may
//! also be lost, empty, torn or older: an address file that names no
//! owner keeps its address taken until [`Locked::release_orphans`] frees
//! it, [`Locked::restore_address`] makes an endpoint's again, and an
//! unreadable derived record is no damage (its reader takes it for
//! empty).
//!
//! # System calls
//!
//! Each directory is opened once per command, at its first use, and
//! checked on its descriptor; below a private root only a directory whose
//! descriptor is needed is opened, unchecked, and files are reached by
//! their path from the root (`store/handles.rs`; `open` itself checks
//! only the root and that it holds the lock, made after the layout); a
//! record read is `openat`, `fstat`, `read`, `close` (no `fstatat` first:
//! see `fsutil::open_regular_at`); a write `openat`, `write`, `renameat`;
//! taking an address or writing a container's index one `symlinkat`,
//! reading an owner, a name hint or an index one `readlinkat`; an allocation opens its subnet's cursor once, to
//! read it and write it back, and later allocations under the same lock
//! (a batch's) use that descriptor and what it read.

mod addresses;
mod commit_log;
mod dir;
mod error;
mod fsutil;
mod handles;
mod listing;
pub use fsutil::{
    append_line, append_lines, blank_lines, check_dir, create_dir, lines_of, open_regular,
    read_bytes_capped, read_capped, read_text_capped, refusal, remove_lines, whole_text_lines,
    HOSTS_MAX, RECORD_MAX,
};
pub use listing::{Damaged, Listing};
pub mod records;
pub use commit_log::this_boot;

pub use dir::{
    random_hex, AddressRepair, EndpointHold, Locked, SavedCursor, StateDir, DEFAULT_STATE_DIR,
    DERIVED_LINK_MAX, MACHINE_ID_PATH, STATE_DIR_ENV,
};
pub use error::{BadName, FileFault, IoFailure, StoreError};
pub use fsutil::Entry as StoredEntry;
pub use records::{is_valid_name, ContainerRecord, ContainerState};
pub use records::{
    EndpointRecord, EndpointState, NetworkRecord, NetworkState, ParentOrigin, RecordError,
    Timestamp, RECORD_VERSION,
};
