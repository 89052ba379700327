//! Forged and invalid access tokens, against the service (`GET /auth/me`) and against the
//! shared verifier the gateway and tasks-api use (`common::auth::Verifier` fed from the
//! broker). Each case must be refused for its own reason.

use base64::Engine as _;
use herald_auth::keys::{SigningKey, unix_now};
use herald_common::{
    auth::{ExternalTrust, KeySet, Verifier, VerifierConfig, VerifyError},
    claims::Claims,
    ids::UserId,
};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::helpers::{TestApp, TestUser, spawn_app, status_and_json};

fn b64(bytes: impl AsRef<[u8]>) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn claims_for(user: &TestUser) -> Claims {
    Claims::new(
        &user.id,
        user.username.clone(),
        "herald",
        "herald",
        unix_now(),
        900,
    )
}

/// Signs `claims` with the service's real private key (read from its key file).
fn sign_with_service_key(app: &TestApp, header: Header, claims: &impl serde::Serialize) -> String {
    let pem = std::fs::read(&app.key_file.path).unwrap();
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_pem(&pem).unwrap()).unwrap()
}

fn eddsa_header(kid: &str) -> Header {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(kid.to_owned());
    header
}

/// The service answers 401 and the broker-fed verifier gives `expected`.
async fn assert_refused(app: &TestApp, token: &str, expected: VerifyError) {
    let response = app.get_with_token("/auth/me", token).await;
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["code"], "unauthorized");
    let verifier = app.broker_verifier().await;
    assert_eq!(verifier.verify(token).await.unwrap_err(), expected);
}

#[tokio::test]
async fn a_correctly_signed_token_is_accepted_by_both() {
    let app = spawn_app().await;
    let user = app.register().await;
    let kid = app.state.keys().current().kid().to_owned();

    let token = sign_with_service_key(&app, eddsa_header(&kid), &claims_for(&user));

    assert_eq!(app.get_with_token("/auth/me", &token).await.status(), 200);
    assert!(app.broker_verifier().await.verify(&token).await.is_ok());
}

#[tokio::test]
async fn a_token_with_alg_none_is_refused() {
    let app = spawn_app().await;
    let user = app.register().await;
    let kid = app.state.keys().current().kid().to_owned();

    let header = b64(json!({"alg": "none", "typ": "JWT", "kid": kid}).to_string());
    let payload = b64(serde_json::to_vec(&claims_for(&user)).unwrap());
    let token = format!("{header}.{payload}.");

    assert_refused(
        &app,
        &token,
        VerifyError::UnsupportedAlgorithm("none".into()),
    )
    .await;
}

#[tokio::test]
async fn an_hs256_token_signed_with_the_public_key_is_refused() {
    let app = spawn_app().await;
    let user = app.register().await;
    let jwk = app.state.keys().current().jwk().clone();
    let raw_public = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&jwk.x)
        .unwrap();
    let jwk_json = serde_json::to_vec(&jwk).unwrap();

    for secret in [raw_public.as_slice(), jwk.x.as_bytes(), jwk_json.as_slice()] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(jwk.kid.clone());
        let token = jsonwebtoken::encode(
            &header,
            &claims_for(&user),
            &EncodingKey::from_secret(secret),
        )
        .unwrap();

        assert_refused(
            &app,
            &token,
            VerifyError::UnsupportedAlgorithm("HS256".into()),
        )
        .await;
    }
}

#[tokio::test]
async fn a_token_signed_by_an_unknown_key_is_refused() {
    let app = spawn_app().await;
    let user = app.register().await;
    let stranger = SigningKey::generate();

    let token = stranger.sign(&claims_for(&user)).unwrap();

    assert_refused(
        &app,
        &token,
        VerifyError::UnknownKid(stranger.kid().to_owned()),
    )
    .await;
}

#[tokio::test]
async fn a_token_signed_by_another_key_under_the_real_kid_is_refused() {
    let app = spawn_app().await;
    let user = app.register().await;
    let kid = app.state.keys().current().kid().to_owned();
    let other_pem = SigningKey::generate_pem();

    let token = jsonwebtoken::encode(
        &eddsa_header(&kid),
        &claims_for(&user),
        &EncodingKey::from_ed_pem(other_pem.as_bytes()).unwrap(),
    )
    .unwrap();

    assert_refused(&app, &token, VerifyError::BadSignature).await;
}

#[tokio::test]
async fn a_token_without_kid_is_refused() {
    let app = spawn_app().await;
    let user = app.register().await;

    let token = sign_with_service_key(&app, Header::new(Algorithm::EdDSA), &claims_for(&user));

    assert_refused(&app, &token, VerifyError::MissingKid).await;
}

#[tokio::test]
async fn a_tampered_payload_is_refused() {
    let app = spawn_app().await;
    let user = app.register().await;
    let victim = app.register().await;
    let tokens = app.sign_in(&user).await;

    let parts: Vec<&str> = tokens.access.split('.').collect();
    let mut claims = claims_for(&user);
    claims.sub = victim.id.to_string();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );

    assert_refused(&app, &forged, VerifyError::BadSignature).await;
}

#[tokio::test]
async fn an_expired_token_is_refused_with_its_own_error() {
    let app = spawn_app().await;
    let user = app.register().await;
    let kid = app.state.keys().current().kid().to_owned();
    let now = unix_now();
    let expired = Claims::new(
        &user.id,
        user.username.clone(),
        "herald",
        "herald",
        now - 1_000,
        880,
    );

    let token = sign_with_service_key(&app, eddsa_header(&kid), &expired);

    let response = app.get_with_token("/auth/me", &token).await;
    let (_, body) = status_and_json(response).await;
    assert_eq!(body["error"]["message"], "token expired");
    assert_refused(&app, &token, VerifyError::Expired).await;
}

#[tokio::test]
async fn a_token_a_few_seconds_past_exp_is_accepted_within_the_leeway() {
    let app = spawn_app().await;
    let user = app.register().await;
    let kid = app.state.keys().current().kid().to_owned();
    let now = unix_now();
    let just_expired = Claims::new(
        &user.id,
        user.username.clone(),
        "herald",
        "herald",
        now - 905,
        900,
    );

    let token = sign_with_service_key(&app, eddsa_header(&kid), &just_expired);

    assert_eq!(app.get_with_token("/auth/me", &token).await.status(), 200);
}

#[tokio::test]
async fn a_token_for_another_issuer_or_audience_is_refused() {
    let app = spawn_app().await;
    let user = app.register().await;
    let kid = app.state.keys().current().kid().to_owned();
    let now = unix_now();

    let other_issuer = Claims::new(&user.id, user.username.clone(), "evil", "herald", now, 900);
    let other_audience = Claims::new(
        &user.id,
        user.username.clone(),
        "herald",
        "billing",
        now,
        900,
    );

    let token = sign_with_service_key(&app, eddsa_header(&kid), &other_issuer);
    assert_refused(&app, &token, VerifyError::WrongIssuer).await;
    let token = sign_with_service_key(&app, eddsa_header(&kid), &other_audience);
    assert_refused(&app, &token, VerifyError::WrongAudience).await;
}

#[tokio::test]
async fn a_token_missing_required_claims_is_refused() {
    let app = spawn_app().await;
    let kid = app.state.keys().current().kid().to_owned();

    let token = sign_with_service_key(
        &app,
        eddsa_header(&kid),
        &json!({"iss": "herald", "aud": "herald", "exp": unix_now() + 60}),
    );

    let response = app.get_with_token("/auth/me", &token).await;
    assert_eq!(response.status(), 401);
    let verifier = app.broker_verifier().await;
    assert!(matches!(
        verifier.verify(&token).await,
        Err(VerifyError::InvalidClaims(_))
    ));
}

#[tokio::test]
async fn a_valid_token_whose_subject_is_not_a_user_is_refused_by_auth() {
    let app = spawn_app().await;
    let kid = app.state.keys().current().kid().to_owned();
    let mut claims = Claims::new(&UserId::new(), "ghost", "herald", "herald", unix_now(), 900);

    let unknown_user = sign_with_service_key(&app, eddsa_header(&kid), &claims);
    claims.sub = "42".to_owned();
    let not_an_id = sign_with_service_key(&app, eddsa_header(&kid), &claims);

    assert_eq!(
        app.get_with_token("/auth/me", &unknown_user).await.status(),
        401
    );
    assert_eq!(
        app.get_with_token("/auth/me", &not_an_id).await.status(),
        401
    );
}

// The user's own backend (optional external trust of the shared verifier).

fn external_claims() -> Claims {
    Claims {
        sub: "crm-user-17".to_owned(),
        name: String::new(),
        iss: "https://crm.example".to_owned(),
        aud: "herald".to_owned(),
        exp: unix_now() + 300,
        iat: unix_now(),
    }
}

#[test]
fn hs256_tokens_from_the_users_backend_verify_only_with_the_configured_secret() {
    let secret = b"a-shared-secret-of-at-least-32-bytes!!";
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &external_claims(),
        &EncodingKey::from_secret(secret),
    )
    .unwrap();
    let plain = Verifier::new(VerifierConfig::default());
    let trusting = Verifier::new(VerifierConfig::default()).with_external(
        ExternalTrust::none()
            .with_hmac_secret(secret)
            .with_issuer("https://crm.example"),
    );
    let wrong_secret = Verifier::new(VerifierConfig::default()).with_external(
        ExternalTrust::none()
            .with_hmac_secret(b"another-secret-another-secret-xx")
            .with_issuer("https://crm.example"),
    );

    assert_eq!(
        plain.verify(&token),
        Err(VerifyError::UnsupportedAlgorithm("HS256".into()))
    );
    let claims = trusting.verify(&token).unwrap();
    assert_eq!(claims.sub, "crm-user-17");
    assert_eq!(claims.name, "crm-user-17", "name defaults to sub");
    assert_eq!(wrong_secret.verify(&token), Err(VerifyError::BadSignature));
}

#[test]
fn external_tokens_still_need_the_expected_issuer() {
    let secret = b"a-shared-secret-of-at-least-32-bytes!!";
    let token = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &external_claims(),
        &EncodingKey::from_secret(secret),
    )
    .unwrap();
    let verifier = Verifier::new(VerifierConfig::default())
        .with_external(ExternalTrust::none().with_hmac_secret(secret));

    assert_eq!(verifier.verify(&token), Err(VerifyError::WrongIssuer));
}

#[test]
fn tokens_signed_by_keys_of_an_extra_jwks_verify() {
    let pem = SigningKey::generate_pem();
    let key = SigningKey::from_pem(&pem).unwrap();
    let mut jwk = key.jwk().clone();
    jwk.kid = "crm-2026".to_owned();
    let jwks = serde_json::to_string(&KeySet { keys: vec![jwk] }).unwrap();
    let verifier = Verifier::new(VerifierConfig::default()).with_external(
        ExternalTrust::none()
            .with_jwks_json(&jwks)
            .unwrap()
            .with_issuer("https://crm.example"),
    );

    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("crm-2026".to_owned());
    let token = jsonwebtoken::encode(
        &header,
        &external_claims(),
        &EncodingKey::from_ed_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap();
    let mut wrong_alg = Header::new(Algorithm::HS256);
    wrong_alg.kid = Some("crm-2026".to_owned());
    let confused = jsonwebtoken::encode(
        &wrong_alg,
        &external_claims(),
        &EncodingKey::from_secret(b"x"),
    )
    .unwrap();

    assert_eq!(verifier.verify(&token).unwrap().sub, "crm-user-17");
    assert_eq!(
        verifier.verify(&confused),
        Err(VerifyError::UnsupportedAlgorithm("HS256".into()))
    );
}

#[test]
fn an_external_jwks_with_symmetric_or_kidless_keys_is_rejected() {
    let symmetric = r#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"k","alg":"HS256"}]}"#;
    let kidless = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;

    assert!(ExternalTrust::none().with_jwks_json(symmetric).is_err());
    assert!(ExternalTrust::none().with_jwks_json(kidless).is_err());
    assert!(ExternalTrust::none().with_jwks_json("[]").is_err());
}
