//! Netlink transport: wire constants, message builder and views, attribute
//! parsing, the readers of the kernel's answers, the socket, and the error
//! type.
//!
//! This layer knows nothing about links or addresses; [`crate::rtnl`] builds
//! typed rtnetlink requests on top of it, and words what errors were about.
//! Files depend on each other bottom up only: `consts`, `error`, then
//! `attr`, `message`, `reply`, `socket`.

pub mod attr;
pub mod consts;
pub mod error;
pub mod message;
pub mod reply;
pub mod socket;

pub use attr::{Attr, AttrTable, Attrs};
pub use error::{Error, ErrorKind, Result};
pub use message::{FdRequest, Header, MessageBuilder, MessageView, Messages};
pub use socket::Socket;
