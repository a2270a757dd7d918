//! `Switchboard-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`,
//! the scheme Stripe made familiar. The timestamp is signed with the body, so a receiver that
//! checks it against its own clock can refuse a captured request replayed later.
//!
//! The HMAC key is the endpoint's secret exactly as the API showed it (`whsec_...`, as text).

use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is malformed")]
    Malformed,
    #[error("the signature's timestamp is outside the tolerance")]
    Stale,
    #[error("no signature matches the body")]
    Mismatch,
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Switchboard-Signature` header value for `body` sent at `timestamp` (unix seconds).
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let digest = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(digest))
}

/// Checks a `Switchboard-Signature` header against the raw body, as a receiver should: the
/// timestamp must be within `tolerance` of `now` (unix seconds), and one `v1` signature must
/// match (compared in constant time). Several `v1` entries are accepted, so a header may carry
/// signatures under more than one secret.
pub fn verify_signature(
    secret: &str,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (key, value) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key {
            "t" => {
                timestamp = Some(
                    value
                        .parse::<i64>()
                        .map_err(|_| SignatureError::Malformed)?,
                )
            }
            // A signature that is not hex cannot match; other schemes are ignored.
            "v1" => signatures.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let tolerance = i64::try_from(tolerance.as_secs()).unwrap_or(i64::MAX);
    if now.abs_diff(timestamp) > tolerance.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    let expected = mac(secret, timestamp, body);
    if signatures
        .iter()
        .any(|s| expected.clone().verify_slice(s).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test";
    const FIVE_MINUTES: Duration = Duration::from_secs(300);

    #[test]
    fn a_signature_verifies_within_the_tolerance_only() {
        let body = br#"{"id":"e1","type":"call.completed"}"#;
        let header = sign(SECRET, 1_780_000_000, body);
        assert!(header.starts_with("t=1780000000,v1="));
        assert_eq!(
            verify_signature(SECRET, &header, body, 1_780_000_000, FIVE_MINUTES),
            Ok(())
        );
        assert_eq!(
            verify_signature(SECRET, &header, body, 1_780_000_299, FIVE_MINUTES),
            Ok(())
        );
        assert_eq!(
            verify_signature(SECRET, &header, body, 1_780_000_301, FIVE_MINUTES),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify_signature(SECRET, &header, body, 1_779_999_000, FIVE_MINUTES),
            Err(SignatureError::Stale)
        );
    }

    #[test]
    fn a_changed_body_timestamp_or_secret_fails() {
        let body = br#"{"n":1}"#;
        let header = sign(SECRET, 100, body);
        let check = |secret: &str, header: &str, body: &[u8]| {
            verify_signature(secret, header, body, 100, FIVE_MINUTES)
        };
        assert_eq!(
            check(SECRET, &header, br#"{"n":2}"#),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            check("whsec_other", &header, body),
            Err(SignatureError::Mismatch)
        );
        let moved = header.replacen("t=100", "t=101", 1);
        assert_eq!(check(SECRET, &moved, body), Err(SignatureError::Mismatch));
    }

    #[test]
    fn any_of_several_signatures_may_match_and_junk_is_malformed() {
        let body = b"{}";
        let good = sign(SECRET, 100, body);
        let v1 = good.split_once(",v1=").unwrap().1;
        let header = format!("t=100,v0=abc,v1={},v1={v1}", "00".repeat(32));
        assert_eq!(
            verify_signature(SECRET, &header, body, 100, FIVE_MINUTES),
            Ok(())
        );
        for junk in ["", "t=100", "v1=00", "t=x,v1=00", "nonsense"] {
            assert_eq!(
                verify_signature(SECRET, junk, body, 100, FIVE_MINUTES),
                Err(SignatureError::Malformed),
                "{junk:?}"
            );
        }
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Independently computed: printf '1.{}' | openssl dgst -sha256 -hmac 'key'
        assert_eq!(
            sign("key", 1, b"{}"),
            "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }
}
