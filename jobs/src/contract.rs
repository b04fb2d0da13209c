//! The input contract: the sources Persona reads and the columns each must have.
//!
//! The generator writes exactly these schemas; input validation checks every file against them
//! (by type family, so an int64 `status` or a nanosecond timestamp is accepted and cast, but a
//! string `status` is not). Real exports that differ are adapted in the staging SQL.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// The type families the contract distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Any timestamp unit or time zone (read as microseconds, UTC).
    Timestamp,
    /// Utf8, LargeUtf8 or Utf8View.
    String,
    /// Any signed or unsigned integer.
    Integer,
    /// Any float (or integer, widened).
    Float,
    /// Date32 or Date64.
    Date,
    /// Boolean.
    Boolean,
}

impl Family {
    /// Whether a file's column type belongs to this family.
    pub fn accepts(self, t: &DataType) -> bool {
        match self {
            Family::Timestamp => matches!(t, DataType::Timestamp(_, _)),
            Family::String => matches!(
                t,
                DataType::Utf8
                    | DataType::LargeUtf8
                    | DataType::Utf8View
                    | DataType::Dictionary(_, _)
            ),
            Family::Integer => t.is_integer(),
            Family::Float => {
                t.is_floating() || t.is_integer() || matches!(t, DataType::Decimal128(_, _))
            }
            Family::Date => matches!(t, DataType::Date32 | DataType::Date64),
            Family::Boolean => matches!(t, DataType::Boolean),
        }
    }

    /// The type the column is read as.
    pub fn canonical(self, integer: &DataType) -> DataType {
        match self {
            Family::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Family::String => DataType::Utf8,
            Family::Integer => integer.clone(),
            Family::Float => DataType::Float64,
            Family::Date => DataType::Date32,
            Family::Boolean => DataType::Boolean,
        }
    }

    /// How the contract names the family in error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Family::Timestamp => "a timestamp (e.g. timestamp[us, UTC])",
            Family::String => "a string",
            Family::Integer => "an integer",
            Family::Float => "a floating-point number",
            Family::Date => "a date (date32)",
            Family::Boolean => "a boolean",
        }
    }
}

/// One column of a source.
#[derive(Debug, Clone)]
pub struct Column {
    /// Column name.
    pub name: &'static str,
    /// Accepted type family.
    pub family: Family,
    /// The integer width read (for `Integer` columns).
    pub int_type: DataType,
    /// Whether nulls are allowed.
    pub nullable: bool,
}

const fn col(name: &'static str, family: Family, nullable: bool) -> Column {
    Column {
        name,
        family,
        int_type: DataType::Int32,
        nullable,
    }
}

/// One input source: its folder name under the input root and its columns.
#[derive(Debug, Clone)]
pub struct Source {
    /// Folder (and table) name.
    pub name: &'static str,
    /// Whether the folder is hive-partitioned by `dt=YYYY-MM-DD`.
    pub partitioned: bool,
    /// Whether the job fails without it.
    pub required: bool,
    /// Columns the job reads.
    pub columns: Vec<Column>,
}

impl Source {
    /// The schema the job reads the source with (without the `dt` partition column).
    pub fn schema(&self) -> SchemaRef {
        let fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| Field::new(c.name, c.family.canonical(&c.int_type), c.nullable))
            .collect();
        Arc::new(Schema::new(fields))
    }
}

/// `web_logs/`: raw HTTP access logs of the shop's web site.
pub fn web_logs() -> Source {
    let mut bytes = col("bytes", Family::Integer, true);
    bytes.int_type = DataType::Int64;
    Source {
        name: "web_logs",
        partitioned: true,
        required: true,
        columns: vec![
            col("ts", Family::Timestamp, true),
            col("cookie_id", Family::String, true),
            col("customer_id", Family::String, true),
            col("method", Family::String, true),
            col("url", Family::String, true),
            col("status", Family::Integer, true),
            bytes,
            col("referrer", Family::String, true),
            col("user_agent", Family::String, true),
            col("ip", Family::String, true),
        ],
    }
}

/// `app_events/`: product-analytics events from the apps, and orders from every channel.
pub fn app_events() -> Source {
    Source {
        name: "app_events",
        partitioned: true,
        required: true,
        columns: vec![
            col("event_time", Family::Timestamp, true),
            col("customer_id", Family::String, true),
            col("device_id", Family::String, true),
            col("platform", Family::String, true),
            col("event_type", Family::String, true),
            col("item_id", Family::String, true),
            col("quantity", Family::Integer, true),
            col("price", Family::Float, true),
        ],
    }
}

/// `crm_customers/`: the CRM export, unpartitioned.
pub fn crm_customers() -> Source {
    Source {
        name: "crm_customers",
        partitioned: false,
        required: true,
        columns: vec![
            col("customer_id", Family::String, true),
            col("email", Family::String, true),
            col("birth_date", Family::Date, true),
            col("gender", Family::String, true),
            col("country", Family::String, true),
            col("city", Family::String, true),
            col("annual_income", Family::Float, true),
            col("signup_date", Family::Date, true),
            col("loyalty_tier", Family::String, true),
            col("marketing_opt_in", Family::Boolean, true),
        ],
    }
}

/// `items/`: the optional item catalog.
pub fn items() -> Source {
    Source {
        name: "items",
        partitioned: false,
        required: false,
        columns: vec![
            col("item_id", Family::String, true),
            col("category", Family::String, true),
            col("brand", Family::String, true),
            col("price", Family::Float, true),
        ],
    }
}

/// `suppressions/`: the optional list of customer ids that no audience may contain (unsubscribes
/// handled outside the CRM, complaints, legal holds), unpartitioned.
pub fn suppressions() -> Source {
    Source {
        name: "suppressions",
        partitioned: false,
        required: false,
        columns: vec![col("customer_id", Family::String, true)],
    }
}

/// All sources, in the order they are validated.
pub fn sources() -> Vec<Source> {
    vec![
        web_logs(),
        app_events(),
        crm_customers(),
        items(),
        suppressions(),
    ]
}
