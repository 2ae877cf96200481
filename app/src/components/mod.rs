//! What the user sees, one component per part of the page.

mod composer;
mod connection_indicator;
mod message_list;
mod nickname_form;
mod notice;

pub use composer::Composer;
pub use connection_indicator::ConnectionIndicator;
pub use message_list::MessageList;
pub use nickname_form::NicknameForm;
pub use notice::Notice;
