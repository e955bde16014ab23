//! Placeholder with the agreed interface; replaced by the config module.
pub mod units {
    use crate::time::Duration;
    pub fn parse_duration(text: &str) -> Result<Duration, String> {
        let t = text.trim();
        if let Some(n) = t.strip_suffix("ms") {
            return n.trim().parse::<u64>().map(Duration::from_millis).map_err(|e| e.to_string());
        }
        if let Some(n) = t.strip_suffix('s') {
            return n.trim().parse::<u64>().map(Duration::from_secs).map_err(|e| e.to_string());
        }
        t.parse::<u64>().map(Duration::from_millis).map_err(|e| e.to_string())
    }
}
