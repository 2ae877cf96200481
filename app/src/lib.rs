//! Parley's user interface and the wire protocol it shares with the server.
//!
//! - [`protocol`]: the JSON frames both sides speak, and their validation.
//! - [`chat`]: the page's state, and the only code that changes it.
//! - [`backoff`]: when to try connecting again.
//! - `socket` (browser only): the WebSocket to `/ws`, and the clock, timers
//!   and random ids the chat needs.
//! - [`display`]: how the message list reads (links, groups, days,
//!   nickname colours), pure and tested without a browser.
//! - [`components`]: what the user sees, one component per part of the page.

pub mod backoff;
pub mod chat;
pub mod components;
pub mod display;
pub mod protocol;
#[cfg(feature = "hydrate")]
mod socket;

use leptos::{either::Either, prelude::*};
use leptos_meta::{provide_meta_context, MetaTags, Title};
use leptos_router::{
    components::{FlatRoutes, Route, Router, A},
    hooks::use_location,
    path,
};

use crate::{
    chat::Chat,
    components::{
        Composer, ConnectionIndicator, MessageList, NicknameForm, Notice, OnlineList, RoomList,
        TypingIndicator,
    },
    protocol::{HistoryPage, RoomName, ServerFrame},
};

/// The newest stored messages, for the server to render the page with: it
/// provides one as context before rendering [`shell`]. Without one the page
/// starts empty, at the beginning of the conversation.
#[derive(Clone, Debug, Default)]
pub struct FirstPage(pub HistoryPage);

/// The id of the `<script>` in which the page carries its first page to
/// the browser, so that hydration starts from the messages the server
/// rendered.
pub const FIRST_PAGE_ID: &str = "parley-history";

/// Where this browser keeps the chosen theme, `dark` or `light`, in
/// `localStorage`.
pub const THEME_KEY: &str = "parley-theme";

/// The page's own script, run before anything is painted, so it never
/// waits for the wasm:
/// - the theme: the one this browser chose ([`THEME_KEY`]), so the other
///   never flashes first; without a choice the stylesheet follows
///   `prefers-color-scheme`. It sets the "Dark theme" switch to the theme
///   shown, and a change of it sets and remembers the choice (on
///   `<html data-theme>`, which the stylesheet follows).
/// - the message list scrolled to its newest line as soon as it is parsed.
///
/// Whatever it cannot do (storage refused) the page does without. The
/// page budget counts it.
pub const EARLY_SCRIPT: &str = concat!(
    r#"(function(){var s=document.documentElement.dataset,k="parley-theme";"#,
    r#"try{var t=localStorage[k];if(t)s.theme=t}catch(e){}"#,
    r#"addEventListener("DOMContentLoaded",function(){"#,
    r#"var l=document.querySelector(".messages"),c=document.getElementById("theme-dark");"#,
    r#"if(l)l.scrollTop=l.scrollHeight;if(c){"#,
    r#"c.checked=s.theme?s.theme=="dark":matchMedia("(prefers-color-scheme: dark)").matches;"#,
    r#"c.onchange=function(){s.theme=c.checked?"dark":"light";"#,
    r#"try{localStorage[k]=s.theme}catch(e){}}}})})()"#,
);

/// The first page the server renders with.
pub fn first_page() -> HistoryPage {
    use_context::<FirstPage>().map_or_else(
        || HistoryPage {
            room: "general".into(),
            messages: Vec::new(),
            beginning: true,
        },
        |FirstPage(page)| page,
    )
}

/// The document's title in `room`: `#rust · Parley`.
pub fn title(room: &RoomName) -> String {
    "#".to_owned() + room.as_str() + " · Parley"
}

/// `page` as a `history` frame, safe inside `<script>`: JSON never needs a
/// raw `<`, and without one no message can close the element (`</script>`)
/// or open a comment.
pub fn first_page_script(page: HistoryPage) -> String {
    ServerFrame::History(page).encode().replace('<', "\\u003c")
}

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
                <script inner_html=EARLY_SCRIPT></script>
                <link rel="icon" href="/favicon.svg" type="image/svg+xml"/>
                <link rel="stylesheet" href=stylesheet/>
                <script
                    type="application/json"
                    id=FIRST_PAGE_ID
                    inner_html=first_page_script(first_page())
                ></script>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The page: the chat at `/` (the room `general`) and `/r/<room>`, one
/// [`Chat`] and one WebSocket for the page's life, whatever room is shown.
///
/// The routes decide what is particular to an address: the document's
/// title, or `NotFound` for anything that is not a room's. The chat
/// itself sits beside them, inside the router (its links are `<A>`s and it
/// follows the location), so a room switch keeps every part of the page
/// that is not the room's, and the routes' views, which the router erases
/// to one type, stay small.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    #[cfg(feature = "hydrate")]
    let chat = socket::connect();
    // The server renders the page as it looks before connecting, with the
    // newest messages; the browser starts from the same page.
    #[cfg(not(feature = "hydrate"))]
    let chat = Chat::from_state(None, chat::State::first(first_page(), None));
    provide_context(chat);
    view! {
        <Router>
            <ChatPage/>
            <FlatRoutes fallback=NotFound>
                <Route path=path!("/") view=RoomTitle/>
                <Route path=path!("/r/:room") view=RoomTitle/>
            </FlatRoutes>
        </Router>
    }
}

/// The room shown at the page's address; `None` where none is.
fn current_room() -> Memo<Option<RoomName>> {
    let location = use_location();
    Memo::new(move |_| RoomName::from_path(&location.pathname.read()))
}

/// A room's route: its name in the document's title; a name that is not a
/// room's is `NotFound`.
#[component]
fn RoomTitle() -> impl IntoView {
    let room = current_room();
    move || match room.get() {
        Some(room) => Either::Left(view! { <Title text=title(&room)/> }),
        None => Either::Right(NotFound),
    }
}

/// The chat: a header, the rooms, the conversation and who is online,
/// side by side on wide screens. On narrow ones the rooms and the online
/// list are popovers, opened by two buttons in the header: the browser
/// opens, closes (Escape, a tap outside) and announces them, with no code
/// in the page's wasm.
///
/// It shows the room at the page's address: following a link to another
/// room (or back and forward) switches the chat over the same connection.
/// Where the address is no room's, the routes say so instead.
///
/// `data-connection` on `<main>` mirrors the connection indicator; it can
/// only become `online` once the page is hydrated and the server has
/// welcomed its socket, which makes it the signal that the page is ready
/// to use.
#[component]
fn ChatPage() -> impl IntoView {
    let chat = expect_context::<Chat>();
    let room = current_room();
    Effect::new(move |_| {
        if let Some(room) = room.get() {
            chat.switch_room(room);
        }
    });
    // Hydrated as the server rendered it, in UTC; the reader's own time
    // zone from now on.
    Effect::new(move |_| chat.localize());
    let page = move || {
        view! {
            <a class="skip-link" href="#message-input" on:click=skip_to_message_box>
                "Skip to the message box"
            </a>
            <div class="chat">
                <header class="chat-header">
                    <h1>
                        "Parley "
                        <span class="current-room">"#" {move || chat.room().to_string()}</span>
                    </h1>
                    <ConnectionIndicator chat/>
                    // Worked by the page's early script: see EARLY_SCRIPT.
                    <label class="theme-toggle">
                        <input type="checkbox" role="switch" id="theme-dark"/>
                        "Dark theme"
                    </label>
                    <div class="panel-toggles">
                        <button popovertarget="rooms">"Rooms"</button>
                        <button popovertarget="online">"People"</button>
                    </div>
                </header>
                <RoomList chat/>
                <main class="room" data-connection=move || chat.status().as_str()>
                    <NicknameForm chat/>
                    <MessageList chat/>
                    <TypingIndicator chat/>
                    <Notice chat/>
                    <Composer chat/>
                </main>
                <OnlineList chat/>
            </div>
        }
    };
    view! { <Show when=move || room.with(Option::is_some)>{page}</Show> }
}

/// The skip link moves the focus to the message box, as following a link
/// to it does without the router, which would otherwise take the click
/// for a navigation.
fn skip_to_message_box(ev: leptos::ev::MouseEvent) {
    if let Some(input) = document().get_element_by_id("message-input") {
        ev.prevent_default();
        use leptos::wasm_bindgen::JsCast;
        let _ = input
            .unchecked_into::<leptos::web_sys::HtmlElement>()
            .focus();
    }
}

/// Any address that is not a room's: the rule for room names, and a way
/// back. The server sends it with `404`.
#[component]
fn NotFound() -> impl IntoView {
    view! {
        <Title text="No such room · Parley"/>
        <main class="not-found">
            <h1>"No such room"</h1>
            <p>
                "There is no room here. Room names are 1 to "
                {protocol::ROOM_NAME_MAX_LEN}
                " of a-z, 0-9, - and _."
            </p>
            <p>
                <A href="/">"Go to #general"</A>
            </p>
        </main>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ChatMessage;

    #[test]
    fn the_early_script_keeps_the_theme_under_its_key() {
        assert!(EARLY_SCRIPT.contains(&format!("k=\"{THEME_KEY}\"")));
        assert!(
            !EARLY_SCRIPT.contains('<'),
            "nothing that could end its element"
        );
    }

    #[test]
    fn the_embedded_first_page_cannot_end_its_script_element() {
        let text = "</script><script>alert(1)</script><!-- <b>";
        let page = HistoryPage {
            room: "general".into(),
            messages: vec![ChatMessage {
                room: "general".into(),
                id: 3,
                sent_at: "2026-11-25T14:00:00Z".into(),
                from: 1,
                nickname: "</SCRIPT>".into(),
                text: text.into(),
            }],
            beginning: true,
        };
        let script = first_page_script(page.clone());
        assert!(!script.contains('<'), "{script}");
        assert!(script.contains(r"\u003c/script>"));
        assert_eq!(
            ServerFrame::decode(&script),
            Some(ServerFrame::History(page)),
            "the same page, read back as JSON"
        );
    }
}
