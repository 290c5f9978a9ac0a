//! A synchronous `NETLINK_ROUTE` socket: requests with ACKs, single replies,
//! dumps and batches.
//!
//! Every reply is checked: it must come from the kernel (port 0), carry our
//! port id and the request's sequence number; anything else (a late reply to
//! an abandoned request) is skipped. Errors carry the kernel's extended-ack
//! text (`NETLINK_EXT_ACK`); ACKs are capped (`NETLINK_CAP_ACK`).

use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use super::attr::AttrTable;
use super::consts::*;
use super::error::{Error, ErrorKind, Result};
use super::message::{Header, MessageBuilder, MessageView, Messages};
use crate::sys;

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
        loop {
            if let Some(results) = acks.feed(&self.recv()?)? {
                return Ok(results);
            }
        }
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
            for msg in Messages::new(&buf) {
                let msg = msg?;
                if !is_reply_to(&msg.header, self.port_id, seq) {
                    continue;
                }
                return match msg.header.kind {
                    NLMSG_ERROR => match parse_error(&msg) {
                        Ok(()) => Err(Error::malformed("ACK where a reply was expected")),
                        Err(err) => Err(err),
                    },
                    NLMSG_NOOP => continue,
                    NLMSG_DONE | NLMSG_OVERRUN => Err(Error::malformed(
                        "control message where a reply was expected",
                    )),
                    _ => parse(&msg),
                };
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

/// A reply to our request `seq`: addressed to our port, echoing the seq.
fn is_reply_to(header: &Header, port_id: u32, seq: u32) -> bool {
    header.pid == port_id && header.seq == seq
}

/// Collects the ACKs (or errors) of a batch, datagram by datagram.
#[derive(Debug)]
struct AckReader {
    port_id: u32,
    seqs: Vec<u32>,
    results: Vec<Option<Result<()>>>,
    pending: usize,
}

impl AckReader {
    fn new(port_id: u32, seqs: Vec<u32>) -> AckReader {
        let pending = seqs.len();
        AckReader {
            port_id,
            results: seqs.iter().map(|_| None).collect(),
            seqs,
            pending,
        }
    }

    /// Takes one datagram; once every request is answered, the results.
    fn feed(&mut self, datagram: &[u8]) -> Result<Option<Vec<Result<()>>>> {
        for msg in Messages::new(datagram) {
            let msg = msg?;
            if msg.header.pid != self.port_id || msg.header.kind != NLMSG_ERROR {
                continue; // foreign, or data such as an NLM_F_ECHO copy
            }
            let Some(slot) = self.seqs.iter().position(|&s| s == msg.header.seq) else {
                continue; // a late answer to an abandoned request
            };
            if self.results[slot].is_none() {
                self.results[slot] = Some(parse_error(&msg));
                self.pending -= 1;
            }
        }
        if self.pending > 0 {
            return Ok(None);
        }
        let results = std::mem::take(&mut self.results);
        Ok(Some(
            results.into_iter().map(|r| r.unwrap_or(Ok(()))).collect(),
        ))
    }
}

/// Follows one dump, datagram by datagram.
#[derive(Debug)]
struct DumpReader {
    port_id: u32,
    seq: u32,
    interrupted: bool,
    first_error: Option<Error>,
}

impl DumpReader {
    fn new(port_id: u32, seq: u32) -> DumpReader {
        DumpReader {
            port_id,
            seq,
            interrupted: false,
            first_error: None,
        }
    }

    /// Takes one datagram, handing each data message to `each`; once the dump
    /// is over, whether it was interrupted. After `each` fails the rest of the
    /// dump is still read (so no stale parts stay queued), then that error is
    /// returned.
    fn feed(
        &mut self,
        datagram: &[u8],
        each: &mut dyn FnMut(&MessageView<'_>) -> Result<()>,
    ) -> Result<Option<bool>> {
        for msg in Messages::new(datagram) {
            let msg = msg?;
            if !is_reply_to(&msg.header, self.port_id, self.seq) {
                continue;
            }
            self.interrupted |= msg.header.flags & NLM_F_DUMP_INTR != 0;
            match msg.header.kind {
                NLMSG_DONE => {
                    parse_done(&msg)?;
                    return self.finish();
                }
                // An error ends the dump; error 0 (an ACK) ends it cleanly.
                NLMSG_ERROR => {
                    parse_error(&msg)?;
                    return self.finish();
                }
                NLMSG_NOOP => {}
                NLMSG_OVERRUN => return Err(Error::malformed("netlink overrun")),
                _ => {
                    if self.first_error.is_none() {
                        self.first_error = each(&msg).err();
                    }
                }
            }
            if msg.header.flags & NLM_F_MULTI == 0 {
                return self.finish(); // a single-part answer is the whole dump
            }
        }
        Ok(None)
    }

    fn finish(&mut self) -> Result<Option<bool>> {
        match self.first_error.take() {
            Some(err) => Err(err),
            None => Ok(Some(self.interrupted)),
        }
    }
}

/// Reads an `NLMSG_ERROR` message: `Ok(())` for an ACK, the kernel's error
/// (errno, extended-ack text and offset) otherwise.
///
/// The errno is what callers branch on (`EEXIST`, `ENODEV`...), so it is
/// read first and kept whatever follows: a missing request header or a bad
/// extended-ack section only means "no message".
pub fn parse_error(msg: &MessageView<'_>) -> Result<()> {
    let payload = msg.payload();
    let error = payload
        .get(..4)
        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or_else(|| Error::malformed("truncated nlmsgerr"))?;
    let (message, offset) = match ext_ack_start(msg.header.flags, payload) {
        Some(start) => ext_ack(msg.header.flags, payload.get(start..)),
        None => (None, None),
    };
    kernel_error(error, message, offset)
}

/// Where the extended-ack TLVs of an `NLMSG_ERROR` payload start: after
/// the errno and the echoed request (its header only, if capped). `None`
/// when the echoed header is missing or its length is absurd (checked
/// arithmetic: a bogus `u32` length must not wrap on 32-bit targets).
fn ext_ack_start(flags: u16, payload: &[u8]) -> Option<usize> {
    let echoed = Header::parse(payload.get(4..)?).ok()?;
    let echoed_len = if flags & NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        let len = usize::try_from(echoed.len).ok()?;
        len.checked_add(NLMSG_ALIGNTO - 1)? & !(NLMSG_ALIGNTO - 1)
    };
    let start = echoed_len.checked_add(4)?;
    (start <= payload.len()).then_some(start)
}

/// Reads the `i32` at the start of `NLMSG_DONE`, and its extended ack.
pub fn parse_done(msg: &MessageView<'_>) -> Result<()> {
    let payload = msg.payload();
    // Very old kernels may send NLMSG_DONE without payload.
    let Some(b) = payload.get(..4) else {
        return Ok(());
    };
    let error = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
    let (message, offset) = ext_ack(msg.header.flags, payload.get(4..));
    kernel_error(error, message, offset)
}

/// The extended-ack text and offset, best effort: they only explain an
/// errno, so a section that is absent, cut or malformed yields neither,
/// and a text that is not UTF-8 is decoded lossily.
fn ext_ack(flags: u16, tlvs: Option<&[u8]>) -> (Option<String>, Option<u32>) {
    if flags & NLM_F_ACK_TLVS == 0 {
        return (None, None);
    }
    let Some(table) =
        tlvs.and_then(|tlvs| AttrTable::<{ NLMSGERR_ATTR_MAX as usize + 1 }>::parse(tlvs).ok())
    else {
        return (None, None);
    };
    let message = table
        .get(NLMSGERR_ATTR_MSG)
        .map(|a| a.str_lossy().into_owned());
    let offset = table.get(NLMSGERR_ATTR_OFFS).and_then(|a| a.u32().ok());
    (message, offset)
}

fn kernel_error(error: i32, message: Option<String>, offset: Option<u32>) -> Result<()> {
    match error {
        0 => Ok(()),
        e if e < 0 && e > -4096 => Err(Error::new(ErrorKind::Kernel {
            errno: -e,
            message,
            offset,
        })),
        _ => Err(Error::malformed("error code is not a negative errno")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(bytes: &[u8]) -> MessageView<'_> {
        Messages::new(bytes).next().unwrap().unwrap()
    }

    /// The 60-byte capped reply to a 56-byte `RTM_NEWLINK kind=ipvlan` on a
    /// kernel without ipvlan (netlink-anchors 1.7).
    fn capped_ipvlan_refusal() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend(60u32.to_ne_bytes());
        b.extend(NLMSG_ERROR.to_ne_bytes());
        b.extend((NLM_F_CAPPED | NLM_F_ACK_TLVS).to_ne_bytes());
        b.extend(5u32.to_ne_bytes());
        b.extend(77u32.to_ne_bytes());
        b.extend((-95i32).to_ne_bytes());
        b.extend(56u32.to_ne_bytes());
        b.extend(RTM_NEWLINK.to_ne_bytes());
        b.extend(0x605u16.to_ne_bytes());
        b.extend(5u32.to_ne_bytes());
        b.extend(77u32.to_ne_bytes());
        b.extend(24u16.to_ne_bytes());
        b.extend(NLMSGERR_ATTR_MSG.to_ne_bytes());
        b.extend(b"Unknown device type\0");
        assert_eq!(b.len(), 60);
        b
    }

    #[test]
    fn capped_error_with_ext_ack() {
        let bytes = capped_ipvlan_refusal();
        let err = parse_error(&view(&bytes)).unwrap_err();
        assert_eq!(err.errno(), Some(libc::EOPNOTSUPP));
        assert_eq!(err.ext_ack(), Some("Unknown device type"));
    }

    #[test]
    fn ack_and_done() {
        let mut ack = Vec::new();
        ack.extend(36u32.to_ne_bytes());
        ack.extend(NLMSG_ERROR.to_ne_bytes());
        ack.extend(NLM_F_CAPPED.to_ne_bytes());
        ack.extend([0; 8]);
        ack.extend(0i32.to_ne_bytes());
        ack.extend([16, 0, 0, 0, 16, 0, 5, 0]);
        ack.extend([0; 8]);
        assert!(parse_error(&view(&ack)).is_ok());

        let mut done = MessageBuilder::new(NLMSG_DONE, NLM_F_MULTI);
        done.family_header(&(-22i32).to_ne_bytes());
        let bytes = done.to_bytes(1, 1).unwrap();
        assert_eq!(parse_done(&view(&bytes)).unwrap_err().errno(), Some(22));
    }

    const PORT: u32 = 77;

    fn part(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut msg = MessageBuilder::new(kind, flags);
        msg.family_header(payload);
        msg.to_bytes(seq, PORT).unwrap()
    }

    fn ack(seq: u32, error: i32) -> Vec<u8> {
        let mut payload = error.to_ne_bytes().to_vec();
        payload.extend(
            MessageBuilder::new(RTM_NEWLINK, 5)
                .to_bytes(seq, PORT)
                .unwrap(),
        );
        part(NLMSG_ERROR, NLM_F_CAPPED, seq, &payload)
    }

    /// Feeds datagrams to a dump of seq 9; the payloads seen and the outcome.
    fn run_dump(datagrams: &[Vec<u8>]) -> (Vec<u8>, Result<Option<bool>>) {
        let mut reader = DumpReader::new(PORT, 9);
        let mut seen = Vec::new();
        for datagram in datagrams {
            let outcome = reader.feed(datagram, &mut |m| {
                seen.push(m.payload()[0]);
                if m.payload()[0] == 0xee {
                    return Err(Error::malformed("bad item"));
                }
                Ok(())
            });
            if !matches!(outcome, Ok(None)) {
                return (seen, outcome);
            }
        }
        (seen, Ok(None))
    }

    #[test]
    fn dump_reads_parts_across_datagrams_until_done() {
        let multi = NLM_F_MULTI;
        let first = [part(16, multi, 9, &[1; 4]), part(16, multi, 9, &[2; 4])].concat();
        let foreign = part(16, multi, 8, &[3; 4]); // an older request's late part
        let last = [
            part(16, multi, 9, &[4; 4]),
            part(NLMSG_DONE, multi, 9, &[0; 4]),
        ]
        .concat();
        let (seen, outcome) = run_dump(&[first, foreign, last]);
        assert_eq!(seen, [1, 2, 4]);
        assert_eq!(outcome.unwrap(), Some(false));
    }

    #[test]
    fn dump_reports_interruption() {
        let intr = NLM_F_MULTI | NLM_F_DUMP_INTR;
        let datagram = [
            part(16, NLM_F_MULTI, 9, &[1; 4]),
            part(NLMSG_DONE, intr, 9, &[0; 4]),
        ];
        let (_, outcome) = run_dump(&[datagram.concat()]);
        assert_eq!(outcome.unwrap(), Some(true));
    }

    #[test]
    fn dump_errors_end_it() {
        // Rejected at the start: NLMSG_DONE carrying -EINVAL.
        let done = part(NLMSG_DONE, NLM_F_MULTI, 9, &(-22i32).to_ne_bytes());
        assert_eq!(run_dump(&[done]).1.unwrap_err().errno(), Some(22));
        // NLMSG_ERROR inside a dump.
        assert_eq!(run_dump(&[ack(9, -1)]).1.unwrap_err().errno(), Some(1));
        // A part the caller cannot parse: the dump is drained, then the error.
        let parts = [
            part(16, NLM_F_MULTI, 9, &[0xee; 4]),
            part(16, NLM_F_MULTI, 9, &[5; 4]),
        ];
        let (seen, outcome) = run_dump(&[parts.concat()]);
        assert_eq!(seen, [0xee], "nothing handed over after the first error");
        assert!(outcome.unwrap().is_none(), "still waiting for NLMSG_DONE");
        let done = part(NLMSG_DONE, NLM_F_MULTI, 9, &[0; 4]);
        let (_, outcome) = run_dump(&[parts.concat(), done]);
        assert!(matches!(
            outcome.unwrap_err().kind(),
            ErrorKind::Malformed { .. }
        ));
        // A malformed datagram.
        let mut broken = part(16, NLM_F_MULTI, 9, &[1; 4]);
        broken[0] = 200;
        assert!(run_dump(&[broken]).1.is_err());
    }

    #[test]
    fn batch_acks_match_by_seq_in_any_order() {
        let mut acks = AckReader::new(PORT, vec![5, 6, 7]);
        assert!(acks
            .feed(&[ack(6, -17), ack(4, 0)].concat())
            .unwrap()
            .is_none());
        let mut not_ours = ack(5, -1);
        not_ours[12] ^= 1; // another port's answer
        assert!(acks.feed(&not_ours).unwrap().is_none());
        let results = acks
            .feed(&[ack(7, 0), ack(5, 0)].concat())
            .unwrap()
            .unwrap();
        assert!(results[0].is_ok() && results[2].is_ok());
        assert_eq!(results[1].as_ref().unwrap_err().errno(), Some(libc::EEXIST));
    }

    #[test]
    fn bad_error_payloads_are_errors() {
        let mut bytes = capped_ipvlan_refusal();
        bytes[16..20].copy_from_slice(&5i32.to_ne_bytes());
        assert!(matches!(
            parse_error(&view(&bytes)).unwrap_err().kind(),
            ErrorKind::Malformed { .. }
        ));
        let truncated = &capped_ipvlan_refusal()[..18];
        let mut short = truncated.to_vec();
        short[0] = 18;
        assert!(parse_error(&view(&short)).is_err(), "no errno at all");
    }

    /// The errno of `bytes` must survive whatever is wrong after it.
    fn assert_errno_without_text(bytes: &[u8]) {
        let err = parse_error(&view(bytes)).unwrap_err();
        assert_eq!(err.errno(), Some(libc::EOPNOTSUPP), "{err}");
        assert_eq!(err.ext_ack(), None);
    }

    #[test]
    fn bad_ext_ack_keeps_the_errno() {
        let mut bytes = capped_ipvlan_refusal();
        bytes[36] = 200; // TLV length past the end
        assert_errno_without_text(&bytes);
        let mut bytes = capped_ipvlan_refusal();
        bytes[36] = 3; // TLV length shorter than its header
        assert_errno_without_text(&bytes);
        // Echoed request header cut short: no TLVs to find.
        let mut short = capped_ipvlan_refusal()[..28].to_vec();
        short[0] = 28;
        assert_errno_without_text(&short);
        // Not capped, with an echoed length that is absurd (would overflow
        // `4 + align(len)` on 32-bit) or points past the payload.
        for bogus in [u32::MAX, u32::MAX - 2, 4096] {
            let mut bytes = capped_ipvlan_refusal();
            bytes[6..8].copy_from_slice(&NLM_F_ACK_TLVS.to_ne_bytes());
            bytes[20..24].copy_from_slice(&bogus.to_ne_bytes());
            assert_errno_without_text(&bytes);
        }
    }

    #[test]
    fn non_utf8_ext_ack_text_is_kept_lossily() {
        let mut bytes = capped_ipvlan_refusal();
        bytes[40] = 0xff; // "Unknown" -> "\xffnknown"
        let err = parse_error(&view(&bytes)).unwrap_err();
        assert_eq!(err.errno(), Some(libc::EOPNOTSUPP));
        assert_eq!(err.ext_ack(), Some("\u{fffd}nknown device type"));
    }

    #[test]
    fn done_with_bad_ext_ack_keeps_the_errno() {
        let mut done = MessageBuilder::new(NLMSG_DONE, NLM_F_MULTI | NLM_F_ACK_TLVS);
        done.family_header(&(-22i32).to_ne_bytes());
        let mut bytes = done.to_bytes(1, 1).unwrap();
        bytes.extend([200, 0, 1, 0]); // a TLV claiming 200 bytes
        bytes[0] = bytes.len() as u8;
        let err = parse_done(&view(&bytes)).unwrap_err();
        assert_eq!(err.errno(), Some(libc::EINVAL));
        assert_eq!(err.ext_ack(), None);
    }
}
