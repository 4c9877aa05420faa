//! The forwarding core of the media server: what happens to one RTP packet
//! between the publisher that sent it and each browser that receives it,
//! with the packets' header fields and the time as input and the rewritten
//! fields and decisions as output (no sockets, no clock, no crypto).
//!
//! - [`rewrite`]: each receiving browser gets every stream under an SSRC of
//!   its own (one per m-line it was offered), with sequence numbers and
//!   timestamps that run on without a jump when the stream behind it
//!   changes (another publisher takes a freed m-line, a paused camera comes
//!   back, a simulcast layer changes): a browser never sees another
//!   browser's SSRC or a gap it would take for loss.
//! - [`keyframe`]: whether a video packet starts a keyframe (VP8, VP9,
//!   H.264), the only place a receiver can start decoding a new stream.
//! - [`keyframe_requests`]: keyframe requests (PLI) relayed to a publisher,
//!   at most one per interval however many receivers ask.
//! - [`vp8`]: the VP8 picture numbering rewritten alongside, and the
//!   frame height a keyframe carries (how tall each simulcast layer is).
//! - [`layers`]: which simulcast layer of a camera each browser receives
//!   (what its tile needs, held down while its link loses packets).
//! - [`slots`]: which publisher track each m-line of a browser carries;
//!   reconciled against who is in the room, m-lines reused when people
//!   leave, so the session description stays as large as the room.
//! - [`room`]: all of the above for one room: tracks published, people
//!   joining and leaving, last-N pauses, packets and keyframe requests in;
//!   packets to send, keyframe requests for publishers and browsers that
//!   need a new offer out.
//!
//! NACKs are not the core's: each browser's peer connection answers them
//! from what it sent on each (rewritten) SSRC, in its interceptor chain.
//!
//! Why our own and not the `sfu` crate's: sfu 0.5 forwards every packet
//! with the publisher's SSRC and numbers, inside the crate, so none of the
//! above can be added around it (see `server/src/media_server`).

pub mod keyframe;
pub mod keyframe_requests;
pub mod layers;
pub mod rewrite;
pub mod room;
pub mod slots;
pub mod vp8;
