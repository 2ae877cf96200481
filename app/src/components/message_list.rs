use std::{cell::Cell, rc::Rc};

#[cfg(not(feature = "hydrate"))]
use leptos::either::Either;
use leptos::{html::Ul, prelude::*};

use crate::{
    chat::{Chat, Delivery, Entry, Line},
    display::{self, Clock, Facts, Moment, Piece, Places},
};

/// Lines from the bottom within which the reader counts as at the bottom,
/// in pixels: about two lines.
const AT_BOTTOM_PX: i32 = 48;

/// The conversation: a `<ul>` with one `<li>` per message, reading
/// `nickname: text` and its local time, and quiet system lines for joins,
/// leaves and renames. Text is always inserted as text, never as HTML
/// (only `http(s)` URLs become links), inside `<bdi>` so right-to-left text
/// cannot reorder what is around it. One person's messages a few minutes
/// apart group under one name; a new day gets a separator.
///
/// It follows new lines only while the reader is at the bottom. Scrolled
/// up, messages from others are counted on a "new messages" button, and a
/// divider marks the first of them. Older messages page in above the first
/// line when the list is scrolled to its top, or with the button there.
/// New messages from others are announced politely by a live region of
/// their own: the list itself is redrawn in place (trimmed at the top,
/// paged in above), and as a live region would be announced whole.
#[component]
pub fn MessageList(chat: Chat) -> impl IntoView {
    let list = NodeRef::<Ul>::new();
    // Keeps the reader at the bottom while they are there; otherwise keeps
    // the lines in view where they were when the list grew above them
    // (older lines paged in: the list is redrawn in place, so the browser's
    // scroll anchoring cannot). Measured in the next animation frame, once
    // the list is redrawn: effects run in no promised order.
    let seen = Rc::new(Cell::new((None::<u64>, 0)));
    Effect::new(move || {
        let (last, follow) =
            chat.with(|state| (state.entries.last().map(|entry| entry.key), state.at_bottom));
        let seen = seen.clone();
        request_animation_frame(move || {
            let Some(list) = list.get_untracked() else {
                return;
            };
            let height = list.scroll_height();
            match seen.replace((last, height)) {
                // At the bottom it stays there, whatever changed: a line
                // that shrinks (a message acknowledged) included.
                _ if follow => list.set_scroll_top(height),
                (was_last, was_height) if was_last == last => {
                    list.set_scroll_top(list.scroll_top() + height - was_height);
                }
                _ => {}
            }
        });
    });
    let on_scroll = move |_| {
        let Some(list) = list.get() else {
            return;
        };
        if list.scroll_top() == 0 {
            chat.load_older();
        }
        chat.scrolled(
            list.scroll_height() - list.scroll_top() - list.client_height() <= AT_BOTTOM_PX,
        );
    };
    let jump = move |_| {
        if let Some(list) = list.get() {
            list.set_scroll_top(list.scroll_height());
            let _ = list.focus();
        }
    };
    view! {
        <section class="conversation" aria-label="Messages">
            <ul
                class="messages"
                aria-label="Messages"
                tabindex="0"
                node_ref=list
                on:scroll=on_scroll
            >
                // One reactive attribute, and the stylesheet shows the button
                // or the beginning: each reactive attribute costs the page's
                // wasm.
                <li class="history" data-beginning=move || chat.beginning()>
                    <button type="button" on:click=move |_| chat.load_older()>
                        "Load older messages"
                    </button>
                    <span>"Beginning of the conversation"</span>
                </li>
                // Not keyed: a keyed list (For) alone costs the page's wasm
                // about 5 KiB; redrawn in place, a line whose content is
                // unchanged leaves its DOM untouched.
                {move || {
                    let (divider, entries) =
                        chat.with(|state| (state.divider, state.entries.clone()));
                    let clock = Clock::new();
                    let mut places = Places::default();
                    entries
                        .iter()
                        .map(|entry| {
                            let at = entry.sent_at().and_then(|at| clock.moment(at));
                            let place = places.next(Facts {
                                sender: entry.sender(),
                                at: at.as_ref(),
                            });
                            let day = at.as_ref().filter(|_| place.new_day).map(|at| at.date.clone());
                            let unread = Some(entry.key) == divider;
                            line(chat, shown(entry.clone(), at, place.grouped, day, unread))
                        })
                        .collect::<Vec<_>>()
                }}
            </ul>
            // Shown by the stylesheet only with a label: one reactive part.
            <button class="jump" on:click=jump>
                {move || match chat.with(|state| state.unread) {
                    0 => None,
                    1 => Some("1 new message".to_owned()),
                    count => Some(format!("{count} new messages")),
                }}
            </button>
            <p class="visually-hidden" aria-live="polite">
                {move || chat.with(|state| state.announcement.clone())}
            </p>
        </section>
    }
}

/// What one line shows, worked out once for both of its renderings: the
/// server's view, and the browser's DOM (see [`draw`]).
#[derive(Clone)]
struct Shown {
    /// `message` or `system`, then `mine`, `grouped` and the sender's
    /// colour (`h0` to `h23`) if they apply.
    class: String,
    /// Where an own message stands (`data-state`).
    state: Option<&'static str>,
    /// The divider goes above this line.
    unread: bool,
    /// The day's heading, above the first line of a day.
    day: Option<String>,
    nickname: String,
    separator: &'static str,
    text: String,
    /// The text may hold links (a message's; a rename's new name may not).
    links: bool,
    /// `sent_at`, as the `<time>`'s `datetime`, and how it reads.
    time: Option<(String, Moment)>,
    /// "sending…" or "not sent".
    note: Option<&'static str>,
    /// A failed own message's `client_id`, for its Retry button.
    retry: Option<String>,
}

fn shown(
    entry: Entry,
    at: Option<Moment>,
    grouped: bool,
    day: Option<String>,
    unread: bool,
) -> Shown {
    let mut class = "message";
    let mut separator = ": ";
    let mut own = None;
    let hue = entry
        .sender()
        .map_or("", |(_, nickname)| display::hue(nickname));
    let time = match (entry.sent_at(), at) {
        (Some(sent_at), Some(at)) => Some((sent_at.to_owned(), at)),
        _ => None,
    };
    let (nickname, text) = match entry.line {
        Line::Theirs(message) => (message.nickname, message.text),
        Line::Mine(message) => {
            own = Some((message.delivery, message.client_id));
            (message.nickname, message.text)
        }
        Line::Joined(nickname) => {
            (class, separator) = ("system", " joined");
            (nickname, String::new())
        }
        Line::Left(nickname) => {
            (class, separator) = ("system", " left");
            (nickname, String::new())
        }
        Line::Renamed { previous, nickname } => {
            (class, separator) = ("system", " is now ");
            (previous, nickname)
        }
    };
    let state = own.as_ref().map(|(delivery, _)| delivery.as_str());
    let note = match &own {
        Some((Delivery::Pending { .. }, _)) => Some("sending…"),
        Some((Delivery::Failed { .. }, _)) => Some("not sent"),
        _ => None,
    };
    let retry = own
        .filter(|(delivery, _)| matches!(delivery, Delivery::Failed { .. }))
        .map(|(_, client_id)| client_id);
    let mut classes = class.to_owned();
    if state.is_some() {
        classes.push_str(" mine");
    }
    if grouped {
        classes.push_str(" grouped");
    }
    classes.push_str(hue);
    Shown {
        class: classes,
        state,
        unread,
        day,
        nickname,
        separator,
        links: class == "message",
        text,
        time,
        note,
        retry,
    }
}

/// One line as the server renders it. The browser draws the same markup
/// with [`draw`]: views of every part of a line cost the page's wasm about
/// 4 KiB.
#[cfg(not(feature = "hydrate"))]
fn line(_chat: Chat, shown: Shown) -> impl IntoView {
    let text = if shown.links {
        display::pieces(&shown.text)
    } else {
        vec![Piece::Text(&shown.text)]
    }
    .into_iter()
    .map(|piece| match piece {
        Piece::Text(run) => Either::Left(run.to_owned()),
        Piece::Link(url) => Either::Right(view! {
            <a href=url.to_owned() target="_blank" rel="noopener noreferrer">
                {url.to_owned()}
            </a>
        }),
    })
    .collect::<Vec<_>>();
    let time = shown.time.map(|(sent_at, at)| {
        view! { <time datetime=sent_at title=at.full>{at.time}</time> }
    });
    let retry = shown.retry.as_ref().map(|_| {
        view! {
            <button type="button" class="retry" disabled>
                "Retry"
            </button>
        }
    });
    view! {
        <li
            class=shown.class
            data-state=shown.state
            data-unread=shown.unread
        >
            <span class="day">{shown.day}</span>
            <span class="says">
                <bdi class="nickname">{shown.nickname}</bdi>
                <span class="sep">{shown.separator}</span>
                <bdi class="text">{text}</bdi>
            </span>
            {time}
            {shown.note.map(|note| view! { <span class="state">{note}</span> })}
            {retry}
        </li>
    }
}

/// One line in the browser: an `<li>` that [`draw`] fills.
#[cfg(feature = "hydrate")]
fn line(chat: Chat, shown: Shown) -> impl IntoView {
    view! { <li use:draw=(chat, shown, chat.is_online())></li> }
}

/// Draws `shown` into its `<li>` as DOM nodes, the markup the server
/// renders: text is always a text node, links are `<a>` elements, nothing
/// is parsed as HTML. Left alone while it shows the same (the list redraws
/// every line in place on any change), which it remembers on the element.
#[cfg(feature = "hydrate")]
fn draw(li: leptos::web_sys::Element, (chat, shown, online): (Chat, Shown, bool)) {
    use js_sys::Reflect;
    use leptos::web_sys::{Element, Node};

    // What it shows, as one string to compare with what it showed.
    let mut drawn = String::new();
    for part in [
        &*shown.class,
        shown.state.unwrap_or_default(),
        if shown.unread { "u" } else { "" },
        shown.day.as_deref().unwrap_or_default(),
        &shown.nickname,
        shown.separator,
        &shown.text,
        // The full date holds the time; the state decides the note.
        shown.time.as_ref().map_or("", |(_, at)| &at.full),
        shown.retry.as_deref().unwrap_or_default(),
        if online { "o" } else { "" },
    ] {
        drawn.push_str(part);
        drawn.push('\u{1}');
    }
    let key = wasm_bindgen::JsValue::from_str("parleyDrawn");
    if Reflect::get(&li, &key)
        .ok()
        .and_then(|was| was.as_string())
        .as_ref()
        == Some(&drawn)
    {
        return;
    }
    let _ = Reflect::set(&li, &key, &drawn.into());

    let document = document();
    let element = |tag: &str, class: &str, text: &str| -> Element {
        let element = document.create_element(tag).unwrap_or_else(|_| li.clone());
        if !class.is_empty() {
            let _ = element.set_attribute("class", class);
        }
        if !text.is_empty() {
            element.set_text_content(Some(text));
        }
        element
    };
    let set = |element: &Element, name: &str, value: Option<&str>| {
        let _ = match value {
            Some(value) => element.set_attribute(name, value),
            None => element.remove_attribute(name),
        };
    };
    let _ = li.set_attribute("class", &shown.class);
    set(&li, "data-state", shown.state);
    set(&li, "data-unread", shown.unread.then_some(""));
    li.set_text_content(None);

    let says = element("span", "says", "");
    let text = element("bdi", "text", "");
    let pieces = if shown.links {
        display::pieces(&shown.text)
    } else {
        vec![Piece::Text(&shown.text)]
    };
    for piece in pieces {
        let node: Node = match piece {
            Piece::Text(run) => document.create_text_node(run).into(),
            Piece::Link(url) => {
                let link = element("a", "", url);
                for (name, value) in [
                    ("href", url),
                    ("target", "_blank"),
                    ("rel", "noopener noreferrer"),
                ] {
                    set(&link, name, Some(value));
                }
                link.into()
            }
        };
        let _ = text.append_child(&node);
    }
    for part in [
        element("bdi", "nickname", &shown.nickname),
        element("span", "sep", shown.separator),
        text,
    ] {
        let _ = says.append_child(&part);
    }
    let mut parts = vec![
        element("span", "day", shown.day.as_deref().unwrap_or_default()),
        says,
    ];
    if let Some((sent_at, at)) = &shown.time {
        let time = element("time", "", &at.time);
        set(&time, "datetime", Some(sent_at));
        set(&time, "title", Some(&at.full));
        parts.push(time);
    }
    if let Some(note) = shown.note {
        parts.push(element("span", "state", note));
    }
    if let Some(client_id) = shown.retry {
        let retry = element("button", "retry", "Retry");
        set(&retry, "type", Some("button"));
        set(&retry, "disabled", (!online).then_some(""));
        // The closure type the page already has for DOM events.
        let again = wasm_bindgen::closure::Closure::wrap(
            Box::new(move |_| chat.retry(&client_id)) as Box<dyn FnMut(leptos::web_sys::Event)>
        );
        let _ = Reflect::set(&retry, &"onclick".into(), &again.into_js_value());
        parts.push(retry);
    }
    for part in parts {
        let _ = li.append_child(&part);
    }
}
