//! `doctor`: what this host supports.

use std::os::unix::fs::PermissionsExt;

use super::kernel::{check_version, missing_kind_message, KernelVersion};
use super::net;
use super::{Config, DoctorCheck, DoctorReport, Flag, Mode};

fn check(name: &str, ok: bool, detail: impl Into<String>) -> DoctorCheck {
    DoctorCheck {
        name: name.to_string(),
        ok,
        detail: detail.into(),
    }
}

/// Effective capabilities of this process (`CapEff` of /proc/self/status).
fn effective_capabilities() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
}

pub(crate) fn run(config: &Config) -> DoctorReport {
    let mut report = DoctorReport::default();
    let version = KernelVersion::running();
    match &version {
        Ok(v) => report.checks.push(check(
            "kernel",
            check_version(*v, Mode::L2, Flag::Bridge).is_ok(),
            format!("{v} (ipvlan needs 4.2, l3s 4.9, private/vepa 4.15)"),
        )),
        Err(error) => report
            .checks
            .push(check("kernel", false, error.to_string())),
    }

    const CAP_NET_ADMIN: u32 = 12;
    const CAP_SYS_ADMIN: u32 = 21;
    let caps = effective_capabilities().unwrap_or(0);
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
        ["ipvlan", "dummy", "vlan"].map(|kind| (kind, net::kind_supported(kind)))
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
        let modes: Vec<&str> = [Mode::L2, Mode::L3, Mode::L3s]
            .into_iter()
            .filter(|m| check_version(v, *m, Flag::Bridge).is_ok())
            .map(Mode::as_str)
            .collect();
        let flags: Vec<&str> = [Flag::Bridge, Flag::Private, Flag::Vepa]
            .into_iter()
            .filter(|f| check_version(v, Mode::L2, *f).is_ok())
            .map(Flag::as_str)
            .collect();
        report.checks.push(check(
            "modes",
            !modes.is_empty(),
            format!("modes {}; flags {}", modes.join(", "), flags.join(", ")),
        ));
    }

    let dir = &config.state_dir;
    report.checks.push(match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => {
            let mode = meta.permissions().mode() & 0o777;
            check(
                "state directory",
                mode == 0o700,
                format!(
                    "{} (mode {mode:04o}{})",
                    dir.display(),
                    if mode == 0o700 { "" } else { ", expected 0700" }
                ),
            )
        }
        Ok(_) => check(
            "state directory",
            false,
            format!("{} is not a directory", dir.display()),
        ),
        Err(_) => check(
            "state directory",
            true,
            format!("{} does not exist yet; created on first use", dir.display()),
        ),
    });
    report
}
