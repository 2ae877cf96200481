use leptos::prelude::*;

/// The last problem worth telling the user about (a refused nickname, a
/// message too long, an error from the server). Screen readers announce it.
#[component]
pub fn Notice(notice: ReadSignal<Option<String>>) -> impl IntoView {
    view! {
        <p class="notice" role="alert">
            {move || notice.get()}
        </p>
    }
}
