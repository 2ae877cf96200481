//! The room shown, the list of rooms, and moving from one to another over
//! the same connection.

use super::{Effect, Effects, State};
use crate::protocol::{ClientFrame, RoomCount, RoomName};

/// A `history` request's `before` above every id: the newest page.
/// `Number.MAX_SAFE_INTEGER`, the largest id a browser's JSON reads exactly.
pub(super) const LATEST: u64 = (1 << 53) - 1;

#[derive(Debug, Clone, Default)]
pub struct Rooms {
    /// The room the page shows; frames about any other room are dropped.
    pub room: RoomName,
    /// The rooms and their online counts from the latest `rooms` frame.
    pub list: Vec<RoomCount>,
}

impl Rooms {
    /// The rooms to link to: those of the latest `rooms` frame with their
    /// counts, then `general` and the current room if they are not among
    /// them (with no count).
    pub fn links(&self) -> Vec<(RoomName, Option<u64>)> {
        let mut links: Vec<_> = self
            .list
            .iter()
            .filter_map(|room| Some((RoomName::parse(&room.name).ok()?, Some(room.online))))
            .collect();
        for room in [RoomName::general(), self.room.clone()] {
            if !links.iter().any(|(name, _)| *name == room) {
                links.push((room, None));
            }
        }
        links
    }
}

impl State {
    /// Shows `room` instead: an empty list until its latest page arrives,
    /// nobody online or typing until its welcome. Own messages still pending
    /// in the old room leave the view (the server has those it got). Online
    /// (or connecting: the frame follows `resume`) it asks to join; offline
    /// the next `resume` names the room.
    pub(super) fn switch_room(&mut self, room: RoomName, fx: &mut Effects) {
        self.rooms.room = room;
        self.timeline.clear_for_join();
        self.reading.follow();
        self.reading.divider = None;
        self.people.clear();
        self.typing.clear();
        if self.connection.status != super::ConnectionStatus::Offline {
            fx.push(Effect::Send(ClientFrame::Join {
                room: self.rooms.room.to_string(),
            }));
        }
    }

    /// Switched while offline (the resume named the room): once welcomed
    /// there, its latest page is still to be asked for.
    pub(super) fn ask_for_joined_page(&mut self, fx: &mut Effects) {
        if self.timeline.joining && !self.timeline.loading {
            self.timeline.loading = true;
            fx.push(Effect::Send(ClientFrame::History { before: LATEST }));
        }
    }
}
