//! Host-side bindings generated from the WIT package, one module per version of the world
//! `sluice:queue/handler` the host runs: [`v1`] from `wit/0.1.0`, [`v2`] from `wit/0.2.0`,
//! [`v3`] from `wit/0.3.0` and [`v4`] from `wit`. The only file that expands `bindgen!`; nothing
//! outside the executor names these types. Every `handle` export is called asynchronously (an
//! instance waiting on the network must not hold a thread); the outbox imports never wait, so
//! they stay synchronous; the key-value imports read the store, so they are asynchronous.

/// `sluice:queue/handler@0.1.0`: frozen, for the components built against it.
pub(super) mod v1 {
    wasmtime::component::bindgen!({
        world: "handler",
        path: "../wit/0.1.0",
        exports: { default: async },
    });
}

/// `sluice:queue/handler@0.2.0`: frozen, for the components built against it.
pub(super) mod v2 {
    wasmtime::component::bindgen!({
        world: "handler",
        path: "../wit/0.2.0",
        exports: { default: async },
    });
}

/// `sluice:queue/handler@0.3.0`: frozen, adds `wasi:http/outgoing-handler`. The WASI
/// interfaces are wasmtime's own bindings, linked separately (see `Executor::new`).
pub(super) mod v3 {
    wasmtime::component::bindgen!({
        world: "handler",
        path: "../wit/0.3.0",
        exports: { default: async },
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        },
    });
}

/// `sluice:queue/handler@0.4.0`: the current version, which adds `wasi:keyvalue` (store,
/// atomics, batch), implemented in `super::kv` on Sluice's store: asynchronous, since reads go
/// to the database. Its resources are the host's own types.
pub(super) mod v4 {
    wasmtime::component::bindgen!({
        world: "handler",
        path: "../wit",
        exports: { default: async },
        imports: { "wasi:keyvalue": async | trappable },
        with: {
            "wasi:http": wasmtime_wasi_http::p2::bindings::http,
            "wasi:io": wasmtime_wasi::p2::bindings::io,
            "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
            "wasi:keyvalue/store.bucket": super::super::kv::Bucket,
            "wasi:keyvalue/atomics.cas": super::super::kv::Cas,
        },
    });
}
