//! The CRM export and the item catalog.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Date32Array, Float64Array, StringArray};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use rand::Rng;
use rand::seq::IndexedRandom;
use rand_chacha::ChaCha8Rng;

use super::family::TypeMix;
use super::sink::ParquetSink;
use super::world::{CATEGORIES, CustomerType, World, normal};
use crate::contract;
use crate::error::Result;

const COUNTRIES: &[(&str, &[&str])] = &[
    ("DE", &["Berlin", "Hamburg", "Munich"]),
    ("FR", &["Paris", "Lyon"]),
    ("NL", &["Amsterdam", "Utrecht"]),
    ("ES", &["Madrid", "Barcelona"]),
    ("IT", &["Milan", "Rome"]),
];

fn days_since_epoch(date: NaiveDate) -> i32 {
    (date - NaiveDate::default()).num_days() as i32
}

/// Writes `crm_customers/part-00000.parquet`: one row per customer (2% missing), with nulls,
/// 1% impossible birth dates, and income and tier that follow the hidden type.
pub fn write_customers(
    rng: &mut ChaCha8Rng,
    world: &World,
    dir: &Path,
    today: NaiveDate,
    window_days: u32,
) -> Result<u64> {
    let today_days = days_since_epoch(today);
    let window_start = today_days - window_days as i32 + 1;
    let (mut id, mut email, mut birth, mut gender, mut country, mut city) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut income, mut signup, mut tier, mut opt_in) = (vec![], vec![], vec![], vec![]);
    let shop = world.mix == TypeMix::default();
    for c in world.customers.iter().filter(|c| !c.missing_from_crm) {
        let rich = c.kind == CustomerType::LoyalBigSpender;
        let demo = world.mix.demographics(c.kind);
        id.push(c.id.clone());
        email.push(format!("{}@example.com", c.id.to_lowercase()));
        // App regulars skew young, big spenders older (the demo shop); or the family
        // member's demographics.
        let age_days = match c.kind {
            _ if !shop => ((demo.age + 8.0 * normal(rng)).clamp(18.0, 90.0) * 365.0) as i32,
            CustomerType::MobileRegular => rng.random_range(18 * 365..45 * 365),
            CustomerType::LoyalBigSpender => rng.random_range(30 * 365..75 * 365),
            _ => rng.random_range(18 * 365..75 * 365),
        };
        birth.push(match rng.random::<f64>() {
            u if u < 0.005 => Some(days_since_epoch(
                NaiveDate::from_ymd_opt(1850, 1, 1).unwrap_or_default(),
            )),
            u if u < 0.01 => Some(today_days + 400),
            u if u < 0.08 => None,
            _ => Some(today_days - age_days),
        });
        gender.push(if rng.random::<f64>() < 0.1 {
            None
        } else if !shop && rng.random::<f64>() < demo.gender_lean {
            Some(demo.gender)
        } else {
            ["f", "m", "d"].choose(rng).copied()
        });
        let (cc, cities) = COUNTRIES.choose(rng).copied().unwrap_or(COUNTRIES[0]);
        country.push(cc);
        city.push(if rng.random::<f64>() < 0.05 {
            None
        } else {
            cities.choose(rng).copied()
        });
        let base = match (shop, rich) {
            (false, _) => demo.income,
            (true, true) => 95_000.0,
            (true, false) => 42_000.0,
        };
        income.push(
            (rng.random::<f64>() > 0.15).then(|| (base * (0.5 + rng.random::<f64>())).round()),
        );
        signup.push(if c.first_day > 0 {
            window_start + c.first_day as i32
        } else {
            window_start - rng.random_range(1..3 * 365)
        });
        let u: f64 = rng.random();
        tier.push(match (rich, u) {
            _ if !shop && u < demo.premium / 2.0 => "platinum",
            _ if !shop && u < demo.premium => "gold",
            _ if !shop && u < demo.premium + 0.2 => "silver",
            _ if !shop => "none",
            (true, u) if u < 0.4 => "platinum",
            (true, u) if u < 0.85 => "gold",
            (_, u) if u < 0.1 => "gold",
            (_, u) if u < 0.3 => "silver",
            _ => "none",
        });
        opt_in.push(rng.random::<f64>() < 0.7);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(id)),
        Arc::new(StringArray::from(email)),
        Arc::new(Date32Array::from(birth)),
        Arc::new(StringArray::from(gender)),
        Arc::new(StringArray::from(country)),
        Arc::new(StringArray::from(city)),
        Arc::new(Float64Array::from(income)),
        Arc::new(Date32Array::from(signup)),
        Arc::new(StringArray::from(tier)),
        Arc::new(BooleanArray::from(opt_in)),
    ];
    write_one(
        dir,
        RecordBatch::try_new(contract::crm_customers().schema(), columns)?,
    )
}

/// Writes `items/part-00000.parquet`: the catalog, without the 3% discontinued items that still
/// appear in events.
pub fn write_items(world: &World, dir: &Path) -> Result<u64> {
    let listed: Vec<_> = world.items.iter().filter(|i| i.in_catalog).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            listed.iter().map(|i| i.id.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            listed.iter().map(|i| CATEGORIES[i.category]),
        )),
        Arc::new(StringArray::from_iter_values(
            listed.iter().map(|i| i.brand.as_str()),
        )),
        Arc::new(Float64Array::from_iter_values(
            listed.iter().map(|i| i.price),
        )),
    ];
    write_one(
        dir,
        RecordBatch::try_new(contract::items().schema(), columns)?,
    )
}

fn write_one(dir: &Path, batch: RecordBatch) -> Result<u64> {
    let mut sink = ParquetSink::new(dir, batch.schema(), usize::MAX)?;
    sink.write(&batch)?;
    sink.close()
}
