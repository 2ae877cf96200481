//! One room: its members on this process, who is online in it, and the
//! fan-out of its frames.
//!
//! A room is its own membership list: a broadcast walks an immutable
//! snapshot of the members, rebuilt lazily at most once per broadcast after
//! the membership changed, queues the same shared bytes for each, and
//! returns the writing as a [flush job](crate::flush) for its caller to
//! write or hand to the pool. The [hub](crate::hub) decides which room a frame
//! belongs to; this module only knows its own members.

use std::{
    collections::HashMap,
    sync::{atomic::AtomicBool, Arc, Mutex},
};

use app::protocol::RoomName;
use bytes::Bytes;

use crate::{
    client_id::ClientId,
    flush::{FlushJob, FlushPool, Recipients},
    lock,
    metrics::Metrics,
    presence::Roster,
    writer::{ClientWriter, Delivery, Push},
};

#[derive(Debug)]
pub struct Room {
    name: RoomName,
    members: Mutex<HashMap<ClientId, Arc<ClientWriter>>>,
    /// The members as broadcasts see them; `None` after a change.
    snapshot: Mutex<Option<Recipients>>,
    /// Who is online here, connected or away for a grace period.
    pub(crate) roster: Mutex<Roster>,
    /// A presence announcement is scheduled.
    pub(crate) presence_due: AtomicBool,
    /// Held across each relay, so a client catching up is admitted between
    /// two relays, never during one.
    pub(crate) relayed: Mutex<Relayed>,
}

/// The relays so far, as far as clients catching up need to know.
#[derive(Debug, Default)]
pub(crate) struct Relayed {
    /// The id of the newest message relayed here.
    pub last: u64,
}

/// One frame for a room's members, and whom it skips.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// A whole WebSocket frame, the same bytes for everyone.
    pub frame: Bytes,
    /// Its sender, who does not get it.
    pub from: Option<ClientId>,
    /// The chat message it carries: members who read that message from the
    /// store while catching up have it already.
    pub message: Option<u64>,
}

impl Outgoing {
    fn is_for(&self, writer: &ClientWriter) -> bool {
        self.from != Some(writer.id()) && !self.message.is_some_and(|id| writer.has(id))
    }
}

/// The members' indices in the order a broadcast visits them. Broadcasts
/// from different senders start at different places, so two of them don't
/// queue for the same clients' locks in step.
fn rotation(len: usize, from: Option<ClientId>) -> impl Iterator<Item = usize> {
    let start = from.map_or(0, |from| from.get() as usize % len.max(1));
    (start..len).chain(0..start)
}

/// What became of one broadcast.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fanout {
    /// Recipients who got the frame (written, or queued to be written).
    pub queued: usize,
    /// Recipients disconnected because too much was waiting for them.
    pub evicted: usize,
}

impl Fanout {
    fn evict(&mut self, writer: &ClientWriter) {
        tracing::warn!(client = %writer.id(), "client too slow, disconnecting it");
        self.evicted += 1;
    }
}

impl Room {
    /// `list_limit`: the most people listed by name in its presence.
    pub fn new(name: RoomName, list_limit: usize) -> Self {
        Self {
            name,
            members: Mutex::default(),
            snapshot: Mutex::default(),
            roster: Mutex::new(Roster::new(list_limit)),
            presence_due: AtomicBool::new(false),
            relayed: Mutex::default(),
        }
    }

    pub fn name(&self) -> &RoomName {
        &self.name
    }

    /// Members connected to this process.
    pub fn len(&self) -> usize {
        lock(&self.members).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// People online here: connected, or away for a grace period.
    pub fn online(&self) -> usize {
        lock(&self.roster).len()
    }

    pub fn contains(&self, id: ClientId) -> bool {
        lock(&self.members).contains_key(&id)
    }

    pub fn member(&self, id: ClientId) -> Option<Arc<ClientWriter>> {
        lock(&self.members).get(&id).cloned()
    }

    pub fn insert(&self, id: ClientId, writer: Arc<ClientWriter>) {
        lock(&self.members).insert(id, writer);
        *lock(&self.snapshot) = None;
    }

    /// Removes the member, and the snapshot that still holds it, so its
    /// socket can close now rather than at the next broadcast.
    pub fn remove(&self, id: ClientId) -> Option<Arc<ClientWriter>> {
        let removed = lock(&self.members).remove(&id);
        if removed.is_some() {
            let stale = lock(&self.snapshot).take();
            drop(stale);
        }
        removed
    }

    /// Removes the member `id` if it is `writer`'s connection, and not a
    /// newer one of the same person.
    pub fn remove_member(&self, id: ClientId, writer: &Arc<ClientWriter>) {
        let mut members = lock(&self.members);
        if members
            .get(&id)
            .is_some_and(|member| Arc::ptr_eq(member, writer))
        {
            members.remove(&id);
            drop(members);
            let stale = lock(&self.snapshot).take();
            drop(stale);
        }
    }

    /// Queues `out` for every member it is for. The sockets this leaves to
    /// write are in the returned job. Each client's queue is in order, so
    /// one sender's messages never overtake each other.
    pub fn broadcast(&self, metrics: &Metrics, out: &Outgoing) -> (Fanout, FlushJob) {
        let members = self.snapshot();
        let mut fanout = Fanout::default();
        let mut to_flush = Vec::new();
        for index in rotation(members.len(), out.from) {
            let writer = &members[index];
            if !out.is_for(writer) {
                continue;
            }
            match writer.push(&out.frame) {
                Push::First => {
                    to_flush.push(index);
                    fanout.queued += 1;
                }
                Push::Behind => fanout.queued += 1,
                Push::Evicted => fanout.evict(writer),
                Push::Dropped => {}
            }
        }
        metrics.frames_out(fanout.queued);
        (fanout, FlushJob::new(members, to_flush))
    }

    /// Queues `frames`, in order, for every member each is for, and writes
    /// each member's queue right after, on this thread, which must be
    /// allowed to block: while that member's lock and queue are still in
    /// this CPU's cache, and with all of its frames in one write. A room
    /// too big for one thread is written by the flusher pool instead.
    pub fn broadcast_here(
        &self,
        flush: &Arc<FlushPool>,
        metrics: &Metrics,
        frames: &[Outgoing],
    ) -> Fanout {
        let members = self.snapshot();
        let mut fanout = Fanout::default();
        if FlushJob::is_shared_size(members.len()) {
            for out in frames {
                let (one, writes) = self.broadcast(metrics, out);
                flush.submit(writes);
                fanout.queued += one.queued;
                fanout.evicted += one.evicted;
            }
            return fanout;
        }
        let first_from = frames.first().and_then(|out| out.from);
        for index in rotation(members.len(), first_from) {
            let writer = &members[index];
            let mut mine = frames.iter().filter(|out| out.is_for(writer));
            let Some(first) = mine.next() else {
                continue;
            };
            let Some(second) = mine.next() else {
                // One frame, the usual case: straight to the socket.
                match writer.send(&first.frame) {
                    Delivery::Written | Delivery::Queued => fanout.queued += 1,
                    Delivery::Evicted => fanout.evict(writer),
                    Delivery::Dropped => {}
                }
                continue;
            };
            let mut flush_it = false;
            for out in [first, second].into_iter().chain(mine) {
                match writer.push(&out.frame) {
                    Push::First => {
                        flush_it = true;
                        fanout.queued += 1;
                    }
                    Push::Behind => fanout.queued += 1,
                    Push::Evicted => {
                        fanout.evict(writer);
                        break;
                    }
                    Push::Dropped => break,
                }
            }
            if flush_it {
                writer.flush();
            }
        }
        metrics.frames_out(fanout.queued);
        fanout
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
}

#[cfg(test)]
mod tests {
    use tokio::{io::AsyncReadExt, net::TcpStream};

    use super::*;
    use crate::writer::tests::socket_pair;

    /// A member with a real socket, and the client's end of it.
    async fn member(room: &Room, id: u64) -> (Arc<ClientWriter>, TcpStream) {
        let (server, client) = socket_pair().await;
        let writer = Arc::new(ClientWriter::new(ClientId::from(id), server, 4096));
        room.insert(ClientId::from(id), Arc::clone(&writer));
        (writer, client)
    }

    fn message(id: u64, from: u64, text: &'static [u8]) -> Outgoing {
        Outgoing {
            frame: Bytes::from_static(text),
            from: Some(ClientId::from(from)),
            message: Some(id),
        }
    }

    async fn received(client: &mut TcpStream, len: usize) -> Vec<u8> {
        let mut bytes = vec![0; len];
        client.read_exact(&mut bytes).await.unwrap();
        bytes
    }

    #[tokio::test]
    async fn a_batch_is_written_before_broadcast_here_returns_each_member_getting_its_share_in_order(
    ) {
        let room = Room::new(RoomName::general(), 10);
        let (alice, mut alice_end) = member(&room, 1).await;
        let (bob, mut bob_end) = member(&room, 2).await;
        let (carol, mut carol_end) = member(&room, 3).await;
        // Carol read message 11 from the store while catching up.
        carol.read_through(11);

        let fanout = room.broadcast_here(
            &FlushPool::new(),
            &Metrics::default(),
            &[
                message(11, 1, b"<11>"),
                message(12, 2, b"<12>"),
                message(13, 1, b"<13>"),
            ],
        );

        for writer in [&alice, &bob, &carol] {
            assert_eq!(writer.queued_bytes(), 0, "written on this thread");
        }
        assert_eq!(fanout.queued, 5);
        assert_eq!(received(&mut alice_end, 4).await, b"<12>");
        assert_eq!(received(&mut bob_end, 8).await, b"<11><13>");
        assert_eq!(received(&mut carol_end, 8).await, b"<12><13>");

        // What follows for Alice is the next broadcast: she never got her
        // own <13>.
        room.broadcast_here(
            &FlushPool::new(),
            &Metrics::default(),
            &[message(14, 3, b"<14>")],
        );
        assert_eq!(received(&mut alice_end, 4).await, b"<14>");
    }
}
