use leptos::prelude::*;

use crate::chat::Chat;

/// "Connecting…", "Online" or "Offline", in words; the dot's colour only
/// repeats what the words say.
#[component]
pub fn ConnectionIndicator(chat: Chat) -> impl IntoView {
    view! {
        <p class="connection" role="status" data-state=move || chat.status().as_str()>
            <span class="connection-dot" aria-hidden="true"></span>
            <span class="connection-label">{move || chat.status().label()}</span>
        </p>
    }
}
