use leptos::{html::Ul, prelude::*};

use crate::chat::Entry;

/// The conversation: a `<ul>` with one `<li>` per message, `nickname: text`.
/// Text is always inserted as text, never as HTML. Keeps the newest message
/// in view.
#[component]
pub fn MessageList(messages: RwSignal<Vec<Entry>>) -> impl IntoView {
    let list = NodeRef::<Ul>::new();
    Effect::new(move || {
        messages.track();
        if let Some(list) = list.get() {
            list.set_scroll_top(list.scroll_height());
        }
    });
    view! {
        <ul class="messages" aria-label="Messages" aria-live="polite" node_ref=list>
            <For
                each=move || messages.get()
                key=|entry| entry.id
                children=|entry| {
                    view! {
                        <li class="message" class:mine=entry.mine>
                            <span class="nickname">{entry.nickname}</span>
                            ": "
                            <span class="text">{entry.text}</span>
                        </li>
                    }
                }
            />
        </ul>
    }
}
