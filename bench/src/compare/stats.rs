//! The arithmetic behind the comparison: medians over runs, Parley ÷ Node
//! ratios, and whether a target is met.

use serde::Serialize;

/// Median of the values that exist (a failed run has none); `None` when no
/// run produced one. An even count averages the middle two.
pub fn median(values: &[Option<f64>]) -> Option<f64> {
    let mut present: Vec<f64> = values
        .iter()
        .flatten()
        .copied()
        .filter(|value| !value.is_nan())
        .collect();
    present.sort_by(f64::total_cmp);
    let n = present.len();
    match n {
        0 => None,
        n if n % 2 == 1 => Some(present[n / 2]),
        n => Some((present[n / 2 - 1] + present[n / 2]) / 2.0),
    }
}

/// Parley ÷ Node, when both exist and Node's is not zero.
pub fn ratio(parley: Option<f64>, node: Option<f64>) -> Option<f64> {
    let (parley, node) = (parley?, node?);
    (node != 0.0 && parley.is_finite() && node.is_finite()).then(|| parley / node)
}

/// What Parley's (median) value must do.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "rule", content = "limit", rename_all = "snake_case")]
pub enum Rule {
    /// Parley's value ≤ limit.
    AtMost(f64),
    /// Parley's value < limit.
    Below(f64),
    /// Parley ÷ Node ≤ limit.
    RatioAtMost(f64),
    /// Parley ÷ Node ≥ limit.
    RatioAtLeast(f64),
}

/// A rule and how the report writes it ("≤ 6 ms", "≤ 1/4 of Node").
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Target {
    pub rule: Rule,
    pub label: &'static str,
}

impl Target {
    pub const fn new(rule: Rule, label: &'static str) -> Self {
        Self { rule, label }
    }

    /// `None` when a value it needs is missing (a failed run, say).
    pub fn met(&self, parley: Option<f64>, node: Option<f64>) -> Option<bool> {
        match self.rule {
            Rule::AtMost(limit) => parley.map(|value| value <= limit),
            Rule::Below(limit) => parley.map(|value| value < limit),
            Rule::RatioAtMost(limit) => ratio(parley, node).map(|ratio| ratio <= limit),
            Rule::RatioAtLeast(limit) => ratio(parley, node).map(|ratio| ratio >= limit),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_skip_failed_runs_and_average_an_even_middle() {
        assert_eq!(median(&[Some(2.3), Some(2.1), Some(2.2)]), Some(2.2));
        assert_eq!(median(&[Some(4.0), None, Some(1.0)]), Some(2.5));
        assert_eq!(median(&[Some(7.0)]), Some(7.0));
        assert_eq!(median(&[None, None]), None);
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[Some(f64::NAN), Some(1.0)]), Some(1.0));
    }

    #[test]
    fn ratios_need_both_values_and_a_nonzero_node() {
        assert_eq!(ratio(Some(1.0), Some(4.0)), Some(0.25));
        assert_eq!(ratio(None, Some(4.0)), None);
        assert_eq!(ratio(Some(1.0), None), None);
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
    }

    #[test]
    fn targets_compare_the_value_or_the_ratio() {
        let p99 = Target::new(Rule::AtMost(6.0), "≤ 6 ms");
        assert_eq!(p99.met(Some(6.0), None), Some(true));
        assert_eq!(p99.met(Some(6.01), Some(1.0)), Some(false));
        assert_eq!(p99.met(None, Some(1.0)), None);

        let storm = Target::new(Rule::Below(50.0), "< 50 ms");
        assert_eq!(storm.met(Some(49.9), None), Some(true));
        assert_eq!(storm.met(Some(50.0), None), Some(false));

        let user = Target::new(Rule::RatioAtMost(0.25), "≤ 1/4 of Node");
        assert_eq!(user.met(Some(1.0), Some(4.0)), Some(true));
        assert_eq!(user.met(Some(1.1), Some(4.0)), Some(false));
        assert_eq!(user.met(Some(1.0), None), None);

        let rate = Target::new(Rule::RatioAtLeast(3.0), "≥ 3 × Node");
        assert_eq!(rate.met(Some(300.0), Some(100.0)), Some(true));
        assert_eq!(rate.met(Some(299.0), Some(100.0)), Some(false));
    }
}
