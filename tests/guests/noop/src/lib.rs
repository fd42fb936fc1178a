//! Acknowledges every batch and does nothing else: the executor's overhead benchmark.

wit_bindgen::generate!({ world: "handler", path: "../../../wit" });

struct Noop;

impl Guest for Noop {
    fn handle(batch: Vec<Message>) -> Result<Vec<ItemFailure>, String> {
        std::hint::black_box(&batch);
        Ok(Vec::new())
    }
}

export!(Noop);
