//! A small, strict JSON reader and writer (RFC 8259).
//!
//! Used for `network inspect` output and the state records. Strict on
//! purpose: state files are ours, so anything unexpected means corruption and
//! must be reported, not guessed around. The reader rejects trailing garbage,
//! invalid escapes, lone surrogates, raw control characters, leading zeros and
//! nesting deeper than [`MAX_DEPTH`]. Object member order is preserved, so
//! output is stable and diffs of state files stay readable.
//!
//! The writer produces only what the reader accepts: a [`Value`] with a
//! repeated object key or nested deeper than [`MAX_DEPTH`] is refused with
//! a [`WriteError`] ([`Value::check`]) instead of being written. A state file
//! the reader refuses would stop every later command until edited by hand;
//! a failed write stops only the command that tried it.

use std::fmt;

/// Deepest nesting of arrays and objects the reader accepts. Our own records
/// nest four levels; the bound keeps hostile input from exhausting the stack.
pub const MAX_DEPTH: usize = 64;

/// A JSON number, kept as its validated source text so integers of any size
/// round-trip exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Number(String);

impl Number {
    /// The value as an unsigned integer, if it is one that fits.
    pub fn as_u64(&self) -> Option<u64> {
        self.0.parse().ok()
    }

    /// The value as a signed integer, if it is one that fits.
    pub fn as_i64(&self) -> Option<i64> {
        self.0.parse().ok()
    }

    /// The value as a float (always succeeds for a validated number).
    pub fn as_f64(&self) -> f64 {
        self.0.parse().unwrap_or(f64::NAN)
    }

    /// The number exactly as written.
    pub fn as_text(&self) -> &str {
        &self.0
    }
}

macro_rules! number_from_int {
    ($wide:ty: $($t:ty),*) => {$(
        impl From<$t> for Number {
            fn from(v: $t) -> Number {
                // Written as the widest integer of its sign (a lossless
                // cast, the same digits): one formatting copy for all.
                Number(integer_text(v as $wide))
            }
        }
        impl From<$t> for Value {
            fn from(v: $t) -> Value {
                Value::Number(Number::from(v))
            }
        }
    )*};
}
number_from_int!(u64: u8, u16, u32, u64, usize);
number_from_int!(i64: i8, i16, i32, i64);

/// An integer's digits, as `Display` writes them (see [`push_u64`]).
trait IntegerText {
    fn push_to(self, out: &mut String);
}

impl IntegerText for u64 {
    fn push_to(self, out: &mut String) {
        push_u64(out, self);
    }
}

impl IntegerText for i64 {
    fn push_to(self, out: &mut String) {
        if self < 0 {
            out.push('-');
        }
        push_u64(out, self.unsigned_abs());
    }
}

fn integer_text(n: impl IntegerText) -> String {
    let mut text = String::with_capacity(20);
    n.push_to(&mut text);
    text
}

/// Appends `n` in decimal, as `Display` writes it, without `core::fmt`:
/// its support for widths and padding costs some 185 instructions a
/// number, and records hold several.
pub fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    push_ascii(out, &digits[at..]);
}

/// Appends ASCII `bytes` in one copy (a `push` a character costs a call
/// and a capacity check each).
pub fn push_ascii(out: &mut String, bytes: &[u8]) {
    // Never fails on ASCII; anything else is left out rather than mangled.
    if let Ok(text) = std::str::from_utf8(bytes) {
        out.push_str(text);
    }
}

/// A JSON value. Objects keep their members in order; duplicate keys are
/// rejected by the reader and refused by the writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, kept as written.
    Number(Number),
    /// A string, unescaped.
    String(String),
    /// An array, in order.
    Array(Vec<Value>),
    /// An object's members in document order. Keys must be unique: the
    /// writer refuses an object that repeats one.
    Object(Vec<(String, Value)>),
}

/// Why a [`Value`] cannot be written: the reader would refuse the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteError {
    /// Where: the keys and indices from the top (`options`,
    /// `subnets[0].aux`); empty for the value itself.
    pub at: String,
    /// What is wrong there.
    pub problem: WriteProblem,
}

/// What makes a [`Value`] unwritable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteProblem {
    /// An object holds this key more than once.
    DuplicateKey(String),
    /// Arrays and objects nest deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.problem {
            // Debug quotes and escapes: the key may hold any character.
            WriteProblem::DuplicateKey(key) => write!(f, "duplicate object key {key:?}")?,
            WriteProblem::TooDeep => write!(f, "nesting deeper than {MAX_DEPTH} levels")?,
        }
        if self.at.is_empty() {
            f.write_str(" at the top level")
        } else {
            // Quoted and escaped, as the key: a key may hold any character
            // (`str`'s `Debug` is linked anyway; `escape_debug`'s
            // `Display` cost 2.3 KiB for this one use).
            write!(f, " in {:?}", self.at)
        }
    }
}

impl std::error::Error for WriteError {}

impl Value {
    /// Builds an object from `(key, value)` pairs, in order. Keys should be
    /// unique; a repeated one makes the value unwritable (see [`Value::check`]).
    pub fn object<K: Into<String>>(members: impl IntoIterator<Item = (K, Value)>) -> Value {
        Value::collect_object(&mut members.into_iter().map(|(k, v)| (k.into(), v)))
    }

    /// [`Value::object`]'s collecting, through a `dyn` iterator so that its
    /// code is kept once rather than once per kind of argument.
    #[inline(never)]
    fn collect_object(members: &mut dyn Iterator<Item = (String, Value)>) -> Value {
        Value::Object(members.collect())
    }

    /// The member `key` of an object; `None` for a missing key or a non-object.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_object()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// A number that is an unsigned integer fitting in `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    /// A number that is an integer fitting in `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    /// The value of `true` or `false`.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The items of an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The members of an object, in document order.
    pub fn as_object(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(members) => Some(members),
            _ => None,
        }
    }

    /// Whether this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Whether the value can be written as JSON that [`parse`] reads back:
    /// no object repeats a key, nothing nests deeper than [`MAX_DEPTH`].
    ///
    /// ```
    /// use ipvlan::json::Value;
    /// let twice = Value::object([("mtu", Value::from("1400")), ("mtu", Value::from("1500"))]);
    /// let record = Value::object([("options", twice)]);
    /// let error = record.check().unwrap_err();
    /// assert_eq!(error.to_string(), "duplicate object key \"mtu\" in \"options\"");
    /// assert!(record.to_pretty().is_err());
    /// ```
    pub fn check(&self) -> Result<(), WriteError> {
        let mut path = Vec::new();
        check_value(self, 0, &mut path).map_err(|problem| WriteError {
            at: path_text(&path),
            problem,
        })
    }

    /// Serialises without any whitespace; refuses what [`Value::check`]
    /// refuses.
    pub fn to_compact(&self) -> Result<String, WriteError> {
        self.check()?;
        // A record's size: most writes then grow the text once or never.
        let mut out = String::with_capacity(512);
        write_value(&mut out, self, None, 0);
        Ok(out)
    }

    /// Serialises with 4-space indentation, as `docker network inspect`
    /// does; refuses what [`Value::check`] refuses.
    pub fn to_pretty(&self) -> Result<String, WriteError> {
        self.check()?;
        let mut out = String::with_capacity(512);
        write_value(&mut out, self, Some(4), 0);
        Ok(out)
    }
}

/// The compact form, for messages and logs. A value that cannot be written
/// shows as `<not JSON: why>`, never as text the reader would refuse.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_compact() {
            Ok(text) => f.write_str(&text),
            Err(error) => write!(f, "<not JSON: {error}>"),
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::String(v.to_owned())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::String(v)
    }
}

impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Value {
        Value::Array(v)
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Value {
        v.map_or(Value::Null, Into::into)
    }
}

// ---------------------------------------------------------------- writer

/// One step from the top of a value to a part of it.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn path_text(path: &[Step<'_>]) -> String {
    let mut text = String::new();
    for step in path {
        match step {
            Step::Key(key) => {
                if !text.is_empty() {
                    text.push('.');
                }
                text.push_str(key);
            }
            Step::Index(index) => text.push_str(&format!("[{index}]")),
        }
    }
    text
}

/// Stops at the first problem, leaving `path` at it. Counts nesting the way
/// the reader does, so it recurses at most [`MAX_DEPTH`] + 1 levels however
/// deep the value is.
fn check_value<'a>(
    value: &'a Value,
    depth: usize,
    path: &mut Vec<Step<'a>>,
) -> Result<(), WriteProblem> {
    let items: Box<dyn Iterator<Item = (Step<'a>, &'a Value)>> = match value {
        Value::Array(items) => Box::new(
            items
                .iter()
                .enumerate()
                .map(|(index, item)| (Step::Index(index), item)),
        ),
        Value::Object(members) => {
            if let Some(at) = repeated_key(members) {
                return Err(WriteProblem::DuplicateKey(members[at].0.clone()));
            }
            Box::new(members.iter().map(|(key, item)| (Step::Key(key), item)))
        }
        _ => return Ok(()),
    };
    if depth + 1 > MAX_DEPTH {
        return Err(WriteProblem::TooDeep);
    }
    for (step, item) in items {
        path.push(step);
        check_value(item, depth + 1, path)?;
        path.pop();
    }
    Ok(())
}

/// Objects up to this many members are searched for a repeated key pair
/// by pair; larger ones through an ordered set of the keys seen.
const SMALL_OBJECT: usize = 16;

/// Where the first key that repeats an earlier one is, in document order.
/// (An ordered set: a hashed one would ask the kernel for random keys.)
fn repeated_key(members: &[(String, Value)]) -> Option<usize> {
    // Records have a dozen members; `inspect` may list thousands of
    // containers, and a CNI config's `args` whatever a runtime copies into
    // it, where comparing every pair would take seconds.
    if members.len() <= SMALL_OBJECT {
        return (0..members.len())
            .find(|&at| members[..at].iter().any(|(k, _)| *k == members[at].0));
    }
    let mut seen = std::collections::BTreeSet::new();
    members
        .iter()
        .position(|(key, _)| !seen.insert(key.as_str()))
}

fn write_value(out: &mut String, value: &Value, indent: Option<usize>, level: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => out.push_str(&n.0),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, level + 1);
                write_value(out, item, indent, level + 1);
            }
            newline(out, indent, level);
            out.push(']');
        }
        Value::Object(members) => {
            if members.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, indent, level + 1);
                write_string(out, key);
                out.push(':');
                if indent.is_some() {
                    out.push(' ');
                }
                write_value(out, item, indent, level + 1);
            }
            newline(out, indent, level);
            out.push('}');
        }
    }
}

fn newline(out: &mut String, indent: Option<usize>, level: usize) {
    /// Indentation is copied from here, a slice at a time rather than a
    /// space at a time.
    const SPACES: &str = "                                ";
    if let Some(width) = indent {
        out.push('\n');
        let mut left = width * level;
        while left > 0 {
            let run = left.min(SPACES.len());
            out.push_str(&SPACES[..run]);
            left -= run;
        }
    }
}

/// Whether a JSON string holds byte `b` only escaped: a quote, a
/// backslash, a control character.
fn is_escaped(b: u8) -> bool {
    b == b'"' || b == b'\\' || b < 0x20
}

/// Whether `s` holds a byte a JSON string must escape.
fn needs_escape(s: &str) -> bool {
    s.bytes().any(is_escaped)
}

fn write_string(out: &mut String, s: &str) {
    // Most strings need no escape: copied whole, between their quotes.
    if !needs_escape(s) {
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
    out.push('"');
    // Runs of bytes that need no escape are copied whole; every byte that
    // does is ASCII, so a run always ends on a character boundary.
    let mut run_start = 0;
    for (at, byte) in s.bytes().enumerate() {
        let escaped = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[run_start..at]);
        run_start = at + 1;
        if escaped.is_empty() {
            out.push_str(&format!("\\u{byte:04x}"));
        } else {
            out.push_str(escaped);
        }
    }
    out.push_str(&s[run_start..]);
    out.push('"');
}

/// Writes one flat object (members whose values are strings, integers,
/// booleans or null) straight into text, laid out exactly as
/// [`Value::to_pretty`] or [`Value::to_compact`] lays out the same object.
/// For the records every attach writes: building a [`Value`] first costs
/// an allocation a member, another a key, and a walk of the tree to check
/// and write it, a quarter of a batch's instructions.
///
/// Nothing nests, and the keys are the caller's literals, distinct
/// (checked in test builds), so the text is always what [`parse`] reads.
///
/// ```
/// use ipvlan::json::{ObjectWriter, Value};
/// let mut object = ObjectWriter::new(true);
/// object.str("name", "db_net").opt_u64("mtu", None).bool("internal", false);
/// let same = Value::object([
///     ("name", Value::from("db_net")),
///     ("mtu", Value::Null),
///     ("internal", Value::from(false)),
/// ]);
/// assert_eq!(object.finish(), same.to_pretty().unwrap());
/// ```
pub struct ObjectWriter {
    out: String,
    pretty: bool,
    members: usize,
    #[cfg(test)]
    keys: Vec<&'static str>,
}

impl ObjectWriter {
    /// An empty object, laid out as `to_pretty` (`pretty`) or `to_compact`.
    pub fn new(pretty: bool) -> ObjectWriter {
        // A record's size: most records then grow the text once or never.
        let mut out = String::with_capacity(512);
        out.push('{');
        ObjectWriter {
            out,
            pretty,
            members: 0,
            #[cfg(test)]
            keys: Vec::new(),
        }
    }

    fn key(&mut self, key: &'static str) -> &mut String {
        // Keys are the caller's literals, distinct and needing no escape:
        // written as they are, between their punctuation, in three copies.
        #[cfg(test)]
        {
            assert!(!self.keys.contains(&key), "key {key:?} written twice");
            assert!(!needs_escape(key), "key {key:?} needs escapes");
            self.keys.push(key);
        }
        let before = match (self.members > 0, self.pretty) {
            (false, false) => "\"",
            (true, false) => ",\"",
            (false, true) => "\n    \"",
            (true, true) => ",\n    \"",
        };
        self.members += 1;
        self.out.push_str(before);
        self.out.push_str(key);
        self.out.push_str(if self.pretty { "\": " } else { "\":" });
        &mut self.out
    }

    /// A string member.
    pub fn str(&mut self, key: &'static str, value: &str) -> &mut Self {
        write_string(self.key(key), value);
        self
    }

    /// A string member, or `null`.
    pub fn opt_str(&mut self, key: &'static str, value: Option<&str>) -> &mut Self {
        match value {
            Some(value) => self.str(key, value),
            None => self.null(key),
        }
    }

    /// A string member whose text `write` appends: it must write only
    /// characters that JSON strings hold unescaped (digits, letters,
    /// `.:-/`), as an address or a timestamp; checked in test builds.
    pub fn plain_str(&mut self, key: &'static str, write: impl FnOnce(&mut String)) -> &mut Self {
        let out = self.key(key);
        out.push('"');
        #[cfg(test)]
        let start = out.len();
        write(out);
        #[cfg(test)]
        assert!(
            !needs_escape(&out[start..]),
            "{:?} needs escapes",
            &out[start..]
        );
        out.push('"');
        self
    }

    /// An integer member.
    pub fn u64(&mut self, key: &'static str, value: u64) -> &mut Self {
        push_u64(self.key(key), value);
        self
    }

    /// An integer member, or `null`.
    pub fn opt_u64(&mut self, key: &'static str, value: Option<u64>) -> &mut Self {
        match value {
            Some(value) => self.u64(key, value),
            None => self.null(key),
        }
    }

    /// A boolean member.
    pub fn bool(&mut self, key: &'static str, value: bool) -> &mut Self {
        self.key(key).push_str(if value { "true" } else { "false" });
        self
    }

    /// An object member whose members are `entries`, strings under keys
    /// of the caller's (escaped as needed), in that order: a record's map
    /// of ids, written as `to_pretty` (or `to_compact`) writes one.
    pub fn str_map<'e>(
        &mut self,
        key: &'static str,
        entries: impl IntoIterator<Item = (&'e str, &'e str)>,
    ) -> &mut Self {
        let pretty = self.pretty;
        let out = self.key(key);
        let mut members = 0;
        for (name, value) in entries {
            out.push_str(match (members > 0, pretty) {
                (false, false) => "{",
                (true, false) => ",",
                (false, true) => "{\n        ",
                (true, true) => ",\n        ",
            });
            write_string(out, name);
            out.push_str(if pretty { ": " } else { ":" });
            write_string(out, value);
            members += 1;
        }
        out.push_str(match (members > 0, pretty) {
            (false, _) => "{}",
            (true, false) => "}",
            (true, true) => "\n    }",
        });
        self
    }

    /// A `null` member.
    pub fn null(&mut self, key: &'static str) -> &mut Self {
        self.key(key).push_str("null");
        self
    }

    /// The object's text.
    pub fn finish(mut self) -> String {
        if self.members > 0 && self.pretty {
            self.out.push('\n');
        }
        self.out.push('}');
        self.out
    }
}

// ---------------------------------------------------------------- reader

/// Why and where a text is not acceptable JSON.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset of the problem in the input.
    pub offset: usize,
    /// 1-based line of the problem.
    pub line: usize,
    /// 1-based column (in characters) of the problem.
    pub column: usize,
    /// What is wrong.
    pub message: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid JSON at line {} column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for ParseError {}

/// Parses one JSON document; whitespace may surround it, nothing else.
pub fn parse(text: &str) -> Result<Value, ParseError> {
    let mut reader = Reader {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    reader.skip_whitespace();
    let value = reader.value(0)?;
    reader.skip_whitespace();
    if reader.pos != reader.bytes.len() {
        return Err(reader.error("unexpected data after the JSON value"));
    }
    Ok(value)
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn error(&self, message: &'static str) -> ParseError {
        self.error_at(self.pos, message)
    }

    fn error_at(&self, offset: usize, message: &'static str) -> ParseError {
        let offset = offset.min(self.bytes.len());
        // Offsets always come from ASCII delimiters or the end, but stay safe
        // on a non-boundary by walking back to one.
        let mut boundary = offset;
        while !self.text.is_char_boundary(boundary) {
            boundary -= 1;
        }
        let before = &self.text[..boundary];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        ParseError {
            offset,
            line,
            column,
            message,
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect_literal(&mut self, literal: &'static str, value: Value) -> Result<Value, ParseError> {
        if self.bytes[self.pos..].starts_with(literal.as_bytes()) {
            self.pos += literal.len();
            Ok(value)
        } else {
            Err(self.error("invalid literal"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        match self.peek() {
            None => Err(self.error("unexpected end of input")),
            Some(b'n') => self.expect_literal("null", Value::Null),
            Some(b't') => self.expect_literal("true", Value::Bool(true)),
            Some(b'f') => self.expect_literal("false", Value::Bool(false)),
            Some(b'"') => self.string().map(Value::String),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'[') => self.array(depth + 1),
            Some(b'{') => self.object(depth + 1),
            Some(_) => Err(self.error("expected a value")),
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_whitespace();
            items.push(self.value(depth)?);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Value::Array(items));
                }
                None => return Err(self.error("unexpected end of input in an array")),
                Some(_) => return Err(self.error("expected ',' or ']'")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        self.pos += 1; // '{'
        let mut members: Vec<(String, Value)> = Vec::new();
        // Where the keys past the first SMALL_OBJECT are: those are checked
        // against the others once the object is read, not one by one (so
        // an object that also fails later, cut short say, is refused for
        // that failure, not for its repeated key).
        let mut late_keys: Vec<usize> = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_whitespace();
            let key_offset = self.pos;
            if self.peek() != Some(b'"') {
                return Err(self.error("expected a string as object key"));
            }
            let key = self.string()?;
            if members.len() >= SMALL_OBJECT {
                late_keys.push(key_offset);
            } else if members.iter().any(|(k, _)| *k == key) {
                return Err(self.error_at(key_offset, "duplicate object key"));
            }
            self.skip_whitespace();
            if self.peek() != Some(b':') {
                return Err(self.error("expected ':' after an object key"));
            }
            self.pos += 1;
            self.skip_whitespace();
            let value = self.value(depth)?;
            members.push((key, value));
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    if let Some(at) = late_keys.first().and_then(|_| repeated_key(&members)) {
                        let offset = late_keys[at - SMALL_OBJECT];
                        return Err(self.error_at(offset, "duplicate object key"));
                    }
                    return Ok(Value::Object(members));
                }
                None => return Err(self.error("unexpected end of input in an object")),
                Some(_) => return Err(self.error("expected ',' or '}'")),
            }
        }
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.pos += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(self.error("leading zeros are not allowed"));
                }
            }
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error("expected a digit")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("expected a digit after '.'"));
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("expected a digit in the exponent"));
            }
            self.digits();
        }
        Ok(Value::Number(Number(self.text[start..self.pos].to_owned())))
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    fn string(&mut self) -> Result<String, ParseError> {
        // Past the opening quote. Most strings hold no escape: taken
        // whole, one allocation of their size.
        self.pos += 1;
        let run_end = self.run_end();
        if self.bytes.get(run_end) == Some(&b'"') {
            let out = self.text[self.pos..run_end].to_owned();
            self.pos = run_end + 1;
            return Ok(out);
        }
        let mut out = String::new();
        loop {
            let run_start = self.pos;
            self.pos = self.run_end();
            // The run ends on an ASCII byte or the end, so it is whole UTF-8.
            out.push_str(&self.text[run_start..self.pos]);
            match self.peek() {
                None => return Err(self.error("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = self.escape()?;
                    out.push(c);
                }
                Some(_) => return Err(self.error("control character in a string")),
            }
        }
    }

    /// Where the run of string bytes from here that need no unescaping
    /// ends: at a quote, a backslash, a control character or the end.
    fn run_end(&self) -> usize {
        let rest = &self.bytes[self.pos..];
        self.pos
            + rest
                .iter()
                .position(|&b| is_escaped(b))
                .unwrap_or(rest.len())
    }

    fn escape(&mut self) -> Result<char, ParseError> {
        let escape_offset = self.pos - 1;
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => {
                self.pos += 1;
                let high = self.hex4()?;
                return match high {
                    0xd800..=0xdbff => {
                        if !self.bytes[self.pos..].starts_with(b"\\u") {
                            return Err(
                                self.error_at(escape_offset, "lone surrogate in \\u escape")
                            );
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xdc00..=0xdfff).contains(&low) {
                            return Err(self.error_at(escape_offset, "invalid surrogate pair"));
                        }
                        let code = 0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00);
                        char::from_u32(code)
                            .ok_or_else(|| self.error_at(escape_offset, "invalid \\u escape"))
                    }
                    0xdc00..=0xdfff => {
                        Err(self.error_at(escape_offset, "lone surrogate in \\u escape"))
                    }
                    _ => char::from_u32(high)
                        .ok_or_else(|| self.error_at(escape_offset, "invalid \\u escape")),
                };
            }
            _ => return Err(self.error_at(escape_offset, "invalid escape")),
        };
        self.pos += 1;
        Ok(c)
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let digits = self
            .bytes
            .get(self.pos..self.pos + 4)
            .ok_or_else(|| self.error("truncated \\u escape"))?;
        let mut code = 0u32;
        for &d in digits {
            let v = (d as char)
                .to_digit(16)
                .ok_or_else(|| self.error("invalid hex digit in \\u escape"))?;
            code = code * 16 + v;
        }
        self.pos += 4;
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_kind_of_value() {
        let v = parse(
            r#" {"a": [1, -2.5e3, true, false, null], "b": "x\ny\u00e9\ud83d\ude00", "c": {}} "#,
        )
        .unwrap();
        let a = v.get("a").unwrap().as_array().unwrap();
        assert_eq!(a[0].as_u64(), Some(1));
        assert_eq!(a[1], Value::Number(Number("-2.5e3".into())));
        assert_eq!(a[2].as_bool(), Some(true));
        assert!(a[4].is_null());
        assert_eq!(v.get("b").unwrap().as_str(), Some("x\nyé😀"));
        assert_eq!(v.get("c").unwrap().as_object(), Some(&[][..]));
        assert_eq!(v.get("missing"), None);
    }

    #[test]
    fn integers_are_written_as_display_writes_them() {
        for n in [0, 1, 9, 10, 99, 100, 4_294_967_295, 4_294_967_296, u64::MAX] {
            let mut out = String::from("x");
            push_u64(&mut out, n);
            assert_eq!(out, format!("x{n}"));
            assert_eq!(Value::from(n).to_compact().unwrap(), n.to_string());
        }
        for n in [0i64, -1, 42, -42, i64::MIN, i64::MAX] {
            assert_eq!(Value::from(n).to_compact().unwrap(), n.to_string());
        }
    }

    #[test]
    fn an_object_written_member_by_member_is_the_values_text() {
        let writer = |pretty| {
            let mut object = ObjectWriter::new(pretty);
            object
                .str("name", "tab\t quote\" back\\ nul\u{0} é")
                .opt_str("gone", None)
                .opt_str("here", Some("x"))
                .plain_str("addr", |out| out.push_str("10.9.0.7/16"))
                .u64("zero", 0)
                .opt_u64("max", Some(u64::MAX))
                .opt_u64("none", None)
                .bool("yes", true)
                .bool("no", false)
                .null("nothing")
                .str_map("ids", [("a\"b", "1"), ("c", "2\n")])
                .str_map("one", [("k", "v")])
                .str_map("none_at_all", []);
            object.finish()
        };
        let value = Value::object([
            ("name", Value::from("tab\t quote\" back\\ nul\u{0} é")),
            ("gone", Value::Null),
            ("here", Value::from("x")),
            ("addr", Value::from("10.9.0.7/16")),
            ("zero", Value::from(0u64)),
            ("max", Value::from(u64::MAX)),
            ("none", Value::Null),
            ("yes", Value::from(true)),
            ("no", Value::from(false)),
            ("nothing", Value::Null),
            (
                "ids",
                Value::object([("a\"b", Value::from("1")), ("c", Value::from("2\n"))]),
            ),
            ("one", Value::object([("k", Value::from("v"))])),
            ("none_at_all", Value::object(Vec::<(String, Value)>::new())),
        ]);
        assert_eq!(writer(true), value.to_pretty().unwrap());
        assert_eq!(writer(false), value.to_compact().unwrap());
        assert_eq!(parse(&writer(true)).unwrap(), value);
        let empty = Value::object(Vec::<(String, Value)>::new());
        assert_eq!(ObjectWriter::new(true).finish(), empty.to_pretty().unwrap());
        assert_eq!(ObjectWriter::new(false).finish(), "{}");
    }

    /// Small objects are searched pair by pair, large ones through a set
    /// of the keys seen: both find a repeated key, wherever it is.
    #[test]
    fn a_repeated_key_is_found_in_small_and_large_objects() {
        for size in [3, 16, 17, 300] {
            for (first, second) in [
                (0, size - 1),
                (size / 2, size / 2 + 1),
                (size - 2, size - 1),
            ] {
                let members: Vec<(String, Value)> = (0..size)
                    .map(|at| {
                        let key = if at == second { first } else { at };
                        (format!("k{key}"), Value::Null)
                    })
                    .collect();
                assert_eq!(
                    repeated_key(&members),
                    Some(second),
                    "{size} members, k{first} at {first} and {second}"
                );
                let distinct: Vec<(String, Value)> = (0..size)
                    .map(|at| (format!("k{at}"), Value::Null))
                    .collect();
                assert_eq!(repeated_key(&distinct), None, "{size} distinct members");
            }
        }
    }

    #[test]
    #[should_panic(expected = "written twice")]
    fn an_object_writer_refuses_a_key_twice_in_tests() {
        let mut object = ObjectWriter::new(false);
        object.u64("mtu", 1400).u64("mtu", 1500);
    }

    #[test]
    #[should_panic(expected = "needs escapes")]
    fn a_plain_string_that_needs_escapes_is_caught_in_tests() {
        ObjectWriter::new(false).plain_str("quote", |out| out.push('"'));
    }

    #[test]
    fn round_trips_its_own_output() {
        let v = Value::object([
            ("Name", Value::from("db_net")),
            ("Id", Value::from("ab".repeat(32))),
            ("Count", Value::from(18_446_744_073_709_551_615u64)),
            ("Neg", Value::from(-42i64)),
            ("Internal", Value::from(false)),
            ("Gateway", Value::from(None::<&str>)),
            (
                "Weird",
                Value::from("tab\t quote\" back\\ nul\u{0} bell\u{7} é"),
            ),
            (
                "Config",
                Value::from(vec![Value::object([(
                    "Subnet",
                    Value::from("192.168.1.0/24"),
                )])]),
            ),
            ("Empty", Value::from(Vec::new())),
            ("EmptyObj", Value::object(Vec::<(String, Value)>::new())),
        ]);
        assert_eq!(parse(&v.to_compact().unwrap()).unwrap(), v);
        assert_eq!(parse(&v.to_pretty().unwrap()).unwrap(), v);
        assert_eq!(v.get("Count").unwrap().as_u64(), Some(u64::MAX));
        assert_eq!(
            Value::from("a\"b\\c\nd\re\tf\u{8}\u{c}\u{1}\u{1f} é")
                .to_compact()
                .unwrap(),
            r#""a\"b\\c\nd\re\tf\b\f\u0001\u001f é""#,
            "each escape as JSON spells it, everything else as it is"
        );
    }

    #[test]
    fn deep_values_are_indented_four_spaces_a_level() {
        let mut v = Value::from(1u64);
        for _ in 0..12 {
            v = Value::from(vec![v]);
        }
        let text = v.to_pretty().unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 25);
        for (at, line) in lines.iter().enumerate() {
            let level = at.min(24 - at);
            let expected = match at {
                12 => "1",
                _ if at < 12 => "[",
                _ => "]",
            };
            assert_eq!(
                *line,
                format!("{}{expected}", " ".repeat(4 * level)),
                "line {at}"
            );
        }
    }

    #[test]
    fn pretty_output_matches_docker_layout() {
        let v = Value::from(vec![Value::object([
            ("Name", Value::from("n")),
            ("Options", Value::object([("parent", Value::from("eth0"))])),
            ("Containers", Value::object(Vec::<(String, Value)>::new())),
        ])]);
        let expected = "[\n    {\n        \"Name\": \"n\",\n        \"Options\": {\n            \"parent\": \"eth0\"\n        },\n        \"Containers\": {}\n    }\n]";
        assert_eq!(v.to_pretty().unwrap(), expected);
        assert_eq!(
            v.to_compact().unwrap(),
            r#"[{"Name":"n","Options":{"parent":"eth0"},"Containers":{}}]"#
        );
        assert_eq!(v.to_string(), v.to_compact().unwrap());
    }

    #[test]
    fn rejects_malformed_input_with_a_position() {
        let cases: &[(&str, usize, usize, &str)] = &[
            ("", 1, 1, "unexpected end of input"),
            ("{} x", 1, 4, "unexpected data after the JSON value"),
            ("[1,]", 1, 4, "expected a value"),
            ("[1 2]", 1, 4, "expected ',' or ']'"),
            ("{\"a\" 1}", 1, 6, "expected ':' after an object key"),
            ("{\"a\":1,\"a\":2}", 1, 8, "duplicate object key"),
            ("{1:2}", 1, 2, "expected a string as object key"),
            ("01", 1, 2, "leading zeros are not allowed"),
            ("-", 1, 2, "expected a digit"),
            ("1.", 1, 3, "expected a digit after '.'"),
            ("1e+", 1, 4, "expected a digit in the exponent"),
            ("\"abc", 1, 5, "unterminated string"),
            ("\"a\tb\"", 1, 3, "control character in a string"),
            ("\"\\x\"", 1, 2, "invalid escape"),
            ("\"\\u12g4\"", 1, 4, "invalid hex digit in \\u escape"),
            ("\"\\ud800\"", 1, 2, "lone surrogate in \\u escape"),
            ("\"\\udc00\"", 1, 2, "lone surrogate in \\u escape"),
            ("\"\\ud800\\u0041\"", 1, 2, "invalid surrogate pair"),
            ("tru", 1, 1, "invalid literal"),
            ("{\n  \"a\": nul\n}", 2, 8, "invalid literal"),
            ("[\"é\", x]", 1, 7, "expected a value"),
        ];
        for &(text, line, column, message) in cases {
            let err = parse(text).expect_err(text);
            assert_eq!(
                (err.line, err.column, err.message),
                (line, column, message),
                "{text:?}"
            );
        }
        assert!(parse("{\"a\": truex}")
            .unwrap_err()
            .to_string()
            .contains("line 1 column 11"));
    }

    /// A key repeated in an object of any size is refused at the later of
    /// the two, as the reader meets it, whether the two are among the
    /// first members (compared pair by pair) or not (through a set, once
    /// the object is read), in nested objects too.
    #[test]
    fn a_repeated_key_is_refused_where_it_repeats_in_objects_of_any_size() {
        for size in [2, SMALL_OBJECT, SMALL_OBJECT + 1, SMALL_OBJECT + 2, 1000] {
            for (first, second) in [
                (0, 1),
                (0, size - 1),
                (size / 2 - 1, size / 2),
                (size - 2, size - 1),
            ] {
                if second >= size || first >= second {
                    continue;
                }
                let keys = |nested: bool| {
                    let members: Vec<String> = (0..size)
                        .map(|at| format!("\"k{}\":0", if at == second { first } else { at }))
                        .collect();
                    let object = format!("{{{}}}", members.join(","));
                    match nested {
                        true => format!("{{\"a\":[{object}]}}"),
                        false => object,
                    }
                };
                for nested in [false, true] {
                    let text = keys(nested);
                    // The later one, past its comma; columns count from 1.
                    let column = text.rfind(&format!(",\"k{first}\":")).map(|at| at + 2);
                    let err = parse(&text).unwrap_err();
                    assert_eq!(
                        (err.message, Some(err.column)),
                        ("duplicate object key", column),
                        "{size} members, k{first} at {first} and {second}, nested {nested}"
                    );
                }
            }
            let distinct: Vec<String> = (0..size).map(|at| format!("\"k{at}\":{at}")).collect();
            let value = parse(&format!("{{{}}}", distinct.join(","))).unwrap();
            assert_eq!(
                value.get(&format!("k{}", size - 1)).and_then(Value::as_u64),
                Some(size as u64 - 1)
            );
        }
    }

    #[test]
    fn bounds_nesting_depth() {
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(parse(&deep).unwrap_err().message, "nesting too deep");
        let hostile = "{\"a\":".repeat(100_000);
        assert_eq!(parse(&hostile).unwrap_err().message, "nesting too deep");
    }

    #[test]
    fn the_writer_refuses_what_the_reader_would_refuse() {
        let member = |key: &str| (key.to_string(), Value::Null);
        let cases = [
            (
                Value::object([member("a"), member("b"), member("a")]),
                "duplicate object key \"a\" at the top level",
            ),
            (
                Value::object([(
                    "subnets",
                    Value::from(vec![
                        Value::object([member("x")]),
                        Value::object([("aux", Value::object([member("r\n"), member("r\n")]))]),
                    ]),
                )]),
                "duplicate object key \"r\\n\" in \"subnets[1].aux\"",
            ),
            (
                // A control character, a quote, a bidi override in the
                // path: escaped, as in the key.
                Value::object([(
                    "a\u{1b}\"b\u{202e}",
                    Value::object([member("x"), member("x")]),
                )]),
                "duplicate object key \"x\" in \"a\\u{1b}\\\"b\\u{202e}\"",
            ),
            (
                // Past the point where comparing pairs gives way to a set.
                Value::object((0..40).map(|n| member(&format!("k{}", n % 39)))),
                "duplicate object key \"k0\" at the top level",
            ),
        ];
        for (value, text) in cases {
            let error = value.check().unwrap_err();
            assert_eq!(error.to_string(), text);
            assert_eq!(value.to_compact(), Err(error.clone()));
            assert_eq!(value.to_pretty(), Err(error.clone()));
            assert_eq!(value.to_string(), format!("<not JSON: {text}>"));
        }
        let distinct = Value::object((0..40).map(|n| member(&format!("k{n}"))));
        assert_eq!(parse(&distinct.to_pretty().unwrap()).unwrap(), distinct);
    }

    #[test]
    fn the_writer_nests_exactly_as_deep_as_the_reader() {
        let nested = |levels: usize| {
            let mut value = Value::Null;
            for _ in 0..levels {
                value = Value::object([("a", Value::from(vec![value]))]);
            }
            value
        };
        let deepest = nested(MAX_DEPTH / 2);
        assert_eq!(parse(&deepest.to_compact().unwrap()).unwrap(), deepest);
        let deeper = Value::from(vec![deepest]);
        let error = deeper.check().unwrap_err();
        assert_eq!(error.problem, WriteProblem::TooDeep);
        let text = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(parse(&text).is_err(), "the reader refuses it too");
        // Checking stops at the limit, however deep the value goes.
        let mut hostile = Value::Null;
        for _ in 0..100_000 {
            hostile = Value::from(vec![hostile]);
        }
        assert_eq!(hostile.check().unwrap_err().problem, WriteProblem::TooDeep);
        std::mem::forget(hostile);
    }

    #[test]
    fn survives_random_and_mutated_input() {
        let seed = r#"{"version":1,"name":"db_net","subnets":[{"subnet":"192.168.1.0/24","gateway":"192.168.1.1"}],"x":"\u00e9\n","n":-1.5e-3}"#;
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut bytes = seed.as_bytes().to_vec();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % bytes.len();
                match next() % 3 {
                    0 => bytes[i] = next() as u8,
                    1 => bytes.truncate(i.max(1)),
                    _ => bytes.insert(i, b"{}[]\",:\\0-e"[(next() % 11) as usize]),
                }
            }
            if let Ok(text) = std::str::from_utf8(&bytes) {
                if let Ok(v) = parse(text) {
                    assert_eq!(parse(&v.to_compact().unwrap()).unwrap(), v);
                }
            }
        }
    }
}
