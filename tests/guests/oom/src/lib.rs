//! Allocates (and touches) 1 MiB after 1 MiB until the allocator fails.

// `generate_all`: the 0.3.0 world imports wasi:http, whose WASI interfaces are generated too
// (a component imports only those it uses).
wit_bindgen::generate!({ world: "handler", path: "../../../wit", generate_all });

struct Oom;

impl Guest for Oom {
    fn handle(_batch: Vec<Message>) -> Result<Vec<ItemFailure>, String> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![1u8; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

export!(Oom);
