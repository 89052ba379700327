//! The real `herald-notifier` binary: killed mid-burst, replicated, terminated.

use std::time::Duration;

use herald_common::channel::ChannelName;
use herald_common::events::TaskEventKind;

use crate::helpers::{
    EVENTUALLY, NotifierProcess, PrefixGuard, actor, append, distinct_event_ids, event, eventually,
    history, pending, random_prefix, redis_broker, test_redis_url, wait_for_history,
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
