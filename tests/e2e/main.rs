//! Black-box tests: the real `sluice` binary, real HTTP, real components. One test binary, one
//! module per topic.

mod auth;
mod bench;
mod chain;
mod cli;
mod crash;
mod durability;
mod functions;
mod hostile;
mod hosts;
mod invocations;
mod limits;
mod messages;
mod openapi;
mod ordering;
mod outbound;
mod outbox;
mod polyglot;
mod pull;
mod queues;
mod readme;
mod replies;
mod retention;
mod schedules;
mod sqs;
mod state;
mod storage;
mod support;
mod topics;
mod triggers;
