//! A/B tests: the statistics that tell whether a campaign lifted a metric ([`stats`]), and one
//! experiment's analysis from its arms' aggregates ([`analysis`]).

pub mod analysis;
pub mod stats;
