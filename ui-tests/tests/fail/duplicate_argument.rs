use taskflow::prelude::*;

#[step]
async fn sum(sum_a: i64) -> Result<i64, StepError> {
    Ok(sum_a)
}

task_flow! {
    flow Example {
        steps { sum(sum_a = 1, sum_a = 2) }
    }
}

task_flow! {
    flow Raw {
        steps { sum(sum_a = 1, r#sum_a = 2) }
    }
}

fn main() {}
