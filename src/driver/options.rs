//! Validation of what callers give that does not need the kernel: names,
//! driver, `-o` options, parent syntax, directory paths.

use std::path::{Path, PathBuf};

use super::{Error, IpvlanFlag, IpvlanMode};
use crate::netns::{is_valid_ifname, IFNAME_MAX};
use crate::store::{EndpointRecord, NetworkRecord};

/// The option key under which a network made by CNI ADD holds its config
/// (see `cni`).
pub(crate) const CNI_MARK: &str = "cni.config";

/// The config CNI ADD made `network` from, if it made it.
pub(crate) fn cni_config(network: &NetworkRecord) -> Option<&str> {
    network
        .options
        .iter()
        .find(|(key, _)| key == CNI_MARK)
        .map(|(_, value)| value.as_str())
}

/// Whether CNI ADD made `network`.
pub(crate) fn made_by_cni(network: &NetworkRecord) -> bool {
    cni_config(network).is_some()
}

/// Whether `network` is a CNI network whose addresses come from another
/// IPAM plugin (its config names `ipam=TYPE`, neither ours nor none): its
/// records hold addresses that plugin leased, which only its DEL gives
/// back, run by the runtime (which holds its `CNI_PATH`).
pub(crate) fn delegates_ipam(network: &NetworkRecord) -> bool {
    let Some(config) = cni_config(network) else {
        return false;
    };
    let ipam = config
        .split(' ')
        .find_map(|part| part.strip_prefix("ipam="))
        .unwrap_or("none");
    !matches!(ipam, "ipvlan" | "none")
}

/// Whether `network` is a CNI network without a master in the host: made
/// by a lease-only ADD (only leases), or with `linkInContainer` (each
/// link's master is in its container's namespace).
pub(crate) fn is_masterless(network: &NetworkRecord) -> bool {
    made_by_cni(network) && network.parent.is_empty()
}

/// Prefix of the endpoint ids of CNI attachments.
pub(crate) const CNI_ID_PREFIX: &str = "cni-";

/// Prefix of the endpoint ids of lease-only records: the addresses our
/// binary hands out as the IPAM plugin of another plugin, which makes
/// the link itself. No link, no master belongs to such a record.
pub(crate) const CNI_LEASE_PREFIX: &str = "cnl-";

/// Whether a CNI ADD made `endpoint` (an attachment or a lease): its
/// runtime's, which its DEL or GC removes. Such a record names no
/// container (older versions filed a container's endpoint under the
/// container's name, which may start as these ids do).
pub(crate) fn attached_by_cni(endpoint: &EndpointRecord) -> bool {
    endpoint.container.is_none()
        && (endpoint.id.starts_with(CNI_ID_PREFIX) || endpoint.id.starts_with(CNI_LEASE_PREFIX))
}

/// Whether the endpoint is a lease-only record (no link of ours): a CNI
/// ADD's ([`attached_by_cni`]; a container's endpoint an older version
/// filed under a name such as `cnl-web` is no lease).
pub(crate) fn is_cni_lease(endpoint: &EndpointRecord) -> bool {
    attached_by_cni(endpoint) && endpoint.id.starts_with(CNI_LEASE_PREFIX)
}

/// Longest network or container name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// The `-o` keys we understand, in the order error messages list them.
pub const VALID_OPTION_KEYS: [&str; 4] = ["parent", "ipvlan_mode", "ipvlan_flag", "mtu"];
/// Smallest MTU of an IPv4 link (RFC 791).
pub const MIN_MTU: u32 = 68;
/// Smallest MTU of a link that carries IPv6: below it the kernel turns
/// IPv6 off on the link, so every attach of an IPv6 network would fail.
pub const IPV6_MIN_MTU: u32 = 1280;

/// Whether `name` matches `[a-zA-Z0-9][a-zA-Z0-9_.-]*` and fits 64 bytes.
pub(crate) fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_NAME_LEN
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Checks a network name.
pub(crate) fn check_network_name(name: &str) -> Result<(), Error> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid network name \"{name}\": only [a-zA-Z0-9][a-zA-Z0-9_.-]* are allowed, at most {MAX_NAME_LEN} bytes"
        )))
    }
}

/// Refuses the names Docker gives its own networks (`docker run
/// --net=host` means no network of this name), with Docker's words: a
/// script that made one would mean something else by `--net` than the
/// Docker it was written for.
pub(crate) fn refuse_predefined_network_name(name: &str) -> Result<(), Error> {
    if matches!(name, "bridge" | "host" | "none" | "default") {
        return Err(Error::invalid(format!(
            "{name} is a pre-defined network and cannot be created"
        )));
    }
    Ok(())
}

/// Checks a container (namespace) name.
pub(crate) fn check_container_name(name: &str) -> Result<(), Error> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "invalid container name \"{name}\": only [a-zA-Z0-9][a-zA-Z0-9_.-]* are allowed, at most {MAX_NAME_LEN} bytes"
        )))
    }
}

/// Checks `-d|--driver`.
pub(crate) fn check_driver(driver: &str) -> Result<(), Error> {
    if driver == "ipvlan" {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "driver \"{driver}\" is not supported: this tool only creates ipvlan networks (-d ipvlan)"
        )))
    }
}

/// The `-o` options, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct NetworkOptions {
    pub mode: IpvlanMode,
    pub flag: IpvlanFlag,
    /// `None` or empty: a dummy parent.
    pub parent: Option<String>,
    pub mtu: Option<u32>,
}

/// Parses the `-o` options. Unknown keys are refused, listing the valid
/// ones; so is a key given twice: Docker's option map keeps the last value,
/// which silently drops the other, and two values in the record would make
/// it unreadable.
pub(crate) fn parse_options(options: &[(String, String)]) -> Result<NetworkOptions, Error> {
    let mut parsed = NetworkOptions::default();
    for (at, (key, value)) in options.iter().enumerate() {
        if options[..at].iter().any(|(earlier, _)| earlier == key) {
            let given: Vec<String> = options
                .iter()
                .filter(|(other, _)| other == key)
                .map(|(key, value)| format!("-o {key}={value}"))
                .collect();
            return Err(Error::invalid(format!(
                "option '{key}' given more than once ({}): give each option once",
                given.join(", ")
            )));
        }
        match key.as_str() {
            "ipvlan_mode" => parsed.mode = parse_mode(value)?,
            "ipvlan_flag" => parsed.flag = parse_flag(value)?,
            "parent" => {
                parsed.parent = if value.is_empty() {
                    None
                } else {
                    Some(value.clone())
                }
            }
            "mtu" => parsed.mtu = Some(parse_mtu(value)?),
            other => {
                return Err(Error::invalid(format!(
                    "unknown option '{other}': valid options are {}",
                    crate::text::join(&VALID_OPTION_KEYS, ", ")
                )))
            }
        }
    }
    if let Some(parent) = &parsed.parent {
        if parent == "lo" {
            return Err(Error::invalid(
                "loopback interface is not a valid ipvlan parent link",
            ));
        }
        if !is_valid_ifname(parent) {
            return Err(Error::invalid(format!(
                "invalid parent interface name '{parent}': at most {IFNAME_MAX} bytes, no '/', ':', '%' or whitespace, not '.' or '..'"
            )));
        }
    }
    Ok(parsed)
}

/// An `ipvlan_mode` value, case-sensitively, with Docker's error text;
/// empty means the default.
fn parse_mode(value: &str) -> Result<IpvlanMode, Error> {
    if value.is_empty() {
        return Ok(IpvlanMode::default());
    }
    value.parse().map_err(|_| {
        Error::invalid(format!(
            "requested ipvlan mode '{value}' is not valid, 'l2' mode is the ipvlan driver default"
        ))
    })
}

/// An `ipvlan_flag` value, case-sensitively, with Docker's error text;
/// empty means the default.
fn parse_flag(value: &str) -> Result<IpvlanFlag, Error> {
    if value.is_empty() {
        return Ok(IpvlanFlag::default());
    }
    value.parse().map_err(|_| {
        Error::invalid(format!(
            "requested ipvlan flag '{value}' is not valid, 'bridge' is the ipvlan driver default"
        ))
    })
}

fn parse_mtu(value: &str) -> Result<u32, Error> {
    match value.parse::<u32>() {
        Ok(mtu) if mtu >= MIN_MTU && value.bytes().all(|b| b.is_ascii_digit()) => Ok(mtu),
        _ => Err(Error::invalid(format!(
            "invalid mtu '{value}': must be a number from {MIN_MTU} to the parent's MTU"
        ))),
    }
}

/// A `NAME.VLANID` parent split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VlanParent {
    pub base: String,
    pub vlan_id: u16,
}

/// Parses a parent that does not exist as `NAME.VLANID` with Docker's
/// texts; whether `NAME` exists is checked by the caller, before the range
/// check, as Docker does.
pub(crate) fn parse_vlan_parent(parent: &str) -> Result<(String, &str), Error> {
    if !parent.contains('.') {
        return Err(Error::not_found(format!(
            "the requested parent interface {parent} was not found on the host"
        )));
    }
    let parts: Vec<&str> = parent.split('.').collect();
    if parts.len() != 2 || parts[0].is_empty() {
        return Err(Error::invalid(format!(
            "required interface name format is: name.vlan_id, ex. eth0.10 for vlan 10, instead received {parent}"
        )));
    }
    let id = parts[1];
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::invalid(format!(
            "unable to parse a valid vlan id from: {parent} (ex. eth0.10 for vlan 10)"
        )));
    }
    Ok((parts[0].to_string(), id))
}

/// Refuses an MTU too small for IPv6 on a network that carries IPv6.
pub(crate) fn check_mtu_for_ipv6(mtu: Option<u32>, ipv6: bool) -> Result<(), Error> {
    match mtu {
        Some(mtu) if ipv6 && mtu < IPV6_MIN_MTU => Err(Error::invalid(format!(
            "mtu {mtu} is too small for an IPv6 network: IPv6 needs at least {IPV6_MIN_MTU} (RFC 8200)"
        ))),
        _ => Ok(()),
    }
}

/// Checks the numeric VLAN id (1..4094) once the base is known to exist.
pub(crate) fn check_vlan_id(parent: &str, base: String, id: &str) -> Result<VlanParent, Error> {
    match id.parse::<u32>() {
        Ok(vlan_id @ 1..=4094) => Ok(VlanParent {
            base,
            vlan_id: vlan_id as u16,
        }),
        _ => Err(Error::invalid(format!(
            "vlan id must be between 1-4094, received: {id} (parent {parent})"
        ))),
    }
}

/// `path` made absolute: a relative one is joined to the current directory
/// and its `.` and `..` resolved lexically; an absolute one is returned as
/// it is. `what` names the path in errors (`"state directory"`); an empty
/// path is refused.
///
/// Paths end up in records and in the `/etc/netns` symlinks, read later
/// from other directories; a relative one would then point elsewhere.
/// Without the file system: the directory may not exist yet, and a
/// symlink the user chose (`/var/lib/ipvlan` -> a data disk) stays the
/// path recorded. `.` goes; a `..` after a component given stays, as
/// that component may be a symlink (`link/..` is not the directory
/// holding `link`).
///
/// ```
/// use std::path::Path;
/// let cwd = std::env::current_dir().unwrap();
/// let path = ipvlan::driver::absolute_path("state directory", Path::new("a/./b/../c")).unwrap();
/// assert_eq!(path, cwd.join("a/b/../c"));
/// assert_eq!(
///     ipvlan::driver::absolute_path("state directory", Path::new("")).unwrap_err().to_string(),
///     "the state directory path is empty"
/// );
/// ```
pub fn absolute_path(what: &str, path: &Path) -> Result<PathBuf, Error> {
    if path.as_os_str().is_empty() {
        return Err(Error::invalid(format!("the {what} path is empty")));
    }
    if path.is_absolute() {
        return Ok(path.to_path_buf());
    }
    let cwd = std::env::current_dir().map_err(|error| {
        Error::io(
            format_args!(
                "making the {what} {} absolute: reading the current directory",
                path.display()
            ),
            &error,
        )
    })?;
    Ok(super::netns_identity::normalise(&cwd, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CNI ADD's records name no container; an older version's record of
    /// a container named `cni-db` is that container's.
    #[test]
    fn only_records_naming_no_container_are_a_cni_runtimes() {
        let record = |id: &str, container: Option<&str>| EndpointRecord {
            id: id.into(),
            network_id: "ab".repeat(32),
            container: container.map(str::to_string),
            netns: "/run/netns/x".into(),
            ifname: "eth0".into(),
            mac: None,
            ipv4: None,
            ipv6: None,
            state: crate::store::EndpointState::Attached,
            created: crate::store::Timestamp::now(),
            netns_id: None,
            ifindex: None,
        };
        assert!(attached_by_cni(&record("cni-0123", None)));
        assert!(attached_by_cni(&record("cnl-0123", None)));
        assert!(!attached_by_cni(&record("cni-db", Some("cni-db"))));
        assert!(!attached_by_cni(&record("_netns_0123", None)));
    }

    #[test]
    fn a_network_delegates_its_ipam_when_its_config_names_another_plugin() {
        let with = |config: Option<&str>| {
            let mut network = crate::store::records::fixtures::network("pods", 'c', Vec::new());
            if let Some(config) = config {
                network.options.push((CNI_MARK.to_string(), config.into()));
            }
            delegates_ipam(&network)
        };
        let config = |ipam: &str| {
            format!(
                "master=(default route) mode=l2 flag=bridge mtu=(master's) ipam={ipam} ranges=-"
            )
        };
        assert!(with(Some(&config("host-local"))));
        assert!(with(Some(&config("dhcp"))));
        assert!(!with(Some(&config("ipvlan"))));
        assert!(!with(Some(&config("none"))));
        assert!(!with(Some("lease-only ipam=ipvlan ranges=10.0.0.0/24")));
        assert!(!with(None), "a network of the CLI");
    }

    fn opts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn names_follow_docker_rule() {
        assert!(is_valid_name("db_net"));
        assert!(is_valid_name("a.b-c_d9"));
        assert!(is_valid_name(&"a".repeat(64)));
        assert!(!is_valid_name(&"a".repeat(65)));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("-x"));
        assert!(!is_valid_name("_x"));
        assert!(!is_valid_name("a b"));
        assert!(!is_valid_name("a/b"));
        assert!(!is_valid_name("é"));
    }

    #[test]
    fn mode_and_flag_errors_use_docker_texts() {
        let err = parse_options(&opts(&[("ipvlan_mode", "L2")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "requested ipvlan mode 'L2' is not valid, 'l2' mode is the ipvlan driver default"
        );
        let err = parse_options(&opts(&[("ipvlan_flag", "foo")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "requested ipvlan flag 'foo' is not valid, 'bridge' is the ipvlan driver default"
        );
    }

    #[test]
    fn unknown_key_lists_valid_keys() {
        let err = parse_options(&opts(&[("macvlan_mode", "bridge")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown option 'macvlan_mode': valid options are parent, ipvlan_mode, ipvlan_flag, mtu"
        );
    }

    #[test]
    fn parses_all_options() {
        let parsed = parse_options(&opts(&[
            ("parent", "eth0.20"),
            ("ipvlan_mode", "l3s"),
            ("ipvlan_flag", "private"),
            ("mtu", "1400"),
        ]))
        .unwrap();
        assert_eq!(
            parsed,
            NetworkOptions {
                mode: IpvlanMode::L3s,
                flag: IpvlanFlag::Private,
                parent: Some("eth0.20".into()),
                mtu: Some(1400)
            }
        );
        assert_eq!(parse_options(&[]).unwrap(), NetworkOptions::default());
    }

    #[test]
    fn loopback_and_bad_mtu_refused() {
        let err = parse_options(&opts(&[("parent", "lo")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "loopback interface is not a valid ipvlan parent link"
        );
        for bad in ["0", "67", "x", "-1", "+100", ""] {
            assert!(parse_options(&opts(&[("mtu", bad)])).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_repeated_key_is_refused_naming_it() {
        for (pairs, text) in [
            (
                &[("parent", "eth0"), ("mtu", "1400"), ("mtu", "1400")][..],
                "option 'mtu' given more than once (-o mtu=1400, -o mtu=1400): give each option once",
            ),
            (
                &[("ipvlan_mode", "l2"), ("ipvlan_mode", "l3"), ("ipvlan_mode", "l3s")][..],
                "option 'ipvlan_mode' given more than once (-o ipvlan_mode=l2, -o ipvlan_mode=l3, -o ipvlan_mode=l3s): give each option once",
            ),
        ] {
            assert_eq!(parse_options(&opts(pairs)).unwrap_err().to_string(), text);
        }
    }

    #[test]
    fn parent_names_follow_the_kernel_rule() {
        for bad in ["a b", "a\tb", "a:b", "a/b", ".", "..", "abcdefghijklmnop"] {
            let err = parse_options(&opts(&[("parent", bad)])).unwrap_err();
            assert!(
                err.to_string().starts_with("invalid parent interface name"),
                "{bad:?}: {err}"
            );
        }
        assert!(parse_options(&opts(&[("parent", "abcdefghijklmno")])).is_ok());
    }

    #[test]
    fn ipv6_needs_an_mtu_of_1280() {
        assert!(check_mtu_for_ipv6(Some(1280), true).is_ok());
        assert!(check_mtu_for_ipv6(Some(1279), false).is_ok());
        assert!(check_mtu_for_ipv6(None, true).is_ok());
        assert_eq!(
            check_mtu_for_ipv6(Some(1279), true)
                .unwrap_err()
                .to_string(),
            "mtu 1279 is too small for an IPv6 network: IPv6 needs at least 1280 (RFC 8200)"
        );
    }

    #[test]
    fn relative_paths_are_made_absolute_keeping_what_a_link_may_change() {
        let cwd = std::env::current_dir().unwrap();
        // `s` may be a symbolic link: `s/..` is not the working directory.
        assert_eq!(
            absolute_path("x", Path::new("./s/../t")).unwrap(),
            cwd.join("s/../t")
        );
        assert_eq!(
            absolute_path("x", Path::new("a//b/.")).unwrap(),
            cwd.join("a/b")
        );
        assert_eq!(
            absolute_path("x", Path::new("..")).unwrap(),
            cwd.parent().unwrap_or(Path::new("/"))
        );
        // An absolute path is the user's choice, `..` and all.
        assert_eq!(
            absolute_path("x", Path::new("/a/../b")).unwrap(),
            Path::new("/a/../b")
        );
    }

    #[test]
    fn vlan_parent_syntax() {
        assert_eq!(
            parse_vlan_parent("eth0.20").unwrap(),
            ("eth0".to_string(), "20")
        );
        assert!(parse_vlan_parent("eth5")
            .unwrap_err()
            .to_string()
            .contains("was not found"));
        assert!(parse_vlan_parent("a.b.c")
            .unwrap_err()
            .to_string()
            .starts_with("required interface name format"));
        assert!(parse_vlan_parent("eth0.+10")
            .unwrap_err()
            .to_string()
            .starts_with("unable to parse a valid vlan id"));
        assert!(check_vlan_id("eth0.0", "eth0".into(), "0").is_err());
        assert!(check_vlan_id("eth0.4095", "eth0".into(), "4095").is_err());
        assert_eq!(
            check_vlan_id("eth0.4094", "eth0".into(), "4094")
                .unwrap()
                .vlan_id,
            4094
        );
    }
}
