//! Parley's user interface and the wire protocol it shares with the server.
//!
//! - [`protocol`]: the JSON frames both sides speak, and their validation.
//! - [`chat`]: the page's state, and the only code that changes it.
//! - [`backoff`]: when to try connecting again.
//! - `socket` (browser only): the WebSocket to `/ws`, and the clock, timers
//!   and random ids the chat needs.
//! - [`components`]: what the user sees, one component per part of the page.

pub mod backoff;
pub mod chat;
pub mod components;
pub mod protocol;
#[cfg(feature = "hydrate")]
mod socket;

use leptos::prelude::*;

use crate::components::{
    Composer, ConnectionIndicator, MessageList, NicknameForm, Notice, OnlineList, TypingIndicator,
};

/// The HTML document the server renders around [`App`].
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let stylesheet = format!("/{}/{}.css", options.site_pkg_dir, options.output_name);
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="color-scheme" content="light dark"/>
                <title>"Parley"</title>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <link rel="stylesheet" href=stylesheet/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The chat page. `data-connection` on `<main>` mirrors the connection
/// indicator; it can only become `online` once the page is hydrated and the
/// server has welcomed its socket, which makes it the signal that the page
/// is ready to use.
#[component]
pub fn App() -> impl IntoView {
    #[cfg(feature = "hydrate")]
    let chat = socket::connect();
    // The server renders the page as it looks before connecting.
    #[cfg(not(feature = "hydrate"))]
    let chat = chat::Chat::new(None);
    view! {
        <main class="chat" data-connection=move || chat.status().as_str()>
            <header class="chat-header">
                <h1>"Parley"</h1>
                <ConnectionIndicator chat/>
            </header>
            <NicknameForm chat/>
            <div class="room">
                <MessageList chat/>
                <OnlineList chat/>
            </div>
            <TypingIndicator chat/>
            <Notice chat/>
            <Composer chat/>
        </main>
    }
}
