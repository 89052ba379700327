//! The broker conformance suite: every test is written once against `Broker` and runs
//! against both implementations (`memory::<name>` and `redis::<name>`). Redis tests use the
//! Redis at `HERALD_TEST_REDIS_URL` with a random key prefix each.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use common::{
    Harness, channel, client_info, json, keep, next_event, next_publication, number_of, numbered,
};
use herald_broker::{BrokerError, BrokerEvent, HistoryPolicy, HistoryQuery, PublishRequest};
use herald_common::channel::ChannelName;
use herald_common::protocol::StreamPosition;
use tokio::sync::mpsc;

/// Generates `memory::<test>` and `redis::<test>` for each test function.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let harness = crate::common::Harness::memory();
                    super::$name(&harness).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let harness = crate::common::Harness::redis().await;
                    super::$name(&harness).await;
                    harness.cleanup().await;
                }
            )*
        }
    };
}

conformance!(
    ping_succeeds,
    offsets_count_up_from_one_within_an_epoch,
    offsets_strictly_increase_under_concurrent_publishers,
    publish_many_makes_every_publication_in_the_order_given,
    publish_many_refuses_only_the_publications_that_cannot_be_made,
    history_holds_exactly_its_size_after_many_publications,
    the_history_lives_its_ttl_after_the_last_publication_not_the_first,
    subscribers_of_two_nodes_receive_publications_in_offset_order,
    subscriptions_are_reference_counted,
    history_keeps_the_latest_publications_and_honours_limit_and_reverse,
    history_since_a_position_returns_what_came_after_it,
    history_since_a_position_of_another_epoch_is_unrecoverable,
    recovery_returns_exactly_the_missed_publications_in_order,
    recovery_at_the_top_is_recovered_with_nothing,
    recovery_with_another_epoch_is_not_recovered,
    recovery_is_not_partial_when_part_of_the_gap_was_trimmed,
    recovery_is_refused_when_more_than_max_were_missed,
    the_position_of_a_new_channel_holds_until_the_first_publication,
    the_epoch_changes_when_the_history_is_removed,
    the_epoch_changes_when_the_history_expires,
    a_repeated_publish_with_the_same_idempotency_key_is_stored_once,
    an_idempotency_key_is_forgotten_after_its_window,
    without_history_publications_are_delivered_without_offset,
    presence_lists_and_counts_clients_and_users,
    presence_entries_expire_unless_refreshed,
    join_and_leave_reach_subscribers_of_the_channel,
    control_messages_reach_every_node,
    a_full_receiver_drops_events_and_reports_a_gap,
    a_reported_gap_arrives_in_the_receiver_in_order_with_the_channel_events,
    a_gap_reported_while_the_receiver_is_full_is_owed_and_drops_the_channel_until_delivered,
    a_consumer_group_delivers_each_entry_to_one_consumer,
    a_consumer_group_redelivers_unacked_entries_to_another_consumer_after_the_idle_timeout,
    a_read_creates_a_missing_group,
    the_entries_of_a_consumer_whose_liveness_mark_is_gone_are_claimed_at_once,
    a_consumer_without_a_mark_is_not_dead_before_the_grace,
    a_consumer_that_left_is_claimed_from_after_the_grace,
    each_entry_of_a_dead_consumer_goes_to_one_of_two_racing_claimers,
    consumers_of_a_missing_group_are_none,
    a_blocking_read_waits_for_an_append,
    a_blocking_read_returns_nothing_when_nothing_arrives,
    key_value_entries_are_stored_expire_and_are_deleted,
    table_entries_are_listed_refreshed_expire_and_are_removed,
);

async fn ping_succeeds(h: &Harness) {
    h.broker.ping().await.unwrap();
}

async fn offsets_count_up_from_one_within_an_epoch(h: &Harness) {
    let ch = channel("chat:offsets");
    let mut epochs = BTreeSet::new();
    for n in 1..=5 {
        let result = h.broker.publish(&ch, numbered(n, keep(10))).await.unwrap();
        assert_eq!(result.offset, n);
        assert!(!result.deduplicated);
        epochs.insert(result.epoch);
    }
    assert_eq!(epochs.len(), 1, "one epoch for one history");
    let position = h.broker.position(&ch).await.unwrap();
    assert_eq!(position.offset, 5);
    assert!(epochs.contains(&position.epoch));
}

async fn offsets_strictly_increase_under_concurrent_publishers(h: &Harness) {
    const PUBLISHERS: u64 = 4;
    const EACH: u64 = 25;
    let ch = channel("chat:concurrent");
    let (subscriber, mut events) = h.broker.subscriber(1024);
    subscriber.subscribe(&ch).await.unwrap();

    let mut tasks = Vec::new();
    for publisher in 0..PUBLISHERS {
        let broker = h.another_broker();
        let ch = ch.clone();
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            for i in 0..EACH {
                let n = publisher * EACH + i;
                results.push(broker.publish(&ch, numbered(n, keep(1000))).await.unwrap());
            }
            results
        }));
    }
    let mut offsets = Vec::new();
    let mut epochs = BTreeSet::new();
    for task in tasks {
        let results = task.await.unwrap();
        // Each publisher sees its own offsets strictly increase.
        assert!(results.windows(2).all(|w| w[0].offset < w[1].offset));
        for result in results {
            offsets.push(result.offset);
            epochs.insert(result.epoch);
        }
    }
    offsets.sort_unstable();
    let expected: Vec<u64> = (1..=PUBLISHERS * EACH).collect();
    assert_eq!(offsets, expected, "every offset given exactly once");
    assert_eq!(epochs.len(), 1);

    // The subscriber sees them in strictly increasing order.
    let mut last = 0;
    for _ in 0..PUBLISHERS * EACH {
        let (_, publication, _) = next_publication(&mut events).await;
        assert!(
            publication.offset > last,
            "{} after {last}",
            publication.offset
        );
        last = publication.offset;
    }
    assert_eq!(last, PUBLISHERS * EACH);
}

async fn publish_many_makes_every_publication_in_the_order_given(h: &Harness) {
    let chat = channel("chat:many");
    let live = channel("chat:many-live");
    let (subscriber, mut events) = h.broker.subscriber(1024);
    subscriber.subscribe(&chat).await.unwrap();
    subscriber.subscribe(&live).await.unwrap();
    h.broker
        .publish(&chat, numbered(0, keep(1000)))
        .await
        .unwrap();
    // Runs of one channel, another channel in between, a publication without history, an
    // idempotent one, and more than one script call's worth of publications in a row.
    let mut requests = Vec::new();
    for n in 1..=150 {
        let request = match n {
            40 => (live.clone(), numbered(n, HistoryPolicy::none())),
            41 => (
                chat.clone(),
                numbered(n, keep(1000)).with_idempotency_key("k41"),
            ),
            _ => (chat.clone(), numbered(n, keep(1000))),
        };
        requests.push(request);
    }
    let results = h.broker.publish_many(requests).await;
    assert_eq!(results.len(), 150);
    let mut expected_offset = 1;
    for (n, result) in (1..=150).zip(&results) {
        let result = result.as_ref().unwrap();
        if n == 40 {
            assert_eq!(result.offset, 0, "no history, no offset");
            continue;
        }
        expected_offset += 1;
        assert_eq!(result.offset, expected_offset, "publication {n}");
        assert!(!result.deduplicated);
    }
    let (_, first, _) = next_publication(&mut events).await;
    assert_eq!(number_of(&first), 0);
    for n in 1..=150 {
        let (got, publication, _) = next_publication(&mut events).await;
        assert_eq!(number_of(&publication), n, "delivered in the order given");
        assert_eq!(got, if n == 40 { live.clone() } else { chat.clone() });
    }
    let history = h
        .broker
        .history(&chat, HistoryQuery::default())
        .await
        .unwrap();
    let numbers: Vec<u64> = history.publications.iter().map(number_of).collect();
    let expected: Vec<u64> = (0..=150).filter(|n| *n != 40).collect();
    assert_eq!(numbers, expected);
    // The idempotency key still works inside a batch.
    let again = h
        .broker
        .publish_many(vec![(
            chat.clone(),
            numbered(41, keep(1000)).with_idempotency_key("k41"),
        )])
        .await;
    let again = again[0].as_ref().unwrap();
    assert!(again.deduplicated);
    assert_eq!(again.offset, 41);
}

async fn publish_many_refuses_only_the_publications_that_cannot_be_made(h: &Harness) {
    let ch = channel("chat:many-empty");
    assert!(h.broker.publish_many(Vec::new()).await.is_empty());
    let results = h
        .broker
        .publish_many(vec![
            (ch.clone(), numbered(1, keep(10))),
            (ch.clone(), numbered(2, keep(10))),
        ])
        .await;
    let offsets: Vec<u64> = results.into_iter().map(|r| r.unwrap().offset).collect();
    assert_eq!(offsets, [1, 2]);
}

async fn history_holds_exactly_its_size_after_many_publications(h: &Harness) {
    let ch = channel("chat:trimmed");
    let mut epoch = String::new();
    for chunk in 0..10 {
        let requests = (1..=100)
            .map(|n| (ch.clone(), numbered(chunk * 100 + n, keep(300))))
            .collect();
        for result in h.broker.publish_many(requests).await {
            epoch = result.unwrap().epoch;
        }
    }
    let all = h
        .broker
        .history(&ch, HistoryQuery::default())
        .await
        .unwrap();
    let offsets: Vec<u64> = all.publications.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, (701..=1000).collect::<Vec<u64>>());
    let newest = h
        .broker
        .history(
            &ch,
            HistoryQuery {
                limit: Some(1000),
                reverse: true,
                since: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(newest.publications.len(), 300);
    assert_eq!(newest.publications.last().unwrap().offset, 701);
    // Recovery has exactly the same boundary.
    let trimmed = StreamPosition {
        offset: 699,
        epoch: epoch.clone(),
    };
    assert!(
        !h.broker
            .recover(&ch, &trimmed, 1000)
            .await
            .unwrap()
            .recovered
    );
    let kept = StreamPosition { offset: 700, epoch };
    let recovery = h.broker.recover(&ch, &kept, 1000).await.unwrap();
    assert!(recovery.recovered);
    assert_eq!(recovery.publications.len(), 300);
}

async fn the_history_lives_its_ttl_after_the_last_publication_not_the_first(h: &Harness) {
    let ch = channel("chat:refreshed");
    let policy = HistoryPolicy::new(10, Duration::from_millis(1000));
    let first = h.broker.publish(&ch, numbered(1, policy)).await.unwrap();
    // Each publication comes 600 ms after the previous one, so the history would have
    // expired 1000 ms after the first if its TTL were not refreshed.
    for n in 2..=3 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        let next = h.broker.publish(&ch, numbered(n, policy)).await.unwrap();
        assert_eq!(
            next.epoch, first.epoch,
            "publication {n}: the history was kept"
        );
        assert_eq!(next.offset, n);
    }
    let history = h
        .broker
        .history(&ch, HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(history.publications.len(), 3);
}

async fn subscribers_of_two_nodes_receive_publications_in_offset_order(h: &Harness) {
    let ch = channel("chat:two-nodes");
    let other = channel("chat:other");
    let (node_a, mut events_a) = h.broker.subscriber(64);
    let (node_b, mut events_b) = h.another_broker().subscriber(64);
    node_a.subscribe(&ch).await.unwrap();
    node_b.subscribe(&ch).await.unwrap();

    h.broker
        .publish(&other, numbered(0, keep(10)))
        .await
        .unwrap();
    let mut published = Vec::new();
    for n in 1..=3 {
        let request = numbered(n, keep(10))
            .with_info(client_info("u1", "c1"))
            .with_tag("kind", "test");
        published.push(h.broker.publish(&ch, request).await.unwrap());
    }

    for events in [&mut events_a, &mut events_b] {
        for (n, result) in (1..=3).zip(&published) {
            let (got_channel, publication, epoch) = next_publication(events).await;
            assert_eq!(got_channel, ch, "only the subscribed channel is delivered");
            assert_eq!(publication.offset, result.offset);
            assert_eq!(epoch, result.epoch);
            assert_eq!(number_of(&publication), n);
            assert_eq!(publication.info.as_ref().unwrap().user, "u1");
            assert_eq!(
                publication.tags.get("kind").map(String::as_str),
                Some("test")
            );
        }
    }
    assert_eq!(node_a.stats().channels, 1);
}

async fn subscriptions_are_reference_counted(h: &Harness) {
    let ch = channel("chat:refcount");
    let marker = channel("chat:marker");
    let (subscriber, mut events) = h.broker.subscriber(64);
    subscriber.subscribe(&ch).await.unwrap();
    subscriber.subscribe(&ch).await.unwrap();
    subscriber.subscribe(&marker).await.unwrap();

    // One reference left: still delivered.
    subscriber.unsubscribe(&ch).await;
    h.broker.publish(&ch, numbered(1, keep(10))).await.unwrap();
    let (got, _, _) = next_publication(&mut events).await;
    assert_eq!(got, ch);

    // Last reference gone: no longer delivered (the marker arrives first).
    subscriber.unsubscribe(&ch).await;
    assert_eq!(subscriber.stats().channels, 1);
    h.broker.publish(&ch, numbered(2, keep(10))).await.unwrap();
    h.broker
        .publish(&marker, numbered(3, keep(10)))
        .await
        .unwrap();
    let (got, publication, _) = next_publication(&mut events).await;
    assert_eq!(got, marker);
    assert_eq!(number_of(&publication), 3);

    // Unsubscribing more than subscribed does nothing; subscribing again delivers again.
    subscriber.unsubscribe(&ch).await;
    subscriber.subscribe(&ch).await.unwrap();
    h.broker.publish(&ch, numbered(4, keep(10))).await.unwrap();
    let (got, publication, _) = next_publication(&mut events).await;
    assert_eq!(got, ch);
    assert_eq!(number_of(&publication), 4);
}

async fn history_keeps_the_latest_publications_and_honours_limit_and_reverse(h: &Harness) {
    let ch = channel("chat:history");
    for n in 1..=8 {
        h.broker.publish(&ch, numbered(n, keep(5))).await.unwrap();
    }
    let all = h
        .broker
        .history(&ch, HistoryQuery::default())
        .await
        .unwrap();
    let offsets: Vec<u64> = all.publications.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, vec![4, 5, 6, 7, 8]);
    assert!(all.publications.iter().all(|p| number_of(p) == p.offset));
    assert_eq!(all.position.offset, 8);

    let first_two = h
        .broker
        .history(
            &ch,
            HistoryQuery {
                limit: Some(2),
                ..HistoryQuery::default()
            },
        )
        .await
        .unwrap();
    let offsets: Vec<u64> = first_two.publications.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, vec![4, 5]);

    let newest_two = h
        .broker
        .history(
            &ch,
            HistoryQuery {
                limit: Some(2),
                reverse: true,
                since: None,
            },
        )
        .await
        .unwrap();
    let offsets: Vec<u64> = newest_two.publications.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, vec![8, 7]);

    let position_only = h
        .broker
        .history(
            &ch,
            HistoryQuery {
                limit: Some(0),
                ..HistoryQuery::default()
            },
        )
        .await
        .unwrap();
    assert!(position_only.publications.is_empty());
    assert_eq!(position_only.position, all.position);
}

async fn history_since_a_position_returns_what_came_after_it(h: &Harness) {
    let ch = channel("chat:since");
    let mut epoch = String::new();
    for n in 1..=6 {
        epoch = h
            .broker
            .publish(&ch, numbered(n, keep(10)))
            .await
            .unwrap()
            .epoch;
    }
    let since = StreamPosition { offset: 3, epoch };
    let after = h
        .broker
        .history(
            &ch,
            HistoryQuery {
                since: Some(since.clone()),
                limit: None,
                reverse: false,
            },
        )
        .await
        .unwrap();
    let offsets: Vec<u64> = after.publications.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, vec![4, 5, 6]);

    let before = h
        .broker
        .history(
            &ch,
            HistoryQuery {
                since: Some(since),
                limit: Some(10),
                reverse: true,
            },
        )
        .await
        .unwrap();
    let offsets: Vec<u64> = before.publications.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, vec![2, 1]);
}

async fn history_since_a_position_of_another_epoch_is_unrecoverable(h: &Harness) {
    let ch = channel("chat:since-epoch");
    h.broker.publish(&ch, numbered(1, keep(10))).await.unwrap();
    let since = StreamPosition {
        offset: 0,
        epoch: "not-this-one".to_owned(),
    };
    let result = h
        .broker
        .history(
            &ch,
            HistoryQuery {
                since: Some(since),
                limit: None,
                reverse: false,
            },
        )
        .await;
    assert!(
        matches!(result, Err(BrokerError::UnrecoverablePosition)),
        "{result:?}"
    );
}

async fn recovery_returns_exactly_the_missed_publications_in_order(h: &Harness) {
    let ch = channel("chat:recover");
    let mut seen = None;
    for n in 1..=10 {
        let result = h.broker.publish(&ch, numbered(n, keep(100))).await.unwrap();
        if n == 4 {
            seen = Some(StreamPosition {
                offset: result.offset,
                epoch: result.epoch,
            });
        }
    }
    let seen = seen.unwrap();
    let recovery = h.broker.recover(&ch, &seen, 300).await.unwrap();
    assert!(recovery.recovered);
    let offsets: Vec<u64> = recovery.publications.iter().map(|p| p.offset).collect();
    assert_eq!(offsets, (5..=10).collect::<Vec<_>>());
    assert!(
        recovery
            .publications
            .iter()
            .all(|p| number_of(p) == p.offset)
    );
    assert_eq!(
        recovery.position,
        StreamPosition {
            offset: 10,
            epoch: seen.epoch
        }
    );
}

async fn recovery_at_the_top_is_recovered_with_nothing(h: &Harness) {
    let ch = channel("chat:recover-top");
    let result = h.broker.publish(&ch, numbered(1, keep(10))).await.unwrap();
    let top = StreamPosition {
        offset: result.offset,
        epoch: result.epoch,
    };
    let recovery = h.broker.recover(&ch, &top, 300).await.unwrap();
    assert!(recovery.recovered);
    assert!(recovery.publications.is_empty());
    assert_eq!(recovery.position, top);
}

async fn recovery_with_another_epoch_is_not_recovered(h: &Harness) {
    let ch = channel("chat:recover-epoch");
    for n in 1..=3 {
        h.broker.publish(&ch, numbered(n, keep(10))).await.unwrap();
    }
    let stale = StreamPosition {
        offset: 1,
        epoch: "old-epoch".to_owned(),
    };
    let recovery = h.broker.recover(&ch, &stale, 300).await.unwrap();
    assert!(!recovery.recovered);
    assert!(recovery.publications.is_empty());
    assert_eq!(recovery.position.offset, 3);
}

async fn recovery_is_not_partial_when_part_of_the_gap_was_trimmed(h: &Harness) {
    let ch = channel("chat:recover-trimmed");
    let mut epoch = String::new();
    for n in 1..=6 {
        epoch = h
            .broker
            .publish(&ch, numbered(n, keep(3)))
            .await
            .unwrap()
            .epoch;
    }
    // Offsets 2..=6 were missed but only 4..=6 are kept.
    let since = StreamPosition {
        offset: 1,
        epoch: epoch.clone(),
    };
    let recovery = h.broker.recover(&ch, &since, 300).await.unwrap();
    assert!(!recovery.recovered);
    assert!(recovery.publications.is_empty());
    // The boundary still works: 4..=6 missed, all kept.
    let since = StreamPosition { offset: 3, epoch };
    let recovery = h.broker.recover(&ch, &since, 300).await.unwrap();
    assert!(recovery.recovered);
    assert_eq!(recovery.publications.len(), 3);
}

async fn recovery_is_refused_when_more_than_max_were_missed(h: &Harness) {
    let ch = channel("chat:recover-max");
    let mut epoch = String::new();
    for n in 1..=6 {
        epoch = h
            .broker
            .publish(&ch, numbered(n, keep(10)))
            .await
            .unwrap()
            .epoch;
    }
    let since = StreamPosition { offset: 2, epoch };
    let refused = h.broker.recover(&ch, &since, 3).await.unwrap();
    assert!(!refused.recovered);
    assert!(refused.publications.is_empty());
    let allowed = h.broker.recover(&ch, &since, 4).await.unwrap();
    assert!(allowed.recovered);
    assert_eq!(allowed.publications.len(), 4);
}

async fn the_position_of_a_new_channel_holds_until_the_first_publication(h: &Harness) {
    let ch = channel("chat:new");
    let start = h.broker.position(&ch).await.unwrap();
    assert_eq!(start.offset, 0);
    assert!(!start.epoch.is_empty());
    assert_eq!(h.broker.position(&ch).await.unwrap(), start);
    let first = h.broker.publish(&ch, numbered(1, keep(10))).await.unwrap();
    assert_eq!(
        first.epoch, start.epoch,
        "a subscriber positioned before can recover"
    );
    assert_eq!(first.offset, 1);
    let recovery = h.broker.recover(&ch, &start, 300).await.unwrap();
    assert!(recovery.recovered);
    assert_eq!(recovery.publications.len(), 1);
}

async fn the_epoch_changes_when_the_history_is_removed(h: &Harness) {
    let ch = channel("chat:lost");
    for n in 1..=3 {
        h.broker.publish(&ch, numbered(n, keep(10))).await.unwrap();
    }
    let before = h.broker.position(&ch).await.unwrap();

    h.broker.remove_history(&ch).await.unwrap();

    let after = h.broker.position(&ch).await.unwrap();
    assert_ne!(after.epoch, before.epoch);
    assert_eq!(after.offset, 0);
    let next = h.broker.publish(&ch, numbered(4, keep(10))).await.unwrap();
    assert_eq!(next.epoch, after.epoch);
    assert_eq!(next.offset, 1);
    let recovery = h.broker.recover(&ch, &before, 300).await.unwrap();
    assert!(!recovery.recovered);
    assert!(
        h.broker
            .history(&ch, HistoryQuery::default())
            .await
            .unwrap()
            .publications
            .len()
            == 1
    );
}

async fn the_epoch_changes_when_the_history_expires(h: &Harness) {
    let ch = channel("chat:expiring");
    let short = HistoryPolicy::new(10, Duration::from_millis(200));
    let first = h.broker.publish(&ch, numbered(1, short)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    let next = h.broker.publish(&ch, numbered(2, short)).await.unwrap();
    assert_ne!(next.epoch, first.epoch);
    assert_eq!(next.offset, 1);
    let history = h
        .broker
        .history(&ch, HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(history.publications.len(), 1);
    assert_eq!(number_of(&history.publications[0]), 2);
}

async fn a_repeated_publish_with_the_same_idempotency_key_is_stored_once(h: &Harness) {
    let ch = channel("notifications#u1");
    let marker = channel("chat:marker");
    let (subscriber, mut events) = h.broker.subscriber(64);
    subscriber.subscribe(&ch).await.unwrap();
    subscriber.subscribe(&marker).await.unwrap();

    let first = h
        .broker
        .publish(&ch, numbered(1, keep(10)).with_idempotency_key("event-1"))
        .await
        .unwrap();
    let again = h
        .broker
        .publish(&ch, numbered(1, keep(10)).with_idempotency_key("event-1"))
        .await
        .unwrap();
    assert!(!first.deduplicated);
    assert!(again.deduplicated);
    assert_eq!((again.offset, &again.epoch), (first.offset, &first.epoch));

    let other = h
        .broker
        .publish(&ch, numbered(2, keep(10)).with_idempotency_key("event-2"))
        .await
        .unwrap();
    assert_eq!(other.offset, first.offset + 1);

    let history = h
        .broker
        .history(&ch, HistoryQuery::default())
        .await
        .unwrap();
    assert_eq!(history.publications.len(), 2);

    // Delivered once: the second event after the first is event-2, not a repeat.
    h.broker
        .publish(&marker, numbered(9, keep(10)))
        .await
        .unwrap();
    let received: Vec<u64> = [
        next_publication(&mut events).await,
        next_publication(&mut events).await,
        next_publication(&mut events).await,
    ]
    .iter()
    .map(|(_, publication, _)| number_of(publication))
    .collect();
    assert_eq!(received, vec![1, 2, 9]);
}

async fn an_idempotency_key_is_forgotten_after_its_window(h: &Harness) {
    let ch = channel("chat:idem-window");
    let request = || {
        numbered(1, keep(10))
            .with_idempotency_key("k")
            .with_idempotency_window(Duration::from_millis(150))
    };
    let first = h.broker.publish(&ch, request()).await.unwrap();
    assert!(h.broker.publish(&ch, request()).await.unwrap().deduplicated);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let later = h.broker.publish(&ch, request()).await.unwrap();
    assert!(!later.deduplicated);
    assert_eq!(later.offset, first.offset + 1);
}

async fn without_history_publications_are_delivered_without_offset(h: &Harness) {
    let ch = channel("chat:live-only");
    let (subscriber, mut events) = h.broker.subscriber(64);
    subscriber.subscribe(&ch).await.unwrap();
    let result = h
        .broker
        .publish(&ch, PublishRequest::new(json(r#"{"text":"hi"}"#)))
        .await
        .unwrap();
    assert_eq!(result.offset, 0);
    assert_eq!(result.epoch, "");
    let (_, publication, epoch) = next_publication(&mut events).await;
    assert_eq!(publication.offset, 0);
    assert_eq!(epoch, "");
    assert_eq!(publication.data.get(), r#"{"text":"hi"}"#);
    let history = h
        .broker
        .history(&ch, HistoryQuery::default())
        .await
        .unwrap();
    assert!(history.publications.is_empty());
    assert_eq!(history.position.offset, 0);
}

async fn presence_lists_and_counts_clients_and_users(h: &Harness) {
    let ch = channel("chat:presence");
    let ttl = Duration::from_secs(60);
    h.broker
        .presence_add(&ch, "c1", &client_info("alice", "c1"), ttl)
        .await
        .unwrap();
    h.broker
        .presence_add(&ch, "c2", &client_info("alice", "c2"), ttl)
        .await
        .unwrap();
    h.broker
        .presence_add(&ch, "c3", &client_info("bob", "c3"), ttl)
        .await
        .unwrap();

    let presence = h.broker.presence(&ch).await.unwrap();
    assert_eq!(
        presence.keys().cloned().collect::<Vec<_>>(),
        vec!["c1", "c2", "c3"]
    );
    assert_eq!(presence["c3"], client_info("bob", "c3"));
    let stats = h.broker.presence_stats(&ch).await.unwrap();
    assert_eq!((stats.num_clients, stats.num_users), (3, 2));

    h.broker.presence_remove(&ch, "c1").await.unwrap();
    let stats = h.broker.presence_stats(&ch).await.unwrap();
    assert_eq!((stats.num_clients, stats.num_users), (2, 2));
    assert!(
        h.broker
            .presence(&channel("chat:empty"))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn presence_entries_expire_unless_refreshed(h: &Harness) {
    let ch = channel("chat:presence-expiry");
    let ttl = Duration::from_millis(300);
    h.broker
        .presence_add(&ch, "stays", &client_info("u1", "stays"), ttl)
        .await
        .unwrap();
    h.broker
        .presence_add(&ch, "goes", &client_info("u2", "goes"), ttl)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(180)).await;
    h.broker
        .presence_add(&ch, "stays", &client_info("u1", "stays"), ttl)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let presence = h.broker.presence(&ch).await.unwrap();
    assert_eq!(presence.keys().cloned().collect::<Vec<_>>(), vec!["stays"]);
    let stats = h.broker.presence_stats(&ch).await.unwrap();
    assert_eq!((stats.num_clients, stats.num_users), (1, 1));

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(h.broker.presence(&ch).await.unwrap().is_empty());
}

async fn join_and_leave_reach_subscribers_of_the_channel(h: &Harness) {
    let ch = channel("chat:joins");
    let (subscriber, mut events) = h.broker.subscriber(64);
    subscriber.subscribe(&ch).await.unwrap();
    h.broker
        .publish_join(&channel("chat:elsewhere"), &client_info("x", "x"))
        .await
        .unwrap();
    h.broker
        .publish_join(&ch, &client_info("alice", "c1"))
        .await
        .unwrap();
    h.broker
        .publish_leave(&ch, &client_info("alice", "c1"))
        .await
        .unwrap();
    match next_event(&mut events).await {
        BrokerEvent::Join { channel: got, info } => {
            assert_eq!(got, ch);
            assert_eq!(info, client_info("alice", "c1"));
        }
        other => panic!("expected a join, got {other:?}"),
    }
    match next_event(&mut events).await {
        BrokerEvent::Leave { channel: got, info } => {
            assert_eq!(got, ch);
            assert_eq!(info.client, "c1");
        }
        other => panic!("expected a leave, got {other:?}"),
    }
}

async fn control_messages_reach_every_node(h: &Harness) {
    let (node_a, mut events_a) = h.broker.subscriber(8);
    let (node_b, mut events_b) = h.another_broker().subscriber(8);
    // A subscription is what makes a Redis subscriber wait for its connection.
    node_a.subscribe(&channel("chat:any")).await.unwrap();
    node_b.subscribe(&channel("chat:any")).await.unwrap();
    h.broker
        .publish_control(Bytes::from_static(br#"{"disconnect":"u1"}"#))
        .await
        .unwrap();
    for events in [&mut events_a, &mut events_b] {
        match next_event(events).await {
            BrokerEvent::Control(payload) => assert_eq!(&payload[..], br#"{"disconnect":"u1"}"#),
            other => panic!("expected a control message, got {other:?}"),
        }
    }
}

async fn a_full_receiver_drops_events_and_reports_a_gap(h: &Harness) {
    let ch = channel("chat:slow");
    let (subscriber, mut events) = h.broker.subscriber(2);
    subscriber.subscribe(&ch).await.unwrap();
    let mut epoch = String::new();
    for n in 1..=6 {
        epoch = h
            .broker
            .publish(&ch, numbered(n, keep(100)))
            .await
            .unwrap()
            .epoch;
    }
    // Wait until the events reached the subscriber side (Redis delivers asynchronously).
    let deadline = tokio::time::Instant::now() + common::EVENT_TIMEOUT;
    while subscriber.stats().dropped_events < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "events were not dropped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let (_, first, _) = next_publication(&mut events).await;
    let (_, second, _) = next_publication(&mut events).await;
    assert_eq!((first.offset, second.offset), (1, 2));
    match next_event(&mut events).await {
        BrokerEvent::GapPossible { channel: got } => assert_eq!(got, ch),
        other => panic!("expected a gap, got {other:?}"),
    }
    // What was dropped is recoverable from the last delivered position.
    let recovery = h
        .broker
        .recover(
            &ch,
            &StreamPosition {
                offset: second.offset,
                epoch,
            },
            300,
        )
        .await
        .unwrap();
    assert!(recovery.recovered);
    assert_eq!(recovery.publications.len(), 4);

    // Delivery resumes after the gap.
    h.broker.publish(&ch, numbered(7, keep(100))).await.unwrap();
    let (_, next, _) = next_publication(&mut events).await;
    assert_eq!(next.offset, 7);
}

/// Waits until `events` holds `count` events (Redis delivers asynchronously).
async fn wait_until_queued(events: &mpsc::Receiver<BrokerEvent>, count: usize) {
    let deadline = tokio::time::Instant::now() + common::EVENT_TIMEOUT;
    while events.len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "events did not reach the receiver"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn expect_gap(event: BrokerEvent, ch: &ChannelName) {
    match event {
        BrokerEvent::GapPossible { channel: got } => assert_eq!(&got, ch),
        other => panic!("expected a gap, got {other:?}"),
    }
}

async fn a_reported_gap_arrives_in_the_receiver_in_order_with_the_channel_events(h: &Harness) {
    let ch = channel("chat:reported");
    let (subscriber, mut events) = h.broker.subscriber(8);
    subscriber.subscribe(&ch).await.unwrap();
    for n in 1..=2 {
        h.broker.publish(&ch, numbered(n, keep(100))).await.unwrap();
    }
    wait_until_queued(&events, 2).await;
    subscriber.report_gap(&ch);
    h.broker.publish(&ch, numbered(3, keep(100))).await.unwrap();
    // Behind what was already received, ahead of what came after the report.
    assert_eq!(next_publication(&mut events).await.1.offset, 1);
    assert_eq!(next_publication(&mut events).await.1.offset, 2);
    expect_gap(next_event(&mut events).await, &ch);
    assert_eq!(next_publication(&mut events).await.1.offset, 3);
    assert_eq!(subscriber.stats().dropped_events, 0);
}

async fn a_gap_reported_while_the_receiver_is_full_is_owed_and_drops_the_channel_until_delivered(
    h: &Harness,
) {
    let ch = channel("chat:reported-full");
    let (subscriber, mut events) = h.broker.subscriber(2);
    subscriber.subscribe(&ch).await.unwrap();
    for n in 1..=2 {
        h.broker.publish(&ch, numbered(n, keep(100))).await.unwrap();
    }
    wait_until_queued(&events, 2).await;
    subscriber.report_gap(&ch);
    // No room: the gap is owed, and the channel's next event is dropped, not queued ahead
    // of it.
    h.broker.publish(&ch, numbered(3, keep(100))).await.unwrap();
    let deadline = tokio::time::Instant::now() + common::EVENT_TIMEOUT;
    while subscriber.stats().dropped_events < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the event was not dropped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(next_publication(&mut events).await.1.offset, 1);
    assert_eq!(next_publication(&mut events).await.1.offset, 2);
    // Delivered once there is room, though nothing else arrives.
    expect_gap(next_event(&mut events).await, &ch);
    h.broker.publish(&ch, numbered(4, keep(100))).await.unwrap();
    assert_eq!(next_publication(&mut events).await.1.offset, 4);
}

async fn a_consumer_group_delivers_each_entry_to_one_consumer(h: &Harness) {
    let stream = "events:tasks";
    h.broker
        .stream_ensure_group(stream, "notifier")
        .await
        .unwrap();
    h.broker
        .stream_ensure_group(stream, "notifier")
        .await
        .unwrap();
    let mut appended = Vec::new();
    for n in 0..4 {
        appended.push(
            h.broker
                .stream_append(stream, &format!(r#"{{"n":{n}}}"#))
                .await
                .unwrap(),
        );
    }
    let zero = Duration::ZERO;
    let a = h
        .broker
        .stream_read_group(stream, "notifier", "a", 3, zero)
        .await
        .unwrap();
    let b = h
        .broker
        .stream_read_group(stream, "notifier", "b", 3, zero)
        .await
        .unwrap();
    assert_eq!(a.len(), 3);
    assert_eq!(b.len(), 1);
    let ids: Vec<String> = a.iter().chain(&b).map(|e| e.id.clone()).collect();
    assert_eq!(ids, appended);
    assert_eq!(a[0].payload, r#"{"n":0}"#);
    assert!(a.iter().chain(&b).all(|e| e.deliveries == 1));
    assert!(
        h.broker
            .stream_read_group(stream, "notifier", "a", 3, zero)
            .await
            .unwrap()
            .is_empty()
    );

    // Another group gets everything again.
    let audit = h
        .broker
        .stream_read_group(stream, "audit", "x", 10, zero)
        .await
        .unwrap();
    assert_eq!(audit.len(), 4);

    assert_eq!(
        h.broker.stream_ack(stream, "notifier", &ids).await.unwrap(),
        4
    );
    assert_eq!(
        h.broker.stream_ack(stream, "notifier", &ids).await.unwrap(),
        0
    );
    let stale = h
        .broker
        .stream_claim_stale(stream, "notifier", "c", Duration::ZERO, 10)
        .await
        .unwrap();
    assert!(stale.is_empty(), "acknowledged entries are not redelivered");
}

async fn a_consumer_group_redelivers_unacked_entries_to_another_consumer_after_the_idle_timeout(
    h: &Harness,
) {
    let stream = "events:tasks";
    let group = "notifier";
    h.broker.stream_ensure_group(stream, group).await.unwrap();
    let done = h.broker.stream_append(stream, "done").await.unwrap();
    let lost = h.broker.stream_append(stream, "lost").await.unwrap();
    let read = h
        .broker
        .stream_read_group(stream, group, "dies", 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(read.len(), 2);
    h.broker.stream_ack(stream, group, &[done]).await.unwrap();

    let idle = Duration::from_millis(200);
    let early = h
        .broker
        .stream_claim_stale(stream, group, "takes-over", idle, 10)
        .await
        .unwrap();
    assert!(early.is_empty(), "not stale yet");

    tokio::time::sleep(Duration::from_millis(300)).await;
    let claimed = h
        .broker
        .stream_claim_stale(stream, group, "takes-over", idle, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].id, lost);
    assert_eq!(claimed[0].payload, "lost");
    assert_eq!(claimed[0].deliveries, 2);

    // Now owned by the new consumer and fresh: not claimable again at once.
    let again = h
        .broker
        .stream_claim_stale(stream, group, "third", idle, 10)
        .await
        .unwrap();
    assert!(again.is_empty());
    assert_eq!(
        h.broker.stream_ack(stream, group, &[lost]).await.unwrap(),
        1
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after_ack = h
        .broker
        .stream_claim_stale(stream, group, "third", idle, 10)
        .await
        .unwrap();
    assert!(after_ack.is_empty());
}

/// Appends `n` entries to `stream`; returns their ids.
async fn append_entries(h: &Harness, stream: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            h.broker
                .stream_append(stream, &format!("e{i}"))
                .await
                .unwrap(),
        );
    }
    ids
}

/// `name`'s line in the consumers of `group`, if it is in the group.
async fn consumer_of(
    h: &Harness,
    stream: &str,
    group: &str,
    name: &str,
) -> Option<herald_broker::StreamConsumer> {
    h.broker
        .stream_consumers(stream, group)
        .await
        .unwrap()
        .into_iter()
        .find(|consumer| consumer.name == name)
}

async fn the_entries_of_a_consumer_whose_liveness_mark_is_gone_are_claimed_at_once(h: &Harness) {
    let (stream, group) = ("events:tasks", "notifier");
    h.broker.stream_ensure_group(stream, group).await.unwrap();
    let ids = append_entries(h, stream, 4).await;
    let zero = Duration::ZERO;
    h.broker
        .stream_consumer_heartbeat(stream, group, "lives", Duration::from_secs(60))
        .await
        .unwrap();
    h.broker
        .stream_consumer_heartbeat(stream, group, "dies", Duration::from_millis(150))
        .await
        .unwrap();
    let slow = h
        .broker
        .stream_read_group(stream, group, "lives", 1, zero)
        .await
        .unwrap();
    let held = h
        .broker
        .stream_read_group(stream, group, "dies", 3, zero)
        .await
        .unwrap();
    assert_eq!(slow.len() + held.len(), 4);
    let grace = Duration::from_millis(100);

    let early = h
        .broker
        .stream_claim_dead(stream, group, "takes-over", grace, 10)
        .await
        .unwrap();
    assert!(early.entries.is_empty(), "both marks are live");
    assert!(early.removed.is_empty());
    let dies = consumer_of(h, stream, group, "dies").await.unwrap();
    assert_eq!((dies.pending, dies.alive), (3, true));

    // The short mark expires; both consumers have been silent longer than the grace.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dies = consumer_of(h, stream, group, "dies").await.unwrap();
    assert!(!dies.alive);
    assert!(dies.idle >= grace);
    let first = h
        .broker
        .stream_claim_dead(stream, group, "takes-over", grace, 2)
        .await
        .unwrap();
    assert_eq!(
        first
            .entries
            .iter()
            .map(|e| e.id.as_str())
            .collect::<Vec<_>>(),
        [ids[1].as_str(), ids[2].as_str()],
        "at most `count`, oldest first; pending for only a moment"
    );
    assert_eq!(first.entries[0].payload, "e1");
    assert!(first.entries.iter().all(|e| e.deliveries == 2));
    assert_eq!(first.claimed_from, ["dies"]);
    let rest = h
        .broker
        .stream_claim_dead(stream, group, "takes-over", grace, 10)
        .await
        .unwrap();
    assert_eq!(rest.entries.len(), 1);
    assert_eq!(rest.entries[0].id, ids[3]);

    // The live consumer keeps its entry, however long it has been silent.
    let lives = consumer_of(h, stream, group, "lives").await.unwrap();
    assert_eq!((lives.pending, lives.alive), (1, true));
    assert!(lives.idle >= grace);
    assert_eq!(
        consumer_of(h, stream, group, "takes-over")
            .await
            .unwrap()
            .pending,
        3
    );

    // Holding nothing now, the dead consumer leaves the group.
    let last = h
        .broker
        .stream_claim_dead(stream, group, "takes-over", grace, 10)
        .await
        .unwrap();
    assert!(last.entries.is_empty());
    assert_eq!(last.removed, ["dies"]);
    assert!(consumer_of(h, stream, group, "dies").await.is_none());
    assert!(consumer_of(h, stream, group, "lives").await.is_some());
    // What was claimed is acknowledged like any entry.
    let claimed: Vec<String> = first
        .entries
        .iter()
        .chain(&rest.entries)
        .map(|e| e.id.clone())
        .collect();
    assert_eq!(
        h.broker.stream_ack(stream, group, &claimed).await.unwrap(),
        3
    );
}

async fn a_consumer_without_a_mark_is_not_dead_before_the_grace(h: &Harness) {
    let (stream, group) = ("events:tasks", "notifier");
    h.broker.stream_ensure_group(stream, group).await.unwrap();
    append_entries(h, stream, 1).await;
    // Just started (or running without liveness): no mark yet.
    h.broker
        .stream_read_group(stream, group, "fresh", 10, Duration::ZERO)
        .await
        .unwrap();

    let claim = h
        .broker
        .stream_claim_dead(stream, group, "other", Duration::from_secs(60), 10)
        .await
        .unwrap();

    assert!(claim.entries.is_empty());
    assert!(claim.removed.is_empty());
    let fresh = consumer_of(h, stream, group, "fresh").await.unwrap();
    assert_eq!((fresh.pending, fresh.alive), (1, false));
}

async fn a_consumer_that_left_is_claimed_from_after_the_grace(h: &Harness) {
    let (stream, group) = ("events:tasks", "notifier");
    h.broker.stream_ensure_group(stream, group).await.unwrap();
    let ids = append_entries(h, stream, 1).await;
    h.broker
        .stream_consumer_heartbeat(stream, group, "stops", Duration::from_secs(60))
        .await
        .unwrap();
    h.broker
        .stream_read_group(stream, group, "stops", 10, Duration::ZERO)
        .await
        .unwrap();
    h.broker
        .stream_consumer_leave(stream, group, "stops")
        .await
        .unwrap();
    assert!(!consumer_of(h, stream, group, "stops").await.unwrap().alive);

    tokio::time::sleep(Duration::from_millis(300)).await;
    let claim = h
        .broker
        .stream_claim_dead(stream, group, "stays", Duration::from_millis(100), 10)
        .await
        .unwrap();

    assert_eq!(claim.entries.len(), 1);
    assert_eq!(claim.entries[0].id, ids[0]);
}

async fn each_entry_of_a_dead_consumer_goes_to_one_of_two_racing_claimers(h: &Harness) {
    let (stream, group) = ("events:tasks", "notifier");
    h.broker.stream_ensure_group(stream, group).await.unwrap();
    let ids = append_entries(h, stream, 60).await;
    let held = h
        .broker
        .stream_read_group(stream, group, "dies", 100, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(held.len(), 60);
    let grace = Duration::from_millis(100);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let claimers = ["left", "right"].map(|name| {
        let broker = h.another_broker();
        tokio::spawn(async move {
            // Alive, so that neither takes the other for dead.
            broker
                .stream_consumer_heartbeat(stream, group, name, Duration::from_secs(60))
                .await
                .unwrap();
            let mut taken = Vec::new();
            loop {
                let claim = broker
                    .stream_claim_dead(stream, group, name, grace, 7)
                    .await
                    .unwrap();
                if claim.entries.is_empty() {
                    return taken;
                }
                taken.extend(claim.entries.into_iter().map(|e| e.id));
            }
        })
    });
    let mut taken = Vec::new();
    for claimer in claimers {
        taken.extend(claimer.await.unwrap());
    }

    taken.sort();
    let mut expected = ids;
    expected.sort();
    assert_eq!(taken, expected, "every entry claimed, none twice");
    assert!(consumer_of(h, stream, group, "dies").await.is_none());
}

async fn consumers_of_a_missing_group_are_none(h: &Harness) {
    assert!(
        h.broker
            .stream_consumers("events:nothing", "g")
            .await
            .unwrap()
            .is_empty()
    );
    h.broker.stream_append("events:some", "x").await.unwrap();
    assert!(
        h.broker
            .stream_consumers("events:some", "g")
            .await
            .unwrap()
            .is_empty()
    );
    let claim = h
        .broker
        .stream_claim_dead("events:some", "g", "c", Duration::ZERO, 10)
        .await
        .unwrap();
    assert!(claim.entries.is_empty());
}

async fn a_read_creates_a_missing_group(h: &Harness) {
    let stream = "events:fresh";
    h.broker.stream_append(stream, "first").await.unwrap();
    let entries = h
        .broker
        .stream_read_group(stream, "late", "c", 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(
        entries.len(),
        1,
        "a new group starts at the beginning of the stream"
    );
    assert_eq!(entries[0].payload, "first");
}

async fn a_blocking_read_waits_for_an_append(h: &Harness) {
    let stream = "events:blocking";
    h.broker.stream_ensure_group(stream, "g").await.unwrap();
    let writer = h.another_broker();
    let append = tokio::spawn(async move {
        // Longer than the default 500 ms Redis response time-out.
        tokio::time::sleep(Duration::from_millis(700)).await;
        writer.stream_append(stream, "late").await.unwrap()
    });
    let entries = h
        .broker
        .stream_read_group(stream, "g", "c", 10, Duration::from_secs(4))
        .await
        .unwrap();
    let id = append.await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].id, id);
}

async fn a_blocking_read_returns_nothing_when_nothing_arrives(h: &Harness) {
    let stream = "events:quiet";
    h.broker.stream_ensure_group(stream, "g").await.unwrap();
    let started = tokio::time::Instant::now();
    let entries = h
        .broker
        .stream_read_group(stream, "g", "c", 10, Duration::from_millis(100))
        .await
        .unwrap();
    assert!(entries.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(90));
}

async fn key_value_entries_are_stored_expire_and_are_deleted(h: &Harness) {
    assert_eq!(h.broker.kv_get("auth:jwks").await.unwrap(), None);
    h.broker
        .kv_set("auth:jwks", r#"{"keys":[]}"#, None)
        .await
        .unwrap();
    assert_eq!(
        h.broker.kv_get("auth:jwks").await.unwrap().as_deref(),
        Some(r#"{"keys":[]}"#)
    );
    h.broker
        .kv_set("auth:jwks", r#"{"keys":[1]}"#, None)
        .await
        .unwrap();
    assert_eq!(
        h.broker.kv_get("auth:jwks").await.unwrap().as_deref(),
        Some(r#"{"keys":[1]}"#)
    );
    assert!(h.broker.kv_delete("auth:jwks").await.unwrap());
    assert!(!h.broker.kv_delete("auth:jwks").await.unwrap());
    assert_eq!(h.broker.kv_get("auth:jwks").await.unwrap(), None);

    h.broker
        .kv_set("short", "lived", Some(Duration::from_millis(150)))
        .await
        .unwrap();
    assert_eq!(
        h.broker.kv_get("short").await.unwrap().as_deref(),
        Some("lived")
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.broker.kv_get("short").await.unwrap(), None);
}

async fn table_entries_are_listed_refreshed_expire_and_are_removed(h: &Harness) {
    assert!(h.broker.table_entries("nodes").await.unwrap().is_empty());
    let long = Duration::from_secs(60);
    h.broker.table_put("nodes", "a", "1", long).await.unwrap();
    h.broker.table_put("nodes", "b", "2", long).await.unwrap();
    h.broker.table_put("nodes", "a", "3", long).await.unwrap();
    h.broker.table_put("other", "c", "4", long).await.unwrap();
    let entries = h.broker.table_entries("nodes").await.unwrap();
    assert_eq!(
        entries.into_iter().collect::<Vec<_>>(),
        [
            ("a".to_owned(), "3".to_owned()),
            ("b".to_owned(), "2".to_owned())
        ]
    );
    h.broker.table_remove("nodes", "b").await.unwrap();
    h.broker.table_remove("nodes", "missing").await.unwrap();
    h.broker
        .table_put("nodes", "short", "5", Duration::from_millis(150))
        .await
        .unwrap();
    assert_eq!(h.broker.table_entries("nodes").await.unwrap().len(), 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let entries = h.broker.table_entries("nodes").await.unwrap();
    assert_eq!(entries.keys().collect::<Vec<_>>(), ["a"]);
    assert_eq!(h.broker.table_entries("other").await.unwrap().len(), 1);
}
