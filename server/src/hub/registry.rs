//! The room registry: the rooms open in this process. A room opens with
//! its first [`RoomHold`] and closes when the last one is dropped; the
//! holds are the connections in it and the people away from it (each
//! person's whereabouts carry one), so no code path can forget to let go.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
};

use app::protocol::RoomName;

use crate::{client_id::ClientId, lock, room::Room};

/// Most rooms open at once: each costs memory while anyone is in it.
pub const MAX_ROOMS: usize = 100_000;

type Rooms = Mutex<HashMap<RoomName, Held>>;

/// The rooms open here.
#[derive(Debug)]
pub(super) struct Registry {
    rooms: Arc<Rooms>,
    /// The largest room whose members are listed by name in presence.
    list_limit: usize,
}

/// A room and how many hold it.
#[derive(Debug)]
struct Held {
    room: Arc<Room>,
    holds: usize,
}

/// A hold on an open room: the room stays open while one lives.
#[derive(Debug)]
pub(super) struct RoomHold {
    room: Arc<Room>,
    rooms: Weak<Rooms>,
}

impl RoomHold {
    pub(super) fn room(&self) -> &Arc<Room> {
        &self.room
    }
}

impl Drop for RoomHold {
    fn drop(&mut self) {
        let Some(rooms) = self.rooms.upgrade() else {
            return;
        };
        let mut rooms = lock(&rooms);
        if let Some(held) = rooms.get_mut(self.room.name()) {
            held.holds -= 1;
            if held.holds == 0 {
                rooms.remove(self.room.name());
            }
        }
    }
}

impl Registry {
    pub(super) fn new(list_limit: usize) -> Self {
        Self {
            rooms: Arc::default(),
            list_limit,
        }
    }

    /// A hold on the room `name`, opening it if need be; `None` if too
    /// many rooms are open.
    pub(super) fn hold(&self, name: &RoomName) -> Option<RoomHold> {
        let mut rooms = lock(&self.rooms);
        let open = rooms.len();
        let room = match rooms.get_mut(name) {
            Some(held) => {
                held.holds += 1;
                Arc::clone(&held.room)
            }
            None if open >= MAX_ROOMS => return None,
            None => {
                let room = Arc::new(Room::new(name.clone(), self.list_limit));
                let held = Held {
                    room: Arc::clone(&room),
                    holds: 1,
                };
                rooms.insert(name.clone(), held);
                room
            }
        };
        Some(RoomHold {
            room,
            rooms: Arc::downgrade(&self.rooms),
        })
    }

    /// The room named `name`, if it is open.
    pub(super) fn get(&self, name: &str) -> Option<Arc<Room>> {
        lock(&self.rooms)
            .get(name)
            .map(|held| Arc::clone(&held.room))
    }

    /// Every open room (a snapshot: rooms may open and close meanwhile).
    pub(super) fn all(&self) -> Vec<Arc<Room>> {
        lock(&self.rooms)
            .values()
            .map(|held| Arc::clone(&held.room))
            .collect()
    }

    /// How many rooms are open.
    pub(super) fn len(&self) -> usize {
        lock(&self.rooms).len()
    }

    /// Connected clients, in every room.
    pub(super) fn members(&self) -> usize {
        lock(&self.rooms).values().map(|held| held.room.len()).sum()
    }

    /// Whether this client is connected, in any room.
    pub(super) fn contains(&self, id: ClientId) -> bool {
        lock(&self.rooms)
            .values()
            .any(|held| held.room.contains(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_is_open_while_a_hold_lives() {
        let registry = Registry::new(10);
        let rust = RoomName::parse("rust").unwrap();
        let first = registry.hold(&rust).unwrap();
        let second = registry.hold(&rust).unwrap();
        assert!(Arc::ptr_eq(first.room(), second.room()));
        drop(first);
        assert!(registry.get("rust").is_some());
        drop(second);
        assert!(registry.get("rust").is_none());
        assert_eq!(registry.len(), 0);
    }
}
