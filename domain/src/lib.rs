//! moim's domain: the rules of rooms and their boundaries, with no web
//! framework, socket or browser API in sight (the `app` crate depends on it
//! only for the server build; nothing here reaches the wasm bundle).
//!
//! Each boundary is a trait with an in-process side (one instance, no
//! outside services) and a distributed side (Redis), and one contract suite
//! (`contract`, feature `contract-tests`) that both must pass.
//!
//! Time comes in as a value (`clock::Clock`) and I/O stays behind the
//! boundary traits, so the rules can be tested without sleeping.

pub mod accounts;
pub mod call;
pub mod chat;
pub mod clock;
pub mod db;
pub mod door;
pub mod ice;
pub mod ids;
pub mod media;
pub mod meetings;
pub mod metrics;
pub mod placement;
pub mod rooms;
pub mod throttle;
pub mod webhooks;
