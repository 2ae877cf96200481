use leptos::prelude::*;

use crate::chat::Chat;

/// Who is here: "N online", everyone the page knows of (this page's own
/// entry marked "(you)"), and "and M more" when the server did not list
/// everyone.
#[component]
pub fn OnlineList(chat: Chat) -> impl IntoView {
    let unlisted =
        move || chat.with(|state| state.online.saturating_sub(state.people.len() as u64));
    view! {
        <section class="online" aria-label="Online">
            <h2 data-testid="online-count">{move || chat.online()} " online"</h2>
            <ul>
                <For
                    each=move || chat.people()
                    key=|person| (person.id, person.nickname.clone())
                    children=move |person| {
                        let you = move || chat.me() == Some(person.id);
                        view! {
                            <li>
                                <bdi>{person.nickname}</bdi>
                                {move || you().then(|| view! { <span class="you">" (you)"</span> })}
                            </li>
                        }
                    }
                />
            </ul>
            {move || {
                let unlisted = unlisted();
                (unlisted > 0).then(|| view! { <p class="more">"and " {unlisted} " more"</p> })
            }}
        </section>
    }
}
