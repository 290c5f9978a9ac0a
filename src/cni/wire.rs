//! ADD, DEL, CHECK, GC and STATUS over the driver's CNI room
//! ([`crate::driver::Manager::cni_add`] and its siblings): the config
//! turned into the driver's values, the driver's errors into CNI codes,
//! the driver's answer into a result in the request's version.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use ipnet::IpNet;

use super::attach::{self, AddressSource, MasterChoice};
use super::config::{HostLocal, Ipam, NetConf, Range, OUR_TYPE};
use super::env::{Attachment, CniArgs, Command, Env};
use super::error::{CniError, ErrorCode};
use super::result::{CniResult, Interface, IpConfig};
use crate::driver::{
    CniAddError, CniAddresses, CniAttach, CniDelegated, CniLease, CniNetwork, Config, Delegate,
    Error, ErrorKind, IpvlanFlag, IpvlanMode, Manager, ResultRoute,
};

/// Set by the plugin's `main`: the process exits once the request is
/// served, so the manager's descriptors are left to the exit.
pub(crate) static EXIT_FOLLOWS: AtomicBool = AtomicBool::new(false);

/// A manager for one request. When the process exits next
/// ([`EXIT_FOLLOWS`]) it is not dropped: what it holds is descriptors of
/// directories (and memory), which the kernel closes at exit as close(2)
/// would, with nothing buffered or waiting to be synced (each lock guard,
/// which commits, is gone before the request returns). One `close` each
/// saved, as the command line does.
struct Held(Option<Manager>);

impl std::ops::Deref for Held {
    type Target = Manager;
    fn deref(&self) -> &Manager {
        self.0.as_ref().expect("held until dropped")
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if EXIT_FOLLOWS.load(Ordering::Relaxed) {
            std::mem::forget(self.0.take());
        }
    }
}

/// The manager over the state directory the environment names
/// (`IPVLAN_STATE_DIR`, as for the CLI).
fn manager(env: &Env) -> Result<Held, CniError> {
    let config = Config::from_vars(|name| {
        env.vars
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
    .map_err(|e| match e.kind() {
        // IPVLAN_STATE_DIR and the like: the environment's fault (code 4),
        // not the config's; reading the current directory failed (5).
        ErrorKind::InvalidValue => CniError::env(e.to_string()),
        _ => CniError::new(ErrorCode::IoFailure, e.to_string()),
    })?;
    Manager::open(config)
        .map(|mut m| {
            if EXIT_FOLLOWS.load(Ordering::Relaxed) {
                m.leave_descriptors_to_exit();
            }
            Held(Some(m))
        })
        .map_err(runtime)
}

/// A driver failure: code 999, as the reference reports every runtime
/// failure.
fn runtime(error: Error) -> CniError {
    CniError::internal(error.to_string())
}

/// A failed ADD in the driver: code 7 when the config is at fault, 11
/// ("try again later") when the kernel refused the address our IPAM
/// chose as another ipvlan link's (the retry is given the next) or others
/// kept changing what the ADD needed ([`Error::try_again`]), else 999.
fn add_error(error: CniAddError) -> CniError {
    match error {
        CniAddError::Config(error) => CniError::config(error.to_string()),
        CniAddError::Failed(error)
            if error.is_address_held_on_port() || error.errno() == Some(libc::EAGAIN) =>
        {
            CniError::new(ErrorCode::TryAgainLater, error.to_string())
        }
        CniAddError::Failed(error) | CniAddError::Delegate(error) => runtime(error),
    }
}

/// The attachment of an ADD, CHECK or DEL (the environment checked it).
fn attachment(env: &Env) -> Result<&Attachment, CniError> {
    env.attachment
        .as_ref()
        .ok_or_else(|| CniError::env("CNI_CONTAINERID and CNI_IFNAME are required"))
}

/// The driver's description of the config's network, with the keys a
/// second config of the name must repeat.
fn network(conf: &NetConf, master: &MasterChoice) -> Result<CniNetwork, CniError> {
    let link = conf
        .link
        .as_ref()
        .ok_or_else(|| CniError::internal("the config's link keys were not read"))?;
    let master = match master {
        MasterChoice::Configured(m) | MasterChoice::Chained(m) => Some(m.name.clone()),
        MasterChoice::DefaultRoute => None,
    };
    let (ipam_config, subnets, bounds) = ipam_keys(conf)?;
    let config = format!(
        "master={}{} mode={} flag={} mtu={} {ipam_config}",
        master.as_deref().unwrap_or("(default route)"),
        // Said only when set, so that other configs read as before.
        if link.link_in_container {
            " linkInContainer"
        } else {
            ""
        },
        link.mode.as_str(),
        link.flag.as_str(),
        link.mtu.map_or("(master's)".to_string(), |m| m.to_string()),
    );
    Ok(CniNetwork {
        name: conf.name.clone(),
        master,
        mode: link.mode,
        flag: link.flag,
        mtu: link.mtu,
        link_in_container: link.link_in_container,
        subnets,
        bounds,
        config,
        ipam_config,
    })
}

/// The IPAM part of a network's config (type and ranges, as one text),
/// with our IPAM's subnets and their bounds.
#[allow(clippy::type_complexity)]
fn ipam_keys(
    conf: &NetConf,
) -> Result<
    (
        String,
        Vec<(IpNet, Option<IpAddr>)>,
        Vec<(IpNet, IpAddr, IpAddr)>,
    ),
    CniError,
> {
    let (ipam, ranges) = match &conf.ipam {
        None => ("none".to_string(), Vec::new()),
        Some(Ipam::Delegated { plugin }) => (plugin.clone(), Vec::new()),
        Some(Ipam::Ours(host_local)) => (OUR_TYPE.to_string(), our_ranges(conf, host_local)),
    };
    let text: Vec<String> = ranges
        .iter()
        .map(|range| {
            let mut text = range.subnet.to_string();
            if let Some((start, end)) = range.bounds() {
                text.push_str(&format!("[{start}-{end}]"));
            }
            if let Some(gateway) = range.gateway {
                text.push_str(&format!("@{gateway}"));
            }
            text
        })
        .collect();
    let config = format!(
        "ipam={ipam} ranges={}",
        if text.is_empty() {
            "-".to_string()
        } else {
            text.join(",")
        }
    );
    let subnets = ranges.iter().map(|r| (r.subnet, r.gateway)).collect();
    let bounds = ranges
        .iter()
        .filter_map(|r| r.bounds().map(|(start, end)| (r.subnet, start, end)))
        .collect();
    Ok((config, subnets, bounds))
}

/// The ranges our IPAM allocates from: `runtimeConfig.ipRanges` before
/// the configured ranges, one per subnet (the first given).
fn our_ranges(conf: &NetConf, host_local: &HostLocal) -> Vec<Range> {
    let mut ranges: Vec<Range> = Vec::new();
    for set in conf.runtime_ranges.iter().chain(&host_local.range_sets) {
        for range in &set.0 {
            if !ranges.iter().any(|r| r.subnet == range.subnet) {
                ranges.push(range.clone());
            }
        }
    }
    ranges
}

/// Whether this run serves another plugin as its IPAM: the config says so
/// (`ipam.type` ours, `type` another's), or `type` and `ipam.type` are both
/// `ipvlan` and the reference ipvlan plugin, which shares our name, is the
/// process that ran us (its IPAM call; stdin and environment are the same
/// as for a runtime's call, so only the caller tells them apart).
fn as_ipam(conf: &NetConf) -> bool {
    conf.serves_as_ipam() || (matches!(conf.ipam, Some(Ipam::Ours(_))) && run_by_another_ipvlan())
}

/// Whether the parent process runs an executable named `ipvlan` that is
/// not this binary. A runtime (or Multus) has another name; our own plugin
/// never runs its IPAM as a process.
fn run_by_another_ipvlan() -> bool {
    use std::os::unix::fs::MetadataExt;
    let parent = PathBuf::from(format!("/proc/{}/exe", std::os::unix::process::parent_id()));
    let named = std::fs::read_link(&parent)
        .is_ok_and(|p| p.file_name() == Some(std::ffi::OsStr::new(OUR_TYPE)));
    if !named {
        return false;
    }
    let same = match (
        std::fs::metadata(&parent),
        std::fs::metadata("/proc/self/exe"),
    ) {
        (Ok(theirs), Ok(ours)) => theirs.dev() == ours.dev() && theirs.ino() == ours.ino(),
        // Unknown: serve as the plugin, as the config says.
        _ => true,
    };
    !same
}

/// The addresses asked for: `runtimeConfig.ips`, `args.cni.ips`, then
/// `CNI_ARGS` `IP=`, each once: an address asked for in several of them
/// (or twice in one) is one request, as host-local keeps them (by
/// address). Each copy was a request of its own, and the second found
/// its address taken by the first.
fn wanted(env: &Env, conf: &NetConf) -> Result<Vec<IpAddr>, CniError> {
    let from_args = match &env.args {
        Some(args) => CniArgs::parse(args)?.ips,
        None => Vec::new(),
    };
    let mut wanted: Vec<IpAddr> = Vec::new();
    for ip in conf.requested_ips.iter().chain(&from_args) {
        if !wanted.contains(ip) {
            wanted.push(*ip);
        }
    }
    Ok(wanted)
}

/// The driver's description of a network served as another plugin's
/// IPAM: no master, no link keys; only the IPAM part must match. Public
/// for the fuzzer, which checks what any config's ranges become.
pub fn lease_network(conf: &NetConf) -> Result<CniNetwork, CniError> {
    let (ipam_config, subnets, bounds) = ipam_keys(conf)?;
    Ok(CniNetwork {
        name: conf.name.clone(),
        master: None,
        mode: IpvlanMode::L2,
        flag: IpvlanFlag::Bridge,
        mtu: None,
        link_in_container: false,
        subnets,
        bounds,
        config: format!("lease-only {ipam_config}"),
        ipam_config,
    })
}

/// ADD as another plugin's IPAM: the addresses leased from our store,
/// the result an IPAM plugin gives (addresses with their gateways, the
/// configured routes, `resolvConf`'s DNS; no interface).
fn lease_add(env: &Env, conf: &NetConf, host_local: &HostLocal) -> Result<CniResult, CniError> {
    let who = attachment(env)?;
    let spec = lease_network(conf)?;
    let dns = ipam_dns(host_local)?;
    let lease = CniLease {
        container_id: &who.container_id,
        ifname: &who.ifname,
        netns: env.netns.as_deref(),
        wanted: wanted(env, conf)?,
    };
    let leased = manager(env)?
        .cni_lease_add(&spec, &lease)
        .map_err(add_error)?;
    Ok(CniResult {
        interfaces: Vec::new(),
        ips: leased
            .into_iter()
            .map(|(address, gateway)| IpConfig {
                address,
                gateway,
                interface: None,
            })
            .collect(),
        routes: host_local.routes.clone(),
        dns,
    })
}

/// The DNS our IPAM answers with: `resolvConf`'s, else none.
fn ipam_dns(host_local: &HostLocal) -> Result<super::result::Dns, CniError> {
    match &host_local.resolv_conf {
        Some(path) => read_resolv_conf(path),
        None => Ok(Default::default()),
    }
}

/// The most of a `resolvConf` file read: a resolver's file is a few
/// lines (glibc reads three name servers and six search domains).
const RESOLV_CONF_MAX: u64 = 64 << 10;

/// host-local's reading of a `resolvConf` file: `nameserver`, `domain`,
/// `search` and `options` lines. The path is followed when it is a link
/// (a resolver's file usually is), but only a regular file of at most
/// [`RESOLV_CONF_MAX`] bytes is read: a device or a FIFO named there
/// would have the ADD read without end or wait for a writer. Bytes that
/// are not UTF-8 are read as Go's JSON writes them, U+FFFD.
fn read_resolv_conf(path: &std::path::Path) -> Result<super::result::Dns, CniError> {
    let failed = |why: &dyn std::fmt::Display| {
        CniError::internal(format!("reading resolvConf {}: {why}", path.display()))
    };
    // Looked at before it is opened, so that a device is never opened
    // (opening one can act: a watchdog's arms it); what is opened is
    // judged again on its descriptor.
    let meta = std::fs::metadata(path).map_err(|e| failed(&e))?;
    if !is_small_regular(&meta) {
        return Err(failed(&NOT_A_SMALL_FILE));
    }
    let bytes = read_small_regular(path).map_err(|e| failed(&e))?;
    let text = String::from_utf8_lossy(&bytes);
    let mut dns = super::result::Dns::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => dns.nameservers.extend(words.next().map(str::to_string)),
            Some("domain") => dns.domain = words.next().map(str::to_string),
            Some("search") => dns.search.extend(words.map(str::to_string)),
            Some("options") => dns.options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    Ok(dns)
}

const NOT_A_SMALL_FILE: &str = "not a regular file of at most 64 KiB";

/// Whether `meta` is of a regular file of at most [`RESOLV_CONF_MAX`].
fn is_small_regular(meta: &std::fs::Metadata) -> bool {
    meta.is_file() && meta.len() <= RESOLV_CONF_MAX
}

/// The bytes of the regular file at `path`, of at most
/// [`RESOLV_CONF_MAX`], judged on the descriptor that reads them:
/// something put at the path after it was looked at is refused too, a
/// FIFO without waiting for a writer (`O_NONBLOCK`), and a file grown
/// past the limit meanwhile is not read past it.
fn read_small_regular(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let too_big = || std::io::Error::new(std::io::ErrorKind::InvalidData, NOT_A_SMALL_FILE);
    if !is_small_regular(&file.metadata()?) {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    file.by_ref()
        .take(RESOLV_CONF_MAX + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > RESOLV_CONF_MAX {
        return Err(too_big());
    }
    Ok(bytes)
}

/// ADD: the network record, the link, its addresses (ours or
/// `prevResult`'s, known before the link is made; a delegated plugin's,
/// asked for once the link exists, as the reference plugin asks); the
/// result in the request's version. As another plugin's IPAM: the
/// addresses only.
pub fn add(env: &Env, conf: &NetConf, input: &[u8]) -> Result<CniResult, CniError> {
    if let (true, Some(Ipam::Ours(host_local))) = (as_ipam(conf), &conf.ipam) {
        return lease_add(env, conf, host_local);
    }
    let who = attachment(env)?;
    let netns = env
        .netns
        .as_ref()
        .ok_or_else(|| CniError::env("CNI_NETNS is required"))?;
    let master = attach::choose_master(conf)?;
    let source = attach::address_source(conf)?;
    let spec = network(conf, &master)?;
    let manager = manager(env)?;

    // Where the addresses come from; a delegated plugin's, once our link
    // exists (as the reference has it: `dhcp`'s daemon takes its lease on
    // the link), through the callback below.
    enum Known<'a> {
        Result(CniResult),
        AfterTheLink { plugin: &'a str },
    }
    let (addresses, known) = match source {
        AddressSource::Ipam(Ipam::Ours(host_local)) => {
            // As an IPAM plugin answers (see `lease_add`), read before
            // anything is taken.
            let from = CniResult {
                routes: host_local.routes.clone(),
                dns: ipam_dns(host_local)?,
                ..CniResult::default()
            };
            (
                CniAddresses::Allocate(wanted(env, conf)?),
                Known::Result(from),
            )
        }
        AddressSource::Ipam(Ipam::Delegated { plugin }) => {
            (CniAddresses::Delegated, Known::AfterTheLink { plugin })
        }
        AddressSource::PrevResult(prev) => {
            let given = prev.ips.iter().map(|ip| ip.address).collect();
            (CniAddresses::Given(given), Known::Result(prev.clone()))
        }
    };
    let mut request = CniAttach {
        container_id: &who.container_id,
        ifname: &who.ifname,
        netns,
        addresses,
        routes: Vec::new(),
    };
    let attached = match known {
        Known::Result(from) => {
            request.routes = result_routes(&from);
            manager
                .cni_add(&spec, &request)
                .map(|attached| (attached, from))
        }
        Known::AfterTheLink { plugin } => {
            // What the plugin answered: its result, or its error, which is
            // then ours.
            let mut result: Option<CniResult> = None;
            let mut refusal: Option<CniError> = None;
            let mut ask = || -> Result<CniDelegated, Error> {
                match attach::ipam_add(env, conf, plugin, input) {
                    Ok(given) => {
                        let asked = CniDelegated {
                            addresses: given.ips.iter().map(|ip| ip.address).collect(),
                            routes: result_routes(&given),
                        };
                        result = Some(given);
                        Ok(asked)
                    }
                    Err(error) => {
                        let failed =
                            Error::failed(format!("IPAM plugin {plugin} failed: {}", error.msg));
                        refusal = Some(error);
                        Err(failed)
                    }
                }
            };
            let mut undo = || attach::ipam_undo(env, plugin, input);
            let delegate = Delegate {
                ask: &mut ask,
                undo: &mut undo,
            };
            match manager.cni_add_delegated(&spec, &request, delegate) {
                Ok(attached) => match result {
                    Some(from) => Ok((attached, from)),
                    None => return Err(CniError::internal("the IPAM plugin's result was lost")),
                },
                Err(CniAddError::Delegate(error)) => {
                    return Err(refusal.unwrap_or_else(|| runtime(error)))
                }
                Err(error) => Err(error),
            }
        }
    };
    let (attached, from) = attached.map_err(add_error)?;
    let mut addresses = from.clone();
    addresses.ips = attached
        .addresses
        .iter()
        .map(|&(address, gateway)| {
            // A delegated plugin's gateway is its word; ours is the
            // subnet's.
            let given = from
                .ips
                .iter()
                .find(|ip| ip.address == address)
                .and_then(|ip| ip.gateway);
            IpConfig {
                address,
                gateway: given.or(gateway),
                interface: None,
            }
        })
        .collect();
    let link = Interface {
        name: attached.ifname,
        mac: Some(attached.mac),
        sandbox: Some(netns.display().to_string()),
        ..Interface::default()
    };
    Ok(attach::add_result(conf, &addresses, link))
}

/// The routes of an IPAM result, to add through the link: a route without
/// a next hop goes through the gateway of its family's address, as the
/// reference configures it (ours are the driver's to fill: the subnet's
/// gateway); `mtu` and `advmss` are left, as the reference plugins leave
/// them.
fn result_routes(from: &CniResult) -> Vec<ResultRoute> {
    from.routes
        .iter()
        .map(|r| {
            let gateway = from
                .ips
                .iter()
                .filter(|ip| ip.address.addr().is_ipv4() == r.dst.addr().is_ipv4())
                .find_map(|ip| ip.gateway);
            ResultRoute {
                dst: r.dst,
                gw: r.gw.or(gateway),
                table: route_table(r),
                priority: r.priority,
                scope: r.scope,
            }
        })
        .collect()
}

/// DEL: the delegated plugin's DEL first, while our link stands (as the
/// reference orders it: `dhcp`'s daemon releases its lease through the
/// link), then ours (the link if it is an ipvlan one, the lease, the
/// record), which runs whatever the plugin answered; each runs whatever
/// the other does (the spec: DEL executes its delegated plugins and
/// cleans up as far as it can; a state our DEL cannot read would otherwise
/// keep the delegate's lease through every retry). Our error is the
/// answer, else the delegate's. Gone is success.
pub fn del(env: &Env, conf: &NetConf, input: &[u8]) -> Result<(), CniError> {
    let who = attachment(env)?;
    if as_ipam(conf) {
        let notes = manager(env)?
            .cni_lease_del(&conf.name, &who.container_id, &who.ifname)
            .map_err(runtime)?;
        for note in notes {
            eprintln!("ipvlan: {note}");
        }
        return Ok(());
    }
    // The delegated plugin's first, while our link stands: `dhcp`'s daemon
    // releases its lease through the link (the reference's order too).
    let delegated = match &conf.ipam {
        Some(Ipam::Delegated { plugin }) => {
            attach::run_ipam(env, plugin, Command::Del, input).map(drop)
        }
        _ => Ok(()),
    };
    let ours = manager(env).and_then(|manager| {
        let notes = manager
            .cni_del(
                &conf.name,
                &who.container_id,
                &who.ifname,
                env.netns.as_deref(),
            )
            .map_err(runtime)?;
        for note in notes {
            eprintln!("ipvlan: {note}");
        }
        Ok(())
    });
    ours.and(delegated)
}

/// CHECK: the delegated plugin's CHECK, then the namespace against the
/// config and the cached result: the link is an ipvlan link of the
/// config's mode and flag, with the result's MAC, every address and route
/// of the result is there. What differs is the error's message.
pub fn check(env: &Env, conf: &NetConf, input: &[u8]) -> Result<(), CniError> {
    let who = attachment(env)?;
    if as_ipam(conf) {
        // As host-local: the lease exists; the link is its plugin's.
        manager(env)?
            .cni_lease_check(&conf.name, &who.container_id, &who.ifname)
            .map_err(runtime)?;
        return Ok(());
    }
    let netns = env
        .netns
        .as_ref()
        .ok_or_else(|| CniError::env("CNI_NETNS is required"))?;
    let prev = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| CniError::config("Required prevResult missing"))?;
    // No master is chosen: the attachment's record names its network, and
    // CHECK's `prevResult` is the chain's final result (a later plugin's
    // interfaces beside ours), not the input ADD chose a master from.
    if let Some(Ipam::Delegated { plugin }) = &conf.ipam {
        attach::run_ipam(env, plugin, Command::Check, input)?;
    }
    // Our record is the attachment's only where our IPAM holds its
    // addresses: a delegated plugin's or a chain's `prevResult`'s may be an
    // attachment the reference plugin made before ours was installed in its
    // place, which the link, addresses and routes show as well.
    let leased_here = matches!(conf.ipam, Some(Ipam::Ours(_)));
    let manager = manager(env)?;
    let tables: Vec<u32> = prev.routes.iter().filter_map(route_table).collect();
    let found = manager
        .cni_check(
            &conf.name,
            &who.container_id,
            &who.ifname,
            netns,
            &tables,
            leased_here,
        )
        .map_err(runtime)?;
    if found.kind.as_deref() != Some("ipvlan") {
        return Err(CniError::internal(format!(
            "{} in {} is not an ipvlan link (kind {})",
            who.ifname,
            netns.display(),
            found.kind.as_deref().unwrap_or("none")
        )));
    }
    // The link's keys as the config says, as the reference checks the
    // mode (and ours, the flag).
    if let (Some(link), Some((mode, flag))) = (&conf.link, &found.ipvlan) {
        for (key, has, wants) in [
            ("mode", mode.as_str(), link.mode.as_str()),
            ("flag", flag.as_str(), link.flag.as_str()),
        ] {
            if has != wants {
                return Err(CniError::internal(format!(
                    "{} in {} has ipvlan {key} {has}, the config says {wants}",
                    who.ifname,
                    netns.display()
                )));
            }
        }
    }
    // The result is this attachment's only if it lists our interface in
    // this namespace (the reference's rule, by the same text): else its
    // addresses and MAC are another's, and none would be checked.
    let sandbox = netns.display().to_string();
    let Some(ours) = prev
        .interfaces
        .iter()
        .position(|i| i.name == who.ifname && i.sandbox.as_deref() == Some(sandbox.as_str()))
    else {
        return Err(CniError::internal(format!(
            "prevResult lists no interface {} in {sandbox}: it is not this attachment's result",
            who.ifname
        )));
    };
    if let Some(mac) = prev.interfaces[ours].mac.as_deref() {
        if !mac.eq_ignore_ascii_case(&found.mac) {
            return Err(CniError::internal(format!(
                "{} in {} has MAC {}, the result says {mac}",
                who.ifname,
                netns.display(),
                found.mac
            )));
        }
    }
    for ip in &prev.ips {
        if ip.interface.is_some_and(|index| index != ours) {
            continue;
        }
        if !found.addresses.contains(&ip.address) {
            return Err(CniError::internal(format!(
                "{} in {} lacks address {} of the result (it has {})",
                who.ifname,
                netns.display(),
                ip.address,
                list(&found.addresses)
            )));
        }
    }
    for route in &prev.routes {
        let there = found.routes.iter().any(|&(dst, gw, table)| {
            dst == route.dst.trunc()
                && route.gw.map_or(true, |g| gw == Some(g))
                && table == route_table(route).unwrap_or(crate::rtnl::route::MAIN_TABLE)
        });
        if !there {
            return Err(CniError::internal(format!(
                "{} in {} lacks route {}{}{} of the result",
                who.ifname,
                netns.display(),
                route.dst,
                route.gw.map_or(String::new(), |g| format!(" via {g}")),
                route_table(route).map_or(String::new(), |t| format!(" in table {t}"))
            )));
        }
    }
    Ok(())
}

/// A result route's table; none for the main one, which `"table": 0`
/// names too (the kernel files a route of table 0 in main, as Go's
/// netlink does for the reference plugins).
fn route_table(route: &super::result::Route) -> Option<u32> {
    route.table.filter(|&table| table != 0)
}

fn list(addresses: &[IpNet]) -> String {
    if addresses.is_empty() {
        return "none".into();
    }
    addresses
        .iter()
        .map(IpNet::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// GC: the attachments of the network not in the runtime's list go, as by
/// DEL (as another plugin's IPAM, only the leases made so; as the plugin,
/// only its attachments); then the delegated plugin's GC. Without a list
/// nothing goes.
/// An error of ours does not keep the delegated plugin from its GC (the
/// spec: remove what can be, then report); ours is the one reported.
pub fn gc(env: &Env, conf: &NetConf, input: &[u8]) -> Result<(), CniError> {
    let mut ours = Ok(());
    if let Some(valid) = &conf.valid_attachments {
        let valid: Vec<(String, String)> = valid
            .iter()
            .map(|a| (a.container_id.clone(), a.ifname.clone()))
            .collect();
        ours = manager(env).and_then(|manager| {
            let leases = as_ipam(conf);
            for note in manager
                .cni_gc(&conf.name, &valid, leases)
                .map_err(runtime)?
            {
                eprintln!("ipvlan: {note}");
            }
            Ok(())
        });
    }
    let delegated = match &conf.ipam {
        Some(Ipam::Delegated { plugin }) => {
            attach::run_ipam(env, plugin, Command::Gc, input).map(drop)
        }
        _ => Ok(()),
    };
    ours.and(delegated)
}

/// STATUS: the master must be there (or what ADD makes it from, or a
/// default route when none is named and an `ipam` section gives the
/// addresses): code 50 when it is not. A config with neither a master nor
/// `ipam` is chained (its ADD takes both from `prevResult`, which STATUS
/// never has), so there is nothing of the host's to check. Then a
/// delegated plugin is asked (its error is the answer); our IPAM is ready
/// when the state directory opens and, where there is none yet, can be
/// made (STATUS makes it, as the first ADD would).
pub fn status(env: &Env, conf: &NetConf, input: &[u8]) -> Result<(), CniError> {
    let not_available =
        |mut e: CniError| CniError::new(ErrorCode::PluginNotAvailable, std::mem::take(&mut e.msg));
    // With linkInContainer the master is in a namespace STATUS is not
    // told of.
    if conf.link.as_ref().is_some_and(|l| !l.link_in_container) {
        let choice = attach::choose_master(conf)?;
        let master = match &choice {
            MasterChoice::Configured(m) | MasterChoice::Chained(m) => Some(Some(m.name.as_str())),
            MasterChoice::DefaultRoute if conf.ipam.is_some() => Some(None),
            MasterChoice::DefaultRoute => None,
        };
        if let Some(master) = master {
            // Without a master, ADD keeps to the one the network was made
            // on, which STATUS then checks rather than the default route.
            let config = network(conf, &choice)?.config;
            manager(env)
                .map_err(not_available)?
                .cni_master_ready(master, &conf.name, &config)
                .map_err(|e| not_available(runtime(e)))?;
        }
    }
    match &conf.ipam {
        Some(Ipam::Delegated { plugin }) => {
            let path = super::delegate::find_in_path(plugin, &env.path).map_err(|mut e| {
                CniError::new(ErrorCode::PluginNotAvailable, std::mem::take(&mut e.msg))
            })?;
            super::delegate::run(
                &path,
                Command::Status,
                &env.vars,
                input,
                super::delegate::TIMEOUT,
            )?;
        }
        Some(Ipam::Ours(_)) => {
            manager(env)
                .map_err(not_available)?
                .cni_store_ready()
                .map_err(|e| not_available(runtime(e)))?;
        }
        None => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::config::decode;

    fn conf(command: Command, text: &str) -> NetConf {
        NetConf::read(&decode(text.as_bytes()).unwrap(), command).unwrap()
    }

    /// What another try may meet is code 11 to the runtime, which then
    /// tries again; the same message, with no such errno, is 999.
    #[test]
    fn a_failure_to_try_again_is_code_11() {
        use crate::driver::Error;
        let message = "network n was created and removed meanwhile, again and again; try again";
        let again = add_error(CniAddError::Failed(Error::try_again(message)));
        assert_eq!(again.code, ErrorCode::TryAgainLater);
        assert_eq!(again.msg, message);
        let failed = add_error(CniAddError::Failed(Error::failed(message)));
        assert_eq!(failed.code, ErrorCode::Internal);
    }

    #[test]
    fn range_bounds_take_host_locals_defaults_and_name_the_network() {
        let c = conf(
            Command::Add,
            r#"{"cniVersion": "1.0.0", "name": "n", "type": "ipvlan", "master": "eth0",
                "linkInContainer": true,
                "ipam": {"type": "ipvlan", "ranges": [
                    [{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.100"}],
                    [{"subnet": "2001:db8::/64", "rangeEnd": "2001:db8::ff"}],
                    [{"subnet": "10.0.1.0/24", "gateway": "10.0.1.254"}]]}}"#,
        );
        let spec = network(&c, &attach::choose_master(&c).unwrap()).unwrap();
        assert_eq!(
            spec.bounds,
            vec![
                (
                    "10.0.0.0/24".parse().unwrap(),
                    "10.0.0.100".parse().unwrap(),
                    "10.0.0.254".parse().unwrap()
                ),
                (
                    "2001:db8::/64".parse().unwrap(),
                    "2001:db8::1".parse().unwrap(),
                    "2001:db8::ff".parse().unwrap()
                ),
            ]
        );
        assert_eq!(
            spec.ipam_config,
            "ipam=ipvlan ranges=10.0.0.0/24[10.0.0.100-10.0.0.254],2001:db8::/64[2001:db8::1-2001:db8::ff],10.0.1.0/24@10.0.1.254"
        );
        assert_eq!(
            spec.config,
            format!(
                "master=eth0 linkInContainer mode=l2 flag=bridge mtu=(master's) {}",
                spec.ipam_config
            )
        );
        assert!(spec.link_in_container);
    }

    /// What `read_resolv_conf` opens after its look at the path is judged
    /// again: a FIFO swapped in meanwhile is refused at once (it had the
    /// ADD wait for a writer), a file grown past the limit is not read.
    #[test]
    fn a_resolv_conf_is_judged_on_the_descriptor_read() {
        let dir = std::env::temp_dir().join(format!("ipvlan-resolv-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let fifo = dir.join("fifo");
        crate::sys::make_fifo(&fifo);
        let (done, finished) = std::sync::mpsc::channel();
        let reader = fifo.clone();
        std::thread::spawn(move || done.send(read_small_regular(&reader).map_err(|e| e.kind())));
        let fifo_read = finished.recv_timeout(std::time::Duration::from_secs(10));
        let big = dir.join("big");
        std::fs::write(&big, vec![b'#'; RESOLV_CONF_MAX as usize + 1]).unwrap();
        let small = dir.join("small");
        std::fs::write(&small, "nameserver 10.0.0.1\n").unwrap();
        let (big_read, small_read) = (read_small_regular(&big), read_small_regular(&small));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(
            fifo_read.expect("a FIFO's read waits for a writer"),
            Err(std::io::ErrorKind::InvalidData)
        );
        assert_eq!(
            big_read.unwrap_err().kind(),
            std::io::ErrorKind::InvalidData
        );
        assert_eq!(small_read.unwrap(), b"nameserver 10.0.0.1\n");
    }

    #[test]
    fn as_another_plugins_ipam_its_link_keys_are_not_read() {
        // macvlan's `mode`, which is no ipvlan mode, and an `mtu` out of
        // our range: that plugin's to judge.
        let text = r#"{"cniVersion": "1.0.0", "name": "n", "type": "macvlan", "mode": "passthru",
            "mtu": 1, "ipam": {"type": "ipvlan", "subnet": "10.0.0.0/24"}}"#;
        let c = conf(Command::Add, text);
        assert!(c.serves_as_ipam());
        assert!(as_ipam(&c));
        assert_eq!(c.link, None);
        let spec = lease_network(&c).unwrap();
        assert_eq!(spec.config, "lease-only ipam=ipvlan ranges=10.0.0.0/24");
        assert_eq!(spec.master, None);
        // Our own config with our IPAM, run by a runtime (the test
        // harness, not a program named ipvlan): the plugin.
        let ours = conf(
            Command::Add,
            &text
                .replace("macvlan", "ipvlan")
                .replace(r#""mode": "passthru","#, "")
                .replace(r#""mtu": 1,"#, ""),
        );
        assert!(!ours.serves_as_ipam());
        assert!(!as_ipam(&ours));
    }
}
