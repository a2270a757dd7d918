//! URLs the service calls out to (webhook endpoints, GA4's collection endpoint).

use url::Url;

use super::FieldError;

const MAX_URL_CHARS: usize = 2048;

/// An absolute `http://` or `https://` URL with a host and no credentials.
pub fn parse_http_url(field: &str, raw: &str) -> Result<Url, FieldError> {
    let invalid = |message: &str| FieldError::new(field, message);
    let raw = raw.trim();
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(invalid(&format!(
            "must be at most {MAX_URL_CHARS} characters"
        )));
    }
    let url = Url::parse(raw).map_err(|e| {
        invalid(&format!(
            "is not an absolute URL ({e}); e.g. https://crm.example/hooks"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must be an http:// or https:// URL"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("must name a host"));
    }
    // Credentials in a URL end up in logs and proxies.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("must not carry a user name or password"));
    }
    Ok(url)
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Any text parses or is refused; what is kept reads back as itself.
        #[test]
        fn a_kept_url_round_trips(
            input in prop_oneof![
                "(https?|ftp|javascript)://([a-z]{1,5}(:[a-z]{0,3})?@)?[a-zA-Z0-9.-]{0,12}(:[0-9]{0,6})?(/.{0,10})?",
                any::<String>(),
            ]
        ) {
            if let Ok(url) = parse_http_url("url", &input) {
                prop_assert!(matches!(url.scheme(), "http" | "https"));
                prop_assert_eq!(parse_http_url("url", url.as_str()), Ok(url.clone()));
            }
        }
    }
}
