//! Key-encryption keys behind a small KMS interface.
//!
//! [`Kms`] wraps and unwraps data keys under a key-encryption key (KEK) named by id. The
//! embedded default is [`LocalKms`], a key ring read from configuration or a key file; a
//! cloud KMS or Vault's transit engine fits the same two calls.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use secrecy::ExposeSecret;
use syncline_config::AuthVaultConfig;

use super::aead::{AeadKey, KEY_LEN, random_bytes};

/// A KMS refused or failed. Carries no key material.
#[derive(Debug, thiserror::Error)]
pub enum KmsError {
    /// The KEK id is not in the key ring.
    #[error("unknown key-encryption key `{0}`")]
    UnknownKey(String),
    /// The wrapped key does not open under that KEK (wrong key or tampered).
    #[error("failed to unwrap a data key under `{0}`")]
    Unwrap(String),
    /// Wrapping failed.
    #[error("failed to wrap a data key under `{0}`")]
    Wrap(String),
    /// The key ring could not be loaded.
    #[error("invalid key ring: {0}")]
    KeyRing(String),
}

/// Wraps and unwraps data keys under key-encryption keys named by id.
#[tonic::async_trait]
pub trait Kms: Send + Sync + std::fmt::Debug {
    /// The KEK new data keys are wrapped under until the database names another.
    fn default_key_id(&self) -> &str;
    /// Whether `key_id` can be used.
    fn has_key(&self, key_id: &str) -> bool;
    /// Wraps `data_key` under `key_id`.
    async fn wrap(&self, key_id: &str, data_key: &[u8]) -> Result<Vec<u8>, KmsError>;
    /// Unwraps what [`wrap`](Kms::wrap) produced under `key_id`.
    async fn unwrap(&self, key_id: &str, wrapped: &[u8]) -> Result<Vec<u8>, KmsError>;
}

/// The name of the key file the embedded default generates in the data directory.
pub const DEFAULT_KEY_FILE: &str = "auth-vault.keys";

/// A local key ring: AES-256-GCM KEKs by id, in the order they were configured.
pub struct LocalKms {
    keys: BTreeMap<String, AeadKey>,
    default_key_id: String,
}

impl std::fmt::Debug for LocalKms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalKms")
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .field("default_key_id", &self.default_key_id)
            .finish()
    }
}

fn aad(key_id: &str) -> Vec<u8> {
    format!("syncline-kek:{key_id}").into_bytes()
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn decode_key(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ]
    .iter()
    .find_map(|engine| engine.decode(text).ok())
}

impl LocalKms {
    /// A key ring from `(id, 32-byte key)` pairs; the default is `active` or the last one.
    pub fn new(pairs: Vec<(String, Vec<u8>)>, active: Option<&str>) -> Result<Self, KmsError> {
        let mut keys = BTreeMap::new();
        let mut last = None;
        for (id, bytes) in pairs {
            if !valid_id(&id) {
                return Err(KmsError::KeyRing(format!(
                    "key id `{id}` may contain only letters, digits, '-', '_' and '.'"
                )));
            }
            let key = AeadKey::new(&bytes)
                .map_err(|_| KmsError::KeyRing(format!("key `{id}` must be {KEY_LEN} bytes")))?;
            if keys.insert(id.clone(), key).is_some() {
                return Err(KmsError::KeyRing(format!("key id `{id}` appears twice")));
            }
            last = Some(id);
        }
        let default_key_id = match active {
            Some(id) => id.to_owned(),
            None => last.ok_or_else(|| KmsError::KeyRing("no key in the key ring".into()))?,
        };
        if !keys.contains_key(&default_key_id) {
            return Err(KmsError::UnknownKey(default_key_id));
        }
        Ok(Self {
            keys,
            default_key_id,
        })
    }

    /// The key ring the configuration names: `keys`, else `kek_file`, else
    /// `<data_dir>/auth-vault.keys` (generated, mode 0600, when absent).
    pub fn from_config(config: &AuthVaultConfig, data_dir: &Path) -> Result<Self, KmsError> {
        let active = config.active_kek_id.as_deref();
        if let Some(inline) = &config.keys {
            return Self::new(parse_inline(inline.expose_secret())?, active);
        }
        let path = match &config.kek_file {
            Some(path) => path.clone(),
            None => {
                let path = data_dir.join(DEFAULT_KEY_FILE);
                if !path.exists() {
                    generate_key_file(&path)?;
                }
                path
            }
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| KmsError::KeyRing(format!("failed to read {}: {e}", path.display())))?;
        Self::new(parse_file(&text)?, active)
    }
}

/// `id=base64,id=base64`.
fn parse_inline(text: &str) -> Result<Vec<(String, Vec<u8>)>, KmsError> {
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (id, key) = entry
                .split_once('=')
                .ok_or_else(|| KmsError::KeyRing("entries must be `id=base64`".into()))?;
            let bytes = decode_key(key)
                .ok_or_else(|| KmsError::KeyRing(format!("key `{id}` is not base64")))?;
            Ok((id.trim().to_owned(), bytes))
        })
        .collect()
}

/// One `<id> <base64>` per line; `#` starts a comment.
fn parse_file(text: &str) -> Result<Vec<(String, Vec<u8>)>, KmsError> {
    text.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .map(|line| {
            let mut parts = line.split_whitespace();
            let (Some(id), Some(key), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(KmsError::KeyRing(
                    "lines must be `<id> <base64 key>`".into(),
                ));
            };
            let bytes = decode_key(key)
                .ok_or_else(|| KmsError::KeyRing(format!("key `{id}` is not base64")))?;
            Ok((id.to_owned(), bytes))
        })
        .collect()
}

/// Writes a new key file with one random KEK, readable by the owner only.
fn generate_key_file(path: &PathBuf) -> Result<(), KmsError> {
    let fail =
        |e: std::io::Error| KmsError::KeyRing(format!("failed to create {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let key = random_bytes::<KEY_LEN>().map_err(|_| KmsError::KeyRing("no randomness".into()))?;
    let id = format!("kek-{}", &uuid::Uuid::now_v7().simple().to_string()[..16]);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = match options.open(path) {
        Ok(file) => file,
        // Another process of the embedded suite won the race: use its file.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(fail(e)),
    };
    let text = format!(
        "# syncline auth-vault key-encryption keys: `<id> <base64 of 32 bytes>` per line.\n\
         # Keep this file secret and backed up: without it no stored credential can be read.\n\
         {id} {}\n",
        base64::engine::general_purpose::STANDARD.encode(key)
    );
    file.write_all(text.as_bytes()).map_err(fail)?;
    file.sync_all().map_err(fail)
}

#[tonic::async_trait]
impl Kms for LocalKms {
    fn default_key_id(&self) -> &str {
        &self.default_key_id
    }

    fn has_key(&self, key_id: &str) -> bool {
        self.keys.contains_key(key_id)
    }

    async fn wrap(&self, key_id: &str, data_key: &[u8]) -> Result<Vec<u8>, KmsError> {
        let kek = self
            .keys
            .get(key_id)
            .ok_or_else(|| KmsError::UnknownKey(key_id.to_owned()))?;
        kek.seal(&aad(key_id), data_key)
            .map_err(|_| KmsError::Wrap(key_id.to_owned()))
    }

    async fn unwrap(&self, key_id: &str, wrapped: &[u8]) -> Result<Vec<u8>, KmsError> {
        let kek = self
            .keys
            .get(key_id)
            .ok_or_else(|| KmsError::UnknownKey(key_id.to_owned()))?;
        kek.open(&aad(key_id), wrapped)
            .map_err(|_| KmsError::Unwrap(key_id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[tokio::test]
    async fn wraps_under_a_named_key_and_refuses_others() {
        let kms = LocalKms::new(
            vec![("old".into(), vec![1; 32]), ("new".into(), vec![2; 32])],
            None,
        )
        .unwrap();
        assert_eq!(kms.default_key_id(), "new");
        let wrapped = kms.wrap("old", &[7; 32]).await.unwrap();
        assert_eq!(kms.unwrap("old", &wrapped).await.unwrap(), vec![7; 32]);
        // Same bytes, other key id: refused (the id is bound into the wrapping).
        assert!(matches!(
            kms.unwrap("new", &wrapped).await,
            Err(KmsError::Unwrap(_))
        ));
        assert!(matches!(
            kms.wrap("absent", &[7; 32]).await,
            Err(KmsError::UnknownKey(_))
        ));
        assert!(!format!("{kms:?}").contains("1, 1"));
    }

    #[test]
    fn key_rings_parse_from_inline_text_and_files() {
        let inline = format!("a={}, b={}", b64(&[1; 32]), b64(&[2; 32]));
        let kms = LocalKms::new(parse_inline(&inline).unwrap(), Some("a")).unwrap();
        assert_eq!(kms.default_key_id(), "a");
        let file = format!(
            "# comment\nk1 {}\n\nk2 {} # newest\n",
            b64(&[1; 32]),
            b64(&[2; 32])
        );
        let kms = LocalKms::new(parse_file(&file).unwrap(), None).unwrap();
        assert_eq!(kms.default_key_id(), "k2");
        assert!(
            LocalKms::new(parse_inline(&format!("a={}", b64(&[1; 16]))).unwrap(), None).is_err()
        );
        assert!(LocalKms::new(parse_inline(&inline).unwrap(), Some("zzz")).is_err());
        assert!(parse_file("lonely-id\n").is_err());
    }

    #[test]
    fn the_embedded_default_generates_an_owner_only_key_file_once() {
        let dir = std::env::temp_dir().join(format!("auth-vault-kms-{}", uuid::Uuid::new_v4()));
        let config = AuthVaultConfig::default();
        let first = LocalKms::from_config(&config, &dir).unwrap();
        let second = LocalKms::from_config(&config, &dir).unwrap();
        assert_eq!(first.default_key_id(), second.default_key_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.join(DEFAULT_KEY_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
