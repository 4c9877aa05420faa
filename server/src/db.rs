//! The database pool: SQLite by default, PostgreSQL when DATABASE_URL says
//! so. One `sqlx::Any` pool serves both; queries use only the types both
//! drivers share (text ids, integer unix-millisecond times).

use crate::config::Config;
use crate::error::StartupError;
use sqlx::any::AnyPoolOptions;
use sqlx::AnyPool;
use std::time::Duration;

use domain::db::MIGRATIONS;

/// The URL to connect to: DATABASE_URL, or a SQLite file in the data dir.
pub fn database_url(config: &Config) -> Result<String, StartupError> {
    if let Some(url) = &config.database_url {
        return Ok(url.clone());
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|e| StartupError::DataDir {
        path: config.data_dir.display().to_string(),
        reason: e.to_string(),
    })?;
    let file = config.data_dir.join("moim.db");
    Ok(format!("sqlite://{}?mode=rwc", file.display()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

pub fn kind_of(url: &str) -> DbKind {
    if url.starts_with("sqlite:") {
        DbKind::Sqlite
    } else {
        DbKind::Postgres
    }
}

/// The URL with any password replaced, for messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// Connects, prepares and migrates the database.
pub async fn connect(url: &str) -> Result<AnyPool, StartupError> {
    sqlx::any::install_default_drivers();
    let kind = kind_of(url);
    let failed = |reason: String| StartupError::Database {
        url: redact(url),
        reason,
    };
    // One direct attempt first: a pool only reports "timed out", while the
    // operator needs the cause (refused, unknown host, bad password).
    use sqlx::Connection;
    match tokio::time::timeout(Duration::from_secs(10), sqlx::AnyConnection::connect(url)).await {
        Ok(Ok(conn)) => {
            let _ = conn.close().await;
        }
        Ok(Err(e)) => return Err(failed(e.to_string())),
        Err(_) => return Err(failed("no answer within 10 seconds".to_string())),
    }
    let pool = AnyPoolOptions::new()
        .max_connections(match kind {
            DbKind::Sqlite => 8,
            DbKind::Postgres => 16,
        })
        .acquire_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .map_err(|e| failed(e.to_string()))?;
    if kind == DbKind::Sqlite {
        // Readers do not wait for the writer; the setting sticks to the file.
        sqlx::query("PRAGMA journal_mode = WAL")
            .execute(&pool)
            .await
            .map_err(|e| failed(e.to_string()))?;
    }
    MIGRATIONS
        .run(&pool)
        .await
        .map_err(|e| StartupError::Migration(e.to_string()))?;
    Ok(pool)
}

/// Whether the database answers, within `timeout`.
pub async fn is_reachable(pool: &AnyPool, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, sqlx::query("SELECT 1").execute(pool)).await,
        Ok(Ok(_))
    )
}
