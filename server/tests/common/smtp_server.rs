//! A real SMTP server for one test: Python's `aiosmtpd` (Debian package
//! python3-aiosmtpd; `scripts/setup.sh --test` installs it) running
//! `smtp_sink.py`, which writes every message it accepts to a directory of
//! its own. Missing, the test fails: it never skips.

use serde::Deserialize;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SmtpServer {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Attachment {
    pub filename: Option<String>,
    pub content_type: String,
    pub body: String,
}

/// One received message, as Python's `email` package read it.
#[derive(Debug, Clone, Deserialize)]
pub struct Mail {
    /// Envelope recipients.
    pub to: Vec<String>,
    pub from: String,
    pub subject: String,
    pub text: String,
    pub attachments: Vec<Attachment>,
}

impl Mail {
    /// The first link in the text that starts with `prefix`.
    pub fn link(&self, prefix: &str) -> Option<String> {
        self.text
            .split_whitespace()
            .find(|word| word.starts_with(prefix))
            .map(str::to_string)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A Python that has aiosmtpd: `MOIM_TEST_PYTHON`, else the first of
/// `python3` and Debian's `/usr/bin/python3` that can import it (a pyenv
/// or venv `python3` on PATH does not see Debian's packages).
fn python() -> String {
    if let Ok(python) = std::env::var("MOIM_TEST_PYTHON") {
        return python;
    }
    for candidate in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(candidate)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return candidate.to_string();
        }
    }
    panic!(
        "no python3 with aiosmtpd (Debian package python3-aiosmtpd); \
         run scripts/setup.sh --test, or set MOIM_TEST_PYTHON"
    )
}

impl SmtpServer {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().expect("mail dir");
        let port = free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/smtp_sink.py");
        let python = python();
        let mut child = Command::new(&python)
            .arg(script)
            .arg(dir.path())
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {python} {script} ({e})"));
        // The sink prints "ready" once it listens (or exits, failing).
        let stdout = child.stdout.take().expect("sink stdout");
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        assert_eq!(line.trim(), "ready", "the SMTP sink did not start");
        Self { port, dir, child }
    }

    /// moim's flags for sending through this server.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--smtp-url".into(),
            format!("smtp://127.0.0.1:{}", self.port),
            "--smtp-from".into(),
            "moim <noreply@moim.test>".into(),
        ]
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<Mail> {
        let mut names: Vec<_> = std::fs::read_dir(self.dir.path())
            .expect("mail dir")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
            .collect();
        // Nanosecond stamps of equal length: text order is time order.
        names.sort_by_key(|n| (n.len(), n.clone()));
        names
            .into_iter()
            .map(|n| {
                let text = std::fs::read_to_string(self.dir.path().join(n)).expect("mail file");
                serde_json::from_str(&text).expect("mail json")
            })
            .collect()
    }

    /// Messages to `address`, oldest first.
    pub fn to(&self, address: &str) -> Vec<Mail> {
        self.messages()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(address)))
            .collect()
    }

    /// Waits (at most 10 s) until `address` has received `count` messages,
    /// and returns them.
    pub async fn wait_for(&self, address: &str, count: usize) -> Vec<Mail> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mails = self.to(address);
            if mails.len() >= count {
                return mails;
            }
            assert!(
                Instant::now() < deadline,
                "{address} received {} of {count} messages",
                mails.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
