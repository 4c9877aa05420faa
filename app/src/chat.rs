//! In-room chat: stored messages, and the transcript participants see on
//! the meeting page once the meeting is over. Live sending and receiving
//! travel on the signaling connection (`protocol::ClientMessage::ChatSend`).

use crate::error::ApiError;
use crate::protocol::ChatMessage;
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

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
