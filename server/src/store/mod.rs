//! The message store: every chat message, durably, in a SQLite file (the
//! default, no setup) or a PostgreSQL database.
//!
//! Ids come from the database and strictly increase in commit order, so a
//! client that knows the last id it saw can ask for exactly what it missed.
//! Messages are appended in batches, one transaction each, so a caller that
//! gathers whatever arrived while the previous commit was running (group
//! commit) pays one disk flush for many messages.

mod postgres;
mod sqlite;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sqlx::{PgPool, SqlitePool};
use tokio::sync::{Semaphore, SemaphorePermit};

/// A message to store, as the session accepted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// A valid room name (see `app::protocol::RoomName`).
    pub room: String,
    pub from: u64,
    pub nickname: String,
    pub text: String,
    /// What makes resending it safe: a message with a key already stored
    /// is not stored again. See [`client_key`].
    pub client_key: Option<String>,
}

/// The key of a message its sender gave an id (`client_id`): the id is the
/// sender's choice, so it is only unique among the sender's own messages.
/// `sender` is what stands for them (a digest of their resume token); an
/// id never contains `:`, so no two pairs give the same key.
pub fn client_key(sender: &str, client_id: &str) -> String {
    format!("{sender}:{client_id}")
}

/// A message as stored: `id` assigned by the database, strictly increasing.
/// Serializable: the [broker](crate::broker) passes it between processes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredMessage {
    pub id: u64,
    pub room: String,
    /// RFC 3339 UTC with milliseconds, e.g. `2026-11-25T14:03:07.250Z`.
    pub sent_at: String,
    pub from: u64,
    pub nickname: String,
    pub text: String,
    /// See [`NewMessage::client_key`].
    pub client_key: Option<String>,
}

/// What became of one message of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    New(StoredMessage),
    /// Its `client_key` was stored before: the earlier row.
    Duplicate(StoredMessage),
}

impl Appended {
    /// The stored row, new or earlier.
    pub fn message(&self) -> &StoredMessage {
        match self {
            Appended::New(message) | Appended::Duplicate(message) => message,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or written: down, dropped, disk full,
    /// read-only, or the store was closed. Nothing of the batch was stored.
    #[error("the message store is unavailable: {0}")]
    Unavailable(String),
    /// `DATABASE_URL` is neither a SQLite nor a PostgreSQL URL, or malformed.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// The embedded migrations could not be applied (e.g. the database was
    /// migrated by a newer Parley).
    #[error("the message store could not be migrated: {0}")]
    Migration(String),
    /// Too many reads are waiting already ([`MAX_READS`]); try again.
    #[error("the message store is busy: too many reads at once")]
    Busy,
    /// The database returned rows that contradict the schema.
    #[error("the message store returned unexpected data: {0}")]
    Unexpected(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::Unavailable(error.to_string())
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(error: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migration(error.to_string())
    }
}

/// The message store; cheap to clone (clones share one connection pool).
#[derive(Clone, Debug)]
pub struct Store {
    /// The committer's own connection: no read, however many, keeps a
    /// message from being stored.
    writer: Db,
    /// Everything else: page renders, history, catch-up, nicknames.
    reader: Db,
    /// Reads in flight or waiting for a connection; past [`MAX_READS`] a
    /// read fails at once with [`StoreError::Busy`] rather than queue.
    reads: Arc<Semaphore>,
    secret: Secret,
}

/// Most reads in flight or waiting for one of the reading connections:
/// each is a task and a future holding its request, so a flood of page
/// loads or `history` frames must not queue without limit.
pub const MAX_READS: usize = 256;

/// Longest a commit may take before its batch fails (and its senders get
/// `unavailable`): a hung statement must not stall every later message.
pub const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// 256 random bits made with the database (see [`Store::secret`]).
#[derive(Clone)]
pub struct Secret(Arc<[u8; 32]>);

impl Secret {
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Redacted: whoever holds it can sign as the server.
impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

#[derive(Clone, Debug)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Rows per INSERT or lookup statement: 5 bound parameters a row stays under
/// SQLite's 32766 and PostgreSQL's 65535, however big a batch gets.
const ROWS_PER_STATEMENT: usize = 1000;

impl Store {
    /// Opens the store and runs the embedded migrations. `url` is
    /// `sqlite://path/to/file.db` (the file and its directory are created if
    /// missing), `sqlite::memory:`, or `postgres://...`.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let (writer, reader) = if url.starts_with("sqlite:") {
            let (writer, reader) = sqlite::open(url).await?;
            (Db::Sqlite(writer), Db::Sqlite(reader))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let (writer, reader) = postgres::open(url).await?;
            (Db::Postgres(writer), Db::Postgres(reader))
        } else {
            return Err(StoreError::InvalidUrl(format!(
                "{url:?} starts with neither sqlite: nor postgres://"
            )));
        };
        let secret = Self::load_secret(&writer).await?;
        Ok(Store {
            writer,
            reader,
            reads: Arc::new(Semaphore::new(MAX_READS)),
            secret,
        })
    }

    /// The reads allowed at once ([`MAX_READS`]): taking permits here
    /// leaves fewer for the server (how the tests fill it).
    pub fn reads(&self) -> &Semaphore {
        &self.reads
    }

    fn read_slot(&self) -> Result<SemaphorePermit<'_>, StoreError> {
        self.reads.try_acquire().map_err(|_| StoreError::Busy)
    }

    /// The database's secret, made by the first process that opened it
    /// and the same for every process and restart after: what the server
    /// signs resume tokens with.
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    async fn load_secret(db: &Db) -> Result<Secret, StoreError> {
        const NAME: &str = "server";
        let mut fresh = [0; 32];
        getrandom::fill(&mut fresh)
            .map_err(|error| StoreError::Unavailable(format!("no random source: {error}")))?;
        let fresh = hex::encode(fresh);
        let stored = match db {
            Db::Sqlite(pool) => sqlite::secret(pool, NAME, &fresh).await?,
            Db::Postgres(pool) => postgres::secret(pool, NAME, &fresh).await?,
        };
        hex::decode(&stored)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .map(|bytes| Secret(Arc::new(bytes)))
            .ok_or_else(|| {
                StoreError::Unexpected("the stored secret is not 32 bytes of hex".into())
            })
    }

    /// Stores the batch in one transaction, in order, and returns one result
    /// per message in the same order. A message whose `client_key` is already
    /// stored (in an earlier batch or earlier in this one) is not inserted
    /// again: it gets [`Appended::Duplicate`] with the earlier row. On error
    /// nothing of the batch is stored.
    pub async fn append(&self, batch: Vec<NewMessage>) -> Result<Vec<Appended>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let append = async {
            match &self.writer {
                Db::Sqlite(pool) => sqlite::append(pool, batch).await,
                Db::Postgres(pool) => postgres::append(pool, batch).await,
            }
        };
        // Dropping the transaction rolls it back (PostgreSQL's own
        // statement timeout usually answers first).
        tokio::time::timeout(COMMIT_TIMEOUT, append)
            .await
            .map_err(|_| StoreError::Unavailable("the commit timed out".into()))?
    }

    /// The newest `limit` messages of `room`, oldest first.
    pub async fn latest(&self, room: &str, limit: u32) -> Result<Vec<StoredMessage>, StoreError> {
        self.range(Range {
            room: Some(room),
            above: i64::MIN,
            below: i64::MAX,
            newest_first: true,
            limit,
        })
        .await
    }

    /// Up to `limit` messages of `room` with id > `after`, oldest first.
    pub async fn after(
        &self,
        room: &str,
        after: u64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.range(Range {
            room: Some(room),
            above: i64::try_from(after).unwrap_or(i64::MAX),
            below: i64::MAX,
            newest_first: false,
            limit,
        })
        .await
    }

    /// Up to `limit` messages of `room` with id < `before`, the newest of
    /// those, oldest first.
    pub async fn before(
        &self,
        room: &str,
        before: u64,
        limit: u32,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        self.range(Range {
            room: Some(room),
            above: i64::MIN,
            below: i64::try_from(before).unwrap_or(i64::MAX),
            newest_first: true,
            limit,
        })
        .await
    }

    /// Up to `limit` messages of every room with id > `after`, oldest first:
    /// what a server process relays when it cannot trust its broker to have
    /// brought everything.
    pub async fn tail(&self, after: u64, limit: u32) -> Result<Vec<StoredMessage>, StoreError> {
        self.range(Range {
            room: None,
            above: i64::try_from(after).unwrap_or(i64::MAX),
            below: i64::MAX,
            newest_first: false,
            limit,
        })
        .await
    }

    /// The id of the newest message of any room; 0 when there is none.
    pub async fn newest_id(&self) -> Result<u64, StoreError> {
        let newest = self
            .range(Range {
                room: None,
                above: i64::MIN,
                below: i64::MAX,
                newest_first: true,
                limit: 1,
            })
            .await?;
        Ok(newest.first().map_or(0, |message| message.id))
    }

    /// The messages `range` asks for, oldest first.
    async fn range(&self, range: Range<'_>) -> Result<Vec<StoredMessage>, StoreError> {
        let _slot = self.read_slot()?;
        let mut messages = match &self.reader {
            Db::Sqlite(pool) => sqlite::range(pool, range).await?,
            Db::Postgres(pool) => postgres::range(pool, range).await?,
        };
        if range.newest_first {
            messages.reverse();
        }
        Ok(messages)
    }

    /// Deletes the messages stored before `cutoff`, a batch at a time (so
    /// the committer, which shares the connection, waits little), and
    /// returns how many. Ids are never reused, so paging by id and resuming
    /// `after` an id that is gone still work: they read what is left.
    pub async fn forget_before(&self, cutoff: SystemTime) -> Result<u64, StoreError> {
        const BATCH: i64 = 1000;
        let cutoff = humantime::format_rfc3339_millis(cutoff).to_string();
        let mut forgotten = 0;
        loop {
            let deleted = match &self.writer {
                Db::Sqlite(pool) => sqlite::forget_before(pool, &cutoff, BATCH).await?,
                Db::Postgres(pool) => postgres::forget_before(pool, &cutoff, BATCH).await?,
            };
            forgotten += deleted;
            if deleted < BATCH as u64 {
                return Ok(forgotten);
            }
        }
    }

    /// Remembers `nickname` for the resume token whose digest is
    /// `token_digest` (replacing what it was).
    pub async fn save_session(&self, token_digest: &str, nickname: &str) -> Result<(), StoreError> {
        let _slot = self.read_slot()?;
        match &self.reader {
            Db::Sqlite(pool) => sqlite::save_session(pool, token_digest, nickname, &now()).await,
            Db::Postgres(pool) => {
                postgres::save_session(pool, token_digest, nickname, &now()).await
            }
        }
    }

    /// The nickname last saved for the token whose digest is `token_digest`.
    pub async fn session(&self, token_digest: &str) -> Result<Option<String>, StoreError> {
        let _slot = self.read_slot()?;
        match &self.reader {
            Db::Sqlite(pool) => sqlite::session(pool, token_digest).await,
            Db::Postgres(pool) => postgres::session(pool, token_digest).await,
        }
    }

    /// Closes every connection, waiting for those in use; later calls fail
    /// with [`StoreError::Unavailable`]. For a clean shutdown (SQLite then
    /// folds its write-ahead log back into the database file).
    pub async fn close(&self) {
        for db in [&self.writer, &self.reader] {
            match db {
                Db::Sqlite(pool) => pool.close().await,
                Db::Postgres(pool) => pool.close().await,
            }
        }
    }
}

/// One read of `messages`: the ids strictly between `above` and `below`
/// (in one room, or in all), `limit` of them from the newest end or from
/// the oldest.
#[derive(Debug, Clone, Copy)]
struct Range<'a> {
    room: Option<&'a str>,
    above: i64,
    below: i64,
    newest_first: bool,
    limit: u32,
}

impl Range<'_> {
    fn order(self) -> &'static str {
        if self.newest_first {
            "DESC"
        } else {
            "ASC"
        }
    }
}

/// A row of `messages` as both backends select it (`sent_at` as text).
#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    room: String,
    sent_at: String,
    sender: i64,
    nickname: String,
    text: String,
    client_key: Option<String>,
}

impl TryFrom<Row> for StoredMessage {
    type Error = StoreError;

    fn try_from(row: Row) -> Result<Self, StoreError> {
        Ok(StoredMessage {
            id: stored_id(row.id)?,
            room: row.room,
            sent_at: row.sent_at,
            from: from_sql(row.sender),
            nickname: row.nickname,
            text: row.text,
            client_key: row.client_key,
        })
    }
}

fn rows(rows: Vec<Row>) -> Result<Vec<StoredMessage>, StoreError> {
    rows.into_iter().map(StoredMessage::try_from).collect()
}

fn stored_id(id: i64) -> Result<u64, StoreError> {
    u64::try_from(id).map_err(|_| StoreError::Unexpected(format!("negative message id {id}")))
}

/// Both databases only have signed 64-bit integers: a sender is stored as
/// the i64 with the same bits, so every u64 survives the round trip.
fn to_sql(sender: u64) -> i64 {
    sender as i64
}

fn from_sql(sender: i64) -> u64 {
    sender as u64
}

fn sql_limit(limit: u32) -> i64 {
    i64::from(limit)
}

/// The time a batch is stored at, as clients see it.
fn now() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// The messages of a batch to insert, in order: all those without a
/// `client_key`, and the first with each `client_key` (a later one is a
/// duplicate of it whatever the database holds).
fn candidates(batch: &[NewMessage]) -> Vec<&NewMessage> {
    let mut seen = HashSet::new();
    batch
        .iter()
        .filter(|message| match &message.client_key {
            Some(client_key) => seen.insert(client_key.as_str()),
            None => true,
        })
        .collect()
}

/// The `client_key`s of candidates that the insert skipped because they
/// were already stored: their earlier rows must be looked up.
fn already_stored(candidates: &[&NewMessage], inserted: &[(i64, Option<String>)]) -> Vec<String> {
    let inserted: HashSet<&str> = inserted.iter().filter_map(|(_, c)| c.as_deref()).collect();
    candidates
        .iter()
        .filter_map(|message| message.client_key.as_deref())
        .filter(|client_key| !inserted.contains(client_key))
        .map(str::to_owned)
        .collect()
}

/// Matches what the database did to the batch: `inserted` are the
/// `(id, client_key)` the INSERTs returned, `earlier` the rows found for
/// [`already_stored`].
///
/// RETURNING promises no order, but ids are handed out in the order the
/// rows are inserted (one writer at a time holds the batch's ids), so the
/// inserted messages, in batch order, get the returned ids sorted.
fn assemble(
    batch: Vec<NewMessage>,
    sent_at: &str,
    mut inserted: Vec<(i64, Option<String>)>,
    earlier: Vec<StoredMessage>,
) -> Result<Vec<Appended>, StoreError> {
    inserted.sort_unstable_by_key(|(id, _)| *id);
    let inserted_client_keys: HashSet<String> =
        inserted.iter().filter_map(|(_, c)| c.clone()).collect();
    let mut ids = inserted.into_iter().map(|(id, _)| id);
    let mut by_client_key: HashMap<String, StoredMessage> = earlier
        .into_iter()
        .filter_map(|row| Some((row.client_key.clone()?, row)))
        .collect();
    let mut appended = Vec::with_capacity(batch.len());
    for message in batch {
        if let Some(client_key) = &message.client_key {
            if let Some(earlier) = by_client_key.get(client_key) {
                appended.push(Appended::Duplicate(earlier.clone()));
                continue;
            }
            if !inserted_client_keys.contains(client_key) {
                return Err(StoreError::Unexpected(format!(
                    "client_key {client_key:?} was neither inserted nor found"
                )));
            }
        }
        let id = ids
            .next()
            .ok_or_else(|| StoreError::Unexpected("fewer ids than inserted messages".into()))?;
        let stored = StoredMessage {
            id: stored_id(id)?,
            room: message.room,
            sent_at: sent_at.to_owned(),
            from: message.from,
            nickname: message.nickname,
            text: message.text,
            client_key: message.client_key,
        };
        if let Some(client_key) = &stored.client_key {
            by_client_key.insert(client_key.clone(), stored.clone());
        }
        appended.push(Appended::New(stored));
    }
    if ids.next().is_some() {
        return Err(StoreError::Unexpected(
            "more ids than inserted messages".into(),
        ));
    }
    Ok(appended)
}
