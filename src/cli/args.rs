//! A small docker-style (pflag-like) option parser.
//!
//! Supports `--flag value`, `--flag=value`, `-f value`, `-fvalue`, `-f=value`,
//! bundles of boolean short flags (`-itd`, where the last one may take a value),
//! `--bool=true|false`, `--` to end options, and either interspersed operands
//! (`network create NAME -d ipvlan`) or options that stop at the first operand
//! (`run ... CMD ARG...`, where the rest belongs to CMD).

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// One option a command accepts.
#[derive(Debug, Clone, Copy)]
pub struct Flag {
    /// Canonical long name, without dashes; the key under which values are stored.
    pub long: &'static str,
    /// Other accepted long names (`net` for `network`).
    pub aliases: &'static [&'static str],
    /// One-letter form (`-d`), if any.
    pub short: Option<char>,
    /// Name of the value in help texts; `None` for a boolean flag.
    pub value: Option<&'static str>,
    /// One-line description shown in the usage text.
    pub help: &'static str,
}

impl Flag {
    /// A flag that takes no value (`--quiet`; also `--quiet=false`).
    pub const fn boolean(long: &'static str, short: Option<char>, help: &'static str) -> Flag {
        Flag {
            long,
            aliases: &[],
            short,
            value: None,
            help,
        }
    }

    /// A flag that takes a value, named `value` in the usage text.
    pub const fn valued(
        long: &'static str,
        short: Option<char>,
        value: &'static str,
        help: &'static str,
    ) -> Flag {
        Flag {
            long,
            aliases: &[],
            short,
            value: Some(value),
            help,
        }
    }

    /// The same flag, also accepted under the long names `aliases`.
    pub const fn with_aliases(mut self, aliases: &'static [&'static str]) -> Flag {
        self.aliases = aliases;
        self
    }

    fn takes_value(&self) -> bool {
        self.value.is_some()
    }
}

/// Why a command line was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgError {
    /// Malformed command line: unknown flag, missing value or argument.
    Usage(String),
    /// Well-formed, but a value is invalid.
    Value(String),
}

/// What the parser found, in command-line order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Matches {
    /// `(canonical long name, value)`; booleans store `"true"` or `"false"`.
    pub flags: Vec<(&'static str, String)>,
    /// Arguments that are not options, in order (with
    /// [`Operands::StopAtFirst`], everything from the first one on), as
    /// given: a command's arguments and a path need not be UTF-8.
    pub operands: Vec<OsString>,
    /// `-h` or `--help` was given.
    pub help: bool,
}

impl Matches {
    /// Last value of a boolean flag (`false` when absent).
    pub fn is_set(&self, long: &str) -> bool {
        self.last(long).is_some_and(|value| value == "true")
    }

    /// Last value of a flag (a repeated single-value flag: the last one wins).
    pub fn last(&self, long: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(name, _)| *name == long)
            .map(|(_, value)| value.as_str())
    }

    /// The operands from `from` on as text (names, addresses): one that
    /// is not UTF-8 is refused.
    pub fn text_operands(&self, from: usize) -> Result<Vec<String>, ArgError> {
        self.operands
            .iter()
            .skip(from)
            .map(|operand| text(operand))
            .collect()
    }

    /// Every value of a repeatable flag, in order.
    pub fn all(&self, long: &str) -> Vec<&str> {
        self.flags
            .iter()
            .filter(|(name, _)| *name == long)
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

/// Whether operands may appear between options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operands {
    /// Options and operands may be mixed, as in `network rm -f a b`.
    Interspersed,
    /// The first operand ends the options; everything after it is an operand.
    StopAtFirst,
}

/// The help flag every command accepts.
pub const HELP: Flag = Flag::boolean("help", Some('h'), "Print usage");

/// Why an option that is not UTF-8 is refused: a known long option's
/// inline value that is not text is a bad value (`--subnet=\xff`, as
/// `--subnet \xff` is); anything else, an unknown option (a usage error,
/// as `-é` is).
fn option_not_text(flags: &[Flag], raw: &OsStr) -> ArgError {
    let bytes = raw.as_bytes();
    if let Some(long) = bytes.strip_prefix(b"--") {
        let mut parts = long.splitn(2, |&b| b == b'=');
        let name = parts.next().unwrap_or_default();
        let known = std::str::from_utf8(name)
            .ok()
            .and_then(|n| find_long(flags, n));
        if let (Some(flag), Some(value)) = (known, parts.next()) {
            return ArgError::Value(format!(
                "invalid value {:?} for --{}: not valid UTF-8",
                OsStr::from_bytes(value),
                flag.long
            ));
        }
        return ArgError::Usage(format!("unknown flag: {raw:?}"));
    }
    // A cluster of known short flags whose last takes a value (`-oVALUE`,
    // `-o=VALUE`, `-dtoVALUE`): a bad value, as `-o VALUE` is.
    for (at, &byte) in bytes.iter().enumerate().skip(1) {
        let Some(flag) = byte
            .is_ascii()
            .then(|| find_short(flags, char::from(byte)))
            .flatten()
        else {
            break;
        };
        if flag.value.is_some() {
            let value = &bytes[at + 1..];
            let value = value.strip_prefix(b"=").unwrap_or(value);
            return ArgError::Value(format!(
                "invalid value {:?} for -{}: not valid UTF-8",
                OsStr::from_bytes(value),
                char::from(byte)
            ));
        }
    }
    ArgError::Usage(format!("unknown shorthand flag in {raw:?}"))
}

/// `arg` as text, or the usage error of an argument that is not UTF-8.
pub fn text(arg: &OsStr) -> Result<String, ArgError> {
    arg.to_str()
        .map(str::to_string)
        .ok_or_else(|| ArgError::Value(format!("invalid argument {arg:?}: not valid UTF-8")))
}

/// Parses `args` against `flags` (plus `-h|--help`). Options and their
/// values are text; an operand may be any bytes.
pub fn parse<A: AsRef<OsStr>>(
    flags: &[Flag],
    args: &[A],
    mode: Operands,
) -> Result<Matches, ArgError> {
    parse_os(flags, &mut args.iter().map(AsRef::as_ref), mode)
}

/// [`parse`] over the arguments one by one, kept once for every caller.
fn parse_os(
    flags: &[Flag],
    args: &mut dyn Iterator<Item = &OsStr>,
    mode: Operands,
) -> Result<Matches, ArgError> {
    let mut matches = Matches::default();
    while let Some(raw) = args.next() {
        let arg = match raw.to_str() {
            Some(arg) => arg,
            // Not UTF-8: an operand, or an option (see `option_not_text`).
            None if raw.as_bytes().first() == Some(&b'-') => {
                return Err(option_not_text(flags, raw))
            }
            None => "",
        };
        if arg == "--" {
            matches.operands.extend(args.map(OsStr::to_owned));
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (long, None),
            };
            let flag = find_long(flags, name)
                .ok_or_else(|| ArgError::Usage(format!("unknown flag: --{name}")))?;
            if flag.long == HELP.long {
                matches.help = true;
                return Ok(matches);
            }
            let value = if flag.takes_value() {
                match inline {
                    Some(value) => value.to_string(),
                    None => next_value(args, &format!("--{name}"))?,
                }
            } else {
                parse_bool(&format!("--{name}"), inline)?
            };
            matches.flags.push((flag.long, value));
        } else if arg.len() > 1 && arg.starts_with('-') {
            if parse_short_bundle(flags, &arg[1..], args, &mut matches)? {
                return Ok(matches);
            }
        } else {
            matches.operands.push(raw.to_owned());
            if mode == Operands::StopAtFirst {
                matches.operands.extend(args.map(OsStr::to_owned));
                break;
            }
        }
    }
    Ok(matches)
}

/// Parses the characters after `-`; returns `true` when help was asked for.
fn parse_short_bundle(
    flags: &[Flag],
    bundle: &str,
    args: &mut dyn Iterator<Item = &OsStr>,
    matches: &mut Matches,
) -> Result<bool, ArgError> {
    for (offset, letter) in bundle.char_indices() {
        let flag = find_short(flags, letter).ok_or_else(|| {
            ArgError::Usage(format!("unknown shorthand flag: '{letter}' in -{bundle}"))
        })?;
        if flag.long == HELP.long {
            matches.help = true;
            return Ok(true);
        }
        let rest = &bundle[offset + letter.len_utf8()..];
        if flag.takes_value() {
            let value = if rest.is_empty() {
                next_value(args, &format!("-{letter}"))?
            } else {
                rest.strip_prefix('=').unwrap_or(rest).to_string()
            };
            matches.flags.push((flag.long, value));
            return Ok(false);
        }
        if let Some(inline) = rest.strip_prefix('=') {
            let value = parse_bool(&format!("-{letter}"), Some(inline))?;
            matches.flags.push((flag.long, value));
            return Ok(false);
        }
        matches.flags.push((flag.long, "true".to_string()));
    }
    Ok(false)
}

fn find_long<'a>(flags: &'a [Flag], name: &str) -> Option<&'a Flag> {
    flags
        .iter()
        .chain(std::iter::once(&HELP))
        .find(|flag| flag.long == name || flag.aliases.contains(&name))
}

fn find_short(flags: &[Flag], letter: char) -> Option<&Flag> {
    flags
        .iter()
        .chain(std::iter::once(&HELP))
        .find(|flag| flag.short == Some(letter))
}

fn next_value(args: &mut dyn Iterator<Item = &OsStr>, spelled: &str) -> Result<String, ArgError> {
    let value = args
        .next()
        .ok_or_else(|| ArgError::Usage(format!("flag needs an argument: {spelled}")))?;
    value.to_str().map(str::to_string).ok_or_else(|| {
        ArgError::Value(format!(
            "invalid value {value:?} for {spelled}: not valid UTF-8"
        ))
    })
}

/// `--flag=VALUE` of a boolean flag, read as Go's `strconv.ParseBool`
/// reads it for Docker's flags.
fn parse_bool(spelled: &str, inline: Option<&str>) -> Result<String, ArgError> {
    match inline {
        None | Some("1" | "t" | "T" | "true" | "TRUE" | "True") => Ok("true".to_string()),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok("false".to_string()),
        Some(other) => Err(ArgError::Value(format!(
            "invalid value \"{other}\" for {spelled}: expected true or false"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLAGS: &[Flag] = &[
        Flag::valued("driver", Some('d'), "string", ""),
        Flag::valued("opt", Some('o'), "map", ""),
        Flag::boolean("ipv6", None, ""),
        Flag::valued("network", None, "string", "").with_aliases(&["net"]),
        Flag::boolean("interactive", Some('i'), ""),
        Flag::boolean("tty", Some('t'), ""),
        Flag::boolean("detach", Some('x'), ""),
    ];

    fn strings(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn parse_ok(args: &[&str], mode: Operands) -> Matches {
        parse(FLAGS, &strings(args), mode).expect("parses")
    }

    #[test]
    fn long_flags_take_values_inline_or_separately() {
        let matches = parse_ok(
            &["--driver=ipvlan", "--opt", "parent=eth0", "--opt=a=b", "n1"],
            Operands::Interspersed,
        );
        assert_eq!(matches.last("driver"), Some("ipvlan"));
        assert_eq!(matches.all("opt"), vec!["parent=eth0", "a=b"]);
        assert_eq!(matches.operands, vec!["n1"]);
    }

    #[test]
    fn short_flags_take_attached_separate_or_equals_values() {
        for args in [&["-dipvlan"][..], &["-d", "ipvlan"][..], &["-d=ipvlan"][..]] {
            assert_eq!(
                parse_ok(args, Operands::Interspersed).last("driver"),
                Some("ipvlan")
            );
        }
    }

    #[test]
    fn bundles_set_every_boolean_and_end_with_a_valued_flag() {
        let matches = parse_ok(&["-itx"], Operands::Interspersed);
        assert!(matches.is_set("interactive") && matches.is_set("tty") && matches.is_set("detach"));
        let matches = parse_ok(&["-itoparent=x"], Operands::Interspersed);
        assert!(matches.is_set("tty"));
        assert_eq!(matches.last("opt"), Some("parent=x"));
    }

    #[test]
    fn aliases_store_under_the_canonical_name() {
        let matches = parse_ok(&["--net=a", "--network", "b"], Operands::Interspersed);
        assert_eq!(matches.all("network"), vec!["a", "b"]);
        assert_eq!(
            parse(FLAGS, &strings(&["--net"]), Operands::Interspersed),
            Err(ArgError::Usage("flag needs an argument: --net".into()))
        );
    }

    #[test]
    fn booleans_accept_explicit_values() {
        assert!(!parse_ok(&["--ipv6=false"], Operands::Interspersed).is_set("ipv6"));
        assert!(parse_ok(&["--ipv6=true"], Operands::Interspersed).is_set("ipv6"));
        assert_eq!(
            parse(FLAGS, &strings(&["--ipv6=maybe"]), Operands::Interspersed),
            Err(ArgError::Value(
                "invalid value \"maybe\" for --ipv6: expected true or false".into()
            ))
        );
    }

    #[test]
    fn operands_stop_options_only_when_asked() {
        let mixed = parse_ok(&["a", "-i", "b"], Operands::Interspersed);
        assert_eq!(mixed.operands, vec!["a", "b"]);
        assert!(mixed.is_set("interactive"));
        let stopped = parse_ok(&["-i", "ls", "-l", "--net=x"], Operands::StopAtFirst);
        assert_eq!(stopped.operands, vec!["ls", "-l", "--net=x"]);
        assert_eq!(stopped.last("network"), None);
    }

    #[test]
    fn double_dash_ends_options() {
        let matches = parse_ok(&["-i", "--", "-t", "--help"], Operands::Interspersed);
        assert_eq!(matches.operands, vec!["-t", "--help"]);
        assert!(!matches.help && !matches.is_set("tty"));
    }

    #[test]
    fn a_lone_dash_is_an_operand() {
        assert_eq!(parse_ok(&["-"], Operands::Interspersed).operands, vec!["-"]);
    }

    #[test]
    fn help_is_recognised_long_short_and_in_bundles() {
        for args in [&["--help"][..], &["-h"][..], &["-ih"][..]] {
            assert!(parse_ok(args, Operands::Interspersed).help);
        }
    }

    #[test]
    fn usage_errors_name_the_flag() {
        let cases: &[(&[&str], &str)] = &[
            (&["--bogus"], "unknown flag: --bogus"),
            (&["--bogus=1"], "unknown flag: --bogus"),
            (&["-q"], "unknown shorthand flag: 'q' in -q"),
            (&["-iq"], "unknown shorthand flag: 'q' in -iq"),
            (&["--driver"], "flag needs an argument: --driver"),
            (&["-d"], "flag needs an argument: -d"),
            (&["-id"], "flag needs an argument: -d"),
        ];
        for (args, message) in cases {
            assert_eq!(
                parse(FLAGS, &strings(args), Operands::Interspersed),
                Err(ArgError::Usage(message.to_string())),
                "{args:?}"
            );
        }
    }
}
