//! The QEMU harness: builds the guest's programs, packs the initramfs, boots the
//! Debian cloud kernel once and reports what the guest's job printed.

use crate::builds::{build_ipvlan, build_vm_tests, target_dir};
use crate::initramfs::Tree;
use crate::kernel::{self, Kernel};
use crate::tools::{self, VmTools};
use crate::util::{seconds, shell_quote, workspace_root, Timings};
use crate::Result;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Guest directory holding the support scripts of tests/vm.
const GUEST_SHARE: &str = "/usr/share/ipvlan-test";
/// Guest directory holding the test binaries, run in name order.
const GUEST_TEST_BIN: &str = "/usr/lib/ipvlan-test/bin";
/// Guest directory holding the program of a `Job::Program`.
const GUEST_PROGRAM_DIR: &str = "/usr/lib/ipvlan-test/program";
/// Boots in all when one never reaches /init: it hangs (see
/// `qemu::BOOT_DEADLINE`), or under emulation on a loaded host the kernel
/// panics before it ("IO-APIC + timer doesn't work").
const BOOT_ATTEMPTS: u32 = 3;
/// How long a guest may run before it is taken for hung. The whole VM
/// suite runs in one boot: 300 to 660 s of guest time on the development
/// machines, 860 to 890 s on a loaded one (which timed out at 900), so the
/// margin is what a hang needs, not what a slow host eats.
const DEFAULT_TIMEOUT_SECS: u64 = 1800;

/// What the guest runs after boot.
pub enum Job {
    /// Every selected VM test binary; the strings go to libtest (filters, flags).
    Tests {
        targets: Vec<String>,
        test_args: Vec<String>,
    },
    /// A shell script, optionally after building the walkthrough topology.
    Script { script: String, topology: bool },
    /// An interactive shell on the console, optionally with the topology.
    Shell { topology: bool },
    /// A program built on the host, run with `args` in a pristine guest as a
    /// test binary is (isolate.sh), but on its own: its exit status is the
    /// job's (`cargo xtask soak`).
    Program { program: PathBuf, args: Vec<String> },
    /// A `Program` with more files in the guest, laid over the harness's
    /// tree (`cargo xtask podman-test`: Podman and its configuration).
    ProgramWithTree {
        program: PathBuf,
        args: Vec<String>,
        extra: Tree,
    },
    /// A shell script with more host files in the guest (`cargo xtask
    /// bench`): `files` at the given guest paths, `executables` (dynamically
    /// linked) at their host paths with their libraries.
    ScriptWithFiles {
        script: String,
        files: Vec<(String, PathBuf)>,
        executables: Vec<PathBuf>,
    },
}

pub struct Options {
    pub job: Job,
    pub timeout: Duration,
    /// Which cloud kernel to boot.
    pub kernel: kernel::Series,
    /// A raw disk image the guest sees as `/dev/vda` (see `crate::disk`).
    pub disk: Option<PathBuf>,
    /// Guest memory in MiB; `None`: `qemu::DEFAULT_MEMORY_MIB`.
    pub memory_mib: Option<u32>,
    /// Words added to the guest kernel's command line.
    pub kernel_args: &'static [&'static str],
}

/// The kernel's command line of a boot without IPv6, as hosts that do
/// without it are booted.
pub const IPV6_OFF: &[&str] = &["ipv6.disable=1"];

/// The VM test targets that run in a boot with IPv6 off, and only there:
/// each fails on a kernel with IPv6, as the others would fail without it.
pub const IPV6_OFF_TARGETS: &[&str] = &["vm_ipv6_off"];

/// Which boot a VM test run is, and so which targets it runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TestBoot {
    /// The kernel as Debian boots it: every target but the ones below.
    Standard,
    /// Booted with [`IPV6_OFF`]: the [`IPV6_OFF_TARGETS`].
    Ipv6Off,
}

impl TestBoot {
    pub fn kernel_args(self) -> &'static [&'static str] {
        match self {
            TestBoot::Standard => &[],
            TestBoot::Ipv6Off => IPV6_OFF,
        }
    }

    /// The targets to build for this boot: `selected` when each is this
    /// boot's, all of this boot's when none is.
    pub fn targets(self, selected: Vec<String>) -> Result<Vec<String>> {
        self.choose(&crate::builds::vm_test_targets()?, selected)
    }

    /// [`TestBoot::targets`] among the declared targets `all`.
    fn choose(self, all: &[String], selected: Vec<String>) -> Result<Vec<String>> {
        if let Some(unknown) = selected.iter().find(|name| !all.contains(name)) {
            return Err(format!(
                "no VM test target {unknown:?}; VM test targets: {}",
                all.join(", ")
            )
            .into());
        }
        let ours = |name: &str| IPV6_OFF_TARGETS.contains(&name) == (self == TestBoot::Ipv6Off);
        if let Some(other) = selected.iter().find(|name| !ours(name)) {
            return Err(match self {
                TestBoot::Standard => {
                    format!("{other} runs in a boot with IPv6 off: add --ipv6-off")
                }
                TestBoot::Ipv6Off => format!("{other} needs IPv6: leave out --ipv6-off"),
            }
            .into());
        }
        if !selected.is_empty() {
            return Ok(selected);
        }
        let chosen: Vec<String> = all.iter().filter(|name| ours(name)).cloned().collect();
        // None would build every target (an empty selection is all).
        match chosen.is_empty() {
            true => Err(format!("no VM test target runs in a boot {self:?}").into()),
            false => Ok(chosen),
        }
    }
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
    /// `uname -r` in the guest, from /init's boot line.
    pub booted_kernel: Option<String>,
    /// The guest kernel's first `Oops:`, `BUG:` or `Kernel panic` line,
    /// if it printed one: a run that ends without its marker is then the
    /// kernel's crash, to be told apart from a test's failure.
    pub kernel_crash: Option<String>,
    /// The boot never reached /init within `qemu::BOOT_DEADLINE` and QEMU
    /// was stopped (booted again by [`run_with_cut`] while attempts last).
    pub hung_before_init: bool,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.status == Some(0) && !self.timed_out
    }

    /// How the guest's job ended, for error messages.
    pub fn describe(&self) -> String {
        match (self.timed_out, self.status) {
            (true, _) => "timed out".to_string(),
            (false, None) if self.hung_before_init => format!(
                "never reached /init in {} boots of {} s each",
                BOOT_ATTEMPTS,
                crate::qemu::BOOT_DEADLINE.as_secs()
            ),
            (false, None) => match &self.kernel_crash {
                Some(line) => {
                    format!("ended without its result marker: the guest kernel crashed ({line})")
                }
                None => "ended without its result marker (crash or early power-off)".to_string(),
            },
            (false, Some(status)) => format!("exited with status {status}"),
        }
    }
}

/// Builds everything, boots once, and fails unless the guest job succeeded.
pub fn run(options: Options) -> Result<Outcome> {
    run_with_cut(options, None).map(|(outcome, _)| outcome)
}

/// [`run`], with QEMU killed as `cut` says (`cargo xtask powercut`); also
/// whether the cut happened.
pub fn run_with_cut(options: Options, cut: Option<crate::qemu::Cut>) -> Result<(Outcome, bool)> {
    let total = Instant::now();
    let mut timings = Timings::default();
    let root = workspace_root();
    let cache = target_dir()?.join("vm");
    fs::create_dir_all(&cache)?;

    let tools = timings.time("tools", tools::ensure_vm_tools)?;
    let kernel = timings.time("kernel", || kernel::ensure(&cache, options.kernel))?;
    println!(
        "kernel {} (--kernel {}, {})",
        kernel.version,
        kernel.series.name(),
        kernel.vmlinuz.display()
    );

    let (test_bins, ipvlan_bin) = timings.time("build", || {
        let test_bins = match &options.job {
            Job::Tests { targets, .. } => build_vm_tests(targets)?,
            Job::Script { .. }
            | Job::Shell { .. }
            | Job::Program { .. }
            | Job::ProgramWithTree { .. }
            | Job::ScriptWithFiles { .. } => Vec::new(),
        };
        Ok((test_bins, build_ipvlan()?))
    })?;

    let initrd = cache.join(format!("initramfs-{}.cpio", options.kernel.name()));
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

    if let Job::Shell { .. } = options.job {
        return crate::qemu::interactive(&tools, &kernel, &initrd, options.disk.as_deref())
            .map(|outcome| (outcome, false));
    }
    let mut attempt = 1;
    let (outcome, cut_done) = loop {
        let (outcome, cut_done) = crate::qemu::boot_with_cut(
            &tools,
            &kernel,
            &initrd,
            options.disk.as_deref(),
            options.timeout,
            &console_log(options.kernel)?,
            &mut timings,
            cut.as_ref(),
            &crate::qemu::Machine {
                memory_mib: options
                    .memory_mib
                    .unwrap_or(crate::qemu::DEFAULT_MEMORY_MIB),
                kernel_args: options.kernel_args,
            },
            crate::qemu::BOOT_DEADLINE,
        )?;
        // Nothing of the job ran: booting again changes nothing of what
        // it tests (a disk the guest never mounted included).
        let before_init = outcome.booted_kernel.is_none() && !cut_done;
        if !before_init || attempt == BOOT_ATTEMPTS {
            break (outcome, cut_done);
        }
        attempt += 1;
        println!(
            "vm: the kernel did not reach /init; booting again (attempt {attempt} of {BOOT_ATTEMPTS})"
        );
    };
    timings.record("total", total.elapsed());
    println!(
        "vm kernel: {} (--kernel {})",
        outcome
            .booted_kernel
            .as_deref()
            .unwrap_or("unknown, no boot line"),
        kernel.series.name()
    );
    println!("vm timings: {}", timings.summary());
    if let Some(booted) = outcome.booted_kernel.as_deref() {
        if booted != kernel.version {
            return Err(format!(
                "the guest booted kernel {booted}, not {} (--kernel {})",
                kernel.version,
                kernel.series.name()
            )
            .into());
        }
    }
    if outcome.timed_out {
        println!(
            "vm: timed out after {} (IPVLAN_VM_TIMEOUT / --timeout)",
            seconds(options.timeout)
        );
    } else if outcome.status.is_none() && !cut_done {
        println!(
            "vm: the guest ended without printing its result marker (see {})",
            console_log(options.kernel)?.display()
        );
        if let Some(line) = &outcome.kernel_crash {
            println!("vm: the guest kernel crashed: {line}");
        }
    }
    Ok((outcome, cut_done))
}

/// Where a boot of `kernel` keeps its guest's console. One file a kernel
/// series, as the initramfs is: `cargo xtask test` boots the two series at
/// once.
pub fn console_log(kernel: kernel::Series) -> Result<PathBuf> {
    Ok(target_dir()?
        .join("vm")
        .join(format!("console-{}.log", kernel.name())))
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
    tree.dynamic_executable(&tools.strace)?;
    tree.busybox(&tools.busybox)?;
    if Path::new("/etc/iproute2").is_dir() {
        tree.host_dir("/etc/iproute2", Path::new("/etc/iproute2"))?;
    }
    let mut load_list = String::new();
    for (module, params) in kernel.loadable_modules() {
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
    // For the interactive shell (vm-shell): busybox's shell runs its own applets
    // before PATH, and its `ip` cannot create ipvlan or vlan links.
    tree.bytes(
        "/etc/profile",
        0o644,
        "ip() { /usr/sbin/ip \"$@\"; }\nPS1='ipvlan-vm:\\w# '\n",
    );
    tree.bytes("/etc/passwd", 0o644, "root:x:0:0:root:/root:/bin/sh\n");
    tree.bytes("/etc/group", 0o644, "root:x:0:\n");
    tree.host_file("/usr/bin/ipvlan", ipvlan)?;
    // Test binaries built by cargo know the binary as env!("CARGO_BIN_EXE_ipvlan"),
    // a path on the build host: make that path work in the guest too.
    tree.symlink(&ipvlan.to_string_lossy(), "/usr/bin/ipvlan");
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
    // Only the CNI targets need the reference plugins (some MB each).
    if test_bins.iter().any(|(name, _)| name.starts_with("cni")) {
        for plugin in crate::tools::ensure_cni_plugins()? {
            tree.dynamic_executable(&plugin)?;
        }
    }
    if let Job::Program { program, .. } = job {
        tree.host_file(&guest_program(program), program)?;
    }
    if let Job::ProgramWithTree { program, extra, .. } = job {
        tree.host_file(&guest_program(program), program)?;
        tree.merge(extra);
    }
    if let Job::ScriptWithFiles {
        files, executables, ..
    } = job
    {
        for (guest, host) in files {
            tree.host_file(guest, host)?;
        }
        for executable in executables {
            tree.dynamic_executable(executable)?;
        }
    }
    tree.bytes("/etc/ipvlan-vm/job.sh", 0o755, job_script(job));
    Ok(tree)
}

/// Where a `Job::Program`'s program lands in the guest.
fn guest_program(program: &Path) -> String {
    let name = program.file_name().unwrap_or_default().to_string_lossy();
    format!("{GUEST_PROGRAM_DIR}/{name}")
}

fn topology_prefix(topology: bool) -> String {
    if topology {
        format!("/bin/sh {GUEST_SHARE}/topology.sh up || exit\n")
    } else {
        String::new()
    }
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
            let mut text = topology_prefix(*topology);
            text.push_str(script);
            text.push('\n');
            text
        }
        Job::ScriptWithFiles { script, .. } => format!("{script}\n"),
        Job::Shell { topology } => {
            // cttyhack gives the shell the console as its controlling terminal
            // (job control, Ctrl-C).
            topology_prefix(*topology) + "setsid cttyhack /bin/sh -l\n"
        }
        Job::Program { program, args } | Job::ProgramWithTree { program, args, .. } => {
            let mut words = vec![shell_quote(&guest_program(program))];
            words.extend(args.iter().map(|a| shell_quote(a)));
            format!(
                "exec unshare -m -n --propagation private /bin/sh {GUEST_SHARE}/isolate.sh {}\n",
                words.join(" ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_boot_runs_its_own_targets_and_refuses_the_others() {
        let names = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        let all = names(&["cli_vm", "vm_driver", "vm_ipv6_off"]);
        let standard = TestBoot::Standard.choose(&all, names(&["cli_vm"]));
        assert_eq!(standard.unwrap(), names(&["cli_vm"]));
        let standard = TestBoot::Standard.choose(&all, Vec::new());
        assert_eq!(standard.unwrap(), names(&["cli_vm", "vm_driver"]));
        let off = TestBoot::Ipv6Off.choose(&all, Vec::new());
        assert_eq!(off.unwrap(), names(&["vm_ipv6_off"]));
        let refusal = |boot: TestBoot, all: &[String], selected: &[&str]| {
            boot.choose(all, names(selected)).unwrap_err().to_string()
        };
        assert_eq!(
            refusal(TestBoot::Standard, &all, &["cli_vm", "vm_ipv6_off"]),
            "vm_ipv6_off runs in a boot with IPv6 off: add --ipv6-off"
        );
        assert_eq!(
            refusal(TestBoot::Ipv6Off, &all, &["cli_vm"]),
            "cli_vm needs IPv6: leave out --ipv6-off"
        );
        assert_eq!(
            refusal(TestBoot::Ipv6Off, &all, &["typo"]),
            "no VM test target \"typo\"; VM test targets: cli_vm, vm_driver, vm_ipv6_off"
        );
        assert_eq!(
            refusal(TestBoot::Ipv6Off, &names(&["cli_vm"]), &[]),
            "no VM test target runs in a boot Ipv6Off"
        );
        assert_eq!(TestBoot::Ipv6Off.kernel_args(), ["ipv6.disable=1"]);
        assert!(TestBoot::Standard.kernel_args().is_empty());
    }

    #[test]
    fn the_kernel_command_line_takes_a_boots_words_after_its_own() {
        let machine = crate::qemu::Machine {
            memory_mib: 1024,
            kernel_args: IPV6_OFF,
        };
        assert_eq!(
            machine.command_line(),
            "console=ttyS0 quiet panic=-1 ipv6.disable=1"
        );
        assert_eq!(
            crate::qemu::Machine::DEFAULT.command_line(),
            "console=ttyS0 quiet panic=-1"
        );
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
        let program = Job::Program {
            program: PathBuf::from("target/x86_64-unknown-linux-musl/debug/examples/soak"),
            args: vec!["--seconds".into(), "180".into()],
        };
        assert_eq!(
            job_script(&program),
            "exec unshare -m -n --propagation private /bin/sh \
             /usr/share/ipvlan-test/isolate.sh /usr/lib/ipvlan-test/program/soak --seconds 180\n"
        );
        let with_tree = Job::ProgramWithTree {
            program: PathBuf::from("target/x86_64-unknown-linux-musl/debug/examples/podman"),
            args: vec!["--rootfs".into(), "/srv/podman-rootfs".into()],
            extra: Tree::new(),
        };
        assert_eq!(
            job_script(&with_tree),
            "exec unshare -m -n --propagation private /bin/sh \
             /usr/share/ipvlan-test/isolate.sh /usr/lib/ipvlan-test/program/podman --rootfs /srv/podman-rootfs\n"
        );
    }
}
