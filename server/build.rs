//! `sqlx::migrate!` embeds the migration folders at compile time; stable
//! Rust cannot track a folder from a macro, so changes to it are declared
//! here (else a new migration would not trigger a rebuild).
fn main() {
    println!("cargo::rerun-if-changed=../migrations");
}
