//! Readers of the kernel's answers, pure functions over received bytes: the
//! ACKs of a batch, the parts of a dump, and the `NLMSG_ERROR` / `NLMSG_DONE`
//! payloads. [`super::Socket`]'s receive loops feed them each datagram as it
//! arrives; tests and the fuzzer feed them recorded or mutated buffers.
//!
//! A reply counts only if it is addressed to our port and echoes the
//! request's sequence number; anything else (a late answer to an abandoned
//! request) is skipped. No input makes them panic.

use super::attr::AttrTable;
use super::consts::*;
use super::error::{Error, ErrorKind, Result};
use super::message::{Header, MessageView, Messages};

/// A reply to our request `seq`: addressed to our port, echoing the seq.
fn is_reply_to(header: &Header, port_id: u32, seq: u32) -> bool {
    header.pid == port_id && header.seq == seq
}

/// Collects the answers to the requests of one datagram, sent in the order
/// of `seqs` with only the last asking for an ACK (`NLM_F_ACK`).
///
/// The kernel handles the requests of a datagram one after the other
/// inside `sendmsg` and queues their answers in that order: an error for
/// every request that fails, ACK asked or not, and the ACK of the last.
/// So once the last request is answered, every earlier one without an
/// answer succeeded: one datagram read for a pipeline instead of one a
/// request. Unless answers were dropped on the way ([`AckReader::overrun`]:
/// the receive queue was full and the kernel said so with `ENOBUFS`), when
/// an error may be missing while the last ACK came: then only the answers
/// read count.
///
/// Public for the fuzzer and for tests on recorded replies; the socket is
/// its only user in the crate.
#[doc(hidden)]
#[derive(Debug)]
pub struct AckReader {
    port_id: u32,
    seqs: Vec<u32>,
    results: Vec<Option<Result<()>>>,
    /// Whether answers were dropped: silence no longer means success.
    overrun: bool,
}

impl AckReader {
    /// Waits for the answers to the requests numbered `seqs`, sent in this
    /// order in one datagram from port `port_id`, the last with `NLM_F_ACK`.
    pub fn new(port_id: u32, seqs: Vec<u32>) -> AckReader {
        AckReader {
            port_id,
            results: seqs.iter().map(|_| None).collect(),
            seqs,
            overrun: false,
        }
    }

    /// Takes one datagram; whether every request is answered now. Only a
    /// datagram whose framing is broken is an error.
    pub fn feed(&mut self, datagram: &[u8]) -> Result<bool> {
        for msg in Messages::new(datagram) {
            let msg = msg?;
            if msg.header.pid != self.port_id || msg.header.kind != NLMSG_ERROR {
                continue; // foreign, or data such as an NLM_F_ECHO copy
            }
            let Some(slot) = self.seqs.iter().position(|&s| s == msg.header.seq) else {
                continue; // a late answer to an abandoned request
            };
            if let Some(result @ None) = self.results.get_mut(slot) {
                *result = Some(parse_error(&msg));
            }
        }
        let last_answered = matches!(self.results.last(), Some(Some(_)));
        if last_answered && !self.overrun {
            // Answered in order: an earlier request still silent succeeded.
            for result in self.results.iter_mut().filter(|r| r.is_none()) {
                *result = Some(Ok(()));
            }
        }
        Ok(self.results.iter().all(Option::is_some))
    }

    /// The kernel dropped answers (`ENOBUFS`): from now on a request counts
    /// as answered only by an answer read, the last one's included.
    pub fn overrun(&mut self) {
        self.overrun = true;
    }

    /// Positions (in `seqs`) of the requests not answered so far.
    pub fn unanswered(&self) -> Vec<usize> {
        let slots = self.results.iter().enumerate();
        slots.filter(|(_, r)| r.is_none()).map(|(i, _)| i).collect()
    }

    /// One result per request, in order, once every request is answered.
    pub fn finish(self) -> Option<Vec<Result<()>>> {
        self.results.into_iter().collect()
    }
}

/// Looks for the answer to the non-dump request `seq` in one datagram:
/// `None` if it holds none, else what `parse` makes of the reply, or the
/// kernel's error. An ACK or a control message where a reply was expected
/// is malformed.
pub fn single_reply<T>(
    datagram: &[u8],
    port_id: u32,
    seq: u32,
    parse: &mut dyn FnMut(&MessageView<'_>) -> Result<T>,
) -> Option<Result<T>> {
    for msg in Messages::new(datagram) {
        let msg = match msg {
            Ok(msg) => msg,
            Err(err) => return Some(Err(err)),
        };
        if !is_reply_to(&msg.header, port_id, seq) {
            continue;
        }
        return Some(match msg.header.kind {
            NLMSG_ERROR => match parse_error(&msg) {
                Ok(()) => Err(Error::malformed("ACK where a reply was expected")),
                Err(err) => Err(err),
            },
            NLMSG_NOOP => continue,
            NLMSG_DONE | NLMSG_OVERRUN => Err(Error::malformed(
                "control message where a reply was expected",
            )),
            _ => parse(&msg),
        });
    }
    None
}

/// Follows one dump, datagram by datagram.
///
/// Public for the fuzzer and for tests on recorded replies; the socket is
/// its only user in the crate.
#[doc(hidden)]
#[derive(Debug)]
pub struct DumpReader {
    port_id: u32,
    seq: u32,
    interrupted: bool,
    first_error: Option<Error>,
}

impl DumpReader {
    /// Follows the dump requested with `seq` from port `port_id`.
    pub fn new(port_id: u32, seq: u32) -> DumpReader {
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
    pub fn feed(
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
                NLMSG_NOOP => continue,
                NLMSG_OVERRUN => return Err(Error::malformed("netlink overrun")),
                // A part, with `NLM_F_MULTI` or not (phonet's address and
                // route dumps set none): only `NLMSG_DONE` or an error ends
                // a dump, which the kernel sends for every one.
                _ => {
                    if self.first_error.is_none() {
                        self.first_error = each(&msg).err();
                    }
                }
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
    use crate::netlink::MessageBuilder;

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

    /// An `NLMSG_NOOP` carries nothing: without `NLM_F_MULTI` it is not a
    /// single-part answer, and the dump goes on (it ended there before).
    #[test]
    fn a_noop_in_a_dump_is_skipped_whatever_its_flags() {
        let datagram = [
            part(NLMSG_NOOP, 0, 9, &[7; 4]),
            part(16, NLM_F_MULTI, 9, &[1; 4]),
            part(NLMSG_DONE, NLM_F_MULTI, 9, &[0; 4]),
        ];
        let (seen, outcome) = run_dump(&[datagram.concat()]);
        assert_eq!(seen, [1]);
        assert_eq!(outcome.unwrap(), Some(false));
    }

    /// A part without `NLM_F_MULTI` (phonet's address and route dumps, met
    /// by every `AF_UNSPEC` address dump of a host with phonet) is a part:
    /// the dump goes on to its `NLMSG_DONE` (it ended at that part, the
    /// rest left queued and the kernel's dump running).
    #[test]
    fn a_part_without_nlm_f_multi_does_not_end_a_dump() {
        let datagram = [
            part(16, NLM_F_MULTI, 9, &[2; 4]),
            part(16, 0, 9, &[35; 4]),
            part(16, NLM_F_MULTI, 9, &[45; 4]),
            part(NLMSG_DONE, NLM_F_MULTI, 9, &[0; 4]),
        ];
        let (seen, outcome) = run_dump(&[datagram.concat()]);
        assert_eq!(seen, [2, 35, 45]);
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
    fn silence_before_the_last_ack_is_success() {
        let mut acks = AckReader::new(PORT, vec![5, 6, 7]);
        assert!(!acks.feed(&[ack(6, -17), ack(4, 0)].concat()).unwrap());
        let mut not_ours = ack(7, 0);
        not_ours[12] ^= 1; // another port's answer
        assert!(!acks.feed(&not_ours).unwrap());
        assert_eq!(acks.unanswered(), [0, 2]);
        assert!(acks.feed(&ack(7, 0)).unwrap());
        assert!(acks.unanswered().is_empty());
        let results = acks.finish().unwrap();
        assert!(results[0].is_ok() && results[2].is_ok());
        assert_eq!(results[1].as_ref().unwrap_err().errno(), Some(libc::EEXIST));
        // The last one failing ends the datagram alike.
        let mut acks = AckReader::new(PORT, vec![5, 6]);
        assert!(acks.feed(&ack(6, -19)).unwrap());
        let results = acks.finish().unwrap();
        assert!(results[0].is_ok());
        assert_eq!(results[1].as_ref().unwrap_err().errno(), Some(libc::ENODEV));
    }

    #[test]
    fn after_an_overrun_only_answers_read_count() {
        let mut acks = AckReader::new(PORT, vec![5, 6, 7]);
        assert!(!acks.feed(&ack(5, -17)).unwrap());
        acks.overrun();
        // The last ACK came, but an error before it may have been dropped.
        assert!(!acks.feed(&ack(7, 0)).unwrap());
        assert_eq!(acks.unanswered(), [1]);
        assert!(acks.feed(&ack(6, -1)).unwrap());
        let results = acks.finish().unwrap();
        assert_eq!(results[1].as_ref().unwrap_err().errno(), Some(libc::EPERM));
        assert!(results[2].is_ok());
    }

    #[test]
    fn acks_after_completion_and_duplicates_are_harmless() {
        let mut acks = AckReader::new(PORT, vec![5, 6]);
        assert!(!acks.feed(&[ack(5, -17), ack(5, 0)].concat()).unwrap());
        assert!(acks.feed(&ack(6, 0)).unwrap());
        assert!(acks.feed(&[ack(6, -1), ack(5, 0)].concat()).unwrap());
        let results = acks.finish().unwrap();
        assert_eq!(results[0].as_ref().unwrap_err().errno(), Some(libc::EEXIST));
        assert!(results[1].is_ok(), "the first answer to a request counts");
        let unfinished = AckReader::new(PORT, vec![1]);
        assert!(unfinished.finish().is_none());
    }

    #[test]
    fn single_reply_takes_the_first_answer_to_its_request() {
        let mut kinds = |m: &MessageView<'_>| Ok(m.header.kind);
        let reply = [part(NLMSG_NOOP, 0, 9, &[]), part(16, 0, 9, &[1; 4])].concat();
        let stale = part(16, 0, 8, &[2; 4]);
        assert!(single_reply(&stale, PORT, 9, &mut kinds).is_none());
        assert_eq!(
            single_reply(&reply, PORT, 9, &mut kinds).unwrap().unwrap(),
            16
        );
        let refused = single_reply(&ack(9, -19), PORT, 9, &mut kinds).unwrap();
        assert_eq!(refused.unwrap_err().errno(), Some(libc::ENODEV));
        for odd in [ack(9, 0), part(NLMSG_DONE, 0, 9, &[0; 4])] {
            let answer = single_reply(&odd, PORT, 9, &mut kinds).unwrap();
            assert!(matches!(
                answer.unwrap_err().kind(),
                ErrorKind::Malformed { .. }
            ));
        }
        let mut broken = reply.clone();
        broken[0] = 3;
        assert!(single_reply(&broken, PORT, 9, &mut kinds).unwrap().is_err());
    }

    /// A recorded capture of `tests/fixtures/netlink`: every datagram the
    /// kernel sent iproute2, back to back.
    fn fixture(text: &str) -> Vec<u8> {
        text.lines()
            .filter(|line| !line.starts_with('#'))
            .flat_map(str::split_whitespace)
            .map(|byte| u8::from_str_radix(byte, 16).unwrap())
            .collect()
    }

    /// The data messages a dump reader hands over, and how it ended.
    fn read_dump(bytes: &[u8], port_id: u32, seq: u32) -> (Vec<u16>, Result<Option<bool>>) {
        let mut kinds = Vec::new();
        let mut reader = DumpReader::new(port_id, seq);
        let outcome = reader.feed(bytes, &mut |m| {
            kinds.push(m.header.kind);
            Ok(())
        });
        (kinds, outcome)
    }

    /// iproute2's sequence numbers and port ids in the captures.
    const CAPTURED_SEQ: u32 = 1_795_870_212;

    #[test]
    fn readers_follow_recorded_kernel_replies() {
        let links = fixture(include_str!(
            "../../tests/fixtures/netlink/kernel_reply_link_dump.hex"
        ));
        let (kinds, outcome) = read_dump(&links, 32507, CAPTURED_SEQ);
        assert_eq!(kinds, [RTM_NEWLINK; 5]);
        assert_eq!(outcome.unwrap(), Some(false));
        // The capture opens with the answer to iproute2's probe (seq 0).
        let mut probe = AckReader::new(32507, vec![0]);
        assert!(probe.feed(&links).unwrap());
        let answer = probe.finish().unwrap().pop().unwrap();
        assert_eq!(answer.unwrap_err().errno(), Some(libc::ENODEV));

        // `ip addr` dumps links, then addresses: each reader sees its own.
        let addrs = fixture(include_str!(
            "../../tests/fixtures/netlink/kernel_reply_addr_dump.hex"
        ));
        let (kinds, outcome) = read_dump(&addrs, 32514, CAPTURED_SEQ + 1);
        assert_eq!(kinds, [RTM_NEWADDR; 5]);
        assert_eq!(outcome.unwrap(), Some(false));
        let (kinds, _) = read_dump(&addrs, 32514, CAPTURED_SEQ);
        assert_eq!(kinds, [RTM_NEWLINK; 5]);

        let routes = fixture(include_str!(
            "../../tests/fixtures/netlink/kernel_reply_route_dump_v4_all_tables.hex"
        ));
        let (kinds, outcome) = read_dump(&routes, 32521, CAPTURED_SEQ);
        assert_eq!(kinds, [RTM_NEWROUTE; 11]);
        assert_eq!(outcome.unwrap(), Some(false));
        let (kinds, outcome) = read_dump(&routes, 32520, CAPTURED_SEQ);
        assert!(kinds.is_empty(), "another port's dump");
        assert_eq!(outcome.unwrap(), None);
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
