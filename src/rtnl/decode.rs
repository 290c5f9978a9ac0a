//! Every reply kind rtnl parses, decoded from one buffer: the robustness
//! tests' and the fuzzer's way into all the parsers at once.

use super::{nsid, Address, Link, Route};
use crate::netlink::consts::{NLMSG_DONE, NLMSG_ERROR, RTM_NEWADDR, RTM_NEWLINK, RTM_NEWROUTE};
use crate::netlink::{reply, Messages};

/// Walks every netlink message in `buf` and fully decodes the link, address,
/// route, namespace id, error and done messages; returns how many decoded cleanly.
/// Never panics, whatever the bytes (used by fuzzing and robustness tests).
pub fn decode_all(buf: &[u8]) -> usize {
    let mut decoded = 0;
    for msg in Messages::new(buf) {
        let Ok(msg) = msg else { break };
        let ok = match msg.header.kind {
            RTM_NEWLINK => Link::parse(&msg).is_ok(),
            RTM_NEWADDR => Address::parse(&msg).is_ok(),
            RTM_NEWROUTE => Route::parse(&msg).is_ok(),
            nsid::RTM_NEWNSID => nsid::parse_reply(&msg).is_ok(),
            NLMSG_ERROR => !matches!(reply::parse_error(&msg), Err(e) if e.errno().is_none()),
            NLMSG_DONE => !matches!(reply::parse_done(&msg), Err(e) if e.errno().is_none()),
            _ => false,
        };
        decoded += usize::from(ok);
    }
    decoded
}
