//! ADD, DEL, CHECK, GC and STATUS over the driver's CNI room
//! ([`crate::driver::Manager::cni_add`] and its siblings): the config
//! turned into the driver's values, the driver's errors into CNI codes,
//! the driver's answer into a result in the request's version.

use std::net::IpAddr;

use ipnet::IpNet;

use super::attach::{self, AddressSource, MasterChoice};
use super::config::{HostLocal, Ipam, NetConf, OUR_TYPE};
use super::env::{Attachment, CniArgs, Command, Env};
use super::error::{CniError, ErrorCode};
use super::result::{CniResult, Interface, IpConfig, Route};
use crate::driver::{CniAddError, CniAddresses, CniAttach, CniNetwork, Config, Error, Manager};

/// The manager over the state directory the environment names
/// (`IPVLAN_STATE_DIR`, as for the CLI).
fn manager(env: &Env) -> Result<Manager, CniError> {
    let config = Config::from_vars(|name| {
        env.vars
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    })
    .map_err(|e| CniError::config(e.to_string()))?;
    Manager::open(config).map_err(runtime)
}

/// A driver failure: code 999, as the reference reports every runtime
/// failure.
fn runtime(error: Error) -> CniError {
    CniError::internal(error.to_string())
}

/// A failed ADD in the driver: code 7 when the config is at fault, else
/// 999.
fn add_error(error: CniAddError) -> CniError {
    match error {
        CniAddError::Config(error) => CniError::config(error.to_string()),
        CniAddError::Failed(error) => runtime(error),
    }
}

/// The attachment of an ADD, CHECK or DEL (the environment checked it).
fn attachment(env: &Env) -> Result<&Attachment, CniError> {
    env.attachment
        .as_ref()
        .ok_or_else(|| CniError::env("CNI_CONTAINERID and CNI_IFNAME are required"))
}

/// Our in-process IPAM may serve only when the top-level plugin is ours:
/// serving another plugin's allocations is not in this build.
fn check_plugin(conf: &NetConf) -> Result<(), CniError> {
    if conf.plugin_type != OUR_TYPE {
        return Err(CniError::internal(format!(
            "serving as the IPAM plugin of the {:?} plugin is not yet implemented in this build",
            conf.plugin_type
        )));
    }
    Ok(())
}

/// The driver's description of the config's network, with the keys a
/// second config of the name must repeat.
fn network(conf: &NetConf, master: &MasterChoice) -> Result<CniNetwork, CniError> {
    let link = conf
        .link
        .as_ref()
        .ok_or_else(|| CniError::internal("the config's link keys were not read"))?;
    if link.link_in_container {
        return Err(CniError::new(
            ErrorCode::UnsupportedField,
            "linkInContainer is not yet supported by this build",
        ));
    }
    let master = match master {
        MasterChoice::Configured(m) | MasterChoice::Chained(m) => Some(m.name.clone()),
        MasterChoice::DefaultRoute => None,
    };
    let (ipam, subnets) = match &conf.ipam {
        None => ("none".to_string(), Vec::new()),
        Some(Ipam::Delegated { plugin }) => (plugin.clone(), Vec::new()),
        Some(Ipam::Ours(host_local)) => (OUR_TYPE.to_string(), our_subnets(conf, host_local)?),
    };
    let ranges: Vec<String> = subnets
        .iter()
        .map(|(subnet, gateway)| match gateway {
            Some(gateway) => format!("{subnet}@{gateway}"),
            None => subnet.to_string(),
        })
        .collect();
    let config = format!(
        "master={} mode={} flag={} mtu={} ipam={ipam} ranges={}",
        master.as_deref().unwrap_or("(default route)"),
        link.mode.as_str(),
        link.flag.as_str(),
        link.mtu.map_or("(master's)".to_string(), |m| m.to_string()),
        if ranges.is_empty() {
            "-".to_string()
        } else {
            ranges.join(",")
        }
    );
    Ok(CniNetwork {
        name: conf.name.clone(),
        master,
        mode: link.mode,
        flag: link.flag,
        mtu: link.mtu,
        subnets,
        config,
    })
}

/// The subnets our IPAM allocates from: `runtimeConfig.ipRanges` before
/// the configured ranges. `rangeStart`/`rangeEnd` are refused (code 2)
/// rather than ignored: the whole subnet would be handed out.
fn our_subnets(
    conf: &NetConf,
    host_local: &HostLocal,
) -> Result<Vec<(IpNet, Option<IpAddr>)>, CniError> {
    let mut subnets: Vec<(IpNet, Option<IpAddr>)> = Vec::new();
    for set in conf.runtime_ranges.iter().chain(&host_local.range_sets) {
        for range in &set.0 {
            if range.range_start.is_some() || range.range_end.is_some() {
                return Err(CniError::new(
                    ErrorCode::UnsupportedField,
                    format!(
                        "rangeStart and rangeEnd (range {}) are not yet supported by ipam type {OUR_TYPE}: give a subnet of its own, or use host-local",
                        range.subnet
                    ),
                ));
            }
            if !subnets.iter().any(|(s, _)| *s == range.subnet) {
                subnets.push((range.subnet, range.gateway));
            }
        }
    }
    Ok(subnets)
}

/// ADD: the network record, the addresses (ours, the delegated plugin's,
/// or `prevResult`'s), the link; the result in the request's version.
pub fn add(env: &Env, conf: &NetConf, input: &[u8]) -> Result<CniResult, CniError> {
    let who = attachment(env)?;
    let netns = env
        .netns
        .as_ref()
        .ok_or_else(|| CniError::env("CNI_NETNS is required"))?;
    let master = attach::choose_master(conf)?;
    let source = attach::address_source(conf)?;
    if matches!(source, AddressSource::Ipam(Ipam::Ours(_))) {
        check_plugin(conf)?;
    }
    let spec = network(conf, &master)?;
    let manager = manager(env)?;

    // Where the addresses come from, and what to undo if the link fails.
    let mut delegated = None;
    let (addresses, from) = match source {
        AddressSource::Ipam(Ipam::Ours(host_local)) => {
            let mut wanted = conf.requested_ips.clone();
            if let Some(args) = &env.args {
                for ip in CniArgs::parse(args)?.ips {
                    if !wanted.contains(&ip) {
                        wanted.push(ip);
                    }
                }
            }
            let routes = host_local
                .routes
                .iter()
                .map(|r| Route {
                    dst: r.dst,
                    gw: r.gw,
                    mtu: None,
                    advmss: None,
                    priority: None,
                    table: None,
                    scope: None,
                })
                .collect();
            let from = CniResult {
                routes,
                ..CniResult::default()
            };
            (CniAddresses::Allocate(wanted), from)
        }
        AddressSource::Ipam(Ipam::Delegated { plugin }) => {
            // Before the plugin allocates: a namespace, master or config
            // that cannot take the link costs it nothing (ours is checked
            // in the driver).
            manager
                .cni_check_target(&spec, netns, &who.ifname)
                .map_err(add_error)?;
            let result = match attach::ipam_add(env, conf, plugin, input) {
                Ok(result) => result,
                Err(error) => {
                    manager.cni_drop_idle_master(&spec.name);
                    return Err(error);
                }
            };
            delegated = Some(plugin.clone());
            let given = result.ips.iter().map(|ip| ip.address).collect();
            (CniAddresses::Given(given), result)
        }
        AddressSource::PrevResult(prev) => {
            let given = prev.ips.iter().map(|ip| ip.address).collect();
            (CniAddresses::Given(given), prev.clone())
        }
    };
    let request = CniAttach {
        container_id: &who.container_id,
        ifname: &who.ifname,
        netns,
        addresses,
        // A route without a next hop goes through the gateway of its
        // family's address, as the reference configures it; ours are the
        // driver's to fill (the subnet's gateway).
        routes: from
            .routes
            .iter()
            .map(|r| {
                let gateway = from
                    .ips
                    .iter()
                    .filter(|ip| ip.address.addr().is_ipv4() == r.dst.addr().is_ipv4())
                    .find_map(|ip| ip.gateway);
                (r.dst, r.gw.or(gateway))
            })
            .collect(),
    };
    let attached = match manager.cni_add(&spec, &request) {
        Ok(attached) => attached,
        Err(error) => {
            if let Some(plugin) = &delegated {
                attach::ipam_undo(env, plugin, input);
            }
            return Err(add_error(error));
        }
    };
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

/// DEL: ours first (the link if it is an ipvlan one, the lease, the
/// record), then the delegated plugin's DEL. Gone is success.
pub fn del(env: &Env, conf: &NetConf, input: &[u8]) -> Result<(), CniError> {
    let who = attachment(env)?;
    let manager = manager(env)?;
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
    if let Some(Ipam::Delegated { plugin }) = &conf.ipam {
        attach::run_ipam(env, plugin, Command::Del, input)?;
    }
    Ok(())
}

/// CHECK: the delegated plugin's CHECK, then the namespace against the
/// config and the cached result: the link is an ipvlan link of the
/// config's mode and flag, with the result's MAC, every address and route
/// of the result is there. What differs is the error's message.
pub fn check(env: &Env, conf: &NetConf, input: &[u8]) -> Result<(), CniError> {
    let who = attachment(env)?;
    let netns = env
        .netns
        .as_ref()
        .ok_or_else(|| CniError::env("CNI_NETNS is required"))?;
    let prev = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| CniError::config("Required prevResult missing"))?;
    attach::choose_master(conf)?;
    if let Some(Ipam::Delegated { plugin }) = &conf.ipam {
        attach::run_ipam(env, plugin, Command::Check, input)?;
    }
    let manager = manager(env)?;
    let found = manager
        .cni_check(&conf.name, &who.container_id, &who.ifname, netns)
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
    let listed = prev.interfaces.iter().find(|i| i.name == who.ifname);
    if let Some(mac) = listed.and_then(|i| i.mac.as_deref()) {
        if !mac.eq_ignore_ascii_case(&found.mac) {
            return Err(CniError::internal(format!(
                "{} in {} has MAC {}, the result says {mac}",
                who.ifname,
                netns.display(),
                found.mac
            )));
        }
    }
    let ours = prev
        .interfaces
        .iter()
        .position(|i| i.name == who.ifname && i.sandbox.as_deref().map_or(true, |s| !s.is_empty()));
    for ip in &prev.ips {
        if ip.interface.is_some() && ip.interface != ours {
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
        let there = found
            .routes
            .iter()
            .any(|&(dst, gw)| dst == route.dst.trunc() && route.gw.map_or(true, |g| gw == Some(g)));
        if !there {
            return Err(CniError::internal(format!(
                "{} in {} lacks route {}{} of the result",
                who.ifname,
                netns.display(),
                route.dst,
                route.gw.map_or(String::new(), |g| format!(" via {g}"))
            )));
        }
    }
    Ok(())
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
/// DEL; then the delegated plugin's GC. Without a list nothing goes.
pub fn gc(env: &Env, conf: &NetConf, input: &[u8]) -> Result<(), CniError> {
    if let Some(valid) = &conf.valid_attachments {
        let valid: Vec<(String, String)> = valid
            .iter()
            .map(|a| (a.container_id.clone(), a.ifname.clone()))
            .collect();
        let manager = manager(env)?;
        for note in manager.cni_gc(&conf.name, &valid).map_err(runtime)? {
            eprintln!("ipvlan: {note}");
        }
    }
    if let Some(Ipam::Delegated { plugin }) = &conf.ipam {
        attach::run_ipam(env, plugin, Command::Gc, input)?;
    }
    Ok(())
}

/// STATUS: the master must be there (or what ADD makes it from, or a
/// default route when none is named): code 50 when it is not. Then a
/// delegated plugin is asked (its error is the answer); our IPAM is ready
/// when the state directory opens.
pub fn status(env: &Env, conf: &NetConf, input: &[u8]) -> Result<(), CniError> {
    let not_available =
        |mut e: CniError| CniError::new(ErrorCode::PluginNotAvailable, std::mem::take(&mut e.msg));
    // With linkInContainer the master is in a namespace STATUS is not
    // told of.
    if conf.link.as_ref().is_some_and(|l| !l.link_in_container) {
        let master = match attach::choose_master(conf)? {
            MasterChoice::Configured(m) | MasterChoice::Chained(m) => Some(m.name),
            MasterChoice::DefaultRoute => None,
        };
        manager(env)
            .map_err(not_available)?
            .cni_master_ready(master.as_deref())
            .map_err(|e| not_available(runtime(e)))?;
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
            manager(env).map_err(|mut e| {
                CniError::new(ErrorCode::PluginNotAvailable, std::mem::take(&mut e.msg))
            })?;
        }
        None => {}
    }
    Ok(())
}
