//! The CNI error object and its codes.
//!
//! A runtime reads the error as JSON from the plugin's stdout (stderr is only
//! its fallback when stdout is empty), so every failure of the plugin mode is
//! one [`CniError`] printed there, with a non-zero exit.

use std::fmt;

use crate::json::Value;

/// The spec's well-known error codes (0-99 are reserved by the spec) and
/// the reference plugins' catch-all for runtime failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// 1: the config's `cniVersion` is not one we speak, or does not allow
    /// the verb (CHECK before 0.4.0, STATUS and GC before 1.1.0).
    IncompatibleVersion,
    /// 2: a field is present that this plugin cannot honour.
    UnsupportedField,
    /// 3: the container is unknown or does not exist.
    UnknownContainer,
    /// 4: a `CNI_*` environment variable is missing or invalid.
    InvalidEnvironment,
    /// 5: reading stdin or another I/O failed.
    IoFailure,
    /// 6: stdin (or a delegate's output) is not the JSON expected.
    DecodingFailure,
    /// 7: the network configuration is invalid.
    InvalidConfig,
    /// 8: `CNI_NETNS` is not a namespace the plugin may work in (the
    /// reference library's code: the plugin's own).
    InvalidNetns,
    /// 11: a transient condition; the runtime may retry later.
    TryAgainLater,
    /// 50: STATUS: the plugin cannot serve ADD requests now.
    PluginNotAvailable,
    /// 51: STATUS: the plugin can serve ADD but with limited connectivity.
    LimitedConnectivity,
    /// 999: an operation failed; what the reference plugins use for every
    /// plain runtime error, kept so side-by-side comparisons match.
    Internal,
    /// Any other code, as passed through from a delegated plugin.
    Other(u32),
}

impl ErrorCode {
    /// The number the spec assigns.
    pub fn number(self) -> u32 {
        match self {
            ErrorCode::IncompatibleVersion => 1,
            ErrorCode::UnsupportedField => 2,
            ErrorCode::UnknownContainer => 3,
            ErrorCode::InvalidEnvironment => 4,
            ErrorCode::IoFailure => 5,
            ErrorCode::DecodingFailure => 6,
            ErrorCode::InvalidConfig => 7,
            ErrorCode::InvalidNetns => 8,
            ErrorCode::TryAgainLater => 11,
            ErrorCode::PluginNotAvailable => 50,
            ErrorCode::LimitedConnectivity => 51,
            ErrorCode::Internal => 999,
            ErrorCode::Other(code) => code,
        }
    }

    /// The code for `number`, as read from a delegate's error object.
    pub fn from_number(number: u32) -> ErrorCode {
        match number {
            1 => ErrorCode::IncompatibleVersion,
            2 => ErrorCode::UnsupportedField,
            3 => ErrorCode::UnknownContainer,
            4 => ErrorCode::InvalidEnvironment,
            5 => ErrorCode::IoFailure,
            6 => ErrorCode::DecodingFailure,
            7 => ErrorCode::InvalidConfig,
            8 => ErrorCode::InvalidNetns,
            11 => ErrorCode::TryAgainLater,
            50 => ErrorCode::PluginNotAvailable,
            51 => ErrorCode::LimitedConnectivity,
            999 => ErrorCode::Internal,
            other => ErrorCode::Other(other),
        }
    }
}

/// A failure of the plugin mode: what the runtime gets on stdout. Its
/// fields ([`CniErrorFields`]) are read and written through it.
///
/// Behind a box so that a `CniError` is one pointer: every `?` of the
/// config readers moves a word, not seven (release binary size).
#[derive(Clone, PartialEq, Eq)]
pub struct CniError(Box<CniErrorFields>);

/// What a [`CniError`] holds.
#[derive(Clone, PartialEq, Eq)]
pub struct CniErrorFields {
    /// The spec's code.
    pub code: ErrorCode,
    /// A short message.
    pub msg: String,
    /// Longer details; omitted from the JSON when empty.
    pub details: String,
}

impl std::ops::Deref for CniError {
    type Target = CniErrorFields;
    fn deref(&self) -> &CniErrorFields {
        &self.0
    }
}

impl std::ops::DerefMut for CniError {
    fn deref_mut(&mut self) -> &mut CniErrorFields {
        &mut self.0
    }
}

impl fmt::Debug for CniError {
    // As `#[derive(Debug)]` printed the struct before its fields were boxed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CniError")
            .field("code", &self.code)
            .field("msg", &self.msg)
            .field("details", &self.details)
            .finish()
    }
}

impl CniError {
    /// An error without details.
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> CniError {
        CniError(Box::new(CniErrorFields {
            code,
            msg: msg.into(),
            details: String::new(),
        }))
    }

    /// The same error with `details`.
    pub fn with_details(mut self, details: impl Into<String>) -> CniError {
        self.details = details.into();
        self
    }

    /// Code 4.
    pub fn env(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::InvalidEnvironment, msg)
    }

    /// Code 6.
    pub fn decode(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::DecodingFailure, msg)
    }

    /// Code 7.
    pub fn config(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::InvalidConfig, msg)
    }

    /// Code 999.
    pub fn internal(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::Internal, msg)
    }

    /// The error object. `cni_version` is the request's version, or our
    /// newest when the request's is unknown (it failed before or while
    /// reading it); the Go library leaves it out, the spec asks for it.
    pub fn to_json(&self, cni_version: &str) -> Value {
        let mut members = vec![
            ("cniVersion", Value::from(cni_version)),
            ("code", Value::from(self.code.number())),
            ("msg", Value::from(self.msg.as_str())),
        ];
        if !self.details.is_empty() {
            members.push(("details", Value::from(self.details.as_str())));
        }
        Value::object(members)
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.msg, self.code.number())?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_number() {
        for number in [1, 2, 3, 4, 5, 6, 7, 8, 11, 50, 51, 999, 9, 100, 4242] {
            assert_eq!(ErrorCode::from_number(number).number(), number);
        }
        assert_eq!(ErrorCode::from_number(8), ErrorCode::InvalidNetns);
        assert_eq!(ErrorCode::from_number(9), ErrorCode::Other(9));
    }

    #[test]
    fn the_object_has_the_spec_keys_and_drops_empty_details() {
        let plain = CniError::config("no name");
        assert_eq!(
            plain.to_json("1.0.0").to_compact().unwrap(),
            r#"{"cniVersion":"1.0.0","code":7,"msg":"no name"}"#
        );
        let detailed = CniError::new(ErrorCode::IncompatibleVersion, "incompatible CNI versions")
            .with_details("config is \"9.9.9\"");
        assert_eq!(
            detailed.to_json("0.4.0").to_compact().unwrap(),
            r#"{"cniVersion":"0.4.0","code":1,"msg":"incompatible CNI versions","details":"config is \"9.9.9\""}"#
        );
    }
}
