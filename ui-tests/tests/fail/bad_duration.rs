use taskflow::prelude::*;

#[step(timeout = "1500ms")]
async fn slow() -> Result<(), StepError> {
    Ok(())
}

#[step]
async fn fast() -> Result<(), StepError> {
    Ok(())
}

task_flow! {
    flow Example {
        timeout = "5 minutes",
        steps {
            fast [delay = "0s"],
        }
    }
}

fn main() {}
