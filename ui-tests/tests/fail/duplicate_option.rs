use taskflow::prelude::*;

#[step(retries = 3, retries = 4)]
async fn first() -> Result<(), StepError> {
    Ok(())
}

#[step]
async fn second() -> Result<(), StepError> {
    Ok(())
}

task_flow! {
    flow Example {
        type = "a",
        type = "b",
        steps {
            second [node = "a", queue = "b"],
        }
    }
}

fn main() {}
