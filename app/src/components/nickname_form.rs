use leptos::{ev::SubmitEvent, prelude::*};

use crate::chat::Chat;

/// Shows the current nickname and lets the user pick another.
#[component]
pub fn NicknameForm(chat: Chat) -> impl IntoView {
    let draft = RwSignal::new(String::new());
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if chat.set_nickname(&draft.get_untracked()) {
            draft.set(String::new());
        }
    };
    view! {
        <form class="nickname-form" on:submit=on_submit>
            <p class="current-nickname">
                "You are "
                <strong data-testid="current-nickname">
                    <bdi>{move || chat.nickname().to_string()}</bdi>
                </strong>
            </p>
            <label for="nickname-input" class="visually-hidden">
                "Nickname"
            </label>
            <input
                id="nickname-input"
                name="nickname"
                autocomplete="nickname"
                placeholder="Choose a nickname"
                bind:value=draft
            />
            <button type="submit">"Set nickname"</button>
        </form>
    }
}
