//! Webhook deliveries: the events of people's meetings, queued in the
//! database by whichever instance saw them (`domain::webhooks`), and sent
//! by a worker on every instance that claims what is due. At least once:
//! an event is stored before anyone tries to send it, a failed attempt is
//! retried with backoff, and a claim left by an instance that died expires.

use app::protocol::{LeaveReason, PeerInfo};
use domain::meetings::MeetingRow;
use domain::webhooks::{self as store, meeting_data, Attempt, Due, Event};
use sqlx::AnyPool;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How deliveries may be sent.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Also plain `http://` and private, loopback and link-local
    /// addresses (`--webhooks-allow-private`: tests and closed networks).
    pub allow_private: bool,
    /// The first retry's delay; later ones triple.
    pub retry_base: Duration,
    /// How long one attempt may take.
    pub timeout: Duration,
    /// Where attempts are counted by outcome.
    pub metrics: domain::metrics::Metrics,
}

/// The instance's webhook producer: turns what happens in calls into
/// queued deliveries, and wakes the worker.
#[derive(Clone)]
pub struct Webhooks {
    db: AnyPool,
    wake: Arc<Notify>,
}

fn participant_data(peer: &PeerInfo) -> serde_json::Value {
    serde_json::json!({
        "participant_id": peer.participant_id.as_str(),
        "display_name": peer.display_name,
    })
}

impl Webhooks {
    pub fn new(db: AnyPool) -> Self {
        Self {
            db,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Queues `event` for the endpoints of the meeting's host, off the
    /// caller's path (a call never waits for webhooks).
    fn queue(&self, host_id: String, event: Event, data: serde_json::Value) {
        let db = self.db.clone();
        let wake = self.wake.clone();
        tokio::spawn(async move {
            match store::enqueue(&db, &host_id, event, data, domain::clock::now_ms()).await {
                Ok(0) => {}
                Ok(_) => wake.notify_one(),
                Err(err) => {
                    tracing::error!(error = %err, event = event.name(), "could not queue a webhook")
                }
            }
        });
    }

    /// The first person entered the meeting's empty call: told, and
    /// recorded so that its end is announced once more (see
    /// `announce_lapsed_ends`).
    pub fn meeting_started(&self, meeting: &MeetingRow) {
        let db = self.db.clone();
        let meeting_id = meeting.id.clone();
        tokio::spawn(async move {
            if let Err(err) = store::call_started(&db, &meeting_id, domain::clock::now_ms()).await {
                tracing::warn!(error = %err, "could not record a meeting's call start");
            }
        });
        self.queue(
            meeting.host_id.clone(),
            Event::MeetingStarted,
            serde_json::json!({ "meeting": meeting_data(meeting) }),
        );
    }

    pub fn participant_joined(&self, meeting: &MeetingRow, peer: &PeerInfo) {
        self.queue(
            meeting.host_id.clone(),
            Event::ParticipantJoined,
            serde_json::json!({
                "meeting": meeting_data(meeting),
                "participant": participant_data(peer),
            }),
        );
    }

    /// A host ended the meeting: it is over, and its chat can be read.
    pub fn meeting_ended(&self, meeting: &MeetingRow) {
        for (event, data) in store::end_events(meeting, "ended") {
            self.queue(meeting.host_id.clone(), event, data);
        }
    }
}

impl domain::rooms::RoomWatcher for Webhooks {
    fn left(&self, room: &str, peer: &PeerInfo, reason: LeaveReason) {
        let this = self.clone();
        let room = room.to_string();
        let participant = participant_data(peer);
        tokio::spawn(async move {
            // The room is the meeting's id; its host owns the endpoints.
            match domain::meetings::find_by_id(&this.db, &room).await {
                Ok(Some(meeting)) => this.queue(
                    meeting.host_id.clone(),
                    Event::ParticipantLeft,
                    serde_json::json!({
                        "meeting": meeting_data(&meeting),
                        "participant": participant,
                        "reason": reason,
                    }),
                ),
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(error = %err, "could not read a meeting for its webhooks")
                }
            }
        });
    }
}

/// Deliveries in flight at once on one instance.
const IN_FLIGHT: usize = 16;
/// How often each instance looks for meetings whose scheduled time is over.
const LAPSED_EVERY_MS: i64 = 5_000;
/// Lapsed meetings looked at per round (oldest first; those whose calls
/// go on past their time are looked at again next round).
const LAPSED_PER_ROUND: i64 = 200;
/// Finished deliveries are kept this long for the log.
const KEEP_MS: i64 = 30 * 24 * 3600 * 1000;

/// Sends due deliveries until the process ends: woken by a new event on
/// this instance, and every second for those of other instances and for
/// retries. Each send runs on its own, holding one of `IN_FLIGHT`
/// permits: a slow endpoint holds its own permit, not everyone's batch.
/// Every `LAPSED_EVERY_MS` it also announces the ends of meetings nobody
/// ended (`announce_lapsed_ends`), reading who is in their calls from
/// `presence`.
pub fn spawn_worker(
    webhooks: &Webhooks,
    settings: WebhookSettings,
    presence: Arc<dyn domain::rooms::Presence>,
) {
    let db = webhooks.db.clone();
    let wake = webhooks.wake.clone();
    tokio::spawn(async move {
        let permits = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        let mut pruned_at = 0i64;
        let mut lapsed_at = 0i64;
        loop {
            let now = domain::clock::now_ms();
            if now - lapsed_at >= LAPSED_EVERY_MS {
                lapsed_at = now;
                announce_lapsed_ends(&db, presence.as_ref(), now).await;
            }
            if now - pruned_at > 3_600_000 {
                pruned_at = now;
                match store::prune(&db, now - KEEP_MS).await {
                    Ok(0) => {}
                    Ok(pruned) => tracing::info!(pruned, "old webhook deliveries deleted"),
                    Err(err) => tracing::warn!(error = %err, "could not prune webhook deliveries"),
                }
            }
            let free = permits.available_permits() as i64;
            if free > 0 {
                match store::claim_due(&db, now, free).await {
                    Ok(due) => {
                        for due in due {
                            let Ok(permit) = permits.clone().acquire_owned().await else {
                                return;
                            };
                            let db = db.clone();
                            let settings = settings.clone();
                            tokio::spawn(async move {
                                deliver(&db, &due, &settings).await;
                                drop(permit);
                            });
                        }
                    }
                    Err(err) => tracing::warn!(error = %err, "could not read due webhooks"),
                }
            }
            let _ = tokio::time::timeout(Duration::from_secs(1), wake.notified()).await;
        }
    });
}

/// Announces the end of each meeting whose scheduled time is over, whose
/// call is empty and that nobody ended (a host's end or a cancellation
/// announces itself). A call still going on past its time is announced
/// once it empties. Every instance does this; the database lets one of
/// them announce each end.
async fn announce_lapsed_ends(db: &AnyPool, presence: &dyn domain::rooms::Presence, now_ms: i64) {
    let lapsed = match store::lapsed_meetings(db, now_ms, LAPSED_PER_ROUND).await {
        Ok(lapsed) => lapsed,
        Err(err) => {
            tracing::warn!(error = %err, "could not read the meetings whose time is over");
            return;
        }
    };
    for meeting in lapsed {
        // Still in a call, or unknown (the presence store is away): looked
        // at again next round.
        if !matches!(presence.list(&meeting.id).await, Ok(people) if people.is_empty()) {
            continue;
        }
        match store::announce_lapsed_end(db, &meeting, now_ms).await {
            Ok(true) => {
                tracing::info!(meeting = %meeting.id, "meeting over its scheduled time announced ended")
            }
            Ok(false) => {}
            Err(err) => tracing::warn!(error = %err, "could not announce a meeting's end"),
        }
    }
}

/// One attempt, recorded.
async fn deliver(db: &AnyPool, due: &Due, settings: &WebhookSettings) {
    let attempt = send(due, settings).await;
    settings.metrics.webhook_attempt(match &attempt {
        Attempt::Delivered { .. } => "delivered",
        Attempt::Failed { .. } if due.attempts + 1 >= store::MAX_ATTEMPTS => "gave_up",
        Attempt::Failed { .. } => "failed",
    });
    if let Attempt::Failed { status, .. } = &attempt {
        // The host only: a receiver's URL may carry its own secret.
        let host = url::Url::parse(&due.url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        tracing::info!(delivery = %due.id, event = %due.event, %host, ?status, "webhook delivery failed; will retry");
    }
    let recorded = store::record(
        db,
        due,
        &attempt,
        domain::clock::now_ms(),
        settings.retry_base,
    )
    .await;
    if let Err(err) = recorded {
        // The claim expires and the delivery is sent again: at least
        // once, never lost.
        tracing::error!(error = %err, "could not record a webhook attempt");
    }
}

/// The address to send to: resolved (within the attempt's time), and
/// every address of the name public. One answer for "no such name" and
/// "a private address", so the log cannot be used to map the operator's
/// internal names.
async fn resolve(url: &url::Url, settings: &WebhookSettings) -> Result<SocketAddr, String> {
    let unreachable = || "the endpoint's address cannot be used".to_string();
    let host = url.host_str().ok_or_else(unreachable)?;
    let port = url.port_or_known_default().ok_or_else(unreachable)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addresses: Vec<SocketAddr> =
        match tokio::time::timeout(settings.timeout, tokio::net::lookup_host((host, port))).await {
            Ok(Ok(addresses)) => addresses.collect(),
            _ => return Err(unreachable()),
        };
    // Every address must be allowed: a name that also points inside
    // cannot be used to reach inside.
    if !settings.allow_private && addresses.iter().any(|a| !store::is_public(a.ip())) {
        return Err(unreachable());
    }
    addresses.first().copied().ok_or_else(unreachable)
}

/// One attempt.
async fn send(due: &Due, settings: &WebhookSettings) -> Attempt {
    let failed = |error: String| Attempt::Failed {
        status: None,
        error,
    };
    let url = match url::Url::parse(&due.url) {
        Ok(url) => url,
        Err(err) => return failed(format!("bad URL: {err}")),
    };
    if url.scheme() != "https" && !(settings.allow_private && url.scheme() == "http") {
        return failed("only https:// endpoints are allowed".to_string());
    }
    let address = match resolve(&url, settings).await {
        Ok(address) => address,
        Err(error) => return failed(error),
    };
    let host = url.host_str().unwrap_or_default().to_string();
    // Connect to the address just checked (no second lookup that could
    // answer differently), never follow a redirect elsewhere.
    let client = match reqwest::Client::builder()
        // No proxy from the environment: it would resolve the name again,
        // past the address check.
        .no_proxy()
        .resolve(&host, address)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(settings.timeout)
        .user_agent(concat!("moim-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(err) => return failed(format!("cannot build a client: {err}")),
    };
    let signature = store::signature(&due.secret, domain::clock::now_ms() / 1000, &due.payload);
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("moim-event", &due.event)
        .header("moim-delivery", &due.id)
        .header("moim-signature", signature)
        .body(due.payload.clone())
        .send()
        .await;
    match response {
        Ok(response) if response.status().is_success() => Attempt::Delivered {
            status: response.status().as_u16(),
        },
        Ok(response) => Attempt::Failed {
            status: Some(response.status().as_u16()),
            error: format!("answered {}", response.status()),
        },
        // Not the library's text: it holds the whole URL.
        Err(err) => failed(if err.is_timeout() {
            "no answer in time".to_string()
        } else if err.is_connect() {
            "cannot connect to the endpoint".to_string()
        } else {
            "the request failed".to_string()
        }),
    }
}
