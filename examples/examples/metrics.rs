//! Observability: the engine's `metrics` counters, histograms and gauge, read here through `metrics-util`'s
//! in-process debugging recorder (a service installs an exporter instead, e.g. a Prometheus one). Install the recorder
//! before building the engine: the engine registers its handles on first use and keeps them.
//!
//! Run: `cargo run --example metrics`

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use taskflow::prelude::*;

/// Succeeds unless asked to fail.
#[step]
async fn probe(fail: bool) -> Result<(), StepError> {
    if fail {
        return Err(StepError::fatal("probe failed"));
    }
    Ok(())
}

task_flow! {
    /// Two probes.
    flow Probe {
        type = "probe",
        steps {
            probe(fail = false),
            probe(fail = "{{ params.fail }}") [name = "second"],
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), taskflow::Error> {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("no other metrics recorder is installed");

    let engine = Engine::builder().build()?;
    let worker = engine.worker().start().await?;
    for fail in ["false", "false", "true"] {
        let task = Probe::builder().param("fail", fail).build()?;
        let id = engine.dispatch(task).await?;
        let done = engine.wait(&id).await?;
        println!("task {id}: {}", done.status);
    }
    worker.shutdown().await;

    println!("\nmetrics:");
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let key = key.key();
        let labels: Vec<String> = key
            .labels()
            .map(|label| format!("{}={}", label.key(), label.value()))
            .collect();
        let value = match value {
            DebugValue::Counter(count) => count.to_string(),
            DebugValue::Gauge(gauge) => gauge.to_string(),
            DebugValue::Histogram(samples) => format!("{} samples", samples.len()),
        };
        println!("  {}{{{}}} {value}", key.name(), labels.join(","));
    }
    Ok(())
}
