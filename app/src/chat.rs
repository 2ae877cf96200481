//! The page's state, and the only code that changes it.
//!
//! Components read it through the accessors (read-only signals) and act on
//! it through the user's intents ([`Chat::set_nickname`], [`Chat::send`],
//! [`Chat::retry`], [`Chat::typing`]); the transport reports through
//! [`Chat::connecting`], [`Chat::receive`] and [`Chat::disconnected`].
//! Whatever the state needs from the outside world (a socket, a clock,
//! timers, random ids) comes through [`Env`], so the tests below run it
//! without a browser. The server renders the page with no `Env` at all.

use std::{sync::Arc, time::Duration};

use leptos::prelude::*;

use crate::protocol::{
    ChatMessage, ClientFrame, ErrorCode, ErrorPayload, MessageText, MessageTextError, Nickname,
    OutgoingMessage, Person, Presence, ServerFrame, Typing,
};

/// How many lines the page keeps; older ones scroll away for good.
pub const MAX_VISIBLE_MESSAGES: usize = 500;
/// An own message without an ack after this long is shown as failed.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// At most one "typing" frame per this interval (the server relays no more).
pub const TYPING_THROTTLE: Duration = Duration::from_secs(2);
/// Someone who sent no typing frame for this long has stopped typing.
pub const TYPING_EXPIRES: Duration = Duration::from_secs(5);

/// What the chat needs from outside: the browser's in `socket.rs`, the
/// tests' own below.
pub trait Env: Send + Sync + 'static {
    /// Hands a frame to the connection; frames are lost if it drops.
    fn send(&self, frame: ClientFrame);
    /// A new random `client_id` for an own message.
    fn new_client_id(&self) -> String;
    /// The current time in milliseconds.
    fn now_ms(&self) -> f64;
    /// Runs `then` once `delay` has passed.
    fn after(&self, delay: Duration, then: Box<dyn FnOnce() + Send + Sync>);
}

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

/// Where an own message stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Sent `attempt` times, not acknowledged yet.
    Pending { attempt: u32 },
    /// Acknowledged: the server's id and time for it.
    Sent { id: u64, sent_at: String },
    /// Refused, or no ack in time, after `attempt` sends.
    Failed { attempt: u32 },
}

impl Delivery {
    /// Stable machine-readable form, used in `data-state`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending { .. } => "pending",
            Self::Sent { .. } => "sent",
            Self::Failed { .. } => "failed",
        }
    }
}

/// One line in the message list.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Local key for the list; not a server id.
    pub key: u64,
    pub line: Line,
}

#[derive(Debug, Clone)]
pub enum Line {
    /// A message from someone else.
    Theirs(ChatMessage),
    Mine(OwnMessage),
    Joined(String),
    Left(String),
    Renamed {
        previous: String,
        nickname: String,
    },
}

/// A message sent from this page; its delivery changes as the server answers.
#[derive(Debug, Clone)]
pub struct OwnMessage {
    pub client_id: String,
    pub nickname: String,
    pub text: String,
    delivery: ReadSignal<Delivery>,
    set_delivery: WriteSignal<Delivery>,
}

impl OwnMessage {
    pub fn delivery(&self) -> ReadSignal<Delivery> {
        self.delivery
    }
}

/// Someone else who is typing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Typist {
    pub id: u64,
    pub nickname: String,
    /// Tells the expiry timer of an older typing frame from the latest one.
    seq: u64,
}

/// What the typing indicator says.
pub fn typing_label(typists: &[Typist]) -> Option<String> {
    match typists {
        [] => None,
        [one] => Some(format!("{} is typing…", one.nickname)),
        [one, two] => Some(format!("{} and {} are typing…", one.nickname, two.nickname)),
        _ => Some("several people are typing…".to_owned()),
    }
}

/// Bookkeeping no view shows.
struct Inner {
    /// The nickname the server last confirmed for this connection.
    confirmed: Nickname,
    /// Nickname requests sent and not yet answered by a rename or an error.
    awaiting_rename: u32,
    next_key: u64,
    /// When the last `typing: true` went out, while the draft is not empty.
    typing_sent_at: Option<f64>,
    typing_seq: u64,
}

#[derive(Clone, Copy)]
pub struct Chat {
    status: (ReadSignal<ConnectionStatus>, WriteSignal<ConnectionStatus>),
    nickname: (ReadSignal<Nickname>, WriteSignal<Nickname>),
    entries: (ReadSignal<Vec<Entry>>, WriteSignal<Vec<Entry>>),
    people: (ReadSignal<Vec<Person>>, WriteSignal<Vec<Person>>),
    online: (ReadSignal<u64>, WriteSignal<u64>),
    me: (ReadSignal<Option<u64>>, WriteSignal<Option<u64>>),
    typists: (ReadSignal<Vec<Typist>>, WriteSignal<Vec<Typist>>),
    notice: (ReadSignal<Option<String>>, WriteSignal<Option<String>>),
    inner: StoredValue<Inner>,
    env: StoredValue<Option<Arc<dyn Env>>>,
}

impl Chat {
    /// The state of a fresh page; `None` for the server's rendering, which
    /// never connects.
    pub fn new(env: Option<Arc<dyn Env>>) -> Self {
        Self {
            status: signal(ConnectionStatus::Connecting),
            nickname: signal(Nickname::default()),
            entries: signal(Vec::new()),
            people: signal(Vec::new()),
            online: signal(0),
            me: signal(None),
            typists: signal(Vec::new()),
            notice: signal(None),
            inner: StoredValue::new(Inner {
                confirmed: Nickname::default(),
                awaiting_rename: 0,
                next_key: 0,
                typing_sent_at: None,
                typing_seq: 0,
            }),
            env: StoredValue::new(env),
        }
    }

    pub fn status(&self) -> ReadSignal<ConnectionStatus> {
        self.status.0
    }

    /// The nickname the user chose, shown at once, before the server agrees.
    pub fn nickname(&self) -> ReadSignal<Nickname> {
        self.nickname.0
    }

    pub fn entries(&self) -> ReadSignal<Vec<Entry>> {
        self.entries.0
    }

    /// Who is online as far as this page knows; may be fewer than
    /// [`Chat::online`] in a big room.
    pub fn people(&self) -> ReadSignal<Vec<Person>> {
        self.people.0
    }

    pub fn online(&self) -> ReadSignal<u64> {
        self.online.0
    }

    /// This connection's id, once welcomed.
    pub fn me(&self) -> ReadSignal<Option<u64>> {
        self.me.0
    }

    pub fn typists(&self) -> ReadSignal<Vec<Typist>> {
        self.typists.0
    }

    /// The last problem worth telling the user about.
    pub fn notice(&self) -> ReadSignal<Option<String>> {
        self.notice.0
    }

    pub fn is_online(&self) -> bool {
        self.status.0.get() == ConnectionStatus::Online
    }

    fn is_online_now(&self) -> bool {
        self.status.0.get_untracked() == ConnectionStatus::Online
    }

    fn env(&self) -> Option<Arc<dyn Env>> {
        self.env.get_value()
    }

    fn send_frame(&self, frame: ClientFrame) {
        if let Some(env) = self.env() {
            env.send(frame);
        }
    }

    fn after(&self, delay: Duration, then: impl FnOnce() + Send + Sync + 'static) {
        if let Some(env) = self.env() {
            env.after(delay, Box::new(then));
        }
    }

    fn tell(&self, notice: Option<String>) {
        self.notice.1.set(notice);
    }

    // ---- what the user does ----

    /// Shows the nickname typed in `raw` at once and asks the server for it;
    /// while offline it is asked for after the next welcome. `false` (with a
    /// notice) when it breaks the rules.
    pub fn set_nickname(&self, raw: &str) -> bool {
        let nickname = match Nickname::parse(raw) {
            Ok(nickname) => nickname,
            Err(err) => {
                self.tell(Some(err.to_string()));
                return false;
            }
        };
        self.tell(None);
        if nickname == self.nickname.0.get_untracked() {
            return true;
        }
        self.nickname.1.set(nickname.clone());
        if self.is_online_now() {
            let settled = self
                .inner
                .with_value(|inner| inner.awaiting_rename == 0 && inner.confirmed == nickname);
            if !settled {
                self.inner.update_value(|inner| inner.awaiting_rename += 1);
                self.send_frame(ClientFrame::Nickname(nickname.as_str().to_owned()));
            }
        }
        true
    }

    /// Sends the text in `raw` as a message with a fresh `client_id` and shows
    /// it at once as pending. `true` when the draft can be cleared; blank
    /// text is ignored, text breaking the rules gets a notice.
    pub fn send(&self, raw: &str) -> bool {
        let Some(env) = self.env().filter(|_| self.is_online_now()) else {
            return false;
        };
        let text = match MessageText::parse(raw) {
            Ok(text) => text.into_string(),
            Err(MessageTextError::Empty) => return false,
            Err(err) => {
                self.tell(Some(err.to_string()));
                return false;
            }
        };
        let client_id = env.new_client_id();
        let (delivery, set_delivery) = signal(Delivery::Pending { attempt: 1 });
        self.push(Line::Mine(OwnMessage {
            client_id: client_id.clone(),
            nickname: self.nickname.0.get_untracked().to_string(),
            text: text.clone(),
            delivery,
            set_delivery,
        }));
        // The server clears the typing indicator when the message arrives.
        self.inner.update_value(|inner| inner.typing_sent_at = None);
        self.tell(None);
        self.transmit(client_id, text, 1);
        true
    }

    /// Sends a failed message again, under the same `client_id`, so the
    /// server relays it once even if the first attempt got through.
    pub fn retry(&self, client_id: &str) {
        if !self.is_online_now() {
            return;
        }
        let Some(own) = self.own(client_id) else {
            return;
        };
        let Delivery::Failed { attempt } = own.delivery.get_untracked() else {
            return;
        };
        own.set_delivery.set(Delivery::Pending {
            attempt: attempt + 1,
        });
        self.transmit(own.client_id, own.text, attempt + 1);
    }

    fn transmit(&self, client_id: String, text: String, attempt: u32) {
        self.send_frame(ClientFrame::Message(OutgoingMessage {
            text,
            client_id: Some(client_id.clone()),
        }));
        let chat = *self;
        self.after(ACK_TIMEOUT, move || chat.ack_timed_out(&client_id, attempt));
    }

    fn ack_timed_out(&self, client_id: &str, attempt: u32) {
        if let Some(own) = self.own(client_id) {
            if own.delivery.get_untracked() == (Delivery::Pending { attempt }) {
                own.set_delivery.set(Delivery::Failed { attempt });
            }
        }
    }

    /// The draft changed to `draft`: says "typing" at most once per
    /// [`TYPING_THROTTLE`], and "stopped" when the draft is emptied.
    pub fn typing(&self, draft: &str) {
        let Some(env) = self.env().filter(|_| self.is_online_now()) else {
            return;
        };
        let now = env.now_ms();
        let throttle = TYPING_THROTTLE.as_secs_f64() * 1_000.0;
        let frame = self.inner.try_update_value(|inner| {
            if draft.trim().is_empty() {
                inner
                    .typing_sent_at
                    .take()
                    .map(|_| ClientFrame::Typing(false))
            } else if inner.typing_sent_at.is_none_or(|at| now - at >= throttle) {
                inner.typing_sent_at = Some(now);
                Some(ClientFrame::Typing(true))
            } else {
                None
            }
        });
        if let Some(frame) = frame.flatten() {
            env.send(frame);
        }
    }

    // ---- what the transport reports ----

    /// A connection attempt starts.
    pub fn connecting(&self) {
        self.status.1.set(ConnectionStatus::Connecting);
    }

    /// The connection is gone: what others are doing is unknown until the
    /// next welcome.
    pub fn disconnected(&self) {
        self.status.1.set(ConnectionStatus::Offline);
        self.people.1.set(Vec::new());
        self.online.1.set(0);
        self.typists.1.set(Vec::new());
        self.inner.update_value(|inner| {
            inner.typing_sent_at = None;
            inner.awaiting_rename = 0;
        });
    }

    /// Applies a frame from the server.
    pub fn receive(&self, frame: ServerFrame) {
        match frame {
            ServerFrame::Welcome(welcome) => {
                let confirmed = Nickname::parse(&welcome.nickname).unwrap_or_default();
                self.me.1.set(Some(welcome.id));
                self.online.1.set(welcome.online);
                self.people.1.set(welcome.people);
                self.typists.1.set(Vec::new());
                self.status.1.set(ConnectionStatus::Online);
                // A new connection starts as the server's default: tell it
                // the chosen nickname again, then what is still unanswered.
                let chosen = self.nickname.0.get_untracked();
                let resend = chosen != confirmed;
                self.inner.update_value(|inner| {
                    inner.confirmed = confirmed;
                    inner.awaiting_rename = u32::from(resend);
                });
                if resend {
                    self.send_frame(ClientFrame::Nickname(chosen.as_str().to_owned()));
                }
                for own in self.pending() {
                    self.send_frame(ClientFrame::Message(OutgoingMessage {
                        text: own.text,
                        client_id: Some(own.client_id),
                    }));
                }
            }
            ServerFrame::Message(message) => {
                let from = message.from;
                self.typists
                    .1
                    .update(|t| t.retain(|typist| typist.id != from));
                self.push(Line::Theirs(message));
            }
            ServerFrame::Ack(ack) => {
                if let Some(own) = self.own(&ack.client_id) {
                    own.set_delivery.set(Delivery::Sent {
                        id: ack.id,
                        sent_at: ack.sent_at,
                    });
                }
            }
            ServerFrame::Presence(presence) => self.apply_presence(presence),
            ServerFrame::Typing(typing) => self.someone_typing(typing),
            ServerFrame::Error(error) => self.refused(error),
        }
    }

    fn refused(&self, error: ErrorPayload) {
        if let Some(own) = error.client_id.as_deref().and_then(|id| self.own(id)) {
            if let Delivery::Pending { attempt } = own.delivery.get_untracked() {
                own.set_delivery.set(Delivery::Failed { attempt });
            }
        } else if matches!(
            error.code,
            ErrorCode::NicknameTaken | ErrorCode::InvalidNickname
        ) {
            let revert = self.inner.try_update_value(|inner| {
                inner.awaiting_rename = inner.awaiting_rename.saturating_sub(1);
                (inner.awaiting_rename == 0).then(|| inner.confirmed.clone())
            });
            if let Some(confirmed) = revert.flatten() {
                self.nickname.1.set(confirmed);
            }
        }
        self.tell(Some(error.message));
    }

    /// The server now calls this connection `nickname`.
    fn confirm_own(&self, nickname: &str) {
        let confirmed = Nickname::parse(nickname).unwrap_or_default();
        let chosen = self.nickname.0.get_untracked();
        let settled = self.inner.try_update_value(|inner| {
            if inner.confirmed == confirmed {
                return false;
            }
            inner.confirmed = confirmed.clone();
            if confirmed == chosen {
                inner.awaiting_rename = 0;
            } else {
                inner.awaiting_rename = inner.awaiting_rename.saturating_sub(1);
            }
            inner.awaiting_rename == 0
        });
        if settled == Some(true) && confirmed != chosen {
            self.nickname.1.set(confirmed);
        }
    }

    /// Applies who came, went or changed name. Idempotent: a join of someone
    /// listed, a leave of someone unlisted or a rename to the name shown
    /// changes nothing and says nothing.
    fn apply_presence(&self, presence: Presence) {
        let me = self.me.0.get_untracked();
        let mut people = self.people.0.get_untracked();
        let mut lines = Vec::new();
        let mut own_names = Vec::new();
        for person in presence.joined {
            if Some(person.id) == me {
                own_names.push(person.nickname.clone());
            }
            match people.iter_mut().find(|p| p.id == person.id) {
                // Joined and renamed within one interval: one join, new name.
                Some(listed) => listed.nickname = person.nickname,
                None => {
                    if Some(person.id) != me {
                        lines.push(Line::Joined(person.nickname.clone()));
                    }
                    people.push(person);
                }
            }
        }
        for rename in presence.renamed {
            if Some(rename.id) == me {
                own_names.push(rename.nickname.clone());
            }
            if let Some(listed) = people.iter_mut().find(|p| p.id == rename.id) {
                if listed.nickname != rename.nickname {
                    listed.nickname = rename.nickname.clone();
                    lines.push(Line::Renamed {
                        previous: rename.previous,
                        nickname: rename.nickname.clone(),
                    });
                }
            }
            self.typists.1.update(|typists| {
                for typist in typists.iter_mut().filter(|t| t.id == rename.id) {
                    typist.nickname = rename.nickname.clone();
                }
            });
        }
        for person in presence.left {
            if let Some(at) = people.iter().position(|p| p.id == person.id) {
                lines.push(Line::Left(people.remove(at).nickname));
            }
            self.typists
                .1
                .update(|t| t.retain(|typist| typist.id != person.id));
        }
        if let Some(everyone) = presence.people {
            people = everyone;
            own_names.extend(
                people
                    .iter()
                    .filter(|p| Some(p.id) == me)
                    .map(|p| p.nickname.clone()),
            );
        }
        for name in own_names {
            self.confirm_own(&name);
        }
        self.people.1.set(people);
        self.online.1.set(presence.online);
        for line in lines {
            self.push(line);
        }
    }

    fn someone_typing(&self, typing: Typing) {
        if Some(typing.id) == self.me.0.get_untracked() {
            return;
        }
        let Typing {
            id,
            nickname,
            active,
        } = typing;
        if !active {
            self.typists
                .1
                .update(|t| t.retain(|typist| typist.id != id));
            return;
        }
        let seq = self.inner.try_update_value(|inner| {
            inner.typing_seq += 1;
            inner.typing_seq
        });
        let seq = seq.unwrap_or_default();
        self.typists
            .1
            .update(|typists| match typists.iter_mut().find(|t| t.id == id) {
                Some(typist) => {
                    typist.nickname = nickname;
                    typist.seq = seq;
                }
                None => typists.push(Typist { id, nickname, seq }),
            });
        let chat = *self;
        self.after(TYPING_EXPIRES, move || chat.typing_expired(id, seq));
    }

    fn typing_expired(&self, id: u64, seq: u64) {
        let current = self
            .typists
            .0
            .with_untracked(|t| t.iter().any(|typist| typist.id == id && typist.seq == seq));
        if current {
            self.typists
                .1
                .update(|t| t.retain(|typist| typist.id != id));
        }
    }

    fn own(&self, client_id: &str) -> Option<OwnMessage> {
        self.entries.0.with_untracked(|entries| {
            entries.iter().rev().find_map(|entry| match &entry.line {
                Line::Mine(own) if own.client_id == client_id => Some(own.clone()),
                _ => None,
            })
        })
    }

    fn pending(&self) -> Vec<OwnMessage> {
        self.entries.0.with_untracked(|entries| {
            entries
                .iter()
                .filter_map(|entry| match &entry.line {
                    Line::Mine(own)
                        if matches!(own.delivery.get_untracked(), Delivery::Pending { .. }) =>
                    {
                        Some(own.clone())
                    }
                    _ => None,
                })
                .collect()
        })
    }

    fn push(&self, line: Line) {
        let key = self
            .inner
            .try_update_value(|inner| {
                inner.next_key += 1;
                inner.next_key
            })
            .unwrap_or_default();
        self.entries.1.update(|entries| {
            if entries.len() == MAX_VISIBLE_MESSAGES {
                if let Line::Mine(own) = entries.remove(0).line {
                    own.delivery.dispose();
                    own.set_delivery.dispose();
                }
            }
            entries.push(Entry { key, line });
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::protocol::{Ack, Rename, Welcome};

    type Timer = (Duration, Box<dyn FnOnce() + Send + Sync>);

    /// A world the test controls: frames are recorded, ids count up, the
    /// clock and the timers move only when told.
    #[derive(Default)]
    struct TestEnv {
        sent: Mutex<Vec<ClientFrame>>,
        ids: Mutex<u32>,
        now: Mutex<f64>,
        timers: Mutex<Vec<Timer>>,
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
    }

    impl TestEnv {
        fn take_sent(&self) -> Vec<ClientFrame> {
            std::mem::take(&mut *self.sent.lock().unwrap())
        }
        fn advance(&self, ms: f64) {
            *self.now.lock().unwrap() += ms;
        }
        /// Fires every timer set for `delay` so far.
        fn fire(&self, delay: Duration) {
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

    fn person(id: u64, nickname: &str) -> Person {
        Person {
            id,
            nickname: nickname.into(),
        }
    }

    fn welcome(id: u64, nickname: &str, people: Vec<Person>) -> ServerFrame {
        ServerFrame::Welcome(Welcome {
            id,
            nickname: nickname.into(),
            online: people.len() as u64,
            people,
        })
    }

    fn presence(online: u64) -> Presence {
        Presence {
            online,
            ..Presence::default()
        }
    }

    fn message(from: u64, nickname: &str, text: &str) -> ServerFrame {
        ServerFrame::Message(ChatMessage {
            id: 1,
            sent_at: "2026-11-25T14:00:00Z".into(),
            from,
            nickname: nickname.into(),
            text: text.into(),
        })
    }

    fn error(code: ErrorCode, client_id: Option<&str>) -> ServerFrame {
        ServerFrame::Error(ErrorPayload::new(code, code.as_str()).about(client_id))
    }

    fn message_frame(text: &str, client_id: &str) -> ClientFrame {
        ClientFrame::Message(OutgoingMessage {
            text: text.into(),
            client_id: Some(client_id.into()),
        })
    }

    /// A chat welcomed as connection 1, `Anonymous`, with bob (2) online.
    fn online_chat() -> (Chat, Arc<TestEnv>) {
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
    fn lines(chat: &Chat) -> Vec<String> {
        chat.entries()
            .get_untracked()
            .into_iter()
            .map(|entry| match entry.line {
                Line::Theirs(m) => format!("{}: {}", m.nickname, m.text),
                Line::Mine(own) => format!(
                    "{}: {} [{}]",
                    own.nickname,
                    own.text,
                    own.delivery.get_untracked().as_str()
                ),
                Line::Joined(name) => format!("{name} joined"),
                Line::Left(name) => format!("{name} left"),
                Line::Renamed { previous, nickname } => format!("{previous} is now {nickname}"),
            })
            .collect()
    }

    fn names(chat: &Chat) -> Vec<String> {
        chat.people()
            .get_untracked()
            .into_iter()
            .map(|p| p.nickname)
            .collect()
    }

    #[test]
    fn the_page_is_online_once_welcomed() {
        Owner::new().with(|| {
            let env = Arc::new(TestEnv::default());
            let chat = Chat::new(Some(env.clone() as Arc<dyn Env>));
            assert_eq!(chat.status().get_untracked(), ConnectionStatus::Connecting);
            assert!(
                !chat.send("too early"),
                "nothing is sent before the welcome"
            );
            chat.receive(welcome(1, "Anonymous", vec![person(1, "Anonymous")]));
            assert_eq!(chat.status().get_untracked(), ConnectionStatus::Online);
            assert_eq!(chat.me().get_untracked(), Some(1));
            assert_eq!(chat.online().get_untracked(), 1);
            assert_eq!(env.take_sent(), [], "Anonymous needs no nickname frame");
            assert!(lines(&chat).is_empty(), "no line for joining oneself");
        });
    }

    #[test]
    fn own_messages_go_from_pending_to_sent_on_their_ack() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            assert!(chat.set_nickname("alice"));
            env.take_sent();
            assert!(chat.send(" hello "));
            assert_eq!(env.take_sent(), [message_frame("hello", "c-1")]);
            assert_eq!(lines(&chat), ["alice: hello [pending]"]);

            chat.receive(ServerFrame::Ack(Ack {
                client_id: "c-1".into(),
                id: 42,
                sent_at: "2026-11-25T14:03:07Z".into(),
            }));
            let Line::Mine(own) = &chat.entries().get_untracked()[0].line else {
                panic!("own message expected");
            };
            assert_eq!(
                own.delivery().get_untracked(),
                Delivery::Sent {
                    id: 42,
                    sent_at: "2026-11-25T14:03:07Z".into()
                }
            );
            // The ack timer, when it fires later, leaves a sent message alone.
            env.fire(ACK_TIMEOUT);
            assert_eq!(lines(&chat), ["alice: hello [sent]"]);
        });
    }

    #[test]
    fn blank_and_invalid_messages_are_not_sent() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            assert!(!chat.send("   "));
            assert_eq!(chat.notice().get_untracked(), None);
            assert!(!chat.send(&"a".repeat(2_001)));
            assert!(chat.notice().get_untracked().is_some());
            assert_eq!(env.take_sent(), []);
            assert!(lines(&chat).is_empty());
        });
    }

    #[test]
    fn a_refused_or_unanswered_message_fails_and_can_be_retried_under_its_id() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            chat.send("one");
            chat.send("two");
            chat.receive(error(ErrorCode::RateLimited, Some("c-1")));
            assert_eq!(
                lines(&chat),
                ["Anonymous: one [failed]", "Anonymous: two [pending]"]
            );
            assert_eq!(
                chat.notice().get_untracked().as_deref(),
                Some("rate_limited")
            );

            env.fire(ACK_TIMEOUT);
            assert_eq!(
                lines(&chat),
                ["Anonymous: one [failed]", "Anonymous: two [failed]"]
            );

            env.take_sent();
            chat.retry("c-2");
            assert_eq!(env.take_sent(), [message_frame("two", "c-2")]);
            assert_eq!(lines(&chat)[1], "Anonymous: two [pending]");
            chat.receive(ServerFrame::Ack(Ack {
                client_id: "c-2".into(),
                id: 7,
                sent_at: "2026-11-25T14:03:07Z".into(),
            }));
            assert_eq!(lines(&chat)[1], "Anonymous: two [sent]");

            chat.retry("c-2");
            assert_eq!(env.take_sent(), [], "only failed messages are retried");
        });
    }

    #[test]
    fn an_old_timer_does_not_fail_a_retried_message() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            chat.send("one");
            chat.receive(error(ErrorCode::RateLimited, Some("c-1")));
            chat.retry("c-1");
            // Both the first attempt's timer and the retry's are due now;
            // only the retry's counts.
            let timers = std::mem::take(&mut *env.timers.lock().unwrap());
            let mut timers = timers.into_iter();
            (timers.next().unwrap().1)();
            assert_eq!(lines(&chat), ["Anonymous: one [pending]"]);
            (timers.next().unwrap().1)();
            assert_eq!(lines(&chat), ["Anonymous: one [failed]"]);
        });
    }

    #[test]
    fn relayed_messages_and_errors_are_shown() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            chat.receive(message(2, "bob", "hi"));
            assert_eq!(lines(&chat), ["bob: hi"]);
            chat.receive(error(ErrorCode::InvalidMessage, None));
            assert_eq!(
                chat.notice().get_untracked().as_deref(),
                Some("invalid_message")
            );
        });
    }

    #[test]
    fn the_list_keeps_only_the_newest_lines() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            for i in 0..MAX_VISIBLE_MESSAGES + 5 {
                chat.send(&i.to_string());
            }
            let entries = chat.entries().get_untracked();
            assert_eq!(entries.len(), MAX_VISIBLE_MESSAGES);
            assert_eq!(lines(&chat)[0], "Anonymous: 5 [pending]");
            let keys: Vec<u64> = entries.iter().map(|e| e.key).collect();
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys stay unique");
        });
    }

    #[test]
    fn presence_is_applied_idempotently_with_system_lines() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            let frame = ServerFrame::Presence(Presence {
                joined: vec![person(3, "carol"), person(2, "bob")],
                left: vec![person(9, "ghost")],
                renamed: vec![Rename {
                    id: 2,
                    previous: "bob".into(),
                    nickname: "bob".into(),
                }],
                ..presence(3)
            });
            chat.receive(frame.clone());
            chat.receive(frame);
            assert_eq!(names(&chat), ["Anonymous", "bob", "carol"]);
            assert_eq!(chat.online().get_untracked(), 3);
            assert_eq!(lines(&chat), ["carol joined"]);

            chat.receive(ServerFrame::Presence(Presence {
                renamed: vec![Rename {
                    id: 3,
                    previous: "carol".into(),
                    nickname: "dave".into(),
                }],
                left: vec![person(2, "bob")],
                ..presence(2)
            }));
            assert_eq!(names(&chat), ["Anonymous", "dave"]);
            assert_eq!(
                lines(&chat),
                ["carol joined", "carol is now dave", "bob left"]
            );
        });
    }

    #[test]
    fn a_full_list_replaces_what_the_page_knew() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            chat.receive(ServerFrame::Presence(Presence {
                people: Some(vec![person(1, "Anonymous"), person(5, "eve")]),
                ..presence(40)
            }));
            assert_eq!(names(&chat), ["Anonymous", "eve"]);
            assert_eq!(chat.online().get_untracked(), 40);
        });
    }

    #[test]
    fn a_nickname_shows_at_once_and_is_confirmed_by_presence() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            chat.set_nickname("  alice ");
            assert_eq!(chat.nickname().get_untracked().as_str(), "alice");
            assert_eq!(env.take_sent(), [ClientFrame::Nickname("alice".into())]);
            chat.receive(ServerFrame::Presence(Presence {
                renamed: vec![Rename {
                    id: 1,
                    previous: "Anonymous".into(),
                    nickname: "alice".into(),
                }],
                ..presence(2)
            }));
            assert_eq!(chat.nickname().get_untracked().as_str(), "alice");
            assert_eq!(names(&chat), ["alice", "bob"]);

            // Taken: back to the confirmed one, with the reason.
            chat.set_nickname("Bob");
            assert_eq!(chat.nickname().get_untracked().as_str(), "Bob");
            chat.receive(error(ErrorCode::NicknameTaken, None));
            assert_eq!(chat.nickname().get_untracked().as_str(), "alice");
            assert_eq!(
                chat.notice().get_untracked().as_deref(),
                Some("nickname_taken")
            );
        });
    }

    #[test]
    fn a_refusal_does_not_undo_a_later_choice_still_in_flight() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            chat.set_nickname("bob");
            chat.set_nickname("carol");
            chat.receive(error(ErrorCode::NicknameTaken, None));
            assert_eq!(chat.nickname().get_untracked().as_str(), "carol");
            chat.receive(ServerFrame::Presence(Presence {
                renamed: vec![Rename {
                    id: 1,
                    previous: "Anonymous".into(),
                    nickname: "carol".into(),
                }],
                ..presence(2)
            }));
            assert_eq!(chat.nickname().get_untracked().as_str(), "carol");
            // Settled: the next refusal reverts at once.
            chat.set_nickname("bob");
            chat.receive(error(ErrorCode::NicknameTaken, None));
            assert_eq!(chat.nickname().get_untracked().as_str(), "carol");
        });
    }

    #[test]
    fn an_invalid_nickname_is_refused_before_sending() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            assert!(!chat.set_nickname("   "));
            assert_eq!(
                chat.notice().get_untracked().as_deref(),
                Some("nickname must not be blank")
            );
            assert_eq!(chat.nickname().get_untracked().as_str(), "Anonymous");
            assert_eq!(env.take_sent(), []);
        });
    }

    #[test]
    fn a_reconnect_sends_the_chosen_nickname_after_the_welcome_and_pending_messages() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            chat.set_nickname("alice");
            chat.send("are you there?");
            chat.disconnected();
            assert_eq!(chat.status().get_untracked(), ConnectionStatus::Offline);
            assert!(chat.people().get_untracked().is_empty());
            env.take_sent();

            chat.connecting();
            chat.receive(welcome(8, "Anonymous", vec![person(8, "Anonymous")]));
            assert_eq!(
                env.take_sent(),
                [
                    ClientFrame::Nickname("alice".into()),
                    message_frame("are you there?", "c-1"),
                ]
            );
            assert_eq!(chat.nickname().get_untracked().as_str(), "alice");
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
    fn typing_is_throttled_and_stops_when_the_draft_is_emptied() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            chat.typing("h");
            chat.typing("he");
            env.advance(1_999.0);
            chat.typing("hel");
            assert_eq!(env.take_sent(), [ClientFrame::Typing(true)]);
            env.advance(1.0);
            chat.typing("hell");
            assert_eq!(env.take_sent(), [ClientFrame::Typing(true)]);
            chat.typing("");
            assert_eq!(env.take_sent(), [ClientFrame::Typing(false)]);
            chat.typing("");
            assert_eq!(env.take_sent(), []);

            // Sending ends typing without a "stopped" frame, and the next
            // keystroke says "typing" again at once.
            chat.typing("hi");
            chat.send("hi");
            chat.typing("");
            chat.typing("a");
            assert_eq!(
                env.take_sent(),
                [
                    ClientFrame::Typing(true),
                    message_frame("hi", "c-1"),
                    ClientFrame::Typing(true)
                ]
            );
        });
    }

    #[test]
    fn others_typing_is_shown_until_they_stop_send_leave_or_go_quiet() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            let typing = |id, nickname: &str, active| {
                ServerFrame::Typing(Typing {
                    id,
                    nickname: nickname.into(),
                    active,
                })
            };
            let label = || typing_label(&chat.typists().get_untracked());
            chat.receive(typing(2, "bob", true));
            assert_eq!(label().as_deref(), Some("bob is typing…"));
            chat.receive(typing(3, "carol", true));
            assert_eq!(label().as_deref(), Some("bob and carol are typing…"));
            chat.receive(typing(4, "dave", true));
            assert_eq!(label().as_deref(), Some("several people are typing…"));

            chat.receive(typing(4, "dave", false));
            chat.receive(message(3, "carol", "done"));
            assert_eq!(label().as_deref(), Some("bob is typing…"));
            chat.receive(ServerFrame::Presence(Presence {
                left: vec![person(2, "bob")],
                ..presence(1)
            }));
            assert_eq!(label(), None);

            chat.receive(typing(5, "eve", true));
            env.fire(TYPING_EXPIRES);
            assert_eq!(label(), None, "quiet for 5 s");

            // A newer frame outlives the timer of an older one.
            chat.receive(typing(5, "eve", true));
            let old = env.timers.lock().unwrap().pop().unwrap();
            chat.receive(typing(5, "eve", true));
            (old.1)();
            assert_eq!(label().as_deref(), Some("eve is typing…"));
        });
    }

    #[test]
    fn the_server_rendering_has_no_connection_and_sends_nothing() {
        Owner::new().with(|| {
            let chat = Chat::new(None);
            assert!(!chat.send("hello"));
            chat.typing("hello");
            assert!(chat.set_nickname("alice"));
            assert!(lines(&chat).is_empty());
        });
    }
}
