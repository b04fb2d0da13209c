//! The models: each fit is a series of DataFusion aggregations (UDAFs whose partial states
//! merge across partitions and executors) and projections, with only small state here, so the
//! same code fits in one process and on a Ballista cluster. The night's stages and the
//! commands on any table call the same drivers.
//!
//! - [`kmeans`]: distributed K-Means, the features' preparation and the segments' description;
//! - [`als`]: implicit (and explicit) ALS, and the offline evaluation against popularity;
//! - [`propensity`]: regularised logistic regression by Newton steps, with calibration;
//! - [`experiments`]: the statistics of A/B tests.

pub mod als;
pub mod experiments;
pub mod kmeans;
pub mod propensity;
