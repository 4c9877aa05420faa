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
