//! The nickname: the one the user chose, shown at once, and the one the
//! server confirmed, which wins when a choice is refused.

use super::{Effect, Effects, State};
use crate::protocol::{ClientFrame, Nickname};

#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// The nickname the user chose, shown at once, before the server agrees.
    pub nickname: Nickname,
    /// The nickname the server last confirmed for this connection.
    pub(super) confirmed: Nickname,
    /// Nickname requests sent and not yet answered by a rename or an error.
    pub(super) awaiting_rename: u32,
}

impl Identity {
    /// A welcome says the server calls this connection `confirmed`; if it
    /// `resumed` the person the page was, their nickname is adopted unless
    /// the user chose another since. Returns the nickname to ask for again
    /// (a new identity starts as the server's default).
    pub(super) fn welcomed(&mut self, confirmed: Nickname, resumed: bool) -> Option<String> {
        let renaming = self.nickname != self.confirmed;
        self.confirmed = confirmed;
        if resumed && !renaming {
            self.nickname = self.confirmed.clone();
        }
        let resend = self.nickname != self.confirmed;
        self.awaiting_rename = u32::from(resend);
        resend.then(|| self.nickname.as_str().to_owned())
    }

    /// The server now calls this connection `nickname`.
    pub(super) fn confirm(&mut self, nickname: &str) {
        let confirmed = Nickname::parse(nickname).unwrap_or_default();
        if self.confirmed == confirmed {
            return;
        }
        self.confirmed = confirmed;
        if self.confirmed == self.nickname {
            self.awaiting_rename = 0;
        } else {
            self.answered();
        }
    }

    /// A nickname request was answered (refused, or overtaken): once none
    /// is in flight, the page shows what the server says.
    pub(super) fn answered(&mut self) {
        self.awaiting_rename = self.awaiting_rename.saturating_sub(1);
        if self.awaiting_rename == 0 {
            self.nickname = self.confirmed.clone();
        }
    }
}

impl State {
    /// The user asks for `nickname`: shown at once, asked of the server now
    /// or after the next welcome.
    pub(super) fn set_nickname(&mut self, nickname: Nickname, fx: &mut Effects) {
        if self.notice.is_some() {
            *self.notice = None;
        }
        if nickname == self.identity.nickname {
            return;
        }
        let identity = &mut *self.identity;
        identity.nickname = nickname;
        let settled = identity.awaiting_rename == 0 && identity.confirmed == identity.nickname;
        if self.connection.status == super::ConnectionStatus::Online && !settled {
            identity.awaiting_rename += 1;
            fx.push(Effect::Send(ClientFrame::Nickname(
                identity.nickname.as_str().to_owned(),
            )));
        }
    }
}

#[cfg(test)]
mod tests {
    use leptos::prelude::Owner;

    use crate::chat::test_env::*;
    use crate::protocol::{ClientFrame, ErrorCode};

    #[test]
    fn a_nickname_shows_at_once_and_is_confirmed_by_presence() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            chat.set_nickname("  alice ");
            assert_eq!(chat.nickname().as_str(), "alice");
            assert_eq!(env.take_sent(), [ClientFrame::Nickname("alice".into())]);
            chat.receive(renamed(1, "Anonymous", "alice", 2));
            assert_eq!(chat.nickname().as_str(), "alice");
            assert_eq!(names(&chat), ["alice", "bob"]);

            // Taken: back to the confirmed one, with the reason.
            chat.set_nickname("Bob");
            assert_eq!(chat.nickname().as_str(), "Bob");
            chat.receive(error(ErrorCode::NicknameTaken, None));
            assert_eq!(chat.nickname().as_str(), "alice");
            assert_eq!(chat.notice().as_deref(), Some("nickname_taken"));
        });
    }

    #[test]
    fn a_refusal_does_not_undo_a_later_choice_still_in_flight() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            chat.set_nickname("bob");
            chat.set_nickname("carol");
            chat.receive(error(ErrorCode::NicknameTaken, None));
            assert_eq!(chat.nickname().as_str(), "carol");
            chat.receive(renamed(1, "Anonymous", "carol", 2));
            assert_eq!(chat.nickname().as_str(), "carol");
            // Settled: the next refusal reverts at once.
            chat.set_nickname("bob");
            chat.receive(error(ErrorCode::NicknameTaken, None));
            assert_eq!(chat.nickname().as_str(), "carol");
        });
    }

    #[test]
    fn an_invalid_nickname_is_refused_before_sending() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            assert!(!chat.set_nickname("   "));
            assert_eq!(chat.notice().as_deref(), Some("nickname must not be blank"));
            assert_eq!(chat.nickname().as_str(), "Anonymous");
            assert_eq!(env.take_sent(), []);
        });
    }

    #[test]
    fn a_rename_asked_for_before_the_welcome_wins_over_the_resumed_nickname() {
        Owner::new().with(|| {
            let (chat, env) = first_chat(empty_page(), Some("token-4"));
            chat.connecting();
            chat.set_nickname("carol");
            chat.receive(welcome(4, "alice", vec![person(4, "alice")]));
            assert_eq!(chat.nickname().as_str(), "carol");
            assert_eq!(
                env.take_sent(),
                [
                    resume(Some("token-4"), Some(0)),
                    ClientFrame::Nickname("carol".into())
                ]
            );
        });
    }
}
