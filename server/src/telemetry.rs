//! Structured logs with `tracing`.

use crate::config::{Config, LogFormat};
use crate::error::StartupError;
use tracing_subscriber::EnvFilter;

/// Where the WebRTC engine under the media server logs, and the level it
/// gets unless the operator's filter names it. Its `info` is a line per
/// connection state change of every participant (a 50-person room's join
/// is 150 of them), and some of its warnings are per packet: a replayed
/// or retransmitted SRTP packet, a datagram for a connection that is gone.
/// Anyone with a media connection could fill the log with those.
const MEDIA_ENGINE_TARGETS: &[(&str, &str)] = &[
    ("rtc", "warn"),
    ("rtc::peer_connection::handler", "error"),
    ("rtc_dtls", "warn"),
    ("rtc_ice", "warn"),
    ("rtc_sctp", "warn"),
    ("rtc_interceptor", "warn"),
    ("sfu", "error"),
];

pub fn init(config: &Config) -> Result<(), StartupError> {
    let filter = EnvFilter::try_new(filter_with_quiet_media_engine(&config.log)).map_err(|e| {
        StartupError::LogFilter {
            filter: config.log.clone(),
            reason: e.to_string(),
        }
    })?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // A second initialisation (tests in one process) is harmless.
    let _ = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    Ok(())
}

/// The operator's filter, with the media engine's targets at their quiet
/// levels unless the filter already says something about that crate.
fn filter_with_quiet_media_engine(filter: &str) -> String {
    let named: Vec<&str> = filter.split(',').filter_map(directive_target).collect();
    let mut out = filter.trim().to_string();
    for (target, level) in MEDIA_ENGINE_TARGETS {
        let crate_name = target.split("::").next().unwrap_or(target);
        let mentioned = named
            .iter()
            .any(|t| t.split("::").next().is_some_and(|c| c == crate_name));
        if !mentioned {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&format!("{target}={level}"));
        }
    }
    out
}

/// The target a filter directive names: `rtc_ice=debug`, `rtc_ice[span]`
/// and a bare `rtc_ice` (every level) all name `rtc_ice`; a bare level
/// (`info`) names none.
fn directive_target(directive: &str) -> Option<&str> {
    let directive = directive.trim();
    let target = directive.split(['=', '[']).next()?.trim();
    let bare_level = !directive.contains('=')
        && target
            .parse::<tracing_subscriber::filter::LevelFilter>()
            .is_ok();
    (!target.is_empty() && !bare_level).then_some(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_media_engine_is_quiet_unless_the_filter_names_it() {
        let filter = filter_with_quiet_media_engine("info");
        assert!(filter.starts_with("info,"));
        assert!(filter.contains("rtc::peer_connection::handler=error"));
        assert!(filter.contains("rtc_dtls=warn"));
        // An operator debugging ICE keeps what they asked for, and the
        // other crates stay quiet.
        let filter = filter_with_quiet_media_engine("info,rtc_ice=debug");
        assert!(filter.contains("rtc_ice=debug"));
        assert!(!filter.contains("rtc_ice=warn"));
        assert!(filter.contains("rtc_dtls=warn"));
        // A target named without a level (all of its levels) counts too.
        let filter = filter_with_quiet_media_engine("info,rtc_ice");
        assert!(!filter.contains("rtc_ice=warn"), "{filter}");
        assert!(filter.contains("rtc_dtls=warn"));
        // Every result is a filter tracing takes.
        for given in ["info", "moim=debug,info", "warn,rtc=trace", ""] {
            let filter = filter_with_quiet_media_engine(given);
            assert!(EnvFilter::try_new(&filter).is_ok(), "{filter}");
        }
    }
}
