//! The interest columns of `user_features`: one `interest_<category>` column per category of
//! the catalog (the largest [`MAX_CATEGORIES`]), generated into `sql/07_user_features.sql`
//! from the `items` table of the night, so a shop's own categories become columns without
//! editing SQL.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::AsArray;
use arrow::datatypes::DataType;
use datafusion::prelude::SessionContext;

use crate::error::Result;

/// At most this many categories get a column of their own (the catalog's largest); a
/// customer's interest in the rest still counts in `top_category`, `interests` and
/// `categories_seen`.
pub const MAX_CATEGORIES: usize = 24;

/// The two parameters of `07_user_features.sql` that carry the interest columns:
/// `interest_columns` (computed in its `interests` step) and `interest_select` (selected from
/// it). Both are empty when there is no `items` table or it has no category.
pub async fn params(ctx: &SessionContext) -> Result<BTreeMap<&'static str, String>> {
    let categories = if ctx.table_exist("items")? {
        catalog_categories(ctx).await?
    } else {
        Vec::new()
    };
    Ok(render(&categories))
}

/// The catalog's categories, most items first, at most [`MAX_CATEGORIES`].
async fn catalog_categories(ctx: &SessionContext) -> Result<Vec<String>> {
    let sql = format!(
        "SELECT category FROM items WHERE category IS NOT NULL \
         GROUP BY category ORDER BY COUNT(*) DESC, category LIMIT {MAX_CATEGORIES}"
    );
    let mut out = Vec::new();
    for batch in ctx.sql(&sql).await?.collect().await? {
        // Utf8, LargeUtf8 or Utf8View, as the catalog's files have it.
        let column = arrow::compute::cast(batch.column(0), &DataType::Utf8)?;
        let column = column.as_string::<i32>();
        out.extend((0..batch.num_rows()).map(|r| column.value(r).to_string()));
    }
    Ok(out)
}

/// The SQL fragments for `categories`, in the order given.
fn render(categories: &[String]) -> BTreeMap<&'static str, String> {
    let (mut columns, mut select) = (String::new(), String::new());
    let mut taken = BTreeSet::new();
    for category in categories {
        let name = column_name(category, &taken);
        taken.insert(name.clone());
        let literal = category.replace('\'', "''");
        columns.push_str(&format!(
            ",\n    COALESCE(MAX(share) FILTER (WHERE category = '{literal}'), 0.0) AS {name}"
        ));
        select.push_str(&format!(",\n  t.{name}"));
    }
    BTreeMap::from([("interest_columns", columns), ("interest_select", select)])
}

/// `interest_` and the category in lower case, every character other than a–z and 0–9 turned
/// into `_` (so the column needs no quotes in SQL), made unique with a number when two
/// categories spell the same.
fn column_name(category: &str, taken: &BTreeSet<String>) -> String {
    let slug: String = category
        .trim()
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let base = format!("interest_{slug}");
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}_{n}");
        n += 1;
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_become_plain_unique_column_names() {
        let mut taken = BTreeSet::new();
        let a = column_name("Home & Garden", &taken);
        assert_eq!(a, "interest_home___garden");
        taken.insert(a);
        assert_eq!(
            column_name("home & garden", &taken),
            "interest_home___garden_2"
        );
        assert_eq!(column_name("Schuhe/Größe", &taken), "interest_schuhe_gr__e");
    }

    #[test]
    fn quotes_in_a_category_stay_inside_the_literal() {
        let p = render(&["kids' toys".to_string()]);
        assert!(p["interest_columns"].contains("category = 'kids'' toys'"));
        assert!(p["interest_select"].contains("t.interest_kids__toys"));
        assert_eq!(render(&[])["interest_columns"], "");
    }
}
