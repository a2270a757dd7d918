//! Dynamic number insertion: which number a visitor sees.

pub mod lease_store;
