//! Reports: what calls led to, as files other tools import.

pub mod csv;
pub mod days;
pub mod google_ads;
