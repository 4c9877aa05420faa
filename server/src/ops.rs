//! The operator's commands besides serving: `moim check-config` and
//! `moim backup FILE`. Each prints what it did and returns the process's
//! exit status; a failure names the setting at fault.

use crate::config::{Config, MediaMode};
use crate::db::{self, DbKind};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// How long each outside service may take to answer a check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// One line of the report: what was checked, and the outcome.
struct Report {
    failed: bool,
}

impl Report {
    fn ok(&mut self, what: &str, detail: impl std::fmt::Display) {
        println!("ok    {what:<20} {detail}");
    }

    fn note(&mut self, what: &str, detail: impl std::fmt::Display) {
        println!("-     {what:<20} {detail}");
    }

    fn fail(&mut self, setting: &str, detail: impl std::fmt::Display) {
        self.failed = true;
        println!("FAIL  {setting:<20} {detail}");
        eprintln!("moim: {setting}: {detail}");
    }
}

fn secret(set: bool) -> &'static str {
    if set {
        "(secret set, hidden)"
    } else {
        "(no secret)"
    }
}

/// Checks the settings and the services they name; prints what moim would
/// run with, secrets hidden.
pub async fn check_config(config: &Config) -> ExitCode {
    let mut report = Report { failed: false };
    println!("moim {} would run with:", env!("CARGO_PKG_VERSION"));
    report.ok("MOIM_LISTEN", config.listen);
    report.ok(
        "MOIM_PUBLIC_URL",
        config.public_origin_at(config.listen)
            + if config.secure_cookies() {
                " (Secure cookies)"
            } else {
                ""
            },
    );
    report.ok(
        "MOIM_METRICS_LISTEN",
        config.metrics_listen.map_or(
            format!("{} (default)", crate::config::METRICS_DEFAULT),
            |a| a.to_string(),
        ),
    );
    if let Some(addr) = config.metrics_listen {
        if !addr.ip().is_loopback() {
            report.note(
                "MOIM_METRICS_LISTEN",
                "not on loopback: keep this port away from the public (firewall)",
            );
        }
    }
    let media = match config.media_mode {
        MediaMode::Auto => format!(
            "auto (switch at {}, media server UDP {})",
            config.sfu_switch_at,
            config.media_server().listen
        ),
        MediaMode::Mesh => "mesh (no media server)".to_string(),
        MediaMode::Sfu => format!("sfu (media server UDP {})", config.media_server().listen),
    };
    report.ok("MOIM_MEDIA_MODE", media);
    if !config.turn_urls.is_empty() {
        report.ok(
            "MOIM_TURN_URLS",
            format!(
                "{} {}",
                config.turn_urls.join(","),
                secret(config.turn_secret.is_some())
            ),
        );
    }

    // The site: without it pages load without their scripts and styles.
    let bundle = config.site_root.join("pkg");
    if bundle.is_dir() {
        report.ok("LEPTOS_SITE_ROOT", config.site_root.display());
    } else {
        report.fail(
            "LEPTOS_SITE_ROOT",
            format!(
                "{} has no pkg/ directory (build the site with `cargo leptos build --release`)",
                config.site_root.display()
            ),
        );
    }

    check_database(config, &mut report).await;
    if let Some(url) = &config.redis_url {
        match reach_redis(url.as_str()).await {
            Ok(()) => report.ok("REDIS_URL", db::redact(url.as_str())),
            Err(reason) => report.fail(
                "REDIS_URL",
                format!("{}: {reason}", db::redact(url.as_str())),
            ),
        }
    } else {
        report.note("REDIS_URL", "not set: one instance, in-process fan-out");
    }
    if let Some(url) = &config.smtp_url {
        if let Err(err) = crate::mail::from_settings(Some(url), config.smtp_from.as_deref()) {
            report.fail("MOIM_SMTP_FROM", err);
        }
        match crate::mail::reach(url, CHECK_TIMEOUT).await {
            Ok(()) => report.ok("MOIM_SMTP_URL", db::redact(url.as_str())),
            Err(reason) => report.fail(
                "MOIM_SMTP_URL",
                format!("{}: {reason}", db::redact(url.as_str())),
            ),
        }
    } else {
        report.note(
            "MOIM_SMTP_URL",
            "not set: no mail (addresses cannot be confirmed)",
        );
    }

    if report.failed {
        println!("check-config: problems found (see FAIL above)");
        ExitCode::FAILURE
    } else {
        println!("check-config: all good");
        ExitCode::SUCCESS
    }
}

/// Reaches the database and reads its migration state, changing nothing.
async fn check_database(config: &Config, report: &mut Report) {
    let setting = if config.database_url.is_some() {
        "DATABASE_URL"
    } else {
        "MOIM_DATA_DIR"
    };
    let url = match db::database_url(config) {
        Ok(url) => url,
        Err(err) => return report.fail(setting, err),
    };
    let shown = db::redact(&url);
    // Reading only: a SQLite file that does not exist yet is created by
    // the first start, not by a check.
    let url = if db::kind_of(&url) == DbKind::Sqlite {
        let file = config.data_dir.join("moim.db");
        if config.database_url.is_none() && !file.exists() {
            return report.ok(
                setting,
                format!("{} (created at first start)", file.display()),
            );
        }
        url.replace("mode=rwc", "mode=ro")
    } else {
        url
    };
    sqlx::any::install_default_drivers();
    use sqlx::Connection;
    let connected = tokio::time::timeout(CHECK_TIMEOUT, sqlx::AnyConnection::connect(&url)).await;
    let mut conn = match connected {
        Ok(Ok(conn)) => conn,
        Ok(Err(err)) => return report.fail(setting, format!("{shown}: {err}")),
        Err(_) => {
            return report.fail(
                setting,
                format!(
                    "{shown}: no answer within {} seconds",
                    CHECK_TIMEOUT.as_secs()
                ),
            )
        }
    };
    // Applied migrations, when the database was used before.
    let applied: Result<i64, sqlx::Error> =
        sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut conn)
            .await;
    let known = domain::db::MIGRATIONS.iter().count() as i64;
    match applied {
        Ok(applied) if applied > known => report.fail(
            setting,
            format!("{shown}: {applied} migrations applied, this moim knows {known}: it is older than the database"),
        ),
        Ok(applied) => report.ok(
            setting,
            format!("{shown} ({applied} of {known} migrations applied; the rest at start)"),
        ),
        Err(_) => report.ok(setting, format!("{shown} (empty: migrated at first start)")),
    }
    let _ = conn.close().await;
}

async fn reach_redis(url: &str) -> Result<(), String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    let ping = async {
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| e.to_string())?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(|e| e.to_string())
    };
    match tokio::time::timeout(CHECK_TIMEOUT, ping).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(err),
        Err(_) => Err(format!(
            "no answer within {} seconds",
            CHECK_TIMEOUT.as_secs()
        )),
    }
}

/// Writes a consistent copy of the SQLite database to `to`.
///
/// `VACUUM INTO` reads the database in one transaction and writes a new,
/// compact file: a snapshot as of that moment even while moim writes (WAL
/// readers do not block the writer), where copying the file of a live WAL
/// database can catch it half-written. It is SQLite's own alternative to
/// the backup API for this, and sqlx can issue it without reaching into
/// the C handle.
pub async fn backup(config: &Config, to: &Path) -> ExitCode {
    let url = match db::database_url(config) {
        Ok(url) => url,
        Err(err) => {
            eprintln!("moim: {err}");
            return ExitCode::FAILURE;
        }
    };
    if db::kind_of(&url) == DbKind::Postgres {
        eprintln!(
            "moim: backup: DATABASE_URL is PostgreSQL; back it up with pg_dump, e.g.\n  pg_dump --format=custom --file=moim.dump '{}'",
            db::redact(&url)
        );
        return ExitCode::FAILURE;
    }
    if to.exists() {
        eprintln!(
            "moim: backup: {} exists already; choose a new file",
            to.display()
        );
        return ExitCode::FAILURE;
    }
    let Some(target) = to.to_str().map(str::to_string) else {
        eprintln!("moim: backup: the file name must be valid UTF-8");
        return ExitCode::FAILURE;
    };
    if config.database_url.is_none() && !config.data_dir.join("moim.db").exists() {
        eprintln!(
            "moim: backup: no database at {} (MOIM_DATA_DIR)",
            config.data_dir.join("moim.db").display()
        );
        return ExitCode::FAILURE;
    }
    sqlx::any::install_default_drivers();
    use sqlx::Connection;
    // Never create the database being backed up: a wrong path is an error.
    let existing = url.replace("mode=rwc", "mode=rw");
    let mut conn = match sqlx::AnyConnection::connect(&existing).await {
        Ok(conn) => conn,
        Err(err) => {
            eprintln!("moim: backup: cannot open {}: {err}", db::redact(&url));
            return ExitCode::FAILURE;
        }
    };
    // Wait for a busy writer instead of failing at once.
    let _ = sqlx::query("PRAGMA busy_timeout = 10000")
        .execute(&mut conn)
        .await;
    // Made empty first, readable by the owner only: the copy holds
    // session ids and webhook secrets. (VACUUM INTO writes into an empty
    // file as into a new one.)
    if let Err(err) = create_private(to) {
        eprintln!("moim: backup: cannot create {target}: {err}");
        return ExitCode::FAILURE;
    }
    let copied = sqlx::query("VACUUM INTO $1")
        .bind(&target)
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    match copied {
        Ok(_) => {
            let bytes = std::fs::metadata(to).map(|m| m.len()).unwrap_or(0);
            println!("backed up {} to {target} ({bytes} bytes)", db::redact(&url));
            ExitCode::SUCCESS
        }
        Err(err) => {
            let _ = std::fs::remove_file(to);
            eprintln!("moim: backup: could not write {target}: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Creates `path` empty, with mode 0600 where there are modes.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path).map(|_| ())
}
