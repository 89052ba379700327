//! SIGTERM on the real `herald-gateway` binary: it stops accepting (`/readyz` 503, new
//! WebSockets 503), closes every client with 3001 spread over `HERALD_DRAIN_WINDOW`, and
//! exits within the window plus the close timeout.

use std::time::Duration;

use herald_broker::{Broker, RedisConfig};
use herald_common::ids::UserId;
use reqwest::StatusCode;
use tokio::time::Instant;

use crate::processes::{GatewayProcess, Scratch};
use crate::support::{TokenMinter, WsClient, refused_handshake, test_redis_url};

const WINDOW: Duration = Duration::from_secs(3);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);
const CLIENTS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_clients_with_3001_spread_over_the_drain_window_and_exits_in_time() {
    let scratch = Scratch::new("drain");
    let prefix = format!("test:{}:", UserId::new());
    let keys = TokenMinter::new();
    let broker =
        Broker::redis(&RedisConfig::new(test_redis_url()).with_prefix(prefix.clone())).unwrap();
    keys.publish(&broker).await;
    let mut gateway = GatewayProcess::start(
        &scratch,
        "gateway",
        &test_redis_url(),
        &prefix,
        &[
            ("HERALD_DRAIN_WINDOW", WINDOW.as_secs().to_string()),
            (
                "HERALD_LIMITS__CLOSE_TIMEOUT",
                CLOSE_TIMEOUT.as_secs().to_string(),
            ),
        ],
    )
    .await;

    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let user = UserId::new();
        let mut client = WsClient::open(&gateway.ws_url()).await;
        let reply = client.connect(&keys.token(&user, "drained", 600)).await;
        assert!(reply.get("error").is_none(), "{reply}");
        clients.push(client);
    }
    let closes: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            tokio::spawn(async move {
                let code = client.close_code().await;
                (code, Instant::now())
            })
        })
        .collect();

    let signalled = Instant::now();
    gateway.process.signal("TERM");

    // Stops accepting at once: readiness fails and new WebSockets are refused.
    let http = reqwest::Client::new();
    let deadline = signalled + Duration::from_secs(1);
    loop {
        let status = http
            .get(gateway.http_url("/readyz"))
            .send()
            .await
            .unwrap()
            .status();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz still {status} while draining"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = refused_handshake(gateway.ws_url()).await;
    assert!(refused.contains("503"), "{refused}");

    let mut times = Vec::new();
    for close in closes {
        let (code, at) = close.await.unwrap();
        assert_eq!(code, 3001, "every client is told to reconnect elsewhere");
        times.push(at.duration_since(signalled));
    }
    times.sort();
    let spread = times[CLIENTS - 1] - times[0];
    assert!(
        spread >= WINDOW / 2,
        "closes must be spread over the window, not all at once: {times:?}"
    );
    assert!(
        times[CLIENTS - 1] <= WINDOW + Duration::from_millis(500),
        "{times:?}"
    );
    let gaps_too_small = times
        .windows(2)
        .filter(|w| w[1] - w[0] < Duration::from_millis(100))
        .count();
    assert!(
        gaps_too_small < CLIENTS / 2,
        "closes bunched together: {times:?}"
    );

    let grace = WINDOW + CLOSE_TIMEOUT + Duration::from_secs(3);
    let status = gateway
        .process
        .exited_within(grace.saturating_sub(signalled.elapsed()))
        .await
        .unwrap_or_else(|| panic!("not exited within {grace:?}:\n{}", gateway.process.output()));
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        gateway.process.output()
    );
}
