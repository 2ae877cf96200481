use leptos::{ev::SubmitEvent, prelude::*};

use crate::chat::Chat;

/// The message box: Enter sends, the box then clears; blank text is ignored.
/// Usable once the page has been welcomed; while offline after that, messages
/// wait as pending and go out on reconnect.
#[component]
pub fn Composer(chat: Chat) -> impl IntoView {
    let draft = RwSignal::new(String::new());
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if chat.send(&draft.get_untracked()) {
            draft.set(String::new());
        }
    };
    view! {
        <form class="composer" on:submit=on_submit>
            <label for="message-input">"Message"</label>
            <input
                id="message-input"
                name="message"
                autocomplete="off"
                placeholder="Write a message and press Enter"
                bind:value=draft
                on:input=move |ev| chat.typing(&event_target_value(&ev))
            />
            <button type="submit" disabled=move || chat.me().is_none()>
                "Send"
            </button>
        </form>
    }
}
