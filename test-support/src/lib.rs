//! What Sluice's tests (the host's unit tests and the end-to-end tests) and `sluice bench`
//! share, kept out of the server: scratch PostgreSQL databases ([`testdb`]) and the
//! repository's own components built for wasm32-wasip2 ([`guests`]).

pub mod guests;
pub mod testdb;
