//! `kmeans_assign(x1, …, xd)`: the segment of a customer under fitted centroids.

use std::sync::{Arc, LazyLock};

use arrow::array::{ArrayRef, Float64Array, Int32Array, StructArray};
use arrow::datatypes::{DataType, Field, Fields};
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::Documentation;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use crate::args::FloatColumns;
use crate::ml::Centroids;

/// `kmeans_assign(x1, …, xd) -> struct<segment_id int, distance double>`: the nearest of the
/// centroids this instance carries and the Euclidean distance to it. Null coordinates count as 0.
///
/// ```sql
/// SELECT kmeans_assign(recency_z, frequency_z, monetary_z)['segment_id'] FROM prepared_features;
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct KMeansAssign {
    signature: Signature,
    centroids: Arc<Centroids>,
}

impl Default for KMeansAssign {
    fn default() -> Self {
        Self::new(Centroids::default())
    }
}

impl KMeansAssign {
    /// Assignment to these centroids.
    pub fn new(centroids: Centroids) -> Self {
        Self {
            signature: Signature::variadic_any(Volatility::Immutable),
            centroids: Arc::new(centroids),
        }
    }

    /// The centroids this instance assigns to.
    pub fn centroids(&self) -> &Centroids {
        &self.centroids
    }

    fn fields() -> Fields {
        Fields::from(vec![
            Field::new("segment_id", DataType::Int32, false),
            Field::new("distance", DataType::Float64, false),
        ])
    }
}

impl ScalarUDFImpl for KMeansAssign {
    fn documentation(&self) -> Option<&Documentation> {
        static DOC: LazyLock<Documentation> = LazyLock::new(|| {
            crate::docs::documentation(
                "`kmeans_assign(x1, …, xd) -> struct<segment_id int, distance double>`: the nearest of the centroids this instance carries and the Euclidean distance to it. Null coordinates count as 0.",
                "kmeans_assign(x1, …, xd)",
                "SELECT kmeans_assign(recency_z, frequency_z, monetary_z)['segment_id'] FROM prepared_features;",
            )
        });
        Some(&DOC)
    }

    fn name(&self) -> &str {
        "kmeans_assign"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Struct(Self::fields()))
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if self.centroids.is_empty() {
            return exec_err!(
                "kmeans_assign has no centroids: it is built by the segments stage, not called from SQL"
            );
        }
        if args.args.len() != self.centroids.d() {
            return exec_err!(
                "kmeans_assign: {} features given, centroids have {}",
                args.args.len(),
                self.centroids.d()
            );
        }
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let (mut labels, mut distances) = (Vec::new(), Vec::new());
        let assigned = match crate::args::float_columns(self.name(), &arrays)? {
            FloatColumns::F32(columns) => {
                let dense = crate::args::nulls_as_zero(&columns);
                let refs: Vec<&[f32]> = dense.iter().map(|c| c.as_ref()).collect();
                self.centroids
                    .nearest_batch(&refs, &mut labels, &mut distances)
            }
            FloatColumns::F64(columns) => {
                let dense = crate::args::nulls_as_zero(&columns);
                let refs: Vec<&[f64]> = dense.iter().map(|c| c.as_ref()).collect();
                self.centroids
                    .nearest_batch(&refs, &mut labels, &mut distances)
            }
        };
        assigned.map_err(|e| {
            datafusion::common::DataFusionError::Execution(format!("kmeans_assign: {e}"))
        })?;
        let segments: Vec<i32> = labels.iter().map(|&l| l as i32).collect();
        let distances: Vec<f64> = distances.iter().map(|d| d.sqrt()).collect();
        let arrays: Vec<ArrayRef> = vec![
            Arc::new(Int32Array::from(segments)),
            Arc::new(Float64Array::from(distances)),
        ];
        Ok(ColumnarValue::Array(Arc::new(StructArray::new(
            Self::fields(),
            arrays,
            None,
        ))))
    }
}
