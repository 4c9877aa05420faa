//! Local media: camera and microphone, screen sharing, what is sent.

use super::links::video_sender;
use super::*;

/// This page's camera, microphone and screen.
pub(super) struct LocalMedia {
    pub(super) camera: RefCell<Option<MediaStream>>,
    pub(super) screen: RefCell<Option<MediaStreamTrack>>,
    /// What is sent to every peer: the microphone and the camera or screen.
    pub(super) outgoing: MediaStream,
    pub(super) local_meter: RefCell<Option<media::LevelMeter>>,
}

impl LocalMedia {
    pub(super) fn new(outgoing: MediaStream) -> Self {
        Self {
            camera: RefCell::new(None),
            screen: RefCell::new(None),
            outgoing,
            local_meter: RefCell::new(None),
        }
    }
}

impl Call {
    pub(super) async fn open_media(&self) {
        let view = self.view();
        let wanted = view.local.get_untracked();
        // The devices chosen in the lobby; the defaults if they are gone.
        let (camera, microphone) = media::remembered_devices();
        let opened = match media::open_media(camera.as_deref(), microphone.as_deref()).await {
            Err(_) if camera.is_some() || microphone.is_some() => {
                media::open_media(None, None).await
            }
            other => other,
        };
        match opened {
            Ok(stream) => {
                media::set_enabled(&stream, "audio", wanted.mic);
                media::set_enabled(&stream, "video", wanted.cam);
                for track in stream.get_tracks().iter() {
                    if let Ok(track) = track.dyn_into::<MediaStreamTrack>() {
                        self.0.local.outgoing.add_track(&track);
                    }
                }
                *self.0.local.local_meter.borrow_mut() = media::LevelMeter::new(&stream);
                let has_audio = stream.get_audio_tracks().length() > 0;
                let has_video = stream.get_video_tracks().length() > 0;
                view.local.update(|m| {
                    m.mic &= has_audio;
                    m.cam &= has_video;
                });
                *self.0.local.camera.borrow_mut() = Some(stream);
            }
            Err(problem) => {
                let reason = match problem {
                    media::MediaProblem::Denied => "permission denied",
                    media::MediaProblem::NoDevice => "no camera or microphone found",
                    media::MediaProblem::Failed => "the device could not be started",
                };
                view.notice.set(Some(Notice::NoMedia(reason.to_string())));
                view.local.update(|m| {
                    m.mic = false;
                    m.cam = false;
                });
            }
        }
        // `Clone::clone`, not `MediaStream.clone()` (which copies the tracks).
        let outgoing = Clone::clone(&self.0.local.outgoing);
        self.0.streams.update_value(|s| {
            s.insert(LOCAL.into(), outgoing);
        });
        view.media_epoch.update(|e| *e += 1);
    }

    pub(super) fn camera_track(&self, kind: &str) -> Option<MediaStreamTrack> {
        let camera = self.0.local.camera.borrow();
        let stream = camera.as_ref()?;
        let tracks = if kind == "video" {
            stream.get_video_tracks()
        } else {
            stream.get_audio_tracks()
        };
        tracks.get(0).dyn_into::<MediaStreamTrack>().ok()
    }

    pub fn set_mic(&self, on: bool) {
        if let Some(track) = self.camera_track("audio") {
            track.set_enabled(on);
        } else if on {
            return;
        }
        self.view().local.update(|m| m.mic = on);
        self.send_media();
    }

    pub fn set_camera(&self, on: bool) {
        if let Some(track) = self.camera_track("video") {
            track.set_enabled(on);
        } else if on {
            return;
        }
        self.view().local.update(|m| m.cam = on);
        self.send_media();
    }

    pub fn set_hand(&self, raised: bool) {
        self.view().local.update(|m| m.hand = raised);
        self.send_media();
    }

    pub(super) fn send_media(&self) {
        let media = self.view().local.get_untracked();
        self.send(&ClientMessage::Media { media });
    }

    /// Shares the screen in place of the camera (same video sender, so no
    /// renegotiation where a camera was sent).
    pub fn share_screen(&self) {
        let call = self.clone();
        leptos::task::spawn_local(async move {
            let Some(track) = call.pick_screen().await else {
                call.view().notice.set(Some(Notice::ShareFailed));
                return;
            };
            let weak = call.weak();
            let ended = Closure::<dyn FnMut(JsValue)>::new(move |_| {
                if let Some(call) = Call::from_weak(&weak) {
                    call.stop_screen();
                }
            });
            track.set_onended(Some(ended.as_ref().unchecked_ref()));
            ended.forget();
            call.swap_video(Some(&track), true).await;
            *call.0.local.screen.borrow_mut() = Some(track);
            call.view().local.update(|m| m.screen = true);
            call.send_media();
        });
    }

    pub(super) async fn pick_screen(&self) -> Option<MediaStreamTrack> {
        let devices = window().navigator().media_devices().ok()?;
        let constraints = web_sys::DisplayMediaStreamConstraints::new();
        constraints.set_video(&JsValue::TRUE);
        let promise = devices
            .get_display_media_with_constraints(&constraints)
            .ok()?;
        let stream: MediaStream = JsFuture::from(promise).await.ok()?.dyn_into().ok()?;
        stream.get_video_tracks().get(0).dyn_into().ok()
    }

    pub fn stop_screen(&self) {
        let Some(screen) = self.0.local.screen.borrow_mut().take() else {
            return;
        };
        screen.set_onended(None);
        screen.stop();
        let call = self.clone();
        leptos::task::spawn_local(async move {
            let camera = call.camera_track("video");
            call.swap_video(camera.as_ref(), false).await;
            call.view().local.update(|m| m.screen = false);
            call.send_media();
        });
    }

    /// Puts `track` (or nothing) where the outgoing video was, on every
    /// connection and in the local preview.
    pub(super) async fn swap_video(&self, track: Option<&MediaStreamTrack>, screen: bool) {
        let outgoing = &self.0.local.outgoing;
        for old in outgoing.get_video_tracks().iter() {
            if let Ok(old) = old.dyn_into::<MediaStreamTrack>() {
                outgoing.remove_track(&old);
            }
        }
        if let Some(track) = track {
            outgoing.add_track(track);
        }
        let server_sender = self.0.server.video_sender.borrow().clone();
        if let Some(sender) = server_sender {
            let _ = JsFuture::from(sender.replace_track(track)).await;
            // A screen goes in one sharp layer, a camera in all of them.
            super::server_link::set_layers(sender, screen).await;
        }
        let links: Vec<Rc<Link>> = self.0.mesh.links.borrow().values().cloned().collect();
        for link in links {
            match video_sender(&link.pc) {
                Some(sender) => {
                    let _ = JsFuture::from(sender.replace_track(track)).await;
                }
                None => {
                    // No video was sent on this connection (joined without a
                    // camera): add it; negotiation follows by itself.
                    // (Links not sending yet pick the track up when they start.)
                    if let (Some(track), true) = (track, link.sending.get()) {
                        link.pc.add_track_0(track, outgoing);
                    }
                }
            }
        }
        self.view().media_epoch.update(|e| *e += 1);
    }

    /// Moves the camera ("video") or microphone ("audio") to another device
    /// mid-call. The new track takes the old one's place on every
    /// connection with `replaceTrack` (no renegotiation), keeps its on/off
    /// state, and is remembered for this tab.
    pub fn use_device(&self, kind: &'static str, device: String) {
        let call = self.clone();
        leptos::task::spawn_local(async move {
            if call.switch_device(kind, &device).await.is_err() {
                call.view().notice.set(Some(Notice::DeviceFailed));
            }
        });
    }

    async fn switch_device(&self, kind: &'static str, device: &str) -> Result<(), ()> {
        let old = self.camera_track(kind).ok_or(())?;
        let opened = media::open_device(kind, device).await.map_err(|_| ())?;
        let tracks = if kind == "video" {
            opened.get_video_tracks()
        } else {
            opened.get_audio_tracks()
        };
        let new: MediaStreamTrack = tracks.get(0).dyn_into().map_err(|_| ())?;
        new.set_enabled(old.enabled());
        if let Some(camera) = self.0.local.camera.borrow().as_ref() {
            camera.remove_track(&old);
            camera.add_track(&new);
        }
        if kind == "video" {
            // A shared screen stays on the wire; the new camera comes
            // back when sharing stops.
            if self.0.local.screen.borrow().is_none() {
                self.swap_video(Some(&new), false).await;
            }
        } else {
            self.swap_audio(&new).await;
        }
        // Only once nothing sends it any more: a sender whose track was
        // stopped under it does not always pick up the next one.
        old.stop();
        let camera_stream = self.0.local.camera.borrow().clone();
        if let Some(camera_stream) = camera_stream {
            if kind == "audio" {
                if let Some(meter) = self.0.local.local_meter.borrow_mut().take() {
                    meter.close();
                }
                *self.0.local.local_meter.borrow_mut() = media::LevelMeter::new(&camera_stream);
            }
            media::remember_devices(
                media::current_device(&camera_stream, "video").as_deref(),
                media::current_device(&camera_stream, "audio").as_deref(),
            );
        }
        Ok(())
    }

    /// Puts `track` where the outgoing microphone was, on every connection.
    async fn swap_audio(&self, track: &MediaStreamTrack) {
        let outgoing = &self.0.local.outgoing;
        for old in outgoing.get_audio_tracks().iter() {
            if let Ok(old) = old.dyn_into::<MediaStreamTrack>() {
                outgoing.remove_track(&old);
            }
        }
        outgoing.add_track(track);
        let mut connections: Vec<RtcPeerConnection> = self
            .0
            .mesh
            .links
            .borrow()
            .values()
            .map(|link| link.pc.clone())
            .collect();
        if let Some(server) = self.0.server.link.borrow().as_ref() {
            connections.push(server.pc.clone());
        }
        for pc in connections {
            if let Some(sender) = super::links::sender_of_kind(&pc, "audio") {
                let _ = JsFuture::from(sender.replace_track(Some(track))).await;
            }
        }
        self.view().media_epoch.update(|e| *e += 1);
    }

    /// Plays every remote voice on `device` from now on.
    pub fn use_speaker(&self, device: String) {
        media::remember_speaker(&device);
        apply_speaker();
    }

    // ------------------------------------------------------------ signaling

    pub(super) fn release_media(&self) {
        if let Some(timer) = self.0.mesh.ice_refresh.borrow_mut().take() {
            timer.clear();
        }
        if let Some(stream) = self.0.local.camera.borrow_mut().take() {
            media::stop(&stream);
        }
        if let Some(track) = self.0.local.screen.borrow_mut().take() {
            track.set_onended(None);
            track.stop();
        }
        if let Some(meter) = self.0.local.local_meter.borrow_mut().take() {
            meter.close();
        }
        for handle in self.0.timers.borrow_mut().drain(..) {
            handle.clear();
        }
    }
}

/// Sends remote sound to the remembered speaker, on every remote `<audio>`.
pub fn apply_speaker() {
    let Some(device) = media::remembered_speaker() else {
        return;
    };
    for audio in media::remote_audio() {
        media::set_speaker(&audio, &device);
    }
}
