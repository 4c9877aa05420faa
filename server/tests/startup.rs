//! Start-up with bad settings: one clear line naming the setting, no panic.

use std::process::Command;

fn run(args: &[&str], envs: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_moim"))
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("MOIM_LISTEN")
        .envs(envs.iter().copied())
        .output()
        .expect("run moim");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn unparsable_listen_address_names_the_setting() {
    let (ok, stderr) = run(&["--listen", "not-an-address"], &[]);
    assert!(!ok);
    assert!(stderr.contains("--listen"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn unreachable_database_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stderr) = run(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &dir.path().display().to_string(),
        ],
        // Port 9 (discard) on loopback: nothing listens there.
        &[("DATABASE_URL", "postgres://moim:secret@127.0.0.1:9/moim")],
    );
    assert!(!ok);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with("moim:")).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("DATABASE_URL"), "{stderr}");
    assert!(!stderr.contains("secret"), "password leaked: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn sigterm_stops_the_server_cleanly() {
    use std::io::{BufRead, BufReader};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_moim"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &dir.path().display().to_string(),
        ])
        .args(["--log", "info", "--shutdown-grace-seconds", "5"])
        .env_remove("DATABASE_URL")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start moim");
    // Wait for the "listening" line (logs go to stdout or stderr).
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("moim did not report listening");
        if line.contains("listening on http://") {
            break;
        }
    }
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "moim did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    let mut rest = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(500)) {
        rest.push(line);
    }
    assert!(
        rest.iter().any(|l| l.contains("received SIGTERM")),
        "{rest:?}"
    );
}
