//! Server-only half of accounts: the user table, password hashing, and the
//! session records that say who someone is.

use super::{GuestSummary, UserSummary, Viewer};
use crate::error::{ApiError, ApiResult, FieldError, FieldProblem, Limit};
use crate::state::AppState;
use crate::throttle::Rule;
use crate::validate;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::ConnectInfo;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};
use tower_sessions::Session;

/// Session key of a signed-in user's identity.
const AUTH_KEY: &str = "auth";
/// Session key of a guest identity.
const GUEST_KEY: &str = "guest";
/// Session key of the last time activity pushed the idle deadline forward.
const SEEN_KEY: &str = "seen_ms";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionAuth {
    user_id: String,
    /// Must match `users.auth_version`; bumping that column ends every
    /// session made before (password change).
    auth_version: i64,
    signed_in_at_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SessionGuest {
    id: String,
    display_name: String,
    created_at_ms: i64,
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Logs the cause and hands the client a bare "internal error".
pub fn internal(err: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %err, "internal error in a server function");
    ApiError::Internal
}

/// Gives the current response the HTTP status that matches `err`.
pub fn set_error_status(err: &ApiError) {
    if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(err.status());
    }
}

/// Pushes an identified session's idle deadline forward, writing at most once
/// per `interval`. Called by the HTTP layer on page loads and server-function
/// calls (and, later, by live meetings), so activity keeps a session alive.
pub async fn touch_session(
    session: &Session,
    interval_ms: i64,
) -> Result<(), tower_sessions::session::Error> {
    if session.is_empty().await {
        return Ok(());
    }
    let now = now_ms();
    let seen = session.get::<i64>(SEEN_KEY).await?.unwrap_or(0);
    if now - seen >= interval_ms {
        session.insert(SEEN_KEY, now).await?;
    }
    Ok(())
}

// ---------------------------------------------------------------- users table

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    pub password_hash: String,
    pub auth_version: i64,
}

impl UserRow {
    pub(crate) fn summary(&self) -> UserSummary {
        UserSummary {
            id: self.id.clone(),
            username: self.username.clone(),
            display_name: self.display_name.clone(),
            email: self.email.clone(),
        }
    }
}

const USER_COLUMNS: &str = "id, username, display_name, email, password_hash, auth_version";

pub async fn find_user_by_id(db: &sqlx::AnyPool, id: &str) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as::<_, UserRow>(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

pub async fn find_user_by_username(
    db: &sqlx::AnyPool,
    username: &str,
) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as::<_, UserRow>(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE username_key = $1"
    ))
    .bind(validate::username_key(username))
    .fetch_optional(db)
    .await
}

async fn email_in_use(db: &sqlx::AnyPool, email: &str) -> sqlx::Result<bool> {
    let row: Option<(String,)> = sqlx::query_as("SELECT id FROM users WHERE email_key = $1")
        .bind(validate::email_key(email))
        .fetch_optional(db)
        .await?;
    Ok(row.is_some())
}

// ---------------------------------------------------------------- passwords

fn hash_blocking(password: &str) -> Result<String, argon2::password_hash::Error> {
    use rand::RngCore;
    let mut salt_bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes)?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)?
        .to_string())
}

fn verify_blocking(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A real argon2 hash of nothing anyone knows, verified against when the
/// username does not exist so both failures take the same time.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_blocking("moim: no such user, compare anyway").unwrap_or_default())
}

/// `permits`: the share of hashing this kind of request may use.
async fn hash_password(permits: &tokio::sync::Semaphore, password: String) -> ApiResult<String> {
    let _permit = permits.acquire().await.map_err(internal)?;
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(internal)?
        .map_err(internal)
}

/// `hash` None means "no such user": a dummy hash is checked instead and the
/// answer is always false.
async fn verify_password(
    state: &AppState,
    password: String,
    hash: Option<String>,
) -> ApiResult<bool> {
    let _permit = state.hashing_permits.acquire().await.map_err(internal)?;
    tokio::task::spawn_blocking(move || match hash {
        Some(hash) => verify_blocking(&password, &hash),
        None => {
            let _ = verify_blocking(&password, dummy_hash());
            false
        }
    })
    .await
    .map_err(internal)
}

// ---------------------------------------------------------------- requests

pub struct SignUpForm {
    pub username: String,
    pub display_name: String,
    pub email: String,
    pub password: String,
}

fn collect<T>(results: &mut Vec<FieldError>, r: Result<T, FieldError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            results.push(e);
            None
        }
    }
}

/// One server-function call: the app state, the caller's session and
/// address.
pub struct RequestCx {
    state: AppState,
    session: Session,
    client: String,
}

impl RequestCx {
    pub async fn new() -> ApiResult<Self> {
        let state = AppState::from_context()?;
        let session = leptos_axum::extract::<Session>().await.map_err(internal)?;
        let headers = leptos::prelude::use_context::<http::request::Parts>()
            .map(|parts| parts.headers)
            .unwrap_or_default();
        let client = leptos_axum::extract::<ConnectInfo<SocketAddr>>()
            .await
            .map(|ConnectInfo(addr)| {
                crate::state::client_address(addr.ip(), &headers, &state.trusted_proxies)
                    .to_string()
            })
            .unwrap_or_else(|_| "unknown".to_string());
        Ok(Self {
            state,
            session,
            client,
        })
    }

    /// For handlers outside Leptos (the signaling WebSocket), which extract
    /// the session and address themselves.
    pub fn from_parts(state: AppState, session: Session, client: String) -> Self {
        Self {
            state,
            session,
            client,
        }
    }

    /// The session, for keeping it alive from a long-lived connection.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The caller's network address (for throttling).
    pub fn client(&self) -> &str {
        &self.client
    }

    /// Ends a mutating call: on success optionally redirects to a local
    /// path; on failure sets the HTTP status that matches the error.
    pub fn finish(&self, result: ApiResult<()>, next: Option<&str>) -> ApiResult<()> {
        match &result {
            Ok(()) => {
                if let Some(next) = next {
                    leptos_axum::redirect(&validate::safe_next(next));
                }
            }
            Err(err) => set_error_status(err),
        }
        result
    }

    fn session_error(err: tower_sessions::session::Error) -> ApiError {
        internal(err)
    }

    async fn end_session(&self) -> ApiResult<()> {
        self.session.flush().await.map_err(Self::session_error)
    }

    async fn session_auth(&self) -> ApiResult<Option<SessionAuth>> {
        self.session
            .get::<SessionAuth>(AUTH_KEY)
            .await
            .map_err(Self::session_error)
    }

    /// The user a session's `auth` names, checked against the absolute
    /// lifetime and the user's `auth_version`; a session failing either is
    /// ended (`Ok(None)`).
    async fn checked_user(&self, auth: SessionAuth, now: i64) -> ApiResult<Option<UserRow>> {
        let absolute_ms = self.state.auth.absolute_lifetime.as_millis() as i64;
        let user = if now - auth.signed_in_at_ms > absolute_ms {
            None
        } else {
            find_user_by_id(&self.state.db, &auth.user_id)
                .await
                .map_err(internal)?
        };
        match user {
            Some(user) if user.auth_version == auth.auth_version => Ok(Some(user)),
            _ => {
                self.end_session().await?;
                Ok(None)
            }
        }
    }

    pub async fn viewer(&self) -> ApiResult<Option<Viewer>> {
        let now = now_ms();
        if let Some(auth) = self.session_auth().await? {
            let user = self.checked_user(auth, now).await?;
            return Ok(user.map(|user| Viewer::User(user.summary())));
        }
        let absolute_ms = self.state.auth.absolute_lifetime.as_millis() as i64;
        let guest = self
            .session
            .get::<SessionGuest>(GUEST_KEY)
            .await
            .map_err(Self::session_error)?;
        match guest {
            Some(guest) if now - guest.created_at_ms <= absolute_ms => {
                Ok(Some(Viewer::Guest(GuestSummary {
                    id: guest.id,
                    display_name: guest.display_name,
                })))
            }
            Some(_) => {
                self.end_session().await?;
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// The signed-in user, or `Unauthenticated` (guests included).
    pub async fn signed_in_user(&self) -> ApiResult<UserRow> {
        match self.session_auth().await? {
            Some(auth) => self.checked_user(auth, now_ms()).await?,
            None => None,
        }
        .ok_or(ApiError::Unauthenticated)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// A fresh session id (no fixation), the guest identity dropped.
    async fn establish_user_session(&self, user: &UserRow) -> ApiResult<()> {
        self.session.cycle_id().await.map_err(Self::session_error)?;
        self.session
            .remove::<SessionGuest>(GUEST_KEY)
            .await
            .map_err(Self::session_error)?;
        let now = now_ms();
        let auth = SessionAuth {
            user_id: user.id.clone(),
            auth_version: user.auth_version,
            signed_in_at_ms: now,
        };
        self.session
            .insert(AUTH_KEY, auth)
            .await
            .map_err(Self::session_error)?;
        self.session
            .insert(SEEN_KEY, now)
            .await
            .map_err(Self::session_error)?;
        Ok(())
    }

    pub async fn sign_up(&self, form: SignUpForm) -> ApiResult<()> {
        // Counted before anything else: each try costs a hash, and taken
        // names must not be probed at speed either.
        self.limit("sign-up", self.state.actions.sign_ups, Limit::SignUps)
            .await?;
        let mut errors = Vec::new();
        let username = collect(&mut errors, validate::username("username", &form.username));
        let display_name = collect(
            &mut errors,
            validate::display_name("display_name", &form.display_name),
        );
        let email = collect(&mut errors, validate::optional_email("email", &form.email));
        collect(
            &mut errors,
            validate::new_password("password", &form.password),
        );
        let db = &self.state.db;
        if let Some(username) = &username {
            if find_user_by_username(db, username)
                .await
                .map_err(internal)?
                .is_some()
            {
                errors.push(FieldError::new("username", FieldProblem::UsernameTaken));
            }
        }
        if let Some(Some(email)) = &email {
            if email_in_use(db, email).await.map_err(internal)? {
                errors.push(FieldError::new("email", FieldProblem::EmailTaken));
            }
        }
        let (Some(username), Some(display_name), Some(email), true) =
            (username, display_name, email, errors.is_empty())
        else {
            return Err(ApiError::Invalid(errors));
        };

        let password_hash = hash_password(&self.state.sign_up_permits, form.password).await?;
        let now = now_ms();
        let user = UserRow {
            id: uuid::Uuid::new_v4().simple().to_string(),
            username,
            display_name,
            email,
            password_hash,
            auth_version: 1,
        };
        let inserted = sqlx::query(
            "INSERT INTO users (id, username, username_key, display_name, email, email_key, \
             password_hash, auth_version, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&user.id)
        .bind(&user.username)
        .bind(validate::username_key(&user.username))
        .bind(&user.display_name)
        .bind(user.email.clone())
        .bind(user.email.as_deref().map(validate::email_key))
        .bind(&user.password_hash)
        .bind(user.auth_version)
        .bind(now)
        .bind(now)
        .execute(db)
        .await;
        match inserted {
            Ok(_) => {}
            // Two sign-ups raced past the checks above: the unique index decides.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                let field = if e.message().contains("email") {
                    "email"
                } else {
                    "username"
                };
                let problem = if field == "email" {
                    FieldProblem::EmailTaken
                } else {
                    FieldProblem::UsernameTaken
                };
                return Err(ApiError::Invalid(vec![FieldError::new(field, problem)]));
            }
            Err(e) => return Err(internal(e)),
        }
        tracing::info!(user_id = %user.id, "account created");
        self.establish_user_session(&user).await
    }

    pub async fn sign_in(&self, username: &str, password: &str) -> ApiResult<()> {
        let mut errors = Vec::new();
        if username.trim().is_empty() {
            errors.push(FieldError::new("username", FieldProblem::Required));
        }
        if password.is_empty() {
            errors.push(FieldError::new("password", FieldProblem::Required));
        }
        if username.chars().count() > 256 || password.chars().count() > validate::PASSWORD_MAX {
            // Nobody has such credentials; answer like any other failure.
            return Err(ApiError::BadCredentials);
        }
        if !errors.is_empty() {
            return Err(ApiError::Invalid(errors));
        }
        let account = validate::username_key(username);
        let throttle = &self.state.login_throttle;
        if let Err(retry_after) = throttle.check(&account, &self.client).await {
            return Err(ApiError::TooManyAttempts {
                retry_after_secs: retry_after.as_secs().max(1),
            });
        }
        let user = find_user_by_username(&self.state.db, username)
            .await
            .map_err(internal)?;
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let valid = verify_password(&self.state, password.to_string(), hash).await?;
        match user {
            Some(user) if valid => {
                throttle.record_success(&account, &self.client).await;
                tracing::info!(user_id = %user.id, "signed in");
                self.establish_user_session(&user).await
            }
            _ => {
                throttle.record_failure(&account, &self.client).await;
                tracing::info!(client = %self.client, "failed sign-in");
                Err(ApiError::BadCredentials)
            }
        }
    }

    /// Counts one `what` for this client address; `Limited` once the rule
    /// is used up.
    pub async fn limit(&self, what: &str, rule: Rule, kind: Limit) -> ApiResult<()> {
        let key = format!("{what}:{}", crate::throttle::client_key(&self.client));
        let decision = self.state.limiter.hit(&key, rule).await;
        if decision.allowed {
            return Ok(());
        }
        tracing::info!(client = %self.client, what, "limit reached");
        Err(ApiError::Limited {
            what: kind,
            retry_after_secs: decision.retry_secs(),
        })
    }

    pub async fn sign_out(&self) -> ApiResult<()> {
        self.end_session().await
    }

    pub async fn continue_as_guest(&self, display_name: &str) -> ApiResult<()> {
        let display_name = validate::display_name("display_name", display_name)
            .map_err(|e| ApiError::Invalid(vec![e]))?;
        if let Some(Viewer::User(_)) = self.viewer().await? {
            // A signed-in person is already somebody; no second identity.
            return Err(ApiError::Forbidden);
        }
        let existing = self
            .session
            .get::<SessionGuest>(GUEST_KEY)
            .await
            .map_err(Self::session_error)?;
        let guest = match existing {
            Some(guest) => SessionGuest {
                display_name,
                ..guest
            },
            None => {
                // Each new guest is a session row: bounded per address.
                self.limit("guest", self.state.actions.guests, Limit::Guests)
                    .await?;
                self.session.cycle_id().await.map_err(Self::session_error)?;
                SessionGuest {
                    id: format!("guest-{}", uuid::Uuid::new_v4().simple()),
                    display_name,
                    created_at_ms: now_ms(),
                }
            }
        };
        self.session
            .insert(GUEST_KEY, guest)
            .await
            .map_err(Self::session_error)?;
        self.session
            .insert(SEEN_KEY, now_ms())
            .await
            .map_err(Self::session_error)
    }

    pub async fn update_display_name(&self, display_name: &str) -> ApiResult<()> {
        let user = self.signed_in_user().await?;
        let display_name = validate::display_name("display_name", display_name)
            .map_err(|e| ApiError::Invalid(vec![e]))?;
        sqlx::query("UPDATE users SET display_name = $1, updated_at = $2 WHERE id = $3")
            .bind(display_name)
            .bind(now_ms())
            .bind(&user.id)
            .execute(&self.state.db)
            .await
            .map_err(internal)?;
        Ok(())
    }

    pub async fn change_password(&self, current: &str, new: &str) -> ApiResult<()> {
        let user = self.signed_in_user().await?;
        validate::new_password("new_password", new).map_err(|e| ApiError::Invalid(vec![e]))?;
        let throttle = &self.state.login_throttle;
        let account = validate::username_key(&user.username);
        if let Err(retry_after) = throttle.check(&account, &self.client).await {
            return Err(ApiError::TooManyAttempts {
                retry_after_secs: retry_after.as_secs().max(1),
            });
        }
        let valid = verify_password(
            &self.state,
            current.to_string(),
            Some(user.password_hash.clone()),
        )
        .await?;
        if !valid {
            throttle.record_failure(&account, &self.client).await;
            return Err(ApiError::Invalid(vec![FieldError::new(
                "current_password",
                FieldProblem::WrongCurrentPassword,
            )]));
        }
        let password_hash = hash_password(&self.state.hashing_permits, new.to_string()).await?;
        let new_version = user.auth_version + 1;
        sqlx::query(
            "UPDATE users SET password_hash = $1, auth_version = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(password_hash)
        .bind(new_version)
        .bind(now_ms())
        .bind(&user.id)
        .execute(&self.state.db)
        .await
        .map_err(internal)?;
        tracing::info!(user_id = %user.id, "password changed; other sessions ended");
        // This session carries on under a new id with the new version.
        let updated = UserRow {
            auth_version: new_version,
            ..user
        };
        self.establish_user_session(&updated).await
    }
}
