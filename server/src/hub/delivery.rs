//! Delivery: messages go to the group commit, and come back stored, in id
//! order, to be acked to their sender and relayed to their room.
//!
//! The committer hands back each batch on its deliverer's thread, which may
//! block, and the relays' sockets are written right there (see [`crate::flush`] for why);
//! messages from the broker go through the flusher pool.

use std::{collections::BTreeMap, sync::Arc};

use app::protocol::{Ack, ChatMessage, ClientMessageId, MessageText, Nickname, ServerFrame};

use crate::{
    client_id::ClientId,
    commit::{Outcome, Pending},
    lock,
    room::Outgoing,
    store::{self, NewMessage, StoredMessage},
    ws::frame,
};

use super::{refuse, seats::HubSeat, unavailable, Hub};

pub(super) fn chat_message(message: &StoredMessage) -> ChatMessage {
    ChatMessage {
        room: message.room.clone(),
        id: message.id,
        sent_at: message.sent_at.clone(),
        from: message.from,
        nickname: message.nickname.clone(),
        text: message.text.clone(),
    }
}

impl Hub {
    pub(super) fn submit(
        &self,
        from: ClientId,
        seat: &HubSeat,
        nickname: &Nickname,
        text: MessageText,
        client_id: Option<ClientMessageId>,
    ) {
        let message = NewMessage {
            room: seat.room.name().to_string(),
            from: from.get(),
            nickname: nickname.to_string(),
            text: text.into_string(),
            client_key: client_id
                .as_ref()
                .map(|client_id| store::client_key(&seat.sender, client_id.as_str())),
        };
        let pending = Pending {
            from,
            client_id,
            reply: Some(Arc::clone(&seat.writer)),
        };
        if let Err(refused) = self.committer.submit(pending.clone(), message) {
            tracing::warn!(client = %from, "{refused}: message refused");
            self.answer(pending, Outcome::Failed);
        }
    }

    /// Delivers one commit's messages: relays the new ones to their rooms,
    /// in id order, writing the sockets on this thread, which may block (the
    /// committer's deliverer), then answers each sender.
    pub(super) fn deliver_batch(&self, batch: Vec<(Pending, Outcome)>) {
        let stored = batch.iter().filter_map(|(_, outcome)| match outcome {
            Outcome::Stored(message) => Some(message),
            Outcome::Duplicate(_) | Outcome::Failed => None,
        });
        if self.broker().is_local() {
            self.relay_here(stored);
        } else {
            // Relayed when they come back through the broker, in the order
            // of every process's messages.
            for message in stored {
                self.broker().publish(message.clone());
            }
        }
        for (pending, outcome) in batch {
            self.answer(pending, outcome);
        }
    }

    /// Tells the sender what the store made of its message.
    fn answer(&self, pending: Pending, outcome: Outcome) {
        let Pending {
            from: _,
            client_id,
            reply,
        } = pending;
        let stored = match outcome {
            Outcome::Stored(message) | Outcome::Duplicate(message) => message,
            Outcome::Failed => {
                let error =
                    unavailable("the message could not be stored; it was not sent, try again")
                        .about(client_id.as_ref().map(ClientMessageId::as_str));
                if let Some(reply) = reply {
                    refuse(&reply, &self.metrics, error);
                }
                return;
            }
        };
        if let (Some(client_id), Some(reply)) = (client_id, reply) {
            let ack = Ack {
                client_id: client_id.to_string(),
                id: stored.id,
                sent_at: stored.sent_at,
            };
            reply.send(&frame::text(&ServerFrame::Ack(ack).encode()));
            self.metrics.frames_out(1);
        }
    }

    /// Sends stored messages, in id order, to the members of their rooms
    /// here but their senders, writing the sockets on this thread.
    fn relay_here<'a>(&self, messages: impl Iterator<Item = &'a StoredMessage>) {
        let mut by_room: BTreeMap<&str, Vec<Outgoing>> = BTreeMap::new();
        let mut last: BTreeMap<&str, u64> = BTreeMap::new();
        for message in messages {
            by_room
                .entry(&message.room)
                .or_default()
                .push(outgoing(message));
            last.insert(&message.room, message.id);
        }
        for (name, frames) in by_room {
            let Some(room) = self.room(name) else {
                // Nobody here is in that room.
                continue;
            };
            let mut relayed = lock(&room.relayed);
            room.broadcast_here(&self.flush, &self.metrics, &frames);
            relayed.last = last[name];
            drop(relayed);
            for _ in &frames {
                self.metrics.message_relayed();
            }
        }
    }

    /// Sends a stored message to the members of its room here, but its
    /// sender, through the flusher pool. Messages must come in id order.
    pub(super) fn relay(&self, message: &StoredMessage) {
        let Some(room) = self.room(&message.room) else {
            // Nobody here is in that room.
            return;
        };
        let mut relayed = lock(&room.relayed);
        let (_, writes) = room.broadcast(&self.metrics, &outgoing(message));
        self.flush.submit(writes);
        relayed.last = message.id;
        drop(relayed);
        self.metrics.message_relayed();
    }
}

/// A stored message as its room's members get it. Clients that read it from
/// the store while catching up do not get it again.
fn outgoing(message: &StoredMessage) -> Outgoing {
    Outgoing {
        frame: frame::text(&ServerFrame::Message(chat_message(message)).encode()),
        from: Some(ClientId::from(message.from)),
        message: Some(message.id),
    }
}
