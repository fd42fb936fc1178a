//! Traps (executes `unreachable`) without printing anything: a non-panic trap.

// `generate_all`: the 0.3.0 world imports wasi:http, whose WASI interfaces are generated too
// (a component imports only those it uses).
wit_bindgen::generate!({ world: "handler", path: "../../../wit", generate_all });

struct Trap;

impl Guest for Trap {
    fn handle(_batch: Vec<Message>) -> Result<Vec<ItemFailure>, String> {
        core::arch::wasm32::unreachable()
    }
}

export!(Trap);
