//! Writer for the `newc` cpio format the kernel unpacks as its initramfs.
//!
//! Each entry is a 110-byte ASCII header (magic `070701` and thirteen 8-digit hex
//! fields), the NUL-terminated name padded to a multiple of four, then the data
//! padded to a multiple of four. The archive ends with an entry named `TRAILER!!!`.

use std::io::{self, Write};

pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;

const TRAILER: &str = "TRAILER!!!";

/// Streams entries into `out`; call [`CpioWriter::finish`] to write the trailer.
pub struct CpioWriter<W: Write> {
    out: W,
    next_inode: u32,
    written: u64,
}

/// What an entry is, besides its name and permission bits.
pub enum EntryKind<'a> {
    Directory,
    File(&'a [u8]),
    Symlink(&'a str),
    CharDevice { major: u32, minor: u32 },
}

impl<W: Write> CpioWriter<W> {
    pub fn new(out: W) -> Self {
        CpioWriter {
            out,
            next_inode: 1,
            written: 0,
        }
    }

    /// Appends one entry. `name` is relative (no leading `/`); `perm` holds the
    /// permission bits only, the file type comes from `kind`.
    pub fn entry(&mut self, name: &str, perm: u32, kind: EntryKind<'_>) -> io::Result<()> {
        if name.is_empty() || name.starts_with('/') || name.contains('\0') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad cpio name {name:?}"),
            ));
        }
        let (file_type, data, nlink, rdev): (u32, &[u8], u32, (u32, u32)) = match kind {
            EntryKind::Directory => (S_IFDIR, &[], 2, (0, 0)),
            EntryKind::File(data) => (S_IFREG, data, 1, (0, 0)),
            EntryKind::Symlink(target) => (S_IFLNK, target.as_bytes(), 1, (0, 0)),
            EntryKind::CharDevice { major, minor } => (S_IFCHR, &[], 1, (major, minor)),
        };
        let inode = self.next_inode;
        self.next_inode += 1;
        self.raw_entry(name, inode, file_type | (perm & 0o7777), nlink, data, rdev)
    }

    fn raw_entry(
        &mut self,
        name: &str,
        inode: u32,
        mode: u32,
        nlink: u32,
        data: &[u8],
        rdev: (u32, u32),
    ) -> io::Result<()> {
        let data_len = u32::try_from(data.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name}: larger than 4 GiB"),
            )
        })?;
        let name_len = name.len() as u32 + 1;
        let fields = [
            inode, mode, 0, 0, nlink, 0, data_len, 0, 0, rdev.0, rdev.1, name_len, 0,
        ];
        let mut header = String::with_capacity(110);
        header.push_str("070701");
        for field in fields {
            header.push_str(&format!("{field:08x}"));
        }
        self.write(header.as_bytes())?;
        self.write(name.as_bytes())?;
        self.write(&[0])?;
        self.pad()?;
        self.write(data)?;
        self.pad()
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let padding = (4 - (self.written % 4) as usize) % 4;
        self.write(&[0; 3][..padding])
    }

    /// Writes the trailer and returns the sink and the archive's size in bytes.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.raw_entry(TRAILER, 0, 0, 1, &[], (0, 0))?;
        self.out.flush()?;
        Ok((self.out, self.written))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(header: &[u8], index: usize) -> u32 {
        let start = 6 + index * 8;
        u32::from_str_radix(std::str::from_utf8(&header[start..start + 8]).unwrap(), 16).unwrap()
    }

    #[test]
    fn file_entry_layout() {
        let mut writer = CpioWriter::new(Vec::new());
        writer
            .entry("init", 0o755, EntryKind::File(b"#!/bin/sh\n"))
            .unwrap();
        let (bytes, size) = writer.finish().unwrap();
        assert_eq!(size as usize, bytes.len());
        assert_eq!(&bytes[..6], b"070701");
        assert_eq!(field(&bytes, 1), S_IFREG | 0o755);
        assert_eq!(field(&bytes, 6), 10, "file size");
        assert_eq!(field(&bytes, 11), 5, "name size includes NUL");
        // 110 + "init\0" = 115, padded to 116; data 10 bytes padded to 12.
        assert_eq!(&bytes[110..116], b"init\0\0");
        assert_eq!(&bytes[116..126], b"#!/bin/sh\n");
        assert_eq!(&bytes[128..134], b"070701");
        assert_eq!(&bytes[128 + 110..128 + 110 + 10], b"TRAILER!!!");
        assert_eq!(bytes.len() % 4, 0);
    }

    #[test]
    fn symlink_and_device() {
        let mut writer = CpioWriter::new(Vec::new());
        writer
            .entry("bin", 0o777, EntryKind::Symlink("usr/bin"))
            .unwrap();
        writer
            .entry(
                "dev/console",
                0o600,
                EntryKind::CharDevice { major: 5, minor: 1 },
            )
            .unwrap();
        let (bytes, _) = writer.finish().unwrap();
        assert_eq!(field(&bytes, 1), S_IFLNK | 0o777);
        assert_eq!(field(&bytes, 6), 7);
        let second = 116 + 8; // 110 + "bin\0" padded to 116, then "usr/bin" padded to 8
        assert_eq!(&bytes[second..second + 6], b"070701");
        assert_eq!(field(&bytes[second..], 1), S_IFCHR | 0o600);
        assert_eq!(
            (field(&bytes[second..], 9), field(&bytes[second..], 10)),
            (5, 1)
        );
    }

    #[test]
    fn rejects_absolute_names() {
        let mut writer = CpioWriter::new(Vec::new());
        assert!(writer.entry("/init", 0o755, EntryKind::File(b"")).is_err());
    }
}
