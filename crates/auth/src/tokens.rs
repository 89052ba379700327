//! Refresh tokens: opaque random strings the client keeps, stored only as hashes.
//!
//! A refresh token is 256 random bits, base64url-encoded (43 characters). Because it is
//! unguessable, a single SHA-256 is enough to store it safely (unlike passwords, it needs no
//! slow hash): the database never holds a usable token.

use std::fmt;

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Longest refresh token accepted from a client (ours are 43 characters).
const MAX_PRESENTED_LEN: usize = 256;

/// A refresh token as the client sees it. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl RefreshToken {
    /// A new random token.
    pub fn generate() -> Self {
        let bytes: [u8; 32] = rand::random();
        Self(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A token presented by a client; `None` if it cannot be one of ours (empty or huge).
    pub fn presented(raw: String) -> Option<Self> {
        let raw = raw.trim().to_owned();
        (!raw.is_empty() && raw.len() <= MAX_PRESENTED_LEN).then_some(Self(raw))
    }

    /// The token text, for the response body.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The stored form.
    pub fn hash(&self) -> RefreshTokenHash {
        RefreshTokenHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken([redacted])")
    }
}

/// SHA-256 of a refresh token: what the store keeps and looks up.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RefreshTokenHash([u8; 32]);

impl RefreshTokenHash {
    /// The 32 hash bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for RefreshTokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshTokenHash(..)")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let a = RefreshToken::generate();
        let b = RefreshToken::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43);
        assert_eq!(
            a.hash(),
            RefreshToken::presented(a.expose().to_owned())
                .unwrap()
                .hash()
        );
        assert_ne!(a.hash(), b.hash());
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn empty_or_huge_tokens_are_not_ours() {
        assert!(RefreshToken::presented(String::new()).is_none());
        assert!(RefreshToken::presented("x".repeat(300)).is_none());
    }
}
