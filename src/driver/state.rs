//! The driver's view of the state directory, on top of [`crate::store`]:
//! records of networks, endpoints and containers, address allocation, and
//! the paths of hosts files and logs. Every method runs under the lock held
//! by a [`Locked`].

use std::cell::RefCell;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use super::{Config, Error, Flag, Mode, SubnetInfo};
use crate::ipam::{self, Family, SubnetSpec};
use crate::json::Value;
use crate::store::{self, StateDir, StoreError, Timestamp};

/// Who made a network's parent link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParentOrigin {
    /// Existed before; never modified or deleted.
    Existing,
    /// An 802.1Q link we created on `link`.
    Vlan { link: String, vlan_id: u16 },
    /// A dummy we created.
    Dummy,
}

/// Life-cycle of a network: the intent journal of create and rm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NetworkState {
    Creating,
    Created,
    Removing,
}

/// Life-cycle of an endpoint: the intent journal of attach and detach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndpointState {
    Attaching,
    Attached,
    Detaching,
}

/// A stored network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NetworkRecord {
    pub id: String,
    pub name: String,
    pub mode: Mode,
    pub flag: Flag,
    pub parent: String,
    pub parent_origin: ParentOrigin,
    pub internal: bool,
    pub ipv6: bool,
    pub mtu: Option<u32>,
    pub subnets: Vec<SubnetInfo>,
    pub options: Vec<(String, String)>,
    pub state: NetworkState,
    pub created: Timestamp,
}

/// A stored endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EndpointRecord {
    /// Unique per network: the container name, or derived from the path.
    pub id: String,
    pub network_id: String,
    pub container: Option<String>,
    pub netns: String,
    pub ifname: String,
    pub mac: Option<String>,
    pub ipv4: Option<IpNet>,
    pub ipv6: Option<IpNet>,
    pub state: EndpointState,
    pub created: Timestamp,
    /// Namespace identity (`st_dev`, `st_ino`) at attach; absent in old records.
    pub netns_id: Option<(u64, u64)>,
    /// The link's ifindex inside the namespace, once made.
    pub ifindex: Option<u32>,
}

/// What to allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Request {
    AnyV4,
    AnyV6,
    Exact(IpAddr),
}

/// Kind of the generic store records that list our containers.
const CONTAINERS: &str = "containers";

/// A store failure as a driver error (IPAM refusals keep their texts and
/// become invalid-value or in-use errors).
pub(crate) fn from_store(error: StoreError) -> Error {
    if let Some(refusal) = error.ipam() {
        return super::ipam_glue::from_ipam(refusal.clone());
    }
    let permission = error.is_permission_denied();
    let text = format!("state directory: {error}");
    if permission {
        Error::os(text, libc::EACCES)
    } else {
        Error::failed(text)
    }
}

fn mode_to_store(mode: Mode) -> store::Mode {
    match mode {
        Mode::L2 => store::Mode::L2,
        Mode::L3 => store::Mode::L3,
        Mode::L3s => store::Mode::L3s,
    }
}

fn mode_from_store(mode: store::Mode) -> Mode {
    match mode {
        store::Mode::L2 => Mode::L2,
        store::Mode::L3 => Mode::L3,
        store::Mode::L3s => Mode::L3s,
    }
}

fn flag_to_store(flag: Flag) -> store::Flag {
    match flag {
        Flag::Bridge => store::Flag::Bridge,
        Flag::Private => store::Flag::Private,
        Flag::Vepa => store::Flag::Vepa,
    }
}

fn flag_from_store(flag: store::Flag) -> Flag {
    match flag {
        store::Flag::Bridge => Flag::Bridge,
        store::Flag::Private => Flag::Private,
        store::Flag::Vepa => Flag::Vepa,
    }
}

pub(crate) fn spec_of(subnet: &SubnetInfo) -> SubnetSpec {
    SubnetSpec {
        subnet: subnet.subnet,
        gateway: subnet.gateway,
        ip_range: subnet.ip_range,
        aux: subnet.aux_addresses.clone(),
    }
}

pub(crate) fn info_of(spec: &SubnetSpec) -> SubnetInfo {
    SubnetInfo {
        subnet: spec.subnet,
        gateway: spec.gateway,
        ip_range: spec.ip_range,
        aux_addresses: spec.aux.clone(),
    }
}

impl NetworkRecord {
    fn to_store(&self) -> store::NetworkRecord {
        store::NetworkRecord {
            id: self.id.clone(),
            name: self.name.clone(),
            driver: "ipvlan".into(),
            mode: mode_to_store(self.mode),
            flag: flag_to_store(self.flag),
            parent: self.parent.clone(),
            parent_origin: match &self.parent_origin {
                ParentOrigin::Existing => store::ParentOrigin::Existing,
                ParentOrigin::Vlan { link, vlan_id } => store::ParentOrigin::VlanCreated {
                    link: link.clone(),
                    vlan_id: *vlan_id,
                },
                ParentOrigin::Dummy => store::ParentOrigin::DummyCreated,
            },
            internal: self.internal,
            ipv6: self.ipv6,
            mtu: self.mtu,
            subnets: self.subnets.iter().map(spec_of).collect(),
            created: self.created,
            options: self.options.clone(),
            state: match self.state {
                NetworkState::Creating => store::NetworkState::Creating,
                NetworkState::Created => store::NetworkState::Created,
                NetworkState::Removing => store::NetworkState::Removing,
            },
        }
    }

    fn from_store(record: store::NetworkRecord) -> NetworkRecord {
        NetworkRecord {
            mode: mode_from_store(record.mode),
            flag: flag_from_store(record.flag),
            parent_origin: match record.parent_origin {
                store::ParentOrigin::Existing => ParentOrigin::Existing,
                store::ParentOrigin::VlanCreated { link, vlan_id } => {
                    ParentOrigin::Vlan { link, vlan_id }
                }
                store::ParentOrigin::DummyCreated => ParentOrigin::Dummy,
            },
            subnets: record.subnets.iter().map(info_of).collect(),
            state: match record.state {
                store::NetworkState::Creating => NetworkState::Creating,
                store::NetworkState::Created => NetworkState::Created,
                store::NetworkState::Removing => NetworkState::Removing,
            },
            id: record.id,
            name: record.name,
            parent: record.parent,
            internal: record.internal,
            ipv6: record.ipv6,
            mtu: record.mtu,
            options: record.options,
            created: record.created,
        }
    }
}

impl EndpointRecord {
    fn to_store(&self) -> store::EndpointRecord {
        store::EndpointRecord {
            id: self.id.clone(),
            network_id: self.network_id.clone(),
            container: self.container.clone(),
            netns: self.netns.clone(),
            ifname: self.ifname.clone(),
            mac: self.mac.clone(),
            ipv4: self.ipv4,
            ipv6: self.ipv6,
            state: match self.state {
                EndpointState::Attaching => store::EndpointState::Attaching,
                EndpointState::Attached => store::EndpointState::Attached,
                EndpointState::Detaching => store::EndpointState::Detaching,
            },
            created: self.created,
            netns_dev: self.netns_id.map(|(dev, _)| dev),
            netns_ino: self.netns_id.map(|(_, ino)| ino),
            ifindex: self.ifindex,
        }
    }

    fn from_store(record: store::EndpointRecord) -> EndpointRecord {
        EndpointRecord {
            state: match record.state {
                store::EndpointState::Attaching => EndpointState::Attaching,
                store::EndpointState::Attached => EndpointState::Attached,
                store::EndpointState::Detaching => EndpointState::Detaching,
            },
            id: record.id,
            network_id: record.network_id,
            container: record.container,
            netns: record.netns,
            ifname: record.ifname,
            mac: record.mac,
            ipv4: record.ipv4,
            ipv6: record.ipv6,
            created: record.created,
            netns_id: record.netns_dev.zip(record.netns_ino),
            ifindex: record.ifindex,
        }
    }
}

/// The opened state directory.
#[derive(Debug)]
pub(crate) struct State {
    dir: StateDir,
}

/// The state directory with its lock held; dropped = unlocked.
pub(crate) struct Locked<'a> {
    inner: RefCell<store::Locked<'a>>,
}

impl State {
    pub(crate) fn open(config: &Config) -> Result<State, Error> {
        Ok(State {
            dir: StateDir::open(&config.state_dir).map_err(from_store)?,
        })
    }

    pub(crate) fn lock(&self) -> Result<Locked<'_>, Error> {
        Ok(Locked {
            inner: RefCell::new(self.dir.lock().map_err(from_store)?),
        })
    }
}

impl Locked<'_> {
    fn root(&self) -> PathBuf {
        self.inner.borrow().root().to_path_buf()
    }

    pub(crate) fn networks(&self) -> Result<Vec<NetworkRecord>, Error> {
        let mut records: Vec<NetworkRecord> = self
            .inner
            .borrow()
            .networks()
            .map_err(from_store)?
            .into_iter()
            .map(NetworkRecord::from_store)
            .collect();
        records.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        Ok(records)
    }

    pub(crate) fn put_network(&self, record: &NetworkRecord) -> Result<(), Error> {
        self.inner
            .borrow_mut()
            .put_network(&record.to_store())
            .map_err(from_store)
    }

    /// Removes the network with its endpoints, addresses and hosts file.
    pub(crate) fn delete_network(&self, record: &NetworkRecord) -> Result<(), Error> {
        let _ = std::fs::remove_dir_all(self.union_markers_dir(&record.id));
        self.inner
            .borrow_mut()
            .remove_network(&record.id)
            .map(drop)
            .map_err(from_store)
    }

    /// Endpoints of one network.
    pub(crate) fn endpoints(&self, network_id: &str) -> Result<Vec<EndpointRecord>, Error> {
        let mut records: Vec<EndpointRecord> = self
            .inner
            .borrow()
            .endpoints_of(network_id)
            .map_err(from_store)?
            .into_iter()
            .map(EndpointRecord::from_store)
            .collect();
        records.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok(records)
    }

    /// One endpoint of a network by id.
    pub(crate) fn endpoint(
        &self,
        network_id: &str,
        id: &str,
    ) -> Result<Option<EndpointRecord>, Error> {
        Ok(self
            .inner
            .borrow()
            .endpoint(network_id, id)
            .map_err(from_store)?
            .map(EndpointRecord::from_store))
    }

    pub(crate) fn put_endpoint(&self, record: &EndpointRecord) -> Result<(), Error> {
        self.inner
            .borrow_mut()
            .put_endpoint(&record.to_store())
            .map_err(from_store)
    }

    pub(crate) fn delete_endpoint(&self, record: &EndpointRecord) -> Result<(), Error> {
        self.inner
            .borrow_mut()
            .remove_endpoint(&record.network_id, &record.id)
            .map(drop)
            .map_err(from_store)
    }

    /// Names of the containers we created, sorted.
    pub(crate) fn containers(&self) -> Result<Vec<String>, Error> {
        let mut names: Vec<String> = self
            .inner
            .borrow()
            .records(CONTAINERS)
            .map_err(from_store)?
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        names.sort();
        Ok(names)
    }

    pub(crate) fn put_container(&self, name: &str) -> Result<(), Error> {
        let value = Value::object([
            ("version", Value::from(store::RECORD_VERSION)),
            ("name", Value::from(name)),
            ("created", Value::from(Timestamp::now().to_string())),
        ]);
        self.inner
            .borrow_mut()
            .put_record(CONTAINERS, name, &value)
            .map_err(from_store)
    }

    pub(crate) fn delete_container(&self, name: &str) -> Result<(), Error> {
        self.inner
            .borrow_mut()
            .remove_record(CONTAINERS, name)
            .map(drop)
            .map_err(from_store)
    }

    pub(crate) fn allocate(
        &self,
        network: &NetworkRecord,
        request: Request,
        owner: &str,
    ) -> Result<IpNet, Error> {
        let request = match request {
            Request::AnyV4 => ipam::Request::Any(Family::V4),
            Request::AnyV6 => ipam::Request::Any(Family::V6),
            Request::Exact(address) => ipam::Request::Exact(address),
        };
        self.inner
            .borrow_mut()
            .allocate(&network.to_store(), request, owner)
            .map_err(from_store)
    }

    pub(crate) fn release(&self, network: &NetworkRecord, address: IpAddr) -> Result<(), Error> {
        self.inner
            .borrow_mut()
            .release(&network.to_store(), address)
            .map(drop)
            .map_err(from_store)
    }

    /// Frees `address` only when the endpoint `owner` holds it (one read):
    /// an address another endpoint took since must stay taken.
    pub(crate) fn release_if_owner(
        &self,
        network: &NetworkRecord,
        address: IpAddr,
        owner: &str,
    ) -> Result<bool, Error> {
        let Some(subnet) = network.subnets.iter().find(|s| s.subnet.contains(&address)) else {
            return Ok(false);
        };
        let holder = self
            .inner
            .borrow()
            .address_owner(&network.id, &spec_of(subnet), address)
            .map_err(from_store)?;
        if holder.as_deref() != Some(owner) {
            return Ok(false);
        }
        self.release(network, address)?;
        Ok(true)
    }

    /// Frees addresses of `network` whose owner has no endpoint record
    /// (left by a crash between allocation and record); returns how many.
    pub(crate) fn release_orphans(&self, network: &NetworkRecord) -> Result<usize, Error> {
        let record = network.to_store();
        let held = self.inner.borrow().addresses(&record).map_err(from_store)?;
        let mut freed = 0;
        for (address, owner) in held {
            if self.endpoint(&network.id, &owner)?.is_none() {
                self.release(network, address)?;
                freed += 1;
            }
        }
        Ok(freed)
    }

    /// Removes temporary files of writes a killed invocation left behind.
    pub(crate) fn clean_temporaries(&self) -> Result<usize, Error> {
        self.inner
            .borrow_mut()
            .clean_temporaries()
            .map_err(from_store)
    }

    /// Bytes identifying this host (for the ULA prefix).
    pub(crate) fn host_id(&self) -> Result<Vec<u8>, Error> {
        self.inner
            .borrow_mut()
            .host_id(Path::new(store::MACHINE_ID_PATH))
            .map(String::into_bytes)
            .map_err(from_store)
    }

    pub(crate) fn hosts_path(&self, network_id: &str) -> PathBuf {
        self.inner.borrow().hosts_path(network_id)
    }

    /// Markers of the containers on `network_id` that see a union file.
    pub(crate) fn union_markers_dir(&self, network_id: &str) -> PathBuf {
        self.root().join("hosts").join("unions").join(network_id)
    }

    pub(crate) fn union_hosts_path(&self, container: &str) -> PathBuf {
        self.root().join("hosts").join("containers").join(container)
    }
}
