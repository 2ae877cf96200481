//! The chat session: what one client's frames mean.
//!
//! A [`Session`] takes decoded client frames and decides: it validates
//! them, applies the client's rate limits, and asks its [`Chat`] to rename,
//! relay, acknowledge, announce typing or move it to another room; what it
//! answers this client alone (an `error` frame) it returns. It knows nothing
//! of sockets: the transport ([`crate::ws::connection`]) feeds it frames
//! and writes its answers, and the tests below drive it with a fake chat.
//!
//! Nothing here waits but a move to another room, which the transport
//! awaits when [`Session::handle`] asks for it. What the chat does with a
//! message involves I/O (the store write before the relay): the chat
//! answers the sender (`ack`, or an `unavailable` error) when that is done, through the client's writer,
//! while this session and its read loop go on.

mod rate;

use std::{future::Future, sync::Arc, time::Instant};

use app::protocol::{
    ClientFrame, ClientMessageId, ErrorCode, ErrorPayload, MessageText, Nickname, OutgoingMessage,
    Resume, RoomName, ServerFrame,
};

pub use rate::{TokenBucket, TypingThrottle};

use crate::{client_id::ClientId, presence::NicknameTaken};

/// Where a session's client chats: its rooms, who gets its messages, who
/// else is there.
pub trait Chat: Send + Sync + 'static {
    /// What the chat needs to reach the client (its socket writer).
    type Endpoint: Send;
    /// The chat's hold on one connection's client: who it is and which
    /// room it is in; handed back on every call.
    type Seat: Send + Sync;
    /// Admits the client to a room and sends it `welcome`: the room
    /// `resume` names, else `general`. With `resume` the client can come
    /// back after a drop: its `token`, if the chat knows it, makes it the
    /// person it was (same id and nickname, and nobody sees it leave or
    /// join); every stored message of the room after `after` is sent first,
    /// in order, before `welcome` and live traffic, with none missed and
    /// none twice. Without it (a v1 client), or with an unknown token, the
    /// client is someone new named Anonymous. `None`: the client went away
    /// while catching up.
    fn join(
        &self,
        endpoint: Self::Endpoint,
        resume: Option<Resume>,
    ) -> impl Future<Output = Option<Joined<Self::Seat>>> + Send;
    /// Moves the client to the room `to`: it leaves its room, is sent the
    /// newest page of `to`'s messages (`history`) and then `welcome`, and
    /// keeps `nickname` unless someone in `to` has it. An error leaves the
    /// client where it was.
    fn switch(
        &self,
        id: ClientId,
        seat: &Self::Seat,
        nickname: &Nickname,
        to: RoomName,
    ) -> impl Future<Output = Result<Joined<Self::Seat>, ErrorPayload>> + Send;
    /// The client's connection is gone. A client that can resume stays
    /// for a grace period; one that cannot, or a connection another one
    /// displaced, leaves at once. Harmless if it already left.
    fn leave(&self, id: ClientId, seat: &Self::Seat);
    /// Gives the client a nickname in its room, unless someone else online
    /// there holds it.
    fn rename(
        &self,
        id: ClientId,
        seat: &Self::Seat,
        nickname: Nickname,
    ) -> Result<(), NicknameTaken>;
    /// Stores the message, then relays it to everyone else in the client's
    /// room and acks it to its sender if it has a `client_id`; returns at
    /// once, before any of that. A `client_id` stored before is acked again
    /// and not relayed.
    fn post(
        &self,
        from: ClientId,
        seat: &Self::Seat,
        nickname: &Nickname,
        text: MessageText,
        client_id: Option<ClientMessageId>,
    );
    /// Tells everyone else in the room that the client is (or stopped)
    /// typing.
    fn typing(&self, from: ClientId, seat: &Self::Seat, nickname: &Nickname, active: bool);
    /// Sends the client a `history` page: the stored messages of its room
    /// just older than id `before`. Returns at once; the page follows.
    fn history(&self, seat: &Self::Seat, before: u64);
}

/// A client the chat admitted to a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined<S> {
    pub id: ClientId,
    pub nickname: Nickname,
    pub seat: S,
}

/// How fast one client may send, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Frames a client may send at once.
    pub burst: u32,
    /// Frames per second it may keep sending.
    pub per_second: u32,
}

/// How many `typing` frames a client may send: 10 at once, then 2 a
/// second; past it they are dropped unread. A page sends one every 2 s
/// while its user types, and one when the box is cleared.
pub const TYPING_FRAMES: RateLimit = RateLimit {
    burst: 10,
    per_second: 2,
};

pub struct Session<C: Chat> {
    id: ClientId,
    seat: C::Seat,
    chat: Arc<C>,
    /// As the chat has it: changed only once the chat agreed.
    nickname: Nickname,
    limit: TokenBucket,
    typing: TypingThrottle,
    /// Typing frames have a budget of their own: a fast typist's "typing"
    /// must not use up what their messages may send.
    typing_limit: TokenBucket,
    left: bool,
}

/// What the transport does after [`Session::handle`].
#[derive(Debug, PartialEq)]
pub enum Reply {
    /// Nothing more.
    Done,
    /// Send this frame to the client alone.
    Send(ServerFrame),
    /// Await [`Session::switch`] to this room.
    Switch(RoomName),
}

impl<C: Chat> Session<C> {
    /// Joins `chat`, which welcomes the client (see [`Chat::join`]);
    /// `None` if the client went away meanwhile.
    pub async fn join(
        chat: Arc<C>,
        endpoint: C::Endpoint,
        resume: Option<Resume>,
        limit: RateLimit,
        now: Instant,
    ) -> Option<Self> {
        let Joined { id, nickname, seat } = chat.join(endpoint, resume).await?;
        Some(Self {
            id,
            seat,
            chat,
            nickname,
            limit: TokenBucket::new(limit.burst, limit.per_second, now),
            typing: TypingThrottle::new(now),
            typing_limit: TokenBucket::new(TYPING_FRAMES.burst, TYPING_FRAMES.per_second, now),
            left: false,
        })
    }

    pub fn id(&self) -> ClientId {
        self.id
    }

    /// Acts on one frame from the client (or on why it could not be
    /// decoded), returning what to answer it with or to do next.
    pub fn handle(&mut self, frame: Result<ClientFrame, ErrorPayload>, now: Instant) -> Reply {
        let client_id = match &frame {
            Ok(ClientFrame::Message(message)) => message.client_id.clone(),
            _ => None,
        };
        // "Typing" news is throttled, not refused: it is sent while typing,
        // and an error for each would be noise. Its frames are counted all
        // the same, apart from the others (see `TYPING_FRAMES`).
        if let Ok(ClientFrame::Typing(active)) = frame {
            if self.typing_limit.try_take(now) && self.typing.allow(active, now) && !self.left {
                self.chat
                    .typing(self.id, &self.seat, &self.nickname, active);
            }
            return Reply::Done;
        }
        if !self.limit.try_take(now) {
            let refusal = ErrorPayload::new(
                ErrorCode::RateLimited,
                "too many frames: slow down, this one was dropped",
            );
            return Reply::Send(ServerFrame::Error(refusal.about(client_id.as_deref())));
        }
        let result = match frame {
            Ok(ClientFrame::Nickname(raw)) => self.rename(&raw),
            Ok(ClientFrame::Message(message)) => self.post(message),
            Ok(ClientFrame::Typing(_)) => Ok(()),
            Ok(ClientFrame::History { before }) => {
                if !self.left {
                    self.chat.history(&self.seat, before);
                }
                Ok(())
            }
            Ok(ClientFrame::Join { room }) => match RoomName::parse(&room) {
                Ok(room) if !self.left => return Reply::Switch(room),
                Ok(_) => Ok(()),
                Err(invalid) => Err(invalid.into()),
            },
            Ok(ClientFrame::Resume(_)) => Err(ErrorPayload::new(
                ErrorCode::OutOfOrder,
                "resume must be the first frame of a connection to /ws?resume",
            )),
            Err(refused) => Err(refused),
        };
        match result {
            Ok(()) => Reply::Done,
            Err(refused) => Reply::Send(ServerFrame::Error(refused.about(client_id.as_deref()))),
        }
    }

    /// Moves the client to `room` (after [`Reply::Switch`]); the error
    /// frame to answer with if it stays where it was.
    pub async fn switch(&mut self, room: RoomName) -> Option<ServerFrame> {
        let moved = self
            .chat
            .switch(self.id, &self.seat, &self.nickname, room)
            .await;
        match moved {
            Ok(Joined { nickname, seat, .. }) => {
                self.seat = seat;
                self.nickname = nickname;
                self.typing.reset();
                None
            }
            Err(refused) => Some(ServerFrame::Error(refused)),
        }
    }

    /// Leaves the room now; later frames are ignored. Dropping the session
    /// leaves too.
    pub fn leave(&mut self) {
        if !self.left {
            self.left = true;
            self.chat.leave(self.id, &self.seat);
        }
    }

    fn rename(&mut self, raw: &str) -> Result<(), ErrorPayload> {
        let nickname = Nickname::parse(raw)?;
        if nickname == self.nickname || self.left {
            return Ok(());
        }
        self.chat
            .rename(self.id, &self.seat, nickname.clone())
            .map_err(|taken| ErrorPayload::new(ErrorCode::NicknameTaken, taken.to_string()))?;
        self.nickname = nickname;
        Ok(())
    }

    fn post(&mut self, message: OutgoingMessage) -> Result<(), ErrorPayload> {
        let client_id = message
            .client_id
            .as_deref()
            .map(ClientMessageId::parse)
            .transpose()?;
        let text = MessageText::parse(&message.text)?;
        if self.left {
            return Ok(());
        }
        self.typing.reset();
        self.chat
            .post(self.id, &self.seat, &self.nickname, text, client_id);
        Ok(())
    }
}

impl<C: Chat> Drop for Session<C> {
    fn drop(&mut self) {
        self.leave();
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Mutex, time::Duration};

    use super::*;
    use crate::presence::Roster;

    /// A room that records what it was asked, over a real roster.
    #[derive(Default)]
    struct FakeRoom {
        roster: Mutex<Option<Roster>>,
        log: Mutex<Vec<String>>,
    }

    impl FakeRoom {
        fn log(&self) -> Vec<String> {
            std::mem::take(&mut *self.log.lock().unwrap())
        }

        fn roster<T>(&self, f: impl FnOnce(&mut Roster) -> T) -> T {
            f(self
                .roster
                .lock()
                .unwrap()
                .get_or_insert_with(|| Roster::new(100)))
        }
    }

    impl Chat for FakeRoom {
        /// The id the test wants the client to have.
        type Endpoint = ClientId;
        /// The client's id.
        type Seat = ClientId;

        async fn join(&self, id: ClientId, resume: Option<Resume>) -> Option<Joined<ClientId>> {
            self.roster(|roster| roster.join(id));
            let resume = resume.map_or(String::new(), |r| format!(" after {:?}", r.after));
            self.log.lock().unwrap().push(format!("join {id}{resume}"));
            Some(Joined {
                id,
                nickname: Nickname::default(),
                seat: id,
            })
        }

        async fn switch(
            &self,
            id: ClientId,
            _: &ClientId,
            nickname: &Nickname,
            to: RoomName,
        ) -> Result<Joined<ClientId>, ErrorPayload> {
            self.log.lock().unwrap().push(format!("switch {id} {to}"));
            // As if the nickname were taken there.
            let nickname = if to.as_str() == "crowded" {
                Nickname::default()
            } else {
                nickname.clone()
            };
            Ok(Joined {
                id,
                nickname,
                seat: id,
            })
        }

        fn leave(&self, id: ClientId, _: &ClientId) {
            self.roster(|roster| roster.leave(id));
            self.log.lock().unwrap().push(format!("leave {id}"));
        }

        fn rename(
            &self,
            id: ClientId,
            _: &ClientId,
            nickname: Nickname,
        ) -> Result<(), NicknameTaken> {
            self.roster(|roster| roster.rename(id, nickname.clone()))?;
            self.log
                .lock()
                .unwrap()
                .push(format!("rename {id} {nickname}"));
            Ok(())
        }

        fn post(
            &self,
            from: ClientId,
            _: &ClientId,
            nickname: &Nickname,
            text: MessageText,
            client_id: Option<ClientMessageId>,
        ) {
            let client_id = client_id.map_or(String::new(), |id| format!(" [{id}]"));
            self.log.lock().unwrap().push(format!(
                "post {from} {nickname}: {}{client_id}",
                text.as_str()
            ));
        }

        fn typing(&self, from: ClientId, _: &ClientId, nickname: &Nickname, active: bool) {
            self.log
                .lock()
                .unwrap()
                .push(format!("typing {from} {nickname} {active}"));
        }

        fn history(&self, &to: &ClientId, before: u64) {
            self.log
                .lock()
                .unwrap()
                .push(format!("history {to} before {before}"));
        }
    }

    const LIMIT: RateLimit = RateLimit {
        burst: 5,
        per_second: 1,
    };

    fn session(room: &Arc<FakeRoom>, id: u64, now: Instant) -> Session<FakeRoom> {
        let join = Session::join(Arc::clone(room), ClientId::from(id), None, LIMIT, now);
        finish(join).expect("the fake room admits everyone")
    }

    /// The fake room answers at once: one poll finishes what it does.
    fn finish<T>(future: impl Future<Output = T>) -> T {
        let mut future = std::pin::pin!(future);
        match future
            .as_mut()
            .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
        {
            std::task::Poll::Ready(done) => done,
            std::task::Poll::Pending => panic!("the fake room never waits"),
        }
    }

    fn message(text: &str, client_id: Option<&str>) -> Result<ClientFrame, ErrorPayload> {
        Ok(ClientFrame::Message(OutgoingMessage {
            text: text.into(),
            client_id: client_id.map(str::to_owned),
        }))
    }

    fn nickname(raw: &str) -> Result<ClientFrame, ErrorPayload> {
        Ok(ClientFrame::Nickname(raw.into()))
    }

    fn error_code(reply: Reply) -> (ErrorCode, Option<String>) {
        match reply {
            Reply::Send(ServerFrame::Error(error)) => (error.code, error.client_id),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn a_valid_message_is_posted_under_the_current_nickname() {
        let room = Arc::new(FakeRoom::default());
        let now = Instant::now();
        let mut alice = session(&room, 1, now);
        assert_eq!(alice.handle(message("  hi  ", None), now), Reply::Done);
        assert_eq!(alice.handle(nickname(" alice "), now), Reply::Done);
        assert_eq!(
            alice.handle(message("again", Some("c-1")), now),
            Reply::Done
        );
        assert_eq!(
            room.log(),
            [
                "join #1",
                "post #1 Anonymous: hi",
                "rename #1 alice",
                "post #1 alice: again [c-1]"
            ]
        );
        drop(alice);
        assert_eq!(room.log(), ["leave #1"]);
    }

    #[test]
    fn bad_frames_are_answered_and_nothing_is_posted() {
        let room = Arc::new(FakeRoom::default());
        let now = Instant::now();
        let mut alice = session(&room, 1, now);
        room.log();
        let too_long = "x".repeat(app::protocol::MESSAGE_MAX_CHARS + 1);
        assert_eq!(
            error_code(alice.handle(message(&too_long, Some("c-9")), now)),
            (ErrorCode::InvalidMessage, Some("c-9".into())),
            "the error names the message it refuses"
        );
        assert_eq!(
            error_code(alice.handle(message("hi", Some("not an id")), now)).0,
            ErrorCode::InvalidPayload
        );
        assert_eq!(
            error_code(alice.handle(nickname("a\u{202E}b"), now)).0,
            ErrorCode::InvalidNickname
        );
        let undecodable = Err(ErrorPayload::new(ErrorCode::MalformedJson, "no"));
        assert_eq!(
            error_code(alice.handle(undecodable, now)).0,
            ErrorCode::MalformedJson
        );
        assert_eq!(room.log(), Vec::<String>::new());
    }

    #[test]
    fn a_taken_nickname_is_refused_and_the_old_one_stays() {
        let room = Arc::new(FakeRoom::default());
        let now = Instant::now();
        let mut alice = session(&room, 1, now);
        let mut bob = session(&room, 2, now);
        alice.handle(nickname("Alice"), now);
        assert_eq!(
            error_code(bob.handle(nickname("ＡLICE"), now)).0,
            ErrorCode::NicknameTaken
        );
        bob.handle(message("still bob", None), now);
        assert_eq!(room.log().last().unwrap(), "post #2 Anonymous: still bob");
        drop(alice);
        assert_eq!(
            bob.handle(nickname("alice"), now),
            Reply::Done,
            "free once alice left"
        );
    }

    #[test]
    fn a_flood_is_cut_to_the_burst_then_the_rate_and_told_so() {
        let room = Arc::new(FakeRoom::default());
        let start = Instant::now();
        let mut flooder = session(&room, 1, start);
        room.log();
        let replies: Vec<_> = (0..20)
            .map(|i| flooder.handle(message(&i.to_string(), Some(&format!("c{i}"))), start))
            .collect();
        assert!(replies[..5].iter().all(|reply| *reply == Reply::Done));
        for (i, reply) in replies.into_iter().enumerate().skip(5) {
            assert_eq!(
                error_code(reply),
                (ErrorCode::RateLimited, Some(format!("c{i}")))
            );
        }
        assert_eq!(room.log().len(), 5, "only the burst was posted");
        // Bad frames count too: errors are no way around the limit.
        let later = start + Duration::from_secs(1);
        assert_eq!(
            error_code(flooder.handle(nickname(""), later)).0,
            ErrorCode::InvalidNickname
        );
        assert_eq!(
            error_code(flooder.handle(message("x", None), later)).0,
            ErrorCode::RateLimited
        );
        assert_eq!(
            flooder.handle(message("x", None), later + Duration::from_secs(1)),
            Reply::Done
        );
    }

    #[test]
    fn typing_is_throttled_silently_and_cleared_by_a_message() {
        let room = Arc::new(FakeRoom::default());
        let now = Instant::now();
        let mut alice = session(&room, 1, now);
        room.log();
        for _ in 0..10 {
            assert_eq!(
                alice.handle(Ok(ClientFrame::Typing(true)), now),
                Reply::Done
            );
        }
        let later = now + Duration::from_secs(10);
        alice.handle(message("done", None), later);
        alice.handle(Ok(ClientFrame::Typing(false)), later);
        alice.handle(Ok(ClientFrame::Typing(true)), later);
        alice.handle(Ok(ClientFrame::Typing(false)), later);
        assert_eq!(
            room.log(),
            [
                "typing #1 Anonymous true",
                "post #1 Anonymous: done",
                "typing #1 Anonymous true",
                "typing #1 Anonymous false"
            ]
        );
    }

    #[test]
    fn typing_has_a_rate_limit_of_its_own() {
        let room = Arc::new(FakeRoom::default());
        let now = Instant::now();
        let mut alice = session(&room, 1, now);
        room.log();
        let mut answers = Vec::new();
        for i in 0..100 {
            answers.push(alice.handle(Ok(ClientFrame::Typing(i % 2 == 0)), now));
        }
        assert!(
            answers.iter().all(|answer| *answer == Reply::Done),
            "no errors"
        );
        let relayed = room.log().len();
        assert!(
            (1..=TYPING_FRAMES.burst as usize).contains(&relayed),
            "no more than the typing frames let in: {relayed}"
        );
        // Messages keep their whole budget.
        for i in 0..LIMIT.burst {
            assert_eq!(
                alice.handle(message(&i.to_string(), None), now),
                Reply::Done
            );
        }
    }

    #[test]
    fn history_is_asked_of_the_room_and_resume_is_refused_once_joined() {
        let room = Arc::new(FakeRoom::default());
        let now = Instant::now();
        let mut alice = session(&room, 1, now);
        room.log();
        assert_eq!(
            alice.handle(Ok(ClientFrame::History { before: 40 }), now),
            Reply::Done
        );
        assert_eq!(room.log(), ["history #1 before 40"]);
        let resume = Ok(ClientFrame::Resume(Resume::default()));
        assert_eq!(
            error_code(alice.handle(resume, now)).0,
            ErrorCode::OutOfOrder
        );
        assert_eq!(room.log(), Vec::<String>::new());
    }

    #[test]
    fn a_join_asks_to_switch_and_a_bad_room_name_is_refused() {
        let room = Arc::new(FakeRoom::default());
        let now = Instant::now();
        let mut alice = session(&room, 1, now);
        alice.handle(nickname("alice"), now);
        room.log();
        let join = |room: &str| Ok(ClientFrame::Join { room: room.into() });
        assert_eq!(
            error_code(alice.handle(join("Not A Room"), now)).0,
            ErrorCode::InvalidRoom
        );
        let rust = RoomName::parse("rust").unwrap();
        assert_eq!(alice.handle(join("rust"), now), Reply::Switch(rust.clone()));
        assert_eq!(finish(alice.switch(rust)), None);
        alice.handle(message("hi", None), now);
        let crowded = RoomName::parse("crowded").unwrap();
        assert_eq!(finish(alice.switch(crowded)), None);
        alice.handle(message("who am I", None), now);
        assert_eq!(
            room.log(),
            [
                "switch #1 rust",
                "post #1 alice: hi",
                "switch #1 crowded",
                "post #1 Anonymous: who am I"
            ],
            "the nickname is the one the new room gave"
        );
    }

    #[test]
    fn after_leaving_nothing_more_is_posted() {
        let room = Arc::new(FakeRoom::default());
        let now = Instant::now();
        let mut alice = session(&room, 1, now);
        alice.leave();
        alice.handle(message("ghost", None), now);
        drop(alice);
        assert_eq!(room.log(), ["join #1", "leave #1"]);
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::*;

        fn frame() -> impl Strategy<Value = Result<ClientFrame, ErrorPayload>> {
            let text = prop_oneof![".*", "[a-z ]{0,8}", Just("Alice".to_owned())];
            prop_oneof![
                text.clone().prop_map(|raw| Ok(ClientFrame::Nickname(raw))),
                (text.clone(), proptest::option::of("[a-z0-9-]{0,70}|.*")).prop_map(
                    |(text, client_id)| Ok(ClientFrame::Message(OutgoingMessage {
                        text,
                        client_id
                    }))
                ),
                any::<bool>().prop_map(|active| Ok(ClientFrame::Typing(active))),
                any::<u64>().prop_map(|before| Ok(ClientFrame::History { before })),
                text.clone().prop_map(|room| Ok(ClientFrame::Join { room })),
                Just(Err(ErrorPayload::new(ErrorCode::MalformedJson, "no"))),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2048))]

            /// Any sequence of frames, at any pace, from two clients: no
            /// panic, and never more posts and history reads than the rate
            /// limit allows.
            #[test]
            fn sessions_never_panic_and_keep_to_the_rate_limit(
                steps in proptest::collection::vec((0..2usize, frame(), 0..400u64), 0..80)
            ) {
                let room = Arc::new(FakeRoom::default());
                let start = Instant::now();
                let mut sessions = [session(&room, 1, start), session(&room, 2, start)];
                let mut now = start;
                for (who, frame, gap_ms) in steps {
                    now += Duration::from_millis(gap_ms);
                    let reply = sessions[who].handle(frame, now);
                    prop_assert!(matches!(
                        reply,
                        Reply::Done | Reply::Send(ServerFrame::Error(_)) | Reply::Switch(_)
                    ));
                }
                let elapsed = now.duration_since(start).as_secs_f64();
                let allowed = f64::from(LIMIT.burst) + elapsed * f64::from(LIMIT.per_second);
                let log = room.log();
                for id in ["#1", "#2"] {
                    let posts = log
                        .iter()
                        .filter(|line| {
                            line.starts_with(&format!("post {id} "))
                                || line.starts_with(&format!("history {id} "))
                        })
                        .count();
                    prop_assert!(posts as f64 <= allowed + 1e-9);
                }
            }
        }
    }
}
