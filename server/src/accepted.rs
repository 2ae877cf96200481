//! The IO that hyper gets for each accepted connection: the `TcpStream`
//! and its place under the connection limits.
//!
//! The slot travels with the socket, so a connection that becomes a
//! WebSocket stays counted after hyper is done with it (see
//! [`crate::ws::upgrade`], which takes both back out).

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

use crate::limits::ConnectionSlot;

pub struct Accepted {
    stream: TcpStream,
    slot: ConnectionSlot,
}

impl Accepted {
    pub fn new(stream: TcpStream, slot: ConnectionSlot) -> Self {
        Self { stream, slot }
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// The socket and its slot, for a connection that leaves HTTP behind.
    pub fn into_parts(self) -> (TcpStream, ConnectionSlot) {
        (self.stream, self.slot)
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
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
