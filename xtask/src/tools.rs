//! Finds the host tools a command needs and installs the missing ones.
//!
//! As root (CI, a fresh machine) missing Debian packages are installed with
//! apt-get; otherwise we stop and print the exact command to run. We never let
//! apt remove a package to make room (`--no-remove`): if it would, we stop and say
//! which one.

use crate::util::{describe, find_program, is_root, output, run};
use crate::Result;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

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
const STRACE: Package = Package {
    name: "strace",
    provides: "strace",
};
const XZ: Package = Package {
    name: "xz-utils",
    provides: "xz",
};
/// For `cargo xtask bench --profile`: it runs in the guest with its libraries.
const PERF: Package = Package {
    name: "linux-perf",
    provides: "perf",
};

/// For `cargo xtask bench --instructions`: callgrind counts in the guest.
const VALGRIND: Package = Package {
    name: "valgrind",
    provides: "valgrind",
};

/// The host programs the VM harness uses.
pub struct VmTools {
    pub qemu: PathBuf,
    pub busybox: PathBuf,
    pub ip: PathBuf,
    /// For the tests that count the system calls of a command.
    pub strace: PathBuf,
}

/// Makes sure everything `vm-test` / `demo` need is present and returns the paths.
pub fn ensure_vm_tools() -> Result<VmTools> {
    ensure_musl_target()?;
    let mut missing: Vec<&Package> = [&QEMU, &IPROUTE2, &STRACE, &LDD, &DPKG]
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
        strace: need(&STRACE)?,
    })
}

/// `xz`, for kernels whose modules are `.ko.xz`; installed when missing.
pub fn ensure_xz() -> Result<PathBuf> {
    ensure_program(&XZ)
}

/// The program `package` provides, the package installed when it is missing.
fn ensure_program(package: &Package) -> Result<PathBuf> {
    if find_program(package.provides).is_none() {
        apt_install(&[package.name])?;
    }
    find_program(package.provides)
        .ok_or_else(|| format!("{} still missing after install", package.provides).into())
}

/// `path`, which an install just made sure of.
fn installed_file(path: &Path) -> Result<PathBuf> {
    if path.is_file() {
        Ok(path.to_path_buf())
    } else {
        Err(format!("{} still missing after install", path.display()).into())
    }
}

fn static_busybox_present() -> bool {
    std::fs::read(BUSYBOX.provides)
        .ok()
        .and_then(|data| crate::elf::inspect(&data).ok())
        .is_some_and(|facts| !facts.has_interpreter)
}

/// Where Debian's `containernetworking-plugins` puts the reference plugins.
pub const CNI_PLUGIN_DIR: &str = "/usr/lib/cni";

/// The reference CNI plugins the CNI VM tests compare with and delegate
/// to, installed (`containernetworking-plugins`) when missing; their paths.
pub fn ensure_cni_plugins() -> Result<Vec<PathBuf>> {
    const PLUGINS: [&str; 4] = ["dhcp", "host-local", "ipvlan", "macvlan"];
    let dir = Path::new(CNI_PLUGIN_DIR);
    if PLUGINS.iter().any(|p| !dir.join(p).is_file()) {
        apt_install(&["containernetworking-plugins"])?;
    }
    PLUGINS
        .iter()
        .map(|p| installed_file(&dir.join(p)))
        .collect()
}

/// The path of the reference plugin `name` among `plugins` (what
/// [`ensure_cni_plugins`] returned).
pub fn reference_plugin(plugins: &[PathBuf], name: &str) -> Result<PathBuf> {
    plugins
        .iter()
        .find(|p| p.file_name().is_some_and(|n| n == name))
        .cloned()
        .ok_or_else(|| format!("the reference CNI plugin {name} is missing").into())
}

/// `perf` (Debian's `linux-perf`), installed when missing.
pub fn ensure_perf() -> Result<PathBuf> {
    ensure_program(&PERF)
}

/// What `cargo xtask bench --instructions` puts in the guest to run
/// callgrind there: Debian's `valgrind` (installed when missing).
pub struct Callgrind {
    /// The launcher proper (`/usr/bin/valgrind` is a shell wrapper that
    /// execs it), a dynamic executable.
    pub launcher: PathBuf,
    /// The tool and the default suppressions, static files the launcher
    /// finds in its library directory.
    pub files: Vec<PathBuf>,
}

pub fn ensure_callgrind() -> Result<Callgrind> {
    ensure_program(&VALGRIND)?;
    const LIB: &str = "/usr/libexec/valgrind";
    Ok(Callgrind {
        launcher: installed_file(Path::new("/usr/bin/valgrind.bin"))?,
        files: vec![
            installed_file(&Path::new(LIB).join("callgrind-amd64-linux"))?,
            installed_file(&Path::new(LIB).join("default.supp"))?,
        ],
    })
}

/// Podman and what it runs containers with, from Debian's packages
/// (`cargo xtask podman-test`).
pub struct PodmanTools {
    pub podman: PathBuf,
    pub crun: PathBuf,
    pub conmon: PathBuf,
    pub catatonit: PathBuf,
}

/// Installs `podman`, `crun`, `conmon` and `catatonit` when one of their
/// programs is missing; their paths.
pub fn ensure_podman() -> Result<PodmanTools> {
    const PACKAGES: [(&str, &str); 4] = [
        ("podman", "/usr/bin/podman"),
        ("crun", "/usr/bin/crun"),
        ("conmon", "/usr/bin/conmon"),
        ("catatonit", "/usr/bin/catatonit"),
    ];
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(_, path)| !Path::new(path).is_file())
        .map(|(name, _)| *name)
        .collect();
    if !missing.is_empty() {
        apt_install(&missing)?;
    }
    let need = |index: usize| installed_file(Path::new(PACKAGES[index].1));
    Ok(PodmanTools {
        podman: need(0)?,
        crun: need(1)?,
        conmon: need(2)?,
        catatonit: need(3)?,
    })
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
/// Never removes a package: when apt would, this fails and names it.
pub fn apt_install(packages: &[&str]) -> Result {
    let command = format!(
        "apt-get update && apt-get install -y --no-remove --no-install-recommends {}",
        packages.join(" ")
    );
    if !is_root() {
        return Err(format!("missing packages; run as root:\n    {command}").into());
    }
    println!("installing {}", packages.join(" "));
    let start = std::time::Instant::now();
    run(apt_get().arg("update").arg("-q"))?;
    let mut install = install_command(packages);
    println!("$ {}", describe(&install));
    // apt lists what it would remove on stdout: echo it and keep it for the error.
    let mut child = install
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("{}: {e}", describe(&install)))?;
    let mut transcript = String::new();
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line?;
            println!("{line}");
            transcript.push_str(&line);
            transcript.push('\n');
        }
    }
    let status = child.wait()?;
    if !status.success() {
        // What stands in the way: packages apt would remove, or installed
        // ones the wanted versions cannot go beside.
        let removed = removed_packages(&transcript);
        let blocking = [removed.clone(), unmet_dependencies(&transcript)].concat();
        match backports_suite(&blocking) {
            Some(suite) => install_from_backports(packages, &suite)?,
            None if !removed.is_empty() => return Err(removal_refused(packages, &removed).into()),
            None => return Err(format!("`{}` failed ({status})", describe(&install)).into()),
        }
    }
    println!(
        "installed {} in {}",
        packages.join(" "),
        crate::util::seconds(start.elapsed())
    );
    Ok(())
}

/// `apt-get install` that installs only what is missing and removes nothing.
fn install_command(packages: &[&str]) -> Command {
    let mut cmd = apt_get();
    cmd.args([
        "install",
        "-y",
        "-q",
        "--no-remove",
        "--no-install-recommends",
    ])
    .args(packages);
    cmd
}

/// The backports suite (`bookworm-backports`) that every installed package
/// in the way (one apt would remove, or one an unmet dependency names) came
/// from, when they all did: a machine that has, say, qemu-utils from
/// backports cannot take qemu-system-x86 from the main suite without losing
/// it, but takes the backports build of the same version beside it.
fn backports_suite(blocking: &[String]) -> Option<String> {
    if blocking.is_empty() {
        return None;
    }
    for package in blocking {
        // Not installed (or no dpkg): no backports build in the way.
        let version =
            output(Command::new("dpkg-query").args(["--show", "--showformat=${Version}", package]))
                .ok()?;
        if !is_backports_version(&version) {
            return None;
        }
    }
    let os_release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    debian_backports_suite(&os_release)
}

/// The packages named after `Depends:` in apt's `unmet dependencies`
/// report (`qemu-system-x86 : Depends: qemu-system-common (= 1:7.2...) but
/// 1:10.0.2...~bpo12+1 is to be installed`).
fn unmet_dependencies(apt_output: &str) -> Vec<String> {
    apt_output
        .lines()
        .filter_map(|line| line.split_once("Depends: ").map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// `CODENAME-backports` on Debian (other distributions' `~bpo` builds come
/// from suites of their own, which deb.debian.org does not serve).
fn debian_backports_suite(os_release: &str) -> Option<String> {
    let debian = os_release
        .lines()
        .any(|line| line.trim() == "ID=debian" || line.trim() == "ID=\"debian\"");
    if !debian {
        return None;
    }
    os_release_codename(os_release).map(|codename| format!("{codename}-backports"))
}

/// Debian's backports builds carry `~bpoNN` in their version.
fn is_backports_version(version: &str) -> bool {
    version.contains("~bpo")
}

fn os_release_codename(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|line| {
        let value = line.strip_prefix("VERSION_CODENAME=")?.trim_matches('"');
        (!value.is_empty()).then(|| value.to_string())
    })
}

/// Installs `packages` preferring `suite` (a backports suite), still removing
/// nothing. The machine's apt configuration is left as it was: the suite is
/// named in a sources list of ours (the machine's own `sources.list`, if any,
/// plus one line), given to apt for these two commands only.
fn install_from_backports(packages: &[&str], suite: &str) -> Result {
    println!(
        "installing {} from {suite}, where the installed packages in the way came from",
        packages.join(" ")
    );
    let policy = output(apt_cache().arg("policy"))?;
    let mut install = install_command(packages);
    install.args(["--target-release", suite]);
    if suite_is_configured(&policy, suite) {
        // The machine's own entry, with its own key options: adding ours
        // beside it could conflict (`Signed-By`).
        return run(&mut install);
    }
    let dir = crate::builds::target_dir()?.join("apt");
    std::fs::create_dir_all(&dir)?;
    let list = dir.join("sources.list");
    let machine_list = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    std::fs::write(&list, backports_sources(&machine_list, suite))?;
    let source_list = format!("Dir::Etc::SourceList={}", list.display());
    run(apt_get().args(["-o", &source_list, "update", "-q"]))?;
    install.args(["-o", &source_list]);
    run(&mut install)
}

/// Whether `apt-cache policy` (its release lines, `n=SUITE`) knows `suite`.
fn suite_is_configured(policy: &str, suite: &str) -> bool {
    let wanted = format!("n={suite}");
    policy.lines().any(|line| {
        line.trim_start()
            .strip_prefix("release ")
            .is_some_and(|fields| fields.split(',').any(|field| field.trim() == wanted))
    })
}

fn backports_sources(machine_list: &str, suite: &str) -> String {
    let mut list = machine_list.to_string();
    if !list.is_empty() && !list.ends_with('\n') {
        list.push('\n');
    }
    list.push_str(&format!(
        "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] \
         http://deb.debian.org/debian {suite} main\n"
    ));
    list
}

/// The packages under apt's `The following packages will be REMOVED:` heading.
fn removed_packages(apt_output: &str) -> Vec<String> {
    let mut removed = Vec::new();
    let mut in_list = false;
    for line in apt_output.lines() {
        if line.starts_with("The following packages will be REMOVED") {
            in_list = true;
        } else if in_list && line.starts_with(' ') {
            // `apt-get --purge` marks names with a trailing `*`.
            removed.extend(
                line.split_whitespace()
                    .map(|name| name.trim_end_matches('*').to_string()),
            );
        } else {
            in_list = false;
        }
    }
    removed
}

fn removal_refused(packages: &[&str], removed: &[String]) -> String {
    let removed = removed.join(" ");
    let wanted = packages.join(" ");
    format!(
        "apt-get would remove {removed} to install {wanted}; xtask never removes \
         packages, so nothing was changed. Either\n  \
         - install {wanted} in a version that fits the installed {removed} (for \
         example from the same suite or backports),\n  \
         - review what apt proposes and decide yourself:\n        \
         apt-get install --no-install-recommends {wanted}\n  \
         - or make the programs available another way (xtask installs only the \
         packages whose programs it cannot find),\n\
         and run the command again."
    )
}

/// apt-cache with English messages (its output is read).
fn apt_cache() -> Command {
    let mut cmd = Command::new("apt-cache");
    cmd.env("LC_ALL", "C");
    cmd
}

/// apt-get without questions (CI has no stdin).
pub fn apt_get() -> Command {
    let mut cmd = Command::new("apt-get");
    // English messages: apt_install reads the list of packages apt would remove.
    cmd.env("DEBIAN_FRONTEND", "noninteractive")
        .env("LC_ALL", "C");
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_never_removes() {
        let cmd = install_command(&["qemu-system-x86", "busybox-static"]);
        assert_eq!(cmd.get_program(), "apt-get");
        let args: Vec<_> = cmd.get_args().map(|a| a.to_string_lossy()).collect();
        assert_eq!(args[0], "install");
        assert!(args.contains(&"-y".into()), "{args:?}");
        assert!(args.contains(&"--no-remove".into()), "{args:?}");
        assert_eq!(
            args[args.len() - 2..],
            ["qemu-system-x86".to_string(), "busybox-static".to_string()]
        );
    }

    #[test]
    fn backports_are_recognised_by_version_and_codename() {
        assert!(is_backports_version("1:10.0.2+ds-2+deb13u1~bpo12+1"));
        assert!(!is_backports_version("1:7.2+dfsg-7+deb12u18+b3"));
        let os_release = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n\
                          VERSION_CODENAME=bookworm\nID=debian\n";
        assert_eq!(os_release_codename(os_release).as_deref(), Some("bookworm"));
        assert_eq!(os_release_codename("ID=debian\nVERSION_CODENAME=\n"), None);
        assert_eq!(
            debian_backports_suite(os_release).as_deref(),
            Some("bookworm-backports")
        );
        assert_eq!(
            debian_backports_suite("ID=ubuntu\nVERSION_CODENAME=jammy\n"),
            None,
            "deb.debian.org serves Debian's suites only"
        );
        let key = "[signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]";
        assert_eq!(
            backports_sources("deb http://x/debian bookworm main", "bookworm-backports"),
            format!(
                "deb http://x/debian bookworm main\n\
                 deb {key} http://deb.debian.org/debian bookworm-backports main\n"
            )
        );
        assert_eq!(
            backports_sources("", "trixie-backports"),
            format!("deb {key} http://deb.debian.org/debian trixie-backports main\n")
        );
        let policy = "Package files:\n 100 /var/lib/dpkg/status\n     release a=now\n \
                      100 http://deb.debian.org/debian bookworm-backports/main amd64 Packages\n     \
                      release o=Debian Backports,a=oldstable-backports,n=bookworm-backports,l=Debian Backports,c=main,b=amd64\n";
        assert!(suite_is_configured(policy, "bookworm-backports"));
        assert!(!suite_is_configured(policy, "trixie-backports"));
        assert!(!suite_is_configured(policy, "bookworm"));
        assert!(suite_is_configured("     release n=sid,c=main\n", "sid"));
    }

    #[test]
    fn reads_the_packages_unmet_dependencies_name() {
        let text = "The following packages have unmet dependencies:\n \
                    qemu-system-x86 : Depends: qemu-system-common (= 1:7.2+dfsg-7+deb12u18+b3) \
                    but 1:10.0.2+ds-2+deb13u1~bpo12+1 is to be installed\n                   \
                    Depends: seabios (> 1.16.3-1~) but 1.16.2-1 is to be installed\n\
                    E: Unable to correct problems, you have held broken packages.\n";
        assert_eq!(unmet_dependencies(text), ["qemu-system-common", "seabios"]);
        assert!(unmet_dependencies("Reading package lists...\n").is_empty());
    }

    #[test]
    fn reads_what_apt_would_remove() {
        let text = "Reading package lists...\n\
                    The following packages will be REMOVED:\n  \
                    qemu-utils qemu-block-extra*\n  \
                    busybox-static\n\
                    The following NEW packages will be installed:\n  \
                    qemu-system-x86\n\
                    0 upgraded, 1 newly installed, 3 to remove and 0 not upgraded.\n";
        assert_eq!(
            removed_packages(text),
            ["qemu-utils", "qemu-block-extra", "busybox-static"]
        );
        assert!(
            removed_packages("The following NEW packages will be installed:\n  x\n").is_empty()
        );
        let message = removal_refused(&["qemu-system-x86"], &["qemu-utils".to_string()]);
        assert!(
            message.starts_with("apt-get would remove qemu-utils to install qemu-system-x86;"),
            "{message}"
        );
        assert!(message.contains("apt-get install --no-install-recommends qemu-system-x86"));
    }
}
