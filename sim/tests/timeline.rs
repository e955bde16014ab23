//! `weir sim replay --html`: the timeline page of a run holds its lanes, messages, faults and job
//! states, loads nothing from the network, and renders in headless Chromium when one is installed.

use std::path::Path;
use weir_sim::scenario::load;

fn page_data(page: &str) -> serde_json::Value {
    let start = page.find("id=\"timeline-data\">").expect("the data element") + "id=\"timeline-data\">".len();
    let end = start + page[start..].find("</script>").expect("the data ends");
    serde_json::from_str(&page[start..end].replace("<\\/", "</")).expect("the embedded timeline is JSON")
}

#[test]
fn a_timeline_page_holds_lanes_messages_faults_and_job_states() {
    let scenario = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/tm-crash.toml")).unwrap();
    let (report, timeline) = weir_sim::run_timeline(&scenario, 3).unwrap();
    assert!(report.passed(), "{report:?}");
    assert_eq!(report.trace_hash, weir_sim::run(&scenario, 3).trace_hash, "collecting changes nothing");
    let page = weir_sim::timeline::html(&timeline);
    for external in ["src=\"http", "href=\"http", "@import", "<link"] {
        assert!(!page.contains(external), "the page loads {external}");
    }
    let data = page_data(&page);
    let nodes: Vec<&str> = data["nodes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert_eq!(nodes, ["jm", "tm-0", "tm-1", "tm-2"]);
    let events = data["events"].as_array().unwrap();
    let of_kind = |kind: &'static str| events.iter().filter(move |event| event["kind"] == kind);
    assert!(of_kind("fault").any(|fault| fault["label"].as_str().unwrap().contains("crash")), "the crash is marked");
    let states: Vec<&str> = of_kind("job").map(|event| event["state"].as_str().unwrap()).collect();
    assert!(states.contains(&"RUNNING") && states.last() == Some(&"FINISHED"), "{states:?}");
    let messages: Vec<_> = of_kind("message").collect();
    assert!(messages.len() > 50, "messages are arrows");
    for message in messages {
        assert!(message["sent_us"].as_u64().unwrap() <= message["at_us"].as_u64().unwrap());
        assert!(
            nodes.contains(&message["from"].as_str().unwrap()) && nodes.contains(&message["node"].as_str().unwrap())
        );
    }
    let numbers: Vec<u64> = events.iter().map(|event| event["event"].as_u64().unwrap()).collect();
    assert!(numbers.windows(2).all(|pair| pair[0] <= pair[1]), "events in order");

    // Headless Chromium runs the page's script: one lane label per node, and a screenshot.
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|name| std::process::Command::new(name).arg("--version").output().is_ok_and(|out| out.status.success()));
    let Some(chromium) = chromium else {
        println!("no Chromium installed: the rendering check is skipped");
        return;
    };
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let file = dir.join("timeline-tm-crash-3.html");
    std::fs::write(&file, &page).unwrap();
    let url = format!("file://{}", file.display());
    let headless = ["--headless", "--no-sandbox", "--disable-gpu"];
    let dom = std::process::Command::new(chromium).args(headless).arg("--dump-dom").arg(&url).output().unwrap();
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert_eq!(dom.matches("class=\"lane-label lane-name\"").count(), 4, "the script drew one lane per node");
    assert!(dom.contains("class=\"event-dot\""), "events are drawn");
    let shot = dir.join("timeline-tm-crash-3.png");
    let screenshot = format!("--screenshot={}", shot.display());
    let status = std::process::Command::new(chromium)
        .args(headless)
        .args([screenshot.as_str(), "--window-size=1400,700"])
        .arg(&url)
        .output()
        .unwrap();
    assert!(status.status.success() && shot.exists(), "a screenshot was taken");
    println!("timeline screenshot: {}", shot.display());
}
