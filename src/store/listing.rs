//! What a listing of records found: the records it could read, and the
//! files it could not, each with why.
//!
//! One damaged file must not hide the others (a boot-time `restore` that
//! stops at the first bad record restores nothing), and must not be
//! mistaken for absence either: a damaged record may be the only trace of
//! a network's addresses or of an endpoint, and the admin's evidence. So
//! a listing carries both, and nothing in the store deletes or rewrites a
//! record it could not read. (Files derived from the records, not synced,
//! are no evidence: see the store's durability rules.)

use std::fmt;
use std::ops::Deref;
use std::path::PathBuf;

use super::StoreError;

/// A state file a listing could not read (not JSON, not a record, a
/// symbolic link, a FIFO, over the size limit, unreadable), left exactly
/// as it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damaged {
    /// The file (or the directory that could not be listed).
    pub path: PathBuf,
    /// Why it could not be read.
    pub reason: String,
}

impl fmt::Display for Damaged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.reason)
    }
}

/// The records a listing read, and the files it could not.
///
/// It derefs to the slice of good records, so code that only shows what
/// is there reads like code over a `Vec`; code whose decision depends on
/// every record (is a name free? does another network share this
/// parent?) must look at [`Listing::damaged`] or call
/// [`Listing::complete`].
///
/// ```
/// use ipvlan::store::{Damaged, Listing};
/// let listing = Listing {
///     items: vec!["a", "b"],
///     damaged: vec![Damaged { path: "networks/x.json".into(), reason: "not JSON".into() }],
/// };
/// assert_eq!(listing.len(), 2);
/// assert_eq!(listing.damaged[0].to_string(), "networks/x.json: not JSON");
/// assert!(listing.complete().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing<T> {
    /// What could be read, in the listing's order.
    pub items: Vec<T>,
    /// What could not, by path.
    pub damaged: Vec<Damaged>,
}

impl<T> Default for Listing<T> {
    fn default() -> Self {
        Listing {
            items: Vec::new(),
            damaged: Vec::new(),
        }
    }
}

impl<T> Listing<T> {
    /// The same damage with each item mapped.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Listing<U> {
        Listing {
            items: self.items.into_iter().map(f).collect(),
            damaged: self.damaged,
        }
    }

    /// The items when nothing is damaged; else the first damaged file as
    /// a [`StoreError::Corrupt`], for decisions that need every record.
    pub fn complete(self) -> Result<Vec<T>, StoreError> {
        match self.damaged.into_iter().next() {
            None => Ok(self.items),
            Some(Damaged { path, reason }) => Err(StoreError::corrupt(path, reason)),
        }
    }

    /// Adds a failed read: kept as damage when it is about one file,
    /// returned otherwise.
    pub(crate) fn note(&mut self, error: StoreError) -> Result<(), StoreError> {
        note_damage(&mut self.damaged, error)
    }
}

/// [`Listing::note`] without the item type, so that one copy serves every
/// listing.
#[inline(never)]
fn note_damage(damaged: &mut Vec<Damaged>, error: StoreError) -> Result<(), StoreError> {
    let reason = match &error {
        StoreError::Corrupt(e) | StoreError::Refused(e) => e.reason.clone(),
        StoreError::Io(e) => format!("{}: {}", e.action, e.source),
        StoreError::InvalidName { .. } | StoreError::Ipam(_) => return Err(error),
    };
    match error {
        StoreError::Io(e) => damaged.push(Damaged {
            path: e.path,
            reason,
        }),
        StoreError::Corrupt(e) | StoreError::Refused(e) => damaged.push(Damaged {
            path: e.path,
            reason,
        }),
        other => return Err(other),
    }
    Ok(())
}

impl<T> Deref for Listing<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.items
    }
}

impl<T> IntoIterator for Listing<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.into_iter()
    }
}

impl<'a, T> IntoIterator for &'a Listing<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.items.iter()
    }
}
