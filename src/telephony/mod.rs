//! Telephony providers: each turns a provider's webhook into the service's call model and the
//! service's routing decision into the provider's answer. Twilio first.

pub mod credentials;
pub mod generic;
pub mod recorder;
pub mod routing;
pub mod spool;
pub mod twilio;
pub mod twilio_signature;
pub mod twiml;
