//! What the running kernel supports: its version against the needs of
//! each ipvlan mode and flag, and whether it knows the link kinds we
//! create (`ipvlan`, `dummy`, `vlan`).

use super::error::missing_kind_message;
use super::{Error, IpvlanFlag, IpvlanMode};
use crate::rtnl::{Handle, ProbeKind};

/// A kernel release as `major.minor.patch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelVersion {
    /// Major number.
    pub major: u32,
    /// Minor number.
    pub minor: u32,
    /// Patch level (0 when absent).
    pub patch: u32,
}

impl KernelVersion {
    /// Parses a release string such as `6.1.0-28-cloud-amd64`.
    ///
    /// ```
    /// use ipvlan::driver::KernelVersion;
    /// let v = KernelVersion::parse("6.1.0-28-cloud-amd64").unwrap();
    /// assert_eq!((v.major, v.minor, v.patch), (6, 1, 0));
    /// ```
    pub fn parse(release: &str) -> Option<KernelVersion> {
        let numeric: String = release
            .trim()
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        let mut parts = numeric.split('.').filter(|p| !p.is_empty());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(KernelVersion {
            major,
            minor,
            patch,
        })
    }

    /// The running kernel's version (from `/proc/sys/kernel/osrelease`).
    pub fn running() -> Result<KernelVersion, Error> {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_err(|e| Error::io("reading the kernel version", &e))?;
        KernelVersion::parse(&release).ok_or_else(|| {
            Error::failed(format!(
                "failed to check kernel version for ipvlan driver support: cannot parse '{}'",
                release.trim()
            ))
        })
    }

    const fn at_least(self, major: u32, minor: u32) -> bool {
        self.major > major || (self.major == major && self.minor >= minor)
    }
}

impl std::fmt::Display for KernelVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Refuses a mode or flag the kernel is too old for: ipvlan 4.2+, `l3s`
/// 4.9+, flags other than `bridge` 4.15+.
pub(crate) fn check_version(
    version: KernelVersion,
    mode: IpvlanMode,
    flag: IpvlanFlag,
) -> Result<(), Error> {
    if !version.at_least(4, 2) {
        return Err(Error::unsupported(format!(
            "kernel version failed to meet the minimum ipvlan kernel requirement of 4.2, found {version}"
        )));
    }
    if mode == IpvlanMode::L3s && !version.at_least(4, 9) {
        return Err(Error::unsupported(format!(
            "ipvlan mode l3s needs kernel 4.9 or later, found {version}"
        )));
    }
    if flag != IpvlanFlag::Bridge && !version.at_least(4, 15) {
        return Err(Error::unsupported(format!(
            "ipvlan flag {} needs kernel 4.15 or later, found {version}",
            flag.as_str()
        )));
    }
    Ok(())
}

/// Why an IPv6 network cannot be made or joined on a kernel that has no
/// IPv6: one booted with `ipv6.disable=1` (as hosts that do without IPv6
/// often are) or built without it, which has no IPv6 setting for a link
/// to turn on and takes no IPv6 address.
pub(crate) const NO_IPV6: &str =
    "this kernel has no IPv6 (booted with ipv6.disable=1, or built without IPv6)";

/// Whether the kernel has IPv6 at all. Without it (booted with
/// `ipv6.disable=1`, or built without it) its settings are missing from
/// `/proc/sys/net`, of every namespace, and it refuses an IPv6 socket
/// (`EAFNOSUPPORT`); with it as a module not loaded yet, the settings are
/// missing too, and the socket loads it. Only both say no: a sandbox
/// that refuses the socket (a service's `RestrictAddressFamilies`, a
/// security module) or a `/proc` not mounted is taken for a kernel with
/// IPv6, as before this was asked.
pub(crate) fn has_ipv6() -> bool {
    let missing = |path: &str| {
        std::fs::symlink_metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
    };
    if !missing("/proc/sys/net/ipv6") || missing("/proc/sys/net") {
        return true;
    }
    match crate::sys::socket(libc::AF_INET6, libc::SOCK_DGRAM, 0) {
        Err(error) => error.raw_os_error() != Some(libc::EAFNOSUPPORT),
        Ok(_) => true,
    }
}

/// Refuses an IPv6 network on a kernel without IPv6 ([`has_ipv6`]):
/// made, every attach to it would fail at its first IPv6 address.
pub(crate) fn require_ipv6() -> Result<(), Error> {
    match has_ipv6() {
        true => Ok(()),
        false => Err(Error::unsupported(format!(
            "an IPv6 network cannot be made: {NO_IPV6}"
        ))),
    }
}

/// What the kernel lacks for a network of `mode` and `flag` (and IPv6
/// when `ipv6`): its version, ipvlan, IPv6. None of it depends on the
/// parent, so a CNI config is refused it before anything is retired.
pub(crate) fn refuse_what_the_kernel_lacks(
    host: &Handle,
    mode: IpvlanMode,
    flag: IpvlanFlag,
    ipv6: bool,
) -> Result<(), Error> {
    // The version first, so an old or stripped kernel fails with the
    // clearest message.
    check_version(KernelVersion::running()?, mode, flag)?;
    require_kind(host, ProbeKind::Ipvlan)?;
    if ipv6 {
        require_ipv6()?;
    }
    Ok(())
}

/// Refuses with what to load when the kernel does not know `kind`,
/// asked on `host` without creating anything (see
/// [`Handle::probe_kind`]).
pub(crate) fn require_kind(host: &Handle, kind: ProbeKind) -> Result<(), Error> {
    match host.probe_kind(kind) {
        Ok(true) => Ok(()),
        Ok(false) => Err(Error::unsupported(missing_kind_message(kind.name()))),
        Err(error) => Err(Error::from(error).context(format!("probing link kind {}", kind.name()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> KernelVersion {
        KernelVersion::parse(s).unwrap()
    }

    #[test]
    fn parses_releases() {
        assert_eq!(v("4.15"), v("4.15.0"));
        assert!(v("5.10.0-rc1") > v("4.15.18"));
        assert!(KernelVersion::parse("abc").is_none());
        assert!(KernelVersion::parse("6").is_none());
    }

    #[test]
    fn requirements_per_mode_and_flag() {
        let err = check_version(v("4.1.0"), IpvlanMode::L2, IpvlanFlag::Bridge).unwrap_err();
        assert_eq!(
            err.to_string(),
            "kernel version failed to meet the minimum ipvlan kernel requirement of 4.2, found 4.1.0"
        );
        assert!(check_version(v("4.2.0"), IpvlanMode::L3, IpvlanFlag::Bridge).is_ok());
        assert!(check_version(v("4.8.0"), IpvlanMode::L3s, IpvlanFlag::Bridge).is_err());
        assert!(check_version(v("4.9.0"), IpvlanMode::L3s, IpvlanFlag::Bridge).is_ok());
        assert!(check_version(v("4.14.0"), IpvlanMode::L2, IpvlanFlag::Private).is_err());
        assert!(check_version(v("4.15.0"), IpvlanMode::L2, IpvlanFlag::Vepa).is_ok());
    }
}
