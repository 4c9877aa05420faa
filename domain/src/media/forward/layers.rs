//! Which simulcast layer of a camera one browser receives.
//!
//! A camera in a room on the media server is published in up to three
//! layers (a quarter, half and full size), each its own RTP stream. Each
//! receiver gets one of them per camera:
//! - the one its tile needs: the page says how tall it shows each person
//!   (the pinned or large tile tall, grid tiles small, a hidden page
//!   nothing), and gets the lowest layer at least that tall;
//! - no higher than its link carries: while its receiver reports say it
//!   loses packets, its layers are held down one step at a time, and let
//!   up again one step at a time once the loss has cleared for a while
//!   ([`Congestion`]).
//!
//! A change of layer is a change of source for the receiver's stream
//! ([`super::rewrite`]): at the new layer's keyframe, numbered on.

use std::time::{Duration, Instant};

/// One layer of a published camera, as the choice sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layer {
    /// 0 for the lowest.
    pub index: u8,
    /// The picture height its last keyframe had (`None`: none seen yet).
    pub height: Option<u16>,
}

/// What one receiver asks of one camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wish {
    /// Nothing (the tile is off screen, the page hidden).
    Off,
    /// Pictures this tall (device pixels) at most are of use.
    UpTo(u16),
}

/// The layer to send out of `layers` (those sending now, lowest first):
/// under the `cap` (congestion), the lowest at least as tall as the wish,
/// else the tallest there is. With no wish (the page said nothing), the
/// highest under the cap. `None` when nothing is to go.
pub fn choose(layers: &[Layer], wish: Option<Wish>, cap: Option<u8>) -> Option<Layer> {
    let capped: Vec<Layer> = match cap {
        Some(cap) => {
            let under: Vec<Layer> = layers.iter().copied().filter(|l| l.index <= cap).collect();
            if under.is_empty() {
                layers.first().copied().into_iter().collect()
            } else {
                under
            }
        }
        None => layers.to_vec(),
    };
    match wish {
        Some(Wish::Off) => None,
        None => capped.last().copied(),
        Some(Wish::UpTo(height)) => capped
            .iter()
            .find(|layer| layer.height.is_some_and(|h| h >= height))
            .or(capped.last())
            .copied(),
    }
}

/// A receiver report's fraction lost (out of 256) at or above which the
/// link is congested: about 10 %.
const LOSSY: u8 = 26;
/// At or below this (about 2 %) the loss has cleared.
const CLEAR: u8 = 5;
/// Steps down come at most this often: a step needs time to show in the
/// reports.
const STEP_DOWN_EVERY: Duration = Duration::from_secs(2);
/// The loss must stay clear this long before each step back up.
const CLEAR_FOR: Duration = Duration::from_secs(5);

/// The index of the top layer a browser publishes (three layers).
pub const HIGHEST_LAYER: u8 = 2;

/// One receiver's congestion state: the highest layer index it may get.
#[derive(Debug, Clone, Default)]
pub struct Congestion {
    cap: Option<u8>,
    changed_at: Option<Instant>,
    clear_since: Option<Instant>,
}

impl Congestion {
    /// The highest layer index the receiver may get (`None`: any).
    pub fn cap(&self) -> Option<u8> {
        self.cap
    }

    /// A receiver report of the receiver's: the highest fraction lost
    /// (out of 256) on the video it gets, and the highest layer it gets
    /// now. Answers whether the cap changed.
    pub fn report(&mut self, fraction_lost: u8, receiving_top: u8, now: Instant) -> bool {
        let since_change = self
            .changed_at
            .map_or(Duration::MAX, |at| now.saturating_duration_since(at));
        if fraction_lost >= LOSSY {
            self.clear_since = None;
            if since_change < STEP_DOWN_EVERY {
                return false;
            }
            let current = self.cap.map_or(receiving_top, |cap| cap.min(receiving_top));
            if current == 0 && self.cap.is_some() {
                return false;
            }
            self.cap = Some(current.saturating_sub(1));
            self.changed_at = Some(now);
            return true;
        }
        if fraction_lost > CLEAR {
            self.clear_since = None;
            return false;
        }
        let Some(cap) = self.cap else {
            return false;
        };
        let clear_since = *self.clear_since.get_or_insert(now);
        if now.saturating_duration_since(clear_since) < CLEAR_FOR || since_change < CLEAR_FOR {
            return false;
        }
        // Up one step; at the top, no cap at all.
        self.cap = (cap + 1 < HIGHEST_LAYER).then_some(cap + 1);
        self.changed_at = Some(now);
        self.clear_since = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THREE: [Layer; 3] = [
        Layer {
            index: 0,
            height: Some(180),
        },
        Layer {
            index: 1,
            height: Some(360),
        },
        Layer {
            index: 2,
            height: Some(720),
        },
    ];

    fn index(layer: Option<Layer>) -> Option<u8> {
        layer.map(|l| l.index)
    }

    #[test]
    fn a_tile_gets_the_lowest_layer_at_least_as_tall_as_itself() {
        assert_eq!(index(choose(&THREE, Some(Wish::UpTo(150)), None)), Some(0));
        assert_eq!(index(choose(&THREE, Some(Wish::UpTo(181)), None)), Some(1));
        assert_eq!(index(choose(&THREE, Some(Wish::UpTo(600)), None)), Some(2));
        assert_eq!(
            index(choose(&THREE, Some(Wish::UpTo(1080)), None)),
            Some(2),
            "taller than any: the tallest"
        );
        assert_eq!(index(choose(&THREE, None, None)), Some(2), "no wish");
        assert_eq!(choose(&THREE, Some(Wish::Off), None), None);
        // A layer not sending (the top one, say) is not among them.
        assert_eq!(
            index(choose(&THREE[..2], Some(Wish::UpTo(600)), None)),
            Some(1)
        );
        assert_eq!(choose(&[], None, None), None);
    }

    #[test]
    fn the_congestion_cap_holds_the_choice_down() {
        assert_eq!(
            index(choose(&THREE, Some(Wish::UpTo(600)), Some(1))),
            Some(1)
        );
        assert_eq!(index(choose(&THREE, None, Some(0))), Some(0));
        // A camera whose only layer is above the cap still shows.
        assert_eq!(index(choose(&THREE[2..], None, Some(0))), Some(2));
    }

    #[test]
    fn loss_steps_the_cap_down_one_layer_at_a_time_and_clear_reports_let_it_up() {
        let start = Instant::now();
        let mut congestion = Congestion::default();
        assert!(!congestion.report(0, 2, start), "no loss, nothing to do");
        assert!(congestion.report(60, 2, start), "about 23 % lost");
        assert_eq!(congestion.cap(), Some(1));
        assert!(
            !congestion.report(60, 1, start + Duration::from_millis(500)),
            "not again before the step shows"
        );
        assert!(congestion.report(60, 1, start + Duration::from_secs(2)));
        assert_eq!(congestion.cap(), Some(0));
        assert!(!congestion.report(60, 0, start + Duration::from_secs(5)));
        assert_eq!(congestion.cap(), Some(0), "the lowest is the floor");

        // Clear for five seconds: one step up, then five more: no cap.
        let clear = start + Duration::from_secs(10);
        assert!(!congestion.report(0, 0, clear));
        assert!(!congestion.report(10, 0, clear + Duration::from_secs(3)));
        assert!(
            !congestion.report(0, 0, clear + Duration::from_secs(6)),
            "moderate loss restarts the wait"
        );
        assert!(!congestion.report(0, 0, clear + Duration::from_secs(9)));
        assert!(congestion.report(0, 0, clear + Duration::from_secs(11)));
        assert_eq!(congestion.cap(), Some(1));
        assert!(!congestion.report(0, 1, clear + Duration::from_secs(13)));
        assert!(congestion.report(0, 2, clear + Duration::from_secs(16)));
        assert_eq!(congestion.cap(), None);
    }
}
