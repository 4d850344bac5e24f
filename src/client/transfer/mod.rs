//! Transfers built on the client: downloads to a file (with resume) and multipart uploads.

pub(crate) mod download;
pub(crate) mod multipart;
