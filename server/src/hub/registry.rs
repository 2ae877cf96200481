//! The room registry: the rooms open in this process, each held by the
//! connections in it and the people away from it; the last hold to go
//! closes the room.

use std::sync::Arc;

use app::protocol::RoomName;

use crate::{lock, room::Room};

use super::Hub;

/// A room and how many hold it: seats in it and people away from it.
#[derive(Debug)]
pub(super) struct Held {
    pub(super) room: Arc<Room>,
    pub(super) holds: usize,
}

/// Most rooms open at once: each costs memory while anyone is in it.
pub const MAX_ROOMS: usize = 100_000;

impl Hub {
    /// A hold on the room `name`, opening it if need be; `None` if too
    /// many rooms are open.
    pub(super) fn hold(&self, name: &RoomName) -> Option<Arc<Room>> {
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
    pub(super) fn unhold(&self, room: &Room) {
        let mut rooms = lock(&self.rooms);
        if let Some(held) = rooms.get_mut(room.name()) {
            held.holds -= 1;
            if held.holds == 0 {
                rooms.remove(room.name());
            }
        }
    }
}
