//! Stable sorting that shares one copy of the standard library's sort.
//!
//! `slice::sort_by` is generic: every element type and comparator gets its
//! own copy of the standard stable sort (4 to 5 KiB each in the release
//! binary, which must stay under 1 MiB). The lists sorted here are short
//! (records, names, help rows), so they share one copy: the sort orders
//! indices through a `dyn` comparator, then the elements are swapped into
//! that order.

use std::cmp::Ordering;

/// Sorts `items` by `compare`, keeping equal elements in their order (what
/// `slice::sort_by` does).
///
/// ```
/// let mut words = vec!["b", "a", "B"];
/// ipvlan::order::sort_by(&mut words, |x, y| x.to_lowercase().cmp(&y.to_lowercase()));
/// assert_eq!(words, ["a", "b", "B"]);
/// ```
pub fn sort_by<T>(items: &mut [T], compare: impl Fn(&T, &T) -> Ordering) {
    // The sort hands over indices below `items.len()` only: `get` never
    // misses, and, unlike indexing, keeps no panic path in every copy.
    let order = stable_order(items.len(), &|a, b| match (items.get(a), items.get(b)) {
        (Some(x), Some(y)) => compare(x, y),
        _ => Ordering::Equal,
    });
    crate::sys::permute(items, order);
}

/// Sorts `items` in their natural order, keeping equal elements in their
/// order (what `slice::sort` does).
pub fn sort<T: Ord>(items: &mut [T]) {
    sort_by(items, T::cmp);
}

/// The stable sorted order of `len` elements: index `k` of the result is the
/// index of the element that belongs at `k`. Not generic, so it is the one
/// copy of the standard sort.
#[inline(never)]
fn stable_order(len: usize, compare: &dyn Fn(usize, usize) -> Ordering) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.sort_by(|&a, &b| compare(a, b));
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every permutation of a few elements with repeated keys sorts as the
    /// standard stable sort does (equal keys keep their order).
    #[test]
    fn matches_the_standard_stable_sort() {
        let keys = [3u8, 1, 2, 1, 3, 0, 2];
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..500 {
            let len = (rng % 8) as usize;
            let mut items: Vec<(u8, usize)> = (0..len)
                .map(|i| {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    (keys[(rng % keys.len() as u64) as usize], i)
                })
                .collect();
            let mut expected = items.clone();
            expected.sort_by_key(|a| a.0);
            sort_by(&mut items, |a, b| a.0.cmp(&b.0));
            assert_eq!(items, expected);
        }
    }

    #[test]
    fn sorts_owned_values_without_cloning() {
        let mut names: Vec<String> = ["c", "a", "b", "a"].map(String::from).to_vec();
        sort(&mut names);
        assert_eq!(names, ["a", "a", "b", "c"]);
        let mut empty: Vec<String> = Vec::new();
        sort(&mut empty);
        assert!(empty.is_empty());
    }
}
