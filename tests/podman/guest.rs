//! The guest side of `cargo xtask podman-test`: Podman (Debian's package,
//! `network_backend = "cni"`) runs two containers on an ipvlan network whose
//! plugin binary is ours, and everything is read back.
//!
//! It runs in the QEMU guest as root, in the fresh network and mount
//! namespaces `tests/vm/isolate.sh` gives it, with Podman, crun, conmon and
//! their configuration in the initramfs (see `xtask/src/podman.rs`). It is
//! an example, not a test target: the VM test boot has no Podman, and
//! Podman's files (about 40 MiB) would slow every other VM test's boot.
//!
//! ```text
//! podman --rootfs DIR [--plant-leak]
//! ```
//!
//! `DIR` holds a static busybox and its applet links: `podman run --rootfs`
//! needs no image. The steps, each asserted by its exit status and by
//! reading back what it should have done:
//!
//! 1. Our binary is installed as `ipvlan` in `/usr/local/libexec/cni`, the
//!    directory Podman searches before `/usr/lib/cni`, where Debian's
//!    reference plugin stays untouched (compared byte for byte at the end).
//! 2. The master is a veth whose peer sits in a namespace holding the
//!    gateway's address, so the gateway answers pings.
//! 3. The conflist [`CONFLIST`] is written by hand into `/etc/cni/net.d`
//!    (Podman 4.3 refuses `-o parent` with the CNI backend); `podman network
//!    ls` and `inspect` list it; `ipvlan doctor` exits 0 and names our copy
//!    before the reference plugin, and the conflist.
//! 4. Two containers run (`podman run -d`); each has one ipvlan `eth0` in
//!    its namespace with a distinct address of the subnet, the one Podman
//!    reports, and a default route via the gateway; the state directory
//!    holds one attachment per container, keyed by Podman's container ID,
//!    and their two leases.
//! 5. Each container pings the other and the gateway (`podman exec
//!    --privileged`: containers lack `CAP_NET_RAW`). `podman stop` of one
//!    (our DEL: its attachment and lease gone, the other's kept), then
//!    `podman start` (our ADD under the same container ID, in a new
//!    namespace): attached and read back again, it pings. A third with
//!    `podman run --ip`: that address, given back at `podman rm -f`.
//!    `podman network reload` of the other (our DEL and ADD in its own
//!    namespace): its link made again, read back, it pings.
//! 6. `podman rm -f` of both, `podman network rm`: no ipvlan link in any
//!    network namespace of the guest, no namespace left by Podman, no
//!    attachment or lease in the state directory; the network record stays
//!    (it keeps the allocator's position, as the state model says) until
//!    `ipvlan network rm` removes it, after which the state directory holds
//!    no record.
//! 7. The same master and subnet with Debian's `host-local` as the IPAM
//!    plugin ([`HOST_LOCAL_CONFLIST`]), which our plugin runs once its link
//!    exists: a container gets an address from `rangeStart` on, host-local
//!    holds its lease, it pings the gateway; `podman rm -f` leaves no link
//!    and no lease, the networks' removal nothing.
//!
//! 8. A dual-stack network ([`DUAL_CONFLIST`]: our IPAM with an IPv4 and
//!    an IPv6 range): a container's two addresses, as Podman reports them,
//!    held on its `eth0` with a default route of each family; it pings the
//!    gateway over IPv6 and IPv4; `podman rm -f` leaves nothing.
//! 9. A container on [`NETWORK`] and an IPv6-only network at once: `eth0`
//!    and `eth1` on the one master, each with its network's address.
//!
//! `--plant-leak` leaves an ipvlan link of our master in the gateway's
//! namespace after `podman rm -f`, as a DEL that forgot its link would:
//! the run must fail, naming it.

use std::collections::BTreeSet;
use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use ipvlan::json::{self, Value};
use ipvlan::store::StateDir;

/// The network's conflist, exactly as the README shows it.
const CONFLIST: &str = r#"{
  "cniVersion": "1.0.0",
  "name": "podnet",
  "plugins": [
    {
      "type": "ipvlan",
      "master": "pdm0",
      "mode": "l2",
      "ipam": {
        "type": "ipvlan",
        "subnet": "10.89.0.0/24",
        "gateway": "10.89.0.1",
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
"#;
const NETWORK: &str = "podnet";
/// The same network with Debian's `host-local` as its IPAM plugin, which
/// our plugin delegates to once its link exists; made after [`NETWORK`]
/// is gone, on the same master and subnet, from `rangeStart` on.
const HOST_LOCAL_CONFLIST: &str = r#"{
  "cniVersion": "1.0.0",
  "name": "podhl",
  "plugins": [
    {
      "type": "ipvlan",
      "master": "pdm0",
      "mode": "l2",
      "ipam": {
        "type": "host-local",
        "subnet": "10.89.0.0/24",
        "rangeStart": "10.89.0.100",
        "gateway": "10.89.0.1",
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    }
  ]
}
"#;
const HOST_LOCAL_NETWORK: &str = "podhl";
/// A dual-stack network on the same master, made after the others are
/// gone: an IPv4 range from `rangeStart` on and an IPv6 subnet, with a
/// default route of each family.
const DUAL_CONFLIST: &str = r#"{
  "cniVersion": "1.0.0",
  "name": "pod46",
  "plugins": [
    {
      "type": "ipvlan",
      "master": "pdm0",
      "mode": "l2",
      "ipam": {
        "type": "ipvlan",
        "ranges": [
          [{"subnet": "10.89.0.0/24", "rangeStart": "10.89.0.150", "gateway": "10.89.0.1"}],
          [{"subnet": "fd00:89::/64", "gateway": "fd00:89::1"}]
        ],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
      }
    }
  ]
}
"#;
const DUAL_NETWORK: &str = "pod46";
/// An IPv6-only network on the same master, beside [`NETWORK`] in one
/// container.
const V6_CONFLIST: &str = r#"{
  "cniVersion": "1.0.0",
  "name": "pod6",
  "plugins": [
    {
      "type": "ipvlan",
      "master": "pdm0",
      "mode": "l2",
      "ipam": {"type": "ipvlan", "subnet": "fd00:96::/64"}
    }
  ]
}
"#;
const V6_NETWORK: &str = "pod6";
/// The gateway's IPv6 address on [`PEER`], for [`DUAL_NETWORK`].
const GATEWAY6: &str = "fd00:89::1";
/// Where host-local keeps its leases by default, one file per address.
const HOST_LOCAL_DIR: &str = "/var/lib/cni/networks";
const MASTER: &str = "pdm0";
/// The master's veth peer, in [`GATEWAY_NS`].
const PEER: &str = "pdm0gw";
const GATEWAY_NS: &str = "podman-gw";
const GATEWAY: Ipv4Addr = Ipv4Addr::new(10, 89, 0, 1);
const PREFIX_LEN: u8 = 24;
/// Podman's first CNI plugin directory.
const CNI_BIN_DIR: &str = "/usr/local/libexec/cni";
/// Debian's reference plugin (package `containernetworking-plugins`).
const REFERENCE_PLUGIN: &str = "/usr/lib/cni/ipvlan";
const CNI_CONF_DIR: &str = "/etc/cni/net.d";
/// Our default state directory: Podman starts the plugin without
/// `IPVLAN_STATE_DIR`.
const STATE_DIR: &str = "/var/lib/ipvlan";
const NETNS_DIR: &str = "/run/netns";
const CONTAINERS: [&str; 2] = ["pod-a", "pod-b"];
const PASS: &str = "PODMAN-TEST-PASS";
const FAIL: &str = "PODMAN-TEST-FAIL";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (rootfs, plant_leak) = match args.as_slice() {
        [flag, dir] if flag == "--rootfs" => (dir.clone(), false),
        [flag, dir, plant] if flag == "--rootfs" && plant == "--plant-leak" => (dir.clone(), true),
        _ => {
            eprintln!("usage: podman --rootfs DIR [--plant-leak]");
            return ExitCode::from(2);
        }
    };
    let start = Instant::now();
    match run(&rootfs, plant_leak) {
        Ok(()) => {
            println!("{PASS} in {:.1} s", start.elapsed().as_secs_f64());
            ExitCode::SUCCESS
        }
        Err(error) => {
            println!("{FAIL}: {error}");
            diagnose();
            ExitCode::FAILURE
        }
    }
}

/// Prints what a failure leaves, for the report.
fn diagnose() {
    for (program, args) in [
        ("podman", &["ps", "-a"][..]),
        ("podman", &["network", "ls"][..]),
        ("/usr/sbin/ip", &["-d", "link"][..]),
        ("ls", &["-lR", STATE_DIR, NETNS_DIR][..]),
    ] {
        match exec(program, args) {
            Ok(done) => println!(
                "podman-test: $ {program} {} (exit {})\n{}{}",
                args.join(" "),
                done.code,
                done.stdout,
                done.stderr
            ),
            Err(error) => println!("podman-test: {error}"),
        }
    }
}

fn run(rootfs: &str, plant_leak: bool) -> Result<(), String> {
    let clock = Instant::now();
    let step = |what: &str| {
        println!(
            "podman-test: {what} ({:.1} s)",
            clock.elapsed().as_secs_f64()
        )
    };
    prepare()?;
    println!("podman-test: {}", must("podman", &["--version"])?.trim());
    let reference = install()?;
    step("installed as ipvlan in the CNI bin dir");
    topology()?;
    write(
        &Path::new(CNI_CONF_DIR).join(format!("{NETWORK}.conflist")),
        CONFLIST,
    )?;
    check_listed()?;
    step("podman network ls lists the network");
    check_doctor()?;

    let mut ids = Vec::new();
    for name in CONTAINERS {
        ids.push(run_container(name, NETWORK, rootfs)?);
        step(&format!("podman run -d --name {name}"));
    }
    let mut addresses = Vec::new();
    for (name, id) in CONTAINERS.iter().zip(&ids) {
        addresses.push(check_container(name, id, NETWORK)?);
    }
    if addresses[0] == addresses[1] {
        return Err(format!("both containers got {}", addresses[0]));
    }
    check_attached(&ids, &addresses)?;
    step("two containers, distinct addresses, read back");

    for (index, name) in CONTAINERS.iter().enumerate() {
        let other = addresses[1 - index];
        for target in [other, GATEWAY] {
            ping(name, target)?;
        }
    }
    step("each container pings the other and the gateway");

    // A stop runs our DEL and a start our ADD again, with the same
    // container ID (and a new namespace): the attachment and its lease go,
    // then come back whole.
    let stopped = CONTAINERS[0];
    must("podman", &["stop", "-t", "0", stopped])?;
    check_attached(&ids[1..], &addresses[1..])?;
    must("podman", &["start", stopped])?;
    attached_again(0, &ids, &mut addresses)?;
    step("podman stop and start: DEL, then ADD again under the same ID");

    // An address asked for (`podman run --ip`), which Podman passes to the
    // plugins in `CNI_ARGS` as `IP=` (our conflist declares no `ips`
    // capability, so libcni puts no `runtimeConfig.ips`): our IPAM hands
    // out that one, and gives it back at `podman rm -f`.
    let fixed = Ipv4Addr::new(10, 89, 0, 77);
    let fixed_text = fixed.to_string();
    let options = ["--network", NETWORK, "--ip", fixed_text.as_str()];
    let fixed_id = run_container_with("pod-ip", &options, rootfs)?;
    let got = check_container("pod-ip", &fixed_id, NETWORK)?;
    if got != fixed {
        return Err(format!(
            "podman run --ip {fixed}: the container holds {got}"
        ));
    }
    must("podman", &["rm", "-f", "-t", "0", "pod-ip"])?;
    check_attached(&ids, &addresses)?;
    step("podman run --ip: that address, given back at rm -f");

    // `podman network reload` (after a firewall flush, say) runs our DEL
    // and our ADD again in the container's own namespace: its link is made
    // again (a new ifindex).
    let reloaded = CONTAINERS[1];
    let before = eth0_index(reloaded)?;
    must("podman", &["network", "reload", reloaded])?;
    if eth0_index(reloaded)? == before {
        return Err(format!(
            "podman network reload {reloaded}: eth0 (ifindex {before}) was not made again"
        ));
    }
    attached_again(1, &ids, &mut addresses)?;
    step("podman network reload: DEL and ADD in the same namespace");

    let mut rm = vec!["rm", "-f", "-t", "0"];
    rm.extend(CONTAINERS);
    must("podman", &rm)?;
    if plant_leak {
        ip(&[
            "link", "add", "leak0", "link", MASTER, "type", "ipvlan", "mode", "l2",
        ])?;
        ip(&["link", "set", "leak0", "netns", GATEWAY_NS])?;
        println!("podman-test: planted ipvlan link leak0 in {GATEWAY_NS}");
    }
    let left = must("podman", &["ps", "-a", "--format", "{{.Names}}"])?;
    if !left.trim().is_empty() {
        return Err(format!("podman ps -a after rm -f: {left:?}"));
    }
    check_nothing_left()?;
    step("podman rm -f: no link, no namespace, no lease left");

    must("podman", &["network", "rm", NETWORK])?;
    let conf = Path::new(CNI_CONF_DIR).join(format!("{NETWORK}.conflist"));
    if conf.exists() {
        return Err(format!("podman network rm left {}", conf.display()));
    }
    let listed = must("podman", &["network", "ls", "--format", "{{.Name}}"])?;
    if listed.lines().any(|l| l.trim() == NETWORK) {
        return Err(format!("podman network ls after rm: {listed:?}"));
    }
    check_record_idle()?;
    must("ipvlan", &["network", "rm", NETWORK])?;
    check_state_empty()?;
    check_nothing_left()?;
    let after = fs::read(REFERENCE_PLUGIN).map_err(|e| format!("{REFERENCE_PLUGIN}: {e}"))?;
    if after != reference {
        return Err(format!("{REFERENCE_PLUGIN} changed during the test"));
    }
    step("podman network rm, ipvlan network rm: nothing left");
    host_local(rootfs)?;
    step("with host-local as the IPAM plugin: attached, pinged, removed");
    dual_stack(rootfs)?;
    step("dual-stack: both addresses reported, held, routed; pinged over IPv6; removed");
    two_networks(rootfs)?;
    step("one container on two networks: eth0 and eth1 on the one master; removed");
    Ok(())
}

/// A container on [`DUAL_NETWORK`]: Podman reports an address of each
/// family from our result, the namespace holds both on `eth0` with a
/// default route of each family, and the container pings the gateway over
/// IPv6; `podman rm -f` and the networks' removal leave nothing.
fn dual_stack(rootfs: &str) -> Result<(), String> {
    let gateway6 = format!("{GATEWAY6}/64");
    ip(&[
        "-n", GATEWAY_NS, "addr", "add", &gateway6, "dev", PEER, "nodad",
    ])?;
    let name = "pod-46";
    one_container(rootfs, (DUAL_NETWORK, DUAL_CONFLIST), name, 150)?;
    let inspect = parse(&must("podman", &["inspect", name])?)?;
    let network = first(&inspect)?
        .get("NetworkSettings")
        .and_then(|s| s.get("Networks"))
        .and_then(|n| n.get(DUAL_NETWORK))
        .ok_or(format!("podman inspect {name}: not on {DUAL_NETWORK}"))?;
    let reported = network
        .get("GlobalIPv6Address")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let gateway = network
        .get("IPv6Gateway")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !reported.starts_with("fd00:89::") || gateway != GATEWAY6 {
        return Err(format!(
            "podman inspect {name}: IPv6 {reported:?} via {gateway:?}, not one of fd00:89::/64 via {GATEWAY6}"
        ));
    }
    let sandbox = sandbox_of(name, first(&inspect)?)?;
    let held = in_netns(
        &sandbox,
        &["-6", "-j", "addr", "show", "dev", "eth0", "scope", "global"],
    )?;
    let held: Vec<&str> = array(&held)
        .iter()
        .flat_map(|link| array(link.get("addr_info").unwrap_or(&Value::Null)))
        .filter_map(|a| a.get("local").and_then(Value::as_str))
        .collect();
    if held != [reported.as_str()] {
        return Err(format!(
            "{name}'s eth0 holds {held:?}, Podman reports {reported}"
        ));
    }
    let routes = in_netns(&sandbox, &["-6", "-j", "route", "show", "default"])?;
    let via: Vec<&str> = array(&routes)
        .iter()
        .filter(|r| r.get("dev").and_then(Value::as_str) == Some("eth0"))
        .filter_map(|r| r.get("gateway").and_then(Value::as_str))
        .collect();
    if via != [GATEWAY6] {
        return Err(format!(
            "{name}'s IPv6 default routes through eth0: via {via:?}"
        ));
    }
    must(
        "podman",
        &[
            "exec",
            "--privileged",
            name,
            "ping",
            "-6",
            "-c",
            "1",
            "-W",
            "10",
            GATEWAY6,
        ],
    )
    .map_err(|e| format!("{name} cannot ping {GATEWAY6}: {e}"))?;
    ping(name, GATEWAY)?;
    remove_one(name, DUAL_NETWORK, || Ok(()))
}

/// A container on two of our networks at once (`--network A,B`), both on
/// the one master ([`NETWORK`] again and [`V6_CONFLIST`]'s): two ADDs into
/// one namespace, as `eth0` and `eth1`, each holding its network's
/// address; both DELs at `podman rm -f`, and the networks removed.
fn two_networks(rootfs: &str) -> Result<(), String> {
    for (network, conflist) in [(NETWORK, CONFLIST), (V6_NETWORK, V6_CONFLIST)] {
        let conf = Path::new(CNI_CONF_DIR).join(format!("{network}.conflist"));
        write(&conf, conflist)?;
    }
    let name = "pod-2n";
    let both = format!("{NETWORK},{V6_NETWORK}");
    run_container(name, &both, rootfs)?;
    let inspect = parse(&must("podman", &["inspect", name])?)?;
    let sandbox = sandbox_of(name, first(&inspect)?)?;
    let links = in_netns(&sandbox, &["-j", "-d", "addr", "show"])?;
    let mut held: Vec<(String, String)> = array(&links)
        .iter()
        .filter(|l| {
            l.get("linkinfo")
                .and_then(|i| i.get("info_kind"))
                .and_then(Value::as_str)
                == Some("ipvlan")
        })
        .flat_map(|l| {
            let ifname = l.get("ifname").and_then(Value::as_str).unwrap_or("");
            array(l.get("addr_info").unwrap_or(&Value::Null))
                .iter()
                .filter(|a| a.get("scope").and_then(Value::as_str) == Some("global"))
                .filter_map(move |a| {
                    let local = a.get("local").and_then(Value::as_str)?;
                    Some((ifname.to_string(), local.to_string()))
                })
        })
        .collect();
    held.sort();
    let names: Vec<&str> = held.iter().map(|(ifname, _)| ifname.as_str()).collect();
    let v4 = held.iter().any(|(_, a)| a.starts_with("10.89.0."));
    let v6 = held.iter().any(|(_, a)| a.starts_with("fd00:96::"));
    if names != ["eth0", "eth1"] || !v4 || !v6 {
        return Err(format!(
            "{name} holds {held:?}: not one address of each network, on eth0 and eth1"
        ));
    }
    println!("podman-test: {name} holds {held:?}");
    ping(name, GATEWAY)?;
    must("podman", &["rm", "-f", "-t", "0", name])?;
    check_nothing_left()?;
    for network in [NETWORK, V6_NETWORK] {
        must("podman", &["network", "rm", network])?;
        must("ipvlan", &["network", "rm", network])?;
    }
    check_state_empty()?;
    check_nothing_left()
}

/// Writes `network`'s conflist, runs container `name` on it and reads it
/// back ([`check_container`]); its address must be `.first` or above.
fn one_container(
    rootfs: &str,
    (network, conflist): (&str, &str),
    name: &str,
    first: u8,
) -> Result<Ipv4Addr, String> {
    write(
        &Path::new(CNI_CONF_DIR).join(format!("{network}.conflist")),
        conflist,
    )?;
    let id = run_container(name, network, rootfs)?;
    let address = check_container(name, &id, network)?;
    if address.octets()[3] < first {
        return Err(format!(
            "{name} holds {address}, below the range's start 10.89.0.{first}"
        ));
    }
    Ok(address)
}

/// `podman rm -f` of container `name`, then `after_rm`'s checks, then the
/// removal of `network` by Podman and by us: nothing may be left.
fn remove_one(
    name: &str,
    network: &str,
    after_rm: impl FnOnce() -> Result<(), String>,
) -> Result<(), String> {
    must("podman", &["rm", "-f", "-t", "0", name])?;
    check_nothing_left()?;
    after_rm()?;
    must("podman", &["network", "rm", network])?;
    must("ipvlan", &["network", "rm", network])?;
    check_state_empty()?;
    check_nothing_left()
}

/// A container on [`HOST_LOCAL_NETWORK`]: host-local, which our plugin
/// runs once its link exists, leases its address; the container pings
/// the gateway; `podman rm -f` leaves no link and no lease, and the
/// networks' removal nothing.
fn host_local(rootfs: &str) -> Result<(), String> {
    let name = "pod-hl";
    let address = one_container(rootfs, (HOST_LOCAL_NETWORK, HOST_LOCAL_CONFLIST), name, 100)?;
    let leases = Path::new(HOST_LOCAL_DIR).join(HOST_LOCAL_NETWORK);
    let lease = leases.join(address.to_string());
    if !lease.is_file() {
        return Err(format!("host-local holds no lease {}", lease.display()));
    }
    ping(name, GATEWAY)?;
    remove_one(name, HOST_LOCAL_NETWORK, || match lease.exists() {
        true => Err(format!(
            "podman rm -f left host-local's lease {}",
            lease.display()
        )),
        false => Ok(()),
    })
}

/// One ping from container `name` to `target` (`podman exec --privileged`:
/// containers lack `CAP_NET_RAW`) must be answered.
fn ping(name: &str, target: Ipv4Addr) -> Result<(), String> {
    let target = target.to_string();
    must(
        "podman",
        &[
            "exec",
            "--privileged",
            name,
            "ping",
            "-c",
            "1",
            "-W",
            "10",
            &target,
        ],
    )
    .map(drop)
    .map_err(|e| format!("{name} cannot ping {target}: {e}"))
}

/// Container `CONTAINERS[which]`, attached again (a start, a reload): read
/// back, its address (stored in `addresses`) not the other's, both
/// attachments and leases in the store, and it pings the other and the
/// gateway.
fn attached_again(which: usize, ids: &[String], addresses: &mut [Ipv4Addr]) -> Result<(), String> {
    let name = CONTAINERS[which];
    addresses[which] = check_container(name, &ids[which], NETWORK)?;
    let other = addresses[1 - which];
    if addresses[which] == other {
        return Err(format!(
            "both containers hold {other} after {name} was attached again"
        ));
    }
    check_attached(ids, addresses)?;
    for target in [other, GATEWAY] {
        ping(name, target)?;
    }
    Ok(())
}

/// The ifindex of `eth0` in container `name`'s namespace.
fn eth0_index(name: &str) -> Result<u64, String> {
    let inspect = parse(&must("podman", &["inspect", name])?)?;
    let sandbox = sandbox_of(name, first(&inspect)?)?;
    let links = in_netns(&sandbox, &["-j", "link", "show", "eth0"])?;
    first(&links)?
        .get("ifindex")
        .and_then(Value::as_u64)
        .ok_or(format!("{name}: no eth0"))
}

/// The namespace path (`NetworkSettings.SandboxKey`) of container `name`,
/// from its `podman inspect` object.
fn sandbox_of(name: &str, container: &Value) -> Result<String, String> {
    container
        .get("NetworkSettings")
        .and_then(|s| s.get("SandboxKey"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or(format!("podman inspect {name}: no SandboxKey"))
}

/// `podman run -d --name NAME --network NETWORK` of a `sleep`; the
/// container's ID.
fn run_container(name: &str, network: &str, rootfs: &str) -> Result<String, String> {
    run_container_with(name, &["--network", network], rootfs)
}

/// [`run_container`] with `options` for the network (`--network`, `--ip`).
fn run_container_with(name: &str, options: &[&str], rootfs: &str) -> Result<String, String> {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(options);
    args.extend(["--rootfs", rootfs, "sleep", "1000"]);
    let id = must("podman", &args)?;
    let id = id.trim().to_string();
    if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "podman run -d --name {name} printed {id:?}, not an ID"
        ));
    }
    Ok(id)
}

/// What Podman needs beyond the harness's guest: cgroup2, `/dev/shm`,
/// `/var/tmp`, the CNI directories.
fn prepare() -> Result<(), String> {
    for dir in [
        "/sys/fs/cgroup",
        "/dev/shm",
        "/var/tmp",
        CNI_BIN_DIR,
        CNI_CONF_DIR,
    ] {
        fs::create_dir_all(dir).map_err(|e| format!("{dir}: {e}"))?;
    }
    must("mount", &["-t", "cgroup2", "none", "/sys/fs/cgroup"])?;
    must("mount", &["-t", "tmpfs", "tmpfs", "/dev/shm"])?;
    Ok(())
}

/// Copies our binary to the CNI bin dir, never over the reference plugin;
/// returns the reference plugin's bytes, to compare at the end.
fn install() -> Result<Vec<u8>, String> {
    let ours = ipvlan_bin();
    let reference = fs::read(REFERENCE_PLUGIN).map_err(|e| format!("{REFERENCE_PLUGIN}: {e}"))?;
    let binary = fs::read(&ours).map_err(|e| format!("{ours}: {e}"))?;
    if binary == reference {
        return Err(format!(
            "{REFERENCE_PLUGIN} is our binary, not the reference plugin"
        ));
    }
    let target = Path::new(CNI_BIN_DIR).join("ipvlan");
    fs::copy(&ours, &target).map_err(|e| format!("{ours} -> {}: {e}", target.display()))?;
    Ok(reference)
}

/// The master `pdm0`, a veth whose peer holds the gateway's address in its
/// own namespace.
fn topology() -> Result<(), String> {
    ip(&["link", "add", MASTER, "type", "veth", "peer", "name", PEER])?;
    ip(&["netns", "add", GATEWAY_NS])?;
    ip(&["link", "set", PEER, "netns", GATEWAY_NS])?;
    let gateway = format!("{GATEWAY}/{PREFIX_LEN}");
    ip(&["-n", GATEWAY_NS, "addr", "add", &gateway, "dev", PEER])?;
    ip(&["-n", GATEWAY_NS, "link", "set", PEER, "up"])?;
    ip(&["-n", GATEWAY_NS, "link", "set", "lo", "up"])?;
    ip(&["link", "set", MASTER, "up"])?;
    Ok(())
}

/// `podman network ls` and `inspect` show the conflist's network.
fn check_listed() -> Result<(), String> {
    let listed = must(
        "podman",
        &["network", "ls", "--format", "{{.Name}} {{.Driver}}"],
    )?;
    if !listed
        .lines()
        .any(|l| l.trim() == format!("{NETWORK} ipvlan"))
    {
        return Err(format!(
            "podman network ls does not list {NETWORK} (driver ipvlan): {listed:?}"
        ));
    }
    let inspect = parse(&must("podman", &["network", "inspect", NETWORK])?)?;
    let network = first(&inspect)?;
    let interface = network.get("network_interface").and_then(Value::as_str);
    if interface != Some(MASTER) {
        return Err(format!(
            "podman network inspect {NETWORK}: network_interface {interface:?}, not {MASTER}"
        ));
    }
    Ok(())
}

/// `ipvlan doctor` finds our copy before the reference plugin and the
/// conflist's IPAM served by us.
fn check_doctor() -> Result<(), String> {
    let report = must("ipvlan", &["doctor"])?;
    let expected = [
        format!(
            "ok   cni plugin: {CNI_BIN_DIR}/ipvlan: this program; \
             {REFERENCE_PLUGIN}: another program (the reference plugin?)"
        ),
        format!("ok   cni configs: {NETWORK} ({CNI_CONF_DIR}/{NETWORK}.conflist): ipam ipvlan"),
    ];
    for line in expected {
        if !report.lines().any(|l| l == line) {
            return Err(format!("ipvlan doctor lacks the line {line:?}:\n{report}"));
        }
    }
    Ok(())
}

/// One container's namespace as the kernel holds it, against what Podman
/// reports; its address.
fn check_container(name: &str, id: &str, network_name: &str) -> Result<Ipv4Addr, String> {
    let inspect = parse(&must("podman", &["inspect", name])?)?;
    let container = first(&inspect)?;
    let found_id = container.get("Id").and_then(Value::as_str);
    if found_id != Some(id) {
        return Err(format!(
            "podman inspect {name}: Id {found_id:?}, run printed {id}"
        ));
    }
    let settings = container
        .get("NetworkSettings")
        .ok_or(format!("podman inspect {name}: no NetworkSettings"))?;
    let sandbox = sandbox_of(name, container)?;
    let network = settings
        .get("Networks")
        .and_then(|n| n.get(network_name))
        .ok_or(format!("podman inspect {name}: not on {network_name}"))?;
    let reported = network
        .get("IPAddress")
        .and_then(Value::as_str)
        .unwrap_or("");
    let reported_gateway = network.get("Gateway").and_then(Value::as_str).unwrap_or("");
    if reported_gateway != GATEWAY.to_string() {
        return Err(format!(
            "podman inspect {name}: gateway {reported_gateway:?}, not {GATEWAY}"
        ));
    }

    let links = in_netns(&sandbox, &["-j", "-d", "link", "show"])?;
    let mut names: Vec<&str> = array(&links)
        .iter()
        .filter_map(|l| l.get("ifname").and_then(Value::as_str))
        .collect();
    // Listed in the order of the kernel's index hash (the index modulo
    // 256): the link's random index puts it before `lo` once in 256.
    names.sort_by_key(|name| (*name != "lo", *name));
    if names != ["lo", "eth0"] {
        return Err(format!(
            "{name}'s namespace holds {names:?}, not lo and eth0"
        ));
    }
    let eth0 = array(&links)
        .iter()
        .find(|l| l.get("ifname").and_then(Value::as_str) == Some("eth0"))
        .ok_or("no eth0")?;
    let info = eth0.get("linkinfo");
    let kind = info
        .and_then(|i| i.get("info_kind"))
        .and_then(Value::as_str);
    let mode = info
        .and_then(|i| i.get("info_data"))
        .and_then(|d| d.get("mode"))
        .and_then(Value::as_str);
    if (kind, mode) != (Some("ipvlan"), Some("l2")) {
        return Err(format!(
            "{name}'s eth0 is {kind:?} mode {mode:?}, not ipvlan l2"
        ));
    }
    let addrs = in_netns(&sandbox, &["-j", "-4", "addr", "show", "dev", "eth0"])?;
    let held: Vec<String> = array(&addrs)
        .iter()
        .flat_map(|l| l.get("addr_info").and_then(Value::as_array).unwrap_or(&[]))
        .filter_map(|a| {
            let local = a.get("local").and_then(Value::as_str)?;
            let len = a.get("prefixlen").and_then(Value::as_u64)?;
            Some(format!("{local}/{len}"))
        })
        .collect();
    let [address] = held.as_slice() else {
        return Err(format!(
            "{name}'s eth0 holds {held:?}, not one IPv4 address"
        ));
    };
    let (local, len) = address.split_once('/').ok_or("no prefix")?;
    let local: Ipv4Addr = local.parse().map_err(|e| format!("{local}: {e}"))?;
    let subnet = u32::from(GATEWAY) & !0xff;
    if len != PREFIX_LEN.to_string() || u32::from(local) & !0xff != subnet || local == GATEWAY {
        return Err(format!(
            "{name}'s eth0 holds {address}, not an address of 10.89.0.0/24"
        ));
    }
    if reported != local.to_string() {
        return Err(format!(
            "podman inspect {name} reports {reported:?}, the namespace holds {local}"
        ));
    }
    let routes = in_netns(&sandbox, &["-j", "-4", "route", "show", "default"])?;
    let via: Vec<&str> = array(&routes)
        .iter()
        .filter_map(|r| r.get("gateway").and_then(Value::as_str))
        .collect();
    if via != [GATEWAY.to_string().as_str()] {
        return Err(format!(
            "{name}'s default route goes via {via:?}, not {GATEWAY}"
        ));
    }
    println!("podman-test: {name} ({sandbox}): eth0 ipvlan l2 {address}, default via {GATEWAY}");
    Ok(local)
}

/// Our state directory holds one attachment per container, keyed by
/// Podman's container ID, and their leases; `ipvlan network inspect` shows
/// them.
fn check_attached(ids: &[String], addresses: &[Ipv4Addr]) -> Result<(), String> {
    let store = StateDir::open(STATE_DIR).map_err(|e| format!("{STATE_DIR}: {e}"))?;
    let record = store.network_by_name(NETWORK).ok_or(format!(
        "no network record {NETWORK} in {STATE_DIR}: was our plugin run?"
    ))?;
    let endpoints: BTreeSet<String> = store
        .endpoints_of(&record.id)
        .map_err(|e| e.to_string())?
        .items
        .into_iter()
        .map(|e| e.id)
        .collect();
    let expected: BTreeSet<String> = ids
        .iter()
        .map(|id| ipvlan::driver::attachment_id(id, "eth0"))
        .collect();
    if endpoints != expected {
        return Err(format!(
            "attachments of {NETWORK}: {endpoints:?}, expected {expected:?}"
        ));
    }
    let leases: BTreeSet<(IpAddr, String)> = store
        .addresses(&record)
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    let expected: BTreeSet<(IpAddr, String)> = addresses
        .iter()
        .zip(ids)
        .map(|(a, id)| (IpAddr::V4(*a), ipvlan::driver::attachment_id(id, "eth0")))
        .collect();
    if leases != expected {
        return Err(format!(
            "leases of {NETWORK}: {leases:?}, expected {expected:?}"
        ));
    }
    let shown: BTreeSet<String> = inspect_containers()?
        .iter()
        .filter_map(|(_, c)| c.get("IPv4Address").and_then(Value::as_str))
        .map(|a| a.split('/').next().unwrap_or(a).to_string())
        .collect();
    let expected: BTreeSet<String> = addresses.iter().map(|a| a.to_string()).collect();
    if shown != expected {
        return Err(format!(
            "ipvlan network inspect {NETWORK} shows {shown:?}, expected {expected:?}"
        ));
    }
    Ok(())
}

/// `Containers` of `ipvlan network inspect NETWORK`, after checking that
/// the network is the conflist's, made by our plugin: parent `pdm0`, mode
/// l2, the CNI mark (the `cni.config` option).
fn inspect_containers() -> Result<Vec<(String, Value)>, String> {
    let inspect = parse(&must("ipvlan", &["network", "inspect", NETWORK])?)?;
    let network = first(&inspect)?;
    let options = network.get("Options");
    let option = |key: &str| options.and_then(|o| o.get(key)).and_then(Value::as_str);
    if (option("parent"), option("ipvlan_mode")) != (Some(MASTER), Some("l2"))
        || option(ipvlan::driver::CNI_MARK).is_none()
    {
        return Err(format!(
            "ipvlan network inspect {NETWORK}: Options {options:?}, expected parent {MASTER}, \
             ipvlan_mode l2 and the cni.config mark"
        ));
    }
    Ok(network
        .get("Containers")
        .and_then(Value::as_object)
        .ok_or("ipvlan network inspect: no Containers")?
        .to_vec())
}

/// No ipvlan link in any network namespace of the guest (each process's
/// and each named one), no namespace but the gateway's in `/run/netns`.
fn check_nothing_left() -> Result<(), String> {
    let named: Vec<String> = fs::read_dir(NETNS_DIR)
        .map_err(|e| format!("{NETNS_DIR}: {e}"))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if named != [GATEWAY_NS] {
        return Err(format!(
            "{NETNS_DIR} holds {named:?}, not only {GATEWAY_NS}"
        ));
    }
    let mut namespaces = vec![format!("{NETNS_DIR}/{GATEWAY_NS}")];
    let mut seen = BTreeSet::new();
    for entry in fs::read_dir("/proc").map_err(|e| format!("/proc: {e}"))? {
        let Ok(entry) = entry else { continue };
        let path = entry.path().join("ns/net");
        // A process that exits meanwhile has no namespace to check.
        if let Ok(target) = fs::read_link(&path) {
            if seen.insert(target) {
                namespaces.push(path.to_string_lossy().into_owned());
            }
        }
    }
    for ns in &namespaces {
        let links = match in_netns(ns, &["-j", "-d", "link", "show"]) {
            Ok(links) => links,
            Err(_) if ns.starts_with("/proc/") && !Path::new(ns).exists() => continue,
            Err(e) => return Err(e),
        };
        let ipvlans: Vec<&str> = array(&links)
            .iter()
            .filter(|l| {
                l.get("linkinfo")
                    .and_then(|i| i.get("info_kind"))
                    .and_then(Value::as_str)
                    == Some("ipvlan")
            })
            .filter_map(|l| l.get("ifname").and_then(Value::as_str))
            .collect();
        if !ipvlans.is_empty() {
            return Err(format!("ipvlan links left in {ns}: {ipvlans:?}"));
        }
    }
    let store = StateDir::open(STATE_DIR).map_err(|e| format!("{STATE_DIR}: {e}"))?;
    let endpoints = store.endpoints().map_err(|e| e.to_string())?.items;
    if !endpoints.is_empty() {
        let ids: Vec<String> = endpoints.into_iter().map(|e| e.id).collect();
        return Err(format!("attachments left in {STATE_DIR}: {ids:?}"));
    }
    for network in store.networks().map_err(|e| e.to_string())?.items {
        let leases = store.addresses(&network).map_err(|e| e.to_string())?;
        if !leases.is_empty() {
            return Err(format!("leases left on {}: {leases:?}", network.name));
        }
    }
    println!(
        "podman-test: no ipvlan link in {} namespaces, no attachment, no lease",
        namespaces.len()
    );
    Ok(())
}

/// After `podman network rm`: the record stays, idle (the runtime tells a
/// plugin nothing when a network goes).
fn check_record_idle() -> Result<(), String> {
    let store = StateDir::open(STATE_DIR).map_err(|e| format!("{STATE_DIR}: {e}"))?;
    if store.network_by_name(NETWORK).is_none() {
        return Err(format!("no record {NETWORK} after podman network rm"));
    }
    let containers = inspect_containers()?;
    if !containers.is_empty() {
        return Err(format!("ipvlan network inspect {NETWORK}: {containers:?}"));
    }
    Ok(())
}

/// After `ipvlan network rm`: no network record, no endpoint or address
/// directory.
fn check_state_empty() -> Result<(), String> {
    let store = StateDir::open(STATE_DIR).map_err(|e| format!("{STATE_DIR}: {e}"))?;
    let networks = store.networks().map_err(|e| e.to_string())?.items;
    if !networks.is_empty() {
        let names: Vec<String> = networks.into_iter().map(|n| n.name).collect();
        return Err(format!("networks left in {STATE_DIR}: {names:?}"));
    }
    let listed = must("ipvlan", &["network", "ls", "-q"])?;
    if !listed.trim().is_empty() {
        return Err(format!("ipvlan network ls -q: {listed:?}"));
    }
    for dir in ["endpoints", "ipam"] {
        let path = Path::new(STATE_DIR).join(dir);
        let left: Vec<String> = fs::read_dir(&path)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        if !left.is_empty() {
            return Err(format!("{} holds {left:?}", path.display()));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------- helpers

fn ipvlan_bin() -> String {
    std::env::var("IPVLAN_BIN").unwrap_or_else(|_| "/usr/bin/ipvlan".to_string())
}

/// What a finished command gave back.
struct Finished {
    code: i32,
    stdout: String,
    stderr: String,
}

fn exec(program: &str, args: &[&str]) -> Result<Finished, String> {
    let program = if program == "ipvlan" {
        ipvlan_bin()
    } else {
        program.to_string()
    };
    let out = Command::new(&program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{program} {}: {e}", args.join(" ")))?;
    Ok(Finished {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Runs a command that must exit 0; its stdout. The error holds everything
/// it printed.
fn must(program: &str, args: &[&str]) -> Result<String, String> {
    let done = exec(program, args)?;
    if done.code != 0 {
        return Err(format!(
            "`{program} {}` exited {}; stdout: {:?}; stderr: {:?}",
            args.join(" "),
            done.code,
            done.stdout.trim(),
            done.stderr.trim()
        ));
    }
    Ok(done.stdout)
}

fn ip(args: &[&str]) -> Result<String, String> {
    must("/usr/sbin/ip", args)
}

/// iproute2's JSON for `args`, run in the network namespace at `path`.
fn in_netns(path: &str, args: &[&str]) -> Result<Value, String> {
    let net = format!("--net={path}");
    let mut full = vec![net.as_str(), "/usr/sbin/ip"];
    full.extend_from_slice(args);
    let text = must("nsenter", &full)?;
    let text = if text.trim().is_empty() { "[]" } else { &text };
    parse(text)
}

fn parse(text: &str) -> Result<Value, String> {
    json::parse(text).map_err(|e| format!("not JSON ({e}): {text:?}"))
}

fn array(value: &Value) -> &[Value] {
    value.as_array().unwrap_or(&[])
}

fn first(value: &Value) -> Result<&Value, String> {
    array(value)
        .first()
        .ok_or_else(|| "an empty JSON array".to_string())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conflist_is_what_the_readme_shows() {
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(CONFLIST),
            "README.md must show the conflist of tests/podman/guest.rs verbatim"
        );
        let doc = json::parse(CONFLIST).unwrap();
        assert_eq!(doc.get("name").and_then(Value::as_str), Some(NETWORK));
        let plugin = &doc.get("plugins").and_then(Value::as_array).unwrap()[0];
        assert_eq!(plugin.get("master").and_then(Value::as_str), Some(MASTER));
        let ipam = plugin.get("ipam").unwrap();
        assert_eq!(
            ipam.get("gateway").and_then(Value::as_str),
            Some(GATEWAY.to_string().as_str())
        );
    }
}
