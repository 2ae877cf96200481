//! The WebSocket layer Parley runs itself: the handshake, protocol
//! violations, and clients too slow to keep up. Raw TCP clients send what a
//! well-behaved WebSocket library never would.

use futures_util::StreamExt;
use server::config::ConnectionConfig;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};
use tokio_tungstenite::tungstenite::{protocol::frame::coding::CloseCode, Message};

use crate::support::{read_head, unlimited_chat, TestServer, HANDSHAKE, WAIT};

/// A client frame of up to 125 bytes, masked as RFC 6455 requires of
/// clients unless `masked` is false.
fn client_frame(opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let len = u8::try_from(payload.len()).expect("a short payload");
    assert!(len < 126);
    let mut frame = vec![0x80 | opcode];
    if masked {
        let mask = [0x12, 0x34, 0x56, 0x78];
        frame.push(0x80 | len);
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    } else {
        frame.push(len);
        frame.extend_from_slice(payload);
    }
    frame
}

/// Opens a raw connection, sends the handshake followed at once by `extra`,
/// and checks the server switches protocols.
async fn raw_client(server: &TestServer, extra: &[u8]) -> TcpStream {
    let mut socket = TcpStream::connect(server.addr).await.unwrap();
    let mut request = HANDSHAKE.as_bytes().to_vec();
    request.extend_from_slice(extra);
    socket.write_all(&request).await.unwrap();
    let head = read_head(&mut socket).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // RFC 6455, section 1.3: the answer to the sample key.
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    socket
}

/// Reads server frames until a close frame and returns its code.
async fn close_code(socket: &mut TcpStream) -> u16 {
    tokio::time::timeout(WAIT, async {
        loop {
            let mut header = [0; 2];
            socket.read_exact(&mut header).await.unwrap();
            assert_eq!(header[1] & 0x80, 0, "server frames are never masked");
            let len = match header[1] & 0x7f {
                126 => usize::from(socket.read_u16().await.unwrap()),
                127 => usize::try_from(socket.read_u64().await.unwrap()).unwrap(),
                len => usize::from(len),
            };
            let mut payload = vec![0; len];
            socket.read_exact(&mut payload).await.unwrap();
            if header[0] & 0x0f == 0x8 {
                return u16::from_be_bytes([payload[0], payload[1]]);
            }
        }
    })
    .await
    .expect("a close frame in time")
}

#[tokio::test]
async fn a_message_sent_right_behind_the_handshake_is_not_lost() {
    let server = TestServer::start().await;
    let mut listener = server.client().await;
    let message = br#"{"type":"message","payload":"eager"}"#;
    let _eager = raw_client(&server, &client_frame(0x1, message, true)).await;
    listener.expect_message("Anonymous", "eager").await;
}

#[tokio::test]
async fn an_unmasked_client_frame_is_closed_as_a_protocol_error() {
    let server = TestServer::start().await;
    let mut bystander = server.client().await;
    let mut rogue = raw_client(&server, &[]).await;
    let frame = client_frame(0x1, br#"{"type":"message","payload":"x"}"#, false);
    rogue.write_all(&frame).await.unwrap();
    assert_eq!(close_code(&mut rogue).await, u16::from(CloseCode::Protocol));

    let mut other = server.client().await;
    other.say("still up").await;
    bystander.expect_message("Anonymous", "still up").await;
}

#[tokio::test]
async fn text_that_is_not_utf8_is_closed_as_invalid_data() {
    let server = TestServer::start().await;
    let mut rogue = raw_client(&server, &[]).await;
    rogue
        .write_all(&client_frame(0x1, &[0xff, 0xfe, 0xfd], true))
        .await
        .unwrap();
    assert_eq!(close_code(&mut rogue).await, u16::from(CloseCode::Invalid));
    server.wait_for_clients(0).await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_with_1008_and_the_chat_goes_on() {
    let server = TestServer::start_configured(
        ConnectionConfig {
            client_buffer_bytes: 16 * 1024,
            ..ConnectionConfig::default()
        },
        unlimited_chat(),
    )
    .await;
    let mut sender = server.client().await;
    let mut reader = server.client().await;

    // A small receive window, so the server's buffers for it fill quickly.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(server.addr).await.unwrap();
    let (mut stalled, _) =
        tokio_tungstenite::client_async(format!("ws://{}/ws", server.addr), stream)
            .await
            .unwrap();
    server.wait_for_clients(3).await;

    // 2,000 four-byte characters: about 8 KB per frame. Once the kernel's
    // buffers for the stalled client are full, its 16 KiB budget overflows
    // within three frames, and it is out of the hub at once.
    let text = "🦀".repeat(2000);
    let deadline = tokio::time::Instant::now() + 3 * WAIT;
    while server.hub.len() == 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled client was never disconnected"
        );
        sender.say(&text).await;
        reader.expect_message("Anonymous", &text).await;
    }
    // Everyone else is unaffected: the reader got every message, in time.
    sender.say("after").await;
    reader.expect_message("Anonymous", "after").await;

    // When it reads again, it gets what its socket took, then 1008.
    let close = tokio::time::timeout(WAIT, async {
        while let Some(message) = stalled.next().await {
            match message.unwrap() {
                Message::Close(frame) => return frame,
                Message::Text(received) => {
                    let frame: serde_json::Value = serde_json::from_str(&received).unwrap();
                    if frame["type"] == "message" {
                        assert!(received.contains("🦀"), "{frame}");
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        None
    })
    .await
    .expect("the close frame in time")
    .expect("a close frame with a code");
    assert_eq!(close.code, CloseCode::Policy);
    server.wait_for_tasks(2).await;
}

/// Reads whole server frames until the connection ends; returns each
/// frame's opcode and payload, in order.
async fn frames_until_eof(socket: &mut TcpStream) -> Vec<(u8, Vec<u8>)> {
    let mut bytes = Vec::new();
    tokio::time::timeout(3 * WAIT, async {
        let mut buf = [0; 64 * 1024];
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the server ends the connection in time");
    let mut frames = Vec::new();
    let mut rest = &bytes[..];
    while rest.len() >= 2 {
        let (len, header) = match rest[1] & 0x7f {
            126 => (usize::from(u16::from_be_bytes([rest[2], rest[3]])), 4),
            127 => (
                usize::try_from(u64::from_be_bytes(rest[2..10].try_into().unwrap())).unwrap(),
                10,
            ),
            len => (usize::from(len), 2),
        };
        assert!(rest.len() >= header + len, "a torn frame at the end");
        frames.push((rest[0] & 0x0f, rest[header..header + len].to_vec()));
        rest = &rest[header + len..];
    }
    frames
}

/// A raw client whose receive window is small, so the server's buffers for
/// it fill quickly.
async fn stalling_client(server: &TestServer) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(server.addr).await.unwrap();
    stream.write_all(HANDSHAKE.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(stream.read_u8().await.unwrap());
    }
    assert!(head.starts_with(b"HTTP/1.1 101"));
    stream
}

#[tokio::test]
async fn a_client_that_pings_and_never_reads_is_dropped_even_in_a_quiet_room() {
    let server = TestServer::start_with(ConnectionConfig {
        client_buffer_bytes: 64 * 1024,
        ..ConnectionConfig::default()
    })
    .await;
    let _bystander = server.client().await;
    let mut pinger = stalling_client(&server).await;
    server.wait_for_clients(2).await;

    // Every ping asks for a pong the client never reads. The pongs count
    // against its budget, so it is dropped long before this loop ends.
    let pinging = tokio::spawn(async move {
        let ping = client_frame(0x9, &[b'p'; 125], true);
        for _ in 0..1_000_000 {
            if pinger.write_all(&ping).await.is_err() {
                return;
            }
        }
        panic!("the server took 125 MB of pings without dropping the client");
    });
    server.wait_for_clients(1).await;
    pinging.abort();
}

#[tokio::test]
async fn the_reply_to_a_clients_close_gets_out_even_when_its_socket_was_full() {
    let server = TestServer::start_configured(
        ConnectionConfig {
            client_buffer_bytes: 64 << 20,
            ..ConnectionConfig::default()
        },
        unlimited_chat(),
    )
    .await;
    let mut stalled = stalling_client(&server).await;
    let mut sender = server.client().await;
    server.wait_for_clients(2).await;

    // 4 MB the stalled client does not read yet: most of it waits on the
    // server, behind a full socket.
    let text = "🦀".repeat(2000);
    for _ in 0..500 {
        sender.say(&text).await;
    }
    sender.say("last").await;
    sender.say_with_id("sync", "s1").await;
    sender.next_of("ack").await;

    stalled
        .write_all(&client_frame(0x8, &1000u16.to_be_bytes(), true))
        .await
        .unwrap();
    let frames = frames_until_eof(&mut stalled).await;
    let (opcode, payload) = frames.last().expect("some frames");
    assert_eq!(*opcode, 0x8, "the close reply comes last");
    assert_eq!(payload[..2], 1000u16.to_be_bytes());
    let messages = frames
        .iter()
        .filter(|(opcode, payload)| *opcode == 0x1 && payload.starts_with(br#"{"type":"message""#))
        .count();
    assert_eq!(
        messages, 502,
        "everything queued before the close went out first"
    );
}
