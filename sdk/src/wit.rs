//! The generated bindings for the `sluice:queue/handler@0.4.0` world, and the glue between them
//! and the SDK's own types (outbound HTTP's in `wit/http.rs`, key-value's in `wit/kv.rs`). This
//! is the only place `generate!` appears; nothing outside the SDK should name anything in here.

#![allow(unsafe_code, missing_docs, clippy::all)]

pub(crate) mod http;
#[cfg(target_arch = "wasm32")]
pub(crate) mod kv;

wit_bindgen::generate!({
    path: "../wit",
    world: "handler",
    // The world's WASI imports (wasi:http and the wasi:io, wasi:clocks interfaces it uses) are
    // generated here too: the SDK's HTTP client is written against them, and a component that
    // does not call them does not import them.
    generate_all,
    // The export macro is invoked from handler crates (through `export_handler!`), not from here.
    pub_export_macro: true,
    export_macro_name: "export",
});

use crate::{Batch, Disposition, Error, Outcome};

/// Runs `handler` on a batch as the host delivered it and converts the result back to the WIT
/// types. Called by the code `export_handler!` generates.
pub fn dispatch(
    handler: fn(Batch) -> Result<Outcome, Error>,
    batch: Vec<sluice::queue::types::Message>,
) -> Result<Vec<sluice::queue::types::ItemFailure>, String> {
    let messages = batch.into_iter().map(from_wit).collect();
    let outcome = handler(Batch::new(messages)).map_err(Error::into_message)?;
    Ok(outcome
        .into_failures()
        .into_iter()
        .map(|failure| sluice::queue::types::ItemFailure {
            id: failure.id,
            disposition: match failure.disposition {
                Disposition::Retry(after) => {
                    sluice::queue::types::Disposition::Retry(after.map(crate::duration_to_ms))
                }
                Disposition::DeadLetter(reason) => {
                    sluice::queue::types::Disposition::DeadLetter(reason)
                }
            },
        })
        .collect())
}

fn from_wit(message: sluice::queue::types::Message) -> crate::Message {
    crate::Message {
        id: message.id,
        queue: message.queue,
        body: message.body,
        attributes: message.attributes,
        attempt: message.attempt,
        enqueued_at_ms: message.enqueued_at_ms,
        priority: message.priority,
        group: message.group,
    }
}

/// Hands one message to the host's outbox.
#[cfg(target_arch = "wasm32")]
pub fn send(outgoing: crate::Outgoing) -> Result<(), Error> {
    let msg = sluice::queue::types::Outgoing {
        queue: outgoing.queue,
        body: outgoing.body,
        attributes: outgoing.attributes,
        delay_ms: outgoing.delay.map_or(0, crate::duration_to_ms),
        priority: outgoing.priority,
        group: outgoing.group,
    };
    sluice::queue::outbox::send(&msg).map_err(Error::new)
}

/// Hands one publication to the host's outbox.
#[cfg(target_arch = "wasm32")]
pub fn publish(publication: crate::Publication) -> Result<(), Error> {
    sluice::queue::outbox::publish(
        &publication.topic,
        &publication.body,
        &publication.attributes,
    )
    .map_err(Error::new)
}

/// Hands one reply to the host's outbox.
#[cfg(target_arch = "wasm32")]
pub fn reply(reply: crate::Reply) -> Result<(), Error> {
    sluice::queue::outbox::reply(&reply.message_id, &reply.body, &reply.attributes)
        .map_err(Error::new)
}
