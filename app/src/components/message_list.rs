use leptos::{either::Either, html::Ul, prelude::*};

use crate::chat::{Chat, Delivery, Entry, Line};

/// The conversation: a `<ul>` with one `<li>` per message, reading
/// `nickname: text`, then its local time, and quiet system lines for joins,
/// leaves and renames. Text is always inserted as text, never as HTML, and
/// inside `<bdi>` so right-to-left text cannot reorder what is around it.
/// Keeps the newest line in view.
#[component]
pub fn MessageList(chat: Chat) -> impl IntoView {
    let list = NodeRef::<Ul>::new();
    Effect::new(move || {
        chat.with(|state| state.entries.len());
        if let Some(list) = list.get() {
            list.set_scroll_top(list.scroll_height());
        }
    });
    view! {
        <ul class="messages" aria-label="Messages" aria-live="polite" node_ref=list>
            <For each=move || chat.entries() key=Entry::version let:entry>
                {line(chat, entry)}
            </For>
        </ul>
    }
}

/// One line. Every kind of line shares one of two view types: each distinct
/// view type costs the page's wasm several kilobytes. A line never changes
/// once drawn: an own message whose delivery changes gets a new
/// [`Entry::version`], and so is drawn anew.
fn line(chat: Chat, entry: Entry) -> impl IntoView {
    let (nickname, text, sent_at, own) = match entry.line {
        Line::Theirs(message) => (message.nickname, message.text, Some(message.sent_at), None),
        Line::Mine(own) => {
            let sent_at = match &own.delivery {
                Delivery::Sent { sent_at, .. } => Some(sent_at.clone()),
                _ => None,
            };
            (
                own.nickname,
                own.text,
                sent_at,
                Some((own.delivery, own.client_id)),
            )
        }
        Line::Joined(nickname) => return Either::Left(system(nickname, " joined", None)),
        Line::Left(nickname) => return Either::Left(system(nickname, " left", None)),
        Line::Renamed { previous, nickname } => {
            return Either::Left(system(previous, " is now ", Some(nickname)))
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
    Either::Right(view! {
        <li class="message" class:mine=state.is_some() data-state=state>
            <span class="says">
                <bdi class="nickname">{nickname}</bdi>
                ": "
                <bdi class="text">{text}</bdi>
            </span>
            {sent_at
                .map(|sent_at| {
                    let shown = local_time(&sent_at);
                    view! { <time datetime=sent_at>{shown}</time> }
                })}
            {note.map(|note| view! { <span class="state">{note}</span> })}
            {retry}
        </li>
    })
}

/// A join, leave or rename: `first` `middle` `second`, names isolated.
fn system(first: String, middle: &'static str, second: Option<String>) -> impl IntoView {
    view! {
        <li class="system">
            <bdi>{first}</bdi>
            {middle}
            {second.map(|second| view! { <bdi>{second}</bdi> })}
        </li>
    }
}

/// `sent_at` (RFC 3339) as hours and minutes in the reader's time zone and
/// locale, by the browser's `Date`.
#[cfg(feature = "hydrate")]
fn local_time(sent_at: &str) -> String {
    use js_sys::{Date, Function, Object, Reflect};
    use wasm_bindgen::{JsCast, JsValue};

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

/// The server renders no messages; should it ever, it shows the UTC time.
#[cfg(not(feature = "hydrate"))]
fn local_time(sent_at: &str) -> String {
    sent_at
        .get(11..16)
        .map_or_else(|| sent_at.to_owned(), |hm| format!("{hm} UTC"))
}
