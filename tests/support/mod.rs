//! Shared harnesses of the integration tests. Every test binary declares `mod support;` and
//! uses the parts it needs (hence `dead_code` is allowed here: no binary uses all of it).
#![allow(dead_code, unused_imports)]

pub mod baseline;
pub mod faults;
pub mod proto;
pub mod reactor;
pub mod scripted;
pub mod servers;
