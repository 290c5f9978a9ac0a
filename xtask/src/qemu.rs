//! Boots QEMU with the cloud kernel and an initramfs, streams the guest console,
//! and reads the result marker and summary line the guest prints.

use crate::kernel::Kernel;
use crate::tools::VmTools;
use crate::util::{describe, Timings};
use crate::vm::Outcome;
use crate::Result;
use std::fs;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Printed by the guest's /init with the job's exit status.
const RESULT_MARKER: &str = "IPVLAN-VM-RESULT: ";
/// Printed by /init once the kernel has handed over to it.
const BOOT_MARKER: &str = "ipvlan-vm: booted";
/// How /init names the running kernel (`uname -r`) on its boot line.
const BOOTED_KERNEL: &str = "ipvlan-vm: booted kernel ";
/// How long the guest may take to power off after printing its result.
const POWER_OFF_GRACE: Duration = Duration::from_secs(20);
/// How long a boot may take to reach /init before it is taken for hung:
/// 2 to 7 s is usual, also with a second guest beside it; a boot seen
/// stuck after the firmware's "Booting from ROM..." for ten minutes, with
/// QEMU idle, would otherwise have held its run until its timeout.
pub const BOOT_DEADLINE: Duration = Duration::from_secs(120);

/// Boots QEMU, streams the console to stdout (and `log`), and enforces `timeout`.
/// The QEMU invocation shared by batch and interactive boots.
/// Guest memory, MiB, unless a boot asks for more (`vm::Options::memory_mib`).
pub const DEFAULT_MEMORY_MIB: u32 = 1024;

/// The kernel's command line, before a boot's own words
/// (`vm::Options::kernel_args`).
const KERNEL_COMMAND_LINE: &str = "console=ttyS0 quiet panic=-1";

/// What one boot's machine is beyond its kernel and initramfs.
pub struct Machine {
    /// Guest memory, MiB.
    pub memory_mib: u32,
    /// Words added to the kernel's command line (`ipv6.disable=1`).
    pub kernel_args: &'static [&'static str],
}

impl Machine {
    /// The machine of a boot that asks for nothing else.
    pub const DEFAULT: Machine = Machine {
        memory_mib: DEFAULT_MEMORY_MIB,
        kernel_args: &[],
    };

    pub(crate) fn command_line(&self) -> String {
        let mut line = KERNEL_COMMAND_LINE.to_string();
        for arg in self.kernel_args {
            line.push(' ');
            line.push_str(arg);
        }
        line
    }
}

/// The guest's CPU: QEMU's default model (vendor, and so the kernel's
/// mitigations, unchanged) raised to the x86-64-v2 level every x86-64 host
/// since 2010 has: SSE 4.2's `crc32`, with PCLMULQDQ, is what the kernel's
/// crc32c module needs. Without them ext4's metadata checksums run the
/// generic code, each of its table lookups emulated, which made every file
/// the state directory creates on the virtual disk cost several times what
/// the rest of the guest's work does on hardware. The whole level, not the
/// one flag: code that finds SSE 4.2 may take SSSE3 as given (the string
/// functions of the guest's static busybox do: its init died of `SIGILL`
/// with SSE 4.2 alone).
pub const CPU: &str = "qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt,+pclmulqdq";

fn qemu_command(
    tools: &VmTools,
    kernel: &Kernel,
    initrd: &Path,
    disk: Option<&Path>,
    machine: &Machine,
) -> Command {
    let mut cmd = Command::new(&tools.qemu);
    // No -enable-kvm: KVM is not usable on the machines this runs on. No network
    // card (-nic none): nothing in the guest may reach the outside.
    cmd.args([
        "-m",
        &machine.memory_mib.to_string(),
        "-smp",
        "2",
        "-cpu",
        CPU,
        "-nographic",
        "-no-reboot",
        "-nic",
        "none",
    ])
    .arg("-kernel")
    .arg(&kernel.vmlinuz)
    .arg("-initrd")
    .arg(initrd)
    .args(["-append", &machine.command_line()]);
    if let Some(disk) = disk {
        // cache=none: the host keeps nothing the guest did not flush, so killing
        // QEMU loses what a power cut would.
        let mut drive = std::ffi::OsString::from("file=");
        drive.push(disk);
        drive.push(",if=virtio,format=raw,cache=none");
        cmd.arg("-drive").arg(drive);
    }
    cmd
}

/// Boots with the terminal attached to the guest console (no timeout).
pub fn interactive(
    tools: &VmTools,
    kernel: &Kernel,
    initrd: &Path,
    disk: Option<&Path>,
) -> Result<Outcome> {
    let mut cmd = qemu_command(tools, kernel, initrd, disk, &Machine::DEFAULT);
    println!("$ {}", describe(&cmd));
    println!("(leave the shell to power off; Ctrl-A X kills QEMU)");
    let status = cmd
        .status()
        .map_err(|e| format!("{}: {e}", describe(&cmd)))?;
    Ok(Outcome {
        status: status.code(),
        summary: None,
        timed_out: false,
        booted_kernel: None,
        kernel_crash: None,
        hung_before_init: false,
    })
}

/// A power cut: QEMU is killed (SIGKILL, nothing flushed) `delay` after
/// the guest printed a line containing `after` (`cargo xtask powercut`).
#[derive(Clone)]
pub struct Cut {
    pub after: String,
    pub delay: Duration,
}

/// Boots QEMU, streams the console to stdout (and `log`), and enforces
/// `timeout`; kills QEMU as `cut` says, and tells whether it did.
#[allow(clippy::too_many_arguments)]
pub fn boot_with_cut(
    tools: &VmTools,
    kernel: &Kernel,
    initrd: &Path,
    disk: Option<&Path>,
    timeout: Duration,
    log: &Path,
    timings: &mut Timings,
    cut: Option<&Cut>,
    machine: &Machine,
    boot_deadline: Duration,
) -> Result<(Outcome, bool)> {
    let mut cmd = qemu_command(tools, kernel, initrd, disk, machine);
    cmd.stdin(Stdio::null())
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

    let mut deadline = start + timeout;
    let mut outcome = Outcome {
        status: None,
        summary: None,
        timed_out: false,
        booted_kernel: None,
        kernel_crash: None,
        hung_before_init: false,
    };
    let mut booted_at = None;
    let mut cut_at: Option<Instant> = None;
    let mut cut_armed = cut.is_some();
    let mut cut_done = false;
    let boot_deadline = start + boot_deadline;
    loop {
        let mut until = cut_at.map_or(deadline, |at| at.min(deadline));
        if booted_at.is_none() {
            until = until.min(boot_deadline);
        }
        let remaining = until.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(remaining) {
            Ok(line) => {
                if let Some(cut) = cut.filter(|c| cut_armed && line.contains(&c.after)) {
                    cut_at = Some(Instant::now() + cut.delay);
                    cut_armed = false;
                }
                if booted_at.is_none() && line.contains(BOOT_MARKER) {
                    booted_at = Some(start.elapsed());
                    outcome.booted_kernel = booted_kernel(&line);
                }
                if is_summary(&line) {
                    outcome.summary = Some(line.trim().to_string());
                }
                if outcome.kernel_crash.is_none() {
                    outcome.kernel_crash = kernel_crash(&line);
                }
                if let Some(pos) = line.find(RESULT_MARKER) {
                    outcome.status = line[pos + RESULT_MARKER.len()..].trim().parse().ok();
                    // Too late for a cut: the job is over.
                    cut_at = None;
                    // The job is over: a guest that fails to power off must not
                    // turn a finished run into a timeout.
                    deadline = deadline.min(Instant::now() + POWER_OFF_GRACE);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout)
                if cut_at.is_some_and(|at| at <= Instant::now()) =>
            {
                // Child::kill is SIGKILL: QEMU gets no chance to flush anything.
                let _ = child.kill();
                println!("vm: power cut (QEMU killed)");
                cut_done = true;
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout)
                if booted_at.is_none() && Instant::now() >= boot_deadline =>
            {
                println!(
                    "vm: the guest did not reach /init in {} s; stopping QEMU",
                    boot_deadline.duration_since(start).as_secs()
                );
                outcome.hung_before_init = true;
                let _ = child.kill();
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if outcome.status.is_none() {
                    outcome.timed_out = true;
                } else {
                    println!("vm: the guest did not power off; stopping QEMU");
                }
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
    if !outcome.timed_out && !status.success() && !cut_done {
        println!("vm: qemu exited with {status}");
    }
    Ok((outcome, cut_done))
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

/// A guest kernel's report of its own crash, from the console (`[ 4.51]
/// Oops: int3: 0000 [#1] PREEMPT SMP NOPTI`): the line from the report's
/// first word on.
fn kernel_crash(line: &str) -> Option<String> {
    ["Oops: ", "BUG: ", "Kernel panic - not syncing"]
        .iter()
        .filter_map(|word| line.find(word))
        .min()
        .map(|at| line[at..].trim().to_string())
}

/// `ipvlan-vm: booted kernel 6.12.x+deb12-cloud-amd64` -> the version.
fn booted_kernel(line: &str) -> Option<String> {
    let pos = line.find(BOOTED_KERNEL)?;
    let version = line[pos + BOOTED_KERNEL.len()..].trim();
    (!version.is_empty()).then(|| version.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A boot that never reaches /init (a stand-in for QEMU that prints
    /// the firmware's line, then nothing) is stopped at its boot
    /// deadline, not left to the run's timeout; one that does is not.
    #[test]
    fn a_boot_that_never_reaches_init_is_stopped_at_its_deadline() {
        let dir = std::env::temp_dir().join(format!("xtask-boot-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let boot = |name: &str, script: &str| {
            let fake = dir.join(name);
            fs::write(&fake, format!("#!/bin/sh\n{script}\n")).unwrap();
            let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
            fs::set_permissions(&fake, mode).unwrap();
            let tools = VmTools {
                qemu: fake,
                busybox: PathBuf::new(),
                ip: PathBuf::new(),
                strace: PathBuf::new(),
            };
            let kernel = Kernel {
                series: crate::kernel::Series::V6_1,
                version: "6.1.0-test".to_string(),
                vmlinuz: PathBuf::new(),
                modules_dir: PathBuf::new(),
            };
            let started = Instant::now();
            let (outcome, _) = boot_with_cut(
                &tools,
                &kernel,
                Path::new("initrd"),
                None,
                Duration::from_secs(60),
                &dir.join(format!("{name}.log")),
                &mut Timings::default(),
                None,
                &Machine::DEFAULT,
                Duration::from_secs(1),
            )
            .unwrap();
            (outcome, started.elapsed())
        };
        let (hung, took) = boot("hangs", "echo 'Booting from ROM...'; exec sleep 100");
        assert!(
            hung.hung_before_init && hung.status.is_none(),
            "{}",
            hung.describe()
        );
        assert!(took < Duration::from_secs(30), "stopped after {took:?}");
        let (booted, _) = boot(
            "boots",
            "echo 'ipvlan-vm: booted kernel 6.1.0-test'; sleep 2; echo 'IPVLAN-VM-RESULT: 0'",
        );
        assert!(!booted.hung_before_init && booted.status == Some(0));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_the_booted_kernel() {
        assert_eq!(
            booted_kernel("ipvlan-vm: booted kernel 6.12.117+deb12-cloud-amd64").as_deref(),
            Some("6.12.117+deb12-cloud-amd64")
        );
        assert_eq!(booted_kernel("ipvlan-vm: booted"), None);
    }

    #[test]
    fn reads_a_kernel_crash() {
        assert_eq!(
            kernel_crash("test a_batch ... [    4.517221] Oops: int3: 0000 [#1] PREEMPT SMP NOPTI")
                .as_deref(),
            Some("Oops: int3: 0000 [#1] PREEMPT SMP NOPTI")
        );
        assert_eq!(
            kernel_crash("[    4.519720] Kernel panic - not syncing: Fatal exception").as_deref(),
            Some("Kernel panic - not syncing: Fatal exception")
        );
        assert_eq!(kernel_crash("test oops_are_reported ... ok"), None);
    }

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
}
