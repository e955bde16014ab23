//! `weir run`, `weir list`, `weir cancel`, `weir savepoint`, `weir stop`: commands against a
//! running cluster's REST API, as Flink's CLI talks to its JobManager (same paths under `/v1`,
//! same output lines where Flink has them).
//!
//! The JobManager is `-m HOST:PORT`, else `rest.address`:`rest.port` of the configuration
//! (localhost:8081). With a cluster token (`-D security.token=…`, else the `WEIR_TOKEN`
//! environment variable, else the configuration file's) every request carries it as
//! `Authorization: Bearer …`. Exit codes: 0 done (for an attached `run`, the job FINISHED), 1 the
//! cluster is unreachable, refused or the job did not finish, 2 bad input (a job file, an id).

use super::CliError;
use super::http::{Endpoint, Response};
use crate::settings::{self, ConfigArgs};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use weir_core::config::RawConfig;
use weir_core::ids::JobId;

/// How often an attached `run` asks for the job's state.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Job states after which nothing changes any more.
const TERMINAL_STATES: [&str; 4] = ["FINISHED", "CANCELED", "FAILED", "SUSPENDED"];

/// The REST address of the leader the HA store names (leader retrieval, as TaskManagers do).
fn leader_rest(mut backend: Box<dyn crate::daemon::ha::Backend>) -> Result<String, CliError> {
    let view = backend.leader().map_err(|error| CliError::failed(format!("cannot read the HA store: {error}")))?;
    match crate::daemon::ha::LeaderAddress::of_view(&view) {
        Some((leader, _)) => Ok(leader.rest),
        None => Err(CliError::failed("the HA store names no live leader; is a JobManager running?".to_string())),
    }
}

/// How often `savepoint` and `stop` ask whether the savepoint is done.
const TRIGGER_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Longest wait for a savepoint (Flink's default checkpoint timeout).
const TRIGGER_WAIT_MAX: Duration = Duration::from_secs(600);

/// The REST endpoint: `-m`, else the leader's from the HA store when `high-availability.type`
/// is `file` or `etcd`, else the configuration's `rest.address`:`rest.port`; with the cluster
/// token when one is given.
fn endpoint(jobmanager: Option<&str>, config_args: &ConfigArgs) -> Result<Endpoint, CliError> {
    let mut token = None;
    for text in &config_args.overrides {
        let (key, value) = RawConfig::parse_override(text).map_err(|error| CliError::input(error.to_string()))?;
        if key == "security.token" {
            token = Some(value);
        }
    }
    if token.is_none() {
        token = std::env::var("WEIR_TOKEN").ok().filter(|token| !token.is_empty());
    }
    let target = match jobmanager {
        Some(target) => target.to_string(),
        None => {
            let config = settings::load_config(config_args, None)?;
            token = token.or(config.security.token);
            match crate::daemon::ha::open(&config.ha).map_err(CliError::input)? {
                Some(backend) => leader_rest(backend)?,
                None => format!("{}:{}", config.rest.address, config.rest.port),
            }
        }
    };
    if token.as_ref().is_some_and(|token| token.chars().any(char::is_control)) {
        return Err(CliError::input("the token must not contain control characters".to_string()));
    }
    Ok(Endpoint::new(&target).map_err(CliError::input)?.with_token(token))
}

fn call(endpoint: &Endpoint, method: &str, path: &str, body: Option<&Value>) -> Result<Response, CliError> {
    let bytes = body.map(|body| body.to_string().into_bytes());
    endpoint.request(method, path, bytes.as_deref()).map_err(CliError::failed)
}

/// `weir run JOB`: submits the job; attached, follows it to its end.
pub fn run(
    path: &Path,
    detached: bool,
    parallelism: Option<u32>,
    jobmanager: Option<&str>,
    savepoint: Option<&str>,
    config_args: &ConfigArgs,
) -> Result<(), CliError> {
    settings::load_job(path)?; // refuse a bad job here, with the file's own line numbers
    let text = std::fs::read_to_string(path)
        .map_err(|error| CliError::input(format!("{}: cannot read job file: {error}", path.display())))?;
    let job: Value = toml::from_str(&text).map_err(|error| CliError::input(format!("{}: {error}", path.display())))?;
    let mut config = BTreeMap::new();
    for text in &config_args.overrides {
        let (key, value) = RawConfig::parse_override(text).map_err(|error| CliError::input(error.to_string()))?;
        config.insert(key, value);
    }
    let mut body = json!({ "job": job, "config": config });
    if let Some(parallelism) = parallelism {
        body["parallelism"] = json!(parallelism);
    }
    if let Some(savepoint) = savepoint {
        body["savepointPath"] = json!(savepoint);
    }
    let endpoint = endpoint(jobmanager, config_args)?;
    let response = call(&endpoint, "POST", "/v1/jobs", Some(&body))?;
    let job_id = match (response.status, response.json()["jobid"].as_str()) {
        (200 | 202, Some(job_id)) => job_id.to_string(),
        (400, _) => return Err(CliError::input(format!("{}: {}", path.display(), response.error_message()))),
        (status, _) => {
            return Err(CliError::failed(format!("submission failed ({status}): {}", response.error_message())));
        }
    };
    println!("Job has been submitted with JobID {job_id}");
    if detached {
        return Ok(());
    }
    follow(&endpoint, &job_id)
}

/// Polls the job until it ends, printing each state it is seen in.
fn follow(endpoint: &Endpoint, job_id: &str) -> Result<(), CliError> {
    let started = Instant::now();
    let mut last_state = String::new();
    loop {
        let response = call(endpoint, "GET", &format!("/v1/jobs/{job_id}"), None)?;
        if response.status != 200 {
            return Err(CliError::failed(format!("job {job_id}: {}", response.error_message())));
        }
        let detail = response.json();
        let state = detail["state"].as_str().unwrap_or("UNKNOWN").to_string();
        if state != last_state {
            println!("{:6.1} s  job {state}", started.elapsed().as_secs_f64());
            last_state = state;
        }
        if TERMINAL_STATES.contains(&last_state.as_str()) {
            let duration = detail["duration"].as_i64().unwrap_or(0) as f64 / 1000.0;
            println!("Job {job_id} {last_state} after {duration:.1} s");
            return match (last_state.as_str(), detail["failure"].as_str()) {
                ("FINISHED", _) => Ok(()),
                (state, Some(failure)) => Err(CliError::failed(format!("job {job_id} {state}: {failure}"))),
                (state, None) => Err(CliError::failed(format!("job {job_id} {state}"))),
            };
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// `weir list`: running and terminated jobs, as Flink's `flink list -a` prints them.
pub fn list(json: bool, jobmanager: Option<&str>, config_args: &ConfigArgs) -> Result<(), CliError> {
    let endpoint = endpoint(jobmanager, config_args)?;
    let response = call(&endpoint, "GET", "/v1/jobs/overview", None)?;
    if response.status != 200 {
        return Err(CliError::failed(format!("listing jobs failed: {}", response.error_message())));
    }
    let overview = response.json();
    if json {
        let text = serde_json::to_string_pretty(&overview).unwrap_or_default();
        println!("{text}");
        return Ok(());
    }
    let jobs = overview["jobs"].as_array().cloned().unwrap_or_default();
    let (ended, running): (Vec<&Value>, Vec<&Value>) =
        jobs.iter().partition(|job| TERMINAL_STATES.contains(&job["state"].as_str().unwrap_or("")));
    print!("{}", job_table("Running/Restarting Jobs", "No running jobs.", &running));
    print!("{}", job_table("Terminated Jobs", "No terminated jobs.", &ended));
    Ok(())
}

/// One section of `list`: a title bar, `date : id : name (STATE)` lines oldest first, a rule.
fn job_table(title: &str, empty: &str, jobs: &[&Value]) -> String {
    if jobs.is_empty() {
        return format!("{empty}\n");
    }
    let rule = "-".repeat(62);
    let padding = rule.len().saturating_sub(title.len() + 2);
    let mut text = format!("{} {title} {}\n", "-".repeat(padding / 2), "-".repeat(padding - padding / 2));
    let mut jobs = jobs.to_vec();
    jobs.sort_by_key(|job| job["start-time"].as_i64().unwrap_or(0));
    for job in jobs {
        let started = utc_time(job["start-time"].as_i64().unwrap_or(0));
        let (id, name, state) = (
            job["jid"].as_str().unwrap_or(""),
            job["name"].as_str().unwrap_or(""),
            job["state"].as_str().unwrap_or(""),
        );
        text.push_str(&format!("{started} : {id} : {name} ({state})\n"));
    }
    text.push_str(&rule);
    text.push('\n');
    text
}

/// `dd.MM.yyyy HH:mm:ss` in UTC of milliseconds since the Unix epoch.
fn utc_time(epoch_ms: i64) -> String {
    let seconds = epoch_ms.div_euclid(1000);
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Days to a civil date in the proleptic Gregorian calendar, with eras of 400 years
    // (146,097 days) and years starting on March 1st so the leap day comes last.
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let (hour, minute, second) = (second_of_day / 3600, second_of_day / 60 % 60, second_of_day % 60);
    format!("{day:02}.{month:02}.{year} {hour:02}:{minute:02}:{second:02}")
}

/// `weir cancel ID`: asks the cluster to cancel the job.
pub fn cancel(id: &str, jobmanager: Option<&str>, config_args: &ConfigArgs) -> Result<(), CliError> {
    let job_id: JobId = id.parse().map_err(|error| CliError::input(format!("job id: {error}")))?;
    let endpoint = endpoint(jobmanager, config_args)?;
    println!("Cancelling job {job_id}.");
    let response = call(&endpoint, "PATCH", &format!("/v1/jobs/{job_id}?mode=cancel"), Some(&json!({})))?;
    match response.status {
        200 | 202 => {
            println!("Cancelled job {job_id}.");
            Ok(())
        }
        status => {
            Err(CliError::failed(format!("cancelling job {job_id} failed ({status}): {}", response.error_message())))
        }
    }
}

/// `weir savepoint ID [DIR]`: takes a savepoint of the job and prints its path.
pub fn savepoint(
    id: &str,
    directory: Option<&str>,
    json: bool,
    jobmanager: Option<&str>,
    config_args: &ConfigArgs,
) -> Result<(), CliError> {
    let job_id: JobId = id.parse().map_err(|error| CliError::input(format!("job id: {error}")))?;
    let endpoint = endpoint(jobmanager, config_args)?;
    let body = json!({ "target-directory": directory, "cancel-job": false, "formatType": "CANONICAL" });
    if !json {
        println!("Triggering savepoint for job {job_id}.");
    }
    let location = trigger_and_wait(&endpoint, job_id, &format!("/v1/jobs/{job_id}/savepoints"), &body, json)?;
    if json {
        println!("{}", json!({ "jobid": job_id.to_string(), "savepoint": location }));
    } else {
        println!("Savepoint completed. Path: {location}");
        println!("You can resume your program from this savepoint with the run command.");
    }
    Ok(())
}

/// `weir stop ID [--savepoint-path DIR] [--drain]`: stop-with-savepoint; prints the path.
pub fn stop(
    id: &str,
    directory: Option<&str>,
    drain: bool,
    json: bool,
    jobmanager: Option<&str>,
    config_args: &ConfigArgs,
) -> Result<(), CliError> {
    let job_id: JobId = id.parse().map_err(|error| CliError::input(format!("job id: {error}")))?;
    let endpoint = endpoint(jobmanager, config_args)?;
    let body = json!({ "targetDirectory": directory, "drain": drain, "formatType": "CANONICAL" });
    if !json {
        println!("Suspending job {job_id}.");
    }
    let location = trigger_and_wait(&endpoint, job_id, &format!("/v1/jobs/{job_id}/stop"), &body, json)?;
    if json {
        println!("{}", json!({ "jobid": job_id.to_string(), "savepoint": location, "drain": drain }));
    } else {
        println!("Savepoint completed. Path: {location}");
    }
    Ok(())
}

/// POSTs a trigger, then polls `/jobs/:id/savepoints/:trigger` until it completes; the location.
fn trigger_and_wait(
    endpoint: &Endpoint,
    job_id: JobId,
    path: &str,
    body: &Value,
    quiet: bool,
) -> Result<String, CliError> {
    let response = call(endpoint, "POST", path, Some(body))?;
    let trigger = match (response.status, response.json()["request-id"].as_str()) {
        (200 | 202, Some(trigger)) => trigger.to_string(),
        (status, _) => {
            let message = format!("savepoint of job {job_id} refused ({status}): {}", response.error_message());
            return Err(CliError::failed(message));
        }
    };
    if !quiet {
        println!("Waiting for response...");
    }
    let started = Instant::now();
    loop {
        let response = call(endpoint, "GET", &format!("/v1/jobs/{job_id}/savepoints/{trigger}"), None)?;
        if response.status != 200 {
            return Err(CliError::failed(format!("savepoint of job {job_id}: {}", response.error_message())));
        }
        let status = response.json();
        if status["status"]["id"] == "COMPLETED" {
            let operation = &status["operation"];
            return match (operation["location"].as_str(), operation["failure-cause"]["stack-trace"].as_str()) {
                (Some(location), _) => Ok(location.to_string()),
                (None, Some(cause)) => Err(CliError::failed(format!("savepoint of job {job_id} failed: {cause}"))),
                (None, None) => Err(CliError::failed(format!("savepoint of job {job_id} failed: {operation}"))),
            };
        }
        if started.elapsed() > TRIGGER_WAIT_MAX {
            let waited = TRIGGER_WAIT_MAX.as_secs();
            return Err(CliError::failed(format!("savepoint of job {job_id} not done after {waited} s")));
        }
        std::thread::sleep(TRIGGER_POLL_INTERVAL);
    }
}

/// How many TaskManagers the JobManager at `rest` (host:port) has registered.
pub fn registered_task_managers(rest: &str) -> Result<usize, String> {
    let endpoint = Endpoint::new(rest)?;
    let response = endpoint.request("GET", "/taskmanagers", None)?;
    let value: Value = serde_json::from_slice(&response.body).map_err(|error| error.to_string())?;
    Ok(value["taskmanagers"].as_array().map_or(0, Vec::len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_times_read_as_flinks_list_prints_them() {
        assert_eq!(utc_time(0), "01.01.1970 00:00:00");
        assert_eq!(utc_time(951_782_400_000), "29.02.2000 00:00:00");
        assert_eq!(utc_time(1_795_538_811_996), "24.11.2026 16:46:51", "the time of Flink's own `list` sample");
        assert_eq!(utc_time(-1_000), "31.12.1969 23:59:59");
    }

    #[test]
    fn the_job_table_has_a_title_rule_and_one_line_per_job_oldest_first() {
        let newer = json!({"jid": "b", "name": "two", "state": "RUNNING", "start-time": 2_000});
        let older = json!({"jid": "a", "name": "one", "state": "RESTARTING", "start-time": 1_000});
        let text = job_table("Running/Restarting Jobs", "none", &[&newer, &older]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "------------------ Running/Restarting Jobs -------------------");
        assert_eq!(lines[1], "01.01.1970 00:00:01 : a : one (RESTARTING)");
        assert_eq!(lines[2], "01.01.1970 00:00:02 : b : two (RUNNING)");
        assert_eq!(lines[3], "-".repeat(62));
        assert_eq!(job_table("T", "No running jobs.", &[]), "No running jobs.\n");
    }
}
