//! weir-sim: the deterministic simulator.
//!
//! One thread, one event queue ordered by (virtual time, sequence number), one seeded generator
//! from which every random choice flows: latency, loss, duplication, fault times and victims,
//! task timings. Jobs with real tasks run weir's operators record by record (`dataplane`) over a
//! simulated shared storage (`disk`). The nodes are weir's real state machines from `weir-core` (a JobManager
//! process and TaskExecutors); only the network, the clocks and the tasks' work are simulated.
//! After every event each role's invariants and the cluster-wide ones are checked; the run's
//! fingerprint (every event, hashed in order) proves that the same seed replays the same run.

pub mod clock;
pub mod dataplane;
pub mod disk;
pub mod network;
pub mod report;
pub mod scenario;
pub mod shrink;
pub mod tasks;
pub mod timeline;
pub mod trace;
pub mod world;

pub use report::RunReport;
pub use world::{fault_free_output, run, run_logged, run_timeline, run_with_faults, states_at};
