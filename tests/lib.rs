//! Integration test crate (tests live in it/).
