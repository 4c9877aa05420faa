//! Accounts and sessions: who is looking at the page, and the server
//! functions that sign people up, in and out.
//!
//! Identity always comes from the server-side session (tower-sessions); the
//! browser only ever holds an opaque, HttpOnly cookie.

use crate::error::ApiError;
use leptos::prelude::*;

mod model;
#[cfg(feature = "ssr")]
pub mod ssr;
pub use model::*;

/// Who is signed in (or which guest), if anyone.
#[server(endpoint = "current_viewer")]
pub async fn current_viewer() -> Result<Option<Viewer>, ApiError> {
    let cx = ssr::RequestCx::new().await?;
    cx.viewer().await
}

#[server(endpoint = "sign_up")]
pub async fn sign_up(
    username: String,
    display_name: String,
    email: String,
    password: String,
    next: Option<String>,
) -> Result<(), ApiError> {
    let cx = ssr::RequestCx::new().await?;
    let form = ssr::SignUpForm {
        username,
        display_name,
        email,
        password,
    };
    let result = cx.sign_up(form).await;
    cx.finish(result, next.as_deref())
}

#[server(endpoint = "sign_in")]
pub async fn sign_in(
    username: String,
    password: String,
    next: Option<String>,
) -> Result<(), ApiError> {
    let cx = ssr::RequestCx::new().await?;
    let result = cx.sign_in(&username, &password).await;
    cx.finish(result, next.as_deref())
}

#[server(endpoint = "sign_out")]
pub async fn sign_out() -> Result<(), ApiError> {
    let cx = ssr::RequestCx::new().await?;
    let result = cx.sign_out().await;
    cx.finish(result, Some("/"))
}

/// Becomes a guest with a display name (or renames the current guest).
#[server(endpoint = "continue_as_guest")]
pub async fn continue_as_guest(display_name: String, next: Option<String>) -> Result<(), ApiError> {
    let cx = ssr::RequestCx::new().await?;
    let result = cx.continue_as_guest(&display_name).await;
    cx.finish(result, next.as_deref())
}

/// The signed-in account's address and whether it is confirmed.
#[server(endpoint = "email_status")]
pub async fn email_status() -> Result<AccountEmail, ApiError> {
    let cx = ssr::RequestCx::new().await?;
    let result = cx.email_status().await;
    if let Err(err) = &result {
        ssr::set_error_status(err);
    }
    result
}

/// Mails a fresh confirmation link (at most one a minute).
#[server(endpoint = "resend_verification")]
pub async fn resend_verification() -> Result<(), ApiError> {
    let cx = ssr::RequestCx::new().await?;
    let result = cx.resend_verification().await;
    cx.finish(result, None)
}

/// Opens a confirmation link's token. Needs no session: holding the link
/// proves the mailbox.
#[server(endpoint = "verify_email")]
pub async fn verify_email(token: String) -> Result<VerifyOutcome, ApiError> {
    let cx = ssr::RequestCx::new().await?;
    let result = cx.verify_email(&token).await;
    if let Err(err) = &result {
        ssr::set_error_status(err);
    }
    result
}

/// Whether this server sends mail (the meeting form says so near the
/// invitees).
#[server(endpoint = "mail_configured")]
pub async fn mail_configured() -> Result<bool, ApiError> {
    let state = crate::state::AppState::from_context()?;
    Ok(state.mailer.is_configured())
}

/// The account's API tokens (for `/api/v1`).
#[server(endpoint = "list_api_tokens")]
pub async fn list_api_tokens() -> Result<Vec<ApiTokenInfo>, ApiError> {
    let cx = ssr::RequestCx::new().await?;
    let result = cx.api_tokens().await;
    if let Err(err) = &result {
        ssr::set_error_status(err);
    }
    result
}

/// Makes an API token; its secret is in the answer and nowhere else.
#[server(endpoint = "create_api_token")]
pub async fn create_api_token(name: String, scope: String) -> Result<NewApiToken, ApiError> {
    let cx = ssr::RequestCx::new().await?;
    let result = cx.create_api_token(&name, &scope).await;
    if let Err(err) = &result {
        ssr::set_error_status(err);
    }
    result
}

/// Revokes one of the account's API tokens: it stops working at once.
#[server(endpoint = "revoke_api_token")]
pub async fn revoke_api_token(id: String) -> Result<(), ApiError> {
    let cx = ssr::RequestCx::new().await?;
    let result = cx.revoke_api_token(&id).await;
    cx.finish(result, None)
}

/// The account's webhook endpoints and their latest deliveries.
#[server(endpoint = "list_webhooks")]
pub async fn list_webhooks() -> Result<Webhooks, ApiError> {
    let cx = ssr::RequestCx::new().await?;
    let result = cx.webhooks().await;
    if let Err(err) = &result {
        ssr::set_error_status(err);
    }
    result
}

/// Adds a webhook endpoint; its signing secret is in the answer only.
#[server(endpoint = "create_webhook")]
pub async fn create_webhook(url: String) -> Result<NewWebhook, ApiError> {
    let cx = ssr::RequestCx::new().await?;
    let result = cx.create_webhook(&url).await;
    if let Err(err) = &result {
        ssr::set_error_status(err);
    }
    result
}

/// Removes a webhook endpoint (nothing more is sent to it).
#[server(endpoint = "remove_webhook")]
pub async fn remove_webhook(id: String) -> Result<(), ApiError> {
    let cx = ssr::RequestCx::new().await?;
    let result = cx.remove_webhook(&id).await;
    cx.finish(result, None)
}

#[server(endpoint = "update_profile")]
pub async fn update_profile(display_name: String) -> Result<(), ApiError> {
    let cx = ssr::RequestCx::new().await?;
    let result = cx.update_display_name(&display_name).await;
    cx.finish(result, None)
}

/// Changes the password and ends every other session of this user.
#[server(endpoint = "change_password")]
pub async fn change_password(
    current_password: String,
    new_password: String,
) -> Result<(), ApiError> {
    let cx = ssr::RequestCx::new().await?;
    let result = cx.change_password(&current_password, &new_password).await;
    cx.finish(result, None)
}
