//! Who is online in the room, and who is typing: two parts, so that a
//! typing frame does not re-run the list of people (nor the reverse).

use std::time::Duration;

use super::{Effect, Effects, Line, State};
use crate::protocol::{ClientFrame, Person, Presence};

/// At most one "typing" frame per this interval (the server relays no more).
pub const TYPING_THROTTLE: Duration = Duration::from_secs(2);
/// Someone who sent no typing frame for this long has stopped typing.
pub const TYPING_EXPIRES: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Default)]
pub struct People {
    /// Who is online as far as this page knows; fewer than `online` in a
    /// room too big to list.
    pub people: Vec<Person>,
    pub online: u64,
}

impl People {
    pub(super) fn set(&mut self, online: u64, people: Vec<Person>) {
        self.online = online;
        self.people = people;
    }

    pub(super) fn clear(&mut self) {
        self.set(0, Vec::new());
    }

    /// How many are online but not listed.
    pub fn unlisted(&self) -> u64 {
        self.online.saturating_sub(self.people.len() as u64)
    }
}

/// Someone else who is typing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Typist {
    pub id: u64,
    pub nickname: String,
    /// Tells the expiry timer of an older typing frame from the latest one.
    seq: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Typing {
    /// Others typing, in the order they started.
    pub typists: Vec<Typist>,
    /// When this page's last `typing: true` went out, while the draft is
    /// not empty.
    pub(super) sent_at: Option<f64>,
    seq: u64,
}

impl Typing {
    pub(super) fn clear(&mut self) {
        self.typists.clear();
        self.sent_at = None;
    }

    /// What the typing indicator says.
    pub fn label(&self) -> Option<String> {
        typing_label(&self.typists)
    }

    fn stopped(&mut self, id: u64) {
        self.typists.retain(|typist| typist.id != id);
    }
}

/// What the typing indicator says about `typists`.
pub fn typing_label(typists: &[Typist]) -> Option<String> {
    match typists {
        [] => None,
        [one] => Some(one.nickname.clone() + " is typing…"),
        [one, two] => Some(one.nickname.clone() + " and " + &two.nickname + " are typing…"),
        _ => Some("several people are typing…".to_owned()),
    }
}

impl State {
    /// Applies who came, went or changed name. Idempotent: a join of someone
    /// listed, a leave of someone unlisted or a rename to the name shown
    /// changes nothing and says nothing.
    pub(super) fn apply_presence(&mut self, presence: Presence) {
        let me = self.connection.me;
        let mut lines = Vec::new();
        let mut own_names = Vec::new();
        let people = &mut self.people.people;
        for person in presence.joined {
            if Some(person.id) == me {
                own_names.push(person.nickname.clone());
            }
            match people.iter_mut().find(|p| p.id == person.id) {
                // Joined and renamed within one interval: one join, new name.
                Some(listed) => listed.nickname = person.nickname,
                None => {
                    if Some(person.id) != me {
                        lines.push(Line::Joined(person.nickname.clone()));
                    }
                    people.push(person);
                }
            }
        }
        for rename in presence.renamed {
            if Some(rename.id) == me {
                own_names.push(rename.nickname.clone());
            }
            if let Some(listed) = people.iter_mut().find(|p| p.id == rename.id) {
                if listed.nickname != rename.nickname {
                    listed.nickname = rename.nickname.clone();
                    lines.push(Line::Renamed {
                        previous: rename.previous,
                        nickname: rename.nickname.clone(),
                    });
                }
            }
            if self.typing.typists.iter().any(|t| t.id == rename.id) {
                for typist in self.typing.typists.iter_mut().filter(|t| t.id == rename.id) {
                    typist.nickname = rename.nickname.clone();
                }
            }
        }
        for person in presence.left {
            if let Some(at) = people.iter().position(|p| p.id == person.id) {
                lines.push(Line::Left(people.remove(at).nickname));
            }
            if self.typing.typists.iter().any(|t| t.id == person.id) {
                self.typing.stopped(person.id);
            }
        }
        if let Some(everyone) = presence.people {
            *people = everyone;
            own_names.extend(
                people
                    .iter()
                    .filter(|p| Some(p.id) == me)
                    .map(|p| p.nickname.clone()),
            );
        }
        self.people.online = presence.online;
        for name in own_names {
            self.identity.confirm(&name);
        }
        for line in lines {
            self.push(line);
        }
    }

    pub(super) fn someone_typing(&mut self, typing: crate::protocol::Typing, fx: &mut Effects) {
        let crate::protocol::Typing {
            id,
            nickname,
            active,
            ..
        } = typing;
        if Some(id) == self.connection.me {
            return;
        }
        if !active {
            self.typing.stopped(id);
            return;
        }
        let typing = &mut *self.typing;
        typing.seq += 1;
        let seq = typing.seq;
        match typing.typists.iter_mut().find(|t| t.id == id) {
            Some(typist) => {
                typist.nickname = nickname;
                typist.seq = seq;
            }
            None => typing.typists.push(Typist { id, nickname, seq }),
        }
        fx.push(Effect::TypingTimer { id, seq });
    }

    /// Someone's message arrived: they are no longer typing it.
    pub(super) fn said(&mut self, id: u64) {
        if self.typing.typists.iter().any(|t| t.id == id) {
            self.typing.stopped(id);
        }
    }

    /// The draft is now `draft`: says "typing" at most once per
    /// [`TYPING_THROTTLE`], and "stopped" when the draft is emptied. Only
    /// bookkeeping: nothing on screen changes.
    pub(super) fn draft(&mut self, draft: &str, now: f64, fx: &mut Effects) {
        if !self.is_online() {
            return;
        }
        let throttle = TYPING_THROTTLE.as_millis() as f64;
        let typing = &mut self.typing.value;
        if draft.trim().is_empty() {
            if typing.sent_at.take().is_some() {
                fx.push(Effect::Send(ClientFrame::Typing(false)));
            }
        } else if typing.sent_at.is_none_or(|at| now - at >= throttle) {
            typing.sent_at = Some(now);
            fx.push(Effect::Send(ClientFrame::Typing(true)));
        }
    }

    /// The typist's latest frame was `seq`, [`TYPING_EXPIRES`] ago: they
    /// stopped, unless a later frame came.
    pub fn typing_expired(&mut self, id: u64, seq: u64) {
        if self
            .typing
            .typists
            .iter()
            .any(|t| t.id == id && t.seq == seq)
        {
            self.typing.stopped(id);
        }
    }
}

#[cfg(test)]
mod tests {
    use leptos::prelude::Owner;

    use crate::chat::{test_env::*, TYPING_EXPIRES};
    use crate::protocol::{ClientFrame, Presence, Rename, ServerFrame, Typing};

    #[test]
    fn presence_is_applied_idempotently_with_system_lines() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            let frame = ServerFrame::Presence(Presence {
                joined: vec![person(3, "carol"), person(2, "bob")],
                left: vec![person(9, "ghost")],
                renamed: vec![Rename {
                    id: 2,
                    previous: "bob".into(),
                    nickname: "bob".into(),
                }],
                ..presence(3)
            });
            chat.receive(frame.clone());
            chat.receive(frame);
            assert_eq!(names(&chat), ["Anonymous", "bob", "carol"]);
            assert_eq!(chat.people(|p| p.online), 3);
            assert_eq!(lines(&chat), ["carol joined"]);

            chat.receive(ServerFrame::Presence(Presence {
                renamed: vec![Rename {
                    id: 3,
                    previous: "carol".into(),
                    nickname: "dave".into(),
                }],
                left: vec![person(2, "bob")],
                ..presence(2)
            }));
            assert_eq!(names(&chat), ["Anonymous", "dave"]);
            assert_eq!(
                lines(&chat),
                ["carol joined", "carol is now dave", "bob left"]
            );
        });
    }

    #[test]
    fn a_full_list_replaces_what_the_page_knew() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            chat.receive(ServerFrame::Presence(Presence {
                people: Some(vec![person(1, "Anonymous"), person(5, "eve")]),
                ..presence(40)
            }));
            assert_eq!(names(&chat), ["Anonymous", "eve"]);
            assert_eq!(chat.people(|p| p.online), 40);
        });
    }

    #[test]
    fn typing_is_throttled_and_stops_when_the_draft_is_emptied() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            chat.draft_changed("h");
            chat.draft_changed("he");
            env.advance(1_999.0);
            chat.draft_changed("hel");
            assert_eq!(env.take_sent(), [ClientFrame::Typing(true)]);
            env.advance(1.0);
            chat.draft_changed("hell");
            assert_eq!(env.take_sent(), [ClientFrame::Typing(true)]);
            chat.draft_changed("");
            assert_eq!(env.take_sent(), [ClientFrame::Typing(false)]);
            chat.draft_changed("");
            assert_eq!(env.take_sent(), []);

            // Sending ends typing without a "stopped" frame, and the next
            // keystroke says "typing" again at once.
            chat.draft_changed("hi");
            chat.send("hi");
            chat.draft_changed("");
            chat.draft_changed("a");
            assert_eq!(
                env.take_sent(),
                [
                    ClientFrame::Typing(true),
                    message_frame("hi", "c-1"),
                    ClientFrame::Typing(true)
                ]
            );
        });
    }

    #[test]
    fn others_typing_is_shown_until_they_stop_send_leave_or_go_quiet() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            let typing = |id, nickname: &str, active| {
                ServerFrame::Typing(Typing {
                    room: "general".into(),
                    id,
                    nickname: nickname.into(),
                    active,
                })
            };
            let label = || chat.typing(|t| t.label());
            chat.receive(typing(2, "bob", true));
            assert_eq!(label().as_deref(), Some("bob is typing…"));
            chat.receive(typing(3, "carol", true));
            assert_eq!(label().as_deref(), Some("bob and carol are typing…"));
            chat.receive(typing(4, "dave", true));
            assert_eq!(label().as_deref(), Some("several people are typing…"));

            chat.receive(typing(4, "dave", false));
            chat.receive(message(3, "carol", "done"));
            assert_eq!(label().as_deref(), Some("bob is typing…"));
            chat.receive(ServerFrame::Presence(Presence {
                left: vec![person(2, "bob")],
                ..presence(1)
            }));
            assert_eq!(label(), None);

            chat.receive(typing(5, "eve", true));
            env.fire(TYPING_EXPIRES);
            assert_eq!(label(), None, "quiet for 5 s");

            // A newer frame outlives the timer of an older one.
            chat.receive(typing(5, "eve", true));
            let old = env.timers.lock().unwrap().pop().unwrap();
            chat.receive(typing(5, "eve", true));
            (old.1)();
            assert_eq!(label().as_deref(), Some("eve is typing…"));
        });
    }
}
