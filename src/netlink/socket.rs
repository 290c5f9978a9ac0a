//! A synchronous `NETLINK_ROUTE` socket: requests with ACKs, single replies,
//! dumps and batches.
//!
//! Every datagram comes into one buffer the socket keeps, and is read by the
//! pure readers of [`super::reply`]: a reply must come from the kernel (port
//! 0), carry our port id and the request's sequence number; anything else (a
//! late reply to an abandoned request) is skipped. Errors carry the kernel's
//! extended-ack text (`NETLINK_EXT_ACK`); the ACKs of batches are capped
//! (`NETLINK_CAP_ACK`) only when a batch would not fit the receive buffer
//! without it: a single request needs no budget, and a few requests' error
//! ACKs, which then echo their requests, fit the buffer all the same.
//!
//! A command sends a handful of requests, so a socket costs only what it
//! uses: the kernel binds it at the first send and its first answer tells
//! the port id (no `bind`, no `getsockname`), the
//! receive timeout is set the first time an answer is not already queued
//! (rtnetlink answers inside `sendmsg`, so that is rare), strict checking
//! before the first dump (the kernel filters dumps by the request's
//! header and attributes only under it; a single `GET` of a valid request
//! is answered alike either way), and the
//! buffer sizes are read, and raised, only for batches that need them.
//! Each datagram is read with one `recvfrom`; one larger than the buffer
//! (reported by `MSG_TRUNC`) grows it and is asked for again.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use super::consts::*;
use super::error::{Error, ErrorKind, Result};
use super::message::{MessageBuilder, MessageView};
use super::reply::{single_reply, AckReader, DumpReader};
use crate::sys;

pub use super::reply::{parse_done, parse_error};

/// How often a dump interrupted by concurrent changes is restarted.
pub const DUMP_ATTEMPTS: u32 = 5;

/// How long a socket waits for each datagram of an answer (`SO_RCVTIMEO`).
/// The kernel handles rtnetlink requests inside `sendmsg`, so a reply that
/// is not there within a fraction of a second never comes (lost, or never
/// asked for). Waiting forever would hang the tool with its state lock
/// held; 30 s is far beyond any real reply, even on a loaded machine.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(30);

/// First size of the receive buffer. The kernel builds dump datagrams of up
/// to 32 KiB when the reader's buffer is that large; a larger datagram (a
/// link with many VFs) is reported truncated, grows the buffer, and the
/// request or dump is made again.
const MIN_RECV_BUF: usize = 32 * 1024;

/// How often a single reply that did not fit the buffer is asked for again
/// (the buffer has grown to its size in between, so once is enough unless
/// the link grew meanwhile).
const TRUNCATED_ATTEMPTS: u32 = 3;

/// The send buffer every kernel grants at least (`SOCK_MIN_SNDBUF` is a
/// little larger): a batch no larger than half of it less the slack needs
/// no `SO_SNDBUF`.
const UNASKED_SEND_BUF: usize = 4096;

/// Send buffer asked for (`SO_SNDBUF`). The kernel caps the value at
/// `net.core.wmem_max`, then doubles it; we read back what it granted.
const SEND_BUF: usize = 32 * 1024;

/// Receive buffer asked for (`SO_RCVBUF`): capped at `net.core.rmem_max`
/// (208 KiB unless raised), then doubled; we read back what it granted.
const RECV_BUF: usize = 1024 * 1024;

/// `netlink_sendmsg` refuses with `EMSGSIZE` a datagram longer than the
/// send buffer less these 32 bytes.
const SEND_BUF_SLACK: usize = 32;

/// What we budget for one ACK in our receive queue.
///
/// An ACK is `NLMSG_HDRLEN` + `sizeof(struct nlmsgerr)` = 16 + 20 = 36 bytes
/// with `NETLINK_CAP_ACK`, plus the extended-ack TLVs when there are some
/// (the text, up to about 80 bytes, an offset, at times a policy: a few
/// hundred bytes at most). But the kernel charges the receive buffer each
/// skb's truesize: the data area rounded up to its slab size, plus `struct
/// sk_buff` and `struct skb_shared_info`: 832 bytes on Linux 6.18, for a
/// plain ACK and an error with text alike (the `an_ack_costs_less_than_budgeted`
/// test measures it with `SO_MEMINFO`). 2 KiB leaves room for kernels and
/// configurations that account more.
const ACK_COST: usize = 2048;

/// How many requests [`Socket::request_batch`] puts in one datagram, from
/// the buffer sizes the kernel granted (read back after setting them).
///
/// The kernel answers the requests of a datagram inside `sendmsg`, an
/// error skb for each that fails and an ACK for the last, and drops an
/// answer (`ENOBUFS`) when the bytes already charged to our receive queue
/// exceed the receive buffer (since 6.15 and in the stable trees: when
/// they would with the answer). So the answers of one datagram, every
/// request failing at worst, must fit the receive buffer with room to
/// spare (other answers may be queued, our truesize estimate may be low):
/// they may take half of it. The datagram itself may take half of what `sendmsg` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchLimits {
    /// Largest datagram sent (a request larger than this still goes, alone).
    bytes: usize,
    /// Receive-queue bytes the ACKs of one datagram may take.
    ack_bytes: usize,
    /// Whether the kernel took `NETLINK_CAP_ACK` (Linux 4.3+). Without it,
    /// an error ACK echoes the whole request, which then costs that too.
    capped_acks: bool,
}

impl BatchLimits {
    /// From the effective `SO_SNDBUF` and `SO_RCVBUF` (already doubled).
    fn new(send_buf: usize, recv_buf: usize, capped_acks: bool) -> BatchLimits {
        BatchLimits {
            bytes: send_buf.saturating_sub(SEND_BUF_SLACK) / 2,
            ack_bytes: recv_buf / 2,
            capped_acks,
        }
    }

    fn ack_cost(&self, request_len: usize) -> usize {
        if self.capped_acks {
            ACK_COST
        } else {
            ACK_COST + request_len
        }
    }

    /// How many of `msgs` go in the next datagram: as many as both budgets
    /// allow, and at least one.
    fn next_batch(&self, msgs: &[MessageBuilder]) -> usize {
        let (mut bytes, mut ack_bytes) = (0usize, 0usize);
        let fitting = msgs.iter().take_while(|msg| {
            let len = msg.as_bytes().len();
            bytes = bytes.saturating_add(len);
            ack_bytes = ack_bytes.saturating_add(self.ack_cost(len));
            bytes <= self.bytes && ack_bytes <= self.ack_bytes
        });
        fitting.count().max(1).min(msgs.len())
    }
}

/// A netlink socket bound to the network namespace it was opened in.
pub struct Socket {
    fd: OwnedFd,
    /// 0 until known: the kernel binds the socket at its first send, and
    /// the first answer, addressed to that port, tells it.
    port_id: Cell<u32>,
    seq: Cell<u32>,
    /// The timeout `SO_RCVTIMEO` holds, `None` until set (at the first
    /// answer not yet queued; [`RECV_TIMEOUT`] then).
    recv_timeout: Cell<Option<Duration>>,
    /// Whether `NETLINK_GET_STRICT_CHK` was asked for (before the first
    /// dump; see the module documentation).
    strict_asked: Cell<bool>,
    /// Whether the kernel took `NETLINK_CAP_ACK`: `None` until a batch
    /// first asks for it.
    capped_acks: Cell<Option<bool>>,
    /// The batch budgets: `None` until a batch first needs them; `sized`
    /// says whether the buffers were raised already.
    limits: Cell<Option<BatchLimits>>,
    sized: Cell<bool>,
    /// Every datagram is read into this buffer, grown (and zeroed) only when
    /// a datagram is larger than any before. It is taken out of the cell
    /// while a datagram is read and handed over, so a callback that uses
    /// this same socket gets a buffer of its own rather than a borrow panic.
    recv_buf: Cell<Vec<u8>>,
    /// Whether a dump is under way, its callback running: no request may be
    /// sent then (see [`Socket::send`]).
    dumping: Cell<bool>,
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("fd", &self.fd)
            .field("port_id", &self.port_id.get())
            .field("seq", &self.seq.get())
            .field("recv_timeout", &self.timeout())
            .field("limits", &self.limits.get())
            .finish_non_exhaustive()
    }
}

/// The first sequence number of a socket: a count of the sockets this
/// process opened before, a step of 2^16 apart, so no two of its sockets
/// share a number. Nothing random: rtnetlink answers a request on the
/// sender's own socket before `sendmsg` returns (dumps, on its later
/// reads), and a closed socket's queue goes with it, so no reply meant for
/// another socket, of this process or an earlier one with the same port
/// id, can reach this one. The number is not private either: the kernel
/// copies it into the notifications it multicasts for our requests
/// (`ip monitor` shows them), which is why it must not come from the
/// bytes the C library keeps secret (`AT_RANDOM` seeds its stack
/// protector and its allocator's check).
fn seq_seed() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static OPENED: AtomicU32 = AtomicU32::new(0);
    OPENED.fetch_add(1 << 16, Ordering::Relaxed)
}

/// Sets a socket option the running kernel may not know (`ENOPROTOOPT`);
/// whether it knew it.
fn set_optional(fd: &OwnedFd, name: i32) -> io::Result<bool> {
    match sys::setsockopt_int(fd.as_fd(), SOL_NETLINK, name, 1) {
        Ok(()) => Ok(true),
        Err(err) if err.raw_os_error() == Some(libc::ENOPROTOOPT) => Ok(false),
        Err(err) => Err(err),
    }
}

/// Sets a `SOL_SOCKET` buffer size and reads back what the kernel granted.
fn set_buffer(fd: &OwnedFd, name: i32, bytes: usize) -> io::Result<usize> {
    let asked = i32::try_from(bytes).unwrap_or(i32::MAX);
    sys::setsockopt_int(fd.as_fd(), libc::SOL_SOCKET, name, asked)?;
    let granted = sys::getsockopt_int(fd.as_fd(), libc::SOL_SOCKET, name)?;
    Ok(usize::try_from(granted).unwrap_or(0))
}

/// Largest request of a pair [`fits_unasked`] sends together: an error
/// ACK that echoes it with an extended-ack text still fits the kernel's
/// smallest slab for an ACK (data and `struct skb_shared_info` within 512
/// bytes), so two ACKs are charged at most twice [`ACK_TRUESIZE`].
const UNASKED_REQUEST_BYTES: usize = 80;

/// What the kernel charges the receive buffer for an ACK of a request of
/// at most [`UNASKED_REQUEST_BYTES`], error or not, text or not (measured
/// by `an_ack_costs_less_than_budgeted`: 832 on Linux 6.18), with room.
const ACK_TRUESIZE: usize = 1024;

/// The smallest receive buffer the kernel grants (`SOCK_MIN_RCVBUF`, 2 KiB
/// and a `struct sk_buff`; `net.core.rmem_default` cannot go lower).
const SMALLEST_RCVBUF: usize = 2048 + 200;
const _: () = assert!(2 * ACK_TRUESIZE <= SMALLEST_RCVBUF);

/// Whether `msgs` go in one datagram without reading or raising the
/// socket buffers (two system calls saved on the pipelines of an attach,
/// an address and the link up): one request, or two of at most
/// [`UNASKED_REQUEST_BYTES`] each. The kernel queues the first ACK
/// whatever the receive buffer; the second, on kernels since the fix of
/// `sk_rmem_alloc`'s wraparound (6.15, and the stable trees), only while
/// both ACKs' charge stays within the buffer (older kernels: while the
/// first's does). The buffer is never below [`SMALLEST_RCVBUF`], and two
/// ACKs of requests this small, uncapped errors with text included, are
/// charged less ([`ACK_TRUESIZE`]). The datagram is well under half the
/// send buffer every kernel grants ([`UNASKED_SEND_BUF`]).
fn fits_unasked(msgs: &[MessageBuilder]) -> bool {
    match msgs {
        [] | [_] => true,
        [a, b] => [a, b]
            .iter()
            .all(|m| m.as_bytes().len() <= UNASKED_REQUEST_BYTES),
        _ => false,
    }
}

/// Whether `msg` starts a dump. rtnetlink reads `NLM_F_DUMP` on a `GET`
/// only (the low two bits of its type 2; on a `NEW` the same bits are
/// `NLM_F_REPLACE` and `NLM_F_EXCL`), and `netlink_rcv_skb` answers a
/// dump's start with neither an ACK nor an error, which a batch, where
/// silence before the last answer means success, would take for one.
fn starts_dump(msg: &MessageBuilder) -> bool {
    const RTNL_KIND_GET: u16 = 2;
    msg.kind() >= RTM_BASE && msg.kind() & 3 == RTNL_KIND_GET && msg.flags() & NLM_F_DUMP != 0
}

/// What a failed receive means: `None` when a read that was not to wait
/// found the queue empty.
fn recv_error(err: io::Error, wait: bool, timeout: Duration) -> Option<Error> {
    if err.raw_os_error() == Some(libc::ENOBUFS) {
        // The queue overflowed and the kernel dropped answers; for a batch
        // the caller works out which ones.
        return Some(Error::new(ErrorKind::Overrun {
            unknown: vec![0],
            total: 1,
            sent: 1,
        }));
    }
    match err.kind() {
        // SO_RCVTIMEO expired: EAGAIN (== EWOULDBLOCK on Linux).
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut if wait => {
            Some(Error::new(ErrorKind::Timeout { after: timeout }))
        }
        io::ErrorKind::WouldBlock => None,
        _ => Some(Error::from(err)),
    }
}

/// The answers to the requests of one datagram, read by an [`AckReader`]
/// made at the first answer, once the socket knows its port (see
/// `Socket::receive`).
struct Acks<'s> {
    socket: &'s Socket,
    seqs: Vec<u32>,
    reader: Option<AckReader>,
    /// Whether the kernel dropped answers before the reader was made.
    overrun: bool,
}

impl Acks<'_> {
    fn feed(&mut self, datagram: &[u8]) -> Result<bool> {
        let (port_id, seqs, overrun) = (self.socket.port_id.get(), &self.seqs, self.overrun);
        let reader = self.reader.get_or_insert_with(|| {
            let mut reader = AckReader::new(port_id, seqs.clone());
            if overrun {
                reader.overrun();
            }
            reader
        });
        reader.feed(datagram)
    }

    /// Answers were dropped: see [`AckReader::overrun`].
    fn overrun(&mut self) {
        self.overrun = true;
        if let Some(reader) = &mut self.reader {
            reader.overrun();
        }
    }

    fn unanswered(&self) -> Vec<usize> {
        match &self.reader {
            Some(reader) => reader.unanswered(),
            None => (0..self.seqs.len()).collect(),
        }
    }

    fn finish(self) -> Option<Vec<Result<()>>> {
        self.reader.and_then(AckReader::finish)
    }
}

impl Socket {
    /// The descriptor, for what the kernel tells of the socket itself (the
    /// namespace it was made in, `SIOCGSKNS`); requests, whose sequence
    /// numbers the socket keeps, go through its methods.
    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Lets the receive buffer go (it is made again, at its first size,
    /// by the next receive): for a caller holding many sockets at once,
    /// e.g. one per namespace of a batch, so their buffers do not add up.
    pub fn release_buffer(&self) {
        drop(self.recv_buf.take());
    }

    /// Opens an rtnetlink socket in the calling thread's network namespace.
    pub fn open() -> Result<Socket> {
        Self::open_inner().map_err(|err| Error::from(err).op("open netlink socket"))
    }

    /// Two system calls: the socket and the option every request relies
    /// on (error text). Everything else waits until it is needed (see the
    /// module documentation).
    fn open_inner() -> io::Result<Socket> {
        let fd = sys::netlink_socket(NETLINK_ROUTE)?;
        set_optional(&fd, NETLINK_EXT_ACK)?;
        let seed = seq_seed();
        Ok(Socket {
            fd,
            port_id: Cell::new(0),
            seq: Cell::new(seed),
            recv_timeout: Cell::new(None),
            strict_asked: Cell::new(false),
            capped_acks: Cell::new(None),
            limits: Cell::new(None),
            sized: Cell::new(false),
            recv_buf: Cell::new(Vec::new()),
            dumping: Cell::new(false),
        })
    }

    /// Raises the socket buffers (the receive buffer asked for is
    /// `recv_buf`) and sets the batch budgets from what the kernel granted.
    fn size_buffers(&self, recv_buf: usize) -> io::Result<BatchLimits> {
        let send_buf = set_buffer(&self.fd, libc::SO_SNDBUF, SEND_BUF)?;
        let recv_buf = set_buffer(&self.fd, libc::SO_RCVBUF, recv_buf)?;
        let limits = BatchLimits::new(send_buf, recv_buf, self.capped_acks()?);
        self.limits.set(Some(limits));
        self.sized.set(true);
        Ok(limits)
    }

    /// The budgets for a batch of `msgs`: first from the receive buffer the
    /// socket has (one `getsockopt`) and the send buffer every kernel
    /// grants; raised only when the batch needs more than those allow.
    fn limits_for(&self, msgs: &[MessageBuilder]) -> io::Result<BatchLimits> {
        let limits = match self.limits.get() {
            Some(limits) => limits,
            None => {
                let recv = sys::getsockopt_int(self.fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF)?;
                let recv = usize::try_from(recv).unwrap_or(0);
                // Budgeted as uncapped (each error's ACK echoing its
                // request) until a batch needs capped ACKs to fit: an
                // attach's few requests fit either way, and ask nothing.
                let capped = self.capped_acks.get().unwrap_or(false);
                let limits = BatchLimits::new(UNASKED_SEND_BUF, recv, capped);
                self.limits.set(Some(limits));
                limits
            }
        };
        if self.sized.get() || limits.next_batch(msgs) == msgs.len() {
            return Ok(limits);
        }
        if self.capped_acks.get().is_none() {
            let capped = BatchLimits {
                capped_acks: self.capped_acks()?,
                ..limits
            };
            self.limits.set(Some(capped));
            if capped.next_batch(msgs) == msgs.len() {
                return Ok(capped);
            }
        }
        self.size_buffers(RECV_BUF)
    }

    /// Whether ACKs are capped, asking for it the first time.
    fn capped_acks(&self) -> io::Result<bool> {
        if let Some(capped) = self.capped_acks.get() {
            return Ok(capped);
        }
        let capped = set_optional(&self.fd, NETLINK_CAP_ACK)?;
        self.capped_acks.set(Some(capped));
        Ok(capped)
    }

    /// Asks for strict checking, once, before the first dump.
    fn strict_before_dump(&self) -> io::Result<()> {
        if !self.strict_asked.get() {
            set_optional(&self.fd, NETLINK_GET_STRICT_CHK)?;
            self.strict_asked.set(true);
        }
        Ok(())
    }

    /// Changes how long to wait for each datagram of an answer (default
    /// [`RECV_TIMEOUT`]); past it, requests fail with [`ErrorKind::Timeout`].
    /// Zero is refused (the kernel would wait for ever); under a
    /// microsecond is one, and the kernel rounds up to its clock's tick.
    pub fn set_recv_timeout(&self, timeout: Duration) -> Result<()> {
        sys::setsockopt_timeval(
            self.fd.as_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            timeout,
        )
        .map_err(|err| Error::from(err).op("set netlink receive timeout"))?;
        self.recv_timeout.set(Some(timeout));
        Ok(())
    }

    /// How long a request waits for each datagram of its answer.
    fn timeout(&self) -> Duration {
        self.recv_timeout.get().unwrap_or(RECV_TIMEOUT)
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

    /// The port id the kernel assigned to this socket (binding it now if
    /// no request was sent yet).
    pub fn port_id(&self) -> io::Result<u32> {
        if self.port_id.get() == 0 {
            if sys::netlink_port_id(self.fd.as_fd())? == 0 {
                sys::bind_netlink(self.fd.as_fd(), 0, 0)?;
            }
            self.port_id.set(sys::netlink_port_id(self.fd.as_fd())?);
        }
        Ok(self.port_id.get())
    }

    fn next_seq(&self) -> u32 {
        let seq = self.seq.get().wrapping_add(1).max(1);
        self.seq.set(seq);
        seq
    }

    /// Sends one datagram: refused while a dump on this socket is under
    /// way (from its callback). The kernel makes a dump's next part inside
    /// the read that returned the one before, so that part is queued
    /// already: the nested request would read it and drop it as not its
    /// own, and the dump would end without it, and without an error.
    fn send(&self, bytes: &[u8]) -> Result<()> {
        if self.dumping.get() {
            return Err(Error::invalid(
                "a request on a netlink socket whose dump is under way (from the dump's callback): use another socket",
            ));
        }
        let sent = sys::send_to_kernel(self.fd.as_fd(), bytes)?;
        if sent != bytes.len() {
            return Err(Error::malformed("short send on netlink socket"));
        }
        Ok(())
    }

    /// Waits for the next datagram from the kernel and hands it to `read`;
    /// `Ok(Err(len))` when it was `len` bytes, more than the buffer, and
    /// lost (the buffer has grown to that size).
    fn recv<T>(&self, read: impl FnOnce(&[u8]) -> T) -> Result<std::result::Result<T, usize>> {
        match self.receive(true, read)? {
            Some(value) => Ok(value),
            // A waiting read that finds nothing has timed out (recv_error).
            None => Err(Error::new(ErrorKind::Timeout {
                after: self.timeout(),
            })),
        }
    }

    /// [`Self::recv`] where a datagram larger than the buffer is an error:
    /// for answers that are never that large (ACKs).
    fn recv_whole<T>(&self, read: impl FnOnce(&[u8]) -> T) -> Result<T> {
        self.recv(read)?
            .map_err(|_| Error::malformed("datagram truncated"))
    }

    /// Hands the next datagram from the kernel to `read`, if one is queued.
    fn try_recv<T>(
        &self,
        read: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<std::result::Result<T, usize>>> {
        self.receive(false, read)
    }

    fn receive<T>(
        &self,
        wait: bool,
        read: impl FnOnce(&[u8]) -> T,
    ) -> Result<Option<std::result::Result<T, usize>>> {
        let mut buf = self.recv_buf.take();
        if buf.capacity() == 0 {
            // Received into without being zeroed (`sys::recv_into_spare`):
            // the pages no datagram reaches are never touched.
            buf = Vec::with_capacity(MIN_RECV_BUF);
        }
        let outcome = match self.recv_into(&mut buf, wait) {
            Ok(Some(len)) if len > buf.capacity() => {
                // Lost: nothing in the buffer is kept.
                buf = Vec::with_capacity(len);
                Ok(Some(Err(len)))
            }
            Ok(Some(len)) => {
                if self.port_id.get() == 0 {
                    // The first send bound the socket (autobind) to a port
                    // we did not ask for: every answer the kernel sends us is
                    // addressed to it, so the first one tells it, without a
                    // getsockname.
                    // Only from a datagram that holds a whole header.
                    if let Some(pid) = buf.get(..len).and_then(|d| d.get(12..16)) {
                        let pid = u32::from_ne_bytes([pid[0], pid[1], pid[2], pid[3]]);
                        self.port_id.set(pid);
                    }
                }
                Ok(buf.get(..len).map(|d| Ok(read(d))))
            }
            Ok(None) => Ok(None),
            Err(err) => Err(err),
        };
        self.recv_buf.set(buf);
        outcome
    }

    /// Reads one datagram into `buf`'s capacity with one `recvfrom` (`buf`
    /// then holds what fitted); its full length (larger than the capacity
    /// if it did not fit, and is lost), or `None` if
    /// `wait` is false and nothing is queued. A waiting read first looks
    /// without waiting: the kernel answers inside `sendmsg`, so the answer
    /// is nearly always there, and only when it is not is the timeout set.
    fn recv_into(&self, buf: &mut Vec<u8>, wait: bool) -> Result<Option<usize>> {
        let failed = |err| match recv_error(err, wait, self.timeout()) {
            Some(err) => Err(err),
            None => Ok(None),
        };
        loop {
            let received = match sys::recv_into_spare(self.fd.as_fd(), buf, libc::MSG_DONTWAIT) {
                Err(err) if wait && err.kind() == io::ErrorKind::WouldBlock => {
                    if self.recv_timeout.get().is_none() {
                        self.set_recv_timeout(RECV_TIMEOUT)?;
                    }
                    sys::recv_into_spare(self.fd.as_fd(), buf, 0)
                }
                other => other,
            };
            let (len, sender) = match received {
                Ok(received) => received,
                Err(err) => return failed(err),
            };
            if sender != 0 {
                continue; // not from the kernel
            }
            return Ok(Some(len));
        }
    }

    /// Sends `msg` with `NLM_F_ACK` and waits for the kernel's answer.
    pub fn request(&self, msg: &MessageBuilder) -> Result<()> {
        let mut results = self.request_batch(std::slice::from_ref(msg))?;
        results.pop().unwrap_or(Ok(()))
    }

    /// Sends all `msgs` and returns one result per message, in order. They
    /// go in as few datagrams as the socket buffers the kernel granted
    /// allow (see `BatchLimits`), each datagram's last with `NLM_F_ACK`, so
    /// a pipeline that succeeds is one answer to read (see [`AckReader`]);
    /// the kernel processes every message even after one fails. The outer
    /// `Result` fails only if sending or receiving itself failed; then the messages of earlier
    /// datagrams have been processed, and those of later ones not sent. If
    /// the kernel dropped answers ([`ErrorKind::Overrun`]), the error lists
    /// the messages whose outcome is unknown.
    pub fn request_batch(&self, msgs: &[MessageBuilder]) -> Result<Vec<Result<()>>> {
        if msgs.iter().any(starts_dump) {
            return Err(Error::invalid(
                "a dump request cannot go in a batch (the kernel answers its start with no ACK)",
            ));
        }
        let setup = |err| Error::from(err).op("set up netlink socket");
        // One request always goes alone, and two small ones together, with
        // no budget to ask for (see `fits_unasked`).
        let limits = if fits_unasked(msgs) {
            BatchLimits::new(usize::MAX, usize::MAX, true)
        } else {
            self.limits_for(msgs).map_err(setup)?
        };
        let mut results = Vec::with_capacity(msgs.len());
        while let Some(rest) = msgs.get(results.len()..).filter(|r| !r.is_empty()) {
            let chunk = &rest[..limits.next_batch(rest)];
            results.extend(self.request_datagram(chunk, results.len(), msgs.len())?);
        }
        Ok(results)
    }

    /// Sends `msgs` in one datagram, the last with `NLM_F_ACK` (the kernel
    /// answers the others only if they fail; see [`AckReader`]); the reader
    /// of their answers.
    fn send_batch(&self, msgs: &[MessageBuilder]) -> Result<Acks<'_>> {
        let mut datagram = Vec::new();
        let mut seqs = Vec::with_capacity(msgs.len());
        for (position, msg) in msgs.iter().enumerate() {
            let seq = self.next_seq();
            let mut msg = msg.clone();
            let flags = msg.flags() | NLM_F_REQUEST;
            msg.set_flags(if position + 1 == msgs.len() {
                flags | NLM_F_ACK
            } else {
                flags & !NLM_F_ACK
            });
            datagram.extend(msg.to_bytes(seq, self.port_id.get())?);
            seqs.push(seq);
        }
        self.send(&datagram)?;
        Ok(Acks {
            socket: self,
            seqs,
            reader: None,
            overrun: false,
        })
    }

    /// Sends `msgs` in one datagram; one result each.
    /// `first` is the position of `msgs[0]` among the `total` messages of
    /// the caller's batch, for [`ErrorKind::Overrun`].
    fn request_datagram(
        &self,
        msgs: &[MessageBuilder],
        first: usize,
        total: usize,
    ) -> Result<Vec<Result<()>>> {
        crate::fault::point("netlink: before request");
        let mut acks = self.send_batch(msgs)?;
        loop {
            match self.recv_whole(|datagram| acks.feed(datagram)) {
                Ok(answered) => {
                    if answered? {
                        break;
                    }
                }
                Err(err) if matches!(err.kind(), ErrorKind::Overrun { .. }) => {
                    acks.overrun();
                    if self.drain(&mut acks)? {
                        break;
                    }
                    let unknown = acks.unanswered().into_iter().map(|i| first + i);
                    return Err(Error::new(ErrorKind::Overrun {
                        unknown: unknown.collect(),
                        total,
                        sent: first + msgs.len(),
                    }));
                }
                Err(err) => return Err(err),
            }
        }
        crate::fault::point("netlink: after acks");
        acks.finish()
            .ok_or_else(|| Error::malformed("batch ended with requests unanswered"))
    }

    /// After an overrun: reads, without waiting, the answers still queued;
    /// whether every request is answered (by an answer read: silence no
    /// longer counts, see [`AckReader::overrun`]). The kernel answered the
    /// requests of the datagram inside `sendmsg`, so an answer not queued
    /// now was dropped, or never sent (a request that succeeded silently),
    /// and will never come.
    fn drain(&self, acks: &mut Acks<'_>) -> Result<bool> {
        loop {
            match self.try_recv(|datagram| acks.feed(datagram)) {
                Ok(Some(Ok(answered))) => {
                    if answered? {
                        return Ok(true);
                    }
                }
                Ok(Some(Err(_))) => return Err(Error::malformed("datagram truncated")),
                Ok(None) => return Ok(false),
                // Another drop reported while draining: keep reading.
                Err(err) if matches!(err.kind(), ErrorKind::Overrun { .. }) => {}
                Err(err) => return Err(err),
            }
        }
    }

    /// Sends a non-dump request (e.g. `RTM_GETLINK` by name) and parses the
    /// single reply with `parse`. A reply larger than the buffer is asked
    /// for again with a buffer of its size (such requests only read).
    pub fn request_reply<T>(
        &self,
        msg: &MessageBuilder,
        mut parse: impl FnMut(&MessageView<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut value = None;
        self.request_reply_dyn(msg, &mut |m| {
            value = Some(parse(m)?);
            Ok(())
        })?;
        // Success means `parse` succeeded on the reply, so the value is there.
        value.ok_or_else(|| Error::malformed("no reply parsed"))
    }

    /// [`Self::request_reply`] without its type parameters, so that one
    /// copy serves every request.
    #[inline(never)]
    fn request_reply_dyn(
        &self,
        msg: &MessageBuilder,
        parse: &mut dyn FnMut(&MessageView<'_>) -> Result<()>,
    ) -> Result<()> {
        if starts_dump(msg) {
            // Its first part would be taken for the answer and the rest
            // left running in the kernel (the socket's next dump: EBUSY).
            return Err(Error::invalid(
                "a dump request has many answers, not one: it is read as a dump",
            ));
        }
        let mut msg = msg.clone();
        msg.set_flags((msg.flags() | NLM_F_REQUEST) & !NLM_F_ACK);
        for _ in 0..TRUNCATED_ATTEMPTS {
            let seq = self.next_seq();
            self.send(&msg.to_bytes(seq, self.port_id.get())?)?;
            loop {
                // The port is read once the answer is in (see `receive`).
                let reply = |d: &[u8]| single_reply(d, self.port_id.get(), seq, parse);
                match self.recv(reply)? {
                    Ok(Some(reply)) => return reply,
                    Ok(None) => {}
                    // Lost, maybe ours: ask again; a late copy is skipped
                    // by its old sequence number.
                    Err(_) => break,
                }
            }
        }
        Err(Error::malformed("reply larger than every buffer tried"))
    }

    /// Runs a dump request and collects what `parse` returns for each data
    /// message (`None` skips one). A dump interrupted by concurrent changes
    /// (`NLM_F_DUMP_INTR`), or one of whose datagrams was larger than the
    /// buffer, is restarted up to [`DUMP_ATTEMPTS`] times.
    pub fn dump<T>(
        &self,
        msg: &MessageBuilder,
        mut parse: impl FnMut(&MessageView<'_>) -> Result<Option<T>>,
    ) -> Result<Vec<T>> {
        let mut items = Vec::new();
        self.dump_each(msg, &mut |m| {
            match m {
                Some(m) => items.extend(parse(m)?),
                None => items.clear(),
            }
            Ok(())
        })?;
        Ok(items)
    }

    /// [`Self::dump`] without its type parameters, so that one copy serves
    /// every dump: hands each data message to `each`, and `None` when an
    /// attempt starts (what an interrupted one gave is to be forgotten).
    #[inline(never)]
    fn dump_each(
        &self,
        msg: &MessageBuilder,
        each: &mut dyn FnMut(Option<&MessageView<'_>>) -> Result<()>,
    ) -> Result<()> {
        let mut msg = msg.clone();
        msg.set_flags((msg.flags() | NLM_F_REQUEST | NLM_F_DUMP) & !NLM_F_ACK);
        self.strict_before_dump()
            .map_err(|err| Error::from(err).op("set up netlink socket"))?;
        for _ in 0..DUMP_ATTEMPTS {
            let seq = self.next_seq();
            self.send(&msg.to_bytes(seq, self.port_id.get())?)?;
            let dumping = Dumping::start(self);
            // Made at the first part, once the port is known (see `receive`).
            let mut reader: Option<DumpReader> = None;
            each(None)?;
            let mut each = |m: &MessageView<'_>| each(Some(m));
            let interrupted = loop {
                let part = |d: &[u8]| {
                    let port_id = self.port_id.get();
                    let reader = reader.get_or_insert_with(|| DumpReader::new(port_id, seq));
                    reader.feed(d, &mut each)
                };
                let read = crate::fault::io_refused("netlink: dump part lost")
                    .map_err(Error::from)
                    .and_then(|()| self.recv(part));
                // A read that fails (a part the kernel could not make:
                // ENOBUFS), a part that does not parse or that the caller
                // refuses: the error is returned, and `dumping` reads and
                // drops the rest on its way out.
                match read? {
                    Ok(Ok(Some(interrupted))) => break interrupted,
                    Ok(Ok(None)) => {}
                    Ok(Err(error)) => return Err(error),
                    Err(_) => {
                        // A part is lost: read the rest of this dump (the
                        // kernel makes each part inside our read, so once
                        // nothing is queued it is over), then start again.
                        while self.try_recv(|_| ())?.is_some() {}
                        break true;
                    }
                }
            };
            dumping.over();
            if !interrupted {
                return Ok(());
            }
        }
        Err(Error::new(ErrorKind::DumpInterrupted {
            attempts: DUMP_ATTEMPTS,
        }))
    }
}

impl Socket {
    /// Reads what is left of a dump that failed, without waiting: the
    /// kernel makes each part inside a read, so once nothing is queued it
    /// is over. A read that fails again (the same shortage) is tried again,
    /// a bounded number of times.
    fn drop_the_rest_of_a_dump(&self) {
        for _ in 0..DUMP_DRAIN_READS {
            if let Ok(None) = self.try_recv(|_| ()) {
                return;
            }
        }
    }
}

/// At most so many reads to drop the rest of a failed dump: some thousand
/// parts (a dump of every link of a host with a hundred thousand).
const DUMP_DRAIN_READS: usize = 4096;

/// Marks a dump under way on its socket until dropped (every way out of
/// the dump's reading, an error's too). Dropped before [`Dumping::over`]
/// (an error on the way), it first reads and drops the rest of the dump:
/// the kernel's dump would otherwise stay under way on the socket and
/// refuse the next one (`EBUSY`).
struct Dumping<'a> {
    socket: &'a Socket,
    over: bool,
}

impl<'a> Dumping<'a> {
    fn start(socket: &'a Socket) -> Dumping<'a> {
        socket.dumping.set(true);
        Dumping {
            socket,
            over: false,
        }
    }

    /// The dump was read to its end (or what is left of it was read).
    fn over(mut self) {
        self.over = true;
    }
}

impl Drop for Dumping<'_> {
    fn drop(&mut self) {
        if !self.over {
            self.socket.drop_the_rest_of_a_dump();
        }
        self.socket.dumping.set(false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netns;
    use crate::rtnl::link::{dump_request, get_by_index_request, set_up_request};
    use crate::rtnl::{LinkSpec, RouteSpec};

    /// The loopback device, the one link of a fresh namespace.
    const LO: u32 = 1;

    /// `SO_MEMINFO` (`asm-generic/socket.h`; not in `libc`): the socket's
    /// memory counters, `SK_MEMINFO_VARS` of them.
    const SO_MEMINFO: i32 = 55;

    fn in_fresh_netns(test: impl FnOnce() + Send) {
        netns::run_in_new(test).expect("unshare(CLONE_NEWNET) (are we root?)");
    }

    /// A route the kernel refuses (`ENETUNREACH`, "Nexthop has invalid
    /// gateway": an error with extended-ack text) in any fresh namespace.
    fn refused_route() -> MessageBuilder {
        RouteSpec::to("10.8.0.0/16".parse().unwrap())
            .via("192.0.2.1".parse().unwrap())
            .add_request()
            .unwrap()
    }

    /// Bytes charged to the socket's receive queue (`SK_MEMINFO_RMEM_ALLOC`).
    fn rmem_alloc(socket: &Socket) -> usize {
        let mut info = [0u32; 16];
        let level = libc::SOL_SOCKET;
        let read = sys::getsockopt_u32s(socket.fd.as_fd(), level, SO_MEMINFO, &mut info).unwrap();
        let slot = libc::SK_MEMINFO_RMEM_ALLOC as usize;
        assert!(read > slot, "SO_MEMINFO gave {read} counters");
        info[slot] as usize
    }

    impl Socket {
        /// Where the receive buffer lives and how large it is.
        fn recv_buf_identity(&self) -> (*const u8, usize) {
            let buf = self.recv_buf.take();
            let identity = (buf.as_ptr(), buf.capacity());
            self.recv_buf.set(buf);
            identity
        }
    }

    #[test]
    fn enobufs_is_an_overrun() {
        let fail =
            |errno, wait| recv_error(io::Error::from_raw_os_error(errno), wait, RECV_TIMEOUT);
        let overrun = fail(libc::ENOBUFS, true).unwrap();
        assert!(matches!(
            overrun.kind(),
            ErrorKind::Overrun { unknown, total: 1, sent: 1 } if unknown == &[0]
        ));
        assert_eq!(overrun.errno(), Some(libc::ENOBUFS));
        assert!(matches!(
            fail(libc::EAGAIN, true).unwrap().kind(),
            ErrorKind::Timeout { .. }
        ));
        assert!(fail(libc::EAGAIN, false).is_none(), "nothing queued");
        assert!(matches!(
            fail(libc::EBADF, true).unwrap().kind(),
            ErrorKind::Io(_)
        ));
    }

    /// A socket's sequence numbers leave the process in the notifications
    /// the kernel multicasts for its requests, so they carry nothing but the
    /// count of sockets opened: never bytes the C library keeps secret.
    #[test]
    fn sequence_numbers_count_sockets_and_carry_nothing_random() {
        in_fresh_netns(|| {
            let first = Socket::open().unwrap();
            first.request(&set_up_request(LO, true)).unwrap();
            let sent = first.seq.get();
            assert_eq!(sent & 0xffff, 1, "the first request of a socket: {sent:#x}");
            let second = Socket::open().unwrap();
            let start = second.seq.get();
            assert_eq!(start & 0xffff, 0, "a socket's first number: {start:#x}");
            assert_ne!(start, sent - 1, "each socket starts apart");
        });
    }

    #[test]
    fn batches_split_by_both_budgets() {
        let msgs = vec![set_up_request(LO, true); 300];
        let len = msgs[0].as_bytes().len();
        assert_eq!(len, 32);
        let by_bytes = BatchLimits {
            bytes: 3 * len + 1,
            ack_bytes: usize::MAX,
            capped_acks: true,
        };
        assert_eq!(by_bytes.next_batch(&msgs), 3);
        let by_acks = BatchLimits {
            bytes: usize::MAX,
            ack_bytes: 2 * ACK_COST + 1,
            capped_acks: true,
        };
        assert_eq!(by_acks.next_batch(&msgs), 2);
        let uncapped = BatchLimits {
            capped_acks: false,
            ..by_acks
        };
        assert_eq!(uncapped.next_batch(&msgs), 1, "error ACKs echo the request");
        let tiny = BatchLimits::new(0, 0, true);
        assert_eq!(tiny.next_batch(&msgs), 1, "one request always goes");
        assert_eq!(tiny.next_batch(&[]), 0);
        // Linux defaults: 32 KiB asked for sending, 64 KiB granted; the
        // receive buffer capped by rmem_max (212992), 425984 granted.
        let default = BatchLimits::new(65536, 425_984, true);
        assert_eq!(default.bytes, 32752);
        assert_eq!(default.next_batch(&msgs), 104);
    }

    #[test]
    fn socket_budgets_with_the_buffers_the_kernel_granted() {
        in_fresh_netns(|| {
            let socket = Socket::open().unwrap();
            let granted = |name| {
                let bytes = sys::getsockopt_int(socket.fd.as_fd(), libc::SOL_SOCKET, name);
                bytes.unwrap() as usize
            };
            // A few requests go with the buffers the socket was born with,
            // and ACKs uncapped.
            let default_recv = granted(libc::SO_RCVBUF);
            socket
                .request_batch(&vec![set_up_request(LO, true); 4])
                .unwrap();
            assert_eq!(
                socket.limits.get(),
                Some(BatchLimits::new(UNASKED_SEND_BUF, default_recv, false))
            );
            assert!(!socket.sized.get());
            // A batch larger than those allow raises them first.
            let big = vec![set_up_request(LO, true); 300];
            assert!(results_ok(&socket.request_batch(&big).unwrap()));
            let (send, recv) = (granted(libc::SO_SNDBUF), granted(libc::SO_RCVBUF));
            assert_eq!(
                socket.limits.get(),
                Some(BatchLimits::new(send, recv, true))
            );
            let rmem_max = std::fs::read_to_string("/proc/sys/net/core/rmem_max").unwrap();
            let rmem_max: usize = rmem_max.trim().parse().unwrap();
            assert_eq!(recv, 2 * RECV_BUF.min(rmem_max), "capped, then doubled");
        });
    }

    fn results_ok(results: &[Result<()>]) -> bool {
        results.iter().all(Result::is_ok)
    }

    #[test]
    fn the_port_is_learnt_from_the_first_answer() {
        in_fresh_netns(|| {
            let socket = Socket::open().unwrap();
            assert_eq!(socket.port_id.get(), 0, "not bound yet");
            socket.request(&set_up_request(LO, true)).unwrap();
            let bound = sys::netlink_port_id(socket.fd.as_fd()).unwrap();
            assert_ne!(bound, 0);
            assert_eq!(socket.port_id.get(), bound);
            // A fresh socket whose first call is a dump or a reply learns it too.
            let dumped = Socket::open().unwrap();
            assert_eq!(
                dumped
                    .dump(&dump_request(), |_| Ok(Some(())))
                    .unwrap()
                    .len(),
                1
            );
            assert_eq!(
                dumped.port_id.get(),
                sys::netlink_port_id(dumped.fd.as_fd()).unwrap()
            );
            let asked = Socket::open().unwrap();
            asked
                .request_reply(&get_by_index_request(LO), |_| Ok(()))
                .unwrap();
            assert_eq!(
                asked.port_id().unwrap(),
                sys::netlink_port_id(asked.fd.as_fd()).unwrap()
            );
            assert_ne!(asked.port_id().unwrap(), dumped.port_id().unwrap());
        });
    }

    #[test]
    fn a_datagram_larger_than_the_buffer_is_asked_for_again() {
        in_fresh_netns(|| {
            let socket = Socket::open().unwrap();
            // Smaller than one link message: the reply and the dump's
            // first part come truncated.
            socket.recv_buf.set(Vec::with_capacity(64));
            let index =
                socket.request_reply(&get_by_index_request(LO), |m| Ok(m.family_header(8)?[4]));
            assert_eq!(index.unwrap(), LO as u8);
            assert!(socket.recv_buf_identity().1 > 64, "grown");
            socket.recv_buf.set(Vec::with_capacity(64));
            let links = socket.dump(&dump_request(), |_| Ok(Some(()))).unwrap();
            assert_eq!(links.len(), 1);
            // Nothing stale is left behind.
            socket.request(&set_up_request(LO, true)).unwrap();
            assert_eq!(rmem_alloc(&socket), 0);
        });
    }

    #[test]
    fn an_ack_costs_less_than_budgeted() {
        in_fresh_netns(|| {
            let socket = Socket::open().unwrap();
            let accepted = set_up_request(LO, true);
            // ENETUNREACH with "Nexthop has invalid gateway": an ACK with text.
            let refused = refused_route();
            for (what, msg, errno) in [
                ("plain ACK", accepted, None),
                ("error with extended ack", refused, Some(libc::ENETUNREACH)),
            ] {
                // One datagram each: only a datagram's last request is
                // ACKed when it succeeds.
                const COUNT: usize = 32;
                let mut pending: Vec<Acks<'_>> = (0..COUNT)
                    .map(|_| socket.send_batch(std::slice::from_ref(&msg)).unwrap())
                    .collect();
                let cost = rmem_alloc(&socket) / COUNT;
                eprintln!("{what}: {cost} bytes of receive buffer each");
                assert!(cost > 36 && cost <= ACK_COST, "{what}: {cost} bytes");
                for acks in &mut pending {
                    while !socket.recv_whole(|d| acks.feed(d)).unwrap().unwrap() {}
                }
                for acks in pending {
                    let result = acks.finish().unwrap().pop().unwrap();
                    assert_eq!(result.err().and_then(|e| e.errno()), errno, "{what}");
                }
                assert_eq!(rmem_alloc(&socket), 0);
            }
        });
    }

    /// A datagram's requests are answered only when they fail, but for
    /// the last one's ACK: a pipeline that succeeds queues one answer (one
    /// read), and each failure still comes back as its request's result,
    /// wherever it sits.
    #[test]
    fn a_pipeline_is_acked_once_and_its_failures_each() {
        in_fresh_netns(|| {
            let socket = Socket::open().unwrap();
            let accepted = set_up_request(LO, true);
            let refused = refused_route();
            let queued = |msgs: &[MessageBuilder]| {
                let mut acks = socket.send_batch(msgs).unwrap();
                let queued = rmem_alloc(&socket);
                while !socket.recv_whole(|d| acks.feed(d)).unwrap().unwrap() {}
                assert_eq!(rmem_alloc(&socket), 0, "every answer read");
                (queued, acks.finish().unwrap())
            };
            let (one, _) = queued(std::slice::from_ref(&accepted));
            let (three, results) = queued(&vec![accepted.clone(); 3]);
            assert_eq!(three, one, "three requests that succeed, one ACK queued");
            assert!(results.iter().all(Result::is_ok));
            let errno = |r: &Result<()>| r.as_ref().err().and_then(|e| e.errno());
            let mixed = [
                refused.clone(),
                accepted.clone(),
                refused.clone(),
                accepted.clone(),
            ];
            let (_, results) = queued(&mixed);
            let errnos: Vec<_> = results.iter().map(errno).collect();
            let unreachable = Some(libc::ENETUNREACH);
            assert_eq!(errnos, [unreachable, None, unreachable, None]);
            let (_, results) = queued(&[accepted.clone(), refused.clone()]);
            assert_eq!(
                results.iter().map(errno).collect::<Vec<_>>(),
                [None, unreachable]
            );
        });
    }

    /// A dump's start is answered with no ACK and no error, which a batch
    /// would take for success: refused before anything is sent. The same
    /// flag bits on a `NEW` (`NLM_F_REPLACE`, `NLM_F_EXCL`) are no dump.
    #[test]
    fn a_dump_cannot_go_in_a_batch() {
        in_fresh_netns(|| {
            let socket = Socket::open().unwrap();
            let mut dump = dump_request();
            dump.set_flags(dump.flags() | NLM_F_DUMP);
            let refused = socket
                .request_batch(&[set_up_request(LO, true), dump])
                .unwrap_err();
            assert!(
                matches!(refused.kind(), ErrorKind::InvalidInput { .. }),
                "{refused}"
            );
            assert_eq!(rmem_alloc(&socket), 0, "nothing was sent");
            let mut excl = refused_route();
            excl.set_flags(excl.flags() | NLM_F_DUMP);
            let results = socket.request_batch(&[excl.clone(), excl]).unwrap();
            assert!(results
                .iter()
                .all(|r| r.as_ref().err().and_then(|e| e.errno()) == Some(libc::ENETUNREACH)));
        });
    }

    /// A dump asked as one request: refused before anything is sent (its
    /// first part was taken for the answer and the rest left running in
    /// the kernel, so that the socket's next dump failed with `EBUSY`).
    #[test]
    fn a_dump_is_not_one_answer() {
        in_fresh_netns(|| {
            let socket = Socket::open().unwrap();
            let mut dump = dump_request();
            dump.set_flags(dump.flags() | NLM_F_DUMP);
            let refused = socket.request_reply(&dump, |_| Ok(())).unwrap_err();
            assert!(
                matches!(refused.kind(), ErrorKind::InvalidInput { .. }),
                "{refused}"
            );
            assert_eq!(rmem_alloc(&socket), 0, "nothing was sent");
            let links = socket.dump(&dump_request(), |_| Ok(Some(()))).unwrap();
            assert_eq!(links.len(), 1, "lo");
        });
    }

    /// Answers dropped before the first is read (the reader not made yet):
    /// the last one's ACK does not vouch for a request left silent.
    #[test]
    fn an_overrun_before_the_first_answer_counts() {
        in_fresh_netns(|| {
            let socket = Socket::open().unwrap();
            let accepted = set_up_request(LO, true);
            let mut acks = socket.send_batch(&[accepted.clone(), accepted]).unwrap();
            acks.overrun();
            assert!(!socket.recv_whole(|d| acks.feed(d)).unwrap().unwrap());
            assert_eq!(acks.unanswered(), [0]);
        });
    }

    #[test]
    fn batches_fit_the_receive_buffer_the_kernel_granted() {
        in_fresh_netns(|| {
            // The smallest buffer the kernel grants (SOCK_MIN_RCVBUF, ~2.3 KiB).
            // Refused requests: each is answered, ACK asked or not, so the
            // answers' budget is what splits them into datagrams.
            let socket = Socket::open().unwrap();
            socket.size_buffers(0).unwrap();
            let msgs = vec![refused_route(); 64];
            let results = socket.request_batch(&msgs).unwrap();
            assert_eq!(results.len(), 64);
            assert!(results
                .iter()
                .all(|r| r.as_ref().err().and_then(|e| e.errno()) == Some(libc::ENETUNREACH)));
            assert_eq!(rmem_alloc(&socket), 0);

            // The same requests in one datagram overrun it. The answers
            // queued before the first drop are read; from then on the
            // kernel drops every answer until the queue is read empty.
            let err = socket.request_datagram(&msgs, 10, 100).unwrap_err();
            let ErrorKind::Overrun {
                unknown,
                total,
                sent,
            } = err.kind()
            else {
                panic!("{err}");
            };
            assert_eq!((*total, *sent), (100, 74));
            let read = 64 - unknown.len();
            assert!(read > 0 && read < 64, "{unknown:?}");
            assert_eq!(unknown, &(10 + read..74).collect::<Vec<_>>());
            assert!(
                err.to_string()
                    .contains("of 100 is unknown, and those from 74 on were not sent"),
                "{err}"
            );
            // Nothing stale is left behind: the next request gets its own ACK.
            socket.request(&set_up_request(LO, true)).unwrap();
            assert_eq!(rmem_alloc(&socket), 0);
        });
    }

    /// `NETLINK_CAP_ACK` is asked for only by a batch that needs it to
    /// fit: an attach's pipeline (address, up, route) asks for the
    /// receive buffer and nothing else (one `setsockopt` fewer a
    /// namespace); a batch too large for uncapped ACKs still gets them
    /// capped before the buffers are raised.
    #[test]
    fn acks_are_capped_only_for_a_batch_that_needs_it() {
        in_fresh_netns(|| {
            let capped = |socket: &Socket| {
                sys::getsockopt_int(socket.fd.as_fd(), SOL_NETLINK, NETLINK_CAP_ACK).unwrap()
            };
            let refused = refused_route();
            let socket = Socket::open().unwrap();
            let three = [set_up_request(LO, true), refused.clone(), refused.clone()];
            let results = socket.request_batch(&three).unwrap();
            assert!(results[0].is_ok());
            assert_eq!(
                results[2].as_ref().err().and_then(|e| e.errno()),
                Some(libc::ENETUNREACH)
            );
            assert_eq!(
                capped(&socket),
                0,
                "a pipeline of three asked for capped ACKs"
            );
            assert!(!socket.sized.get());
            assert_eq!(rmem_alloc(&socket), 0);

            // The smallest buffer: 64 uncapped error ACKs do not fit it.
            let socket = Socket::open().unwrap();
            socket.size_buffers(0).unwrap();
            socket.capped_acks.set(None);
            socket.sized.set(false);
            socket.limits.set(None);
            sys::setsockopt_int(socket.fd.as_fd(), SOL_NETLINK, NETLINK_CAP_ACK, 0).unwrap();
            let many = vec![refused.clone(); 64];
            let results = socket.request_batch(&many).unwrap();
            assert!(results
                .iter()
                .all(|r| r.as_ref().err().and_then(|e| e.errno()) == Some(libc::ENETUNREACH)));
            assert_eq!(capped(&socket), 1, "a batch that needed capped ACKs");
            assert_eq!(rmem_alloc(&socket), 0);
        });
    }

    #[test]
    fn a_small_pair_fits_the_smallest_buffer_unasked() {
        in_fresh_netns(|| {
            let accepted = set_up_request(LO, true);
            let refused = refused_route();
            // Near the bound: an error ACK echoes the whole request.
            let mut largest = RouteSpec::to("10.9.0.0/16".parse().unwrap())
                .via("192.0.2.1".parse().unwrap())
                .metric(7)
                .table(200)
                .add_request()
                .unwrap();
            while largest.as_bytes().len() + 8 <= UNASKED_REQUEST_BYTES {
                largest.put(libc::RTA_PRIORITY, &9u32.to_ne_bytes());
            }
            let size = largest.as_bytes().len();
            assert!(size > UNASKED_REQUEST_BYTES - 8 && size <= UNASKED_REQUEST_BYTES);
            for pair in [
                [accepted.clone(), accepted.clone()],
                [refused.clone(), accepted.clone()],
                [refused.clone(), refused.clone()],
                [largest.clone(), largest.clone()],
            ] {
                assert!(fits_unasked(&pair));
                // The smallest buffer the kernel grants, and ACKs not capped
                // (an error then echoes its request): both answers still come.
                let socket = Socket::open().unwrap();
                socket.size_buffers(0).unwrap();
                sys::setsockopt_int(socket.fd.as_fd(), SOL_NETLINK, NETLINK_CAP_ACK, 0).unwrap();
                let results = socket.request_batch(&pair).unwrap();
                let errnos: Vec<Option<i32>> = results
                    .iter()
                    .map(|r| r.as_ref().err().and_then(|e| e.errno()))
                    .collect();
                let expected: Vec<Option<i32>> = pair
                    .iter()
                    .map(|m| (m.as_bytes() != accepted.as_bytes()).then_some(libc::ENETUNREACH))
                    .collect();
                assert_eq!(errnos, expected);
                assert_eq!(rmem_alloc(&socket), 0);
            }
            let big = vec![accepted.clone(); 40];
            assert!(!fits_unasked(&big[..3]));
            largest.put(libc::RTA_PRIORITY, &9u32.to_ne_bytes());
            assert!(!fits_unasked(&[largest, accepted]));
        });
    }

    #[test]
    fn one_receive_buffer_serves_every_answer() {
        in_fresh_netns(|| {
            let socket = Socket::open().unwrap();
            socket.request(&set_up_request(LO, true)).unwrap();
            let buffer = socket.recv_buf_identity();
            assert!(buffer.1 >= MIN_RECV_BUF);
            for _ in 0..3 {
                socket.request(&set_up_request(LO, true)).unwrap();
                let index =
                    socket.request_reply(&get_by_index_request(LO), |m| Ok(m.family_header(8)?[4]));
                assert_eq!(index.unwrap(), LO as u8);
                let links = socket.dump(&dump_request(), |_| Ok(Some(()))).unwrap();
                assert_eq!(links.len(), 1);
                assert_eq!(socket.recv_buf_identity(), buffer, "reused, not grown");
            }
        });
    }

    /// `pairs` veth pairs, enough links for a dump of several parts.
    fn veth_pairs(socket: &Socket, pairs: usize) {
        for pair in 0..pairs {
            let spec = LinkSpec::veth(&format!("dv{pair}a"), &format!("dv{pair}b"));
            socket.request(&spec.request().unwrap()).unwrap();
        }
    }

    /// A caller's refusal of the first message: the dump is read to its
    /// end before the error is returned (a part that does not parse is
    /// drained the same way, but the kernel sends none to test it with).
    #[test]
    fn a_dump_given_up_midway_leaves_the_socket_ready_for_the_next() {
        in_fresh_netns(|| {
            let socket = Socket::open().unwrap();
            veth_pairs(&socket, 100);
            let mut seen = 0;
            let refused = socket.dump(&dump_request(), |_| -> Result<Option<()>> {
                seen += 1;
                Err(Error::malformed("refused by the test"))
            });
            assert!(refused.is_err());
            assert_eq!(seen, 1);
            // The first dump is over: the next one is not refused (EBUSY).
            let links = socket.dump(&dump_request(), |_| Ok(Some(()))).unwrap();
            assert_eq!(links.len(), 201);
            assert_eq!(rmem_alloc(&socket), 0);
        });
    }

    /// A read that fails in the middle of a dump (a part the kernel could
    /// not make: ENOBUFS; forced here) returns its error and leaves the
    /// socket ready for the next dump. Before, the kernel's dump stayed
    /// under way and the next one on the socket was refused (EBUSY).
    #[test]
    fn a_dump_whose_read_fails_leaves_the_socket_ready_for_the_next() {
        in_fresh_netns(|| {
            let socket = Socket::open().unwrap();
            veth_pairs(&socket, 100);
            crate::fault::unwind::refuse("netlink: dump part lost");
            let failed = socket.dump(&dump_request(), |_| Ok(Some(())));
            assert!(failed.is_err());
            let links = socket.dump(&dump_request(), |_| Ok(Some(()))).unwrap();
            assert_eq!(links.len(), 201);
            assert_eq!(rmem_alloc(&socket), 0);
        });
    }

    /// Every way out of a dump before its end reads and drops the rest:
    /// here the caller's start of an attempt refused, before any part was
    /// read. Before, only the read and parse failures did, and the next
    /// dump on the socket was refused (EBUSY).
    #[test]
    fn a_dump_left_at_its_start_leaves_the_socket_ready_for_the_next() {
        in_fresh_netns(|| {
            let socket = Socket::open().unwrap();
            veth_pairs(&socket, 100);
            let refused = socket.dump_each(&dump_request(), &mut |m| match m {
                None => Err(Error::malformed("refused by the test")),
                Some(_) => Ok(()),
            });
            assert!(refused.is_err());
            let links = socket.dump(&dump_request(), |_| Ok(Some(()))).unwrap();
            assert_eq!(links.len(), 201);
            assert_eq!(rmem_alloc(&socket), 0);
        });
    }

    #[test]
    fn a_callback_may_use_its_own_socket() {
        in_fresh_netns(|| {
            let socket = Socket::open().unwrap();
            let nested = socket.request_reply(&get_by_index_request(LO), |_| {
                socket.request(&set_up_request(LO, true))
            });
            nested.unwrap();
        });
    }

    /// A request from a dump's callback on the dump's own socket would read
    /// the dump's next part (already queued) and drop it: the dump ended
    /// `Ok` without those links. It is refused; the dump still gives every
    /// link, and the socket serves the next request.
    #[test]
    fn a_dumps_callback_cannot_take_the_dumps_answers() {
        in_fresh_netns(|| {
            let socket = Socket::open().unwrap();
            veth_pairs(&socket, 100);
            let mut nested = Vec::new();
            let links = socket
                .dump(&dump_request(), |_| {
                    if nested.is_empty() {
                        nested.push(socket.request_reply(&get_by_index_request(LO), |_| Ok(())));
                    }
                    Ok(Some(()))
                })
                .unwrap();
            assert_eq!(links.len(), 201, "every link, lo included");
            let refused = nested.pop().unwrap().unwrap_err();
            assert!(
                matches!(refused.kind(), ErrorKind::InvalidInput { .. }),
                "{refused}"
            );
            socket
                .request_reply(&get_by_index_request(LO), |_| Ok(()))
                .unwrap();
        });
    }
}
