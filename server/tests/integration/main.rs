//! Integration tests: the real server on a loopback port, real WebSocket
//! clients (tokio-tungstenite) and real HTTP requests.

mod bad_input;
mod chat;
mod cluster;
mod headers;
mod http;
mod lifecycle;
mod limits;
mod proxy;
mod resume;
mod rooms;
mod scale_out;
mod session;
mod storage;
mod support;
mod wire;
