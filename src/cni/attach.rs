//! The front end's part of ADD, before and after the driver's: which
//! master, where the addresses come from, and the result the runtime gets.
//! No I/O here but the delegated IPAM call; the link itself is the
//! driver's.

use super::config::{Ipam, Master, NetConf};
use super::delegate;
use super::env::{Command, Env};
use super::error::CniError;
use super::result::{CniResult, Interface};

/// Where the master comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MasterChoice {
    /// `master` is set.
    Configured(Master),
    /// Not set, no `prevResult`: the interface of the default route (in
    /// the container's namespace with `linkInContainer`).
    DefaultRoute,
    /// Not set, chained: the single named interface of `prevResult`.
    Chained(Master),
}

/// The master of an ADD or STATUS, chosen as the reference plugin chooses
/// it on ADD. CHECK and DEL never ask: the attachment's record names its
/// network.
pub fn choose_master(conf: &NetConf) -> Result<MasterChoice, CniError> {
    if let Some(master) = conf.link.as_ref().and_then(|l| l.master.clone()) {
        return Ok(MasterChoice::Configured(master));
    }
    let Some(prev) = &conf.prev_result else {
        return Ok(MasterChoice::DefaultRoute);
    };
    let named: Vec<&Interface> = prev
        .interfaces
        .iter()
        .filter(|i| !i.name.is_empty())
        .collect();
    match named.as_slice() {
        [only] => Master::parse(&only.name)
            .map(MasterChoice::Chained)
            .map_err(|e| {
                CniError::config(format!("chained master failure: prevResult: {}", e.msg))
            }),
        _ => Err(CniError::config(format!(
            "chained master failure. PrevResult lacks a single named interface (it has {})",
            named.len()
        ))),
    }
}

/// Where an ADD's addresses come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressSource<'a> {
    /// From the IPAM plugin (delegated, or ours).
    Ipam(&'a Ipam),
    /// Chained, no `ipam`: the addresses and routes of `prevResult`.
    PrevResult(&'a CniResult),
}

/// The address source of an ADD. Without `ipam`, `prevResult` must carry
/// addresses (the reference's message when it does not).
pub fn address_source(conf: &NetConf) -> Result<AddressSource<'_>, CniError> {
    match (&conf.ipam, &conf.prev_result) {
        (Some(ipam), _) => Ok(AddressSource::Ipam(ipam)),
        (None, Some(prev)) if !prev.ips.is_empty() => Ok(AddressSource::PrevResult(prev)),
        (None, _) => Err(CniError::config(
            "IPAM plugin returned missing IP config: the config names no IPAM plugin (ipam.type) and has no prevResult with addresses",
        )),
    }
}

/// The result of an ADD: the addresses and routes of `addresses` (IPAM's
/// result, or `prevResult` when chained), all on `link`, the one
/// interface listed. DNS: the config's `dns` when it sets anything, else
/// the IPAM plugin's (the reference drops IPAM's DNS, e.g. host-local's
/// `resolvConf`, even when the config has none).
pub fn add_result(conf: &NetConf, addresses: &CniResult, link: Interface) -> CniResult {
    let mut result = CniResult {
        interfaces: vec![link],
        ips: addresses.ips.clone(),
        routes: addresses.routes.clone(),
        dns: if conf.dns.is_empty() {
            addresses.dns.clone()
        } else {
            conf.dns.clone()
        },
    };
    for ip in &mut result.ips {
        ip.interface = Some(0);
    }
    result
}

/// Runs the delegated IPAM plugin `plugin` for `verb` with the request's
/// stdin `input` and environment.
pub fn run_ipam(
    env: &Env,
    plugin: &str,
    verb: Command,
    input: &[u8],
) -> Result<delegate::Output, CniError> {
    let path = delegate::find_in_path(plugin, &env.path)?;
    delegate::run(&path, verb, &env.vars, input, delegate::TIMEOUT)
}

/// ADD through the delegated IPAM plugin: its result, which must hold
/// addresses. A plugin that succeeded with a result we cannot use holds
/// what it gave all the same: its DEL is run before the error returns, as
/// for an ADD failing later (the spec's rule).
pub fn ipam_add(
    env: &Env,
    conf: &NetConf,
    plugin: &str,
    input: &[u8],
) -> Result<CniResult, CniError> {
    let output = run_ipam(env, plugin, Command::Add, input)?;
    delegate::read_result(plugin, &output, conf.cni_version).map_err(|error| {
        ipam_undo(env, plugin, input);
        error
    })
}

/// Undoes [`ipam_add`] after a later step of ADD failed (the spec's rule:
/// a failed ADD runs the IPAM plugin's DEL). Best effort: the ADD's own
/// error is what the runtime must see; this one goes to stderr.
pub fn ipam_undo(env: &Env, plugin: &str, input: &[u8]) {
    if let Err(error) = run_ipam(env, plugin, Command::Del, input) {
        eprintln!("ipvlan: releasing the address after a failed ADD: {error}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::config::decode;
    use crate::cni::env::Command;
    use crate::cni::error::ErrorCode;
    use crate::cni::version::Version;
    use crate::json;

    fn conf(extra: &str) -> NetConf {
        let text = format!(r#"{{"cniVersion": "1.0.0", "name": "n", "type": "ipvlan"{extra}}}"#);
        NetConf::read(&decode(text.as_bytes()).unwrap(), Command::Add).unwrap()
    }

    const PREV_ONE: &str = r#", "prevResult": {"interfaces": [{"name": "eth9"}],
        "ips": [{"address": "10.1.2.2/24", "gateway": "10.1.2.1", "interface": 0}],
        "routes": [{"dst": "0.0.0.0/0"}], "dns": {"nameservers": ["10.1.2.53"]}}"#;

    #[test]
    fn the_master_is_configured_or_the_default_routes_or_the_chained_one() {
        let configured = choose_master(&conf(r#", "master": "eth0.10""#)).unwrap();
        assert!(
            matches!(configured, MasterChoice::Configured(m) if m.name == "eth0.10" && m.vlan.is_some())
        );
        assert_eq!(
            choose_master(&conf("")).unwrap(),
            MasterChoice::DefaultRoute
        );
        let chained = choose_master(&conf(PREV_ONE)).unwrap();
        assert!(matches!(chained, MasterChoice::Chained(m) if m.name == "eth9"));
        let two = conf(r#", "prevResult": {"interfaces": [{"name": "a"}, {"name": "b"}]}"#);
        let error = choose_master(&two).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidConfig);
        assert_eq!(
            error.msg,
            "chained master failure. PrevResult lacks a single named interface (it has 2)"
        );
        // A configured master wins over prevResult's.
        let both = conf(&format!(r#", "master": "eth0"{PREV_ONE}"#));
        assert!(
            matches!(choose_master(&both).unwrap(), MasterChoice::Configured(m) if m.name == "eth0")
        );
    }

    #[test]
    fn addresses_come_from_ipam_or_a_chained_prev_result() {
        let delegated = conf(r#", "ipam": {"type": "host-local"}"#);
        assert!(matches!(
            address_source(&delegated).unwrap(),
            AddressSource::Ipam(Ipam::Delegated { .. })
        ));
        let chained = conf(PREV_ONE);
        assert!(matches!(
            address_source(&chained).unwrap(),
            AddressSource::PrevResult(_)
        ));
        let neither = address_source(&conf("")).unwrap_err();
        assert_eq!(neither.code, ErrorCode::InvalidConfig);
        assert!(
            neither
                .msg
                .starts_with("IPAM plugin returned missing IP config"),
            "{neither}"
        );
    }

    #[test]
    fn the_result_lists_our_link_and_keeps_ipam_dns_unless_the_config_sets_one() {
        let link = Interface {
            name: "eth0".into(),
            mac: Some("02:42:0a:01:02:02".into()),
            sandbox: Some("/run/netns/c1".into()),
            ..Interface::default()
        };
        let chained = conf(PREV_ONE);
        let prev = chained.prev_result.clone().unwrap();
        let result = add_result(&chained, &prev, link.clone());
        assert_eq!(
            result.to_json(Version::V1_0_0),
            json::parse(
                r#"{"cniVersion": "1.0.0",
                    "interfaces": [{"name": "eth0", "mac": "02:42:0a:01:02:02", "sandbox": "/run/netns/c1"}],
                    "ips": [{"address": "10.1.2.2/24", "gateway": "10.1.2.1", "interface": 0}],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dns": {"nameservers": ["10.1.2.53"]}}"#
            )
            .unwrap()
        );
        let with_dns = conf(&format!(
            r#", "dns": {{"search": ["example.org"]}}{PREV_ONE}"#
        ));
        let result = add_result(&with_dns, &prev, link);
        assert_eq!(result.dns.search, vec!["example.org".to_string()]);
        assert!(result.dns.nameservers.is_empty());
    }
}
