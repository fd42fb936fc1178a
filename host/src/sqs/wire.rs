//! The two SQS protocols on the wire. Requests of either become one shape, the JSON protocol's
//! (query parameters such as `Attribute.1.Name` are folded into `Attributes`, batch entries
//! into `Entries`); answers are built in that shape and written as JSON or, for the query
//! protocol, as XML in SQS's namespace. Message attributes and their MD5 live here too.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use md5::{Digest, Md5};
use serde_json::{Map, Value, json};

use super::error::{Code, SqsError};

pub const XML_NAMESPACE: &str = "http://queue.amazonaws.com/doc/2012-11-05/";

/// Which protocol a request spoke, so the answer speaks it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Json,
    Query,
}

/// Folds query parameters into the JSON protocol's shape.
pub fn params_from_query(pairs: Vec<(String, String)>) -> Map<String, Value> {
    // A tree of the dotted names first: `A.1.B` becomes {"A": {"1": {"B": ...}}}.
    let mut tree = Map::new();
    for (key, value) in pairs {
        let mut node = &mut tree;
        let parts: Vec<&str> = key.split('.').collect();
        let (last, path) = parts.split_last().expect("split yields one part at least");
        for part in path {
            let child = node
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            node = child.as_object_mut().expect("made an object above");
        }
        node.insert(last.to_string(), Value::String(value));
    }
    fold(tree)
}

/// The members of a numbered list (`{"1": a, "2": b}`), in their numeric order.
fn members(value: Value) -> Vec<Value> {
    let map = match value {
        Value::Object(map) => map,
        // An empty list is sent as the bare name with no value (`Entry=`).
        Value::String(s) if s.is_empty() => return Vec::new(),
        other => return vec![other],
    };
    let mut items: Vec<(u64, Value)> = map
        .into_iter()
        .filter_map(|(k, v)| k.parse().ok().map(|n| (n, v)))
        .collect();
    items.sort_by_key(|(n, _)| *n);
    items.into_iter().map(|(_, v)| v).collect()
}

fn fold(tree: Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in tree {
        match key.as_str() {
            "Attribute" => {
                let mut map = Map::new();
                for member in members(value) {
                    if let (Some(Value::String(name)), Some(v)) =
                        (member.get("Name").cloned(), member.get("Value").cloned())
                    {
                        map.insert(name, v);
                    }
                }
                out.insert("Attributes".into(), Value::Object(map));
            }
            "MessageAttribute" | "MessageSystemAttribute" => {
                let mut map = Map::new();
                for member in members(value) {
                    if let Some(Value::String(name)) = member.get("Name").cloned() {
                        map.insert(name, member.get("Value").cloned().unwrap_or(Value::Null));
                    }
                }
                out.insert(format!("{key}s"), Value::Object(map));
            }
            "AttributeName"
            | "MessageAttributeName"
            | "MessageSystemAttributeName"
            | "TagKey"
            | "AWSAccountId" => {
                out.insert(format!("{key}s"), Value::Array(members(value)));
            }
            "ActionName" => {
                out.insert("Actions".into(), Value::Array(members(value)));
            }
            // Tags (TagQueue, and CreateQueue's `tags`): `Tag.N.Key`, `Tag.N.Value`.
            "Tag" => {
                let mut map = Map::new();
                for member in members(value) {
                    if let Some(Value::String(name)) = member.get("Key").cloned() {
                        let value = member.get("Value").cloned();
                        map.insert(name, value.unwrap_or(Value::String(String::new())));
                    }
                }
                out.insert("Tags".into(), Value::Object(map));
            }
            k if k.ends_with("BatchRequestEntry") => {
                let entries = members(value)
                    .into_iter()
                    .map(|entry| match entry {
                        Value::Object(map) => Value::Object(fold(map)),
                        other => other,
                    })
                    .collect();
                out.insert("Entries".into(), Value::Array(entries));
            }
            _ => {
                out.insert(key, value);
            }
        }
    }
    out
}

/// A string parameter.
pub fn text<'a>(params: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, SqsError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(SqsError::invalid(format!("{name} must be a string"))),
    }
}

/// An integer parameter within `range` (JSON sends numbers, the query protocol strings).
pub fn integer(
    params: &Map<String, Value>,
    name: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>, SqsError> {
    let number = match params.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        Some(_) => None,
    };
    match number {
        Some(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(SqsError::invalid(format!(
            "Value {} for parameter {name} is invalid. Reason: it must be an integer from {} to {}.",
            params[name],
            range.start(),
            range.end()
        ))),
    }
}

/// A list-of-strings parameter.
pub fn strings(params: &Map<String, Value>, name: &str) -> Result<Vec<String>, SqsError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(Vec::new()),
        // The query protocol's empty list: the bare name.
        Some(Value::String(s)) if s.is_empty() => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| SqsError::invalid(format!("{name} must be a list of strings")))
            })
            .collect(),
        Some(_) => Err(SqsError::invalid(format!("{name} must be a list"))),
    }
}

/// A map-of-strings parameter (queue attributes).
pub fn string_map(
    params: &Map<String, Value>,
    name: &str,
) -> Result<BTreeMap<String, String>, SqsError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                Value::Number(n) => Ok((k.clone(), n.to_string())),
                _ => Err(SqsError::invalid(format!("{name}.{k} must be a string"))),
            })
            .collect(),
        Some(_) => Err(SqsError::invalid(format!("{name} must be a map"))),
    }
}

/// One SQS message attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    pub name: String,
    /// `String`, `Number` or `Binary`, optionally with `.custom-label`.
    pub data_type: String,
    /// The value's bytes: UTF-8 text for strings and numbers.
    pub value: Vec<u8>,
}

impl Attribute {
    fn is_binary(&self) -> bool {
        self.data_type.starts_with("Binary")
    }
}

/// Sluice attribute under which the SQS data type of attribute `name` is kept, when it is not
/// plain `String` (reserved prefix: producers cannot forge it).
fn type_key(name: &str) -> String {
    format!("sluice-sqs-type:{name}")
}

/// The prefix of the Sluice attributes the SQS endpoint keeps for itself; never shown as
/// message attributes.
const OWN_PREFIX: &str = "sluice-sqs-";

/// The Sluice attribute that keeps a message's `AWSTraceHeader` system attribute.
pub const TRACE_HEADER_KEY: &str = "sluice-sqs-system:AWSTraceHeader";
/// The Sluice attribute that keeps the `MessageDeduplicationId` a FIFO send gave (or the
/// body's SHA-256 under content-based deduplication).
pub const DEDUP_KEY: &str = "sluice-sqs-system:MessageDeduplicationId";
/// The Sluice attribute that keeps the `MessageGroupId` of a send to a standard queue (SQS fair
/// queues); FIFO queues' groups are Sluice groups.
pub const GROUP_KEY: &str = "sluice-sqs-system:MessageGroupId";

/// Reads `MessageSystemAttributes` of a send: SQS defines one, `AWSTraceHeader` (X-Ray's
/// trace header, a String), returned on receive as the message's `AWSTraceHeader` attribute.
pub fn trace_header(params: &Map<String, Value>) -> Result<Option<String>, SqsError> {
    let Some(value) = params.get("MessageSystemAttributes") else {
        return Ok(None);
    };
    let Value::Object(map) = value else {
        return Err(SqsError::invalid("MessageSystemAttributes must be a map"));
    };
    let mut header = None;
    for (name, value) in map {
        if name != "AWSTraceHeader" {
            return Err(SqsError::invalid(format!(
                "Message system attribute name `{name}` is invalid: the only one is AWSTraceHeader."
            )));
        }
        let data_type = value.get("DataType").and_then(Value::as_str);
        let text = value.get("StringValue").and_then(Value::as_str);
        match (data_type, text) {
            (Some("String"), Some(text)) if !text.is_empty() && text.len() <= 4096 => {
                header = Some(text.to_owned());
            }
            _ => {
                return Err(SqsError::invalid(
                    "AWSTraceHeader must be a String attribute with a StringValue of 1 to 4096 \
                     bytes (an X-Ray trace header, `Root=1-...;Parent=...;Sampled=1`)",
                ));
            }
        }
    }
    Ok(header)
}

/// Reads `MessageAttributes` of a send.
pub fn message_attributes(
    params: &Map<String, Value>,
    max_value_bytes: usize,
) -> Result<Vec<Attribute>, SqsError> {
    let Some(value) = params.get("MessageAttributes") else {
        return Ok(Vec::new());
    };
    let Value::Object(map) = value else {
        return Err(SqsError::invalid("MessageAttributes must be a map"));
    };
    if map.len() > 10 {
        return Err(SqsError::invalid(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [10].",
            map.len()
        )));
    }
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map {
        let bad = |why: &str| SqsError::invalid(format!("Message attribute `{name}`: {why}"));
        let valid_name = !name.is_empty()
            && name.len() <= 256
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            && !name.starts_with('.')
            && !name.ends_with('.')
            && !name.contains("..");
        if !valid_name {
            return Err(bad(
                "names are 1 to 256 of A-Z a-z 0-9 _ - . (no leading, trailing or double dot)",
            ));
        }
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("aws.") || lower.starts_with("amazon.") {
            return Err(bad("names starting with AWS. or Amazon. are reserved"));
        }
        if crate::store::is_reserved_attribute(name) {
            return Err(bad(&format!(
                "names starting with `{}` are reserved for Sluice itself; rename it",
                crate::store::RESERVED_ATTRIBUTE_PREFIX
            )));
        }
        let data_type = value
            .get("DataType")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("DataType is required"))?;
        let base = data_type.split('.').next().unwrap_or_default();
        if !matches!(base, "String" | "Number" | "Binary") || data_type.len() > 256 {
            return Err(bad(&format!(
                "DataType `{data_type}` is not String, Number or Binary (with an optional .label)"
            )));
        }
        let value = if base == "Binary" {
            let text = value
                .get("BinaryValue")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("a Binary attribute needs BinaryValue"))?;
            BASE64
                .decode(text)
                .map_err(|_| bad("BinaryValue is not base64"))?
        } else {
            let text = value
                .get("StringValue")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("a String or Number attribute needs StringValue"))?;
            if base == "Number" && text.trim().parse::<f64>().is_err() {
                return Err(bad(&format!("`{text}` is not a number")));
            }
            text.as_bytes().to_vec()
        };
        if value.is_empty() {
            return Err(bad("the value must not be empty"));
        }
        let stored = if base == "Binary" {
            BASE64.encode(&value).len()
        } else {
            value.len()
        };
        if stored > max_value_bytes {
            return Err(bad(&format!(
                "the value is longer than the {max_value_bytes} bytes this server keeps per attribute"
            )));
        }
        out.push(Attribute {
            name: name.clone(),
            data_type: data_type.to_owned(),
            value,
        });
    }
    Ok(out)
}

/// SQS attributes as Sluice attributes: the value as text (binary as base64) under the same
/// name, and the data type beside it unless it is plain `String`.
pub fn to_sluice(attributes: &[Attribute]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for a in attributes {
        let value = if a.is_binary() {
            BASE64.encode(&a.value)
        } else {
            String::from_utf8_lossy(&a.value).into_owned()
        };
        out.push((a.name.clone(), value));
        if a.data_type != "String" {
            out.push((type_key(&a.name), a.data_type.clone()));
        }
    }
    out
}

/// Sluice attributes as SQS attributes (the inverse of [`to_sluice`]); attributes set over
/// HTTP, and Sluice's own (dead-letter reason, attempts), are strings.
pub fn from_sluice(attributes: &[(String, String)]) -> Vec<Attribute> {
    let types: BTreeMap<&str, &str> = attributes
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("sluice-sqs-type:").map(|n| (n, v.as_str())))
        .collect();
    attributes
        .iter()
        .filter(|(k, _)| !k.starts_with(OWN_PREFIX))
        .map(|(name, value)| {
            let data_type = types.get(name.as_str()).copied().unwrap_or("String");
            let bytes = if data_type.starts_with("Binary") {
                BASE64
                    .decode(value)
                    .unwrap_or_else(|_| value.as_bytes().to_vec())
            } else {
                value.as_bytes().to_vec()
            };
            Attribute {
                name: name.clone(),
                data_type: data_type.to_owned(),
                value: bytes,
            }
        })
        .collect()
}

/// `MessageAttributes` of an answer.
pub fn attributes_json(attributes: &[Attribute]) -> Value {
    let mut map = Map::new();
    for a in attributes {
        let value = if a.is_binary() {
            json!({"DataType": a.data_type, "BinaryValue": BASE64.encode(&a.value)})
        } else {
            json!({"DataType": a.data_type, "StringValue": String::from_utf8_lossy(&a.value)})
        };
        map.insert(a.name.clone(), value);
    }
    Value::Object(map)
}

/// MD5 of a message body, as hex.
pub fn md5_hex(bytes: &[u8]) -> String {
    hex::encode(Md5::digest(bytes))
}

/// `MD5OfMessageAttributes` exactly as SQS computes it: attributes sorted by name, each as
/// length-prefixed (4 bytes, big-endian) name and data type, a transport byte (1 string or
/// number, 2 binary), and the length-prefixed value.
pub fn md5_of_attributes(attributes: &[Attribute]) -> String {
    let mut sorted: Vec<&Attribute> = attributes.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    let mut bytes = Vec::new();
    let field = |bytes: &mut Vec<u8>, part: &[u8]| {
        bytes.extend_from_slice(&(part.len() as u32).to_be_bytes());
        bytes.extend_from_slice(part);
    };
    for a in sorted {
        field(&mut bytes, a.name.as_bytes());
        field(&mut bytes, a.data_type.as_bytes());
        bytes.push(if a.is_binary() { 2 } else { 1 });
        field(&mut bytes, &a.value);
    }
    md5_hex(&bytes)
}

/// The operations whose query-protocol answer has a `<{op}Result>` element (their output shape
/// has a `resultWrapper` in SQS's model). Clients of that protocol look the element up by name
/// and fail without it (botocore before 1.31.57 with a `KeyError`), so it is written even when
/// the result is empty. The other operations answer with `ResponseMetadata` alone, as SQS does.
const WITH_RESULT: &[&str] = &[
    "CancelMessageMoveTask",
    "ChangeMessageVisibilityBatch",
    "CreateQueue",
    "DeleteMessageBatch",
    "GetQueueAttributes",
    "GetQueueUrl",
    "ListDeadLetterSourceQueues",
    "ListMessageMoveTasks",
    "ListQueueTags",
    "ListQueues",
    "ReceiveMessage",
    "SendMessage",
    "SendMessageBatch",
    "StartMessageMoveTask",
];

/// The XML answer of the query protocol for `op` with `result` (in the JSON shape).
pub fn xml_answer(op: &str, result: &Map<String, Value>, request_id: &str) -> String {
    let mut out = format!("<?xml version=\"1.0\"?><{op}Response xmlns=\"{XML_NAMESPACE}\">");
    if WITH_RESULT.contains(&op) || !result.is_empty() {
        if result.is_empty() {
            out.push_str(&format!("<{op}Result/>"));
        } else {
            out.push_str(&format!("<{op}Result>"));
            write_fields(&mut out, op, result);
            out.push_str(&format!("</{op}Result>"));
        }
    }
    out.push_str(&format!(
        "<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{op}Response>"
    ));
    out
}

fn write_fields(out: &mut String, op: &str, fields: &Map<String, Value>) {
    for (key, value) in fields {
        match (key.as_str(), value) {
            ("Attributes", Value::Object(map)) => {
                for (name, v) in map {
                    out.push_str("<Attribute><Name>");
                    out.push_str(&escape(name));
                    out.push_str("</Name><Value>");
                    out.push_str(&escape(&scalar(v)));
                    out.push_str("</Value></Attribute>");
                }
            }
            ("Tags", Value::Object(map)) => {
                for (name, v) in map {
                    out.push_str("<Tag><Key>");
                    out.push_str(&escape(name));
                    out.push_str("</Key><Value>");
                    out.push_str(&escape(&scalar(v)));
                    out.push_str("</Value></Tag>");
                }
            }
            ("MessageAttributes", Value::Object(map)) => {
                for (name, v) in map {
                    out.push_str("<MessageAttribute><Name>");
                    out.push_str(&escape(name));
                    out.push_str("</Name><Value>");
                    if let Value::Object(inner) = v {
                        write_fields(out, op, inner);
                    }
                    out.push_str("</Value></MessageAttribute>");
                }
            }
            (_, Value::Array(items)) => {
                let element = match key.as_str() {
                    "QueueUrls" | "queueUrls" => "QueueUrl".to_owned(),
                    "Messages" => "Message".to_owned(),
                    "Successful" => format!("{op}ResultEntry"),
                    "Failed" => "BatchResultErrorEntry".to_owned(),
                    "Results" => "ListMessageMoveTasksResultEntry".to_owned(),
                    other => other.to_owned(),
                };
                for item in items {
                    out.push_str(&format!("<{element}>"));
                    match item {
                        Value::Object(inner) => write_fields(out, op, inner),
                        other => out.push_str(&escape(&scalar(other))),
                    }
                    out.push_str(&format!("</{element}>"));
                }
            }
            (_, Value::Object(inner)) => {
                out.push_str(&format!("<{key}>"));
                write_fields(out, op, inner);
                out.push_str(&format!("</{key}>"));
            }
            (_, Value::Null) => {}
            (_, other) => {
                out.push_str(&format!("<{key}>{}</{key}>", escape(&scalar(other))));
            }
        }
    }
}

fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Escapes text for XML; carriage returns too, so they survive the parser's newline handling.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
    out
}

/// The XML error answer of the query protocol.
pub fn xml_error(code: Code, message: &str, request_id: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"{XML_NAMESPACE}\"><Error><Type>{}</Type>\
         <Code>{}</Code><Message>{}</Message><Detail/></Error><RequestId>{request_id}</RequestId>\
         </ErrorResponse>",
        code.fault(),
        code.query_code(),
        escape(message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_fold_into_the_json_shape() {
        let pairs = [
            ("Action", "SendMessageBatch"),
            ("QueueUrl", "http://h/000000000000/q"),
            ("SendMessageBatchRequestEntry.2.Id", "b"),
            ("SendMessageBatchRequestEntry.1.Id", "a"),
            ("SendMessageBatchRequestEntry.1.MessageBody", "hi"),
            (
                "SendMessageBatchRequestEntry.1.MessageAttribute.1.Name",
                "n",
            ),
            (
                "SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.DataType",
                "Number",
            ),
            (
                "SendMessageBatchRequestEntry.1.MessageAttribute.1.Value.StringValue",
                "3",
            ),
            ("Attribute.1.Name", "VisibilityTimeout"),
            ("Attribute.1.Value", "10"),
            ("AttributeName.2", "B"),
            ("AttributeName.1", "A"),
        ];
        let params = params_from_query(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        assert_eq!(
            Value::Object(params),
            json!({
                "Action": "SendMessageBatch",
                "QueueUrl": "http://h/000000000000/q",
                "Entries": [
                    {"Id": "a", "MessageBody": "hi",
                     "MessageAttributes": {"n": {"DataType": "Number", "StringValue": "3"}}},
                    {"Id": "b"},
                ],
                "Attributes": {"VisibilityTimeout": "10"},
                "AttributeNames": ["A", "B"],
            })
        );
    }

    #[test]
    fn attributes_round_trip_through_sluice_attributes() {
        let attrs = vec![
            Attribute {
                name: "s".into(),
                data_type: "String".into(),
                value: b"text".to_vec(),
            },
            Attribute {
                name: "n".into(),
                data_type: "Number.int".into(),
                value: b"42".to_vec(),
            },
            Attribute {
                name: "b".into(),
                data_type: "Binary".into(),
                value: vec![0, 255, 7],
            },
        ];
        let stored = to_sluice(&attrs);
        assert!(stored.contains(&("s".into(), "text".into())));
        assert!(!stored.iter().any(|(k, _)| k == "sluice-sqs-type:s"));
        let mut back = from_sluice(&stored);
        back.sort_by(|a, b| a.name.cmp(&b.name));
        let mut want = attrs.clone();
        want.sort_by(|a, b| a.name.cmp(&b.name));
        assert_eq!(back, want);
    }

    /// Values botocore's own MD5 check accepts (computed with its algorithm).
    #[test]
    fn md5_of_attributes_matches_sqs() {
        assert_eq!(
            md5_hex(b"Process order #12345"),
            hex::encode(Md5::digest(b"Process order #12345"))
        );
        let one = [Attribute {
            name: "foo".into(),
            data_type: "String".into(),
            value: b"bar".to_vec(),
        }];
        let mut bytes = Vec::new();
        for part in [&b"foo"[..], b"String"] {
            bytes.extend_from_slice(&(part.len() as u32).to_be_bytes());
            bytes.extend_from_slice(part);
        }
        bytes.push(1);
        bytes.extend_from_slice(&3u32.to_be_bytes());
        bytes.extend_from_slice(b"bar");
        assert_eq!(md5_of_attributes(&one), hex::encode(Md5::digest(&bytes)));
    }

    #[test]
    fn empty_results_keep_their_result_element() {
        let empty = Map::new();
        for op in ["ReceiveMessage", "ListQueues", "GetQueueAttributes"] {
            let xml = xml_answer(op, &empty, "rid");
            assert!(
                xml.contains(&format!("<{op}Result/><ResponseMetadata>")),
                "{xml}"
            );
        }
        // Operations without an output in SQS's model answer with the metadata alone.
        let xml = xml_answer("DeleteMessage", &empty, "rid");
        assert!(!xml.contains("Result"), "{xml}");
    }

    #[test]
    fn answers_are_xml_in_the_sqs_namespace() {
        let result = json!({
            "Messages": [{"MessageId": "1", "Body": "a<b",
                          "Attributes": {"ApproximateReceiveCount": "1"}}],
        });
        let xml = xml_answer("ReceiveMessage", result.as_object().unwrap(), "rid");
        assert!(xml.starts_with(
            "<?xml version=\"1.0\"?><ReceiveMessageResponse \
             xmlns=\"http://queue.amazonaws.com/doc/2012-11-05/\"><ReceiveMessageResult><Message>"
        ));
        for part in [
            "<Attribute><Name>ApproximateReceiveCount</Name><Value>1</Value></Attribute>",
            "<Body>a&lt;b</Body>",
            "<MessageId>1</MessageId>",
            "</Message></ReceiveMessageResult><ResponseMetadata><RequestId>rid</RequestId>\
             </ResponseMetadata></ReceiveMessageResponse>",
        ] {
            assert!(xml.contains(part), "{part} in {xml}");
        }
    }
}
