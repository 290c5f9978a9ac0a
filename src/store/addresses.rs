//! Address files: `ipam/<network id>/<subnet key>/<address>` exists while
//! the address is taken and holds its owner (an endpoint id), and `cursor`
//! beside them holds the last address handed out. A taken-check is one
//! `link(2)` attempt, so allocation never reads the other addresses.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::fsutil;
use super::StoreError;
use crate::ipam::{AddressBook, SubnetSpec};

/// Name of the cursor file in a subnet directory.
pub const CURSOR_FILE: &str = "cursor";

/// The directory of one subnet of one network.
pub fn subnet_dir(network_dir: &Path, subnet: &SubnetSpec) -> PathBuf {
    network_dir.join(subnet.key())
}

/// An [`AddressBook`] on disk for one network. Used under the store lock.
pub(crate) struct DiskBook {
    network_dir: PathBuf,
    /// A synced file holding the owner, ready to be linked into place;
    /// reused across taken candidates so a scan costs one link each.
    prepared: Option<PathBuf>,
    /// Directories changed since the last [`DiskBook::sync`].
    dirty: Vec<PathBuf>,
}

impl DiskBook {
    pub(crate) fn new(network_dir: PathBuf) -> Self {
        DiskBook {
            network_dir,
            prepared: None,
            dirty: Vec::new(),
        }
    }

    fn mark_dirty(&mut self, dir: PathBuf) {
        if !self.dirty.contains(&dir) {
            self.dirty.push(dir);
        }
    }

    /// Removes the prepared file, if unused, and syncs changed directories.
    pub(crate) fn finish(&mut self) -> Result<(), StoreError> {
        if let Some(prepared) = self.prepared.take() {
            fsutil::remove_if_exists(&prepared).map_err(StoreError::io("removing", &prepared))?;
        }
        for dir in self.dirty.drain(..) {
            fsutil::sync_dir(&dir).map_err(StoreError::io("syncing", &dir))?;
        }
        Ok(())
    }

    fn prepare(&mut self, dir: &Path, owner: &str) -> Result<PathBuf, StoreError> {
        let prepared = dir.join(".tmp-owner");
        if self.prepared.as_deref() == Some(prepared.as_path()) {
            return Ok(prepared);
        }
        if let Some(old) = self.prepared.take() {
            fsutil::remove_if_exists(&old).map_err(StoreError::io("removing", &old))?;
        }
        let contents = format!("{owner}\n");
        // The subnet directory is made on first use; a network without
        // allocations has none.
        let written =
            match fsutil::write_synced_new(&prepared, contents.as_bytes(), fsutil::FILE_MODE) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // Also makes `ipam/<network id>` when missing; each new
                    // directory is synced into its parent.
                    fsutil::create_dir(dir).map_err(StoreError::io("creating", dir))?;
                    fsutil::write_synced_new(&prepared, contents.as_bytes(), fsutil::FILE_MODE)
                }
                other => other,
            };
        written.map_err(StoreError::io("writing", &prepared))?;
        self.prepared = Some(prepared.clone());
        Ok(prepared)
    }
}

impl AddressBook for DiskBook {
    type Error = StoreError;

    fn cursor(&mut self, subnet: &SubnetSpec) -> Result<Option<IpAddr>, StoreError> {
        let path = subnet_dir(&self.network_dir, subnet).join(CURSOR_FILE);
        // The cursor is only a hint: one that does not parse (not even as
        // UTF-8) means "start over".
        let text = match fsutil::read_if_exists(&path) {
            Err(e) if e.kind() == io::ErrorKind::InvalidData => None,
            other => other.map_err(StoreError::io("reading", &path))?,
        };
        Ok(text.and_then(|t| t.trim().parse().ok()))
    }

    fn set_cursor(&mut self, subnet: &SubnetSpec, addr: IpAddr) -> Result<(), StoreError> {
        let dir = subnet_dir(&self.network_dir, subnet);
        let path = dir.join(CURSOR_FILE);
        // A hint: after a power cut an old, empty or missing cursor only
        // means the walk starts elsewhere, so it is not worth an fsync.
        fsutil::replace_unsynced(&path, format!("{addr}\n").as_bytes(), fsutil::FILE_MODE)
            .map_err(StoreError::io("writing", &path))?;
        Ok(())
    }

    fn take(&mut self, subnet: &SubnetSpec, addr: IpAddr, owner: &str) -> Result<bool, StoreError> {
        let dir = subnet_dir(&self.network_dir, subnet);
        let prepared = self.prepare(&dir, owner)?;
        let target = dir.join(addr.to_string());
        let taken =
            fsutil::link_new(&prepared, &target).map_err(StoreError::io("creating", &target))?;
        if taken {
            self.prepared = None;
            fsutil::remove_if_exists(&prepared).map_err(StoreError::io("removing", &prepared))?;
            self.mark_dirty(dir);
        }
        Ok(taken)
    }

    fn release(&mut self, subnet: &SubnetSpec, addr: IpAddr) -> Result<bool, StoreError> {
        let dir = subnet_dir(&self.network_dir, subnet);
        let target = dir.join(addr.to_string());
        let removed =
            fsutil::remove_if_exists(&target).map_err(StoreError::io("removing", &target))?;
        if removed {
            self.mark_dirty(dir);
        }
        Ok(removed)
    }
}
