//! weir-nodes: weir's processes — the CLI, the daemons, the embedded cluster and the REST API —
//! as a library, so a program that registers operators of its own can run them (the `weir`
//! binary is a thin `main` over [`cli`]).
//!
//! - [`api`]: running jobs built in Rust with the program's own operators: embedded, on a
//!   remote cluster, or as the program's own application cluster;
//! - [`cli`]: the `weir` command line;
//! - [`daemon`]: `weir jobmanager` and `weir taskmanager`;
//! - [`runtime`]: the IO the state machines ask for (task threads, exchange, storage);
//! - [`rest`]: the REST API;
//! - [`settings`]: configuration and job files from disk.

pub mod api;
pub mod cli;
pub mod daemon;
pub mod rest;
pub mod runtime;
pub mod settings;
