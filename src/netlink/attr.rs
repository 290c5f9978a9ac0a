//! Zero-copy views over netlink attributes (`struct nlattr`: `len u16, type u16`,
//! payload, padding to 4 bytes).
//!
//! [`Attrs`] walks an attribute area and checks every length before yielding;
//! after the first bad attribute it yields one error and stops. Typed readers
//! on [`Attr`] check the payload size exactly, so a short or oversized integer
//! is an error, never a wrong value.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::consts::{align, NLA_F_NESTED, NLA_HDRLEN, NLA_TYPE_MASK};
use super::error::{Error, Result};

/// One attribute: its type (flag bits kept) and its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    raw_type: u16,
    payload: &'a [u8],
}

impl<'a> Attr<'a> {
    /// The attribute type with `NLA_F_NESTED` / `NLA_F_NET_BYTEORDER` masked off.
    pub fn kind(&self) -> u16 {
        self.raw_type & NLA_TYPE_MASK
    }

    /// Whether the sender marked this attribute as a nest.
    pub fn has_nested_flag(&self) -> bool {
        self.raw_type & NLA_F_NESTED != 0
    }

    /// The payload, without header or padding.
    pub fn payload(&self) -> &'a [u8] {
        self.payload
    }

    fn exact<const N: usize>(&self, what: &'static str) -> Result<[u8; N]> {
        self.payload.try_into().map_err(|_| Error::malformed(what))
    }

    /// A `u8` payload.
    pub fn u8(&self) -> Result<u8> {
        Ok(self.exact::<1>("u8 attribute of wrong size")?[0])
    }

    /// A host-order `u16` payload.
    pub fn u16(&self) -> Result<u16> {
        Ok(u16::from_ne_bytes(
            self.exact("u16 attribute of wrong size")?,
        ))
    }

    /// A network-order (`__be16`) payload.
    pub fn be16(&self) -> Result<u16> {
        Ok(u16::from_be_bytes(
            self.exact("be16 attribute of wrong size")?,
        ))
    }

    /// A host-order `u32` payload.
    pub fn u32(&self) -> Result<u32> {
        Ok(u32::from_ne_bytes(
            self.exact("u32 attribute of wrong size")?,
        ))
    }

    /// A host-order `i32` payload.
    pub fn i32(&self) -> Result<i32> {
        Ok(i32::from_ne_bytes(
            self.exact("i32 attribute of wrong size")?,
        ))
    }

    /// A string payload's bytes: up to the first NUL (the kernel
    /// NUL-terminates), any encoding.
    pub fn c_bytes(&self) -> &'a [u8] {
        let end = self
            .payload
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.payload.len());
        &self.payload[..end]
    }

    /// A string payload ([`Attr::c_bytes`]) that must be UTF-8.
    pub fn str(&self) -> Result<&'a str> {
        std::str::from_utf8(self.c_bytes())
            .map_err(|_| Error::malformed("string attribute is not UTF-8"))
    }

    /// A string payload ([`Attr::c_bytes`]) with bytes that are not UTF-8
    /// replaced by U+FFFD: for names Linux lets hold any byte (interface
    /// names may), which must not make a whole message undecodable.
    pub fn str_lossy(&self) -> Cow<'a, str> {
        String::from_utf8_lossy(self.c_bytes())
    }

    /// An IPv4 (4 bytes) or IPv6 (16 bytes) address in network order.
    pub fn ip(&self) -> Result<IpAddr> {
        match self.payload.len() {
            4 => Ok(IpAddr::V4(Ipv4Addr::from(self.exact::<4>("")?))),
            16 => Ok(IpAddr::V6(Ipv6Addr::from(self.exact::<16>("")?))),
            _ => Err(Error::malformed(
                "address attribute is neither 4 nor 16 bytes",
            )),
        }
    }

    /// The attributes nested in this one.
    pub fn nested(&self) -> Attrs<'a> {
        Attrs::new(self.payload)
    }
}

/// Checked iterator over an attribute area.
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    /// Walks `area`, which must hold whole attributes (possibly none).
    pub fn new(area: &'a [u8]) -> Attrs<'a> {
        Attrs { rest: area }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<Attr<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.rest);
        if rest.len() < NLA_HDRLEN {
            return Some(Err(Error::malformed("truncated attribute header")));
        }
        let len = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
        let raw_type = u16::from_ne_bytes([rest[2], rest[3]]);
        if len < NLA_HDRLEN || len > rest.len() {
            return Some(Err(Error::malformed("attribute length out of bounds")));
        }
        // The last attribute of an area may legitimately lack its padding.
        self.rest = rest.get(align(len)..).unwrap_or(&[]);
        Some(Ok(Attr {
            raw_type,
            payload: &rest[NLA_HDRLEN..len],
        }))
    }
}

/// Attributes indexed by type, libmnl's `tb[]`: the last occurrence of a type
/// wins; types `>= N` are ignored. Size it like the kernel's
/// `tb[IFLA_MAX + 1]`: `AttrTable::<{ IFLA_MAX as usize + 1 }>`, with the
/// `*_MAX` of [`super::consts`].
#[derive(Debug, Clone)]
pub struct AttrTable<'a, const N: usize> {
    slots: [Option<Attr<'a>>; N],
}

/// How many slots an [`AttrTable`] needs for the attributes of several
/// enums at once: one more than the largest of their `*_MAX`.
pub const fn slots(maxes: &[u16]) -> usize {
    let mut max = 0;
    let mut i = 0;
    while i < maxes.len() {
        if maxes[i] > max {
            max = maxes[i];
        }
        i += 1;
    }
    max as usize + 1
}

/// Puts each attribute of `area` in the slot of its type (types past the
/// slots are ignored): [`AttrTable::parse`]'s walk, kept once for every
/// table size.
#[inline(never)]
fn fill_slots<'a>(area: &'a [u8], slots: &mut [Option<Attr<'a>>]) -> Result<()> {
    for attr in Attrs::new(area) {
        let attr = attr?;
        if let Some(slot) = slots.get_mut(usize::from(attr.kind())) {
            *slot = Some(attr);
        }
    }
    Ok(())
}

impl<'a, const N: usize> AttrTable<'a, N> {
    /// Parses a whole attribute area; any malformed attribute fails the table.
    pub fn parse(area: &'a [u8]) -> Result<Self> {
        let mut slots = [None; N];
        fill_slots(area, &mut slots)?;
        Ok(AttrTable { slots })
    }

    /// The attribute of type `kind`, if present.
    pub fn get(&self, kind: u16) -> Option<Attr<'a>> {
        self.slots.get(usize::from(kind)).copied().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_padded_attributes_and_masks_flags() {
        // A u8 attribute (len 5, 3 bytes of padding), then a flagged nest.
        let area = [5, 0, 16, 0, 7, 0, 0, 0, 8, 0, 0x12, 0x80, 1, 2, 3, 4];
        let attrs: Vec<_> = Attrs::new(&area).collect::<Result<_>>().unwrap();
        assert_eq!(attrs.len(), 2);
        assert_eq!(attrs[0].kind(), 16);
        assert_eq!(attrs[0].u8().unwrap(), 7);
        assert_eq!(attrs[1].kind(), 0x12);
        assert!(attrs[1].has_nested_flag());
        assert_eq!(attrs[1].payload(), &[1, 2, 3, 4]);
    }

    #[test]
    fn bad_lengths_yield_one_error_then_stop() {
        for area in [
            &[3u8, 0, 1, 0][..],
            &[9, 0, 1, 0, 0, 0, 0, 0][..],
            &[8, 0, 1, 0, 0, 0, 0, 0, 1][..],
        ] {
            let items: Vec<_> = Attrs::new(area).collect();
            assert!(items.last().unwrap().is_err(), "{area:?}");
            assert_eq!(items.iter().filter(|r| r.is_err()).count(), 1);
        }
    }

    #[test]
    fn typed_readers_check_size() {
        let attr = Attr {
            raw_type: 1,
            payload: &[1, 0, 0],
        };
        assert!(attr.u16().is_err());
        assert!(attr.u32().is_err());
        assert!(attr.ip().is_err());
        let name = Attr {
            raw_type: 3,
            payload: b"eth0\0",
        };
        assert_eq!(name.str().unwrap(), "eth0");
        let odd = Attr {
            raw_type: 3,
            payload: b"\xffx\0",
        };
        assert!(odd.str().is_err());
        assert_eq!(odd.c_bytes(), b"\xffx");
        assert_eq!(odd.str_lossy(), "\u{fffd}x");
    }

    #[test]
    fn table_keeps_last_and_ignores_large_types() {
        let area = [
            5, 0, 1, 0, 1, 0, 0, 0, 5, 0, 1, 0, 2, 0, 0, 0, 5, 0, 9, 0, 3, 0, 0, 0,
        ];
        const MAX: u16 = 3;
        let table = AttrTable::<{ MAX as usize + 1 }>::parse(&area).unwrap();
        assert_eq!(table.get(1).unwrap().u8().unwrap(), 2);
        assert!(table.get(9).is_none());
        assert!(table.get(2).is_none());
    }

    #[test]
    fn slots_cover_the_largest_max() {
        assert_eq!(slots(&[2, 5, 3]), 6);
        assert_eq!(slots(&[]), 1);
    }
}
