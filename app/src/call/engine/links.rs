//! The mesh: one RTCPeerConnection per remote peer, perfect negotiation,
//! ICE restarts.

use super::*;

/// The peer connections and the ICE servers they use.
#[derive(Default)]
pub(super) struct Mesh {
    pub(super) links: RefCell<HashMap<PeerId, Rc<Link>>>,
    pub(super) ice: RefCell<Option<IceConfig>>,
    /// Fetches fresh TURN credentials before the current ones expire.
    pub(super) ice_refresh: RefCell<Option<TimeoutHandle>>,
}

impl Call {
    /// Takes new ICE servers for new and existing connections. With
    /// `restart`, existing connections gather again, so TURN allocations
    /// move to the new credentials before the old ones expire.
    pub(super) fn use_ice(&self, ice: IceConfig, restart: bool) {
        let expires = ice.expires_at_ms;
        let config = rtc_configuration(Some(&ice));
        *self.0.mesh.ice.borrow_mut() = Some(ice);
        for link in self.0.mesh.links.borrow().values() {
            let _ = link.pc.set_configuration_with_configuration(&config);
            if restart {
                restart_ice(&link.pc);
            }
        }
        if let Some(old) = self.0.mesh.ice_refresh.borrow_mut().take() {
            old.clear();
        }
        let Some(expires) = expires else {
            return;
        };
        let wait = crate::ice::refresh_in_ms(expires, now() as i64);
        let weak = self.weak();
        let timer = set_timeout_with_handle(
            move || {
                let Some(call) = Call::from_weak(&weak) else {
                    return;
                };
                leptos::task::spawn_local(async move {
                    match crate::ice::ice_servers(call.0.code.clone()).await {
                        Ok(ice) => call.use_ice(ice, true),
                        Err(_) => log("moim: could not refresh TURN credentials"),
                    }
                });
            },
            Duration::from_millis(wait.max(0) as u64),
        );
        *self.0.mesh.ice_refresh.borrow_mut() = timer.ok();
    }

    // ------------------------------------------------------------ peers

    /// The connection to `peer_id`, made if missing. The side that
    /// `initiates` adds its tracks now and so sends the first offer; the
    /// other adds them while answering that offer. Both sides offering at
    /// once is handled by perfect negotiation, but Chromium sometimes never
    /// gathers candidates after rolling back a brand-new connection's
    /// offer, so first contact avoids it.
    pub(super) fn ensure_link(&self, peer_id: &str, initiate: bool) -> Option<Rc<Link>> {
        if let Some(link) = self.0.mesh.links.borrow().get(peer_id) {
            return Some(link.clone());
        }
        let me = self.0.me.borrow().clone()?;
        let link = Rc::new(self.new_link(peer_id, &me)?);
        self.0
            .mesh
            .links
            .borrow_mut()
            .insert(peer_id.into(), link.clone());
        // While the media server still shows this peer (the room is
        // going back to direct), its tile keeps that until this link has
        // video (see `on_track`).
        if !self.server_link_active() {
            let stream = Clone::clone(&link.stream);
            self.0.streams.update_value(|s| {
                s.insert(peer_id.into(), stream);
            });
        }
        self.view().links.update(|l| {
            l.insert(peer_id.into(), LinkState::Connecting);
        });
        if initiate {
            // Adding tracks fires `negotiationneeded`: the offer follows.
            self.start_sending(&link);
        }
        // Still not connected after a while (lost candidates, a stuck
        // negotiation): restart ICE, which renegotiates from scratch.
        let weak = self.weak();
        let id = peer_id.to_string();
        set_timeout(
            move || {
                let Some(call) = Call::from_weak(&weak) else {
                    return;
                };
                // Through the media server the link only lingers (see
                // `on_ice_state`).
                if call.media_path() == crate::protocol::MediaPath::Server {
                    return;
                }
                let Some(link) = call.link(&id) else {
                    return;
                };
                if matches!(
                    link.pc.ice_connection_state(),
                    RtcIceConnectionState::New | RtcIceConnectionState::Checking
                ) {
                    log("moim: peer connection not up after 10 s; restarting ICE");
                    if !link.sending.get() {
                        call_start_sending(&weak, &link);
                    }
                    restart_ice(&link.pc);
                }
            },
            CONNECT_WATCHDOG,
        );
        Some(link)
    }

    pub(super) fn start_sending(&self, link: &Link) {
        if link.sending.replace(true) {
            return;
        }
        for track in self.0.local.outgoing.get_tracks().iter() {
            if let Ok(track) = track.dyn_into::<MediaStreamTrack>() {
                link.pc.add_track_0(&track, &self.0.local.outgoing);
            }
        }
    }

    pub(super) fn new_link(&self, peer_id: &str, me: &str) -> Option<Link> {
        let config = rtc_configuration(self.0.mesh.ice.borrow().as_ref());
        let pc = RtcPeerConnection::new_with_configuration(&config).ok()?;
        let stream = MediaStream::new().ok()?;
        let mut callbacks = Vec::new();

        let weak = self.weak();
        let id = peer_id.to_string();
        let on_negotiation = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            if let Some(call) = Call::from_weak(&weak) {
                let id = id.clone();
                leptos::task::spawn_local(async move { call.negotiate(&id).await });
            }
        });
        pc.set_onnegotiationneeded(Some(on_negotiation.as_ref().unchecked_ref()));
        callbacks.push(on_negotiation);

        let weak = self.weak();
        let id = peer_id.to_string();
        let on_candidate = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let Some(call) = Call::from_weak(&weak) else {
                return;
            };
            let Ok(event) = event.dyn_into::<RtcPeerConnectionIceEvent>() else {
                return;
            };
            // `null` marks the end of gathering; nothing to relay.
            if let Some(candidate) = event.candidate() {
                call.send(&ClientMessage::Signal {
                    to: id.clone().into(),
                    signal: Signal::Candidate {
                        candidate: candidate.candidate(),
                        sdp_mid: candidate.sdp_mid(),
                        sdp_m_line_index: candidate.sdp_m_line_index(),
                    },
                });
            }
        });
        pc.set_onicecandidate(Some(on_candidate.as_ref().unchecked_ref()));
        callbacks.push(on_candidate);

        let weak = self.weak();
        let remote = Clone::clone(&stream);
        let on_track = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
            let Ok(event) = event.dyn_into::<RtcTrackEvent>() else {
                return;
            };
            let track = event.track();
            remote.add_track(&track);
            if let Some(call) = Call::from_weak(&weak) {
                call.view().media_epoch.update(|e| *e += 1);
            }
        });
        pc.set_ontrack(Some(on_track.as_ref().unchecked_ref()));
        callbacks.push(on_track);

        let weak = self.weak();
        let id = peer_id.to_string();
        let on_ice_state = Closure::<dyn FnMut(JsValue)>::new(move |_| {
            if let Some(call) = Call::from_weak(&weak) {
                call.on_ice_state(&id);
            }
        });
        pc.set_oniceconnectionstatechange(Some(on_ice_state.as_ref().unchecked_ref()));
        callbacks.push(on_ice_state);

        // Any fixed rule both sides agree on will do.
        let polite = decide::is_polite(me, peer_id);
        Some(Link::new(pc, polite, stream, callbacks))
    }

    pub(super) fn link(&self, peer_id: &str) -> Option<Rc<Link>> {
        self.0.mesh.links.borrow().get(peer_id).cloned()
    }

    pub(super) fn drop_link(&self, peer_id: &str) {
        let removed = self.0.mesh.links.borrow_mut().remove(peer_id);
        if let Some(link) = removed {
            // Only if the tile still shows this link (not the media
            // server's stream that replaced it).
            let shown = self
                .0
                .streams
                .with_value(|s| s.get(peer_id).map(|shown| shown.id()) == Some(link.stream.id()));
            if shown {
                self.0.streams.update_value(|s| {
                    s.remove(peer_id);
                });
            }
            if !self.server_link_active() {
                self.view().links.update(|l| {
                    l.remove(peer_id);
                });
            }
        }
    }

    pub(super) fn drop_all_links(&self) {
        let ids: Vec<PeerId> = self.0.mesh.links.borrow().keys().cloned().collect();
        for id in ids {
            self.drop_link(&id);
        }
    }

    /// Perfect negotiation, offering side.
    pub(super) async fn negotiate(&self, peer_id: &str) {
        let Some(link) = self.link(peer_id) else {
            return;
        };
        link.making_offer.set(true);
        let result = set_local_description(&link.pc).await;
        if result.is_ok() {
            if let Some(signal) = local_description(&link.pc) {
                self.send(&ClientMessage::Signal {
                    to: peer_id.into(),
                    signal,
                });
            }
        } else {
            log("moim: could not create an offer");
        }
        link.making_offer.set(false);
    }

    /// Perfect negotiation, receiving side.
    pub(super) fn on_signal(&self, from: PeerId, signal: Signal) {
        // Through the media server no new direct link is wanted: a signal
        // of someone this page has no link with (their link's restart
        // while both leave it) would only open one nobody closes. (On the
        // way back to direct the change reaches this page before anyone's
        // offer: both come through the same room, in order.)
        let link = if self.media_path() == crate::protocol::MediaPath::Server {
            self.link(&from)
        } else {
            self.ensure_link(&from, false)
        };
        let Some(link) = link else {
            return;
        };
        let call = self.clone();
        match signal {
            Signal::Description { sdp_type, sdp } => {
                let is_offer = sdp_type == "offer";
                link.ignore_offer.set(decide::ignores_offer(
                    link.polite,
                    is_offer,
                    link.making_offer.get(),
                    link.pc.signaling_state() == RtcSignalingState::Stable,
                ));
                if link.ignore_offer.get() {
                    return;
                }
                // Called now, in arrival order: the connection's own
                // operations chain keeps later candidates behind it.
                let remote = description_init(&sdp_type, &sdp);
                let applying = JsFuture::from(link.pc.set_remote_description(&remote));
                leptos::task::spawn_local(async move {
                    if applying.await.is_err() {
                        log("moim: remote description refused");
                        return;
                    }
                    if is_offer {
                        // Added now, our tracks take the transceivers the
                        // offer made, and the answer carries them.
                        call.start_sending(&link);
                        if set_local_description(&link.pc).await.is_ok() {
                            if let Some(answer) = local_description(&link.pc) {
                                call.send(&ClientMessage::Signal {
                                    to: from,
                                    signal: answer,
                                });
                            }
                        }
                    }
                });
            }
            Signal::Candidate {
                candidate,
                sdp_mid,
                sdp_m_line_index,
            } => {
                let init = web_sys::RtcIceCandidateInit::new(&candidate);
                init.set_sdp_mid(sdp_mid.as_deref());
                init.set_sdp_m_line_index(sdp_m_line_index);
                let adding = JsFuture::from(
                    link.pc
                        .add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init)),
                );
                leptos::task::spawn_local(async move {
                    if adding.await.is_err() && !link.ignore_offer.get() {
                        log("moim: ICE candidate refused");
                    }
                });
            }
        }
    }

    pub(super) fn on_ice_state(&self, peer_id: &str) {
        let Some(link) = self.link(peer_id) else {
            return;
        };
        // Through the media server a direct link only lingers while the
        // room moves: it is never restarted, and once the server shows its
        // peer its end (they closed theirs) is no news either.
        let lingering = self.media_path() == crate::protocol::MediaPath::Server;
        if lingering && self.shown_by_server(peer_id) {
            return;
        }
        let state = link.pc.ice_connection_state();
        let shown = match state {
            RtcIceConnectionState::Connected | RtcIceConnectionState::Completed => {
                if let Some(timer) = link.restart_timer.borrow_mut().take() {
                    timer.clear();
                }
                LinkState::Connected
            }
            RtcIceConnectionState::Failed | RtcIceConnectionState::Disconnected if lingering => {
                LinkState::Reconnecting
            }
            RtcIceConnectionState::Failed => {
                restart_ice(&link.pc);
                LinkState::Reconnecting
            }
            RtcIceConnectionState::Disconnected => {
                // Often recovers by itself; restart if it does not.
                let weak = self.weak();
                let id = peer_id.to_string();
                let timer = set_timeout_with_handle(
                    move || {
                        if let Some(link) = Call::from_weak(&weak).and_then(|c| c.link(&id)) {
                            if link.pc.ice_connection_state() == RtcIceConnectionState::Disconnected
                            {
                                restart_ice(&link.pc);
                            }
                        }
                    },
                    DISCONNECTED_GRACE,
                );
                *link.restart_timer.borrow_mut() = timer.ok();
                LinkState::Reconnecting
            }
            _ => return,
        };
        self.view().links.update(|l| {
            l.insert(peer_id.into(), shown);
        });
    }

    // ------------------------------------------------------------ chat
}

pub(super) fn call_start_sending(weak: &Weak<Inner>, link: &Link) {
    if let Some(call) = Call::from_weak(weak) {
        call.start_sending(link);
    }
}

pub(super) fn video_sender(pc: &RtcPeerConnection) -> Option<RtcRtpSender> {
    sender_of_kind(pc, "video")
}

/// The sender on `pc` whose track is of `kind` ("audio" or "video").
pub(super) fn sender_of_kind(pc: &RtcPeerConnection, kind: &str) -> Option<RtcRtpSender> {
    pc.get_senders().iter().find_map(|sender| {
        let sender = sender.dyn_into::<RtcRtpSender>().ok()?;
        let matches = sender.track().map(|t| t.kind() == kind).unwrap_or(false);
        matches.then_some(sender)
    })
}

pub(crate) fn rtc_configuration(ice: Option<&IceConfig>) -> web_sys::RtcConfiguration {
    let mut servers = Vec::new();
    let mut relay_only = false;
    if let Some(ice) = ice {
        relay_only = ice.relay_only;
        for server in &ice.ice_servers {
            let mut entry = serde_json::json!({ "urls": server.urls });
            if let (Some(user), Some(credential)) = (&server.username, &server.credential) {
                entry["username"] = user.clone().into();
                entry["credential"] = credential.clone().into();
            }
            servers.push(entry);
        }
    }
    let config = serde_json::json!({
        "iceServers": servers,
        "iceTransportPolicy": if relay_only { "relay" } else { "all" },
    });
    js_sys::JSON::parse(&config.to_string())
        .unwrap_or_else(|_| js_sys::Object::new().into())
        .unchecked_into()
}

pub(super) fn description_init(sdp_type: &str, sdp: &str) -> web_sys::RtcSessionDescriptionInit {
    let object = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&object, &"type".into(), &sdp_type.into());
    let _ = js_sys::Reflect::set(&object, &"sdp".into(), &sdp.into());
    object.unchecked_into()
}

pub(super) fn local_description(pc: &RtcPeerConnection) -> Option<Signal> {
    let description = pc.local_description()?;
    let sdp_type = js_sys::Reflect::get(&description, &"type".into())
        .ok()?
        .as_string()?;
    Some(Signal::Description {
        sdp_type,
        sdp: description.sdp(),
    })
}

pub(super) fn restart_ice(pc: &RtcPeerConnection) {
    if let Ok(method) = js_sys::Reflect::get(pc, &"restartIce".into()) {
        if let Ok(method) = method.dyn_into::<js_sys::Function>() {
            let _ = method.call0(pc);
        }
    }
}
