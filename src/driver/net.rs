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
use crate::store::records::NetnsId;

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
    /// `IFLA_LINK_NETNSID`: set when `parent_index` counts in another
    /// namespace than the link's own (for our endpoints: the host's).
    pub link_netnsid: Option<i32>,
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
    /// Its ifindex inside the namespace.
    pub index: u32,
}

/// A netlink failure as a driver error: the layer's text (operation,
/// link, namespace, the kernel's own words) and its errno.
pub(crate) fn from_netlink(error: crate::netlink::Error) -> Error {
    if let crate::netlink::ErrorKind::Unsupported { feature: kind, .. } = error.kind() {
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
        link_netnsid: link.link_netnsid,
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

/// Whether a request may have been carried out although its answer was
/// lost (anything but the kernel's own refusal).
fn outcome_unknown(error: &crate::netlink::Error) -> bool {
    !matches!(error.kind(), crate::netlink::ErrorKind::Kernel { .. })
}

/// Deletes the host link `name` if it has `kind`: the undo of a create
/// whose later steps failed (a fresh socket, the first may be the reason).
fn undo_host_create(name: &str, kind: &str) {
    if let Ok(host) = Handle::new() {
        if let Ok(Some(link)) = host.link_by_name(name) {
            if link.kind.as_deref() == Some(kind) {
                let _ = host.link_del(link.index);
            }
        }
    }
}

fn create_and_up(spec: &LinkSpec, kind: &str) -> Result<Link, Error> {
    let host = handle(None)?;
    if let Err(error) = host.link_add(spec) {
        if outcome_unknown(&error) {
            undo_host_create(&spec.name, kind);
        }
        return Err(from_netlink(error));
    }
    // The link exists from here on: any failure deletes it.
    let finish = || -> Result<Link, Error> {
        let created = host
            .link_by_name(&spec.name)
            .map_err(from_netlink)?
            .ok_or_else(|| Error::failed(format!("link {} vanished after creation", spec.name)))?;
        host.link_set_up(created.index).map_err(from_netlink)?;
        host.link_by_index(created.index)
            .map_err(from_netlink)?
            .map(convert)
            .ok_or_else(|| Error::failed(format!("link {} vanished after creation", spec.name)))
    };
    let finished = finish();
    if finished.is_err() {
        undo_host_create(&spec.name, kind);
    }
    finished
}

/// Creates the dummy `name` in the host namespace (with `mtu`, so a
/// network may use an MTU above 1500) and sets it up.
pub(crate) fn create_dummy(name: &str, mtu: Option<u32>) -> Result<Link, Error> {
    let spec = LinkSpec::dummy(name);
    let spec = match mtu {
        Some(mtu) => spec.mtu(mtu),
        None => spec,
    };
    create_and_up(&spec, "dummy")
}

/// Creates the 802.1Q link `name` on `base_index` and sets it up.
pub(crate) fn create_vlan(name: &str, base_index: u32, vlan_id: u16) -> Result<Link, Error> {
    create_and_up(&LinkSpec::vlan(name, base_index, vlan_id), "vlan")
}

/// Deletes a link; `Ok(false)` when it was already gone.
pub(crate) fn delete_link(ns: Option<&Netns>, index: u32) -> Result<bool, Error> {
    match handle(ns)?.link_del(index) {
        Ok(()) => Ok(true),
        Err(error) if error.is_not_found() => Ok(false),
        Err(error) => Err(from_netlink(error)),
    }
}

/// The endpoint link recorded as `ifindex` (or named `ifname` in records
/// older than the index) in `ns`, if any; whether it is ours is for
/// [`not_ours`] to say.
pub(crate) fn endpoint_link(
    ns: &Netns,
    ifindex: Option<u32>,
    ifname: &str,
) -> Result<Option<Link>, Error> {
    recorded_link(&handle(Some(ns))?, ifindex, ifname)
}

/// The host's on-link routes, IPv4 and IPv6 (for default pools).
pub(crate) fn onlink_routes() -> Result<Vec<IpNet>, Error> {
    const RT_SCOPE_LINK: u8 = 253;
    const RTN_UNICAST: u8 = 1;
    let host = handle(None)?;
    let mut found = Vec::new();
    for family in [IpFamily::V4, IpFamily::V6] {
        for route in host.routes(family).map_err(from_netlink)? {
            if is_onlink(&route, RT_SCOPE_LINK, RTN_UNICAST) {
                found.push(route.dst);
            }
        }
    }
    Ok(found)
}

/// IPv4 on-link routes have link scope; IPv6 routes are always of
/// universe scope, so there an on-link prefix is a unicast route through
/// a device without a gateway (link-local fe80::/64 aside).
fn is_onlink(route: &rtnl::Route, scope_link: u8, unicast: u8) -> bool {
    if route.is_default() {
        return false;
    }
    match route.dst {
        IpNet::V4(_) => route.scope == scope_link,
        IpNet::V6(dst) => {
            let link_local: Ipv6Net = "fe80::/64".parse().expect("a valid prefix");
            route.kind == unicast
                && route.oif.is_some()
                && route.gateway.is_none()
                && dst != link_local
        }
    }
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
    /// The highest ifindex inside, seen by [`NsLinks::free_ifname`]'s dump.
    inside_max: std::cell::Cell<Option<u32>>,
}

/// Errnos of a create with an ifindex that only say the index is taken:
/// EEXIST in the host (the socket's namespace), EBUSY in the target.
fn index_taken(error: &crate::netlink::Error) -> bool {
    matches!(error.errno(), Some(libc::EEXIST | libc::EBUSY))
}

impl NsLinks {
    pub(crate) fn open(ns: &Netns) -> Result<NsLinks, Error> {
        Ok(NsLinks {
            host: handle(None)?,
            inside: handle(Some(ns))?,
            inside_max: std::cell::Cell::new(None),
        })
    }

    /// The identity of `ns`, the namespace these links were opened in: its
    /// nsfs file's id and its cookie, which unlike the inode no later
    /// namespace ever gets.
    pub(crate) fn netns_identity(&self, ns: &Netns) -> Result<NetnsId, Error> {
        let (dev, ino) = nsfs_file_id(ns)?;
        let cookie = netns_cookie(ns, &self.inside)?;
        Ok(NetnsId { dev, ino, cookie })
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
    /// in both namespaces, without asking which are: the next index inside
    /// (known from the name dump) first, then a few random high ones; a
    /// taken index costs one refused request, refused before anything is
    /// allocated. `Ok(false)`: every index tried was taken.
    fn create_with_index(
        &self,
        ns: &Netns,
        plan: &EndpointPlan,
        ifname: &str,
    ) -> Result<bool, crate::netlink::Error> {
        let mut candidates: Vec<u32> = self.inside_max.get().map(|m| m + 1).into_iter().collect();
        for _ in 0..3 {
            let random = super::random_hex(4)
                .ok()
                .and_then(|hex| u32::from_str_radix(&hex, 16).ok())
                .unwrap_or(0);
            // Above what hosts reach, below the kernel's INT_MAX.
            candidates.push((1 << 20) + random % (1 << 30));
        }
        for index in candidates {
            match self.request_with_index(ns, plan, ifname, index) {
                Ok(()) => return Ok(true),
                Err(error) if index_taken(&error) => continue,
                Err(error) => return Err(error),
            }
        }
        Ok(false)
    }

    fn request_with_index(
        &self,
        ns: &Netns,
        plan: &EndpointPlan,
        ifname: &str,
        index: u32,
    ) -> Result<(), crate::netlink::Error> {
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
        self.host.socket().request(&msg)
    }

    /// The lowest `ethN` not taken in the namespace.
    pub(crate) fn free_ifname(&self) -> Result<String, Error> {
        let links = self.inside.links().map_err(from_netlink)?;
        self.inside_max
            .set(Some(links.iter().map(|l| l.index).max().unwrap_or(1)));
        let taken: Vec<String> = links.into_iter().map(|l| l.name).collect();
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
        // every index tried be taken, a temporary name and a rename inside.
        // Any other refusal is returned as it is.
        let created = match self.create_with_index(ns, plan, &ifname) {
            Ok(true) => Ok(None),
            Ok(false) => match self.host.link_add(&spec_named(&ifname)) {
                Ok(()) => Ok(None),
                Err(error) if error.is_exists() => {
                    let temporary = format!("{TEMPORARY_PREFIX}{}", &super::random_hex(5)?[..9]);
                    match self.host.link_add(&spec_named(&temporary)) {
                        Ok(()) => Ok(Some(temporary)),
                        Err(error) => Err((error, Some(temporary))),
                    }
                }
                Err(error) => Err((error, None)),
            },
            Err(error) => Err((error, None)),
        };
        let temporary = match created {
            Ok(temporary) => temporary,
            Err((error, temporary)) => {
                // A lost answer may hide a link that was made.
                if outcome_unknown(&error) {
                    self.undo_create(temporary.as_deref().unwrap_or(&ifname), plan);
                }
                return Err(from_netlink(error));
            }
        };
        let created_name = temporary.as_deref().unwrap_or(&ifname);
        let index = match self.inside.link_by_name(created_name) {
            Ok(Some(link)) => link.index,
            Ok(None) => {
                return Err(Error::failed(format!(
                    "ipvlan link {created_name} vanished from namespace {} after creation",
                    ns.label()
                )))
            }
            Err(error) => {
                self.undo_create(created_name, plan);
                return Err(from_netlink(error));
            }
        };
        match configure(ns, &self.inside, index, temporary.is_some(), &ifname, plan) {
            Ok(mac) => Ok(BuiltEndpoint { ifname, mac, index }),
            Err(error) => {
                let _ = self.inside.link_del(index);
                Err(error)
            }
        }
    }

    /// Deletes the ipvlan link `name` on the plan's parent inside, if it
    /// is there: the undo of a create whose outcome is unknown.
    fn undo_create(&self, name: &str, plan: &EndpointPlan) {
        if let Ok(Some(link)) = self.inside.link_by_name(name) {
            let link = convert(link);
            if link.kind.as_deref() == Some("ipvlan")
                && link.parent_index == Some(plan.parent_index)
            {
                let _ = self.inside.link_del(link.index);
            }
        }
    }
}

/// Builds an endpoint in `ns`; on failure nothing is left behind.
pub(crate) fn create_endpoint(ns: &Netns, plan: &EndpointPlan) -> Result<BuiltEndpoint, Error> {
    NsLinks::open(ns)?.create_endpoint(ns, plan)
}

/// Deletes ipvlan links on `parent` left under a temporary name in `ns`
/// (an attach interrupted between create and rename); returns how many.
pub(crate) fn delete_temporary_links(ns: &Netns, parent: Option<&Link>) -> Result<usize, Error> {
    let mut deleted = 0;
    for link in links(Some(ns))? {
        if is_temporary_name(&link.name)
            && not_ours(&link, parent, None).is_none()
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

/// What sits at an endpoint's recorded namespace path now.
#[derive(Debug)]
pub(crate) enum NsAt {
    /// The namespace attached, with its identity.
    Present(Netns, NetnsId),
    /// Nothing (ENOENT: the process exited, the name was deleted), or
    /// another namespace than the one attached (a reused PID, a name
    /// deleted and added again): ours is gone either way.
    Gone,
    /// A file that is not a namespace, e.g. the empty mount point of
    /// `/run/netns/NAME` left by a process killed before its bind mount.
    NotANamespace,
}

/// `st_dev` shared by every nsfs file: what a namespace file is.
fn nsfs_dev() -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata("/proc/thread-self/ns/net")?.dev())
}

/// `st_dev` and `st_ino` of an open namespace's nsfs file, stable for the
/// namespace's whole life and never shared by two living ones.
fn nsfs_file_id(ns: &Netns) -> Result<(u64, u64), Error> {
    use std::os::unix::fs::MetadataExt;
    let meta = ns
        .fd()
        .try_clone_to_owned()
        .map(std::fs::File::from)
        .and_then(|file| file.metadata())
        .map_err(|e| {
            Error::io(
                format!("reading the identity of namespace {}", ns.label()),
                &e,
            )
        })?;
    Ok((meta.dev(), meta.ino()))
}

/// The cookie of `ns`, read on `inside`, a handle opened in it.
fn netns_cookie(ns: &Netns, inside: &Handle) -> Result<Option<u64>, Error> {
    inside.socket().netns_cookie().map_err(|e| {
        Error::io(
            format!("reading the cookie of namespace {}", ns.label()),
            &e,
        )
    })
}

/// Opens the namespace at `path` and tells whether it is the one recorded
/// (`recorded`: its identity at attach; `None` in records older than that,
/// taken on trust). Only a missing file (or process) and a different
/// namespace count as gone; any other failure is an error, so a live
/// namespace we cannot open now is never given up.
pub(crate) fn open_recorded_netns(path: &str, recorded: Option<NetnsId>) -> Result<NsAt, Error> {
    let ns = match Netns::open_path(path) {
        Ok(ns) => ns,
        Err(error) if matches!(error.raw_os_error(), Some(libc::ENOENT | libc::ESRCH)) => {
            return Ok(NsAt::Gone)
        }
        Err(error) => return Err(Error::io(format!("opening namespace {path}"), &error)),
    };
    let (dev, ino) = nsfs_file_id(&ns)?;
    let nsfs = nsfs_dev().map_err(|e| Error::io("reading the namespace file system", &e))?;
    if dev != nsfs {
        return Ok(NsAt::NotANamespace);
    }
    let cookie = netns_cookie(&ns, &handle(Some(&ns))?)?;
    let identity = NetnsId { dev, ino, cookie };
    match recorded {
        Some(recorded) if !recorded.same_namespace(&identity) => Ok(NsAt::Gone),
        _ => Ok(NsAt::Present(ns, identity)),
    }
}

/// Why a link is not an endpoint link of ours, or `None` when it is: an
/// ipvlan link whose lower link is `parent` in the host namespace (index
/// counted in another namespace: `IFLA_LINK_NETNSID` set) and whose MAC is
/// the parent's (or the one recorded at attach).
pub(crate) fn not_ours(link: &Link, parent: Option<&Link>, mac: Option<&str>) -> Option<String> {
    if link.kind.as_deref() != Some("ipvlan") {
        return Some(format!(
            "link {} (index {}) is not an ipvlan link",
            link.name, link.index
        ));
    }
    let Some(parent) = parent else {
        return Some(format!(
            "link {} (index {}): the network's parent is missing, so it cannot sit on it",
            link.name, link.index
        ));
    };
    if link.parent_index != Some(parent.index) || link.link_netnsid.is_none() {
        return Some(format!(
            "link {} (index {}) does not sit on parent {} of the host",
            link.name, link.index, parent.name
        ));
    }
    let text = link.mac_text();
    if text != parent.mac_text() && !mac.is_some_and(|m| m.eq_ignore_ascii_case(&text)) {
        return Some(format!(
            "link {} (index {}) has MAC {text}, not the parent's",
            link.name, link.index
        ));
    }
    None
}

/// What became of an endpoint's link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LinkRemoval {
    Deleted,
    /// No link at the recorded index (or name).
    Missing,
    /// A link is there but is not ours: left alone, with why.
    NotOurs(String),
}

/// The endpoint link recorded as `ifindex` (or, in records made before the
/// index was known, named `ifname`) in `ns`, if any.
pub(crate) fn recorded_link(
    inside: &Handle,
    ifindex: Option<u32>,
    ifname: &str,
) -> Result<Option<Link>, Error> {
    let link = match ifindex {
        Some(index) => inside.link_by_index(index),
        None if ifname.is_empty() => return Ok(None),
        None => inside.link_by_name(ifname),
    };
    Ok(link.map_err(from_netlink)?.map(convert))
}

/// Deletes an endpoint's link in `ns` after checking it is ours (see
/// [`not_ours`]), by index: a link that only has the recorded name is
/// never deleted.
pub(crate) fn delete_endpoint_link(
    ns: &Netns,
    ifindex: Option<u32>,
    ifname: &str,
    parent: Option<&Link>,
    mac: Option<&str>,
) -> Result<LinkRemoval, Error> {
    let inside = handle(Some(ns))?;
    let Some(link) = recorded_link(&inside, ifindex, ifname)? else {
        return Ok(LinkRemoval::Missing);
    };
    if let Some(why) = not_ours(&link, parent, mac) {
        return Ok(LinkRemoval::NotOurs(format!(
            "{why} in namespace {}; left in place",
            ns.label()
        )));
    }
    match inside.link_del(link.index) {
        Ok(()) => Ok(LinkRemoval::Deleted),
        Err(error) if error.is_not_found() => Ok(LinkRemoval::Missing),
        Err(error) => Err(from_netlink(error)),
    }
}

/// `RTM_GETNSID` and the `NETNSA_*` attributes (uapi `net_namespace.h`).
const RTM_GETNSID: u16 = 90;
const NETNSA_NSID: u16 = 1;
const NETNSA_FD: u16 = 3;

/// The id `ns` knows the host namespace (the caller's) by, if it gave it
/// one: a link of `ns` whose `IFLA_LINK_NETNSID` is this id has its lower
/// link in the host.
pub(crate) fn host_nsid_in(ns: &Netns) -> Result<Option<i32>, Error> {
    let host = Netns::current().map_err(|e| Error::io("opening the host namespace", &e))?;
    let inside = handle(Some(ns))?;
    let mut msg = MessageBuilder::new(RTM_GETNSID, 0);
    // struct rtgenmsg, padded to NLMSG_ALIGNTO.
    msg.family_header(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    msg.put_u32(NETNSA_FD, host.fd().as_raw_fd() as u32);
    inside
        .socket()
        .request_reply(&msg, |reply| {
            for attr in reply.attrs(4)? {
                let attr = attr?;
                if attr.kind() == NETNSA_NSID {
                    // NETNSA_NSID_NOT_ASSIGNED (-1): no id, so no link there
                    // refers to the host.
                    let id = attr.i32()?;
                    return Ok((id >= 0).then_some(id));
                }
            }
            Ok(None)
        })
        .map_err(from_netlink)
}
