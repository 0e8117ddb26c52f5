//! What a scenario found: named figures, each with its target (if it has one) and whether it
//! met it; printed as a table for people and as JSON for scripts.

use serde::Serialize;
use serde_json::Value;

/// One measured figure of a scenario.
///
/// Exists so that every number a scenario prints carries its target and verdict with it: the
/// quick test asserts on `pass`, `RELIABILITY.md` is written from the same values.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// Stable key, e.g. `one_instance.peak_per_account`.
    pub name: String,
    /// The measured value (number, text or list).
    pub value: Value,
    /// The target in words (`≤ 2`, `0`, `alive`); `None` for figures that are only reported.
    pub target: Option<String>,
    /// Whether the value meets the target; `None` without a target.
    pub pass: Option<bool>,
}

/// Everything one scenario found.
///
/// Exists as the unit of output: one per scenario run, in the table and in the JSON.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioReport {
    /// `R1` … `R6`, `S1`.
    pub id: String,
    /// What it does, in a few words.
    pub title: String,
    /// The scale and settings it ran with.
    pub params: Vec<(String, String)>,
    /// The figures, in the order measured.
    pub figures: Vec<Figure>,
    /// Wall time of the scenario, seconds.
    pub elapsed_s: f64,
}

impl ScenarioReport {
    /// An empty report.
    pub fn new(id: &str, title: &str) -> Self {
        ScenarioReport { id: id.into(), title: title.into(), params: Vec::new(), figures: Vec::new(), elapsed_s: 0.0 }
    }

    /// Record a setting.
    pub fn param(&mut self, name: &str, value: impl ToString) {
        self.params.push((name.into(), value.to_string()));
    }

    /// A figure without a target.
    pub fn info(&mut self, name: &str, value: impl Into<Value>) {
        self.figures.push(Figure { name: name.into(), value: value.into(), target: None, pass: None });
    }

    /// A figure that must be at most `max`.
    pub fn at_most(&mut self, name: &str, value: f64, max: f64) {
        self.check(name, num(value), format!("≤ {}", fmt_num(max)), value <= max);
    }

    /// A figure that must be at least `min`.
    pub fn at_least(&mut self, name: &str, value: f64, min: f64) {
        self.check(name, num(value), format!("≥ {}", fmt_num(min)), value >= min);
    }

    /// A figure with a target in words and its verdict.
    pub fn check(&mut self, name: &str, value: impl Into<Value>, target: impl Into<String>, pass: bool) {
        self.figures.push(Figure {
            name: name.into(),
            value: value.into(),
            target: Some(target.into()),
            pass: Some(pass),
        });
    }

    /// The figure called `name`.
    pub fn figure(&self, name: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.name == name)
    }

    /// Figures whose name starts with `prefix` that missed their target.
    pub fn failures(&self, prefix: &str) -> Vec<&Figure> {
        self.figures.iter().filter(|f| f.name.starts_with(prefix) && f.pass == Some(false)).collect()
    }

    /// Whether every targeted figure whose name starts with `prefix` passed (and there is at
    /// least one).
    pub fn passed(&self, prefix: &str) -> bool {
        let mut any = false;
        for f in self.figures.iter().filter(|f| f.name.starts_with(prefix)) {
            match f.pass {
                Some(false) => return false,
                Some(true) => any = true,
                None => {}
            }
        }
        any
    }

    /// The report as a plain-text table.
    pub fn table(&self) -> String {
        let mut out = format!("{} {} ({:.1} s)\n", self.id, self.title, self.elapsed_s);
        if !self.params.is_empty() {
            let p: Vec<String> = self.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out += &format!("  settings: {}\n", p.join(", "));
        }
        let width = self.figures.iter().map(|f| f.name.chars().count()).max().unwrap_or(0);
        for f in &self.figures {
            let verdict = match f.pass {
                Some(true) => "ok  ",
                Some(false) => "FAIL",
                None => "    ",
            };
            let target = f.target.as_deref().map(|t| format!("  (target {t})")).unwrap_or_default();
            out += &format!("  {verdict} {:<width$}  {}{target}\n", f.name, show(&f.value));
        }
        out
    }
}

fn num(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        Value::from(v as i64)
    } else {
        Value::from((v * 1000.0).round() / 1000.0)
    }
}

fn fmt_num(v: f64) -> String {
    show(&num(v))
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Megabytes (10^6) from bytes, rounded to 0.1.
pub fn mb(bytes: u64) -> f64 {
    (bytes as f64 / 100_000.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_and_prefixes() {
        let mut r = ScenarioReport::new("R0", "test");
        r.at_most("a.peak", 2.0, 2.0);
        r.at_least("a.rate", 0.5, 0.99);
        r.info("a.note", "x");
        r.check("b.alive", "yes", "alive", true);
        assert!(!r.passed("a."));
        assert!(r.passed("b."));
        assert!(!r.passed("c."), "no figure is no pass");
        assert_eq!(r.failures("").len(), 1);
        let t = r.table();
        assert!(t.contains("FAIL a.rate") && t.contains("(target ≥ 0.99)"), "{t}");
        assert_eq!(r.figure("a.peak").unwrap().value, Value::from(2));
    }
}
