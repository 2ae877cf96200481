//! The browser's WebSocket to `/ws` (hydrate build only).
//!
//! One task owns the socket: it feeds incoming frames to [`Chat`], writes the
//! frames the page queues, keeps the connection indicator true, and
//! reconnects with capped exponential backoff when the socket drops.

use std::{future::poll_fn, time::Duration};

use futures_channel::mpsc::{self, UnboundedReceiver};
use futures_util::{
    future::{select, Either},
    SinkExt, StreamExt,
};
use gloo_net::websocket::{futures::WebSocket, Message, State};
use gloo_timers::future::sleep;
use leptos::{callback::Callback, prelude::*, task::spawn_local};

use crate::{
    chat::{Chat, ConnectionStatus},
    protocol::{ChatMessage, ClientFrame, ErrorCode, ErrorPayload, Nickname, ServerFrame},
};

const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(10);

/// Creates the page state with an outbox wired to a socket task.
pub(crate) fn start() -> Chat {
    let (tx, rx) = mpsc::unbounded();
    let chat = Chat::new(Callback::new(move |frame| {
        // Fails only once the task is gone, i.e. the page is being torn down.
        let _ = tx.unbounded_send(frame);
    }));
    spawn_local(run(chat, rx));
    chat
}

/// `ws://` or `wss://`, matching the page, on the page's own host.
fn socket_url() -> String {
    let location = window().location();
    let scheme = match location.protocol().as_deref() {
        Ok("https:") => "wss",
        _ => "ws",
    };
    let host = location.host().unwrap_or_default();
    format!("{scheme}://{host}/ws")
}

async fn run(chat: Chat, mut outbox: UnboundedReceiver<ClientFrame>) {
    let url = socket_url();
    let mut retry = FIRST_RETRY;
    loop {
        chat.status.set(ConnectionStatus::Connecting);
        if let Some(socket) = open(&url).await {
            chat.status.set(ConnectionStatus::Online);
            retry = FIRST_RETRY;
            if session(chat, socket, &mut outbox).await.is_break() {
                return;
            }
        }
        chat.status.set(ConnectionStatus::Offline);
        sleep(retry).await;
        retry = (retry * 2).min(MAX_RETRY);
    }
}

/// Opens a socket and waits until it is open (or has failed).
async fn open(url: &str) -> Option<WebSocket> {
    let mut socket = WebSocket::open(url).ok()?;
    poll_fn(|cx| socket.poll_ready_unpin(cx)).await.ok()?;
    matches!(socket.state(), State::Open).then_some(socket)
}

/// Runs one connection until it drops (`Continue`: reconnect) or the page's
/// state is gone (`Break`: stop).
async fn session(
    chat: Chat,
    socket: WebSocket,
    outbox: &mut UnboundedReceiver<ClientFrame>,
) -> std::ops::ControlFlow<()> {
    use std::ops::ControlFlow::{Break, Continue};

    let (mut sink, mut stream) = socket.split();
    let nickname = chat.nickname.get_untracked();
    if nickname != Nickname::default() {
        let frame = ClientFrame::Nickname(nickname.as_str().to_owned());
        if sink.send(Message::Text(frame.encode())).await.is_err() {
            return Continue(());
        }
    }
    loop {
        match select(stream.next(), outbox.next()).await {
            Either::Left((Some(Ok(Message::Text(text))), _)) => {
                // Frames this client does not understand come from a newer
                // server; skipping them keeps the chat working.
                if let Some(frame) = decode(&text) {
                    chat.receive(frame);
                }
            }
            Either::Left((Some(Ok(Message::Bytes(_))), _)) => {}
            Either::Left((Some(Err(_)) | None, _)) => return Continue(()),
            Either::Right((Some(frame), _)) => {
                if sink.send(Message::Text(frame.encode())).await.is_err() {
                    return Continue(());
                }
            }
            Either::Right((None, _)) => return Break(()),
        }
    }
}

/// Decodes a [`ServerFrame`] with the browser's own `JSON.parse`.
///
/// Same result as [`ServerFrame::decode`], which the server's tests pin to
/// the protocol, but without serde_json's parser and its error formatting
/// (which drags in float printing) in the page's wasm: about a third of what
/// this client would otherwise download. `None` for frames it does not know.
fn decode(text: &str) -> Option<ServerFrame> {
    use js_sys::{Reflect, JSON};
    use wasm_bindgen::JsValue;

    let string = |object: &JsValue, key: &str| {
        Reflect::get(object, &JsValue::from_str(key))
            .ok()?
            .as_string()
    };
    let frame = JSON::parse(text).ok()?;
    let payload = Reflect::get(&frame, &JsValue::from_str("payload")).ok()?;
    if !payload.is_object() {
        return None;
    }
    match string(&frame, "type")?.as_str() {
        "message" => Some(ServerFrame::Message(ChatMessage {
            nickname: string(&payload, "nickname")?,
            text: string(&payload, "text")?,
        })),
        "error" => Some(ServerFrame::Error(ErrorPayload {
            code: ErrorCode::from_wire(&string(&payload, "code")?),
            message: string(&payload, "message")?,
        })),
        _ => None,
    }
}
