use taskflow::prelude::*;

#[callback]
async fn wrong_argument(task: &Task) -> Result<(), CallbackError> {
    let _ = task;
    Ok(())
}

#[callback]
async fn wrong_result(outcome: &TaskOutcome) -> Result<String, CallbackError> {
    Ok(outcome.task_id().to_owned())
}

fn main() {}
