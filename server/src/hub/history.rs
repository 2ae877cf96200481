//! History reads: pages of a room's stored messages, for `history` frames,
//! room switches and the server-rendered page. Reads are bounded by the
//! store (`store::MAX_READS`); past it they are answered `unavailable`.

use std::sync::Arc;

use app::protocol::{ErrorCode, HistoryPage, RoomName, ServerFrame};

use crate::{
    store::{Store, StoreError},
    ws::frame,
};

use super::{delivery::chat_message, seats::HubSeat, unavailable, Hub};

/// Messages per `history` page, and in the server-rendered page.
pub const HISTORY_PAGE: u32 = 50;

/// The page of `room`'s stored messages just older than `before`, or the
/// latest ones for `None`.
pub async fn history_page(
    store: &Store,
    room: &RoomName,
    before: Option<u64>,
) -> Result<HistoryPage, StoreError> {
    // One more than a page tells whether anything older remains.
    let mut messages = match before {
        Some(before) => {
            store
                .before(room.as_str(), before, HISTORY_PAGE + 1)
                .await?
        }
        None => store.latest(room.as_str(), HISTORY_PAGE + 1).await?,
    };
    let beginning = messages.len() <= HISTORY_PAGE as usize;
    if !beginning {
        messages.remove(0);
    }
    Ok(HistoryPage {
        room: room.to_string(),
        messages: messages.iter().map(chat_message).collect(),
        beginning,
    })
}

impl Hub {
    pub(super) fn send_history(&self, seat: &HubSeat, before: u64) {
        let (store, metrics) = (self.store.clone(), self.metrics.clone());
        let (writer, room) = (Arc::clone(&seat.writer), seat.room.name().clone());
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            let frame = match history_page(&store, &room, Some(before)).await {
                Ok(page) => ServerFrame::History(page),
                Err(error) => {
                    tracing::warn!(%error, "could not read history");
                    metrics.error(ErrorCode::Unavailable);
                    ServerFrame::Error(unavailable(
                        "older messages cannot be read right now; try again",
                    ))
                }
            };
            writer.send(&frame::text(&frame.encode()));
            metrics.frames_out(1);
        });
    }
}
