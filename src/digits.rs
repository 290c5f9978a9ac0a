//! IP addresses, integers and hex as text, without `core::fmt`.
//!
//! The standard formatter supports widths, padding and precision, and pays
//! for it at every call: some 1,400 instructions an IPv4 address. An attach
//! writes its address about nine times (records, address file, cursor,
//! hosts line, intent), so IPv4 is written digit by digit, as `Display`
//! would.

/// Appends an integer in decimal, as `Display` writes it (the one writer,
/// kept in `json`, which cannot reach this module from `xtask`).
pub use crate::json::push_u64 as push_decimal;

/// Appends `bytes` as lowercase hex, two digits a byte (as `{:02x}`).
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for byte in bytes {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
}

/// `bytes` as lowercase hex (see [`push_hex`]).
pub fn hex_text(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 * bytes.len());
    push_hex(&mut out, bytes);
    out
}

/// `addr` as text, as `Display` writes it.
pub fn ip_text(addr: std::net::IpAddr) -> String {
    let mut out = String::with_capacity(15);
    push_ip(&mut out, addr);
    out
}

/// Appends `addr` as [`ip_text`] writes it.
pub fn push_ip(out: &mut String, addr: std::net::IpAddr) {
    match addr {
        std::net::IpAddr::V4(v4) => {
            // Laid out whole, then one copy: four numbers and three dots
            // pushed one by one cost some 450 instructions an address, and
            // an attach writes a dozen.
            let mut text = [0u8; 15];
            let mut len = 0;
            for (at, octet) in v4.octets().into_iter().enumerate() {
                if at > 0 {
                    text[len] = b'.';
                    len += 1;
                }
                if octet >= 100 {
                    text[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    text[len] = b'0' + octet / 10 % 10;
                    len += 1;
                }
                text[len] = b'0' + octet % 10;
                len += 1;
            }
            crate::json::push_ascii(out, &text[..len]);
        }
        std::net::IpAddr::V6(v6) => {
            use std::fmt::Write;
            // Writing to a `String` cannot fail.
            let _ = write!(out, "{v6}");
        }
    }
}

/// `net` as `ADDRESS/PREFIX`, as `Display` writes it (see [`ip_text`]).
pub fn ipnet_text(net: &ipnet::IpNet) -> String {
    let mut out = String::with_capacity(18);
    push_ipnet(&mut out, net);
    out
}

/// Appends `net` as [`ipnet_text`] writes it.
pub fn push_ipnet(out: &mut String, net: &ipnet::IpNet) {
    push_ip(out, net.addr());
    out.push('/');
    push_decimal(out, u64::from(net.prefix_len()));
}

/// An address with its prefix length (`10.1.2.0/24`, `2001:db8::/64`;
/// host bits kept), read strictly: the address as std reads one (no
/// leading zero in an IPv4 part: `010` is 8 to `inet_aton` and 10 to
/// others, so ambiguous), the length in decimal digits without a leading
/// zero, at most the family's bits. `ipnet`'s own reader takes
/// `010.0.0.0/24` for 10.0.0.0/24 and `/064` for /64.
pub fn parse_cidr(text: &str) -> Option<ipnet::IpNet> {
    let (addr, len) = text.split_once('/')?;
    let plain = !len.is_empty()
        && len.len() <= 3
        && len.bytes().all(|b| b.is_ascii_digit())
        && (len.len() == 1 || !len.starts_with('0'));
    if !plain {
        return None;
    }
    ipnet::IpNet::new(addr.parse().ok()?, len.parse().ok()?).ok()
}

/// `duration` as text: whole seconds as `60s`, else milliseconds
/// (`300ms`), as `{:?}` writes those; `Duration`'s own `Debug`, which
/// handles every precision, is 2 KiB of code for two error messages.
pub fn duration_text(duration: std::time::Duration) -> String {
    let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    let mut out = String::new();
    match ms % 1000 {
        0 => {
            push_decimal(&mut out, ms / 1000);
            out.push('s');
        }
        _ => {
            push_decimal(&mut out, ms);
            out.push_str("ms");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every octet value in every place, as `Display` writes the address.
    #[test]
    fn an_ipv4_address_is_written_as_display_writes_it() {
        for octet in 0..=255u8 {
            for place in 0..4 {
                let mut octets = [10, 1, 200, 7];
                octets[place] = octet;
                let addr = std::net::IpAddr::from(octets);
                assert_eq!(ip_text(addr), addr.to_string());
            }
        }
    }

    #[test]
    fn a_cidr_is_read_strictly() {
        for (text, read) in [
            ("10.0.0.0/24", "10.0.0.0/24"),
            ("10.1.2.5/24", "10.1.2.5/24"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("2001:db8::/64", "2001:db8::/64"),
            ("::/128", "::/128"),
        ] {
            assert_eq!(
                parse_cidr(text).map(|n| n.to_string()).as_deref(),
                Some(read)
            );
        }
        for text in [
            "010.0.0.0/24",
            "10.0.0.00/24",
            "10.0.0.0/024",
            "2001:db8::/064",
            "10.0.0.0/",
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            " 10.0.0.0/8",
            "10.0.0.0",
            "10.0.0.0/8/8",
            "/8",
            "10.0.0.0/1000",
        ] {
            assert_eq!(parse_cidr(text), None, "{text}");
        }
    }

    #[test]
    fn addresses_are_written_as_display_writes_them() {
        use std::net::IpAddr;
        let addrs = [
            "0.0.0.0",
            "10.9.0.7",
            "192.168.100.255",
            "255.255.255.255",
            "1.22.103.4",
            "::",
            "2001:db8::7",
            "fe80::1:2:3:4",
            "::ffff:10.0.0.1",
        ];
        for text in addrs {
            let addr: IpAddr = text.parse().unwrap();
            assert_eq!(ip_text(addr), addr.to_string());
            assert_eq!(ip_text(addr), text);
            for prefix in [0u8, 8, 16, 24, 32] {
                let net = ipnet::IpNet::new(addr, prefix).unwrap();
                assert_eq!(ipnet_text(&net), net.to_string());
            }
        }
        let net: ipnet::IpNet = "2001:db8::5/64".parse().unwrap();
        assert_eq!(ipnet_text(&net), "2001:db8::5/64");
    }

    #[test]
    fn hex_is_written_as_the_format_writes_it() {
        let bytes: Vec<u8> = (0..=255).collect();
        let expected: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex_text(&bytes), expected);
        assert_eq!(hex_text(&[]), "");
    }

    #[test]
    fn durations_read_as_debug_writes_whole_seconds_and_milliseconds() {
        use std::time::Duration;
        for duration in [
            Duration::from_secs(60),
            Duration::from_millis(300),
            Duration::from_millis(1),
        ] {
            assert_eq!(duration_text(duration), format!("{duration:?}"));
        }
        assert_eq!(duration_text(Duration::from_millis(1500)), "1500ms");
        assert_eq!(duration_text(Duration::ZERO), "0s");
    }
}
