//! The timeline of a run: its events as data, and `weir sim replay --html`'s page of them.
//!
//! The page is self-contained (inline CSS and JavaScript, the events as JSON in the page, no
//! network): one lane per node, messages and data buffers as arrows from their send time on the
//! sender's lane to their delivery on the receiver's, faults as red marks, job and checkpoint
//! states over time as a band per job. Clicking an event shows its detail and every job's and
//! checkpoint's state at that moment.

use serde::Serialize;

/// At most this many events go into a timeline (later ones are counted, not kept).
pub const EVENTS_MAX: usize = 20_000;
/// At most this many characters of an event's detail are kept.
const DETAIL_CHARS_MAX: usize = 2_000;

/// One event of the timeline.
#[derive(Clone, Debug, Serialize)]
pub struct TimelineEvent {
    /// The simulator's event number (what `weir sim replay --until` takes).
    pub event: u64,
    /// When it happened, in virtual µs.
    pub at_us: u64,
    /// When it was sent (messages and buffers), in virtual µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_us: Option<u64>,
    /// `message`, `data`, `fault`, `job`, `checkpoint` or `task`.
    pub kind: &'static str,
    /// The node it happened on (the receiver of a message); none for a cluster-wide fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The sender of a message or buffer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The job it concerns (job and checkpoint events), as its id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// A job's new status, or a checkpoint's outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// One line.
    pub label: String,
    /// Everything about it (a message's full content).
    pub detail: String,
}

impl TimelineEvent {
    /// An event with `label` and `detail` (cut to a readable length) and nothing else set.
    pub fn new(event: u64, at_us: u64, kind: &'static str, label: String, detail: String) -> TimelineEvent {
        let detail = match detail.char_indices().nth(DETAIL_CHARS_MAX) {
            Some((cut, _)) => format!("{}…", &detail[..cut]),
            None => detail,
        };
        TimelineEvent {
            event,
            at_us,
            sent_us: None,
            kind,
            node: None,
            from: None,
            job: None,
            state: None,
            label,
            detail,
        }
    }
}

/// A run's timeline.
#[derive(Clone, Debug, Serialize)]
pub struct Timeline {
    /// The scenario's name.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// The lanes, in node order.
    pub nodes: Vec<String>,
    /// The events, in order.
    pub events: Vec<TimelineEvent>,
    /// Events left out past [`EVENTS_MAX`].
    pub dropped: u64,
    /// The run's end, in virtual µs.
    pub end_us: u64,
    /// Whether the run passed, and what failed.
    pub passed: bool,
    /// Violations and unmet expectations, as lines.
    pub problems: Vec<String>,
}

/// The self-contained page of `timeline`.
pub fn html(timeline: &Timeline) -> String {
    // `</` inside the JSON would end the script element early.
    let data = serde_json::to_string(timeline).unwrap_or_else(|_| "{}".to_string()).replace("</", "<\\/");
    let title = escape(&format!("{} seed {}", timeline.scenario, timeline.seed));
    PAGE.replace("{{TITLE}}", &title).replace("{{DATA}}", &data)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

const PAGE: &str = include_str!("timeline.html");
