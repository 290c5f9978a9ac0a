//! Thin, safe wrappers over the few system calls the crate needs.
//!
//! This module holds every `unsafe` block of the crate. Each wrapper takes only
//! safe Rust types (borrowed fds, slices, `CStr`s), so the invariants are local:
//! pointers come from live borrows and lengths from the same slices. Calls that
//! can be interrupted by a signal are retried on `EINTR`.
//!
//! The crate denies `unsafe_code` everywhere else (see `lib.rs`); here every
//! `unsafe` block states the invariant it relies on in a `SAFETY:` comment.

#![deny(clippy::undocumented_unsafe_blocks)]

use std::ffi::CStr;
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// Moves the element at `order[k]` to `k` for every `k`, one cycle of the
/// permutation at a time, by swaps only (no element is cloned): the stable
/// sort's last step (`crate::order`). `order` must be a permutation of
/// `0..items.len()`; anything else leaves the elements in an unspecified
/// order (or panics), never unsound.
pub fn permute<T>(items: &mut [T], order: Vec<usize>) {
    // A move of a `T` is a copy of its bytes: swapping them is `slice::swap`.
    permute_bytes(
        order,
        items.as_mut_ptr().cast(),
        items.len(),
        mem::size_of::<T>(),
    );
}

/// [`permute`] over raw elements of `size` bytes, not generic, so that
/// every element type shares it. Sound for any `order`: every index read
/// from it is checked against `len` before it is used.
#[inline(never)]
fn permute_bytes(mut order: Vec<usize>, base: *mut u8, len: usize, size: usize) {
    order.truncate(len);
    for start in 0..order.len() {
        let mut at = start;
        // Along the cycle through `start`, the element first at `start`
        // travels with the swaps until it reaches the slot that wants it.
        while order[at] != start {
            let from = order[at];
            // Only what is no permutation gets here; each step settles one
            // slot, so that stops too.
            if from >= len || from == at {
                break;
            }
            // SAFETY: `at` and `from` are distinct indices below `len` into
            // the `len` elements of `size` bytes at `base` (`permute`'s
            // live mutable borrow).
            unsafe {
                std::ptr::swap_nonoverlapping(base.add(at * size), base.add(from * size), size)
            };
            order[at] = at;
            at = from;
        }
        order[at] = at;
    }
}

/// The time of `clock` (`CLOCK_REALTIME`, `CLOCK_MONOTONIC`) since its
/// epoch; zero before the epoch. Rather than std's `SystemTime` and
/// `Instant`, whose `now` carries a panic, and the code to describe it, for
/// a failure these clocks cannot have.
pub fn clock_now(clock: libc::clockid_t) -> std::time::Duration {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes one timespec of ours; for a clock every kernel has,
    // it cannot fail (a failure would leave the zero above).
    unsafe { libc::clock_gettime(clock, &mut now) };
    since_epoch(now)
}

/// A `timespec` of a clock as the time since its epoch, zero before it.
fn since_epoch(time: libc::timespec) -> std::time::Duration {
    match u64::try_from(time.tv_sec) {
        Ok(secs) => {
            std::time::Duration::from_secs(secs)
                + std::time::Duration::from_nanos(time.tv_nsec as u64)
        }
        Err(_) => std::time::Duration::ZERO,
    }
}

/// `mkdir(2)` of `path`: `mode` less the umask. (std's `DirBuilder`
/// carries its recursive walk into every binary that makes a directory.)
pub fn mkdir(path: &std::path::Path, mode: u32) -> io::Result<()> {
    let path = c_os(path.as_os_str())?;
    // SAFETY: a NUL-terminated path, live for the call.
    retry(|| unsafe { libc::mkdir(path.as_ptr(), mode as libc::mode_t) }).map(drop)
}

/// [`mkdir`] of `path` and of each parent it lacks (`mkdir -p`, each with
/// `mode` less the umask); a directory there already, or made meanwhile,
/// is no error, whatever `mkdir` said of it.
pub fn mkdir_all(path: &std::path::Path, mode: u32) -> io::Result<()> {
    let made = match mkdir(path, mode) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => {
                mkdir_all(parent, mode).and_then(|()| mkdir(path, mode))
            }
            _ => Err(e),
        },
        made => made,
    };
    match made {
        // As std's `create_dir_all`: whatever `mkdir` said (EEXIST, or
        // EROFS, EACCES where that comes first), a directory is there.
        Err(_) if path.is_dir() => Ok(()),
        made => made,
    }
}

/// Turns a `-1`-on-error return value into `io::Result`, retrying on `EINTR`.
fn retry<T: PartialEq + From<i8>>(mut call: impl FnMut() -> T) -> io::Result<T> {
    loop {
        let ret = call();
        if ret != T::from(-1) {
            return Ok(ret);
        }
        if let Some(err) = failure_unless_interrupted() {
            return Err(err);
        }
    }
}

/// The error of a failed call, `None` if it was `EINTR` (to be retried).
/// Out of line: [`retry`] has a copy per call site, this part has one.
#[inline(never)]
fn failure_unless_interrupted() -> Option<io::Error> {
    let err = io::Error::last_os_error();
    (err.raw_os_error() != Some(libc::EINTR)).then_some(err)
}

/// `socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol)`.
pub fn netlink_socket(protocol: i32) -> io::Result<OwnedFd> {
    socket(libc::AF_NETLINK, libc::SOCK_RAW, protocol)
}

/// `socket(domain, kind | SOCK_CLOEXEC, protocol)`.
pub fn socket(domain: i32, kind: i32, protocol: i32) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; a non-negative return value is a new
    // descriptor that nothing else owns, so wrapping it in OwnedFd is sound.
    let fd = retry(|| unsafe { libc::socket(domain, kind | libc::SOCK_CLOEXEC, protocol) })?;
    // SAFETY: see above: `fd` is fresh and exclusively ours.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn sockaddr_nl(port_id: u32, groups: u32) -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr.nl_pid = port_id;
    addr.nl_groups = groups;
    addr
}

/// `bind(2)` a netlink socket; port id 0 lets the kernel choose one.
pub fn bind_netlink(fd: BorrowedFd<'_>, port_id: u32, groups: u32) -> io::Result<()> {
    let addr = sockaddr_nl(port_id, groups);
    // SAFETY: `addr` lives across the call and the length passed is its size.
    retry(|| unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_nl).cast(),
            mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// The port id the kernel assigned to a bound netlink socket (`getsockname`).
pub fn netlink_port_id(fd: BorrowedFd<'_>) -> io::Result<u32> {
    let mut addr = sockaddr_nl(0, 0);
    let mut len = mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
    // SAFETY: `addr` and `len` are live, writable, and `len` holds addr's size,
    // so the kernel writes at most that many bytes.
    retry(|| unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut addr as *mut libc::sockaddr_nl).cast(),
            &mut len,
        )
    })?;
    Ok(addr.nl_pid)
}

/// `setsockopt(2)` with an `int` value.
pub fn setsockopt_int(fd: BorrowedFd<'_>, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: the option value points to a live i32 and its size is passed.
    retry(|| unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            mem::size_of::<i32>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// `getsockopt(2)` of an `int` value (`SO_RCVBUF`, `SO_SNDBUF`). A reply of
/// another size is refused rather than read.
pub fn getsockopt_int(fd: BorrowedFd<'_>, level: i32, name: i32) -> io::Result<i32> {
    let mut value: i32 = 0;
    let mut len = mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live and writable, and `len` holds
    // value's size, so the kernel writes at most that many bytes.
    retry(|| unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut i32).cast(),
            &mut len,
        )
    })?;
    if len as usize != mem::size_of::<i32>() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("socket option {name} has {len} bytes, not 4"),
        ));
    }
    Ok(value)
}

/// Makes a FIFO at `path` (mode 0600), for tests of what meets one
/// where a file belongs; panics when it cannot.
#[cfg(test)]
pub fn make_fifo(path: &std::path::Path) {
    let c_path = c_os(path.as_os_str()).unwrap();
    // SAFETY: a live NUL-terminated path.
    let made = unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) };
    assert_eq!(
        made,
        0,
        "mkfifo {}: {}",
        path.display(),
        io::Error::last_os_error()
    );
}

/// `getsockopt(2)` of an array of `u32` (`SO_MEMINFO`); how many were written.
#[cfg(test)]
pub fn getsockopt_u32s(
    fd: BorrowedFd<'_>,
    level: i32,
    name: i32,
    values: &mut [u32],
) -> io::Result<usize> {
    let mut len = mem::size_of_val(values) as libc::socklen_t;
    // SAFETY: `values` is a live, writable slice and `len` holds its size in
    // bytes, so the kernel writes at most that many bytes.
    retry(|| unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            values.as_mut_ptr().cast(),
            &mut len,
        )
    })?;
    Ok(len as usize / mem::size_of::<u32>())
}

/// `getsockopt(2)` of a `u64` value (`SO_NETNS_COOKIE`). A reply of
/// another size is refused rather than read.
pub fn getsockopt_u64(fd: BorrowedFd<'_>, level: i32, name: i32) -> io::Result<u64> {
    let mut value: u64 = 0;
    let mut len = mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live and writable, and `len` holds
    // value's size, so the kernel writes at most that many bytes.
    retry(|| unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&mut value as *mut u64).cast(),
            &mut len,
        )
    })?;
    if len as usize != mem::size_of::<u64>() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("socket option {name} has {len} bytes, not 8"),
        ));
    }
    Ok(value)
}

/// `setsockopt(2)` with a `struct timeval` value (`SO_RCVTIMEO`,
/// `SO_SNDTIMEO`); sub-microsecond parts are dropped (a duration under a
/// microsecond is one), a duration too long for `time_t` is clamped, and
/// zero is refused.
// libc marks musl's `time_t`/`suseconds_t` deprecated only to announce
// their move to 64 bits; naming them keeps this right at either width.
#[allow(deprecated)]
pub fn setsockopt_timeval(
    fd: BorrowedFd<'_>,
    level: i32,
    name: i32,
    value: std::time::Duration,
) -> io::Result<()> {
    // The kernel reads {0, 0} as "wait for ever": zero is refused (as std
    // refuses it for its sockets), and what is shorter than the option's
    // unit, a microsecond, is one.
    if value.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a zero timeout (the kernel would wait for ever)",
        ));
    }
    let value = value.max(std::time::Duration::from_micros(1));
    let timeval = libc::timeval {
        tv_sec: libc::time_t::try_from(value.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_usec: value.subsec_micros() as libc::suseconds_t,
    };
    // SAFETY: the option value points to a live timeval and its size is passed.
    retry(|| unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&timeval as *const libc::timeval).cast(),
            mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    })?;
    Ok(())
}

/// Sends one datagram to the kernel (netlink port 0).
pub fn send_to_kernel(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    let addr = sockaddr_nl(0, 0);
    // SAFETY: `buf` and `addr` are live borrows and their exact lengths are passed.
    let sent = retry(|| unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            0,
            (&addr as *const libc::sockaddr_nl).cast(),
            mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    })?;
    Ok(sent as usize)
}

/// Receives one datagram into the spare capacity of `buf`, emptied
/// first; returns its length and the sender's netlink port id. `flags`
/// adds `MSG_*` flags, e.g. `MSG_DONTWAIT`. On return `buf` holds the
/// datagram's first `buf.capacity()` bytes; the length returned exceeds
/// that when the datagram was truncated. No byte of `buf` need be
/// initialised beforehand: a receive buffer of 32 KiB zeroed for each
/// socket of a batch (one a namespace, each let go after use, its block
/// handed to the next) cost 4% of a batch connect's instructions.
pub fn recv_into_spare(
    fd: BorrowedFd<'_>,
    buf: &mut Vec<u8>,
    flags: i32,
) -> io::Result<(usize, u32)> {
    buf.clear();
    let spare = buf.spare_capacity_mut();
    let capacity = spare.len();
    let mut addr = sockaddr_nl(0, 0);
    let mut addr_len = mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
    // SAFETY: `spare` is live, writable memory of `capacity` bytes owned
    // by `buf` (uninitialised bytes may be written); `addr` and `addr_len`
    // are live and `addr_len` holds addr's size.
    let len = retry(|| unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            spare.as_mut_ptr().cast(),
            capacity,
            libc::MSG_TRUNC | flags,
            (&mut addr as *mut libc::sockaddr_nl).cast(),
            &mut addr_len,
        )
    })? as usize;
    // SAFETY: the kernel wrote the datagram's first `min(len, capacity)`
    // bytes at the start of the spare capacity (with `MSG_TRUNC`, `len` is
    // the datagram's whole length, which may exceed what was written).
    unsafe { buf.set_len(len.min(capacity)) };
    Ok((len, addr.nl_pid))
}

/// `read(2)` on fd 0, which the process does not own: a `File` of it
/// would need a duplicate, two system calls and a `close` more, and
/// `std::io::stdin()` sets up a buffered reader (8 KiB, and its code) for
/// a read done once. A closed fd 0 answers `EBADF`.
pub fn read_stdin(buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is a live, writable slice of the length passed; fd 0
    // is only read, never closed or kept.
    let read =
        retry(|| unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) })?;
    Ok(read as usize)
}

/// `setns(2)`: moves the calling *thread* into the namespace `fd` refers to.
pub fn setns(fd: BorrowedFd<'_>, nstype: i32) -> io::Result<()> {
    // SAFETY: setns(2) takes a descriptor (kept open by the borrow) and a flag.
    retry(|| unsafe { libc::setns(fd.as_raw_fd(), nstype) })?;
    Ok(())
}

/// A procfs instance of this process's own (Linux 5.2): `fsopen("proc")`,
/// `fsconfig(FSCONFIG_CMD_CREATE)`, `fsmount`. From Linux 5.8 a new
/// superblock, so a dentry tree of its own; a mount attached nowhere: no
/// other process sees it, it is in no mount table, and it goes when the
/// returned descriptor (its root directory) is closed.
pub fn procfs_instance() -> io::Result<OwnedFd> {
    const FSOPEN_CLOEXEC: libc::c_uint = 1;
    const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
    const FSMOUNT_CLOEXEC: libc::c_uint = 1;
    // SAFETY: a NUL-terminated file system name and flags; returns a new
    // file system context descriptor or -1.
    let context =
        retry(|| unsafe { libc::syscall(libc::SYS_fsopen, c"proc".as_ptr(), FSOPEN_CLOEXEC) })?;
    // SAFETY: a descriptor the kernel just returned, owned by nobody else.
    let context = unsafe { OwnedFd::from_raw_fd(context as libc::c_int) };
    // SAFETY: the context kept open by `context`; CMD_CREATE takes no key,
    // value or auxiliary number.
    retry(|| unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            context.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    })?;
    // SAFETY: the context kept open by `context`, flags, no mount
    // attributes; returns a new mount descriptor or -1.
    let mount = retry(|| unsafe {
        libc::syscall(libc::SYS_fsmount, context.as_raw_fd(), FSMOUNT_CLOEXEC, 0)
    })?;
    // SAFETY: a descriptor the kernel just returned, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(mount as libc::c_int) })
}

/// `ioctl(fd, NS_GET_NSTYPE)` (Linux 4.11): the `CLONE_NEW*` type of the
/// namespace an nsfs descriptor refers to.
pub fn ns_get_nstype(fd: BorrowedFd<'_>) -> io::Result<i32> {
    // SAFETY: NS_GET_NSTYPE takes no argument pointer; the descriptor is kept
    // open by the borrow.
    retry(|| unsafe { libc::ioctl(fd.as_raw_fd(), libc::NS_GET_NSTYPE) })
}

/// `ioctl(socket, SIOCGSKNS)` (Linux 4.9): a new descriptor (close-on-exec)
/// of the network namespace `socket` was made in. `EPERM` without
/// `CAP_NET_ADMIN` over that namespace.
pub fn socket_netns(socket: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: SIOCGSKNS takes no argument pointer; the socket is kept open by
    // the borrow; a non-negative return value is a new descriptor nobody
    // else owns.
    let fd = retry(|| unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGSKNS as libc::Ioctl) })?;
    // SAFETY: see above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `unshare(2)`: for `CLONE_NEWNET`, gives the calling thread a new netns.
pub fn unshare(flags: i32) -> io::Result<()> {
    // SAFETY: unshare(2) takes no pointers.
    retry(|| unsafe { libc::unshare(flags) })?;
    Ok(())
}

/// `mount(2)`; `source` and `fstype` may be empty for remounts.
pub fn mount(source: &CStr, target: &CStr, fstype: &CStr, flags: libc::c_ulong) -> io::Result<()> {
    // SAFETY: all strings are NUL-terminated `CStr` borrows alive for the call;
    // a null `data` pointer means "no filesystem options".
    retry(|| unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            flags,
            std::ptr::null(),
        )
    })?;
    Ok(())
}

/// Whether the file system at `path` is mounted read-only (`statvfs(3)`).
pub fn is_read_only_mount(path: &CStr) -> io::Result<bool> {
    // SAFETY: statvfs is plain integers; all zeros is a valid value.
    let mut stats: libc::statvfs = unsafe { mem::zeroed() };
    // SAFETY: `path` is a NUL-terminated borrow and `stats` a live struct
    // for statvfs to fill.
    retry(|| unsafe { libc::statvfs(path.as_ptr(), &mut stats) })?;
    Ok(stats.f_flag & libc::ST_RDONLY != 0)
}

/// `umount2(2)`.
pub fn umount2(target: &CStr, flags: i32) -> io::Result<()> {
    // SAFETY: `target` is a NUL-terminated borrow alive for the call.
    retry(|| unsafe { libc::umount2(target.as_ptr(), flags) })?;
    Ok(())
}

/// `flock(2)`; the lock is released when the descriptor is closed.
pub fn flock(fd: BorrowedFd<'_>, operation: i32) -> io::Result<()> {
    // SAFETY: flock(2) takes a descriptor kept open by the borrow and a flag.
    retry(|| unsafe { libc::flock(fd.as_raw_fd(), operation) })?;
    Ok(())
}

/// An exclusive `flock` taken by [`flock_exclusive`], let go by `LOCK_UN`
/// when dropped: a lock belongs to the open file, which a process forked
/// meanwhile by another thread shares until it execs or ends, so closing
/// the descriptor alone would leave it locked for that long.
pub struct FlockHeld<'a>(BorrowedFd<'a>);

impl Drop for FlockHeld<'_> {
    fn drop(&mut self) {
        let _ = flock(self.0, libc::LOCK_UN);
    }
}

/// `flock(fd, LOCK_EX)`, waiting, held until the guard drops.
pub fn flock_exclusive(fd: BorrowedFd<'_>) -> io::Result<FlockHeld<'_>> {
    flock(fd, libc::LOCK_EX)?;
    Ok(FlockHeld(fd))
}

/// `geteuid(2)`: the effective user id, which owns what this process creates.
pub fn geteuid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether `gid` is this process's effective group or one of its
/// supplementary groups: what the kernel's `in_group_p` asks (of the
/// file-system group, which is the effective one unless `setfsgid(2)`
/// moved it).
pub fn in_group(gid: u32) -> bool {
    // SAFETY: getegid(2) takes no arguments and cannot fail.
    if unsafe { libc::getegid() } == gid {
        return true;
    }
    // SAFETY: with a size of 0, getgroups(2) writes nothing and returns
    // how many groups there are.
    let count = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let Ok(len) = usize::try_from(count) else {
        return false;
    };
    let mut groups: Vec<libc::gid_t> = vec![0; len];
    // SAFETY: `groups` holds `count` entries, which getgroups(2) fills at
    // most (fewer if the set shrank meanwhile: it is this process's own).
    let got = unsafe { libc::getgroups(count, groups.as_mut_ptr()) };
    usize::try_from(got).is_ok_and(|got| groups[..got.min(len)].contains(&gid))
}

/// `kill(2)`: sends `signal` to the one process `pid`.
///
/// Only a single, positive pid is accepted: 0 and anything above
/// `i32::MAX` (which would wrap to a negative `pid_t`) would address a
/// process group or every process, so they are refused with `EINVAL`.
pub fn kill(pid: u32, signal: i32) -> io::Result<()> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|pid| *pid > 0)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: kill(2) takes no pointers; `pid` is positive, so it names one
    // process and never a group or "every process".
    retry(|| unsafe { libc::kill(pid, signal) })?;
    Ok(())
}

/// A descriptor of the process that has `pid` now (`pidfd_open(2)`, Linux
/// 5.3): signals sent through it reach that process or nobody, even once
/// the number is another process's.
pub fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    let pid = libc::pid_t::try_from(pid)
        .ok()
        .filter(|pid| *pid > 0)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: pidfd_open(2) takes a pid and flags, no memory.
    let fd = retry(|| unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) })?;
    // SAFETY: the kernel just made this descriptor; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Sends `signal` to the process `pidfd` names (`pidfd_send_signal(2)`).
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: i32) -> io::Result<()> {
    // SAFETY: a live descriptor, a signal number, no siginfo (null), no
    // flags.
    retry(|| unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    })?;
    Ok(())
}

/// A signal's disposition before [`swallow_signal`] changed it, for
/// [`restore_signal`].
pub struct SavedSignal {
    signal: i32,
    previous: libc::sigaction,
}

impl SavedSignal {
    /// Whether the signal was already ignored before.
    pub fn was_ignored(&self) -> bool {
        self.previous.sa_sigaction == libc::SIG_IGN
    }

    /// Whether the disposition is [`swallow_signal`]'s handler.
    fn is_swallowed(&self) -> bool {
        self.previous.sa_sigaction == swallow as extern "C" fn(libc::c_int) as libc::sighandler_t
    }
}

/// `signal`'s disposition, read and left as it is (for [`restore_signal`]
/// it is a no-op).
pub fn signal_disposition(signal: i32) -> io::Result<SavedSignal> {
    // SAFETY: sigaction is plain old data; all-zero is a valid value the
    // kernel overwrites with the disposition.
    let mut previous: libc::sigaction = unsafe { mem::zeroed() };
    // SAFETY: a null new-action pointer only reads; `previous` is a live
    // sigaction for the call.
    retry(|| unsafe { libc::sigaction(signal, std::ptr::null(), &mut previous) })?;
    Ok(SavedSignal { signal, previous })
}

/// Makes `signal` do nothing to this process (while it waits for a child,
/// as `system(3)` ignores it): a handler that does nothing, with
/// `SA_RESTART`, so that the calls it restarts (`read`, `write`, `wait`)
/// go on in other threads; those it does not (`poll`, `epoll_wait`,
/// `nanosleep`, calls with a timeout) may return `EINTR` there, as with
/// any caught signal. Not `SIG_IGN`, which survives `execve`: every
/// program another thread of an embedding process started meanwhile
/// would ignore it for good; a handler is reset to the default there.
/// Only a signal at its default action, which would end the process, is
/// caught so: one already ignored is left as it is (its children ignore
/// it, as they would have anyway), and so is one the program handles (an
/// init's `SIGINT`, Ctrl-Alt-Del, a runtime's shutdown), whose handler
/// must see what comes meanwhile.
pub fn swallow_signal(signal: i32) -> io::Result<SavedSignal> {
    let current = signal_disposition(signal)?;
    if current.previous.sa_sigaction != libc::SIG_DFL {
        return Ok(current);
    }
    set_disposition(
        signal,
        swallow as extern "C" fn(libc::c_int) as libc::sighandler_t,
    )
}

/// [`swallow_signal`]'s handler.
extern "C" fn swallow(_: libc::c_int) {}

/// Sets `signal`'s handler to `handler`, with `SA_RESTART` and an empty
/// mask; returns what it was.
fn set_disposition(signal: i32, handler: libc::sighandler_t) -> io::Result<SavedSignal> {
    // SAFETY: sigaction is plain old data; all-zero is a valid value
    // (SIG_DFL, no flags, empty mask) that is then filled in.
    let mut action: libc::sigaction = unsafe { mem::zeroed() };
    action.sa_sigaction = handler;
    action.sa_flags = libc::SA_RESTART;
    // SAFETY: sigaction is plain old data; all-zero is a valid value, and
    // the kernel overwrites it with the previous disposition.
    let mut previous: libc::sigaction = unsafe { mem::zeroed() };
    // SAFETY: both pointers are live borrows of sigaction values for the call.
    retry(|| unsafe { libc::sigaction(signal, &action, &mut previous) })?;
    Ok(SavedSignal { signal, previous })
}

/// Puts back the disposition [`swallow_signal`] replaced, while its
/// handler is still the one in place: a handler the program installed
/// since (a library's caller hooking Ctrl-C while a command ran) is its
/// own, and stays. `SIG_IGN` first: it discards one sent meanwhile and not
/// yet delivered (a thread that takes it reads the disposition only then),
/// which would otherwise strike under the old disposition, at its default
/// ending the process.
pub fn restore_signal(saved: &SavedSignal) -> io::Result<()> {
    if !signal_disposition(saved.signal)?.is_swallowed() {
        return Ok(());
    }
    let replaced = set_disposition(saved.signal, libc::SIG_IGN)?;
    // One installed between the look and `SIG_IGN` is put back as well.
    let back = if replaced.is_swallowed() {
        &saved.previous
    } else {
        &replaced.previous
    };
    // SAFETY: `back` is a sigaction the kernel gave us for this signal,
    // alive for the call; a null old-action pointer is allowed.
    retry(|| unsafe { libc::sigaction(saved.signal, back, std::ptr::null_mut()) })?;
    Ok(())
}

/// The signals `run` and `exec` pass on to their command, as `docker
/// run`'s sig-proxy does: every signal a process can catch (the real-time
/// ones the C library leaves to programs included) but those with a job
/// of their own here. `SIGCHLD` is the process's (a child ended);
/// `SIGPIPE` is ignored by the binary; `SIGTSTP`, `SIGTTIN` and `SIGTTOU`
/// stop ipvlan with its command (job control: blocked, the shell would
/// wait for a stopped command under a running ipvlan); `SIGILL`,
/// `SIGTRAP`, `SIGABRT`, `SIGBUS`, `SIGFPE`, `SIGSEGV` and `SIGSYS` report
/// a fault of ipvlan's own, which must end it. Any other signal that
/// ended ipvlan (`SIGALRM`, `SIGXCPU`, a real-time signal) would leave
/// the command running and the container of `run --rm` behind.
pub fn forwarded_signals() -> Vec<libc::c_int> {
    let mut signals = vec![
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGTERM,
        libc::SIGSTKFLT,
        libc::SIGCONT,
        libc::SIGURG,
        libc::SIGXCPU,
        libc::SIGXFSZ,
        libc::SIGVTALRM,
        libc::SIGPROF,
        libc::SIGWINCH,
        libc::SIGIO,
        libc::SIGPWR,
    ];
    // Those below the C library's SIGRTMIN are its own (threads,
    // cancellation, set*id), never sent to a program.
    signals.extend(libc::SIGRTMIN()..=libc::SIGRTMAX());
    signals
}

fn signal_set(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigset_t is plain old data, made valid by sigemptyset.
    let mut set: libc::sigset_t = unsafe { mem::zeroed() };
    // SAFETY: `set` is a live sigset_t; the signals are valid numbers.
    unsafe {
        libc::sigemptyset(&mut set);
        for &signal in signals {
            libc::sigaddset(&mut set, signal);
        }
    }
    set
}

/// Signals blocked in the calling thread until [`SignalBlock::end`] (or
/// the drop) puts its mask back. Threads it starts meanwhile inherit the
/// mask: a signal sent to the process then waits, pending, for
/// [`Running::wait`] (or for the end of the block).
pub struct SignalBlock {
    previous: libc::sigset_t,
    /// The signals of the block that were not blocked before it.
    added: Vec<libc::c_int>,
}

impl SignalBlock {
    /// What [`Running::wait`] needs blocked to pass signals on:
    /// [`forwarded_signals`].
    pub fn for_forwarding() -> io::Result<SignalBlock> {
        SignalBlock::new(&forwarded_signals())
    }

    pub fn new(signals: &[libc::c_int]) -> io::Result<SignalBlock> {
        let set = signal_set(signals);
        // SAFETY: sigset_t is plain old data; the kernel fills it in.
        let mut previous: libc::sigset_t = unsafe { mem::zeroed() };
        // SAFETY: both pointers are live sigset_t values for the call.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut previous) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        let added = signals
            .iter()
            .copied()
            // SAFETY: `previous` is a live sigset_t the kernel filled in.
            .filter(|&signal| unsafe { libc::sigismember(&previous, signal) } == 0)
            .collect();
        Ok(SignalBlock { previous, added })
    }

    /// Ends the block, first taking (and dropping) what is pending of the
    /// signals it blocked: they were meant for a command that has ended,
    /// and unblocked now their default action would end this process
    /// before it finishes (say, removes the container of `run --rm`).
    /// Signals that were blocked before the block stay pending for the
    /// caller.
    pub fn end(self) {
        let set = signal_set(&self.added);
        // Until none is pending (`EAGAIN`): a handled signal of another's
        // interrupting the take (`EINTR`) would leave one pending, to act
        // at its default once unblocked.
        while take_now(&set) > 0 || io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
        {
        }
    }
}

/// Takes one pending signal of `set`, without waiting: its number, or -1
/// (`EAGAIN`) when none of them is pending.
fn take_now(set: &libc::sigset_t) -> libc::c_int {
    let none = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `set` and `none` are live for the call; no siginfo is asked
    // for.
    unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &none) }
}

/// Takes one of `signals` that is pending (blocked, sent meanwhile) and
/// would end this process once let through, if there is one: a signal
/// that came while a [`SignalBlock`] held it, for the caller to act on.
/// One ignored by its disposition, or whose default is to be ignored
/// (`SIGCHLD`, `SIGCONT`, `SIGURG`, `SIGWINCH`: a terminal resized, a
/// shell's `fg`), is left pending.
pub fn take_pending(signals: &[libc::c_int]) -> io::Result<Option<libc::c_int>> {
    // SAFETY: sigset_t is plain old data; the kernel fills it in.
    let mut pending: libc::sigset_t = unsafe { mem::zeroed() };
    // SAFETY: `pending` is a live sigset_t for the call.
    if unsafe { libc::sigpending(&mut pending) } == -1 {
        return Err(io::Error::last_os_error());
    }
    for &signal in signals {
        // SAFETY: `pending` is a live sigset_t the kernel filled in.
        if unsafe { libc::sigismember(&pending, signal) } != 1
            || matches!(
                signal,
                libc::SIGCHLD | libc::SIGCONT | libc::SIGURG | libc::SIGWINCH
            )
            // Ignored but blocked, it is still queued; the end of the
            // block drops it.
            || signal_disposition(signal)?.was_ignored()
        {
            continue;
        }
        if take_now(&signal_set(&[signal])) == signal {
            return Ok(Some(signal));
        }
    }
    Ok(None)
}

impl Drop for SignalBlock {
    fn drop(&mut self) {
        // SAFETY: `previous` is the mask the kernel gave us; a null
        // old-mask pointer is allowed.
        unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &self.previous, std::ptr::null_mut()) };
    }
}

/// Whether `signal` (of code `si_code`) reached the child `pid` as well,
/// so that passing it on would give it twice: one the kernel sent for the
/// terminal (SI_KERNEL, a positive code: a Ctrl-C, Ctrl-\\, hang-up or
/// window change), which went to the terminal's foreground process group,
/// ours, and the child's while it is in ours (a program that made a group
/// of its own, as `timeout` or `setsid` do, had none of it: passed on, as
/// `docker run` passes a Ctrl-C on). A signal a process sent (SI_USER, SI_QUEUE,
/// SI_TKILL: a code of 0 or less) came to us alone, and so did the
/// kernel's others (an `alarm` or CPU limit inherited from whoever ran
/// us): those are passed on. So are a hang-up's `SIGHUP` and `SIGCONT`
/// when we lead our session: the kernel sends those to the session's
/// leader alone (`ssh -t host ipvlan exec ...`, `setsid -c`, a getty),
/// and the rest of the group gets its `SIGHUP` only once the leader has
/// ended, which we would not before the child.
fn reached_the_child_too(signal: libc::c_int, si_code: libc::c_int, pid: u32) -> bool {
    si_code > 0
        && match signal {
            libc::SIGINT | libc::SIGQUIT | libc::SIGWINCH => true,
            libc::SIGHUP | libc::SIGCONT => !leads_its_session(),
            _ => false,
        }
        && in_our_process_group(pid)
}

/// Whether process `pid` is in this process's process group (one that is
/// gone is in none).
fn in_our_process_group(pid: u32) -> bool {
    // SAFETY: getpgid(2) and getpgrp(2) take no pointers; getpgid fails
    // (-1, never a group's id) for a process that is gone.
    unsafe { libc::getpgid(pid as libc::pid_t) == libc::getpgrp() }
}

/// Whether this process leads its session (its id is the session's).
fn leads_its_session() -> bool {
    // SAFETY: getsid(0) and getpid() take no pointers and cannot fail
    // for the calling process.
    unsafe { libc::getsid(0) == libc::getpid() }
}

// ---- Files relative to directory descriptors (the state directory) ----
//
// The store opens its directory once and reaches every file through
// descriptors of directories it has checked, so no path is resolved from
// `/` again and nothing it checked can be swapped under it by a rename
// higher up. These are the `*at` calls it needs, as raw system calls where
// libc adds work: musl's `open` follows every `O_CLOEXEC` open with an
// `fcntl(F_SETFD)` for kernels older than 2.6.23, which this crate does
// not run on.

fn at(dir: Option<BorrowedFd<'_>>) -> libc::c_int {
    dir.map_or(libc::AT_FDCWD, |fd| fd.as_raw_fd())
}

/// `openat(2)` with `O_CLOEXEC` always added, as one system call: `path`
/// relative to `dir` (or the working directory when `None`). The C
/// library's `open` follows an `O_CLOEXEC` open with an `fcntl(F_SETFD)`
/// for kernels older than 2.6.23, one call more each time.
pub fn openat(
    dir: Option<BorrowedFd<'_>>,
    path: &CStr,
    flags: i32,
    mode: libc::mode_t,
) -> io::Result<OwnedFd> {
    // SAFETY: the path is a live NUL-terminated string, the directory a
    // descriptor kept open by its borrow (or AT_FDCWD); openat returns a
    // new descriptor or -1, and nothing else owns the new one.
    let fd = retry(|| unsafe {
        libc::syscall(
            libc::SYS_openat,
            at(dir),
            path.as_ptr(),
            flags | libc::O_CLOEXEC,
            mode as libc::c_uint,
        )
    })?;
    // SAFETY: a descriptor the kernel just returned, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Creates the empty regular file `path` (relative to the working
/// directory) with `mode` (less the umask), as `O_CREAT | O_EXCL` would:
/// `EEXIST` when anything is there, a symbolic link never followed. One
/// `mknodat(2)`, where an open costs a `close` too.
pub fn create_empty_file(path: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: a live NUL-terminated path; no descriptor is made.
    retry(|| unsafe { libc::mknodat(libc::AT_FDCWD, path.as_ptr(), libc::S_IFREG | mode, 0) })?;
    Ok(())
}

/// `utimensat(2)` of `path` to the current time, never through a final
/// symbolic link: its access, modification and change times (`ctime`)
/// become now.
pub fn touch_no_follow(path: &CStr) -> io::Result<()> {
    // SAFETY: a live NUL-terminated path; a null `times` asks for the
    // current time, nothing is read through it.
    retry(|| unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            path.as_ptr(),
            std::ptr::null(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(())
}

/// `fstatat(2)` of `name` in `dir` without following a symbolic link.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<libc::stat> {
    // SAFETY: an all-zero `stat` is a valid value of the plain C struct.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: descriptor kept open by the borrow, live NUL-terminated name,
    // `st` a live exclusive borrow of the struct the kernel fills.
    retry(|| unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(st)
}

/// `fstat(2)` of an open descriptor.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: an all-zero `stat` is a valid value of the plain C struct.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: descriptor kept open by the borrow, `st` a live exclusive
    // borrow of the struct the kernel fills.
    retry(|| unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// `renameat(2)` within one directory.
pub fn rename_at(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: descriptor kept open by the borrow, live NUL-terminated names.
    retry(|| unsafe {
        libc::renameat(dir.as_raw_fd(), from.as_ptr(), dir.as_raw_fd(), to.as_ptr())
    })?;
    Ok(())
}

/// `linkat(2)` within one directory: `to` made a hard link to `from`,
/// never following either; `EEXIST` when `to` is taken (nothing replaced).
pub fn link_at(dir: BorrowedFd<'_>, from: &CStr, to: &CStr) -> io::Result<()> {
    // SAFETY: descriptor kept open by the borrow, live NUL-terminated names.
    retry(|| unsafe {
        libc::linkat(
            dir.as_raw_fd(),
            from.as_ptr(),
            dir.as_raw_fd(),
            to.as_ptr(),
            0,
        )
    })?;
    Ok(())
}

/// `unlinkat(2)` of a file (`flags` 0) or an empty directory
/// (`AT_REMOVEDIR`).
pub fn unlink_at(dir: BorrowedFd<'_>, name: &CStr, flags: i32) -> io::Result<()> {
    // SAFETY: descriptor kept open by the borrow, live NUL-terminated name.
    retry(|| unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), flags) })?;
    Ok(())
}

/// `mkdirat(2)`.
pub fn mkdir_at(dir: BorrowedFd<'_>, name: &CStr, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: descriptor kept open by the borrow, live NUL-terminated name.
    retry(|| unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), mode) })?;
    Ok(())
}

/// `symlinkat(2)`: makes `name` in `dir` a symbolic link to `target`, in
/// one call that fails with `EEXIST` when `name` is taken (never replaces,
/// never follows what is there).
pub fn symlink_at(target: &CStr, dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    // SAFETY: descriptor kept open by the borrow, live NUL-terminated strings.
    retry(|| unsafe { libc::symlinkat(target.as_ptr(), dir.as_raw_fd(), name.as_ptr()) })?;
    Ok(())
}

/// `readlinkat(2)` of `name` in `dir` (never followed), at most `max`
/// bytes of its target: `EINVAL` when `name` is no symbolic link; a
/// target of `max` bytes or more may have been cut, and is `ENAMETOOLONG`.
pub fn readlink_at(dir: BorrowedFd<'_>, name: &CStr, max: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; max];
    // SAFETY: descriptor kept open by the borrow, live NUL-terminated name,
    // `buf` a live exclusive buffer of `max` bytes the kernel writes into.
    let n = retry(|| unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    })?;
    let n = n as usize;
    if n >= max {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    buf.truncate(n);
    Ok(buf)
}

/// Sets or clears `O_APPEND` on the open file `fd` (`fcntl(2)`
/// `F_GETFL`, then `F_SETFL`): while it is set, Linux writes at the
/// file's end whatever offset `pwrite` is given.
pub fn set_append(fd: BorrowedFd<'_>, append: bool) -> io::Result<()> {
    // SAFETY: descriptor kept open by the borrow; F_GETFL takes no
    // argument.
    let flags = retry(|| unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) })?;
    let flags = match append {
        true => flags | libc::O_APPEND,
        false => flags & !libc::O_APPEND,
    };
    // SAFETY: as above; F_SETFL takes the int flags.
    retry(|| unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, flags) })?;
    Ok(())
}

/// `fchmod(2)`.
pub fn fchmod(fd: BorrowedFd<'_>, mode: libc::mode_t) -> io::Result<()> {
    // SAFETY: descriptor kept open by the borrow.
    retry(|| unsafe { libc::fchmod(fd.as_raw_fd(), mode) })?;
    Ok(())
}

/// How many more descriptors [`done_with`] leaves open for the process's
/// exit to close; 0 (the default) closes them.
static LEAVE_TO_EXIT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// For a program that exits once its command is done: up to `max` of the
/// descriptors handed to [`done_with`] from now on are left open for the
/// exit to close, as `close(2)` would, one system call each saved. Only
/// descriptors whose close does nothing else (no lock released, nothing
/// flushed) are handed there. A program that goes on must not ask for it.
pub fn leave_descriptors_to_exit(max: usize) {
    LEAVE_TO_EXIT.store(max, std::sync::atomic::Ordering::Relaxed);
}

/// Closes `fd`, done with, or leaves it to the exit (see
/// [`leave_descriptors_to_exit`]).
pub fn done_with(fd: impl Into<OwnedFd>) {
    drop(ClosedOrLeft::new(fd.into()));
}

/// A descriptor that, dropped, is closed or left to the exit (see
/// [`leave_descriptors_to_exit`]): for a field, which a `Drop` cannot
/// move out to [`done_with`]. The size of an `OwnedFd`, whose niche it
/// keeps.
#[derive(Debug)]
pub struct ClosedOrLeft(mem::ManuallyDrop<OwnedFd>);

impl ClosedOrLeft {
    pub fn new(fd: OwnedFd) -> ClosedOrLeft {
        ClosedOrLeft(mem::ManuallyDrop::new(fd))
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&*self.0)
    }
}

impl Drop for ClosedOrLeft {
    fn drop(&mut self) {
        let left = LEAVE_TO_EXIT.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |n| n.checked_sub(1),
        );
        if left.is_err() {
            // SAFETY: the descriptor is dropped once, here, and never
            // used after: `self` is being dropped.
            unsafe { mem::ManuallyDrop::drop(&mut self.0) };
        }
    }
}

/// `fsync(2)` (`data_only`: `fdatasync(2)`).
pub fn fsync(fd: BorrowedFd<'_>, data_only: bool) -> io::Result<()> {
    // SAFETY: descriptor kept open by the borrow.
    retry(|| unsafe {
        if data_only {
            libc::fdatasync(fd.as_raw_fd())
        } else {
            libc::fsync(fd.as_raw_fd())
        }
    })?;
    Ok(())
}

/// Waits for the writeback of `fd`'s data and reports an error of it
/// nobody has seen (`sync_file_range(2)` with `WAIT_BEFORE`, `WRITE` and
/// `WAIT_AFTER` over the whole file; Linux 4.17 and later report it):
/// what `fdatasync` would say of the data, without the journal commit and
/// the device's cache flush it makes even for a file already written.
/// Not a sync: the data may still be in the device's cache.
pub fn wait_for_writeback(fd: BorrowedFd<'_>) -> io::Result<()> {
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    // SAFETY: descriptor kept open by the borrow; no memory is passed.
    retry(|| unsafe { libc::sync_file_range(fd.as_raw_fd(), 0, 0, flags) })?;
    Ok(())
}

/// The soft and hard limits on open descriptors (`RLIMIT_NOFILE`).
pub fn open_files_limit() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a live, writable rlimit.
    retry(|| unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) })?;
    Ok((limit.rlim_cur, limit.rlim_max))
}

/// How many descriptors this process has open: the entries of
/// `/proc/thread-self/fd` (the calling thread's table, which is the
/// process's, even once its main thread has ended), less the one reading
/// it. `EMFILE` when not one more can be opened.
pub fn open_descriptor_count() -> io::Result<u64> {
    let entries = list_dir(std::path::Path::new("/proc/thread-self/fd"))?;
    Ok((entries.len() as u64).saturating_sub(1))
}

/// Sets the soft limit on open descriptors to `soft` (at most the hard
/// limit, which is left as it is).
pub fn set_open_files_soft_limit(soft: u64) -> io::Result<()> {
    let (_, hard) = open_files_limit()?;
    let limit = libc::rlimit {
        rlim_cur: soft.min(hard),
        rlim_max: hard,
    };
    // SAFETY: `limit` is a live rlimit; setrlimit only reads it.
    retry(|| unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) })?;
    Ok(())
}

/// `syncfs(2)`: everything written to the file system `fd` is on, made
/// durable in one call.
pub fn syncfs(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: descriptor kept open by the borrow.
    retry(|| unsafe { libc::syncfs(fd.as_raw_fd()) })?;
    Ok(())
}

/// One entry of a directory listing ([`dir_names`], [`list_dir`],
/// [`list_dir_typed`]).
#[derive(Debug)]
pub struct DirEntry {
    pub name: Vec<u8>,
    /// Its `DT_*` type (`DT_DIR`, `DT_LNK`, `DT_REG`, ...) as the listing
    /// gives it: `DT_UNKNOWN` on a file system that does not say (XFS
    /// without `ftype`, some network file systems), unless typed.
    pub kind: u8,
}

impl DirEntry {
    /// The name as a path component.
    pub fn file_name(&self) -> &std::ffi::OsStr {
        std::os::unix::ffi::OsStrExt::from_bytes(&self.name)
    }
}

/// The entries of the directory `dir` (without `.` and `..`), read with
/// `getdents64(2)` on a descriptor of its own, so `dir`'s offset is left
/// alone.
pub fn dir_names(dir: BorrowedFd<'_>) -> io::Result<Vec<DirEntry>> {
    let own = openat(
        Some(dir),
        c".",
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )?;
    entries_of(&own, false)
}

/// The entries of the directory at `path`, a link to one followed (as
/// `opendir(3)` follows it): the standard library's `read_dir` without
/// its iterator, its shared stream and its `closedir` check, code no
/// caller here needs.
pub fn list_dir(path: &std::path::Path) -> io::Result<Vec<DirEntry>> {
    entries_of(&open_listed(path)?, false)
}

/// [`list_dir`] for a caller that needs each entry's type: where the
/// listing does not say, `fstatat` (a link not followed) does, as the
/// standard library's `DirEntry::file_type`; an entry removed before it
/// is left out, as if listed a moment later.
pub fn list_dir_typed(path: &std::path::Path) -> io::Result<Vec<DirEntry>> {
    entries_of(&open_listed(path)?, true)
}

fn open_listed(path: &std::path::Path) -> io::Result<OwnedFd> {
    openat(
        None,
        &c_os(path.as_os_str())?,
        libc::O_RDONLY | libc::O_DIRECTORY,
        0,
    )
}

/// Every entry of the open directory `dir` but `.` and `..`, their
/// unknown types looked up when `typed`.
fn entries_of(dir: &OwnedFd, typed: bool) -> io::Result<Vec<DirEntry>> {
    let mut entries = Vec::new();
    let mut buf = vec![0u8; 8192];
    loop {
        // SAFETY: the buffer is a live exclusive borrow of `buf.len()`
        // bytes, the descriptor ours and open; the kernel writes at most
        // that many bytes of whole records.
        let n = retry(|| unsafe {
            libc::syscall(
                libc::SYS_getdents64,
                dir.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        })? as usize;
        if n == 0 {
            return Ok(entries);
        }
        // linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, name NUL.
        let mut at = 0;
        while at + 19 <= n {
            let reclen = u16::from_ne_bytes([buf[at + 16], buf[at + 17]]) as usize;
            if reclen < 19 || at + reclen > n {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "getdents64 returned a malformed record",
                ));
            }
            let mut kind = buf[at + 18];
            let name = &buf[at + 19..at + reclen];
            let name = &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())];
            at += reclen;
            if name == b"." || name == b".." {
                continue;
            }
            if typed && kind == libc::DT_UNKNOWN {
                let c_name = c_os(std::os::unix::ffi::OsStrExt::from_bytes(name))?;
                kind = match lstat_at(dir.as_fd(), &c_name) {
                    // IFTODT: the `DT_*` value is the mode's type bits.
                    Ok(st) => ((st.st_mode & libc::S_IFMT) >> 12) as u8,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
            }
            entries.push(DirEntry {
                name: name.to_vec(),
                kind,
            });
        }
    }
}

/// Fills `buf` with random bytes from the kernel (`getrandom(2)`, one
/// call for up to 256 bytes), without opening `/dev/urandom`, and never
/// waiting for the kernel's pool to be initialised.
///
/// Nothing drawn here needs secrecy, only spread: a new link's index, a
/// temporary name, a network's id, each of which is refused or retried
/// when taken. A blocking `getrandom` waits until the pool is initialised,
/// which on a 4.x kernel without a hardware source (a headless VM early in
/// boot, where an init runs `restore`) can take minutes. So: the pool as
/// it is (`GRND_INSECURE`, Linux 5.6); before 5.6 (`EINVAL`), an
/// initialised pool's bytes (`GRND_NONBLOCK`); and while the pool is not
/// initialised yet (`EAGAIN`), [`mixed_bytes`].
///
/// `pretend(flags)`, when it gives an errno, stands for the kernel's
/// answer to a call with `flags`: how a test shows what kernels it does
/// not run on answer (one before 5.6, a pool not initialised yet).
pub fn random_bytes(
    buf: &mut [u8],
    pretend: impl Fn(libc::c_uint) -> Option<i32>,
) -> io::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    // Set once a kernel has refused `GRND_INSECURE`, so that an older one
    // costs one failed call per process, not per draw.
    static INSECURE_REFUSED: AtomicBool = AtomicBool::new(false);
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        let flags = match INSECURE_REFUSED.load(Ordering::Relaxed) {
            false => libc::GRND_INSECURE,
            true => libc::GRND_NONBLOCK,
        };
        let got = match pretend(flags) {
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => {
                let buf = rest.as_mut_ptr().cast();
                // SAFETY: `buf` is `rest`, a live, writable slice of the
                // length passed.
                retry(|| unsafe { libc::getrandom(buf, rest.len(), flags) })
            }
        };
        match got {
            Ok(got) => filled += got as usize,
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) && flags == libc::GRND_INSECURE => {
                INSECURE_REFUSED.store(true, Ordering::Relaxed)
            }
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => {
                mixed_bytes(rest);
                return Ok(());
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Bytes for [`random_bytes`] before the kernel's pool is initialised:
/// SplitMix64's sequence, seeded with both clocks, the process's id and
/// a count of the calls, so that no two draws of one process, nor two
/// processes started at once, get the same bytes.
fn mixed_bytes(buf: &mut [u8]) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static DRAWS: AtomicU64 = AtomicU64::new(0);
    const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
    let nanos = |clock| clock_now(clock).as_nanos() as u64;
    let mut seed = nanos(libc::CLOCK_MONOTONIC)
        ^ nanos(libc::CLOCK_REALTIME).rotate_left(32)
        ^ u64::from(std::process::id()) << 40
        ^ DRAWS
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(GOLDEN_GAMMA);
    for chunk in buf.chunks_mut(8) {
        seed = seed.wrapping_add(GOLDEN_GAMMA);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
    }
}

/// The effective capability set of the calling thread (`capget(2)`, both
/// 32-bit words of version 3), one call where `/proc/self/status` takes a
/// handful.
pub fn effective_capabilities() -> io::Result<u64> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: `header` and `data` are live, laid out as the kernel's
    // `__user_cap_header_struct` and two `__user_cap_data_struct`s, which
    // version 3 reads and writes.
    retry(|| unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut header as *mut Header,
            data.as_mut_ptr(),
        )
    })?;
    Ok(u64::from(data[0].effective) | (u64::from(data[1].effective) << 32))
}

/// What the Rust runtime's start does for a process and the binary still
/// wants, when the binary starts from its own C `main` (`src/main.rs`):
/// descriptors 0, 1 and 2 each open (one `poll(2)`; a closed one gets
/// `/dev/null`, so no file opened later becomes stdout and takes output
/// meant for it), and `SIGPIPE` ignored, so a closed pipe is an `EPIPE`
/// the output code ignores rather than a death half-way through a
/// command. Children get `SIGPIPE` back at its default: `std`'s `Command`
/// resets it before `exec` unless `#[unix_sigpipe]` was given.
pub fn prepare_process() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `fds` is a live array of three pollfd for the call.
    let polled = retry(|| unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) });
    if polled.is_ok() {
        for pollfd in fds {
            if pollfd.revents & libc::POLLNVAL != 0 {
                // SAFETY: a constant NUL-terminated path; the lowest free
                // descriptor is the one just found closed (lower ones are
                // open or were reopened in this same loop).
                let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
                if fd != pollfd.fd {
                    // As the Rust runtime does: a process that cannot have
                    // its standard descriptors must not go on.
                    std::process::abort();
                }
            }
        }
    }
    // SAFETY: sigaction is plain old data; all-zero is a valid value
    // (SIG_DFL, no flags, empty mask) that is then filled in.
    let mut action: libc::sigaction = unsafe { mem::zeroed() };
    action.sa_sigaction = libc::SIG_IGN;
    // SAFETY: a live sigaction for the call; a null old-action pointer is allowed.
    let _ = retry(|| unsafe { libc::sigaction(libc::SIGPIPE, &action, std::ptr::null_mut()) });
}

/// The arguments C's `main` receives, as `OsString`s (program name first).
///
/// # Safety
///
/// `argv` must point to `argc` pointers to NUL-terminated strings that
/// stay alive for the call, as C's `main` receives them.
pub unsafe fn args_from_c(
    argc: libc::c_int,
    argv: *const *const libc::c_char,
) -> Vec<std::ffi::OsString> {
    use std::os::unix::ffi::OsStringExt;
    let count = usize::try_from(argc).unwrap_or(0);
    (0..count)
        // SAFETY: the caller's promise: `argv` holds `argc` valid pointers.
        .map(|i| unsafe { *argv.add(i) })
        .take_while(|arg| !arg.is_null())
        // SAFETY: each is a live NUL-terminated string (the caller's promise).
        .map(|arg| std::ffi::OsString::from_vec(unsafe { CStr::from_ptr(arg) }.to_bytes().to_vec()))
        .collect()
}

/// The `ipvlan` binary's memory allocator (`#[global_allocator]` in
/// `src/main.rs`; the library leaves the choice to its users).
///
/// A command is a short-lived process that allocates a few hundred KiB
/// at most. musl's allocator maps a fresh group of pages for each size
/// that is new to it and unmaps a group as soon as it is empty again, so
/// one `network connect` made about 35 `mmap`/`munmap` calls for its
/// netlink and directory buffers. Here blocks of power-of-two sizes from
/// 16 bytes to 64 KiB are carved from one mapping, reserved 1 MiB at a
/// time (pages cost memory only once touched), and a freed block goes on
/// its size's free list for the next allocation of that size; nothing is
/// given back before exit. Larger or stranger requests go to musl's
/// allocator. A spin lock serialises the rare helper threads.
pub struct ProcessAllocator;

/// Block sizes `1 << MIN_SHIFT` ..= `1 << MAX_SHIFT`.
const MIN_SHIFT: u32 = 4;
const MAX_SHIFT: u32 = 16;
const CLASSES: usize = (MAX_SHIFT - MIN_SHIFT + 1) as usize;
/// Address space reserved at a time: under 2 MiB, so that no region can
/// hold an aligned transparent huge page, which a first touch would fault
/// in whole (2 MiB of peak RSS at once; seen with 4 MiB regions).
const REGION: usize = 1 << 20;
const PAGE: usize = 4096;

struct Arena {
    next: usize,
    end: usize,
    /// Head of each size's free list (0: empty); a free block holds the
    /// address of the next.
    free: [usize; CLASSES],
}

struct ArenaCell {
    locked: std::sync::atomic::AtomicBool,
    arena: std::cell::UnsafeCell<Arena>,
}

// SAFETY: `arena` is only reached while `locked` is held (`with_arena`).
unsafe impl Sync for ArenaCell {}

static ARENA: ArenaCell = ArenaCell {
    locked: std::sync::atomic::AtomicBool::new(false),
    arena: std::cell::UnsafeCell::new(Arena {
        next: 0,
        end: 0,
        free: [0; CLASSES],
    }),
};

fn with_arena<T>(f: impl FnOnce(&mut Arena) -> T) -> T {
    use std::sync::atomic::Ordering;
    while ARENA
        .locked
        .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        // Held by another thread (rare: a batch detach's four are the
        // most there are, and each holds it for a few instructions): the
        // holder, maybe preempted, is let run rather than spun against
        // for a whole time slice.
        // SAFETY: sched_yield(2) takes no arguments.
        unsafe { libc::sched_yield() };
    }
    // SAFETY: the lock is held until after `f` returns, so this is the
    // only reference to the arena.
    let result = f(unsafe { &mut *ARENA.arena.get() });
    ARENA.locked.store(false, Ordering::Release);
    result
}

/// The size class of `layout` (its block is `1 << (class + MIN_SHIFT)`
/// bytes, aligned to its size up to a page), or `None` for musl's.
fn size_class(layout: std::alloc::Layout) -> Option<usize> {
    let size = layout.size().max(layout.align()).max(1 << MIN_SHIFT);
    if size > 1 << MAX_SHIFT || layout.align() > PAGE {
        return None;
    }
    let shift = usize::BITS - (size - 1).leading_zeros();
    Some((shift - MIN_SHIFT) as usize)
}

impl Arena {
    fn alloc(&mut self, class: usize) -> *mut u8 {
        self.alloc_reporting_fresh(class).0
    }

    /// A block of `class`, and whether it was never handed out before: a
    /// fresh block is still as its anonymous mapping made it, all zeros.
    fn alloc_reporting_fresh(&mut self, class: usize) -> (*mut u8, bool) {
        let head = self.free[class];
        if head != 0 {
            // SAFETY: a block on the free list is ours, unused, at least 16
            // bytes and aligned, and holds the next block's address.
            self.free[class] = unsafe { *(head as *const usize) };
            return (head as *mut u8, false);
        }
        let size = 1usize << (class as u32 + MIN_SHIFT);
        let align = size.min(PAGE);
        let mut start = (self.next + align - 1) & !(align - 1);
        if self.next == 0 || start + size > self.end {
            // SAFETY: a fresh private anonymous mapping; no memory of ours
            // is named.
            let region = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    REGION,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                    -1,
                    0,
                )
            };
            if region == libc::MAP_FAILED {
                return (std::ptr::null_mut(), false);
            }
            self.next = region as usize;
            self.end = self.next + REGION;
            start = self.next;
        }
        // The bump pointer only moves forward through a mapping: the block
        // has never been written.
        self.next = start + size;
        #[cfg(feature = "fault-injection")]
        heap_peak::grow(size);
        (start as *mut u8, true)
    }

    fn free(&mut self, ptr: *mut u8, class: usize) {
        // SAFETY: `ptr` is a block of this class the caller gives back: at
        // least 16 bytes, aligned, and no longer used by anyone.
        unsafe { *(ptr as *mut usize) = self.free[class] };
        self.free[class] = ptr as usize;
    }
}

// SAFETY: blocks come from the arena (or `System`) sized and aligned for
// the layout, each handed out once until it is freed; the layout given
// back picks the same class (or `System`) it was allocated from.
unsafe impl std::alloc::GlobalAlloc for ProcessAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        match size_class(layout) {
            Some(class) => with_arena(|arena| arena.alloc(class)),
            None => {
                #[cfg(feature = "fault-injection")]
                heap_peak::grow(layout.size());
                // SAFETY: forwarded as received.
                unsafe { std::alloc::System.alloc(layout) }
            }
        }
    }

    /// A fresh block is zero already: a netlink receive buffer (`vec![0;
    /// 32 KiB]`) costs neither a pass over its bytes nor page faults for the
    /// pages no datagram reaches.
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        match size_class(layout) {
            Some(class) => {
                let (block, fresh) = with_arena(|arena| arena.alloc_reporting_fresh(class));
                if !block.is_null() && !fresh {
                    // SAFETY: a block of this class is at least
                    // `layout.size()` bytes, ours, and not in use.
                    unsafe { std::ptr::write_bytes(block, 0, layout.size()) };
                }
                block
            }
            None => {
                #[cfg(feature = "fault-injection")]
                heap_peak::grow(layout.size());
                // SAFETY: forwarded as received.
                unsafe { std::alloc::System.alloc_zeroed(layout) }
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        match size_class(layout) {
            Some(class) => with_arena(|arena| arena.free(ptr, class)),
            None => {
                #[cfg(feature = "fault-injection")]
                heap_peak::shrink(layout.size());
                // SAFETY: forwarded as received; it came from `System`.
                unsafe { std::alloc::System.dealloc(ptr, layout) }
            }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's promise: the new size, rounded up to the
        // alignment, does not overflow.
        let new =
            unsafe { std::alloc::Layout::from_size_align_unchecked(new_size, layout.align()) };
        let (old_class, new_class) = (size_class(layout), size_class(new));
        if old_class.is_some() && old_class == new_class {
            return ptr;
        }
        if old_class.is_none() && new_class.is_none() {
            #[cfg(feature = "fault-injection")]
            {
                heap_peak::grow(new_size);
                heap_peak::shrink(layout.size());
            }
            // SAFETY: forwarded as received; it came from `System`.
            return unsafe { std::alloc::System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: `new` is a valid non-zero layout (the caller's promise).
        let fresh = unsafe { self.alloc(new) };
        if !fresh.is_null() {
            // SAFETY: both blocks are live and distinct, each at least
            // the length copied.
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, fresh, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        fresh
    }
}

/// The heap's peak, in test builds (feature `fault-injection`): the bytes
/// [`ProcessAllocator`] carved from its mappings (kept to exit, as the
/// arena keeps them) plus those of musl's allocations then live. Unlike a
/// peak RSS read from the kernel, it is the same in every run of one
/// command and on every kernel (Linux 6.1 brings a process's resident
/// count up to date every 64 page faults only), so a test can hold a
/// command's memory to a bound without a margin for the kernel's count.
#[cfg(feature = "fault-injection")]
pub mod heap_peak {
    use std::sync::atomic::{AtomicUsize, Ordering};

    static NOW: AtomicUsize = AtomicUsize::new(0);
    static PEAK: AtomicUsize = AtomicUsize::new(0);

    pub(super) fn grow(bytes: usize) {
        let now = NOW.fetch_add(bytes, Ordering::Relaxed) + bytes;
        PEAK.fetch_max(now, Ordering::Relaxed);
    }

    pub(super) fn shrink(bytes: usize) {
        NOW.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// The peak so far, in bytes.
    pub fn bytes() -> usize {
        PEAK.load(Ordering::Relaxed)
    }
}

/// A child's standard file (see [`spawn_held`]).
pub enum ChildIo<'a> {
    /// Ours, as it is.
    Inherit,
    /// `/dev/null`, for reading and writing.
    Null,
    /// A descriptor of ours (a duplicate; ours stays open).
    Fd(BorrowedFd<'a>),
}

/// What [`spawn_held`] starts.
pub struct Spawn<'a> {
    /// The program: a path, or a name looked up in `PATH` (ours).
    pub program: &'a std::ffi::OsStr,
    /// Its arguments after `argv[0]` (which is `program`), any bytes but NUL.
    pub args: &'a [std::ffi::OsString],
    /// Its environment, in whose `PATH` (not ours) `program` is looked
    /// up, as `env(1)` does; `None`: ours.
    pub env: Option<&'a [(std::ffi::OsString, std::ffi::OsString)]>,
    /// Its stdin, stdout and stderr.
    pub stdio: [ChildIo<'a>; 3],
    /// In a session (and so a process group) of its own, with no
    /// controlling terminal: a Ctrl-C or hang-up of our terminal misses it,
    /// as it misses a container's processes under Docker.
    pub own_session: bool,
}

fn c_os(text: &std::ffi::OsStr) -> io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(text.as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in an argument"))
}

/// Starts a program, held before it runs: it waits (in its namespace,
/// with its standard streams) until [`HeldChild::release`] lets it go
/// (which returns its pid, or the error that kept it from running:
/// `execve`'s, e.g. `ENOENT`, `EACCES`, `ETXTBSY`, read back from the child
/// through a close-on-exec pipe), and ends without running anything when
/// the [`HeldChild`] is dropped (or this process ends) first. Lets the
/// caller check, once the child exists, that it should run at all, before
/// any of the program's code (or a process it would start) exists.
///
/// The child starts with an empty signal mask and every disposition at
/// its default, as a container's processes start: an ignored signal
/// survives `execve` (`SIGPIPE` ignored here; `SIGCHLD` ignored by whoever
/// started us would have the kernel reap the program's own children, its
/// `wait` finding no status; `nohup` ignores `SIGHUP`). A fork and an
/// exec, nothing else:
/// `Command` brought about 20 KiB of code into the binary (its environment
/// map, `posix_spawn` and pidfd paths) for the ways the crate starts
/// programs. The child is not waited for: see [`wait_child`], or
/// [`spawn_kept`] for a program this process waits for.
pub fn spawn_held(what: &Spawn<'_>) -> io::Result<HeldChild> {
    start(what, true, None)
}

/// [`spawn_held`] for a command this process waits for
/// ([`Running::wait`]), whose status reaches us whatever the rest of the
/// process does with its children. A program embedding the library (an
/// init, a runtime's shim) may reap every child that ends (`waitpid(-1)`
/// in a `SIGCHLD` handler or a thread of its own): a child of ours would
/// be taken with its status before our `waitpid`. So the command is the
/// child of a keeper, a process of ours that never runs a program of its
/// own: it reads the command's status without reaping it (`waitid` with
/// `WNOWAIT`), hands it to us through a socket, and reaps the command only
/// once we close that socket, so that until then the command's pid is
/// still the command's (a signal we pass on reaches it or nothing). A
/// reaper may take the keeper: its status is not what we wait for. The
/// keeper is in a process group of its own (the command in ours), sends
/// what is sent to it on to us, ends with us (see [`keep`]), and goes back
/// to `home` (a network namespace; `None`: it stays where it is made) once
/// the command is made, so that an `rm -f` looking for the processes in
/// the command's namespace finds the command and not it. It is a fork of this process, whose pages it shares
/// until it ends.
pub fn spawn_kept(what: &Spawn<'_>, home: Option<BorrowedFd<'_>>) -> io::Result<HeldChild> {
    start(what, true, Some(home.map_or(-1, |home| home.as_raw_fd())))
}

/// A child forked by [`spawn_held`], waiting to run its program. Dropped
/// before [`HeldChild::release`], the child is killed and reaped.
#[derive(Debug)]
pub struct HeldChild {
    pid: u32,
    /// Where `execve`'s error comes from; closed at a successful exec.
    report: OwnedFd,
    /// Our end of the child's gate (a socket pair): one byte lets it go,
    /// closing it without one ends it. `None` for a child not held.
    gate: Option<OwnedFd>,
    /// The child's keeper ([`spawn_kept`]); `None`: the child is ours.
    keeper: Option<Keeper>,
}

/// The keeper of a command started by [`spawn_kept`].
#[derive(Debug)]
struct Keeper {
    pid: u32,
    /// Our end of the socket the keeper writes the command's pid to, then
    /// its wait status (4 bytes each); closing it lets the keeper reap the
    /// command and end.
    channel: OwnedFd,
}

/// The next 4 bytes of `fd` as an `i32` (what a child, or a keeper,
/// writes in one `write`): `None` once the other end has closed before
/// they all came.
fn read_word(fd: BorrowedFd<'_>) -> io::Result<Option<i32>> {
    let mut bytes = [0u8; 4];
    let mut got = 0;
    while got < bytes.len() {
        // SAFETY: reads into the live tail of `bytes` from `fd`.
        let n = retry(|| unsafe {
            libc::read(
                fd.as_raw_fd(),
                bytes[got..].as_mut_ptr().cast(),
                bytes.len() - got,
            )
        })?;
        if n == 0 {
            return Ok(None);
        }
        got += n as usize;
    }
    Ok(Some(i32::from_ne_bytes(bytes)))
}

impl Keeper {
    /// The next 4 bytes the keeper sends: `None` once it has closed its
    /// end (killed).
    fn receive(&self) -> io::Result<Option<i32>> {
        read_word(std::os::fd::AsFd::as_fd(&self.channel))
    }

    /// [`Keeper::dismiss`] once the command, ended or about to (killed),
    /// has its status read: a keeper that finds our end closed first
    /// takes it for our end and leaves the command to the init process.
    fn dismiss_once_ended(self) {
        let _ = self.receive();
        self.dismiss();
    }

    /// Lets the keeper reap the command, whose status it has sent, and
    /// end; reaps the keeper, unless another reaper of the process took
    /// it.
    fn dismiss(self) {
        let Keeper { pid, channel } = self;
        // Shut down, not only closed: a copy of our end that a fork of the
        // caller's holds (one without exec) would keep the keeper waiting.
        // SAFETY: shutdown(2) of our own socket; no memory passed.
        unsafe { libc::shutdown(channel.as_raw_fd(), libc::SHUT_RDWR) };
        drop(channel);
        let _ = wait_child(pid, false);
    }
}

impl HeldChild {
    /// Lets the child run its program; returns it running, or the error
    /// that kept it from running (the child reaped).
    /// A child that ended while held (killed: an `rm -f` looking for
    /// processes in its namespace) is reaped, and the error is `EPIPE`.
    pub fn release(mut self) -> io::Result<Running> {
        if let Some(gate) = self.gate.take() {
            // SAFETY: sends one byte from a live array on our socket.
            let wrote = retry(|| unsafe {
                libc::send(
                    gate.as_raw_fd(),
                    [1u8].as_ptr().cast(),
                    1,
                    libc::MSG_NOSIGNAL,
                )
            });
            if !matches!(wrote, Ok(1)) {
                let _ = kill(self.pid, libc::SIGKILL);
                self.reap();
                return Err(match wrote {
                    Err(error) => error,
                    Ok(_) => io::Error::new(io::ErrorKind::WriteZero, "releasing a held child"),
                });
            }
        }
        let Some(errno) = read_word(std::os::fd::AsFd::as_fd(&self.report))? else {
            // The pipe closed on exec: the program runs.
            return Ok(Running {
                pid: self.pid,
                keeper: self.keeper.take(),
            });
        };
        // It did not run: reap the child, which exits at once.
        self.reap();
        Err(match errno {
            // Its own preparation failed, before `execve`.
            ..=-1 => not_the_program(
                "preparing the command",
                &io::Error::from_raw_os_error(-errno),
            ),
            _ => io::Error::from_raw_os_error(errno),
        })
    }

    /// Ends the held child without letting it run anything, and reaps it.
    pub fn stop(self) {
        drop(self);
    }

    /// Reaps the child, ended or about to (or has its keeper reap it).
    fn reap(&mut self) {
        match self.keeper.take() {
            Some(keeper) => keeper.dismiss_once_ended(),
            None => {
                let _ = wait_child(self.pid, false);
            }
        }
    }
}

impl Drop for HeldChild {
    fn drop(&mut self) {
        // Still held: never let go, so never to run.
        if self.gate.take().is_some() {
            let _ = kill(self.pid, libc::SIGKILL);
            self.reap();
        }
    }
}

/// A program [`HeldChild::release`] let run.
#[derive(Debug)]
pub struct Running {
    pid: u32,
    keeper: Option<Keeper>,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Waits for the program to end. With `forwarding`, passes each of
    /// [`forwarded_signals`] that another process sends this one (`kill`,
    /// `sigqueue`: a supervisor stopping us) on to it, as `docker run`
    /// does, and those the kernel sends to us alone (an inherited
    /// `alarm`). The terminal's (a Ctrl-C, a hang-up) are not passed on
    /// while the program shares our process group: they went to the
    /// terminal's foreground group, so it has them already
    /// ([`reached_the_child_too`]); but a hang-up that came to us as our
    /// session's leader is, and any of them once the program has a group
    /// of its own. They must be
    /// blocked in every thread of the process
    /// ([`SignalBlock::for_forwarding`], before any thread starts), or a
    /// thread that does not block them takes them instead.
    pub fn wait(mut self, forwarding: bool) -> io::Result<ChildStatus> {
        let Some(keeper) = self.keeper.take() else {
            // Ours: nothing to pass signals on through.
            return wait_child(self.pid, false)
                .map(|status| status.unwrap_or(ChildStatus::Exited(0)));
        };
        if forwarding {
            // Should passing signals on fail (no descriptor left for the
            // signalfd), the status is still waited for.
            let _ = self.forward_until_ended(&keeper);
        }
        let status = keeper.receive();
        keeper.dismiss();
        match status? {
            Some(status) => Ok(ChildStatus::from_wait_status(status)),
            None => Err(io::Error::other(
                "the process keeping the command's status was killed: its status is unknown",
            )),
        }
    }

    /// [`Running::wait`] without passing signals on, for at most until
    /// `deadline` (a time of `CLOCK_MONOTONIC`, see [`clock_now`]): `None`
    /// once it has passed, the program still running (dropped, it is
    /// killed and reaped). For a program [`spawn_kept`] started; any other
    /// is waited for to its end.
    pub fn wait_until(self, deadline: std::time::Duration) -> io::Result<Option<ChildStatus>> {
        if let Some(keeper) = &self.keeper {
            loop {
                let left = deadline.saturating_sub(clock_now(libc::CLOCK_MONOTONIC));
                if left.is_zero() {
                    return Ok(None);
                }
                let mut ready = libc::pollfd {
                    fd: keeper.channel.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // Rounded up: a poll that ends a little early only loops.
                let ms = left.as_millis().saturating_add(1).min(i32::MAX as u128) as libc::c_int;
                // SAFETY: polls one live pollfd entry.
                match unsafe { libc::poll(&mut ready, 1, ms) } {
                    -1 => {
                        // Interrupted (a handler of the caller's ran): the
                        // time left is counted again, never restarted whole.
                        if let Some(error) = failure_unless_interrupted() {
                            return Err(error);
                        }
                    }
                    0 => {}
                    _ => break,
                }
            }
        }
        self.wait(false).map(Some)
    }

    /// Passes the signals of [`Running::wait`] on until the keeper has
    /// the program's status for us (or has gone).
    fn forward_until_ended(&self, keeper: &Keeper) -> io::Result<()> {
        let set = signal_set(&forwarded_signals());
        // SAFETY: signalfd(2) with a live sigset_t; the result is a new
        // descriptor we own.
        let signals =
            retry(|| unsafe { libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) })?;
        // SAFETY: just returned by the kernel, owned by nobody else.
        let signals = unsafe { OwnedFd::from_raw_fd(signals) };
        loop {
            let mut ready = [
                libc::pollfd {
                    fd: keeper.channel.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: signals.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: polls two live pollfd entries, for ever.
            retry(|| unsafe { libc::poll(ready.as_mut_ptr(), 2, -1) })?;
            // The status (or the keeper's end) first: once the keeper has
            // gone, the pid may be another process's soon.
            if ready[0].revents != 0 {
                return Ok(());
            }
            while let Some((signal, code, sender)) = next_signal(signals.as_raw_fd()) {
                if !reached_the_child_too(signal, code, self.pid)
                    && !sent_by(code, sender, self.pid)
                {
                    // Not yet reaped (its keeper waits for us), so `pid`
                    // is still the program's, even if it has just ended.
                    let _ = kill(self.pid, signal);
                }
            }
        }
    }
}

impl Drop for Running {
    /// A kept program let go without a wait is killed: nobody would
    /// read its status.
    fn drop(&mut self) {
        if let Some(keeper) = self.keeper.take() {
            let _ = kill(self.pid, libc::SIGKILL);
            keeper.dismiss_once_ended();
        }
    }
}

/// Forks the child of [`spawn_held`] and (with `kept`, under its keeper,
/// which goes home to that descriptor unless it is -1) [`spawn_kept`].
fn start(what: &Spawn<'_>, held: bool, kept: Option<libc::c_int>) -> io::Result<HeldChild> {
    // Everything the child needs is built here: between fork and exec
    // only async-signal-safe calls, no allocation.
    let program = c_os(what.program)?;
    let mut args = vec![program.clone()];
    for arg in what.args {
        args.push(c_os(arg)?);
    }
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let env: Option<Vec<std::ffi::CString>> = match what.env {
        Some(vars) => Some(
            vars.iter()
                .map(|(k, v)| {
                    let mut pair = k.clone();
                    pair.push("=");
                    pair.push(v);
                    c_os(&pair)
                })
                .collect::<io::Result<_>>()?,
        ),
        None => None,
    };
    let envp: Option<Vec<*const libc::c_char>> = env.as_ref().map(|vars| {
        let mut envp: Vec<*const libc::c_char> = vars.iter().map(|v| v.as_ptr()).collect();
        envp.push(std::ptr::null());
        envp
    });
    // The sources of the child's 0-2, each at 3 or above, so setting one
    // of 0-2 in the child never overwrites the source of another.
    let mut sources: [Option<OwnedFd>; 3] = [None, None, None];
    for (at, io) in what.stdio.iter().enumerate() {
        sources[at] = match io {
            ChildIo::Inherit => None,
            ChildIo::Null => {
                let fd = openat(None, c"/dev/null", libc::O_RDWR, 0)
                    .map_err(|e| not_the_program("opening /dev/null", &e))?;
                Some(dup_above_2(std::os::fd::AsFd::as_fd(&fd))?)
            }
            ChildIo::Fd(fd) => Some(dup_above_2(*fd)?),
        };
    }
    let mut pipe = [-1; 2];
    // SAFETY: `pipe` is a live array of two ints for pipe2 to fill.
    retry(|| unsafe { libc::pipe2(pipe.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: both descriptors were just made by pipe2 and are ours.
    let (report_read, report_write) =
        unsafe { (OwnedFd::from_raw_fd(pipe[0]), OwnedFd::from_raw_fd(pipe[1])) };
    let (report_read, report_write) = (above_2(report_read)?, above_2(report_write)?);
    let raw = |at: usize| sources[at].as_ref().map_or(-1, |fd| fd.as_raw_fd());
    let raw_sources = [raw(0), raw(1), raw(2)];
    let gate = match held {
        // A socket pair, not a pipe: the release's `send` to a child
        // killed meanwhile is an `EPIPE` (`MSG_NOSIGNAL`), never a
        // `SIGPIPE`, which would end a host program that keeps it at its
        // default.
        true => Some(socket_pair()?),
        false => None,
    };
    let raw_gate = gate
        .as_ref()
        .map_or([-1, -1], |(wait, go)| [wait.as_raw_fd(), go.as_raw_fd()]);
    let channel = match kept {
        Some(_) => Some(socket_pair()?),
        None => None,
    };
    // What the keeper relays (see `keep`), made here: this allocates.
    let keeper_signals = kept.map(|_| {
        let mut relayed = forwarded_signals();
        relayed.extend([libc::SIGTSTP, libc::SIGTTIN, libc::SIGTTOU]);
        signal_set(&relayed)
    });
    let pipes = ChildPipes {
        report: report_write.as_raw_fd(),
        gate: raw_gate,
        group: match (kept, what.own_session) {
            // SAFETY: getpgrp(2) takes nothing and cannot fail.
            (Some(_), false) => unsafe { libc::getpgrp() },
            _ => 0,
        },
    };
    // SAFETY: fork(2); the child below (and the keeper's) only makes
    // async-signal-safe calls on memory prepared above and ends in execve
    // or _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let command = || {
            // SAFETY: in the child; see `child_exec`.
            unsafe {
                child_exec(
                    &program,
                    &argv,
                    envp.as_deref(),
                    raw_sources,
                    what.own_session,
                    pipes,
                )
            }
        };
        match (&channel, kept, &keeper_signals) {
            // SAFETY: in the keeper, a child just forked; see `keep`.
            (Some((_, theirs)), Some(home), Some(relayed)) => unsafe {
                keep(theirs.as_raw_fd(), home, relayed, &command)
            },
            _ => command(),
        }
        // SAFETY: not reached: `command` ends in execve or _exit.
        unsafe { libc::_exit(127) }
    }
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    drop(report_write);
    drop(sources);
    let (child, keeper) = match channel {
        Some((ours, theirs)) => {
            drop(theirs);
            let keeper = Keeper {
                pid: pid as u32,
                channel: ours,
            };
            match keeper.receive() {
                Ok(Some(command)) if command > 0 => (command as u32, Some(keeper)),
                failed => {
                    // A command made is held at its gate: let it end first.
                    drop(gate);
                    keeper.dismiss();
                    return Err(match failed {
                        Ok(Some(errno)) => not_the_program(
                            "the command's keeper",
                            &io::Error::from_raw_os_error(-errno),
                        ),
                        Ok(None) => io::Error::other("the command's keeper ended before it"),
                        Err(error) => error,
                    });
                }
            }
        }
        None => (pid as u32, None),
    };
    Ok(HeldChild {
        pid: child,
        report: report_read,
        gate: gate.map(|(_, go)| go),
        keeper,
    })
}

/// The next signal a signalfd holds, with its `si_code` and sender; `None` when it
/// holds none (or the read fails). One `read`: async-signal-safe, for the
/// keeper too.
fn next_signal(signals: libc::c_int) -> Option<(libc::c_int, i32, u32)> {
    // SAFETY: signalfd_siginfo is plain old data, filled in by the kernel.
    let mut info: libc::signalfd_siginfo = unsafe { mem::zeroed() };
    let size = mem::size_of::<libc::signalfd_siginfo>();
    // SAFETY: reads at most `size` bytes into `info`.
    let n = unsafe {
        libc::read(
            signals,
            (&mut info as *mut libc::signalfd_siginfo).cast(),
            size,
        )
    };
    (n == size as isize).then_some((info.ssi_signo as libc::c_int, info.ssi_code, info.ssi_pid))
}

/// Whether a signal taken from a signalfd (its `si_code` and sender) was
/// sent by process `command` itself (a `kill` to its parent, say, the
/// keeper or us): passed back, it would strike the command that sent it
/// (`kill -USR1 $PPID`, a daemon telling its parent it is ready), which
/// neither `docker` nor `ip netns exec` does.
fn sent_by(code: i32, sender: u32, command: u32) -> bool {
    code <= 0 && sender == command
}

/// Two connected stream sockets (`AF_UNIX`), close-on-exec.
fn socket_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut ends = [-1; 2];
    // SAFETY: `ends` is a live array of two ints for socketpair to fill.
    retry(|| unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            ends.as_mut_ptr(),
        )
    })?;
    // SAFETY: both descriptors were just made by socketpair and are ours.
    let (one, other) = unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
    Ok((above_2(one)?, above_2(other)?))
}

/// The keeper of [`spawn_kept`]: forks the command (`command`, which
/// never returns), then sends the parent the command's pid (or `-errno`
/// when it could not be made, or the keeper could not go home) and, once
/// it has ended, its wait status, through `channel`, and reaps it when the
/// parent closes its end. It leaves our process group for one of its own,
/// which the command leaves again for ours (see [`ChildPipes::group`]):
/// what is sent to the group (a Ctrl-C, a `kill` of the job) reaches the
/// command and us as before, not the keeper. What of `relayed` is sent to
/// the keeper itself, the command's parent (a process that signals the
/// command's `$PPID`), it sends on to the parent, whose the signal would
/// have been; but not what the command itself sends (see [`sent_by`]),
/// nor what the parent sends it.
/// Should the parent end first (killed), the keeper ends at once and
/// leaves the command to the init process, as the parent's end would have
/// (a stopped command's group orphaned is woken up by the kernel). Never
/// returns.
///
/// # Safety
///
/// Only in a child just forked, with `channel` open and `home` open or
/// -1: async-signal-safe calls only.
unsafe fn keep(
    channel: libc::c_int,
    home: libc::c_int,
    relayed: &libc::sigset_t,
    command: &dyn Fn(),
) -> ! {
    // SAFETY: async-signal-safe calls only, on memory of this process;
    // every path ends in _exit (the command's in execve or _exit).
    unsafe {
        let send = |value: i32| {
            let bytes = value.to_ne_bytes();
            libc::write(channel, bytes.as_ptr().cast(), bytes.len()) == bytes.len() as isize
        };
        let errno = || *libc::__errno_location();
        // Every signal blocked, those it acts on read from a signalfd (the
        // command starts with an empty mask). `SIGCHLD` at its default,
        // for the command's status to wait for us: ignored (a disposition
        // of the caller's), the kernel would reap it; a handler of the
        // caller's would run here.
        let mut all: libc::sigset_t = mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
        let default: libc::sigaction = mem::zeroed();
        libc::sigaction(libc::SIGCHLD, &default, std::ptr::null_mut());
        libc::setpgid(0, 0);
        let parent = libc::getppid();
        let pid = libc::fork();
        if pid == 0 {
            command();
            libc::_exit(127);
        }
        // Read before the closes below, whose fallback (no `close_range`)
        // sets it.
        let fork_errno = errno();
        // The descriptors of the parent's that the keeper holds copies of
        // (the command's pipes among them, whose ends must close with the
        // command's) go: only the channel and `home` stay.
        close_from_3_except([channel, if home < 0 { channel } else { home }]);
        if pid < 0 {
            send(-fork_errno);
            libc::_exit(0);
        }
        let mut waited = *relayed;
        libc::sigaddset(&mut waited, libc::SIGCHLD);
        let signals = match home < 0 || libc::setns(home, libc::CLONE_NEWNET) == 0 {
            true => libc::signalfd(-1, &waited, libc::SFD_CLOEXEC),
            false => -1,
        };
        if signals == -1 {
            // The command, held at its gate, never runs.
            let failed = errno();
            libc::kill(pid, libc::SIGKILL);
            send(-failed);
        } else if send(pid) {
            libc::close(home);
            let mut ended: libc::siginfo_t = mem::zeroed();
            loop {
                let mut ready = [
                    libc::pollfd {
                        fd: channel,
                        events: libc::POLLIN,
                        revents: 0,
                    },
                    libc::pollfd {
                        fd: signals,
                        events: libc::POLLIN,
                        revents: 0,
                    },
                ];
                libc::poll(ready.as_mut_ptr(), 2, -1);
                if ready[0].revents != 0 {
                    // The parent never writes: it has ended.
                    libc::_exit(0);
                }
                let Some((signal, code, sender)) = next_signal(signals) else {
                    continue;
                };
                if signal != libc::SIGCHLD {
                    // Neither what the command sent, nor what the parent
                    // sent us itself (a `kill(-1, ..)` that spared only
                    // it): sent back, either would strike its sender.
                    if !sent_by(code, sender, pid as u32) && !sent_by(code, sender, parent as u32) {
                        libc::kill(parent, signal);
                    }
                    continue;
                }
                // Ended, or only stopped or continued?
                let rc = libc::waitid(
                    libc::P_PID,
                    pid as libc::id_t,
                    &mut ended,
                    libc::WEXITED | libc::WNOWAIT | libc::WNOHANG,
                );
                if rc == -1 {
                    break;
                }
                if ended.si_pid() == pid {
                    let code = ended.si_status();
                    send(match ended.si_code {
                        libc::CLD_EXITED => (code & 0xff) << 8,
                        libc::CLD_DUMPED => code | 0x80,
                        _ => code,
                    });
                    break;
                }
            }
            // No status follows; the parent reads to its end, then closes.
            libc::shutdown(channel, libc::SHUT_WR);
            let mut byte = 0u8;
            while libc::read(channel, (&mut byte as *mut u8).cast(), 1) > 0 {}
        }
        let mut status = 0;
        libc::waitpid(pid, &mut status, 0);
        libc::_exit(0)
    }
}

/// A failure to start a command that is not its program's: ours, while
/// preparing it (`/dev/null` missing, a descriptor refused, its keeper's
/// namespace). The error keeps `error`'s kind and text but no errno, so
/// that nothing reads it as `execve`'s (a command not found, exit 127, or
/// not executable, 126).
fn not_the_program(what: &str, error: &io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{what}: {error}"))
}

/// The child's ends of [`spawn_held`]'s pipes.
#[derive(Clone, Copy)]
struct ChildPipes {
    /// Where an `execve` error is written (close-on-exec).
    report: libc::c_int,
    /// The gate's read and write ends ([`spawn_held`]), -1 when not held.
    gate: [libc::c_int; 2],
    /// The process group the child joins (ours, which its keeper left:
    /// see [`keep`]); 0 for none.
    group: libc::pid_t,
}

extern "C" {
    /// The C library's environment (`NAME=value` strings, NULL-ended),
    /// which `getenv` and `execvp` read. Written only in a child just
    /// forked (see [`child_exec`]).
    static mut environ: *mut *mut libc::c_char;
}

/// The child's half of [`spawn_held`]: never returns.
///
/// # Safety
///
/// Only in a child just forked, with every pointer built before the fork.
unsafe fn child_exec(
    program: &CStr,
    argv: &[*const libc::c_char],
    envp: Option<&[*const libc::c_char]>,
    sources: [libc::c_int; 3],
    own_session: bool,
    pipes: ChildPipes,
) -> ! {
    let ChildPipes {
        report,
        gate,
        group,
    } = pipes;
    // SAFETY: async-signal-safe calls only, on memory the parent built
    // before fork; every path ends in execve or _exit.
    unsafe {
        // `execve`'s errno as it is; a failure before it negated, so that
        // the parent does not take it for the program's (a "not found"
        // or "permission denied" of ours would read as exit 127 or 126).
        let report_errno = |report: libc::c_int, sign: i32| -> ! {
            let errno = io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL);
            let bytes = (sign * errno).to_ne_bytes();
            libc::write(report, bytes.as_ptr().cast(), bytes.len());
            libc::_exit(127)
        };
        let fail = |report: libc::c_int| -> ! { report_errno(report, -1) };
        for (at, source) in sources.into_iter().enumerate() {
            if source >= 0 && libc::dup2(source, at as libc::c_int) == -1 {
                fail(report);
            }
        }
        // A child just forked leads no process group, so setsid succeeds.
        if own_session && libc::setsid() == -1 {
            fail(report);
        }
        if group > 0 && libc::setpgid(0, group) == -1 {
            fail(report);
        }
        if gate[0] >= 0 {
            // Every descriptor but the gate's read end and the report goes
            // now (exec would close them anyway): our copy of the gate's
            // write end, and those of children other threads are making,
            // so that the parent's alone keeps the gate open, and it
            // closing (or ending) without a byte ends us here, before
            // anything runs.
            close_from_3_except([gate[0], report]);
            let mut go = 0u8;
            let read = loop {
                let n = libc::read(gate[0], (&mut go as *mut u8).cast(), 1);
                if n != -1 || *libc::__errno_location() != libc::EINTR {
                    break n;
                }
            };
            if read != 1 {
                libc::_exit(127);
            }
        }
        close_inherited_at_exec(report);
        // Every disposition at its default, as a container's processes
        // start: `execve` resets handlers, but an ignored signal stays
        // ignored (`SIGPIPE` is, in ipvlan; `nohup` or a shell's `&`
        // ignore others, a library's caller `SIGCHLD`). By the system call
        // itself: musl's `sigaction` refuses the three signals it keeps
        // for its threads (32-34), which a program of another libc uses.
        // Handled signals are left to `execve`, which resets them.
        let default = KernelSigaction::default();
        for signal in 1..=SIGNAL_MAX {
            let mut current = KernelSigaction::default();
            let looked = libc::syscall(
                libc::SYS_rt_sigaction,
                signal,
                std::ptr::null::<KernelSigaction>(),
                &mut current as *mut KernelSigaction,
                mem::size_of::<u64>(),
            );
            if looked == 0
                && current.handler == libc::SIG_IGN
                && libc::syscall(
                    libc::SYS_rt_sigaction,
                    signal,
                    &default as *const KernelSigaction,
                    std::ptr::null_mut::<KernelSigaction>(),
                    mem::size_of::<u64>(),
                ) == -1
            {
                fail(report);
            }
        }
        let mut empty: libc::sigset_t = mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::pthread_sigmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
        // The child's own environment from here (it has one thread, so
        // no reader elsewhere), which `execvp` looks `program` up in and
        // passes on; `execvpe` would look it up in the parent's `PATH`.
        if let Some(envp) = envp {
            environ = envp.as_ptr().cast_mut().cast();
        }
        libc::execvp(program.as_ptr(), argv.as_ptr());
        report_errno(report, 1)
    }
}

/// The highest signal number (`SIGRTMAX` on Linux: `_NSIG - 1`).
const SIGNAL_MAX: libc::c_int = 64;

/// The kernel's `struct sigaction` for `rt_sigaction(2)` on x86-64 (not
/// libc's): handler, flags, restorer, a 64-bit mask. All zero: `SIG_DFL`,
/// no flags, nothing masked.
#[repr(C)]
#[derive(Default)]
struct KernelSigaction {
    handler: usize,
    flags: u64,
    restorer: usize,
    mask: u64,
}

/// In a child just forked: every descriptor above 2 goes at `execve`, so
/// that the command gets only its standard streams, as a container does.
/// Ours are close-on-exec already; these are what the caller of ipvlan
/// left open (a lock it holds, a test runner's pipe), which a detached
/// command would otherwise hold for its whole life. `report` (the pipe an
/// exec failure is written to, close-on-exec) stays open until then.
///
/// # Safety
///
/// Only in a child just forked: async-signal-safe system calls only.
unsafe fn close_inherited_at_exec(report: libc::c_int) {
    let close_range = |first: libc::c_uint, last: libc::c_uint, flags: libc::c_uint| {
        // SAFETY: close_range(2) on descriptor numbers; no memory passed.
        unsafe { libc::syscall(libc::SYS_close_range, first, last, flags) == 0 }
    };
    // Linux 5.11: marked, none closed before the exec.
    if close_range(3, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC) {
        return;
    }
    // Older: closed now, all but `report`.
    // SAFETY: in a child just forked, as this function.
    unsafe { close_from_3_except([report, report]) }
}

/// In a child just forked: closes every descriptor from 3 up but the two
/// of `keep` (each 3 or above; the same one twice keeps one): in three
/// `close_range` calls (Linux 5.9), else one at a time up to the soft
/// limit on descriptors.
///
/// # Safety
///
/// Only in a child just forked: async-signal-safe system calls only.
unsafe fn close_from_3_except(keep: [libc::c_int; 2]) {
    let as_uint = |fd: libc::c_int| libc::c_uint::try_from(fd).unwrap_or(libc::c_uint::MAX);
    let (low, high) = match keep[0] <= keep[1] {
        true => (as_uint(keep[0]), as_uint(keep[1])),
        false => (as_uint(keep[1]), as_uint(keep[0])),
    };
    let close_range = |first: libc::c_uint, last: libc::c_uint| {
        // SAFETY: close_range(2) on descriptor numbers; no memory passed.
        first > last || unsafe { libc::syscall(libc::SYS_close_range, first, last, 0) == 0 }
    };
    if close_range(3, low.saturating_sub(1))
        && close_range(low.saturating_add(1), high.saturating_sub(1))
        && close_range(high.saturating_add(1), libc::c_uint::MAX)
    {
        return;
    }
    // Older than 5.9.
    // SAFETY: rlimit is plain integers; all zeros is a valid value.
    let mut limit: libc::rlimit = unsafe { mem::zeroed() };
    // SAFETY: getrlimit writes the struct it is given.
    let top = match unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } {
        0 => limit.rlim_cur.min(1 << 20) as libc::c_uint,
        _ => 1024,
    };
    for fd in 3..top {
        if fd != low && fd != high {
            // SAFETY: closing a descriptor number; EBADF is harmless.
            unsafe { libc::close(fd as libc::c_int) };
        }
    }
}

/// `fd`, or a copy of it above 2 if it is a standard stream's number (a
/// program that closed its standard streams gets those numbers back from
/// the kernel first): the child's `dup2`s onto 0-2 would replace it, and
/// [`close_from_3_except`] keeps nothing below 3.
fn above_2(fd: OwnedFd) -> io::Result<OwnedFd> {
    match fd.as_raw_fd() < 3 {
        true => dup_above_2(fd.as_fd()),
        false => Ok(fd),
    }
}

/// A duplicate of `fd` numbered 3 or above, close-on-exec.
fn dup_above_2(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: fcntl(F_DUPFD_CLOEXEC) on a live descriptor; the result is a
    // new descriptor we own.
    let new = retry(|| unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) })?;
    // SAFETY: just returned by the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// How a child ended (see [`wait_child`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChildStatus {
    /// It exited with this code.
    Exited(i32),
    /// This signal ended it.
    Signaled(i32),
}

impl ChildStatus {
    /// What a `waitpid(2)` status of an ended process says.
    fn from_wait_status(status: i32) -> ChildStatus {
        if libc::WIFEXITED(status) {
            ChildStatus::Exited(libc::WEXITSTATUS(status))
        } else {
            ChildStatus::Signaled(libc::WTERMSIG(status))
        }
    }

    /// The code a shell gives it: the exit code, or 128 + the signal.
    pub fn code(self) -> i32 {
        match self {
            ChildStatus::Exited(code) => code,
            ChildStatus::Signaled(signal) => 128 + signal,
        }
    }
}

impl std::fmt::Display for ChildStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // As std's `ExitStatus` says it, but the signal's name.
        match self {
            ChildStatus::Exited(code) => write!(f, "exit status: {code}"),
            ChildStatus::Signaled(signal) => write!(f, "signal: {signal}"),
        }
    }
}

/// Waits for the child `pid` (`waitpid(2)`); with `nohang`, `None` while
/// it runs.
pub fn wait_child(pid: u32, nohang: bool) -> io::Result<Option<ChildStatus>> {
    let mut status = 0;
    let flags = if nohang { libc::WNOHANG } else { 0 };
    // SAFETY: waits for our own child; `status` is a live int.
    let got = retry(|| unsafe { libc::waitpid(pid as libc::pid_t, &mut status, flags) })?;
    if got == 0 {
        return Ok(None);
    }
    Ok(Some(ChildStatus::from_wait_status(status)))
}

#[cfg(test)]
mod tests {
    /// `swallow_signal` catches a signal at its default action, which
    /// would end the process, and leaves one the program handles to its
    /// handler: the handler sees what comes meanwhile, and is in place
    /// after `restore_signal`. Before, the program's handler was replaced
    /// for the wait (an init's `SIGINT`, a runtime's shutdown, lost).
    /// `SIGRTMIN + 7`, which no other test of this binary touches (its
    /// default action ends the process, as `SIGINT`'s).
    #[test]
    fn a_signal_the_program_handles_is_left_to_its_handler() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static SEEN: AtomicUsize = AtomicUsize::new(0);
        extern "C" fn count(_: libc::c_int) {
            SEEN.fetch_add(1, Ordering::SeqCst);
        }
        let signal = libc::SIGRTMIN() + 7;
        let handler = count as extern "C" fn(libc::c_int) as libc::sighandler_t;
        let raise = || {
            // SAFETY: sends a signal to this thread, which catches it.
            assert_eq!(unsafe { libc::raise(signal) }, 0);
        };
        // At its default: caught by the handler that does nothing (the
        // process survives the raise), then the default again.
        let saved = super::swallow_signal(signal).unwrap();
        assert!(super::signal_disposition(signal).unwrap().is_swallowed());
        raise();
        super::restore_signal(&saved).unwrap();
        let after = super::signal_disposition(signal).unwrap();
        assert_eq!(after.previous.sa_sigaction, libc::SIG_DFL);

        super::set_disposition(signal, handler).unwrap();
        let saved = super::swallow_signal(signal).unwrap();
        assert_eq!(
            super::signal_disposition(signal)
                .unwrap()
                .previous
                .sa_sigaction,
            handler,
            "the program's handler was replaced"
        );
        raise();
        assert_eq!(SEEN.load(Ordering::SeqCst), 1, "the handler missed it");
        super::restore_signal(&saved).unwrap();
        let after = super::signal_disposition(signal).unwrap();
        assert_eq!(after.previous.sa_sigaction, handler);
        super::set_disposition(signal, libc::SIG_DFL).unwrap();
    }

    /// The bytes drawn before the kernel's pool is ready differ from draw
    /// to draw, fill the buffer whole (a length that is no multiple of
    /// eight included), and spread over every value of a byte.
    #[test]
    fn bytes_mixed_without_the_pool_differ_and_spread() {
        let draws: Vec<[u8; 13]> = (0..64)
            .map(|_| {
                let mut buf = [0u8; 13];
                super::mixed_bytes(&mut buf);
                buf
            })
            .collect();
        let distinct: std::collections::BTreeSet<_> = draws.iter().collect();
        assert_eq!(distinct.len(), draws.len(), "two draws alike");
        assert!(draws.iter().all(|d| d[8..] != [0; 5]), "a tail left zero");
        let mut seen = [false; 256];
        for byte in draws.iter().flatten() {
            seen[usize::from(*byte)] = true;
        }
        assert!(seen.iter().filter(|s| **s).count() > 200, "{seen:?}");
    }

    /// A time before the epoch (a clock set back, -0.5 s) is zero, as
    /// `SystemTime::duration_since` made it, not half a second.
    #[test]
    fn a_time_before_the_epoch_is_zero() {
        let at = |tv_sec, tv_nsec| super::since_epoch(libc::timespec { tv_sec, tv_nsec });
        assert_eq!(at(-1, 500_000_000), std::time::Duration::ZERO);
        assert_eq!(at(0, 0), std::time::Duration::ZERO);
        assert_eq!(at(3, 250), std::time::Duration::new(3, 250));
    }

    /// A listing holds every entry but `.` and `..`, each with its type
    /// (tmpfs and ext4 give it, typed or not), across more than one
    /// `getdents64` buffer; a link given as the
    /// path is followed (as `opendir` follows it), one inside is listed as
    /// a link; a descriptor's listing leaves its offset alone.
    #[test]
    fn a_listing_has_every_entry_with_its_type() {
        use std::os::unix::fs::symlink;
        let dir = std::env::temp_dir().join(format!("ipvlan-list-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        // 400 names of 40 bytes: 56-byte records, about 22 KB of them.
        let many: Vec<String> = (0..400).map(|i| format!("{i:040}")).collect();
        for name in &many {
            std::fs::write(dir.join(name), b"").unwrap();
        }
        symlink("nowhere", dir.join("dangling")).unwrap();
        make_fifo(&dir.join("fifo"));
        let linked = std::env::temp_dir().join(format!("ipvlan-list-link-{}", std::process::id()));
        let _ = std::fs::remove_file(&linked);
        symlink(&dir, &linked).unwrap();

        for entries in [
            list_dir(&linked).unwrap(),
            list_dir_typed(&linked).unwrap(),
            {
                let fd = std::fs::File::open(&dir).unwrap();
                dir_names(fd.as_fd()).unwrap()
            },
        ] {
            let kind_of = |name: &str| {
                let found: Vec<_> = entries
                    .iter()
                    .filter(|e| e.name == name.as_bytes())
                    .collect();
                assert_eq!(found.len(), 1, "{name} listed once");
                found[0].kind
            };
            assert_eq!(entries.len(), 403);
            assert!(many.iter().all(|name| kind_of(name) == libc::DT_REG));
            assert_eq!(kind_of("sub"), libc::DT_DIR);
            assert_eq!(kind_of("dangling"), libc::DT_LNK);
            assert_eq!(kind_of("fifo"), libc::DT_FIFO);
            assert!(entries.iter().all(|e| e.name != b"." && e.name != b".."));
        }
        assert_eq!(
            list_dir(&dir.join("dangling")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        std::fs::remove_file(&linked).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The receive timeout the kernel holds for `fd`.
    #[allow(deprecated)]
    fn recv_timeout_of(fd: BorrowedFd<'_>) -> (i64, i64) {
        // SAFETY: timeval is plain integers; zeros are a valid value.
        let mut value: libc::timeval = unsafe { mem::zeroed() };
        let mut len = mem::size_of::<libc::timeval>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `value`.
        let got = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&mut value as *mut libc::timeval).cast(),
                &mut len,
            )
        };
        assert_eq!(got, 0);
        (value.tv_sec as i64, value.tv_usec as i64)
    }

    /// {0, 0} is "for ever" to the kernel: a timeout under a microsecond
    /// was sent as that, and a request waited without end. Read back from
    /// the kernel.
    #[test]
    fn a_timeout_never_reaches_the_kernel_as_for_ever() {
        let (left, _right) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let fd = std::os::fd::AsFd::as_fd(&left);
        let set = |value| setsockopt_timeval(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, value);
        set(std::time::Duration::from_nanos(500)).unwrap();
        // Rounded up to a jiffy by the kernel: not zero, not a second.
        let short = recv_timeout_of(fd);
        assert!(short.0 == 0 && short.1 > 0, "{short:?}");
        set(std::time::Duration::from_millis(1500)).unwrap();
        assert_eq!(recv_timeout_of(fd), (1, 500_000));
        let zero = set(std::time::Duration::ZERO).unwrap_err();
        assert_eq!(zero.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(recv_timeout_of(fd), (1, 500_000), "left as it was");
    }

    use std::os::unix::process::ExitStatusExt;

    use super::*;

    #[test]
    fn kill_signals_one_process_and_refuses_groups() {
        let mut child = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        kill(child.id(), libc::SIGKILL).unwrap();
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
        for pid in [0, u32::MAX, 1 << 31] {
            let error = kill(pid, 0).unwrap_err();
            assert_eq!(error.raw_os_error(), Some(libc::EINVAL), "pid {pid}");
        }
    }

    #[test]
    fn a_swallowed_signal_is_survived_restored_and_default_in_children() {
        // SIGUSR2 and SIGPWR: nothing else in the test binary uses them.
        let saved = swallow_signal(libc::SIGUSR2).unwrap();
        assert!(!saved.was_ignored());
        kill(std::process::id(), libc::SIGUSR2).unwrap();
        let mask = |text: &str, field: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(field))
                .map(|hex| u64::from_str_radix(hex.trim(), 16).unwrap())
                .unwrap()
        };
        let bit = |signal: libc::c_int| 1u64 << (signal - 1);
        // A child started meanwhile (by any thread) has it at its default:
        // before, it was `SIG_IGN`, which the child kept for good.
        let child = spawned_status();
        assert_eq!(mask(&child, "SigIgn:") & bit(libc::SIGUSR2), 0, "child");
        assert_eq!(mask(&child, "SigCgt:") & bit(libc::SIGUSR2), 0, "child");
        restore_signal(&saved).unwrap();
        let own = std::fs::read_to_string("/proc/self/status").unwrap();
        assert_eq!(mask(&own, "SigCgt:") & bit(libc::SIGUSR2), 0, "restored");
        assert_eq!(mask(&own, "SigIgn:") & bit(libc::SIGUSR2), 0, "restored");
        assert_eq!(
            mask(&child, "SigIgn:") & bit(libc::SIGPIPE),
            0,
            "SIGPIPE at its default in a child"
        );
        // One the caller ignores stays ignored here; its children start
        // with it at its default, as a container's processes start.
        let ignored = set_disposition(libc::SIGPWR, libc::SIG_IGN).unwrap();
        let kept = swallow_signal(libc::SIGPWR).unwrap();
        assert!(kept.was_ignored());
        let child = spawned_status();
        restore_signal(&kept).unwrap();
        let own = std::fs::read_to_string("/proc/self/status").unwrap();
        set_disposition(libc::SIGPWR, ignored.previous.sa_sigaction).unwrap();
        assert_eq!(mask(&child, "SigIgn:") & bit(libc::SIGPWR), 0, "child");
        assert_ne!(mask(&own, "SigIgn:") & bit(libc::SIGPWR), 0, "kept");
    }

    /// A handler the program installs while a signal is swallowed (a
    /// library's caller hooking Ctrl-C while `exec` waits) stays when the
    /// swallowing ends: before, the disposition from before the swallow
    /// was put back over it.
    #[test]
    fn a_handler_installed_while_swallowed_is_left_in_place() {
        extern "C" fn theirs(_: libc::c_int) {}
        // SIGXFSZ: nothing else in the test binary uses it.
        let saved = swallow_signal(libc::SIGXFSZ).unwrap();
        let swallowed = set_disposition(
            libc::SIGXFSZ,
            theirs as extern "C" fn(libc::c_int) as libc::sighandler_t,
        )
        .unwrap();
        assert!(swallowed.is_swallowed());
        restore_signal(&saved).unwrap();
        let now = signal_disposition(libc::SIGXFSZ).unwrap();
        assert_eq!(
            now.previous.sa_sigaction, theirs as extern "C" fn(libc::c_int) as libc::sighandler_t,
            "their handler replaced"
        );
        set_disposition(libc::SIGXFSZ, saved.previous.sa_sigaction).unwrap();
    }

    /// A swallowed signal sent but not yet taken when the disposition is
    /// put back is dropped, not delivered under the old one: before, it
    /// struck at its default and ended the process. Held pending by a
    /// block, in a forked child (a process of one thread).
    #[test]
    fn a_signal_pending_when_restored_is_dropped() {
        // SAFETY: the child makes only async-signal-safe calls (sigaction,
        // sigprocmask, kill, _exit) and allocates nothing.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            // SAFETY: as above; every path ends in _exit.
            unsafe {
                let code = (|| {
                    let saved = swallow_signal(libc::SIGUSR2).ok()?;
                    let mut set: libc::sigset_t = mem::zeroed();
                    libc::sigemptyset(&mut set);
                    libc::sigaddset(&mut set, libc::SIGUSR2);
                    libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                    libc::kill(libc::getpid(), libc::SIGUSR2);
                    restore_signal(&saved).ok()?;
                    libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
                    Some(0)
                })()
                .unwrap_or(2);
                libc::_exit(code);
            }
        }
        let mut status = 0;
        // SAFETY: waitpid for our own child into a live int.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert_eq!(
            ChildStatus::from_wait_status(status),
            ChildStatus::Exited(0)
        );
    }

    /// A signal sent while a block holds it is taken once by
    /// `take_pending`, which leaves the signals it was not asked about and
    /// those whose default is to be ignored (a terminal resized).
    #[test]
    fn a_held_signal_is_taken_once() {
        // SIGVTALRM and SIGPROF: used by no test; SIGWINCH ignored by
        // default. Sent to this thread alone, where they stay blocked.
        let signals = [libc::SIGVTALRM, libc::SIGPROF, libc::SIGWINCH];
        let block = SignalBlock::new(&signals).unwrap();
        assert_eq!(take_pending(&signals).unwrap(), None);
        // SAFETY: tgkill with this process's and this thread's ids.
        let send = |signal: libc::c_int| unsafe {
            libc::syscall(libc::SYS_tgkill, libc::getpid(), libc::gettid(), signal)
        };
        assert_eq!(send(libc::SIGWINCH), 0);
        assert_eq!(take_pending(&signals).unwrap(), None, "a resize");
        assert_eq!(send(libc::SIGVTALRM), 0);
        assert_eq!(send(libc::SIGPROF), 0);
        assert_eq!(take_pending(&[libc::SIGPROF]).unwrap(), Some(libc::SIGPROF));
        assert_eq!(take_pending(&[libc::SIGPROF]).unwrap(), None);
        assert_eq!(take_pending(&signals).unwrap(), Some(libc::SIGVTALRM));
        // The pending SIGWINCH goes with the block (ignored by default).
        block.end();
    }

    /// A program started by [`spawn_held`] and let go at once: its pid.
    fn spawn(what: &Spawn<'_>) -> io::Result<u32> {
        Ok(spawn_held(what)?.release()?.pid())
    }

    /// `cat /proc/self/status` started by [`spawn_held`]: what it printed.
    fn spawned_status() -> String {
        use std::io::Read;
        let mut fds = [0; 2];
        // SAFETY: `fds` is a live array of two ints for pipe2 to fill.
        assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
        // SAFETY: both descriptors were just made by pipe2 and are ours.
        let (reader, writer) =
            unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let args = ["/proc/self/status".into()];
        let pid = spawn(&Spawn {
            program: std::ffi::OsStr::new("cat"),
            args: &args,
            env: None,
            stdio: [
                ChildIo::Null,
                ChildIo::Fd(std::os::fd::AsFd::as_fd(&writer)),
                ChildIo::Inherit,
            ],
            own_session: false,
        })
        .unwrap();
        drop(writer);
        let mut text = String::new();
        std::fs::File::from(reader)
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(
            wait_child(pid, false).unwrap(),
            Some(ChildStatus::Exited(0))
        );
        text
    }

    #[test]
    fn a_child_of_its_own_session_leads_it() {
        let args: Vec<std::ffi::OsString> = vec!["1000".into()];
        let pid = spawn(&Spawn {
            program: std::ffi::OsStr::new("sleep"),
            args: &args,
            env: None,
            stdio: [ChildIo::Null, ChildIo::Null, ChildIo::Null],
            own_session: true,
        })
        .unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        // After the command's name in parentheses: state, ppid, pgrp,
        // session, tty_nr.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        kill(pid, libc::SIGKILL).unwrap();
        wait_child(pid, false).unwrap();
        let ours = std::process::id().to_string();
        assert_eq!(fields[2], pid.to_string(), "its own process group");
        assert_eq!(fields[3], pid.to_string(), "its own session");
        assert_eq!(fields[4], "0", "no controlling terminal");
        assert_ne!(fields[3], ours);
    }

    /// A `sh -c SCRIPT` held at its gate.
    fn held_sh(script: &str) -> HeldChild {
        let args: Vec<std::ffi::OsString> = vec!["-c".into(), script.into()];
        spawn_held(&Spawn {
            program: std::ffi::OsStr::new("sh"),
            args: &args,
            env: None,
            stdio: [ChildIo::Null, ChildIo::Null, ChildIo::Null],
            own_session: false,
        })
        .unwrap()
    }

    /// Waits until the child `pid` has ended, leaving it to be reaped.
    fn wait_until_ended(pid: u32) {
        // SAFETY: a zeroed siginfo_t is a valid value for waitid to fill.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid(2) on our child into a live siginfo_t; WNOWAIT
        // leaves it a zombie.
        let waited = retry(|| unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        });
        waited.unwrap();
    }

    /// The descriptors a process holds (`/proc/PID/fd`).
    fn descriptors_of(pid: u32) -> usize {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(Iterator::count)
            .unwrap_or(0)
    }

    /// Held, the child runs nothing; released, its program runs; dropped
    /// while held, it is killed and reaped (no zombie left).
    #[test]
    fn a_held_child_runs_only_once_released_and_dropped_is_reaped() {
        let dir = std::env::temp_dir().join(format!("ipvlan-held-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ran = dir.join("ran");
        let script = format!("echo ran > {}", ran.display());
        let held = held_sh(&script);
        let pid = held.pid;
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert!(!ran.exists(), "ran while held");
        drop(held);
        let mut status = 0;
        // SAFETY: waitpid with WNOHANG on a pid into a live int.
        let waited = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
        assert_eq!(waited, -1, "reaped already");
        assert!(!ran.exists(), "ran once dropped");
        let running = held_sh(&script).release().unwrap();
        assert_eq!(running.wait(false).unwrap(), ChildStatus::Exited(0));
        assert_eq!(std::fs::read_to_string(&ran).unwrap(), "ran\n");
        // Killed while held (as `rm -f` kills what it finds in a
        // namespace): the release says so, and reaps it.
        let held = held_sh(&script);
        kill(held.pid, libc::SIGKILL).unwrap();
        wait_until_ended(held.pid);
        let pid = held.pid;
        let error = held.release().unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EPIPE), "{error}");
        // SAFETY: as above.
        let waited = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
        assert_eq!(waited, -1, "reaped");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `program` with `args`, started by [`spawn_kept`], held.
    fn held_kept(program: &str, args: &[std::ffi::OsString]) -> HeldChild {
        let home = std::fs::File::open("/proc/thread-self/ns/net").unwrap();
        spawn_kept(
            &Spawn {
                program: program.as_ref(),
                args,
                env: None,
                stdio: [ChildIo::Null, ChildIo::Inherit, ChildIo::Inherit],
                own_session: false,
            },
            Some(std::os::fd::AsFd::as_fd(&home)),
        )
        .unwrap()
    }

    /// `sh -c script`, held (see [`held_kept`]).
    fn held_kept_sh(script: &str) -> HeldChild {
        held_kept("sh", &["-c".into(), script.into()])
    }

    /// [`held_kept_sh`], released.
    fn kept_sh(script: &str) -> Running {
        held_kept_sh(script).release().unwrap()
    }

    /// A kept command dropped while held, or left running, or that could
    /// not be started, is gone with its keeper: nothing of it is left, not
    /// even a zombie (its keeper reaps it once we have read its status).
    #[test]
    fn a_kept_command_let_go_leaves_nothing() {
        let gone = |pid: u32| !std::path::Path::new(&format!("/proc/{pid}")).exists();
        let held = held_kept_sh("exit 0");
        let pid = held.pid;
        drop(held);
        assert!(gone(pid), "dropped while held");
        let running = kept_sh("sleep 100");
        let pid = running.pid();
        drop(running);
        assert!(gone(pid), "dropped while running");
        let missing = held_kept("/nonexistent/program", &[]);
        let pid = missing.pid;
        let error = missing.release().unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::ENOENT), "{error}");
        assert!(gone(pid), "not started");
    }

    /// Two forwarding waits at once (two `exec`s of a program) each end
    /// with their own command's status. Before the commands had keepers,
    /// each child's `SIGCHLD` went to the process, either wait could take
    /// it, and two children ending together could leave one: a wait whose
    /// child's signal it never saw waited for ever, its child a zombie.
    #[test]
    fn two_forwarding_waits_at_once_both_end() {
        for round in 0..20 {
            let (tx, rx) = std::sync::mpsc::channel();
            for (delay, code) in [("0.2", 3), ("0.2", 4)] {
                let tx = tx.clone();
                std::thread::spawn(move || {
                    let block = SignalBlock::for_forwarding().unwrap();
                    let running = kept_sh(&format!("sleep {delay}; exit {code}"));
                    let status = running.wait(true).map(ChildStatus::code);
                    block.end();
                    let _ = tx.send((code, status.unwrap()));
                });
            }
            for _ in 0..2 {
                let (code, status) = rx
                    .recv_timeout(std::time::Duration::from_secs(10))
                    .unwrap_or_else(|_| panic!("round {round}: a wait did not end with its child"));
                assert_eq!(status, code);
            }
        }
    }

    /// A signal this process sends its command's keeper is not sent back
    /// to it: the keeper passes on what others send it (the command's
    /// parent, whose the signal would have been), and what came from us
    /// would strike us as though another had sent it (an init's
    /// `kill(-1, SIGTERM)` at shutdown, which spares only the init). What
    /// another process sends the keeper still comes on, once.
    /// `SIGRTMIN + 8`, which no other test of this binary touches.
    #[test]
    fn a_signal_we_send_our_commands_keeper_is_not_sent_back() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static SEEN: AtomicUsize = AtomicUsize::new(0);
        extern "C" fn count(_: libc::c_int) {
            SEEN.fetch_add(1, Ordering::SeqCst);
        }
        let signal = libc::SIGRTMIN() + 8;
        set_disposition(
            signal,
            count as extern "C" fn(libc::c_int) as libc::sighandler_t,
        )
        .unwrap();
        let running = kept_sh("sleep 5");
        let keeper = running.keeper.as_ref().expect("kept").pid;
        kill(keeper, signal).unwrap();
        let theirs = std::process::Command::new("sh")
            .args(["-c", &format!("kill -{signal} {keeper}")])
            .status()
            .unwrap();
        assert!(theirs.success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while SEEN.load(Ordering::SeqCst) == 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(
            SEEN.load(Ordering::SeqCst),
            1,
            "the other's signal once, ours not back"
        );
        drop(running);
        set_disposition(signal, libc::SIG_DFL).unwrap();
    }

    /// A deadline holds while handled signals keep interrupting the wait
    /// (a program embedding the library, its timers, its reaping
    /// handler). Before, each one restarted the whole time left: a plugin
    /// that hung was never killed.
    #[test]
    fn a_deadline_holds_under_interrupting_signals() {
        extern "C" fn nothing(_: libc::c_int) {}
        let signal = libc::SIGRTMIN() + 5;
        // SAFETY: sigaction is plain old data; all-zero is a valid value
        // (no flags, so no SA_RESTART), given a handler that does nothing.
        unsafe {
            let mut action: libc::sigaction = mem::zeroed();
            action.sa_sigaction = nothing as extern "C" fn(libc::c_int) as libc::sighandler_t;
            assert_eq!(libc::sigaction(signal, &action, std::ptr::null_mut()), 0);
        }
        let running = kept_sh("sleep 100");
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            // SAFETY: gettid(2) takes nothing and cannot fail.
            tx.send(unsafe { libc::gettid() }).unwrap();
            let started = std::time::Instant::now();
            let got = running.wait_until(
                clock_now(libc::CLOCK_MONOTONIC) + std::time::Duration::from_millis(300),
            );
            (got.unwrap(), started.elapsed())
        });
        let tid = rx.recv().unwrap();
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while !waiter.is_finished() && std::time::Instant::now() < give_up {
            // SAFETY: tgkill(2) of a thread of ours, with a signal it handles.
            unsafe { libc::syscall(libc::SYS_tgkill, libc::getpid(), tid, signal) };
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(
            waiter.is_finished(),
            "still waiting after 3 s for a 300 ms deadline"
        );
        let (got, took) = waiter.join().unwrap();
        assert_eq!(got, None);
        assert!(took < std::time::Duration::from_secs(2), "{took:?}");
    }

    /// A kept command's status, as it ended: an exit code, a signal, a
    /// signal that dumped core; its keeper reaped with it, and the
    /// command's own pid reaped by the keeper (no zombie left).
    #[test]
    fn a_kept_command_reports_how_it_ended_and_leaves_no_zombie() {
        for (script, status) in [
            ("exit 0", ChildStatus::Exited(0)),
            ("exit 200", ChildStatus::Exited(200)),
            ("kill -TERM $$", ChildStatus::Signaled(libc::SIGTERM)),
            (
                "ulimit -c 0; kill -QUIT $$",
                ChildStatus::Signaled(libc::SIGQUIT),
            ),
        ] {
            let running = kept_sh(script);
            let pid = running.pid();
            assert_eq!(running.wait(false).unwrap(), status, "{script}");
            assert!(
                !std::path::Path::new(&format!("/proc/{pid}")).exists(),
                "{script}: the command {pid} is reaped"
            );
        }
    }

    /// A host program that keeps `SIGPIPE` at its default (one with a
    /// `main` of its own, or in C) lives through the release of a held
    /// child killed meanwhile: the release fails with `EPIPE`. Before, the
    /// gate was a pipe and its write killed the host. Run in a process of
    /// its own (this test binary again), which sets `SIGPIPE` to default.
    #[test]
    fn releasing_a_child_killed_while_held_raises_no_sigpipe() {
        const INNER: &str = "IPVLAN_TEST_SIGPIPE_DEFAULT";
        if std::env::var_os(INNER).is_some() {
            // SAFETY: signal(2) with a valid signal and disposition.
            unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
            let held = held_sh("exit 0");
            kill(held.pid, libc::SIGKILL).unwrap();
            wait_until_ended(held.pid);
            let error = held.release().unwrap_err();
            assert_eq!(error.raw_os_error(), Some(libc::EPIPE), "{error}");
            return;
        }
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sys::tests::releasing_a_child_killed_while_held_raises_no_sigpipe",
                "--test-threads=1",
            ])
            .env(INNER, "1")
            .output()
            .unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(output.status.signal(), None, "{output:?}");
        assert!(output.status.success(), "{output:?}");
        assert!(
            String::from_utf8_lossy(&output.stdout).contains("1 passed"),
            "{output:?}"
        );
    }

    /// A program that closed its standard streams (a daemon) still hears
    /// why a program could not start: the report's pipe, the gate and the
    /// channel are kept above 2. Before, the pipe came back as 0 and 1,
    /// the child's stdout `dup2` replaced its write end, and a command not
    /// found read as started. Run in a process of its own (this test
    /// binary again), which closes its standard streams.
    #[test]
    fn a_program_without_standard_streams_hears_why_a_command_did_not_start() {
        // Set to a file the inner run writes its verdict to.
        const INNER: &str = "IPVLAN_TEST_NO_STDIO";
        if let Some(verdict) = std::env::var_os(INNER) {
            // SAFETY: close(2) of the standard streams; the harness's
            // output goes nowhere from here, the exit code says.
            unsafe {
                libc::close(0);
                libc::close(1);
                libc::close(2);
            }
            for kept in [false, true] {
                let what = Spawn {
                    program: std::ffi::OsStr::new("/nonexistent/command"),
                    args: &[],
                    env: None,
                    stdio: [ChildIo::Null, ChildIo::Null, ChildIo::Null],
                    own_session: false,
                };
                let held = match kept {
                    false => spawn_held(&what),
                    true => spawn_kept(&what, None),
                };
                let error = held.and_then(HeldChild::release).err();
                let line = format!("kept {kept}: {:?}\n", error.map(|e| e.raw_os_error()));
                let mut file = std::fs::OpenOptions::new()
                    .append(true)
                    .open(&verdict)
                    .unwrap();
                std::io::Write::write_all(&mut file, line.as_bytes()).unwrap();
            }
            return;
        }
        let verdict = std::env::temp_dir().join(format!("ipvlan-no-stdio-{}", std::process::id()));
        std::fs::write(&verdict, "").unwrap();
        let mut inner = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "sys::tests::a_program_without_standard_streams_hears_why_a_command_did_not_start",
                "--test-threads=1",
            ])
            .env(INNER, &verdict)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Before, the kept command's report never came: the run hung.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(status) = inner.try_wait().unwrap() {
                break Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = inner.kill();
                let _ = inner.wait();
                break None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let said = std::fs::read_to_string(&verdict).unwrap();
        let _ = std::fs::remove_file(&verdict);
        assert!(status.is_some_and(|s| s.success()), "{status:?}: {said}");
        let enoent = Some(Some(libc::ENOENT));
        assert_eq!(
            said,
            format!("kept false: {enoent:?}\nkept true: {enoent:?}\n")
        );
    }

    /// While held, the child keeps only its standard streams, the gate's
    /// read end and the report: not another descriptor of ours, such as
    /// the gate of a child another thread is making, whose copy would keep
    /// that gate open after we end (that child waiting for ever).
    #[test]
    fn a_held_child_keeps_none_of_our_other_descriptors() {
        let (_a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        let held = held_sh("exit 0");
        let settled = (0..250).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(20));
            descriptors_of(held.pid) == 5
        });
        let count = descriptors_of(held.pid);
        drop(held);
        assert!(settled, "the held child holds {count} descriptors, not 5");
    }

    /// A failure of ours while preparing a command (here `/dev/null`
    /// missing, as in an initramfs before `/dev` is mounted) carries no
    /// errno: before, its ENOENT read as the program's, "executable file
    /// not found", exit 127. On a thread with a mount namespace of its own,
    /// an empty tmpfs over its `/dev`.
    #[test]
    fn a_failure_to_prepare_a_command_is_not_read_as_the_programs() {
        let error = std::thread::spawn(|| {
            unshare(libc::CLONE_NEWNS).expect("unshare(CLONE_NEWNS) (are we root?)");
            mount(c"", c"/", c"", libc::MS_REC | libc::MS_PRIVATE).unwrap();
            mount(c"tmpfs", c"/dev", c"tmpfs", 0).unwrap();
            let args = [];
            spawn(&Spawn {
                program: std::ffi::OsStr::new("true"),
                args: &args,
                env: None,
                stdio: [ChildIo::Null, ChildIo::Inherit, ChildIo::Inherit],
                own_session: false,
            })
            .unwrap_err()
        })
        .join()
        .unwrap();
        assert_eq!(error.raw_os_error(), None, "{error}");
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        assert_eq!(
            error.to_string(),
            "opening /dev/null: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn spawn_reports_why_a_program_did_not_run_and_how_one_ended() {
        let run = |program: &str,
                   args: &[&str],
                   env: Option<&[(std::ffi::OsString, std::ffi::OsString)]>| {
            let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
            spawn(&Spawn {
                program: std::ffi::OsStr::new(program),
                args: &args,
                env,
                stdio: [ChildIo::Null, ChildIo::Null, ChildIo::Null],
                own_session: true,
            })
        };
        let missing = run("ipvlan-no-such-program", &[], None).unwrap_err();
        assert_eq!(missing.raw_os_error(), Some(libc::ENOENT));
        let not_executable = run("/proc/self/status", &[], None).unwrap_err();
        assert_eq!(not_executable.raw_os_error(), Some(libc::EACCES));
        let pid = run("sh", &["-c", "exit 7"], None).unwrap();
        assert_eq!(
            wait_child(pid, false).unwrap(),
            Some(ChildStatus::Exited(7))
        );
        let env = [("CODE".into(), "9".into())];
        let pid = run("/bin/sh", &["-c", "exit $CODE"], Some(&env)).unwrap();
        assert_eq!(
            wait_child(pid, false).unwrap(),
            Some(ChildStatus::Exited(9)),
            "its own environment"
        );
        let pid = run("sleep", &["100"], None).unwrap();
        assert_eq!(wait_child(pid, true).unwrap(), None, "still running");
        kill(pid, libc::SIGKILL).unwrap();
        let ended = wait_child(pid, false).unwrap().unwrap();
        assert_eq!(ended, ChildStatus::Signaled(libc::SIGKILL));
        assert_eq!(ended.code(), 137);
        assert_eq!(ended.to_string(), "signal: 9");
        assert_eq!(ChildStatus::Exited(3).to_string(), "exit status: 3");
    }

    #[test]
    fn allocator_size_classes() {
        use std::alloc::Layout;
        let class = |size, align| size_class(Layout::from_size_align(size, align).unwrap());
        assert_eq!(class(1, 1), Some(0));
        assert_eq!(class(16, 8), Some(0));
        assert_eq!(class(17, 1), Some(1));
        assert_eq!(
            class(8, 64),
            Some(2),
            "the alignment is a floor for the size"
        );
        assert_eq!(class(65536, 8), Some(CLASSES - 1));
        assert_eq!(class(65537, 8), None, "larger blocks are musl's");
        assert_eq!(class(64, 8192), None, "so are alignments above a page");
    }

    #[test]
    fn zeroed_blocks_are_zero_whether_fresh_or_given_back_dirty() {
        use std::alloc::{GlobalAlloc, Layout};
        let a = ProcessAllocator;
        for size in [24, 4000, 32 * 1024, 200_000] {
            let layout = Layout::from_size_align(size, 8).unwrap();
            // SAFETY: a valid non-zero layout.
            let dirty = unsafe { a.alloc(layout) };
            assert!(!dirty.is_null());
            // SAFETY: the block is ours and `size` bytes long; freed once.
            unsafe {
                std::ptr::write_bytes(dirty, 0xa5, size);
                a.dealloc(dirty, layout);
            }
            // The first takes the dirty block back (its class's free list,
            // or musl's), the second is new.
            for _ in 0..2 {
                // SAFETY: a valid non-zero layout.
                let zeroed = unsafe { a.alloc_zeroed(layout) };
                assert!(!zeroed.is_null());
                // SAFETY: live and `size` bytes long.
                let bytes = unsafe { std::slice::from_raw_parts(zeroed, size) };
                assert!(bytes.iter().all(|b| *b == 0), "{size} bytes, all zero");
                // SAFETY: the block is ours; written over so a later
                // reuse starts dirty.
                unsafe { std::ptr::write_bytes(zeroed, 0x5a, size) };
            }
        }
    }

    #[test]
    fn allocator_blocks_are_aligned_distinct_and_reused() {
        use std::alloc::{GlobalAlloc, Layout};
        let a = ProcessAllocator;
        let mut blocks = Vec::new();
        for (i, (size, align)) in [
            (1, 1),
            (24, 8),
            (100, 4),
            (4000, 64),
            (40_000, 4096),
            (200_000, 8),
        ]
        .into_iter()
        .cycle()
        .take(60)
        .enumerate()
        {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: a valid non-zero layout.
            let p = unsafe { a.alloc(layout) };
            assert!(!p.is_null());
            assert_eq!(p as usize % align, 0, "{size} bytes aligned to {align}");
            // SAFETY: the block is ours and `size` bytes long.
            unsafe { std::ptr::write_bytes(p, i as u8, size) };
            blocks.push((p, layout, i as u8));
        }
        for &(p, layout, fill) in &blocks {
            // SAFETY: each block is live and `layout.size()` bytes long.
            let bytes = unsafe { std::slice::from_raw_parts(p, layout.size()) };
            assert!(
                bytes.iter().all(|b| *b == fill),
                "no block overlaps another"
            );
        }
        let (p, layout, _) = blocks[1];
        // SAFETY: allocated above with this layout, freed once.
        unsafe { a.dealloc(p, layout) };
        // SAFETY: a valid layout of the same class.
        let again = unsafe { a.alloc(Layout::from_size_align(20, 8).unwrap()) };
        assert_eq!(
            again, p,
            "a freed block serves the next request of its size"
        );
        // Growing within the class keeps the block; across classes moves the contents.
        // SAFETY: `again` is live with a 20-byte, 8-aligned layout.
        let same = unsafe { a.realloc(again, Layout::from_size_align(20, 8).unwrap(), 32) };
        assert_eq!(same, again);
        // SAFETY: `same` is live with a 32-byte layout; the block holds 32 bytes.
        let moved = unsafe {
            std::ptr::write_bytes(same, 7, 32);
            a.realloc(same, Layout::from_size_align(32, 8).unwrap(), 100_000)
        };
        // SAFETY: `moved` is live and at least 32 bytes long.
        assert!(unsafe { std::slice::from_raw_parts(moved, 32) }
            .iter()
            .all(|b| *b == 7));
        // SAFETY: each block freed once with the layout it has now.
        unsafe {
            a.dealloc(moved, Layout::from_size_align(100_000, 8).unwrap());
            for &(p, layout, _) in blocks.iter().skip(2) {
                a.dealloc(p, layout);
            }
            a.dealloc(blocks[0].0, blocks[0].1);
        }
    }
}
