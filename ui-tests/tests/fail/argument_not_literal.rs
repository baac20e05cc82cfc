use taskflow::prelude::*;

const A: i64 = 1;

#[step]
async fn sum(sum_a: i64, sum_b: i64) -> Result<i64, StepError> {
    Ok(sum_a + sum_b)
}

task_flow! {
    flow Example {
        steps { sum(sum_a = A, sum_b = 1 + 2) }
    }
}

fn main() {
    let _ = A;
}
