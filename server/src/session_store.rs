//! tower-sessions storage in moim's own database.
//!
//! Why our own store: the published `tower-sessions-sqlx-store` offers one
//! store per concrete pool type (SqlitePool, PgPool), while moim runs every
//! query through a single `sqlx::Any` pool so that SQLite and PostgreSQL
//! share code. This store is that pool's, with the same table on both.

use async_trait::async_trait;
use sqlx::AnyPool;
use std::time::Duration;
use time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{self, ExpiredDeletion, SessionStore};

#[derive(Debug, Clone)]
pub struct DbSessionStore {
    pool: AnyPool,
    /// Times each load and save (every request with a session does one).
    metrics: domain::metrics::Metrics,
}

fn backend(err: sqlx::Error) -> session_store::Error {
    session_store::Error::Backend(err.to_string())
}

fn expiry_ms(record: &Record) -> i64 {
    (record.expiry_date.unix_timestamp_nanos() / 1_000_000) as i64
}

use domain::clock::now_ms;

impl DbSessionStore {
    pub fn new(pool: AnyPool) -> Self {
        Self {
            pool,
            metrics: domain::metrics::Metrics::default(),
        }
    }

    /// Times loads and saves into `metrics`.
    pub fn with_metrics(mut self, metrics: domain::metrics::Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    /// Deletes expired sessions every `period`, for as long as the process
    /// lives.
    pub fn spawn_cleanup(&self, period: Duration) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(period);
            loop {
                ticks.tick().await;
                if let Err(err) = store.delete_expired().await {
                    tracing::warn!(error = %err, "expired-session clean-up failed");
                }
            }
        })
    }
}

#[async_trait]
impl SessionStore for DbSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        let data = serde_json::to_string(&record.data)
            .map_err(|e| session_store::Error::Encode(e.to_string()))?;
        // Ids are 128 random bits; a collision is a theoretical event, but it
        // must never hand someone another person's session.
        for _ in 0..4 {
            let result =
                sqlx::query("INSERT INTO sessions (id, data, expiry_ms) VALUES ($1, $2, $3)")
                    .bind(record.id.to_string())
                    .bind(&data)
                    .bind(expiry_ms(record))
                    .execute(&self.pool)
                    .await;
            match result {
                Ok(_) => return Ok(()),
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    record.id = Id::default();
                }
                Err(e) => return Err(backend(e)),
            }
        }
        Err(session_store::Error::Backend(
            "could not find a free session id".to_string(),
        ))
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.metrics
            .timed_query("session_save", self.save_now(record))
            .await
    }

    async fn load(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        self.metrics
            .timed_query("session_load", self.load_now(session_id))
            .await
    }
    async fn delete(&self, session_id: &Id) -> session_store::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id = $1")
            .bind(session_id.to_string())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl ExpiredDeletion for DbSessionStore {
    async fn delete_expired(&self) -> session_store::Result<()> {
        sqlx::query("DELETE FROM sessions WHERE expiry_ms <= $1")
            .bind(now_ms())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

impl DbSessionStore {
    async fn save_now(&self, record: &Record) -> session_store::Result<()> {
        let data = serde_json::to_string(&record.data)
            .map_err(|e| session_store::Error::Encode(e.to_string()))?;
        // An update, never an insert: `save` is for a session that exists.
        // A request (or a live call) still holding a session that sign-out,
        // a password change or the expiry sweep deleted meanwhile must not
        // bring it back, or a stolen cookie would outlive the sign-out.
        // New sessions come through `create`.
        let updated = sqlx::query(
            "UPDATE sessions SET data = $2, expiry_ms = $3 WHERE id = $1 AND expiry_ms > $4",
        )
        .bind(record.id.to_string())
        .bind(data)
        .bind(expiry_ms(record))
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        if updated.rows_affected() == 0 {
            tracing::debug!("a session ended while in use was not saved again");
        }
        Ok(())
    }

    async fn load_now(&self, session_id: &Id) -> session_store::Result<Option<Record>> {
        let row: Option<(String, i64)> =
            sqlx::query_as("SELECT data, expiry_ms FROM sessions WHERE id = $1 AND expiry_ms > $2")
                .bind(session_id.to_string())
                .bind(now_ms())
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        let Some((data, expiry)) = row else {
            return Ok(None);
        };
        let data =
            serde_json::from_str(&data).map_err(|e| session_store::Error::Decode(e.to_string()))?;
        let expiry_date = OffsetDateTime::from_unix_timestamp_nanos(i128::from(expiry) * 1_000_000)
            .map_err(|e| session_store::Error::Decode(e.to_string()))?;
        Ok(Some(Record {
            id: *session_id,
            data,
            expiry_date,
        }))
    }
}
