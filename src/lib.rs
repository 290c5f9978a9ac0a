//! ipvlan: Docker's IPvlan networks on plain Linux hosts.
//!
//! # Layers
//!
//! Bottom up; a file uses only its own layer and those below (checked by
//! `cargo xtask layers`):
//!
//! 1. `sys`, [`json`], [`text`], [`digits`], [`fault`], [`order`],
//!    [`handoff`], [`process`]: system calls (the only `unsafe`), JSON,
//!    user-supplied text made safe for messages, numbers and addresses as
//!    text, the kill points of crash tests, the one shared stable sort, a
//!    queue between two threads, and the binary's process start and
//!    allocator.
//! 2. [`netlink`]: the netlink transport.
//! 3. [`netns`]: network namespaces.
//! 4. [`rtnl`]: typed rtnetlink requests.
//! 5. [`ipam`]: address management.
//! 6. [`store`]: the state directory.
//! 7. [`driver`]: networks and endpoints.
//! 8. [`cli`], [`cni`]: the command line, and the CNI plugin mode (when
//!    `CNI_COMMAND` is set).
//!
//! # Which file owns what
//!
//! ```text
//! sys.rs               every unsafe call (setns, unshare, mount, flock, signals, sockets)
//! json.rs              the one JSON reader and writer (inspect output, records)
//! text.rs              user-supplied text in messages: control characters escaped
//! digits.rs            numbers and IP addresses as text, without core::fmt
//! fault.rs             kill points where effects happen, live only with the
//!                      `fault-injection` feature (crash tests)
//! order.rs             stable sorting through one copy of std's sort (binary size)
//! handoff.rs           a bounded queue between two threads (std's channels: binary size)
//! process.rs           the binary's start from C `main` (args, stdio, SIGPIPE), its allocator
//! netlink/             uapi constants, attributes, message builder and checked views,
//!                      the readers of the kernel's answers (reply.rs: ACKs, dumps,
//!                      extended acks), the socket, the error type
//! netns.rs             open/create/delete namespaces (iproute2's /run/netns layout),
//!                      entering one (the calling thread there and back, or a
//!                      scratch thread), the interface-name rule
//! rtnl/                the only place that builds or parses rtnetlink messages:
//!                      links (ipvlan, vlan, dummy, veth, macvlan; kind probes),
//!                      addresses, routes, namespace ids, one Handle per namespace
//! ipam/                subnets, default pools, the allocator (no I/O)
//! store/               the state directory: lock, records, address files, atomic writes
//! driver/              Docker's semantics; its rooms are listed in its docs
//! cli/                 argv parsing, help texts, output, exit codes
//! cni/                 the CNI plugin mode: CNI_* environment, config, results
//!                      in every spec version, error objects, delegated IPAM
//! ```
//!
//! # One `network connect`, from argv to the kernel
//!
//! `ipvlan network connect --ip 192.168.1.10 db_net web`:
//!
//! 1. `main.rs` (C's `main`, see [`process`]) hands argv to
//!    [`cli::main_args`]; [`cli::command`] parses it into
//!    a `Command::NetworkConnect` (usage errors exit 2 here, nothing touched).
//! 2. `cli` checks CAP_NET_ADMIN and CAP_SYS_ADMIN (one `capget`), opens a
//!    [`driver::Manager`] on the state directory and calls
//!    [`driver::Manager::connect`].
//! 3. `driver/endpoints.rs` finds the network's id without the lock, opens
//!    one netlink handle in the host (`rtnl::Handle`), resolves `web` to
//!    `/run/netns/web` and opens it (anything but another network namespace
//!    is refused here, before the lock, so a target that blocks holds no
//!    other command up). Then it takes the store's lock (`store/dir.rs`,
//!    one `flock`), and only then enters the namespace, opens a handle
//!    inside and reads its identity (`driver/netns_identity.rs`), which
//!    names the endpoint's record: a connect waiting for the lock inside a
//!    container would count as one of its processes to a concurrent `rm`.
//!    It reads the network's record and checks the namespace is not
//!    attached yet.
//! 4. It picks a free `ethN` (`driver/endpoint_link.rs`), takes the
//!    address (`store` claims `ipam/<network>/<subnet>/192.168.1.10`, the
//!    allocator in `ipam` decides), and writes the endpoint's intent,
//!    `attaching`, naming the ifindex its create will ask for, into the
//!    commit log's page in the store's `lock` (an intent only has to
//!    outlive the process, so it is not synced): from here a crash is
//!    repaired by `restore`, which undoes the link at that index and never
//!    one by its name.
//! 5. `driver/endpoint_link.rs` asks `rtnl` for the requests: RTM_NEWLINK
//!    of an ipvlan link created straight inside the namespace with a chosen
//!    ifindex, then the address, link up and the default route, each sent
//!    on the handles of step 3 through `netlink::Socket`.
//! 6. The endpoint's record is made, `attached`, with the link's index and
//!    MAC, `driver/hosts.rs` adds the container to the network's hosts file
//!    and points `/etc/netns/web/hosts` at it, and the commit makes the
//!    records durable in one entry of the commit log before the lock goes.
//!    Any failure after step 4 undoes what was done, in reverse order.
//! 7. `cli` prints nothing and exits 0 (errors: `ipvlan: ...` on stderr,
//!    exit 1).

#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod cli;
pub mod cni;
pub mod digits;
pub mod driver;
pub mod fault;
pub mod handoff;
pub mod ipam;
pub mod json;
pub mod netlink;
pub mod netns;
pub mod order;
pub mod process;
pub mod rtnl;
pub mod store;
#[allow(unsafe_code)]
pub(crate) mod sys;
pub mod text;
