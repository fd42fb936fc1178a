//! Black-box tests: the real `sluice` binary, real HTTP, real components. One test binary, one
//! module per topic.

mod bench;
mod chain;
mod durability;
mod functions;
mod messages;
mod queues;
mod support;
mod triggers;
