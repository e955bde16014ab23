use super::*;
use crate::job::builder::StreamEnvironment;
use crate::protocol::ExecutionState;
use proptest::prelude::*;

const CLIENT: Address = Address::Client(7);

fn submission(job_id: Option<JobId>) -> JobSubmission {
    let env = StreamEnvironment::new("small");
    env.sequence(0, 9).map(&[("y", "x * 2")]).discard();
    let graph = env.build().expect("valid").graph;
    JobSubmission { job_id, graph, parallelism: Some(2), config: BTreeMap::new(), savepoint: None }
}

fn drain(dispatcher: &mut Dispatcher) -> Vec<DispatcherOutput> {
    std::iter::from_fn(|| dispatcher.poll_output()).collect()
}

fn replies(outputs: &[DispatcherOutput]) -> Vec<ClientMessage> {
    outputs
        .iter()
        .filter_map(|output| match output {
            DispatcherOutput::Out(Output::Send(Envelope { message: Message::Client(message), .. })) => {
                Some(message.clone())
            }
            _ => None,
        })
        .collect()
}

fn submit(dispatcher: &mut Dispatcher, request: u64, submission: JobSubmission) -> Vec<DispatcherOutput> {
    let message = DispatcherMessage::Submit { request, submission: Box::new(submission) };
    dispatcher.handle(Time(1), Input::Message { from: CLIENT, message });
    drain(dispatcher)
}

fn report(dispatcher: &mut Dispatcher, job_id: JobId, status: JobStatus) {
    let message = DispatcherMessage::JobStatusChanged {
        job_id,
        status,
        tasks: BTreeMap::from([(ExecutionState::Running, 2)]),
        failure: (status == JobStatus::Failed).then(|| "boom".to_string()),
    };
    dispatcher.handle(Time(5), Input::Message { from: Address::JobMaster(job_id), message });
}

fn session() -> Dispatcher {
    Dispatcher::new(ClusterMode::Session, RawConfig::new(), Epoch(1), 42)
}

#[test]
fn a_valid_job_is_accepted_planned_and_given_a_job_master() {
    let mut dispatcher = session();
    let outputs = submit(&mut dispatcher, 1, submission(None));
    let [ClientMessage::Submitted { request: 1, job_id }] = replies(&outputs)[..] else {
        panic!("expected one Submitted reply, got {:?}", replies(&outputs));
    };
    let starts: Vec<&JobStart> = outputs
        .iter()
        .filter_map(|output| match output {
            DispatcherOutput::StartJobMaster(start) => Some(start),
            _ => None,
        })
        .collect();
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].job_id, job_id);
    assert_eq!(starts[0].plan.vertices[0].parallelism, 2, "the submission's parallelism is applied");
    assert_eq!(dispatcher.jobs()[&job_id].status, JobStatus::Initializing);
}

#[test]
fn an_invalid_job_is_rejected_and_leaves_no_trace() {
    let mut dispatcher = session();
    let mut bad = submission(None);
    bad.graph.edges.clear();
    let outputs = submit(&mut dispatcher, 3, bad);
    match &replies(&outputs)[..] {
        [ClientMessage::Rejected { request: 3, reason }] => assert!(reason.contains("needs an input"), "{reason}"),
        other => panic!("expected a rejection, got {other:?}"),
    }
    assert!(dispatcher.jobs().is_empty());
    let mut bad_config = submission(None);
    bad_config.config.insert("heartbeat.timeout".into(), "soon".into());
    let outputs = submit(&mut dispatcher, 4, bad_config);
    assert!(matches!(&replies(&outputs)[..], [ClientMessage::Rejected { reason, .. }] if reason.contains("heartbeat")));
    assert!(dispatcher.jobs().is_empty());
}

#[test]
fn a_job_id_is_used_once() {
    let mut dispatcher = session();
    let id = JobId(Hex128(99));
    submit(&mut dispatcher, 1, submission(Some(id)));
    let outputs = submit(&mut dispatcher, 2, submission(Some(id)));
    assert!(matches!(&replies(&outputs)[..], [ClientMessage::Rejected { reason, .. }] if reason.contains("already")));
}

#[test]
fn cancel_reaches_the_job_master_and_unknown_jobs_are_not_found() {
    let mut dispatcher = session();
    let outputs = submit(&mut dispatcher, 1, submission(None));
    let [ClientMessage::Submitted { job_id, .. }] = replies(&outputs)[..] else { panic!() };
    dispatcher
        .handle(Time(2), Input::Message { from: CLIENT, message: DispatcherMessage::Cancel { request: 2, job_id } });
    let outputs = drain(&mut dispatcher);
    let to_job_master = outputs.iter().any(|output| match output {
        DispatcherOutput::Out(Output::Send(envelope)) => {
            let cancel = Message::JobMaster(JobMasterMessage::Cancel);
            envelope.to == Address::JobMaster(job_id) && envelope.message == cancel
        }
        _ => false,
    });
    assert!(to_job_master);
    assert_eq!(replies(&outputs), [ClientMessage::CancelAccepted { request: 2, job_id }]);
    let unknown = JobId(Hex128(5));
    dispatcher.handle(
        Time(3),
        Input::Message { from: CLIENT, message: DispatcherMessage::Cancel { request: 3, job_id: unknown } },
    );
    assert_eq!(replies(&drain(&mut dispatcher)), [ClientMessage::NotFound { request: 3, job_id: unknown }]);
}

#[test]
fn status_reports_update_the_summary_and_results_are_retained() {
    let mut dispatcher = session();
    let outputs = submit(&mut dispatcher, 1, submission(None));
    let [ClientMessage::Submitted { job_id, .. }] = replies(&outputs)[..] else { panic!() };
    report(&mut dispatcher, job_id, JobStatus::Created);
    report(&mut dispatcher, job_id, JobStatus::Running);
    report(&mut dispatcher, job_id, JobStatus::Failed);
    let job = &dispatcher.jobs()[&job_id];
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.end_time, Some(Time(5)));
    assert_eq!(job.failure.as_deref(), Some("boom"));
    report(&mut dispatcher, job_id, JobStatus::Running);
    assert_eq!(dispatcher.jobs()[&job_id].status, JobStatus::Failed, "terminal is final");
    dispatcher.handle(Time(6), Input::Message { from: CLIENT, message: DispatcherMessage::List { request: 9 } });
    assert!(matches!(&replies(&drain(&mut dispatcher))[..], [ClientMessage::Jobs { jobs, .. }] if jobs.len() == 1));
}

#[test]
fn reports_from_another_job_master_are_ignored() {
    let mut dispatcher = session();
    let outputs = submit(&mut dispatcher, 1, submission(None));
    let [ClientMessage::Submitted { job_id, .. }] = replies(&outputs)[..] else { panic!() };
    let message = DispatcherMessage::JobStatusChanged {
        job_id,
        status: JobStatus::Canceled,
        tasks: BTreeMap::new(),
        failure: None,
    };
    dispatcher.handle(Time(2), Input::Message { from: Address::JobMaster(JobId(Hex128(1))), message });
    assert_eq!(dispatcher.jobs()[&job_id].status, JobStatus::Initializing);
}

#[test]
fn an_application_cluster_runs_one_job_and_ends_with_it() {
    let mut dispatcher = Dispatcher::new(ClusterMode::Application, RawConfig::new(), Epoch(1), 1);
    let outputs = submit(&mut dispatcher, 1, submission(None));
    let [ClientMessage::Submitted { job_id, .. }] = replies(&outputs)[..] else { panic!() };
    let second = submit(&mut dispatcher, 2, submission(None));
    assert!(matches!(&replies(&second)[..], [ClientMessage::Rejected { .. }]));
    report(&mut dispatcher, job_id, JobStatus::Created);
    report(&mut dispatcher, job_id, JobStatus::Running);
    report(&mut dispatcher, job_id, JobStatus::Finished);
    let ended = drain(&mut dispatcher).into_iter().any(|output| {
        matches!(
            output,
            DispatcherOutput::Out(Output::Event(Event::ApplicationEnded { status: JobStatus::Finished, .. }))
        )
    });
    assert!(ended);
}

#[test]
fn retained_results_are_bounded() {
    let mut dispatcher = session();
    for request in 0..(MAX_RETAINED_RESULTS as u64 + 5) {
        let outputs = submit(&mut dispatcher, request, submission(None));
        let [ClientMessage::Submitted { job_id, .. }] = replies(&outputs)[..] else { panic!() };
        report(&mut dispatcher, job_id, JobStatus::Created);
        report(&mut dispatcher, job_id, JobStatus::Canceled);
    }
    assert_eq!(dispatcher.jobs().len(), MAX_RETAINED_RESULTS);
    dispatcher.check_invariants().unwrap();
}

proptest! {
    #[test]
    fn random_messages_never_panic_or_break_invariants(ops in prop::collection::vec((0u8..6, 0u8..4, 0u8..11), 1..60)) {
        let mut dispatcher = session();
        let mut known: Vec<JobId> = vec![JobId(Hex128(3))];
        for (step, (kind, pick, status)) in ops.into_iter().enumerate() {
            let job_id = known[pick as usize % known.len()];
            let message = match kind {
                0 => DispatcherMessage::Submit { request: step as u64, submission: Box::new(submission(None)) },
                1 => DispatcherMessage::Cancel { request: step as u64, job_id },
                2 => DispatcherMessage::List { request: step as u64 },
                3 => DispatcherMessage::Status { request: step as u64, job_id },
                _ => DispatcherMessage::JobStatusChanged {
                    job_id,
                    status: JobStatus::ALL[status as usize],
                    tasks: BTreeMap::new(),
                    failure: None,
                },
            };
            let from = if kind >= 4 { Address::JobMaster(job_id) } else { CLIENT };
            dispatcher.handle(Time(step as u64), Input::Message { from, message });
            for output in drain(&mut dispatcher) {
                if let DispatcherOutput::StartJobMaster(start) = output {
                    known.push(start.job_id);
                }
            }
            prop_assert!(dispatcher.check_invariants().is_ok());
        }
    }
}

fn trigger_savepoint(dispatcher: &mut Dispatcher, from: Address, job_id: JobId, stop: bool) -> Vec<DispatcherOutput> {
    let target = Some("/savepoints".to_string());
    let message = DispatcherMessage::TriggerSavepoint { request: 9, job_id, target, stop, drain: false };
    dispatcher.handle(Time(2), Input::Message { from, message });
    drain(dispatcher)
}

#[test]
fn a_savepoint_request_goes_to_the_jobs_job_master_and_an_unknown_job_is_not_found() {
    let mut dispatcher = session();
    let unknown = JobId(Hex128(0xdead));
    let outputs = trigger_savepoint(&mut dispatcher, CLIENT, unknown, false);
    assert!(matches!(replies(&outputs)[..], [ClientMessage::NotFound { request: 9, job_id }] if job_id == unknown));

    let outputs = submit(&mut dispatcher, 1, submission(None));
    let [ClientMessage::Submitted { job_id, .. }] = replies(&outputs)[..] else { panic!("submitted") };
    let outputs = trigger_savepoint(&mut dispatcher, CLIENT, job_id, true);
    assert!(replies(&outputs).is_empty(), "the JobMaster answers, not the Dispatcher");
    let forwarded = outputs.iter().find_map(|output| match output {
        DispatcherOutput::Out(Output::Send(envelope)) => Some(envelope.clone()),
        _ => None,
    });
    let Some(Envelope { to, message: Message::JobMaster(message), .. }) = forwarded else { panic!("forwarded") };
    assert_eq!(to, Address::JobMaster(job_id));
    let expected = JobMasterMessage::TriggerSavepoint {
        request: 9,
        client: CLIENT,
        target: Some("/savepoints".to_string()),
        stop: true,
        drain: false,
    };
    assert_eq!(message, expected);

    // An ended job, or a request that is not from a client, is rejected.
    report(&mut dispatcher, job_id, JobStatus::Created);
    report(&mut dispatcher, job_id, JobStatus::Running);
    report(&mut dispatcher, job_id, JobStatus::Finished);
    let outputs = trigger_savepoint(&mut dispatcher, CLIENT, job_id, false);
    let rejected = |reason: &str| reason.contains("FINISHED");
    assert!(matches!(&replies(&outputs)[..], [ClientMessage::Rejected { request: 9, reason }] if rejected(reason)));
    let outputs = trigger_savepoint(&mut dispatcher, Address::ResourceManager, job_id, false);
    let to_job_master = |output: &DispatcherOutput| {
        matches!(output, DispatcherOutput::Out(Output::Send(Envelope { to: Address::JobMaster(_), .. })))
    };
    assert!(!outputs.iter().any(to_job_master));
}

#[test]
fn a_submission_from_a_savepoint_carries_it_to_the_job_master_and_an_empty_path_is_refused() {
    let mut dispatcher = session();
    let mut from_savepoint = submission(None);
    from_savepoint.savepoint = Some("/savepoints/savepoint-1".to_string());
    let outputs = submit(&mut dispatcher, 1, from_savepoint);
    let start = outputs.iter().find_map(|output| match output {
        DispatcherOutput::StartJobMaster(start) => Some(start),
        _ => None,
    });
    assert_eq!(start.and_then(|start| start.savepoint.as_deref()), Some("/savepoints/savepoint-1"));
    let mut empty = submission(None);
    empty.savepoint = Some("  ".to_string());
    let outputs = submit(&mut dispatcher, 2, empty);
    assert!(matches!(&replies(&outputs)[..], [ClientMessage::Rejected { request: 2, .. }]));
}
