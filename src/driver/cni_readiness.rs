//! `doctor`'s CNI lines: whether a runtime that runs CNI plugins would find
//! this binary, and whether the configs that name it can run.
//!
//! Read-only: it lists directories and reads files, and touches nothing.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::report::DoctorCheck;
use crate::json::{self, Value};

/// The name runtimes run us by: a config's `"type": "ipvlan"`.
const PLUGIN_NAME: &str = "ipvlan";

/// Where runtimes look for plugins when nobody set `CNI_PATH`: containerd,
/// CRI-O and Kubernetes use `/opt/cni/bin`; Podman searches
/// `/usr/local/libexec/cni`, `/usr/libexec/cni`, `/usr/local/lib/cni`,
/// `/usr/lib/cni` (Debian's reference plugins), then `/opt/cni/bin`.
pub const DEFAULT_BIN_DIRS: [&str; 5] = [
    "/opt/cni/bin",
    "/usr/local/libexec/cni",
    "/usr/libexec/cni",
    "/usr/local/lib/cni",
    "/usr/lib/cni",
];

/// Where runtimes read network configs: `/etc/cni/net.d` (containerd,
/// CRI-O, Kubernetes, Podman's CNI backend) and `/opt/cni/config` (Nomad).
pub const DEFAULT_CONF_DIRS: [&str; 2] = ["/etc/cni/net.d", "/opt/cni/config"];

/// The directories [`cni_readiness`] looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniDirs {
    /// Plugin directories, in the order a runtime searches them.
    pub bin: Vec<PathBuf>,
    /// Config directories.
    pub conf: Vec<PathBuf>,
    /// This program, to tell it from another program named `ipvlan`.
    pub this_binary: PathBuf,
    /// `bin` is the usual directories' merged order: its first is the one
    /// containerd, CRI-O and Kubernetes search alone, and the one Podman
    /// searches last.
    pub podman_order: bool,
}

impl CniDirs {
    /// The directories of this host: `CNI_PATH`'s when it is set (as a
    /// runtime would pass it), the usual ones otherwise.
    pub fn from_env() -> CniDirs {
        // An empty entry is no directory (the runtimes skip it), not the
        // working directory.
        let mut given: Vec<PathBuf> = std::env::var_os("CNI_PATH")
            .map(|path| std::env::split_paths(&path).collect())
            .unwrap_or_default();
        given.retain(|dir| !dir.as_os_str().is_empty());
        let podman_order = given.is_empty();
        let bin = match podman_order {
            false => given,
            true => DEFAULT_BIN_DIRS.iter().map(PathBuf::from).collect(),
        };
        CniDirs {
            bin,
            conf: DEFAULT_CONF_DIRS.iter().map(PathBuf::from).collect(),
            this_binary: PathBuf::from("/proc/self/exe"),
            podman_order,
        }
    }
}

/// What a plugin directory holds under our name.
#[derive(Debug, PartialEq, Eq)]
enum Installed {
    Ours,
    Other,
}

/// One config in a config directory with a plugin of `"type": "ipvlan"`.
struct IpvlanConfig {
    file: PathBuf,
    name: String,
    ipam_type: Option<String>,
    /// Keys only our plugin reads: `ipam.type: ipvlan` (the reference
    /// plugin would look for an IPAM plugin of that name) and `flag` (which
    /// it would ignore).
    needs_ours: bool,
}

/// `doctor`'s CNI lines: where our plugin is installed (and whether another
/// program holds its name earlier in the search order), and for every config
/// naming `ipvlan`, whether its IPAM plugin is installed and whether it
/// needs ours. A host with none of these directories passes: CNI is needed
/// only where a runtime runs plugins.
pub fn cni_readiness(dirs: &CniDirs) -> Vec<DoctorCheck> {
    let installed: Vec<(&PathBuf, Installed)> = dirs
        .bin
        .iter()
        .filter_map(|dir| installed_in(dir, &dirs.this_binary).map(|what| (dir, what)))
        .collect();
    let ours_anywhere = installed.iter().any(|(_, what)| *what == Installed::Ours);
    let configs = ipvlan_configs(&dirs.conf);

    let mut problems = Vec::new();
    let mut lines = Vec::new();
    for config in &configs.found {
        let ipam = config.ipam_type.as_deref().unwrap_or("none (chained)");
        lines.push(format!(
            "{} ({}): ipam {ipam}",
            config.name,
            config.file.display()
        ));
        if config.needs_ours && !ours_anywhere {
            problems.push(format!(
                "{} uses keys only ipvlan's own plugin reads, which is not installed",
                config.name
            ));
        }
        if let Some(ipam) = &config.ipam_type {
            let served_by_us = ipam == PLUGIN_NAME;
            if !served_by_us && !dirs.bin.iter().any(|dir| is_program(&dir.join(ipam))) {
                problems.push(format!(
                    "{}: its IPAM plugin {ipam} is in none of {}",
                    config.name,
                    list(&dirs.bin)
                ));
            }
        }
    }
    for (file, error) in &configs.unreadable {
        problems.push(format!("{}: {error}", file.display()));
    }

    let plugin_detail = if installed.is_empty() {
        format!(
            "not installed in any CNI plugin directory ({}); needed only where a runtime runs CNI plugins",
            list(&dirs.bin)
        )
    } else {
        installed
            .iter()
            .map(|(dir, what)| match what {
                Installed::Ours => format!("{}: this program", dir.join(PLUGIN_NAME).display()),
                Installed::Other => format!(
                    "{}: another program (the reference plugin?)",
                    dir.join(PLUGIN_NAME).display()
                ),
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let is_other = |found: Option<&(&PathBuf, Installed)>| {
        found.is_some_and(|(_, what)| *what == Installed::Other)
    };
    // Podman's order: the first directory last.
    let podman_first = installed
        .iter()
        .find(|(dir, _)| Some(*dir) != dirs.bin.first())
        .or(installed.first());
    let plugin_detail = match (ours_anywhere, dirs.bin.first()) {
        (true, _) if is_other(installed.first()) => {
            format!("{plugin_detail} (a runtime searching in this order runs the other one first)")
        }
        (true, Some(last)) if dirs.podman_order && is_other(podman_first) => format!(
            "{plugin_detail} (Podman, which searches {} last, runs the other one)",
            last.display()
        ),
        _ => plugin_detail,
    };

    let configs_detail = if configs.found.is_empty() && configs.unreadable.is_empty() {
        format!("no config names {PLUGIN_NAME} in {}", list(&dirs.conf))
    } else {
        let mut detail = lines.join("; ");
        if !problems.is_empty() {
            if !detail.is_empty() {
                detail.push_str("; ");
            }
            detail.push_str(&problems.join("; "));
        }
        detail
    };
    vec![
        DoctorCheck {
            name: "cni plugin".to_string(),
            ok: true,
            detail: plugin_detail,
        },
        DoctorCheck {
            name: "cni configs".to_string(),
            ok: problems.is_empty(),
            detail: configs_detail,
        },
    ]
}

fn list(dirs: &[PathBuf]) -> String {
    dirs.iter()
        .map(|dir| dir.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_program(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.mode() & 0o111 != 0)
}

/// Whether `dir/ipvlan` is this program: the same file (a link to it) or a
/// copy of it, byte for byte.
fn installed_in(dir: &Path, this_binary: &Path) -> Option<Installed> {
    let candidate = dir.join(PLUGIN_NAME);
    if !is_program(&candidate) {
        return None;
    }
    let (Ok(theirs), Ok(ours)) = (fs::metadata(&candidate), fs::metadata(this_binary)) else {
        return Some(Installed::Other);
    };
    if (theirs.dev(), theirs.ino()) == (ours.dev(), ours.ino()) {
        return Some(Installed::Ours);
    }
    if theirs.len() != ours.len() {
        return Some(Installed::Other);
    }
    match (fs::read(&candidate), fs::read(this_binary)) {
        (Ok(a), Ok(b)) if a == b => Some(Installed::Ours),
        _ => Some(Installed::Other),
    }
}

struct Configs {
    found: Vec<IpvlanConfig>,
    unreadable: Vec<(PathBuf, String)>,
}

/// Every `.conflist`, `.conf` and `.json` file of the config directories
/// (the extensions libcni loads) with a plugin of type `ipvlan`. A file that
/// does not parse is reported only when it mentions `ipvlan`: other tools'
/// broken files are theirs to report.
fn ipvlan_configs(conf_dirs: &[PathBuf]) -> Configs {
    let mut configs = Configs {
        found: Vec::new(),
        unreadable: Vec::new(),
    };
    for dir in conf_dirs {
        let Ok(entries) = crate::sys::list_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries
            .iter()
            .map(|entry| dir.join(entry.file_name()))
            .filter(|path| {
                matches!(
                    path.extension().and_then(OsStr::to_str),
                    Some("conflist" | "conf" | "json")
                )
            })
            .collect();
        crate::order::sort(&mut files);
        for file in files {
            let Ok(text) = fs::read_to_string(&file) else {
                continue;
            };
            let value = match json::parse(&text) {
                Ok(value) => value,
                Err(error) if text.contains(PLUGIN_NAME) => {
                    configs
                        .unreadable
                        .push((file, format!("not valid JSON ({error})")));
                    continue;
                }
                Err(_) => continue,
            };
            let name = value.get("name").and_then(Value::as_str).unwrap_or("?");
            // A .conflist holds "plugins"; a .conf is one plugin.
            let plugins: Vec<&Value> = match value.get("plugins").and_then(Value::as_array) {
                Some(plugins) => plugins.iter().collect(),
                None => vec![&value],
            };
            for plugin in plugins {
                if plugin.get("type").and_then(Value::as_str) != Some(PLUGIN_NAME) {
                    continue;
                }
                let ipam_type = plugin
                    .get("ipam")
                    .and_then(|ipam| ipam.get("type"))
                    .and_then(Value::as_str)
                    // An empty type is no IPAM, as for the runtimes.
                    .filter(|ipam| !ipam.is_empty())
                    .map(str::to_string);
                let needs_ours =
                    ipam_type.as_deref() == Some(PLUGIN_NAME) || plugin.get("flag").is_some();
                configs.found.push(IpvlanConfig {
                    file: file.clone(),
                    name: name.to_string(),
                    ipam_type,
                    needs_ours,
                });
            }
        }
    }
    configs
}
