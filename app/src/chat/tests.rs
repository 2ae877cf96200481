//! The chat's rules, through [`Chat`] as the page uses them.

use std::sync::Arc;

use leptos::prelude::Owner;

use super::{
    test_env::*, Chat, ConnectionStatus, Delivery, Env, Line, State, ACK_TIMEOUT,
    MAX_HELD_MESSAGES, MAX_VISIBLE_MESSAGES, TYPING_EXPIRES,
};
use crate::protocol::{
    Ack, ChatMessage, ClientFrame, ErrorCode, HistoryPage, Presence, Rename, Resume, RoomCount,
    RoomList, RoomName, ServerFrame, Typing, Welcome,
};

#[test]
fn the_page_is_online_once_welcomed() {
    Owner::new().with(|| {
        let env = Arc::new(TestEnv::default());
        let chat = Chat::new(Some(env.clone() as Arc<dyn Env>));
        assert_eq!(chat.status(), ConnectionStatus::Connecting);
        assert!(chat.send("early"), "taken, to wait for the welcome");
        assert_eq!(env.take_sent(), [], "nothing is sent before the welcome");
        chat.receive(welcome(1, "Anonymous", vec![person(1, "Anonymous")]));
        assert_eq!(chat.status(), ConnectionStatus::Online);
        assert_eq!(chat.me(), Some(1));
        assert_eq!(chat.people(|p| p.online), 1);
        assert_eq!(
            env.take_sent(),
            [message_frame("early", "c-1")],
            "no nickname frame for Anonymous; the waiting message"
        );
        assert_eq!(
            lines(&chat),
            ["Anonymous: early [pending]"],
            "no line for joining oneself"
        );
    });
}

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

/// bob's message number `id`.
fn bob_said(id: u64, text: &str) -> ChatMessage {
    match message(2, "bob", text) {
        ServerFrame::Message(message) => ChatMessage { id, ..message },
        _ => unreachable!(),
    }
}

fn from_bob(id: u64, text: &str) -> ServerFrame {
    ServerFrame::Message(bob_said(id, text))
}

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
fn a_nickname_shows_at_once_and_is_confirmed_by_presence() {
    Owner::new().with(|| {
        let (chat, env) = online_chat();
        chat.set_nickname("  alice ");
        assert_eq!(chat.nickname().as_str(), "alice");
        assert_eq!(env.take_sent(), [ClientFrame::Nickname("alice".into())]);
        chat.receive(renamed(1, "Anonymous", "alice", 2));
        assert_eq!(chat.nickname().as_str(), "alice");
        assert_eq!(names(&chat), ["alice", "bob"]);

        // Taken: back to the confirmed one, with the reason.
        chat.set_nickname("Bob");
        assert_eq!(chat.nickname().as_str(), "Bob");
        chat.receive(error(ErrorCode::NicknameTaken, None));
        assert_eq!(chat.nickname().as_str(), "alice");
        assert_eq!(chat.notice().as_deref(), Some("nickname_taken"));
    });
}

#[test]
fn a_refusal_does_not_undo_a_later_choice_still_in_flight() {
    Owner::new().with(|| {
        let (chat, _) = online_chat();
        chat.set_nickname("bob");
        chat.set_nickname("carol");
        chat.receive(error(ErrorCode::NicknameTaken, None));
        assert_eq!(chat.nickname().as_str(), "carol");
        chat.receive(renamed(1, "Anonymous", "carol", 2));
        assert_eq!(chat.nickname().as_str(), "carol");
        // Settled: the next refusal reverts at once.
        chat.set_nickname("bob");
        chat.receive(error(ErrorCode::NicknameTaken, None));
        assert_eq!(chat.nickname().as_str(), "carol");
    });
}

#[test]
fn an_invalid_nickname_is_refused_before_sending() {
    Owner::new().with(|| {
        let (chat, env) = online_chat();
        assert!(!chat.set_nickname("   "));
        assert_eq!(chat.notice().as_deref(), Some("nickname must not be blank"));
        assert_eq!(chat.nickname().as_str(), "Anonymous");
        assert_eq!(env.take_sent(), []);
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
fn a_reconnect_sends_the_chosen_nickname_after_the_welcome_and_pending_messages() {
    Owner::new().with(|| {
        let (chat, env) = online_chat();
        chat.set_nickname("alice");
        chat.send("are you there?");
        chat.disconnected(false);
        assert_eq!(chat.status(), ConnectionStatus::Offline);
        assert!(people(&chat).is_empty());
        env.take_sent();

        chat.connecting();
        assert_eq!(env.take_sent(), [resume(Some("token-1"), None)]);
        chat.receive(welcome(8, "Anonymous", vec![person(8, "Anonymous")]));
        assert_eq!(
            env.take_sent(),
            [
                ClientFrame::Nickname("alice".into()),
                message_frame("are you there?", "c-1"),
            ]
        );
        assert_eq!(chat.nickname().as_str(), "alice");
        // The server may fold the rename into this connection's join.
        chat.receive(ServerFrame::Presence(Presence {
            joined: vec![person(8, "alice")],
            ..presence(1)
        }));
        assert_eq!(names(&chat), ["alice"]);
        assert!(lines(&chat).iter().all(|l| !l.contains("joined")));
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

#[test]
fn the_server_rendering_has_no_connection_and_sends_nothing() {
    Owner::new().with(|| {
        let chat = Chat::new(None);
        assert!(!chat.send("hello"));
        chat.draft_changed("hello");
        assert!(chat.set_nickname("alice"));
        assert!(lines(&chat).is_empty());
    });
}

/// The server's ack of `client_id` as message `id`.
fn ack(client_id: &str, id: u64) -> ServerFrame {
    ServerFrame::Ack(Ack {
        client_id: client_id.into(),
        id,
        sent_at: "2026-11-25T14:00:00.000Z".into(),
    })
}

fn message_with_id(id: u64, from: u64, text: &str) -> ChatMessage {
    ChatMessage {
        room: "general".into(),
        id,
        sent_at: "2026-11-25T14:00:00Z".into(),
        from,
        nickname: "bob".into(),
        text: text.into(),
    }
}

fn page(ids: std::ops::RangeInclusive<u64>, beginning: bool) -> HistoryPage {
    HistoryPage {
        room: "general".into(),
        messages: ids
            .map(|id| message_with_id(id, 2, &id.to_string()))
            .collect(),
        beginning,
    }
}

/// What an empty store renders: nothing, from the beginning.
fn empty_page() -> HistoryPage {
    HistoryPage {
        room: "general".into(),
        messages: Vec::new(),
        beginning: true,
    }
}

fn resume(token: Option<&str>, after: Option<u64>) -> ClientFrame {
    ClientFrame::Resume(Resume {
        token: token.map(str::to_owned),
        after,
        room: Some("general".into()),
    })
}

/// A chat seeded like a loaded page, with `token` from sessionStorage.
fn first_chat(page: HistoryPage, token: Option<&str>) -> (Chat, Arc<TestEnv>) {
    let env = Arc::new(TestEnv::default());
    let state = State::first(page, token.map(str::to_owned));
    let chat = Chat::from_state(Some(env.clone() as Arc<dyn Env>), state);
    (chat, env)
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
fn each_connection_starts_with_a_resume_frame_of_the_token_and_last_id() {
    Owner::new().with(|| {
        let (chat, env) = first_chat(empty_page(), None);
        chat.connecting();
        assert_eq!(env.take_sent(), [resume(None, Some(0))]);
        chat.receive(welcome(1, "Anonymous", vec![person(1, "Anonymous")]));
        assert_eq!(*env.stored.lock().unwrap(), Some("token-1".to_owned()));
        chat.receive(ServerFrame::Message(message_with_id(7, 2, "hi")));
        chat.send("mine");
        chat.receive(ack("c-1", 8));
        chat.disconnected(false);
        env.take_sent();
        chat.connecting();
        assert_eq!(env.take_sent(), [resume(Some("token-1"), Some(8))]);
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

#[test]
fn a_reload_adopts_the_nickname_the_token_had() {
    Owner::new().with(|| {
        let (chat, env) = first_chat(empty_page(), Some("token-4"));
        chat.connecting();
        chat.receive(welcome(4, "alice", vec![person(4, "alice")]));
        assert_eq!(chat.nickname().as_str(), "alice");
        assert_eq!(
            env.take_sent(),
            [resume(Some("token-4"), Some(0))],
            "no rename back to Anonymous"
        );
        assert_eq!(*env.stored.lock().unwrap(), None, "the same token, kept");
    });
}

#[test]
fn after_a_restart_that_kept_the_token_but_not_the_person_the_nickname_is_asked_again() {
    Owner::new().with(|| {
        let (chat, env) = first_chat(empty_page(), Some("token-4"));
        chat.connecting();
        chat.receive(welcome(4, "alice", vec![person(4, "alice")]));
        chat.disconnected(false);
        chat.connecting();
        env.take_sent();
        // A new process: another id, and no nickname kept for the token.
        chat.receive(ServerFrame::Welcome(Welcome {
            room: "general".into(),
            id: 1,
            nickname: "Anonymous".into(),
            online: 1,
            people: vec![person(1, "Anonymous")],
            token: "token-4".into(),
        }));
        assert_eq!(chat.nickname().as_str(), "alice");
        assert_eq!(env.take_sent(), [ClientFrame::Nickname("alice".into())]);
    });
}

#[test]
fn a_rename_asked_for_before_the_welcome_wins_over_the_resumed_nickname() {
    Owner::new().with(|| {
        let (chat, env) = first_chat(empty_page(), Some("token-4"));
        chat.connecting();
        chat.set_nickname("carol");
        chat.receive(welcome(4, "alice", vec![person(4, "alice")]));
        assert_eq!(chat.nickname().as_str(), "carol");
        assert_eq!(
            env.take_sent(),
            [
                resume(Some("token-4"), Some(0)),
                ClientFrame::Nickname("carol".into())
            ]
        );
    });
}

#[test]
fn an_unknown_token_gets_a_new_identity_told_the_chosen_nickname() {
    Owner::new().with(|| {
        let (chat, env) = online_chat();
        chat.set_nickname("alice");
        chat.receive(renamed(1, "Anonymous", "alice", 2));
        // The server restarted and forgot the token.
        chat.disconnected(false);
        chat.connecting();
        env.take_sent();
        chat.receive(welcome(9, "Anonymous", vec![person(9, "Anonymous")]));
        assert_eq!(env.take_sent(), [ClientFrame::Nickname("alice".into())]);
        assert_eq!(chat.nickname().as_str(), "alice");
        assert_eq!(*env.stored.lock().unwrap(), Some("token-9".to_owned()));
    });
}

#[test]
fn a_page_taken_over_by_another_tab_forgets_its_token() {
    Owner::new().with(|| {
        let (chat, env) = online_chat();
        assert_eq!(*env.stored.lock().unwrap(), Some("token-1".to_owned()));
        chat.disconnected(true);
        assert_eq!(*env.stored.lock().unwrap(), None);
        env.take_sent();
        chat.connecting();
        assert_eq!(env.take_sent(), [resume(None, None)]);
    });
}

// ---- rooms ----

fn rust() -> RoomName {
    RoomName::parse("rust").unwrap()
}

/// `frame` as if it were about `room`.
fn in_room(room: &str, mut frame: ServerFrame) -> ServerFrame {
    match &mut frame {
        ServerFrame::Welcome(frame) => frame.room = room.into(),
        ServerFrame::Message(frame) => frame.room = room.into(),
        ServerFrame::History(frame) => {
            frame.room = room.into();
            for message in &mut frame.messages {
                message.room = room.into();
            }
        }
        ServerFrame::Presence(frame) => frame.room = room.into(),
        ServerFrame::Typing(frame) => frame.room = room.into(),
        _ => {}
    }
    frame
}

fn join(room: &str) -> ClientFrame {
    ClientFrame::Join { room: room.into() }
}

fn typing_in(room: &str, id: u64) -> ServerFrame {
    ServerFrame::Typing(Typing {
        room: room.into(),
        id,
        nickname: "bob".into(),
        active: true,
    })
}

#[test]
fn the_page_is_in_the_room_of_its_first_page_and_resumes_there() {
    Owner::new().with(|| {
        let ServerFrame::History(first) = in_room("rust", ServerFrame::History(page(3..=4, false)))
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
                before: super::rooms::LATEST
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
