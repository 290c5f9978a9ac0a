//! `restore`: make kernel and state agree again, at boot or after a crash.

use super::endpoint::{delete_endpoint_link, endpoint_plan};
use super::net;
use super::network::endpoint_label;
use super::state::{EndpointState, NetworkRecord, NetworkState, ParentOrigin};
use super::{Error, Manager, RestoreReport};
use crate::netns::Netns;

impl Manager {
    pub(crate) fn do_restore(&self) -> Result<RestoreReport, Error> {
        let state = self.state.lock()?;
        let mut report = RestoreReport::default();
        // Half-written files of killed invocations first: nothing reads them.
        state.clean_temporaries()?;
        let mut networks = state.networks()?;

        // Interrupted creates are rolled back, interrupted removals finished.
        let mut kept: Vec<NetworkRecord> = Vec::new();
        for network in networks.drain(..) {
            let unfinished = match network.state {
                NetworkState::Creating => true,
                NetworkState::Removing => state.endpoints(&network.id)?.is_empty(),
                NetworkState::Created => false,
            };
            if unfinished {
                kept.retain(|n| n.id != network.id);
                report.intents_repaired += 1;
                let others: Vec<NetworkRecord> = kept.clone();
                self.delete_parent_if_ours(&network, &others);
                let _ = std::fs::remove_file(state.hosts_path(&network.id));
                state.delete_network(&network)?;
            } else {
                kept.push(network);
            }
        }
        let mut networks = kept;
        for network in &mut networks {
            if network.state == NetworkState::Removing {
                network.state = NetworkState::Created;
                state.put_network(network)?;
            }
        }

        for network in &networks {
            let label = format!("{}: {}", network.name, network.parent);
            let parent = match net::link_by_name(None, &network.parent)? {
                Some(link) => Some(link),
                None => match &network.parent_origin {
                    ParentOrigin::DummyCreated => match net::create_dummy(&network.parent) {
                        Ok(link) => {
                            report.parents_recreated.push(label);
                            Some(link)
                        }
                        Err(error) => {
                            report.errors.push(format!("{label}: {error}"));
                            None
                        }
                    },
                    ParentOrigin::VlanCreated { link, vlan_id } => {
                        match net::link_by_name(None, link)? {
                            Some(base) => {
                                match net::create_vlan(&network.parent, base.index, *vlan_id) {
                                    Ok(created) => {
                                        report.parents_recreated.push(label);
                                        Some(created)
                                    }
                                    Err(error) => {
                                        report.errors.push(format!("{label}: {error}"));
                                        None
                                    }
                                }
                            }
                            None => {
                                report
                                    .parents_missing
                                    .push(format!("{label} (its link {link} is missing too)"));
                                None
                            }
                        }
                    }
                    ParentOrigin::Existing => {
                        report.parents_missing.push(label);
                        None
                    }
                },
            };

            for endpoint in state.endpoints(&network.id)? {
                let who = format!("{}: {}", network.name, endpoint_label(&endpoint));
                let ns = Netns::open_path(&endpoint.netns).ok();
                match (endpoint.state, ns) {
                    (EndpointState::Attached, Some(ns)) => {
                        if !endpoint.ifname.is_empty()
                            && net::link_by_name(Some(&ns), &endpoint.ifname)?.is_some()
                        {
                            report.endpoints_kept += 1;
                            continue;
                        }
                        let Some(parent) = &parent else {
                            report.errors.push(format!(
                                "{who}: link missing and parent {} unavailable; endpoint kept for a later restore",
                                network.parent
                            ));
                            continue;
                        };
                        let Some(ipv4) = endpoint.ipv4 else {
                            report
                                .errors
                                .push(format!("{who}: record has no IPv4 address"));
                            continue;
                        };
                        let ifname = (!endpoint.ifname.is_empty()).then(|| endpoint.ifname.clone());
                        let plan =
                            endpoint_plan(network, parent.index, ifname, ipv4, endpoint.ipv6);
                        match net::create_endpoint(&ns, &plan) {
                            Ok(built) => {
                                if built.ifname != endpoint.ifname {
                                    let mut updated = endpoint.clone();
                                    updated.ifname = built.ifname;
                                    updated.mac = Some(built.mac);
                                    state.put_endpoint(&updated)?;
                                }
                                report.links_recreated.push(who);
                            }
                            Err(error) => report.errors.push(format!("{who}: {error}")),
                        }
                    }
                    (EndpointState::Attached, None) => {
                        self.detach(&state, &networks, network, endpoint)?;
                        report.endpoints_released.push(who);
                    }
                    (EndpointState::Attaching | EndpointState::Detaching, ns) => {
                        // The interrupted attach or detach is undone or finished
                        // the same way: no link, no addresses, no record.
                        if let Some(ns) = ns {
                            if !endpoint.ifname.is_empty() {
                                delete_endpoint_link(&ns, &endpoint.ifname)?;
                            }
                            net::delete_temporary_links(&ns)?;
                        }
                        let mut endpoint = endpoint;
                        endpoint.ifname.clear();
                        self.detach(&state, &networks, network, endpoint)?;
                        report.intents_repaired += 1;
                    }
                }
            }
        }

        for network in &networks {
            report.intents_repaired += state.release_orphans(network)?;
        }

        // Container records whose namespace went away.
        for name in state.containers()? {
            if !self.config.netns_dir.join(&name).exists() {
                let _ = super::hosts::unlink(&self.config.etc_netns_dir, &name);
                state.delete_container(&name)?;
            }
        }
        Ok(report)
    }
}
