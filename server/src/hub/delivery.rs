//! Delivery: messages go to the group commit, and come back stored, in id
//! order, to be acked to their sender and relayed to their room.
//!
//! The committer hands back each batch on a thread that may block, and the
//! relays' sockets are written right there (see [`crate::flush`] for why).

use std::sync::Arc;

use app::protocol::{Ack, ChatMessage, ClientMessageId, MessageText, Nickname, ServerFrame};

use crate::{
    client_id::ClientId,
    commit::{Outcome, Pending},
    flush::FlushJob,
    lock,
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
            self.deliver(pending, Outcome::Failed, &mut Vec::new());
        }
    }

    /// Delivers one commit's messages, in id order, then writes their
    /// relays on this thread, which may block (the committer's). Frames of
    /// the batch for one client go out in one write.
    pub(super) fn deliver_batch(&self, batch: Vec<(Pending, Outcome)>) {
        let mut writes = Vec::new();
        for (pending, outcome) in batch {
            self.deliver(pending, outcome, &mut writes);
        }
        for job in writes {
            self.flush.write_here(job);
        }
    }

    /// Tells the sender, and for a new message everyone else in its room,
    /// what the store made of it; the relay's sockets to write go to
    /// `writes`. Called in id order.
    fn deliver(&self, pending: Pending, outcome: Outcome, writes: &mut Vec<FlushJob>) {
        let Pending {
            from,
            client_id,
            reply,
        } = pending;
        let stored = match outcome {
            Outcome::Stored(message) => {
                if self.broker().is_local() {
                    writes.extend(self.relay(&message, Some(from)));
                } else {
                    // Relayed when it comes back through the broker, in
                    // the order of every process's messages.
                    self.broker().publish(message.clone());
                }
                message
            }
            Outcome::Duplicate(message) => message,
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

    /// Queues a stored message for the members of its room here, but its
    /// sender, and returns the sockets left to write (`None` if nobody here
    /// is in the room). Messages must come in id order.
    #[must_use = "the relay's sockets must be written"]
    pub(super) fn relay(
        &self,
        message: &StoredMessage,
        from: Option<ClientId>,
    ) -> Option<FlushJob> {
        let room = self.room(&message.room)?;
        let frame = frame::text(&ServerFrame::Message(chat_message(message)).encode());
        let mut relayed = lock(&room.relayed);
        // Clients that read this message from the store while catching up
        // do not get it again.
        let (_, writes) = room.broadcast(&self.metrics, from, Some(message.id), &frame);
        relayed.last = message.id;
        drop(relayed);
        self.metrics.message_relayed();
        Some(writes)
    }
}
