//! The browser's side of the world for [`Chat`] (hydrate build only): the
//! WebSocket to `/ws`, the clock, timers and random ids.
//!
//! One task owns the socket. It reports to the chat (connecting, each
//! decoded frame, disconnected) and writes the frames the chat queues; it
//! never touches the page's state itself. It reconnects after
//! [`Backoff`]'s delays.

mod js_json;
mod web_socket;

use std::{ops::ControlFlow, sync::Arc, time::Duration};

use futures_channel::mpsc::{self, UnboundedReceiver, UnboundedSender};
use futures_util::{
    future::{select, Either},
    StreamExt,
};
use gloo_timers::future::sleep;
use js_sys::{Date, Math, Object, Reflect};
use leptos::{prelude::*, task::spawn_local};
use wasm_bindgen::JsCast;

use self::{
    js_json::JsJson,
    web_socket::{Event, Socket},
};
use crate::{
    backoff::Backoff,
    chat::{self, Chat, Env},
    protocol::{ClientFrame, HistoryPage, ServerFrame},
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

    /// The time and 106 random bits, in hex: unique among all senders (the
    /// store keeps one message per `client_id`), with nothing a page served
    /// over plain http lacks (`crypto.randomUUID` needs https).
    fn new_client_id(&self) -> String {
        let random = || (Math::random() * 9_007_199_254_740_992.0) as u64;
        format!("{:x}-{:x}-{:x}", Date::now() as u64, random(), random())
    }

    fn now_ms(&self) -> f64 {
        Date::now()
    }

    fn after(&self, delay: Duration, then: Box<dyn FnOnce() + Send + Sync>) {
        set_timeout(then, delay);
    }

    fn store_token(&self, token: Option<&str>) {
        // Storage has named properties; failures (storage disabled) only
        // cost the identity at the next reload.
        if let Some(storage) = session_storage() {
            let _ = match token {
                Some(token) => Reflect::set(&storage, &TOKEN_KEY.into(), &token.into()),
                None => Reflect::delete_property(&storage, &TOKEN_KEY.into()),
            };
        }
    }
}

/// Creates the page's chat, from the page the server rendered, and the
/// socket task that serves it.
pub(crate) fn connect() -> Chat {
    let (outbox, frames) = mpsc::unbounded();
    let token = session_storage()
        .and_then(|storage| Reflect::get(&storage, &TOKEN_KEY.into()).ok())
        .and_then(|token| token.as_string());
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
        .and_then(|text| ServerFrame::decode_with::<JsJson>(&text));
    match embedded {
        Some(ServerFrame::History(page)) => page,
        // The server renders an empty page in the same case.
        _ => HistoryPage {
            room: crate::protocol::GENERAL_ROOM.to_owned(),
            messages: Vec::new(),
            beginning: true,
        },
    }
}

/// `sessionStorage`, which throws where storage is disabled.
fn session_storage() -> Option<Object> {
    Reflect::get(&js_sys::global(), &"sessionStorage".into())
        .ok()
        .and_then(|storage| storage.dyn_into::<Object>().ok())
}

/// The chat's socket, relative to the page: browsers resolve it to `ws://`
/// or `wss://` (matching the page) on the page's own host (the WebSocket
/// constructor takes relative URLs since Chromium 125, Firefox 124 and
/// Safari 17.3). The `resume` frame comes first on it.
const SOCKET_URL: &str = "/ws?resume";

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
        if let Some(socket) = Socket::open(SOCKET_URL).await {
            let opened = Date::now();
            let flow = session(chat, socket, &mut outbox).await;
            backoff.closed_after(Duration::from_millis((Date::now() - opened) as u64));
            match flow {
                ControlFlow::Break(()) => return,
                ControlFlow::Continue(taken) => taken_over = taken,
            }
        }
        chat.disconnected(taken_over);
        sleep(backoff.next_delay()).await;
    }
}

/// Runs one connection until it drops (`Continue`: reconnect; `true` if
/// another tab took this identity over) or the page's state is gone
/// (`Break`: stop).
async fn session(
    chat: Chat,
    mut socket: Socket,
    outbox: &mut UnboundedReceiver<ClientFrame>,
) -> ControlFlow<(), bool> {
    loop {
        match select(socket.events.next(), outbox.next()).await {
            Either::Left((Some(Event::Text(text)), _)) => {
                // Frames this client does not understand come from a newer
                // server; skipping them keeps the chat working.
                if let Some(frame) = ServerFrame::decode_with::<JsJson>(&text) {
                    chat.receive(frame);
                }
            }
            // Only ever the first event, which `Socket::open` took.
            Either::Left((Some(Event::Open), _)) => {}
            Either::Left((Some(Event::Closed(code)), _)) => {
                return ControlFlow::Continue(code == RESUMED_ELSEWHERE)
            }
            Either::Left((Some(Event::Error) | None, _)) => return ControlFlow::Continue(false),
            Either::Right((Some(frame), _)) => {
                if socket
                    .socket
                    .send_with_str(&frame.encode_with::<JsJson>())
                    .is_err()
                {
                    return ControlFlow::Continue(false);
                }
            }
            Either::Right((None, _)) => return ControlFlow::Break(()),
        }
    }
}
