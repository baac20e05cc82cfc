use taskflow::prelude::*;

#[step(retry = 3)]
async fn first() -> Result<(), StepError> {
    Ok(())
}

#[step]
async fn second() -> Result<(), StepError> {
    Ok(())
}

task_flow! {
    flow Example {
        kind = "example",
        steps {
            second [skip_on_fail],
        }
    }
}

fn main() {}
