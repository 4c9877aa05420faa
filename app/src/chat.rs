//! In-room chat: stored messages, and the transcript participants see on
//! the meeting page once the meeting is over. Live sending and receiving
//! travel on the signaling connection (`protocol::ClientMessage::ChatSend`).

use crate::error::ApiError;
use leptos::prelude::*;

pub use crate::protocol::Transcript;

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
