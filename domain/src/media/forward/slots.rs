//! Which publisher track each m-line of one receiving browser carries.
//!
//! Every m-line the server offers stays in the browser's session
//! description for good (an m-line can be stopped, never removed). So when
//! someone leaves, their m-lines are freed and the next person's tracks
//! take them over, and a browser's description only grows with the largest
//! the room has been, not with everyone who ever came (a description must
//! also fit the signaling's 64 KiB frame).
//!
//! [`Slots::reconcile`] is given the tracks the browser should receive
//! now and answers what changed; given the same tracks again it changes
//! nothing, so it can be called whenever anything in the room moves.

use super::rewrite::StreamKind;

/// One m-line: its kind and the track it carries, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot<T> {
    pub kind: StreamKind,
    pub track: Option<T>,
}

/// What one reconcile changed: the browser needs a new offer when it is
/// not empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotChanges<T> {
    /// M-lines (by index) that carry a new track now.
    pub assigned: Vec<(usize, T)>,
    /// M-lines whose track is gone and that carry nothing now.
    pub freed: Vec<usize>,
    /// How many of the assigned m-lines are new at the end.
    pub added: usize,
}

impl<T> SlotChanges<T> {
    pub fn is_empty(&self) -> bool {
        self.assigned.is_empty() && self.freed.is_empty()
    }
}

/// The m-lines of one receiving browser, in session-description order.
#[derive(Debug, Clone)]
pub struct Slots<T> {
    slots: Vec<Slot<T>>,
}

impl<T> Default for Slots<T> {
    fn default() -> Self {
        Self { slots: Vec::new() }
    }
}

impl<T: Clone + Eq> Slots<T> {
    /// Makes the m-lines carry exactly the tracks of `wanted` (each with
    /// its kind; a track named twice counts once). A track keeps the
    /// m-line it has; a new one takes the first free m-line of its kind,
    /// or a new one at the end.
    pub fn reconcile(&mut self, wanted: &[(T, StreamKind)]) -> SlotChanges<T> {
        let mut changes = SlotChanges {
            assigned: Vec::new(),
            freed: Vec::new(),
            added: 0,
        };
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let still_wanted = slot
                .track
                .as_ref()
                .is_some_and(|track| wanted.iter().any(|(want, _)| want == track));
            if slot.track.is_some() && !still_wanted {
                slot.track = None;
                changes.freed.push(index);
            }
        }
        for (track, kind) in wanted {
            if self.index_of(track).is_some() {
                continue;
            }
            let free = self
                .slots
                .iter()
                .position(|slot| slot.kind == *kind && slot.track.is_none());
            let index = match free {
                Some(index) => {
                    changes.freed.retain(|freed| *freed != index);
                    index
                }
                None => {
                    self.slots.push(Slot {
                        kind: *kind,
                        track: None,
                    });
                    changes.added += 1;
                    self.slots.len() - 1
                }
            };
            self.slots[index].track = Some(track.clone());
            changes.assigned.push((index, track.clone()));
        }
        changes
    }

    /// The m-line carrying `track`.
    pub fn index_of(&self, track: &T) -> Option<usize> {
        self.slots
            .iter()
            .position(|slot| slot.track.as_ref() == Some(track))
    }

    pub fn slots(&self) -> &[Slot<T>] {
        &self.slots
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StreamKind::{Audio, Video};

    /// A track: whose, and which of theirs.
    type Track = (u32, &'static str);

    fn tracks_of(people: &[u32]) -> Vec<(Track, StreamKind)> {
        people
            .iter()
            .flat_map(|&person| [((person, "mic"), Audio), ((person, "camera"), Video)])
            .collect()
    }

    #[test]
    fn reconciling_twice_with_the_same_tracks_changes_nothing() {
        let mut slots = Slots::default();
        let wanted = tracks_of(&[1, 2, 3]);
        let first = slots.reconcile(&wanted);
        assert_eq!(first.assigned.len(), 6);
        assert_eq!(first.added, 6);
        let before = slots.slots().to_vec();
        let again = slots.reconcile(&wanted);
        assert!(again.is_empty(), "{again:?}");
        assert_eq!(again.added, 0);
        assert_eq!(slots.slots(), before.as_slice());
        // In another order too.
        let mut shuffled = wanted.clone();
        shuffled.reverse();
        assert!(slots.reconcile(&shuffled).is_empty());
    }

    #[test]
    fn a_newcomer_takes_the_m_lines_of_someone_who_left() {
        let mut slots = Slots::default();
        slots.reconcile(&tracks_of(&[1, 2, 3]));
        let camera_of_2 = slots.index_of(&(2, "camera")).expect("assigned");
        let mic_of_2 = slots.index_of(&(2, "mic")).expect("assigned");

        let left = slots.reconcile(&tracks_of(&[1, 3]));
        let mut freed = left.freed.clone();
        freed.sort_unstable();
        let mut expected = vec![camera_of_2, mic_of_2];
        expected.sort_unstable();
        assert_eq!(freed, expected);
        assert!(left.assigned.is_empty());

        let came = slots.reconcile(&tracks_of(&[1, 3, 4]));
        assert_eq!(came.added, 0, "no new m-line");
        assert_eq!(slots.index_of(&(4, "camera")), Some(camera_of_2));
        assert_eq!(slots.index_of(&(4, "mic")), Some(mic_of_2));
        assert_eq!(slots.slots().len(), 6);
        assert_eq!(slots.index_of(&(1, "mic")), Some(0), "the others stay put");
    }

    #[test]
    fn a_leave_and_a_join_in_one_reconcile_reuse_the_m_lines_at_once() {
        let mut slots = Slots::default();
        slots.reconcile(&tracks_of(&[1, 2]));
        let changes = slots.reconcile(&tracks_of(&[1, 5]));
        assert!(changes.freed.is_empty(), "taken again in the same change");
        assert_eq!(changes.assigned.len(), 2);
        assert_eq!(changes.added, 0);
    }

    #[test]
    fn an_m_line_is_only_reused_by_a_track_of_its_kind() {
        let mut slots = Slots::default();
        slots.reconcile(&[((1, "mic"), Audio)]);
        let changes = slots.reconcile(&[((2, "screen"), Video)]);
        assert_eq!(changes.freed, vec![0]);
        assert_eq!(changes.assigned, vec![(1, (2, "screen"))]);
        assert_eq!(slots.slots()[0].track, None);
    }

    #[test]
    fn two_hundred_people_coming_and_going_never_grow_it_past_the_largest_room() {
        let mut slots = Slots::default();
        let mut present: Vec<u32> = (0..10).collect();
        slots.reconcile(&tracks_of(&present));
        for newcomer in 10..210u32 {
            present.remove(usize::try_from(newcomer % 7).expect("small") % present.len());
            slots.reconcile(&tracks_of(&present));
            present.push(newcomer);
            let changes = slots.reconcile(&tracks_of(&present));
            assert_eq!(changes.added, 0, "newcomer {newcomer} needed new m-lines");
        }
        assert_eq!(slots.slots().len(), 20);
        for (track, _) in tracks_of(&present) {
            assert!(slots.index_of(&track).is_some());
        }
    }
}
