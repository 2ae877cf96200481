use leptos::prelude::*;

use crate::chat::Chat;

/// Who is here: "N online", everyone the page knows of (this page's own
/// entry marked "(you)"), and "and M more" when the server did not list
/// everyone. Each part is a string or a plain list: every distinct view
/// type costs the page's wasm.
#[component]
pub fn OnlineList(chat: Chat) -> impl IntoView {
    let unlisted =
        move || chat.with(|state| state.online.saturating_sub(state.people.len() as u64));
    view! {
        <section id="online" popover="auto" aria-label="Online">
            <h2>{move || format!("{} online", chat.online())}</h2>
            // Not keyed: a keyed list costs the page's wasm about 5 KiB, and
            // this one is short.
            <ul>
                {move || {
                    let me = chat.me();
                    chat.people()
                        .into_iter()
                        .map(|person| {
                            let you = if Some(person.id) == me { " (you)" } else { "" };
                            view! {
                                <li>
                                    <bdi>{person.nickname}</bdi>
                                    {you}
                                </li>
                            }
                        })
                        .collect::<Vec<_>>()
                }}
            </ul>
            <p class="more">
                {move || {
                    let unlisted = unlisted();
                    (unlisted > 0).then(|| format!("and {unlisted} more"))
                }}
            </p>
        </section>
    }
}
