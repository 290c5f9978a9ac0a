//! `tests/vm/run-tests.sh`, the guest's test job, run on the host against
//! fake test binaries: its summary and exit status must never report
//! success when no test ran (root required: it isolates each binary with
//! `unshare -m -n`, as in the guest).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vm/run-tests.sh");

/// libtest's closing line with `passed` and `failed` filled in.
fn result_line(passed: u32, failed: u32, filtered: u32) -> String {
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    format!(
        "test result: {verdict}. {passed} passed; {failed} failed; 0 ignored; 0 measured; \
         {filtered} filtered out; finished in 0.00s"
    )
}

/// A scratch directory holding `bin/` (the test binaries run-tests.sh finds)
/// and `path/` (stubs put first on PATH). Under cargo's target tmpdir, not
/// /tmp: isolate.sh hides /tmp, /run and /var/lib behind empty tmpfs mounts.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        common::privilege::require_root();
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "run-tests-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::create_dir_all(dir.join("path")).unwrap();
        // The script reads the kernel log; in the guest that is its own
        // log, here it would be the host's: a file of the scratch's stands in.
        executable(
            &dir.join("path/dmesg"),
            &format!(
                "cat '{}' 2>/dev/null\nexit 0",
                dir.join("kernel.log").display()
            ),
        );
        Scratch(dir)
    }

    /// A line in the stand-in kernel log, as the kernel would add it.
    fn kernel_logs(&self, line: &str) {
        use std::io::Write;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.0.join("kernel.log"))
            .unwrap();
        writeln!(log, "{line}").unwrap();
    }

    /// A fake test binary whose one test passes while the kernel logs `line`.
    fn binary_during_which_the_kernel_logs(&self, name: &str, line: &str) {
        executable(
            &self.0.join("bin").join(name),
            &format!(
                "echo '{line}' >> '{}'\necho 'running 1 test'\necho '{}'",
                self.0.join("kernel.log").display(),
                result_line(1, 0, 0)
            ),
        );
    }

    /// A fake test binary printing `output` and exiting with `status`; it
    /// also records the arguments it got.
    fn binary(&self, name: &str, output: &str, status: i32) {
        let args = self.0.join(format!("{name}.args"));
        executable(
            &self.0.join("bin").join(name),
            &format!(
                "echo \"$*\" > '{}'\ncat <<'EOF'\n{output}\nEOF\nexit {status}",
                args.display()
            ),
        );
    }

    fn args_of(&self, name: &str) -> String {
        std::fs::read_to_string(self.0.join(format!("{name}.args"))).unwrap_or_default()
    }

    fn run(&self, args: &[&str]) -> Run {
        let path = format!(
            "{}:{}",
            self.0.join("path").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let output: Output = Command::new("sh")
            .arg(SCRIPT)
            .args(args)
            .env("IPVLAN_TEST_BIN_DIR", self.0.join("bin"))
            .env("PATH", path)
            .output()
            .expect("run sh");
        Run {
            status: output.status.code(),
            text: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn executable(path: &Path, body: &str) {
    std::fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

struct Run {
    status: Option<i32>,
    text: String,
}

impl Run {
    /// The closing `N passed, N failed` line.
    fn summary(&self) -> Option<&str> {
        self.text
            .lines()
            .rev()
            .find(|l| l.ends_with(" failed") && l.contains(" passed, "))
    }

    fn assert_fails(&self, why: &str) {
        assert!(
            self.status.is_some_and(|s| s != 0),
            "run-tests.sh must fail ({why}); status {:?}:\n{}",
            self.status,
            self.text
        );
        assert!(
            self.text.contains(why),
            "run-tests.sh must say {why:?}:\n{}",
            self.text
        );
        assert_ne!(
            self.summary(),
            Some("0 passed, 0 failed"),
            "a failing run must not close with a green summary:\n{}",
            self.text
        );
    }
}

#[test]
fn passing_binaries_pass_and_are_summed() {
    let scratch = Scratch::new("pass");
    scratch.binary(
        "a",
        &format!("running 2 tests\n{}", result_line(2, 0, 0)),
        0,
    );
    scratch.binary("b", &format!("running 1 test\n{}", result_line(1, 0, 0)), 0);
    let run = scratch.run(&["--nocapture"]);
    assert_eq!(run.status, Some(0), "{}", run.text);
    assert_eq!(run.summary(), Some("3 passed, 0 failed"), "{}", run.text);
    assert_eq!(scratch.args_of("a").trim(), "--test-threads=1 --nocapture");
}

#[test]
fn a_failing_binary_fails_the_run() {
    let scratch = Scratch::new("fail");
    scratch.binary(
        "a",
        &format!("running 2 tests\n{}", result_line(1, 1, 0)),
        101,
    );
    let run = scratch.run(&[]);
    assert_ne!(run.status, Some(0), "{}", run.text);
    assert_eq!(run.summary(), Some("1 passed, 1 failed"), "{}", run.text);
}

#[test]
fn no_binary_is_a_failure() {
    let scratch = Scratch::new("empty");
    scratch.run(&[]).assert_fails("no test binary");
}

#[test]
fn a_filter_matching_nothing_anywhere_is_a_failure() {
    let scratch = Scratch::new("filter");
    for name in ["a", "b"] {
        scratch.binary(
            name,
            &format!("running 0 tests\n{}", result_line(0, 0, 5)),
            0,
        );
    }
    scratch.run(&["no_such_test"]).assert_fails("no test ran");
}

#[test]
fn a_filter_matching_in_one_binary_only_is_fine() {
    let scratch = Scratch::new("some");
    scratch.binary(
        "a",
        &format!("running 0 tests\n{}", result_line(0, 0, 5)),
        0,
    );
    scratch.binary("b", &format!("running 1 test\n{}", result_line(1, 0, 4)), 0);
    let run = scratch.run(&["walkthrough"]);
    assert_eq!(run.status, Some(0), "{}", run.text);
    assert_eq!(run.summary(), Some("1 passed, 0 failed"), "{}", run.text);
}

#[test]
fn a_binary_without_tests_is_a_failure_when_nothing_is_filtered() {
    let scratch = Scratch::new("none");
    scratch.binary("a", &format!("running 1 test\n{}", result_line(1, 0, 0)), 0);
    scratch.binary(
        "b",
        &format!("running 0 tests\n{}", result_line(0, 0, 0)),
        0,
    );
    scratch.run(&[]).assert_fails("b ran no test");
    // The value of a libtest option is no filter: still a failure.
    scratch
        .run(&["--format", "terse", "--test-threads", "1"])
        .assert_fails("b ran no test");
}

#[test]
fn a_binary_that_reports_no_result_is_a_failure() {
    let scratch = Scratch::new("silent");
    scratch.binary("a", &format!("running 1 test\n{}", result_line(1, 0, 0)), 0);
    scratch.binary("b", "hello", 0);
    scratch.run(&[]).assert_fails("b printed no libtest result");
}

/// A kernel warning during the run fails it, though every test passed:
/// the kernel carries on after a WARN, and the state read back may look
/// right. Each kind the kernel prints when something went wrong inside it.
#[test]
fn a_kernel_warning_or_oops_while_the_tests_run_fails_the_run() {
    for line in [
        "[  12.3] ------------[ cut here ]------------",
        "[  12.3] BUG: sleeping function called from invalid context at mm/slab.h:1",
        "[  12.3] kernel BUG at net/core/dev.c:1!",
        "[  12.3] Oops: 0000 [#1] PREEMPT SMP NOPTI",
        "[  12.3] general protection fault, probably for non-canonical address",
    ] {
        let scratch = Scratch::new("warn");
        scratch.kernel_logs("[   0.1] Linux version 6.1.0");
        scratch.binary("a", &format!("running 1 test\n{}", result_line(1, 0, 0)), 0);
        scratch.binary_during_which_the_kernel_logs("b", line);
        let run = scratch.run(&[]);
        run.assert_fails("the kernel logged a warning, BUG or oops while the tests ran");
        assert!(
            run.text.contains(line),
            "the line itself is shown:\n{}",
            run.text
        );
    }
}

/// What the kernel logged before the run (the boot) is not the tests'
/// doing, and an ordinary line during it is no trouble.
#[test]
fn only_trouble_logged_while_the_tests_run_counts() {
    let scratch = Scratch::new("boot-warn");
    scratch.kernel_logs("[   0.1] ------------[ cut here ]------------");
    scratch.binary_during_which_the_kernel_logs("a", "[  12.3] eth0: renamed from tmp");
    let run = scratch.run(&[]);
    assert_eq!(run.status, Some(0), "{}", run.text);
    assert_eq!(run.summary(), Some("1 passed, 0 failed"), "{}", run.text);
}

/// Without root, each test that needs it fails with the same one line.
#[test]
fn without_root_every_privileged_test_fails_with_one_reason() {
    common::privilege::assert_unprivileged_run_fails_with_one_reason(
        "without_root_every_privileged_test_fails_with_one_reason",
    );
}
