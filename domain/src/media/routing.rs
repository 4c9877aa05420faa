//! Rooms across instances: a room's media lives on ONE instance's media
//! server, the holder of the room's placement lease (`crate::placement`);
//! call connections on the other instances reach it over the bus.
//!
//! [`RoutedMediaServer`] wraps this instance's own media server behind the
//! same [`MediaServer`] boundary, so the call sessions do not know where a
//! room's media is. For a room it does not know yet it claims the room
//! (the placement grants it, or names the instance that holds it): its own
//! rooms go to the local media server; another instance's get each request
//! on that instance's channel (`media@<instance>`), and what that media
//! server says comes back on this instance's channel to the call
//! connection's outbox. The browser then sends its media straight to the
//! holder's UDP address, which the holder's answer names.
//!
//! The holder renews its lease while anyone's media connection is in the
//! room and lets go when the last one ends. When it stops renewing (the
//! instance died), the others see the lease gone within a check
//! ([`RouteSettings::check_every`]), tell their pages the media server
//! moved ([`FromMediaServer::Moved`]: `media_server_moved`), and the pages'
//! new offers claim the room for a live instance, with a higher epoch.
//!
//! One task owns all of it (the requests of one call connection stay in
//! order, and nothing is locked); time comes in as ticks, so the rules
//! are the same under a test's short lease.

pub use super::relay::{MediaRelay, MediaRequest};
use super::{FromMediaServer, MediaServer, MediaServerOutbox};
use crate::ids::{ConnectionId, InstanceId, PeerId, RoomId};
use crate::placement::{Claim, Lease, RoomPlacement};
use crate::rooms::bus::{RoomBus, RoomEvent};
use futures_util::future::join_all;
use protocol::media_server::CameraWishes;
use protocol::Signal;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// The bus channel of one instance's media relay. Not a meeting's id (those
/// have no `@`), so it never meets a room's events.
pub fn relay_channel(instance: &InstanceId) -> String {
    format!("media@{instance}")
}

/// How long a holder's lease lasts and how often it is looked at.
#[derive(Debug, Clone, Copy)]
pub struct RouteSettings {
    /// A holder that stops renewing loses the room after this long.
    pub lease_ttl: Duration,
    /// How often the holder renews (well inside the lease) and the others
    /// check that the holder they route to still holds the room.
    pub check_every: Duration,
}

impl Default for RouteSettings {
    fn default() -> Self {
        // Renewed every third of it, a dead holder's lease has at most
        // 1.5 s left; a check later (a quarter of a second) the pages start
        // over, and their new connections take a second or two: media is
        // back for everyone within about 3 to 4 s of the instance's death.
        // (A holder that stalls longer than the lease loses the room and
        // its pages move to the new holder; a Redis outage does not lose
        // it: a lease renews even just after it ran out, as long as nobody
        // took it.)
        Self {
            lease_ttl: Duration::from_millis(1500),
            check_every: Duration::from_millis(250),
        }
    }
}

/// The media server of a cluster, as one instance's call sessions see it.
pub struct RoutedMediaServer {
    jobs: mpsc::UnboundedSender<Job>,
    /// The router and the relay channel's listener: they stop with it, as
    /// they would with the process (its leases run out; nothing is
    /// released on the way, so a test can stop an instance as a crash
    /// would).
    tasks: [tokio::task::AbortHandle; 2],
}

impl Drop for RoutedMediaServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

enum Job {
    /// A request of one of this instance's call connections.
    Own {
        room: RoomId,
        peer: PeerId,
        conn: ConnectionId,
        request: MediaRequest,
        outbox: Option<MediaServerOutbox>,
    },
    /// Something another instance sent this one.
    Relayed(MediaRelay),
    /// This instance's media server dropped the media connection of
    /// another instance's call connection (it went silent: that instance
    /// may have died with it), whose words go through `outbox`.
    Dropped {
        room: RoomId,
        member: Member,
        outbox: mpsc::WeakSender<FromMediaServer>,
    },
}

impl RoutedMediaServer {
    /// Starts the router of instance `me` around its media server `local`.
    pub async fn start(
        me: InstanceId,
        local: Arc<dyn MediaServer>,
        bus: Arc<dyn RoomBus>,
        placement: Arc<dyn RoomPlacement>,
        settings: RouteSettings,
    ) -> Result<Self, crate::rooms::bus::BusError> {
        let (jobs, queue) = mpsc::unbounded_channel();
        let relayed = bus.subscribe(&relay_channel(&me)).await?;
        let listener = tokio::spawn(listen(relayed, jobs.downgrade())).abort_handle();
        let router = Router {
            me,
            jobs: jobs.downgrade(),
            local,
            bus,
            placement,
            settings,
            held: HashMap::new(),
            routed: HashMap::new(),
        };
        let router = tokio::spawn(router.run(queue)).abort_handle();
        Ok(Self {
            jobs,
            tasks: [listener, router],
        })
    }

    fn own(&self, room: &str, peer: &PeerId, conn: &ConnectionId, request: MediaRequest) {
        self.own_with(room, peer, conn, request, None);
    }

    fn own_with(
        &self,
        room: &str,
        peer: &PeerId,
        conn: &ConnectionId,
        request: MediaRequest,
        outbox: Option<MediaServerOutbox>,
    ) {
        let job = Job::Own {
            room: RoomId::from(room),
            peer: peer.clone(),
            conn: conn.clone(),
            request,
            outbox,
        };
        if self.jobs.send(job).is_err() {
            tracing::warn!("the media router is not running; a media request was dropped");
        }
    }
}

impl MediaServer for RoutedMediaServer {
    fn signal(
        &self,
        room: &str,
        peer: &PeerId,
        conn: &ConnectionId,
        outbox: &MediaServerOutbox,
        signal: Signal,
    ) {
        self.own_with(
            room,
            peer,
            conn,
            MediaRequest::Signal(signal),
            Some(outbox.clone()),
        );
    }

    fn watch(&self, room: &str, peer: &PeerId, conn: &ConnectionId, wishes: &CameraWishes) {
        self.own(room, peer, conn, MediaRequest::Watch(wishes.clone()));
    }

    fn camera(&self, room: &str, peer: &PeerId, conn: &ConnectionId, on: bool) {
        self.own(room, peer, conn, MediaRequest::Camera(on));
    }

    fn disconnect(&self, room: &str, peer: &PeerId, conn: &ConnectionId) {
        self.own(room, peer, conn, MediaRequest::Disconnect);
    }
}

/// Hands what arrives on this instance's relay channel to the router.
async fn listen(
    mut relayed: broadcast::Receiver<Arc<crate::rooms::bus::SharedEvent>>,
    jobs: mpsc::WeakUnboundedSender<Job>,
) {
    loop {
        let event = match relayed.recv().await {
            Ok(event) => event,
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "the media relay fell behind; requests were lost");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let RoomEvent::Media { relay } = event.event() else {
            continue;
        };
        let Some(jobs) = jobs.upgrade() else {
            return;
        };
        if jobs.send(Job::Relayed(relay.clone())).is_err() {
            return;
        }
    }
}

/// A call connection with a media connection in a room: on which instance
/// it is, and where the media server's words for it go.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Member {
    instance: InstanceId,
    conn: ConnectionId,
}

/// A room this instance holds.
struct Held {
    lease: Lease,
    /// Its media connections, this instance's and others': who they are
    /// and where the media server's words for each go (for another
    /// instance's, a channel that relays them back).
    members: HashMap<Member, (PeerId, MediaServerOutbox)>,
}

/// A room another instance holds, as this instance's connections use it.
struct Routed {
    lease: Lease,
    /// This instance's call connections with a media connection there.
    outboxes: HashMap<ConnectionId, MediaServerOutbox>,
}

struct Router {
    me: InstanceId,
    /// Its own queue, for the relays back to other instances.
    jobs: mpsc::WeakUnboundedSender<Job>,
    local: Arc<dyn MediaServer>,
    bus: Arc<dyn RoomBus>,
    placement: Arc<dyn RoomPlacement>,
    settings: RouteSettings,
    held: HashMap<RoomId, Held>,
    routed: HashMap<RoomId, Routed>,
}

/// Where a room's media is, for one request.
enum Route {
    Here,
    There(InstanceId),
    /// The placement could not be asked.
    Unknown,
}

impl Router {
    async fn run(mut self, mut queue: mpsc::UnboundedReceiver<Job>) {
        let mut checks = tokio::time::interval(self.settings.check_every);
        checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                job = queue.recv() => {
                    let Some(job) = job else { break };
                    match job {
                        Job::Own { room, peer, conn, request, outbox } => {
                            self.own(room, peer, conn, request, outbox).await;
                        }
                        Job::Relayed(MediaRelay::Request { from, room, peer, conn, request }) => {
                            self.for_holder(from, room, peer, conn, request).await;
                        }
                        Job::Relayed(MediaRelay::Reply { room, conn, said }) => {
                            self.reply(room, conn, said);
                        }
                        Job::Dropped { room, member, outbox } => {
                            self.dropped(&room, &member, &outbox);
                        }
                    }
                }
                _ = checks.tick() => self.check().await,
            }
        }
    }

    fn ttl_ms(&self) -> i64 {
        self.settings.lease_ttl.as_millis() as i64
    }

    /// Where `room`'s media is; `claim`: may this request make this
    /// instance its holder (an offer may; a watch or a leave may not).
    async fn route(&mut self, room: &RoomId, claim: bool) -> Route {
        if self.held.contains_key(room) {
            return Route::Here;
        }
        if let Some(routed) = self.routed.get(room) {
            return Route::There(routed.lease.instance.clone());
        }
        if !claim {
            return Route::Unknown;
        }
        let now = crate::clock::now_ms();
        match self
            .placement
            .claim(room, &self.me, self.ttl_ms(), now)
            .await
        {
            Ok(Claim::Granted(lease)) => {
                tracing::info!(room = %room, epoch = lease.epoch, "this instance hosts the room's media");
                self.held.insert(
                    room.clone(),
                    Held {
                        lease,
                        members: HashMap::new(),
                    },
                );
                Route::Here
            }
            Ok(Claim::HeldBy(lease)) => {
                let holder = lease.instance.clone();
                self.routed.insert(
                    room.clone(),
                    Routed {
                        lease,
                        outboxes: HashMap::new(),
                    },
                );
                Route::There(holder)
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot tell where a room's media is");
                Route::Unknown
            }
        }
    }

    /// A request of this instance's call connection `conn`.
    async fn own(
        &mut self,
        room: RoomId,
        peer: PeerId,
        conn: ConnectionId,
        request: MediaRequest,
        outbox: Option<MediaServerOutbox>,
    ) {
        let opens = matches!(request, MediaRequest::Signal(_));
        match self.route(&room, opens).await {
            Route::Here => {
                let member = Member {
                    instance: self.me.clone(),
                    conn: conn.clone(),
                };
                self.on_local(&room, member, peer, request, outbox);
            }
            Route::There(holder) => {
                if let Some(routed) = self.routed.get_mut(&room) {
                    match (&request, outbox) {
                        (MediaRequest::Signal(_), Some(outbox)) => {
                            routed.outboxes.insert(conn.clone(), outbox);
                        }
                        (MediaRequest::Disconnect, _) => {
                            routed.outboxes.remove(&conn);
                        }
                        _ => {}
                    }
                    if routed.outboxes.is_empty() {
                        self.routed.remove(&room);
                    }
                }
                let relay = MediaRelay::Request {
                    from: self.me.clone(),
                    room,
                    peer,
                    conn,
                    request,
                };
                self.send_to(&holder, relay).await;
            }
            Route::Unknown => {
                if let Some(outbox) = outbox {
                    let _ = outbox.try_send(FromMediaServer::Refused(
                        "the media server cannot be reached; try again".into(),
                    ));
                }
            }
        }
    }

    /// A request from another instance's call connection, for a room this
    /// instance should hold.
    async fn for_holder(
        &mut self,
        from: InstanceId,
        room: RoomId,
        peer: PeerId,
        conn: ConnectionId,
        request: MediaRequest,
    ) {
        if !self.held.contains_key(&room) {
            // It took this instance for the holder, but the room moved
            // (or this instance let go of it): its page starts over and
            // its next offer finds the holder.
            if matches!(request, MediaRequest::Signal(_)) {
                let reply = MediaRelay::Reply {
                    room,
                    conn,
                    said: FromMediaServer::Moved,
                };
                self.send_to(&from, reply).await;
            }
            return;
        }
        let member = Member {
            instance: from.clone(),
            conn: conn.clone(),
        };
        let outbox = self
            .held
            .get(&room)
            .and_then(|held| held.members.get(&member))
            .map(|(_, outbox)| outbox.clone());
        let outbox = match (outbox, &request) {
            (Some(outbox), _) => Some(outbox),
            (None, MediaRequest::Signal(_)) => Some(self.relay_back(room.clone(), member.clone())),
            (None, _) => None,
        };
        self.on_local(&room, member, peer, request, outbox);
    }

    /// An outbox whose messages go back to another instance's call
    /// connection `member`, in order.
    fn relay_back(&self, room: RoomId, member: Member) -> MediaServerOutbox {
        // As deep as a local connection's outbox.
        let (outbox, mut said) = mpsc::channel(super::OUTBOX_DEPTH);
        let bus = self.bus.clone();
        let jobs = self.jobs.clone();
        let this_outbox = outbox.downgrade();
        tokio::spawn(async move {
            let channel = relay_channel(&member.instance);
            while let Some(said) = said.recv().await {
                let dropped = matches!(said, FromMediaServer::Dropped(_));
                let relay = MediaRelay::Reply {
                    room: room.clone(),
                    conn: member.conn.clone(),
                    said,
                };
                if let Err(err) = bus.publish(&channel, RoomEvent::Media { relay }).await {
                    tracing::warn!(error = %err, "could not relay the media server's words");
                }
                if dropped {
                    // No call connection of that instance may ever say
                    // goodbye for it: it stops counting now.
                    if let Some(jobs) = jobs.upgrade() {
                        let _ = jobs.send(Job::Dropped {
                            room: room.clone(),
                            member: member.clone(),
                            outbox: this_outbox.clone(),
                        });
                    }
                }
            }
        });
        outbox
    }

    /// The media server dropped `member`'s media connection: it is no
    /// longer one of the room's (unless it opened a new one since, with a
    /// new outbox).
    fn dropped(
        &mut self,
        room: &RoomId,
        member: &Member,
        outbox: &mpsc::WeakSender<FromMediaServer>,
    ) {
        let Some(held) = self.held.get_mut(room) else {
            return;
        };
        let same = match (held.members.get(member), outbox.upgrade()) {
            (Some((_, current)), Some(dropped)) => current.same_channel(&dropped),
            _ => false,
        };
        if same {
            held.members.remove(member);
        }
    }

    /// Hands a request to this instance's media server and keeps count of
    /// the room's media connections.
    fn on_local(
        &mut self,
        room: &RoomId,
        member: Member,
        peer: PeerId,
        request: MediaRequest,
        outbox: Option<MediaServerOutbox>,
    ) {
        let Some(held) = self.held.get_mut(room) else {
            return;
        };
        match request {
            MediaRequest::Signal(signal) => {
                let Some(outbox) = outbox else {
                    return;
                };
                // A newer call connection's offer (a page that resumed,
                // perhaps on another instance after its own died) replaces
                // the same person's older media connection, here as in the
                // media server.
                let offer =
                    matches!(&signal, Signal::Description { sdp_type, .. } if sdp_type == "offer");
                if offer {
                    held.members
                        .retain(|other, (who, _)| *who != peer || *other == member);
                }
                held.members
                    .insert(member.clone(), (peer.clone(), outbox.clone()));
                self.local
                    .signal(room.as_str(), &peer, &member.conn, &outbox, signal);
            }
            MediaRequest::Watch(wishes) => {
                self.local
                    .watch(room.as_str(), &peer, &member.conn, &wishes);
            }
            MediaRequest::Camera(on) => {
                self.local.camera(room.as_str(), &peer, &member.conn, on);
            }
            MediaRequest::Disconnect => {
                held.members.remove(&member);
                self.local.disconnect(room.as_str(), &peer, &member.conn);
            }
        }
    }

    /// What the holder's media server says to one of this instance's call
    /// connections.
    fn reply(&mut self, room: RoomId, conn: ConnectionId, said: FromMediaServer) {
        let Some(routed) = self.routed.get_mut(&room) else {
            return;
        };
        let moved = said == FromMediaServer::Moved;
        let outbox = if moved {
            routed.outboxes.remove(&conn)
        } else {
            routed.outboxes.get(&conn).cloned()
        };
        if moved {
            // The holder no longer holds it: the next offer asks again.
            self.routed.remove(&room);
        }
        if let Some(outbox) = outbox {
            // A full outbox: that connection is going away.
            let _ = outbox.try_send(said);
        }
    }

    async fn send_to(&self, instance: &InstanceId, relay: MediaRelay) {
        let channel = relay_channel(instance);
        if let Err(err) = self.bus.publish(&channel, RoomEvent::Media { relay }).await {
            tracing::warn!(error = %err, "could not reach the instance that holds a room's media");
        }
    }

    /// The holder renews its rooms (and lets go of empty ones); the others
    /// check that their rooms' holders still hold them. The placement is
    /// asked about every room at once (over Redis, one round trip's wait
    /// for all of them, not one per room).
    async fn check(&mut self) {
        let now = crate::clock::now_ms();
        let ttl = self.ttl_ms();
        let renew_after = ttl / 3;
        let placement = self.placement.clone();

        let releases: Vec<Lease> = self
            .held
            .extract_if(|_, held| held.members.is_empty())
            .map(|(_, held)| held.lease)
            .collect();
        join_all(releases.iter().map(|lease| placement.release(lease))).await;

        // A lease runs `ttl` from its last renewal: renewed a third of the
        // way through.
        let due: Vec<Lease> = self
            .held
            .values()
            .filter(|held| held.lease.expires_at_ms - now <= ttl - renew_after)
            .map(|held| held.lease.clone())
            .collect();
        let renewed = join_all(due.iter().map(|lease| placement.renew(lease, ttl, now))).await;
        for (lease, renewed) in due.into_iter().zip(renewed) {
            let room = lease.room.clone();
            match renewed {
                Ok(Some(lease)) => {
                    if let Some(held) = self.held.get_mut(&room) {
                        held.lease = lease;
                    }
                }
                Ok(None) => {
                    // Another instance took the room (this one was cut off
                    // longer than the lease): its media connections here
                    // end, and their pages start over with the new holder.
                    tracing::warn!(room = %room, "lost the room's media to another instance");
                    if let Some(held) = self.held.remove(&room) {
                        for (member, (peer, outbox)) in held.members {
                            let _ = outbox.try_send(FromMediaServer::Moved);
                            self.local.disconnect(room.as_str(), &peer, &member.conn);
                        }
                    }
                }
                // Redis is down: the lease may still be ours when it is
                // back; try again on the next check.
                Err(err) => tracing::warn!(error = %err, "could not renew a room's media lease"),
            }
        }

        let routed: Vec<Lease> = self.routed.values().map(|r| r.lease.clone()).collect();
        let holders = join_all(
            routed
                .iter()
                .map(|lease| placement.holder(&lease.room, now)),
        )
        .await;
        for (lease, holder) in routed.into_iter().zip(holders) {
            let room = lease.room.clone();
            let holder = match holder {
                Ok(holder) => holder,
                Err(err) => {
                    tracing::warn!(error = %err, "could not check a room's media holder");
                    continue;
                }
            };
            let same = holder
                .as_ref()
                .is_some_and(|h| h.instance == lease.instance && h.epoch == lease.epoch);
            if let Some(holder) = holder.filter(|_| same) {
                if let Some(routed) = self.routed.get_mut(&room) {
                    routed.lease = holder;
                }
                continue;
            }
            tracing::info!(room = %room, "the room's media holder is gone; pages connect again");
            if let Some(routed) = self.routed.remove(&room) {
                for outbox in routed.outboxes.into_values() {
                    let _ = outbox.try_send(FromMediaServer::Moved);
                }
            }
        }
    }
}

#[cfg(any(test, feature = "contract-tests"))]
pub mod contract;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::LocalPlacement;
    use crate::rooms::local::LocalBus;

    fn one_process() -> contract::Instances {
        let bus: Arc<dyn RoomBus> = Arc::new(LocalBus::default());
        let placement: Arc<dyn RoomPlacement> = Arc::new(LocalPlacement::default());
        [(bus.clone(), placement.clone()), (bus, placement)]
    }

    #[tokio::test]
    async fn in_one_process_a_room_lives_on_one_instance_and_the_others_relay_to_it() {
        contract::relay_contract(one_process()).await;
    }

    #[tokio::test]
    async fn in_one_process_a_dead_holders_rooms_move_to_a_live_instance() {
        contract::takeover_contract(one_process()).await;
    }

    #[tokio::test]
    async fn in_one_process_a_dropped_connection_of_a_dead_instance_stops_counting() {
        contract::dropped_member_contract(one_process()).await;
    }

    #[test]
    fn what_travels_between_instances_reads_back_as_it_was() {
        let relays = [
            MediaRelay::Request {
                from: InstanceId::from("a"),
                room: RoomId::from("r"),
                peer: PeerId::from("p"),
                conn: ConnectionId::from("c"),
                request: MediaRequest::Signal(Signal::Description {
                    sdp_type: "offer".into(),
                    sdp: "v=0\r\n".into(),
                }),
            },
            MediaRelay::Request {
                from: InstanceId::from("a"),
                room: RoomId::from("r"),
                peer: PeerId::from("p"),
                conn: ConnectionId::from("c"),
                request: MediaRequest::Watch(CameraWishes {
                    peers: vec![PeerId::from("q")],
                    heights: vec![protocol::media_server::TileHeight {
                        peer: PeerId::from("q"),
                        height: 360,
                    }],
                }),
            },
            MediaRelay::Reply {
                room: RoomId::from("r"),
                conn: ConnectionId::from("c"),
                said: FromMediaServer::VideoPaused(vec![PeerId::from("q")]),
            },
            MediaRelay::Reply {
                room: RoomId::from("r"),
                conn: ConnectionId::from("c"),
                said: FromMediaServer::Moved,
            },
        ];
        for relay in relays {
            let event = RoomEvent::Media { relay };
            let text = serde_json::to_string(&event).unwrap();
            let back: RoomEvent = serde_json::from_str(&text).unwrap();
            assert_eq!(back, event, "{text}");
        }
    }
}
