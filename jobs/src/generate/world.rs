//! The hidden world behind the generated data: customer types, tastes, the item catalog.
//!
//! Nothing here is written out directly; it drives behaviour, so that segments and
//! recommendations have real structure to find (and tests can check they find it).

use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

use super::family::TypeMix;

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

/// How far one customer's activity strays from their type's: the standard deviation of its
/// logarithm (0.3: a third of customers are more than 35% above or 26% below their type).
const ACTIVITY_SPREAD: f64 = 0.3;
/// How far one customer's share of app sessions strays from their type's (uniform, ±).
const APP_SHARE_SPREAD: f64 = 0.1;
/// How far one customer's purchase rate strays from their type's (log standard deviation).
const PURCHASE_SPREAD: f64 = 0.25;

/// A hidden behavioural type. Segmentation should recover these; `persona generate` writes
/// each customer's type to `_truth/customers` (never read by `persona run`).
///
/// Types overlap as real customers do: each customer's activity, channel lean and purchase
/// rate are drawn around the type's, some customers start mid-window (new sign-ups), and tastes
/// span two or three categories.
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
    /// In the CRM, but no event in the window (a win-back campaign's audience).
    Dormant,
}

impl CustomerType {
    const ALL: [(CustomerType, f64); 6] = [
        (CustomerType::LoyalBigSpender, 0.10),
        (CustomerType::BargainBrowser, 0.20),
        (CustomerType::MobileRegular, 0.22),
        (CustomerType::Occasional, 0.24),
        (CustomerType::Lapsed, 0.10),
        (CustomerType::Dormant, 0.14),
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

    /// The type's name in `_truth/customers`.
    pub fn name(self) -> &'static str {
        match self {
            CustomerType::LoyalBigSpender => "loyal_big_spender",
            CustomerType::BargainBrowser => "bargain_browser",
            CustomerType::MobileRegular => "mobile_regular",
            CustomerType::Occasional => "occasional",
            CustomerType::Lapsed => "lapsed",
            CustomerType::Dormant => "dormant",
        }
    }

    /// Expected sessions per day on day `day` (0-based) of a window of `days`; days past the
    /// window are the hidden next week.
    pub fn sessions_per_day(self, day: u32, days: u32) -> f64 {
        match self {
            CustomerType::LoyalBigSpender => 0.55,
            CustomerType::BargainBrowser => 0.6,
            CustomerType::MobileRegular => 0.4,
            CustomerType::Occasional => 0.07,
            CustomerType::Lapsed if day < days / 4 => 0.35,
            CustomerType::Lapsed => 0.005,
            CustomerType::Dormant if day < days => 0.0,
            CustomerType::Dormant => 0.01,
        }
    }

    /// Probability that an add-to-cart ends in a purchase.
    pub fn purchase_rate(self) -> f64 {
        match self {
            CustomerType::LoyalBigSpender => 0.75,
            CustomerType::BargainBrowser => 0.08,
            CustomerType::MobileRegular => 0.35,
            CustomerType::Occasional => 0.4,
            CustomerType::Lapsed | CustomerType::Dormant => 0.3,
        }
    }

    /// Probability that a session happens in the app rather than on the web.
    pub fn app_share(self) -> f64 {
        match self {
            CustomerType::LoyalBigSpender => 0.8,
            CustomerType::BargainBrowser => 0.1,
            CustomerType::MobileRegular => 0.95,
            CustomerType::Occasional => 0.4,
            CustomerType::Lapsed | CustomerType::Dormant => 0.5,
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
    /// Favourite categories (indices into [`CATEGORIES`]), most liked first: two or three.
    pub favourites: Vec<usize>,
    /// Preferred style.
    pub style: usize,
    /// This customer's sessions per day relative to the type's (log-normal around 1).
    pub activity: f64,
    /// This customer's probability that a session is in the app.
    pub app_share: f64,
    /// This customer's probability that a cart add is bought.
    pub purchase_rate: f64,
    /// Hour of the day around which sessions start.
    pub peak_hour: f64,
    /// First day of the window with activity: 0, or later for a customer who signed up during
    /// the window.
    pub first_day: u32,
    /// Browser cookies (one per device); the customer logs in on these.
    pub cookies: Vec<String>,
    /// Mobile platform when using the app.
    pub mobile: &'static str,
    /// App device id.
    pub device_id: String,
    /// Missing from the CRM export (a data-quality case).
    pub missing_from_crm: bool,
    /// How the types differ in this shop.
    pub mix: TypeMix,
}

impl Customer {
    /// Expected sessions on day `day` of a window of `days`.
    pub fn sessions_per_day(&self, day: u32, days: u32) -> f64 {
        if day < self.first_day {
            return 0.0;
        }
        self.mix.sessions_per_day(self.kind, day, days) * self.activity
    }
}

/// A standard normal draw (Box–Muller).
pub fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let (u1, u2): (f64, f64) = (rng.random(), rng.random());
    (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
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
    /// How the hidden types differ.
    pub mix: TypeMix,
}

impl World {
    /// Builds a world of `n_customers` and `n_items` whose types differ as `mix` says.
    pub fn new(
        rng: &mut ChaCha8Rng,
        n_customers: usize,
        n_items: usize,
        days: u32,
        mix: TypeMix,
    ) -> Self {
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
        let customers = (0..n_customers)
            .map(|c| Self::customer(rng, c, days, mix))
            .collect();
        Self {
            customers,
            items,
            by_category_style,
            mix,
        }
    }

    fn customer(rng: &mut ChaCha8Rng, c: usize, days: u32, mix: TypeMix) -> Customer {
        let shop = mix == TypeMix::default();
        let kind = CustomerType::draw(rng);
        let mut favourites = Vec::with_capacity(3);
        let wanted = if rng.random::<f64>() < 0.3 { 3 } else { 2 };
        while favourites.len() < wanted {
            // A type has two categories of its own: a third favourite is any other.
            let category = if shop || favourites.len() >= 2 {
                rng.random_range(0..CATEGORIES.len())
            } else {
                mix.favourite(rng, kind)
            };
            if !favourites.contains(&category) {
                favourites.push(category);
            }
        }
        let cookies = (0..rng.random_range(1..=2))
            .map(|_| format!("ck-{:016x}", rng.random::<u64>()))
            .collect();
        // 8% of the active customers signed up during the window and start on that day.
        let first_day = if kind != CustomerType::Dormant && rng.random::<f64>() < 0.08 {
            rng.random_range(days / 4..days.max(1))
        } else {
            0
        };
        let jitter = |rng: &mut ChaCha8Rng, base: f64, spread: f64| {
            (base + spread * (2.0 * rng.random::<f64>() - 1.0)).clamp(0.02, 0.98)
        };
        Customer {
            id: format!("C{:07}", c + 1),
            kind,
            favourites,
            style: rng.random_range(0..STYLES),
            activity: (ACTIVITY_SPREAD * normal(rng)).exp(),
            app_share: jitter(rng, mix.app_share(kind), APP_SHARE_SPREAD),
            purchase_rate: mix.purchase_rate(kind) * (PURCHASE_SPREAD * normal(rng)).exp().min(2.0),
            peak_hour: if shop {
                (rng.random_range(8.0..22.0f64) + rng.random_range(8.0..22.0f64)) / 2.0
            } else {
                mix.peak_hour(rng, kind)
            },
            first_day,
            cookies,
            mobile: if shop {
                ["ios", "android"].choose(rng).unwrap_or(&"ios")
            } else {
                mix.mobile(rng, kind)
            },
            device_id: format!("dev-{:012x}", rng.random::<u64>() >> 16),
            missing_from_crm: rng.random::<f64>() < 0.02,
            mix,
        }
    }

    /// Picks an item a customer looks at: mostly from a favourite category and preferred style,
    /// popular items more often (Zipf-like), price level by type.
    pub fn pick_item(&self, rng: &mut ChaCha8Rng, customer: &Customer) -> usize {
        // Two favourites take 55% and 30% of the looks, three 40%, 25% and 20%; the rest wander.
        let weights: &[f64] = if customer.favourites.len() == 3 {
            &[0.4, 0.25, 0.2]
        } else {
            &[0.55, 0.3]
        };
        let mut u: f64 = rng.random();
        let mut category = None;
        for (&favourite, &w) in customer.favourites.iter().zip(weights) {
            if u < w {
                category = Some(favourite);
                break;
            }
            u -= w;
        }
        let category = category.unwrap_or_else(|| rng.random_range(0..CATEGORIES.len()));
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
        let bias = customer.mix.price_bias(customer.kind);
        let cheap = self.items[idx].price < 30.0;
        if (bias > 0.6 && cheap) || (bias < 0.3 && !cheap) {
            idx = pool[rng.random_range(0..pool.len())];
        }
        idx
    }
}
