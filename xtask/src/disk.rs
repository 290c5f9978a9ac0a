//! Raw ext4 disk images for the guest (`/dev/vda`): the state directory on a
//! real filesystem, where fsync costs what users pay, and state that survives
//! a power cut (QEMU killed) into a second boot from the same image.

use crate::util::run;
use crate::Result;
use std::fs;
use std::path::Path;
use std::process::Command;

/// Creates (or replaces) `path` as an empty ext4 image of `mib` MiB.
pub fn create(path: &Path, mib: u64) -> Result {
    let _ = fs::remove_file(path);
    let file = fs::File::create(path)?;
    file.set_len(mib * 1024 * 1024)?;
    drop(file);
    // mkfs.ext4 is from e2fsprogs, which every Debian system has; it lives in
    // /usr/sbin, not always on a non-root PATH.
    let mkfs = ["mkfs.ext4", "/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"]
        .into_iter()
        .find(|p| crate::util::find_program(p).is_some())
        .ok_or("mkfs.ext4 not found (Debian package e2fsprogs)")?;
    run(Command::new(mkfs).args(["-q", "-F"]).arg(path))
}
