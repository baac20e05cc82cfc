use taskflow::prelude::*;

#[step]
async fn sum(a: i64) -> Result<i64, StepError> {
    Ok(a)
}

task_flow! {
    flow Positional {
        steps { sum(1) }
    }
}

fn main() {}
