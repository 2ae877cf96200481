//! The reader: at the bottom (the list follows new lines) or scrolled up
//! (new messages are counted, the first marked by a divider, and the top of
//! the list is not trimmed); and what screen readers are told.

use super::{Line, State, MAX_HELD_MESSAGES, MAX_VISIBLE_MESSAGES};
use crate::protocol::ChatMessage;

#[derive(Debug, Clone)]
pub struct Reading {
    /// The reader is at the newest line, so the list follows new ones.
    pub at_bottom: bool,
    /// Messages from others that came while the reader was scrolled up.
    pub unread: usize,
    /// The key of the first message that came unread, which a divider
    /// marks: kept once read, until messages come unread again.
    pub divider: Option<u64>,
    /// The newest message from someone else as it arrived (not from
    /// history), `nickname: text`, for screen readers to announce; it
    /// changes with every message, even one that repeats the last.
    pub announcement: String,
}

impl Default for Reading {
    fn default() -> Self {
        Self {
            at_bottom: true,
            unread: 0,
            divider: None,
            announcement: String::new(),
        }
    }
}

impl Reading {
    /// Back to the bottom, everything read (an own message, another room).
    pub(super) fn follow(&mut self) {
        (self.at_bottom, self.unread) = (true, 0);
    }

    /// The reader scrolled to the bottom or away from it; `false` if that
    /// changes nothing shown.
    pub(super) fn scrolled(&mut self, at_bottom: bool) -> bool {
        let read = at_bottom && self.unread > 0;
        let moved = self.at_bottom != at_bottom;
        self.at_bottom = at_bottom;
        if read {
            self.unread = 0;
        }
        read || moved
    }

    /// A message from someone else, `said` (`nickname: text`), arrived
    /// as line `key`.
    fn arrived(&mut self, said: String, key: u64) {
        // A live region speaks only when its text changes: the same words
        // again get a zero-width space, which is not read out.
        self.announcement = if self.announcement == said {
            said + "\u{200b}"
        } else {
            said
        };
        if !self.at_bottom {
            if self.unread == 0 {
                self.divider = Some(key);
            }
            self.unread += 1;
        }
    }
}

impl State {
    /// Appends a line, dropping the oldest beyond [`MAX_VISIBLE_MESSAGES`]
    /// at the bottom, where that cannot be seen, and only beyond
    /// [`MAX_HELD_MESSAGES`] while the reader is scrolled up.
    pub(super) fn push(&mut self, line: Line) -> u64 {
        let keep = if self.reading.at_bottom {
            MAX_VISIBLE_MESSAGES
        } else {
            MAX_HELD_MESSAGES
        };
        self.timeline.push(line, keep)
    }

    /// A message from someone else, live.
    pub(super) fn message(&mut self, message: ChatMessage) {
        // Ids only grow on one connection: a lower one was sent again
        // after a reconnect, and is shown already.
        if self.timeline.has(message.id) {
            return;
        }
        self.timeline.seen(message.id);
        self.said(message.from);
        let said = message.nickname.clone() + ": " + &message.text;
        let key = self.push(Line::Theirs(message));
        self.reading.arrived(said, key);
    }
}

#[cfg(test)]
mod tests {
    use leptos::prelude::Owner;

    use crate::chat::test_env::*;
    use crate::protocol::{HistoryPage, RoomName, ServerFrame};

    #[test]
    fn messages_that_come_while_scrolled_up_are_counted_and_the_first_marked() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            chat.receive(from_bob(1, "seen"));
            assert_eq!(chat.reading(|s| (s.unread, s.divider)), (0, None));
            chat.scrolled(false);
            chat.receive(from_bob(2, "unread 1"));
            chat.receive(from_bob(3, "unread 2"));
            let first = chat.rows()[1].key;
            assert_eq!(chat.reading(|s| (s.unread, s.divider)), (2, Some(first)));
            // At the bottom they are read; the divider stays where it was.
            chat.scrolled(true);
            assert_eq!(chat.reading(|s| (s.unread, s.divider)), (0, Some(first)));
            chat.receive(from_bob(4, "read at once"));
            assert_eq!(chat.reading(|s| (s.unread, s.divider)), (0, Some(first)));
            // Away again, the divider moves to the next unread message.
            chat.scrolled(false);
            chat.receive(from_bob(5, "unread 3"));
            let next = chat.rows()[4].key;
            assert_eq!(chat.reading(|s| (s.unread, s.divider)), (1, Some(next)));
        });
    }

    #[test]
    fn an_own_message_or_another_room_takes_the_reader_back_to_the_bottom() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            chat.scrolled(false);
            chat.receive(from_bob(1, "unread"));
            assert!(chat.send("mine"));
            assert_eq!(chat.reading(|s| (s.at_bottom, s.unread)), (true, 0));
            chat.scrolled(false);
            chat.receive(from_bob(2, "unread"));
            assert!(chat.switch_room(RoomName::parse("elsewhere").unwrap()));
            assert_eq!(
                chat.reading(|s| (s.at_bottom, s.unread, s.divider)),
                (true, 0, None)
            );
        });
    }

    #[test]
    fn only_messages_that_arrive_live_are_announced() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            chat.receive(ServerFrame::History(HistoryPage {
                room: "general".into(),
                messages: vec![bob_said(1, "from history")],
                beginning: true,
            }));
            assert_eq!(chat.reading(|s| s.announcement.clone()), "");
            chat.receive(from_bob(2, "live"));
            assert_eq!(chat.reading(|s| s.announcement.clone()), "bob: live");
            assert!(chat.send("mine"));
            assert_eq!(chat.reading(|s| s.announcement.clone()), "bob: live");
        });
    }

    #[test]
    fn the_same_message_twice_in_a_row_is_announced_twice() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            let mut heard = Vec::new();
            for id in 1..=3 {
                chat.receive(from_bob(id, "ok"));
                heard.push(chat.reading(|s| s.announcement.clone()));
            }
            assert_eq!(heard, ["bob: ok", "bob: ok\u{200b}", "bob: ok"]);
        });
    }
}
