//! What a Ballista plan carries of Persona: the codecs that encode the model functions
//! ([`codec`]), and the item-factor files they point at on a cluster ([`factor_files`]). The
//! session of each engine ([`crate::engine::session`]) installs them; the scheduler and executor
//! processes are [`crate::engine::servers`].

pub mod codec;
pub mod factor_files;
