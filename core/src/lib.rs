//! weir-core: every state machine and every decision of weir, with no IO of its own.
//!
//! The crate is sans-IO (see `docs/architecture.md`): nothing here opens a socket or a file,
//! reads a clock, spawns a thread or draws unseeded randomness. Drivers (the simulator in
//! `weir-sim`, the daemons in `weir-nodes`) feed the state machines inputs with the current
//! [`time::Time`] and carry out the outputs they ask for. Iteration that can influence a
//! decision goes over ordered collections, so the same inputs give the same outputs everywhere.

pub mod buggify;
pub mod checkpoint;
pub mod config;
pub mod dataflow;
pub mod dispatcher;
pub mod expr;
pub mod ha;
pub mod ids;
pub mod job;
pub mod job_manager;
pub mod job_master;
pub mod leader;
pub mod plan;
pub mod protocol;
pub mod resource_manager;
pub mod rng;
pub mod row;
pub mod task_executor;
pub mod time;
