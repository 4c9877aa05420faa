//! Generates the `i18n` module (typed translation keys) from `locales/*.json`,
//! as `leptos_i18n_build` does it (its `TranslationsInfos::parse` and
//! `generate_i18n_module`), through the two crates it wraps; see
//! `Cargo.toml` for why not through it.
use leptos_i18n_parser::parse_locales::options::{Config, ParseOptions};
use std::error::Error;
use std::fs;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=Cargo.toml");

    let out_dir = std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?;
    let i18n_mod_directory = PathBuf::from(out_dir).join("i18n");

    let config = Config::new("en")?
        .add_locale("ko")?
        .parse_options(ParseOptions::default().interpolate_display(true));
    let translations = leptos_i18n_parser::parse_locales::parse_locales(None, config)?;
    for warning in translations.diag.warnings().iter() {
        println!("cargo::warning={warning}");
    }
    for error in translations.diag.errors().iter() {
        println!("cargo::error={error}");
    }
    for path in translations.tracked_files.iter().flatten() {
        println!("cargo::rerun-if-changed={path}");
    }
    // No crate path (`leptos_i18n` is a direct dependency), no diagnostics
    // emitted from the generated code (printed above), no extra attributes,
    // documentation on the generated keys: leptos_i18n_build's defaults.
    let module = leptos_i18n_codegen::gen_code(&translations, None, false, None, true)?;
    fs::create_dir_all(&i18n_mod_directory)?;
    fs::write(i18n_mod_directory.join("mod.rs"), module.to_string())?;
    Ok(())
}
