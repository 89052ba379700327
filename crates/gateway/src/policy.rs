//! Who may do what in which channel: the channel table of design section 3, applied with a
//! `match` on [`ChannelKind`] (never string matching), with per-namespace options from
//! [`ChannelSettings`].
//!
//! | channel | subscribe | publish | history, presence |
//! |---|---|---|---|
//! | `chat:{room}` | any signed-in user | subscribers (when the namespace allows it) | any signed-in user |
//! | `tasks` | any signed-in user | server only (103) | any signed-in user |
//! | `notifications#{user}` | server-side only: 105 for its user, 103 for others | server only (103) | its user only (103) |
//! | anything else | 102 unknown channel | 102 | 102 |

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

/// The channel table.
#[derive(Debug, Clone)]
pub struct ChannelPolicy {
    chat: ChannelOptions,
    tasks: ChannelOptions,
    notifications: ChannelOptions,
}

impl ChannelPolicy {
    /// The table for these settings.
    pub fn new(settings: &ChannelSettings) -> Self {
        Self {
            chat: (&settings.chat).into(),
            tasks: (&settings.tasks).into(),
            notifications: (&settings.notifications).into(),
        }
    }

    /// The options of a channel, or 102 when it is not in the table.
    pub fn options(&self, channel: &ChannelName) -> Result<ChannelOptions, ErrorCode> {
        match channel.kind() {
            ChannelKind::Chat { .. } => Ok(self.chat),
            ChannelKind::Tasks => Ok(self.tasks),
            ChannelKind::Notifications { .. } => Ok(self.notifications),
            ChannelKind::Other => Err(ErrorCode::UnknownChannel),
        }
    }

    /// May `user` subscribe to `channel` from the client? A user's own notifications
    /// channel is already subscribed server-side (105); anyone else's is refused (103).
    pub fn subscribe(
        &self,
        channel: &ChannelName,
        user: &UserId,
    ) -> Result<ChannelOptions, ErrorCode> {
        match channel.kind() {
            ChannelKind::Chat { .. } => Ok(self.chat),
            ChannelKind::Tasks => Ok(self.tasks),
            ChannelKind::Notifications { user: owner } if owner == *user => {
                Err(ErrorCode::AlreadySubscribed)
            }
            ChannelKind::Notifications { .. } => Err(ErrorCode::PermissionDenied),
            ChannelKind::Other => Err(ErrorCode::UnknownChannel),
        }
    }

    /// May `user` read `channel` (history, presence, the simple notifications endpoint)?
    pub fn read(&self, channel: &ChannelName, user: &UserId) -> Result<ChannelOptions, ErrorCode> {
        match channel.kind() {
            ChannelKind::Chat { .. } => Ok(self.chat),
            ChannelKind::Tasks => Ok(self.tasks),
            ChannelKind::Notifications { user: owner } if owner == *user => Ok(self.notifications),
            ChannelKind::Notifications { .. } => Err(ErrorCode::PermissionDenied),
            ChannelKind::Other => Err(ErrorCode::UnknownChannel),
        }
    }

    /// May a subscriber publish to `channel`? (Being subscribed is checked by the caller.)
    pub fn publish(&self, channel: &ChannelName) -> Result<ChannelOptions, ErrorCode> {
        let options = self.options(channel)?;
        if options.publish {
            Ok(options)
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
            .subscribe(&ChannelName::chat("lobby").unwrap(), &alice)
            .unwrap();
        assert!(options.presence && options.join_leave && options.publish);
        assert_eq!(options.history.size, 300);
    }

    #[test]
    fn the_task_board_is_read_only_for_clients() {
        let alice = UserId::new();
        assert!(policy().subscribe(&ChannelName::tasks(), &alice).is_ok());
        assert_eq!(
            policy().publish(&ChannelName::tasks()),
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
            policy().subscribe(&own, &alice),
            Err(ErrorCode::AlreadySubscribed)
        );
        assert_eq!(
            policy().subscribe(&other, &alice),
            Err(ErrorCode::PermissionDenied)
        );
        assert!(policy().read(&own, &alice).is_ok());
        assert_eq!(
            policy().read(&other, &alice),
            Err(ErrorCode::PermissionDenied)
        );
        assert_eq!(policy().publish(&own), Err(ErrorCode::PermissionDenied));
        assert_eq!(policy().server_side(&alice).0, own);
    }

    #[test]
    fn channels_outside_the_table_are_unknown() {
        let news = ChannelName::parse("news").unwrap();
        assert_eq!(
            policy().subscribe(&news, &UserId::new()),
            Err(ErrorCode::UnknownChannel)
        );
        assert_eq!(policy().publish(&news), Err(ErrorCode::UnknownChannel));
    }
}
