//! Panics: Rust prints "panicked at" to stderr, then aborts with an `unreachable` trap.

wit_bindgen::generate!({ world: "handler", path: "../../../wit" });

struct Panic;

impl Guest for Panic {
    fn handle(batch: Vec<Message>) -> Result<Vec<ItemFailure>, String> {
        panic!("handler gave up on a batch of {}", batch.len())
    }
}

export!(Panic);
