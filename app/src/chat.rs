//! In-room chat: stored messages, and the transcript participants see on
//! the meeting page once the meeting is over. Live sending and receiving
//! travel on the signaling connection (`protocol::ClientMessage::ChatSend`).

use crate::error::ApiError;
use crate::protocol::ChatMessage;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

#[cfg(feature = "ssr")]
pub mod ssr;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Transcript {
    /// The meeting is still on (or has not started): no transcript yet.
    NotYet,
    /// The viewer was not in the meeting.
    NotParticipant,
    Ready {
        /// Every message the viewer may see, oldest first.
        messages: Vec<ChatMessage>,
        /// The viewer's participant id (marks their own messages).
        viewer_id: String,
    },
}

/// The chat of a meeting that is over, for its participants only.
#[server(endpoint = "chat_transcript")]
pub async fn chat_transcript(code: String) -> Result<Transcript, ApiError> {
    let cx = crate::lobby::ssr::LobbyCx::new(&code).await?;
    // Part of the meeting page: someone who was not in the meeting simply
    // sees no transcript (an error here would become the page's status).
    match cx.transcript().await {
        Err(ApiError::Unauthenticated | ApiError::Forbidden) => Ok(Transcript::NotParticipant),
        other => cx.finish(other),
    }
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
        out.push_str(&format!("# {}\n\n", escape_markdown(title)));
    } else {
        out.push_str(&format!("{title}\n\n"));
    }
    for m in messages {
        let time = format_time(m.sent_at_ms);
        let private = m
            .to_name
            .as_ref()
            .map(|to| format!(" → {to} (private)"))
            .unwrap_or_default();
        if markdown {
            out.push_str(&format!(
                "**{}**{} · {}\n\n",
                escape_markdown(&m.sender_name),
                escape_markdown(&private),
                time
            ));
            for line in m.text.lines() {
                out.push_str(&format!("> {}\n", escape_markdown(line)));
            }
            out.push('\n');
        } else {
            out.push_str(&format!(
                "[{time}] {}{private}: {}\n",
                m.sender_name, m.text
            ));
        }
    }
    out
}

/// Backslash-escapes Markdown's punctuation so user text stays text.
fn escape_markdown(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\`*_{}[]()#+-.!|<>~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_transcript_escapes_user_text() {
        let messages = vec![ChatMessage {
            seq: 1,
            sender_id: "u".into(),
            sender_name: "*Ann*".into(),
            key: "k".into(),
            text: "<img src=x> [link](http://x)".into(),
            sent_at_ms: 0,
            to_id: None,
            to_name: None,
        }];
        let md = render_transcript("Plan", &messages, true, |_| "10:00".into());
        assert!(md.contains("**\\*Ann\\***"), "{md}");
        assert!(
            md.contains("\\<img src=x\\> \\[link\\]\\(http://x\\)"),
            "{md}"
        );
        let txt = render_transcript("Plan", &messages, false, |_| "10:00".into());
        assert!(
            txt.contains("[10:00] *Ann*: <img src=x> [link](http://x)"),
            "{txt}"
        );
    }
}
