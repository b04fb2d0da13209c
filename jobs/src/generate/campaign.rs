//! A campaign planted in the generated data, for the A/B analysis to find: experiment
//! [`Campaign::KEY`] splits customers half and half by its hash (control, then `email`), and
//! from the campaign's first day every treated customer who was in the CRM export and had
//! signed up by then places, with probability `lift`, one extra order on a random day of the
//! campaign (an app purchase of an item they like). Nothing else changes: its random numbers
//! come from a generator of their own, so the rest of the data is the same with or without it.
//!
//! The truth, `OUT/_truth/campaign/`, says for every customer the arm, whether the campaign
//! could reach them, whether it made them order, and whether they purchased on their own
//! since the start: the conversion lift planted in the treatment arm is the share of its
//! customers whom only the campaign made purchase.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use persona_udfs::scalar::experiment_bucket;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::sink::ParquetSink;
use super::world::World;
use crate::error::Result;

/// What to plant.
#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    /// The first day of the campaign (the experiment's start).
    pub start: NaiveDate,
    /// The probability that a reachable treated customer places the extra order.
    pub lift: f64,
}

impl Campaign {
    /// The experiment's key, as `persona demo`'s configuration declares it.
    pub const KEY: &'static str = "demo_email";
    /// The control's share (the `control` arm, then `email`).
    pub const CONTROL_WEIGHT: f64 = 0.5;
    /// Days the demo's campaign has run by the demo's night.
    pub const DEMO_DAYS: i64 = 14;
    /// The demo's probability of an extra order.
    pub const DEMO_LIFT: f64 = 0.1;

    /// The demo's campaign for data ending on `end`: the last 14 days.
    pub fn demo(end: NaiveDate) -> Self {
        Self {
            start: end - chrono::Duration::days(Self::DEMO_DAYS - 1),
            lift: Self::DEMO_LIFT,
        }
    }

    /// The arm experiment [`Self::KEY`] puts `customer_id` in.
    pub fn arm(customer_id: &str) -> &'static str {
        if experiment_bucket(Self::KEY, customer_id) < Self::CONTROL_WEIGHT {
            "control"
        } else {
            "email"
        }
    }
}

/// The planted orders and what the truth needs, customer by customer (in the world's order).
#[derive(Debug)]
pub struct Planted {
    /// The day index (from the data's first day) of each customer's extra order, if any.
    pub order_day: Vec<Option<u32>>,
    /// Whether the campaign could reach the customer (treated, in the CRM, signed up by the
    /// start).
    reachable: Vec<bool>,
    /// Whether the customer purchased on their own on or after the start.
    organic: Vec<bool>,
    /// The campaign's first day index.
    start_day: u32,
    /// The campaign's own random numbers (for the extra orders' times and items too).
    pub rng: ChaCha8Rng,
}

impl Planted {
    /// Decides every customer's extra order; `first` is the data's first day, `days` its days.
    pub fn new(campaign: &Campaign, world: &World, seed: u64, first: NaiveDate, days: u32) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x00CA_4A16_0000_0001);
        let start_day = (campaign.start - first)
            .num_days()
            .clamp(0, i64::from(days)) as u32;
        let campaign_days = days.saturating_sub(start_day);
        let reachable: Vec<bool> = world
            .customers
            .iter()
            .map(|c| {
                Campaign::arm(&c.id) == "email" && !c.missing_from_crm && c.first_day <= start_day
            })
            .collect();
        let order_day = reachable
            .iter()
            .map(|&r| {
                (r && campaign_days > 0 && rng.random::<f64>() < campaign.lift)
                    .then(|| start_day + rng.random_range(0..campaign_days))
            })
            .collect();
        Self {
            order_day,
            organic: vec![false; world.customers.len()],
            reachable,
            start_day,
            rng,
        }
    }

    /// Notes that customer `index` purchased on their own on day `day`.
    pub fn purchased(&mut self, index: usize, day: u32) {
        if day >= self.start_day {
            self.organic[index] = true;
        }
    }

    /// Writes `out/_truth/campaign/`.
    pub fn write_truth(&self, world: &World, out: &Path) -> Result<()> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Utf8, false),
            Field::new("arm", DataType::Utf8, false),
            Field::new("reachable", DataType::Boolean, false),
            Field::new("campaign_order", DataType::Boolean, false),
            Field::new("organic_conversion", DataType::Boolean, false),
        ]));
        let bools = |v: Vec<bool>| -> ArrayRef { Arc::new(BooleanArray::from(v)) };
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                world.customers.iter().map(|c| c.id.as_str()),
            )),
            Arc::new(StringArray::from_iter_values(
                world.customers.iter().map(|c| Campaign::arm(&c.id)),
            )),
            bools(self.reachable.clone()),
            bools(self.order_day.iter().map(Option::is_some).collect()),
            bools(self.organic.clone()),
        ];
        let batch = RecordBatch::try_new(schema, columns)?;
        let mut sink = ParquetSink::new(
            &out.join("_truth").join("campaign"),
            batch.schema(),
            usize::MAX,
        )?;
        sink.write(&batch)?;
        sink.close()?;
        Ok(())
    }
}
