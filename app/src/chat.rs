//! The page's state: connection status, the user's nickname, the messages on
//! screen, and the last thing worth telling the user.
//!
//! All of it is plain signals so the server can render the initial page;
//! only the browser build connects a socket to it.

use leptos::{callback::Callback, prelude::*};

use crate::protocol::{
    ChatMessage, ClientFrame, MessageText, Nickname, OutgoingMessage, ServerFrame,
};

/// How many messages the page keeps; older ones scroll away for good.
pub const MAX_VISIBLE_MESSAGES: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionStatus {
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

/// One line in the message list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Local key for the list; not a server id.
    pub id: u64,
    pub nickname: String,
    pub text: String,
    /// Sent from this page (shown at once, never echoed by the server).
    pub mine: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Chat {
    pub status: RwSignal<ConnectionStatus>,
    pub nickname: RwSignal<Nickname>,
    pub messages: RwSignal<Vec<Entry>>,
    pub notice: RwSignal<Option<String>>,
    /// Hands a frame to the socket; a no-op where there is none (the server).
    outbox: Callback<ClientFrame>,
}

impl Chat {
    /// Creates the state and, in the browser, starts the socket that feeds it.
    pub fn connect() -> Self {
        #[cfg(feature = "hydrate")]
        return crate::socket::start();
        #[cfg(not(feature = "hydrate"))]
        Self::new(Callback::new(|_| {}))
    }

    pub(crate) fn new(outbox: Callback<ClientFrame>) -> Self {
        Self {
            status: RwSignal::new(ConnectionStatus::Connecting),
            nickname: RwSignal::new(Nickname::default()),
            messages: RwSignal::new(Vec::new()),
            notice: RwSignal::new(None),
            outbox,
        }
    }

    pub fn is_online(&self) -> bool {
        self.status.get() == ConnectionStatus::Online
    }

    /// Takes the nickname at once; the server hears of it now, or on the next
    /// (re)connect if the socket is down.
    pub fn set_nickname(&self, nickname: Nickname) {
        self.outbox
            .run(ClientFrame::Nickname(nickname.as_str().to_owned()));
        self.nickname.set(nickname);
        self.notice.set(None);
    }

    /// Shows the message as ours right away and sends it; the server relays
    /// it to everyone else and never back to us.
    pub fn send_message(&self, text: MessageText) {
        let nickname = self.nickname.get_untracked().to_string();
        let text = text.into_string();
        self.outbox
            .run(ClientFrame::Message(OutgoingMessage::plain(text.clone())));
        self.push(nickname, text, true);
        self.notice.set(None);
    }

    /// Applies a frame from the server.
    pub fn receive(&self, frame: ServerFrame) {
        match frame {
            ServerFrame::Message(ChatMessage { nickname, text, .. }) => {
                self.push(nickname, text, false)
            }
            ServerFrame::Error(error) => self.notice.set(Some(error.message)),
            _ => {}
        }
    }

    fn push(&self, nickname: String, text: String, mine: bool) {
        self.messages.update(|messages| {
            let id = messages.last().map_or(0, |last| last.id + 1);
            if messages.len() == MAX_VISIBLE_MESSAGES {
                messages.remove(0);
            }
            messages.push(Entry {
                id,
                nickname,
                text,
                mine,
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::protocol::{ErrorCode, ErrorPayload};

    fn chat_with_outbox() -> (Chat, Arc<Mutex<Vec<ClientFrame>>>) {
        let sent = Arc::new(Mutex::new(Vec::new()));
        let outbox = Arc::clone(&sent);
        let chat = Chat::new(Callback::new(move |frame| {
            outbox.lock().unwrap().push(frame)
        }));
        (chat, sent)
    }

    #[test]
    fn own_messages_show_at_once_and_are_sent() {
        let owner = Owner::new();
        owner.with(|| {
            let (chat, sent) = chat_with_outbox();
            chat.set_nickname(Nickname::parse("alice").unwrap());
            chat.send_message(MessageText::parse(" hello ").unwrap());

            let messages = chat.messages.get_untracked();
            assert_eq!(messages.len(), 1);
            assert_eq!(messages[0].nickname, "alice");
            assert_eq!(messages[0].text, "hello");
            assert!(messages[0].mine);
            assert_eq!(
                *sent.lock().unwrap(),
                [
                    ClientFrame::Nickname("alice".into()),
                    ClientFrame::Message(OutgoingMessage::plain("hello"))
                ]
            );
        });
    }

    #[test]
    fn relayed_messages_and_errors_are_shown() {
        let owner = Owner::new();
        owner.with(|| {
            let (chat, _) = chat_with_outbox();
            chat.receive(ServerFrame::Message(ChatMessage {
                id: 1,
                sent_at: "2026-11-25T14:00:00Z".into(),
                from: 2,
                nickname: "bob".into(),
                text: "hi".into(),
            }));
            let messages = chat.messages.get_untracked();
            assert_eq!(
                (messages[0].nickname.as_str(), messages[0].mine),
                ("bob", false)
            );

            chat.receive(ServerFrame::Error(ErrorPayload::new(
                ErrorCode::InvalidMessage,
                "too long",
            )));
            assert_eq!(chat.notice.get_untracked().as_deref(), Some("too long"));
        });
    }

    #[test]
    fn the_list_keeps_only_the_newest_messages() {
        let owner = Owner::new();
        owner.with(|| {
            let (chat, _) = chat_with_outbox();
            for i in 0..MAX_VISIBLE_MESSAGES + 5 {
                chat.send_message(MessageText::parse(&i.to_string()).unwrap());
            }
            let messages = chat.messages.get_untracked();
            assert_eq!(messages.len(), MAX_VISIBLE_MESSAGES);
            assert_eq!(messages[0].text, "5");
            let ids: Vec<u64> = messages.iter().map(|m| m.id).collect();
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "keys stay unique");
        });
    }
}
