use taskflow::prelude::*;

#[step]
async fn sum(sum_a: i64, sum_b: Option<i64>) -> Result<i64, StepError> {
    Ok(sum_a + sum_b.unwrap_or(0))
}

task_flow! {
    flow Example {
        steps { sum(sum_a = 1, sum_c = 2) }
    }
}

fn main() {}
