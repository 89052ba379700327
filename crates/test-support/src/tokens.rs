//! Access tokens without the auth service: a signing key of auth's own type whose key set is
//! published through the broker exactly as auth publishes it, so the service under test
//! verifies the tokens as in production.

use herald_auth::keys::{KeyError, SigningKey, unix_now};
use herald_broker::Broker;
use herald_common::auth::KeySet;
use herald_common::claims::Claims;
use herald_common::ids::UserId;
use herald_service::tokens::KEY_SET_KV_KEY;

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

/// Signs test tokens; its public key is the key set it publishes.
#[derive(Debug)]
pub struct TokenMinter {
    key: SigningKey,
}

impl TokenMinter {
    /// A minter with a new random key.
    #[allow(clippy::new_without_default)] // each call makes a new key: not a default value
    pub fn new() -> Self {
        Self {
            key: SigningKey::generate(),
        }
    }

    /// The key set with this minter's key, as auth publishes it.
    pub fn key_set(&self) -> KeySet {
        KeySet {
            keys: vec![self.key.jwk().clone()],
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

    /// Signs `claims` as they are.
    pub fn sign(&self, claims: &Claims) -> Result<String, KeyError> {
        self.key.sign(claims)
    }

    /// A token for `user` named `name`, issued at `issued_at` (Unix seconds) and valid for
    /// `ttl` seconds.
    pub fn token(
        &self,
        user: &UserId,
        name: &str,
        issuer: &str,
        audience: &str,
        issued_at: u64,
        ttl: u64,
    ) -> String {
        let claims = Claims::new(user, name, issuer, audience, issued_at, ttl);
        self.sign(&claims).expect("sign a test token")
    }

    /// A new user with a token valid for 15 minutes.
    pub fn user(&self, name: &str, issuer: &str, audience: &str) -> TestUser {
        let id = UserId::new();
        TestUser {
            id,
            name: name.to_owned(),
            token: self.token(&id, name, issuer, audience, unix_now(), 900),
        }
    }
}
