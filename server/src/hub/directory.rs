//! The directory: the busiest rooms and how many are online in each, sent
//! to everyone when it changes (at most once per presence interval).

use std::{collections::HashMap, sync::atomic::Ordering};

use app::protocol::{RoomCount, RoomList, RoomName, ServerFrame, ROOM_LIST_MAX};

use crate::{lock, ws::frame};

use super::Hub;

impl Hub {
    pub(super) fn directory_changed(&self) {
        self.directory_due.store(true, Ordering::Release);
    }

    /// The busiest rooms, most people online first, then by name; always
    /// with `general`. Counts people on every server process.
    pub fn room_list(&self) -> RoomList {
        let mut counts: HashMap<String, u64> = self
            .registry
            .all()
            .iter()
            .map(|room| (room.name().to_string(), room.online() as u64))
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
        // Held while the list is sent, so a client being admitted either
        // copies this list or is a member by the time it goes out.
        let mut directory = lock(&self.directory);
        if *directory == list.rooms {
            return;
        }
        directory.clone_from(&list.rooms);
        let frame = frame::text(&ServerFrame::Rooms(list).encode());
        for room in self.registry.all() {
            self.broadcast_except(&room, None, &frame);
        }
    }
}
