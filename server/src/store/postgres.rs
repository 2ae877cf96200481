//! PostgreSQL: for several server processes sharing one database.

use std::time::Duration;

use sqlx::{postgres::PgPoolOptions, PgPool, Postgres, QueryBuilder};

use super::{
    already_stored, assemble, candidates, now, rows, sql_limit, to_sql, Appended, NewMessage,
    Range, Row, StoreError, StoredMessage, ROWS_PER_STATEMENT,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// `sent_at` is a TIMESTAMPTZ; clients get it as RFC 3339 UTC, milliseconds.
const COLUMNS: &str = "id, room, \
    to_char(sent_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') AS sent_at, \
    sender, nickname, text, client_key";

/// The advisory lock every append transaction holds ("parley" in ASCII).
const APPEND_LOCK: i64 = 0x7061_726c_6579;

/// The committer's pool (one connection: appends hold one lock anyway)
/// and the readers' pool. Statements on either give up after a while, so a
/// hung one cannot hold a connection for ever.
pub(super) async fn open(url: &str) -> Result<(PgPool, PgPool), StoreError> {
    let pool = |connections: u32, timeout: &'static str| {
        PgPoolOptions::new()
            .max_connections(connections)
            // A database that is down fails the call soon, as unavailable.
            .acquire_timeout(Duration::from_secs(5))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    sqlx::query(&format!("SET statement_timeout = '{timeout}'"))
                        .execute(connection)
                        .await?;
                    Ok(())
                })
            })
    };
    let configuration = |error: sqlx::Error| match error {
        sqlx::Error::Configuration(error) => StoreError::InvalidUrl(error.to_string()),
        error => error.into(),
    };
    // Migrations may take long (an index on millions of rows): on a
    // connection of their own, without the timeout.
    let migrations = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(configuration)?;
    MIGRATOR.run(&migrations).await?;
    migrations.close().await;
    let writer = pool(1, "5s").connect(url).await.map_err(configuration)?;
    let reader = pool(8, "10s").connect(url).await.map_err(configuration)?;
    Ok((writer, reader))
}

pub(super) async fn append(
    pool: &PgPool,
    batch: Vec<NewMessage>,
) -> Result<Vec<Appended>, StoreError> {
    let mut tx = pool.begin().await?;
    // Identity values are taken at insert time but become visible at
    // commit, so two concurrent transactions (from this process or another)
    // could commit ids out of order, and a reader asking for "after N"
    // could skip one for good. Holding this lock until commit serializes
    // appends: ids appear strictly increasing in commit order.
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(APPEND_LOCK)
        .execute(&mut *tx)
        .await?;
    let sent_at = now();
    let candidates = candidates(&batch);
    let mut inserted = Vec::with_capacity(candidates.len());
    for chunk in candidates.chunks(ROWS_PER_STATEMENT) {
        let mut insert = QueryBuilder::<Postgres>::new(
            "INSERT INTO messages (room, sent_at, sender, nickname, text, client_key) ",
        );
        insert.push_values(chunk, |mut row, message| {
            row.push_bind(message.room.as_str())
                .push_bind(sent_at.as_str())
                .push_unseparated("::timestamptz")
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
        let mut select = QueryBuilder::<Postgres>::new(format!(
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
    pool: &PgPool,
    range: Range<'_>,
) -> Result<Vec<StoredMessage>, StoreError> {
    // Two statements rather than `($1 IS NULL OR room = $1)`, which would
    // keep generic plans from the (room, id) index.
    let room = if range.room.is_some() {
        "room = $4 AND"
    } else {
        ""
    };
    let query = format!(
        "SELECT {COLUMNS} FROM messages WHERE {room} id > $1 AND id < $2 ORDER BY id {} LIMIT $3",
        range.order()
    );
    let mut select = sqlx::query_as::<_, Row>(&query)
        .bind(range.above)
        .bind(range.below)
        .bind(sql_limit(range.limit));
    if let Some(room) = range.room {
        select = select.bind(room);
    }
    rows(select.fetch_all(pool).await?)
}

pub(super) async fn save_session(
    pool: &PgPool,
    token_digest: &str,
    nickname: &str,
    saved_at: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO sessions (token_digest, nickname, saved_at) \
         VALUES ($1, $2, $3::timestamptz) \
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
    pool: &PgPool,
    token_digest: &str,
) -> Result<Option<String>, StoreError> {
    Ok(
        sqlx::query_scalar("SELECT nickname FROM sessions WHERE token_digest = $1")
            .bind(token_digest)
            .fetch_optional(pool)
            .await?,
    )
}

/// The secret `name`, made from `fresh` if the database has none yet (the
/// first process to ask wins; every other one reads what it made).
pub(super) async fn secret(pool: &PgPool, name: &str, fresh: &str) -> Result<String, StoreError> {
    sqlx::query("INSERT INTO secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(fresh)
        .execute(pool)
        .await?;
    Ok(
        sqlx::query_scalar("SELECT value FROM secrets WHERE name = $1")
            .bind(name)
            .fetch_one(pool)
            .await?,
    )
}

/// Deletes up to `limit` of the oldest messages sent before `cutoff` (RFC
/// 3339).
pub(super) async fn forget_before(
    pool: &PgPool,
    cutoff: &str,
    limit: i64,
) -> Result<u64, StoreError> {
    let deleted = sqlx::query(
        "DELETE FROM messages WHERE id IN \
         (SELECT id FROM messages WHERE sent_at < $1::timestamptz ORDER BY id LIMIT $2)",
    )
    .bind(cutoff)
    .bind(limit)
    .execute(pool)
    .await?;
    Ok(deleted.rows_affected())
}
