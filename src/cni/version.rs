//! The spec versions we speak, and what each allows.

use crate::json::Value;

use super::error::{CniError, ErrorCode};

/// A CNI spec version this plugin speaks. Ordered oldest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Version {
    /// 0.3.0: `interfaces` and `ips[].interface` appear; `ips[].version`.
    V0_3_0,
    /// 0.3.1: as 0.3.0.
    V0_3_1,
    /// 0.4.0: CHECK, and `prevResult` on DEL.
    V0_4_0,
    /// 1.0.0: `ips[].version` removed.
    V1_0_0,
    /// 1.1.0: STATUS, GC, and the optional `mtu`/`socketPath`/`pciID` of
    /// interfaces and `mtu`/`advmss`/`priority`/`table`/`scope` of routes.
    V1_1_0,
}

/// Every version we speak, oldest first: what VERSION lists. 0.1.0 and
/// 0.2.0 (`ip4`/`ip6` results) are left out: no runtime that can run an
/// ipvlan plugin still asks for them.
pub const SUPPORTED: [Version; 5] = [
    Version::V0_3_0,
    Version::V0_3_1,
    Version::V0_4_0,
    Version::V1_0_0,
    Version::V1_1_0,
];

/// What a config without `cniVersion` means (the spec's libraries decode it
/// so); we do not speak it, so such a config gets code 1.
pub const IMPLIED: &str = "0.1.0";

impl Version {
    /// The newest version we speak.
    pub const NEWEST: Version = Version::V1_1_0;

    /// The version's text.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V0_3_0 => "0.3.0",
            Version::V0_3_1 => "0.3.1",
            Version::V0_4_0 => "0.4.0",
            Version::V1_0_0 => "1.0.0",
            Version::V1_1_0 => "1.1.0",
        }
    }

    /// The version named exactly `text` (the spec's libraries accept only
    /// exact members of the supported list), if we speak it.
    pub fn parse(text: &str) -> Option<Version> {
        SUPPORTED.into_iter().find(|v| v.as_str() == text)
    }

    /// The version of a config: `cniVersion`, or [`IMPLIED`] when absent.
    /// Code 1 when we do not speak it, with the details the Go library
    /// gives (`config is "9.9.9", plugin supports [...]`).
    pub fn negotiate(requested: Option<&str>) -> Result<Version, CniError> {
        let text = requested.unwrap_or(IMPLIED);
        Version::parse(text).ok_or_else(|| {
            let supported: Vec<String> = SUPPORTED
                .iter()
                .map(|v| format!("{:?}", v.as_str()))
                .collect();
            CniError::new(ErrorCode::IncompatibleVersion, "incompatible CNI versions").with_details(
                format!(
                    "config is {:?}, plugin supports [{}]",
                    text,
                    supported.join(" ")
                ),
            )
        })
    }

    /// Whether results of this version carry `ips[].version` (0.3.x, 0.4.0).
    pub fn has_ip_version(self) -> bool {
        self < Version::V1_0_0
    }

    /// Whether 1.1.0's optional result fields may be written.
    pub fn has_1_1_fields(self) -> bool {
        self >= Version::V1_1_0
    }
}

/// The answer to VERSION. Its `cniVersion` is our newest, as the Go
/// library's plugins answer: VERSION is answered without reading stdin, so
/// that a runtime (or a person) that leaves stdin open is not kept waiting.
pub fn version_reply() -> Value {
    Value::object([
        ("cniVersion", Value::from(Version::NEWEST.as_str())),
        (
            "supportedVersions",
            Value::Array(SUPPORTED.iter().map(|v| Value::from(v.as_str())).collect()),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_exact_supported_texts_are_accepted() {
        for v in SUPPORTED {
            assert_eq!(Version::parse(v.as_str()), Some(v));
        }
        for text in [
            "", "1", "1.0", "1.0.0 ", "v1.0.0", "0.2.0", "0.1.0", "1.2.0",
        ] {
            assert_eq!(Version::parse(text), None, "{text:?}");
        }
    }

    #[test]
    fn an_unknown_or_missing_version_is_code_1_with_the_supported_list() {
        let error = Version::negotiate(Some("9.9.9")).unwrap_err();
        assert_eq!(error.code, ErrorCode::IncompatibleVersion);
        assert_eq!(error.msg, "incompatible CNI versions");
        assert_eq!(
            error.details,
            r#"config is "9.9.9", plugin supports ["0.3.0" "0.3.1" "0.4.0" "1.0.0" "1.1.0"]"#
        );
        let missing = Version::negotiate(None).unwrap_err();
        assert!(
            missing.details.starts_with(r#"config is "0.1.0""#),
            "{missing}"
        );
        assert_eq!(Version::negotiate(Some("0.4.0")), Ok(Version::V0_4_0));
    }

    #[test]
    fn the_reply_lists_every_version() {
        assert_eq!(
            version_reply().to_compact().unwrap(),
            r#"{"cniVersion":"1.1.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}"#
        );
    }
}
