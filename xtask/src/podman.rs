//! `cargo xtask podman-test`: a real runtime drives the plugin. Podman
//! (Debian's package, `network_backend = "cni"`) runs two containers on an
//! ipvlan network whose plugin binary is ours, in a boot of its own; the
//! guest program is `tests/podman/guest.rs` (what it checks is written
//! there).
//!
//! The guest gets Podman, crun, conmon and catatonit with the shared
//! libraries `ldd` lists, `/etc/containers` and `/usr/share/containers`
//! from the host with our `storage.conf` and `containers.conf` over them,
//! Debian's reference `ipvlan` plugin in `/usr/lib/cni` (so the test shows
//! Podman picking ours from `/usr/local/libexec/cni` first) and its
//! `host-local` (the IPAM plugin ours delegates to in the test's last
//! network), and a root
//! file system of a static busybox for `podman run --rootfs`.

use crate::builds::build_vm_example;
use crate::initramfs::Tree;
use crate::kernel::Series;
use crate::util::seconds;
use crate::vm;
use crate::Result;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: cargo xtask podman-test [--kernel K] [--timeout SECS] [--plant-leak]";

/// The containers' root file system in the guest.
const ROOTFS: &str = "/srv/podman-rootfs";
/// The busybox applets the containers use.
const APPLETS: [&str; 6] = ["sh", "sleep", "ping", "ip", "cat", "ls"];
/// What the guest prints when every check passed.
const PASS: &str = "PODMAN-TEST-PASS";
/// How its guest says it failed, and why (the rest of the line).
const FAIL: &str = "PODMAN-TEST-FAIL";
/// A hung Podman fails the run after this; the whole boot takes about a
/// minute under emulation.
pub const TIMEOUT: Duration = Duration::from_secs(360);

/// The vfs driver: the guest's root is an initramfs, where overlay's upper
/// layer cannot live.
const STORAGE_CONF: &str = "\
[storage]
driver = \"vfs\"
runroot = \"/run/containers/storage\"
graphroot = \"/var/lib/containers/storage\"
";

/// No systemd in the guest (cgroupfs, events and logs to files); no
/// `pivot_root`, which fails on an initramfs root; the CNI backend.
const CONTAINERS_CONF: &str = "\
[containers]
log_driver = \"k8s-file\"

[engine]
cgroup_manager = \"cgroupfs\"
events_logger = \"file\"
no_pivot_root = true

[network]
network_backend = \"cni\"
";

pub fn run(args: &[String]) -> Result {
    let mut kernel = Series::from_env()?;
    let mut timeout = TIMEOUT;
    let mut plant_leak = false;
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--kernel" => kernel = Series::parse(iter.next().ok_or("--kernel needs a value")?)?,
            "--timeout" => timeout = vm::parse_secs(iter.next().ok_or("--timeout needs a value")?)?,
            "--plant-leak" => plant_leak = true,
            other => return Err(format!("unknown argument {other}\n{USAGE}").into()),
        }
    }
    run_test(kernel, timeout, plant_leak).map(|_| ())
}

/// Installs what is missing, builds, boots once; the wall time.
/// `plant_leak`: the guest leaves an ipvlan link behind (the run must fail).
pub fn run_test(kernel: Series, timeout: Duration, plant_leak: bool) -> Result<Duration> {
    let start = Instant::now();
    let tools = crate::tools::ensure_vm_tools()?;
    let podman = crate::tools::ensure_podman()?;
    let plugins = crate::tools::ensure_cni_plugins()?;
    let reference = [
        crate::tools::reference_plugin(&plugins, "ipvlan")?,
        crate::tools::reference_plugin(&plugins, "host-local")?,
    ];
    let program = build_vm_example("podman")?;
    let extra = guest_files(&podman, &tools.busybox, &reference)?;
    let mut args = vec!["--rootfs".to_string(), ROOTFS.to_string()];
    if plant_leak {
        args.push("--plant-leak".to_string());
    }
    // A boot that never reaches /init is booted again by `vm::run`.
    let outcome = vm::run(vm::Options {
        job: vm::Job::ProgramWithTree {
            program,
            args,
            extra,
        },
        timeout,
        kernel,
        disk: None,
        memory_mib: None,
        kernel_args: &[],
    })?;
    let log = crate::vm::console_log(kernel)?;
    let console = std::fs::read_to_string(&log).unwrap_or_default();
    if !outcome.success() || !console.lines().any(|l| l.starts_with(PASS)) {
        return Err(format!(
            "podman-test (kernel {}) failed: the guest {} (console: {})",
            kernel.name(),
            outcome.describe(),
            log.display()
        )
        .into());
    }
    let elapsed = start.elapsed();
    println!(
        "podman-test (kernel {}): passed in {}",
        kernel.name(),
        seconds(elapsed)
    );
    Ok(elapsed)
}

/// The run with an ipvlan link of our master planted in the gateway's
/// namespace after `podman rm` (`--plant-leak`), where the check that
/// nothing is left looks: it must fail on that link alone. Passing, or
/// failing otherwise, the check would not be seeing what a DEL leaks,
/// and the run before would prove nothing of it.
pub fn control(kernel: Series) -> Result {
    if run_test(kernel, TIMEOUT, true).is_ok() {
        return Err("podman control: the planted ipvlan link leak0 went unseen".into());
    }
    let log = crate::vm::console_log(kernel)?;
    let console = std::fs::read_to_string(&log).unwrap_or_default();
    let failed = console.lines().find(|l| l.starts_with(FAIL));
    match failed {
        Some(line) if line.contains("ipvlan links left in") && line.contains("[\"leak0\"]") => {
            println!("podman control: the leak check found the planted link, as it must");
            Ok(())
        }
        _ => Err(format!(
            "podman control: failed otherwise than by the planted link: {failed:?} (console: {})",
            log.display()
        )
        .into()),
    }
}

/// Podman, its helpers and configuration, the reference plugins (`ipvlan`
/// and `host-local`) and the containers' root file system.
fn guest_files(
    podman: &crate::tools::PodmanTools,
    busybox: &Path,
    reference: &[PathBuf],
) -> Result<Tree> {
    let mut tree = Tree::new();
    for program in [&podman.podman, &podman.crun, &podman.conmon] {
        tree.dynamic_executable(program)?;
    }
    for plugin in reference {
        executable(&mut tree, plugin)?;
    }
    executable(&mut tree, &podman.catatonit)?;
    tree.symlink(
        "/usr/libexec/podman/catatonit",
        &podman.catatonit.to_string_lossy(),
    );
    for dir in ["/etc/containers", "/usr/share/containers"] {
        if Path::new(dir).is_dir() {
            tree.host_dir(dir, Path::new(dir))?;
        }
    }
    tree.bytes("/etc/containers/storage.conf", 0o644, STORAGE_CONF);
    tree.bytes("/etc/containers/containers.conf", 0o644, CONTAINERS_CONF);
    tree.host_file(&format!("{ROOTFS}/bin/busybox"), busybox)?;
    for applet in APPLETS {
        tree.symlink(&format!("{ROOTFS}/bin/{applet}"), "busybox");
    }
    for dir in ["etc", "proc", "sys", "dev", "tmp", "run"] {
        tree.dir(&format!("{ROOTFS}/{dir}"));
    }
    Ok(tree)
}

/// A host program at the same path in the guest, with its libraries when
/// it has any (catatonit is static, and `ldd` fails on static programs).
fn executable(tree: &mut Tree, path: &Path) -> Result {
    let data = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if crate::elf::inspect(&data)?.has_interpreter {
        tree.dynamic_executable(path)
    } else {
        tree.host_file(&path.to_string_lossy(), path)
    }
}
