//! The comparison as Markdown: a header about the run, a summary of the
//! targets, then one table per scenario followed by every run's value, so
//! each median can be checked by hand.

use std::fmt::Write;

use super::stats::{median, ratio, Target};

/// One measure of one scenario: every run's value for each server.
#[derive(Debug, Clone)]
pub struct Row {
    pub measure: String,
    /// Digits after the decimal point.
    pub decimals: usize,
    /// One entry per run; `None` for a run that failed.
    pub parley: Vec<Option<f64>>,
    /// `None` when the measure does not apply to the Node peer.
    pub node: Option<Vec<Option<f64>>>,
    pub target: Option<Target>,
    /// List the individual runs under the table.
    pub show_runs: bool,
}

impl Row {
    pub fn parley_median(&self) -> Option<f64> {
        median(&self.parley)
    }

    pub fn node_median(&self) -> Option<f64> {
        self.node.as_deref().and_then(median)
    }

    pub fn met(&self) -> Option<Option<bool>> {
        self.target
            .map(|target| target.met(self.parley_median(), self.node_median()))
    }
}

/// One scenario's part of the report.
#[derive(Debug, Clone, Default)]
pub struct Section {
    pub title: String,
    /// Paragraphs before the table: what was run.
    pub setup: Vec<String>,
    pub rows: Vec<Row>,
    /// Bullet points after the runs: failures, details, caveats.
    pub notes: Vec<String>,
}

/// The whole report: `header` lines are (name, value) pairs.
pub fn render(title: &str, header: &[(String, String)], sections: &[Section]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## {title}\n");
    for (name, value) in header {
        let _ = writeln!(out, "- **{name}**: {value}");
    }
    out.push('\n');
    render_summary(&mut out, sections);
    for section in sections {
        render_section(&mut out, section);
    }
    out
}

fn render_summary(out: &mut String, sections: &[Section]) {
    let targeted: Vec<(&Section, &Row)> = sections
        .iter()
        .flat_map(|section| section.rows.iter().map(move |row| (section, row)))
        .filter(|(_, row)| row.target.is_some())
        .collect();
    if targeted.is_empty() {
        return;
    }
    let met = targeted
        .iter()
        .filter(|(_, row)| row.met() == Some(Some(true)))
        .count();
    let _ = writeln!(
        out,
        "### Targets: {met} of {} met\n\n\
         | scenario | measure | Parley | Node | Parley÷Node | target | met? |\n\
         |---|---|---:|---:|---:|---|:---:|",
        targeted.len()
    );
    for (section, row) in targeted {
        let _ = writeln!(
            out,
            "| {} | {} |",
            section.title.split(':').next().unwrap_or_default().trim(),
            cells(row)
        );
    }
    out.push('\n');
}

fn render_section(out: &mut String, section: &Section) {
    let _ = writeln!(out, "### {}\n", section.title);
    for paragraph in &section.setup {
        let _ = writeln!(out, "{paragraph}\n");
    }
    if !section.rows.is_empty() {
        let _ = writeln!(
            out,
            "| measure | Parley | Node | Parley÷Node | target | met? |\n\
             |---|---:|---:|---:|---|:---:|"
        );
        for row in &section.rows {
            let _ = writeln!(out, "| {} |", cells(row));
        }
        out.push('\n');
    }
    let runs: Vec<&Row> = section.rows.iter().filter(|row| row.show_runs).collect();
    if !runs.is_empty() {
        out.push_str("Runs, in order (the tables show their medians):\n\n");
        for row in runs {
            let _ = write!(
                out,
                "- {}: Parley {}",
                row.measure,
                run_list(&row.parley, row.decimals)
            );
            if let Some(node) = &row.node {
                let _ = write!(out, "; Node {}", run_list(node, row.decimals));
            }
            out.push('\n');
        }
        out.push('\n');
    }
    if !section.notes.is_empty() {
        out.push_str("Notes:\n\n");
        for note in &section.notes {
            let _ = writeln!(out, "- {note}");
        }
        out.push('\n');
    }
}

/// A row's cells after the first (measure) one, joined by ` | `.
fn cells(row: &Row) -> String {
    let parley = row.parley_median();
    let node = row.node_median();
    let value =
        |value: Option<f64>| value.map_or_else(|| "n/a".to_owned(), |v| number(v, row.decimals));
    let node_cell = if row.node.is_some() {
        value(node)
    } else {
        "—".to_owned()
    };
    let ratio_cell = if row.node.is_some() {
        ratio(parley, node).map_or_else(|| "n/a".to_owned(), |r| format!("{r:.2}"))
    } else {
        "—".to_owned()
    };
    let (target, met) = match (row.target, row.met()) {
        (Some(target), Some(met)) => (
            target.label.to_owned(),
            match met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "n/a",
            },
        ),
        _ => (String::new(), ""),
    };
    format!(
        "{} | {} | {node_cell} | {ratio_cell} | {target} | {met}",
        row.measure,
        value(parley)
    )
}

fn run_list(values: &[Option<f64>], decimals: usize) -> String {
    if values.is_empty() {
        return "(no runs)".to_owned();
    }
    values
        .iter()
        .map(|value| value.map_or_else(|| "failed".to_owned(), |v| number(v, decimals)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `value` with `decimals` digits and thousands separated by commas:
/// `1,234,567.9`.
pub fn number(value: f64, decimals: usize) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    let text = format!("{value:.decimals$}");
    let (sign, unsigned) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", text.as_str()),
    };
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let mut grouped = String::with_capacity(whole.len() + whole.len() / 3);
    for (index, digit) in whole.chars().enumerate() {
        if index > 0 && (whole.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    match fraction {
        Some(fraction) => format!("{sign}{grouped}.{fraction}"),
        None => format!("{sign}{grouped}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::stats::Rule;

    #[test]
    fn numbers_group_thousands() {
        assert_eq!(number(1_234_567.891, 1), "1,234,567.9");
        assert_eq!(number(999.0, 0), "999");
        assert_eq!(number(1000.0, 0), "1,000");
        assert_eq!(number(-12_345.0, 2), "-12,345.00");
        assert_eq!(number(0.0123, 3), "0.012");
        assert_eq!(number(f64::INFINITY, 1), "inf");
    }

    #[test]
    fn renders_a_fixed_report() {
        let sections = [
            Section {
                title: "fanout: 10 clients".to_owned(),
                setup: vec!["2 runs per server.".to_owned()],
                rows: vec![
                    Row {
                        measure: "p99 latency (ms)".to_owned(),
                        decimals: 2,
                        parley: vec![Some(2.0), Some(3.0), Some(2.5)],
                        node: Some(vec![Some(8.0), None, Some(9.0)]),
                        target: Some(Target::new(Rule::AtMost(6.0), "≤ 6 ms")),
                        show_runs: true,
                    },
                    Row {
                        measure: "user CPU (µs/delivery)".to_owned(),
                        decimals: 1,
                        parley: vec![Some(1.0)],
                        node: Some(vec![Some(2.0)]),
                        target: Some(Target::new(Rule::RatioAtMost(0.25), "≤ 1/4 of Node")),
                        show_runs: false,
                    },
                ],
                notes: vec!["Node run 2 failed: timed out".to_owned()],
            },
            Section {
                title: "page".to_owned(),
                setup: Vec::new(),
                rows: vec![Row {
                    measure: "wasm (bytes)".to_owned(),
                    decimals: 0,
                    parley: vec![Some(283_052.0)],
                    node: None,
                    target: None,
                    show_runs: false,
                }],
                notes: Vec::new(),
            },
        ];
        let header = [("commit".to_owned(), "abc1234+dirty".to_owned())];
        let expected = "\
## Parley vs Node

- **commit**: abc1234+dirty

### Targets: 1 of 2 met

| scenario | measure | Parley | Node | Parley÷Node | target | met? |
|---|---|---:|---:|---:|---|:---:|
| fanout | p99 latency (ms) | 2.50 | 8.50 | 0.29 | ≤ 6 ms | yes |
| fanout | user CPU (µs/delivery) | 1.0 | 2.0 | 0.50 | ≤ 1/4 of Node | **no** |

### fanout: 10 clients

2 runs per server.

| measure | Parley | Node | Parley÷Node | target | met? |
|---|---:|---:|---:|---|:---:|
| p99 latency (ms) | 2.50 | 8.50 | 0.29 | ≤ 6 ms | yes |
| user CPU (µs/delivery) | 1.0 | 2.0 | 0.50 | ≤ 1/4 of Node | **no** |

Runs, in order (the tables show their medians):

- p99 latency (ms): Parley 2.00, 3.00, 2.50; Node 8.00, failed, 9.00

Notes:

- Node run 2 failed: timed out

### page

| measure | Parley | Node | Parley÷Node | target | met? |
|---|---:|---:|---:|---|:---:|
| wasm (bytes) | 283,052 | — | — |  |  |

";
        assert_eq!(render("Parley vs Node", &header, &sections), expected);
    }
}
