//! Client commands decoded from literal JSON written from `client.proto` and the protocol
//! docs, and encoded back.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use herald_common::channel::{ChannelName, ChannelNameError};
use herald_common::protocol::{Command, Method, StreamPosition, decode_commands};
use support::assert_json;

#[test]
fn connect_with_token_data_and_server_side_subs_to_recover() {
    let fixture = r#"{"id":1,"connect":{"token":"eyJhbGciOiJFZERTQSJ9.e30.sig","name":"js","version":"1.2.3","data":{"client":"web"},"subs":{"notifications#0191e0c4-7d2a-7c3e-9b1a-2f4d5e6a7b8c":{"recover":true,"offset":5,"epoch":"x7"}}}}"#;
    let command = Command::decode(fixture).unwrap();
    assert_eq!(command.id, 1);
    let Method::Connect(connect) = &command.method else {
        panic!("expected connect, got {command:?}");
    };
    assert_eq!(connect.token, "eyJhbGciOiJFZERTQSJ9.e30.sig");
    assert_eq!(connect.name, "js");
    assert_eq!(connect.version, "1.2.3");
    assert_eq!(connect.data.as_ref().unwrap().get(), r#"{"client":"web"}"#);
    let sub = &connect.subs["notifications#0191e0c4-7d2a-7c3e-9b1a-2f4d5e6a7b8c"];
    assert_eq!(
        sub.recover_since(),
        Some(StreamPosition {
            offset: 5,
            epoch: "x7".to_owned()
        })
    );
    assert_json(&command.encode().unwrap(), fixture);
}

#[test]
fn connect_with_nothing_but_a_token() {
    let command = Command::decode(r#"{"id":1,"connect":{"token":"t"}}"#).unwrap();
    let Method::Connect(connect) = &command.method else {
        panic!("expected connect");
    };
    assert!(connect.subs.is_empty() && connect.data.is_none() && connect.name.is_empty());
    assert_json(
        &command.encode().unwrap(),
        r#"{"id":1,"connect":{"token":"t"}}"#,
    );
    // An anonymous connect is an empty object and stays one.
    let anonymous = Command::decode(r#"{"id":1,"connect":{}}"#).unwrap();
    assert!(matches!(anonymous.method, Method::Connect(_)));
    assert_json(&anonymous.encode().unwrap(), r#"{"id":1,"connect":{}}"#);
}

#[test]
fn subscribe_with_recovery_and_the_sdk_feature_flag() {
    let fixture = r#"{"id":2,"subscribe":{"channel":"chat:42","token":"sub-jwt","recover":true,"epoch":"x7","offset":14,"join_leave":true,"flag":1}}"#;
    let command = Command::decode(fixture).unwrap();
    let Method::Subscribe(subscribe) = &command.method else {
        panic!("expected subscribe");
    };
    assert_eq!(subscribe.channel, "chat:42");
    assert!(subscribe.recover && subscribe.join_leave);
    assert_eq!(subscribe.flag, 1);
    assert_eq!(subscribe.recover_since().unwrap().offset, 14);
    assert_eq!(command.method.channel(), Some("chat:42"));
    assert_json(&command.encode().unwrap(), fixture);
}

#[test]
fn subscribe_without_recover_has_no_recovery_position() {
    let command =
        Command::decode(r#"{"id":2,"subscribe":{"channel":"tasks","offset":3}}"#).unwrap();
    let Method::Subscribe(subscribe) = &command.method else {
        panic!("expected subscribe");
    };
    assert_eq!(subscribe.recover_since(), None);
}

#[test]
fn a_bad_channel_name_still_decodes_so_the_reply_can_carry_error_107() {
    let command = Command::decode(r#"{"id":9,"subscribe":{"channel":"chat:a b"}}"#).unwrap();
    assert_eq!(command.id, 9);
    let channel = command.method.channel().unwrap();
    assert_eq!(
        ChannelName::parse(channel),
        Err(ChannelNameError::BadCharacter)
    );
}

#[test]
fn every_other_command_of_the_protocol() {
    let fixtures = [
        (
            r#"{"id":3,"unsubscribe":{"channel":"chat:42"}}"#,
            "unsubscribe",
        ),
        (
            r#"{"id":4,"publish":{"channel":"chat:42","data":{"text":"hi"}}}"#,
            "publish",
        ),
        (r#"{"id":5,"presence":{"channel":"chat:42"}}"#, "presence"),
        (
            r#"{"id":6,"presence_stats":{"channel":"chat:42"}}"#,
            "presence_stats",
        ),
        (
            r#"{"id":7,"history":{"channel":"chat:42","limit":10,"since":{"offset":3,"epoch":"x7"},"reverse":true}}"#,
            "history",
        ),
        (r#"{"id":8,"ping":{}}"#, "ping"),
        (r#"{"send":{"data":{"typing":true}}}"#, "send"),
        (r#"{"id":10,"rpc":{"method":"getX","data":{"q":1}}}"#, "rpc"),
        (r#"{"id":11,"refresh":{"token":"new-jwt"}}"#, "refresh"),
        (
            r#"{"id":12,"sub_refresh":{"channel":"chat:42","token":"new-sub-jwt"}}"#,
            "sub_refresh",
        ),
    ];
    for (fixture, name) in fixtures {
        let command = Command::decode(fixture).unwrap();
        assert_eq!(command.method.name(), name, "{fixture}");
        assert!(!command.is_pong());
        assert_json(&command.encode().unwrap(), fixture);
    }
}

#[test]
fn typed_requests_carry_their_fields() {
    let Method::History(history) = Command::decode(
        r#"{"id":7,"history":{"channel":"chat:42","limit":10,"since":{"offset":3,"epoch":"x7"}}}"#,
    )
    .unwrap()
    .method
    else {
        panic!("expected history");
    };
    assert_eq!(history.limit, 10);
    assert!(!history.reverse);
    assert_eq!(history.since.unwrap().epoch, "x7");

    let Method::Publish(publish) =
        Command::decode(r#"{"id":4,"publish":{"channel":"chat:42","data":{"text": "h\u00e9"}}}"#)
            .unwrap()
            .method
    else {
        panic!("expected publish");
    };
    // The payload is kept byte for byte, never re-encoded.
    assert_eq!(publish.data.unwrap().get(), r#"{"text": "h\u00e9"}"#);

    let send = Command::decode(r#"{"send":{"data":{"typing":true}}}"#).unwrap();
    assert_eq!(send.id, 0);
    let Method::Send(send) = send.method else {
        panic!("expected send");
    };
    assert_eq!(send.data.unwrap().get(), r#"{"typing":true}"#);

    let Method::Rpc(rpc) = Command::decode(r#"{"id":10,"rpc":{"method":"getX"}}"#)
        .unwrap()
        .method
    else {
        panic!("expected rpc");
    };
    assert_eq!(rpc.method, "getX");
    assert!(rpc.data.is_none());
}

#[test]
fn an_empty_command_is_a_pong() {
    let pong = Command::decode("{}").unwrap();
    assert!(pong.is_pong());
    assert_eq!(pong.method.name(), "unknown");
    assert_eq!(Command::pong().encode().unwrap(), "{}");
}

#[test]
fn a_command_with_no_known_method_is_distinguishable_from_a_pong() {
    let only_id = Command::decode(r#"{"id":5}"#).unwrap();
    assert!(matches!(only_id.method, Method::Unknown));
    assert!(!only_id.is_pong());

    let future_method = Command::decode(r#"{"id":6,"teleport":{"to":"mars"}}"#).unwrap();
    assert_eq!(future_method.id, 6);
    assert!(matches!(future_method.method, Method::Unknown));
    assert!(!future_method.is_pong());

    // A known method without an id is not a pong either (the gateway refuses it).
    let no_id = Command::decode(r#"{"subscribe":{"channel":"tasks"}}"#).unwrap();
    assert_eq!(no_id.id, 0);
    assert!(!no_id.is_pong());
}

#[test]
fn unknown_fields_are_ignored_at_every_level() {
    let command = Command::decode(
        r#"{"id":2,"future":[1,2],"subscribe":{"channel":"chat:42","tf":{"op":"and"},"delta":"fossil","type":0,"phase":0,"cursor":"","limit":5,"asc":true,"whatever":{"x":null}}}"#,
    )
    .unwrap();
    let Method::Subscribe(subscribe) = &command.method else {
        panic!("expected subscribe");
    };
    assert_eq!(subscribe.channel, "chat:42");
    assert_eq!(subscribe.delta, "fossil");
    let connect = Command::decode(
        r#"{"id":1,"connect":{"token":"t","headers":{"x-a":"b"},"flag":3,"profile":"board","dict":"abc"}}"#,
    )
    .unwrap();
    let Method::Connect(connect) = connect.method else {
        panic!("expected connect");
    };
    assert_eq!(connect.headers["x-a"], "b");
    assert_eq!(connect.flag, 3);
}

#[test]
fn the_first_non_null_request_in_schema_order_wins() {
    // `connect` comes before `subscribe` in client.proto, whatever the JSON order.
    let both = Command::decode(r#"{"id":1,"subscribe":{"channel":"tasks"},"connect":{}}"#).unwrap();
    assert_eq!(both.method.name(), "connect");
    let null_first =
        Command::decode(r#"{"id":1,"connect":null,"subscribe":{"channel":"tasks"}}"#).unwrap();
    assert_eq!(null_first.method.name(), "subscribe");
    let all_null = Command::decode(r#"{"id":1,"connect":null,"publish":null}"#).unwrap();
    assert!(matches!(all_null.method, Method::Unknown));
}

#[test]
fn malformed_commands_are_errors() {
    for bad in [
        "",
        "not json",
        "[]",
        "[1]",
        "42",
        "null",
        r#"{"id":-1}"#,
        r#"{"id":4294967296}"#,
        r#"{"id":"1"}"#,
        r#"{"id":1,"subscribe":{"channel":5}}"#,
        r#"{"id":1,"subscribe":"tasks"}"#,
        r#"{"id":1,"history":{"channel":"c","since":{"offset":-1}}}"#,
        r#"{"id":1,"publish":{"channel":"c","data":{"unterminated":}}}"#,
        r#"{"id":1}{"id":2}"#,
    ] {
        assert!(Command::decode(bad).is_err(), "{bad:?} should not decode");
    }
}

#[test]
fn a_batched_frame_decodes_to_its_commands_in_order() {
    let frame = "{\"id\":1,\"subscribe\":{\"channel\":\"ch1\"}}\n{\"id\":2,\"subscribe\":{\"channel\":\"ch2\"}}\n{}\n";
    let commands: Vec<Command> = decode_commands(frame).collect::<Result<_, _>>().unwrap();
    assert_eq!(commands.len(), 3);
    assert_eq!(commands[0].method.channel(), Some("ch1"));
    assert_eq!(commands[1].method.channel(), Some("ch2"));
    assert!(commands[2].is_pong());

    // One bad message is reported where it is; the others still decode.
    let results: Vec<_> = decode_commands("{\"id\":1,\"ping\":{}}\nnope\n{}").collect();
    assert!(results[0].is_ok());
    assert!(results[1].is_err());
    assert!(results[2].as_ref().unwrap().is_pong());
}
