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

/// The URL with any password replaced, for messages and logs. A URL that
/// does not parse (a password with an unescaped `#` or `/`, say) is shown
/// by its scheme only: it may hold a password where it cannot be found.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            let secret_query = parsed
                .query_pairs()
                .any(|(key, _)| key.to_ascii_lowercase().contains("password"));
            if secret_query {
                let pairs: Vec<(String, String)> = parsed
                    .query_pairs()
                    .map(|(key, value)| {
                        let hidden = key.to_ascii_lowercase().contains("password");
                        let value = if hidden {
                            "***".to_string()
                        } else {
                            value.into_owned()
                        };
                        (key.into_owned(), value)
                    })
                    .collect();
                parsed.query_pairs_mut().clear().extend_pairs(pairs);
            }
            parsed.to_string()
        }
        Err(_) => {
            let scheme = url.split(':').next().unwrap_or_default();
            format!("{scheme}://(unreadable URL, not shown)")
        }
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

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_show_however_the_url_is_written() {
        assert_eq!(
            redact("postgres://moim:hunter2@db/moim"),
            "postgres://moim:***@db/moim"
        );
        let unparsable = redact("postgres://moim:hun#ter/2@db:5432/moim");
        assert!(!unparsable.contains("hun"), "{unparsable}");
        assert!(unparsable.starts_with("postgres://"), "{unparsable}");
        let query = redact("postgres://db/moim?user=moim&password=hunter2&sslmode=require");
        assert!(!query.contains("hunter2"), "{query}");
        assert!(query.contains("sslmode=require"), "{query}");
        assert_eq!(
            redact("sqlite://data/moim.db?mode=rwc"),
            "sqlite://data/moim.db?mode=rwc"
        );
    }
}
