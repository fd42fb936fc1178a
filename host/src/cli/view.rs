//! How the CLI shows the API's answers to people: aligned tables, `key  value` lists, times,
//! durations and counts. `--json` bypasses all of it and prints the answer as it came.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::Value;

/// Which side of its column a cell hugs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table whose columns are as wide as their widest cell, so every value sits under its
/// header whatever its length.
#[derive(Debug)]
pub struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[(&'static str, Align)]) -> Table {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, (header, _))| {
                self.rows
                    .iter()
                    .filter_map(|row| row.get(i))
                    .map(|cell| cell.chars().count())
                    .chain([header.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<&str>| {
            let mut out = String::new();
            for (i, cell) in cells.into_iter().enumerate() {
                if i > 0 {
                    out.push_str("  ");
                }
                let pad = widths[i].saturating_sub(cell.chars().count());
                match self.columns[i].1 {
                    Align::Left => {
                        out.push_str(cell);
                        out.push_str(&" ".repeat(pad));
                    }
                    Align::Right => {
                        out.push_str(&" ".repeat(pad));
                        out.push_str(cell);
                    }
                }
            }
            out.trim_end().to_owned() + "\n"
        };
        let mut out = line(self.columns.iter().map(|(h, _)| *h).collect());
        for row in &self.rows {
            let cells = (0..self.columns.len())
                .map(|i| row.get(i).map(String::as_str).unwrap_or(""))
                .collect();
            out.push_str(&line(cells));
        }
        out
    }
}

/// `key  value` lines with the values lined up.
pub fn pairs(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k:<width$}  {v}\n"))
        .collect()
}

/// A time in milliseconds since the epoch, as UTC RFC 3339 (`2026-11-23T18:09:01.123Z`).
pub fn time(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// A JSON time in milliseconds, or `-`.
pub fn time_of(value: &Value) -> String {
    value.as_u64().map(time).unwrap_or_else(|| "-".into())
}

/// Milliseconds as `250ms`, `30s`, `1h 5m`: whole seconds once past a minute.
pub fn millis(ms: u64) -> String {
    let ms = if ms >= 60_000 { ms - ms % 1000 } else { ms };
    humantime::format_duration(Duration::from_millis(ms)).to_string()
}

/// A JSON duration in milliseconds, or `-` when absent.
pub fn millis_of(value: &Value) -> String {
    value.as_u64().map(millis).unwrap_or_else(|| "-".into())
}

/// Bytes as `512 B`, `256.0 KiB`, `12.0 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// A JSON size in bytes, or `-` when absent.
pub fn bytes_of(value: &Value) -> String {
    value.as_u64().map(bytes).unwrap_or_else(|| "-".into())
}

/// A JSON scalar as plain text: strings without quotes, null as `-`.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(256 * 1024), "256.0 KiB");
        assert_eq!(bytes(12 * 1024 * 1024 + 512 * 1024), "12.5 MiB");
        assert_eq!(bytes_of(&Value::Null), "-");
    }

    #[test]
    fn numbers_line_up_under_their_headers_whatever_their_width() {
        let mut table = Table::new(&[("QUEUE", Align::Left), ("VISIBLE", Align::Right)]);
        table.row(vec!["a".into(), "7".into()]);
        table.row(vec!["a-much-longer-name".into(), "123456789012".into()]);
        let text = table.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        // Every line ends where the widest cell of the last column ends.
        let ends: Vec<usize> = lines.iter().map(|l| l.len()).collect();
        assert!(ends.iter().all(|e| *e == ends[0]), "{text}");
        assert!(lines[1].ends_with(" 7"));
        assert!(lines[0].starts_with("QUEUE "));
    }

    #[test]
    fn times_and_durations_read_as_people_write_them() {
        assert_eq!(time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(millis(250), "250ms");
        assert_eq!(millis(30_000), "30s");
        assert_eq!(millis(3_900_123), "1h 5m");
        assert_eq!(text(&Value::Null), "-");
        assert_eq!(text(&serde_json::json!("x")), "x");
    }
}
