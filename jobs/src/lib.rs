//! Persona's nightly pipeline: staging, features, segments (K-Means), recommendations
//! (implicit ALS), propensity and publishing, on Apache DataFusion.
//!
//! The crate is in layers; each imports only the layers below it (a test checks it):
//!
//! 1. [`engine`]: how queries run and outputs land — the session and its memory pool, local and
//!    `s3://` storage, the run's work area, publishing and the whole-night commit, the run
//!    lock, the SQL files, what Ballista plans carry and its processes, the watchdog, signals,
//!    progress and fault injection.
//! 2. [`models`]: the fitting drivers, each a series of DataFusion aggregations with small
//!    state here — [`models::kmeans`], [`models::als`] (and the offline evaluation),
//!    [`models::propensity`].
//! 3. [`stages`]: the night — its stage registry, the loop that runs it, and one file per
//!    Rust stage (each a [`stages::unit::Unit`]).
//! 4. [`commands`]: what the CLI runs — `persona run`, `evaluate`, `check` and `--dry-run`
//!    ([`commands::pipeline`]), `persona sql`, `demo`, and `als`, `kmeans` and `propensity`
//!    on any table (each a short night of the night's own stages, or the same model code).
//!
//! Beside the layers: [`report_page`], the nightly HTML report (at the models' level: the
//! night's publish stage and `persona report` draw it from the engine's tables); shared by
//! them all: [`config`] and [`error`]; the night's input contract
//! ([`contract`], validated and registered by [`input`]), its data-quality [`gates`] and its
//! record, the [`manifest`]; and the demo-data generator, [`generate`].

pub mod commands;
pub mod config;
pub mod contract;
pub mod engine;
pub mod error;
pub mod gates;
pub mod generate;
pub mod input;
pub mod manifest;
pub mod models;
pub mod report_page;
pub mod stages;

pub use error::{PipelineError, Result};

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// The folders that hold a layer's modules.
    const LAYERS: [&str; 3] = ["engine", "models", "commands"];

    /// What each module may import: its own layer's modules (the circle test keeps those in
    /// order) and the layers below it.
    fn may_import(module: &str, imported: &str) -> bool {
        // Top-level modules (and layers) from the bottom up; a new one must be placed here.
        const ORDER: [(&str, u8); 12] = [
            ("config", 0),
            ("error", 0),
            ("engine", 1),
            ("contract", 2),
            ("input", 2),
            ("gates", 2),
            ("manifest", 2),
            ("generate", 2),
            ("models", 3),
            ("report_page", 3),
            ("stages", 4),
            ("commands", 5),
        ];
        let rank = |m: &str| {
            let top = m.split("::").next().unwrap();
            ORDER.iter().find(|(name, _)| *name == top).unwrap().1
        };
        rank(imported) <= rank(module)
    }

    /// A module's name as the test sees it: `engine::work`, or `stages` for a top-level one.
    fn unit(path: &[&str]) -> String {
        let name = |s: &str| s.trim_end_matches(".rs").to_string();
        match path {
            [layer, module, ..] if LAYERS.contains(layer) => {
                format!("{layer}::{}", name(module))
            }
            [top, ..] => name(top),
            [] => unreachable!(),
        }
    }

    /// The modules each file of `dir` imports (`crate::<module>`), outside comments and tests,
    /// keyed by the importing file's own module.
    fn imports(dir: &Path, src: &Path, out: &mut BTreeMap<String, BTreeSet<String>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                imports(&path, src, out);
                continue;
            }
            let rel = path
                .strip_prefix(src)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let parts: Vec<&str> = rel.split('/').collect();
            let module = unit(&parts);
            if ["lib", "main", "cli"].contains(&module.as_str())
                || parts.last() == Some(&"mod.rs") && parts.len() == 2 && LAYERS.contains(&parts[0])
            {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            for line in code.lines().map(|l| l.split("//").next().unwrap()) {
                for (at, _) in line.match_indices("crate::") {
                    if line[..at].ends_with('$') {
                        continue;
                    }
                    let words: Vec<String> = line[at + 7..]
                        .split("::")
                        .take(2)
                        .map(|w| {
                            w.chars()
                                .take_while(|c| c.is_alphanumeric() || *c == '_')
                                .collect()
                        })
                        .collect();
                    let words: Vec<&str> = words.iter().map(String::as_str).collect();
                    let imported = unit(&words);
                    if imported != module {
                        out.entry(module.clone()).or_default().insert(imported);
                    }
                }
            }
        }
    }

    fn graph() -> BTreeMap<String, BTreeSet<String>> {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut graph = BTreeMap::new();
        imports(&src, &src, &mut graph);
        graph
    }

    /// No module imports one that imports it back, however indirectly (a circle is where a
    /// module's role is unclear).
    #[test]
    fn modules_import_in_one_direction() {
        let graph = graph();
        assert!(graph.contains_key("engine::work") && graph.contains_key("stages"));
        // Everything a module reaches, by a walk from each.
        for start in graph.keys() {
            let mut seen = BTreeSet::new();
            let mut todo: Vec<&String> = graph[start].iter().collect();
            while let Some(m) = todo.pop() {
                if seen.insert(m.clone()) {
                    todo.extend(graph.get(m).into_iter().flatten());
                }
            }
            assert!(
                !seen.contains(start),
                "{start} imports a module that imports {start} back (it imports {:?})",
                graph[start]
            );
        }
    }

    /// Imports only run down the layers that lib.rs describes: the engine knows no model, a
    /// model no stage, a stage no command.
    #[test]
    fn imports_run_down_the_layers() {
        let upward: Vec<String> = graph()
            .iter()
            .flat_map(|(m, imported)| {
                imported
                    .iter()
                    .filter(|i| !may_import(m, i))
                    .map(move |i| format!("{m} imports {i}"))
            })
            .collect();
        assert!(upward.is_empty(), "imports that run up: {upward:?}");
    }
}
