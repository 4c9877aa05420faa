//! Server memory per idle joined call socket.
//!
//! For each scenario: a fresh `moim`, a host who opens the rooms, one
//! guest session per socket let in (all before measuring, so sessions and
//! database caches are not counted), then the server's RSS before and
//! after opening and joining every socket. The sockets stay idle but alive
//! (their pings are answered) while the figure settles.

use crate::server::{Error, Server, Socket};
use futures_util::StreamExt;
use std::time::{Duration, Instant};

struct Scenario {
    rooms: usize,
    per_room: usize,
}

impl Scenario {
    fn sockets(&self) -> usize {
        self.rooms * self.per_room
    }
}

struct Figure {
    label: String,
    sockets: usize,
    before_kib: u64,
    after_kib: u64,
    /// Once every socket has closed again.
    left_kib: u64,
    setup: Duration,
}

pub async fn run(moim: &str) -> Result<(), Error> {
    let scenarios = [
        Scenario {
            rooms: 20,
            per_room: 50,
        },
        Scenario {
            rooms: 100,
            per_room: 50,
        },
        Scenario {
            rooms: 1,
            per_room: 50,
        },
        Scenario {
            rooms: 50,
            per_room: 1,
        },
    ];
    let mut figures = Vec::new();
    for scenario in &scenarios {
        eprintln!(
            "connections: {} sockets in {} room(s) of {}…",
            scenario.sockets(),
            scenario.rooms,
            scenario.per_room
        );
        figures.push(measure(moim, scenario).await?);
    }
    println!();
    println!("Server memory per idle joined call socket (RSS delta / sockets; goal <= 16 KiB)");
    println!(
        "{:<28} {:>8} {:>12} {:>12} {:>14} {:>10} {:>14}",
        "scenario", "sockets", "RSS before", "RSS after", "per socket", "joins/s", "all left"
    );
    for f in &figures {
        let per_socket = (f.after_kib.saturating_sub(f.before_kib)) as f64 / f.sockets as f64;
        println!(
            "{:<28} {:>8} {:>9} KiB {:>9} KiB {:>10.1} KiB {:>10.0} {:>10} KiB",
            f.label,
            f.sockets,
            f.before_kib,
            f.after_kib,
            per_socket,
            f.sockets as f64 / f.setup.as_secs_f64(),
            f.left_kib
        );
    }
    Ok(())
}

async fn measure(moim: &str, scenario: &Scenario) -> Result<Figure, Error> {
    let server = Server::start(moim).await?;
    let host = server.browser()?;
    host.sign_up("benchhost").await?;
    let mut codes = Vec::new();
    for room in 0..scenario.rooms {
        codes.push(host.open_meeting(&format!("Bench room {room}")).await?);
    }
    // Everyone let in first: what is measured is the sockets alone. Their
    // HTTP connections close after each request: kept open, they were
    // counted in the figure before the joins and closed (by the server's
    // 10 s idle timeout) while the sockets joined, their memory then
    // reused by the sockets' and the difference understated.
    let mut guests = Vec::new();
    for i in 0..scenario.sockets() {
        let guest = server.browser_closing_connections()?;
        guest.guest(&format!("Guest {i}")).await?;
        let code = &codes[i / scenario.per_room];
        guest.enter(code).await?;
        guests.push((guest, code.clone()));
    }
    settle().await;
    let before_kib = server.rss_kib()?;
    let started = Instant::now();
    let mut keepers = Vec::new();
    for (guest, code) in &guests {
        let socket = guest.join_call(code).await?;
        keepers.push(tokio::spawn(keep_alive(socket)));
    }
    let setup = started.elapsed();
    settle().await;
    let after_kib = server.rss_kib()?;
    // Everyone hangs up: what the server keeps of them afterwards (the
    // allocator's freed memory included) is the "all left" column.
    for keeper in keepers {
        keeper.abort();
    }
    settle().await;
    let left_kib = server.rss_kib()?;
    Ok(Figure {
        label: format!("{} room(s) of {}", scenario.rooms, scenario.per_room),
        sockets: scenario.sockets(),
        before_kib,
        after_kib,
        left_kib,
        setup,
    })
}

/// Lets the joins' broadcasts drain and the allocator settle: longer than
/// the period in which the server gives freed memory back to the system
/// (`moim_server::memory::TRIM_EVERY`, 5 s), so both figures are taken
/// once what the server no longer uses has left its resident size.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(8)).await;
}

/// Reads (and drops) what the server sends, which also answers its pings.
async fn keep_alive(mut socket: Socket) {
    while let Some(Ok(_)) = socket.next().await {}
}
