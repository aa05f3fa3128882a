//! The end of a run: a readable table for people and one JSON line for
//! scripts (always the last line of standard output).

use serde_json::{Map, Value};

use crate::stats::Percentiles;

/// Named results of a run, in the order they were added.
#[derive(Debug, Clone)]
pub struct Report {
    pub scenario: &'static str,
    rows: Vec<(String, Value)>,
}

impl Report {
    pub fn new(scenario: &'static str) -> Self {
        Self {
            scenario,
            rows: Vec::new(),
        }
    }

    /// Adds one result.
    pub fn add(&mut self, name: impl Into<String>, value: impl Into<Value>) -> &mut Self {
        self.rows.push((name.into(), value.into()));
        self
    }

    /// Adds `{prefix}_p50_ms` … `{prefix}_max_ms` and `{prefix}_count`.
    pub fn latency(&mut self, prefix: &str, p: Percentiles) -> &mut Self {
        let round = |v: f64| (v * 1000.0).round() / 1000.0;
        self.add(format!("{prefix}_count"), p.count)
            .add(format!("{prefix}_p50_ms"), round(p.p50_ms))
            .add(format!("{prefix}_p90_ms"), round(p.p90_ms))
            .add(format!("{prefix}_p99_ms"), round(p.p99_ms))
            .add(format!("{prefix}_p999_ms"), round(p.p999_ms))
            .add(format!("{prefix}_max_ms"), round(p.max_ms))
    }

    /// A result by name (tests and callers that check goals use it).
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.rows.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// A numeric result by name.
    pub fn number(&self, name: &str) -> Option<f64> {
        self.get(name).and_then(Value::as_f64)
    }

    /// The table, one result per line.
    pub fn table(&self) -> String {
        let width = self.rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        let mut out = format!("== {} ==\n", self.scenario);
        for (name, value) in &self.rows {
            let shown = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => match n.as_f64() {
                    Some(f) if n.is_f64() => format!("{f:.3}"),
                    _ => n.to_string(),
                },
                other => other.to_string(),
            };
            out.push_str(&format!("{name:<width$}  {shown}\n"));
        }
        out
    }

    /// The JSON summary line.
    pub fn json_line(&self) -> String {
        let mut map = Map::new();
        map.insert("scenario".into(), Value::from(self.scenario));
        for (name, value) in &self.rows {
            map.insert(name.clone(), value.clone());
        }
        Value::Object(map).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_and_json_carry_the_same_results() {
        let mut r = Report::new("idle");
        r.add("opened", 10u64).add("cpu_percent", 1.23456);
        let table = r.table();
        assert!(table.contains("opened       10"), "{table}");
        assert!(table.contains("cpu_percent  1.235"), "{table}");
        let json: Value = serde_json::from_str(&r.json_line()).unwrap();
        assert_eq!(json["scenario"], "idle");
        assert_eq!(json["opened"], 10);
        assert_eq!(r.number("opened"), Some(10.0));
    }
}
