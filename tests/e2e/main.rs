//! Black-box tests: the real `sluice` binary, real HTTP, real components. One test binary, one
//! module per topic.

mod auth;
mod chain;
mod cli;
mod durability;
mod functions;
mod messages;
mod openapi;
mod queues;
mod support;
mod triggers;
