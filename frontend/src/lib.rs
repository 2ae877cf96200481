//! The browser entry point: hydrates the server-rendered page.

// The page's view is one deeply nested type, whose layout the compiler
// works out past its default recursion limit (128).
#![recursion_limit = "256"]

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    // A panic's message in the console, release builds included: without
    // the hook a wasm panic is only "unreachable executed".
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
