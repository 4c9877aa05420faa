//! `/api/v1`: a small REST API for people's own tools, with personal API
//! tokens (`Authorization: Bearer moim_…`, made on the profile page).
//! Written down in `docs/api.md`.
//!
//! Apart from the pages' server functions: no cookies (the session layer
//! is not in front of it, so a browser's session never authorises a call,
//! and no cross-site request can ride on one), JSON in and out, errors as
//! `{"error": {"code", "message"}}` with stable codes. The rules are the
//! pages' own: each call acts as the token's owner through the same
//! `MeetingCx` and `LobbyCx`.

use app::auth::ssr::{find_user_by_id, RequestCx};
use app::error::{ApiError, FieldError};
use app::lobby::ssr::LobbyCx;
use app::meetings::ssr::{MeetingCx, MeetingForm};
use app::meetings::{MediaMode, Meeting, PARTICIPANTS_DEFAULT};
use app::state::{client_address, AppState};
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use domain::accounts::tokens::{self, TokenRow, TokenScope};
use domain::rooms::Presence;
use domain::throttle::Rule;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;

/// Unknown tokens one address may present.
const BAD_TOKENS: Rule = Rule {
    burst: 30,
    interval: std::time::Duration::from_secs(20),
};

#[derive(Clone)]
pub struct ApiState {
    pub app: AppState,
    /// Who is in each call (for `…/participants`).
    pub presence: Arc<dyn Presence>,
    /// Requests one token may make (`--api-requests-per-minute`).
    pub per_token: Rule,
}

pub fn router<S>(state: ApiState) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/meetings", get(list_meetings).post(create_meeting))
        .route(
            "/meetings/{code}",
            get(get_meeting)
                .patch(update_meeting)
                .delete(cancel_meeting),
        )
        .route("/meetings/{code}/participants", get(participants))
        .route("/meetings/{code}/transcript", get(transcript))
        .route("/openapi.json", get(openapi))
        .fallback(|| async { Failure::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .with_state(state)
}

/// This API described for tools (OpenAPI 3.1): client generators, API
/// explorers, request collections. Written by hand beside `docs/api.md`
/// (a generator such as utoipa would put its macros on every handler and
/// type for seven operations); `server/tests/api.rs` checks it against the
/// running API: every operation it lists exists and asks for a token, and
/// its objects have exactly the fields the answers have.
const OPENAPI_DOCUMENT: &str = include_str!("../../docs/openapi.json");

/// Public, like the documentation: it names no meeting and no person.
async fn openapi() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        OPENAPI_DOCUMENT,
    )
}

// ---------------------------------------------------------------- errors

/// An API error: a status and a stable code, with words for people.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    code: &'static str,
    message: String,
    fields: Vec<FieldError>,
    retry_after_secs: Option<u64>,
}

impl Failure {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            fields: Vec::new(),
            retry_after_secs: None,
        }
    }

    fn unauthorized(message: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    fields: &'a [FieldError],
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
                fields: &self.fields,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"moim\""),
            );
        }
        if let Some(secs) = self.retry_after_secs {
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                headers.insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

impl From<ApiError> for Failure {
    fn from(err: ApiError) -> Self {
        let status = err.status();
        let (code, message) = match &err {
            ApiError::Invalid(_) => ("invalid", "some fields are not valid"),
            ApiError::Unauthenticated | ApiError::BadCredentials => {
                ("unauthorized", "the token's account cannot be used")
            }
            ApiError::TooManyAttempts { .. } | ApiError::Limited { .. } => {
                ("rate_limited", "too many requests")
            }
            ApiError::Forbidden => ("forbidden", "not allowed for this meeting"),
            ApiError::NotFound => ("not_found", "no such meeting"),
            ApiError::NotOpen { .. } => ("not_open", "the meeting is not open"),
            ApiError::Ended => ("ended", "the meeting has ended"),
            ApiError::Internal | ApiError::Transport(_) => ("internal", "internal error"),
        };
        let mut failure = Failure::new(status, code, message);
        match err {
            ApiError::Invalid(fields) => failure.fields = fields,
            ApiError::TooManyAttempts { retry_after_secs }
            | ApiError::Limited {
                retry_after_secs, ..
            } => failure.retry_after_secs = Some(retry_after_secs.max(1)),
            _ => {}
        }
        failure
    }
}

fn internal(err: impl std::fmt::Display) -> Failure {
    tracing::error!(error = %err, "internal error in the API");
    Failure::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "internal error",
    )
}

/// A JSON body, or a clear `invalid_json` error.
fn body<T>(json: Result<Json<T>, JsonRejection>) -> Result<T, Failure> {
    json.map(|Json(value)| value).map_err(|rejection| {
        Failure::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            rejection.body_text(),
        )
    })
}

// ---------------------------------------------------------------- the caller

/// The token's owner, acting through the same request context as a page.
pub struct Caller {
    token: TokenRow,
    cx: RequestCx,
}

impl Caller {
    fn require(&self, scope: TokenScope) -> Result<(), Failure> {
        match (scope, self.token.scope()) {
            (TokenScope::Manage, TokenScope::Read) => Err(Failure::new(
                StatusCode::FORBIDDEN,
                "insufficient_scope",
                "this token may only read; make one that may manage meetings",
            )),
            _ => Ok(()),
        }
    }

    fn meetings(&self) -> MeetingCx {
        MeetingCx::with_auth(self.cx.clone())
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Failure> {
        let Some(token) = bearer(&parts.headers) else {
            return Err(Failure::unauthorized(
                "send an API token: Authorization: Bearer moim_…",
            ));
        };
        let db = &state.app.db;
        let now = domain::clock::now_ms();
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| {
                client_address(addr.ip(), &parts.headers, &state.app.trusted_proxies).to_string()
            })
            .unwrap_or_else(|| "unknown".to_string());
        // Guessing tokens costs a look-up each: 30 misses per address in
        // ten minutes, then 429 until they age out.
        let misses_key = format!("api-auth:{}", domain::throttle::client_key(&peer));
        let misses = state.app.limiter.peek(&misses_key, BAD_TOKENS).await;
        if !misses.allowed {
            state.app.limiter.refused("api_auth");
            let mut failure = Failure::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many unknown tokens from this address",
            );
            failure.retry_after_secs = Some(misses.retry_secs().max(1));
            return Err(failure);
        }
        let Some(token) = tokens::authenticate(db, token, now)
            .await
            .map_err(internal)?
        else {
            state.app.limiter.hit(&misses_key, BAD_TOKENS).await;
            return Err(Failure::unauthorized("unknown or revoked token"));
        };
        let decision = state
            .app
            .limiter
            .hit(&format!("api:{}", token.id), state.per_token)
            .await;
        if !decision.allowed {
            state.app.limiter.refused("api");
            let mut failure = Failure::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests for this token",
            );
            failure.retry_after_secs = Some(decision.retry_secs().max(1));
            return Err(failure);
        }
        let user = find_user_by_id(db, &token.user_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| Failure::unauthorized("the token's account is gone"))?;
        tracing::debug!(token_id = %token.id, client = %peer, "API call");
        // Meeting-code misses count per token, like per address on pages.
        let cx =
            RequestCx::for_user(state.app.clone(), &user, format!("token:{}", token.id)).await?;
        Ok(Self { token, cx })
    }
}

// ---------------------------------------------------------------- meetings

#[derive(Serialize)]
struct MeetingList {
    upcoming: Vec<Meeting>,
    past: Vec<Meeting>,
}

async fn list_meetings(caller: Caller) -> Result<Json<MeetingList>, Failure> {
    let lists = caller.meetings().list().await?;
    Ok(Json(MeetingList {
        upcoming: lists.upcoming,
        past: lists.past,
    }))
}

async fn get_meeting(caller: Caller, Path(code): Path<String>) -> Result<Json<Meeting>, Failure> {
    Ok(Json(caller.meetings().get(&code).await?))
}

/// A meeting to create, or the fields to change (absent: unchanged).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MeetingInput {
    title: Option<String>,
    description: Option<String>,
    /// Unix milliseconds, UTC.
    starts_at_ms: Option<i64>,
    duration_minutes: Option<i64>,
    /// Usernames or email addresses.
    invitees: Option<Vec<String>>,
    waiting_room: Option<bool>,
    allow_guests: Option<bool>,
    max_participants: Option<i64>,
    media_mode: Option<MediaMode>,
    /// Create: start now (`starts_at_ms` is then ignored).
    instant: Option<bool>,
}

impl MeetingInput {
    /// The form the pages would submit, starting from `base`; without a
    /// `base` start (a new meeting) the start is required.
    fn into_form(self, base: &Meeting, base_start: Option<i64>) -> MeetingForm {
        MeetingForm {
            title: self.title.unwrap_or_else(|| base.title.clone()),
            description: self.description.unwrap_or_else(|| base.description.clone()),
            starts_at_ms: self
                .starts_at_ms
                .or(base_start)
                .map(|ms| ms.to_string())
                .unwrap_or_default(),
            duration_minutes: self
                .duration_minutes
                .unwrap_or(base.duration_minutes)
                .to_string(),
            invitees: self
                .invitees
                .unwrap_or_else(|| base.invitees.clone())
                .join(","),
            waiting_room: self.waiting_room.unwrap_or(base.waiting_room),
            allow_guests: self.allow_guests.unwrap_or(base.allow_guests),
            max_participants: self
                .max_participants
                .unwrap_or(base.max_participants)
                .to_string(),
            media_mode: self
                .media_mode
                .unwrap_or(base.media_mode)
                .as_str()
                .to_string(),
        }
    }
}

/// What a new meeting has unless the request says otherwise (the schedule
/// form's defaults).
fn new_meeting_defaults() -> Meeting {
    Meeting {
        code: String::new(),
        title: String::new(),
        description: String::new(),
        starts_at_ms: 0,
        duration_minutes: 60,
        host_name: String::new(),
        waiting_room: true,
        allow_guests: false,
        max_participants: PARTICIPANTS_DEFAULT,
        media_mode: MediaMode::Automatic,
        invitees: Vec::new(),
        cohosts: Vec::new(),
        cancelled: false,
        role: app::meetings::Role::Host,
        link: String::new(),
    }
}

async fn create_meeting(
    caller: Caller,
    json: Result<Json<MeetingInput>, JsonRejection>,
) -> Result<(StatusCode, Json<Meeting>), Failure> {
    caller.require(TokenScope::Manage)?;
    let input = body(json)?;
    let instant = input.instant.unwrap_or(false);
    // An instant meeting starts now; otherwise the start is required (the
    // answer names the field, as the form does).
    let start = instant.then(domain::clock::now_ms);
    let form = input.into_form(&new_meeting_defaults(), start);
    let meetings = caller.meetings();
    let code = meetings.schedule(form, instant).await?;
    tracing::info!(token_id = %caller.token.id, "meeting created through the API");
    Ok((StatusCode::CREATED, Json(meetings.get(&code).await?)))
}

async fn update_meeting(
    caller: Caller,
    Path(code): Path<String>,
    json: Result<Json<MeetingInput>, JsonRejection>,
) -> Result<Json<Meeting>, Failure> {
    caller.require(TokenScope::Manage)?;
    let input = body(json)?;
    let meetings = caller.meetings();
    let current = meetings.get(&code).await?;
    let form = input.into_form(&current, Some(current.starts_at_ms));
    let code = meetings.update(&code, form).await?;
    Ok(Json(meetings.get(&code).await?))
}

async fn cancel_meeting(caller: Caller, Path(code): Path<String>) -> Result<StatusCode, Failure> {
    caller.require(TokenScope::Manage)?;
    caller.meetings().cancel(&code).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---------------------------------------------------------------- the call

#[derive(Serialize)]
struct Participant {
    participant_id: String,
    display_name: String,
    role: app::protocol::PeerRole,
    mic: bool,
    cam: bool,
    screen: bool,
    hand: bool,
    joined_at_ms: i64,
}

/// Who is in the meeting's call now: hosts and co-hosts only.
async fn participants(
    State(state): State<ApiState>,
    caller: Caller,
    Path(code): Path<String>,
) -> Result<Json<Vec<Participant>>, Failure> {
    let lobby = LobbyCx::for_request(caller.cx.clone(), &code).await?;
    lobby.require_moderator().await?;
    let peers = state
        .presence
        .list(&lobby.meeting().id)
        .await
        .map_err(internal)?;
    Ok(Json(
        peers
            .into_iter()
            .map(|peer| Participant {
                participant_id: peer.participant_id.into_string(),
                display_name: peer.display_name,
                role: peer.role,
                mic: peer.media.mic,
                cam: peer.media.cam,
                screen: peer.media.screen,
                hand: peer.media.hand,
                joined_at_ms: peer.joined_at_ms,
            })
            .collect(),
    ))
}

#[derive(Serialize)]
struct TranscriptBody {
    messages: Vec<app::protocol::ChatMessage>,
}

/// The chat of a finished meeting, as its participants see it (private
/// messages only to and from the token's owner).
async fn transcript(
    caller: Caller,
    Path(code): Path<String>,
) -> Result<Json<TranscriptBody>, Failure> {
    let lobby = LobbyCx::for_request(caller.cx.clone(), &code).await?;
    match lobby.transcript().await? {
        app::protocol::Transcript::Ready { messages, .. } => Ok(Json(TranscriptBody { messages })),
        app::protocol::Transcript::NotYet => Err(Failure::new(
            StatusCode::CONFLICT,
            "not_over",
            "the meeting has not ended yet",
        )),
        _ => Err(ApiError::Forbidden.into()),
    }
}
