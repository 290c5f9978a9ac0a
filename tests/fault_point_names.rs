//! The fault points the VM tests name (`IPVLAN_FAULT_FORCE`,
//! `IPVLAN_FAULT_PAUSE_AT`, `IPVLAN_FAULT_KILL_AT`) exist in the code. A
//! point renamed or removed is not an error at run time (the hook matches
//! names, and an unknown one is never hit), so a test naming it would go
//! on without the failure, the pause or the kill it asked for, and may
//! still pass on a check too loose to tell (an exit status alone).

use std::collections::BTreeSet;
use std::path::Path;

/// The string literals of every `.rs` file under `dir`, as written
/// (escapes left as they are: point names have none).
fn literals_under(dir: &Path, into: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            literals_under(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            let file = path
                .strip_prefix(env!("CARGO_MANIFEST_DIR"))
                .unwrap_or(&path)
                .display()
                .to_string();
            into.extend(literals(&text).into_iter().map(|l| (file.clone(), l)));
        }
    }
}

/// The plain `"..."` literals of `text` (raw strings and chars are not
/// where point names are written; a `'"'` is passed over).
fn literals(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '\'' if text[at..].starts_with("'\"'") => {
                chars.next();
                chars.next();
            }
            '"' => {
                let mut literal = String::new();
                while let Some((_, c)) = chars.next() {
                    match c {
                        '\\' => {
                            literal.push(c);
                            if let Some((_, escaped)) = chars.next() {
                                literal.push(escaped);
                            }
                        }
                        '"' => break,
                        _ => literal.push(c),
                    }
                }
                found.push(literal);
            }
            _ => {}
        }
    }
    found
}

/// A point's name as the code writes it: `area: what`, lower case.
fn looks_like_a_point(text: &str) -> Option<(&str, &str)> {
    let (area, what) = text.split_once(": ")?;
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || " _".contains(c))
    };
    (plain(area) && plain(what)).then_some((area, what))
}

#[test]
fn every_fault_point_a_test_names_is_in_the_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut code = Vec::new();
    literals_under(&root.join("src"), &mut code);
    let in_code: BTreeSet<&str> = code.iter().map(|(_, l)| l.as_str()).collect();
    // The areas of the points the code marks (`fault::point("store: ...")`
    // and the like): a test's literal in one of them is a point's name.
    let areas: BTreeSet<&str> = code
        .iter()
        .filter_map(|(_, l)| looks_like_a_point(l))
        .map(|(area, _)| area)
        .collect();
    for area in ["netlink", "store", "netns", "etc netns"] {
        assert!(
            areas.contains(area),
            "no point of area {area:?} found in src/"
        );
    }
    let mut tests = Vec::new();
    literals_under(&root.join("tests"), &mut tests);
    let mut named = 0;
    let mut unknown = Vec::new();
    for (file, literal) in &tests {
        // `NAME`, `NAME#K`, or several of them comma-separated.
        for part in literal.split(',') {
            let name = part.trim();
            let name = name.split_once('#').map_or(name, |(name, _)| name);
            let Some((area, _)) = looks_like_a_point(name) else {
                continue;
            };
            if !areas.contains(area) {
                continue;
            }
            named += 1;
            if !in_code.contains(name) {
                unknown.push(format!("{file}: {name:?}"));
            }
        }
    }
    assert!(named > 50, "only {named} point names found in tests/");
    assert!(
        unknown.is_empty(),
        "tests name fault points the code does not have:\n{}",
        unknown.join("\n")
    );
}

#[test]
fn literals_are_read_as_written() {
    let text = r#"let a = "netlink: before request#2"; let q = '"'; f("x\"y", "area: b")"#;
    assert_eq!(
        literals(text),
        ["netlink: before request#2", "x\\\"y", "area: b"]
    );
}
