use std::{cell::Cell, rc::Rc};

#[cfg(not(feature = "hydrate"))]
use leptos::either::Either;
use leptos::{ev::KeyboardEvent, html::Ul, prelude::*};

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
    // Follows a line appended at the end while the reader is at the bottom;
    // otherwise keeps the lines in view where they were when the list grew
    // above them (older lines paged in: the list is redrawn in place, so
    // the browser's scroll anchoring cannot). Measured in the next
    // animation frame, once the list is redrawn: effects run in no
    // promised order.
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
                (was_last, was_height) if was_last == last => {
                    list.set_scroll_top(list.scroll_top() + height - was_height);
                }
                _ if follow => list.set_scroll_top(height),
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
    let unread = move || chat.with(|state| state.unread);
    view! {
        <section class="conversation" aria-label="Messages">
            <ul
                class="messages"
                aria-label="Messages"
                tabindex="0"
                node_ref=list
                on:scroll=on_scroll
                on:keydown=step
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
                    let (utc, divider, entries) = chat
                        .with(|state| (state.first_paint, state.divider, state.entries.clone()));
                    let clock = Clock::new(utc);
                    let mut places = Places::default();
                    entries
                        .iter()
                        .map(|entry| {
                            let sent_at = entry.sent_at();
                            let at = sent_at.and_then(|at| clock.moment(at));
                            let place = places.next(Facts {
                                sender: entry.sender(),
                                at: at.as_ref(),
                            });
                            let day = sent_at.filter(|_| place.new_day).map(|at| clock.day(at));
                            let unread = Some(entry.key) == divider;
                            line(chat, entry.clone(), at, place.grouped, day, unread)
                        })
                        .collect::<Vec<_>>()
                }}
            </ul>
            <button type="button" class="jump" hidden=move || unread() == 0 on:click=jump>
                {move || match unread() {
                    1 => "1 new message".to_owned(),
                    count => format!("{count} new messages"),
                }}
            </button>
            <p class="visually-hidden" aria-live="polite" data-testid="announcer">
                {move || chat.with(|state| state.announcement.clone())}
            </p>
        </section>
    }
}

/// Arrow keys move the focus from line to line (Up from the list itself
/// goes to the newest): a focused line shows its full date, and its links
/// and buttons are next in the tab order. The list is the event's current
/// target: a NodeRef read is more code than the event's field.
#[cfg_attr(not(feature = "hydrate"), allow(unused_variables))]
fn step(ev: KeyboardEvent) {
    #[cfg(feature = "hydrate")]
    {
        use leptos::{wasm_bindgen::JsCast, web_sys::Element};

        let up = match ev.key().as_str() {
            "ArrowUp" => true,
            "ArrowDown" => false,
            _ => return,
        };
        let Some(list) = ev.current_target() else {
            return;
        };
        let list = list.unchecked_into::<Element>();
        let focused = document()
            .active_element()
            .filter(|element| element.parent_element().as_ref() == Some(&list));
        let next = match (focused, up) {
            (Some(line), true) => line.previous_element_sibling(),
            (Some(line), false) => line.next_element_sibling(),
            (None, true) => list.last_element_child(),
            (None, false) => None,
        };
        if let Some(next) = next {
            ev.prevent_default();
            let _ = next
                .unchecked_into::<leptos::web_sys::HtmlElement>()
                .focus();
        }
    }
}

/// One line, a message or a join, leave or rename: all of them share one
/// view type, since each distinct one costs the page's wasm kilobytes, and
/// the list redraws lines in place.
fn line(
    chat: Chat,
    entry: Entry,
    at: Option<Moment>,
    grouped: bool,
    day: Option<String>,
    unread: bool,
) -> impl IntoView {
    let mut class = "message";
    let mut separator = ": ";
    let mut own = None;
    let hue = entry
        .sender()
        .map(|(_, nickname)| format!("--hue:{}", display::hue(nickname)));
    let time = entry
        .sent_at()
        .map(str::to_owned)
        .zip(at)
        .map(|(sent_at, at)| {
            view! { <time datetime=sent_at title=at.full>{at.time}</time> }
        });
    let (first, second) = match entry.line {
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
    // Only a message's text can hold links; a nickname is always text.
    let links = class == "message";
    // In the browser a directive builds the text (see `fill`): views of
    // text and links would cost the page's wasm about 2 KiB.
    #[cfg(feature = "hydrate")]
    let text = view! { <bdi class="text" use:fill=(links, second)></bdi> };
    #[cfg(not(feature = "hydrate"))]
    let text = {
        let text = if links {
            display::pieces(&second)
        } else {
            vec![Piece::Text(&second)]
        };
        let text = text
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
        view! { <bdi class="text">{text}</bdi> }
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
    // One class attribute: each `class:` toggle is a reactive attribute type
    // of its own in the page's wasm.
    let classes = [
        class,
        if state.is_some() { " mine" } else { "" },
        if grouped { " grouped" } else { "" },
    ]
    .concat();
    view! {
        <li
            class=classes
            data-state=state
            data-unread=unread
            style=hue
            tabindex="-1"
        >
            <span class="day">{day}</span>
            <span class="says">
                <bdi class="nickname">{first}</bdi>
                <span class="sep">{separator}</span>
                {text}
            </span>
            {time}
            {note.map(|note| view! { <span class="state">{note}</span> })}
            {retry}
        </li>
    }
}

/// Fills a line's `<bdi class="text">` with `text`, its URLs as links if
/// `links`, as the server renders it: built as DOM nodes, never parsed as
/// HTML. Left untouched while it already reads the same (as the server
/// rendered it, or unchanged since the last redraw).
#[cfg(feature = "hydrate")]
fn fill(bdi: leptos::web_sys::Element, (links, text): (bool, String)) {
    let pieces = if links {
        display::pieces(&text)
    } else {
        vec![Piece::Text(&text)]
    };
    let linked = pieces.iter().any(|piece| matches!(piece, Piece::Link(_)));
    if bdi.text_content().as_deref() == Some(&*text) && (bdi.child_element_count() > 0) == linked {
        return;
    }
    bdi.set_text_content(None);
    let document = document();
    for piece in pieces {
        let node: leptos::web_sys::Node = match piece {
            Piece::Text(run) => document.create_text_node(run).into(),
            Piece::Link(url) => {
                let Ok(link) = document.create_element("a") else {
                    continue;
                };
                for (name, value) in [
                    ("href", url),
                    ("target", "_blank"),
                    ("rel", "noopener noreferrer"),
                ] {
                    let _ = link.set_attribute(name, value);
                }
                link.set_text_content(Some(url));
                link.into()
            }
        };
        let _ = bdi.append_child(&node);
    }
}
