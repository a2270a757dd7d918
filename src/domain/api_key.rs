use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

/// Prefix that makes a leaked key recognisable to secret scanners and to people.
const KEY_PREFIX: &str = "sb_key_";

/// A freshly issued API key. The plaintext exists only here, to be shown to its owner once.
pub struct IssuedApiKey {
    pub plaintext: SecretString,
    pub hash: String,
    /// The first characters, stored in clear so an owner can tell their keys apart.
    pub display_prefix: String,
}

impl IssuedApiKey {
    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::random();
        let plaintext = format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes));
        let hash = hash_api_key(&plaintext);
        let display_prefix = plaintext[..KEY_PREFIX.len() + 6].to_owned();
        Self {
            plaintext: SecretString::from(plaintext),
            hash,
            display_prefix,
        }
    }
}

/// The stored form of a key: hex SHA-256. Keys carry 256 random bits, so a slow password hash
/// would add latency to every request without adding protection.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Checks the shape of a presented key before any lookup.
pub fn looks_like_api_key(key: &SecretString) -> bool {
    let k = key.expose_secret();
    k.starts_with(KEY_PREFIX) && k.len() == KEY_PREFIX.len() + 43
}

const PUBLIC_KEY_PREFIX: &str = "pk_";

/// The key a property's snippet embeds in public pages; it identifies, it does not authorise.
pub fn generate_public_key() -> String {
    let bytes: [u8; 16] = rand::random();
    format!("{PUBLIC_KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `key` has the shape of a public key (`pk_` and 16 bytes in URL-safe base64),
/// checked before any lookup or cache entry: the page-view endpoint is open to anyone.
pub fn looks_like_public_key(key: &str) -> bool {
    key.strip_prefix(PUBLIC_KEY_PREFIX).is_some_and(|rest| {
        rest.len() == 22
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_keys_are_unique_and_hash_to_their_stored_form() {
        let a = IssuedApiKey::generate();
        let b = IssuedApiKey::generate();
        assert_ne!(a.plaintext.expose_secret(), b.plaintext.expose_secret());
        assert_eq!(hash_api_key(a.plaintext.expose_secret()), a.hash);
        assert!(looks_like_api_key(&a.plaintext));
        assert!(!looks_like_api_key(&SecretString::from("sb_key_short")));
        assert!(looks_like_public_key(&generate_public_key()));
        for junk in [
            "",
            "pk_",
            "pk_short",
            &format!("pk_{}", "a".repeat(60_000)),
            "pk_aaaaaaaaaaaaaaaaaaaa/+",
        ] {
            assert!(!looks_like_public_key(junk), "{junk:.20}");
        }
        assert!(a.plaintext.expose_secret().starts_with(&a.display_prefix));
        // Debug never shows the secret.
        assert!(!format!("{:?}", a.plaintext).contains(a.plaintext.expose_secret()));
    }
}
