//! The driver's view of the state directory, on top of [`crate::store`]:
//! records of networks, endpoints and containers, address allocation, and
//! the paths of hosts files and logs. Every method runs under the lock held
//! by a [`Locked`].

use std::cell::RefCell;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

use super::{Config, Error};
use crate::ipam::{self, Family};
use crate::json::Value;
use crate::store::{self, StateDir, StoreError, Timestamp};

// Networks and endpoints are stored as the driver sees them: one type
// each serves both.
pub(crate) use crate::store::{
    EndpointRecord, EndpointState, NetworkRecord, NetworkState, ParentOrigin,
};

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
        // Oldest first (then by name), as the store lists them.
        self.inner.borrow().networks().map_err(from_store)
    }

    pub(crate) fn put_network(&self, record: &NetworkRecord) -> Result<(), Error> {
        self.inner
            .borrow_mut()
            .put_network(record)
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

    /// Endpoints of one network, oldest first.
    pub(crate) fn endpoints(&self, network_id: &str) -> Result<Vec<EndpointRecord>, Error> {
        self.inner
            .borrow()
            .endpoints_of(network_id)
            .map_err(from_store)
    }

    /// One endpoint of a network by id.
    pub(crate) fn endpoint(
        &self,
        network_id: &str,
        id: &str,
    ) -> Result<Option<EndpointRecord>, Error> {
        self.inner
            .borrow()
            .endpoint(network_id, id)
            .map_err(from_store)
    }

    pub(crate) fn put_endpoint(&self, record: &EndpointRecord) -> Result<(), Error> {
        self.inner
            .borrow_mut()
            .put_endpoint(record)
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

    /// Whether a container record exists (one read, not a listing).
    pub(crate) fn has_container(&self, name: &str) -> Result<bool, Error> {
        Ok(self
            .inner
            .borrow()
            .record(CONTAINERS, name)
            .map_err(from_store)?
            .is_some())
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
            .allocate(network, request, owner)
            .map_err(from_store)
    }

    pub(crate) fn release(&self, network: &NetworkRecord, address: IpAddr) -> Result<(), Error> {
        self.inner
            .borrow_mut()
            .release(network, address)
            .map(drop)
            .map_err(from_store)
    }

    /// Frees addresses of `network` whose owner has no endpoint record
    /// (left by a crash between allocation and record); returns how many.
    pub(crate) fn release_orphans(&self, network: &NetworkRecord) -> Result<usize, Error> {
        let held = self.inner.borrow().addresses(network).map_err(from_store)?;
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
