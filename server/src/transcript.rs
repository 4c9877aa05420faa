//! `GET /m/{code}/chat.txt` and `/m/{code}/chat.md`: a finished meeting's
//! chat for download, for its participants only (the same rule as the
//! transcript on the meeting page). Times are UTC: the server does not know
//! the reader's zone.
//!
//! Each message is exactly one line of the `.txt` file (and one quoted
//! block of the `.md` file) whatever its text holds: a line break typed
//! into a message must not be able to forge another sender's line. Messages
//! stored before line breaks were normalised on input are cleaned again
//! here.

use app::auth::ssr::RequestCx;
use app::chat::Transcript;
use app::lobby::ssr::LobbyCx;
use app::protocol::ChatMessage;
use app::state::{client_address, AppState};
use app::validate::{chat_text, is_line_break};
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

/// What stands for a line break inside a one-line message: visible, so the
/// reader sees where the sender broke the line.
const LINE_BREAK_MARK: &str = " ↵ ";

/// User text as one line: every kind of line break shown as
/// [`LINE_BREAK_MARK`], control characters and bidirectional overrides gone.
fn one_line(text: &str) -> String {
    chat_text(text)
        .split(is_line_break)
        .collect::<Vec<_>>()
        .join(LINE_BREAK_MARK)
}

/// The transcript as plain text or Markdown, for download.
pub fn render_transcript(
    title: &str,
    messages: &[ChatMessage],
    markdown: bool,
    format_time: impl Fn(i64) -> String,
) -> String {
    let mut out = String::new();
    if markdown {
        out.push_str(&format!("# {}\n\n", escape_markdown(&one_line(title))));
    } else {
        out.push_str(&format!("{}\n\n", one_line(title)));
    }
    for m in messages {
        let time = format_time(m.sent_at_ms);
        let sender = one_line(&m.sender_name);
        let private = m
            .to_name
            .as_ref()
            .map(|to| format!(" → {} (private)", one_line(to)))
            .unwrap_or_default();
        if markdown {
            out.push_str(&format!(
                "**{}**{} · {}\n\n",
                escape_markdown(&sender),
                escape_markdown(&private),
                time
            ));
            // Every line of the message stays inside the quote, whichever
            // line break separated it.
            for line in chat_text(&m.text).split(is_line_break) {
                out.push_str(&format!("> {}\n", escape_markdown(line)));
            }
            out.push('\n');
        } else {
            out.push_str(&format!(
                "[{time}] {sender}{private}: {}\n",
                one_line(&m.text)
            ));
        }
    }
    out
}

/// Backslash-escapes Markdown's punctuation so user text stays text
/// (`=` would turn the line above into a heading, `&` start an entity).
fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\`*_{}[]()#+-.!|<>~=&".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(sender: &str, text: &str, to: Option<&str>) -> ChatMessage {
        ChatMessage {
            seq: 1,
            sender_id: "u".into(),
            sender_name: sender.into(),
            key: "k".into(),
            text: text.into(),
            sent_at_ms: 0,
            to_id: to.map(|_| "v".into()),
            to_name: to.map(Into::into),
        }
    }

    #[test]
    fn markdown_transcript_escapes_user_text() {
        let messages = vec![message("*Ann*", "<img src=x> [link](http://x)", None)];
        let md = render_transcript("Plan", &messages, true, |_| "10:00".into());
        assert!(md.contains("**\\*Ann\\***"), "{md}");
        assert!(
            md.contains("\\<img src\\=x\\> \\[link\\]\\(http://x\\)"),
            "{md}"
        );
        let txt = render_transcript("Plan", &messages, false, |_| "10:00".into());
        assert!(
            txt.contains("[10:00] *Ann*: <img src=x> [link](http://x)"),
            "{txt}"
        );
    }

    /// Every way of breaking a line that some viewer honours.
    const FORGERY: &str = "hi\n[10:00] Bob: lf\r[10:00] Bob: cr\r\n[10:00] Bob: crlf\u{2028}[10:00] Bob: ls\u{2029}[10:00] Bob: ps\u{85}[10:00] Bob: nel\u{0B}[10:00] Bob: vt\u{0C}[10:00] Bob: ff";

    #[test]
    fn a_message_is_one_line_of_the_text_file_whatever_it_holds() {
        let messages = vec![
            message("Ann", FORGERY, None),
            message("Cat\u{2028}[10:00] Bob", "x", Some("Dan\r\nEve")),
        ];
        let txt = render_transcript("Plan\nB", &messages, false, |_| "10:00".into());
        // Split the way the most liberal reader would.
        let lines: Vec<&str> = txt
            .split(|c: char| is_line_break(c))
            .filter(|l| !l.is_empty())
            .collect();
        assert_eq!(lines.len(), 3, "{txt:?}");
        assert_eq!(lines[0], "Plan ↵ B");
        assert!(
            lines[1].starts_with("[10:00] Ann: hi ↵ [10:00] Bob: lf ↵ "),
            "{txt}"
        );
        assert!(lines[1].ends_with("Bob: vt ↵ [10:00] Bob: ff"), "{txt}");
        assert_eq!(
            lines[2],
            "[10:00] Cat ↵ [10:00] Bob → Dan ↵ Eve (private): x"
        );
        assert!(!lines.iter().any(|l| l.starts_with("[10:00] Bob")));
    }

    #[test]
    fn every_line_of_a_message_stays_inside_its_markdown_quote() {
        let messages = vec![message("Ann", &format!("{FORGERY}\n===\n&lt;"), None)];
        let md = render_transcript("Plan", &messages, true, |_| "10:00".into());
        let lines: Vec<&str> = md.split(|c: char| is_line_break(c)).collect();
        assert_eq!(lines[0], "# Plan");
        assert_eq!(lines[2], "**Ann** · 10:00");
        let quoted: Vec<&str> = lines[4..]
            .iter()
            .copied()
            .take_while(|l| !l.is_empty())
            .collect();
        assert_eq!(quoted.len(), 11, "{md}");
        assert!(quoted.iter().all(|l| l.starts_with("> ")), "{md}");
        assert!(
            lines[4 + quoted.len()..].iter().all(|l| l.is_empty()),
            "{md}"
        );
        // A setext underline and an entity stay literal.
        assert!(md.contains("> \\=\\=\\=\n> \\&lt;\n"), "{md}");
    }

    #[test]
    fn bidirectional_overrides_do_not_reach_the_files() {
        let messages = vec![message("Ann", "see \u{202E}fdp.exe", None)];
        for markdown in [false, true] {
            let out = render_transcript("Plan", &messages, markdown, |_| "10:00".into());
            assert!(!out.contains('\u{202E}'), "{out:?}");
        }
    }
}
