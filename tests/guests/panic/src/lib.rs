//! Panics: Rust prints "panicked at" to stderr, then aborts with an `unreachable` trap.

// `generate_all`: the 0.3.0 world imports wasi:http, whose WASI interfaces are generated too
// (a component imports only those it uses).
wit_bindgen::generate!({ world: "handler", path: "../../../wit", generate_all });

struct Panic;

impl Guest for Panic {
    fn handle(batch: Vec<Message>) -> Result<Vec<ItemFailure>, String> {
        panic!("handler gave up on a batch of {}", batch.len())
    }
}

export!(Panic);
