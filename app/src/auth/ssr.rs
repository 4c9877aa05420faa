//! Server-only half of accounts: the user table, password hashing, and the
//! session records that say who someone is.

use super::model::{
    AccountEmail, ApiTokenInfo, GuestSummary, NewApiToken, NewWebhook, UserSummary, VerifyOutcome,
    Viewer, WebhookDelivery, WebhookInfo, Webhooks,
};
use crate::error::{ApiError, ApiResult, FieldError, FieldProblem, Limit};
use crate::state::AppState;
use crate::validate;
use axum::extract::ConnectInfo;
use domain::throttle::Rule;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
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

/// The server's one clock (see `domain::clock`).
pub use domain::clock::now_ms;

/// Logs the cause and hands the client a bare "internal error".
pub fn internal(err: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %err, "internal error in a server function");
    ApiError::Internal
}

/// Gives the current response the HTTP status that matches `err`.
pub use crate::error::set_error_status;

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

pub use domain::accounts::UserRow;

pub(crate) fn summary(user: &UserRow) -> UserSummary {
    UserSummary {
        id: user.id.clone(),
        username: user.username.clone(),
        display_name: user.display_name.clone(),
        email: user.email.clone(),
        email_verified: user.verified_email().is_some(),
    }
}

pub async fn find_user_by_id(db: &sqlx::AnyPool, id: &str) -> sqlx::Result<Option<UserRow>> {
    domain::accounts::find_by_id(db, id).await
}

pub async fn find_user_by_username(
    db: &sqlx::AnyPool,
    username: &str,
) -> sqlx::Result<Option<UserRow>> {
    domain::accounts::find_by_username_key(db, &validate::username_key(username)).await
}

// ---------------------------------------------------------------- email verification
// (the rules and storage: `domain::accounts::verification`)

use domain::accounts::verification;

/// Replaces the account's pending link with a new one and mails it. When
/// another account has already proved the address, its owner gets a note
/// instead (and the link is never sent): the caller's answer is the same
/// either way, so nobody learns whose address it is.
async fn issue_verification(state: &AppState, user_id: &str, email: &str) -> ApiResult<()> {
    let token = verification::new_token();
    let taken = verification::replace_pending(
        &state.db,
        user_id,
        &validate::email_key(email),
        &token,
        now_ms(),
    )
    .await
    .map_err(internal)?;
    let mail = if taken {
        crate::mail::address_in_use(email, &state.public_url)
    } else {
        crate::mail::verification(email, &verification::link(&state.public_url, &token))
    };
    crate::mail::send_later(&state.mailer, mail);
    Ok(())
}

async fn redeem_verification(db: &sqlx::AnyPool, token: &str) -> ApiResult<VerifyOutcome> {
    match verification::redeem(db, token, now_ms())
        .await
        .map_err(internal)?
    {
        Some(user_id) => {
            tracing::info!(user_id = %user_id, "email address verified");
            Ok(VerifyOutcome::Verified)
        }
        None => Ok(VerifyOutcome::Invalid),
    }
}

// ---------------------------------------------------------------- passwords
// (argon2 off the async threads: `domain::accounts::passwords`)

async fn hash_password(permits: &tokio::sync::Semaphore, password: String) -> ApiResult<String> {
    domain::accounts::passwords::hash(permits, password)
        .await
        .map_err(internal)
}

/// `hash` None means "no such user": always false, in the same time.
async fn verify_password(
    state: &AppState,
    password: String,
    hash: Option<String>,
) -> ApiResult<bool> {
    domain::accounts::passwords::verify(&state.hashing_permits, password, hash)
        .await
        .map_err(internal)
}

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
#[derive(Clone)]
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

    /// A request made with an API token of `user`: the same rules as the
    /// pages, on a session that lives only for this request (nothing is
    /// stored, no cookie is sent).
    pub async fn for_user(state: AppState, user: &UserRow, client: String) -> ApiResult<Self> {
        let session = Session::new(None, std::sync::Arc::new(NoStore), None);
        let auth = SessionAuth {
            user_id: user.id.clone(),
            auth_version: user.auth_version,
            signed_in_at_ms: now_ms(),
        };
        session
            .insert(AUTH_KEY, auth)
            .await
            .map_err(Self::session_error)?;
        Ok(Self {
            state,
            session,
            client,
        })
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
            return Ok(user.map(|user| Viewer::User(summary(&user))));
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
        // No check that the address is free: it is stored unproven and
        // blocks nobody, and saying "taken" would tell a stranger whose
        // address it is. Usernames are public handles, so "taken" there
        // reveals nothing that is not already visible.
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
            email_verified_at_ms: None,
        };
        let new_user = domain::accounts::NewUser {
            user: &user,
            username_key: validate::username_key(&user.username),
            email_key: user.email.as_deref().map(validate::email_key),
        };
        match domain::accounts::create(db, new_user, now).await {
            Ok(()) => {}
            Err(domain::accounts::CreateError::UsernameTaken) => {
                return Err(ApiError::Invalid(vec![FieldError::new(
                    "username",
                    FieldProblem::UsernameTaken,
                )]));
            }
            Err(domain::accounts::CreateError::Store(e)) => return Err(internal(e)),
        }
        tracing::info!(user_id = %user.id, "account created");
        if let Some(email) = &user.email {
            issue_verification(&self.state, &user.id, email).await?;
        }
        self.establish_user_session(&user).await
    }

    pub async fn email_status(&self) -> ApiResult<AccountEmail> {
        let user = self.signed_in_user().await?;
        Ok(AccountEmail {
            verified: user.verified_email().is_some(),
            email: user.email,
            mail_configured: self.state.mailer.is_configured(),
        })
    }

    /// A new confirmation link for the account's unproven address, at most
    /// once a minute (the last link's age, in the database, so every
    /// instance agrees).
    pub async fn resend_verification(&self) -> ApiResult<()> {
        let user = self.signed_in_user().await?;
        let Some(email) = user.email.as_deref() else {
            return Err(ApiError::Invalid(vec![FieldError::new(
                "email",
                FieldProblem::Required,
            )]));
        };
        if user.email_verified_at_ms.is_some() {
            return Ok(());
        }
        let last = verification::last_issued(&self.state.db, &user.id)
            .await
            .map_err(internal)?;
        let since = now_ms() - last.unwrap_or(0);
        if since < verification::RESEND_INTERVAL_MS {
            let wait_ms = verification::RESEND_INTERVAL_MS - since;
            return Err(ApiError::TooManyAttempts {
                retry_after_secs: (wait_ms as u64).div_ceil(1000).max(1),
            });
        }
        issue_verification(&self.state, &user.id, email).await
    }

    pub async fn verify_email(&self, token: &str) -> ApiResult<VerifyOutcome> {
        redeem_verification(&self.state.db, token.trim()).await
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
            self.state
                .metrics
                .sign_in(domain::metrics::SignInOutcome::Throttled);
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
                self.state
                    .metrics
                    .sign_in(domain::metrics::SignInOutcome::Success);
                tracing::info!(user_id = %user.id, "signed in");
                self.establish_user_session(&user).await
            }
            _ => {
                throttle.record_failure(&account, &self.client).await;
                self.state
                    .metrics
                    .sign_in(domain::metrics::SignInOutcome::Failure);
                tracing::info!(client = %self.client, "failed sign-in");
                Err(ApiError::BadCredentials)
            }
        }
    }

    /// Counts one `what` for this client address; `Limited` once the rule
    /// is used up.
    pub async fn limit(&self, what: &str, rule: Rule, kind: Limit) -> ApiResult<()> {
        let key = format!("{what}:{}", domain::throttle::client_key(&self.client));
        let decision = self.state.limiter.hit(&key, rule).await;
        if decision.allowed {
            return Ok(());
        }
        tracing::info!(client = %self.client, what, "limit reached");
        // Named by the limit's kind only (`knock:<meeting>` counts as
        // `knock`): no meeting or client in a metric label.
        self.state
            .limiter
            .refused(what.split(':').next().unwrap_or_default());
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

    pub async fn api_tokens(&self) -> ApiResult<Vec<ApiTokenInfo>> {
        let user = self.signed_in_user().await?;
        let rows = domain::accounts::tokens::list(&self.state.db, &user.id)
            .await
            .map_err(internal)?;
        Ok(rows
            .into_iter()
            .map(|row| ApiTokenInfo {
                id: row.id,
                name: row.name,
                scope: row.scope,
                created_at_ms: row.created_at_ms,
                last_used_at_ms: row.last_used_at_ms,
            })
            .collect())
    }

    pub async fn create_api_token(&self, name: &str, scope: &str) -> ApiResult<NewApiToken> {
        use domain::accounts::tokens::{self, CreateError, TokenScope};
        let user = self.signed_in_user().await?;
        let mut errors = Vec::new();
        let name = validate::display_name("name", name)
            .map_err(|e| errors.push(e))
            .ok();
        let scope = TokenScope::parse(scope);
        if scope.is_none() {
            errors.push(FieldError::new("scope", FieldProblem::Required));
        }
        let (Some(name), Some(scope), true) = (name, scope, errors.is_empty()) else {
            return Err(ApiError::Invalid(errors));
        };
        // Making and revoking tokens must not be a way round the per-token
        // limits: 10 new tokens an hour per address.
        self.limit(
            "api-token",
            Rule::per(10, std::time::Duration::from_secs(3600)),
            Limit::ApiTokens,
        )
        .await?;
        match tokens::create(&self.state.db, &user.id, &name, scope, now_ms()).await {
            Ok((row, token)) => {
                tracing::info!(user_id = %user.id, token_id = %row.id, scope = scope.as_str(), "API token created");
                Ok(NewApiToken { name, token })
            }
            Err(CreateError::TooMany) => Err(ApiError::Limited {
                what: Limit::ApiTokens,
                retry_after_secs: 0,
            }),
            Err(CreateError::Store(err)) => Err(internal(err)),
        }
    }

    /// STUN/TURN for the self-test page: an account, a rate limit, and
    /// TURN credentials that expire in five minutes.
    pub async fn self_test_ice(&self) -> ApiResult<crate::protocol::ice::IceConfig> {
        let user = self.signed_in_user().await?;
        self.limit(
            "self-test",
            Rule::per(20, std::time::Duration::from_secs(3600)),
            Limit::SelfTests,
        )
        .await?;
        let mut settings = (*self.state.ice).clone();
        settings.credential_ttl = settings
            .credential_ttl
            .min(std::time::Duration::from_secs(300));
        Ok(settings.config_for(&format!("selftest-{}", user.id), now_ms()))
    }

    pub async fn revoke_api_token(&self, id: &str) -> ApiResult<()> {
        let user = self.signed_in_user().await?;
        let revoked = domain::accounts::tokens::revoke(&self.state.db, &user.id, id, now_ms())
            .await
            .map_err(internal)?;
        if !revoked {
            return Err(ApiError::NotFound);
        }
        tracing::info!(user_id = %user.id, token_id = %id, "API token revoked");
        Ok(())
    }

    pub async fn webhooks(&self) -> ApiResult<Webhooks> {
        let user = self.signed_in_user().await?;
        let db = &self.state.db;
        let hooks = domain::webhooks::list(db, &user.id)
            .await
            .map_err(internal)?;
        let deliveries = domain::webhooks::deliveries(db, &user.id, 20)
            .await
            .map_err(internal)?;
        Ok(Webhooks {
            hooks: hooks
                .into_iter()
                .map(|hook| WebhookInfo {
                    id: hook.id,
                    url: hook.url,
                    created_at_ms: hook.created_at_ms,
                })
                .collect(),
            deliveries: deliveries
                .into_iter()
                .map(|d| WebhookDelivery {
                    state: if d.delivered_at_ms.is_some() {
                        "delivered"
                    } else if d.gave_up_at_ms.is_some() {
                        "failed"
                    } else {
                        "pending"
                    }
                    .to_string(),
                    id: d.id,
                    webhook_id: d.webhook_id,
                    event: d.event,
                    created_at_ms: d.created_at_ms,
                    attempts: d.attempts,
                    last_status: d.last_status,
                    last_error: d.last_error,
                })
                .collect(),
        })
    }

    pub async fn create_webhook(&self, raw_url: &str) -> ApiResult<NewWebhook> {
        use domain::webhooks::CreateError;
        let user = self.signed_in_user().await?;
        let url = validate::webhook_url("url", raw_url, self.state.webhooks_allow_private)
            .map_err(|e| ApiError::Invalid(vec![e]))?;
        match domain::webhooks::create(&self.state.db, &user.id, &url, now_ms()).await {
            Ok((hook, secret)) => {
                tracing::info!(user_id = %user.id, webhook_id = %hook.id, "webhook added");
                Ok(NewWebhook { url, secret })
            }
            Err(CreateError::TooMany) => Err(ApiError::Limited {
                what: Limit::Webhooks,
                retry_after_secs: 0,
            }),
            Err(CreateError::Store(err)) => Err(internal(err)),
        }
    }

    pub async fn remove_webhook(&self, id: &str) -> ApiResult<()> {
        let user = self.signed_in_user().await?;
        let removed = domain::webhooks::remove(&self.state.db, &user.id, id, now_ms())
            .await
            .map_err(internal)?;
        if removed {
            Ok(())
        } else {
            Err(ApiError::NotFound)
        }
    }

    pub async fn update_display_name(&self, display_name: &str) -> ApiResult<()> {
        let user = self.signed_in_user().await?;
        let display_name = validate::display_name("display_name", display_name)
            .map_err(|e| ApiError::Invalid(vec![e]))?;
        domain::accounts::set_display_name(&self.state.db, &user.id, &display_name, now_ms())
            .await
            .map_err(internal)
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
        domain::accounts::set_password(
            &self.state.db,
            &user.id,
            &password_hash,
            new_version,
            now_ms(),
        )
        .await
        .map_err(internal)?;
        // A token made from a stolen session must not outlive the reset.
        let revoked = domain::accounts::tokens::revoke_all(&self.state.db, &user.id, now_ms())
            .await
            .map_err(internal)?;
        tracing::info!(user_id = %user.id, revoked_tokens = revoked, "password changed; other sessions and API tokens ended");
        // This session carries on under a new id with the new version.
        let updated = UserRow {
            auth_version: new_version,
            ..user
        };
        self.establish_user_session(&updated).await
    }
}

/// The store behind an API request's session: there is nothing to load
/// and nothing is ever saved (the session layer that would save is not in
/// front of `/api/v1`).
#[derive(Debug, Clone, Copy)]
struct NoStore;

#[async_trait::async_trait]
impl tower_sessions::SessionStore for NoStore {
    async fn save(
        &self,
        _record: &tower_sessions::session::Record,
    ) -> tower_sessions::session_store::Result<()> {
        Ok(())
    }

    async fn load(
        &self,
        _id: &tower_sessions::session::Id,
    ) -> tower_sessions::session_store::Result<Option<tower_sessions::session::Record>> {
        Ok(None)
    }

    async fn delete(
        &self,
        _id: &tower_sessions::session::Id,
    ) -> tower_sessions::session_store::Result<()> {
        Ok(())
    }
}
