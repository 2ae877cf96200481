//! Seats: who a connection is (the person behind its resume token), where
//! that person is, and what happens when the connection goes: a person who
//! can resume stays away for the grace period, nickname reserved.

use std::{sync::Arc, time::Duration};

use crate::{
    client_id::ClientId,
    identity::{Release, ResumeToken, Seat},
    lock,
    room::Room,
    writer::ClientWriter,
};

use super::{registry::RoomHold, Hub};

/// Where a person is, as the identities keep it: their room (held open
/// while they are in it or away from it: forgetting them lets go), and the
/// connection that holds them. Taking the person over closes that
/// connection, whether it is a member of the room yet or still catching up.
#[derive(Debug)]
pub(super) struct Whereabouts {
    pub(super) room: RoomHold,
    pub(super) writer: Arc<ClientWriter>,
}

/// A hub's hold on one connection's client (see [`crate::session::Chat::Seat`]).
#[derive(Debug)]
pub struct HubSeat {
    pub(super) token: ResumeToken,
    /// Who sent a message, to tell their `client_id`s from everyone
    /// else's (see [`store::client_key`]).
    pub(super) sender: String,
    pub(super) seat: Seat,
    /// Whether the client could come back with its token.
    pub(super) resumable: bool,
    pub(super) room: Arc<Room>,
    pub(super) writer: Arc<ClientWriter>,
}

/// Most people kept away (dropped, waiting for them to resume) at once.
pub(super) const AWAY_LIMIT: usize = 10_000;

impl Hub {
    /// Keeps a dropped client's person in its room for the grace period,
    /// then lets them go unless they came back.
    pub(super) fn await_return(&self, id: ClientId, token: ResumeToken, seat: Seat) {
        let (Some(hub), Ok(runtime)) = (self.me.upgrade(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        runtime.spawn(async move {
            tokio::time::sleep(hub.resume_grace).await;
            let forgotten = lock(&hub.identities).forget(&token, seat);
            if let Some(Whereabouts { room, .. }) = forgotten {
                hub.left_room(room.room(), id);
            }
        });
    }

    pub(super) fn release(&self, id: ClientId, seat: &HubSeat) {
        let away = {
            let mut identities = lock(&self.identities);
            // Letting a person go drops their hold on the room.
            let release = if self.resume_grace > Duration::ZERO && seat.resumable {
                identities.release(&seat.token, seat.seat)
            } else if identities.forget(&seat.token, seat.seat).is_some() {
                Release::Forgotten
            } else {
                Release::NotHeld
            };
            match release {
                Release::Away => true,
                Release::Forgotten => false,
                // A newer connection holds this person now: it is theirs.
                // This connection may still be a member (it was admitted
                // just before being taken over): only it goes.
                Release::NotHeld => {
                    seat.room.remove_member(id, &seat.writer);
                    return;
                }
            }
        };
        seat.room.remove_member(id, &seat.writer);
        if away {
            self.await_return(id, seat.token.clone(), seat.seat);
        } else {
            self.left_room(&seat.room, id);
        }
    }
}
