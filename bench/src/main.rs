//! moim's benchmarks. `scripts/bench.sh` builds a release `moim` and runs
//! this; each benchmark starts its own `moim` on a free port with a fresh
//! SQLite database, drives it the way browsers do, and prints a table.
//!
//! Benchmarks (pick with arguments; all when none):
//! - `fanout`: signaling fan-out in one room, moim against Socket.IO 4.8,
//!   and moim as two instances through Redis (see `fanout.rs`).
//! - `chat`: chat stored and delivered per second on SQLite and PostgreSQL.
//! - `connections`: server memory per idle joined call socket (RSS delta of
//!   the server process divided by the sockets), for 1,000 and 5,000
//!   sockets in rooms of 50, and one room of 50 against 50 rooms of 1.
//! - `sfu-soak`: 200 headless WebRTC clients join a call through the media
//!   server one after another and leave; server memory over the cycles
//!   (see `sfu_soak.rs`).
//! - `sfu-load`: two video publishers to a growing audience, through a raw
//!   UDP forwarder (the machine's ceiling), through moim's media server and
//!   through Janus's VideoRoom: packets per CPU-second, added latency,
//!   loss (see `sfu_load.rs`).
//!
//! In Chromium (Node scripts `scripts/bench.sh` runs against the release
//! site): `pages` (bench/pages/pages.mjs: page weight, time to hydrated)
//! and `join` (bench/join/join.mjs: "Join now" to the first remote frame).

mod chat;
mod connections;
mod fanout;
mod janus;
mod server;
mod sfu_load;
mod sfu_soak;
mod stats;

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    // `sfu-load` runs its raw forwarder as a process of its own.
    if std::env::args().nth(1).as_deref() == Some("raw-forwarder") {
        return match sfu_load::raw_forwarder() {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("moim-bench raw-forwarder: {err}");
                ExitCode::FAILURE
            }
        };
    }
    let mut args = std::env::args().skip(1);
    let mut moim = String::from("target/release/moim");
    let mut which = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--moim" => match args.next() {
                Some(path) => moim = path,
                None => return usage("--moim needs a path"),
            },
            "connections" | "chat" | "fanout" | "sfu-soak" | "sfu-load" => which.push(arg),
            "-h" | "--help" => return usage(""),
            other => return usage(&format!("unknown argument {other:?}")),
        }
    }
    if which.is_empty() {
        which.extend(["fanout", "connections", "chat", "sfu-soak", "sfu-load"].map(String::from));
    }
    for bench in which {
        let result = match bench.as_str() {
            "connections" => connections::run(&moim).await,
            "chat" => chat::run(&moim).await,
            "fanout" => fanout::run(&moim).await,
            "sfu-soak" => sfu_soak::run(&moim).await,
            "sfu-load" => sfu_load::run(&moim).await,
            _ => Ok(()),
        };
        if let Err(err) = result {
            eprintln!("moim-bench {bench}: {err}");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn usage(problem: &str) -> ExitCode {
    if !problem.is_empty() {
        eprintln!("moim-bench: {problem}");
    }
    eprintln!(
        "usage: moim-bench [--moim PATH] [fanout] [connections] [chat] [sfu-soak] [sfu-load]"
    );
    if problem.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}
