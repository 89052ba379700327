//! The consumer in this process: what each event publishes, redelivery, bad payloads and
//! reclaiming what a dead consumer left pending.

use std::collections::HashSet;
use std::time::Duration;

use herald_broker::Broker;
use herald_common::channel::ChannelName;
use herald_common::events::{TASK_EVENTS_STREAM, TaskEventKind};

use herald_notifier::Settings;

use crate::helpers::{
    EVENTUALLY, PrefixGuard, RunningNotifier, actor, append, distinct_event_ids, event, eventually,
    history, notifier_settings, pending, random_prefix, redis_broker, test_redis_url,
    wait_for_history,
};

#[tokio::test]
async fn a_new_task_is_published_to_the_board_with_its_text() {
    let broker = Broker::memory();
    let _notifier = RunningNotifier::start(&notifier_settings(None, "herald:"), broker.clone());
    let alice = actor("alice");
    let created = event(TaskEventKind::Created, "Write docs", &alice, None);

    append(&broker, &created).await;

    let board = wait_for_history(&broker, &ChannelName::tasks(), 1).await;
    let notification = &board[0].notification;
    assert_eq!(notification.text, "New task created: Write docs");
    assert_eq!(notification.kind, TaskEventKind::Created);
    assert_eq!(notification.task, created.task);
    assert_eq!(notification.actor, alice);
    assert_eq!(board[0].tags["event_id"], created.id.to_string());
    assert_eq!(
        board[0].tags["traceparent"],
        created.trace.traceparent.clone().unwrap()
    );
}

#[tokio::test]
async fn an_assigned_task_is_also_published_to_the_assignee_feed() {
    let broker = Broker::memory();
    let _notifier = RunningNotifier::start(&notifier_settings(None, "herald:"), broker.clone());
    let alice = actor("alice");
    let bob = actor("bob");

    append(
        &broker,
        &event(TaskEventKind::Created, "Review", &alice, Some(bob.id)),
    )
    .await;
    append(
        &broker,
        &event(TaskEventKind::Assigned, "Deploy", &alice, Some(bob.id)),
    )
    .await;

    let feed = wait_for_history(&broker, &ChannelName::notifications(&bob.id), 2).await;
    let texts: Vec<&str> = feed.iter().map(|p| p.notification.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "alice assigned you \"Review\"",
            "alice assigned you \"Deploy\""
        ]
    );
    assert!(
        feed.iter()
            .all(|p| p.notification.kind == TaskEventKind::Assigned)
    );
    let board = wait_for_history(&broker, &ChannelName::tasks(), 2).await;
    assert_eq!(board[1].notification.text, "Task assigned: Deploy");
}

#[tokio::test]
async fn updates_and_deletions_notify_only_the_board() {
    let broker = Broker::memory();
    let _notifier = RunningNotifier::start(&notifier_settings(None, "herald:"), broker.clone());
    let alice = actor("alice");
    let bob = actor("bob");

    append(
        &broker,
        &event(TaskEventKind::Updated, "Edited", &alice, Some(bob.id)),
    )
    .await;
    append(
        &broker,
        &event(TaskEventKind::Deleted, "Gone", &alice, Some(bob.id)),
    )
    .await;
    append(
        &broker,
        &event(TaskEventKind::Created, "Marker", &alice, None),
    )
    .await;

    let board = wait_for_history(&broker, &ChannelName::tasks(), 3).await;
    let texts: Vec<&str> = board.iter().map(|p| p.notification.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "Task updated: Edited",
            "Task deleted: Gone",
            "New task created: Marker"
        ]
    );
    assert!(
        history(&broker, &ChannelName::notifications(&bob.id))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_redelivered_event_publishes_nothing_new() {
    let broker = Broker::memory();
    let _notifier = RunningNotifier::start(&notifier_settings(None, "herald:"), broker.clone());
    let alice = actor("alice");
    let bob = actor("bob");
    let once = event(TaskEventKind::Created, "Once", &alice, Some(bob.id));

    // The relay may append an event twice (it died between appending and marking it sent).
    append(&broker, &once).await;
    append(&broker, &once).await;
    append(
        &broker,
        &event(TaskEventKind::Created, "Marker", &alice, None),
    )
    .await;

    let board = wait_for_history(&broker, &ChannelName::tasks(), 2).await;
    let texts: Vec<&str> = board.iter().map(|p| p.notification.text.as_str()).collect();
    assert_eq!(
        texts,
        ["New task created: Once", "New task created: Marker"]
    );
    assert_eq!(
        history(&broker, &ChannelName::notifications(&bob.id))
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_payload_that_is_not_an_event_is_skipped_and_later_events_flow() {
    let broker = Broker::memory();
    let _notifier = RunningNotifier::start(&notifier_settings(None, "herald:"), broker.clone());

    broker
        .stream_append(TASK_EVENTS_STREAM, "{\"not\": \"an event\"}")
        .await
        .unwrap();
    broker
        .stream_append(TASK_EVENTS_STREAM, "garbage")
        .await
        .unwrap();
    append(
        &broker,
        &event(TaskEventKind::Created, "After", &actor("alice"), None),
    )
    .await;

    let board = wait_for_history(&broker, &ChannelName::tasks(), 1).await;
    assert_eq!(board.len(), 1);
    assert_eq!(board[0].notification.text, "New task created: After");
}

#[tokio::test]
async fn self_assignment_is_notified_unless_turned_off() {
    let alice = actor("alice");
    for (notify_self, expected) in [(true, 1), (false, 0)] {
        let broker = Broker::memory();
        let mut settings = notifier_settings(None, "herald:");
        settings.notifier.notify_self_assignment = notify_self;
        let _notifier = RunningNotifier::start(&settings, broker.clone());
        append(
            &broker,
            &event(TaskEventKind::Created, "Mine", &alice, Some(alice.id)),
        )
        .await;
        wait_for_history(&broker, &ChannelName::tasks(), 1).await;
        // The board and the feed are published before the event is acknowledged, so once the
        // board has it the feed has it too.
        let feed = history(&broker, &ChannelName::notifications(&alice.id)).await;
        assert_eq!(
            feed.len(),
            expected,
            "notify_self_assignment = {notify_self}"
        );
    }
}

#[tokio::test]
async fn events_are_acknowledged_after_publishing_on_redis() {
    let url = test_redis_url();
    let prefix = random_prefix();
    let _guard = PrefixGuard {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let broker = redis_broker(&url, &prefix);
    let settings = notifier_settings(Some(&url), &prefix);
    let _notifier = RunningNotifier::start(&settings, redis_broker(&url, &prefix));
    let alice = actor("alice");

    for n in 0..20 {
        append(
            &broker,
            &event(TaskEventKind::Created, &format!("task {n}"), &alice, None),
        )
        .await;
    }

    let board = wait_for_history(&broker, &ChannelName::tasks(), 20).await;
    distinct_event_ids(&board);
    let acked = eventually(EVENTUALLY, || async {
        (pending(&url, &prefix, "notifier").await == 0).then_some(())
    })
    .await;
    assert!(acked.is_some(), "every event is acknowledged");
}

#[tokio::test]
async fn events_a_dead_consumer_left_pending_are_reclaimed_and_published_once() {
    let url = test_redis_url();
    let prefix = random_prefix();
    let _guard = PrefixGuard {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let broker = redis_broker(&url, &prefix);
    let alice = actor("alice");
    let bob = actor("bob");
    broker
        .stream_ensure_group(TASK_EVENTS_STREAM, "notifier")
        .await
        .unwrap();
    for n in 0..5 {
        append(
            &broker,
            &event(
                TaskEventKind::Created,
                &format!("orphan {n}"),
                &alice,
                Some(bob.id),
            ),
        )
        .await;
    }
    // A consumer reads the events and dies before acknowledging them.
    let taken = broker
        .stream_read_group(TASK_EVENTS_STREAM, "notifier", "ghost", 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(taken.len(), 5);
    assert_eq!(pending(&url, &prefix, "notifier").await, 5);

    let _notifier = RunningNotifier::start(
        &notifier_settings(Some(&url), &prefix),
        redis_broker(&url, &prefix),
    );

    let board = wait_for_history(&broker, &ChannelName::tasks(), 5).await;
    distinct_event_ids(&board);
    let feed = wait_for_history(&broker, &ChannelName::notifications(&bob.id), 5).await;
    distinct_event_ids(&feed);
    let acked = eventually(EVENTUALLY, || async {
        (pending(&url, &prefix, "notifier").await == 0).then_some(())
    })
    .await;
    assert!(acked.is_some(), "the reclaimed events are acknowledged");
}

#[tokio::test]
async fn a_live_consumer_keeps_its_slow_events_while_a_dead_ones_are_taken_at_once() {
    let url = test_redis_url();
    let prefix = random_prefix();
    let _guard = PrefixGuard {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let broker = redis_broker(&url, &prefix);
    let alice = actor("alice");
    let group = "notifier";
    broker
        .stream_ensure_group(TASK_EVENTS_STREAM, group)
        .await
        .unwrap();
    // "busy" is alive (its mark is fresh) but slow with two events; then "ghost", without
    // a mark, takes three and is gone. "busy" reads first, so whenever "ghost" has been
    // silent long enough to be dead, "busy" has been silent at least as long.
    for n in 0..2 {
        append(
            &broker,
            &event(TaskEventKind::Created, &format!("slow {n}"), &alice, None),
        )
        .await;
    }
    broker
        .stream_consumer_heartbeat(TASK_EVENTS_STREAM, group, "busy", Duration::from_secs(120))
        .await
        .unwrap();
    let slow = broker
        .stream_read_group(TASK_EVENTS_STREAM, group, "busy", 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(slow.len(), 2);
    for n in 0..3 {
        append(
            &broker,
            &event(TaskEventKind::Created, &format!("orphan {n}"), &alice, None),
        )
        .await;
    }
    let orphans = broker
        .stream_read_group(TASK_EVENTS_STREAM, group, "ghost", 10, Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(orphans.len(), 3);

    let mut settings = notifier_settings(Some(&url), &prefix);
    settings.notifier.claim_min_idle = Settings::default().notifier.claim_min_idle;
    settings.notifier.heartbeat_interval = Duration::from_millis(200);
    settings.notifier.heartbeat_ttl = Duration::from_millis(500);
    let notifier = RunningNotifier::start(&settings, redis_broker(&url, &prefix));

    let board = wait_for_history(&broker, &ChannelName::tasks(), 3).await;
    let texts: Vec<&str> = board.iter().map(|p| p.notification.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "New task created: orphan 0",
            "New task created: orphan 1",
            "New task created: orphan 2"
        ]
    );
    let ghost_gone = eventually(EVENTUALLY, || async {
        let consumers = broker
            .stream_consumers(TASK_EVENTS_STREAM, group)
            .await
            .ok()?;
        (!consumers.iter().any(|consumer| consumer.name == "ghost")).then_some(consumers)
    })
    .await
    .expect("the dead consumer leaves the group once it holds nothing");
    let busy = ghost_gone
        .iter()
        .find(|consumer| consumer.name == "busy")
        .expect("the live consumer stays");
    assert_eq!(busy.pending, 2, "the live consumer keeps its events");
    assert!(busy.idle >= settings.notifier.heartbeat_ttl);
    let me = ghost_gone
        .iter()
        .find(|consumer| consumer.name == notifier.notifier.consumer())
        .expect("the notifier is in the group");
    assert!(me.alive, "the notifier keeps its own mark");
    assert_eq!(history(&broker, &ChannelName::tasks()).await.len(), 3);
}

#[tokio::test]
async fn a_stopped_notifier_returns_and_a_new_one_picks_up_from_the_group() {
    let broker = Broker::memory();
    let settings = notifier_settings(None, "herald:");
    let first = RunningNotifier::start(&settings, broker.clone());
    let alice = actor("alice");
    append(&broker, &event(TaskEventKind::Created, "one", &alice, None)).await;
    wait_for_history(&broker, &ChannelName::tasks(), 1).await;

    tokio::time::timeout(Duration::from_secs(5), first.stop())
        .await
        .expect("the notifier stops promptly");
    append(&broker, &event(TaskEventKind::Created, "two", &alice, None)).await;
    let _second = RunningNotifier::start(&settings, broker.clone());

    let board = wait_for_history(&broker, &ChannelName::tasks(), 2).await;
    let texts: Vec<&str> = board.iter().map(|p| p.notification.text.as_str()).collect();
    assert_eq!(texts, ["New task created: one", "New task created: two"]);
}

#[tokio::test]
async fn a_graceful_stop_finishes_the_event_in_hand_and_leaves_the_rest_pending() {
    let url = test_redis_url();
    let prefix = random_prefix();
    let _guard = PrefixGuard {
        url: url.clone(),
        prefix: prefix.clone(),
    };
    let broker = redis_broker(&url, &prefix);
    let alice = actor("alice");
    let notifier = RunningNotifier::start(
        &notifier_settings(Some(&url), &prefix),
        redis_broker(&url, &prefix),
    );
    for n in 0..300 {
        append(
            &broker,
            &event(TaskEventKind::Created, &format!("task {n}"), &alice, None),
        )
        .await;
    }
    let started = eventually(EVENTUALLY, || async {
        (!history(&broker, &ChannelName::tasks()).await.is_empty()).then_some(())
    })
    .await;
    assert!(started.is_some());

    notifier.stop().await;

    // Every published event was acknowledged, and no pending event was published: nothing
    // was left half done.
    let published: HashSet<String> = history(&broker, &ChannelName::tasks())
        .await
        .iter()
        .map(|p| p.tags["event_id"].clone())
        .collect();
    let pending_events = pending_event_ids(&url, &prefix).await;
    assert!(
        published.is_disjoint(&pending_events),
        "an event was published but not acknowledged"
    );
}

/// The event ids of the entries the group has delivered but not acknowledged.
async fn pending_event_ids(url: &str, prefix: &str) -> HashSet<String> {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let stream = format!("{prefix}{TASK_EVENTS_STREAM}");
    let pending: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(&stream)
        .arg("notifier")
        .arg("-")
        .arg("+")
        .arg(10_000)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut ids = HashSet::new();
    for (entry, _, _, _) in pending {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(&stream)
            .arg(&entry)
            .arg(&entry)
            .query_async(&mut conn)
            .await
            .unwrap();
        for found in reply.ids {
            let payload: String = found.get("p").unwrap();
            let event: herald_common::events::DomainEvent = serde_json::from_str(&payload).unwrap();
            ids.insert(event.id.to_string());
        }
    }
    ids
}
