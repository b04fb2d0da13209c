//! The `documentation()` every Persona function carries: what it does, its syntax and an SQL
//! example, in DataFusion's own form (`SHOW FUNCTIONS`-style tools and generated docs read it).

use datafusion::logical_expr::{DocSection, Documentation};

/// The section Persona's functions are listed under.
const PERSONA: DocSection = DocSection {
    include: true,
    label: "Persona functions",
    description: Some("Functions of Persona's SQL stages and model drivers"),
};

/// A function's documentation.
pub(crate) fn documentation(description: &str, syntax: &str, sql_example: &str) -> Documentation {
    Documentation::builder(PERSONA, description, syntax)
        .with_sql_example(sql_example)
        .build()
}
