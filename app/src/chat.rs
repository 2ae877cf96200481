//! The page's state, and the only code that changes it.
//!
//! Components read it through [`Chat`]'s accessors, which track like signal
//! reads but cannot write, and act on it through the user's intents
//! ([`Chat::set_nickname`], [`Chat::send`], [`Chat::retry`], [`Chat::typing`]);
//! the transport reports through [`Chat::connecting`], [`Chat::receive`] and
//! [`Chat::disconnected`]. The logic itself lives in [`State`], plain data
//! whose methods return the [`Effect`]s to carry out; whatever those need
//! from the outside world (a socket, a clock, timers, random ids) comes
//! through [`Env`], so the tests below run it all without a browser. The
//! server renders the page with no `Env` at all.
//!
//! Everything is in one signal on purpose: every signal type and every
//! distinct read of one compiles more code into the page's wasm, and a chat
//! changes little at a time.

use std::{sync::Arc, time::Duration};

use leptos::prelude::*;

use crate::protocol::{
    ChatMessage, ClientFrame, ErrorCode, ErrorPayload, HistoryPage, MessageText, MessageTextError,
    Nickname, OutgoingMessage, Person, Presence, Resume, RoomCount, RoomName, ServerFrame, Typing,
};

/// How many lines the page keeps as new ones arrive; older ones can be paged
/// back in with `history`.
pub const MAX_VISIBLE_MESSAGES: usize = 500;
/// How many it keeps while the reader is scrolled up: trimming the top then
/// would move the lines they are reading.
pub const MAX_HELD_MESSAGES: usize = 2_000;
/// An own message without an ack after this long is shown as failed.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// At most one "typing" frame per this interval (the server relays no more).
pub const TYPING_THROTTLE: Duration = Duration::from_secs(2);
/// Someone who sent no typing frame for this long has stopped typing.
pub const TYPING_EXPIRES: Duration = Duration::from_secs(5);
/// A `history` request's `before` above every id: the newest page.
const LATEST: u64 = 1 << 53;

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
    /// Keeps the resume token for the next page load in this tab (`None`:
    /// forgets it).
    fn store_token(&self, token: Option<&str>);
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Local key for the list; not a server id.
    pub key: u64,
    pub line: Line,
}

impl Entry {
    /// When the server stored it; `None` for joins, leaves and renames, and
    /// for own messages not acknowledged yet.
    pub fn sent_at(&self) -> Option<&str> {
        match &self.line {
            Line::Theirs(message) => Some(&message.sent_at),
            Line::Mine(OwnMessage {
                delivery: Delivery::Sent { sent_at, .. },
                ..
            }) => Some(sent_at),
            _ => None,
        }
    }

    /// Who sent it, `(own, nickname)`; `None` for joins, leaves and renames.
    pub fn sender(&self) -> Option<(bool, &str)> {
        match &self.line {
            Line::Theirs(message) => Some((false, &message.nickname)),
            Line::Mine(own) => Some((true, &own.nickname)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
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

/// A message sent from this page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnMessage {
    pub client_id: String,
    pub nickname: String,
    pub text: String,
    pub delivery: Delivery,
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
        [one] => Some(one.nickname.clone() + " is typing…"),
        [one, two] => Some(one.nickname.clone() + " and " + &two.nickname + " are typing…"),
        _ => Some("several people are typing…".to_owned()),
    }
}

/// Something the state asks of the outside world.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Send(ClientFrame),
    /// Call [`State::ack_timed_out`] after [`ACK_TIMEOUT`].
    AckTimer {
        client_id: String,
        attempt: u32,
    },
    /// Call [`State::typing_expired`] after [`TYPING_EXPIRES`].
    TypingTimer {
        id: u64,
        seq: u64,
    },
    /// Keep (or forget) the resume token for the next page load.
    StoreToken(Option<String>),
}

/// The page's state and its rules, without any I/O.
#[derive(Debug, Clone)]
pub struct State {
    pub status: ConnectionStatus,
    /// The room the page shows; frames about any other room are dropped.
    pub room: RoomName,
    /// The rooms and their online counts from the latest `rooms` frame.
    pub rooms: Vec<RoomCount>,
    /// The room was switched to and its latest page has not arrived yet:
    /// the next `history` of the room replaces the list.
    joining: bool,
    /// The nickname the user chose, shown at once, before the server agrees.
    pub nickname: Nickname,
    pub entries: Vec<Entry>,
    /// Who is online as far as this page knows; fewer than `online` in a
    /// room too big to list.
    pub people: Vec<Person>,
    pub online: u64,
    /// This connection's id, once welcomed.
    pub me: Option<u64>,
    pub typists: Vec<Typist>,
    /// The last problem worth telling the user about.
    pub notice: Option<String>,
    /// Nothing older than the first line is stored: no more to page in.
    pub beginning: bool,
    /// A `history` request is in flight.
    pub loading: bool,
    /// The reader is at the newest line, so the list follows new ones.
    pub at_bottom: bool,
    /// Messages from others that came while the reader was scrolled up.
    pub unread: usize,
    /// The key of the first message that came unread, which a divider
    /// marks: kept once read, until messages come unread again.
    pub divider: Option<u64>,
    /// The newest message from someone else as it arrived (not from
    /// history), `nickname: text`, for screen readers to announce; it
    /// changes with every message, even one that repeats the last.
    pub announcement: String,
    /// The resume token from the last welcome: who this page was.
    token: Option<String>,
    /// The greatest message id seen; a `message` at or below it is one the
    /// page already has.
    last_id: Option<u64>,
    /// The nickname the server last confirmed for this connection.
    confirmed: Nickname,
    /// Nickname requests sent and not yet answered by a rename or an error.
    awaiting_rename: u32,
    next_key: u64,
    /// When the last `typing: true` went out, while the draft is not empty.
    typing_sent_at: Option<f64>,
    typing_seq: u64,
}

impl Default for State {
    fn default() -> Self {
        Self {
            status: ConnectionStatus::Connecting,
            room: RoomName::general(),
            rooms: Vec::new(),
            joining: false,
            nickname: Nickname::default(),
            entries: Vec::new(),
            people: Vec::new(),
            online: 0,
            me: None,
            typists: Vec::new(),
            notice: None,
            beginning: true,
            loading: false,
            at_bottom: true,
            unread: 0,
            divider: None,
            announcement: String::new(),
            token: None,
            last_id: None,
            confirmed: Nickname::default(),
            awaiting_rename: 0,
            next_key: 0,
            typing_sent_at: None,
            typing_seq: 0,
        }
    }
}

type Effects = Vec<Effect>;

impl State {
    /// A page's first state: the server's first page of history, and the
    /// token this tab kept from its last connection.
    pub fn first(page: HistoryPage, token: Option<String>) -> Self {
        let mut state = Self {
            token,
            // The server renders only valid rooms; anything else is general.
            room: RoomName::parse(&page.room).unwrap_or_default(),
            beginning: page.beginning,
            // The page holds everything stored when it was rendered: even
            // with no message in it, whatever comes later must be sent.
            last_id: Some(0),
            ..Self::default()
        };
        for message in page.messages {
            state.seen(message.id);
            state.push(Line::Theirs(message));
        }
        state
    }

    fn is_online(&self) -> bool {
        self.status == ConnectionStatus::Online
    }

    /// The first frame on a new connection: who this page was and what it
    /// has, so the server sends only what it missed.
    pub fn resume(&self) -> ClientFrame {
        ClientFrame::Resume(Resume {
            token: self.token.clone(),
            after: self.last_id,
            room: Some(self.room.to_string()),
        })
    }

    fn seen(&mut self, id: u64) {
        self.last_id = self.last_id.max(Some(id));
    }

    /// The server's id of the oldest message shown, or just past the newest
    /// one seen if none is.
    fn oldest_id(&self) -> Option<u64> {
        self.entries
            .iter()
            .find_map(|entry| match &entry.line {
                Line::Theirs(message) => Some(message.id),
                Line::Mine(OwnMessage {
                    delivery: Delivery::Sent { id, .. },
                    ..
                }) => Some(*id),
                _ => None,
            })
            .or(self.last_id.map(|id| id + 1))
    }

    /// Asks for the page of messages before the oldest shown, once at a time.
    fn load_older(&mut self, fx: &mut Effects) {
        if self.loading || self.beginning || self.joining || !self.is_online() {
            return;
        }
        if let Some(before) = self.oldest_id() {
            self.loading = true;
            fx.push(Effect::Send(ClientFrame::History { before }));
        }
    }

    /// Puts an older page above the lines shown, without trimming any.
    fn prepend(&mut self, page: HistoryPage) {
        self.loading = false;
        self.beginning = page.beginning;
        let oldest = self.oldest_id().unwrap_or(u64::MAX);
        let mut entries = Vec::new();
        for message in page.messages {
            if message.id < oldest {
                self.next_key += 1;
                entries.push(Entry {
                    key: self.next_key,
                    line: Line::Theirs(message),
                });
            }
        }
        entries.append(&mut self.entries);
        self.entries = entries;
    }

    /// The room's latest page, which a switch asked for, as the new list:
    /// lines that came after the switch (messages newer than the page, own
    /// messages typed since) stay below it.
    fn replace(&mut self, page: HistoryPage) {
        self.joining = false;
        self.loading = false;
        self.beginning = page.beginning;
        let newest = page.messages.last().map_or(0, |message| message.id);
        self.seen(newest);
        let later = std::mem::take(&mut self.entries);
        let own = |id| {
            later.iter().any(|entry| {
                matches!(&entry.line, Line::Mine(OwnMessage {
                    delivery: Delivery::Sent { id: sent, .. },
                    ..
                }) if *sent == id)
            })
        };
        for message in page.messages {
            if !own(message.id) {
                self.push(Line::Theirs(message));
            }
        }
        for entry in later {
            if !matches!(&entry.line, Line::Theirs(message) if message.id <= newest) {
                self.push(entry.line);
            }
        }
    }

    /// Shows `room` instead: an empty list until its latest page arrives,
    /// nobody online or typing until its welcome. Own messages still pending
    /// in the old room leave the view (the server has those it got). Online
    /// (or connecting: the frame follows `resume`) it asks to join; offline
    /// the next `resume` names the room.
    fn switch_room(&mut self, room: RoomName, fx: &mut Effects) {
        self.room = room;
        self.entries.clear();
        (self.at_bottom, self.unread, self.divider) = (true, 0, None);
        self.people.clear();
        self.online = 0;
        self.typists.clear();
        self.typing_sent_at = None;
        self.last_id = None;
        self.beginning = false;
        self.loading = false;
        self.joining = true;
        if self.status != ConnectionStatus::Offline {
            fx.push(Effect::Send(ClientFrame::Join {
                room: self.room.to_string(),
            }));
        }
    }

    fn connecting(&mut self, fx: &mut Effects) {
        self.status = ConnectionStatus::Connecting;
        fx.push(Effect::Send(self.resume()));
    }

    /// The user asks for `nickname`: shown at once, asked of the server now
    /// or after the next welcome.
    fn set_nickname(&mut self, nickname: Nickname, fx: &mut Effects) {
        self.notice = None;
        if nickname == self.nickname {
            return;
        }
        self.nickname = nickname;
        let settled = self.awaiting_rename == 0 && self.confirmed == self.nickname;
        if self.is_online() && !settled {
            self.awaiting_rename += 1;
            fx.push(Effect::Send(ClientFrame::Nickname(
                self.nickname.as_str().to_owned(),
            )));
        }
    }

    fn send(&mut self, text: String, client_id: String, fx: &mut Effects) {
        // The list follows an own message, wherever the reader was.
        (self.at_bottom, self.unread) = (true, 0);
        self.push(Line::Mine(OwnMessage {
            client_id: client_id.clone(),
            nickname: self.nickname.to_string(),
            text: text.clone(),
            delivery: Delivery::Pending { attempt: 1 },
        }));
        // The server clears the typing indicator when the message arrives.
        self.typing_sent_at = None;
        self.notice = None;
        // Offline, it waits as pending and goes out after the next welcome.
        if self.is_online() {
            transmit(client_id, text, 1, fx);
        }
    }

    fn retry(&mut self, client_id: &str, fx: &mut Effects) {
        if !self.is_online() {
            return;
        }
        let Some(own) = self.own(client_id) else {
            return;
        };
        let Delivery::Failed { attempt } = own.delivery else {
            return;
        };
        own.delivery = Delivery::Pending {
            attempt: attempt + 1,
        };
        transmit(own.client_id.clone(), own.text.clone(), attempt + 1, fx);
    }

    pub fn ack_timed_out(&mut self, client_id: &str, attempt: u32) {
        if let Some(own) = self.own(client_id) {
            if own.delivery == (Delivery::Pending { attempt }) {
                own.delivery = Delivery::Failed { attempt };
            }
        }
    }

    /// The draft is now `draft`; `true` if that changed anything.
    fn typing(&mut self, draft: &str, now: f64, fx: &mut Effects) -> bool {
        if !self.is_online() {
            return false;
        }
        let throttle = TYPING_THROTTLE.as_millis() as f64;
        if draft.trim().is_empty() {
            if self.typing_sent_at.take().is_none() {
                return false;
            }
            fx.push(Effect::Send(ClientFrame::Typing(false)));
        } else if self.typing_sent_at.is_none_or(|at| now - at >= throttle) {
            self.typing_sent_at = Some(now);
            fx.push(Effect::Send(ClientFrame::Typing(true)));
        } else {
            return false;
        }
        true
    }

    /// The connection is gone: what others are doing is unknown until the
    /// next welcome. If another tab took this page's identity over, the next
    /// connection starts as someone new instead of taking it back.
    fn disconnected(&mut self, taken_over: bool, fx: &mut Effects) {
        if taken_over {
            self.token = None;
            fx.push(Effect::StoreToken(None));
        }
        self.status = ConnectionStatus::Offline;
        self.people.clear();
        self.online = 0;
        self.typists.clear();
        self.typing_sent_at = None;
        self.awaiting_rename = 0;
        // An answer to a request on the old connection will not come.
        self.loading = false;
    }

    fn receive(&mut self, frame: ServerFrame, fx: &mut Effects) {
        // What still arrives for the room the page left is dropped.
        let room = match &frame {
            ServerFrame::Welcome(frame) => &frame.room,
            ServerFrame::Message(frame) => &frame.room,
            ServerFrame::History(frame) => &frame.room,
            ServerFrame::Presence(frame) => &frame.room,
            ServerFrame::Typing(frame) => &frame.room,
            _ => self.room.as_str(),
        };
        if room != self.room.as_str() {
            return;
        }
        match frame {
            ServerFrame::Welcome(welcome) => {
                // A welcome also answers a join on an open connection.
                let reconnected = !self.is_online();
                let previous = self.me.replace(welcome.id);
                self.online = welcome.online;
                self.people = welcome.people;
                self.typists.clear();
                self.status = ConnectionStatus::Online;
                // The server knew the token and kept the id (a reloaded page
                // knows no id yet): the same person again, under the
                // nickname it had, which the page adopts unless the user has
                // asked for another one since. After a restart the server
                // may keep the token but not the person: then the page asks
                // for its nickname again.
                let resumed = self.token.as_deref() == Some(welcome.token.as_str())
                    && previous.is_none_or(|id| id == welcome.id);
                let renaming = self.nickname != self.confirmed;
                self.confirmed = Nickname::parse(&welcome.nickname).unwrap_or_default();
                if resumed && !renaming {
                    self.nickname = self.confirmed.clone();
                }
                if !resumed {
                    fx.push(Effect::StoreToken(Some(welcome.token.clone())));
                    self.token = Some(welcome.token);
                }
                // A new identity starts as the server's default: tell it the
                // chosen nickname again, then what is still unanswered.
                let resend = self.nickname != self.confirmed;
                self.awaiting_rename = u32::from(resend);
                if resend {
                    fx.push(Effect::Send(ClientFrame::Nickname(
                        self.nickname.as_str().to_owned(),
                    )));
                }
                // Pending messages (typed offline, or unacked when the last
                // connection dropped) go out again under their own ids, so
                // none is stored twice, with a fresh ack timer each.
                for entry in &mut self.entries {
                    if let Line::Mine(own) = &mut entry.line {
                        if let Delivery::Pending { attempt } = own.delivery {
                            if reconnected {
                                own.delivery = Delivery::Pending {
                                    attempt: attempt + 1,
                                };
                                transmit(own.client_id.clone(), own.text.clone(), attempt + 1, fx);
                            }
                        }
                    }
                }
                // Switched while offline (the resume named the room): its
                // latest page is still to be asked for.
                if self.joining && !self.loading {
                    self.loading = true;
                    fx.push(Effect::Send(ClientFrame::History { before: LATEST }));
                }
            }
            ServerFrame::Message(message) => {
                // Ids only grow on one connection: a lower one was sent
                // again after a reconnect, and is shown already.
                if Some(message.id) <= self.last_id {
                    return;
                }
                self.seen(message.id);
                let from = message.from;
                self.typists.retain(|typist| typist.id != from);
                let said = message.nickname.clone() + ": " + &message.text;
                // A live region speaks only when its text changes: the same
                // words again get a zero-width space, which is not read out.
                self.announcement = if self.announcement == said {
                    said + "\u{200b}"
                } else {
                    said
                };
                self.push(Line::Theirs(message));
                if !self.at_bottom {
                    if self.unread == 0 {
                        self.divider = Some(self.next_key);
                    }
                    self.unread += 1;
                }
            }
            ServerFrame::Ack(ack) => {
                self.seen(ack.id);
                // An own message sent before a drop may have come back in
                // the catch-up, as someone else's, before this ack.
                self.entries.retain(
                    |entry| !matches!(&entry.line, Line::Theirs(message) if message.id == ack.id),
                );
                if let Some(own) = self.own(&ack.client_id) {
                    own.delivery = Delivery::Sent {
                        id: ack.id,
                        sent_at: ack.sent_at,
                    };
                }
            }
            ServerFrame::Presence(presence) => self.apply_presence(presence),
            ServerFrame::Typing(typing) => self.someone_typing(typing, fx),
            ServerFrame::Error(error) => self.refused(error),
            ServerFrame::History(page) if self.joining => self.replace(page),
            ServerFrame::History(page) => self.prepend(page),
            ServerFrame::Rooms(list) => self.rooms = list.rooms,
        }
    }

    fn refused(&mut self, error: ErrorPayload) {
        // The only request without a client_id that the store can fail.
        if error.code == ErrorCode::Unavailable && error.client_id.is_none() {
            self.loading = false;
        }
        if let Some(own) = error.client_id.as_deref().and_then(|id| self.own(id)) {
            if let Delivery::Pending { attempt } = own.delivery {
                own.delivery = Delivery::Failed { attempt };
            }
        } else if matches!(
            error.code,
            ErrorCode::NicknameTaken | ErrorCode::InvalidNickname
        ) {
            self.awaiting_rename = self.awaiting_rename.saturating_sub(1);
            if self.awaiting_rename == 0 {
                self.nickname = self.confirmed.clone();
            }
        }
        self.notice = Some(error.message);
    }

    /// The server now calls this connection `nickname`.
    fn confirm_own(&mut self, nickname: &str) {
        let confirmed = Nickname::parse(nickname).unwrap_or_default();
        if self.confirmed == confirmed {
            return;
        }
        self.confirmed = confirmed;
        if self.confirmed == self.nickname {
            self.awaiting_rename = 0;
        } else {
            self.awaiting_rename = self.awaiting_rename.saturating_sub(1);
            if self.awaiting_rename == 0 {
                self.nickname = self.confirmed.clone();
            }
        }
    }

    /// Applies who came, went or changed name. Idempotent: a join of someone
    /// listed, a leave of someone unlisted or a rename to the name shown
    /// changes nothing and says nothing.
    fn apply_presence(&mut self, presence: Presence) {
        let me = self.me;
        let mut lines = Vec::new();
        let mut own_names = Vec::new();
        for person in presence.joined {
            if Some(person.id) == me {
                own_names.push(person.nickname.clone());
            }
            match self.people.iter_mut().find(|p| p.id == person.id) {
                // Joined and renamed within one interval: one join, new name.
                Some(listed) => listed.nickname = person.nickname,
                None => {
                    if Some(person.id) != me {
                        lines.push(Line::Joined(person.nickname.clone()));
                    }
                    self.people.push(person);
                }
            }
        }
        for rename in presence.renamed {
            if Some(rename.id) == me {
                own_names.push(rename.nickname.clone());
            }
            if let Some(listed) = self.people.iter_mut().find(|p| p.id == rename.id) {
                if listed.nickname != rename.nickname {
                    listed.nickname = rename.nickname.clone();
                    lines.push(Line::Renamed {
                        previous: rename.previous,
                        nickname: rename.nickname.clone(),
                    });
                }
            }
            for typist in self.typists.iter_mut().filter(|t| t.id == rename.id) {
                typist.nickname = rename.nickname.clone();
            }
        }
        for person in presence.left {
            if let Some(at) = self.people.iter().position(|p| p.id == person.id) {
                lines.push(Line::Left(self.people.remove(at).nickname));
            }
            self.typists.retain(|typist| typist.id != person.id);
        }
        if let Some(everyone) = presence.people {
            self.people = everyone;
            own_names.extend(
                self.people
                    .iter()
                    .filter(|p| Some(p.id) == me)
                    .map(|p| p.nickname.clone()),
            );
        }
        for name in own_names {
            self.confirm_own(&name);
        }
        self.online = presence.online;
        for line in lines {
            self.push(line);
        }
    }

    fn someone_typing(&mut self, typing: Typing, fx: &mut Effects) {
        let Typing {
            room: _,
            id,
            nickname,
            active,
        } = typing;
        if Some(id) == self.me {
            return;
        }
        if !active {
            self.typists.retain(|typist| typist.id != id);
            return;
        }
        self.typing_seq += 1;
        let seq = self.typing_seq;
        match self.typists.iter_mut().find(|t| t.id == id) {
            Some(typist) => {
                typist.nickname = nickname;
                typist.seq = seq;
            }
            None => self.typists.push(Typist { id, nickname, seq }),
        }
        fx.push(Effect::TypingTimer { id, seq });
    }

    /// The reader scrolled to the bottom or away from it; `true` if that
    /// changes what is shown: at the bottom, unread messages are read.
    pub fn scrolled(&mut self, at_bottom: bool) -> bool {
        self.at_bottom = at_bottom;
        let read = at_bottom && self.unread > 0;
        if read {
            self.unread = 0;
        }
        read
    }

    /// `true` if the typist was still shown from that frame and is now gone.
    pub fn typing_expired(&mut self, id: u64, seq: u64) -> bool {
        let before = self.typists.len();
        self.typists.retain(|t| !(t.id == id && t.seq == seq));
        self.typists.len() != before
    }

    fn own(&mut self, client_id: &str) -> Option<&mut OwnMessage> {
        self.entries
            .iter_mut()
            .rev()
            .find_map(|entry| match &mut entry.line {
                Line::Mine(own) if own.client_id == client_id => Some(own),
                _ => None,
            })
    }

    /// Appends a line, dropping the oldest beyond [`MAX_VISIBLE_MESSAGES`]
    /// (paged-in ones too) at the bottom, where that cannot be seen, and
    /// only beyond [`MAX_HELD_MESSAGES`] while the reader is scrolled up.
    fn push(&mut self, line: Line) {
        self.next_key += 1;
        let keep = if self.at_bottom {
            MAX_VISIBLE_MESSAGES
        } else {
            MAX_HELD_MESSAGES
        };
        if self.entries.len() >= keep {
            self.entries.drain(..=self.entries.len() - keep);
            self.beginning = false;
        }
        self.entries.push(Entry {
            key: self.next_key,
            line,
        });
    }
}

fn message_frame(client_id: &str, text: &str) -> ClientFrame {
    ClientFrame::Message(OutgoingMessage {
        text: text.to_owned(),
        client_id: Some(client_id.to_owned()),
    })
}

fn transmit(client_id: String, text: String, attempt: u32, fx: &mut Effects) {
    fx.push(Effect::Send(message_frame(&client_id, &text)));
    fx.push(Effect::AckTimer { client_id, attempt });
}

/// The page's chat: [`State`] in one signal, wired to an [`Env`].
#[derive(Clone, Copy)]
pub struct Chat {
    state: RwSignal<State>,
    env: StoredValue<Option<Arc<dyn Env>>>,
}

impl Chat {
    /// The state of a fresh page; `None` for the server's rendering, which
    /// never connects.
    pub fn new(env: Option<Arc<dyn Env>>) -> Self {
        Self::from_state(env, State::default())
    }

    /// A page starting from `state` (see [`State::first`]).
    pub fn from_state(env: Option<Arc<dyn Env>>, state: State) -> Self {
        Self {
            state: RwSignal::new(state),
            env: StoredValue::new(env),
        }
    }

    /// Reads the state, tracked like any signal read.
    pub fn with<U>(&self, read: impl FnOnce(&State) -> U) -> U {
        self.state.with(read)
    }

    pub fn status(&self) -> ConnectionStatus {
        self.with(|state| state.status)
    }

    pub fn is_online(&self) -> bool {
        self.status() == ConnectionStatus::Online
    }

    pub fn nickname(&self) -> Nickname {
        self.with(|state| state.nickname.clone())
    }

    pub fn entries(&self) -> Vec<Entry> {
        self.with(|state| state.entries.clone())
    }

    pub fn people(&self) -> Vec<Person> {
        self.with(|state| state.people.clone())
    }

    pub fn online(&self) -> u64 {
        self.with(|state| state.online)
    }

    pub fn me(&self) -> Option<u64> {
        self.with(|state| state.me)
    }

    pub fn typing_label(&self) -> Option<String> {
        self.with(|state| typing_label(&state.typists))
    }

    pub fn notice(&self) -> Option<String> {
        self.with(|state| state.notice.clone())
    }

    pub fn beginning(&self) -> bool {
        self.with(|state| state.beginning)
    }

    pub fn room(&self) -> RoomName {
        self.with(|state| state.room.clone())
    }

    fn env(&self) -> Option<Arc<dyn Env>> {
        self.env.get_value()
    }

    /// Changes the state, then carries out what it asked for.
    fn change(&self, change: impl FnOnce(&mut State, &mut Effects)) {
        let mut fx = Vec::new();
        self.state.update(|state| change(state, &mut fx));
        self.run(fx);
    }

    fn run(&self, fx: Effects) {
        let Some(env) = self.env() else {
            return;
        };
        let chat = *self;
        for effect in fx {
            match effect {
                Effect::Send(frame) => env.send(frame),
                Effect::AckTimer { client_id, attempt } => env.after(
                    ACK_TIMEOUT,
                    Box::new(move || {
                        chat.state
                            .update(|state| state.ack_timed_out(&client_id, attempt))
                    }),
                ),
                Effect::TypingTimer { id, seq } => env.after(
                    TYPING_EXPIRES,
                    Box::new(move || {
                        chat.state
                            .maybe_update(|state| state.typing_expired(id, seq))
                    }),
                ),
                Effect::StoreToken(token) => env.store_token(token.as_deref()),
            }
        }
    }

    // ---- what the user does ----

    /// Shows the nickname typed in `raw` at once and asks the server for it;
    /// while offline it is asked for after the next welcome. `false` (with a
    /// notice) when it breaks the rules.
    pub fn set_nickname(&self, raw: &str) -> bool {
        match Nickname::parse(raw) {
            Ok(nickname) => {
                self.change(|state, fx| state.set_nickname(nickname, fx));
                true
            }
            Err(err) => {
                self.change(|state, _| state.notice = Some(err.to_string()));
                false
            }
        }
    }

    /// Sends the text in `raw` as a message with a fresh `client_id` and shows
    /// it at once as pending; while offline it waits, pending, for the next
    /// connection. `true` when the draft can be cleared; blank
    /// text is ignored, text breaking the rules gets a notice.
    pub fn send(&self, raw: &str) -> bool {
        let Some(env) = self.env() else {
            return false;
        };
        match MessageText::parse(raw) {
            Ok(text) => {
                let client_id = env.new_client_id();
                self.change(|state, fx| state.send(text.into_string(), client_id, fx));
                true
            }
            Err(MessageTextError::Empty) => false,
            Err(err) => {
                self.change(|state, _| state.notice = Some(err.to_string()));
                false
            }
        }
    }

    /// Sends a failed message again, under the same `client_id`, so the
    /// server relays it once even if the first attempt got through.
    pub fn retry(&self, client_id: &str) {
        self.change(|state, fx| state.retry(client_id, fx));
    }

    /// The draft changed to `draft`: says "typing" at most once per
    /// [`TYPING_THROTTLE`], and "stopped" when the draft is emptied.
    /// Asks for older messages, unless a request is in flight or the
    /// conversation's beginning is shown.
    pub fn load_older(&self) {
        self.change(|state, fx| state.load_older(fx));
    }

    /// The reader scrolled the list to its bottom (`true`) or away from it:
    /// the list follows new lines only at the bottom, and counts messages
    /// from others as unread elsewhere.
    pub fn scrolled(&self, at_bottom: bool) {
        self.state.maybe_update(|state| state.scrolled(at_bottom));
    }

    /// Shows `room` instead of the current one, over the same connection
    /// (its list, people and typists cleared); `false` (nothing changes) if
    /// it is the current one.
    pub fn switch_room(&self, room: RoomName) -> bool {
        let switch = self.state.with_untracked(|state| state.room != room);
        if switch {
            self.change(|state, fx| state.switch_room(room, fx));
        }
        switch
    }

    pub fn typing(&self, draft: &str) {
        let Some(env) = self.env() else {
            return;
        };
        let now = env.now_ms();
        let mut fx = Vec::new();
        // Bookkeeping only: nothing on screen changes.
        self.state
            .update_untracked(|state| state.typing(draft, now, &mut fx));
        self.run(fx);
    }

    // ---- what the transport reports ----

    /// A connection attempt starts: queues the `resume` frame that must go
    /// first on it.
    pub fn connecting(&self) {
        self.change(State::connecting);
    }

    /// The connection is gone; `taken_over` if the server closed it because
    /// another tab resumed as this page's identity (close code 4001).
    pub fn disconnected(&self, taken_over: bool) {
        self.change(|state, fx| state.disconnected(taken_over, fx));
    }

    /// Applies a frame from the server.
    pub fn receive(&self, frame: ServerFrame) {
        self.change(|state, fx| state.receive(frame, fx));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::protocol::{Ack, Rename, RoomList, Welcome};

    type Timer = (Duration, Box<dyn FnOnce() + Send + Sync>);

    /// A world the test controls: frames are recorded, ids count up, the
    /// clock and the timers move only when told.
    #[derive(Default)]
    struct TestEnv {
        sent: Mutex<Vec<ClientFrame>>,
        ids: Mutex<u32>,
        now: Mutex<f64>,
        timers: Mutex<Vec<Timer>>,
        stored: Mutex<Option<String>>,
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
            room: "general".into(),
            id,
            nickname: nickname.into(),
            online: people.len() as u64,
            people,
            token: format!("token-{id}"),
        })
    }

    /// A presence frame with one rename, `online` people online.
    fn renamed(id: u64, previous: &str, nickname: &str, online: u64) -> ServerFrame {
        ServerFrame::Presence(Presence {
            renamed: vec![Rename {
                id,
                previous: previous.into(),
                nickname: nickname.into(),
            }],
            ..presence(online)
        })
    }

    fn presence(online: u64) -> Presence {
        Presence {
            room: "general".into(),
            online,
            ..Presence::default()
        }
    }

    fn message(from: u64, nickname: &str, text: &str) -> ServerFrame {
        ServerFrame::Message(ChatMessage {
            room: "general".into(),
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
            .into_iter()
            .map(|entry| match entry.line {
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

    fn names(chat: &Chat) -> Vec<String> {
        chat.people().into_iter().map(|p| p.nickname).collect()
    }

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
            assert_eq!(chat.online(), 1);
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
    fn own_messages_go_from_pending_to_sent_on_their_ack() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            assert!(chat.set_nickname("alice"));
            env.take_sent();
            assert!(chat.send(" hello "));
            assert_eq!(env.take_sent(), [message_frame("hello", "c-1")]);
            assert_eq!(lines(&chat), ["alice: hello [pending]"]);

            chat.receive(ack("c-1", 42));
            let Line::Mine(own) = &chat.entries()[0].line else {
                panic!("own message expected");
            };
            assert_eq!(
                own.delivery,
                Delivery::Sent {
                    id: 42,
                    sent_at: "2026-11-25T14:00:00.000Z".into()
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
            assert_eq!(chat.notice(), None);
            assert!(!chat.send(&"a".repeat(2_001)));
            assert!(chat.notice().is_some());
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
            assert_eq!(chat.notice().as_deref(), Some("rate_limited"));

            env.fire(ACK_TIMEOUT);
            assert_eq!(
                lines(&chat),
                ["Anonymous: one [failed]", "Anonymous: two [failed]"]
            );

            env.take_sent();
            chat.retry("c-2");
            assert_eq!(env.take_sent(), [message_frame("two", "c-2")]);
            assert_eq!(lines(&chat)[1], "Anonymous: two [pending]");
            chat.receive(ack("c-2", 7));
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

    /// bob's message number `id`.
    fn bob_said(id: u64, text: &str) -> ChatMessage {
        match message(2, "bob", text) {
            ServerFrame::Message(message) => ChatMessage { id, ..message },
            _ => unreachable!(),
        }
    }

    fn from_bob(id: u64, text: &str) -> ServerFrame {
        ServerFrame::Message(bob_said(id, text))
    }

    #[test]
    fn messages_that_come_while_scrolled_up_are_counted_and_the_first_marked() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            chat.receive(from_bob(1, "seen"));
            assert_eq!(chat.with(|s| (s.unread, s.divider)), (0, None));
            chat.scrolled(false);
            chat.receive(from_bob(2, "unread 1"));
            chat.receive(from_bob(3, "unread 2"));
            let first = chat.entries()[1].key;
            assert_eq!(chat.with(|s| (s.unread, s.divider)), (2, Some(first)));
            // At the bottom they are read; the divider stays where it was.
            chat.scrolled(true);
            assert_eq!(chat.with(|s| (s.unread, s.divider)), (0, Some(first)));
            chat.receive(from_bob(4, "read at once"));
            assert_eq!(chat.with(|s| (s.unread, s.divider)), (0, Some(first)));
            // Away again, the divider moves to the next unread message.
            chat.scrolled(false);
            chat.receive(from_bob(5, "unread 3"));
            let next = chat.entries()[4].key;
            assert_eq!(chat.with(|s| (s.unread, s.divider)), (1, Some(next)));
        });
    }

    #[test]
    fn an_own_message_or_another_room_takes_the_reader_back_to_the_bottom() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            chat.scrolled(false);
            chat.receive(from_bob(1, "unread"));
            assert!(chat.send("mine"));
            assert_eq!(chat.with(|s| (s.at_bottom, s.unread)), (true, 0));
            chat.scrolled(false);
            chat.receive(from_bob(2, "unread"));
            assert!(chat.switch_room(RoomName::parse("elsewhere").unwrap()));
            assert_eq!(
                chat.with(|s| (s.at_bottom, s.unread, s.divider)),
                (true, 0, None)
            );
        });
    }

    #[test]
    fn only_messages_that_arrive_live_are_announced() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            chat.receive(ServerFrame::History(HistoryPage {
                room: "general".into(),
                messages: vec![bob_said(1, "from history")],
                beginning: true,
            }));
            assert_eq!(chat.with(|s| s.announcement.clone()), "");
            chat.receive(from_bob(2, "live"));
            assert_eq!(chat.with(|s| s.announcement.clone()), "bob: live");
            assert!(chat.send("mine"));
            assert_eq!(chat.with(|s| s.announcement.clone()), "bob: live");
        });
    }

    #[test]
    fn the_same_message_twice_in_a_row_is_announced_twice() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            let mut heard = Vec::new();
            for id in 1..=3 {
                chat.receive(from_bob(id, "ok"));
                heard.push(chat.with(|s| s.announcement.clone()));
            }
            assert_eq!(heard, ["bob: ok", "bob: ok\u{200b}", "bob: ok"]);
        });
    }

    #[test]
    fn relayed_messages_and_errors_are_shown() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            chat.receive(message(2, "bob", "hi"));
            assert_eq!(lines(&chat), ["bob: hi"]);
            chat.receive(error(ErrorCode::InvalidMessage, None));
            assert_eq!(chat.notice().as_deref(), Some("invalid_message"));
        });
    }

    #[test]
    fn the_list_keeps_only_the_newest_lines() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            for i in 0..MAX_VISIBLE_MESSAGES + 5 {
                chat.send(&i.to_string());
            }
            let entries = chat.entries();
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
            assert_eq!(chat.online(), 3);
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
            assert_eq!(chat.online(), 40);
        });
    }

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
    fn a_message_typed_offline_waits_as_pending_and_goes_out_after_the_welcome() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            chat.disconnected(false);
            env.take_sent();
            assert!(chat.send("typed offline"), "the draft is taken");
            assert_eq!(env.take_sent(), [], "nothing goes to a dead socket");
            assert_eq!(lines(&chat), ["Anonymous: typed offline [pending]"]);
            // No ack timer ran out while offline.
            env.fire(ACK_TIMEOUT);
            assert_eq!(lines(&chat), ["Anonymous: typed offline [pending]"]);

            chat.connecting();
            assert_eq!(env.take_sent(), [resume(Some("token-1"), None)]);
            chat.receive(welcome(9, "Anonymous", vec![person(9, "Anonymous")]));
            assert_eq!(env.take_sent(), [message_frame("typed offline", "c-1")]);
            chat.receive(ack("c-1", 1));
            assert_eq!(lines(&chat), ["Anonymous: typed offline [sent]"]);
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
            assert!(chat.people().is_empty());
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
                    room: "general".into(),
                    id,
                    nickname: nickname.into(),
                    active,
                })
            };
            let label = || chat.typing_label();
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

    /// The server's ack of `client_id` as message `id`.
    fn ack(client_id: &str, id: u64) -> ServerFrame {
        ServerFrame::Ack(Ack {
            client_id: client_id.into(),
            id,
            sent_at: "2026-11-25T14:00:00.000Z".into(),
        })
    }

    fn message_with_id(id: u64, from: u64, text: &str) -> ChatMessage {
        ChatMessage {
            room: "general".into(),
            id,
            sent_at: "2026-11-25T14:00:00Z".into(),
            from,
            nickname: "bob".into(),
            text: text.into(),
        }
    }

    fn page(ids: std::ops::RangeInclusive<u64>, beginning: bool) -> HistoryPage {
        HistoryPage {
            room: "general".into(),
            messages: ids
                .map(|id| message_with_id(id, 2, &id.to_string()))
                .collect(),
            beginning,
        }
    }

    /// What an empty store renders: nothing, from the beginning.
    fn empty_page() -> HistoryPage {
        HistoryPage {
            room: "general".into(),
            messages: Vec::new(),
            beginning: true,
        }
    }

    fn resume(token: Option<&str>, after: Option<u64>) -> ClientFrame {
        ClientFrame::Resume(Resume {
            token: token.map(str::to_owned),
            after,
            room: Some("general".into()),
        })
    }

    /// A chat seeded like a loaded page, with `token` from sessionStorage.
    fn first_chat(page: HistoryPage, token: Option<&str>) -> (Chat, Arc<TestEnv>) {
        let env = Arc::new(TestEnv::default());
        let state = State::first(page, token.map(str::to_owned));
        let chat = Chat::from_state(Some(env.clone() as Arc<dyn Env>), state);
        (chat, env)
    }

    #[test]
    fn a_page_starts_from_the_first_page_the_server_rendered() {
        Owner::new().with(|| {
            let (chat, env) = first_chat(page(3..=5, false), Some("t"));
            assert_eq!(lines(&chat), ["bob: 3", "bob: 4", "bob: 5"]);
            assert!(!chat.beginning());
            chat.connecting();
            assert_eq!(env.take_sent(), [resume(Some("t"), Some(5))]);

            let empty = State::first(empty_page(), None);
            assert!(empty.beginning && empty.entries.is_empty());
            // Nothing stored yet when it was rendered: anything stored since
            // is missed, and asked for.
            assert_eq!(empty.resume(), resume(None, Some(0)));
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
    fn messages_at_or_below_the_last_id_are_duplicates_and_dropped() {
        Owner::new().with(|| {
            let (chat, _) = first_chat(page(1..=2, true), None);
            // The catch-up before the welcome, while still connecting.
            chat.connecting();
            chat.receive(ServerFrame::Message(message_with_id(2, 2, "2")));
            chat.receive(ServerFrame::Message(message_with_id(3, 2, "3")));
            chat.receive(ServerFrame::Message(message_with_id(3, 2, "3")));
            assert_eq!(chat.status(), ConnectionStatus::Connecting);
            assert_eq!(lines(&chat), ["bob: 1", "bob: 2", "bob: 3"]);
        });
    }

    #[test]
    fn an_ack_removes_the_own_message_that_came_back_in_the_catch_up() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            chat.send("sent before the drop");
            chat.disconnected(false);
            chat.connecting();
            env.take_sent();
            // Stored before the drop: it comes back as someone else's.
            chat.receive(ServerFrame::Message(message_with_id(
                4,
                1,
                "sent before the drop",
            )));
            chat.receive(welcome(1, "Anonymous", vec![person(1, "Anonymous")]));
            assert_eq!(
                env.take_sent(),
                [message_frame("sent before the drop", "c-1")]
            );
            chat.receive(ack("c-1", 4));
            assert_eq!(lines(&chat), ["Anonymous: sent before the drop [sent]"]);
        });
    }

    #[test]
    fn older_pages_are_prepended_once_at_a_time_until_the_beginning() {
        Owner::new().with(|| {
            let (chat, env) = first_chat(page(10..=11, false), None);
            chat.load_older();
            assert_eq!(env.take_sent(), [], "not while offline");
            chat.receive(welcome(1, "Anonymous", vec![person(1, "Anonymous")]));
            env.take_sent();
            chat.load_older();
            chat.load_older();
            assert_eq!(
                env.take_sent(),
                [ClientFrame::History { before: 10 }],
                "one request in flight"
            );
            assert!(chat.with(|state| state.loading));
            // Anything not older than the oldest shown is dropped.
            chat.receive(ServerFrame::History(page(8..=10, false)));
            assert!(!chat.with(|state| state.loading));
            assert_eq!(lines(&chat), ["bob: 8", "bob: 9", "bob: 10", "bob: 11"]);
            let keys: Vec<u64> = chat.entries().iter().map(|e| e.key).collect();
            assert!(keys
                .iter()
                .all(|k| keys.iter().filter(|o| *o == k).count() == 1));

            chat.load_older();
            assert_eq!(env.take_sent(), [ClientFrame::History { before: 8 }]);
            chat.receive(ServerFrame::History(page(1..=7, true)));
            assert!(chat.beginning());
            assert_eq!(lines(&chat).len(), 11);
            chat.load_older();
            assert_eq!(env.take_sent(), [], "nothing older is stored");
        });
    }

    #[test]
    fn a_store_failure_while_loading_lets_the_user_try_again() {
        Owner::new().with(|| {
            let (chat, env) = first_chat(page(10..=10, false), None);
            chat.receive(welcome(1, "Anonymous", vec![person(1, "Anonymous")]));
            chat.load_older();
            chat.receive(error(ErrorCode::Unavailable, None));
            assert!(!chat.with(|state| state.loading));
            assert_eq!(chat.notice().as_deref(), Some("unavailable"));
            env.take_sent();
            chat.load_older();
            assert_eq!(env.take_sent(), [ClientFrame::History { before: 10 }]);
            // A drop loses the answer too.
            chat.disconnected(false);
            assert!(!chat.with(|state| state.loading));
        });
    }

    #[test]
    fn scrolled_up_the_list_trims_nothing_until_the_reader_is_back_at_the_bottom() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            let mut id = 0;
            let mut bob_says = |n: usize| {
                for _ in 0..n {
                    id += 1;
                    chat.receive(from_bob(id, &id.to_string()));
                }
            };
            bob_says(MAX_VISIBLE_MESSAGES);
            chat.scrolled(false);
            bob_says(10);
            assert_eq!(chat.entries().len(), MAX_VISIBLE_MESSAGES + 10);
            assert_eq!(lines(&chat)[0], "bob: 1", "the lines read stay put");
            bob_says(MAX_HELD_MESSAGES);
            assert_eq!(
                chat.entries().len(),
                MAX_HELD_MESSAGES,
                "held, not without end"
            );
            chat.scrolled(true);
            bob_says(1);
            assert_eq!(chat.entries().len(), MAX_VISIBLE_MESSAGES);
        });
    }

    #[test]
    fn paged_in_lines_are_kept_until_new_ones_are_appended() {
        Owner::new().with(|| {
            let first = MAX_VISIBLE_MESSAGES as u64;
            let (chat, _) = first_chat(page(101..=100 + first, false), None);
            chat.receive(welcome(1, "Anonymous", vec![person(1, "Anonymous")]));
            chat.load_older();
            chat.receive(ServerFrame::History(page(1..=100, true)));
            assert_eq!(chat.entries().len(), MAX_VISIBLE_MESSAGES + 100);
            chat.receive(ServerFrame::Message(message_with_id(first + 101, 2, "new")));
            assert_eq!(chat.entries().len(), MAX_VISIBLE_MESSAGES);
            assert_eq!(lines(&chat)[0], "bob: 102");
            assert!(!chat.beginning(), "the trimmed ones can be paged in again");
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

    // ---- rooms ----

    fn rust() -> RoomName {
        RoomName::parse("rust").unwrap()
    }

    /// `frame` as if it were about `room`.
    fn in_room(room: &str, mut frame: ServerFrame) -> ServerFrame {
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

    fn join(room: &str) -> ClientFrame {
        ClientFrame::Join { room: room.into() }
    }

    fn typing_in(room: &str, id: u64) -> ServerFrame {
        ServerFrame::Typing(Typing {
            room: room.into(),
            id,
            nickname: "bob".into(),
            active: true,
        })
    }

    #[test]
    fn the_page_is_in_the_room_of_its_first_page_and_resumes_there() {
        Owner::new().with(|| {
            let ServerFrame::History(first) =
                in_room("rust", ServerFrame::History(page(3..=4, false)))
            else {
                unreachable!()
            };
            let (chat, env) = first_chat(first, Some("t"));
            assert_eq!(chat.room(), rust());
            chat.connecting();
            assert_eq!(
                env.take_sent(),
                [ClientFrame::Resume(Resume {
                    token: Some("t".into()),
                    after: Some(4),
                    room: Some("rust".into()),
                })]
            );
            // A page the server could not have rendered is general's.
            let odd = HistoryPage {
                room: "Not A Room".into(),
                ..empty_page()
            };
            assert_eq!(State::first(odd, None).room, RoomName::general());
        });
    }

    #[test]
    fn frames_about_another_room_are_dropped() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            let before = chat.with(State::clone);
            chat.receive(in_room("rust", message(3, "carol", "elsewhere")));
            chat.receive(in_room(
                "rust",
                ServerFrame::Presence(Presence {
                    joined: vec![person(3, "carol")],
                    ..presence(3)
                }),
            ));
            chat.receive(typing_in("rust", 3));
            chat.receive(in_room("rust", ServerFrame::History(page(1..=2, true))));
            chat.receive(in_room("rust", welcome(1, "Anonymous", vec![])));
            assert!(lines(&chat).is_empty());
            assert_eq!(names(&chat), ["Anonymous", "bob"]);
            assert_eq!(chat.online(), 2);
            assert_eq!(chat.typing_label(), None);
            assert_eq!(chat.with(|state| state.last_id), before.last_id);
            assert_eq!(env.take_sent(), []);
            // The same frames about this room are shown.
            chat.receive(message(3, "carol", "here"));
            chat.receive(typing_in("general", 2));
            assert_eq!(lines(&chat), ["carol: here"]);
            assert_eq!(chat.typing_label().as_deref(), Some("bob is typing…"));
        });
    }

    #[test]
    fn the_latest_rooms_frame_is_the_room_list() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            assert!(chat.with(|state| state.rooms.is_empty()));
            let count = |name: &str, online| RoomCount {
                name: name.into(),
                online,
            };
            for online in [3, 4] {
                chat.receive(ServerFrame::Rooms(RoomList {
                    rooms: vec![count("rust", online), count("general", 2)],
                }));
            }
            assert_eq!(
                chat.with(|state| state.rooms.clone()),
                [count("rust", 4), count("general", 2)]
            );
        });
    }

    #[test]
    fn switching_rooms_clears_the_page_and_joins_over_the_same_connection() {
        Owner::new().with(|| {
            let (chat, env) = first_chat(page(10..=11, false), Some("token-1"));
            chat.connecting();
            chat.receive(welcome(
                1,
                "Anonymous",
                vec![person(1, "Anonymous"), person(2, "bob")],
            ));
            chat.receive(typing_in("general", 2));
            chat.send("pending in general");
            chat.load_older();
            env.take_sent();

            chat.switch_room(rust());
            assert_eq!(chat.room(), rust());
            assert_eq!(env.take_sent(), [join("rust")]);
            assert!(lines(&chat).is_empty(), "pending ones of general too");
            assert!(chat.people().is_empty());
            assert_eq!(chat.online(), 0);
            assert_eq!(chat.typing_label(), None);
            chat.with(|state| {
                assert_eq!(state.last_id, None);
                assert!(!state.loading && !state.beginning);
            });
            chat.load_older();
            assert_eq!(env.take_sent(), [], "nothing to page back from yet");
            assert!(!chat.switch_room(rust()));
            assert_eq!(env.take_sent(), [], "already there");

            // The old room's traffic until the server has moved us.
            chat.receive(message(2, "bob", "still general"));
            chat.receive(ServerFrame::History(page(8..=9, false)));
            chat.receive(ack("c-1", 12));
            assert!(lines(&chat).is_empty());

            // The new room's latest page replaces the list, then its welcome.
            chat.receive(in_room("rust", ServerFrame::History(page(20..=21, false))));
            assert_eq!(lines(&chat), ["bob: 20", "bob: 21"]);
            assert!(!chat.beginning());
            chat.receive(in_room(
                "rust",
                welcome(
                    1,
                    "Anonymous",
                    vec![person(1, "Anonymous"), person(3, "carol")],
                ),
            ));
            assert_eq!(names(&chat), ["Anonymous", "carol"]);
            assert_eq!(env.take_sent(), [], "nothing pending to resend");
            assert_eq!(*env.stored.lock().unwrap(), None, "the same token");

            chat.receive(in_room(
                "rust",
                ServerFrame::Message(message_with_id(22, 3, "new")),
            ));
            chat.receive(in_room(
                "rust",
                ServerFrame::Message(message_with_id(21, 3, "old")),
            ));
            assert_eq!(lines(&chat), ["bob: 20", "bob: 21", "bob: new"]);
            chat.load_older();
            assert_eq!(env.take_sent(), [ClientFrame::History { before: 20 }]);
            chat.receive(in_room("rust", ServerFrame::History(page(18..=19, true))));
            assert_eq!(
                lines(&chat)[..2],
                ["bob: 18", "bob: 19"],
                "older ones prepended again"
            );
            assert!(chat.beginning());

            // A reconnect stays in the room.
            chat.disconnected(false);
            chat.connecting();
            assert_eq!(
                env.take_sent(),
                [ClientFrame::Resume(Resume {
                    token: Some("token-1".into()),
                    after: Some(22),
                    room: Some("rust".into()),
                })]
            );
        });
    }

    #[test]
    fn an_empty_room_starts_at_its_beginning_and_sends_whatever_comes_later() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            chat.switch_room(rust());
            chat.receive(in_room("rust", ServerFrame::History(empty_page())));
            assert!(chat.beginning());
            chat.disconnected(false);
            env.take_sent();
            chat.connecting();
            assert_eq!(
                env.take_sent(),
                [ClientFrame::Resume(Resume {
                    token: Some("token-1".into()),
                    after: Some(0),
                    room: Some("rust".into()),
                })]
            );
        });
    }

    #[test]
    fn what_is_said_in_the_new_room_before_its_page_arrives_stays_below_it() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            chat.switch_room(rust());
            chat.send("hello rust");
            chat.send("second");
            assert_eq!(
                env.take_sent(),
                [
                    join("rust"),
                    message_frame("hello rust", "c-1"),
                    message_frame("second", "c-2")
                ]
            );
            chat.receive(ack("c-1", 30));
            // The page was read after the first was stored: it is in it.
            let mut latest = page(29..=30, false);
            latest.messages[1] = message_with_id(30, 1, "hello rust");
            chat.receive(in_room("rust", ServerFrame::History(latest)));
            chat.receive(in_room(
                "rust",
                welcome(1, "Anonymous", vec![person(1, "Anonymous")]),
            ));
            assert_eq!(
                lines(&chat),
                [
                    "bob: 29",
                    "Anonymous: hello rust [sent]",
                    "Anonymous: second [pending]"
                ]
            );
            assert_eq!(env.take_sent(), [], "sent on this connection already");
            // Acked after the page came: the page's copy goes with the ack.
            chat.switch_room(RoomName::general());
            chat.switch_room(rust());
            assert_eq!(env.take_sent(), [join("general"), join("rust")]);
            chat.send("third");
            let mut latest = page(32..=32, false);
            latest.messages[0] = message_with_id(32, 1, "third");
            chat.receive(in_room("rust", ServerFrame::History(latest)));
            chat.receive(ack("c-3", 32));
            assert_eq!(lines(&chat), ["Anonymous: third [sent]"]);
        });
    }

    #[test]
    fn a_room_switched_to_while_offline_is_resumed_and_its_latest_page_asked_for() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            chat.disconnected(false);
            env.take_sent();
            chat.switch_room(rust());
            assert_eq!(env.take_sent(), [], "nothing to send it on");
            chat.connecting();
            assert_eq!(
                env.take_sent(),
                [ClientFrame::Resume(Resume {
                    token: Some("token-1".into()),
                    after: None,
                    room: Some("rust".into()),
                })]
            );
            chat.receive(in_room(
                "rust",
                welcome(1, "Anonymous", vec![person(1, "Anonymous")]),
            ));
            assert_eq!(env.take_sent(), [ClientFrame::History { before: LATEST }]);
            chat.receive(in_room(
                "rust",
                ServerFrame::Message(message_with_id(41, 2, "live")),
            ));
            chat.receive(in_room("rust", ServerFrame::History(page(40..=41, true))));
            assert_eq!(lines(&chat), ["bob: 40", "bob: 41"]);
            assert!(chat.beginning());
        });
    }

    #[test]
    fn a_room_switched_to_while_connecting_is_joined_after_the_resume() {
        Owner::new().with(|| {
            let (chat, env) = first_chat(page(1..=2, true), Some("token-1"));
            chat.connecting();
            chat.switch_room(rust());
            assert_eq!(
                env.take_sent(),
                [resume(Some("token-1"), Some(2)), join("rust")]
            );
            // The resume's answer is about general: dropped, still connecting.
            chat.receive(ServerFrame::Message(message_with_id(3, 2, "3")));
            chat.receive(welcome(1, "Anonymous", vec![person(1, "Anonymous")]));
            assert_eq!(chat.status(), ConnectionStatus::Connecting);
            chat.receive(in_room("rust", ServerFrame::History(page(5..=6, false))));
            chat.receive(in_room(
                "rust",
                welcome(1, "Anonymous", vec![person(1, "Anonymous")]),
            ));
            assert!(chat.is_online());
            assert_eq!(lines(&chat), ["bob: 5", "bob: 6"]);
            assert_eq!(env.take_sent(), []);
        });
    }

    #[test]
    fn a_nickname_taken_in_the_new_room_falls_back_to_what_the_welcome_says() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            chat.set_nickname("bob2");
            chat.receive(renamed(1, "Anonymous", "bob2", 2));
            chat.switch_room(rust());
            chat.receive(in_room("rust", ServerFrame::History(empty_page())));
            chat.receive(in_room(
                "rust",
                welcome(1, "Anonymous", vec![person(1, "Anonymous")]),
            ));
            assert_eq!(chat.nickname().as_str(), "Anonymous");
        });
    }
}
