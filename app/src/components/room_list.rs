use leptos::{ev::SubmitEvent, prelude::*};
use leptos_router::{components::A, hooks::use_navigate, NavigateOptions};

use crate::{chat::Chat, protocol::RoomName};

/// The rooms from the latest `rooms` frame, busiest first, each a link to
/// its page with how many people are online there; the current one is
/// marked `aria-current` (by the router's `<A>`). Before the first frame
/// (and in the server's rendering) it lists `general` and the current room.
/// Following a link switches rooms over the same connection, and so do back
/// and forward; the form joins (or creates) a room by name. On a narrow
/// screen, where the rooms are a popover, picking one closes it.
#[component]
pub fn RoomList(chat: Chat) -> impl IntoView {
    let draft = RwSignal::new(String::new());
    // Why the name typed is not a room's; empty when it is.
    let problem = RwSignal::new(String::new());
    let navigate = use_navigate();
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        match RoomName::parse(draft.get_untracked().trim()) {
            Ok(room) => {
                draft.set(String::new());
                problem.set(String::new());
                navigate(&room.path(), NavigateOptions::default());
                close_popover();
            }
            Err(err) => problem.set(err.to_string()),
        }
    };
    view! {
        <nav id="rooms" popover="auto" aria-label="Rooms">
            <h2>"Rooms"</h2>
            // Above the list, which grows as rooms open: nothing below it to
            // push down.
            <form class="join-room" on:submit=on_submit>
                <input
                    name="room"
                    aria-label="Join or create a room"
                    placeholder="Join or create a room"
                    autocomplete="off"
                    aria-invalid=move || problem.with(|problem| !problem.is_empty()).then_some("true")
                    aria-describedby="room-problem"
                    bind:value=draft
                />
                <p id="room-problem" class="room-problem" aria-live="polite">
                    {move || problem.get()}
                </p>
            </form>
            <ul>
                <For
                    each=move || chat.rooms(|rooms| rooms.links())
                    key=|(room, _)| room.clone()
                    let((room, _))
                >
                    <RoomLink room chat/>
                </For>
            </ul>
        </nav>
    }
}

/// A room's link, with how many are online there (none before the first
/// `rooms` frame).
#[component]
fn RoomLink(room: RoomName, chat: Chat) -> impl IntoView {
    let path = room.path();
    let name = "#".to_owned() + room.as_str();
    let online = move || {
        chat.rooms(|rooms| {
            rooms
                .list
                .iter()
                .find(|listed| listed.name == room.as_str())
                .map(|listed| listed.online.to_string())
        })
    };
    view! {
        <li on:click=|_| close_popover()>
            <A href=path exact=true scroll=false attr:data-online=online>
                {name}
            </A>
        </li>
    }
}

/// Closes the rooms' popover, where it is one (on a narrow screen).
fn close_popover() {
    #[cfg(feature = "hydrate")]
    if let Some(rooms) = document().get_element_by_id("rooms") {
        use leptos::wasm_bindgen::JsCast;
        let _ = rooms
            .unchecked_into::<leptos::web_sys::HtmlElement>()
            .hide_popover();
    }
}
