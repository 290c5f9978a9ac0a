//! A synchronous `NETLINK_ROUTE` socket: requests with ACKs, single replies,
//! dumps and batches.
//!
//! Every datagram is read by the pure readers of [`super::reply`]: a reply
//! must come from the kernel (port 0), carry our port id and the request's
//! sequence number; anything else (a late reply to an abandoned request) is
//! skipped. Errors carry the kernel's extended-ack text (`NETLINK_EXT_ACK`);
//! ACKs are capped (`NETLINK_CAP_ACK`).

use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use super::consts::*;
use super::error::{Error, ErrorKind, Result};
use super::message::{MessageBuilder, MessageView};
use super::reply::{single_reply, AckReader, DumpReader};
use crate::sys;

pub use super::reply::{parse_done, parse_error};

/// How often a dump interrupted by concurrent changes is restarted.
pub const DUMP_ATTEMPTS: u32 = 5;

/// Smallest receive buffer: kernel dump datagrams reach ~32 KiB.
const MIN_RECV_BUF: usize = 32 * 1024;

/// How long a socket waits for each datagram of an answer (`SO_RCVTIMEO`).
/// The kernel handles rtnetlink requests inside `sendmsg`, so a reply that
/// is not there within a fraction of a second never comes (lost, or never
/// asked for). Waiting forever would hang the tool with its state lock
/// held; 30 s is far beyond any real reply, even on a loaded machine.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(30);

/// Send buffer asked for (`SO_SNDBUF`; the kernel doubles it). A datagram
/// larger than the doubled value fails with `EMSGSIZE`.
const SEND_BUF: usize = 32 * 1024;

/// Largest datagram [`Socket::request_batch`] sends: half the send buffer
/// we ask for, whatever the kernel does with it.
const MAX_BATCH_BYTES: usize = SEND_BUF / 2;

/// Most requests in one datagram: each ACK is its own buffer in our receive
/// queue (about 1 KiB of accounting each), which must not overflow.
const MAX_BATCH_MESSAGES: usize = 256;

/// A netlink socket bound to the network namespace it was opened in.
#[derive(Debug)]
pub struct Socket {
    fd: OwnedFd,
    port_id: u32,
    seq: Cell<u32>,
    recv_timeout: Cell<Duration>,
}

/// Sets a socket option the running kernel may not know (`ENOPROTOOPT`).
fn set_optional(fd: &OwnedFd, name: i32) -> io::Result<()> {
    match sys::setsockopt_int(fd.as_fd(), SOL_NETLINK, name, 1) {
        Err(err) if err.raw_os_error() == Some(libc::ENOPROTOOPT) => Ok(()),
        other => other,
    }
}

impl Socket {
    /// Opens an rtnetlink socket in the calling thread's network namespace.
    pub fn open() -> Result<Socket> {
        Self::open_inner().map_err(|err| Error::from(err).op("open netlink socket"))
    }

    fn open_inner() -> io::Result<Socket> {
        let fd = sys::netlink_socket(NETLINK_ROUTE)?;
        sys::setsockopt_int(
            fd.as_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            SEND_BUF as i32,
        )?;
        sys::setsockopt_int(fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, 1024 * 1024)?;
        sys::setsockopt_timeval(
            fd.as_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            RECV_TIMEOUT,
        )?;
        set_optional(&fd, NETLINK_EXT_ACK)?;
        set_optional(&fd, NETLINK_CAP_ACK)?;
        set_optional(&fd, NETLINK_GET_STRICT_CHK)?;
        sys::bind_netlink(fd.as_fd(), 0, 0)?;
        let port_id = sys::netlink_port_id(fd.as_fd())?;
        // Start from the clock like iproute2, so replies to an earlier process
        // that used the same port id cannot match by accident.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_secs() as u32);
        Ok(Socket {
            fd,
            port_id,
            seq: Cell::new(seed),
            recv_timeout: Cell::new(RECV_TIMEOUT),
        })
    }

    /// Changes how long to wait for each datagram of an answer (default
    /// [`RECV_TIMEOUT`]); past it, requests fail with [`ErrorKind::Timeout`].
    pub fn set_recv_timeout(&self, timeout: Duration) -> Result<()> {
        sys::setsockopt_timeval(
            self.fd.as_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            timeout,
        )
        .map_err(|err| Error::from(err).op("set netlink receive timeout"))?;
        self.recv_timeout.set(timeout);
        Ok(())
    }

    /// The cookie of the network namespace the socket was opened in
    /// (`SO_NETNS_COOKIE`): unlike the nsfs inode, never reused by another
    /// namespace. `None` when the kernel is older than 5.14.
    pub fn netns_cookie(&self) -> io::Result<Option<u64>> {
        match sys::getsockopt_u64(self.fd.as_fd(), libc::SOL_SOCKET, SO_NETNS_COOKIE) {
            Ok(cookie) => Ok(Some(cookie)),
            Err(err) if err.raw_os_error() == Some(libc::ENOPROTOOPT) => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// The port id the kernel assigned to this socket.
    pub fn port_id(&self) -> u32 {
        self.port_id
    }

    fn next_seq(&self) -> u32 {
        let seq = self.seq.get().wrapping_add(1).max(1);
        self.seq.set(seq);
        seq
    }

    fn send(&self, bytes: &[u8]) -> Result<()> {
        let sent = sys::send_to_kernel(self.fd.as_fd(), bytes)?;
        if sent != bytes.len() {
            return Err(Error::malformed("short send on netlink socket"));
        }
        Ok(())
    }

    /// Receives one datagram whole, sized by a `MSG_PEEK | MSG_TRUNC` probe.
    fn recv(&self) -> Result<Vec<u8>> {
        // SO_RCVTIMEO expired: EAGAIN (== EWOULDBLOCK on Linux).
        let timed_out = |err: io::Error| match err.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Error::new(ErrorKind::Timeout {
                after: self.recv_timeout.get(),
            }),
            _ => Error::from(err),
        };
        loop {
            let want = sys::peek_datagram_len(self.fd.as_fd())
                .map_err(timed_out)?
                .max(MIN_RECV_BUF);
            let mut buf = vec![0; want];
            let (len, sender) = sys::recv_from(self.fd.as_fd(), &mut buf).map_err(timed_out)?;
            if len > buf.len() {
                return Err(Error::malformed("datagram truncated"));
            }
            if sender != 0 {
                continue; // not from the kernel
            }
            buf.truncate(len);
            return Ok(buf);
        }
    }

    /// Sends `msg` with `NLM_F_ACK` and waits for the kernel's answer.
    pub fn request(&self, msg: &MessageBuilder) -> Result<()> {
        let mut results = self.request_batch(std::slice::from_ref(msg))?;
        results.pop().unwrap_or(Ok(()))
    }

    /// Sends all `msgs` (with `NLM_F_ACK`) and returns one result per
    /// message, in order. They go in as few datagrams as the socket buffers
    /// allow (at most 16 KiB and 256 requests each);
    /// the kernel processes every message even after one fails. The outer
    /// `Result` fails only if sending or receiving itself failed; then the
    /// messages of earlier datagrams have taken effect.
    pub fn request_batch(&self, msgs: &[MessageBuilder]) -> Result<Vec<Result<()>>> {
        let mut results = Vec::with_capacity(msgs.len());
        let mut rest = msgs;
        while !rest.is_empty() {
            let mut size = 0;
            let count = rest
                .iter()
                .take(MAX_BATCH_MESSAGES)
                .take_while(|msg| {
                    size += msg.as_bytes().len();
                    size <= MAX_BATCH_BYTES
                })
                .count()
                .max(1); // a single large message goes alone
            let (chunk, later) = rest.split_at(count);
            results.extend(self.request_datagram(chunk)?);
            rest = later;
        }
        Ok(results)
    }

    /// Sends `msgs` (with `NLM_F_ACK`) in one datagram; one result each.
    fn request_datagram(&self, msgs: &[MessageBuilder]) -> Result<Vec<Result<()>>> {
        let mut datagram = Vec::new();
        let mut seqs = Vec::with_capacity(msgs.len());
        for msg in msgs {
            let seq = self.next_seq();
            let mut msg = msg.clone();
            msg.set_flags(msg.flags() | NLM_F_REQUEST | NLM_F_ACK);
            datagram.extend(msg.to_bytes(seq, self.port_id)?);
            seqs.push(seq);
        }
        self.send(&datagram)?;
        let mut acks = AckReader::new(self.port_id, seqs);
        while !acks.feed(&self.recv()?)? {}
        acks.finish()
            .ok_or_else(|| Error::malformed("batch ended with requests unanswered"))
    }

    /// Sends a non-dump request (e.g. `RTM_GETLINK` by name) and parses the
    /// single reply with `parse`.
    pub fn request_reply<T>(
        &self,
        msg: &MessageBuilder,
        mut parse: impl FnMut(&MessageView<'_>) -> Result<T>,
    ) -> Result<T> {
        let seq = self.next_seq();
        let mut msg = msg.clone();
        msg.set_flags((msg.flags() | NLM_F_REQUEST) & !NLM_F_ACK);
        self.send(&msg.to_bytes(seq, self.port_id)?)?;
        loop {
            let buf = self.recv()?;
            if let Some(reply) = single_reply(&buf, self.port_id, seq, &mut parse) {
                return reply;
            }
        }
    }

    /// Runs a dump request and collects what `parse` returns for each data
    /// message (`None` skips one). A dump interrupted by concurrent changes
    /// (`NLM_F_DUMP_INTR`) is restarted up to [`DUMP_ATTEMPTS`] times.
    pub fn dump<T>(
        &self,
        msg: &MessageBuilder,
        mut parse: impl FnMut(&MessageView<'_>) -> Result<Option<T>>,
    ) -> Result<Vec<T>> {
        let mut msg = msg.clone();
        msg.set_flags((msg.flags() | NLM_F_REQUEST | NLM_F_DUMP) & !NLM_F_ACK);
        for _ in 0..DUMP_ATTEMPTS {
            let seq = self.next_seq();
            self.send(&msg.to_bytes(seq, self.port_id)?)?;
            let mut reader = DumpReader::new(self.port_id, seq);
            let mut items = Vec::new();
            let interrupted = loop {
                let datagram = self.recv()?;
                let done = reader.feed(&datagram, &mut |m| {
                    items.extend(parse(m)?);
                    Ok(())
                })?;
                if let Some(interrupted) = done {
                    break interrupted;
                }
            };
            if !interrupted {
                return Ok(items);
            }
        }
        Err(Error::new(ErrorKind::DumpInterrupted {
            attempts: DUMP_ATTEMPTS,
        }))
    }
}
