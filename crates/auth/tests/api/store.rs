//! The store suite: the same tests against Postgres (a fresh database per test) and SQLite
//! (a fresh file per test), so the embedded mode behaves exactly like the distributed one.

use std::time::Duration;

use herald_auth::{
    domain::{Username, UsernamePrefix},
    password::PasswordHash,
    store::{self, NewRefreshToken, NewUser, Replacement, Rotation, Store, StoreError},
    tokens::RefreshToken,
};
use herald_common::ids::UserId;
use time::OffsetDateTime;
use uuid::Uuid;

use herald_test_support::{Backend, TestDb};

/// A migrated store and the database that keeps it alive.
pub struct Fixture {
    pub store: Store,
    _database: TestDb,
}

async fn fixture(backend: Backend) -> Fixture {
    let database = TestDb::create(backend).await;
    let store = Store::connect(&database.url(), Duration::from_secs(5))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Fixture {
        store,
        _database: database,
    }
}

pub async fn postgres() -> Fixture {
    fixture(Backend::Postgres).await
}

pub async fn sqlite() -> Fixture {
    fixture(Backend::Sqlite).await
}

fn new_user(name: &str) -> NewUser {
    NewUser {
        id: UserId::new(),
        username: Username::parse(name).unwrap(),
        password_hash: PasswordHash::from_stored(format!(
            "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$hash-of-{name}"
        )),
        created_at: store::now(),
    }
}

fn refresh_token(
    user: UserId,
    family: Uuid,
    created_at: OffsetDateTime,
    ttl: Duration,
) -> (RefreshToken, NewRefreshToken) {
    let token = RefreshToken::generate();
    let record = NewRefreshToken {
        id: Uuid::now_v7(),
        user_id: user,
        family_id: family,
        token_hash: token.hash(),
        created_at,
        expires_at: created_at + ttl,
    };
    (token, record)
}

fn replacement(now: OffsetDateTime) -> (RefreshToken, Replacement) {
    let token = RefreshToken::generate();
    let record = Replacement {
        id: Uuid::now_v7(),
        token_hash: token.hash(),
        created_at: now,
        expires_at: now + Duration::from_secs(3600),
    };
    (token, record)
}

const HOUR: Duration = Duration::from_secs(3600);

pub async fn a_created_user_reads_back_identically(store: &Store) {
    let user = store.create_user(&new_user("Alice")).await.unwrap();

    let by_id = store.user(user.id).await.unwrap().unwrap();
    let by_name = store
        .credentials(&Username::parse("aLiCe").unwrap())
        .await
        .unwrap()
        .unwrap();

    assert_eq!(by_id, user);
    assert_eq!(by_name.user, user);
    assert_eq!(
        by_name.password_hash.as_str(),
        "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$hash-of-Alice"
    );
    assert!(store.user(UserId::new()).await.unwrap().is_none());
    assert!(
        store
            .credentials(&Username::parse("bob").unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn usernames_are_unique_ignoring_case(store: &Store) {
    store.create_user(&new_user("alice")).await.unwrap();

    let duplicate = store.create_user(&new_user("ALICE")).await;

    assert!(
        matches!(duplicate, Err(StoreError::UsernameTaken)),
        "{duplicate:?}"
    );
}

pub async fn search_matches_prefixes_in_name_order_within_the_limit(store: &Store) {
    for name in ["bob", "alice", "Alfred", "al_x", "alx", "carol"] {
        store.create_user(&new_user(name)).await.unwrap();
    }
    let names = |users: Vec<herald_auth::domain::User>| {
        users
            .into_iter()
            .map(|u| u.username.to_string())
            .collect::<Vec<_>>()
    };

    let al = store
        .search_users(&UsernamePrefix::parse("AL").unwrap(), 10)
        .await
        .unwrap();
    let al_ = store
        .search_users(&UsernamePrefix::parse("al_").unwrap(), 10)
        .await
        .unwrap();
    let two = store
        .search_users(&UsernamePrefix::parse("").unwrap(), 2)
        .await
        .unwrap();

    assert_eq!(names(al), ["al_x", "Alfred", "alice", "alx"]);
    assert_eq!(names(al_), ["al_x"]);
    assert_eq!(names(two), ["al_x", "Alfred"]);
}

pub async fn rotation_uses_up_the_token_and_continues_the_family(store: &Store) {
    let user = store.create_user(&new_user("alice")).await.unwrap();
    let now = store::now();
    let (first, record) = refresh_token(user.id, Uuid::now_v7(), now, HOUR);
    store.insert_refresh_token(&record).await.unwrap();
    let (second, next) = replacement(now);

    let rotated = store
        .rotate_refresh_token(&first.hash(), &next)
        .await
        .unwrap();
    let (_, after) = replacement(now);
    let continued = store
        .rotate_refresh_token(&second.hash(), &after)
        .await
        .unwrap();

    assert_eq!(rotated, Rotation::Rotated(user.clone()));
    assert_eq!(continued, Rotation::Rotated(user));
}

pub async fn replaying_a_rotated_token_revokes_the_family(store: &Store) {
    let user = store.create_user(&new_user("alice")).await.unwrap();
    let now = store::now();
    let (first, record) = refresh_token(user.id, Uuid::now_v7(), now, HOUR);
    store.insert_refresh_token(&record).await.unwrap();
    let (other, other_record) = refresh_token(user.id, Uuid::now_v7(), now, HOUR);
    store.insert_refresh_token(&other_record).await.unwrap();
    let (second, next) = replacement(now);
    store
        .rotate_refresh_token(&first.hash(), &next)
        .await
        .unwrap();

    let replay = store
        .rotate_refresh_token(&first.hash(), &replacement(now).1)
        .await
        .unwrap();
    let successor = store
        .rotate_refresh_token(&second.hash(), &replacement(now).1)
        .await
        .unwrap();
    let other_family = store
        .rotate_refresh_token(&other.hash(), &replacement(now).1)
        .await
        .unwrap();

    assert_eq!(replay, Rotation::Reused { user_id: user.id });
    assert_eq!(successor, Rotation::Invalid);
    assert_eq!(other_family, Rotation::Rotated(user));
}

pub async fn unknown_and_expired_tokens_do_not_rotate(store: &Store) {
    let user = store.create_user(&new_user("alice")).await.unwrap();
    let long_ago = store::now() - Duration::from_secs(7200);
    let (expired, record) = refresh_token(user.id, Uuid::now_v7(), long_ago, HOUR);
    store.insert_refresh_token(&record).await.unwrap();

    let expired = store
        .rotate_refresh_token(&expired.hash(), &replacement(store::now()).1)
        .await
        .unwrap();
    let unknown = store
        .rotate_refresh_token(
            &RefreshToken::generate().hash(),
            &replacement(store::now()).1,
        )
        .await
        .unwrap();

    assert_eq!(expired, Rotation::Invalid);
    assert_eq!(unknown, Rotation::Invalid);
}

pub async fn revoking_a_family_needs_its_owner(store: &Store) {
    let alice = store.create_user(&new_user("alice")).await.unwrap();
    let bob = store.create_user(&new_user("bob")).await.unwrap();
    let now = store::now();
    let (token, record) = refresh_token(alice.id, Uuid::now_v7(), now, HOUR);
    store.insert_refresh_token(&record).await.unwrap();

    let by_bob = store
        .revoke_family(&token.hash(), bob.id, now)
        .await
        .unwrap();
    let still_live = store
        .rotate_refresh_token(&token.hash(), &replacement(now).1)
        .await
        .unwrap();
    let by_alice = store
        .revoke_family(&token.hash(), alice.id, now)
        .await
        .unwrap();

    assert_eq!(by_bob, 0);
    assert_eq!(still_live, Rotation::Rotated(alice));
    assert!(by_alice >= 1);
}

pub async fn revoking_a_family_stops_its_live_token(store: &Store) {
    let alice = store.create_user(&new_user("alice")).await.unwrap();
    let now = store::now();
    let (first, record) = refresh_token(alice.id, Uuid::now_v7(), now, HOUR);
    store.insert_refresh_token(&record).await.unwrap();
    let (second, next) = replacement(now);
    store
        .rotate_refresh_token(&first.hash(), &next)
        .await
        .unwrap();

    // Revoking through an older token of the family reaches the live one.
    store
        .revoke_family(&first.hash(), alice.id, now)
        .await
        .unwrap();

    assert_eq!(
        store
            .rotate_refresh_token(&second.hash(), &replacement(now).1)
            .await
            .unwrap(),
        Rotation::Invalid
    );
}

pub async fn revoke_all_ends_every_session_of_one_user_only(store: &Store) {
    let alice = store.create_user(&new_user("alice")).await.unwrap();
    let bob = store.create_user(&new_user("bob")).await.unwrap();
    let now = store::now();
    let mut alice_tokens = Vec::new();
    for _ in 0..3 {
        let (token, record) = refresh_token(alice.id, Uuid::now_v7(), now, HOUR);
        store.insert_refresh_token(&record).await.unwrap();
        alice_tokens.push(token);
    }
    let (bobs, record) = refresh_token(bob.id, Uuid::now_v7(), now, HOUR);
    store.insert_refresh_token(&record).await.unwrap();

    let revoked = store.revoke_all(alice.id, now).await.unwrap();

    assert_eq!(revoked, 3);
    for token in alice_tokens {
        assert_eq!(
            store
                .rotate_refresh_token(&token.hash(), &replacement(now).1)
                .await
                .unwrap(),
            Rotation::Invalid
        );
    }
    assert_eq!(
        store
            .rotate_refresh_token(&bobs.hash(), &replacement(now).1)
            .await
            .unwrap(),
        Rotation::Rotated(bob)
    );
}

pub async fn expired_tokens_are_swept(store: &Store) {
    let alice = store.create_user(&new_user("alice")).await.unwrap();
    let now = store::now();
    let (_, old) = refresh_token(
        alice.id,
        Uuid::now_v7(),
        now - Duration::from_secs(7200),
        HOUR,
    );
    let (live, fresh) = refresh_token(alice.id, Uuid::now_v7(), now, HOUR);
    store.insert_refresh_token(&old).await.unwrap();
    store.insert_refresh_token(&fresh).await.unwrap();

    let deleted = store.delete_expired_refresh_tokens(now).await.unwrap();

    assert_eq!(deleted, 1);
    assert_eq!(
        store
            .rotate_refresh_token(&live.hash(), &replacement(now).1)
            .await
            .unwrap(),
        Rotation::Rotated(alice)
    );
}

pub async fn concurrent_rotations_of_one_token_let_exactly_one_win(store: &Store) {
    let alice = store.create_user(&new_user("alice")).await.unwrap();
    let now = store::now();
    let (token, record) = refresh_token(alice.id, Uuid::now_v7(), now, HOUR);
    store.insert_refresh_token(&record).await.unwrap();

    let attempts = (0..4).map(|_| {
        let store = store.clone();
        let hash = token.hash();
        tokio::spawn(async move {
            store
                .rotate_refresh_token(&hash, &replacement(store::now()).1)
                .await
        })
    });
    let outcomes: Vec<Rotation> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(|joined| joined.unwrap())
        .filter_map(|result| match result {
            Ok(outcome) => Some(outcome),
            // SQLite may refuse a concurrent writer outright ("database is locked"); that is
            // a refusal, never a second success.
            Err(StoreError::Database(_)) => None,
            Err(other) => panic!("{other:?}"),
        })
        .collect();

    let wins = outcomes
        .iter()
        .filter(|o| matches!(o, Rotation::Rotated(_)))
        .count();
    assert_eq!(wins, 1, "{outcomes:?}");
}

pub async fn migrations_are_idempotent(store: &Store) {
    store.migrate().await.unwrap();
    store.ping().await.unwrap();
}

/// Generates one `#[tokio::test]` per backend for each suite function.
macro_rules! store_suite {
    ($($name:ident),* $(,)?) => {
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let fixture = super::postgres().await;
                    super::$name(&fixture.store).await;
                }
            )*
        }
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let fixture = super::sqlite().await;
                    super::$name(&fixture.store).await;
                }
            )*
        }
    };
}

store_suite!(
    a_created_user_reads_back_identically,
    usernames_are_unique_ignoring_case,
    search_matches_prefixes_in_name_order_within_the_limit,
    rotation_uses_up_the_token_and_continues_the_family,
    replaying_a_rotated_token_revokes_the_family,
    unknown_and_expired_tokens_do_not_rotate,
    revoking_a_family_needs_its_owner,
    revoking_a_family_stops_its_live_token,
    revoke_all_ends_every_session_of_one_user_only,
    expired_tokens_are_swept,
    concurrent_rotations_of_one_token_let_exactly_one_win,
    migrations_are_idempotent,
);
