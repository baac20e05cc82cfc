use taskflow::prelude::*;

#[callback]
async fn by_value(outcome: TaskOutcome) -> Result<(), CallbackError> {
    let _ = outcome;
    Ok(())
}

#[callback]
async fn two(outcome: &TaskOutcome, extra: i64) -> Result<(), CallbackError> {
    let _ = (outcome, extra);
    Ok(())
}

#[callback]
fn blocking(outcome: &TaskOutcome) -> Result<(), CallbackError> {
    let _ = outcome;
    Ok(())
}

#[callback]
async fn no_result(outcome: &TaskOutcome) {
    let _ = outcome;
}

fn main() {}
