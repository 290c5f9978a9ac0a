//! `doctor`: what this host supports.

use std::os::unix::fs::PermissionsExt;

use super::cni_readiness::{cni_readiness, CniDirs};
use super::error::missing_kind_message;
use super::kernel_support::{check_version, has_ipv6, KernelVersion, NO_IPV6};
use super::privileges::{own_capabilities, CAP_NET_ADMIN, CAP_SYS_ADMIN};
use super::report::{DoctorCheck, DoctorReport};
use super::{Config, Error, IpvlanFlag, IpvlanMode};
use crate::rtnl::{Handle, ProbeKind};

fn check(name: &str, ok: bool, detail: impl Into<String>) -> DoctorCheck {
    DoctorCheck {
        name: name.to_string(),
        ok,
        detail: detail.into(),
    }
}

/// Probes what this host supports: kernel version, ipvlan/dummy/8021q in a
/// throwaway namespace, modes and flags, IPv6, privileges, the state directory,
/// and CNI readiness ([`cni_readiness`](fn@super::cni_readiness)).
///
/// ```no_run
/// let report = ipvlan::driver::doctor(&ipvlan::driver::Config::from_env());
/// for check in &report.checks {
///     println!("{} {}: {}", if check.ok { "ok " } else { "BAD" }, check.name, check.detail);
/// }
/// ```
pub fn doctor(config: &Config) -> DoctorReport {
    let mut report = DoctorReport::default();
    let version = KernelVersion::running();
    match &version {
        Ok(v) => report.checks.push(check(
            "kernel",
            check_version(*v, IpvlanMode::L2, IpvlanFlag::Bridge).is_ok(),
            format!("{v} (ipvlan needs 4.2, l3s 4.9, private/vepa 4.15)"),
        )),
        Err(error) => report
            .checks
            .push(check("kernel", false, error.to_string())),
    }

    let caps = own_capabilities().unwrap_or(0);
    let has = |cap: u32| caps & (1 << cap) != 0;
    report.checks.push(check(
        "privileges",
        has(CAP_NET_ADMIN) && has(CAP_SYS_ADMIN),
        if has(CAP_NET_ADMIN) && has(CAP_SYS_ADMIN) {
            "CAP_NET_ADMIN and CAP_SYS_ADMIN present".to_string()
        } else {
            "changing networks and containers needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN)".to_string()
        },
    ));

    // Link kinds, probed inside a throwaway namespace so nothing can be
    // left behind.
    let probes = crate::netns::run_in_new(|| {
        let host = Handle::new().map_err(Error::from);
        ProbeKind::ALL.map(|kind| {
            let supported = match &host {
                Ok(host) => host.probe_kind(kind).map_err(Error::from),
                Err(error) => Err(error.clone()),
            };
            (kind.name(), supported)
        })
    });
    match probes {
        Ok(results) => {
            for (kind, result) in results {
                let name = if kind == "vlan" { "8021q" } else { kind };
                report.checks.push(match result {
                    Ok(true) => check(name, true, "available"),
                    Ok(false) => check(name, false, missing_kind_message(kind)),
                    Err(error) => check(name, false, format!("probe failed: {error}")),
                });
            }
        }
        Err(error) => report.checks.push(check(
            "ipvlan",
            false,
            format!("cannot create a throwaway namespace to probe link kinds: {error}"),
        )),
    }
    if let Ok(v) = version {
        let modes: Vec<&str> = [IpvlanMode::L2, IpvlanMode::L3, IpvlanMode::L3s]
            .into_iter()
            .filter(|m| check_version(v, *m, IpvlanFlag::Bridge).is_ok())
            .map(IpvlanMode::as_str)
            .collect();
        let flags: Vec<&str> = [IpvlanFlag::Bridge, IpvlanFlag::Private, IpvlanFlag::Vepa]
            .into_iter()
            .filter(|f| check_version(v, IpvlanMode::L2, *f).is_ok())
            .map(IpvlanFlag::as_str)
            .collect();
        report.checks.push(check(
            "modes",
            !modes.is_empty(),
            format!(
                "modes {}; flags {}",
                crate::text::join(&modes, ", "),
                crate::text::join(&flags, ", ")
            ),
        ));
    }

    // Not a failure: IPv4 networks need no IPv6. Said, since an IPv6
    // network is then refused.
    report.checks.push(match has_ipv6() {
        true => check("ipv6", true, "available"),
        false => check(
            "ipv6",
            true,
            format!("{NO_IPV6}: IPv4 networks only, an IPv6 network is refused"),
        ),
    });

    // As every command checks it (a real directory of ours that nobody
    // else may write in): what doctor accepts, they accept.
    let dir = &config.state_dir;
    report
        .checks
        .push(match crate::store::check_dir(dir, crate::sys::geteuid()) {
            Ok(true) => {
                let mode = std::fs::symlink_metadata(dir).map_or(0, |m| m.permissions().mode());
                check(
                    "state directory",
                    true,
                    format!("{} (mode {:04o})", dir.display(), mode & 0o7777),
                )
            }
            Ok(false) => check(
                "state directory",
                true,
                format!("{} does not exist yet; created on first use", dir.display()),
            ),
            Err(e) => check("state directory", false, format!("{} {e}", dir.display())),
        });
    report.checks.extend(cni_readiness(&CniDirs::from_env()));
    report
}
