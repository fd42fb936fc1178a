//! Topics, apart from any database: what a topic and a subscription are, where a new
//! subscription starts, and subscription filters (parsing and matching attributes). The
//! backends store them and fan published messages out with these rules.
//!
//! A topic keeps every message published to it for its retention, numbered 1, 2, 3, … (its
//! sequence). Each subscription copies the topic's messages that match its filter into one
//! queue, in sequence order, and remembers the last sequence it has dealt with (its cursor).
//! Publishing copies a message into every subscription that has caught up, in the publish's
//! transaction; a subscription still replaying history is moved on by the catch-up
//! (`crate::fanout`) instead, one chunk per transaction, so each message reaches each queue
//! exactly once and in order, whichever of the two copies it.

use std::collections::HashMap;

use serde_json::Value;

use super::{Error, NewMessage, Result, validate_queue_name};

/// The most messages one catch-up transaction copies.
pub const CATCH_UP_CHUNK: u64 = 500;

/// Attributes every copy carries: the topic, and its sequence number there (for consumers that
/// want to deduplicate or order across a redelivery).
pub const ATTR_TOPIC: &str = "sluice-topic";
pub const ATTR_TOPIC_SEQ: &str = "sluice-topic-seq";

/// The longest a topic keeps its messages (14 days, SQS's longest retention).
pub const MAX_TOPIC_RETENTION_MS: u64 = 14 * 24 * 60 * 60 * 1000;

/// A topic as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicRecord {
    pub name: String,
    pub retention_ms: u64,
    pub created_at_ms: u64,
    /// The sequence number of the newest message published (0: none yet).
    pub head: u64,
    pub subscriptions: Vec<SubscriptionRecord>,
}

/// A topic's subscription: which of its messages go into which queue.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionRecord {
    pub topic: String,
    pub queue: String,
    /// The filter as given (an object; `{}` matches everything), already checked by
    /// [`Filter::parse`].
    pub filter: Value,
    /// The last sequence number this subscription has copied or passed over.
    pub cursor: u64,
    pub created_at_ms: u64,
}

/// Where a new subscription starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFrom {
    /// With the next message published.
    Latest,
    /// With the oldest message the topic still keeps.
    Earliest,
    /// With the first message published at or after this time (ms since the epoch).
    Time(u64),
}

/// One message published: its sequence number in the topic and how many queues it was
/// copied into at once (subscriptions still replaying get it later).
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub seq: u64,
    pub copies: u64,
}

/// Checks a topic's name (the rules of queue names) and retention.
pub fn validate_topic(name: &str, retention_ms: u64) -> Result<()> {
    validate_queue_name(name)?;
    if retention_ms == 0 || retention_ms > MAX_TOPIC_RETENTION_MS {
        return Err(Error::InvalidTopic(format!(
            "retention_ms must be 1 to {MAX_TOPIC_RETENTION_MS} (14 days), not {retention_ms}"
        )));
    }
    Ok(())
}

/// One attribute's condition.
#[derive(Debug, Clone, PartialEq)]
enum Condition {
    Exact(String),
    Prefix(String),
    AnythingBut(Vec<String>),
    Exists(bool),
}

/// A subscription's filter: every condition must hold (an empty filter matches everything).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    conditions: Vec<(String, Condition)>,
}

impl Filter {
    /// Reads a filter: an object mapping an attribute to a string (exact match), or to one of
    /// `{"prefix": "…"}`, `{"anything_but": ["…", …]}`, `{"exists": true | false}`.
    pub fn parse(value: &Value) -> Result<Filter> {
        let bad = |what: String| Err(Error::InvalidTopic(format!("filter: {what}")));
        let Value::Object(map) = value else {
            return bad(format!(
                "must be an object mapping attribute names to conditions, not {value}"
            ));
        };
        let mut conditions = Vec::with_capacity(map.len());
        for (name, condition) in map {
            let condition = match condition {
                Value::String(s) => Condition::Exact(s.clone()),
                Value::Object(o) if o.len() == 1 => match o.iter().next() {
                    Some((k, Value::String(p))) if k == "prefix" => Condition::Prefix(p.clone()),
                    Some((k, Value::Array(list))) if k == "anything_but" => {
                        let mut values = Vec::with_capacity(list.len());
                        for v in list {
                            match v {
                                Value::String(s) => values.push(s.clone()),
                                other => {
                                    return bad(format!(
                                        "`{name}`: anything_but takes strings, not {other}"
                                    ));
                                }
                            }
                        }
                        Condition::AnythingBut(values)
                    }
                    Some((k, Value::Bool(b))) if k == "exists" => Condition::Exists(*b),
                    _ => {
                        return bad(format!(
                            "`{name}`: unknown condition {condition}; use a string, \
                             {{\"prefix\": \"…\"}}, {{\"anything_but\": [\"…\"]}} or \
                             {{\"exists\": true}}"
                        ));
                    }
                },
                other => {
                    return bad(format!(
                        "`{name}`: unknown condition {other}; use a string, \
                         {{\"prefix\": \"…\"}}, {{\"anything_but\": [\"…\"]}} or \
                         {{\"exists\": true}}"
                    ));
                }
            };
            conditions.push((name.clone(), condition));
        }
        Ok(Filter { conditions })
    }

    /// Whether a message with these attributes passes.
    pub fn matches(&self, attributes: &[(String, String)]) -> bool {
        self.conditions.iter().all(|(name, condition)| {
            let value = attributes
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str());
            match (condition, value) {
                (Condition::Exists(wanted), value) => value.is_some() == *wanted,
                (_, None) => false,
                (Condition::Exact(s), Some(v)) => v == s,
                (Condition::Prefix(p), Some(v)) => v.starts_with(p.as_str()),
                (Condition::AnythingBut(list), Some(v)) => !list.iter().any(|s| s == v),
            }
        })
    }
}

/// The attributes of a topic's message as copied into a subscriber's queue.
pub fn copy_attributes(
    topic: &str,
    seq: u64,
    attributes: &[(String, String)],
) -> Vec<(String, String)> {
    let mut copied = attributes.to_vec();
    copied.push((ATTR_TOPIC.into(), topic.to_owned()));
    copied.push((ATTR_TOPIC_SEQ.into(), seq.to_string()));
    copied
}

/// The fan-out of one publish, decided here for both backends: each message takes the topic's
/// next sequence number, and a copy goes to every subscription that has caught up (its cursor
/// at the head) and whose filter the message passes. A subscription that was caught up stays
/// caught up; one still replaying is left to the catch-up. The backend stores the numbered
/// messages, enqueues the copies and moves the head and the caught-up cursors.
#[derive(Debug)]
pub struct FanOut<'a> {
    topic: &'a str,
    head: u64,
    subscriptions: Vec<(String, Filter, u64)>,
    copies: HashMap<String, Vec<NewMessage>>,
    published: Vec<Published>,
}

/// What a publish's [`FanOut`] came to.
#[derive(Debug)]
pub struct FannedOut {
    /// The topic's new head (its last sequence number).
    pub head: u64,
    /// The copies, by queue, in sequence order.
    pub copies: HashMap<String, Vec<NewMessage>>,
    /// The subscriptions (by queue) now at the new head: their cursors move to it.
    pub caught_up: Vec<String>,
    /// Per message, its sequence number and how many copies it made.
    pub published: Vec<Published>,
}

impl<'a> FanOut<'a> {
    /// A publish to `topic`, whose head is `head`, with its subscriptions as stored.
    pub fn new(topic: &'a str, head: u64, subscriptions: Vec<SubscriptionRecord>) -> Result<Self> {
        let subscriptions = subscriptions
            .into_iter()
            .map(|s| Ok((s.queue, Filter::parse(&s.filter)?, s.cursor)))
            .collect::<Result<_>>()?;
        Ok(FanOut {
            topic,
            head,
            subscriptions,
            copies: HashMap::new(),
            published: Vec::new(),
        })
    }

    /// Numbers the next message and fans it out; returns its sequence number.
    pub fn add(&mut self, m: &NewMessage) -> u64 {
        let seq = self.head + 1;
        let mut copies = 0;
        for (queue, filter, cursor) in self.subscriptions.iter_mut() {
            if *cursor != self.head {
                continue;
            }
            *cursor = seq;
            if filter.matches(&m.attributes) {
                self.copies
                    .entry(queue.clone())
                    .or_default()
                    .push(NewMessage {
                        attributes: copy_attributes(self.topic, seq, &m.attributes),
                        ..m.clone()
                    });
                copies += 1;
            }
        }
        self.head = seq;
        self.published.push(Published { seq, copies });
        seq
    }

    pub fn finish(self) -> FannedOut {
        let head = self.head;
        FannedOut {
            head,
            copies: self.copies,
            caught_up: self
                .subscriptions
                .into_iter()
                .filter(|(_, _, cursor)| *cursor == head)
                .map(|(queue, _, _)| queue)
                .collect(),
            published: self.published,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn filters_match_exact_prefix_anything_but_and_exists() {
        let filter = Filter::parse(&json!({
            "kind": "order",
            "region": {"prefix": "eu-"},
            "tier": {"anything_but": ["free", "trial"]},
            "vip": {"exists": true},
            "test": {"exists": false},
        }))
        .unwrap();
        let good = [
            ("kind", "order"),
            ("region", "eu-west"),
            ("tier", "gold"),
            ("vip", ""),
        ];
        assert!(filter.matches(&attrs(&good)));
        for (i, bad) in [
            ("kind", "refund"),
            ("region", "us-east"),
            ("tier", "free"),
            ("vip", "x"),
        ]
        .into_iter()
        .enumerate()
        {
            let mut a = attrs(&good);
            if bad.0 == "vip" {
                a.retain(|(k, _)| k != "vip");
            } else {
                a[i].1 = bad.1.to_string();
            }
            assert!(!filter.matches(&a), "{bad:?}");
        }
        let mut with_test = attrs(&good);
        with_test.push(("test".into(), "1".into()));
        assert!(!filter.matches(&with_test));
        // A condition on a missing attribute fails, except `exists: false`.
        assert!(!filter.matches(&attrs(&[("vip", "1")])));
        assert!(Filter::parse(&json!({})).unwrap().matches(&[]));
    }

    #[test]
    fn bad_filters_say_what_is_allowed() {
        for bad in [
            json!([]),
            json!({"a": 1}),
            json!({"a": {"suffix": "x"}}),
            json!({"a": {"anything_but": [1]}}),
            json!({"a": {"prefix": "x", "exists": true}}),
        ] {
            let err = Filter::parse(&bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid topic: filter: "), "{err}");
        }
    }

    #[test]
    fn a_publish_copies_to_caught_up_subscriptions_whose_filter_passes() {
        let sub = |queue: &str, filter: Value, cursor: u64| SubscriptionRecord {
            topic: "t".into(),
            queue: queue.into(),
            filter,
            cursor,
            created_at_ms: 0,
        };
        let mut fan = FanOut::new(
            "t",
            10,
            vec![
                sub("all", json!({}), 10),
                sub("eu", json!({"region": {"prefix": "eu-"}}), 10),
                sub("replaying", json!({}), 4),
            ],
        )
        .unwrap();
        let message = |region: &str| NewMessage {
            attributes: attrs(&[("region", region)]),
            ..NewMessage::default()
        };
        assert_eq!(fan.add(&message("eu-west")), 11);
        assert_eq!(fan.add(&message("us-east")), 12);
        let done = fan.finish();
        assert_eq!(done.head, 12);
        assert_eq!(
            done.published,
            [
                Published { seq: 11, copies: 2 },
                Published { seq: 12, copies: 1 }
            ]
        );
        assert_eq!(done.copies["all"].len(), 2);
        assert_eq!(done.copies["eu"].len(), 1);
        assert_eq!(
            done.copies["eu"][0].attributes,
            attrs(&[
                ("region", "eu-west"),
                ("sluice-topic", "t"),
                ("sluice-topic-seq", "11")
            ])
        );
        assert!(!done.copies.contains_key("replaying"));
        let mut caught_up = done.caught_up;
        caught_up.sort();
        assert_eq!(caught_up, ["all", "eu"]);
    }
}
