//! Traps (executes `unreachable`) without printing anything: a non-panic trap.

wit_bindgen::generate!({ world: "handler", path: "../../../wit" });

struct Trap;

impl Guest for Trap {
    fn handle(_batch: Vec<Message>) -> Result<Vec<ItemFailure>, String> {
        core::arch::wasm32::unreachable()
    }
}

export!(Trap);
