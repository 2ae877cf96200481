//! SQLite: one file, in WAL mode so readers never wait for the writer.

use std::{str::FromStr, time::Duration};

use sqlx::{
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
    QueryBuilder, Sqlite, SqlitePool,
};

use super::{
    already_stored, assemble, candidates, now, rows, sql_limit, to_sql, Appended, NewMessage,
    Range, Row, StoreError, StoredMessage, ROWS_PER_STATEMENT,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

const COLUMNS: &str = "id, room, sent_at, sender, nickname, text, client_key";

/// The committer's pool (one connection: SQLite has one writer at a time
/// anyway) and the readers' pool, over the same file.
pub(super) async fn open(url: &str) -> Result<(SqlitePool, SqlitePool), StoreError> {
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|error| StoreError::InvalidUrl(error.to_string()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL, not NORMAL: in WAL mode NORMAL may lose the last commits on
        // a power cut, and a message is acked once its commit returns. With
        // batched appends the flush per commit is affordable.
        .synchronous(SqliteSynchronous::Full)
        // Writers queue on SQLite's lock (another pool, another process);
        // past this they fail as unavailable rather than hang.
        .busy_timeout(Duration::from_secs(5));
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    if in_memory {
        // An in-memory database lives as long as its one connection, which
        // both sides share.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        return Ok((pool.clone(), pool));
    }
    if let Some(dir) = options.get_filename().parent() {
        if !dir.as_os_str().is_empty() {
            tokio::fs::create_dir_all(dir).await.map_err(|error| {
                StoreError::Unavailable(format!("cannot create {}: {error}", dir.display()))
            })?;
        }
    }
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options.clone())
        .await?;
    MIGRATOR.run(&writer).await?;
    let reader = SqlitePoolOptions::new()
        .max_connections(4)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await?;
    Ok((writer, reader))
}

pub(super) async fn append(
    pool: &SqlitePool,
    batch: Vec<NewMessage>,
) -> Result<Vec<Appended>, StoreError> {
    let sent_at = now();
    // The first statement writes, so the transaction takes SQLite's write
    // lock at once (waiting up to the busy timeout) and holds it to commit:
    // ids are handed out one batch at a time, in batch order.
    let mut tx = pool.begin().await?;
    let candidates = candidates(&batch);
    let mut inserted = Vec::with_capacity(candidates.len());
    for chunk in candidates.chunks(ROWS_PER_STATEMENT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO messages (room, sent_at, sender, nickname, text, client_key) ",
        );
        insert.push_values(chunk, |mut row, message| {
            row.push_bind(message.room.as_str())
                .push_bind(sent_at.as_str())
                .push_bind(to_sql(message.from))
                .push_bind(message.nickname.as_str())
                .push_bind(message.text.as_str())
                .push_bind(message.client_key.as_deref());
        });
        insert.push(" ON CONFLICT (client_key) DO NOTHING RETURNING id, client_key");
        inserted.extend(
            insert
                .build_query_as::<(i64, Option<String>)>()
                .fetch_all(&mut *tx)
                .await?,
        );
    }
    let mut earlier = Vec::new();
    for chunk in already_stored(&candidates, &inserted).chunks(ROWS_PER_STATEMENT) {
        let mut select = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {COLUMNS} FROM messages WHERE client_key IN ("
        ));
        let mut list = select.separated(", ");
        for client_key in chunk {
            list.push_bind(client_key.as_str());
        }
        select.push(")");
        earlier.extend(rows(
            select.build_query_as::<Row>().fetch_all(&mut *tx).await?,
        )?);
    }
    tx.commit().await?;
    assemble(batch, &sent_at, inserted, earlier)
}

pub(super) async fn range(
    pool: &SqlitePool,
    range: Range<'_>,
) -> Result<Vec<StoredMessage>, StoreError> {
    // Two statements rather than `(? IS NULL OR room = ?)`, which would keep
    // the planner from the (room, id) index.
    let room = if range.room.is_some() {
        "room = ? AND"
    } else {
        ""
    };
    let query = format!(
        "SELECT {COLUMNS} FROM messages WHERE {room} id > ? AND id < ? ORDER BY id {} LIMIT ?",
        range.order()
    );
    let mut select = sqlx::query_as::<_, Row>(&query);
    if let Some(room) = range.room {
        select = select.bind(room);
    }
    rows(
        select
            .bind(range.above)
            .bind(range.below)
            .bind(sql_limit(range.limit))
            .fetch_all(pool)
            .await?,
    )
}

pub(super) async fn save_session(
    pool: &SqlitePool,
    token_digest: &str,
    nickname: &str,
    saved_at: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sessions (token_digest, nickname, saved_at) VALUES (?, ?, ?) \
         ON CONFLICT (token_digest) DO UPDATE SET nickname = excluded.nickname, \
         saved_at = excluded.saved_at",
    )
    .bind(token_digest)
    .bind(nickname)
    .bind(saved_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub(super) async fn session(
    pool: &SqlitePool,
    token_digest: &str,
) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT nickname FROM sessions WHERE token_digest = ?")
            .bind(token_digest)
            .fetch_optional(pool)
            .await?,
    )
}

/// The secret `name`, made from `fresh` if the database has none yet (the
/// first process to ask wins; every other one reads what it made).
pub(super) async fn secret(
    pool: &SqlitePool,
    name: &str,
    fresh: &str,
) -> Result<String, StoreError> {
    sqlx::query("INSERT INTO secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(fresh)
        .execute(pool)
        .await?;
    Ok(
        sqlx::query_scalar("SELECT value FROM secrets WHERE name = ?")
            .bind(name)
            .fetch_one(pool)
            .await?,
    )
}

/// Deletes up to `limit` of the oldest messages sent before `cutoff` (RFC
/// 3339 UTC with milliseconds, which compares as text like `sent_at`).
pub(super) async fn forget_before(
    pool: &SqlitePool,
    cutoff: &str,
    limit: i64,
) -> Result<u64, StoreError> {
    let deleted = sqlx::query(
        "DELETE FROM messages WHERE id IN \
         (SELECT id FROM messages WHERE sent_at < ? ORDER BY id LIMIT ?)",
    )
    .bind(cutoff)
    .bind(limit)
    .execute(pool)
    .await?;
    Ok(deleted.rows_affected())
}
