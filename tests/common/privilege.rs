//! The one precondition of the host tests that work on the kernel: root,
//! or at least CAP_NET_ADMIN and CAP_SYS_ADMIN (namespaces, mounts, links).
//!
//! Every test that needs them calls [`require_root`] first. Without them
//! each such test fails at once with [`NEED_ROOT`], the same one line,
//! instead of with whatever breaks first (an `unwrap` deep in a helper, or
//! a panic in a destructor that aborts the whole binary); tests that need
//! no privilege still run. Nothing is skipped silently: libtest has no
//! run-time "ignored", and a test that returned early would pass.

use std::process::Command;

use ipvlan::driver::{effective_capabilities, CAP_NET_ADMIN, CAP_SYS_ADMIN};

/// Why a privileged test failed when run without privileges.
pub const NEED_ROOT: &str = "these tests need root (CAP_NET_ADMIN, CAP_SYS_ADMIN): run as root";

/// Whether the effective capability set holds CAP_NET_ADMIN and CAP_SYS_ADMIN.
pub fn is_privileged() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").expect("reading /proc/self/status");
    let caps = effective_capabilities(&status).expect("no CapEff line in /proc/self/status");
    let needed = (1u64 << CAP_NET_ADMIN) | (1u64 << CAP_SYS_ADMIN);
    caps & needed == needed
}

/// Fails the calling test with [`NEED_ROOT`] unless [`is_privileged`].
pub fn require_root() {
    assert!(is_privileged(), "{NEED_ROOT}");
}

/// Runs this test binary again without capabilities (`setpriv`, still uid
/// 0 so the build directory stays readable), every test but `this_test`,
/// and checks what an unprivileged user would see: libtest finishes (no
/// abort), at least one test fails, and every failure says [`NEED_ROOT`]
/// and nothing else.
pub fn assert_unprivileged_run_fails_with_one_reason(this_test: &str) {
    require_root();
    let exe = std::env::current_exe().unwrap();
    let output = Command::new("setpriv")
        .args(["--inh-caps=-all", "--bounding-set=-all", "--"])
        .arg(&exe)
        .args(["--skip", this_test, "--test-threads=2"])
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("setpriv (util-linux) is needed to drop capabilities");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let all = format!("{stdout}\n{stderr}");
    let lines: Vec<&str> = all.lines().collect();
    let reasons: Vec<&str> = lines
        .windows(2)
        .filter(|pair| pair[0].starts_with("thread '") && pair[0].contains(" panicked at "))
        .map(|pair| pair[1])
        .collect();
    let failed: usize = stdout
        .lines()
        .find_map(|line| line.strip_prefix("test result: FAILED. "))
        .and_then(|rest| rest.split("; ").nth(1))
        .and_then(|failed| failed.strip_suffix(" failed"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "the unprivileged run did not finish with failures ({}):\n{all}",
                output.status
            )
        });
    assert!(!output.status.success(), "{all}");
    assert!(failed > 0, "{all}");
    assert_eq!(reasons.len(), failed, "one panic per failed test:\n{all}");
    assert!(
        reasons.iter().all(|reason| *reason == NEED_ROOT),
        "every failure must give the one reason {NEED_ROOT:?}, got {reasons:#?}\n{all}"
    );
}
