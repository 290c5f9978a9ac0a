//! Network namespaces: named ones laid out exactly like iproute2's
//! (`ip netns add`), opening by name, path or pid, and running code inside one.
//!
//! `setns(2)` and `unshare(2)` change only the calling *thread*. Short work
//! that only opens something inside (a netlink socket, a `/proc/sys` file,
//! a bind mount) moves the calling thread there and back at once
//! ([`run_here`], [`run_in_new_here`]: no thread started, and the process
//! aborts rather than go on in the wrong namespace); work that runs other
//! code or changes more than the network namespace ([`run_in`], e.g. a
//! command started inside) gets a scratch thread that exits afterwards.
//! The current namespace of a thread is `/proc/thread-self/ns/net`, not
//! `/proc/self/ns/net` (that shows the main thread's).

use std::ffi::CString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::sys;

/// The calling thread's network namespace in procfs.
const OWN_PATH: &str = "/proc/thread-self/ns/net";

/// The calling thread's network namespace, opened. With `socket`, a
/// socket the caller made in that namespace, asked of it (`SIOCGSKNS`):
/// opening [`OWN_PATH`] makes procfs build this process's
/// `/proc/PID/task/TID` entries first, which costs a short-lived command
/// more than the ioctl. The path is taken without a socket (making one
/// for the purpose costs about what it saves), and where the kernel
/// refuses the ioctl (no `CAP_NET_ADMIN` over the namespace, or a kernel
/// before 4.9).
fn open_own(socket: Option<BorrowedFd<'_>>) -> io::Result<File> {
    match socket.map(sys::socket_netns) {
        Some(Ok(fd)) => Ok(File::from(fd)),
        _ => Ok(File::from(
            sys::openat(
                None,
                &static_cstr(OWN_PATH),
                libc::O_RDONLY | libc::O_NOCTTY,
                0,
            )
            .map_err(procfs_needed(OWN_PATH))?,
        )),
    }
}

/// `st_dev` and `st_ino` of the calling thread's network namespace file.
fn own_file_id() -> io::Result<(u64, u64)> {
    let own = fs::metadata(OWN_PATH).map_err(procfs_needed(OWN_PATH))?;
    Ok((own.dev(), own.ino()))
}

/// For an error of a path of the calling thread's own under `/proc`,
/// which is there whenever procfs is: `ENOENT` there means no procfs on
/// `/proc` (an init that has not mounted it yet, a chroot), never a
/// namespace that went, and is said so, without the errno by which
/// callers tell a namespace gone (a disconnect would release an endpoint
/// whose link lives on).
fn procfs_needed(path: &str) -> impl FnOnce(io::Error) -> io::Error + '_ {
    move |error| match error.raw_os_error() {
        Some(libc::ENOENT) => io::Error::new(
            io::ErrorKind::Unsupported,
            format!("{path} is missing: ipvlan needs procfs mounted on /proc"),
        ),
        _ => error,
    }
}

/// Whether `path` names the calling thread's network namespace (compared
/// as [`Netns::open_path`] compares it, without opening it); a path that
/// cannot be read does not.
pub fn is_own(path: &Path) -> bool {
    match (fs::metadata(path), own_file_id()) {
        (Ok(meta), Ok(own)) => (meta.dev(), meta.ino()) == own,
        _ => false,
    }
}

/// Where iproute2 keeps named network namespaces.
pub const DEFAULT_RUN_DIR: &str = "/run/netns";

/// An open network namespace (a descriptor of an nsfs file).
#[derive(Debug)]
pub struct Netns {
    fd: OwnedFd,
    label: String,
    /// `st_dev` and `st_ino` of the nsfs file: stable for the namespace's
    /// whole life and never shared by two living ones.
    file_id: (u64, u64),
    /// Whether it was the opening thread's own namespace when opened.
    openers_own: bool,
}

impl Netns {
    /// The calling thread's network namespace.
    pub fn current() -> io::Result<Netns> {
        // Always a network namespace's nsfs file, the thread's own: none
        // of [`Netns::open_path`]'s checks can refuse it, so it costs
        // [`open_own`] and the `fstat` that reads its identity.
        let file = open_own(None)?;
        let meta = file.metadata()?;
        Ok(Netns {
            fd: file.into(),
            label: OWN_PATH.to_string(),
            file_id: (meta.dev(), meta.ino()),
            openers_own: true,
        })
    }

    /// The namespace at `path` (a bind mount such as `/run/netns/NAME`, or
    /// `/proc/PID/ns/net`).
    ///
    /// Anything else is refused before it can block or be entered: a FIFO,
    /// device, socket or directory is never opened, and what is opened
    /// (without blocking, close-on-exec, never as a controlling terminal)
    /// must be a network namespace's nsfs file. The refusal is an
    /// [`io::ErrorKind::InvalidInput`] error carrying a [`NotANamespace`]
    /// (see [`not_a_namespace`]).
    ///
    /// ```no_run
    /// let error = ipvlan::netns::Netns::open_path("/dev/zero").unwrap_err();
    /// let refusal = ipvlan::netns::not_a_namespace(&error).unwrap();
    /// assert_eq!(refusal.found, ipvlan::netns::FileKind::CharDevice);
    /// ```
    pub fn open_path(path: impl AsRef<Path>) -> io::Result<Netns> {
        Netns::open_at_path(path.as_ref())
    }

    /// [`Netns::open_path`] without its type parameter, kept once.
    #[inline(never)]
    fn open_at_path(path: &Path) -> io::Result<Netns> {
        // One look at our own namespace file gives both nsfs's device and
        // whether this is our own namespace.
        let ns = Netns::open_nsfs(path, own_file_id, true)?;
        let kind = namespace_type(ns.fd())?;
        if kind != "net" {
            return Err(refusal(path, FileKind::Namespace(kind.to_string())));
        }
        Ok(ns)
    }

    /// The nsfs file at `path`, of any namespace type, with
    /// [`Netns::open_path`]'s refusals of anything else; `own` gives the
    /// `st_dev` and `st_ino` of the calling thread's network namespace;
    /// `fault_point`: whether the look passes the `netns: looked at`
    /// fault point.
    fn open_nsfs(
        path: &Path,
        own: impl FnOnce() -> io::Result<(u64, u64)>,
        fault_point: bool,
    ) -> io::Result<Netns> {
        let refuse = |found| refusal(path, found);
        // Opening a FIFO waits for a writer, opening a device may act on
        // it: looked at first through an `O_PATH` descriptor, which opens
        // nothing, then opened through that descriptor's `/proc` entry,
        // so the file opened is the one looked at, whatever the path names
        // by then (a link its owner swaps between a look and an open by
        // name would have had a device opened).
        let probe = match sys::openat(None, &cstring(path)?, libc::O_PATH, 0) {
            Ok(fd) => File::from(fd),
            // A process's `/proc/PID/ns/net` missing may be procfs itself
            // missing: said so (the caller's own entry is missing then
            // too), never taken for a namespace gone.
            Err(error)
                if error.raw_os_error() == Some(libc::ENOENT) && path.starts_with("/proc") =>
            {
                own_file_id()?;
                return Err(error);
            }
            Err(error) => return Err(error),
        };
        let meta = probe.metadata()?;
        let found = FileKind::of(&meta);
        if found != FileKind::Regular {
            return Err(refuse(found));
        }
        let own = own()?;
        if meta.dev() != own.0 {
            return Err(refuse(FileKind::Regular));
        }
        if fault_point {
            crate::fault::point("netns: looked at");
        }
        // The calling thread's table: a thread that unshared its own
        // (CLONE_FILES) holds the descriptor there, not in its leader's.
        let looked_at = format!("/proc/thread-self/fd/{}", probe.as_raw_fd());
        let flags = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;
        let file = File::from(
            sys::openat(None, &cstring(Path::new(&looked_at))?, flags, 0)
                .map_err(procfs_needed(&looked_at))?,
        );
        Ok(Netns {
            fd: file.into(),
            label: path.display().to_string(),
            file_id: (meta.dev(), meta.ino()),
            openers_own: (meta.dev(), meta.ino()) == own,
        })
    }

    /// [`Netns::open_path`] for a caller that opens many namespaces from
    /// its own, `home` ([`Netns::current`], opened once for all of them):
    /// the same refusals of what is not a namespace file, without a look
    /// at the caller's namespace each, and without asking the namespace's
    /// type: the caller enters it ([`run_here_from`]), whose `setns`
    /// refuses any other type, worded as `open_path` words it.
    pub fn open_path_from(path: impl AsRef<Path>, home: &Netns) -> io::Result<Netns> {
        Netns::open_nsfs(path.as_ref(), || Ok(home.file_id), true)
    }

    /// The namespace bind-mounted at `path`, for a look at its links alone
    /// (see `driver::parent`'s walk of the namespaces beside the host),
    /// where `home` ([`Netns::current`]) is the caller's: as
    /// [`Netns::open_path_from`], without its fault point (the walk's
    /// number of namespaces depends on what other tools mounted, and must
    /// not move the kill points of the command it is part of).
    pub fn open_mounted(path: &Path, home: &Netns) -> io::Result<Netns> {
        Netns::open_nsfs(path, || Ok(home.file_id), false)
    }

    /// The namespace of process `pid`.
    pub fn open_pid(pid: u32) -> io::Result<Netns> {
        let mut ns = Self::open_path(format!("/proc/{pid}/ns/net"))?;
        ns.label = format!("pid {pid}");
        Ok(ns)
    }

    /// The namespace process `pid` is in, or its thread `tid` when given
    /// (a thread may have entered, or made, a namespace of its own), for a
    /// look at its links alone (see `driver::parent`'s walk of the
    /// namespaces beside the host), where `home` ([`Netns::current`]) is
    /// the caller's. Opened at once, without [`Netns::open_path`]'s look
    /// through an `O_PATH` descriptor and without its fault point:
    /// `/proc/PID/ns/net` is procfs's link to the process's namespace
    /// file, never a FIFO or a device a path could be swapped for, and a
    /// walk that depends on which processes run (a varying number of
    /// namespaces) must not move the kill points of the command it is part
    /// of. Checked to be on nsfs.
    pub fn open_of_task(pid: u32, tid: Option<u32>, home: &Netns) -> io::Result<Netns> {
        let path = match tid {
            None => format!("/proc/{pid}/ns/net"),
            Some(tid) => format!("/proc/{pid}/task/{tid}/ns/net"),
        };
        let fd = sys::openat(None, &cstring(Path::new(&path))?, libc::O_RDONLY, 0)?;
        let stat = sys::fstat(fd.as_fd())?;
        let file_id = (stat.st_dev, stat.st_ino);
        if file_id.0 != home.file_id.0 {
            return Err(refusal(Path::new(&path), FileKind::Regular));
        }
        Ok(Netns {
            fd,
            label: match tid {
                None => format!("pid {pid}"),
                Some(tid) => format!("thread {tid} of pid {pid}"),
            },
            file_id,
            openers_own: file_id == home.file_id,
        })
    }

    /// The named namespace `run_dir/name` (run dir normally [`DEFAULT_RUN_DIR`]).
    pub fn open_named(run_dir: impl AsRef<Path>, name: &str) -> io::Result<Netns> {
        let mut ns = Self::open_path(named_path(run_dir.as_ref(), name)?)?;
        ns.label = name.to_owned();
        Ok(ns)
    }

    /// `st_dev` and `st_ino` of its nsfs file, read when it was opened:
    /// stable for the namespace's whole life, never shared by two living
    /// namespaces.
    pub fn file_id(&self) -> (u64, u64) {
        self.file_id
    }

    /// When its nsfs inode was made (its `st_ctime`, in nanoseconds since
    /// the epoch, to the kernel's clock tick): an inode lives while a
    /// mount or descriptor holds it, so a namespace bound at a path keeps
    /// it for as long as it is mounted, and another namespace that gets
    /// the same inode number later has a later time. Unlike
    /// [`Netns::file_id`] it changes for a namespace that nothing but its
    /// processes held for a while. nsfs sets the times once, when it makes
    /// the inode, and refuses to change them (its inodes are immutable).
    /// Read when asked (an `fstat`): only a container's identity needs it.
    pub fn inode_time(&self) -> io::Result<u64> {
        let st = sys::fstat(self.fd())?;
        let seconds = u64::try_from(st.st_ctime).unwrap_or(0);
        let nanoseconds = u64::try_from(st.st_ctime_nsec).unwrap_or(0);
        Ok(seconds
            .saturating_mul(1_000_000_000)
            .saturating_add(nanoseconds))
    }

    /// Whether it was the network namespace of the thread that opened it,
    /// at the time (read in the same look as [`Self::open_path`]'s checks).
    pub fn is_openers_own(&self) -> bool {
        self.openers_own
    }

    /// A name for messages: the netns name, or its path, or "pid N".
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The same namespace, named `label` in messages: an anonymous one
    /// about to be bound at a path is best called by that path in what
    /// goes wrong meanwhile, not "(anonymous)".
    pub fn labelled(mut self, label: impl Into<String>) -> Netns {
        self.label = label.into();
        self
    }

    /// The namespace descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// What a file opened as a network namespace turned out to be instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileKind {
    /// A plain file (or a namespace file of no known type): what a
    /// `/run/netns/NAME` mount point is once its namespace is unmounted.
    Regular,
    /// A directory.
    Directory,
    /// A FIFO (named pipe).
    Fifo,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// A socket.
    Socket,
    /// The nsfs file of another kind of namespace (`mnt`, `pid`, ...).
    Namespace(String),
}

impl FileKind {
    fn of(meta: &fs::Metadata) -> FileKind {
        use std::os::unix::fs::FileTypeExt;
        let kind = meta.file_type();
        if kind.is_dir() {
            FileKind::Directory
        } else if kind.is_fifo() {
            FileKind::Fifo
        } else if kind.is_char_device() {
            FileKind::CharDevice
        } else if kind.is_block_device() {
            FileKind::BlockDevice
        } else if kind.is_socket() {
            FileKind::Socket
        } else {
            FileKind::Regular
        }
    }

    /// Whether a namespace may once have been bound here: a plain file
    /// (an unmounted `/run/netns/NAME`) or another namespace's file. A
    /// FIFO, device, socket or directory never held one.
    pub fn may_have_held_a_namespace(&self) -> bool {
        matches!(self, FileKind::Regular | FileKind::Namespace(_))
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileKind::Regular => f.write_str("a regular file"),
            FileKind::Directory => f.write_str("a directory"),
            FileKind::Fifo => f.write_str("a FIFO"),
            FileKind::CharDevice => f.write_str("a character device"),
            FileKind::BlockDevice => f.write_str("a block device"),
            FileKind::Socket => f.write_str("a socket"),
            FileKind::Namespace(kind) => write!(f, "a {kind} namespace"),
        }
    }
}

/// A path given as a network namespace that is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotANamespace {
    /// The path as given.
    pub path: PathBuf,
    /// What is there.
    pub found: FileKind,
}

impl fmt::Display for NotANamespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} is not a network namespace: it is {}",
            self.path.display(),
            self.found
        )
    }
}

impl std::error::Error for NotANamespace {}

/// The refusal inside an error of [`Netns::open_path`], when the path
/// named something other than a network namespace.
pub fn not_a_namespace(error: &io::Error) -> Option<&NotANamespace> {
    error.get_ref()?.downcast_ref::<NotANamespace>()
}

/// The type of the namespace an nsfs descriptor refers to (`net`, `mnt`,
/// ...), as `/proc/PID/ns/` names them.
fn namespace_type(fd: BorrowedFd<'_>) -> io::Result<&'static str> {
    Ok(match sys::ns_get_nstype(fd)? {
        libc::CLONE_NEWNET => "net",
        libc::CLONE_NEWNS => "mnt",
        libc::CLONE_NEWPID => "pid",
        libc::CLONE_NEWUTS => "uts",
        libc::CLONE_NEWIPC => "ipc",
        libc::CLONE_NEWUSER => "user",
        libc::CLONE_NEWCGROUP => "cgroup",
        libc::CLONE_NEWTIME => "time",
        _ => "unknown",
    })
}

/// `run_dir/name`, refusing names that are not a single path component.
pub fn named_path(run_dir: &Path, name: &str) -> io::Result<PathBuf> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid network namespace name {name:?}"),
        ));
    }
    Ok(run_dir.join(name))
}

fn static_cstr(text: &'static str) -> CString {
    CString::new(text).unwrap_or_default()
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// Runs `f` on a scratch thread that has entered `ns`; the caller's thread
/// stays where it is. Returns what `f` returns, or the `setns` error.
pub fn run_in<T: Send>(ns: &Netns, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    on_scratch_thread(|| {
        sys::setns(ns.fd(), libc::CLONE_NEWNET)?;
        Ok(f())
    })
}

/// Runs `f` on the calling thread moved into `ns`, then moves the thread
/// back to the namespace it was in: no thread is started, at the cost of
/// four system calls (open our own namespace file, two `setns`, close).
///
/// For short, self-contained work that must be done from inside: opening
/// a netlink socket or a `/proc/sys/net` file, both of which stay bound to
/// the namespace they were opened in after the thread leaves. Safe in a
/// process with many threads: the network namespace belongs to each
/// thread, so no other thread ever sees the move, and while the thread is
/// away only `f` runs on it. A panic in `f` unwinds through the guard,
/// which moves the thread back too. If the way back is refused (something
/// dropped this thread's capabilities meanwhile, or the kernel is short of
/// memory for the move, which is tried again for up to a second, the
/// thread blocked and still in `ns`, where a signal handler of the
/// program's would run), the process aborts: going on would run the rest
/// of the caller's work in `ns`, creating its sockets, links and routes in
/// another namespace, a mistake nothing downstream could notice or undo.
pub fn run_here<T>(ns: &Netns, f: impl FnOnce() -> T) -> io::Result<T> {
    let _away = Away::leave(|| sys::setns(ns.fd(), libc::CLONE_NEWNET))?;
    Ok(f())
}

/// [`run_here`] for a thread whose own namespace is `home`, open already
/// ([`Netns::current`]): two `setns` around `f`, without opening and
/// closing the way home each time (a batch's many namespaces share one).
/// `ns` of another kind (see [`Netns::open_path_from`]) is refused as
/// [`Netns::open_path`] refuses it; the way back is as safe as
/// [`run_here`]'s (the process aborts when it is refused).
pub fn run_here_from<T>(home: &Netns, ns: &Netns, f: impl FnOnce() -> T) -> io::Result<T> {
    enter_from(ns)?;
    let _back = Back(home.fd());
    Ok(f())
}

/// Back to its namespace when dropped, on every path ([`run_here_from`]).
struct Back<'a>(BorrowedFd<'a>);

impl Drop for Back<'_> {
    #[inline(never)]
    fn drop(&mut self) {
        go_home(self.0);
    }
}

/// How often a way home refused for want of memory is tried again, 10 ms
/// apart, before the process gives up.
const WAY_HOME_TRIES: u32 = 100;

/// Moves the calling thread back into `home`, or ends the process
/// ([`give_up`]). A move the kernel refuses for want of memory (`ENOMEM`:
/// since Linux 5.15 what it allocates is charged to the memory cgroup,
/// which may be at its limit a moment) is tried again for up to a second,
/// as memory may come free: for an init embedding the library, the abort
/// is a kernel panic.
#[inline(never)]
fn go_home(home: BorrowedFd<'_>) {
    let mut tries = 0;
    loop {
        // Test builds: the kernel short of memory for the move.
        let moved = match crate::fault::forced("netns: way home refused") {
            true => Err(io::Error::from_raw_os_error(libc::ENOMEM)),
            false => sys::setns(home, libc::CLONE_NEWNET),
        };
        match moved {
            Ok(()) => return,
            Err(error) if error.raw_os_error() == Some(libc::ENOMEM) && tries < WAY_HOME_TRIES => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(error) => give_up(&format!(
                "cannot return this thread to its network namespace ({error})"
            )),
        }
    }
}

/// [`run_here_from`]'s move into `ns`, kept once for every `f`.
#[inline(never)]
fn enter_from(ns: &Netns) -> io::Result<()> {
    enter_net(ns, Path::new(ns.label()))
}

/// Moves the calling thread into `ns`, opened from `path`; another kind of
/// namespace (which `setns` refuses with `EINVAL`) is refused as
/// [`Netns::open_path`] refuses it.
fn enter_net(ns: &Netns, path: &Path) -> io::Result<()> {
    match sys::setns(ns.fd(), libc::CLONE_NEWNET) {
        Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
            let kind = namespace_type(ns.fd())?;
            if kind != "net" {
                return Err(refusal(path, FileKind::Namespace(kind.to_string())));
            }
            Err(error)
        }
        entered => entered,
    }
}

/// Runs `f` on the calling thread moved into a brand-new network namespace,
/// then moves the thread back, as [`run_here`] does (same safety, same
/// abort). The namespace disappears once nothing refers to it (a socket,
/// a bind mount, a [`Netns`] that `f` returns).
pub fn run_in_new_here<T>(f: impl FnOnce() -> T) -> io::Result<T> {
    let _away = Away::leave(|| sys::unshare(libc::CLONE_NEWNET))?;
    Ok(f())
}

/// The calling thread kept inside a network namespace until this is
/// dropped, for work that must be done from inside at two moments with
/// other work in between ([`Visit::enter`]). Not `Send`: it is dropped on
/// the thread it moved, which then returns where it was, on every path
/// (an error, a panic's unwinding), or the process aborts as with
/// [`run_here`]. Visits on one thread end in the reverse order they began
/// (each returns the thread to where the one before it left it); a visit
/// dropped before a later one aborts the process.
#[derive(Debug)]
pub struct Visit {
    _away: Away,
}

impl Visit {
    /// Moves the calling thread into `ns` until the visit is dropped,
    /// saving the [`run_here`] that each later piece of inside work would
    /// cost (four system calls). Between the two, the thread must only
    /// use descriptors, and paths that do not depend on the network
    /// namespace: a socket opened (or `/proc/net`, `/proc/sys/net`
    /// read) meanwhile is `ns`'s.
    pub fn enter(ns: &Netns) -> io::Result<Visit> {
        Ok(Visit {
            _away: Away::leave(|| sys::setns(ns.fd(), libc::CLONE_NEWNET))?,
        })
    }
}

impl Visit {
    /// Opens the namespace at `path` as [`Netns::open_path`] does (the
    /// same refusals, as the same errors) and, unless it is the calling
    /// thread's own (then `None`: nothing to enter), moves the thread into
    /// it until the visit is dropped, as [`Visit::enter`]. One system
    /// call fewer than the two apart: the way home, opened first, gives
    /// nsfs's device and our own namespace's identity with its `fstat`
    /// (where `open_path` looks at our namespace's file by its path), and
    /// the namespace's type is checked by the `setns` itself, which
    /// refuses any other (the type is asked only to say which it was).
    pub fn open_and_enter(path: impl AsRef<Path>) -> io::Result<(Netns, Option<Visit>)> {
        let path = path.as_ref();
        match Visit::open_to_enter_at_once(path)? {
            (ns, Some(entry)) => {
                let visit = entry.enter(&ns, path)?;
                Ok((ns, Some(visit)))
            }
            (ns, None) => Ok((ns, None)),
        }
    }

    /// The first half of [`Visit::open_and_enter`]: the namespace opened
    /// and checked, and the way in kept for later ([`Entry::enter`]), so
    /// a thread can wait (for a lock) in its own namespace, where no scan
    /// of the target's processes finds it. `None` for the calling thread's
    /// own namespace (nothing to enter).
    pub fn open(path: impl AsRef<Path>) -> io::Result<(Netns, Option<Entry>)> {
        Visit::open_told(path.as_ref(), None)
    }

    /// [`Visit::open`], with `socket`, a socket the calling thread made
    /// in its namespace and has not left since (the caller's socket of its
    /// own namespace), to tell that namespace (see `open_own`): the way
    /// back is where the socket was made, so a socket of another namespace
    /// would send the thread there.
    pub fn open_beside(path: &Path, socket: BorrowedFd<'_>) -> io::Result<(Netns, Option<Entry>)> {
        Visit::open_told(path, Some(socket))
    }

    /// [`Visit::open`]; `socket` as [`open_own`] takes it.
    fn open_told(
        path: &Path,
        socket: Option<BorrowedFd<'_>>,
    ) -> io::Result<(Netns, Option<Entry>)> {
        let (ns, entry) = Visit::open_at_once_told(path, socket)?;
        // Entering comes later (after a lock, say): another kind of
        // namespace is refused now, as `open_path` refuses it, not then.
        let kind = namespace_type(ns.fd())?;
        if kind != "net" {
            return Err(refusal(path, FileKind::Namespace(kind.to_string())));
        }
        Ok((ns, entry))
    }

    /// [`Visit::open`] without asking the namespace's type (one system
    /// call): for a caller that enters it at once, where `setns` refuses
    /// any other type ([`Entry::enter`] words it as `open_path` would).
    pub fn open_to_enter_at_once(path: impl AsRef<Path>) -> io::Result<(Netns, Option<Entry>)> {
        Visit::open_at_once_told(path.as_ref(), None)
    }

    /// [`Visit::open_to_enter_at_once`]; `socket`, when given, tells the
    /// calling thread's namespace as [`Visit::open_beside`] has it.
    pub(crate) fn open_at_once_told(
        path: &Path,
        socket: Option<BorrowedFd<'_>>,
    ) -> io::Result<(Netns, Option<Entry>)> {
        let mut home = None;
        let ns = Netns::open_nsfs(
            path,
            || {
                let file = open_own(socket)?;
                let own = file.metadata()?;
                home = Some(OwnedFd::from(file));
                Ok((own.dev(), own.ino()))
            },
            true,
        )?;
        let entry = home.filter(|_| !ns.openers_own).map(|home| Entry {
            home,
            _this_thread: std::marker::PhantomData,
        });
        Ok((ns, entry))
    }
}

/// The way into a namespace opened by [`Visit::open`]: the calling
/// thread's own namespace, to come back to. Not `Send`: another thread
/// entering with it would come back to the opener's namespace, not its own.
///
/// ```compile_fail
/// fn sent<T: Send>() {}
/// sent::<ipvlan::netns::Entry>();
/// ```
#[derive(Debug)]
pub struct Entry {
    home: OwnedFd,
    _this_thread: std::marker::PhantomData<*const ()>,
}

impl Entry {
    /// Moves the calling thread into `ns` (opened with this entry, from
    /// `path`) until the visit is dropped, as [`Visit::enter`]; another
    /// kind of namespace is refused as [`Netns::open_path`] refuses it.
    pub fn enter(self, ns: &Netns, path: &Path) -> io::Result<Visit> {
        // Test builds: a policy (an LSM, seccomp) refusing the move.
        if crate::fault::forced("netns: entering refused") {
            return Err(io::Error::from_raw_os_error(libc::EPERM));
        }
        enter_net(ns, path)?;
        Ok(Visit {
            _away: Away::arrived(self.home),
        })
    }
}

/// The refusal of `path`, which holds `found` instead of a network
/// namespace (see [`not_a_namespace`]).
fn refusal(path: &Path, found: FileKind) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        NotANamespace {
            path: path.to_path_buf(),
            found,
        },
    )
}

/// The calling thread, moved into another network namespace until this
/// is dropped (see [`run_here`]). Not `Send`: it must be dropped on the
/// thread it moved.
#[derive(Debug)]
struct Away {
    /// The way home, closed (or left to the exit) once gone there.
    home: sys::ClosedOrLeft,
    /// How many moves of this thread are undone by dropping this one:
    /// its place in the thread's stack of moves (see [`Away::arrived`]).
    depth: u32,
    _this_thread: std::marker::PhantomData<*const ()>,
}

thread_local! {
    /// Moves of this thread not yet undone. Each goes home to where the
    /// one before it left the thread, so only the latest may be undone:
    /// a [`Visit`] (a value, which can outlive a later one) dropped before
    /// a later visit would leave the thread, at that later drop, in the
    /// earlier visit's namespace.
    static MOVES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

impl Away {
    /// Keeps the way home, then moves the thread with `go`.
    fn leave(go: impl FnOnce() -> io::Result<()>) -> io::Result<Away> {
        let home = OwnedFd::from(open_own(None)?);
        go()?;
        Ok(Away::arrived(home))
    }

    /// The move just made, whose way home is `home`, as the thread's latest.
    fn arrived(home: OwnedFd) -> Away {
        let depth = MOVES.with(|moves| {
            moves.set(moves.get() + 1);
            moves.get()
        });
        Away {
            home: sys::ClosedOrLeft::new(home),
            depth,
            _this_thread: std::marker::PhantomData,
        }
    }
}

impl Drop for Away {
    fn drop(&mut self) {
        let latest = MOVES.with(|moves| {
            let latest = moves.get();
            moves.set(latest.saturating_sub(1));
            latest
        });
        if latest != self.depth {
            give_up("a network namespace visit was ended before a later one");
        }
        go_home(self.home.as_fd());
    }
}

/// Ends the process: going on would run its work in a network namespace it
/// did not mean, where links and addresses may belong to someone else.
fn give_up(why: &str) -> ! {
    eprintln!("ipvlan: {why}; aborting rather than going on in another namespace");
    std::process::abort();
}

/// Runs `f` on a scratch thread inside a brand-new anonymous network
/// namespace, which disappears when the thread exits (unless something
/// still refers to it, e.g. a socket or a [`Netns`] that `f` returns).
pub fn run_in_new<T: Send>(f: impl FnOnce() -> T + Send) -> io::Result<T> {
    on_scratch_thread(|| {
        sys::unshare(libc::CLONE_NEWNET)?;
        Ok(f())
    })
}

/// Runs `f` on a scratch thread in a new network namespace and a new mount
/// namespace (mounts made private), where `dir` is an empty tmpfs: named
/// namespaces made under `dir` then touch nothing outside (tests use it
/// for `/run`, so that `/run/netns` is where iproute2 looks).
pub fn run_in_new_with_private_dir<T: Send>(
    dir: impl AsRef<Path>,
    f: impl FnOnce() -> T + Send,
) -> io::Result<T> {
    let dir = cstring(dir.as_ref())?;
    on_scratch_thread(|| {
        sys::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWNET)?;
        let none = static_cstr("none");
        let flags = libc::MS_REC | libc::MS_PRIVATE;
        sys::mount(&none, &static_cstr("/"), &static_cstr(""), flags)?;
        let tmpfs = static_cstr("tmpfs");
        sys::mount(&tmpfs, &dir, &tmpfs, 0)?;
        Ok(f())
    })
}

/// Runs `f` on a scratch thread that starts where the caller is, and
/// waits for it: for work done without the store's lock that visits other
/// namespaces (a handle's socket opened inside, a process's namespace
/// entered). `/proc/PID/ns/net` names the namespace of a process's main
/// thread, and `rm -f` kills every process it finds there inside the
/// container it removes: a visit by the main thread of an embedding
/// program, while an `rm -f` that holds the lock looks, would read as
/// that program running inside, and get it killed. A scratch thread's
/// visits show only under `/proc/PID/task/TID`, which `rm` reads only of
/// a process whose main thread has ended.
pub fn apart<T: Send>(f: impl FnOnce() -> T + Send) -> io::Result<T> {
    on_scratch_thread(|| Ok(f()))
}

/// Runs `f` on a new thread and waits for it. The OS may refuse a thread
/// (`EAGAIN` under a pids cgroup or `RLIMIT_NPROC`); that error is returned
/// as is (errno kept), because `thread::Scope::spawn` would panic and the
/// release build aborts on panic. A panic inside `f` is passed on.
fn on_scratch_thread<T: Send>(f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    let mut f = Some(f);
    let mut out = None;
    spawn_and_join(&mut || out = f.take().map(|f| f()))?;
    // A thread that was started and joined has run `f` (its panic is
    // passed on by the join).
    out.unwrap_or_else(|| Err(io::Error::other("the netns thread did not run")))
}

/// The stack of [`on_scratch_thread`]'s thread: under 2 MiB, so that no
/// transparent huge page fits in its mapping. With the standard library's
/// 2 MiB, on a kernel whose huge pages are `always` (Debian's), about one
/// `exec` in 300 peaked at 3 MiB of RSS instead of 1.5 (none with huge
/// pages `never`, none with this stack).
const SCRATCH_STACK: usize = 1 << 20;

/// [`on_scratch_thread`]'s thread, its body behind a `dyn`: the standard
/// library's spawning code is generic over the closure and is kept once.
#[inline(never)]
fn spawn_and_join(work: &mut (dyn FnMut() + Send)) -> io::Result<()> {
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("netns".to_owned())
            .stack_size(SCRATCH_STACK)
            .spawn_scoped(scope, work)?;
        thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        Ok(())
    })
}

/// Creates an anonymous network namespace and returns a handle to it; it
/// lives as long as the returned [`Netns`] (or anything else bound to it).
pub fn create_anonymous() -> io::Result<Netns> {
    let mut ns = run_in_new_here(Netns::current)??;
    ns.label = "(anonymous)".to_owned();
    Ok(ns)
}

/// Creates an anonymous network namespace, as [`create_anonymous`] does,
/// and leaves the calling thread in it until the returned [`Visit`] is
/// dropped: for a caller with more to do from inside (open a socket there,
/// name it with [`create_named_from_here`]), one visit instead of several.
pub fn create_anonymous_staying() -> io::Result<(Netns, Visit)> {
    let visit = Visit {
        _away: Away::leave(|| sys::unshare(libc::CLONE_NEWNET))?,
    };
    let mut ns = Netns::current()?;
    ns.label = "(anonymous)".to_owned();
    Ok((ns, visit))
}

/// [`create_named_from`] by a thread that is inside the namespace to be
/// named already (`_inside`: the visit that put it there, see
/// [`create_anonymous_staying`]), which is bound as it is, without
/// another visit.
pub fn create_named_from_here(
    run_dir: impl AsRef<Path>,
    name: &str,
    _inside: &Visit,
) -> io::Result<()> {
    bind_named(run_dir.as_ref(), name, |mount| Ok(mount()))
}

/// Makes `run_dir` a shared mount, as `ip netns add` does, so that a later
/// unmount of a namespace file propagates to every mount namespace.
fn make_run_dir_shared(run_dir: &Path) -> io::Result<()> {
    // At most 0755 whatever the umask, as iproute2 makes it: writable by
    // others, anyone could put links or files at container names there.
    sys::mkdir_all(run_dir, 0o755).map_err(|err| {
        // mkdir says only "File exists" of a file in the way.
        match fs::metadata(run_dir) {
            Ok(meta) if !meta.is_dir() => io::Error::new(
                err.kind(),
                format!("{} is not a directory", run_dir.display()),
            ),
            _ => err,
        }
    })?;
    let dir = cstring(run_dir)?;
    let lock = File::open(run_dir)?;
    // Parallel `ip netns add` runs once stacked bind mounts without this lock
    // (Debian bug 949235); like iproute2, carry on if it cannot be taken.
    let _held = sys::flock_exclusive(lock.as_fd());
    let none = static_cstr("none");
    let mut made_mount_point = false;
    loop {
        match sys::mount(
            &static_cstr(""),
            &dir,
            &none,
            libc::MS_SHARED | libc::MS_REC,
        ) {
            Ok(()) => return Ok(()),
            Err(err) if err.raw_os_error() == Some(libc::EINVAL) && !made_mount_point => {
                // Not a mount point yet: bind it onto itself, then retry.
                sys::mount(&dir, &dir, &none, libc::MS_BIND | libc::MS_REC)?;
                made_mount_point = true;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Creates the named namespace `run_dir/name` like `ip netns add NAME`:
/// shared run dir, an empty file, a new netns bind-mounted onto it.
/// Fails with `AlreadyExists` if the name is taken.
pub fn create_named(run_dir: impl AsRef<Path>, name: &str) -> io::Result<Netns> {
    let run_dir = run_dir.as_ref();
    bind_named(run_dir, name, |mount| run_in_new_here(mount))?;
    Netns::open_named(run_dir, name)
}

/// Gives the existing namespace `ns` the name `run_dir/name`, as
/// [`create_named`] does for a new one. A caller that learns a namespace's
/// identity before naming it (an anonymous one from [`create_anonymous`])
/// can tell it later from anything else put at that path.
/// Fails with `AlreadyExists` if the name is taken.
pub fn create_named_from(run_dir: impl AsRef<Path>, name: &str, ns: &Netns) -> io::Result<()> {
    bind_named(run_dir.as_ref(), name, |mount| run_here(ns, mount))
}

/// Makes `run_dir/name` (shared run dir, an empty file) and bind-mounts
/// onto it the namespace of the thread `enter` runs the mount on.
fn bind_named(
    run_dir: &Path,
    name: &str,
    enter: impl FnOnce(&(dyn Fn() -> io::Result<()> + Sync)) -> io::Result<io::Result<()>>,
) -> io::Result<()> {
    let path = named_path(run_dir, name)?;
    make_run_dir_shared(run_dir)?;
    crate::fault::point("netns: before create");
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o000)
        .open(&path)?;
    let target = cstring(&path)?;
    crate::fault::point("netns: before mount");
    let mount = || {
        sys::mount(
            &static_cstr(OWN_PATH),
            &target,
            &static_cstr("none"),
            libc::MS_BIND,
        )
    };
    if let Err(err) = enter(&mount).and_then(|r| r) {
        let _ = fs::remove_file(&path);
        return Err(err);
    }
    crate::fault::point("netns: after mount");
    Ok(())
}

/// Deletes the named namespace like `ip netns delete NAME`: lazy unmount,
/// then unlink. The namespace itself dies when its last user goes. Unlike
/// iproute2, refuses (`InvalidInput`) a symbolic link or anything but a
/// plain file at the name, which no `create_named` left there.
pub fn delete_named(run_dir: impl AsRef<Path>, name: &str) -> io::Result<()> {
    delete_named_expecting(run_dir.as_ref(), name, None).map(drop)
}

/// [`delete_named`], only while the name still holds `expected`: the
/// `(st_dev, st_ino)` seen at the name (through the mount: the namespace's
/// nsfs inode, or the plain file of a mount point nothing is bound to).
/// `Ok(false)`, and nothing done, when something else is there now: a
/// caller that looked at the name earlier (and did other work since)
/// never unmounts or unlinks what another tool put there meanwhile;
/// `Ok(true)` when nothing is there any more (deleted meanwhile: done). The
/// look and the unmount are two calls; the window between them is this
/// function's, not the caller's.
pub fn delete_named_if(
    run_dir: impl AsRef<Path>,
    name: &str,
    expected: (u64, u64),
) -> io::Result<bool> {
    delete_named_expecting(run_dir.as_ref(), name, Some(expected))
}

fn delete_named_expecting(
    run_dir: &Path,
    name: &str,
    expected: Option<(u64, u64)>,
) -> io::Result<bool> {
    let path = named_path(run_dir, name)?;
    // Only the plain file a namespace is bound to: a link is never
    // followed (umount2 would unmount whatever it leads to).
    match fs::symlink_metadata(&path) {
        Ok(meta) if expected.is_some_and(|id| id != (meta.dev(), meta.ino())) => return Ok(false),
        // Gone since the caller looked (`ip netns del`): what it asked is
        // done. Without an expectation, a name that is not there is an
        // error, as for `ip netns del`.
        Err(err) if err.kind() == io::ErrorKind::NotFound && expected.is_some() => return Ok(true),
        Ok(meta) if meta.file_type().is_symlink() => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is a symbolic link, not a namespace file",
                    path.display()
                ),
            ))
        }
        Ok(meta) if !meta.file_type().is_file() => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                NotANamespace {
                    found: FileKind::of(&meta),
                    path,
                },
            ))
        }
        _ => {}
    }
    let target = cstring(&path)?;
    crate::fault::point("netns: before umount");
    match sys::umount2(&target, libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) {
        // EINVAL: not mounted (a leftover file from an interrupted create).
        Err(err) if err.raw_os_error() != Some(libc::EINVAL) => {
            if !path.exists() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no network namespace {name:?}"),
                ));
            }
            return Err(err);
        }
        _ => {}
    }
    crate::fault::point("netns: before unlink");
    crate::fault::after("netns: after unlink", fs::remove_file(&path)).map(|()| true)
}

/// Undoes the self bind mount [`create_named`] made of `run_dir`, for
/// temporary run dirs (tests); delete the namespaces in it first. A run dir
/// that is not a mount point is left alone.
pub fn release_run_dir(run_dir: impl AsRef<Path>) -> io::Result<()> {
    match sys::umount2(&cstring(run_dir.as_ref())?, libc::MNT_DETACH) {
        Err(err) if err.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        other => other,
    }
}

/// Names of the namespaces in `run_dir`, sorted; an absent run dir is empty.
pub fn list_named(run_dir: impl AsRef<Path>) -> io::Result<Vec<String>> {
    let entries = match crate::sys::list_dir_typed(run_dir.as_ref()) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let mut names = Vec::new();
    for entry in entries {
        if entry.kind == libc::DT_REG {
            if let Ok(name) = String::from_utf8(entry.name) {
                names.push(name);
            }
        }
    }
    crate::order::sort(&mut names);
    Ok(names)
}

/// Sets `net.ipv6.conf.IFNAME.disable_ipv6` inside `ns`.
///
/// `/proc/sys/net` shows the namespace of the thread that opens it, so the
/// write happens on a thread that entered `ns`.
pub fn set_disable_ipv6(ns: &Netns, ifname: &str, disabled: bool) -> io::Result<()> {
    write_sysctl(
        ns,
        &format!("net/ipv6/conf/{ifname}/disable_ipv6"),
        ifname,
        disabled,
    )
}

/// Longest interface name the kernel accepts (`IFNAMSIZ - 1`).
pub const IFNAME_MAX: usize = 15;

/// Whether the kernel takes `name` as an interface name, as it is (its
/// `dev_valid_name`): 1 to 15 bytes, not `.` or `..`, no '/', ':', NUL or
/// byte its `isspace` calls a space (9 to 13, 32 and 0xA0, which UTF-8
/// text holds inside `à` or a no-break space); and no '%', which makes a
/// name a template the kernel fills in (`eth%d` becomes `eth0`), so the
/// link would get another name than the one asked for. Such a name is
/// also safe as one path component (`/proc/sys/net/ipv6/conf/NAME`).
pub fn is_valid_ifname(name: &str) -> bool {
    !(name.is_empty()
        || name.len() > IFNAME_MAX
        || name == "."
        || name == ".."
        || name.bytes().any(|b| {
            matches!(b, b'/' | b':' | b'%' | 0 | b' ' | 0xa0) || (0x09..=0x0d).contains(&b)
        }))
}

/// Interface names go into a `/proc/sys` path: the kernel's own rule
/// ([`is_valid_ifname`]) keeps them one path component.
/// (Network namespace names follow another rule, see [`named_path`].)
fn check_ifname(ifname: &str) -> io::Result<()> {
    if !is_valid_ifname(ifname) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid interface name {ifname:?}"),
        ));
    }
    Ok(())
}

fn write_sysctl(ns: &Netns, key: &str, ifname: &str, on: bool) -> io::Result<()> {
    check_ifname(ifname)?;
    let path = CString::new(format!("/proc/sys/{key}"))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "key contains NUL"))?;
    // The file is found in the namespace of the thread that opens it; the
    // write goes to that namespace's setting wherever it is made from.
    let file = run_here(ns, || sys::openat(None, &path, libc::O_WRONLY, 0))??;
    write_flag(file, on)
}

/// Writes `1` or `0` to the sysctl file `file`, then is done with it.
fn write_flag(file: OwnedFd, on: bool) -> io::Result<()> {
    let mut file = File::from(file);
    let written = file.write_all(if on { b"1" } else { b"0" });
    sys::done_with(file);
    written
}

/// Sets several keys of the link `ifname` inside `ns`, each given as
/// `(family, key, on)` for `net.FAMILY.conf.IFNAME.KEY`, with one visit:
/// every file is opened there (where `/proc/sys/net` shows that
/// namespace), then written from here. One result per key, in order; the
/// outer error is the visit's.
pub fn set_link_sysctls(
    ns: &Netns,
    ifname: &str,
    keys: &[(&str, &str, bool)],
) -> io::Result<Vec<io::Result<()>>> {
    set_link_sysctls_in(ns, None, ifname, keys)
}

/// [`set_link_sysctls`] from a thread already inside `ns` (`visit`, which
/// ends once the files are open), or, without one, by a visit of its own.
pub fn set_link_sysctls_in(
    ns: &Netns,
    visit: Option<Visit>,
    ifname: &str,
    keys: &[(&str, &str, bool)],
) -> io::Result<Vec<io::Result<()>>> {
    let paths = link_sysctl_paths(ifname, keys)?;
    let open = || open_for_writing(&paths);
    let opened: Vec<io::Result<OwnedFd>> = match visit {
        // Already inside: opened here, then the visit ends before the
        // writes, which go to `ns` from anywhere.
        Some(visit) => {
            let opened = open();
            drop(visit);
            opened
        }
        None => run_here(ns, open)?,
    };
    Ok(write_opened(opened, keys))
}

/// [`set_link_sysctls`] by a thread whose own namespace is `home`, open
/// already (see [`run_here_from`]): two system calls fewer; the files are
/// found through `files` (see [`SysctlFiles`]).
pub fn set_link_sysctls_from(
    home: &Netns,
    ns: &Netns,
    ifname: &str,
    keys: &[(&str, &str, bool)],
    files: &SysctlFiles,
) -> io::Result<Vec<io::Result<()>>> {
    let paths = link_sysctl_paths(ifname, keys)?;
    let opened = run_here_from(home, ns, || files.open_for_writing(&paths))?;
    Ok(write_opened(opened, keys))
}

/// Where a batch opens the `/proc/sys/net` files of the many namespaces it
/// visits: a procfs instance of its own (`fsopen`, `fsmount`), made
/// anew every [`SysctlFiles::LOOKUPS`] namespaces, rather than `/proc`.
///
/// The first lookup of `/proc/sys/net/ipv6` in a namespace compares its
/// name with every other namespace's `ipv6` entry that procfs instance
/// holds (they share one parent and one name, so one hash chain of the
/// dentry cache), each under a lock: in the project's VM 0.06 ms with 40
/// namespaces, 1.3 to 2.9 ms with 1,000. Through an instance of our own
/// the chain holds only the namespaces this batch looked up since the
/// instance was made (Linux 5.8 and later; before, procfs had one
/// superblock per PID namespace, so the instance shares `/proc`'s entries
/// and only costs its making). `/proc` as before where no instance can be
/// made (a kernel before 5.2, no `CAP_SYS_ADMIN`), under any seccomp
/// filter (which may kill at `fsopen` rather than refuse it), where
/// `/proc/sys/net` is read-only, and from the first open an instance
/// refuses that is not a missing file.
pub struct SysctlFiles {
    instance: std::cell::RefCell<Instance>,
}

enum Instance {
    Unmade,
    Made { root: OwnedFd, lookups: u32 },
    Unavailable,
}

impl SysctlFiles {
    /// Namespaces looked up through one instance: a fresh one costs about
    /// 0.5 ms in the VM (made, its first lookups, and unmade), a walk over
    /// 16 entries some 0.03 ms.
    pub const LOOKUPS: u32 = 16;

    /// Each of `paths` (`/proc/...`) opened for writing, as
    /// [`open_for_writing`] opens them, by a thread inside the namespace
    /// whose settings they are.
    fn open_for_writing(&self, paths: &[CString]) -> Vec<io::Result<OwnedFd>> {
        let mut instance = self.instance.borrow_mut();
        if let Instance::Made { lookups, .. } = *instance {
            if lookups >= Self::LOOKUPS {
                *instance = Instance::Unmade;
            }
        }
        if let Instance::Unmade = *instance {
            *instance = match proc_sys_read_only() || under_seccomp_filter() {
                // Read-only here: so for the batch too, as for a single
                // attach (its write refused). Under a filter, `fsopen`
                // may be answered by death (systemd's `SystemCallFilter=`
                // kills by default) rather than an errno to fall back on.
                true => Instance::Unavailable,
                false => match sys::procfs_instance() {
                    Ok(root) => Instance::Made { root, lookups: 0 },
                    Err(_) => Instance::Unavailable,
                },
            };
        }
        let Instance::Made { root, lookups } = &mut *instance else {
            return open_for_writing(paths);
        };
        *lookups += 1;
        let opened: Vec<io::Result<OwnedFd>> = paths
            .iter()
            .map(|path| {
                // The same file, below the instance's root: `sys/net/...`.
                let below = path
                    .to_bytes_with_nul()
                    .strip_prefix(b"/proc/")
                    .and_then(|rest| std::ffi::CStr::from_bytes_with_nul(rest).ok())
                    .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
                sys::openat(Some(root.as_fd()), below, libc::O_WRONLY, 0)
            })
            .collect();
        // Refused through the instance where `/proc` may serve (an LSM
        // that names files by path cannot name one on a mount attached
        // nowhere: Landlock, AppArmor, TOMOYO): `/proc` from here on.
        let refused = opened.iter().any(|r| {
            r.as_ref()
                .is_err_and(|e| e.kind() != io::ErrorKind::NotFound)
        });
        if refused {
            *instance = Instance::Unavailable;
            return open_for_writing(paths);
        }
        opened
    }
}

impl Default for SysctlFiles {
    /// No instance yet: the first lookup makes one.
    fn default() -> SysctlFiles {
        SysctlFiles {
            instance: std::cell::RefCell::new(Instance::Unmade),
        }
    }
}

/// Whether `/proc/sys/net` is on a read-only mount in this mount namespace
/// (systemd's `ProtectKernelTunables=`, a container's read-only
/// `/proc/sys`): an instance of our own, writable, would go around it.
fn proc_sys_read_only() -> bool {
    sys::is_read_only_mount(c"/proc/sys/net").unwrap_or(false)
}

/// Whether a seccomp filter watches this process's system calls
/// (`Seccomp: 2` in its status): a container's, a service's
/// `SystemCallFilter=`. Such a filter may kill the process at a call it
/// does not allow, so what it may refuse (`fsopen`, `fsmount`) is not
/// tried; unknown counts as filtered.
fn under_seccomp_filter() -> bool {
    std::fs::read_to_string("/proc/self/status").map_or(true, |status| seccomp_filtered(&status))
}

/// [`under_seccomp_filter`] of a `/proc/PID/status` text: its `Seccomp:`
/// mode is not 0 (1 strict, 2 filter), or it says none.
fn seccomp_filtered(status: &str) -> bool {
    status
        .lines()
        .find_map(|line| line.strip_prefix("Seccomp:"))
        .map_or(true, |mode| mode.trim() != "0")
}

/// Each of `paths` opened for writing, in the namespace of the calling
/// thread (where `/proc/sys/net` shows that namespace's settings).
fn open_for_writing(paths: &[CString]) -> Vec<io::Result<OwnedFd>> {
    paths
        .iter()
        .map(|path| sys::openat(None, path, libc::O_WRONLY, 0))
        .collect()
}

/// The `/proc/sys/net` files of `keys` (see [`set_link_sysctls`]) of the
/// link `ifname`.
fn link_sysctl_paths(ifname: &str, keys: &[(&str, &str, bool)]) -> io::Result<Vec<CString>> {
    check_ifname(ifname)?;
    keys.iter()
        .map(|(family, key, _)| {
            // One file of the link's directory, nothing a path could lead
            // out of `/proc/sys/net` to (the file is written as root).
            let plain = !matches!(*key, "" | "." | "..") && !key.contains('/');
            if !matches!(*family, "ipv4" | "ipv6") || !plain {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("no link setting net.{family}.conf.{ifname}.{key}"),
                ));
            }
            CString::new(format!("/proc/sys/net/{family}/conf/{ifname}/{key}"))
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "key contains NUL"))
        })
        .collect()
}

/// Writes each key's value to its file opened inside; one result each.
fn write_opened(
    opened: Vec<io::Result<OwnedFd>>,
    keys: &[(&str, &str, bool)],
) -> Vec<io::Result<()>> {
    opened
        .into_iter()
        .zip(keys)
        .map(|(file, (_, _, on))| write_flag(file?, *on))
        .collect()
}

/// Reads `net.ipv6.conf.IFNAME.disable_ipv6` inside `ns`.
pub fn disable_ipv6(ns: &Netns, ifname: &str) -> io::Result<bool> {
    check_ifname(ifname)?;
    let path = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
    let file = run_here(ns, || File::open(&path))??;
    let text = io::read_to_string(file)?;
    Ok(text.trim() == "1")
}

#[cfg(test)]
mod tests {
    /// A seccomp filter is read from a status's `Seccomp:` line; none
    /// there counts as one (unknown).
    #[test]
    fn a_seccomp_filter_is_read_from_the_status() {
        let status = |mode: &str| {
            format!("Name:\tipvlan\nNoNewPrivs:\t0\nSeccomp:\t{mode}\nSeccomp_filters:\t0\n")
        };
        assert!(!super::seccomp_filtered(&status("0")));
        assert!(super::seccomp_filtered(&status("2")));
        assert!(super::seccomp_filtered(&status("1")));
        assert!(super::seccomp_filtered("Name:\tipvlan\n"));
        // This test process runs under none.
        assert!(!super::under_seccomp_filter());
    }

    /// A family or key that would lead out of the link's directory of
    /// `/proc/sys/net` is refused before anything is opened (the files are
    /// written as root).
    #[test]
    fn link_settings_stay_in_the_links_directory() {
        let path = |family, key| super::link_sysctl_paths("eth0", &[(family, key, true)]);
        assert_eq!(
            path("ipv6", "disable_ipv6").unwrap(),
            [CString::new("/proc/sys/net/ipv6/conf/eth0/disable_ipv6").unwrap()]
        );
        for (family, key) in [
            ("ipv4", "../../../../kernel/core_pattern"),
            ("ipv4", ".."),
            ("ipv4", ""),
            ("../../kernel", "x"),
            ("ipv5", "forwarding"),
        ] {
            let error = path(family, key).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{family} {key}");
        }
    }

    use super::*;
    use std::os::unix::net::UnixDatagram;

    /// The kernel's `isspace` (9-13, 32, 0xA0) and its name templates
    /// (`%`) refuse these; a vertical tab, a no-break space (inside `à`
    /// too) and a `%` were taken before.
    #[test]
    fn interface_names_follow_the_kernels_rule_byte_for_byte() {
        for name in ["eth0", "eth0.10", "v-1_a", "abcdefghijklmno", "é"] {
            assert!(is_valid_ifname(name), "{name:?}");
        }
        for name in [
            "",
            ".",
            "..",
            "a/b",
            "a:b",
            "a b",
            "a\tb",
            "a\nb",
            "a\u{b}b",
            "a\u{c}b",
            "a\rb",
            "eth\u{a0}",
            "a\u{e0}",
            "eth%d",
            "a%b",
            "a\0b",
            "abcdefghijklmnop",
        ] {
            assert!(!is_valid_ifname(name), "{name:?}");
        }
    }

    fn identity(file: &File) -> (u64, u64) {
        let meta = file.metadata().unwrap();
        (meta.dev(), meta.ino())
    }

    /// Without procfs on `/proc` (an init that has not mounted it yet),
    /// opening a namespace, the calling thread's, one bound at a path or a
    /// process's (`/proc/PID/ns/net`, as an endpoint may record), fails
    /// saying so, never with `ENOENT`, by which callers tell a
    /// namespace gone: before, a disconnect without `/proc` took its
    /// endpoint's namespace for gone and released it, its link left
    /// running. In a mount namespace of a scratch thread's own, `/proc`
    /// detached there alone.
    #[test]
    fn without_procfs_a_namespace_is_never_taken_for_gone() {
        let file = std::env::temp_dir().join(format!("ipvlan-noproc-{}", std::process::id()));
        fs::write(&file, b"").unwrap();
        let errors = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    // This thread's own mount namespace (CLONE_NEWNS
                    // implies CLONE_FS), which goes with the thread.
                    sys::unshare(libc::CLONE_NEWNS).unwrap();
                    let none = static_cstr("none");
                    let flags = libc::MS_REC | libc::MS_PRIVATE;
                    sys::mount(&none, &static_cstr("/"), &static_cstr(""), flags).unwrap();
                    let bound = cstring(&file).unwrap();
                    sys::mount(&static_cstr(OWN_PATH), &bound, &none, libc::MS_BIND).unwrap();
                    sys::umount2(&static_cstr("/proc"), libc::MNT_DETACH).unwrap();
                    [
                        Netns::current().map(|_| ()).unwrap_err(),
                        Netns::open_path(&file).map(|_| ()).unwrap_err(),
                        Netns::open_path("/proc/1/ns/net").map(|_| ()).unwrap_err(),
                    ]
                })
                .join()
                .unwrap()
        });
        fs::remove_file(&file).unwrap();
        for error in errors {
            assert_ne!(error.raw_os_error(), Some(libc::ENOENT), "{error}");
            assert!(
                error.to_string().contains("needs procfs mounted on /proc"),
                "{error}"
            );
        }
    }

    /// The namespace opened is the one looked at: the path's link swapped
    /// to another namespace's file between the look and the open (another
    /// process's move, made here at that moment) changes nothing. Before,
    /// the open went by the path again and took what it named by then
    /// (a device, had its owner linked one).
    #[test]
    fn the_namespace_opened_is_the_one_looked_at() {
        let other = create_anonymous().unwrap();
        let dir = std::env::temp_dir().join(format!("ipvlan-netns-swap-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let link = dir.join("ns");
        std::os::unix::fs::symlink(OWN_PATH, &link).unwrap();
        let others = format!("/proc/self/fd/{}", other.fd().as_raw_fd());
        let swap = {
            let (dir, others) = (dir.clone(), others.clone());
            move || {
                std::os::unix::fs::symlink(&others, dir.join("next")).unwrap();
                fs::rename(dir.join("next"), dir.join("ns")).unwrap();
            }
        };
        crate::fault::unwind::then("netns: looked at", swap);
        let opened = Netns::open_path(&link).unwrap();
        let own = own_file_id().unwrap();
        let file = File::from(opened.fd().try_clone_to_owned().unwrap());
        assert_eq!(identity(&file), own, "the other namespace was opened");
        assert_eq!(opened.file_id(), own);
        assert_ne!(other.file_id(), own);
        assert_eq!(
            fs::read_link(&link).unwrap().to_str(),
            Some(others.as_str()),
            "swapped"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Told by a socket, by something that is no socket (the ioctl
    /// refused, the path taken) or by nothing, the calling thread's
    /// namespace is the nsfs file its path names. Without `CAP_NET_ADMIN`
    /// the kernel refuses the ioctl itself and the path is taken too.
    #[test]
    fn own_namespace_told_by_a_socket_or_not_is_the_one_at_its_path() {
        let by_path = fs::metadata(OWN_PATH).unwrap();
        let expected = (by_path.dev(), by_path.ino());
        let socket = UnixDatagram::unbound().unwrap();
        let not_a_socket = File::open("/dev/null").unwrap();
        for told in [Some(socket.as_fd()), Some(not_a_socket.as_fd()), None] {
            assert_eq!(identity(&open_own(told).unwrap()), expected);
        }
        match sys::socket_netns(socket.as_fd()) {
            Ok(fd) => assert_eq!(identity(&File::from(fd)), expected),
            Err(error) => assert_eq!(error.raw_os_error(), Some(libc::EPERM), "{error}"),
        }
    }
}
