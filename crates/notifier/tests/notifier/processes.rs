//! The real `herald-notifier` binary: killed mid-burst, killed holding events, replicated,
//! terminated.

use std::collections::HashSet;
use std::time::Duration;

use herald_common::channel::ChannelName;
use herald_common::events::{DomainEvent, TASK_EVENTS_STREAM, TaskEventKind};

use crate::helpers::{
    EVENTUALLY, NotifierProcess, PrefixGuard, RedisServer, actor, append, distinct_event_ids,
    event, eventually, free_port, history, pending, random_prefix, redis_broker, test_redis_url,
    wait_for_history,
};

#[tokio::test]
async fn a_notifier_killed_mid_burst_publishes_every_event_exactly_once_after_a_restart() {
    let url = test_redis_url();
    let prefix = random_prefix();
    let _guard = PrefixGuard {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let broker = redis_broker(&url, &prefix);
    let alice = actor("alice");
    let bob = actor("bob");
    let mut first = NotifierProcess::spawn(&url, &prefix);

    // A burst of 500 events, every fifth one assigned to bob, appended at a steady pace so
    // that the notifier is in the middle of it when it is killed.
    let burst = {
        let broker = broker.clone();
        let alice = alice.clone();
        tokio::spawn(async move {
            for n in 0..500 {
                let assignee = (n % 5 == 0).then_some(bob.id);
                append(
                    &broker,
                    &event(
                        TaskEventKind::Created,
                        &format!("burst {n}"),
                        &alice,
                        assignee,
                    ),
                )
                .await;
                if n % 10 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    };
    let board = ChannelName::tasks();
    let started = eventually(EVENTUALLY, || async {
        (history(&broker, &board).await.len() >= 100).then_some(())
    })
    .await;
    assert!(started.is_some(), "the first notifier publishes");
    first.kill();
    let published_before_the_kill = history(&broker, &board).await.len();
    burst.await.unwrap();
    let _second = NotifierProcess::spawn(&url, &prefix);

    let publications = wait_for_history(&broker, &board, 500).await;
    let feed = wait_for_history(&broker, &ChannelName::notifications(&bob.id), 100).await;

    assert!(
        published_before_the_kill < 500,
        "the kill came in the middle of the burst"
    );
    distinct_event_ids(&publications);
    distinct_event_ids(&feed);
    let acked = eventually(EVENTUALLY, || async {
        (pending(&url, &prefix, "notifier").await == 0).then_some(())
    })
    .await;
    assert!(acked.is_some(), "every event is acknowledged in the end");
    // Nothing more arrives once everything is acknowledged.
    assert_eq!(history(&broker, &board).await.len(), 500);
    assert_eq!(
        history(&broker, &ChannelName::notifications(&bob.id))
            .await
            .len(),
        100
    );
}

#[tokio::test]
async fn two_replicas_share_one_stream_without_duplicates() {
    let url = test_redis_url();
    let prefix = random_prefix();
    let _guard = PrefixGuard {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let broker = redis_broker(&url, &prefix);
    let _one = NotifierProcess::spawn(&url, &prefix);
    let _two = NotifierProcess::spawn(&url, &prefix);
    let alice = actor("alice");
    // A consumer joins the group with the first event it reads. Events go one at a time
    // until both replicas have one (a blocked reader waiting longest gets the next entry),
    // then the rest at once.
    let deadline = tokio::time::Instant::now() + EVENTUALLY;
    let mut appended = 0;
    while consumers_in_group(&url, &prefix).await < 2 {
        assert!(
            tokio::time::Instant::now() < deadline && appended < 300,
            "both replicas joined the group"
        );
        append(
            &broker,
            &event(
                TaskEventKind::Created,
                &format!("shared {appended}"),
                &alice,
                None,
            ),
        )
        .await;
        appended += 1;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for n in appended..300 {
        append(
            &broker,
            &event(TaskEventKind::Created, &format!("shared {n}"), &alice, None),
        )
        .await;
    }

    let publications = wait_for_history(&broker, &ChannelName::tasks(), 300).await;
    distinct_event_ids(&publications);
    let acked = eventually(EVENTUALLY, || async {
        (pending(&url, &prefix, "notifier").await == 0).then_some(())
    })
    .await;
    assert!(acked.is_some());
    assert_eq!(history(&broker, &ChannelName::tasks()).await.len(), 300);
}

#[tokio::test]
async fn sigterm_stops_the_notifier_cleanly() {
    let url = test_redis_url();
    let prefix = random_prefix();
    let _guard = PrefixGuard {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let broker = redis_broker(&url, &prefix);
    let mut notifier = NotifierProcess::spawn(&url, &prefix);
    append(
        &broker,
        &event(TaskEventKind::Created, "before", &actor("alice"), None),
    )
    .await;
    wait_for_history(&broker, &ChannelName::tasks(), 1).await;

    let clean = notifier.terminate(Duration::from_secs(10)).await;

    assert!(clean, "the notifier exits with success on SIGTERM");
    assert_eq!(pending(&url, &prefix, "notifier").await, 0);
}

async fn consumers_in_group(url: &str, prefix: &str) -> usize {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let reply: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(format!("{prefix}events:tasks"))
        .arg("notifier")
        .query_async(&mut conn)
        .await
        // No group yet (a replica has not started): nobody joined.
        .unwrap_or_default();
    reply.len()
}

/// A replica SIGKILLed while it holds events (read, not acknowledged) loses them to a live
/// replica within seconds, through liveness: the survivor keeps the default 30 s
/// `claim_min_idle`, so the stale-entry claim cannot be what brings them back in time.
#[tokio::test]
async fn a_replica_killed_holding_events_loses_them_to_a_live_one_within_seconds() {
    // A redis-server of its own: the victim's blocked read is found among its clients.
    let server = RedisServer::start().await;
    let url = server.url();
    let prefix = random_prefix();
    let broker = redis_broker(&url, &prefix);
    let alice = actor("alice");
    let bob = actor("bob");

    // The victim waits for events in one long read, then is stopped there: Redis still
    // hands it what is appended, and it can neither publish nor acknowledge.
    let mut victim = NotifierProcess::spawn_with(
        &url,
        &prefix,
        &[
            ("HERALD_NOTIFIER__CONSUMER", Some("victim")),
            ("HERALD_NOTIFIER__BLOCK", Some("60")),
            ("HERALD_NOTIFIER__CLAIM_INTERVAL", Some("60")),
        ],
    );
    let waiting = eventually(EVENTUALLY, || async {
        (blocked_reads(&url).await == 1).then_some(())
    })
    .await;
    assert!(waiting.is_some(), "the victim waits in a read");
    victim.pause();
    assert_eq!(blocked_reads(&url).await, 1, "its read is still waiting");
    let events: Vec<DomainEvent> = (0..10)
        .map(|n| {
            let assignee = (n % 2 == 0).then_some(bob.id);
            event(
                TaskEventKind::Created,
                &format!("held {n}"),
                &alice,
                assignee,
            )
        })
        .collect();
    append_in_one_transaction(&url, &prefix, &events).await;
    let held = eventually(EVENTUALLY, || async {
        let consumers = broker
            .stream_consumers(TASK_EVENTS_STREAM, "notifier")
            .await
            .ok()?;
        consumers
            .iter()
            .any(|consumer| consumer.name == "victim" && consumer.pending == 10)
            .then_some(())
    })
    .await;
    assert!(held.is_some(), "the victim holds every event");

    let metrics_port = free_port();
    let listen = format!("127.0.0.1:{metrics_port}");
    let _survivor = NotifierProcess::spawn_with(
        &url,
        &prefix,
        &[
            ("HERALD_LISTEN", Some(&listen)),
            ("HERALD_NOTIFIER__CONSUMER", Some("survivor")),
            ("HERALD_NOTIFIER__CLAIM_MIN_IDLE", None),
        ],
    );
    let joined = eventually(EVENTUALLY, || async {
        let consumers = broker
            .stream_consumers(TASK_EVENTS_STREAM, "notifier")
            .await
            .ok()?;
        consumers
            .iter()
            .any(|consumer| consumer.name == "survivor" && consumer.alive)
            .then_some(())
    })
    .await;
    assert!(joined.is_some(), "the survivor runs");
    victim.kill();

    let board = wait_for_history(&broker, &ChannelName::tasks(), 10).await;
    let feed = wait_for_history(&broker, &ChannelName::notifications(&bob.id), 5).await;
    let expected: HashSet<String> = events.iter().map(|event| event.id.to_string()).collect();
    assert_eq!(distinct_event_ids(&board), expected);
    distinct_event_ids(&feed);
    let settled = eventually(EVENTUALLY, || async {
        let consumers = broker
            .stream_consumers(TASK_EVENTS_STREAM, "notifier")
            .await
            .ok()?;
        let names: Vec<&str> = consumers.iter().map(|c| c.name.as_str()).collect();
        (pending(&url, &prefix, "notifier").await == 0 && names == ["survivor"]).then_some(())
    })
    .await;
    assert!(
        settled.is_some(),
        "everything is acknowledged and the dead consumer left the group"
    );
    let metrics = reqwest::get(format!("http://{listen}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("herald_notifier_claimed_from_dead_total 10"),
        "all ten were claimed from the dead consumer: {metrics}"
    );
    assert_eq!(history(&broker, &ChannelName::tasks()).await.len(), 10);
    assert_eq!(
        history(&broker, &ChannelName::notifications(&bob.id))
            .await
            .len(),
        5
    );
}

/// Clients of the Redis at `url` waiting in a blocking `XREADGROUP`.
async fn blocked_reads(url: &str) -> usize {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    list.lines()
        .filter(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            fields.contains(&"cmd=xreadgroup")
                && fields.iter().any(|field| {
                    field
                        .strip_prefix("flags=")
                        .is_some_and(|f| f.contains('b'))
                })
        })
        .count()
}

/// Appends `events` in one `MULTI`/`EXEC`, so a blocked reader gets all of them at once.
async fn append_in_one_transaction(url: &str, prefix: &str, events: &[DomainEvent]) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut pipe = redis::pipe();
    pipe.atomic();
    for event in events {
        pipe.cmd("XADD")
            .arg(format!("{prefix}{TASK_EVENTS_STREAM}"))
            .arg("*")
            .arg("p")
            .arg(serde_json::to_string(event).unwrap())
            .ignore();
    }
    pipe.query_async::<()>(&mut conn).await.unwrap();
}
