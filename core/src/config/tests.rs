//! Tests of the whole path: text → [`RawConfig`] → [`Config`] → entries.

use super::*;
use crate::time::Duration;

fn from_pairs(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let mut raw = RawConfig::new();
    for (key, value) in pairs {
        raw.set(*key, *value);
    }
    Config::from_raw(&raw)
}

fn config(pairs: &[(&str, &str)]) -> Config {
    from_pairs(pairs).unwrap_or_else(|error| panic!("{error}"))
}

fn refusal(pairs: &[(&str, &str)]) -> ConfigError {
    match from_pairs(pairs) {
        Ok(_) => panic!("{pairs:?} was accepted"),
        Err(error) => error,
    }
}

fn toml(text: &str) -> RawConfig {
    RawConfig::from_toml_str(text, "weir.toml").unwrap_or_else(|error| panic!("{error}"))
}

fn secs(secs: u64) -> Duration {
    Duration::from_secs(secs)
}

fn millis(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

#[test]
fn defaults_equal_flinks() {
    let config = Config::default();
    assert_eq!(config.rpc, RpcConfig { address: "localhost".into(), port: 6123 });
    let rest = RestConfig { address: "localhost".into(), bind_address: "127.0.0.1".into(), port: 8081 };
    assert_eq!(config.rest, rest);
    assert_eq!(config.security.token, None);
    let task_manager = TaskManagerConfig {
        slots: 1,
        managed_memory_bytes: 128 << 20,
        segment_bytes: 32 << 10,
        buffers_per_channel: 2,
        floating_buffers_per_gate: 8,
        host: "localhost".into(),
        rpc_port: 0,
        data_port: 0,
        resource_id: None,
        metrics_port: 9249,
    };
    assert_eq!(config.task_manager, task_manager);
    let pipeline = PipelineConfig {
        parallelism_default: 1,
        max_parallelism: None,
        operator_chaining: true,
        auto_watermark_interval: millis(200),
        buffer_timeout: millis(100),
    };
    assert_eq!(config.pipeline, pipeline);
    let heartbeat = HeartbeatConfig { interval: secs(10), timeout: secs(50), rpc_failure_threshold: Some(2) };
    assert_eq!(config.heartbeat, heartbeat);
    let resource_manager = ResourceManagerConfig { slot_request_timeout: secs(300), task_manager_timeout: secs(30) };
    assert_eq!(config.resource_manager, resource_manager);
    assert_eq!(config.restart_strategy, RestartStrategy::None);
    assert_eq!(config.failover_strategy, FailoverStrategy::Region);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn checkpointing_and_ha_defaults_equal_flinks() {
    let config = Config::default();
    let checkpoint = CheckpointConfig {
        interval: None,
        timeout: secs(600),
        min_pause: Duration::ZERO,
        max_concurrent: 1,
        tolerable_failed: 0,
        retained: 1,
        mode: CheckpointingMode::ExactlyOnce,
        unaligned: false,
        aligned_checkpoint_timeout: Duration::ZERO,
        retention: CheckpointRetention::DeleteOnCancellation,
        dir: None,
        savepoint_dir: None,
    };
    assert_eq!(config.checkpoint, checkpoint);
    assert!(!config.checkpoint.enabled());
    let ha = HaConfig {
        kind: HaType::None,
        storage_dir: None,
        cluster_id: "/default".into(),
        etcd_endpoints: Vec::new(),
        lease_duration: secs(15),
        renew_interval: secs(5),
        lease_margin: secs(3),
    };
    assert_eq!(config.ha, ha);
}

#[test]
fn restart_strategy_parameters_default_to_flinks() {
    let fixed = config(&[("restart-strategy.type", "fixed-delay")]);
    assert_eq!(fixed.restart_strategy, RestartStrategy::FixedDelay { attempts: 1, delay: secs(1) });
    let rate = config(&[("restart-strategy.type", "failure-rate")]);
    let expected =
        RestartStrategy::FailureRate { max_failures_per_interval: 1, failure_rate_interval: secs(60), delay: secs(1) };
    assert_eq!(rate.restart_strategy, expected);
    let exponential = config(&[("restart-strategy.type", "exponential-delay")]);
    assert_eq!(exponential.restart_strategy, flink_exponential_delay());
}

fn flink_exponential_delay() -> RestartStrategy {
    RestartStrategy::ExponentialDelay {
        initial_backoff: secs(1),
        max_backoff: secs(60),
        backoff_multiplier: 1.5,
        reset_backoff_threshold: secs(3600),
        jitter_factor: 0.1,
        attempts_before_reset_backoff: 2_147_483_647,
    }
}

#[test]
fn restart_strategy_default_depends_on_checkpointing() {
    assert_eq!(Config::default().restart_strategy, RestartStrategy::None);
    let checkpointed = config(&[("execution.checkpointing.interval", "30 s")]);
    assert_eq!(checkpointed.checkpoint.interval, Some(secs(30)));
    assert_eq!(checkpointed.restart_strategy, flink_exponential_delay());
    let tuned = config(&[
        ("execution.checkpointing.interval", "30 s"),
        ("restart-strategy.exponential-delay.max-backoff", "5 min"),
    ]);
    let RestartStrategy::ExponentialDelay { max_backoff, .. } = tuned.restart_strategy else {
        panic!("{:?}", tuned.restart_strategy);
    };
    assert_eq!(max_backoff, secs(300));
    let explicit = config(&[("execution.checkpointing.interval", "30 s"), ("restart-strategy.type", "none")]);
    assert_eq!(explicit.restart_strategy, RestartStrategy::None);
}

#[test]
fn restart_strategy_names_accept_flinks_aliases() {
    let cases = [
        ("none", "none"),
        ("off", "none"),
        ("disable", "none"),
        ("fixed-delay", "fixed-delay"),
        ("fixeddelay", "fixed-delay"),
        ("FixedDelay", "fixed-delay"),
        ("failure-rate", "failure-rate"),
        ("failurerate", "failure-rate"),
        ("exponential-delay", "exponential-delay"),
        ("exponentialdelay", "exponential-delay"),
    ];
    for (given, expected) in cases {
        let config = config(&[("restart-strategy.type", given)]);
        assert_eq!(config.restart_strategy.type_name(), expected, "{given}");
    }
    let old_name = config(&[("restart-strategy", "fixed-delay")]);
    assert_eq!(old_name.restart_strategy.type_name(), "fixed-delay");
}

#[test]
fn configured_values_of_every_section_are_read() {
    let config = config(&[
        ("taskmanager.numberOfTaskSlots", "4"),
        ("taskmanager.memory.segment-size", "64 kb"),
        ("pipeline.max-parallelism", "256"),
        ("pipeline.operator-chaining.enabled", "FALSE"),
        ("execution.checkpointing.mode", "at_least_once"),
        ("execution.checkpointing.externalized-checkpoint-retention", "retain_on_cancellation"),
        ("jobmanager.execution.failover-strategy", "full"),
        ("heartbeat.rpc-failure-threshold", "-1"),
        ("high-availability.type", "etcd"),
        ("high-availability.storageDir", "/ha"),
        ("high-availability.etcd.endpoints", "http://a:2379; http://b:2379"),
        ("security.token", "s3cret"),
    ]);
    assert_eq!(config.task_manager.slots, 4);
    assert_eq!(config.task_manager.segment_bytes, 64 << 10);
    assert_eq!(config.pipeline.max_parallelism, Some(256));
    assert!(!config.pipeline.operator_chaining);
    assert_eq!(config.checkpoint.mode, CheckpointingMode::AtLeastOnce);
    assert_eq!(config.checkpoint.retention, CheckpointRetention::RetainOnCancellation);
    assert_eq!(config.failover_strategy, FailoverStrategy::Full);
    assert_eq!(config.heartbeat.rpc_failure_threshold, None);
    assert_eq!(config.ha.kind, HaType::Etcd);
    assert_eq!(config.ha.etcd_endpoints, ["http://a:2379", "http://b:2379"]);
    assert_eq!(config.security.token.as_deref(), Some("s3cret"));
}

#[test]
fn nested_dotted_and_quoted_toml_keys_give_the_same_config() {
    let quoted = toml("\"heartbeat.interval\" = \"3 s\"\n\"taskmanager.numberOfTaskSlots\" = 3\n");
    let dotted = toml("heartbeat.interval = \"3 s\"\ntaskmanager.numberOfTaskSlots = 3\n");
    let nested = toml("[heartbeat]\ninterval = \"3 s\"\n[taskmanager]\nnumberOfTaskSlots = 3\n");
    let configs: Vec<Config> =
        [quoted, dotted, nested].iter().map(|raw| Config::from_raw(raw).unwrap_or_else(|e| panic!("{e}"))).collect();
    assert_eq!(configs[0].heartbeat.interval, secs(3));
    assert_eq!(configs[0].task_manager.slots, 3);
    assert_eq!(configs[0], configs[1]);
    assert_eq!(configs[1], configs[2]);
}

#[test]
fn a_toml_integer_for_a_duration_is_milliseconds() {
    let config = Config::from_raw(&toml("[heartbeat]\ninterval = 2000\ntimeout = 9000\n"));
    let config = config.unwrap_or_else(|error| panic!("{error}"));
    assert_eq!((config.heartbeat.interval, config.heartbeat.timeout), (secs(2), secs(9)));
}

#[test]
fn a_dash_d_override_wins_over_the_file() {
    let mut raw = toml("rest.port = 8081\n[heartbeat]\ninterval = \"10 s\"\n");
    let (key, value) = RawConfig::parse_override("rest.port=9091").unwrap_or_else(|e| panic!("{e}"));
    raw.set(key, value);
    let mut later = RawConfig::new();
    later.set("heartbeat.interval", "20 s");
    raw.merge(&later);
    let config = Config::from_raw(&raw).unwrap_or_else(|error| panic!("{error}"));
    assert_eq!(config.rest.port, 9091);
    assert_eq!(config.heartbeat.interval, secs(20));
}

#[test]
fn old_key_names_are_read_when_the_new_ones_are_unset() {
    let config = config(&[
        ("state.checkpoints.dir", "/old/chk"),
        ("state.savepoints.dir", "/old/sp"),
        ("state.checkpoints.num-retained", "3"),
        ("pipeline.operator-chaining", "false"),
        ("execution.buffer-timeout", "5 ms"),
    ]);
    assert_eq!(config.checkpoint.dir.as_deref(), Some("/old/chk"));
    assert_eq!(config.checkpoint.savepoint_dir.as_deref(), Some("/old/sp"));
    assert_eq!(config.checkpoint.retained, 3);
    assert!(!config.pipeline.operator_chaining);
    assert_eq!(config.pipeline.buffer_timeout, millis(5));
    assert_eq!(config.warnings.len(), 5, "{:?}", config.warnings);
    assert!(config.warnings.iter().all(|warning| warning.contains("is deprecated; use")));
}

#[test]
fn new_key_names_win_over_old_ones() {
    let config = config(&[
        ("state.checkpoints.dir", "/old/chk"),
        ("execution.checkpointing.dir", "/new/chk"),
        ("state.savepoints.dir", "/old/sp"),
        ("execution.checkpointing.savepoint-dir", "/new/sp"),
        ("state.checkpoints.num-retained", "3"),
        ("execution.checkpointing.num-retained", "5"),
    ]);
    assert_eq!(config.checkpoint.dir.as_deref(), Some("/new/chk"));
    assert_eq!(config.checkpoint.savepoint_dir.as_deref(), Some("/new/sp"));
    assert_eq!(config.checkpoint.retained, 5);
    assert!(config.warnings.iter().all(|warning| warning.contains("is ignored because its new name")));
}

#[test]
fn a_bad_value_names_key_value_and_expectation() {
    let error = refusal(&[("heartbeat.timeout", "ten")]);
    let message = error.to_string();
    assert!(
        message.starts_with(
            "invalid value \"ten\" for key `heartbeat.timeout`: \
             expected a duration such as `10 s` or `500 ms`"
        ),
        "{message}"
    );
    let old = refusal(&[("state.checkpoints.num-retained", "many")]);
    assert_eq!(
        old.to_string(),
        "invalid value \"many\" for key `state.checkpoints.num-retained`: \
         expected a whole number from 1 to 4294967295"
    );
}

/// Keys that must be set for `key` to be read at all.
fn enabling_keys(key: &str) -> Vec<(&'static str, &'static str)> {
    let strategies = [
        ("restart-strategy.fixed-delay.", "fixed-delay"),
        ("restart-strategy.failure-rate.", "failure-rate"),
        ("restart-strategy.exponential-delay.", "exponential-delay"),
    ];
    strategies
        .iter()
        .filter(|(prefix, _)| key.starts_with(prefix))
        .map(|(_, name)| ("restart-strategy.type", *name))
        .collect()
}

#[test]
fn every_non_text_key_refuses_nonsense_naming_key_and_value() {
    let typed = known_keys().iter().filter(|doc| !matches!(doc.kind, ValueKind::Text | ValueKind::List));
    for doc in typed {
        let mut pairs = enabling_keys(doc.key);
        pairs.push((doc.key, "ten?"));
        let error = refusal(&pairs);
        let ConfigError::InvalidValue { key, value, expected } = &error else {
            panic!("{}: {error}", doc.key);
        };
        assert_eq!((key.as_str(), value.as_str()), (doc.key, "ten?"));
        assert!(!expected.is_empty());
    }
}

#[test]
fn text_keys_refuse_empty_values() {
    let texts = known_keys().iter().filter(|doc| matches!(doc.kind, ValueKind::Text | ValueKind::List));
    for doc in texts {
        let ConfigError::InvalidValue { key, value, .. } = refusal(&[(doc.key, "  ")]) else {
            panic!("{}: not an invalid value", doc.key);
        };
        assert_eq!((key.as_str(), value.as_str()), (doc.key, "  "));
    }
}

fn assert_refused(pairs: &[(&str, &str)], key: &str, expected_part: &str) {
    let error = refusal(pairs);
    let message = error.to_string();
    assert!(message.contains(&format!("`{key}`")), "{message}");
    assert!(message.contains(expected_part), "{message}");
}

/// Asserts that `key` alone set to `value` is refused with a message containing `expected_part`.
fn assert_value_refused(key: &str, value: &str, expected_part: &str) {
    assert_refused(&[(key, value)], key, expected_part);
}

#[test]
fn out_of_range_values_are_refused() {
    assert_value_refused("taskmanager.numberOfTaskSlots", "0", "from 1");
    assert_value_refused("parallelism.default", "0", "from 1");
    assert_value_refused("rest.port", "70000", "from 0 to 65535");
    assert_value_refused("heartbeat.interval", "0 s", "above zero");
    assert_value_refused("heartbeat.rpc-failure-threshold", "0", "or -1");
    assert_value_refused("pipeline.max-parallelism", "40000", "to 32768");
    assert_value_refused("taskmanager.memory.segment-size", "3000", "power of two");
    assert_value_refused("taskmanager.memory.segment-size", "1 kb", "at least 4 kb");
    assert_value_refused("execution.checkpointing.interval", "5 ms", "at least 10 ms");
    assert_value_refused("execution.checkpointing.timeout", "0", "at least 10 ms");
    assert_value_refused("execution.checkpointing.max-concurrent-checkpoints", "0", "from 1");
    assert_value_refused("execution.checkpointing.num-retained", "0", "from 1");
    assert_value_refused("high-availability.type", "zookeeper", "no zookeeper backend");
}

#[test]
fn restart_parameters_out_of_range_are_refused() {
    let exponential = ("restart-strategy.type", "exponential-delay");
    let jitter = "restart-strategy.exponential-delay.jitter-factor";
    assert_refused(&[exponential, (jitter, "1.5")], jitter, "from 0 to 1");
    let multiplier = "restart-strategy.exponential-delay.backoff-multiplier";
    assert_refused(&[exponential, (multiplier, "0.5")], multiplier, "at least 1");
    let initial = "restart-strategy.exponential-delay.initial-backoff";
    assert_refused(&[exponential, (initial, "2 min")], initial, "at most");
    assert_refused(&[exponential, (initial, "0")], initial, "above zero");
    let attempts = "restart-strategy.exponential-delay.attempts-before-reset-backoff";
    assert_refused(&[exponential, (attempts, "0")], attempts, "from 1");
    let rate = ("restart-strategy.type", "failure-rate");
    let max_failures = "restart-strategy.failure-rate.max-failures-per-interval";
    assert_refused(&[rate, (max_failures, "0")], max_failures, "from 1");
    let interval = "restart-strategy.failure-rate.failure-rate-interval";
    assert_refused(&[rate, (interval, "0 s")], interval, "above zero");
}

#[test]
fn keys_that_must_agree_are_checked_together() {
    let refused = refusal(&[("heartbeat.interval", "10 s"), ("heartbeat.timeout", "10 s")]);
    assert_eq!(
        refused.to_string(),
        "invalid value \"10 s\" for key `heartbeat.timeout`: \
         expected a duration longer than `heartbeat.interval` (10 s)"
    );
    assert_refused(&[("heartbeat.interval", "1 min")], "heartbeat.timeout", "longer than");
    assert_refused(
        &[("parallelism.default", "8"), ("pipeline.max-parallelism", "4")],
        "pipeline.max-parallelism",
        "`parallelism.default` (8)",
    );
    assert_refused(
        &[
            ("taskmanager.network.memory.buffers-per-channel", "0"),
            ("taskmanager.network.memory.floating-buffers-per-gate", "0"),
        ],
        "taskmanager.network.memory.floating-buffers-per-gate",
        "at least 1",
    );
    assert_refused(&[("high-availability.renew-interval", "20 s")], "high-availability.lease-duration", "longer than");
}

#[test]
fn a_chosen_ha_backend_needs_its_keys() {
    let error = refusal(&[("high-availability.type", "file")]);
    assert_eq!(
        error.to_string(),
        "missing key `high-availability.storageDir`: \
         required when `high-availability.type` is `file`"
    );
    assert_refused(
        &[("high-availability.type", "etcd"), ("high-availability.storageDir", "/ha")],
        "high-availability.etcd.endpoints",
        "is `etcd`",
    );
    let file = config(&[("high-availability.type", "NONE"), ("high-availability", "file")]);
    assert_eq!(file.ha.kind, HaType::None);
}

#[test]
fn an_unknown_key_near_a_known_one_gets_a_did_you_mean_warning() {
    let config = config(&[("heartbeat.timout", "60 s"), ("io.tmp.dirs", "/tmp")]);
    assert_eq!(
        config.warnings,
        [
            "unknown key `heartbeat.timout` is ignored; did you mean `heartbeat.timeout`?",
            "unknown key `io.tmp.dirs` is ignored",
        ]
    );
    assert_eq!(config.heartbeat.timeout, secs(50));
}

#[test]
fn unaligned_checkpoints_in_at_least_once_mode_are_warned_about() {
    let config = config(&[
        ("execution.checkpointing.unaligned.enabled", "true"),
        ("execution.checkpointing.mode", "AT_LEAST_ONCE"),
    ]);
    assert_eq!(config.warnings, ["`execution.checkpointing.unaligned.enabled` has no effect in AT_LEAST_ONCE mode"]);
}

#[test]
fn the_documented_defaults_are_the_listed_defaults() {
    let listed = Config::default().entries();
    let mut documented: Vec<(String, String)> = known_keys()
        .iter()
        .filter(|doc| !doc.key.starts_with("restart-strategy."))
        .map(|doc| (doc.key.to_string(), doc.default.to_string()))
        .collect();
    // The restart strategy is derived: with checkpointing off it is `none`, without parameters.
    documented.push(("restart-strategy.type".into(), "none".into()));
    documented.sort();
    assert_eq!(listed, documented);
}

#[test]
fn every_known_key_is_listed_under_some_restart_strategy() {
    let mut seen = std::collections::BTreeSet::new();
    for strategy in ["none", "fixed-delay", "failure-rate", "exponential-delay"] {
        for (key, _) in config(&[("restart-strategy.type", strategy)]).entries() {
            seen.insert(key);
        }
    }
    let known: std::collections::BTreeSet<String> = known_keys().iter().map(|doc| doc.key.to_string()).collect();
    assert_eq!(seen, known);
}

#[test]
fn setting_every_key_to_its_documented_default_changes_nothing() {
    let defaults: Vec<(&str, &str)> =
        known_keys().iter().filter(|doc| doc.default != UNSET).map(|doc| (doc.key, doc.default)).collect();
    assert_eq!(config(&defaults), Config::default());
}

#[test]
fn listed_values_read_back_to_the_same_config() {
    let original = config(&[
        ("restart-strategy.type", "exponential-delay"),
        ("restart-strategy.exponential-delay.backoff-multiplier", "2.3"),
        ("execution.checkpointing.interval", "1500"),
        ("taskmanager.memory.managed.size", "1536 kb"),
        ("heartbeat.rpc-failure-threshold", "-1"),
        ("high-availability.type", "etcd"),
        ("high-availability.storageDir", "/ha"),
        ("high-availability.etcd.endpoints", "http://a:2379,http://b:2379"),
    ]);
    let listed = original.entries();
    let pairs: Vec<(&str, &str)> = listed.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
    assert_eq!(config(&pairs), original);
}

#[test]
fn the_listing_hides_the_token_and_prints_values_in_units() {
    let config = config(&[("security.token", "s3cret"), ("execution.checkpointing.interval", "90000")]);
    let entries = config.entries();
    let value = |key: &str| entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    assert_eq!(value("security.token"), Some(HIDDEN_VALUE));
    assert_eq!(value("execution.checkpointing.interval"), Some("90 s"));
    assert_eq!(value("heartbeat.timeout"), Some("50 s"));
    assert_eq!(value("taskmanager.memory.segment-size"), Some("32 kb"));
    assert_eq!(value("restart-strategy.type"), Some("exponential-delay"));
    assert!(!format!("{config:?}").contains("s3cret"));
}
