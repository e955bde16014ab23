use super::store::LeaseStore;
use super::*;

const TIMING: ElectionTiming = ElectionTiming {
    lease: Duration::from_millis(1000),
    renew_interval: Duration::from_millis(300),
    margin: Duration::from_millis(200),
};

fn at(ms: u64) -> Time {
    Time::ZERO.after(Duration::from_millis(ms))
}

fn requests(election: &mut LeaderElection) -> (Vec<StoreRequest>, Vec<LeaderRole>) {
    let (mut sent, mut roles) = (Vec::new(), Vec::new());
    while let Some(output) = election.poll_output() {
        match output {
            ElectionOutput::Store(request) => sent.push(request),
            ElectionOutput::Role(role) => roles.push(role),
        }
    }
    (sent, roles)
}

/// Sends every request to `store` at `now` and hands the replies back at once.
fn round(election: &mut LeaderElection, store: &mut LeaseStore, now: Time) -> Vec<LeaderRole> {
    let (mut sent, mut roles) = requests(election);
    while !sent.is_empty() {
        for request in std::mem::take(&mut sent) {
            let reply = store.apply(now, request);
            election.handle_reply(now, reply);
            let (more, changed) = requests(election);
            sent.extend(more);
            roles.extend(changed);
        }
    }
    roles
}

fn elected(store: &mut LeaseStore, name: &str) -> LeaderElection {
    let mut election = LeaderElection::new(name.into(), format!("{name}:6123"), TIMING, at(0));
    election.handle_tick(at(0));
    assert_eq!(round(&mut election, store, at(0)), vec![LeaderRole::Leading { epoch: Epoch(1) }]);
    election
}

#[test]
fn a_leader_that_cannot_renew_fences_at_lease_minus_margin() {
    let mut store = LeaseStore::new();
    let mut leader = elected(&mut store, "a");
    assert_eq!(leader.leading(at(799)), Some(Epoch(1)));
    leader.handle_tick(at(300));
    let (renewals, _) = requests(&mut leader); // the store never answers
    assert_eq!(renewals.len(), 1);
    assert_eq!(leader.leading(at(800)), None, "acts only before sent + lease - margin");
    assert_eq!(leader.poll_timeout(), Some(at(600)).min(Some(at(800))));
    leader.handle_tick(at(800));
    assert!(requests(&mut leader).1.contains(&LeaderRole::Fenced { epoch: Epoch(1) }));
}

#[test]
fn renewals_extend_the_deadline_from_their_send_time() {
    let mut store = LeaseStore::new();
    let mut leader = elected(&mut store, "a");
    leader.handle_tick(at(300));
    round(&mut leader, &mut store, at(300));
    assert_eq!(leader.leading(at(1099)), Some(Epoch(1)));
    assert_eq!(leader.leading(at(1100)), None);
}

#[test]
fn a_standby_learns_the_leader_and_takes_over_with_a_higher_epoch() {
    let mut store = LeaseStore::new();
    let _leader = elected(&mut store, "a");
    let mut standby = LeaderElection::new("b".into(), "b:6123".into(), TIMING, at(10));
    standby.handle_tick(at(10));
    let roles = round(&mut standby, &mut store, at(10));
    assert_eq!(roles, vec![LeaderRole::Standby { leader: Some(("a:6123".into(), Epoch(1))) }]);
    // The leader is silent; once its lease expired at the store the standby wins.
    standby.handle_tick(at(1000));
    let roles = round(&mut standby, &mut store, at(1000));
    assert_eq!(roles, vec![LeaderRole::Leading { epoch: Epoch(2) }]);
}

#[test]
fn a_grant_answered_after_the_deadline_is_not_acted_on() {
    let mut store = LeaseStore::new();
    let mut election = LeaderElection::new("a".into(), "a".into(), TIMING, at(0));
    election.handle_tick(at(0));
    let (sent, _) = requests(&mut election);
    let reply = store.apply(at(0), sent[0].clone());
    election.handle_reply(at(250), reply.clone());
    assert_eq!(election.leading(at(250)), Some(Epoch(1)));
    let mut late = LeaderElection::new("b".into(), "b".into(), TIMING, at(0));
    late.handle_tick(at(0));
    let (sent, _) = requests(&mut late);
    let mut other_store = LeaseStore::new();
    let reply = other_store.apply(at(0), sent[0].clone());
    late.handle_reply(at(800), reply);
    assert_eq!(late.leading(at(800)), None, "the grant's acting span passed in flight");
}

#[test]
fn a_refusal_that_shows_another_holder_fences_the_leader() {
    let mut store = LeaseStore::new();
    let mut leader = elected(&mut store, "a");
    // The store lost the lease to b (a forced takeover from the leader's point of view).
    let mut forced = LeaseStore::new();
    let _b = elected(&mut forced, "b");
    let view = forced.view(at(1));
    leader.handle_tick(at(300));
    let (sent, _) = requests(&mut leader);
    let StoreRequest::Renew { request, .. } = sent[0] else { panic!("a renewal: {sent:?}") };
    let view = LeaseView { revision: view.revision + 10, ..view };
    leader.handle_reply(at(301), StoreReply::Refused { request, view });
    assert_eq!(leader.leading(at(301)), None);
    assert!(requests(&mut leader).1.contains(&LeaderRole::Fenced { epoch: Epoch(1) }));
}

#[test]
fn release_hands_the_lease_over_without_waiting_for_expiry() {
    let mut store = LeaseStore::new();
    let mut leader = elected(&mut store, "a");
    leader.resign(at(50));
    assert_eq!(leader.leading(at(50)), None);
    round(&mut leader, &mut store, at(50));
    let mut standby = LeaderElection::new("b".into(), "b".into(), TIMING, at(60));
    standby.handle_tick(at(60));
    assert_eq!(round(&mut standby, &mut store, at(60)), vec![LeaderRole::Leading { epoch: Epoch(2) }]);
}

#[test]
fn the_store_refuses_a_stale_revision_and_a_live_lease() {
    let mut store = LeaseStore::new();
    let acquire = |request, expected_revision| StoreRequest::Acquire {
        request,
        candidate: "x".into(),
        address: "x".into(),
        ttl: Duration::from_millis(100),
        expected_revision,
    };
    assert!(matches!(store.apply(at(0), acquire(1, 7)), StoreReply::Refused { .. }));
    assert!(matches!(store.apply(at(0), acquire(2, 0)), StoreReply::Granted { epoch: Epoch(1), .. }));
    assert!(matches!(store.apply(at(50), acquire(3, 1)), StoreReply::Refused { .. }), "live");
    assert!(matches!(store.apply(at(100), acquire(4, 1)), StoreReply::Granted { epoch: Epoch(2), .. }));
}
