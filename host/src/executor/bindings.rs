//! Host-side bindings generated from `wit/sluice.wit` (world `sluice:queue/handler@0.1.0`). The
//! only file that expands `bindgen!`; nothing outside the executor names these types.

wasmtime::component::bindgen!({
    world: "handler",
    path: "../wit",
});
