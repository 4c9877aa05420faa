//! `GET /m/{code}/chat.txt` and `/m/{code}/chat.md`: a finished meeting's
//! chat for download, for its participants only (the same rule as the
//! transcript on the meeting page). Times are UTC: the server does not know
//! the reader's zone.

use app::auth::ssr::RequestCx;
use app::chat::{render_transcript, Transcript};
use app::lobby::ssr::LobbyCx;
use app::state::{client_address, AppState};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::net::SocketAddr;
use tower_sessions::Session;

pub async fn text(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    code: Path<String>,
    session: Session,
    headers: HeaderMap,
) -> Response {
    download(state, peer, code, session, headers, false).await
}

pub async fn markdown(
    state: State<AppState>,
    peer: ConnectInfo<SocketAddr>,
    code: Path<String>,
    session: Session,
    headers: HeaderMap,
) -> Response {
    download(state, peer, code, session, headers, true).await
}

async fn download(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(code): Path<String>,
    session: Session,
    headers: HeaderMap,
    markdown: bool,
) -> Response {
    let client = client_address(peer.ip(), &headers, &state.trusted_proxies).to_string();
    let auth = RequestCx::from_parts(state.clone(), session, client);
    let lobby = match LobbyCx::for_request(auth, &code).await {
        Ok(lobby) => lobby,
        Err(err) => return (err.status(), format!("{err}\n")).into_response(),
    };
    let title = lobby.meeting().title.clone();
    match lobby.transcript().await {
        Ok(Transcript::Ready { messages, .. }) => {
            let body = render_transcript(&title, &messages, markdown, |ms| {
                format!("{} UTC", &app::time::utc_iso(ms)[..16].replace('T', " "))
            });
            let (kind, name) = if markdown {
                ("text/markdown; charset=utf-8", "chat.md")
            } else {
                ("text/plain; charset=utf-8", "chat.txt")
            };
            (
                [
                    (header::CONTENT_TYPE, kind.to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{name}\""),
                    ),
                    (header::CACHE_CONTROL, "private, no-store".to_string()),
                ],
                body,
            )
                .into_response()
        }
        Ok(Transcript::NotParticipant) => (StatusCode::FORBIDDEN, "not allowed\n").into_response(),
        Ok(Transcript::NotYet) => {
            (StatusCode::CONFLICT, "the meeting is not over yet\n").into_response()
        }
        Err(err) => (err.status(), format!("{err}\n")).into_response(),
    }
}
