//! How the message list reads: which parts of a text are links, which lines
//! group under one name, where a new day starts, and each nickname's
//! colour. Pure functions, tested without a browser; only the reader's time
//! zone and locale come from the browser (`local`, only in the browser).

/// Consecutive messages from one person at most this many minutes apart
/// share one name and time.
pub const GROUP_MINUTES: u32 = 5;

/// A run of a message's text: plain text, or an `http(s)` URL to link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    Text(&'a str),
    Link(&'a str),
}

/// `text` cut into plain runs and links. A link is an `http://` or
/// `https://` URL (any letter case) that does not start inside a word; it
/// ends at whitespace or `<`, `>`, `"`, without the punctuation that usually
/// follows a URL in prose (`.`, `,`, `!`...) or a closing bracket it did not
/// open. Nothing else is ever read as markup. The pieces, in order, are the
/// whole text.
pub fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut pieces = Vec::new();
    let mut plain = 0;
    let mut at = 0;
    while let Some(start) = next_scheme(text, at) {
        let end = url_end(text, start);
        if end == start {
            at = start + 1;
            continue;
        }
        if plain < start {
            pieces.push(Piece::Text(&text[plain..start]));
        }
        pieces.push(Piece::Link(&text[start..end]));
        (plain, at) = (end, end);
    }
    if plain < text.len() {
        pieces.push(Piece::Text(&text[plain..]));
    }
    pieces
}

/// Where the next `http://` or `https://` at or after byte `from` starts,
/// not right after an ASCII letter or digit. (ASCII only: Unicode's tables
/// would cost the page's wasm more than they are worth here.)
fn next_scheme(text: &str, from: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    (from..bytes.len()).find(|&i| {
        scheme_len(&bytes[i..]).is_some() && (i == 0 || !bytes[i - 1].is_ascii_alphanumeric())
    })
}

fn scheme_len(bytes: &[u8]) -> Option<usize> {
    ["http://", "https://"].into_iter().find_map(|scheme| {
        bytes
            .get(..scheme.len())
            .filter(|start| start.eq_ignore_ascii_case(scheme.as_bytes()))
            .map(|_| scheme.len())
    })
}

/// The end of the URL starting at `start`, or `start` itself if there is no
/// host after the scheme.
fn url_end(text: &str, start: usize) -> usize {
    let host = start + scheme_len(&text.as_bytes()[start..]).unwrap_or(0);
    let mut end = text[host..]
        .find(|c: char| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'))
        .map_or(text.len(), |len| host + len);
    loop {
        let url = &text[start..end];
        let count = |bracket| url.bytes().filter(|&b| b == bracket).count();
        let unopened = |open, close| count(close) > count(open);
        let drop = match url.as_bytes().last() {
            Some(b'.' | b',' | b':' | b';' | b'!' | b'?' | b'\'' | b'*') => true,
            Some(b')') => unopened(b'(', b')'),
            Some(b']') => unopened(b'[', b']'),
            Some(b'}') => unopened(b'{', b'}'),
            _ => false,
        };
        if !drop {
            break;
        }
        end -= 1;
    }
    let starts_host = text[host..end]
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '[' || !c.is_ascii());
    if starts_host {
        end
    } else {
        start
    }
}

/// How many colours nicknames come in: 24 hues, 15° apart.
pub const HUES: usize = 24;

/// The class of `nickname`'s colour, ` h0` to ` h23` (one of [`HUES`] hues,
/// set in the stylesheet): the same on every page and every visit. FNV-1a,
/// for a spread of hues from similar names. A class rather than a style:
/// no number to format, and one attribute less on every line.
pub fn hue(nickname: &str) -> &'static str {
    const CLASSES: [&str; HUES] = [
        " h0", " h1", " h2", " h3", " h4", " h5", " h6", " h7", " h8", " h9", " h10", " h11",
        " h12", " h13", " h14", " h15", " h16", " h17", " h18", " h19", " h20", " h21", " h22",
        " h23",
    ];
    let hash = nickname.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    });
    // The low byte of FNV-1a spreads short names poorly over few classes.
    CLASSES[(hash >> 8) as usize % HUES]
}

/// When a message was sent, as its reader sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moment {
    /// The calendar day: `yyyymmdd` on the server, days since 1970 in the
    /// browser (either tells one day from another).
    pub day: u32,
    /// Minutes since that day's midnight.
    pub minute: u32,
    /// The date in full, the heading of its day.
    pub date: String,
    /// Hours and minutes, shown on the line.
    pub time: String,
    /// Date and time, shown on hover and focus.
    pub full: String,
}

impl Moment {
    /// In UTC, read from the RFC 3339 text alone: how the server renders
    /// (it knows no reader's time zone).
    /// `None` if `sent_at` is not `yyyy-mm-ddThh:mm...`.
    pub fn utc(sent_at: &str) -> Option<Self> {
        let bytes = sent_at.as_bytes();
        let number = |from: usize, to: usize| {
            bytes.get(from..to)?.iter().try_fold(0, |number, &digit| {
                digit
                    .is_ascii_digit()
                    .then(|| number * 10 + u32::from(digit - b'0'))
            })
        };
        let day = number(0, 4)? * 10_000 + number(5, 7)? * 100 + number(8, 10)?;
        let minute = number(11, 13)? * 60 + number(14, 16)?;
        let (date, time) = (&sent_at[..10], &sent_at[11..16]);
        Some(Self {
            day,
            minute,
            date: date.to_owned(),
            time: time.to_owned() + " UTC",
            full: date.to_owned() + " " + time + " UTC",
        })
    }
}

/// How times read: in UTC, as the server renders them (it knows no
/// reader's time zone) and the page hydrates them; or in the reader's time
/// zone and locale, once the page is hydrated (outside a browser, UTC).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Clock {
    #[default]
    Utc,
    Local,
}

impl Clock {
    pub fn moment(self, sent_at: &str) -> Option<Moment> {
        match self {
            Self::Utc => Moment::utc(sent_at),
            #[cfg(feature = "hydrate")]
            Self::Local => local::moment(sent_at),
            #[cfg(not(feature = "hydrate"))]
            Self::Local => Moment::utc(sent_at),
        }
    }
}

/// What decides a line's place: who sent it (`(own, nickname)`; `None` for
/// a join, leave or rename) and when (`None` while an own message is not
/// acknowledged).
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a, 'm> {
    pub sender: Option<(bool, &'a str)>,
    pub at: Option<&'m Moment>,
}

/// How a line sits among those before it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Place {
    /// It is the first line of its day: a day separator goes above it.
    pub new_day: bool,
    /// It continues the message above, from the same sender within
    /// [`GROUP_MINUTES`] on the same day: its name and time are not repeated.
    pub grouped: bool,
}

/// The place of each line, in order.
pub fn places(lines: &[Facts]) -> Vec<Place> {
    let mut places = Places::default();
    lines.iter().map(|facts| places.next(*facts)).collect()
}

/// Places lines one at a time, in order: what [`places`] does, without a
/// list of facts to make first.
#[derive(Default)]
pub struct Places<'a> {
    day: Option<u32>,
    /// The line before: its sender, and its day and minute.
    previous: Option<(Sender<'a>, Option<(u32, u32)>)>,
}

/// Who sent a line, `(own, nickname)`; `None` for a join, leave or rename.
type Sender<'a> = Option<(bool, &'a str)>;

impl<'a> Places<'a> {
    /// The place of the line after those placed so far.
    pub fn next(&mut self, facts: Facts<'a, '_>) -> Place {
        let at = facts.at.map(|at| (at.day, at.minute));
        let new_day = at.is_some_and(|(day, _)| self.day.replace(day) != Some(day));
        let (sender, before) = self.previous.unwrap_or_default();
        let close = match (before, at) {
            (Some((before_day, before_minute)), Some((day, minute))) => {
                before_day == day && minute.abs_diff(before_minute) <= GROUP_MINUTES
            }
            // An own message not yet acknowledged was sent just now.
            _ => true,
        };
        let grouped = !new_day
            && close
            && facts.sender.is_some()
            && self.previous.is_some()
            && sender == facts.sender;
        self.previous = Some((facts.sender, at));
        Place { new_day, grouped }
    }
}

/// The reader's time zone and locale, through the browser's `Intl`: its
/// formatters are made once per page, since making one costs far more than
/// using it.
#[cfg(feature = "hydrate")]
mod local {
    use js_sys::{Array, Date, Function, Intl::DateTimeFormat, Object, Reflect};
    use wasm_bindgen::JsValue;

    use super::Moment;

    struct Formats {
        time: Function,
        date: Function,
    }

    thread_local! {
        static FORMATS: Formats = Formats {
            time: formatter(&[("hour", "2-digit"), ("minute", "2-digit")]),
            date: formatter(&[("dateStyle", "full")]),
        };
    }

    fn formatter(options: &[(&str, &str)]) -> Function {
        let object = Object::new();
        for (key, value) in options {
            let _ = Reflect::set(&object, &(*key).into(), &(*value).into());
        }
        DateTimeFormat::new(&Array::new(), &object).format()
    }

    fn format(formatter: &Function, date: &Date) -> String {
        formatter
            .call1(&JsValue::UNDEFINED, date)
            .ok()
            .and_then(|text| text.as_string())
            .unwrap_or_default()
    }

    pub fn moment(sent_at: &str) -> Option<Moment> {
        let date = Date::new(&JsValue::from_str(sent_at));
        if date.get_time().is_nan() {
            return None;
        }
        // Minutes since 1970 on the reader's clock.
        let local = (date.get_time() / 60_000.0 - date.get_timezone_offset()).floor() as i64;
        FORMATS.with(|formats| {
            let (date, time) = (format(&formats.date, &date), format(&formats.time, &date));
            Some(Moment {
                day: local.div_euclid(1440) as u32,
                minute: local.rem_euclid(1440) as u32,
                full: date.clone() + " " + &time,
                date,
                time,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn links(text: &str) -> Vec<&str> {
        pieces(text)
            .into_iter()
            .filter_map(|piece| match piece {
                Piece::Link(url) => Some(url),
                Piece::Text(_) => None,
            })
            .collect()
    }

    #[test]
    fn http_and_https_urls_become_links_between_plain_text() {
        assert_eq!(
            pieces("see https://example.com/a?b=1#c and http://x.org"),
            vec![
                Piece::Text("see "),
                Piece::Link("https://example.com/a?b=1#c"),
                Piece::Text(" and "),
                Piece::Link("http://x.org"),
            ]
        );
        assert_eq!(links("HTTPS://EXAMPLE.COM"), vec!["HTTPS://EXAMPLE.COM"]);
    }

    #[test]
    fn other_schemes_and_markup_stay_text() {
        for text in [
            "javascript:alert(1)",
            "<a href=\"https:\">x</a>",
            "data:text/html,<b>hi</b>",
            "ftp://example.com",
            "mailto:a@example.com",
            "xhttps://example.com",
            "https://",
            "https:///path",
            "<b>bold</b>",
        ] {
            assert_eq!(pieces(text), vec![Piece::Text(text)], "{text}");
        }
    }

    #[test]
    fn trailing_punctuation_and_unopened_brackets_are_not_part_of_a_link() {
        assert_eq!(links("go to https://a.io/x."), vec!["https://a.io/x"]);
        assert_eq!(links("(https://a.io/x)"), vec!["https://a.io/x"]);
        assert_eq!(
            links("https://en.wikipedia.org/wiki/Rust_(language)!"),
            vec!["https://en.wikipedia.org/wiki/Rust_(language)"]
        );
        assert_eq!(links("\"https://a.io/q\"?"), vec!["https://a.io/q"]);
        assert_eq!(links("<https://a.io>"), vec!["https://a.io"]);
        assert_eq!(links("https://a.io/é?q=ü"), vec!["https://a.io/é?q=ü"]);
    }

    proptest! {
        #[test]
        fn the_pieces_are_the_whole_text_and_every_link_is_http(
            text in "(https?://|HTTP://|[a-z.()\\[\\]<>\" ,:/é])*"
        ) {
            let pieces = pieces(&text);
            let joined: String = pieces
                .iter()
                .map(|piece| match piece {
                    Piece::Text(run) | Piece::Link(run) => *run,
                })
                .collect();
            prop_assert_eq!(&joined, &text);
            for piece in pieces {
                if let Piece::Link(url) = piece {
                    let lower = url.to_ascii_lowercase();
                    prop_assert!(lower.starts_with("http://") || lower.starts_with("https://"));
                    prop_assert!(!url.contains(|c: char| c.is_whitespace() || "<>\"".contains(c)));
                }
            }
        }
    }

    #[test]
    fn a_nickname_always_has_the_same_hue_and_names_differ() {
        assert_eq!(hue("alice"), hue("alice"));
        let hues: std::collections::BTreeSet<&str> =
            ["alice", "bob", "carol", "dave", "erin"].map(hue).into();
        assert!(hues.len() >= 4, "{hues:?}");
    }

    #[test]
    fn a_utc_moment_is_read_from_the_text() {
        assert_eq!(
            Moment::utc("2026-11-25T09:07:30.123Z"),
            Some(Moment {
                day: 20261125,
                minute: 9 * 60 + 7,
                time: "09:07 UTC".into(),
                date: "2026-11-25".into(),
                full: "2026-11-25 09:07 UTC".into(),
            })
        );
        assert_eq!(Moment::utc("yesterday"), None);
        assert_eq!(Moment::utc("2026-11-2xT09:07:30Z"), None);
        assert_eq!(Moment::utc("2026-11-25T09"), None);
    }

    fn at(sent_at: &str) -> Moment {
        Moment::utc(sent_at).unwrap()
    }

    #[test]
    fn one_persons_messages_within_a_few_minutes_group_under_one_name() {
        let times = [
            "2026-11-25T10:00:00Z",
            "2026-11-25T10:04:00Z",
            "2026-11-25T10:10:30Z",
            "2026-11-25T10:11:00Z",
            "2026-11-25T10:12:00Z",
        ]
        .map(at);
        let alice = Some((false, "alice"));
        let bob = Some((false, "bob"));
        let lines = [alice, alice, alice, bob, alice]
            .iter()
            .zip(&times)
            .map(|(&sender, at)| Facts {
                sender,
                at: Some(at),
            })
            .collect::<Vec<_>>();
        let grouped: Vec<bool> = places(&lines).iter().map(|p| p.grouped).collect();
        // 10:10 is more than five minutes after 10:04; bob breaks the run.
        assert_eq!(grouped, [false, true, false, false, false]);
    }

    #[test]
    fn a_system_line_or_own_message_breaks_a_group_and_pending_ones_join_it() {
        let now = at("2026-11-25T10:00:00Z");
        let alice = Some((false, "alice"));
        let mine = Some((true, "alice"));
        let lines = [
            Facts {
                sender: alice,
                at: Some(&now),
            },
            Facts {
                sender: None,
                at: None,
            },
            Facts {
                sender: alice,
                at: Some(&now),
            },
            Facts {
                sender: mine,
                at: Some(&now),
            },
            Facts {
                sender: mine,
                at: None,
            },
        ];
        let grouped: Vec<bool> = places(&lines).iter().map(|p| p.grouped).collect();
        assert_eq!(grouped, [false, false, false, false, true]);
    }

    #[test]
    fn a_day_separator_goes_above_the_first_line_of_each_day() {
        let times = [
            "2026-11-24T23:58:00Z",
            "2026-11-24T23:59:00Z",
            "2026-11-25T00:01:00Z",
        ]
        .map(at);
        let lines = times
            .iter()
            .map(|at| Facts {
                sender: Some((false, "alice")),
                at: Some(at),
            })
            .collect::<Vec<_>>();
        assert_eq!(
            places(&lines),
            [
                Place {
                    new_day: true,
                    grouped: false
                },
                Place {
                    new_day: false,
                    grouped: true
                },
                // Two minutes apart, but on another day: not grouped.
                Place {
                    new_day: true,
                    grouped: false
                },
            ]
        );
    }
}
