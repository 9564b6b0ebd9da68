//! The dependency check of the collector's top-level modules (`api`, `web`, `cli`, `domain`,
//! `store`, ...): reads `src/`, collects every `crate::X` and `super::…::X` path that leaves a
//! module, and fails on a dependency cycle between two modules and on an edge the layering
//! forbids (`web`/`cli` → `api`, `api` → `web`, `domain` → any front end, ...).
//!
//! How: each top-level module is `src/X.rs` or `src/X/` (every `.rs` file below it); comments are
//! dropped; a path counts when it starts at the crate root (`crate::`, `$crate::`, or as many
//! `super::` as the file is deep), including each item of a `crate::{a, b::c}` group. Edges are
//! closed transitively; two modules that reach each other are in a cycle. `src/bin/` holds
//! separate binaries and `lib.rs` is the composition root (it may name every module), so
//! neither is a node.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Cycles that existed before this check, each as its sorted set of modules. The check fails when
/// one changes or disappears too, so this list only shrinks: delete an entry once it is broken.
/// Empty: the last one (`fleet → store → import → fleet`) went when the import records moved
/// into `store::records` (the store defines what it can import; `import` only parses files).
const KNOWN_CYCLES: &[&[&str]] = &[];

/// Edges the layering forbids: (from, to, why).
const FORBIDDEN: &[(&str, &str, &str)] = &[
    (
        "web",
        "api",
        "the console shares rules with the API through `domain`",
    ),
    (
        "cli",
        "api",
        "the CLI shares rules with the API through `domain`",
    ),
    (
        "api",
        "web",
        "`lib.rs` merges the console's routes into the API router",
    ),
    ("api", "cli", "the API does not run commands"),
    ("web", "cli", "the console does not run commands"),
    ("domain", "api", "the domain layer knows no transport"),
    ("domain", "web", "the domain layer knows no transport"),
    ("domain", "cli", "the domain layer knows no transport"),
    ("store", "api", "storage knows no transport"),
    ("store", "web", "storage knows no transport"),
    ("store", "cli", "storage knows no transport"),
    (
        "store",
        "domain",
        "the domain layer is built on the store, not the reverse",
    ),
];

/// Where a module first names another: file and line.
type Edges = BTreeMap<(String, String), String>;

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The text without `//` and `/* */` comments (string literals are not parsed: a `//` inside
/// one only hides the rest of its line).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("//") {
            let end = after.find('\n').unwrap_or(after.len());
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix("/*") {
            let end = after.find("*/").map_or(after.len(), |e| e + 2);
            // Keep the line count, so reported lines stay right.
            out.extend(after[..end].chars().filter(|&c| c == '\n'));
            rest = &after[end..];
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The first identifier of each item of a `{...}` group (nested groups belong to their item).
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0usize;
    let mut at_item_start = true;
    let mut chars = group.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' => depth += 1,
            '}' => {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            }
            ',' if depth == 0 => at_item_start = true,
            c if at_item_start && depth == 0 && is_ident(c) => {
                let mut end = i + c.len_utf8();
                while let Some(&(j, d)) = chars.peek() {
                    if !is_ident(d) {
                        break;
                    }
                    end = j + d.len_utf8();
                    chars.next();
                }
                heads.push(group[i..end].to_owned());
                at_item_start = false;
            }
            _ => {}
        }
    }
    heads
}

/// The crate-level names a file's code refers to (`crate::X`, `super::…::X` reaching the root),
/// with the line of each. `depth` is how many `super` reach the crate root from this file.
fn crate_refs(text: &str, depth: usize) -> Vec<(String, usize)> {
    let code = strip_comments(text);
    let mut refs = Vec::new();
    let mut i = 0;
    while i < code.len() {
        let rest = &code[i..];
        let before = code[..i].chars().next_back();
        let starts_path = !before.is_some_and(|b| is_ident(b) || b == ':');
        let root_len = if !starts_path {
            None
        } else if rest.starts_with("crate::") {
            Some("crate::".len())
        } else if rest.starts_with("super::") {
            let mut n = 0;
            let mut len = 0;
            while rest[len..].starts_with("super::") {
                n += 1;
                len += "super::".len();
            }
            (n >= depth).then_some(len)
        } else {
            None
        };
        let Some(len) = root_len else {
            i += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        let line = code[..i].matches('\n').count() + 1;
        let tail = rest[len..].trim_start();
        if let Some(group) = tail.strip_prefix('{') {
            refs.extend(group_heads(group).into_iter().map(|h| (h, line)));
        } else {
            let end = tail.find(|c| !is_ident(c)).unwrap_or(tail.len());
            if end > 0 {
                refs.push((tail[..end].to_owned(), line));
            }
        }
        i += len;
    }
    refs
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Top-level modules of `src/` and their files.
fn modules(src: &Path) -> BTreeMap<String, Vec<PathBuf>> {
    let mut mods: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let mut all = Vec::new();
    rust_files(src, &mut all);
    for path in all {
        let rel = path.strip_prefix(src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let name = first.trim_end_matches(".rs").to_owned();
        if rel.components().count() == 1 && matches!(name.as_str(), "lib" | "main") {
            continue;
        }
        if name == "bin" {
            continue;
        }
        mods.entry(name).or_default().push(path);
    }
    mods
}

/// How many `super` lead from a file to the crate root: `x.rs` and `x/mod.rs` 1, `x/y.rs` 2.
fn depth_of(src: &Path, file: &Path) -> usize {
    let rel = file.strip_prefix(src).unwrap();
    let n = rel.components().count();
    if rel.file_name().is_some_and(|f| f == "mod.rs") {
        n - 1
    } else {
        n
    }
}

fn edges(src: &Path) -> (BTreeSet<String>, Edges) {
    let mods = modules(src);
    let names: BTreeSet<String> = mods.keys().cloned().collect();
    let mut edges = Edges::new();
    for (module, files) in &mods {
        for file in files {
            let text = std::fs::read_to_string(file).unwrap();
            for (target, line) in crate_refs(&text, depth_of(src, file)) {
                if &target != module && names.contains(&target) {
                    let at = format!("{}:{line}", file.strip_prefix(src).unwrap().display());
                    edges.entry((module.clone(), target)).or_insert(at);
                }
            }
        }
    }
    (names, edges)
}

/// Groups of modules that reach each other (strongly connected, more than one module), sorted.
fn cycles(names: &BTreeSet<String>, edges: &Edges) -> Vec<Vec<String>> {
    let mut reach: BTreeMap<&str, BTreeSet<&str>> = names
        .iter()
        .map(|n| (n.as_str(), BTreeSet::new()))
        .collect();
    for (a, b) in edges.keys() {
        reach.get_mut(a.as_str()).unwrap().insert(b.as_str());
    }
    // Transitive closure; a few dozen modules make this instant.
    loop {
        let mut grew = false;
        for n in names {
            let via: Vec<&str> = reach[n.as_str()].iter().copied().collect();
            for v in via {
                let more: Vec<&str> = reach[v].iter().copied().collect();
                let set = reach.get_mut(n.as_str()).unwrap();
                for m in more {
                    grew |= set.insert(m);
                }
            }
        }
        if !grew {
            break;
        }
    }
    let mut groups: BTreeSet<Vec<String>> = BTreeSet::new();
    for a in names {
        let group: Vec<String> = names
            .iter()
            .filter(|b| {
                *b == a
                    || (reach[a.as_str()].contains(b.as_str())
                        && reach[b.as_str()].contains(a.as_str()))
            })
            .cloned()
            .collect();
        if group.len() > 1 {
            groups.insert(group);
        }
    }
    groups.into_iter().collect()
}

/// The edges inside a group, as `a -> b (file:line)` lines.
fn describe(group: &[String], edges: &Edges) -> String {
    edges
        .iter()
        .filter(|((a, b), _)| group.contains(a) && group.contains(b))
        .map(|((a, b), at)| format!("    {a} -> {b}  ({at})"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn top_level_modules_have_no_new_cycles_and_respect_the_layering() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let (names, edges) = edges(&src);
    for m in ["api", "web", "cli", "domain", "store"] {
        assert!(
            names.contains(m),
            "module {m} not found under {}",
            src.display()
        );
    }
    let mut problems = Vec::new();
    let found = cycles(&names, &edges);
    for group in &found {
        if !KNOWN_CYCLES.iter().any(|k| k.iter().eq(group.iter())) {
            problems.push(format!(
                "dependency cycle among {}:\n{}",
                group.join(", "),
                describe(group, &edges)
            ));
        }
    }
    for known in KNOWN_CYCLES {
        if !found.iter().any(|g| known.iter().eq(g.iter())) {
            problems.push(format!(
                "the known cycle {known:?} is gone or changed: update KNOWN_CYCLES"
            ));
        }
    }
    for (from, to, why) in FORBIDDEN {
        if let Some(at) = edges.get(&((*from).to_owned(), (*to).to_owned())) {
            problems.push(format!("{from} must not use {to} ({why}): {at}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn paths_are_found_in_code_and_groups_but_not_in_comments() {
    let text = "use crate::{alpha, beta::{x, y}, Gamma};\n\
                // crate::commented\n\
                /* crate::blocked */ let v = crate::delta::f();\n\
                use super::super::epsilon::Z;\n\
                use super::sibling;\n\
                $crate::zeta!();\n\
                let s = notcrate::eta;\n";
    let refs: Vec<String> = crate_refs(text, 2).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        refs,
        ["alpha", "beta", "Gamma", "delta", "epsilon", "zeta"],
        "{text}"
    );
    let lines: Vec<usize> = crate_refs(text, 2).into_iter().map(|(_, l)| l).collect();
    assert_eq!(lines, [1, 1, 1, 3, 4, 6]);
}

#[test]
fn a_cycle_is_detected() {
    let names: BTreeSet<String> = ["a", "b", "c", "d"].map(String::from).into();
    let mut e = Edges::new();
    for (x, y) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        e.insert((x.into(), y.into()), format!("{x}.rs:1"));
    }
    assert_eq!(
        cycles(&names, &e),
        [["a", "b", "c"].map(String::from).to_vec()]
    );
    e.remove(&("c".to_owned(), "a".to_owned()));
    assert!(cycles(&names, &e).is_empty());
}
