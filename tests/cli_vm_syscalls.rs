//! What one command costs the kernel, counted with `strace -f -C` in the
//! QEMU guest (`cargo xtask vm-test --test cli_vm_syscalls`): `network
//! connect`, `network disconnect`, `run -d`, `rm -f` and a CNI plugin's
//! ADD and DEL each stay within a budget of system calls, make exactly the
//! `fsync`/`fdatasync` calls their durable records need, start no thread
//! where none is needed, and the link create succeeds at its first
//! request.
//!
//! The guest binary is the `guest` profile, built with debug assertions:
//! the standard library checks every descriptor with `fcntl(F_GETFD)`
//! before it closes it, which a release build does not. Those calls are
//! counted apart and left out, so the budgets are a release build's.
//! Every figure is printed (`--nocapture` shows them).

mod vm_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ipvlan::json::{self, Value};

/// Budgets, in system calls a release build makes (see the module
/// documentation), about 10% above what was reached on Linux 6.1: connect
/// 80 with its default route (its budget is issue 8's target, 80, not
/// 10% above; 79 until the target's type was asked before the lock, as
/// the entry into it moved under the lock), disconnect 72, run -d 109, rm -f 176 (its `readlink` of
/// every process's namespace grows with the processes running), ps 150,
/// network ls 49, network inspect 55, CNI ADD 70, CNI DEL 49 (83 and 58
/// until the CNI cuts listed at their budgets). Until
/// these, the network had no parent and so no gateway: no default route
/// (two system calls fewer: a batch of two needs no look at the socket's
/// buffer). Before this test, connect,
/// disconnect, run -d and rm -f made 415, 357, 538 and 452; before the
/// name views used the store's descriptors and read only the target
/// network, 254, 207, 292 and 304 (ps 350, quadratic in containers and
/// networks); before the binary started from its own `main` (no runtime
/// stack-overflow handler), allocated from one mapping (no `mmap`/`munmap`
/// per buffer), left its directory descriptors to exit and read the
/// network record once, 214, 195, 272 and 302 (ps 301, ls 101, inspect
/// 135); before the store trusted the layout of a store holding its lock
/// (each directory checked at first use), opened state files without an
/// `fstatat` first, read a container's index once per lock, looked for no
/// older version's records in a store made without them, and `run`
/// attached the namespace it made without opening it again, 155, 144,
/// 208 and 245 (ps 211, ls 66, inspect 83); before address files and
/// container indexes were left out of the commit (derived, rebuilt by
/// `restore`), 126, 104, 163 and 203 (CNI ADD 117, DEL 84); before
/// address files and name hints were symbolic links (one `symlinkat` to
/// take an address, one `readlinkat` to read an owner or a hint) and an
/// allocation opened its cursor once, 122, 102, 159 and 200 (CNI ADD 115,
/// DEL 83, inspect 65); before the subdirectories of a private root
/// (0700, as here) went unchecked (opened, no `fstat` each) and its files
/// were reached by their path from the root's descriptor, each directory
/// opened only for a descriptor it needs (a sync, a listing), 112, 96,
/// 152 and 197 (ps 160, ls 50, inspect 62, CNI ADD 105, DEL 77); before a
/// connect entered its target once (socket to `disable_ipv6`), asked no
/// `eth0` of a container on no network, sent its address and link-up
/// without reading the socket's buffer, `run -d` made, opened and named
/// its namespace and set its first link up in one visit, a namespace was
/// opened and entered in one step, and the binary left the namespaces and
/// sockets of a command that succeeded to its exit, 94, 78, 136 and 180
/// (CNI ADD 92, DEL 64); before a container's first index was made in
/// place (no temporary, no rename) and the binary left the state files it
/// wrote to its exit (at most 8, never the lock), and the first lock after
/// the store's opening took the lock for regular without an `fstat`, 81,
/// 74, 113 and 179 (CNI ADD 86, DEL 60); before a single attach's
/// endpoint record was made by its path from the store's root (its
/// directory not opened: the commit log's entry makes it durable, no
/// `fsync` of the directory), 77 (CNI ADD 68); before the store's sets
/// were ordered, not hashed (a hashed set asked `getrandom` for its keys,
/// and its thread-local keys made the TLS block too large for the C
/// library's own, an `mmap` at start), 76 (CNI ADD 67; 74 and 65 since,
/// Linux 6.1, and 2 fewer for every other command); before a hosts
/// append read its file's last byte (a line a kill cut short is ended
/// first), 74 (`run -d` 101; 75 and 102 since); before its container's
/// socket asked for no capped ACKs, 76; before only the last request of
/// its pipeline (address, up, route) asked for an ACK, 75 (73 since, 72 on
/// Linux 6.12). What is left of a connect: the process's start
/// and exit (about 12), the state directory (about 35: the network's name
/// and record, the endpoint and index lookups, the cursor and address
/// link, the index, the endpoint record written twice (intent, final), the
/// hosts line and `/etc/netns` view, the commit) and the kernel's share
/// (about 30: two netlink sockets, the namespace opened and entered once,
/// the parent's lookup, the link's create, `disable_ipv6`, address and
/// up).
const CONNECT_BUDGET: usize = 78;
/// `network disconnect`: 69 on Linux 6.1 since the network's union
/// markers are looked for once (70, and a budget of 77, before; 72, and a
/// budget of 80, until its `/etc/netns` view was read by `readlink`
/// alone, with no `lstat` first, and the view's leftover temporary looked
/// for only when the directory does not go).
const DISCONNECT_BUDGET: usize = 76;
/// Datagrams a connect reads (`recvfrom`): the parent's lookup, the link's
/// create, and one for its pipeline of three requests.
const CONNECT_NETLINK_READS: usize = 3;
/// `run -d --net` without a command: a container namespace and one attach.
const RUN_BUDGET: usize = 120;
/// `rm -f` of that container.
const RM_BUDGET: usize = 195;
/// `ps` with 8 containers and 8 networks.
const PS_BUDGET: usize = 165;
/// `network ls` with 8 networks.
const LS_BUDGET: usize = 54;
/// CNI ADD (`ipam.type: ipvlan`): 64 on Linux 6.1 (65 before its
/// `arp_notify` went by netlink, and a budget of 73: its `openat` and
/// `write` went, and one `getsockopt(SO_RCVBUF)` came, as this config has
/// no route and its pipeline grew from two requests, which need no
/// budget, to three; with a route the ADD makes two calls fewer; 67
/// measured earlier, 68 before its record
/// was made by its path from the root, and a budget of 77). Before it
/// visited the
/// target once (from its socket to the link's settings, as connect), 74;
/// before its stdin was read in place (no duplicate of fd 0), its network
/// record read once (under the lock, through the name's hint) and the
/// name asked no second time under the lock (the create finds a link made
/// since), 83.
const CNI_ADD_BUDGET: usize = 70;
/// CNI DEL of that attachment: 49 on Linux 6.1. Before its stdin was read
/// in place, its network record read once and a socket in the host opened
/// only for a master the network made, 58.
const CNI_DEL_BUDGET: usize = 54;
/// `network inspect` of a network with 8 endpoints.
const INSPECT_BUDGET: usize = 61;

/// `(fsync, fdatasync, syncfs)` of a `network connect`: one `fdatasync`
/// of the store's lock, after the entry of the commit log that holds the
/// endpoint record (see `store/commit_log.rs`). Before the commit log,
/// (1, 1, 0): the endpoint record and its directory; before the address
/// file and the container's index were derived (not synced), (3, 3, 0).
const CONNECT_SYNCS: (usize, usize, usize) = (0, 1, 0);
/// `network disconnect`: the commit log's entry (the endpoint record's
/// removal). Before, (1, 0, 0), and (3, 1, 0) before that.
const DISCONNECT_SYNCS: (usize, usize, usize) = (0, 1, 0);
/// `run -d`: the commit log's entry holds the container record and the
/// endpoint record. Before, (2, 2, 0), and (4, 4, 0) before that.
const RUN_SYNCS: (usize, usize, usize) = (0, 1, 0);
/// `rm -f`: the commit log's entry. Before, (2, 0, 0), and (4, 0, 0).
const RM_SYNCS: (usize, usize, usize) = (0, 1, 0);
/// CNI ADD (a network's second attachment): the commit log's entry.
/// Before, (1, 1, 0), and (2, 2, 0).
const CNI_ADD_SYNCS: (usize, usize, usize) = (0, 1, 0);
/// CNI DEL: the commit log's entry. Before, (1, 0, 0), and (2, 0, 0).
const CNI_DEL_SYNCS: (usize, usize, usize) = (0, 1, 0);

fn binary() -> String {
    std::env::var("IPVLAN_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ipvlan").to_string())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A state directory and /etc/netns of its own; containers in iproute2's
/// `/run/netns` (private to this test binary in the guest), so that `ip
/// netns add` makes a container without a network, as a runtime would.
struct Env {
    root: PathBuf,
    namespaces: Vec<String>,
}

impl Env {
    fn new(tag: &str) -> Env {
        let root = std::env::temp_dir().join(format!("ipvlan-syscalls-{tag}"));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        Env {
            root,
            namespaces: Vec::new(),
        }
    }

    /// A container without network: `ip netns add NAME`.
    fn container(&mut self, name: &str) {
        assert!(
            vm_support::ip_ok(&["netns", "add", name]),
            "ip netns add {name}"
        );
        self.namespaces.push(name.to_string());
    }

    fn environment(&self, command: &mut Command) {
        command
            .env("IPVLAN_STATE_DIR", self.root.join("state"))
            .env("IPVLAN_NETNS_DIR", "/run/netns")
            .env("IPVLAN_ETC_NETNS_DIR", self.root.join("etc-netns"))
            .stdin(Stdio::null());
    }

    fn ok(&self, args: &[&str]) -> String {
        let mut command = Command::new(binary());
        command.args(args);
        self.environment(&mut command);
        let output = command.output().expect("runs ipvlan");
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
        text(&output.stdout)
    }

    /// Runs `ipvlan ARGS` under `strace -f -C` with `vars` set, insists on
    /// exit 0 and returns what strace saw.
    fn traced(&self, args: &[&str], vars: &[(&str, &str)]) -> Trace {
        self.traced_with_input(args, vars, None)
    }

    /// [`Env::traced`] with `input` on stdin (a CNI plugin's config).
    fn traced_with_input(
        &self,
        args: &[&str],
        vars: &[(&str, &str)],
        input: Option<&str>,
    ) -> Trace {
        let log = self.root.join("strace.log");
        let mut command = Command::new("strace");
        command
            .args(["-f", "-C", "-o"])
            .arg(&log)
            .arg(binary())
            .args(args)
            .envs(vars.iter().copied());
        self.environment(&mut command);
        let output: Output = match input {
            None => command.output().expect("runs strace (in the guest image)"),
            Some(input) => with_input(&mut command, input),
        };
        assert_eq!(
            output.status.code(),
            Some(0),
            "{args:?}: {}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
        Trace::parse(&std::fs::read_to_string(&log).unwrap())
    }

    fn inspect(&self, network: &str) -> Value {
        let document = json::parse(&self.ok(&["network", "inspect", network])).expect("JSON");
        document.as_array().expect("array")[0].clone()
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        for name in &self.namespaces {
            vm_support::ip_ok(&["netns", "del", name]);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// What `strace -f -C` wrote: each line of the trace, and the summary's
/// calls per system call.
struct Trace {
    lines: Vec<String>,
    calls: BTreeMap<String, usize>,
    total: usize,
}

impl Trace {
    fn parse(log: &str) -> Trace {
        let mut calls = BTreeMap::new();
        let mut total = None;
        let mut lines = Vec::new();
        let mut in_summary = false;
        for line in log.lines() {
            if line.starts_with("% time") {
                in_summary = true;
                continue;
            }
            if !in_summary {
                lines.push(line.to_string());
                continue;
            }
            // "% time  seconds  usecs/call  calls  [errors]  syscall"
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(count), Some(name)) = (fields.get(3), fields.last()) else {
                continue;
            };
            let Ok(count) = count.parse::<usize>() else {
                continue;
            };
            if *name == "total" {
                total = Some(count);
            } else {
                calls.insert(name.to_string(), count);
            }
        }
        let total = total.unwrap_or_else(|| panic!("no strace summary in:\n{log}"));
        Trace {
            lines,
            calls,
            total,
        }
    }

    fn count(&self, syscall: &str) -> usize {
        self.calls.get(syscall).copied().unwrap_or(0)
    }

    /// The debug build's descriptor checks before each close. A call
    /// another thread's interrupts is written in two lines (`fcntl(5,
    /// F_GETFD <unfinished ...>`, then `<... fcntl resumed>) = 1`): its
    /// first line is counted (looked for as `F_GETFD)` alone, the checks
    /// of a batch disconnect, whose threads delete its links, went
    /// uncounted, some 3 system calls a target more than a release build
    /// makes).
    fn debug_checks(&self) -> usize {
        self.lines
            .iter()
            .filter(|l| {
                l.contains("fcntl(")
                    && (l.contains("F_GETFD)") || l.contains("F_GETFD <unfinished"))
            })
            .count()
    }

    /// What a release build makes.
    fn release_total(&self) -> usize {
        self.total - self.debug_checks()
    }

    /// `(fsync, fdatasync, syncfs)` calls: each one a journal commit and a
    /// flush of the disk's cache, the dearest calls a command makes on a
    /// real disk.
    fn syncs(&self) -> (usize, usize, usize) {
        (
            self.count("fsync"),
            self.count("fdatasync"),
            self.count("syncfs"),
        )
    }

    /// The lines holding every one of `parts`.
    fn lines_with(&self, parts: &[&str]) -> Vec<&String> {
        self.lines
            .iter()
            .filter(|l| parts.iter().all(|part| l.contains(part)))
            .collect()
    }

    /// The lines of every rename.
    fn renames(&self) -> Vec<&String> {
        self.lines.iter().filter(|l| l.contains("rename")).collect()
    }

    fn threads(&self) -> usize {
        self.count("clone") + self.count("clone3")
    }

    /// Netlink errors the kernel answered to `RTM_NEWLINK` (type 16).
    fn refused_newlinks(&self) -> Vec<&String> {
        self.lines
            .iter()
            .filter(|l| l.contains("error=-") && l.contains("nlmsg_type=0x10 "))
            .chain(
                self.lines
                    .iter()
                    .filter(|l| l.contains("error=-") && l.contains("nlmsg_type=RTM_NEWLINK")),
            )
            .collect()
    }

    fn report(&self, what: &str) -> String {
        let top: Vec<String> = {
            let mut by_count: Vec<(&String, &usize)> = self.calls.iter().collect();
            by_count.sort_by(|a, b| b.1.cmp(a.1));
            by_count
                .iter()
                .take(60)
                .map(|(name, n)| format!("{name} {n}"))
                .collect()
        };
        format!(
            "{what}: {} system calls as a release build makes them ({} in this debug build, {} of them fcntl(F_GETFD) before a close), {} threads started; most: {}",
            self.release_total(),
            self.total,
            self.debug_checks(),
            self.threads(),
            top.join(", ")
        )
    }
}

#[test]
fn one_attach_stays_within_its_system_call_budget() {
    let mut env = Env::new("budget");
    // On a parent, with a gateway: each attach also sets its default route,
    // as issue 8's measure (and the bench's) does: the address, the link up
    // and the route go in one datagram.
    assert!(vm_support::ip_ok(&[
        "link", "add", "sysp0", "type", "dummy"
    ]));
    assert!(vm_support::ip_ok(&["link", "set", "sysp0", "up"]));
    env.ok(&[
        "network",
        "create",
        "-o",
        "parent=sysp0",
        "--subnet",
        "192.168.91.0/24",
        "--gateway",
        "192.168.91.1",
        "sys1",
    ]);
    // A few endpoints already there, as on a host in use.
    for n in 0..3 {
        let name = format!("sysb{n}");
        env.container(&name);
        env.ok(&["network", "connect", "sys1", &name]);
    }
    env.container("sysc1");

    let connect = env.traced(&["network", "connect", "sys1", "sysc1"], &[]);
    println!("{}", connect.report("network connect"));
    let disconnect = env.traced(&["network", "disconnect", "sys1", "sysc1"], &[]);
    println!("{}", disconnect.report("network disconnect"));
    let run = env.traced(&["run", "--net=sys1", "--name=sysc2", "-d"], &[]);
    println!("{}", run.report("run -d"));
    let rm = env.traced(&["rm", "-f", "sysc2"], &[]);
    println!("{}", rm.report("rm -f"));

    for (what, trace) in [("network connect", &connect), ("run -d", &run)] {
        let refused = trace.refused_newlinks();
        assert!(
            refused.is_empty(),
            "{what}: the kernel refused a link create:\n{}",
            refused
                .iter()
                .map(|l| l.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    for (what, trace) in [
        ("network connect", &connect),
        ("network disconnect", &disconnect),
    ] {
        assert_eq!(
            trace.threads(),
            0,
            "{what} starts no thread: {}",
            trace.report(what)
        );
    }
    // Each answer is one datagram read: the parent's lookup, the link's
    // create and the pipeline of address, up and route, whose requests
    // but the last ask for no ACK (the kernel answers them only if they
    // fail): 3 reads, not 5.
    assert_eq!(
        connect.count("recvfrom"),
        CONNECT_NETLINK_READS,
        "netlink reads of network connect: {}",
        connect.report("network connect")
    );
    // Random bytes are asked of the kernel only for a new link's index:
    // nothing at start (a hashed map or set's keys: the store's sets are
    // ordered), nothing in a detach.
    for (what, trace, wanted) in [
        ("network connect", &connect, 1),
        ("network disconnect", &disconnect, 0),
        ("run -d", &run, 1),
        ("rm -f", &rm, 0),
    ] {
        assert_eq!(
            trace.count("getrandom"),
            wanted,
            "getrandom calls of {what}: {}",
            trace.report(what)
        );
        // And never one that would wait for the kernel's pool to be
        // initialised, as a blocking draw does early in a boot.
        assert_eq!(
            trace.lines_with(&["getrandom(", "GRND_INSECURE"]).len(),
            wanted,
            "{what} draws random bytes without GRND_INSECURE: {}",
            trace.report(what)
        );
    }
    // Only what a command made durable is synced, once (README, "What
    // survives a power cut"): the endpoint record (connect), the container
    // record and the endpoint record (run -d), or their removals, by one
    // entry of the commit log and one `fdatasync` of the lock. Address
    // files, the container's index, the cursor and the hosts files are
    // derived and never synced.
    for (what, trace, syncs) in [
        ("network connect", &connect, CONNECT_SYNCS),
        ("network disconnect", &disconnect, DISCONNECT_SYNCS),
        ("run -d", &run, RUN_SYNCS),
        ("rm -f", &rm, RM_SYNCS),
    ] {
        assert_eq!(
            trace.syncs(),
            syncs,
            "(fsync, fdatasync, syncfs) of {what}: {}",
            trace.report(what)
        );
    }
    // A single attach makes its endpoint record by the path from the
    // store's root: the record's directory is not opened, as the commit
    // log's entry, not an `fsync` of the directory, makes the record
    // durable.
    for (what, trace) in [("network connect", &connect), ("run -d", &run)] {
        let endpoint_dirs = trace.lines_with(&["\"endpoints/", "O_DIRECTORY"]);
        assert!(
            endpoint_dirs.is_empty(),
            "{what} opens an endpoint directory: {endpoint_dirs:?}"
        );
    }
    // The network's union markers (a directory only there while one of
    // its containers is on several networks) are looked for once: twice
    // before, by the hosts file's refresh and by the container's view.
    let markers = disconnect.lines_with(&["hosts/unions/"]);
    assert_eq!(markers.len(), 1, "network disconnect: {markers:?}");
    // A detach's intent goes into the commit log's page: no temporary
    // record renamed over the endpoint's (on ext4 a rename over a file
    // starts the new file's writeback at once). The container is on one
    // network, so its index goes whole (on several, the index left is
    // rewritten, by a rename).
    assert!(
        disconnect.renames().is_empty(),
        "network disconnect renames nothing: {:?}",
        disconnect.renames()
    );
    for (what, trace, budget) in [
        ("network connect", &connect, CONNECT_BUDGET),
        ("network disconnect", &disconnect, DISCONNECT_BUDGET),
        ("run -d", &run, RUN_BUDGET),
        ("rm -f", &rm, RM_BUDGET),
    ] {
        assert!(
            trace.release_total() <= budget,
            "{} (budget {budget})",
            trace.report(what)
        );
    }
    drop(env);
    assert!(vm_support::ip_ok(&["link", "del", "sysp0"]));
}

/// Budgets of a batch (`network connect NET c1 c2 ...`, the library's
/// `connect_many`), in system calls per target a release build makes
/// (what one more target costs, measured between two batch sizes, so the
/// process's start and the batch's fixed work are left out), about 10%
/// above what was reached on Linux 6.1: connect 42, disconnect 45 (39 and
/// 41.3 reached since the allocation cursor is written once a batch, not
/// once a target, and a detach reads its view by `readlink` alone; before
/// that 40 and 43.3, and a budget of 47 for disconnect, whose 43.3 was
/// reached since each target's intent goes into the commit log's page
/// instead of a temporary record renamed over its record; 45 before, and
/// a budget of 49). The
/// connect's budget is 42 since its intents are lines of one file and
/// each final record is made in place, not an intent file per target and
/// a final one renamed over it (40 reached; 44 before).
/// Before these budgets, 71.7 and 55.0: each target's namespace was opened
/// with a look at our own and a question of its type, entered through
/// an open and close of our own (twice for connect: its socket, its
/// link's settings), its `eth0` asked before the create, its allocation
/// cursor opened and read, its intent record and first index written by
/// a temporary and a rename, its index read again for its names, and its
/// names appended to the network's hosts file by an open of their own;
/// a disconnect's target had the network's parent looked up and its
/// names blanked in the hosts file (an open and a read of it) each.
///
/// Since a target's socket asks for no capped ACKs (one call fewer) and
/// the hosts directory is checked once a batch: 36.8 and 40.2 reached on
/// Linux 6.1, budgets 40 and 44 (42 and 45 before). Since only a
/// datagram's last request asks for an ACK (a target's pipeline is one
/// answer read, not three; the links' creates one a datagram): 33.8 on
/// 6.1 (32.8 on 6.12), budget 37. Since a batch lists the network's
/// endpoint records, the containers' indexes and `/etc/netns` once and
/// looks up a target's names only where a listing holds them, and does
/// not look at a target's path again (opened under its lock): 29.8 on
/// 6.1, budget 33.
const BATCH_CONNECT_PER_TARGET: f64 = 33.0;
/// Netlink reads (`recvfrom`) per target of a batch connect: its pipeline's
/// one answer, and a share of the creates' (4 before only the last
/// request of a datagram asked for an ACK).
const BATCH_CONNECT_READS_PER_TARGET: f64 = 1.25;
/// `network disconnect NET c1 c2 ...`, per target: 41.4 on Linux 6.1
/// since the queue to the link thread wakes a waiter after letting its
/// lock go (1.7 `futex` calls a target); before, a waiter woken under
/// the lock blocked on it at once, and the `futex` calls (5.4 a target)
/// moved with how the threads met: 45.1 to 45.6 on 6.12, over budget.
/// With four threads deleting the links (their queues waking one waiter,
/// of the kind a push or pop is for): 41.5 to 42.3 on Linux 6.1.
const BATCH_DISCONNECT_PER_TARGET: f64 = 44.0;
/// `futex` calls per target of a batch disconnect, the queues to and from
/// the threads deleting the links: a wait and a wake a link (1.7 reached
/// on Linux 6.1 with one thread; 1.5 to 1.9 with four), at most.
const BATCH_DISCONNECT_FUTEX_PER_TARGET: f64 = 3.0;

/// A batch connect and disconnect of N containers: what each target adds
/// stays within its budget (the difference between batches of 4 and 16,
/// per target), a connect of one chunk of creates (16 targets) starts no
/// thread, one of two chunks (20) one (it finishes each chunk while the
/// kernel builds the next) and none when that thread is refused, a
/// disconnect four (they delete the links), every link create succeeds at its
/// first request (a container on no network gets `eth0` without asking),
/// and each batch syncs once: one `fdatasync` of the store's lock after
/// the commit log's entry that holds its records (or their removals).
#[test]
fn a_batch_stays_within_its_system_call_budget_per_target() {
    let mut env = Env::new("batch");
    assert!(vm_support::ip_ok(&[
        "link", "add", "sysbp0", "type", "dummy"
    ]));
    assert!(vm_support::ip_ok(&["link", "set", "sysbp0", "up"]));
    env.ok(&[
        "network",
        "create",
        "-o",
        "parent=sysbp0",
        "--subnet",
        "192.168.94.0/24",
        "--gateway",
        "192.168.94.1",
        "sysbn",
    ]);
    // Directories made on first use exist, as on a host in use.
    env.container("sysbw");
    env.ok(&["network", "connect", "sysbn", "sysbw"]);
    let names: Vec<String> = (0..20).map(|n| format!("sysbt{n}")).collect();
    for name in &names {
        env.container(name);
    }
    let batch_with = |verb: &str, count: usize, vars: &[(&str, &str)]| -> Trace {
        let mut args = vec!["network", verb, "sysbn"];
        args.extend(names[..count].iter().map(String::as_str));
        let trace = env.traced(&args, vars);
        println!(
            "{}",
            trace.report(&format!("batch network {verb} of {count} {vars:?}"))
        );
        trace
    };
    let batch = |verb: &str, count: usize| batch_with(verb, count, &[]);
    let (small, large, two_chunks) = (4, 16, 20);
    let connect_small = batch("connect", small);
    let disconnect_small = batch("disconnect", small);
    let connect_large = batch("connect", large);
    let disconnect_large = batch("disconnect", large);
    let connect_two_chunks = batch("connect", two_chunks);
    let disconnect_two_chunks = batch("disconnect", two_chunks);
    let connect_no_thread = batch_with(
        "connect",
        two_chunks,
        &[("IPVLAN_FAULT_FORCE", "batch: no finishing thread")],
    );
    let disconnect_no_thread = batch("disconnect", two_chunks);
    let per_target = |a: &Trace, b: &Trace| {
        (b.release_total() as f64 - a.release_total() as f64) / (large - small) as f64
    };
    // What one more target adds of one system call.
    let calls_per_target = |a: &Trace, b: &Trace, syscall: &str| {
        (b.count(syscall) as f64 - a.count(syscall) as f64) / (large - small) as f64
    };
    let connect = per_target(&connect_small, &connect_large);
    let disconnect = per_target(&disconnect_small, &disconnect_large);
    // The link thread's queue wakes a waiter once its lock is let go: a
    // waiter woken under it blocks on it at once (two more calls), as
    // many times as the threads happen to meet there (5.4 a target, and
    // a disconnect over its budget on some runs, before).
    let futex = calls_per_target(&disconnect_small, &disconnect_large, "futex");
    assert!(
        futex <= BATCH_DISCONNECT_FUTEX_PER_TARGET,
        "batch disconnect: {futex:.1} futex calls per target (at most {BATCH_DISCONNECT_FUTEX_PER_TARGET})"
    );
    println!("batch: connect {connect:.1}, disconnect {disconnect:.1} system calls per target");
    // A batch disconnect deletes its links on four threads of its own (as
    // many as targets, when fewer) while it writes the files of each
    // endpoint whose link is gone.
    for (what, trace, threads) in [
        ("batch connect", &connect_small, 0),
        ("batch connect", &connect_large, 0),
        ("batch connect of two chunks", &connect_two_chunks, 1),
        ("batch connect, its thread refused", &connect_no_thread, 0),
        ("batch disconnect", &disconnect_small, 4),
        ("batch disconnect", &disconnect_large, 4),
        ("batch disconnect", &disconnect_two_chunks, 4),
        ("batch disconnect", &disconnect_no_thread, 4),
    ] {
        assert_eq!(
            trace.threads(),
            threads,
            "{what} starts {threads} threads: {}",
            trace.report(what)
        );
    }
    for trace in [
        &connect_small,
        &connect_large,
        &connect_two_chunks,
        &connect_no_thread,
    ] {
        let refused = trace.refused_newlinks();
        assert!(
            refused.is_empty(),
            "batch connect: the kernel refused a link create:\n{}",
            refused
                .iter()
                .map(|l| l.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // One entry of the commit log holds the 16 records and the removal of
    // `batch-intents` (a batch that returned is never brought back as
    // intents by a power cut): one `fdatasync` of the lock. Before the
    // commit log, (2, 16, 0): a record each, the endpoints' directory and
    // the root.
    for (count, trace) in [
        (large, &connect_large),
        (two_chunks, &connect_two_chunks),
        (two_chunks, &connect_no_thread),
    ] {
        assert_eq!(
            trace.syncs(),
            (0, 1, 0),
            "(fsync, fdatasync, syncfs) of a batch connect of {count}: {}",
            trace.report("batch connect")
        );
    }
    assert_eq!(
        disconnect_large.syncs(),
        (0, 1, 0),
        "(fsync, fdatasync, syncfs) of a batch disconnect of {large}: {}",
        disconnect_large.report("batch disconnect")
    );
    for trace in [&disconnect_small, &disconnect_large] {
        assert!(
            trace.renames().is_empty(),
            "batch disconnect renames nothing (the targets' intents go into one new file, `batch-intents`): {:?}",
            trace.renames()
        );
    }
    // A target's pipeline (address, up, route) is one answer read; the
    // links' creates, in datagrams of many, a fraction of one each.
    let reads = calls_per_target(&connect_small, &connect_large, "recvfrom");
    assert!(
        reads <= BATCH_CONNECT_READS_PER_TARGET,
        "batch connect: {reads:.2} netlink reads per target (at most {BATCH_CONNECT_READS_PER_TARGET})"
    );
    assert!(
        connect <= BATCH_CONNECT_PER_TARGET,
        "batch connect: {connect:.1} system calls per target (budget {BATCH_CONNECT_PER_TARGET})"
    );
    assert!(
        disconnect <= BATCH_DISCONNECT_PER_TARGET,
        "batch disconnect: {disconnect:.1} system calls per target (budget {BATCH_DISCONNECT_PER_TARGET})"
    );
    env.ok(&["network", "disconnect", "sysbn", "sysbw"]);
    drop(env);
    assert!(vm_support::ip_ok(&["link", "del", "sysbp0"]));
}

/// Runs `command` with `input` on its stdin; its output.
fn with_input(command: &mut Command, input: &str) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().expect("runs")
}

/// A CNI plugin's request of `command` for container `id` in `netns`.
fn cni_vars<'a>(command: &'a str, id: &'a str, netns: &'a str) -> [(&'a str, &'a str); 5] {
    [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", id),
        ("CNI_NETNS", netns),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/bin"),
    ]
}

/// The state directory's share of an attach, call by call: the address is
/// taken with one `symlinkat` (no temporary owner file, no `linkat`), the
/// network's name hint and the address's owner are read with one
/// `readlinkat` each (no `openat`), and the allocation cursor is opened
/// once, to read it and write it back.
#[test]
fn an_address_and_a_name_hint_cost_one_call_each() {
    let mut env = Env::new("links");
    env.ok(&["network", "create", "--subnet", "192.168.92.0/24", "syslk"]);
    // The cursor exists, as after any allocation.
    env.container("syslk0");
    env.ok(&["network", "connect", "syslk", "syslk0"]);
    env.container("syslk1");
    let connect = env.traced(&["network", "connect", "syslk", "syslk1"], &[]);
    let disconnect = env.traced(&["network", "disconnect", "syslk", "syslk1"], &[]);
    let calls = |trace: &Trace, call: &str, arg: &str| -> Vec<String> {
        trace
            .lines
            .iter()
            .filter(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|c| c.starts_with(&format!("{call}(")))
                    && l.contains(arg)
            })
            .cloned()
            .collect()
    };
    // An entry by name, reached from its directory's descriptor or, below
    // a private root such as this one, by its path from the root's.
    let named = |trace: &Trace, call: &str, name: &str| -> Vec<String> {
        let mut found = calls(trace, call, &format!("\"{name}\""));
        found.extend(calls(trace, call, &format!("/{name}\"")));
        found
    };
    let all = |trace: &Trace| trace.lines.join("\n");
    let address = "192.168.92.3";
    assert_eq!(
        named(&connect, "symlinkat", address).len(),
        1,
        "connect takes its address with one symlinkat:\n{}",
        all(&connect)
    );
    for call in ["linkat", "openat", "unlinkat"] {
        assert_eq!(
            calls(&connect, call, ".tmp-owner"),
            Vec::<String>::new(),
            "connect makes no temporary owner file"
        );
    }
    assert_eq!(
        named(&connect, "openat", "cursor").len(),
        1,
        "connect opens the cursor once:\n{}",
        all(&connect)
    );
    for (what, trace) in [("connect", &connect), ("disconnect", &disconnect)] {
        assert_eq!(
            named(trace, "readlinkat", "syslk").len(),
            1,
            "{what} reads the name hint with one readlinkat:\n{}",
            all(trace)
        );
        assert_eq!(
            named(trace, "openat", "syslk").len(),
            0,
            "{what} opens no name hint:\n{}",
            all(trace)
        );
    }
    assert_eq!(
        named(&disconnect, "readlinkat", address).len(),
        1,
        "disconnect reads the owner with one readlinkat:\n{}",
        all(&disconnect)
    );
    assert_eq!(
        named(&disconnect, "openat", address).len(),
        0,
        "disconnect opens no address file:\n{}",
        all(&disconnect)
    );
}

/// A connect by path looks for a record an older version may have filed
/// under that path only in a store such a version made (its lock file
/// empty): none in one this version made (it looked one up, failing, on
/// every attach by path), and in an older one once for a path typed in its
/// normal form: the typed text's id and the normal form's are one (it was
/// looked up twice, one `openat` each, both failing). A batch looks it up
/// only where its listing of the network's records holds it (it looked
/// each target's up, then twice).
#[test]
fn a_path_is_looked_up_under_one_older_id() {
    let mut env = Env::new("older-id");
    env.ok(&["network", "create", "--subnet", "192.168.94.0/24", "sysod"]);
    for name in ["sysod1", "sysod2", "sysod3", "sysod4"] {
        env.container(name);
    }
    let older_id = |trace: &Trace, name: &str| {
        let file = format!("path_run_netns_{name}.json\"");
        trace.lines_with(&["openat(", &file]).len()
    };
    let connect = env.traced(&["network", "connect", "sysod", "/run/netns/sysod1"], &[]);
    assert_eq!(
        older_id(&connect, "sysod1"),
        0,
        "a store this version made holds no older id:\n{}",
        connect.lines.join("\n")
    );
    // As an older version left it: a lock file without the mark.
    std::fs::write(env.root.join("state/lock"), "").unwrap();
    let connect = env.traced(&["network", "connect", "sysod", "/run/netns/sysod2"], &[]);
    assert_eq!(
        older_id(&connect, "sysod2"),
        1,
        "connect looks for the older id once:\n{}",
        connect.lines.join("\n")
    );
    let batch = env.traced(
        &[
            "network",
            "connect",
            "sysod",
            "/run/netns/sysod3",
            "/run/netns/sysod4",
        ],
        &[],
    );
    // By the records' directory, whose descriptor a batch holds.
    let lookups = batch.lines_with(&["openat(", "path_run_netns_sysod"]);
    assert!(
        lookups.is_empty(),
        "a batch looks for no older id its listing lacks:\n{}",
        batch.lines.join("\n")
    );
}

/// CNI ADD and DEL with `ipam.type: ipvlan`, one container among a few:
/// each within a budget (about 10% above what was reached on Linux 6.1:
/// ADD 83, DEL 58; 86 and 60 before its state files were left to the
/// exit and its first index made in place, 92 and 64 before its address and link-up went
/// without reading the socket's buffer, its namespace was opened and
/// entered in one step and its descriptors were left to the exit; 115
/// and 83 before address files were links and a private root's
/// directories went unchecked; 117 and 84 before the derived files were
/// left out of the commit, 156 and 116 before the cuts that took the
/// CLI's connect from 155 to 127), no thread started.
#[test]
fn cni_add_and_del_stay_within_their_budgets() {
    let mut env = Env::new("cni");
    assert!(vm_support::ip_ok(&[
        "link", "add", "sysm0", "type", "dummy"
    ]));
    assert!(vm_support::ip_ok(&["link", "set", "sysm0", "up"]));
    let conf = r#"{"cniVersion": "1.0.0", "name": "syscni", "type": "ipvlan", "master": "sysm0", "ipam": {"type": "ipvlan", "subnet": "10.95.0.0/24", "gateway": "10.95.0.1"}}"#;
    let names: Vec<String> = (0..3).map(|n| format!("sysk{n}")).collect();
    for name in names.iter().map(String::as_str).chain(["sysk9"]) {
        env.container(name);
    }
    let plugin = |vars: &[(&str, &str)]| {
        let mut command = Command::new(binary());
        command.envs(vars.iter().copied());
        env.environment(&mut command);
        let output = with_input(&mut command, conf);
        assert_eq!(output.status.code(), Some(0), "{vars:?}: {output:?}");
    };
    for name in &names {
        plugin(&cni_vars("ADD", name, &format!("/run/netns/{name}")));
    }
    let add = env.traced_with_input(
        &[],
        &cni_vars("ADD", "sysk9", "/run/netns/sysk9"),
        Some(conf),
    );
    println!("{}", add.report("CNI ADD"));
    let del = env.traced_with_input(
        &[],
        &cni_vars("DEL", "sysk9", "/run/netns/sysk9"),
        Some(conf),
    );
    println!("{}", del.report("CNI DEL"));
    for name in &names {
        plugin(&cni_vars("DEL", name, &format!("/run/netns/{name}")));
    }
    assert!(vm_support::ip_ok(&["link", "del", "sysm0"]));
    // As connect's: the intent is in the commit log's volatile page (one
    // `pwrite`), and the final record, read as missing under the lock, is
    // made in place: no temporary, no rename (one before the commit log,
    // the final record renamed over the intent's).
    let renames = add.renames();
    assert_eq!(renames.len(), 0, "CNI ADD renamed: {renames:?}");
    // And DEL's intent too: no temporary record renamed over the
    // attachment's (one before).
    let renames = del.renames();
    assert_eq!(renames.len(), 0, "CNI DEL renamed: {renames:?}");
    // `arp_notify` goes by netlink, before the up in the address's
    // datagram: no file of `/proc/sys/net/ipv4` is opened (the first
    // lookup there in a namespace costs more the more namespaces were
    // looked up before). It was opened and written, two calls.
    let ipv4_settings = add.lines_with(&["/proc/sys/net/ipv4/"]);
    assert!(ipv4_settings.is_empty(), "CNI ADD: {ipv4_settings:?}");
    for (what, trace, budget) in [
        ("CNI ADD", &add, CNI_ADD_BUDGET),
        ("CNI DEL", &del, CNI_DEL_BUDGET),
    ] {
        assert_eq!(
            trace.threads(),
            0,
            "{what} starts no thread: {}",
            trace.report(what)
        );
        assert!(
            trace.release_total() <= budget,
            "{} (budget {budget})",
            trace.report(what)
        );
    }
}

/// The index of `name` in namespace file `netns`, its kind and its MAC,
/// as iproute2 reports them.
fn link_in(netns: &str, name: &str) -> Option<(u64, String, String)> {
    let script = format!(
        "exec nsenter --net={netns} {} -d -j link show dev {name}",
        vm_support::ip_path()
    );
    let out = Command::new("sh").args(["-c", &script]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let links = json::parse(&text(&out.stdout)).ok()?;
    let link = links.as_array()?.first()?.clone();
    let index = link.get("ifindex")?.as_u64()?;
    let kind = link
        .get("linkinfo")
        .and_then(|i| i.get("info_kind"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mac = link.get("address")?.as_str()?.to_string();
    Some((index, kind, mac))
}

/// With every chosen ifindex refused (forced: the kernels tests run on
/// accept the first), the link is made under a temporary name, its index
/// recorded, then renamed inside (never created by its final name, which
/// restore could not tell from another tool's link): the container still
/// gets `eth0`, with the parent's MAC, and nothing under a temporary name
/// is left, even where the host has an `eth0` of its own.
#[test]
fn every_chosen_index_taken_falls_back_to_a_name_and_a_rename() {
    let mut env = Env::new("fallback");
    env.ok(&["network", "create", "--subnet", "192.168.93.0/24", "fb"]);
    // A host link called eth0, which a create by that name would collide
    // with where the kernel looks names up in the sending namespace.
    let made_eth0 = vm_support::link(None, "eth0").is_none();
    if made_eth0 {
        assert!(vm_support::ip_ok(&["link", "add", "eth0", "type", "dummy"]));
    }
    env.container("sysf1");
    let trace = env.traced(
        &["network", "connect", "fb", "sysf1"],
        &[("IPVLAN_FAULT_FORCE", "endpoint: every index taken")],
    );
    if made_eth0 {
        assert!(vm_support::ip_ok(&["link", "del", "eth0"]));
    }
    let netns = "/run/netns/sysf1";
    let (index, kind, mac) = link_in(netns, "eth0").expect("eth0 in sysf1");
    assert_eq!(kind, "ipvlan");
    let network = env.inspect("fb");
    let endpoint = network
        .get("Containers")
        .and_then(|c| c.get("sysf1"))
        .expect("sysf1 in inspect")
        .clone();
    assert_eq!(
        endpoint.get("MacAddress").and_then(Value::as_str),
        Some(mac.as_str()),
        "the recorded MAC is the link's"
    );
    let record = std::fs::read_dir(env.root.join("state/endpoints"))
        .unwrap()
        .flatten()
        .flat_map(|dir| std::fs::read_dir(dir.path()).unwrap().flatten())
        .map(|file| std::fs::read_to_string(file.path()).unwrap())
        .find(|text| text.contains("\"sysf1\""))
        .expect("sysf1's endpoint record");
    assert!(
        record.contains(&format!("\"ifindex\": {index}")),
        "the recorded index is the link's: {record}"
    );
    let script = format!(
        "exec nsenter --net={netns} {} -j link show",
        vm_support::ip_path()
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    let names = text(&out.stdout);
    assert!(
        !names.contains("\"ipv"),
        "a temporary name is left: {names}"
    );
    println!("fallback: {}", trace.report("network connect"));
    env.ok(&["network", "disconnect", "fb", "sysf1"]);
}

/// `ps` goes through every container on every network: an older-format
/// endpoint record (filed under the container's name) is looked for by
/// one listing per network, never by a probe per container and network,
/// which made `ps` quadratic (2133 of 3125 calls with 100 containers on
/// 20 networks). Here 8 containers on one of 8 networks: at most one
/// lookup of something missing per network.
#[test]
fn ps_is_linear_in_containers_and_networks() {
    let mut env = Env::new("ps");
    for n in 0..8 {
        env.ok(&[
            "network",
            "create",
            "--subnet",
            &format!("192.168.{}.0/24", 100 + n),
            &format!("psn{n}"),
        ]);
    }
    for n in 0..8 {
        let name = format!("psc{n}");
        env.ok(&["run", "--net=psn0", &format!("--name={name}"), "-d"]);
        env.namespaces.push(name);
    }
    let ps = env.traced(&["ps"], &[]);
    println!("{}", ps.report("ps (8 containers, 8 networks)"));
    // A network without endpoints has no endpoint directory: one failed
    // lookup each is its listing; one per container would be probes.
    let probes: Vec<&String> = ps.lines.iter().filter(|l| l.contains("ENOENT")).collect();
    assert!(
        probes.len() <= 8,
        "ps looked up {} files that are not there, more than one per network:\n{}",
        probes.len(),
        probes
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let ls = env.traced(&["network", "ls"], &[]);
    println!("{}", ls.report("network ls (8 networks)"));
    let inspect = env.traced(&["network", "inspect", "psn0"], &[]);
    println!("{}", inspect.report("network inspect (8 endpoints)"));
    for (what, trace, budget) in [
        ("ps", &ps, PS_BUDGET),
        ("network ls", &ls, LS_BUDGET),
        ("network inspect", &inspect, INSPECT_BUDGET),
    ] {
        assert!(
            trace.release_total() <= budget,
            "{} (budget {budget})",
            trace.report(what)
        );
    }
    for n in 0..8 {
        env.ok(&["rm", "-f", &format!("psc{n}")]);
    }
    env.namespaces.clear();
}

/// A CNI ADD and DEL with our IPAM sync what they made durable once, like
/// the command line: the endpoint record (ADD) and the directory it left
/// (DEL); the address file is derived and never synced.
#[test]
fn cni_add_and_del_sync_only_the_endpoint_record() {
    let mut env = Env::new("cni");
    let master = "syscnim";
    let _ = vm_support::ip_ok(&["link", "del", master]);
    assert!(vm_support::ip_ok(&["link", "add", master, "type", "dummy"]));
    assert!(vm_support::ip_ok(&["link", "set", master, "up"]));
    let conf = format!(
        r#"{{"cniVersion": "1.0.0", "name": "sysc", "type": "ipvlan", "master": "{master}",
            "ipam": {{"type": "ipvlan", "subnet": "10.78.0.0/16"}}}}"#
    );
    // The first ADD makes the network and its directories (each synced
    // into its parent when made): traced is the second.
    env.container("syscni0");
    env.container("syscni1");
    env.cni("ADD", "ctr0", "syscni0", &conf, None);
    let log = env.root.join("cni.strace");
    let add = env.cni("ADD", "ctr1", "syscni1", &conf, Some(&log));
    println!("{}", add.report("CNI ADD"));
    let del = env.cni("DEL", "ctr1", "syscni1", &conf, Some(&log));
    println!("{}", del.report("CNI DEL"));
    env.cni("DEL", "ctr0", "syscni0", &conf, None);
    assert!(vm_support::ip_ok(&["link", "del", master]));
    for (what, trace, syncs) in [
        ("CNI ADD", &add, CNI_ADD_SYNCS),
        ("CNI DEL", &del, CNI_DEL_SYNCS),
    ] {
        assert_eq!(
            trace.syncs(),
            syncs,
            "(fsync, fdatasync, syncfs) of {what}: {}",
            trace.report(what)
        );
    }
}

impl Env {
    /// Runs the binary as a CNI plugin (`verb` on container `id` in the
    /// namespace `/run/netns/NETNS`, `conf` on stdin), under `strace -f
    /// -C -o LOG` when `log` is given; insists on exit 0 and returns what
    /// strace saw (an empty trace without it).
    fn cni(&self, verb: &str, id: &str, netns: &str, conf: &str, log: Option<&Path>) -> Trace {
        use std::io::Write;
        let mut command = match log {
            Some(log) => {
                let mut command = Command::new("strace");
                command.args(["-f", "-C", "-o"]).arg(log).arg(binary());
                command
            }
            None => Command::new(binary()),
        };
        command
            .env("CNI_COMMAND", verb)
            .env("CNI_CONTAINERID", id)
            .env("CNI_NETNS", format!("/run/netns/{netns}"))
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", "/nonexistent/cni/bin")
            .env("IPVLAN_STATE_DIR", self.root.join("state"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("runs the plugin");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(conf.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(0),
            "{verb} {id}: {}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
        match log {
            Some(log) => Trace::parse(&std::fs::read_to_string(log).unwrap()),
            None => Trace {
                lines: Vec::new(),
                calls: BTreeMap::new(),
                total: 0,
            },
        }
    }
}

/// `exec` looks its container's namespace up without the store's lock,
/// and only threads other than the process's main one enter it:
/// `/proc/PID/ns/net` names the main thread's namespace, and an `rm -f`
/// of the container, which kills what it finds inside, would take a
/// library caller whose main thread was visiting (to open a socket there)
/// for a process of the container, and kill that whole program. Before,
/// the lookup's socket was opened by the calling thread, moved in and
/// back.
#[test]
fn exec_enters_the_container_from_no_main_thread() {
    let env = Env::new("execmain");
    env.ok(&["network", "create", "--subnet", "10.93.0.0/24", "ex1"]);
    env.ok(&["run", "--net=ex1", "--name=exmain1", "-d"]);
    let trace = env.traced(&["exec", "exmain1", "true"], &[]);
    let main = trace.lines[0]
        .split_whitespace()
        .next()
        .expect("the trace's first line, with its pid")
        .to_string();
    let moves: Vec<&String> = trace.lines_with(&["setns("]);
    assert!(
        !moves.is_empty(),
        "exec entered no namespace: {}",
        trace.report("exec")
    );
    let by_main: Vec<&&String> = moves
        .iter()
        .filter(|line| line.split_whitespace().next() == Some(main.as_str()))
        .collect();
    assert!(
        by_main.is_empty(),
        "the main thread ({main}) moved between namespaces:\n{}",
        by_main
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );
    env.ok(&["rm", "-f", "exmain1"]);
    env.ok(&["network", "rm", "ex1"]);
}

/// Random bytes come without waiting where the test kernels cannot show
/// it, each case pretended: before Linux 5.6 (`GRND_INSECURE` refused) a
/// connect asks `GRND_NONBLOCK`, and with that kernel's pool not
/// initialised yet (as early in a boot: `GRND_NONBLOCK` refused too) it
/// mixes its own; either way the connect succeeds.
#[test]
fn random_bytes_fall_back_without_waiting() {
    let mut env = Env::new("random");
    env.ok(&["network", "create", "--subnet", "10.94.0.0/24", "rnd"]);
    for name in ["rnd1", "rnd2"] {
        env.container(name);
    }
    let force = ipvlan::fault::FORCE_ENV;
    let older = env.traced(
        &["network", "connect", "rnd", "rnd1"],
        &[(force, "random: GRND_INSECURE refused")],
    );
    assert_eq!(
        older.lines_with(&["getrandom(", "GRND_NONBLOCK"]).len(),
        1,
        "{}",
        older.report("connect, GRND_INSECURE refused")
    );
    assert_eq!(older.count("getrandom"), 1);
    let early = env.traced(
        &["network", "connect", "rnd", "rnd2"],
        &[(
            force,
            "random: GRND_INSECURE refused,random: pool not initialised",
        )],
    );
    assert_eq!(
        early.count("getrandom"),
        0,
        "{}",
        early.report("connect, the pool not initialised")
    );
    let listed = env.inspect("rnd");
    let attached = listed
        .as_object()
        .and_then(|o| o.iter().find(|(k, _)| k == "Containers"))
        .and_then(|(_, v)| v.as_object())
        .map_or(0, |c| c.len());
    assert_eq!(attached, 2, "{listed:?}");
    for name in ["rnd1", "rnd2"] {
        env.ok(&["network", "disconnect", "rnd", name]);
    }
    env.ok(&["network", "rm", "rnd"]);
}
