use leptos::prelude::*;

use crate::chat::Chat;

/// The last problem worth telling the user about (a refused nickname, a
/// message too long, an error from the server). Screen readers announce it.
#[component]
pub fn Notice(chat: Chat) -> impl IntoView {
    view! {
        <p class="notice" role="alert">
            {move || chat.notice()}
        </p>
    }
}
