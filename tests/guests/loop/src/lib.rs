//! Never returns: only the executor's time limit ends it.

wit_bindgen::generate!({ world: "handler", path: "../../../wit" });

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
