//! The browser's side of the world for [`Chat`] (hydrate build only): the
//! WebSocket to `/ws`, the clock, timers and random ids.
//!
//! One task owns the socket. It reports to the chat (connecting, each
//! decoded frame, disconnected) and writes the frames the chat queues; it
//! never touches the page's state itself. It reconnects after
//! [`Backoff`]'s delays.

mod js_json;

use std::{future::poll_fn, ops::ControlFlow, sync::Arc, time::Duration};

use futures_channel::mpsc::{self, UnboundedReceiver, UnboundedSender};
use futures_util::{
    future::{select, Either},
    SinkExt, StreamExt,
};
use gloo_net::websocket::{futures::WebSocket, Message, State};
use gloo_timers::future::sleep;
use js_sys::{Date, Function, Math, Reflect};
use leptos::{prelude::*, task::spawn_local};
use wasm_bindgen::JsCast;

use self::js_json::JsJson;
use crate::{
    backoff::Backoff,
    chat::{Chat, Env},
    protocol::{ClientFrame, ServerFrame},
};

/// The chat's outside world in a browser; frames go to the socket task.
struct Browser {
    outbox: UnboundedSender<ClientFrame>,
}

impl Env for Browser {
    fn send(&self, frame: ClientFrame) {
        // Fails only once the task is gone, i.e. the page is being torn down.
        let _ = self.outbox.unbounded_send(frame);
    }

    fn new_client_id(&self) -> String {
        random_uuid().unwrap_or_else(fallback_uuid)
    }

    fn now_ms(&self) -> f64 {
        Date::now()
    }

    fn after(&self, delay: Duration, then: Box<dyn FnOnce() + Send + Sync>) {
        set_timeout(then, delay);
    }
}

/// Creates the page's chat and the socket task that serves it.
pub(crate) fn connect() -> Chat {
    let (outbox, frames) = mpsc::unbounded();
    let chat = Chat::new(Some(Arc::new(Browser { outbox })));
    spawn_local(run(chat, frames));
    chat
}

/// `crypto.randomUUID()`, which only secure contexts (https, localhost) have.
fn random_uuid() -> Option<String> {
    let crypto = Reflect::get(&js_sys::global(), &"crypto".into()).ok()?;
    let uuid = Reflect::get(&crypto, &"randomUUID".into())
        .ok()?
        .dyn_into::<Function>()
        .ok()?;
    uuid.call0(&crypto).ok()?.as_string()
}

/// A version 4 UUID from `Math.random()`, for pages served over plain http
/// from another machine. Ids only need to be unique per sender.
fn fallback_uuid() -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"
        .chars()
        .map(|c| {
            let random = (Math::random() * 16.0) as usize & 15;
            match c {
                'x' => HEX[random] as char,
                'y' => HEX[8 | (random & 3)] as char,
                other => other,
            }
        })
        .collect()
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
    let mut backoff = Backoff::new(Math::random);
    loop {
        chat.connecting();
        if let Some(socket) = open(&url).await {
            // Whatever was queued for the old connection is stale; the chat
            // resends what matters after the new welcome.
            while outbox.try_recv().is_ok() {}
            let opened = Date::now();
            let flow = session(chat, socket, &mut outbox).await;
            backoff.closed_after(Duration::from_millis((Date::now() - opened) as u64));
            if flow.is_break() {
                return;
            }
        }
        chat.disconnected();
        sleep(backoff.next_delay()).await;
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
) -> ControlFlow<()> {
    let (mut sink, mut stream) = socket.split();
    loop {
        match select(stream.next(), outbox.next()).await {
            Either::Left((Some(Ok(Message::Text(text))), _)) => {
                // Frames this client does not understand come from a newer
                // server; skipping them keeps the chat working.
                if let Some(frame) = ServerFrame::decode_with::<JsJson>(&text) {
                    chat.receive(frame);
                }
            }
            Either::Left((Some(Ok(Message::Bytes(_))), _)) => {}
            Either::Left((Some(Err(_)) | None, _)) => return ControlFlow::Continue(()),
            Either::Right((Some(frame), _)) => {
                if sink
                    .send(Message::Text(frame.encode_with::<JsJson>()))
                    .await
                    .is_err()
                {
                    return ControlFlow::Continue(());
                }
            }
            Either::Right((None, _)) => return ControlFlow::Break(()),
        }
    }
}
