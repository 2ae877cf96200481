//! Server-to-client WebSocket frames, framed once and shared.
//!
//! A chat message goes to every other client as the same bytes, WebSocket
//! header included, so the header is written once per broadcast instead of
//! once per recipient. tungstenite's own header encoder does the framing.

use bytes::Bytes;
use tungstenite::protocol::frame::{
    coding::{Data, OpCode},
    FrameHeader,
};

/// A single, final, unmasked text frame carrying `payload`.
pub fn text(payload: &str) -> Bytes {
    let header = FrameHeader {
        opcode: OpCode::Data(Data::Text),
        ..FrameHeader::default()
    };
    let length = payload.len() as u64;
    let mut frame = Vec::with_capacity(header.len(length) + payload.len());
    header
        .format(length, &mut frame)
        .expect("writing to a Vec cannot fail");
    frame.extend_from_slice(payload.as_bytes());
    frame.into()
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use tungstenite::protocol::{frame::Frame, Message, Role, WebSocket};

    use super::*;

    /// What a client's WebSocket makes of `bytes`.
    fn client_reads(bytes: Bytes) -> Message {
        let mut client =
            WebSocket::from_raw_socket(Cursor::new(bytes.to_vec()), Role::Client, None);
        client.read().expect("a whole, valid frame")
    }

    #[test]
    fn frames_are_what_a_client_reads_as_text() {
        // One length per header form: 7-bit, 16-bit and 64-bit.
        for length in [0, 1, 125, 126, 65_535, 65_536, 70_000] {
            let payload = "x".repeat(length);
            let frame = text(&payload);
            assert_eq!(
                client_reads(frame.clone()),
                Message::text(payload.clone()),
                "length {length}"
            );
            let reference = Frame::message(payload.into_bytes(), OpCode::Data(Data::Text), true);
            assert_eq!(frame.len(), reference.len(), "length {length}");
        }
    }

    #[test]
    fn multibyte_text_survives() {
        let payload = r#"{"type":"message","payload":{"nickname":"민준","text":"안녕 👋"}}"#;
        assert_eq!(client_reads(text(payload)), Message::text(payload));
    }
}
