//! The IO that hyper gets for each accepted connection: the `TcpStream`,
//! its place under the connection limits, and a write timeout.
//!
//! The slot travels with the socket, so a connection that becomes a
//! WebSocket stays counted after hyper is done with it (see
//! [`crate::ws::upgrade`], which takes both back out).

use std::{
    future::Future,
    io,
    pin::Pin,
    task::{ready, Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    time::Sleep,
};

use crate::limits::ConnectionSlot;

pub struct Accepted {
    stream: TcpStream,
    slot: ConnectionSlot,
    write_timeout: Duration,
    /// Armed when a write finds the socket full; cleared by any progress.
    /// A client that stops reading a response would otherwise hold its
    /// connection (and the response's buffers) for ever.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl Accepted {
    pub fn new(stream: TcpStream, slot: ConnectionSlot, write_timeout: Duration) -> Self {
        Self {
            stream,
            slot,
            write_timeout,
            stalled: None,
        }
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// The socket and its slot, for a connection that leaves HTTP behind.
    /// The write timeout stays here: the WebSocket layer has its own rules
    /// for clients that stop reading.
    pub fn into_parts(self) -> (TcpStream, ConnectionSlot) {
        (self.stream, self.slot)
    }

    /// Passes a write's outcome through, failing it with `TimedOut` once
    /// the socket has taken nothing for `write_timeout`.
    fn watch<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let timeout = self.write_timeout;
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(stalled.as_mut().poll(cx));
        tracing::debug!(?timeout, "client stopped reading; dropping the connection");
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the client read nothing for the write timeout",
        )))
    }
}

impl AsyncRead for Accepted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Accepted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.watch(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let poll = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.watch(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_flush(cx);
        self.watch(cx, poll)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let poll = Pin::new(&mut self.stream).poll_shutdown(cx);
        self.watch(cx, poll)
    }
}
