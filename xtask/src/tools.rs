//! Finds the host tools a command needs and installs the missing ones.
//!
//! As root (CI, a fresh machine) missing Debian packages are installed with
//! apt-get; otherwise we stop and print the exact command to run.

use crate::util::{find_program, is_root, output, run};
use crate::Result;
use std::path::PathBuf;
use std::process::Command;

pub const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

/// A Debian package and the file that proves it is installed.
struct Package {
    name: &'static str,
    provides: &'static str,
}

const QEMU: Package = Package {
    name: "qemu-system-x86",
    provides: "qemu-system-x86_64",
};
const BUSYBOX: Package = Package {
    name: "busybox-static",
    provides: "/bin/busybox",
};
const IPROUTE2: Package = Package {
    name: "iproute2",
    provides: "/usr/sbin/ip",
};
const LDD: Package = Package {
    name: "libc-bin",
    provides: "ldd",
};
const DPKG: Package = Package {
    name: "dpkg",
    provides: "dpkg-deb",
};

/// The host programs the VM harness uses.
pub struct VmTools {
    pub qemu: PathBuf,
    pub busybox: PathBuf,
    pub ip: PathBuf,
}

/// Makes sure everything `vm-test` / `demo` need is present and returns the paths.
pub fn ensure_vm_tools() -> Result<VmTools> {
    ensure_musl_target()?;
    let mut missing: Vec<&Package> = [&QEMU, &IPROUTE2, &LDD, &DPKG]
        .into_iter()
        .filter(|pkg| find_program(pkg.provides).is_none())
        .collect();
    if !static_busybox_present() {
        missing.push(&BUSYBOX);
    }
    if find_program("apt-get").is_none() {
        return Err("apt-get not found: the VM harness expects a Debian or Ubuntu host".into());
    }
    if !missing.is_empty() {
        apt_install(&missing.iter().map(|p| p.name).collect::<Vec<_>>())?;
    }
    if !static_busybox_present() {
        return Err(
            "/bin/busybox is not statically linked; install the `busybox-static` package".into(),
        );
    }
    let need = |pkg: &Package| {
        find_program(pkg.provides)
            .ok_or_else(|| format!("{} still missing after install", pkg.provides))
    };
    Ok(VmTools {
        qemu: need(&QEMU)?,
        busybox: need(&BUSYBOX)?,
        ip: need(&IPROUTE2)?,
    })
}

fn static_busybox_present() -> bool {
    std::fs::read(BUSYBOX.provides)
        .ok()
        .and_then(|data| crate::elf::inspect(&data).ok())
        .is_some_and(|facts| !facts.has_interpreter)
}

/// Adds the musl target through rustup (a per-user action, root not needed).
pub fn ensure_musl_target() -> Result {
    if find_program("rustup").is_none() {
        // A toolchain not managed by rustup: let cargo report a missing target itself.
        return Ok(());
    }
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"]))?;
    if !installed.lines().any(|line| line.trim() == MUSL_TARGET) {
        run(Command::new("rustup").args(["target", "add", MUSL_TARGET]))?;
    }
    Ok(())
}

/// Adds rustfmt and clippy through rustup when they are missing.
pub fn ensure_lint_components() -> Result {
    if find_program("rustup").is_none() {
        return Ok(());
    }
    let installed = output(Command::new("rustup").args(["component", "list", "--installed"]))?;
    for component in ["rustfmt", "clippy"] {
        if !installed
            .lines()
            .any(|line| line.trim().starts_with(&format!("{component}-")))
        {
            run(Command::new("rustup").args(["component", "add", component]))?;
        }
    }
    Ok(())
}

/// Installs Debian packages when root; otherwise stops with the command to run.
pub fn apt_install(packages: &[&str]) -> Result {
    let command = format!(
        "apt-get update && apt-get install -y --no-install-recommends {}",
        packages.join(" ")
    );
    if !is_root() {
        return Err(format!("missing packages; run as root:\n    {command}").into());
    }
    println!("installing {}", packages.join(" "));
    let start = std::time::Instant::now();
    run(apt_get().arg("update").arg("-q"))?;
    run(apt_get()
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(packages))?;
    println!(
        "installed {} in {}",
        packages.join(" "),
        crate::util::seconds(start.elapsed())
    );
    Ok(())
}

/// apt-get without questions (CI has no stdin).
pub fn apt_get() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.env("DEBIAN_FRONTEND", "noninteractive");
    cmd
}
