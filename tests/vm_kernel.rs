//! Checks the kernel under test has what ipvlan needs: dummy, ipvlan and 802.1Q
//! links can be created, and read back with the expected kind and settings.
//! Runs in the QEMU guest (`cargo xtask vm-test`); on a kernel lacking any of
//! these it fails, by design: the VM tests must never pass by skipping.

use ipvlan::json::{self, Value};
use std::process::Command;

/// iproute2, by full path: inside the guest busybox's `ip` would win on PATH and
/// it cannot create ipvlan or vlan links.
fn ip_path() -> String {
    std::env::var("IPVLAN_IP").unwrap_or_else(|_| "/usr/sbin/ip".to_string())
}

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new(ip_path())
        .args(args)
        .output()
        .map_err(|e| format!("running {} {}: {e}", ip_path(), args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A named network namespace for one test, deleted (with its links) on drop.
struct ScratchNetns(String);

impl ScratchNetns {
    fn new(tag: &str) -> Self {
        let name = format!("vmk-{tag}-{}", std::process::id());
        ip(&["netns", "add", &name]).unwrap_or_else(|e| panic!("creating netns {name}: {e}"));
        ScratchNetns(name)
    }

    fn ip(&self, args: &[&str]) -> Result<String, String> {
        let mut full = vec!["-n", self.0.as_str()];
        full.extend_from_slice(args);
        ip(&full)
    }

    /// `ip -d -j link show dev NAME`: the one link's JSON object.
    fn link_details(&self, name: &str) -> Value {
        let text = self
            .ip(&["-d", "-j", "link", "show", "dev", name])
            .unwrap_or_else(|e| panic!("reading back {name}: {e}"));
        let parsed =
            json::parse(&text).unwrap_or_else(|e| panic!("ip -j output for {name}: {e}: {text}"));
        match parsed.as_array() {
            Some([link]) => link.clone(),
            _ => panic!("expected one link for {name}: {text}"),
        }
    }
}

impl Drop for ScratchNetns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

/// Follows `path` (object keys) from `link` and returns the value as text.
fn field(link: &Value, path: &[&str]) -> String {
    let mut value = link;
    for key in path {
        value = value
            .get(key)
            .unwrap_or_else(|| panic!("no {} in {link}", path.join(".")));
    }
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[test]
fn dummy_links_can_be_created() {
    let ns = ScratchNetns::new("dummy");
    ns.ip(&["link", "add", "d0", "type", "dummy"])
        .expect("this kernel lacks dummy links (CONFIG_DUMMY)");
    let details = ns.link_details("d0");
    assert_eq!(field(&details, &["ifname"]), "d0");
    assert_eq!(field(&details, &["linkinfo", "info_kind"]), "dummy");
}

#[test]
fn ipvlan_links_in_each_mode() {
    let ns = ScratchNetns::new("ipvlan");
    ns.ip(&["link", "add", "parent0", "type", "dummy"])
        .expect("this kernel lacks dummy links (CONFIG_DUMMY)");
    for (name, mode) in [("iv_l2", "l2"), ("iv_l3", "l3"), ("iv_l3s", "l3s")] {
        ns.ip(&[
            "link", "add", "link", "parent0", "name", name, "type", "ipvlan", "mode", mode,
        ])
        .unwrap_or_else(|e| panic!("this kernel lacks ipvlan mode {mode} (CONFIG_IPVLAN): {e}"));
        let details = ns.link_details(name);
        assert_eq!(field(&details, &["linkinfo", "info_kind"]), "ipvlan");
        assert_eq!(field(&details, &["linkinfo", "info_data", "mode"]), mode);
        assert_eq!(field(&details, &["link"]), "parent0");
    }
}

#[test]
fn vlan_links_carry_their_id() {
    let ns = ScratchNetns::new("vlan");
    ns.ip(&["link", "add", "parent0", "type", "dummy"])
        .expect("this kernel lacks dummy links (CONFIG_DUMMY)");
    ns.ip(&[
        "link",
        "add",
        "link",
        "parent0",
        "name",
        "parent0.20",
        "type",
        "vlan",
        "id",
        "20",
    ])
    .expect("this kernel lacks 802.1Q vlan links (CONFIG_VLAN_8021Q)");
    let details = ns.link_details("parent0.20");
    assert_eq!(field(&details, &["linkinfo", "info_kind"]), "vlan");
    assert_eq!(
        field(&details, &["linkinfo", "info_data", "protocol"]),
        "802.1Q"
    );
    assert_eq!(field(&details, &["linkinfo", "info_data", "id"]), "20");
    assert_eq!(field(&details, &["link"]), "parent0");
}

#[test]
fn ipvlan_over_vlan_over_veth() {
    // The walkthrough's shape: ipvlan on a VLAN sub-interface of a veth.
    let ns = ScratchNetns::new("stack");
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "trunk",
    ])
    .expect("veth");
    ns.ip(&[
        "link", "add", "link", "eth0", "name", "eth0.30", "type", "vlan", "id", "30",
    ])
    .expect("vlan on veth");
    ns.ip(&[
        "link", "add", "link", "eth0.30", "name", "c0", "type", "ipvlan", "mode", "l2",
    ])
    .expect("ipvlan on vlan");
    ns.ip(&["link", "set", "trunk", "up"]).expect("trunk up");
    ns.ip(&["link", "set", "eth0", "up"]).expect("eth0 up");
    ns.ip(&["link", "set", "eth0.30", "up"])
        .expect("eth0.30 up");
    ns.ip(&["link", "set", "c0", "up"]).expect("c0 up");
    let details = ns.link_details("c0");
    assert_eq!(field(&details, &["link"]), "eth0.30");
    assert_eq!(field(&details, &["linkinfo", "info_kind"]), "ipvlan");
    // Administratively up; the carrier follows the veth asynchronously, so the
    // operational state is not checked here.
    let flags = details
        .get("flags")
        .and_then(Value::as_array)
        .unwrap_or_default();
    assert!(
        flags.iter().any(|f| f.as_str() == Some("UP")),
        "c0 is not up: {details}"
    );
}
