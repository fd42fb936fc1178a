//! The benchmark's results: one row per figure, printed as a table and written as JSON.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// One measured figure, with the target it is judged against when the issue set one.
pub struct Row {
    pub key: String,
    pub value: f64,
    pub unit: &'static str,
    /// (comparison, threshold): `">="` or `"<="`.
    pub target: Option<(&'static str, f64)>,
}

#[derive(Default)]
pub struct Report {
    pub rows: Vec<Row>,
}

impl Report {
    pub fn add(&mut self, key: impl Into<String>, value: f64, unit: &'static str) {
        self.rows.push(Row {
            key: key.into(),
            value,
            unit,
            target: None,
        });
    }

    /// The value of figure `key`, if a phase of this run reported it: how a phase uses the
    /// figure of one that ran before it.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.rows
            .iter()
            .rev()
            .find(|row| row.key == key)
            .map(|row| row.value)
    }

    pub fn target(
        &mut self,
        key: impl Into<String>,
        value: f64,
        unit: &'static str,
        cmp: &'static str,
        threshold: f64,
    ) {
        self.rows.push(Row {
            key: key.into(),
            value,
            unit,
            target: Some((cmp, threshold)),
        });
    }

    /// p50/p99/p99.9/max of a histogram of microseconds, as milliseconds.
    pub fn latency(&mut self, key: &str, hist: &Histogram<u64>, p99_target_ms: Option<f64>) {
        let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
        self.add(format!("{key}.p50"), ms(0.50), "ms");
        match p99_target_ms {
            Some(t) => self.target(format!("{key}.p99"), ms(0.99), "ms", "<=", t),
            None => self.add(format!("{key}.p99"), ms(0.99), "ms"),
        }
        self.add(format!("{key}.p999"), ms(0.999), "ms");
        self.add(format!("{key}.max"), hist.max() as f64 / 1000.0, "ms");
    }

    pub fn print(&self) {
        println!(
            "{:<44} {:>14} {:<6} {:>14}  met",
            "figure", "value", "unit", "target"
        );
        for row in &self.rows {
            let target = row
                .target
                .map(|(cmp, t)| format!("{cmp} {}", fmt(t)))
                .unwrap_or_default();
            let met = match row.target {
                Some(_) if met(row) => "yes",
                Some(_) => "NO",
                None => "",
            };
            println!(
                "{:<44} {:>14} {:<6} {:>14}  {met}",
                row.key,
                fmt(row.value),
                row.unit,
                target
            );
        }
    }

    pub fn json(&self, config: Value, elapsed: Duration) -> Value {
        let results: serde_json::Map<String, Value> = self
            .rows
            .iter()
            .map(|row| {
                let mut v = json!({"value": row.value, "unit": row.unit});
                if let Some((cmp, t)) = row.target {
                    v["target"] = json!(format!("{cmp} {t}"));
                    v["met"] = json!(met(row));
                }
                (row.key.clone(), v)
            })
            .collect();
        json!({
            "sluice_version": env!("CARGO_PKG_VERSION"),
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            "elapsed_s": elapsed.as_secs_f64(),
            "config": config,
            "results": results,
        })
    }
}

fn met(row: &Row) -> bool {
    match row.target {
        Some((">=", t)) => row.value >= t,
        Some((_, t)) => row.value <= t,
        None => true,
    }
}

fn fmt(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}
