//! The versions of the `sluice:queue/handler` world the host runs, side by side: which one a
//! component targets, and calling its `handle` with the host's messages converted to that
//! version's WIT types and its answer converted back. 0.x versions of a WIT package are not
//! semver-compatible, so a component built against 0.1.0 links to the 0.1.0 outbox, one built
//! against 0.2.0 to the 0.2.0 outbox, one built against 0.3.0 to the 0.3.0 outbox (and may
//! import `wasi:http`) and one built against 0.4.0 to the 0.4.0 outbox (and may import
//! `wasi:keyvalue` too), all in the same linker.

use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::bindings::{v1, v2, v3, v4};
use super::sandbox::State;
use super::{Disposition, Error, ItemFailure};
use crate::store::Message;

const V1: &str = "sluice:queue/handler@0.1.0";
const V2: &str = "sluice:queue/handler@0.2.0";
const V3: &str = "sluice:queue/handler@0.3.0";
const V4: &str = "sluice:queue/handler@0.4.0";

/// A component linked and checked against one version of the world.
#[derive(Clone)]
pub(super) enum World {
    V1(v1::HandlerPre<State>),
    V2(v2::HandlerPre<State>),
    V3(v3::HandlerPre<State>),
    V4(v4::HandlerPre<State>),
}

/// What `handle` answered, in the executor's terms.
pub(super) type Answer = Result<Vec<ItemFailure>, String>;

impl World {
    /// The version whose `handle` the component exports: the newest that fits.
    pub(super) fn of(pre: InstancePre<State>) -> Result<World, Error> {
        // A component's outbox import names its version; `handle` itself is alike from 0.2.0
        // on, so the import decides between them (one importing no outbox at all is run as the
        // newest).
        let imports = |version: &str| {
            let engine = pre.component().engine();
            pre.component()
                .component_type()
                .imports(engine)
                .any(|(name, _)| name == format!("sluice:queue/outbox@{version}"))
        };
        if imports("0.3.0")
            && let Ok(older) = v3::HandlerPre::new(pre.clone())
        {
            return Ok(World::V3(older));
        }
        if !imports("0.2.0")
            && let Ok(newest) = v4::HandlerPre::new(pre.clone())
        {
            return Ok(World::V4(newest));
        }
        let newer = match v2::HandlerPre::new(pre.clone()) {
            Ok(pre) => return Ok(World::V2(pre)),
            Err(error) => error,
        };
        v1::HandlerPre::new(pre).map(World::V1).map_err(|oldest| {
            Error::Invalid(format!(
                "the component's `handle` export matches neither the worlds {V4}, {V3} and {V2} \
                 (whose `handle` is the same: {newer:#}) nor world {V1} ({oldest:#}); build it \
                 against the `handler` world of Sluice's WIT package"
            ))
        })
    }

    /// The world's name and version.
    pub(super) fn name(&self) -> &'static str {
        match self {
            World::V1(_) => V1,
            World::V2(_) => V2,
            World::V3(_) => V3,
            World::V4(_) => V4,
        }
    }

    /// The component, as compiled.
    pub(super) fn component(&self) -> &wasmtime::component::Component {
        match self {
            World::V1(pre) => pre.instance_pre().component(),
            World::V2(pre) => pre.instance_pre().component(),
            World::V3(pre) => pre.instance_pre().component(),
            World::V4(pre) => pre.instance_pre().component(),
        }
    }

    /// Whether the world's outbox can reply to messages (and so needs the batch's ids).
    pub(super) fn replies(&self) -> bool {
        !matches!(self, World::V1(_))
    }

    /// `batch` in this world's WIT types, ready for [`Call::run`].
    pub(super) fn call(&self, batch: impl Iterator<Item = Message>) -> Call<'_> {
        match self {
            World::V1(pre) => Call::V1(
                pre,
                batch
                    .map(|m| v1::sluice::queue::types::Message {
                        id: m.id,
                        queue: m.queue,
                        body: m.body,
                        attributes: m.attributes,
                        attempt: m.attempt,
                        enqueued_at_ms: m.enqueued_at_ms,
                    })
                    .collect(),
            ),
            World::V2(pre) => Call::V2(pre, batch.map(Into::into).collect()),
            World::V3(pre) => Call::V3(pre, batch.map(Into::into).collect()),
            World::V4(pre) => Call::V4(pre, batch.map(Into::into).collect()),
        }
    }
}

/// A message in the types of the worlds that have priorities and groups (0.2.0 and later).
macro_rules! message_into {
    ($version:ident) => {
        impl From<Message> for $version::sluice::queue::types::Message {
            fn from(m: Message) -> Self {
                $version::sluice::queue::types::Message {
                    id: m.id,
                    queue: m.queue,
                    body: m.body,
                    attributes: m.attributes,
                    attempt: m.attempt,
                    enqueued_at_ms: m.enqueued_at_ms,
                    priority: m.priority,
                    group: m.group,
                }
            }
        }
    };
}
message_into!(v2);
message_into!(v3);
message_into!(v4);

/// One call of `handle`: the component and the batch in the types of its world.
pub(super) enum Call<'a> {
    V1(
        &'a v1::HandlerPre<State>,
        Vec<v1::sluice::queue::types::Message>,
    ),
    V2(
        &'a v2::HandlerPre<State>,
        Vec<v2::sluice::queue::types::Message>,
    ),
    V3(
        &'a v3::HandlerPre<State>,
        Vec<v3::sluice::queue::types::Message>,
    ),
    V4(
        &'a v4::HandlerPre<State>,
        Vec<v4::sluice::queue::types::Message>,
    ),
}

impl Call<'_> {
    /// Instantiates the component in `store` and calls `handle` on the batch. The future
    /// waits (holding no thread) whenever the guest waits on the host, and yields at the
    /// store's epoch deadlines.
    pub(super) async fn run(&self, store: &mut Store<State>) -> wasmtime::Result<Answer> {
        // The same steps in every world, each with its own types.
        macro_rules! call {
            ($pre:expr, $batch:expr) => {
                $pre.instantiate_async(&mut *store)
                    .await?
                    .call_handle(&mut *store, $batch)
                    .await?
                    .map(|failures| failures.into_iter().map(ItemFailure::from).collect())
            };
        }
        let answer = match self {
            Call::V1(pre, batch) => call!(pre, batch),
            Call::V2(pre, batch) => call!(pre, batch),
            Call::V3(pre, batch) => call!(pre, batch),
            Call::V4(pre, batch) => call!(pre, batch),
        };
        Ok(answer)
    }
}

/// A failed message as each world's `handle` reports it, in the executor's terms.
macro_rules! item_failure_from {
    ($version:ident) => {
        impl From<$version::sluice::queue::types::ItemFailure> for ItemFailure {
            fn from(f: $version::sluice::queue::types::ItemFailure) -> Self {
                use $version::sluice::queue::types::Disposition as Wit;
                ItemFailure {
                    id: f.id,
                    disposition: match f.disposition {
                        Wit::Retry(delay) => Disposition::Retry(delay),
                        Wit::DeadLetter(reason) => Disposition::DeadLetter(reason),
                    },
                }
            }
        }
    };
}
item_failure_from!(v1);
item_failure_from!(v2);
item_failure_from!(v3);
item_failure_from!(v4);
