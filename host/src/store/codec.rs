//! How both backends keep structured values in a column: attributes as compact JSON
//! `[["name","value"],...]` (NULL when there are none) and queue settings as JSON.

use super::{Error, QueueSettings, Result};

pub fn encode_attributes(attributes: &[(String, String)]) -> Result<Option<String>> {
    if attributes.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(attributes)
        .map(Some)
        .map_err(|e| Error::Unavailable(format!("cannot encode attributes: {e}")))
}

pub fn decode_attributes(stored: Option<&str>) -> Result<Vec<(String, String)>> {
    match stored {
        None => Ok(Vec::new()),
        Some(json) => serde_json::from_str(json)
            .map_err(|e| Error::Unavailable(format!("stored attributes are unreadable: {e}"))),
    }
}

pub fn encode_settings(settings: &QueueSettings) -> Result<String> {
    serde_json::to_string(settings).map_err(|e| Error::InvalidSettings(e.to_string()))
}

/// Settings as stored. Those stored before the SQS endpoint's own queue attributes moved into
/// its extension kept them beside the others (`delay_ms`, `receive_wait_ms`): they are read
/// into the extension, where the next write of the settings stores them.
pub fn decode_settings(queue: &str, stored: &str) -> Result<QueueSettings> {
    let unreadable = |e: serde_json::Error| {
        Error::Unavailable(format!("settings of queue `{queue}` are unreadable: {e}"))
    };
    // Settings read on the message path (PostgreSQL reads them in each settle) skip the detour
    // through a JSON value unless they name one of the old fields somewhere.
    if !LEGACY_SQS_FIELDS.iter().any(|field| stored.contains(field)) {
        return serde_json::from_str(stored).map_err(unreadable);
    }
    let mut value: serde_json::Value = serde_json::from_str(stored).map_err(unreadable)?;
    if let Some(settings) = value.as_object_mut() {
        for field in LEGACY_SQS_FIELDS {
            let Some(legacy) = settings.remove(field) else {
                continue;
            };
            // Zero is the default, which the extension leaves out.
            if legacy.as_u64().is_none_or(|v| v == 0) {
                continue;
            }
            let extensions = settings
                .entry("extensions")
                .or_insert_with(|| serde_json::json!({}));
            if let Some(sqs) = extensions
                .as_object_mut()
                .map(|e| e.entry("sqs").or_insert_with(|| serde_json::json!({})))
                .and_then(serde_json::Value::as_object_mut)
            {
                sqs.entry(field).or_insert(legacy);
            }
        }
    }
    serde_json::from_value(value).map_err(unreadable)
}

/// The SQS queue attributes once stored among a queue's own settings.
const LEGACY_SQS_FIELDS: [&str; 2] = ["delay_ms", "receive_wait_ms"];

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings stored when the SQS defaults sat beside the others read with them in the SQS
    /// endpoint's extension, beside what it already kept there; zeros are defaults and vanish.
    #[test]
    fn settings_stored_with_the_sqs_defaults_beside_the_others_read_them_into_the_extension() {
        let stored = r#"{"visibility_timeout_ms": 5000, "delay_ms": 30000, "receive_wait_ms": 0,
            "extensions": {"sqs": {"tags": {"team": "a"}}}}"#;
        let settings = decode_settings("q", stored).unwrap();
        assert_eq!(settings.visibility_timeout_ms, 5000);
        assert_eq!(
            settings.extensions["sqs"],
            serde_json::json!({"tags": {"team": "a"}, "delay_ms": 30000})
        );
        let plain = decode_settings("q", r#"{"delay_ms": 0}"#).unwrap();
        assert!(plain.extensions.is_empty(), "{:?}", plain.extensions);
        let round_trip = decode_settings("q", &encode_settings(&settings).unwrap()).unwrap();
        assert_eq!(round_trip, settings);
    }
}
