use std::collections::BTreeSet;
use std::fmt;

use serde::{Serialize, Serializer};

use super::FieldError;

/// E.164's limit on a number's digits, country code included (ITU-T E.164, 6.2.1).
const MAX_E164_DIGITS: usize = 15;
/// The longest spelling of a number taken, separators included.
const MAX_SPELLED_CHARS: usize = 40;

/// A valid phone number, held in E.164 (`+14155550100`).
///
/// Parsing uses libphonenumber's metadata (the `phonenumber` crate), so national spellings,
/// punctuation and invalid ranges are handled as the telephone network defines them.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parses an international number (`+14155550100`, `+1 (415) 555-0100`, `0044 20 7946 0958`).
    /// A number without a country code is rejected: tracking numbers serve many countries and
    /// guessing one would silently route calls to the wrong place.
    pub fn parse(field: &str, input: &str) -> Result<Self, FieldError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(FieldError::new(field, "must not be empty"));
        }
        let international = trimmed.starts_with('+') || trimmed.starts_with("00");
        // libphonenumber skips what follows a number (`+14155550100*` parses); only digits and
        // the usual separators are a spelling of one.
        let spelled = trimmed.strip_prefix('+').unwrap_or(trimmed);
        if international
            && (spelled.chars().count() > MAX_SPELLED_CHARS
                || !spelled
                    .chars()
                    .all(|c| c.is_ascii_digit() || " ().-".contains(c)))
        {
            return Err(FieldError::new(
                field,
                format!(
                    "`{trimmed}` is not a phone number: write it in E.164, e.g. +14155550100 \
                     (spaces, dots, dashes and brackets are allowed)"
                ),
            ));
        }
        if !international {
            return Err(FieldError::new(
                field,
                format!("`{trimmed}` has no country code; write it in E.164, e.g. +14155550100"),
            ));
        }
        let normalised = match trimmed.strip_prefix("00") {
            Some(rest) => format!("+{rest}"),
            None => trimmed.to_owned(),
        };
        let parsed = phonenumber::parse(None, &normalised).map_err(|e| {
            FieldError::new(field, format!("`{trimmed}` is not a phone number ({e})"))
        })?;
        if !phonenumber::is_valid(&parsed) {
            return Err(FieldError::new(
                field,
                format!("`{trimmed}` is not a valid phone number"),
            ));
        }
        let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
        // libphonenumber's metadata lets some national plans (Germany's) run past E.164's cap of
        // 15 digits; such a number cannot be written in E.164, nor dialled through a carrier.
        if e164.len() > 1 + MAX_E164_DIGITS {
            return Err(FieldError::new(
                field,
                format!(
                    "`{trimmed}` has more than {MAX_E164_DIGITS} digits, the most E.164 allows"
                ),
            ));
        }
        Ok(Self(e164))
    }

    /// Parses a number the service dials or publishes (`forward_to`, default and overflow
    /// numbers): as [`parse`](Self::parse), and not a premium-rate, shared-cost or personal
    /// number (`+1 900...`, `+44 70...`): such calls are billed at high rates to whoever places
    /// them, the operator, and are how toll fraud is made to pay.
    pub fn parse_destination(field: &str, input: &str) -> Result<Self, FieldError> {
        let number = Self::parse(field, input)?;
        let parsed = phonenumber::parse(None, &number.0)
            .expect("an E.164 number written by `parse` parses again");
        let kind = match parsed.number_type(&phonenumber::metadata::DATABASE) {
            phonenumber::Type::PremiumRate => "a premium-rate number",
            phonenumber::Type::SharedCost => "a shared-cost number",
            phonenumber::Type::PersonalNumber => "a personal number (charged at high rates)",
            _ => return Ok(number),
        };
        Err(FieldError::new(
            field,
            format!(
                "`{}` is {kind}; calls are not sent to such numbers",
                number.0
            ),
        ))
    }

    /// The number's country or territory (ISO 3166 alpha-2, `US`, `CA`, `JM`), when
    /// libphonenumber knows it (the +1 plan covers several).
    pub fn region(&self) -> Option<String> {
        let parsed = phonenumber::parse(None, &self.0).ok()?;
        parsed.country().id().map(|id| format!("{id:?}"))
    }

    /// Wraps a value read back from storage, where only parsed numbers are ever written.
    pub fn from_trusted(e164: String) -> Self {
        Self(e164)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The countries calls may be forwarded to (`SWITCHBOARD_FORWARD_COUNTRIES`): calls are dialled
/// on the operator's carrier bill, and high-cost destinations are how toll fraud pays.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ForwardCountries {
    /// The country of the property's published number (the default): a business forwards its
    /// calls to its own office.
    #[default]
    Home,
    /// Any country (`*`).
    Any,
    /// These countries (ISO 3166 alpha-2, as libphonenumber names the regions of +1 and others).
    Listed(BTreeSet<String>),
}

impl ForwardCountries {
    /// From the configured list: empty for [`Home`](Self::Home), `*` for any, else region codes.
    pub fn parse(list: &[String]) -> Result<Self, String> {
        let codes: Vec<String> = list
            .iter()
            .map(|c| c.trim().to_ascii_uppercase())
            .filter(|c| !c.is_empty())
            .collect();
        if codes.is_empty() {
            return Ok(Self::Home);
        }
        if codes.iter().any(|c| c == "*") {
            return Ok(Self::Any);
        }
        for code in &codes {
            if code.parse::<phonenumber::country::Id>().is_err() {
                return Err(format!("`{code}` is not a country code such as US or GB"));
            }
        }
        Ok(Self::Listed(codes.into_iter().collect()))
    }

    /// Whether calls may be forwarded to `number` for a property that publishes `home`.
    pub fn check(
        &self,
        field: &str,
        number: &PhoneNumber,
        home: &PhoneNumber,
    ) -> Result<(), FieldError> {
        let region = number.region();
        let allowed = match self {
            Self::Any => return Ok(()),
            Self::Home => region.is_some() && region == home.region(),
            Self::Listed(codes) => region.as_ref().is_some_and(|r| codes.contains(r)),
        };
        if allowed {
            return Ok(());
        }
        let to = region.unwrap_or_else(|| "an unknown country".to_owned());
        let allowed = match self {
            Self::Listed(codes) => codes.iter().cloned().collect::<Vec<_>>().join(", "),
            _ => format!(
                "{} (the country of the published number)",
                home.region().unwrap_or_default()
            ),
        };
        Err(FieldError::new(
            field,
            format!(
                "calls cannot be forwarded to {to}: this service forwards to {allowed} only \
                 (the operator sets SWITCHBOARD_FORWARD_COUNTRIES)"
            ),
        ))
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.0)
    }
}

impl Serialize for PhoneNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_international_spellings_to_e164() {
        for input in [
            "+14155550100",
            "+1 (415) 555-0100",
            "+1-415-555-0100",
            "001 415 555 0100",
        ] {
            assert_eq!(
                PhoneNumber::parse("n", input).unwrap().as_str(),
                "+14155550100",
                "{input}"
            );
        }
        assert_eq!(
            PhoneNumber::parse("n", "+44 (0)20 7946 0958")
                .unwrap()
                .as_str(),
            "+442079460958"
        );
    }

    #[test]
    fn premium_rate_shared_cost_and_personal_numbers_are_no_destination() {
        for costly in [
            "+1 900 555 0199",
            "+44 70 1234 5678",
            "+44 909 879 0000",
            "+44 845 464 0000",
        ] {
            assert!(
                PhoneNumber::parse("n", costly).is_ok(),
                "{costly} is a number"
            );
            let err = PhoneNumber::parse_destination("forward_to", costly).unwrap_err();
            assert_eq!(err.field, "forward_to");
            assert!(
                err.message.contains("calls are not sent"),
                "{}",
                err.message
            );
        }
        for fine in [
            "+14155550101",
            "+442079460958",
            "+18005550199",
            "+16135550101",
        ] {
            assert!(
                PhoneNumber::parse_destination("forward_to", fine).is_ok(),
                "{fine}"
            );
        }
        let region = |n: &str| PhoneNumber::parse("n", n).unwrap().region();
        assert_eq!(region("+14155550101").as_deref(), Some("US"));
        assert_eq!(region("+16135550101").as_deref(), Some("CA"));
        assert_eq!(region("+18765550101").as_deref(), Some("JM"));
        assert_eq!(region("+2697731234").as_deref(), Some("KM"));
    }

    #[test]
    fn calls_are_forwarded_to_the_countries_allowed() {
        let n = |s: &str| PhoneNumber::parse("n", s).unwrap();
        let (us, ca, comoros) = (n("+14155550100"), n("+16135550101"), n("+2697731234"));
        let home = ForwardCountries::parse(&[]).unwrap();
        assert!(home.check("forward_to", &us, &us).is_ok());
        assert!(home.check("forward_to", &ca, &us).is_err());
        let err = home.check("forward_to", &comoros, &us).unwrap_err();
        assert!(err.message.contains("KM"), "{}", err.message);
        let listed = ForwardCountries::parse(&["us".into(), " CA ".into()]).unwrap();
        assert!(listed.check("forward_to", &ca, &us).is_ok());
        assert!(listed.check("forward_to", &comoros, &us).is_err());
        let any = ForwardCountries::parse(&["*".into()]).unwrap();
        assert!(any.check("forward_to", &comoros, &us).is_ok());
        assert!(ForwardCountries::parse(&["XX".into()]).is_err());
        assert!(ForwardCountries::parse(&["USA".into()]).is_err());
    }

    #[test]
    fn rejects_numbers_without_country_code_or_invalid() {
        for input in [
            "",
            "4155550100",
            "+1 555",
            "+999 123",
            "hello",
            "+1415555010012345",
            // Found by schemathesis (.ci/api-fuzz): libphonenumber skips what follows.
            "+14155550136*",
            "+1 415 555 0136 call me",
        ] {
            let err = PhoneNumber::parse("forward_to", input).unwrap_err();
            assert_eq!(err.field, "forward_to", "{input}");
        }
    }

    /// Found by fuzzing: libphonenumber calls this German number valid, and its "E.164" form
    /// had 16 digits.
    #[test]
    fn numbers_longer_than_e164_allows_are_refused() {
        let err = PhoneNumber::parse("n", "+4920100000000000").unwrap_err();
        assert!(err.message.contains("15 digits"), "{}", err.message);
        assert!(PhoneNumber::parse("n", "+492011234567").is_ok());
    }
}

/// Fuzzing with proptest: libphonenumber's parser sees arbitrary text and plausible numbers.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Spellings a caller id or a form field could hold: `+`, `00`, digits, punctuation.
    fn plausible() -> impl Strategy<Value = String> {
        prop_oneof![
            "(\\+|00|\\+\\+| \\+)?[0-9 ()./x-]{0,24}(ext\\.? ?[0-9]{0,5})?",
            // Long digit runs, vanity letters, extensions, RFC 3966 and full-width digits.
            "\\+[0-9]{0,40}",
            "\\+[0-9]{1,3}[0-9A-Za-z -]{0,16}(;ext=[0-9]{0,6}|#[0-9]{0,4})?",
            "(tel:)?\\+[0-9-]{0,20}(;[a-z-]{0,8}=[0-9a-z+.-]{0,10})?",
            "[＋+][０-９0-9 ]{0,16}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn a_parsed_number_is_e164_and_parses_to_itself(
            input in prop_oneof![plausible(), any::<String>()]
        ) {
            if let Ok(n) = PhoneNumber::parse("n", &input) {
                let digits = n.as_str().strip_prefix('+');
                prop_assert!(digits.is_some_and(|d| (2..=15).contains(&d.len())
                    && d.bytes().all(|b| b.is_ascii_digit())), "{}", n.as_str());
                prop_assert_eq!(PhoneNumber::parse("n", n.as_str()), Ok(n.clone()));
            }
        }

        /// Every international spelling libphonenumber writes reads back as the same number.
        #[test]
        fn formatted_numbers_read_back(national in "[2-9][0-9]{9}", cc in prop::sample::select(vec![1u16, 44, 33, 49, 61, 81])) {
            let Ok(n) = PhoneNumber::parse("n", &format!("+{cc}{national}")) else {
                return Ok(());
            };
            let parsed = phonenumber::parse(None, n.as_str()).unwrap();
            for mode in [phonenumber::Mode::International, phonenumber::Mode::Rfc3966] {
                let written = parsed.format().mode(mode).to_string();
                let written = written.strip_prefix("tel:").unwrap_or(&written);
                prop_assert_eq!(PhoneNumber::parse("n", written), Ok(n.clone()), "{}", written);
            }
        }
    }
}
