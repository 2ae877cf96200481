use leptos::{ev::SubmitEvent, prelude::*};

use crate::{chat::Chat, protocol::Nickname};

/// Shows the current nickname and lets the user pick another.
#[component]
pub fn NicknameForm(chat: Chat) -> impl IntoView {
    let draft = RwSignal::new(String::new());
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        match Nickname::parse(&draft.get_untracked()) {
            Ok(nickname) => {
                chat.set_nickname(nickname);
                draft.set(String::new());
            }
            Err(err) => chat.notice.set(Some(err.to_string())),
        }
    };
    view! {
        <form class="nickname-form" on:submit=on_submit>
            <p class="current-nickname">
                "You are "
                <strong data-testid="current-nickname">
                    {move || chat.nickname.get().to_string()}
                </strong>
            </p>
            <label for="nickname-input">"Nickname"</label>
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
