//! Switchboard: self-hostable call tracking (dynamic number insertion and call attribution).
//!
//! The binary is a thin shell over [`cli::run`]; everything else lives here so tests can build
//! the real application with [`startup::Application`].

pub mod alerts;
pub mod attribution;
pub mod changes;
pub mod cli;
pub mod config;
pub mod demo;
pub mod dni;
pub mod domain;
pub mod geo;
pub mod http;
pub mod live;
pub mod outbound;
pub mod private_files;
pub mod redis_client;
pub mod relay;
pub mod reports;
pub mod sealing;
pub mod simulate;
pub mod startup;
pub mod storage;
pub mod supervise;
pub mod telemetry;
pub mod telephony;
pub mod time;
pub mod webhooks;
pub mod work;
