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

#[cfg(test)]
mod tests {
    use leptos::prelude::Owner;

    use crate::chat::{test_env::*, Delivery, Line, ACK_TIMEOUT};
    use crate::protocol::{ErrorCode, ServerFrame};

    #[test]
    fn own_messages_go_from_pending_to_sent_on_their_ack() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            assert!(chat.set_nickname("alice"));
            env.take_sent();
            assert!(chat.send(" hello "));
            assert_eq!(env.take_sent(), [message_frame("hello", "c-1")]);
            assert_eq!(lines(&chat), ["alice: hello [pending]"]);

            chat.receive(ack("c-1", 42));
            let Line::Mine(own) = &chat.rows()[0].line else {
                panic!("own message expected");
            };
            assert_eq!(
                own.delivery,
                Delivery::Sent {
                    id: 42,
                    sent_at: "2026-11-25T14:00:00.000Z".into()
                }
            );
            // The ack timer, when it fires later, leaves a sent message alone.
            env.fire(ACK_TIMEOUT);
            assert_eq!(lines(&chat), ["alice: hello [sent]"]);
        });
    }

    #[test]
    fn blank_and_invalid_messages_are_not_sent() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            assert!(!chat.send("   "));
            assert_eq!(chat.notice(), None);
            assert!(!chat.send(&"a".repeat(2_001)));
            assert!(chat.notice().is_some());
            assert_eq!(env.take_sent(), []);
            assert!(lines(&chat).is_empty());
        });
    }

    #[test]
    fn a_refused_or_unanswered_message_fails_and_can_be_retried_under_its_id() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            chat.send("one");
            chat.send("two");
            chat.receive(error(ErrorCode::RateLimited, Some("c-1")));
            assert_eq!(
                lines(&chat),
                ["Anonymous: one [failed]", "Anonymous: two [pending]"]
            );
            assert_eq!(chat.notice().as_deref(), Some("rate_limited"));

            env.fire(ACK_TIMEOUT);
            assert_eq!(
                lines(&chat),
                ["Anonymous: one [failed]", "Anonymous: two [failed]"]
            );

            env.take_sent();
            chat.retry("c-2");
            assert_eq!(env.take_sent(), [message_frame("two", "c-2")]);
            assert_eq!(lines(&chat)[1], "Anonymous: two [pending]");
            chat.receive(ack("c-2", 7));
            assert_eq!(lines(&chat)[1], "Anonymous: two [sent]");

            chat.retry("c-2");
            assert_eq!(env.take_sent(), [], "only failed messages are retried");
        });
    }

    #[test]
    fn an_old_timer_does_not_fail_a_retried_message() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            chat.send("one");
            chat.receive(error(ErrorCode::RateLimited, Some("c-1")));
            chat.retry("c-1");
            // Both the first attempt's timer and the retry's are due now;
            // only the retry's counts.
            let timers = std::mem::take(&mut *env.timers.lock().unwrap());
            let mut timers = timers.into_iter();
            (timers.next().unwrap().1)();
            assert_eq!(lines(&chat), ["Anonymous: one [pending]"]);
            (timers.next().unwrap().1)();
            assert_eq!(lines(&chat), ["Anonymous: one [failed]"]);
        });
    }

    #[test]
    fn a_message_typed_offline_waits_as_pending_and_goes_out_after_the_welcome() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            chat.disconnected(false);
            env.take_sent();
            assert!(chat.send("typed offline"), "the draft is taken");
            assert_eq!(env.take_sent(), [], "nothing goes to a dead socket");
            assert_eq!(lines(&chat), ["Anonymous: typed offline [pending]"]);
            // No ack timer ran out while offline.
            env.fire(ACK_TIMEOUT);
            assert_eq!(lines(&chat), ["Anonymous: typed offline [pending]"]);

            chat.connecting();
            assert_eq!(env.take_sent(), [resume(Some("token-1"), None)]);
            chat.receive(welcome(9, "Anonymous", vec![person(9, "Anonymous")]));
            assert_eq!(env.take_sent(), [message_frame("typed offline", "c-1")]);
            chat.receive(ack("c-1", 1));
            assert_eq!(lines(&chat), ["Anonymous: typed offline [sent]"]);
        });
    }

    #[test]
    fn an_ack_removes_the_own_message_that_came_back_in_the_catch_up() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            chat.send("sent before the drop");
            chat.disconnected(false);
            chat.connecting();
            env.take_sent();
            // Stored before the drop: it comes back as someone else's.
            chat.receive(ServerFrame::Message(message_with_id(
                4,
                1,
                "sent before the drop",
            )));
            chat.receive(welcome(1, "Anonymous", vec![person(1, "Anonymous")]));
            assert_eq!(
                env.take_sent(),
                [message_frame("sent before the drop", "c-1")]
            );
            chat.receive(ack("c-1", 4));
            assert_eq!(lines(&chat), ["Anonymous: sent before the drop [sent]"]);
        });
    }
}
