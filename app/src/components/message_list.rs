use leptos::{html::Ul, prelude::*};

use crate::chat::{Chat, Delivery, Entry, Line};

/// The conversation: a `<ul>` with one `<li>` per message, reading
/// `nickname: text`, then its local time, and quiet system lines for joins,
/// leaves and renames. Text is always inserted as text, never as HTML, and
/// inside `<bdi>` so right-to-left text cannot reorder what is around it.
/// Keeps the newest line in view. Older messages are paged in above the
/// first line when the list is scrolled to its top, or with the button there.
#[component]
pub fn MessageList(chat: Chat) -> impl IntoView {
    let list = NodeRef::<Ul>::new();
    // Follows a line appended at the end; otherwise keeps the lines in view
    // where they were when the list grew above them (older lines paged in:
    // the list is redrawn in place, so the browser's scroll anchoring
    // cannot). Measured in the next animation frame, once the list is
    // redrawn: effects run in no promised order.
    let seen = std::rc::Rc::new(std::cell::Cell::new((None::<u64>, 0)));
    Effect::new(move || {
        let last = chat.with(|state| state.entries.last().map(|entry| entry.key));
        let seen = seen.clone();
        request_animation_frame(move || {
            let Some(list) = list.get_untracked() else {
                return;
            };
            let height = list.scroll_height();
            match seen.replace((last, height)) {
                (was_last, was_height) if was_last == last => {
                    list.set_scroll_top(list.scroll_top() + height - was_height);
                }
                _ => list.set_scroll_top(height),
            }
        });
    });
    let at_top = move |_| {
        if list.get().is_some_and(|list| list.scroll_top() == 0) {
            chat.load_older();
        }
    };
    view! {
        <ul
            class="messages"
            aria-label="Messages"
            aria-live="polite"
            node_ref=list
            on:scroll=at_top
        >
            // One reactive attribute, and the stylesheet shows the button or
            // the beginning: each reactive attribute costs the page's wasm.
            <li class="history" data-beginning=move || chat.beginning()>
                <button type="button" on:click=move |_| chat.load_older()>
                    "Load older messages"
                </button>
                <span>"Beginning of the conversation"</span>
            </li>
            // Not keyed: a keyed list (For) alone costs the page's wasm about
            // 5 KiB; redrawn in place, a line whose content is unchanged
            // leaves its DOM untouched.
            {move || {
                let (utc, entries) = chat.with(|state| (state.first_paint, state.entries.clone()));
                entries.into_iter().map(|entry| line(chat, entry, utc)).collect::<Vec<_>>()
            }}
        </ul>
    }
}

/// One line, a message or a join, leave or rename: all of them share one
/// view type, since each distinct one costs the page's wasm kilobytes, and
/// the list redraws lines in place.
fn line(chat: Chat, entry: Entry, utc: bool) -> impl IntoView {
    let mut class = "message";
    let mut separator = ": ";
    let mut sent_at = None;
    let mut own = None;
    let (first, second) = match entry.line {
        Line::Theirs(message) => {
            sent_at = Some(message.sent_at);
            (message.nickname, message.text)
        }
        Line::Mine(message) => {
            if let Delivery::Sent { sent_at: at, .. } = &message.delivery {
                sent_at = Some(at.clone());
            }
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
        .map(|(_, client_id)| {
            view! {
                <button
                    type="button"
                    class="retry"
                    disabled=move || !chat.is_online()
                    on:click=move |_| chat.retry(&client_id)
                >
                    "Retry"
                </button>
            }
        });
    view! {
        <li class=class class:mine=state.is_some() data-state=state>
            <span class="says">
                <bdi class="nickname">{first}</bdi>
                {separator}
                <bdi class="text">{second}</bdi>
            </span>
            {sent_at
                .map(|sent_at| {
                    let shown = shown_time(&sent_at, utc);
                    view! { <time datetime=sent_at>{shown}</time> }
                })}
            {note.map(|note| view! { <span class="state">{note}</span> })}
            {retry}
        </li>
    }
}

/// `sent_at` (RFC 3339) as hours and minutes in the reader's time zone and
/// locale, by the browser's `Date`; in UTC if `utc`, as the server renders it.
#[cfg(feature = "hydrate")]
fn shown_time(sent_at: &str, utc: bool) -> String {
    use js_sys::{Date, Function, Object, Reflect};
    use wasm_bindgen::{JsCast, JsValue};

    if utc {
        return utc_time(sent_at);
    }
    let date = Date::new(&JsValue::from_str(sent_at));
    if date.get_time().is_nan() {
        return sent_at.to_owned();
    }
    let options = Object::new();
    for key in ["hour", "minute"] {
        let _ = Reflect::set(&options, &key.into(), &"2-digit".into());
    }
    // Called with `undefined` locales, which means the reader's own; js_sys
    // only binds it with a locale string.
    Reflect::get(&date, &"toLocaleTimeString".into())
        .ok()
        .and_then(|format| format.dyn_into::<Function>().ok())
        .and_then(|format| format.call2(&date, &JsValue::UNDEFINED, &options).ok())
        .and_then(|time| time.as_string())
        .unwrap_or_else(|| sent_at.to_owned())
}

/// The server knows no reader's time zone: it renders UTC.
#[cfg(not(feature = "hydrate"))]
fn shown_time(sent_at: &str, _utc: bool) -> String {
    utc_time(sent_at)
}

/// `sent_at` as `HH:MM UTC`.
fn utc_time(sent_at: &str) -> String {
    sent_at
        .get(11..16)
        .map_or_else(|| sent_at.to_owned(), |hm| hm.to_owned() + " UTC")
}
