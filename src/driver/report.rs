//! What the driver reports: networks, endpoints and containers as callers
//! see them (built from the store's records), and the reports of
//! `restore` and `doctor`.

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::{IpvlanFlag, IpvlanMode};
use crate::store::records::NetnsId;
use crate::store::{EndpointRecord, NetworkRecord, ParentOrigin, Timestamp};

/// One subnet of a network with what belongs to it (`IPAM.Config[]`): the
/// address manager's own description, also what is stored. Its gateway is
/// the one given, or the first usable address of its ip-range or subnet
/// (`None` only in records made before every subnet had one, or when the
/// range holds no usable address).
pub type SubnetInfo = crate::ipam::SubnetSpec;

/// A network as stored, with its endpoints (for `network ls|inspect`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    /// 64 lowercase hex digits.
    pub id: String,
    /// The name given at create.
    pub name: String,
    /// When the network was created (`inspect`'s `Created`).
    pub created: Timestamp,
    /// Always `ipvlan`.
    pub driver: String,
    /// ipvlan mode.
    pub mode: IpvlanMode,
    /// ipvlan flag.
    pub flag: IpvlanFlag,
    /// Parent link in the host namespace (`di-<short id>` for a dummy).
    pub parent: String,
    /// Whether the parent was created by us (dummy or `NAME.VLANID`).
    pub parent_created: bool,
    /// MTU given with `-o mtu=`, if any.
    pub mtu: Option<u32>,
    /// Internal (no parent or `--internal`): no default route.
    pub internal: bool,
    /// IPv6 enabled.
    pub ipv6: bool,
    /// The `-o` options as given (for `inspect`'s `Options`).
    pub options: Vec<(String, String)>,
    /// Subnets, IPv4 first.
    pub subnets: Vec<SubnetInfo>,
    /// Attached endpoints.
    pub endpoints: Vec<EndpointInfo>,
    /// Things the caller should show the user (e.g. a parent that is down,
    /// an endpoint record that cannot be read). Only filled by
    /// [`Manager::create_network`](super::Manager::create_network) and
    /// [`Manager::network`](super::Manager::network).
    pub warnings: Vec<String>,
}

impl NetworkInfo {
    /// The first 12 characters of the ID.
    ///
    /// ```
    /// # let info = ipvlan::driver::NetworkInfo::example();
    /// assert_eq!(info.short_id().len(), 12);
    /// ```
    pub fn short_id(&self) -> &str {
        self.id.get(..12).unwrap_or(&self.id)
    }

    #[doc(hidden)]
    pub fn example() -> NetworkInfo {
        NetworkInfo {
            id: "0123456789abcdef".repeat(4),
            name: "example".into(),
            created: Timestamp {
                secs: 1_714_564_800,
                nanos: 123_456_789,
            },
            driver: "ipvlan".into(),
            mode: IpvlanMode::L2,
            flag: IpvlanFlag::Bridge,
            parent: "di-0123456789ab".into(),
            parent_created: true,
            mtu: None,
            internal: true,
            ipv6: false,
            options: Vec::new(),
            subnets: Vec::new(),
            endpoints: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// A network record with its endpoints (only the attached ones are
    /// listed).
    pub(crate) fn from_record(record: &NetworkRecord, endpoints: &[EndpointRecord]) -> NetworkInfo {
        let mut subnets: Vec<SubnetInfo> = record.subnets.clone();
        // IPv4 first, as Docker lists them.
        crate::order::sort_by(&mut subnets, |a, b| {
            let v6 = |s: &SubnetInfo| matches!(s.subnet.addr(), IpAddr::V6(_));
            v6(a).cmp(&v6(b))
        });
        NetworkInfo {
            id: record.id.clone(),
            name: record.name.clone(),
            created: record.created,
            driver: "ipvlan".into(),
            mode: record.mode,
            flag: record.flag,
            parent: record.parent.clone(),
            parent_created: record.parent_origin != ParentOrigin::Existing,
            mtu: record.mtu,
            internal: record.internal,
            ipv6: record.ipv6,
            options: record.options.clone(),
            subnets,
            endpoints: endpoints
                .iter()
                .filter(|e| e.state.is_attached())
                .map(|e| EndpointInfo::from_record(record, e))
                .collect(),
            warnings: Vec::new(),
        }
    }
}

/// One attachment of a namespace to a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointInfo {
    /// The endpoint's ID, unique within its network (`inspect`'s
    /// `EndpointID`): the container name, or for a namespace given by path
    /// the id of its record, made from the namespace's identity
    /// (`_netns_cookie_...`; `path_...` in records of older versions).
    pub endpoint_id: String,
    /// The endpoint record's id, unique within its network whatever the
    /// records say (the record's file name): `endpoint_id` but for a named
    /// container's endpoint.
    pub record_id: String,
    /// Network name.
    pub network: String,
    /// Network ID.
    pub network_id: String,
    /// Container name, or the namespace path for a path target.
    pub container: String,
    /// The namespace file the link lives in.
    pub netns_path: PathBuf,
    /// Interface name inside the namespace (`eth0`, ...).
    pub ifname: String,
    /// IPv4 address with the subnet's prefix.
    pub ipv4: Option<Ipv4Net>,
    /// IPv6 address with the subnet's prefix.
    pub ipv6: Option<Ipv6Net>,
    /// MAC address (the parent's), `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
}

impl EndpointInfo {
    /// An endpoint record of `network`.
    pub(crate) fn from_record(network: &NetworkRecord, endpoint: &EndpointRecord) -> EndpointInfo {
        EndpointInfo {
            endpoint_id: endpoint
                .container
                .clone()
                .unwrap_or_else(|| endpoint.id.clone()),
            record_id: endpoint.id.clone(),
            network: network.name.clone(),
            network_id: network.id.clone(),
            container: endpoint_label(endpoint),
            netns_path: endpoint.netns.clone().into(),
            ifname: endpoint.ifname.clone(),
            ipv4: match endpoint.ipv4 {
                Some(IpNet::V4(net)) => Some(net),
                _ => None,
            },
            ipv6: match endpoint.ipv6 {
                Some(IpNet::V6(net)) => Some(net),
                _ => None,
            },
            mac: endpoint.mac.clone().unwrap_or_default(),
        }
    }
}

/// How messages name an endpoint: its container, else its namespace path.
pub(crate) fn endpoint_label(endpoint: &EndpointRecord) -> String {
    endpoint
        .container
        .clone()
        .unwrap_or_else(|| endpoint.netns.clone())
}

/// A container: a named network namespace managed by us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Namespace name (`/run/netns/NAME`).
    pub name: String,
    /// Namespace file.
    pub netns_path: PathBuf,
    /// Its endpoints, one per network.
    pub endpoints: Vec<EndpointInfo>,
    /// The identity of the namespace made for it (`None` in records of
    /// older versions): what tells it from a container given its name
    /// later (see [`Manager::remove_made_container`](super::Manager::remove_made_container)).
    pub netns_id: Option<NetnsId>,
    /// When that namespace's nsfs inode was made (see
    /// [`ContainerRecord::netns_inode_time`](crate::store::ContainerRecord::netns_inode_time)).
    pub netns_inode_time: Option<std::num::NonZeroU64>,
}

/// The answer of [`Manager::container_list`](super::Manager::container_list).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerList {
    /// The containers, and the state files that could not be read.
    pub containers: crate::store::Listing<ContainerInfo>,
    /// Names of the containers a killed `run` left half made (none while
    /// another command holds the store's lock: it may be a `run` at work).
    pub half_made: Vec<String>,
    /// Names of the containers a killed `rm` left half removed (none
    /// while another command holds the store's lock).
    pub half_removed: Vec<String>,
}

/// A command's exit status as `docker run` reports it: the command's own
/// code, 128+N for a signal, 126 cannot run, 127 not found.
pub type ExitStatusCode = i32;

/// What [`Manager::restore`](super::Manager::restore) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Parents (dummy, VLAN) re-created, as `network: parent`.
    pub parents_recreated: Vec<String>,
    /// Plain parents that are missing (networks kept), as `network: parent`.
    pub parents_missing: Vec<String>,
    /// Parents we made that an interrupted `network rm` (or create) left
    /// and that were kept when it was finished, as `network: why` (another
    /// tool's link sits on it, it is a port, an earlier release's record):
    /// no record names them any more, so this is the last word on them.
    pub parents_kept: Vec<String>,
    /// Endpoints whose link was re-created, as `network: container`.
    pub links_recreated: Vec<String>,
    /// Endpoints kept as they were.
    pub endpoints_kept: usize,
    /// CNI attachments whose link is missing, as `network: container`:
    /// kept (record and addresses) and not re-made, since their runtime
    /// owns the link's life (its CHECK reports the link missing).
    pub links_left_to_runtime: Vec<String>,
    /// Endpoints released because their namespace is gone, as `network: container`.
    pub endpoints_released: Vec<String>,
    /// Attaches still running, as `network: container`: a CNI ADD whose
    /// IPAM plugin runs (without the store's lock) holds its intent, which
    /// is left to it, not undone.
    pub attaches_in_progress: Vec<String>,
    /// Processes found in a container whose interrupted `rm` without
    /// force was finished, as `container: pids 1 2`: started inside after
    /// that `rm` began (by `ip netns exec`, say), and left running, as
    /// that `rm` would have left them, their namespace unnamed.
    pub processes_left_running: Vec<String>,
    /// Interrupted operations finished or rolled back.
    pub intents_repaired: usize,
    /// Files derived from the records (address files and container
    /// indexes from the endpoint records, name hints and hosts files'
    /// short names from the network records), which are not synced, made
    /// again, rewritten or removed to agree with the records: what a power
    /// cut lost or left stale.
    pub derived_rebuilt: usize,
    /// Durable records written again (or removed again) from the store's
    /// commit log, which a power cut had taken from the files.
    pub records_written_again: usize,
    /// Failures that did not stop the restore.
    pub errors: Vec<String>,
}

/// One line of [`doctor`](fn@super::doctor)'s report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoctorCheck {
    /// What was checked.
    pub name: String,
    /// Whether it is usable.
    pub ok: bool,
    /// What was found.
    pub detail: String,
}

/// What [`doctor`](fn@super::doctor) found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DoctorReport {
    /// The checks, in order.
    pub checks: Vec<DoctorCheck>,
}

impl DoctorReport {
    /// Whether every check passed.
    pub fn all_ok(&self) -> bool {
        self.checks.iter().all(|check| check.ok)
    }
}
