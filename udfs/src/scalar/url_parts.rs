//! URL parsing kernels shared by `url_page_type` and `url_item_id`.
//!
//! Web-log URLs come as paths with a query (`/product/I000123?utm_source=email`) or as absolute
//! URLs (`https://shop.example/product/I000123`). Parsing is by hand, on bytes, because it runs on
//! every web-log row and needs no allocation on the common path.

/// The path of a URL: without scheme, host, query and fragment; lower-cased comparison is left to
/// callers.
fn path_of(url: &str) -> &str {
    let rest = match url.find("://") {
        Some(i) => {
            let after = &url[i + 3..];
            after.find('/').map_or("/", |j| &after[j..])
        }
        None => url,
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    &rest[..end]
}

/// The value of query parameter `name`, if present and non-empty.
fn query_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// The kind of page a URL shows: `product`, `cart_add`, `category`, `search`, `checkout`, `home`,
/// `account` or `other`. `None` for a null URL.
pub fn page_type(url: &str) -> &'static str {
    let path = path_of(url.trim());
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    match (segments.next(), segments.next()) {
        (None, _) => "home",
        (Some("product" | "p" | "item"), Some(_)) => "product",
        (Some("cart"), Some("add")) => "cart_add",
        (Some("category" | "c"), Some(_)) => "category",
        (Some("search"), _) => "search",
        (Some("checkout"), Some("complete" | "confirmation")) => "checkout",
        (Some("account" | "login" | "logout"), _) => "account",
        _ => "other",
    }
}

/// The item id a URL refers to: the segment after `/product/`, or the `item` parameter of
/// `/cart/add`. Ids are kept as written (they are strings in the contract); an empty or
/// over-long id (more than 64 bytes) is not an id.
pub fn parse_item_id(url: &str) -> Option<&str> {
    let url = url.trim();
    let path = path_of(url);
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    let id = match (segments.next(), segments.next()) {
        (Some("product" | "p" | "item"), Some(id)) => Some(id),
        (Some("cart"), Some("add")) => query_param(url, "item"),
        _ => None,
    }?;
    let valid = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    valid.then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_types() {
        assert_eq!(page_type("/product/I000123?utm_source=email"), "product");
        assert_eq!(page_type("https://shop.example/product/I1"), "product");
        assert_eq!(page_type("/cart/add?item=I000123"), "cart_add");
        assert_eq!(page_type("/category/shoes"), "category");
        assert_eq!(page_type("/search?q=red+shoes"), "search");
        assert_eq!(page_type("/checkout/complete"), "checkout");
        assert_eq!(page_type("/"), "home");
        assert_eq!(page_type(""), "home");
        assert_eq!(page_type("https://shop.example"), "home");
        assert_eq!(page_type("/about"), "other");
        assert_eq!(page_type("/product/"), "other");
    }

    #[test]
    fn item_ids() {
        assert_eq!(
            parse_item_id("/product/I000123?utm_source=email"),
            Some("I000123")
        );
        assert_eq!(
            parse_item_id("/cart/add?item=I000123&qty=2"),
            Some("I000123")
        );
        assert_eq!(parse_item_id("/cart/add?qty=2"), None);
        assert_eq!(parse_item_id("/cart/add?item="), None);
        assert_eq!(parse_item_id("/product/I1#reviews"), Some("I1"));
        assert_eq!(parse_item_id("/product/<script>"), None);
        assert_eq!(parse_item_id("/category/shoes"), None);
        assert_eq!(parse_item_id("%%%"), None);
    }
}

/// Malformed input, generated: the parsers must never panic, and what they return must still
/// be one of the documented answers.
#[cfg(test)]
mod fuzz {
    use super::*;
    use crate::scalar::is_crawler::is_crawler_agent;

    /// SplitMix64: deterministic, so a failure reproduces.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// A string built from URL-ish pieces, random bytes (made valid UTF-8) and multi-byte
    /// characters, so that byte offsets land inside characters too.
    fn malformed(rng: &mut Rng) -> String {
        const PIECES: &[&str] = &[
            "/",
            "//",
            "?",
            "&",
            "=",
            "#",
            "://",
            "product",
            "cart",
            "add",
            "item=",
            "category",
            "search",
            "checkout",
            "complete",
            "I000123",
            "%2F",
            "é",
            "日本",
            "🙂",
            " ",
            "\t",
            "..",
            "http",
            "https",
            "p",
            "c",
            "account",
            "\u{0}",
            "?item=",
            "/product/",
        ];
        let mut s = String::new();
        for _ in 0..rng.below(12) {
            match rng.below(3) {
                0 => {
                    let bytes: Vec<u8> = (0..rng.below(6)).map(|_| rng.next() as u8).collect();
                    s.push_str(&String::from_utf8_lossy(&bytes));
                }
                _ => s.push_str(PIECES[rng.below(PIECES.len())]),
            }
        }
        if rng.below(4) == 0 {
            s.push_str(&"x".repeat(rng.below(200)));
        }
        s
    }

    #[test]
    fn random_malformed_urls_and_user_agents_never_panic() {
        let kinds = [
            "product", "cart_add", "category", "search", "checkout", "home", "account", "other",
        ];
        let mut rng = Rng(2026);
        for _ in 0..50_000 {
            let s = malformed(&mut rng);
            assert!(kinds.contains(&page_type(&s)), "{s:?}");
            if let Some(id) = parse_item_id(&s) {
                assert!(!id.is_empty() && id.len() <= 64, "{s:?} gave item {id:?}");
                assert!(s.contains(id), "{s:?} gave item {id:?}");
            }
            // Any answer is fine for a user agent; it must just not panic.
            let _ = is_crawler_agent(Some(&s));
        }
    }
}
