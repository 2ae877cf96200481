use leptos::{ev::KeyboardEvent, html::Textarea, prelude::*};

use crate::{chat::Chat, protocol::MESSAGE_MAX_CHARS};

/// Within this many characters of the limit, the composer says how many
/// are left.
const SHOW_REMAINING: usize = 200;

/// The message box: Enter sends, Shift+Enter starts a new line. Sent, the
/// box clears and keeps the focus; refused (too long...), the text stays
/// for another try. Usable once the page has been welcomed; while offline
/// after that, messages wait as pending and go out on reconnect.
#[component]
pub fn Composer(chat: Chat) -> impl IntoView {
    let draft = RwSignal::new(String::new());
    let input = NodeRef::<Textarea>::new();
    let send = move || {
        if chat.me().is_some() && chat.send(&draft.get_untracked()) {
            draft.set(String::new());
        }
        if let Some(input) = input.get_untracked() {
            let _ = input.focus();
        }
    };
    view! {
        <form
            class="composer"
            aria-label="Send a message"
            on:submit=move |ev| {
                ev.prevent_default();
                send();
            }
        >
            <label for="message-input" class="visually-hidden">
                "Message"
            </label>
            <textarea
                id="message-input"
                placeholder="Write a message"
                aria-describedby="message-remaining"
                node_ref=input
                bind:value=draft
                on:input=move |ev| chat.draft_changed(&event_target_value(&ev))
                on:keydown=enter
            ></textarea>
            <button type="submit" disabled=move || chat.me().is_none()>
                "Send"
            </button>
            <p id="message-remaining" class="remaining">
                {move || remaining(&draft.read())}
            </p>
        </form>
    }
}

/// Enter submits the form, as the Send button does; Shift+Enter starts a
/// new line. Not while an input method is composing: its Enter picks a word.
fn enter(ev: KeyboardEvent) {
    if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
        ev.prevent_default();
        let form = event_target::<leptos::web_sys::HtmlTextAreaElement>(&ev).form();
        if let Some(form) = form {
            let _ = form.request_submit();
        }
    }
}

/// How many characters `draft` may still grow by, once that is worth
/// saying; or how many it is over the limit.
fn remaining(draft: &str) -> Option<String> {
    let used = draft.trim().chars().count();
    let (count, state) = match MESSAGE_MAX_CHARS.checked_sub(used) {
        Some(left) if left > SHOW_REMAINING => return None,
        Some(left) => (left, "left"),
        None => (used - MESSAGE_MAX_CHARS, "too many"),
    };
    let plural = if count == 1 { "" } else { "s" };
    Some(format!("{count} character{plural} {state}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_remaining_characters_show_only_near_the_limit() {
        assert_eq!(
            remaining(&"a".repeat(MESSAGE_MAX_CHARS - SHOW_REMAINING - 1)),
            None
        );
        assert_eq!(
            remaining(&"a".repeat(MESSAGE_MAX_CHARS - SHOW_REMAINING)),
            Some(format!("{SHOW_REMAINING} characters left"))
        );
        assert_eq!(
            remaining(&"é".repeat(MESSAGE_MAX_CHARS - 1)),
            Some("1 character left".to_owned())
        );
        assert_eq!(
            remaining(&format!("  {}  ", "a".repeat(MESSAGE_MAX_CHARS + 3))),
            Some("3 characters too many".to_owned())
        );
        assert_eq!(
            remaining(&"a".repeat(MESSAGE_MAX_CHARS + 1)),
            Some("1 character too many".to_owned())
        );
    }
}
