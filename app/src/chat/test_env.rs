//! A world the chat's tests control (frames are recorded, ids count up, the
//! clock and the timers move only when told), and the frames they build.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use super::*;
use crate::protocol::{
    Ack, ChatMessage, ErrorCode, ErrorPayload, OutgoingMessage, Person, Presence, Rename, Resume,
    RoomName, ServerFrame, Typing, Welcome,
};

pub(super) type Timer = (Duration, Box<dyn FnOnce() + Send + Sync>);

/// A world the test controls: frames are recorded, ids count up, the
/// clock and the timers move only when told.
#[derive(Default)]
pub(super) struct TestEnv {
    pub(super) sent: Mutex<Vec<ClientFrame>>,
    pub(super) ids: Mutex<u32>,
    pub(super) now: Mutex<f64>,
    pub(super) timers: Mutex<Vec<Timer>>,
    pub(super) stored: Mutex<Option<String>>,
}

impl Env for TestEnv {
    fn send(&self, frame: ClientFrame) {
        self.sent.lock().unwrap().push(frame);
    }
    fn new_client_id(&self) -> String {
        let mut ids = self.ids.lock().unwrap();
        *ids += 1;
        format!("c-{ids}")
    }
    fn now_ms(&self) -> f64 {
        *self.now.lock().unwrap()
    }
    fn after(&self, delay: Duration, then: Box<dyn FnOnce() + Send + Sync>) {
        self.timers.lock().unwrap().push((delay, then));
    }
    fn store_token(&self, token: Option<&str>) {
        *self.stored.lock().unwrap() = token.map(str::to_owned);
    }
}

impl TestEnv {
    pub(super) fn take_sent(&self) -> Vec<ClientFrame> {
        std::mem::take(&mut *self.sent.lock().unwrap())
    }
    pub(super) fn advance(&self, ms: f64) {
        *self.now.lock().unwrap() += ms;
    }
    /// Fires every timer set for `delay` so far.
    pub(super) fn fire(&self, delay: Duration) {
        let due: Vec<Timer> = {
            let mut timers = self.timers.lock().unwrap();
            let (due, rest) = timers.drain(..).partition(|(d, _)| *d == delay);
            *timers = rest;
            due
        };
        for (_, then) in due {
            then();
        }
    }
}

pub(super) fn person(id: u64, nickname: &str) -> Person {
    Person {
        id,
        nickname: nickname.into(),
    }
}

pub(super) fn welcome(id: u64, nickname: &str, people: Vec<Person>) -> ServerFrame {
    ServerFrame::Welcome(Welcome {
        room: "general".into(),
        id,
        nickname: nickname.into(),
        online: people.len() as u64,
        people,
        token: format!("token-{id}"),
    })
}

/// A presence frame with one rename, `online` people online.
pub(super) fn renamed(id: u64, previous: &str, nickname: &str, online: u64) -> ServerFrame {
    ServerFrame::Presence(Presence {
        renamed: vec![Rename {
            id,
            previous: previous.into(),
            nickname: nickname.into(),
        }],
        ..presence(online)
    })
}

pub(super) fn presence(online: u64) -> Presence {
    Presence {
        room: "general".into(),
        online,
        ..Presence::default()
    }
}

pub(super) fn message(from: u64, nickname: &str, text: &str) -> ServerFrame {
    ServerFrame::Message(ChatMessage {
        room: "general".into(),
        id: 1,
        sent_at: "2026-11-25T14:00:00Z".into(),
        from,
        nickname: nickname.into(),
        text: text.into(),
    })
}

pub(super) fn error(code: ErrorCode, client_id: Option<&str>) -> ServerFrame {
    ServerFrame::Error(ErrorPayload::new(code, code.as_str()).about(client_id))
}

pub(super) fn message_frame(text: &str, client_id: &str) -> ClientFrame {
    ClientFrame::Message(OutgoingMessage {
        text: text.into(),
        client_id: Some(client_id.into()),
    })
}

/// A chat welcomed as connection 1, `Anonymous`, with bob (2) online.
pub(super) fn online_chat() -> (Chat, Arc<TestEnv>) {
    let env = Arc::new(TestEnv::default());
    let chat = Chat::new(Some(env.clone() as Arc<dyn Env>));
    chat.receive(welcome(
        1,
        "Anonymous",
        vec![person(1, "Anonymous"), person(2, "bob")],
    ));
    (chat, env)
}

/// Each line as a short readable string.
pub(super) fn lines(chat: &Chat) -> Vec<String> {
    chat.rows()
        .iter()
        .map(|row| match &row.line {
            Line::Theirs(m) => format!("{}: {}", m.nickname, m.text),
            Line::Mine(own) => {
                format!("{}: {} [{}]", own.nickname, own.text, own.delivery.as_str())
            }
            Line::Joined(name) => format!("{name} joined"),
            Line::Left(name) => format!("{name} left"),
            Line::Renamed { previous, nickname } => format!("{previous} is now {nickname}"),
        })
        .collect()
}

/// Who is online, as the page lists them.
pub(super) fn people(chat: &Chat) -> Vec<Person> {
    chat.people(|p| p.people.clone())
}

pub(super) fn names(chat: &Chat) -> Vec<String> {
    people(chat).into_iter().map(|p| p.nickname).collect()
}

/// bob's message number `id`.
pub(super) fn bob_said(id: u64, text: &str) -> ChatMessage {
    match message(2, "bob", text) {
        ServerFrame::Message(message) => ChatMessage { id, ..message },
        _ => unreachable!(),
    }
}

pub(super) fn from_bob(id: u64, text: &str) -> ServerFrame {
    ServerFrame::Message(bob_said(id, text))
}

/// The server's ack of `client_id` as message `id`.
pub(super) fn ack(client_id: &str, id: u64) -> ServerFrame {
    ServerFrame::Ack(Ack {
        client_id: client_id.into(),
        id,
        sent_at: "2026-11-25T14:00:00.000Z".into(),
    })
}

pub(super) fn message_with_id(id: u64, from: u64, text: &str) -> ChatMessage {
    ChatMessage {
        room: "general".into(),
        id,
        sent_at: "2026-11-25T14:00:00Z".into(),
        from,
        nickname: "bob".into(),
        text: text.into(),
    }
}

pub(super) fn page(ids: std::ops::RangeInclusive<u64>, beginning: bool) -> HistoryPage {
    HistoryPage {
        room: "general".into(),
        messages: ids
            .map(|id| message_with_id(id, 2, &id.to_string()))
            .collect(),
        beginning,
    }
}

/// What an empty store renders: nothing, from the beginning.
pub(super) fn empty_page() -> HistoryPage {
    HistoryPage {
        room: "general".into(),
        messages: Vec::new(),
        beginning: true,
    }
}

pub(super) fn resume(token: Option<&str>, after: Option<u64>) -> ClientFrame {
    ClientFrame::Resume(Resume {
        token: token.map(str::to_owned),
        after,
        room: Some("general".into()),
    })
}

/// A chat seeded like a loaded page, with `token` from sessionStorage.
pub(super) fn first_chat(page: HistoryPage, token: Option<&str>) -> (Chat, Arc<TestEnv>) {
    let env = Arc::new(TestEnv::default());
    let state = State::first(page, token.map(str::to_owned));
    let chat = Chat::from_state(Some(env.clone() as Arc<dyn Env>), state);
    (chat, env)
}

pub(super) fn rust() -> RoomName {
    RoomName::parse("rust").unwrap()
}

/// `frame` as if it were about `room`.
pub(super) fn in_room(room: &str, mut frame: ServerFrame) -> ServerFrame {
    match &mut frame {
        ServerFrame::Welcome(frame) => frame.room = room.into(),
        ServerFrame::Message(frame) => frame.room = room.into(),
        ServerFrame::History(frame) => {
            frame.room = room.into();
            for message in &mut frame.messages {
                message.room = room.into();
            }
        }
        ServerFrame::Presence(frame) => frame.room = room.into(),
        ServerFrame::Typing(frame) => frame.room = room.into(),
        _ => {}
    }
    frame
}

pub(super) fn join(room: &str) -> ClientFrame {
    ClientFrame::Join { room: room.into() }
}

pub(super) fn typing_in(room: &str, id: u64) -> ServerFrame {
    ServerFrame::Typing(Typing {
        room: room.into(),
        id,
        nickname: "bob".into(),
        active: true,
    })
}
