use taskflow::prelude::*;

#[step]
async fn sum(ctx: &StepContext, sum_a: i64, sum_b: i64, note: Option<String>) -> Result<i64, StepError> {
    let _ = (ctx, note);
    Ok(sum_a + sum_b)
}

task_flow! {
    flow Example {
        steps { sum(sum_a = 1) }
    }
}

fn main() {}
