//! `looks_like_personal_data(value)`: whether a value that should be an id (an item id parsed
//! from a URL, an app event's item) is an e-mail address or an IP address instead, so that the
//! staging drops the row as invalid (counted) rather than publishing personal data as an item.

use std::sync::{Arc, LazyLock};

use arrow::array::BooleanArray;
use arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::Documentation;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// True for an e-mail address (`local@domain.tld`) or an IPv4 or IPv6 address; false for null.
pub fn is_personal_data(value: Option<&str>) -> bool {
    let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return false;
    };
    is_email(v) || v.parse::<std::net::IpAddr>().is_ok()
}

/// `local@domain` with a dot in the domain and no spaces (what an address looks like, not what
/// RFC 5322 allows).
fn is_email(v: &str) -> bool {
    let Some((local, domain)) = v.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !v.contains(char::is_whitespace)
        && !domain.contains('@')
        && domain
            .split_once('.')
            .is_some_and(|(host, tld)| !host.is_empty() && !tld.is_empty())
}

/// `looks_like_personal_data(value) -> boolean`.
///
/// ```sql
/// SELECT looks_like_personal_data('jane@example.com'); -- true
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct LooksLikePersonalData {
    signature: Signature,
}

impl Default for LooksLikePersonalData {
    fn default() -> Self {
        Self::new()
    }
}

impl LooksLikePersonalData {
    /// Creates the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::string(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for LooksLikePersonalData {
    fn documentation(&self) -> Option<&Documentation> {
        static DOC: LazyLock<Documentation> = LazyLock::new(|| {
            crate::docs::documentation(
                "`looks_like_personal_data(value) -> boolean`: true when a value that should be an id is an e-mail address or an IPv4/IPv6 address (false for null).",
                "looks_like_personal_data(value)",
                "SELECT looks_like_personal_data('jane@example.com'); -- true",
            )
        });
        Some(&DOC)
    }

    fn name(&self) -> &str {
        "looks_like_personal_data"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        super::map_strings(self.name(), &args, is_personal_data, |v| {
            Arc::new(BooleanArray::from(v))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e_mail_and_ip_addresses_are_personal_and_item_ids_are_not() {
        for personal in [
            "jane.doe@example.com",
            " jane@shop.co.uk ",
            "192.168.1.20",
            "2001:db8::ff00:42:8329",
            "::1",
        ] {
            assert!(is_personal_data(Some(personal)), "{personal}");
        }
        for id in [
            "SKU-000123",
            "item-42",
            "4f1c2a9e-7b1d-4a43-9a8e-1c2f3d4e5f60",
            "1.2.3",
            "@home",
            "a@b",
            "",
        ] {
            assert!(!is_personal_data(Some(id)), "{id}");
        }
        assert!(!is_personal_data(None));
    }
}
