//! Password hashing: argon2id on a blocking thread, with a dummy hash for unknown users.
//!
//! A hash plus a verify costs tens of milliseconds of CPU by design, so both run on Tokio's
//! blocking pool, never on the async worker that serves other requests. Sign-in with an
//! unknown username still verifies the presented password against [`PasswordHasher`]'s dummy
//! hash (same parameters), so "no such user" and "wrong password" take the same time and
//! cannot be told apart (no user enumeration).

use std::sync::Arc;

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHasher as _, PasswordVerifier as _},
};
use serde::{Deserialize, Serialize};

use crate::domain::Password;

/// argon2id cost parameters (`HERALD_PASSWORD_HASH__MEMORY_KIB`, `__ITERATIONS`,
/// `__PARALLELISM`). The defaults are OWASP's recommendation (19 MiB, 2 passes, 1 lane).
/// Existing hashes keep verifying after a change: each hash records its own parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct HashSettings {
    /// Memory cost in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
    /// Degree of parallelism.
    pub parallelism: u32,
}

impl Default for HashSettings {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

/// Hashing failed: bad parameters or a corrupt stored hash. Never "wrong password".
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// An argon2id PHC string (`$argon2id$v=19$m=...`), as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a stored PHC string.
    pub fn from_stored(phc: String) -> Self {
        Self(phc)
    }

    /// The PHC string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash([redacted])")
    }
}

/// Hashes and verifies passwords off the async threads. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    params: Params,
    /// Hash of a random password nobody knows, verified when the user does not exist.
    dummy: Arc<PasswordHash>,
}

impl PasswordHasher {
    /// Validates the parameters and prepares the dummy hash (one hash, on a blocking thread).
    pub async fn new(settings: HashSettings) -> Result<Self, HashError> {
        let params = Params::new(
            settings.memory_kib,
            settings.iterations,
            settings.parallelism,
            None,
        )
        .map_err(|e| HashError(e.to_string()))?;
        let unguessable: [u8; 32] = rand::random();
        let dummy = hash_blocking(params.clone(), unguessable.to_vec()).await?;
        Ok(Self {
            params,
            dummy: Arc::new(dummy),
        })
    }

    /// Hashes a new password with a fresh random salt.
    pub async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        hash_blocking(self.params.clone(), password.as_bytes().to_vec()).await
    }

    /// Whether `password` matches `stored`; with `stored == None` (unknown user) it does the
    /// same work against the dummy hash and answers `false`.
    pub async fn verify(
        &self,
        password: &Password,
        stored: Option<&PasswordHash>,
    ) -> Result<bool, HashError> {
        let (phc, real) = match stored {
            Some(hash) => (hash.clone(), true),
            None => ((*self.dummy).clone(), false),
        };
        let candidate = password.as_bytes().to_vec();
        let matches = tokio::task::spawn_blocking(move || {
            let hash = argon2::password_hash::phc::PasswordHash::new(phc.as_str())
                .map_err(|e| HashError(format!("stored hash unreadable: {e}")))?;
            Ok::<_, HashError>(argon2().verify_password(&candidate, &hash).is_ok())
        })
        .await
        .map_err(|e| HashError(format!("hashing task failed: {e}")))??;
        Ok(real && matches)
    }
}

/// Argon2id v19; verification takes the parameters from the stored hash.
fn argon2() -> Argon2<'static> {
    Argon2::default()
}

async fn hash_blocking(params: Params, password: Vec<u8>) -> Result<PasswordHash, HashError> {
    tokio::task::spawn_blocking(move || {
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password(&password)
            .map(|hash| PasswordHash(hash.to_string()))
            .map_err(|e| HashError(e.to_string()))
    })
    .await
    .map_err(|e| HashError(format!("hashing task failed: {e}")))?
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    fn cheap() -> HashSettings {
        HashSettings {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        }
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_and_nothing_else() {
        let hasher = PasswordHasher::new(cheap()).await.unwrap();
        let password = Password::parse("correct horse".into()).unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        assert!(hash.as_str().starts_with("$argon2id$"));
        assert!(hasher.verify(&password, Some(&hash)).await.unwrap());
        let wrong = Password::parse("battery staple".into()).unwrap();
        assert!(!hasher.verify(&wrong, Some(&hash)).await.unwrap());
    }

    #[tokio::test]
    async fn an_unknown_user_never_verifies() {
        let hasher = PasswordHasher::new(cheap()).await.unwrap();
        let password = Password::parse("correct horse".into()).unwrap();
        assert!(!hasher.verify(&password, None).await.unwrap());
    }
}
