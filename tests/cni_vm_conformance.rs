//! Conformance with the reference `ipvlan` plugin (Debian's
//! `containernetworking-plugins`), case by case: every case of the
//! conformance table runs twice, once against our binary and once against
//! the reference, with the same configs and the same environment, each
//! side in a fresh "host" namespace of its own (a dummy master `m0`, its
//! own container namespaces, its own `CNI_PATH` directory holding its
//! `ipvlan` beside Debian's `host-local`, a fresh host-local `dataDir` and,
//! for ours, a fresh state directory). Each step's answer is normalised
//! (keys sorted, empty `dns` dropped; MACs, namespace paths, the
//! `dataDir`, interface indices, the reference's Go pointers and random
//! temporary link names masked; error messages compared only where the
//! sides are listed as differing) and
//! the two sides compared: [`Expect::Same`], or [`Expect::Differs`] with
//! the reason and both sides' answers at the steps that differ, asserted
//! exactly, so that a change on either side fails the test.
//!
//! `cargo xtask vm-test --test cni_vm_conformance`.

mod vm_support;

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use ipvlan::json::{self, Value};
use ipvlan::netns::{self, Netns};
use ipvlan::rtnl::{Handle, LinkSpec};
use vm_support::{ip, ip_json};

/// Debian's reference plugins (where the harness copies them).
const REFERENCE_DIR: &str = "/usr/lib/cni";
/// Everything of this test in the guest.
const ROOT: &str = "/tmp/ipvlan-cni-conformance";
/// Where named namespaces live (iproute2's place).
const RUN_DIR: &str = "/run/netns";
/// Cases run at once (each on its own namespaces and directories).
const WORKERS: usize = 4;

fn binary() -> String {
    std::env::var("IPVLAN_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_ipvlan").to_string())
}

/// The config most cases use: Debian's host-local hands out the addresses
/// on both sides.
const BASE: &str = r#"{"cniVersion": "1.0.0", "name": "net", "type": "ipvlan", "master": "m0",
 "ipam": {"type": "host-local", "subnet": "10.78.0.0/24", "dataDir": "$DATA",
          "routes": [{"dst": "0.0.0.0/0"}]}}"#;

/// [`BASE`] with `from` replaced by `to` (a key changed or added).
fn base(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from}");
    BASE.replacen(from, to, 1)
}

/// [`BASE`] without `master`.
fn no_master() -> String {
    base(r#", "master": "m0""#, "")
}

/// Which side's plugin runs a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Ours,
    Reference,
}

impl Side {
    fn tag(self) -> &'static str {
        match self {
            Side::Ours => "o",
            Side::Reference => "r",
        }
    }

    fn other(self) -> Side {
        match self {
            Side::Ours => Side::Reference,
            Side::Reference => Side::Ours,
        }
    }

    /// The side's `CNI_PATH` directory: its `ipvlan` and Debian's
    /// `host-local`.
    fn bin_dir(self) -> PathBuf {
        Path::new(ROOT).join(format!("bin-{}", self.tag()))
    }
}

/// What a call puts in `prevResult`.
#[derive(Clone, Copy, Debug)]
enum Prev {
    None,
    /// The last successful ADD's result, as a runtime caches it.
    Last,
    /// That result with another MAC for the interface.
    LastOtherMac,
    /// That result with a host interface of a later plugin beside ours
    /// (`bandwidth`'s `ifb`), as the cached result of a chain holds it.
    LastWithHostLink,
}

/// One plugin run.
#[derive(Clone, Debug)]
struct Call {
    verb: &'static str,
    container: String,
    /// Index of the container namespace (`CNI_NETNS`).
    ns: usize,
    conf: String,
    /// Environment changes: `Some` sets, `None` removes.
    env: Vec<(&'static str, Option<String>)>,
    prev: Prev,
    /// Run the other side's plugin (interop).
    other: bool,
    /// Record the first line of stderr too.
    stderr: bool,
    /// stdin as given (not the config).
    raw: Option<String>,
}

impl Call {
    fn new(verb: &'static str, conf: &str) -> Call {
        Call {
            verb,
            container: "c0".into(),
            ns: 0,
            conf: conf.into(),
            env: Vec::new(),
            prev: Prev::None,
            other: false,
            stderr: false,
            raw: None,
        }
    }

    /// Container id `id` in namespace `ns`.
    fn on(mut self, id: &str, ns: usize) -> Call {
        self.container = id.into();
        self.ns = ns;
        self
    }

    fn set(mut self, var: &'static str, value: &str) -> Call {
        self.env.push((var, Some(value.into())));
        self
    }

    fn unset(mut self, var: &'static str) -> Call {
        self.env.push((var, None));
        self
    }

    fn prev(mut self, prev: Prev) -> Call {
        self.prev = prev;
        self
    }

    fn by_other(mut self) -> Call {
        self.other = true;
        self
    }

    fn stdin(mut self, raw: &str) -> Call {
        self.raw = Some(raw.into());
        self
    }

    fn stderr(mut self) -> Call {
        self.stderr = true;
        self
    }
}

fn add(conf: &str) -> Step {
    Step::Cni(Call::new("ADD", conf))
}
fn del(conf: &str) -> Step {
    Step::Cni(Call::new("DEL", conf))
}
fn check(conf: &str) -> Step {
    Step::Cni(Call::new("CHECK", conf).prev(Prev::Last))
}
fn call(c: Call) -> Step {
    Step::Cni(c)
}

/// One step of a case.
#[derive(Clone, Debug)]
enum Step {
    Cni(Call),
    /// `ip -n HOST ARGS`.
    HostIp(&'static [&'static str]),
    /// `ip -n CONTAINER ARGS` in container namespace `.0`.
    NsIp(usize, &'static [&'static str]),
    /// Deletes container namespace `.0`.
    DropNs(usize),
    /// The links, addresses and routes of container namespace `.0`.
    Links(usize),
    /// The links of the host namespace (name and kind).
    HostLinks,
    /// The files of host-local's directory for network `.0`.
    Leases(&'static str),
    /// `.0` ADDs at once, each its own container and namespace, then as
    /// many DELs: the addresses handed out and what is left.
    Parallel(usize),
}

/// What the two sides must show.
#[derive(Clone, Debug)]
enum Expect {
    Same,
    /// We differ on purpose: at which steps (index into the case's
    /// steps), why, and what each side gives there, exactly; the other
    /// steps must agree.
    Differs(Vec<Differ>),
}

/// One step where we differ on purpose.
#[derive(Clone, Debug)]
struct Differ {
    step: usize,
    reason: &'static str,
    ours: &'static str,
    reference: &'static str,
}

fn differs(at: &[(usize, &'static str, &'static str, &'static str)]) -> Expect {
    Expect::Differs(
        at.iter()
            .map(|&(step, reason, ours, reference)| Differ {
                step,
                reason,
                ours,
                reference,
            })
            .collect(),
    )
}

/// One case of the conformance table.
struct Case {
    id: u32,
    what: &'static str,
    /// Container namespaces the case needs.
    namespaces: usize,
    steps: Vec<Step>,
    expect: Expect,
}

fn case(id: u32, what: &'static str, namespaces: usize, steps: Vec<Step>, expect: Expect) -> Case {
    Case {
        id,
        what,
        namespaces,
        steps,
        expect,
    }
}

/// Reasons we differ, each named in the README's list.
const VERSIONS: &str =
    "versions: we speak 0.3.0 to 1.1.0 (not 0.1.0/0.2.0); Debian's reference 0.1.0 to 1.0.0";
const CLI: &str = "without CNI_COMMAND the binary is our command line";
const IFNAME_FIRST: &str =
    "defect fixed: an existing CNI_IFNAME is refused before anything is made (the reference leaks a temporary link)";
const ADD_UNDO: &str =
    "defect fixed: a failed ADD deletes our link and runs IPAM DEL (the reference leaves the link, and the lease when the address is refused)";
const CHECK_MASTER: &str = "defect fixed: CHECK needs no master (the reference fails without one)";
const DEL_NO_MASTER: &str = "defect fixed: DEL never needs the master";
const DEL_IPVLAN_ONLY: &str = "defect fixed: DEL deletes CNI_IFNAME only if it is an ipvlan link";
const IPAM_DNS: &str = "defect fixed: IPAM DNS is kept when the config's dns is empty";
const EXT_MTU: &str = "our extension, on by default: mtu is checked against the master's";
const EXT_VLAN: &str =
    "our extension, on by default: a NAME.VLANID master is made on first use and removed with its last attachment";
const EXT_FLAG: &str =
    "our extension: the ipvlan flag, compared by CHECK (the reference has none, and ignores the key)";
const CODE_7: &str =
    "the spec's code 7 for an invalid config (the reference answers 999 for every plain error)";

fn table() -> Vec<Case> {
    let l3 = base(r#""master": "m0""#, r#""master": "m0", "mode": "l3""#);
    let l3s = base(r#""master": "m0""#, r#""master": "m0", "mode": "l3s""#);
    let v110 = BASE.replace("1.0.0", "1.1.0");
    let v031 = BASE.replace("1.0.0", "0.3.1");
    let no_version = base(r#""cniVersion": "1.0.0", "#, "");
    let exhausted = base(
        r#""subnet": "10.78.0.0/24""#,
        r#""subnet": "10.78.0.0/24", "rangeStart": "10.78.0.2", "rangeEnd": "10.78.0.2""#,
    );
    let vlan = base(r#""master": "m0""#, r#""master": "m0.42""#);
    let vlan_new = base(r#""master": "m0""#, r#""master": "m0.43""#)
        .replace(r#""name": "net""#, r#""name": "netv""#);
    let netb = base(r#""name": "net""#, r#""name": "netb""#);
    let chained = r#"{"cniVersion": "1.0.0", "name": "net", "type": "ipvlan",
        "prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "m0"}],
          "ips": [{"address": "10.78.0.9/24", "gateway": "10.78.0.1", "interface": 0}],
          "routes": [{"dst": "0.0.0.0/0"}]}}"#;
    let chained_two = r#"{"cniVersion": "1.0.0", "name": "net", "type": "ipvlan",
        "prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "m0"}, {"name": "m1"}],
          "ips": [{"address": "10.78.0.9/24", "gateway": "10.78.0.1", "interface": 0}]}}"#;
    let dual = base(
        r#""subnet": "10.78.0.0/24""#,
        r#""ranges": [[{"subnet": "10.78.0.0/24"}], [{"subnet": "fd00:78::/64"}]]"#,
    )
    .replace(
        r#""routes": [{"dst": "0.0.0.0/0"}]"#,
        r#""routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]"#,
    );
    // Docker and host-local take a link-local subnet as any other.
    let link_local = dual.replace("fd00:78::/64", "fe80::/64");
    let v6_route_only = base(
        r#""routes": [{"dst": "0.0.0.0/0"}]"#,
        r#""routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]"#,
    );
    let resolv = r#""resolvConf": "/tmp/ipvlan-cni-conformance/resolv.conf""#;
    let dns_both = base(r#""dataDir""#, &format!(r#"{resolv}, "dataDir""#)).replacen(
        r#""master": "m0""#,
        r#""master": "m0", "dns": {"nameservers": ["198.51.100.53"]}"#,
        1,
    );
    let dns_ipam = base(r#""dataDir""#, &format!(r#"{resolv}, "dataDir""#));
    let v110_ours = v110.replace(
        r#""type": "host-local", "subnet": "10.78.0.0/24", "dataDir": "$DATA""#,
        r#""type": "ipvlan", "subnet": "10.78.0.0/24""#,
    );

    vec![
        case(
            1,
            "VERSION",
            0,
            vec![call(Call::new("VERSION", "").stdin(""))],
            differs(&[(
                0,
                VERSIONS,
                r#"VERSION exit=0 result={"cniVersion":"1.1.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}"#,
                r#"VERSION exit=0 result={"cniVersion":"1.0.0","supportedVersions":["0.1.0","0.2.0","0.3.0","0.3.1","0.4.0","1.0.0"]}"#,
            )]),
        ),
        case(
            2,
            "no CNI_COMMAND",
            0,
            vec![call(Call::new("", "").stdin("").stderr())],
            differs(&[(
                0,
                CLI,
                r#"(none) exit=0 stderr="" stdout="Usage:  ipvlan [OPTIONS] COMMAND""#,
                r#"(none) exit=0 stderr="CNI ipvlan plugin version unknown""#,
            )]),
        ),
        case(
            3,
            "unknown CNI_COMMAND",
            1,
            vec![call(Call::new("FROB", BASE))],
            Expect::Same,
        ),
        case(
            4,
            "malformed JSON on ADD and DEL",
            2,
            vec![
                add(BASE),
                call(
                    Call::new("ADD", BASE)
                        .on("c1", 1)
                        .stdin(r#"{"cniVersion":"1.0.0","#),
                ),
                call(Call::new("DEL", BASE).stdin(r#"{"cniVersion":"1.0.0","#)),
                Step::Links(0),
                Step::Links(1),
                Step::Leases("net"),
            ],
            Expect::Same,
        ),
        case(
            5,
            "empty stdin on ADD",
            1,
            vec![
                call(Call::new("ADD", BASE).stdin("")),
                Step::Links(0),
                Step::Leases("net"),
            ],
            Expect::Same,
        ),
        case(
            6,
            "cniVersion 9.9.9 on ADD and DEL",
            2,
            vec![
                add(BASE),
                call(Call::new("ADD", &BASE.replace("1.0.0", "9.9.9")).on("c1", 1)),
                del(&BASE.replace("1.0.0", "9.9.9")),
                Step::Links(0),
                Step::Links(1),
                Step::Leases("net"),
            ],
            Expect::Same,
        ),
        case(
            7,
            "cniVersion 1.1.0",
            1,
            vec![
                add(&v110_ours),
                Step::Links(0),
                del(&v110_ours),
                Step::Links(0),
                Step::Leases("net"),
            ],
            differs(&[
                (
                    0,
                    VERSIONS,
                    r#"ADD exit=0 result={"cniVersion":"1.1.0","interfaces":[{"mac":"MAC","name":"eth0","sandbox":"$NETNS0"}],"ips":[{"address":"10.78.0.2/24","gateway":"10.78.0.1","interface":0}],"routes":[{"dst":"0.0.0.0/0"}]}"#,
                    r#"ADD exit=1 code=1 msg=incompatible CNI versions"#,
                ),
                (
                    1,
                    VERSIONS,
                    r#"links $NS0: [eth0 ipvlan l2 parent=m0 arp_notify=1 mtu=1500 up 10.78.0.2/24] routes [10.78.0.0/24; default via 10.78.0.1]"#,
                    r#"links $NS0: [] routes []"#,
                ),
                (
                    2,
                    VERSIONS,
                    r#"DEL exit=0"#,
                    r#"DEL exit=1 code=1 msg=incompatible CNI versions"#,
                ),
            ]),
        ),
        case(
            8,
            "no cniVersion",
            1,
            vec![
                add(&no_version),
                Step::Links(0),
                del(&no_version),
                Step::Leases("net"),
            ],
            differs(&[
                (
                    0,
                    VERSIONS,
                    r#"ADD exit=1 code=1 msg=incompatible CNI versions"#,
                    r#"ADD exit=0 result={"cniVersion":"0.1.0","ip4":{"gateway":"10.78.0.1","ip":"10.78.0.2/24","routes":[{"dst":"0.0.0.0/0"}]}}"#,
                ),
                (
                    1,
                    VERSIONS,
                    r#"links $NS0: [] routes []"#,
                    r#"links $NS0: [eth0 ipvlan l2 parent=m0 arp_notify=1 mtu=1500 up 10.78.0.2/24] routes [10.78.0.0/24; default via 10.78.0.1]"#,
                ),
                (
                    2,
                    VERSIONS,
                    r#"DEL exit=1 code=1 msg=incompatible CNI versions"#,
                    r#"DEL exit=0"#,
                ),
                (
                    3,
                    VERSIONS,
                    r#"files net: "#,
                    r#"files net: last_reserved_ip.0 lock"#,
                ),
            ]),
        ),
        case(
            9,
            "missing name, name with /",
            1,
            vec![
                add(&base(r#""name": "net", "#, "")),
                add(&base(r#""name": "net""#, r#""name": "a/b""#)),
                Step::Links(0),
            ],
            Expect::Same,
        ),
        case(
            10,
            "no CNI_NETNS on ADD",
            1,
            vec![call(Call::new("ADD", BASE).unset("CNI_NETNS"))],
            Expect::Same,
        ),
        case(
            11,
            "missing or bad CNI_CONTAINERID / CNI_IFNAME",
            1,
            vec![
                call(Call::new("ADD", BASE).unset("CNI_CONTAINERID")),
                call(Call::new("ADD", BASE).unset("CNI_IFNAME")),
                call(Call::new("ADD", BASE).set("CNI_IFNAME", "abcdefghijklmnop")),
                call(Call::new("ADD", BASE).set("CNI_CONTAINERID", "a b")),
                Step::Links(0),
                Step::Leases("net"),
            ],
            Expect::Same,
        ),
        case(
            12,
            "CNI_NETNS does not exist",
            1,
            vec![
                call(Call::new("ADD", BASE).set("CNI_NETNS", "/run/netns/ipvlan-conformance-none")),
                Step::Leases("net"),
            ],
            Expect::Same,
        ),
        case(
            13,
            "master does not exist",
            2,
            vec![
                add(&base(r#""master": "m0""#, r#""master": "nosuch0""#)),
                Step::Links(0),
                Step::Leases("net"),
                call(Call::new("ADD", &vlan).on("c1", 1)),
                Step::HostLinks,
                call(Call::new("DEL", &vlan).on("c1", 1)),
                Step::HostLinks,
                // A first ADD on another network that host-local refuses:
                // the VLAN master made for it goes with it.
                call(
                    Call::new("ADD", &vlan_new)
                        .on("c1", 1)
                        .set("CNI_ARGS", "FOO=bar"),
                ),
                Step::HostLinks,
            ],
            differs(&[
                (
                    3,
                    EXT_VLAN,
                    r#"ADD exit=0 result={"cniVersion":"1.0.0","interfaces":[{"mac":"MAC","name":"eth0","sandbox":"$NETNS1"}],"ips":[{"address":"10.78.0.2/24","gateway":"10.78.0.1","interface":0}],"routes":[{"dst":"0.0.0.0/0"}]}"#,
                    r#"ADD exit=1 code=999 msg=failed to lookup master "m0.42": Link not found"#,
                ),
                (
                    4,
                    EXT_VLAN,
                    "host links: m0 dummy; m0.42 vlan",
                    "host links: m0 dummy",
                ),
            ]),
        ),
        case(
            14,
            "mode l4",
            1,
            vec![
                add(&base(
                    r#""master": "m0""#,
                    r#""master": "m0", "mode": "l4""#,
                )),
                Step::Links(0),
                Step::Leases("net"),
            ],
            differs(&[(
                0,
                CODE_7,
                r#"ADD exit=1 code=7 msg=unknown ipvlan mode: "l4" (use l2, l3 or l3s)"#,
                r#"ADD exit=1 code=999 msg=unknown ipvlan mode: "l4""#,
            )]),
        ),
        case(
            15,
            "ADD l2",
            1,
            vec![add(BASE), Step::Links(0), Step::Leases("net")],
            Expect::Same,
        ),
        case(
            16,
            "ADD l3 and l3s",
            2,
            vec![
                add(&l3),
                Step::Links(0),
                del(&l3),
                call(Call::new("ADD", &l3s).on("c1", 1)),
                Step::Links(1),
            ],
            Expect::Same,
        ),
        case(
            17,
            "mtu 1400",
            2,
            vec![
                add(&base(r#""master": "m0""#, r#""master": "m0", "mtu": 1400"#)),
                Step::Links(0),
                call(
                    Call::new(
                        "ADD",
                        &base(r#""master": "m0""#, r#""master": "m0", "mtu": 9000"#)
                            .replace(r#""name": "net""#, r#""name": "net9k""#)
                            .replace("10.78.0.0/24", "10.79.0.0/24"),
                    )
                    .on("c1", 1),
                ),
                Step::Links(1),
                Step::Leases("net9k"),
            ],
            differs(&[
                (
                    2,
                    EXT_MTU,
                    "ADD exit=1 code=7 msg=mtu 9000 is larger than the MTU 1500 of parent m0",
                    r#"ADD exit=0 result={"cniVersion":"1.0.0","interfaces":[{"mac":"MAC","name":"eth0","sandbox":"$NETNS1"}],"ips":[{"address":"10.79.0.2/24","gateway":"10.79.0.1","interface":0}],"routes":[{"dst":"0.0.0.0/0"}]}"#,
                ),
                (
                    3,
                    EXT_MTU,
                    "links $NS1: [] routes []",
                    "links $NS1: [eth0 ipvlan l2 parent=m0 arp_notify=1 mtu=9000 up 10.79.0.2/24] routes [10.79.0.0/24; default via 10.79.0.1]",
                ),
                (
                    4,
                    EXT_MTU,
                    "files net9k: ",
                    "files net9k: 10.79.0.2 last_reserved_ip.0 lock",
                ),
            ]),
        ),
        case(
            18,
            "mtu omitted, master's 1400",
            1,
            vec![
                Step::HostIp(&["link", "set", "m0", "mtu", "1400"]),
                add(BASE),
                Step::Links(0),
            ],
            Expect::Same,
        ),
        case(
            19,
            "master omitted, default route via m0",
            1,
            vec![
                Step::HostIp(&["route", "add", "default", "dev", "m0"]),
                add(&no_master()),
                Step::Links(0),
            ],
            Expect::Same,
        ),
        case(
            46,
            "master omitted, IPv6 default route only, via m0",
            1,
            vec![
                Step::HostIp(&["-6", "route", "add", "default", "dev", "m0"]),
                add(&no_master()),
                Step::Links(0),
            ],
            Expect::Same,
        ),
        case(
            20,
            "master omitted, no default route",
            1,
            vec![add(&no_master()), Step::Links(0), Step::Leases("net")],
            Expect::Same,
        ),
        case(
            21,
            "ADD twice",
            1,
            vec![add(BASE), add(BASE), Step::Links(0), Step::Leases("net")],
            differs(&[(
                2,
                IFNAME_FIRST,
                r#"links $NS0: [eth0 ipvlan l2 parent=m0 arp_notify=1 mtu=1500 up 10.78.0.2/24] routes [10.78.0.0/24; default via 10.78.0.1]"#,
                r#"links $NS0: [eth0 ipvlan l2 parent=m0 arp_notify=1 mtu=1500 up 10.78.0.2/24; vethXXXXXXXX ipvlan l2 parent=m0 arp_notify=0 mtu=1500 down] routes [10.78.0.0/24; default via 10.78.0.1]"#,
            )]),
        ),
        case(
            22,
            "CNI_IFNAME taken by another link",
            1,
            vec![
                Step::NsIp(0, &["link", "add", "eth0", "type", "dummy"]),
                add(BASE),
                Step::Links(0),
                Step::Leases("net"),
            ],
            differs(&[(
                2,
                IFNAME_FIRST,
                r#"links $NS0: [eth0 dummy mtu=1500 down] routes []"#,
                r#"links $NS0: [eth0 dummy mtu=1500 down; vethXXXXXXXX ipvlan l2 parent=m0 arp_notify=0 mtu=1500 down] routes []"#,
            )]),
        ),
        case(
            23,
            "IPAM exhausted",
            2,
            vec![
                add(&exhausted),
                call(Call::new("ADD", &exhausted).on("c1", 1)),
                Step::Links(1),
                Step::Leases("net"),
            ],
            differs(&[(
                2,
                ADD_UNDO,
                r#"links $NS1: [] routes []"#,
                r#"links $NS1: [eth0 ipvlan l2 parent=m0 arp_notify=0 mtu=1500 down] routes []"#,
            )]),
        ),
        case(
            24,
            "address taken on the master by another network",
            2,
            vec![
                add(BASE),
                call(Call::new("ADD", &netb).on("c1", 1)),
                Step::Links(1),
                Step::Leases("netb"),
            ],
            differs(&[
                (
                    2,
                    ADD_UNDO,
                    r#"links $NS1: [] routes []"#,
                    r#"links $NS1: [eth0 ipvlan l2 parent=m0 arp_notify=1 mtu=1500 down] routes []"#,
                ),
                (
                    3,
                    ADD_UNDO,
                    r#"files netb: last_reserved_ip.0 lock"#,
                    r#"files netb: 10.78.0.2 last_reserved_ip.0 lock"#,
                ),
            ]),
        ),
        case(
            25,
            "CHECK after ADD",
            1,
            vec![add(BASE), check(BASE)],
            Expect::Same,
        ),
        case(
            26,
            "CHECK after changes",
            1,
            vec![
                add(BASE),
                call(Call::new("CHECK", BASE).prev(Prev::LastOtherMac)),
                check(&l3),
                check(&base(
                    r#""master": "m0""#,
                    r#""master": "m0", "flag": "private""#,
                )),
                Step::NsIp(0, &["route", "del", "default"]),
                check(BASE),
                Step::NsIp(0, &["addr", "flush", "dev", "eth0"]),
                check(BASE),
            ],
            differs(&[(
                3,
                EXT_FLAG,
                "CHECK exit=1 code=999 msg=eth0 in $NETNS0 has ipvlan flag bridge, the config says private",
                "CHECK exit=0",
            )]),
        ),
        case(
            27,
            "CHECK without prevResult; CHECK in 0.3.1",
            1,
            vec![add(BASE), call(Call::new("CHECK", BASE)), check(&v031)],
            differs(&[(
                1,
                CODE_7,
                r#"CHECK exit=1 code=7 msg=Required prevResult missing"#,
                r#"CHECK exit=1 code=999 msg=Required prevResult missing"#,
            )]),
        ),
        case(
            28,
            "CHECK with master omitted; with a chain's result of two interfaces",
            1,
            vec![
                add(BASE),
                check(&no_master()),
                call(Call::new("CHECK", &no_master()).prev(Prev::LastWithHostLink)),
            ],
            differs(&[
                (
                    1,
                    CHECK_MASTER,
                    r#"CHECK exit=0"#,
                    r#"CHECK exit=1 code=999 msg=failed to lookup master "": Link not found"#,
                ),
                (
                    2,
                    CHECK_MASTER,
                    r#"CHECK exit=0"#,
                    r#"CHECK exit=1 code=999 msg=failed to lookup master "": Link not found"#,
                ),
            ]),
        ),
        case(
            29,
            "DEL after ADD",
            1,
            vec![
                add(BASE),
                call(Call::new("DEL", BASE).prev(Prev::Last)),
                Step::Links(0),
                Step::Leases("net"),
            ],
            Expect::Same,
        ),
        case(
            30,
            "DEL twice, DEL of nothing",
            1,
            vec![
                add(BASE),
                del(BASE),
                del(BASE),
                call(Call::new("DEL", BASE).on("never", 0)),
                Step::Links(0),
                Step::Leases("net"),
            ],
            Expect::Same,
        ),
        case(
            31,
            "DEL without CNI_NETNS, DEL after the namespace went",
            2,
            vec![
                add(BASE),
                call(Call::new("DEL", BASE).unset("CNI_NETNS")),
                Step::Links(0),
                call(Call::new("ADD", BASE).on("c1", 1)),
                Step::DropNs(1),
                call(Call::new("DEL", BASE).on("c1", 1)),
                Step::Leases("net"),
            ],
            Expect::Same,
        ),
        case(
            32,
            "DEL, master omitted, no prevResult, no default route",
            1,
            vec![
                add(BASE),
                del(&no_master()),
                Step::Links(0),
                Step::Leases("net"),
            ],
            differs(&[
                (
                    1,
                    DEL_NO_MASTER,
                    r#"DEL exit=0"#,
                    r#"DEL exit=1 code=999 msg=no default route interface found"#,
                ),
                (
                    2,
                    DEL_NO_MASTER,
                    r#"links $NS0: [] routes []"#,
                    r#"links $NS0: [eth0 ipvlan l2 parent=m0 arp_notify=1 mtu=1500 up 10.78.0.2/24] routes [10.78.0.0/24; default via 10.78.0.1]"#,
                ),
                (
                    3,
                    DEL_NO_MASTER,
                    r#"files net: last_reserved_ip.0 lock"#,
                    r#"files net: 10.78.0.2 last_reserved_ip.0 lock"#,
                ),
            ]),
        ),
        case(
            33,
            "DEL with a master that does not exist, or a bad mode",
            2,
            vec![
                add(BASE),
                del(&base(r#""master": "m0""#, r#""master": "nosuch0""#)),
                call(Call::new("ADD", BASE).on("c1", 1)),
                call(
                    Call::new(
                        "DEL",
                        &base(r#""master": "m0""#, r#""master": "m0", "mode": "l4""#),
                    )
                    .on("c1", 1),
                ),
                Step::Links(0),
                Step::Links(1),
                Step::Leases("net"),
            ],
            Expect::Same,
        ),
        case(
            34,
            "DEL when CNI_IFNAME is not ipvlan",
            1,
            vec![
                Step::NsIp(0, &["link", "add", "eth0", "type", "dummy"]),
                del(BASE),
                Step::Links(0),
            ],
            differs(&[(
                2,
                DEL_IPVLAN_ONLY,
                r#"links $NS0: [eth0 dummy mtu=1500 down] routes []"#,
                r#"links $NS0: [] routes []"#,
            )]),
        ),
        case(
            35,
            "chained: no ipam, prevResult",
            1,
            vec![add(chained), Step::Links(0), del(chained), Step::Links(0)],
            Expect::Same,
        ),
        case(
            36,
            "chained, prevResult with 2 interfaces",
            1,
            vec![add(chained_two), del(chained_two)],
            differs(&[
                (
                    0,
                    CODE_7,
                    r#"ADD exit=1 code=7 msg=chained master failure. PrevResult lacks a single named interface (it has 2)"#,
                    r#"ADD exit=1 code=999 msg=chained master failure. PrevResult lacks a single named interface"#,
                ),
                (
                    1,
                    DEL_NO_MASTER,
                    r#"DEL exit=0"#,
                    r#"DEL exit=1 code=999 msg=chained master failure. PrevResult lacks a single named interface"#,
                ),
            ]),
        ),
        case(
            37,
            "dual stack",
            1,
            vec![add(&dual), Step::Links(0), del(&dual), Step::Leases("net")],
            Expect::Same,
        ),
        case(
            38,
            "dns in the config and resolvConf",
            2,
            vec![
                add(&dns_both),
                call(Call::new("ADD", &dns_ipam).on("c1", 1)),
            ],
            differs(&[(
                1,
                IPAM_DNS,
                r#"ADD exit=0 result={"cniVersion":"1.0.0","dns":{"nameservers":["192.0.2.53"],"search":["example.org"]},"interfaces":[{"mac":"MAC","name":"eth0","sandbox":"$NETNS1"}],"ips":[{"address":"10.78.0.3/24","gateway":"10.78.0.1","interface":0}],"routes":[{"dst":"0.0.0.0/0"}]}"#,
                r#"ADD exit=0 result={"cniVersion":"1.0.0","interfaces":[{"mac":"MAC","name":"eth0","sandbox":"$NETNS1"}],"ips":[{"address":"10.78.0.3/24","gateway":"10.78.0.1","interface":0}],"routes":[{"dst":"0.0.0.0/0"}]}"#,
            )]),
        ),
        case(
            39,
            "result in 0.3.1",
            1,
            vec![add(&v031), del(&v031)],
            Expect::Same,
        ),
        case(
            40,
            "CNI_ARGS with IgnoreUnknown",
            2,
            vec![
                call(
                    Call::new("ADD", BASE)
                        .set("CNI_ARGS", "IgnoreUnknown=1;IP=10.78.0.77;K8S_POD_NAME=x"),
                ),
                call(
                    Call::new("ADD", BASE)
                        .on("c1", 1)
                        .set("CNI_ARGS", "IgnoreUnknown=true;NOMAD_ALLOC_ID=abc"),
                ),
            ],
            Expect::Same,
        ),
        case(
            41,
            "CNI_ARGS without IgnoreUnknown",
            1,
            vec![
                call(Call::new("ADD", BASE).set("CNI_ARGS", "FOO=bar")),
                Step::Links(0),
                Step::Leases("net"),
            ],
            differs(&[(
                1,
                ADD_UNDO,
                r#"links $NS0: [] routes []"#,
                r#"links $NS0: [eth0 ipvlan l2 parent=m0 arp_notify=0 mtu=1500 down] routes []"#,
            )]),
        ),
        case(
            42,
            "no CNI_PATH",
            1,
            vec![
                call(Call::new("ADD", BASE).unset("CNI_PATH")),
                Step::Links(0),
            ],
            Expect::Same,
        ),
        case(
            43,
            "20 parallel ADDs",
            0,
            vec![Step::Parallel(20)],
            Expect::Same,
        ),
        case(
            44,
            "STATUS and GC in 1.1.0",
            0,
            vec![
                call(
                    Call::new("STATUS", &v110_ours)
                        .unset("CNI_CONTAINERID")
                        .unset("CNI_NETNS")
                        .unset("CNI_IFNAME"),
                ),
                call(
                    Call::new("GC", &v110_ours)
                        .unset("CNI_CONTAINERID")
                        .unset("CNI_NETNS")
                        .unset("CNI_IFNAME"),
                ),
                Step::HostIp(&["link", "del", "m0"]),
                call(
                    Call::new("STATUS", &v110_ours)
                        .unset("CNI_CONTAINERID")
                        .unset("CNI_NETNS")
                        .unset("CNI_IFNAME"),
                ),
            ],
            differs(&[
                (
                    0,
                    VERSIONS,
                    r#"STATUS exit=0"#,
                    r#"STATUS exit=1 code=3 msg=missing containerID"#,
                ),
                (
                    1,
                    VERSIONS,
                    r#"GC exit=0"#,
                    r#"GC exit=1 code=3 msg=missing containerID"#,
                ),
                (
                    3,
                    VERSIONS,
                    r#"STATUS exit=1 code=50 msg=master m0 does not exist"#,
                    r#"STATUS exit=1 code=3 msg=missing containerID"#,
                ),
            ]),
        ),
        case(
            45,
            "ADD by one, DEL by the other",
            1,
            vec![
                add(BASE),
                call(Call::new("DEL", BASE).prev(Prev::Last).by_other()),
                Step::Links(0),
                Step::Leases("net"),
            ],
            Expect::Same,
        ),
        case(
            48,
            "ADD by one, CHECK by the other",
            1,
            vec![
                add(BASE),
                call(Call::new("CHECK", BASE).prev(Prev::Last).by_other()),
                del(BASE),
            ],
            Expect::Same,
        ),
        case(
            50,
            "a link-local IPv6 range; CHECK",
            1,
            vec![
                add(&link_local),
                Step::Links(0),
                check(&link_local),
                del(&link_local),
                Step::Leases("net"),
            ],
            Expect::Same,
        ),
        case(
            49,
            "chained: ADD by one, CHECK by the other",
            1,
            vec![
                add(chained),
                call(Call::new("CHECK", chained).prev(Prev::Last).by_other()),
                del(chained),
            ],
            differs(&[(
                1,
                CHECK_MASTER,
                r#"CHECK by the other exit=1 code=999 msg=failed to lookup master "": Link not found"#,
                r#"CHECK by the other exit=0"#,
            )]),
        ),
        case(
            47,
            "an IPv6 route beside IPv4 addresses only",
            1,
            vec![
                add(&v6_route_only),
                Step::Links(0),
                del(&v6_route_only),
                Step::Leases("net"),
            ],
            Expect::Same,
        ),
    ]
}

/// One side's sandbox for one case.
struct World {
    side: Side,
    host: String,
    namespaces: Vec<String>,
    dir: PathBuf,
    /// The last successful ADD's stdout.
    last: Option<String>,
}

impl World {
    /// The side's namespaces, made through the library rather than by
    /// running `ip`: under emulation each process costs a good part of
    /// a second, and the table makes some hundred namespaces.
    fn new(case: &Case, side: Side) -> World {
        let tag = format!("{}{}", case.id, side.tag());
        let host = format!("cfh{tag}");
        let dir = Path::new(ROOT).join(&tag);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let h = fresh_netns(&host);
        let handle = Handle::in_netns(&h).unwrap();
        handle.link_add(&LinkSpec::dummy("m0")).unwrap();
        for name in ["lo", "m0"] {
            handle
                .link_set_up(handle.link_index(name).unwrap())
                .unwrap();
        }
        let namespaces: Vec<String> = (0..case.namespaces)
            .map(|i| format!("cfc{tag}n{i}"))
            .collect();
        for ns in &namespaces {
            fresh_netns(ns);
        }
        World {
            side,
            host,
            namespaces,
            dir,
            last: None,
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn netns_path(&self, i: usize) -> String {
        format!(
            "/run/netns/{}",
            self.namespaces.get(i).map_or("none", String::as_str)
        )
    }

    /// What differs between the sides by construction, masked.
    fn mask(&self, text: &str) -> String {
        let mut text = text.replace(&self.data().display().to_string(), "$DATA");
        for (i, ns) in self.namespaces.iter().enumerate().rev() {
            text = text.replace(&format!("/run/netns/{ns}"), &format!("$NETNS{i}"));
            text = text.replace(ns.as_str(), &format!("$NS{i}"));
        }
        text = text.replace(&self.host, "$HOST");
        mask_numbers(&mask_temp_links(&text))
    }

    fn run(&mut self, step: &Step) -> String {
        match step {
            Step::Cni(c) => self.cni(c),
            Step::HostIp(args) => {
                let mut full = vec!["-n", self.host.as_str()];
                full.extend_from_slice(args);
                ip(&full);
                format!("ip {}", args.join(" "))
            }
            Step::NsIp(i, args) => {
                let mut full = vec!["-n", self.namespaces[*i].as_str()];
                full.extend_from_slice(args);
                ip(&full);
                format!("ip -n $NS{i} {}", args.join(" "))
            }
            Step::DropNs(i) => {
                netns::delete_named(RUN_DIR, &self.namespaces[*i]).unwrap();
                format!("netns del $NS{i}")
            }
            Step::Links(i) => format!("links $NS{i}: {}", self.links(*i)),
            Step::HostLinks => {
                let host = Handle::in_named_netns(RUN_DIR, &self.host).unwrap();
                let mut links: Vec<String> = host
                    .links()
                    .unwrap()
                    .into_iter()
                    .filter(|l| l.name != "lo")
                    .map(|l| format!("{} {}", l.name, l.kind.as_deref().unwrap_or("-")))
                    .collect();
                links.sort();
                format!("host links: {}", links.join("; "))
            }
            Step::Leases(net) => format!("files {net}: {}", self.leases(net).join(" ")),
            Step::Parallel(n) => self.parallel(*n),
        }
    }

    /// The plugin run as a runtime runs it, in the side's host namespace
    /// (entered between fork and exec: no `ip netns exec` in between).
    fn command(&self, c: &Call, netns: &str) -> Command {
        let side = if c.other {
            self.side.other()
        } else {
            self.side
        };
        let mut command = Command::new(side.bin_dir().join("ipvlan"));
        let host = std::fs::File::open(Path::new("/run/netns").join(&self.host)).unwrap();
        // SAFETY: setns(2) is async-signal-safe; `host` lives in the
        // closure until exec.
        unsafe {
            command.pre_exec(move || {
                if libc::setns(host.as_raw_fd(), libc::CLONE_NEWNET) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        command
            .env_clear()
            .env("CNI_COMMAND", c.verb)
            .env("CNI_CONTAINERID", &c.container)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", "eth0")
            .env("CNI_PATH", side.bin_dir())
            .env("IPVLAN_STATE_DIR", self.dir.join("state"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if c.verb.is_empty() {
            command.env_remove("CNI_COMMAND");
        }
        for (var, value) in &c.env {
            match value {
                Some(v) => command.env(var, v),
                None => command.env_remove(var),
            };
        }
        command
    }

    fn stdin(&self, c: &Call) -> String {
        if let Some(raw) = &c.raw {
            return raw.clone();
        }
        let conf = c.conf.replace("$DATA", &self.data().display().to_string());
        let prev = match c.prev {
            Prev::None => return conf,
            Prev::Last | Prev::LastOtherMac | Prev::LastWithHostLink => {
                self.last.clone().expect("an ADD before")
            }
        };
        let mut prev = json::parse(&prev).unwrap();
        if let Prev::LastOtherMac = c.prev {
            if let Some(Value::Array(interfaces)) = field_mut(&mut prev, "interfaces") {
                if let Some(mac) = field_mut(&mut interfaces[0], "mac") {
                    *mac = Value::from("02:00:00:00:00:01");
                }
            }
        }
        if let Prev::LastWithHostLink = c.prev {
            if let Some(Value::Array(interfaces)) = field_mut(&mut prev, "interfaces") {
                interfaces
                    .push(json::parse(r#"{"name": "ifb0", "mac": "02:00:00:00:00:02"}"#).unwrap());
            }
        }
        let mut doc = json::parse(&conf).unwrap();
        // A chained config's own `prevResult` (what its ADD was given) is
        // replaced by the one the call is given.
        if let Value::Object(fields) = &mut doc {
            fields.retain(|(key, _)| key != "prevResult");
            fields.push(("prevResult".to_string(), prev));
        }
        doc.to_pretty().unwrap()
    }

    fn cni(&mut self, c: &Call) -> String {
        let netns = self.netns_path(c.ns);
        let mut child = self.command(c, &netns).spawn().expect("runs the plugin");
        let mut input = child.stdin.take().unwrap();
        let _ = input.write_all(self.stdin(c).as_bytes());
        drop(input);
        let output = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let exit = output.status.code();
        if c.verb == "ADD" && exit == Some(0) {
            self.last = Some(stdout.clone());
        }
        let mut line = format!(
            "{}{} exit={}",
            if c.verb.is_empty() { "(none)" } else { c.verb },
            if c.other { " by the other" } else { "" },
            exit.map_or("signal".to_string(), |e| e.to_string())
        );
        if c.stderr {
            let stderr = String::from_utf8_lossy(&output.stderr);
            line += &format!(" stderr={:?}", stderr.lines().next().unwrap_or(""));
        }
        line += &self.answer(&stdout);
        line
    }

    /// stdout normalised: an error object as its code (and message, last,
    /// ignored when the sides are compared), anything else as sorted JSON.
    fn answer(&self, stdout: &str) -> String {
        if stdout.trim().is_empty() {
            return String::new();
        }
        let Ok(value) = json::parse(stdout) else {
            let first = stdout.trim().lines().next().unwrap_or("");
            return format!(" stdout={:?}", self.mask(first));
        };
        if let Some(code) = value.get("code").and_then(Value::as_u64) {
            let msg = value.get("msg").and_then(Value::as_str).unwrap_or("");
            return format!(" code={code} msg={}", self.mask(msg));
        }
        let text = normalise(&value).to_compact().unwrap();
        format!(" result={}", self.mask(&text))
    }

    /// Every link of namespace `i` but `lo`: name, kind (and ipvlan mode
    /// and parent), MTU, up or not, `arp_notify`, global addresses; then
    /// the routes of the main table.
    fn links(&self, i: usize) -> String {
        let ns = self.namespaces[i].as_str();
        if !Path::new("/run/netns").join(ns).exists() {
            return "(no namespace)".into();
        }
        let host = Handle::in_named_netns(RUN_DIR, &self.host).unwrap();
        let host_name = |index: u64| {
            u32::try_from(index)
                .ok()
                .and_then(|i| host.link_by_index(i).unwrap())
                .map_or("?".to_string(), |l| l.name)
        };
        let links = ip_json(&["-n", ns, "-d", "addr", "show"]);
        let mut out = Vec::new();
        for l in links.as_array().unwrap_or(&[]) {
            let name = l.get("ifname").and_then(Value::as_str).unwrap_or("?");
            if name == "lo" {
                continue;
            }
            let info = l.get("linkinfo");
            let kind = info
                .and_then(|i| i.get("info_kind"))
                .and_then(Value::as_str)
                .unwrap_or("-");
            let mut text = format!("{} {kind}", mask_temp_links(name));
            if kind == "ipvlan" {
                let mode = info
                    .and_then(|i| i.get("info_data"))
                    .and_then(|d| d.get("mode"))
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                let parent = l
                    .get("link_index")
                    .and_then(Value::as_u64)
                    .map_or("?".to_string(), host_name);
                let arp_notify = sysctl(ns, &format!("net/ipv4/conf/{name}/arp_notify"));
                text += &format!(" {mode} parent={parent} arp_notify={arp_notify}");
            }
            let mtu = l.get("mtu").and_then(Value::as_u64).unwrap_or(0);
            let flags: Vec<&str> = l
                .get("flags")
                .and_then(Value::as_array)
                .unwrap_or(&[])
                .iter()
                .filter_map(Value::as_str)
                .collect();
            let up = if flags.contains(&"UP") { "up" } else { "down" };
            text += &format!(" mtu={mtu} {up}");
            for a in l.get("addr_info").and_then(Value::as_array).unwrap_or(&[]) {
                if a.get("scope").and_then(Value::as_str) != Some("global") {
                    continue;
                }
                let local = a.get("local").and_then(Value::as_str).unwrap_or("?");
                let len = a.get("prefixlen").and_then(Value::as_u64).unwrap_or(0);
                text += &format!(" {local}/{len}");
            }
            out.push(text);
        }
        let mut routes = Vec::new();
        let families: &[&str] = if out.iter().any(|l| l.contains(':')) {
            &["-4", "-6"]
        } else {
            &["-4"]
        };
        for family in families {
            for r in ip_json(&["-n", ns, family, "route", "show"])
                .as_array()
                .unwrap_or(&[])
            {
                let dst = r.get("dst").and_then(Value::as_str).unwrap_or("?");
                if dst.starts_with("fe80:") {
                    continue;
                }
                let mut text = dst.to_string();
                if let Some(gw) = r.get("gateway").and_then(Value::as_str) {
                    text += &format!(" via {gw}");
                }
                routes.push(text);
            }
        }
        out.sort();
        routes.sort();
        format!("[{}] routes [{}]", out.join("; "), routes.join("; "))
    }

    /// host-local's files for network `net`, sorted.
    fn leases(&self, net: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.data().join(net))
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    fn parallel(&mut self, n: usize) -> String {
        let namespaces: Vec<String> = (0..n)
            .map(|i| format!("{}p{i}", self.host.replace("cfh", "cfc")))
            .collect();
        for ns in &namespaces {
            fresh_netns(ns);
        }
        let run_all = |verb: &'static str| -> Vec<(Option<i32>, String)> {
            let children: Vec<_> = namespaces
                .iter()
                .enumerate()
                .map(|(i, ns)| {
                    let c = Call::new(verb, BASE).on(&format!("p{i}"), 0);
                    let mut child = self
                        .command(&c, &format!("/run/netns/{ns}"))
                        .spawn()
                        .unwrap();
                    let mut input = child.stdin.take().unwrap();
                    let _ = input.write_all(self.stdin(&c).as_bytes());
                    drop(input);
                    child
                })
                .collect();
            children
                .into_iter()
                .map(|child| {
                    let out = child.wait_with_output().unwrap();
                    (
                        out.status.code(),
                        String::from_utf8_lossy(&out.stdout).into_owned(),
                    )
                })
                .collect()
        };
        let added = run_all("ADD");
        let ok = added.iter().filter(|(e, _)| *e == Some(0)).count();
        let mut addresses: Vec<String> = added
            .iter()
            .filter_map(|(_, out)| json::parse(out).ok())
            .filter_map(|v| {
                v.get("ips")
                    .and_then(Value::as_array)
                    .and_then(|ips| ips.first())
                    .and_then(|ip| ip.get("address"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect();
        addresses.sort();
        let before = addresses.len();
        addresses.dedup();
        let deleted = run_all("DEL");
        let del_ok = deleted.iter().filter(|(e, _)| *e == Some(0)).count();
        let left: usize = namespaces
            .iter()
            .map(|ns| {
                let handle = Handle::in_named_netns(RUN_DIR, ns).unwrap();
                handle.links().unwrap().len().saturating_sub(1)
            })
            .sum();
        for ns in &namespaces {
            let _ = netns::delete_named(RUN_DIR, ns);
        }
        format!(
            "{n} ADDs: {ok} ok, {before} addresses, {} distinct; {n} DELs: {del_ok} ok; links left {left}; files {}",
            addresses.len(),
            self.leases("net").join(" ")
        )
    }
}

impl Drop for World {
    fn drop(&mut self) {
        for ns in self.namespaces.iter().chain([&self.host]) {
            let _ = netns::delete_named(RUN_DIR, ns);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new named namespace `name` (one left by an earlier run replaced).
fn fresh_netns(name: &str) -> Netns {
    let _ = netns::delete_named(RUN_DIR, name);
    netns::create_named(RUN_DIR, name).unwrap()
}

fn field_mut<'a>(value: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    match value {
        Value::Object(fields) => fields.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
        _ => None,
    }
}

/// `value` with keys sorted, an empty `dns` dropped, MACs masked.
fn normalise(value: &Value) -> Value {
    match value {
        Value::Object(fields) => {
            let mut out: Vec<(String, Value)> = fields
                .iter()
                .filter(|(k, v)| !(k == "dns" && matches!(v, Value::Object(f) if f.is_empty())))
                .map(|(k, v)| {
                    if k == "mac" {
                        (k.clone(), Value::from("MAC"))
                    } else {
                        (k.clone(), normalise(v))
                    }
                })
                .collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(normalise).collect()),
        other => other.clone(),
    }
}

/// The reference's temporary link names (`veth` and 8 hex digits) masked.
fn mask_temp_links(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("veth") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 4..];
        let hex = tail.bytes().take_while(u8::is_ascii_hexdigit).count();
        if hex == 8 {
            out.push_str("vethXXXXXXXX");
            rest = &tail[8..];
        } else {
            out.push_str("veth");
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// Interface indices (`ifindex N`) and the reference's Go pointers
/// (`0xc000...`) masked: they differ from run to run.
fn mask_numbers(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    loop {
        let at = [rest.find("ifindex "), rest.find("0x")]
            .into_iter()
            .flatten()
            .min();
        let Some(at) = at else { break };
        let (prefix, digits): (&str, fn(&u8) -> bool) = if rest[at..].starts_with("0x") {
            ("0x", u8::is_ascii_hexdigit)
        } else {
            ("ifindex ", u8::is_ascii_digit)
        };
        out.push_str(&rest[..at + prefix.len()]);
        let tail = &rest[at + prefix.len()..];
        let n = tail.bytes().take_while(digits).count();
        out.push_str(if n > 0 { "N" } else { "" });
        rest = &tail[n..];
    }
    out.push_str(rest);
    out
}

/// A `/proc/sys` value inside namespace `ns` (read on a thread that
/// entered it: `/proc/sys/net` shows the opener's namespace).
fn sysctl(ns: &str, key: &str) -> String {
    let ns = Netns::open_named(RUN_DIR, ns).unwrap();
    let path = format!("/proc/sys/{key}");
    netns::run_here(&ns, || std::fs::read_to_string(&path))
        .unwrap()
        .map_or_else(|e| format!("({e})"), |v| v.trim().to_string())
}

/// A step's line as the sides are compared: without the message.
fn compared(line: &str) -> &str {
    line.split(" msg=").next().unwrap_or(line)
}

/// Runs one case on both sides; the mismatches, described.
fn verify(case: &Case) -> Vec<String> {
    let mut sides = Vec::new();
    for side in [Side::Ours, Side::Reference] {
        let mut world = World::new(case, side);
        let lines: Vec<String> = case.steps.iter().map(|s| world.run(s)).collect();
        sides.push(lines);
    }
    let (ours, reference) = (&sides[0], &sides[1]);
    let mut problems = Vec::new();
    let listed: &[Differ] = match &case.expect {
        Expect::Same => &[],
        Expect::Differs(at) => at,
    };
    for (i, (o, r)) in ours.iter().zip(reference).enumerate() {
        match listed.iter().find(|d| d.step == i) {
            Some(d) => {
                if o != d.ours || r != d.reference {
                    problems.push(format!(
                        "step {i} (listed as differing: {}): expected\n    ours      {}\n    reference {}\n  got\n    ours      {o}\n    reference {r}",
                        d.reason, d.ours, d.reference
                    ));
                }
            }
            None => {
                if compared(o) != compared(r) {
                    problems.push(format!(
                        "step {i}: differs\n    ours      {o}\n    reference {r}"
                    ));
                }
            }
        }
    }
    if !problems.is_empty() {
        problems.insert(0, format!("case {} ({}):", case.id, case.what));
    }
    problems
}

/// The two `CNI_PATH` directories: each side's `ipvlan` beside Debian's
/// `host-local`; and the resolv.conf host-local reads in case 38.
fn setup() {
    for side in [Side::Ours, Side::Reference] {
        let dir = side.bin_dir();
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ipvlan = match side {
            Side::Ours => PathBuf::from(binary()),
            Side::Reference => Path::new(REFERENCE_DIR).join("ipvlan"),
        };
        assert!(ipvlan.is_file(), "{} is missing", ipvlan.display());
        std::os::unix::fs::symlink(&ipvlan, dir.join("ipvlan")).unwrap();
        std::os::unix::fs::symlink(
            Path::new(REFERENCE_DIR).join("host-local"),
            dir.join("host-local"),
        )
        .unwrap();
    }
    std::fs::write(
        Path::new(ROOT).join("resolv.conf"),
        "nameserver 192.0.2.53\nsearch example.org\n",
    )
    .unwrap();
}

#[test]
fn every_case_agrees_with_the_reference_or_differs_as_listed() {
    std::fs::create_dir_all(ROOT).unwrap();
    setup();
    let cases = table();
    let next = AtomicUsize::new(0);
    let problems = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(case) = cases.get(i) else { break };
                let start = std::time::Instant::now();
                let found = verify(case);
                eprintln!("case {}: {:.1} s", case.id, start.elapsed().as_secs_f64());
                problems.lock().unwrap().extend(found);
            });
        }
    });
    let problems = problems.into_inner().unwrap();
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_table_covers_every_case_once() {
    // In the table's order, which keeps related cases together.
    let mut ids: Vec<u32> = table().iter().map(|c| c.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, (1..=50).collect::<Vec<u32>>());
}
