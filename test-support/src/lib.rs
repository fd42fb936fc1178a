//! What Sluice's tests (the host's unit tests and the end-to-end tests) and `sluice bench`
//! share, kept out of the server: scratch PostgreSQL databases ([`testdb`]), the
//! repository's own components built for wasm32-wasip2 ([`guests`]) and SQS requests signed
//! the way AWS's SDKs sign them ([`sigv4`]).

pub mod guests;
pub mod sigv4;
pub mod testdb;
