//! A/B tests: the statistics that tell whether a campaign lifted a metric ([`stats`]).

pub mod stats;
