//! Every test body runs twice: on a SQLite file in a temporary directory,
//! and on a fresh PostgreSQL database when `PARLEY_TEST_POSTGRES_URL` names
//! a server whose user may create databases (`scripts/with-postgres.sh`
//! starts one). Without it the PostgreSQL runs are skipped, except under
//! `CI`, where they fail.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use sqlx::{Connection, Executor, PgConnection};
use tempfile::TempDir;

use super::*;

const POSTGRES_URL: &str = "PARLEY_TEST_POSTGRES_URL";

/// Where a test's store lives; opening it again reaches the same data.
struct Place {
    url: String,
    /// PostgreSQL: the server's URL and the test's database on it.
    postgres: Option<(String, String)>,
    _dir: Option<TempDir>,
}

impl Place {
    fn sqlite() -> Place {
        let dir = tempfile::tempdir().unwrap();
        // A directory that does not exist yet: `open` creates it.
        let url = format!("sqlite://{}/data/parley.db", dir.path().display());
        Place {
            url,
            postgres: None,
            _dir: Some(dir),
        }
    }

    /// A database of its own, so tests running at once see no one else's rows.
    async fn postgres() -> Option<Place> {
        let Ok(admin) = std::env::var(POSTGRES_URL) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but {POSTGRES_URL} is not: the PostgreSQL tests must run in CI \
                 (scripts/with-postgres.sh starts a server and sets it)"
            );
            eprintln!("skipped on PostgreSQL: {POSTGRES_URL} is not set");
            return None;
        };
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!(
            "parley_test_{}_{nanos}_{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let mut conn = PgConnection::connect(&admin).await.unwrap();
        conn.execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        conn.close().await.unwrap();
        Some(Place {
            url: with_database(&admin, &name),
            postgres: Some((admin, name)),
            _dir: None,
        })
    }

    async fn open(&self) -> Store {
        Store::open(&self.url).await.unwrap()
    }
}

/// `url` with its database (the path) replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    let (url, query) = url.split_once('?').unwrap_or((url, ""));
    let scheme_end = url.find("://").map_or(0, |i| i + 3);
    let server = match url[scheme_end..].find('/') {
        Some(slash) => &url[..scheme_end + slash],
        None => url,
    };
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("{server}/{name}{query}")
}

/// One test per backend, named `<body>::sqlite` and `<body>::postgres`.
macro_rules! on_both {
    ($($(#[$attr:meta])* $body:ident),* $(,)?) => {$(
        mod $body {
            $(#[$attr])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body(super::Place::sqlite()).await;
            }

            $(#[$attr])*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(place) = super::Place::postgres().await {
                    super::$body(place).await;
                }
            }
        }
    )*};
}

on_both!(
    ids_increase_and_pages_reach_the_beginning,
    a_client_key_is_stored_once,
    reopening_keeps_every_message_and_ids_continue,
    a_failing_store_returns_errors,
    concurrent_appends_get_distinct_increasing_ids,
    a_session_keeps_its_latest_nickname_across_reopening,
    the_secret_is_made_once_and_shared_by_every_opener,
    forgetting_old_messages_keeps_paging_and_resuming_whole,
    rooms_keep_their_messages_apart_and_the_tail_reads_them_all,
    #[ignore = "a measurement: cargo test -p server --lib store -- --ignored --nocapture"]
    append_rate,
);

/// The room the tests write to unless they are about rooms.
const GENERAL: &str = "general";

fn message(n: usize) -> NewMessage {
    NewMessage {
        room: GENERAL.into(),
        from: n as u64,
        nickname: format!("nick{}", n % 7),
        text: format!("message {n}"),
        client_key: None,
    }
}

fn with_client_key(n: usize, client_key: &str) -> NewMessage {
    NewMessage {
        client_key: Some(client_key.into()),
        ..message(n)
    }
}

fn new(appended: Vec<Appended>) -> Vec<StoredMessage> {
    appended
        .into_iter()
        .map(|a| match a {
            Appended::New(m) => m,
            Appended::Duplicate(m) => panic!("unexpected duplicate {m:?}"),
        })
        .collect()
}

fn ids(messages: &[StoredMessage]) -> Vec<u64> {
    messages.iter().map(|m| m.id).collect()
}

fn assert_increasing(ids: &[u64]) {
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}

async fn ids_increase_and_pages_reach_the_beginning(place: Place) {
    let store = place.open().await;
    assert!(store.latest(GENERAL, 10).await.unwrap().is_empty());
    assert!(store.append(vec![]).await.unwrap().is_empty());

    let mut stored = Vec::new();
    for batch in 0..5 {
        let messages: Vec<_> = (0..7).map(|i| message(batch * 7 + i)).collect();
        let appended = new(store.append(messages.clone()).await.unwrap());
        for (m, s) in messages.iter().zip(&appended) {
            assert_eq!(
                (m.from, &m.nickname, &m.text),
                (s.from, &s.nickname, &s.text)
            );
            assert_eq!(s.client_key, None);
            assert_eq!(s.sent_at.len(), "2026-11-25T14:03:07.250Z".len(), "{s:?}");
            assert!(s.sent_at.ends_with('Z'));
        }
        stored.extend(appended);
    }
    assert_increasing(&ids(&stored));
    let a_sender_beyond_i64 = NewMessage {
        from: u64::MAX,
        ..message(35)
    };
    stored.extend(new(store.append(vec![a_sender_beyond_i64]).await.unwrap()));
    assert_increasing(&ids(&stored));

    // What the store reads back is exactly what append returned.
    assert_eq!(store.after(GENERAL, 0, 1000).await.unwrap(), stored);
    assert_eq!(store.latest(GENERAL, 1000).await.unwrap(), stored);
    assert_eq!(store.latest(GENERAL, 5).await.unwrap(), stored[31..]);
    assert!(store.latest(GENERAL, 0).await.unwrap().is_empty());

    // Forward from the start, 10 at a time.
    let mut forward = Vec::new();
    let mut last = 0;
    loop {
        let page = store.after(GENERAL, last, 10).await.unwrap();
        let Some(newest) = page.last() else { break };
        last = newest.id;
        forward.extend(page);
    }
    assert_eq!(forward, stored);

    // Backward from the newest 10 to the beginning, as history scrolls.
    let mut backward = store.latest(GENERAL, 10).await.unwrap();
    loop {
        let page = store.before(GENERAL, backward[0].id, 10).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        backward.splice(0..0, page);
    }
    assert_eq!(backward, stored);

    assert_eq!(
        store.before(GENERAL, stored[3].id, 2).await.unwrap(),
        stored[1..3]
    );
    assert_eq!(
        store.after(GENERAL, stored[3].id, 2).await.unwrap(),
        stored[4..6]
    );
    assert!(store
        .before(GENERAL, stored[0].id, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .after(GENERAL, stored[35].id, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(store.after(GENERAL, u64::MAX, 10).await.unwrap().is_empty());
    assert_eq!(
        store.before(GENERAL, u64::MAX, 1).await.unwrap(),
        stored[35..]
    );
}

async fn a_client_key_is_stored_once(place: Place) {
    let store = place.open().await;
    let first = new(store
        .append(vec![message(0), with_client_key(1, "a"), message(2)])
        .await
        .unwrap());
    let a = first[1].clone();

    // Across batches, and twice within one, beside new messages.
    let second = store
        .append(vec![
            with_client_key(3, "b"),
            with_client_key(4, "a"),
            message(5),
            with_client_key(6, "b"),
            with_client_key(7, "c"),
        ])
        .await
        .unwrap();
    let [Appended::New(b), Appended::Duplicate(a_again), Appended::New(five), Appended::Duplicate(b_again), Appended::New(c)] =
        &second[..]
    else {
        panic!("{second:?}");
    };
    assert_eq!(a_again, &a, "the earlier row: its id, sent_at and text");
    assert_eq!(b_again, b);
    assert_eq!(b.text, "message 3");
    assert_increasing(&[first[2].id, b.id, five.id, c.id]);

    // A batch of nothing but duplicates stores nothing.
    let third = store
        .append(vec![with_client_key(8, "c"), with_client_key(9, "a")])
        .await
        .unwrap();
    assert_eq!(
        third,
        [
            Appended::Duplicate(c.clone()),
            Appended::Duplicate(a.clone())
        ]
    );

    let all = store.after(GENERAL, 0, 100).await.unwrap();
    assert_eq!(
        all,
        [first.clone(), vec![b.clone(), five.clone(), c.clone()],].concat()
    );
    let next = new(store.append(vec![message(10)]).await.unwrap());
    assert!(next[0].id > c.id);
}

async fn reopening_keeps_every_message_and_ids_continue(place: Place) {
    let store = place.open().await;
    let before = new(store.append((0..20).map(message).collect()).await.unwrap());
    store.close().await;
    drop(store);

    let store = place.open().await;
    assert_eq!(store.after(GENERAL, 0, 100).await.unwrap(), before);
    let after = new(store
        .append(vec![message(20), with_client_key(21, "x")])
        .await
        .unwrap());
    assert!(after[0].id > before[19].id);
    drop(store);

    // Dropped without closing, as a killed process would leave it.
    let store = place.open().await;
    assert_eq!(
        store.after(GENERAL, 0, 100).await.unwrap(),
        [before, after.clone()].concat()
    );
    assert_eq!(
        store.append(vec![with_client_key(22, "x")]).await.unwrap(),
        [Appended::Duplicate(after[1].clone())]
    );
}

async fn a_failing_store_returns_errors(place: Place) {
    let store = place.open().await;
    let kept = new(store.append(vec![message(0)]).await.unwrap());

    let closed = place.open().await;
    closed.close().await;
    let error = closed.append(vec![message(1)]).await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    assert!(matches!(
        closed.latest(GENERAL, 10).await,
        Err(StoreError::Unavailable(_))
    ));
    // Another handle on the same database is unaffected.
    assert_eq!(store.latest(GENERAL, 10).await.unwrap(), kept);

    match &place.postgres {
        None => {
            // A database path under a regular file cannot be created.
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("a-file");
            std::fs::write(&file, "").unwrap();
            let url = format!("sqlite://{}/parley.db", file.display());
            let error = Store::open(&url).await.unwrap_err();
            assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
        }
        Some((admin, name)) => {
            // The database is dropped under a store that uses it.
            let mut conn = PgConnection::connect(admin).await.unwrap();
            conn.execute(format!("DROP DATABASE {name} WITH (FORCE)").as_str())
                .await
                .unwrap();
            let error = store.append(vec![message(2)]).await.unwrap_err();
            assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
            assert!(matches!(
                store.after(GENERAL, 0, 10).await,
                Err(StoreError::Unavailable(_))
            ));
            // Nothing listens on port 1: a server that is down.
            let error = Store::open("postgres://nobody@127.0.0.1:1/parley")
                .await
                .unwrap_err();
            assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
        }
    }
    for url in ["mysql://localhost/parley", "postgres://[::1"] {
        let error = Store::open(url).await.unwrap_err();
        assert!(
            matches!(error, StoreError::InvalidUrl(_)),
            "{url}: {error:?}"
        );
    }
}

/// Tasks on two stores (standing for two server processes) append at once.
async fn concurrent_appends_get_distinct_increasing_ids(place: Place) {
    const TASKS: usize = 8;
    const BATCHES: usize = 20;
    const SIZE: usize = 10;
    let stores = [place.open().await, place.open().await];
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TASKS {
        let store = stores[task % 2].clone();
        tasks.spawn(async move {
            let mut mine = Vec::new();
            for batch in 0..BATCHES {
                let messages = (0..SIZE)
                    .map(|i| {
                        let n = (task * BATCHES + batch) * SIZE + i;
                        with_client_key(n, &format!("{task}-{batch}-{i}"))
                    })
                    .collect();
                mine.extend(new(store.append(messages).await.unwrap()));
            }
            mine
        });
    }
    let mut everyone = Vec::new();
    while let Some(mine) = tasks.join_next().await {
        let mine = mine.unwrap();
        assert_increasing(&ids(&mine));
        everyone.extend(mine);
    }
    everyone.sort_by_key(|m| m.id);
    assert_eq!(everyone.len(), TASKS * BATCHES * SIZE);
    assert_increasing(&ids(&everyone));
    assert_eq!(stores[1].after(GENERAL, 0, 10_000).await.unwrap(), everyone);
}

/// Prints how fast 20,000 messages are appended in batches of 100.
async fn append_rate(place: Place) {
    const TOTAL: usize = 20_000;
    const BATCH: usize = 100;
    let store = place.open().await;
    let start = Instant::now();
    for batch in 0..TOTAL / BATCH {
        let messages = (0..BATCH)
            .map(|i| {
                let n = batch * BATCH + i;
                with_client_key(n, &format!("rate-{n}"))
            })
            .collect();
        store.append(messages).await.unwrap();
    }
    let elapsed = start.elapsed();
    let backend = if place.postgres.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "{backend}: {TOTAL} messages in batches of {BATCH} in {elapsed:.2?}: {:.0} messages/s",
        TOTAL as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(
        store.latest(GENERAL, 1).await.unwrap()[0].text,
        "message 19999"
    );
}

#[test]
fn a_database_url_gets_another_database() {
    assert_eq!(
        with_database("postgres://me@127.0.0.1:5432/postgres", "t1"),
        "postgres://me@127.0.0.1:5432/t1"
    );
    assert_eq!(
        with_database("postgres://me@host?sslmode=disable", "t1"),
        "postgres://me@host/t1?sslmode=disable"
    );
}

async fn a_session_keeps_its_latest_nickname_across_reopening(place: Place) {
    let store = place.open().await;
    assert_eq!(store.session("digest-a").await.unwrap(), None);
    store.save_session("digest-a", "alice").await.unwrap();
    store.save_session("digest-a", "Alicia").await.unwrap();
    store.save_session("digest-b", "bob").await.unwrap();
    store.close().await;
    let store = place.open().await;
    assert_eq!(
        store.session("digest-a").await.unwrap().as_deref(),
        Some("Alicia")
    );
    assert_eq!(
        store.session("digest-b").await.unwrap().as_deref(),
        Some("bob")
    );
}

async fn rooms_keep_their_messages_apart_and_the_tail_reads_them_all(place: Place) {
    let store = place.open().await;
    let in_room = |n: usize, room: &str| NewMessage {
        room: room.into(),
        ..message(n)
    };
    let batch = (0..12)
        .map(|n| in_room(n, if n % 3 == 0 { "rust" } else { GENERAL }))
        .collect();
    let stored: Vec<StoredMessage> = store
        .append(batch)
        .await
        .unwrap()
        .iter()
        .map(|appended| appended.message().clone())
        .collect();
    let of = |room: &str| -> Vec<StoredMessage> {
        stored.iter().filter(|m| m.room == room).cloned().collect()
    };
    assert_eq!(store.latest("rust", 100).await.unwrap(), of("rust"));
    assert_eq!(store.latest(GENERAL, 100).await.unwrap(), of(GENERAL));
    assert_eq!(
        store.after("rust", stored[3].id, 100).await.unwrap(),
        of("rust")[2..]
    );
    assert_eq!(
        store.before("rust", stored[9].id, 1).await.unwrap(),
        of("rust")[2..3]
    );
    assert!(store.latest("empty", 10).await.unwrap().is_empty());
    assert_eq!(store.tail(stored[5].id, 100).await.unwrap(), stored[6..]);
}

async fn the_secret_is_made_once_and_shared_by_every_opener(place: Place) {
    let first = place.open().await;
    let second = place.open().await;
    assert_eq!(first.secret().bytes(), second.secret().bytes());
    assert_ne!(first.secret().bytes(), &[0; 32]);
    first.close().await;
    second.close().await;
    let reopened = place.open().await;
    assert_eq!(reopened.secret().bytes(), first.secret().bytes());
    assert_eq!(format!("{:?}", reopened.secret()), "Secret(…)");
}

async fn forgetting_old_messages_keeps_paging_and_resuming_whole(place: Place) {
    let store = place.open().await;
    let old = store.append((0..5).map(message).collect()).await.unwrap();
    let newest_old = old.last().unwrap().message().id;
    // The next batch is stored at a later millisecond.
    let cutoff = SystemTime::now() + Duration::from_millis(2);
    while SystemTime::now() <= cutoff {
        tokio::task::yield_now().await;
    }
    let kept: Vec<u64> = store
        .append((5..8).map(message).collect())
        .await
        .unwrap()
        .iter()
        .map(|appended| appended.message().id)
        .collect();

    assert_eq!(store.forget_before(cutoff).await.unwrap(), 5);
    assert_eq!(store.forget_before(cutoff).await.unwrap(), 0, "once");
    let ids = |messages: Vec<StoredMessage>| messages.iter().map(|m| m.id).collect::<Vec<_>>();
    // Resuming after an id that is gone, or from before them all.
    assert_eq!(
        ids(store.after(GENERAL, newest_old - 2, 10).await.unwrap()),
        kept
    );
    assert_eq!(ids(store.after(GENERAL, 0, 10).await.unwrap()), kept);
    // Paging back stops at what is left.
    assert_eq!(
        ids(store.before(GENERAL, kept[0], 10).await.unwrap()),
        Vec::<u64>::new()
    );
    assert_eq!(ids(store.latest(GENERAL, 10).await.unwrap()), kept);
    // New ids never go back to the forgotten ones.
    let next = store.append(vec![message(9)]).await.unwrap();
    assert!(next[0].message().id > *kept.last().unwrap());
}
