//! Dynamic number insertion: which number a visitor sees.

pub mod channel_lists;
pub mod classify;
pub mod lease_store;
