//! ipvlan: Docker's IPvlan networks on plain Linux hosts.
//!
//! Layers, bottom up: `sys` (the only `unsafe`), [`netlink`] (transport),
//! [`rtnl`] (typed rtnetlink requests), [`netns`], [`ipam`] and [`store`],
//! [`driver`] (networks and endpoints), and the front ends [`cli`] and `cni`.

#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod cli;
pub mod driver;
pub mod ipam;
pub mod json;
pub mod netlink;
pub mod netns;
pub mod rtnl;
pub mod store;
#[allow(unsafe_code)]
pub(crate) mod sys;
