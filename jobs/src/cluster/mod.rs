//! Running Persona on Apache Ballista: the codecs that carry the model functions in distributed
//! plans, and the session for each engine.

pub mod codec;
pub mod factor_files;
pub mod process;
