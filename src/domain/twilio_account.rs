use std::fmt;

use super::FieldError;

/// A Twilio account SID: `AC` and 32 hex digits, as Twilio prints it (hex in lower case).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TwilioAccountSid(String);

impl TwilioAccountSid {
    pub fn parse(field: &str, input: &str) -> Result<Self, FieldError> {
        let sid = input.trim();
        match sid.strip_prefix("AC") {
            Some(hex) if hex.len() == 32 && hex.chars().all(|c| c.is_ascii_hexdigit()) => {
                Ok(Self(format!("AC{}", hex.to_ascii_lowercase())))
            }
            _ => Err(FieldError::new(
                field,
                "must be AC followed by 32 hex digits",
            )),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TwilioAccountSid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TwilioAccountSid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_are_ac_and_32_hex_digits_in_one_spelling() {
        let sid = TwilioAccountSid::parse("sid", " AC0123456789ABCDEF0123456789abcdef ").unwrap();
        assert_eq!(sid.as_str(), "AC0123456789abcdef0123456789abcdef");
        for bad in [
            "",
            "AC123",
            "ac0123456789abcdef0123456789abcdef",
            "AC0123456789abcdef0123456789abcdeg",
        ] {
            assert_eq!(
                TwilioAccountSid::parse("sid", bad).unwrap_err().field,
                "sid",
                "{bad}"
            );
        }
    }
}
