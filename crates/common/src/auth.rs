//! Access-token verification shared by the gateway and tasks-api (design section 5).
//!
//! [`Verifier`] is pure: it holds a [`KeySet`] (Herald's Ed25519 public keys by `kid`, the
//! same document auth serves at `/auth/jwks.json` and writes to the broker) and checks a
//! token against it. It does no I/O: when a token names a `kid` it does not know it answers
//! [`VerifyError::UnknownKid`], and the caller (a service-side wrapper over the broker)
//! refetches the key set at most once per [`RefetchLimiter`] interval and retries.
//!
//! What is checked, in order:
//! 1. the header: `alg` must be `EdDSA` (so `none`, and `HS256` signed with a public key as
//!    the HMAC secret, are refused before any key is touched), and `kid` must name a known key;
//! 2. the Ed25519 signature;
//! 3. `exp` (with a small leeway; an expired token is the distinct [`VerifyError::Expired`],
//!    which the gateway maps to protocol error 109 so clients refresh), `iss`, `aud`, `sub`.
//!
//! Optionally ([`ExternalTrust`]) tokens from the user's own backend are trusted too: HS256/
//! HS384/HS512 signed with a configured secret, or tokens signed by keys of an extra JWKS
//! document. This lets a team keep its own login and still use Herald's gateway.

#![warn(missing_docs)]

use std::{
    collections::HashMap,
    fmt,
    time::{Duration, Instant},
};

use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use crate::claims::Claims;

/// `kty` of Ed25519 keys (RFC 8037).
pub const KEY_TYPE_OKP: &str = "OKP";
/// `crv` of Ed25519 keys.
pub const CURVE_ED25519: &str = "Ed25519";
/// The only algorithm of Herald's own tokens.
pub const ALGORITHM_EDDSA: &str = "EdDSA";

/// One Ed25519 public key as a JWK (RFC 7517, RFC 8037).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Always `OKP`.
    pub kty: String,
    /// Always `Ed25519`.
    pub crv: String,
    /// The 32-byte public key, base64url without padding.
    pub x: String,
    /// Key id: the JWT `kid` header of tokens signed with the matching private key.
    pub kid: String,
    /// `EdDSA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// `sig`.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub key_use: Option<String>,
    /// Herald extension: Unix time after which no unexpired token can carry this key (the key
    /// was retired, or its auth instance stopped renewing it). `None`: the key signs now.
    /// Other JWKS consumers ignore the member, as RFC 7517 requires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub herald_retire_at: Option<u64>,
}

impl Jwk {
    /// The JWK of an Ed25519 public key given as raw bytes.
    pub fn ed25519(kid: impl Into<String>, public_key: &[u8; 32]) -> Self {
        Self {
            kty: KEY_TYPE_OKP.to_owned(),
            crv: CURVE_ED25519.to_owned(),
            x: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public_key),
            kid: kid.into(),
            alg: Some(ALGORITHM_EDDSA.to_owned()),
            key_use: Some("sig".to_owned()),
            herald_retire_at: None,
        }
    }

    /// The canonical JSON whose SHA-256 is the key's RFC 7638 thumbprint. auth uses the
    /// thumbprint as `kid`, so every instance loading the same key names it the same way.
    pub fn thumbprint_input(&self) -> String {
        format!(
            r#"{{"crv":"{}","kty":"{}","x":"{}"}}"#,
            self.crv, self.kty, self.x
        )
    }

    /// The decoding key, if this is a well-formed Ed25519 key.
    fn decoding_key(&self) -> Option<DecodingKey> {
        if self.kty != KEY_TYPE_OKP || self.crv != CURVE_ED25519 {
            return None;
        }
        if self
            .alg
            .as_deref()
            .is_some_and(|alg| alg != ALGORITHM_EDDSA)
        {
            return None;
        }
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&self.x)
            .ok()?;
        // jsonwebtoken slices the first 32 bytes; anything else is not an Ed25519 key.
        if raw.len() != 32 {
            return None;
        }
        DecodingKey::from_ed_components(&self.x).ok()
    }
}

/// A JWKS document: `{"keys": [...]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySet {
    /// The keys, current signer first.
    pub keys: Vec<Jwk>,
}

impl KeySet {
    /// The key with this `kid`.
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid == kid)
    }
}

/// Issuer, audience and clock leeway a [`Verifier`] requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierConfig {
    /// Required `iss` (`HERALD_JWT__ISSUER`).
    pub issuer: String,
    /// Required `aud` (`HERALD_JWT__AUDIENCE`).
    pub audience: String,
    /// Seconds of clock skew tolerated on `exp`.
    pub leeway_secs: u64,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            issuer: crate::claims::DEFAULT_ISSUER.to_owned(),
            audience: crate::claims::DEFAULT_AUDIENCE.to_owned(),
            leeway_secs: 30,
        }
    }
}

/// Why a token was refused. Every variant means "not authenticated"; they differ so that
/// callers can react ([`Self::Expired`]: ask the client to refresh; [`Self::UnknownKid`]:
/// refetch keys) and so that logs say why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// Not three base64url parts, or a header/payload that is not JSON.
    #[error("malformed token")]
    Malformed,
    /// `alg` is not one this verifier accepts (`none`, `HS256` without a configured secret,
    /// `RS256`, ...).
    #[error("token algorithm {0:?} is not accepted")]
    UnsupportedAlgorithm(String),
    /// An `EdDSA` token without a `kid` header.
    #[error("token has no kid")]
    MissingKid,
    /// No known key has this `kid`: refetch the key set (rate-limited) and retry once.
    #[error("token signed by unknown key {0:?}")]
    UnknownKid(String),
    /// The signature does not match.
    #[error("bad token signature")]
    BadSignature,
    /// `exp` is in the past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// `iss` is not the configured issuer.
    #[error("wrong token issuer")]
    WrongIssuer,
    /// `aud` is not the configured audience.
    #[error("wrong token audience")]
    WrongAudience,
    /// A required claim is missing or malformed.
    #[error("invalid token claims: {0}")]
    InvalidClaims(String),
}

impl VerifyError {
    fn from_jwt(err: &jsonwebtoken::errors::Error) -> Self {
        match err.kind() {
            ErrorKind::InvalidSignature => Self::BadSignature,
            ErrorKind::ExpiredSignature => Self::Expired,
            ErrorKind::InvalidIssuer => Self::WrongIssuer,
            ErrorKind::InvalidAudience => Self::WrongAudience,
            ErrorKind::MissingRequiredClaim(claim) => {
                Self::InvalidClaims(format!("missing {claim}"))
            }
            ErrorKind::InvalidClaimFormat(claim) => {
                Self::InvalidClaims(format!("malformed {claim}"))
            }
            ErrorKind::ImmatureSignature => Self::InvalidClaims("not valid yet (nbf)".to_owned()),
            ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm => {
                Self::UnsupportedAlgorithm("mismatch".to_owned())
            }
            ErrorKind::Json(_) => {
                Self::InvalidClaims("claims do not match the expected shape".to_owned())
            }
            _ => Self::Malformed,
        }
    }
}

/// Tokens from the user's own backend that a [`Verifier`] also accepts.
#[derive(Clone, Default)]
pub struct ExternalTrust {
    hmac_secret: Option<DecodingKey>,
    keys: HashMap<String, (Algorithm, DecodingKey)>,
    issuer: Option<String>,
    audience: Option<String>,
}

impl fmt::Debug for ExternalTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalTrust")
            .field(
                "hmac_secret",
                &self.hmac_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

/// An external JWKS document could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExternalTrustError {
    /// Not a JWKS document.
    #[error("not a JWKS document: {0}")]
    Parse(String),
    /// A key without `kid`, or of an unsupported type or algorithm.
    #[error("unusable key in JWKS: {0}")]
    Key(String),
}

impl ExternalTrust {
    /// No external tokens (the default).
    pub fn none() -> Self {
        Self::default()
    }

    /// Accept HS256/HS384/HS512 tokens signed with `secret` (at least 32 bytes recommended).
    #[must_use]
    pub fn with_hmac_secret(mut self, secret: &[u8]) -> Self {
        self.hmac_secret = Some(DecodingKey::from_secret(secret));
        self
    }

    /// Accept tokens signed by the keys of a JWKS document (RSA, EC or OKP; each key needs a
    /// `kid` and, for RSA and EC, an `alg`).
    pub fn with_jwks_json(mut self, jwks: &str) -> Result<Self, ExternalTrustError> {
        let set: jsonwebtoken::jwk::JwkSet =
            serde_json::from_str(jwks).map_err(|e| ExternalTrustError::Parse(e.to_string()))?;
        for jwk in &set.keys {
            let kid = jwk
                .common
                .key_id
                .clone()
                .ok_or_else(|| ExternalTrustError::Key("missing kid".into()))?;
            let algorithm = external_algorithm(jwk)
                .ok_or_else(|| ExternalTrustError::Key(format!("{kid}: no usable alg")))?;
            let key = DecodingKey::from_jwk(jwk)
                .map_err(|e| ExternalTrustError::Key(format!("{kid}: {e}")))?;
            if let (Algorithm::EdDSA, Ok(raw)) = (algorithm, key.try_get_as_bytes())
                && raw.len() != 32
            {
                return Err(ExternalTrustError::Key(format!(
                    "{kid}: not an Ed25519 key"
                )));
            }
            self.keys.insert(kid, (algorithm, key));
        }
        Ok(self)
    }

    /// Require this `iss` on external tokens instead of Herald's.
    #[must_use]
    pub fn with_issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Require this `aud` on external tokens instead of Herald's.
    #[must_use]
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Whether anything external is trusted.
    pub fn is_empty(&self) -> bool {
        self.hmac_secret.is_none() && self.keys.is_empty()
    }
}

/// The algorithm an external JWK verifies: its `alg`, or the only one its type allows.
fn external_algorithm(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    use jsonwebtoken::jwk::{AlgorithmParameters, KeyAlgorithm};
    if let Some(alg) = jwk.common.key_algorithm {
        return match alg {
            KeyAlgorithm::RS256 => Some(Algorithm::RS256),
            KeyAlgorithm::RS384 => Some(Algorithm::RS384),
            KeyAlgorithm::RS512 => Some(Algorithm::RS512),
            KeyAlgorithm::PS256 => Some(Algorithm::PS256),
            KeyAlgorithm::PS384 => Some(Algorithm::PS384),
            KeyAlgorithm::PS512 => Some(Algorithm::PS512),
            KeyAlgorithm::ES256 => Some(Algorithm::ES256),
            KeyAlgorithm::ES384 => Some(Algorithm::ES384),
            KeyAlgorithm::EdDSA => Some(Algorithm::EdDSA),
            // Symmetric keys in a JWKS would be secrets published as public keys.
            _ => None,
        };
    }
    match &jwk.algorithm {
        AlgorithmParameters::OctetKeyPair(_) => Some(Algorithm::EdDSA),
        _ => None,
    }
}

/// The part of a JOSE header the verifier routes on.
#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// Checks access tokens against a key set. Pure; cheap to clone.
#[derive(Clone)]
pub struct Verifier {
    config: VerifierConfig,
    keys: HashMap<String, DecodingKey>,
    external: ExternalTrust,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("config", &self.config)
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .field("external", &self.external)
            .finish()
    }
}

impl Verifier {
    /// A verifier with no keys yet (every Herald token is [`VerifyError::UnknownKid`]).
    pub fn new(config: VerifierConfig) -> Self {
        Self {
            config,
            keys: HashMap::new(),
            external: ExternalTrust::none(),
        }
    }

    /// Replaces the key set; malformed keys are skipped. Returns how many keys are usable.
    pub fn set_keys(&mut self, set: &KeySet) -> usize {
        self.keys = set
            .keys
            .iter()
            .filter_map(|jwk| Some((jwk.kid.clone(), jwk.decoding_key()?)))
            .collect();
        self.keys.len()
    }

    /// Same verifier over another key set.
    #[must_use]
    pub fn with_keys(mut self, set: &KeySet) -> Self {
        self.set_keys(set);
        self
    }

    /// Also accept tokens from the user's own backend.
    #[must_use]
    pub fn with_external(mut self, external: ExternalTrust) -> Self {
        self.external = external;
        self
    }

    /// The `kid`s this verifier knows.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Whether a key with this `kid` is known.
    pub fn knows(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// The configuration.
    pub fn config(&self) -> &VerifierConfig {
        &self.config
    }

    /// Verifies `token` and returns its claims.
    pub fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let header = raw_header(token)?;
        match header.alg.as_str() {
            ALGORITHM_EDDSA => {
                let kid = header.kid.ok_or(VerifyError::MissingKid)?;
                if let Some(key) = self.keys.get(&kid) {
                    return self.decode(
                        token,
                        Algorithm::EdDSA,
                        key,
                        &self.config.issuer,
                        &self.config.audience,
                    );
                }
                match self.external.keys.get(&kid) {
                    Some((Algorithm::EdDSA, key)) => {
                        self.decode_external(token, Algorithm::EdDSA, key)
                    }
                    _ => Err(VerifyError::UnknownKid(kid)),
                }
            }
            "HS256" | "HS384" | "HS512" => {
                let key = self
                    .external
                    .hmac_secret
                    .as_ref()
                    .ok_or_else(|| VerifyError::UnsupportedAlgorithm(header.alg.clone()))?;
                let algorithm = match header.alg.as_str() {
                    "HS256" => Algorithm::HS256,
                    "HS384" => Algorithm::HS384,
                    _ => Algorithm::HS512,
                };
                self.decode_external(token, algorithm, key)
            }
            other => {
                // An external asymmetric key is used only with the algorithm it was
                // configured for, whatever the token claims.
                let kid = header.kid.as_deref().unwrap_or_default();
                let claimed = other.parse::<Algorithm>().ok();
                match self.external.keys.get(kid) {
                    Some((algorithm, key)) if claimed == Some(*algorithm) => {
                        self.decode_external(token, *algorithm, key)
                    }
                    _ => Err(VerifyError::UnsupportedAlgorithm(other.to_owned())),
                }
            }
        }
    }

    fn decode_external(
        &self,
        token: &str,
        algorithm: Algorithm,
        key: &DecodingKey,
    ) -> Result<Claims, VerifyError> {
        let issuer = self
            .external
            .issuer
            .as_deref()
            .unwrap_or(&self.config.issuer);
        let audience = self
            .external
            .audience
            .as_deref()
            .unwrap_or(&self.config.audience);
        let mut claims = self.decode(token, algorithm, key, issuer, audience)?;
        if claims.name.is_empty() {
            claims.name.clone_from(&claims.sub);
        }
        Ok(claims)
    }

    fn decode(
        &self,
        token: &str,
        algorithm: Algorithm,
        key: &DecodingKey,
        issuer: &str,
        audience: &str,
    ) -> Result<Claims, VerifyError> {
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.config.leeway_secs;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|e| VerifyError::from_jwt(&e))?;
        if data.claims.sub.is_empty() {
            return Err(VerifyError::InvalidClaims("empty sub".to_owned()));
        }
        Ok(data.claims)
    }
}

/// Reads the JOSE header without trusting anything in it yet.
fn raw_header(token: &str) -> Result<RawHeader, VerifyError> {
    let mut parts = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(VerifyError::Malformed);
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| VerifyError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| VerifyError::Malformed)
}

/// Allows one key-set refetch per interval, so a flood of tokens with made-up `kid`s cannot
/// turn into a flood of broker reads.
#[derive(Debug, Clone)]
pub struct RefetchLimiter {
    min_interval: Duration,
    last: Option<Instant>,
}

impl RefetchLimiter {
    /// At most one refetch per `min_interval`.
    pub fn new(min_interval: Duration) -> Self {
        Self {
            min_interval,
            last: None,
        }
    }

    /// Whether a refetch may happen at `now`; if so, it is counted.
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.min_interval => false,
            _ => {
                self.last = Some(now);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn the_refetch_limiter_allows_one_fetch_per_interval() {
        let start = Instant::now();
        let mut limiter = RefetchLimiter::new(Duration::from_secs(5));
        assert!(limiter.try_acquire(start));
        assert!(!limiter.try_acquire(start + Duration::from_secs(1)));
        assert!(limiter.try_acquire(start + Duration::from_secs(5)));
    }

    #[test]
    fn garbage_is_malformed_and_alg_none_is_refused() {
        let verifier = Verifier::new(VerifierConfig::default());
        assert_eq!(verifier.verify("not a token"), Err(VerifyError::Malformed));
        assert_eq!(verifier.verify("a.b.c.d"), Err(VerifyError::Malformed));
        let none_header =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"sub":"x"}"#);
        assert_eq!(
            verifier.verify(&format!("{none_header}.{payload}.")),
            Err(VerifyError::UnsupportedAlgorithm("none".to_owned()))
        );
    }

    #[test]
    fn malformed_keys_are_skipped() {
        let mut set = KeySet {
            keys: vec![Jwk::ed25519("good", &[7; 32])],
        };
        let mut short = Jwk::ed25519("short", &[7; 32]);
        short.x = "AAAA".to_owned();
        set.keys.push(short);
        let mut verifier = Verifier::new(VerifierConfig::default());
        assert_eq!(verifier.set_keys(&set), 1);
        assert!(verifier.knows("good"));
        assert!(!verifier.knows("short"));
    }

    #[test]
    fn the_key_set_serializes_as_jwks() {
        let set = KeySet {
            keys: vec![Jwk::ed25519("k1", &[0; 32])],
        };
        let json = serde_json::to_value(&set).unwrap();
        assert_eq!(json["keys"][0]["kty"], "OKP");
        assert_eq!(json["keys"][0]["crv"], "Ed25519");
        assert_eq!(json["keys"][0]["use"], "sig");
        assert_eq!(json["keys"][0]["alg"], "EdDSA");
        assert!(json["keys"][0].get("herald_retire_at").is_none());
    }
}
