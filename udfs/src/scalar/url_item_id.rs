//! `url_item_id(url)`: the item a web-log URL refers to.

use std::sync::{Arc, LazyLock};

use arrow::array::StringArray;
use arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::Documentation;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// `url_item_id(url) -> string`: the id after `/product/`, or the `item` parameter of
/// `/cart/add`; null when the URL names no (valid) item.
///
/// ```sql
/// SELECT url_item_id('/cart/add?item=I000123'); -- 'I000123'
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UrlItemId {
    signature: Signature,
}

impl Default for UrlItemId {
    fn default() -> Self {
        Self::new()
    }
}

impl UrlItemId {
    /// Creates the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::string(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for UrlItemId {
    fn documentation(&self) -> Option<&Documentation> {
        static DOC: LazyLock<Documentation> = LazyLock::new(|| {
            crate::docs::documentation(
                "`url_item_id(url) -> string`: the id after `/product/`, or the `item` parameter of `/cart/add`; null when the URL names no (valid) item.",
                "url_item_id(url)",
                "SELECT url_item_id('/cart/add?item=I000123'); -- 'I000123'",
            )
        });
        Some(&DOC)
    }

    fn name(&self) -> &str {
        "url_item_id"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        super::map_strings(
            self.name(),
            &args,
            |url| url.and_then(super::parse_item_id).map(str::to_string),
            |v| Arc::new(StringArray::from(v)),
        )
    }
}
