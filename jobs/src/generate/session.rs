//! One day of simulated behaviour: sessions in the app and on the web, page views, cart adds and
//! purchases, plus crawler and anonymous background traffic and the data-quality dirt.

use arrow::datatypes::SchemaRef;
use chrono::NaiveDate;
use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

use super::rows::TruthRows;
use super::rows::{AppRows, WebRows};
use super::sink::ParquetSink;
use super::world::{CATEGORIES, Customer, World, normal};
use crate::error::Result;

/// Sessions per day are the type's base rate times this, tuned so `medium` has ~10M rows per source.
const INTENSITY: f64 = 1.8;
/// Rows buffered before a flush to Parquet.
const FLUSH_ROWS: usize = 64 * 1024;
const MICROS_PER_SECOND: i64 = 1_000_000;

const BROWSERS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
];
const CRAWLERS: &[&str] = &[
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "python-requests/2.31.0",
    "curl/8.5.0",
];
const REFERRERS: &[&str] = &[
    "https://www.google.com/",
    "https://www.instagram.com/",
    "https://newsletter.example/",
];
const UTM: &[&str] = &["email", "social", "search", "display"];

/// Builds one day's rows for `web_logs` and `app_events`.
pub struct DayWriter<'w> {
    world: &'w World,
    day_start: i64,
    day: u32,
    days: u32,
    web: WebRows,
    app: AppRows,
    late_web: WebRows,
    late_app: AppRows,
    /// Customer web-log rows generated today (the buffer is flushed, so its length is not it).
    web_rows_today: usize,
    /// When simulating the hidden next week: every customer's item interactions, clean.
    truth: Option<TruthRows>,
    /// Purchases made so far (a planted campaign asks who purchased on their own).
    pub purchases: u64,
}

impl<'w> DayWriter<'w> {
    /// A writer for `date`, day `day` of `days`.
    pub fn new(world: &'w World, date: NaiveDate, day: u32, days: u32) -> Self {
        let day_start = date
            .and_hms_opt(0, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp())
            * MICROS_PER_SECOND;
        Self {
            world,
            day_start,
            day,
            days,
            web: WebRows::default(),
            app: AppRows::default(),
            late_web: WebRows::default(),
            late_app: AppRows::default(),
            web_rows_today: 0,
            truth: None,
            purchases: 0,
        }
    }

    /// Also records every item interaction, without the dirt, for the hidden truth.
    pub fn recording_truth(mut self) -> Self {
        self.truth = Some(TruthRows::default());
        self
    }

    /// The interactions recorded since the last call, and the raw rows dropped (the truth
    /// needs only the interactions).
    pub fn take_truth(&mut self) -> TruthRows {
        self.web = WebRows::default();
        self.app = AppRows::default();
        self.late_web = WebRows::default();
        self.late_app = AppRows::default();
        self.truth.as_mut().map(std::mem::take).unwrap_or_default()
    }

    fn note(&mut self, c: &Customer, item: usize, event: &'static str, ts: i64) {
        if let Some(truth) = &mut self.truth {
            truth.push(&c.id, &self.world.items[item].id, event, ts);
        }
    }

    /// Simulates one customer's sessions for the day.
    pub fn customer_day(&mut self, rng: &mut ChaCha8Rng, customer: &Customer) {
        let rate = customer.sessions_per_day(self.day, self.days) * INTENSITY;
        for _ in 0..poisson(rng, rate) {
            // Around the customer's own peak hour, give or take about three hours.
            let hours = (customer.peak_hour + 3.0 * normal(rng)).clamp(0.0, 23.9);
            let start = self.day_start + (hours * 3600.0 * MICROS_PER_SECOND as f64) as i64;
            if rng.random::<f64>() < customer.app_share {
                self.app_session(rng, customer, start);
            } else {
                self.web_session(rng, customer, start);
            }
        }
    }

    fn app_session(&mut self, rng: &mut ChaCha8Rng, c: &Customer, mut ts: i64) {
        let id = Some(c.id.clone());
        let platform = c.mobile;
        self.push_app(
            rng,
            ts,
            id.clone(),
            &c.device_id,
            platform,
            "app_open",
            None,
            None,
            None,
        );
        if rng.random::<f64>() < 0.25 {
            ts += step(rng, 5, 40);
            self.push_app(
                rng,
                ts,
                id.clone(),
                &c.device_id,
                platform,
                "search",
                None,
                None,
                None,
            );
        }
        for _ in 0..1 + geometric(rng, 0.45) {
            ts += step(rng, 15, 150);
            let item = self.world.pick_item(rng, c);
            let item_id = Some(self.world.items[item].id.clone());
            self.note(c, item, "view", ts);
            self.push_app(
                rng,
                ts,
                id.clone(),
                &c.device_id,
                platform,
                "view",
                item_id.clone(),
                None,
                None,
            );
            if rng.random::<f64>() < 0.2 {
                ts += step(rng, 2, 20);
                self.push_app(
                    rng,
                    ts,
                    id.clone(),
                    &c.device_id,
                    platform,
                    "click",
                    item_id.clone(),
                    None,
                    None,
                );
            }
            if rng.random::<f64>() < 0.22 {
                ts += step(rng, 10, 60);
                self.note(c, item, "add_to_cart", ts);
                self.push_app(
                    rng,
                    ts,
                    id.clone(),
                    &c.device_id,
                    platform,
                    "add_to_cart",
                    item_id.clone(),
                    Some(1),
                    None,
                );
                if rng.random::<f64>() < c.purchase_rate {
                    ts += step(rng, 30, 300);
                    let (qty, price) = (rng.random_range(1..=2), self.world.items[item].price);
                    self.note(c, item, "purchase", ts);
                    self.purchases += 1;
                    self.push_app(
                        rng,
                        ts,
                        id.clone(),
                        &c.device_id,
                        platform,
                        "purchase",
                        item_id,
                        Some(qty),
                        Some(price),
                    );
                }
            }
        }
    }

    fn web_session(&mut self, rng: &mut ChaCha8Rng, c: &Customer, mut ts: i64) {
        let cookie = c.cookies.choose(rng).cloned();
        let ua = *BROWSERS.choose(rng).unwrap_or(&BROWSERS[0]);
        let ip = format!(
            "198.51.{}.{}",
            rng.random_range(0..=255),
            rng.random_range(1..=254)
        );
        // The visitor logs in at page `login_at`; 20% of sessions never do (stitched by cookie).
        let login_at = if rng.random::<f64>() < 0.2 {
            usize::MAX
        } else {
            rng.random_range(0..3)
        };
        let mut page = 0;
        let mut visit =
            |w: &mut Self, rng: &mut ChaCha8Rng, ts: i64, method: &'static str, url: String| {
                let customer = (page >= login_at).then(|| c.id.clone());
                let referrer = (page == 0 && rng.random::<f64>() < 0.5)
                    .then(|| REFERRERS.choose(rng).map(|r| r.to_string()))
                    .flatten();
                w.push_web(
                    rng,
                    ts,
                    cookie.clone(),
                    customer,
                    method,
                    url,
                    referrer,
                    ua,
                    ip.clone(),
                );
                page += 1;
            };
        visit(self, rng, ts, "GET", "/".into());
        let favourite = CATEGORIES[c.favourites[0]];
        ts += step(rng, 5, 60);
        if rng.random::<f64>() < 0.3 {
            visit(self, rng, ts, "GET", format!("/search?q={favourite}"));
        } else {
            visit(self, rng, ts, "GET", format!("/category/{favourite}"));
        }
        let mut bought = Vec::new();
        for _ in 0..1 + geometric(rng, 0.4) {
            ts += step(rng, 15, 180);
            let item = self.world.pick_item(rng, c);
            let id = self.world.items[item].id.clone();
            let utm = if rng.random::<f64>() < 0.3 {
                format!("?utm_source={}", UTM.choose(rng).unwrap_or(&"email"))
            } else {
                String::new()
            };
            self.note(c, item, "view", ts);
            visit(self, rng, ts, "GET", format!("/product/{id}{utm}"));
            if rng.random::<f64>() < 0.2 {
                ts += step(rng, 10, 60);
                self.note(c, item, "add_to_cart", ts);
                visit(self, rng, ts, "POST", format!("/cart/add?item={id}"));
                if rng.random::<f64>() < c.purchase_rate {
                    bought.push(item);
                }
            }
        }
        if !bought.is_empty() {
            ts += step(rng, 60, 400);
            visit(self, rng, ts, "GET", "/checkout/complete".into());
            // Orders reach app_events through the order service, whatever the channel.
            let device = cookie.clone().unwrap_or_default();
            for item in bought {
                self.note(c, item, "purchase", ts);
                self.purchases += 1;
                let (id, price) = (
                    self.world.items[item].id.clone(),
                    self.world.items[item].price,
                );
                let qty = rng.random_range(1..=2);
                self.push_app(
                    rng,
                    ts,
                    Some(c.id.clone()),
                    &device,
                    "web",
                    "purchase",
                    Some(id),
                    Some(qty),
                    Some(price),
                );
            }
        }
    }

    /// A planted campaign's extra order: an app purchase of an item the customer likes, at a
    /// random time of the day, drawn from the campaign's own `rng`.
    pub fn campaign_order(&mut self, rng: &mut ChaCha8Rng, c: &Customer) {
        let ts = self.day_start + rng.random_range(8 * 3600..22 * 3600) * MICROS_PER_SECOND;
        let item = self.world.pick_item(rng, c);
        let (id, price) = (
            self.world.items[item].id.clone(),
            self.world.items[item].price,
        );
        self.note(c, item, "purchase", ts);
        self.push_app(
            rng,
            ts,
            Some(c.id.clone()),
            &c.device_id,
            c.mobile,
            "purchase",
            Some(id),
            Some(1),
            Some(price),
        );
    }

    /// Crawlers and visitors who never log in, until they make `anonymous_share` of the day's
    /// web rows (real sites see 30–60%): a third crawler hits, the rest short anonymous visits
    /// (home, a category, a few products) under a cookie that never logs in.
    pub fn background_traffic(&mut self, rng: &mut ChaCha8Rng, anonymous_share: f64) {
        let customers = self.web_rows_today as f64;
        let target = (customers * anonymous_share / (1.0 - anonymous_share)).round() as usize;
        let mut written = 0;
        while written < target {
            let mut ts = self.day_start + rng.random_range(0..86_400) * MICROS_PER_SECOND;
            let ip = format!("203.0.113.{}", rng.random_range(1..=254));
            if rng.random::<f64>() < 1.0 / 3.0 {
                let ua = *CRAWLERS.choose(rng).unwrap_or(&CRAWLERS[0]);
                let url = self.random_product_url(rng);
                self.push_web(rng, ts, None, None, "GET", url, None, ua, ip);
                written += 1;
                continue;
            }
            let cookie = Some(format!("ck-anon-{:012x}", rng.random::<u64>() >> 16));
            let ua = *BROWSERS.choose(rng).unwrap_or(&BROWSERS[0]);
            let category = CATEGORIES.choose(rng).unwrap_or(&CATEGORIES[0]);
            let pages = 1 + geometric(rng, 0.35).min(6);
            for page in 0..pages {
                let url = match page {
                    0 => "/".to_string(),
                    1 => format!("/category/{category}"),
                    _ => self.random_product_url(rng),
                };
                let referrer = (page == 0)
                    .then(|| REFERRERS.choose(rng).map(|r| r.to_string()))
                    .flatten();
                self.push_web(
                    rng,
                    ts,
                    cookie.clone(),
                    None,
                    "GET",
                    url,
                    referrer,
                    ua,
                    ip.clone(),
                );
                ts += step(rng, 5, 90);
            }
            written += pages;
        }
    }

    fn random_product_url(&self, rng: &mut ChaCha8Rng) -> String {
        let item = rng.random_range(0..self.world.items.len());
        format!("/product/{}", self.world.items[item].id)
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per contract column"
    )]
    fn push_web(
        &mut self,
        rng: &mut ChaCha8Rng,
        ts: i64,
        cookie: Option<String>,
        customer: Option<String>,
        method: &'static str,
        url: String,
        referrer: Option<String>,
        ua: &'static str,
        ip: String,
    ) {
        let (ts, late) = self.dirty_time(rng, ts);
        self.web_rows_today += 1;
        let rows = if late {
            &mut self.late_web
        } else {
            &mut self.web
        };
        let status = match rng.random::<f64>() {
            u if u < 0.01 => 404,
            u if u < 0.012 => 500,
            _ => 200,
        };
        rows.ts.push(ts);
        rows.cookie_id.push(cookie);
        rows.customer_id.push(customer);
        rows.method.push(method);
        rows.url.push(url);
        rows.status.push(status);
        rows.bytes.push(rng.random_range(800..60_000));
        rows.referrer.push(referrer);
        rows.user_agent.push(ua);
        rows.ip.push(ip);
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per contract column"
    )]
    fn push_app(
        &mut self,
        rng: &mut ChaCha8Rng,
        ts: i64,
        customer: Option<String>,
        device: &str,
        platform: &'static str,
        event_type: &'static str,
        item: Option<String>,
        quantity: Option<i32>,
        price: Option<f64>,
    ) {
        let (ts, late) = self.dirty_time(rng, ts);
        // A few events lose their customer id in transit.
        let customer = if rng.random::<f64>() < 0.001 {
            None
        } else {
            customer
        };
        let rows = if late {
            &mut self.late_app
        } else {
            &mut self.app
        };
        rows.push(
            ts, customer, device, platform, event_type, item, quantity, price,
        );
    }

    /// 2% of events arrive late (next day's partition); 0.1% carry a clock 3 days ahead.
    fn dirty_time(&self, rng: &mut ChaCha8Rng, ts: i64) -> (i64, bool) {
        let u: f64 = rng.random();
        if u < 0.001 {
            (ts + 3 * 86_400 * MICROS_PER_SECOND, false)
        } else {
            (ts, u < 0.021)
        }
    }

    /// Flushes when a buffer is full.
    pub fn flush_if_full(
        &mut self,
        rng: &mut ChaCha8Rng,
        web_sink: &mut ParquetSink,
        app_sink: &mut ParquetSink,
        web_schema: &SchemaRef,
        app_schema: &SchemaRef,
    ) -> Result<()> {
        if self.web.len() >= FLUSH_ROWS || self.app.len() >= FLUSH_ROWS {
            self.flush(rng, web_sink, app_sink, web_schema, app_schema)?;
        }
        Ok(())
    }

    /// Adds 1% exact duplicates (as at-least-once log shipping does) and writes the buffers.
    pub fn flush(
        &mut self,
        rng: &mut ChaCha8Rng,
        web_sink: &mut ParquetSink,
        app_sink: &mut ParquetSink,
        web_schema: &SchemaRef,
        app_schema: &SchemaRef,
    ) -> Result<()> {
        for _ in 0..self.web.len() / 100 {
            let i = rng.random_range(0..self.web.len());
            self.web.duplicate(i);
        }
        for _ in 0..self.app.len() / 100 {
            let i = rng.random_range(0..self.app.len());
            self.app.duplicate(i);
        }
        web_sink.write(&self.web.take_batch(web_schema)?)?;
        app_sink.write(&self.app.take_batch(app_schema)?)?;
        Ok(())
    }

    /// The rows that belong in the next day's partitions.
    pub fn into_late(self) -> (WebRows, AppRows) {
        (self.late_web, self.late_app)
    }
}

/// Seconds between `lo` and `hi`, in microseconds.
fn step(rng: &mut ChaCha8Rng, lo: i64, hi: i64) -> i64 {
    rng.random_range(lo..=hi) * MICROS_PER_SECOND
}

/// Number of failures before the first success with probability `p`.
fn geometric(rng: &mut ChaCha8Rng, p: f64) -> usize {
    let mut n = 0;
    while rng.random::<f64>() > p && n < 30 {
        n += 1;
    }
    n
}

/// A Poisson draw (Knuth's method; rates here are small).
fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> usize {
    let limit = (-lambda).exp();
    let (mut k, mut p) = (0, 1.0);
    loop {
        p *= rng.random::<f64>();
        if p <= limit || k > 50 {
            return k;
        }
        k += 1;
    }
}
