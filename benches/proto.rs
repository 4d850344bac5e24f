//! Micro-benchmarks of the protocol core.
fn main() {}
