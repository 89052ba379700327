//! Replies and pushes encoded by Herald compared with literal JSON written from
//! `client.proto` and the protocol docs, decoded back, and batched into frames.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::borrow::Cow;
use std::collections::BTreeMap;

use herald_common::channel::ChannelName;
use herald_common::protocol::{
    ClientInfo, ConnectResult, Disconnect, DisconnectCode, ErrorCode, FrameBuilder, HistoryResult,
    Message, PING, PingResult, PresenceResult, PresenceStatsResult, Publication, PublishResult,
    Push, Refresh, RefreshResult, Reply, ReplyBody, RpcResult, ServerMessage, SubRefreshResult,
    Subscribe, SubscribeResult, Unsubscribe, UnsubscribeCode, UnsubscribeResult,
    decode_server_messages, encode_join_push, encode_leave_push, encode_publication_push,
    join_messages,
};
use support::{assert_json, raw};

const USER: &str = "0191e0c4-7d2a-7c3e-9b1a-2f4d5e6a7b8c";
const CLIENT: &str = "0191e0c4-7d2a-7c3e-9b1a-00000000c1c1";

fn chat() -> ChannelName {
    ChannelName::chat("42").unwrap()
}

fn info() -> ClientInfo {
    ClientInfo {
        user: USER.to_owned(),
        client: CLIENT.to_owned(),
        conn_info: Some(raw(r#"{"name":"alice"}"#)),
        chan_info: None,
    }
}

fn publication(offset: u64, text: &str) -> Publication {
    Publication {
        offset,
        data: raw(&format!(r#"{{"text":"{text}"}}"#)),
        info: None,
        tags: BTreeMap::new(),
    }
}

/// Encodes `reply`, compares it with `fixture`, and decodes the fixture back to the same
/// encoding.
#[track_caller]
fn reply_matches(reply: Reply, fixture: &str) {
    let encoded = reply.encode().unwrap();
    assert_json(&encoded, fixture);
    let ServerMessage::Reply(decoded) = ServerMessage::decode(fixture).unwrap() else {
        panic!("{fixture} decoded to something other than a reply");
    };
    assert_eq!(decoded.id, reply.id);
    assert_eq!(decoded.body.field(), reply.body.field());
    assert_json(&decoded.encode().unwrap(), fixture);
}

/// Same for pushes.
#[track_caller]
fn push_matches(push: Push, fixture: &str) {
    let encoded = push.encode().unwrap();
    assert_json(&encoded, fixture);
    assert_json(&ServerMessage::Push(push).encode().unwrap(), fixture);
    let ServerMessage::Push(decoded) = ServerMessage::decode(fixture).unwrap() else {
        panic!("{fixture} decoded to something other than a push");
    };
    assert_json(&decoded.encode().unwrap(), fixture);
}

#[test]
fn connect_result_with_heartbeat_expiry_and_server_side_subs() {
    let feed = ChannelName::parse(format!("notifications#{USER}")).unwrap();
    let result = ConnectResult {
        client: CLIENT.to_owned(),
        version: "0.1.0".to_owned(),
        expires: true,
        ttl: 600,
        data: Some(raw(r#"{"motd":"hi"}"#)),
        subs: BTreeMap::from([(
            feed,
            SubscribeResult {
                recoverable: true,
                positioned: true,
                epoch: "e1".to_owned(),
                offset: 3,
                ..SubscribeResult::default()
            },
        )]),
        ping: 25,
        pong: true,
        ..ConnectResult::default()
    };
    reply_matches(
        Reply::new(1, result),
        &format!(
            r#"{{"id":1,"connect":{{"client":"{CLIENT}","version":"0.1.0","expires":true,"ttl":600,"data":{{"motd":"hi"}},"subs":{{"notifications#{USER}":{{"recoverable":true,"epoch":"e1","offset":3,"positioned":true}}}},"ping":25,"pong":true}}}}"#
        ),
    );
}

#[test]
fn zero_false_and_empty_fields_are_omitted() {
    reply_matches(
        Reply::new(1, ConnectResult::default()),
        r#"{"id":1,"connect":{}}"#,
    );
    reply_matches(
        Reply::new(2, SubscribeResult::default()),
        r#"{"id":2,"subscribe":{}}"#,
    );
    reply_matches(
        Reply::new(3, RefreshResult::default()),
        r#"{"id":3,"refresh":{}}"#,
    );
    reply_matches(
        Reply::new(4, SubRefreshResult::default()),
        r#"{"id":4,"sub_refresh":{}}"#,
    );
    reply_matches(Reply::new(5, RpcResult::default()), r#"{"id":5,"rpc":{}}"#);
    // Exact text too: nothing but the set fields, no nulls.
    let encoded = Reply::new(
        7,
        SubscribeResult {
            recoverable: true,
            ..SubscribeResult::default()
        },
    )
    .encode()
    .unwrap();
    assert_eq!(encoded, r#"{"id":7,"subscribe":{"recoverable":true}}"#);
}

#[test]
fn subscribe_result_with_recovered_publications() {
    let result = SubscribeResult {
        recoverable: true,
        positioned: true,
        epoch: "x7".to_owned(),
        offset: 17,
        recovered: true,
        was_recovering: true,
        publications: vec![
            publication(15, "hi"),
            publication(16, "there"),
            Publication {
                info: Some(info()),
                tags: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
                ..publication(17, "again")
            },
        ],
        ..SubscribeResult::default()
    };
    reply_matches(
        Reply::new(2, result),
        &format!(
            r#"{{"id":2,"subscribe":{{"recoverable":true,"positioned":true,"epoch":"x7","offset":17,"recovered":true,"was_recovering":true,
               "publications":[{{"data":{{"text":"hi"}},"offset":15}},{{"data":{{"text":"there"}},"offset":16}},
               {{"data":{{"text":"again"}},"offset":17,"info":{{"user":"{USER}","client":"{CLIENT}","conn_info":{{"name":"alice"}}}},"tags":{{"k":"v"}}}}]}}}}"#
        ),
    );
}

#[test]
fn empty_results_of_the_protocol() {
    reply_matches(
        Reply::new(3, PublishResult::default()),
        r#"{"id":3,"publish":{}}"#,
    );
    reply_matches(
        Reply::new(4, UnsubscribeResult::default()),
        r#"{"id":4,"unsubscribe":{}}"#,
    );
    reply_matches(
        Reply::new(8, PingResult::default()),
        r#"{"id":8,"ping":{}}"#,
    );
}

#[test]
fn presence_presence_stats_and_history_results() {
    reply_matches(
        Reply::new(
            5,
            PresenceResult {
                presence: BTreeMap::from([(CLIENT.to_owned(), info())]),
            },
        ),
        &format!(
            r#"{{"id":5,"presence":{{"presence":{{"{CLIENT}":{{"user":"{USER}","client":"{CLIENT}","conn_info":{{"name":"alice"}}}}}}}}}}"#
        ),
    );
    reply_matches(
        Reply::new(
            6,
            PresenceStatsResult {
                num_clients: 3,
                num_users: 2,
            },
        ),
        r#"{"id":6,"presence_stats":{"num_clients":3,"num_users":2}}"#,
    );
    reply_matches(
        Reply::new(
            7,
            HistoryResult {
                publications: vec![publication(16, "a"), publication(17, "b")],
                epoch: "x7".to_owned(),
                offset: 17,
            },
        ),
        r#"{"id":7,"history":{"publications":[{"data":{"text":"a"},"offset":16},{"data":{"text":"b"},"offset":17}],"epoch":"x7","offset":17}}"#,
    );
}

#[test]
fn fields_the_reference_encoder_always_writes_are_written_when_empty() {
    reply_matches(
        Reply::new(5, PresenceResult::default()),
        r#"{"id":5,"presence":{"presence":{}}}"#,
    );
    reply_matches(
        Reply::new(6, PresenceStatsResult::default()),
        r#"{"id":6,"presence_stats":{"num_clients":0,"num_users":0}}"#,
    );
    reply_matches(
        Reply::new(7, HistoryResult::default()),
        r#"{"id":7,"history":{"publications":[],"epoch":"","offset":0}}"#,
    );
    // Presence entries always carry user and client, even when empty.
    let anonymous = ClientInfo {
        user: String::new(),
        client: CLIENT.to_owned(),
        conn_info: None,
        chan_info: None,
    };
    assert_json(
        &serde_json::to_string(&anonymous).unwrap(),
        &format!(r#"{{"user":"","client":"{CLIENT}"}}"#),
    );
}

#[test]
fn rpc_refresh_and_sub_refresh_results() {
    reply_matches(
        Reply::new(
            4,
            RpcResult {
                data: Some(raw(r#"{"x":1}"#)),
            },
        ),
        r#"{"id":4,"rpc":{"data":{"x":1}}}"#,
    );
    reply_matches(
        Reply::new(
            8,
            RefreshResult {
                client: CLIENT.to_owned(),
                version: "0.1.0".to_owned(),
                expires: true,
                ttl: 600,
            },
        ),
        &format!(
            r#"{{"id":8,"refresh":{{"client":"{CLIENT}","version":"0.1.0","expires":true,"ttl":600}}}}"#
        ),
    );
    reply_matches(
        Reply::new(
            9,
            SubRefreshResult {
                expires: true,
                ttl: 600,
            },
        ),
        r#"{"id":9,"sub_refresh":{"expires":true,"ttl":600}}"#,
    );
}

#[test]
fn error_replies_carry_code_message_and_temporary_only_when_true() {
    reply_matches(
        Reply::error(1, ErrorCode::Internal),
        r#"{"id":1,"error":{"code":100,"message":"internal server error","temporary":true}}"#,
    );
    reply_matches(
        Reply::error(2, ErrorCode::TokenExpired),
        r#"{"id":2,"error":{"code":109,"message":"token expired"}}"#,
    );
    reply_matches(
        Reply::new(3, ErrorCode::AlreadySubscribed),
        r#"{"id":3,"error":{"code":105,"message":"already subscribed"}}"#,
    );
    let ServerMessage::Reply(reply) =
        ServerMessage::decode(r#"{"id":4,"error":{"code":107,"message":"bad request"}}"#).unwrap()
    else {
        panic!("expected a reply");
    };
    let ReplyBody::Error(error) = reply.body else {
        panic!("expected an error");
    };
    assert_eq!(error.error_code(), Some(ErrorCode::BadRequest));
}

#[test]
fn publication_push_encoded_once_matches_the_docs_example() {
    let publication = Publication {
        offset: 18,
        data: raw(r#"{"text":"hi"}"#),
        info: Some(ClientInfo {
            user: "42".to_owned(),
            client: "c1".to_owned(),
            conn_info: None,
            chan_info: None,
        }),
        tags: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
    };
    let fixture = r#"{"push":{"channel":"chat:42","pub":{"data":{"text":"hi"},"offset":18,"info":{"user":"42","client":"c1"},"tags":{"k":"v"}}}}"#;
    let shared = encode_publication_push(&chat(), &publication).unwrap();
    assert_json(&shared, fixture);
    // The borrowed fast path and the owned push write the same bytes.
    let owned = Push::Publication {
        channel: chat(),
        publication: publication.clone(),
    };
    assert_eq!(owned.encode().unwrap(), shared);
    push_matches(owned, fixture);
}

#[test]
fn publication_payload_bytes_are_written_verbatim() {
    let payload = r#"{"text": "h\u00e9llo",  "n": 1.50}"#;
    let publication = Publication {
        offset: 1,
        data: raw(payload),
        info: None,
        tags: BTreeMap::new(),
    };
    let encoded = encode_publication_push(&chat(), &publication).unwrap();
    assert!(encoded.contains(payload), "{encoded}");
}

#[test]
fn join_and_leave_pushes() {
    let join = format!(
        r#"{{"push":{{"channel":"chat:42","join":{{"info":{{"user":"{USER}","client":"{CLIENT}","conn_info":{{"name":"alice"}}}}}}}}}}"#
    );
    assert_json(&encode_join_push(&chat(), &info()).unwrap(), &join);
    push_matches(
        Push::Join {
            channel: chat(),
            info: info(),
        },
        &join,
    );
    let leave = join.replace("\"join\"", "\"leave\"");
    assert_json(&encode_leave_push(&chat(), &info()).unwrap(), &leave);
    push_matches(
        Push::Leave {
            channel: chat(),
            info: info(),
        },
        &leave,
    );
}

#[test]
fn unsubscribe_and_server_side_subscribe_pushes() {
    push_matches(
        Push::Unsubscribe {
            channel: chat(),
            unsubscribe: UnsubscribeCode::Server.into(),
        },
        r#"{"push":{"channel":"chat:42","unsubscribe":{"code":2000,"reason":"server unsubscribe"}}}"#,
    );
    push_matches(
        Push::Unsubscribe {
            channel: chat(),
            unsubscribe: UnsubscribeCode::InsufficientState.into(),
        },
        r#"{"push":{"channel":"chat:42","unsubscribe":{"code":2500,"reason":"insufficient state"}}}"#,
    );
    let feed = ChannelName::parse(format!("notifications#{USER}")).unwrap();
    push_matches(
        Push::Subscribe {
            channel: feed,
            subscribe: Subscribe {
                recoverable: true,
                epoch: "e".to_owned(),
                ..Subscribe::default()
            },
        },
        &format!(
            r#"{{"push":{{"channel":"notifications#{USER}","subscribe":{{"recoverable":true,"epoch":"e"}}}}}}"#
        ),
    );
}

#[test]
fn connection_level_pushes_have_no_channel() {
    push_matches(
        Push::Message(Message {
            data: raw(r#"{"alert":"maintenance"}"#),
        }),
        r#"{"push":{"message":{"data":{"alert":"maintenance"}}}}"#,
    );
    push_matches(
        Push::Disconnect(DisconnectCode::Shutdown.to_disconnect()),
        r#"{"push":{"disconnect":{"code":3001,"reason":"shutdown","reconnect":true}}}"#,
    );
    push_matches(
        Push::Disconnect(DisconnectCode::InvalidToken.into()),
        r#"{"push":{"disconnect":{"code":3500,"reason":"invalid token"}}}"#,
    );
    push_matches(
        Push::Connect(ConnectResult {
            client: CLIENT.to_owned(),
            ping: 25,
            ..ConnectResult::default()
        }),
        &format!(r#"{{"push":{{"connect":{{"client":"{CLIENT}","ping":25}}}}}}"#),
    );
    push_matches(
        Push::Refresh(Refresh {
            expires: true,
            ttl: 600,
        }),
        r#"{"push":{"refresh":{"expires":true,"ttl":600}}}"#,
    );
}

#[test]
fn pushes_decode_with_unknown_fields_ignored() {
    let ServerMessage::Push(push) = ServerMessage::decode(
        r#"{"push":{"id":0,"channel":"chat:42","pub":{"data":{"text":"hi"},"offset":18,"time":1700000000000,"delta":false,"key":""},"future":1},"also":"ignored"}"#,
    )
    .unwrap() else {
        panic!("expected a push");
    };
    let Push::Publication {
        channel,
        publication,
    } = &push
    else {
        panic!("expected a publication");
    };
    assert_eq!(channel, &chat());
    assert_eq!(publication.offset, 18);
    assert_eq!(publication.data.get(), r#"{"text":"hi"}"#);
    assert_eq!(push.channel(), Some(&chat()));

    let ServerMessage::Push(Push::Unsubscribe { unsubscribe, .. }) = ServerMessage::decode(
        r#"{"push":{"channel":"chat:42","unsubscribe":{"code":2501,"reason":"subscription expired","type":1}}}"#,
    )
    .unwrap() else {
        panic!("expected an unsubscribe push");
    };
    assert_eq!(
        unsubscribe,
        Unsubscribe {
            code: 2501,
            reason: Cow::Borrowed("subscription expired")
        }
    );
}

#[test]
fn malformed_pushes_are_errors() {
    for bad in [
        r#"{"push":{"pub":{"data":{}}}}"#,
        r#"{"push":{"channel":"bad channel","pub":{"data":{}}}}"#,
        r#"{"push":{"channel":"chat:42"}}"#,
        r#"{"push":{"channel":"chat:42","pub":{"offset":1}}}"#,
        r#"{"id":3}"#,
        r#"[]"#,
        r#"{"push":[]}"#,
    ] {
        assert!(
            ServerMessage::decode(bad).is_err(),
            "{bad} should not decode"
        );
    }
}

#[test]
fn the_empty_message_is_a_ping() {
    assert!(matches!(
        ServerMessage::decode(PING).unwrap(),
        ServerMessage::Ping
    ));
    assert_eq!(ServerMessage::Ping.encode().unwrap(), "{}");
    assert_eq!(PING, "{}");
}

#[test]
fn a_frame_mixes_replies_pushes_and_pings_joined_by_newlines() {
    let messages = [
        Reply::new(1, PublishResult::default()).encode().unwrap(),
        encode_publication_push(&chat(), &publication(5, "hi")).unwrap(),
        PING.to_owned(),
        Reply::error(2, ErrorCode::PermissionDenied)
            .encode()
            .unwrap(),
    ];
    let frame = join_messages(&messages);
    assert_eq!(frame.matches('\n').count(), 3);
    assert!(!frame.ends_with('\n'));

    let mut builder = FrameBuilder::new();
    for message in &messages {
        builder.push(message);
    }
    assert_eq!(builder.as_str(), frame);
    assert_eq!(builder.message_count(), 4);

    let decoded: Vec<ServerMessage> = decode_server_messages(&frame)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(decoded.len(), 4);
    assert!(matches!(
        &decoded[0],
        ServerMessage::Reply(Reply { id: 1, .. })
    ));
    assert!(matches!(
        &decoded[1],
        ServerMessage::Push(Push::Publication { .. })
    ));
    assert!(matches!(&decoded[2], ServerMessage::Ping));
    assert!(matches!(
        &decoded[3],
        ServerMessage::Reply(Reply {
            id: 2,
            body: ReplyBody::Error(_)
        })
    ));
    for (message, decoded) in messages.iter().zip(&decoded) {
        assert_json(&decoded.encode().unwrap(), message);
    }
}

#[test]
fn custom_disconnect_advice_for_the_server_api() {
    let advice = Disconnect::custom(4501, "banned").unwrap();
    push_matches(
        Push::Disconnect(advice),
        r#"{"push":{"disconnect":{"code":4501,"reason":"banned"}}}"#,
    );
}
