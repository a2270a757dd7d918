//! A webhook endpoint as an account asks for it: parsed once, known good afterwards.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;
use url::Url;

use crate::domain::{FieldError, parse_http_url};

const MAX_DESCRIPTION_CHARS: usize = 500;

#[derive(Debug, Clone)]
pub struct NewWebhookEndpoint {
    pub url: Url,
    pub description: Option<String>,
}

impl NewWebhookEndpoint {
    pub fn parse(url: &str, description: Option<&str>) -> Result<Self, FieldError> {
        let url = parse_http_url("url", url)?;
        let description = match description.map(str::trim) {
            None | Some("") => None,
            Some(d) if d.chars().count() > MAX_DESCRIPTION_CHARS => {
                return Err(FieldError::new(
                    "description",
                    format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
                ));
            }
            Some(d) => Some(d.to_owned()),
        };
        Ok(Self { url, description })
    }
}

/// A new signing secret: `whsec_` and 32 random bytes, base64url.
pub fn generate_secret() -> SecretString {
    let bytes: [u8; 32] = rand::random();
    SecretString::from(format!("whsec_{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// The URL as logs may show it: no user info, no query string or fragment (they may hold tokens).
pub fn loggable_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => "<unparseable url>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn http_and_https_urls_with_a_host_are_accepted() {
        for ok in [
            "https://crm.example/hooks?token=abc",
            "http://127.0.0.1:9000/in",
            "  https://crm.example  ",
        ] {
            assert!(NewWebhookEndpoint::parse(ok, None).is_ok(), "{ok}");
        }
    }

    #[test]
    fn other_urls_are_refused_naming_the_field() {
        for bad in [
            "",
            "crm.example/hooks",
            "ftp://crm.example/",
            "file:///etc/passwd",
            "https://user:pw@crm.example/",
            "https://user@crm.example/",
            "mailto:a@b.example",
        ] {
            let err = NewWebhookEndpoint::parse(bad, None).unwrap_err();
            assert_eq!(err.field, "url", "{bad}");
        }
        let long = format!("https://crm.example/{}", "a".repeat(2048));
        assert!(NewWebhookEndpoint::parse(&long, None).is_err());
    }

    #[test]
    fn descriptions_are_trimmed_and_bounded() {
        let e = NewWebhookEndpoint::parse("https://a.example", Some("  CRM  ")).unwrap();
        assert_eq!(e.description.as_deref(), Some("CRM"));
        let e = NewWebhookEndpoint::parse("https://a.example", Some(" ")).unwrap();
        assert_eq!(e.description, None);
        let err =
            NewWebhookEndpoint::parse("https://a.example", Some(&"x".repeat(501))).unwrap_err();
        assert_eq!(err.field, "description");
    }

    #[test]
    fn secrets_are_prefixed_random_and_long() {
        let a = generate_secret();
        let b = generate_secret();
        assert!(a.expose_secret().starts_with("whsec_"));
        assert_eq!(a.expose_secret().len(), "whsec_".len() + 43);
        assert_ne!(a.expose_secret(), b.expose_secret());
    }

    #[test]
    fn logged_urls_lose_credentials_and_query() {
        assert_eq!(
            loggable_url("https://u:p@crm.example:8443/in?token=s3cret#x"),
            "https://crm.example:8443/in"
        );
    }
}
