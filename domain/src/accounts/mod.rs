//! Accounts: the users table, password hashing, and the proof of an email
//! address. Sessions (who a request is) stay with the web layer; this is
//! what it reads and writes.
//!
//! Usernames and addresses are looked up by their normalised key (the
//! web layer's `validate::username_key` / `email_key`, shared with the
//! browser), passed in, so the rule lives in one place.

pub mod passwords;
pub mod tokens;
pub mod verification;

use sqlx::AnyPool;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    pub password_hash: String,
    /// Bumping it ends every session made before (password change).
    pub auth_version: i64,
    pub email_verified_at_ms: Option<i64>,
}

impl UserRow {
    /// The address, when its owner has proved it.
    pub fn verified_email(&self) -> Option<&str> {
        self.email_verified_at_ms.and(self.email.as_deref())
    }
}

const USER_COLUMNS: &str =
    "id, username, display_name, email, password_hash, auth_version, email_verified_at_ms";

pub async fn find_by_id(db: &AnyPool, id: &str) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as::<_, UserRow>(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

pub async fn find_by_username_key(db: &AnyPool, key: &str) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as::<_, UserRow>(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE username_key = $1"
    ))
    .bind(key)
    .fetch_optional(db)
    .await
}

/// Whether a user with this id exists (a guest id never does).
pub async fn exists(db: &AnyPool, id: &str) -> sqlx::Result<bool> {
    let row: Option<(String,)> = sqlx::query_as("SELECT id FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?;
    Ok(row.is_some())
}

/// A new account, as validated by the caller.
pub struct NewUser<'a> {
    pub user: &'a UserRow,
    pub username_key: String,
    pub email_key: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// Only usernames are unique at sign-up: addresses are stored unproven,
    /// and only proven ones are unique.
    #[error("username taken")]
    UsernameTaken,
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

pub async fn create(db: &AnyPool, new: NewUser<'_>, now_ms: i64) -> Result<(), CreateError> {
    let user = new.user;
    let inserted = sqlx::query(
        "INSERT INTO users (id, username, username_key, display_name, email, email_key, \
         password_hash, auth_version, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&user.id)
    .bind(&user.username)
    .bind(new.username_key)
    .bind(&user.display_name)
    .bind(user.email.clone())
    .bind(new.email_key)
    .bind(&user.password_hash)
    .bind(user.auth_version)
    .bind(now_ms)
    .bind(now_ms)
    .execute(db)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        // Two sign-ups raced past the caller's check: the unique index
        // decides.
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(CreateError::UsernameTaken),
        Err(e) => Err(CreateError::Store(e)),
    }
}

pub async fn set_display_name(
    db: &AnyPool,
    user_id: &str,
    display_name: &str,
    now_ms: i64,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE users SET display_name = $1, updated_at = $2 WHERE id = $3")
        .bind(display_name)
        .bind(now_ms)
        .bind(user_id)
        .execute(db)
        .await?;
    Ok(())
}

/// Stores a new password hash and auth version (which ends the sessions
/// made under the old one).
pub async fn set_password(
    db: &AnyPool,
    user_id: &str,
    password_hash: &str,
    auth_version: i64,
    now_ms: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE users SET password_hash = $1, auth_version = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(password_hash)
    .bind(auth_version)
    .bind(now_ms)
    .bind(user_id)
    .execute(db)
    .await?;
    Ok(())
}
