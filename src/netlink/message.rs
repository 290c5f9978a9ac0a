//! Netlink messages: a builder that appends into one buffer, and checked views.
//!
//! Layout (`linux/netlink.h`): a 16-byte `nlmsghdr` (`len u32, type u16,
//! flags u16, seq u32, pid u32`), a family header (e.g. `ifinfomsg`), then
//! attributes, each padded to 4 bytes. `nlmsg_len` covers everything,
//! including the padding of the last attribute.

use std::net::IpAddr;

use super::attr::Attrs;
use super::consts::{align, NLA_HDRLEN, NLMSG_HDRLEN};
use super::error::{Error, Result};

/// The fixed message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Header {
    /// Length of the whole message, header included.
    pub len: u32,
    /// `NLMSG_*` or `RTM_*`.
    pub kind: u16,
    /// `NLM_F_*`.
    pub flags: u16,
    /// Sequence number, echoed by the kernel in replies.
    pub seq: u32,
    /// Port id: of the sender for requests, of the receiver for replies.
    pub pid: u32,
}

impl Header {
    /// Reads a header from the first 16 bytes of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Header> {
        let b = buf
            .get(..NLMSG_HDRLEN)
            .ok_or_else(|| Error::malformed("truncated message header"))?;
        Ok(Header {
            len: u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
            kind: u16::from_ne_bytes([b[4], b[5]]),
            flags: u16::from_ne_bytes([b[6], b[7]]),
            seq: u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
            pid: u32::from_ne_bytes([b[12], b[13], b[14], b[15]]),
        })
    }
}

/// A request that names a descriptor by its number (`IFLA_NET_NS_FD`,
/// `NETNSA_FD`): the kernel acts on whatever file the number names when
/// the request is sent, so it borrows the descriptor and cannot outlive it.
/// Read as the [`MessageBuilder`] it holds.
///
/// ```compile_fail
/// # use ipvlan::netns::Netns;
/// let request = {
///     let ns = Netns::current().unwrap();
///     ipvlan::rtnl::link::set_netns_request(7, ns.fd())
/// }; // error: `ns` does not live long enough (its descriptor closes here)
/// let _ = request.to_bytes(1, 0);
/// ```
#[derive(Debug, Clone)]
pub struct FdRequest<'fd> {
    msg: MessageBuilder,
    _fd: std::marker::PhantomData<std::os::fd::BorrowedFd<'fd>>,
}

impl<'fd> FdRequest<'fd> {
    /// `msg`, which names `fd` by its number.
    pub fn new(msg: MessageBuilder, _fd: std::os::fd::BorrowedFd<'fd>) -> FdRequest<'fd> {
        FdRequest {
            msg,
            _fd: std::marker::PhantomData,
        }
    }
}

impl std::ops::Deref for FdRequest<'_> {
    type Target = MessageBuilder;

    fn deref(&self) -> &MessageBuilder {
        &self.msg
    }
}

/// Builds one request: header, family header and attributes in one `Vec<u8>`.
///
/// `nlmsg_len` is kept up to date after every call, so the bytes are a valid
/// message at any point. Nests are written through [`MessageBuilder::nested`],
/// which closes them when the closure returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBuilder {
    buf: Vec<u8>,
    oversized: bool,
}

impl MessageBuilder {
    /// Starts a message of type `kind` (`RTM_*`) with `flags` (`NLM_F_*`);
    /// seq and pid are filled in by the socket.
    pub fn new(kind: u16, flags: u16) -> MessageBuilder {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&(NLMSG_HDRLEN as u32).to_ne_bytes());
        buf.extend_from_slice(&kind.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&[0; 8]);
        MessageBuilder {
            buf,
            oversized: false,
        }
    }

    fn pad_and_update_len(&mut self) {
        self.buf.resize(align(self.buf.len()), 0);
        match u32::try_from(self.buf.len()) {
            Ok(len) => self.buf[..4].copy_from_slice(&len.to_ne_bytes()),
            Err(_) => self.oversized = true,
        }
    }

    /// Appends the family header (`ifinfomsg`, `ifaddrmsg`, `rtmsg`...), padded.
    pub fn family_header(&mut self, bytes: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(bytes);
        self.pad_and_update_len();
        self
    }

    /// Appends one attribute with a raw payload.
    pub fn put(&mut self, kind: u16, payload: &[u8]) -> &mut Self {
        let len = NLA_HDRLEN + payload.len();
        let Ok(len16) = u16::try_from(len) else {
            self.oversized = true;
            return self;
        };
        self.buf.extend_from_slice(&len16.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad_and_update_len();
        self
    }

    /// Appends a `u8` attribute.
    pub fn put_u8(&mut self, kind: u16, value: u8) -> &mut Self {
        self.put(kind, &[value])
    }

    /// Appends a host-order `u16` attribute.
    pub fn put_u16(&mut self, kind: u16, value: u16) -> &mut Self {
        self.put(kind, &value.to_ne_bytes())
    }

    /// Appends a network-order (`__be16`) attribute.
    pub fn put_be16(&mut self, kind: u16, value: u16) -> &mut Self {
        self.put(kind, &value.to_be_bytes())
    }

    /// Appends a host-order `u32` attribute.
    pub fn put_u32(&mut self, kind: u16, value: u32) -> &mut Self {
        self.put(kind, &value.to_ne_bytes())
    }

    /// Appends a NUL-terminated string attribute (as iproute2 does).
    pub fn put_str(&mut self, kind: u16, value: &str) -> &mut Self {
        let mut payload = Vec::with_capacity(value.len() + 1);
        payload.extend_from_slice(value.as_bytes());
        payload.push(0);
        self.put(kind, &payload)
    }

    /// Appends an address attribute in network order (4 or 16 bytes).
    pub fn put_ip(&mut self, kind: u16, addr: IpAddr) -> &mut Self {
        match addr {
            IpAddr::V4(v4) => self.put(kind, &v4.octets()),
            IpAddr::V6(v6) => self.put(kind, &v6.octets()),
        }
    }

    /// Appends a nest of type `kind` holding what `fill` appends. The nest's
    /// length covers its contents; `NLA_F_NESTED` is not set, like iproute2
    /// and the kernel's own dumps for the legacy rtnetlink nests.
    pub fn nested(&mut self, kind: u16, fill: impl FnOnce(&mut Self)) -> &mut Self {
        let start = self.open_nest(kind);
        fill(self);
        self.close_nest(start)
    }

    /// Starts a nest of type `kind`; where it starts. Out of line, as
    /// [`Self::close_nest`]: [`Self::nested`] has a copy per caller.
    #[inline(never)]
    fn open_nest(&mut self, kind: u16) -> usize {
        let start = self.buf.len();
        self.put(kind, &[]);
        start
    }

    /// Sets the length of the nest started at `start` to cover its contents.
    #[inline(never)]
    fn close_nest(&mut self, start: usize) -> &mut Self {
        match u16::try_from(self.buf.len() - start) {
            Ok(len) => self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes()),
            Err(_) => self.oversized = true,
        }
        self
    }

    /// The message type.
    pub fn kind(&self) -> u16 {
        u16::from_ne_bytes([self.buf[4], self.buf[5]])
    }

    /// The header flags.
    pub fn flags(&self) -> u16 {
        u16::from_ne_bytes([self.buf[6], self.buf[7]])
    }

    /// Replaces the header flags.
    pub fn set_flags(&mut self, flags: u16) -> &mut Self {
        self.buf[6..8].copy_from_slice(&flags.to_ne_bytes());
        self
    }

    /// The bytes so far (seq and pid zero).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The finished message with `seq` and `pid`; fails if an attribute or
    /// the message outgrew its length field.
    pub fn to_bytes(&self, seq: u32, pid: u32) -> Result<Vec<u8>> {
        if self.oversized {
            return Err(Error::invalid("netlink request too large"));
        }
        let mut bytes = self.buf.clone();
        bytes[8..12].copy_from_slice(&seq.to_ne_bytes());
        bytes[12..16].copy_from_slice(&pid.to_ne_bytes());
        Ok(bytes)
    }
}

/// A checked view of one received message.
#[derive(Debug, Clone, Copy)]
pub struct MessageView<'a> {
    /// The message header.
    pub header: Header,
    payload: &'a [u8],
}

impl<'a> MessageView<'a> {
    /// Everything after the 16-byte header, up to `nlmsg_len`.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    /// The family header of `len` bytes at the start of the payload.
    pub fn family_header(&self, len: usize) -> Result<&'a [u8]> {
        self.payload
            .get(..len)
            .ok_or_else(|| Error::malformed("message shorter than its family header"))
    }

    /// The attribute area after a family header of `family_len` bytes.
    pub fn attr_area(&self, family_len: usize) -> Result<&'a [u8]> {
        self.payload
            .get(align(family_len)..)
            .ok_or_else(|| Error::malformed("message shorter than its family header"))
    }

    /// The attributes after a family header of `family_len` bytes.
    pub fn attrs(&self, family_len: usize) -> Result<Attrs<'a>> {
        self.attr_area(family_len).map(Attrs::new)
    }
}

/// Checked iterator over the messages of one datagram.
#[derive(Debug, Clone)]
pub struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Messages<'a> {
    /// Walks the messages in `buf`.
    pub fn new(buf: &'a [u8]) -> Messages<'a> {
        Messages { rest: buf }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<MessageView<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.rest);
        let header = match Header::parse(rest) {
            Ok(header) => header,
            Err(err) => return Some(Err(err)),
        };
        let len = header.len as usize;
        if len < NLMSG_HDRLEN || len > rest.len() {
            return Some(Err(Error::malformed("message length out of bounds")));
        }
        self.rest = rest.get(align(len)..).unwrap_or(&[]);
        Some(Ok(MessageView {
            header,
            payload: &rest[NLMSG_HDRLEN..len],
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_lengths_cover_padded_contents() {
        let mut msg = MessageBuilder::new(16, 0x605);
        msg.family_header(&[0; 16]).nested(18, |m| {
            m.put_str(1, "ipvlan").nested(2, |m| {
                m.put_u16(1, 0).put_u16(2, 2);
            });
        });
        let bytes = msg.to_bytes(7, 9).unwrap();
        assert_eq!(bytes.len(), 16 + 16 + 36);
        assert_eq!(Header::parse(&bytes).unwrap().len as usize, bytes.len());
        // IFLA_LINKINFO len 0x24, IFLA_INFO_KIND len 11, IFLA_INFO_DATA len 0x14.
        assert_eq!(&bytes[32..36], &[0x24, 0, 18, 0]);
        assert_eq!(&bytes[36..40], &[11, 0, 1, 0]);
        assert_eq!(&bytes[48..52], &[0x14, 0, 2, 0]);
        assert_eq!(&bytes[8..16], &[7, 0, 0, 0, 9, 0, 0, 0]);
    }

    #[test]
    fn oversized_attribute_is_an_error_not_a_panic() {
        let mut msg = MessageBuilder::new(16, 5);
        msg.put(1, &vec![0; 70_000]);
        assert!(msg.to_bytes(1, 0).is_err());
    }

    #[test]
    fn messages_reject_bad_lengths() {
        let mut two = MessageBuilder::new(3, 2).to_bytes(1, 0).unwrap();
        two.extend(MessageBuilder::new(3, 2).to_bytes(2, 0).unwrap());
        assert_eq!(Messages::new(&two).filter(|m| m.is_ok()).count(), 2);
        let mut bad = two.clone();
        bad[0] = 15;
        assert!(Messages::new(&bad).next().unwrap().is_err());
        bad[0] = 200;
        assert!(Messages::new(&bad).next().unwrap().is_err());
        assert!(Messages::new(&two[..10]).next().unwrap().is_err());
    }
}
