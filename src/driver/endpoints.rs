//! `network connect|disconnect`: an endpoint's addresses, its intent
//! record, its link (see `endpoint_link`) and its names (see `hosts`), in
//! that order, undone in reverse on failure.

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;

use super::endpoint_link::{self, EndpointPlan, LinkRemoval};
use super::hosts::Names;
use super::netns_identity::{self, NsAt, OpenNetns};
use super::networks::find_network;
use super::options::check_container_name;
use super::{AttachRequest, EndpointInfo, Error, Manager, Target};
use crate::ipam::{IpFamily, Request};
use crate::rtnl::Handle;
use crate::store::{EndpointRecord, EndpointState, Locked, NetworkRecord, Timestamp};

/// A resolved attach target.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedTarget {
    /// Endpoint id (unique per network).
    pub(crate) id: String,
    /// Container name when it is a named namespace.
    pub(crate) container: Option<String>,
    /// The namespace file.
    pub(crate) path: std::path::PathBuf,
}

impl Manager {
    /// Attaches a namespace to a network: ipvlan link `ethN` created in the
    /// namespace, addresses, routes, name resolution.
    ///
    /// ```no_run
    /// # use ipvlan::driver::{AttachRequest, Config, Manager, Target};
    /// # let manager = Manager::open(Config::from_env())?;
    /// let request = AttachRequest { ipv4: Some("192.168.1.10".parse().unwrap()), ipv6: None };
    /// let endpoint = manager.connect("db_net", &Target::from_arg("/proc/1234/ns/net"), &request)?;
    /// assert_eq!(endpoint.ifname, "eth0");
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn connect(
        &self,
        network: &str,
        target: &Target,
        req: &AttachRequest,
    ) -> Result<EndpointInfo, Error> {
        let state = self.store.lock()?;
        let networks = state.networks()?;
        let network = find_network(&networks, network)?;
        let target = self.resolve_target(target)?;
        self.attach(&state, &networks, network, &target, req)
    }

    /// Detaches a namespace: deletes the link, releases its addresses,
    /// updates name resolution. Returns what was left alone, and why (a
    /// link at the recorded place that is not ours).
    ///
    /// ```no_run
    /// # use ipvlan::driver::{Config, Manager, Target};
    /// # let manager = Manager::open(Config::from_env())?;
    /// for note in manager.disconnect("db_net", &Target::Container("web".into()))? {
    ///     println!("warning: {note}");
    /// }
    /// # Ok::<(), ipvlan::driver::Error>(())
    /// ```
    pub fn disconnect(&self, network: &str, target: &Target) -> Result<Vec<String>, Error> {
        let state = self.store.lock()?;
        let networks = state.networks()?;
        let network = find_network(&networks, network)?;
        let id = match target {
            Target::Container(name) => {
                check_container_name(name)?;
                name.clone()
            }
            Target::Path(path) if path.parent() == Some(self.config.netns_dir.as_path()) => path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            Target::Path(path) => path_endpoint_id(path),
        };
        // One record read by id: detach cost must not grow with the
        // number of endpoints.
        let endpoint = state.endpoint(&network.id, &id)?.ok_or_else(|| {
            Error::not_found(format!(
                "container {} is not connected to network {}",
                target.label(),
                network.name
            ))
        })?;
        let host = Handle::new()?;
        let at = locate(&endpoint)?;
        self.detach(&host, &state, &networks, network, endpoint, &at)
    }

    fn resolve_target(&self, target: &Target) -> Result<ResolvedTarget, Error> {
        match target {
            Target::Container(name) => {
                check_container_name(name)?;
                let path = self.config.netns_dir.join(name);
                if !path.exists() {
                    return Err(Error::not_found(format!("container {name} not found")));
                }
                Ok(ResolvedTarget {
                    id: name.clone(),
                    container: Some(name.clone()),
                    path,
                })
            }
            Target::Path(path) => {
                if !path.exists() {
                    return Err(Error::not_found(format!(
                        "network namespace {} not found",
                        path.display()
                    )));
                }
                // A named namespace given by path is that container.
                if path.parent() == Some(self.config.netns_dir.as_path()) {
                    if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                        return self.resolve_target(&Target::Container(name.to_string()));
                    }
                }
                Ok(ResolvedTarget {
                    id: path_endpoint_id(path),
                    container: None,
                    path: path.clone(),
                })
            }
        }
    }

    /// Attaches `target` to `network` under the held lock.
    pub(crate) fn attach(
        &self,
        state: &Locked<'_>,
        networks: &[NetworkRecord],
        network: &NetworkRecord,
        target: &ResolvedTarget,
        req: &AttachRequest,
    ) -> Result<EndpointInfo, Error> {
        let label = target
            .container
            .clone()
            .unwrap_or_else(|| target.path.display().to_string());
        // One record lookup, not a scan: attach cost must not grow with
        // the number of endpoints.
        if state.endpoint(&network.id, &target.id)?.is_some() {
            return Err(Error::already_exists(format!(
                "container {label} is already connected to network {}",
                network.name
            )));
        }
        if req.ipv6.is_some() && !network.ipv6 {
            return Err(Error::invalid(format!(
                "network {} has no IPv6 subnet: --ip6 cannot be used (create it with --ipv6)",
                network.name
            )));
        }
        if let Some(container) = &target.container {
            super::hosts::check_view_is_ours(&self.config.etc_netns_dir, container, state.root())?;
        }
        let host = Handle::new()?;
        let inside = OpenNetns::open(&target.path)?;
        let netns_id = inside.identity()?;
        let parent = host.link_by_name(&network.parent)?.ok_or_else(|| {
            Error::not_found(format!(
                "parent interface {} of network {} does not exist; run `ipvlan restore` to re-create parents we own",
                network.parent, network.name
            ))
        })?;

        // Named before the kernel sees it, so restore knows what to delete
        // if this attach is interrupted; and before any address is taken,
        // so a failure here has nothing to give back.
        let free = endpoint_link::free_ifname(&inside)?;

        // Addresses first (cheap to give back), then the intent record,
        // then the kernel.
        let (ipv4, ipv6) = allocate(state, network, req, &target.id)?;
        let release_all = || {
            let _ = state.release(network, ipv4.addr());
            if let Some(v6) = ipv6 {
                let _ = state.release(network, v6.addr());
            }
        };
        let mut record = EndpointRecord {
            id: target.id.clone(),
            network_id: network.id.clone(),
            container: target.container.clone(),
            netns: target.path.display().to_string(),
            ifname: free.ifname,
            mac: None,
            ipv4: Some(ipv4),
            ipv6,
            state: EndpointState::Attaching,
            created: Timestamp::now(),
            netns_id: Some(netns_id),
            ifindex: None,
        };
        if let Err(error) = state.put_endpoint(&record) {
            release_all();
            return Err(error.into());
        }
        let plan = EndpointPlan::new(network, parent.index, ipv4, ipv6);
        let built = match endpoint_link::create(
            &host,
            &inside,
            &plan,
            &record.ifname,
            Some(free.next_index),
        ) {
            Ok(built) => built,
            Err(error) => {
                let _ = state.remove_endpoint(&record.network_id, &record.id);
                release_all();
                return Err(error.context(format!("attaching {label} to network {}", network.name)));
            }
        };
        record.ifname = built.ifname;
        record.mac = Some(built.mac);
        record.ifindex = Some(built.index);
        record.state = EndpointState::Attached;
        let names = Names {
            state,
            networks,
            etc_netns_dir: &self.config.etc_netns_dir,
        };
        let finished = state
            .put_endpoint(&record)
            .map_err(Error::from)
            .and_then(|_| names.add(network, &record));
        if let Err(error) = finished {
            let _ = endpoint_link::delete_checked(
                &inside,
                record.ifindex,
                &record.ifname,
                Some(&parent),
                record.mac.as_deref(),
            );
            let _ = names.remove(network, &record);
            let _ = state.remove_endpoint(&record.network_id, &record.id);
            release_all();
            return Err(error);
        }
        Ok(EndpointInfo::from_record(network, &record))
    }

    /// Detaches one endpoint under the held lock: link deleted first, then
    /// names, addresses and the record; returns what was left alone. The
    /// link is touched only in the very namespace that was attached (`at`,
    /// see [`locate`]) and only when it is ours; addresses are freed only
    /// while this endpoint still holds them.
    pub(crate) fn detach(
        &self,
        host: &Handle,
        state: &Locked<'_>,
        networks: &[NetworkRecord],
        network: &NetworkRecord,
        mut endpoint: EndpointRecord,
        at: &NsAt,
    ) -> Result<Vec<String>, Error> {
        endpoint.state = EndpointState::Detaching;
        state.put_endpoint(&endpoint)?;
        let mut notes = Vec::new();
        if let Some(inside) = at.open() {
            let parent = host.link_by_name(&network.parent)?;
            let removal = endpoint_link::delete_checked(
                inside,
                endpoint.ifindex,
                &endpoint.ifname,
                parent.as_ref(),
                endpoint.mac.as_deref(),
            )?;
            if let LinkRemoval::NotOurs(why) = removal {
                notes.push(why);
            }
        }
        let names = Names {
            state,
            networks,
            etc_netns_dir: &self.config.etc_netns_dir,
        };
        names.remove(network, &endpoint)?;
        for address in endpoint.ipv4.iter().chain(endpoint.ipv6.iter()) {
            state.release_if_owner(network, address.addr(), &endpoint.id)?;
        }
        state.remove_endpoint(&endpoint.network_id, &endpoint.id)?;
        Ok(notes)
    }
}

/// The namespace an endpoint's link is in, when it is the one attached;
/// [`NsAt::Gone`] when the record names no link (killed before one was
/// named), so nothing is opened for it.
pub(crate) fn locate(endpoint: &EndpointRecord) -> Result<NsAt, Error> {
    if endpoint.ifindex.is_none() && endpoint.ifname.is_empty() {
        return Ok(NsAt::Gone);
    }
    netns_identity::open_recorded(&endpoint.netns, endpoint.netns_id)
}

/// Takes the endpoint's addresses: the ones asked for first (they move no
/// cursor, so a refused one leaves the address state exactly as it was),
/// then automatic ones. On failure nothing stays taken.
fn allocate(
    state: &Locked<'_>,
    network: &NetworkRecord,
    req: &AttachRequest,
    owner: &str,
) -> Result<(IpNet, Option<IpNet>), Error> {
    let mut requests = vec![req.ipv4.map_or(Request::Any(IpFamily::V4), |a| {
        Request::Exact(IpAddr::V4(a))
    })];
    if network.ipv6 {
        requests.push(req.ipv6.map_or(Request::Any(IpFamily::V6), |a| {
            Request::Exact(IpAddr::V6(a))
        }));
    }
    requests.sort_by_key(|request| !matches!(request, Request::Exact(_)));
    let mut taken: Vec<IpNet> = Vec::new();
    let give_back = |taken: &[IpNet]| {
        for address in taken {
            let _ = state.release(network, address.addr());
        }
    };
    for request in requests {
        match state.allocate(network, request, owner) {
            Ok(address) => taken.push(address),
            Err(error) => {
                give_back(&taken);
                return Err(error.into());
            }
        }
    }
    let ipv4 = taken.iter().copied().find(|a| matches!(a, IpNet::V4(_)));
    let ipv6 = taken.iter().copied().find(|a| matches!(a, IpNet::V6(_)));
    match ipv4 {
        Some(ipv4) => Ok((ipv4, ipv6)),
        None => {
            give_back(&taken);
            Err(Error::failed("no IPv4 address allocated"))
        }
    }
}

/// An endpoint id for a namespace given by path: its characters kept where
/// a file name allows them.
pub(crate) fn path_endpoint_id(path: &Path) -> String {
    let text = path.display().to_string();
    let cleaned: String = text
        .trim_start_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("path_{cleaned}")
}
