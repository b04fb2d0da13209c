//! `is_crawler(user_agent)`: whether a web-log row comes from a bot rather than a person.

use std::sync::{Arc, LazyLock};

use arrow::array::BooleanArray;
use arrow::datatypes::DataType;
use datafusion::common::Result;
use datafusion::logical_expr::Documentation;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// Substrings (lower case) that mark a user agent as automated. Matches the common crawlers,
/// monitoring probes and HTTP libraries seen in shop logs.
const BOT_MARKERS: &[&str] = &[
    "bot",
    "crawl",
    "spider",
    "slurp",
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "headlesschrome",
    "facebookexternalhit",
    "bingpreview",
    "go-http-client",
    "java/",
    "okhttp",
    "scrapy",
    "httpclient",
    "phantomjs",
    "pingdom",
    "uptime",
    "monitor",
];

/// True when a user agent is missing, empty or names a crawler, bot or HTTP library.
pub fn is_crawler_agent(user_agent: Option<&str>) -> bool {
    let Some(ua) = user_agent.map(str::trim).filter(|ua| !ua.is_empty()) else {
        return true;
    };
    let lower = ua.to_ascii_lowercase();
    BOT_MARKERS.iter().any(|m| lower.contains(m))
}

/// `is_crawler(user_agent) -> boolean`: true for bots, crawlers, HTTP libraries and missing user
/// agents (a browser always sends one).
///
/// ```sql
/// SELECT is_crawler('Mozilla/5.0 (compatible; Googlebot/2.1)'); -- true
/// ```
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IsCrawler {
    signature: Signature,
}

impl Default for IsCrawler {
    fn default() -> Self {
        Self::new()
    }
}

impl IsCrawler {
    /// Creates the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::string(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for IsCrawler {
    fn documentation(&self) -> Option<&Documentation> {
        static DOC: LazyLock<Documentation> = LazyLock::new(|| {
            crate::docs::documentation(
                "`is_crawler(user_agent) -> boolean`: true for bots, crawlers, HTTP libraries and missing user agents (a browser always sends one).",
                "is_crawler(user_agent)",
                "SELECT is_crawler('Mozilla/5.0 (compatible; Googlebot/2.1)'); -- true",
            )
        });
        Some(&DOC)
    }

    fn name(&self) -> &str {
        "is_crawler"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        super::map_strings(self.name(), &args, is_crawler_agent, |v| {
            Arc::new(BooleanArray::from(v))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_bots_and_browsers() {
        assert!(is_crawler_agent(Some(
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
        )));
        assert!(is_crawler_agent(Some("AhrefsBot/7.0")));
        assert!(is_crawler_agent(Some("curl/8.5.0")));
        assert!(is_crawler_agent(Some("python-requests/2.31")));
        assert!(is_crawler_agent(None));
        assert!(is_crawler_agent(Some("   ")));
        assert!(!is_crawler_agent(Some(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
        )));
        assert!(!is_crawler_agent(Some(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148"
        )));
    }
}
