//! Twilio's REST API, asked two things: whether an auth token is the token of an account SID,
//! before an account may connect that Twilio account as its own; and, when the operator
//! requires it (`SWITCHBOARD_NUMBERS_MUST_BE_OWNED`), whether a Twilio account owns a number an
//! account adds to a pool. Twilio answers
//! `GET /2010-04-01/Accounts/{sid}.json` under HTTP basic auth (sid, token) with 200 for the
//! right token and 401 otherwise. The token goes in the request's header only, never a log.

use std::time::Duration;

use url::Url;

use crate::domain::TwilioAccountSid;

/// Twilio's API answers in well under a second; an admin's request must not hang on it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, PartialEq, Eq)]
pub enum Proof {
    /// The token is the account's.
    Owned,
    /// Twilio refused the pair.
    Refused,
    /// No answer that tells (not reached, timed out, an unexpected status): why, for the log.
    Unknown(String),
}

/// One client for every question, built on first use: building one loads the TLS roots, and a
/// pool of numbers asks once per number.
fn client() -> Result<reqwest::Client, Proof> {
    static CLIENT: std::sync::OnceLock<Result<reqwest::Client, String>> =
        std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(TIMEOUT)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| Proof::Unknown(format!("building the client: {e}")))
}

/// Asks Twilio (at `api_base`) whether the Twilio account `sid` (with its `token`) has `number`
/// (E.164) among its incoming phone numbers: `Owned`, `Refused` (it does not), or `Unknown`
/// (no answer that tells, the credentials refused included).
pub async fn owns_number(api_base: &Url, sid: &str, token: &str, number: &str) -> Proof {
    let client = match client() {
        Ok(client) => client,
        Err(unknown) => return unknown,
    };
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("PhoneNumber", number)
        .finish();
    let url = format!(
        "{}/2010-04-01/Accounts/{sid}/IncomingPhoneNumbers.json?{query}",
        api_base.as_str().trim_end_matches('/')
    );
    let res = match client.get(url).basic_auth(sid, Some(token)).send().await {
        Ok(res) => res,
        Err(e) => return Proof::Unknown(e.without_url().to_string()),
    };
    if !res.status().is_success() {
        return Proof::Unknown(format!("Twilio answered {}", res.status()));
    }
    match res.json::<serde_json::Value>().await {
        Ok(page) => match page["incoming_phone_numbers"].as_array() {
            Some(found) if found.iter().any(|n| n["phone_number"] == number) => Proof::Owned,
            Some(_) => Proof::Refused,
            None => Proof::Unknown("Twilio's answer lists no incoming_phone_numbers".into()),
        },
        Err(e) => Proof::Unknown(e.without_url().to_string()),
    }
}

/// Asks Twilio (at `api_base`) whether `token` is `sid`'s auth token.
pub async fn prove_ownership(api_base: &Url, sid: &TwilioAccountSid, token: &str) -> Proof {
    let client = match client() {
        Ok(client) => client,
        Err(unknown) => return unknown,
    };
    let url = format!(
        "{}/2010-04-01/Accounts/{sid}.json",
        api_base.as_str().trim_end_matches('/')
    );
    match client
        .get(url)
        .basic_auth(sid.as_str(), Some(token))
        .send()
        .await
    {
        Ok(res) if res.status().is_success() => Proof::Owned,
        Ok(res) if matches!(res.status().as_u16(), 401 | 403 | 404) => Proof::Refused,
        Ok(res) => Proof::Unknown(format!("Twilio answered {}", res.status())),
        // reqwest's error names the URL (the SID), never the credentials.
        Err(e) => Proof::Unknown(e.without_url().to_string()),
    }
}
