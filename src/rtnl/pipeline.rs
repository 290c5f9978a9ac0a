//! Several requests in one round trip ([`Handle::pipeline`]): the steps of
//! configuring a link, sent together and answered together.

use super::error::LinkRef;
use super::{addr, link, AddrFlags, Handle, RouteSpec};
use crate::netlink::{Error, MessageBuilder, Result};

/// One request of [`Handle::pipeline`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// [`Handle::addr_add`].
    AddrAdd {
        /// The link's index.
        index: u32,
        /// The address and prefix length.
        net: ipnet::IpNet,
        /// Its flags.
        flags: AddrFlags,
    },
    /// [`link::set_arp_notify_request`]: `arp_notify` on or off.
    ArpNotify {
        /// The link's index.
        index: u32,
        /// On or off.
        on: bool,
    },
    /// [`Handle::link_set_up`].
    LinkUp {
        /// The link's index.
        index: u32,
    },
    /// [`Handle::route_add`].
    RouteAdd(RouteSpec),
    /// [`RouteSpec::append_request`]: added beside a route of the same
    /// destination and metric.
    RouteAppend(RouteSpec),
}

impl Step {
    /// The request, and what an error of it is about (as the call of the
    /// same name says it).
    fn request(&self) -> Result<(MessageBuilder, &'static str, Option<LinkRef>)> {
        Ok(match self {
            Step::AddrAdd { index, net, flags } => (
                addr::add_request(*index, *net, *flags),
                "add address",
                Some(LinkRef::Index(*index)),
            ),
            Step::ArpNotify { index, on } => (
                link::set_arp_notify_request(*index, *on),
                "set arp_notify",
                Some(LinkRef::Index(*index)),
            ),
            Step::LinkUp { index } => (
                link::set_up_request(*index, true),
                "set link up",
                Some(LinkRef::Index(*index)),
            ),
            Step::RouteAdd(spec) => (spec.add_request()?, "add route", None),
            Step::RouteAppend(spec) => (spec.append_request()?, "add route", None),
        })
    }
}

impl Handle {
    /// Sends `steps` together, in one datagram, and then reads their
    /// answers: one round trip instead of one each, and one answer when
    /// all succeed (only the last asks for an ACK). The kernel carries them out in
    /// order and goes on after one fails, so a later step may act on what
    /// an earlier failed one should have made (a route through a link that
    /// stayed down, say): a caller undoes the whole lot on failure, e.g. by
    /// deleting the link they configure. The error is the first step's
    /// that failed, worded as the call of the same name would word it.
    pub fn pipeline(&self, steps: &[Step]) -> Result<()> {
        self.pipeline_each(steps)?.into_iter().collect()
    }

    /// [`Handle::pipeline`], each step's result in the order of `steps`:
    /// for a caller to whom some step's failure does not matter. The
    /// error returned is the exchange's (sending, or answers the kernel
    /// dropped), and then no step's result is given.
    pub fn pipeline_each(&self, steps: &[Step]) -> Result<Vec<Result<()>>> {
        let mut requests = Vec::with_capacity(steps.len());
        let mut contexts = Vec::with_capacity(steps.len());
        for step in steps {
            let (msg, op, link) = step
                .request()
                .map_err(|e| self.context_op(e, "build request"))?;
            requests.push(msg);
            contexts.push((op, link));
        }
        let context = |e: Error, (op, link): &(&'static str, Option<LinkRef>)| match link {
            Some(link) => self.context(e, op, link.clone()),
            None => self.context_op(e, op),
        };
        let results = self.socket.request_batch(&requests).map_err(|e| {
            // The step whose answer was lost, when it is one (steps that
            // succeed send no answer, so after an overrun usually every
            // one is unknown: the link's configuration is named then).
            let lost = match e.kind() {
                crate::netlink::ErrorKind::Overrun { unknown, .. } => match unknown[..] {
                    [one] => contexts.get(one),
                    _ => None,
                },
                _ => contexts.first().filter(|_| contexts.len() == 1),
            };
            match lost {
                Some(step) => context(e, step),
                None => self.context_op(e, "configure link"),
            }
        })?;
        Ok(results
            .into_iter()
            .zip(&contexts)
            .map(|(result, step)| result.map_err(|e| context(e, step)))
            .collect())
    }
}
