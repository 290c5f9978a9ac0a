//! The QEMU harness: builds the guest's programs, packs the initramfs, boots the
//! Debian cloud kernel once and reports what the guest's job printed.

use crate::initramfs::Tree;
use crate::json::{self, Json};
use crate::kernel::{self, Kernel};
use crate::tools::{self, VmTools, MUSL_TARGET};
use crate::util::{cargo, describe, seconds, shell_quote, workspace_root, Timings};
use crate::Result;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Printed by the guest's /init with the job's exit status.
const RESULT_MARKER: &str = "IPVLAN-VM-RESULT: ";
/// Printed by /init once the kernel has handed over to it.
const BOOT_MARKER: &str = "ipvlan-vm: booted";
/// Guest directory holding the support scripts of tests/vm.
const GUEST_SHARE: &str = "/usr/share/ipvlan-test";
/// Guest directory holding the test binaries, run in name order.
const GUEST_TEST_BIN: &str = "/usr/lib/ipvlan-test/bin";
const DEFAULT_TIMEOUT_SECS: u64 = 900;

/// What the guest runs after boot.
pub enum Job {
    /// Every selected VM test binary; the strings go to libtest (filters, flags).
    Tests {
        targets: Vec<String>,
        test_args: Vec<String>,
    },
    /// A shell script, optionally after building the walkthrough topology.
    Script { script: String, topology: bool },
}

pub struct Options {
    pub job: Job,
    pub timeout: Duration,
}

/// `IPVLAN_VM_TIMEOUT` (seconds), else the default.
pub fn default_timeout() -> Result<Duration> {
    match std::env::var("IPVLAN_VM_TIMEOUT") {
        Ok(text) => parse_secs(&text).map_err(|e| format!("IPVLAN_VM_TIMEOUT: {e}").into()),
        Err(_) => Ok(Duration::from_secs(DEFAULT_TIMEOUT_SECS)),
    }
}

pub fn parse_secs(text: &str) -> std::result::Result<Duration, String> {
    match text.trim().parse::<u64>() {
        Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
        _ => Err(format!(
            "expected a positive number of seconds, got {text:?}"
        )),
    }
}

/// What came back from the guest.
pub struct Outcome {
    /// The job's exit status from the marker; `None` if the marker never came.
    pub status: Option<i32>,
    /// The guest's `N passed, N failed` line, if it printed one.
    pub summary: Option<String>,
    pub timed_out: bool,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.status == Some(0) && !self.timed_out
    }

    /// How the guest's job ended, for error messages.
    pub fn describe(&self) -> String {
        match (self.timed_out, self.status) {
            (true, _) => "timed out".to_string(),
            (false, None) => {
                "ended without its result marker (crash or early power-off)".to_string()
            }
            (false, Some(status)) => format!("exited with status {status}"),
        }
    }
}

/// Builds everything, boots once, and fails unless the guest job succeeded.
pub fn run(options: Options) -> Result<Outcome> {
    let total = Instant::now();
    let mut timings = Timings::default();
    let root = workspace_root();
    let cache = target_dir()?.join("vm");
    fs::create_dir_all(&cache)?;

    let tools = timings.time("tools", tools::ensure_vm_tools)?;
    let kernel = timings.time("kernel", || kernel::ensure(&cache))?;
    println!("kernel {} ({})", kernel.version, kernel.vmlinuz.display());

    let (test_bins, ipvlan_bin) = timings.time("build", || {
        let test_bins = match &options.job {
            Job::Tests { targets, .. } => build_vm_tests(targets)?,
            Job::Script { .. } => Vec::new(),
        };
        Ok((test_bins, build_ipvlan()?))
    })?;

    let initrd = cache.join("initramfs.cpio");
    timings.time("initramfs", || {
        let tree = guest_tree(
            &root,
            &tools,
            &kernel,
            &test_bins,
            &ipvlan_bin,
            &options.job,
        )?;
        let size = tree.write(&initrd)?;
        println!(
            "initramfs {} ({:.1} MiB)",
            initrd.display(),
            size as f64 / 1048576.0
        );
        Ok(())
    })?;

    let outcome = boot(
        &tools,
        &kernel,
        &initrd,
        options.timeout,
        &cache.join("console.log"),
        &mut timings,
    )?;
    timings.record("total", total.elapsed());
    println!("vm timings: {}", timings.summary());
    if outcome.timed_out {
        println!(
            "vm: timed out after {} (IPVLAN_VM_TIMEOUT / --timeout)",
            seconds(options.timeout)
        );
    } else if outcome.status.is_none() {
        println!(
            "vm: the guest ended without printing its result marker (see {})",
            cache.join("console.log").display()
        );
    }
    Ok(outcome)
}

/// Cargo's target directory (honours CARGO_TARGET_DIR and config).
pub fn target_dir() -> Result<PathBuf> {
    let metadata = metadata()?;
    metadata
        .get("target_directory")
        .and_then(Json::as_str)
        .map(PathBuf::from)
        .ok_or_else(|| "cargo metadata: no target_directory".into())
}

fn metadata() -> Result<Json> {
    let text =
        crate::util::output(cargo().args(["metadata", "--format-version", "1", "--no-deps"]))?;
    Ok(json::parse(&text)?)
}

/// Test targets of the `ipvlan` package that declare `required-features = ["vm"]`.
pub fn vm_test_targets() -> Result<Vec<String>> {
    let metadata = metadata()?;
    let mut names = Vec::new();
    for package in metadata
        .get("packages")
        .map(Json::as_array)
        .unwrap_or_default()
    {
        if package.get("name").and_then(Json::as_str) != Some("ipvlan") {
            continue;
        }
        for target in package
            .get("targets")
            .map(Json::as_array)
            .unwrap_or_default()
        {
            let is_test = target.get("kind").is_some_and(|k| k.contains_str("test"));
            let needs_vm = target
                .get("required-features")
                .is_some_and(|f| f.contains_str("vm"));
            if let (true, true, Some(name)) =
                (is_test, needs_vm, target.get("name").and_then(Json::as_str))
            {
                names.push(name.to_string());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// Builds the selected (default: all) VM test targets for musl; returns
/// (target name, executable).
fn build_vm_tests(selected: &[String]) -> Result<Vec<(String, PathBuf)>> {
    let all = vm_test_targets()?;
    for name in selected {
        if !all.contains(name) {
            return Err(format!(
                "no VM test target {name:?}; VM test targets: {}",
                all.join(", ")
            )
            .into());
        }
    }
    let targets: Vec<&String> = all
        .iter()
        .filter(|n| selected.is_empty() || selected.contains(n))
        .collect();
    if targets.is_empty() {
        println!("no VM test targets declared (required-features = [\"vm\"])");
        return Ok(Vec::new());
    }
    let mut cmd = cargo();
    cmd.args([
        "test",
        "-p",
        "ipvlan",
        "--features",
        "vm",
        "--target",
        MUSL_TARGET,
        "--no-run",
    ]);
    for name in &targets {
        cmd.arg("--test").arg(name);
    }
    let artifacts = cargo_artifacts(&mut cmd)?;
    targets
        .iter()
        .map(|name| {
            artifacts
                .iter()
                .find(|a| a.kind == "test" && &&a.name == name)
                .map(|a| (a.name.clone(), a.executable.clone()))
                .ok_or_else(|| format!("cargo built no executable for test target {name}").into())
        })
        .collect()
}

/// Builds the `ipvlan` binary for musl (static) and returns its path.
fn build_ipvlan() -> Result<PathBuf> {
    let mut cmd = cargo();
    // Same features as the test build, so both share one build of the library.
    cmd.args([
        "build",
        "-p",
        "ipvlan",
        "--features",
        "vm",
        "--target",
        MUSL_TARGET,
        "--bin",
        "ipvlan",
    ]);
    cargo_artifacts(&mut cmd)?
        .into_iter()
        .find(|a| a.kind == "bin" && a.name == "ipvlan")
        .map(|a| a.executable)
        .ok_or_else(|| "cargo built no ipvlan executable".into())
}

struct Artifact {
    name: String,
    kind: String,
    executable: PathBuf,
}

/// Runs a cargo build with JSON messages on stdout (diagnostics still rendered on
/// stderr) and returns the executables it produced.
fn cargo_artifacts(cmd: &mut Command) -> Result<Vec<Artifact>> {
    cmd.arg("--message-format=json-render-diagnostics")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    println!("$ {}", describe(cmd));
    let out = cmd
        .output()
        .map_err(|e| format!("{}: {e}", describe(cmd)))?;
    if !out.status.success() {
        return Err(format!("`{}` failed ({})", describe(cmd), out.status).into());
    }
    let mut artifacts = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(message) = json::parse(line) else {
            continue;
        };
        if message.get("reason").and_then(Json::as_str) != Some("compiler-artifact") {
            continue;
        }
        let (Some(target), Some(executable)) = (
            message.get("target"),
            message.get("executable").and_then(Json::as_str),
        ) else {
            continue;
        };
        let name = target
            .get("name")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        let kind = target.get("kind").map(Json::as_array).unwrap_or_default();
        let kind = kind
            .first()
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        artifacts.push(Artifact {
            name,
            kind,
            executable: PathBuf::from(executable),
        });
    }
    Ok(artifacts)
}

/// Everything the guest needs, at the paths tests and scripts expect.
fn guest_tree(
    root: &Path,
    tools: &VmTools,
    kernel: &Kernel,
    test_bins: &[(String, PathBuf)],
    ipvlan: &Path,
    job: &Job,
) -> Result<Tree> {
    let support = root.join("tests/vm");
    let mut tree = Tree::new();
    tree.host_file("/init", &support.join("init.sh"))?;
    tree.dynamic_executable(&tools.ip)?;
    tree.busybox(&tools.busybox)?;
    if Path::new("/etc/iproute2").is_dir() {
        tree.host_dir("/etc/iproute2", Path::new("/etc/iproute2"))?;
    }
    let mut load_list = String::new();
    for (module, params) in kernel::MODULES {
        let guest = format!("/lib/modules/{}/kernel/{module}", kernel.version);
        tree.host_file(&guest, &kernel.modules_dir.join("kernel").join(module))?;
        load_list.push_str(&format!("{module} {params}\n"));
    }
    tree.bytes("/etc/ipvlan-vm/modules", 0o644, load_list);
    tree.bytes(
        "/etc/hosts",
        0o644,
        "127.0.0.1\tlocalhost\n::1\tlocalhost\n",
    );
    tree.bytes("/etc/hostname", 0o644, "ipvlan-vm\n");
    tree.bytes("/etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n");
    tree.bytes("/etc/group", 0o644, "root:x:0:\n");
    tree.host_file("/usr/bin/ipvlan", ipvlan)?;
    for entry in fs::read_dir(&support)? {
        let path = entry?.path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if path.is_file() && name != "init.sh" {
            tree.host_file(&format!("{GUEST_SHARE}/{name}"), &path)?;
        }
    }
    for (name, executable) in test_bins {
        tree.host_file(&format!("{GUEST_TEST_BIN}/{name}"), executable)?;
    }
    tree.bytes("/etc/ipvlan-vm/job.sh", 0o755, job_script(job));
    Ok(tree)
}

fn job_script(job: &Job) -> String {
    match job {
        Job::Tests { test_args, .. } => {
            let args: Vec<String> = test_args.iter().map(|a| shell_quote(a)).collect();
            format!(
                "exec /bin/sh {GUEST_SHARE}/run-tests.sh {}\n",
                args.join(" ")
            )
        }
        Job::Script { script, topology } => {
            let mut text = String::new();
            if *topology {
                text.push_str(&format!("/bin/sh {GUEST_SHARE}/topology.sh up || exit\n"));
            }
            text.push_str(script);
            text.push('\n');
            text
        }
    }
}

/// Boots QEMU, streams the console to stdout (and `log`), and enforces `timeout`.
fn boot(
    tools: &VmTools,
    kernel: &Kernel,
    initrd: &Path,
    timeout: Duration,
    log: &Path,
    timings: &mut Timings,
) -> Result<Outcome> {
    let mut cmd = Command::new(&tools.qemu);
    // No -enable-kvm: KVM is not usable on the machines this runs on. No network
    // card (-nic none): nothing in the guest may reach the outside.
    cmd.args([
        "-m",
        "1024",
        "-smp",
        "2",
        "-nographic",
        "-no-reboot",
        "-nic",
        "none",
    ])
    .arg("-kernel")
    .arg(&kernel.vmlinuz)
    .arg("-initrd")
    .arg(initrd)
    .args(["-append", "console=ttyS0 quiet panic=-1"])
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    println!("$ {}", describe(&cmd));
    let start = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("{}: {e}", describe(&cmd)))?;
    let mut console = child.stdout.take().ok_or("no QEMU stdout")?;
    let mut log_file = fs::File::create(log)?;

    // The reader thread echoes the console as it arrives and hands complete lines
    // to this thread, which watches the markers and the clock.
    let (lines_tx, lines_rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        let mut pending = Vec::new();
        let mut filter = ConsoleFilter::default();
        let stdout = std::io::stdout();
        while let Ok(n) = console.read(&mut buf) {
            if n == 0 {
                break;
            }
            let chunk = filter.clean(&buf[..n]);
            let mut out = stdout.lock();
            let _ = out.write_all(&chunk);
            let _ = out.flush();
            let _ = log_file.write_all(&chunk);
            for byte in chunk {
                if byte == b'\n' {
                    let _ = lines_tx.send(String::from_utf8_lossy(&pending).into_owned());
                    pending.clear();
                } else {
                    pending.push(byte);
                }
            }
        }
        if !pending.is_empty() {
            let _ = lines_tx.send(String::from_utf8_lossy(&pending).into_owned());
        }
    });

    let deadline = start + timeout;
    let mut outcome = Outcome {
        status: None,
        summary: None,
        timed_out: false,
    };
    let mut booted_at = None;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(remaining) {
            Ok(line) => {
                if booted_at.is_none() && line.contains(BOOT_MARKER) {
                    booted_at = Some(start.elapsed());
                }
                if is_summary(&line) {
                    outcome.summary = Some(line.trim().to_string());
                }
                if let Some(pos) = line.find(RESULT_MARKER) {
                    outcome.status = line[pos + RESULT_MARKER.len()..].trim().parse().ok();
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                outcome.timed_out = true;
                let _ = child.kill();
                break;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let status = child.wait()?;
    let _ = reader.join();
    let elapsed = start.elapsed();
    let boot_time = booted_at.unwrap_or(elapsed);
    timings.record("boot", boot_time);
    timings.record("guest run", elapsed.saturating_sub(boot_time));
    if !outcome.timed_out && !status.success() {
        println!("vm: qemu exited with {status}");
    }
    Ok(outcome)
}

/// Drops carriage returns and terminal escape sequences (the firmware clears the
/// screen) so the console reads as plain lines.
#[derive(Default)]
struct ConsoleFilter {
    state: EscapeState,
}

#[derive(Default, PartialEq)]
enum EscapeState {
    #[default]
    Text,
    Escape,
    Csi,
}

impl ConsoleFilter {
    fn clean(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(input.len());
        for &byte in input {
            self.state = match (&self.state, byte) {
                (EscapeState::Text, 0x1b) => EscapeState::Escape,
                (EscapeState::Text, b'\r') => EscapeState::Text,
                (EscapeState::Text, _) => {
                    out.push(byte);
                    EscapeState::Text
                }
                (EscapeState::Escape, b'[') => EscapeState::Csi,
                (EscapeState::Escape, _) => EscapeState::Text,
                (EscapeState::Csi, 0x40..=0x7e) => EscapeState::Text,
                (EscapeState::Csi, _) => EscapeState::Csi,
            };
        }
        out
    }
}

/// libtest-style closing line: `N passed, N failed`.
pub fn is_summary(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    matches!(words.as_slice(), [p, "passed,", f, "failed"] if p.parse::<u64>().is_ok() && f.parse::<u64>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_line() {
        assert!(is_summary("3 passed, 0 failed"));
        assert!(is_summary("3 passed, 1 failed\n"));
        assert!(!is_summary("test result: ok. 3 passed; 0 failed;"));
        assert!(!is_summary("x passed, 0 failed"));
    }

    #[test]
    fn console_filter_drops_escapes() {
        let mut filter = ConsoleFilter::default();
        assert_eq!(
            filter.clean(b"\x1bc\x1b[?7l\x1b[2JSeaBIOS\r\n"),
            b"SeaBIOS\n"
        );
        // A sequence split across reads.
        assert_eq!(filter.clean(b"a\x1b[0"), b"a");
        assert_eq!(filter.clean(b"mb"), b"b");
    }

    #[test]
    fn job_scripts() {
        let tests = Job::Tests {
            targets: vec![],
            test_args: vec!["kernel".into(), "a b".into()],
        };
        assert_eq!(
            job_script(&tests),
            "exec /bin/sh /usr/share/ipvlan-test/run-tests.sh kernel 'a b'\n"
        );
        let script = Job::Script {
            script: "echo hi".into(),
            topology: true,
        };
        assert_eq!(
            job_script(&script),
            "/bin/sh /usr/share/ipvlan-test/topology.sh up || exit\necho hi\n"
        );
    }
}
