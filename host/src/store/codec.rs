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

pub fn decode_settings(queue: &str, stored: &str) -> Result<QueueSettings> {
    serde_json::from_str(stored)
        .map_err(|e| Error::Unavailable(format!("settings of queue `{queue}` are unreadable: {e}")))
}
