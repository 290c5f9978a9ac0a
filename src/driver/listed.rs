//! What a batch connect lists once, under its lock, so that the checks of
//! its targets look up only the names the listings hold.
//!
//! A single attach looks up four names of its target before it takes
//! anything: the target's endpoint record in the network (already
//! attached?, under its id and, for a target given by path, the ids older
//! versions gave the path), its container's index (on another network?),
//! its container's record (left half done by a `run` or an `rm`?) and its
//! container's `/etc/netns/NAME` (whose view?). For a container on no
//! network, a batch's usual target, all four are missing, and each
//! lookup of a missing name is a directory search of its own. A batch
//! lists the four directories instead, once, and looks up a target's
//! name only where its listing holds it.
//!
//! Sound because of who changes them: the store's three directories change
//! only under the lock the batch holds from its listings to its end.
//! `/etc/netns` is anyone's: an entry made there after the listing is met
//! as one made after a lookup is, by the `mkdir` of the view, which finds
//! it and leaves it to whoever made it.

use std::path::Path;

use super::Error;
use crate::store::Locked;

/// A set of names kept as hashes, 8 bytes a name: whether a name may be
/// in it. Another name with the same hash only costs the lookup the set
/// was meant to save.
#[derive(Debug, Default)]
pub(crate) struct NameSet {
    /// Sorted.
    hashes: Vec<u64>,
}

impl NameSet {
    fn of<N: AsRef<[u8]>>(names: impl IntoIterator<Item = N>) -> NameSet {
        let mut hashes: Vec<u64> = names.into_iter().map(|name| fnv1a(name.as_ref())).collect();
        crate::order::sort(&mut hashes);
        hashes.dedup();
        hashes.shrink_to_fit();
        NameSet { hashes }
    }

    /// Whether `name` may be in the set: `false` means it is not.
    pub(crate) fn may_hold(&self, name: &str) -> bool {
        self.hashes.binary_search(&fnv1a(name.as_bytes())).is_ok()
    }
}

/// FNV-1a, 64 bits: names are ours or a directory's, nothing an attacker
/// can use to make lookups cost more than one each.
fn fnv1a(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// The listings of one batch connect (see the module documentation).
#[derive(Debug)]
pub(crate) struct Listed {
    /// The ids of the network's endpoint records.
    endpoints: NameSet,
    /// The containers with an index file.
    indexed: NameSet,
    /// The containers with a record (`ipvlan run`'s).
    recorded: NameSet,
    /// The entries of `/etc/netns`; `None` when it could not be listed,
    /// and each view is looked up.
    views: Option<NameSet>,
}

impl Listed {
    /// Lists, under `state`'s lock, the endpoint records of network
    /// `network_id` and, when some target is a container (`containers`),
    /// the containers' indexes and `etc_netns_dir`: a batch of namespaces
    /// given by paths no name leads to has neither to look up.
    pub(crate) fn read(
        state: &Locked<'_>,
        network_id: &str,
        etc_netns_dir: &Path,
        containers: bool,
    ) -> Result<Listed, Error> {
        let endpoints = NameSet::of(state.endpoint_ids(network_id)?);
        if !containers {
            return Ok(Listed {
                endpoints,
                indexed: NameSet::default(),
                recorded: NameSet::default(),
                views: None,
            });
        }
        let indexed = NameSet::of(state.record_names(super::netns_identity::CONTAINER_ENDPOINTS)?);
        let recorded = NameSet::of(state.container_record_names()?);
        // A link to the directory followed, as every lookup in it follows it.
        let views = match crate::sys::list_dir(etc_netns_dir) {
            Ok(entries) => Some(NameSet::of(entries.iter().map(|entry| &entry.name))),
            // Made by the first view: every view is missing.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(NameSet::default()),
            // Unreadable, or not a directory: each view's own lookup says
            // what is wrong, as a single attach's does.
            Err(_) => None,
        };
        Ok(Listed {
            endpoints,
            indexed,
            recorded,
            views,
        })
    }

    /// Whether `container` may have a container record.
    pub(crate) fn may_have_record(&self, container: &str) -> bool {
        self.recorded.may_hold(container)
    }

    /// Whether the network may have an endpoint record of id `id`.
    pub(crate) fn may_have_endpoint(&self, id: &str) -> bool {
        self.endpoints.may_hold(id)
    }

    /// Whether `container` may have an index file.
    pub(crate) fn may_have_index(&self, container: &str) -> bool {
        self.indexed.may_hold(container)
    }

    /// Whether something may be at `/etc/netns/NAME` for `container`.
    pub(crate) fn may_have_view(&self, container: &str) -> bool {
        self.views
            .as_ref()
            .map_or(true, |views| views.may_hold(container))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_set_holds_its_names_and_not_others() {
        let set = NameSet::of(["c1", "c2", "web.1", "c1"]);
        for name in ["c1", "c2", "web.1"] {
            assert!(set.may_hold(name), "{name}");
        }
        for name in ["c3", "c", "", "web.10", "C1"] {
            assert!(!set.may_hold(name), "{name}");
        }
        assert_eq!(set.hashes.len(), 3);
        assert!(!NameSet::default().may_hold("c1"));
    }

    #[test]
    fn fnv1a_is_the_published_function() {
        // The reference values of FNV-1a 64.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }
}
