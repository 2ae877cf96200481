//! The connection: connecting, online, offline; who this page is to the
//! server (its id, and the resume token that makes it the same person after
//! a drop or a reload); what a welcome sets going again.

use super::{Effect, Effects, State};
use crate::protocol::{ClientFrame, Nickname, Resume, Welcome};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConnectionStatus {
    #[default]
    Connecting,
    Online,
    Offline,
}

impl ConnectionStatus {
    /// Stable machine-readable form, used in `data-*` attributes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Online => "online",
            Self::Offline => "offline",
        }
    }

    /// What the user reads.
    pub fn label(self) -> &'static str {
        match self {
            Self::Connecting => "Connecting…",
            Self::Online => "Online",
            Self::Offline => "Offline",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Connection {
    pub status: ConnectionStatus,
    /// This connection's id, once welcomed.
    pub me: Option<u64>,
    /// The resume token from the last welcome: who this page was.
    pub(super) token: Option<String>,
}

impl State {
    /// The first frame on a new connection: who this page was and what it
    /// has, so the server sends only what it missed.
    pub fn resume(&self) -> ClientFrame {
        ClientFrame::Resume(Resume {
            token: self.connection.token.clone(),
            after: self.timeline.last_id(),
            room: Some(self.rooms.room.to_string()),
        })
    }

    pub(super) fn connecting(&mut self, fx: &mut Effects) {
        self.connection.status = ConnectionStatus::Connecting;
        fx.push(Effect::Send(self.resume()));
    }

    /// The connection is gone: what others are doing is unknown until the
    /// next welcome. If another tab took this page's identity over, the next
    /// connection starts as someone new instead of taking it back.
    pub(super) fn disconnected(&mut self, taken_over: bool, fx: &mut Effects) {
        if taken_over {
            self.connection.token = None;
            fx.push(Effect::StoreToken(None));
        }
        self.connection.status = ConnectionStatus::Offline;
        self.people.clear();
        self.typing.clear();
        self.identity.awaiting_rename = 0;
        // An answer to a request on the old connection will not come.
        self.timeline.loading = false;
    }

    /// The server welcomed this connection, into a room it resumed or
    /// joined: who is here, and who this page now is.
    pub(super) fn welcomed(&mut self, welcome: Welcome, fx: &mut Effects) {
        // A welcome also answers a join on an open connection.
        let reconnected = !self.is_online();
        let previous = self.connection.me.replace(welcome.id);
        self.people.set(welcome.online, welcome.people);
        self.typing.clear();
        self.connection.status = ConnectionStatus::Online;
        // The server knew the token and kept the id (a reloaded page knows
        // no id yet): the same person again, under the nickname it had,
        // which the page adopts unless the user has asked for another one
        // since. After a restart the server may keep the token but not the
        // person: then the page asks for its nickname again.
        let resumed = self.connection.token.as_deref() == Some(welcome.token.as_str())
            && previous.is_none_or(|id| id == welcome.id);
        if !resumed {
            fx.push(Effect::StoreToken(Some(welcome.token.clone())));
            self.connection.token = Some(welcome.token);
        }
        let confirmed = Nickname::parse(&welcome.nickname).unwrap_or_default();
        if let Some(nickname) = self.identity.welcomed(confirmed, resumed) {
            fx.push(Effect::Send(ClientFrame::Nickname(nickname)));
        }
        if reconnected {
            self.resend_pending(fx);
        }
        self.ask_for_joined_page(fx);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use leptos::prelude::Owner;

    use crate::chat::{test_env::*, Chat, ConnectionStatus, Env};
    use crate::protocol::{ClientFrame, Presence, ServerFrame, Welcome};

    #[test]
    fn the_page_is_online_once_welcomed() {
        Owner::new().with(|| {
            let env = Arc::new(TestEnv::default());
            let chat = Chat::new(Some(env.clone() as Arc<dyn Env>));
            assert_eq!(chat.status(), ConnectionStatus::Connecting);
            assert!(chat.send("early"), "taken, to wait for the welcome");
            assert_eq!(env.take_sent(), [], "nothing is sent before the welcome");
            chat.receive(welcome(1, "Anonymous", vec![person(1, "Anonymous")]));
            assert_eq!(chat.status(), ConnectionStatus::Online);
            assert_eq!(chat.me(), Some(1));
            assert_eq!(chat.people(|p| p.online), 1);
            assert_eq!(
                env.take_sent(),
                [message_frame("early", "c-1")],
                "no nickname frame for Anonymous; the waiting message"
            );
            assert_eq!(
                lines(&chat),
                ["Anonymous: early [pending]"],
                "no line for joining oneself"
            );
        });
    }

    #[test]
    fn a_reconnect_sends_the_chosen_nickname_after_the_welcome_and_pending_messages() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            chat.set_nickname("alice");
            chat.send("are you there?");
            chat.disconnected(false);
            assert_eq!(chat.status(), ConnectionStatus::Offline);
            assert!(people(&chat).is_empty());
            env.take_sent();

            chat.connecting();
            assert_eq!(env.take_sent(), [resume(Some("token-1"), None)]);
            chat.receive(welcome(8, "Anonymous", vec![person(8, "Anonymous")]));
            assert_eq!(
                env.take_sent(),
                [
                    ClientFrame::Nickname("alice".into()),
                    message_frame("are you there?", "c-1"),
                ]
            );
            assert_eq!(chat.nickname().as_str(), "alice");
            // The server may fold the rename into this connection's join.
            chat.receive(ServerFrame::Presence(Presence {
                joined: vec![person(8, "alice")],
                ..presence(1)
            }));
            assert_eq!(names(&chat), ["alice"]);
            assert!(lines(&chat).iter().all(|l| !l.contains("joined")));
        });
    }

    #[test]
    fn the_server_rendering_has_no_connection_and_sends_nothing() {
        Owner::new().with(|| {
            let chat = Chat::new(None);
            assert!(!chat.send("hello"));
            chat.draft_changed("hello");
            assert!(chat.set_nickname("alice"));
            assert!(lines(&chat).is_empty());
        });
    }

    #[test]
    fn each_connection_starts_with_a_resume_frame_of_the_token_and_last_id() {
        Owner::new().with(|| {
            let (chat, env) = first_chat(empty_page(), None);
            chat.connecting();
            assert_eq!(env.take_sent(), [resume(None, Some(0))]);
            chat.receive(welcome(1, "Anonymous", vec![person(1, "Anonymous")]));
            assert_eq!(*env.stored.lock().unwrap(), Some("token-1".to_owned()));
            chat.receive(ServerFrame::Message(message_with_id(7, 2, "hi")));
            chat.send("mine");
            chat.receive(ack("c-1", 8));
            chat.disconnected(false);
            env.take_sent();
            chat.connecting();
            assert_eq!(env.take_sent(), [resume(Some("token-1"), Some(8))]);
        });
    }

    #[test]
    fn a_reload_adopts_the_nickname_the_token_had() {
        Owner::new().with(|| {
            let (chat, env) = first_chat(empty_page(), Some("token-4"));
            chat.connecting();
            chat.receive(welcome(4, "alice", vec![person(4, "alice")]));
            assert_eq!(chat.nickname().as_str(), "alice");
            assert_eq!(
                env.take_sent(),
                [resume(Some("token-4"), Some(0))],
                "no rename back to Anonymous"
            );
            assert_eq!(*env.stored.lock().unwrap(), None, "the same token, kept");
        });
    }

    #[test]
    fn after_a_restart_that_kept_the_token_but_not_the_person_the_nickname_is_asked_again() {
        Owner::new().with(|| {
            let (chat, env) = first_chat(empty_page(), Some("token-4"));
            chat.connecting();
            chat.receive(welcome(4, "alice", vec![person(4, "alice")]));
            chat.disconnected(false);
            chat.connecting();
            env.take_sent();
            // A new process: another id, and no nickname kept for the token.
            chat.receive(ServerFrame::Welcome(Welcome {
                room: "general".into(),
                id: 1,
                nickname: "Anonymous".into(),
                online: 1,
                people: vec![person(1, "Anonymous")],
                token: "token-4".into(),
            }));
            assert_eq!(chat.nickname().as_str(), "alice");
            assert_eq!(env.take_sent(), [ClientFrame::Nickname("alice".into())]);
        });
    }

    #[test]
    fn an_unknown_token_gets_a_new_identity_told_the_chosen_nickname() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            chat.set_nickname("alice");
            chat.receive(renamed(1, "Anonymous", "alice", 2));
            // The server restarted and forgot the token.
            chat.disconnected(false);
            chat.connecting();
            env.take_sent();
            chat.receive(welcome(9, "Anonymous", vec![person(9, "Anonymous")]));
            assert_eq!(env.take_sent(), [ClientFrame::Nickname("alice".into())]);
            assert_eq!(chat.nickname().as_str(), "alice");
            assert_eq!(*env.stored.lock().unwrap(), Some("token-9".to_owned()));
        });
    }

    #[test]
    fn a_page_taken_over_by_another_tab_forgets_its_token() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            assert_eq!(*env.stored.lock().unwrap(), Some("token-1".to_owned()));
            chat.disconnected(true);
            assert_eq!(*env.stored.lock().unwrap(), None);
            env.take_sent();
            chat.connecting();
            assert_eq!(env.take_sent(), [resume(None, None)]);
        });
    }
}
