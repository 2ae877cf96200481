//! The browser's `WebSocket`, as the socket task uses it: open, a stream of
//! what the browser reports, plain `send`, and closed when dropped.
//!
//! Over `web_sys` directly rather than gloo-net's `Stream` and `Sink`
//! wrapper: the task needs neither a sink, nor splitting one socket in two,
//! nor gloo's error types, and leaving them out saves the page about
//! 3.2 KiB (brotli).

use futures_channel::mpsc::{self, UnboundedReceiver};
use futures_util::StreamExt;
use wasm_bindgen::{closure::Closure, JsCast};
use web_sys::{CloseEvent, MessageEvent, WebSocket};

/// What the browser reports about a socket, in the order it does.
pub(super) enum Event {
    Open,
    /// A text message; binary ones are skipped (the server sends none).
    Text(String),
    /// The connection failed; `Closed` follows.
    Error,
    /// The connection is closed, with this close code.
    Closed(u16),
}

/// A browser WebSocket, closed when dropped.
pub(super) struct Socket {
    pub(super) socket: WebSocket,
    pub(super) events: UnboundedReceiver<Event>,
    /// Called by the browser for every event of `socket`: one handler for
    /// all four kinds, as each closure type costs the page's wasm.
    _handler: Closure<dyn FnMut(web_sys::Event)>,
}

impl Socket {
    /// Opens a socket to `url` and waits until it is open; `None` if it
    /// failed to open.
    pub(super) async fn open(url: &str) -> Option<Self> {
        let socket = WebSocket::new(url).ok()?;
        let (reports, events) = mpsc::unbounded();
        let handler = Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
            let event = match event.type_().as_str() {
                "open" => Event::Open,
                "message" => match event.unchecked_ref::<MessageEvent>().data().as_string() {
                    Some(text) => Event::Text(text),
                    None => return,
                },
                "close" => Event::Closed(event.unchecked_ref::<CloseEvent>().code()),
                _ => Event::Error,
            };
            // Fails only once the socket has been dropped.
            let _ = reports.unbounded_send(event);
        });
        let handle = Some(handler.as_ref().unchecked_ref());
        socket.set_onopen(handle);
        socket.set_onmessage(handle);
        socket.set_onerror(handle);
        socket.set_onclose(handle);
        let mut socket = Self {
            socket,
            events,
            _handler: handler,
        };
        // The first event is `open`, or `error` if it could not connect.
        matches!(socket.events.next().await, Some(Event::Open)).then_some(socket)
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        // The handler goes with `self`: the browser must not call it after.
        self.socket.set_onopen(None);
        self.socket.set_onmessage(None);
        self.socket.set_onerror(None);
        self.socket.set_onclose(None);
        let _ = self.socket.close();
    }
}
