//! The browser's side of the world for [`Chat`] (hydrate build only): the
//! WebSocket to `/ws` (gloo-net), the clock, timers and random ids, and
//! the resume token in `sessionStorage`.
//!
//! One task owns the socket. It reports to the chat (connecting, each
//! decoded frame, disconnected) and writes the frames the chat queues; it
//! never touches the page's state itself. It reconnects after
//! [`Backoff`]'s delays. Frames are the shared protocol types, decoded and
//! encoded with serde, the code the protocol's tests cover.

use std::{ops::ControlFlow, sync::Arc, time::Duration};

use futures_channel::mpsc::{self, UnboundedReceiver, UnboundedSender};
use futures_util::{
    future::{select, Either},
    SinkExt, StreamExt,
};
use gloo_net::websocket::{futures::WebSocket, Message, State, WebSocketError};
use gloo_timers::future::sleep;
use js_sys::{Date, Math};
use leptos::{prelude::*, task::spawn_local, web_sys::Storage};

use crate::{
    backoff::Backoff,
    chat::{self, Chat, Env},
    protocol::{ClientFrame, HistoryPage, ServerFrame, GENERAL_ROOM},
    FIRST_PAGE_ID,
};

/// Where the resume token is kept: per tab (two tabs are two people), and
/// across reloads.
const TOKEN_KEY: &str = "parley-token";

/// The close code with which the server hands this page's identity to
/// another tab that resumed with a copy of its token.
const RESUMED_ELSEWHERE: u16 = 4001;

/// The chat's outside world in a browser; frames go to the socket task.
struct Browser {
    outbox: UnboundedSender<ClientFrame>,
}

impl Env for Browser {
    fn send(&self, frame: ClientFrame) {
        // Fails only once the task is gone, i.e. the page is being torn down.
        let _ = self.outbox.unbounded_send(frame);
    }

    /// 128 random bits from the browser's cryptographic generator, in hex:
    /// unique among all senders, and available on a page served over plain
    /// http too (`crypto.randomUUID` needs https).
    fn new_client_id(&self) -> String {
        let mut bytes = [0u8; 16];
        let random = window()
            .crypto()
            .and_then(|crypto| crypto.get_random_values_with_u8_array(&mut bytes));
        if random.is_err() {
            // No Web Crypto: the time and the weaker generator.
            let word = || (Math::random() * 9_007_199_254_740_991.0) as u64;
            return format!("{:x}-{:x}-{:x}", Date::now() as u64, word(), word());
        }
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn now_ms(&self) -> f64 {
        Date::now()
    }

    fn after(&self, delay: Duration, then: Box<dyn FnOnce() + Send + Sync>) {
        set_timeout(then, delay);
    }

    fn store_token(&self, token: Option<&str>) {
        // Failures (storage disabled) only cost the identity at the next
        // reload.
        if let Some(storage) = session_storage() {
            let _ = match token {
                Some(token) => storage.set_item(TOKEN_KEY, token),
                None => storage.remove_item(TOKEN_KEY),
            };
        }
    }
}

/// Creates the page's chat, from the page the server rendered, and the
/// socket task that serves it.
pub(crate) fn connect() -> Chat {
    let (outbox, frames) = mpsc::unbounded();
    let token = session_storage().and_then(|storage| storage.get_item(TOKEN_KEY).ok().flatten());
    let state = chat::State::first(first_page(), token);
    let chat = Chat::from_state(Some(Arc::new(Browser { outbox })), state);
    spawn_local(run(chat, frames));
    chat
}

/// The page of messages the server rendered, from the `<script>` it
/// embedded them in, read with the frames' own decoder.
fn first_page() -> HistoryPage {
    let embedded = document()
        .get_element_by_id(FIRST_PAGE_ID)
        .and_then(|script| script.text_content())
        .and_then(|text| ServerFrame::decode(&text));
    match embedded {
        Some(ServerFrame::History(page)) => page,
        // The server renders an empty page in the same case.
        _ => HistoryPage {
            room: GENERAL_ROOM.to_owned(),
            messages: Vec::new(),
            beginning: true,
        },
    }
}

/// `sessionStorage`, which is missing (or throws) where storage is disabled.
fn session_storage() -> Option<Storage> {
    window().session_storage().ok().flatten()
}

/// The chat's socket on the page's own host: `wss:` for a page served over
/// https, `ws:` otherwise. An absolute URL: relative ones are newer than
/// some browsers still in use (Safari before 17.3).
fn socket_url() -> Option<String> {
    let location = window().location();
    let scheme = match location.protocol().ok()?.as_str() {
        "https:" => "wss:",
        _ => "ws:",
    };
    Some(format!("{scheme}//{}/ws?resume", location.host().ok()?))
}

async fn run(chat: Chat, mut outbox: UnboundedReceiver<ClientFrame>) {
    let mut backoff = Backoff::new(Math::random);
    loop {
        // Whatever was queued for the old connection (or a resume frame for
        // an attempt that failed) is stale; the chat resends what matters
        // after the new welcome. Nothing is queued while connecting but the
        // resume frame, which thus goes first.
        while outbox.try_recv().is_ok() {}
        chat.connecting();
        let mut taken_over = false;
        match socket_url().map(|url| WebSocket::open(&url)) {
            Some(Ok(socket)) => {
                let (flow, open_for) = session(chat, socket, &mut outbox).await;
                backoff.closed_after(open_for);
                match flow {
                    ControlFlow::Break(()) => return,
                    ControlFlow::Continue(taken) => taken_over = taken,
                }
            }
            Some(Err(error)) => leptos::logging::error!("cannot open the chat's socket: {error}"),
            None => leptos::logging::error!("the page has no location to connect to"),
        }
        chat.disconnected(taken_over);
        sleep(backoff.next_delay()).await;
    }
}

/// Runs one connection until it drops (`Continue`: reconnect; `true` if
/// another tab took this identity over) or the page's state is gone
/// (`Break`: stop). Also says how long the server kept it, from its first
/// frame: a server that accepts and drops at once has not served it.
async fn session(
    chat: Chat,
    mut socket: WebSocket,
    outbox: &mut UnboundedReceiver<ClientFrame>,
) -> (ControlFlow<(), bool>, Duration) {
    let mut served_from = None;
    let flow = loop {
        // The one socket both reads and writes; the future not taken is
        // dropped here, before the socket is used again.
        let next = match select(socket.next(), outbox.next()).await {
            Either::Left((event, _)) => Either::Left(event),
            Either::Right((frame, _)) => Either::Right(frame),
        };
        match next {
            Either::Left(Some(Ok(Message::Text(text)))) => {
                served_from.get_or_insert_with(Date::now);
                // Frames this client does not understand come from a newer
                // server; skipping them keeps the chat working.
                if let Some(frame) = ServerFrame::decode(&text) {
                    chat.receive(frame);
                }
            }
            // The server sends none.
            Either::Left(Some(Ok(Message::Bytes(_)))) => {}
            Either::Left(Some(Err(WebSocketError::ConnectionClose(close)))) => {
                break ControlFlow::Continue(close.code == RESUMED_ELSEWHERE)
            }
            Either::Left(Some(Err(_)) | None) => break ControlFlow::Continue(false),
            // Closing: the close event is on its way, and a frame sent now
            // would be lost (the chat sends what matters again after the
            // next welcome). While connecting, sending waits for the open.
            Either::Right(Some(_)) if matches!(socket.state(), State::Closing | State::Closed) => {}
            Either::Right(Some(frame)) => {
                if socket.send(Message::Text(frame.encode())).await.is_err() {
                    break ControlFlow::Continue(false);
                }
            }
            Either::Right(None) => break ControlFlow::Break(()),
        }
    };
    let open_for = served_from.map_or(0.0, |from| Date::now() - from);
    (flow, Duration::from_millis(open_for as u64))
}
