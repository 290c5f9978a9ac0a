//! `restore`: make kernel and state agree again, at boot or after a crash.
//!
//! One bad network or endpoint never blocks the others: each failure is
//! written to the report's `errors` and the rest carries on. A namespace
//! is given up only when it is certainly gone (nothing at its path, or
//! another namespace or a plain file there); a namespace that cannot be
//! opened for another reason keeps its endpoint and addresses.

use super::endpoint::endpoint_plan;
use super::net::{self, Link, LinkRemoval, NsAt};
use super::network::endpoint_label;
use super::state::{
    EndpointRecord, EndpointState, Locked, NetworkRecord, NetworkState, ParentOrigin,
};
use super::{Error, Manager, RestoreReport};

impl Manager {
    pub(crate) fn do_restore(&self) -> Result<RestoreReport, Error> {
        let state = self.state.lock()?;
        let mut report = RestoreReport::default();
        // Half-written files of killed invocations first: nothing reads them.
        if let Err(error) = state.clean_temporaries() {
            report.errors.push(error.to_string());
        }
        let all = state.networks()?;

        // Interrupted creates are rolled back, interrupted removals finished.
        let mut rolled_back: Vec<&str> = Vec::new();
        for network in &all {
            let unfinished = match network.state {
                NetworkState::Creating => true,
                NetworkState::Removing => match state.endpoints(&network.id) {
                    Ok(endpoints) => endpoints.is_empty(),
                    Err(error) => {
                        report.errors.push(format!("{}: {error}", network.name));
                        false
                    }
                },
                NetworkState::Created => false,
            };
            if unfinished {
                rolled_back.push(&network.id);
            }
        }
        // Every network that stays, whatever its position in the list, may
        // share the parent of one rolled back.
        let mut networks: Vec<NetworkRecord> = all
            .iter()
            .filter(|n| !rolled_back.contains(&n.id.as_str()))
            .cloned()
            .collect();
        for network in all.iter().filter(|n| rolled_back.contains(&n.id.as_str())) {
            self.delete_parent_if_ours(network, &networks);
            let _ = std::fs::remove_file(state.hosts_path(&network.id));
            match state.delete_network(network) {
                Ok(()) => report.intents_repaired += 1,
                Err(error) => report.errors.push(format!("{}: {error}", network.name)),
            }
        }
        for network in &mut networks {
            if network.state == NetworkState::Removing {
                network.state = NetworkState::Created;
                if let Err(error) = state.put_network(network) {
                    report.errors.push(format!("{}: {error}", network.name));
                }
            }
        }

        // Every endpoint first, so an interrupted attach can tell whether
        // the name it recorded now belongs to a later attach.
        let mut endpoints: Vec<(usize, Vec<EndpointRecord>)> = Vec::new();
        for (at, network) in networks.iter().enumerate() {
            match state.endpoints(&network.id) {
                Ok(list) => endpoints.push((at, list)),
                Err(error) => report.errors.push(format!("{}: {error}", network.name)),
            }
        }
        let claimed: Vec<(String, String)> = endpoints
            .iter()
            .flat_map(|(_, list)| list)
            .filter(|e| e.state == EndpointState::Attached && !e.ifname.is_empty())
            .map(|e| (e.netns.clone(), e.ifname.clone()))
            .collect();

        for (at, list) in endpoints {
            let network = &networks[at];
            let parent = match self.restore_parent(network, &mut report) {
                Ok(parent) => parent,
                Err(error) => {
                    report
                        .errors
                        .push(format!("{}: {}: {error}", network.name, network.parent));
                    None
                }
            };
            for mut endpoint in list {
                let who = format!("{}: {}", network.name, endpoint_label(&endpoint));
                if endpoint.state != EndpointState::Attached
                    && endpoint.ifindex.is_none()
                    && claimed.contains(&(endpoint.netns.clone(), endpoint.ifname.clone()))
                {
                    // Killed before making its link; the name went to a
                    // later attach that must keep it.
                    endpoint.ifname.clear();
                }
                let restored = self.restore_endpoint(
                    &state,
                    &networks,
                    network,
                    parent.as_ref(),
                    endpoint,
                    &who,
                    &mut report,
                );
                if let Err(error) = restored {
                    report.errors.push(format!("{who}: {error}"));
                }
            }
        }

        for network in &networks {
            match state.release_orphans(network) {
                Ok(freed) => report.intents_repaired += freed,
                Err(error) => report.errors.push(format!("{}: {error}", network.name)),
            }
        }

        // Container records whose namespace went away, or never came: an
        // empty mount point left by a process killed before its bind mount
        // goes with its record.
        for name in state.containers()? {
            let path = self.config.netns_dir.join(&name);
            let gone = match net::open_recorded_netns(&path.display().to_string(), None) {
                Ok(NsAt::Gone) => true,
                Ok(NsAt::NotANamespace) => match std::fs::remove_file(&path) {
                    Ok(()) => true,
                    Err(error) => {
                        report
                            .errors
                            .push(format!("removing {}: {error}", path.display()));
                        false
                    }
                },
                Ok(NsAt::Present(..)) => false,
                Err(error) => {
                    report.errors.push(format!("container {name}: {error}"));
                    false
                }
            };
            if gone {
                let _ = super::hosts::unlink(&self.config.etc_netns_dir, &name);
                if let Err(error) = state.delete_container(&name) {
                    report.errors.push(format!("container {name}: {error}"));
                }
            }
        }
        Ok(report)
    }

    /// The network's parent, re-created when it is ours and missing.
    fn restore_parent(
        &self,
        network: &NetworkRecord,
        report: &mut RestoreReport,
    ) -> Result<Option<Link>, Error> {
        if let Some(link) = net::link_by_name(None, &network.parent)? {
            return Ok(Some(link));
        }
        let label = format!("{}: {}", network.name, network.parent);
        let created = match &network.parent_origin {
            ParentOrigin::DummyCreated => net::create_dummy(&network.parent, network.mtu),
            ParentOrigin::VlanCreated { link, vlan_id } => match net::link_by_name(None, link)? {
                Some(base) => net::create_vlan(&network.parent, base.index, *vlan_id),
                None => {
                    report
                        .parents_missing
                        .push(format!("{label} (its link {link} is missing too)"));
                    return Ok(None);
                }
            },
            ParentOrigin::Existing => {
                report.parents_missing.push(label);
                return Ok(None);
            }
        };
        let created = created?;
        report.parents_recreated.push(label);
        Ok(Some(created))
    }

    #[allow(clippy::too_many_arguments)]
    fn restore_endpoint(
        &self,
        state: &Locked<'_>,
        networks: &[NetworkRecord],
        network: &NetworkRecord,
        parent: Option<&Link>,
        endpoint: EndpointRecord,
        who: &str,
        report: &mut RestoreReport,
    ) -> Result<(), Error> {
        if endpoint.state != EndpointState::Attached {
            // The interrupted attach or detach is undone or finished the
            // same way: no link, no addresses, no record.
            if let NsAt::Present(ns, _) =
                net::open_recorded_netns(&endpoint.netns, endpoint.netns_id)?
            {
                net::delete_temporary_links(&ns, parent)?;
            }
            let notes = self.detach_noting(state, networks, network, endpoint)?;
            report
                .errors
                .extend(notes.into_iter().map(|note| format!("{who}: {note}")));
            report.intents_repaired += 1;
            return Ok(());
        }
        let (ns, identity) = match net::open_recorded_netns(&endpoint.netns, endpoint.netns_id)? {
            NsAt::Present(ns, identity) => (ns, identity),
            NsAt::Gone | NsAt::NotANamespace => {
                let notes = self.detach_noting(state, networks, network, endpoint)?;
                report
                    .errors
                    .extend(notes.into_iter().map(|note| format!("{who}: {note}")));
                report.endpoints_released.push(who.to_string());
                return Ok(());
            }
        };
        let found = net::endpoint_link(&ns, endpoint.ifindex, &endpoint.ifname)?;
        if let Some(link) = &found {
            if net::not_ours(link, parent, endpoint.mac.as_deref()).is_none() {
                // Records older than the identity fields (or the cookie)
                // get them now.
                if endpoint.netns_id != Some(identity) || endpoint.ifindex != Some(link.index) {
                    let mut updated = endpoint.clone();
                    updated.netns_id = Some(identity);
                    updated.ifindex = Some(link.index);
                    state.put_endpoint(&updated)?;
                }
                report.endpoints_kept += 1;
                return Ok(());
            }
        }
        let Some(parent) = parent else {
            report.errors.push(format!(
                "{who}: link missing and parent {} unavailable; endpoint kept for a later restore",
                network.parent
            ));
            return Ok(());
        };
        if let Some(link) = found.filter(|l| l.name == endpoint.ifname) {
            let why =
                net::not_ours(&link, Some(parent), endpoint.mac.as_deref()).unwrap_or_default();
            report.errors.push(format!(
                "{who}: {why} in namespace {}, where the endpoint's link should be; endpoint kept",
                ns.label()
            ));
            return Ok(());
        }
        let Some(ipv4) = endpoint.ipv4 else {
            report
                .errors
                .push(format!("{who}: record has no IPv4 address"));
            return Ok(());
        };
        let ifname = (!endpoint.ifname.is_empty()).then(|| endpoint.ifname.clone());
        let plan = endpoint_plan(network, parent.index, ifname, ipv4, endpoint.ipv6);
        let built = net::create_endpoint(&ns, &plan)?;
        let mut updated = endpoint;
        updated.ifname = built.ifname;
        updated.mac = Some(built.mac);
        updated.ifindex = Some(built.index);
        updated.netns_id = Some(identity);
        state.put_endpoint(&updated)?;
        report.links_recreated.push(who.to_string());
        Ok(())
    }
}

/// Deletes an endpoint's link, only in the very namespace attached and
/// only when it is ours; returns what was left alone, and why.
pub(crate) fn remove_endpoint_link(
    network: &NetworkRecord,
    endpoint: &EndpointRecord,
) -> Result<Vec<String>, Error> {
    if endpoint.ifindex.is_none() && endpoint.ifname.is_empty() {
        return Ok(Vec::new());
    }
    let ns = match net::open_recorded_netns(&endpoint.netns, endpoint.netns_id)? {
        NsAt::Present(ns, _) => ns,
        // Its links went with it, or it is out of reach: never touch
        // whatever sits at the path now.
        NsAt::Gone | NsAt::NotANamespace => return Ok(Vec::new()),
    };
    let parent = net::link_by_name(None, &network.parent)?;
    let removal = net::delete_endpoint_link(
        &ns,
        endpoint.ifindex,
        &endpoint.ifname,
        parent.as_ref(),
        endpoint.mac.as_deref(),
    )?;
    Ok(match removal {
        LinkRemoval::Deleted | LinkRemoval::Missing => Vec::new(),
        LinkRemoval::NotOurs(why) => vec![why],
    })
}
