//! What the user sees, one component per part of the page. Components read
//! the parts of the chat's state they show, and call its methods; they
//! never change it directly.

mod composer;
mod connection_indicator;
mod message_list;
mod nickname_form;
mod notice;
mod online_list;
mod room_list;
mod typing_indicator;

pub use composer::Composer;
pub use connection_indicator::ConnectionIndicator;
pub use message_list::MessageList;
pub use nickname_form::NicknameForm;
pub use notice::Notice;
pub use online_list::OnlineList;
pub use room_list::RoomList;
pub use typing_indicator::TypingIndicator;
