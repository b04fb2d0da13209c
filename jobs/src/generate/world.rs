//! The hidden world behind the generated data: customer types, tastes, the item catalog.
//!
//! Nothing here is written out directly; it drives behaviour, so that segments and
//! recommendations have real structure to find (and tests can check they find it).

use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

/// Product categories of the demo shop.
pub const CATEGORIES: &[&str] = &[
    "shoes",
    "apparel",
    "electronics",
    "home",
    "beauty",
    "sports",
    "toys",
    "books",
    "garden",
    "grocery",
    "jewelry",
    "outdoor",
];

/// Styles within a category; each customer prefers one, which gives ALS structure beyond the
/// category.
pub const STYLES: usize = 3;

/// A hidden behavioural type. Segmentation should recover these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CustomerType {
    /// Frequent, buys often and expensive, mostly in the app.
    LoyalBigSpender,
    /// Browses a lot on the web, rarely buys, cheap items.
    BargainBrowser,
    /// Regular app user with average spend.
    MobileRegular,
    /// Visits rarely.
    Occasional,
    /// Was active early in the window, then stopped.
    Lapsed,
}

impl CustomerType {
    const ALL: [(CustomerType, f64); 5] = [
        (CustomerType::LoyalBigSpender, 0.12),
        (CustomerType::BargainBrowser, 0.25),
        (CustomerType::MobileRegular, 0.25),
        (CustomerType::Occasional, 0.28),
        (CustomerType::Lapsed, 0.10),
    ];

    fn draw(rng: &mut ChaCha8Rng) -> Self {
        let mut u: f64 = rng.random();
        for (t, p) in Self::ALL {
            if u < p {
                return t;
            }
            u -= p;
        }
        CustomerType::Occasional
    }

    /// Expected sessions per day on day `day` of the window (0-based) of `days`.
    pub fn sessions_per_day(self, day: u32, days: u32) -> f64 {
        match self {
            CustomerType::LoyalBigSpender => 0.55,
            CustomerType::BargainBrowser => 0.6,
            CustomerType::MobileRegular => 0.4,
            CustomerType::Occasional => 0.07,
            CustomerType::Lapsed if day < days / 4 => 0.35,
            CustomerType::Lapsed => 0.005,
        }
    }

    /// Probability that an add-to-cart ends in a purchase.
    pub fn purchase_rate(self) -> f64 {
        match self {
            CustomerType::LoyalBigSpender => 0.75,
            CustomerType::BargainBrowser => 0.08,
            CustomerType::MobileRegular => 0.35,
            CustomerType::Occasional => 0.4,
            CustomerType::Lapsed => 0.3,
        }
    }

    /// Probability that a session happens in the app rather than on the web.
    pub fn app_share(self) -> f64 {
        match self {
            CustomerType::LoyalBigSpender => 0.8,
            CustomerType::BargainBrowser => 0.1,
            CustomerType::MobileRegular => 0.95,
            CustomerType::Occasional => 0.4,
            CustomerType::Lapsed => 0.5,
        }
    }

    /// Preferred price level: items cheaper than this quantile of their category are favoured
    /// by thrifty types, dearer ones by big spenders.
    pub fn price_bias(self) -> f64 {
        match self {
            CustomerType::LoyalBigSpender => 0.8,
            CustomerType::BargainBrowser => 0.15,
            _ => 0.5,
        }
    }
}

/// A generated customer.
#[derive(Debug, Clone)]
pub struct Customer {
    /// `C0000001`-style id.
    pub id: String,
    /// Hidden type.
    pub kind: CustomerType,
    /// Favourite categories (indices into [`CATEGORIES`]), most liked first.
    pub favourites: [usize; 2],
    /// Preferred style.
    pub style: usize,
    /// Browser cookies (one per device); the customer logs in on these.
    pub cookies: Vec<String>,
    /// Mobile platform when using the app.
    pub mobile: &'static str,
    /// App device id.
    pub device_id: String,
    /// Missing from the CRM export (a data-quality case).
    pub missing_from_crm: bool,
}

/// A catalog item.
#[derive(Debug, Clone)]
pub struct Item {
    /// `I000123`-style id.
    pub id: String,
    /// Index into [`CATEGORIES`].
    pub category: usize,
    /// Style within the category.
    pub style: usize,
    /// Brand name.
    pub brand: String,
    /// List price.
    pub price: f64,
    /// Whether the item is in the exported catalog (some discontinued items are not).
    pub in_catalog: bool,
}

/// The generated shop: customers, items, and per-category item lists ordered by popularity.
#[derive(Debug)]
pub struct World {
    /// Customers.
    pub customers: Vec<Customer>,
    /// Items.
    pub items: Vec<Item>,
    /// For each (category, style), item indices, most popular first.
    pub by_category_style: Vec<Vec<Vec<usize>>>,
}

impl World {
    /// Builds a world of `n_customers` and `n_items`.
    pub fn new(rng: &mut ChaCha8Rng, n_customers: usize, n_items: usize) -> Self {
        let items: Vec<Item> = (0..n_items)
            .map(|i| {
                let category = i % CATEGORIES.len();
                let base = 8.0 + 12.0 * (category as f64 % 5.0);
                let price =
                    (base * (rng.random::<f64>() * 2.0 - 0.6).exp() * 100.0).round() / 100.0;
                Item {
                    id: format!("I{:06}", i + 1),
                    category,
                    style: rng.random_range(0..STYLES),
                    brand: format!("{}-brand-{}", CATEGORIES[category], rng.random_range(1..=6)),
                    price,
                    in_catalog: rng.random::<f64>() > 0.03,
                }
            })
            .collect();
        let mut by_category_style = vec![vec![Vec::new(); STYLES]; CATEGORIES.len()];
        for (i, item) in items.iter().enumerate() {
            by_category_style[item.category][item.style].push(i);
        }
        let customers = (0..n_customers).map(|c| Self::customer(rng, c)).collect();
        Self {
            customers,
            items,
            by_category_style,
        }
    }

    fn customer(rng: &mut ChaCha8Rng, c: usize) -> Customer {
        let first = rng.random_range(0..CATEGORIES.len());
        let mut second = rng.random_range(0..CATEGORIES.len() - 1);
        if second >= first {
            second += 1;
        }
        let cookies = (0..rng.random_range(1..=2))
            .map(|_| format!("ck-{:016x}", rng.random::<u64>()))
            .collect();
        Customer {
            id: format!("C{:07}", c + 1),
            kind: CustomerType::draw(rng),
            favourites: [first, second],
            style: rng.random_range(0..STYLES),
            cookies,
            mobile: ["ios", "android"].choose(rng).unwrap_or(&"ios"),
            device_id: format!("dev-{:012x}", rng.random::<u64>() >> 16),
            missing_from_crm: rng.random::<f64>() < 0.02,
        }
    }

    /// Picks an item a customer looks at: mostly from a favourite category and preferred style,
    /// popular items more often (Zipf-like), price level by type.
    pub fn pick_item(&self, rng: &mut ChaCha8Rng, customer: &Customer) -> usize {
        let u: f64 = rng.random();
        let category = if u < 0.55 {
            customer.favourites[0]
        } else if u < 0.85 {
            customer.favourites[1]
        } else {
            rng.random_range(0..CATEGORIES.len())
        };
        let style = if rng.random::<f64>() < 0.75 {
            customer.style
        } else {
            rng.random_range(0..STYLES)
        };
        let pool = &self.by_category_style[category][style];
        if pool.is_empty() {
            return rng.random_range(0..self.items.len());
        }
        // Zipf-ish: index = floor(n * u^2.2) favours the head of the list.
        let head: f64 = rng.random::<f64>().powf(2.2);
        let mut idx = pool[((pool.len() as f64) * head) as usize % pool.len()];
        // Thrifty or lavish customers re-draw items on the wrong side of their price level.
        let bias = customer.kind.price_bias();
        let cheap = self.items[idx].price < 30.0;
        if (bias > 0.6 && cheap) || (bias < 0.3 && !cheap) {
            idx = pool[rng.random_range(0..pool.len())];
        }
        idx
    }
}
