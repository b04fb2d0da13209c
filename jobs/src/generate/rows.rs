//! Column buffers for the generated event sources, turned into record batches on flush.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::error::Result;

fn ts_array(values: Vec<i64>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
}

/// Buffered `web_logs` rows.
#[derive(Debug, Default, Clone)]
pub struct WebRows {
    pub ts: Vec<i64>,
    pub cookie_id: Vec<Option<String>>,
    pub customer_id: Vec<Option<String>>,
    pub method: Vec<&'static str>,
    pub url: Vec<String>,
    pub status: Vec<i32>,
    pub bytes: Vec<i64>,
    pub referrer: Vec<Option<String>>,
    pub user_agent: Vec<&'static str>,
    pub ip: Vec<String>,
}

impl WebRows {
    /// Number of buffered rows.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// Appends a copy of row `i` (an exact duplicate, as log shippers produce).
    pub fn duplicate(&mut self, i: usize) {
        self.ts.push(self.ts[i]);
        self.cookie_id.push(self.cookie_id[i].clone());
        self.customer_id.push(self.customer_id[i].clone());
        self.method.push(self.method[i]);
        self.url.push(self.url[i].clone());
        self.status.push(self.status[i]);
        self.bytes.push(self.bytes[i]);
        self.referrer.push(self.referrer[i].clone());
        self.user_agent.push(self.user_agent[i]);
        self.ip.push(self.ip[i].clone());
    }

    /// Drains the buffer into a batch of `schema`.
    pub fn take_batch(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let r = std::mem::take(self);
        let columns: Vec<ArrayRef> = vec![
            ts_array(r.ts),
            Arc::new(StringArray::from(r.cookie_id)),
            Arc::new(StringArray::from(r.customer_id)),
            Arc::new(StringArray::from(r.method)),
            Arc::new(StringArray::from(r.url)),
            Arc::new(Int32Array::from(r.status)),
            Arc::new(Int64Array::from(r.bytes)),
            Arc::new(StringArray::from(r.referrer)),
            Arc::new(StringArray::from(r.user_agent)),
            Arc::new(StringArray::from(r.ip)),
        ];
        Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
    }
}

/// Buffered `app_events` rows.
#[derive(Debug, Default, Clone)]
pub struct AppRows {
    pub event_time: Vec<i64>,
    pub customer_id: Vec<Option<String>>,
    pub device_id: Vec<String>,
    pub platform: Vec<&'static str>,
    pub event_type: Vec<&'static str>,
    pub item_id: Vec<Option<String>>,
    pub quantity: Vec<Option<i32>>,
    pub price: Vec<Option<f64>>,
}

impl AppRows {
    /// Number of buffered rows.
    pub fn len(&self) -> usize {
        self.event_time.len()
    }

    /// Appends one event.
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per contract column"
    )]
    pub fn push(
        &mut self,
        ts: i64,
        customer_id: Option<String>,
        device_id: &str,
        platform: &'static str,
        event_type: &'static str,
        item_id: Option<String>,
        quantity: Option<i32>,
        price: Option<f64>,
    ) {
        self.event_time.push(ts);
        self.customer_id.push(customer_id);
        self.device_id.push(device_id.to_string());
        self.platform.push(platform);
        self.event_type.push(event_type);
        self.item_id.push(item_id);
        self.quantity.push(quantity);
        self.price.push(price);
    }

    /// Appends a copy of row `i`.
    pub fn duplicate(&mut self, i: usize) {
        self.event_time.push(self.event_time[i]);
        self.customer_id.push(self.customer_id[i].clone());
        self.device_id.push(self.device_id[i].clone());
        self.platform.push(self.platform[i]);
        self.event_type.push(self.event_type[i]);
        self.item_id.push(self.item_id[i].clone());
        self.quantity.push(self.quantity[i]);
        self.price.push(self.price[i]);
    }

    /// Drains the buffer into a batch of `schema`.
    pub fn take_batch(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let r = std::mem::take(self);
        let columns: Vec<ArrayRef> = vec![
            ts_array(r.event_time),
            Arc::new(StringArray::from(r.customer_id)),
            Arc::new(StringArray::from(r.device_id)),
            Arc::new(StringArray::from(r.platform)),
            Arc::new(StringArray::from(r.event_type)),
            Arc::new(StringArray::from(r.item_id)),
            Arc::new(Int32Array::from(r.quantity)),
            Arc::new(Float64Array::from(r.price)),
        ];
        Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
    }
}

/// Item interactions of the hidden next week, as the customers made them (no dirt).
#[derive(Debug, Default, Clone)]
pub struct TruthRows {
    customer_id: Vec<String>,
    item_id: Vec<String>,
    event_type: Vec<&'static str>,
    ts: Vec<i64>,
}

impl TruthRows {
    /// Records one interaction.
    pub fn push(&mut self, customer: &str, item: &str, event: &'static str, ts: i64) {
        self.customer_id.push(customer.to_string());
        self.item_id.push(item.to_string());
        self.event_type.push(event);
        self.ts.push(ts);
    }

    /// Number of buffered rows.
    pub fn len(&self) -> usize {
        self.ts.len()
    }

    /// Moves `other`'s rows to the end of these.
    pub fn append(&mut self, mut other: TruthRows) {
        self.customer_id.append(&mut other.customer_id);
        self.item_id.append(&mut other.item_id);
        self.event_type.append(&mut other.event_type);
        self.ts.append(&mut other.ts);
    }

    /// The schema of `_truth/next_week`.
    pub fn schema() -> SchemaRef {
        use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
        Arc::new(Schema::new(vec![
            Field::new("customer_id", DataType::Utf8, false),
            Field::new("item_id", DataType::Utf8, false),
            Field::new("event_type", DataType::Utf8, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
        ]))
    }

    /// Drains the buffer into a batch of [`TruthRows::schema`].
    pub fn take_batch(&mut self) -> Result<RecordBatch> {
        let r = std::mem::take(self);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(r.customer_id)),
            Arc::new(StringArray::from(r.item_id)),
            Arc::new(StringArray::from(r.event_type)),
            ts_array(r.ts),
        ];
        Ok(RecordBatch::try_new(Self::schema(), columns)?)
    }
}
