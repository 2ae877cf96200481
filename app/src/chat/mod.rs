//! The page's state, and the only code that changes it.
//!
//! [`State`] is plain data, one [`Part`] per concern, each in its own file
//! with the rules that change it:
//!
//! - [`connection`]: online or not, and who this page was (the resume token);
//! - [`timeline`]: the lines shown, paging in older ones, one room's latest page;
//! - [`delivery`]: own messages, from pending to sent (or failed, and retried);
//! - [`identity`]: the nickname chosen, and the one the server confirmed;
//! - [`presence`]: who is online, and who is typing;
//! - [`rooms`]: the room shown, the room list, and moving between rooms;
//! - [`reading`]: where the reader is, what is unread, what is announced.
//!
//! The rules are methods on [`State`] that return the [`Effect`]s to carry
//! out, so the tests run them without a browser, through [`Env`].
//! [`Chat`] (in [`handle`]) is what components hold: it runs the rules and
//! tells only the readers of the parts that changed, so a typing frame
//! does not re-run the message list.

pub mod connection;
pub mod delivery;
pub mod handle;
pub mod identity;
pub mod presence;
pub mod reading;
pub mod rooms;
pub mod timeline;

#[cfg(test)]
mod test_env;

use std::{
    ops::{Deref, DerefMut},
    time::Duration,
};

pub use connection::{Connection, ConnectionStatus};
pub use delivery::{Delivery, OwnMessage, ACK_TIMEOUT};
pub use handle::Chat;
pub use identity::Identity;
pub use presence::{typing_label, People, Typing, Typist, TYPING_EXPIRES, TYPING_THROTTLE};
pub use reading::Reading;
pub use rooms::Rooms;
pub use timeline::{Line, Row, Timeline, MAX_HELD_MESSAGES, MAX_VISIBLE_MESSAGES};

use crate::protocol::{ClientFrame, ErrorCode, ErrorPayload, HistoryPage, ServerFrame};

/// What the chat needs from outside: the browser's in `socket/`, the
/// tests' own in `test_env.rs`.
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

type Effects = Vec<Effect>;

/// One concern of the state. Borrowing it mutably marks it changed, so
/// that [`Chat`] tells its readers, and only them; reading does not.
#[derive(Debug, Clone, Default)]
pub struct Part<T> {
    value: T,
    changed: bool,
}

impl<T> Part<T> {
    /// Whether it was borrowed mutably since the last call.
    fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }
}

impl<T> Deref for Part<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for Part<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.changed = true;
        &mut self.value
    }
}

/// The page's state and its rules, without any I/O.
#[derive(Debug, Clone, Default)]
pub struct State {
    pub connection: Part<Connection>,
    pub identity: Part<Identity>,
    pub timeline: Part<Timeline>,
    pub people: Part<People>,
    pub typing: Part<Typing>,
    pub rooms: Part<Rooms>,
    pub reading: Part<Reading>,
    /// The last problem worth telling the user about.
    pub notice: Part<Option<String>>,
}

/// Which parts changed in one step: see [`State::take_changes`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Changes {
    pub connection: bool,
    pub identity: bool,
    pub timeline: bool,
    pub people: bool,
    pub typing: bool,
    pub rooms: bool,
    pub reading: bool,
    pub notice: bool,
}

impl State {
    /// A page's first state: the server's first page of history, and the
    /// token this tab kept from its last connection.
    pub fn first(page: HistoryPage, token: Option<String>) -> Self {
        let mut state = Self::default();
        state.connection.token = token;
        // The server renders only valid rooms; anything else is general.
        state.rooms.room = crate::protocol::RoomName::parse(&page.room).unwrap_or_default();
        state.timeline.start_with(page);
        state.take_changes();
        state
    }

    /// Which parts changed since the last call.
    pub fn take_changes(&mut self) -> Changes {
        Changes {
            connection: self.connection.take_changed(),
            identity: self.identity.take_changed(),
            timeline: self.timeline.take_changed(),
            people: self.people.take_changed(),
            typing: self.typing.take_changed(),
            rooms: self.rooms.take_changed(),
            reading: self.reading.take_changed(),
            notice: self.notice.take_changed(),
        }
    }

    fn is_online(&self) -> bool {
        self.connection.status == ConnectionStatus::Online
    }

    /// Applies a frame from the server. What still arrives for a room the
    /// page has left is dropped.
    fn receive(&mut self, frame: ServerFrame, fx: &mut Effects) {
        let room = match &frame {
            ServerFrame::Welcome(frame) => &frame.room,
            ServerFrame::Message(frame) => &frame.room,
            ServerFrame::History(frame) => &frame.room,
            ServerFrame::Presence(frame) => &frame.room,
            ServerFrame::Typing(frame) => &frame.room,
            _ => self.rooms.room.as_str(),
        };
        if room != self.rooms.room.as_str() {
            return;
        }
        match frame {
            ServerFrame::Welcome(welcome) => self.welcomed(welcome, fx),
            ServerFrame::Message(message) => self.message(message),
            ServerFrame::Ack(ack) => self.acked(ack),
            ServerFrame::Presence(presence) => self.apply_presence(presence),
            ServerFrame::Typing(typing) => self.someone_typing(typing, fx),
            ServerFrame::Error(error) => self.refused(error),
            ServerFrame::History(page) => self.history(page),
            ServerFrame::Rooms(list) => self.rooms.list = list.rooms,
        }
    }

    /// Something this page sent was refused: an own message (failed), a
    /// nickname (the confirmed one is shown again), a page of history the
    /// store could not read (it may be asked for again). The user is told.
    fn refused(&mut self, error: ErrorPayload) {
        // The only request without a client_id that the store can fail.
        if error.code == ErrorCode::Unavailable
            && error.client_id.is_none()
            && self.timeline.loading
        {
            self.timeline.loading = false;
        }
        let own = error
            .client_id
            .as_deref()
            .is_some_and(|client_id| self.failed(client_id));
        if !own
            && matches!(
                error.code,
                ErrorCode::NicknameTaken | ErrorCode::InvalidNickname
            )
        {
            self.identity.answered();
        }
        *self.notice = Some(error.message);
    }
}
