use leptos::{html::Ul, prelude::*};

use crate::chat::{Chat, Delivery, Line, OwnMessage};

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
            <For
                each=move || chat.entries().get()
                key=|entry| entry.key
                children=move |entry| match entry.line {
                    Line::Theirs(message) => {
                        view! {
                            <li class="message">
                                <Says nickname=message.nickname text=message.text/>
                                <Time sent_at=message.sent_at/>
                            </li>
                        }
                            .into_any()
                    }
                    Line::Mine(own) => view! { <Own chat own/> }.into_any(),
                    Line::Joined(nickname) => {
                        view! {
                            <li class="system">
                                <bdi>{nickname}</bdi>
                                " joined"
                            </li>
                        }
                            .into_any()
                    }
                    Line::Left(nickname) => {
                        view! {
                            <li class="system">
                                <bdi>{nickname}</bdi>
                                " left"
                            </li>
                        }
                            .into_any()
                    }
                    Line::Renamed { previous, nickname } => {
                        view! {
                            <li class="system">
                                <bdi>{previous}</bdi>
                                " is now "
                                <bdi>{nickname}</bdi>
                            </li>
                        }
                            .into_any()
                    }
                }
            />
        </ul>
    }
}

/// `nickname: text`, each isolated from the other and from the page.
#[component]
fn Says(nickname: String, text: String) -> impl IntoView {
    view! {
        <span class="says">
            <bdi class="nickname">{nickname}</bdi>
            ": "
            <bdi class="text">{text}</bdi>
        </span>
    }
}

/// When the server accepted the message, in the reader's local time.
#[component]
fn Time(sent_at: String) -> impl IntoView {
    let shown = local_time(&sent_at);
    view! { <time datetime=sent_at>{shown}</time> }
}

/// An own message: pending until its ack, then sent (with its time), or
/// failed with a Retry button.
#[component]
fn Own(chat: Chat, own: OwnMessage) -> impl IntoView {
    let delivery = own.delivery();
    let client_id = own.client_id;
    view! {
        <li class="message mine" data-state=move || delivery.with(Delivery::as_str)>
            <Says nickname=own.nickname text=own.text/>
            {move || match delivery.get() {
                Delivery::Pending { .. } => view! { <span class="state">"sending…"</span> }.into_any(),
                Delivery::Sent { sent_at, .. } => view! { <Time sent_at/> }.into_any(),
                Delivery::Failed { .. } => {
                    let client_id = client_id.clone();
                    view! {
                        <span class="state">"not sent"</span>
                        <button
                            type="button"
                            class="retry"
                            disabled=move || !chat.is_online()
                            on:click=move |_| chat.retry(&client_id)
                        >
                            "Retry"
                        </button>
                    }
                        .into_any()
                }
            }}
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
