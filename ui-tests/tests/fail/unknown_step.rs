use taskflow::prelude::*;

#[step]
async fn sum(a: i64) -> Result<i64, StepError> {
    Ok(a)
}

task_flow! {
    flow Example {
        steps { sum(a = 1), summ(a = 2) }
    }
}

fn main() {}
