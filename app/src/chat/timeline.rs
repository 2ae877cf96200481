//! The lines shown: messages (others' and own), joins, leaves and renames,
//! in order; how many are kept; paging older ones in; the latest page of a
//! room just joined.
//!
//! Each line is a [`Row`] with a key for the list and a revision that moves
//! whenever what the line shows changes (an own message acknowledged, a
//! line that now starts a day): the list re-renders a row only when its
//! `(key, rev)` is new. Rows are shared (`Arc`), so handing the list to the
//! view clones no text.

use std::sync::Arc;

use super::{delivery::Delivery, OwnMessage};
use crate::{
    display::{Clock, Facts, Moment, Place, Places},
    protocol::{ChatMessage, HistoryPage},
};

/// How many lines the page keeps as new ones arrive (it trims back to this
/// once a tenth more have come); older ones can be paged back in with
/// `history`.
pub const MAX_VISIBLE_MESSAGES: usize = 500;
/// How many it keeps while the reader is scrolled up: trimming the top then
/// would move the lines they are reading.
pub const MAX_HELD_MESSAGES: usize = 2_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A message from someone else.
    Theirs(ChatMessage),
    Mine(OwnMessage),
    Joined(String),
    Left(String),
    Renamed {
        previous: String,
        nickname: String,
    },
}

/// One line in the message list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Local key for the list; not a server id.
    pub key: u64,
    /// Moves whenever what the row shows changes.
    pub rev: u32,
    pub line: Line,
    /// When it was sent, on the page's clock.
    pub at: Option<Moment>,
    /// How it sits among the lines before it.
    pub place: Place,
}

impl Row {
    /// When the server stored it; `None` for joins, leaves and renames, and
    /// for own messages not acknowledged yet.
    pub fn sent_at(&self) -> Option<&str> {
        match &self.line {
            Line::Theirs(message) => Some(&message.sent_at),
            Line::Mine(OwnMessage {
                delivery: Delivery::Sent { sent_at, .. },
                ..
            }) => Some(sent_at),
            _ => None,
        }
    }

    /// The server's id of the message, once it has one.
    pub fn id(&self) -> Option<u64> {
        match &self.line {
            Line::Theirs(message) => Some(message.id),
            Line::Mine(OwnMessage {
                delivery: Delivery::Sent { id, .. },
                ..
            }) => Some(*id),
            _ => None,
        }
    }

    /// Who sent it, `(own, nickname)`; `None` for joins, leaves and renames.
    pub fn sender(&self) -> Option<(bool, &str)> {
        match &self.line {
            Line::Theirs(message) => Some((false, &message.nickname)),
            Line::Mine(own) => Some((true, &own.nickname)),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Timeline {
    rows: Vec<Arc<Row>>,
    next_key: u64,
    /// How times read: UTC on the server and until the page is hydrated,
    /// then the reader's own.
    clock: Clock,
    /// Nothing older than the first line is stored: no more to page in.
    pub beginning: bool,
    /// A `history` request is in flight.
    pub loading: bool,
    /// The room was switched to and its latest page has not arrived yet:
    /// the next `history` of the room replaces the list.
    pub(super) joining: bool,
    /// The greatest message id seen; a `message` at or below it is one the
    /// page already has.
    last_id: Option<u64>,
}

impl Default for Timeline {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            next_key: 0,
            clock: Clock::default(),
            beginning: true,
            loading: false,
            joining: false,
            last_id: None,
        }
    }
}

impl Timeline {
    pub fn rows(&self) -> &[Arc<Row>] {
        &self.rows
    }

    /// The first page the server rendered: everything stored then, so even
    /// with no message in it, whatever comes later must be shown.
    pub(super) fn start_with(&mut self, page: HistoryPage) {
        self.beginning = page.beginning;
        self.last_id = Some(0);
        for message in page.messages {
            self.seen(message.id);
            self.push(Line::Theirs(message), MAX_VISIBLE_MESSAGES);
        }
    }

    pub fn last_id(&self) -> Option<u64> {
        self.last_id
    }

    /// Whether the message `id` is one the page has already.
    pub(super) fn has(&self, id: u64) -> bool {
        Some(id) <= self.last_id
    }

    pub(super) fn seen(&mut self, id: u64) {
        self.last_id = self.last_id.max(Some(id));
    }

    /// The server's id of the oldest message shown, or just past the newest
    /// one seen if none is.
    pub(super) fn oldest_id(&self) -> Option<u64> {
        self.rows
            .iter()
            .find_map(|row| row.id())
            .or(self.last_id.map(|id| id + 1))
    }

    /// Appends a line and returns its key. Lines beyond `keep` (paged-in
    /// ones too) are dropped from the top, in batches: the list may grow a
    /// tenth past `keep`, then goes back to `keep`. Removing the top line
    /// costs the browser a repaint of the shifted list (about 18 ms at 500
    /// lines, measured by `compare --only page`), so it is paid once per
    /// batch rather than with every message.
    pub(super) fn push(&mut self, line: Line, keep: usize) -> u64 {
        if self.rows.len() >= keep + keep / 10 {
            self.rows.drain(..=self.rows.len() - keep);
            self.beginning = false;
        }
        let row = self.row(line);
        let key = row.key;
        self.rows.push(Arc::new(row));
        self.place();
        key
    }

    fn row(&mut self, line: Line) -> Row {
        self.next_key += 1;
        let mut row = Row {
            key: self.next_key,
            rev: 0,
            line,
            at: None,
            place: Place::default(),
        };
        row.at = row.sent_at().and_then(|at| self.clock.moment(at));
        row
    }

    /// Puts an older page above the lines shown, without trimming any.
    pub(super) fn prepend(&mut self, page: HistoryPage) {
        self.loading = false;
        self.beginning = page.beginning;
        let oldest = self.oldest_id().unwrap_or(u64::MAX);
        let mut rows: Vec<_> = page
            .messages
            .into_iter()
            .filter(|message| message.id < oldest)
            .map(|message| Arc::new(self.row(Line::Theirs(message))))
            .collect();
        rows.append(&mut self.rows);
        self.rows = rows;
        self.place();
    }

    /// The room's latest page, which a switch asked for, as the new list:
    /// lines that came after the switch (messages newer than the page, own
    /// messages typed since) stay below it.
    pub(super) fn replace(&mut self, page: HistoryPage) {
        self.joining = false;
        self.loading = false;
        self.beginning = page.beginning;
        let newest = page.messages.last().map_or(0, |message| message.id);
        self.seen(newest);
        let later = std::mem::take(&mut self.rows);
        let own = |id| {
            later
                .iter()
                .any(|row| matches!(row.line, Line::Mine(_)) && row.id() == Some(id))
        };
        for message in page.messages {
            if !own(message.id) {
                self.push(Line::Theirs(message), MAX_VISIBLE_MESSAGES);
            }
        }
        for row in later {
            if !matches!(&row.line, Line::Theirs(message) if message.id <= newest) {
                self.push(Arc::unwrap_or_clone(row).line, MAX_VISIBLE_MESSAGES);
            }
        }
    }

    /// Nothing shown, nothing known: a room just switched to, whose latest
    /// page is yet to come.
    pub(super) fn clear_for_join(&mut self) {
        self.rows.clear();
        self.last_id = None;
        self.beginning = false;
        self.loading = false;
        self.joining = true;
    }

    /// Drops a message of someone else's with this id.
    pub(super) fn remove_theirs(&mut self, id: u64) {
        let before = self.rows.len();
        self.rows
            .retain(|row| !matches!(&row.line, Line::Theirs(message) if message.id == id));
        if self.rows.len() != before {
            self.place();
        }
    }

    /// The newest own message with `client_id`.
    pub(super) fn own(&self, client_id: &str) -> Option<&OwnMessage> {
        self.rows.iter().rev().find_map(|row| match &row.line {
            Line::Mine(own) if own.client_id == client_id => Some(own),
            _ => None,
        })
    }

    /// Changes the own message with `client_id` with `change`, which says
    /// whether it changed anything; `true` if it did.
    pub(super) fn update_own(
        &mut self,
        client_id: &str,
        change: impl FnOnce(&mut OwnMessage) -> bool,
    ) -> bool {
        let Some(row) = self
            .rows
            .iter_mut()
            .rev()
            .find(|row| matches!(&row.line, Line::Mine(own) if own.client_id == client_id))
        else {
            return false;
        };
        let row = Arc::make_mut(row);
        let Line::Mine(own) = &mut row.line else {
            return false;
        };
        if !change(own) {
            return false;
        }
        row.rev += 1;
        row.at = row.sent_at().and_then(|at| self.clock.moment(at));
        self.place();
        true
    }

    /// The `client_id`s of own messages still waiting for an ack.
    pub(super) fn pending(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter_map(|row| match &row.line {
                Line::Mine(own) if matches!(own.delivery, Delivery::Pending { .. }) => {
                    Some(own.client_id.clone())
                }
                _ => None,
            })
            .collect()
    }

    /// Reads times on `clock` from now on, the lines shown included.
    pub(super) fn set_clock(&mut self, clock: Clock) {
        if self.clock == clock {
            return;
        }
        self.clock = clock;
        for row in &mut self.rows {
            let at = row.sent_at().and_then(|at| clock.moment(at));
            if at != row.at {
                let row = Arc::make_mut(row);
                row.at = at;
                row.rev += 1;
            }
        }
        self.place();
    }

    /// Works out every line's place again (a pass of comparisons, no
    /// formatting); a row whose place changed gets a new revision.
    fn place(&mut self) {
        let places: Vec<Place> = {
            let mut places = Places::default();
            self.rows
                .iter()
                .map(|row| {
                    places.next(Facts {
                        sender: row.sender(),
                        at: row.at.as_ref(),
                    })
                })
                .collect()
        };
        for (row, place) in self.rows.iter_mut().zip(places) {
            if row.place != place {
                let row = Arc::make_mut(row);
                row.place = place;
                row.rev += 1;
            }
        }
    }
}

impl super::State {
    /// Asks for the page of messages before the oldest shown, once at a time.
    pub(super) fn load_older(&mut self, fx: &mut super::Effects) {
        let timeline = &self.timeline;
        if timeline.loading || timeline.beginning || timeline.joining || !self.is_online() {
            return;
        }
        if let Some(before) = timeline.oldest_id() {
            self.timeline.loading = true;
            fx.push(super::Effect::Send(crate::protocol::ClientFrame::History {
                before,
            }));
        }
    }

    /// A page of history: the latest of a room just joined, or an older one.
    pub(super) fn history(&mut self, page: HistoryPage) {
        if self.timeline.joining {
            self.timeline.replace(page);
        } else {
            self.timeline.prepend(page);
        }
    }
}

#[cfg(test)]
mod tests {
    use leptos::prelude::Owner;

    use crate::chat::{
        test_env::*, ConnectionStatus, State, MAX_HELD_MESSAGES, MAX_VISIBLE_MESSAGES,
    };
    use crate::protocol::{ClientFrame, ErrorCode, ServerFrame};

    #[test]
    fn relayed_messages_and_errors_are_shown() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            chat.receive(message(2, "bob", "hi"));
            assert_eq!(lines(&chat), ["bob: hi"]);
            chat.receive(error(ErrorCode::InvalidMessage, None));
            assert_eq!(chat.notice().as_deref(), Some("invalid_message"));
        });
    }

    #[test]
    fn the_list_keeps_only_the_newest_lines() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            let most = MAX_VISIBLE_MESSAGES + MAX_VISIBLE_MESSAGES / 10;
            for i in 0..most {
                chat.send(&i.to_string());
            }
            assert_eq!(chat.rows().len(), most, "trimmed in batches");
            chat.send("one more");
            let entries = chat.rows();
            assert_eq!(entries.len(), MAX_VISIBLE_MESSAGES);
            assert_eq!(
                lines(&chat)[0],
                format!("Anonymous: {} [pending]", most - MAX_VISIBLE_MESSAGES + 1)
            );
            let keys: Vec<u64> = entries.iter().map(|e| e.key).collect();
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys stay unique");
        });
    }

    #[test]
    fn a_page_starts_from_the_first_page_the_server_rendered() {
        Owner::new().with(|| {
            let (chat, env) = first_chat(page(3..=5, false), Some("t"));
            assert_eq!(lines(&chat), ["bob: 3", "bob: 4", "bob: 5"]);
            assert!(!chat.timeline(|t| t.beginning));
            chat.connecting();
            assert_eq!(env.take_sent(), [resume(Some("t"), Some(5))]);

            let empty = State::first(empty_page(), None);
            assert!(empty.timeline.beginning && empty.timeline.rows().is_empty());
            // Nothing stored yet when it was rendered: anything stored since
            // is missed, and asked for.
            assert_eq!(empty.resume(), resume(None, Some(0)));
        });
    }

    #[test]
    fn messages_at_or_below_the_last_id_are_duplicates_and_dropped() {
        Owner::new().with(|| {
            let (chat, _) = first_chat(page(1..=2, true), None);
            // The catch-up before the welcome, while still connecting.
            chat.connecting();
            chat.receive(ServerFrame::Message(message_with_id(2, 2, "2")));
            chat.receive(ServerFrame::Message(message_with_id(3, 2, "3")));
            chat.receive(ServerFrame::Message(message_with_id(3, 2, "3")));
            assert_eq!(chat.status(), ConnectionStatus::Connecting);
            assert_eq!(lines(&chat), ["bob: 1", "bob: 2", "bob: 3"]);
        });
    }

    #[test]
    fn older_pages_are_prepended_once_at_a_time_until_the_beginning() {
        Owner::new().with(|| {
            let (chat, env) = first_chat(page(10..=11, false), None);
            chat.load_older();
            assert_eq!(env.take_sent(), [], "not while offline");
            chat.receive(welcome(1, "Anonymous", vec![person(1, "Anonymous")]));
            env.take_sent();
            chat.load_older();
            chat.load_older();
            assert_eq!(
                env.take_sent(),
                [ClientFrame::History { before: 10 }],
                "one request in flight"
            );
            assert!(chat.timeline(|t| t.loading));
            // Anything not older than the oldest shown is dropped.
            chat.receive(ServerFrame::History(page(8..=10, false)));
            assert!(!chat.timeline(|t| t.loading));
            assert_eq!(lines(&chat), ["bob: 8", "bob: 9", "bob: 10", "bob: 11"]);
            let keys: Vec<u64> = chat.rows().iter().map(|e| e.key).collect();
            assert!(keys
                .iter()
                .all(|k| keys.iter().filter(|o| *o == k).count() == 1));

            chat.load_older();
            assert_eq!(env.take_sent(), [ClientFrame::History { before: 8 }]);
            chat.receive(ServerFrame::History(page(1..=7, true)));
            assert!(chat.timeline(|t| t.beginning));
            assert_eq!(lines(&chat).len(), 11);
            chat.load_older();
            assert_eq!(env.take_sent(), [], "nothing older is stored");
        });
    }

    #[test]
    fn a_store_failure_while_loading_lets_the_user_try_again() {
        Owner::new().with(|| {
            let (chat, env) = first_chat(page(10..=10, false), None);
            chat.receive(welcome(1, "Anonymous", vec![person(1, "Anonymous")]));
            chat.load_older();
            chat.receive(error(ErrorCode::Unavailable, None));
            assert!(!chat.timeline(|t| t.loading));
            assert_eq!(chat.notice().as_deref(), Some("unavailable"));
            env.take_sent();
            chat.load_older();
            assert_eq!(env.take_sent(), [ClientFrame::History { before: 10 }]);
            // A drop loses the answer too.
            chat.disconnected(false);
            assert!(!chat.timeline(|t| t.loading));
        });
    }

    #[test]
    fn scrolled_up_the_list_trims_nothing_until_the_reader_is_back_at_the_bottom() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            let mut id = 0;
            let mut bob_says = |n: usize| {
                for _ in 0..n {
                    id += 1;
                    chat.receive(from_bob(id, &id.to_string()));
                }
            };
            bob_says(MAX_VISIBLE_MESSAGES);
            chat.scrolled(false);
            bob_says(10);
            assert_eq!(chat.rows().len(), MAX_VISIBLE_MESSAGES + 10);
            assert_eq!(lines(&chat)[0], "bob: 1", "the lines read stay put");
            bob_says(MAX_HELD_MESSAGES);
            let held = chat.rows().len();
            assert!(
                (MAX_HELD_MESSAGES..=MAX_HELD_MESSAGES + MAX_HELD_MESSAGES / 10).contains(&held),
                "held, not without end: {held}"
            );
            chat.scrolled(true);
            bob_says(1);
            assert_eq!(chat.rows().len(), MAX_VISIBLE_MESSAGES);
        });
    }

    #[test]
    fn paged_in_lines_are_kept_until_new_ones_are_appended() {
        Owner::new().with(|| {
            let first = MAX_VISIBLE_MESSAGES as u64;
            let (chat, _) = first_chat(page(101..=100 + first, false), None);
            chat.receive(welcome(1, "Anonymous", vec![person(1, "Anonymous")]));
            chat.load_older();
            chat.receive(ServerFrame::History(page(1..=100, true)));
            assert_eq!(chat.rows().len(), MAX_VISIBLE_MESSAGES + 100);
            chat.receive(ServerFrame::Message(message_with_id(first + 101, 2, "new")));
            assert_eq!(chat.rows().len(), MAX_VISIBLE_MESSAGES);
            assert_eq!(lines(&chat)[0], "bob: 102");
            assert!(
                !chat.timeline(|t| t.beginning),
                "the trimmed ones can be paged in again"
            );
        });
    }
}
