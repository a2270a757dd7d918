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

/// Fuzzing with proptest: a signature made the way Twilio makes it verifies, and any one-byte
/// change to what it covers, or to the signature itself, is refused.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    const TOKEN: &[u8] = b"12345678901234567890123456789012";
    const CASES: u32 = 1_000;

    /// Parameters with distinct names, as Twilio sends them.
    fn params() -> impl Strategy<Value = Vec<(String, String)>> {
        prop::collection::btree_map("[A-Za-z]{1,12}", ".{0,16}", 0..10)
            .prop_map(|m| m.into_iter().collect())
    }

    fn url() -> impl Strategy<Value = String> {
        "https://[a-z]{1,10}\\.example(/[a-z0-9]{0,8}){1,3}(\\?[a-z]=[a-z0-9]{0,4})?"
    }

    /// The text a signature covers once the form is read: names sorted, each value once,
    /// sorted, every name and value written one after another with nothing between them.
    fn covered(params: &[(String, String)]) -> String {
        let mut p = params.to_vec();
        p.sort();
        p.dedup();
        p.into_iter().map(|(k, v)| k + &v).collect()
    }

    fn change_one_byte(s: &str, at: usize, to: u8) -> Option<String> {
        let mut bytes = s.as_bytes().to_vec();
        let i = at % bytes.len().max(1);
        let slot = bytes.get_mut(i)?;
        if *slot == to {
            return None;
        }
        *slot = to;
        String::from_utf8(bytes).ok()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(CASES))]

        #[test]
        fn a_signature_covers_every_byte(
            url in url(),
            params in params(),
            at in any::<usize>(),
            to in any::<u8>(),
            which in 0..3u8,
        ) {
            let signature = compute(TOKEN, &url, &params);
            prop_assert!(verify(TOKEN, &url, &params, &signature));
            match which {
                0 => {
                    if let Some(forged) = change_one_byte(&signature, at, to) {
                        prop_assert!(!verify(TOKEN, &url, &params, &forged), "{}", forged);
                    }
                }
                1 => {
                    if let Some(other) = change_one_byte(&url, at, to) {
                        prop_assert!(!verify(TOKEN, &other, &params, &signature), "{}", other);
                    }
                }
                _ => {
                    // One byte of one name or value.
                    let flat: Vec<&String> = params.iter().flat_map(|(k, v)| [k, v]).collect();
                    if flat.iter().all(|s| s.is_empty()) {
                        return Ok(());
                    }
                    let nonempty: Vec<usize> =
                        (0..flat.len()).filter(|&i| !flat[i].is_empty()).collect();
                    let field = nonempty[at % nonempty.len()];
                    let Some(changed) = change_one_byte(flat[field], at / 7, to) else {
                        return Ok(());
                    };
                    let mut other = params.clone();
                    let (k, v) = &mut other[field / 2];
                    *if field.is_multiple_of(2) { k } else { v } = changed;
                    prop_assert!(!verify(TOKEN, &url, &other, &signature), "{:?}", other);
                }
            }
        }

        /// One byte changed anywhere in the raw form body: refused, unless the form still
        /// reads as the same signed text. That happens: `+` and a raw space both mean a space,
        /// and since Twilio's scheme writes names and values with no separator, `A=B` and
        /// `A&B` sign the same (an empty `A` and an empty `B`).
        #[test]
        fn a_changed_body_is_refused_unless_it_reads_the_same(
            url in url(),
            params in params(),
            at in any::<usize>(),
            to in any::<u8>(),
        ) {
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(&params)
                .finish()
                .into_bytes();
            prop_assume!(!body.is_empty());
            let signature = compute(TOKEN, &url, &params);
            let mut changed = body.clone();
            let i = at % changed.len();
            prop_assume!(changed[i] != to);
            changed[i] = to;
            let read: Vec<(String, String)> =
                url::form_urlencoded::parse(&changed).into_owned().collect();
            prop_assert_eq!(
                verify(TOKEN, &url, &read, &signature),
                covered(&read) == covered(&params)
            );
        }

        #[test]
        fn any_text_as_url_or_signature_is_only_refused(
            url in any::<String>(),
            signature in any::<String>(),
            params in params(),
        ) {
            prop_assert!(!verify(TOKEN, &url, &params, &signature));
        }
    }
}
