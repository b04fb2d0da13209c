//! Scalar UDFs, one file per function; [`functions`] lists them all.

mod als_solve;
mod als_top_n;
mod experiment_bucket;
mod is_crawler;
mod kmeans_assign;
mod personal_data;
mod row_digest;
mod sparse_dot;
mod top_contributions;
mod unit_hash;
mod url_item_id;
mod url_page_type;
mod url_parts;

use std::sync::Arc;

use datafusion::logical_expr::ScalarUDF;

pub use als_solve::AlsSolve;
pub use als_top_n::{AlsTopN, TopNModel};
pub use experiment_bucket::{ExperimentBucket, experiment_bucket};
pub use is_crawler::IsCrawler;
pub use kmeans_assign::KMeansAssign;
pub use personal_data::{LooksLikePersonalData, is_personal_data};
pub use row_digest::{RowDigest, row_digests};
pub use sparse_dot::{SparseDot, sparse_dot};
pub use top_contributions::TopContributions;
pub use unit_hash::{UnitHash, unit_hashes};
pub use url_item_id::UrlItemId;
pub use url_page_type::UrlPageType;
pub use url_parts::{page_type, parse_item_id};

/// Every scalar UDF, with its default (model-less) instance for the model functions.
pub fn functions() -> Vec<Arc<ScalarUDF>> {
    vec![
        Arc::new(ScalarUDF::from(IsCrawler::new())),
        Arc::new(ScalarUDF::from(LooksLikePersonalData::new())),
        Arc::new(ScalarUDF::from(UrlPageType::new())),
        Arc::new(ScalarUDF::from(UrlItemId::new())),
        Arc::new(ScalarUDF::from(KMeansAssign::default())),
        Arc::new(ScalarUDF::from(UnitHash::new())),
        Arc::new(ScalarUDF::from(ExperimentBucket::new())),
        Arc::new(ScalarUDF::from(RowDigest::new())),
        Arc::new(ScalarUDF::from(TopContributions::new())),
        Arc::new(ScalarUDF::from(SparseDot::new())),
        Arc::new(ScalarUDF::from(AlsTopN::default())),
        Arc::new(ScalarUDF::from(AlsTopN::similar(TopNModel::default()))),
        Arc::new(ScalarUDF::from(AlsSolve::default())),
    ]
}

/// Applies `f` to every value of a string column, producing a column of `O` through `build`.
/// Nulls stay null unless `f` maps them otherwise (it receives `None`).
pub(crate) fn map_strings<O>(
    func: &str,
    args: &datafusion::logical_expr::ScalarFunctionArgs,
    f: impl Fn(Option<&str>) -> O,
    build: impl FnOnce(Vec<O>) -> arrow::array::ArrayRef,
) -> datafusion::common::Result<datafusion::logical_expr::ColumnarValue> {
    use arrow::array::Array;
    let arrays = datafusion::logical_expr::ColumnarValue::values_to_arrays(&args.args)?;
    let [input] = arrays.as_slice() else {
        return datafusion::common::exec_err!(
            "{func}: expected one argument, got {}",
            arrays.len()
        );
    };
    let strings = crate::args::utf8(func, input)?;
    let out: Vec<O> = (0..strings.len())
        .map(|i| f((!strings.is_null(i)).then(|| strings.value(i))))
        .collect();
    Ok(datafusion::logical_expr::ColumnarValue::Array(build(out)))
}
