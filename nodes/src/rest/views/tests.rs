//! The views over a JobManager driven by hand: a TaskManager registers, a job is submitted
//! through [`RestClients`] as the REST layer would, then cancelled.

use super::*;
use crate::rest::{RestCall, RestClients};
use std::collections::BTreeMap;
use tokio::sync::oneshot;
use weir_core::config::RawConfig;
use weir_core::dispatcher::ClusterMode;
use weir_core::ids::{Epoch, Hex128, ResourceId, SlotIndex, VertexIndex};
use weir_core::job::builder::StreamEnvironment;
use weir_core::job_manager::{Input, JobManager};
use weir_core::protocol::{
    Address, ClientMessage, DispatcherMessage, Envelope, ExecutionId, JobSubmission, Message, Output,
    ResourceManagerMessage, Role, SlotStatus, WorkerResources,
};

/// Milliseconds since the epoch at Time 0 in these tests.
const EPOCH_MS: u64 = 1_700_000_000_000;

struct Harness {
    job_manager: JobManager,
    clients: RestClients,
    now: Time,
    addresses: BTreeMap<ResourceId, String>,
    metrics: BTreeMap<ExecutionId, TaskMetrics>,
}

impl Harness {
    fn new() -> Harness {
        let job_manager = JobManager::new(RawConfig::new(), ClusterMode::Session, Epoch(1), 5).expect("config");
        let mut harness = Harness {
            job_manager,
            clients: RestClients::new(),
            now: Time(1_000),
            addresses: BTreeMap::new(),
            metrics: BTreeMap::new(),
        };
        let resource_id = ResourceId(Hex128(0x7e));
        let message = ResourceManagerMessage::RegisterTaskExecutor {
            resource_id,
            resources: WorkerResources { slots: 2, managed_memory_bytes: 256 << 20 },
            slot_report: vec![
                SlotStatus { slot: SlotIndex(0), allocation: None },
                SlotStatus { slot: SlotIndex(1), allocation: None },
            ],
        };
        let from = Address::TaskExecutor(resource_id);
        let envelope = Envelope {
            from,
            to: Address::ResourceManager,
            epoch: Epoch(0),
            message: Message::ResourceManager(message),
        };
        harness.feed(envelope);
        harness.addresses.insert(resource_id, "10.0.0.7:6121".to_string());
        harness
    }

    /// Delivers `envelope` and routes every answer to a REST client back to it.
    fn feed(&mut self, envelope: Envelope) {
        self.now = Time(self.now.0 + 1_000);
        self.job_manager.handle(self.now, Input::Message(envelope));
        while let Some(output) = self.job_manager.poll_output() {
            if let Output::Send(Envelope { to: to @ Address::Client(_), message: Message::Client(message), .. }) =
                output
            {
                self.clients.deliver(to, message);
            }
        }
    }

    fn state(&self) -> ClusterState<'_> {
        ClusterState {
            job_manager: &self.job_manager,
            epoch_ms_at_zero: EPOCH_MS,
            now: self.now,
            task_manager_addresses: &self.addresses,
            task_manager_data_addresses: &self.addresses,
            task_metrics: &self.metrics,
        }
    }

    /// Sends `message` as a REST call does and returns the Dispatcher's answer.
    fn call(&mut self, message: DispatcherMessage) -> ClientMessage {
        let (reply, mut answer) = oneshot::channel();
        let mut sent = Vec::new();
        let state_job_manager = JobManager::new(RawConfig::new(), ClusterMode::Session, Epoch(1), 0).expect("config");
        let empty = BTreeMap::new();
        let metrics = BTreeMap::new();
        let state = ClusterState {
            job_manager: &state_job_manager,
            epoch_ms_at_zero: 0,
            now: Time::ZERO,
            task_manager_addresses: &empty,
            task_manager_data_addresses: &empty,
            task_metrics: &metrics,
        };
        self.clients.answer(RestCall::Dispatcher { message, reply }, &state, |envelope| sent.push(envelope));
        assert_eq!(sent.len(), 1, "one envelope per Dispatcher call");
        for envelope in sent {
            self.feed(envelope);
        }
        answer.try_recv().expect("the Dispatcher answers at once")
    }

    fn view(&mut self, view: impl FnOnce(&ClusterState<'_>) -> Value + Send + 'static) -> Value {
        let (reply, mut answer) = oneshot::channel();
        let state = self.state();
        let mut clients = RestClients::new();
        clients.answer(RestCall::View { view: Box::new(view), reply }, &state, |_| panic!("a view sends nothing"));
        answer.try_recv().expect("a view is answered at once")
    }

    fn submit(&mut self, parallelism: u32) -> JobId {
        let env = StreamEnvironment::new("numbers");
        env.sequence(0, 999).discard();
        let graph = env.build().expect("valid job").graph;
        let submission = JobSubmission {
            job_id: None,
            graph,
            parallelism: Some(parallelism),
            config: BTreeMap::new(),
            savepoint: None,
        };
        match self.call(DispatcherMessage::Submit { request: 0, submission: Box::new(submission) }) {
            ClientMessage::Submitted { job_id, .. } => job_id,
            other => panic!("not accepted: {other:?}"),
        }
    }
}

#[test]
fn overview_counts_task_managers_slots_and_jobs() {
    let mut harness = Harness::new();
    let empty = overview(&harness.state());
    assert_eq!(empty["taskmanagers"], 1);
    assert_eq!(empty["slots-total"], 2);
    assert_eq!(empty["slots-available"], 2);
    assert_eq!(empty["jobs-running"], 0);
    let job_id = harness.submit(2);
    let running = harness.view(overview);
    assert_eq!(running["jobs-running"], 1);
    assert!(running["slots-available"].as_u64().expect("number") < 2, "the job asked for the slots");
    harness.call(DispatcherMessage::Cancel { request: 0, job_id });
    let ended = overview(&harness.state());
    assert_eq!((ended["jobs-running"].clone(), ended["jobs-cancelled"].clone()), (json!(0), json!(1)));
    for key in ["jobs-finished", "jobs-failed", "flink-version", "flink-commit"] {
        assert!(ended.get(key).is_some(), "{key}");
    }
}

#[test]
fn a_running_job_shows_flinks_fields_vertices_and_plan() {
    let mut harness = Harness::new();
    let job_id = harness.submit(2);
    let state = harness.state();
    let detail = job_detail(&state, job_id).expect("known job");
    assert_eq!(detail["jid"], job_id.to_string());
    assert_eq!(detail["name"], "numbers");
    assert_eq!(detail["state"], "RUNNING");
    assert_eq!(detail["end-time"], -1);
    assert!(detail["start-time"].as_i64().expect("ms") > EPOCH_MS as i64);
    assert_eq!(detail["now"], EPOCH_MS as i64 + harness.now.as_millis() as i64);
    let duration = detail["now"].as_i64().expect("ms") - detail["start-time"].as_i64().expect("ms");
    assert_eq!(detail["duration"], duration);
    let timestamps = detail["timestamps"].as_object().expect("timestamps");
    assert_eq!(timestamps.len(), JobStatus::ALL.len(), "every status, zero for never");
    assert!(timestamps["RUNNING"].as_i64().expect("ms") > 0);
    assert_eq!(timestamps["FINISHED"], 0);
    let vertices = detail["vertices"].as_array().expect("vertices");
    assert_eq!(vertices.len(), 1, "sequence -> discard chains into one vertex");
    let vertex = &vertices[0];
    assert_eq!(vertex["parallelism"], 2);
    assert_eq!(vertex["id"].as_str().expect("id").len(), 32);
    assert_eq!(vertex["tasks"].as_object().expect("tasks").len(), ExecutionState::ALL.len());
    assert_eq!(vertex["tasks"]["SCHEDULED"], 2, "no TaskExecutor offered the slots yet");
    assert_eq!(vertex["status"], "CREATED", "scheduled subtasks count as created, as in Flink");
    assert_eq!(detail["status-counts"]["SCHEDULED"], 2);
    assert_eq!(detail["plan"]["jid"], job_id.to_string());
    assert_eq!(detail["plan"]["nodes"][0]["id"], vertex["id"]);
    let plan = job_plan(&state, job_id).expect("known job");
    assert_eq!(plan["plan"], detail["plan"]);
    assert_eq!(plan["required_slots"], 2);
    assert_eq!(job_status(&state, job_id), Some(json!({"status": "RUNNING"})));
}

#[test]
fn vertex_metrics_sum_the_newest_attempt_of_each_subtask() {
    let mut harness = Harness::new();
    let job_id = harness.submit(2);
    let execution = |subtask: u32, attempt: u32| ExecutionId {
        job: job_id,
        vertex: VertexIndex(0),
        subtask: SubtaskIndex(subtask),
        attempt: AttemptNumber(attempt),
    };
    let metrics = |records_out: u64| TaskMetrics { records_out, bytes_out: records_out * 8, ..TaskMetrics::default() };
    harness.metrics.insert(execution(0, 0), metrics(100));
    harness.metrics.insert(execution(0, 1), metrics(7));
    let other_job = ExecutionId { job: JobId(Hex128(1)), ..execution(1, 0) };
    harness.metrics.insert(other_job, metrics(1_000));
    let partial = job_detail(&harness.state(), job_id).expect("job")["vertices"][0]["metrics"].clone();
    assert_eq!(partial["write-records"], 7, "attempt 1 replaced attempt 0; the other job is not counted");
    assert_eq!(partial["write-bytes"], 56);
    assert_eq!(partial["write-records-complete"], false, "subtask 1 has not reported");
    harness.metrics.insert(execution(1, 0), metrics(5));
    let whole = job_detail(&harness.state(), job_id).expect("job")["vertices"][0]["metrics"].clone();
    assert_eq!(whole["write-records"], 12);
    assert_eq!(whole["write-records-complete"], true);
    assert_eq!(whole["read-records"], 0);
}

#[test]
fn jobs_overview_lists_newest_first_with_lower_case_task_counts() {
    let mut harness = Harness::new();
    let first = harness.submit(1);
    let second = harness.submit(1);
    harness.call(DispatcherMessage::Cancel { request: 0, job_id: first });
    let overview = jobs_overview(&harness.state());
    let rows = overview["jobs"].as_array().expect("jobs");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["jid"], second.to_string(), "newest first");
    assert_eq!(rows[0]["state"], "RUNNING");
    assert_eq!(rows[0]["tasks"]["total"], 1);
    assert_eq!(rows[0]["tasks"]["scheduled"], 1);
    assert_eq!(rows[0]["jobType"], "STREAMING");
    assert_eq!(rows[1]["jid"], first.to_string());
    assert_eq!(rows[1]["state"], "CANCELED");
    assert!(rows[1]["end-time"].as_i64().expect("ms") >= rows[1]["start-time"].as_i64().expect("ms"));
    assert_eq!(rows[1]["last-modification"], rows[1]["end-time"]);
    let listed = jobs(&harness.state());
    assert_eq!(listed["jobs"].as_array().expect("jobs").len(), 2);
    assert!(listed["jobs"].as_array().expect("jobs").contains(&json!({"id": first.to_string(), "status": "CANCELED"})));
}

#[test]
fn an_ended_job_is_archived_as_it_ended_until_newer_ones_push_it_out() {
    let mut harness = Harness::new();
    let job_id = harness.submit(1);
    harness.call(DispatcherMessage::Cancel { request: 0, job_id });
    let detail = job_detail(&harness.state(), job_id).expect("retained");
    assert_eq!(detail["state"], "CANCELED");
    let vertices = detail["vertices"].as_array().expect("vertices");
    assert_eq!(vertices.len(), 1, "the archive keeps the vertices: {detail}");
    assert_eq!(vertices[0]["status"], "CANCELED");
    assert_eq!(vertices[0]["tasks"]["CANCELED"], 1);
    assert_eq!(detail["plan"]["nodes"].as_array().map(Vec::len), Some(1));
    assert!(detail["timestamps"]["CANCELED"].as_i64().expect("ms") > 0);
    assert_eq!(detail["end-time"].as_i64(), detail["timestamps"]["CANCELED"].as_i64());
    for _ in 0..weir_core::job_manager::ARCHIVED_JOBS_MAX {
        let newer = harness.submit(1);
        harness.call(DispatcherMessage::Cancel { request: 0, job_id: newer });
    }
    let detail = job_detail(&harness.state(), job_id).expect("the summary stays");
    assert_eq!(detail["state"], "CANCELED");
    assert_eq!(detail["vertices"], json!([]), "pushed out of the archive");
    assert_eq!(detail["plan"]["nodes"], json!([]));
}

#[test]
fn an_unknown_job_has_no_view() {
    let mut harness = Harness::new();
    harness.submit(1);
    let unknown = JobId(Hex128(42));
    let state = harness.state();
    assert_eq!(job_detail(&state, unknown), None);
    assert_eq!(job_plan(&state, unknown), None);
    assert_eq!(job_status(&state, unknown), None);
}

#[test]
fn task_managers_show_slots_address_and_assigned_tasks() {
    let mut harness = Harness::new();
    let listed = task_managers(&harness.state());
    let row = &listed["taskmanagers"][0];
    assert_eq!(row["id"], ResourceId(Hex128(0x7e)).to_string());
    assert_eq!(row["path"], "10.0.0.7:6121");
    assert_eq!(row["dataPort"], 6121);
    assert_eq!(row["slotsNumber"], 2);
    assert_eq!(row["freeSlots"], 2);
    assert_eq!(row["assignedTasks"], 0);
    assert_eq!(row["totalResource"]["managedMemory"], 256);
    assert!(row["timeSinceLastHeartbeat"].as_i64().expect("ms") > EPOCH_MS as i64);
    harness.submit(2);
    let busy = task_managers(&harness.state());
    assert!(busy["taskmanagers"][0]["freeSlots"].as_u64().expect("count") < 2);
}

#[test]
fn vertex_status_follows_flinks_precedence() {
    use ExecutionState::*;
    let counts = |pairs: &[(ExecutionState, u32)]| pairs.iter().copied().collect::<BTreeMap<_, _>>();
    assert_eq!(vertex_status(&counts(&[(Running, 1), (Failed, 1)]), 2), Failed);
    assert_eq!(vertex_status(&counts(&[(Running, 1), (Canceling, 1)]), 2), Canceling);
    assert_eq!(vertex_status(&counts(&[(Finished, 1), (Deploying, 1)]), 2), Running);
    assert_eq!(vertex_status(&counts(&[(Finished, 2)]), 2), Finished);
    assert_eq!(vertex_status(&counts(&[(Deploying, 1), (Created, 1)]), 2), Created);
    assert_eq!(vertex_status(&counts(&[(Initializing, 1), (Running, 1)]), 2), Initializing);
}

#[test]
fn a_job_without_checkpointing_has_zero_counts_flinks_endless_interval_and_scheduled_subtasks() {
    let mut harness = Harness::new();
    let job_id = harness.submit(2);
    let state = harness.state();
    let stats = checkpoints(&state, job_id).expect("known job");
    assert_eq!(stats["counts"], json!({"restored": 0, "total": 0, "in_progress": 0, "completed": 0, "failed": 0}));
    assert_eq!(stats["latest"]["completed"], Value::Null);
    assert_eq!(stats["history"], json!([]));
    assert_eq!(stats["summary"]["end_to_end_duration"]["p99"], 0.0);
    let config = checkpoint_config(&state, job_id).expect("known job");
    assert_eq!(config["interval"], i64::MAX, "Flink's Long.MAX_VALUE for no periodic checkpoints");
    assert_eq!(config["mode"], "exactly_once");
    let history = exceptions(&state, job_id).expect("known job");
    assert_eq!(history["exceptionHistory"], json!({"entries": [], "truncated": false}));

    let detail = job_detail(&state, job_id).expect("known job");
    let vertex_id: weir_core::ids::VertexId = detail["vertices"][0]["id"].as_str().expect("id").parse().expect("hex");
    let vertex_view = vertex(&state, job_id, vertex_id).expect("known vertex");
    let subtasks = vertex_view["subtasks"].as_array().expect("subtasks");
    assert_eq!(subtasks.len(), 2);
    assert_eq!(subtasks[1]["subtask"], 1);
    assert_eq!(subtasks[1]["status"], "SCHEDULED");
    assert_eq!(subtasks[1]["start-time"], -1, "not started yet");
    assert_eq!(subtasks[1]["endpoint"], Value::Null, "not deployed anywhere");
    assert_eq!(vertex_view["aggregated"]["metrics"]["read-records"]["sum"], 0);
    let unknown = weir_core::ids::VertexId(Hex128(1));
    assert!(vertex(&state, job_id, unknown).is_none());
    assert!(checkpoints(&state, JobId(Hex128(99))).is_none());
    assert!(task_manager(&state, ResourceId(Hex128(0x7e))).is_some_and(|tm| tm["allocatedSlots"].is_array()));
    assert!(task_manager(&state, ResourceId(Hex128(0x7f))).is_none());
}
