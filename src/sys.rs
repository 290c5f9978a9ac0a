//! TODO

/// Takes (`exclusive`) or shares an advisory `flock(2)` lock on `file`,
/// waiting for it. Released when the file is closed.
pub fn flock(file: &std::fs::File, exclusive: bool) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let operation = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    };
    loop {
        // SAFETY: flock takes a descriptor and flags only; the descriptor is
        // owned by `file`, which outlives the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), operation) };
        if rc == 0 {
            return Ok(());
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}
