//! Which processes run in a network namespace, as `/proc` shows them, and
//! whether it showed them all.
//!
//! `/proc/PID/ns/net` names a process's network namespace, but only to a
//! process that may trace it (`PTRACE_MODE_READ`): without CAP_SYS_PTRACE,
//! root reads its own processes and not another user's (nor one holding
//! capabilities it lacks), and a `/proc` mounted with `hidepid=` does not
//! even list those to a process outside the mount's `gid=` group. A look
//! that missed a process must not be taken for a look that found none:
//! `rm` would remove a container whose command still runs. So a look
//! places what it may not read by another way where it can (see
//! [`Wanted`]), says what it still could not see ([`Unseen`]), and `rm`
//! refuses, or says so, instead of guessing. (The search for a namespace
//! whose name is gone has nothing to place such processes by and counts
//! them as none: see `netns_identity::held_by_a_process`.)

use std::cell::OnceCell;
use std::fmt;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::privileges;
use super::ErrorKind;
use crate::netns::Netns;

/// What a look through `/proc` found in one namespace.
#[derive(Debug, Default)]
pub(crate) struct ProcessLook {
    /// The processes seen inside, in ascending order.
    pub(crate) pids: Vec<u32>,
    /// Why processes may be inside that the look could not see.
    pub(crate) unseen: Option<Unseen>,
}

/// Why a look through `/proc` may have missed processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unseen {
    /// `/proc` could not be listed (not mounted, or refused): the text of
    /// the error.
    Unlisted(String),
    /// The namespaces of `count` processes could not be read (`EACCES`,
    /// `EPERM`), the lowest-numbered `first`.
    Unreadable { count: usize, first: u32 },
    /// `/proc` is mounted with this `hidepid=` value, which leaves out the
    /// processes this one may not trace, and it lacks CAP_SYS_PTRACE.
    Hidden(String),
}

impl Unseen {
    /// What a refusal for it is: a missing right (CAP_SYS_PTRACE, or a
    /// security policy's), or `/proc` itself failing.
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            Unseen::Unlisted(_) => ErrorKind::OperationFailed,
            Unseen::Unreadable { .. } | Unseen::Hidden(_) => ErrorKind::PermissionDenied,
        }
    }
}

impl fmt::Display for Unseen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unseen::Unlisted(error) => write!(f, "/proc could not be listed ({error})"),
            Unseen::Unreadable { count: 1, first } => write!(
                f,
                "the network namespace of process {first} could not be read (that takes CAP_SYS_PTRACE, or a security policy refused it)"
            ),
            Unseen::Unreadable { count, first } => write!(
                f,
                "the network namespaces of {count} processes (pid {first} and others) could not be read (that takes CAP_SYS_PTRACE, or a security policy refused it)"
            ),
            Unseen::Hidden(value) => write!(
                f,
                "/proc is mounted with hidepid={value}, which hides the processes this one may not trace, and it lacks CAP_SYS_PTRACE"
            ),
        }
    }
}

/// What `/proc/PID/ns/net` reads for a process in the network namespace
/// of nsfs inode `ino`.
pub(crate) fn namespace_link(ino: u64) -> String {
    format!("net:[{ino}]")
}

/// The processes in `ns` now, and what the look could not see. Read
/// now: a process that entered since an earlier read (`nsenter` through
/// another's `/proc/PID/ns/net`, a command started just before the name
/// went) would be missed by a copy kept from it. One `readlink` a
/// process; a `stat` for each whose link it may not read (see
/// [`Wanted`]); `/proc/self/mountinfo` read when this process lacks
/// CAP_SYS_PTRACE.
pub(crate) fn processes_in(ns: &Netns) -> ProcessLook {
    look_for(&Wanted::new(ns.file_id().1, Some(ns)))
}

/// The processes whose `/proc/PID/ns/net` names nsfs inode `ino` and
/// reads to this one, for a caller that cannot open the namespace (its
/// name is gone) and so has nothing to place the others by: one
/// `readlink` a process, and no word of what it could not see.
pub(crate) fn readable_processes_inside(ino: u64) -> Vec<u32> {
    scan(&Wanted::new(ino, None)).map_or_else(|_| Vec::new(), |(pids, _)| pids)
}

/// The network namespaces the processes of `/proc` are in, by their
/// threads (one `readlink` a process for its main thread, a listing of
/// its threads and one `readlink` for each other thread), but those whose
/// nsfs inodes `known` holds (the host's, the named ones): the namespaces
/// without a name a runtime keeps its containers in (Docker's, Podman's,
/// a CNI runtime's bind mounts elsewhere), whose links sit on host links
/// as a named namespace's do, and those a thread alone has entered or
/// made. Each with what is in it: processes by pid, ascending, then the
/// other threads; any may exit, and its pid be taken by another process,
/// before the namespace is opened through it (the caller checks the
/// inode, and tries the next). A namespace only a descriptor or a bind
/// mount holds is not found (bind mounts are [`super::mounts`]'); the
/// processes and threads whose namespace could not be read are counted,
/// and a `/proc` that hides processes from this one is said.
pub(crate) fn processes_by_namespace(known: &[u64]) -> ByNamespace {
    processes_by_namespace_but(known, std::process::id())
}

/// [`processes_by_namespace`] with every process but `me`'s.
fn processes_by_namespace_but(known: &[u64], me: u32) -> ByNamespace {
    let mut pids = match processes_but(me) {
        Ok(pids) => pids,
        Err(error) => {
            return ByNamespace {
                found: Vec::new(),
                unseen: Some(Unseen::Unlisted(error.to_string())),
            }
        }
    };
    crate::order::sort(&mut pids);
    let mut found: Vec<(u64, Vec<Holder>)> = Vec::new();
    let mut unreadable: Option<(usize, u32)> = None;
    // Each process once, however many of its threads were refused.
    let mut refused = |pid: u32| match &mut unreadable {
        Some((_, last)) if *last == pid => {}
        Some((count, last)) => {
            *count += 1;
            *last = pid;
        }
        None => unreadable = Some((1, pid)),
    };
    let mut add = |ino: u64, holder: Holder| {
        if known.contains(&ino) {
            return;
        }
        match found.iter_mut().find(|(seen, _)| *seen == ino) {
            // One thread of a process for each namespace is enough.
            Some((_, inside)) if inside.iter().any(|other| other.pid == holder.pid) => {}
            Some((_, inside)) => inside.push(holder),
            None => found.push((ino, vec![holder])),
        }
    };
    for pid in pids {
        let main = Holder { pid, tid: None };
        let main_ino = match std::fs::read_link(main.namespace_path()) {
            Ok(link) => namespace_of_link(&link),
            // Refused: its threads would be too.
            Err(error) if is_refusal(&error) && !main.has_gone(&error) => {
                refused(pid);
                continue;
            }
            // Exited, or a thread-group leader that has ended (its other
            // threads may still run, each in a namespace).
            Err(_) => None,
        };
        if let Some(ino) = main_ino {
            add(ino, main);
        }
        // A leader that has ended leaves no count to trust: listed.
        for tid in match other_threads(pid, main_ino.is_none()) {
            Ok(tids) => tids,
            Err(error) if main.has_gone(&error) => continue,
            Err(_) => {
                refused(pid);
                continue;
            }
        } {
            let thread = Holder {
                pid,
                tid: Some(tid),
            };
            match std::fs::read_link(thread.namespace_path()) {
                Ok(link) => match namespace_of_link(&link) {
                    Some(ino) if Some(ino) != main_ino => add(ino, thread),
                    _ => {}
                },
                Err(error) if is_refusal(&error) && !thread.has_gone(&error) => refused(pid),
                Err(_) => {}
            }
        }
    }
    // Through a process first: a thread may end before its process.
    for (_, inside) in &mut found {
        crate::order::sort_by(inside, |a, b| a.tid.is_some().cmp(&b.tid.is_some()));
    }
    ByNamespace {
        found,
        // A `/proc` that hides processes from us lists none of theirs.
        unseen: unreadable
            .map(|(count, first)| Unseen::Unreadable { count, first })
            .or_else(|| hidden_from_us().map(Unseen::Hidden)),
    }
}

/// A process (its main thread), or one of its other threads, in a
/// namespace [`processes_by_namespace`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Holder {
    pub(crate) pid: u32,
    /// The thread, when it is not the process's main one.
    pub(crate) tid: Option<u32>,
}

impl Holder {
    /// Its `/proc` directory: the process's, or the thread's under it.
    fn dir(&self) -> String {
        match self.tid {
            None => format!("/proc/{}", self.pid),
            Some(tid) => format!("/proc/{}/task/{tid}", self.pid),
        }
    }

    /// Its `/proc` link to its network namespace.
    pub(crate) fn namespace_path(&self) -> String {
        self.dir() + "/ns/net"
    }

    /// Whether a look at its namespace failed (`error`) because it has
    /// gone: one on its way out has no namespace (`ENOENT`, its `/proc`
    /// entry still there), and procfs answers `EACCES`, as to a refusal,
    /// for one reaped after its entry was looked up (its directory is gone
    /// then). A thread may end, and its entry go, while its process runs
    /// on: its own directory decides.
    pub(crate) fn has_gone(&self, error: &std::io::Error) -> bool {
        matches!(error.raw_os_error(), Some(libc::ENOENT | libc::ESRCH))
            || !Path::new(&self.dir()).exists()
    }
}

/// The threads of process `pid` but its main one. Listed only when there
/// are some, or `always`: the link count of `/proc/PID/task` is 2 and one
/// a live thread, so a process of one thread costs one `stat` where a
/// listing costs four calls.
fn other_threads(pid: u32, always: bool) -> std::io::Result<Vec<u32>> {
    let dir = format!("/proc/{pid}/task");
    if !always && std::fs::metadata(&dir)?.nlink() <= 3 {
        return Ok(Vec::new());
    }
    Ok(crate::sys::list_dir(Path::new(&dir))?
        .iter()
        .filter_map(|entry| std::str::from_utf8(&entry.name).ok()?.parse::<u32>().ok())
        .filter(|tid| *tid != pid)
        .collect())
}

/// The nsfs inode a `/proc/PID/ns/net` link names (see [`namespace_link`]).
fn namespace_of_link(link: &Path) -> Option<u64> {
    super::mounts::net_namespace_inode(link.as_os_str().as_encoded_bytes())
}

/// The pids `/proc` lists, but this process's.
fn other_processes() -> std::io::Result<Vec<u32>> {
    processes_but(std::process::id())
}

/// The pids `/proc` lists, but `me`.
fn processes_but(me: u32) -> std::io::Result<Vec<u32>> {
    Ok(crate::sys::list_dir(Path::new("/proc"))?
        .iter()
        .filter_map(|entry| std::str::from_utf8(&entry.name).ok()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .collect())
}

/// What [`processes_by_namespace`] found.
pub(crate) struct ByNamespace {
    /// Each namespace's nsfs inode and what is in it: processes by pid,
    /// ascending, then other threads.
    pub(crate) found: Vec<(u64, Vec<Holder>)>,
    /// Why namespaces may be missing from `found`.
    pub(crate) unseen: Option<Unseen>,
}

/// The command name of process `pid` (`/proc/PID/comm`), for messages;
/// empty when it has gone. Escaped: any process names itself
/// (`prctl(PR_SET_NAME)`), control characters included, and the message
/// goes to root's terminal.
pub(crate) fn command_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|comm| comm.trim_end_matches('\n').escape_debug().to_string())
        .unwrap_or_default()
}

fn look_for(wanted: &Wanted<'_>) -> ProcessLook {
    let (pids, unreadable) = match scan(wanted) {
        Ok(found) => found,
        Err(error) => {
            return ProcessLook {
                pids: Vec::new(),
                unseen: Some(Unseen::Unlisted(error.to_string())),
            }
        }
    };
    let unseen = unreadable
        .or_else(|| (wanted.hidden.get_or_init(hidden_from_us).clone()).map(Unseen::Hidden));
    ProcessLook { pids, unseen }
}

/// Every process of `/proc` but this one placed against `wanted`: those
/// inside, in ascending order, and those that could not be placed
/// ([`Unseen::Unreadable`]), if any.
fn scan(wanted: &Wanted<'_>) -> std::io::Result<(Vec<u32>, Option<Unseen>)> {
    let mut pids = Vec::new();
    let mut unreadable: Option<(usize, u32)> = None;
    for pid in other_processes()? {
        match where_is(pid, wanted) {
            Seen::Inside => pids.push(pid),
            Seen::Elsewhere => {}
            Seen::Unreadable => {
                let (count, first) = unreadable.get_or_insert((0, pid));
                *count += 1;
                *first = (*first).min(pid);
            }
        }
    }
    crate::order::sort(&mut pids);
    let unreadable = unreadable.map(|(count, first)| Unseen::Unreadable { count, first });
    Ok((pids, unreadable))
}

/// The namespace a look is for. `/proc/PID/ns/net` tells a process's
/// namespace only to a process that may trace it; `/proc/PID/net/`
/// shows that namespace's files to any process that may read `/proc/PID`
/// (no ptrace check), and each namespace's files have inode numbers of
/// their own, held while it lives. So a process whose link is refused is
/// placed by the inode of its `net/dev` (a file every namespace has)
/// against the namespace's own (`dev`, learnt by entering it), when the
/// caller has it open; without it, such a process is not placed.
struct Wanted<'a> {
    /// What `/proc/PID/ns/net` reads inside.
    link: String,
    ns: Option<&'a Netns>,
    /// The inode of `net/dev` in the namespace, when it is open.
    dev: OnceCell<Option<u64>>,
    /// [`hidden_from_us`], read once for every look of a kill's rounds.
    hidden: OnceCell<Option<String>>,
}

impl<'a> Wanted<'a> {
    fn new(ino: u64, ns: Option<&'a Netns>) -> Self {
        Wanted {
            link: namespace_link(ino),
            ns,
            dev: OnceCell::new(),
            hidden: OnceCell::new(),
        }
    }

    fn dev(&self) -> Option<u64> {
        *self.dev.get_or_init(|| {
            let ns = self.ns?;
            crate::netns::run_here(ns, || net_dev_inode("/proc/thread-self"))
                .ok()?
                .ok()
        })
    }
}

/// The inode of `net/dev` under a task's `/proc` directory `task`.
fn net_dev_inode(task: &str) -> std::io::Result<u64> {
    std::fs::metadata(format!("{task}/net/dev")).map(|meta| meta.ino())
}

/// Where a look found one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Inside,
    /// In another namespace, or gone.
    Elsewhere,
    /// Its namespace could not be told.
    Unreadable,
}

/// Where process `pid` is against `wanted`: its main thread, as
/// `/proc/PID/ns/net` tells; or, when that thread has ended while others
/// run on (its link reads nothing then), any of its threads.
fn where_is(pid: u32, wanted: &Wanted<'_>) -> Seen {
    let dir = format!("/proc/{pid}");
    match std::fs::read_link(format!("{dir}/ns/net")) {
        Ok(found) if found.as_os_str() == wanted.link.as_str() => Seen::Inside,
        Ok(_) => Seen::Elsewhere,
        Err(error) if is_refusal(&error) => match by_net_dev(&dir, wanted) {
            Some(seen) => seen,
            None => any_thread_in_namespace(pid, wanted),
        },
        Err(_) => any_thread_in_namespace(pid, wanted),
    }
}

/// Where the task of `/proc` directory `task`, whose link was refused,
/// is against `wanted`, by its `net/dev`; `None` when it has none (a
/// thread-group leader that has ended, its threads running on).
fn by_net_dev(task: &str, wanted: &Wanted<'_>) -> Option<Seen> {
    let Some(dev) = wanted.dev() else {
        return Some(Seen::Unreadable);
    };
    match net_dev_inode(task) {
        Ok(ino) if ino == dev => Some(Seen::Inside),
        Ok(_) => Some(Seen::Elsewhere),
        Err(error) if error.raw_os_error() == Some(libc::ENOENT) => None,
        Err(_) => Some(Seen::Unreadable),
    }
}

/// Where the threads of process `pid` are against `wanted`: one
/// `readlink` a thread, only for a process whose main thread's link
/// could not be read (ended, or the process is going).
fn any_thread_in_namespace(pid: u32, wanted: &Wanted<'_>) -> Seen {
    // Its main thread's link was read already.
    let tids = match other_threads(pid, true) {
        Ok(tids) => tids,
        Err(error) if is_refusal(&error) => return Seen::Unreadable,
        Err(_) => return Seen::Elsewhere,
    };
    let mut seen = Seen::Elsewhere;
    for tid in tids {
        let dir = Holder {
            pid,
            tid: Some(tid),
        }
        .dir();
        let here = match std::fs::read_link(format!("{dir}/ns/net")) {
            Ok(found) if found.as_os_str() == wanted.link.as_str() => Seen::Inside,
            Err(error) if is_refusal(&error) => by_net_dev(&dir, wanted).unwrap_or(Seen::Elsewhere),
            _ => Seen::Elsewhere,
        };
        match here {
            Seen::Inside => return Seen::Inside,
            Seen::Unreadable => seen = Seen::Unreadable,
            Seen::Elsewhere => {}
        }
    }
    seen
}

/// Whether reading a process's entry failed because this process may not
/// (not because the process has gone).
fn is_refusal(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(libc::EACCES | libc::EPERM))
}

/// The `hidepid=` value of the `/proc` this process lists, when it hides
/// processes from it. It does not when this process holds CAP_SYS_PTRACE
/// (which lets it see every one whatever the option), nor, unless the
/// value is `ptraceable`, when it is in the mount's `gid=` group (root's
/// group 0 unless the option names another): so root under systemd's
/// `ProtectProc=invisible` sees every process.
fn hidden_from_us() -> Option<String> {
    let caps = privileges::own_capabilities()?;
    if caps & (1 << privileges::CAP_SYS_PTRACE) != 0 {
        return None;
    }
    let mountinfo = super::mounts::read_mountinfo().ok()?;
    let hiding = hidepid_of_proc(&mountinfo)?;
    let ptraceable_only = matches!(hiding.value.as_str(), "ptraceable" | "4");
    (ptraceable_only || !crate::sys::in_group(hiding.gid)).then_some(hiding.value)
}

/// How the procfs on `/proc` hides processes (`proc(5)`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Hiding {
    /// `hidepid=`: `noaccess`, `invisible`, `ptraceable` (or `1`, `2`,
    /// `4`, as kernels before 5.8 print them).
    value: String,
    /// `gid=`: the group that sees every process all the same (0 when
    /// the mount names none).
    gid: u32,
}

/// How the procfs mounted on `/proc` last (the one a path reaches) in
/// `mountinfo` (`/proc/self/mountinfo`) hides processes, unless it hides
/// none (`hidepid=` absent, `0`, `off`).
pub(crate) fn hidepid_of_proc(mountinfo: &[u8]) -> Option<Hiding> {
    let options = super::mounts::mount_lines(mountinfo)
        .rev()
        .find(|line| line.mount_point == b"/proc" && line.fstype == b"proc")?
        .super_options;
    let options = std::str::from_utf8(options).ok()?;
    let option = |name: &str| {
        options
            .split(',')
            .find_map(|option| option.strip_prefix(name)?.strip_prefix('='))
    };
    let value = option("hidepid").filter(|value| !matches!(*value, "0" | "off"))?;
    Some(Hiding {
        value: value.to_string(),
        gid: option("gid").and_then(|gid| gid.parse().ok()).unwrap_or(0),
    })
}

/// How many times [`kill_everything_inside`] looks again.
pub(crate) const KILL_ROUNDS: usize = 200;

/// What [`kill_everything_inside`] could not end.
#[derive(Debug, Default)]
pub(crate) struct Survivors {
    /// Processes seen inside after the last round.
    pub(crate) pids: Vec<u32>,
    /// Why processes may be inside that no look saw, so none was killed.
    pub(crate) unseen: Option<Unseen>,
}

/// Kills every process `/proc` shows in `ns`, and looks again until
/// nothing is left: a process forked after a look is caught by the next
/// (each is checked again through a pidfd before its signal, see
/// [`kill_if_inside`]). A process that outlives [`KILL_ROUNDS`] looks (a
/// fork faster than the kills, for seconds; one in uninterruptible
/// sleep) is left, and the namespace with it; so is any the looks could
/// not see. Both are returned, for the caller to say so.
pub(crate) fn kill_everything_inside(ns: &Netns) -> Survivors {
    let inside = Wanted::new(ns.file_id().1, Some(ns));
    let mut look = look_for(&inside);
    for _ in 0..KILL_ROUNDS {
        if look.pids.is_empty() {
            break;
        }
        for &pid in &look.pids {
            kill_if_inside(pid, &inside);
        }
        // A killed process leaves `/proc`'s namespace links once it has
        // exited, soon after the signal.
        std::thread::sleep(std::time::Duration::from_millis(5));
        look = look_for(&inside);
    }
    Survivors {
        pids: look.pids,
        unseen: look.unseen,
    }
}

/// Sends SIGKILL to `pid` if it is still a process of the namespace
/// `inside`; one that is gone is fine. The
/// number was read from `/proc` a moment before: the process may have
/// ended since and its number gone to another, which is not ours to
/// kill. So the process is taken by a pidfd first, then checked: the
/// signal reaches the process that was checked, or nobody. On a kernel
/// without pidfds (before 5.3), checked and killed by number.
fn kill_if_inside(pid: u32, inside: &Wanted<'_>) {
    match crate::sys::pidfd_open(pid) {
        Ok(pidfd) => {
            if where_is(pid, inside) == Seen::Inside {
                let _ = crate::sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
            }
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            if where_is(pid, inside) == Seen::Inside {
                let _ = crate::sys::kill(pid, libc::SIGKILL);
            }
        }
        // ESRCH: it has ended.
        Err(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns;

    /// What a look for `ns` is given.
    fn wanted(ns: &Netns) -> Wanted<'_> {
        Wanted::new(ns.file_id().1, Some(ns))
    }

    #[test]
    fn each_namespace_a_process_is_in_is_found_once_with_its_processes_but_the_known() {
        let own = netns::Netns::current().unwrap().file_id().1;
        let mut holders: Vec<std::process::Child> = (0..2)
            .map(|_| {
                std::process::Command::new("unshare")
                    .args(["--net", "sleep", "100"])
                    .spawn()
                    .expect("unshare (util-linux)")
            })
            .collect();
        let own_link = std::fs::read_link("/proc/self/ns/net").unwrap();
        let inode_of = |pid: u32| -> Option<u64> {
            let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
            (link != own_link).then_some(())?;
            namespace_of_link(&link)
        };
        let mut inodes = Vec::new();
        for holder in &holders {
            // Until `unshare` has made the namespace and become `sleep`.
            let mut found = None;
            for _ in 0..500 {
                found = inode_of(holder.id());
                if found.is_some() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            inodes.push(found.expect("the holder's namespace"));
        }
        // A second process in the first holder's namespace, a higher pid.
        let beside = std::process::Command::new("nsenter")
            .arg(format!("--net=/proc/{}/ns/net", holders[0].id()))
            .args(["sleep", "100"])
            .spawn()
            .expect("nsenter (util-linux)");
        for _ in 0..500 {
            if inode_of(beside.id()) == Some(inodes[0]) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        holders.push(beside);
        let seen = processes_by_namespace(&[own, inodes[1]]).found;
        for holder in &mut holders {
            let _ = holder.kill();
            let _ = holder.wait();
        }
        assert!(
            seen.contains(&(
                inodes[0],
                vec![
                    Holder {
                        pid: holders[0].id(),
                        tid: None
                    },
                    Holder {
                        pid: holders[2].id(),
                        tid: None
                    }
                ]
            )),
            "{seen:?} names the first holder's namespace with both its processes, in order"
        );
        assert!(
            seen.iter().all(|(ino, _)| *ino != own && *ino != inodes[1]),
            "{seen:?} names no namespace it was told of"
        );
        let mut unique: Vec<u64> = seen.iter().map(|(ino, _)| *ino).collect();
        crate::order::sort(&mut unique);
        unique.dedup();
        assert_eq!(unique.len(), seen.len(), "{seen:?}: each namespace once");
    }

    /// A thread in a namespace of its own, its process's main thread in
    /// the host's, is found through that thread (this process's own, with
    /// the walk told to leave out no process). Before, only main threads
    /// were read and such a namespace was never seen.
    #[test]
    fn a_namespace_only_a_thread_is_in_is_found_through_it() {
        let (told, heard) = std::sync::mpsc::channel();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            // This thread's alone: one the test spawned.
            crate::sys::unshare(libc::CLONE_NEWNET).unwrap();
            // `PID/task/TID`.
            let tid: u32 = std::fs::read_link("/proc/thread-self")
                .unwrap()
                .file_name()
                .and_then(|tid| tid.to_str()?.parse().ok())
                .unwrap();
            let ino = std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino();
            told.send((tid, ino)).unwrap();
            let _ = stopped.recv();
        });
        let (tid, ino) = heard.recv().unwrap();
        let own = Netns::current().unwrap().file_id().1;
        let seen = processes_by_namespace_but(&[own], 0).found;
        stop.send(()).unwrap();
        thread.join().unwrap();
        let me = std::process::id();
        assert!(
            seen.contains(&(
                ino,
                vec![Holder {
                    pid: me,
                    tid: Some(tid)
                }]
            )),
            "{seen:?} names the thread's namespace, through it"
        );
        assert!(
            seen.iter().all(|(at, _)| *at != own),
            "{seen:?} names no namespace it was told of"
        );
    }

    #[test]
    fn a_process_outside_the_namespace_is_not_killed_by_its_number() {
        // As when a process listed in the container ended and its number
        // went to a process elsewhere before the kill: before, `rm -f`
        // killed whatever had the number by then.
        let elsewhere = netns::create_anonymous().unwrap();
        let mut sleeper = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        kill_if_inside(sleeper.id(), &wanted(&elsewhere));
        // A SIGKILL sent decides the exit's signal there and then: ended
        // by our SIGTERM, it was never sent one (no sleep to wait for it).
        crate::sys::kill(sleeper.id(), libc::SIGTERM).unwrap();
        let signal_of = |status| std::os::unix::process::ExitStatusExt::signal(&status);
        assert_eq!(
            signal_of(sleeper.wait().unwrap()),
            Some(libc::SIGTERM),
            "a process of another namespace was killed"
        );
        // And one that is inside is.
        let mut inside = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        let here = Netns::current().unwrap();
        kill_if_inside(inside.id(), &wanted(&here));
        assert_eq!(signal_of(inside.wait().unwrap()), Some(libc::SIGKILL));
    }

    #[test]
    fn hidepid_is_read_from_the_last_proc_mounted_on_slash_proc() {
        let line = |point: &str, fs: &str, options: &str| {
            format!("25 1 0:23 / {point} rw,nosuid,nodev,noexec,relatime shared:13 - {fs} {fs} {options}\n")
                .into_bytes()
        };
        let hiding = |value: &str, gid: u32| {
            Some(Hiding {
                value: value.to_string(),
                gid,
            })
        };
        let plain = line("/proc", "proc", "rw");
        assert_eq!(hidepid_of_proc(&plain), None);
        let hidden = [plain.clone(), line("/proc", "proc", "rw,hidepid=invisible")].concat();
        assert_eq!(hidepid_of_proc(&hidden), hiding("invisible", 0));
        let with_group = line("/proc", "proc", "rw,hidepid=invisible,gid=4242");
        assert_eq!(hidepid_of_proc(&with_group), hiding("invisible", 4242));
        // Older kernels print the number; 0 hides nothing.
        assert_eq!(
            hidepid_of_proc(&line("/proc", "proc", "rw,hidepid=2")),
            hiding("2", 0)
        );
        assert_eq!(
            hidepid_of_proc(&line("/proc", "proc", "rw,hidepid=0")),
            None
        );
        assert_eq!(
            hidepid_of_proc(&line("/proc", "proc", "rw,hidepid=off")),
            None
        );
        // Mounted over by a plain one: that one is what a path reaches.
        assert_eq!(hidepid_of_proc(&[hidden.clone(), plain].concat()), None);
        // A mount at a path that is not UTF-8 spoils nothing.
        let odd = b"47 22 0:30 / /mnt/caf\xe9 rw shared:30 - tmpfs tmpfs rw\n".to_vec();
        assert_eq!(
            hidepid_of_proc(&[hidden, odd].concat()),
            hiding("invisible", 0)
        );
        // Another mount point, or another file system at /proc, is not it.
        assert_eq!(
            hidepid_of_proc(&line("/run/proc", "proc", "hidepid=2")),
            None
        );
        assert_eq!(hidepid_of_proc(&line("/proc", "tmpfs", "hidepid=2")), None);
        assert_eq!(hidepid_of_proc(b"garbage\n"), None);
    }

    #[test]
    fn a_look_sees_a_process_inside_and_says_what_it_could_not_see() {
        let ns = netns::create_anonymous().unwrap();
        let look = processes_in(&ns);
        assert!(look.pids.is_empty(), "{look:?}");
        // Run as root with CAP_SYS_PTRACE, as the tests are: every
        // process readable, none hidden.
        assert_eq!(look.unseen, None);
        let mut sleeper = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        let here = Netns::current().unwrap();
        assert!(processes_in(&here).pids.contains(&sleeper.id()));
        sleeper.kill().unwrap();
        sleeper.wait().unwrap();
        let unseen = Unseen::Unreadable { count: 2, first: 7 };
        assert_eq!(
            unseen.to_string(),
            "the network namespaces of 2 processes (pid 7 and others) could not be read (that takes CAP_SYS_PTRACE, or a security policy refused it)"
        );
    }
}
