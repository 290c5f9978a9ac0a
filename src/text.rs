//! User-supplied text inside messages.
//!
//! Names, paths and option values reach error messages as the user typed
//! them; a newline or an escape sequence in one would split a message over
//! several lines, or recolour or rewrite the user's terminal. Every message
//! that can carry such text passes through [`escape_controls`], so it stays
//! one line of plain text.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

/// Whether `c` must not reach a terminal as it is: control characters
/// (C0, DEL, C1) and the invisible bidirectional controls that reorder
/// what is displayed around them.
pub fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every [unsafe](is_unsafe) character written the way Rust
/// writes it in a string literal (`\n`, `\t`, `\r`, `\0`, `\u{1b}`);
/// everything else, backslashes included, stays as it is. Escaping an
/// escaped text changes nothing, so a message may pass through it at every
/// layer it crosses.
///
/// ```
/// use ipvlan::text::escape_controls;
/// assert_eq!(escape_controls("a\nb\u{1b}[31m"), "a\\nb\\u{1b}[31m");
/// assert_eq!(escape_controls("db_net"), "db_net");
/// assert_eq!(escape_controls(&escape_controls("a\tb")), "a\\tb");
/// ```
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if is_unsafe(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Displays a string through [`escape_controls`]: for `format!` arguments
/// that come from the user.
///
/// ```
/// use ipvlan::text::Shown;
/// assert_eq!(format!("network {} not found", Shown("a\nb")), "network a\\nb not found");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Shown<'a>(pub &'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&escape_controls(self.0))
    }
}

/// `parts` joined with `sep` between them, as `[&str]::join` joins them:
/// one body for the lists of names in messages and output, where the
/// standard library keeps a copy per element type.
///
/// ```
/// assert_eq!(ipvlan::text::join(&["a", "b", "c"], ", "), "a, b, c");
/// assert_eq!(ipvlan::text::join(&[], ", "), "");
/// ```
pub fn join(parts: &[&str], sep: &str) -> String {
    let mut out = String::new();
    for (at, part) in parts.iter().enumerate() {
        if at > 0 {
            out.push_str(sep);
        }
        out.push_str(part);
    }
    out
}

/// `a` against `b` in natural order, as `docker network ls` sorts names:
/// runs of digits compare as numbers (`n9` before `n10`; of two equal
/// numbers, the one with fewer leading zeros first), a digit before any
/// other byte, other bytes one by one; a name that is the start of the
/// other comes first.
///
/// ```
/// use std::cmp::Ordering::Less;
/// assert_eq!(ipvlan::text::natural_cmp("n9", "n10"), Less);
/// assert_eq!(ipvlan::text::natural_cmp("a", "b9"), Less);
/// ```
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (x, y) = (a[i], b[j]);
        match (x.is_ascii_digit(), y.is_ascii_digit()) {
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            (false, false) => {
                if x != y {
                    return x.cmp(&y);
                }
                i += 1;
                j += 1;
            }
            (true, true) => {
                let zeros_a = a[i..].iter().take_while(|&&c| c == b'0').count();
                let zeros_b = b[j..].iter().take_while(|&&c| c == b'0').count();
                let (start_a, start_b) = (i + zeros_a, j + zeros_b);
                let end_a = start_a
                    + a[start_a..]
                        .iter()
                        .take_while(|c| c.is_ascii_digit())
                        .count();
                let end_b = start_b
                    + b[start_b..]
                        .iter()
                        .take_while(|c| c.is_ascii_digit())
                        .count();
                // Without their leading zeros: the shorter number is the
                // smaller, and of two as long, the digits tell.
                let number = (end_a - start_a)
                    .cmp(&(end_b - start_b))
                    .then_with(|| a[start_a..end_a].cmp(&b[start_b..end_b]))
                    .then_with(|| zeros_a.cmp(&zeros_b));
                if number != Ordering::Equal {
                    return number;
                }
                (i, j) = (end_a, end_b);
            }
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_as_docker_network_ls_sorts_them() {
        let mut names = vec![
            "b10", "a", "b9", "b09", "B1", "a1b", "a1", "10", "9", "é", "b", "",
        ];
        crate::order::sort_by(&mut names, |x, y| natural_cmp(x, y));
        assert_eq!(
            names,
            ["", "9", "10", "B1", "a", "a1", "a1b", "b", "b9", "b09", "b10", "é"]
        );
        assert_eq!(natural_cmp("n1", "n1"), Ordering::Equal);
        assert_eq!(natural_cmp("n01", "n1"), Ordering::Greater);
    }

    #[test]
    fn every_control_character_is_escaped_and_nothing_else() {
        for code in (0u32..0x20).chain(0x7f..0xa0) {
            let c = char::from_u32(code).unwrap();
            let escaped = escape_controls(&c.to_string()).into_owned();
            assert!(escaped.starts_with('\\'), "{code:#x}: {escaped:?}");
            assert!(!escaped.chars().any(is_unsafe), "{code:#x}: {escaped:?}");
        }
        assert_eq!(escape_controls("\u{202e}gpj.exe"), "\\u{202e}gpj.exe");
        let plain = "eth0.20 /run/netns/web é ü 😀 \\ \" '";
        assert!(matches!(escape_controls(plain), Cow::Borrowed(_)));
    }

    #[test]
    fn escaping_is_idempotent() {
        let nasty = "a\nb\r\t\0\u{1b}[2J\u{9b}\u{7f}\u{2066}";
        let once = escape_controls(nasty).into_owned();
        assert_eq!(escape_controls(&once), once);
        assert_eq!(once.lines().count(), 1);
    }
}
