//! Connection quality: every few seconds each connection's `getStats()` is
//! sampled and rated (`super::super::rate_quality`), per remote peer and
//! for this page as a whole (its worst connection).

use super::*;
use crate::call::{rate_quality, Quality, QualityLevel, StatsSample};

/// How often the connections are sampled.
pub(super) const SAMPLE_EVERY: Duration = Duration::from_secs(3);

/// The previous sample of each connection, by peer id ("" for the media
/// server connection).
#[derive(Default)]
pub(super) struct QualityState {
    previous: RefCell<HashMap<PeerId, StatsSample>>,
    sampling: Cell<bool>,
}

/// The number field `name` of a JavaScript object (a stats entry, a
/// track's settings).
pub(super) fn number(stat: &JsValue, name: &str) -> Option<f64> {
    js_sys::Reflect::get(stat, &name.into())
        .ok()
        .and_then(|v| v.as_f64())
}

fn text(stat: &JsValue, name: &str) -> Option<String> {
    js_sys::Reflect::get(stat, &name.into())
        .ok()
        .and_then(|v| v.as_string())
}

/// The counters of one connection now.
async fn sample(pc: &RtcPeerConnection) -> Option<StatsSample> {
    let report = JsFuture::from(pc.get_stats()).await.ok()?;
    let values = js_sys::Reflect::get(&report, &"values".into())
        .ok()?
        .dyn_into::<js_sys::Function>()
        .ok()?
        .call0(&report)
        .ok()?;
    let mut sample = StatsSample::default();
    let mut selected_pair = None;
    let mut pairs = Vec::new();
    let mut transport_pair = None;
    for stat in js_sys::try_iter(&values).ok()??.flatten() {
        match text(&stat, "type").as_deref() {
            Some("inbound-rtp") => {
                sample.packets_received += number(&stat, "packetsReceived").unwrap_or(0.0);
                sample.packets_lost += number(&stat, "packetsLost").unwrap_or(0.0).max(0.0);
            }
            Some("transport") => transport_pair = text(&stat, "selectedCandidatePairId"),
            Some("candidate-pair") => {
                if js_sys::Reflect::get(&stat, &"nominated".into())
                    .ok()
                    .and_then(|v| v.as_bool())
                    == Some(true)
                    && text(&stat, "state").as_deref() == Some("succeeded")
                {
                    selected_pair = Some(stat.clone());
                }
                pairs.push(stat);
            }
            _ => {}
        }
    }
    // The transport names the pair in use; else the nominated one.
    let pair = transport_pair
        .and_then(|id| {
            pairs
                .into_iter()
                .find(|p| text(p, "id").as_deref() == Some(&id))
        })
        .or(selected_pair);
    if let Some(pair) = pair {
        sample.round_trip_s = number(&pair, "currentRoundTripTime");
        sample.available_bps = number(&pair, "availableOutgoingBitrate");
    }
    Some(sample)
}

impl Call {
    pub(super) fn start_quality_sampling(&self) {
        let weak = self.weak();
        let timer = set_interval_with_handle(
            move || {
                let Some(call) = Call::from_weak(&weak) else {
                    return;
                };
                if call.0.quality.sampling.replace(true) {
                    return;
                }
                leptos::task::spawn_local(async move {
                    call.sample_quality().await;
                    call.0.quality.sampling.set(false);
                });
            },
            SAMPLE_EVERY,
        );
        self.0.timers.borrow_mut().extend(timer.ok());
    }

    async fn sample_quality(&self) {
        let mut connections: Vec<(PeerId, RtcPeerConnection)> = self
            .0
            .mesh
            .links
            .borrow()
            .iter()
            .map(|(id, link)| (id.clone(), link.pc.clone()))
            .collect();
        let server = self.0.server.link.borrow().as_ref().map(|l| l.pc.clone());
        if let Some(pc) = server {
            connections.push((PeerId::from(LOCAL), pc));
        }
        let mut rated: HashMap<PeerId, Quality> = HashMap::new();
        let mut seen = Vec::new();
        for (id, pc) in connections {
            let Some(now) = sample(&pc).await else {
                continue;
            };
            let before = self.0.quality.previous.borrow().get(&id).copied();
            self.0.quality.previous.borrow_mut().insert(id.clone(), now);
            seen.push(id.clone());
            if let Some(before) = before {
                rated.insert(id, rate_quality(&before, &now));
            }
        }
        self.0
            .quality
            .previous
            .borrow_mut()
            .retain(|id, _| seen.contains(id));
        let view = self.view();
        // Through the media server, everyone's picture comes over the one
        // connection: its quality is each remote tile's.
        if let Some(server) = rated.get(LOCAL).copied() {
            for peer in view.peers.get_untracked() {
                rated.entry(peer.peer_id).or_insert(server);
            }
        }
        // Mine: the worst of my connections.
        let worst = rated.values().copied().max_by_key(|q| match q.level {
            QualityLevel::Good => 0,
            QualityLevel::Fair => 1,
            QualityLevel::Poor => 2,
        });
        rated.remove(LOCAL);
        if let Some(worst) = worst {
            rated.insert(PeerId::from(LOCAL), worst);
        }
        if view.quality.with_untracked(|q| *q != rated) {
            view.quality.set(rated);
        }
    }
}
