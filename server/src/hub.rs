//! The hub: who is connected, and who gets what.
//!
//! It is the chat's one room (rooms come later): a registry of connected
//! clients' writers and the [roster](crate::presence) of who is online under
//! which nickname. Messages go to the [group commit](crate::commit) first and
//! come back numbered and durable, in id order; only then is a message
//! framed once and queued for every recipient as the same shared bytes;
//! the [flusher pool](crate::flush) writes the queues out. Broadcasts walk
//! an immutable snapshot of the members, rebuilt lazily at most once per
//! broadcast after the membership changed, so they never block a client
//! joining or leaving.
//!
//! Presence is announced in coalesced diffs: a change schedules one
//! announcement a short interval later, which carries every change made
//! meanwhile.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex, Weak,
    },
    time::Duration,
};

use app::protocol::{
    Ack, ChatMessage, ClientMessageId, ErrorCode, ErrorPayload, HistoryPage, MessageText, Nickname,
    ServerFrame, Typing, Welcome,
};
use bytes::Bytes;

use crate::{
    client_id::ClientId,
    commit::{Committer, Outcome, Pending},
    flush::{FlushPool, Recipients},
    lock,
    metrics::Metrics,
    presence::{NicknameTaken, Roster},
    session::Room,
    store::{NewMessage, Store, StoreError, StoredMessage},
    writer::{ClientWriter, Push},
    ws::frame,
};

#[derive(Debug)]
pub struct Hub {
    me: Weak<Hub>,
    members: Mutex<HashMap<ClientId, Arc<ClientWriter>>>,
    /// The members as broadcasts see them; `None` after a change.
    snapshot: Mutex<Option<Recipients>>,
    roster: Mutex<Roster>,
    committer: Committer,
    /// For reads: history pages and catching up.
    store: Store,
    flush: Arc<FlushPool>,
    presence_interval: Duration,
    /// A presence announcement is scheduled.
    presence_due: AtomicBool,
    metrics: Metrics,
}

/// What became of one broadcast.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fanout {
    /// Recipients who got the frame (written, or queued to be written).
    pub queued: usize,
    /// Recipients disconnected because too much was waiting for them.
    pub evicted: usize,
}

impl Hub {
    /// `list_limit`: the largest room whose members are listed by name in
    /// presence; `presence_interval`: how long changes gather before they
    /// are announced; `store`: where messages are kept. Starts the group
    /// commit task, so it must be called within a tokio runtime.
    pub fn new(
        list_limit: usize,
        presence_interval: Duration,
        metrics: Metrics,
        store: Store,
    ) -> Arc<Self> {
        Arc::new_cyclic(|me: &Weak<Hub>| Self {
            me: me.clone(),
            members: Mutex::default(),
            snapshot: Mutex::default(),
            roster: Mutex::new(Roster::new(list_limit)),
            committer: {
                let hub = me.clone();
                Committer::spawn(store.clone(), metrics.clone(), move |pending, outcome| {
                    if let Some(hub) = hub.upgrade() {
                        hub.deliver(pending, outcome);
                    }
                })
            },
            store,
            flush: FlushPool::new(),
            presence_interval,
            presence_due: AtomicBool::new(false),
            metrics,
        })
    }

    /// Number of connected clients.
    pub fn len(&self) -> usize {
        lock(&self.members).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether this client is connected.
    pub fn contains(&self, id: ClientId) -> bool {
        lock(&self.members).contains_key(&id)
    }

    /// Sends `frame`, a whole WebSocket frame, to every client except `from`.
    ///
    /// The frame is queued for everyone here, which is cheap; the writing is
    /// handed to the flusher pool, and the caller does not wait for it. Each
    /// client's queue is in order, so one sender's messages never overtake
    /// each other.
    pub fn broadcast_except(&self, from: Option<ClientId>, frame: &Bytes) -> Fanout {
        let members = self.snapshot();
        let len = members.len();
        // Broadcasts from different senders start at different places, so
        // two of them don't queue for the same clients' locks in step.
        let start = from.map_or(0, |from| from.get() as usize % len.max(1));
        let mut fanout = Fanout::default();
        let mut to_flush = Vec::new();
        for index in (start..len).chain(0..start) {
            let writer = &members[index];
            if Some(writer.id()) == from {
                continue;
            }
            match writer.push(frame) {
                Push::First => {
                    to_flush.push(index);
                    fanout.queued += 1;
                }
                Push::Behind => fanout.queued += 1,
                Push::Evicted => {
                    tracing::warn!(client = %writer.id(), "client too slow, disconnecting it");
                    fanout.evicted += 1;
                }
                Push::Dropped => {}
            }
        }
        self.flush.submit(members, to_flush);
        self.metrics.frames_out(fanout.queued);
        fanout
    }

    /// Sends one frame to one client, if it is still here.
    fn send_to(&self, id: ClientId, frame: &ServerFrame) {
        let writer = lock(&self.members).get(&id).cloned();
        if let Some(writer) = writer {
            writer.send(&frame::text(&frame.encode()));
            self.metrics.frames_out(1);
        }
    }

    fn snapshot(&self) -> Recipients {
        let mut snapshot = lock(&self.snapshot);
        if let Some(members) = &*snapshot {
            return Arc::clone(members);
        }
        let members: Recipients = lock(&self.members).values().cloned().collect();
        *snapshot = Some(Arc::clone(&members));
        members
    }

    /// Announces presence changes one interval from now, unless that is
    /// already planned: the announcement will carry this change too.
    fn presence_changed(&self) {
        if self.presence_due.swap(true, Ordering::AcqRel) {
            return;
        }
        let (Some(hub), Ok(runtime)) = (self.me.upgrade(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(async move {
            tokio::time::sleep(hub.presence_interval).await;
            hub.announce_presence();
        });
    }

    /// Sends everyone what changed since the last announcement.
    pub fn announce_presence(&self) {
        self.presence_due.store(false, Ordering::Release);
        let diff = lock(&self.roster).take_diff();
        if let Some(diff) = diff {
            self.broadcast_except(None, &frame::text(&ServerFrame::Presence(diff).encode()));
        }
    }
}

impl Room for Hub {
    type Endpoint = Arc<ClientWriter>;

    fn join(&self, id: ClientId, writer: Arc<ClientWriter>) {
        {
            let mut roster = lock(&self.roster);
            roster.join(id);
            let welcome = ServerFrame::Welcome(Welcome {
                id: id.get(),
                nickname: Nickname::default().to_string(),
                online: roster.len() as u64,
                people: roster.listing(),
                token: crate::identity::ResumeToken::generate().as_str().to_owned(),
            });
            // Written before the client is a member: nothing can precede it.
            writer.send(&frame::text(&welcome.encode()));
            self.metrics.frames_out(1);
            lock(&self.members).insert(id, writer);
            *lock(&self.snapshot) = None;
        }
        self.presence_changed();
    }

    fn leave(&self, id: ClientId) {
        if lock(&self.members).remove(&id).is_none() {
            return;
        }
        // Dropping the old snapshot here, not at the next broadcast, lets a
        // departed client's socket close now.
        let stale = lock(&self.snapshot).take();
        drop(stale);
        lock(&self.roster).leave(id);
        self.presence_changed();
    }

    fn rename(&self, id: ClientId, nickname: Nickname) -> Result<(), NicknameTaken> {
        lock(&self.roster).rename(id, nickname)?;
        self.presence_changed();
        Ok(())
    }

    fn post(
        &self,
        from: ClientId,
        nickname: &Nickname,
        text: MessageText,
        client_id: Option<ClientMessageId>,
    ) {
        let message = NewMessage {
            from: from.get(),
            nickname: nickname.to_string(),
            text: text.into_string(),
            client_id: client_id.as_ref().map(ToString::to_string),
        };
        let pending = Pending { from, client_id };
        if let Err(backlogged) = self.committer.submit(pending.clone(), message) {
            tracing::warn!(client = %from, "{backlogged}: message refused");
            self.deliver(pending, Outcome::Failed);
        }
    }

    fn typing(&self, from: ClientId, nickname: &Nickname, active: bool) {
        let typing = ServerFrame::Typing(Typing {
            id: from.get(),
            nickname: nickname.to_string(),
            active,
        });
        self.broadcast_except(Some(from), &frame::text(&typing.encode()));
    }

    fn history(&self, to: ClientId, before: u64) {
        let (Some(hub), Ok(runtime)) = (self.me.upgrade(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(async move {
            let frame = match history_page(&hub.store, Some(before)).await {
                Ok(page) => ServerFrame::History(page),
                Err(error) => {
                    tracing::warn!(%error, "could not read history");
                    hub.metrics.error(ErrorCode::Unavailable);
                    ServerFrame::Error(ErrorPayload::new(
                        ErrorCode::Unavailable,
                        "older messages cannot be read right now; try again",
                    ))
                }
            };
            hub.send_to(to, &frame);
        });
    }
}

/// Messages per `history` page, and in the server-rendered page.
pub const HISTORY_PAGE: u32 = 50;

/// The page of stored messages just older than `before`, or the latest
/// ones for `None`.
pub async fn history_page(store: &Store, before: Option<u64>) -> Result<HistoryPage, StoreError> {
    // One more than a page tells whether anything older remains.
    let mut messages = match before {
        Some(before) => store.before(before, HISTORY_PAGE + 1).await?,
        None => store.latest(HISTORY_PAGE + 1).await?,
    };
    let beginning = messages.len() <= HISTORY_PAGE as usize;
    if !beginning {
        messages.remove(0);
    }
    Ok(HistoryPage {
        messages: messages.iter().map(chat_message).collect(),
        beginning,
    })
}

impl Hub {
    /// Tells the sender, and for a new message everyone else, what the
    /// store made of it. Called by the group commit, in id order.
    fn deliver(&self, pending: Pending, outcome: Outcome) {
        let Pending { from, client_id } = pending;
        let stored = match outcome {
            Outcome::Stored(message) => {
                let relayed = ServerFrame::Message(chat_message(&message));
                self.broadcast_except(Some(from), &frame::text(&relayed.encode()));
                self.metrics.message_relayed();
                message
            }
            Outcome::Duplicate(message) => message,
            Outcome::Failed => {
                let error = ErrorPayload::new(
                    ErrorCode::Unavailable,
                    "the message could not be stored; it was not sent, try again",
                )
                .about(client_id.as_ref().map(ClientMessageId::as_str));
                self.metrics.error(ErrorCode::Unavailable);
                self.send_to(from, &ServerFrame::Error(error));
                return;
            }
        };
        if let Some(client_id) = client_id {
            let ack = Ack {
                client_id: client_id.to_string(),
                id: stored.id,
                sent_at: stored.sent_at,
            };
            self.send_to(from, &ServerFrame::Ack(ack));
        }
    }
}

fn chat_message(message: &StoredMessage) -> ChatMessage {
    ChatMessage {
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

    const BUDGET: usize = 1 << 20;

    /// A hub that announces presence only when a test says so, over a
    /// store in memory.
    async fn hub_listing(list_limit: usize, presence_interval: Duration) -> Arc<Hub> {
        let store = Store::open("sqlite::memory:").await.unwrap();
        Hub::new(list_limit, presence_interval, Metrics::default(), store)
    }

    async fn hub() -> Arc<Hub> {
        hub_listing(100, Duration::from_secs(3600)).await
    }

    /// A client of `hub`, past its welcome: its id and its end of the socket.
    async fn join(hub: &Arc<Hub>) -> (ClientId, TcpStream) {
        let (server, mut client) = socket_pair().await;
        let id = ClientId::next();
        hub.join(id, Arc::new(ClientWriter::new(id, server, BUDGET)));
        assert_eq!(next_frame(&mut client).await["type"], "welcome");
        (id, client)
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

    fn say(hub: &Hub, from: ClientId, text: &str, client_id: Option<&str>) {
        hub.post(
            from,
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
        hub.announce_presence();
        for client in [&mut alice_client, &mut bob_client, &mut carol_client] {
            assert_eq!(next_frame(client).await["type"], "presence");
        }

        say(&hub, alice, "hi", Some("c1"));
        for client in [&mut bob_client, &mut carol_client] {
            let frame = next_frame(client).await;
            assert_eq!(frame["payload"]["text"], "hi");
            assert_eq!(frame["payload"]["from"], alice.get());
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
        say(&hub, alice, "once", Some("c1"));
        say(&hub, alice, "once", Some("c1"));
        say(&hub, alice, "after", None);
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
            .iter()
            .map(|&(id, _)| {
                let hub = Arc::clone(&hub);
                tokio::task::spawn_blocking(move || {
                    for i in 0..25 {
                        say(&hub, id, &format!("{id}/{i}"), None);
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
        hub.broadcast_except(Some(sender), &Bytes::from_static(b"all"));
        for client in &mut clients {
            receives(client, b"all").await;
        }
    }

    #[tokio::test]
    async fn presence_changes_between_announcements_are_coalesced() {
        let hub = hub().await;
        let (watcher, mut watcher_client) = join(&hub).await;
        hub.announce_presence();
        let first = next_frame(&mut watcher_client).await;
        assert_eq!(first["payload"]["joined"][0]["id"], watcher.get());

        let (bob, _bob_client) = join(&hub).await;
        let (carol, carol_client) = join(&hub).await;
        hub.rename(bob, Nickname::parse("bob").unwrap()).unwrap();
        hub.leave(carol);
        drop(carol_client);
        hub.announce_presence();
        let diff = next_frame(&mut watcher_client).await;
        assert_eq!(diff["type"], "presence");
        assert_eq!(diff["payload"]["online"], 2);
        assert_eq!(
            diff["payload"]["joined"],
            serde_json::json!([{"id": bob.get(), "nickname": "bob"}]),
            "one join under the final name; carol came and went unseen"
        );
        assert_eq!(diff["payload"]["left"], serde_json::json!([]));
    }

    #[tokio::test]
    async fn a_change_is_announced_by_itself_after_the_interval() {
        let hub = hub_listing(100, Duration::from_millis(20)).await;
        let (alice, mut alice_client) = join(&hub).await;
        let diff = next_frame(&mut alice_client).await;
        assert_eq!(diff["type"], "presence");
        assert_eq!(diff["payload"]["joined"][0]["id"], alice.get());
    }

    #[tokio::test]
    async fn leaving_the_hub_is_seen_by_the_next_broadcast() {
        let hub = hub().await;
        let (alice, _alice_client) = join(&hub).await;
        let (bob, _bob_client) = join(&hub).await;
        let frame = Bytes::from_static(b"x");
        assert_eq!(hub.broadcast_except(Some(alice), &frame).queued, 1);
        hub.leave(bob);
        assert_eq!(hub.len(), 1);
        assert!(!hub.contains(bob));
        assert_eq!(hub.broadcast_except(Some(alice), &frame), Fanout::default());
        let (_carol, mut carol_client) = join(&hub).await;
        assert_eq!(hub.broadcast_except(Some(alice), &frame).queued, 1);
        receives(&mut carol_client, b"x").await;
    }

    #[tokio::test]
    async fn a_departed_clients_socket_is_closed_at_once() {
        let hub = hub().await;
        let (alice, _alice_client) = join(&hub).await;
        let (bob, mut bob_client) = join(&hub).await;
        // The broadcast builds the snapshot that still lists bob.
        hub.broadcast_except(Some(alice), &Bytes::from_static(b"x"));
        receives(&mut bob_client, b"x").await;
        hub.leave(bob);
        let mut buf = [0; 1];
        let read = tokio::time::timeout(Duration::from_secs(1), bob_client.read(&mut buf)).await;
        assert_eq!(read.expect("closed, not left hanging").unwrap(), 0);
    }
}
