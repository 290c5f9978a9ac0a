//! The README's "Where we differ from the reference" list against the
//! table of `tests/cni_vm_conformance.rs` (a VM test; this reads its
//! source): every reason the table gives has a bullet listing exactly the
//! cases that give it, and the README lists no case the table does not.

use std::collections::{BTreeMap, BTreeSet};

const TABLE: &str = include_str!("cni_vm_conformance.rs");
const README: &str = include_str!("../README.md");

/// Reason constant -> the cases whose `differs` rows name it.
fn reasons_in_table() -> BTreeMap<String, BTreeSet<u32>> {
    let names: Vec<&str> = TABLE
        .lines()
        .filter_map(|l| l.strip_prefix("const "))
        .filter_map(|l| l.split_once(": &str"))
        .map(|(name, _)| name)
        .filter(|name| {
            name.chars()
                .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
        })
        .collect();
    let mut found: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    // Each case starts `case(` with its id on the next line (rustfmt's
    // layout of the table).
    for chunk in TABLE.split("        case(\n").skip(1) {
        let id: u32 = chunk
            .lines()
            .next()
            .and_then(|l| l.trim().trim_end_matches(',').parse().ok())
            .expect("a case id after `case(`");
        let body = chunk.split("\n        ),\n").next().unwrap();
        let Some(expect) = body.split("differs(").nth(1) else {
            continue;
        };
        for name in &names {
            let used = expect
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|word| word == *name);
            if used {
                found.entry(name.to_string()).or_default().insert(id);
            }
        }
    }
    found
}

/// The case lists of the README section's bullets: `(case N)` or
/// `(cases N, M)`.
fn bullets_in_readme() -> Vec<BTreeSet<u32>> {
    let section = README
        .split("### Where we differ from the reference, and why")
        .nth(1)
        .expect("the README's section")
        .split("\n#")
        .next()
        .unwrap();
    let mut lists = Vec::new();
    for part in section.split("(case").skip(1) {
        let inside = part.trim_start_matches('s').split(')').next().unwrap();
        let ids: BTreeSet<u32> = inside
            .split(',')
            .map(|n| n.trim().parse().expect("a case number"))
            .collect();
        lists.push(ids);
    }
    lists
}

#[test]
fn every_reason_of_the_table_is_a_readme_bullet_with_its_cases() {
    let table = reasons_in_table();
    assert!(table.len() >= 5, "reasons found: {table:?}");
    let readme = bullets_in_readme();
    for (reason, cases) in &table {
        assert!(
            readme.contains(cases),
            "no README bullet lists exactly cases {cases:?} (reason {reason}); bullets list {readme:?}"
        );
    }
    let in_table: BTreeSet<u32> = table.values().flatten().copied().collect();
    let in_readme: BTreeSet<u32> = readme.iter().flatten().copied().collect();
    assert_eq!(in_readme, in_table, "cases the README and the table list");
}
