use std::num::NonZeroU32;
use taskflow::prelude::*;

#[step]
async fn batch(size: NonZeroU32) -> Result<(), StepError> {
    let _ = size;
    Ok(())
}

task_flow! {
    flow Example {
        steps { batch(size = 0) }
    }
}

fn main() {}
