//! `url_page_type(url)`: the kind of page a web-log URL shows.

use std::sync::{Arc, LazyLock};

use arrow::array::StringArray;
use arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::Documentation;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// `url_page_type(url) -> string`: `product`, `cart_add`, `category`, `search`, `checkout`,
/// `home`, `account` or `other`; null for a null URL.
///
/// ```sql
/// SELECT url_page_type('/product/I000123?utm_source=email'); -- 'product'
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UrlPageType {
    signature: Signature,
}

impl Default for UrlPageType {
    fn default() -> Self {
        Self::new()
    }
}

impl UrlPageType {
    /// Creates the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::string(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for UrlPageType {
    fn documentation(&self) -> Option<&Documentation> {
        static DOC: LazyLock<Documentation> = LazyLock::new(|| {
            crate::docs::documentation(
                "`url_page_type(url) -> string`: `product`, `cart_add`, `category`, `search`, `checkout`, `home`, `account` or `other`; null for a null URL.",
                "url_page_type(url)",
                "SELECT url_page_type('/product/I000123?utm_source=email'); -- 'product'",
            )
        });
        Some(&DOC)
    }

    fn name(&self) -> &str {
        "url_page_type"
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
            |url| url.map(super::page_type),
            |v| Arc::new(StringArray::from(v)),
        )
    }
}
