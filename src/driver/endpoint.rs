//! `network connect|disconnect`: endpoints, their addresses, routes and
//! names.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use super::hosts;
use super::net::{self, DefaultRoute, EndpointPlan};
use super::network::{endpoint_info, find_network};
use super::state::{EndpointRecord, EndpointState, Locked, NetworkRecord, Request};
use super::{AttachRequest, EndpointInfo, Error, Manager, Mode, Target};
use crate::netns::Netns;

/// A resolved attach target.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedTarget {
    /// Endpoint id (unique per network).
    pub id: String,
    /// Container name when it is a named namespace.
    pub container: Option<String>,
    /// The namespace file.
    pub path: PathBuf,
}

impl Manager {
    pub(crate) fn resolve_target(&self, target: &Target) -> Result<ResolvedTarget, Error> {
        match target {
            Target::Container(name) => {
                super::options::check_container_name(name)?;
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

    pub(crate) fn do_connect(
        &self,
        network: &str,
        target: &Target,
        req: &AttachRequest,
    ) -> Result<EndpointInfo, Error> {
        let state = self.state.lock()?;
        let networks = state.networks()?;
        let network = find_network(&networks, network)?.clone();
        let target = self.resolve_target(target)?;
        self.attach(&state, &networks, &network, &target, req)
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
        let ns = Netns::open_path(&target.path)
            .map_err(|e| Error::io(format!("opening namespace {}", target.path.display()), &e))?;
        let links = net::NsLinks::open(&ns)?;
        let netns_id = links.netns_identity(&ns)?;
        let parent = links.host_link(&network.parent)?.ok_or_else(|| {
            Error::not_found(format!(
                "parent interface {} of network {} does not exist; run `ipvlan restore` to re-create parents we own",
                network.parent, network.name
            ))
        })?;

        // Named before the kernel sees it, so restore knows what to delete
        // if this attach is interrupted; and before any address is taken,
        // so a failure here has nothing to give back.
        let ifname = links.free_ifname()?;

        // Addresses first (cheap to give back), then the intent record,
        // then the kernel. Explicit requests go first: they move no cursor,
        // so a refused one leaves the address state exactly as it was.
        let owner = target.id.clone();
        let mut requests = vec![(
            false,
            req.ipv4
                .map_or(Request::AnyV4, |a| Request::Exact(IpAddr::V4(a))),
        )];
        if network.ipv6 {
            requests.push((
                true,
                req.ipv6
                    .map_or(Request::AnyV6, |a| Request::Exact(IpAddr::V6(a))),
            ));
        }
        requests.sort_by_key(|(_, request)| !matches!(request, Request::Exact(_)));
        let mut taken: Vec<(bool, IpNet)> = Vec::new();
        for (is_v6, request) in requests {
            match state.allocate(network, request, &owner) {
                Ok(address) => taken.push((is_v6, address)),
                Err(error) => {
                    for (_, address) in &taken {
                        let _ = state.release(network, address.addr());
                    }
                    return Err(error);
                }
            }
        }
        let pick = |want_v6: bool| taken.iter().find(|(v6, _)| *v6 == want_v6).map(|(_, a)| *a);
        let Some(ipv4) = pick(false) else {
            for (_, address) in &taken {
                let _ = state.release(network, address.addr());
            }
            return Err(Error::failed("no IPv4 address allocated"));
        };
        let ipv6 = pick(true);
        let release_all = |state: &Locked<'_>| {
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
            ifname,
            mac: None,
            ipv4: Some(ipv4),
            ipv6,
            state: EndpointState::Attaching,
            created: crate::store::Timestamp::now(),
            netns_id: Some(netns_id),
            ifindex: None,
        };
        if let Err(error) = state.put_endpoint(&record) {
            release_all(state);
            return Err(error);
        }
        let plan = endpoint_plan(
            network,
            parent.index,
            Some(record.ifname.clone()),
            ipv4,
            ipv6,
        );
        let built = match links.create_endpoint(&ns, &plan) {
            Ok(built) => built,
            Err(error) => {
                let _ = state.delete_endpoint(&record);
                release_all(state);
                return Err(error.context(format!("attaching {label} to network {}", network.name)));
            }
        };
        record.ifname = built.ifname;
        record.mac = Some(built.mac);
        record.ifindex = Some(built.index);
        record.state = EndpointState::Attached;
        let finished = state
            .put_endpoint(&record)
            .and_then(|_| self.add_names(state, networks, network, &record));
        if let Err(error) = finished {
            let _ = net::delete_endpoint_link(
                &ns,
                record.ifindex,
                &record.ifname,
                Some(&parent),
                record.mac.as_deref(),
            );
            let _ = self.remove_names(state, networks, network, &record);
            let _ = state.delete_endpoint(&record);
            release_all(state);
            return Err(error);
        }
        Ok(endpoint_info(network, &record))
    }

    pub(crate) fn do_disconnect(&self, network: &str, target: &Target) -> Result<(), Error> {
        let state = self.state.lock()?;
        let networks = state.networks()?;
        let network = find_network(&networks, network)?.clone();
        let id = match target {
            Target::Container(name) => {
                super::options::check_container_name(name)?;
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
            let label = match target {
                Target::Container(name) => name.clone(),
                Target::Path(path) => path.display().to_string(),
            };
            Error::not_found(format!(
                "container {label} is not connected to network {}",
                network.name
            ))
        })?;
        self.detach(&state, &networks, &network, endpoint)
    }

    /// Detaches one endpoint under the held lock: link deleted first, then
    /// names, addresses and the record. What was left alone (a link that
    /// is not ours) is reported on stderr.
    pub(crate) fn detach(
        &self,
        state: &Locked<'_>,
        networks: &[NetworkRecord],
        network: &NetworkRecord,
        endpoint: EndpointRecord,
    ) -> Result<(), Error> {
        for note in self.detach_noting(state, networks, network, endpoint)? {
            eprintln!("ipvlan: warning: {note}");
        }
        Ok(())
    }

    /// [`Manager::detach`], returning what was left alone instead of
    /// printing it. The link is touched only in the very namespace that
    /// was attached (a namespace now at the recorded path is another one)
    /// and only when it is ours; addresses are freed only when this
    /// endpoint still holds them.
    pub(crate) fn detach_noting(
        &self,
        state: &Locked<'_>,
        networks: &[NetworkRecord],
        network: &NetworkRecord,
        mut endpoint: EndpointRecord,
    ) -> Result<Vec<String>, Error> {
        endpoint.state = EndpointState::Detaching;
        state.put_endpoint(&endpoint)?;
        let notes = super::restore::remove_endpoint_link(network, &endpoint)?;
        self.remove_names(state, networks, network, &endpoint)?;
        for address in endpoint.ipv4.iter().chain(endpoint.ipv6.iter()) {
            state.release_if_owner(network, address.addr(), &endpoint.id)?;
        }
        state.delete_endpoint(&endpoint)?;
        Ok(notes)
    }

    /// Appends the endpoint's names to its network's hosts file and points
    /// the container's `/etc/netns/NAME/hosts` at what it should see.
    fn add_names(
        &self,
        state: &Locked<'_>,
        networks: &[NetworkRecord],
        network: &NetworkRecord,
        endpoint: &EndpointRecord,
    ) -> Result<(), Error> {
        let file = state.hosts_path(&network.id);
        hosts::ensure_file(&file)?;
        if let Some(container) = &endpoint.container {
            let addresses: Vec<IpAddr> = endpoint
                .ipv4
                .iter()
                .chain(endpoint.ipv6.iter())
                .map(IpNet::addr)
                .collect();
            hosts::append(&file, container, &addresses)?;
            self.refresh_container_view(state, networks, container)?;
        }
        self.refresh_name_views(state, networks, network)
    }

    fn remove_names(
        &self,
        state: &Locked<'_>,
        networks: &[NetworkRecord],
        network: &NetworkRecord,
        endpoint: &EndpointRecord,
    ) -> Result<(), Error> {
        if let Some(container) = &endpoint.container {
            hosts::remove(&state.hosts_path(&network.id), container)?;
        }
        self.refresh_name_views(state, networks, network)?;
        if let Some(container) = &endpoint.container {
            // The container itself may have left its last network.
            self.refresh_container_view(state, networks, container)?;
        }
        Ok(())
    }

    /// Regenerates the union view of every container on `network` that is
    /// on several networks (they are listed as markers, so this costs
    /// nothing for single-network containers).
    fn refresh_name_views(
        &self,
        state: &Locked<'_>,
        networks: &[NetworkRecord],
        network: &NetworkRecord,
    ) -> Result<(), Error> {
        let markers = state.union_markers_dir(&network.id);
        let Ok(entries) = std::fs::read_dir(&markers) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let container = entry.file_name().to_string_lossy().into_owned();
            self.refresh_container_view(state, networks, &container)?;
        }
        Ok(())
    }

    /// Points `/etc/netns/NAME/hosts` at what the container should see: its
    /// network's file, or a union file when it is on several.
    pub(crate) fn refresh_container_view(
        &self,
        state: &Locked<'_>,
        networks: &[NetworkRecord],
        container: &str,
    ) -> Result<(), Error> {
        let mut attached = Vec::new();
        for network in networks {
            if let Some(endpoint) = state.endpoint(&network.id, container)? {
                if endpoint.container.as_deref() == Some(container)
                    && endpoint.state != EndpointState::Detaching
                {
                    attached.push(network);
                }
            }
        }
        for network in networks {
            let marker = state.union_markers_dir(&network.id).join(container);
            if attached.len() > 1 && attached.iter().any(|n| n.id == network.id) {
                if !marker.exists() {
                    std::fs::create_dir_all(state.union_markers_dir(&network.id))
                        .and_then(|_| std::fs::write(&marker, b""))
                        .map_err(|e| Error::io(format!("writing {}", marker.display()), &e))?;
                }
            } else {
                let _ = std::fs::remove_file(&marker);
            }
        }
        let files: Vec<PathBuf> = attached.iter().map(|n| state.hosts_path(&n.id)).collect();
        match files.len() {
            0 => {
                let _ = std::fs::remove_file(state.union_hosts_path(container));
                hosts::unlink(&self.config.etc_netns_dir, container)
            }
            1 => {
                let _ = std::fs::remove_file(state.union_hosts_path(container));
                hosts::link(&self.config.etc_netns_dir, container, &files[0])
            }
            _ => {
                let union = state.union_hosts_path(container);
                hosts::write_union(&union, &files)?;
                hosts::link(&self.config.etc_netns_dir, container, &union)
            }
        }
    }
}

/// The kernel plan for an endpoint of `network` with these addresses.
pub(crate) fn endpoint_plan(
    network: &NetworkRecord,
    parent_index: u32,
    ifname: Option<String>,
    ipv4: IpNet,
    ipv6: Option<IpNet>,
) -> EndpointPlan {
    let route_for = |address: IpAddr| match network.mode {
        Mode::L3 | Mode::L3s => DefaultRoute::Device,
        Mode::L2 if network.internal => DefaultRoute::None,
        Mode::L2 => network
            .subnets
            .iter()
            .find(|s| s.subnet.contains(&address))
            .and_then(|s| s.gateway)
            .map_or(DefaultRoute::None, DefaultRoute::Via),
    };
    EndpointPlan {
        parent_index,
        mode: network.mode,
        flag: network.flag,
        mtu: network.mtu,
        ifname,
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
