//! The fuzz harnesses that need only weft's public API, shared by the fuzz targets and by the
//! corpus replay tests of the main crate (which include these files by path). The harnesses
//! that need private items live in the main crate behind its `fuzzing` feature.

pub mod client;
pub mod common;
pub mod response;
pub mod socks;
