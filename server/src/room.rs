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
    flush::{FlushJob, Recipients},
    lock,
    metrics::Metrics,
    presence::Roster,
    writer::{ClientWriter, Push},
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

/// What became of one broadcast.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Fanout {
    /// Recipients who got the frame (written, or queued to be written).
    pub queued: usize,
    /// Recipients disconnected because too much was waiting for them.
    pub evicted: usize,
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

    /// Queues `frame`, a whole WebSocket frame, for every member but `from`
    /// and, for the chat message with id `message`, those that have it
    /// already (they read it from the store catching up). The sockets
    /// this leaves to write are in the returned job. Each client's queue is
    /// in order, so one sender's messages never overtake each other.
    pub fn broadcast(
        &self,
        metrics: &Metrics,
        from: Option<ClientId>,
        message: Option<u64>,
        frame: &Bytes,
    ) -> (Fanout, FlushJob) {
        let members = self.snapshot();
        let len = members.len();
        // Broadcasts from different senders start at different places, so
        // two of them don't queue for the same clients' locks in step.
        let start = from.map_or(0, |from| from.get() as usize % len.max(1));
        let mut fanout = Fanout::default();
        let mut to_flush = Vec::new();
        for index in (start..len).chain(0..start) {
            let writer = &members[index];
            if from == Some(writer.id()) || message.is_some_and(|id| writer.has(id)) {
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
        metrics.frames_out(fanout.queued);
        (fanout, FlushJob::new(members, to_flush))
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
