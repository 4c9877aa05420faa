//! The call engine's decisions as plain functions: what a close code means,
//! how long to wait before reconnecting, who yields in a negotiation, which
//! chat messages to send again. Compiled everywhere, so `cargo test` checks
//! them without a browser; the engine (`engine`, browser only) supplies the
//! time and randomness and acts on the answers.

use super::EndReason;
use crate::protocol::close;

/// What the page does when its signaling connection closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterClose {
    /// The call is over for this page.
    End(EndReason),
    /// Connect again.
    Reconnect {
        /// The server asked us back (restart, resynchronise): at once,
        /// without the backoff built up so far.
        at_once: bool,
        /// A refusal before the socket even opened (the network, or not
        /// admitted any more): counted towards asking the door.
        refused_before_open: bool,
    },
}

/// The meaning of close `code`. `live` says whether this page was in the
/// call (joined) when it closed; `max_participants` is the room's size,
/// for the "room full" message.
pub fn after_close(code: u16, live: bool, max_participants: u32) -> AfterClose {
    match code {
        close::REMOVED => AfterClose::End(EndReason::Removed),
        close::ENDED => AfterClose::End(EndReason::Ended),
        close::SIGNED_OUT => AfterClose::End(EndReason::SignedOut),
        close::CANCELLED => AfterClose::End(EndReason::Cancelled),
        // Replaced while live means another window took over; before that
        // it is our own older socket being retired.
        close::REPLACED if live => AfterClose::End(EndReason::Replaced),
        close::FULL => AfterClose::End(EndReason::Full(max_participants)),
        close::VERSION => AfterClose::End(EndReason::Failed),
        _ => AfterClose::Reconnect {
            at_once: matches!(code, close::RESTART | close::TRY_AGAIN_LATER),
            refused_before_open: code == close::ABNORMAL || code == close::NOT_ADMITTED,
        },
    }
}

/// Milliseconds before reconnect attempt `attempt` (0 for the first):
/// 0.5 s doubling to 8 s, spread by `jitter` in [0, 1) over ±25 % so a
/// restarted server is not hit by everyone at once.
pub fn reconnect_delay_ms(attempt: u32, jitter: f64) -> u64 {
    let base = 500.0 * 2f64.powi(attempt.min(4) as i32);
    (base * (0.75 + jitter.clamp(0.0, 1.0) * 0.5)) as u64
}

/// Refusals in a row before the socket opened after which the page asks
/// the door whether it is still admitted (removed while away).
pub const REFUSALS_BEFORE_ASKING_THE_DOOR: u32 = 3;

pub fn should_ask_the_door(refusals_before_open: u32) -> bool {
    refusals_before_open >= REFUSALS_BEFORE_ASKING_THE_DOOR
}

/// Perfect negotiation: of two peers, the one with the greater id is
/// polite (yields when both offer at once). Both sides compute the same.
pub fn is_polite(me: &str, peer: &str) -> bool {
    me > peer
}

/// Whether an incoming description is ignored: an offer that collides with
/// our own negotiation (we are making an offer, or not stable) is dropped
/// by the impolite side only.
pub fn ignores_offer(polite: bool, is_offer: bool, making_offer: bool, stable: bool) -> bool {
    let collision = is_offer && (making_offer || !stable);
    !polite && collision
}

/// Milliseconds a chat message may stay unconfirmed before it is sent again
/// and shown as retrying.
pub const CHAT_RESEND_MS: f64 = 5_000.0;

/// Whether an unconfirmed chat message last sent at `last_sent_ms` is sent
/// again now: all of them after a reconnect, otherwise the stale ones.
pub fn resend_chat_now(after_reconnect: bool, last_sent_ms: f64, now_ms: f64) -> bool {
    after_reconnect || now_ms - last_sent_ms > CHAT_RESEND_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closes_that_end_the_call_and_closes_that_reconnect() {
        assert_eq!(
            after_close(close::REMOVED, true, 6),
            AfterClose::End(EndReason::Removed)
        );
        assert_eq!(
            after_close(close::SIGNED_OUT, false, 6),
            AfterClose::End(EndReason::SignedOut)
        );
        assert_eq!(
            after_close(close::FULL, false, 6),
            AfterClose::End(EndReason::Full(6))
        );
        // Our own older socket retired before we were live: reconnect.
        assert!(matches!(
            after_close(close::REPLACED, false, 6),
            AfterClose::Reconnect { .. }
        ));
        assert_eq!(
            after_close(close::REPLACED, true, 6),
            AfterClose::End(EndReason::Replaced)
        );
        assert_eq!(
            after_close(close::RESTART, true, 6),
            AfterClose::Reconnect {
                at_once: true,
                refused_before_open: false
            }
        );
        assert_eq!(
            after_close(close::ABNORMAL, true, 6),
            AfterClose::Reconnect {
                at_once: false,
                refused_before_open: true
            }
        );
        assert_eq!(
            after_close(close::NORMAL, true, 6),
            AfterClose::Reconnect {
                at_once: false,
                refused_before_open: false
            }
        );
    }

    #[test]
    fn backoff_doubles_to_eight_seconds_with_a_quarter_of_jitter() {
        let middle: Vec<u64> = (0..7).map(|a| reconnect_delay_ms(a, 0.5)).collect();
        assert_eq!(middle, [500, 1000, 2000, 4000, 8000, 8000, 8000]);
        assert_eq!(reconnect_delay_ms(0, 0.0), 375);
        assert_eq!(reconnect_delay_ms(4, 0.999_999), 9999);
        // Out-of-range jitter stays within the spread.
        assert_eq!(reconnect_delay_ms(1, 7.0), 1250);
    }

    #[test]
    fn the_door_is_asked_after_three_refusals() {
        assert!(!should_ask_the_door(2));
        assert!(should_ask_the_door(3));
    }

    #[test]
    fn exactly_one_side_of_a_pair_is_polite_and_only_the_impolite_ignores() {
        assert!(is_polite("b", "a") && !is_polite("a", "b"));
        // A colliding offer: the impolite side ignores it, the polite yields.
        assert!(ignores_offer(false, true, true, true));
        assert!(ignores_offer(false, true, false, false));
        assert!(!ignores_offer(true, true, true, false));
        // No collision, or an answer: never ignored.
        assert!(!ignores_offer(false, true, false, true));
        assert!(!ignores_offer(false, false, true, false));
    }

    #[test]
    fn chat_is_resent_after_a_reconnect_or_once_stale() {
        assert!(resend_chat_now(true, 1_000.0, 1_001.0));
        assert!(!resend_chat_now(false, 1_000.0, 6_000.0));
        assert!(resend_chat_now(false, 1_000.0, 6_001.0));
    }
}
