//! Never returns: only the executor's time limit ends it.

// `generate_all`: the 0.3.0 world imports wasi:http, whose WASI interfaces are generated too
// (a component imports only those it uses).
wit_bindgen::generate!({ world: "handler", path: "../../../wit", generate_all });

struct Loop;

impl Guest for Loop {
    fn handle(_batch: Vec<Message>) -> Result<Vec<ItemFailure>, String> {
        println!("looping forever");
        let mut n = 0u64;
        loop {
            n = std::hint::black_box(n.wrapping_add(1));
        }
    }
}

export!(Loop);
