//! Signing keys: loading, rotation and publication of the public key set.
//!
//! auth signs access tokens with one Ed25519 key, read from `HERALD_JWT_PRIVATE_KEY_FILE`
//! (PKCS#8 PEM, as `openssl genpkey -algorithm ed25519` writes it) or, in development only,
//! generated at start-up. Its `kid` is the key's RFC 7638 thumbprint, so every auth instance
//! that loads the same file names it the same way.
//!
//! **Publication.** Every `key_refresh_interval` the [`KeyRing`] is published to the broker
//! (key [`herald_service::tokens::KEY_SET_KV_KEY`]) as a JWKS, merged with what other
//! instances published. Each key carries `herald_retire_at`, a lease: the signing key's lease
//! is renewed on every publication and reaches past the lifetime of any token it signed, so
//! keys of instances that stopped (or of throwaway development keys) drop out by themselves
//! once their last token has expired.
//!
//! **Rotation.** When the key file's content changes (a new secret mounted), the next tick
//! publishes the new key *first*, then signs with it; the old key stays in the set until the
//! tokens it signed have expired. No restart is needed.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, PoisonError, RwLock},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::Engine as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use herald_broker::Broker;
use herald_common::{
    auth::{Jwk, KeySet},
    claims::Claims,
};
use herald_service::tokens::{KEY_SET_KV_KEY, TokenVerifier};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sha2::{Digest, Sha256};

/// A key could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file could not be read.
    #[error("cannot read signing key file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not an Ed25519 private key in PKCS#8 PEM.
    #[error("signing key file {0} is not an Ed25519 private key (PKCS#8 PEM)")]
    Parse(PathBuf),
    /// Signing failed.
    #[error("token signing failed: {0}")]
    Sign(String),
}

/// An Ed25519 private key with its `kid` and public JWK.
pub struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    jwk: Jwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh random key (development, tests).
    pub fn generate() -> Self {
        let seed: [u8; 32] = rand::random();
        Self::from_dalek(&ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// Parses a PKCS#8 PEM private key.
    pub fn from_pem(pem: &str) -> Option<Self> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .ok()
            .map(|key| Self::from_dalek(&key))
    }

    /// A new random key as PKCS#8 PEM (for key files in tests and `herald-auth gen-key`).
    pub fn generate_pem() -> String {
        let seed: [u8; 32] = rand::random();
        ed25519_dalek::SigningKey::from_bytes(&seed)
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map(|pem| pem.to_string())
            .unwrap_or_default()
    }

    fn from_dalek(key: &ed25519_dalek::SigningKey) -> Self {
        let public = key.verifying_key().to_bytes();
        let mut jwk = Jwk::ed25519("", &public);
        let thumbprint = Sha256::digest(jwk.thumbprint_input().as_bytes());
        let kid = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(thumbprint);
        jwk.kid.clone_from(&kid);
        // A freshly derived PKCS#8 document always encodes; an empty one would fail loudly
        // at the first signature rather than here.
        let der = key
            .to_pkcs8_der()
            .map(|doc| doc.as_bytes().to_vec())
            .unwrap_or_default();
        Self {
            kid,
            encoding: EncodingKey::from_ed_der(&der),
            jwk,
        }
    }

    /// The key id (RFC 7638 thumbprint).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK (without lease).
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// Signs `claims` as an EdDSA JWT with this key's `kid`.
    pub fn sign(&self, claims: &Claims) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|e| KeyError::Sign(e.to_string()))
    }
}

/// A key read from the file that differs from the one in use.
#[derive(Debug)]
pub struct Candidate {
    key: SigningKey,
    digest: [u8; 32],
}

impl Candidate {
    /// The new key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }
}

/// Lease and retention lengths.
#[derive(Debug, Clone, Copy)]
pub struct KeyTiming {
    /// Lifetime of access tokens.
    pub access_ttl: Duration,
    /// Clock leeway verifiers allow.
    pub leeway: Duration,
    /// Pause between publications.
    pub refresh_interval: Duration,
}

impl KeyTiming {
    /// How long a retired key must stay: its last token may live `access_ttl + leeway`.
    fn retention(&self) -> u64 {
        (self.access_ttl + self.leeway).as_secs() + 1
    }

    /// Lease of the signing key: outlives every token it signed even if this instance stops
    /// right after the publication (two missed ticks of margin).
    fn lease(&self) -> u64 {
        self.retention() + 3 * self.refresh_interval.as_secs().max(1)
    }
}

struct RingState {
    current: Arc<SigningKey>,
    file_digest: Option<[u8; 32]>,
    /// Keys that no longer sign, each with its `herald_retire_at`.
    retired: Vec<Jwk>,
    /// The merged set last published (or, while the broker is down, assembled locally).
    published: Arc<KeySet>,
}

/// The signing key in use, the keys it replaced, and where new ones come from.
pub struct KeyRing {
    file: Option<PathBuf>,
    timing: KeyTiming,
    state: RwLock<RingState>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("file", &self.file)
            .field("current", &self.current().kid)
            .finish()
    }
}

impl KeyRing {
    /// Loads the key in `file`.
    pub fn from_file(file: &Path, timing: KeyTiming) -> Result<Self, KeyError> {
        let (key, digest) = read_key(file)?;
        Ok(Self::new(key, Some(digest), Some(file.to_owned()), timing))
    }

    /// Uses `key` (a generated development key, or a test key); no file is watched.
    pub fn with_key(key: SigningKey, timing: KeyTiming) -> Self {
        Self::new(key, None, None, timing)
    }

    fn new(
        key: SigningKey,
        file_digest: Option<[u8; 32]>,
        file: Option<PathBuf>,
        timing: KeyTiming,
    ) -> Self {
        let published = Arc::new(KeySet {
            keys: vec![key.jwk.clone()],
        });
        Self {
            file,
            timing,
            state: RwLock::new(RingState {
                current: Arc::new(key),
                file_digest,
                retired: Vec::new(),
                published,
            }),
        }
    }

    /// The key that signs now.
    pub fn current(&self) -> Arc<SigningKey> {
        Arc::clone(
            &self
                .state
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .current,
        )
    }

    /// The key set last published (what `/auth/jwks.json` serves).
    pub fn published(&self) -> Arc<KeySet> {
        Arc::clone(
            &self
                .state
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .published,
        )
    }

    /// Reads the key file; a key different from the current one is returned, not installed.
    pub fn poll_file(&self) -> Result<Option<Candidate>, KeyError> {
        let Some(file) = &self.file else {
            return Ok(None);
        };
        let (key, digest) = read_key(file)?;
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        if state.file_digest == Some(digest) || key.kid == state.current.kid {
            return Ok(None);
        }
        Ok(Some(Candidate { key, digest }))
    }

    /// This instance's keys at `now` (Unix seconds): the signing key and `candidate` under a
    /// fresh lease, and retired keys still within retention.
    pub fn local_set(&self, now: u64, candidate: Option<&Candidate>) -> KeySet {
        let lease_until = now + self.timing.lease();
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        let leased = |key: &SigningKey| Jwk {
            herald_retire_at: Some(lease_until),
            ..key.jwk.clone()
        };
        let mut keys = Vec::new();
        if let Some(candidate) = candidate {
            keys.push(leased(&candidate.key));
        }
        keys.push(leased(&state.current));
        keys.extend(
            state
                .retired
                .iter()
                .filter(|k| k.herald_retire_at.is_some_and(|t| t > now))
                .cloned(),
        );
        KeySet { keys }
    }

    /// Makes `candidate` the signing key; the previous one is kept for verification until
    /// its tokens have expired.
    pub fn install(&self, candidate: Candidate, now: u64) {
        let retire_at = now + self.timing.retention();
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        let previous = Jwk {
            herald_retire_at: Some(retire_at),
            ..state.current.jwk.clone()
        };
        state
            .retired
            .retain(|k| k.kid != candidate.key.kid && k.herald_retire_at.is_some_and(|t| t > now));
        state.retired.push(previous);
        state.current = Arc::new(candidate.key);
        state.file_digest = Some(candidate.digest);
    }

    fn set_published(&self, set: KeySet) -> Arc<KeySet> {
        let set = Arc::new(set);
        self.state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .published = Arc::clone(&set);
        set
    }

    /// One publication round: pick up a changed key file, merge this instance's keys with
    /// the broker's set, write it back, then (only once the new key is published) switch to
    /// signing with it. `verifier` gets the merged set either way, so auth's own bearer checks
    /// accept every published key.
    pub async fn publish(
        &self,
        broker: &Broker,
        verifier: &TokenVerifier,
    ) -> anyhow::Result<Arc<KeySet>> {
        let now = unix_now();
        let candidate = match self.poll_file() {
            Ok(candidate) => candidate,
            Err(err) => {
                tracing::error!(error = %err, "signing key file unreadable; keeping the current key");
                None
            }
        };
        let local = self.local_set(now, candidate.as_ref());
        let result = async {
            let remote = match broker.kv_get(KEY_SET_KV_KEY).await? {
                Some(json) => serde_json::from_str::<KeySet>(&json).unwrap_or_else(|err| {
                    tracing::warn!(error = %err, "published key set unreadable; replacing it");
                    KeySet::default()
                }),
                None => KeySet::default(),
            };
            let merged = merge(&local, &remote, now);
            let ttl = merged
                .keys
                .iter()
                .filter_map(|k| k.herald_retire_at)
                .max()
                .map(|t| Duration::from_secs(t.saturating_sub(now) + 1));
            broker
                .kv_set(KEY_SET_KV_KEY, &serde_json::to_string(&merged)?, ttl)
                .await?;
            anyhow::Ok(merged)
        }
        .await;
        let set = match result {
            Ok(merged) => {
                if let Some(candidate) = candidate {
                    tracing::info!(old_kid = %self.current().kid, new_kid = %candidate.key.kid, "signing key rotated");
                    self.install(candidate, now);
                }
                self.set_published(merged)
            }
            Err(err) => {
                // Keep signing with the old key: verifiers could not learn the new one yet.
                let merged = merge(&self.local_set(now, None), &self.published(), now);
                let set = self.set_published(merged);
                verifier.set_keys(&set);
                return Err(err.context("publishing the key set"));
            }
        };
        verifier.set_keys(&set);
        Ok(set)
    }
}

/// `local` plus the keys of `remote` this instance does not have and whose lease has not run
/// out.
pub fn merge(local: &KeySet, remote: &KeySet, now: u64) -> KeySet {
    let mut keys = local.keys.clone();
    for key in &remote.keys {
        let alive = key.herald_retire_at.is_some_and(|t| t > now);
        if alive && keys.iter().all(|k| k.kid != key.kid) {
            keys.push(key.clone());
        }
    }
    KeySet { keys }
}

fn read_key(file: &Path) -> Result<(SigningKey, [u8; 32]), KeyError> {
    let pem = std::fs::read_to_string(file).map_err(|source| KeyError::Read {
        path: file.to_owned(),
        source,
    })?;
    let key = SigningKey::from_pem(&pem).ok_or_else(|| KeyError::Parse(file.to_owned()))?;
    Ok((key, Sha256::digest(pem.as_bytes()).into()))
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use herald_common::{
        auth::{Verifier, VerifierConfig},
        ids::UserId,
    };

    use super::*;

    fn timing() -> KeyTiming {
        KeyTiming {
            access_ttl: Duration::from_secs(900),
            leeway: Duration::from_secs(30),
            refresh_interval: Duration::from_secs(10),
        }
    }

    #[test]
    fn a_signed_token_verifies_against_the_published_jwk() {
        let key = SigningKey::generate();
        let now = unix_now();
        let claims = Claims::new(&UserId::new(), "alice", "herald", "herald", now, 900);
        let token = key.sign(&claims).unwrap();
        let verifier = Verifier::new(VerifierConfig::default()).with_keys(&KeySet {
            keys: vec![key.jwk().clone()],
        });
        assert_eq!(verifier.verify(&token).unwrap(), claims);
    }

    #[test]
    fn the_same_pem_gives_the_same_kid() {
        let pem = SigningKey::generate_pem();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(
            SigningKey::from_pem(&pem).unwrap().kid(),
            SigningKey::from_pem(&pem).unwrap().kid()
        );
        assert!(SigningKey::from_pem("not a key").is_none());
    }

    #[test]
    fn an_installed_key_signs_and_the_old_one_is_retained_until_its_tokens_expire() {
        let ring = KeyRing::with_key(SigningKey::generate(), timing());
        let old = ring.current().kid().to_owned();
        let new = SigningKey::generate();
        let new_kid = new.kid().to_owned();
        ring.install(
            Candidate {
                key: new,
                digest: [1; 32],
            },
            1_000,
        );
        assert_eq!(ring.current().kid(), new_kid);
        let set = ring.local_set(1_000, None);
        assert_eq!(set.keys[0].kid, new_kid);
        assert_eq!(set.find(&old).unwrap().herald_retire_at, Some(1_000 + 931));
        assert!(ring.local_set(1_000 + 931, None).find(&old).is_none());
    }

    #[test]
    fn merging_keeps_other_instances_keys_until_their_lease_ends() {
        let local = KeySet {
            keys: vec![Jwk {
                herald_retire_at: Some(500),
                ..Jwk::ed25519("mine", &[1; 32])
            }],
        };
        let remote = KeySet {
            keys: vec![
                Jwk {
                    herald_retire_at: Some(400),
                    ..Jwk::ed25519("theirs", &[2; 32])
                },
                Jwk {
                    herald_retire_at: Some(100),
                    ..Jwk::ed25519("stale", &[3; 32])
                },
                Jwk {
                    herald_retire_at: Some(50),
                    ..Jwk::ed25519("mine", &[1; 32])
                },
            ],
        };
        let merged = merge(&local, &remote, 200);
        let kids: Vec<_> = merged.keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, ["mine", "theirs"]);
        assert_eq!(merged.keys[0].herald_retire_at, Some(500));
    }
}
