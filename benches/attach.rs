//! The guest side of `cargo xtask bench`: attach and detach of many
//! containers, side by side, for a raw-netlink floor, our CLI and bulk API,
//! our CNI mode, iproute2 and the reference CNI plugin, in one boot of the
//! VM.
//!
//! One program, several roles (the first argument):
//!
//! - `run ...`: the orchestrator. Builds the host side (a dummy `eth0`, as
//!   most hosts have one; a dummy parent `p0`), then for each row makes the
//!   namespaces (untimed, `ip -batch`), attaches every container, checks the
//!   result in the kernel, detaches every container, checks again, removes
//!   the namespaces (first of all, one untimed connect measures the size
//!   of an endpoint record, the durable floor's file size); then counts the system calls of one attach and one detach
//!   of each kind under `strace -f -c` (untimed); prints a Markdown table
//!   between [`RESULTS_BEGIN`] and [`RESULTS_END`]. The rows compared with
//!   the per-process floor (the durable, behaviour and announcing floors,
//!   our CLI and CNI mode) run together with it, container by container, in a balanced
//!   order ([`balanced_rounds`]), each on its own namespaces and subnet, so
//!   the host's load drifts under all of them alike; at the long size the bulk
//!   API's growth is measured as ten batches, each next to a one-process
//!   floor batch of the same size, in five rounds, and at each size a batch of all
//!   containers is launched next to a floor batch of all, ten times,
//!   which of the two goes first alternating, the ratio the geometric mean
//!   of the two orders' medians (the bulk row itself is one launch timed
//!   alone).
//! - `floor attach|detach PARENT-INDEX NS-PREFIX SUBNET FIRST LAST [--durable
//!   DIR BYTES | --behaviour DIR BYTES | --announce]`: the
//!   floor, on namespaces `NS-PREFIX{FIRST..=LAST}`. Per container it sends RTM_NEWLINK (kind ipvlan on the parent, the chosen
//!   `ifi_index`, `IFLA_NET_NS_FD`, the final name `eth0`) on a socket of
//!   the host namespace, then RTM_NEWADDR, link up and RTM_NEWROUTE (default
//!   route), sent together before their ACKs are read, on a socket opened in
//!   the container's namespace; detach deletes the link. Raw libc, no code of
//!   the crate, so changes to our netlink code never move the floor. It keeps
//!   no state: the index and the address follow from the container's number.
//!   It prints `T NUMBER NANOSECONDS` per container. With `--durable DIR
//!   BYTES` it is the durable floor: per container it then also writes a
//!   new `BYTES`-byte file named after the container in `DIR` (`openat`,
//!   `write`, `fdatasync`, then `fsync` of `DIR`), the durable write a
//!   connect makes of its endpoint record and nothing else, and on detach
//!   removes it (`unlinkat`, `fsync` of `DIR`), as a disconnect does; its
//!   `T` lines cover both parts (timing the write apart would add clock
//!   reads, system calls here, to what it is meant to show alone). With
//!   `--behaviour DIR BYTES` it is the behaviour floor: it also does, the
//!   cheapest way, what the behaviour asks of every connect besides the
//!   link (see `behaviour_begin` and `behaviour_attach_end`), on files in
//!   `DIR` the orchestrator prepared (`behaviour_prepare`). With
//!   `--announce` it is the announcing floor: it also turns the link's
//!   `arp_notify` on, in a request of the datagram that brings it up and
//!   before the up, as our CNI ADD does (and the reference plugin, by its
//!   sysctl): the link then sends a gratuitous ARP as it comes up, which
//!   an ipvlan parent in l2 mode delivers to every other ipvlan link on
//!   it (the kernel's work, on a worker thread, growing with the links).
//! - `durable-writes DIR COUNT BYTES`: what a durable write of a
//!   `BYTES`-byte record costs by kind, on files in `DIR` (made here, and
//!   removed with what it holds): a new file with `fdatasync` and the
//!   directory's `fsync` (the durable floor's write), a new file with
//!   `fdatasync` only, `pwrite` into a block of a file preallocated (written
//!   with zeros and synced before timing) with `fdatasync`, and an append
//!   with `fdatasync`; `COUNT` rounds of one write of each kind, in an order
//!   balanced so that the host's load drifts under all alike and no kind
//!   always follows the same one. Raw libc, as the
//!   floor. Prints a Markdown table: median, p10, p90 per kind and each
//!   median against the new file's. The orchestrator runs it once, before
//!   the rows, and adds the table to its results.
//! - `sysctl-lookups NS-PREFIX`: what the first lookup of a link's setting
//!   (`/proc/sys/net/ipv6/conf/lo/disable_ipv6`) costs in a namespace, by how
//!   many namespaces were looked up before it, through `/proc` and through a
//!   procfs instance of one's own made every 16 namespaces (as the bulk API
//!   does), on the orchestrator's namespaces `NS-PREFIX1..` (see
//!   [`SYSCTL_LOOKUP_STEPS`]). Raw libc. Prints a Markdown table.
//! - `profile-loop FILE` (with `run --perf PERF`, which measures where the
//!   CPU goes instead of the rows): runs the commands of FILE in turn, one
//!   per line, each line the words `launch` takes separated by tabs, under
//!   `perf record`; see `cpu_profile`.
//! - `launch [--env K=V]... [--stdin FILE] -- PROGRAM ARGS...`: runs one
//!   command and prints `LAUNCH WALL-NS MAXRSS-KIB MINFLT MAJFLT` on stderr
//!   (the child's `ru_maxrss`, `ru_minflt` and `ru_majflt` from `wait4`). The child's
//!   `ru_maxrss` includes the address space it had before `exec` (the
//!   spawning process's: benches/RESULTS.md, the soak's failed run), so
//!   commands are spawned from this small, freshly exec'd process, never
//!   from the orchestrator. What that still adds is measured by launching
//!   `noop` (this program, exiting at once): a command reading no more than
//!   that is "at most that". The launcher cannot read its own `VmHWM`
//!   instead: before Linux 6.2 a task's RSS counters reach the mm only every
//!   64 page faults, so a short-lived process sees a stale, tiny figure.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// The orchestrator prints its Markdown between these lines (read by
/// xtask/src/bench.rs).
pub const RESULTS_BEGIN: &str = "BENCH-RESULTS-BEGIN";
/// See [`RESULTS_BEGIN`].
pub const RESULTS_END: &str = "BENCH-RESULTS-END";

/// Namespaces are `/run/netns/c1` .. `cN` (iproute2's layout); rows
/// measured together each have their own prefix.
const NETNS_DIR: &str = "/run/netns";
/// The floor and iproute2 give container `i` the link index `INDEX_BASE + i`:
/// above anything the host has, and free in a fresh namespace.
const INDEX_BASE: u32 = 10_000;
/// 10.10.0.0/20 (`benchnet`): room for 4,093 containers; in the rows that
/// choose addresses themselves container `i` gets the subnet's + 1 + i.
const SUBNET: u32 = 0x0a0a_0000;
const PREFIX_LEN: u8 = 20;
const GATEWAY: u32 = SUBNET + 1;
/// The floor's subnet, 10.13.0.0/20: its links share the parent with ours
/// while rows run together, and ipvlan refuses an address twice on one parent.
const FLOOR_SUBNET: u32 = 0x0a0d_0000;
/// The durable floor's subnet, 10.14.0.0/20, for the same reason.
const DURABLE_SUBNET: u32 = 0x0a0e_0000;
/// The durable floor's directory on the disk (beside the state directory,
/// on the same ext4): one file per attached container.
const DURABLE_DIR: &str = "durable-floor";
/// The behaviour floor's subnet, 10.16.0.0/20, and its directory on the disk
/// (beside the durable floor's).
const BEHAVIOUR_SUBNET: u32 = 0x0a10_0000;
const BEHAVIOUR_DIR: &str = "behaviour-floor";
/// The announcing floor's subnet, 10.17.0.0/20.
const ANNOUNCE_SUBNET: u32 = 0x0a11_0000;
/// Where `durable-writes` writes (beside the durable floor's directory), and
/// how many writes of each kind it times.
const DURABLE_WRITES_DIR: &str = "durable-writes";
const DURABLE_WRITES: usize = 100;
const PARENT: &str = "p0";
const NETWORK: &str = "benchnet";
/// Containers whose system calls are counted per kind (the one-process
/// floor's count is divided by it).
const STRACE_CONTAINERS: u32 = 10;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => orchestrate(&args[1..]),
        Some("floor") => floor_main(&args[1..]),
        Some("launch") => return launch_main(&args[1..]),
        Some("durable-writes") => durable_writes_main(&args[1..]),
        Some("sysctl-lookups") => sysctl_lookups_main(&args[1..]),
        Some("profile-loop") => profile_loop_main(&args[1..]),
        Some("noop") => Ok(()),
        _ => Err(
            "usage: attach run ... | floor attach|detach PARENT-INDEX NS-PREFIX SUBNET FIRST LAST \
                  [--durable DIR BYTES | --behaviour DIR BYTES | --announce] | \
                  durable-writes DIR COUNT BYTES | \
                  sysctl-lookups NS-PREFIX | \
                  launch [--env K=V]... [--stdin FILE] -- PROGRAM ARGS... \
                  (the guest program of `cargo xtask bench`)"
                .to_string(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("attach: {error}");
            ExitCode::FAILURE
        }
    }
}

type Res<T = ()> = Result<T, String>;

fn ipv4(addr: u32) -> String {
    std::net::Ipv4Addr::from(addr).to_string()
}

fn container_addr(subnet: u32, i: u32) -> u32 {
    subnet + 1 + i
}

fn ns_name(ns: &str, i: u32) -> String {
    format!("{ns}{i}")
}

fn ns_path(ns: &str, i: u32) -> String {
    format!("{NETNS_DIR}/{}", ns_name(ns, i))
}

/// Where a row's containers live: namespaces `{ns}1` .. `{ns}N` and
/// addresses of `subnet` (a /20, its gateway the first host). Rows measured
/// together need sites of their own.
#[derive(Clone, Copy)]
struct Site {
    ns: &'static str,
    subnet: u32,
}

impl Site {
    const fn new(ns: &'static str, subnet: u32) -> Site {
        Site { ns, subnet }
    }
}

/// Our CLI's containers, on the network's subnet; our CNI mode's, on its
/// network's; the floors', each on a subnet of its own.
const OURS_SITE: Site = Site::new("c", SUBNET);
const CNI_OURS_SITE: Site = Site::new("n", CNI_OURS_SUBNET);
const FLOOR_SITE: Site = Site::new("f", FLOOR_SUBNET);
const DURABLE_SITE: Site = Site::new("d", DURABLE_SUBNET);
const BEHAVIOUR_SITE: Site = Site::new("q", BEHAVIOUR_SUBNET);
const ANNOUNCE_SITE: Site = Site::new("a", ANNOUNCE_SUBNET);

// ---------------------------------------------------------------------------
// The floor: raw rtnetlink.

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const RTM_NEWLINK: u16 = 16;
const RTM_DELLINK: u16 = 17;
const RTM_NEWADDR: u16 = 20;
const RTM_NEWROUTE: u16 = 24;
const NLMSG_ERROR: u16 = 2;
const IFLA_IFNAME: u16 = 3;
const IFLA_LINK: u16 = 5;
const IFLA_LINKINFO: u16 = 18;
const IFLA_NET_NS_FD: u16 = 28;
const IFLA_INFO_KIND: u16 = 1;
const IFLA_INFO_DATA: u16 = 2;
const IFLA_IPVLAN_MODE: u16 = 1;
/// `IFLA_AF_SPEC` / `AF_INET` / `IFLA_INET_CONF` / `IPV4_DEVCONF_ARP_NOTIFY`:
/// the link's `net.ipv4.conf.IFNAME.arp_notify` in a link request.
const IFLA_AF_SPEC: u16 = 26;
const IFLA_INET_CONF: u16 = 1;
const IPV4_DEVCONF_ARP_NOTIFY: u16 = 22;
const IPVLAN_MODE_L2: u16 = 0;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const NLA_F_NESTED: u16 = 0x8000;

/// One netlink message under construction.
struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    fn new(kind: u16, flags: u16, seq: u32, header: &[u8]) -> Msg {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(header);
        let mut msg = Msg { buf };
        msg.align();
        msg
    }

    fn align(&mut self) {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }

    fn attr(&mut self, kind: u16, data: &[u8]) -> &mut Msg {
        let len = (4 + data.len()) as u16;
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.align();
        self
    }

    /// Opens a nested attribute; returns its offset for [`Msg::end_nest`].
    fn nest(&mut self, kind: u16) -> usize {
        let at = self.buf.len();
        self.attr(kind | NLA_F_NESTED, &[]);
        at
    }

    fn end_nest(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

fn ifinfomsg(index: u32, flags: u32, change: u32) -> [u8; 16] {
    let mut h = [0u8; 16];
    h[4..8].copy_from_slice(&(index as i32).to_ne_bytes());
    h[8..12].copy_from_slice(&flags.to_ne_bytes());
    h[12..16].copy_from_slice(&change.to_ne_bytes());
    h
}

fn errno() -> io::Error {
    io::Error::last_os_error()
}

fn check(ret: libc::c_long, what: &str) -> Res<libc::c_long> {
    if ret < 0 {
        Err(format!("{what}: {}", errno()))
    } else {
        Ok(ret)
    }
}

/// A raw `openat` (musl's `open` adds an `fcntl` after an `O_CLOEXEC` open).
fn open_ro(path: &str) -> Res<OwnedFd> {
    open_at(libc::AT_FDCWD, path, libc::O_RDONLY | libc::O_CLOEXEC)
}

/// A raw `openat` of `path` relative to `dir`, mode 0600 if it creates.
fn open_at(dir: i32, path: &str, flags: i32) -> Res<OwnedFd> {
    let c = std::ffi::CString::new(path).map_err(|e| e.to_string())?;
    // SAFETY: a valid NUL-terminated path; the kernel returns a new descriptor we own.
    let fd = unsafe { libc::syscall(libc::SYS_openat, dir, c.as_ptr(), flags, 0o600) };
    let fd = check(fd, path)?;
    // SAFETY: a descriptor just returned by the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn netlink_socket() -> Res<OwnedFd> {
    // SAFETY: plain socket(2); the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    let fd = check(fd as libc::c_long, "socket(AF_NETLINK)")?;
    // SAFETY: a descriptor just returned by the kernel.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn setns(fd: &OwnedFd) -> Res {
    // SAFETY: setns(2) on a namespace descriptor; single-threaded process.
    let ret = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
    check(ret as libc::c_long, "setns").map(|_| ())
}

/// Sends `msgs` in one datagram and reads one ACK per message.
fn transact(sock: &OwnedFd, msgs: &[Vec<u8>], what: &str) -> Res {
    let data: Vec<u8> = msgs.concat();
    // SAFETY: sends our own buffer on our own socket.
    let sent = unsafe { libc::send(sock.as_raw_fd(), data.as_ptr().cast(), data.len(), 0) };
    check(sent as libc::c_long, what)?;
    let mut buf = [0u8; 8192];
    let mut acks = 0;
    while acks < msgs.len() {
        // SAFETY: receives into our own buffer.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        let n = check(n as libc::c_long, what)? as usize;
        let mut at = 0;
        while at + 16 <= n {
            let len = u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
            let kind = u16::from_ne_bytes(buf[at + 4..at + 6].try_into().unwrap());
            if kind == NLMSG_ERROR && at + 20 <= n {
                let code = i32::from_ne_bytes(buf[at + 16..at + 20].try_into().unwrap());
                if code != 0 {
                    return Err(format!("{what}: {}", io::Error::from_raw_os_error(-code)));
                }
                acks += 1;
            }
            if len < 16 {
                break;
            }
            at += (len + 3) & !3;
        }
    }
    Ok(())
}

/// Where the floor works: the namespace prefix and subnet of its row.
struct FloorSite<'a> {
    ns: &'a str,
    subnet: u32,
}

/// The floor's attach of container `i`, with what `extra` adds to its
/// netlink work: the behaviour floor turns IPv6 off on the new link before
/// its address, as our connect does on a network without an IPv6 subnet;
/// the announcing floor turns `arp_notify` on before the up, in the
/// datagram of the address, the up and the route, as a CNI ADD sets it.
fn floor_attach(
    host: &OwnedFd,
    host_ns: &OwnedFd,
    parent: u32,
    site: &FloorSite,
    i: u32,
    extra: Option<&Extra>,
) -> Res {
    let ipv6_off = matches!(extra, Some(Extra::Behaviour(_)));
    let announce = matches!(extra, Some(Extra::Announce));
    let index = INDEX_BASE + i;
    let ns = open_ro(&ns_path(site.ns, i))?;
    let mut link = Msg::new(
        RTM_NEWLINK,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        1,
        &ifinfomsg(index, 0, 0),
    );
    link.attr(IFLA_LINK, &parent.to_ne_bytes())
        .attr(IFLA_IFNAME, b"eth0\0")
        .attr(IFLA_NET_NS_FD, &(ns.as_raw_fd() as u32).to_ne_bytes());
    let info = link.nest(IFLA_LINKINFO);
    link.attr(IFLA_INFO_KIND, b"ipvlan");
    let data = link.nest(IFLA_INFO_DATA);
    link.attr(IFLA_IPVLAN_MODE, &IPVLAN_MODE_L2.to_ne_bytes());
    link.end_nest(data);
    link.end_nest(info);
    transact(host, &[link.finish()], "RTM_NEWLINK")?;

    setns(&ns)?;
    let inner = netlink_socket();
    // The namespace's sysctl is opened from inside it.
    let sysctl = ipv6_off.then(|| {
        open_at(
            libc::AT_FDCWD,
            "/proc/sys/net/ipv6/conf/eth0/disable_ipv6",
            libc::O_WRONLY | libc::O_CLOEXEC,
        )
    });
    setns(host_ns)?;
    let inner = inner?;
    if let Some(sysctl) = sysctl {
        let sysctl = sysctl?;
        write_all_at(&sysctl, b"1", None, "disable_ipv6")?;
        leave_to_exit(sysctl);
    }
    let addr = container_addr(site.subnet, i).to_be_bytes();
    let mut ifa = [0u8; 8];
    ifa[0] = libc::AF_INET as u8;
    ifa[1] = PREFIX_LEN;
    ifa[4..8].copy_from_slice(&index.to_ne_bytes());
    let mut address = Msg::new(
        RTM_NEWADDR,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        2,
        &ifa,
    );
    address.attr(IFA_LOCAL, &addr).attr(IFA_ADDRESS, &addr);
    let up = Msg::new(
        RTM_NEWLINK,
        NLM_F_REQUEST | NLM_F_ACK,
        3,
        &ifinfomsg(index, libc::IFF_UP as u32, libc::IFF_UP as u32),
    );
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
    let mut rtm = [0u8; 12];
    rtm[0] = libc::AF_INET as u8;
    rtm[4] = libc::RT_TABLE_MAIN;
    rtm[5] = libc::RTPROT_BOOT;
    rtm[6] = libc::RT_SCOPE_UNIVERSE;
    rtm[7] = libc::RTN_UNICAST;
    let mut route = Msg::new(
        RTM_NEWROUTE,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        4,
        &rtm,
    );
    route
        .attr(RTA_GATEWAY, &(site.subnet + 1).to_be_bytes())
        .attr(RTA_OIF, &index.to_ne_bytes());
    let mut requests = Vec::with_capacity(4);
    if announce {
        // The kernel announces a link as it comes up only if the setting
        // is on by then: its own request, before the up's.
        let mut notify = Msg::new(
            RTM_NEWLINK,
            NLM_F_REQUEST | NLM_F_ACK,
            5,
            &ifinfomsg(index, 0, 0),
        );
        let spec = notify.nest(IFLA_AF_SPEC);
        let inet = notify.nest(libc::AF_INET as u16);
        let conf = notify.nest(IFLA_INET_CONF);
        notify.attr(IPV4_DEVCONF_ARP_NOTIFY, &1u32.to_ne_bytes());
        notify.end_nest(conf);
        notify.end_nest(inet);
        notify.end_nest(spec);
        requests.push(notify.finish());
    }
    requests.extend([address.finish(), up.finish(), route.finish()]);
    let what = if announce {
        "arp_notify, RTM_NEWADDR, up, RTM_NEWROUTE"
    } else {
        "RTM_NEWADDR, up, RTM_NEWROUTE"
    };
    transact(&inner, &requests, what)
}

fn floor_detach(host_ns: &OwnedFd, site: &FloorSite, i: u32) -> Res {
    let ns = open_ro(&ns_path(site.ns, i))?;
    setns(&ns)?;
    let inner = netlink_socket();
    setns(host_ns)?;
    let inner = inner?;
    let del = Msg::new(
        RTM_DELLINK,
        NLM_F_REQUEST | NLM_F_ACK,
        1,
        &ifinfomsg(INDEX_BASE + i, 0, 0),
    );
    transact(&inner, &[del.finish()], "RTM_DELLINK")
}

/// Where a floor above the per-process one keeps its files (a directory on
/// the state directory's disk), and the size of a record.
struct FloorFiles<'a> {
    dir: &'a str,
    bytes: usize,
}

/// The durable write a connect makes of its endpoint record, and nothing
/// else: a new file of the record's size in one directory, `write`,
/// `fdatasync`, then `fsync` of the directory (the new entry).
fn durable_write(durable: &FloorFiles, name: &str) -> Res {
    let dir = open_at(
        libc::AT_FDCWD,
        durable.dir,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
    )?;
    let file = open_at(
        dir.as_raw_fd(),
        name,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
    )?;
    // A record is JSON text ending in a newline; its content costs nothing here.
    let mut record = vec![b' '; durable.bytes];
    if let Some(last) = record.last_mut() {
        *last = b'\n';
    }
    // SAFETY: writes our own buffer to our own descriptor.
    let written = unsafe { libc::write(file.as_raw_fd(), record.as_ptr().cast(), record.len()) };
    if check(written as libc::c_long, name)? as usize != record.len() {
        return Err(format!("{name}: short write"));
    }
    // SAFETY: plain fdatasync(2)/fsync(2) on descriptors we own.
    check(
        unsafe { libc::fdatasync(file.as_raw_fd()) } as libc::c_long,
        "fdatasync",
    )?;
    // SAFETY: as above.
    check(
        unsafe { libc::fsync(dir.as_raw_fd()) } as libc::c_long,
        "fsync",
    )?;
    Ok(())
}

/// The durable removal a disconnect makes of the record: `unlinkat`, then
/// `fsync` of the directory.
fn durable_remove(durable: &FloorFiles, name: &str) -> Res {
    let dir = open_at(
        libc::AT_FDCWD,
        durable.dir,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
    )?;
    let c = std::ffi::CString::new(name).map_err(|e| e.to_string())?;
    // SAFETY: unlinkat(2) of a NUL-terminated name in a directory we opened.
    let ret = unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) };
    check(ret as libc::c_long, name)?;
    // SAFETY: plain fsync(2) on a descriptor we own.
    check(
        unsafe { libc::fsync(dir.as_raw_fd()) } as libc::c_long,
        "fsync",
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------
// The behaviour floor: what the documented behaviour asks of every connect
// besides the kernel's link work, each done the cheapest way known, with
// nothing of our own bookkeeping. A lower bound for any implementation of
// the behaviour on this disk and kernel, not a design: its "network
// record" is a file of a record's size, its endpoint records live in
// preallocated blocks, its hosts lines have a fixed width, and it leaves
// its descriptors (and the lock) to the process's exit.

/// In the behaviour floor's directory: the lock every writer takes, the
/// network's record it reads, the blocks its endpoint records go to (one
/// [`SLOT`] per container, preallocated and synced before the rows), and
/// the network's hosts file.
const BEHAVIOUR_LOCK: &str = "lock";
const BEHAVIOUR_NETWORK: &str = "network";
const BEHAVIOUR_SLOTS: &str = "slots";
const BEHAVIOUR_HOSTS: &str = "hosts";
/// The hosts file's first lines, as ours starts it.
const BEHAVIOUR_HOSTS_BASE: &str =
    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
/// Bytes of one container's hosts line (padded), so that a detach finds
/// container `i`'s at a known offset (containers attach in order).
const BEHAVIOUR_HOSTS_LINE: usize = 32;
/// Where `ip netns exec` looks for a container's files.
const ETC_NETNS: &str = "/etc/netns";

/// The behaviour floor's `/etc/netns` view of container `i` of namespace
/// prefix `ns`.
fn behaviour_view(ns: &str, i: u32) -> String {
    format!("{ETC_NETNS}/{}", ns_name(ns, i))
}

/// [`behaviour_prepare`] of the behaviour floor's directory on the run's
/// disk, with a record of the run's size.
fn prepare_behaviour_floor(config: &Config, containers: u32) -> Res {
    behaviour_prepare(
        &format!("{}/{BEHAVIOUR_DIR}", config.disk),
        config.record_bytes as usize,
        containers,
    )
}

/// Makes the behaviour floor's directory for `containers` containers
/// (removing one left from another size): the lock, a network record of
/// `bytes`, the slots written with zeros and synced, the hosts file.
fn behaviour_prepare(dir: &str, bytes: usize, containers: u32) -> Res {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(format!("{dir}: {e}")),
        _ => {}
    }
    fs::create_dir_all(dir).map_err(|e| format!("{dir}: {e}"))?;
    fs::create_dir_all(ETC_NETNS).map_err(|e| format!("{ETC_NETNS}: {e}"))?;
    let file = |name: &str, contents: &[u8]| -> Res {
        let path = format!("{dir}/{name}");
        fs::write(&path, contents).map_err(|e| format!("{path}: {e}"))?;
        fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .map_err(|e| format!("{path}: {e}"))
    };
    file(BEHAVIOUR_LOCK, b"")?;
    file(BEHAVIOUR_NETWORK, &vec![b' '; bytes])?;
    file(
        BEHAVIOUR_SLOTS,
        &vec![0u8; SLOT * (containers as usize + 1)],
    )?;
    file(BEHAVIOUR_HOSTS, BEHAVIOUR_HOSTS_BASE.as_bytes())?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("{dir}: {e}"))
}

/// Opens `name` in the behaviour floor's directory.
fn behaviour_open(place: &FloorFiles, name: &str, flags: i32) -> Res<OwnedFd> {
    open_at(libc::AT_FDCWD, &format!("{}/{name}", place.dir), flags)
}

/// Leaves `fd` open to the process's exit, which closes it (one `close`
/// fewer, as ours leaves its own descriptors; the lock's is released so).
fn leave_to_exit(fd: OwnedFd) {
    std::mem::forget(fd);
}

/// Before the kernel's work: the store's lock taken (`flock`, released at
/// exit) and the network's record read.
fn behaviour_begin(place: &FloorFiles) -> Res {
    let lock = behaviour_open(place, BEHAVIOUR_LOCK, libc::O_RDWR | libc::O_CLOEXEC)?;
    // SAFETY: flock(2) on a descriptor we opened.
    check(
        unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } as libc::c_long,
        "flock",
    )?;
    leave_to_exit(lock);
    let network = behaviour_open(place, BEHAVIOUR_NETWORK, libc::O_RDONLY | libc::O_CLOEXEC)?;
    let mut buf = [0u8; SLOT];
    // SAFETY: reads into our own buffer from a descriptor we opened.
    let n = unsafe { libc::read(network.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    if check(n as libc::c_long, "network record")? as usize != place.bytes {
        return Err(format!(
            "network record: read {n} bytes, not {}",
            place.bytes
        ));
    }
    leave_to_exit(network);
    Ok(())
}

/// Container `i`'s hosts line, padded to [`BEHAVIOUR_HOSTS_LINE`].
fn behaviour_hosts_line(site: &FloorSite, i: u32) -> Vec<u8> {
    let text = format!(
        "{}\t{}",
        ipv4(container_addr(site.subnet, i)),
        ns_name(site.ns, i)
    );
    let mut line = format!("{text:<width$}\n", width = BEHAVIOUR_HOSTS_LINE - 1).into_bytes();
    line.truncate(BEHAVIOUR_HOSTS_LINE);
    line
}

/// Writes `record` into container `i`'s block and makes it durable.
fn behaviour_record(place: &FloorFiles, i: u32, record: &[u8]) -> Res {
    let slots = behaviour_open(place, BEHAVIOUR_SLOTS, libc::O_WRONLY | libc::O_CLOEXEC)?;
    write_all_at(&slots, record, Some(u64::from(i) * SLOT as u64), "record")?;
    sync_fd(&slots, true, "fdatasync of the record")?;
    leave_to_exit(slots);
    Ok(())
}

/// After the kernel's work of an attach: the network's hosts line
/// appended, the container's `/etc/netns` view (a directory and a `hosts`
/// link to that file), and the endpoint's record made durable (a
/// `pwrite` into its preallocated block, `fdatasync`).
fn behaviour_attach_end(place: &FloorFiles, site: &FloorSite, i: u32) -> Res {
    let hosts_path = format!("{}/{BEHAVIOUR_HOSTS}", place.dir);
    let hosts = behaviour_open(
        place,
        BEHAVIOUR_HOSTS,
        libc::O_WRONLY | libc::O_APPEND | libc::O_CLOEXEC,
    )?;
    write_all_at(&hosts, &behaviour_hosts_line(site, i), None, "hosts line")?;
    leave_to_exit(hosts);
    let view = behaviour_view(site.ns, i);
    fs::create_dir(&view).map_err(|e| format!("{view}: {e}"))?;
    std::os::unix::fs::symlink(&hosts_path, format!("{view}/hosts"))
        .map_err(|e| format!("{view}/hosts: {e}"))?;
    let mut record = [b' '; SLOT];
    let record = &mut record[..place.bytes.min(SLOT)];
    if let Some(last) = record.last_mut() {
        *last = b'\n';
    }
    behaviour_record(place, i, record)
}

/// After the kernel's work of a detach: the hosts line blanked, the view
/// removed, the record's block cleared and made durable.
fn behaviour_detach_end(place: &FloorFiles, site: &FloorSite, i: u32) -> Res {
    let hosts = behaviour_open(place, BEHAVIOUR_HOSTS, libc::O_WRONLY | libc::O_CLOEXEC)?;
    let at = BEHAVIOUR_HOSTS_BASE.len() + (i as usize - 1) * BEHAVIOUR_HOSTS_LINE;
    let mut blank = [b' '; BEHAVIOUR_HOSTS_LINE];
    blank[BEHAVIOUR_HOSTS_LINE - 1] = b'\n';
    write_all_at(&hosts, &blank, Some(at as u64), "hosts line")?;
    leave_to_exit(hosts);
    let view = behaviour_view(site.ns, i);
    fs::remove_file(format!("{view}/hosts")).map_err(|e| format!("{view}/hosts: {e}"))?;
    fs::remove_dir(&view).map_err(|e| format!("{view}: {e}"))?;
    behaviour_record(place, i, &[0u8; SLOT][..place.bytes.min(SLOT)])
}

const FLOOR_USAGE: &str = "usage: floor attach|detach PARENT-INDEX NS-PREFIX SUBNET FIRST LAST \
                           [--durable DIR BYTES | --behaviour DIR BYTES | --announce]";

/// What the floor does besides its netlink work: nothing, the durable
/// floor's file, the behaviour floor's share, or the announcing floor's
/// `arp_notify`.
enum Extra<'a> {
    Durable(FloorFiles<'a>),
    Behaviour(FloorFiles<'a>),
    Announce,
}

/// The floor's arguments without a trailing `--durable DIR BYTES`,
/// `--behaviour DIR BYTES` or `--announce`, and those.
fn floor_extra_args(args: &[String]) -> Res<(&[String], Option<Extra<'_>>)> {
    match args {
        [head @ .., flag] if flag == "--announce" => Ok((head, Some(Extra::Announce))),
        [head @ .., flag, dir, bytes] if flag == "--durable" || flag == "--behaviour" => {
            let bytes = bytes.parse().map_err(|e| format!("{bytes}: {e}"))?;
            let place = FloorFiles { dir, bytes };
            let extra = if flag == "--durable" {
                Extra::Durable(place)
            } else {
                Extra::Behaviour(place)
            };
            Ok((head, Some(extra)))
        }
        _ => Ok((args, None)),
    }
}

fn floor_main(args: &[String]) -> Res {
    let (args, extra) = floor_extra_args(args)?;
    let [op, parent, ns, subnet, first, last] = args else {
        return Err(FLOOR_USAGE.into());
    };
    let number = |s: &String| s.parse::<u32>().map_err(|e| format!("{s}: {e}"));
    let (parent, first, last) = (number(parent)?, number(first)?, number(last)?);
    let subnet: std::net::Ipv4Addr = subnet.parse().map_err(|e| format!("{subnet}: {e}"))?;
    let site = FloorSite {
        ns,
        subnet: u32::from(subnet),
    };
    let host_ns = open_ro("/proc/self/ns/net")?;
    let host = netlink_socket()?;
    let mut times = String::new();
    let behaviour = match &extra {
        Some(Extra::Behaviour(place)) => Some(place),
        _ => None,
    };
    for i in first..=last {
        let start = Instant::now();
        if let Some(place) = behaviour {
            behaviour_begin(place)?;
        }
        match op.as_str() {
            "attach" => floor_attach(&host, &host_ns, parent, &site, i, extra.as_ref())?,
            "detach" => floor_detach(&host_ns, &site, i)?,
            other => return Err(format!("floor: unknown operation {other}")),
        }
        let name = ns_name(ns, i);
        match (&extra, op == "attach") {
            (Some(Extra::Durable(durable)), true) => durable_write(durable, &name)?,
            (Some(Extra::Durable(durable)), false) => durable_remove(durable, &name)?,
            (Some(Extra::Behaviour(place)), true) => behaviour_attach_end(place, &site, i)?,
            (Some(Extra::Behaviour(place)), false) => behaviour_detach_end(place, &site, i)?,
            (Some(Extra::Announce), _) | (None, _) => {}
        }
        let _ = writeln!(times, "T {i} {}", start.elapsed().as_nanos());
    }
    print!("{times}");
    Ok(())
}

// ---------------------------------------------------------------------------
// Durable writes by kind.

const DURABLE_WRITES_USAGE: &str = "usage: durable-writes DIR COUNT BYTES";

/// The durable writes of one record that `durable-writes` compares, in the
/// order of its table (the first is the one the ratios are to).
const WRITE_KINDS: [&str; 4] = [
    "new file (`openat` `O_CREAT|O_EXCL`, `write`, `fdatasync`, `close`), then `fsync` of \
     the directory: the durable floor's write",
    "new file (`openat` `O_CREAT|O_EXCL`, `write`, `fdatasync`, `close`), no directory `fsync`",
    "`pwrite` into a preallocated block of a file (written with zeros and synced before \
     timing), `fdatasync`",
    "append (`write` with `O_APPEND`, the file grows), `fdatasync`",
];

/// `durable-writes DIR COUNT BYTES`: a directory it makes (and removes), how
/// many rounds, the record's size.
fn durable_writes_args(args: &[String]) -> Res<(&str, usize, usize)> {
    let [dir, count, bytes] = args else {
        return Err(DURABLE_WRITES_USAGE.into());
    };
    let positive = |s: &String| {
        s.parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{s}: not a positive number\n{DURABLE_WRITES_USAGE}"))
    };
    let (count, bytes) = (positive(count)?, positive(bytes)?);
    if bytes > SLOT {
        return Err(format!(
            "a record of {bytes} bytes does not fit a {SLOT}-byte block"
        ));
    }
    Ok((dir, count, bytes))
}

fn sync_fd(fd: &OwnedFd, data_only: bool, what: &str) -> Res {
    // SAFETY: plain fdatasync(2)/fsync(2) on a descriptor we own.
    let ret = unsafe {
        if data_only {
            libc::fdatasync(fd.as_raw_fd())
        } else {
            libc::fsync(fd.as_raw_fd())
        }
    };
    check(ret as libc::c_long, what).map(drop)
}

/// `pwrite(2)` (or `write(2)` when `at` is `None`) of all of `buf`.
fn write_all_at(fd: &OwnedFd, buf: &[u8], at: Option<u64>, what: &str) -> Res {
    // SAFETY: writes our own buffer to our own descriptor.
    let n = unsafe {
        match at {
            Some(at) => libc::pwrite(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len(), at as i64),
            None => libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()),
        }
    };
    if check(n as libc::c_long, what)? as usize != buf.len() {
        return Err(format!("{what}: short write"));
    }
    Ok(())
}

/// A new file of `record` in `dir`, made durable by `fdatasync`, and by
/// `fsync` of the directory too if `dir_fsync`.
fn new_file_write(dir: &OwnedFd, name: &str, record: &[u8], dir_fsync: bool) -> Res {
    let file = open_at(
        dir.as_raw_fd(),
        name,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
    )?;
    write_all_at(&file, record, None, name)?;
    sync_fd(&file, true, name)?;
    drop(file);
    if dir_fsync {
        sync_fd(dir, false, "fsync of the directory")?;
    }
    Ok(())
}

/// The block size of the preallocated file: one record per block.
const SLOT: usize = 4096;

/// Times `count` durable writes of a `bytes`-byte record of each of
/// [`WRITE_KINDS`] in `dir` (made here, removed at the end with what it
/// holds, all of it ours): round by round, one write of each kind per
/// round in a balanced order ([`BalancedOrder`]), so the host's load
/// drifts under all kinds alike and none always follows the same one.
/// Milliseconds per write, by kind.
fn durable_writes(dir: &str, count: usize, bytes: usize) -> Res<[Vec<f64>; 4]> {
    fs::create_dir(dir).map_err(|e| format!("{dir}: {e}"))?;
    let result = durable_writes_in(dir, count, bytes);
    let removed = fs::remove_dir_all(dir).map_err(|e| format!("{dir}: {e}"));
    let times = result?;
    removed?;
    Ok(times)
}

fn durable_writes_in(dir: &str, count: usize, bytes: usize) -> Res<[Vec<f64>; 4]> {
    let d = open_at(
        libc::AT_FDCWD,
        dir,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
    )?;
    let mut record = vec![b' '; bytes];
    if let Some(last) = record.last_mut() {
        *last = b'\n';
    }
    // The preallocated file: every block written and synced, so an overwrite
    // changes neither its size nor its extents; the append file exists, and
    // both names are durable, before the first timed write.
    let slots = open_at(
        d.as_raw_fd(),
        "slots",
        libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_CLOEXEC,
    )?;
    let zeros = vec![0u8; SLOT];
    for k in 0..count {
        write_all_at(&slots, &zeros, Some((k * SLOT) as u64), "slots")?;
    }
    sync_fd(&slots, false, "slots")?;
    let log = open_at(
        d.as_raw_fd(),
        "log",
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_APPEND | libc::O_CLOEXEC,
    )?;
    sync_fd(&log, false, "log")?;
    sync_fd(&d, false, "fsync of the directory")?;
    let mut times: [Vec<f64>; 4] = Default::default();
    let order = BalancedOrder::new(WRITE_KINDS.len());
    for round in 0..count {
        for &kind in order.round(round) {
            let start = Instant::now();
            match kind {
                0 => new_file_write(&d, &format!("n{round}"), &record, true)?,
                1 => new_file_write(&d, &format!("m{round}"), &record, false)?,
                2 => {
                    write_all_at(&slots, &record, Some((round * SLOT) as u64), "slots")?;
                    sync_fd(&slots, true, "slots")?;
                }
                _ => {
                    write_all_at(&log, &record, None, "log")?;
                    sync_fd(&log, true, "log")?;
                }
            }
            times[kind].push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    Ok(times)
}

/// The orders in which a number of things compared side by side run,
/// round after round ([`balanced_rounds`], one period after another),
/// made once for all the rounds of a run.
struct BalancedOrder {
    period: Vec<Vec<usize>>,
}

impl BalancedOrder {
    fn new(kinds: usize) -> BalancedOrder {
        BalancedOrder {
            period: balanced_rounds(kinds),
        }
    }

    /// The order of round `round`.
    fn round(&self, round: usize) -> &[usize] {
        self.period
            .get(round % self.period.len().max(1))
            .map_or(&[], Vec::as_slice)
    }
}

/// One period of rounds, each an order of `kinds` things compared side by
/// side, run one round after another: over the period each kind runs at
/// each position equally often, and right after each other kind equally
/// often, within a round and across the step from one round to the next
/// (`kinds * (kinds - 1)` rounds; with one or two kinds, they alternate). A
/// plain rotation keeps each kind behind the same one (with four, three
/// rounds in four): what one leaves the kernel to finish (a journal commit,
/// a namespace's teardown) then always weighs on the same next one.
///
/// The rounds are Williams' balanced Latin square (rows `0, 1, n-1, 2,
/// n-2, ...` shifted; with an odd number of kinds, their mirrors too), which
/// balances the pairs within rounds, each row used as often; their order is
/// an Eulerian circuit of the graph whose edges are the rounds (from the
/// kind a round starts with to the one it ends with) and the steps between
/// them (from the kind a round ends with to any other the next starts
/// with, each once), which balances the steps between rounds.
fn balanced_rounds(kinds: usize) -> Vec<Vec<usize>> {
    if kinds < 3 {
        return (0..kinds)
            .map(|r| (0..kinds).map(|j| (j + r) % kinds).collect())
            .collect();
    }
    // Consecutive differences 1, -2, 3, -4, ...: every nonzero step once.
    let first: Vec<usize> = (0..kinds)
        .map(|j| {
            if j % 2 == 1 {
                j.div_ceil(2)
            } else {
                (kinds - j / 2) % kinds
            }
        })
        .collect();
    let mut rows: Vec<Vec<usize>> = (0..kinds)
        .map(|shift| first.iter().map(|k| (k + shift) % kinds).collect())
        .collect();
    if kinds % 2 == 1 {
        let mirrors: Vec<Vec<usize>> = rows
            .iter()
            .map(|row| row.iter().rev().copied().collect())
            .collect();
        rows.extend(mirrors);
    }
    // Each row as often as makes every vertex's edges in and out equal:
    // `kinds - 1` steps reach a round's start at a kind, and as many rounds
    // start there.
    let copies = if kinds % 2 == 0 {
        kinds - 1
    } else {
        (kinds - 1) / 2
    };
    // Vertex `x`: a round about to start with kind `x`; `kinds + x`: one
    // that ended with it. An edge's label: the row it runs, or none for a
    // step between rounds.
    let mut edges: Vec<std::collections::VecDeque<(usize, Option<usize>)>> =
        vec![Default::default(); 2 * kinds];
    for (label, row) in rows.iter().enumerate() {
        for _ in 0..copies {
            edges[row[0]].push_back((kinds + row[kinds - 1], Some(label)));
        }
    }
    for x in 0..kinds {
        for y in (0..kinds).filter(|&y| y != x) {
            edges[kinds + x].push_back((y, None));
        }
    }
    // Hierholzer's algorithm, from a round starting with kind 0.
    let mut walk = vec![(0, None)];
    let mut circuit = Vec::new();
    while let Some(&(at, _)) = walk.last() {
        match edges[at].pop_front() {
            Some(edge) => walk.push(edge),
            None => circuit.extend(walk.pop()),
        }
    }
    circuit.reverse();
    circuit
        .into_iter()
        .filter_map(|(_, label)| label.map(|row| rows[row].clone()))
        .collect()
}

/// The nearest-rank percentile `q` (0 < q <= 1) of `v`.
fn percentile(v: &[f64], q: f64) -> f64 {
    let s = sorted(v);
    if s.is_empty() {
        return f64::NAN;
    }
    let rank = ((s.len() as f64) * q).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

/// The table `durable-writes` prints: one line per kind, its median, p10
/// and p90, and its median against the first kind's.
fn durable_writes_table(bytes: usize, times: &[Vec<f64>; 4]) -> String {
    let base = median(&times[0]);
    let mut s = format!(
        "| durable write of one {bytes}-byte record, {} each | median ms | p10 | p90 | / new \
         file + directory `fsync` |\n|---|---|---|---|---|\n",
        times[0].len()
    );
    for (kind, t) in WRITE_KINDS.iter().zip(times) {
        let m = median(t);
        let _ = writeln!(
            s,
            "| {} | {m:.2} | {:.2} | {:.2} | {:.2}x |",
            kind.replace('|', "\\|"),
            percentile(t, 0.1),
            percentile(t, 0.9),
            m / base
        );
    }
    s
}

fn durable_writes_main(args: &[String]) -> Res {
    let (dir, count, bytes) = durable_writes_args(args)?;
    let times = durable_writes(dir, count, bytes)?;
    print!("{}", durable_writes_table(bytes, &times));
    Ok(())
}

// ---------------------------------------------------------------------------
// The launcher.

/// `sysctl-lookups`: namespaces already looked up through `/proc` at each
/// measuring point (the first ones untimed, to grow what a lookup walks),
/// and the namespaces measured at each point through each way.
const SYSCTL_LOOKUP_STEPS: [u32; 3] = [0, 100, 1000];
const SYSCTL_LOOKUPS_MEASURED: u32 = 32;
/// Namespaces looked up through one procfs instance of one's own, as the
/// bulk API's `SysctlFiles::LOOKUPS`.
const SYSCTL_LOOKUPS_PER_INSTANCE: u32 = 16;
const SYSCTL_FILE: &str = "sys/net/ipv6/conf/lo/disable_ipv6";

/// The namespaces `sysctl-lookups` uses, all made before it runs.
fn sysctl_lookup_namespaces() -> u32 {
    SYSCTL_LOOKUP_STEPS[SYSCTL_LOOKUP_STEPS.len() - 1]
        + 2 * SYSCTL_LOOKUPS_MEASURED * SYSCTL_LOOKUP_STEPS.len() as u32
}

/// A procfs instance of this process's own (`fsopen`, `fsconfig`,
/// `fsmount`): a new superblock, attached nowhere.
fn procfs_instance() -> Res<OwnedFd> {
    // SAFETY: a NUL-terminated name and a flag (FSOPEN_CLOEXEC).
    let context = check(
        unsafe { libc::syscall(libc::SYS_fsopen, c"proc".as_ptr(), 1u32) },
        "fsopen",
    )?;
    // SAFETY: a descriptor just returned by the kernel, owned by nobody else.
    let context = unsafe { OwnedFd::from_raw_fd(context as i32) };
    // SAFETY: FSCONFIG_CMD_CREATE (6) on our context, no key or value.
    check(
        unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                context.as_raw_fd(),
                6u32,
                std::ptr::null::<u8>(),
                std::ptr::null::<u8>(),
                0,
            )
        },
        "fsconfig",
    )?;
    // SAFETY: FSMOUNT_CLOEXEC (1) on our context, no attributes.
    let mount = check(
        unsafe { libc::syscall(libc::SYS_fsmount, context.as_raw_fd(), 1u32, 0u32) },
        "fsmount",
    )?;
    // SAFETY: a descriptor just returned by the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(mount as i32) })
}

/// ms of opening the setting in namespace `i` of `prefix`: entered from
/// `home`, opened relative to `dir` (`/proc`, or an instance's root), home
/// again; the entries and the close untimed.
fn first_sysctl_lookup(home: &OwnedFd, prefix: &str, i: u32, dir: i32, path: &str) -> Res<f64> {
    let ns = open_ro(&ns_path(prefix, i))?;
    setns(&ns)?;
    let start = Instant::now();
    let file = open_at(dir, path, libc::O_RDONLY | libc::O_CLOEXEC);
    let ms = start.elapsed().as_secs_f64() * 1e3;
    setns(home)?;
    file.map(|_| ms)
}

/// `sysctl-lookups NS-PREFIX`: see the module's documentation. Prints one
/// Markdown row per step.
fn sysctl_lookups_main(args: &[String]) -> Res {
    let [prefix] = args else {
        return Err("usage: sysctl-lookups NS-PREFIX".into());
    };
    let home = open_ro("/proc/self/ns/net")?;
    let proc_root = open_ro("/proc")?;
    let mut next = 1;
    let mut looked_up = 0;
    let mut rows = String::new();
    for step in SYSCTL_LOOKUP_STEPS {
        // Grown untimed: each a namespace's first lookup through /proc.
        while looked_up < step {
            first_sysctl_lookup(&home, prefix, next, proc_root.as_raw_fd(), SYSCTL_FILE)?;
            (next, looked_up) = (next + 1, looked_up + 1);
        }
        let mut through_proc = Vec::new();
        for _ in 0..SYSCTL_LOOKUPS_MEASURED {
            let ms = first_sysctl_lookup(&home, prefix, next, proc_root.as_raw_fd(), SYSCTL_FILE)?;
            through_proc.push(ms);
            next += 1;
        }
        // Through instances of our own; what making and unmaking them
        // costs is shared among the namespaces each serves.
        let (mut through_own, mut instances_ms) = (Vec::new(), 0.0);
        let mut instance = None;
        for n in 0..SYSCTL_LOOKUPS_MEASURED {
            if n % SYSCTL_LOOKUPS_PER_INSTANCE == 0 {
                let start = Instant::now();
                drop(instance.take());
                instance = Some(procfs_instance()?);
                instances_ms += start.elapsed().as_secs_f64() * 1e3;
            }
            let root = instance.as_ref().map_or(-1, |fd: &OwnedFd| fd.as_raw_fd());
            through_own.push(first_sysctl_lookup(&home, prefix, next, root, SYSCTL_FILE)?);
            next += 1;
        }
        let start = Instant::now();
        drop(instance);
        instances_ms += start.elapsed().as_secs_f64() * 1e3;
        let shared = instances_ms / SYSCTL_LOOKUPS_MEASURED as f64;
        let own = median(&through_own) + shared;
        // The measured namespaces looked up through /proc count too.
        looked_up += SYSCTL_LOOKUPS_MEASURED;
        let _ = writeln!(
            rows,
            "| {step} | {:.3} | {:.3} ({:.3} + {shared:.3}) | {:.2}x |",
            median(&through_proc),
            own,
            median(&through_own),
            own / median(&through_proc)
        );
    }
    println!(
        "| namespaces looked up through `/proc` before | first lookup through `/proc`, median ms \
         | through an instance of one's own made every {SYSCTL_LOOKUPS_PER_INSTANCE} namespaces: \
         median ms (the lookup + the instance's making and unmaking shared) | own / `/proc` |\n\
         |---|---|---|---|\n{rows}"
    );
    Ok(())
}

fn launch_main(args: &[String]) -> ExitCode {
    match launch(args) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("attach launch: {error}");
            ExitCode::from(125)
        }
    }
}

/// The command `[--env K=V]... [--stdin FILE] -- PROGRAM ARGS...` names
/// ([`Cmd::launch_words`]), and its program.
fn launched_command(args: &[String]) -> Res<(Command, &str)> {
    let mut iter = args.iter();
    let mut env = Vec::new();
    let mut stdin = None;
    loop {
        match iter.next().map(String::as_str) {
            Some("--env") => {
                let pair = iter.next().ok_or("--env needs K=V")?;
                let (k, v) = pair.split_once('=').ok_or("--env needs K=V")?;
                env.push((k.to_string(), v.to_string()));
            }
            Some("--stdin") => stdin = Some(iter.next().ok_or("--stdin needs a file")?),
            Some("--") => break,
            _ => {
                return Err("usage: launch [--env K=V]... [--stdin FILE] -- PROGRAM ARGS...".into())
            }
        }
    }
    let argv: Vec<&String> = iter.collect();
    let (program, rest) = argv.split_first().ok_or("launch: no program")?;
    let mut cmd = Command::new(program);
    cmd.args(rest).envs(env);
    if let Some(file) = stdin {
        cmd.stdin(fs::File::open(file).map_err(|e| format!("{file}: {e}"))?);
    }
    Ok((cmd, program.as_str()))
}

fn launch(args: &[String]) -> Res<u8> {
    let (mut cmd, program) = launched_command(args)?;
    let start = Instant::now();
    let child = cmd.spawn().map_err(|e| format!("{program}: {e}"))?;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waits for our own child.
        let ret = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
        if ret >= 0 {
            break;
        }
        if errno().raw_os_error() != Some(libc::EINTR) {
            return Err(format!("wait4: {}", errno()));
        }
    }
    let wall = start.elapsed();
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status) as u8
    } else {
        128u8.wrapping_add(libc::WTERMSIG(status) as u8)
    };
    eprintln!(
        "LAUNCH {} {} {} {}",
        wall.as_nanos(),
        usage.ru_maxrss,
        usage.ru_minflt,
        usage.ru_majflt
    );
    Ok(code)
}

// ---------------------------------------------------------------------------
// Where the CPU goes: a `perf` profile of ours and the floors, side by side.

/// The commands [`cpu_profile`] compares, by the name each process runs under
/// (its `comm`: the last part of the path it was started by), with the
/// column's heading.
const PROFILED: [(&str, &str); 7] = [
    ("ipvlan", "ours: `network connect`"),
    ("ipvlan-cni", "ours: CNI ADD"),
    ("durable", "durable floor"),
    ("behaviour", "behaviour floor"),
    ("floor", "floor, one process per container"),
    ("ipvlan-bulk", "ours: bulk API, batches of 10"),
    ("floor-all", "floor, one process for 10"),
];
/// How many of [`PROFILED`] run one process per container (the first
/// five; the last two are batches).
const PROFILED_PER_CONTAINER: usize = 5;
/// The columns of [`PROFILED`] subtracted in the table's last columns: our
/// connect from the per-process floor and from the behaviour floor (what
/// our own store and code add to what the behaviour needs), our batch from
/// the one-process floor.
const PROFILE_DIFFERENCES: [(usize, usize, &str); 3] = [
    (0, 4, "connect − floor"),
    (0, 3, "connect − behaviour floor"),
    (5, 6, "bulk − floor for all"),
];
/// Containers per batch of the profile's two batch columns (the last
/// batch may be shorter).
const PROFILE_BATCH: u32 = 10;
/// The profile's batches: ours on the network's subnet (beside the CLI's
/// containers), the one-process floor's on 10.15.0.0/20.
const BULK_PROFILE_SITE: Site = Site::new("b", SUBNET);
const FLOOR_ALL_PROFILE_SITE: Site = Site::new("g", 0x0a0f_0000);
/// `perf record -F`: samples per second and CPU.
const PROFILE_HZ: u32 = 1000;
/// Containers of each kind attached before the profile starts (first use
/// of the state directory, page cache).
const PROFILE_WARMUP: u32 = 5;
/// The file of commands `profile-loop` runs, one per line: the launcher's
/// words for it ([`Cmd::launch_words`]) separated by tabs.
const PROFILE_COMMANDS: &str = "profile-commands";

fn profile_line(cmd: &Cmd) -> String {
    cmd.launch_words().join("\t") + "\n"
}

/// Runs a line of [`PROFILE_COMMANDS`] and waits for it.
fn run_profile_line(line: &str) -> Res {
    let words: Vec<String> = line.split('\t').map(str::to_string).collect();
    run_launched(&words)
}

/// Runs the command the launcher's `words` describe ([`launched_command`])
/// and waits for it.
fn run_launched(words: &[String]) -> Res {
    let (mut command, program) = launched_command(words)?;
    let status = command
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("{program}: {e}"))?;
    if !status.success() {
        return Err(format!("`{}` failed ({status})", words.join(" ")));
    }
    Ok(())
}

/// `profile-loop FILE`: runs each command of FILE in turn and waits for it
/// (the process `perf record` follows, with everything else on the CPUs).
fn profile_loop_main(args: &[String]) -> Res {
    let [file] = args else {
        return Err("usage: profile-loop FILE".into());
    };
    let text = fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    text.lines()
        .filter(|l| !l.is_empty())
        .try_for_each(run_profile_line)
}

/// The profile: our connect, our CNI ADD, the durable, behaviour and
/// per-process floors, container by container in turn, and after every
/// [`PROFILE_BATCH`] containers a batch of as many through our bulk API and
/// through the one-process floor, under `perf record -a -g -e cpu-clock`;
/// every sample of their processes is put in a category by its call chain
/// (the system call it is in, a page fault, user space) and the categories'
/// CPU time is printed per container, side by side. CPU time, not wall
/// time: a flush's wait for the disk is in neither.
fn cpu_profile(config: &Config, perf: &str) -> Res<String> {
    let n = config.small;
    if n <= PROFILE_WARMUP {
        return Err(format!(
            "the profile needs more than {PROFILE_WARMUP} containers"
        ));
    }
    let (ours, cni, durable, floor) = (OURS_SITE, CNI_OURS_SITE, DURABLE_SITE, FLOOR_SITE);
    let (behaviour, bulk, floor_all) = (BEHAVIOUR_SITE, BULK_PROFILE_SITE, FLOOR_ALL_PROFILE_SITE);
    for site in [ours, cni, durable, behaviour, floor, bulk, floor_all] {
        make_namespaces(site.ns, 1, n)?;
    }
    prepare_behaviour_floor(config, n)?;
    // The floors run as `durable`, `behaviour` and `floor` (this program by
    // other names),
    // our CNI mode as `ipvlan-cni` (our binary by another name), so that
    // their samples are told apart from the CLI's and from the loop's.
    let bin = format!("{}/profile-bin", config.disk);
    fs::create_dir_all(&bin).map_err(|e| format!("{bin}: {e}"))?;
    let named = |name: &str, target: &str| -> Res<String> {
        let path = format!("{bin}/{name}");
        std::os::unix::fs::symlink(target, &path).map_err(|e| format!("{path}: {e}"))?;
        Ok(path)
    };
    let as_floor = Config {
        me: named("floor", &config.me)?,
        ..config.clone()
    };
    let as_durable = Config {
        me: named("durable", &config.me)?,
        ..config.clone()
    };
    let as_behaviour = Config {
        me: named("behaviour", &config.me)?,
        ..config.clone()
    };
    let as_floor_all = Config {
        me: named("floor-all", &config.me)?,
        ..config.clone()
    };
    let cni_program = named("ipvlan-cni", &config.ipvlan)?;
    let as_bulk = Config {
        ipvlan: named("ipvlan-bulk", &config.ipvlan)?,
        ..config.clone()
    };
    // Container `i` of each kind, in a balanced order.
    let order = BalancedOrder::new(PROFILED_PER_CONTAINER);
    let commands = |i: u32| -> Vec<Cmd> {
        let mut kinds: [Vec<Cmd>; PROFILED_PER_CONTAINER] = [
            cli_attach(config, ours, i),
            cni_request(config, cni, &cni_program, CNI_OURS_CONF, "ADD", i),
            durable_attach(&as_durable, durable, i),
            behaviour_attach(&as_behaviour, behaviour, i),
            floor_pp_attach(&as_floor, floor, i),
        ];
        order
            .round(i as usize)
            .iter()
            .flat_map(|&kind| std::mem::take(&mut kinds[kind]))
            .collect()
    };
    // The containers `first..=last` one by one, then as one batch of each
    // kind.
    let lines = |first: u32, last: u32| -> String {
        let mut all: Vec<Cmd> = (first..=last).flat_map(commands).collect();
        all.push(bulk_attach(&as_bulk, bulk, first, last));
        all.push(floor_cmd(&as_floor_all, floor_all, "attach", first, last));
        all.iter().map(profile_line).collect()
    };
    for line in lines(1, PROFILE_WARMUP).lines() {
        run_profile_line(line)?;
    }
    let lines: String = (PROFILE_WARMUP + 1..=n)
        .step_by(PROFILE_BATCH as usize)
        .map(|first| lines(first, (first + PROFILE_BATCH - 1).min(n)))
        .collect();
    let list = format!("{}/{PROFILE_COMMANDS}", config.disk);
    fs::write(&list, lines).map_err(|e| format!("{list}: {e}"))?;
    // Kernel symbols for root's samples.
    fs::write("/proc/sys/kernel/kptr_restrict", "0").map_err(|e| format!("kptr_restrict: {e}"))?;
    let data = "/tmp/ipvlan-profile.data";
    fs::create_dir_all("/tmp").map_err(|e| format!("/tmp: {e}"))?;
    wait_until_idle()?;
    eprintln!(
        "bench: profile of {} containers of each kind",
        n - PROFILE_WARMUP
    );
    sh(
        &[
            perf,
            "record",
            "--quiet",
            "-a",
            "-g",
            "-e",
            "cpu-clock",
            "-F",
            &PROFILE_HZ.to_string(),
            "-o",
            data,
            "--",
            &config.me,
            "profile-loop",
            &list,
        ],
        None,
    )?;
    let script = sh(
        &[perf, "script", "-i", data, "-F", "comm,period,ip,sym"],
        None,
    )?;
    let profile = profile_totals(&script)?;
    let mut out = profile_table(&profile.categories, n - PROFILE_WARMUP);
    out.push_str(&user_functions_table(
        &profile.user_functions,
        n - PROFILE_WARMUP,
    ));
    Ok(out)
}

/// What [`profile_totals`] adds up, in CPU nanoseconds.
struct Profile {
    /// By (command, category).
    categories: BTreeMap<(String, &'static str), u64>,
    /// By (command, function) for the samples taken in user space, by the
    /// function the sample's address is in (its own time only: the binaries
    /// keep no frame pointers, so a user-space chain stops at its first
    /// frame).
    user_functions: BTreeMap<(String, String), u64>,
}

/// Commands whose user-space functions [`user_functions_table`] lists.
const PROFILED_FUNCTIONS_OF: [usize; 2] = [0, 5];
/// Functions listed per command.
const PROFILED_FUNCTIONS: usize = 25;

/// The user-space functions our samples fell in, most CPU first, when the
/// binary has its symbols (`cargo xtask bench --profile --symbols`); empty
/// otherwise.
fn user_functions_table(functions: &BTreeMap<(String, String), u64>, containers: u32) -> String {
    let named = |symbol: &str| !symbol.is_empty() && symbol != "[unknown]";
    if !functions.keys().any(|(_, symbol)| named(symbol)) {
        return String::new();
    }
    let mut out = String::new();
    for index in PROFILED_FUNCTIONS_OF {
        let (comm, heading) = PROFILED[index];
        let mut rows: Vec<(&str, u64)> = functions
            .iter()
            .filter(|((c, _), _)| c == comm)
            .map(|((_, symbol), ns)| (symbol.as_str(), *ns))
            .collect();
        let total: u64 = rows.iter().map(|(_, ns)| ns).sum();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let _ = writeln!(
            out,
            "\nUser space of {heading}, by function (its own time; {:.2} ms per container in all):\n\n\
             | function | CPU ms per container | share of user space |\n|---|---|---|",
            total as f64 / 1e6 / containers as f64
        );
        for (symbol, ns) in rows.iter().take(PROFILED_FUNCTIONS) {
            let _ = writeln!(
                out,
                "| `{}` | {:.3} | {:.1}% |",
                symbol.replace('|', "\\|"),
                *ns as f64 / 1e6 / containers as f64,
                100.0 * *ns as f64 / total.max(1) as f64
            );
        }
    }
    out
}

/// CPU nanoseconds by (command, category), from `perf script -F
/// comm,period,ip,sym`: a sample is a line `COMM PERIOD` followed by its
/// call chain, one indented `ADDRESS SYMBOL` line per frame, leaf first
/// (a sample without a chain has its one frame on the same line). A
/// sample whose line does not read so is an error, not a sample lost.
fn profile_totals(script: &str) -> Res<Profile> {
    let mut totals = BTreeMap::new();
    let mut user_functions = BTreeMap::new();
    let mut flush = |head: &mut Option<(String, u64)>, frames: &mut Vec<(bool, String)>| {
        if let Some((comm, period)) = head.take() {
            if PROFILED.iter().any(|(name, _)| *name == comm) {
                let category = profile_category(frames);
                if category == "user space" {
                    let leaf = frames.first().map(|(_, f)| f.clone()).unwrap_or_default();
                    *user_functions.entry((comm.clone(), leaf)).or_insert(0) += period;
                }
                *totals.entry((comm, category)).or_insert(0) += period;
            }
        }
        frames.clear();
    };
    // `ADDRESS SYMBOL`, the symbol the rest of the line (a Rust symbol
    // may hold spaces: `<String as core::fmt::Write>::write_str`).
    let frame = |text: &str| {
        let (address, symbol) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
        (address.starts_with("ffff"), symbol.trim().to_string())
    };
    let mut head = None;
    let mut frames = Vec::new();
    for line in script.lines() {
        if line.trim().is_empty() {
            flush(&mut head, &mut frames);
        } else if line.starts_with(char::is_whitespace) {
            frames.push(frame(line));
        } else {
            flush(&mut head, &mut frames);
            let comm = line
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            let rest = line
                .trim_start_matches(|c: char| !c.is_whitespace())
                .trim_start();
            let (period, frame_text) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
            let period = period
                .parse()
                .map_err(|_| format!("perf script: no period in {line:?}"))?;
            if !frame_text.trim().is_empty() {
                frames.push(frame(frame_text));
            }
            head = Some((comm, period));
        }
    }
    flush(&mut head, &mut frames);
    Ok(Profile {
        categories: totals,
        user_functions,
    })
}

/// What a sample was doing, from its call chain (`(in the kernel, symbol)`,
/// leaf first): the system call it is in, a page fault, user space.
fn profile_category(frames: &[(bool, String)]) -> &'static str {
    let has = |name: &str| frames.iter().any(|(_, f)| f == name);
    let has_prefix = |prefix: &str| frames.iter().any(|(_, f)| f.starts_with(prefix));
    if let Some(at) = frames.iter().position(|(_, f)| f == "do_syscall_64") {
        // The system call's own function is the frame below the dispatcher
        // (`x64_sys_call` on newer kernels).
        let call = frames[..at]
            .iter()
            .rev()
            .map(|(_, f)| f.as_str())
            .find(|f| *f != "x64_sys_call")
            .unwrap_or("");
        // Its name as the kernel's wrappers spell it, or a helper's
        // reached by a tail call (`__sys_sendmsg`, `do_sys_openat2`).
        let call = [
            "__x64_sys_",
            "__se_sys_",
            "__do_sys_",
            "__sys_",
            "do_sys_",
            "ksys_",
        ]
        .iter()
        .fold(call, |name, prefix| name.trim_start_matches(prefix));
        return match call {
            c if c.contains("execve") => "process: exec",
            "exit" | "exit_group" => "process: exit",
            // RTM_NEWLINK also sets a link up (`do_setlink`): a create
            // is one that reaches the link's creation.
            "sendto" | "sendmsg"
                if has("rtnl_create_link")
                    || has("rtnl_newlink_create")
                    || has_prefix("ipvlan_link_new") =>
            {
                "netlink: create the link"
            }
            "sendto" | "sendmsg" if has("rtnl_getlink") => "netlink: look a link up",
            "sendto" | "sendmsg" => "netlink: other requests (address, up, route)",
            "recvfrom" | "recvmsg" => "netlink: receive",
            "openat" | "openat2" if has("ext4_create") => "files: create (`openat` with `O_CREAT`)",
            "openat" | "openat2" if has_prefix("proc_") => "files: open under /proc",
            "openat" | "openat2" | "open" => "files: open",
            "symlink" | "symlinkat" => "files: symlink",
            "mknodat" => "files: mknod",
            "mkdir" | "mkdirat" | "chmod" | "fchmodat" | "fchmod" => "files: mkdir, chmod",
            "unlink" | "unlinkat" | "rmdir" | "rename" | "renameat" | "renameat2" => {
                "files: unlink, rename"
            }
            "write" | "pwrite64" if has("proc_sys_call_handler") => "sysctl write",
            "write" | "pwrite64" => "files: write",
            "read" | "pread64" => "files: read",
            "fsync" | "fdatasync" | "syncfs" => "files: flush (CPU only)",
            "newstat" | "newlstat" | "newfstat" | "newfstatat" | "statx" | "readlink"
            | "readlinkat" | "getdents64" => "files: stat, readlink",
            "setns" => "namespaces: setns",
            _ => "other system calls",
        };
    }
    if has_prefix("asm_exc_page_fault") || has("exc_page_fault") || has("handle_mm_fault") {
        return "process: page faults";
    }
    if has("do_exit") || has("do_group_exit") {
        return "process: exit";
    }
    if frames.first().is_some_and(|(kernel, _)| *kernel) {
        return "kernel, other (interrupts, scheduling)";
    }
    "user space"
}

fn profile_table(totals: &BTreeMap<(String, &'static str), u64>, containers: u32) -> String {
    let ms = |comm: &str, category: &'static str| {
        totals
            .get(&(comm.to_string(), category))
            .copied()
            .unwrap_or(0) as f64
            / 1e6
            / containers as f64
    };
    let mut categories: Vec<&'static str> = totals.keys().map(|(_, c)| *c).collect();
    categories.sort_unstable();
    categories.dedup();
    let ours = PROFILED[0].0;
    categories.sort_by(|a, b| ms(ours, b).total_cmp(&ms(ours, a)));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "CPU ms per container, from `perf record -a -g -e cpu-clock -F {PROFILE_HZ}` over \
         {containers} containers of each kind, run in turn container by container, and \
         after every {PROFILE_BATCH} the same number as one batch of each batch kind; every \
         sample of their processes (by name) is put in a category by its call chain. CPU \
         time only: the wait for a flush, or for another process, is in no row.\n"
    );
    let mut head = String::from("| category |");
    let mut rule = String::from("|---|");
    let headings = PROFILED.iter().map(|(_, heading)| *heading);
    for heading in headings.chain(PROFILE_DIFFERENCES.iter().map(|(_, _, heading)| *heading)) {
        let _ = write!(head, " {heading} |");
        rule.push_str("---|");
    }
    let _ = writeln!(out, "{head}\n{rule}");
    let mut sums = [0.0; PROFILED.len()];
    for &category in &categories {
        let mut line = format!("| {category} |");
        for (k, (comm, _)) in PROFILED.iter().enumerate() {
            let v = ms(comm, category);
            sums[k] += v;
            let _ = write!(line, " {v:.2} |");
        }
        for (from, to, _) in PROFILE_DIFFERENCES {
            let difference = ms(PROFILED[from].0, category) - ms(PROFILED[to].0, category);
            let _ = write!(line, " {difference:+.2} |");
        }
        line.push('\n');
        out.push_str(&line);
    }
    let mut total = String::from("| **total** |");
    for sum in sums {
        let _ = write!(total, " **{sum:.2}** |");
    }
    for (from, to, _) in PROFILE_DIFFERENCES {
        let _ = write!(total, " **{:+.2}** |", sums[from] - sums[to]);
    }
    total.push('\n');
    out.push_str(&total);
    out
}

// ---------------------------------------------------------------------------
// Instructions: what each command executes, counted by callgrind, ours and
// the floor's side by side. Unlike time, the count is the same run to run
// and host to host, so a change of a few percent shows.

/// The two batch sizes whose difference, divided by theirs, is what one
/// more target of a batch executes (the process's start and the batch's
/// fixed work cancel out).
const INSTRUCTION_BATCHES: [u32; 2] = [10, 20];

/// The instructions `cmd` executes, its whole process: `valgrind
/// --tool=callgrind`'s count (`I refs`), the profile itself thrown away.
fn instructions_of(valgrind: &str, cmd: &Cmd) -> Res<u64> {
    let mut words = cmd.launch_words();
    let program = words.iter().position(|w| w == "--").map_or(0, |at| at + 1);
    words.splice(
        program..program,
        [
            valgrind,
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
        ]
        .map(String::from),
    );
    let (mut command, _) = launched_command(&words)?;
    let out = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| format!("{valgrind}: {e}"))?;
    let log = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "`{}` failed under callgrind ({}): {log}",
            cmd.argv.join(" "),
            out.status
        ));
    }
    parse_instructions(&log).ok_or_else(|| format!("callgrind printed no count: {log}"))
}

/// The count in callgrind's summary line `==PID== I   refs:      1,234`.
fn parse_instructions(log: &str) -> Option<u64> {
    let line = log.lines().find(|l| l.contains("I   refs:"))?;
    let figure = line.split("I   refs:").nth(1)?.trim().replace(',', "");
    figure.parse().ok()
}

/// One row of the instruction table: ours and the floor's counts.
struct Counted {
    what: String,
    ours: u64,
    floor: u64,
}

/// The instruction counts: a single attach and detach through our CLI and
/// our CNI mode (`ipam.type: ipvlan`) against the per-process floor's, and
/// one more target of a batch through the bulk API against one more
/// container of the one-process floor's, each after a few attaches of its
/// kind (the store and the namespaces in use).
fn instruction_counts(config: &Config, valgrind: &str) -> Res<String> {
    let [small, large] = INSTRUCTION_BATCHES;
    // Containers 1-5: attached first, not counted; 6: the single commands;
    // 11 onwards: the batches.
    let (warm, single, first_batch) = (5, 6, 11);
    let last = first_batch + small + large - 1;
    let (ours, cni, floor) = (OURS_SITE, CNI_OURS_SITE, FLOOR_SITE);
    for site in [ours, cni, floor] {
        make_namespaces(site.ns, 1, last)?;
    }
    let mut warming = vec![
        bulk_attach(config, ours, 1, warm),
        floor_cmd(config, floor, "attach", 1, warm),
    ];
    warming.extend((1..=warm).flat_map(|i| ours_cni_attach(config, cni, i)));
    for cmd in &warming {
        run_launched(&cmd.launch_words())?;
    }
    let count = |cmds: Vec<Cmd>| -> Res<u64> {
        cmds.iter().map(|cmd| instructions_of(valgrind, cmd)).sum()
    };
    let floor_attach = count(floor_pp_attach(config, floor, single))?;
    let floor_detach = count(floor_pp_detach(config, floor, single))?;
    let mut rows = Vec::new();
    type Commands = fn(&Config, Site, u32) -> Vec<Cmd>;
    let singles: [(&str, Commands, Site, u64); 4] = [
        ("attach: `network connect`", cli_attach, ours, floor_attach),
        (
            "detach: `network disconnect`",
            cli_detach,
            ours,
            floor_detach,
        ),
        ("attach: CNI ADD", ours_cni_attach, cni, floor_attach),
        ("detach: CNI DEL", ours_cni_detach, cni, floor_detach),
    ];
    for (what, commands, site, floor) in singles {
        let ours = count(commands(config, site, single))?;
        let what = what.to_string();
        rows.push(Counted { what, ours, floor });
    }
    // Each batch: ours and the floor's attach, then their detach.
    let mut batches = Vec::new();
    let mut first = first_batch;
    for n in INSTRUCTION_BATCHES {
        let (a, b) = (first, first + n - 1);
        let counts = [
            count(vec![bulk_attach(config, ours, a, b)])?,
            count(vec![floor_cmd(config, floor, "attach", a, b)])?,
            count(vec![bulk_detach(config, ours, a, b)])?,
            count(vec![floor_cmd(config, floor, "detach", a, b)])?,
        ];
        for (kind, at) in [("attach", 0), ("detach", 2)] {
            rows.push(Counted {
                what: format!("a batch of {n}, {kind} (the whole process)"),
                ours: counts[at],
                floor: counts[at + 1],
            });
        }
        batches.push(counts);
        first += n;
    }
    let per_target = |k: usize| (batches[1][k] - batches[0][k]) / u64::from(large - small);
    for (kind, at) in [("attach", 0), ("detach", 2)] {
        rows.push(Counted {
            what: format!("one more target of a batch, {kind} (from {small} to {large})"),
            ours: per_target(at),
            floor: per_target(at + 1),
        });
    }
    Ok(instruction_table(&rows))
}

fn instruction_table(rows: &[Counted]) -> String {
    let mut out = String::from(
        "Instructions executed (user space, the whole process: `valgrind --tool=callgrind`'s \
         count), ours against the raw-netlink floor's (one process per container for the \
         single commands, one process for all for the batches); the kernel's work is in no \
         figure.\n\n| command | ours | floor | ours / floor |\n|---|---|---|---|\n",
    );
    for row in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.2}x |",
            row.what,
            thousands(row.ours),
            thousands(row.floor),
            row.ours as f64 / row.floor.max(1) as f64
        );
    }
    out
}

/// `n` with a comma every three digits.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (at, digit) in digits.chars().enumerate() {
        if at > 0 && (digits.len() - at) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

// ---------------------------------------------------------------------------
// The orchestrator.

#[derive(Clone)]
struct Config {
    /// This program, for the floor and the launcher.
    me: String,
    ipvlan: String,
    /// Where the state directory and the CNI data live (ext4 on the disk).
    disk: String,
    /// The reference CNI plugins' directory, if present.
    cni: Option<String>,
    small: u32,
    large: Option<u32>,
    parent_index: u32,
    /// The size of one of our endpoint records (a probe connect's), the
    /// durable floor's file size.
    record_bytes: u64,
    /// `perf` in the guest: profile instead of the rows (see [`cpu_profile`]).
    perf: Option<String>,
    /// Valgrind in the guest: instruction counts instead of the rows (see
    /// [`instruction_counts`]).
    valgrind: Option<String>,
}

/// One command to launch.
struct Cmd {
    argv: Vec<String>,
    env: Vec<(String, String)>,
    stdin: Option<String>,
}

impl Cmd {
    fn new(argv: &[&str]) -> Cmd {
        Cmd {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            stdin: None,
        }
    }

    /// The command as the launcher's arguments read it
    /// ([`launched_command`]).
    fn launch_words(&self) -> Vec<String> {
        let mut words = Vec::new();
        for (k, v) in &self.env {
            words.extend(["--env".to_string(), format!("{k}={v}")]);
        }
        if let Some(file) = &self.stdin {
            words.extend(["--stdin".to_string(), file.clone()]);
        }
        words.push("--".to_string());
        words.extend(self.argv.iter().cloned());
        words
    }
}

/// What one launched command reported.
struct Launched {
    wall_ms: f64,
    maxrss_kib: u64,
    /// The child's `ru_minflt` and `ru_majflt` (from the same `wait4`).
    minflt: u64,
    majflt: u64,
    stdout: String,
}

/// `WALL-NS MAXRSS-KIB MINFLT MAJFLT`, the launcher's report after `LAUNCH `.
fn parse_report(report: &str) -> Option<[u64; 4]> {
    let fields: Vec<u64> = report
        .split_whitespace()
        .map(|w| w.parse().ok())
        .collect::<Option<_>>()?;
    fields.try_into().ok()
}

fn launch_cmd(config: &Config, cmd: &Cmd) -> Res<Launched> {
    let mut c = Command::new(&config.me);
    c.arg("launch").args(cmd.launch_words());
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("launch: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut report = None;
    let mut other = String::new();
    for line in stderr.lines() {
        match line.strip_prefix("LAUNCH ") {
            Some(rest) => report = Some(rest.to_string()),
            None => {
                other.push_str(line);
                other.push('\n');
            }
        }
    }
    let line = cmd.argv.join(" ");
    if !out.status.success() {
        return Err(format!(
            "`{line}` failed ({}): {}",
            out.status,
            other.trim()
        ));
    }
    let report = report.ok_or_else(|| format!("`{line}`: the launcher printed no report"))?;
    let Some([wall_ns, maxrss, minflt, majflt]) = parse_report(&report) else {
        return Err(format!("`{line}`: bad launcher report {report:?}"));
    };
    Ok(Launched {
        wall_ms: wall_ns as f64 / 1e6,
        maxrss_kib: maxrss,
        minflt,
        majflt,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    })
}

/// Runs a command directly (setup, checks); its stdout; fails unless it exits 0.
fn sh(argv: &[&str], stdin: Option<&str>) -> Res<String> {
    sh_env(argv, stdin, &[])
}

/// [`sh`] with variables added to the environment.
fn sh_env(argv: &[&str], stdin: Option<&str>, env: &[(String, String)]) -> Res<String> {
    let mut c = Command::new(argv[0]);
    c.args(&argv[1..]);
    c.envs(env.iter().map(|(k, v)| (k, v)));
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = c.spawn().map_err(|e| format!("{}: {e}", argv[0]))?;
    if let Some(text) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().ok_or("no stdin pipe")?;
        pipe.write_all(text.as_bytes())
            .map_err(|e| format!("{}: {e}", argv[0]))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{}: {e}", argv[0]))?;
    if !out.status.success() {
        return Err(format!(
            "`{}` failed ({}): {}",
            argv.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

const IP: &str = "/usr/sbin/ip";

fn make_namespaces(ns: &str, first: u32, last: u32) -> Res {
    let batch: String = (first..=last)
        .map(|i| format!("netns add {}\n", ns_name(ns, i)))
        .collect();
    sh(&[IP, "-batch", "-"], Some(&batch)).map(|_| ())
}

/// Removes the namespaces, then waits for the kernel to finish with them:
/// a namespace's teardown is deferred to a kernel worker (about 20 ms each
/// under emulation), so a thousand removed ones would otherwise compete with
/// the next row for the guest's CPUs.
fn remove_namespaces(ns: &str, first: u32, last: u32) -> Res {
    let batch: String = (first..=last)
        .map(|i| format!("netns del {}\n", ns_name(ns, i)))
        .collect();
    sh(&[IP, "-batch", "-"], Some(&batch))?;
    wait_until_idle()
}

/// The guest's busy and total CPU time so far (`/proc/stat`, in ticks).
fn cpu_ticks() -> Res<(u64, u64)> {
    let stat = fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
    let line = stat.lines().next().ok_or("/proc/stat is empty")?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|t| t.parse().map_err(|e| format!("/proc/stat: {line}: {e}")))
        .collect::<Res<_>>()?;
    // user nice system idle iowait ...: idle and iowait are not work.
    let idle = ticks.get(3).copied().unwrap_or(0) + ticks.get(4).copied().unwrap_or(0);
    let total: u64 = ticks.iter().sum();
    Ok((total - idle, total))
}

/// Waits until a half-second passes with the guest's CPUs at least 90% idle
/// (at most five minutes; then says so and goes on).
fn wait_until_idle() -> Res {
    let start = Instant::now();
    let mut before = cpu_ticks()?;
    while start.elapsed() < Duration::from_secs(300) {
        std::thread::sleep(Duration::from_millis(500));
        let now = cpu_ticks()?;
        let (busy, total) = (now.0 - before.0, now.1 - before.1);
        if total > 0 && busy * 10 <= total {
            return Ok(());
        }
        before = now;
    }
    eprintln!("attach: the guest was still busy 300 s after removing namespaces");
    Ok(())
}

/// Reads the kernel back: an attached container has `eth0` up with an
/// address of the site's subnet (a /20) and a default route via its
/// gateway; a detached one has nothing but `lo`.
fn check_container(site: Site, i: u32, attached: bool) -> Res {
    let subnet = site.subnet;
    let ns = ns_name(site.ns, i);
    let links = sh(&[IP, "-n", &ns, "-o", "link", "show"], None)?;
    if !attached {
        if links.lines().count() != 1 || !links.contains(": lo:") {
            return Err(format!("{ns}: after detach, links other than lo:\n{links}"));
        }
        return Ok(());
    }
    let addr = sh(
        &[
            IP, "-n", &ns, "-4", "-o", "addr", "show", "dev", "eth0", "up",
        ],
        None,
    )?;
    let route = sh(&[IP, "-n", &ns, "route", "show", "default"], None)?;
    let gateway = format!("default via {} dev eth0", ipv4(subnet + 1));
    let net = format!("{}/{PREFIX_LEN}", ipv4(subnet));
    let inside = addr
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| {
            let a: std::net::Ipv4Addr = a.split('/').next()?.parse().ok()?;
            Some(u32::from(a) >> (32 - PREFIX_LEN) == subnet >> (32 - PREFIX_LEN))
        });
    if inside != Some(true) || !route.contains(&gateway) {
        return Err(format!(
            "{ns}: after attach, expected eth0 up with an address of {net} and \
             `{gateway}`; got:\n{addr}{route}"
        ));
    }
    Ok(())
}

/// How a row attaches and detaches.
enum Method {
    /// One process for all containers, which times each itself (`T` lines).
    OneProcess,
    /// These commands per container, each timed by the launcher (the
    /// container's time is their sum).
    PerContainer {
        attach: fn(&Config, Site, u32) -> Vec<Cmd>,
        detach: fn(&Config, Site, u32) -> Vec<Cmd>,
    },
    /// One command for containers `first..=last`, timed by the launcher:
    /// each container's time is the command's divided by their number (so
    /// median, p90 and mean are that one figure).
    Batch {
        attach: fn(&Config, Site, u32, u32) -> Cmd,
        detach: fn(&Config, Site, u32, u32) -> Cmd,
    },
}

/// One row of the table.
struct Row {
    name: &'static str,
    method: Method,
    /// Its namespaces and the subnet its containers get addresses of: our
    /// CNI networks need their own, as the state directory refuses a
    /// network overlapping the CLI's; rows measured together need their own.
    site: Site,
}

/// A row's figures.
#[derive(Default)]
struct Figures {
    attach: Vec<f64>,
    detach: Vec<f64>,
    /// Each command's peak RSS in KiB (the one-process floor: its one run).
    rss_attach: Vec<f64>,
    rss_detach: Vec<f64>,
    /// Minor and major page faults per container (`ru_minflt`, `ru_majflt`
    /// of its commands, summed; a command for many containers: its count
    /// divided by their number).
    minflt_attach: Vec<f64>,
    minflt_detach: Vec<f64>,
    majflt_attach: Vec<f64>,
    majflt_detach: Vec<f64>,
    syscalls: Option<Syscalls>,
    /// Per-process floor: the work each process timed itself (its `T` line),
    /// without its start, exit and the wait for it.
    work_attach: Vec<f64>,
    work_detach: Vec<f64>,
    /// Measured container by container together with other rows (the
    /// per-process floor among them), so their ratios share the load.
    together: bool,
}

fn floor_cmd(config: &Config, site: Site, op: &str, first: u32, last: u32) -> Cmd {
    Cmd::new(&[
        &config.me,
        "floor",
        op,
        &config.parent_index.to_string(),
        site.ns,
        &ipv4(site.subnet),
        &first.to_string(),
        &last.to_string(),
    ])
}

/// The command for container `i` of a floor above the per-process one: the
/// per-process floor's, plus `flag` (`--durable`: the durable write, or
/// removal, of a record-sized file named after the container; `--behaviour`:
/// the behaviour's share, see [`behaviour_begin`]) with its files in `dir`
/// on the state directory's disk.
fn floor_files_cmd(c: &Config, site: Site, op: &str, i: u32, flag: &str, dir: &str) -> Vec<Cmd> {
    let mut cmd = floor_cmd(c, site, op, i, i);
    cmd.argv.extend([
        flag.to_string(),
        format!("{}/{dir}", c.disk),
        c.record_bytes.to_string(),
    ]);
    vec![cmd]
}

fn behaviour_attach(c: &Config, site: Site, i: u32) -> Vec<Cmd> {
    floor_files_cmd(c, site, "attach", i, "--behaviour", BEHAVIOUR_DIR)
}

fn behaviour_detach(c: &Config, site: Site, i: u32) -> Vec<Cmd> {
    floor_files_cmd(c, site, "detach", i, "--behaviour", BEHAVIOUR_DIR)
}

fn durable_attach(c: &Config, site: Site, i: u32) -> Vec<Cmd> {
    floor_files_cmd(c, site, "attach", i, "--durable", DURABLE_DIR)
}

fn durable_detach(c: &Config, site: Site, i: u32) -> Vec<Cmd> {
    floor_files_cmd(c, site, "detach", i, "--durable", DURABLE_DIR)
}

fn floor_pp_attach(c: &Config, site: Site, i: u32) -> Vec<Cmd> {
    vec![floor_cmd(c, site, "attach", i, i)]
}

fn floor_pp_detach(c: &Config, site: Site, i: u32) -> Vec<Cmd> {
    vec![floor_cmd(c, site, "detach", i, i)]
}

/// The announcing floor's attach (its detach is the per-process floor's).
fn announce_attach(c: &Config, site: Site, i: u32) -> Vec<Cmd> {
    let mut cmd = floor_cmd(c, site, "attach", i, i);
    cmd.argv.push("--announce".to_string());
    vec![cmd]
}

fn cli_attach(c: &Config, site: Site, i: u32) -> Vec<Cmd> {
    vec![Cmd::new(&[
        &c.ipvlan,
        "network",
        "connect",
        NETWORK,
        &ns_path(site.ns, i),
    ])]
}

fn cli_detach(c: &Config, site: Site, i: u32) -> Vec<Cmd> {
    vec![Cmd::new(&[
        &c.ipvlan,
        "network",
        "disconnect",
        NETWORK,
        &ns_path(site.ns, i),
    ])]
}

/// `ipvlan network connect NET c1 ... cN`: one batch, the library's
/// `Manager::connect_many` behind one process.
fn bulk_attach(c: &Config, site: Site, first: u32, last: u32) -> Cmd {
    bulk_cmd(c, site, "connect", first, last)
}

fn bulk_detach(c: &Config, site: Site, first: u32, last: u32) -> Cmd {
    bulk_cmd(c, site, "disconnect", first, last)
}

fn bulk_cmd(c: &Config, site: Site, op: &str, first: u32, last: u32) -> Cmd {
    let mut argv = vec![
        c.ipvlan.clone(),
        "network".into(),
        op.into(),
        NETWORK.into(),
    ];
    argv.extend((first..=last).map(|i| ns_path(site.ns, i)));
    Cmd {
        argv,
        env: Vec::new(),
        stdin: None,
    }
}

fn iproute2_attach(_: &Config, site: Site, i: u32) -> Vec<Cmd> {
    let ns = ns_name(site.ns, i);
    let index = (INDEX_BASE + i).to_string();
    let addr = format!("{}/{PREFIX_LEN}", ipv4(container_addr(site.subnet, i)));
    let gw = ipv4(site.subnet + 1);
    vec![
        Cmd::new(&[
            IP, "link", "add", "link", PARENT, "name", "eth0", "index", &index, "netns", &ns,
            "type", "ipvlan", "mode", "l2",
        ]),
        Cmd::new(&[IP, "-n", &ns, "addr", "add", &addr, "dev", "eth0"]),
        Cmd::new(&[IP, "-n", &ns, "link", "set", "eth0", "up"]),
        Cmd::new(&[IP, "-n", &ns, "route", "add", "default", "via", &gw]),
    ]
}

fn iproute2_detach(_: &Config, site: Site, i: u32) -> Vec<Cmd> {
    vec![Cmd::new(&[
        IP,
        "-n",
        &ns_name(site.ns, i),
        "link",
        "del",
        "eth0",
    ])]
}

/// One CNI request for container `i`, as a runtime makes it: `program`
/// with the spec's environment, the config `conf` (a file of the disk) on
/// stdin.
fn cni_request(
    c: &Config,
    site: Site,
    program: &str,
    conf: &str,
    command: &str,
    i: u32,
) -> Vec<Cmd> {
    let cni = c.cni.clone().unwrap_or_default();
    let mut cmd = Cmd::new(&[program]);
    cmd.env = [
        ("CNI_COMMAND", command.to_string()),
        ("CNI_CONTAINERID", format!("bench-{}", ns_name(site.ns, i))),
        ("CNI_NETNS", ns_path(site.ns, i)),
        ("CNI_IFNAME", "eth0".to_string()),
        ("CNI_PATH", cni),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    cmd.stdin = Some(format!("{}/{conf}", c.disk));
    vec![cmd]
}

fn cni_cmd(c: &Config, site: Site, command: &str, i: u32) -> Vec<Cmd> {
    let program = format!("{}/ipvlan", c.cni.clone().unwrap_or_default());
    cni_request(c, site, &program, CNI_REF_CONF, command, i)
}

fn cni_attach(c: &Config, site: Site, i: u32) -> Vec<Cmd> {
    cni_cmd(c, site, "ADD", i)
}

fn cni_detach(c: &Config, site: Site, i: u32) -> Vec<Cmd> {
    cni_cmd(c, site, "DEL", i)
}

/// Our binary in CNI mode (it is one when `CNI_COMMAND` is set), addresses
/// from our own allocator in the process.
fn ours_cni_attach(c: &Config, site: Site, i: u32) -> Vec<Cmd> {
    cni_request(c, site, &c.ipvlan, CNI_OURS_CONF, "ADD", i)
}

fn ours_cni_detach(c: &Config, site: Site, i: u32) -> Vec<Cmd> {
    cni_request(c, site, &c.ipvlan, CNI_OURS_CONF, "DEL", i)
}

/// Our binary in CNI mode, addresses from the reference `host-local`
/// started from `CNI_PATH` (one more process per request).
fn ours_cni_hl_attach(c: &Config, site: Site, i: u32) -> Vec<Cmd> {
    cni_request(c, site, &c.ipvlan, CNI_OURS_HL_CONF, "ADD", i)
}

fn ours_cni_hl_detach(c: &Config, site: Site, i: u32) -> Vec<Cmd> {
    cni_request(c, site, &c.ipvlan, CNI_OURS_HL_CONF, "DEL", i)
}

/// The configs of the CNI rows, files of the disk: the reference plugin's
/// (host-local), ours with `ipam.type: ipvlan`, ours with host-local.
const CNI_REF_CONF: &str = "cni.conf";
const CNI_OURS_CONF: &str = "cni-ours.conf";
const CNI_OURS_HL_CONF: &str = "cni-ours-host-local.conf";
/// Our CNI networks: subnets of their own (10.11.0.0/20, 10.12.0.0/20),
/// since the state directory refuses one overlapping `benchnet`'s.
const CNI_OURS_NETWORK: &str = "bench-ours";
const CNI_OURS_SUBNET: u32 = 0x0a0b_0000;
const CNI_OURS_HL_NETWORK: &str = "bench-ours-host-local";
const CNI_OURS_HL_SUBNET: u32 = 0x0a0c_0000;

/// A conflist's plugin on `PARENT`, mode l2, a default route via the
/// subnet's gateway, with the `ipam` type and keys given.
fn cni_conf(name: &str, subnet: u32, ipam_type: &str, ipam_extra: &str) -> String {
    format!(
        r#"{{"cniVersion":"1.0.0","name":"{name}","type":"ipvlan","master":"{PARENT}","mode":"l2","ipam":{{"type":"{ipam_type}","subnet":"{}/{PREFIX_LEN}","gateway":"{}","routes":[{{"dst":"0.0.0.0/0"}}]{ipam_extra}}}}}"#,
        ipv4(subnet),
        ipv4(subnet + 1),
    )
}

fn parse_times(stdout: &str) -> Res<Vec<f64>> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("T "))
        .map(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|ns| ns.parse::<f64>().ok())
                .map(|ns| ns / 1e6)
                .ok_or_else(|| format!("bad floor line {l:?}"))
        })
        .collect()
}

/// One row's figures of one phase (attach or detach) while it is measured.
#[derive(Default)]
struct Phase {
    times: Vec<f64>,
    rss: Vec<f64>,
    minflt: Vec<f64>,
    majflt: Vec<f64>,
    /// The per-process floors' own work (`T` lines).
    work: Vec<f64>,
}

/// Container `i`'s link has `arp_notify` as `want` says: on for the
/// announcing floor's, off for the per-process floor's (the kernel's
/// default, which the announcing floor's check would pass by otherwise).
fn check_arp_notify(row: &str, site: Site, i: u32, want: bool) -> Res {
    let ns = ns_name(site.ns, i);
    let setting = "/proc/sys/net/ipv4/conf/eth0/arp_notify";
    let value = sh(&[IP, "netns", "exec", &ns, "cat", setting], None)?;
    let wanted = if want { "1" } else { "0" };
    if value.trim() != wanted {
        return Err(format!(
            "{row}: {ns}: {setting} is {:?}, not {wanted}",
            value.trim()
        ));
    }
    Ok(())
}

/// The behaviour floor's view of container `i`: its `hosts` link there
/// after attach, the directory gone after detach.
fn check_behaviour_view(site: Site, i: u32, attached: bool) -> Res {
    let view = behaviour_view(site.ns, i);
    let link = fs::symlink_metadata(format!("{view}/hosts"));
    match (link, fs::symlink_metadata(&view), attached) {
        (Ok(m), _, true) if m.file_type().is_symlink() => Ok(()),
        (_, Err(e), false) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        (link, dir, _) => Err(format!(
            "{BEHAVIOUR_ROW}: {view} after {}: found {dir:?}, its hosts {link:?}",
            if attached { "attach" } else { "detach" },
        )),
    }
}

/// The durable floor's file of container `i`: there, of the record's size,
/// after attach; gone after detach.
fn check_durable_file(config: &Config, site: Site, i: u32, attached: bool) -> Res {
    let path = format!("{}/{DURABLE_DIR}/{}", config.disk, ns_name(site.ns, i));
    match (fs::metadata(&path), attached) {
        (Ok(m), true) if m.len() == config.record_bytes => Ok(()),
        (Err(e), false) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        (found, _) => Err(format!(
            "{DURABLE_ROW}: {path} after {}: expected {}, found {found:?}",
            if attached { "attach" } else { "detach" },
            if attached {
                format!("{} bytes", config.record_bytes)
            } else {
                "no file".to_string()
            },
        )),
    }
}

/// Attaches then detaches containers 1..=n of each row (fresh namespaces),
/// checking the kernel's state after each phase. Rows given together (all
/// per-container) advance together: container `i` of each row in turn, before
/// container `i + 1` of any, so they see the host's load at the same moments
/// and their ratios do not drift with it; the order changes with `i` so that
/// each row runs at each position, and after each other row, equally often
/// ([`BalancedOrder`]) over each period of `k (k - 1)` rounds for `k` rows:
/// exactly so when `n` is a multiple of it (20 for five rows, which 100 and
/// 1,000 are), nearly so otherwise (30 for six: at N = 100 each row holds
/// each position 15 to 19 times and follows each other row 18 to 22 times).
fn measure(config: &Config, rows: &[&Row], n: u32) -> Res<Vec<Figures>> {
    let per_container = rows
        .iter()
        .all(|r| matches!(r.method, Method::PerContainer { .. }));
    if rows.len() != 1 && !per_container {
        return Err("only per-container rows are measured together".into());
    }
    for row in rows {
        make_namespaces(row.site.ns, 1, n)?;
    }
    let mut figures: Vec<Figures> = rows
        .iter()
        .map(|_| Figures {
            together: rows.len() > 1,
            ..Figures::default()
        })
        .collect();
    let order = BalancedOrder::new(rows.len());
    for attach in [true, false] {
        let mut phase: Vec<Phase> = rows.iter().map(|_| Phase::default()).collect();
        if per_container {
            for i in 1..=n {
                for &at in order.round(i as usize) {
                    let Method::PerContainer {
                        attach: a,
                        detach: d,
                    } = &rows[at].method
                    else {
                        unreachable!("checked above");
                    };
                    let site = rows[at].site;
                    let p = &mut phase[at];
                    let (mut ms, mut minflt, mut majflt) = (0.0, 0, 0);
                    for cmd in if attach {
                        a(config, site, i)
                    } else {
                        d(config, site, i)
                    } {
                        let out = launch_cmd(config, &cmd)?;
                        ms += out.wall_ms;
                        (minflt, majflt) = (minflt + out.minflt, majflt + out.majflt);
                        p.rss.push(out.maxrss_kib as f64);
                        p.work.extend(parse_times(&out.stdout)?);
                    }
                    p.times.push(ms);
                    p.minflt.push(minflt as f64);
                    p.majflt.push(majflt as f64);
                }
            }
        } else {
            let row = rows[0];
            let p = &mut phase[0];
            let out = match &row.method {
                Method::OneProcess => {
                    let op = if attach { "attach" } else { "detach" };
                    let out = launch_cmd(config, &floor_cmd(config, row.site, op, 1, n))?;
                    p.times = parse_times(&out.stdout)?;
                    out
                }
                Method::Batch {
                    attach: a,
                    detach: d,
                } => {
                    let cmd = if attach {
                        a(config, row.site, 1, n)
                    } else {
                        d(config, row.site, 1, n)
                    };
                    let out = launch_cmd(config, &cmd)?;
                    let share = out.wall_ms / f64::from(n);
                    p.times = vec![share; n as usize];
                    out
                }
                Method::PerContainer { .. } => unreachable!("handled above"),
            };
            p.rss.push(out.maxrss_kib as f64);
            p.minflt.push(out.minflt as f64 / f64::from(n));
            p.majflt.push(out.majflt as f64 / f64::from(n));
        }
        for ((row, f), p) in rows.iter().zip(&mut figures).zip(phase) {
            if p.times.len() != n as usize {
                return Err(format!(
                    "{}: {} times for {n} containers",
                    row.name,
                    p.times.len()
                ));
            }
            for i in [1, n] {
                check_container(row.site, i, attach).map_err(|e| format!("{}: {e}", row.name))?;
                if row.name == DURABLE_ROW {
                    check_durable_file(config, row.site, i, attach)?;
                }
                if row.name == BEHAVIOUR_ROW {
                    check_behaviour_view(row.site, i, attach)?;
                }
                if attach && [ANNOUNCE_ROW, FLOOR_PP_ROW].contains(&row.name) {
                    check_arp_notify(row.name, row.site, i, row.name == ANNOUNCE_ROW)?;
                }
            }
            if attach {
                (f.attach, f.rss_attach, f.work_attach) = (p.times, p.rss, p.work);
                (f.minflt_attach, f.majflt_attach) = (p.minflt, p.majflt);
            } else {
                (f.detach, f.rss_detach, f.work_detach) = (p.times, p.rss, p.work);
                (f.minflt_detach, f.majflt_detach) = (p.minflt, p.majflt);
            }
        }
    }
    for row in rows {
        remove_namespaces(row.site.ns, 1, n)?;
    }
    Ok(figures)
}

/// One line of the bulk API's batches launched next to the one-process
/// floor's (`bulk` and `floor`, ms per container, pair by pair, ours
/// first in the even pairs: see `batch_growth`'s turn): the median of the
/// pairs' ratios, by order and their geometric mean, which counts each
/// order alike. Nothing when no pair was measured.
fn beside_line(s: &mut String, what: &str, bulk: &[f64], floor: &[f64], why_pairs: &str) {
    let ratios: Vec<f64> = bulk.iter().zip(floor).map(|(b, f)| b / f).collect();
    let sorted_ratios = sorted(&ratios);
    let by_order =
        |first: usize| -> Vec<f64> { ratios.iter().skip(first).step_by(2).copied().collect() };
    let (ours_first, floor_first) = (median(&by_order(0)), median(&by_order(1)));
    if let (Some(low), Some(high)) = (sorted_ratios.first(), sorted_ratios.last()) {
        let _ = writeln!(
            s,
            "{what}, {} times, which goes first alternating (ms per container, medians): \
             {:.2} / {:.2}; each batch against the floor batch beside it, median {:.2}x (from \
             {low:.2}x to {high:.2}x); by order, medians: ours first {ours_first:.2}x, the \
             floor's first {floor_first:.2}x, their geometric mean {:.2}x (the figure that \
             counts each order alike); ours {}, the floor {}{why_pairs}",
            ratios.len(),
            median(bulk),
            median(floor),
            median(&ratios),
            (ours_first * floor_first).sqrt(),
            list(bulk),
            list(floor),
        );
    }
}

/// Figures in ms, two decimals each, comma-separated.
fn list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Ratios as [`list`] writes figures, each with its `x`.
fn list_ratios(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.2}x"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Times the bulk API's batch of all containers is launched next to the
/// one-process floor's batch of all: the ratio is taken over as many
/// pairs, since one floor batch alone has moved 1.6x between two boots of
/// the same build (benches/RESULTS.md), and 2.25 to 6.11 ms a container
/// within five pairs of one run. The order within a pair alternates from
/// pair to pair (the namespaces the pair before removed are still torn
/// down by the kernel in the background while the next pair's first batch
/// runs), and which goes first decides much (the second batch runs beside
/// the first one's links on the same parent: at N = 1,000, 0.37x-0.79x with
/// ours first, 1.71x-2.91x with the floor's): even, so that each order
/// counts as often, and reported by order and as the geometric mean of the
/// two orders' medians.
const BESIDE_ROUNDS: u32 = 10;

/// Batches the bulk API's growth is measured with (of `n / BATCHES` each).
const BATCHES: u32 = 10;

/// Times the bulk API's growth is measured, on fresh namespaces each time:
/// one round's figure is a quotient of four single launches (the tenth
/// batch and the floor's beside it, over the first two), whose noise on a
/// loaded host is larger than the growth it is to show.
const GROWTH_ROUNDS: u32 = 5;

/// The bulk API's growth with the endpoints already on the network: per
/// container ms of each of [`BATCHES`] batches of `n / BATCHES`, made in
/// turn (batch `k` finds `(k - 1) n / BATCHES` endpoints there), and of the
/// one-process floor's batches of the same size, each launched right after
/// (or, every other batch, right before) its bulk batch.
struct Growth {
    size: u32,
    bulk: Vec<f64>,
    floor: Vec<f64>,
    /// Per container ms of the detach of all the containers attached
    /// (one launch each, the bulk API's and the floor's, in the order of
    /// `turn`: ours first when it is even), so that a batch's detach is
    /// set against the floor's batch of the same moment, a whole batch's
    /// time against a whole batch's: one link's removal is skewed (the
    /// floor's median detach 16.24 ms, its mean 19.56, in one run), and
    /// a batch's time per container is a mean.
    bulk_detach: Vec<f64>,
    floor_detach: Vec<f64>,
}

impl Growth {
    fn new(size: u32) -> Growth {
        Growth {
            size,
            bulk: Vec::new(),
            floor: Vec::new(),
            bulk_detach: Vec::new(),
            floor_detach: Vec::new(),
        }
    }

    fn extend(&mut self, other: Growth) {
        self.bulk.extend(other.bulk);
        self.floor.extend(other.floor);
        self.bulk_detach.extend(other.bulk_detach);
        self.floor_detach.extend(other.floor_detach);
    }
}

/// Measures [`Growth`] for `bulk` against the one-process floor `floor`,
/// each on its own site, in `batches` batches of `n / batches`: every
/// batch a launched process timed from outside, ours first in batches
/// `k` where `k + turn` is even, the floor's first in the others.
fn batch_growth(
    config: &Config,
    bulk: &Row,
    floor: &Row,
    n: u32,
    batches: u32,
    turn: u32,
) -> Res<Growth> {
    let (
        Method::Batch {
            attach: bulk_attach,
            detach: bulk_detach,
        },
        Method::OneProcess,
    ) = (&bulk.method, &floor.method)
    else {
        return Err("batch growth needs a batch row and the one-process floor".into());
    };
    let size = n / batches.max(1);
    if size == 0 {
        return Err(format!("batch growth needs {batches} containers or more"));
    }
    let last = size * batches;
    for row in [bulk, floor] {
        make_namespaces(row.site.ns, 1, last)?;
    }
    let mut growth = Growth::new(size);
    for k in 0..batches {
        let (first, end) = (k * size + 1, (k + 1) * size);
        let ours = bulk_attach(config, bulk.site, first, end);
        let base = floor_cmd(config, floor.site, "attach", first, end);
        let times = (&mut growth.bulk, &mut growth.floor);
        launch_pair(config, (k + turn) % 2 == 0, (&ours, &base), size, times)?;
    }
    for attach in [true, false] {
        if !attach {
            let ours = bulk_detach(config, bulk.site, 1, last);
            let base = floor_cmd(config, floor.site, "detach", 1, last);
            let times = (&mut growth.bulk_detach, &mut growth.floor_detach);
            launch_pair(config, turn % 2 == 0, (&ours, &base), last, times)?;
        }
        for row in [bulk, floor] {
            for i in [1, last] {
                check_container(row.site, i, attach)
                    .map_err(|e| format!("{} (batches): {e}", row.name))?;
            }
        }
    }
    for row in [bulk, floor] {
        remove_namespaces(row.site.ns, 1, last)?;
    }
    Ok(growth)
}

/// Launches a bulk command and the floor's beside it (`cmds`: ours, the
/// floor's), ours first when `ours_first`, and adds each one's time per
/// container (of `containers`) to its list (`times`: ours, the floor's).
fn launch_pair(
    config: &Config,
    ours_first: bool,
    cmds: (&Cmd, &Cmd),
    containers: u32,
    times: (&mut Vec<f64>, &mut Vec<f64>),
) -> Res {
    let per_container =
        |cmd: &Cmd| -> Res<f64> { Ok(launch_cmd(config, cmd)?.wall_ms / f64::from(containers)) };
    if ours_first {
        times.0.push(per_container(cmds.0)?);
        times.1.push(per_container(cmds.1)?);
    } else {
        times.1.push(per_container(cmds.1)?);
        times.0.push(per_container(cmds.0)?);
    }
    Ok(())
}

/// The `calls` total of `strace -c` output.
fn strace_total(text: &str) -> Option<u64> {
    let line = text
        .lines()
        .rev()
        .find(|l| l.trim_end().ends_with("total"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn straced(cmd: &Cmd, out: &str) -> Res<u64> {
    // The variables go to strace, which passes them on: an `env` program in
    // between would add its own start to the count.
    let mut argv = vec!["strace", "-f", "-c", "-o", out];
    argv.extend(cmd.argv.iter().map(String::as_str));
    let stdin = match &cmd.stdin {
        Some(file) => Some(fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?),
        None => None,
    };
    sh_env(&argv, stdin.as_deref(), &cmd.env)?;
    let text = fs::read_to_string(out).map_err(|e| format!("{out}: {e}"))?;
    strace_total(&text).ok_or_else(|| format!("no total in strace output:\n{text}"))
}

/// System calls per container of one attach and one detach (untimed, on
/// fresh namespaces), all processes of the row's commands included.
fn count_syscalls(config: &Config, row: &Row) -> Res<Syscalls> {
    let out = "/tmp/bench-strace.txt";
    let (k, attach, detach) = match &row.method {
        Method::OneProcess => {
            let k = STRACE_CONTAINERS;
            (
                k,
                vec![floor_cmd(config, row.site, "attach", 1, k)],
                vec![floor_cmd(config, row.site, "detach", 1, k)],
            )
        }
        Method::PerContainer { attach, detach } => {
            (1, attach(config, row.site, 1), detach(config, row.site, 1))
        }
        Method::Batch { attach, detach } => {
            let k = STRACE_CONTAINERS;
            (
                k,
                vec![attach(config, row.site, 1, k)],
                vec![detach(config, row.site, 1, k)],
            )
        }
    };
    make_namespaces(row.site.ns, 1, k)?;
    let per_container = |cmds: &[Cmd]| -> Res<(f64, BTreeMap<String, u64>)> {
        let mut sum = 0;
        let mut by_call = BTreeMap::new();
        for cmd in cmds {
            sum += straced(cmd, out)?;
            let text = fs::read_to_string(out).map_err(|e| format!("{out}: {e}"))?;
            for (call, count) in strace_calls(&text) {
                *by_call.entry(call).or_insert(0) += count;
            }
        }
        Ok((sum as f64 / f64::from(k), by_call))
    };
    let (attach, attach_calls) = per_container(&attach)?;
    let (detach, detach_calls) = per_container(&detach)?;
    remove_namespaces(row.site.ns, 1, k)?;
    Ok(Syscalls {
        attach,
        detach,
        containers: k,
        attach_calls,
        detach_calls,
    })
}

/// System calls per container of a row, in all and by name.
#[derive(Clone)]
struct Syscalls {
    attach: f64,
    detach: f64,
    /// The containers of one process the counts by name are of (the
    /// one-process floor's and the bulk API's: several).
    containers: u32,
    attach_calls: BTreeMap<String, u64>,
    detach_calls: BTreeMap<String, u64>,
}

/// `(name, calls)` of every line of `strace -c` output.
fn strace_calls(text: &str) -> Vec<(String, u64)> {
    text.lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let name = *words.last()?;
            let calls = words.get(3)?.parse().ok()?;
            (name != "total" && words[0].parse::<f64>().is_ok()).then(|| (name.to_string(), calls))
        })
        .collect()
}

/// `a 12, b 7, ...`: the most frequent calls first.
fn by_count(calls: &BTreeMap<String, u64>) -> String {
    let mut list: Vec<(&String, &u64)> = calls.iter().collect();
    list.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    list.iter()
        .map(|(name, count)| format!("{name} {count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s
}

fn median(v: &[f64]) -> f64 {
    let s = sorted(v);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

fn p90(v: &[f64]) -> f64 {
    percentile(v, 0.9)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// A row result: figures, or why there are none.
enum Outcome {
    Measured(Box<Figures>),
    NotMeasured(&'static str),
}

/// The row of our CNI mode that the speed target is about.
const CNI_OURS_ROW: &str = "ours: CNI mode, `ipam.type: ipvlan` (in the process), ADD / DEL";

fn parse_config(args: &[String]) -> Res<Config> {
    let mut config = Config {
        me: std::env::current_exe()
            .map_err(|e| format!("current_exe: {e}"))?
            .to_string_lossy()
            .into_owned(),
        ipvlan: String::new(),
        disk: String::new(),
        cni: None,
        small: 100,
        large: Some(1000),
        parent_index: 0,
        record_bytes: 0,
        perf: None,
        valgrind: None,
    };
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        let mut value = || iter.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--ipvlan" => config.ipvlan = value()?,
            "--disk" => config.disk = value()?,
            "--cni" => config.cni = Some(value()?),
            "--perf" => config.perf = Some(value()?),
            "--valgrind" => config.valgrind = Some(value()?),
            "--small" => config.small = value()?.parse().map_err(|e| format!("--small: {e}"))?,
            "--large" => {
                let n: u32 = value()?.parse().map_err(|e| format!("--large: {e}"))?;
                config.large = (n > config.small).then_some(n);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if config.ipvlan.is_empty() || config.disk.is_empty() || config.small == 0 {
        return Err("run needs --ipvlan BINARY --disk DIR and --small N > 0".into());
    }
    Ok(config)
}

fn orchestrate(args: &[String]) -> Res {
    let mut config = parse_config(args)?;
    // The disk's files cost what they cost on a host only with the
    // checksums ext4 computes for each in hardware, as every x86-64 host
    // does: `cargo xtask` loads the module and gives the guest's CPU the
    // instruction. Refused loudly rather than measured otherwise.
    let crc32c = preferred_crc32c_driver();
    if crc32c != "crc32c-intel" {
        return Err(format!(
            "ext4 would checksum the disk's metadata with {crc32c}, not crc32c-intel \
             (is the module in the guest, and SSE 4.2 in its CPU?)"
        ));
    }
    // The host side: an eth0 of the host's own (the name our links take in
    // the containers), and the parent.
    sh(&[IP, "link", "add", "eth0", "type", "dummy"], None)?;
    sh(&[IP, "link", "add", PARENT, "type", "dummy"], None)?;
    sh(&[IP, "link", "set", PARENT, "up"], None)?;
    let index = fs::read_to_string(format!("/sys/class/net/{PARENT}/ifindex"))
        .map_err(|e| format!("{PARENT}: {e}"))?;
    config.parent_index = index.trim().parse().map_err(|e| format!("ifindex: {e}"))?;
    let subnet = format!("{}/{PREFIX_LEN}", ipv4(SUBNET));
    sh(
        &[
            &config.ipvlan,
            "network",
            "create",
            "-d",
            "ipvlan",
            &format!("--subnet={subnet}"),
            &format!("--gateway={}", ipv4(GATEWAY)),
            "-o",
            &format!("parent={PARENT}"),
            "-o",
            "ipvlan_mode=l2",
            NETWORK,
        ],
        None,
    )?;
    config.record_bytes = probe_record_bytes(&config)?;
    fs::create_dir(format!("{}/{DURABLE_DIR}", config.disk))
        .map_err(|e| format!("{DURABLE_DIR}: {e}"))?;
    let write = |file: &str, text: String| {
        fs::write(format!("{}/{file}", config.disk), text).map_err(|e| format!("{file}: {e}"))
    };
    let data_dir = |dir: &str| format!(r#","dataDir":"{}/{dir}""#, config.disk);
    write(
        CNI_REF_CONF,
        cni_conf("bench", SUBNET, "host-local", &data_dir("cni-data")),
    )?;
    write(
        CNI_OURS_CONF,
        cni_conf(CNI_OURS_NETWORK, CNI_OURS_SUBNET, "ipvlan", ""),
    )?;
    write(
        CNI_OURS_HL_CONF,
        cni_conf(
            CNI_OURS_HL_NETWORK,
            CNI_OURS_HL_SUBNET,
            "host-local",
            &data_dir("cni-data-ours"),
        ),
    )?;

    if let Some(perf) = &config.perf {
        let markdown = cpu_profile(&config, perf)?;
        println!("{RESULTS_BEGIN}\n{markdown}{RESULTS_END}");
        return Ok(());
    }
    if let Some(valgrind) = &config.valgrind {
        let markdown = instruction_counts(&config, valgrind)?;
        println!("{RESULTS_BEGIN}\n{markdown}{RESULTS_END}");
        return Ok(());
    }
    // What a durable write of the record costs by kind, on the same disk,
    // before any row (untimed relative to them: its own table).
    eprintln!("bench: durable writes by kind, {DURABLE_WRITES} each");
    let durable_writes = sh(
        &[
            &config.me,
            "durable-writes",
            &format!("{}/{DURABLE_WRITES_DIR}", config.disk),
            &DURABLE_WRITES.to_string(),
            &config.record_bytes.to_string(),
        ],
        None,
    )?;
    // The floor's rows on their own subnet and namespaces, so they can run
    // together with ours; our CNI row on its network's subnet.
    let (floor_site, ours) = (FLOOR_SITE, OURS_SITE);
    let floor_one = Row {
        name: "raw-netlink floor, one process for all",
        site: floor_site,
        method: Method::OneProcess,
    };
    let floor_pp = Row {
        name: FLOOR_PP_ROW,
        site: floor_site,
        method: Method::PerContainer {
            attach: floor_pp_attach,
            detach: floor_pp_detach,
        },
    };
    let durable = Row {
        name: DURABLE_ROW,
        site: DURABLE_SITE,
        method: Method::PerContainer {
            attach: durable_attach,
            detach: durable_detach,
        },
    };
    let behaviour = Row {
        name: BEHAVIOUR_ROW,
        site: BEHAVIOUR_SITE,
        method: Method::PerContainer {
            attach: behaviour_attach,
            detach: behaviour_detach,
        },
    };
    let announce = Row {
        name: ANNOUNCE_ROW,
        site: ANNOUNCE_SITE,
        method: Method::PerContainer {
            attach: announce_attach,
            detach: floor_pp_detach,
        },
    };
    let cli = Row {
        name: CLI_ROW,
        site: ours,
        method: Method::PerContainer {
            attach: cli_attach,
            detach: cli_detach,
        },
    };
    let bulk = Row {
        name: BULK_ROW,
        site: ours,
        method: Method::Batch {
            attach: bulk_attach,
            detach: bulk_detach,
        },
    };
    let iproute2 = Row {
        name: "iproute2, one process per step",
        site: ours,
        method: Method::PerContainer {
            attach: iproute2_attach,
            detach: iproute2_detach,
        },
    };
    let cni_ref = Row {
        name: REFERENCE_CNI_ROW,
        site: ours,
        method: Method::PerContainer {
            attach: cni_attach,
            detach: cni_detach,
        },
    };

    let ours_cni = Row {
        name: CNI_OURS_ROW,
        method: Method::PerContainer {
            attach: ours_cni_attach,
            detach: ours_cni_detach,
        },
        site: CNI_OURS_SITE,
    };
    let ours_cni_hl = Row {
        name: "ours: CNI mode, `ipam.type: host-local` (delegated), ADD / DEL",
        method: Method::PerContainer {
            attach: ours_cni_hl_attach,
            detach: ours_cni_hl_detach,
        },
        site: Site {
            ns: "c",
            subnet: CNI_OURS_HL_SUBNET,
        },
    };

    let mut table: Vec<(String, u32, Outcome)> = Vec::new();
    let mut sizes = vec![config.small];
    sizes.extend(config.large);
    let mut syscalls: BTreeMap<&str, Syscalls> = BTreeMap::new();
    let mut growth: Vec<Growth> = Vec::new();
    let mut beside: Vec<Growth> = Vec::new();
    for &n in &sizes {
        let small = n == config.small;
        // The rows compared with the per-process floor run together with it.
        let mut groups: Vec<Vec<&Row>> = vec![
            vec![&floor_one],
            vec![&floor_pp, &durable, &behaviour, &announce, &cli, &ours_cni],
            vec![&bulk],
        ];
        if small {
            groups.push(vec![&iproute2]);
            if config.cni.is_some() {
                groups.push(vec![&cni_ref]);
                groups.push(vec![&ours_cni_hl]);
            }
        }
        for rows in groups {
            let names: Vec<&str> = rows.iter().map(|r| r.name).collect();
            let names = names.join(" + ");
            eprintln!("bench: {names} at N = {n}");
            if rows.iter().any(|row| row.name == BEHAVIOUR_ROW) {
                prepare_behaviour_floor(&config, n)?;
            }
            let start = Instant::now();
            let measured = measure(&config, &rows, n)?;
            for (row, mut figures) in rows.iter().zip(measured) {
                if small {
                    if row.name == BEHAVIOUR_ROW {
                        // Container 1's hosts line first again, where its
                        // detach blanks it.
                        prepare_behaviour_floor(&config, 1)?;
                    }
                    let counts = count_syscalls(&config, row)?;
                    syscalls.insert(row.name, counts);
                }
                figures.syscalls = syscalls.get(row.name).cloned();
                eprintln!(
                    "bench: {} at N = {n}: attach median {:.2} ms",
                    row.name,
                    median(&figures.attach),
                );
                table.push((
                    row.name.to_string(),
                    n,
                    Outcome::Measured(Box::new(figures)),
                ));
            }
            eprintln!(
                "bench: {names} at N = {n}: {:.0} s",
                start.elapsed().as_secs_f64()
            );
        }
        if config.cni.is_none() && small {
            for row in [&cni_ref, &ours_cni_hl] {
                table.push((
                    row.name.to_string(),
                    n,
                    Outcome::NotMeasured("not measured: the CNI plugins are not in the guest"),
                ));
            }
        }
        // The bulk row is one launch timed alone, so it carries the host's
        // load of its moment whole: the same batch once more, launched next
        // to a one-process floor batch of the same size, gives a ratio that
        // shares it.
        eprintln!("bench: the bulk API's batch of {n} beside the floor's, {BESIDE_ROUNDS} times");
        let mut pairs = Growth::new(n);
        for round in 0..BESIDE_ROUNDS {
            pairs.extend(batch_growth(&config, &bulk, &floor_one, n, 1, round)?);
        }
        beside.push(pairs);
        if !small {
            for round in 0..GROWTH_ROUNDS {
                eprintln!(
                    "bench: the bulk API's batches with the floor's, N = {n}, round {} of \
                     {GROWTH_ROUNDS}",
                    round + 1
                );
                let start = Instant::now();
                growth.push(batch_growth(&config, &bulk, &floor_one, n, BATCHES, round)?);
                eprintln!("bench: batches: {:.0} s", start.elapsed().as_secs_f64());
            }
        }
    }
    // Our CNI networks outlive their attachments (they keep the
    // allocator's place); idle, the CLI removes them.
    let mut networks = vec![NETWORK, CNI_OURS_NETWORK];
    if config.cni.is_some() {
        networks.push(CNI_OURS_HL_NETWORK);
    }
    for network in networks {
        sh(&[&config.ipvlan, "network", "rm", network], None)?;
    }
    // The first lookup of a link's setting in a namespace, by the
    // namespaces looked up before it: after the rows, whose namespaces are
    // gone (the kernel drops their lookups), on namespaces of its own.
    eprintln!("bench: first sysctl lookups");
    let lookups_ns = "y";
    make_namespaces(lookups_ns, 1, sysctl_lookup_namespaces())?;
    let sysctl_lookups = sh(&[&config.me, "sysctl-lookups", lookups_ns], None)?;
    remove_namespaces(lookups_ns, 1, sysctl_lookup_namespaces())?;
    let size = fs::metadata(&config.ipvlan)
        .map_err(|e| format!("{}: {e}", config.ipvlan))?
        .len();
    // What a process costs before any work: this static program started,
    // exiting at once, launched as the commands are.
    let mut start = Start::default();
    for _ in 0..config.small {
        let out = launch_cmd(&config, &Cmd::new(&[&config.me, "noop"]))?;
        start.wall.push(out.wall_ms);
        start.minflt.push(out.minflt as f64);
        start.maxrss_kib = start.maxrss_kib.max(out.maxrss_kib);
    }
    let mut markdown = render(
        &table,
        &sizes,
        &growth,
        &beside,
        size,
        &start,
        config.record_bytes,
    );
    markdown.push_str(&durable_writes_section(&durable_writes));
    markdown.push_str(&sysctl_lookups_section(&sysctl_lookups));
    println!("{RESULTS_BEGIN}\n{markdown}{RESULTS_END}");
    Ok(())
}

/// The results' table of first sysctl lookups (printed by the
/// `sysctl-lookups` role), under its heading.
fn sysctl_lookups_section(table: &str) -> String {
    format!(
        "\n#### First lookup of a link's setting in a namespace\n\n\
         `sysctl-lookups`, run once after the rows on namespaces of its own, raw libc: \
         opening `/proc/sys/net/ipv6/conf/lo/disable_ipv6` in a namespace where nothing \
         was looked up yet (what every connect does once, for its link's `disable_ipv6`), \
         {SYSCTL_LOOKUPS_MEASURED} namespaces each way at each step. The lookup of `ipv6` \
         compares its name with that of every namespace looked up through the same procfs \
         instance (one hash chain of the dentry cache), which the bulk API avoids with \
         instances of its own.\n\n{table}"
    )
}

/// The size of the endpoint record a connect writes: one untimed connect of
/// a namespace of its own, its record read back from the state directory
/// (`endpoints/<network id>/<endpoint id>.json`, the only one there yet),
/// then disconnected.
fn probe_record_bytes(config: &Config) -> Res<u64> {
    let state = std::env::var("IPVLAN_STATE_DIR")
        .map_err(|_| "the durable floor's record size needs IPVLAN_STATE_DIR".to_string())?;
    let probe = Site {
        ns: "probe",
        subnet: SUBNET,
    };
    make_namespaces(probe.ns, 1, 1)?;
    let ns = ns_path(probe.ns, 1);
    sh(&[&config.ipvlan, "network", "connect", NETWORK, &ns], None)?;
    let endpoints = format!("{state}/endpoints");
    let mut records = Vec::new();
    for dir in fs::read_dir(&endpoints).map_err(|e| format!("{endpoints}: {e}"))? {
        let dir = dir.map_err(|e| format!("{endpoints}: {e}"))?.path();
        for file in fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))? {
            let file = file.map_err(|e| format!("{}: {e}", dir.display()))?;
            let name = file.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") && !name.starts_with('.') {
                let meta = file.metadata().map_err(|e| format!("{name}: {e}"))?;
                records.push((name, meta.len()));
            }
        }
    }
    let [(_, bytes)] = records[..] else {
        return Err(format!(
            "after one connect, expected one endpoint record under {endpoints}, found {records:?}"
        ));
    };
    sh(
        &[&config.ipvlan, "network", "disconnect", NETWORK, &ns],
        None,
    )?;
    remove_namespaces(probe.ns, 1, 1)?;
    Ok(bytes)
}

/// The results' table of durable writes by kind (printed by the
/// `durable-writes` role), under its heading.
fn durable_writes_section(table: &str) -> String {
    format!(
        "\n#### Durable write of one record, by kind\n\n\
         `durable-writes`, run once before the rows on the state directory's disk (a directory \
         beside the durable floor's), raw libc: {DURABLE_WRITES} rounds, each one write of \
         every kind in a balanced order (each kind after every other equally often); ms per \
         write, from the `openat` of a new file (or the `write`) to the return of the last \
         sync.\n\n{table}"
    )
}

/// A static no-op process launched as the commands are: what starting,
/// exiting and waiting for a process cost, and the peak RSS the launcher
/// itself adds.
#[derive(Default)]
struct Start {
    wall: Vec<f64>,
    /// Its minor page faults, each launch.
    minflt: Vec<f64>,
    maxrss_kib: u64,
}

/// One row's system calls of one attach and one detach, by name.
fn profile(s: &mut String, name: &str, f: &Figures) {
    if let Some(c) = &f.syscalls {
        let (attach, detach) = match c.containers {
            1 => ("one attach".to_string(), "one detach".to_string()),
            k => (
                format!("{k} attaches in one process"),
                format!("{k} detaches in one process"),
            ),
        };
        let _ = writeln!(
            s,
            "- {name}: system calls of {attach} by name: {}\n\
             - {name}: system calls of {detach} by name: {}",
            by_count(&c.attach_calls),
            by_count(&c.detach_calls)
        );
    }
}

/// The bulk API's row: one batch of all containers, so its attaches
/// 901-1000 are not told from 1-100; its growth is measured in batches.
const BULK_ROW: &str = "ours: library bulk API (`connect_many`, one `network connect NET c1..cN`)";

/// The per-process floor's row (the rows run together with it are
/// normalised by it).
const FLOOR_PP_ROW: &str = "raw-netlink floor, one process per container";

/// The per-process floor plus the durable write our connect makes of its
/// endpoint record (a new file): what a durable attach cannot go below
/// while it writes a new file per record. The floor of that layout, not of
/// the disk: an overwrite of a preallocated block costs far less (the
/// `durable-writes` table).
const DURABLE_ROW: &str = "durable floor: the per-process floor + one record-sized file \
                           (`write`, `fdatasync`, the directory's `fsync`)";

/// The per-process floor plus what the behaviour asks of every connect,
/// the cheapest way (see [`behaviour_begin`]): a lower bound for any
/// implementation of the behaviour, against which the 1.5x target can be
/// judged reachable or not.
const BEHAVIOUR_ROW: &str = "behaviour floor: the per-process floor + what the behaviour asks \
                             of every connect, the cheapest way (the lock, the network's record \
                             read, IPv6 off, a hosts line and the `/etc/netns` view, the record \
                             by `pwrite` into a preallocated block and `fdatasync`)";

/// The per-process floor plus the gratuitous ARP a CNI ADD's link sends
/// as it comes up: the floor our CNI row's extra over the CLI's is judged
/// against.
const ANNOUNCE_ROW: &str = "announcing floor: the per-process floor + `arp_notify` on before \
                            the up (the gratuitous ARP a CNI ADD's link sends as it comes up, \
                            as the reference plugin's)";

/// Our CLI's row (the target `network connect` <= 1.5x the per-process
/// floor is about it).
const CLI_ROW: &str = "ours: `ipvlan network connect` / `disconnect`";

/// The reference plugin's row (our CNI rows are compared with it).
const REFERENCE_CNI_ROW: &str = "reference CNI `ipvlan` + `host-local`";

fn render(
    table: &[(String, u32, Outcome)],
    sizes: &[u32],
    growth: &[Growth],
    beside: &[Growth],
    binary_size: u64,
    start: &Start,
    record_bytes: u64,
) -> String {
    let launcher_floor = start.maxrss_kib;
    let floor = |name: &str, n: u32| {
        table.iter().find_map(|(row, rn, o)| match o {
            Outcome::Measured(f) if row == name && *rn == n => {
                Some((median(&f.attach), median(&f.detach)))
            }
            _ => None,
        })
    };
    let ratio = |value: f64, base: Option<f64>| match base {
        Some(b) if b > 0.0 => format!("{:.2}x", value / b),
        _ => "-".to_string(),
    };
    let mut s = String::new();
    s.push_str(
        "| per container | N | attach ms: median | p90 | mean | / floor 1 process | \
         / floor per process | / durable floor | detach ms: median | p90 | mean | \
         / floor 1 process | / floor per process | / durable floor | \
         peak RSS KiB, max (median) attach / detach | \
         page faults, median attach / detach: minor (major) | system calls attach / detach |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for (name, n, outcome) in table {
        match outcome {
            Outcome::NotMeasured(why) => {
                let _ = writeln!(s, "| {name} | {n} | {why} ||||||||||||||");
            }
            Outcome::Measured(f) => {
                let one = floor("raw-netlink floor, one process for all", *n);
                let pp = floor(FLOOR_PP_ROW, *n);
                let durable = floor(DURABLE_ROW, *n);
                let (am, dm) = (median(&f.attach), median(&f.detach));
                let calls = match &f.syscalls {
                    Some(c) => format!("{:.0} / {:.0}", c.attach, c.detach),
                    None => "-".to_string(),
                };
                let _ = writeln!(
                    s,
                    "| {name} | {n} | {am:.2} | {:.2} | {:.2} | {} | {} | {} | {dm:.2} | {:.2} | {:.2} | {} | {} | {} | {:.0} ({:.0}) / {:.0} ({:.0}) | {:.0} ({:.0}) / {:.0} ({:.0}) | {calls} |",
                    p90(&f.attach),
                    mean(&f.attach),
                    ratio(am, one.map(|x| x.0)),
                    ratio(am, pp.map(|x| x.0)),
                    ratio(am, durable.map(|x| x.0)),
                    p90(&f.detach),
                    mean(&f.detach),
                    ratio(dm, one.map(|x| x.1)),
                    ratio(dm, pp.map(|x| x.1)),
                    ratio(dm, durable.map(|x| x.1)),
                    sorted(&f.rss_attach).last().copied().unwrap_or(0.0),
                    median(&f.rss_attach),
                    sorted(&f.rss_detach).last().copied().unwrap_or(0.0),
                    median(&f.rss_detach),
                    median(&f.minflt_attach),
                    median(&f.majflt_attach),
                    median(&f.minflt_detach),
                    median(&f.majflt_detach),
                );
            }
        }
    }
    s.push('\n');
    durable_lines(&mut s, table, sizes, record_bytes);
    if let Some(&large) = sizes.get(1) {
        let tenth = (large / 10).max(1) as usize;
        // Medians of the first and the last tenth of a row's attaches.
        let ends = |f: &Figures| {
            (
                median(&f.attach[..tenth]),
                median(&f.attach[f.attach.len() - tenth..]),
            )
        };
        let floor_pp = table.iter().find_map(|(row, rn, o)| match o {
            Outcome::Measured(f) if row == FLOOR_PP_ROW && *rn == large && f.together => {
                Some(ends(f))
            }
            _ => None,
        });
        let (late, early) = (
            format!("{}-{large}", large as usize - tenth + 1),
            format!("1-{tenth}"),
        );
        for (name, n, outcome) in table {
            let Outcome::Measured(f) = outcome else {
                continue;
            };
            if *n != large || name == BULK_ROW {
                continue;
            }
            let (first, last) = ends(f);
            let _ = writeln!(
                s,
                "- {name}: attaches {late} vs {early} (medians): {last:.2} / {first:.2} ms = {:.2}x",
                last / first
            );
            if let (true, false, Some((floor_first, floor_last))) =
                (f.together, name == FLOOR_PP_ROW, floor_pp)
            {
                let _ = writeln!(
                    s,
                    "- {name}: attaches {late} vs {early}, normalised by the per-process floor \
                     over the same containers (run together, container by container): \
                     ({last:.2} / {floor_last:.2}) / ({first:.2} / {floor_first:.2}) = {:.2}x",
                    (last / floor_last) / (first / floor_first)
                );
            }
        }
    }
    // Per round: the last batch against the first, ours, the floor's, and
    // ours normalised by the floor's.
    let rounds: Vec<(f64, f64, f64)> = growth
        .iter()
        .filter_map(|g| {
            let (b1, bk) = (g.bulk.first()?, g.bulk.last()?);
            let (f1, fk) = (g.floor.first()?, g.floor.last()?);
            Some((bk / b1, fk / f1, (bk / fk) / (b1 / f1)))
        })
        .collect();
    if let Some(g) = growth.first().filter(|_| !rounds.is_empty()) {
        let already = g.size * (g.bulk.len() as u32).saturating_sub(1);
        let column =
            |pick: fn(&(f64, f64, f64)) -> f64| -> Vec<f64> { rounds.iter().map(pick).collect() };
        let (ours, floors, normalised) = (column(|r| r.0), column(|r| r.1), column(|r| r.2));
        let sorted_normalised = sorted(&normalised);
        // Each batch against the floor batch launched beside it, over all
        // rounds: the bulk API's ratio to the one-process floor as a median
        // of pairs.
        let ratios: Vec<f64> = growth
            .iter()
            .flat_map(|g| g.bulk.iter().zip(&g.floor).map(|(b, f)| b / f))
            .collect();
        let sorted_ratios = sorted(&ratios);
        let _ = writeln!(
            s,
            "- ours: library bulk API, {rounds} rounds of {batches} batches of {size} in turn, \
             each launched next to a one-process floor batch of {size} (ms per container): the \
             batch made with {already} endpoints already on the network vs the first, \
             normalised by the floor batches beside them, median {:.2}x over the {rounds} \
             rounds (from {:.2}x to {:.2}x; round by round {}); unnormalised, medians: ours \
             {:.2}x, the floor's {:.2}x; each batch against the floor batch beside it, median \
             {:.2}x (from {:.2}x to {:.2}x); the first round batch by batch, ours {}; the floor \
             {}",
            median(&normalised),
            sorted_normalised.first().copied().unwrap_or(f64::NAN),
            sorted_normalised.last().copied().unwrap_or(f64::NAN),
            list_ratios(&normalised),
            median(&ours),
            median(&floors),
            median(&ratios),
            sorted_ratios.first().copied().unwrap_or(f64::NAN),
            sorted_ratios.last().copied().unwrap_or(f64::NAN),
            list(&g.bulk),
            list(&g.floor),
            rounds = rounds.len(),
            batches = g.bulk.len(),
            size = g.size,
        );
    }
    for g in beside {
        beside_line(
            &mut s,
            &format!(
                "- ours: library bulk API, a batch of {n} launched next to a one-process floor \
                 batch of {n}",
                n = g.size
            ),
            &g.bulk,
            &g.floor,
            " (the row's own figure is one launch timed alone)",
        );
        beside_line(
            &mut s,
            &format!(
                "- ours: library bulk API, the detach of those batches, each launched next to \
                 the one-process floor's detach of its batch of {n}",
                n = g.size
            ),
            &g.bulk_detach,
            &g.floor_detach,
            " (the row's own detach is one launch timed alone, against the floor's median \
             link: a batch's figure is a mean, and one link's removal is skewed)",
        );
    }
    for (name, n, outcome) in table {
        if let Outcome::Measured(f) = outcome {
            if !f.work_attach.is_empty() {
                let _ = writeln!(
                    s,
                    "- {name}, N = {n}: the work each process timed itself, medians: attach \
                     {:.2} ms, detach {:.2} ms; the rest of each row's figure is the process's \
                     start, exit and the wait for it",
                    median(&f.work_attach),
                    median(&f.work_detach)
                );
            }
        }
    }
    // A command far above its row's median RSS: where in the run, so it can
    // be reproduced.
    for (name, n, outcome) in table {
        if let Outcome::Measured(f) = outcome {
            for (what, rss) in [("attach", &f.rss_attach), ("detach", &f.rss_detach)] {
                let (typical, Some((at, peak))) = (
                    median(rss),
                    rss.iter()
                        .enumerate()
                        .max_by(|a, b| a.1.total_cmp(b.1))
                        .map(|(at, peak)| (at + 1, *peak)),
                ) else {
                    continue;
                };
                if rss.len() > 1 && peak > typical * 1.5 {
                    let above = rss.iter().filter(|r| **r > typical * 1.5).count();
                    let _ = writeln!(
                        s,
                        "- {name}, N = {n}: {what} peak RSS {peak:.0} KiB at command {at} \
                         of {} in run order ({above} above 1.5x the median {typical:.0} KiB)",
                        rss.len()
                    );
                }
            }
        }
    }
    // Our CNI mode against the reference plugin, at the sizes both ran.
    for (name, n, outcome) in table {
        let (Outcome::Measured(f), true) = (outcome, name.starts_with("ours: CNI mode")) else {
            continue;
        };
        let reference = table.iter().find_map(|(row, rn, o)| match o {
            Outcome::Measured(r) if row == REFERENCE_CNI_ROW && rn == n => Some(r),
            _ => None,
        });
        if let Some(r) = reference {
            let _ = writeln!(
                s,
                "- {name}, N = {n}: against the reference CNI plugin (medians): ADD {:.2}x, \
                 DEL {:.2}x",
                median(&f.attach) / median(&r.attach),
                median(&f.detach) / median(&r.detach)
            );
        }
    }
    // The profile of one attach through the CLI, the bulk API and our CNI
    // mode, the rows the targets are about, and of the per-process floors
    // they are measured against.
    let mut profiled = Vec::new();
    for (name, _, outcome) in table {
        let wanted = name.contains("network connect")
            || [FLOOR_PP_ROW, DURABLE_ROW, BEHAVIOUR_ROW, CNI_OURS_ROW].contains(&name.as_str());
        if wanted && !profiled.contains(&name) {
            profiled.push(name);
            if let Outcome::Measured(f) = outcome {
                profile(&mut s, name, f);
            }
        }
    }
    let _ = writeln!(
        s,
        "- a static no-op process (this program, exiting at once) launched as the commands \
         are, {} times: median {:.2} ms, p90 {:.2} ms",
        start.wall.len(),
        median(&start.wall),
        p90(&start.wall)
    );
    let _ = writeln!(
        s,
        "- ext4's metadata checksums (crc32c) by `{}`, the kernel's preferred driver when the \
         disk was mounted",
        preferred_crc32c_driver()
    );
    let _ = writeln!(
        s,
        "- `ipvlan` binary (release, musl, stripped): {binary_size} bytes ({:.0} KiB)\n\
         - peak RSS: the `ru_maxrss` of each command, spawned from a freshly exec'd launcher \
         (this program's `launch` role); a static no-op launched the same way reads \
         {launcher_floor} KiB, what the launcher's own address space adds: a figure at or \
         below it means \"at most that\"; the floor's one-process row is the whole run's \
         process; `wait4` reports the largest of a command and the children it waited for, \
         so the rows that run a Go plugin (the reference CNI plugin, our CNI mode with \
         `host-local`) show that plugin's peak, not ours alone\n\
         - page faults: the `ru_minflt` (`ru_majflt`) of each container's commands from the \
         same `wait4`, summed per container (iproute2: its four commands), medians; the \
         one-process floor and the bulk API: the one command's count divided by N; a static \
         no-op launched the same way takes {:.0} minor faults (median), process start and \
         exit alone\n\
         - system calls: `strace -f -c` of one container's commands (the one-process floor \
         and the bulk API: {STRACE_CONTAINERS} containers in one process, divided by \
         {STRACE_CONTAINERS}; their counts by name are the whole process's; the N = 1,000 \
         rows' counts are those measured at the first size), process start included",
        binary_size as f64 / 1024.0,
        median(&start.minflt),
    );
    s
}

/// The `crc32c` driver of the highest priority in `/proc/crypto`: the one
/// ext4 took for its checksums when it mounted the disk (the guest loads
/// its modules before that). `crc32c-generic` is the table-driven code,
/// `crc32c-intel` the SSE 4.2 instruction every x86-64 host uses.
fn preferred_crc32c_driver() -> String {
    let Ok(text) = std::fs::read_to_string("/proc/crypto") else {
        return "an unknown driver (/proc/crypto unreadable)".to_string();
    };
    let field = |block: &str, key: &str| {
        block.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    };
    text.split("\n\n")
        .filter(|block| field(block, "name").as_deref() == Some("crc32c"))
        .filter_map(|block| {
            let priority: u32 = field(block, "priority")?.parse().ok()?;
            Some((priority, field(block, "driver")?))
        })
        .max()
        .map_or_else(|| "no driver (none listed)".to_string(), |(_, d)| d)
}

/// The durable floor against the per-process floor, and our CLI against
/// both, at each size (all run together, container by container).
fn durable_lines(s: &mut String, table: &[(String, u32, Outcome)], sizes: &[u32], bytes: u64) {
    let row = |name: &str, n: u32| {
        table.iter().find_map(|(row, rn, o)| match o {
            Outcome::Measured(f) if row == name && *rn == n => Some(f),
            _ => None,
        })
    };
    for &n in sizes {
        let (Some(durable), Some(floor)) = (row(DURABLE_ROW, n), row(FLOOR_PP_ROW, n)) else {
            continue;
        };
        let (da, dd) = (median(&durable.attach), median(&durable.detach));
        let (fa, fd) = (median(&floor.attach), median(&floor.detach));
        let _ = writeln!(
            s,
            "- durable floor, N = {n}: the per-process floor plus the durable write of one \
             {bytes}-byte file named after the container (the size of our endpoint record; a \
             new file, `write`, `fdatasync`, the directory's `fsync`), on the state \
             directory's disk; medians, run together with the floor: attach {da:.2} / \
             {fa:.2} ms = {:.2}x ({:+.2} ms; the work each process timed itself: {:.2} \
             against {:.2} ms); detach, the file removed (`unlinkat`, the directory's \
             `fsync`): {dd:.2} / {fd:.2} ms = {:.2}x ({:+.2} ms; work {:.2} against {:.2} ms)",
            da / fa,
            da - fa,
            median(&durable.work_attach),
            median(&floor.work_attach),
            dd / fd,
            dd - fd,
            median(&durable.work_detach),
            median(&floor.work_detach),
        );
        if let Some(behaviour) = row(BEHAVIOUR_ROW, n) {
            let (ba, bd) = (median(&behaviour.attach), median(&behaviour.detach));
            let _ = writeln!(
                s,
                "- behaviour floor, N = {n}: the per-process floor plus, the cheapest way, \
                 what the behaviour asks of every connect besides the link (the store's lock, \
                 the network's record read, IPv6 off on the link, the network's hosts line, \
                 the `/etc/netns` directory and its `hosts` link, the endpoint's record durable \
                 by `pwrite` into a preallocated block and `fdatasync`); medians, run together \
                 with the floor: attach {ba:.2} / {fa:.2} ms = {:.2}x ({:+.2} ms; work {:.2} \
                 against {:.2} ms); detach {bd:.2} / {fd:.2} ms = {:.2}x ({:+.2} ms)",
                ba / fa,
                ba - fa,
                median(&behaviour.work_attach),
                median(&floor.work_attach),
                bd / fd,
                bd - fd,
            );
            if let Some(cli) = row(CLI_ROW, n) {
                let _ = writeln!(
                    s,
                    "- {CLI_ROW}, N = {n}: against the behaviour floor: connect {:.2} / {ba:.2} \
                     ms = {:.2}x, disconnect {:.2} / {bd:.2} ms = {:.2}x",
                    median(&cli.attach),
                    median(&cli.attach) / ba,
                    median(&cli.detach),
                    median(&cli.detach) / bd,
                );
            }
        }
        if let Some(cli) = row(CLI_ROW, n) {
            let (ca, cd) = (median(&cli.attach), median(&cli.detach));
            let _ = writeln!(
                s,
                "- {CLI_ROW}, N = {n}: connect / durable floor {ca:.2} / {da:.2} ms = {:.2}x \
                 (/ floor {:.2}x; the target, 1.5x the floor, is {:.2} ms; the durable floor \
                 alone is {:.2}x the floor); disconnect / durable floor {cd:.2} / {dd:.2} ms = {:.2}x \
                 (/ floor {:.2}x)",
                ca / da,
                ca / fa,
                1.5 * fa,
                da / fa,
                cd / dd,
                cd / fd,
            );
        }
        if let Some(announce) = row(ANNOUNCE_ROW, n) {
            let aa = median(&announce.attach);
            let _ = writeln!(
                s,
                "- announcing floor, N = {n}: the per-process floor plus `arp_notify` on before \
                 the up (the gratuitous ARP, which an ipvlan parent in l2 mode delivers to each \
                 of its other links, on a kernel worker); medians, run together with the floor: \
                 attach {aa:.2} / {fa:.2} ms = {:.2}x ({:+.2} ms; work {:.2} against {:.2} ms)",
                aa / fa,
                aa - fa,
                median(&announce.work_attach),
                median(&floor.work_attach),
            );
            if let (Some(cni), Some(cli)) = (row(CNI_OURS_ROW, n), row(CLI_ROW, n)) {
                let (na, ca) = (median(&cni.attach), median(&cli.attach));
                let _ = writeln!(
                    s,
                    "- {CNI_OURS_ROW}, N = {n}: ADD / announcing floor {na:.2} / {aa:.2} ms = \
                     {:.2}x (/ floor {:.2}x); ADD − connect {:+.2} ms against announcing \
                     floor − floor {:+.2} ms",
                    na / aa,
                    na / fa,
                    na - ca,
                    aa - fa,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics() {
        let v = [5.0, 1.0, 4.0, 2.0, 3.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        assert_eq!(median(&v), 5.5);
        assert_eq!(p90(&v), 9.0);
        assert_eq!(mean(&v), 5.5);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    }

    #[test]
    fn strace_by_name() {
        let text = "% time     seconds  usecs/call     calls    errors syscall\n\
                    ------ ----------- ----------- --------- --------- ----------------\n\
                    60.00    0.000060          10         6           sendto\n\
                    40.00    0.000040          10         4         1 openat\n\
                    ------ ----------- ----------- --------- --------- ----------------\n\
                    100.00    0.000100          10        10         1 total\n";
        let calls: BTreeMap<String, u64> = strace_calls(text).into_iter().collect();
        assert_eq!(by_count(&calls), "sendto 6, openat 4");
    }

    #[test]
    fn strace_totals() {
        let text = "% time     seconds  usecs/call     calls    errors syscall\n\
                    ------ ----------- ----------- --------- --------- ----------------\n\
                    60.00    0.000060          10         6           sendto\n\
                    ------ ----------- ----------- --------- --------- ----------------\n\
                    100.00    0.000100           4        25         2 total\n";
        assert_eq!(strace_total(text), Some(25));
    }

    /// Rows run together are normalised by the per-process floor over the
    /// same containers; the bulk API's growth comes from its batches.
    #[test]
    fn drift_is_normalised_by_the_floor() {
        let row = |first: f64, last: f64, together: bool| {
            // 20 containers: the first two at `first`, the last two at `last`.
            let mut attach = vec![first; 2];
            attach.extend(vec![(first + last) / 2.0; 16]);
            attach.extend(vec![last; 2]);
            Outcome::Measured(Box::new(Figures {
                detach: attach.clone(),
                attach,
                together,
                ..Figures::default()
            }))
        };
        let cli = "ours: `ipvlan network connect` / `disconnect`";
        let table = vec![
            (FLOOR_PP_ROW.to_string(), 20, row(10.0, 15.0, true)),
            (cli.to_string(), 20, row(30.0, 54.0, true)),
            (BULK_ROW.to_string(), 20, row(9.0, 9.0, false)),
        ];
        let round = |last: f64| Growth {
            size: 2,
            bulk: vec![8.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, last],
            floor: vec![2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.5],
            bulk_detach: vec![20.0],
            floor_detach: vec![19.0],
        };
        // Normalised: (12 / 2.5) / (8 / 2) = 1.2, (20 / 2.5) / 4 = 2, and
        // (8 / 2.5) / 4 = 0.8: the median round's, not the mean's 1.33.
        let growth = [round(12.0), round(20.0), round(8.0)];
        let beside = Growth {
            size: 20,
            bulk: vec![9.0, 8.0, 12.0],
            floor: vec![3.0, 2.0, 3.0],
            // Pairs 1.10x, 0.90x, 1.25x: by order 1.175x and 0.90x.
            bulk_detach: vec![22.0, 18.0, 25.0],
            floor_detach: vec![20.0, 20.0, 20.0],
        };
        let s = render(
            &table,
            &[10, 20],
            &growth,
            &[beside],
            1,
            &Start::default(),
            464,
        );
        assert!(s.contains(&format!(
            "- {FLOOR_PP_ROW}: attaches 19-20 vs 1-2 (medians): 15.00 / 10.00 ms = 1.50x\n"
        )));
        assert!(s.contains(&format!(
            "- {cli}: attaches 19-20 vs 1-2 (medians): 54.00 / 30.00 ms = 1.80x\n"
        )));
        // (54 / 15) / (30 / 10) = 1.2
        assert!(s.contains(&format!(
            "- {cli}: attaches 19-20 vs 1-2, normalised by the per-process floor over the same \
             containers (run together, container by container): (54.00 / 15.00) / (30.00 / \
             10.00) = 1.20x\n"
        )));
        assert!(!s.contains(&format!(
            "{FLOOR_PP_ROW}: attaches 19-20 vs 1-2, normalised"
        )));
        assert!(!s.contains(&format!("{BULK_ROW}: attaches")));
        assert!(
            s.contains(
                "- ours: library bulk API, 3 rounds of 10 batches of 2 in turn, each launched \
                 next to a one-process floor batch of 2 (ms per container): the batch made with \
                 18 endpoints already on the network vs the first, normalised by the floor \
                 batches beside them, median 1.20x over the 3 rounds (from 0.80x to 2.00x; \
                 round by round 1.20x, 2.00x, 0.80x); unnormalised, medians: ours 1.50x, the \
                 floor's 1.25x;"
            ),
            "{s}"
        );
        // The batches launched beside the floor's: the median of the
        // pairs' ratios (3, 4, 4), not the ratio of the medians (9 / 3).
        assert!(
            s.contains(
                "- ours: library bulk API, a batch of 20 launched next to a one-process floor \
             batch of 20, 3 times, which goes first alternating (ms per container, medians): \
             9.00 / 3.00; each batch against \
             the floor batch beside it, median 4.00x (from 3.00x to 4.00x); by order, \
             medians: ours first 3.50x, the floor's first 4.00x, their geometric mean 3.74x \
             (the figure that counts each order alike); ours 9.00, 8.00, 12.00, the floor \
             3.00, 2.00, 3.00 (the row's own figure is one launch timed alone)\n"
            ),
            "{s}"
        );
        // The detaches: whole batches against whole batches, pair by pair.
        assert!(
            s.contains(
                "- ours: library bulk API, the detach of those batches, each launched next to \
                 the one-process floor's detach of its batch of 20, 3 times, which goes first \
                 alternating (ms per container, medians): 22.00 / 20.00; each batch against the \
                 floor batch beside it, median 1.10x (from 0.90x to 1.25x); by order, medians: \
                 ours first 1.18x, the floor's first 0.90x, their geometric mean 1.03x (the \
                 figure that counts each order alike); ours 22.00, 18.00, 25.00, the floor \
                 20.00, 20.00, 20.00 (the row's own detach is one launch timed alone, against \
                 the floor's median link: a batch's figure is a mean, and one link's removal is \
                 skewed)\n"
            ),
            "{s}"
        );
    }

    #[test]
    fn launcher_reports_faults() {
        assert_eq!(
            parse_report("2390000 456 97 0"),
            Some([2390000, 456, 97, 0])
        );
        for bad in ["2390000 456", "2390000 456 97 0 1", "2390000 456 x 0", ""] {
            assert_eq!(parse_report(bad), None, "{bad:?}");
        }
    }

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn durable_arguments() {
        let plain = words(&["attach", "3", "d", "10.14.0.0", "1", "1"]);
        let (rest, durable) = floor_extra_args(&plain).unwrap();
        assert_eq!(rest, &plain[..]);
        assert!(durable.is_none());
        for (flag, dir) in [
            ("--durable", "/mnt/bench/durable-floor"),
            ("--behaviour", "/mnt/bench/behaviour-floor"),
        ] {
            let mut with = plain.clone();
            with.extend(words(&[flag, dir, "464"]));
            let (rest, extra) = floor_extra_args(&with).unwrap();
            assert_eq!(rest, &plain[..]);
            let (read_as, place) = match extra {
                Some(Extra::Durable(place)) => ("--durable", place),
                Some(Extra::Behaviour(place)) => ("--behaviour", place),
                Some(Extra::Announce) | None => panic!("{flag} not read"),
            };
            assert_eq!((read_as, place.dir, place.bytes), (flag, dir, 464));
        }
        let mut announcing = plain.clone();
        announcing.push("--announce".to_string());
        let (rest, extra) = floor_extra_args(&announcing).unwrap();
        assert_eq!(rest, &plain[..]);
        assert!(matches!(extra, Some(Extra::Announce)));
        let mut with = plain.clone();
        with.extend(words(&["--durable", "/mnt/bench/durable-floor", "464"]));
        with.pop();
        with.push("many".to_string());
        assert!(floor_extra_args(&with).is_err());
    }

    /// The behaviour floor's hosts lines have one width, so that a detach
    /// finds container `i`'s where its attach appended it.
    #[test]
    fn behaviour_hosts_lines_have_one_width() {
        let site = FloorSite {
            ns: "q",
            subnet: BEHAVIOUR_SUBNET,
        };
        for i in [1, 9, 99, 1000] {
            let line = behaviour_hosts_line(&site, i);
            assert_eq!(line.len(), BEHAVIOUR_HOSTS_LINE, "{i}");
            assert_eq!(line.last(), Some(&b'\n'));
            let text = String::from_utf8(line).unwrap();
            assert!(
                text.starts_with(&format!("{}\tq{i} ", ipv4(container_addr(site.subnet, i)))),
                "{text:?}"
            );
        }
    }

    /// Over one period, one round after another, every kind runs once a
    /// round, at each position equally often, and right after each other
    /// kind equally often (never after itself): a wrong order, or the plain
    /// rotation it replaced, fails.
    #[test]
    fn a_balanced_order_puts_each_kind_after_every_other_alike() {
        // Whether `rounds`, repeated, is balanced so; the counts if not.
        let balanced = |rounds: &[Vec<usize>], kinds: usize| -> Result<(), String> {
            let mut at = vec![vec![0; kinds]; kinds];
            let mut after = vec![vec![0; kinds]; kinds];
            for order in rounds {
                let mut sorted = order.clone();
                sorted.sort_unstable();
                if sorted != (0..kinds).collect::<Vec<_>>() {
                    return Err(format!("not a round: {order:?}"));
                }
                for (position, &kind) in order.iter().enumerate() {
                    at[kind][position] += 1;
                }
            }
            // Cyclically: the period's last runs before its first again.
            let flat: Vec<usize> = rounds.concat();
            for (k, &kind) in flat.iter().enumerate() {
                after[flat[(k + flat.len() - 1) % flat.len()]][kind] += 1;
            }
            let per_position = rounds.len() / kinds;
            let per_pair = rounds.len() / (kinds - 1);
            let positions_even = at.iter().flatten().all(|&n| n == per_position);
            let pairs_even = (0..kinds)
                .all(|a| (0..kinds).all(|b| after[a][b] == if a == b { 0 } else { per_pair }));
            if positions_even && pairs_even {
                Ok(())
            } else {
                Err(format!("positions {at:?}, after {after:?}"))
            }
        };
        for kinds in 3..=7 {
            let rounds = balanced_rounds(kinds);
            assert_eq!(rounds.len(), kinds * (kinds - 1));
            balanced(&rounds, kinds).unwrap_or_else(|e| panic!("{kinds} kinds: {e}"));
            for (round, order) in rounds.iter().enumerate() {
                assert_eq!(BalancedOrder::new(kinds).round(round + rounds.len()), order);
            }
            // The rotation it replaced, over as many rounds, is not.
            let rotation: Vec<Vec<usize>> = (0..rounds.len())
                .map(|r| (0..kinds).map(|k| (k + r) % kinds).collect())
                .collect();
            assert!(balanced(&rotation, kinds).is_err(), "{kinds}");
        }
        assert_eq!(BalancedOrder::new(1).round(5), [0]);
        assert_eq!(BalancedOrder::new(2).round(1), [1, 0]);
        assert!(BalancedOrder::new(0).round(3).is_empty());
    }

    /// The durable floor's file: new, of the record's size, refused if it
    /// is there already (never overwritten), gone after the removal.
    #[test]
    fn durable_write_and_removal() {
        let dir = std::env::temp_dir().join(format!("attach-durable-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.to_string_lossy().into_owned();
        let durable = FloorFiles {
            dir: &path,
            bytes: 464,
        };
        durable_write(&durable, "d7").unwrap();
        let text = fs::read(dir.join("d7")).unwrap();
        assert_eq!(text.len(), 464);
        assert_eq!(text.last(), Some(&b'\n'));
        let again = durable_write(&durable, "d7").unwrap_err();
        assert!(again.contains("File exists"), "{again}");
        durable_remove(&durable, "d7").unwrap();
        assert!(!dir.join("d7").exists());
        assert!(durable_remove(&durable, "d7").is_err());
        fs::remove_dir(&dir).unwrap();
    }

    /// The durable floor is printed against the floor, ours against it, and
    /// every row gains its page faults.
    #[test]
    fn durable_floor_and_faults_are_printed() {
        let row = |attach: f64, detach: f64, minflt: f64| {
            Outcome::Measured(Box::new(Figures {
                attach: vec![attach; 3],
                detach: vec![detach; 3],
                rss_attach: vec![400.0; 3],
                rss_detach: vec![400.0; 3],
                minflt_attach: vec![minflt, minflt + 1.0, minflt + 2.0],
                minflt_detach: vec![minflt; 3],
                majflt_attach: vec![0.0; 3],
                majflt_detach: vec![1.0; 3],
                work_attach: vec![attach - 3.0; 3],
                work_detach: vec![detach - 4.0; 3],
                together: true,
                ..Figures::default()
            }))
        };
        let mut durable = row(10.0, 22.0, 95.0);
        if let Outcome::Measured(f) = &mut durable {
            f.syscalls = Some(Syscalls {
                attach: 51.0,
                detach: 44.0,
                containers: 1,
                attach_calls: [("fsync".to_string(), 1), ("openat".to_string(), 4)].into(),
                detach_calls: [("unlinkat".to_string(), 1)].into(),
            });
        }
        let table = vec![
            (FLOOR_PP_ROW.to_string(), 3, row(7.0, 20.0, 90.0)),
            (DURABLE_ROW.to_string(), 3, durable),
            (CLI_ROW.to_string(), 3, row(20.0, 33.0, 300.0)),
        ];
        let s = render(&table, &[3], &[], &[], 1, &Start::default(), 464);
        // Attach / durable floor 2.00x, detach 1.50x; RSS; faults minor (major).
        assert!(
            s.contains(&format!(
                "| {CLI_ROW} | 3 | 20.00 | 20.00 | 20.00 | - | 2.86x | 2.00x | 33.00 | 33.00 | \
                 33.00 | - | 1.65x | 1.50x | 400 (400) / 400 (400) | 301 (0) / 300 (1) | - |\n"
            )),
            "{s}"
        );
        assert!(s.contains(&format!(
            "| {DURABLE_ROW} | 3 | 10.00 | 10.00 | 10.00 | - | 1.43x | 1.00x |"
        )));
        assert!(s.contains(&format!("| 51 / 44 |\n| {CLI_ROW} |")));
        assert!(s.contains(&format!(
            "- {DURABLE_ROW}: system calls of one attach by name: openat 4, fsync 1\n\
             - {DURABLE_ROW}: system calls of one detach by name: unlinkat 1\n"
        )));
        assert!(s.contains(
            "- durable floor, N = 3: the per-process floor plus the durable write of one \
             464-byte file named after the container (the size of our endpoint record; a new \
             file, `write`, `fdatasync`, the directory's `fsync`), on the state directory's \
             disk; medians, run together with the floor: attach 10.00 / 7.00 ms = 1.43x \
             (+3.00 ms; the work each process timed itself: 7.00 against 4.00 ms); detach, the \
             file removed (`unlinkat`, the directory's `fsync`): 22.00 / 20.00 ms = 1.10x \
             (+2.00 ms; work 18.00 against 16.00 ms)\n"
        ));
        assert!(s.contains(&format!(
            "- {CLI_ROW}, N = 3: connect / durable floor 20.00 / 10.00 ms = 2.00x (/ floor \
             2.86x; the target, 1.5x the floor, is 10.50 ms; the durable floor alone is 1.43x \
             the floor); disconnect / durable floor 33.00 / 22.00 ms = 1.50x (/ floor 1.65x)\n"
        )));
    }

    #[test]
    fn durable_writes_arguments() {
        let good = words(&["/mnt/bench/durable-writes", "100", "469"]);
        let (dir, count, bytes) = durable_writes_args(&good).unwrap();
        assert_eq!((dir, count, bytes), ("/mnt/bench/durable-writes", 100, 469));
        for bad in [
            &["d", "100"][..],
            &["d", "100", "469", "extra"][..],
            &["d", "0", "469"][..],
            &["d", "100", "0"][..],
            &["d", "ten", "469"][..],
            &["d", "100", "4097"][..],
        ] {
            assert!(
                durable_writes_args(&words(bad)).is_err(),
                "{bad:?} must be refused"
            );
        }
    }

    /// Every kind is timed once a round, the directory made is removed, and
    /// one that was there already is refused and left alone.
    #[test]
    fn durable_writes_time_every_kind_and_clean_up() {
        let dir = std::env::temp_dir().join(format!("attach-writes-{}", std::process::id()));
        let path = dir.to_str().unwrap();
        let times = durable_writes(path, 5, 469).unwrap();
        for t in &times {
            assert_eq!(t.len(), 5);
            assert!(t.iter().all(|ms| *ms > 0.0), "{t:?}");
        }
        assert!(!dir.exists());
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("theirs"), "x").unwrap();
        let refused = durable_writes(path, 5, 469).unwrap_err();
        assert!(refused.contains("File exists"), "{refused}");
        assert_eq!(fs::read_to_string(dir.join("theirs")).unwrap(), "x");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn durable_writes_table_gives_ratios_to_the_new_file() {
        let ten = |base: f64| (1..=10).map(|i| base * i as f64).collect::<Vec<_>>();
        let times = [ten(1.0), ten(0.9), ten(0.25), ten(0.75)];
        let table = durable_writes_table(469, &times);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 6, "{table}");
        assert!(lines[0].starts_with("| durable write of one 469-byte record, 10 each |"));
        assert_eq!(
            lines[2],
            "| new file (`openat` `O_CREAT\\|O_EXCL`, `write`, `fdatasync`, `close`), then \
             `fsync` of the directory: the durable floor's write | 5.50 | 1.00 | 9.00 | 1.00x |"
        );
        assert!(
            lines[4].ends_with("| 1.38 | 0.25 | 2.25 | 0.25x |"),
            "{table}"
        );
        assert!(
            lines[5].ends_with("| 4.12 | 0.75 | 6.75 | 0.75x |"),
            "{table}"
        );
        let section = durable_writes_section(&table);
        assert!(section.contains("#### Durable write of one record, by kind\n"));
        assert!(section.ends_with(&table));
    }

    #[test]
    fn callgrind_counts_are_read_and_tables_written() {
        let log = "==164== Callgrind, a call-graph generating cache profiler\n\
                   ==164== Events    : Ir\n==164== Collected : 2801838\n==164== \n\
                   ==164== I   refs:      2,801,838\n";
        assert_eq!(parse_instructions(log), Some(2_801_838));
        assert_eq!(parse_instructions("==1== no summary\n"), None);
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (361_468, "361,468"),
            (12_345_678, "12,345,678"),
        ] {
            assert_eq!(thousands(n), text);
        }
        let table = instruction_table(&[Counted {
            what: "attach: `network connect`".into(),
            ours: 332_553,
            floor: 41_000,
        }]);
        assert!(
            table.ends_with("| attach: `network connect` | 332,553 | 41,000 | 8.11x |\n"),
            "{table}"
        );
    }

    #[test]
    fn floor_messages_are_well_formed() {
        let mut m = Msg::new(RTM_NEWLINK, NLM_F_REQUEST, 7, &ifinfomsg(10_001, 0, 0));
        let nest = m.nest(IFLA_LINKINFO);
        m.attr(IFLA_INFO_KIND, b"ipvlan");
        m.end_nest(nest);
        let buf = m.finish();
        assert_eq!(
            buf.len() as u32,
            u32::from_ne_bytes(buf[0..4].try_into().unwrap())
        );
        assert_eq!(buf.len() % 4, 0);
        // ifinfomsg's index right after the 16-byte header.
        assert_eq!(i32::from_ne_bytes(buf[20..24].try_into().unwrap()), 10_001);
        // The nest covers its one attribute (4 + 4 + "ipvlan" padded to 8).
        assert_eq!(u16::from_ne_bytes(buf[32..34].try_into().unwrap()), 4 + 12);
    }

    #[test]
    fn profile_lines_carry_a_commands_environment_and_stdin() {
        let dir = std::env::temp_dir().join(format!("attach-profile-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let input = dir.join("stdin");
        fs::write(&input, "hello\n").unwrap();
        let mut cmd = Cmd::new(&[
            "/bin/sh",
            "-c",
            "test \"$A\" = 1 && test \"$B\" = 'x y' && read l && test \"$l\" = hello",
        ]);
        cmd.env = vec![("A".into(), "1".into()), ("B".into(), "x y".into())];
        cmd.stdin = Some(input.to_string_lossy().into_owned());
        let line = profile_line(&cmd);
        assert!(
            line.ends_with('\n') && line.matches('\n').count() == 1,
            "{line:?}"
        );
        run_profile_line(line.trim_end()).unwrap();
        cmd.env[0].1 = "2".into();
        assert!(
            run_profile_line(profile_line(&cmd).trim_end()).is_err(),
            "a failure is one"
        );
        let plain = profile_line(&Cmd::new(&["/bin/true"]));
        assert_eq!(plain, "--\t/bin/true\n", "the launcher's words");
        run_profile_line(plain.trim_end()).unwrap();
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn profile_samples_are_put_in_categories_by_their_call_chain() {
        // `perf script -F comm,period,ip,sym`, as 6.1 and 6.12 print it
        // (6.12's dispatcher `x64_sys_call` between `do_syscall_64` and
        // the call's function).
        let script = "\
ipvlan     500000 \n\
\tffffffff94f4aa4a ext4_create\n\
\tffffffff94f61dcd path_openat\n\
\tffffffff94f4aa4a __x64_sys_openat\n\
\tffffffff95603f4d do_syscall_64\n\
\tffffffff95800126 entry_SYSCALL_64_after_hwframe\n\
\t           e159b [unknown]\n\
\n\
ipvlan     500000 \n\
\tffffffff94f4aa4a ipvlan_link_new\n\
\tffffffff94f4aa4a rtnl_newlink\n\
\tffffffff94f4aa4a __x64_sys_sendto\n\
\tffffffff94f4aa4a x64_sys_call\n\
\tffffffff95603f4d do_syscall_64\n\
\n\
ipvlan     250000 \n\
\t          2483fd <alloc::string::String as core::fmt::Write>::write_str\n\
\t          2483fd main\n\
\n\
floor     500000 \n\
\tffffffff94f4aa4a filemap_map_pages\n\
\tffffffff94f4aa4a handle_mm_fault\n\
\tffffffff94f4aa4a asm_exc_page_fault\n\
\n\
floor     500000 \n\
\tffffffff94f4aa4a addrconf_sysctl_disable\n\
\tffffffff94f4aa4a proc_sys_call_handler\n\
\tffffffff94f4aa4a ksys_write\n\
\tffffffff95603f4d do_syscall_64\n\
\n\
ipvlan     250000 \n\
\tffffffff94f4aa4a dev_open\n\
\tffffffff94f4aa4a do_setlink\n\
\tffffffff94f4aa4a rtnl_newlink\n\
\tffffffff94f4aa4a __sys_sendto\n\
\tffffffff95603f4d do_syscall_64\n\
\n\
floor     250000 ffffffff94f4aa4a memset\n\
\n\
ipvlan-bulk     500000 \n\
\t          2483fd main\n\
\n\
behaviour     250000 \n\
\t          2483fd main\n\
\n\
floor-all     250000 \n\
\t          2483fd main\n\
\n\
attach     500000 \n\
\t          2483fd main\n";
        let profile = profile_totals(script).unwrap();
        let totals = &profile.categories;
        let get =
            |comm: &str, category: &'static str| totals.get(&(comm.to_string(), category)).copied();
        assert_eq!(
            get("ipvlan", "files: create (`openat` with `O_CREAT`)"),
            Some(500_000)
        );
        assert_eq!(get("ipvlan", "netlink: create the link"), Some(500_000));
        assert_eq!(get("ipvlan", "user space"), Some(250_000));
        assert_eq!(get("floor", "process: page faults"), Some(500_000));
        assert_eq!(get("floor", "sysctl write"), Some(500_000));
        assert_eq!(
            get("ipvlan", "netlink: other requests (address, up, route)"),
            Some(250_000),
            "setting a link up is no create"
        );
        assert_eq!(
            get("floor", "kernel, other (interrupts, scheduling)"),
            Some(250_000),
            "a sample without a chain has its frame on its first line"
        );
        assert_eq!(
            totals.len(),
            10,
            "the loop's own samples are not counted: {totals:?}"
        );
        let table = profile_table(totals, 2);
        assert!(
            table.contains(
                "| netlink: create the link | 0.25 | 0.00 | 0.00 | 0.00 | 0.00 | 0.00 | 0.00 | +0.25 | +0.25 | +0.00 |"
            ),
            "{table}"
        );
        assert!(
            table.contains(
                "| user space | 0.12 | 0.00 | 0.00 | 0.12 | 0.00 | 0.25 | 0.12 | +0.12 | +0.00 | +0.12 |"
            ),
            "the floors' and batches' columns and their differences: {table}"
        );
        assert!(
            table.contains(
                "| **total** | **0.75** | **0.00** | **0.00** | **0.12** | **0.62** | **0.25** | **0.12** | **+0.12** | **+0.62** | **+0.12** |"
            ),
            "{table}"
        );
        let functions = user_functions_table(&profile.user_functions, 2);
        assert!(
            functions.contains(
                "| `<alloc::string::String as core::fmt::Write>::write_str` | 0.125 | 100.0% |"
            ),
            "{functions}"
        );
        assert!(
            functions.contains("| `main` | 0.250 | 100.0% |"),
            "{functions}"
        );
        let unnamed = BTreeMap::from([(("ipvlan".to_string(), "[unknown]".to_string()), 1)]);
        assert_eq!(
            user_functions_table(&unnamed, 1),
            "",
            "a stripped binary's samples name no function"
        );
        assert!(profile_totals("ipvlan\n\tffff x\n").is_err(), "no period");
    }
}
