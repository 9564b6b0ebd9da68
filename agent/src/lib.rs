//! netmedic-agent: the edge daemon that finds what spoils a subscriber's connection, fixes what
//! is local and safe to fix, and reports every incident to the ISP's collector.
//!
//! Data flow: config → scheduler ([`daemon`]) → [`checks`] → observations → [`detector`] →
//! incidents → [`heal`] → [`actions`]; every incident event goes to the [`spool`] first and the
//! [`reporter`] delivers it.

pub mod actions;
pub mod afd;
pub mod checks;
pub mod cli;
pub mod config;
pub mod context;
pub mod daemon;
pub mod detector;
pub mod events;
pub mod experiment;
pub mod fsutil;
pub mod heal;
pub mod heartbeat;
pub mod hostapd;
pub mod httpc;
pub mod ids;
pub mod incident;
pub mod lease;
pub mod lease6;
pub mod logging;
pub mod net;
pub mod net6;
pub mod nl80211;
pub mod notify;
pub mod ping;
pub mod rawnet;
pub mod reporter;
pub mod site;
pub mod spool;
pub mod text;
pub mod timer;
pub mod tls;
pub mod watch;

/// The module graph among the agent's top-level modules has no cycle.
///
/// How: every top-level module's non-test source (`src/x.rs` or `src/x/**.rs`, up to its
/// `#[cfg(test)]` module) is scanned for `crate::m` paths, including `use crate::{a, b}`
/// groups; the resulting graph must be acyclic, with no edge left out. `config` assembles
/// `agent.toml` from the tables `checks`, `actions` and `heal` own, so the direction is one
/// way: config → {checks, actions, heal} → site; they read their own table and the
/// [`site::Site`], never the assembled config.
#[cfg(test)]
mod module_graph {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    fn non_test(text: &str) -> &str {
        text.find("#[cfg(test)]\n#[allow(clippy::unwrap_used)]\nmod tests")
            .or_else(|| text.find("#[cfg(test)]\nmod tests"))
            .map_or(text, |i| &text[..i])
    }

    fn ident(s: &str) -> String {
        s.chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect()
    }

    /// Top-level modules named by `crate::` paths in `text`.
    fn references(text: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (i, _) in text.match_indices("crate::") {
            let rest = &text[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let body = &group[..group.find('}').unwrap_or(group.len())];
                for part in body.split(',') {
                    let name = ident(part.trim());
                    if !name.is_empty() {
                        out.insert(name);
                    }
                }
            } else {
                let name = ident(rest);
                if !name.is_empty() {
                    out.insert(name);
                }
            }
        }
        out
    }

    fn collect(dir: &Path, module: &str, graph: &mut BTreeMap<String, BTreeSet<String>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                collect(&p, module, graph);
            } else if p.extension().is_some_and(|x| x == "rs") && !p.ends_with("tests.rs") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                let refs = references(non_test(&text));
                graph.entry(module.to_string()).or_default().extend(refs);
            }
        }
    }

    pub(crate) fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
        let mut graph = BTreeMap::new();
        for e in std::fs::read_dir(src).into_iter().flatten().flatten() {
            let p = e.path();
            let name = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if name == "lib" || name == "main" {
                continue;
            }
            if p.is_dir() {
                collect(&p, &name, &mut graph);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                graph
                    .entry(name.clone())
                    .or_default()
                    .extend(references(non_test(&text)));
            }
        }
        let modules: BTreeSet<String> = graph.keys().cloned().collect();
        for (m, deps) in graph.iter_mut() {
            deps.retain(|d| d != m && modules.contains(d));
        }
        graph
    }

    /// A cycle of `graph`, if it has one (depth-first search).
    pub(crate) fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
        fn visit(
            m: &str,
            graph: &BTreeMap<String, BTreeSet<String>>,
            done: &mut BTreeSet<String>,
            path: &mut Vec<String>,
        ) -> Option<Vec<String>> {
            if let Some(i) = path.iter().position(|p| p == m) {
                let mut c = path[i..].to_vec();
                c.push(m.to_string());
                return Some(c);
            }
            if done.contains(m) {
                return None;
            }
            path.push(m.to_string());
            for d in graph.get(m).into_iter().flatten() {
                if let Some(c) = visit(d, graph, done, path) {
                    return Some(c);
                }
            }
            path.pop();
            done.insert(m.to_string());
            None
        }
        let mut done = BTreeSet::new();
        graph
            .keys()
            .find_map(|m| visit(m, graph, &mut done, &mut Vec::new()))
    }

    #[test]
    fn top_level_modules_form_no_cycle() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let g = graph(&src);
        assert!(g.len() > 10, "scanned too few modules: {g:?}");
        if let Some(c) = cycle(&g) {
            panic!("module cycle: {}", c.join(" → "));
        }
        let deps = |m: &str| g.get(m).cloned().unwrap_or_default();
        // The layering the issue asks for, spelled out.
        for forbidden in ["checks", "heal", "daemon"] {
            assert!(
                !deps("actions").contains(forbidden),
                "actions → {forbidden}"
            );
        }
        for forbidden in ["actions", "heal", "daemon"] {
            assert!(!deps("checks").contains(forbidden), "checks → {forbidden}");
        }
        for forbidden in ["checks", "actions", "heal", "daemon", "config"] {
            assert!(
                !deps("context").contains(forbidden),
                "context → {forbidden}"
            );
        }
        // config assembles the tables; those who own them never read the whole.
        for owner in ["checks", "actions", "heal"] {
            assert!(deps("config").contains(owner), "config ↛ {owner}");
            assert!(!deps(owner).contains("config"), "{owner} → config");
            assert!(deps(owner).contains("site"), "{owner} ↛ site");
        }
        assert!(deps("site").is_empty(), "site → {:?}", deps("site"));
    }

    #[test]
    fn the_check_finds_a_cycle() {
        let g: BTreeMap<String, BTreeSet<String>> = [
            ("a", vec!["b"]),
            ("b", vec!["c"]),
            ("c", vec!["a"]),
            ("d", vec![]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
        assert_eq!(cycle(&g).map(|c| c.len()), Some(4));
        let refs = references("use crate::{ids, net::Netlink};\nlet x = crate::spool::open();");
        assert_eq!(
            refs.into_iter().collect::<Vec<_>>(),
            ["ids", "net", "spool"]
        );
    }
}
