//! Bare wasmtime, the floor the executor's overhead is held against: the host's engine and the
//! component as the host compiled it, linked with WASI and WASI HTTP (the outbox and key-value
//! imports trap), then per batch a fresh store, instance and call of `handle`, with none of the
//! host's per-invocation work (no limits, captured output, deadline, thread hop or outcome
//! mapping). Written with wasmtime's own API here, so the host carries no code for the bench.

use std::time::{Duration, Instant};

use anyhow::anyhow;
use sluice::executor::{Executor, Handler};
use sluice::store::Message;
use wasmtime::Store;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, ResourceTable, ResourceType};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// The current `sluice:queue/handler` world, for its `handle` export alone: nothing here links
/// its imports.
mod world {
    wasmtime::component::bindgen!({
        world: "handler",
        path: "../wit",
        exports: { default: async },
    });
}

use world::sluice::queue::types::Message as WitMessage;

/// An epoch deadline never reached (the host's engine interrupts by epoch). Not `u64::MAX`:
/// wasmtime adds the current epoch to it.
const NO_DEADLINE: u64 = u64::MAX / 2;

/// The least a component of the world needs: an empty WASI context and an HTTP context with
/// wasmtime's default hooks (nothing here calls out).
struct Bare {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
}

impl WasiView for Bare {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Bare {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: wasmtime_wasi_http::default_hooks(),
        }
    }
}

/// A handler's component, pre-instantiated for bare calls.
pub(crate) struct BareHandler {
    pre: world::HandlerPre<Bare>,
}

impl BareHandler {
    /// Links `handler`'s component, as compiled by `executor`, for bare calls. It must target
    /// the current world.
    pub(crate) fn new(executor: &Executor, handler: &Handler) -> anyhow::Result<BareHandler> {
        let component = handler.component();
        let mut linker = Linker::new(executor.engine());
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wasmtime_error)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(wasmtime_error)?;
        trap_imports_of_sluice(&mut linker, component).map_err(wasmtime_error)?;
        let pre = linker.instantiate_pre(component).map_err(wasmtime_error)?;
        let pre = world::HandlerPre::new(pre).map_err(|e| {
            anyhow!(
                "a bare call needs a component of the current world, not {}: {e:#}",
                handler.world()
            )
        })?;
        Ok(BareHandler { pre })
    }

    /// Times one fresh instance + call of `handle` on `batch`.
    pub(crate) async fn time_call(&self, batch: &[Message]) -> anyhow::Result<Duration> {
        let batch: Vec<WitMessage> = batch.iter().map(wit_message).collect();
        let started = Instant::now();
        let bare = Bare {
            wasi: WasiCtx::builder().build(),
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
        };
        let mut store = Store::new(self.pre.engine(), bare);
        store.set_epoch_deadline(NO_DEADLINE);
        let answer = match self.pre.instantiate_async(&mut store).await {
            Ok(instance) => instance.call_handle(&mut store, &batch).await,
            Err(error) => Err(error),
        };
        drop(store);
        let took = started.elapsed();
        match answer {
            Ok(Ok(_)) => Ok(took),
            Ok(Err(reason)) => Err(anyhow!("the handler failed: {reason}")),
            Err(trap) => Err(anyhow!("the handler trapped: {trap:#}")),
        }
    }
}

/// Links the component's Sluice imports (the outbox, `wasi:keyvalue`) as functions that trap:
/// a bare call has nowhere to send or keep anything. Not wasmtime's
/// `define_unknown_imports_as_traps`, which takes a WASI import newer than wasmtime's own (a
/// component built with a newer SDK) for an unknown one and shadows the real interface with
/// trapping resources that no longer match it.
fn trap_imports_of_sluice(
    linker: &mut Linker<Bare>,
    component: &Component,
) -> wasmtime::Result<()> {
    let engine = linker.engine().clone();
    for (name, item) in component.component_type().imports(&engine) {
        let ComponentItem::ComponentInstance(instance) = item.ty else {
            continue;
        };
        if !(name.starts_with("sluice:") || name.starts_with("wasi:keyvalue/")) {
            continue;
        }
        let mut linked = linker.instance(name)?;
        for (export, item) in instance.exports(&engine) {
            match item.ty {
                ComponentItem::ComponentFunc(_) => {
                    let called = format!("{name}#{export}");
                    linked.func_new(export, move |_, _, _, _| {
                        wasmtime::bail!("a bare call links no `{called}`")
                    })?;
                }
                ComponentItem::Resource(_) => {
                    linked.resource(export, ResourceType::host::<()>(), |_, _| Ok(()))?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn wasmtime_error(error: wasmtime::Error) -> anyhow::Error {
    anyhow!("wasmtime: {error:#}")
}

fn wit_message(m: &Message) -> WitMessage {
    WitMessage {
        id: m.id.clone(),
        queue: m.queue.clone(),
        body: m.body.clone(),
        attributes: m.attributes.clone(),
        attempt: m.attempt,
        enqueued_at_ms: m.enqueued_at_ms,
        priority: m.priority,
        group: m.group.clone(),
    }
}
