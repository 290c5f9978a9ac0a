//! The kernel side of the driver, on top of [`crate::rtnl`]: what the
//! driver needs to know about links and the few changes it makes.

use std::net::IpAddr;
use std::os::fd::AsRawFd;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{Error, Flag, Mode};
use crate::netlink::consts::{
    IFLA_ADDRESS, IFLA_IFNAME, IFLA_INFO_DATA, IFLA_INFO_KIND, IFLA_IPVLAN_FLAGS, IFLA_IPVLAN_MODE,
    IFLA_LINK, IFLA_LINKINFO, IFLA_MTU, IFLA_NET_NS_FD, NLM_F_CREATE, NLM_F_EXCL, RTM_NEWLINK,
};
use crate::netlink::MessageBuilder;
use crate::netns::Netns;
use crate::rtnl::link::IfInfoMsg;
use crate::rtnl::{
    self, AddrFlags, Handle, IpFamily, IpvlanFlags, IpvlanMode, LinkSpec, RouteSpec,
};

/// `ARPHRD_ETHER`.
pub(crate) const ARPHRD_ETHER: u16 = 1;

/// What the driver needs to know about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Link {
    pub index: u32,
    pub name: String,
    /// `IFLA_INFO_KIND` (`ipvlan`, `vlan`, `dummy`, `veth`...).
    pub kind: Option<String>,
    /// Administratively up.
    pub up: bool,
    pub mtu: u32,
    /// `ifi_type` (`ARPHRD_*`).
    pub link_type: u16,
    /// `IFLA_LINK`: the lower link (in the host namespace when the link
    /// lives elsewhere).
    pub parent_index: Option<u32>,
    /// Mode and flag of an ipvlan link.
    pub ipvlan: Option<(Mode, Flag)>,
    /// `IFLA_ADDRESS`.
    pub mac: Vec<u8>,
    /// `IFLA_VLAN_ID` of a vlan link.
    pub vlan_id: Option<u16>,
}

impl Link {
    /// `aa:bb:cc:dd:ee:ff`.
    pub fn mac_text(&self) -> String {
        self.mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    }
}

/// The route an endpoint gets, per family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DefaultRoute {
    /// No default route (internal l2).
    None,
    /// `default via GW dev ethN` (l2).
    Via(IpAddr),
    /// `default dev ethN` (l3, l3s).
    Device,
}

/// Everything needed to build an endpoint inside a namespace.
#[derive(Debug, Clone)]
pub(crate) struct EndpointPlan {
    pub parent_index: u32,
    pub mode: Mode,
    pub flag: Flag,
    pub mtu: Option<u32>,
    /// Interface name to use; `None` picks the lowest free `ethN`.
    pub ifname: Option<String>,
    pub ipv4: Option<Ipv4Net>,
    pub ipv6: Option<Ipv6Net>,
    pub route4: DefaultRoute,
    pub route6: DefaultRoute,
}

/// What was built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuiltEndpoint {
    pub ifname: String,
    pub mac: String,
}

/// A netlink failure as a driver error: the layer's text (operation,
/// link, namespace, the kernel's own words) and its errno.
pub(crate) fn from_netlink(error: crate::netlink::Error) -> Error {
    if let crate::netlink::ErrorKind::Unsupported { kind } = error.kind() {
        return Error::unsupported(super::kernel::missing_kind_message(kind));
    }
    match error.errno() {
        Some(errno) => Error::os(error.to_string(), errno),
        None => Error::failed(error.to_string()),
    }
}

fn handle(ns: Option<&Netns>) -> Result<Handle, Error> {
    match ns {
        None => Handle::new(),
        Some(ns) => Handle::in_netns(ns),
    }
    .map_err(from_netlink)
}

fn mode_of(mode: IpvlanMode) -> Mode {
    match mode {
        IpvlanMode::L3 => Mode::L3,
        IpvlanMode::L3s => Mode::L3s,
        _ => Mode::L2,
    }
}

fn flag_of(flags: IpvlanFlags) -> Flag {
    if flags.contains(IpvlanFlags::PRIVATE) {
        Flag::Private
    } else if flags.contains(IpvlanFlags::VEPA) {
        Flag::Vepa
    } else {
        Flag::Bridge
    }
}

fn to_rtnl(mode: Mode, flag: Flag) -> (IpvlanMode, IpvlanFlags) {
    let mode = match mode {
        Mode::L2 => IpvlanMode::L2,
        Mode::L3 => IpvlanMode::L3,
        Mode::L3s => IpvlanMode::L3s,
    };
    let flags = match flag {
        Flag::Bridge => IpvlanFlags::BRIDGE,
        Flag::Private => IpvlanFlags::PRIVATE,
        Flag::Vepa => IpvlanFlags::VEPA,
    };
    (mode, flags)
}

fn convert(link: rtnl::Link) -> Link {
    Link {
        ipvlan: link
            .ipvlan()
            .map(|(mode, flags)| (mode_of(mode), flag_of(flags))),
        vlan_id: link.vlan_id(),
        up: link.is_up(),
        index: link.index,
        mtu: link.mtu.unwrap_or(0),
        link_type: link.link_type,
        parent_index: link.parent,
        mac: link.mac.unwrap_or_default(),
        kind: link.kind,
        name: link.name,
    }
}

/// Every link of the host namespace (`None`) or of `ns`.
pub(crate) fn links(ns: Option<&Netns>) -> Result<Vec<Link>, Error> {
    let links = handle(ns)?.links().map_err(from_netlink)?;
    Ok(links.into_iter().map(convert).collect())
}

/// The link called `name`, if any.
pub(crate) fn link_by_name(ns: Option<&Netns>, name: &str) -> Result<Option<Link>, Error> {
    let link = handle(ns)?.link_by_name(name).map_err(from_netlink)?;
    Ok(link.map(convert))
}

/// The link with `index`, if any.
pub(crate) fn link_by_index(ns: Option<&Netns>, index: u32) -> Result<Option<Link>, Error> {
    let link = handle(ns)?.link_by_index(index).map_err(from_netlink)?;
    Ok(link.map(convert))
}

/// Whether the kernel knows the link kind (`ipvlan`, `dummy`, `vlan`),
/// asked in the calling thread's namespace without creating anything: the
/// request carries data the kind's own validation refuses (EINVAL), while
/// an unknown kind is refused before that (EOPNOTSUPP).
pub(crate) fn kind_supported(kind: &str) -> Result<bool, Error> {
    let mut msg = MessageBuilder::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    msg.family_header(&IfInfoMsg::default().to_bytes());
    if kind == "dummy" {
        // dummy_validate: an address that is not 6 bytes long.
        msg.put(IFLA_ADDRESS, &[0]);
    }
    msg.nested(IFLA_LINKINFO, |m| {
        m.put(IFLA_INFO_KIND, kind.as_bytes());
        if kind == "ipvlan" {
            // ipvlan_nl_validate: a mode past the last one.
            m.nested(IFLA_INFO_DATA, |d| {
                d.put_u16(IFLA_IPVLAN_MODE, u16::MAX);
            });
        }
        // vlan_validate refuses a request without IFLA_INFO_DATA.
    });
    let host = handle(None)?;
    match host.socket().request(&msg) {
        Err(error) if error.errno() == Some(libc::EOPNOTSUPP) => Ok(false),
        Err(error) if error.errno() == Some(libc::EINVAL) => Ok(true),
        Err(error) => Err(from_netlink(error).context(format!("probing link kind {kind}"))),
        Ok(()) => Err(Error::failed(format!(
            "probing link kind {kind}: the kernel accepted an invalid request"
        ))),
    }
}

fn create_and_up(spec: &LinkSpec) -> Result<Link, Error> {
    let host = handle(None)?;
    host.link_add(spec).map_err(from_netlink)?;
    let created = host
        .link_by_name(&spec.name)
        .map_err(from_netlink)?
        .ok_or_else(|| Error::failed(format!("link {} vanished after creation", spec.name)))?;
    if let Err(error) = host.link_set_up(created.index) {
        let _ = host.link_del(created.index);
        return Err(from_netlink(error));
    }
    host.link_by_index(created.index)
        .map_err(from_netlink)?
        .map(convert)
        .ok_or_else(|| Error::failed(format!("link {} vanished after creation", spec.name)))
}

/// Creates the dummy `name` in the host namespace and sets it up.
pub(crate) fn create_dummy(name: &str) -> Result<Link, Error> {
    create_and_up(&LinkSpec::dummy(name))
}

/// Creates the 802.1Q link `name` on `base_index` and sets it up.
pub(crate) fn create_vlan(name: &str, base_index: u32, vlan_id: u16) -> Result<Link, Error> {
    create_and_up(&LinkSpec::vlan(name, base_index, vlan_id))
}

/// Deletes a link; `Ok(false)` when it was already gone.
pub(crate) fn delete_link(ns: Option<&Netns>, index: u32) -> Result<bool, Error> {
    match handle(ns)?.link_del(index) {
        Ok(()) => Ok(true),
        Err(error) if error.is_not_found() => Ok(false),
        Err(error) => Err(from_netlink(error)),
    }
}

/// Deletes the link `name` in `ns` with one socket; `Ok(false)` when there
/// is none.
pub(crate) fn delete_link_by_name(ns: &Netns, name: &str) -> Result<bool, Error> {
    let inside = handle(Some(ns))?;
    let Some(link) = inside.link_by_name(name).map_err(from_netlink)? else {
        return Ok(false);
    };
    match inside.link_del(link.index) {
        Ok(()) => Ok(true),
        Err(error) if error.is_not_found() => Ok(false),
        Err(error) => Err(from_netlink(error)),
    }
}

/// The host's on-link routes, IPv4 and IPv6 (for default pools).
pub(crate) fn onlink_routes() -> Result<Vec<IpNet>, Error> {
    const RT_SCOPE_LINK: u8 = 253;
    let host = handle(None)?;
    let mut found = Vec::new();
    for family in [IpFamily::V4, IpFamily::V6] {
        for route in host.routes(family).map_err(from_netlink)? {
            if route.scope == RT_SCOPE_LINK && !route.is_default() {
                found.push(route.dst);
            }
        }
    }
    Ok(found)
}

/// Sets `lo` up in `ns`.
pub(crate) fn set_loopback_up(ns: &Netns) -> Result<(), Error> {
    let inside = handle(Some(ns))?;
    let lo = inside.link_index("lo").map_err(from_netlink)?;
    inside.link_set_up(lo).map_err(from_netlink)
}

/// Prefix of the temporary names of links created before a rename.
const TEMPORARY_PREFIX: &str = "ipv";

/// Whether `name` is one of our temporary link names (`ipv` + 9 hex).
pub(crate) fn is_temporary_name(name: &str) -> bool {
    name.strip_prefix(TEMPORARY_PREFIX)
        .is_some_and(|rest| rest.len() == 9 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Sockets in the host namespace and in one container namespace, opened
/// once per attach.
pub(crate) struct NsLinks {
    host: Handle,
    inside: Handle,
}

impl NsLinks {
    pub(crate) fn open(ns: &Netns) -> Result<NsLinks, Error> {
        Ok(NsLinks {
            host: handle(None)?,
            inside: handle(Some(ns))?,
        })
    }

    /// A link of the host namespace by name.
    pub(crate) fn host_link(&self, name: &str) -> Result<Option<Link>, Error> {
        Ok(self
            .host
            .link_by_name(name)
            .map_err(from_netlink)?
            .map(convert))
    }

    /// Creates the ipvlan link in `ns` named `ifname` with an ifindex free
    /// in both namespaces.
    fn create_with_index(
        &self,
        ns: &Netns,
        plan: &EndpointPlan,
        ifname: &str,
    ) -> Result<(), Error> {
        let inside_max = self
            .inside
            .links()
            .map_err(from_netlink)?
            .iter()
            .map(|l| l.index)
            .max()
            .unwrap_or(1);
        let mut index = inside_max + 1;
        for _ in 0..64 {
            if self
                .host
                .link_by_index(index)
                .map_err(from_netlink)?
                .is_none()
            {
                break;
            }
            index += 1;
        }
        let (mode, flags) = to_rtnl(plan.mode, plan.flag);
        let header = IfInfoMsg {
            index,
            ..IfInfoMsg::default()
        };
        let mut msg = MessageBuilder::new(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
        msg.family_header(&header.to_bytes());
        msg.put_u32(IFLA_NET_NS_FD, ns.fd().as_raw_fd() as u32);
        if let Some(mtu) = plan.mtu {
            msg.put_u32(IFLA_MTU, mtu);
        }
        msg.put_u32(IFLA_LINK, plan.parent_index);
        msg.put_str(IFLA_IFNAME, ifname);
        msg.nested(IFLA_LINKINFO, |m| {
            m.put(IFLA_INFO_KIND, b"ipvlan");
            m.nested(IFLA_INFO_DATA, |d| {
                d.put_u16(IFLA_IPVLAN_MODE, mode.to_u16());
                d.put_u16(IFLA_IPVLAN_FLAGS, flags.bits());
            });
        });
        self.host.socket().request(&msg).map_err(from_netlink)
    }

    /// The lowest `ethN` not taken in the namespace.
    pub(crate) fn free_ifname(&self) -> Result<String, Error> {
        let taken: Vec<String> = self
            .inside
            .links()
            .map_err(from_netlink)?
            .into_iter()
            .map(|l| l.name)
            .collect();
        let free = (0..)
            .map(|n| format!("eth{n}"))
            .find(|name| !taken.contains(name))
            .unwrap_or_default();
        Ok(free)
    }

    /// Builds an endpoint named `plan.ifname` (or the lowest free `ethN`);
    /// on failure nothing is left behind.
    pub(crate) fn create_endpoint(
        &self,
        ns: &Netns,
        plan: &EndpointPlan,
    ) -> Result<BuiltEndpoint, Error> {
        let ifname = match &plan.ifname {
            Some(name) => name.clone(),
            None => self.free_ifname()?,
        };
        let (mode, flags) = to_rtnl(plan.mode, plan.flag);
        let spec_named = |name: &str| {
            let spec = LinkSpec::ipvlan(name, plan.parent_index, mode, flags).in_netns(ns);
            match plan.mtu {
                Some(mtu) => spec.mtu(mtu),
                None => spec,
            }
        };
        // The kernel looks a new link's name up in the namespace of the
        // socket (the host's) before creating it in the target, so "eth0"
        // collides with a host eth0. Asking for an ifindex instead makes it
        // look up only that index: the final name is created directly,
        // without the rename that costs several times the create. Should
        // the kernel refuse, a temporary name and a rename inside.
        let temporary = match self.create_with_index(ns, plan, &ifname) {
            Ok(()) => None,
            Err(_) => match self.host.link_add(&spec_named(&ifname)) {
                Ok(()) => None,
                Err(error) if error.is_exists() => {
                    let temporary = format!("{TEMPORARY_PREFIX}{}", &super::random_hex(5)?[..9]);
                    self.host
                        .link_add(&spec_named(&temporary))
                        .map_err(from_netlink)?;
                    Some(temporary)
                }
                Err(error) => return Err(from_netlink(error)),
            },
        };
        let created_name = temporary.as_deref().unwrap_or(&ifname);
        let index = match self
            .inside
            .link_by_name(created_name)
            .map_err(from_netlink)?
        {
            Some(link) => link.index,
            None => {
                return Err(Error::failed(format!(
                    "ipvlan link {created_name} vanished from namespace {} after creation",
                    ns.label()
                )))
            }
        };
        match configure(ns, &self.inside, index, temporary.is_some(), &ifname, plan) {
            Ok(mac) => Ok(BuiltEndpoint { ifname, mac }),
            Err(error) => {
                let _ = self.inside.link_del(index);
                Err(error)
            }
        }
    }
}

/// Builds an endpoint in `ns`; on failure nothing is left behind.
pub(crate) fn create_endpoint(ns: &Netns, plan: &EndpointPlan) -> Result<BuiltEndpoint, Error> {
    NsLinks::open(ns)?.create_endpoint(ns, plan)
}

/// Deletes ipvlan links left under a temporary name in `ns` (an attach
/// interrupted between create and rename); returns how many.
pub(crate) fn delete_temporary_links(ns: &Netns) -> Result<usize, Error> {
    let mut deleted = 0;
    for link in links(Some(ns))? {
        if is_temporary_name(&link.name)
            && link.kind.as_deref() == Some("ipvlan")
            && delete_link(Some(ns), link.index)?
        {
            deleted += 1;
        }
    }
    Ok(deleted)
}

fn configure(
    ns: &Netns,
    inside: &Handle,
    index: u32,
    rename: bool,
    ifname: &str,
    plan: &EndpointPlan,
) -> Result<String, Error> {
    if rename {
        inside.link_rename(index, ifname).map_err(from_netlink)?;
    }
    let disable = plan.ipv6.is_none();
    if let Err(error) = crate::netns::set_disable_ipv6(ns, ifname, disable) {
        // A kernel without IPv6 has nothing to disable.
        if !disable || error.kind() != std::io::ErrorKind::NotFound {
            return Err(Error::io(
                format!("setting disable_ipv6 on {ifname} in {}", ns.label()),
                &error,
            ));
        }
    }
    if let Some(v4) = plan.ipv4 {
        inside
            .addr_add(index, IpNet::V4(v4), AddrFlags::empty())
            .map_err(from_netlink)?;
    }
    if let Some(v6) = plan.ipv6 {
        inside
            .addr_add(index, IpNet::V6(v6), AddrFlags::NODAD)
            .map_err(from_netlink)?;
    }
    inside.link_set_up(index).map_err(from_netlink)?;
    for (route, family) in [(plan.route4, IpFamily::V4), (plan.route6, IpFamily::V6)] {
        let spec = match route {
            DefaultRoute::None => continue,
            DefaultRoute::Via(gateway) => RouteSpec::default_via(gateway).dev(index),
            DefaultRoute::Device => RouteSpec::default_dev(family, index),
        };
        if family == IpFamily::V6 && plan.ipv6.is_none() {
            continue;
        }
        inside.route_add(&spec).map_err(from_netlink)?;
    }
    let link = inside
        .link_by_index(index)
        .map_err(from_netlink)?
        .map(convert)
        .ok_or_else(|| Error::failed(format!("link {ifname} vanished")))?;
    Ok(link.mac_text())
}
