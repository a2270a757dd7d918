//! Sealing tenants' carrier secrets at rest (the Twilio auth tokens and the generic calls
//! secrets): XChaCha20-Poly1305 under a 32-byte key from configuration (`secrets_key`), with a
//! random nonce per value and the value's owner and column as associated data, so a sealed
//! value copied onto another account's row does not open.
//!
//! A sealed value reads `sb1:<key id>:<base64url(nonce | ciphertext)>`; a value without the
//! prefix is clear text from an earlier version (or from a service running without a key) and
//! is read as it is. `Sealer::needs_sealing` tells which stored values the start-up pass seals
//! again under the current key: clear ones, and those of `secrets_key_previous` during a
//! rotation.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::storage::Backend;

const PREFIX: &str = "sb1:";
const NONCE_LEN: usize = 24;

/// The key file generated beside an embedded (SQLite) database when no key is configured.
pub const KEY_FILE_SUFFIX: &str = ".secrets-key";

/// A configured key's bytes, or why it is not one.
pub fn parse_key(base64_key: &str) -> Result<[u8; 32], String> {
    let bytes = STANDARD
        .decode(base64_key.trim())
        .or_else(|_| URL_SAFE_NO_PAD.decode(base64_key.trim()))
        .map_err(|_| "must be 32 bytes in base64 (`openssl rand -base64 32`)".to_owned())?;
    bytes
        .try_into()
        .map_err(|_| "must be 32 bytes in base64 (`openssl rand -base64 32`)".to_owned())
}

struct Key {
    /// The first 8 hex digits of the key's SHA-256: which key sealed a value.
    id: String,
    cipher: XChaCha20Poly1305,
    /// A key of its own for fingerprints of erased callers, derived from this one.
    fingerprints: [u8; 32],
}

/// What derives the fingerprint key from the sealing key (or stands in without one).
const FINGERPRINT_CONTEXT: &[u8] = b"switchboard/caller-fingerprints/v1";

impl Key {
    fn new(bytes: &[u8; 32]) -> Self {
        let mut fingerprints = Sha256::new();
        fingerprints.update(FINGERPRINT_CONTEXT);
        fingerprints.update(bytes);
        Self {
            id: hex::encode(&Sha256::digest(bytes)[..4]),
            cipher: XChaCha20Poly1305::new_from_slice(bytes).expect("32-byte key"),
            fingerprints: fingerprints.finalize().into(),
        }
    }
}

/// A sealed value that cannot be opened: sealed under a key this service does not hold, or
/// altered.
#[derive(Debug, thiserror::Error)]
#[error(
    "a sealed {column} of account {account_id} cannot be opened (key {key_id}): is SWITCHBOARD_SECRETS_KEY the key that sealed it?"
)]
pub struct Unopenable {
    pub account_id: String,
    pub column: &'static str,
    pub key_id: String,
}

/// Seals and opens stored secrets. Without a key it stores clear text (and opens clear text only).
#[derive(Default)]
pub struct Sealer {
    current: Option<Key>,
    previous: Option<Key>,
}

impl Sealer {
    pub fn with_keys(current: Option<&[u8; 32]>, previous: Option<&[u8; 32]>) -> Self {
        Self {
            current: current.map(Key::new),
            previous: previous.map(Key::new),
        }
    }

    /// The sealer the settings call for: the configured key; else, for the embedded SQLite
    /// database, a key generated once into a file beside it (mode 0600); else (PostgreSQL,
    /// where instances must share one key) none: secrets stay in clear, with a warning.
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let key = |s: &Option<SecretString>| {
            s.as_ref()
                .map(|k| parse_key(k.expose_secret()).map_err(anyhow::Error::msg))
                .transpose()
        };
        let previous = key(&settings.secrets_key_previous)?;
        if let Some(current) = key(&settings.secrets_key)? {
            return Ok(Self::with_keys(Some(&current), previous.as_ref()));
        }
        match settings.backend() {
            Backend::Sqlite => match sqlite_key_file(settings.database_url.expose_secret()) {
                Some(path) => {
                    let key = load_or_create_key_file(&path)?;
                    Ok(Self::with_keys(Some(&key), None))
                }
                None => Ok(Self::default()),
            },
            Backend::Postgres => {
                tracing::warn!(
                    "SWITCHBOARD_SECRETS_KEY is not set: accounts' carrier tokens are stored in clear"
                );
                Ok(Self::default())
            }
        }
    }

    /// The key of erased callers' fingerprints (`crate::storage` keeps an erased number only as
    /// a keyed hash): derived from the current sealing key, so a copy of the database alone
    /// cannot test numbers against it; without a key, a fixed one (a plain hash, in effect).
    pub fn fingerprint_key(&self) -> [u8; 32] {
        match &self.current {
            Some(key) => key.fingerprints,
            None => Sha256::digest(FINGERPRINT_CONTEXT).into(),
        }
    }

    /// `clear`, sealed for `account_id`'s `column` (unchanged without a key).
    pub fn seal(&self, account_id: &str, column: &'static str, clear: &str) -> String {
        let Some(key) = &self.current else {
            return clear.to_owned();
        };
        let nonce_bytes: [u8; NONCE_LEN] = rand::random();
        let nonce = XNonce::from(nonce_bytes);
        let aad = associated_data(account_id, column);
        let sealed = key
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: clear.as_bytes(),
                    aad: &aad,
                },
            )
            .expect("sealing a short value cannot fail");
        let mut bytes = nonce_bytes.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}:{}", key.id, URL_SAFE_NO_PAD.encode(bytes))
    }

    /// The clear value of what `seal` stored (a value without the prefix is clear already).
    pub fn open(
        &self,
        account_id: &str,
        column: &'static str,
        stored: &str,
    ) -> Result<String, Unopenable> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_owned());
        };
        let (key_id, body) = rest.split_once(':').unwrap_or((rest, ""));
        let unopenable = || Unopenable {
            account_id: account_id.to_owned(),
            column,
            key_id: key_id.to_owned(),
        };
        let key = [&self.current, &self.previous]
            .into_iter()
            .flatten()
            .find(|k| k.id == key_id)
            .ok_or_else(unopenable)?;
        let bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| unopenable())?;
        if bytes.len() < NONCE_LEN {
            return Err(unopenable());
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = XNonce::try_from(nonce).map_err(|_| unopenable())?;
        let aad = associated_data(account_id, column);
        let clear = key
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| unopenable())?;
        String::from_utf8(clear).map_err(|_| unopenable())
    }

    /// Whether a stored value should be sealed again under the current key: it is clear, or
    /// sealed under the previous key.
    pub fn needs_sealing(&self, stored: &str) -> bool {
        let Some(current) = &self.current else {
            return false;
        };
        match stored.strip_prefix(PREFIX) {
            None => true,
            Some(rest) => !rest.starts_with(&format!("{}:", current.id)),
        }
    }
}

fn associated_data(account_id: &str, column: &str) -> Vec<u8> {
    format!("switchboard/{column}/{account_id}").into_bytes()
}

/// The key file beside a SQLite database file (None for an in-memory database).
fn sqlite_key_file(database_url: &str) -> Option<PathBuf> {
    let rest = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))?;
    let path = rest.split_once('?').map_or(rest, |(p, _)| p);
    (!path.is_empty() && path != ":memory:")
        .then(|| PathBuf::from(format!("{path}{KEY_FILE_SUFFIX}")))
}

/// The key in `path`, or a new one written there with mode 0600 (created exclusively: two
/// processes starting at once both end up with the one that was written first).
fn load_or_create_key_file(path: &Path) -> anyhow::Result<[u8; 32]> {
    use anyhow::Context;
    let read = |path: &Path| -> anyhow::Result<[u8; 32]> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the secrets key file {}", path.display()))?;
        parse_key(&text)
            .map_err(|m| anyhow::anyhow!("the secrets key file {}: {m}", path.display()))
    };
    if path.exists() {
        return read(path);
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::private_files::create_private_dir(dir)
            .with_context(|| format!("creating the folder of {}", path.display()))?;
    }
    let key: [u8; 32] = rand::random();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(STANDARD.encode(key).as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing the secrets key file {}", path.display()))?;
            tracing::info!(
                path = %path.display(),
                "generated the key that seals accounts' carrier tokens; keep it with the database"
            );
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read(path),
        Err(e) => {
            Err(e).with_context(|| format!("creating the secrets key file {}", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_for_their_owner_and_column_only() {
        let sealer = Sealer::with_keys(Some(&[7; 32]), None);
        let sealed = sealer.seal("acct-a", "twilio_auth_token", "the-token-0123456789");
        assert!(sealed.starts_with(PREFIX) && !sealed.contains("the-token"));
        assert_ne!(
            sealed,
            sealer.seal("acct-a", "twilio_auth_token", "the-token-0123456789")
        );
        assert_eq!(
            sealer.open("acct-a", "twilio_auth_token", &sealed).unwrap(),
            "the-token-0123456789"
        );
        assert!(sealer.open("acct-b", "twilio_auth_token", &sealed).is_err());
        assert!(sealer.open("acct-a", "calls_secret", &sealed).is_err());
        assert!(
            Sealer::with_keys(Some(&[8; 32]), None)
                .open("acct-a", "twilio_auth_token", &sealed)
                .is_err()
        );
        // Clear values of earlier versions read as they are, and are due for sealing.
        assert_eq!(
            sealer.open("acct-a", "calls_secret", "sbcs_x").unwrap(),
            "sbcs_x"
        );
        assert!(sealer.needs_sealing("sbcs_x") && !sealer.needs_sealing(&sealed));
    }

    #[test]
    fn a_rotation_opens_the_previous_keys_values_and_reseals_them() {
        let old = Sealer::with_keys(Some(&[1; 32]), None);
        let sealed = old.seal("a", "calls_secret", "s3cret");
        let rotating = Sealer::with_keys(Some(&[2; 32]), Some(&[1; 32]));
        assert_eq!(
            rotating.open("a", "calls_secret", &sealed).unwrap(),
            "s3cret"
        );
        assert!(rotating.needs_sealing(&sealed));
        assert!(!Sealer::default().needs_sealing("clear"));
        assert_eq!(
            Sealer::default().seal("a", "calls_secret", "clear"),
            "clear"
        );
    }

    #[test]
    fn an_embedded_database_gets_one_private_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/sb.db?mode=rwc", dir.path().display());
        let path = sqlite_key_file(&url).unwrap();
        assert_eq!(path, dir.path().join(format!("sb.db{KEY_FILE_SUFFIX}")));
        let first = load_or_create_key_file(&path).unwrap();
        assert_eq!(load_or_create_key_file(&path).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(sqlite_key_file("sqlite::memory:").is_none());
    }
}
