//! `ipvlan restore|doctor|version`.

use crate::driver::{self, Config, Manager, RestoreReport};
use crate::text::escape_controls;

use super::{Failure, EXIT_FAILED, EXIT_OK};

pub fn restore(manager: &Manager) -> Result<i32, Failure> {
    let report = manager
        .restore()
        .map_err(|error| Failure::driver("restore", &error))?;
    out!("{}", restore_summary(&report));
    for error in &report.errors {
        eprintln!("ipvlan: restore: {}", escape_controls(error));
    }
    Ok(if report.errors.is_empty() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

fn count(number: usize, singular: &str, plural: &str) -> String {
    format!("{number} {}", if number == 1 { singular } else { plural })
}

/// A one-line total, then one line per thing changed or missing.
pub fn restore_summary(report: &RestoreReport) -> String {
    let mut text =
        format!(
        "restore: {} re-created, {} missing, {} re-created, {} kept, {} released, {} repaired\n",
        count(report.parents_recreated.len(), "parent", "parents"),
        count(report.parents_missing.len(), "parent", "parents"),
        count(report.links_recreated.len(), "link", "links"),
        count(report.endpoints_kept, "endpoint", "endpoints"),
        count(report.endpoints_released.len(), "endpoint", "endpoints"),
        count(report.intents_repaired, "interrupted operation", "interrupted operations"),
    );
    // Counts shown only when not zero.
    let totals = [
        (
            "rebuilt from the records",
            report.derived_rebuilt,
            "address file, container index, name hint or hosts file's short name",
            "address files, container indexes, name hints and hosts files' short names",
        ),
        (
            "written again from the commit log after a reboot",
            report.records_written_again,
            "record or removal",
            "records and removals",
        ),
    ];
    for (label, number, singular, plural) in totals {
        if number > 0 {
            text.push_str(&format!("  {label}: {}\n", count(number, singular, plural)));
        }
    }
    let sections = [
        ("parent re-created", &report.parents_recreated),
        ("parent missing", &report.parents_missing),
        ("parent kept", &report.parents_kept),
        ("link re-created", &report.links_recreated),
        (
            "link missing, left to its CNI runtime",
            &report.links_left_to_runtime,
        ),
        ("endpoint released", &report.endpoints_released),
        (
            "attach in progress, left to it",
            &report.attaches_in_progress,
        ),
        (
            "processes left running (rm without -f)",
            &report.processes_left_running,
        ),
    ];
    for (label, items) in sections {
        for item in items {
            // Items name endpoints by namespace path, which may hold
            // anything a path can.
            text.push_str(&format!("  {label}: {}\n", escape_controls(item)));
        }
    }
    text
}

/// Prints every check; exits 1 when one fails, so scripts can test it.
pub fn doctor(config: &Config) -> Result<i32, Failure> {
    let report = driver::doctor(config);
    for check in &report.checks {
        let verdict = if check.ok { "ok  " } else { "FAIL" };
        // Details name the state directory, which the user chose.
        outln!(
            "{verdict} {}: {}",
            check.name,
            escape_controls(&check.detail)
        );
    }
    Ok(if report.all_ok() {
        EXIT_OK
    } else {
        EXIT_FAILED
    })
}

/// `--version` (`brief`) or `version`.
pub fn version_text(brief: bool) -> String {
    let version = env!("CARGO_PKG_VERSION");
    if brief {
        return format!("ipvlan version {version}\n");
    }
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    let mut text = format!(
        "ipvlan version {version}\n OS/Arch:     {}/{}\n Build:       {profile}{}\n",
        std::env::consts::OS,
        std::env::consts::ARCH,
        if cfg!(target_env = "musl") {
            ", static (musl)"
        } else {
            ""
        },
    );
    // Set by release builds that know their commit; absent in plain `cargo build`.
    if let Some(commit) = option_env!("IPVLAN_GIT_COMMIT") {
        text.push_str(&format!(" Git commit:  {commit}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_summary_counts_and_lists() {
        let report = RestoreReport {
            parents_recreated: vec!["ipvlan20: eth0.20".into()],
            links_recreated: vec!["ipvlan20: c1".into(), "ipvlan20: c2".into()],
            endpoints_kept: 1,
            ..RestoreReport::default()
        };
        let text = restore_summary(&report);
        assert!(text.starts_with(
            "restore: 1 parent re-created, 0 parents missing, 2 links re-created, \
             1 endpoint kept, 0 endpoints released, 0 interrupted operations repaired\n"
        ));
        assert!(text.contains("  parent re-created: ipvlan20: eth0.20\n"));
        assert!(text.contains("  link re-created: ipvlan20: c2\n"));
        assert!(
            !text.contains("rebuilt"),
            "nothing rebuilt, no line: {text}"
        );
        let rebuilt = RestoreReport {
            derived_rebuilt: 3,
            ..RestoreReport::default()
        };
        assert!(restore_summary(&rebuilt).contains(
            "\n  rebuilt from the records: 3 address files, container indexes, name hints and hosts files' short names\n"
        ));
        assert!(!restore_summary(&rebuilt).contains("commit log"));
        let replayed = RestoreReport {
            records_written_again: 1,
            ..RestoreReport::default()
        };
        assert!(restore_summary(&replayed).contains(
            "\n  written again from the commit log after a reboot: 1 record or removal\n"
        ));
    }

    #[test]
    fn version_names_the_package_version() {
        assert_eq!(
            version_text(true),
            format!("ipvlan version {}\n", env!("CARGO_PKG_VERSION"))
        );
        assert!(version_text(false).contains("OS/Arch:"));
    }
}
