//! Saved nicknames: the nickname a resume token last chose, kept in the
//! store so that a page coming back after a restart gets it again, and the
//! rename that saves it.

use std::sync::Arc;

use app::protocol::Nickname;

use crate::{client_id::ClientId, identity::Claim, lock, presence::NicknameTaken};

use super::{seats::HubSeat, Hub};

/// Nickname saves that may use the store at once.
pub(super) const SESSION_SAVES: usize = 2;

impl Hub {
    /// The nickname the store kept for a token this process does not know
    /// (one from before a restart).
    pub(super) async fn saved_nickname(&self, claim: &Claim) -> Option<Nickname> {
        if !claim.presented {
            return None;
        }
        match self.store.session(&claim.token.digest()).await {
            Ok(saved) => saved.and_then(|saved| Nickname::parse(&saved).ok()),
            Err(error) => {
                tracing::warn!(%error, "could not read a resume token's nickname");
                None
            }
        }
    }

    /// Keeps a resumable client's new nickname for after a restart; the
    /// rename does not wait for it. At most [`SESSION_SAVES`] saves run at
    /// once, the rest wait their turn: thousands of people choosing a
    /// nickname in the same second must not take every connection of the
    /// store's pool from the messages (whose commits would then time out).
    pub(super) fn save_nickname(&self, seat: &HubSeat, nickname: &Nickname) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (store, saves) = (self.store.clone(), Arc::clone(&self.session_saves));
        let (digest, nickname) = (seat.token.digest(), nickname.to_string());
        runtime.spawn(async move {
            let Ok(_turn) = saves.acquire().await else {
                return;
            };
            if let Err(error) = store.save_session(&digest, &nickname).await {
                tracing::warn!(%error, "could not save a resume token's nickname");
            }
        });
    }

    pub(super) fn rename_in_room(
        &self,
        id: ClientId,
        seat: &HubSeat,
        nickname: Nickname,
    ) -> Result<(), NicknameTaken> {
        // Someone on another process: as good as here (two people taking
        // one name at the same moment on two processes may both get it).
        if lock(&self.cluster).has_nickname(seat.room.name(), &nickname) {
            return Err(NicknameTaken);
        }
        lock(&seat.room.roster).rename(id, nickname.clone())?;
        self.presence_changed(&seat.room);
        if seat.resumable {
            self.save_nickname(seat, &nickname);
        }
        Ok(())
    }
}
