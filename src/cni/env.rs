//! The `CNI_*` environment: which verb, which attachment, where plugins
//! live. Checked as the spec's reference library checks it, with its codes
//! and messages, so that a runtime sees the same errors from us as from the
//! reference plugin.

use std::ffi::{OsStr, OsString};
use std::net::IpAddr;
use std::path::PathBuf;

use super::error::{CniError, ErrorCode};
use crate::netns::{is_valid_ifname, IFNAME_MAX};

/// A CNI verb (`CNI_COMMAND`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Attach a container.
    Add,
    /// Detach it, best effort.
    Del,
    /// Verify an attachment against the cached result.
    Check,
    /// Whether ADD can be served (1.1.0).
    Status,
    /// Remove what belongs to no valid attachment (1.1.0).
    Gc,
    /// List the versions we speak.
    Version,
}

impl Command {
    /// The verb named `text` (exact, upper case, as the spec spells them).
    pub fn parse(text: &str) -> Option<Command> {
        Some(match text {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            "VERSION" => Command::Version,
            _ => return None,
        })
    }

    /// The verb's name, as `CNI_COMMAND` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Gc => "GC",
            Command::Version => "VERSION",
        }
    }

    /// The variables the verb cannot do without. `CNI_PATH` is required
    /// for every verb but VERSION, as the reference library requires it
    /// (the spec marks it optional for ADD/DEL/CHECK, but no IPAM plugin
    /// can be found without it). `CNI_NETNS` is optional for DEL: the
    /// namespace may be gone, and DEL must still release.
    fn required(self) -> &'static [&'static str] {
        match self {
            Command::Add | Command::Check => &[CONTAINERID, NETNS, IFNAME, PATH],
            Command::Del => &[CONTAINERID, IFNAME, PATH],
            Command::Status | Command::Gc => &[PATH],
            Command::Version => &[],
        }
    }
}

/// The variable that turns the binary into a CNI plugin.
pub const COMMAND: &str = "CNI_COMMAND";
/// The runtime's id of the container.
pub const CONTAINERID: &str = "CNI_CONTAINERID";
/// The path of the container's network namespace.
pub const NETNS: &str = "CNI_NETNS";
/// The interface name inside the container.
pub const IFNAME: &str = "CNI_IFNAME";
/// `TRUE` (in any case) or `1`: ADD and DEL in the plugin's own network
/// namespace are meant (see [`Env::parse`]).
pub const NETNS_OVERRIDE: &str = "CNI_NETNS_OVERRIDE";
/// `K=V;K=V` arguments.
pub const ARGS: &str = "CNI_ARGS";
/// `:`-separated directories holding plugins.
pub const PATH: &str = "CNI_PATH";

/// One attachment: what the runtime keys it by.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Attachment {
    /// `CNI_CONTAINERID`, matching `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
    pub container_id: String,
    /// `CNI_IFNAME`, a name the kernel accepts.
    pub ifname: String,
}

/// The checked environment of one invocation.
#[derive(Clone, Debug)]
pub struct Env {
    /// The verb.
    pub command: Command,
    /// For ADD, CHECK and DEL: the attachment.
    pub attachment: Option<Attachment>,
    /// `CNI_NETNS`; always set for ADD and CHECK.
    pub netns: Option<PathBuf>,
    /// `CNI_ARGS` as given (parsed by [`CniArgs::parse`] where it is used:
    /// a delegated IPAM plugin reads it itself, and must get it unchanged).
    pub args: Option<String>,
    /// The directories of `CNI_PATH`, in order, empty entries dropped.
    pub path: Vec<PathBuf>,
    /// The whole environment, passed on unchanged (but `CNI_COMMAND`) to a
    /// delegated plugin.
    pub vars: Vec<(OsString, OsString)>,
}

/// Whether the binary runs as a CNI plugin: `CNI_COMMAND` is set and not
/// empty. Empty counts as unset, as the reference library reads it, so that
/// an exported `CNI_COMMAND=` does not hide the command line.
pub fn is_plugin_mode(command: Option<&OsStr>) -> bool {
    command.is_some_and(|c| !c.is_empty())
}

impl Env {
    /// Reads and checks the environment `vars`. Errors: code 4 for an
    /// unknown verb, missing variables (all named at once), a bad interface
    /// name, bad characters in the container id, a namespace path (ADD,
    /// CHECK) or `CNI_ARGS` that is not UTF-8; code 3 for an empty
    /// container id (the reference library's choice).
    pub fn parse(vars: Vec<(OsString, OsString)>) -> Result<Env, CniError> {
        let get = |name: &str| -> Option<&OsStr> {
            vars.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_os_str())
                .filter(|v| !v.is_empty())
        };
        let text = |name: &str| -> Result<Option<String>, CniError> {
            get(name)
                .map(|v| {
                    v.to_str()
                        .map(str::to_owned)
                        .ok_or_else(|| CniError::env(format!("{name} is not valid UTF-8")))
                })
                .transpose()
        };
        let command_text = text(COMMAND)?.unwrap_or_default();
        let command = Command::parse(&command_text).ok_or_else(|| {
            CniError::env(format!(
                "unknown CNI_COMMAND: {}",
                crate::text::escape_controls(&command_text)
            ))
        })?;
        let missing: Vec<&str> = command
            .required()
            .iter()
            .copied()
            .filter(|name| get(name).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(CniError::env(format!(
                "required env variables [{}] missing",
                crate::text::join(&missing, ",")
            )));
        }
        let attachment = match command {
            Command::Add | Command::Check | Command::Del => {
                let container_id = text(CONTAINERID)?.unwrap_or_default();
                check_container_id(&container_id)?;
                let ifname = text(IFNAME)?.unwrap_or_default();
                match command {
                    Command::Del => check_ifname_to_release(&ifname)?,
                    _ => check_ifname(&ifname)?,
                }
                Some(Attachment {
                    container_id,
                    ifname,
                })
            }
            _ => None,
        };
        // Recorded as text by an ADD, and found again by it (restore, GC,
        // CHECK, a repeated ADD): a path that is not UTF-8 would be
        // recorded otherwise than it is, and its attachment taken for
        // gone. DEL takes it as it is, to release what it names.
        if matches!(command, Command::Add | Command::Check) {
            text(NETNS)?;
        }
        let netns = get(NETNS).map(PathBuf::from);
        // The reference library's guard: a link made or deleted there
        // would be the host's. Unless the runtime says it means it.
        // `true` in any case, as it compares it. Compared byte by byte, not
        // by `eq_ignore_ascii_case`: that pulls in 96 bytes more code,
        // which the binary's 1 MiB has no room for.
        let overridden = get(NETNS_OVERRIDE).is_some_and(|v| {
            let v = v.as_encoded_bytes();
            v == b"1" || v.len() == 4 && v.iter().zip(b"true").all(|(c, t)| c | 0x20 == *t)
        });
        if matches!(command, Command::Add | Command::Del)
            && !overridden
            && netns.as_deref().is_some_and(crate::netns::is_own)
        {
            return Err(CniError::new(
                ErrorCode::InvalidNetns,
                "plugin's netns and netns from CNI_NETNS should not be the same",
            ));
        }
        // VERSION reads nothing else: libcni sends it with made-up values.
        // DEL and GC ask for no address (a delegated plugin gets the
        // variable as it is): one that does not decode must not keep them
        // from releasing.
        let args = match command {
            Command::Version | Command::Del | Command::Gc => None,
            _ => text(ARGS)?,
        };
        let path = get(PATH)
            .map(|p| {
                std::env::split_paths(p)
                    .filter(|d| !d.as_os_str().is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Env {
            command,
            attachment,
            netns,
            args,
            path,
            vars,
        })
    }
}

/// Whether `id` matches `[a-zA-Z0-9][a-zA-Z0-9_.-]*`: the spec's rule for
/// container ids and network names.
pub fn is_valid_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The reference library's container id check and messages.
pub fn check_container_id(id: &str) -> Result<(), CniError> {
    if id.is_empty() {
        return Err(CniError::new(
            ErrorCode::UnknownContainer,
            "missing containerID",
        ));
    }
    if !is_valid_id(id) {
        return Err(CniError::env("invalid characters in containerID")
            .with_details(crate::text::escape_controls(id).into_owned()));
    }
    Ok(())
}

/// The kernel's interface name rule, with the reference library's messages
/// (all code 4).
pub fn check_ifname(ifname: &str) -> Result<(), CniError> {
    if is_valid_ifname(ifname) {
        return Ok(());
    }
    let msg = if ifname.is_empty() {
        "interface name is empty".to_string()
    } else if ifname.len() > IFNAME_MAX {
        format!("interface name is too long: at most {IFNAME_MAX} bytes")
    } else if ifname == "." || ifname == ".." {
        "interface name is . or ..".to_string()
    } else if ifname.contains('%') {
        // The reference library takes it; the kernel then names the
        // link itself (`eth%d` is `eth0`), not as asked.
        "interface name contains %, which the kernel reads as a template".to_string()
    } else {
        "interface name contains / or : or whitespace characters".to_string()
    };
    Err(CniError::env(msg).with_details(crate::text::escape_controls(ifname).into_owned()))
}

/// [`check_ifname`] for an attachment to let go of (DEL, GC's list of
/// those to keep): a '%' passes, as it did when older versions made such
/// attachments (the kernel named their link from the template; the
/// attachment's record and leases still carry the name asked for), so
/// that they can still be released.
pub fn check_ifname_to_release(ifname: &str) -> Result<(), CniError> {
    match check_ifname(&ifname.replace('%', "_")) {
        Ok(()) => Ok(()),
        Err(_) => check_ifname(ifname),
    }
}

/// `CNI_ARGS`, as host-local reads it: `K=V` pairs separated by `;`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CniArgs {
    /// `IgnoreUnknown=1|true`: keys we do not know are tolerated.
    pub ignore_unknown: bool,
    /// `IP=`: requested addresses (comma-separated).
    pub ips: Vec<IpAddr>,
    /// Every other pair, in order (Kubernetes' `K8S_POD_NAME`, Nomad's
    /// `NOMAD_ALLOC_ID`, ...).
    pub others: Vec<(String, String)>,
}

impl CniArgs {
    /// Parses `text`. Code 4: a pair without exactly one `=`, a bad
    /// `IgnoreUnknown` or `IP` value, or (without `IgnoreUnknown`) a key
    /// we do not know.
    pub fn parse(text: &str) -> Result<CniArgs, CniError> {
        let mut args = CniArgs::default();
        let shown = |s: &str| crate::text::escape_controls(s).into_owned();
        for pair in text.split(';').filter(|p| !p.is_empty()) {
            let mut parts = pair.split('=');
            let (Some(key), Some(value), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(CniError::env(format!(
                    "CNI_ARGS: invalid pair {:?}",
                    shown(pair)
                )));
            };
            match key {
                "IgnoreUnknown" => {
                    args.ignore_unknown = match value.to_ascii_lowercase().as_str() {
                        "1" | "true" => true,
                        "0" | "false" => false,
                        _ => {
                            return Err(CniError::env(format!(
                                "CNI_ARGS: IgnoreUnknown must be 1, true, 0 or false, not {:?}",
                                shown(value)
                            )))
                        }
                    }
                }
                // As host-local reads it: an address, or one with a prefix
                // length (which says nothing more); empty asks for none.
                "IP" if value.is_empty() => {}
                "IP" => {
                    for ip in value.split(',') {
                        let ip = super::read::requested_address(ip).ok_or_else(|| {
                            CniError::env(format!(
                                "CNI_ARGS: IP {:?} is not an IP address",
                                shown(ip)
                            ))
                        })?;
                        args.ips.push(ip);
                    }
                }
                _ => args.others.push((key.to_string(), value.to_string())),
            }
        }
        if !args.ignore_unknown && !args.others.is_empty() {
            let keys: Vec<String> = args.others.iter().map(|(k, _)| shown(k)).collect();
            return Err(CniError::env(format!(
                "CNI_ARGS: unknown args [{}] (add IgnoreUnknown=1 to allow them)",
                keys.join(" ")
            )));
        }
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs.iter().map(|(k, v)| (k.into(), v.into())).collect()
    }

    fn add_vars() -> Vec<(&'static str, &'static str)> {
        vec![
            (COMMAND, "ADD"),
            (CONTAINERID, "c1"),
            (NETNS, "/run/netns/c1"),
            (IFNAME, "eth0"),
            (PATH, "/opt/cni/bin::/usr/lib/cni"),
        ]
    }

    fn with(changes: &[(&'static str, Option<&'static str>)]) -> Result<Env, CniError> {
        let mut pairs = add_vars();
        for (key, value) in changes {
            pairs.retain(|(k, _)| k != key);
            if let Some(value) = value {
                pairs.push((key, value));
            }
        }
        Env::parse(vars(&pairs))
    }

    /// ADD and CHECK refuse a '%' (the kernel would name the link itself);
    /// DEL takes it, as older versions let an ADD make such an attachment,
    /// whose record and leases DEL must still release.
    #[test]
    fn a_percent_in_the_interface_name_is_refused_but_by_del() {
        for command in ["ADD", "CHECK"] {
            let error = with(&[(COMMAND, Some(command)), (IFNAME, Some("eth%d"))]).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidEnvironment, "{command}");
        }
        let del = with(&[(COMMAND, Some("DEL")), (IFNAME, Some("eth%d"))]).unwrap();
        assert_eq!(del.attachment.unwrap().ifname, "eth%d");
        // What no version let an ADD make stays refused.
        assert!(with(&[(COMMAND, Some("DEL")), (IFNAME, Some("a/%"))]).is_err());
        assert!(check_ifname_to_release("a\u{b}b").is_err());
    }

    #[test]
    fn a_complete_add_environment_is_read() {
        let env = with(&[]).unwrap();
        assert_eq!(env.command, Command::Add);
        assert_eq!(
            env.attachment,
            Some(Attachment {
                container_id: "c1".into(),
                ifname: "eth0".into()
            })
        );
        assert_eq!(env.netns, Some(PathBuf::from("/run/netns/c1")));
        // The empty entry between the two colons names no directory.
        assert_eq!(
            env.path,
            vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
        );
        assert_eq!(env.vars.len(), 5);
    }

    #[test]
    fn plugin_mode_needs_a_non_empty_command() {
        assert!(!is_plugin_mode(None));
        assert!(!is_plugin_mode(Some(OsStr::new(""))));
        assert!(is_plugin_mode(Some(OsStr::new("VERSION"))));
        assert!(is_plugin_mode(Some(OsStr::new("bogus"))));
    }

    #[test]
    fn an_unknown_verb_is_code_4() {
        let error = with(&[(COMMAND, Some("FROB"))]).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidEnvironment);
        assert_eq!(error.msg, "unknown CNI_COMMAND: FROB");
        // Lower case is not the spec's spelling.
        assert_eq!(
            with(&[(COMMAND, Some("add"))]).unwrap_err().msg,
            "unknown CNI_COMMAND: add"
        );
    }

    #[test]
    fn missing_variables_are_all_named_and_empty_counts_as_missing() {
        let error = with(&[(NETNS, None), (PATH, Some(""))]).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidEnvironment);
        assert_eq!(
            error.msg,
            "required env variables [CNI_NETNS,CNI_PATH] missing"
        );
        let del = with(&[(COMMAND, Some("DEL")), (NETNS, None)]).unwrap();
        assert_eq!(del.netns, None, "DEL needs no namespace");
        let status = Env::parse(vars(&[(COMMAND, "STATUS")])).unwrap_err();
        assert_eq!(status.msg, "required env variables [CNI_PATH] missing");
        let version = Env::parse(vars(&[(COMMAND, "VERSION")])).unwrap();
        assert_eq!(version.attachment, None);
        // As libcni sends it, and with values no other verb would accept.
        let mut odd = vars(&[
            (COMMAND, "VERSION"),
            (NETNS, "dummy"),
            (IFNAME, "a very long interface"),
        ]);
        odd.push((
            ARGS.into(),
            std::os::unix::ffi::OsStringExt::from_vec(vec![0xff]),
        ));
        assert!(Env::parse(odd).is_ok());
    }

    /// [`Env::parse`] of `command`'s variables, `key` set to `bytes` (not
    /// UTF-8, say), the others as an ADD has them.
    fn with_bytes(command: &str, key: &str, bytes: &[u8]) -> Result<Env, CniError> {
        let mut pairs = vars(&[
            (COMMAND, command),
            (CONTAINERID, "c1"),
            (NETNS, "/run/netns/c1"),
            (IFNAME, "eth0"),
            (PATH, "/opt/cni/bin"),
        ]);
        pairs.retain(|(k, _)| k != key);
        pairs.push((
            key.into(),
            std::os::unix::ffi::OsStringExt::from_vec(bytes.to_vec()),
        ));
        Env::parse(pairs)
    }

    /// `CNI_ARGS` that is not UTF-8 is refused (code 4) where it is read,
    /// ADD and CHECK, and not where nothing reads it: a DEL (and a GC)
    /// must release whatever the runtime replays.
    #[test]
    fn cni_args_that_do_not_decode_refuse_an_add_not_a_del() {
        let with_args = |command: &str| with_bytes(command, ARGS, b"K8S_POD_NAME=\xff");
        for command in ["ADD", "CHECK"] {
            let error = with_args(command).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidEnvironment, "{command}");
        }
        for command in ["DEL", "GC"] {
            assert_eq!(with_args(command).unwrap().args, None, "{command}");
        }
    }

    /// A namespace path that is not UTF-8 would be recorded otherwise than
    /// it is: refused where it is recorded or compared (ADD, CHECK), taken
    /// as it is by DEL.
    #[test]
    fn a_namespace_path_that_does_not_decode_refuses_an_add_not_a_del() {
        let with_netns = |command: &str| with_bytes(command, NETNS, b"/run/netns/\xff");
        for command in ["ADD", "CHECK"] {
            let error = with_netns(command).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidEnvironment, "{command}");
            assert_eq!(error.msg, "CNI_NETNS is not valid UTF-8", "{command}");
        }
        let del = with_netns("DEL").unwrap();
        assert_eq!(
            del.netns.unwrap().as_os_str().as_encoded_bytes(),
            b"/run/netns/\xff"
        );
    }

    #[test]
    fn container_ids_follow_the_spec_rule() {
        for id in ["a", "0abc", "a_b.c-d", "cnitool-0123456789abcdef"] {
            assert!(with(&[(CONTAINERID, Some(id))]).is_ok(), "{id}");
        }
        for id in ["-a", "_a", ".a", "a b", "a/b", "é", "a\nb"] {
            let error = with(&[(CONTAINERID, Some(id))]).unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidEnvironment, "{id:?}");
            assert_eq!(error.msg, "invalid characters in containerID");
        }
        let empty = check_container_id("").unwrap_err();
        assert_eq!(
            (empty.code, empty.msg.as_str()),
            (ErrorCode::UnknownContainer, "missing containerID")
        );
    }

    #[test]
    fn interface_names_follow_the_kernel_rule() {
        for (ifname, msg) in [
            (
                "abcdefghijklmnop",
                "interface name is too long: at most 15 bytes",
            ),
            ("..", "interface name is . or .."),
            (
                "a/b",
                "interface name contains / or : or whitespace characters",
            ),
            (
                "a:b",
                "interface name contains / or : or whitespace characters",
            ),
            (
                "a b",
                "interface name contains / or : or whitespace characters",
            ),
            (
                "eth%d",
                "interface name contains %, which the kernel reads as a template",
            ),
            (
                "a\u{b}b",
                "interface name contains / or : or whitespace characters",
            ),
        ] {
            let error = with(&[(IFNAME, Some(ifname))]).unwrap_err();
            assert_eq!(
                (error.code, error.msg.as_str()),
                (ErrorCode::InvalidEnvironment, msg)
            );
        }
        assert!(with(&[(IFNAME, Some("abcdefghijklmno"))]).is_ok());
        assert_eq!(check_ifname("").unwrap_err().msg, "interface name is empty");
    }

    #[test]
    fn cni_args_are_parsed_as_host_local_reads_them() {
        let k8s = CniArgs::parse("IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=x;IP=10.1.2.3")
            .unwrap();
        assert!(k8s.ignore_unknown);
        assert_eq!(k8s.ips, vec!["10.1.2.3".parse::<IpAddr>().unwrap()]);
        // An IPv4-mapped address is the IPv4 address (host-local's
        // `canonicalizeIP`).
        let mapped = CniArgs::parse("IP=::ffff:10.1.2.3,2001:db8::3").unwrap();
        assert_eq!(
            mapped.ips,
            ["10.1.2.3", "2001:db8::3"].map(|a| a.parse::<IpAddr>().unwrap())
        );
        assert_eq!(k8s.others.len(), 2);
        let nomad = CniArgs::parse("IgnoreUnknown=true;NOMAD_ALLOC_ID=abc").unwrap();
        assert!(nomad.ignore_unknown);
        assert_eq!(CniArgs::parse("").unwrap(), CniArgs::default());
        let unknown = CniArgs::parse("FOO=bar").unwrap_err();
        assert_eq!(unknown.code, ErrorCode::InvalidEnvironment);
        assert_eq!(
            unknown.msg,
            "CNI_ARGS: unknown args [FOO] (add IgnoreUnknown=1 to allow them)"
        );
        assert_eq!(
            CniArgs::parse("FOO").unwrap_err().msg,
            "CNI_ARGS: invalid pair \"FOO\""
        );
        assert_eq!(
            CniArgs::parse("A=b=c").unwrap_err().msg,
            "CNI_ARGS: invalid pair \"A=b=c\""
        );
        assert_eq!(
            CniArgs::parse("IP=10.0.0.300").unwrap_err().msg,
            "CNI_ARGS: IP \"10.0.0.300\" is not an IP address"
        );
        assert!(CniArgs::parse("IgnoreUnknown=yes").is_err());
        // host-local's `ip.IP` takes a prefix length (and ignores it), and
        // an empty `IP=` asks for nothing. Before: code 4 for both.
        let prefixed = CniArgs::parse("IgnoreUnknown=1;IP=10.12.0.5/24,fd00::5/64").unwrap();
        assert_eq!(
            prefixed.ips,
            ["10.12.0.5", "fd00::5"].map(|ip| ip.parse::<IpAddr>().unwrap())
        );
        assert_eq!(CniArgs::parse("IP=").unwrap().ips, Vec::<IpAddr>::new());
        assert_eq!(
            CniArgs::parse("IP=10.0.0.5/33").unwrap_err().msg,
            "CNI_ARGS: IP \"10.0.0.5/33\" is not an IP address"
        );
    }
}
