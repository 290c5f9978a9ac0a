//! The network configuration on stdin: the reference ipvlan plugin's keys,
//! ours on top (`flag`, `NAME.VLANID` masters), and the `ipam` section.
//!
//! Checked in the reference library's order, so that the same bad input
//! gets the same code from both: JSON (code 6), then `name` (code 7), then
//! `cniVersion` (code 1), then whether that version allows the verb
//! (code 1), then the plugin's own keys (code 7; the reference answers 999
//! for these, as it answers every plain error, but the spec's code for a
//! bad configuration is 7). Unknown keys are ignored, as the spec asks.
//!
//! DEL reads only what releasing needs: a DEL must succeed for a config
//! whose master is gone or whose mode is misspelt (the runtime replays the
//! config of a failed ADD), so the link keys and `dns` of a DEL (and a GC)
//! are not checked.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;

use super::env::{check_ifname_to_release, is_valid_id, Attachment, Command};
use super::error::{CniError, ErrorCode};
use super::read::Obj;
use super::result::{CniResult, Dns, Route};
use super::version::Version;
use crate::driver::{IpvlanFlag, IpvlanMode, MAX_NAME_LEN};
use crate::ipam::{from_u128, to_u128, IpFamily};
use crate::json::{self, Value};
use crate::netns::is_valid_ifname;
use crate::text::escape_controls;

/// The `type` (and `ipam.type`) that names this binary.
pub const OUR_TYPE: &str = "ipvlan";

/// One parsed network configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetConf {
    /// The request's version: results and errors are written in it.
    pub cni_version: Version,
    /// The network's name (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`, at most
    /// [`MAX_NAME_LEN`] bytes: it names our network record).
    pub name: String,
    /// The top-level `type`: the plugin the runtime ran.
    pub plugin_type: String,
    /// The name this binary was run by (its file name in `CNI_PATH`):
    /// `ipvlan`, or another an operator installed it as (say `ipvlan-ng`,
    /// beside the reference plugin). As `type` or `ipam.type` it names us,
    /// as [`OUR_TYPE`] always does.
    pub own_name: String,
    /// How the link is made; `None` for DEL and GC, which need none of it.
    pub link: Option<LinkConf>,
    /// Top-level `dns`.
    pub dns: Dns,
    /// The `ipam` section; `None` in chained mode.
    pub ipam: Option<Ipam>,
    /// The previous plugin's result (or the runtime's cached one).
    pub prev_result: Option<CniResult>,
    /// Addresses asked for through `runtimeConfig.ips` and `args.cni.ips`
    /// (read only when we allocate ourselves: a delegated plugin reads them
    /// from the same stdin).
    pub requested_ips: Vec<IpAddr>,
    /// `runtimeConfig.ipRanges`: range sets put before the configured
    /// ones (read only when we allocate ourselves).
    pub runtime_ranges: Vec<RangeSet>,
    /// GC's list of attachments still in use (`cni.dev/valid-attachments`,
    /// or the older `cni.dev/attachments`); `None` when absent.
    pub valid_attachments: Option<Vec<Attachment>>,
}

/// The keys that shape the ipvlan link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkConf {
    /// `master`; `None` means the default-route interface, or the single
    /// interface of `prevResult`.
    pub master: Option<Master>,
    /// `mode` (`l2`, `l3`, `l3s`; empty means `l2`).
    pub mode: IpvlanMode,
    /// Ours: `flag` (`bridge`, `private`, `vepa`; empty means `bridge`).
    pub flag: IpvlanFlag,
    /// `mtu`; `None` (absent or 0) leaves the master's.
    pub mtu: Option<u32>,
    /// `linkInContainer`: the master is in the container's namespace.
    pub link_in_container: bool,
}

/// A `master` interface name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Master {
    /// The name as written.
    pub name: String,
    /// When the name has the form `NAME.VLANID` (one dot, VLAN id 1-4094):
    /// what to create if no link of that name exists. An existing link of
    /// that name is used as it is, whatever its kind.
    pub vlan: Option<VlanMaster>,
}

/// The 802.1Q link a `NAME.VLANID` master stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VlanMaster {
    /// The link it sits on.
    pub base: String,
    /// The VLAN id, 1-4094.
    pub id: u16,
}

/// Who allocates the addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ipam {
    /// Another plugin, found in `CNI_PATH` under this name.
    Delegated {
        /// `ipam.type`.
        plugin: String,
    },
    /// We do, from the state directory (`ipam.type` is `ipvlan`).
    Ours(HostLocal),
}

/// host-local's keys, which our own IPAM reads so that switching is a
/// change of `type`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostLocal {
    /// `ranges`, with the legacy top-level `subnet`... as the first set.
    /// Each set yields one address.
    pub range_sets: Vec<RangeSet>,
    /// `routes` to install.
    /// `ipam.routes`, every key kept (CNI 1.1.0's `table`, `priority`,
    /// `scope`, `mtu`, `advmss` too), as host-local hands them on.
    pub routes: Vec<Route>,
    /// `dataDir`: host-local's lease directory; we keep leases in our state
    /// directory, so it is read and ignored.
    pub data_dir: Option<PathBuf>,
    /// `resolvConf`: a file whose name servers go into the result's DNS.
    pub resolv_conf: Option<PathBuf>,
}

/// One range set: ranges of one family, one address taken from them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeSet(pub Vec<Range>);

/// One range of a set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Range {
    /// The subnet (no host bits).
    pub subnet: IpNet,
    /// First address handed out; default: the subnet's second address.
    pub range_start: Option<IpAddr>,
    /// Last address handed out; default: the last usable one.
    pub range_end: Option<IpAddr>,
    /// The gateway; default: the subnet's first host address.
    pub gateway: Option<IpAddr>,
}

/// Parses `text` as JSON; code 6 when it is not.
pub fn decode(stdin: &[u8]) -> Result<Value, CniError> {
    if stdin.iter().all(u8::is_ascii_whitespace) {
        return Err(CniError::decode("no network configuration on stdin"));
    }
    let text = std::str::from_utf8(stdin).map_err(|e| {
        CniError::decode("the network configuration is not valid UTF-8").with_details(e.to_string())
    })?;
    json::parse(text).map_err(|e| {
        CniError::decode("the network configuration is not valid JSON").with_details(e.to_string())
    })
}

/// The `cniVersion` a document asks for, as far as it can be read; errors
/// before the version is known are written in our newest. The key is
/// found as [`NetConf::read`] finds it (whatever its case, the last one
/// winning, as Go decodes it), so that an error is written in the version
/// the request ran as.
pub fn requested_version(doc: &Value) -> Option<Version> {
    Obj::new(doc, "", ErrorCode::InvalidConfig)
        .ok()?
        .get("cniVersion")
        .and_then(Value::as_str)
        .and_then(Version::parse)
}

impl NetConf {
    /// Reads the configuration `doc` for `command`, run as `ipvlan`.
    pub fn read(doc: &Value, command: Command) -> Result<NetConf, CniError> {
        NetConf::read_as(doc, command, OUR_TYPE)
    }

    /// Reads the configuration `doc` for `command`, this binary run by the
    /// name `own_name` (see [`NetConf::own_name`]).
    pub fn read_as(doc: &Value, command: Command, own_name: &str) -> Result<NetConf, CniError> {
        // Anything but an object fails to decode into a config at all.
        Obj::new(doc, "", ErrorCode::DecodingFailure)?;
        let top = Obj::new(doc, "", ErrorCode::InvalidConfig)?;
        let name = read_name(&top, command)?;
        let cni_version = Version::negotiate(match top.get("cniVersion") {
            None => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                return Err(CniError::decode(format!(
                    "cniVersion must be a string, not {}",
                    super::read::kind(other)
                )))
            }
        })?;
        check_verb(command, cni_version)?;
        let plugin_type = top.str("type")?.unwrap_or_default().to_string();
        let releasing = matches!(command, Command::Del | Command::Gc);
        let ipam = match top.obj("ipam")? {
            None => None,
            // As Go reads it for the reference plugins: a section without
            // a type names no IPAM plugin (chained on ADD, nothing to
            // release on DEL), so `"ipam": {}` is no section.
            Some(ipam) if matches!(ipam.str("type")?, None | Some("")) => None,
            Some(ipam) => Some(Ipam::read(&ipam, releasing, own_name)?),
        };
        // As another plugin's IPAM, the link keys are that plugin's (a
        // macvlan `mode` is not an ipvlan one): not ours to read.
        let as_ipam = !names_us(&plugin_type, own_name) && matches!(ipam, Some(Ipam::Ours(_)));
        let link = if releasing || as_ipam {
            None
        } else {
            Some(LinkConf::read(&top)?)
        };
        // Results only: a DEL or GC reads none (a bad one must not keep a
        // runtime replaying the config of a failed ADD from releasing).
        let dns = match top.obj("dns") {
            Ok(Some(dns)) if !releasing => Dns::read(&dns)?,
            Err(error) if !releasing => return Err(error),
            _ => Dns::default(),
        };
        // A DEL must release even when the cached result cannot be read.
        let prev_result = match top.get("prevResult") {
            None => None,
            Some(value) => match CniResult::read(value, "prevResult", ErrorCode::InvalidConfig) {
                Ok(result) => Some(result),
                Err(_) if command == Command::Del => None,
                Err(error) => return Err(error),
            },
        };
        let ours = matches!(ipam, Some(Ipam::Ours(_)));
        let (requested_ips, runtime_ranges) = if ours && !releasing {
            read_requests(&top)?
        } else {
            (Vec::new(), Vec::new())
        };
        // host-local puts the runtime's ranges before the configured ones
        // and refuses any two that overlap: one kept per subnet instead,
        // the runtime's silently took the place of a configured range
        // (its gateway and bounds) for the same subnet.
        if let (Some(Ipam::Ours(host_local)), false) = (&ipam, runtime_ranges.is_empty()) {
            check_sets(
                &mut runtime_ranges.iter().chain(&host_local.range_sets),
                "runtimeConfig.ipRanges, then ipam.ranges",
            )?;
        }
        // Only an ADD allocates: STATUS is never given `runtimeConfig`, so
        // a config whose ranges come only from there is ready without.
        if let Some(Ipam::Ours(host_local)) = &ipam {
            if command == Command::Add
                && host_local.range_sets.is_empty()
                && runtime_ranges.is_empty()
            {
                return Err(CniError::new(
                    ErrorCode::InvalidConfig,
                    "ipam: no IP ranges specified (set ipam.ranges or ipam.subnet, or pass runtimeConfig.ipRanges)",
                ));
            }
        }
        let valid_attachments = if command == Command::Gc {
            read_attachments(&top)?
        } else {
            None
        };
        Ok(NetConf {
            cni_version,
            name,
            plugin_type,
            own_name: own_name.to_string(),
            link,
            dns,
            ipam,
            prev_result,
            requested_ips,
            runtime_ranges,
            valid_attachments,
        })
    }
}

impl NetConf {
    /// Whether the binary runs as the IPAM plugin of another plugin: the
    /// top-level `type` is not ours, `ipam.type` is.
    pub fn serves_as_ipam(&self) -> bool {
        !names_us(&self.plugin_type, &self.own_name) && matches!(self.ipam, Some(Ipam::Ours(_)))
    }
}

/// Whether the plugin name `plugin` (a `type` or an `ipam.type`) is this
/// binary's: [`OUR_TYPE`], or the name it was run by. A runtime runs the
/// file `CNI_PATH` holds under the top-level `type`; when that is not
/// the name we were run by, another plugin ran us, by its `ipam.type`.
fn names_us(plugin: &str, own_name: &str) -> bool {
    plugin == OUR_TYPE || plugin == own_name
}

/// The reference library's name check (its messages), and our record's
/// length limit, which only a verb that could make a record applies: a
/// longer name never had one, so its DEL and GC have nothing to release
/// and succeed (the spec sets no limit, and a DEL must not fail for good).
fn read_name(top: &Obj<'_>, command: Command) -> Result<String, CniError> {
    let name = match top.get("name") {
        None => "",
        Some(Value::String(s)) => s,
        Some(other) => {
            return Err(CniError::decode(format!(
                "name must be a string, not {}",
                super::read::kind(other)
            )))
        }
    };
    if name.is_empty() {
        return Err(CniError::config("missing network name"));
    }
    if !is_valid_id(name) {
        return Err(CniError::config("invalid characters found in network name")
            .with_details(escape_controls(name).into_owned()));
    }
    if name.len() > MAX_NAME_LEN && !matches!(command, Command::Del | Command::Gc) {
        return Err(CniError::config(format!(
            "network name is {} bytes long: at most {MAX_NAME_LEN} are allowed (it names the network's record)",
            name.len()
        )));
    }
    Ok(name.to_string())
}

/// CHECK needs 0.4.0, STATUS and GC 1.1.0 (the reference library's codes
/// and messages).
fn check_verb(command: Command, version: Version) -> Result<(), CniError> {
    let needs = match command {
        Command::Check => Version::V0_4_0,
        Command::Status | Command::Gc => Version::V1_1_0,
        _ => return Ok(()),
    };
    if version < needs {
        return Err(CniError::new(
            ErrorCode::IncompatibleVersion,
            format!("config version does not allow {}", command.as_str()),
        )
        .with_details(format!(
            "{} needs cniVersion {} or later, the config has {}",
            command.as_str(),
            needs.as_str(),
            version.as_str()
        )));
    }
    Ok(())
}

impl LinkConf {
    fn read(top: &Obj<'_>) -> Result<LinkConf, CniError> {
        let master = match top.str("master")? {
            None | Some("") => None,
            Some(name) => Some(Master::parse(name)?),
        };
        let mode = match top.str("mode")? {
            None | Some("") => IpvlanMode::L2,
            Some(text) => IpvlanMode::ALL
                .into_iter()
                .find(|m| m.as_str() == text)
                .ok_or_else(|| {
                    CniError::config(format!(
                        "unknown ipvlan mode: {:?} (use l2, l3 or l3s)",
                        escape_controls(text)
                    ))
                })?,
        };
        let flag = match top.str("flag")? {
            None | Some("") => IpvlanFlag::Bridge,
            Some(text) => IpvlanFlag::ALL
                .into_iter()
                .find(|f| f.as_str() == text)
                .ok_or_else(|| {
                    CniError::config(format!(
                        "unknown ipvlan flag: {:?} (use bridge, private or vepa)",
                        escape_controls(text)
                    ))
                })?,
        };
        let mtu = match top.u32("mtu")? {
            None | Some(0) => None,
            Some(mtu @ MIN_MTU..=MAX_MTU) => Some(mtu),
            Some(mtu) => {
                return Err(CniError::config(format!(
                    "mtu {mtu} is out of range: use 0 (the master's MTU) or {MIN_MTU} to {MAX_MTU}"
                )))
            }
        };
        Ok(LinkConf {
            master,
            mode,
            flag,
            mtu,
            link_in_container: top.bool("linkInContainer")?.unwrap_or(false),
        })
    }
}

/// The kernel's smallest MTU for an ipvlan link (`ETH_MIN_MTU`).
pub const MIN_MTU: u32 = 68;
/// The largest MTU any Ethernet-like master offers.
pub const MAX_MTU: u32 = 65535;

impl Master {
    /// Checks `name` as an interface name and finds a `NAME.VLANID` form
    /// (split as the CLI's `parent` option splits it: exactly one dot).
    pub fn parse(name: &str) -> Result<Master, CniError> {
        if !is_valid_ifname(name) {
            return Err(CniError::config(format!(
                "master {:?} is not a valid interface name: 1 to 15 bytes, no '/', ':', '%' or whitespace",
                escape_controls(name)
            )));
        }
        let vlan = match name.split_once('.') {
            Some((base, id))
                if !base.is_empty()
                    && !id.contains('.')
                    && !id.is_empty()
                    && id.bytes().all(|b| b.is_ascii_digit()) =>
            {
                match id.parse::<u16>() {
                    Ok(id @ 1..=4094) => Some(VlanMaster {
                        base: base.to_string(),
                        id,
                    }),
                    _ => None,
                }
            }
            _ => None,
        };
        Ok(Master {
            name: name.to_string(),
            vlan,
        })
    }
}

impl Ipam {
    fn read(ipam: &Obj<'_>, releasing: bool, own_name: &str) -> Result<Ipam, CniError> {
        // A section without a type is none (see `NetConf::read`).
        let plugin = ipam.str("type")?.unwrap_or_default();
        // A plugin is looked up by name in each CNI_PATH directory; a path
        // would escape them.
        if plugin.contains('/') || plugin == "." || plugin == ".." {
            return Err(ipam.error(format!(
                "ipam.type {:?} must be a plugin name, not a path",
                escape_controls(plugin)
            )));
        }
        if !names_us(plugin, own_name) {
            return Ok(Ipam::Delegated {
                plugin: plugin.to_string(),
            });
        }
        match HostLocal::read(ipam) {
            Ok(host_local) => Ok(Ipam::Ours(host_local)),
            // A release needs only the network's name: leases are found by
            // attachment, whatever the ranges say now.
            Err(_) if releasing => Ok(Ipam::Ours(HostLocal::default())),
            Err(error) => Err(error),
        }
    }
}

impl HostLocal {
    /// Reads and checks host-local's keys of `ipam`.
    pub fn read(ipam: &Obj<'_>) -> Result<HostLocal, CniError> {
        let mut range_sets = Vec::new();
        if ipam.get("subnet").is_some() {
            range_sets.push(RangeSet(vec![Range::read(ipam)?]));
        } else {
            for key in ["rangeStart", "rangeEnd", "gateway"] {
                if ipam.get(key).is_some() {
                    return Err(
                        ipam.error(format!("{} is set but ipam.subnet is not", ipam.path(key)))
                    );
                }
            }
        }
        // None at all is refused by an ADD once `runtimeConfig.ipRanges`
        // is read too (see `NetConf::read`): host-local takes ranges from
        // there alone.
        range_sets.extend(read_range_sets(ipam, "ranges")?);
        check_sets(&mut range_sets.iter(), &ipam.path("ranges"))?;
        let mut routes = Vec::new();
        for (i, item) in ipam.array("routes")?.iter().enumerate() {
            let route = Obj::new(
                item,
                format!("{}[{i}]", ipam.path("routes")),
                ErrorCode::InvalidConfig,
            )?;
            routes.push(Route::read(&route)?);
        }
        Ok(HostLocal {
            range_sets,
            routes,
            data_dir: ipam.str("dataDir")?.map(PathBuf::from),
            resolv_conf: ipam.str("resolvConf")?.map(PathBuf::from),
        })
    }
}

fn read_range_sets(obj: &Obj<'_>, key: &str) -> Result<Vec<RangeSet>, CniError> {
    let mut sets = Vec::new();
    for (i, set) in obj.array(key)?.iter().enumerate() {
        let at = format!("{}[{i}]", obj.path(key));
        let Some(items) = set.as_array() else {
            return Err(obj.error(format!(
                "{at} must be an array of ranges, not {}",
                super::read::kind(set)
            )));
        };
        if items.is_empty() {
            return Err(obj.error(format!("{at} is an empty range set")));
        }
        let ranges = items
            .iter()
            .enumerate()
            .map(|(j, item)| {
                Range::read(&Obj::new(
                    item,
                    format!("{at}[{j}]"),
                    ErrorCode::InvalidConfig,
                )?)
            })
            .collect::<Result<Vec<_>, _>>()?;
        sets.push(RangeSet(ranges));
    }
    Ok(sets)
}

impl Range {
    /// Reads and checks one range (`subnet`, `rangeStart`, `rangeEnd`,
    /// `gateway`) as host-local does: the subnet has no host bits and
    /// leaves room for a gateway and one address, the other three lie in
    /// it, the start is not after the end.
    pub fn read(obj: &Obj<'_>) -> Result<Range, CniError> {
        let subnet = obj
            .cidr("subnet")?
            .ok_or_else(|| obj.error(format!("{} is missing", obj.path("subnet"))))?;
        if subnet.trunc() != subnet {
            return Err(obj.error(format!(
                "{} {subnet} has host bits set (the subnet is {})",
                obj.path("subnet"),
                subnet.trunc()
            )));
        }
        let max_prefix = if subnet.addr().is_ipv4() { 30 } else { 126 };
        if subnet.prefix_len() > max_prefix {
            return Err(obj.error(format!(
                "{} {subnet} is too small: at most /{max_prefix}",
                obj.path("subnet")
            )));
        }
        let inside = |key: &str| -> Result<Option<IpAddr>, CniError> {
            match obj.ip(key)? {
                Some(ip) if !subnet.contains(&ip) => Err(obj.error(format!(
                    "{} {ip} is not in the subnet {subnet}",
                    obj.path(key)
                ))),
                ip => Ok(ip),
            }
        };
        let range = Range {
            subnet,
            range_start: inside("rangeStart")?,
            range_end: inside("rangeEnd")?,
            gateway: inside("gateway")?,
        };
        if let (Some(start), Some(end)) = (range.range_start, range.range_end) {
            if start > end {
                return Err(obj.error(format!(
                    "{} {start} is after {} {end}",
                    obj.path("rangeStart"),
                    obj.path("rangeEnd")
                )));
            }
        }
        Ok(range)
    }

    /// `rangeStart`-`rangeEnd` with host-local's defaults for the one left
    /// out (the subnet's second address; its last host address), when
    /// either is set. A given end may pass the other's default (host-local
    /// reads such a range as empty): the start is then after the end.
    pub fn bounds(&self) -> Option<(IpAddr, IpAddr)> {
        if self.range_start.is_none() && self.range_end.is_none() {
            return None;
        }
        let subnet = self.subnet;
        let first = to_u128(subnet.network()) + 1;
        let last = match subnet {
            IpNet::V4(net) => to_u128(IpAddr::V4(net.broadcast())) - 1,
            IpNet::V6(net) => to_u128(IpAddr::V6(net.broadcast())),
        };
        let family = IpFamily::of(subnet.addr());
        Some((
            self.range_start.unwrap_or(from_u128(family, first)),
            self.range_end.unwrap_or(from_u128(family, last)),
        ))
    }
}

/// A set is of one family, and no two ranges anywhere overlap (host-local's
/// rule: an address must belong to one range of one set).
fn check_sets(sets: &mut dyn Iterator<Item = &RangeSet>, at: &str) -> Result<(), CniError> {
    let mut seen: Vec<(usize, IpNet)> = Vec::new();
    for (i, set) in sets.enumerate() {
        let v4 = set.0[0].subnet.addr().is_ipv4();
        if set.0.iter().any(|r| r.subnet.addr().is_ipv4() != v4) {
            return Err(CniError::config(format!(
                "{at}[{i}] mixes IPv4 and IPv6 ranges: each range set yields one address of one family"
            )));
        }
        for range in &set.0 {
            if let Some((j, other)) = seen.iter().find(|(_, other)| {
                other.contains(&range.subnet.network()) || range.subnet.contains(&other.network())
            }) {
                return Err(CniError::config(format!(
                    "{at}: subnet {} of range set {i} overlaps subnet {other} of range set {j}",
                    range.subnet
                )));
            }
            seen.push((i, range.subnet));
        }
    }
    Ok(())
}

/// `runtimeConfig.ips`, `args.cni.ips` and `runtimeConfig.ipRanges`.
fn read_requests(top: &Obj<'_>) -> Result<(Vec<IpAddr>, Vec<RangeSet>), CniError> {
    let mut ips = Vec::new();
    let mut ranges = Vec::new();
    let address = |obj: &Obj<'_>, key: &str, text: &str| -> Result<IpAddr, CniError> {
        super::read::requested_address(text).ok_or_else(|| {
            obj.error(format!(
                "{} holds {:?}, not an IP address",
                obj.path(key),
                escape_controls(text)
            ))
        })
    };
    if let Some(runtime) = top.obj("runtimeConfig")? {
        for text in runtime.strings("ips")? {
            ips.push(address(&runtime, "ips", &text)?);
        }
        ranges = read_range_sets(&runtime, "ipRanges")?;
        check_sets(&mut ranges.iter(), &runtime.path("ipRanges"))?;
    }
    if let Some(args) = top.obj("args")? {
        if let Some(cni) = args.obj("cni")? {
            for text in cni.strings("ips")? {
                ips.push(address(&cni, "ips", &text)?);
            }
        }
    }
    Ok((ips, ranges))
}

/// GC's attachment list: `cni.dev/valid-attachments`, else the name it had
/// before (`cni.dev/attachments`). A list that cannot be read is refused:
/// guessing would collect attachments still in use. A `null` list is an
/// empty one: libcni sends the runtime's list as it is, and Go writes an
/// empty one that was never filled as `null` (the reference plugins read
/// it back as empty, and collect everything).
fn read_attachments(top: &Obj<'_>) -> Result<Option<Vec<Attachment>>, CniError> {
    let key = ["cni.dev/valid-attachments", "cni.dev/attachments"]
        .into_iter()
        .find(|k| top.get(k).is_some() || top.is_null(k));
    let Some(key) = key else { return Ok(None) };
    if top.is_null(key) {
        return Ok(Some(Vec::new()));
    }
    let mut list = Vec::new();
    for (i, item) in top.array(key)?.iter().enumerate() {
        let obj = Obj::new(item, format!("{key}[{i}]"), ErrorCode::InvalidConfig)?;
        let field = |name: &str| -> Result<String, CniError> {
            obj.str(name)?
                .map(str::to_owned)
                .ok_or_else(|| obj.error(format!("{} is missing", obj.path(name))))
        };
        let container_id = field("containerID")?;
        let ifname = field("ifname")?;
        if !is_valid_id(&container_id) {
            return Err(obj.error(format!(
                "{} {:?} is not a valid container id",
                obj.path("containerID"),
                escape_controls(&container_id)
            )));
        }
        // As DEL: the names of attachments older versions made, '%' too.
        check_ifname_to_release(&ifname)
            .map_err(|e| obj.error(format!("{}: {}", obj.path("ifname"), e.msg)))?;
        list.push(Attachment {
            container_id,
            ifname,
        });
    }
    Ok(Some(list))
}
