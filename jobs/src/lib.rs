//! Persona's nightly pipeline: staging, features, segments (K-Means), recommendations
//! (implicit ALS) and publishing, on Apache DataFusion.
//!
//! - [`contract`]: the input sources and their columns; [`input`] validates and registers them.
//! - [`sql`]: the SQL files embedded from `sql/`; [`work`]: where tables are materialised.
//! - [`stages`]: the night's stage registry, the loop that runs it, and one file per Rust
//!   stage (each a [`stages::unit::Unit`]);
//!   [`kmeans`]: distributed K-Means (also `persona kmeans`); [`als`]: implicit ALS (also
//!   `persona als` and the evaluation); [`publish`]: atomic publishing; [`manifest`]: the run
//!   record; [`gates`]: the data-quality gates.
//! - [`pipeline`]: `persona run`, `evaluate`, `check` and `--dry-run` around the night, with
//!   [`watchdog`], [`signals`] and [`fault`] injection; [`generate`]: `persona generate` demo
//!   data.
//! - [`cluster`]: what Ballista plans carry (codecs, factor files); [`servers`]: the scheduler
//!   and executor processes; [`tables`]: Parquet tables and quoting for `kmeans` and `als`.
//! - [`query`]: `persona sql` over the published tables.
//! - [`storage`]: local and `s3://` roots; [`lock`]: one run per date at a time.
//! - [`config`], [`session`] (and its memory pool), [`progress`], [`error`]: the plumbing.
//!
//! Modules import in one direction (a test checks that no two import each other, however
//! indirectly).

pub mod als;
pub mod cluster;
pub mod commit;
pub mod config;
pub mod contract;
pub mod demo;
pub mod error;
pub mod fault;
pub mod gates;
pub mod generate;
pub mod input;
pub mod kmeans;
pub mod lock;
pub mod manifest;
pub mod pipeline;
pub mod progress;
pub mod propensity;
pub mod publish;
pub mod query;
pub mod report;
pub mod servers;
pub mod session;
pub mod signals;
pub mod sql;
pub mod stages;
pub mod storage;
pub mod tables;
pub mod watchdog;
pub mod work;

pub use error::{PipelineError, Result};

#[cfg(test)]
#[expect(clippy::unwrap_used, reason = "tests fail by panicking")]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    /// The top-level modules each file of `dir` imports (`crate::<module>`), outside comments
    /// and tests, keyed by the importing file's own top-level module.
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
            let top = rel
                .split('/')
                .next()
                .unwrap()
                .trim_end_matches(".rs")
                .to_string();
            if top == "lib" || top == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            for line in code.lines().map(|l| l.split("//").next().unwrap()) {
                for (at, _) in line.match_indices("crate::") {
                    if line[..at].ends_with('$') {
                        continue;
                    }
                    let name: String = line[at + 7..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if name != top {
                        out.entry(top.clone()).or_default().insert(name);
                    }
                }
            }
        }
    }

    /// Layers only import downwards: no module imports one that imports it back, however
    /// indirectly (a circle is where a module's role is unclear).
    #[test]
    fn modules_import_in_one_direction() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut graph = BTreeMap::new();
        imports(&src, &src, &mut graph);
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
}
