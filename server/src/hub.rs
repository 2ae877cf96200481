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

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, OnceLock, Weak,
    },
    time::{Duration, Instant},
};

use app::protocol::{
    Ack, ChatMessage, ClientMessageId, ErrorCode, ErrorPayload, HistoryPage, MessageText, Nickname,
    Resume, RoomCount, RoomList, RoomName, ServerFrame, Typing, Welcome, ROOM_LIST_MAX,
};
use bytes::Bytes;

use crate::{
    broker::{self, Broker, Signal, Sink},
    client_id::ClientId,
    cluster::{Cluster, Occupants},
    commit::{Committer, Outcome, Pending},
    flush::FlushPool,
    identity::{Claim, Identities, Release, ResumeToken, Seat, TokenKey},
    lock,
    metrics::Metrics,
    presence::NicknameTaken,
    room::{Fanout, Room},
    session::{Chat, Joined},
    store::{self, NewMessage, Store, StoreError, StoredMessage},
    writer::{ClientWriter, Delivery},
    ws::frame,
};

#[derive(Debug)]
pub struct Hub {
    me: Weak<Hub>,
    rooms: Mutex<HashMap<RoomName, Held>>,
    /// The largest room whose members are listed by name in presence.
    list_limit: usize,
    committer: Committer,
    /// For reads: history pages and catching up.
    store: Store,
    flush: Arc<FlushPool>,
    presence_interval: Duration,
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

/// A room and how many hold it: seats in it and people away from it.
#[derive(Debug)]
struct Held {
    room: Arc<Room>,
    holds: usize,
}

/// Where a client that caught up from the store stands.
#[derive(Debug, Clone, Copy)]
struct CaughtUp {
    /// The newest id it has: claimed, or read here.
    has: u64,
    /// The newest id the catch-up sent it, if any.
    sent: Option<u64>,
}

/// Where a person is, as the identities keep it: their room, and the
/// connection that holds them. Taking the person over closes that
/// connection, whether it is a member of the room yet or still catching up.
#[derive(Debug)]
struct Whereabouts {
    room: Arc<Room>,
    writer: Arc<ClientWriter>,
}

/// Why [`Hub::admit`] did not make a client a member.
enum NotAdmitted {
    /// Messages newer than it has were relayed meanwhile: it has those to
    /// read first.
    Behind,
    /// Another connection took its person over meanwhile: it is closing.
    TakenOver,
}

/// A hub's hold on one connection's client (see [`Chat::Seat`]).
#[derive(Debug)]
pub struct HubSeat {
    token: ResumeToken,
    /// Who sent a message, to tell their `client_id`s from everyone
    /// else's (see [`store::client_key`]).
    sender: String,
    seat: Seat,
    /// Whether the client could come back with its token.
    resumable: bool,
    room: Arc<Room>,
    writer: Arc<ClientWriter>,
}

/// Most people kept away (dropped, waiting for them to resume) at once.
const AWAY_LIMIT: usize = 10_000;

/// Most rooms open at once: each costs memory while anyone is in it.
pub const MAX_ROOMS: usize = 100_000;

/// Messages read from the store per query while a client catches up.
const CATCH_UP_PAGE: u32 = 256;

/// How long a client catching up may leave its backlog unread before it
/// is given up on.
const CATCH_UP_STALL: Duration = Duration::from_secs(30);

/// Nickname saves that may use the store at once.
const SESSION_SAVES: usize = 2;

/// Messages per `history` page, and in the server-rendered page.
pub const HISTORY_PAGE: u32 = 50;

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
        Arc::new_cyclic(|me: &Weak<Hub>| Self {
            me: me.clone(),
            rooms: Mutex::default(),
            list_limit,
            committer: {
                let hub = me.clone();
                Committer::spawn(store.clone(), metrics.clone(), move |pending, outcome| {
                    if let Some(hub) = hub.upgrade() {
                        hub.deliver(pending, outcome);
                    }
                })
            },
            identities: Mutex::new(Identities::new(
                AWAY_LIMIT,
                TokenKey::new(store.secret().bytes()),
            )),
            store,
            flush: FlushPool::new(),
            presence_interval,
            resume_grace,
            directory_due: AtomicBool::new(false),
            directory: Mutex::default(),
            session_saves: Arc::new(tokio::sync::Semaphore::new(SESSION_SAVES)),
            broker: OnceLock::new(),
            cluster: Mutex::default(),
            metrics,
        })
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
        lock(&self.rooms).values().map(|held| held.room.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this client is connected, in any room.
    pub fn contains(&self, id: ClientId) -> bool {
        lock(&self.rooms)
            .values()
            .any(|held| held.room.contains(id))
    }

    /// The room named `name`, if anyone holds it.
    pub fn room(&self, name: &str) -> Option<Arc<Room>> {
        lock(&self.rooms)
            .get(name)
            .map(|held| Arc::clone(&held.room))
    }

    /// How many rooms are open.
    pub fn rooms(&self) -> usize {
        lock(&self.rooms).len()
    }

    /// Sends `frame`, a whole WebSocket frame, to every member of `room`
    /// except `from`.
    pub fn broadcast_except(&self, room: &Room, from: Option<ClientId>, frame: &Bytes) -> Fanout {
        room.broadcast(&self.flush, &self.metrics, from, None, frame)
    }

    /// A hold on the room `name`, opening it if need be; `None` if too
    /// many rooms are open.
    fn hold(&self, name: &RoomName) -> Option<Arc<Room>> {
        let mut rooms = lock(&self.rooms);
        let open = rooms.len();
        if let Some(held) = rooms.get_mut(name) {
            held.holds += 1;
            return Some(Arc::clone(&held.room));
        }
        if open >= MAX_ROOMS {
            return None;
        }
        let room = Arc::new(Room::new(name.clone(), self.list_limit));
        rooms.insert(
            name.clone(),
            Held {
                room: Arc::clone(&room),
                holds: 1,
            },
        );
        Some(room)
    }

    /// Lets go of a hold from [`hold`](Self::hold); the last one closes
    /// the room.
    fn unhold(&self, room: &Room) {
        let mut rooms = lock(&self.rooms);
        if let Some(held) = rooms.get_mut(room.name()) {
            held.holds -= 1;
            if held.holds == 0 {
                rooms.remove(room.name());
            }
        }
    }

    /// Announces `room`'s presence changes one interval from now, unless
    /// that is already planned: the announcement will carry this change
    /// too. The room list changes with it.
    fn presence_changed(&self, room: &Arc<Room>) {
        self.directory_changed();
        if room.presence_due.swap(true, Ordering::AcqRel) {
            return;
        }
        let room = Arc::clone(room);
        self.after_interval(move |hub| hub.announce_presence(&room));
    }

    /// Runs `then` one presence interval from now, if the hub still exists.
    fn after_interval(&self, then: impl FnOnce(&Hub) + Send + 'static) {
        let (Some(hub), Ok(runtime)) = (self.me.upgrade(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(async move {
            tokio::time::sleep(hub.presence_interval).await;
            then(&hub);
        });
    }

    /// Sends everyone in `room` what changed since its last announcement,
    /// and tells the other processes who is here now.
    pub fn announce_presence(&self, room: &Room) {
        room.presence_due.store(false, Ordering::Release);
        let (diff, here) = {
            let mut roster = lock(&room.roster);
            let diff = roster.take_diff();
            let here = diff.as_ref().and_then(|_| {
                (!self.broker().is_local()).then(|| occupancy(room.name(), &roster, self.node()))
            });
            (diff, here)
        };
        if let Some(here) = here {
            self.broker().announce(here);
        }
        if let Some(mut diff) = diff {
            diff.room = room.name().to_string();
            diff.online += lock(&self.cluster).online(room.name());
            let frame = frame::text(&ServerFrame::Presence(diff).encode());
            self.broadcast_except(room, None, &frame);
        }
    }

    fn node(&self) -> u64 {
        self.broker().node()
    }

    /// Passes on another process's presence change to this one's members
    /// of the room.
    fn announce_remote(&self, mut diff: app::protocol::Presence) {
        let Some(room) = self.room(&diff.room) else {
            self.directory_changed();
            return;
        };
        diff.online = lock(&room.roster).len() as u64 + lock(&self.cluster).online(room.name());
        let frame = frame::text(&ServerFrame::Presence(diff).encode());
        self.broadcast_except(&room, None, &frame);
        self.directory_changed();
    }

    fn directory_changed(&self) {
        if !self.directory_due.swap(true, Ordering::AcqRel) {
            self.after_interval(Hub::announce_rooms);
        }
    }

    /// The busiest rooms, most people online first, then by name; always
    /// with `general`. Counts people on every server process.
    pub fn room_list(&self) -> RoomList {
        let mut counts: HashMap<String, u64> = lock(&self.rooms)
            .values()
            .map(|held| (held.room.name().to_string(), held.room.online() as u64))
            .collect();
        for (room, online) in lock(&self.cluster).counts() {
            *counts.entry(room.to_string()).or_default() += online;
        }
        let mut rooms: Vec<RoomCount> = counts
            .into_iter()
            .map(|(name, online)| RoomCount { name, online })
            .filter(|count| count.online > 0)
            .collect();
        rooms.sort_unstable_by(|a, b| b.online.cmp(&a.online).then_with(|| a.name.cmp(&b.name)));
        rooms.truncate(ROOM_LIST_MAX);
        let general = RoomName::general();
        if !rooms.iter().any(|count| count.name == general.as_str()) {
            if rooms.len() == ROOM_LIST_MAX {
                rooms.pop();
            }
            rooms.push(RoomCount {
                name: general.to_string(),
                online: 0,
            });
        }
        RoomList { rooms }
    }

    /// Sends every client the room list, if it changed since the last time.
    pub fn announce_rooms(&self) {
        self.directory_due.store(false, Ordering::Release);
        let list = self.room_list();
        {
            let mut directory = lock(&self.directory);
            if *directory == list.rooms {
                return;
            }
            directory.clone_from(&list.rooms);
        }
        let frame = frame::text(&ServerFrame::Rooms(list).encode());
        let rooms: Vec<Arc<Room>> = lock(&self.rooms)
            .values()
            .map(|held| Arc::clone(&held.room))
            .collect();
        for room in rooms {
            self.broadcast_except(&room, None, &frame);
        }
    }
}

impl Chat for Hub {
    type Endpoint = Arc<ClientWriter>;
    type Seat = HubSeat;

    async fn join(
        &self,
        writer: Arc<ClientWriter>,
        resume: Option<Resume>,
    ) -> Option<Joined<HubSeat>> {
        let resumable = resume.is_some();
        let Resume { token, after, room } = resume.unwrap_or_default();
        let name = match room.as_deref().map(RoomName::parse) {
            None => RoomName::general(),
            Some(Ok(name)) => name,
            Some(Err(invalid)) => {
                refuse(&writer, &self.metrics, invalid.into());
                RoomName::general()
            }
        };
        // Asking for a room that cannot be opened lands in general.
        let (room, after) = match self.hold(&name) {
            Some(room) => (room, after),
            None => {
                refuse(&writer, &self.metrics, too_many_rooms());
                (self.hold(&RoomName::general())?, None)
            }
        };
        let here = Whereabouts {
            room: Arc::clone(&room),
            writer: Arc::clone(&writer),
        };
        let (claim, previous) =
            lock(&self.identities).claim(token.as_deref(), writer.id(), writer.client(), here);
        writer.adopt(claim.id);
        if let Some(Whereabouts {
            room: previous,
            writer: holder,
        }) = previous
        {
            if claim.displaced {
                // Closed in whatever phase it is: a member, or still catching
                // up (then `admit` turns it away).
                holder.displace();
                previous.remove_member(claim.id, &holder);
            }
            if !Arc::ptr_eq(&previous, &room) {
                self.left_room(&previous, claim.id);
            }
            self.unhold(&previous);
        }
        if resumable {
            self.metrics.resumed(claim.resumed);
        }
        // Until it is admitted, a client that goes away gives its person
        // back as if it had left.
        let mut pending = PendingSeat {
            hub: self,
            id: claim.id,
            seat: Some(HubSeat {
                token: claim.token.clone(),
                sender: claim.token.sender(),
                seat: claim.seat,
                resumable,
                room: Arc::clone(&room),
                writer: Arc::clone(&writer),
            }),
        };
        let restore = self.saved_nickname(&claim).await;
        let nickname = match after {
            Some(after) => {
                self.catch_up(&room, &claim, &writer, after, restore.as_ref())
                    .await?
            }
            None => self
                .admit(&room, &claim, &writer, None, restore.as_ref())
                .ok()?,
        };
        Some(Joined {
            id: claim.id,
            nickname,
            seat: pending.seat.take()?,
        })
    }

    async fn switch(
        &self,
        id: ClientId,
        seat: &HubSeat,
        nickname: &Nickname,
        to: RoomName,
    ) -> Result<Joined<HubSeat>, ErrorPayload> {
        if &to == seat.room.name() {
            return Err(ErrorPayload::new(
                ErrorCode::InvalidRoom,
                "you are in this room already",
            ));
        }
        let room = self.hold(&to).ok_or_else(too_many_rooms)?;
        let there = Whereabouts {
            room: Arc::clone(&room),
            writer: Arc::clone(&seat.writer),
        };
        let moved = lock(&self.identities).move_to(&seat.token, seat.seat, there);
        let Some(Whereabouts { room: previous, .. }) = moved else {
            // A newer connection is this person now; this one is closing.
            self.unhold(&room);
            return Err(ErrorPayload::new(
                ErrorCode::OutOfOrder,
                "this connection was taken over",
            ));
        };
        {
            // No relay of the old room reaches the client after this.
            let _relays = lock(&previous.relayed);
            previous.remove(id);
        }
        self.left_room(&previous, id);
        self.unhold(&previous);
        let claim = Claim {
            id,
            token: seat.token.clone(),
            seat: seat.seat,
            resumed: false,
            presented: false,
            displaced: false,
        };
        let mut pending = PendingSeat {
            hub: self,
            id,
            seat: Some(HubSeat {
                token: seat.token.clone(),
                sender: seat.sender.clone(),
                seat: seat.seat,
                resumable: seat.resumable,
                room: Arc::clone(&room),
                writer: Arc::clone(&seat.writer),
            }),
        };
        let page = match history_page(&self.store, &to, None).await {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(%error, "could not read a room's latest messages");
                let unavailable = unavailable("the room's messages cannot be read right now");
                refuse(&seat.writer, &self.metrics, unavailable);
                HistoryPage {
                    room: to.to_string(),
                    ..HistoryPage::default()
                }
            }
        };
        let newest = page.messages.last().map_or(0, |message| message.id);
        seat.writer
            .send(&frame::text(&ServerFrame::History(page).encode()));
        self.metrics.frames_out(1);
        let nickname = self
            .catch_up(&room, &claim, &seat.writer, newest, Some(nickname))
            .await
            .ok_or_else(|| ErrorPayload::new(ErrorCode::OutOfOrder, "the connection is gone"))?;
        Ok(Joined {
            id,
            nickname,
            seat: pending.seat.take().expect("taken only here, once admitted"),
        })
    }

    fn leave(&self, id: ClientId, seat: &HubSeat) {
        let away = {
            let mut identities = lock(&self.identities);
            let release = if self.resume_grace > Duration::ZERO && seat.resumable {
                identities.release(&seat.token, seat.seat)
            } else if identities.forget(&seat.token, seat.seat).is_some() {
                Release::Forgotten
            } else {
                Release::NotHeld
            };
            match release {
                Release::Away => true,
                Release::Forgotten => false,
                // A newer connection holds this person now: it is theirs.
                // This connection may still be a member (it was admitted
                // just before being taken over): only it goes.
                Release::NotHeld => {
                    seat.room.remove_member(id, &seat.writer);
                    return;
                }
            }
        };
        seat.room.remove_member(id, &seat.writer);
        if away {
            self.await_return(id, seat.token.clone(), seat.seat);
        } else {
            self.left_room(&seat.room, id);
            self.unhold(&seat.room);
        }
    }

    fn rename(
        &self,
        id: ClientId,
        seat: &HubSeat,
        nickname: Nickname,
    ) -> Result<(), NicknameTaken> {
        // Someone on another process: as good as here (two people taking
        // one name at the same moment on two processes may both get it).
        if lock(&self.cluster).has_nickname(seat.room.name(), &nickname) {
            return Err(NicknameTaken);
        }
        lock(&seat.room.roster).rename(id, nickname.clone())?;
        self.presence_changed(&seat.room);
        if seat.resumable {
            self.save_nickname(seat, &nickname);
        }
        Ok(())
    }

    fn post(
        &self,
        from: ClientId,
        seat: &HubSeat,
        nickname: &Nickname,
        text: MessageText,
        client_id: Option<ClientMessageId>,
    ) {
        let message = NewMessage {
            room: seat.room.name().to_string(),
            from: from.get(),
            nickname: nickname.to_string(),
            text: text.into_string(),
            client_key: client_id
                .as_ref()
                .map(|client_id| store::client_key(&seat.sender, client_id.as_str())),
        };
        let pending = Pending {
            from,
            client_id,
            reply: Some(Arc::clone(&seat.writer)),
        };
        if let Err(refused) = self.committer.submit(pending.clone(), message) {
            tracing::warn!(client = %from, "{refused}: message refused");
            self.deliver(pending, Outcome::Failed);
        }
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
        let (store, metrics) = (self.store.clone(), self.metrics.clone());
        let (writer, room) = (Arc::clone(&seat.writer), seat.room.name().clone());
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let frame = match history_page(&store, &room, Some(before)).await {
                Ok(page) => ServerFrame::History(page),
                Err(error) => {
                    tracing::warn!(%error, "could not read history");
                    metrics.error(ErrorCode::Unavailable);
                    ServerFrame::Error(unavailable(
                        "older messages cannot be read right now; try again",
                    ))
                }
            };
            writer.send(&frame::text(&frame.encode()));
            metrics.frames_out(1);
        });
    }
}

/// Sends one client an error about something it asked for.
fn refuse(writer: &ClientWriter, metrics: &Metrics, error: ErrorPayload) {
    metrics.error(error.code);
    writer.send(&frame::text(&ServerFrame::Error(error).encode()));
    metrics.frames_out(1);
}

fn unavailable(message: &str) -> ErrorPayload {
    ErrorPayload::new(ErrorCode::Unavailable, message)
}

fn too_many_rooms() -> ErrorPayload {
    unavailable("too many rooms are open; try an existing one")
}

/// The page of `room`'s stored messages just older than `before`, or the
/// latest ones for `None`.
pub async fn history_page(
    store: &Store,
    room: &RoomName,
    before: Option<u64>,
) -> Result<HistoryPage, StoreError> {
    // One more than a page tells whether anything older remains.
    let mut messages = match before {
        Some(before) => {
            store
                .before(room.as_str(), before, HISTORY_PAGE + 1)
                .await?
        }
        None => store.latest(room.as_str(), HISTORY_PAGE + 1).await?,
    };
    let beginning = messages.len() <= HISTORY_PAGE as usize;
    if !beginning {
        messages.remove(0);
    }
    Ok(HistoryPage {
        room: room.to_string(),
        messages: messages.iter().map(chat_message).collect(),
        beginning,
    })
}

/// A claimed person whose connection has not been admitted yet.
struct PendingSeat<'a> {
    hub: &'a Hub,
    id: ClientId,
    /// Taken when the client is admitted.
    seat: Option<HubSeat>,
}

impl Drop for PendingSeat<'_> {
    fn drop(&mut self) {
        if let Some(seat) = self.seat.take() {
            self.hub.leave(self.id, &seat);
        }
    }
}

impl Hub {
    /// Sends `writer`'s client every stored message of `room` after
    /// `after`, in order, then admits it; returns its nickname, or `None`
    /// if the client stopped reading or went away.
    ///
    /// The store holds every message before the hub relays it, so reading
    /// the store until it has nothing newer than the room's last relay
    /// leaves no gap; messages read here but not yet relayed are skipped for
    /// this client when they are (see [`Relayed`](crate::room::Relayed)).
    async fn catch_up(
        &self,
        room: &Arc<Room>,
        claim: &Claim,
        writer: &Arc<ClientWriter>,
        mut after: u64,
        restore: Option<&Nickname>,
    ) -> Option<Nickname> {
        // The newest message sent here: only those can come twice.
        let mut sent = None;
        loop {
            let page = match self
                .store
                .after(room.name().as_str(), after, CATCH_UP_PAGE)
                .await
            {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, "could not read the messages a client missed");
                    let error = unavailable(
                        "the messages you missed cannot be read right now; reconnect to try again",
                    );
                    refuse(writer, &self.metrics, error);
                    return self.admit(room, claim, writer, None, restore).ok();
                }
            };
            for message in &page {
                let relayed = ServerFrame::Message(chat_message(message));
                if matches!(
                    writer.send(&frame::text(&relayed.encode())),
                    Delivery::Dropped | Delivery::Evicted
                ) {
                    return None;
                }
                after = message.id;
                sent = Some(message.id);
                // Half the budget at most waits: the rest of the client's
                // budget stays free for what comes once it is admitted.
                if writer.queued_bytes() > writer.budget() / 2 {
                    // Until the client has read it, or the connection has
                    // to end (taken over, evicted, broken).
                    let drained = async {
                        tokio::select! {
                            drained = writer.drain() => drained.is_ok(),
                            _ = writer.attention() => false,
                        }
                    };
                    if !matches!(
                        tokio::time::timeout(CATCH_UP_STALL, drained).await,
                        Ok(true)
                    ) {
                        return None;
                    }
                }
            }
            self.metrics.frames_out(page.len());
            self.metrics.caught_up(page.len());
            if page.len() < CATCH_UP_PAGE as usize {
                let caught_up = CaughtUp { has: after, sent };
                match self.admit(room, claim, writer, Some(caught_up), restore) {
                    Ok(nickname) => return Some(nickname),
                    Err(NotAdmitted::Behind) => {}
                    Err(NotAdmitted::TakenOver) => return None,
                }
            }
        }
    }

    /// Welcomes the client to `room` and makes it a member, unless messages
    /// newer than it has (if it caught up) were relayed already, or another
    /// connection took its person over. Someone new to the room joins its
    /// roster here, under `restore` if that is free; someone resuming is in
    /// it already.
    fn admit(
        &self,
        room: &Arc<Room>,
        claim: &Claim,
        writer: &Arc<ClientWriter>,
        caught_up: Option<CaughtUp>,
        restore: Option<&Nickname>,
    ) -> Result<Nickname, NotAdmitted> {
        let relayed = lock(&room.relayed);
        if let Some(CaughtUp { has, sent }) = caught_up {
            if relayed.last > has {
                return Err(NotAdmitted::Behind);
            }
            // Only what this catch-up sent is skipped later: an id the
            // client merely claimed (from a store since wiped, say) must
            // not keep new messages from it, nor stay listed here.
            if let Some(sent) = sent.filter(|&sent| sent > relayed.last) {
                writer.read_through(sent);
            }
        }
        let mut joined_now = false;
        let nickname = {
            let mut roster = lock(&room.roster);
            if roster.nickname(claim.id).is_none() {
                roster.join(claim.id);
                joined_now = true;
                if let Some(restore) = restore.filter(|restore| !restore.is_default()) {
                    // Taken here: the client is Anonymous in this room.
                    let _ = roster.rename(claim.id, restore.clone());
                }
            }
            let nickname = roster.nickname(claim.id).cloned().unwrap_or_default();
            let (mut online, mut people) = (roster.len() as u64, roster.listing());
            {
                let cluster = lock(&self.cluster);
                online += cluster.online(room.name());
                if !people.is_empty() {
                    people.extend(cluster.people(room.name()));
                }
            }
            let welcome = ServerFrame::Welcome(Welcome {
                room: room.name().to_string(),
                id: claim.id.get(),
                nickname: nickname.to_string(),
                online,
                people,
                token: claim.token.as_str().to_owned(),
            });
            // Written before the client is a member: nothing live precedes it.
            writer.send(&frame::text(&welcome.encode()));
            nickname
        };
        let mut rooms = lock(&self.directory).clone();
        if rooms.is_empty() {
            // Nothing announced yet.
            rooms = self.room_list().rooms;
        }
        let rooms = ServerFrame::Rooms(RoomList { rooms });
        writer.send(&frame::text(&rooms.encode()));
        self.metrics.frames_out(2);
        {
            // Checked and inserted under the identities' lock, where a
            // takeover happens: either this connection is a member before
            // it (and the takeover removes it), or it never becomes one.
            let identities = lock(&self.identities);
            if !identities.holds(&claim.token, claim.seat) {
                return Err(NotAdmitted::TakenOver);
            }
            room.insert(claim.id, Arc::clone(writer));
        }
        drop(relayed);
        if joined_now {
            self.presence_changed(room);
        }
        Ok(nickname)
    }

    /// `id` is no longer in `room`'s roster.
    fn left_room(&self, room: &Arc<Room>, id: ClientId) {
        lock(&room.roster).leave(id);
        self.presence_changed(room);
    }

    /// The nickname the store kept for a token this process does not know
    /// (one from before a restart).
    async fn saved_nickname(&self, claim: &Claim) -> Option<Nickname> {
        if !claim.presented {
            return None;
        }
        match self.store.session(&claim.token.digest()).await {
            Ok(saved) => saved.and_then(|saved| Nickname::parse(&saved).ok()),
            Err(error) => {
                tracing::warn!(%error, "could not read a resume token's nickname");
                None
            }
        }
    }

    /// Keeps a resumable client's new nickname for after a restart; the
    /// rename does not wait for it. At most [`SESSION_SAVES`] saves run at
    /// once, the rest wait their turn: thousands of people choosing a
    /// nickname in the same second must not take every connection of the
    /// store's pool from the messages (whose commits would then time out).
    fn save_nickname(&self, seat: &HubSeat, nickname: &Nickname) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (store, saves) = (self.store.clone(), Arc::clone(&self.session_saves));
        let (digest, nickname) = (seat.token.digest(), nickname.to_string());
        runtime.spawn(async move {
            let Ok(_turn) = saves.acquire().await else {
                return;
            };
            if let Err(error) = store.save_session(&digest, &nickname).await {
                tracing::warn!(%error, "could not save a resume token's nickname");
            }
        });
    }

    /// Keeps a dropped client's person in its room for the grace period,
    /// then lets them go unless they came back.
    fn await_return(&self, id: ClientId, token: ResumeToken, seat: Seat) {
        let (Some(hub), Ok(runtime)) = (self.me.upgrade(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(async move {
            tokio::time::sleep(hub.resume_grace).await;
            let forgotten = lock(&hub.identities).forget(&token, seat);
            if let Some(Whereabouts { room, .. }) = forgotten {
                hub.left_room(&room, id);
                hub.unhold(&room);
            }
        });
    }

    /// Tells the sender, and for a new message everyone else in its room,
    /// what the store made of it. Called by the group commit, in id order.
    fn deliver(&self, pending: Pending, outcome: Outcome) {
        let Pending {
            from,
            client_id,
            reply,
        } = pending;
        let stored = match outcome {
            Outcome::Stored(message) => {
                if self.broker().is_local() {
                    self.relay(&message, Some(from));
                } else {
                    // Relayed when it comes back through the broker, in
                    // the order of every process's messages.
                    self.broker().publish(message.clone());
                }
                message
            }
            Outcome::Duplicate(message) => message,
            Outcome::Failed => {
                let error =
                    unavailable("the message could not be stored; it was not sent, try again")
                        .about(client_id.as_ref().map(ClientMessageId::as_str));
                if let Some(reply) = reply {
                    refuse(&reply, &self.metrics, error);
                }
                return;
            }
        };
        if let (Some(client_id), Some(reply)) = (client_id, reply) {
            let ack = Ack {
                client_id: client_id.to_string(),
                id: stored.id,
                sent_at: stored.sent_at,
            };
            reply.send(&frame::text(&ServerFrame::Ack(ack).encode()));
            self.metrics.frames_out(1);
        }
    }

    /// Sends a stored message to the members of its room here, but its
    /// sender. Messages must come in id order.
    fn relay(&self, message: &StoredMessage, from: Option<ClientId>) {
        let Some(room) = self.room(&message.room) else {
            // Nobody here is in that room.
            return;
        };
        let frame = frame::text(&ServerFrame::Message(chat_message(message)).encode());
        let mut relayed = lock(&room.relayed);
        // Clients that read this message from the store while catching up
        // do not get it again.
        room.broadcast(&self.flush, &self.metrics, from, Some(message.id), &frame);
        relayed.last = message.id;
        drop(relayed);
        self.metrics.message_relayed();
    }
}

/// Everyone this process has in `room`, for the other processes.
fn occupancy(room: &RoomName, roster: &crate::presence::Roster, node: u64) -> Signal {
    Signal::Room {
        node,
        room: room.to_string(),
        online: roster.len() as u64,
        people: roster
            .listing()
            .into_iter()
            .map(|person| (person.id, person.nickname))
            .collect(),
    }
}

impl Sink for Hub {
    fn relay(&self, message: &StoredMessage) {
        // Client ids are unique across processes: the sender is skipped
        // wherever it is.
        Hub::relay(self, message, Some(ClientId::from(message.from)));
    }

    fn signal(&self, signal: Signal) {
        let now = Instant::now();
        match signal {
            Signal::Hello { node } => {
                lock(&self.cluster).heard(node, now);
                for here in Sink::occupancy(self) {
                    self.broker().announce(here);
                }
            }
            Signal::Beat { node } => {
                if !lock(&self.cluster).heard(node, now) {
                    // A process this one does not know (it started while
                    // Redis was away here, or was forgotten while it was
                    // away there): everyone announces their rooms again.
                    self.broker().announce(Signal::Hello { node: self.node() });
                }
            }
            Signal::Room {
                node,
                room,
                online,
                people,
            } => {
                let Ok(room) = RoomName::parse(&room) else {
                    return;
                };
                let occupants = Occupants {
                    online,
                    people: people.into_iter().collect(),
                };
                let diff = lock(&self.cluster).update(node, room, occupants, now);
                self.announce_remote(diff);
            }
        }
    }

    fn occupancy(&self) -> Vec<Signal> {
        let node = self.node();
        let rooms: Vec<Arc<Room>> = lock(&self.rooms)
            .values()
            .map(|held| Arc::clone(&held.room))
            .collect();
        rooms
            .iter()
            .map(|room| occupancy(room.name(), &lock(&room.roster), node))
            .collect()
    }

    fn expire(&self) {
        let gone = lock(&self.cluster).expire(broker::redis::NODE_TIMEOUT, Instant::now());
        for diff in gone {
            self.announce_remote(diff);
        }
    }
}

fn chat_message(message: &StoredMessage) -> ChatMessage {
    ChatMessage {
        room: message.room.clone(),
        id: message.id,
        sent_at: message.sent_at.clone(),
        from: message.from,
        nickname: message.nickname.clone(),
        text: message.text.clone(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::Value;
    use tokio::{io::AsyncReadExt, net::TcpStream};

    use super::*;
    use crate::{flush::CHUNK, flush::SHARED_FLUSH_CHUNKS, writer::tests::socket_pair};
    use app::protocol::GENERAL_ROOM;

    const BUDGET: usize = 1 << 20;

    /// A hub that announces presence only when a test says so, over a
    /// store in memory.
    async fn hub_listing(list_limit: usize, presence_interval: Duration) -> Arc<Hub> {
        hub_with(list_limit, presence_interval, Duration::ZERO).await
    }

    /// A hub that keeps a dropped client that can resume for `grace`.
    async fn hub_with(list_limit: usize, presence_interval: Duration, grace: Duration) -> Arc<Hub> {
        let store = Store::open("sqlite::memory:").await.unwrap();
        Hub::new(
            list_limit,
            presence_interval,
            grace,
            Metrics::default(),
            store,
        )
    }

    async fn hub() -> Arc<Hub> {
        hub_listing(100, Duration::from_secs(3600)).await
    }

    /// A v1 client of `hub`, past its welcome: who it is and its end of
    /// the socket.
    async fn join(hub: &Arc<Hub>) -> (Joined<HubSeat>, TcpStream) {
        join_as(hub, None).await
    }

    /// The room everyone is in unless they asked for another.
    fn general(hub: &Hub) -> Arc<Room> {
        hub.room(GENERAL_ROOM).expect("someone is in general")
    }

    /// A v1 client, or one resuming with `resume`, past its welcome.
    async fn join_as(hub: &Arc<Hub>, resume: Option<Resume>) -> (Joined<HubSeat>, TcpStream) {
        let (server, mut client) = socket_pair().await;
        let writer = Arc::new(ClientWriter::new(ClientId::next(), server, BUDGET));
        let joined = hub.join(writer, resume).await.expect("admitted");
        // What a resuming client missed comes first; the room list follows.
        while next_frame(&mut client).await["type"] != "welcome" {}
        assert_eq!(next_frame(&mut client).await["type"], "rooms");
        (joined, client)
    }

    /// A client that can resume, past its welcome, with its token.
    async fn join_resumable(hub: &Arc<Hub>) -> (Joined<HubSeat>, TcpStream, String) {
        let (server, mut client) = socket_pair().await;
        let writer = Arc::new(ClientWriter::new(ClientId::next(), server, BUDGET));
        let joined = hub.join(writer, Some(Resume::default())).await.unwrap();
        let token = next_frame(&mut client).await["payload"]["token"]
            .as_str()
            .unwrap()
            .to_owned();
        (joined, client, token)
    }

    /// The next server frame's JSON (frames of up to 64 KiB).
    async fn next_frame(client: &mut TcpStream) -> Value {
        let read = async {
            let mut header = [0; 2];
            client.read_exact(&mut header).await.unwrap();
            let len = match header[1] {
                126 => usize::from(client.read_u16().await.unwrap()),
                len => usize::from(len),
            };
            let mut payload = vec![0; len];
            client.read_exact(&mut payload).await.unwrap();
            serde_json::from_slice(&payload).unwrap()
        };
        tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("a frame in time")
    }

    async fn receives(client: &mut TcpStream, expected: &[u8]) {
        let mut received = vec![0; expected.len()];
        tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut received))
            .await
            .expect("the frame arrives in time")
            .unwrap();
        assert_eq!(received, expected);
    }

    fn say(hub: &Hub, from: &Joined<HubSeat>, text: &str, client_id: Option<&str>) {
        hub.post(
            from.id,
            &from.seat,
            &Nickname::default(),
            MessageText::parse(text).unwrap(),
            client_id.map(|id| ClientMessageId::parse(id).unwrap()),
        );
    }

    #[tokio::test]
    async fn a_message_reaches_everyone_but_its_sender_who_gets_an_ack() {
        let hub = hub().await;
        let (alice, mut alice_client) = join(&hub).await;
        let (_bob, mut bob_client) = join(&hub).await;
        let (_carol, mut carol_client) = join(&hub).await;
        hub.announce_presence(&general(&hub));
        for client in [&mut alice_client, &mut bob_client, &mut carol_client] {
            assert_eq!(next_frame(client).await["type"], "presence");
        }

        say(&hub, &alice, "hi", Some("c1"));
        for client in [&mut bob_client, &mut carol_client] {
            let frame = next_frame(client).await;
            assert_eq!(frame["payload"]["text"], "hi");
            assert_eq!(frame["payload"]["from"], alice.id.get());
        }
        // The ack is alice's first frame: no copy of her message came before.
        let ack = next_frame(&mut alice_client).await;
        assert_eq!(ack["type"], "ack");
        assert_eq!(ack["payload"]["client_id"], "c1");
    }

    #[tokio::test]
    async fn a_resent_client_id_is_acked_again_and_not_relayed() {
        let hub = hub().await;
        let (alice, mut alice_client) = join(&hub).await;
        let (_bob, mut bob_client) = join(&hub).await;
        say(&hub, &alice, "once", Some("c1"));
        say(&hub, &alice, "once", Some("c1"));
        say(&hub, &alice, "after", None);
        let first = next_frame(&mut alice_client).await;
        let again = next_frame(&mut alice_client).await;
        assert_eq!(first["type"], "ack");
        assert_eq!(first, again, "the same id and time");

        let mut texts = Vec::new();
        while texts.last().map(String::as_str) != Some("after") {
            let frame = next_frame(&mut bob_client).await;
            if frame["type"] == "message" {
                texts.push(frame["payload"]["text"].as_str().unwrap().to_owned());
            }
        }
        assert_eq!(texts, ["once", "after"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_senders_reach_a_room_bigger_than_a_chunk_in_one_id_order() {
        let hub = hub().await;
        let mut senders = Vec::new();
        for _ in 0..4 {
            senders.push(join(&hub).await);
        }
        let mut clients = Vec::new();
        for _ in 0..3 * CHUNK {
            clients.push(join(&hub).await.1);
        }
        let tasks: Vec<_> = senders
            .into_iter()
            .map(|(sender, _client)| {
                let hub = Arc::clone(&hub);
                tokio::task::spawn_blocking(move || {
                    for i in 0..25 {
                        say(&hub, &sender, &format!("{}/{i}", sender.id), None);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        for client in &mut clients {
            let mut ids = Vec::new();
            let mut per_sender: HashMap<u64, Vec<u64>> = HashMap::new();
            while ids.len() < 100 {
                let frame = next_frame(client).await;
                if frame["type"] != "message" {
                    continue;
                }
                let payload = &frame["payload"];
                ids.push(payload["id"].as_u64().unwrap());
                let text = payload["text"].as_str().unwrap();
                let seq: u64 = text.rsplit('/').next().unwrap().parse().unwrap();
                per_sender
                    .entry(payload["from"].as_u64().unwrap())
                    .or_default()
                    .push(seq);
            }
            assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in order: {ids:?}");
            for seqs in per_sender.values() {
                assert_eq!(*seqs, (0..25).collect::<Vec<_>>());
            }
        }
    }

    #[tokio::test]
    async fn a_huge_room_is_written_by_every_flusher_and_reaches_everyone() {
        let hub = hub_listing(0, Duration::from_secs(3600)).await;
        let (sender, _sender_client) = join(&hub).await;
        let mut clients = Vec::new();
        for _ in 0..SHARED_FLUSH_CHUNKS * CHUNK {
            clients.push(join(&hub).await.1);
        }
        hub.broadcast_except(&general(&hub), Some(sender.id), &Bytes::from_static(b"all"));
        for client in &mut clients {
            receives(client, b"all").await;
        }
    }

    #[tokio::test]
    async fn presence_changes_between_announcements_are_coalesced() {
        let hub = hub().await;
        let (watcher, mut watcher_client) = join(&hub).await;
        hub.announce_presence(&general(&hub));
        let first = next_frame(&mut watcher_client).await;
        assert_eq!(first["payload"]["joined"][0]["id"], watcher.id.get());

        let (bob, _bob_client) = join_as(&hub, None).await;
        let (carol, carol_client) = join_as(&hub, None).await;
        hub.rename(bob.id, &bob.seat, Nickname::parse("bob").unwrap())
            .unwrap();
        hub.leave(carol.id, &carol.seat);
        drop(carol_client);
        hub.announce_presence(&general(&hub));
        let diff = next_frame(&mut watcher_client).await;
        assert_eq!(diff["type"], "presence");
        assert_eq!(diff["payload"]["online"], 2);
        assert_eq!(
            diff["payload"]["joined"],
            serde_json::json!([{"id": bob.id.get(), "nickname": "bob"}]),
            "one join under the final name; carol came and went unseen"
        );
        assert_eq!(diff["payload"]["left"], serde_json::json!([]));
    }

    #[tokio::test]
    async fn a_change_is_announced_by_itself_after_the_interval() {
        let hub = hub_listing(100, Duration::from_millis(20)).await;
        let (alice, mut alice_client) = join(&hub).await;
        let mut diff = next_frame(&mut alice_client).await;
        // The room list changed at the same time.
        if diff["type"] == "rooms" {
            diff = next_frame(&mut alice_client).await;
        }
        assert_eq!(diff["type"], "presence");
        assert_eq!(diff["payload"]["joined"][0]["id"], alice.id.get());
    }

    #[tokio::test]
    async fn leaving_the_hub_is_seen_by_the_next_broadcast() {
        let hub = hub().await;
        let (alice, _alice_client) = join(&hub).await;
        let (bob, _bob_client) = join_as(&hub, None).await;
        let frame = Bytes::from_static(b"x");
        assert_eq!(
            hub.broadcast_except(&general(&hub), Some(alice.id), &frame)
                .queued,
            1
        );
        hub.leave(bob.id, &bob.seat);
        assert_eq!(hub.len(), 1);
        assert!(!hub.contains(bob.id));
        assert_eq!(
            hub.broadcast_except(&general(&hub), Some(alice.id), &frame),
            Fanout::default()
        );
        let (_carol, mut carol_client) = join(&hub).await;
        assert_eq!(
            hub.broadcast_except(&general(&hub), Some(alice.id), &frame)
                .queued,
            1
        );
        receives(&mut carol_client, b"x").await;
    }

    #[tokio::test]
    async fn a_departed_clients_socket_is_closed_at_once() {
        let hub = hub().await;
        let (alice, _alice_client) = join(&hub).await;
        let (bob, mut bob_client) = join_as(&hub, None).await;
        // The broadcast builds the snapshot that still lists bob.
        hub.broadcast_except(&general(&hub), Some(alice.id), &Bytes::from_static(b"x"));
        receives(&mut bob_client, b"x").await;
        // The connection's task ends, dropping its seat.
        hub.leave(bob.id, &bob.seat);
        drop(bob);
        let mut buf = [0; 1];
        let read = tokio::time::timeout(Duration::from_secs(1), bob_client.read(&mut buf)).await;
        assert_eq!(read.expect("closed, not left hanging").unwrap(), 0);
    }

    /// Texts of the `message` frames `client` gets until `last` arrives.
    async fn texts_until(client: &mut TcpStream, last: &str) -> Vec<String> {
        let mut texts = Vec::new();
        while texts.last().map(String::as_str) != Some(last) {
            let frame = next_frame(client).await;
            if frame["type"] == "message" {
                texts.push(frame["payload"]["text"].as_str().unwrap().to_owned());
            }
        }
        texts
    }

    #[tokio::test]
    async fn a_resuming_client_gets_what_it_missed_in_order_then_welcome_then_live() {
        let hub = hub_listing(100, Duration::from_secs(3600)).await;
        let (alice, mut alice_client) = join(&hub).await;
        for text in ["one", "two", "three"] {
            say(&hub, &alice, text, None);
        }
        // Once alice hears the ack of a fourth, the three are stored.
        say(&hub, &alice, "four", Some("c4"));
        while next_frame(&mut alice_client).await["type"] != "ack" {}

        let (server, mut client) = socket_pair().await;
        let writer = Arc::new(ClientWriter::new(ClientId::next(), server, BUDGET));
        let resume = Resume {
            token: None,
            after: Some(1),
            room: None,
        };
        let joined = hub.join(writer, Some(resume)).await.unwrap();
        let mut kinds = Vec::new();
        for _ in 0..4 {
            let frame = next_frame(&mut client).await;
            kinds.push(match frame["type"].as_str().unwrap() {
                "message" => frame["payload"]["text"].as_str().unwrap().to_owned(),
                other => other.to_owned(),
            });
        }
        assert_eq!(kinds, ["two", "three", "four", "welcome"]);
        say(&hub, &alice, "live", None);
        assert_eq!(texts_until(&mut client, "live").await, ["live"]);
        assert_ne!(joined.id, alice.id);
    }

    #[tokio::test]
    async fn a_token_brings_back_the_same_person_without_a_leave_or_a_join() {
        let hour = Duration::from_secs(3600);
        let hub = hub_with(100, hour, hour).await;
        let (_watcher, mut watcher_client) = join(&hub).await;
        let (first, client, token) = join_resumable(&hub).await;
        hub.rename(first.id, &first.seat, Nickname::parse("alice").unwrap())
            .unwrap();
        hub.announce_presence(&general(&hub));
        assert_eq!(next_frame(&mut watcher_client).await["type"], "presence");

        hub.leave(first.id, &first.seat);
        drop(client);
        let resume = Resume {
            token: Some(token),
            after: None,
            room: None,
        };
        let (again, mut client) = {
            let (server, client) = socket_pair().await;
            let writer = Arc::new(ClientWriter::new(ClientId::next(), server, BUDGET));
            (hub.join(writer, Some(resume)).await.unwrap(), client)
        };
        assert_eq!((again.id, again.nickname.as_str()), (first.id, "alice"));
        let _ = next_frame(&mut client).await;
        // Nothing changed for anyone else: no presence is due.
        hub.announce_presence(&general(&hub));
        say(&hub, &again, "back", None);
        let frame = next_frame(&mut watcher_client).await;
        assert_eq!(frame["type"], "message", "no presence frame before it");
        assert_eq!(frame["payload"]["from"], first.id.get());
    }

    #[tokio::test]
    async fn a_second_connection_with_a_token_closes_the_first() {
        let hub = hub().await;
        let (server, mut client) = socket_pair().await;
        let first_writer = Arc::new(ClientWriter::new(ClientId::next(), server, BUDGET));
        let first = hub
            .join(Arc::clone(&first_writer), Some(Resume::default()))
            .await
            .unwrap();
        let token = next_frame(&mut client).await["payload"]["token"]
            .as_str()
            .unwrap()
            .to_owned();
        let (server, _client) = socket_pair().await;
        let writer = Arc::new(ClientWriter::new(ClientId::next(), server, BUDGET));
        let resume = Resume {
            token: Some(token),
            after: None,
            room: None,
        };
        let second = hub.join(writer, Some(resume)).await.unwrap();
        assert_eq!(second.id, first.id);
        let trouble = tokio::time::timeout(Duration::from_secs(5), first_writer.attention()).await;
        assert_eq!(trouble.unwrap(), crate::writer::Trouble::Displaced);
        // The displaced connection's goodbye does not take the person away.
        hub.leave(first.id, &first.seat);
        assert!(hub.contains(second.id));
    }

    #[tokio::test]
    async fn a_connection_taken_over_while_catching_up_is_closed_and_leaves_nothing_behind() {
        let hub = hub_with(100, Duration::from_secs(3600), Duration::from_secs(3600)).await;
        // Someone who dropped, and whose token two connections then show.
        let (first, _gone, token) = join_resumable(&hub).await;
        hub.leave(first.id, &first.seat);
        // More missed messages than a connection that does not read can
        // take: the first connection stays catching up.
        let text = "x".repeat(app::protocol::MESSAGE_MAX_CHARS);
        let missed = (0..4_000).map(|_| NewMessage {
            room: GENERAL_ROOM.into(),
            from: 1,
            nickname: "bob".into(),
            text: text.clone(),
            client_key: None,
        });
        hub.store.append(missed.collect()).await.unwrap();
        let resume = |after| {
            Some(Resume {
                token: Some(token.clone()),
                after,
                room: None,
            })
        };
        const SMALL: usize = 64 * 1024;
        let (server, _not_reading) = socket_pair().await;
        let overtaken = Arc::new(ClientWriter::new(ClientId::next(), server, SMALL));
        let catching_up = tokio::spawn({
            let (hub, writer, resume) = (Arc::clone(&hub), Arc::clone(&overtaken), resume(Some(0)));
            async move { hub.join(writer, resume).await.map(|joined| joined.id) }
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while overtaken.queued_bytes() <= SMALL / 2 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "it waits for its client"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }

        let (server, _client) = socket_pair().await;
        let writer = Arc::new(ClientWriter::new(ClientId::next(), server, BUDGET));
        let second = hub.join(Arc::clone(&writer), resume(None)).await.unwrap();
        assert_eq!(second.id, first.id);
        let trouble = tokio::time::timeout(Duration::from_secs(5), overtaken.attention()).await;
        assert_eq!(trouble.unwrap(), crate::writer::Trouble::Displaced);
        assert_eq!(catching_up.await.unwrap(), None, "never admitted");
        assert_eq!(hub.len(), 1, "no second member");
        assert!(general(&hub)
            .remove(second.id)
            .is_some_and(|member| Arc::ptr_eq(&member, &writer)));
    }

    #[tokio::test]
    async fn a_client_that_does_not_come_back_leaves_after_the_grace_period() {
        let hub = hub_with(100, Duration::from_millis(10), Duration::from_millis(50)).await;
        let (watcher, mut watcher_client) = join(&hub).await;
        let (server, client) = socket_pair().await;
        let writer = Arc::new(ClientWriter::new(ClientId::next(), server, BUDGET));
        let gone = hub.join(writer, Some(Resume::default())).await.unwrap();
        hub.leave(gone.id, &gone.seat);
        drop(client);
        loop {
            let frame = next_frame(&mut watcher_client).await;
            if frame["payload"]["left"]
                .as_array()
                .is_some_and(|left| !left.is_empty())
            {
                assert_eq!(frame["payload"]["left"][0]["id"], gone.id.get());
                assert_eq!(frame["payload"]["online"], 1);
                break;
            }
        }
        assert!(hub.contains(watcher.id));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn clients_resuming_during_a_flood_get_every_message_once_in_order() {
        const MESSAGES: u64 = 1500;
        let hub = hub().await;
        let (alice, mut alice_client) = join(&hub).await;
        let sender = {
            let hub = Arc::clone(&hub);
            tokio::spawn(async move {
                for i in 1..=MESSAGES {
                    say(&hub, &alice, &i.to_string(), Some(&format!("c{i}")));
                    if i % 50 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        };
        // Resumers join all along the flood: while batches are being
        // stored, and between storing and relaying them.
        let mut resumers = Vec::new();
        let mut acked = 0;
        while acked < MESSAGES {
            let (server, client) = socket_pair().await;
            let writer = Arc::new(ClientWriter::new(ClientId::next(), server, BUDGET));
            let resume = Resume {
                token: None,
                after: Some(0),
                room: None,
            };
            hub.join(writer, Some(resume)).await.unwrap();
            resumers.push(client);
            for _ in 0..25 {
                if acked < MESSAGES && next_frame(&mut alice_client).await["type"] == "ack" {
                    acked += 1;
                }
            }
        }
        sender.await.unwrap();
        let last = MESSAGES.to_string();
        for client in &mut resumers {
            let texts = texts_until(client, &last).await;
            let expected: Vec<String> = (1..=MESSAGES).map(|i| i.to_string()).collect();
            assert_eq!(texts, expected, "every message once, in order");
        }
        assert!(resumers.len() > 20);
    }

    #[tokio::test]
    async fn messages_read_while_catching_up_are_not_relayed_again() {
        let hub = hub().await;
        // Stored, but (as if the group commit were slow to hand them on)
        // not relayed yet when the client catches up.
        let message = |text: &str| NewMessage {
            room: "general".into(),
            from: 99,
            nickname: "bob".into(),
            text: text.into(),
            client_key: None,
        };
        let stored = hub
            .store
            .append(vec![message("one"), message("two")])
            .await
            .unwrap();
        let (_resumer, mut client) = join_as(
            &hub,
            Some(Resume {
                token: None,
                after: Some(0),
                room: None,
            }),
        )
        .await;
        let pending = Pending {
            from: ClientId::from(99),
            client_id: None,
            reply: None,
        };
        for appended in stored {
            hub.deliver(pending.clone(), Outcome::Stored(appended.message().clone()));
        }
        let three = hub.store.append(vec![message("three")]).await.unwrap();
        hub.deliver(pending, Outcome::Stored(three[0].message().clone()));
        let frame = next_frame(&mut client).await;
        assert_eq!(frame["payload"]["text"], "three", "one and two not again");
    }

    #[tokio::test]
    async fn an_id_a_client_only_claims_does_not_hold_back_new_messages() {
        let hub = hub().await;
        let (alice, _alice_client) = join(&hub).await;
        // As if the page kept ids from a store since wiped.
        let resume = Resume {
            token: None,
            after: Some(1_000),
            room: None,
        };
        let (_resumer, mut client) = join_as(&hub, Some(resume)).await;
        say(&hub, &alice, "new", None);
        assert_eq!(next_frame(&mut client).await["payload"]["text"], "new");
    }

    /// A client that asked for `room`, past its welcome.
    async fn join_room(hub: &Arc<Hub>, room: &str) -> (Joined<HubSeat>, TcpStream) {
        let resume = Resume {
            room: Some(room.into()),
            ..Resume::default()
        };
        join_as(hub, Some(resume)).await
    }

    /// The next frame of type `kind`, skipping others.
    async fn next_of(client: &mut TcpStream, kind: &str) -> Value {
        loop {
            let frame = next_frame(client).await;
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    #[tokio::test]
    async fn messages_and_typing_stay_in_their_room() {
        let hub = hub().await;
        let (alice, _alice_client) = join(&hub).await;
        let (_bob, mut bob_client) = join(&hub).await;
        let (carol, mut carol_client) = join_room(&hub, "rust").await;
        let (dave, _dave_client) = join_room(&hub, "rust").await;
        hub.typing(alice.id, &alice.seat, &Nickname::default(), true);
        say(&hub, &alice, "general only", None);
        let typing = next_of(&mut bob_client, "typing").await;
        assert_eq!(typing["payload"]["room"], "general");
        let message = next_of(&mut bob_client, "message").await;
        assert_eq!(message["payload"]["text"], "general only");
        assert_eq!(message["payload"]["room"], "general");

        hub.typing(dave.id, &dave.seat, &Nickname::default(), true);
        say(&hub, &dave, "rust only", None);
        let typing = next_of(&mut carol_client, "typing").await;
        assert_eq!(typing["payload"]["id"], dave.id.get(), "not alice's");
        let message = next_of(&mut carol_client, "message").await;
        assert_eq!(message["payload"]["text"], "rust only", "not general's");
        assert_eq!(message["payload"]["room"], "rust");
        assert_ne!(carol.id, dave.id);
    }

    #[tokio::test]
    async fn switching_rooms_leaves_one_and_joins_the_other_as_the_same_person() {
        let hub = hub().await;
        let (mut alice, mut alice_client) = join(&hub).await;
        hub.rename(alice.id, &alice.seat, Nickname::parse("alice").unwrap())
            .unwrap();
        let (_bob, mut bob_client) = join(&hub).await;
        let (carol, mut carol_client) = join_room(&hub, "rust").await;
        say(&hub, &carol, "before alice came", Some("c1"));
        next_of(&mut carol_client, "ack").await;
        hub.announce_presence(&general(&hub));
        let rust = hub.room("rust").unwrap();
        hub.announce_presence(&rust);
        next_of(&mut bob_client, "presence").await;
        next_of(&mut carol_client, "presence").await;

        let nickname = Nickname::parse("alice").unwrap();
        let rust_name = RoomName::parse("rust").unwrap();
        alice = hub
            .switch(alice.id, &alice.seat, &nickname, rust_name)
            .await
            .unwrap();
        assert_eq!(alice.nickname, nickname);
        let history = next_of(&mut alice_client, "history").await;
        assert_eq!(history["payload"]["room"], "rust");
        assert_eq!(
            history["payload"]["messages"][0]["text"],
            "before alice came"
        );
        let welcome = next_frame(&mut alice_client).await;
        assert_eq!(welcome["type"], "welcome", "right after the page");
        assert_eq!(welcome["payload"]["room"], "rust");
        assert_eq!(welcome["payload"]["id"], alice.id.get());
        assert_eq!(welcome["payload"]["online"], 2);

        hub.announce_presence(&general(&hub));
        let left = next_of(&mut bob_client, "presence").await;
        assert_eq!(left["payload"]["left"][0]["nickname"], "alice");
        hub.announce_presence(&rust);
        let joined = next_of(&mut carol_client, "presence").await;
        assert_eq!(joined["payload"]["joined"][0]["nickname"], "alice");

        say(&hub, &carol, "welcome alice", None);
        let message = next_of(&mut alice_client, "message").await;
        assert_eq!(message["payload"]["text"], "welcome alice");
    }

    #[tokio::test]
    async fn a_nickname_taken_in_the_new_room_becomes_anonymous_there() {
        let hub = hub().await;
        let (alice, _alice_client) = join(&hub).await;
        let (other, _other_client) = join_room(&hub, "rust").await;
        let nickname = Nickname::parse("alice").unwrap();
        hub.rename(alice.id, &alice.seat, nickname.clone()).unwrap();
        hub.rename(other.id, &other.seat, nickname.clone()).unwrap();
        let moved = hub
            .switch(
                alice.id,
                &alice.seat,
                &nickname,
                RoomName::parse("rust").unwrap(),
            )
            .await
            .unwrap();
        assert!(moved.nickname.is_default());
    }

    #[tokio::test]
    async fn the_room_list_counts_people_busiest_first_and_a_room_closes_when_empty() {
        let hub = hub().await;
        let (_a, _a_client) = join(&hub).await;
        let (b, _b_client) = join_room(&hub, "rust").await;
        let (c, _c_client) = join_room(&hub, "rust").await;
        let (_d, _d_client) = join_room(&hub, "go").await;
        let counts = |hub: &Hub| -> Vec<(String, u64)> {
            hub.room_list()
                .rooms
                .into_iter()
                .map(|count| (count.name, count.online))
                .collect()
        };
        let expected = [("rust", 2), ("general", 1), ("go", 1)];
        assert_eq!(
            counts(&hub),
            expected.map(|(name, online)| (name.to_owned(), online))
        );
        assert_eq!(hub.rooms(), 3);
        hub.leave(b.id, &b.seat);
        hub.leave(c.id, &c.seat);
        assert_eq!(hub.rooms(), 2, "rust closed with its last member");
        assert!(hub.room("rust").is_none());
        let expected = [("general", 1), ("go", 1)];
        assert_eq!(
            counts(&hub),
            expected.map(|(name, online)| (name.to_owned(), online))
        );
    }

    #[tokio::test]
    async fn everyone_hears_of_a_change_in_the_room_list() {
        let hub = hub_listing(100, Duration::from_millis(10)).await;
        let (_alice, mut alice_client) = join(&hub).await;
        let (_bob, _bob_client) = join_room(&hub, "rust").await;
        loop {
            let rooms = next_of(&mut alice_client, "rooms").await;
            if rooms["payload"]["rooms"][0]["name"] == "general"
                && rooms["payload"]["rooms"][1]["name"] == "rust"
            {
                break;
            }
        }
    }

    #[tokio::test]
    async fn a_person_resuming_into_another_room_leaves_the_one_they_were_in() {
        let hour = Duration::from_secs(3600);
        let hub = hub_with(100, hour, hour).await;
        let (_watcher, mut watcher_client) = join(&hub).await;
        let (first, client, token) = join_resumable(&hub).await;
        hub.announce_presence(&general(&hub));
        next_of(&mut watcher_client, "presence").await;
        hub.leave(first.id, &first.seat);
        drop(client);

        let resume = Resume {
            token: Some(token),
            room: Some("rust".into()),
            ..Resume::default()
        };
        let (again, _client) = join_as(&hub, Some(resume)).await;
        assert_eq!(again.id, first.id);
        hub.announce_presence(&general(&hub));
        let left = next_of(&mut watcher_client, "presence").await;
        assert_eq!(left["payload"]["left"][0]["id"], first.id.get());
        assert_eq!(hub.room_list().rooms.len(), 2);
    }
}
