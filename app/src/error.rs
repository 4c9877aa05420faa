//! The error type of every server function: it crosses the wire as JSON, so the
//! browser can show a precise, translated message next to the right field,
//! and it never carries internal details (database errors stay in the logs).

use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize};

/// Why a single form field was refused. The client turns the code into text
/// in the reader's language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldProblem {
    Required,
    TooShort,
    TooLong,
    InvalidChars,
    ControlChars,
    UsernameTaken,
    EmailTaken,
    EmailInvalid,
    WrongCurrentPassword,
    /// A number or time outside what is allowed.
    OutOfRange,
    /// A start time that has already passed.
    InThePast,
    /// Usernames or addresses that match nobody.
    UnknownInvitees(Vec<String>),
    /// Not an `https://` URL with a host.
    UrlInvalid,
    /// An address on a private network (or loopback, link-local).
    UrlPrivate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The form field's `name`.
    pub field: String,
    pub problem: FieldProblem,
}

impl FieldError {
    pub fn new(field: &str, problem: FieldProblem) -> Self {
        Self {
            field: field.to_string(),
            problem,
        }
    }
}

/// Which limit `ApiError::Limited` is about (each has its own message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Limit {
    /// Accounts created from one address.
    SignUps,
    /// Guest identities created from one address.
    Guests,
    /// Knocks on one meeting from one address.
    Knocks,
    /// The meeting's waiting list is full.
    WaitingRoomFull,
    /// The account holds as many API tokens as it may.
    ApiTokens,
    /// The account has as many webhooks as it may.
    Webhooks,
    /// Connection self-tests from one address (each hands out TURN
    /// credentials).
    SelfTests,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum ApiError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    /// The one answer for "no such user" and "wrong password".
    #[error("incorrect username or password")]
    BadCredentials,
    #[error("too many attempts; retry in {retry_after_secs} s")]
    TooManyAttempts { retry_after_secs: u64 },
    /// Too many of something that costs the server (not failures): wait.
    #[error("limit reached; retry in {retry_after_secs} s")]
    Limited { what: Limit, retry_after_secs: u64 },
    #[error("sign-in required")]
    Unauthenticated,
    #[error("not allowed")]
    Forbidden,
    #[error("not found")]
    NotFound,
    /// The meeting cannot be entered yet (or any more).
    #[error("meeting not open")]
    NotOpen { opens_at_ms: i64 },
    /// A host ended the meeting for everyone.
    #[error("meeting ended")]
    Ended,
    #[error("internal error")]
    Internal,
    /// The request never produced an answer of ours (network, decoding).
    #[error("request failed: {0}")]
    Transport(String),
}

impl ApiError {
    pub fn field_problem(&self, field: &str) -> Option<FieldProblem> {
        match self {
            ApiError::Invalid(errors) => errors
                .iter()
                .find(|e| e.field == field)
                .map(|e| e.problem.clone()),
            _ => None,
        }
    }

    /// The HTTP status a server function answers with for this error.
    pub fn status(&self) -> http::StatusCode {
        use http::StatusCode;
        match self {
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadCredentials | ApiError::Unauthenticated => StatusCode::UNAUTHORIZED,
            ApiError::TooManyAttempts { .. } | ApiError::Limited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::NotOpen { .. } => StatusCode::CONFLICT,
            ApiError::Ended => StatusCode::GONE,
            ApiError::Internal | ApiError::Transport(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Sets the response status of the current server function or page to the
/// one that matches `err` (the framework would answer 500 for everything).
///
/// Not for a plain HTML form post (the page was not interactive yet, or
/// JavaScript is off): the framework answers it with a redirect back to the
/// form carrying the error, which the form then shows beside its fields; a
/// 4xx status would replace that redirect with a page of JSON.
#[cfg(feature = "ssr")]
pub fn set_error_status(err: &ApiError) {
    if is_plain_form_post() {
        return;
    }
    if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(err.status());
    }
}

/// Whether the current request is a server function called by a plain
/// `<form>` submission: a browser navigation, which asks for HTML.
/// (Calls from the page's code ask for JSON.)
#[cfg(feature = "ssr")]
pub fn is_plain_form_post() -> bool {
    leptos::prelude::use_context::<http::request::Parts>()
        .is_some_and(|parts| is_plain_form_post_to(&parts.method, &parts.uri, &parts.headers))
}

/// The same question about any request (the server's form layer asks it
/// before the request reaches the framework).
#[cfg(feature = "ssr")]
pub fn is_plain_form_post_to(
    method: &http::Method,
    uri: &http::Uri,
    headers: &http::HeaderMap,
) -> bool {
    method == http::Method::POST
        && uri.path().starts_with("/api/")
        && headers
            .get(http::header::ACCEPT)
            .and_then(|accept| accept.to_str().ok())
            .is_some_and(|accept| accept.contains("text/html"))
}

impl FromServerFnError for ApiError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        let error = Self::from_framework_error(value);
        // On the server the framework would answer 500 for everything; the
        // status follows the error instead (422 for unreadable fields).
        #[cfg(feature = "ssr")]
        if matches!(error, ApiError::Invalid(_)) {
            set_error_status(&error);
        }
        error
    }
}

impl ApiError {
    fn from_framework_error(value: ServerFnErrorErr) -> Self {
        match value {
            // The request's fields could not be read (a field missing, or
            // not of its type): the caller's mistake, answered 422 like any
            // other invalid input, never a 500.
            ServerFnErrorErr::MissingArg(field) => {
                ApiError::Invalid(vec![FieldError::new(&field, FieldProblem::Required)])
            }
            ServerFnErrorErr::Args(_) => {
                ApiError::Invalid(vec![FieldError::new("request", FieldProblem::InvalidChars)])
            }
            other => ApiError::Transport(other.to_string()),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
