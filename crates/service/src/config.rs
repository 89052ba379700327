//! Layered, typed configuration (design section 8).
//!
//! Each service declares one settings struct (`Serialize`, `Deserialize`, `#[serde(default)]`)
//! and loads it with [`load`]:
//!
//! 1. defaults: the whole struct's `Default`, serialized as a layer of its own, so a section set
//!    only in part keeps the defaults of its position (chat's namespace is not a bare one);
//! 2. an optional TOML file given with `--config FILE` ([`ConfigArgs`]);
//! 3. environment variables `HERALD_<KEY>`, with `__` separating sections:
//!    `HERALD_JWT__ISSUER` sets `jwt.issuer`, `HERALD_JWT_PRIVATE_KEY_FILE` sets the top-level
//!    `jwt_private_key_file`.
//!
//! Unknown keys are ignored, so one environment (a compose file, a k8s config map) can feed
//! several services. Secrets are typed [`Secret`] and never printed.
//!
//! The building blocks shared by several services live here too: [`JwtSettings`] (the fixed
//! `HERALD_JWT__ISSUER` / `HERALD_JWT__AUDIENCE`), [`TrustedProxies`](crate::TrustedProxies)
//! (`HERALD_TRUSTED_PROXIES`) and the defaults of the fixed variables.

use std::path::{Path, PathBuf};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use herald_common::auth::{ExternalTrust, Verifier, VerifierConfig};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::Secret;

/// Prefix of every Herald environment variable.
pub const ENV_PREFIX: &str = "HERALD_";

/// Default of `HERALD_REDIS_URL` for the distributed services.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// Default of `HERALD_REDIS_PREFIX`.
pub const DEFAULT_REDIS_PREFIX: &str = "herald:";

/// Default of `HERALD_DATABASE_URL` for the distributed services.
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/herald";

/// Default token issuer and audience.
pub const DEFAULT_JWT_ISSUER_AND_AUDIENCE: &str = "herald";

/// Command-line arguments every service binary accepts; flatten it into the binary's parser
/// with `#[command(flatten)]`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// Optional TOML file with settings; `HERALD_*` environment variables override it.
    #[arg(long = "config", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--config FILE` named a file that does not exist.
    #[error("configuration file {0} does not exist")]
    MissingFile(PathBuf),
    /// A value is missing, has the wrong type or cannot be parsed.
    #[error("invalid configuration: {0}")]
    Invalid(#[from] Box<figment::Error>),
    /// The external token trust (`HERALD_JWT__EXTERNAL__*`) cannot be set up.
    #[error("external token trust: {0}")]
    External(String),
}

/// The layered sources (defaults come from the target type): the optional TOML file, then
/// `HERALD_*` environment variables. Exposed so services can add their own layers.
pub fn figment(config_file: Option<&Path>) -> Result<Figment, ConfigError> {
    let mut figment = Figment::new();
    if let Some(path) = config_file {
        // `Toml::file` silently skips a missing file; an operator who names one means it.
        if !path.is_file() {
            return Err(ConfigError::MissingFile(path.to_owned()));
        }
        figment = figment.merge(Toml::file(path));
    }
    Ok(figment.merge(Env::prefixed(ENV_PREFIX).split("__")))
}

/// Loads a service's settings: `T::default()` < `config_file` < `HERALD_*` variables.
///
/// The whole `T::default()` is the lowest layer, so a section given only in part keeps the
/// documented defaults of *its own* position for the rest: `HERALD_CHANNELS__CHAT__HISTORY_TTL`
/// alone leaves chat's presence and publish on, although a bare namespace has them off. Fields
/// that are not serialized (secrets, `#[serde(skip_serializing)]`) fall back to the container's
/// `#[serde(default)]`, which `T` must carry.
pub fn load<T: DeserializeOwned + Serialize + Default>(
    config_file: Option<&Path>,
) -> Result<T, ConfigError> {
    Figment::from(Serialized::defaults(T::default()))
        .merge(figment(config_file)?)
        .extract()
        .map_err(|e| ConfigError::Invalid(Box::new(e)))
}

/// Token issuer and audience (`HERALD_JWT__ISSUER`, `HERALD_JWT__AUDIENCE`), the clock
/// leeway every verifier allows, and the optional trust of the user's own backend.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct JwtSettings {
    /// The `iss` claim auth writes and verifiers require.
    pub issuer: String,
    /// The `aud` claim auth writes and verifiers require.
    pub audience: String,
    /// Seconds of clock skew allowed when checking `exp` (`HERALD_JWT__LEEWAY`).
    pub leeway: u64,
    /// Tokens of the user's own backend that verifiers also accept (`HERALD_JWT__EXTERNAL__*`).
    pub external: ExternalTokenSettings,
}

/// Trust of tokens issued by the user's own backend, so a team with its own login can use
/// Herald's gateway and tasks-api without moving its users. Off unless a secret or a JWKS
/// file is set. Such tokens must still carry `sub`, `exp`, `iat` and the expected `iss`/`aud`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct ExternalTokenSettings {
    /// Accept HS256/HS384/HS512 tokens signed with this secret
    /// (`HERALD_JWT__EXTERNAL__HMAC_SECRET`).
    #[serde(skip_serializing)]
    pub hmac_secret: Option<Secret<String>>,
    /// Accept tokens signed by the keys of this JWKS file (RSA, EC or Ed25519 keys with `kid`
    /// and `alg`; `HERALD_JWT__EXTERNAL__JWKS_FILE`).
    pub jwks_file: Option<PathBuf>,
    /// `iss` required on external tokens; default: Herald's (`HERALD_JWT__EXTERNAL__ISSUER`).
    pub issuer: Option<String>,
    /// `aud` required on external tokens; default: Herald's (`HERALD_JWT__EXTERNAL__AUDIENCE`).
    pub audience: Option<String>,
}

impl JwtSettings {
    /// A verifier requiring this issuer, audience and leeway, trusting the configured external
    /// tokens, with no keys yet (feed it through a [`crate::TokenVerifier`]).
    pub fn verifier(&self) -> Result<Verifier, ConfigError> {
        let config = VerifierConfig {
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            leeway_secs: self.leeway,
        };
        let mut external = ExternalTrust::none();
        if let Some(secret) = &self.external.hmac_secret {
            external = external.with_hmac_secret(secret.expose().as_bytes());
        }
        if let Some(file) = &self.external.jwks_file {
            let json = std::fs::read_to_string(file)
                .map_err(|e| ConfigError::External(format!("{}: {e}", file.display())))?;
            external = external
                .with_jwks_json(&json)
                .map_err(|e| ConfigError::External(format!("{}: {e}", file.display())))?;
        }
        if let Some(issuer) = &self.external.issuer {
            external = external.with_issuer(issuer.clone());
        }
        if let Some(audience) = &self.external.audience {
            external = external.with_audience(audience.clone());
        }
        Ok(Verifier::new(config).with_external(external))
    }
}

impl Default for JwtSettings {
    fn default() -> Self {
        Self {
            issuer: DEFAULT_JWT_ISSUER_AND_AUDIENCE.to_owned(),
            audience: DEFAULT_JWT_ISSUER_AND_AUDIENCE.to_owned(),
            leeway: 30,
            external: ExternalTokenSettings::default(),
        }
    }
}

/// Development or production (`HERALD_ENVIRONMENT`, default `development`). Production turns
/// development conveniences into errors, e.g. auth refuses to generate a throwaway signing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    /// Conveniences allowed, with loud warnings.
    #[default]
    Development,
    /// Everything must be configured explicitly.
    Production,
}

/// `#[serde(with = "herald_service::config::seconds")]` for a `Duration` written as whole or
/// fractional seconds (`HERALD_PING_INTERVAL=25`, `0.5`).
pub mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Reads seconds (integer or float, not negative).
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(secs).map_err(serde::de::Error::custom)
    }

    /// Writes seconds as a float.
    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64())
    }
}

/// Deserializes a list given either as a sequence or as one comma-separated string
/// (`HERALD_ALLOWED_ORIGINS=https://a,https://b`). Empty items are dropped.
pub fn comma_separated<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let items = match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(s) => s.split(',').map(str::to_owned).collect::<Vec<_>>(),
        OneOrMany::Many(v) => v,
    };
    items
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<T>()
                .map_err(|e| serde::de::Error::custom(format!("{s:?}: {e}")))
        })
        .collect()
}

#[cfg(test)]
// `figment::Jail`'s closures return its (large) error type by design.
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::result_large_err
)]
mod tests {
    use super::*;
    use crate::TrustedProxies;

    #[derive(Debug, Deserialize, Serialize)]
    #[serde(default)]
    struct Example {
        listen: String,
        #[serde(skip_serializing)]
        database_url: Secret<String>,
        redis_prefix: String,
        jwt: JwtSettings,
        jwt_private_key_file: Option<PathBuf>,
        #[serde(skip_serializing)]
        trusted_proxies: TrustedProxies,
        #[serde(skip_serializing)]
        api_key: Option<Secret<String>>,
        environment: Environment,
        #[serde(with = "seconds")]
        ping_interval: std::time::Duration,
    }

    impl Default for Example {
        fn default() -> Self {
            Self {
                listen: "0.0.0.0:8082".into(),
                database_url: DEFAULT_DATABASE_URL.into(),
                redis_prefix: DEFAULT_REDIS_PREFIX.into(),
                jwt: JwtSettings::default(),
                jwt_private_key_file: None,
                trusted_proxies: TrustedProxies::default(),
                api_key: None,
                environment: Environment::Development,
                ping_interval: std::time::Duration::from_secs(25),
            }
        }
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        figment::Jail::expect_with(|_jail| {
            let settings: Example = load(None).unwrap();
            assert_eq!(settings.listen, "0.0.0.0:8082");
            assert_eq!(settings.jwt.issuer, "herald");
            assert_eq!(settings.redis_prefix, "herald:");
            assert!(settings.jwt_private_key_file.is_none());
            Ok(())
        });
    }

    #[test]
    fn environment_overrides_the_file_which_overrides_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "herald.toml",
                "listen = \"127.0.0.1:1\"\nredis_prefix = \"file:\"\n[jwt]\nissuer = \"from-file\"\naudience = \"file-aud\"\n",
            )?;
            jail.set_env("HERALD_LISTEN", "127.0.0.1:0");
            jail.set_env("HERALD_JWT__ISSUER", "from-env");
            jail.set_env("HERALD_JWT_PRIVATE_KEY_FILE", "/run/secrets/key.pem");
            jail.set_env("HERALD_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1");
            jail.set_env("HERALD_API_KEY", "12345");
            jail.set_env("HERALD_ENVIRONMENT", "production");
            jail.set_env("HERALD_PING_INTERVAL", "0.5");
            let settings: Example = load(Some(Path::new("herald.toml"))).unwrap();
            assert_eq!(settings.listen, "127.0.0.1:0");
            assert_eq!(settings.redis_prefix, "file:");
            assert_eq!(settings.jwt.issuer, "from-env");
            assert_eq!(settings.jwt.audience, "file-aud");
            assert_eq!(
                settings.jwt_private_key_file,
                Some(PathBuf::from("/run/secrets/key.pem"))
            );
            assert_eq!(settings.trusted_proxies.len(), 2);
            assert_eq!(settings.api_key.unwrap().expose(), "12345");
            assert_eq!(settings.environment, Environment::Production);
            assert_eq!(
                settings.ping_interval,
                std::time::Duration::from_millis(500)
            );
            Ok(())
        });
    }

    #[test]
    fn external_token_trust_is_configured_from_nested_variables() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("HERALD_JWT__EXTERNAL__HMAC_SECRET", "their-shared-secret");
            jail.set_env("HERALD_JWT__EXTERNAL__ISSUER", "https://crm.example");
            let settings: Example = load(None).unwrap();
            assert_eq!(
                settings.jwt.external.issuer.as_deref(),
                Some("https://crm.example")
            );
            assert!(!format!("{settings:?}").contains("their-shared-secret"));
            assert!(
                format!("{:?}", settings.jwt.verifier().unwrap()).contains("hmac_secret: Some")
            );
            Ok(())
        });
    }

    #[test]
    fn a_missing_external_jwks_file_is_an_error() {
        let jwt = JwtSettings {
            external: ExternalTokenSettings {
                jwks_file: Some("/nonexistent/jwks.json".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(matches!(jwt.verifier(), Err(ConfigError::External(_))));
    }

    #[test]
    fn a_named_but_missing_file_is_an_error() {
        let err = load::<Example>(Some(Path::new("/nonexistent/herald.toml"))).unwrap_err();
        assert!(matches!(err, ConfigError::MissingFile(_)));
    }

    #[test]
    fn settings_debug_output_hides_secrets() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("HERALD_DATABASE_URL", "postgres://u:pa55word@db/herald");
            let settings: Example = load(None).unwrap();
            assert!(!format!("{settings:?}").contains("pa55word"));
            Ok(())
        });
    }
}
