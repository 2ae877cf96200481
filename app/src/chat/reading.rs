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
