//! Integration tests: each starts the real server on 127.0.0.1 (in-process, or the built
//! binary where exit codes, signals and log output matter) and speaks HTTP to it.

// A failed step is the test's report, in helpers as in test functions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod contrib;
mod foundation;
mod fxa_mock;
mod storage_auth;
mod storage_batch;
mod storage_flows;
mod storage_info;
mod storage_perf;
mod storage_read;
mod storage_support;
mod storage_write;
mod tokenserver_api;
mod tokenserver_chain;
mod tokenserver_cli;
mod tokenserver_fxa;
mod tokenserver_nodes;
mod tokenserver_rules;
mod tokenserver_support;
