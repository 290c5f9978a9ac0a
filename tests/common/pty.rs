//! A pseudo-terminal for tests that give a command a controlling terminal
//! and then hang it up (closing the master).

use std::os::fd::{FromRawFd, OwnedFd};

/// A new pty: its master and its slave, both close-on-exec (the slave is
/// handed to a child as a standard stream, which dup2 makes inheritable).
pub fn open() -> (OwnedFd, OwnedFd) {
    // SAFETY: posix_openpt returns a new descriptor or -1.
    let master = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    assert!(
        master >= 0,
        "posix_openpt: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: just made, owned by nobody else.
    let master = unsafe { OwnedFd::from_raw_fd(master) };
    use std::os::fd::AsRawFd;
    // SAFETY: grantpt/unlockpt on the live master descriptor.
    assert_eq!(unsafe { libc::grantpt(master.as_raw_fd()) }, 0);
    assert_eq!(unsafe { libc::unlockpt(master.as_raw_fd()) }, 0);
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: ptsname_r writes at most `name.len()` bytes into `name`.
    let named = unsafe { libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) };
    assert_eq!(named, 0, "ptsname_r");
    // SAFETY: the path ptsname_r wrote, NUL-terminated; open returns a new
    // descriptor or -1.
    let slave = unsafe {
        libc::open(
            name.as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    assert!(
        slave >= 0,
        "opening the pty's slave: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: just made, owned by nobody else.
    (master, unsafe { OwnedFd::from_raw_fd(slave) })
}
