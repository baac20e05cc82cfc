use taskflow::prelude::*;

#[step]
fn sum(a: i64) -> Result<i64, StepError> {
    Ok(a)
}

fn main() {
    let _ = sum(1);
}
