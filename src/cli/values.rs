//! Option values: parsed at the command line, with errors naming flag and value.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::args::ArgError;

fn invalid(flag: &str, value: &str, why: &str) -> ArgError {
    ArgError::Value(format!("invalid value \"{value}\" for {flag}: {why}"))
}

/// A subnet or range such as `192.168.1.0/24` or `2001:db8::/64`.
pub fn cidr(flag: &str, value: &str) -> Result<IpNet, ArgError> {
    crate::digits::parse_cidr(value).ok_or_else(|| invalid(flag, value, "invalid CIDR address"))
}

/// An IPv4 or IPv6 address.
pub fn ip(flag: &str, value: &str) -> Result<IpAddr, ArgError> {
    value
        .parse()
        .map_err(|_| invalid(flag, value, "invalid IP address"))
}

/// An IPv4 address; an IPv6 one is refused with a hint to use `--ip6`.
pub fn ipv4(flag: &str, value: &str) -> Result<Ipv4Addr, ArgError> {
    match ip(flag, value)? {
        IpAddr::V4(address) => Ok(address),
        IpAddr::V6(_) => Err(invalid(flag, value, "not an IPv4 address (use --ip6)")),
    }
}

/// An IPv6 address; an IPv4 one is refused with a hint to use `--ip`.
pub fn ipv6(flag: &str, value: &str) -> Result<Ipv6Addr, ArgError> {
    match ip(flag, value)? {
        IpAddr::V6(address) => Ok(address),
        IpAddr::V4(_) => Err(invalid(flag, value, "not an IPv6 address (use --ip)")),
    }
}

/// `KEY=VALUE` with a non-empty key; the value may be empty or contain
/// `=`, and `KEY` alone is `KEY` with an empty value, as Docker's `--opt`
/// takes it (`-o parent` is `-o parent=`).
pub fn key_value(flag: &str, value: &str) -> Result<(String, String), ArgError> {
    let (key, rest) = value.split_once('=').unwrap_or((value, ""));
    match key.is_empty() {
        false => Ok((key.to_string(), rest.to_string())),
        true => Err(invalid(flag, value, "expected KEY=VALUE")),
    }
}

/// `name=IP`, as `--aux-address` takes.
pub fn named_ip(flag: &str, value: &str) -> Result<(String, IpAddr), ArgError> {
    match value.split_once('=') {
        Some((name, address)) if !name.is_empty() => {
            let address = address
                .parse()
                .map_err(|_| invalid(flag, value, &format!("invalid IP address \"{address}\"")))?;
            Ok((name.to_string(), address))
        }
        _ => Err(invalid(flag, value, "expected name=IP")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(error: ArgError) -> String {
        match error {
            ArgError::Value(message) => message,
            ArgError::Usage(message) => panic!("usage error {message}"),
        }
    }

    #[test]
    fn accepted_values() {
        assert_eq!(
            cidr("--subnet", "2001:db8:abc2::/64").unwrap().to_string(),
            "2001:db8:abc2::/64"
        );
        assert_eq!(
            ip("--gateway", "192.168.1.1").unwrap().to_string(),
            "192.168.1.1"
        );
        assert_eq!(
            ipv4("--ip", "10.1.214.9").unwrap().to_string(),
            "10.1.214.9"
        );
        assert_eq!(
            ipv6("--ip6", "2001:db8::1").unwrap().to_string(),
            "2001:db8::1"
        );
        assert_eq!(
            key_value("--opt", "a=b=c").unwrap(),
            ("a".to_string(), "b=c".to_string())
        );
        assert_eq!(
            key_value("--opt", "parent").unwrap(),
            ("parent".to_string(), String::new())
        );
        assert_eq!(
            named_ip("--aux-address", "router=192.168.1.5").unwrap(),
            ("router".to_string(), "192.168.1.5".parse().unwrap())
        );
    }

    #[test]
    fn rejected_values_name_flag_and_value() {
        let cases = [
            (
                cidr("--subnet", "192.168.1.0/33").unwrap_err(),
                "invalid value \"192.168.1.0/33\" for --subnet: invalid CIDR address",
            ),
            (
                cidr("--subnet", "192.168.1.0").unwrap_err(),
                "invalid value \"192.168.1.0\" for --subnet: invalid CIDR address",
            ),
            (
                ip("--gateway", "192.168.1.256").unwrap_err(),
                "invalid value \"192.168.1.256\" for --gateway: invalid IP address",
            ),
            (
                ipv4("--ip", "2001:db8::1").unwrap_err(),
                "invalid value \"2001:db8::1\" for --ip: not an IPv4 address (use --ip6)",
            ),
            (
                ipv6("--ip6", "10.0.0.1").unwrap_err(),
                "invalid value \"10.0.0.1\" for --ip6: not an IPv6 address (use --ip)",
            ),
            (
                key_value("--opt", "").unwrap_err(),
                "invalid value \"\" for --opt: expected KEY=VALUE",
            ),
            (
                key_value("--opt", "=eth0").unwrap_err(),
                "invalid value \"=eth0\" for --opt: expected KEY=VALUE",
            ),
            (
                named_ip("--aux-address", "router").unwrap_err(),
                "invalid value \"router\" for --aux-address: expected name=IP",
            ),
            (
                named_ip("--aux-address", "r=1.2.3").unwrap_err(),
                "invalid value \"r=1.2.3\" for --aux-address: invalid IP address \"1.2.3\"",
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(message(error), expected);
        }
    }
}
