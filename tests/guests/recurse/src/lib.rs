//! Recurses without bound. Only scalars live in the frames, so they stay on the wasm stack
//! (not Rust's shadow stack in linear memory) and the engine's stack limit is what stops it.

// `generate_all`: the 0.3.0 world imports wasi:http, whose WASI interfaces are generated too
// (a component imports only those it uses).
wit_bindgen::generate!({ world: "handler", path: "../../../wit", generate_all });

struct Recurse;

impl Guest for Recurse {
    fn handle(batch: Vec<Message>) -> Result<Vec<ItemFailure>, String> {
        let depth = deeper(batch.len() as u64);
        Err(format!("reached the bottom at {depth}"))
    }
}

#[inline(never)]
#[allow(unconditional_recursion)]
fn deeper(n: u64) -> u64 {
    let next = std::hint::black_box(n.wrapping_add(1));
    deeper(next).wrapping_add(n)
}

export!(Recurse);
