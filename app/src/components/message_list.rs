use std::sync::Arc;

use leptos::{either::Either, html::Ul, prelude::*};

use crate::{
    chat::{Chat, Delivery, Line, Row},
    display::{self, Piece},
};

/// Lines from the bottom within which the reader counts as at the bottom,
/// in pixels: about two lines.
const AT_BOTTOM_PX: i32 = 48;

/// The conversation: a `<ul>` with one `<li>` per line, keyed, so a new
/// message adds one `<li>` and leaves the others (and any focus or
/// selection in them) alone. Above the lines, the button that pages in
/// older ones, or the beginning of the conversation.
///
/// It follows new lines only while the reader is at the bottom. Scrolled
/// up, messages from others are counted on a "new messages" button, and a
/// divider marks the first of them. Older messages page in above the first
/// line when the list is scrolled to its top, or with the button there.
/// New messages from others are announced politely by a live region of
/// their own (the list is not one: paging in and trimming would be read
/// out).
#[component]
pub fn MessageList(chat: Chat) -> impl IntoView {
    let list = NodeRef::<Ul>::new();
    keep_in_view(chat, list);
    let on_scroll = move |_| {
        let Some(list) = list.get_untracked() else {
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
        if let Some(list) = list.get_untracked() {
            list.set_scroll_top(list.scroll_height());
            let _ = list.focus();
        }
    };
    let unread = move || chat.reading(|reading| reading.unread);
    // Each line asks whether the divider is above it; only the lines it
    // leaves and reaches are told when it moves.
    let divider = Selector::new(move || chat.reading(|reading| reading.divider));
    view! {
        <section class="conversation" aria-label="Conversation">
            <ul
                class="messages"
                aria-label="Messages"
                tabindex="0"
                node_ref=list
                on:scroll=on_scroll
            >
                <li class="history">
                    <Show
                        when=move || chat.timeline(|timeline| timeline.beginning)
                        fallback=move || {
                            view! {
                                <button type="button" on:click=move |_| chat.load_older()>
                                    "Load older messages"
                                </button>
                            }
                        }
                    >
                        <span>"Beginning of the conversation"</span>
                    </Show>
                </li>
                <For each=move || chat.rows() key=|row| (row.key, row.rev) let:row>
                    <MessageLine row chat divider=divider.clone()/>
                </For>
            </ul>
            <Show when=move || { unread() > 0 }>
                <button class="jump" on:click=jump>
                    {move || match unread() {
                        1 => "1 new message".to_owned(),
                        count => format!("{count} new messages"),
                    }}
                </button>
            </Show>
            <p class="visually-hidden" aria-live="polite">
                {move || chat.reading(|reading| reading.announcement.clone())}
            </p>
        </section>
    }
}

/// Keeps the reader at the bottom while they are there, and otherwise the
/// lines in view where they were when lines are added above them (older
/// ones paged in). The browser's own scroll anchoring is off for the list
/// (see the stylesheet): it does not anchor at the very top, which is
/// where paging in starts. Measured in the next animation frame, once the
/// list is drawn: effects run in no promised order.
fn keep_in_view(chat: Chat, list: NodeRef<Ul>) {
    let seen = StoredValue::new((None::<u64>, 0));
    Effect::new(move |_| {
        let last = chat.timeline(|timeline| timeline.rows().last().map(|row| row.key));
        let follow = chat.reading(|reading| reading.at_bottom);
        request_animation_frame(move || {
            let Some(list) = list.get_untracked() else {
                return;
            };
            let height = list.scroll_height();
            let (was_last, was_height) = seen.get_value();
            seen.set_value((last, height));
            if follow {
                // At the bottom it stays there, whatever changed: a line
                // that shrinks (a message acknowledged) included.
                list.set_scroll_top(height);
            } else if was_last == last {
                list.set_scroll_top(list.scroll_top() + height - was_height);
            }
        });
    });
}

/// One line: `nickname: text` and its local time for a message (with where
/// an own one stands), or a quiet system line for a join, leave or rename.
/// Text is inserted as text, never as HTML (only `http(s)` URLs become
/// links), inside `<bdi>` so right-to-left text cannot reorder what is
/// around it. A message grouped under the one above keeps its name for
/// screen readers; the first line of a day carries the day's heading.
#[component]
fn MessageLine(row: Arc<Row>, chat: Chat, divider: Selector<Option<u64>>) -> impl IntoView {
    let key = row.key;
    let unread = {
        let divider = divider.clone();
        move || divider.selected(&Some(key))
    };
    on_cleanup(move || divider.remove(&Some(key)));

    let (kind, separator, nickname, text) = match &row.line {
        Line::Theirs(message) => ("message", ": ", &message.nickname, &message.text[..]),
        Line::Mine(own) => ("message", ": ", &own.nickname, &own.text[..]),
        Line::Joined(nickname) => ("system", " joined", nickname, ""),
        Line::Left(nickname) => ("system", " left", nickname, ""),
        Line::Renamed { previous, nickname } => ("system", " is now ", previous, &nickname[..]),
    };
    let own = match &row.line {
        Line::Mine(own) => Some(own),
        _ => None,
    };
    let mut class = kind.to_owned();
    if own.is_some() {
        class.push_str(" mine");
    }
    if row.place.grouped {
        class.push_str(" grouped");
    }
    if let Some((_, nickname)) = row.sender() {
        class.push_str(display::hue(nickname));
    }
    // A rename's new name is a name: never a link.
    let pieces = if kind == "message" {
        display::pieces(text)
    } else {
        vec![Piece::Text(text)]
    };
    let text = pieces
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
    let day = row
        .at
        .as_ref()
        .filter(|_| row.place.new_day)
        .map(|at| view! { <span class="day">{at.date.clone()}</span> });
    let time = row.sent_at().zip(row.at.as_ref()).map(|(sent_at, at)| {
        view! { <time datetime=sent_at.to_owned() title=at.full.clone()>{at.time.clone()}</time> }
    });
    let note = own.and_then(|own| match own.delivery {
        Delivery::Pending { .. } => Some(view! { <span class="state">"sending…"</span> }),
        Delivery::Failed { .. } => Some(view! { <span class="state">"not sent"</span> }),
        Delivery::Sent { .. } => None,
    });
    let retry = own
        .filter(|own| matches!(own.delivery, Delivery::Failed { .. }))
        .map(|own| {
            let client_id = own.client_id.clone();
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
        <li
            class=class
            data-state=own.map(|own| own.delivery.as_str())
            data-unread=unread
        >
            {day}
            <span class="says">
                <bdi class="nickname">{nickname.clone()}</bdi>
                <span class="sep">{separator}</span>
                <bdi class="text">{text}</bdi>
            </span>
            {time}
            {note}
            {retry}
        </li>
    }
}
