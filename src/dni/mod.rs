//! Dynamic number insertion: which number a visitor sees.

pub mod advice;
pub mod bots;
pub mod channel_lists;
pub mod classify;
pub mod client_ip;
pub mod directory;
pub mod lease_store;
pub mod ledger;
pub mod recovery;
pub mod service;
