//! The wasm entry point: hydrates the server-rendered page.

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Most pages' code is in a chunk split off the main bundle: loaded
    // first, then the page hydrates in one pass (`app::load_code_of_current_page`).
    wasm_bindgen_futures::spawn_local(async {
        app::load_code_of_current_page().await;
        leptos::mount::hydrate_body(app::App);
    });
}
