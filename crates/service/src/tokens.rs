//! Verifying access tokens in a service: [`TokenVerifier`] wraps the pure
//! [`herald_common::auth::Verifier`] with the key set's I/O, and [`Authenticated`] is the
//! actix-web extractor REST handlers use.
//!
//! auth writes its key set (JWKS) to the broker under [`KEY_SET_KV_KEY`]. A
//! [`TokenVerifier`] reads it at start-up and every refresh interval ([`TokenVerifier::run`]),
//! and once more, rate-limited, when a token names a `kid` it does not know (a key rotated in
//! since the last read). A failed or empty read keeps the last key set, so tasks-api keeps
//! verifying while Redis is down (design section 5).

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex, PoisonError, RwLock},
    time::{Duration, Instant},
};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use herald_broker::Broker;
use herald_common::{
    auth::{KeySet, RefetchLimiter, Verifier, VerifyError},
    claims::Claims,
};
use tokio_util::sync::CancellationToken;

use crate::ApiError;

/// Broker key-value key of the published key set (JWKS JSON).
pub const KEY_SET_KV_KEY: &str = "auth:jwks";

/// Default pause between two periodic key-set reads.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// Default minimum pause between two unknown-`kid` refetches.
pub const DEFAULT_REFETCH_INTERVAL: Duration = Duration::from_secs(5);

/// A boxed future returned by [`KeySource::fetch`].
pub type FetchFuture<'a> =
    Pin<Box<dyn Future<Output = anyhow::Result<Option<KeySet>>> + Send + 'a>>;

/// Where a [`TokenVerifier`] gets key sets from.
pub trait KeySource: Send + Sync + 'static {
    /// The current key set; `Ok(None)` when none has been published yet.
    fn fetch(&self) -> FetchFuture<'_>;
}

/// Reads the key set auth publishes to the broker.
#[derive(Debug, Clone)]
pub struct BrokerKeySource {
    broker: Broker,
}

impl BrokerKeySource {
    /// Reads from `broker`.
    pub fn new(broker: Broker) -> Self {
        Self { broker }
    }
}

impl KeySource for BrokerKeySource {
    fn fetch(&self) -> FetchFuture<'_> {
        Box::pin(async move {
            let Some(json) = self.broker.kv_get(KEY_SET_KV_KEY).await? else {
                return Ok(None);
            };
            Ok(Some(serde_json::from_str(&json)?))
        })
    }
}

/// A [`Verifier`] kept up to date from a [`KeySource`]. Cheap to clone (shared state).
#[derive(Clone)]
pub struct TokenVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    verifier: RwLock<Arc<Verifier>>,
    source: Box<dyn KeySource>,
    limiter: Mutex<RefetchLimiter>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("verifier", &self.current())
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// Wraps `verifier` (its keys are the starting set); unknown `kid`s refetch from `source`
    /// at most once per `refetch_interval`.
    pub fn new(verifier: Verifier, source: impl KeySource, refetch_interval: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                verifier: RwLock::new(Arc::new(verifier)),
                source: Box::new(source),
                limiter: Mutex::new(RefetchLimiter::new(refetch_interval)),
            }),
        }
    }

    /// A verifier fed from the key set auth publishes to `broker`, refetching on unknown
    /// `kid`s at most every [`DEFAULT_REFETCH_INTERVAL`]. Call [`Self::refresh`] once at
    /// start-up and spawn [`Self::run`] to follow rotations.
    pub fn from_broker(verifier: Verifier, broker: Broker) -> Self {
        Self::new(
            verifier,
            BrokerKeySource::new(broker),
            DEFAULT_REFETCH_INTERVAL,
        )
    }

    /// The verifier in use now.
    pub fn current(&self) -> Arc<Verifier> {
        Arc::clone(
            &self
                .inner
                .verifier
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// Replaces the key set (auth does this after publishing its own).
    pub fn set_keys(&self, keys: &KeySet) {
        let next = (*self.current()).clone().with_keys(keys);
        *self
            .inner
            .verifier
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
    }

    /// Reads the key set from the source. On error or when nothing is published the last set
    /// stays in use.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        if let Some(keys) = self.inner.source.fetch().await? {
            self.set_keys(&keys);
        }
        Ok(())
    }

    /// Verifies `token`; an unknown `kid` triggers one rate-limited refetch and a retry.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        match self.current().verify(token) {
            Err(VerifyError::UnknownKid(kid)) => {
                let allowed = self
                    .inner
                    .limiter
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .try_acquire(Instant::now());
                if !allowed {
                    return Err(VerifyError::UnknownKid(kid));
                }
                if let Err(err) = self.refresh().await {
                    tracing::warn!(error = format!("{err:#}"), "key set refetch failed");
                }
                self.current().verify(token)
            }
            other => other,
        }
    }

    /// Refreshes the key set every `interval` until `shutdown`; run it as a background loop.
    pub async fn run(self, interval: Duration, shutdown: CancellationToken) {
        loop {
            if let Err(err) = self.refresh().await {
                tracing::warn!(
                    error = format!("{err:#}"),
                    "key set refresh failed; keeping the last one"
                );
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}

/// The claims of a valid bearer token: add it to a handler's arguments to require sign-in.
/// Needs a [`TokenVerifier`] as `web::Data`. Refusals are 401 with the error body; an expired
/// token says so in the message.
#[derive(Debug, Clone)]
pub struct Authenticated(pub Claims);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let verifier = req.app_data::<web::Data<TokenVerifier>>().cloned();
        let token = bearer_token(req).map(str::to_owned);
        Box::pin(async move {
            let Some(verifier) = verifier else {
                return Err(ApiError::internal(anyhow::anyhow!(
                    "no TokenVerifier registered as app data"
                )));
            };
            let token = token.ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
            match verifier.verify(&token).await {
                Ok(claims) => Ok(Self(claims)),
                Err(VerifyError::Expired) => Err(ApiError::unauthorized("token expired")),
                Err(err) => {
                    tracing::debug!(reason = %err, "bearer token refused");
                    Err(ApiError::unauthorized("invalid token"))
                }
            }
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use herald_common::auth::VerifierConfig;

    use super::*;

    struct Counting(Arc<AtomicUsize>);

    impl KeySource for Counting {
        fn fetch(&self) -> FetchFuture<'_> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Box::pin(async { Ok(None) })
        }
    }

    fn token_with_kid(kid: &str) -> String {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(format!(r#"{{"alg":"EdDSA","kid":"{kid}"}}"#));
        format!("{header}.{}.{}", b64.encode("{}"), b64.encode([0u8; 64]))
    }

    #[tokio::test]
    async fn unknown_kids_refetch_at_most_once_per_interval() {
        let fetches = Arc::new(AtomicUsize::new(0));
        let verifier = TokenVerifier::new(
            Verifier::new(VerifierConfig::default()),
            Counting(Arc::clone(&fetches)),
            Duration::from_secs(60),
        );
        for kid in ["a", "b", "c"] {
            assert_eq!(
                verifier.verify(&token_with_kid(kid)).await,
                Err(VerifyError::UnknownKid(kid.into()))
            );
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let req = actix_web::test::TestRequest::default()
            .insert_header((header::AUTHORIZATION, "bearer abc.def.ghi"))
            .to_http_request();
        assert_eq!(bearer_token(&req), Some("abc.def.ghi"));
        let req = actix_web::test::TestRequest::default()
            .insert_header((header::AUTHORIZATION, "Basic xyz"))
            .to_http_request();
        assert_eq!(bearer_token(&req), None);
    }
}
