use leptos::prelude::*;

use crate::chat::Chat;

/// "alice is typing…", announced politely; empty when nobody is.
#[component]
pub fn TypingIndicator(chat: Chat) -> impl IntoView {
    view! {
        <p class="typing" aria-live="polite" data-testid="typing">
            {move || chat.typing(|typing| typing.label())}
        </p>
    }
}
