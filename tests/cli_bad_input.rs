//! The bad-input catalogue: every refusal of the `ipvlan` binary that needs
//! no ipvlan in the kernel, one line each, with its exit code and its exact
//! message, and proof that it changed nothing.
//!
//! Each case runs in a directory of its own (`$T`): state in `$T/state`
//! (given as `--state-dir`, made beforehand so that what a case changes
//! shows), namespaces in `$T/netns`, `/etc/netns` in `$T/etc-netns`, the
//! current directory `$T/cwd`. Before and after the command, every file
//! under `$T` (path, type, mode, content or link target) and every link of
//! the test's network namespace are read; they must be the same. The whole
//! run happens in a private mount and network namespace that holds a veth
//! pair of "another tool", which must stay as it is.
//!
//! Adding a case is one line in [`CASES`]: `case(args, exit code, stderr)`,
//! then `.env(...)`, `.with(...)` (fixtures), `.stdout(...)` or `.bare()`
//! (no `--state-dir`) as needed. `$T` in args, env values, fixtures and
//! expected texts stands for the case's directory. Fixtures run in order
//! after the state directory is made and before the snapshot: records,
//! raw files (damaged or hostile), FIFOs, links, modes, owners, mounts,
//! namespaces of other tools. A command that does not end within
//! [`DEADLINE`] (a FIFO opened, a lock never freed) is killed and fails
//! its case.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipvlan::driver::{Config, Manager};
use ipvlan::netns;
use ipvlan::rtnl::{Handle, LinkSpec};
use ipvlan::store::RECORD_MAX;
use ipvlan::store::{EndpointState, NetworkState, ParentOrigin, StateDir, Timestamp};

const BIN: &str = env!("CARGO_BIN_EXE_ipvlan");

/// What a case finds in place before its command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fixture {
    /// Network `n1`: 192.168.1.0/24, gateway .1, aux `router`=.5, on `lo`.
    Network,
    /// Network `n6`: 192.168.6.0/24 and 2001:db8:6::/64, on `lo`.
    DualStack,
    /// Network `half`, left `creating` by a killed `network create`.
    Creating,
    /// A network of this name (192.168.8.0/24), left `creating`.
    CreatingAs(&'static str),
    /// A network of this name (192.168.7.0/24), left `removing` by a
    /// killed `network rm`.
    RemovingAs(&'static str),
    /// `n1`'s endpoint `c1`, left `detaching` by a killed disconnect.
    Detaching,
    /// `n1`'s endpoint `c2`, attached (its namespace is not there).
    Attached,
    /// A container (named namespace) `c1`.
    Container,
    /// A regular file `$T/cwd/file`.
    File,
    /// A FIFO at this path under `$T`.
    Fifo(&'static str),
    /// A file at this path under `$T` with this content.
    Write(&'static str, &'static str),
    /// A file at this path under `$T` one byte over the store's size
    /// limit, holding a valid JSON object.
    Oversized(&'static str),
    /// A symbolic link at this path under `$T` to this target (`$T`
    /// expanded).
    Symlink(&'static str, &'static str),
    /// Removes the file at this path under `$T`.
    Remove(&'static str),
    /// A directory (0700) at this path under `$T`.
    Mkdir(&'static str),
    /// Bind-mounts a directory under `$T` onto another (a mount of
    /// another tool's).
    Bind(&'static str, &'static str),
    /// Renames a path under `$T` to another.
    Rename(&'static str, &'static str),
    /// Sets the mode of a path under `$T`.
    Chmod(&'static str, u32),
    /// Gives a path under `$T` to `nobody`.
    ToNobody(&'static str),
    /// A namespace of another tool (`ip netns add NAME`) in `$T/netns`.
    Foreign(&'static str),
    /// The test's own namespace bound at `$T/netns/NAME` (`ip netns
    /// attach NAME $$`): the namespace the binary runs in, by a name.
    Own(&'static str),
}

/// The uid of `nobody`: a user that is not us.
const NOBODY: u32 = 65534;

/// How long one command may take: every refusal is immediate, so a case
/// past this hangs (a FIFO opened, a lock never released).
const DEADLINE: Duration = Duration::from_secs(10);

/// One refusal.
#[derive(Debug, Clone, Copy)]
struct Case {
    args: &'static [&'static str],
    code: i32,
    stderr: &'static str,
    stdout: &'static str,
    env: &'static [(&'static str, &'static str)],
    fixtures: &'static [Fixture],
    /// Pass `--state-dir $T/state` before `args`.
    state_flag: bool,
}

const fn case(args: &'static [&'static str], code: i32, stderr: &'static str) -> Case {
    Case {
        args,
        code,
        stderr,
        stdout: "",
        env: &[],
        fixtures: &[],
        state_flag: true,
    }
}

impl Case {
    const fn env(self, env: &'static [(&'static str, &'static str)]) -> Case {
        Case { env, ..self }
    }

    const fn with(self, fixtures: &'static [Fixture]) -> Case {
        Case { fixtures, ..self }
    }

    const fn stdout(self, stdout: &'static str) -> Case {
        Case { stdout, ..self }
    }

    const fn bare(self) -> Case {
        Case {
            state_flag: false,
            ..self
        }
    }
}

use Fixture::*;

const NET: &[Fixture] = &[Network];
const NET_C1: &[Fixture] = &[Network, Container];
/// The record of a container `c9` we created (its namespace file is up
/// to the case).
const C9: Fixture = Write(
    "state/records/containers/c9.json",
    "{\"version\": 1, \"name\": \"c9\", \"created\": \"2024-01-01T00:00:00Z\"}\n",
);
/// A network record that is not JSON.
const BAD_JSON: Fixture = Write("state/networks/bad.json", "{not json");
/// What `restore` prints when it changed nothing.
const RESTORED_NOTHING: &str = "restore: 0 parents re-created, 0 parents missing, 0 links re-created, 0 endpoints kept, 0 endpoints released, 0 interrupted operations repaired\n";
/// `network inspect n1` of the [`Network`] fixture.
const INSPECT_N1: &str = r#"[
    {
        "Name": "n1",
        "Id": "6e31000000000000000000000000000000000000000000000000000000000000",
        "Created": "2024-05-01T12:00:00.000000000Z",
        "Scope": "local",
        "Driver": "ipvlan",
        "EnableIPv6": false,
        "IPAM": {
            "Driver": "default",
            "Options": {},
            "Config": [
                {
                    "Subnet": "192.168.1.0/24",
                    "Gateway": "192.168.1.1",
                    "AuxiliaryAddresses": {
                        "router": "192.168.1.5"
                    }
                }
            ]
        },
        "Internal": false,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {
            "Network": ""
        },
        "ConfigOnly": false,
        "Containers": {},
        "Options": {
            "parent": "lo",
            "ipvlan_mode": "l2"
        },
        "Labels": {}
    }
]
"#;
/// `network ls` of no network.
const LS_HEADER: &str = "NETWORK ID   NAME      DRIVER    SCOPE\n";

#[rustfmt::skip]
const CASES: &[Case] = &[
    // Command words, flags and operands: usage errors, exit 2 (125 for run/exec).
    case(&["frobnicate"], 2, "ipvlan: 'frobnicate' is not an ipvlan command\nSee 'ipvlan --help'.\n"),
    case(&["--bogus", "ps"], 2, "ipvlan: unknown flag: --bogus\nSee 'ipvlan --help'.\n"),
    case(&["network", "frob"], 2, "ipvlan: network: 'frob' is not an ipvlan network command\nSee 'ipvlan network --help'.\n"),
    case(&["network", "create"], 2, "ipvlan: network create: \"ipvlan network create\" requires exactly 1 argument\nSee 'ipvlan network create --help'.\n"),
    case(&["network", "create", "a", "b"], 2, "ipvlan: network create: \"ipvlan network create\" requires exactly 1 argument\nSee 'ipvlan network create --help'.\n"),
    case(&["network", "create", "--bogus", "n1"], 2, "ipvlan: network create: unknown flag: --bogus\nSee 'ipvlan network create --help'.\n"),
    case(&["network", "create", "-x", "n1"], 2, "ipvlan: network create: unknown shorthand flag: 'x' in -x\nSee 'ipvlan network create --help'.\n"),
    case(&["network", "create", "-o"], 2, "ipvlan: network create: flag needs an argument: -o\nSee 'ipvlan network create --help'.\n"),
    case(&["network", "rm"], 2, "ipvlan: network rm: \"ipvlan network rm\" requires at least 1 argument\nSee 'ipvlan network rm --help'.\n"),
    case(&["network", "ls", "extra"], 2, "ipvlan: network ls: \"ipvlan network ls\" accepts no arguments\nSee 'ipvlan network ls --help'.\n"),
    case(&["network", "connect", "n1"], 2, "ipvlan: network connect: \"ipvlan network connect\" requires at least 2 arguments\nSee 'ipvlan network connect --help'.\n"),
    case(&["network", "disconnect", "n1"], 2, "ipvlan: network disconnect: \"ipvlan network disconnect\" requires at least 2 arguments\nSee 'ipvlan network disconnect --help'.\n"),
    case(&["network", "connect", "--ip=192.168.1.5", "n1", "c1", "c2"], 2, "ipvlan: network connect: --ip and --ip6 give one container its address: connect several containers without them\nSee 'ipvlan network connect --help'.\n"),
    case(&["ps", "-s"], 2, "ipvlan: ps: unknown shorthand flag: 's' in -s\nSee 'ipvlan ps --help'.\n"),
    case(&["restore", "now"], 2, "ipvlan: restore: \"ipvlan restore\" accepts no arguments\nSee 'ipvlan restore --help'.\n"),
    case(&["run", "ls"], 125, "ipvlan: run: --network is required\nSee 'ipvlan run --help'.\n"),
    case(&["run", "--net=n1", "--net", "n1", "ls"], 125, "ipvlan: run: --network n1 is given twice\nSee 'ipvlan run --help'.\n"),
    case(&["run", "--net=n1", "--net=n2", "--ip=10.0.0.5", "ls"], 125, "ipvlan: run: --ip and --ip6 go with one --network: connect the other networks with `ipvlan network connect --ip`\nSee 'ipvlan run --help'.\n"),
    case(&["run", "--net=n1", "-d", "--rm", "sleep", "9"], 125, "ipvlan: run: conflicting options: --rm and -d (--detach) cannot be combined\nSee 'ipvlan run --help'.\n"),
    // Docker's `-h` is `--hostname`: before, taken for help, exit 0 and
    // nothing made.
    case(&["run", "--net=n1", "-d", "-h", "web", "sleep", "9"], 125, "ipvlan: run: --hostname (-h) is not supported: a container here is a network namespace and keeps the host's hostname\n"),
    case(&["run", "--net=n1", "--hostname=web", "true"], 125, "ipvlan: run: --hostname (-h) is not supported: a container here is a network namespace and keeps the host's hostname\n"),
    case(&["run", "--net=n1", "--mac-address", "02:42:ac:11:00:02", "true"], 125, "ipvlan: run: ipvlan interfaces do not support custom mac address assignment\n"),
    // Refused before the missing `--network` is (the flag is the mistake).
    case(&["run", "-d", "-h", "web", "sleep", "9"], 125, "ipvlan: run: --hostname (-h) is not supported: a container here is a network namespace and keeps the host's hostname\n"),
    case(&["exec", "c1"], 125, "ipvlan: exec: \"ipvlan exec\" requires at least 2 arguments\nSee 'ipvlan exec --help'.\n"),
    case(&["--state-dir"], 2, "ipvlan: flag needs an argument: --state-dir\nSee 'ipvlan --help'.\n").bare(),
    // Arguments that are not UTF-8 (`%FF`: the byte 0xFF) where text is
    // needed: refused by the command's rules (125 for run/exec). A
    // command's own arguments may be any bytes (`cli_vm`).
    case(&["network", "create", "%FF"], 1, "ipvlan: network create: invalid argument \"\\xFF\": not valid UTF-8\n"),
    case(&["network", "rm", "n1", "%FF"], 1, "ipvlan: network rm: invalid argument \"\\xFF\": not valid UTF-8\n"),
    case(&["network", "create", "--subnet", "%FF", "n2"], 1, "ipvlan: network create: invalid value \"\\xFF\" for --subnet: not valid UTF-8\n"),
    case(&["network", "create", "--subnet=%FF", "n2"], 1, "ipvlan: network create: invalid value \"\\xFF\" for --subnet: not valid UTF-8\n"),
    // A short flag's value that is not text is a bad value, as the long
    // flag's is (before: "unknown shorthand flag", a usage error).
    case(&["network", "create", "-oparent=eth%FF", "n2"], 1, "ipvlan: network create: invalid value \"parent=eth\\xFF\" for -o: not valid UTF-8\n"),
    case(&["network", "create", "-o=parent=eth%FF", "n2"], 1, "ipvlan: network create: invalid value \"parent=eth\\xFF\" for -o: not valid UTF-8\n"),
    case(&["network", "ls", "-%FF"], 2, "ipvlan: network ls: unknown shorthand flag in \"-\\xFF\"\nSee 'ipvlan network ls --help'.\n"),
    case(&["network", "ls", "--%FF"], 2, "ipvlan: network ls: unknown flag: \"--\\xFF\"\nSee 'ipvlan network ls --help'.\n"),
    case(&["run", "--net=n1", "-%FF", "true"], 125, "ipvlan: run: unknown shorthand flag in \"-\\xFF\"\nSee 'ipvlan run --help'.\n"),
    case(&["run", "--net=n1", "--name", "%FF", "true"], 125, "ipvlan: run: invalid value \"\\xFF\" for --name: not valid UTF-8\n"),
    case(&["network", "connect", "n1", "$T/ns%FF"], 1, "ipvlan: network connect: invalid argument \"$T/ns\\xFF\": not valid UTF-8\n"),
    case(&["exec", "%FF", "true"], 125, "ipvlan: exec: invalid argument \"\\xFF\": not valid UTF-8\n"),
    case(&["%FF"], 2, "ipvlan: '\u{FFFD}' is not an ipvlan command\nSee 'ipvlan --help'.\n"),
    // Values: exit 1 (125 for run).
    case(&["network", "create", "--subnet=192.168.1.0/33", "n1"], 1, "ipvlan: network create: invalid value \"192.168.1.0/33\" for --subnet: invalid CIDR address\n"),
    case(&["network", "create", "--gateway=192.168.1.300", "n1"], 1, "ipvlan: network create: invalid value \"192.168.1.300\" for --gateway: invalid IP address\n"),
    case(&["network", "create", "--ip-range=10.0.0.0/", "n1"], 1, "ipvlan: network create: invalid value \"10.0.0.0/\" for --ip-range: invalid CIDR address\n"),
    // A leading zero: `010` is 8 to `inet_aton`, 10 to others (the
    // gateway's reader refuses it too); before, taken as 10.
    case(&["network", "create", "--subnet=010.0.0.0/24", "n1"], 1, "ipvlan: network create: invalid value \"010.0.0.0/24\" for --subnet: invalid CIDR address\n"),
    case(&["network", "create", "--subnet=10.0.0.0/24", "--ip-range=010.0.0.0/28", "n1"], 1, "ipvlan: network create: invalid value \"010.0.0.0/28\" for --ip-range: invalid CIDR address\n"),
    case(&["network", "create", "--subnet=2001:db8::/064", "n1"], 1, "ipvlan: network create: invalid value \"2001:db8::/064\" for --subnet: invalid CIDR address\n"),
    case(&["network", "create", "--aux-address=router", "n1"], 1, "ipvlan: network create: invalid value \"router\" for --aux-address: expected name=IP\n"),
    case(&["network", "create", "-o", "", "n1"], 1, "ipvlan: network create: invalid value \"\" for --opt: expected KEY=VALUE\n"),
    case(&["network", "create", "-d", "bridge", "n1"], 1, "ipvlan: network create: invalid value \"bridge\" for --driver: only the ipvlan driver is supported\n"),
    case(&["network", "create", "--ipv6=maybe", "n1"], 1, "ipvlan: network create: invalid value \"maybe\" for --ipv6: expected true or false\n"),
    case(&["network", "connect", "--ip=2001:db8::1", "n1", "c1"], 1, "ipvlan: network connect: invalid value \"2001:db8::1\" for --ip: not an IPv4 address (use --ip6)\n"),
    case(&["rm", "--force=yes", "c1"], 1, "ipvlan: rm: invalid value \"yes\" for --force: expected true or false\n"),
    case(&["run", "--net=n1", "--ip=10.0.0.300"], 125, "ipvlan: run: invalid value \"10.0.0.300\" for --ip: invalid IP address\n"),
    // Names.
    // Docker's own networks' names (and its words); Docker's `--net=host`
    // means something else. Before, each was made.
    case(&["network", "create", "bridge"], 1, "ipvlan: network create bridge: bridge is a pre-defined network and cannot be created\n"),
    case(&["network", "create", "host"], 1, "ipvlan: network create host: host is a pre-defined network and cannot be created\n"),
    case(&["network", "create", "none"], 1, "ipvlan: network create none: none is a pre-defined network and cannot be created\n"),
    case(&["network", "create", "default"], 1, "ipvlan: network create default: default is a pre-defined network and cannot be created\n"),
    case(&["network", "create", "a b"], 1, "ipvlan: network create a b: invalid network name \"a b\": only [a-zA-Z0-9][a-zA-Z0-9_.-]* are allowed, at most 64 bytes\n"),
    case(&["network", "create", "--", "-bad"], 1, "ipvlan: network create -bad: invalid network name \"-bad\": only [a-zA-Z0-9][a-zA-Z0-9_.-]* are allowed, at most 64 bytes\n"),
    case(&["network", "create", "é"], 1, "ipvlan: network create é: invalid network name \"é\": only [a-zA-Z0-9][a-zA-Z0-9_.-]* are allowed, at most 64 bytes\n"),
    case(&["network", "create", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"], 1, "ipvlan: network create aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: invalid network name \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\": only [a-zA-Z0-9][a-zA-Z0-9_.-]* are allowed, at most 64 bytes\n"),
    case(&["network", "create", "n1"], 1, "ipvlan: network create n1: network with name n1 already exists\n").with(NET),
    case(&["network", "connect", "n1", "a b"], 1, "ipvlan: network connect n1 a b: invalid container name \"a b\": only [a-zA-Z0-9][a-zA-Z0-9_.-]* are allowed, at most 64 bytes\n").with(NET),
    // Subnets, gateways, ranges, aux addresses.
    case(&["network", "create", "--subnet=192.168.1.5/24", "n2"], 1, "ipvlan: network create n2: invalid subnet 192.168.1.5/24: it should be 192.168.1.0/24\n"),
    case(&["network", "create", "--subnet=10.0.0.0/8", "--subnet=10.1.0.0/16", "n2"], 1, "ipvlan: network create n2: multiple overlapping subnet configuration is not supported (10.0.0.0/8, 10.1.0.0/16)\n"),
    case(&["network", "create", "--subnet=192.168.2.0/24", "--gateway=10.9.9.9", "n2"], 1, "ipvlan: network create n2: no matching subnet for gateway 10.9.9.9\n"),
    case(&["network", "create", "--subnet=192.168.2.0/24", "--gateway=192.168.2.255", "n2"], 1, "ipvlan: network create n2: invalid gateway 192.168.2.255: it is not a host address of subnet 192.168.2.0/24\n"),
    case(&["network", "create", "--subnet=192.168.2.0/24", "--gateway=192.168.2.1", "--gateway=192.168.2.2", "n2"], 1, "ipvlan: network create n2: cannot configure multiple gateways (192.168.2.2, 192.168.2.1) for the same subnet (192.168.2.0/24)\n"),
    case(&["network", "create", "--subnet=192.168.2.0/24", "--ip-range=10.0.0.0/24", "n2"], 1, "ipvlan: network create n2: no matching subnet for range 10.0.0.0/24\n"),
    case(&["network", "create", "--subnet=192.168.2.0/24", "--aux-address=r=10.0.0.1", "n2"], 1, "ipvlan: network create n2: no matching subnet for aux-address 10.0.0.1 (r)\n"),
    case(&["network", "create", "--subnet=192.168.2.0/24", "--aux-address=r=192.168.2.5", "--aux-address=r=192.168.2.6", "n2"], 1, "ipvlan: network create n2: aux-address r given twice\n"),
    case(&["network", "create", "--ipv6=false", "--subnet=2001:db8:9::/64", "n2"], 1, "ipvlan: network create: --ipv6=false contradicts the IPv6 subnet 2001:db8:9::/64: leave --ipv6 out, or give no IPv6 subnet\n"),
    case(&["network", "create", "--ipv6=0", "--subnet=10.9.0.0/16,2001:db8:9::/64", "n2"], 1, "ipvlan: network create: --ipv6=false contradicts the IPv6 subnet 2001:db8:9::/64: leave --ipv6 out, or give no IPv6 subnet\n"),
    case(&["network", "create", "--subnet=192.168.2.0/24", "--gateway=192.168.2.1", "--aux-address=r=192.168.2.1", "n2"], 1, "ipvlan: network create n2: failed to allocate secondary ip address (r:192.168.2.1): Address already in use\n"),
    // On the default gateway (Docker takes it first); before, the gateway
    // moved to .2, an address nobody has.
    case(&["network", "create", "--subnet=192.168.2.0/24", "--aux-address=r=192.168.2.1", "n2"], 1, "ipvlan: network create n2: failed to allocate secondary ip address (r:192.168.2.1): Address already in use\n"),
    case(&["network", "create", "--subnet=192.168.2.0/24", "--aux-address=r=192.168.2.5", "--aux-address=s=192.168.2.5", "n2"], 1, "ipvlan: network create n2: failed to allocate secondary ip address (s:192.168.2.5): Address already in use\n"),
    case(&["network", "create", "--subnet=192.168.2.0/24", "--aux-address=r=192.168.2.255", "n2"], 1, "ipvlan: network create n2: failed to allocate secondary ip address (r:192.168.2.255): Address already in use\n"),
    case(&["network", "create", "--subnet=2001:db8:2::/64", "--aux-address=r=2001:db8:2::", "n2"], 1, "ipvlan: network create n2: failed to allocate secondary ip address (r:2001:db8:2::): Address already in use\n"),
    case(&["network", "create", "--subnet=192.168.1.128/25", "n2"], 1, "ipvlan: network create n2: Pool overlaps with other one on this address space: 192.168.1.128/25 overlaps 192.168.1.0/24 of network n1\n").with(NET),
    // Options.
    case(&["network", "create", "-o", "macvlan_mode=bridge", "n2"], 1, "ipvlan: network create n2: unknown option 'macvlan_mode': valid options are parent, ipvlan_mode, ipvlan_flag, mtu\n"),
    case(&["network", "create", "-o", "ipvlan_mode=L2", "n2"], 1, "ipvlan: network create n2: requested ipvlan mode 'L2' is not valid, 'l2' mode is the ipvlan driver default\n"),
    case(&["network", "create", "-o", "ipvlan_flag=foo", "n2"], 1, "ipvlan: network create n2: requested ipvlan flag 'foo' is not valid, 'bridge' is the ipvlan driver default\n"),
    case(&["network", "create", "-o", "mtu=67", "n2"], 1, "ipvlan: network create n2: invalid mtu '67': must be a number from 68 to the parent's MTU\n"),
    case(&["network", "create", "-o", "mtu=+1400", "n2"], 1, "ipvlan: network create n2: invalid mtu '+1400': must be a number from 68 to the parent's MTU\n"),
    case(&["network", "create", "-o", "parent=lo", "n2"], 1, "ipvlan: network create n2: loopback interface is not a valid ipvlan parent link\n"),
    case(&["network", "create", "-o", "parent=a/b", "n2"], 1, "ipvlan: network create n2: invalid parent interface name 'a/b': at most 15 bytes, no '/', ':', '%' or whitespace, not '.' or '..'\n"),
    case(&["network", "create", "-o", "parent=abcdefghijklmnop", "n2"], 1, "ipvlan: network create n2: invalid parent interface name 'abcdefghijklmnop': at most 15 bytes, no '/', ':', '%' or whitespace, not '.' or '..'\n"),
    case(&["network", "create", "--internal", "-o", "parent=eth0", "n2"], 1, "ipvlan: network create n2: --internal cannot be combined with -o parent=eth0: an internal network gets its own dummy parent and no external connectivity; drop one of the two\n"),
    // Lookups.
    case(&["network", "rm", "nope"], 1, "ipvlan: network rm nope: network nope not found\n"),
    // `-f`: a network that is not there is no error, as Docker's; any
    // other refusal still is.
    case(&["network", "rm", "-f", "nope"], 0, ""),
    case(&["network", "rm", "--force", "half"], 1, "ipvlan: network rm half: network half was left half-created by an interrupted `network create`; run `ipvlan restore` to roll it back\n").with(&[Creating]),
    case(&["network", "inspect", "nope"], 1, "ipvlan: network inspect: network nope not found\n").stdout("[]\n"),
    case(&["network", "connect", "nope", "c1"], 1, "ipvlan: network connect nope c1: network nope not found\n"),
    case(&["network", "connect", "n1", "ghost"], 1, "ipvlan: network connect n1 ghost: container ghost not found\n").with(NET),
    case(&["network", "connect", "n1", "./no/../such"], 1, "ipvlan: network connect n1 ./no/../such: network namespace $T/cwd/no/../such not found\n").with(NET),
    case(&["network", "disconnect", "n1", "./such"], 1, "ipvlan: network disconnect n1 ./such: container $T/cwd/such is not connected to network n1\n").with(NET),
    // A batch's operands as typed, the relative ones among the absolute.
    case(&["network", "connect", "n1", "$T/no/ns", "./no/../such"], 1, "ipvlan: network connect n1 $T/no/ns ./no/../such: network namespace $T/no/ns not found\n").with(NET),
    case(&["network", "disconnect", "n1", "./such", "$T/no/ns"], 1, "ipvlan: network disconnect n1 ./such $T/no/ns: container $T/cwd/such is not connected to network n1\n").with(NET),
    case(&["network", "connect", "n1", "$T/no/such/ns"], 1, "ipvlan: network connect n1 $T/no/such/ns: network namespace $T/no/such/ns not found\n").with(NET),
    case(&["network", "disconnect", "n1", "c1"], 1, "ipvlan: network disconnect n1 c1: container c1 is not connected to network n1\n").with(NET_C1),
    case(&["network", "connect", "--ip6=2001:db8::5", "n1", "c1"], 1, "ipvlan: network connect n1 c1: network n1 has no IPv6 subnet: --ip6 cannot be used (create it with --ipv6)\n").with(NET_C1),
    case(&["network", "connect", "--ip=10.0.0.5", "n1", "c1"], 1, "ipvlan: network connect n1 c1: no configured subnet contains IP address 10.0.0.5\n").with(NET_C1),
    case(&["network", "connect", "--ip6=2001:db8:7::5", "n6", "c1"], 1, "ipvlan: network connect n6 c1: no configured subnet contains IP address 2001:db8:7::5\n").with(&[DualStack, Container]),
    case(&["rm", "ghost"], 1, "ipvlan: rm ghost: No such container: ghost\n"),
    // Forced, a name that is no container is said so and is no failure,
    // as `docker rm -f` (20.10 on) has it: a cleanup can run again.
    case(&["rm", "-f", "ghost"], 0, "ipvlan: rm ghost: No such container: ghost\n"),
    // A name no container can have is no container either, forced or
    // not (Docker's daemon answers 404 for it); nothing is looked up by it.
    case(&["rm", "a b"], 1, "ipvlan: rm a b: No such container: a b\n"),
    case(&["rm", "-f", "a b", "../c1"], 0, "ipvlan: rm a b: No such container: a b\nipvlan: rm ../c1: No such container: ../c1\n"),
    case(&["exec", "ghost", "true"], 125, "ipvlan: exec ghost: No such container: ghost\n"),
    // A repeated -o key: refused, naming the key (Docker keeps the last).
    case(&["network", "create", "-o", "parent=eth0", "-o", "mtu=1400", "-o", "mtu=1400", "n2"], 1, "ipvlan: network create n2: option 'mtu' given more than once (-o mtu=1400, -o mtu=1400): give each option once\n"),
    case(&["network", "create", "-o", "ipvlan_mode=l2", "-o", "ipvlan_mode=l3", "n2"], 1, "ipvlan: network create n2: option 'ipvlan_mode' given more than once (-o ipvlan_mode=l2, -o ipvlan_mode=l3): give each option once\n"),
    case(&["network", "create", "-o", "parent=", "-o", "parent=", "n2"], 1, "ipvlan: network create n2: option 'parent' given more than once (-o parent=, -o parent=): give each option once\n"),
    // IPv6 needs an MTU of 1280 at least.
    case(&["network", "create", "--ipv6", "-o", "mtu=1279", "n2"], 1, "ipvlan: network create n2: mtu 1279 is too small for an IPv6 network: IPv6 needs at least 1280 (RFC 8200)\n"),
    case(&["network", "create", "--subnet=2001:db8:2::/64", "-o", "mtu=1000", "n2"], 1, "ipvlan: network create n2: mtu 1000 is too small for an IPv6 network: IPv6 needs at least 1280 (RFC 8200)\n"),
    // State left by killed commands: named, with the way out.
    case(&["network", "inspect", "half"], 1, "ipvlan: network inspect half: network half was left half-created by an interrupted `network create`; run `ipvlan restore` to roll it back\n").stdout("[]\n").with(&[Creating]),
    case(&["network", "rm", "half"], 1, "ipvlan: network rm half: network half was left half-created by an interrupted `network create`; run `ipvlan restore` to roll it back\n").with(&[Creating]),
    case(&["network", "connect", "half", "c1"], 1, "ipvlan: network connect half c1: network half was left half-created by an interrupted `network create`; run `ipvlan restore` to roll it back\n").with(&[Creating, Container]),
    case(&["network", "create", "half"], 1, "ipvlan: network create half: network with name half already exists: it was left half-created by an interrupted `network create`; run `ipvlan restore` to roll it back\n").with(&[Creating]),
    case(&["network", "ls"], 0, "ipvlan: warning: network half was left half-created by an interrupted `network create`; run `ipvlan restore` to roll it back\n").stdout("NETWORK ID   NAME      DRIVER    SCOPE\n").with(&[Creating]),
    case(&["network", "rm", "n1"], 1, "ipvlan: network rm n1: network n1 has endpoints left by interrupted commands (c1: detaching); run `ipvlan restore` to finish them\n").with(&[Network, Detaching]),
    case(&["network", "rm", "n1"], 1, "ipvlan: network rm n1: network n1 has endpoints left by interrupted commands (c1: detaching); run `ipvlan restore` to finish them; it also has active endpoints (c2); disconnect or remove them first\n").with(&[Network, Detaching, Attached]),
    case(&["network", "rm", "n1"], 1, "ipvlan: network rm n1: network n1 has active endpoints (c2); disconnect or remove them first\n").with(&[Network, Attached]),
    // Addresses that can never be a container's.
    case(&["network", "connect", "--ip=192.168.1.0", "n1", "c1"], 1, "ipvlan: network connect n1 c1: 192.168.1.0 is the network address of subnet 192.168.1.0/24\n").with(NET_C1),
    case(&["network", "connect", "--ip=192.168.1.255", "n1", "c1"], 1, "ipvlan: network connect n1 c1: 192.168.1.255 is the broadcast address of subnet 192.168.1.0/24\n").with(NET_C1),
    case(&["network", "connect", "--ip=192.168.1.1", "n1", "c1"], 1, "ipvlan: network connect n1 c1: 192.168.1.1 is the gateway of subnet 192.168.1.0/24\n").with(NET_C1),
    case(&["network", "connect", "--ip=192.168.1.5", "n1", "c1"], 1, "ipvlan: network connect n1 c1: 192.168.1.5 is reserved as aux-address router of subnet 192.168.1.0/24\n").with(NET_C1),
    case(&["network", "connect", "--ip6=2001:db8:6::", "n6", "c1"], 1, "ipvlan: network connect n6 c1: 2001:db8:6:: is the subnet-router anycast address of subnet 2001:db8:6::/64\n").with(&[DualStack, Container]),
    case(&["network", "connect", "--ip6=2001:db8:6::1", "n6", "c1"], 1, "ipvlan: network connect n6 c1: 2001:db8:6::1 is the gateway of subnet 2001:db8:6::/64\n").with(&[DualStack, Container]),
    // Control characters from the user never reach the terminal raw.
    case(&["network", "create", "a\nb"], 1, "ipvlan: network create a\\nb: invalid network name \"a\\nb\": only [a-zA-Z0-9][a-zA-Z0-9_.-]* are allowed, at most 64 bytes\n"),
    case(&["network", "create", "-o", "\u{1b}[31mkey=1", "n2"], 1, "ipvlan: network create n2: unknown option '\\u{1b}[31mkey': valid options are parent, ipvlan_mode, ipvlan_flag, mtu\n"),
    case(&["network", "create", "-o", "ipvlan_mode=l2\r", "n2"], 1, "ipvlan: network create n2: requested ipvlan mode 'l2\\r' is not valid, 'l2' mode is the ipvlan driver default\n"),
    case(&["network", "create", "-o", "parent=a\tb", "n2"], 1, "ipvlan: network create n2: invalid parent interface name 'a\\tb': at most 15 bytes, no '/', ':', '%' or whitespace, not '.' or '..'\n"),
    case(&["network", "create", "-o", "parent=eth%d", "n2"], 1, "ipvlan: network create n2: invalid parent interface name 'eth%d': at most 15 bytes, no '/', ':', '%' or whitespace, not '.' or '..'\n"),
    case(&["network", "create", "-d", "x\ny", "n2"], 1, "ipvlan: network create: invalid value \"x\\ny\" for --driver: only the ipvlan driver is supported\n"),
    case(&["network", "create", "--aux-address=r\n=10.0.0.1", "--subnet=192.168.2.0/24", "n2"], 1, "ipvlan: network create n2: no matching subnet for aux-address 10.0.0.1 (r\\n)\n"),
    case(&["network", "rm", "x\ny"], 1, "ipvlan: network rm x\\ny: network x\\ny not found\n"),
    case(&["network", "inspect", "\u{1b}]0;owned\u{7}"], 1, "ipvlan: network inspect: network \\u{1b}]0;owned\\u{7} not found\n").stdout("[]\n"),
    case(&["network", "connect", "n1", "$T/a\nb"], 1, "ipvlan: network connect n1 $T/a\\nb: network namespace $T/a\\nb not found\n").with(NET),
    case(&["network", "disconnect", "n1", "c\u{9b}1"], 1, "ipvlan: network disconnect n1 c\\u{9b}1: invalid container name \"c\\u{9b}1\": only [a-zA-Z0-9][a-zA-Z0-9_.-]* are allowed, at most 64 bytes\n").with(NET),
    case(&["rm", "a\nb"], 1, "ipvlan: rm a\\nb: No such container: a\\nb\n"),
    case(&["exec", "a\nb", "true"], 125, "ipvlan: exec a\\nb: invalid container name \"a\\nb\": only [a-zA-Z0-9][a-zA-Z0-9_.-]* are allowed, at most 64 bytes\n"),
    case(&["network", "--bo\ngus"], 2, "ipvlan: network: unknown flag: --bo\\ngus\nSee 'ipvlan network --help'.\n"),
    case(&["frob\u{202e}nicate"], 2, "ipvlan: 'frob\\u{202e}nicate' is not an ipvlan command\nSee 'ipvlan --help'.\n"),
    // The state directory and the other paths from the environment.
    case(&["--state-dir=", "network", "ls"], 1, "ipvlan: invalid value \"\" for --state-dir: empty; give a directory or leave the flag out\n").bare(),
    // Refused global options before `run` and `exec` exit as theirs do,
    // never with a status their command could have (1, 2).
    case(&["--state-dir=", "run", "--net=n1", "false"], 125, "ipvlan: invalid value \"\" for --state-dir: empty; give a directory or leave the flag out\n").bare(),
    case(&["--state-dir", "/x", "--bogus", "exec", "c1", "true"], 125, "ipvlan: unknown flag: --bogus\nSee 'ipvlan --help'.\n").bare(),
    case(&["--bogus", "network", "ls"], 2, "ipvlan: unknown flag: --bogus\nSee 'ipvlan --help'.\n").bare(),
    case(&["network", "ls"], 1, "ipvlan: IPVLAN_STATE_DIR is set but empty: unset it for /var/lib/ipvlan, or name a directory\n").bare().env(&[("IPVLAN_STATE_DIR", "")]),
    case(&["network", "ls"], 0, "").stdout("NETWORK ID   NAME      DRIVER    SCOPE\n").env(&[("IPVLAN_STATE_DIR", "")]),
    case(&["network", "ls"], 1, "ipvlan: IPVLAN_NETNS_DIR is set but empty: unset it for /run/netns, or name a directory\n").env(&[("IPVLAN_NETNS_DIR", "")]),
    case(&["network", "ls"], 1, "ipvlan: IPVLAN_ETC_NETNS_DIR is set but empty: unset it for /etc/netns, or name a directory\n").env(&[("IPVLAN_ETC_NETNS_DIR", "")]),
    case(&["run", "--net=n1", "true"], 125, "ipvlan: IPVLAN_ETC_NETNS_DIR is set but empty: unset it for /etc/netns, or name a directory\n").env(&[("IPVLAN_ETC_NETNS_DIR", "")]),
    case(&["--state-dir", "file/state", "network", "ls"], 1, "ipvlan: opening state directory $T/cwd/file/state: state directory: checking $T/cwd/file/state: Not a directory (os error 20)\n").bare().with(&[File]),
    // A store that is not there (`x` is missing) reads as empty; the
    // first command that writes finds it cannot be made.
    case(&["--state-dir", "./x/../file/./state", "network", "create", "n1"], 1, "ipvlan: network create n1: state directory: creating $T/cwd/x/../file/state: Not a directory (os error 20)\n").bare().with(&[File]),
    case(&["network", "create", "n1"], 1, "ipvlan: network create n1: state directory: creating $T/cwd/x/../file/state: Not a directory (os error 20)\n").bare().with(&[File]).env(&[("IPVLAN_STATE_DIR", "x/../file/state")]),
    case(&["--state-dir", "./file/./state", "network", "ls"], 1, "ipvlan: opening state directory $T/cwd/file/state: state directory: checking $T/cwd/file/state: Not a directory (os error 20)\n").bare().with(&[File]),
    // Namespace paths: anything but another network namespace is refused
    // before the lock is taken, without opening what could block.
    case(&["network", "connect", "n1", "$T/cwd/fifo"], 1, "ipvlan: network connect n1 $T/cwd/fifo: $T/cwd/fifo is not a network namespace: it is a FIFO\n").with(&[Network, Fifo("cwd/fifo")]),
    case(&["network", "connect", "n1", "/dev/zero"], 1, "ipvlan: network connect n1 /dev/zero: /dev/zero is not a network namespace: it is a character device\n").with(NET),
    case(&["network", "connect", "n1", "$T/cwd"], 1, "ipvlan: network connect n1 $T/cwd: $T/cwd is not a network namespace: it is a directory\n").with(NET),
    case(&["network", "connect", "n1", "./file"], 1, "ipvlan: network connect n1 ./file: $T/cwd/file is not a network namespace: it is a regular file\n").with(&[Network, File]),
    case(&["network", "connect", "n1", "/proc/self/ns/mnt"], 1, "ipvlan: network connect n1 /proc/self/ns/mnt: /proc/self/ns/mnt is not a network namespace: it is a mnt namespace\n").with(NET),
    case(&["network", "connect", "n1", "/proc/self/ns/user"], 1, "ipvlan: network connect n1 /proc/self/ns/user: /proc/self/ns/user is not a network namespace: it is a user namespace\n").with(NET),
    case(&["network", "connect", "n1", "plant"], 1, "ipvlan: network connect n1 plant: $T/netns/plant is not a network namespace: it is a FIFO\n").with(&[Network, Fifo("netns/plant")]),
    case(&["network", "connect", "n1", "./link"], 1, "ipvlan: network connect n1 ./link: $T/cwd/link is not a network namespace: it is a FIFO\n").with(&[Network, Fifo("cwd/fifo"), Symlink("cwd/link", "fifo")]),
    case(&["network", "connect", "n1", "./loop"], 1, "ipvlan: network connect n1 ./loop: opening namespace $T/cwd/loop: Too many levels of symbolic links (os error 40)\n").with(&[Network, Symlink("cwd/loop", "loop")]),
    case(&["network", "connect", "n1", "./file/ns"], 1, "ipvlan: network connect n1 ./file/ns: opening namespace $T/cwd/file/ns: Not a directory (os error 20)\n").with(&[Network, File]),
    case(&["network", "connect", "n1", "no/such"], 1, "ipvlan: network connect n1 no/such: network namespace $T/cwd/no/such not found\n").with(NET),
    case(&["network", "connect", "n1", "$T/\u{1b}[31mns"], 1, "ipvlan: network connect n1 $T/\\u{1b}[31mns: network namespace $T/\\u{1b}[31mns not found\n").with(NET),
    case(&["network", "connect", "n1", "$T/$LONGNAME"], 1, "ipvlan: network connect n1 $T/$LONGNAME: opening namespace $T/$LONGNAME: File name too long (os error 36)\n").with(NET),
    case(&["network", "connect", "n1", "$LONGPATH"], 1, "ipvlan: network connect n1 $LONGPATH: opening namespace $T/cwd/$LONGPATH: File name too long (os error 36)\n").with(NET),
    // The caller's own namespace, by every way of naming it (the test's
    // namespace is a fresh one: /proc/1/ns/net is the host's, another).
    case(&["network", "connect", "n1", "/proc/self/ns/net"], 1, "ipvlan: network connect n1 /proc/self/ns/net: /proc/self/ns/net is the network namespace ipvlan itself runs in, where the networks' parent interfaces are; only another namespace can be attached\n").with(NET),
    case(&["network", "connect", "n1", "/proc/thread-self/ns/net"], 1, "ipvlan: network connect n1 /proc/thread-self/ns/net: /proc/thread-self/ns/net is the network namespace ipvlan itself runs in, where the networks' parent interfaces are; only another namespace can be attached\n").with(NET),
    case(&["network", "connect", "n1", "/proc/self/../thread-self/ns/./net"], 1, "ipvlan: network connect n1 /proc/self/../thread-self/ns/./net: /proc/self/../thread-self/ns/net is the network namespace ipvlan itself runs in, where the networks' parent interfaces are; only another namespace can be attached\n").with(NET),
    case(&["network", "connect", "n1", "own"], 1, "ipvlan: network connect n1 own: $T/netns/own is the network namespace ipvlan itself runs in, where the networks' parent interfaces are; only another namespace can be attached\n").with(&[Network, Own("own")]),
    case(&["network", "connect", "n1", "$T/netns/own"], 1, "ipvlan: network connect n1 $T/netns/own: $T/netns/own is the network namespace ipvlan itself runs in, where the networks' parent interfaces are; only another namespace can be attached\n").with(&[Network, Own("own")]),
    case(&["network", "connect", "n1", "c9"], 1, "ipvlan: network connect n1 c9: $T/netns/c9 is the network namespace ipvlan itself runs in, where the networks' parent interfaces are; only another namespace can be attached\n").with(&[Network, C9, Symlink("netns/c9", "/proc/self/ns/net")]),
    case(&["network", "disconnect", "n1", "$T/cwd/fifo"], 1, "ipvlan: network disconnect n1 $T/cwd/fifo: $T/cwd/fifo is not a network namespace: it is a FIFO\n").with(&[Network, Fifo("cwd/fifo")]),
    case(&["network", "disconnect", "n1", "/dev/zero"], 1, "ipvlan: network disconnect n1 /dev/zero: /dev/zero is not a network namespace: it is a character device\n").with(NET),
    case(&["network", "disconnect", "n1", "$T/cwd"], 1, "ipvlan: network disconnect n1 $T/cwd: $T/cwd is not a network namespace: it is a directory\n").with(NET),
    case(&["network", "disconnect", "n1", "./file"], 1, "ipvlan: network disconnect n1 ./file: $T/cwd/file is not a network namespace: it is a regular file\n").with(&[Network, File]),
    case(&["network", "disconnect", "n1", "/proc/self/ns/mnt"], 1, "ipvlan: network disconnect n1 /proc/self/ns/mnt: /proc/self/ns/mnt is not a network namespace: it is a mnt namespace\n").with(NET),
    case(&["network", "disconnect", "n1", "./file/ns"], 1, "ipvlan: network disconnect n1 ./file/ns: opening namespace $T/cwd/file/ns: Not a directory (os error 20)\n").with(&[Network, File]),
    case(&["network", "disconnect", "n1", "$T/$LONGNAME"], 1, "ipvlan: network disconnect n1 $T/$LONGNAME: opening namespace $T/$LONGNAME: File name too long (os error 36)\n").with(NET),
    case(&["network", "disconnect", "n1", "$LONGPATH"], 1, "ipvlan: network disconnect n1 $LONGPATH: opening namespace $T/cwd/$LONGPATH: File name too long (os error 36)\n").with(NET),
    case(&["network", "disconnect", "n1", "/proc/self/ns/net"], 1, "ipvlan: network disconnect n1 /proc/self/ns/net: container /proc/self/ns/net is not connected to network n1\n").with(NET),
    case(&["network", "disconnect", "n1", "own"], 1, "ipvlan: network disconnect n1 own: container own is not connected to network n1\n").with(&[Network, Own("own")]),
    case(&["network", "disconnect", "n1", "foreign"], 1, "ipvlan: network disconnect n1 foreign: container foreign is not connected to network n1\n").with(&[Network, Foreign("foreign")]),
    // Container names: another tool's namespace (`ip netns add`, `ip netns
    // attach`) is no container of ours, and paths are no names.
    case(&["rm", "foreign"], 1, "ipvlan: rm foreign: No such container: foreign\n").with(&[Foreign("foreign")]),
    case(&["rm", "-f", "own"], 0, "ipvlan: rm own: No such container: own\n").with(&[Own("own")]),
    case(&["rm", "-f", "foreign"], 0, "ipvlan: rm foreign: No such container: foreign\n").with(&[Foreign("foreign")]),
    case(&["exec", "foreign", "true"], 125, "ipvlan: exec foreign: No such container: foreign\n").with(&[Foreign("foreign")]),
    case(&["exec", "own", "true"], 125, "ipvlan: exec own: No such container: own\n").with(&[Own("own")]),
    // Addresses refused before the namespace is made (it was made, named
    // and taken apart again): nothing to see in $T/netns at any moment.
    case(&["run", "--net", "n1", "--name", "r6", "--ip6", "2001:db8::5", "true"], 125, "ipvlan: run: connecting r6: network n1 has no IPv6 subnet: --ip6 cannot be used (create it with --ipv6)\n").with(&[Network]),
    case(&["run", "--net", "n1", "--ip", "10.9.9.9", "true"], 125, "ipvlan: run: connecting to network n1: no configured subnet contains IP address 10.9.9.9\n").with(&[Network]),
    case(&["run", "--net", "n1", "--ip", "192.168.1.1", "true"], 125, "ipvlan: run: connecting to network n1: 192.168.1.1 is the gateway of subnet 192.168.1.0/24\n").with(&[Network]),
    case(&["run", "--net", "n1", "--name", "foreign", "true"], 125, "ipvlan: run: creating the container: container name foreign is already in use (namespace $T/netns/foreign exists)\n").with(&[Network, Foreign("foreign")]),
    case(&["run", "--net", "n1", "--name", "own", "true"], 125, "ipvlan: run: creating the container: container name own is already in use (namespace $T/netns/own exists)\n").with(&[Network, Own("own")]),
    case(&["rm", "/proc/self/ns/net"], 1, "ipvlan: rm /proc/self/ns/net: No such container: /proc/self/ns/net\n"),
    case(&["exec", "$T/cwd/fifo", "true"], 125, "ipvlan: exec $T/cwd/fifo: invalid container name \"$T/cwd/fifo\": only [a-zA-Z0-9][a-zA-Z0-9_.-]* are allowed, at most 64 bytes\n").with(&[Fifo("cwd/fifo")]),
    // One of our containers whose namespace file was replaced by another
    // tool: what is there now is left alone, and nothing is run in it.
    case(&["rm", "c9"], 1, "ipvlan: rm c9: $T/netns/c9 is not a network namespace: it is a FIFO; ipvlan did not make it and leaves it alone\n").with(&[C9, Fifo("netns/c9")]),
    case(&["rm", "c9"], 1, "ipvlan: rm c9: $T/netns/c9 is not a network namespace: it is a directory; ipvlan did not make it and leaves it alone\n").with(&[C9, Mkdir("netns/c9")]),
    case(&["rm", "c9"], 1, "ipvlan: rm c9: $T/netns/c9 is a symbolic link; ipvlan did not make it and leaves it alone\n").with(&[C9, Symlink("netns/c9", "/proc/self/ns/net")]),
    case(&["rm", "c9"], 1, "ipvlan: rm c9: $T/netns/c9 is a symbolic link; ipvlan did not make it and leaves it alone\n").with(&[C9, Mkdir("cwd/src"), Write("cwd/src/data", "another tool's\n"), Mkdir("cwd/mnt"), Bind("cwd/src", "cwd/mnt"), Symlink("netns/c9", "$T/cwd/mnt")]),
    case(&["rm", "-f", "c9"], 1, "ipvlan: rm c9: $T/netns/c9 is the network namespace ipvlan itself runs in, not a container's; ipvlan did not make it and leaves it alone\n").with(&[C9, Own("c9")]),
    case(&["rm", "c9"], 1, "ipvlan: rm c9: $T/netns/c9 is not a network namespace: it is a uts namespace; ipvlan did not make it and leaves it alone\n").with(&[C9, Write("netns/c9", ""), Bind("/proc/self/ns/uts", "netns/c9")]),
    case(&["exec", "c9", "true"], 125, "ipvlan: exec c9: $T/netns/c9 is not a network namespace: it is a FIFO; ipvlan did not make it and leaves it alone\n").with(&[C9, Fifo("netns/c9")]),
    case(&["exec", "c9", "true"], 125, "ipvlan: exec c9: $T/netns/c9 is a symbolic link; ipvlan did not make it and leaves it alone\n").with(&[C9, Symlink("netns/c9", "/proc/self/ns/net")]),
    case(&["exec", "c9", "true"], 125, "ipvlan: exec c9: $T/netns/c9 is the network namespace ipvlan itself runs in, not a container's; ipvlan did not make it and leaves it alone\n").with(&[C9, Own("c9")]),
    case(&["restore"], 1, "ipvlan: restore: container c9: $T/netns/c9 is not a network namespace: it is a FIFO; ipvlan did not make it and leaves it alone\n").stdout(RESTORED_NOTHING).with(&[C9, Fifo("netns/c9")]),
    case(&["restore"], 1, "ipvlan: restore: container c9: $T/netns/c9 is a symbolic link; ipvlan did not make it and leaves it alone\n").stdout(RESTORED_NOTHING).with(&[C9, File, Symlink("netns/c9", "$T/cwd/file")]),
    // Damaged and hostile state files: named, left exactly as they are.
    case(&["network", "create", "n2"], 1, "ipvlan: network create n2: damaged state file $T/state/networks/bad.json: invalid JSON at line 1 column 2: expected a string as object key; a new network could clash with the one it records (name, subnets, parent): repair it or move it out of the state directory first\n").with(&[BAD_JSON]),
    case(&["restore"], 1, "ipvlan: restore: damaged state file left as it is: $T/state/networks/bad.json: invalid JSON at line 1 column 2: expected a string as object key\n").stdout(RESTORED_NOTHING).with(&[BAD_JSON]),
    case(&["network", "ls"], 0, "ipvlan: warning: damaged state file left as it is: $T/state/networks/bad.json: invalid JSON at line 1 column 2: expected a string as object key\n").stdout(LS_HEADER).with(&[BAD_JSON]),
    // `ls --filter`, as Docker's: unknown keys and values named; filters of
    // one key are alternatives, of several keys all apply.
    case(&["network", "ls", "-f", "foo=bar"], 1, "ipvlan: network ls: invalid filter 'foo'\n"),
    case(&["network", "ls", "--filter", "name"], 1, "ipvlan: network ls: bad format of filter \"name\" (expected name=value)\n"),
    case(&["network", "ls", "-f", "type=x"], 1, "ipvlan: network ls: invalid filter 'type=x'\n"),
    case(&["network", "ls", "-q", "-f", "name=n1"], 0, "").stdout("6e3100000000\n").with(&[Network, DualStack]),
    case(&["network", "ls", "-q", "-f", "name=n1", "-f", "name=n6"], 0, "").stdout("6e3100000000\n6e3600000000\n").with(&[Network, DualStack]),
    case(&["network", "ls", "-q", "-f", "name=^n", "-f", "id=6e36"], 0, "").stdout("6e3600000000\n").with(&[Network, DualStack]),
    case(&["network", "ls", "-q", "-f", "name=1$", "-f", "driver=ipvlan", "-f", "type=custom", "-f", "scope=local"], 0, "").stdout("6e3100000000\n").with(&[Network, DualStack]),
    case(&["network", "ls", "-f", "label=a=b"], 0, "").stdout(LS_HEADER).with(&[Network]),
    // Read as Docker's `filters.ParseFlag`: an empty filter is none, the
    // key lower-cased, key and value trimmed (before: "invalid filter
    // 'NAME'", "bad format of filter", a value with its space matching
    // nothing).
    case(&["network", "ls", "-q", "-f", "NAME=n1"], 0, "").stdout("6e3100000000\n").with(&[Network, DualStack]),
    case(&["network", "ls", "-q", "-f", " name = n6 "], 0, "").stdout("6e3600000000\n").with(&[Network, DualStack]),
    case(&["network", "ls", "-q", "-f", ""], 0, "").stdout("6e3100000000\n6e3600000000\n").with(&[Network, DualStack]),
    // `dangling`, as Docker's (the prune idiom `ls -qf dangling=true`; an
    // invalid filter before): networks without an endpoint, or with one.
    case(&["network", "ls", "-q", "-f", "dangling=true"], 0, "").stdout("6e3600000000\n").with(&[Network, DualStack, Attached]),
    case(&["network", "ls", "-q", "-f", "dangling=1"], 0, "").stdout("6e3100000000\n6e3600000000\n").with(&[Network, DualStack]),
    case(&["network", "ls", "-q", "-f", "dangling=false"], 0, "").stdout("6e3100000000\n").with(&[Network, DualStack, Attached]),
    case(&["network", "ls", "-q", "-f", "dangling=0", "-f", "name=n6"], 0, "").stdout("").with(&[Network, DualStack, Attached]),
    case(&["network", "ls", "-f", "dangling=yes"], 1, "ipvlan: network ls: invalid filter 'dangling=yes'\n"),
    // Two values of `dangling` are refused, as Docker refuses them (before:
    // taken as alternatives, every network listed).
    case(&["network", "ls", "-f", "dangling=true", "-f", "dangling=false"], 1, "ipvlan: network ls: invalid filter 'dangling=[false true]'\n"),
    case(&["network", "ls", "-q", "-f", "dangling=true", "-f", "dangling=true"], 0, "").stdout("6e3100000000\n").with(&[Network]),
    case(&["network", "ls", "-f", "name=^1"], 0, "").stdout(LS_HEADER).with(&[Network]),
    case(&["network", "rm", "n2"], 1, "ipvlan: network rm n2: network n2 not found; a damaged state file may hold it: $T/state/networks/bad.json: invalid JSON at line 1 column 2: expected a string as object key\n").with(&[BAD_JSON]),
    // `-f` passes over a network that is not there, not one a damaged
    // record may hold.
    case(&["network", "rm", "-f", "n2"], 1, "ipvlan: network rm n2: network n2 not found; a damaged state file may hold it: $T/state/networks/bad.json: invalid JSON at line 1 column 2: expected a string as object key\n").with(&[BAD_JSON]),
    // ... but a damaged endpoint record of another network holds none.
    case(&["network", "rm", "-f", "n2"], 0, "").with(&[Network, Mkdir("state/endpoints/6e31000000000000000000000000000000000000000000000000000000000000"), Write("state/endpoints/6e31000000000000000000000000000000000000000000000000000000000000/bad.json", "{not json")]),
    // A name that is another network's ID prefix ("6e31" starts n1's ID)
    // names the network of that name, even half-created or damaged: before,
    // `rm` removed n1 and `connect` attached to it.
    case(&["network", "rm", "6e31"], 1, "ipvlan: network rm 6e31: network 6e31 was left half-created by an interrupted `network create`; run `ipvlan restore` to roll it back\n").with(&[Network, CreatingAs("6e31")]),
    case(&["network", "connect", "6e31", "c1"], 1, "ipvlan: network connect 6e31 c1: network 6e31 was left half-created by an interrupted `network create`; run `ipvlan restore` to roll it back\n").with(&[Network, CreatingAs("6e31"), Container]),
    // A network a killed `network rm` left half-removed takes no endpoint
    // (before: attached, and restore could then not finish the removal).
    case(&["network", "connect", "gone", "c1"], 1, "ipvlan: network connect gone c1: network gone was left half-removed by an interrupted `network rm`; run `ipvlan restore` or `ipvlan network rm gone` to finish it\n").with(&[RemovingAs("gone"), Container]),
    // A name the run drew is no container anyone knows of: not said.
    case(&["run", "--net", "nosuch", "true"], 125, "ipvlan: run: network nosuch not found\n"),
    case(&["run", "--net", "gone", "--name", "r1", "true"], 125, "ipvlan: run: connecting r1: network gone was left half-removed by an interrupted `network rm`; run `ipvlan restore` or `ipvlan network rm gone` to finish it\n").with(&[RemovingAs("gone")]),
    case(&["network", "rm", "6e31"], 1, "ipvlan: network rm 6e31: network 6e31 may be the one in a damaged state file, so it is not taken for an ID prefix: $T/state/networks/bad.json: invalid JSON at line 1 column 2: expected a string as object key\n").with(&[Network, BAD_JSON]),
    case(&["network", "connect", "n2", "c1"], 1, "ipvlan: network connect n2 c1: network n2 not found; a damaged state file may hold it: $T/state/networks/bad.json: invalid JSON at line 1 column 2: expected a string as object key\n").with(&[BAD_JSON, Container]),
    case(&["network", "disconnect", "n2", "c1"], 1, "ipvlan: network disconnect n2 c1: network n2 not found; a damaged state file may hold it: $T/state/networks/bad.json: invalid JSON at line 1 column 2: expected a string as object key\n").with(&[BAD_JSON]),
    case(&["network", "inspect", "n2"], 1, "ipvlan: network inspect: network n2 not found; a damaged state file may hold it: $T/state/networks/bad.json: invalid JSON at line 1 column 2: expected a string as object key\n").stdout("[]\n").with(&[BAD_JSON]),
    case(&["network", "create", "n2"], 1, "ipvlan: network create n2: damaged state file $T/state/networks/big.json: is larger than 1048576 bytes, more than any state file; a new network could clash with the one it records (name, subnets, parent): repair it or move it out of the state directory first\n").with(&[Oversized("state/networks/big.json")]),
    case(&["restore"], 1, "ipvlan: restore: damaged state file left as it is: $T/state/networks/big.json: is larger than 1048576 bytes, more than any state file\n").stdout(RESTORED_NOTHING).with(&[Oversized("state/networks/big.json")]),
    case(&["network", "create", "n2"], 1, "ipvlan: network create n2: damaged state file $T/state/networks/fifo.json: is a FIFO, not a regular file; a new network could clash with the one it records (name, subnets, parent): repair it or move it out of the state directory first\n").with(&[Fifo("state/networks/fifo.json")]),
    case(&["restore"], 1, "ipvlan: restore: damaged state file left as it is: $T/state/networks/fifo.json: is a FIFO, not a regular file\n").stdout(RESTORED_NOTHING).with(&[Fifo("state/networks/fifo.json")]),
    case(&["network", "create", "n2"], 1, "ipvlan: network create n2: damaged state file $T/state/networks/link.json: is a symbolic link; state files are never followed; a new network could clash with the one it records (name, subnets, parent): repair it or move it out of the state directory first\n").with(&[Write("cwd/record.json", "{}"), Symlink("state/networks/link.json", "$T/cwd/record.json")]),
    case(&["network", "ls"], 0, "ipvlan: warning: damaged state file left as it is: $T/state/networks/zero.json: is a symbolic link; state files are never followed\n").stdout(LS_HEADER).with(&[Symlink("state/networks/zero.json", "/dev/zero")]),
    case(&["network", "create", "n2"], 1, "ipvlan: network create n2: damaged state file $T/state/networks/v2.json: network record has version 2, this program reads version 1; a new network could clash with the one it records (name, subnets, parent): repair it or move it out of the state directory first\n").with(&[Write("state/networks/v2.json", "{\"version\": 2, \"name\": \"n2\"}")]),
    case(&["restore"], 1, "ipvlan: restore: damaged state file left as it is: $T/state/networks/v2.json: network record has version 2, this program reads version 1\n").stdout(RESTORED_NOTHING).with(&[Write("state/networks/v2.json", "{\"version\": 2, \"name\": \"n2\"}")]),
    case(&["network", "create", "n2"], 1, "ipvlan: network create n2: damaged state file $T/state/networks/v1.json: network record has no numeric \"version\"; a new network could clash with the one it records (name, subnets, parent): repair it or move it out of the state directory first\n").with(&[Write("state/networks/v1.json", "{\"version\": \"1\"}")]),
    case(&["network", "create", "n2"], 1, "ipvlan: network create n2: damaged state file $T/state/networks/dup.json: invalid JSON at line 1 column 30: duplicate object key; a new network could clash with the one it records (name, subnets, parent): repair it or move it out of the state directory first\n").with(&[Write("state/networks/dup.json", "{\"version\": 1, \"name\": \"n2\", \"name\": \"n3\"}")]),
    case(&["restore"], 1, "ipvlan: restore: damaged state file left as it is: $T/state/networks/dup.json: invalid JSON at line 1 column 30: duplicate object key\n").stdout(RESTORED_NOTHING).with(&[Write("state/networks/dup.json", "{\"version\": 1, \"name\": \"n2\", \"name\": \"n3\"}")]),
    case(&["network", "create", "n2"], 1, "ipvlan: network create n2: damaged state file $T/state/networks/cut.json: invalid JSON at line 1 column 14: unexpected end of input in an object; a new network could clash with the one it records (name, subnets, parent): repair it or move it out of the state directory first\n").with(&[Write("state/networks/cut.json", "{\"version\": 1")]),
    case(&["network", "create", "n2"], 1, "ipvlan: network create n2: damaged state file $T/state/networks/array.json: network record is not a JSON object; a new network could clash with the one it records (name, subnets, parent): repair it or move it out of the state directory first\n").with(&[Write("state/networks/array.json", "[]")]),
    case(&["network", "rm", "n1"], 1, "ipvlan: network rm n1: network n1 has endpoint records that cannot be read ($T/state/endpoints/6e31000000000000000000000000000000000000000000000000000000000000/bad.json: invalid JSON at line 1 column 2: expected a string as object key); repair them or move them out of the state directory first\n").with(&[Network, Mkdir("state/endpoints/6e31000000000000000000000000000000000000000000000000000000000000"), Write("state/endpoints/6e31000000000000000000000000000000000000000000000000000000000000/bad.json", "{not json")]),
    case(&["network", "inspect", "n1"], 0, "ipvlan: warning: damaged state file left as it is: $T/state/endpoints/6e31000000000000000000000000000000000000000000000000000000000000/bad.json: invalid JSON at line 1 column 2: expected a string as object key\n").stdout(INSPECT_N1).with(&[Network, Mkdir("state/endpoints/6e31000000000000000000000000000000000000000000000000000000000000"), Write("state/endpoints/6e31000000000000000000000000000000000000000000000000000000000000/bad.json", "{not json")]),
    case(&["exec", "c1", "true"], 125, "ipvlan: exec c1: state directory: corrupt state file $T/state/records/containers/c1.json: invalid JSON at line 1 column 2: expected a string as object key\n").with(&[Write("state/records/containers/c1.json", "{not json")]),
    case(&["rm", "c1"], 1, "ipvlan: rm c1: state directory: corrupt state file $T/state/records/containers/c1.json: invalid JSON at line 1 column 2: expected a string as object key\n").with(&[Write("state/records/containers/c1.json", "{not json")]),
    case(&["ps"], 0, "ipvlan: warning: damaged state file left as it is: $T/state/records/containers/c1.json: invalid JSON at line 1 column 2: expected a string as object key\n").stdout("NAME      NETWORKS   ADDRESSES\n").with(&[Write("state/records/containers/c1.json", "{not json")]),
    // Listings take no lock: a hostile lock file is not theirs to refuse
    // (writers refuse it, below), and is left untouched.
    case(&["network", "ls"], 0, "").stdout(LS_HEADER).with(&[File, Remove("state/lock"), Symlink("state/lock", "$T/cwd/file")]),
    case(&["network", "create", "n2"], 1, "ipvlan: network create n2: state directory: refusing $T/state/lock: is a symbolic link; state files are never followed\n").with(&[File, Remove("state/lock"), Symlink("state/lock", "$T/cwd/file")]),
    case(&["restore"], 1, "ipvlan: restore: state directory: refusing $T/state/lock: is a FIFO, not a regular file\n").with(&[Remove("state/lock"), Fifo("state/lock")]),
    // Directories of the state: real, ours, writable by us alone.
    // The root is checked when the store is opened, each subdirectory
    // where a command first uses it (before it changes anything): under a
    // root that lets others in (0755 here), since below a private one
    // (0700) only a link or a non-directory is refused (see store_trust).
    case(&["network", "ls"], 1, "ipvlan: network ls: state directory: refusing $T/state/networks: is writable by group and others (mode 0777); only its owner may write in it (chmod go-w)\n").with(&[Chmod("state", 0o755), Chmod("state/networks", 0o777)]),
    case(&["network", "create", "n2"], 1, "ipvlan: network create n2: state directory: refusing $T/state/networks: is writable by group and others (mode 0777); only its owner may write in it (chmod go-w)\n").with(&[Chmod("state", 0o755), Chmod("state/networks", 0o777)]),
    case(&["network", "ls"], 1, "ipvlan: opening state directory $T/state: state directory: refusing $T/state: is writable by group and others (mode 0777); only its owner may write in it (chmod go-w)\n").with(&[Chmod("state", 0o777)]),
    case(&["network", "ls"], 1, "ipvlan: opening state directory $T/state: state directory: refusing $T/state: is owned by uid 65534, not by uid 0 that runs ipvlan\n").with(&[ToNobody("state")]),
    case(&["restore"], 1, "ipvlan: opening state directory $T/state: state directory: refusing $T/state: is owned by uid 65534, not by uid 0 that runs ipvlan\n").with(&[ToNobody("state")]),
    case(&["ps"], 1, "ipvlan: ps: state directory: refusing $T/state/records/containers: is owned by uid 65534, not by uid 0 that runs ipvlan\n").with(&[Chmod("state", 0o755), ToNobody("state/records/containers")]),
    // `ls` reads network records only; `inspect` names the endpoint directory it cannot trust.
    case(&["network", "ls"], 0, "").stdout("NETWORK ID     NAME      DRIVER    SCOPE\n6e3100000000   n1        ipvlan    local\n").with(&[Network, Chmod("state", 0o755), Mkdir("state/endpoints/6e31000000000000000000000000000000000000000000000000000000000000"), ToNobody("state/endpoints/6e31000000000000000000000000000000000000000000000000000000000000")]),
    case(&["network", "inspect", "n1"], 1, "ipvlan: network inspect n1: state directory: refusing $T/state/endpoints/6e31000000000000000000000000000000000000000000000000000000000000: is owned by uid 65534, not by uid 0 that runs ipvlan\n").stdout("[]\n").with(&[Network, Chmod("state", 0o755), Mkdir("state/endpoints/6e31000000000000000000000000000000000000000000000000000000000000"), ToNobody("state/endpoints/6e31000000000000000000000000000000000000000000000000000000000000")]),
    case(&["network", "ls"], 1, "ipvlan: opening state directory $T/state: state directory: refusing $T/state: is a symbolic link; the state directory and its subdirectories must be real directories\n").with(&[Rename("state", "real"), Symlink("state", "real")]),
    case(&["rm", "c1"], 1, "ipvlan: rm c1: state directory: refusing $T/state/logs: is a regular file, not a directory\n").with(&[Container, Rename("state/logs", "cwd/logs"), Write("state/logs", "")]),
    case(&["rm", "c1"], 1, "ipvlan: rm c1: state directory: refusing $T/state/hosts: is a symbolic link; the state directory and its subdirectories must be real directories\n").with(&[Container, Rename("state/hosts", "cwd/hosts"), Symlink("state/hosts", "$T/cwd/hosts")]),
    case(&["--state-dir", "$T/cwd/file", "network", "ls"], 1, "ipvlan: opening state directory $T/cwd/file: state directory: refusing $T/cwd/file: is a regular file, not a directory\n").bare().with(&[File]),
    case(&["--state-dir", "$T/cwd/fifo", "network", "ls"], 1, "ipvlan: opening state directory $T/cwd/fifo: state directory: refusing $T/cwd/fifo: is a FIFO, not a directory\n").bare().with(&[Fifo("cwd/fifo")]),
    case(&["--state-dir", "/dev/null", "network", "ls"], 1, "ipvlan: opening state directory /dev/null: state directory: refusing /dev/null: is a character device, not a directory\n").bare(),
    // The environment's directories: files, relative paths, links.
    case(&["network", "ls"], 1, "ipvlan: opening state directory $T/cwd/file: state directory: refusing $T/cwd/file: is a regular file, not a directory\n").bare().with(&[File]).env(&[("IPVLAN_STATE_DIR", "$T/cwd/file")]),
    case(&["network", "ls"], 1, "ipvlan: opening state directory $T/cwd/file: state directory: refusing $T/cwd/file: is a regular file, not a directory\n").bare().with(&[File]).env(&[("IPVLAN_STATE_DIR", "file")]),
    case(&["network", "ls"], 1, "ipvlan: opening state directory $T/state/: state directory: refusing $T/state: is a symbolic link; the state directory and its subdirectories must be real directories\n").bare().with(&[Rename("state", "real"), Symlink("state", "real")]).env(&[("IPVLAN_STATE_DIR", "$T/state/")]),
    case(&["network", "ls"], 1, "ipvlan: opening state directory $T/state: state directory: refusing $T/state: is writable by group and others (mode 0777); only its owner may write in it (chmod go-w)\n").bare().with(&[Chmod("state", 0o777)]).env(&[("IPVLAN_STATE_DIR", "../state")]),
    case(&["network", "ls"], 1, "ipvlan: opening state directory $T/state: state directory: refusing $T/state: is owned by uid 65534, not by uid 0 that runs ipvlan\n").bare().with(&[ToNobody("state")]).env(&[("IPVLAN_STATE_DIR", "./../state")]),
    case(&["network", "connect", "n1", "c1"], 1, "ipvlan: network connect n1 c1: opening namespace $T/cwd/file/c1: Not a directory (os error 20)\n").with(&[Network, File]).env(&[("IPVLAN_NETNS_DIR", "$T/cwd/file")]),
    case(&["network", "connect", "n1", "c1"], 1, "ipvlan: network connect n1 c1: container c1 not found\n").with(NET).env(&[("IPVLAN_NETNS_DIR", "rel")]),
    case(&["network", "connect", "n1", "net"], 1, "ipvlan: network connect n1 net: /proc/self/ns/net is the network namespace ipvlan itself runs in, where the networks' parent interfaces are; only another namespace can be attached\n").with(NET).env(&[("IPVLAN_NETNS_DIR", "/proc/self/ns")]),
    case(&["network", "connect", "n1", "plant"], 1, "ipvlan: network connect n1 plant: $T/hostile/plant is not a network namespace: it is a FIFO\n").with(&[Network, Mkdir("hostile"), Fifo("hostile/plant"), Chmod("hostile", 0o777), ToNobody("hostile")]).env(&[("IPVLAN_NETNS_DIR", "../hostile")]),
    case(&["exec", "c1", "true"], 125, "ipvlan: exec c1: No such container: c1\n").with(&[File]).env(&[("IPVLAN_NETNS_DIR", "file")]),
    case(&["exec", "net", "true"], 125, "ipvlan: exec net: No such container: net\n").env(&[("IPVLAN_NETNS_DIR", "/proc/self/ns")]),
    case(&["rm", "net"], 1, "ipvlan: rm net: No such container: net\n").env(&[("IPVLAN_NETNS_DIR", "/proc/self/ns")]),
    case(&["run", "--net", "n1", "--name", "c7", "true"], 125, "ipvlan: run: creating the container: creating namespace c7: $T/cwd/file is not a directory\n").with(&[Network, File]).env(&[("IPVLAN_NETNS_DIR", "file")]),
    case(&["run", "--net", "n1", "--name", "c7", "true"], 125, "ipvlan: run: connecting c7 to network n1: reading $T/cwd/file/c7: Not a directory (os error 20)\n").with(&[Network, File]).env(&[("IPVLAN_ETC_NETNS_DIR", "$T/cwd/file")]),
    case(&["run", "--net", "n1", "--name", "c7", "true"], 125, "ipvlan: run: connecting c7 to network n1: reading $T/cwd/file/c7: Not a directory (os error 20)\n").with(&[Network, File]).env(&[("IPVLAN_ETC_NETNS_DIR", "file")]),
];

/// A case's directory and the configuration the binary gets through it.
struct CaseDir {
    root: PathBuf,
}

impl CaseDir {
    fn config(&self) -> Config {
        Config {
            state_dir: self.root.join("state"),
            netns_dir: self.root.join("netns"),
            etc_netns_dir: self.root.join("etc-netns"),
        }
    }

    /// `text` with `$T` the case's directory, `$LONGNAME` a file name
    /// over NAME_MAX and `$LONGPATH` a relative path over PATH_MAX.
    fn expand(&self, text: &str) -> String {
        text.replace("$LONGNAME", &"n".repeat(256))
            .replace("$LONGPATH", &format!("{}p", "p/".repeat(2100)))
            .replace("$T", self.root.to_str().expect("UTF-8 scratch path"))
    }

    /// A path under the case's directory.
    fn at(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }
}

fn record_network(state: &StateDir, name: &str, subnets: &[&str], creating: bool) -> String {
    let mut record = common::network(name, subnets);
    record.parent = "lo".into();
    record.parent_origin = ParentOrigin::Existing;
    record.options = vec![("parent".into(), "lo".into())];
    record.mtu = None;
    // Fixed, so that `inspect` prints the same document every run.
    record.created = Timestamp {
        secs: 1_714_564_800,
        nanos: 0,
    };
    if name == "n1" {
        record.subnets[0].aux = vec![("router".into(), "192.168.1.5".parse().unwrap())];
    }
    if creating {
        record.state = NetworkState::Creating;
    }
    state.lock().unwrap().put_network(&record).unwrap();
    record.id
}

fn set_up(dir: &CaseDir, fixtures: &[Fixture]) {
    let config = dir.config();
    fs::create_dir_all(dir.root.join("cwd")).unwrap();
    fs::create_dir_all(&config.netns_dir).unwrap();
    let manager = Manager::open(config.clone()).unwrap();
    let state = StateDir::open(&config.state_dir).unwrap();
    // The first lock makes the lock file: the state as every later
    // command finds it (listings take no lock).
    drop(state.lock().unwrap());
    for fixture in fixtures {
        match fixture {
            Network => {
                record_network(&state, "n1", &["192.168.1.0/24"], false);
            }
            DualStack => {
                record_network(&state, "n6", &["192.168.6.0/24", "2001:db8:6::/64"], false);
            }
            Creating => {
                record_network(&state, "half", &["192.168.9.0/24"], true);
            }
            CreatingAs(name) => {
                record_network(&state, name, &["192.168.8.0/24"], true);
            }
            RemovingAs(name) => {
                record_network(&state, name, &["192.168.7.0/24"], false);
                let mut record = state.network_by_name(name).unwrap();
                record.state = NetworkState::Removing;
                state.lock().unwrap().put_network(&record).unwrap();
            }
            Detaching | Attached => {
                let network = state
                    .networks()
                    .unwrap()
                    .into_iter()
                    .find(|n| n.name == "n1")
                    .expect("endpoint fixtures come after Network");
                let (name, address, endpoint_state) = match fixture {
                    Detaching => ("c1", "192.168.1.2/24", EndpointState::Detaching),
                    _ => ("c2", "192.168.1.3/24", EndpointState::Attached),
                };
                let mut endpoint = common::endpoint(&network, name, Some(address), None);
                endpoint.container = Some(name.into());
                endpoint.netns = config.netns_dir.join(name).display().to_string();
                endpoint.state = endpoint_state;
                state.lock().unwrap().put_endpoint(&endpoint).unwrap();
            }
            Container => {
                manager.create_container(Some("c1")).unwrap();
            }
            File => fs::write(dir.root.join("cwd/file"), b"not a directory\n").unwrap(),
            Fifo(path) => run_tool(Command::new("mkfifo").arg(dir.at(path))),
            Write(path, text) => fs::write(dir.at(path), dir.expand(text)).unwrap(),
            Oversized(path) => {
                let head = "{\"version\": 1, \"pad\": \"";
                let pad = RECORD_MAX as usize + 1 - head.len() - 2;
                fs::write(dir.at(path), format!("{head}{}\"}}", "x".repeat(pad))).unwrap();
            }
            Symlink(path, target) => {
                std::os::unix::fs::symlink(dir.expand(target), dir.at(path)).unwrap()
            }
            Remove(path) => fs::remove_file(dir.at(path)).unwrap(),
            Mkdir(path) => {
                fs::create_dir(dir.at(path)).unwrap();
                fs::set_permissions(dir.at(path), fs::Permissions::from_mode(0o700)).unwrap();
            }
            Bind(from, to) => run_tool(
                Command::new("mount")
                    .arg("--bind")
                    .arg(dir.at(from))
                    .arg(dir.at(to)),
            ),
            Rename(from, to) => fs::rename(dir.at(from), dir.at(to)).unwrap(),
            Chmod(path, mode) => {
                fs::set_permissions(dir.at(path), fs::Permissions::from_mode(*mode)).unwrap()
            }
            ToNobody(path) => {
                std::os::unix::fs::lchown(dir.at(path), Some(NOBODY), Some(NOBODY)).unwrap()
            }
            Foreign(name) => drop(netns::create_named(&config.netns_dir, name).unwrap()),
            Own(name) => {
                let path = config.netns_dir.join(name);
                fs::write(&path, b"").unwrap();
                run_tool(
                    Command::new("mount")
                        .arg("--bind")
                        .arg("/proc/thread-self/ns/net")
                        .arg(&path),
                );
            }
        }
    }
}

/// Runs a tool a fixture needs; it must succeed.
fn run_tool(command: &mut Command) {
    let status = command.status().expect("runs the fixture's tool");
    assert!(status.success(), "{command:?}: {status}");
}

/// Every entry under `root`: relative path -> type, mode and content (or
/// link target).
fn files(root: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let relative = path.strip_prefix(root).unwrap().to_path_buf();
            let meta = fs::symlink_metadata(&path).unwrap();
            let mode = meta.mode() & 0o7777;
            let kind = meta.file_type();
            let shown = if kind.is_dir() {
                walk(root, &path, out);
                format!("dir {mode:o}")
            } else if kind.is_symlink() {
                format!("symlink -> {}", fs::read_link(&path).unwrap().display())
            } else if kind.is_file() {
                match fs::read(&path) {
                    // The store's lock: its first page is the format mark;
                    // the rest, the commit log, records commits (a refused
                    // command may commit the undoing of its own writes),
                    // not state, and is shown by its length only.
                    Ok(bytes) if relative.ends_with("state/lock") && bytes.len() > 4096 => format!(
                        "file {mode:o} {:?} and a commit log",
                        String::from_utf8_lossy(&bytes[..4096]).trim_end_matches('\0'),
                    ),
                    Ok(bytes) => format!("file {mode:o} {:?}", String::from_utf8_lossy(&bytes)),
                    // A namespace file (nsfs) cannot be read; its identity can.
                    Err(_) => format!("file {mode:o} inode {}", meta.ino()),
                }
            } else if kind.is_socket() || kind.is_fifo() {
                format!("special {mode:o}")
            } else {
                format!("other {mode:o}")
            };
            out.insert(relative, shown);
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn links() -> Vec<String> {
    let mut links: Vec<String> = Handle::new()
        .unwrap()
        .links()
        .unwrap()
        .into_iter()
        .map(|link| format!("{link:?}"))
        .collect();
    links.sort();
    links
}

/// Runs one case in `dir`; returns what differs from the catalogue.
fn run_case(case: &Case, dir: &CaseDir) -> Vec<String> {
    set_up(dir, case.fixtures);
    let before = (files(&dir.root), links());
    let mut command = Command::new(BIN);
    command
        .current_dir(dir.root.join("cwd"))
        .env_remove("IPVLAN_STATE_DIR")
        .env("IPVLAN_NETNS_DIR", dir.config().netns_dir)
        .env("IPVLAN_ETC_NETNS_DIR", dir.config().etc_netns_dir);
    if case.state_flag {
        command.arg("--state-dir").arg(dir.config().state_dir);
    }
    command.args(case.args.iter().map(|arg| raw_bytes(&dir.expand(arg))));
    for (name, value) in case.env {
        command.env(name, dir.expand(value));
    }
    let (code, stdout, stderr) = run_within_deadline(&mut command);
    let after = (files(&dir.root), links());

    let mut wrong = Vec::new();
    if code != Some(case.code) {
        wrong.push(format!("exit code {code:?}, expected {}", case.code));
    }
    if stderr != dir.expand(case.stderr) {
        wrong.push(format!(
            "stderr\n    got:      {stderr:?}\n    expected: {:?}",
            dir.expand(case.stderr)
        ));
    }
    if stdout != dir.expand(case.stdout) {
        wrong.push(format!("stdout {stdout:?}, expected {:?}", case.stdout));
    }
    if after.0 != before.0 {
        wrong.push(format!(
            "files changed:\n    before: {:#?}\n    after:  {:#?}",
            before.0, after.0
        ));
    }
    if after.1 != before.1 {
        wrong.push(format!(
            "links changed:\n    before: {:#?}\n    after:  {:#?}",
            before.1, after.1
        ));
    }
    wrong
}

/// An argument as the kernel hands it over: `%FF` in the catalogue stands
/// for the byte 0xFF, which no UTF-8 text holds.
fn raw_bytes(arg: &str) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStringExt;
    let mut bytes = Vec::new();
    for (at, piece) in arg.split("%FF").enumerate() {
        if at > 0 {
            bytes.push(0xFF);
        }
        bytes.extend_from_slice(piece.as_bytes());
    }
    std::ffi::OsString::from_vec(bytes)
}

/// Runs `command` with no input; its exit code (`None` when killed at
/// [`DEADLINE`]), stdout and stderr.
fn run_within_deadline(command: &mut Command) -> (Option<i32>, String, String) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs the binary");
    // Read while it runs, so a long message cannot fill a pipe and stall it.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        let mut pipe = pipe.expect("piped");
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + DEADLINE;
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    (code, stdout.join().unwrap(), stderr.join().unwrap())
}

/// Deletes a case's namespaces and the run dir's self mount.
fn tear_down(dir: &CaseDir) {
    let run_dir = dir.config().netns_dir;
    for name in netns::list_named(&run_dir).unwrap_or_default() {
        let _ = netns::delete_named(&run_dir, &name);
    }
    let _ = netns::release_run_dir(&run_dir);
}

#[test]
fn every_bad_input_is_refused_with_its_message_and_changes_nothing() {
    common::privilege::require_root();
    assert!(
        CASES.len() >= 140,
        "the catalogue shrank to {}",
        CASES.len()
    );
    let base = common::TempDir::new("bad-input");
    let failures = netns::run_in_new_with_private_dir(base.path(), || {
        // Links of another tool, which no refusal may touch.
        let host = Handle::new().unwrap();
        host.link_add(&LinkSpec::veth("foreign0", "foreign1"))
            .unwrap();
        let mut failures = Vec::new();
        for (n, case) in CASES.iter().enumerate() {
            let dir = CaseDir {
                root: base.path().join(format!("case-{n}")),
            };
            let wrong = run_case(case, &dir);
            tear_down(&dir);
            if !wrong.is_empty() {
                failures.push(format!(
                    "case {n} {:?} (env {:?}):\n  {}",
                    case.args,
                    case.env,
                    wrong.join("\n  ")
                ));
            }
        }
        failures
    })
    .expect("a private mount and network namespace");
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

/// Without root, the catalogue fails with the one line every privileged
/// test gives.
/// `network ls` (and `-q`) lists networks in natural order of their
/// names, as `docker network ls` does (`b9` before `b10`); before, in the
/// order they were made.
#[test]
fn network_ls_lists_names_in_natural_order() {
    let dir = common::TempDir::new("ls-order");
    let state_dir = dir.path().join("state");
    let state = StateDir::open(&state_dir).unwrap();
    let mut ids = BTreeMap::new();
    for (name, subnet) in [
        ("b10", "10.1.0.0/24"),
        ("a", "10.2.0.0/24"),
        ("b9", "10.3.0.0/24"),
    ] {
        ids.insert(name, record_network(&state, name, &[subnet], false));
    }
    let ls = |args: &[&str]| {
        let output = Command::new(BIN)
            .args(args)
            .env("IPVLAN_STATE_DIR", &state_dir)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(0), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let table = ls(&["network", "ls"]);
    let names: Vec<&str> = table
        .lines()
        .skip(1)
        .filter_map(|line| line.split_whitespace().nth(1))
        .collect();
    assert_eq!(names, ["a", "b9", "b10"], "{table}");
    let quiet = ls(&["network", "ls", "-q", "--no-trunc"]);
    let expected: Vec<&str> = ["a", "b9", "b10"].iter().map(|n| ids[n].as_str()).collect();
    assert_eq!(quiet.lines().collect::<Vec<_>>(), expected);
}

#[test]
fn without_root_the_catalogue_fails_with_one_reason() {
    common::privilege::assert_unprivileged_run_fails_with_one_reason(
        "without_root_the_catalogue_fails_with_one_reason",
    );
}
