//! Namespace ids (`RTM_*NSID`, family header `rtgenmsg`): the number one
//! network namespace gives another, the one links report as
//! `IFLA_LINK_NETNSID` when their lower link lives there.
//!
//! Numbers from the uapi `linux/rtnetlink.h` and `linux/net_namespace.h`.

use std::os::fd::{AsRawFd, BorrowedFd};

use super::Handle;
use crate::netlink::consts::{AF_UNSPEC, NLM_F_REQUEST};
use crate::netlink::{AttrTable, Error, FdRequest, MessageBuilder, MessageView, Result};

/// A namespace id, in a reply or a notification.
pub const RTM_NEWNSID: u16 = 88;
/// A namespace id went away (notification).
pub const RTM_DELNSID: u16 = 89;
/// Asks for the id of a namespace.
pub const RTM_GETNSID: u16 = 90;

/// `NETNSA_NONE` (unused attribute type 0).
pub const NETNSA_NONE: u16 = 0;
/// The id (`s32`).
pub const NETNSA_NSID: u16 = 1;
/// The namespace of a process id (`u32`).
pub const NETNSA_PID: u16 = 2;
/// The namespace of a file descriptor of the sender (`u32`).
pub const NETNSA_FD: u16 = 3;
/// Answer in the namespace with this id instead of the socket's (`s32`).
pub const NETNSA_TARGET_NSID: u16 = 4;
/// The id of the socket's namespace in the target one (`s32`).
pub const NETNSA_CURRENT_NSID: u16 = 5;
/// The highest `NETNSA_*` attribute type.
pub const NETNSA_MAX: u16 = NETNSA_CURRENT_NSID;
/// The value of `NETNSA_NSID` for a namespace that has no id.
pub const NETNSA_NSID_NOT_ASSIGNED: i32 = -1;

/// `struct rtgenmsg`: the family byte; padded to 4 bytes on the wire.
const RTGENMSG_LEN: usize = 1;

/// `RTM_GETNSID` for the namespace `netns_fd` refers to (the request
/// borrows the descriptor: see [`FdRequest`]), answered by one
/// `RTM_NEWNSID`, like iproute2's `ip netns list`.
pub fn get_request(netns_fd: BorrowedFd<'_>) -> FdRequest<'_> {
    let mut msg = MessageBuilder::new(RTM_GETNSID, NLM_F_REQUEST);
    msg.family_header(&[AF_UNSPEC]);
    msg.put_u32(NETNSA_FD, netns_fd.as_raw_fd() as u32);
    FdRequest::new(msg, netns_fd)
}

/// The id in an `RTM_NEWNSID` reply: `None` for
/// [`NETNSA_NSID_NOT_ASSIGNED`]. A reply without `NETNSA_NSID` or with
/// another negative id is malformed.
pub fn parse_reply(msg: &MessageView<'_>) -> Result<Option<i32>> {
    if msg.header.kind != RTM_NEWNSID {
        return Err(Error::malformed("reply to RTM_GETNSID is not RTM_NEWNSID"));
    }
    msg.family_header(RTGENMSG_LEN)?;
    let tb = AttrTable::<{ NETNSA_MAX as usize + 1 }>::parse(msg.attr_area(RTGENMSG_LEN)?)?;
    let id = tb
        .get(NETNSA_NSID)
        .ok_or_else(|| Error::malformed("RTM_NEWNSID without NETNSA_NSID"))?
        .i32()?;
    match id {
        NETNSA_NSID_NOT_ASSIGNED => Ok(None),
        id if id >= 0 => Ok(Some(id)),
        _ => Err(Error::malformed("negative namespace id")),
    }
}

impl Handle {
    /// The id the handle's namespace gives the namespace `netns` refers
    /// to; `None` if it has given it none yet (it gives one when it first
    /// reports a link of its own whose lower link is there).
    pub fn nsid_of(&self, netns: BorrowedFd<'_>) -> Result<Option<i32>> {
        self.socket()
            .request_reply(&get_request(netns), parse_reply)
            .map_err(|e| self.context_op(e, "get namespace id"))
    }
}
