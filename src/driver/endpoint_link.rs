//! The endpoint's kernel link: an ipvlan link created straight inside the
//! container's namespace, its addresses and default routes, and the checks
//! that make us delete only a link that is ours.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::netns_identity::OpenNetns;
use super::{random_hex, Error, IpvlanFlag, IpvlanMode};
use crate::rtnl::{AddrFlags, Handle, IpFamily, Link, LinkSpec, RouteSpec, Step};
use crate::store::NetworkRecord;

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
    /// The parent's MAC, which an ipvlan link always shares.
    pub parent_mac: String,
    pub mode: IpvlanMode,
    pub flag: IpvlanFlag,
    pub mtu: Option<u32>,
    pub ipv4: Option<Ipv4Net>,
    pub ipv6: Option<Ipv6Net>,
    pub route4: DefaultRoute,
    pub route6: DefaultRoute,
    /// Further routes (a CNI result's), through the link; empty for the
    /// CLI's endpoints.
    pub routes: Vec<ResultRoute>,
    /// Addresses beyond `ipv4` and `ipv6` (a CNI result may give several
    /// of a family: host-local with two range sets, a chained
    /// `prevResult`); empty for the CLI's endpoints.
    pub extra_addresses: Vec<IpNet>,
    /// Set `arp_notify` on the link before it goes up, so that its first
    /// address is announced (a CNI ADD does, as the reference plugin does;
    /// the CLI's endpoints keep the kernel's default, as Docker's).
    pub arp_notify: bool,
}

/// A route a CNI result names, added through the endpoint's link as the
/// reference plugins add it: its table, metric and scope when given (CNI
/// 1.1.0's `table`, `priority`, `scope`), the main table and the kernel's
/// defaults otherwise.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultRoute {
    /// Destination.
    pub dst: IpNet,
    /// Next hop; none: a route on the link.
    pub gw: Option<IpAddr>,
    /// Routing table; none: the main one.
    pub table: Option<u32>,
    /// Metric (`RTA_PRIORITY`).
    pub priority: Option<u32>,
    /// Scope (`RT_SCOPE_*`).
    pub scope: Option<u8>,
}

impl EndpointPlan {
    /// The plan for an endpoint of `network` on `parent` with these
    /// addresses: l2 routes to its subnet's gateway (none when internal),
    /// l3/l3s through the device.
    pub(crate) fn new(
        network: &NetworkRecord,
        parent: &Link,
        ipv4: IpNet,
        ipv6: Option<IpNet>,
    ) -> EndpointPlan {
        let route_for = |address: IpAddr| match network.mode {
            IpvlanMode::L3 | IpvlanMode::L3s => DefaultRoute::Device,
            IpvlanMode::L2 if network.internal => DefaultRoute::None,
            IpvlanMode::L2 => network
                .gateway_for(address)
                .map_or(DefaultRoute::None, DefaultRoute::Via),
        };
        EndpointPlan {
            parent_index: parent.index,
            parent_mac: parent.mac_text(),
            mode: network.mode,
            flag: network.flag,
            mtu: network.mtu,
            ipv4: match ipv4 {
                IpNet::V4(net) => Some(net),
                IpNet::V6(_) => None,
            },
            ipv6: match ipv6 {
                Some(IpNet::V6(net)) => Some(net),
                _ => None,
            },
            route4: route_for(ipv4.addr()),
            route6: ipv6.map_or(DefaultRoute::None, |a| route_for(a.addr())),
            routes: Vec::new(),
            extra_addresses: Vec::new(),
            arp_notify: false,
        }
    }
}

impl EndpointPlan {
    /// The create request of the link `name` inside `inside`.
    fn spec<'n>(&self, name: &str, inside: &'n OpenNetns) -> LinkSpec<'n> {
        let spec =
            LinkSpec::ipvlan(name, self.parent_index, self.mode, self.flag).in_netns(&inside.ns);
        match self.mtu {
            Some(mtu) => spec.mtu(mtu),
            None => spec,
        }
    }
}

/// What was built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuiltEndpoint {
    pub ifname: String,
    pub mac: String,
    /// Its ifindex inside the namespace.
    pub index: u32,
}

/// The name of a namespace's first endpoint.
pub(crate) const FIRST_IFNAME: &str = "eth0";

/// How many `ethN` names are asked for one by one before the namespace's
/// links are listed instead.
const NAMES_ASKED: u32 = 8;

/// The lowest `ethN` not taken in `inside`. The first few names are asked
/// for one at a time (a container rarely has more than one or two
/// endpoints, so this is usually one request, whatever else the namespace
/// holds); past those, one dump.
pub(crate) fn free_ifname(inside: &OpenNetns) -> Result<String, Error> {
    free_ifname_but(inside, &[])
}

/// [`free_ifname`] that also passes over the names in `kept` (another
/// endpoint's on record, whose link is to be made again under it).
pub(crate) fn free_ifname_but(inside: &OpenNetns, kept: &[&str]) -> Result<String, Error> {
    for n in 0..NAMES_ASKED {
        let name = format!("eth{n}");
        if !kept.contains(&name.as_str()) && inside.handle.link_by_name(&name)?.is_none() {
            return Ok(name);
        }
    }
    let links = inside.handle.links()?;
    let taken: Vec<&str> = links.iter().map(|l| l.name.as_str()).collect();
    Ok((NAMES_ASKED..)
        .map(|n| format!("eth{n}"))
        .find(|name| !taken.contains(&name.as_str()) && !kept.contains(&name.as_str()))
        .unwrap_or_default())
}

/// Prefix of the temporary names of links created before a rename.
const TEMPORARY_PREFIX: &str = "ipv";

/// Whether `name` is one of our temporary link names (`ipv` + 9 hex).
pub(crate) fn is_temporary_name(name: &str) -> bool {
    name.strip_prefix(TEMPORARY_PREFIX)
        .is_some_and(|rest| rest.len() == 9 && rest.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Whether a request may have been carried out although its answer was
/// lost (anything but the kernel's own refusal).
pub(crate) fn outcome_unknown(error: &crate::netlink::Error) -> bool {
    !matches!(error.kind(), crate::netlink::ErrorKind::Kernel { .. })
}

/// Errnos of a create with an ifindex that only say the index is taken:
/// on 6.1, EEXIST in the host (the socket's namespace) and EBUSY in the
/// target; later kernels look in the target only and answer EEXIST.
pub(crate) fn index_taken(error: &crate::netlink::Error) -> bool {
    matches!(error.errno(), Some(libc::EEXIST | libc::EBUSY))
}

/// Writes the attach's intent record anew, naming the ifindex the next
/// create asks for (`None`: a create under a temporary name, which names
/// no index), before that create is sent: restore undoes only the link at
/// the index the intent names, so the intent must name the index of any
/// link that may exist. A failure sends no create.
pub(crate) type Rerecord<'a> = dyn FnMut(Option<u32>) -> Result<(), Error> + 'a;

/// The ifindex a create of ours asks for (an endpoint's, a parent's),
/// chosen before the record that names it is written (see
/// [`random_index`]).
pub(crate) fn chosen_index() -> Result<u32, Error> {
    Ok(random_index()?)
}

/// [`chosen_index`] for `count` endpoints at once.
pub(crate) fn chosen_indexes(count: usize) -> Result<Vec<u32>, Error> {
    Ok(random_indexes(count)?)
}

/// Builds the endpoint `ifname` in `inside` from `host` (the namespace of
/// the parent), asking first for ifindex `index` (the one the intent
/// record names); on failure nothing is left behind.
///
/// The kernel looks a new link's name up in the namespace of the socket
/// (the host's) before creating it in the target, so "eth0" collides with a
/// host eth0. Asking for an ifindex instead makes it look up only that
/// index (on 6.1 in both namespaces, later only in the target): the final
/// name is created directly, without the rename that costs several times
/// the create. A random index far above what hosts reach is free in both
/// in the common case, so the first create succeeds; a taken one is tried
/// again with another, a few times, each named in the intent through
/// `rerecord` before it is asked for. Should every one be taken, the link
/// is created under a temporary name (which no other tool makes, and which
/// restore sweeps) and renamed inside once the intent names its index:
/// never by its final name, which another tool may hold by the time
/// restore reads the intent. Any other refusal is returned as it is.
pub(crate) fn create(
    host: &Handle,
    inside: &OpenNetns,
    plan: &EndpointPlan,
    ifname: &str,
    index: u32,
    rerecord: &mut Rerecord<'_>,
) -> Result<BuiltEndpoint, Error> {
    create_named(host, inside, plan, ifname, false, index, rerecord)?
        .ok_or_else(|| Error::failed(format!("{ifname} is taken in {}", inside.label())))
}

/// [`create`] of a name not asked for beforehand (`guessed`: our records
/// know no endpoint in the namespace, so `eth0` is free unless another
/// tool made it): the first create is sent straight away, and only when
/// the kernel refuses it as taken is the name looked up. `None` when it is
/// taken: nothing was made, the caller picks another name (and another
/// index: the one refused may be taken as well).
pub(crate) fn create_guessed(
    host: &Handle,
    inside: &OpenNetns,
    plan: &EndpointPlan,
    ifname: &str,
    index: u32,
    rerecord: &mut Rerecord<'_>,
) -> Result<Option<BuiltEndpoint>, Error> {
    create_named(host, inside, plan, ifname, true, index, rerecord)
}

/// [`create_guessed`] without the configuration: the link made under its
/// final name, down, without addresses, its index returned (`None`: the
/// name is taken, nothing made). [`configure_made`] finishes it; in
/// between its index is in the caller's intent, so `restore` deletes it
/// should the caller die (a delegated IPAM plugin runs then).
pub(crate) fn create_guessed_unconfigured(
    host: &Handle,
    inside: &OpenNetns,
    plan: &EndpointPlan,
    ifname: &str,
    index: u32,
    rerecord: &mut Rerecord<'_>,
) -> Result<Option<u32>, Error> {
    let Some((index, rename)) =
        create_unconfigured(host, inside, plan, ifname, true, index, rerecord)?
    else {
        return Ok(None);
    };
    if rename {
        if let Err(error) = inside.handle.link_rename(index, ifname) {
            let _ = delete_link(inside, index);
            return Err(error.into());
        }
    }
    Ok(Some(index))
}

/// Configures the link made by [`create_guessed_unconfigured`] at `index`
/// as [`create`] does. A failure leaves it to the caller to delete (what
/// it set up on the link, a delegated IPAM plugin's lease, goes first).
pub(crate) fn configure_made(
    inside: &OpenNetns,
    plan: &EndpointPlan,
    ifname: &str,
    index: u32,
) -> Result<BuiltEndpoint, Error> {
    configure(None, inside, index, false, ifname, plan)?;
    Ok(built(plan, ifname, index))
}

/// What [`configure`] made of the link at `index`.
fn built(plan: &EndpointPlan, ifname: &str, index: u32) -> BuiltEndpoint {
    BuiltEndpoint {
        ifname: ifname.to_string(),
        // An ipvlan link takes its parent's MAC, and keeps following it.
        mac: plan.parent_mac.clone(),
        index,
    }
}

/// The link made and, when it came under a temporary name, whether it
/// must be renamed; `None` when the guessed name is taken.
fn create_unconfigured(
    host: &Handle,
    inside: &OpenNetns,
    plan: &EndpointPlan,
    ifname: &str,
    guessed: bool,
    first: u32,
    rerecord: &mut Rerecord<'_>,
) -> Result<Option<(u32, bool)>, Error> {
    // Undone there, on failure, by the index it tried, never by the name.
    Ok(
        match create_with_index(host, inside, plan, ifname, guessed, first, rerecord)? {
            Indexed::Created(index) => Some((index, false)),
            Indexed::NameTaken => None,
            Indexed::AllTaken => Some((create_temporary(host, inside, plan, rerecord)?, true)),
        },
    )
}

fn create_named(
    host: &Handle,
    inside: &OpenNetns,
    plan: &EndpointPlan,
    ifname: &str,
    guessed: bool,
    first: u32,
    rerecord: &mut Rerecord<'_>,
) -> Result<Option<BuiltEndpoint>, Error> {
    match create_unconfigured(host, inside, plan, ifname, guessed, first, rerecord)? {
        Some((index, rename)) => configured(inside, plan, ifname, index, rename).map(Some),
        None => Ok(None),
    }
}

/// [`configure`] of the link at `index`; a failure deletes it.
fn configured(
    inside: &OpenNetns,
    plan: &EndpointPlan,
    ifname: &str,
    index: u32,
    rename: bool,
) -> Result<BuiltEndpoint, Error> {
    match configure(None, inside, index, rename, ifname, plan) {
        Ok(()) => Ok(built(plan, ifname, index)),
        Err(error) => {
            let _ = delete_link(inside, index);
            Err(error)
        }
    }
}

/// The fallback of [`create`] when every chosen index was taken: the link
/// under a temporary name, its index named in the intent before anything
/// else is done with it; returns that index. Until then restore finds it
/// by its temporary name alone (see [`delete_temporary_links`]).
fn create_temporary(
    host: &Handle,
    inside: &OpenNetns,
    plan: &EndpointPlan,
    rerecord: &mut Rerecord<'_>,
) -> Result<u32, Error> {
    // The intent still names the last index refused, which is another
    // link's.
    rerecord(None)?;
    let temporary = format!("{TEMPORARY_PREFIX}{}", &random_hex(5)?[..9]);
    if let Err(error) = host.link_add(&plan.spec(&temporary, inside)) {
        // A lost answer may hide a link that was made.
        if outcome_unknown(&error) {
            undo_temporary(inside, &temporary, plan);
        }
        // No index asked for and a name no link has: `EBUSY` is the
        // parent's, whose frames another driver takes (it became a
        // bridge or bond port, or got a macvlan, after the network was
        // made, or its macvlan is in a namespace without a name).
        if error.errno() == Some(libc::EBUSY) {
            return Err(Error::in_use(format!(
                "the network's parent (ifindex {}) refuses an ipvlan port: another driver takes its frames (a bridge, bond, macvlan...) ({error})",
                plan.parent_index
            )));
        }
        return Err(error.into());
    }
    let index = match inside.handle.link_by_name(&temporary) {
        Ok(Some(link)) => link.index,
        Ok(None) => {
            return Err(Error::failed(format!(
                "ipvlan link {temporary} vanished from namespace {} after creation",
                inside.label()
            )))
        }
        Err(error) => {
            undo_temporary(inside, &temporary, plan);
            return Err(error.into());
        }
    };
    // Named before it takes the final name, under which restore would not
    // know it from another tool's link.
    if let Err(error) = rerecord(Some(index)) {
        let _ = delete_link(inside, index);
        return Err(error);
    }
    Ok(index)
}

/// One endpoint of [`create_many`]: the link `ifname` in `inside`, asked
/// for with ifindex `index` (the one its intent record names).
pub(crate) struct NewEndpoint<'a> {
    pub inside: &'a OpenNetns,
    pub plan: &'a EndpointPlan,
    pub ifname: &'a str,
    /// `ifname` was guessed (see [`create_guessed`]).
    pub guessed: bool,
    /// The ifindex its intent record names, asked for first.
    pub index: u32,
}

/// Builds many endpoints, as [`create`] builds one, with their creates
/// sent together from `host` (as many to a datagram as the socket takes)
/// before each is configured in its namespace (visited from `home`, the
/// caller's own, open already). One result per endpoint, in
/// order; a failed one leaves nothing behind, the others stand (the
/// caller decides whether they stay). An endpoint whose chosen index was
/// taken goes the way of [`create`] (of [`create_guessed`] when its name
/// was guessed: `None` when that name is taken, nothing made), with its
/// fallbacks, its intent written anew through `rerecord` (called with the
/// endpoint's position). When the answers of the batch are lost, nothing
/// is known of any create: every endpoint that may have been made is
/// deleted again, by the index it asked for, and the error returned.
pub(crate) fn create_many(
    host: &Handle,
    home: &crate::netns::Netns,
    sysctls: &crate::netns::SysctlFiles,
    endpoints: &[NewEndpoint<'_>],
    rerecord: &mut dyn FnMut(usize, Option<u32>) -> Result<(), Error>,
) -> Result<Vec<Result<Option<BuiltEndpoint>, Error>>, Error> {
    let specs: Vec<LinkSpec<'_>> = endpoints
        .iter()
        .map(|e| e.plan.spec(e.ifname, e.inside).index(e.index))
        .collect();
    // `None`: every chosen index counts as taken (a crash test's forcing).
    let answers: Vec<Option<crate::netlink::Result<()>>> =
        if crate::fault::forced("endpoint: every index taken") {
            endpoints.iter().map(|_| None).collect()
        } else {
            let sent = host.link_add_many(&specs).and_then(|answers| {
                // A test's stand-in for answers the socket lost after the
                // kernel made the links (an overrun, a timeout).
                match crate::fault::forced("endpoint: batch answers lost") {
                    true => Err(std::io::Error::from_raw_os_error(libc::EIO).into()),
                    false => Ok(answers),
                }
            });
            match sent {
                Ok(answers) => answers.into_iter().map(Some).collect(),
                Err(error) => {
                    for e in endpoints {
                        undo_indexed(e.inside, e.index, e.plan);
                    }
                    return Err(error.into());
                }
            }
        };
    let mut built = Vec::with_capacity(endpoints.len());
    for (at, (e, answer)) in endpoints.iter().zip(answers).enumerate() {
        let index = e.index;
        let result = match answer {
            Some(Ok(())) => match configure(
                Some((home, sysctls)),
                e.inside,
                index,
                false,
                e.ifname,
                e.plan,
            ) {
                Ok(()) => Ok(Some(BuiltEndpoint {
                    ifname: e.ifname.to_string(),
                    mac: e.plan.parent_mac.clone(),
                    index,
                })),
                Err(error) => {
                    let _ = delete_link(e.inside, index);
                    Err(error)
                }
            },
            Some(Err(error)) if !index_taken(&error) => {
                if outcome_unknown(&error) {
                    undo_indexed(e.inside, index, e.plan);
                }
                Err(error.into())
            }
            // Taken (or forced so): the single path, with its fallbacks,
            // from another index (the one refused is another link's).
            _ => chosen_index().and_then(|index| {
                rerecord(at, Some(index))?;
                let rerecord = &mut |index| rerecord(at, index);
                if e.guessed {
                    create_guessed(host, e.inside, e.plan, e.ifname, index, rerecord)
                } else {
                    create(host, e.inside, e.plan, e.ifname, index, rerecord).map(Some)
                }
            }),
        };
        // Many namespaces' sockets at once: their buffers must not add up.
        e.inside.handle.socket().release_buffer();
        built.push(result);
    }
    Ok(built)
}

/// How many random indexes a create tries (an endpoint's before its
/// temporary name, a parent's before it gives up).
pub(super) const INDEX_ATTEMPTS: usize = 3;

/// A random ifindex: above what hosts reach (they count up from 1), below
/// the kernel's INT_MAX.
fn random_index() -> Result<u32, crate::netlink::Error> {
    Ok(random_indexes(1)?[0])
}

/// `count` random ifindexes (see [`random_index`]) from one read of the
/// kernel's pool per 64 of them.
fn random_indexes(count: usize) -> Result<Vec<u32>, crate::netlink::Error> {
    let mut indexes = Vec::with_capacity(count);
    let mut bytes = [0u8; 256];
    while indexes.len() < count {
        let want = (count - indexes.len()).min(64);
        super::random_bytes(&mut bytes[..want * 4]).map_err(|e| {
            crate::netlink::Error::from(e).op("choosing an ifindex: reading random bytes")
        })?;
        indexes.extend(
            bytes[..want * 4]
                .chunks_exact(4)
                .map(|b| (1 << 20) + u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) % (1 << 30)),
        );
    }
    Ok(indexes)
}

/// What [`create_with_index`] made of it.
enum Indexed {
    /// Created with this index.
    Created(u32),
    /// Every index tried was taken.
    AllTaken,
    /// The name was guessed and is taken: nothing was made.
    NameTaken,
}

/// Creates the link with an ifindex free in both namespaces, without
/// asking which are: a taken index costs one refused request. The first
/// is `first`, which the intent names already; each further one is named
/// in it through `rerecord` before it is asked for. A guessed name is
/// looked up at the first refusal, which a taken name answers alike
/// (`EEXIST`).
fn create_with_index(
    host: &Handle,
    inside: &OpenNetns,
    plan: &EndpointPlan,
    ifname: &str,
    guessed: bool,
    first: u32,
    rerecord: &mut Rerecord<'_>,
) -> Result<Indexed, Error> {
    let name_taken = || -> Result<bool, crate::netlink::Error> {
        // Test builds: the lookup's answer lost.
        if guessed && crate::fault::forced("endpoint: name lookup lost") {
            return Err(crate::netlink::Error::new(
                crate::netlink::ErrorKind::Timeout {
                    after: std::time::Duration::from_secs(30),
                },
            ));
        }
        Ok(guessed && inside.handle.link_by_name(ifname)?.is_some())
    };
    if crate::fault::forced("endpoint: every index taken") {
        if name_taken()? {
            return Ok(Indexed::NameTaken);
        }
        return Ok(Indexed::AllTaken);
    }
    for attempt in 0..INDEX_ATTEMPTS {
        let index = if attempt == 0 {
            first
        } else {
            let index = random_index()?;
            rerecord(Some(index))?;
            index
        };
        match host.link_add(&plan.spec(ifname, inside).index(index)) {
            Ok(()) => return Ok(Indexed::Created(index)),
            Err(error) if index_taken(&error) => {
                if attempt == 0 && name_taken()? {
                    return Ok(Indexed::NameTaken);
                }
            }
            Err(error) => {
                // A lost answer may hide a link that was made: if so, it
                // has this index (a guessed name may be another tool's).
                if outcome_unknown(&error) {
                    undo_indexed(inside, index, plan);
                }
                return Err(error.into());
            }
        }
    }
    Ok(Indexed::AllTaken)
}

/// Deletes the link at `index` inside if it is an ipvlan link on the
/// plan's parent: the undo of a create with that index whose outcome is
/// unknown (an index we chose at random: nobody else's link has it).
fn undo_indexed(inside: &OpenNetns, index: u32, plan: &EndpointPlan) {
    if let Ok(Some(link)) = inside.handle.link_by_index(index) {
        if link.kind.as_deref() == Some("ipvlan") && link.parent == Some(plan.parent_index) {
            let _ = delete_link(inside, link.index);
        }
    }
}

/// Deletes the ipvlan link on the plan's parent under our temporary
/// `name` inside, if it is there: the undo of a create under that name
/// whose outcome is unknown (a random name, which no other tool makes;
/// a final name is never undone by name).
fn undo_temporary(inside: &OpenNetns, name: &str, plan: &EndpointPlan) {
    if let Ok(Some(link)) = inside.handle.link_by_name(name) {
        if link.kind.as_deref() == Some("ipvlan") && link.parent == Some(plan.parent_index) {
            let _ = delete_link(inside, link.index);
        }
    }
}

/// Renames (when created under a temporary name), sets `disable_ipv6`,
/// then sets `arp_notify` (when the plan asks for it), adds the addresses,
/// sets the link up and adds the default routes, those together in one
/// round trip (on failure the caller deletes the
/// link, and whatever the later steps did with it). `home`: the caller's
/// own namespace, open already (a batch's), to visit `inside` from.
fn configure(
    home: Option<(&crate::netns::Netns, &crate::netns::SysctlFiles)>,
    inside: &OpenNetns,
    index: u32,
    rename: bool,
    ifname: &str,
    plan: &EndpointPlan,
) -> Result<(), Error> {
    let handle = &inside.handle;
    if rename {
        handle.link_rename(index, ifname)?;
    }
    // Off where the link gets no IPv6 address, unless it gets an IPv6
    // route (a CNI result's `::/0` beside IPv4 addresses only), which the
    // kernel refuses on a link without IPv6.
    let disable = plan.ipv6.is_none()
        && !plan
            .extra_addresses
            .iter()
            .any(|a| matches!(a, IpNet::V6(_)))
        && !plan.routes.iter().any(|r| matches!(r.dst, IpNet::V6(_)));
    // IPv6 has no netlink request for it (`arp_notify` goes with the
    // addresses, below).
    let keys = [("ipv6", "disable_ipv6", disable)];
    let setting = |error: &std::io::Error| {
        let what = format!("setting disable_ipv6 on {ifname} in {}", inside.label());
        match error.raw_os_error() {
            // Said where it comes from, as the bare errno names no file.
            Some(libc::EROFS) => Error::io(
                format_args!("{what}: /proc/sys is read-only here (systemd's ProtectKernelTunables=, a container's read-only /proc/sys), and ipvlan sets each link's disable_ipv6 there"),
                error,
            ),
            _ => Error::io(what, error),
        }
    };
    // From inside already when the thread stayed since the socket was
    // opened: the visit ends here.
    let set = match (inside.take_visit(), home) {
        // One of a batch's: from the caller's namespace, open already.
        (None, Some((home, files))) => {
            crate::netns::set_link_sysctls_from(home, &inside.ns, ifname, &keys, files)
        }
        (visit, _) => crate::netns::set_link_sysctls_in(&inside.ns, visit, ifname, &keys),
    }
    .map_err(|error| setting(&error))?;
    if let Some(Err(error)) = set.first() {
        let missing = error.kind() == std::io::ErrorKind::NotFound;
        // A kernel without IPv6 has nothing to disable; a link that needs
        // IPv6 there is told why it cannot have it (a network made before
        // the host was booted without IPv6, a delegated plugin's address).
        if missing && !disable && !super::kernel_support::has_ipv6() {
            return Err(Error::unsupported(format!(
                "{ifname} in {} needs IPv6: {}",
                inside.label(),
                super::kernel_support::NO_IPV6
            )));
        }
        if !disable || !missing {
            return Err(setting(error));
        }
    }
    let steps = configure_steps(plan, index, ifname);
    // `arp_notify` is best effort, as the reference plugin's sysctl: a
    // link that cannot announce itself still works.
    for (step, result) in steps.iter().zip(handle.pipeline_each(&steps)?) {
        match (step, result) {
            (Step::ArpNotify { .. }, _) => {}
            // Held by a link the network's records do not know: the
            // caller may take another address (`Manager::attach`).
            (Step::AddrAdd { net, .. }, Err(error)) if error.errno() == Some(libc::EADDRINUSE) => {
                return Err(Error::address_held_on_port(net.addr(), &error.into()));
            }
            (Step::RouteAdd(spec), Err(error)) if error.errno() == Some(libc::EEXIST) => {
                add_default_route_after_theirs(handle, spec, error.into())?
            }
            (_, result) => result?,
        }
    }
    Ok(())
}

/// The requests that configure the link at `index`, in the order the
/// kernel must carry them out: `arp_notify` before the up (the kernel
/// announces a link when it comes up only if its setting is on then; set
/// in the up's own request, it would be applied after the flags), the
/// addresses before the up too (the announcement is of the addresses the
/// link has then), the routes after it.
fn configure_steps(plan: &EndpointPlan, index: u32, ifname: &str) -> Vec<Step> {
    let mut steps = Vec::with_capacity(6);
    if plan.arp_notify {
        steps.push(Step::ArpNotify { index, on: true });
    }
    if let Some(v4) = plan.ipv4 {
        let (net, flags) = (IpNet::V4(v4), AddrFlags::empty());
        steps.push(Step::AddrAdd { index, net, flags });
    }
    if let Some(v6) = plan.ipv6 {
        let (net, flags) = (IpNet::V6(v6), AddrFlags::NODAD);
        steps.push(Step::AddrAdd { index, net, flags });
    }
    for &net in &plan.extra_addresses {
        let flags = match net {
            IpNet::V4(_) => AddrFlags::empty(),
            IpNet::V6(_) => AddrFlags::NODAD,
        };
        steps.push(Step::AddrAdd { index, net, flags });
    }
    steps.push(Step::LinkUp { index });
    for (route, family) in [(plan.route4, IpFamily::V4), (plan.route6, IpFamily::V6)] {
        let spec = match route {
            DefaultRoute::None => continue,
            DefaultRoute::Via(gateway) => RouteSpec::default_via(gateway).dev(index),
            DefaultRoute::Device => RouteSpec::default_dev(family, index),
        };
        if family == IpFamily::V6 && plan.ipv6.is_none() {
            continue;
        }
        let spec = match default_route_metric(family, ifname) {
            Some(metric) => spec.metric(metric),
            None => spec,
        };
        steps.push(Step::RouteAdd(spec));
    }
    // A CNI config's routes, added as the reference plugin adds them: one
    // that repeats a route there already (the kernel's own to the subnet,
    // another network's default) is added beside it, not refused.
    for route in &plan.routes {
        let mut spec = RouteSpec::to(route.dst).dev(index);
        if let Some(gateway) = route.gw {
            spec = spec.via(gateway);
        }
        if let Some(table) = route.table {
            spec = spec.table(table);
        }
        if let Some(priority) = route.priority {
            spec = spec.metric(priority);
        }
        if let Some(scope) = route.scope {
            spec = spec.scope(scope);
        }
        steps.push(Step::RouteAppend(spec));
    }
    steps
}

/// The metric of the default route an endpoint named `ifname` adds: the
/// kernel's own (none given: 0 for IPv4, 1024 for IPv6) on `eth0`, one
/// more per `ethN` after it. A container joins a second network as
/// `eth1`: its default route then sits beside the first one's, which stays
/// the one taken (one default gateway, as in Docker), instead of being
/// refused as a duplicate (the kernel's EEXIST, which failed the connect);
/// and when the first network goes, the second's already routes.
fn default_route_metric(family: IpFamily, ifname: &str) -> Option<u32> {
    let n: u32 = ifname.strip_prefix("eth")?.parse().ok()?;
    if n == 0 {
        return None;
    }
    Some(match family {
        IpFamily::V4 => n,
        IpFamily::V6 => IPV6_DEFAULT_METRIC.saturating_add(n),
    })
}

/// The metric the kernel gives an IPv6 route added without one
/// (`IP6_RT_PRIO_USER`).
const IPV6_DEFAULT_METRIC: u32 = 1024;

/// How many metrics after its own [`add_default_route_after_theirs`]
/// tries.
const DEFAULT_ROUTE_METRICS_TRIED: u32 = 16;

/// Adds the default route `spec`, which the kernel `refused` as a
/// duplicate, at the next free metric. The namespace has a default route
/// of that metric already: a namespace another tool made and routes
/// (`ip netns add`, a veth and its `default via`), attached by path. Ours
/// goes beside it and theirs stays the route taken, as a second
/// network's does beside the first's ([`default_route_metric`]); before,
/// the attach failed ("File exists"). A free metric, not a look at their
/// routes first: an attach to a namespace without one pays nothing.
fn add_default_route_after_theirs(
    handle: &Handle,
    spec: &RouteSpec,
    refused: Error,
) -> Result<(), Error> {
    let base = spec.metric.unwrap_or(match spec.dst {
        IpNet::V4(_) => 0,
        IpNet::V6(_) => IPV6_DEFAULT_METRIC,
    });
    for next in 1..=DEFAULT_ROUTE_METRICS_TRIED {
        match handle.route_add(&spec.clone().metric(base.saturating_add(next))) {
            Err(error) if error.errno() == Some(libc::EEXIST) => {}
            added => return Ok(added?),
        }
    }
    Err(refused)
}

/// Where the master of a network's endpoint links is, which says what
/// proves a link found at a recorded index ours.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Master<'a> {
    /// The network's parent, in the host (`None`: missing now); see
    /// [`not_ours`].
    Host(Option<&'a Link>),
    /// In each link's own namespace (a CNI network's `linkInContainer`),
    /// which the host cannot name: an ipvlan link is taken as ours, as
    /// CNI's DEL and `restore`'s keeping take it.
    InContainer,
}

impl<'a> Master<'a> {
    /// The master of `network`'s links, its parent in the host being
    /// `parent` (as looked up; unused for a network without one).
    pub(crate) fn of(network: &NetworkRecord, parent: Option<&'a Link>) -> Master<'a> {
        if super::options::is_masterless(network) {
            Master::InContainer
        } else {
            Master::Host(parent)
        }
    }

    /// Why `link` is not an endpoint link of ours under this master, or
    /// `None` when it is (`mac`: the one recorded at attach).
    pub(crate) fn not_ours(&self, link: &Link, mac: Option<&str>) -> Option<String> {
        match self {
            Master::Host(parent) => not_ours(link, *parent, mac),
            Master::InContainer if link.kind.as_deref() == Some("ipvlan") => None,
            Master::InContainer => Some(format!(
                "link {} (index {}) is not an ipvlan link",
                link.name, link.index
            )),
        }
    }
}

/// Why a link is not an endpoint link of ours, or `None` when it is: an
/// ipvlan link whose lower link is `parent` in the host namespace (index
/// counted in another namespace: `IFLA_LINK_NETNSID` set) and whose MAC is
/// the parent's (or the one recorded at attach).
///
/// A parent renamed since the attach (udev, `ip link set eth1 name lan0`),
/// or whose name another link took, still carries the links made on it:
/// one that sits on a link in another namespace and has the MAC recorded
/// at attach (`mac`, the parent's then) is ours all the same, when no
/// link of the parent's name has that MAC. Judged by the parent's name
/// alone it looked another tool's, and a detach left it holding the
/// addresses it gave back. While a link of the parent's name has the
/// recorded MAC, it is the device the link was made on, and a link on
/// another (a sibling VLAN, a bond's port: they share the MAC) is not
/// ours.
pub(crate) fn not_ours(link: &Link, parent: Option<&Link>, mac: Option<&str>) -> Option<String> {
    if link.kind.as_deref() != Some("ipvlan") {
        return Some(format!(
            "link {} (index {}) is not an ipvlan link",
            link.name, link.index
        ));
    }
    let text = link.mac_text();
    let is_recorded = |mac_text: &str| mac.is_some_and(|m| m.eq_ignore_ascii_case(mac_text));
    let on_another_namespace = link.parent.is_some() && link.link_netnsid.is_some();
    let on_parent = parent.filter(|p| link.parent == Some(p.index) && on_another_namespace);
    // The parent's name no longer names the device the link was made on.
    let parent_moved = parent.map_or(true, |p| !is_recorded(&p.mac_text()));
    match (parent, on_parent) {
        (_, Some(parent)) if text == parent.mac_text() || is_recorded(&text) => None,
        (_, Some(_)) => Some(format!(
            "link {} (index {}) has MAC {text}, not the parent's",
            link.name, link.index
        )),
        (_, None) if parent_moved && on_another_namespace && is_recorded(&text) => None,
        (None, None) => Some(format!(
            "link {} (index {}): the network's parent is missing, so it cannot sit on it",
            link.name, link.index
        )),
        (Some(parent), None) => Some(format!(
            "link {} (index {}) does not sit on parent {} of the host",
            link.name, link.index, parent.name
        )),
    }
}

/// The endpoint link recorded as `ifindex` (or, in records made before the
/// index was known, named `ifname`) in `inside`, if any; whether it is
/// ours is for [`not_ours`] to say.
pub(crate) fn recorded_link(
    inside: &OpenNetns,
    ifindex: Option<u32>,
    ifname: &str,
) -> Result<Option<Link>, Error> {
    let link = match ifindex {
        Some(index) => inside.handle.link_by_index(index),
        None if ifname.is_empty() => return Ok(None),
        None => inside.handle.link_by_name(ifname),
    };
    Ok(link?)
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

/// Deletes an endpoint's link in `inside` after checking it is ours (see
/// [`not_ours`]), by index: a link that only has the recorded name is
/// never deleted.
pub(crate) fn delete_checked(
    inside: &OpenNetns,
    ifindex: Option<u32>,
    ifname: &str,
    master: Master<'_>,
    mac: Option<&str>,
) -> Result<LinkRemoval, Error> {
    let Some(link) = recorded_link(inside, ifindex, ifname)? else {
        return Ok(LinkRemoval::Missing);
    };
    if let Some(why) = master.not_ours(&link, mac) {
        return Ok(LinkRemoval::NotOurs(format!(
            "{why} in namespace {}; left in place",
            inside.label()
        )));
    }
    match delete_link(inside, link.index) {
        Ok(()) => Ok(LinkRemoval::Deleted),
        Err(error) if error.is_not_found() => Ok(LinkRemoval::Missing),
        Err(error) => Err(error.into()),
    }
}

/// Whether the link of a failed build stands at `index` in `inside`: an
/// ipvlan link on `parent` named `ifname` or one of our temporary names
/// (the index a create asked for may be another's link that refused it,
/// which no name of ours has). `parent` is in the host, or, with
/// `parent_inside` (CNI's `linkInContainer`), in `inside` itself.
pub(crate) fn left_standing(
    inside: &OpenNetns,
    index: u32,
    ifname: &str,
    parent: &Link,
    parent_inside: bool,
) -> bool {
    match inside.handle.link_by_index(index) {
        Ok(Some(link)) => {
            (link.name == ifname || is_temporary_name(&link.name))
                && link.kind.as_deref() == Some("ipvlan")
                && link.parent == Some(parent.index)
                // An index names a link of the namespace it is read in:
                // a parent in the host comes with the host's netnsid.
                && link.link_netnsid.is_some() != parent_inside
        }
        _ => false,
    }
}

/// Deletes the link at `index` in `inside`: every undo of an endpoint's
/// link goes through here, so that a test can have the kernel refuse it
/// (forced path `endpoint: delete refused`, fault-injection builds).
pub(crate) fn delete_link(inside: &OpenNetns, index: u32) -> Result<(), crate::netlink::Error> {
    if crate::fault::forced("endpoint: delete refused") {
        return Err(std::io::Error::from_raw_os_error(libc::EBUSY).into());
    }
    inside.handle.link_del(index)
}

/// Deletes the link at `index` in `inside`, known ours; whether it stays
/// there (the kernel refused, and not because it was gone already).
pub(crate) fn stays_after_delete(inside: &OpenNetns, index: u32) -> bool {
    delete_link(inside, index).is_err_and(|error| !error.is_not_found())
}

/// Deletes ipvlan links of ours (on `master`) left under a temporary
/// name in `inside` (an attach interrupted between create and rename);
/// returns how many.
pub(crate) fn delete_temporary_links(
    inside: &OpenNetns,
    master: Master<'_>,
) -> Result<usize, Error> {
    let mut deleted = 0;
    for link in inside.handle.links()? {
        if !is_temporary_name(&link.name) || master.not_ours(&link, None).is_some() {
            continue;
        }
        match inside.handle.link_del(link.index) {
            Ok(()) => deleted += 1,
            Err(error) if error.is_not_found() => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtnl::LinkData;

    /// A CNI endpoint's plan: both families, one more address, a default
    /// route and one of the config's, `arp_notify` as asked.
    fn cni_plan(arp_notify: bool) -> EndpointPlan {
        EndpointPlan {
            parent_index: 2,
            parent_mac: "02:00:00:00:00:01".into(),
            mode: IpvlanMode::L2,
            flag: IpvlanFlag::Bridge,
            mtu: None,
            ipv4: Some("10.9.0.2/24".parse().unwrap()),
            ipv6: Some("fd00::2/64".parse().unwrap()),
            route4: DefaultRoute::Via("10.9.0.1".parse().unwrap()),
            route6: DefaultRoute::None,
            routes: vec![ResultRoute {
                dst: "10.10.0.0/16".parse().unwrap(),
                gw: None,
                table: None,
                priority: None,
                scope: None,
            }],
            extra_addresses: vec!["10.9.0.3/24".parse().unwrap()],
            arp_notify,
        }
    }

    /// The kernel announces a link when it comes up only if `arp_notify`
    /// is on by then, and announces the addresses it has then: the setting
    /// and every address go before the up, the routes after it.
    #[test]
    fn arp_notify_and_the_addresses_go_before_the_up() {
        let steps = configure_steps(&cni_plan(true), 7, "eth0");
        let up = steps
            .iter()
            .position(|step| *step == Step::LinkUp { index: 7 })
            .unwrap();
        assert_eq!(steps[0], Step::ArpNotify { index: 7, on: true });
        assert!(steps[1..up]
            .iter()
            .all(|step| matches!(step, Step::AddrAdd { index: 7, .. })));
        assert_eq!(up, 4, "{steps:?}");
        assert!(steps[up + 1..]
            .iter()
            .all(|step| matches!(step, Step::RouteAdd(_) | Step::RouteAppend(_))));
        assert_eq!(steps.len(), 7, "{steps:?}");

        // The CLI's endpoints keep the kernel's default.
        let steps = configure_steps(&cni_plan(false), 7, "eth0");
        assert!(!steps
            .iter()
            .any(|step| matches!(step, Step::ArpNotify { .. })));
        assert_eq!(steps.len(), 6, "{steps:?}");
    }

    fn link(index: u32, name: &str, kind: &str, mac: [u8; 6]) -> Link {
        Link {
            index,
            name: name.into(),
            raw_name: None,
            flags: 0,
            link_type: 1,
            mtu: Some(1500),
            mac: Some(mac.to_vec()),
            parent: None,
            link_netnsid: None,
            master: None,
            group: None,
            operstate: None,
            kind: Some(kind.into()),
            data: LinkData::None,
        }
    }

    #[test]
    fn a_link_is_ours_on_its_parent_or_by_the_mac_recorded_at_attach() {
        const PARENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 7];
        let parent = link(7, "eth1", "dummy", PARENT_MAC);
        let mut endpoint = link(900, "eth0", "ipvlan", PARENT_MAC);
        endpoint.parent = Some(7);
        endpoint.link_netnsid = Some(0);
        let recorded = Some("02:00:00:00:00:07");
        assert_eq!(not_ours(&endpoint, Some(&parent), None), None);
        assert_eq!(not_ours(&endpoint, Some(&parent), recorded), None);
        // A sibling of the parent's MAC (another VLAN of its device, a
        // bond's port) under the parent's name: the link on the other is
        // not ours.
        let mut sibling = endpoint.clone();
        sibling.parent = Some(8);
        assert_eq!(
            not_ours(&sibling, Some(&parent), recorded).as_deref(),
            Some("link eth0 (index 900) does not sit on parent eth1 of the host")
        );
        // The parent renamed (none has its name), or its name another
        // link's: the recorded MAC proves the link ours; without it,
        // nothing does.
        let newcomer = link(12, "eth1", "dummy", [2, 0, 0, 0, 0, 12]);
        for named in [None, Some(&newcomer)] {
            assert_eq!(not_ours(&endpoint, named, recorded), None, "{named:?}");
            assert!(not_ours(&endpoint, named, None).is_some(), "{named:?}");
            assert!(
                not_ours(&endpoint, named, Some("02:00:00:00:00:12")).is_some(),
                "{named:?}"
            );
        }
        // Never one whose lower link is in its own namespace, nor one of
        // another kind, whatever its MAC.
        let mut local = endpoint.clone();
        local.link_netnsid = None;
        assert!(not_ours(&local, None, recorded).is_some());
        let mut macvlan = endpoint.clone();
        macvlan.kind = Some("macvlan".into());
        assert!(not_ours(&macvlan, Some(&parent), recorded).is_some());
        // On its parent with another MAC than the parent's or the
        // recorded one.
        let mut other_mac = endpoint;
        other_mac.mac = Some(vec![2, 0, 0, 0, 0, 9]);
        assert_eq!(
            not_ours(&other_mac, Some(&parent), recorded).as_deref(),
            Some("link eth0 (index 900) has MAC 02:00:00:00:00:09, not the parent's")
        );
    }
}
