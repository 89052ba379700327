//! Who may do what in which channel: the channel table of design section 3, applied with a
//! `match` on [`ChannelKind`] (never string matching), with per-namespace options from
//! [`ChannelSettings`].
//!
//! | channel | subscribe | publish | history, presence |
//! |---|---|---|---|
//! | `chat:{room}` | any signed-in user | subscribers (when the namespace allows it) | any signed-in user |
//! | `tasks` | any signed-in user | server only (103) | any signed-in user |
//! | `notifications#{user}` | server-side only: 105 for its user, 103 for others | server only (103) | its user only (103) |
//! | `public:{name}` | any signed-in user | server only (103) | any signed-in user |
//! | anything else | 102 unknown channel | 102 | 102 |
//!
//! An anonymous [`Viewer`] (a connection without a token) may subscribe to and read the
//! history of the namespaces configured with `anonymous = true` (`public` in the design;
//! never `notifications`), with presence, join/leave and publishing forced off; anything
//! else is 103, and presence is 103 even where it is kept.

use herald_broker::HistoryPolicy;
use herald_common::channel::{ChannelKind, ChannelName};
use herald_common::ids::UserId;
use herald_common::protocol::ErrorCode;

use crate::settings::{ChannelSettings, NamespaceSettings};

/// What a namespace offers, resolved once from the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelOptions {
    /// History kept by the broker (and so recovery).
    pub history: HistoryPolicy,
    /// Subscribers are listed in presence.
    pub presence: bool,
    /// Joins and leaves are announced.
    pub join_leave: bool,
    /// Subscribers may publish.
    pub publish: bool,
}

impl From<&NamespaceSettings> for ChannelOptions {
    fn from(settings: &NamespaceSettings) -> Self {
        Self {
            history: settings.history(),
            presence: settings.presence,
            join_leave: settings.join_leave,
            publish: settings.publish,
        }
    }
}

impl ChannelOptions {
    /// What an anonymous reader gets of these options: the history, nothing else.
    fn for_anonymous(self) -> Self {
        Self {
            history: self.history,
            presence: false,
            join_leave: false,
            publish: false,
        }
    }
}

/// Who asks: a signed-in user, or an anonymous connection (no token).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// The user of a verified token.
    User(UserId),
    /// A connection without a token.
    Anonymous,
}

/// A namespace's options and whether anonymous connections may read it.
#[derive(Debug, Clone, Copy)]
struct Namespace {
    options: ChannelOptions,
    anonymous: bool,
}

impl From<&NamespaceSettings> for Namespace {
    fn from(settings: &NamespaceSettings) -> Self {
        Self {
            options: settings.into(),
            anonymous: settings.anonymous,
        }
    }
}

/// The channel table.
#[derive(Debug, Clone)]
pub struct ChannelPolicy {
    chat: Namespace,
    tasks: Namespace,
    notifications: ChannelOptions,
    public: Namespace,
}

impl ChannelPolicy {
    /// The table for these settings.
    pub fn new(settings: &ChannelSettings) -> Self {
        Self {
            chat: (&settings.chat).into(),
            tasks: (&settings.tasks).into(),
            // A user's feed is never anonymous, whatever its settings say.
            notifications: (&settings.notifications).into(),
            public: (&settings.public).into(),
        }
    }

    /// The options of a channel, or 102 when it is not in the table.
    pub fn options(&self, channel: &ChannelName) -> Result<ChannelOptions, ErrorCode> {
        match channel.kind() {
            ChannelKind::Chat { .. } => Ok(self.chat.options),
            ChannelKind::Tasks => Ok(self.tasks.options),
            ChannelKind::Notifications { .. } => Ok(self.notifications),
            ChannelKind::Public { .. } => Ok(self.public.options),
            ChannelKind::Other => Err(ErrorCode::UnknownChannel),
        }
    }

    /// Whether any namespace lets anonymous connections in: only then does a connect
    /// without a token succeed.
    pub fn allows_anonymous(&self) -> bool {
        self.chat.anonymous || self.tasks.anonymous || self.public.anonymous
    }

    /// May `viewer` subscribe to `channel` from the client? A user's own notifications
    /// channel is already subscribed server-side (105); anyone else's is refused (103).
    pub fn subscribe(
        &self,
        channel: &ChannelName,
        viewer: Viewer,
    ) -> Result<ChannelOptions, ErrorCode> {
        let Viewer::User(user) = viewer else {
            return self.anonymous(channel);
        };
        match channel.kind() {
            ChannelKind::Notifications { user: owner } if owner == user => {
                Err(ErrorCode::AlreadySubscribed)
            }
            ChannelKind::Notifications { .. } => Err(ErrorCode::PermissionDenied),
            _ => self.options(channel),
        }
    }

    /// May `viewer` read `channel`'s history (and, for a signed-in user, its presence and
    /// the simple notifications endpoint)?
    pub fn read(&self, channel: &ChannelName, viewer: Viewer) -> Result<ChannelOptions, ErrorCode> {
        let Viewer::User(user) = viewer else {
            return self.anonymous(channel);
        };
        match channel.kind() {
            ChannelKind::Notifications { user: owner } if owner != user => {
                Err(ErrorCode::PermissionDenied)
            }
            _ => self.options(channel),
        }
    }

    /// May `viewer` see who is in `channel`? As [`Self::read`], except that anonymous
    /// connections never see presence (103).
    pub fn presence(
        &self,
        channel: &ChannelName,
        viewer: Viewer,
    ) -> Result<ChannelOptions, ErrorCode> {
        match viewer {
            Viewer::User(_) => self.read(channel, viewer),
            Viewer::Anonymous => Err(ErrorCode::PermissionDenied),
        }
    }

    /// May a subscriber publish to `channel`? (Being subscribed is checked by the caller.)
    /// Anonymous connections never publish (103).
    pub fn publish(
        &self,
        channel: &ChannelName,
        viewer: Viewer,
    ) -> Result<ChannelOptions, ErrorCode> {
        if viewer == Viewer::Anonymous {
            return Err(ErrorCode::PermissionDenied);
        }
        let options = self.options(channel)?;
        if options.publish {
            Ok(options)
        } else {
            Err(ErrorCode::PermissionDenied)
        }
    }

    /// What an anonymous connection gets of `channel`: the namespace's options without
    /// presence, join/leave or publishing when the namespace allows anonymous readers,
    /// else 103 (102 outside the table).
    fn anonymous(&self, channel: &ChannelName) -> Result<ChannelOptions, ErrorCode> {
        let namespace = match channel.kind() {
            ChannelKind::Chat { .. } => self.chat,
            ChannelKind::Tasks => self.tasks,
            ChannelKind::Public { .. } => self.public,
            ChannelKind::Notifications { .. } => return Err(ErrorCode::PermissionDenied),
            ChannelKind::Other => return Err(ErrorCode::UnknownChannel),
        };
        if namespace.anonymous {
            Ok(namespace.options.for_anonymous())
        } else {
            Err(ErrorCode::PermissionDenied)
        }
    }

    /// The server-side subscriptions of every connection of `user`.
    pub fn server_side(&self, user: &UserId) -> (ChannelName, ChannelOptions) {
        (ChannelName::notifications(user), self.notifications)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn policy() -> ChannelPolicy {
        ChannelPolicy::new(&ChannelSettings::default())
    }

    #[test]
    fn chat_rooms_are_open_to_any_user_with_presence_and_publishing() {
        let alice = UserId::new();
        let options = policy()
            .subscribe(&ChannelName::chat("lobby").unwrap(), Viewer::User(alice))
            .unwrap();
        assert!(options.presence && options.join_leave && options.publish);
        assert_eq!(options.history.size, 300);
    }

    #[test]
    fn the_task_board_is_read_only_for_clients() {
        let alice = UserId::new();
        assert!(
            policy()
                .subscribe(&ChannelName::tasks(), Viewer::User(alice))
                .is_ok()
        );
        assert_eq!(
            policy().publish(&ChannelName::tasks(), Viewer::User(alice)),
            Err(ErrorCode::PermissionDenied)
        );
    }

    #[test]
    fn notification_feeds_are_server_side_and_private() {
        let alice = UserId::new();
        let bob = UserId::new();
        let own = ChannelName::notifications(&alice);
        let other = ChannelName::notifications(&bob);
        assert_eq!(
            policy().subscribe(&own, Viewer::User(alice)),
            Err(ErrorCode::AlreadySubscribed)
        );
        assert_eq!(
            policy().subscribe(&other, Viewer::User(alice)),
            Err(ErrorCode::PermissionDenied)
        );
        assert!(policy().read(&own, Viewer::User(alice)).is_ok());
        assert_eq!(
            policy().read(&other, Viewer::User(alice)),
            Err(ErrorCode::PermissionDenied)
        );
        assert_eq!(
            policy().publish(&own, Viewer::User(alice)),
            Err(ErrorCode::PermissionDenied)
        );
        assert_eq!(policy().server_side(&alice).0, own);
    }

    #[test]
    fn channels_outside_the_table_are_unknown() {
        let news = ChannelName::parse("news").unwrap();
        assert_eq!(
            policy().subscribe(&news, Viewer::User(UserId::new())),
            Err(ErrorCode::UnknownChannel)
        );
        assert_eq!(
            policy().publish(&news, Viewer::User(UserId::new())),
            Err(ErrorCode::UnknownChannel)
        );
    }

    fn anonymous_public() -> ChannelPolicy {
        let mut settings = ChannelSettings::default();
        settings.public.anonymous = true;
        ChannelPolicy::new(&settings)
    }

    #[test]
    fn public_feeds_are_read_only_for_signed_in_users() {
        let alice = UserId::new();
        let scores = ChannelName::public("scores").unwrap();
        let options = policy().subscribe(&scores, Viewer::User(alice)).unwrap();
        assert_eq!(
            options.history,
            HistoryPolicy::new(100, std::time::Duration::from_secs(3600))
        );
        assert!(!options.presence && !options.join_leave && !options.publish);
        assert!(policy().read(&scores, Viewer::User(alice)).is_ok());
        assert_eq!(
            policy().publish(&scores, Viewer::User(alice)),
            Err(ErrorCode::PermissionDenied)
        );
    }

    #[test]
    fn anonymous_viewers_are_refused_unless_the_namespace_allows_them() {
        let scores = ChannelName::public("scores").unwrap();
        assert!(!policy().allows_anonymous());
        assert_eq!(
            policy().subscribe(&scores, Viewer::Anonymous),
            Err(ErrorCode::PermissionDenied)
        );
        assert_eq!(
            policy().read(&scores, Viewer::Anonymous),
            Err(ErrorCode::PermissionDenied)
        );

        let open = anonymous_public();
        assert!(open.allows_anonymous());
        let options = open.subscribe(&scores, Viewer::Anonymous).unwrap();
        assert!(options.history.is_enabled());
        assert!(open.read(&scores, Viewer::Anonymous).is_ok());
        for other in [
            ChannelName::chat("lobby").unwrap(),
            ChannelName::tasks(),
            ChannelName::notifications(&UserId::new()),
        ] {
            assert_eq!(
                open.subscribe(&other, Viewer::Anonymous),
                Err(ErrorCode::PermissionDenied),
                "{other}"
            );
        }
        assert_eq!(
            open.subscribe(&ChannelName::parse("news").unwrap(), Viewer::Anonymous),
            Err(ErrorCode::UnknownChannel)
        );
    }

    #[test]
    fn anonymous_viewers_never_publish_nor_see_presence() {
        let mut settings = ChannelSettings::default();
        settings.chat.anonymous = true;
        let policy = ChannelPolicy::new(&settings);
        let lobby = ChannelName::chat("lobby").unwrap();
        let options = policy.subscribe(&lobby, Viewer::Anonymous).unwrap();
        assert!(!options.presence && !options.join_leave && !options.publish);
        assert_eq!(
            policy.publish(&lobby, Viewer::Anonymous),
            Err(ErrorCode::PermissionDenied)
        );
        assert_eq!(
            policy.presence(&lobby, Viewer::Anonymous),
            Err(ErrorCode::PermissionDenied)
        );
        assert!(policy.presence(&lobby, Viewer::User(UserId::new())).is_ok());
    }

    #[test]
    fn a_users_feed_is_never_anonymous() {
        let mut settings = ChannelSettings::default();
        settings.notifications.anonymous = true;
        let policy = ChannelPolicy::new(&settings);
        assert!(!policy.allows_anonymous());
        assert_eq!(
            policy.read(
                &ChannelName::notifications(&UserId::new()),
                Viewer::Anonymous
            ),
            Err(ErrorCode::PermissionDenied)
        );
    }
}
