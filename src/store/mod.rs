//! The state directory (`/var/lib/ipvlan` unless `--state-dir` or
//! `IPVLAN_STATE_DIR` says otherwise).
//!
//! Layout (directories 0700, files 0600 except hosts files, whatever the
//! umask):
//!
//! ```text
//! lock                                    flock(2)ed by every writer; its content
//!                                         marks a store made by a version that
//!                                         files endpoints by namespace identity
//!                                         only (StateDir::by_identity_only)
//! host-id                                 random id when /etc/machine-id is missing
//! networks/<network id>.json              NetworkRecord
//! endpoints/<network id>/<endpoint id>.json   EndpointRecord
//! ipam/<network id>/<subnet>/<address>    exists = taken; holds the owner endpoint id
//! ipam/<network id>/<subnet>/cursor       last address handed out automatically
//! hosts/<network id>                      the network's hosts file (0644)
//! hosts/containers/<name>                 a container's union view (0644)
//! hosts/unions/<network id>/<name>        union markers
//! records/<kind>/<id>.json                generic records (e.g. containers)
//! logs/<name>.log                         output of background commands
//! ```
//!
//! What the store trusts (owner, write bits, no links followed, regular
//! files under a size limit) is described in `dir.rs`; listings return
//! the records they can read and a [`Damaged`] entry per file they cannot
//! ([`Listing`]), and never delete or rewrite such a file.
//!
//! `<subnet>` is `192.168.1.0-24`, `2001:db8::-64`. Every write is atomic
//! as other processes see it (temporary `.tmp-<name>` in the same
//! directory, then `renameat` or `linkat`) or, for hosts files, a
//! one-`write` append or line blanking, so a killed invocation never
//! leaves a half-written file. Readers take no lock (see [`StateDir`] for
//! what that guarantees). Records carry `"version": 1`; network, endpoint
//! and container records carry a `state` that is written before kernel
//! changes and updated after, the intent journal `restore` reads.
//!
//! # Durability
//!
//! A power cut resets the kernel, so a record of intent only has to
//! survive the death of the process, which the page cache does: no write
//! is synced when it is made. What a command wrote is made durable once,
//! by [`Locked::commit`] (called by the driver when the final state is
//! written, and by the guard's drop for whatever is left, before the lock
//! is released): `fdatasync` of the last version of each file written,
//! then `fsync` of each directory whose entries changed, once each. A new
//! directory is synced into its parent when made. When a command has
//! returned, its final state survives a power cut; a power cut during a
//! command leaves each file old, new, or (if new) missing, empty or
//! truncated, which readers report as damaged and never delete. Not
//! synced at all: the allocation cursor (a hint) and the hosts files
//! (they describe containers, which a power cut ends too). `syncfs(2)`
//! is not used: it flushes every tenant's dirty data on the file system.
//!
//! # System calls
//!
//! Each directory is opened once per command, at its first use, and
//! checked on its descriptor (`store/handles.rs`; `open` itself checks
//! only the root and that it holds the lock, made after the layout); a
//! record read is `openat`, `fstat`, `read`, `close` (no `fstatat` first:
//! see `fsutil::open_regular_at`); a write `openat`, `write`, `renameat`.

mod addresses;
mod dir;
mod error;
mod fsutil;
mod handles;
mod listing;
pub use fsutil::{
    append_line, blank_lines, create_dir, open_regular, read_capped, read_text_capped, refusal,
    remove_lines, HOSTS_MAX, RECORD_MAX,
};
pub use listing::{Damaged, Listing};
pub mod records;

pub use dir::{
    is_valid_name, random_hex, Locked, StateDir, DEFAULT_STATE_DIR, MACHINE_ID_PATH, STATE_DIR_ENV,
};
pub use error::StoreError;
pub use records::{ContainerRecord, ContainerState};
pub use records::{
    EndpointRecord, EndpointState, NetworkRecord, NetworkState, ParentOrigin, RecordError,
    Timestamp, RECORD_VERSION,
};
