//! Integration tests: the real `persona` binary on generated data, outputs read back with
//! DataFusion.

#![expect(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::panic,
    reason = "integration tests fail by panicking"
)]

mod als;
mod audiences;
mod bad_input;
mod commit;
mod distributed;
mod end_to_end;
mod experiments;
mod gates;
mod generate;
mod kmeans;
mod propensity;
mod recommenders;
mod report;
mod s3;
mod segments;
mod signals;
mod sql;
mod stages;
mod support;
