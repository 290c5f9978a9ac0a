//! Fetches Debian's cloud kernel (which has ipvlan, dummy and 8021q as modules) and
//! unpacks it under `target/vm/kernel` without installing anything.

use crate::tools::apt_get;
use crate::util::{is_root, output, run};
use crate::Result;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const META_PACKAGE: &str = "linux-image-cloud-amd64";

/// Modules to load, in dependency order (8021q needs mrp and garp, garp needs
/// stp and llc), with their parameters. Paths relative to
/// `lib/modules/VERSION/kernel`.
pub const MODULES: [(&str, &str); 9] = [
    ("net/llc/llc.ko", ""),
    ("net/802/stp.ko", ""),
    ("net/802/garp.ko", ""),
    ("net/802/mrp.ko", ""),
    ("net/8021q/8021q.ko", ""),
    ("drivers/net/ipvlan/ipvlan.ko", ""),
    // Otherwise the module creates a `dummy0` nobody asked for.
    ("drivers/net/dummy.ko", "numdummies=0"),
    ("drivers/net/veth.ko", ""),
    ("drivers/net/macvlan.ko", ""),
];

pub struct Kernel {
    pub version: String,
    pub vmlinuz: PathBuf,
    /// `lib/modules/VERSION` of the unpacked package.
    pub modules_dir: PathBuf,
}

/// Returns the cached kernel, downloading and unpacking it on first use.
pub fn ensure(cache: &Path) -> Result<Kernel> {
    let unpacked = cache.join("kernel");
    if let Ok(kernel) = locate(&unpacked) {
        return Ok(kernel);
    }
    let downloads = cache.join("downloads");
    let _ = fs::remove_dir_all(&downloads);
    fs::create_dir_all(&downloads)?;
    let meta = apt_download(META_PACKAGE, &downloads)?;
    let depends = output(Command::new("dpkg-deb").arg("-f").arg(&meta).arg("Depends"))?;
    let image = image_package(&depends)
        .ok_or_else(|| format!("{META_PACKAGE}: no linux-image package in Depends: {depends}"))?;
    println!("{META_PACKAGE} depends on {image}");
    let deb = apt_download(&image, &downloads)?;
    let staging = cache.join("kernel.tmp");
    let _ = fs::remove_dir_all(&staging);
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&staging))?;
    let _ = fs::remove_dir_all(&unpacked);
    fs::rename(&staging, &unpacked)?;
    let _ = fs::remove_dir_all(&downloads);
    locate(&unpacked)
}

/// Finds `boot/vmlinuz-VERSION` and checks every module we load is there.
fn locate(unpacked: &Path) -> Result<Kernel> {
    let boot = unpacked.join("boot");
    let vmlinuz = fs::read_dir(&boot)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .ok_or_else(|| format!("no vmlinuz in {}", boot.display()))?;
    let version =
        vmlinuz.file_name().unwrap_or_default().to_string_lossy()["vmlinuz-".len()..].to_string();
    let modules_dir = unpacked.join("lib/modules").join(&version);
    for (module, _) in MODULES {
        let path = modules_dir.join("kernel").join(module);
        if !path.is_file() {
            return Err(format!("kernel {version} lacks {}", path.display()).into());
        }
    }
    Ok(Kernel {
        version,
        vmlinuz,
        modules_dir,
    })
}

/// `linux-image-6.1.0-NN-cloud-amd64 (= 6.1.x-y)` -> the package name.
fn image_package(depends: &str) -> Option<String> {
    depends
        .split([',', '|'])
        .map(|alt| alt.split_whitespace().next().unwrap_or(""))
        .find(|name| name.starts_with("linux-image-") && *name != META_PACKAGE)
        .map(str::to_string)
}

/// `apt-get download NAME` into `dir`, refreshing the package lists once if the
/// package is unknown (a fresh machine has none). Returns the .deb path.
fn apt_download(package: &str, dir: &Path) -> Result<PathBuf> {
    println!("$ apt-get download {package}");
    let mut download_cmd = apt_get();
    if is_root() {
        // Otherwise apt drops to the `_apt` user, which may not reach `dir`, and warns.
        download_cmd.args(["-o", "APT::Sandbox::User=root"]);
    }
    download_cmd
        .args(["download", "-q", package])
        .current_dir(dir);
    let mut download = || download_cmd.status();
    if !download()?.success() {
        if !is_root() {
            return Err(format!("apt-get download {package} failed; refresh the package lists as root:\n    apt-get update").into());
        }
        run(apt_get().args(["update", "-q"]))?;
        if !download()?.success() {
            return Err(format!("apt-get download {package} failed").into());
        }
    }
    fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{package}_")))
        })
        .ok_or_else(|| {
            format!(
                "apt-get download {package} left no .deb in {}",
                dir.display()
            )
            .into()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_image_from_depends() {
        assert_eq!(
            image_package("linux-image-6.1.0-41-cloud-amd64 (= 6.1.158-1)").as_deref(),
            Some("linux-image-6.1.0-41-cloud-amd64")
        );
        assert_eq!(
            image_package("foo, linux-image-6.1.0-9-cloud-amd64-unsigned (= 1) | linux-image-6.1.0-9-cloud-amd64").as_deref(),
            Some("linux-image-6.1.0-9-cloud-amd64-unsigned")
        );
        assert_eq!(image_package("initramfs-tools"), None);
    }
}
