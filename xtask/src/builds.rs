//! Cargo side of the harness: finds the VM test targets and builds them and the
//! `ipvlan` binary for musl, reading executable paths from cargo's JSON messages.

use crate::json::{self, Value as Json};
use crate::tools::MUSL_TARGET;
use crate::util::{cargo, describe};
use crate::Result;
use std::path::PathBuf;
use std::process::{Command, Stdio};

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

/// One target of a package, from `cargo metadata`.
struct CargoTarget {
    name: String,
    kinds: Vec<String>,
    required_features: Vec<String>,
}

/// Targets of the `ipvlan` package.
fn ipvlan_targets() -> Result<Vec<CargoTarget>> {
    let metadata = metadata()?;
    let strings = |value: Option<&Json>| -> Vec<String> {
        value
            .and_then(Json::as_array)
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    };
    let packages = metadata
        .get("packages")
        .and_then(Json::as_array)
        .unwrap_or_default();
    let package = packages
        .iter()
        .find(|p| p.get("name").and_then(Json::as_str) == Some("ipvlan"))
        .ok_or("cargo metadata: no ipvlan package")?;
    Ok(package
        .get("targets")
        .and_then(Json::as_array)
        .unwrap_or_default()
        .iter()
        .filter_map(|t| {
            let name = t.get("name").and_then(Json::as_str)?.to_string();
            Some(CargoTarget {
                name,
                kinds: strings(t.get("kind")),
                required_features: strings(t.get("required-features")),
            })
        })
        .collect())
}

/// Test targets of the `ipvlan` package that declare `required-features = ["vm"]`.
pub fn vm_test_targets() -> Result<Vec<String>> {
    let mut names: Vec<String> = ipvlan_targets()?
        .into_iter()
        .filter(|t| {
            t.kinds.iter().any(|k| k == "test") && t.required_features.iter().any(|f| f == "vm")
        })
        .map(|t| t.name)
        .collect();
    names.sort();
    Ok(names)
}

/// Bench targets of the `ipvlan` package.
pub fn bench_targets() -> Result<Vec<String>> {
    Ok(ipvlan_targets()?
        .into_iter()
        .filter(|t| t.kinds.iter().any(|k| k == "bench"))
        .map(|t| t.name)
        .collect())
}

/// Builds the selected (default: all) VM test targets for musl; returns
/// (target name, executable).
pub fn build_vm_tests(selected: &[String]) -> Result<Vec<(String, PathBuf)>> {
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
    unwinding(&mut cmd);
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

/// `.cargo/config.toml`'s musl flags for a build whose profile unwinds on
/// panic: the same, but with lld's `--eh-frame-hdr` and without the
/// linker script that drops `.eh_frame` (both are for the release profile,
/// which aborts), so the unwinder finds the tables and a failing test
/// reports its panic and backtrace instead of aborting.
const UNWINDING_RUSTFLAGS: &str = "-C relocation-model=static -C linker-flavor=ld.lld \
     -C linker=rust-lld -C link-arg=--icf=all -C link-arg=-O2 -C link-arg=--eh-frame-hdr";

/// For a musl build whose profile unwinds (the VM tests, the guest binary,
/// examples): [`UNWINDING_RUSTFLAGS`] as `RUSTFLAGS`, which replaces the
/// config's list (`--config` would only extend it, and a section the
/// linker script drops cannot be added back).
fn unwinding(cmd: &mut Command) {
    cmd.env("RUSTFLAGS", UNWINDING_RUSTFLAGS);
}

/// Builds the `ipvlan` binary for musl (static, profile `guest`) and returns
/// its path.
pub fn build_ipvlan() -> Result<PathBuf> {
    let mut cmd = cargo();
    // Same features as the test build; its own profile (see Cargo.toml), as
    // the tests start it far more often than they run themselves.
    cmd.args([
        "build",
        "--profile",
        "guest",
        "-p",
        "ipvlan",
        "--features",
        "vm",
        "--target",
        MUSL_TARGET,
        "--bin",
        "ipvlan",
    ]);
    unwinding(&mut cmd);
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
    // Line tables keep backtraces readable at a fraction of full debug info: the
    // binaries travel in the initramfs, which sits in the guest's RAM. Only the
    // musl builds see this; they have their own target directory.
    cmd.env("CARGO_PROFILE_DEV_DEBUG", "line-tables-only")
        .env("CARGO_PROFILE_TEST_DEBUG", "line-tables-only");
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
        let kind = target
            .get("kind")
            .and_then(Json::as_array)
            .unwrap_or_default();
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

/// Builds an example of the `ipvlan` package for musl, with the features of
/// the VM tests (so it shares their build of the library); returns its path.
pub fn build_vm_example(name: &str) -> Result<PathBuf> {
    let mut cmd = cargo();
    cmd.args([
        "build",
        "-p",
        "ipvlan",
        "--features",
        "vm",
        "--target",
        MUSL_TARGET,
        "--example",
        name,
    ]);
    unwinding(&mut cmd);
    cargo_artifacts(&mut cmd)?
        .into_iter()
        .find(|a| a.kind == "example" && a.name == name)
        .map(|a| a.executable)
        .ok_or_else(|| format!("cargo built no executable for example {name}").into())
}

/// `cargo build` of the `ipvlan` binary as users get it (profile release,
/// musl): `cargo xtask size` runs it as it is, `build_release` adds an
/// example.
pub fn release_build() -> Command {
    let mut cmd = cargo();
    cmd.args([
        "build",
        "--release",
        "-p",
        "ipvlan",
        "--target",
        MUSL_TARGET,
        "--bin",
        "ipvlan",
    ]);
    cmd
}

/// Builds the `ipvlan` binary as users get it (profile release, musl) and
/// an example with the same profile (`cargo xtask bench`, so both pay the
/// same process start); returns (ipvlan, example). `symbols`: the same
/// code with its symbol table kept (not stripped), in a target directory
/// of its own so that the stripped build is not made again after it, for
/// a profile that names user-space functions.
pub fn build_release(example: &str, symbols: bool) -> Result<(PathBuf, PathBuf)> {
    let mut cmd = release_build();
    cmd.args(["--example", example]);
    if symbols {
        cmd.env("CARGO_PROFILE_RELEASE_STRIP", "false");
        cmd.arg("--target-dir").arg(target_dir()?.join("symbols"));
    }
    let artifacts = cargo_artifacts(&mut cmd)?;
    let find = |kind: &str, name: &str| {
        artifacts
            .iter()
            .find(|a| a.kind == kind && a.name == name)
            .map(|a| a.executable.clone())
            .ok_or_else(|| format!("cargo built no {kind} {name}"))
    };
    Ok((find("bin", "ipvlan")?, find("example", example)?))
}

#[cfg(test)]
mod flags_tests {
    use super::UNWINDING_RUSTFLAGS;

    /// The flags of `.cargo/config.toml` only the release profile takes.
    const RELEASE_ONLY_FLAGS: [&str; 2] = [
        "link-arg=--no-eh-frame-hdr",
        "link-arg=-T.cargo/no-unwind-tables.ld",
    ];

    /// The unwinding builds' flags are the config's musl flags but the
    /// release-only ones (and `--eh-frame-hdr`): a flag added there is
    /// added here too.
    #[test]
    fn unwinding_flags_are_the_configs_but_the_release_only_ones() {
        let config = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.cargo/config.toml"),
        )
        .unwrap();
        let list = config
            .split("[target.x86_64-unknown-linux-musl]")
            .nth(1)
            .and_then(|rest| rest.split(']').next())
            .expect("the musl rustflags list");
        let configured: Vec<&str> = list
            .split('"')
            .skip(1)
            .step_by(2)
            .filter(|flag| *flag != "-C" && !RELEASE_ONLY_FLAGS.contains(flag))
            .collect();
        let unwinding: Vec<&str> = UNWINDING_RUSTFLAGS
            .split_whitespace()
            .filter(|flag| *flag != "-C" && *flag != "link-arg=--eh-frame-hdr")
            .collect();
        assert_eq!(configured, unwinding);
        for flag in RELEASE_ONLY_FLAGS {
            assert!(list.contains(flag), "{flag} is in the config's list");
        }
    }
}
