//! The hub: which room each client is in, and who gets what.
//!
//! It keeps the process's [rooms](crate::room), each with its own members,
//! roster and fan-out over the one flusher pool. Messages go to the
//! [group commit](crate::commit) first and come back numbered and durable,
//! in id order; only then is a message framed once and queued for the
//! members of its room as the same shared bytes.
//!
//! Presence is announced per room in coalesced diffs: a change schedules
//! one announcement a short interval later, which carries every change
//! made meanwhile. The room list (the busiest rooms and their online
//! counts) is announced to everyone the same way.
//!
//! A client that resumes is the person its token names
//! ([`identity`](crate::identity)); one that dropped stays in its room's
//! roster for a grace period. Before it becomes a member it catches up: it
//! is sent what the store holds for its room after the last id it has, and
//! admitted between two relays, so it gets every message once. Moving to
//! another room is the same path: the newest page of the room, then a
//! catch-up from its last id.
//!
//! A room lives while anyone holds it (a connection in it, or a person
//! away from it); the last to let go removes it.
//!
//! This file is the facade: the [`Hub`], and [`Chat`] in a few lines each.
//! One concept per file beside it:
//!
//! - `registry.rs`: the rooms open here, and who holds them;
//! - `seats.rs`: who a connection is, and what happens when it goes;
//! - `admission.rs`: joining a room (or moving to another) by catching up;
//! - `delivery.rs`: messages to the group commit and back: acks and relays;
//! - `history.rs`: pages of stored messages;
//! - `nicknames.rs`: renames, and the nicknames tokens keep across restarts;
//! - `presence.rs`: who is here, announced in coalesced diffs;
//! - `directory.rs`: the busiest rooms, announced to everyone;
//! - `remote.rs`: the other server processes, through the broker.

mod admission;
mod delivery;
mod directory;
mod history;
mod nicknames;
mod presence;
mod registry;
mod remote;
mod seats;
#[cfg(test)]
mod tests;

pub use history::{history_page, HISTORY_PAGE};
pub use registry::MAX_ROOMS;
pub use seats::HubSeat;

use std::{
    sync::{atomic::AtomicBool, Arc, Mutex, OnceLock, Weak},
    time::Duration,
};

use app::protocol::{
    ClientMessageId, ErrorCode, ErrorPayload, MessageText, Nickname, Resume, RoomCount, RoomName,
    ServerFrame, Typing,
};
use bytes::Bytes;

use crate::{
    broker::Broker,
    client_id::ClientId,
    cluster::Cluster,
    commit::Committer,
    flush::FlushPool,
    identity::{Identities, TokenKey},
    metrics::Metrics,
    presence::NicknameTaken,
    room::{Fanout, Outgoing, Room},
    session::{Chat, Joined},
    store::Store,
    writer::ClientWriter,
    ws::frame,
};

use nicknames::SESSION_SAVES;
use registry::Registry;
use seats::{Whereabouts, AWAY_LIMIT};

#[derive(Debug)]
pub struct Hub {
    me: Weak<Hub>,
    /// The rooms open here.
    registry: Registry,
    committer: Committer,
    /// For reads: history pages and catching up.
    store: Store,
    flush: Arc<FlushPool>,
    /// Rooms whose presence the next tick announces (see `presence.rs`).
    presence_due: Mutex<Vec<Arc<Room>>>,
    /// Who holds which resume token, and in which room they are.
    identities: Mutex<Identities<Whereabouts>>,
    /// How long a dropped client that can resume stays.
    resume_grace: Duration,
    /// A room list announcement is scheduled.
    directory_due: AtomicBool,
    /// The room list as last announced.
    directory: Mutex<Vec<RoomCount>>,
    /// Turns to save a nickname in the store (see `save_nickname`).
    session_saves: Arc<tokio::sync::Semaphore>,
    /// How messages and presence reach the other server processes, if any.
    broker: OnceLock<Broker>,
    /// Who the other server processes have online.
    cluster: Mutex<Cluster>,
    metrics: Metrics,
}

impl Hub {
    /// `list_limit`: the largest room whose members are listed by name in
    /// presence; `presence_interval`: how long changes gather before they
    /// are announced; `resume_grace`: how long a dropped client that can
    /// resume stays; `store`: where messages are kept. Starts the group
    /// commit task, so it must be called within a tokio runtime.
    pub fn new(
        list_limit: usize,
        presence_interval: Duration,
        resume_grace: Duration,
        metrics: Metrics,
        store: Store,
    ) -> Arc<Self> {
        let hub = Arc::new_cyclic(|me: &Weak<Hub>| Self {
            me: me.clone(),
            registry: Registry::new(list_limit),
            committer: {
                let hub = me.clone();
                Committer::spawn(store.clone(), metrics.clone(), move |batch| {
                    if let Some(hub) = hub.upgrade() {
                        hub.deliver_batch(batch);
                    }
                })
            },
            identities: Mutex::new(Identities::new(
                AWAY_LIMIT,
                TokenKey::new(store.secret().bytes()),
            )),
            store,
            flush: FlushPool::new(),
            presence_due: Mutex::default(),
            resume_grace,
            directory_due: AtomicBool::new(false),
            directory: Mutex::default(),
            session_saves: Arc::new(tokio::sync::Semaphore::new(SESSION_SAVES)),
            broker: OnceLock::new(),
            cluster: Mutex::default(),
            metrics,
        });
        Hub::start_announcing(Arc::downgrade(&hub), presence_interval);
        hub
    }

    /// Shares rooms with other server processes through `broker` from now
    /// on; without a call the hub is alone ([`Broker::Local`]). Once only.
    pub fn use_broker(&self, broker: Broker) {
        if self.broker.set(broker).is_err() {
            tracing::warn!("the hub already has a broker");
        }
    }

    fn broker(&self) -> &Broker {
        static LOCAL: Broker = Broker::Local;
        self.broker.get().unwrap_or(&LOCAL)
    }

    /// Stops taking messages and waits until every message taken is
    /// stored and delivered (acked, relayed): the first step of shutdown.
    pub async fn drain_commits(&self) {
        self.committer.drain().await;
    }

    /// Whether the other server processes can be reached (always, alone).
    pub fn broker_healthy(&self) -> bool {
        self.broker().healthy()
    }

    /// Number of connected clients, in every room.
    pub fn len(&self) -> usize {
        self.registry.members()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this client is connected, in any room.
    pub fn contains(&self, id: ClientId) -> bool {
        self.registry.contains(id)
    }

    /// The room named `name`, if anyone holds it.
    pub fn room(&self, name: &str) -> Option<Arc<Room>> {
        self.registry.get(name)
    }

    /// How many rooms are open.
    pub fn rooms(&self) -> usize {
        self.registry.len()
    }

    /// Sends `frame`, a whole WebSocket frame, to every member of `room`
    /// except `from`.
    pub fn broadcast_except(&self, room: &Room, from: Option<ClientId>, frame: &Bytes) -> Fanout {
        let out = Outgoing {
            frame: frame.clone(),
            from,
            message: None,
        };
        let (fanout, writes) = room.broadcast(&self.metrics, &out);
        self.flush.submit(writes);
        fanout
    }
}

/// Sends one client an error about something it asked for.
pub(super) fn refuse(writer: &ClientWriter, metrics: &Metrics, error: ErrorPayload) {
    metrics.error(error.code);
    writer.send(&frame::text(&ServerFrame::Error(error).encode()));
    metrics.frames_out(1);
}

pub(super) fn unavailable(message: &str) -> ErrorPayload {
    ErrorPayload::new(ErrorCode::Unavailable, message)
}

pub(super) fn too_many_rooms() -> ErrorPayload {
    unavailable("too many rooms are open; try an existing one")
}

impl Chat for Hub {
    type Endpoint = Arc<ClientWriter>;
    type Seat = HubSeat;

    async fn join(
        &self,
        writer: Arc<ClientWriter>,
        resume: Option<Resume>,
    ) -> Option<Joined<HubSeat>> {
        self.join_room(writer, resume).await
    }

    async fn switch(
        &self,
        id: ClientId,
        seat: &HubSeat,
        nickname: &Nickname,
        to: RoomName,
    ) -> Result<Joined<HubSeat>, ErrorPayload> {
        self.switch_room(id, seat, nickname, to).await
    }

    fn leave(&self, id: ClientId, seat: &HubSeat) {
        self.release(id, seat);
    }

    fn rename(
        &self,
        id: ClientId,
        seat: &HubSeat,
        nickname: Nickname,
    ) -> Result<(), NicknameTaken> {
        self.rename_in_room(id, seat, nickname)
    }

    fn post(
        &self,
        from: ClientId,
        seat: &HubSeat,
        nickname: &Nickname,
        text: MessageText,
        client_id: Option<ClientMessageId>,
    ) {
        self.submit(from, seat, nickname, text, client_id);
    }

    fn typing(&self, from: ClientId, seat: &HubSeat, nickname: &Nickname, active: bool) {
        let typing = ServerFrame::Typing(Typing {
            room: seat.room.name().to_string(),
            id: from.get(),
            nickname: nickname.to_string(),
            active,
        });
        self.broadcast_except(&seat.room, Some(from), &frame::text(&typing.encode()));
    }

    fn history(&self, seat: &HubSeat, before: u64) {
        self.send_history(seat, before);
    }
}
