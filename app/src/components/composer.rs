use leptos::{ev::SubmitEvent, prelude::*};

use crate::{
    chat::Chat,
    protocol::{MessageText, MessageTextError},
};

/// The message box: Enter sends, the box then clears; blank text is ignored.
/// Sending waits for a live connection rather than pretending to send.
#[component]
pub fn Composer(chat: Chat) -> impl IntoView {
    let draft = RwSignal::new(String::new());
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if !chat.is_online() {
            return;
        }
        match MessageText::parse(&draft.get_untracked()) {
            Ok(text) => {
                chat.send_message(text);
                draft.set(String::new());
            }
            Err(MessageTextError::Empty) => {}
            Err(err) => chat.notice.set(Some(err.to_string())),
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
            />
            <button type="submit" disabled=move || !chat.is_online()>
                "Send"
            </button>
        </form>
    }
}
