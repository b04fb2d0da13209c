//! The hidden truth beside the generated data, under `OUT/_truth/` (which `persona run` never
//! reads: it reads only the contract's source folders), for `scripts/bench.sh` to score the
//! night against:
//!
//! - `customers/`: each customer's hidden type, favourite categories, whether they signed up
//!   during the window and whether the CRM export has them;
//! - `next_week/`: every item interaction of the 7 days after the window, as the customers made
//!   them (no duplicates, crawlers or lost ids), for recall and NDCG of the recommendations.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, ListBuilder, StringArray, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use rand_chacha::ChaCha8Rng;

use super::rows::TruthRows;
use super::session::DayWriter;
use super::sink::ParquetSink;
use super::world::{CATEGORIES, World};
use crate::error::Result;

/// Days of hidden future behaviour written to `_truth/next_week`.
pub const NEXT_WEEK_DAYS: u32 = 7;

/// Writes `out/_truth/customers` and `out/_truth/next_week`; the window ended on `end_date`
/// after `days` days.
pub fn write(
    rng: &mut ChaCha8Rng,
    world: &World,
    out: &Path,
    end_date: NaiveDate,
    days: u32,
) -> Result<()> {
    let dir = out.join("_truth");
    write_customers(world, &dir.join("customers"), days)?;
    let mut sink = ParquetSink::new(&dir.join("next_week"), TruthRows::schema(), usize::MAX)?;
    let mut rows = TruthRows::default();
    for ahead in 1..=NEXT_WEEK_DAYS {
        let date = end_date + chrono::Duration::days(i64::from(ahead));
        let mut writer = DayWriter::new(world, date, days + ahead - 1, days).recording_truth();
        for customer in &world.customers {
            writer.customer_day(rng, customer);
            rows.append(writer.take_truth());
            if rows.len() >= 64 * 1024 {
                sink.write(&rows.take_batch()?)?;
            }
        }
    }
    sink.write(&rows.take_batch()?)?;
    sink.close()?;
    Ok(())
}

fn write_customers(world: &World, dir: &Path, days: u32) -> Result<()> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, false),
        Field::new("customer_type", DataType::Utf8, false),
        Field::new(
            "favourite_categories",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            false,
        ),
        Field::new("signed_up_in_window", DataType::Boolean, false),
        Field::new("in_crm", DataType::Boolean, false),
    ]));
    let mut favourites = ListBuilder::new(StringBuilder::new());
    for c in &world.customers {
        for &f in &c.favourites {
            favourites.values().append_value(CATEGORIES[f]);
        }
        favourites.append(true);
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            world.customers.iter().map(|c| c.id.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            world.customers.iter().map(|c| c.kind.name()),
        )),
        Arc::new(favourites.finish()),
        Arc::new(BooleanArray::from_iter(
            world
                .customers
                .iter()
                .map(|c| Some(c.first_day > 0 && c.first_day < days)),
        )),
        Arc::new(BooleanArray::from_iter(
            world.customers.iter().map(|c| Some(!c.missing_from_crm)),
        )),
    ];
    let batch = RecordBatch::try_new(schema, columns)?;
    let mut sink = ParquetSink::new(dir, batch.schema(), usize::MAX)?;
    sink.write(&batch)?;
    sink.close()?;
    Ok(())
}
