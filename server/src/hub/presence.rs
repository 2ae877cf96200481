//! Presence announcements, by one ticker: every presence interval it
//! announces the rooms whose roster changed since the last tick (each
//! with every change made meanwhile, in one diff) and the room list if it
//! changed. No task per change: a thousand joins in a second cost the same
//! five ticks as one.

use std::{
    sync::atomic::Ordering,
    sync::{Arc, Weak},
    time::Duration,
};

use app::protocol::ServerFrame;

use crate::{client_id::ClientId, lock, room::Room, ws::frame};

use super::{remote::occupancy, Hub};

impl Hub {
    /// The next tick announces `room`'s presence, with every other change
    /// made until then. The room list changes with it.
    pub(super) fn presence_changed(&self, room: &Arc<Room>) {
        self.directory_changed();
        if !room.presence_due.swap(true, Ordering::AcqRel) {
            lock(&self.presence_due).push(Arc::clone(room));
        }
    }

    /// Starts the ticker, every `interval` for as long as the hub exists.
    pub(super) fn start_announcing(hub: Weak<Hub>, interval: Duration) {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is at once: nothing has changed yet.
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(hub) = hub.upgrade() else {
                    return;
                };
                hub.announce_due();
            }
        });
    }

    /// Announces what changed since the last tick.
    fn announce_due(&self) {
        let due = std::mem::take(&mut *lock(&self.presence_due));
        for room in due {
            self.announce_presence(&room);
        }
        if self.directory_due.load(Ordering::Acquire) {
            self.announce_rooms();
        }
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

    /// `id` is no longer in `room`'s roster.
    pub(super) fn left_room(&self, room: &Arc<Room>, id: ClientId) {
        lock(&room.roster).leave(id);
        self.presence_changed(room);
    }
}
