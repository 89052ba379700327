//! Signing keys: JWKS, publication through the broker, rotation without restarts, start-up
//! rules.

use std::time::Duration;

use herald_auth::{Application, keys::SigningKey};
use herald_common::auth::KeySet;
use herald_service::Environment;

use crate::helpers::{
    KeyFile, TestDatabase, eventually, jwt_part, spawn_app, spawn_app_with, status_and_json,
};

#[tokio::test]
async fn jwks_serves_the_key_that_signs_tokens() {
    let app = spawn_app().await;
    let user = app.register().await;
    let tokens = app.sign_in(&user).await;

    let response = app
        .client
        .get(app.url("/auth/jwks.json"))
        .send()
        .await
        .unwrap();

    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 200);
    let set: KeySet = serde_json::from_value(body.clone()).unwrap();
    let kid = jwt_part(&tokens.access, 0)["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let key = set.find(&kid).expect("signing key listed");
    assert_eq!((key.kty.as_str(), key.crv.as_str()), ("OKP", "Ed25519"));
    assert_eq!(key.alg.as_deref(), Some("EdDSA"));
    assert_eq!(body["keys"][0]["use"], "sig");
    assert!(
        body["keys"][0].get("d").is_none(),
        "private part must never be published"
    );
}

#[tokio::test]
async fn the_key_set_is_published_through_the_broker_and_verifies_issued_tokens() {
    let app = spawn_app().await;
    let user = app.register().await;
    let tokens = app.sign_in(&user).await;

    let published = app.published_key_set().await.expect("key set in Redis");
    let verifier = app.broker_verifier().await;
    let claims = verifier.verify(&tokens.access).await.unwrap();

    assert!(published.find(app.state.keys().current().kid()).is_some());
    assert_eq!(claims.user_id().unwrap(), user.id);
    assert_eq!(claims.name, user.username);
}

#[tokio::test]
async fn rotating_the_key_file_switches_signing_without_a_restart_and_old_tokens_keep_verifying() {
    let app = spawn_app().await;
    let user = app.register().await;
    let old_tokens = app.sign_in(&user).await;
    let old_kid = jwt_part(&old_tokens.access, 0)["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    // A verifier that saw only the old key set, like a gateway started before the rotation.
    let gateway = app.broker_verifier().await;

    let new_kid = app.key_file.rotate();
    let new_tokens = eventually(Duration::from_secs(10), || async {
        let tokens = app.sign_in(&user).await;
        (jwt_part(&tokens.access, 0)["kid"] == new_kid.as_str()).then_some(tokens)
    })
    .await
    .expect("the new key signs within a few refresh intervals");

    assert_ne!(old_kid, new_kid);
    // auth itself accepts both.
    assert_eq!(
        app.get_with_token("/auth/me", &old_tokens.access)
            .await
            .status(),
        200
    );
    assert_eq!(
        app.get_with_token("/auth/me", &new_tokens.access)
            .await
            .status(),
        200
    );
    // The JWKS and the broker list both keys.
    let (_, jwks) = status_and_json(
        app.client
            .get(app.url("/auth/jwks.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let jwks: KeySet = serde_json::from_value(jwks).unwrap();
    assert!(jwks.find(&old_kid).is_some() && jwks.find(&new_kid).is_some());
    let published = app.published_key_set().await.unwrap();
    assert!(published.find(&old_kid).unwrap().herald_retire_at.is_some());
    assert_eq!(published.keys[0].kid, new_kid);
    // The old verifier meets an unknown kid, refetches once and accepts both.
    assert!(gateway.verify(&new_tokens.access).await.is_ok());
    assert!(gateway.verify(&old_tokens.access).await.is_ok());
}

#[tokio::test]
async fn a_retired_key_leaves_the_set_once_its_tokens_have_expired() {
    let app = spawn_app_with(|s| {
        s.jwt.access_ttl = Duration::from_secs(1);
        s.jwt.common.leeway = 0;
    })
    .await;
    let old_kid = app.state.keys().current().kid().to_owned();

    let new_kid = app.key_file.rotate();
    let gone = eventually(Duration::from_secs(10), || async {
        let set = app.published_key_set().await?;
        (set.find(&new_kid).is_some() && set.find(&old_kid).is_none()).then_some(())
    })
    .await;

    assert!(gone.is_some(), "old key still published");
}

#[tokio::test]
async fn a_key_file_that_is_not_a_key_keeps_the_current_key() {
    let app = spawn_app().await;
    let kid = app.state.keys().current().kid().to_owned();

    std::fs::write(
        &app.key_file.path,
        "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let user = app.register().await;
    let tokens = app.sign_in(&user).await;

    assert_eq!(jwt_part(&tokens.access, 0)["kid"], kid.as_str());
}

#[tokio::test]
async fn two_instances_with_different_keys_accept_each_others_tokens() {
    let first = spawn_app_with(|s| s.jwt_private_key_file = None).await;
    let settings = first.settings.clone();
    let second = Application::build(settings).await.unwrap();
    let second_url = format!("http://127.0.0.1:{}", second.port());
    let second_kid = second.service().keys().current().kid().to_owned();
    let shutdown = second.shutdown_token();
    tokio::spawn(second.run_until_stopped());
    let user = first.register().await;
    let from_second = first
        .client
        .post(format!("{second_url}/auth/token"))
        .form(&[
            ("username", user.username.as_str()),
            ("password", user.password.as_str()),
        ])
        .send()
        .await
        .unwrap();
    let from_second = crate::helpers::tokens_of(from_second).await;

    let me = first.get_with_token("/auth/me", &from_second.access).await;
    let verifier = first.broker_verifier().await;

    assert_ne!(first.state.keys().current().kid(), second_kid);
    assert_eq!(me.status(), 200);
    assert!(verifier.verify(&from_second.access).await.is_ok());
    let published = first.published_key_set().await.unwrap();
    assert!(published.find(&second_kid).is_some());
    shutdown.cancel();
}

#[tokio::test]
async fn production_refuses_to_start_without_a_key_file() {
    let database = TestDatabase::create().await;
    let key_file = KeyFile::new();
    let mut settings = herald_auth::Settings {
        listen: "127.0.0.1:0".into(),
        database_url: database.url.clone().into(),
        redis_url: None,
        environment: Environment::Production,
        jwt_private_key_file: None,
        ..Default::default()
    };

    let refused = Application::build(settings.clone()).await;
    settings.jwt_private_key_file = Some(key_file.path.clone());
    let accepted = Application::build(settings).await;

    let message = format!("{:#}", refused.unwrap_err());
    assert!(message.contains("HERALD_JWT_PRIVATE_KEY_FILE"), "{message}");
    assert!(accepted.is_ok());
}

#[tokio::test]
async fn development_generates_a_key_when_none_is_configured() {
    let app = spawn_app_with(|s| s.jwt_private_key_file = None).await;
    let user = app.register().await;

    let tokens = app.sign_in(&user).await;

    assert_eq!(
        app.get_with_token("/auth/me", &tokens.access)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn an_unreadable_key_file_fails_start_up() {
    let database = TestDatabase::create().await;
    let path = std::env::temp_dir().join(format!(
        "herald-auth-test-bad-{}.pem",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::write(&path, "not a key").unwrap();
    let settings = herald_auth::Settings {
        listen: "127.0.0.1:0".into(),
        database_url: database.url.clone().into(),
        redis_url: None,
        jwt_private_key_file: Some(path.clone()),
        ..Default::default()
    };

    let result = Application::build(settings).await;
    let _ = std::fs::remove_file(&path);

    assert!(format!("{:#}", result.unwrap_err()).contains("not an Ed25519 private key"));
}

#[test]
fn generated_pem_keys_are_pkcs8() {
    let pem = SigningKey::generate_pem();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    assert!(SigningKey::from_pem(&pem).is_some());
}
