use super::execution::ExecutionGraph;
use super::regions::Regions;
use super::*;
use crate::job::file::parse_job_file;
use crate::job::validate::validate;
use crate::job::{ChainingStrategy, Edge, JobGraph, NamedExpr, Operator, OperatorKind};
use proptest::prelude::*;

const WINDOWED_SUM: &str = include_str!("../../../examples/windowed-sum.toml");

fn plan_text(text: &str, options: &PlanOptions) -> JobPlan {
    let job = parse_job_file("test", text).unwrap_or_else(|errors| panic!("{errors}"));
    plan(&job, options).unwrap_or_else(|error| panic!("{error}"))
}

fn vertex_names(plan: &JobPlan) -> Vec<Vec<String>> {
    let graph = &plan.job.graph;
    plan.vertices.iter().map(|v| v.operators.iter().map(|&o| graph.operator(o).uid.clone()).collect()).collect()
}

#[test]
fn windowed_sum_plans_into_two_vertices_joined_by_one_hash_edge() {
    for parallelism in [1, 2, 4] {
        let options = PlanOptions { default_parallelism: parallelism, ..PlanOptions::default() };
        let plan = plan_text(WINDOWED_SUM, &options);
        assert_eq!(vertex_names(&plan), [vec!["numbers", "pairs"], vec!["sums", "sink"]]);
        assert_eq!(plan.edges.len(), 1);
        assert_eq!(plan.edges[0].partitioner.ship_strategy(), "HASH");
        assert_eq!(plan.required_slots, parallelism);
    }
}

#[test]
fn chaining_disabled_gives_every_operator_its_own_vertex() {
    let options = PlanOptions { chaining_enabled: false, ..PlanOptions::default() };
    let plan = plan_text(WINDOWED_SUM, &options);
    assert_eq!(plan.vertices.len(), 4);
    let strategies: Vec<&str> = plan.edges.iter().map(|e| e.partitioner.ship_strategy()).collect();
    assert_eq!(strategies, ["FORWARD", "HASH", "FORWARD"]);
    assert_eq!(plan.required_slots, 1, "slot sharing still puts all in one slot");
}

/// A linear job: `sequence` then one operator per `(kind, parallelism, group)` step.
fn linear(steps: &[(&str, Option<u32>, Option<&str>)]) -> String {
    let mut text = String::from("name = \"linear\"\n[[operator]]\nid = \"op0\"\ntype = \"sequence\"\nto = 9\n");
    let mut previous = "op0".to_string();
    for (position, (kind, parallelism, group)) in steps.iter().enumerate() {
        let id = format!("op{}", position + 1);
        let mut input = previous.clone();
        if *kind == "key_by" {
            text.push_str(&format!(
                "[[operator]]\nid = \"{id}\"\ntype = \"key_by\"\ninput = \"{previous}\"\nkey = \"x\"\n"
            ));
            previous = id;
            continue;
        }
        text.push_str(&format!("[[operator]]\nid = \"{id}\"\ntype = \"{kind}\"\ninput = \"{input}\"\n"));
        if *kind == "map" {
            text.push_str("fields = { x = \"x\" }\n");
        }
        if let Some(parallelism) = parallelism {
            text.push_str(&format!("parallelism = {parallelism}\n"));
        }
        if let Some(group) = group {
            text.push_str(&format!("slot_sharing_group = \"{group}\"\n"));
        }
        input.clear();
        previous = id;
    }
    text
}

#[test]
fn flink_example_source_map_keyby_map_sink_gives_two_vertices() {
    let text = linear(&[("map", None, None), ("key_by", None, None), ("map", None, None), ("discard", None, None)]);
    let plan = plan_text(&text, &PlanOptions::default());
    assert_eq!(plan.vertices.len(), 2);
}

#[test]
fn flink_example_parallelism_changes_give_three_vertices() {
    let text = linear(&[("map", Some(10), None), ("discard", Some(20), None)]);
    let plan = plan_text(&text, &PlanOptions { default_parallelism: 4, ..PlanOptions::default() });
    assert_eq!(plan.vertices.len(), 3);
    let strategies: Vec<&str> = plan.edges.iter().map(|e| e.partitioner.ship_strategy()).collect();
    assert_eq!(strategies, ["REBALANCE", "REBALANCE"], "no partitioner and a parallelism change means rebalance");
}

#[test]
fn two_slot_sharing_groups_of_highest_parallelism_3_and_2_need_5_slots() {
    let text = linear(&[
        ("map", Some(3), None),
        ("key_by", None, None),
        ("map", Some(2), Some("other")),
        ("discard", Some(1), None),
    ]);
    let text = text.replace("to = 9\n", "to = 9\nparallelism = 3\n");
    let plan = plan_text(&text, &PlanOptions::default());
    assert_eq!(plan.slots_per_group.get("default"), Some(&3));
    assert_eq!(plan.slots_per_group.get("other"), Some(&2));
    assert_eq!(plan.required_slots, 5);
}

#[test]
fn flink_slot_sharing_example_needs_4_then_6_slots() {
    // source(p=2) -> map(p=2) -> keyBy -> window(p=4) -> sink(p=4)
    let shared = linear(&[
        ("map", Some(2), None),
        ("key_by", None, None),
        ("filter", Some(4), None),
        ("discard", Some(4), None),
    ])
    .replace("to = 9\n", "to = 9\nparallelism = 2\n")
    .replace("type = \"filter\"\ninput = \"op2\"\n", "type = \"filter\"\ninput = \"op2\"\nwhere = \"x > 0\"\n");
    assert_eq!(plan_text(&shared, &PlanOptions::default()).required_slots, 4);
    let split = shared.replace("where = \"x > 0\"\n", "where = \"x > 0\"\nslot_sharing_group = \"w\"\n");
    let plan = plan_text(&split, &PlanOptions::default());
    assert_eq!(plan.required_slots, 6);
    assert_eq!(plan.vertex(plan.vertex_of[3]).slot_sharing_group, "w", "the sink inherits its input's group");
}

#[test]
fn never_and_head_strategies_break_chains_as_flink_does() {
    let base = linear(&[("map", None, None), ("map", None, None), ("discard", None, None)]);
    let never = base.replacen("fields = { x = \"x\" }\n", "fields = { x = \"x\" }\nchaining = \"never\"\n", 1);
    assert_eq!(
        vertex_names(&plan_text(&never, &PlanOptions::default())),
        [vec!["op0"], vec!["op1"], vec!["op2", "op3"]]
    );
    let head = base.replacen("fields = { x = \"x\" }\n", "fields = { x = \"x\" }\nchaining = \"head\"\n", 1);
    assert_eq!(vertex_names(&plan_text(&head, &PlanOptions::default())), [vec!["op0"], vec!["op1", "op2", "op3"]]);
}

#[test]
fn forward_between_different_parallelism_fails_at_planning_when_set_by_p() {
    let text = linear(&[("discard", Some(3), None)])
        .replace("input = \"op0\"\n", "input = \"op0\"\npartition = \"forward\"\n");
    let job = parse_job_file("t", &text).unwrap();
    let error = plan(&job, &PlanOptions::default()).unwrap_err();
    assert!(error.to_string().contains("forward partitioning does not allow a change of parallelism"), "{error}");
    assert!(plan(&job, &PlanOptions { default_parallelism: 3, ..PlanOptions::default() }).is_ok());
}

#[test]
fn regions_follow_the_exchanges() {
    let forward_only = linear(&[("map", None, None), ("discard", None, None)]);
    let plan = plan_text(
        &forward_only,
        &PlanOptions { default_parallelism: 3, chaining_enabled: false, ..PlanOptions::default() },
    );
    let graph = ExecutionGraph::new(&plan);
    assert_eq!(Regions::new(&graph).len(), 3, "one region per parallel slice");
    let plan = plan_text(WINDOWED_SUM, &PlanOptions::default());
    assert_eq!(Regions::new(&ExecutionGraph::new(&plan)).len(), 1);
}

#[test]
fn execution_graph_memory_grows_linearly_with_subtasks_on_all_to_all_edges() {
    let bytes = |parallelism: u32| {
        let text =
            WINDOWED_SUM.replace("parallelism = 1", &format!("parallelism = {parallelism}\nmax_parallelism = 32768"));
        let plan = plan_text(&text, &PlanOptions::default());
        let graph = ExecutionGraph::new(&plan);
        let regions = Regions::new(&graph);
        assert_eq!(regions.len(), 1);
        graph.heap_bytes() + regions.members(crate::ids::RegionIndex(0)).len() * 8
    };
    let (small, large) = (bytes(1_000), bytes(10_000));
    assert!(large <= small * 11, "10x subtasks cost {large} bytes vs {small}: not linear");
}

// ---- property tests over random job graphs ----

/// A random operator: (is_source, parallelism, group, chaining, partitioner choice, input picks).
type Spec = (bool, u32, u8, u8, u8, Vec<prop::sample::Index>);

fn random_graph(specs: Vec<Spec>) -> JobGraph {
    let mut graph = JobGraph::new("random");
    for (position, (is_source, parallelism, group, chaining, partition, picks)) in specs.into_iter().enumerate() {
        let is_source = is_source || position == 0;
        let kind = if is_source {
            OperatorKind::Sequence { from: 0, to: 9, rate_per_second: None }
        } else {
            OperatorKind::Map { fields: vec![NamedExpr { name: "x".into(), expr: "x".into() }] }
        };
        graph.operators.push(Operator {
            uid: format!("op{position}"),
            name: format!("op{position}"),
            kind,
            parallelism: Some(parallelism),
            max_parallelism: None,
            slot_sharing_group: [None, Some("a".to_string()), Some("b".to_string())][group as usize % 3].clone(),
            chaining: [
                ChainingStrategy::Always,
                ChainingStrategy::Always,
                ChainingStrategy::Head,
                ChainingStrategy::Never,
            ][chaining as usize % 4],
        });
        if is_source {
            continue;
        }
        let mut sources: Vec<usize> = picks.iter().map(|pick| pick.index(position)).collect();
        sources.sort();
        sources.dedup();
        for source in sources {
            let partitioner = match partition % 6 {
                0 => None,
                1 => Some(Partitioner::Hash { key: "x".into() }),
                2 => Some(Partitioner::Rebalance),
                3 => Some(Partitioner::Rescale),
                4 => Some(Partitioner::Broadcast),
                _ => Some(Partitioner::Shuffle),
            };
            graph.edges.push(Edge {
                source: OperatorIndex(source as u32),
                target: OperatorIndex(position as u32),
                partitioner,
            });
        }
    }
    graph
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        prop::bool::weighted(0.15),
        1u32..5,
        any::<u8>(),
        any::<u8>(),
        any::<u8>(),
        prop::collection::vec(any::<prop::sample::Index>(), 1..3),
    )
}

proptest! {
    #[test]
    fn chains_follow_flinks_rules_and_slots_sum_over_groups(
        specs in prop::collection::vec(spec(), 1..14),
        chaining_enabled in prop::bool::weighted(0.85),
    ) {
        let job = validate(random_graph(specs)).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let options = PlanOptions { chaining_enabled, ..PlanOptions::default() };
        let plan = plan(&job, &options).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(plan.check_invariants().is_ok(), "{:?}", plan.check_invariants());
        for (target, resolved) in plan.operators.iter().enumerate() {
            let target = OperatorIndex(target as u32);
            for (source, partitioner) in &resolved.input_partitioners {
                let chainable =
                    chaining::is_chainable(&job, &plan.operators, *source, target, partitioner, chaining_enabled);
                let same_vertex = plan.vertex_of[source.index()] == plan.vertex_of[target.index()];
                // Chained exactly when Flink's rules allow it: never across a non-forward edge, a
                // parallelism change, a group boundary or a disabled operator, and always otherwise.
                prop_assert_eq!(chainable, same_vertex, "edge {} -> {}", source, target);
                if same_vertex {
                    prop_assert_eq!(partitioner, &Partitioner::Forward);
                    prop_assert_eq!(plan.operators[source.index()].parallelism, resolved.parallelism);
                    prop_assert_eq!(&plan.operators[source.index()].slot_sharing_group, &resolved.slot_sharing_group);
                    prop_assert!(job.graph.operator(target).chaining == ChainingStrategy::Always);
                    prop_assert!(job.graph.operator(*source).chaining != ChainingStrategy::Never);
                    prop_assert!(chaining_enabled);
                }
            }
        }
        let mut highest: BTreeMap<&str, u32> = BTreeMap::new();
        for resolved in &plan.operators {
            let entry = highest.entry(resolved.slot_sharing_group.as_str()).or_default();
            *entry = (*entry).max(resolved.parallelism);
        }
        prop_assert_eq!(plan.required_slots, highest.values().sum::<u32>());
        let graph = ExecutionGraph::new(&plan);
        let regions = Regions::new(&graph);
        let members: usize = (0..regions.len()).map(|r| regions.members(crate::ids::RegionIndex(r as u32)).len()).sum();
        prop_assert_eq!(members as u64, graph.subtask_count());
    }
}
