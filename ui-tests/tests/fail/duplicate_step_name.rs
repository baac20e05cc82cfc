use taskflow::prelude::*;

#[step]
async fn sum(a: i64) -> Result<i64, StepError> {
    Ok(a)
}

task_flow! {
    flow Example {
        steps {
            sum(a = 1),
            sum(a = 2),
            sum(a = 3) [name = "sum"],
        }
    }
}

fn main() {}
