//! Camera and microphone in the browser: opening them, listing devices,
//! and measuring the microphone level. Browser-only (`hydrate`); the server
//! renders the lobby without media and the browser fills it in.

/// Why media could not be opened, as the lobby explains it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaProblem {
    /// The person or the browser refused access.
    Denied,
    /// No camera or microphone exists.
    NoDevice,
    /// Anything else (device busy, hardware error).
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub id: String,
    pub label: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Devices {
    pub cameras: Vec<Device>,
    pub microphones: Vec<Device>,
    pub speakers: Vec<Device>,
}

#[cfg(feature = "hydrate")]
pub use browser::*;

#[cfg(feature = "hydrate")]
mod browser {
    use super::{Device, Devices, MediaProblem};
    use wasm_bindgen::{JsCast, JsValue};
    use wasm_bindgen_futures::JsFuture;
    use web_sys::{
        AnalyserNode, AudioContext, DomException, MediaDeviceInfo, MediaDeviceKind, MediaStream,
        MediaStreamConstraints, MediaStreamTrack,
    };

    fn media_devices() -> Result<web_sys::MediaDevices, MediaProblem> {
        web_sys::window()
            .ok_or(MediaProblem::Failed)?
            .navigator()
            .media_devices()
            // No mediaDevices at all: an insecure origin or a browser without
            // cameras; to the person it is "no device".
            .map_err(|_| MediaProblem::NoDevice)
    }

    fn classify(err: &JsValue) -> MediaProblem {
        match err.dyn_ref::<DomException>().map(|e| e.name()) {
            Some(name) if name == "NotAllowedError" || name == "SecurityError" => {
                MediaProblem::Denied
            }
            Some(name) if name == "NotFoundError" || name == "OverconstrainedError" => {
                MediaProblem::NoDevice
            }
            _ => MediaProblem::Failed,
        }
    }

    /// `true`, or `{ deviceId: { exact: id } }` for a chosen device.
    fn constraint(device: Option<&str>) -> JsValue {
        match device {
            Some(id) if !id.is_empty() => {
                let exact = js_sys::Object::new();
                let _ = js_sys::Reflect::set(&exact, &"exact".into(), &id.into());
                let outer = js_sys::Object::new();
                let _ = js_sys::Reflect::set(&outer, &"deviceId".into(), &exact);
                outer.into()
            }
            _ => JsValue::TRUE,
        }
    }

    async fn open(video: JsValue, audio: JsValue) -> Result<MediaStream, MediaProblem> {
        let constraints = MediaStreamConstraints::new();
        constraints.set_video(&video);
        constraints.set_audio(&audio);
        let promise = media_devices()?
            .get_user_media_with_constraints(&constraints)
            .map_err(|e| classify(&e))?;
        let stream = JsFuture::from(promise).await.map_err(|e| classify(&e))?;
        stream
            .dyn_into::<MediaStream>()
            .map_err(|_| MediaProblem::Failed)
    }

    /// Opens camera and microphone: the chosen ones; should one be gone
    /// (unplugged since it was chosen: the browser says it cannot satisfy
    /// an exact device id), the default of its kind instead, so nobody
    /// joins without a microphone they have; with only one kind present,
    /// that one.
    pub async fn open_media(
        camera: Option<&str>,
        microphone: Option<&str>,
    ) -> Result<MediaStream, MediaProblem> {
        let mut attempts = vec![(constraint(camera), constraint(microphone))];
        if microphone.is_some() {
            attempts.push((constraint(camera), JsValue::TRUE));
        }
        if camera.is_some() {
            attempts.push((JsValue::TRUE, JsValue::TRUE));
        }
        attempts.push((JsValue::FALSE, JsValue::TRUE));
        attempts.push((JsValue::TRUE, JsValue::FALSE));
        for (video, audio) in attempts {
            match open(video, audio).await {
                Err(MediaProblem::NoDevice) => {}
                other => return other,
            }
        }
        Err(MediaProblem::NoDevice)
    }

    /// Opens one device of `kind` ("audio" or "video") by its id.
    pub async fn open_device(kind: &str, device: &str) -> Result<MediaStream, MediaProblem> {
        if kind == "video" {
            open(constraint(Some(device)), JsValue::FALSE).await
        } else {
            open(JsValue::FALSE, constraint(Some(device))).await
        }
    }

    /// A sine tone of `frequency` Hz for `ms` milliseconds, faded in and
    /// out, played on the chosen speaker (a WAV file made here: no audio
    /// graph to set up, and the same path as any sound the page plays).
    pub fn play_tone(frequency: f32, ms: u32) {
        const RATE: u32 = 16_000;
        let count = RATE * ms / 1000;
        let samples = (0..count).map(|i| {
            let t = i as f32 / RATE as f32;
            let left = (count - i) as f32 / RATE as f32;
            let fade = (t * 50.0).min(left * 50.0).min(1.0);
            let wave = f32::sin(2.0 * std::f32::consts::PI * frequency * t);
            (wave * 0.3 * fade * f32::from(i16::MAX)) as i16
        });
        let data_len = count * 2;
        let mut wav = Vec::with_capacity(44 + data_len as usize);
        wav.extend_from_slice(b"RIFF");
        wav.extend_from_slice(&(36 + data_len).to_le_bytes());
        wav.extend_from_slice(b"WAVEfmt ");
        wav.extend_from_slice(&16u32.to_le_bytes());
        wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
        wav.extend_from_slice(&1u16.to_le_bytes()); // mono
        wav.extend_from_slice(&RATE.to_le_bytes());
        wav.extend_from_slice(&(RATE * 2).to_le_bytes());
        wav.extend_from_slice(&2u16.to_le_bytes());
        wav.extend_from_slice(&16u16.to_le_bytes());
        wav.extend_from_slice(b"data");
        wav.extend_from_slice(&data_len.to_le_bytes());
        for sample in samples {
            wav.extend_from_slice(&sample.to_le_bytes());
        }
        let bytes = js_sys::Uint8Array::from(wav.as_slice());
        let options = web_sys::BlobPropertyBag::new();
        options.set_type("audio/wav");
        let Ok(blob) = web_sys::Blob::new_with_u8_array_sequence_and_options(
            &js_sys::Array::of1(&bytes),
            &options,
        ) else {
            return;
        };
        let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else {
            return;
        };
        let Ok(audio) = web_sys::HtmlAudioElement::new_with_src(&url) else {
            return;
        };
        if let Some(device) = remembered_speaker() {
            set_speaker(&audio, &device);
        }
        play_quietly(&audio);
    }

    /// Every remote `<audio>` element of the page (the call's).
    pub fn remote_audio() -> Vec<web_sys::HtmlMediaElement> {
        let Some(list) = web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.query_selector_all("audio[data-remote-audio]").ok())
        else {
            return Vec::new();
        };
        (0..list.length())
            .filter_map(|i| list.item(i))
            .filter_map(|n| n.dyn_into::<web_sys::HtmlMediaElement>().ok())
            .collect()
    }

    const SPEAKER_KEY: &str = "moim.speaker";

    /// Plays `element` on the speaker `device` where the browser can choose
    /// (setSinkId); elsewhere the system's default plays.
    pub fn set_speaker(element: &web_sys::HtmlMediaElement, device: &str) {
        let Ok(set_sink) = js_sys::Reflect::get(element, &"setSinkId".into()) else {
            return;
        };
        if let Ok(set_sink) = set_sink.dyn_into::<js_sys::Function>() {
            if let Ok(promise) = set_sink.call1(element, &device.into()) {
                if let Ok(promise) = promise.dyn_into::<js_sys::Promise>() {
                    // A refusal (device gone) leaves the default playing.
                    wasm_bindgen_futures::spawn_local(async move {
                        let _ = JsFuture::from(promise).await;
                    });
                }
            }
        }
    }

    /// Whether this browser lets a page choose the speaker.
    pub fn can_choose_speaker() -> bool {
        web_sys::window()
            .and_then(|w| w.document())
            .and_then(|d| d.create_element("audio").ok())
            .and_then(|e| js_sys::Reflect::get(&e, &"setSinkId".into()).ok())
            .is_some_and(|f| f.is_function())
    }

    pub fn remember_speaker(device: &str) {
        if let Some(storage) = session_storage() {
            let _ = storage.set_item(SPEAKER_KEY, device);
        }
    }

    pub fn remembered_speaker() -> Option<String> {
        session_storage()?
            .get_item(SPEAKER_KEY)
            .ok()
            .flatten()
            .filter(|v| !v.is_empty())
    }

    const CAMERA_KEY: &str = "moim.camera";
    const MICROPHONE_KEY: &str = "moim.microphone";

    fn session_storage() -> Option<web_sys::Storage> {
        web_sys::window()?.session_storage().ok().flatten()
    }

    /// Remembers the devices chosen in the lobby for the room (this tab
    /// only).
    pub fn remember_devices(camera: Option<&str>, microphone: Option<&str>) {
        let Some(storage) = session_storage() else {
            return;
        };
        for (key, value) in [(CAMERA_KEY, camera), (MICROPHONE_KEY, microphone)] {
            let _ = match value {
                Some(id) => storage.set_item(key, id),
                None => storage.remove_item(key),
            };
        }
    }

    /// The devices chosen in the lobby, if any: (camera, microphone).
    pub fn remembered_devices() -> (Option<String>, Option<String>) {
        let Some(storage) = session_storage() else {
            return (None, None);
        };
        let get = |key| {
            storage
                .get_item(key)
                .ok()
                .flatten()
                .filter(|v| !v.is_empty())
        };
        (get(CAMERA_KEY), get(MICROPHONE_KEY))
    }

    /// Starts playback and lets a refusal pass: `play()` rejects when the
    /// element leaves the page before it starts (the lobby giving way to
    /// the room), and an unhandled rejection is a page error.
    pub fn play_quietly(element: &web_sys::HtmlMediaElement) {
        if let Ok(promise) = element.play() {
            wasm_bindgen_futures::spawn_local(async move {
                let _ = JsFuture::from(promise).await;
            });
        }
    }

    pub fn stop(stream: &MediaStream) {
        for track in stream.get_tracks().iter() {
            if let Ok(track) = track.dyn_into::<MediaStreamTrack>() {
                track.stop();
            }
        }
    }

    pub fn set_enabled(stream: &MediaStream, kind: &str, enabled: bool) {
        let tracks = if kind == "video" {
            stream.get_video_tracks()
        } else {
            stream.get_audio_tracks()
        };
        for track in tracks.iter() {
            if let Ok(track) = track.dyn_into::<MediaStreamTrack>() {
                track.set_enabled(enabled);
            }
        }
    }

    /// The id of the device a stream's first track of `kind` uses.
    pub fn current_device(stream: &MediaStream, kind: &str) -> Option<String> {
        let tracks = if kind == "video" {
            stream.get_video_tracks()
        } else {
            stream.get_audio_tracks()
        };
        let track = tracks.get(0).dyn_into::<MediaStreamTrack>().ok()?;
        let settings = track.get_settings();
        js_sys::Reflect::get(&settings, &"deviceId".into())
            .ok()
            .and_then(|v| v.as_string())
    }

    pub async fn list_devices() -> Devices {
        let mut devices = Devices::default();
        let Ok(media) = media_devices() else {
            return devices;
        };
        let Ok(promise) = media.enumerate_devices() else {
            return devices;
        };
        let Ok(list) = JsFuture::from(promise).await else {
            return devices;
        };
        for (index, info) in js_sys::Array::from(&list).iter().enumerate() {
            let Ok(info) = info.dyn_into::<MediaDeviceInfo>() else {
                continue;
            };
            let label = if info.label().is_empty() {
                format!("#{}", index + 1)
            } else {
                info.label()
            };
            let device = Device {
                id: info.device_id(),
                label,
            };
            match info.kind() {
                MediaDeviceKind::Videoinput => devices.cameras.push(device),
                MediaDeviceKind::Audioinput => devices.microphones.push(device),
                MediaDeviceKind::Audiooutput => devices.speakers.push(device),
                _ => {}
            }
        }
        devices
    }

    /// Measures a stream's microphone loudness.
    pub struct LevelMeter {
        context: AudioContext,
        analyser: AnalyserNode,
        buffer: Vec<u8>,
    }

    impl LevelMeter {
        pub fn new(stream: &MediaStream) -> Option<Self> {
            if stream.get_audio_tracks().length() == 0 {
                return None;
            }
            let context = AudioContext::new().ok()?;
            let source = context.create_media_stream_source(stream).ok()?;
            let analyser = context.create_analyser().ok()?;
            analyser.set_fft_size(512);
            source.connect_with_audio_node(&analyser).ok()?;
            let buffer = vec![0; analyser.fft_size() as usize];
            Some(Self {
                context,
                analyser,
                buffer,
            })
        }

        /// Loudness now, 0 (silence) to 100.
        pub fn level(&mut self) -> u32 {
            self.analyser.get_byte_time_domain_data(&mut self.buffer);
            let sum: f64 = self
                .buffer
                .iter()
                .map(|&b| {
                    let v = (f64::from(b) - 128.0) / 128.0;
                    v * v
                })
                .sum();
            let rms = (sum / self.buffer.len().max(1) as f64).sqrt();
            // Speech sits around 0.05-0.3 RMS; scale so it fills the meter.
            ((rms * 300.0).min(100.0)) as u32
        }

        pub fn close(&self) {
            let _ = self.context.close();
        }
    }
}
