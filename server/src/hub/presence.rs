//! Presence announcements: a change in a room's roster is announced one
//! interval later, together with every other change made meanwhile.

use super::*;

impl Hub {
    /// Announces `room`'s presence changes one interval from now, unless
    /// that is already planned: the announcement will carry this change
    /// too. The room list changes with it.
    pub(super) fn presence_changed(&self, room: &Arc<Room>) {
        self.directory_changed();
        if room.presence_due.swap(true, Ordering::AcqRel) {
            return;
        }
        let room = Arc::clone(room);
        self.after_interval(move |hub| hub.announce_presence(&room));
    }

    /// Runs `then` one presence interval from now, if the hub still exists.
    pub(super) fn after_interval(&self, then: impl FnOnce(&Hub) + Send + 'static) {
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

    /// `id` is no longer in `room`'s roster.
    pub(super) fn left_room(&self, room: &Arc<Room>, id: ClientId) {
        lock(&room.roster).leave(id);
        self.presence_changed(room);
    }
}
