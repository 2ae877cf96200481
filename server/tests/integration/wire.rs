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

use crate::support::{read_head, TestServer, HANDSHAKE, WAIT};

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
    let server = TestServer::start_with(ConnectionConfig {
        client_queue: 4,
        ..ConnectionConfig::default()
    })
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
    // buffers for the stalled client are full, its queue overflows within
    // five frames, and it is out of the hub at once.
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
                Message::Text(received) => assert!(received.contains("🦀")),
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
