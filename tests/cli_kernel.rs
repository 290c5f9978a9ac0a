//! `network create` against the running kernel, inside a fresh network
//! namespace (`unshare -n`) so the host is never touched.
//!
//! On a kernel without ipvlan (the development host) the command must fail
//! naming the missing feature and create nothing; on a kernel with ipvlan
//! (the test VM) the same command must succeed. Which case applies is probed
//! with iproute2 first, so the test asserts on every kernel.

mod common;
use common::TempDir;

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_ipvlan");

/// A scratch directory, removed when the test ends, pass or fail. Made
/// only once the privilege check passed: an unprivileged run leaves
/// nothing behind.
fn scratch_dir(tag: &str) -> TempDir {
    common::privilege::require_root();
    TempDir::new(&format!("kernel-{tag}"))
}

/// In a fresh network namespace: a veth pair `v0`/`v1` (v0 up), then
/// `script` with `$BIN`, `$STATE` and `$OUT` (a scratch directory) set.
fn in_fresh_netns(script: &str, state_dir: &Path, out_dir: &Path) -> Output {
    common::privilege::require_root();
    let full = format!(
        "set -e\nip link add v0 type veth peer name v1\nip link set v0 up\nset +e\n{script}"
    );
    Command::new("unshare")
        .args(["-n", "sh", "-c", &full])
        .env("BIN", BIN)
        .env("STATE", state_dir)
        .env("OUT", out_dir)
        .env_remove("IPVLAN_STATE_DIR")
        .output()
        .expect("unshare (util-linux) and ip (iproute2) are needed")
}

fn kernel_has_ipvlan() -> bool {
    let scratch = scratch_dir("probe");
    let output = in_fresh_netns(
        "ip link add link v0 name probe0 type ipvlan mode l2",
        &scratch,
        &scratch,
    );
    output.status.success()
}

/// Lists the links before and after running ipvlan with `args`, all in one
/// fresh namespace; returns ipvlan's output and both lists.
fn create_in_fresh_netns(args: &str, state_dir: &Path) -> (Output, String, String) {
    let out_dir = scratch_dir("out");
    let output = in_fresh_netns(
        &format!(
            "ip -o link show | awk -F': ' '{{print $2}}' | sort > \"$OUT/before\"\n\
             \"$BIN\" --state-dir \"$STATE\" {args}\n\
             rc=$?\n\
             ip -o link show | awk -F': ' '{{print $2}}' | sort > \"$OUT/after\"\n\
             exit $rc"
        ),
        state_dir,
        &out_dir,
    );
    let before = std::fs::read_to_string(out_dir.join("before")).unwrap_or_default();
    let after = std::fs::read_to_string(out_dir.join("after")).unwrap_or_default();
    assert!(
        before.contains("v0@v1"),
        "namespace setup failed: {output:?}"
    );
    (output, before, after)
}

fn stored_networks(state_dir: &Path) -> String {
    let output = Command::new(BIN)
        .args([
            "--state-dir",
            state_dir.to_str().unwrap(),
            "network",
            "ls",
            "-q",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    String::from_utf8(output.stdout).unwrap()
}

/// What `dir` holds, by name.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A first `network create` the host refuses (here a parent that is not
/// there, on any kernel) makes no store: the state directory it names is
/// not made, nor anything in an empty one.
#[test]
fn a_refused_first_create_makes_no_store() {
    let scratch = scratch_dir("fresh");
    let missing = scratch.join("state");
    for (state_dir, args) in [
        (
            &missing,
            "network create --subnet 192.168.1.0/24 -o parent=nosuch0 n1",
        ),
        (
            &scratch.to_path_buf(),
            "network create -o parent=nosuch0.20 n1",
        ),
    ] {
        let (output, before, after) = create_in_fresh_netns(args, state_dir);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{args}: {stderr}");
        assert!(
            stderr.contains("(CONFIG_IPVLAN)")
                || stderr.contains("-o parent interface was not found on the host: nosuch0"),
            "{args}: {stderr}"
        );
        assert_eq!(before, after, "{args}: links changed");
        assert!(!missing.exists(), "{args}: the state directory was made");
        assert_eq!(
            entries(&scratch),
            Vec::<String>::new(),
            "{args}: a store was made"
        );
    }
}

#[test]
fn network_create_names_the_missing_kernel_feature_or_succeeds() {
    let state_dir = scratch_dir("state");
    let has_ipvlan = kernel_has_ipvlan();
    let (output, before, after) = create_in_fresh_netns(
        "network create -d ipvlan --subnet 192.168.1.0/24 -o parent=v0 n1",
        &state_dir,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    if has_ipvlan {
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        let id = stdout.trim();
        assert!(
            id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{stdout}"
        );
        assert_eq!(stored_networks(&state_dir).trim(), &id[..12]);
    } else {
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert_eq!(
            stderr,
            "ipvlan: network create n1: this kernel has no ipvlan support (CONFIG_IPVLAN); \
             try `modprobe ipvlan`\n"
        );
        assert!(stdout.is_empty(), "{stdout}");
        assert_eq!(before, after, "links changed");
        assert_eq!(
            entries(&state_dir),
            Vec::<String>::new(),
            "a store was made"
        );
        assert_eq!(stored_networks(&state_dir), "", "a network was recorded");
    }
}

#[test]
fn every_kind_of_parent_fails_cleanly_without_ipvlan_or_works_with_it() {
    let has_ipvlan = kernel_has_ipvlan();
    for args in [
        "network create --subnet 192.168.10.0/24 isolated1",
        "network create --subnet 192.168.11.0/24 --internal isolated2",
        "network create -o parent=v0.20 -o ipvlan_mode=l3 vlan20",
        "network create --ipv6 -o parent=v0 -o ipvlan_mode=l3s -o ipvlan_flag=private v6",
    ] {
        let state_dir = scratch_dir("state");
        let (output, before, after) = create_in_fresh_netns(args, &state_dir);
        let stderr = String::from_utf8_lossy(&output.stderr);
        if has_ipvlan {
            assert_eq!(output.status.code(), Some(0), "{args}: {stderr}");
            assert_eq!(stored_networks(&state_dir).lines().count(), 1, "{args}");
        } else {
            assert_eq!(output.status.code(), Some(1), "{args}: {stderr}");
            assert!(
                stderr.starts_with("ipvlan: network create ") && stderr.contains("(CONFIG_"),
                "{args}: {stderr}"
            );
            assert_eq!(before, after, "{args}: links changed");
            assert!(output.stdout.is_empty(), "{args}");
            let made = entries(&state_dir);
            assert_eq!(made, Vec::<String>::new(), "{args}: a store was made");
            assert_eq!(
                stored_networks(&state_dir),
                "",
                "{args}: a network was recorded"
            );
        }
    }
}

/// Without root, each test that needs it fails with the same one line.
#[test]
fn without_root_every_privileged_test_fails_with_one_reason() {
    common::privilege::assert_unprivileged_run_fails_with_one_reason(
        "without_root_every_privileged_test_fails_with_one_reason",
    );
}
