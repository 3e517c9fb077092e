//! Envelope encryption at rest.
//!
//! - [`aead`]: AES-256-GCM (aws-lc-rs) sealing bound to where a value lives.
//! - [`kms`]: key-encryption keys (KEKs) by id behind the [`Kms`] trait; [`LocalKms`] is the
//!   embedded default.
//! - [`Keys`]: data keys, one per tenant (and one per project for provider app secrets),
//!   created on first use, stored wrapped in `data_keys`, cached unwrapped in memory, and
//!   re-wrapped online by [`Keys::rotate`]. Sealed values never need re-encrypting: rotation
//!   changes only how their data key is wrapped.

pub mod aead;
pub mod kms;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sqlx::Row;
use syncline_domain::{ApiError, ErrorCode};
use syncline_storage::{Database, now_ms};

pub use aead::{AeadKey, CryptoError};
pub use kms::{Kms, KmsError, LocalKms};

/// The project id of system keys; never a valid project id (`#` is not allowed in ids).
pub const SYSTEM_PROJECT: &str = "#system";

const ACTIVE_KEK: &str = "active_kek_id";

type Owner = (String, String);

/// Data keys: created, wrapped, cached and rotated.
#[derive(Clone)]
pub struct Keys {
    db: Database,
    kms: Arc<dyn Kms>,
    cache: Arc<RwLock<HashMap<Owner, Arc<[u8]>>>>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keys")
            .field("kms", &self.kms)
            .finish_non_exhaustive()
    }
}

/// What a rotation did (or would do, on a dry run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The KEK in use afterwards.
    pub active_key_id: String,
    /// Data keys re-wrapped by this call.
    pub rewrapped: i64,
    /// Data keys that were already under the new KEK.
    pub already_current: i64,
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e.to_string())
}

impl Keys {
    /// Uses `kms`; records its default KEK as the active one if the database names none,
    /// and fails if the active KEK is not in the key ring.
    pub async fn load_ring(db: Database, kms: Arc<dyn Kms>) -> Result<Self, KmsError> {
        sqlx::query(
            "INSERT INTO vault_settings (name, value) VALUES ($1, $2)
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(ACTIVE_KEK)
        .bind(kms.default_key_id())
        .execute(db.pool())
        .await
        .map_err(|e| KmsError::KeyRing(format!("failed to record the active key: {e}")))?;
        let keys = Self {
            db,
            kms,
            cache: Arc::default(),
        };
        let active = keys
            .active_key_id()
            .await
            .map_err(|e| KmsError::KeyRing(format!("failed to read the active key: {e}")))?;
        if !keys.kms.has_key(&active) {
            return Err(KmsError::UnknownKey(active));
        }
        Ok(keys)
    }

    /// The KEK new data keys are wrapped under, as recorded in the database.
    pub async fn active_key_id(&self) -> Result<String, ApiError> {
        let row = sqlx::query("SELECT value FROM vault_settings WHERE name = $1")
            .bind(ACTIVE_KEK)
            .fetch_one(self.db.pool())
            .await
            .map_err(ApiError::internal)?;
        row.try_get("value").map_err(ApiError::internal)
    }

    /// The raw data key of `(project, tenant)`, created and stored wrapped on first use.
    pub async fn data_key(&self, project: &str, tenant: &str) -> Result<Arc<[u8]>, ApiError> {
        let owner = (project.to_owned(), tenant.to_owned());
        if let Some(key) = self
            .cache
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&owner)
        {
            return Ok(key.clone());
        }
        let key = match self.load(project, tenant).await? {
            Some(key) => key,
            None => {
                self.create(project, tenant).await?;
                // Another process may have won the insert: whatever is stored is the key.
                self.load(project, tenant)
                    .await?
                    .ok_or_else(|| internal("data key vanished after creation"))?
            }
        };
        let key: Arc<[u8]> = Arc::from(key);
        self.cache
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(owner, key.clone());
        Ok(key)
    }

    /// The AES-256-GCM key of `(project, tenant)`.
    pub async fn aead(&self, project: &str, tenant: &str) -> Result<AeadKey, ApiError> {
        let key = self.data_key(project, tenant).await?;
        AeadKey::new(&key).map_err(internal)
    }

    /// Seals `plaintext` under the data key of `(project, tenant)`, bound to `aad`.
    pub async fn seal(
        &self,
        project: &str,
        tenant: &str,
        aad: &str,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, ApiError> {
        self.aead(project, tenant)
            .await?
            .seal(aad.as_bytes(), plaintext)
            .map_err(internal)
    }

    /// Opens a value sealed by [`seal`](Self::seal) with the same owner and `aad`.
    pub async fn open(
        &self,
        project: &str,
        tenant: &str,
        aad: &str,
        sealed: &[u8],
    ) -> Result<Vec<u8>, ApiError> {
        self.aead(project, tenant)
            .await?
            .open(aad.as_bytes(), sealed)
            .map_err(internal)
    }

    async fn load(&self, project: &str, tenant: &str) -> Result<Option<Vec<u8>>, ApiError> {
        let row = sqlx::query(
            "SELECT kek_id, wrapped_key FROM data_keys WHERE project_id = $1 AND tenant_id = $2",
        )
        .bind(project)
        .bind(tenant)
        .fetch_optional(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        let Some(row) = row else { return Ok(None) };
        let kek_id: String = row.try_get("kek_id").map_err(ApiError::internal)?;
        let wrapped: Vec<u8> = row.try_get("wrapped_key").map_err(ApiError::internal)?;
        let key = self.kms.unwrap(&kek_id, &wrapped).await.map_err(internal)?;
        Ok(Some(key))
    }

    async fn create(&self, project: &str, tenant: &str) -> Result<(), ApiError> {
        let key = aead::random_bytes::<{ aead::KEY_LEN }>().map_err(internal)?;
        let kek_id = self.active_key_id().await?;
        let wrapped = self.kms.wrap(&kek_id, &key).await.map_err(internal)?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO data_keys
                 (project_id, tenant_id, kek_id, wrapped_key, created_at_ms, updated_at_ms)
             VALUES ($1, $2, $3, $4, $5, $5)
             ON CONFLICT (project_id, tenant_id) DO NOTHING",
        )
        .bind(project)
        .bind(tenant)
        .bind(&kek_id)
        .bind(wrapped)
        .bind(now)
        .execute(self.db.pool())
        .await
        .map_err(ApiError::internal)?;
        Ok(())
    }

    /// Makes `new_key_id` the active KEK, then re-wraps every data key still under another
    /// KEK. Online: readers keep working throughout (each row is swapped in one statement,
    /// compare-and-set on its old KEK id); idempotent and resumable.
    pub async fn rotate(&self, new_key_id: &str, dry_run: bool) -> Result<Rotation, ApiError> {
        if !self.kms.has_key(new_key_id) {
            return Err(ApiError::new(
                ErrorCode::FailedPrecondition,
                format!("key-encryption key `{new_key_id}` is not in the key ring"),
            ));
        }
        let count = |sql: &'static str| async move {
            let row = sqlx::query(sql)
                .bind(new_key_id)
                .fetch_one(self.db.pool())
                .await
                .map_err(ApiError::internal)?;
            row.try_get::<i64, _>(0).map_err(ApiError::internal)
        };
        let already_current = count("SELECT COUNT(*) FROM data_keys WHERE kek_id = $1").await?;
        if dry_run {
            return Ok(Rotation {
                active_key_id: self.active_key_id().await?,
                rewrapped: count("SELECT COUNT(*) FROM data_keys WHERE kek_id <> $1").await?,
                already_current,
            });
        }
        sqlx::query("UPDATE vault_settings SET value = $2 WHERE name = $1")
            .bind(ACTIVE_KEK)
            .bind(new_key_id)
            .execute(self.db.pool())
            .await
            .map_err(ApiError::internal)?;
        let mut rewrapped = 0;
        loop {
            let rows = sqlx::query(
                "SELECT project_id, tenant_id, kek_id, wrapped_key FROM data_keys
                 WHERE kek_id <> $1 ORDER BY project_id, tenant_id LIMIT 100",
            )
            .bind(new_key_id)
            .fetch_all(self.db.pool())
            .await
            .map_err(ApiError::internal)?;
            if rows.is_empty() {
                break;
            }
            for row in rows {
                let project: String = row.try_get("project_id").map_err(ApiError::internal)?;
                let tenant: String = row.try_get("tenant_id").map_err(ApiError::internal)?;
                let old: String = row.try_get("kek_id").map_err(ApiError::internal)?;
                let wrapped: Vec<u8> = row.try_get("wrapped_key").map_err(ApiError::internal)?;
                let key = self.kms.unwrap(&old, &wrapped).await.map_err(internal)?;
                let rewrapped_key = self.kms.wrap(new_key_id, &key).await.map_err(internal)?;
                let done = sqlx::query(
                    "UPDATE data_keys SET kek_id = $1, wrapped_key = $2, updated_at_ms = $3
                     WHERE project_id = $4 AND tenant_id = $5 AND kek_id = $6",
                )
                .bind(new_key_id)
                .bind(rewrapped_key)
                .bind(now_ms())
                .bind(&project)
                .bind(&tenant)
                .bind(&old)
                .execute(self.db.pool())
                .await
                .map_err(ApiError::internal)?;
                rewrapped += done.rows_affected() as i64;
            }
        }
        tracing::info!(kek_id = new_key_id, rewrapped, "key-encryption key rotated");
        Ok(Rotation {
            active_key_id: new_key_id.to_owned(),
            rewrapped,
            already_current,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_db::on_every_backend;

    fn ring(ids: &[(&str, u8)], active: Option<&str>) -> Arc<dyn Kms> {
        let pairs = ids
            .iter()
            .map(|(id, b)| ((*id).to_owned(), vec![*b; 32]))
            .collect();
        Arc::new(LocalKms::new(pairs, active).unwrap())
    }

    async fn raw_rows(db: &Database) -> Vec<(String, String, Vec<u8>)> {
        sqlx::query("SELECT tenant_id, kek_id, wrapped_key FROM data_keys ORDER BY tenant_id")
            .fetch_all(db.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r.try_get("tenant_id").unwrap(),
                    r.try_get("kek_id").unwrap(),
                    r.try_get("wrapped_key").unwrap(),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn each_tenant_gets_its_own_wrapped_data_key() {
        on_every_backend(
            "each_tenant_gets_its_own_wrapped_data_key",
            |db| async move {
                let keys = Keys::load_ring(db.clone(), ring(&[("k1", 1)], None))
                    .await
                    .unwrap();
                let sealed = keys
                    .seal("p", "acme", "conn:1:access_token", b"tok-acme")
                    .await
                    .unwrap();
                keys.seal("p", "globex", "conn:2:access_token", b"tok-globex")
                    .await
                    .unwrap();
                assert_eq!(
                    keys.open("p", "acme", "conn:1:access_token", &sealed)
                        .await
                        .unwrap(),
                    b"tok-acme"
                );
                // Another tenant's key cannot open it, even with the right binding.
                assert!(
                    keys.open("p", "globex", "conn:1:access_token", &sealed)
                        .await
                        .is_err()
                );
                let rows = raw_rows(&db).await;
                assert_eq!(rows.len(), 2);
                assert!(
                    rows.iter()
                        .all(|(_, kek, wrapped)| kek == "k1" && wrapped.len() > 32)
                );
                assert_ne!(rows[0].2, rows[1].2);
                // A fresh process (empty cache) opens it from the wrapped key.
                let again = Keys::load_ring(db.clone(), ring(&[("k1", 1)], None))
                    .await
                    .unwrap();
                assert_eq!(
                    again
                        .open("p", "acme", "conn:1:access_token", &sealed)
                        .await
                        .unwrap(),
                    b"tok-acme"
                );
                // A key ring without the active KEK refuses to start.
                assert!(
                    Keys::load_ring(db.clone(), ring(&[("other", 3)], None))
                        .await
                        .is_err()
                );
            },
        )
        .await;
    }

    #[tokio::test]
    async fn rotation_rewraps_every_data_key_online_and_is_resumable() {
        on_every_backend("rotation_rewraps_every_data_key_online", |db| async move {
            let old = Keys::load_ring(db.clone(), ring(&[("k1", 1), ("k2", 2)], Some("k1")))
                .await
                .unwrap();
            let mut sealed = Vec::new();
            for tenant in ["a", "b", "c"] {
                sealed.push(old.seal("p", tenant, "x", tenant.as_bytes()).await.unwrap());
            }
            let dry = old.rotate("k2", true).await.unwrap();
            assert_eq!((dry.rewrapped, dry.already_current), (3, 0));
            assert_eq!(dry.active_key_id, "k1");
            assert!(old.rotate("nope", false).await.is_err());
            let rotation = old.rotate("k2", false).await.unwrap();
            assert_eq!(rotation.active_key_id, "k2");
            assert_eq!((rotation.rewrapped, rotation.already_current), (3, 0));
            assert!(raw_rows(&db).await.iter().all(|(_, kek, _)| kek == "k2"));
            // New keys go under the new KEK; a second run has nothing left to do.
            old.seal("p", "d", "x", b"d").await.unwrap();
            let again = old.rotate("k2", false).await.unwrap();
            assert_eq!((again.rewrapped, again.already_current), (0, 4));
            // Without the old KEK at all, everything still opens: nothing depends on it.
            let fresh = Keys::load_ring(db.clone(), ring(&[("k2", 2)], None))
                .await
                .unwrap();
            for (tenant, value) in ["a", "b", "c"].iter().zip(&sealed) {
                assert_eq!(
                    fresh.open("p", tenant, "x", value).await.unwrap(),
                    tenant.as_bytes()
                );
            }
        })
        .await;
    }
}
