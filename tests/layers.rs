//! The layering of `src/` (ARCHITECTURE.md): every top-level module names only modules of
//! lower layers ([`LAYERS`]), so data flows one way (HTTP -> api -> changes -> models -> db)
//! and no two modules import each other, directly or through others.
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

/// The layers, lowest first. A module may name only modules of lower layers; a new top-level
/// module must be placed here (ARCHITECTURE.md explains the order).
const LAYERS: [&[&str]; 17] = [
    &["text", "probe", "pseudonym", "geometry"],
    &["db", "search"],
    &["config", "models", "imaging"],
    &["telemetry", "codesets", "code_index", "storage"],
    &["orphans", "error"],
    &["middleware"],
    &["audit"],
    &["state"],
    &["auth"],
    &["history"],
    &["views"],
    &["changes", "export"],
    &["api"],
    &["openapi"],
    &["startup"],
    &["dummy_data", "operator"],
    &["cli"],
];

#[test]
fn every_module_names_only_lower_layers() {
    let graph = import_graph();
    let layer_of = |module: &str| LAYERS.iter().position(|layer| layer.contains(&module));
    let mut broken = Vec::new();
    for (module, names) in &graph {
        if matches!(module.as_str(), "lib" | "main") {
            continue;
        }
        let Some(own) = layer_of(module) else {
            broken.push(format!("{module} is in no layer of LAYERS"));
            continue;
        };
        for name in names {
            match layer_of(name) {
                Some(layer) if layer < own => {}
                Some(_) => broken.push(format!("{module} imports {name}, which is not below it")),
                None => broken.push(format!("{module} imports {name}, which is in no layer")),
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}
