//! The room shown, the list of rooms, and moving from one to another over
//! the same connection.

use super::{Effect, Effects, State};
use crate::protocol::{ClientFrame, RoomCount, RoomName};

/// A `history` request's `before` above every id: the newest page.
/// `Number.MAX_SAFE_INTEGER`, the largest id a browser's JSON reads exactly.
pub(super) const LATEST: u64 = (1 << 53) - 1;

#[derive(Debug, Clone, Default)]
pub struct Rooms {
    /// The room the page shows; frames about any other room are dropped.
    pub room: RoomName,
    /// The rooms and their online counts from the latest `rooms` frame.
    pub list: Vec<RoomCount>,
}

impl Rooms {
    /// The rooms to link to: those of the latest `rooms` frame with their
    /// counts, then `general` and the current room if they are not among
    /// them (with no count).
    pub fn links(&self) -> Vec<(RoomName, Option<u64>)> {
        let mut links: Vec<_> = self
            .list
            .iter()
            .filter_map(|room| Some((RoomName::parse(&room.name).ok()?, Some(room.online))))
            .collect();
        for room in [RoomName::general(), self.room.clone()] {
            if !links.iter().any(|(name, _)| *name == room) {
                links.push((room, None));
            }
        }
        links
    }
}

impl State {
    /// Shows `room` instead: an empty list until its latest page arrives,
    /// nobody online or typing until its welcome. Own messages still pending
    /// in the old room leave the view (the server has those it got). Online
    /// (or connecting: the frame follows `resume`) it asks to join; offline
    /// the next `resume` names the room.
    pub(super) fn switch_room(&mut self, room: RoomName, fx: &mut Effects) {
        self.rooms.room = room;
        self.timeline.clear_for_join();
        self.reading.follow();
        self.reading.divider = None;
        self.people.clear();
        self.typing.clear();
        if self.connection.status != super::ConnectionStatus::Offline {
            fx.push(Effect::Send(ClientFrame::Join {
                room: self.rooms.room.to_string(),
            }));
        }
    }

    /// Switched while offline (the resume named the room): once welcomed
    /// there, its latest page is still to be asked for.
    pub(super) fn ask_for_joined_page(&mut self, fx: &mut Effects) {
        if self.timeline.joining && !self.timeline.loading {
            self.timeline.loading = true;
            fx.push(Effect::Send(ClientFrame::History { before: LATEST }));
        }
    }
}

#[cfg(test)]
mod tests {
    use leptos::prelude::Owner;

    use crate::chat::{test_env::*, ConnectionStatus, State};
    use crate::protocol::{
        ClientFrame, HistoryPage, Presence, Resume, RoomCount, RoomList, RoomName, ServerFrame,
    };

    #[test]
    fn the_page_is_in_the_room_of_its_first_page_and_resumes_there() {
        Owner::new().with(|| {
            let ServerFrame::History(first) =
                in_room("rust", ServerFrame::History(page(3..=4, false)))
            else {
                unreachable!()
            };
            let (chat, env) = first_chat(first, Some("t"));
            assert_eq!(chat.room(), rust());
            chat.connecting();
            assert_eq!(
                env.take_sent(),
                [ClientFrame::Resume(Resume {
                    token: Some("t".into()),
                    after: Some(4),
                    room: Some("rust".into()),
                })]
            );
            // A page the server could not have rendered is general's.
            let odd = HistoryPage {
                room: "Not A Room".into(),
                ..empty_page()
            };
            assert_eq!(State::first(odd, None).rooms.room, RoomName::general());
        });
    }

    #[test]
    fn frames_about_another_room_are_dropped() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            let before = chat.untracked(State::clone);
            chat.receive(in_room("rust", message(3, "carol", "elsewhere")));
            chat.receive(in_room(
                "rust",
                ServerFrame::Presence(Presence {
                    joined: vec![person(3, "carol")],
                    ..presence(3)
                }),
            ));
            chat.receive(typing_in("rust", 3));
            chat.receive(in_room("rust", ServerFrame::History(page(1..=2, true))));
            chat.receive(in_room("rust", welcome(1, "Anonymous", vec![])));
            assert!(lines(&chat).is_empty());
            assert_eq!(names(&chat), ["Anonymous", "bob"]);
            assert_eq!(chat.people(|p| p.online), 2);
            assert_eq!(chat.typing(|t| t.label()), None);
            assert_eq!(chat.timeline(|t| t.last_id()), before.timeline.last_id());
            assert_eq!(env.take_sent(), []);
            // The same frames about this room are shown.
            chat.receive(message(3, "carol", "here"));
            chat.receive(typing_in("general", 2));
            assert_eq!(lines(&chat), ["carol: here"]);
            assert_eq!(
                chat.typing(|t| t.label()).as_deref(),
                Some("bob is typing…")
            );
        });
    }

    #[test]
    fn the_latest_rooms_frame_is_the_room_list() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            assert!(chat.rooms(|r| r.list.is_empty()));
            let count = |name: &str, online| RoomCount {
                name: name.into(),
                online,
            };
            for online in [3, 4] {
                chat.receive(ServerFrame::Rooms(RoomList {
                    rooms: vec![count("rust", online), count("general", 2)],
                }));
            }
            assert_eq!(
                chat.rooms(|r| r.list.clone()),
                [count("rust", 4), count("general", 2)]
            );
        });
    }

    #[test]
    fn switching_rooms_clears_the_page_and_joins_over_the_same_connection() {
        Owner::new().with(|| {
            let (chat, env) = first_chat(page(10..=11, false), Some("token-1"));
            chat.connecting();
            chat.receive(welcome(
                1,
                "Anonymous",
                vec![person(1, "Anonymous"), person(2, "bob")],
            ));
            chat.receive(typing_in("general", 2));
            chat.send("pending in general");
            chat.load_older();
            env.take_sent();

            chat.switch_room(rust());
            assert_eq!(chat.room(), rust());
            assert_eq!(env.take_sent(), [join("rust")]);
            assert!(lines(&chat).is_empty(), "pending ones of general too");
            assert!(people(&chat).is_empty());
            assert_eq!(chat.people(|p| p.online), 0);
            assert_eq!(chat.typing(|t| t.label()), None);
            chat.untracked(|state| {
                assert_eq!(state.timeline.last_id(), None);
                assert!(!state.timeline.loading && !state.timeline.beginning);
            });
            chat.load_older();
            assert_eq!(env.take_sent(), [], "nothing to page back from yet");
            assert!(!chat.switch_room(rust()));
            assert_eq!(env.take_sent(), [], "already there");

            // The old room's traffic until the server has moved us.
            chat.receive(message(2, "bob", "still general"));
            chat.receive(ServerFrame::History(page(8..=9, false)));
            chat.receive(ack("c-1", 12));
            assert!(lines(&chat).is_empty());

            // The new room's latest page replaces the list, then its welcome.
            chat.receive(in_room("rust", ServerFrame::History(page(20..=21, false))));
            assert_eq!(lines(&chat), ["bob: 20", "bob: 21"]);
            assert!(!chat.timeline(|t| t.beginning));
            chat.receive(in_room(
                "rust",
                welcome(
                    1,
                    "Anonymous",
                    vec![person(1, "Anonymous"), person(3, "carol")],
                ),
            ));
            assert_eq!(names(&chat), ["Anonymous", "carol"]);
            assert_eq!(env.take_sent(), [], "nothing pending to resend");
            assert_eq!(*env.stored.lock().unwrap(), None, "the same token");

            chat.receive(in_room(
                "rust",
                ServerFrame::Message(message_with_id(22, 3, "new")),
            ));
            chat.receive(in_room(
                "rust",
                ServerFrame::Message(message_with_id(21, 3, "old")),
            ));
            assert_eq!(lines(&chat), ["bob: 20", "bob: 21", "bob: new"]);
            chat.load_older();
            assert_eq!(env.take_sent(), [ClientFrame::History { before: 20 }]);
            chat.receive(in_room("rust", ServerFrame::History(page(18..=19, true))));
            assert_eq!(
                lines(&chat)[..2],
                ["bob: 18", "bob: 19"],
                "older ones prepended again"
            );
            assert!(chat.timeline(|t| t.beginning));

            // A reconnect stays in the room.
            chat.disconnected(false);
            chat.connecting();
            assert_eq!(
                env.take_sent(),
                [ClientFrame::Resume(Resume {
                    token: Some("token-1".into()),
                    after: Some(22),
                    room: Some("rust".into()),
                })]
            );
        });
    }

    #[test]
    fn an_empty_room_starts_at_its_beginning_and_sends_whatever_comes_later() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            chat.switch_room(rust());
            chat.receive(in_room("rust", ServerFrame::History(empty_page())));
            assert!(chat.timeline(|t| t.beginning));
            chat.disconnected(false);
            env.take_sent();
            chat.connecting();
            assert_eq!(
                env.take_sent(),
                [ClientFrame::Resume(Resume {
                    token: Some("token-1".into()),
                    after: Some(0),
                    room: Some("rust".into()),
                })]
            );
        });
    }

    #[test]
    fn what_is_said_in_the_new_room_before_its_page_arrives_stays_below_it() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            chat.switch_room(rust());
            chat.send("hello rust");
            chat.send("second");
            assert_eq!(
                env.take_sent(),
                [
                    join("rust"),
                    message_frame("hello rust", "c-1"),
                    message_frame("second", "c-2")
                ]
            );
            chat.receive(ack("c-1", 30));
            // The page was read after the first was stored: it is in it.
            let mut latest = page(29..=30, false);
            latest.messages[1] = message_with_id(30, 1, "hello rust");
            chat.receive(in_room("rust", ServerFrame::History(latest)));
            chat.receive(in_room(
                "rust",
                welcome(1, "Anonymous", vec![person(1, "Anonymous")]),
            ));
            assert_eq!(
                lines(&chat),
                [
                    "bob: 29",
                    "Anonymous: hello rust [sent]",
                    "Anonymous: second [pending]"
                ]
            );
            assert_eq!(env.take_sent(), [], "sent on this connection already");
            // Acked after the page came: the page's copy goes with the ack.
            chat.switch_room(RoomName::general());
            chat.switch_room(rust());
            assert_eq!(env.take_sent(), [join("general"), join("rust")]);
            chat.send("third");
            let mut latest = page(32..=32, false);
            latest.messages[0] = message_with_id(32, 1, "third");
            chat.receive(in_room("rust", ServerFrame::History(latest)));
            chat.receive(ack("c-3", 32));
            assert_eq!(lines(&chat), ["Anonymous: third [sent]"]);
        });
    }

    #[test]
    fn a_room_switched_to_while_offline_is_resumed_and_its_latest_page_asked_for() {
        Owner::new().with(|| {
            let (chat, env) = online_chat();
            chat.disconnected(false);
            env.take_sent();
            chat.switch_room(rust());
            assert_eq!(env.take_sent(), [], "nothing to send it on");
            chat.connecting();
            assert_eq!(
                env.take_sent(),
                [ClientFrame::Resume(Resume {
                    token: Some("token-1".into()),
                    after: None,
                    room: Some("rust".into()),
                })]
            );
            chat.receive(in_room(
                "rust",
                welcome(1, "Anonymous", vec![person(1, "Anonymous")]),
            ));
            assert_eq!(
                env.take_sent(),
                [ClientFrame::History {
                    before: super::LATEST
                }]
            );
            chat.receive(in_room(
                "rust",
                ServerFrame::Message(message_with_id(41, 2, "live")),
            ));
            chat.receive(in_room("rust", ServerFrame::History(page(40..=41, true))));
            assert_eq!(lines(&chat), ["bob: 40", "bob: 41"]);
            assert!(chat.timeline(|t| t.beginning));
        });
    }

    #[test]
    fn a_room_switched_to_while_connecting_is_joined_after_the_resume() {
        Owner::new().with(|| {
            let (chat, env) = first_chat(page(1..=2, true), Some("token-1"));
            chat.connecting();
            chat.switch_room(rust());
            assert_eq!(
                env.take_sent(),
                [resume(Some("token-1"), Some(2)), join("rust")]
            );
            // The resume's answer is about general: dropped, still connecting.
            chat.receive(ServerFrame::Message(message_with_id(3, 2, "3")));
            chat.receive(welcome(1, "Anonymous", vec![person(1, "Anonymous")]));
            assert_eq!(chat.status(), ConnectionStatus::Connecting);
            chat.receive(in_room("rust", ServerFrame::History(page(5..=6, false))));
            chat.receive(in_room(
                "rust",
                welcome(1, "Anonymous", vec![person(1, "Anonymous")]),
            ));
            assert!(chat.is_online());
            assert_eq!(lines(&chat), ["bob: 5", "bob: 6"]);
            assert_eq!(env.take_sent(), []);
        });
    }

    #[test]
    fn a_nickname_taken_in_the_new_room_falls_back_to_what_the_welcome_says() {
        Owner::new().with(|| {
            let (chat, _) = online_chat();
            chat.set_nickname("bob2");
            chat.receive(renamed(1, "Anonymous", "bob2", 2));
            chat.switch_room(rust());
            chat.receive(in_room("rust", ServerFrame::History(empty_page())));
            chat.receive(in_room(
                "rust",
                welcome(1, "Anonymous", vec![person(1, "Anonymous")]),
            ));
            assert_eq!(chat.nickname().as_str(), "Anonymous");
        });
    }
}
