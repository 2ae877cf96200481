use leptos::{
    ev::{MouseEvent, SubmitEvent},
    prelude::*,
};

use crate::{
    chat::{Chat, State},
    protocol::RoomName,
};

/// The rooms from the latest `rooms` frame, busiest first, each a link to
/// its page with how many people are online there; the current one is
/// marked `aria-current`. Before the first frame (and in the server's
/// rendering) it lists `general` and the current room. A plain click
/// switches rooms over the same connection, without loading a page, and so
/// do back and forward; the form joins (or creates) a room by name.
#[component]
pub fn RoomList(chat: Chat) -> impl IntoView {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::{closure::Closure, JsCast};
        // The event type every Leptos handler has: no glue of its own. (The
        // web_sys bindings used here, History and Window, are Leptos' own.)
        let popstate = Closure::wrap(
            Box::new(move |_| follow(chat)) as Box<dyn FnMut(leptos::web_sys::Event)>
        );
        let _ = js_sys::Reflect::set(
            &window(),
            &"onpopstate".into(),
            popstate.into_js_value().unchecked_ref(),
        );
    }
    let draft = RwSignal::new(String::new());
    // Why the name typed is not a room's; empty when it is.
    let problem = RwSignal::new(String::new());
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        match RoomName::parse(draft.get_untracked().trim()) {
            Ok(room) => {
                draft.set(String::new());
                problem.set(String::new());
                go(chat, &room.path());
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
                    bind:value=draft
                />
                <p class="room-problem">{move || problem.get()}</p>
            </form>
            // One handler for every link; not keyed, like the other lists:
            // short, and redrawn in place.
            <ul on:click=move |ev: MouseEvent| clicked(chat, ev)>{move || chat.with(links)}</ul>
        </nav>
    }
}

/// The links: the rooms of the latest `rooms` frame with their counts,
/// then `general` and the current room if they are not among them.
fn links(state: &State) -> Vec<impl IntoView> {
    let mut rooms: Vec<(String, String)> = state
        .rooms
        .iter()
        .map(|room| (room.name.clone(), room.online.to_string()))
        .collect();
    for room in [RoomName::general(), state.room.clone()] {
        if !rooms.iter().any(|(name, _)| name == room.as_str()) {
            rooms.push((room.to_string(), String::new()));
        }
    }
    rooms
        .into_iter()
        .filter_map(|(name, online)| {
            let room = RoomName::parse(&name).ok()?;
            let current = (room == state.room).then_some("page");
            Some(view! {
                <li>
                    <a href=room.path() aria-current=current data-online=online>
                        {"#".to_owned() + &name}
                    </a>
                </li>
            })
        })
        .collect()
}

/// A plain click (main button, no modifier key) on a room's link shows
/// that room here; other clicks do what the browser does (a new tab...).
#[cfg_attr(not(feature = "hydrate"), allow(unused_variables))]
fn clicked(chat: Chat, ev: MouseEvent) {
    #[cfg(feature = "hydrate")]
    {
        use js_sys::Reflect;

        let get = |key: &str| Reflect::get(&ev, &key.into()).unwrap_or_default();
        if ["button", "ctrlKey", "metaKey", "shiftKey", "altKey"]
            .into_iter()
            .any(|key| get(key).is_truthy())
        {
            return;
        }
        // A link's path; the list around the links has none.
        let path = ev
            .target()
            .and_then(|link| Reflect::get(&link, &"pathname".into()).ok())
            .and_then(|path| path.as_string());
        if let Some(path) = path {
            ev.prevent_default();
            go(chat, &path);
        }
    }
}

/// Makes `path` the page's, in a new history entry, and shows its room;
/// on a narrow screen, where the rooms are a popover, it closes.
#[cfg_attr(not(feature = "hydrate"), allow(unused_variables))]
fn go(chat: Chat, path: &str) {
    #[cfg(feature = "hydrate")]
    if let Ok(history) = window().history() {
        let _ = history.push_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(path));
        follow(chat);
        if let Some(rooms) = document().get_element_by_id("rooms") {
            super::call(&rooms, "hidePopover");
        }
    }
}

/// Shows the room of the page's path, its name in the document's title.
#[cfg(feature = "hydrate")]
fn follow(chat: Chat) {
    use js_sys::Reflect;

    let path = Reflect::get(&window(), &"location".into())
        .and_then(|location| Reflect::get(&location, &"pathname".into()))
        .ok()
        .and_then(|path| path.as_string());
    if let Some(room) = path.as_deref().and_then(RoomName::from_path) {
        let title = crate::title(&room);
        if chat.switch_room(room) {
            let _ = Reflect::set(&document(), &"title".into(), &title.into());
        }
    }
}
