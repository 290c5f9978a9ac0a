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
    /// The request.
    fn request(&self) -> Result<MessageBuilder> {
        Ok(match self {
            Step::AddrAdd { index, net, flags } => addr::add_request(*index, *net, *flags),
            Step::ArpNotify { index, on } => link::set_arp_notify_request(*index, *on),
            Step::LinkUp { index } => link::set_up_request(*index, true),
            Step::RouteAdd(spec) => spec.add_request()?,
            Step::RouteAppend(spec) => spec.append_request()?,
        })
    }

    /// What an error of it says, as the call of the same name says it:
    /// the operation and what it was about (the link, or the route).
    fn context(&self, error: Error) -> Error {
        match self {
            Step::AddrAdd { index, .. } => error
                .op("add address")
                .subject(LinkRef::Index(*index).to_string()),
            Step::ArpNotify { index, .. } => error
                .op("set arp_notify")
                .subject(LinkRef::Index(*index).to_string()),
            Step::LinkUp { index } => error
                .op("set link up")
                .subject(LinkRef::Index(*index).to_string()),
            Step::RouteAdd(spec) | Step::RouteAppend(spec) => {
                error.op("add route").subject(spec.to_string())
            }
        }
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
        for step in steps {
            let msg = step
                .request()
                .map_err(|e| self.context_op(e, "build request"))?;
            requests.push(msg);
        }
        let context = |e: Error, step: &Step| step.context(e).netns(self.netns_label());
        let results = self.socket.request_batch(&requests).map_err(|e| {
            // The step whose answer was lost, when it is one (steps that
            // succeed send no answer, so after an overrun usually every
            // one is unknown: the link's configuration is named then).
            let lost = match e.kind() {
                crate::netlink::ErrorKind::Overrun { unknown, .. } => match unknown[..] {
                    [one] => steps.get(one),
                    _ => None,
                },
                _ => steps.first().filter(|_| steps.len() == 1),
            };
            match lost {
                Some(step) => context(e, step),
                None => self.context_op(e, "configure link"),
            }
        })?;
        Ok(results
            .into_iter()
            .zip(steps)
            .map(|(result, step)| result.map_err(|e| context(e, step)))
            .collect())
    }
}
