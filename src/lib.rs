//! ipvlan: Docker's IPvlan networks on plain Linux hosts.
//!
//! # Layers
//!
//! Bottom up; a file uses only its own layer and those below (checked by
//! `cargo xtask layers`):
//!
//! 1. [`sys`], [`json`]: system calls (the only `unsafe`) and JSON.
//! 2. [`netlink`]: the netlink transport.
//! 3. [`netns`]: network namespaces.
//! 4. [`rtnl`]: typed rtnetlink requests.
//! 5. [`ipam`]: address management.
//! 6. [`store`]: the state directory.
//! 7. [`driver`]: networks and endpoints.
//! 8. [`cli`]: the command line.

#![deny(missing_docs)]

pub mod cli;
pub mod driver;
pub mod ipam;
pub mod json;
pub mod netlink;
pub mod netns;
pub mod rtnl;
pub mod store;
pub mod sys;
