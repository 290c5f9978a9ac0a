//! Typed reading of JSON objects for the config and results: each getter
//! names the key's full path in its error, so a user sees
//! `ipam.ranges[0][1].subnet` rather than "bad config".

use std::net::IpAddr;

use ipnet::IpNet;

use super::error::{CniError, ErrorCode};
use crate::json::Value;
use crate::text::escape_controls;

/// An object being read, with where it sits and the code its errors get.
#[derive(Clone)]
pub struct Obj<'a> {
    members: &'a [(String, Value)],
    at: String,
    code: ErrorCode,
}

/// The JSON type of `value`, for messages.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An address a runtime asks for, as host-local reads it (`runtimeConfig`,
/// `args.cni` and `CNI_ARGS` alike): `10.1.2.5` or `10.1.2.5/24` (the
/// prefix length says nothing more, but must be one), an IPv4-mapped IPv6
/// address taken as the IPv4 address (its `canonicalizeIP`).
pub fn requested_address(text: &str) -> Option<IpAddr> {
    let parsed = match text.contains('/') {
        true => crate::digits::parse_cidr(text).map(|net| net.addr()),
        false => text.parse().ok(),
    };
    parsed.map(|ip: IpAddr| ip.to_canonical())
}

/// `at.key`, or `key` at the top.
pub fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

impl<'a> Obj<'a> {
    /// `value` as an object found at `at` (empty for the top).
    pub fn new(
        value: &'a Value,
        at: impl Into<String>,
        code: ErrorCode,
    ) -> Result<Obj<'a>, CniError> {
        Obj::new_at(value, at.into(), code)
    }

    /// [`Obj::new`]'s body, kept once for every kind of `at`.
    #[inline(never)]
    fn new_at(value: &'a Value, at: String, code: ErrorCode) -> Result<Obj<'a>, CniError> {
        match value.as_object() {
            Some(members) => Ok(Obj { members, at, code }),
            None => Err(CniError::new(
                code,
                format!("{} must be an object, not {}", shown_at(&at), kind(value)),
            )),
        }
    }

    /// Where this object is.
    pub fn at(&self) -> &str {
        &self.at
    }

    /// The path of member `key`.
    pub fn path(&self, key: &str) -> String {
        join(&self.at, key)
    }

    /// An error of this object's code.
    pub fn error(&self, msg: impl Into<String>) -> CniError {
        CniError::new(self.code, msg)
    }

    /// The member `key`; a JSON `null` counts as absent, as Go decodes it.
    /// As Go decodes into the reference plugins' structs, a key is matched
    /// whatever its case (`"Master"` is `master`), the last one winning.
    /// Two spelled exactly alike never get here: the JSON reader refuses
    /// them (Go keeps the last; libcni, which rebuilds every config
    /// through a map, never sends them).
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.member(key).filter(|v| !v.is_null())
    }

    /// Whether member `key` is there and a JSON `null` (which
    /// [`Obj::get`] counts as absent).
    pub fn is_null(&self, key: &str) -> bool {
        self.member(key).is_some_and(Value::is_null)
    }

    fn member(&self, key: &str) -> Option<&'a Value> {
        self.members
            .iter()
            .rev()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }

    fn wrong(&self, key: &str, want: &str, value: &Value) -> CniError {
        self.error(format!(
            "{} must be {want}, not {}",
            join(&self.at, key),
            kind(value)
        ))
    }

    /// A string member.
    pub fn str(&self, key: &str) -> Result<Option<&'a str>, CniError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong(key, "a string", other)),
        }
    }

    /// A boolean member.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, CniError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong(key, "a boolean", other)),
        }
    }

    /// A whole number member that fits `u32`.
    pub fn u32(&self, key: &str) -> Result<Option<u32>, CniError> {
        match self.get(key) {
            None => Ok(None),
            Some(value @ Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| {
                    self.error(format!(
                        "{} must be a whole number from 0 to {}, not {}",
                        join(&self.at, key),
                        u32::MAX,
                        escape_controls(&value.to_string())
                    ))
                }),
            Some(other) => Err(self.wrong(key, "a number", other)),
        }
    }

    /// An object member.
    pub fn obj(&self, key: &str) -> Result<Option<Obj<'a>>, CniError> {
        self.get(key)
            .map(|v| Obj::new(v, self.path(key), self.code))
            .transpose()
    }

    /// An array member.
    pub fn array(&self, key: &str) -> Result<&'a [Value], CniError> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(self.wrong(key, "an array", other)),
        }
    }

    /// An array of strings.
    pub fn strings(&self, key: &str) -> Result<Vec<String>, CniError> {
        self.array(key)?
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(self.error(format!(
                    "{}[{i}] must be a string, not {}",
                    join(&self.at, key),
                    kind(other)
                ))),
            })
            .collect()
    }

    /// An IP address member (`10.1.2.1`, `2001:db8::1`). An empty string
    /// is none, as Go's `net.IP` reads it for the reference plugins (an
    /// IPAM plugin's `"gateway": ""` is no gateway).
    pub fn ip(&self, key: &str) -> Result<Option<IpAddr>, CniError> {
        self.str(key)?
            .filter(|s| !s.is_empty())
            .map(|s| {
                // As host-local's `canonicalizeIP`: an IPv4-mapped IPv6
                // address (`::ffff:10.1.2.5`) is the IPv4 address.
                s.parse().map(|ip: IpAddr| ip.to_canonical()).map_err(|_| {
                    self.error(format!(
                        "{} {:?} is not an IP address",
                        join(&self.at, key),
                        escape_controls(s)
                    ))
                })
            })
            .transpose()
    }

    /// An address with its prefix length (`10.1.2.5/24`; host bits kept).
    pub fn cidr(&self, key: &str) -> Result<Option<IpNet>, CniError> {
        self.str(key)?
            .map(|s| {
                crate::digits::parse_cidr(s).ok_or_else(|| {
                    self.error(format!(
                        "{} {:?} is not an address with a prefix length (like 10.1.2.0/24)",
                        join(&self.at, key),
                        escape_controls(s)
                    ))
                })
            })
            .transpose()
    }
}

/// `at` for a message: the key path, or "the config" at the top.
pub fn shown_at(at: &str) -> &str {
    if at.is_empty() {
        "the document"
    } else {
        at
    }
}
