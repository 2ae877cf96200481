use leptos::prelude::*;

use crate::chat::Chat;

/// Who is here: "N online", everyone the page knows of (this page's own
/// entry marked "(you)"), and "and M more" when the server did not list
/// everyone. Keyed by person and name: a join adds one `<li>`, a rename
/// replaces one.
#[component]
pub fn OnlineList(chat: Chat) -> impl IntoView {
    let unlisted = move || chat.people(|people| people.unlisted());
    view! {
        <section id="online" popover="auto" aria-label="Online">
            <h2>{move || format!("{} online", chat.people(|people| people.online))}</h2>
            <ul>
                <For
                    each=move || chat.people(|people| people.people.clone())
                    key=|person| (person.id, person.nickname.clone())
                    let:person
                >
                    <li>
                        <bdi>{person.nickname}</bdi>
                        {move || (chat.me() == Some(person.id)).then_some(" (you)")}
                    </li>
                </For>
            </ul>
            <Show when=move || { unlisted() > 0 }>
                <p class="more">{move || format!("and {} more", unlisted())}</p>
            </Show>
        </section>
    }
}
