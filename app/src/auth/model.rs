//! The account types the pages and the server functions share (the
//! server half, `ssr`, reads and returns them).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    /// Whether the owner proved `email` by opening a link mailed to it. An
    /// unproven address grants nothing (invitations by address do not count).
    pub email_verified: bool,
}

/// The profile page's view of the account's address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountEmail {
    pub email: Option<String>,
    pub verified: bool,
    /// Whether this server sends mail at all.
    pub mail_configured: bool,
}

/// One of the account's API tokens, as the profile page lists it (never
/// the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiTokenInfo {
    pub id: String,
    pub name: String,
    /// `read` or `manage`.
    pub scope: String,
    pub created_at_ms: i64,
    pub last_used_at_ms: Option<i64>,
}

/// A token just made: the only time its secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewApiToken {
    pub name: String,
    pub token: String,
}

/// One of the account's webhook endpoints (its secret is shown once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookInfo {
    pub id: String,
    pub url: String,
    pub created_at_ms: i64,
}

/// One delivery in the log on the profile page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    pub id: String,
    pub webhook_id: String,
    pub event: String,
    pub created_at_ms: i64,
    pub attempts: i64,
    /// `delivered`, `failed` (given up) or `pending`.
    pub state: String,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
}

/// The profile page's webhooks card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhooks {
    pub hooks: Vec<WebhookInfo>,
    pub deliveries: Vec<WebhookDelivery>,
}

/// An endpoint just added: the only time its signing secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewWebhook {
    pub url: String,
    pub secret: String,
}

/// What opening a verification link did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VerifyOutcome {
    Verified,
    /// Unknown, expired or already used: one answer for all.
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestSummary {
    pub id: String,
    pub display_name: String,
}

/// The person behind the current session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Viewer {
    User(UserSummary),
    Guest(GuestSummary),
}

impl Viewer {
    pub fn display_name(&self) -> &str {
        match self {
            Viewer::User(user) => &user.display_name,
            Viewer::Guest(guest) => &guest.display_name,
        }
    }

    pub fn is_guest(&self) -> bool {
        matches!(self, Viewer::Guest(_))
    }
}
