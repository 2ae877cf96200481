//! Own messages: shown at once as pending, sent under a `client_id` of
//! their own, then sent (acknowledged), or failed (refused, or no ack in
//! time) and retried under the same id, so the server stores each once
//! however often it went out.

use std::time::Duration;

use super::{Effect, Effects, Line, State};
use crate::protocol::{Ack, ClientFrame, OutgoingMessage};

/// An own message without an ack after this long is shown as failed.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Where an own message stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Sent `attempt` times, not acknowledged yet.
    Pending { attempt: u32 },
    /// Acknowledged: the server's id and time for it.
    Sent { id: u64, sent_at: String },
    /// Refused, or no ack in time, after `attempt` sends.
    Failed { attempt: u32 },
}

impl Delivery {
    /// Stable machine-readable form, used in `data-state`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Pending { .. } => "pending",
            Self::Sent { .. } => "sent",
            Self::Failed { .. } => "failed",
        }
    }
}

/// A message sent from this page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnMessage {
    pub client_id: String,
    pub nickname: String,
    pub text: String,
    pub delivery: Delivery,
}

impl State {
    pub(super) fn send(&mut self, text: String, client_id: String, fx: &mut Effects) {
        // The list follows an own message, wherever the reader was.
        self.reading.follow();
        self.push(Line::Mine(OwnMessage {
            client_id: client_id.clone(),
            nickname: self.identity.nickname.to_string(),
            text: text.clone(),
            delivery: Delivery::Pending { attempt: 1 },
        }));
        // The server clears the typing indicator when the message arrives.
        // Bookkeeping: nothing on screen changes.
        self.typing.value.sent_at = None;
        if self.notice.is_some() {
            *self.notice = None;
        }
        // Offline, it waits as pending and goes out after the next welcome.
        if self.is_online() {
            transmit(client_id, text, 1, fx);
        }
    }

    pub(super) fn retry(&mut self, client_id: &str, fx: &mut Effects) {
        if !self.is_online() {
            return;
        }
        let Some(own) = self.timeline.own(client_id) else {
            return;
        };
        let Delivery::Failed { attempt } = own.delivery else {
            return;
        };
        let text = own.text.clone();
        self.timeline.update_own(client_id, |own| {
            own.delivery = Delivery::Pending {
                attempt: attempt + 1,
            };
            true
        });
        transmit(client_id.to_owned(), text, attempt + 1, fx);
    }

    /// No ack came within [`ACK_TIMEOUT`] of sending `attempt`: failed,
    /// unless it was acknowledged or sent again meanwhile.
    pub fn ack_timed_out(&mut self, client_id: &str, attempt: u32) {
        if self.timeline.own(client_id).map(|own| &own.delivery)
            == Some(&Delivery::Pending { attempt })
        {
            self.timeline.update_own(client_id, |own| {
                own.delivery = Delivery::Failed { attempt };
                true
            });
        }
    }

    pub(super) fn acked(&mut self, ack: Ack) {
        self.timeline.seen(ack.id);
        // An own message sent before a drop may have come back in the
        // catch-up, as someone else's, before this ack.
        self.timeline.remove_theirs(ack.id);
        self.timeline.update_own(&ack.client_id, |own| {
            own.delivery = Delivery::Sent {
                id: ack.id,
                sent_at: ack.sent_at,
            };
            true
        });
    }

    /// The server refused the own message `client_id`; `false` if there is
    /// none (the error is about something else).
    pub(super) fn failed(&mut self, client_id: &str) -> bool {
        let Some(own) = self.timeline.own(client_id) else {
            return false;
        };
        if let Delivery::Pending { attempt } = own.delivery {
            self.timeline.update_own(client_id, |own| {
                own.delivery = Delivery::Failed { attempt };
                true
            });
        }
        true
    }

    /// After a reconnect, pending messages (typed offline, or unacked when
    /// the last connection dropped) go out again under their own ids, so
    /// none is stored twice, with a fresh ack timer each.
    pub(super) fn resend_pending(&mut self, fx: &mut Effects) {
        for client_id in self.timeline.pending() {
            let mut again = None;
            self.timeline.update_own(&client_id, |own| {
                let Delivery::Pending { attempt } = own.delivery else {
                    return false;
                };
                own.delivery = Delivery::Pending {
                    attempt: attempt + 1,
                };
                again = Some((own.text.clone(), attempt + 1));
                true
            });
            if let Some((text, attempt)) = again {
                transmit(client_id, text, attempt, fx);
            }
        }
    }
}

fn transmit(client_id: String, text: String, attempt: u32, fx: &mut Effects) {
    fx.push(Effect::Send(ClientFrame::Message(OutgoingMessage {
        text,
        client_id: Some(client_id.clone()),
    })));
    fx.push(Effect::AckTimer { client_id, attempt });
}
