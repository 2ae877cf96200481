//! What the user sees, one component per part of the page. Components only
//! read the chat's state and call its methods; they never change it directly.

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

/// Calls `object`'s method `name` without arguments, if it has one: through
/// `Reflect`, which costs the page's wasm no binding of its own per method.
#[cfg(feature = "hydrate")]
fn call(object: &wasm_bindgen::JsValue, name: &str) {
    use wasm_bindgen::JsCast;

    if let Ok(method) = js_sys::Reflect::get(object, &name.into())
        .and_then(|method| method.dyn_into::<js_sys::Function>())
    {
        let _ = method.call0(object);
    }
}
