//! Transfers built on the client: downloads to a file, the rules of resuming one, and
//! multipart uploads.

pub(crate) mod download;
pub(crate) mod multipart;
pub(crate) mod resume;
