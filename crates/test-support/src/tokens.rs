//! Access tokens without the auth service: an Ed25519 key whose key set is published through
//! the broker exactly as auth publishes it, so the service under test verifies the tokens as
//! in production. Tokens are EdDSA JWTs signed here with `ed25519-dalek` and `jsonwebtoken`
//! (what auth signs with), so tests of every service can mint them without depending on auth.

use base64::Engine as _;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use herald_broker::Broker;
use herald_common::auth::{Jwk, KeySet};
use herald_common::claims::{Claims, DEFAULT_AUDIENCE, DEFAULT_ISSUER};
use herald_common::ids::UserId;
use herald_service::tokens::KEY_SET_KV_KEY;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use uuid::Uuid;

/// A user with a valid access token.
#[derive(Debug, Clone)]
pub struct TestUser {
    /// The token's subject.
    pub id: UserId,
    /// The token's `name`.
    pub name: String,
    /// The signed access token.
    pub token: String,
}

/// Signs test tokens; its public key is the key set it publishes. Clones sign with the same
/// key (two nodes of one Herald trust the same set).
#[derive(Clone)]
pub struct TokenMinter {
    key: ed25519_dalek::SigningKey,
    kid: String,
}

impl std::fmt::Debug for TokenMinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenMinter")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl TokenMinter {
    /// A minter with a new random key.
    #[allow(clippy::new_without_default)] // each call makes a new key: not a default value
    pub fn new() -> Self {
        Self {
            key: random_key(),
            kid: format!("test-{}", Uuid::new_v4().simple()),
        }
    }

    /// The key id every token of this minter names in its header.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Jwk {
        Jwk::ed25519(self.kid.clone(), &self.key.verifying_key().to_bytes())
    }

    /// The key set with this minter's key, as auth publishes it.
    pub fn key_set(&self) -> KeySet {
        KeySet {
            keys: vec![self.jwk()],
        }
    }

    /// Publishes [`Self::key_set`] through `broker` (before the service starts, as auth
    /// would have).
    pub async fn publish(&self, broker: &Broker) {
        let set = serde_json::to_string(&self.key_set()).expect("key set JSON");
        broker
            .kv_set(KEY_SET_KV_KEY, &set, None)
            .await
            .expect("publish the key set");
    }

    /// Signs `claims` as they are (an EdDSA JWT naming this minter's key id).
    pub fn sign(&self, claims: &Claims) -> String {
        sign_with(&self.key, &self.kid, claims)
    }

    /// A token for `user` named `name` from the default issuer for the default audience
    /// (`herald`), issued now and valid for `ttl` seconds.
    pub fn token(&self, user: &UserId, name: &str, ttl: u64) -> String {
        self.sign(&default_claims(user, name, unix_now(), ttl))
    }

    /// A token of the default issuer and audience that expired an hour ago (beyond any
    /// leeway).
    pub fn expired(&self, user: &UserId, name: &str) -> String {
        self.sign(&default_claims(user, name, unix_now() - 7200, 3600))
    }

    /// A token naming this minter's key id but signed by another key.
    pub fn forged(&self, user: &UserId, name: &str) -> String {
        let claims = default_claims(user, name, unix_now(), 600);
        sign_with(&random_key(), &self.kid, &claims)
    }

    /// An unsigned token (`alg: none`) naming this minter's key id.
    pub fn unsigned(&self, user: &UserId, name: &str) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = serde_json::json!({"alg": "none", "typ": "JWT", "kid": self.kid});
        let claims = default_claims(user, name, unix_now(), 600);
        let header = b64.encode(header.to_string());
        let payload = b64.encode(serde_json::to_vec(&claims).expect("claims JSON"));
        format!("{header}.{payload}.")
    }

    /// A new user with a token from `issuer` for `audience`, valid for 15 minutes.
    pub fn user(&self, name: &str, issuer: &str, audience: &str) -> TestUser {
        let id = UserId::new();
        let claims = Claims::new(&id, name, issuer, audience, unix_now(), 900);
        TestUser {
            id,
            name: name.to_owned(),
            token: self.sign(&claims),
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is past 1970")
        .as_secs()
}

fn random_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&rand::random::<[u8; 32]>())
}

fn default_claims(user: &UserId, name: &str, issued_at: u64, ttl: u64) -> Claims {
    Claims::new(user, name, DEFAULT_ISSUER, DEFAULT_AUDIENCE, issued_at, ttl)
}

fn sign_with(key: &ed25519_dalek::SigningKey, kid: &str, claims: &Claims) -> String {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    let der = key.to_pkcs8_der().expect("PKCS#8 of an Ed25519 key");
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_der(der.as_bytes()))
        .expect("sign a test token")
}

#[cfg(test)]
mod tests {
    use herald_common::auth::{Verifier, VerifierConfig, VerifyError};

    use super::*;

    fn verifier(minter: &TokenMinter) -> Verifier {
        Verifier::new(VerifierConfig::default()).with_keys(&minter.key_set())
    }

    #[test]
    fn a_minted_token_verifies_against_the_published_key_set() {
        let minter = TokenMinter::new();
        let user = UserId::new();
        let claims = verifier(&minter)
            .verify(&minter.token(&user, "alice", 600))
            .unwrap();
        assert_eq!(claims.user_id().unwrap(), user);
        assert_eq!(claims.name, "alice");
    }

    #[test]
    fn forged_unsigned_and_expired_tokens_do_not_verify() {
        let minter = TokenMinter::new();
        let verifier = verifier(&minter);
        let user = UserId::new();
        assert_eq!(
            verifier.verify(&minter.forged(&user, "mallory")),
            Err(VerifyError::BadSignature)
        );
        assert_eq!(
            verifier.verify(&minter.unsigned(&user, "mallory")),
            Err(VerifyError::UnsupportedAlgorithm("none".to_owned()))
        );
        assert_eq!(
            verifier.verify(&minter.expired(&user, "alice")),
            Err(VerifyError::Expired)
        );
    }
}
