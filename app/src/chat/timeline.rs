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
