//! Telephony providers: each turns a provider's webhook into the service's call model and the
//! service's routing decision into the provider's answer. Twilio first.

pub mod credentials;
pub mod generic;
pub mod misses;
pub mod recorder;
pub mod replays;
pub mod routing;
pub mod spool;
pub mod twilio;
pub mod twilio_api;
pub mod twilio_signature;
pub mod twiml;

/// The route of a tracking number, for tests of turning webhooks into the call model.
#[cfg(test)]
pub(crate) fn test_route() -> crate::storage::RouteRow {
    crate::storage::RouteRow {
        number: "+18005550199".into(),
        account_id: "a".into(),
        property_id: "p".into(),
        pool_id: "pool".into(),
        forward_to: "+14155550100".into(),
        settings: crate::domain::CallSettings::default(),
    }
}

/// Webhook form parameters, for tests.
#[cfg(test)]
pub(crate) fn test_params(pairs: &[(&str, &str)]) -> twilio::Params {
    twilio::Params(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    )
}
