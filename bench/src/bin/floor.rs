//! `floor`: see `floor --help` and `parley_bench::floor`.

use clap::Parser;
use parley_bench::floor::{self, FloorCli, FloorMode};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match FloorCli::parse().mode {
        FloorMode::Storm(args) => {
            let rounds = floor::storm(&args).await?;
            let mut last: Vec<f64> = Vec::with_capacity(rounds.len());
            for (i, round) in rounds.iter().enumerate() {
                let ms = round.last_received.as_secs_f64() * 1e3;
                println!(
                    "round {}: written in {:.1} ms, last received after {ms:.1} ms",
                    i + 1,
                    round.written.as_secs_f64() * 1e3,
                );
                last.push(ms);
            }
            last.sort_by(f64::total_cmp);
            println!(
                "median last received: {:.1} ms ({} connections, {} writer threads)",
                last[last.len() / 2],
                args.connections,
                args.writers
            );
        }
        FloorMode::Fanout(args) => {
            let result = floor::fanout(&args).await?;
            let ms = |q: f64| result.quantile(q).as_secs_f64() * 1e3;
            println!(
                "{} of {} deliveries ({} connections, {} msg/s, {} writer threads)",
                result.latencies.len(),
                result.expected,
                args.connections,
                args.rate,
                args.writers
            );
            println!(
                "latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
                ms(0.5),
                ms(0.9),
                ms(0.99),
                ms(1.0)
            );
        }
    }
    Ok(())
}
