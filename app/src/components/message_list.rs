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
        chat.entries().track();
        if let Some(list) = list.get() {
            list.set_scroll_top(list.scroll_height());
        }
    });
    view! {
        <ul class="messages" aria-label="Messages" aria-live="polite" node_ref=list>
            <For each=move || chat.entries().get() key=|entry| entry.key let:entry>
                {line(chat, entry)}
            </For>
        </ul>
    }
}

/// One line. Every kind of line shares one of two view types: each distinct
/// view type costs the page's wasm several kilobytes.
fn line(chat: Chat, entry: Entry) -> impl IntoView {
    let (nickname, text, sent_at, own) = match entry.line {
        Line::Theirs(message) => (message.nickname, message.text, message.sent_at, None),
        Line::Mine(own) => {
            let delivery = own.delivery();
            (
                own.nickname,
                own.text,
                String::new(),
                Some((delivery, own.client_id)),
            )
        }
        Line::Joined(nickname) => return Either::Left(system(nickname, " joined", None)),
        Line::Left(nickname) => return Either::Left(system(nickname, " left", None)),
        Line::Renamed { previous, nickname } => {
            return Either::Left(system(previous, " is now ", Some(nickname)))
        }
    };
    let (delivery, client_id) = own.unzip();
    // Others' messages never change; own ones follow their delivery.
    let tail = move || {
        let delivery = delivery.map(|delivery| delivery.get());
        let sent_at = match &delivery {
            None => Some(sent_at.clone()),
            Some(Delivery::Sent { sent_at, .. }) => Some(sent_at.clone()),
            _ => None,
        };
        let state = match delivery {
            Some(Delivery::Pending { .. }) => Some("sending…"),
            Some(Delivery::Failed { .. }) => Some("not sent"),
            _ => None,
        };
        let retry = client_id
            .clone()
            .filter(|_| state == Some("not sent"))
            .map(|client_id| {
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
        (
            sent_at.map(|sent_at| {
                let shown = local_time(&sent_at);
                view! { <time datetime=sent_at>{shown}</time> }
            }),
            state.map(|state| view! { <span class="state">{state}</span> }),
            retry,
        )
    };
    Either::Right(view! {
        <li
            class="message"
            class:mine=delivery.is_some()
            data-state=move || delivery.map(|delivery| delivery.with(Delivery::as_str))
        >
            <span class="says">
                <bdi class="nickname">{nickname}</bdi>
                ": "
                <bdi class="text">{text}</bdi>
            </span>
            {tail}
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
