//! The other server processes, as the broker tells of them: their messages
//! relayed here, their presence announced here, and this process's rooms
//! announced to them.

use std::time::Instant;

use app::protocol::{RoomName, ServerFrame};

use crate::{
    broker::{self, Signal, Sink},
    cluster::Occupants,
    lock,
    store::StoredMessage,
    ws::frame,
};

use super::Hub;

/// Everyone this process has in `room`, for the other processes.
pub(super) fn occupancy(room: &RoomName, roster: &crate::presence::Roster, node: u64) -> Signal {
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
        Hub::relay(self, message);
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
        self.registry
            .all()
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

impl Hub {
    pub(super) fn node(&self) -> u64 {
        self.broker().node()
    }

    /// Passes on another process's presence change to this one's members
    /// of the room.
    pub(super) fn announce_remote(&self, mut diff: app::protocol::Presence) {
        let Some(room) = self.room(&diff.room) else {
            self.directory_changed();
            return;
        };
        diff.online = lock(&room.roster).len() as u64 + lock(&self.cluster).online(room.name());
        let frame = frame::text(&ServerFrame::Presence(diff).encode());
        self.broadcast_except(&room, None, &frame);
        self.directory_changed();
    }
}
