//! Admission: a connection joins a room (or moves to another) by catching
//! up from the store, then is admitted between two relays, so it gets every
//! message once and none twice.

use std::{sync::Arc, time::Duration};

use app::protocol::{
    ErrorCode, ErrorPayload, HistoryPage, Nickname, Resume, RoomList, RoomName, ServerFrame,
    Welcome,
};

use crate::{
    client_id::ClientId,
    identity::Claim,
    lock,
    room::Room,
    session::Joined,
    writer::{ClientWriter, Delivery},
    ws::frame,
};

use super::{
    delivery::chat_message, history::history_page, refuse, seats::HubSeat, seats::Whereabouts,
    too_many_rooms, unavailable, Hub,
};

/// Where a client that caught up from the store stands.
#[derive(Debug, Clone, Copy)]
pub(super) struct CaughtUp {
    /// The newest id it has: claimed, or read here.
    pub(super) has: u64,
    /// The newest id the catch-up sent it, if any.
    pub(super) sent: Option<u64>,
}

/// Why [`Hub::admit`] did not make a client a member.
pub(super) enum NotAdmitted {
    /// Messages newer than it has were relayed meanwhile: it has those to
    /// read first.
    Behind,
    /// Another connection took its person over meanwhile: it is closing.
    TakenOver,
}

/// Messages read from the store per query while a client catches up.
pub(super) const CATCH_UP_PAGE: u32 = 256;

/// How long a client catching up may leave its backlog unread before it
/// is given up on.
pub(super) const CATCH_UP_STALL: Duration = Duration::from_secs(30);

/// A claimed person whose connection has not been admitted yet.
pub(super) struct PendingSeat<'a> {
    pub(super) hub: &'a Hub,
    pub(super) id: ClientId,
    /// Taken when the client is admitted.
    pub(super) seat: Option<HubSeat>,
}

impl Drop for PendingSeat<'_> {
    fn drop(&mut self) {
        if let Some(seat) = self.seat.take() {
            self.hub.release(self.id, &seat);
        }
    }
}

impl Hub {
    pub(super) async fn join_room(
        &self,
        writer: Arc<ClientWriter>,
        resume: Option<Resume>,
    ) -> Option<Joined<HubSeat>> {
        let resumable = resume.is_some();
        let Resume { token, after, room } = resume.unwrap_or_default();
        let name = match room.as_deref().map(RoomName::parse) {
            None => RoomName::general(),
            Some(Ok(name)) => name,
            Some(Err(invalid)) => {
                refuse(&writer, &self.metrics, invalid.into());
                RoomName::general()
            }
        };
        // Asking for a room that cannot be opened lands in general.
        let (hold, after) = match self.registry.hold(&name) {
            Some(hold) => (hold, after),
            None => {
                refuse(&writer, &self.metrics, too_many_rooms());
                (self.registry.hold(&RoomName::general())?, None)
            }
        };
        let room = Arc::clone(hold.room());
        let here = Whereabouts {
            room: hold,
            writer: Arc::clone(&writer),
        };
        let (claim, previous) = {
            // Claiming the person and closing the connection that held them
            // are one critical section: no one sees the person held twice.
            let mut identities = lock(&self.identities);
            let (claim, previous) =
                identities.claim(token.as_deref(), writer.id(), writer.client(), here);
            if let Some(holder) = previous.as_ref().filter(|_| claim.displaced) {
                // Closed in whatever phase it is: a member, or still catching
                // up (then `admit` turns it away).
                holder.writer.displace();
                holder.room.room().remove_member(claim.id, &holder.writer);
            }
            (claim, previous)
        };
        writer.adopt(claim.id);
        // Dropping the previous whereabouts lets go of their room.
        if let Some(Whereabouts { room: previous, .. }) = previous {
            if !Arc::ptr_eq(previous.room(), &room) {
                self.left_room(previous.room(), claim.id);
            }
        }
        if resumable {
            self.metrics.resumed(claim.resumed);
        }
        // Until it is admitted, a client that goes away gives its person
        // back as if it had left.
        let mut pending = PendingSeat {
            hub: self,
            id: claim.id,
            seat: Some(HubSeat {
                token: claim.token.clone(),
                sender: claim.token.sender(),
                seat: claim.seat,
                resumable,
                room: Arc::clone(&room),
                writer: Arc::clone(&writer),
            }),
        };
        let restore = self.saved_nickname(&claim).await;
        let nickname = match after {
            Some(after) => {
                self.catch_up(&room, &claim, &writer, after, restore.as_ref())
                    .await?
            }
            None => self
                .admit(&room, &claim, &writer, None, restore.as_ref())
                .ok()?,
        };
        Some(Joined {
            id: claim.id,
            nickname,
            seat: pending.seat.take()?,
        })
    }

    pub(super) async fn switch_room(
        &self,
        id: ClientId,
        seat: &HubSeat,
        nickname: &Nickname,
        to: RoomName,
    ) -> Result<Joined<HubSeat>, ErrorPayload> {
        if &to == seat.room.name() {
            return Err(ErrorPayload::new(
                ErrorCode::InvalidRoom,
                "you are in this room already",
            ));
        }
        let hold = self.registry.hold(&to).ok_or_else(too_many_rooms)?;
        let room = Arc::clone(hold.room());
        let there = Whereabouts {
            room: hold,
            writer: Arc::clone(&seat.writer),
        };
        let moved = lock(&self.identities).move_to(&seat.token, seat.seat, there);
        let Some(Whereabouts { room: previous, .. }) = moved else {
            // A newer connection is this person now; this one is closing
            // (and the hold on `to` went with the whereabouts refused).
            return Err(ErrorPayload::new(
                ErrorCode::OutOfOrder,
                "this connection was taken over",
            ));
        };
        {
            // No relay of the old room reaches the client after this.
            let _relays = lock(&previous.room().relayed);
            previous.room().remove(id);
        }
        self.left_room(previous.room(), id);
        drop(previous);
        let claim = Claim {
            id,
            token: seat.token.clone(),
            seat: seat.seat,
            resumed: false,
            presented: false,
            displaced: false,
        };
        let mut pending = PendingSeat {
            hub: self,
            id,
            seat: Some(HubSeat {
                token: seat.token.clone(),
                sender: seat.sender.clone(),
                seat: seat.seat,
                resumable: seat.resumable,
                room: Arc::clone(&room),
                writer: Arc::clone(&seat.writer),
            }),
        };
        let page = match history_page(&self.store, &to, None).await {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(%error, "could not read a room's latest messages");
                let unavailable = unavailable("the room's messages cannot be read right now");
                refuse(&seat.writer, &self.metrics, unavailable);
                HistoryPage {
                    room: to.to_string(),
                    ..HistoryPage::default()
                }
            }
        };
        let newest = page.messages.last().map_or(0, |message| message.id);
        seat.writer
            .send(&frame::text(&ServerFrame::History(page).encode()));
        self.metrics.frames_out(1);
        let nickname = self
            .catch_up(&room, &claim, &seat.writer, newest, Some(nickname))
            .await
            .ok_or_else(|| ErrorPayload::new(ErrorCode::OutOfOrder, "the connection is gone"))?;
        Ok(Joined {
            id,
            nickname,
            seat: pending.seat.take().expect("taken only here, once admitted"),
        })
    }

    /// Sends `writer`'s client every stored message of `room` after
    /// `after`, in order, then admits it; returns its nickname, or `None`
    /// if the client stopped reading or went away.
    ///
    /// The store holds every message before the hub relays it, so reading
    /// the store until it has nothing newer than the room's last relay
    /// leaves no gap; messages read here but not yet relayed are skipped for
    /// this client when they are (see [`Relayed`](crate::room::Relayed)).
    pub(super) async fn catch_up(
        &self,
        room: &Arc<Room>,
        claim: &Claim,
        writer: &Arc<ClientWriter>,
        mut after: u64,
        restore: Option<&Nickname>,
    ) -> Option<Nickname> {
        // The newest message sent here: only those can come twice.
        let mut sent = None;
        loop {
            let page = match self
                .store
                .after(room.name().as_str(), after, CATCH_UP_PAGE)
                .await
            {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, "could not read the messages a client missed");
                    let error = unavailable(
                        "the messages you missed cannot be read right now; reconnect to try again",
                    );
                    refuse(writer, &self.metrics, error);
                    return self.admit(room, claim, writer, None, restore).ok();
                }
            };
            for message in &page {
                let relayed = ServerFrame::Message(chat_message(message));
                if matches!(
                    writer.send(&frame::text(&relayed.encode())),
                    Delivery::Dropped | Delivery::Evicted
                ) {
                    return None;
                }
                after = message.id;
                sent = Some(message.id);
                // Half the budget at most waits: the rest of the client's
                // budget stays free for what comes once it is admitted.
                if writer.queued_bytes() > writer.budget() / 2 {
                    // Until the client has read it, or the connection has
                    // to end (taken over, evicted, broken).
                    let drained = async {
                        tokio::select! {
                            drained = writer.drain() => drained.is_ok(),
                            _ = writer.attention() => false,
                        }
                    };
                    if !matches!(
                        tokio::time::timeout(CATCH_UP_STALL, drained).await,
                        Ok(true)
                    ) {
                        return None;
                    }
                }
            }
            self.metrics.frames_out(page.len());
            self.metrics.caught_up(page.len());
            if page.len() < CATCH_UP_PAGE as usize {
                let caught_up = CaughtUp { has: after, sent };
                match self.admit(room, claim, writer, Some(caught_up), restore) {
                    Ok(nickname) => return Some(nickname),
                    Err(NotAdmitted::Behind) => {}
                    Err(NotAdmitted::TakenOver) => return None,
                }
            }
        }
    }

    /// Welcomes the client to `room` and makes it a member, unless messages
    /// newer than it has (if it caught up) were relayed already, or another
    /// connection took its person over. Someone new to the room joins its
    /// roster here, under `restore` if that is free; someone resuming is in
    /// it already.
    pub(super) fn admit(
        &self,
        room: &Arc<Room>,
        claim: &Claim,
        writer: &Arc<ClientWriter>,
        caught_up: Option<CaughtUp>,
        restore: Option<&Nickname>,
    ) -> Result<Nickname, NotAdmitted> {
        let relayed = lock(&room.relayed);
        if let Some(CaughtUp { has, sent }) = caught_up {
            if relayed.last > has {
                return Err(NotAdmitted::Behind);
            }
            // Only what this catch-up sent is skipped later: an id the
            // client merely claimed (from a store since wiped, say) must
            // not keep new messages from it, nor stay listed here.
            if let Some(sent) = sent.filter(|&sent| sent > relayed.last) {
                writer.read_through(sent);
            }
        }
        let mut joined_now = false;
        let nickname = {
            let mut roster = lock(&room.roster);
            if roster.nickname(claim.id).is_none() {
                roster.join(claim.id);
                joined_now = true;
                if let Some(restore) = restore.filter(|restore| !restore.is_default()) {
                    // Taken here: the client is Anonymous in this room.
                    let _ = roster.rename(claim.id, restore.clone());
                }
            }
            let nickname = roster.nickname(claim.id).cloned().unwrap_or_default();
            let (mut online, mut people) = (roster.len() as u64, roster.listing());
            {
                let cluster = lock(&self.cluster);
                online += cluster.online(room.name());
                if !people.is_empty() {
                    people.extend(cluster.people(room.name()));
                }
            }
            let welcome = ServerFrame::Welcome(Welcome {
                room: room.name().to_string(),
                id: claim.id.get(),
                nickname: nickname.to_string(),
                online,
                people,
                token: claim.token.as_str().to_owned(),
            });
            // Written before the client is a member: nothing live precedes it.
            writer.send(&frame::text(&welcome.encode()));
            nickname
        };
        // Held until the client is a member, as announcements hold it while
        // they are sent: the room list is either in this copy or sent to it
        // as a member, never lost in between.
        let directory = lock(&self.directory);
        let rooms = if directory.is_empty() {
            // Nothing announced yet.
            self.room_list().rooms
        } else {
            directory.clone()
        };
        let rooms = ServerFrame::Rooms(RoomList { rooms });
        writer.send(&frame::text(&rooms.encode()));
        self.metrics.frames_out(2);
        {
            // Checked and inserted under the identities' lock, where a
            // takeover happens: either this connection is a member before
            // it (and the takeover removes it), or it never becomes one.
            let identities = lock(&self.identities);
            if !identities.holds(&claim.token, claim.seat) {
                return Err(NotAdmitted::TakenOver);
            }
            room.insert(claim.id, Arc::clone(writer));
        }
        drop(directory);
        drop(relayed);
        if joined_now {
            self.presence_changed(room);
        }
        Ok(nickname)
    }
}
