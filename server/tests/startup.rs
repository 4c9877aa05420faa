//! Start-up with bad settings: one clear line naming the setting, no panic.

use std::process::Command;

fn run(args: &[&str], envs: &[(&str, &str)]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_moim"))
        .args(args)
        .envs(envs.iter().copied())
        .env_remove("DATABASE_URL")
        .env_remove("MOIM_LISTEN")
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
