//! `cargo xtask layers`: no circle of files under src/ that use each other, and
//! no file that uses a higher layer than its own (the `# Layers` list of the
//! crate docs in src/lib.rs).
//!
//! No parser: a light tokenizer drops comments, literals and `#[cfg(test)]`
//! items; `use` trees and paths through `crate`, `super`, `self`, a child
//! module or an imported name are resolved to the file that defines the item,
//! following imports, so a parent module's re-exports make no edge of their
//! own. A `pub use` counts for the layer check but is no link of a cycle.
//! Not seen: method calls, `macro_rules!` macros (textual scope), `#[path]`.

use crate::Result;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type ModPath = Vec<String>;

#[derive(Clone, Debug)]
struct Token {
    text: String,
    line: usize,
}

/// One file under src/, its top-level names and its references (absolute paths).
struct File {
    path: String,
    module: ModPath,
    defs: BTreeSet<String>,
    /// Top-level imports by bound name; None: from another crate.
    imports: BTreeMap<String, Option<ModPath>>,
    globs: Vec<ModPath>,
    refs: Vec<Ref>,
    idents: BTreeSet<String>,
    test_mods: Vec<String>,
}

/// A path this file names, from the crate root.
struct Ref {
    path: ModPath,
    line: usize,
    reexport: bool,
    glob: bool,
}

/// What `cargo xtask layers` found.
struct Report {
    files: usize,
    uses: usize,
    #[allow(dead_code)] // read by the tests
    edges: BTreeSet<(String, String)>,
    cycles: Vec<String>,
    upward: Vec<String>,
}

/// The files of src/ with their modules, and the layers of the top-level modules.
struct Crate {
    files: Vec<File>,
    by_module: BTreeMap<ModPath, usize>,
    layers: BTreeMap<String, usize>,
}

/// (from, to) -> (line, through a `pub use`): the uses of one file by another.
type Edges = BTreeMap<(usize, usize), BTreeSet<(usize, bool)>>;

/// Where a path leads.
enum Found {
    /// The file that defines the item (or the module the path names).
    Def(usize),
    /// Not found in the module that should hold it: that module's file.
    Unknown(usize),
    /// From another crate.
    Outside,
}

pub fn run(args: &[String]) -> Result {
    if !args.is_empty() {
        return Err("usage: cargo xtask layers".into());
    }
    let report = check(&crate::util::workspace_root().join("src"))?;
    for problem in report.cycles.iter().chain(&report.upward) {
        println!("{problem}");
    }
    let (files, uses) = (report.files, report.uses);
    if report.cycles.is_empty() && report.upward.is_empty() {
        println!("layers: {files} files, {uses} uses, no cycle, no upward use");
        return Ok(());
    }
    let (c, u) = (report.cycles.len(), report.upward.len());
    Err(format!("{files} files, {uses} uses: {c} cycle(s), {u} upward use(s)").into())
}

fn check(src: &Path) -> Result<Report> {
    let krate = load(src)?;
    let files = &krate.files;
    let edges = krate.edges();
    let layer = |f: usize| {
        files[f]
            .module
            .first()
            .map_or(usize::MAX, |m| krate.layers[m])
    };
    let label = |f: usize| match files[f].module.first() {
        Some(m) => format!("{m} is layer {}", krate.layers[m]),
        None => "the crate root is above all".into(),
    };
    let mut upward = Vec::new();
    for (&(from, to), lines) in edges.iter().filter(|(&(a, b), _)| layer(b) > layer(a)) {
        let lines: Vec<String> = lines.iter().map(|(l, _)| l.to_string()).collect();
        let (a, b) = (&files[from].path, &files[to].path);
        let why = format!("{}, {}", label(from), label(to));
        upward.push(format!(
            "upward use: {a}:{} uses {b} ({why})",
            lines.join(",")
        ));
    }
    Ok(Report {
        files: files.len(),
        uses: edges.values().map(BTreeSet::len).sum(),
        edges: edges
            .keys()
            .map(|&(a, b)| (files[a].path.clone(), files[b].path.clone()))
            .collect(),
        cycles: cycles(files, &edges),
        upward,
    })
}

/// Reads src/: the layers, every file (but test-only ones) and its references.
fn load(src: &Path) -> Result<Crate> {
    let lib =
        std::fs::read_to_string(src.join("lib.rs")).map_err(|e| format!("src/lib.rs: {e}"))?;
    let layers = parse_layers(&lib)?;
    let mut sources = Vec::new();
    walk(src, "", &mut sources)?;
    sources.sort();
    let modules: BTreeSet<ModPath> = sources.iter().map(|(_, m)| m.clone()).collect();
    let mut files = Vec::new();
    for (rel, module) in sources {
        let text =
            std::fs::read_to_string(src.join(&rel)).map_err(|e| format!("src/{rel}: {e}"))?;
        files.push(parse(format!("src/{rel}"), module, &text, &modules));
    }
    let test_only: Vec<ModPath> = files
        .iter()
        .flat_map(|f| {
            f.test_mods
                .iter()
                .map(|m| [&f.module[..], std::slice::from_ref(m)].concat())
        })
        .collect();
    files.retain(|f| !test_only.iter().any(|t| f.module.starts_with(t)));
    let by_module: BTreeMap<ModPath, usize> = files
        .iter()
        .enumerate()
        .map(|(k, f)| (f.module.clone(), k))
        .collect();
    if let Some(name) = layers
        .keys()
        .find(|&m| !by_module.contains_key(std::slice::from_ref(m)))
    {
        return Err(format!("src/lib.rs: `# Layers` names `{name}`, which is no module").into());
    }
    if let Some(top) = by_module
        .keys()
        .filter_map(|m| m.first())
        .find(|&m| !layers.contains_key(m))
    {
        return Err(format!("src/lib.rs: module `{top}` is in no `# Layers` item").into());
    }
    Ok(Crate {
        files,
        by_module,
        layers,
    })
}

/// The shortest cycle through each plain use that is on one (a `pub use` is
/// no link), each cycle once, with the first line of each use.
fn cycles(files: &[File], edges: &Edges) -> Vec<String> {
    let mut adj = vec![BTreeSet::new(); files.len()];
    let mut first_line = BTreeMap::new();
    for (&(from, to), lines) in edges {
        if let Some(&(line, _)) = lines.iter().find(|(_, reexport)| !reexport) {
            adj[from].insert(to);
            first_line.insert((from, to), line);
        }
    }
    let (mut seen, mut cycles) = (BTreeSet::new(), Vec::new());
    for &(from, to) in first_line.keys() {
        let parent = bfs(&adj, to);
        if parent[from].is_none() {
            continue;
        }
        // to -> ... -> from (-> to), turned to start at its first file
        let mut cycle = vec![from];
        while let Some(p) = parent[cycle[cycle.len() - 1]].filter(|_| cycle[cycle.len() - 1] != to)
        {
            cycle.push(p);
        }
        cycle.reverse();
        let first = (0..cycle.len()).min_by_key(|&k| cycle[k]).unwrap_or(0);
        cycle.rotate_left(first);
        let mut text = String::from("cycle:");
        for (k, &a) in cycle.iter().enumerate() {
            let b = cycle[(k + 1) % cycle.len()];
            text.push_str(&format!(" {}:{} ->", files[a].path, first_line[&(a, b)]));
        }
        if seen.insert(cycle.clone()) {
            cycles.push(format!("{text} {}", files[cycle[0]].path));
        }
    }
    cycles.sort();
    cycles
}

/// Breadth-first from `start`: each file reached, with its predecessor (`start` its own).
fn bfs(adj: &[BTreeSet<usize>], start: usize) -> Vec<Option<usize>> {
    let mut parent = vec![None; adj.len()];
    parent[start] = Some(start);
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for &w in &adj[v] {
            if parent[w].is_none() {
                parent[w] = Some(v);
                queue.push_back(w);
            }
        }
    }
    parent
}

/// The .rs files under `dir` (but src/main.rs and src/bin/) with their module paths.
fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, ModPath)>) -> Result {
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if entry.file_type()?.is_dir() {
            if rel != "bin" {
                walk(&entry.path(), &rel, out)?;
            }
        } else if let Some(stem) = rel.strip_suffix(".rs").filter(|&s| s != "main") {
            let mut module: ModPath = stem.split('/').map(String::from).collect();
            if stem == "lib" || module.last().is_some_and(|m| m == "mod") {
                module.pop();
            }
            out.push((rel.clone(), module));
        }
    }
    Ok(())
}

/// Top-level module -> layer (1 = bottom), from the `# Layers` list of the crate docs.
fn parse_layers(lib_rs: &str) -> Result<BTreeMap<String, usize>> {
    let docs: Vec<&str> = lib_rs
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("//!"))
        .map(|l| l.strip_prefix(' ').unwrap_or(l))
        .collect();
    let start = docs
        .iter()
        .position(|l| l.trim() == "# Layers")
        .ok_or("src/lib.rs: the crate docs have no `# Layers` section")?;
    let mut items: Vec<String> = Vec::new();
    let mut open = false;
    for line in &docs[start + 1..] {
        let trimmed = line.trim_start();
        let digits = trimmed.chars().take_while(char::is_ascii_digit).count();
        if line.starts_with('#') {
            break;
        } else if digits > 0 && trimmed[digits..].starts_with(". ") {
            items.push(trimmed[digits + 2..].to_string());
            open = true;
        } else if open && line.starts_with(' ') {
            let item = items.last_mut().expect("open item");
            item.push(' ');
            item.push_str(trimmed);
        } else if !trimmed.is_empty() {
            open = false;
        }
    }
    let mut layers = BTreeMap::new();
    for (k, item) in items.iter().enumerate() {
        let names = item_modules(item);
        if names.is_empty() {
            return Err(format!(
                "src/lib.rs: layer {} names no `module` before its `:`",
                k + 1
            )
            .into());
        }
        for name in names {
            if layers.insert(name.clone(), k + 1).is_some() {
                return Err(format!("src/lib.rs: `{name}` is in two layers").into());
            }
        }
    }
    if layers.is_empty() {
        return Err("src/lib.rs: `# Layers` has no numbered list".into());
    }
    Ok(layers)
}

/// The backticked names before an item's first `:` (link targets `(...)` skipped).
fn item_modules(item: &str) -> Vec<String> {
    let (mut names, mut depth, mut code) = (Vec::new(), 0, None::<String>);
    for ch in item.chars() {
        if let Some(name) = code.as_mut() {
            if ch != '`' {
                name.push(ch);
            } else if let Some(name) = code.take().filter(|_| depth == 0) {
                names.push(name);
            }
            continue;
        }
        match ch {
            '`' => code = Some(String::new()),
            '(' => depth += 1,
            ')' => depth -= 1,
            ':' if depth == 0 => break,
            _ => {}
        }
    }
    names
}

/// Identifiers and punctuation with their lines; comments, string, char and
/// number literals dropped (a lifetime's quote too).
fn tokenize(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let (mut i, mut line, mut out) = (0, 1, Vec::new());
    while i < c.len() {
        match c[i] {
            '\n' => (line, i) = (line + 1, i + 1),
            ch if ch.is_whitespace() => i += 1,
            '/' if at(i + 1) == '/' => {
                i = c[i..]
                    .iter()
                    .position(|&ch| ch == '\n')
                    .map_or(c.len(), |n| i + n)
            }
            '/' if at(i + 1) == '*' => {
                let mut depth = 0;
                while i < c.len() {
                    let pair = (c[i], at(i + 1));
                    i += if pair == ('/', '*') || pair == ('*', '/') {
                        2
                    } else {
                        1
                    };
                    match pair {
                        ('/', '*') => depth += 1,
                        ('*', '/') if depth == 1 => break,
                        ('*', '/') => depth -= 1,
                        ('\n', _) => line += 1,
                        _ => {}
                    }
                }
            }
            '"' => i = skip_quoted(&c, i, &mut line),
            '\'' if at(i + 1) == '\\' || at(i + 2) == '\'' => i = skip_quoted(&c, i, &mut line),
            ch if ch.is_ascii_digit() => {
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
            }
            ch if ch.is_alphabetic() || ch == '_' => {
                let start = i;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                let word: String = c[start..i].iter().collect();
                let raw = matches!(word.as_str(), "r" | "br" | "cr")
                    .then(|| skip_raw(&c, i, &mut line))
                    .flatten();
                match (raw, word.as_str(), at(i)) {
                    (Some(end), ..) => i = end,
                    (None, "b" | "c", '"') | (None, "b", '\'') => i = skip_quoted(&c, i, &mut line),
                    _ => out.push(Token { text: word, line }),
                }
            }
            '\'' => {
                // a lifetime or a label
                i += 1;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
            }
            ch => {
                out.push(Token {
                    text: ch.to_string(),
                    line,
                });
                i += 1;
            }
        }
    }
    out
}

/// From an opening quote at `i`, the index after the closing one.
fn skip_quoted(c: &[char], mut i: usize, line: &mut usize) -> usize {
    let quote = c[i];
    i += 1;
    while i < c.len() && c[i] != quote {
        i += if c[i] == '\\' { 2 } else { 1 };
        *line += c[i - 1..i.min(c.len())]
            .iter()
            .filter(|&&ch| ch == '\n')
            .count();
    }
    i + 1
}

/// From a raw string's hashes or quote at `i`, the index after its end (None: `r#ident`).
fn skip_raw(c: &[char], i: usize, line: &mut usize) -> Option<usize> {
    let hashes = c[i..].iter().take_while(|&&ch| ch == '#').count();
    if c.get(i + hashes) != Some(&'"') {
        return None;
    }
    let closes = |j: usize| {
        c[j] == '"'
            && c.get(j + 1..j + 1 + hashes)
                .is_some_and(|h| h.iter().all(|&ch| ch == '#'))
    };
    let mut j = i + hashes + 1;
    while j < c.len() && !closes(j) {
        *line += usize::from(c[j] == '\n');
        j += 1;
    }
    Some(j + 1 + hashes)
}

fn text(toks: &[Token], i: usize) -> &str {
    toks.get(i).map_or("", |t| t.text.as_str())
}

fn is_ident(word: &str) -> bool {
    word.starts_with(|c: char| c.is_alphabetic() || c == '_')
}

/// Drops `#[cfg(test)]` items; returns the rest and the names of `#[cfg(test)] mod name;`.
fn strip_tests(toks: Vec<Token>) -> (Vec<Token>, Vec<String>) {
    const CFG_TEST: [&str; 7] = ["#", "[", "cfg", "(", "test", ")", "]"];
    let (mut out, mut test_mods, mut i) = (Vec::new(), Vec::new(), 0);
    while i < toks.len() {
        if !(0..7).all(|k| text(&toks, i + k) == CFG_TEST[k]) {
            out.push(toks[i].clone());
            i += 1;
            continue;
        }
        i += 7;
        let mut depth = 0;
        while i < toks.len() {
            i += 1;
            match text(&toks, i - 1) {
                "(" | "[" | "{" => depth += 1,
                ")" | "]" => depth -= 1,
                "}" if depth == 1 => break,
                "}" => depth -= 1,
                ";" if depth == 0 => break,
                _ => {}
            }
        }
        if text(&toks, i - 3) == "mod" && text(&toks, i - 1) == ";" {
            test_mods.push(text(&toks, i - 2).to_string());
        }
    }
    (out, test_mods)
}

/// Flattens the use tree at `toks[*i]` into (path, bound name or None for a glob, line).
fn use_tree(
    toks: &[Token],
    i: &mut usize,
    prefix: &mut ModPath,
    out: &mut Vec<(ModPath, Option<String>, usize)>,
) {
    let base = prefix.len();
    while let Some(tok) = toks.get(*i) {
        *i += 1;
        match tok.text.as_str() {
            ":" => {}
            "{" => {
                while !matches!(text(toks, *i), "}" | "") {
                    let before = *i;
                    use_tree(toks, i, prefix, out);
                    if text(toks, *i) == "," {
                        *i += 1;
                    } else if *i == before {
                        break;
                    }
                }
                *i += 1;
                break;
            }
            "*" => {
                out.push((prefix.clone(), None, tok.line));
                break;
            }
            word if is_ident(word) => {
                prefix.push(word.to_string());
                if text(toks, *i) == ":" {
                    continue;
                }
                if word == "self" {
                    prefix.pop();
                }
                let mut name = prefix.last().cloned().unwrap_or_default();
                if text(toks, *i) == "as" {
                    name = text(toks, *i + 1).to_string();
                    *i += 2;
                }
                out.push((prefix.clone(), Some(name), toks[*i - 1].line));
                break;
            }
            _ => {
                *i -= 1;
                break;
            }
        }
    }
    prefix.truncate(base);
}

/// The path from the crate root, or None if it starts in another crate or at a local name.
fn absolute(
    module: &[String],
    path: &[String],
    modules: &BTreeSet<ModPath>,
    aliases: &BTreeMap<String, Option<ModPath>>,
) -> Option<ModPath> {
    let (first, mut rest) = path.split_first()?;
    let mut base = match first.as_str() {
        "crate" => Vec::new(),
        "self" => module.to_vec(),
        "super" => module.split_last()?.1.to_vec(),
        _ => {
            let child = [module, &path[..1]].concat();
            if modules.contains(&child) {
                return Some([module, path].concat());
            }
            return aliases
                .get(first)
                .cloned()
                .flatten()
                .map(|a| [&a[..], rest].concat());
        }
    };
    while let Some(("super", more)) = rest.split_first().map(|(s, m)| (s.as_str(), m)) {
        base.pop()?;
        rest = more;
    }
    base.extend(rest.iter().cloned());
    Some(base)
}

fn parse(path: String, module: ModPath, src: &str, modules: &BTreeSet<ModPath>) -> File {
    let (toks, test_mods) = strip_tests(tokenize(src));
    let none = BTreeMap::new();
    let mut file = File {
        path,
        module,
        defs: BTreeSet::new(),
        imports: BTreeMap::new(),
        globs: Vec::new(),
        refs: Vec::new(),
        idents: toks
            .iter()
            .filter(|t| is_ident(&t.text))
            .map(|t| t.text.clone())
            .collect(),
        test_mods,
    };
    let mut aliases = BTreeMap::new(); // every import, also those in function bodies
    let mut code = Vec::new();
    let (mut i, mut depth) = (0, 0);
    while i < toks.len() {
        let t = |k: usize| text(&toks, k);
        match t(i) {
            "{" => depth += 1,
            "}" => depth -= 1,
            "use" => {
                let prev = if t(i.wrapping_sub(1)) == ")" {
                    (0..i).rev().find(|&k| t(k) == "(").unwrap_or(0)
                } else {
                    i
                };
                let reexport = t(prev.wrapping_sub(1)) == "pub";
                let mut leaves = Vec::new();
                i += 1;
                use_tree(&toks, &mut i, &mut Vec::new(), &mut leaves);
                for (raw, name, line) in leaves {
                    let abs = absolute(&file.module, &raw, modules, &none);
                    match &name {
                        Some(name) if depth == 0 => {
                            file.imports.insert(name.clone(), abs.clone());
                        }
                        None if depth == 0 => file.globs.extend(abs.clone()),
                        _ => {}
                    }
                    if let Some(name) = &name {
                        aliases.insert(name.clone(), abs.clone());
                    }
                    if let Some(path) = abs {
                        file.refs.push(Ref {
                            path,
                            line,
                            reexport,
                            glob: name.is_none(),
                        });
                    }
                }
                continue;
            }
            "fn" | "struct" | "enum" | "trait" | "type" | "union" | "mod" | "const" | "static"
                if depth == 0 =>
            {
                let name = if t(i + 1) == "mut" {
                    t(i + 2)
                } else {
                    t(i + 1)
                };
                if is_ident(name) && !["fn", "unsafe", "async", "extern", "_"].contains(&name) {
                    file.defs.insert(name.to_string());
                }
            }
            "macro_rules" if t(i + 1) == "!" => {
                file.defs.insert(t(i + 2).to_string());
            }
            word if is_ident(word)
                && t(i + 1) == ":"
                && t(i + 2) == ":"
                && !(t(i.wrapping_sub(1)) == ":" && t(i.wrapping_sub(2)) == ":")
                && !(t(i.wrapping_sub(1)) == "in" && t(i.wrapping_sub(2)) == "(") =>
            {
                let mut segs = vec![word.to_string()];
                let line = toks[i].line;
                while t(i + 1) == ":" && t(i + 2) == ":" && is_ident(t(i + 3)) {
                    segs.push(t(i + 3).to_string());
                    i += 3;
                }
                code.push((segs, line));
            }
            _ => {}
        }
        i += 1;
    }
    for (segs, line) in code {
        if let Some(path) = absolute(&file.module, &segs, modules, &aliases) {
            file.refs.push(Ref {
                path,
                line,
                reexport: false,
                glob: false,
            });
        }
    }
    file
}

impl Crate {
    fn edges(&self) -> Edges {
        let mut edges = Edges::new();
        for (from, file) in self.files.iter().enumerate() {
            for r in &file.refs {
                let mut targets = Vec::new();
                if r.glob {
                    for ident in &file.idents {
                        let path = [&r.path[..], std::slice::from_ref(ident)].concat();
                        if let Found::Def(to) = self.resolve(&path, 0) {
                            targets.push(to);
                        }
                    }
                } else if !self.by_module.contains_key(&r.path) {
                    // (a path naming a whole module is an alias; its uses count)
                    if let Found::Def(to) | Found::Unknown(to) = self.resolve(&r.path, 0) {
                        targets.push(to);
                    }
                }
                for to in targets.into_iter().filter(|&to| to != from) {
                    edges
                        .entry((from, to))
                        .or_default()
                        .insert((r.line, r.reexport));
                }
            }
        }
        edges
    }

    /// The file that defines the item at an absolute path, through imports.
    fn resolve(&self, path: &[String], hops: usize) -> Found {
        let mut module = Vec::new();
        for (k, seg) in path.iter().enumerate() {
            module.push(seg.clone());
            if self.by_module.contains_key(&module) {
                continue;
            }
            module.pop();
            let Some(&file) = self.by_module.get(&module) else {
                return Found::Outside;
            };
            let f = &self.files[file];
            if f.defs.contains(seg) || hops > 16 {
                return Found::Def(file);
            }
            if let Some(target) = f.imports.get(seg) {
                return match target {
                    Some(target) => self.resolve(&[&target[..], &path[k + 1..]].concat(), hops + 1),
                    None => Found::Outside,
                };
            }
            for glob in &f.globs {
                if let found @ (Found::Def(_) | Found::Outside) =
                    self.resolve(&[&glob[..], &path[k..]].concat(), hops + 1)
                {
                    return found;
                }
            }
            return Found::Unknown(file);
        }
        self.by_module
            .get(&module)
            .map_or(Found::Outside, |&f| Found::Def(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(toks: &[Token]) -> Vec<&str> {
        toks.iter().map(|t| t.text.as_str()).collect()
    }

    /// Runs the check on a crate written to a temporary directory.
    fn check_crate(name: &str, files: &[(&str, &str)]) -> Result<Report> {
        let dir = std::env::temp_dir().join(format!("xtask-layers-{}-{name}", std::process::id()));
        for (path, text) in files {
            let path = dir.join("src").join(path);
            std::fs::create_dir_all(path.parent().unwrap())?;
            std::fs::write(path, text)?;
        }
        let report = check(&dir.join("src"));
        std::fs::remove_dir_all(&dir)?;
        report
    }

    const LIB: &str = "//! Intro.\n//!\n//! # Layers\n//!\n\
        //! 1. [`low`]: below.\n//! 2. [`high`](crate::high): above.\npub mod high;\npub mod low;\n";

    #[test]
    fn tokenizer_skips_comments_and_literals() {
        let src = "a // b::c\n/* d /* e */ f */ g \"h \\\" i\" r#\"j \" k\"# 'l' '\\'' b'm' \
            x<'n> br\"o\" \"p\nq\"\ny::z";
        let toks = tokenize(src);
        assert_eq!(texts(&toks), ["a", "g", "x", "<", ">", "y", ":", ":", "z"]);
        assert_eq!(toks.last().unwrap().line, 4);
    }

    #[test]
    fn cfg_test_items_are_dropped() {
        let src = "use a::b;\n#[cfg(test)]\nmod tests {\n use super::*;\n}\n\
            #[cfg(test)]\nmod more;\nfn c() {}\n";
        let (toks, test_mods) = strip_tests(tokenize(src));
        assert_eq!(texts(&toks).concat(), "usea::b;fnc(){}");
        assert_eq!(test_mods, ["more"]);
    }

    #[test]
    fn use_trees_are_flattened() {
        let toks = tokenize("super::{self, a::{B, C as D}, e::*};");
        let mut leaves = Vec::new();
        use_tree(&toks, &mut 0, &mut Vec::new(), &mut leaves);
        let leaves: Vec<(String, Option<String>)> = leaves
            .into_iter()
            .map(|(p, name, _)| (p.join("::"), name))
            .collect();
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            leaves,
            [
                ("super".into(), some("super")),
                ("super::a::B".into(), some("B")),
                ("super::a::C".into(), some("D")),
                ("super::e".into(), None),
            ]
        );
    }

    #[test]
    fn uses_resolve_through_reexports_to_the_defining_file() {
        let report = check_crate(
            "reexports",
            &[
                ("lib.rs", LIB),
                ("low/mod.rs", "mod error;\nmod user;\npub use error::Error;\npub struct Local;\n#[cfg(test)]\nmod tests;\n"),
                ("low/error.rs", "/// Uses [`crate::high`].\npub struct Error(super::Local);\n"),
                ("low/user.rs", "use super::{Error, Local};\n"),
                ("low/tests.rs", "use crate::high::f;\n"),
                ("high.rs", "use crate::low;\npub fn f() -> low::Error { todo!(\"crate::low::Local\") }\n"),
            ],
        )
        .unwrap();
        let edges: Vec<String> = report
            .edges
            .iter()
            .map(|(a, b)| format!("{a} -> {b}"))
            .collect();
        assert_eq!(
            edges,
            [
                "src/high.rs -> src/low/error.rs",
                "src/low/error.rs -> src/low/mod.rs",
                "src/low/mod.rs -> src/low/error.rs", // the re-export: no cycle
                "src/low/user.rs -> src/low/error.rs",
                "src/low/user.rs -> src/low/mod.rs",
            ]
        );
        assert!(report.cycles.is_empty() && report.upward.is_empty());
        assert_eq!((report.files, report.uses), (5, 5));
    }

    #[test]
    fn cycles_and_upward_uses_are_reported() {
        let report = check_crate(
            "cycle",
            &[
                ("lib.rs", LIB),
                (
                    "low.rs",
                    "pub fn a() {\n    crate::high::b()\n}\npub fn c() {}\n",
                ),
                ("high.rs", "use crate::low::c;\npub fn b() { c() }\n"),
            ],
        )
        .unwrap();
        assert_eq!(
            report.cycles,
            ["cycle: src/high.rs:1 -> src/low.rs:2 -> src/high.rs"]
        );
        assert_eq!(
            report.upward,
            ["upward use: src/low.rs:2 uses src/high.rs (low is layer 1, high is layer 2)"]
        );
    }

    #[test]
    fn the_layer_list_is_parsed_and_checked() {
        let layers = parse_layers(
            "//! Intro.\n//!\n//! # Layers\n//!\n//! Bottom up:\n//!\n\
             //! 1. [`sys`], [`json`]: the base: no `x` here.\n\
             //! 2. [`net`](crate::net) and\n//!    `more`: transport.\n//!\n\
             //! # Next\n//!\n//! 3. [`cli`]: another list.\n",
        )
        .unwrap();
        let expected = [("json", 1), ("more", 2), ("net", 2), ("sys", 1)];
        assert_eq!(layers, expected.map(|(m, l)| (m.to_string(), l)).into());
        assert!(parse_layers("//! No section.\n").is_err());
        let unlisted = check_crate(
            "unlisted",
            &[
                ("lib.rs", LIB),
                ("low.rs", ""),
                ("high.rs", ""),
                ("x.rs", ""),
            ],
        );
        assert!(unlisted.err().unwrap().to_string().contains("`x` is in no"));
        let missing = check_crate("missing", &[("lib.rs", LIB), ("low.rs", "")]);
        assert!(missing
            .err()
            .unwrap()
            .to_string()
            .contains("`high`, which is no module"));
    }
}
