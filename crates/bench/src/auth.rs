//! Getting a token: given on the command line, or a fresh user registered through
//! `/auth/register` and signed in through `/auth/token`.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

/// Where the token comes from.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// An access token to connect with (the gateway must accept it).
    #[arg(long, env = "HERALD_BENCH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Base URL of auth (`http://127.0.0.1:8082`, or the embedded server's): registers a
    /// fresh user and signs in. Used when no `--token` is given.
    #[arg(long)]
    pub auth_url: Option<String>,
}

impl TokenArgs {
    /// The token to connect with.
    pub async fn token(&self, http: &reqwest::Client) -> anyhow::Result<String> {
        if let Some(token) = &self.token {
            return Ok(token.clone());
        }
        let Some(auth_url) = &self.auth_url else {
            bail!("give --token or --auth-url");
        };
        sign_up(http, auth_url).await
    }
}

/// Registers a new user and returns an access token for it.
pub async fn sign_up(http: &reqwest::Client, auth_url: &str) -> anyhow::Result<String> {
    let base = auth_url.trim_end_matches('/');
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
    let credentials = json!({
        "username": format!("bench{}", stamp % 1_000_000_000_000),
        "password": format!("bench-password-{stamp}"),
    });
    let registered = http
        .post(format!("{base}/auth/register"))
        .json(&credentials)
        .send()
        .await
        .context("POST /auth/register")?;
    if !registered.status().is_success() {
        bail!(
            "register: {} {}",
            registered.status(),
            registered.text().await.unwrap_or_default()
        );
    }
    let signed_in = http
        .post(format!("{base}/auth/token"))
        .json(&credentials)
        .send()
        .await
        .context("POST /auth/token")?;
    if !signed_in.status().is_success() {
        bail!("token: {}", signed_in.status());
    }
    let body: Value = signed_in.json().await?;
    body.get("access_token")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .context("no access_token in the /auth/token answer")
}
