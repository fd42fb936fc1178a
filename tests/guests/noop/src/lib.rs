//! Acknowledges every batch and does nothing else: the executor's overhead benchmark.

// `generate_all`: the 0.3.0 world imports wasi:http, whose WASI interfaces are generated too
// (a component imports only those it uses).
wit_bindgen::generate!({ world: "handler", path: "../../../wit", generate_all });

struct Noop;

impl Guest for Noop {
    fn handle(batch: Vec<Message>) -> Result<Vec<ItemFailure>, String> {
        std::hint::black_box(&batch);
        Ok(Vec::new())
    }
}

export!(Noop);
