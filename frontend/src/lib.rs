//! The browser entry point: hydrates the server-rendered page.

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    // A panic's message in the console, release builds included: without
    // the hook a wasm panic is only "unreachable executed".
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
