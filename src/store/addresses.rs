//! Address files: `ipam/<network id>/<subnet key>/<address>` exists while
//! the address is taken and holds its owner (an endpoint id), and `cursor`
//! beside them holds the last address handed out. A taken-check is one
//! `link(2)` attempt, so allocation never reads the other addresses.

use std::ffi::CStr;
use std::fs::File;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::fsutil;
use super::handles::{Dir, Handles};
use super::StoreError;
use crate::ipam::{AddressBook, SubnetSpec};

/// Name of the cursor file in a subnet directory.
pub const CURSOR_FILE: &str = "cursor";
/// The width the cursor's address is padded to: the longest IPv6 text.
const CURSOR_WIDTH: usize = 39;

/// The directory of one subnet of one network.
pub fn subnet_dir(network_dir: &Path, subnet: &SubnetSpec) -> PathBuf {
    network_dir.join(subnet.key())
}

/// An [`AddressBook`] on disk for one network. Used under the store lock.
/// Nothing it writes or removes is part of the lock's commit: address
/// files are derived from the endpoint records, which are, and `restore`
/// rebuilds them after a power cut (see the store's durability rules).
pub(crate) struct DiskBook<'a> {
    state: &'a Handles,
    network_dir: PathBuf,
    /// A file holding the owner, ready to be linked into place, in its
    /// subnet directory; reused across taken candidates so a scan costs
    /// one link each.
    prepared: Option<(Arc<Dir>, File)>,
}

const PREPARED: &CStr = c".tmp-owner";

impl<'a> DiskBook<'a> {
    pub(crate) fn new(state: &'a Handles, network_dir: PathBuf) -> Self {
        DiskBook {
            state,
            network_dir,
            prepared: None,
        }
    }

    /// Removes the prepared file, if unused.
    pub(crate) fn finish(&mut self) -> Result<(), StoreError> {
        if let Some((dir, _)) = self.prepared.take() {
            fsutil::remove_at(dir.fd(), PREPARED)
                .map_err(StoreError::io("removing", dir.path.join(".tmp-owner")))?;
        }
        Ok(())
    }

    fn prepare(&mut self, dir: &Path, owner: &str) -> Result<(), StoreError> {
        if matches!(&self.prepared, Some((d, _)) if d.path == dir) {
            return Ok(());
        }
        self.finish()?;
        // The subnet directory is made on first use (with `ipam/<network
        // id>`): a network without allocations has none.
        let open = self.state.ensure(dir)?;
        let contents = format!("{owner}\n");
        let file =
            fsutil::write_new_at(open.fd(), PREPARED, contents.as_bytes(), fsutil::FILE_MODE)
                .map_err(StoreError::io("writing", dir.join(".tmp-owner")))?;
        self.prepared = Some((open, file));
        Ok(())
    }
}

impl DiskBook<'_> {
    /// Removes `subnet`'s cursor, if there is one (the walk starts over).
    pub(crate) fn clear_cursor(&mut self, subnet: &SubnetSpec) -> Result<(), StoreError> {
        let dir = subnet_dir(&self.network_dir, subnet);
        let Some(open) = self.state.dir(&dir)? else {
            return Ok(());
        };
        fsutil::remove_at(open.fd(), c"cursor")
            .map_err(StoreError::io("removing", dir.join(CURSOR_FILE)))?;
        Ok(())
    }
}

impl AddressBook for DiskBook<'_> {
    type Error = StoreError;

    fn cursor(&mut self, subnet: &SubnetSpec) -> Result<Option<IpAddr>, StoreError> {
        let dir = subnet_dir(&self.network_dir, subnet);
        let Some(open) = self.state.dir(&dir)? else {
            return Ok(None);
        };
        // The cursor is only a hint: one that does not parse (not even as
        // UTF-8), or is refused, means "start over".
        let text = match fsutil::read_text_at(open.fd(), CURSOR_FILE, fsutil::RECORD_MAX) {
            Err(e) if e.kind() == io::ErrorKind::InvalidData => None,
            other => other.map_err(StoreError::io("reading", dir.join(CURSOR_FILE)))?,
        };
        Ok(text.and_then(|t| t.trim().parse().ok()))
    }

    fn set_cursor(&mut self, subnet: &SubnetSpec, addr: IpAddr) -> Result<(), StoreError> {
        let dir = subnet_dir(&self.network_dir, subnet);
        let path = dir.join(CURSOR_FILE);
        let open = self.state.ensure(&dir)?;
        // A hint: after a power cut an old, empty, torn or missing cursor
        // only means the walk starts elsewhere, so it is left out of the
        // commit, and it is written in place rather than replaced by a
        // rename: on ext4 a rename over an existing file starts the new
        // file's writeback at once (`auto_da_alloc`), about 1 ms of every
        // connect in the project's VM for a file nobody syncs. Padded to
        // one width (an IPv6 address has at most 39 characters), each line
        // covers the one before whole; only allocations, under the lock,
        // read it.
        let line = format!("{addr:<CURSOR_WIDTH$}\n");
        crate::fault::point("store: before write");
        fsutil::open_regular_at(
            open.fd(),
            c"cursor",
            libc::O_WRONLY | libc::O_CREAT,
            fsutil::FILE_MODE,
        )
        .and_then(|(mut file, _)| {
            crate::fault::after("store: after write", file.write_all(line.as_bytes()))
        })
        .map_err(StoreError::io("writing", &path))?;
        Ok(())
    }

    fn take(&mut self, subnet: &SubnetSpec, addr: IpAddr, owner: &str) -> Result<bool, StoreError> {
        let dir = subnet_dir(&self.network_dir, subnet);
        self.prepare(&dir, owner)?;
        let target = dir.join(addr.to_string());
        let name =
            fsutil::c_name(&addr.to_string()).map_err(StoreError::io("creating", &target))?;
        let (open, _) = self.prepared.as_ref().expect("prepared above");
        let taken = fsutil::link_new_at(open.fd(), PREPARED, &name)
            .map_err(StoreError::io("creating", &target))?;
        if taken {
            let (open, _) = self.prepared.take().expect("prepared above");
            fsutil::remove_at(open.fd(), PREPARED)
                .map_err(StoreError::io("removing", dir.join(".tmp-owner")))?;
            // Derived from the endpoint records, so not part of the
            // commit: `restore` makes it again after a power cut.
        }
        Ok(taken)
    }

    fn release(&mut self, subnet: &SubnetSpec, addr: IpAddr) -> Result<bool, StoreError> {
        let dir = subnet_dir(&self.network_dir, subnet);
        let target = dir.join(addr.to_string());
        let Some(open) = self.state.dir(&dir)? else {
            return Ok(false);
        };
        let name =
            fsutil::c_name(&addr.to_string()).map_err(StoreError::io("removing", &target))?;
        // Not part of the commit either (see `take`): an address file a
        // power cut brings back names an owner without a record, which
        // `restore` releases.
        fsutil::remove_at(open.fd(), &name).map_err(StoreError::io("removing", &target))
    }
}
