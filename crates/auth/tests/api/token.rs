//! `POST /auth/token`: both body formats, the token's shape, no user enumeration, rate limits.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::{jwt_part, spawn_app, spawn_app_with, status_and_json};

#[tokio::test]
async fn the_oauth2_password_form_returns_a_bearer_token_pair() {
    let app = spawn_app().await;
    let user = app.register().await;

    let response = app.post_token_form(&user.username, &user.password).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body["access_token"].as_str().unwrap().split('.').count() == 3);
    assert_eq!(body["refresh_token"].as_str().unwrap().len(), 43);
}

#[tokio::test]
async fn a_json_body_works_as_well_as_the_form() {
    let app = spawn_app().await;
    let user = app.register().await;

    let response = app
        .client
        .post(app.url("/auth/token"))
        .json(&json!({"username": user.username, "password": user.password}))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_form_fields_fastapi_clients_send_are_accepted() {
    let app = spawn_app().await;
    let user = app.register().await;

    let response = app
        .client
        .post(app.url("/auth/token"))
        .form(&[
            ("grant_type", "password"),
            ("username", user.username.as_str()),
            ("password", user.password.as_str()),
            ("scope", ""),
            ("client_id", ""),
            ("client_secret", ""),
        ])
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn sign_in_ignores_the_case_of_the_username() {
    let app = spawn_app().await;
    let user = app.register_named("CamelCase").await;

    let response = app.post_token_form("camelcase", &user.password).await;

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn the_access_token_is_an_eddsa_jwt_with_the_documented_claims() {
    let app = spawn_app().await;
    let user = app.register().await;

    let tokens = app.sign_in(&user).await;

    let header = jwt_part(&tokens.access, 0);
    let claims = jwt_part(&tokens.access, 1);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["kid"], app.state.keys().current().kid());
    assert_eq!(claims["sub"], user.id.to_string());
    assert_eq!(claims["name"], user.username);
    assert_eq!(claims["iss"], "herald");
    assert_eq!(claims["aud"], "herald");
    let iat = claims["iat"].as_u64().unwrap();
    assert_eq!(claims["exp"].as_u64().unwrap() - iat, 900);
    let now = herald_auth::keys::unix_now();
    assert!(iat.abs_diff(now) < 5);
}

#[tokio::test]
async fn issuer_audience_and_lifetime_follow_the_settings() {
    let app = spawn_app_with(|s| {
        s.jwt.common.issuer = "https://login.example".to_owned();
        s.jwt.common.audience = "chat".to_owned();
        s.jwt.access_ttl = Duration::from_secs(60);
    })
    .await;
    let user = app.register().await;

    let response = app.post_token_form(&user.username, &user.password).await;

    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["expires_in"], 60);
    let claims = jwt_part(body["access_token"].as_str().unwrap(), 1);
    assert_eq!(claims["iss"], "https://login.example");
    assert_eq!(claims["aud"], "chat");
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_401() {
    let app = spawn_app().await;
    let user = app.register().await;

    let wrong_password = app
        .post_token_form(&user.username, "not the password")
        .await;
    let unknown_user = app.post_token_form("nobody-here", "not the password").await;
    let invalid_name = app.post_token_form("no", "not the password").await;

    let mut answers = Vec::new();
    for response in [wrong_password, unknown_user, invalid_name] {
        let www_authenticate = response.headers().get("www-authenticate").cloned();
        let (status, body) = status_and_json(response).await;
        answers.push((status, body, www_authenticate));
    }
    assert_eq!(answers[0].0, 401);
    assert_eq!(answers[0].1["error"]["code"], "unauthorized");
    assert!(answers[0].2.is_some());
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], answers[2]);
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_take_similar_time() {
    let app = spawn_app().await;
    let user = app.register().await;
    // Warm up connections and caches.
    app.post_token_form(&user.username, "warm up please").await;
    app.post_token_form("warm-up-nobody", "warm up please")
        .await;

    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for i in 0..5 {
        let started = Instant::now();
        app.post_token_form(&user.username, &format!("wrong password {i}"))
            .await;
        known.push(started.elapsed());
        let started = Instant::now();
        app.post_token_form(&format!("nobody{i}"), &format!("wrong password {i}"))
            .await;
        unknown.push(started.elapsed());
    }

    known.sort();
    unknown.sort();
    let (known, unknown) = (known[2].as_secs_f64(), unknown[2].as_secs_f64());
    // Without the dummy verification an unknown user answers in a fraction of the time.
    let ratio = unknown / known;
    assert!(
        (0.6..1.7).contains(&ratio),
        "known {known:.4}s, unknown {unknown:.4}s"
    );
}

#[tokio::test]
async fn an_unsupported_grant_type_is_400() {
    let app = spawn_app().await;
    let user = app.register().await;

    let response = app
        .client
        .post(app.url("/auth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("username", &user.username),
            ("password", &user.password),
        ])
        .send()
        .await
        .unwrap();

    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "validation_failed");
}

#[tokio::test]
async fn a_form_without_a_password_is_422() {
    let app = spawn_app().await;

    let response = app
        .client
        .post(app.url("/auth/token"))
        .form(&[("username", "alice")])
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 422);
}

#[tokio::test]
async fn token_requests_are_limited_per_client_ip() {
    let app = spawn_app_with(|s| s.rate_limit.token_per_ip_per_minute = 3).await;

    for i in 0..3 {
        let response = app
            .post_token_form(&format!("someone{i}"), "wrong password")
            .await;
        assert_eq!(response.status(), 401);
    }
    let response = app.post_token_form("someone-else", "wrong password").await;

    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    let (_, body) = status_and_json(response).await;
    assert_eq!(body["error"]["code"], "rate_limited");
}

#[tokio::test]
async fn token_requests_are_limited_per_username_across_addresses() {
    let app = spawn_app_with(|s| {
        s.rate_limit.token_per_username_per_minute = 2;
        s.trusted_proxies = "127.0.0.1".parse().unwrap();
    })
    .await;
    let user = app.register().await;

    let mut statuses = Vec::new();
    for i in 0..3 {
        let response = app
            .client
            .post(app.url("/auth/token"))
            .header("x-forwarded-for", format!("10.0.0.{i}"))
            .form(&[
                ("username", user.username.to_uppercase().as_str()),
                ("password", "wrong password"),
            ])
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    // The right password does not get through while the name is throttled.
    let blocked = app.post_token_form(&user.username, &user.password).await;

    assert_eq!(statuses, [401, 401, 429]);
    assert_eq!(blocked.status(), 429);
    assert!(blocked.headers().contains_key("retry-after"));
}

#[tokio::test]
async fn x_forwarded_for_counts_only_behind_a_trusted_proxy() {
    let trusted = spawn_app_with(|s| {
        s.rate_limit.token_per_ip_per_minute = 1;
        s.trusted_proxies = "127.0.0.0/8".parse().unwrap();
    })
    .await;
    let untrusted = spawn_app_with(|s| s.rate_limit.token_per_ip_per_minute = 1).await;

    let mut statuses = Vec::new();
    for app in [&trusted, &untrusted] {
        for client_ip in ["203.0.113.1", "203.0.113.2"] {
            let response = app
                .client
                .post(app.url("/auth/token"))
                .header("x-forwarded-for", client_ip)
                .form(&[("username", "nobody"), ("password", "wrong password")])
                .send()
                .await
                .unwrap();
            statuses.push(response.status().as_u16());
        }
    }

    // Behind a trusted proxy the two clients have their own budgets; otherwise the header
    // is ignored and both requests come from 127.0.0.1.
    assert_eq!(statuses, [401, 401, 401, 429]);
}
