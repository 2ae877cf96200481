//! The connection: connecting, online, offline; who this page is to the
//! server (its id, and the resume token that makes it the same person after
//! a drop or a reload); what a welcome sets going again.

use super::{Effect, Effects, State};
use crate::protocol::{ClientFrame, Nickname, Resume, Welcome};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ConnectionStatus {
    #[default]
    Connecting,
    Online,
    Offline,
}

impl ConnectionStatus {
    /// Stable machine-readable form, used in `data-*` attributes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::Online => "online",
            Self::Offline => "offline",
        }
    }

    /// What the user reads.
    pub fn label(self) -> &'static str {
        match self {
            Self::Connecting => "Connecting…",
            Self::Online => "Online",
            Self::Offline => "Offline",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Connection {
    pub status: ConnectionStatus,
    /// This connection's id, once welcomed.
    pub me: Option<u64>,
    /// The resume token from the last welcome: who this page was.
    pub(super) token: Option<String>,
}

impl State {
    /// The first frame on a new connection: who this page was and what it
    /// has, so the server sends only what it missed.
    pub fn resume(&self) -> ClientFrame {
        ClientFrame::Resume(Resume {
            token: self.connection.token.clone(),
            after: self.timeline.last_id(),
            room: Some(self.rooms.room.to_string()),
        })
    }

    pub(super) fn connecting(&mut self, fx: &mut Effects) {
        self.connection.status = ConnectionStatus::Connecting;
        fx.push(Effect::Send(self.resume()));
    }

    /// The connection is gone: what others are doing is unknown until the
    /// next welcome. If another tab took this page's identity over, the next
    /// connection starts as someone new instead of taking it back.
    pub(super) fn disconnected(&mut self, taken_over: bool, fx: &mut Effects) {
        if taken_over {
            self.connection.token = None;
            fx.push(Effect::StoreToken(None));
        }
        self.connection.status = ConnectionStatus::Offline;
        self.people.clear();
        self.typing.clear();
        self.identity.awaiting_rename = 0;
        // An answer to a request on the old connection will not come.
        self.timeline.loading = false;
    }

    /// The server welcomed this connection, into a room it resumed or
    /// joined: who is here, and who this page now is.
    pub(super) fn welcomed(&mut self, welcome: Welcome, fx: &mut Effects) {
        // A welcome also answers a join on an open connection.
        let reconnected = !self.is_online();
        let previous = self.connection.me.replace(welcome.id);
        self.people.set(welcome.online, welcome.people);
        self.typing.clear();
        self.connection.status = ConnectionStatus::Online;
        // The server knew the token and kept the id (a reloaded page knows
        // no id yet): the same person again, under the nickname it had,
        // which the page adopts unless the user has asked for another one
        // since. After a restart the server may keep the token but not the
        // person: then the page asks for its nickname again.
        let resumed = self.connection.token.as_deref() == Some(welcome.token.as_str())
            && previous.is_none_or(|id| id == welcome.id);
        if !resumed {
            fx.push(Effect::StoreToken(Some(welcome.token.clone())));
            self.connection.token = Some(welcome.token);
        }
        let confirmed = Nickname::parse(&welcome.nickname).unwrap_or_default();
        if let Some(nickname) = self.identity.welcomed(confirmed, resumed) {
            fx.push(Effect::Send(ClientFrame::Nickname(nickname)));
        }
        if reconnected {
            self.resend_pending(fx);
        }
        self.ask_for_joined_page(fx);
    }
}
