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
//! 2. `cli` checks CAP_NET_ADMIN, opens a [`driver::Manager`] on the state
//!    directory and calls [`driver::Manager::connect`].
//! 3. `driver/endpoints.rs` resolves `web` to `/run/netns/web`, opens it
//!    (anything but another network namespace is refused here, before the
//!    lock), opens one netlink handle inside (`driver/netns_identity.rs`,
//!    `rtnl::Handle`) and reads the namespace's identity, which names the
//!    endpoint's record. Then it takes the store's lock (`store/dir.rs`,
//!    one `flock`), reads the network records, checks the namespace is
//!    not attached yet and opens one netlink handle in the host.
//! 4. It picks a free `ethN` (`driver/endpoint_link.rs`), takes the
//!    address (`store` writes `ipam/<network>/<subnet>/192.168.1.10`, the
//!    allocator in `ipam` decides), and writes the endpoint record in state
//!    `attaching`, naming the ifindex its create will ask for: from here a
//!    crash is repaired by `restore`, which undoes the link at that index
//!    and never one by its name.
//! 5. `driver/endpoint_link.rs` asks `rtnl` for the requests: RTM_NEWLINK
//!    of an ipvlan link created straight inside the namespace with a chosen
//!    ifindex, then the address, link up and the default route, each sent
//!    on the handles of step 3 through `netlink::Socket`.
//! 6. The record is rewritten `attached` with the link's index and MAC, and
//!    `driver/hosts.rs` appends the container to the network's hosts file
//!    and points `/etc/netns/web/hosts` at it. Any failure after step 4
//!    undoes what was done, in reverse order.
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
