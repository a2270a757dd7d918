use std::fmt;

use serde::{Serialize, Serializer};

use super::FieldError;

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
        Ok(Self(e164))
    }

    /// Wraps a value read back from storage, where only parsed numbers are ever written.
    pub fn from_trusted(e164: String) -> Self {
        Self(e164)
    }

    pub fn as_str(&self) -> &str {
        &self.0
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
    fn rejects_numbers_without_country_code_or_invalid() {
        for input in [
            "",
            "4155550100",
            "+1 555",
            "+999 123",
            "hello",
            "+1415555010012345",
        ] {
            let err = PhoneNumber::parse("forward_to", input).unwrap_err();
            assert_eq!(err.field, "forward_to", "{input}");
        }
    }
}
