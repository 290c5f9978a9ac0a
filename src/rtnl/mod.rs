//! Typed rtnetlink requests over [`crate::netlink`]: links, addresses,
//! routes and namespace ids. The only place that builds or parses
//! rtnetlink messages; every request builder has a golden test
//! (`tests/host_netlink_golden.rs`).
//!
//! A [`Handle`] owns one netlink socket bound to one network namespace, for
//! its whole life. Open one per namespace you work in:
//!
//! ```no_run
//! use ipvlan::netns::{self, Netns};
//! use ipvlan::rtnl::{AddrFlags, Handle, IpvlanFlag, IpvlanMode, LinkSpec, RouteSpec};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let host = Handle::new()?;
//! let parent = host.link_index("eth0")?;
//! let ns = Netns::open_named(netns::DEFAULT_RUN_DIR, "c1")?;
//! let spec = LinkSpec::ipvlan("eth1", parent, IpvlanMode::L2, IpvlanFlag::Bridge).in_netns(&ns);
//! host.link_add(&spec)?; // born inside c1
//! let c1 = Handle::in_netns(&ns)?;
//! let eth1 = c1.link_index("eth1")?;
//! c1.addr_add(eth1, "192.168.10.5/24".parse()?, AddrFlags::empty())?;
//! c1.link_set_up(eth1)?;
//! c1.route_add(&RouteSpec::default_via("192.168.10.1".parse()?))?;
//! # Ok(()) }
//! ```

pub mod addr;
mod decode;
pub mod error;
pub mod link;
pub mod nsid;
pub mod pipeline;
pub mod route;

pub use addr::{AddrFlags, Address};
pub use decode::decode_all;
pub use error::{kind_support, missing_kind_explanation, KindSupport};
pub use link::{
    IpvlanFlag, IpvlanMode, Link, LinkData, LinkKind, LinkSpec, MacvlanMode, ProbeKind, Reported,
    UnknownName,
};
pub use pipeline::Step;
pub use route::{IpFamily, Route, RouteSpec};

use std::path::Path;

use crate::netlink::{Error, MessageBuilder, Result, Socket};
use crate::netns::{self, Netns};
use error::LinkRef;

/// An rtnetlink socket bound to one network namespace.
///
/// `Send` but not `Sync`: requests on one handle are sequential (one
/// sequence counter); threads that work in parallel open a handle each.
#[derive(Debug)]
pub struct Handle {
    socket: Socket,
    netns: Option<String>,
}

impl Handle {
    /// A handle for the calling thread's network namespace.
    pub fn new() -> Result<Handle> {
        Ok(Handle {
            socket: Socket::open()?,
            netns: None,
        })
    }

    /// A handle for `netns`. The socket is opened by the calling thread,
    /// moved into `netns` for that and back at once (see
    /// [`netns::run_here`], which says why that is safe with many threads,
    /// and that the process aborts if the thread cannot get back). While
    /// a process's main thread is there, `/proc/PID/ns/net` names `netns`:
    /// an `ipvlan rm -f` of a container whose namespace that is, looking
    /// for its processes at that moment, would take the whole program for
    /// one and kill it. A program that opens handles in our containers
    /// without the store's lock does so from another thread
    /// ([`netns::apart`]).
    pub fn in_netns(netns: &Netns) -> Result<Handle> {
        let socket = netns::run_here(netns, Socket::open)
            .map_err(|e| Error::from(e).op("enter netns").netns(Some(netns.label())))?
            .map_err(|e| e.netns(Some(netns.label())))?;
        Ok(Handle {
            socket,
            netns: Some(netns.label().to_owned()),
        })
    }

    /// A handle for `netns`, opened by a thread that is inside it already
    /// (`_inside`: the visit that put it there), without another visit.
    pub fn inside(netns: &Netns, _inside: &netns::Visit) -> Result<Handle> {
        Ok(Handle {
            socket: Socket::open().map_err(|e| e.netns(Some(netns.label())))?,
            netns: Some(netns.label().to_owned()),
        })
    }

    /// A handle for `netns`, its socket opened by a thread whose own
    /// namespace is `home`, open already ([`netns::run_here_from`]: two
    /// system calls fewer than [`Handle::in_netns`]). The outer error is
    /// the move's (another kind of namespace is refused there, as
    /// [`Netns::open_path`] refuses it), the inner one the socket's.
    pub fn in_netns_from(home: &Netns, netns: &Netns) -> std::io::Result<Result<Handle>> {
        let socket = netns::run_here_from(home, netns, Socket::open)?;
        Ok(socket
            .map(|socket| Handle {
                socket,
                netns: Some(netns.label().to_owned()),
            })
            .map_err(|e| e.netns(Some(netns.label()))))
    }

    /// A handle for the named netns `run_dir/name` (`ip netns add` layout;
    /// run dir normally [`netns::DEFAULT_RUN_DIR`]).
    pub fn in_named_netns(run_dir: impl AsRef<Path>, name: &str) -> Result<Handle> {
        let ns = Netns::open_named(run_dir, name)
            .map_err(|e| Error::from(e).op("open netns").netns(Some(name)))?;
        Self::in_netns(&ns)
    }

    /// A handle for the netns at `path` (a bind mount or `/proc/PID/ns/net`).
    pub fn in_netns_path(path: impl AsRef<Path>) -> Result<Handle> {
        let path = path.as_ref();
        let ns = Netns::open_path(path).map_err(|e| {
            Error::from(e)
                .op("open netns")
                .netns(Some(&path.display().to_string()))
        })?;
        Self::in_netns(&ns)
    }

    /// A handle for the netns of process `pid`.
    pub fn in_netns_of_pid(pid: u32) -> Result<Handle> {
        let ns = Netns::open_pid(pid).map_err(|e| {
            Error::from(e)
                .op("open netns")
                .netns(Some(&format!("pid {pid}")))
        })?;
        Self::in_netns(&ns)
    }

    /// The underlying socket, for requests this module does not wrap.
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// Name (or path) of the handle's netns; `None` for the caller's own.
    pub fn netns_label(&self) -> Option<&str> {
        self.netns.as_deref()
    }

    /// Sends a request that is answered by an ACK, adding context to errors.
    fn ack(&self, msg: &MessageBuilder, op: &'static str, link: LinkRef) -> Result<()> {
        self.socket
            .request(msg)
            .map_err(|e| self.context(e, op, link))
    }

    fn context(&self, err: Error, op: &'static str, link: LinkRef) -> Error {
        err.op(op)
            .subject(link.to_string())
            .netns(self.netns.as_deref())
    }

    fn context_op(&self, err: Error, op: &'static str) -> Error {
        err.op(op).netns(self.netns.as_deref())
    }
}
