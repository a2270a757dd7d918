//! `X-Twilio-Signature`, exactly as Twilio computes it: base64(HMAC-SHA1(auth token, URL +
//! every POST parameter's name and value in sorted order)). Like Twilio's own validators, the
//! URL is tried as given and with its default port added or removed, because the URL Twilio
//! signed and the one rebuilt from `SWITCHBOARD_PUBLIC_URL` may differ only in that. The
//! comparison runs in constant time.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;
use url::Url;

type HmacSha1 = Hmac<Sha1>;

/// The signature Twilio sends for `url` and these form parameters.
pub fn compute(auth_token: &[u8], url: &str, params: &[(String, String)]) -> String {
    // Names sorted; a repeated name contributes each distinct value once, values sorted
    // (Twilio's helper libraries do exactly this).
    let mut by_name: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (name, value) in params {
        by_name.entry(name).or_default().push(value);
    }
    let mut mac = HmacSha1::new_from_slice(auth_token).expect("HMAC takes any key length");
    mac.update(url.as_bytes());
    for (name, mut values) in by_name {
        values.sort_unstable();
        values.dedup();
        for value in values {
            mac.update(name.as_bytes());
            mac.update(value.as_bytes());
        }
    }
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Whether `signature` is Twilio's for this request, trying the URL with and without its
/// scheme's default port.
pub fn verify(auth_token: &[u8], url: &str, params: &[(String, String)], signature: &str) -> bool {
    let presented = signature.trim().as_bytes();
    url_variants(url).iter().any(|candidate| {
        let expected = compute(auth_token, candidate, params);
        expected.as_bytes().ct_eq(presented).into()
    })
}

/// The URL as given, plus the same URL with the default port written out or left out.
fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    let Ok(parsed) = Url::parse(url) else {
        return variants;
    };
    let default_port = match parsed.scheme() {
        "https" => ":443",
        "http" => ":80",
        _ => return variants,
    };
    let Some(host) = parsed.host_str() else {
        return variants;
    };
    // Rebuilt from the text, not from `Url`, which drops a default port when it serialises.
    let prefix = format!("{}://{host}", parsed.scheme());
    let Some(rest) = url.strip_prefix(&prefix) else {
        return variants;
    };
    let alternative = match rest.strip_prefix(default_port) {
        Some(after) => format!("{prefix}{after}"),
        // Another port is part of the address: nothing to vary.
        None if rest.starts_with(':') => return variants,
        None => format!("{prefix}{default_port}{rest}"),
    };
    variants.push(alternative);
    variants
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &[u8] = b"12345678901234567890123456789012";

    type Params = Vec<(String, String)>;

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Vectors recorded from Twilio's official helper library (PyPI `twilio` 9.13.0,
    /// `twilio.request_validator.RequestValidator(TOKEN).compute_signature(url, params)`).
    #[test]
    fn matches_the_official_library() {
        let voice = params(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("AccountSid", "AC0123456789abcdef"),
            ("From", "+14155550111"),
            ("To", "+14155550100"),
            ("CallStatus", "ringing"),
            ("Direction", "inbound"),
            ("FromCity", "SAN FRANCISCO"),
            ("FromState", "CA"),
            ("FromZip", "94105"),
            ("FromCountry", "US"),
            ("CallerName", "Jane Ö Doe"),
        ]);
        let cases: Vec<(&str, Params, &str)> = vec![
            (
                "https://x.io/v?pool=7",
                params(&[
                    ("To", "+18005550199"),
                    ("CallSid", "CA1"),
                    ("From", "+14155550100"),
                ]),
                "RzEHgqLkGyUd4y/EkfSz1+N0fa0=",
            ),
            (
                "https://calls.example.com/v1/telephony/twilio/voice",
                voice,
                "gTXQe6D46PJhr4dZ+yDO9K0hwwA=",
            ),
            (
                "https://calls.example.com/v1/telephony/twilio/status?x=1&y=two",
                vec![],
                "ZFBHa34MQ7rmDF9ESq3vnmAi/uE=",
            ),
            (
                "https://calls.example.com:443/v1/telephony/twilio/voice",
                params(&[("CallSid", "CA9"), ("From", "+1 (415) 555-0111")]),
                "2VbpXbayc2uEA6zwUFPHOilcyQk=",
            ),
            (
                "http://calls.example.com:80/hook",
                params(&[("A", "1"), ("B", "2")]),
                "GkaqSZYhZFT4FbN4O4fbL0bzZx8=",
            ),
            (
                "https://calls.example.com/hook",
                params(&[("Body", "héllo & goodbye = 100%"), ("Empty", "")]),
                "+2XhMCfa9F9zpevA9z5px2AGALU=",
            ),
            (
                "https://calls.example.com/hook",
                params(&[("B", "z"), ("A", "1"), ("B", "a"), ("B", "z")]),
                "jml58lISzHSwJnxjuXFf719swg0=",
            ),
        ];
        for (url, p, expected) in cases {
            assert_eq!(compute(TOKEN, url, &p), expected, "{url}");
            assert!(verify(TOKEN, url, &p, expected), "{url}");
        }
    }

    #[test]
    fn the_default_port_quirk_is_accepted_both_ways() {
        let p = params(&[("CallSid", "CA9"), ("From", "+1 (415) 555-0111")]);
        // Twilio signed the URL with :443; the service knows it without.
        assert!(verify(
            TOKEN,
            "https://calls.example.com/v1/telephony/twilio/voice",
            &p,
            "2VbpXbayc2uEA6zwUFPHOilcyQk="
        ));
        // Twilio signed it without a port; the service's public URL spells :443 out.
        let voice_sig = compute(TOKEN, "https://calls.example.com/hook?a=1", &p);
        assert!(verify(
            TOKEN,
            "https://calls.example.com:443/hook?a=1",
            &p,
            &voice_sig
        ));
        // A non-default port is part of the URL: not interchangeable.
        let sig = compute(TOKEN, "https://calls.example.com:8443/hook", &p);
        assert!(!verify(TOKEN, "https://calls.example.com/hook", &p, &sig));
    }

    #[test]
    fn forgeries_are_rejected() {
        let p = params(&[
            ("CallSid", "CA1"),
            ("To", "+18005550199"),
            ("From", "+14155550100"),
        ]);
        let good = "RzEHgqLkGyUd4y/EkfSz1+N0fa0=";
        assert!(verify(TOKEN, "https://x.io/v?pool=7", &p, good));
        // Another token, URL, parameter value or an extra parameter each break it.
        assert!(!verify(b"another-token", "https://x.io/v?pool=7", &p, good));
        assert!(!verify(TOKEN, "https://x.io/v?pool=8", &p, good));
        let mut changed = p.clone();
        changed[1].1 = "+18005550198".into();
        assert!(!verify(TOKEN, "https://x.io/v?pool=7", &changed, good));
        let mut extra = p.clone();
        extra.push(("Extra".into(), "1".into()));
        assert!(!verify(TOKEN, "https://x.io/v?pool=7", &extra, good));
        assert!(!verify(TOKEN, "https://x.io/v?pool=7", &p, ""));
        assert!(!verify(
            TOKEN,
            "https://x.io/v?pool=7",
            &p,
            "RzEHgqLkGyUd4y/EkfSz1+N0fa0"
        ));
    }
}
