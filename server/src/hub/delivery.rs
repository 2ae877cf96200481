//! Delivery: messages go to the group commit, and come back stored, in id
//! order, to be acked to their sender and relayed to their room.

use std::sync::Arc;

use app::protocol::{Ack, ChatMessage, ClientMessageId, MessageText, Nickname, ServerFrame};

use crate::{
    client_id::ClientId,
    commit::{Outcome, Pending},
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
            self.deliver(pending, Outcome::Failed);
        }
    }

    /// Tells the sender, and for a new message everyone else in its room,
    /// what the store made of it. Called by the group commit, in id order.
    pub(super) fn deliver(&self, pending: Pending, outcome: Outcome) {
        let Pending {
            from,
            client_id,
            reply,
        } = pending;
        let stored = match outcome {
            Outcome::Stored(message) => {
                if self.broker().is_local() {
                    self.relay(&message, Some(from));
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

    /// Sends a stored message to the members of its room here, but its
    /// sender. Messages must come in id order.
    pub(super) fn relay(&self, message: &StoredMessage, from: Option<ClientId>) {
        let Some(room) = self.room(&message.room) else {
            // Nobody here is in that room.
            return;
        };
        let frame = frame::text(&ServerFrame::Message(chat_message(message)).encode());
        let mut relayed = lock(&room.relayed);
        // Clients that read this message from the store while catching up
        // do not get it again.
        room.broadcast(&self.flush, &self.metrics, from, Some(message.id), &frame);
        relayed.last = message.id;
        drop(relayed);
        self.metrics.message_relayed();
    }
}
