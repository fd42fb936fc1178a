//! Host-side bindings generated from the WIT package, one module per version of the world
//! `sluice:queue/handler` the host runs: [`v1`] from `wit/0.1.0` and [`v2`] from `wit`. The only
//! file that expands `bindgen!`; nothing outside the executor names these types.

/// `sluice:queue/handler@0.1.0`: frozen, for the components built against it.
pub(super) mod v1 {
    wasmtime::component::bindgen!({
        world: "handler",
        path: "../wit/0.1.0",
    });
}

/// `sluice:queue/handler@0.2.0`: the current version.
pub(super) mod v2 {
    wasmtime::component::bindgen!({
        world: "handler",
        path: "../wit",
    });
}
