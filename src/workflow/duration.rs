//! Durations as written in workflow files: `500ms`, `30s`, `2m`, `1h`, `7d`.

use std::time::Duration;

/// Parses a duration with a unit; a bare number is refused so that `30`
/// is never silently read as seconds or milliseconds.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("duration is empty; write for example `30s`, `5m` or `7d`".into());
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "duration `{text}` has no unit; write for example `{text}s` or `{text}ms`"
        ));
    }
    humantime::parse_duration(text).map_err(|_| {
        format!("`{text}` is not a duration; write for example `500ms`, `30s`, `2m`, `1h` or `7d`")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_units() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn refuses_bare_numbers_and_garbage() {
        assert!(parse("30").unwrap_err().contains("no unit"));
        assert!(parse("30").unwrap_err().contains("`30s`"));
        assert!(parse(" ").unwrap_err().starts_with("duration is empty"));
        assert!(parse("soon").is_err());
    }
}
