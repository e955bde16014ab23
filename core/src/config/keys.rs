//! The table of known keys: the one place that holds each key's name, old names, default and
//! description.
//!
//! [`super::Config::from_raw`] reads defaults from this table (so the documented default is the
//! default in effect), `docs/operations.md` is generated from it, and the warnings about unknown
//! and deprecated keys are computed against it. The table is sorted by key and has no duplicates
//! (a unit test keeps it so).

use super::RawConfig;

/// The default text of a key that has no default value (the key is unset unless configured).
pub const UNSET: &str = "(none)";

/// The kind of value a key takes, for documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    /// A duration such as `10 s` (see [`super::units::parse_duration`]).
    Duration,
    /// A memory size such as `32 kb` (see [`super::units::parse_size`]).
    Size,
    /// A whole number.
    Integer,
    /// A decimal number.
    Number,
    /// `true` or `false`.
    Boolean,
    /// One of a fixed set of names, listed in the description.
    Choice,
    /// Free text (a host, a path, a token).
    Text,
    /// A list of texts, separated by `;` or `,` (or a TOML list).
    List,
}

impl ValueKind {
    /// The name of the kind as documentation prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueKind::Duration => "Duration",
            ValueKind::Size => "MemorySize",
            ValueKind::Integer => "Integer",
            ValueKind::Number => "Double",
            ValueKind::Boolean => "Boolean",
            ValueKind::Choice => "Enum",
            ValueKind::Text => "String",
            ValueKind::List => "List<String>",
        }
    }
}

/// One known configuration key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyDoc {
    /// The key's name (Flink 2's name where Flink has the key).
    pub key: &'static str,
    /// Older names still read when `key` is not set; `key` wins when both are set.
    pub fallback_keys: &'static [&'static str],
    /// The default as text, [`UNSET`] when the key has no default.
    pub default: &'static str,
    /// What kind of value the key takes.
    pub kind: ValueKind,
    /// One line saying what the key controls.
    pub description: &'static str,
    /// Whether the key is weir's own (Flink has no such key).
    pub weir_only: bool,
}

const fn key(key: &'static str, default: &'static str, kind: ValueKind, description: &'static str) -> KeyDoc {
    KeyDoc { key, fallback_keys: &[], default, kind, description, weir_only: false }
}

const fn renamed(
    key: &'static str,
    fallback_keys: &'static [&'static str],
    default: &'static str,
    kind: ValueKind,
    description: &'static str,
) -> KeyDoc {
    KeyDoc { key, fallback_keys, default, kind, description, weir_only: false }
}

const fn weir(key: &'static str, default: &'static str, kind: ValueKind, description: &'static str) -> KeyDoc {
    KeyDoc { key, fallback_keys: &[], default, kind, description, weir_only: true }
}

use ValueKind::{Boolean, Choice, Duration, Integer, List, Number, Size, Text};

/// Every key weir reads, sorted by key.
static KEYS: &[KeyDoc] = &[
    renamed(
        "execution.buffer-timeout.interval",
        &["execution.buffer-timeout"],
        "100 ms",
        Duration,
        "Longest wait of a partly filled network buffer before it is sent; 0 sends every record.",
    ),
    renamed(
        "execution.checkpointing.aligned-checkpoint-timeout",
        &["execution.checkpointing.alignment-timeout"],
        "0 ms",
        Duration,
        "With unaligned checkpoints: try aligned for this long first; 0 starts unaligned.",
    ),
    renamed(
        "execution.checkpointing.dir",
        &["state.checkpoints.dir"],
        UNSET,
        Text,
        "Directory for checkpoint data and metadata (`<job-id>/chk-<n>/`).",
    ),
    key(
        "execution.checkpointing.externalized-checkpoint-retention",
        "DELETE_ON_CANCELLATION",
        Choice,
        "What happens to the last checkpoint when a job is cancelled: DELETE_ON_CANCELLATION, \
         RETAIN_ON_CANCELLATION or NO_EXTERNALIZED_CHECKPOINTS.",
    ),
    key(
        "execution.checkpointing.incremental",
        "false",
        Boolean,
        "With the RocksDB backend, each checkpoint uploads only the RocksDB files new since the \
         previous one into `<job-id>/shared/`; savepoints stay full. With hashmap it has no \
         effect (a warning says so).",
    ),
    key(
        "execution.checkpointing.interval",
        UNSET,
        Duration,
        "Time between checkpoint triggers; unset turns checkpointing off.",
    ),
    key(
        "execution.checkpointing.max-concurrent-checkpoints",
        "1",
        Integer,
        "Most checkpoints that may be in progress at once.",
    ),
    key(
        "execution.checkpointing.min-pause",
        "0 ms",
        Duration,
        "Shortest time between the end of one checkpoint and the start of the next.",
    ),
    key(
        "execution.checkpointing.mode",
        "EXACTLY_ONCE",
        Choice,
        "Checkpointing guarantee: EXACTLY_ONCE (barriers are aligned) or AT_LEAST_ONCE.",
    ),
    renamed(
        "execution.checkpointing.num-retained",
        &["state.checkpoints.num-retained"],
        "1",
        Integer,
        "How many completed checkpoints are kept.",
    ),
    renamed(
        "execution.checkpointing.savepoint-dir",
        &["state.savepoints.dir"],
        UNSET,
        Text,
        "Default directory for savepoints.",
    ),
    key(
        "execution.checkpointing.timeout",
        "10 min",
        Duration,
        "A checkpoint not completed within this time is aborted.",
    ),
    key(
        "execution.checkpointing.tolerable-failed-checkpoints",
        "0",
        Integer,
        "How many consecutive checkpoint failures are tolerated before the job fails.",
    ),
    renamed(
        "execution.checkpointing.unaligned.enabled",
        &["execution.checkpointing.unaligned"],
        "false",
        Boolean,
        "Whether checkpoints are unaligned (exactly-once mode only).",
    ),
    key("heartbeat.interval", "10 s", Duration, "Time between heartbeat requests."),
    key(
        "heartbeat.rpc-failure-threshold",
        "2",
        Integer,
        "Consecutive failed heartbeat RPCs that declare a target dead; -1 disables the rule.",
    ),
    key(
        "heartbeat.timeout",
        "50 s",
        Duration,
        "A target that has not answered a heartbeat for this long is declared dead.",
    ),
    key(
        "high-availability.cluster-id",
        "/default",
        Text,
        "Name of the cluster in the high-availability store; clusters sharing one need own ids.",
    ),
    weir(
        "high-availability.etcd.endpoints",
        UNSET,
        List,
        "etcd endpoints (`http://host:2379`) for `high-availability.type: etcd`.",
    ),
    weir(
        "high-availability.lease-duration",
        "15 s",
        Duration,
        "How long a leader lease lasts without renewal (as Flink's Kubernetes lease duration).",
    ),
    weir(
        "high-availability.lease-margin",
        "3 s",
        Duration,
        "How long before its lease could expire a leader stops acting (covers clock drift); lease minus \
         margin must exceed the renew interval.",
    ),
    weir(
        "high-availability.renew-interval",
        "5 s",
        Duration,
        "How often the leader renews its lease (as Flink's Kubernetes retry period).",
    ),
    key(
        "high-availability.storageDir",
        UNSET,
        Text,
        "Directory for job graphs and checkpoint metadata that a new leader recovers from.",
    ),
    renamed(
        "high-availability.type",
        &["high-availability"],
        "none",
        Choice,
        "High-availability backend: none, file (a lease file in the storage directory) or etcd.",
    ),
    key(
        "jobmanager.execution.failover-strategy",
        "region",
        Choice,
        "What restarts after a task failure: region (the failed pipelined region) or full.",
    ),
    key("jobmanager.rpc.address", "localhost", Text, "Host name that TaskManagers use to reach the JobManager."),
    key("jobmanager.rpc.port", "6123", Integer, "Port of the JobManager's RPC endpoint."),
    key(
        "journal.dir",
        UNSET,
        Text,
        "Where a daemon writes its journal of state-machine inputs; unset: `journal/` in its data directory.",
    ),
    key("journal.enabled", "true", Boolean, "Whether daemons keep a journal of their state machines' inputs."),
    key("journal.flush-interval", "200 ms", Duration, "Longest a journaled input waits in the write buffer."),
    key("journal.segment-size", "64 mb", Size, "Size at which a journal segment file is closed and a new one begun."),
    key("journal.segments", "8", Integer, "Journal segments kept; older ones are deleted."),
    weir(
        "metrics.port",
        "9249",
        Integer,
        "Port of a TaskManager's Prometheus `/metrics` (0: any free port), as Flink's Prometheus reporter's default.",
    ),
    key("parallelism.default", "1", Integer, "Parallelism of operators that do not set one."),
    key(
        "pipeline.auto-watermark-interval",
        "200 ms",
        Duration,
        "Time between periodic watermarks; 0 turns periodic watermarks off.",
    ),
    key(
        "pipeline.max-parallelism",
        UNSET,
        Integer,
        "Number of key groups (bound of rescaling); unset derives it from the parallelism.",
    ),
    renamed(
        "pipeline.operator-chaining.enabled",
        &["pipeline.operator-chaining"],
        "true",
        Boolean,
        "Whether operators joined by forward edges are chained into one task.",
    ),
    key(
        "resourcemanager.taskmanager-timeout",
        "30 s",
        Duration,
        "An idle TaskManager is released after this long (active resource managers only).",
    ),
    key("rest.address", "localhost", Text, "Host name that clients use to reach the REST endpoint."),
    key(
        "rest.bind-address",
        "127.0.0.1",
        Text,
        "Address the REST endpoint binds; loopback unless configured (Flink has no default).",
    ),
    key("rest.port", "8081", Integer, "Port of the REST endpoint and web UI."),
    key(
        "restart-strategy.exponential-delay.attempts-before-reset-backoff",
        "2147483647",
        Integer,
        "Restarts allowed before the backoff resets; more fail the job.",
    ),
    key(
        "restart-strategy.exponential-delay.backoff-multiplier",
        "1.5",
        Number,
        "Factor the backoff grows by after each failure (at least 1).",
    ),
    key("restart-strategy.exponential-delay.initial-backoff", "1 s", Duration, "Backoff before the first restart."),
    key(
        "restart-strategy.exponential-delay.jitter-factor",
        "0.1",
        Number,
        "Fraction of the backoff drawn at random and added or taken away (0 to 1).",
    ),
    key("restart-strategy.exponential-delay.max-backoff", "1 min", Duration, "Longest backoff."),
    key(
        "restart-strategy.exponential-delay.reset-backoff-threshold",
        "1 h",
        Duration,
        "After this long without a failure the backoff returns to the initial one.",
    ),
    key("restart-strategy.failure-rate.delay", "1 s", Duration, "Delay before each restart."),
    key(
        "restart-strategy.failure-rate.failure-rate-interval",
        "1 min",
        Duration,
        "Window in which failures are counted.",
    ),
    key(
        "restart-strategy.failure-rate.max-failures-per-interval",
        "1",
        Integer,
        "Most failures within the window before the job fails.",
    ),
    key("restart-strategy.fixed-delay.attempts", "1", Integer, "Restarts before the job fails."),
    key("restart-strategy.fixed-delay.delay", "1 s", Duration, "Delay before each restart."),
    renamed(
        "restart-strategy.type",
        &["restart-strategy"],
        UNSET,
        Choice,
        "none, fixed-delay, failure-rate or exponential-delay; unset means exponential-delay when \
         checkpointing is on, else none.",
    ),
    weir(
        "security.token",
        UNSET,
        Text,
        "Shared secret every cluster process and client must present; unset means no check.",
    ),
    key(
        "slot.request.timeout",
        "5 min",
        Duration,
        "A JobMaster's slot request that is not fulfilled within this time fails.",
    ),
    key(
        "state.backend.rocksdb.localdir",
        UNSET,
        Text,
        "Directory of the RocksDB instances of keyed state; unset: `rocksdb/` under the \
         TaskManager's data directory.",
    ),
    key(
        "state.backend.rocksdb.memory.write-buffer-ratio",
        "0.5",
        Number,
        "Share of a slot's managed memory that RocksDB's write buffers may take.",
    ),
    key(
        "state.backend.type",
        "hashmap",
        Choice,
        "Keyed state backend: `hashmap` (objects on the heap) or `rocksdb` (embedded RocksDB \
         in managed memory).",
    ),
    key(
        "taskmanager.data.port",
        "0",
        Integer,
        "Port of a TaskManager's data channels (0: any free port, told to JobMasters with its slots).",
    ),
    key("taskmanager.host", "localhost", Text, "Host name others use to reach this TaskManager."),
    key(
        "taskmanager.memory.managed.size",
        "128 mb",
        Size,
        "Managed memory of a TaskManager, split evenly between its slots.",
    ),
    key(
        "taskmanager.memory.segment-size",
        "32 kb",
        Size,
        "Size of a network buffer and memory page (a power of two, at least 4 kb).",
    ),
    key(
        "taskmanager.network.memory.buffers-per-channel",
        "2",
        Integer,
        "Exclusive network buffers of each input channel.",
    ),
    key(
        "taskmanager.network.memory.floating-buffers-per-gate",
        "8",
        Integer,
        "Network buffers each input gate shares among its channels.",
    ),
    key("taskmanager.numberOfTaskSlots", "1", Integer, "Number of slots a TaskManager offers."),
    key(
        "taskmanager.resource-id",
        UNSET,
        Text,
        "The TaskManager's resource id (32 hex digits); unset makes a fresh one per start.",
    ),
    key("taskmanager.rpc.port", "0", Integer, "Port of a TaskManager's RPC endpoint (0: any free port)."),
];

/// Every key weir reads, sorted by key, with default and description.
pub fn known_keys() -> &'static [KeyDoc] {
    KEYS
}

/// The entry of `key` under its current name, if the key is known.
pub fn key_doc(key: &str) -> Option<&'static KeyDoc> {
    KEYS.binary_search_by(|doc| doc.key.cmp(key)).ok().map(|index| &KEYS[index])
}

/// Warnings about the keys of `raw`, in key order: unknown keys (with a close known key when
/// there is one) and old key names (used, or ignored because the new name is set too).
pub fn key_warnings(raw: &RawConfig) -> Vec<String> {
    let mut warnings = Vec::new();
    for (name, _) in raw.iter() {
        if key_doc(name).is_some() {
            continue;
        }
        if let Some(doc) = KEYS.iter().find(|doc| doc.fallback_keys.contains(&name)) {
            warnings.push(if raw.get(doc.key).is_some() {
                format!("key `{name}` is ignored because its new name `{}` is set too", doc.key)
            } else {
                format!("key `{name}` is deprecated; use `{}`", doc.key)
            });
            continue;
        }
        warnings.push(match closest_key(name) {
            Some(known) => format!("unknown key `{name}` is ignored; did you mean `{known}`?"),
            None => format!("unknown key `{name}` is ignored"),
        });
    }
    warnings
}

/// Largest edit distance (ignoring case) at which an unknown key is taken for a typo.
const TYPO_DISTANCE_MAX: usize = 2;

/// The known key (current name) nearest to `unknown`, if within [`TYPO_DISTANCE_MAX`] edits;
/// the first in table order wins a tie.
fn closest_key(unknown: &str) -> Option<&'static str> {
    let unknown = unknown.to_lowercase();
    let mut best: Option<(usize, &'static str)> = None;
    for doc in KEYS {
        for name in std::iter::once(&doc.key).chain(doc.fallback_keys) {
            let distance = edit_distance(&unknown, &name.to_lowercase());
            if distance <= TYPO_DISTANCE_MAX && best.is_none_or(|(closest, _)| distance < closest) {
                best = Some((distance, doc.key));
            }
        }
    }
    best.map(|(_, key)| key)
}

/// Levenshtein distance between `a` and `b`, counted in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    let mut current = vec![0; b.len() + 1];
    for (i, a_char) in a.chars().enumerate() {
        current[0] = i + 1;
        for (j, b_char) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(a_char != *b_char);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_table_is_sorted_without_duplicates_so_lookup_finds_every_key() {
        for pair in KEYS.windows(2) {
            assert!(pair[0].key < pair[1].key, "{} before {}", pair[0].key, pair[1].key);
        }
        for doc in KEYS {
            assert_eq!(key_doc(doc.key), Some(doc));
            for old in doc.fallback_keys {
                assert!(key_doc(old).is_none(), "old name {old} is also a current name");
            }
        }
    }

    #[test]
    fn every_key_has_a_one_line_description() {
        for doc in KEYS {
            assert!(!doc.description.is_empty() && !doc.description.contains('\n'), "{}", doc.key);
        }
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_substitutions() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("heartbeat.intreval", "heartbeat.interval"), 2);
        assert_eq!(edit_distance("µs", "us"), 1);
    }

    #[test]
    fn an_unknown_key_near_a_known_one_gets_a_did_you_mean_warning() {
        let mut raw = RawConfig::new();
        raw.set("heartbeat.intreval", "5 s");
        raw.set("taskmanager.numberoftaskslots", "4");
        raw.set("state.checkpoint.dir", "/tmp/x");
        raw.set("metrics.reporters", "jmx");
        assert_eq!(
            key_warnings(&raw),
            [
                "unknown key `heartbeat.intreval` is ignored; did you mean `heartbeat.interval`?",
                "unknown key `metrics.reporters` is ignored",
                "unknown key `state.checkpoint.dir` is ignored; \
                 did you mean `execution.checkpointing.dir`?",
                "unknown key `taskmanager.numberoftaskslots` is ignored; \
                 did you mean `taskmanager.numberOfTaskSlots`?",
            ]
        );
    }

    #[test]
    fn old_key_names_are_warned_about() {
        let mut raw = RawConfig::new();
        raw.set("state.checkpoints.dir", "/old");
        raw.set("state.savepoints.dir", "/old-sp");
        raw.set("execution.checkpointing.savepoint-dir", "/new-sp");
        assert_eq!(
            key_warnings(&raw),
            [
                "key `state.checkpoints.dir` is deprecated; use `execution.checkpointing.dir`",
                "key `state.savepoints.dir` is ignored because its new name \
                 `execution.checkpointing.savepoint-dir` is set too",
            ]
        );
    }
}
