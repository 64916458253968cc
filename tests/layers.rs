//! The layering of `src/` (ARCHITECTURE.md): data flows one way, HTTP -> api -> changes ->
//! models -> db, and no two top-level modules import each other, directly or through others.
//!
//! The import graph is read from the sources: every `crate::module` path outside comments and
//! unit tests is an edge from the file's top-level module to `module`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module -> the top-level modules it names.
fn import_graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let path_pattern = regex::Regex::new(r"crate::([a-z_]+)").unwrap();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&root).unwrap();
            let module = relative
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            let edges = graph.entry(module.clone()).or_default();
            for line in code.lines() {
                let line = line.split("//").next().unwrap_or_default();
                for found in path_pattern.captures_iter(line) {
                    if found[1] != module {
                        edges.insert(found[1].to_owned());
                    }
                }
            }
        }
    }
    graph
}

/// A cycle through `start`, if any: the modules on it, `start` first.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn walk(
        graph: &BTreeMap<String, BTreeSet<String>>,
        start: &str,
        at: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            if next == start {
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if walk(graph, start, next, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_owned()];
    walk(graph, start, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn no_top_level_modules_import_each_other() {
    let graph = import_graph();
    assert!(
        graph.contains_key("api") && graph.contains_key("db"),
        "{graph:?}"
    );
    let cycles: Vec<String> = graph
        .keys()
        .filter_map(|module| cycle_from(&graph, module))
        .map(|cycle| format!("{} -> {}", cycle.join(" -> "), cycle[0]))
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn lower_layers_never_reach_up() {
    let graph = import_graph();
    // The HTTP layer: handlers, middleware, the app and its state, the CLI.
    const HTTP: [&str; 5] = ["api", "middleware", "startup", "state", "cli"];
    // What each lower layer must not name besides the HTTP layer.
    let rules: [(&str, &[&str]); 6] = [
        (
            "db",
            &[
                "error", "models", "auth", "audit", "history", "changes", "views",
            ],
        ),
        (
            "models",
            &["error", "auth", "audit", "history", "changes", "views"],
        ),
        ("history", &["error", "changes", "views"]),
        ("views", &["changes", "history", "audit", "dummy_data"]),
        ("changes", &["dummy_data"]),
        // The audit log is itself a layer of the HTTP stack: it may name `middleware`.
        ("audit", &["auth", "history", "changes", "views"]),
    ];
    let mut broken = Vec::new();
    for (layer, above) in rules {
        for name in graph.get(layer).into_iter().flatten() {
            let http = HTTP.contains(&name.as_str()) && !(layer == "audit" && name == "middleware");
            if http || above.contains(&name.as_str()) {
                broken.push(format!("{layer} imports {name}"));
            }
        }
    }
    // Commands that write (demo data) go through `changes`, never through the handlers.
    if graph
        .get("dummy_data")
        .is_some_and(|names| names.contains("api"))
    {
        broken.push("dummy_data imports api".to_owned());
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}
