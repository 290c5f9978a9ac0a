//! Fetches one of Debian bookworm's cloud kernels (which have ipvlan, dummy and
//! 8021q as modules) and unpacks it under `target/vm/kernel-SERIES` without
//! installing anything. Each series has its own cache, so switching is free.

use crate::tools::apt_get;
use crate::util::{is_root, output, run};
use crate::Result;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Environment variable naming the default kernel series (`6.1`, `6.12`).
pub const KERNEL_ENV: &str = "IPVLAN_VM_KERNEL";

/// Modules to load, in dependency order (8021q needs mrp and garp, garp and
/// bridge need stp and llc), with their parameters. Paths relative to
/// `lib/modules/VERSION/kernel`; a package may ship them compressed (`.ko.xz`),
/// the guest always gets them plain, as busybox's insmod reads ELF only.
pub const MODULES: [(&str, &str); 19] = [
    // ext4's metadata checksums (crc32c) by the SSE 4.2 instruction, as on
    // any x86-64 host, where udev loads it at boot; without it ext4 runs
    // the generic table-driven code, whose every instruction QEMU emulates
    // (first, so every mount of the disk picks it: see `qemu::CPU`).
    ("arch/x86/crypto/crc32c-intel.ko", ""),
    ("net/llc/llc.ko", ""),
    ("net/802/stp.ko", ""),
    // A parent that is a bridge port (refused), or a bridge (a parent).
    ("net/bridge/bridge.ko", ""),
    ("net/802/garp.ko", ""),
    ("net/802/mrp.ko", ""),
    ("net/8021q/8021q.ko", ""),
    ("drivers/net/ipvlan/ipvlan.ko", ""),
    // ipvtap links share an ipvlan port (the mode checks must see them).
    ("drivers/net/tap.ko", ""),
    ("drivers/net/ipvlan/ipvtap.ko", ""),
    // Otherwise the module creates a `dummy0` nobody asked for.
    ("drivers/net/dummy.ko", "numdummies=0"),
    ("drivers/net/veth.ko", ""),
    ("drivers/net/macvlan.ko", ""),
    // The virtual disk (`Options::disk`): the virtio core and PCI transport
    // (built in on 6.12, modules on 6.1), then the block driver.
    ("drivers/virtio/virtio_ring.ko", ""),
    ("drivers/virtio/virtio.ko", ""),
    ("drivers/virtio/virtio_pci_modern_dev.ko", ""),
    ("drivers/virtio/virtio_pci_legacy_dev.ko", ""),
    ("drivers/virtio/virtio_pci.ko", ""),
    ("drivers/block/virtio_blk.ko", ""),
];

/// Which of bookworm's cloud kernels the VM boots.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Series {
    /// bookworm's own kernel, `linux-image-cloud-amd64`.
    #[default]
    V6_1,
    /// The backported kernel, `linux-image-6.12-cloud-amd64`.
    V6_12,
}

impl Series {
    pub const ALL: [Series; 2] = [Series::V6_1, Series::V6_12];

    /// How the series is named on the command line and in the cache.
    pub fn name(self) -> &'static str {
        match self {
            Series::V6_1 => "6.1",
            Series::V6_12 => "6.12",
        }
    }

    /// The meta package whose `Depends:` names the current image package.
    pub fn meta_package(self) -> &'static str {
        match self {
            Series::V6_1 => "linux-image-cloud-amd64",
            Series::V6_12 => "linux-image-6.12-cloud-amd64",
        }
    }

    pub fn parse(text: &str) -> std::result::Result<Series, String> {
        Series::ALL
            .into_iter()
            .find(|s| s.name() == text.trim())
            .ok_or_else(|| {
                let names: Vec<&str> = Series::ALL.iter().map(|s| s.name()).collect();
                format!(
                    "unknown kernel {text:?}; choose one of {}",
                    names.join(", ")
                )
            })
    }

    /// `IPVLAN_VM_KERNEL` when set, else 6.1.
    pub fn from_env() -> Result<Series> {
        match std::env::var(KERNEL_ENV) {
            Ok(text) if !text.trim().is_empty() => {
                Series::parse(&text).map_err(|e| format!("{KERNEL_ENV}: {e}").into())
            }
            _ => Ok(Series::default()),
        }
    }
}

pub struct Kernel {
    pub series: Series,
    pub version: String,
    pub vmlinuz: PathBuf,
    /// `lib/modules/VERSION` of the unpacked package.
    pub modules_dir: PathBuf,
}

impl Kernel {
    /// The entries of [`MODULES`] this kernel ships as modules (the rest it has
    /// built in, per its `modules.builtin`).
    pub fn loadable_modules(&self) -> Vec<(&'static str, &'static str)> {
        let builtin =
            fs::read_to_string(self.modules_dir.join("modules.builtin")).unwrap_or_default();
        MODULES
            .into_iter()
            .filter(|(module, _)| !is_builtin(&builtin, module))
            .collect()
    }
}

/// Whether `modules.builtin` (one `kernel/PATH.ko` per line) lists `module`.
fn is_builtin(modules_builtin: &str, module: &str) -> bool {
    modules_builtin
        .lines()
        .any(|line| line.strip_prefix("kernel/") == Some(module))
}

/// Returns the cached kernel of `series`, downloading and unpacking it on first use.
pub fn ensure(cache: &Path, series: Series) -> Result<Kernel> {
    let unpacked = cache.join(format!("kernel-{}", series.name()));
    if series == Series::V6_1 {
        adopt_unversioned_cache(cache, &unpacked);
    }
    if unpacked.is_dir() {
        // A cache unpacked before a module joined MODULES has it compressed only.
        decompress_modules(&unpacked)?;
    }
    if let Ok(kernel) = locate(&unpacked, series) {
        return Ok(kernel);
    }
    let meta_package = series.meta_package();
    let downloads = cache.join(format!("downloads-{}", series.name()));
    let _ = fs::remove_dir_all(&downloads);
    fs::create_dir_all(&downloads)?;
    let meta = apt_download(meta_package, &downloads)?;
    let depends = output(Command::new("dpkg-deb").arg("-f").arg(&meta).arg("Depends"))?;
    let image = image_package(&depends, meta_package)
        .ok_or_else(|| format!("{meta_package}: no linux-image package in Depends: {depends}"))?;
    println!("{meta_package} depends on {image}");
    let deb = apt_download(&image, &downloads)?;
    let staging = cache.join(format!("kernel-{}.tmp", series.name()));
    let _ = fs::remove_dir_all(&staging);
    run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&staging))?;
    decompress_modules(&staging)?;
    let _ = fs::remove_dir_all(&unpacked);
    fs::rename(&staging, &unpacked)?;
    let _ = fs::remove_dir_all(&downloads);
    locate(&unpacked, series)
}

/// Earlier versions kept the only kernel (always 6.1) in `target/vm/kernel`: move
/// it to its series' place instead of downloading it again.
fn adopt_unversioned_cache(cache: &Path, unpacked: &Path) {
    let old = cache.join("kernel");
    if !unpacked.exists() && locate(&old, Series::V6_1).is_ok() {
        let _ = fs::rename(&old, unpacked);
    }
}

/// The unpacked image's `lib/modules/VERSION` directories.
fn module_dirs(unpacked: &Path) -> Vec<PathBuf> {
    fs::read_dir(unpacked.join("lib/modules"))
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

/// Writes `X.ko` beside each `X.ko.xz` of the modules we load (xz, from
/// xz-utils, installed when missing).
fn decompress_modules(unpacked: &Path) -> Result {
    let mut xz = None;
    for dir in module_dirs(unpacked) {
        for (module, _) in MODULES {
            let plain = dir.join("kernel").join(module);
            let compressed = compressed_path(&plain);
            if plain.is_file() || !compressed.is_file() {
                continue;
            }
            if xz.is_none() {
                xz = Some(crate::tools::ensure_xz()?);
            }
            let xz = xz.as_ref().expect("set above");
            let out = fs::File::create(&plain)?;
            let status = Command::new(xz)
                .arg("-dc")
                .arg(&compressed)
                .stdout(Stdio::from(out))
                .status()
                .map_err(|e| format!("{}: {e}", xz.display()))?;
            if !status.success() {
                let _ = fs::remove_file(&plain);
                return Err(format!("xz -dc {} failed ({status})", compressed.display()).into());
            }
        }
    }
    Ok(())
}

/// `.../dummy.ko` -> `.../dummy.ko.xz`.
fn compressed_path(plain: &Path) -> PathBuf {
    let mut name = plain.as_os_str().to_os_string();
    name.push(".xz");
    PathBuf::from(name)
}

/// Finds `boot/vmlinuz-VERSION` and checks every module we load is there, plain.
fn locate(unpacked: &Path, series: Series) -> Result<Kernel> {
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
    // A host whose apt knows another release (Debian 13's
    // `linux-image-cloud-amd64` is 6.12) would otherwise hand one series'
    // tests the other kernel.
    if !version.starts_with(&format!("{}.", series.name())) {
        return Err(format!(
            "{} holds kernel {version}, not of the {} series (is {} from Debian bookworm?)",
            unpacked.display(),
            series.name(),
            series.meta_package()
        )
        .into());
    }
    let modules_dir = unpacked.join("lib/modules").join(&version);
    let kernel = Kernel {
        series,
        version,
        vmlinuz,
        modules_dir,
    };
    for (module, _) in kernel.loadable_modules() {
        let path = kernel.modules_dir.join("kernel").join(module);
        if !path.is_file() {
            return Err(format!("kernel {} lacks {}", kernel.version, path.display()).into());
        }
    }
    Ok(kernel)
}

/// `linux-image-6.1.0-NN-cloud-amd64 (= 6.1.x-y)` -> the package name.
fn image_package(depends: &str, meta_package: &str) -> Option<String> {
    depends
        .split([',', '|'])
        .map(|alt| alt.split_whitespace().next().unwrap_or(""))
        .find(|name| name.starts_with("linux-image-") && *name != meta_package)
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
    /// A cache holding another series' kernel (Debian 13's apt fetches 6.12
    /// for `linux-image-cloud-amd64`) is refused for the series asked for,
    /// never booted in its place.
    #[test]
    fn a_kernel_of_another_series_is_refused() {
        let dir = std::env::temp_dir().join(format!("xtask-kernel-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let version = "6.12.118+deb12-cloud-amd64";
        fs::create_dir_all(dir.join("boot")).unwrap();
        fs::write(dir.join(format!("boot/vmlinuz-{version}")), "").unwrap();
        for (module, _) in MODULES {
            let path = dir.join(format!("lib/modules/{version}/kernel/{module}"));
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, "").unwrap();
        }
        assert_eq!(locate(&dir, Series::V6_12).unwrap().version, version);
        let refused = locate(&dir, Series::V6_1).err().unwrap().to_string();
        assert!(refused.contains("not of the 6.1 series"), "{refused}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn builtin_modules_are_matched_by_whole_path() {
        let builtin = "kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\n";
        assert!(super::is_builtin(builtin, "drivers/virtio/virtio.ko"));
        assert!(!super::is_builtin(builtin, "drivers/virtio/virtio_pci.ko"));
        assert!(!super::is_builtin(builtin, "virtio/virtio.ko"));
    }

    use super::*;

    #[test]
    fn picks_the_image_from_depends() {
        let meta = Series::V6_1.meta_package();
        assert_eq!(
            image_package("linux-image-6.1.0-41-cloud-amd64 (= 6.1.158-1)", meta).as_deref(),
            Some("linux-image-6.1.0-41-cloud-amd64")
        );
        assert_eq!(
            image_package("foo, linux-image-6.1.0-9-cloud-amd64-unsigned (= 1) | linux-image-6.1.0-9-cloud-amd64", meta).as_deref(),
            Some("linux-image-6.1.0-9-cloud-amd64-unsigned")
        );
        assert_eq!(image_package("initramfs-tools", meta), None);
        assert_eq!(
            image_package(
                "linux-image-6.12.117+deb12-cloud-amd64 (= 6.12.117-1~deb12u1)",
                Series::V6_12.meta_package()
            )
            .as_deref(),
            Some("linux-image-6.12.117+deb12-cloud-amd64")
        );
    }

    #[test]
    fn kernel_series_names() {
        assert_eq!(Series::parse("6.1"), Ok(Series::V6_1));
        assert_eq!(Series::parse("6.12"), Ok(Series::V6_12));
        assert_eq!(Series::default(), Series::V6_1);
        let error = Series::parse("6.6").unwrap_err();
        assert!(error.contains("6.1, 6.12"), "{error}");
        for series in Series::ALL {
            assert_eq!(Series::parse(series.name()), Ok(series));
        }
    }

    #[test]
    fn compressed_module_path() {
        assert_eq!(
            compressed_path(Path::new("k/drivers/net/dummy.ko")),
            PathBuf::from("k/drivers/net/dummy.ko.xz")
        );
    }
}
