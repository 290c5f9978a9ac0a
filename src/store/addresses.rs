//! Address files: `ipam/<network id>/<subnet key>/<address>` exists while
//! the address is taken and names its owner (an endpoint id): a symbolic
//! link whose target is the owner, made by one `symlinkat` (atomic, and
//! `EEXIST` when the address is taken, so allocation never reads the
//! other addresses) and read by `readlinkat`, never followed. Stores made
//! by older versions hold regular files with the owner as their content,
//! read as before. `cursor` beside them holds the last address handed out.

use std::io;
use std::net::IpAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::fsutil;
use super::handles::{Handles, HeldCursor};
use super::StoreError;
use crate::ipam::{AddressBook, SubnetSpec};

/// Name of the cursor file in a subnet directory.
pub const CURSOR_FILE: &str = "cursor";
/// The width the cursor's line is padded to: the longest IPv6 text, a
/// space and the longest count of addresses freed (a `u32`).
const CURSOR_WIDTH: usize = 39 + 1 + 10;

/// The directory of one subnet of one network.
pub fn subnet_dir(network_dir: &Path, subnet: &SubnetSpec) -> PathBuf {
    fsutil::under(network_dir, &[&subnet.key()], "")
}

/// An [`AddressBook`] on disk for one network. Used under the store lock.
/// Nothing it writes or removes is part of the lock's commit: address
/// files are derived from the endpoint records, which are, and `restore`
/// rebuilds them after a power cut (see the store's durability rules).
pub(crate) struct DiskBook<'a> {
    state: &'a Handles,
    network_dir: PathBuf,
    /// The cursor of the subnet last read, open read-write, so that the
    /// allocation that read it rewrites it on the same descriptor; handed
    /// to the lock's holder by [`DiskBook::finish`] for the next one.
    cursor: Option<HeldCursor>,
    /// The directory of the subnet last named: an allocation names it
    /// five or six times (cursor, freed count, take, set cursor), and
    /// writing its path cost 5% of a batch target's instructions.
    last_dir: Option<(ipnet::IpNet, PathBuf)>,
}

impl<'a> DiskBook<'a> {
    pub(crate) fn new(state: &'a Handles, network_dir: PathBuf) -> Self {
        DiskBook {
            state,
            network_dir,
            cursor: None,
            last_dir: None,
        }
    }

    /// [`subnet_dir`] of `subnet` in this book's network.
    fn subnet_dir(&mut self, subnet: &SubnetSpec) -> PathBuf {
        match &self.last_dir {
            Some((net, dir)) if *net == subnet.subnet => dir.clone(),
            _ => {
                let dir = subnet_dir(&self.network_dir, subnet);
                self.last_dir = Some((subnet.subnet, dir.clone()));
                dir
            }
        }
    }

    /// Hands the cursor's descriptor, and what it holds, to the lock's
    /// holder for the next allocation (see [`Handles::keep_cursor`]);
    /// nothing is left to undo (a taken check leaves no file behind).
    pub(crate) fn finish(&mut self) -> Result<(), StoreError> {
        if let Some(cursor) = self.cursor.take() {
            self.state.keep_cursor(cursor);
        }
        Ok(())
    }
}

/// A book dropped on an error path still hands its cursor back, so a move
/// it made is written when the lock lets it go.
impl Drop for DiskBook<'_> {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

impl DiskBook<'_> {
    /// Removes `subnet`'s cursor, if there is one (the walk starts over).
    pub(crate) fn clear_cursor(&mut self, subnet: &SubnetSpec) -> Result<(), StoreError> {
        let dir = self.subnet_dir(subnet);
        // Another subnet's cursor this book holds goes back to the lock's
        // holder, to be written; this one's, held here or there, goes
        // with its file.
        if let Some(other) = self.cursor.take() {
            if !super::fsutil::same_path(&other.dir, &dir) {
                self.state.keep_cursor(other);
            }
        }
        drop(self.state.take_cursor(&dir));
        let Some(at) = self.state.reach(&dir)? else {
            return Ok(());
        };
        let path = dir.join(CURSOR_FILE);
        let name = at
            .c_entry(CURSOR_FILE)
            .map_err(StoreError::io("removing", &path))?;
        fsutil::remove_at(at.fd(), &name)
            .map_err(|e| self.state.explain(&dir, e, "removing", &path))?;
        Ok(())
    }
}

impl HeldCursor {
    /// Writes the address an allocation moved the cursor to, if one did.
    ///
    /// A hint: after a power cut, or a command killed before its lock let
    /// the cursor go, an old, empty, torn or missing cursor only means the
    /// walk starts elsewhere (and finds the addresses taken since). So it
    /// is left out of the commit, a failure to write it fails nothing, and
    /// it is written in place rather than replaced by a rename: on ext4 a
    /// rename over an existing file starts the new file's writeback at once
    /// (`auto_da_alloc`), about 1 ms of every connect in the project's VM
    /// for a file nobody syncs. Padded to one width (an IPv6 address has at
    /// most 39 characters), each line covers the one before whole; only
    /// allocations, under the lock, read it.
    pub(crate) fn write_if_moved(&self) {
        if self.unwritten {
            let _ = self.write();
        }
    }

    /// Writes the address the cursor holds.
    fn write(&self) -> io::Result<()> {
        let Some(addr) = self.value else {
            return Ok(());
        };
        // The address and the count of addresses freed, if any, padded
        // with spaces to the cursor's width. (An older version reads a
        // count as a cursor that does not parse: its walk starts over.)
        let mut line = crate::digits::ip_text(addr);
        if self.freed > 0 {
            line.push(' ');
            line.push_str(&self.freed.to_string());
        }
        while line.len() < CURSOR_WIDTH {
            line.push(' ');
        }
        line.push('\n');
        crate::fault::point("store: before write");
        let written = self.file.write_all_at(line.as_bytes(), 0);
        crate::fault::after("store: after write", written)
    }
}

impl AddressBook for DiskBook<'_> {
    type Error = StoreError;

    fn cursor(&mut self, subnet: &SubnetSpec) -> Result<Option<IpAddr>, StoreError> {
        let dir = self.subnet_dir(subnet);
        self.finish()?;
        // Read or written by an allocation before under this lock.
        if let Some(held) = self.state.take_cursor(&dir) {
            let value = held.value;
            self.cursor = Some(held);
            return Ok(value);
        }
        let Some(at) = self.state.reach(&dir)? else {
            return Ok(None);
        };
        // Opened read-write, so the allocation's `set_cursor` writes on
        // this descriptor: one open for both. The cursor is only a hint:
        // one that does not parse (not even as UTF-8), or is refused,
        // means "start over".
        let path = dir.join(CURSOR_FILE);
        let name = at
            .c_entry(CURSOR_FILE)
            .map_err(StoreError::io("reading", &path))?;
        let (mut file, len) = match fsutil::open_regular_at(at.fd(), &name, libc::O_RDWR, 0) {
            Ok(found) => found,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok(None),
            Err(e) => return Err(self.state.explain(&dir, e, "reading", &path)),
        };
        let text = match fsutil::read_text_opened(&mut file, len, fsutil::RECORD_MAX) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => None,
            Err(e) => return Err(StoreError::io("reading", &path)(e)),
        };
        // The address, then the count of addresses freed if there is one.
        // The first line alone: an older version's shorter line written
        // over a longer one leaves that one's tail after it.
        let (value, freed) = text
            .and_then(|text| {
                let text = text.lines().next().unwrap_or_default().trim();
                let (value, freed) = text.split_once(' ').unwrap_or((text, "0"));
                Some((Some(value.parse().ok()?), freed.trim_start().parse().ok()?))
            })
            .unwrap_or((None, 0));
        self.cursor = Some(HeldCursor {
            dir,
            file,
            value,
            freed,
            unwritten: false,
        });
        Ok(value)
    }

    fn freed(&mut self, subnet: &SubnetSpec) -> Result<u32, StoreError> {
        let dir = self.subnet_dir(subnet);
        let held = |book: &Self| {
            book.cursor
                .as_ref()
                .is_some_and(|held| super::fsutil::same_path(&held.dir, &dir))
        };
        // Read with the cursor: held once `cursor` has read it (none, and
        // so no count, where there is no cursor file).
        if !held(self) {
            self.cursor(subnet)?;
        }
        Ok(self.cursor.as_ref().map_or(0, |held| held.freed))
    }

    fn set_cursor(&mut self, subnet: &SubnetSpec, addr: IpAddr) -> Result<(), StoreError> {
        self.set_cursor_counting(subnet, addr, 0)
    }

    fn set_cursor_counting(
        &mut self,
        subnet: &SubnetSpec,
        addr: IpAddr,
        freed: u32,
    ) -> Result<(), StoreError> {
        let dir = self.subnet_dir(subnet);
        // A cursor this lock read is written when the lock lets it go
        // ([`HeldCursor::write_if_moved`]): a batch's allocations move it
        // once each and write it once. One opened here (made when
        // missing) is written at once, so that no cursor is left empty for
        // a whole command. It is a hint: one that cannot be made or
        // written (something else in its place, a full disk) is lost, and
        // the allocation stands. Failing it instead left the address just
        // taken without an owner (the caller gives back only what an
        // allocation returned), one more at every attempt.
        let cursor = match self.cursor.take() {
            // Read by this allocation: checked (regular, in our checked
            // directory) when it was opened.
            Some(held) if super::fsutil::same_path(&held.dir, &dir) => HeldCursor {
                value: Some(addr),
                freed,
                unwritten: true,
                ..held
            },
            other => {
                if let Some(other) = other {
                    self.state.keep_cursor(other);
                }
                // One held for this directory (moved by an earlier
                // allocation, unwritten) is superseded: written at the
                // lock's end, it would undo this one.
                drop(self.state.take_cursor(&dir));
                let path = dir.join(CURSOR_FILE);
                let Ok((file, _)) = self.state.write_in(&dir, "writing", &path, |at| {
                    fsutil::open_regular_at(
                        at.fd(),
                        &at.c_entry(CURSOR_FILE)?,
                        libc::O_RDWR | libc::O_CREAT,
                        fsutil::FILE_MODE,
                    )
                }) else {
                    return Ok(());
                };
                let cursor = HeldCursor {
                    dir,
                    file,
                    value: Some(addr),
                    freed,
                    unwritten: false,
                };
                if cursor.write().is_err() {
                    return Ok(());
                }
                cursor
            }
        };
        self.cursor = Some(cursor);
        Ok(())
    }

    fn take(&mut self, subnet: &SubnetSpec, addr: IpAddr, owner: &str) -> Result<bool, StoreError> {
        let dir = self.subnet_dir(subnet);
        // The subnet directory is made on first use (with `ipam/<network
        // id>`): a network without allocations has none.
        let name = crate::digits::ip_text(addr);
        let target = dir.join(&name);
        // Derived from the endpoint records, so not part of the commit:
        // `restore` makes it again after a power cut.
        self.state.write_in(&dir, "creating", &target, |at| {
            fsutil::symlink_new_at(at.fd(), owner, &at.c_entry(&name)?)
        })
    }

    fn release(&mut self, subnet: &SubnetSpec, addr: IpAddr) -> Result<bool, StoreError> {
        let dir = self.subnet_dir(subnet);
        let name = crate::digits::ip_text(addr);
        let target = dir.join(&name);
        let Some(at) = self.state.reach(&dir)? else {
            return Ok(false);
        };
        let name = at
            .c_entry(&name)
            .map_err(StoreError::io("removing", &target))?;
        // Not part of the commit either (see `take`): an address file a
        // power cut brings back names an owner without a record, which
        // `restore` releases.
        fsutil::remove_at(at.fd(), &name)
            .map_err(|e| self.state.explain(&dir, e, "removing", &target))
    }
}
