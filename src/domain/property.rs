use std::fmt;

use chrono_tz::Tz;
use iso_currency::Currency;

use super::{CallSettings, CallSettingsPatch, FieldError, PhoneNumber, required_text};

/// A web site host a property's snippet may run on. Subdomains of it are allowed too.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Domain(String);

impl Domain {
    pub fn parse(field: &str, input: &str) -> Result<Self, FieldError> {
        let lowered = input.trim().trim_end_matches('.').to_ascii_lowercase();
        if lowered.is_empty() {
            return Err(FieldError::new(field, "must not be empty"));
        }
        if lowered.contains(['/', ':', '@', '?', '#']) && !lowered.starts_with('[') {
            return Err(FieldError::new(
                field,
                format!("`{input}` must be a bare host name such as example.com, not a URL"),
            ));
        }
        // Letters, digits, `-` and dots between labels (an IP address in brackets aside): the
        // URL parser alone lets `*` and empty labels through.
        let host_chars = lowered
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
        if !host_chars && !lowered.starts_with('[') {
            return Err(FieldError::new(
                field,
                format!("`{input}` is not a host name such as example.com"),
            ));
        }
        match url::Host::parse(&lowered) {
            Ok(url::Host::Domain(d)) if d.contains('.') || d == "localhost" => {
                // `www.` is dropped only while a name with a dot is left: `www.com` must not
                // become `com`, which would cover every .com site.
                let mut site = d.as_str();
                while let Some(rest) = site.strip_prefix("www.")
                    && rest.contains('.')
                {
                    site = rest;
                }
                Ok(Self(site.to_owned()))
            }
            Ok(url::Host::Ipv4(ip)) => Ok(Self(ip.to_string())),
            Ok(url::Host::Ipv6(ip)) => Ok(Self(format!("[{ip}]"))),
            _ => Err(FieldError::new(
                field,
                format!("`{input}` is not a host name such as example.com"),
            )),
        }
    }

    pub fn from_trusted(value: String) -> Self {
        Self(value)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `host` is this domain or one of its subdomains (`www.`, `shop.`, ...).
    pub fn covers(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        host == self.0
            || host
                .strip_suffix(self.0.as_str())
                .is_some_and(|prefix| prefix.ends_with('.'))
    }
}

impl fmt::Debug for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Domain({})", self.0)
    }
}

/// A web site whose calls are tracked: its domains, the number it publishes, and where calls go.
#[derive(Debug, Clone)]
pub struct NewProperty {
    pub name: String,
    pub domains: Vec<Domain>,
    pub default_number: PhoneNumber,
    pub forward_to: PhoneNumber,
    pub timezone: Tz,
    pub currency: Currency,
    pub call_settings: CallSettings,
}

/// The raw fields of a property, as a client sends them.
pub struct PropertyInput<'a> {
    pub name: &'a str,
    pub domains: &'a [String],
    pub default_number: &'a str,
    pub forward_to: Option<&'a str>,
    pub timezone: Option<&'a str>,
    pub currency: Option<&'a str>,
    pub call_settings: Option<&'a CallSettingsPatch>,
}

impl NewProperty {
    pub fn parse(input: PropertyInput<'_>) -> Result<Self, FieldError> {
        let name = required_text("name", input.name, 200)?;
        if input.domains.is_empty() {
            return Err(FieldError::new(
                "domains",
                "must list at least one domain the snippet runs on",
            ));
        }
        if input.domains.len() > 100 {
            return Err(FieldError::new("domains", "must list at most 100 domains"));
        }
        let mut domains: Vec<Domain> = Vec::with_capacity(input.domains.len());
        for (i, d) in input.domains.iter().enumerate() {
            let domain = Domain::parse(&format!("domains[{i}]"), d)?;
            if !domains.contains(&domain) {
                domains.push(domain);
            }
        }
        let default_number =
            PhoneNumber::parse_destination("default_number", input.default_number)?;
        // Calls go to the published number unless told otherwise: that is where they went before.
        let forward_to = match input.forward_to {
            Some(n) => PhoneNumber::parse_destination("forward_to", n)?,
            None => default_number.clone(),
        };
        let timezone = match input.timezone {
            None => Tz::UTC,
            Some(tz) => tz.trim().parse::<Tz>().map_err(|_| {
                FieldError::new(
                    "timezone",
                    format!("`{tz}` is not an IANA time zone such as America/New_York"),
                )
            })?,
        };
        let currency = match input.currency {
            None => Currency::USD,
            Some(c) => Currency::from_code(&c.trim().to_ascii_uppercase()).ok_or_else(|| {
                FieldError::new(
                    "currency",
                    format!("`{c}` is not an ISO 4217 currency code such as USD"),
                )
            })?,
        };
        let call_settings = match input.call_settings {
            Some(patch) => CallSettings::default().patched(patch, "call_settings")?,
            None => CallSettings::default(),
        };
        Ok(Self {
            call_settings,
            name,
            domains,
            default_number,
            forward_to,
            timezone,
            currency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_lowercased_and_cover_subdomains() {
        let d = Domain::parse("d", "WWW.Example.com").unwrap();
        assert_eq!(d.as_str(), "example.com");
        assert!(d.covers("example.com"));
        assert!(d.covers("shop.example.com"));
        assert!(!d.covers("badexample.com"));
        assert!(!d.covers("example.com.evil.io"));
    }

    #[test]
    fn urls_and_junk_are_not_domains() {
        for bad in [
            "https://example.com",
            "example.com/path",
            "",
            "exa mple.com",
            "com",
            // Found by schemathesis (.ci/api-fuzz): the URL parser took these.
            "shop.example.co.uk****",
            "a..example.com",
        ] {
            assert!(Domain::parse("domains[0]", bad).is_err(), "{bad}");
        }
        assert!(Domain::parse("d", "localhost").is_ok());
        assert!(Domain::parse("d", "127.0.0.1").is_ok());
    }

    /// Found by fuzzing: `www.` was stripped before the check for a dot, so `www.com` was
    /// kept as `com` (allowing every .com page) and `WWW.-` as `-`, which does not parse again.
    #[test]
    fn www_is_dropped_only_from_a_name_that_keeps_a_dot() {
        let d = Domain::parse("d", "www.com").unwrap();
        assert_eq!(d.as_str(), "www.com");
        assert!(!d.covers("evil.com"));
        assert_eq!(Domain::parse("d", "WWW.-").unwrap().as_str(), "www.-");
        let d = Domain::parse("d", "www.www.example.co.uk").unwrap();
        assert_eq!(d.as_str(), "example.co.uk");
        assert_eq!(Domain::parse("d", d.as_str()), Ok(d));
    }
}

/// Fuzzing with proptest: any text parses or is refused without a panic, and a parsed domain
/// is in its normal form (parsing it again gives it back) and covers itself.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn a_parsed_domain_is_its_own_normal_form(
            input in prop_oneof![
                "(WWW\\.|www\\.){0,3}[a-zA-Z0-9-]{0,10}(\\.[a-zA-Z]{1,4}){0,3}\\.?",
                "\\[[0-9a-f:]{0,12}\\]",
                "[0-9]{1,3}(\\.[0-9]{1,3}){0,4}",
                any::<String>(),
            ]
        ) {
            if let Ok(d) = Domain::parse("domains[0]", &input) {
                prop_assert_eq!(Domain::parse("domains[0]", d.as_str()), Ok(d.clone()));
                prop_assert!(d.covers(d.as_str()));
                let sub = format!("shop.{}", d.as_str());
                prop_assert!(d.covers(&sub));
            }
        }
    }
}
