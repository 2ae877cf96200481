//! [`Chat`]: the state as components hold it. Each part of [`State`] has a
//! trigger of its own; a reader subscribes to the parts it reads, and a
//! change notifies only the parts it touched (see [`super::Part`]).

use std::sync::Arc;

use leptos::prelude::*;

use super::{
    Changes, Connection, ConnectionStatus, Effect, Effects, Env, Identity, People, Reading, Rooms,
    Row, State, Timeline, Typing, ACK_TIMEOUT, TYPING_EXPIRES,
};
use crate::{
    display::Clock,
    protocol::{MessageText, MessageTextError, Nickname, RoomName, ServerFrame},
};

/// The page's chat: [`State`] wired to an [`Env`], readable part by part.
#[derive(Clone, Copy)]
pub struct Chat {
    state: StoredValue<State>,
    triggers: Triggers,
    env: StoredValue<Option<Arc<dyn Env>>>,
}

/// One trigger per part of the state.
#[derive(Clone, Copy)]
struct Triggers {
    connection: Trigger,
    identity: Trigger,
    timeline: Trigger,
    people: Trigger,
    typing: Trigger,
    rooms: Trigger,
    reading: Trigger,
    notice: Trigger,
}

impl Triggers {
    fn new() -> Self {
        Self {
            connection: Trigger::new(),
            identity: Trigger::new(),
            timeline: Trigger::new(),
            people: Trigger::new(),
            typing: Trigger::new(),
            rooms: Trigger::new(),
            reading: Trigger::new(),
            notice: Trigger::new(),
        }
    }

    fn notify(&self, changes: Changes) {
        for (changed, trigger) in [
            (changes.connection, self.connection),
            (changes.identity, self.identity),
            (changes.timeline, self.timeline),
            (changes.people, self.people),
            (changes.typing, self.typing),
            (changes.rooms, self.rooms),
            (changes.reading, self.reading),
            (changes.notice, self.notice),
        ] {
            if changed {
                trigger.notify();
            }
        }
    }
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
            state: StoredValue::new(state),
            triggers: Triggers::new(),
            env: StoredValue::new(env),
        }
    }

    /// Reads the whole state without subscribing to anything: for tests,
    /// and for code that must not re-run on changes.
    pub fn untracked<U>(&self, read: impl FnOnce(&State) -> U) -> U {
        self.state.with_value(read)
    }

    fn read<U>(&self, trigger: Trigger, read: impl FnOnce(&State) -> U) -> U {
        trigger.track();
        self.state.with_value(read)
    }

    // ---- what components read, part by part ----

    pub fn connection<U>(&self, read: impl FnOnce(&Connection) -> U) -> U {
        self.read(self.triggers.connection, |state| read(&state.connection))
    }

    pub fn identity<U>(&self, read: impl FnOnce(&Identity) -> U) -> U {
        self.read(self.triggers.identity, |state| read(&state.identity))
    }

    pub fn timeline<U>(&self, read: impl FnOnce(&Timeline) -> U) -> U {
        self.read(self.triggers.timeline, |state| read(&state.timeline))
    }

    pub fn people<U>(&self, read: impl FnOnce(&People) -> U) -> U {
        self.read(self.triggers.people, |state| read(&state.people))
    }

    pub fn typing<U>(&self, read: impl FnOnce(&Typing) -> U) -> U {
        self.read(self.triggers.typing, |state| read(&state.typing))
    }

    pub fn rooms<U>(&self, read: impl FnOnce(&Rooms) -> U) -> U {
        self.read(self.triggers.rooms, |state| read(&state.rooms))
    }

    pub fn reading<U>(&self, read: impl FnOnce(&Reading) -> U) -> U {
        self.read(self.triggers.reading, |state| read(&state.reading))
    }

    pub fn notice(&self) -> Option<String> {
        self.read(self.triggers.notice, |state| (*state.notice).clone())
    }

    pub fn status(&self) -> ConnectionStatus {
        self.connection(|connection| connection.status)
    }

    pub fn is_online(&self) -> bool {
        self.status() == ConnectionStatus::Online
    }

    pub fn me(&self) -> Option<u64> {
        self.connection(|connection| connection.me)
    }

    pub fn nickname(&self) -> Nickname {
        self.identity(|identity| identity.nickname.clone())
    }

    pub fn room(&self) -> RoomName {
        self.rooms(|rooms| rooms.room.clone())
    }

    /// The lines shown, shared with the state (no text is copied).
    pub fn rows(&self) -> Vec<Arc<Row>> {
        self.timeline(|timeline| timeline.rows().to_vec())
    }

    fn env(&self) -> Option<Arc<dyn Env>> {
        self.env.get_value()
    }

    /// Changes the state, tells the readers of what changed, then carries
    /// out what it asked for.
    fn change(&self, change: impl FnOnce(&mut State, &mut Effects)) {
        let mut fx = Vec::new();
        let changes = self.state.try_update_value(|state| {
            change(state, &mut fx);
            state.take_changes()
        });
        if let Some(changes) = changes {
            self.triggers.notify(changes);
        }
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
                        chat.change(|state, _| state.ack_timed_out(&client_id, attempt))
                    }),
                ),
                Effect::TypingTimer { id, seq } => env.after(
                    TYPING_EXPIRES,
                    Box::new(move || chat.change(|state, _| state.typing_expired(id, seq))),
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
                self.change(|state, _| *state.notice = Some(err.to_string()));
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
                self.change(|state, _| *state.notice = Some(err.to_string()));
                false
            }
        }
    }

    /// Sends a failed message again, under the same `client_id`, so the
    /// server relays it once even if the first attempt got through.
    pub fn retry(&self, client_id: &str) {
        self.change(|state, fx| state.retry(client_id, fx));
    }

    /// Asks for older messages, unless a request is in flight or the
    /// conversation's beginning is shown.
    pub fn load_older(&self) {
        self.change(|state, fx| state.load_older(fx));
    }

    /// The reader scrolled the list to its bottom (`true`) or away from it:
    /// the list follows new lines only at the bottom, and counts messages
    /// from others as unread elsewhere.
    pub fn scrolled(&self, at_bottom: bool) {
        let moved = self.untracked(|state| {
            state.reading.at_bottom != at_bottom || (at_bottom && state.reading.unread > 0)
        });
        if moved {
            self.change(|state, _| {
                state.reading.scrolled(at_bottom);
            });
        }
    }

    /// Shows `room` instead of the current one, over the same connection
    /// (its list, people and typists cleared); `false` (nothing changes) if
    /// it is the current one.
    pub fn switch_room(&self, room: RoomName) -> bool {
        let switch = self.untracked(|state| state.rooms.room != room);
        if switch {
            self.change(|state, fx| state.switch_room(room, fx));
        }
        switch
    }

    /// The draft changed to `draft`: says "typing" at most once per
    /// [`super::TYPING_THROTTLE`], and "stopped" when the draft is emptied.
    pub fn draft_changed(&self, draft: &str) {
        let Some(env) = self.env() else {
            return;
        };
        let now = env.now_ms();
        self.change(|state, fx| state.draft(draft, now, fx));
    }

    /// Times read in the reader's time zone and locale from now on. Called
    /// once the page is hydrated: until then the page shows what the server
    /// rendered, in UTC.
    pub fn localize(&self) {
        self.change(|state, _| state.timeline.set_clock(Clock::Local));
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
