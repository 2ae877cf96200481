use leptos::prelude::*;

use crate::chat::ConnectionStatus;

/// "Connecting…", "Online" or "Offline", in words; the dot's colour only
/// repeats what the words say.
#[component]
pub fn ConnectionIndicator(status: ReadSignal<ConnectionStatus>) -> impl IntoView {
    view! {
        <p class="connection" role="status" data-state=move || status.get().as_str()>
            <span class="connection-dot" aria-hidden="true"></span>
            <span class="connection-label">{move || status.get().label()}</span>
        </p>
    }
}
